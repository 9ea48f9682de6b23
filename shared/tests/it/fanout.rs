//! The scheduled sweep fanned out: a tick starts the other workers and sweeps its
//! own share; each worker's task, delivered as the rule delivers it, sweeps its
//! share; every due domain is checked exactly once. The tasks are put through a
//! real EventBridge API (moto).

use shared::store::DomainItems;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use shared::fanout::{EventBridgeTasks, Fanout, TaskQueue, WorkerTask};
use shared::identity::LocalIdentities;
use shared::model::{Domain, Timestamp};
use shared::records::expected_records;
use shared::store::InMemoryStore;
use shared::verify::DnsChecker;
use shared::{App, DomainName, handlers};
use test_support::{RequestCounter, TestDnsServer, moto_endpoint, unique_table_name};

/// Keeps the tasks a tick sends, to deliver them as the rule would.
#[derive(Default, Clone)]
struct Kept(Arc<Mutex<Vec<WorkerTask>>>);

#[async_trait]
impl TaskQueue for Kept {
    async fn send(&self, tasks: &[WorkerTask]) -> Result<(), String> {
        self.0.lock().expect("lock").extend_from_slice(tasks);
        Ok(())
    }
}

fn fixture(file: &str) -> Value {
    let path = format!("{}/../events/{file}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON")
}

/// The task as the rule delivers it: the fixture's envelope, this task's detail.
fn delivered(task: &WorkerTask) -> Value {
    let mut event = fixture("reverify-worker.json");
    event["detail"] = json!(task);
    event
}

async fn invoke(app: &App, fanout: Option<&Fanout>, event: Value) -> shared::scheduler::Summary {
    handlers::reverify_pending(app, fanout, LambdaEvent::new(event, Context::default()))
        .await
        .expect("run")
}

#[tokio::test]
async fn a_tick_and_its_workers_check_every_due_domain_exactly_once() {
    let dns = TestDnsServer::start(&[("example.com", "")]).await;
    let store = Arc::new(InMemoryStore::new());
    let created = Timestamp::now().plus(chrono::Duration::minutes(-5));
    let domains = 60;
    for i in 0..domains {
        let name = DomainName::parse(&format!("d{i}.example.com")).expect("valid");
        let mut domain = Domain::new("org_a", name.clone(), created);
        domain.dkim_tokens = vec!["t1".into(), "t2".into(), "t3".into()];
        domain.records = expected_records(&name, &domain.dkim_tokens, "us-east-2");
        store.insert(&domain, usize::MAX).await.expect("insert");
    }
    let app = App::new(
        store.clone(),
        Arc::new(LocalIdentities::new()),
        DnsChecker::with_nameservers(&[dns.address()])
            .expect("resolver")
            .into(),
        "us-east-2",
    );
    let kept = Kept::default();
    let fanout = Fanout::new(4, Box::new(kept.clone())).expect("fan-out");

    let tick = invoke(&app, Some(&fanout), fixture("reverify-pending.json")).await;
    let tasks = kept.0.lock().expect("lock").clone();
    assert_eq!(
        tasks
            .iter()
            .map(|t| (t.worker, t.workers))
            .collect::<Vec<_>>(),
        [(1, 4), (2, 4), (3, 4)],
        "one task for each other worker"
    );
    assert!(tick.checked > 0 && tick.checked < domains, "{tick:?}");
    let mut checked = tick.checked;
    for task in &tasks {
        // A worker never starts others: its own share only.
        let summary = invoke(&app, Some(&fanout), delivered(task)).await;
        checked += summary.checked;
    }
    assert_eq!(kept.0.lock().expect("lock").len(), 3, "no task sent twice");
    assert_eq!(checked, domains, "every due domain checked once in all");
    for domain in store.list("org_a").await.expect("list") {
        assert!(
            domain.last_checked_at.is_some(),
            "{} was checked",
            domain.name
        );
    }
    // Nothing is due any more: a second round checks nothing.
    let again = invoke(&app, None, fixture("reverify-pending.json")).await;
    assert_eq!(again.checked, 0, "{again:?}");

    // A task that names no share is refused, not swept as everything.
    let mut bad = fixture("reverify-worker.json");
    bad["detail"] = json!({"worker": 7, "workers": 4});
    let refused =
        handlers::reverify_pending(&app, None, LambdaEvent::new(bad, Context::default())).await;
    assert!(refused.is_err(), "{refused:?}");
}

/// The tasks reach the scheduler's bus through EventBridge's API, ten a request.
#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn tasks_are_put_on_the_schedulers_bus_on_moto() {
    let client = test_support::eventbridge_client(&moto_endpoint(), &RequestCounter::new());
    let bus = unique_table_name("reverify-tasks");
    client
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .expect("bus");
    let counter = RequestCounter::new();
    let tasks = EventBridgeTasks::new(
        test_support::eventbridge_client(&moto_endpoint(), &counter),
        bus,
    );
    let many: Vec<WorkerTask> = (1..16)
        .map(|worker| WorkerTask {
            worker,
            workers: 16,
        })
        .collect();
    tasks.send(&many).await.expect("sent");
    assert_eq!(
        counter.snapshot(),
        [("PutEvents".to_string(), 2)],
        "ten entries a request"
    );
}
