//! Warm handler latency, p50 and p99, on the in-memory store and on DynamoDB (moto,
//! when `MOTO_ENDPOINT` is set): `cargo bench -p shared --bench handlers`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use shared::identity::LocalIdentities;
use shared::store::{DomainStore, DynamoDbStore, InMemoryStore, create_table};
use shared::verify::DnsChecker;
use shared::{App, handlers};
use test_support::{RequestCounter, dynamodb_client, unique_table_name};

const RUNS: usize = 2000;

fn event(file: &str) -> String {
    std::fs::read_to_string(format!("{}/../events/{file}", env!("CARGO_MANIFEST_DIR")))
        .expect("event")
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[index].as_secs_f64() * 1000.0
}

async fn measure(app: &App, label: &str, runs: usize) {
    let created = lambda_http::request::from_str(&event("create-domain.json")).expect("event");
    handlers::create_domain(app, created)
        .await
        .expect("answers");
    for (name, file) in [
        ("get-domain", "get-domain.json"),
        ("list-domains", "list-domains.json"),
        ("get-dns-records", "get-dns-records.json"),
    ] {
        let text = event(file);
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let request = lambda_http::request::from_str(&text).expect("event");
            let started = Instant::now();
            let response = match name {
                "get-domain" => handlers::get_domain(app, request).await,
                "list-domains" => handlers::list_domains(app, request).await,
                _ => handlers::get_dns_records(app, request).await,
            }
            .expect("answers");
            times.push(started.elapsed());
            assert!(
                response.status().is_success() || response.status() == 400,
                "{name}: {}",
                response.status()
            );
        }
        times.sort();
        println!(
            "| {name} | {label} | {:.3} | {:.3} | {runs} |",
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
    }
}

fn app(store: Arc<dyn DomainStore>) -> App {
    App::new(
        store,
        Arc::new(LocalIdentities::new()),
        DnsChecker::with_nameservers(&["127.0.0.1:9".parse().expect("address")])
            .expect("resolver")
            .into(),
        "us-east-2",
    )
}

// The deployed functions run on the current-thread runtime.
fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("| handler | store | p50 (ms) | p99 (ms) | runs |");
    println!("|---|---|---|---|---|");
    runtime.block_on(async {
        measure(&app(Arc::new(InMemoryStore::new())), "in-memory", RUNS).await;
        if let Ok(endpoint) = std::env::var("MOTO_ENDPOINT") {
            let client = dynamodb_client(&endpoint, &RequestCounter::new());
            let table = unique_table_name("bench");
            create_table(&client, &table).await.expect("table");
            measure(
                &app(Arc::new(DynamoDbStore::new(client, table))),
                "DynamoDB (moto)",
                RUNS / 4,
            )
            .await;
        }
    });
}
