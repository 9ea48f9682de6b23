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

use crate::model::{Domain, DomainStatus, RecordStatus};
use crate::scheduler::Summary;
use crate::verify::CheckStats;

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

    /// As deployed: on stdout under `METRICS_NAMESPACE`, or off without it.
    pub fn from_env() -> Self {
        match std::env::var("METRICS_NAMESPACE") {
            Ok(namespace) if !namespace.trim().is_empty() => Self::stdout(namespace.trim()),
            _ => Self::off(),
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

    /// A process started (a cold start), by function (`AWS_LAMBDA_FUNCTION_NAME`).
    pub fn cold_start(&self) {
        let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".into());
        self.emit(
            MetricSet::for_operation("start")
                .dimension("Function", function)
                .count("ColdStarts", 1),
        );
    }
}

/// A domain's status as the API spells it (a metric dimension).
fn status_name(status: DomainStatus) -> &'static str {
    match status {
        DomainStatus::Pending => "pending",
        DomainStatus::Verified => "verified",
        DomainStatus::Failed => "failed",
        DomainStatus::TemporaryFailure => "temporary_failure",
    }
}

/// A manual verify: its outcome (the domain's status after it), its records by
/// status, and what its DNS lookups cost.
pub fn verification(domain: &Domain, stats: CheckStats) -> [MetricSet; 2] {
    let with = |status| domain.records.iter().filter(|r| r.status == status).count();
    [
        MetricSet::for_operation("verify")
            .dimension("Outcome", status_name(domain.status))
            .count("Verifications", 1),
        MetricSet::for_operation("verify")
            .count("RecordsVerified", with(RecordStatus::Verified))
            .count("RecordsPending", with(RecordStatus::Pending))
            .count("RecordsFailed", with(RecordStatus::Failed))
            .count("DnsLookupsIncomplete", stats.incomplete)
            .count("DnsQuestions", stats.questions)
            .millis("DnsCheckMillis", stats.elapsed),
    ]
}

/// A scheduled run: its summary, and what its DNS checks cost.
pub fn scheduled_run(summary: &Summary, checks: &[CheckStats], elapsed: Duration) -> MetricSet {
    let durations: Vec<Duration> = checks.iter().map(|c| c.elapsed).collect();
    MetricSet::for_operation("reverify")
        .count("Checked", summary.checked)
        .count("Verified", summary.verified)
        .count("StillVerified", summary.still_verified)
        .count("StillPending", summary.still_pending)
        .count("TemporaryFailures", summary.temporary_failures)
        .count("Failed", summary.failed)
        .count("Superseded", summary.superseded)
        .count("Gone", summary.gone)
        .count("Errors", summary.errors)
        .count("LeftForLater", summary.left_for_later)
        .count(
            "DnsLookupsIncomplete",
            checks.iter().map(|c| c.incomplete).sum(),
        )
        .count("DnsQuestions", checks.iter().map(|c| c.questions).sum())
        .millis_each("DnsCheckMillis", &durations)
        .millis("RunMillis", elapsed)
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
