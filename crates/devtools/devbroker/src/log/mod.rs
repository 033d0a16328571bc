//! Topic and partition logs: the broker's storage.
//!
//! - this module: [`Log`], every topic by name, topic creation (serialised, so a
//!   racing auto-creation and an explicit one make one topic), and the notification of
//!   appends: they bump a broker-wide counter in a `watch` channel, which long-polling
//!   fetches wait on instead of polling;
//! - [`partition`]: a partition's entries, appended and read (entries are held in
//!   memory, and with a data directory also written to the partition's file);
//! - [`disk`]: the files under `<data-dir>/topics/`, their record format, and their
//!   recovery on start-up.

mod disk;
mod partition;
#[cfg(test)]
mod tests;

use lifecycle::ErrorChain;
use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};

use tokio::sync::watch;

pub use partition::Partition;

/// Longest legal topic name (Kafka's limit).
const MAX_TOPIC_NAME_LEN: usize = 249;
/// Most partitions a topic may have (a devbroker limit; Kafka has none as such).
pub const MAX_PARTITIONS: i32 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid topic name {0:?} (1-249 chars of [a-zA-Z0-9._-], not . or ..)")]
    InvalidTopic(String),
    #[error("invalid partition count {0} for topic {1:?}")]
    InvalidPartitions(i32, String),
    #[error("topic {0:?} is on disk with a bad partition count file")]
    BadTopicMeta(String),
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    #[error("storage work did not finish")]
    Unfinished(#[source] tokio::task::JoinError),
}

pub(crate) fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> StorageError + 'a {
    move |source| StorageError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Logs the bytes of `path` after its last whole record (a write a crash cut short,
/// or corruption), if `valid` of the `read` bytes leaves any; `action` says what
/// happens to them.
pub(crate) fn warn_torn_tail(path: &Path, read: usize, valid: usize, action: &str) {
    if valid < read {
        tracing::warn!(
            path = %path.display(),
            dropped_bytes = read - valid,
            "{action} a torn or corrupt tail"
        );
    }
}

/// Locks a mutex, recovering from poisoning: every critical section leaves the data
/// consistent before anything that could panic, so a poisoned lock is still sound.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TOPIC_NAME_LEN
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub struct Topic {
    pub name: String,
    pub partitions: Vec<Partition>,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<&Partition> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }

    pub fn partition_count(&self) -> i32 {
        i32::try_from(self.partitions.len()).unwrap_or(i32::MAX)
    }
}

/// All topics, plus the append notification channel.
pub struct Log {
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Serialises topic creation so two racing auto-creates make one topic.
    create_lock: Mutex<()>,
    data_dir: Option<PathBuf>,
    default_partitions: i32,
    appended: watch::Sender<u64>,
}

impl Log {
    /// Opens the log: loads every topic under `data_dir` (if any), then creates the
    /// `initial` topics that do not exist yet.
    pub fn open(
        data_dir: Option<&Path>,
        default_partitions: i32,
        initial: &[(String, i32)],
    ) -> Result<Self, StorageError> {
        let mut topics = HashMap::new();
        let data_dir = data_dir.map(|d| d.join("topics"));
        if let Some(dir) = &data_dir {
            fs::create_dir_all(dir).map_err(io_err("create", dir))?;
            for ent in fs::read_dir(dir).map_err(io_err("read", dir))? {
                let ent = ent.map_err(io_err("read", dir))?;
                let Ok(name) = ent.file_name().into_string() else {
                    continue;
                };
                if !valid_topic_name(&name) || !ent.path().is_dir() {
                    continue;
                }
                if let Some(topic) = disk::load_topic(&ent.path(), &name)? {
                    topics.insert(name, Arc::new(topic));
                }
            }
        }
        let (appended, _) = watch::channel(0);
        let log = Self {
            topics: RwLock::new(topics),
            create_lock: Mutex::new(()),
            data_dir,
            default_partitions,
            appended,
        };
        for (name, partitions) in initial {
            log.get_or_create(name, Some(*partitions))?;
        }
        Ok(log)
    }

    /// Whether topics live in files too (a data dir is set): creation and appends then
    /// do blocking file I/O.
    pub fn persistent(&self) -> bool {
        self.data_dir.is_some()
    }

    /// The topics, for reading; a poisoned lock is sound, as for [`lock`].
    fn read_topics(&self) -> RwLockReadGuard<'_, HashMap<String, Arc<Topic>>> {
        self.topics.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.read_topics().get(name).cloned()
    }

    /// All topics as `(name, partition count)`, sorted by name.
    pub fn topic_list(&self) -> Vec<(String, i32)> {
        let mut v: Vec<_> = self
            .read_topics()
            .values()
            .map(|t| (t.name.clone(), t.partition_count()))
            .collect();
        v.sort();
        v
    }

    /// The topic, created with `partitions` (or the default) if it does not exist.
    /// Creation does blocking file I/O if [`Log::persistent`].
    pub fn get_or_create(
        &self,
        name: &str,
        partitions: Option<i32>,
    ) -> Result<Arc<Topic>, StorageError> {
        if let Some(t) = self.topic(name) {
            return Ok(t);
        }
        self.create_new(name, partitions, true)
    }

    /// Creates the topic with `partitions` (or the default), failing with
    /// [`StorageError::TopicExists`] if it exists already (CreateTopics). Serialised with
    /// [`Log::get_or_create`], so of a racing auto-creation and an explicit one exactly
    /// one creates the topic.
    pub fn create(&self, name: &str, partitions: Option<i32>) -> Result<Arc<Topic>, StorageError> {
        self.create_new(name, partitions, false)
    }

    /// The partition count a creation with `partitions` would get, if valid.
    pub fn resolve_partitions(&self, partitions: Option<i32>) -> Option<i32> {
        let n = partitions.unwrap_or(self.default_partitions);
        (1..=MAX_PARTITIONS).contains(&n).then_some(n)
    }

    /// Creates a topic under the creation lock; an existing one is returned if
    /// `existing_ok`, else refused.
    fn create_new(
        &self,
        name: &str,
        partitions: Option<i32>,
        existing_ok: bool,
    ) -> Result<Arc<Topic>, StorageError> {
        if !valid_topic_name(name) {
            return Err(StorageError::InvalidTopic(name.to_owned()));
        }
        let Some(n) = self.resolve_partitions(partitions) else {
            let n = partitions.unwrap_or(self.default_partitions);
            return Err(StorageError::InvalidPartitions(n, name.to_owned()));
        };
        let _guard = lock(&self.create_lock);
        if let Some(t) = self.topic(name) {
            return if existing_ok {
                Ok(t)
            } else {
                Err(StorageError::TopicExists(name.to_owned()))
            };
        }
        let topic = match &self.data_dir {
            None => Topic {
                name: name.to_owned(),
                partitions: (0..n).map(|_| Partition::new(Vec::new(), None)).collect(),
            },
            Some(dir) => disk::create_topic_on_disk(dir, name, n)?,
        };
        tracing::info!(topic = name, partitions = n, "created topic");
        let topic = Arc::new(topic);
        self.topics
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), topic.clone());
        Ok(topic)
    }

    /// Wakes waiting fetches after an append.
    pub fn notify_appended(&self) {
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Flushes every partition file (shutdown).
    pub fn sync_all(&self) {
        let topics: Vec<_> = self.read_topics().values().cloned().collect();
        for t in topics {
            for (i, p) in t.partitions.iter().enumerate() {
                if let Err(e) = p.sync() {
                    tracing::warn!(topic = %t.name, partition = i, error = %ErrorChain(&e), "sync failed");
                }
            }
        }
    }
}
