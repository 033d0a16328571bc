//! The gateway's calls spread over several orders replicas (`ORDERS_GRPC_ADDR` a
//! comma-separated list, or a name resolving to several addresses), each replica in
//! rotation only while its gRPC health says SERVING.
//!
//! The design: one channel per replica, picked here, not tonic's `balance_channel`
//! (tower's power-of-two-choices over a `Discover` stream). The retry rule needs to
//! know which replica a call went to, to take that one out at once and send the call
//! to another, and only for calls that are safe to repeat; a balanced channel hides
//! the replica and answers a failed call without saying where it went. Holding the
//! channels also keeps TLS as it is: each replica's channel is the `grpc_tls` crate's
//! [`grpc_tls::Reloading`] channel (one CA and client certificate for all, rebuilt on
//! a change or SIGHUP), connected to the replica's address while verifying the
//! configured name.
//!
//! - Replicas ([`Replica`]): one per configured address; with
//!   `GATEWAY_ORDERS_RESOLVE_INTERVAL` set, one per address each configured name
//!   resolves to, resolved again at that interval (a headless Kubernetes Service):
//!   new addresses join, vanished ones leave; a failed resolution keeps the last set.
//!   A replica's label (its metric label) is its configured address or, resolved,
//!   `scheme://ip:port`: bounded by what is configured and what DNS answers.
//! - Health: every [`HEALTH_INTERVAL`] each replica is asked `grpc.health.v1` for
//!   `orders.v1.OrdersService` (or, if orders knows no such name, the Go orders, the
//!   server-wide `""`, as `/readyz` does); SERVING puts it in rotation, anything else
//!   takes it out. `gateway_orders_replica_up{replica}` is 1 or 0.
//! - Picking ([`pick`]): round robin over the replicas in rotation. When none is (all
//!   down, or health not known yet) every replica is a candidate: a call that might
//!   succeed is better than a certain 503, and with one replica this is exactly the
//!   gateway's behaviour before replicas existed.
//! - A failed attempt ([`after_failure`]): a failure of the connection (refused,
//!   reset, closed: no answer from orders) takes the replica out of rotation at once,
//!   without waiting for the next health check, and its answer is UNAVAILABLE (503).
//!   The call goes to another replica only if it is safe to repeat ([`Repeat`]):
//!   `GetOrder`, and `CreateOrder` with an idempotency key (orders answers the same
//!   order again); an unkeyed `CreateOrder` may have been stored before the
//!   connection broke, so it is never sent twice. Orders' own UNAVAILABLE answers
//!   (overloaded, database unavailable) also go to another replica when safe, without
//!   taking the replica out (its health says whether it is). Each replica is tried
//!   at most once per call, all within the call's one deadline.
//!   `gateway_orders_retries_total{call}` counts the second and later attempts.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc, PoisonError, RwLock,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use grpc_tls::{ClientTlsFiles, Reloading};
use ops_http::{CounterFamily, Gauge, GaugeFamily, Metrics};
use settings::{GrpcEndpoint, GrpcEndpoints};
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::{
    Code,
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::errors;

/// How often each replica's health is asked.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(1);

/// The service name our orders reports its health under.
pub const ORDERS_SERVICE: &str = "orders.v1.OrdersService";
/// The gRPC health name of the server as a whole, the only one the Go orders reports.
pub const SERVER_WIDE: &str = "";

/// One replica's channel: read anew for each call; with TLS it is rebuilt when the
/// TLS files change or on SIGHUP (calls in progress finish on the channel they began
/// on); in plaintext it never changes.
pub type OrdersChannel = Reloading<Channel>;

/// Whether a call may be sent again to another replica after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Repeating it changes nothing (a read, or a create orders deduplicates).
    Safe,
    /// It may have taken effect before the failure: sent once only.
    Once,
}

/// What a failed attempt means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The replica's connection failed: out of rotation until its health is SERVING.
    pub replica_down: bool,
    /// The call goes to another replica, if one is left.
    pub try_another: bool,
}

/// The retry rule; see the module docs. A status with a source came from the
/// client's transport (tonic keeps the error it was made from), not from an answer of
/// orders, whose statuses are read from the response and carry none.
pub fn after_failure(status: &tonic::Status, repeat: Repeat) -> Verdict {
    let code = errors::effective_code(status);
    let transport = std::error::Error::source(status).is_some();
    // CANCELLED from the transport: the connection died with the request in flight
    // (the gateway cancels none of its calls; its deadline is DEADLINE_EXCEEDED).
    let replica_down = transport
        && matches!(
            code,
            Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled
        );
    Verdict {
        replica_down,
        try_another: repeat == Repeat::Safe && (replica_down || code == Code::Unavailable),
    }
}

/// What the client sees of a failed attempt: a broken connection is UNAVAILABLE
/// (503, worth retrying), whatever code the transport gave it.
pub fn answer_of(status: tonic::Status, verdict: Verdict) -> tonic::Status {
    if verdict.replica_down && status.code() != Code::Unavailable {
        tracing::warn!(code = ?status.code(), message = status.message(), "orders connection failed");
        tonic::Status::unavailable(format!("connection to orders failed: {}", status.message()))
    } else {
        status
    }
}

/// The index of the replica to call next: the `turn`-th (modulo their number) of
/// the replicas `up` and not yet `tried`, so successive turns go round them evenly;
/// if none is up, of those not tried. `None`: no candidate left.
pub fn pick(up: &[bool], tried: &[bool], turn: usize) -> Option<usize> {
    let not_tried = |i: &usize| !tried.get(*i).copied().unwrap_or(false);
    let any_up = up.iter().any(|&up| up);
    let candidates: Vec<usize> = (0..up.len())
        .filter(not_tried)
        .filter(|&i| !any_up || up[i])
        .collect();
    match candidates.len() {
        0 => None,
        len => Some(candidates[turn % len]),
    }
}

/// One orders replica: its label, its channel and whether it is in rotation.
pub struct Replica {
    /// The configured address or, resolved, `scheme://ip:port`; the metric label.
    pub label: String,
    pub channel: OrdersChannel,
    up: AtomicBool,
    up_gauge: Gauge,
    /// Stops its health loop (and TLS watcher) once the replica leaves the set.
    _stop: DropGuard,
}

impl Replica {
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn set_up(&self, up: bool, why: &str) {
        let was = self.up.swap(up, Ordering::Relaxed);
        self.up_gauge.set(i64::from(up));
        if was != up {
            if up {
                tracing::info!(replica = %self.label, "orders replica back in rotation");
            } else {
                tracing::warn!(replica = %self.label, why, "orders replica out of rotation");
            }
        }
    }
}

/// How replicas' channels are built: plaintext or over the shared TLS files.
#[derive(Clone)]
struct ChannelMaker {
    tls: Option<ClientTlsFiles>,
    connect_timeout: Duration,
    shutdown: CancellationToken,
}

impl ChannelMaker {
    /// A lazily connected channel to `endpoint`, to `addr` when given (a resolved
    /// address, the endpoint's host still the name TLS verifies and calls carry).
    fn channel(
        &self,
        endpoint: &GrpcEndpoint,
        addr: Option<SocketAddr>,
        stop: &CancellationToken,
    ) -> Result<OrdersChannel, BuildError> {
        let uri = endpoint.as_uri().to_owned();
        if let Some(files) = &self.tls {
            return files
                .clone()
                .reloading_at(
                    "gateway -> orders gRPC client",
                    uri,
                    addr,
                    self.connect_timeout,
                    grpc_tls::ReloadOptions::default(),
                    stop.clone(),
                )
                .map_err(BuildError::Tls);
        }
        let fail = |source| BuildError::Endpoint {
            uri: endpoint.as_uri().to_owned(),
            source,
        };
        let target = match addr {
            None => Endpoint::from_shared(uri).map_err(fail)?,
            Some(addr) => {
                let origin =
                    uri.parse()
                        .map_err(|err: http::uri::InvalidUri| BuildError::Origin {
                            uri: endpoint.as_uri().to_owned(),
                            reason: err.to_string(),
                        })?;
                Endpoint::from_shared(format!("http://{addr}"))
                    .map_err(fail)?
                    .origin(origin)
            }
        };
        Ok(Reloading::fixed(
            target.connect_timeout(self.connect_timeout).connect_lazy(),
        ))
    }
}

/// Why a replica's channel could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("ORDERS_GRPC_ADDR {uri:?} cannot be used")]
    Endpoint {
        uri: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("ORDERS_GRPC_ADDR {uri:?} cannot be used: {reason}")]
    Origin { uri: String, reason: String },
    /// A TLS file cannot be used; the error names the variable and the file.
    #[error(transparent)]
    Tls(grpc_tls::TlsError),
}

/// The replicas and the state they share; see the module docs. Cheap to share
/// (`Arc`).
pub struct Pool {
    replicas: RwLock<Arc<Vec<Arc<Replica>>>>,
    next: AtomicUsize,
    timeout: Duration,
    maker: ChannelMaker,
    up_gauges: GaugeFamily<1>,
    retries: CounterFamily<1>,
}

impl Pool {
    /// The replicas of `endpoints` (resolved now and every `resolve_interval` when
    /// it is not zero), their health loops, and the resolver. A channel that cannot
    /// be built (a TLS file) stops the start. `timeout` bounds connects and health
    /// checks. Stops on `shutdown`.
    pub async fn start(
        endpoints: &GrpcEndpoints,
        tls: Option<ClientTlsFiles>,
        timeout: Duration,
        resolve_interval: Duration,
        metrics: &Metrics,
        shutdown: &CancellationToken,
    ) -> Result<Arc<Self>, BuildError> {
        let pool = Arc::new(Self {
            replicas: RwLock::new(Arc::new(Vec::new())),
            next: AtomicUsize::new(0),
            timeout,
            maker: ChannelMaker {
                tls,
                connect_timeout: timeout,
                shutdown: shutdown.clone(),
            },
            up_gauges: metrics.gauge_family(
                "gateway_orders_replica_up",
                "Whether an orders replica is in rotation (its gRPC health SERVING): 1 or 0.",
                ["replica"],
            ),
            retries: metrics.counter_family(
                "gateway_orders_retries_total",
                "Calls to orders sent again to another replica after a failure, by call.",
                ["call"],
            ),
        });
        let endpoints = endpoints.endpoints().to_vec();
        if resolve_interval.is_zero() {
            let wanted = endpoints
                .iter()
                .map(|endpoint| (endpoint.as_uri().to_owned(), (endpoint.clone(), None)))
                .collect();
            pool.update(wanted)?;
        } else {
            // The first resolution now, so the first calls have replicas; a name that
            // does not resolve yet (no ready pod) is not a start-up error.
            let mut last = BTreeMap::new();
            pool.update(resolve(&endpoints, &mut last).await)?;
            tokio::spawn(resolve_loop(
                pool.clone(),
                endpoints,
                last,
                resolve_interval,
                shutdown.clone(),
            ));
        }
        Ok(pool)
    }

    /// The replicas now (a snapshot).
    pub fn replicas(&self) -> Arc<Vec<Arc<Replica>>> {
        self.replicas
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The deadline of one call to orders (for all its attempts).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The replica for the next attempt of a call that has tried `tried` (labels).
    pub fn next_replica(&self, tried: &[String]) -> Option<Arc<Replica>> {
        let replicas = self.replicas();
        let up: Vec<bool> = replicas.iter().map(|replica| replica.is_up()).collect();
        let tried: Vec<bool> = replicas
            .iter()
            .map(|replica| tried.contains(&replica.label))
            .collect();
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let index = pick(&up, &tried, turn)?;
        replicas.get(index).cloned()
    }

    /// Takes `replica` out of rotation now (its connection failed).
    pub fn mark_down(&self, replica: &Replica, why: &str) {
        replica.set_up(false, why);
    }

    /// Counts an attempt after the first for `call`.
    pub fn count_retry(&self, call: &str) {
        self.retries.with_labels([call]).inc();
    }

    /// Replaces the replica set by `wanted` (label -> endpoint and address): kept
    /// replicas keep their channel and state, new ones start their health loop,
    /// removed ones stop theirs and their gauge reads 0.
    fn update(
        self: &Arc<Self>,
        wanted: BTreeMap<String, (GrpcEndpoint, Option<SocketAddr>)>,
    ) -> Result<(), BuildError> {
        let current = self.replicas();
        let mut next = Vec::with_capacity(wanted.len());
        for (label, (endpoint, addr)) in wanted {
            if let Some(kept) = current.iter().find(|replica| replica.label == label) {
                next.push(kept.clone());
                continue;
            }
            let stop = self.maker.shutdown.child_token();
            let channel = self.maker.channel(&endpoint, addr, &stop)?;
            let up_gauge = self.up_gauges.with_labels([&label]);
            // In rotation until its health says otherwise: the first calls need not
            // wait for the first check.
            up_gauge.set(1);
            let replica = Arc::new(Replica {
                label,
                channel,
                up: AtomicBool::new(true),
                up_gauge,
                _stop: stop.clone().drop_guard(),
            });
            tokio::spawn(health_loop(Arc::downgrade(&replica), self.timeout, stop));
            tracing::info!(replica = %replica.label, "orders replica added");
            next.push(replica);
        }
        for gone in current
            .iter()
            .filter(|old| !next.iter().any(|new| new.label == old.label))
        {
            tracing::info!(replica = %gone.label, "orders replica removed (no longer resolved)");
            gone.up_gauge.set(0);
        }
        *self
            .replicas
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
        Ok(())
    }
}

/// Each endpoint's addresses: an IP address is itself; a name is resolved, and one
/// that cannot be resolved now keeps its `last` addresses (a DNS hiccup must not
/// empty the rotation).
async fn resolve(
    endpoints: &[GrpcEndpoint],
    last: &mut BTreeMap<String, Vec<SocketAddr>>,
) -> BTreeMap<String, (GrpcEndpoint, Option<SocketAddr>)> {
    let mut wanted = BTreeMap::new();
    for endpoint in endpoints {
        if endpoint.is_ip() {
            wanted.insert(endpoint.as_uri().to_owned(), (endpoint.clone(), None));
            continue;
        }
        let (host, port) = endpoint.host_port();
        match tokio::net::lookup_host((host, port)).await {
            Ok(addrs) => {
                let mut addrs: Vec<SocketAddr> = addrs.collect();
                addrs.sort();
                addrs.dedup();
                last.insert(endpoint.as_uri().to_owned(), addrs);
            }
            Err(err) => {
                tracing::warn!(
                    address = endpoint.as_uri(),
                    error = %err,
                    "cannot resolve ORDERS_GRPC_ADDR; its last addresses stay in use"
                );
            }
        }
        for addr in last.get(endpoint.as_uri()).into_iter().flatten() {
            let label = format!("{}://{addr}", endpoint.scheme());
            wanted.insert(label, (endpoint.clone(), Some(*addr)));
        }
    }
    wanted
}

async fn resolve_loop(
    pool: Arc<Pool>,
    endpoints: Vec<GrpcEndpoint>,
    mut last: BTreeMap<String, Vec<SocketAddr>>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let wanted = resolve(&endpoints, &mut last).await;
        if let Err(err) = pool.update(wanted) {
            // Only a TLS file can fail here; its watcher already logs it too.
            tracing::error!(error = %grpc_tls::error_chain(&err), "cannot add the resolved orders replicas");
        }
    }
}

/// Checks a replica's health every [`HEALTH_INTERVAL`] until it is removed or the
/// gateway stops.
async fn health_loop(
    replica: std::sync::Weak<Replica>,
    timeout: Duration,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(HEALTH_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let Some(replica) = replica.upgrade() else {
            return;
        };
        let checked = tokio::select! {
            () = stop.cancelled() => return,
            checked = check_health(&replica.channel, timeout) => checked,
        };
        match checked {
            Ok(()) => replica.set_up(true, "SERVING"),
            Err(reason) => replica.set_up(false, &reason),
        }
    }
}

/// Whether orders' `grpc.health.v1.Health/Check` on `channel` says SERVING, within
/// `timeout`; the error says why not.
pub async fn check_health(channel: &OrdersChannel, timeout: Duration) -> Result<(), String> {
    let answer = tokio::time::timeout(timeout, serving_status(channel, timeout)).await;
    match answer {
        Ok(Ok(ServingStatus::Serving)) => Ok(()),
        Ok(Ok(other)) => Err(format!("orders reports {}", other.as_str_name())),
        Ok(Err(status)) if errors::effective_code(&status) != Code::DeadlineExceeded => {
            Err(format!(
                "orders health check failed: {}: {}",
                errors::code_name(status.code()),
                status.message()
            ))
        }
        Ok(Err(_)) | Err(_) => Err(format!(
            "orders health check got no answer within {timeout:?}"
        )),
    }
}

/// Orders' health status for [`ORDERS_SERVICE`] or, only if orders has no status
/// under that name (NOT_FOUND), for the server as a whole ([`SERVER_WIDE`]): the Go
/// orders registers only the server-wide name, ours both. A NOT_SERVING, an error or
/// no answer is not asked again under the other name.
async fn serving_status(
    channel: &OrdersChannel,
    timeout: Duration,
) -> Result<ServingStatus, tonic::Status> {
    // The channel the order calls use, so the check tests their path (TLS too).
    let mut client = HealthClient::new(channel.current());
    // Probed often, so this stays cheap: one call in front of our orders; in front of
    // the Go one a second, after a NOT_FOUND that orders answers at once, on the same
    // connection and within the same deadline.
    match health_check(&mut client, ORDERS_SERVICE, timeout).await {
        Err(status) if status.code() == Code::NotFound => {
            health_check(&mut client, SERVER_WIDE, timeout).await
        }
        other => other,
    }
}

/// One `Health/Check` for `service`, with the deadline sent as `grpc-timeout`.
async fn health_check(
    client: &mut HealthClient<Channel>,
    service: &str,
    timeout: Duration,
) -> Result<ServingStatus, tonic::Status> {
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: service.to_owned(),
    });
    request.set_timeout(timeout);
    let response = client.check(request).await?;
    Ok(response.into_inner().status())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A status as the transport makes it: with the error it came from as source.
    fn transport(code: Code) -> tonic::Status {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let mut status = tonic::Status::from_error(Box::new(io));
        if status.code() != code {
            status = tonic::Status::new(code, "transport error");
            status.set_source(Arc::new(std::io::Error::other("broken")));
        }
        status
    }

    #[test]
    fn a_refused_connection_as_tonic_reports_it_takes_the_replica_out() {
        // A real channel to a port nothing listens on: the status tonic makes.
        let port = testkit::free_port();
        let status = testkit::runtime().block_on(async {
            let channel = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
                .unwrap()
                .connect_lazy();
            HealthClient::new(channel)
                .check(HealthCheckRequest::default())
                .await
                .unwrap_err()
        });
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        let verdict = after_failure(&status, Repeat::Once);
        assert_eq!(
            verdict,
            Verdict {
                replica_down: true,
                try_another: false
            },
            "{status:?}"
        );
    }

    #[test]
    fn round_robin_over_the_replicas_up_skipping_the_tried() {
        let up = [true, false, true];
        let none = [false; 3];
        // Successive turns alternate between 0 and 2, never the replica down.
        let picks: Vec<_> = (0..6).map(|turn| pick(&up, &none, turn)).collect();
        assert_eq!(
            picks,
            [Some(0), Some(2), Some(0), Some(2), Some(0), Some(2)]
        );
        // A retry goes elsewhere.
        assert_eq!(pick(&up, &[true, false, false], 0), Some(2));
        // The only replica up was tried: no other is picked while one is up, so a
        // call is not sent to a replica known down...
        assert_eq!(pick(&[true, false], &[true, false], 0), None);
        // ...unless none is up (unknown health, or all down): then any not tried.
        assert_eq!(pick(&[false, false], &[false, false], 1), Some(1));
        assert_eq!(pick(&[false, false], &[false, true], 1), Some(0));
        assert_eq!(pick(&[false], &[true], 0), None);
        assert_eq!(pick(&[], &[], 0), None);
    }

    #[test]
    fn only_safe_calls_go_to_another_replica() {
        let refused = transport(Code::Unavailable);
        let reset = transport(Code::Unknown);
        // A SIGKILLed replica's connection can end a call in flight as CANCELLED.
        let killed = transport(Code::Cancelled);
        for status in [&refused, &reset, &killed] {
            assert_eq!(
                after_failure(status, Repeat::Safe),
                Verdict {
                    replica_down: true,
                    try_another: true
                },
                "{status:?}"
            );
            // An unkeyed create may have been stored: it fails, never sent twice.
            assert_eq!(
                after_failure(status, Repeat::Once),
                Verdict {
                    replica_down: true,
                    try_another: false
                },
                "{status:?}"
            );
            let answer = answer_of(
                transport(status.code()),
                after_failure(status, Repeat::Once),
            );
            assert_eq!(answer.code(), Code::Unavailable);
        }
        // orders' own UNAVAILABLE (overloaded, database down): another replica for
        // a safe call, the replica stays (its health decides).
        let overloaded = tonic::Status::unavailable("orders overloaded: 256 calls in flight");
        assert_eq!(
            after_failure(&overloaded, Repeat::Safe),
            Verdict {
                replica_down: false,
                try_another: true
            }
        );
        assert!(!after_failure(&overloaded, Repeat::Once).try_another);
        // An answer is an answer: not found, invalid, a deadline: never repeated.
        for status in [
            tonic::Status::not_found("order 7 not found"),
            tonic::Status::invalid_argument("user_id must be positive"),
            tonic::Status::internal("boom"),
            tonic::Status::cancelled("Timeout expired"),
            tonic::Status::deadline_exceeded("late"),
        ] {
            assert_eq!(
                after_failure(&status, Repeat::Safe),
                Verdict {
                    replica_down: false,
                    try_another: false
                },
                "{status:?}"
            );
        }
    }
}
