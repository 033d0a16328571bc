//! A minimal Prometheus registry: named counters, gauges and latency histograms
//! ([`crate::instruments`]) and labelled families of them ([`crate::family`]),
//! rendered as text.

use std::{
    fmt::Write as _,
    sync::{Arc, Mutex},
};

use crate::family::{CounterFamily, GaugeFamily, HistogramFamily, Series};
use crate::instruments::{Counter, Gauge, Histogram};

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
}
