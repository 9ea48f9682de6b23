//! Verification speed against a local DNS server with a fixed answer latency.
//!
//! `cargo bench -p shared --bench verification` prints:
//! - the scheduled sweep of `BENCH_DOMAINS` (10,000) due domains, half with every
//!   record published, against a server answering each query in 20 ms (target: 60 s);
//! - with `BENCH_WORKERS=n BENCH_WORKER=i`, worker i's share of that sweep alone
//!   (`scripts/sweep-fanout` runs the n workers as parallel processes);
//! - one verify's wall time against its slowest single answer (TXT at 60 ms, the
//!   rest at 20 ms), cold (the zone's name servers not yet known) and warm
//!   (target: at most 1.2x).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use shared::identity::LocalIdentities;
use shared::model::{Domain, Timestamp};
use shared::records::expected_records;
use shared::scheduler::{RunOptions, run};
use shared::store::{DomainItems, DueSlice, InMemoryStore};
use shared::verify::DnsChecker;
use shared::{App, DomainName};
use test_support::TestDnsServer;
use test_support::dns::Latency;
use tokio::runtime::Handle;

const TOKENS: [&str; 3] = ["tok1", "tok2", "tok3"];

/// Zone-file lines for a domain `prefix` labels below the zone apex ("" for the apex).
fn records_for(prefix: &str) -> String {
    test_support::dns::all_records_zone(prefix, &TOKENS)
}

fn tokens() -> Vec<String> {
    TOKENS.iter().map(|t| t.to_string()).collect()
}

/// The DNS servers run on a runtime of their own, as the network would; what is
/// measured runs on a current-thread runtime, as the deployed functions do.
async fn start_dns(zones: &[(&str, &str)], latency: Latency, servers: &Handle) -> TestDnsServer {
    let zones: Vec<(String, String)> = zones
        .iter()
        .map(|(name, records)| (name.to_string(), records.to_string()))
        .collect();
    servers
        .spawn(async move {
            let zones: Vec<(&str, &str)> = zones
                .iter()
                .map(|(name, records)| (name.as_str(), records.as_str()))
                .collect();
            TestDnsServer::start_with_latency(&zones, latency).await
        })
        .await
        .expect("DNS server started")
}

/// CPU time this thread has used (Linux: /proc/thread-self/schedstat, in ns). The
/// measured code runs on this thread alone (a current-thread runtime); the DNS
/// servers run on threads of their own.
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

/// Lambda's CPU share at `memory_mb` (one vCPU at 1,769 MB).
fn cpu_share(memory_mb: f64) -> f64 {
    (memory_mb / 1769.0).min(1.0)
}

async fn sweep(domains: usize, concurrency: usize, slice: DueSlice, servers: &Handle) {
    // Each domain is its own zone, as customers' domains are; every other one has
    // all its records published. A worker's DNS server serves its share only: the
    // rest is never asked for.
    let published = records_for("");
    let name_of = |i: usize| DomainName::parse(&format!("d{i}.example")).expect("valid name");
    let zones: Vec<(String, &str)> = (0..domains)
        .filter(|i| slice.holds(&name_of(*i)))
        .map(|i| {
            (
                format!("d{i}.example"),
                if i % 2 == 0 { published.as_str() } else { "" },
            )
        })
        .collect();
    let share = zones.len();
    let zones: Vec<(&str, &str)> = zones
        .iter()
        .map(|(name, records)| (name.as_str(), *records))
        .collect();
    let latency = Latency {
        default: Duration::from_millis(20),
        by_type: vec![],
    };
    let dns = start_dns(&zones, latency, servers).await;
    let store = Arc::new(InMemoryStore::new());
    // Each domain has its identity, as create makes it: a domain all correct in
    // DNS then has its (local) SES view read, as a deployed sweep reads SES's.
    let identities = Arc::new(LocalIdentities::new());
    let created = Timestamp::now().plus(chrono::Duration::minutes(-2));
    for i in 0..domains {
        let name = DomainName::parse(&format!("d{i}.example")).expect("valid name");
        let mut domain = Domain::new("org_bench", name.clone(), created);
        domain.dkim_tokens = tokens();
        domain.records = expected_records(&name, &domain.dkim_tokens, "us-east-2");
        store.insert(&domain, usize::MAX).await.expect("insert");
        identities.insert(&name, None).expect("identity");
    }
    let app = App::new(
        store,
        identities,
        DnsChecker::with_nameservers(&[dns.address()])
            .expect("resolver")
            .into(),
        "us-east-2",
    );
    let options = RunOptions {
        batch_size: 1000,
        concurrency,
        slice,
    };
    let started = Instant::now();
    let cpu_before = thread_cpu();
    let summary = run(&app, Timestamp::now(), options, &|| false)
        .await
        .expect("sweep");
    let elapsed = started.elapsed();
    let cpu = thread_cpu() - cpu_before;
    assert_eq!(summary.checked, share, "{summary:?}");
    if slice != DueSlice::ALL {
        // One line per worker, for scripts/sweep-fanout to add up.
        println!(
            "| sweep worker {} of {} | {share} of {domains} due domains, 20 ms per answer, {concurrency} at a time | {:.1} s ({:.0} domains/s) | - | CPU {:.2} ms per domain, verified {}, pending {}, errors {} |",
            slice.worker(),
            slice.workers(),
            elapsed.as_secs_f64(),
            share as f64 / elapsed.as_secs_f64(),
            cpu.as_secs_f64() * 1000.0 / share as f64,
            summary.verified,
            summary.still_pending,
            summary.errors
        );
        return;
    }
    println!(
        "| sweep | {domains} due domains, 20 ms per answer, {concurrency} at a time | {:.1} s ({:.0} domains/s) | 60 s | verified {}, pending {}, errors {} |",
        elapsed.as_secs_f64(),
        domains as f64 / elapsed.as_secs_f64(),
        summary.verified,
        summary.still_pending,
        summary.errors
    );
    // A run has 255 s (270 s less its margin); CPU work stretches by the share.
    let per_domain = cpu.as_secs_f64() / domains as f64;
    let wait_bound = domains as f64 / elapsed.as_secs_f64() * 255.0;
    let projections: Vec<String> = [128.0, 256.0, 512.0, 1024.0, 1769.0]
        .iter()
        .map(|memory| {
            let cpu_bound = 255.0 * cpu_share(*memory) / per_domain;
            format!("{memory} MB: {:.0}", cpu_bound.min(wait_bound))
        })
        .collect();
    println!(
        "| sweep CPU | the same run, this thread's CPU time | {:.2} ms per domain ({:.1} s in all) | - | domains one 255 s run can check: {} |",
        per_domain * 1000.0,
        cpu.as_secs_f64(),
        projections.join(", ")
    );
}

async fn verify_against_slowest_answer(servers: &Handle) {
    let latency = Latency {
        default: Duration::from_millis(20),
        by_type: vec![(RecordType::TXT, Duration::from_millis(60))],
    };
    let dns = start_dns(&[("example.com", &records_for(""))], latency, servers).await;
    let name = DomainName::parse("example.com").expect("valid name");
    let records = expected_records(&name, &tokens(), "us-east-2");

    // The slowest single answer, as a client sees it: one TXT lookup, alone.
    let probe = DnsChecker::with_nameservers(&[dns.address()]).expect("resolver");
    let spf_only = vec![records[1].clone()];
    let mut single = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        probe.check(&name, &spf_only).await;
        single.push(started.elapsed());
    }
    single.sort();
    let slowest_answer = single[single.len() / 2];

    let checker = DnsChecker::with_nameservers(&[dns.address()]).expect("resolver");
    let started = Instant::now();
    let first = checker.check(&name, &records).await;
    let cold = started.elapsed();
    assert!(
        first
            .iter()
            .all(|r| r.status == shared::RecordStatus::Verified),
        "{first:?}"
    );
    let mut warm = Vec::new();
    let cpu_before = thread_cpu();
    for _ in 0..20 {
        let started = Instant::now();
        checker.check(&name, &records).await;
        warm.push(started.elapsed());
    }
    let cpu_per_check = (thread_cpu() - cpu_before) / 20;
    warm.sort();
    let median = warm[warm.len() / 2];
    let worst = warm[warm.len() - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "| verify, warm | 6 records, slowest answer {:.1} ms (TXT at 60 ms, others 20 ms) | median {:.1} ms, max {:.1} ms: {:.2}x | 1.2x | 20 runs |",
        ms(slowest_answer),
        ms(median),
        ms(worst),
        ms(median) / ms(slowest_answer)
    );
    println!(
        "| verify, cold | the same, name servers not yet known (NS lookup first) | {:.1} ms: {:.2}x | - | first verify of a zone in a process |",
        ms(cold),
        ms(cold) / ms(slowest_answer)
    );
    let at = |memory: f64| ms(median) - ms(cpu_per_check) + ms(cpu_per_check) / cpu_share(memory);
    println!(
        "| verify CPU | the warm checks above, this thread's CPU time | {:.2} ms per check | - | a warm check at 128 MB: {:.1} ms, 256 MB: {:.1} ms, 512 MB: {:.1} ms |",
        ms(cpu_per_check),
        at(128.0),
        at(256.0),
        at(512.0)
    );
}

fn main() {
    let domains = std::env::var("BENCH_DOMAINS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let concurrency = std::env::var("BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(RunOptions::default().concurrency);
    let servers = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("DNS servers' runtime");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("| benchmark | setup | result | target | notes |");
    println!("|---|---|---|---|---|");
    // BENCH_WORKER=i BENCH_WORKERS=n: worker i's share of a fanned-out sweep
    // alone (scripts/sweep-fanout runs the n workers as parallel processes).
    let workers = std::env::var("BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let worker = std::env::var("BENCH_WORKER")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let slice = DueSlice::new(worker, workers).expect("BENCH_WORKER of BENCH_WORKERS");
    runtime.block_on(async {
        if slice == DueSlice::ALL {
            verify_against_slowest_answer(servers.handle()).await;
        }
        sweep(domains, concurrency, slice, servers.handle()).await;
    });
}
