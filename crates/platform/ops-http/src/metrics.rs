//! A minimal Prometheus registry: named counters, gauges and latency histograms
//! ([`crate::instruments`]) and labelled families of them ([`crate::family`]),
//! rendered as text.

use std::{
    fmt::Write as _,
    sync::{Arc, Mutex},
};

use crate::family::{CounterFamily, Family, GaugeFamily, HistogramFamily, Series};
use crate::instruments::{Counter, Gauge, Histogram, Sample};

/// Writes a registered metric's sample lines for its name: always some for a single
/// instrument, none for a family without series yet.
type WriteSamples = dyn Fn(&str, &mut String) + Send + Sync;

struct Samples(Box<WriteSamples>);

impl std::fmt::Debug for Samples {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Samples")
    }
}

/// One registered metric.
#[derive(Debug)]
struct Registered {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: Samples,
}

/// The service's metrics; register once at start-up, update from anywhere.
#[derive(Debug, Default)]
pub struct Metrics {
    instruments: Mutex<Vec<Registered>>,
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A counter, by convention named `..._total`.
    pub fn counter(&self, name: &'static str, help: &'static str) -> Counter {
        self.single(name, help, Counter::default())
    }

    /// A gauge: a value that goes up and down.
    pub fn gauge(&self, name: &'static str, help: &'static str) -> Gauge {
        self.single(name, help, Gauge::default())
    }

    /// A latency histogram; by convention `name` ends in `_seconds`.
    pub fn histogram(&self, name: &'static str, help: &'static str) -> Histogram {
        self.single(name, help, Histogram::default())
    }

    /// A histogram with its own `buckets` (upper bounds, ascending): in seconds for
    /// durations, or counts for [`Histogram::observe_count`] (e.g.
    /// [`crate::COUNT_BUCKETS`]).
    pub fn histogram_with_buckets(
        &self,
        name: &'static str,
        help: &'static str,
        buckets: &'static [f64],
    ) -> Histogram {
        self.single(name, help, Histogram::with_buckets(buckets))
    }

    /// Counters labelled `labels`, one series per set of values (see [`CounterFamily`]).
    /// Rendered only once it has a series, as the Prometheus client libraries do.
    pub fn counter_family<const N: usize>(
        &self,
        name: &'static str,
        help: &'static str,
        labels: [&'static str; N],
    ) -> CounterFamily<N> {
        self.labelled(name, help, labels)
    }

    /// Gauges labelled `labels`, one series per set of values (see [`GaugeFamily`]).
    /// Rendered only once it has a series.
    pub fn gauge_family<const N: usize>(
        &self,
        name: &'static str,
        help: &'static str,
        labels: [&'static str; N],
    ) -> GaugeFamily<N> {
        self.labelled(name, help, labels)
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
        self.family(name, help, family.series());
        family
    }

    /// A family of plain instruments (counters, gauges), registered.
    fn labelled<M: Sample + Default, const N: usize>(
        &self,
        name: &'static str,
        help: &'static str,
        labels: [&'static str; N],
    ) -> Family<M, N> {
        let family = Family::new(labels);
        self.family(name, help, family.series());
        family
    }

    fn single<M: Sample>(&self, name: &'static str, help: &'static str, instrument: M) -> M {
        let held = instrument.clone();
        let samples = move |name: &str, out: &mut String| held.render(name, "", out);
        self.register(name, help, M::KIND, Samples(Box::new(samples)));
        instrument
    }

    fn family<M: Sample>(&self, name: &'static str, help: &'static str, series: Arc<Series<M>>) {
        let samples = move |name: &str, out: &mut String| {
            for (labels, instrument) in series.snapshot() {
                instrument.render(name, &labels, out);
            }
        };
        self.register(name, help, M::KIND, Samples(Box::new(samples)));
    }

    fn register(
        &self,
        name: &'static str,
        help: &'static str,
        kind: &'static str,
        samples: Samples,
    ) {
        let mut instruments = self
            .instruments
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        instruments.push(Registered {
            name,
            help,
            kind,
            samples,
        });
    }

    /// The current value of one series as `/metrics` shows it, named with its labels
    /// exactly as rendered (`outbox_published_total`, `x_total{topic="t"}`); `None`
    /// before it has a value. For tests and diagnostics, not a hot path.
    pub fn value(&self, series: &str) -> Option<f64> {
        let prefix = format!("{series} ");
        self.render()
            .lines()
            .find_map(|line| line.strip_prefix(&prefix)?.parse().ok())
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let instruments = self
            .instruments
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut out = String::new();
        for metric in instruments.iter() {
            let mut lines = String::new();
            (metric.samples.0)(metric.name, &mut lines);
            // A family without series has no header either.
            if !lines.is_empty() {
                let (name, help, kind) = (metric.name, metric.help, metric.kind);
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                out.push_str(&lines);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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

    #[test]
    fn count_histograms_render_counts_in_their_own_buckets() {
        let metrics = Metrics::new();
        let size = metrics.histogram_with_buckets("batch_size", "Sizes.", &crate::COUNT_BUCKETS);
        for n in [1, 3, 64, 2000] {
            size.observe_count(n);
        }
        let text = metrics.render();
        for line in [
            "batch_size_bucket{le=\"1\"} 1",
            "batch_size_bucket{le=\"4\"} 2",
            "batch_size_bucket{le=\"64\"} 3",
            "batch_size_bucket{le=\"1024\"} 3",
            "batch_size_bucket{le=\"+Inf\"} 4",
            "batch_size_sum 2068",
            "batch_size_count 4",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
        }
    }
}
