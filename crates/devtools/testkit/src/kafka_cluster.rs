//! A 3-node Apache Kafka cluster in KRaft mode, from the same Maven Central jars as
//! [`KafkaBroker`](crate::KafkaBroker): each node is a broker and a controller (a
//! 3-voter controller quorum), with production's durability settings —
//! `default.replication.factor=3`, `min.insync.replicas=2`,
//! `unclean.leader.election.enable=false`, internal topics replicated 3 times — and
//! a small footprint: three JVMs share a test machine's cores, so each gets a 384 MB
//! heap, the serial GC and few network and I/O threads.
//!
//! [`KafkaCluster::kill9`] SIGKILLs one node and [`KafkaCluster::restart`] starts it
//! again on its ports and log directory; [`KafkaCluster::leaders`] and
//! [`KafkaCluster::busiest_leader`] say which node leads a topic's partitions (Metadata
//! from a live node), [`KafkaCluster::wait_led_without`] waits until the partitions a
//! dead node led have moved, and [`KafkaCluster::wait_in_sync`] until every replica is
//! back in sync. Each JVM has a watchdog, as the single-node broker has, and every
//! node is killed when the cluster is dropped.

use std::{
    collections::BTreeMap,
    fs::File,
    path::PathBuf,
    process::{Child, Command},
    time::{Duration, Instant},
};

use crate::kafka::{
    KafkaLine, READY, assert_fetched, cluster_id, kafka_java, request_topic, run_format,
    write_log_configs,
};
use crate::kafka_admin::{self, PartitionState};
use crate::tls_servers::{kill_and_reap, spawn_watchdog};
use crate::{free_port, unique_name, wait_until};

/// Nodes in a [`KafkaCluster`]; their node ids are `1..=NODES`.
pub const CLUSTER_NODES: i32 = 3;
/// Starts tried when a port turns out to be taken by the time a JVM binds it.
const BIND_ATTEMPTS: u32 = 5;
/// How long a partition may take to get a new leader or its replicas back in sync:
/// the controller fences a dead node after `broker.session.timeout.ms` (6 s here).
const FAILOVER: Duration = Duration::from_secs(120);

/// One node: broker and controller in one JVM.
struct Node {
    id: i32,
    dir: PathBuf,
    port: u16,
    controller_port: u16,
    jvm: Option<Child>,
    watchdog: Option<Child>,
}

impl Node {
    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("server.properties")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("broker.log")
    }

    fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn kill9(&mut self) {
        kill_and_reap(&mut self.jvm);
        kill_and_reap(&mut self.watchdog);
    }

    /// `Some(status)` once the JVM has exited.
    fn exited(&mut self) -> Option<String> {
        let jvm = self.jvm.as_mut()?;
        jvm.try_wait()
            .ok()
            .flatten()
            .map(|status| status.to_string())
    }
}

/// Why the nodes did not become ready.
enum StartFailure {
    PortTaken,
    Exited(i32, String),
}

/// A 3-node Apache Kafka cluster (KRaft, every node broker and controller).
pub struct KafkaCluster {
    line: KafkaLine,
    release: String,
    dir: PathBuf,
    nodes: Vec<Node>,
}

impl KafkaCluster {
    /// Formats three fresh log directories with one cluster id, starts the three
    /// JVMs and returns once every node's Metadata lists all three brokers. Panics
    /// with what to do when Java or the jars are missing.
    pub fn start(line: KafkaLine) -> Self {
        let release = line.release();
        assert_fetched(&release);
        let dir = std::env::temp_dir().join(unique_name(&format!("kafka-cluster-{release}")));
        let nodes = (1..=CLUSTER_NODES)
            .map(|id| Node {
                id,
                dir: dir.join(format!("node-{id}")),
                port: 0,
                controller_port: 0,
                jvm: None,
                watchdog: None,
            })
            .collect();
        let mut cluster = Self {
            line,
            release,
            dir,
            nodes,
        };
        // The ports were free when picked, but the JVMs bind them seconds later and
        // another test process may take one meanwhile: then start over on new ports.
        for attempt in 1.. {
            let _ = std::fs::remove_dir_all(&cluster.dir);
            for node in &mut cluster.nodes {
                node.port = free_port();
                node.controller_port = free_port();
                std::fs::create_dir_all(node.dir.join("data")).unwrap();
            }
            cluster.write_configs();
            let id = cluster_id();
            for index in 0..cluster.nodes.len() {
                cluster.format(index, &id);
            }
            for index in 0..cluster.nodes.len() {
                cluster.launch(index);
            }
            match cluster.wait_ready(&[1, 2, 3]) {
                Ok(()) => break,
                Err(StartFailure::PortTaken) if attempt < BIND_ATTEMPTS => {
                    cluster.nodes.iter_mut().for_each(Node::kill9);
                }
                Err(failure) => cluster.fail(failure),
            }
        }
        cluster
    }

    pub fn line(&self) -> KafkaLine {
        self.line
    }

    pub fn release(&self) -> &str {
        &self.release
    }

    /// Every node's `127.0.0.1:port`, comma-separated: `KAFKA_BROKERS`.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(Node::addr)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node ids, `1..=CLUSTER_NODES`.
    pub fn node_ids(&self) -> Vec<i32> {
        self.nodes.iter().map(|node| node.id).collect()
    }

    /// `127.0.0.1:port` of node `id`'s PLAINTEXT listener.
    pub fn node_addr(&self, id: i32) -> String {
        self.node(id).addr()
    }

    /// Whether node `id`'s JVM is running (not killed by [`KafkaCluster::kill9`]).
    pub fn is_running(&self, id: i32) -> bool {
        self.node(id).jvm.is_some()
    }

    fn node(&self, id: i32) -> &Node {
        self.nodes
            .iter()
            .find(|node| node.id == id)
            .unwrap_or_else(|| panic!("no node {id} in the cluster"))
    }

    fn index(&self, id: i32) -> usize {
        self.nodes
            .iter()
            .position(|node| node.id == id)
            .unwrap_or_else(|| panic!("no node {id} in the cluster"))
    }

    fn write_configs(&self) {
        let voters = self
            .nodes
            .iter()
            .map(|node| format!("{}@127.0.0.1:{}", node.id, node.controller_port))
            .collect::<Vec<_>>()
            .join(",");
        for node in &self.nodes {
            let (port, cport) = (node.port, node.controller_port);
            // Production's durability; a test's footprint (few threads, small
            // internal topics); a dead node fenced within 6 s so its partitions move
            // soon. Topics are created explicitly, as compose's kafka-init does.
            let config = format!(
                "process.roles=broker,controller\n\
                 node.id={id}\n\
                 controller.quorum.voters={voters}\n\
                 listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}\n\
                 advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n\
                 listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
                 controller.listener.names=CONTROLLER\n\
                 inter.broker.listener.name=PLAINTEXT\n\
                 log.dirs={data}\n\
                 num.partitions=3\n\
                 default.replication.factor=3\n\
                 min.insync.replicas=2\n\
                 unclean.leader.election.enable=false\n\
                 auto.create.topics.enable=false\n\
                 offsets.topic.replication.factor=3\n\
                 offsets.topic.num.partitions=3\n\
                 transaction.state.log.replication.factor=3\n\
                 transaction.state.log.min.isr=2\n\
                 transaction.state.log.num.partitions=1\n\
                 group.initial.rebalance.delay.ms=0\n\
                 broker.session.timeout.ms=6000\n\
                 broker.heartbeat.interval.ms=1000\n\
                 num.network.threads=1\n\
                 num.io.threads=2\n\
                 num.replica.fetchers=1\n\
                 background.threads=2\n\
                 log.cleaner.threads=1\n\
                 num.recovery.threads.per.data.dir=1\n",
                id = node.id,
                data = node.dir.join("data").display()
            );
            std::fs::write(node.config_path(), config).unwrap();
            write_log_configs(&node.dir);
        }
    }

    fn java(&self, node: &Node) -> Command {
        // Three JVMs share two cores with the services: small heaps, one GC thread,
        // the quick JIT only.
        kafka_java(
            &self.release,
            &node.dir,
            &[
                "-Xms64m",
                "-Xmx384m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
            ],
        )
    }

    /// `kafka-storage.sh format` of node `index` for cluster `id`.
    fn format(&self, index: usize, id: &str) {
        let node = &self.nodes[index];
        let mut command = self.java(node);
        command
            .args(["kafka.tools.StorageTool", "format", "-t", id, "-c"])
            .arg(node.config_path());
        let what = format!("node {} (Apache Kafka {})", node.id, self.release);
        run_format(command, &what);
    }

    /// Starts node `index`'s JVM (and its watchdog); does not wait.
    fn launch(&mut self, index: usize) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.nodes[index].log_path())
            .unwrap();
        let jvm = self
            .java(&self.nodes[index])
            .arg("kafka.Kafka")
            .arg(self.nodes[index].config_path())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start Apache Kafka {}: {err}", self.release));
        let node = &mut self.nodes[index];
        // Kills the JVM (and removes its files) once this test process is gone.
        node.watchdog = spawn_watchdog("kafka", jvm.id(), &node.dir);
        node.jvm = Some(jvm);
    }

    /// Waits until each node of `ids` answers Metadata listing every running node.
    fn wait_ready(&mut self, ids: &[i32]) -> Result<(), StartFailure> {
        let start = Instant::now();
        let mut waiting: Vec<i32> = ids.to_vec();
        let running = self.nodes.iter().filter(|node| node.jvm.is_some()).count();
        loop {
            waiting.retain(|&id| {
                kafka_admin::metadata(&self.node(id).addr(), None)
                    .map_or(true, |m| m.brokers < running)
            });
            if waiting.is_empty() {
                return Ok(());
            }
            for &id in ids {
                let index = self.index(id);
                if let Some(status) = self.nodes[index].exited() {
                    let log =
                        std::fs::read_to_string(self.nodes[index].log_path()).unwrap_or_default();
                    return Err(if log.contains("Address already in use") {
                        StartFailure::PortTaken
                    } else {
                        StartFailure::Exited(id, status)
                    });
                }
            }
            if start.elapsed() > READY {
                panic!(
                    "timed out after {READY:?} waiting for nodes {waiting:?} of Apache Kafka {} \
                     to list the {running} running brokers:\n{}",
                    self.release,
                    self.logs_tail(30)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn fail(&self, failure: StartFailure) -> ! {
        let why = match failure {
            StartFailure::PortTaken => "a listener port stayed taken".to_owned(),
            StartFailure::Exited(id, status) => format!("node {id} exited: {status}"),
        };
        panic!(
            "the Apache Kafka {} cluster did not start ({why}):\n{}",
            self.release,
            self.logs_tail(40)
        )
    }

    /// Metadata for `topic` from the first running node that answers.
    fn metadata(&self, topic: &str) -> Option<kafka_admin::Metadata> {
        self.nodes
            .iter()
            .filter(|node| node.jvm.is_some())
            .find_map(|node| kafka_admin::metadata(&node.addr(), Some(topic)).ok())
    }

    /// Every partition of `topic` as a running node's Metadata describes it: leader,
    /// replicas, in-sync replicas. Empty when no running node answers.
    pub fn partitions(&self, topic: &str) -> Vec<PartitionState> {
        self.metadata(topic)
            .map(|metadata| metadata.states)
            .unwrap_or_default()
    }

    /// Partition -> leader's node id (-1: none) of `topic`.
    pub fn leaders(&self, topic: &str) -> BTreeMap<i32, i32> {
        self.partitions(topic)
            .into_iter()
            .map(|state| (state.partition, state.leader))
            .collect()
    }

    /// The node leading the most partitions of `topics` among `candidates` (ties: the
    /// lowest id), and how many it leads; `None` when none of them leads any.
    pub fn busiest_leader(&self, topics: &[&str], candidates: &[i32]) -> Option<(i32, usize)> {
        let mut led: BTreeMap<i32, usize> = BTreeMap::new();
        for topic in topics {
            for leader in self.leaders(topic).into_values() {
                if candidates.contains(&leader) {
                    *led.entry(leader).or_default() += 1;
                }
            }
        }
        led.into_iter()
            .max_by_key(|&(id, count)| (count, -id))
            .filter(|&(_, count)| count > 0)
    }

    /// Creates `name` with `partitions` partitions, replicated on all three nodes,
    /// and waits until every replica is in sync and each leader serves its
    /// partitions (a produce right after succeeds). Panics on a refusal.
    pub fn create_topic(&self, name: &str, partitions: i32) {
        let addr = self.nodes[0].addr();
        request_topic(&addr, name, partitions, CLUSTER_NODES as i16);
        wait_until(
            READY,
            &format!("{name}'s {partitions} partitions to be led and in sync"),
            || {
                let states = self.partitions(name);
                (states.len() == partitions as usize
                    && states
                        .iter()
                        .all(|s| s.leader >= 0 && s.isr.len() == CLUSTER_NODES as usize))
                .then_some(())
            },
        );
        self.wait_served(name, partitions);
    }

    /// Waits until each partition's leader answers ListOffsets for it (Metadata
    /// naming a leader comes before its replica manager has taken over).
    fn wait_served(&self, name: &str, partitions: i32) {
        wait_until(
            READY,
            &format!("every partition of {name} served by its leader"),
            || {
                let leaders = self.leaders(name);
                (leaders.len() == partitions as usize).then_some(())?;
                leaders
                    .iter()
                    .all(|(&partition, &leader)| {
                        leader >= 0
                            && kafka_admin::latest_offsets(
                                &self.node(leader).addr(),
                                name,
                                partitions,
                            )
                            .is_ok_and(|answers| {
                                answers
                                    .iter()
                                    .any(|&(p, error, _)| p == partition && error == 0)
                            })
                    })
                    .then_some(())
            },
        );
    }

    /// SIGKILL of node `id`: no flush, no controlled shutdown, no leadership handed
    /// over; the controller notices when its session expires.
    pub fn kill9(&mut self, id: i32) {
        let index = self.index(id);
        self.nodes[index].kill9();
    }

    /// Waits until every partition of `topics` is led by a node other than `dead`
    /// and is served by that leader; returns the leaders.
    pub fn wait_led_without(
        &self,
        dead: i32,
        topics: &[&str],
    ) -> BTreeMap<String, BTreeMap<i32, i32>> {
        let leaders = wait_until(
            FAILOVER,
            &format!("the partitions node {dead} led to get another leader"),
            || {
                let mut all = BTreeMap::new();
                for topic in topics {
                    let leaders = self.leaders(topic);
                    (!leaders.is_empty() && leaders.values().all(|&l| l >= 0 && l != dead))
                        .then_some(())?;
                    all.insert((*topic).to_owned(), leaders);
                }
                Some(all)
            },
        );
        for (topic, led) in &leaders {
            self.wait_served(topic, led.len() as i32);
        }
        leaders
    }

    /// Starts node `id` again on its ports and log directory (after
    /// [`KafkaCluster::kill9`]); returns once it is back in the cluster (its Metadata
    /// lists every running node). Its replicas may still be catching up: see
    /// [`KafkaCluster::wait_in_sync`].
    pub fn restart(&mut self, id: i32) {
        let index = self.index(id);
        for attempt in 1.. {
            self.nodes[index].kill9();
            self.launch(index);
            match self.wait_ready(&[id]) {
                Ok(()) => return,
                // Its own ports: someone may hold one for a moment; try again.
                Err(StartFailure::PortTaken) if attempt < BIND_ATTEMPTS => {
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(failure) => self.fail(failure),
            }
        }
    }

    /// Waits until every partition of `topics` has all three replicas in sync.
    pub fn wait_in_sync(&self, topics: &[&str]) {
        for topic in topics {
            wait_until(
                FAILOVER,
                &format!("every replica of {topic} back in sync"),
                || {
                    let states = self.partitions(topic);
                    (!states.is_empty()
                        && states
                            .iter()
                            .all(|s| s.leader >= 0 && s.isr.len() == CLUSTER_NODES as usize))
                    .then_some(())
                },
            );
        }
    }

    /// SIGKILL of every node.
    pub fn kill9_all(&mut self) {
        self.nodes.iter_mut().for_each(Node::kill9);
    }

    /// Every node again (after [`KafkaCluster::kill9_all`]), started together so
    /// the controller quorum forms; returns once each lists all three brokers.
    pub fn restart_all(&mut self) {
        self.kill9_all();
        for index in 0..self.nodes.len() {
            self.launch(index);
        }
        let ids = self.node_ids();
        if let Err(failure) = self.wait_ready(&ids) {
            self.fail(failure);
        }
    }

    /// The last `lines` lines of node `id`'s log.
    pub fn log_tail(&self, id: i32, lines: usize) -> String {
        self.node(id).log_tail(lines)
    }

    fn logs_tail(&self, lines: usize) -> String {
        self.nodes
            .iter()
            .map(|node| format!("---- node {} ----\n{}", node.id, node.log_tail(lines)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for KafkaCluster {
    fn drop(&mut self) {
        self.kill9_all();
        if std::thread::panicking() {
            eprintln!(
                "---- last lines of the Apache Kafka {} cluster ({}) ----\n{}",
                self.release,
                self.dir.display(),
                self.logs_tail(30)
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
