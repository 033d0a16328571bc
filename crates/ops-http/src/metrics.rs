//! A minimal Prometheus registry: named counters and gauges, rendered as text.

use std::{
    fmt::Write as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
};

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

#[derive(Debug)]
enum Instrument {
    Counter(Counter),
    Gauge(Gauge),
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
            let (kind, value) = match instrument {
                Instrument::Counter(counter) => ("counter", counter.get().to_string()),
                Instrument::Gauge(gauge) => ("gauge", gauge.get().to_string()),
            };
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
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
}
