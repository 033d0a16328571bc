//! Apache Kafka, the production broker, run by the tests: single-node KRaft from the
//! Maven Central jars that `scripts/fetch-kafka.sh` keeps outside the repository.
//!
//! [`KafkaBroker::start`] formats a fresh log directory, starts the JVM on free ports
//! with a bounded heap and waits until Metadata lists the broker.
//! [`KafkaBroker::start_sasl_ssl`] adds a SASL_SSL listener ([`KafkaBroker::sasl_ssl_bootstrap`],
//! advertised as `localhost`): TLS from a [`TestCerts`] server certificate (a PEM
//! keystore, no keytool), SASL PLAIN (in the listener's JAAS configuration) and
//! SCRAM-SHA-256/512 (credentials written at storage format time), all for
//! [`SASL_USER`] / [`SASL_PASSWORD`]; and an SSL listener (TLS without SASL,
//! [`KafkaBroker::ssl_bootstrap`]) with the same certificate. The PLAINTEXT listener stays, for the harness
//! itself (readiness, topic creation) and the inter-broker traffic. It can be killed
//! with SIGKILL and restarted on the same log directory, and it is stopped when
//! dropped. A watchdog process kills the JVM if the test process dies without
//! dropping it (e.g. killed by the test runner's timeout), so no broker outlives its
//! test.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::tls_servers::{TestCerts, kill_and_reap, spawn_watchdog};
use crate::{free_port, kafka_admin, unique_name, wait_until};

pub(crate) const READY: Duration = Duration::from_secs(90);
/// Starts tried when a port turns out to be taken by the time the JVM binds it.
const BIND_ATTEMPTS: u32 = 5;

/// Why a JVM did not become ready.
#[derive(Debug)]
enum StartFailure {
    /// A listener port was taken (`Address already in use`).
    PortTaken,
    /// It exited for another reason (its exit status).
    Exited(String),
}

/// The Apache Kafka release lines the tests run, each pinned in
/// `tools/kafka/<line>/pom.xml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaLine {
    /// 3.9.x: the last line that serves the `kafka` crate's protocol versions.
    V3_9,
    /// The newest 4.x: KIP-896 removed the legacy protocol versions.
    V4,
}

impl KafkaLine {
    fn folder(self) -> &'static str {
        match self {
            KafkaLine::V3_9 => "3.9",
            KafkaLine::V4 => "4.x",
        }
    }

    /// The pinned release, read from the line's `pom.xml` (its project version).
    pub fn release(self) -> String {
        let pom = workspace_root()
            .join("tools/kafka")
            .join(self.folder())
            .join("pom.xml");
        let text = std::fs::read_to_string(&pom)
            .unwrap_or_else(|err| panic!("cannot read {}: {err}", pom.display()));
        text.split("<version>")
            .nth(1)
            .and_then(|rest| rest.split("</version>").next())
            .map(str::trim)
            .unwrap_or_else(|| panic!("no <version> in {}", pom.display()))
            .to_owned()
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

/// Where `scripts/fetch-kafka.sh` put the jars of `release`.
pub(crate) fn dist_dir(release: &str) -> PathBuf {
    let base = std::env::var_os("KAFKA_DIST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
                .unwrap_or_else(|| PathBuf::from("/tmp"))
                .join("order-platform/kafka")
        });
    base.join(release)
}

/// The user of [`KafkaBroker::start_sasl_ssl`]'s SASL listener (PLAIN and SCRAM).
pub const SASL_USER: &str = "platform";
/// [`SASL_USER`]'s password.
pub const SASL_PASSWORD: &str = "platform-secret";

/// The SASL_SSL and SSL listeners of a broker started with
/// [`KafkaBroker::start_sasl_ssl`].
struct SaslSsl {
    port: u16,
    /// The SSL (TLS only, no SASL) listener's port.
    ssl_port: u16,
    /// The server certificate (PEM), for `ssl.keystore.certificate.chain`.
    cert_chain: String,
    /// Its private key (PKCS#8 PEM, unencrypted), for `ssl.keystore.key`.
    key: String,
}

/// A single-node Apache Kafka (broker and KRaft controller in one JVM).
pub struct KafkaBroker {
    line: KafkaLine,
    release: String,
    dir: PathBuf,
    port: u16,
    controller_port: u16,
    sasl_ssl: Option<SaslSsl>,
    jvm: Option<Child>,
    watchdog: Option<Child>,
}

impl KafkaBroker {
    /// Formats a fresh log directory and starts the broker; returns once Metadata
    /// lists it. Panics with what to do when Java or the jars are missing: a test
    /// that needs Apache Kafka fails rather than skips.
    pub fn start(line: KafkaLine) -> Self {
        Self::start_with(line, None)
    }

    /// [`KafkaBroker::start`] with a SASL_SSL listener as well, serving `certs`'
    /// server certificate (which must name `localhost`) and accepting [`SASL_USER`]
    /// with [`SASL_PASSWORD`] over PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512.
    pub fn start_sasl_ssl(line: KafkaLine, certs: &TestCerts) -> Self {
        let read = |path: PathBuf| {
            std::fs::read_to_string(&path)
                .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
        };
        Self::start_with(
            line,
            Some(SaslSsl {
                port: free_port(),
                ssl_port: free_port(),
                cert_chain: read(certs.server_cert()),
                key: read(certs.server_key()),
            }),
        )
    }

    fn start_with(line: KafkaLine, sasl_ssl: Option<SaslSsl>) -> Self {
        let release = line.release();
        assert_fetched(&release);
        let dir = std::env::temp_dir().join(unique_name(&format!("kafka-{release}")));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let mut broker = Self {
            line,
            release,
            dir,
            port: free_port(),
            controller_port: free_port(),
            sasl_ssl,
            jvm: None,
            watchdog: None,
        };
        // The ports were free when picked, but the JVM binds them seconds later and
        // another test process may take one meanwhile: then start over on new ports.
        for attempt in 1.. {
            broker.write_config();
            broker.format();
            match broker.launch() {
                Ok(()) => break,
                Err(StartFailure::PortTaken) if attempt < BIND_ATTEMPTS => {
                    broker.kill9();
                    let _ = std::fs::remove_dir_all(broker.dir.join("data"));
                    let _ = std::fs::remove_file(broker.log_path());
                    std::fs::create_dir_all(broker.dir.join("data")).unwrap();
                    broker.port = free_port();
                    broker.controller_port = free_port();
                    if let Some(listener) = broker.sasl_ssl.as_mut() {
                        listener.port = free_port();
                        listener.ssl_port = free_port();
                    }
                }
                Err(failure) => broker.fail(failure),
            }
        }
        broker
    }

    pub fn line(&self) -> KafkaLine {
        self.line
    }

    pub fn release(&self) -> &str {
        &self.release
    }

    /// `127.0.0.1:port` of the PLAINTEXT listener.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `localhost:port` of the SASL_SSL listener (the name its certificate carries,
    /// verified by the clients). Panics unless started with
    /// [`KafkaBroker::start_sasl_ssl`].
    pub fn sasl_ssl_bootstrap(&self) -> String {
        format!("localhost:{}", self.tls_listeners("SASL_SSL").port)
    }

    /// `localhost:port` of the SSL listener (TLS, no SASL), with the same certificate
    /// as the SASL_SSL one. Panics unless started with [`KafkaBroker::start_sasl_ssl`].
    pub fn ssl_bootstrap(&self) -> String {
        format!("localhost:{}", self.tls_listeners("SSL").ssl_port)
    }

    /// The SASL_SSL and SSL listeners; panics, naming the `wanted` one, unless the
    /// broker was started with [`KafkaBroker::start_sasl_ssl`].
    fn tls_listeners(&self, wanted: &str) -> &SaslSsl {
        self.sasl_ssl
            .as_ref()
            .unwrap_or_else(|| panic!("this broker has no {wanted} listener (start_sasl_ssl)"))
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("server.properties")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("broker.log")
    }

    fn write_config(&self) {
        let (port, cport) = (self.port, self.controller_port);
        let data = self.dir.join("data");
        // Small internal topics and no rebalance delay: a test broker starts and
        // serves its first consumer group in seconds. Topics are created explicitly,
        // as compose's kafka-init does.
        let (listeners, advertised, map, secured) = match &self.sasl_ssl {
            None => (
                format!("PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}"),
                format!("PLAINTEXT://127.0.0.1:{port}"),
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                String::new(),
            ),
            Some(listener) => {
                let (sport, tport) = (listener.port, listener.ssl_port);
                (
                    format!(
                        "PLAINTEXT://127.0.0.1:{port},SASL_SSL://127.0.0.1:{sport},\
                         SSL://127.0.0.1:{tport},CONTROLLER://127.0.0.1:{cport}"
                    ),
                    format!(
                        "PLAINTEXT://127.0.0.1:{port},SASL_SSL://localhost:{sport},\
                         SSL://localhost:{tport}"
                    ),
                    "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL,CONTROLLER:PLAINTEXT",
                    sasl_ssl_properties(listener),
                )
            }
        };
        let config = format!(
            "process.roles=broker,controller\n\
             node.id=1\n\
             controller.quorum.voters=1@127.0.0.1:{cport}\n\
             listeners={listeners}\n\
             advertised.listeners={advertised}\n\
             listener.security.protocol.map={map}\n\
             controller.listener.names=CONTROLLER\n\
             inter.broker.listener.name=PLAINTEXT\n\
             log.dirs={data}\n\
             num.partitions=1\n\
             auto.create.topics.enable=false\n\
             offsets.topic.replication.factor=1\n\
             offsets.topic.num.partitions=1\n\
             transaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\n\
             transaction.state.log.num.partitions=1\n\
             group.initial.rebalance.delay.ms=0\n\
             {secured}",
            data = data.display()
        );
        std::fs::write(self.config_path(), config).unwrap();
        write_log_configs(&self.dir);
    }

    fn java(&self) -> Command {
        // Bounded heap; serial GC: the broker handles a test's load on one thread
        // and leaves the other core to the services under test.
        kafka_java(
            &self.release,
            &self.dir,
            &["-Xms128m", "-Xmx512m", "-XX:+UseSerialGC"],
        )
    }

    /// `kafka-storage.sh format` for a fresh cluster id.
    fn format(&self) {
        let mut command = self.java();
        command
            .args([
                "kafka.tools.StorageTool",
                "format",
                "-t",
                &cluster_id(),
                "-c",
            ])
            .arg(self.config_path())
            .args(self.sasl_ssl.iter().flat_map(|_| {
                // SCRAM credentials live in the KRaft metadata log: written here.
                ["SCRAM-SHA-256", "SCRAM-SHA-512"]
                    .into_iter()
                    .flat_map(|mechanism| {
                        [
                            "--add-scram".to_owned(),
                            format!("{mechanism}=[name={SASL_USER},password={SASL_PASSWORD}]"),
                        ]
                    })
            }));
        run_format(command, &format!("Apache Kafka {}", self.release));
    }

    /// Starts the JVM and waits until it is ready.
    fn launch(&mut self) -> Result<(), StartFailure> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let jvm = self
            .java()
            .arg("kafka.Kafka")
            .arg(self.config_path())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start Apache Kafka {}: {err}", self.release));
        // Kills the JVM (and removes its files) once this test process is gone.
        let watchdog = spawn_watchdog("kafka", jvm.id(), &self.dir);
        self.jvm = Some(jvm);
        self.watchdog = watchdog;
        self.wait_ready()
    }

    fn fail(&self, failure: StartFailure) -> ! {
        let why = match failure {
            StartFailure::PortTaken => "a listener port stayed taken".to_owned(),
            StartFailure::Exited(status) => format!("exit {status}"),
        };
        panic!(
            "Apache Kafka {} did not start ({why}):\n{}",
            self.release,
            self.log_tail(60)
        )
    }

    fn wait_ready(&mut self) -> Result<(), StartFailure> {
        let addr = self.bootstrap();
        let what = format!("Apache Kafka {} to list itself in Metadata", self.release);
        let start = std::time::Instant::now();
        loop {
            if kafka_admin::metadata(&addr, None).is_ok_and(|m| m.brokers >= 1) {
                return Ok(());
            }
            if let Some(status) = self
                .jvm
                .as_mut()
                .and_then(|jvm| jvm.try_wait().ok().flatten())
            {
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                return Err(if log.contains("Address already in use") {
                    StartFailure::PortTaken
                } else {
                    StartFailure::Exited(status.to_string())
                });
            }
            if start.elapsed() > READY {
                panic!(
                    "timed out after {READY:?} waiting for {what}:\n{}",
                    self.log_tail(60)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Creates `name` with `partitions` partitions (replication factor 1) and waits
    /// until every partition has a leader. Panics on a refusal.
    pub fn create_topic(&self, name: &str, partitions: i32) {
        create_topic_at(&self.bootstrap(), name, partitions);
    }

    /// SIGKILL: the JVM gets no chance to flush or to leave the group coordinator
    /// cleanly.
    pub fn kill9(&mut self) {
        kill_and_reap(&mut self.jvm);
        kill_and_reap(&mut self.watchdog);
    }

    /// Starts the broker again on the same ports and log directory (after
    /// [`KafkaBroker::kill9`]); returns once it is ready.
    pub fn restart(&mut self) {
        self.kill9();
        for attempt in 1.. {
            match self.launch() {
                Ok(()) => return,
                // Its own ports: someone may hold one for a moment; try again.
                Err(StartFailure::PortTaken) if attempt < BIND_ATTEMPTS => {
                    self.kill9();
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(failure) => self.fail(failure),
            }
        }
    }

    /// The last `lines` lines of the broker's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "---- last lines of Apache Kafka {} ({}) ----\n{}",
                self.release,
                self.log_path().display(),
                self.log_tail(40)
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Panics, saying how to fetch it, unless Apache Kafka `release`'s jars are here.
pub(crate) fn assert_fetched(release: &str) {
    let lib = dist_dir(release).join("lib");
    assert!(
        lib.join(format!("kafka_2.13-{release}.jar")).exists(),
        "Apache Kafka {release} is not fetched (no {}): run scripts/fetch-kafka.sh \
         (scripts/test and scripts/setup-test-tools.sh run it; it needs Java 17 and Maven)",
        lib.display()
    );
}

/// A `java` command running Apache Kafka `release`'s jars in `dir`, with its log
/// configuration from there and the JVM options `jvm` (heap, GC; see [`jvm_options`]).
pub(crate) fn kafka_java(release: &str, dir: &Path, jvm: &[&str]) -> Command {
    let lib = dist_dir(release).join("lib");
    let mut command = Command::new(std::env::var_os("JAVA").unwrap_or_else(|| "java".into()));
    command
        .args(jvm_options(jvm))
        .arg("-Xss1m")
        .arg(format!(
            "-Dlog4j.configuration=file:{}",
            dir.join("log4j.properties").display()
        ))
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            dir.join("log4j2.properties").display()
        ))
        .arg("-cp")
        .arg(format!("{}/*", lib.display()))
        .current_dir(dir)
        .stdin(Stdio::null());
    command
}

/// The JVM's heap and performance options: `jvm`'s, or, as Kafka's own start scripts
/// take them, `KAFKA_HEAP_OPTS` in place of its heap flags (`-Xms`, `-Xmx`) and
/// `KAFKA_JVM_PERFORMANCE_OPTS` in place of the others (the collector). The test
/// brokers run a small heap on the serial collector to leave the services a core; a
/// bench can run them as Kafka ships (see BENCHMARKS.md, "What the bench does").
fn jvm_options(jvm: &[&str]) -> Vec<String> {
    let (heap, rest): (Vec<&str>, Vec<&str>) = jvm.iter().partition(|o| o.starts_with("-Xm"));
    let from_env = |var: &str, fallback: Vec<&str>| -> Vec<String> {
        match std::env::var(var) {
            Ok(options) if !options.trim().is_empty() => {
                options.split_whitespace().map(str::to_owned).collect()
            }
            _ => fallback.into_iter().map(str::to_owned).collect(),
        }
    };
    let mut options = from_env("KAFKA_HEAP_OPTS", heap);
    options.extend(from_env("KAFKA_JVM_PERFORMANCE_OPTS", rest));
    options
}

/// Runs `format` (`kafka.tools.StorageTool format ...`); the test fails with its
/// output, naming `what` was formatted.
pub(crate) fn run_format(mut format: Command, what: &str) {
    let output = format.output().unwrap_or_else(|err| {
        panic!("cannot run java (Apache Kafka needs Java 17 on PATH or in $JAVA): {err}")
    });
    assert!(
        output.status.success(),
        "formatting the KRaft log dir of {what} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The logging set-up of a broker in `dir`: 3.9 logs through reload4j, 4.x through
/// log4j2; one file for each, both passed to the JVM.
pub(crate) fn write_log_configs(dir: &Path) {
    // 3.9 logs through reload4j, 4.x through log4j2: one file for each, both
    // passed; INFO to the broker's log file, shown when a test fails.
    std::fs::write(
        dir.join("log4j.properties"),
        "log4j.rootLogger=INFO, out\n\
         log4j.logger.kafka.request.logger=WARN\n\
         log4j.appender.out=org.apache.log4j.ConsoleAppender\n\
         log4j.appender.out.layout=org.apache.log4j.PatternLayout\n\
         log4j.appender.out.layout.ConversionPattern=[%d] %p %m (%c)%n\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("log4j2.properties"),
        "status = warn\n\
         appender.out.type = Console\n\
         appender.out.name = out\n\
         appender.out.layout.type = PatternLayout\n\
         appender.out.layout.pattern = [%d] %p %m (%c)%n\n\
         rootLogger.level = info\n\
         logger.request.name = kafka.request.logger\n\
         logger.request.level = warn\n\
         rootLogger.appenderRef.out.ref = out\n",
    )
    .unwrap();
}

/// The SASL_SSL listener's settings: a PEM keystore given inline (Kafka wants a key
/// password for a PEM keystore file, not for an inline key), PLAIN's user in the
/// JAAS configuration, SCRAM's in the metadata log (see `format`).
fn sasl_ssl_properties(listener: &SaslSsl) -> String {
    // A properties value on one line: `\n` escapes are read back as line breaks.
    let inline = |pem: &str| pem.trim().replace('\n', "\\n");
    format!(
        "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512\n\
         listener.name.sasl_ssl.plain.sasl.jaas.config=\
         org.apache.kafka.common.security.plain.PlainLoginModule required \
         user_{SASL_USER}=\"{SASL_PASSWORD}\";\n\
         listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=\
         org.apache.kafka.common.security.scram.ScramLoginModule required;\n\
         listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=\
         org.apache.kafka.common.security.scram.ScramLoginModule required;\n\
         listener.name.sasl_ssl.ssl.keystore.type=PEM\n\
         listener.name.sasl_ssl.ssl.keystore.certificate.chain={}\n\
         listener.name.sasl_ssl.ssl.keystore.key={}\n\
         listener.name.ssl.ssl.keystore.type=PEM\n\
         listener.name.ssl.ssl.keystore.certificate.chain={}\n\
         listener.name.ssl.ssl.keystore.key={}\n",
        inline(&listener.cert_chain),
        inline(&listener.key),
        inline(&listener.cert_chain),
        inline(&listener.key),
    )
}

/// CreateTopics at `addr` with `replication` replicas per partition, retried while
/// the broker (or cluster) is still settling; a refusal fails the test.
pub(crate) fn request_topic(addr: &str, name: &str, partitions: i32, replication: i16) {
    wait_until(
        READY,
        &format!("topic {name} to be created at {addr}"),
        || match kafka_admin::create_topic_replicated(addr, name, partitions, replication) {
            Ok((0, _)) => Some(()),
            Ok((code, _)) if kafka_admin::is_retriable(code) => None,
            Ok((code, message)) => {
                panic!("{addr} refused to create topic {name}: error {code} {message}")
            }
            Err(_) => None,
        },
    );
}

/// CreateTopics at `addr`, retried while the broker is still settling, then waits
/// until every partition has a leader that serves it (a produce right after succeeds).
pub(crate) fn create_topic_at(addr: &str, name: &str, partitions: i32) {
    request_topic(addr, name, partitions, 1);
    wait_until(
        READY,
        &format!("leaders for every partition of {name}"),
        || {
            let metadata = kafka_admin::metadata(addr, Some(name)).ok()?;
            (metadata.partitions.len() == partitions as usize
                && metadata.partitions.iter().all(|(_, leader)| *leader >= 0))
            .then_some(())
        },
    );
    // Metadata naming a leader is not enough on Apache Kafka: until the leader's replica
    // manager has taken over, a produce fails with NOT_LEADER_OR_FOLLOWER.
    wait_until(
        READY,
        &format!("every partition of {name} served by its leader"),
        || {
            let answers = kafka_admin::latest_offsets(addr, name, partitions).ok()?;
            (answers.len() == partitions as usize
                && answers.iter().all(|&(_, error, _)| error == 0))
            .then_some(())
        },
    );
}

/// A random KRaft cluster id: 16 bytes, URL-safe base64 without padding, as
/// `kafka-storage.sh random-uuid` prints (without a JVM start for it); never starting
/// with `-`, which the storage tool would read as an option (Kafka avoids it too).
pub(crate) fn cluster_id() -> String {
    loop {
        let id = random_base64_id();
        if !id.starts_with('-') {
            return id;
        }
    }
}

fn random_base64_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes: [u8; 16] = rand::random();
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut out = String::with_capacity(22);
    for byte in bytes {
        bits = (bits << 8) | u32::from(byte);
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(ALPHABET[((bits >> nbits) & 63) as usize] as char);
        }
    }
    if nbits > 0 {
        out.push(ALPHABET[((bits << (6 - nbits)) & 63) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn cluster_ids_are_22_url_safe_characters() {
        for _ in 0..100 {
            let id = super::cluster_id();
            assert_eq!(id.len(), 22, "{id}");
            assert!(!id.starts_with('-'), "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
        }
    }
}
