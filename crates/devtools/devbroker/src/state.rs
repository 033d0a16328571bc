//! The state every connection shares, and where its storage work runs.
//!
//! With a data directory, storage work (topic creation, appends, offset commits, their
//! `fdatasync`s) does blocking file I/O, so [`State::storage`] runs it on tokio's blocking
//! pool: a slow disk then holds up only the requests that wait for it, never a runtime
//! worker thread (and with it every other connection). In memory nothing can block, so
//! the same work runs inline, as fast as a function call.

use std::sync::Arc;

use crate::log::{Log, StorageError};
use crate::offsets::OffsetStore;

/// Shared broker state.
pub struct State {
    pub log: Log,
    pub offsets: OffsetStore,
    /// Limit on a frame and on a decompressed message set.
    pub max_frame_bytes: usize,
    /// Whether storage does file I/O (a data directory is set).
    persistent: bool,
}

impl State {
    pub fn new(log: Log, offsets: OffsetStore, max_frame_bytes: usize) -> Self {
        let persistent = log.persistent() || offsets.persistent();
        Self {
            log,
            offsets,
            max_frame_bytes,
            persistent,
        }
    }

    /// Runs storage work `f`: on the blocking pool if it may touch files, inline if
    /// everything is in memory. The caller awaits the result, so whatever `f` writes or
    /// syncs is done before the caller answers. An error means the blocking task died
    /// (a panic, or the runtime shutting down) before finishing.
    pub async fn storage<R, F>(self: &Arc<Self>, f: F) -> Result<R, StorageError>
    where
        F: FnOnce(&State) -> R + Send + 'static,
        R: Send + 'static,
    {
        if !self.persistent {
            return Ok(f(self));
        }
        let state = Arc::clone(self);
        tokio::task::spawn_blocking(move || f(&state))
            .await
            .map_err(StorageError::Unfinished)
    }
}

#[cfg(test)]
mod tests {
    use std::thread;

    use super::*;

    fn state(dir: Option<&std::path::Path>) -> Arc<State> {
        let log = Log::open(dir, 1, &[]).unwrap();
        let offsets = OffsetStore::open(dir).unwrap();
        Arc::new(State::new(log, offsets, 1 << 20))
    }

    #[tokio::test]
    async fn storage_work_leaves_the_runtime_only_when_it_touches_files() {
        let here = thread::current().id();
        let in_memory = state(None);
        let ran_on = in_memory.storage(|_| thread::current().id()).await.unwrap();
        assert_eq!(ran_on, here, "in memory: inline");

        let dir = tempfile::tempdir().unwrap();
        let on_disk = state(Some(dir.path()));
        let ran_on = on_disk.storage(|_| thread::current().id()).await.unwrap();
        assert_ne!(ran_on, here, "with files: on the blocking pool");
    }
}
