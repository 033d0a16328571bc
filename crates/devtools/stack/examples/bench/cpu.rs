//! Who spent the CPU during a phase: PostgreSQL, Redis, Apache Kafka's JVM, the
//! platform's services (this process, devbroker included) and the bench's own load
//! generator (this process's threads named [`LOAD_THREAD_NAME`]), read from `/proc`
//! before and after the phase. Linux only; elsewhere every figure is zero.

use std::collections::BTreeMap;
use std::fs;
use std::process::Command;
use std::time::Instant;

/// The name of the load generator's runtime threads, so their CPU is told apart from
/// the services' in this same process.
pub const LOAD_THREAD_NAME: &str = "bench-load";

/// Who a CPU figure belongs to, in the order the report lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Spender {
    Postgres,
    Services,
    LoadGenerator,
    Redis,
    KafkaJvm,
}

impl Spender {
    fn label(self) -> &'static str {
        match self {
            Spender::Postgres => "PostgreSQL",
            Spender::Services => "services",
            Spender::LoadGenerator => "load generator",
            Spender::Redis => "Redis",
            Spender::KafkaJvm => "Kafka JVM",
        }
    }
}

/// CPU ticks (user + system) spent so far, by spender.
pub struct CpuSample {
    at: Instant,
    ticks: BTreeMap<Spender, u64>,
}

impl CpuSample {
    pub fn take() -> Self {
        let mut ticks = BTreeMap::new();
        let mut add = |spender: Spender, spent: u64| *ticks.entry(spender).or_insert(0) += spent;
        let own = std::process::id().to_string();
        if let Ok(processes) = fs::read_dir("/proc") {
            for process in processes.flatten() {
                let pid = process.file_name().to_string_lossy().into_owned();
                if pid == own || !pid.bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                let Some((name, spent)) = read_stat(&format!("/proc/{pid}/stat")) else {
                    continue;
                };
                let spender = match name.as_str() {
                    "postgres" => Spender::Postgres,
                    "redis-server" => Spender::Redis,
                    "java" => Spender::KafkaJvm,
                    _ => continue,
                };
                add(spender, spent);
            }
        }
        // This process as a whole (its threads that have exited included, which a sum
        // over /proc/self/task would lose), less the load generator's threads, which
        // live as long as the bench.
        let mut load = 0;
        if let Ok(threads) = fs::read_dir("/proc/self/task") {
            for thread in threads.flatten() {
                let path = thread.path().join("stat");
                if let Some((name, spent)) = read_stat(&path.to_string_lossy())
                    && name.starts_with(LOAD_THREAD_NAME)
                {
                    load += spent;
                }
            }
        }
        if let Some((_, total)) = read_stat("/proc/self/stat") {
            add(Spender::LoadGenerator, load);
            add(Spender::Services, total.saturating_sub(load));
        }
        CpuSample {
            at: Instant::now(),
            ticks,
        }
    }

    /// The CPU spent between `self` and `later`, in cores (CPU seconds per wall
    /// second), as one line: `PostgreSQL 0.91 cores (47%), services ...`.
    pub fn split_until(&self, later: &CpuSample) -> CpuSplit {
        let wall = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let per_second = ticks_per_second() as f64;
        let cores: Vec<(Spender, f64)> = later
            .ticks
            .iter()
            .map(|(spender, after)| {
                let before = self.ticks.get(spender).copied().unwrap_or(0);
                let spent = after.saturating_sub(before) as f64 / per_second;
                (*spender, spent / wall)
            })
            .collect();
        CpuSplit { cores }
    }
}

/// The result of [`CpuSample::split_until`].
pub struct CpuSplit {
    cores: Vec<(Spender, f64)>,
}

impl std::fmt::Display for CpuSplit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total: f64 = self.cores.iter().map(|(_, cores)| cores).sum();
        let mut first = true;
        for (spender, cores) in &self.cores {
            if *cores < 0.005 {
                continue;
            }
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(
                f,
                "{} {:.2} ({:.0}%)",
                spender.label(),
                cores,
                cores / total.max(1e-9) * 100.0
            )?;
        }
        write!(f, "; {total:.2} of {} cores busy", available_cores())
    }
}

/// `(comm, utime + stime)` from a `/proc/.../stat` file.
fn read_stat(path: &str) -> Option<(String, u64)> {
    let stat = fs::read_to_string(path).ok()?;
    // comm may hold spaces and parentheses: it ends at the last ')'.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    // After the comm: state is field 3 of stat(5), utime 14 and stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

fn ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100)
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
