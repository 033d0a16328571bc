//! What the Stripe tests run against: the real stripe-mock (Stripe's official mock,
//! which validates every request against Stripe's OpenAPI specification) on a free
//! port, and [`FakeStripe`], a local HTTP server speaking the same
//! `POST /v1/payment_intents` the test scripts (declines, timeouts, 5xx, 429 with
//! `Retry-After`, a connection dropped after the charge), which keeps charges by
//! `Idempotency-Key` as Stripe does.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use testkit::KillOnDrop;

/// stripe-mock's version, as `scripts/setup-test-tools.sh` installs it.
const STRIPE_MOCK_VERSION: &str = "v0.203.0";

/// The stripe-mock binary: `$HOME/.cache/order-platform/bin/stripe-mock`, where
/// `scripts/setup-test-tools.sh` installs it, else on `PATH`. Missing: the test fails
/// saying how to get it.
fn stripe_mock_binary() -> PathBuf {
    let cached = std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cache/order-platform/bin/stripe-mock"));
    if let Some(path) = cached.filter(|path| path.is_file()) {
        return path;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("stripe-mock"))
            .find(|path| path.is_file())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "stripe-mock {STRIPE_MOCK_VERSION} not found in ~/.cache/order-platform/bin or on PATH: \
             run scripts/setup-test-tools.sh (go install github.com/stripe/stripe-mock@{STRIPE_MOCK_VERSION})"
        )
    })
}

/// A running stripe-mock, killed on drop.
pub struct StripeMock {
    pub base: String,
    _process: KillOnDrop,
}

impl StripeMock {
    /// Starts stripe-mock on a free port (HTTP only) and waits until it answers.
    pub fn start() -> Self {
        let free_port = || {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (port, https_port) = (free_port(), free_port());
        // Both listeners on free ports: given only an HTTP address, stripe-mock still
        // opens HTTPS on its default 12112 and exits when that port is taken.
        let process = KillOnDrop(
            Command::new(stripe_mock_binary())
                .args(["-http-addr", &format!("127.0.0.1:{port}")])
                .args(["-https-addr", &format!("127.0.0.1:{https_port}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|err| {
                    panic!("cannot start stripe-mock ({err}); run scripts/setup-test-tools.sh")
                }),
        );
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        testkit::wait_until(Duration::from_secs(20), "stripe-mock to listen", || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
        });
        Self {
            base: format!("http://{addr}"),
            _process: process,
        }
    }
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub authorization: Option<String>,
    pub idempotency_key: Option<String>,
    pub form: HashMap<String, String>,
    pub at: Instant,
}

/// What the fake does with the next request (then [`Step::Charge`] for the rest).
#[derive(Debug, Clone)]
pub enum Step {
    /// Answer `status` with a Stripe error body (and `Retry-After` seconds); no charge.
    Fail {
        status: u16,
        retry_after: Option<u64>,
    },
    /// Wait this long, then charge and answer (as Stripe does for a client that
    /// gave up meanwhile).
    Slow(Duration),
    /// Charge, then close the connection without an answer.
    ChargeThenDrop,
    /// Charge (or replay the answer given under the same idempotency key).
    Charge,
}

#[derive(Default)]
struct State {
    requests: Vec<Request>,
    /// Idempotency key -> the answer given (status, body): Stripe's replay.
    answers: HashMap<String, (u16, String)>,
    /// PaymentIntents created: one per new key.
    charges: u32,
    /// Keys whose first request is still being handled: another request with one of
    /// them gets Stripe's 409 `idempotency_key_in_use`.
    in_progress: HashSet<String>,
    plan: VecDeque<Step>,
    /// While set, every request gets this failure (no charge).
    failing: Option<u16>,
    /// Orders (metadata[order_id]) whose card is declined.
    declined_orders: HashSet<i64>,
    /// How long each charge takes (the bench's provider latency).
    latency: Duration,
}

/// A local server speaking Stripe's PaymentIntents API, scripted by the test.
#[derive(Clone)]
pub struct FakeStripe {
    pub base: String,
    state: Arc<Mutex<State>>,
}

impl FakeStripe {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state: Arc<Mutex<State>> = Arc::default();
        let shared = state.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                thread::spawn(move || serve(stream, &state));
            }
        });
        Self { base, state }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// The next requests get these steps, in order.
    pub fn plan(&self, steps: impl IntoIterator<Item = Step>) {
        self.state().plan.extend(steps);
    }

    /// Every request fails with `status` until [`FakeStripe::heal`].
    pub fn fail_all(&self, status: u16) {
        self.state().failing = Some(status);
    }

    pub fn heal(&self) {
        self.state().failing = None;
    }

    pub fn decline(&self, order_id: i64) {
        self.state().declined_orders.insert(order_id);
    }

    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state().requests.clone()
    }

    /// PaymentIntents created (one per idempotency key that got an answer).
    pub fn charges(&self) -> u32 {
        self.state().charges
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 {
            return;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let form: HashMap<String, String> = url_decode_form(&String::from_utf8_lossy(&body));
    let request = Request {
        path,
        authorization: headers.get("authorization").cloned(),
        idempotency_key: headers.get("idempotency-key").cloned(),
        form,
        at: Instant::now(),
    };
    let (step, latency) = {
        let mut state = state.lock().unwrap();
        state.requests.push(request.clone());
        let step = match state.failing {
            Some(status) => Step::Fail {
                status,
                retry_after: None,
            },
            None => state.plan.pop_front().unwrap_or(Step::Charge),
        };
        (step, state.latency)
    };
    if !latency.is_zero() {
        thread::sleep(latency);
    }
    let mut stream = stream;
    let answer = match step {
        Step::Fail {
            status,
            retry_after,
        } => {
            let body = format!(
                r#"{{"error": {{"type": "api_error", "message": "scripted failure {status}"}}}}"#
            );
            respond(&mut stream, status, retry_after, &body);
            return;
        }
        Step::Slow(delay) => {
            let key = request.idempotency_key.clone().unwrap_or_default();
            state.lock().unwrap().in_progress.insert(key.clone());
            thread::sleep(delay);
            state.lock().unwrap().in_progress.remove(&key);
            charge(state, &request)
        }
        Step::ChargeThenDrop => {
            charge(state, &request);
            return; // the connection closes unanswered
        }
        Step::Charge => charge(state, &request),
    };
    respond(&mut stream, answer.0, None, &answer.1);
}

/// Creates the PaymentIntent for the request's idempotency key, or replays the
/// answer given under it.
fn charge(state: &Mutex<State>, request: &Request) -> (u16, String) {
    let mut state = state.lock().unwrap();
    let key = request.idempotency_key.clone().unwrap_or_default();
    if let Some(answer) = state.answers.get(&key) {
        return answer.clone();
    }
    if state.in_progress.contains(&key) {
        return (
            409,
            r#"{"error": {"type": "idempotency_error", "code": "idempotency_key_in_use",
            "message": "There is currently another in-progress request using this Idempotency Key."}}"#
                .to_owned(),
        );
    }
    state.charges += 1;
    let id = format!("pi_fake{}", state.charges);
    let order_id: i64 = request
        .form
        .get("metadata[order_id]")
        .and_then(|id| id.parse().ok())
        .unwrap_or(0);
    let answer = if state.declined_orders.contains(&order_id) {
        (
            402,
            format!(
                r#"{{"error": {{"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
                "message": "Your card has insufficient funds.", "payment_intent": {{"id": "{id}", "status": "requires_payment_method"}}}}}}"#
            ),
        )
    } else {
        (
            200,
            format!(
                r#"{{"id": "{id}", "object": "payment_intent", "status": "succeeded", "amount": {}}}"#,
                request.form.get("amount").map_or("0", String::as_str)
            ),
        )
    };
    state.answers.insert(key, answer.clone());
    answer
}

fn respond(stream: &mut TcpStream, status: u16, retry_after: Option<u64>, body: &str) {
    let retry_after = retry_after.map_or(String::new(), |seconds| {
        format!("Retry-After: {seconds}\r\n")
    });
    let _ = write!(
        stream,
        "HTTP/1.1 {status} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         {retry_after}Connection: close\r\n\r\n{body}",
        body.len()
    );
}

fn url_decode_form(body: &str) -> HashMap<String, String> {
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (percent_decode(name), percent_decode(value)))
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
