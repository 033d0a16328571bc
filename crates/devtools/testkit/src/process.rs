//! Service binaries run as real processes, the way a user runs them.

use std::{
    collections::BTreeSet,
    fs::File,
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

/// The path of a workspace binary built beside the running test (`target/<profile>/NAME`).
/// `cargo test --workspace` / `scripts/test` build them all first.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test-binary>
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "binary {name} is not built at {}: run the suite with `scripts/test` (or `cargo build --workspace` first)",
        path.display()
    );
    path
}

/// A loopback port that is free now and was not handed out before by this process.
/// Picked at random below Linux's ephemeral range (32768 and up): binding port 0
/// and releasing it tends to give the same port to the next caller, so two
/// services of one test could be handed one port, and a random pick also makes a
/// clash with another test process unlikely.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = rand::random_range(20_000..32_000);
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
}

/// Runs `program` to its exit: without the variables in `clear_vars`, with `env`
/// added (in order, so a later pair wins), stdin closed and `RUST_BACKTRACE=0`.
/// Returns its exit code and its stderr; panics if it has not exited within
/// `deadline`. For "a bad setting stops the binary" tests.
pub fn run_to_exit(
    program: &Path,
    clear_vars: &[&str],
    env: &[(&str, &str)],
    deadline: Duration,
) -> (Option<i32>, String) {
    let mut command = Command::new(program);
    for name in clear_vars {
        command.env_remove(name);
    }
    command.env("RUST_BACKTRACE", "0");
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {}: {err}", program.display()));
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > deadline {
            let _ = child.kill();
            panic!(
                "{} with {env:?} did not exit within {deadline:?}",
                program.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs `program` as [`run_to_exit`] with `var=value` added after `env`, and
/// asserts that it exits with a non-zero code and a message on stderr that names
/// `var` and contains `expected`. For "a bad setting stops the binary" tests.
#[track_caller]
pub fn assert_setting_refused(
    program: &Path,
    clear_vars: &[&str],
    env: &[(&str, &str)],
    (var, value, expected): (&str, &str, &str),
) {
    let mut env = env.to_vec();
    env.push((var, value));
    let (code, stderr) = run_to_exit(program, clear_vars, &env, Duration::from_secs(30));
    assert!(
        code.is_some_and(|code| code != 0),
        "{var}={value:?}: exit {code:?}\n{stderr}"
    );
    assert!(stderr.contains(var), "{var}={value:?}: {stderr}");
    assert!(stderr.contains(expected), "{var}={value:?}: {stderr}");
}

/// Every variable a service reads: its own (`env_vars`), the Kafka connection's and
/// its configuration-file variable; what a test clears before setting its own.
pub fn service_vars<'a>(env_vars: &[&'a str], config_file_var: &'a str) -> Vec<&'a str> {
    let mut all = env_vars.to_vec();
    all.extend(settings::KafkaConnection::ENV_VARS);
    all.push(config_file_var);
    all
}

/// [`assert_setting_refused`] for each case, with every variable the service reads
/// ([`service_vars`]) cleared but the case's.
pub fn assert_settings_refused(
    program: &Path,
    env_vars: &[&str],
    config_file_var: &str,
    cases: &[(&str, &str, &str)],
) {
    let clear = service_vars(env_vars, config_file_var);
    for case in cases {
        assert_setting_refused(program, &clear, &[], *case);
    }
}

/// The Kafka TLS/SASL settings a service must refuse at start-up, each stopping
/// `program` with a message naming the variables at fault and never the password:
/// TLS or SASL with `KAFKA_CLIENT=kafka` (default or explicit), which has neither,
/// and a SASL protocol on `rdkafka` without a password.
pub fn assert_kafka_security_refused(program: &Path, env_vars: &[&str], config_file_var: &str) {
    const PASSWORD: &str = "never-print-me";
    let clear = service_vars(env_vars, config_file_var);
    let sasl = [
        ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-256"),
        ("KAFKA_SASL_USERNAME", "platform"),
    ];
    let with_password = [sasl[0], sasl[1], ("KAFKA_SASL_PASSWORD", PASSWORD)];
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a [&'a str]);
    let cases: [Case<'_>; 4] = [
        (
            vec![("KAFKA_SECURITY_PROTOCOL", "sasl_ssl")],
            &["KAFKA_SECURITY_PROTOCOL", "KAFKA_CLIENT"],
        ),
        (
            [
                ("KAFKA_CLIENT", "kafka"),
                ("KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
            ]
            .into_iter()
            .chain(with_password)
            .collect(),
            &["KAFKA_SECURITY_PROTOCOL", "KAFKA_CLIENT"],
        ),
        (
            vec![
                ("KAFKA_CLIENT", "kafka"),
                ("KAFKA_SECURITY_PROTOCOL", "ssl"),
            ],
            &["KAFKA_SECURITY_PROTOCOL", "KAFKA_CLIENT"],
        ),
        (
            [
                ("KAFKA_CLIENT", "rdkafka"),
                ("KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
            ]
            .into_iter()
            .chain(sasl)
            .collect(),
            &["KAFKA_SASL_PASSWORD"],
        ),
    ];
    for (env, expected) in cases {
        let (code, stderr) = run_to_exit(program, &clear, &env, Duration::from_secs(30));
        assert!(
            code.is_some_and(|code| code != 0),
            "{env:?}: exit {code:?}\n{stderr}"
        );
        for var in expected {
            assert!(stderr.contains(var), "{env:?}: no {var} in: {stderr}");
        }
        assert!(
            !stderr.contains(PASSWORD),
            "{env:?}: password shown: {stderr}"
        );
    }
}

/// A service binary as the "a bad setting stops the binary" tests run it: its path
/// (`env!("CARGO_BIN_EXE_<name>")`), the variables it reads and its
/// configuration-file variable.
#[derive(Debug, Clone, Copy)]
pub struct ServiceBinary {
    path: &'static str,
    env_vars: &'static [&'static str],
    config_file_var: &'static str,
}

/// The [`ServiceBinary`] of the service crate `$service` in its own integration tests:
/// `env!("CARGO_BIN_EXE_<service>")`, `<service>::config::ENV_VARS` and
/// `<service>::config::CONFIG_FILE_VAR`.
///
/// ```text
/// const ORDERS: ServiceBinary = testkit::service_binary!(orders);
/// ```
#[macro_export]
macro_rules! service_binary {
    ($service:ident) => {
        $crate::ServiceBinary::new(
            env!(concat!("CARGO_BIN_EXE_", stringify!($service))),
            $service::config::ENV_VARS,
            $service::config::CONFIG_FILE_VAR,
        )
    };
}

impl ServiceBinary {
    /// The binary at `path` that reads `env_vars` and `config_file_var`.
    pub const fn new(
        path: &'static str,
        env_vars: &'static [&'static str],
        config_file_var: &'static str,
    ) -> Self {
        Self {
            path,
            env_vars,
            config_file_var,
        }
    }

    /// [`assert_settings_refused`] on this binary: each `(variable, value, message
    /// part)` stops it.
    pub fn assert_settings_refused(self, cases: &[(&str, &str, &str)]) {
        assert_settings_refused(
            Path::new(self.path),
            self.env_vars,
            self.config_file_var,
            cases,
        );
    }

    /// [`assert_kafka_security_refused`] on this binary.
    pub fn assert_kafka_security_refused(self) {
        assert_kafka_security_refused(Path::new(self.path), self.env_vars, self.config_file_var);
    }
}

/// A child process killed on drop if it is still running (a failing test does not
/// leave it behind).
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    /// SIGTERM (which must be delivered), then waits up to `deadline` for the exit.
    pub fn terminate(&mut self, deadline: Duration) -> ExitStatus {
        let killed = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success(), "kill -TERM {}: {killed}", self.0.id());
        crate::wait_until(deadline, "the process to exit", || {
            self.0.try_wait().unwrap()
        })
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A child process with its stderr/stdout in a log file; killed on drop. When the
/// test is failing, the log's tail is printed so CI output shows why.
pub struct ServiceProcess {
    pub name: String,
    child: Child,
    log_path: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl ServiceProcess {
    pub fn spawn(name: &str, args: &[&str], env: &[(&str, String)]) -> Self {
        let log_dir = std::env::temp_dir().join("order-platform-test-logs");
        std::fs::create_dir_all(&log_dir).unwrap();
        let log_path = log_dir.join(format!("{}.log", crate::unique_name(name)));
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let child = Self::launch(name, &args, &env, &log_path);
        Self {
            name: name.to_owned(),
            child,
            log_path,
            args,
            env,
        }
    }

    fn launch(name: &str, args: &[String], env: &[(String, String)], log_path: &PathBuf) -> Child {
        let log = File::options()
            .create(true)
            .append(true)
            .open(log_path)
            .unwrap();
        Command::new(binary(name))
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env(
                "RUST_LOG",
                // The test's own RUST_LOG for the service, else TEST_SERVICE_LOG's.
                env.iter()
                    .find(|(name, _)| name == "RUST_LOG")
                    .map(|(_, value)| value.clone())
                    .or_else(|| std::env::var("TEST_SERVICE_LOG").ok())
                    .unwrap_or_else(|| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name}: {err}"))
    }

    /// Panics, showing its log, if the process has exited (e.g. it could not bind
    /// its port), so a test does not go on against something else.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("{} exited early with {status}:\n{}", self.name, self.log());
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits up to `deadline` for the exit status.
    pub fn terminate(&mut self, deadline: Duration) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > deadline {
                self.kill9();
                panic!("{} did not exit within {deadline:?} of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the same binary again with the same arguments and environment
    /// (after [`ServiceProcess::kill9`] or [`ServiceProcess::terminate`]).
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::launch(&self.name, &self.args, &self.env, &self.log_path);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking()
            && let Ok(file) = File::open(&self.log_path)
        {
            let lines: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!(
                "---- last lines of {} ({}) ----",
                self.name,
                self.log_path.display()
            );
            for line in tail {
                eprintln!("{line}");
            }
        }
    }
}

/// Polls `url` until it answers 200, or panics after `deadline`.
pub fn wait_http_ok(url: &str, deadline: Duration) {
    crate::wait_until(deadline, &format!("{url} to answer 200"), || {
        http_get_status(url)
            .filter(|status| *status == 200)
            .map(|_| ())
    });
}

/// The value of `name` (a metric without labels) in the Prometheus text served at
/// `http://{addr}/metrics`; `None` if it is not there or cannot be read.
pub fn metric(addr: SocketAddr, name: &str) -> Option<u64> {
    let (_, body) = http_request("GET", &format!("http://{addr}/metrics"), None)?;
    let prefix = format!("{name} ");
    body.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
}

/// Waits up to `deadline` until `name` on `http://{addr}/metrics` is at least
/// `at_least`.
pub fn wait_for_metric(addr: SocketAddr, name: &str, at_least: u64, deadline: Duration) {
    crate::wait_until(deadline, &format!("{name} >= {at_least}"), || {
        metric(addr, name)
            .is_some_and(|value| value >= at_least)
            .then_some(())
    });
}

/// A minimal blocking HTTP/1.1 GET returning the status code.
pub fn http_get_status(url: &str) -> Option<u16> {
    http_request("GET", url, None).map(|(status, _)| status)
}

/// A minimal blocking HTTP/1.1 client (no client library): `(status, body)`, or
/// `None` when the server cannot be reached.
pub fn http_request(method: &str, url: &str, json_body: Option<&str>) -> Option<(u16, String)> {
    http_request_with(method, url, &[], json_body)
}

/// [`http_request`] with more request headers (`name`, `value`).
pub fn http_request_with(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    json_body: Option<&str>,
) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(authority).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let body = json_body.unwrap_or("");
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
         Content-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let response = String::from_utf8_lossy(&response);
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Some((status, body))
}

fn dechunk(mut chunked: &str) -> String {
    let mut body = String::new();
    while let Some((size, rest)) = chunked.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        body.push_str(&rest[..size]);
        chunked = rest[size..].trim_start_matches("\r\n");
    }
    body
}
