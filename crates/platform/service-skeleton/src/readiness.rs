//! Keeping `/readyz` in step with a service's dependencies.

use std::{
    error::Error,
    sync::{Arc, Mutex},
    time::Duration,
};

use lifecycle::ErrorChain;
use ops_http::Health;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often every service checks its dependencies.
pub const READINESS_INTERVAL: Duration = Duration::from_secs(1);

type Check = Arc<Mutex<dyn FnMut() -> Result<(), String> + Send>>;

/// A service's dependency probes, run every [`READINESS_INTERVAL`] until shutdown,
/// each result written to [`Health`] under the dependency's name.
///
/// Probes block (a database ping, a broker round trip), so each runs on the blocking
/// pool, all of a round at once; a probe that panics counts as failed for that round
/// and is run again the next.
pub struct Readiness {
    health: Arc<Health>,
    probes: Vec<(&'static str, Check)>,
}

impl Readiness {
    /// No probes yet: add them with [`probe`](Self::probe).
    pub fn new(health: Arc<Health>) -> Self {
        Self {
            health,
            probes: Vec::new(),
        }
    }

    /// Checks `dependency` (a name the operations server was started with) with
    /// `check`, a blocking call; the error with its causes ([`ErrorChain`]) is what
    /// `/readyz` shows.
    pub fn probe<E: Error + 'static>(
        mut self,
        dependency: &'static str,
        mut check: impl FnMut() -> Result<(), E> + Send + 'static,
    ) -> Self {
        let check: Check = Arc::new(Mutex::new(move || {
            check().map_err(|err| ErrorChain(&err).to_string())
        }));
        self.probes.push((dependency, check));
        self
    }

    /// Runs the probes in the background until `shutdown` is cancelled.
    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(self.run(shutdown, |_| async {}))
    }

    /// Runs the probes until `shutdown` is cancelled. After each round `report` is
    /// told whether every dependency was reachable, and once more `false` when
    /// shutdown comes (a stopping service serves no more): for a service that also
    /// reports its readiness elsewhere, such as gRPC health.
    pub async fn run<R, F>(self, shutdown: CancellationToken, mut report: R)
    where
        R: FnMut(bool) -> F,
        F: Future<Output = ()>,
    {
        loop {
            report(self.round().await).await;
            tokio::select! {
                _ = shutdown.cancelled() => {
                    report(false).await;
                    return;
                }
                _ = tokio::time::sleep(READINESS_INTERVAL) => {}
            }
        }
    }

    /// Runs every probe once, concurrently; whether all succeeded.
    async fn round(&self) -> bool {
        let running: Vec<_> = self
            .probes
            .iter()
            .map(|(dependency, check)| {
                let check = check.clone();
                let task = tokio::task::spawn_blocking(move || {
                    let mut check = check
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    check()
                });
                (*dependency, task)
            })
            .collect();
        let mut ready = true;
        for (dependency, task) in running {
            let result = task.await.unwrap_or_else(|err| Err(err.to_string()));
            ready &= result.is_ok();
            self.health.set(dependency, result);
        }
        ready
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn probes_set_health_each_round_and_stop_on_shutdown() {
        let health = Arc::new(Health::new(&["database", "broker"]));
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let shutdown = CancellationToken::new();
        let reports = Arc::new(Mutex::new(Vec::new()));
        let seen = reports.clone();
        let stop = shutdown.clone();
        let readiness = Readiness::new(health.clone())
            .probe("database", move || {
                counted.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(())
            })
            .probe("broker", || {
                Err(std::io::Error::other("connection refused"))
            });
        readiness
            .run(shutdown.clone(), move |ready| {
                seen.lock().unwrap().push(ready);
                stop.cancel();
                async {}
            })
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(*reports.lock().unwrap(), [false, false]);
        let (ready, body) = health.report();
        assert!(!ready);
        assert_eq!(body["checks"]["database"], "ok");
        assert_eq!(body["checks"]["broker"], "connection refused");
    }

    #[tokio::test]
    async fn a_panicking_probe_fails_its_round_and_runs_again() {
        let health = Arc::new(Health::new(&["redis"]));
        let mut calls = 0;
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let mut rounds = Vec::new();
        Readiness::new(health.clone())
            .probe("redis", move || {
                calls += 1;
                if calls == 1 {
                    panic!("first ping panics");
                }
                Ok::<_, std::io::Error>(())
            })
            .run(shutdown, |ready| {
                rounds.push(ready);
                if rounds.len() == 2 {
                    stop.cancel();
                }
                async {}
            })
            .await;
        assert_eq!(rounds, [false, true, false]);
        assert!(health.is_ready());
    }
}
