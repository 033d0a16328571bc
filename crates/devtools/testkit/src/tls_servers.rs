//! PostgreSQL and Redis with TLS, one private instance per test, certificates made
//! in the test (rcgen: a test CA and a server certificate it signs).
//!
//! - [`TestCerts`]: `ca.pem`, `server.pem`, `server.key` in a temporary directory.
//! - [`TlsPostgres`]: Debian's PostgreSQL (`/usr/lib/postgresql/<newest>/bin`) in a
//!   fresh data directory on a free port with `ssl=on`, `hostssl`-only rules and
//!   SCRAM passwords (user `postgres`, password `postgres`), so a plain connection
//!   is refused. Run as the `postgres` OS user when the test runs as root.
//! - [`TlsRedis`]: `redis-server` with `--port 0 --tls-port P` (no plain port).
//!
//! Both are SIGKILLed on drop, and a watchdog process kills them (and removes their
//! files) if the test process dies first, so no server outlives its test.

use std::{
    fs::File,
    net::TcpStream,
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use crate::free_port;

const READY: Duration = Duration::from_secs(60);

/// A test CA and one server certificate signed by it.
pub struct TestCerts {
    dir: tempfile::TempDir,
}

impl TestCerts {
    /// A server certificate valid for `names` (DNS names or IP addresses).
    pub fn for_names(names: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("test-certs")
            .tempdir()
            .unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // A name of its own: two test CAs must not look like one to a verifier.
        ca.distinguished_name.push(
            DnType::CommonName,
            format!("order platform test CA {:08x}", rand::random::<u32>()),
        );
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut server = CertificateParams::new(names.clone()).unwrap();
        server.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        let server_cert = server.signed_by(&server_key, &issuer).unwrap();

        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), server_cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), server_key.serialize_pem()).unwrap();
        std::fs::set_permissions(
            dir.path().join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        Self { dir }
    }

    /// The CA certificate (PEM) that signed the server certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn server_cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    pub fn server_key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

/// A server process started for one test, its watchdog, its port and its files.
struct Supervised {
    name: &'static str,
    port: u16,
    child: Option<Child>,
    watchdog: Option<Child>,
    log: PathBuf,
    // Removed after the server is killed (`Drop` runs before the fields drop).
    _dir: tempfile::TempDir,
}

impl Supervised {
    /// Starts `command` with its output in `dir` and returns once its log contains
    /// `ready_line` and `port` accepts TCP connections.
    fn start(
        name: &'static str,
        mut command: Command,
        dir: tempfile::TempDir,
        port: u16,
        ready_line: &str,
    ) -> Self {
        let log = dir.path().join(format!("{name}.log"));
        let out = File::create(&log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name}: {err}"));
        // Kills the server (and removes its files) once this test process is gone.
        let watchdog = spawn_watchdog(name, child.id(), dir.path());
        let mut server = Self {
            name,
            port,
            child: Some(child),
            watchdog,
            log,
            _dir: dir,
        };
        server.wait_ready(|log| {
            log.contains(ready_line) && TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        server
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `ready` holds; panics with the log if the process exits first.
    fn wait_ready(&mut self, mut ready: impl FnMut(&str) -> bool) {
        let start = Instant::now();
        loop {
            let log = self.log_text();
            if ready(&log) {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten())
            {
                panic!("{} exited with {status} while starting:\n{log}", self.name);
            }
            if start.elapsed() > READY {
                panic!("{} not ready after {READY:?}:\n{log}", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
        kill_and_reap(&mut self.watchdog);
    }
}

/// Starts a `sh` process that SIGKILLs `pid` and removes `dir` once this test process
/// is gone: a test process killed mid-run (its `Drop`s never run) leaves no server
/// behind. `None` when `sh` cannot start; the server then only dies with its `Drop`.
pub(crate) fn spawn_watchdog(name: &str, pid: u32, dir: &Path) -> Option<Child> {
    Command::new("sh")
        .arg("-c")
        .arg(
            "while kill -0 \"$1\" 2>/dev/null && kill -0 \"$2\" 2>/dev/null; do sleep 1; done; \
             if ! kill -0 \"$1\" 2>/dev/null; then kill -9 \"$2\" 2>/dev/null; rm -rf \"$3\"; fi",
        )
        .args([
            &format!("{name}-watchdog"),
            &std::process::id().to_string(),
            &pid.to_string(),
            &dir.display().to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// SIGKILLs and reaps the process, if there still is one.
pub(crate) fn kill_and_reap(process: &mut Option<Child>) {
    if let Some(mut process) = process.take() {
        let _ = process.kill();
        let _ = process.wait();
    }
}

/// `(uid, gid)` of the `postgres` OS user when this process is root (PostgreSQL
/// refuses to run as root), `None` otherwise.
fn postgres_user() -> Option<(u32, u32)> {
    let me = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&me.stdout).trim() != "0" {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd
        .lines()
        .find(|line| line.starts_with("postgres:"))
        .expect("tests run as root need the `postgres` OS user (apt-get install postgresql)");
    let fields: Vec<&str> = line.split(':').collect();
    Some((fields[2].parse().unwrap(), fields[3].parse().unwrap()))
}

/// Debian's newest PostgreSQL server binaries.
fn postgres_bin_dir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<u32> = std::fs::read_dir(root)
        .unwrap_or_else(|err| panic!("no PostgreSQL server binaries in {root:?}: {err}"))
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|version| root.join(format!("{version}/bin/postgres")).exists())
        .collect();
    versions.sort_unstable();
    let newest = versions
        .last()
        .unwrap_or_else(|| panic!("no PostgreSQL server binaries in {root:?}"));
    root.join(format!("{newest}/bin"))
}

fn as_user(command: &mut Command, user: Option<(u32, u32)>, dir: &Path) {
    // The test's own directory may be closed to that user.
    command.current_dir(dir);
    if let Some((uid, gid)) = user {
        command.uid(uid).gid(gid);
    }
}

fn chown(path: &Path, user: Option<(u32, u32)>) {
    if let Some((uid, gid)) = user {
        let status = Command::new("chown")
            .arg("-R")
            .arg(format!("{uid}:{gid}"))
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success(), "chown {path:?} failed");
    }
}

/// A private PostgreSQL with TLS on; see the module documentation.
pub struct TlsPostgres {
    server: Supervised,
}

impl TlsPostgres {
    /// Starts the server with `certs`' server certificate; returns once it accepts
    /// connections.
    pub fn start(certs: &TestCerts) -> Self {
        let user = postgres_user();
        let bin = postgres_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("tls-postgres")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        std::fs::copy(certs.server_cert(), dir.path().join("server.pem")).unwrap();
        std::fs::copy(certs.server_key(), dir.path().join("server.key")).unwrap();
        std::fs::write(dir.path().join("pwfile"), "postgres\n").unwrap();
        chown(dir.path(), user);

        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                "--no-sync",
                "--encoding=UTF8",
            ])
            .arg(format!("--pwfile={}", dir.path().join("pwfile").display()))
            .stdin(Stdio::null());
        as_user(&mut initdb, user, dir.path());
        let output = initdb.output().unwrap();
        assert!(
            output.status.success(),
            "initdb failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        // TLS only over TCP: a plain connection finds no matching rule.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all scram-sha-256\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n\
             hostssl all all ::1/128 scram-sha-256\n",
        )
        .unwrap();

        let port = free_port();
        let mut postgres = Command::new(bin.join("postgres"));
        postgres
            .arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(dir.path())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "ssl=on",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=50",
            ])
            .arg("-c")
            .arg(format!(
                "ssl_cert_file={}",
                dir.path().join("server.pem").display()
            ))
            .arg("-c")
            .arg(format!(
                "ssl_key_file={}",
                dir.path().join("server.key").display()
            ));
        as_user(&mut postgres, user, dir.path());
        Self {
            server: Supervised::start(
                "postgres",
                postgres,
                dir,
                port,
                "ready to accept connections",
            ),
        }
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// `postgres://postgres:postgres@{host}:{port}/{database}` followed by `query`
    /// (e.g. `?sslmode=require`; empty for none).
    pub fn dsn(&self, host: &str, database: &str, query: &str) -> String {
        format!(
            "postgres://postgres:postgres@{host}:{}/{database}{query}",
            self.server.port
        )
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.server.log_text()
    }
}

/// A private `redis-server` that speaks TLS only; see the module documentation.
pub struct TlsRedis {
    server: Supervised,
}

impl TlsRedis {
    /// Starts `redis-server` with `certs`' server certificate (clients need no
    /// certificate of their own); returns once it accepts TCP connections.
    pub fn start(certs: &TestCerts) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tls-redis")
            .tempdir()
            .unwrap();
        let port = free_port();
        let mut redis = Command::new("redis-server");
        redis
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .arg("--tls-cert-file")
            .arg(certs.server_cert())
            .arg("--tls-key-file")
            .arg(certs.server_key())
            .arg("--tls-ca-cert-file")
            .arg(certs.ca())
            .args(["--tls-auth-clients", "no"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path());
        Self {
            server: Supervised::start(
                "redis-server",
                redis,
                dir,
                port,
                "Ready to accept connections",
            ),
        }
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.server.log_text()
    }
}
