//! Reloading without a restart: a value built from PEM files ([`Reloading`]: a
//! server configuration, a client channel) rebuilt by a watcher task when the files
//! change or the process gets SIGHUP.
//!
//! - Change: every [`ReloadOptions::poll_interval`] (default
//!   [`DEFAULT_POLL_INTERVAL`], 5 s) the watcher looks at each file's modification
//!   time, size and inode, following symbolic links (so a Kubernetes secret volume,
//!   whose files are swapped by re-pointing a symbolic link, is seen too). Polling,
//!   not inotify: it works the same on every file system, mounted volumes included,
//!   and a few `stat` calls every few seconds cost nothing.
//! - SIGHUP: rebuilds at once, whether or not the files look changed.
//! - Failure (a missing file, bad PEM, a key that does not go with its certificate):
//!   the current value stays in use, the error is logged naming the file, and the
//!   watcher tries again on the files' next change (or the next SIGHUP), not on every
//!   poll, so one bad file is logged once.
//!
//! Holders read the newest value with [`Reloading::current`] whenever they start
//! something new (a connection, a call); what they started before keeps the value
//! it began with.

use std::{
    path::Path,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime},
};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::pem::{PemFile, TlsError};

/// How often the watched files are looked at when nothing else says:
/// rotation tools (cert-manager, a cron job renewing a certificate days before it
/// expires) need seconds, not milliseconds, and a restart-free reload within 5 s of
/// the new files landing is well inside that.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// How the watcher looks for changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadOptions {
    /// Time between two looks at the files' modification time, size and inode.
    pub poll_interval: Duration,
}

impl Default for ReloadOptions {
    fn default() -> Self {
        Self {
            poll_interval: DEFAULT_POLL_INTERVAL,
        }
    }
}

/// What the watcher has done so far (for tests and diagnostics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadStatus {
    /// Successful rebuilds after the first build.
    pub reloads: u64,
    /// Rebuilds that failed (the value in use did not change).
    pub failures: u64,
    /// The error of the latest rebuild, if it failed.
    pub last_error: Option<String>,
}

/// The newest value built from the watched files. Cheap to clone; every clone sees
/// the same newest value.
#[derive(Debug)]
pub struct Reloading<T> {
    current: watch::Receiver<T>,
    status: Arc<Mutex<ReloadStatus>>,
}

impl<T> Clone for Reloading<T> {
    fn clone(&self) -> Self {
        Self {
            current: self.current.clone(),
            status: self.status.clone(),
        }
    }
}

impl<T: Clone> Reloading<T> {
    /// A value that never changes (no files: e.g. a plaintext channel), so holders
    /// need not care whether reloading is on.
    pub fn fixed(value: T) -> Self {
        // With the sender gone the receiver keeps the last value for good.
        let (_sender, current) = watch::channel(value);
        Self {
            current,
            status: Arc::default(),
        }
    }

    /// The newest value.
    pub fn current(&self) -> T {
        self.current.borrow().clone()
    }

    /// What the watcher has done so far.
    pub fn status(&self) -> ReloadStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Builds the first value now (its error is the caller's start-up error) and starts
/// the watcher task that rebuilds it; see the module docs. `label` says what is
/// reloaded in the logs. The watcher stops on `shutdown` or when every
/// [`Reloading`] is dropped. Must be called within a Tokio runtime.
pub(crate) fn watch_files<T, F>(
    label: &'static str,
    files: Vec<PemFile>,
    mut build: F,
    options: ReloadOptions,
    shutdown: CancellationToken,
) -> Result<Reloading<T>, TlsError>
where
    T: Send + Sync + 'static,
    F: FnMut() -> Result<T, TlsError> + Send + 'static,
{
    // Looked at before the build: a change during it is seen at the next poll.
    let seen = Fingerprint::of(&files);
    let (sender, current) = watch::channel(build()?);
    let status = Arc::new(Mutex::new(ReloadStatus::default()));
    let watcher = Watcher {
        label,
        files,
        build,
        sender,
        status: status.clone(),
        seen,
        // Installed here, not in the task: a SIGHUP that arrives once this function
        // has returned must reload, not kill the process (SIGHUP's default action).
        hangup: hangup_signal(label),
    };
    tokio::spawn(watcher.run(
        options.poll_interval.max(Duration::from_millis(10)),
        shutdown,
    ));
    Ok(Reloading { current, status })
}

#[cfg(unix)]
type Hangup = tokio::signal::unix::Signal;
#[cfg(not(unix))]
type Hangup = std::convert::Infallible;

#[cfg(unix)]
fn hangup_signal(label: &str) -> Option<Hangup> {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(hangup) => Some(hangup),
        Err(err) => {
            tracing::warn!(
                what = label,
                error = %err,
                "cannot listen for SIGHUP; TLS files are reloaded only when they change"
            );
            None
        }
    }
}

#[cfg(not(unix))]
fn hangup_signal(_label: &str) -> Option<Hangup> {
    None
}

/// The next SIGHUP; never, without a handler.
async fn next_hangup(hangup: &mut Option<Hangup>) {
    match hangup {
        #[cfg(unix)]
        Some(signal) => {
            if signal.recv().await.is_none() {
                // The signal driver is gone (the runtime is shutting down).
                std::future::pending::<()>().await;
            }
        }
        #[cfg(not(unix))]
        Some(never) => match *never {},
        None => std::future::pending::<()>().await,
    }
}

struct Watcher<T, F> {
    label: &'static str,
    files: Vec<PemFile>,
    build: F,
    sender: watch::Sender<T>,
    status: Arc<Mutex<ReloadStatus>>,
    seen: Fingerprint,
    hangup: Option<Hangup>,
}

enum Event {
    Stop,
    Poll,
    Hangup,
}

impl<T, F> Watcher<T, F>
where
    F: FnMut() -> Result<T, TlsError>,
{
    async fn run(mut self, poll_interval: Duration, shutdown: CancellationToken) {
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + poll_interval, poll_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => Event::Stop,
                () = self.sender.closed() => Event::Stop,
                _ = ticks.tick() => Event::Poll,
                () = next_hangup(&mut self.hangup) => Event::Hangup,
            };
            match event {
                Event::Stop => return,
                Event::Poll => {
                    let now = Fingerprint::of(&self.files);
                    if now != self.seen {
                        self.seen = now;
                        self.rebuild("the files changed");
                    }
                }
                Event::Hangup => {
                    self.seen = Fingerprint::of(&self.files);
                    self.rebuild("SIGHUP");
                }
            }
        }
    }

    fn rebuild(&mut self, why: &str) {
        let outcome = (self.build)();
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        match outcome {
            Ok(value) => {
                self.sender.send_replace(value);
                status.reloads += 1;
                status.last_error = None;
                tracing::info!(
                    what = self.label,
                    why,
                    files = %FileList(&self.files),
                    "TLS files reloaded: new connections use them"
                );
            }
            Err(err) => {
                let error = crate::pem::error_chain(&err);
                status.failures += 1;
                status.last_error = Some(error.clone());
                tracing::error!(
                    what = self.label,
                    why,
                    error,
                    "TLS reload failed: the current certificates stay in use; tried again \
                     when the files change again or on SIGHUP"
                );
            }
        }
    }
}

/// `VAR = "path", ...` for the logs.
struct FileList<'a>(&'a [PemFile]);

impl std::fmt::Display for FileList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, file) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{file}")?;
        }
        Ok(())
    }
}

/// What a poll compares: each file's modification time, size and (on Unix) device
/// and inode; `None` for a file that cannot be looked at (missing, no permission), so
/// its return counts as a change too.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint(Vec<Option<Stamp>>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    // A file replaced by rename can keep the old one's time and size (`cp -p`).
    identity: (u64, u64),
}

impl Fingerprint {
    fn of(files: &[PemFile]) -> Self {
        Self(files.iter().map(|file| stamp(&file.path)).collect())
    }
}

fn stamp(path: &Path) -> Option<Stamp> {
    let metadata = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let identity = {
        use std::os::unix::fs::MetadataExt;
        (metadata.dev(), metadata.ino())
    };
    #[cfg(not(unix))]
    let identity = (0, 0);
    Some(Stamp {
        modified: metadata.modified().ok(),
        len: metadata.len(),
        identity,
    })
}
