//! End-to-end benchmark: drives orders through the gateway and measures, in one run
//! on this machine,
//! - the reference limit: PostgreSQL's own rate for the create-order statements
//!   (pgbench running the same INSERTs on a scratch copy of the orders schema);
//! - the gateway's sustained `POST /orders` rate (closed loop, `--concurrency`);
//! - end-to-end throughput, order accepted -> notification in Redis, for that burst;
//! - end-to-end latency p50/p99/max at an offered rate (`--paced-rate`: orders/s,
//!   default 500, or `half` for half the gateway rate the run's burst just measured).
//!   Then where that latency goes, stage by stage, from each order's timestamps in
//!   both databases, and second by second (see `stages.rs`); `--settle-seconds N`
//!   leaves N idle seconds after the burst first.
//!
//! - with `--batch-max 1,64`: every run once per `ORDERS_BATCH_MAX` value (orders'
//!   group commit; 1 = one transaction per order, the default 64), side by side in the
//!   table; e.g. `--brokers devbroker --batch-max 1,64 --paced-rate half`.
//!
//! - the CPU split of the burst: PostgreSQL, the services, the load generator, Redis
//!   and Apache Kafka's JVM, in cores (see `cpu.rs`).
//!
//! - with `--overload-concurrency N`: an overload phase after the paced one, N clients
//!   in a closed loop against a second gateway whose `GATEWAY_MAX_IN_FLIGHT` is
//!   `--overload-max-in-flight` (default 32), for `--overload-seconds`: accepted/s,
//!   shed (503)/s, p50/p99 of the accepted and of the shed requests' latency, and
//!   whether every accepted order reached Redis.
//!
//! - with `--idempotency-keys`: a second burst of the same size right after the first,
//!   every request with its own `Idempotency-Key` (unique per request, so every one
//!   creates an order), and the gateway rate with keys beside the rate without: the
//!   cost of keys.
//!
//! The burst and the paced phase run once per broker in `--brokers` (default: devbroker
//! and Apache Kafka 3.9, one after the other, fresh databases and topics each) and Kafka
//! client in `--clients` (default: `kafka`; `kafka,rdkafka` for both), skipping the pairs
//! that cannot work (rdkafka on devbroker, the kafka crate on Apache Kafka 4.x), and a
//! table at the end puts them side by side with pgbench's reference. One run comparing
//! the clients: `--brokers kafka-3.9,kafka-4 --clients kafka,rdkafka` (the kafka crate
//! and rdkafka on 3.9, rdkafka on 4.x).
//!
//! Everything runs here: the four services in this process (release build), the
//! broker (devbroker in this process, or Apache Kafka's JVM from the jars
//! `scripts/fetch-kafka.sh` fetched), the local PostgreSQL and Redis. Arrival times
//! come from Redis keyspace notifications, so nothing polls. Each Apache Kafka broker is
//! a fresh JVM: before anything is measured it gets `--broker-warmup-seconds` (30) of
//! paced load, by which its JIT compiler has settled (measured with `perf`: 15-20% of
//! the machine for the first ~25 s of load, under 2% after).
//!
//! `cargo run --release -p stack --example bench -- [--dump-orders FILE] [--broker-warmup-seconds 30] [--orders 20000] [--concurrency 64] [--brokers devbroker,kafka-3.9,kafka-4] [--clients kafka,rdkafka] [--batch-max 1,64] [--paced-rate 500|half] [--settle-seconds 0] [--idempotency-keys] [--overload-concurrency 1024 [--overload-max-in-flight 32] [--overload-seconds 10]]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashMap,
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

mod cpu;
mod stages;

use clap::Parser;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
struct Args {
    /// Orders in the closed-loop burst.
    #[arg(long, default_value_t = 20_000)]
    orders: usize,
    /// Requests in flight during the burst.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Offered rate (orders/s) of the latency phase: a number, or `half` for half
    /// the gateway rate the same run's burst just measured.
    #[arg(long, default_value = "500")]
    paced_rate: PacedRate,
    /// Length of the latency phase.
    #[arg(long, default_value_t = 10)]
    paced_seconds: u64,
    /// Idle seconds between the burst and the latency phase, so the latter measures a
    /// steady state rather than the burst's aftermath (autovacuum, checkpoints, the
    /// orders' status backlog). 0 (the default) starts it at once.
    #[arg(long, default_value_t = 0)]
    settle_seconds: u64,
    /// pgbench clients and duration.
    #[arg(long, default_value_t = 16)]
    pgbench_clients: u32,
    #[arg(long, default_value_t = 10)]
    pgbench_seconds: u32,
    /// Brokers to run the phases on, in order: `devbroker`, `kafka-3.9`, `kafka-4`.
    #[arg(long, value_delimiter = ',', default_value = "devbroker,kafka-3.9")]
    brokers: Vec<BrokerChoice>,
    /// Kafka clients (`KAFKA_CLIENT`) to run each broker with, in order: `kafka`,
    /// `rdkafka`. Pairs that cannot work are skipped.
    #[arg(long, value_delimiter = ',', default_value = "kafka")]
    clients: Vec<settings::KafkaClient>,
    /// Clients of the overload phase (closed loop, no pause after a 503); the phase
    /// runs only when this is given, e.g. `--overload-concurrency 1024`.
    #[arg(long)]
    overload_concurrency: Option<usize>,
    /// `GATEWAY_MAX_IN_FLIGHT` of the overload phase's gateway.
    #[arg(long, default_value_t = 32)]
    overload_max_in_flight: u32,
    /// Length of the overload phase.
    #[arg(long, default_value_t = 10)]
    overload_seconds: u64,
    /// Also run the burst with a unique `Idempotency-Key` on every request, after the
    /// burst without, and show both rates side by side.
    #[arg(long)]
    idempotency_keys: bool,
    /// `ORDERS_TRACK_PAYMENTS` values to run each broker and client with, in order
    /// (`on`, `off`): `on,off` shows the cost of orders following payment results.
    #[arg(long, value_delimiter = ',', default_value = "on")]
    track_payments: Vec<Switch>,
    /// `ORDERS_BATCH_MAX` values (group commit; 1 = one transaction per order) to run
    /// each broker and client with, in order: `1,64` compares batching off and on.
    #[arg(long, value_delimiter = ',', default_value = "64")]
    batch_max: Vec<u32>,
    /// Seconds of paced load (at `--broker-warmup-rate`) an Apache Kafka broker gets
    /// before anything is measured: each run starts a fresh JVM, whose JIT compiler
    /// otherwise takes 15-20% of the machine for the first ~25 s of load (a production
    /// broker has long compiled its hot paths). 0 measures a cold broker.
    #[arg(long, default_value_t = 30)]
    broker_warmup_seconds: u64,
    /// Orders/s of the broker warm-up (at least 1).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    broker_warmup_rate: u64,
    /// Appends every paced order's times to this file, to see which hops a slow
    /// order's time went to and when (see `stages.rs`).
    #[arg(long)]
    dump_orders: Option<std::path::PathBuf>,
}

/// The latency phase's offered rate (`--paced-rate`).
#[derive(Debug, Clone, Copy)]
enum PacedRate {
    /// This many orders/s.
    Fixed(u64),
    /// Half the gateway rate of the run's burst.
    Half,
}

impl PacedRate {
    /// The rate to offer after a burst measured at `gateway_rate` orders/s.
    fn resolve(self, gateway_rate: f64) -> u64 {
        match self {
            PacedRate::Fixed(rate) => rate,
            PacedRate::Half => ((gateway_rate / 2.0) as u64).max(1),
        }
    }
}

impl std::str::FromStr for PacedRate {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value == "half" {
            return Ok(PacedRate::Half);
        }
        match value.parse::<u64>() {
            Ok(rate) if rate > 0 => Ok(PacedRate::Fixed(rate)),
            _ => Err(format!(
                "expected a positive number of orders/s or `half`, got {value:?}"
            )),
        }
    }
}

/// An on/off setting as the bench's flags spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Switch {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum BrokerChoice {
    /// The project's devbroker, in this process.
    Devbroker,
    /// Apache Kafka 3.9 (single-node KRaft JVM, testkit::KafkaBroker).
    #[value(name = "kafka-3.9")]
    Kafka39,
    /// Apache Kafka 4.x (rdkafka only: the kafka crate cannot use it).
    #[value(name = "kafka-4")]
    Kafka4,
}

impl BrokerChoice {
    /// Whether `client` can use this broker.
    fn serves(self, client: settings::KafkaClient) -> bool {
        !matches!(
            (self, client),
            (BrokerChoice::Devbroker, settings::KafkaClient::Rdkafka)
                | (BrokerChoice::Kafka4, settings::KafkaClient::Kafka)
        )
    }
}

/// One broker's figures.
struct Figures {
    broker: String,
    gateway_rate: f64,
    /// The burst's gateway rate with a key on every request (`--idempotency-keys`).
    keyed_gateway_rate: Option<f64>,
    e2e_rate: f64,
    notified: usize,
    /// The latency phase's offered rate, orders/s.
    paced_rate: u64,
    backlog_secs: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
    /// Who spent the CPU from the burst's first request to its last notification.
    burst_cpu: String,
}

/// The broker a run talks to; Apache Kafka's JVM is stopped when this is dropped.
enum BenchBroker {
    Devbroker(devbroker::RunningBroker),
    Kafka(testkit::KafkaBroker),
}

/// Arrival instant of each order's notification.
type Arrivals = Arc<Mutex<HashMap<i64, Instant>>>;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // The load generator runs on its own named threads so that its CPU is told
    // apart from the services' in the CPU split.
    let load = tokio::runtime::Builder::new_multi_thread()
        .thread_name(cpu::LOAD_THREAD_NAME)
        .enable_all()
        .build()?;

    println!(
        "== reference: pgbench, the create-order statements, {} clients, {} s",
        args.pgbench_clients, args.pgbench_seconds
    );
    let pgbench_tps = pgbench_reference(&args)?;
    println!("pgbench create-order transactions/s: {pgbench_tps:.0}");

    let mut all = Vec::new();
    let mut runs = Vec::new();
    for broker in &args.brokers {
        for client in &args.clients {
            for track in &args.track_payments {
                for batch_max in &args.batch_max {
                    runs.push((*broker, *client, *track == Switch::On, *batch_max));
                }
            }
        }
    }
    for (choice, client, track_payments, batch_max) in runs {
        if !choice.serves(client) {
            println!("== skipped: {choice:?} with the {client} client (cannot work)");
            continue;
        }
        // Apache Kafka is started (a JVM, seconds) and its topics created before the
        // clock starts; the databases are created and dropped outside the runtime:
        // the blocking postgres client that drops them refuses to run inside one.
        let line = match choice {
            BrokerChoice::Devbroker => None,
            BrokerChoice::Kafka39 => Some(testkit::KafkaLine::V3_9),
            BrokerChoice::Kafka4 => Some(testkit::KafkaLine::V4),
        };
        let kafka = line.map(|line| {
            let kafka = testkit::KafkaBroker::start(line);
            for topic in ["order-topic", "status-topic"] {
                kafka.create_topic(topic, 3);
            }
            kafka
        });
        let orders_db = testkit::TestDatabase::new("bench_orders");
        let payments_db = testkit::TestDatabase::new("bench_payments");
        let run = Run {
            client,
            track_payments,
            batch_max,
        };
        let figures = runtime.block_on(drive(
            &args,
            load.handle(),
            kafka,
            run,
            &orders_db,
            &payments_db,
        ))?;
        all.push(figures);
    }
    drop(runtime);
    drop(load);

    println!("== side by side (pgbench reference: {pgbench_tps:.0} create-order transactions/s)");
    println!(
        "| broker, client, orders, ORDERS_BATCH_MAX | gateway orders/s (x pgbench) | with Idempotency-Key orders/s (cost) | end to end orders/s (x pgbench) | backlog after burst | paced orders/s: p50 / p99 / max | CPU in the burst, cores |"
    );
    println!("|---|---|---|---|---|---|---|");
    for f in &all {
        let keyed = f.keyed_gateway_rate.map_or_else(
            || "not run (--idempotency-keys)".to_owned(),
            |keyed| {
                format!(
                    "{keyed:.0} ({:+.1}%)",
                    (keyed / f.gateway_rate - 1.0) * 100.0
                )
            },
        );
        println!(
            "| {} | {:.0} ({:.2}) | {} | {:.0} ({:.2}; {} notified) | {:+.3} s | {}/s: {:.1} / {:.1} / {:.1} ms | {} |",
            f.broker,
            f.gateway_rate,
            f.gateway_rate / pgbench_tps,
            keyed,
            f.e2e_rate,
            f.e2e_rate / pgbench_tps,
            f.notified,
            f.backlog_secs,
            f.paced_rate,
            f.p50.as_secs_f64() * 1e3,
            f.p99.as_secs_f64() * 1e3,
            f.max.as_secs_f64() * 1e3,
            f.burst_cpu
        );
    }
    println!(
        "Go platform reference: its relay sends one outbox event per 1 s tick, so at most 1 order/s end to end"
    );
    Ok(())
}

/// Runs the orders service's own statement shape under pgbench on a scratch database.
fn pgbench_reference(args: &Args) -> anyhow::Result<f64> {
    let db = testkit::TestDatabase::new("bench_pgbench");
    let options = pgsetup::PoolOptions {
        max_size: 1,
        connect_timeout: Duration::from_secs(5),
    };
    pgsetup::prepare(&db.dsn(), orders::schema(), options)?;
    // One order per transaction, the design group commit replaced (and the
    // reference every earlier run used): reserve ids, then one statement inserting
    // the order, its item and the outbox row.
    let script = r#"\set user_id random(1, 100000)
SELECT nextval('orders_order_id_seq') AS order_id, nextval('events_event_id_seq') AS event_id \gset
WITH new_order AS (INSERT INTO orders (order_id, user_id, status, total_amount, created_at, updated_at) VALUES (:order_id, :user_id, 'new', 300, now(), now())), new_items AS (INSERT INTO order_items (order_id, position, product_id, quantity, price) SELECT :order_id, item.position, item.product_id, item.quantity, item.price FROM unnest(ARRAY[7]::bigint[], ARRAY[2]::int[], ARRAY[150]::bigint[]) WITH ORDINALITY AS item (product_id, quantity, price, position)) INSERT INTO events (event_id, topic, message_key, payload) VALUES (:event_id, 'order-topic', :order_id, '{"event_id":1,"order_id":1,"user_id":1,"total_amount":300,"created_at":"2026-01-01T00:00:00Z"}'::json);
"#;
    let script_path = std::env::temp_dir().join(format!("{}.sql", db.name));
    std::fs::write(&script_path, script)?;
    let base = testkit::pg_base_url();
    let output = Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-j", "2"])
        .arg("-c")
        .arg(args.pgbench_clients.to_string())
        .arg("-T")
        .arg(args.pgbench_seconds.to_string())
        .arg("-f")
        .arg(&script_path)
        .arg(format!("{base}/{}", db.name))
        .output()
        .map_err(|err| {
            anyhow::anyhow!("cannot run pgbench (Debian package postgresql-client): {err}")
        })?;
    let _ = std::fs::remove_file(&script_path);
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "pgbench failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|tps| tps.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no tps line in pgbench output: {stdout}"))
}

/// How one run's services are set up, beside the broker.
#[derive(Debug, Clone, Copy)]
struct Run {
    client: settings::KafkaClient,
    /// `ORDERS_TRACK_PAYMENTS`.
    track_payments: bool,
    /// `ORDERS_BATCH_MAX`.
    batch_max: u32,
}

/// Starts the platform on `kafka` (or on an in-process devbroker when `None`), runs
/// the burst and the paced phase, stops everything and returns the figures.
async fn drive(
    args: &Args,
    load: &tokio::runtime::Handle,
    kafka: Option<testkit::KafkaBroker>,
    run: Run,
    orders_db: &testkit::TestDatabase,
    payments_db: &testkit::TestDatabase,
) -> anyhow::Result<Figures> {
    let Run {
        client,
        track_payments,
        batch_max,
    } = run;
    let tracking = if track_payments {
        "orders track payments"
    } else {
        "ORDERS_TRACK_PAYMENTS=false"
    };
    let prefix = format!("{}:", testkit::unique_name("bench"));
    let shutdown = CancellationToken::new();
    // A JVM broker to warm up (devbroker has no JIT).
    let kafka_started = kafka.is_some();

    let mut config = stack::PlatformConfig::local(
        orders_db.dsn(),
        payments_db.dsn(),
        settings::KafkaConnection {
            client,
            ..Default::default()
        },
        prefix.clone(),
    );
    config.orders.orders_track_payments = track_payments;
    config.orders.orders_batch_max = batch_max;
    let broker = match kafka {
        Some(kafka) => {
            config.use_brokers(kafka.bootstrap().parse()?);
            BenchBroker::Kafka(kafka)
        }
        None => BenchBroker::Devbroker(
            stack::start_devbroker(&mut config, stack::DevbrokerOptions::default()).await?,
        ),
    };
    let broker_name = match &broker {
        BenchBroker::Devbroker(_) => {
            format!("devbroker, {client}, {tracking}, ORDERS_BATCH_MAX={batch_max}")
        }
        BenchBroker::Kafka(k) => format!(
            "Apache Kafka {}, {client}, {tracking}, ORDERS_BATCH_MAX={batch_max}",
            k.release()
        ),
    };
    println!(
        "==== on {broker_name} ({})",
        config.orders.kafka.brokers.hosts().join(",")
    );
    let platform = stack::Platform::start(config, &shutdown).await?;
    platform.wait_ready(Duration::from_secs(60)).await?;
    let load = LoadGenerator {
        runtime: load.clone(),
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(args.concurrency)
            .build()?,
        url: platform.orders_url(),
    };

    let arrivals: Arrivals = Arc::default();
    let listener = spawn_arrival_listener(&prefix, arrivals.clone())?;

    // Warm-up: connections, prepared plans, consumer positions.
    load.burst(200, 16, None).await?;
    wait_for_arrivals(&arrivals, 200, Duration::from_secs(60)).await;
    arrivals.lock().unwrap().clear();
    if kafka_started && args.broker_warmup_seconds > 0 {
        println!(
            "== broker warm-up (not measured): {} orders/s for {} s, so the JVM has compiled its hot paths",
            args.broker_warmup_rate, args.broker_warmup_seconds
        );
        let warmup = load
            .paced(args.broker_warmup_rate, args.broker_warmup_seconds)
            .await?;
        wait_for_arrivals(&arrivals, warmup.len(), Duration::from_secs(120)).await;
        arrivals.lock().unwrap().clear();
    }

    println!(
        "== burst: {} orders through the gateway, {} in flight",
        args.orders, args.concurrency
    );
    let cpu_before = cpu::CpuSample::take();
    let start = Instant::now();
    let accepted = load.burst(args.orders, args.concurrency, None).await?;
    let gateway_secs = start.elapsed().as_secs_f64();
    let gateway_rate = args.orders as f64 / gateway_secs;
    let settled = wait_for_arrivals(&arrivals, args.orders, Duration::from_secs(300)).await;
    let last_arrival = {
        let arrivals = arrivals.lock().unwrap();
        accepted
            .keys()
            .filter_map(|id| arrivals.get(id))
            .max()
            .copied()
    };
    let burst_cpu = cpu_before.split_until(&cpu::CpuSample::take());
    let e2e_secs = last_arrival.map_or(f64::NAN, |last| (last - start).as_secs_f64());
    let backlog_after_burst = last_arrival.map_or(f64::NAN, |last| {
        (last - (start + Duration::from_secs_f64(gateway_secs))).as_secs_f64()
    });
    println!("gateway POST /orders: {gateway_rate:.0} orders/s");
    println!(
        "end to end: {} of {} notified; {:.0} orders/s (first request -> last notification); last notification {:+.3} s after the last response",
        settled,
        args.orders,
        args.orders as f64 / e2e_secs,
        backlog_after_burst
    );
    println!("CPU from the first request to the last notification, cores: {burst_cpu}");
    arrivals.lock().unwrap().clear();

    let keyed_gateway_rate = if args.idempotency_keys {
        println!(
            "== burst with keys: {} orders through the gateway, {} in flight, a unique Idempotency-Key on each",
            args.orders, args.concurrency
        );
        let keys = testkit::unique_name("bench-key");
        let start = Instant::now();
        let accepted = load
            .burst(args.orders, args.concurrency, Some(keys))
            .await?;
        let rate = args.orders as f64 / start.elapsed().as_secs_f64();
        println!(
            "gateway POST /orders with Idempotency-Key: {rate:.0} orders/s ({:+.1}% against {gateway_rate:.0} without)",
            (rate / gateway_rate - 1.0) * 100.0
        );
        let notified = wait_for_arrivals(&arrivals, accepted.len(), Duration::from_secs(300)).await;
        println!("with keys: {notified} of {} notified", accepted.len());
        arrivals.lock().unwrap().clear();
        Some(rate)
    } else {
        None
    };

    let paced_rate = args.paced_rate.resolve(gateway_rate);
    if args.settle_seconds > 0 {
        println!(
            "== settling: {} s idle after the burst",
            args.settle_seconds
        );
        tokio::time::sleep(Duration::from_secs(args.settle_seconds)).await;
    }
    println!(
        "== paced: {paced_rate} orders/s ({:?}) for {} s, latency accepted -> notification in Redis",
        args.paced_rate, args.paced_seconds
    );
    let clock = stages::Clock::start();
    let accepted = load.paced(paced_rate, args.paced_seconds).await?;
    wait_for_arrivals(&arrivals, accepted.len(), Duration::from_secs(120)).await;
    let arrived = arrivals.lock().unwrap().clone();
    let mut latencies: Vec<Duration> = accepted
        .iter()
        .filter_map(|(id, sent)| {
            arrived
                .get(id)
                .map(|at| at.saturating_duration_since(sent.accepted))
        })
        .collect();
    latencies.sort();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "end-to-end latency at {} orders/s ({} orders): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        paced_rate,
        latencies.len(),
        pick(0.50).as_secs_f64() * 1e3,
        pick(0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    stages::print_by_second(&accepted, &arrived);
    stages::print(
        clock,
        &orders_db.dsn(),
        &payments_db.dsn(),
        &accepted,
        &arrived,
        args.dump_orders
            .as_deref()
            .map(|path| (path, broker_name.as_str())),
    )
    .await;
    let (orders_dsn, payments_dsn) = (orders_db.dsn(), payments_db.dsn());
    let mut tables = vec![
        ("orders' outbox events", orders_dsn.as_str(), "events"),
        ("payments' outbox events", payments_dsn.as_str(), "events"),
    ];
    if track_payments {
        tables.insert(0, ("orders", orders_dsn.as_str(), "orders"));
    }
    stages::print_hot_updates(&tables).await;
    if let Some(concurrency) = args.overload_concurrency {
        arrivals.lock().unwrap().clear();
        overload(
            args,
            concurrency,
            platform.orders.grpc_addr,
            &arrivals,
            &shutdown,
        )
        .await?;
    }
    shutdown.cancel();
    platform.wait(&shutdown).await;
    if let BenchBroker::Devbroker(broker) = broker {
        broker.shutdown().await;
    } else {
        // The JVM is killed on drop, which blocks: off the runtime's threads.
        tokio::task::spawn_blocking(move || drop(broker)).await?;
    }
    listener.stop();
    Ok(Figures {
        broker: broker_name,
        gateway_rate,
        keyed_gateway_rate,
        e2e_rate: args.orders as f64 / e2e_secs,
        notified: settled,
        paced_rate,
        backlog_secs: backlog_after_burst,
        p50: pick(0.50),
        p99: pick(0.99),
        max: latencies.last().copied().unwrap_or_default(),
        burst_cpu: burst_cpu.to_string(),
    })
}

/// The overload phase: a second gateway (bound `--overload-max-in-flight`) in front of
/// the same orders, `concurrency` clients in a closed loop for `--overload-seconds`.
async fn overload(
    args: &Args,
    concurrency: usize,
    orders_grpc: std::net::SocketAddr,
    arrivals: &Arrivals,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    println!(
        "== overload: {concurrency} clients for {} s against a gateway with GATEWAY_MAX_IN_FLIGHT={}",
        args.overload_seconds, args.overload_max_in_flight
    );
    let stop = shutdown.child_token();
    let gateway = gateway::start(
        gateway::Config {
            gateway_http_addr: "127.0.0.1:0".parse()?,
            orders_grpc_addr: format!("http://{orders_grpc}").parse()?,
            gateway_max_in_flight: args.overload_max_in_flight,
            ..Default::default()
        },
        stop.clone(),
    )
    .await?;
    let url = format!("http://{}/orders", gateway.http_addr);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let until = Instant::now() + Duration::from_secs(args.overload_seconds);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            // (accepted order id and latency, shed latencies, other failures)
            let mut accepted: Vec<(i64, Duration)> = Vec::new();
            let mut shed: Vec<Duration> = Vec::new();
            let mut failed = 0usize;
            while Instant::now() < until {
                let body = serde_json::json!({"user_id": 1 + worker as i64, "items": [{"product_id": 7, "quantity": 2, "price": 150}]});
                let sent = Instant::now();
                match client.post(&url).json(&body).send().await {
                    Ok(response) if response.status().is_success() => {
                        let json: serde_json::Value = response.json().await.unwrap_or_default();
                        match json["order_id"].as_i64() {
                            Some(id) => accepted.push((id, sent.elapsed())),
                            None => failed += 1,
                        }
                    }
                    Ok(response) if response.status().as_u16() == 503 => {
                        let _ = response.bytes().await;
                        shed.push(sent.elapsed());
                    }
                    Ok(_) | Err(_) => failed += 1,
                }
            }
            (accepted, shed, failed)
        }));
    }
    let (mut accepted, mut shed, mut failed) = (Vec::new(), Vec::new(), 0);
    for task in tasks {
        let (a, s, f) = task.await?;
        accepted.extend(a);
        shed.extend(s);
        failed += f;
    }
    let secs = start.elapsed().as_secs_f64();
    stop.cancel();
    gateway.wait().await?;
    let mut accepted_latency: Vec<Duration> = accepted.iter().map(|(_, l)| *l).collect();
    accepted_latency.sort();
    shed.sort();
    let quantile = |sorted: &[Duration], q: f64| {
        sorted
            .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
            .as_secs_f64()
            * 1e3
    };
    println!(
        "overload: accepted {:.0}/s ({}), shed (503) {:.0}/s ({}), other failures {}",
        accepted.len() as f64 / secs,
        accepted.len(),
        shed.len() as f64 / secs,
        shed.len(),
        failed
    );
    println!(
        "overload latency: accepted p50 {:.1} ms, p99 {:.1} ms; shed p50 {:.1} ms, p99 {:.1} ms",
        quantile(&accepted_latency, 0.50),
        quantile(&accepted_latency, 0.99),
        quantile(&shed, 0.50),
        quantile(&shed, 0.99)
    );
    let ids: Vec<i64> = accepted.iter().map(|(id, _)| *id).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let notified = loop {
        let seen = {
            let arrivals = arrivals.lock().unwrap();
            ids.iter().filter(|id| arrivals.contains_key(id)).count()
        };
        if seen == ids.len() || Instant::now() > deadline {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!(
        "overload: {notified} of {} accepted orders notified in Redis",
        ids.len()
    );
    Ok(())
}

/// The load generator: `POST /orders` to `url` from the tasks of its own runtime
/// (`runtime`, threads named [`cpu::LOAD_THREAD_NAME`]).
struct LoadGenerator {
    runtime: tokio::runtime::Handle,
    client: reqwest::Client,
    url: String,
}

impl LoadGenerator {
    /// [`burst`] on the load generator's threads.
    async fn burst(
        &self,
        count: usize,
        concurrency: usize,
        keys: Option<String>,
    ) -> anyhow::Result<HashMap<i64, Instant>> {
        let (client, url) = (self.client.clone(), self.url.clone());
        self.runtime
            .spawn(burst(client, url, count, concurrency, keys))
            .await?
    }

    /// [`paced`] on the load generator's threads.
    async fn paced(&self, rate: u64, seconds: u64) -> anyhow::Result<HashMap<i64, stages::Sent>> {
        let (client, url) = (self.client.clone(), self.url.clone());
        self.runtime
            .spawn(paced(client, url, rate, seconds))
            .await?
    }
}

/// One `POST /orders`, with `key` as its `Idempotency-Key` if given.
async fn place(
    client: &reqwest::Client,
    url: &str,
    user_id: i64,
    key: Option<String>,
) -> anyhow::Result<i64> {
    let body = serde_json::json!({"user_id": user_id, "items": [{"product_id": 7, "quantity": 2, "price": 150}]});
    let mut request = client.post(url).json(&body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await?;
    anyhow::ensure!(
        response.status().is_success(),
        "POST /orders answered {}",
        response.status()
    );
    let json: serde_json::Value = response.json().await?;
    json["order_id"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no order_id in {json}"))
}

/// Closed loop: `count` orders, `concurrency` in flight; with `keys`, request `i`
/// carries the `Idempotency-Key` `{keys}-{i}`. Returns id -> accepted at.
async fn burst(
    client: reqwest::Client,
    url: String,
    count: usize,
    concurrency: usize,
    keys: Option<String>,
) -> anyhow::Result<HashMap<i64, Instant>> {
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        let permit = permits.clone().acquire_owned().await?;
        let (client, url) = (client.clone(), url.to_owned());
        let key = keys.as_ref().map(|keys| format!("{keys}-{i}"));
        tasks.push(tokio::spawn(async move {
            let result = place(&client, &url, 1 + i as i64, key).await;
            drop(permit);
            result.map(|id| (id, Instant::now()))
        }));
    }
    let mut accepted = HashMap::with_capacity(count);
    for task in tasks {
        let (id, at) = task.await??;
        accepted.insert(id, at);
    }
    Ok(accepted)
}

/// Open loop at `rate` orders/s for `seconds`. Returns id -> sent and accepted at.
async fn paced(
    client: reqwest::Client,
    url: String,
    rate: u64,
    seconds: u64,
) -> anyhow::Result<HashMap<i64, stages::Sent>> {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    for i in 0..rate * seconds {
        ticker.tick().await;
        let (client, url) = (client.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            place(&client, &url, 1 + i as i64, None).await.map(|id| {
                let accepted = Instant::now();
                (id, stages::Sent { sent, accepted })
            })
        }));
    }
    let mut accepted = HashMap::new();
    for task in tasks {
        let (id, sent) = task.await??;
        accepted.insert(id, sent);
    }
    Ok(accepted)
}

async fn wait_for_arrivals(arrivals: &Arrivals, count: usize, deadline: Duration) -> usize {
    let start = Instant::now();
    loop {
        let seen = arrivals.lock().unwrap().len();
        if seen >= count || start.elapsed() > deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

struct ArrivalListener {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
    previous_config: String,
}

impl ArrivalListener {
    fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.thread.join();
        if let Ok(mut redis) =
            redis::Client::open(testkit::redis_url()).and_then(|c| c.get_connection())
        {
            let _: Result<(), _> = redis::cmd("CONFIG")
                .arg("SET")
                .arg("notify-keyspace-events")
                .arg(&self.previous_config)
                .query(&mut redis);
        }
    }
}

/// Records when each `prefix<order id>` key is SET, from Redis keyspace notifications.
fn spawn_arrival_listener(prefix: &str, arrivals: Arrivals) -> anyhow::Result<ArrivalListener> {
    let client = redis::Client::open(testkit::redis_url())?;
    let mut admin = client.get_connection()?;
    let previous: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("notify-keyspace-events")
        .query(&mut admin)?;
    let previous_config = previous.get(1).cloned().unwrap_or_default();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg("K$")
        .query::<()>(&mut admin)?;

    let mut connection = client.get_connection()?;
    connection.set_read_timeout(Some(Duration::from_millis(200)))?;
    let pattern = format!("__keyspace@0__:{prefix}*");
    let channel_prefix = format!("__keyspace@0__:{prefix}");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_flag = stop.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let mut pubsub = connection.as_pubsub();
        pubsub.psubscribe(&pattern).expect("psubscribe");
        let _ = ready_tx.send(());
        while !stop_flag.load(std::sync::atomic::Ordering::SeqCst) {
            let Ok(message) = pubsub.get_message() else {
                continue;
            };
            let at = Instant::now();
            if let Some(id) = message
                .get_channel_name()
                .strip_prefix(&channel_prefix)
                .and_then(|id| id.parse::<i64>().ok())
            {
                arrivals.lock().unwrap().entry(id).or_insert(at);
            }
        }
    });
    ready_rx.recv_timeout(Duration::from_secs(5))?;
    Ok(ArrivalListener {
        stop,
        thread,
        previous_config,
    })
}
