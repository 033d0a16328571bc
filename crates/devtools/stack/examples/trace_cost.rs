//! What tracing costs: `POST /orders` through a gateway and orders (with its relay,
//! on devbroker), as release binaries, three times side by side: one pair with no
//! OTLP endpoint (tracing off), one exporting every span (`always_on`) and one a tenth
//! of the traces (`parentbased_traceidratio`, 0.1), over OTLP/gRPC to a real receiver
//! in this process. Rounds alternate between the three so a noisy machine weighs on
//! all; each round is a closed loop of `--concurrency` keep-alive clients for
//! `--seconds`. Prints each round and the ratios to the untraced pair.
//!
//! `cargo build --release --workspace --examples && ./target/release/examples/trace_cost`
//! (needs the test PostgreSQL of `scripts/setup-test-tools.sh`).

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use testkit::{
    BrokerKind, OtlpReceiver, ServiceProcess, TestBroker, TestDatabase, free_port, wait_http_ok,
};

struct Args {
    seconds: u64,
    rounds: u32,
    concurrency: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        seconds: 5,
        rounds: 3,
        concurrency: 32,
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let value = given
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        let number = |name: &str| {
            value
                .parse::<u64>()
                .map_err(|_| anyhow::anyhow!("{name} = {value:?}: expected a whole number"))
        };
        match flag.as_str() {
            "--seconds" => args.seconds = number("--seconds")?.max(1),
            "--rounds" => args.rounds = u32::try_from(number("--rounds")?)?.max(1),
            "--concurrency" => args.concurrency = usize::try_from(number("--concurrency")?)?.max(1),
            _ => {
                anyhow::bail!("unknown flag {flag}: expected --seconds, --rounds or --concurrency")
            }
        }
    }
    Ok(args)
}

/// A gateway in front of an orders on its own database; `tracing` its env.
struct Pair {
    gateway_addr: String,
    _database: TestDatabase,
    _orders: ServiceProcess,
    _gateway: ServiceProcess,
}

impl Pair {
    fn start(broker: &TestBroker, tracing: &[(&str, String)]) -> Self {
        let database = TestDatabase::new("trace_cost");
        let [grpc, health, http] = [(); 3].map(|_| format!("127.0.0.1:{}", free_port()));
        let orders_env = [
            ("ORDERS_PG_DSN", database.dsn()),
            ("ORDERS_GRPC_ADDR", grpc.clone()),
            ("ORDERS_HEALTH_ADDR", health.clone()),
            ("KAFKA_BROKERS", broker.bootstrap()),
            ("KAFKA_TOPIC_ORDER", broker.unique_topic("order-topic", 3)),
            ("KAFKA_TOPIC_STATUS", broker.unique_topic("status-topic", 3)),
            ("RUST_LOG", "warn".to_owned()),
        ];
        let orders = ServiceProcess::spawn("orders", &[], &[&orders_env[..], tracing].concat());
        let gateway_env = [
            ("GATEWAY_HTTP_ADDR", http.clone()),
            ("ORDERS_GRPC_ADDR", format!("http://{grpc}")),
            ("RUST_LOG", "warn".to_owned()),
        ];
        let gateway = ServiceProcess::spawn("gateway", &[], &[&gateway_env[..], tracing].concat());
        for ready in [&health, &http] {
            wait_http_ok(&format!("http://{ready}/readyz"), Duration::from_secs(60));
        }
        Self {
            gateway_addr: http,
            _database: database,
            _orders: orders,
            _gateway: gateway,
        }
    }
}

/// Orders accepted per second by `addr` over `seconds`, `concurrency` clients.
fn closed_loop(addr: &str, concurrency: usize, seconds: u64) -> anyhow::Result<f64> {
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..concurrency)
        .map(|client| {
            let (addr, stop, accepted) = (addr.to_owned(), stop.clone(), accepted.clone());
            std::thread::spawn(move || -> anyhow::Result<()> {
                let stream = TcpStream::connect(&addr)?;
                stream.set_nodelay(true)?;
                let mut reader = BufReader::new(stream.try_clone()?);
                let mut writer = stream;
                let body = format!(
                    r#"{{"user_id": {}, "items": [{{"product_id": 7, "quantity": 1, "price": 100}}]}}"#,
                    client + 1
                );
                let request = format!(
                    "POST /orders HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                while !stop.load(Ordering::Relaxed) {
                    writer.write_all(request.as_bytes())?;
                    if read_response(&mut reader)? == 200 {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(())
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    for client in clients {
        client
            .join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
    }
    Ok(accepted.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64())
}

/// Reads one HTTP/1.1 response (with a Content-Length body); its status.
fn read_response(reader: &mut BufReader<TcpStream>) -> anyhow::Result<u16> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("not an HTTP status line: {line:?}"))?;
    let mut length = 0usize;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(status)
}

/// One line of the table: the rates and the traced ones' ratios to the untraced.
fn print_row(label: &str, [off, on, sampled]: [f64; 3]) {
    println!(
        "{label:>5} | {off:>17.0} | {on:>18.0} ({:.2}) | {sampled:>20.0} ({:.2})",
        on / off,
        sampled / off
    );
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let broker = TestBroker::start(BrokerKind::Devbroker);
    let receiver = OtlpReceiver::start_grpc();
    let traced_env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
        ("OTEL_TRACES_SAMPLER", "always_on".to_owned()),
    ];
    let sampled_env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio".to_owned()),
        ("OTEL_TRACES_SAMPLER_ARG", "0.1".to_owned()),
    ];
    let pairs = [
        Pair::start(&broker, &[]),
        Pair::start(&broker, &traced_env),
        Pair::start(&broker, &sampled_env),
    ];
    // Warm them all (connections, prepared statements) before measuring.
    for pair in &pairs {
        closed_loop(&pair.gateway_addr, args.concurrency, 1)?;
    }
    println!(
        "POST /orders, {} clients, {} s per round, gateway + orders (+ relay) on devbroker",
        args.concurrency, args.seconds
    );
    println!(
        "round | untraced orders/s | always_on orders/s (ratio) | 10% sampled orders/s (ratio)"
    );
    let mut sums = [0.0; 3];
    for round in 1..=args.rounds {
        let mut rates = [0.0; 3];
        for (rate, pair) in rates.iter_mut().zip(&pairs) {
            *rate = closed_loop(&pair.gateway_addr, args.concurrency, args.seconds)?;
        }
        print_row(&round.to_string(), rates);
        for (sum, rate) in sums.iter_mut().zip(rates) {
            *sum += rate;
        }
    }
    print_row("all", sums.map(|sum| sum / f64::from(args.rounds)));
    // Spans still in the services' batch queues are not counted.
    println!(
        "spans received by the OTLP receiver: {} in {} export requests",
        receiver.spans().len(),
        receiver.requests()
    );
    Ok(())
}
