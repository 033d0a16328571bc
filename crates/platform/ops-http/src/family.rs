//! Labelled metric families: one counter, gauge or histogram per combination of label
//! values, as Prometheus client libraries' `CounterVec` / `HistogramVec`
//! (`opp_http_requests_total{service="gateway",method="POST",route="/orders",status="200"}`).
//!
//! The label names are fixed when the family is registered, and the number of values
//! is checked at compile time (`[&str; N]`). Every distinct set of values is a new
//! time series that lives as long as the process: callers must keep the values to a
//! small, bounded set (route patterns, not raw paths).

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{Arc, RwLock},
};

use crate::instruments::{Counter, Gauge, Histogram};

/// The series of one family, keyed by their rendered label set (`a="x",b="y"`),
/// which is also the order they are rendered in.
#[derive(Debug)]
pub(crate) struct Series<M> {
    names: Box<[&'static str]>,
    by_labels: RwLock<BTreeMap<String, M>>,
}

impl<M: Clone> Series<M> {
    fn new(names: &[&'static str]) -> Self {
        Self {
            names: names.into(),
            by_labels: RwLock::new(BTreeMap::new()),
        }
    }

    /// The instrument for `values` (one per name, in order), created by `new` on first use.
    fn get_or_insert(&self, values: &[&str], new: impl FnOnce() -> M) -> M {
        let key = render_labels(&self.names, values);
        {
            let series = self
                .by_labels
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(instrument) = series.get(&key) {
                return instrument.clone();
            }
        }
        let mut series = self
            .by_labels
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        series.entry(key).or_insert_with(new).clone()
    }

    /// Each series' rendered label set and instrument, in label order.
    pub(crate) fn snapshot(&self) -> Vec<(String, M)> {
        let series = self
            .by_labels
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        series
            .iter()
            .map(|(labels, instrument)| (labels.clone(), instrument.clone()))
            .collect()
    }
}

/// `name="value",...` with values escaped as the text format requires (`\\`, `\"`, `\n`).
fn render_labels(names: &[&'static str], values: &[&str]) -> String {
    let mut out = String::new();
    for (index, (name, value)) in names.iter().zip(values).enumerate() {
        if index > 0 {
            out.push(',');
        }
        let _ = write!(out, "{name}=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out
}

/// Counters or gauges by label values; see [`crate::Metrics::counter_family`] and
/// [`crate::Metrics::gauge_family`].
#[derive(Debug, Clone)]
pub struct Family<M, const N: usize>(Arc<Series<M>>);

/// Counters by label values; see [`crate::Metrics::counter_family`].
pub type CounterFamily<const N: usize> = Family<Counter, N>;

/// Gauges by label values; see [`crate::Metrics::gauge_family`].
pub type GaugeFamily<const N: usize> = Family<Gauge, N>;

impl<M: Clone + Default, const N: usize> Family<M, N> {
    pub(crate) fn new(names: [&'static str; N]) -> Self {
        Self(Arc::new(Series::new(&names)))
    }

    pub(crate) fn series(&self) -> Arc<Series<M>> {
        self.0.clone()
    }

    /// The instrument for these label values (in the order of the family's names),
    /// created at 0 on first use. Keep the handle to skip the lookup next time.
    pub fn with_labels(&self, values: [&str; N]) -> M {
        self.0.get_or_insert(&values, M::default)
    }
}

/// Histograms by label values, all with the same buckets; see
/// [`crate::Metrics::histogram_family`].
#[derive(Debug, Clone)]
pub struct HistogramFamily<const N: usize> {
    series: Arc<Series<Histogram>>,
    buckets: &'static [f64],
}

impl<const N: usize> HistogramFamily<N> {
    pub(crate) fn new(names: [&'static str; N], buckets: &'static [f64]) -> Self {
        Self {
            series: Arc::new(Series::new(&names)),
            buckets,
        }
    }

    pub(crate) fn series(&self) -> Arc<Series<Histogram>> {
        self.series.clone()
    }

    /// The histogram for these label values, created empty on first use.
    pub fn with_labels(&self, values: [&str; N]) -> Histogram {
        let buckets = self.buckets;
        self.series
            .get_or_insert(&values, || Histogram::with_buckets(buckets))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{Metrics, PROMETHEUS_DEFAULT_BUCKETS};

    #[test]
    fn counters_render_one_line_per_label_set_in_label_order() {
        let metrics = Metrics::new();
        let requests = metrics.counter_family(
            "http_requests_total",
            "HTTP requests answered.",
            ["method", "route", "status"],
        );
        requests.with_labels(["POST", "/orders", "200"]).add(2);
        requests.with_labels(["GET", "/orders/{id}", "404"]).inc();
        // The same labels are the same series.
        requests.with_labels(["POST", "/orders", "200"]).inc();
        assert_eq!(requests.with_labels(["POST", "/orders", "200"]).get(), 3);
        assert_eq!(
            metrics.render(),
            "# HELP http_requests_total HTTP requests answered.\n\
             # TYPE http_requests_total counter\n\
             http_requests_total{method=\"GET\",route=\"/orders/{id}\",status=\"404\"} 1\n\
             http_requests_total{method=\"POST\",route=\"/orders\",status=\"200\"} 3\n"
        );
    }

    #[test]
    fn gauges_render_their_last_value_per_label_set() {
        let metrics = Metrics::new();
        let lag = metrics.gauge_family(
            "kafka_consumer_lag",
            "Messages behind.",
            ["topic", "partition"],
        );
        lag.with_labels(["order-topic", "1"]).set(7);
        lag.with_labels(["order-topic", "0"]).set(3);
        lag.with_labels(["order-topic", "0"]).set(0);
        assert_eq!(
            metrics.render(),
            "# HELP kafka_consumer_lag Messages behind.\n\
             # TYPE kafka_consumer_lag gauge\n\
             kafka_consumer_lag{topic=\"order-topic\",partition=\"0\"} 0\n\
             kafka_consumer_lag{topic=\"order-topic\",partition=\"1\"} 7\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let metrics = Metrics::new();
        let family = metrics.counter_family("odd_total", "Odd values.", ["value"]);
        family
            .with_labels(["a \"quoted\" back\\slash\nnewline"])
            .inc();
        assert_eq!(
            metrics.render().lines().last(),
            Some(r#"odd_total{value="a \"quoted\" back\\slash\nnewline"} 1"#)
        );
    }

    #[test]
    fn a_family_without_series_renders_nothing() {
        let metrics = Metrics::new();
        let _family = metrics.counter_family("unused_total", "Nothing yet.", ["route"]);
        let _histogram = metrics.histogram_family(
            "unused_seconds",
            "Nothing yet.",
            ["route"],
            &PROMETHEUS_DEFAULT_BUCKETS,
        );
        assert_eq!(metrics.render(), "");
    }

    #[test]
    fn histograms_put_le_after_the_family_labels() {
        let metrics = Metrics::new();
        let durations = metrics.histogram_family(
            "http_request_duration_seconds",
            "Time to answer.",
            ["method", "route"],
            &PROMETHEUS_DEFAULT_BUCKETS,
        );
        let post = durations.with_labels(["POST", "/orders"]);
        post.observe(Duration::from_millis(3));
        post.observe(Duration::from_millis(70));
        durations
            .with_labels(["GET", "/healthz"])
            .observe(Duration::from_secs(12));
        let expected = "# HELP http_request_duration_seconds Time to answer.\n\
# TYPE http_request_duration_seconds histogram\n\
http_request_duration_seconds_bucket{method=\"GET\",route=\"/healthz\",le=\"0.005\"} 0\n\
http_request_duration_seconds_bucket{method=\"GET\",route=\"/healthz\",le=\"0.01\"} 0\n\
http_request_duration_seconds_bucket{method=\"GET\",route=\"/healthz\",le=\"0.025\"} 0\n\
http_request_duration_seconds_bucket{method=\"GET\",route=\"/healthz\",le=\"0.05\"} 0\n\
http_request_duration_seconds_bucket{method=\"GET\",route=\"/healthz\",le=\"0.1\"} 0\n\
http_request_duration_seconds_bucket{method=\"GET\",route=\"/healthz\",le=\"0.25\"} 0\n\
http_request_duration_seconds_bucket{method=\"GET\",route=\"/healthz\",le=\"0.5\"} 0\n\
http_request_duration_seconds_bucket{method=\"GET\",route=\"/healthz\",le=\"1\"} 0\n\
http_request_duration_seconds_bucket{method=\"GET\",route=\"/healthz\",le=\"2.5\"} 0\n\
http_request_duration_seconds_bucket{method=\"GET\",route=\"/healthz\",le=\"5\"} 0\n\
http_request_duration_seconds_bucket{method=\"GET\",route=\"/healthz\",le=\"10\"} 0\n\
http_request_duration_seconds_bucket{method=\"GET\",route=\"/healthz\",le=\"+Inf\"} 1\n\
http_request_duration_seconds_sum{method=\"GET\",route=\"/healthz\"} 12\n\
http_request_duration_seconds_count{method=\"GET\",route=\"/healthz\"} 1\n\
http_request_duration_seconds_bucket{method=\"POST\",route=\"/orders\",le=\"0.005\"} 1\n\
http_request_duration_seconds_bucket{method=\"POST\",route=\"/orders\",le=\"0.01\"} 1\n\
http_request_duration_seconds_bucket{method=\"POST\",route=\"/orders\",le=\"0.025\"} 1\n\
http_request_duration_seconds_bucket{method=\"POST\",route=\"/orders\",le=\"0.05\"} 1\n\
http_request_duration_seconds_bucket{method=\"POST\",route=\"/orders\",le=\"0.1\"} 2\n\
http_request_duration_seconds_bucket{method=\"POST\",route=\"/orders\",le=\"0.25\"} 2\n\
http_request_duration_seconds_bucket{method=\"POST\",route=\"/orders\",le=\"0.5\"} 2\n\
http_request_duration_seconds_bucket{method=\"POST\",route=\"/orders\",le=\"1\"} 2\n\
http_request_duration_seconds_bucket{method=\"POST\",route=\"/orders\",le=\"2.5\"} 2\n\
http_request_duration_seconds_bucket{method=\"POST\",route=\"/orders\",le=\"5\"} 2\n\
http_request_duration_seconds_bucket{method=\"POST\",route=\"/orders\",le=\"10\"} 2\n\
http_request_duration_seconds_bucket{method=\"POST\",route=\"/orders\",le=\"+Inf\"} 2\n\
http_request_duration_seconds_sum{method=\"POST\",route=\"/orders\"} 0.073\n\
http_request_duration_seconds_count{method=\"POST\",route=\"/orders\"} 2\n";
        assert_eq!(metrics.render(), expected);
    }
}
