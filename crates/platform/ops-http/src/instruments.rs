//! The instruments a service updates: [`Counter`], [`Gauge`] and the latency
//! [`Histogram`] (with its bucket sets). The registry ([`crate::Metrics`]) and the
//! labelled families ([`crate::family`]) hold and render them.

use std::{
    fmt::Write as _,
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

/// How an instrument appears in the text format, alone or as a family's series.
pub(crate) trait Sample: Clone + Send + Sync + 'static {
    /// The `# TYPE` of the metric.
    const KIND: &'static str;
    /// Writes its lines for `name`; `labels` is `a="x",b="y"`, or empty.
    fn render(&self, name: &str, labels: &str, out: &mut String);
}

/// `{a="x"}`, or nothing without labels.
fn braced(labels: &str) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    }
}

/// A monotonically increasing count.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, by: u64) {
        self.0.fetch_add(by, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Clone, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    pub fn set(&self, value: i64) {
        self.0.store(value, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds, in seconds, of the latency buckets: 1 ms to 30 s, so both a
/// millisecond outbox hop and a request stuck behind a timeout land in a bucket.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The Prometheus client libraries' default buckets (client_golang's
/// `prometheus.DefBuckets`), 5 ms to 10 s: what a Go service's histogram has when
/// its code names no buckets.
pub const PROMETHEUS_DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds for histograms of counts ([`Histogram::observe_count`]): powers of two
/// from 1 to 1024, e.g. orders per committed batch.
pub const COUNT_BUCKETS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// A distribution of durations in buckets ([`LATENCY_BUCKETS`] unless made with
/// [`Histogram::with_buckets`], plus one for anything longer), with their count and
/// sum: Prometheus computes quantiles from it
/// (`histogram_quantile(0.99, rate(<name>_bucket[5m]))`).
#[derive(Debug, Clone)]
pub struct Histogram(Arc<HistogramCells>);

#[derive(Debug)]
struct HistogramCells {
    /// Upper bounds in seconds, ascending.
    bounds: &'static [f64],
    /// Per bucket, not cumulative (one atomic add per observation); the last cell
    /// counts what is above the largest bound.
    buckets: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::with_buckets(&LATENCY_BUCKETS)
    }
}

impl Histogram {
    /// A histogram with these upper bounds, in seconds, ascending.
    pub fn with_buckets(bounds: &'static [f64]) -> Self {
        Self(Arc::new(HistogramCells {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }))
    }

    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let cells = &self.0;
        let bucket = cells
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(cells.bounds.len());
        if let Some(cell) = cells.buckets.get(bucket) {
            cell.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        cells.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Records a count instead of a duration (e.g. items per batch), for a histogram
    /// made with count bounds (see [`COUNT_BUCKETS`] and
    /// [`crate::Metrics::histogram_with_buckets`]): `n` lands in the first bucket
    /// whose bound is at least `n`, and `_sum` adds `n`.
    pub fn observe_count(&self, n: u64) {
        self.observe(Duration::from_secs(n));
    }

    /// How many durations were observed.
    pub fn count(&self) -> u64 {
        self.0
            .buckets
            .iter()
            .map(|bucket| bucket.load(Ordering::Relaxed))
            .sum()
    }
}

/// The `_bucket`, `_sum` and `_count` lines; the labels go before `le`.
impl Sample for Histogram {
    const KIND: &'static str = "histogram";

    fn render(&self, name: &str, labels: &str, out: &mut String) {
        let cells = &self.0;
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, bucket) in cells.bounds.iter().zip(cells.buckets.iter()) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += cells
            .buckets
            .get(cells.bounds.len())
            .map_or(0, |bucket| bucket.load(Ordering::Relaxed));
        let sum = cells.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let braced = braced(labels);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}\n\
             {name}_sum{braced} {sum}\n{name}_count{braced} {cumulative}"
        );
    }
}

// Counters and gauges: one `name{labels} value` line.
macro_rules! one_line_sample {
    ($instrument:ty, $kind:literal) => {
        impl Sample for $instrument {
            const KIND: &'static str = $kind;

            fn render(&self, name: &str, labels: &str, out: &mut String) {
                let _ = writeln!(out, "{name}{} {}", braced(labels), self.get());
            }
        }
    };
}

one_line_sample!(Counter, "counter");
one_line_sample!(Gauge, "gauge");
