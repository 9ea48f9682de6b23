//! What a scheduled check that changed nothing costs, as DynamoDB bills it: moto
//! with its meter (tests/moto-ses/meter.py, capacity units from the sizes of the
//! items and index entries written), started by `scripts/test` beside the plain one
//! (`MOTO_METERED_ENDPOINT`, `MOTO_DYNAMODB_METER`). The floor: 1 write unit in the
//! table and 2 in the index (its entry's key moves: a delete and a put).

use shared::store::DomainItems;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use shared::identity::LocalIdentities;
use shared::model::{Domain, DomainStatus, Timestamp};
use shared::records::expected_records;
use shared::scheduler::{RunOptions, run};
use shared::store::{DUE_INDEX, DynamoDbStore, create_table};
use shared::verify::DnsChecker;
use shared::{App, DomainName};
use test_support::{RequestCounter, TestDnsServer, dynamodb_client, unique_table_name};

const TOKENS: [&str; 3] = ["tok1", "tok2", "tok3"];
const DOMAINS: usize = 5;

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: scripts/test starts moto with its meter and sets it")
    })
}

/// Write units so far for the table, by target ("table" or the index's name).
fn write_units(table: &str) -> BTreeMap<String, f64> {
    let all: Value = serde_json::from_str(
        &std::fs::read_to_string(required("MOTO_DYNAMODB_METER")).expect("meter file"),
    )
    .expect("JSON");
    all[table]["write_units"]
        .as_object()
        .map(|units| {
            units
                .iter()
                .map(|(target, n)| (target.clone(), n.as_f64().unwrap_or(0.0)))
                .collect()
        })
        .unwrap_or_default()
}

fn per_check(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
    target: &str,
    checks: usize,
) -> f64 {
    (after.get(target).copied().unwrap_or(0.0) - before.get(target).copied().unwrap_or(0.0))
        / checks as f64
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn an_unchanged_scheduled_check_costs_one_write_unit_and_two_in_the_index() {
    let client = dynamodb_client(&required("MOTO_METERED_ENDPOINT"), &RequestCounter::new());
    let table = unique_table_name("bill");
    create_table(&client, &table).await.expect("table");
    let store = Arc::new(DynamoDbStore::new(client, table.clone()));
    // Half the domains have every record published (verified on their first
    // check, then checked daily), half none (pending, backing off).
    let mut zone = String::new();
    let start = Timestamp::now();
    for i in 0..DOMAINS * 2 {
        let label = format!("d{i}");
        if i % 2 == 0 {
            zone.push_str(&test_support::dns::all_records_zone(&label, &TOKENS));
        }
        let name = DomainName::parse(&format!("{label}.example.com")).expect("valid");
        let mut domain = Domain::new("org_a", name.clone(), start);
        domain.dkim_tokens = TOKENS.iter().map(|t| t.to_string()).collect();
        domain.records = expected_records(&name, &domain.dkim_tokens, "us-east-2");
        store.insert(&domain, usize::MAX).await.expect("insert");
    }
    let dns = TestDnsServer::start(&[("example.com", &zone)]).await;
    let identities = Arc::new(LocalIdentities::new());
    for i in 0..DOMAINS * 2 {
        let name = DomainName::parse(&format!("d{i}.example.com")).expect("valid");
        identities.insert(&name, None).expect("identity");
    }
    let app = App::new(
        store.clone(),
        identities,
        DnsChecker::with_nameservers(&[dns.address()])
            .expect("resolver")
            .into(),
        "us-east-2",
    );
    let at = |minutes: i64| start.plus(chrono::Duration::minutes(minutes));
    let sweep = |minutes: i64| {
        let app = &app;
        async move {
            run(app, at(minutes), RunOptions::default(), &|| false)
                .await
                .expect("run")
        }
    };

    // The first checks change what callers see: a full write each.
    let first = sweep(1).await;
    assert_eq!(
        (first.verified, first.still_pending),
        (DOMAINS, DOMAINS),
        "{first:?}"
    );

    // A pending domain's back-off check, five minutes on: nothing changed.
    let before = write_units(&table);
    let pending = sweep(7).await;
    assert_eq!(pending.still_pending, DOMAINS, "{pending:?}");
    let after = write_units(&table);
    let (table_units, index_units) = (
        per_check(&before, &after, "table", pending.checked),
        per_check(&before, &after, DUE_INDEX, pending.checked),
    );
    assert!(
        table_units <= 1.0 && index_units <= 2.0,
        "pending, unchanged: table {table_units}, index {index_units} write units a check"
    );

    // A verified domain's daily check (SES asked again): nothing changed.
    let before = write_units(&table);
    let verified = sweep(24 * 60 + 2).await;
    assert_eq!(
        (verified.still_verified, verified.still_pending),
        (DOMAINS, DOMAINS),
        "the pending ones are due too, and unchanged: {verified:?}"
    );
    let after = write_units(&table);
    let (table_units, index_units) = (
        per_check(&before, &after, "table", verified.checked),
        per_check(&before, &after, DUE_INDEX, verified.checked),
    );
    assert!(
        table_units <= 1.0 && index_units <= 2.0,
        "verified and pending, unchanged: table {table_units}, index {index_units} write units a check"
    );
    let verified_domain = store
        .get(
            "org_a",
            &DomainName::parse("d0.example.com").expect("valid"),
        )
        .await
        .expect("get")
        .expect("found");
    assert_eq!(verified_domain.status, DomainStatus::Verified);
    assert_eq!(verified_domain.last_checked_at, Some(at(24 * 60 + 2)));
    // The meter saw the writes at all (a meter that counts nothing passes nothing).
    assert!(
        after.get("table").copied().unwrap_or(0.0) > 0.0,
        "{after:?}"
    );
}
