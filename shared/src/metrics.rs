//! CloudWatch metrics in Embedded Metric Format: one JSON line on stdout per set of
//! measurements, which CloudWatch Logs turns into metrics as it stores the line. No
//! client, no API call, nothing for a request to wait on, and no crate beyond the
//! JSON the logs already use.
//!
//! The namespace comes from `METRICS_NAMESPACE` (the template sets
//! `DomainsApi/<stack>`, so stacks never mix); without it nothing is emitted (the
//! dev server, tests).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};

/// At most this many values of one metric in one line (CloudWatch's limit).
const MAX_VALUES: usize = 100;

/// What a metric counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Occurrences.
    Count,
    /// Time.
    Milliseconds,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// Measurements that share their dimensions, emitted as one line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricSet {
    dimensions: Vec<(&'static str, String)>,
    values: Vec<(&'static str, Unit, Vec<f64>)>,
}

impl MetricSet {
    /// A set with one dimension, `Operation` (what measured it: `verify`,
    /// `reverify`, `ses`, `start`).
    pub fn for_operation(operation: &str) -> Self {
        Self::default().dimension("Operation", operation)
    }

    /// Adds a dimension (keep the values few: each combination is a metric).
    pub fn dimension(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.dimensions.push((name, value.into()));
        self
    }

    /// Adds a count.
    pub fn count(mut self, name: &'static str, count: usize) -> Self {
        self.values.push((name, Unit::Count, vec![count as f64]));
        self
    }

    /// Adds a duration.
    pub fn millis(self, name: &'static str, elapsed: Duration) -> Self {
        self.millis_each(name, &[elapsed])
    }

    /// Adds several durations of one metric (a distribution; the first 100).
    pub fn millis_each(mut self, name: &'static str, elapsed: &[Duration]) -> Self {
        if !elapsed.is_empty() {
            let values = elapsed
                .iter()
                .take(MAX_VALUES)
                .map(|d| d.as_secs_f64() * 1000.0)
                .collect();
            self.values.push((name, Unit::Milliseconds, values));
        }
        self
    }

    /// The EMF line for this set.
    pub fn to_emf(&self, namespace: &str, timestamp_ms: i64) -> Value {
        let mut line = Map::new();
        let dimension_names: Vec<&str> = self.dimensions.iter().map(|(name, _)| *name).collect();
        let metrics: Vec<Value> = self
            .values
            .iter()
            .map(|(name, unit, _)| json!({ "Name": name, "Unit": unit.name() }))
            .collect();
        line.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    "Dimensions": [dimension_names],
                    "Metrics": metrics,
                }],
            }),
        );
        for (name, value) in &self.dimensions {
            line.insert((*name).into(), Value::from(value.as_str()));
        }
        for (name, _, values) in &self.values {
            let value = match values.as_slice() {
                [one] => json!(one),
                many => json!(many),
            };
            line.insert((*name).into(), value);
        }
        Value::Object(line)
    }
}

/// Where metric lines go.
#[derive(Clone, Default)]
pub struct Metrics {
    sink: Sink,
}

#[derive(Clone, Default)]
enum Sink {
    #[default]
    Off,
    Stdout(Arc<str>),
    Memory(Arc<str>, Arc<Mutex<Vec<Value>>>),
}

/// The lines a `Metrics::in_memory` captured.
#[derive(Clone)]
pub struct Captured(Arc<Mutex<Vec<Value>>>);

impl Captured {
    /// Every line so far.
    pub fn lines(&self) -> Vec<Value> {
        self.0.lock().map(|lines| lines.clone()).unwrap_or_default()
    }
}

impl Metrics {
    /// Emits nothing.
    pub fn off() -> Self {
        Self::default()
    }

    /// EMF lines on stdout, under `namespace`.
    pub fn stdout(namespace: &str) -> Self {
        Self {
            sink: Sink::Stdout(namespace.into()),
        }
    }

    /// As deployed: on stdout under the namespace (`METRICS_NAMESPACE`), or off
    /// without one.
    pub fn for_namespace(namespace: Option<&str>) -> Self {
        match namespace {
            Some(namespace) => Self::stdout(namespace),
            None => Self::off(),
        }
    }

    /// Kept in memory (tests read them back).
    pub fn in_memory(namespace: &str) -> (Self, Captured) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        (
            Self {
                sink: Sink::Memory(namespace.into(), lines.clone()),
            },
            Captured(lines),
        )
    }

    /// Emits one set, stamped now. Never fails a request: a line that cannot be
    /// written is dropped.
    pub fn emit(&self, set: MetricSet) {
        let now = chrono::Utc::now().timestamp_millis();
        match &self.sink {
            Sink::Off => {}
            Sink::Stdout(namespace) => {
                let line = set.to_emf(namespace, now).to_string();
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
            }
            Sink::Memory(namespace, lines) => {
                if let Ok(mut lines) = lines.lock() {
                    lines.push(set.to_emf(namespace, now));
                }
            }
        }
    }

    /// A process started (a cold start), by function.
    pub fn cold_start(&self, function: &str) {
        self.emit(
            MetricSet::for_operation("start")
                .dimension("Function", function)
                .count("ColdStarts", 1),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_one_emf_line_whose_metrics_are_its_top_level_members() {
        let set = MetricSet::for_operation("verify")
            .dimension("Outcome", "verified")
            .count("Verifications", 1)
            .millis("DnsCheckMillis", Duration::from_millis(250));
        let line = set.to_emf("DomainsApi/test", 1_795_804_761_123);
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(line["_aws"]["Timestamp"], 1_795_804_761_123_i64);
        assert_eq!(directive["Namespace"], "DomainsApi/test");
        assert_eq!(directive["Dimensions"], json!([["Operation", "Outcome"]]));
        assert_eq!(
            directive["Metrics"],
            json!([
                { "Name": "Verifications", "Unit": "Count" },
                { "Name": "DnsCheckMillis", "Unit": "Milliseconds" },
            ])
        );
        assert_eq!(line["Operation"], "verify");
        assert_eq!(line["Outcome"], "verified");
        assert_eq!(line["Verifications"], 1.0);
        assert_eq!(line["DnsCheckMillis"], 250.0);
    }

    #[test]
    fn distributions_are_arrays_of_at_most_100_values() {
        let elapsed: Vec<Duration> = (0..150).map(Duration::from_millis).collect();
        let line = MetricSet::for_operation("reverify")
            .millis_each("DnsCheckMillis", &elapsed)
            .millis_each("Nothing", &[])
            .to_emf("n", 0);
        assert_eq!(line["DnsCheckMillis"].as_array().map(Vec::len), Some(100));
        assert!(
            line.get("Nothing").is_none(),
            "an empty distribution is no metric"
        );
    }

    #[test]
    fn lines_go_where_the_sink_says() {
        let (metrics, captured) = Metrics::in_memory("n");
        metrics.emit(MetricSet::for_operation("x").count("C", 2));
        assert_eq!(captured.lines().len(), 1);
        assert_eq!(captured.lines()[0]["C"], 2.0);
        Metrics::off().emit(MetricSet::for_operation("x").count("C", 2));
    }
}
