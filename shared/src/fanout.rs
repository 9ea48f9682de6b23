//! The scheduled sweep fanned out across parallel invocations. With
//! `REVERIFY_WORKERS` above 1, the schedule's tick starts the other workers by
//! putting one task each on an EventBridge bus of the scheduler's own (a rule
//! invokes the same function asynchronously with it: Lambda's retries and the
//! on-failure queue apply as to the tick) and sweeps worker 0's share itself.
//! Each worker reads only its due partitions (`store::DueSlice`), so no domain is
//! checked twice. Why EventBridge and not a queue or a self-invoke:
//! `docs/verification.md`, "Fan-out".

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde::{Deserialize, Serialize};

use crate::app::{StartupError, load_sdk_config};
use crate::config::{ConfigError, FanoutSettings};
use crate::publishing::{MAX_ENTRIES_PER_PUT, put_entries};
use crate::store::DueSlice;

/// The `source` of a worker's task.
pub const TASK_SOURCE: &str = "domains-api.scheduler";
/// The `detail-type` of a worker's task.
pub const TASK_DETAIL_TYPE: &str = "Reverify share";

/// One worker's task: its share of the due work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerTask {
    /// Which worker (0 is the tick's own).
    pub worker: u32,
    /// How many share the due work.
    pub workers: u32,
}

/// What an invocation of the scheduled function is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invocation {
    /// The schedule's tick (or any other event, such as a manual invoke): start
    /// the other workers, if there are any, and sweep worker 0's share.
    Tick,
    /// A task from a tick: sweep this share.
    Worker(DueSlice),
}

/// What the invocation's event asks for. A worker task that does not name a
/// valid share is an error (never a sweep of everything, which would check
/// domains twice alongside the real workers).
pub fn invocation_of(event: &serde_json::Value) -> Result<Invocation, String> {
    let is_task = event.get("source").and_then(|s| s.as_str()) == Some(TASK_SOURCE)
        && event.get("detail-type").and_then(|s| s.as_str()) == Some(TASK_DETAIL_TYPE);
    if !is_task {
        return Ok(Invocation::Tick);
    }
    let task: WorkerTask = event
        .get("detail")
        .cloned()
        .ok_or_else(|| "a worker task without its detail".to_string())
        .and_then(|detail| {
            serde_json::from_value(detail).map_err(|e| format!("a worker task's detail: {e}"))
        })?;
    DueSlice::new(task.worker, task.workers).map(Invocation::Worker)
}

/// Where a tick sends the other workers' tasks.
#[async_trait]
pub trait TaskQueue: Send + Sync {
    /// Sends every task, or says which could not be sent.
    async fn send(&self, tasks: &[WorkerTask]) -> Result<(), String>;
}

/// The scheduler's EventBridge bus.
pub struct EventBridgeTasks {
    client: aws_sdk_eventbridge::Client,
    bus_name: String,
}

impl EventBridgeTasks {
    /// Tasks put on `bus_name` through `client`.
    pub fn new(client: aws_sdk_eventbridge::Client, bus_name: impl Into<String>) -> Self {
        Self {
            client,
            bus_name: bus_name.into(),
        }
    }
}

#[async_trait]
impl TaskQueue for EventBridgeTasks {
    async fn send(&self, tasks: &[WorkerTask]) -> Result<(), String> {
        let mut failed = Vec::new();
        for chunk in tasks.chunks(MAX_ENTRIES_PER_PUT) {
            let entries = chunk
                .iter()
                .map(|task| {
                    let detail = serde_json::to_string(task).map_err(|e| e.to_string())?;
                    Ok(PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus_name)
                        .source(TASK_SOURCE)
                        .detail_type(TASK_DETAIL_TYPE)
                        .detail(detail)
                        .build())
                })
                .collect::<Result<Vec<_>, String>>()?;
            let results = put_entries(&self.client, entries).await;
            for (task, result) in chunk.iter().zip(results) {
                if let Some(why) = result {
                    failed.push(format!("worker {}: {why}", task.worker));
                }
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }
}

/// How many workers share a sweep, and where the tick sends their tasks.
pub struct Fanout {
    workers: u32,
    tasks: Box<dyn TaskQueue>,
}

impl Fanout {
    /// `workers` workers (2 to `DUE_PARTITIONS`), started through `tasks`.
    pub fn new(workers: u32, tasks: Box<dyn TaskQueue>) -> Result<Self, String> {
        DueSlice::new(0, workers)?;
        Ok(Self { workers, tasks })
    }

    /// The tasks of every worker but the tick's own.
    pub fn other_tasks(&self) -> Vec<WorkerTask> {
        (1..self.workers)
            .map(|worker| WorkerTask {
                worker,
                workers: self.workers,
            })
            .collect()
    }

    /// The tick's own share.
    pub fn own_slice(&self) -> DueSlice {
        DueSlice::new(0, self.workers).unwrap_or(DueSlice::ALL)
    }

    /// Sends the other workers' tasks.
    pub async fn start_others(&self) -> Result<(), String> {
        self.tasks.send(&self.other_tasks()).await
    }
}

/// The fan-out the environment asks for (`FanoutSettings`): none for one worker.
pub async fn fanout_from_env() -> Result<Option<Fanout>, StartupError> {
    let settings = FanoutSettings::from_env()?;
    let Some(bus) = settings.tasks_bus.filter(|_| settings.workers > 1) else {
        return Ok(None);
    };
    let sdk = load_sdk_config(settings.tls_roots).await;
    let tasks = EventBridgeTasks::new(aws_sdk_eventbridge::Client::new(&sdk), bus);
    Ok(Some(
        Fanout::new(settings.workers, Box::new(tasks)).map_err(|reason| ConfigError::Invalid {
            name: "REVERIFY_WORKERS",
            reason,
        })?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DUE_PARTITIONS;
    use serde_json::json;

    #[test]
    fn the_tick_and_any_other_event_sweep_worker_0s_share_and_start_the_rest() {
        let tick = json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        assert_eq!(invocation_of(&tick), Ok(Invocation::Tick));
        assert_eq!(invocation_of(&json!({})), Ok(Invocation::Tick));
    }

    #[test]
    fn a_task_names_its_share_or_is_refused() {
        let task = |detail: serde_json::Value| json!({"source": TASK_SOURCE, "detail-type": TASK_DETAIL_TYPE, "detail": detail});
        assert_eq!(
            invocation_of(&task(json!({"worker": 2, "workers": 4}))),
            Ok(Invocation::Worker(DueSlice::new(2, 4).expect("slice")))
        );
        for bad in [
            json!({"worker": 4, "workers": 4}),
            json!({"worker": 0, "workers": 0}),
            json!({"worker": 0, "workers": DUE_PARTITIONS + 1}),
            json!({"worker": "one"}),
            json!(null),
        ] {
            assert!(invocation_of(&task(bad.clone())).is_err(), "{bad}");
        }
    }

    struct Nowhere;

    #[async_trait]
    impl TaskQueue for Nowhere {
        async fn send(&self, _: &[WorkerTask]) -> Result<(), String> {
            Err("nowhere".into())
        }
    }

    #[test]
    fn a_fanout_starts_every_other_worker_once() {
        let fanout = Fanout::new(4, Box::new(Nowhere)).expect("fanout");
        let workers: Vec<u32> = fanout.other_tasks().iter().map(|t| t.worker).collect();
        assert_eq!(workers, [1, 2, 3]);
        assert_eq!(fanout.own_slice(), DueSlice::new(0, 4).expect("slice"));
        assert!(Fanout::new(DUE_PARTITIONS + 1, Box::new(Nowhere)).is_err());
    }
}
