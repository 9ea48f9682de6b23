//! What the scheduled job costs per check, from what DynamoDB is asked to store:
//! write and read units (table and `due-keys` index) per scheduled check, SES
//! calls, and wall and CPU time per 1,000 checks. Runs on moto with its meter
//! (tests/moto-ses/meter.py: units by item size, as DynamoDB bills them): `scripts/bill`.
//!
//! Four kinds of check, `DOMAINS` domains each:
//! - verified, unchanged: the daily drift check of a verified domain (SES read too);
//! - pending, first check: a new domain's first, which finds its records missing;
//! - pending, unchanged: a back-off check of a domain whose records are not published;
//! - pending -> verified: the check that finds everything published.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use serde_json::{Value, json};
use shared::identity::{Identity, IdentityError, IdentityOwner, IdentityProvider, LocalIdentities};
use shared::scheduler::{RunOptions, run};
use shared::store::{DynamoDbStore, create_table};
use shared::verify::DnsChecker;
use shared::{App, DomainName, Timestamp, handlers};
use test_support::{RequestCounter, TestDnsServer, dynamodb_client, unique_table_name};

const DOMAINS: usize = 100;

/// Local identities (SUCCESS once the CNAMEs resolve), counting SES calls.
struct Counted {
    inner: LocalIdentities,
    calls: AtomicUsize,
}

#[async_trait]
impl IdentityProvider for Counted {
    async fn create(
        &self,
        name: &DomainName,
        owner: &IdentityOwner,
    ) -> Result<Vec<String>, IdentityError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.create(name, owner).await
    }
    async fn get(&self, name: &DomainName) -> Result<Identity, IdentityError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.get(name).await
    }
    async fn delete(&self, name: &DomainName) -> Result<(), IdentityError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.delete(name).await
    }
    async fn set_mail_from(
        &self,
        name: &DomainName,
        domain: Option<&str>,
    ) -> Result<(), IdentityError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.set_mail_from(name, domain).await
    }
}

fn request(file: &str, body: Option<Value>, domain: Option<&str>) -> lambda_http::Request {
    let path = format!("{}/../events/{file}", env!("CARGO_MANIFEST_DIR"));
    let mut event: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("event")).expect("JSON");
    if let Some(body) = body {
        event["body"] = json!(body.to_string());
    }
    if let Some(domain) = domain {
        event["pathParameters"]["domain"] = json!(domain);
    }
    lambda_http::request::from_str(&event.to_string()).expect("event")
}

/// The meter's totals for the table: (write units by target, read units by target).
fn meter(table: &str) -> (BTreeMap<String, f64>, BTreeMap<String, f64>) {
    let path =
        std::env::var("MOTO_DYNAMODB_METER").expect("MOTO_DYNAMODB_METER (run scripts/bill)");
    let all: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("meter file")).expect("JSON");
    let units = |kind: &str| -> BTreeMap<String, f64> {
        all[table][kind]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_f64().unwrap_or(0.0)))
                    .collect()
            })
            .unwrap_or_default()
    };
    (units("write_units"), units("read_units"))
}

fn cpu_seconds() -> f64 {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(Result::ok)
                .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
                .filter_map(|s| {
                    s.split_whitespace()
                        .next()
                        .and_then(|n| n.parse::<u64>().ok())
                })
                .sum::<u64>() as f64
                / 1e9
        })
        .unwrap_or(0.0)
}

struct World {
    app: App,
    dns: TestDnsServer,
    identities: Arc<Counted>,
    table: String,
    requests: RequestCounter,
}

async fn world() -> World {
    let endpoint = std::env::var("MOTO_ENDPOINT").expect("MOTO_ENDPOINT (run scripts/bill)");
    let requests = RequestCounter::new();
    let client = dynamodb_client(&endpoint, &requests);
    let table = unique_table_name("bill");
    create_table(&client, &table).await.expect("table");
    let dns = TestDnsServer::start(&[("example.com", "")]).await;
    let identities = Arc::new(Counted {
        inner: LocalIdentities::new(),
        calls: AtomicUsize::new(0),
    });
    let app = App::new(
        Arc::new(DynamoDbStore::new(client, table.clone())),
        identities.clone(),
        DnsChecker::with_nameservers(&[dns.address()])
            .expect("resolver")
            .into(),
        "us-east-2",
    );
    World {
        app,
        dns,
        identities,
        table,
        requests,
    }
}

impl World {
    /// Creates `prefix-i.example.com`, publishing its records if `publish`,
    /// verifying it (manually) if `verify`.
    async fn domains(&self, prefix: &str, publish: bool, verify: bool) -> Vec<DomainName> {
        let mut names = Vec::new();
        for i in 0..DOMAINS {
            let label = format!("{prefix}{i}");
            let name = format!("{label}.example.com");
            let created = handlers::create_domain(
                &self.app,
                request("create-domain.json", Some(json!({"name": name})), None),
            )
            .await
            .expect("answers");
            let body: Value = serde_json::from_slice(created.body().as_ref()).expect("JSON");
            if publish {
                let tokens = test_support::tokens_of(&body);
                let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
                self.dns
                    .publish(0, &test_support::dns::all_records_zone(&label, &tokens))
                    .await;
            }
            if verify {
                handlers::verify_domain(
                    &self.app,
                    request("verify-domain.json", None, Some(&name)),
                )
                .await
                .expect("answers");
            }
            names.push(DomainName::parse(&name).expect("valid"));
        }
        names
    }

    /// Makes the domains due now (a small write of the schedule, not measured).
    async fn make_due(&self, names: &[DomainName]) {
        let past = Timestamp::from(chrono::Utc::now() - chrono::Duration::seconds(1));
        for name in names {
            let domain = self
                .app
                .store
                .get("org_123", name)
                .await
                .expect("get")
                .expect("domain");
            self.app
                .store
                .reschedule(&domain, Some(past))
                .await
                .expect("due");
        }
    }

    async fn measure(&self, label: &str, names: &[DomainName]) {
        self.make_due(names).await;
        let (writes_before, reads_before) = meter(&self.table);
        let ses_before = self.identities.calls.load(Ordering::Relaxed);
        self.requests.reset();
        let (cpu, wall) = (cpu_seconds(), Instant::now());
        let summary = run(&self.app, Timestamp::now(), RunOptions::default(), &|| {
            false
        })
        .await
        .expect("run");
        let (wall, cpu) = (wall.elapsed().as_secs_f64(), cpu_seconds() - cpu);
        assert_eq!(summary.checked, names.len(), "{label}: {summary:?}");
        let (writes, reads) = meter(&self.table);
        let per_check = |after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>| {
            after
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{k} {:.2}",
                        (v - before.get(k).copied().unwrap_or(0.0)) / names.len() as f64
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let ses = self.identities.calls.load(Ordering::Relaxed) - ses_before;
        let requests: Vec<String> = self
            .requests
            .snapshot()
            .iter()
            .map(|(op, n)| format!("{op} {:.2}", *n as f64 / names.len() as f64))
            .collect();
        println!(
            "| {label} | {} | {} | {} | {:.0} | {:.0} | {:.0} |",
            per_check(&writes, &writes_before),
            per_check(&reads, &reads_before),
            requests.join(", "),
            ses as f64 * 1000.0 / names.len() as f64,
            wall * 1e6 / names.len() as f64,
            cpu * 1e6 / names.len() as f64,
        );
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let world = world().await;
    println!(
        "{DOMAINS} domains per kind of check; units per check, as DynamoDB bills them (moto's meter)\n"
    );
    println!(
        "| scheduled check | write units (table, index) | read units | DynamoDB requests | SES calls / 1,000 | wall ms / 1,000 | CPU ms / 1,000 |"
    );
    println!("|---|---|---|---|---|---|---|");
    let verified = world.domains("v", true, true).await;
    world
        .measure("verified, unchanged (daily)", &verified)
        .await;
    let pending = world.domains("p", false, false).await;
    world
        .measure("pending, first check (records missing)", &pending)
        .await;
    world
        .measure("pending, unchanged (back-off)", &pending)
        .await;
    let ready = world.domains("r", true, false).await;
    world.measure("pending -> verified", &ready).await;
}
