//! Broker lifecycle: start, address, shutdown; plus [`spawn_background`] for tests of
//! other crates that want a broker without running a tokio runtime themselves.

use lifecycle::ErrorChain;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::config::BrokerConfig;
use crate::log::{Log, StorageError};
use crate::offsets::OffsetStore;
use crate::server;
use crate::state::State;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("storage")]
    Storage(#[from] StorageError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot start the broker runtime")]
    Runtime(#[source] std::io::Error),
    #[error("the broker thread ended before reporting its address")]
    ThreadDied,
}

/// Entry point: `Broker::start(config)`.
pub struct Broker;

impl Broker {
    /// Opens storage, binds the listener and starts serving in a background task.
    pub async fn start(config: BrokerConfig) -> Result<RunningBroker, BrokerError> {
        if !(1..=10_000).contains(&config.default_partitions) {
            return Err(BrokerError::Config(format!(
                "default partitions must be 1-10000, got {}",
                config.default_partitions
            )));
        }
        if config.max_frame_bytes < 64 {
            return Err(BrokerError::Config("max frame bytes must be >= 64".into()));
        }
        let data_dir = config.data_dir.clone();
        let default_partitions = config.default_partitions;
        let initial: Vec<(String, i32)> = config
            .topics
            .iter()
            .map(|t| (t.name.clone(), t.partitions))
            .collect();
        // Loading logs is file I/O: keep it off the async worker threads.
        let (log, offsets) = tokio::task::spawn_blocking(move || {
            let log = Log::open(data_dir.as_deref(), default_partitions, &initial)?;
            let offsets = OffsetStore::open(data_dir.as_deref())?;
            Ok::<_, StorageError>((log, offsets))
        })
        .await
        .map_err(|e| BrokerError::Runtime(std::io::Error::other(e)))??;

        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| BrokerError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| BrokerError::Bind {
            addr: config.listen,
            source,
        })?;
        let state = Arc::new(State::new(log, offsets, config.max_frame_bytes));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server::serve(
            listener,
            state.clone(),
            config.advertised_host.clone(),
            shutdown.clone(),
        ));
        tracing::info!(
            %local_addr,
            data_dir = ?config.data_dir,
            "devbroker listening"
        );
        Ok(RunningBroker {
            local_addr,
            shutdown: shutdown.drop_guard(),
            task,
            state,
        })
    }
}

/// A started broker. Dropping it stops accepting and closes connections; call
/// [`RunningBroker::shutdown`] to also wait for that and flush files.
pub struct RunningBroker {
    local_addr: SocketAddr,
    /// Cancels the server's token when dropped, so a dropped handle stops the broker too.
    shutdown: DropGuard,
    task: JoinHandle<()>,
    state: Arc<State>,
}

impl RunningBroker {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// Stops accepting, lets connections finish their current request, and syncs files.
    pub async fn shutdown(self) {
        drop(self.shutdown);
        if let Err(e) = self.task.await {
            tracing::error!(error = %ErrorChain(&e), "server task failed");
        }
        let state = self.state;
        let synced = tokio::task::spawn_blocking(move || {
            state.log.sync_all();
            state.offsets.sync()
        })
        .await;
        match synced {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %ErrorChain(&e), "syncing offsets at shutdown failed")
            }
            Err(e) => tracing::error!(error = %ErrorChain(&e), "sync task failed"),
        }
        tracing::info!("devbroker stopped");
    }
}

/// A broker running on its own thread and runtime (see [`spawn_background`]). Dropping it
/// shuts the broker down and joins the thread.
pub struct BackgroundBroker {
    addr: SocketAddr,
    stop: CancellationToken,
    thread: Option<thread::JoinHandle<()>>,
}

impl BackgroundBroker {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `host:port`, the form Kafka clients take as a bootstrap server.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// Shuts down and waits (same as dropping).
    pub fn stop(self) {}
}

impl Drop for BackgroundBroker {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("devbroker thread panicked");
        }
    }
}

/// Starts a broker on a dedicated OS thread with its own tokio runtime and returns once
/// it listens. For tests in synchronous crates:
///
/// ```no_run
/// let broker = devbroker::spawn_background(devbroker::BrokerConfig::default())?;
/// let brokers = vec![broker.bootstrap()]; // "127.0.0.1:<port>"
/// # Ok::<(), devbroker::BrokerError>(())
/// ```
pub fn spawn_background(config: BrokerConfig) -> Result<BackgroundBroker, BrokerError> {
    let (addr_tx, addr_rx) = mpsc::channel();
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let thread = thread::Builder::new()
        .name("devbroker".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("devbroker-worker")
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = addr_tx.send(Err(BrokerError::Runtime(e)));
                    return;
                }
            };
            rt.block_on(async move {
                match Broker::start(config).await {
                    Ok(b) => {
                        let _ = addr_tx.send(Ok(b.local_addr()));
                        // Cancelled by the handle's `Drop` (`stop` drops it too).
                        stopped.cancelled().await;
                        b.shutdown().await;
                    }
                    Err(e) => {
                        let _ = addr_tx.send(Err(e));
                    }
                }
            });
        })
        .map_err(BrokerError::Runtime)?;
    match addr_rx.recv() {
        Ok(Ok(addr)) => Ok(BackgroundBroker {
            addr,
            stop,
            thread: Some(thread),
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(BrokerError::ThreadDied)
        }
    }
}
