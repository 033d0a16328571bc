//! A minimal Prometheus registry: named counters, gauges and latency histograms,
//! and labelled families of counters and histograms ([`crate::family`]), rendered
//! as text.

use std::{
    fmt::Write as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use crate::family::{CounterFamily, GaugeFamily, HistogramFamily, Series};

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

    /// How many durations were observed.
    pub fn count(&self) -> u64 {
        self.0
            .buckets
            .iter()
            .map(|bucket| bucket.load(Ordering::Relaxed))
            .sum()
    }

    /// The `_bucket`, `_sum` and `_count` lines; `labels` (`a="x",b="y"`, or empty)
    /// go before `le`.
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
        let braced = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}\n\
             {name}_sum{braced} {sum}\n{name}_count{braced} {cumulative}"
        );
    }
}

#[derive(Debug)]
enum Instrument {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
    CounterFamily(Arc<Series<Counter>>),
    GaugeFamily(Arc<Series<Gauge>>),
    HistogramFamily(Arc<Series<Histogram>>),
}

/// The service's metrics; register once at start-up, update from anywhere.
#[derive(Debug, Default)]
pub struct Metrics {
    instruments: Mutex<Vec<(&'static str, &'static str, Instrument)>>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn counter(&self, name: &'static str, help: &'static str) -> Counter {
        let counter = Counter::default();
        self.register(name, help, Instrument::Counter(counter.clone()));
        counter
    }

    pub fn gauge(&self, name: &'static str, help: &'static str) -> Gauge {
        let gauge = Gauge::default();
        self.register(name, help, Instrument::Gauge(gauge.clone()));
        gauge
    }

    /// A latency histogram; by convention `name` ends in `_seconds`.
    pub fn histogram(&self, name: &'static str, help: &'static str) -> Histogram {
        let histogram = Histogram::default();
        self.register(name, help, Instrument::Histogram(histogram.clone()));
        histogram
    }

    /// Counters labelled `labels`, one series per set of values (see [`CounterFamily`]).
    /// Rendered only once it has a series, as the Prometheus client libraries do.
    pub fn counter_family<const N: usize>(
        &self,
        name: &'static str,
        help: &'static str,
        labels: [&'static str; N],
    ) -> CounterFamily<N> {
        let family = CounterFamily::new(labels);
        self.register(name, help, Instrument::CounterFamily(family.series()));
        family
    }

    /// Gauges labelled `labels`, one series per set of values (see [`GaugeFamily`]).
    /// Rendered only once it has a series.
    pub fn gauge_family<const N: usize>(
        &self,
        name: &'static str,
        help: &'static str,
        labels: [&'static str; N],
    ) -> GaugeFamily<N> {
        let family = GaugeFamily::new(labels);
        self.register(name, help, Instrument::GaugeFamily(family.series()));
        family
    }

    /// Latency histograms with `buckets` (upper bounds in seconds, ascending),
    /// labelled `labels`, one series per set of values (see [`HistogramFamily`]).
    pub fn histogram_family<const N: usize>(
        &self,
        name: &'static str,
        help: &'static str,
        labels: [&'static str; N],
        buckets: &'static [f64],
    ) -> HistogramFamily<N> {
        let family = HistogramFamily::new(labels, buckets);
        self.register(name, help, Instrument::HistogramFamily(family.series()));
        family
    }

    fn register(&self, name: &'static str, help: &'static str, instrument: Instrument) {
        let mut instruments = self
            .instruments
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        instruments.push((name, help, instrument));
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let instruments = self
            .instruments
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut out = String::new();
        for (name, help, instrument) in instruments.iter() {
            let header = |out: &mut String, kind: &str| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            };
            match instrument {
                Instrument::Counter(counter) => {
                    header(&mut out, "counter");
                    let _ = writeln!(out, "{name} {}", counter.get());
                }
                Instrument::Gauge(gauge) => {
                    header(&mut out, "gauge");
                    let _ = writeln!(out, "{name} {}", gauge.get());
                }
                Instrument::Histogram(histogram) => {
                    header(&mut out, "histogram");
                    histogram.render(name, "", &mut out);
                }
                Instrument::CounterFamily(series) => {
                    let series = series.snapshot();
                    if !series.is_empty() {
                        header(&mut out, "counter");
                    }
                    for (labels, counter) in series {
                        let _ = writeln!(out, "{name}{{{labels}}} {}", counter.get());
                    }
                }
                Instrument::GaugeFamily(series) => {
                    let series = series.snapshot();
                    if !series.is_empty() {
                        header(&mut out, "gauge");
                    }
                    for (labels, gauge) in series {
                        let _ = writeln!(out, "{name}{{{labels}}} {}", gauge.get());
                    }
                }
                Instrument::HistogramFamily(series) => {
                    let series = series.snapshot();
                    if !series.is_empty() {
                        header(&mut out, "histogram");
                    }
                    for (labels, histogram) in series {
                        histogram.render(name, &labels, &mut out);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::new();
        let created = metrics.counter("orders_created_total", "Orders created.");
        let backlog = metrics.gauge("outbox_backlog", "Unsent outbox rows.");
        created.add(3);
        backlog.set(-2);
        assert_eq!(
            metrics.render(),
            "# HELP orders_created_total Orders created.\n# TYPE orders_created_total counter\norders_created_total 3\n\
             # HELP outbox_backlog Unsent outbox rows.\n# TYPE outbox_backlog gauge\noutbox_backlog -2\n"
        );
    }

    #[test]
    fn histograms_render_cumulative_buckets_sum_and_count() {
        let metrics = Metrics::new();
        let delay = metrics.histogram("delay_seconds", "Delays.");
        for millis in [1, 3, 3, 40, 60_000] {
            delay.observe(Duration::from_millis(millis));
        }
        assert_eq!(delay.count(), 5);
        let text = metrics.render();
        for line in [
            "# TYPE delay_seconds histogram",
            "delay_seconds_bucket{le=\"0.001\"} 1",
            "delay_seconds_bucket{le=\"0.0025\"} 1",
            "delay_seconds_bucket{le=\"0.005\"} 3",
            "delay_seconds_bucket{le=\"0.025\"} 3",
            "delay_seconds_bucket{le=\"0.05\"} 4",
            "delay_seconds_bucket{le=\"30\"} 4",
            "delay_seconds_bucket{le=\"+Inf\"} 5",
            "delay_seconds_sum 60.047",
            "delay_seconds_count 5",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
        }
    }
}
