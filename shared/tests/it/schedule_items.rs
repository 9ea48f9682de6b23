//! A domain's schedule apart from the domain: the write of a check that changed
//! nothing a caller sees, the due work split between workers, and, on DynamoDB,
//! domains stored before schedule items existed (read, checked, moved on).

use shared::store::DomainItems;
use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use shared::model::{SesStatus, SesView, Timestamp};
use shared::store::{DUE_PARTITIONS, DueSlice, DynamoDbStore, StoreError, create_table};
use test_support::{RequestCounter, dynamodb_client, moto_endpoint, unique_table_name};

use crate::store_suite::{Backend, domain, dynamodb, in_memory, name, store_suite};

async fn an_unchanged_check_stores_the_schedule_alone(backend: &Backend) {
    let store = &backend.store;
    let mut original = domain("org_a", "example.com");
    original.ses = Some(SesView {
        dkim_status: SesStatus::Pending,
        mail_from_status: None,
        checked_at: original.created_at,
    });
    store.insert(&original, usize::MAX).await.expect("insert");
    let read = store
        .get("org_a", &original.name)
        .await
        .expect("get")
        .expect("found");
    let checked_at = original.created_at.plus(chrono::Duration::minutes(5));
    let mut checked = read.clone();
    checked.last_checked_at = Some(checked_at);
    checked.ses.as_mut().expect("ses").checked_at = checked_at;
    checked.schedule.checks_in_window = 1;
    checked.schedule.next_check_at = Some(checked_at.plus(chrono::Duration::minutes(5)));
    // Not for this write to store: only the schedule and when it was checked are.
    checked.reason = Some("changed".into());
    if let Some(counter) = &backend.counter {
        counter.reset();
    }
    store
        .update_schedule(&mut checked)
        .await
        .expect("schedule written");
    if let Some(counter) = &backend.counter {
        assert_eq!(counter.snapshot(), [("PutItem".to_string(), 1)]);
    }
    assert_eq!(checked.version, read.version + 1);
    let stored = store
        .get("org_a", &original.name)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(stored.last_checked_at, Some(checked_at));
    assert_eq!(stored.ses.as_ref().map(|s| s.checked_at), Some(checked_at));
    assert_eq!(stored.schedule, checked.schedule);
    assert_eq!(stored.version, checked.version);
    assert_eq!(
        stored.reason, read.reason,
        "the domain item was not written"
    );
    assert_eq!(
        store.due(checked_at, 10, DueSlice::ALL).await.expect("due"),
        [],
        "moved on in the schedule"
    );

    // The version guards both items: a write from the older read loses.
    let mut stale = read.clone();
    let result = store.update(&mut stale).await;
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    let result = store.update_schedule(&mut read.clone()).await;
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    // A full write from the fresh read, then a delete: the schedule goes too.
    let mut fresh = stored.clone();
    fresh.reason = Some("written".into());
    store.update(&mut fresh).await.expect("a fresh read writes");
    let again = store
        .get("org_a", &original.name)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(again.last_checked_at, Some(checked_at));
    assert_eq!(again.reason.as_deref(), Some("written"));
    store.delete(&again).await.expect("delete");
    let result = store.update_schedule(&mut again.clone()).await;
    assert!(matches!(result, Err(StoreError::DomainGone)), "{result:?}");
    assert!(
        store
            .get("org_a", &original.name)
            .await
            .expect("get")
            .is_none(),
        "a schedule write never brings a domain back"
    );
}

async fn workers_split_the_due_work_without_overlap(backend: &Backend) {
    let store = &backend.store;
    let mut all = Vec::new();
    for i in 0..40 {
        let d = domain("org_a", &format!("d{i}.example.com"));
        store.insert(&d, usize::MAX).await.expect("insert");
        all.push(d.name.to_string());
    }
    let now = Timestamp::now().plus(chrono::Duration::minutes(2));
    all.sort();
    for workers in [1, 3, DUE_PARTITIONS] {
        let mut seen = Vec::new();
        for worker in 0..workers {
            let slice = DueSlice::new(worker, workers).expect("slice");
            let due = store.due(now, 100, slice).await.expect("due");
            assert!(due.iter().all(|d| slice.holds(&d.name)), "{workers}");
            seen.extend(due.into_iter().map(|d| d.name.to_string()));
        }
        seen.sort();
        assert_eq!(seen, all, "{workers} workers: every domain exactly once");
    }
    assert!(DueSlice::new(0, 0).is_err());
    assert!(DueSlice::new(3, 3).is_err());
    assert!(DueSlice::new(0, DUE_PARTITIONS + 1).is_err());
}

store_suite!(
    an_unchanged_check_stores_the_schedule_alone,
    workers_split_the_due_work_without_overlap,
);

type Item = HashMap<String, AttributeValue>;

async fn scan(client: &aws_sdk_dynamodb::Client, table: &str) -> Vec<Item> {
    client
        .scan()
        .table_name(table)
        .send()
        .await
        .expect("scan")
        .items
        .unwrap_or_default()
}

fn sk_of(item: &Item) -> String {
    item.get("sk")
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

/// A table holding `original` as a release before schedule items wrote it: the
/// schedule, the version and the due-index keys in the domain item, no schedule
/// item. The store on it, and its client and table.
async fn legacy_store(
    prefix: &str,
    original: &shared::Domain,
) -> (DynamoDbStore, aws_sdk_dynamodb::Client, String) {
    let client = dynamodb_client(&moto_endpoint(), &RequestCounter::new());
    let table = unique_table_name(prefix);
    create_table(&client, &table).await.expect("table");
    let store = DynamoDbStore::new(client.clone(), table.clone());
    store.insert(original, usize::MAX).await.expect("insert");
    let items = scan(&client, &table).await;
    let find = |sk: String| {
        items
            .iter()
            .find(|item| sk_of(item) == sk)
            .cloned()
            .expect("item")
    };
    let mut legacy = find(format!("DOMAIN#{}", original.name));
    let schedule = find(format!("DOMAIN#{}#SCHEDULE", original.name));
    for (attribute, value) in &schedule {
        if !matches!(attribute.as_str(), "pk" | "sk") {
            legacy.insert(attribute.clone(), value.clone());
        }
    }
    client
        .put_item()
        .table_name(&table)
        .set_item(Some(legacy))
        .send()
        .await
        .expect("put legacy item");
    client
        .delete_item()
        .table_name(&table)
        .key("pk", schedule["pk"].clone())
        .key("sk", schedule["sk"].clone())
        .send()
        .await
        .expect("delete schedule item");
    (store, client, table)
}

/// A domain stored before schedule items existed: every read, the scheduled job
/// and every write keep working on it, and its first write moves it to the two
/// items; a write from a read before that loses.
#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn a_domain_stored_before_schedule_items_is_read_checked_and_moved() {
    let original = domain("org_a", "legacy.example.com");
    let (store, client, table) = legacy_store("legacy", &original).await;

    let read = store
        .get("org_a", &name("legacy.example.com"))
        .await
        .expect("get")
        .expect("found");
    assert_eq!(read, original, "read as it was stored");
    assert_eq!(read.schedule, original.schedule);
    assert_eq!(read.version, original.version);
    assert_eq!(
        store.list("org_a").await.expect("list"),
        std::slice::from_ref(&original),
        "listed"
    );
    let due_at = original.created_at.plus(chrono::Duration::minutes(2));
    assert_eq!(
        store.due(due_at, 10, DueSlice::ALL).await.expect("due"),
        std::slice::from_ref(&original),
        "found by the job through its own due-index keys"
    );

    // The job's unchanged check: the domain moves to the two items.
    let mut checked = read.clone();
    checked.last_checked_at = Some(due_at);
    checked.schedule.next_check_at = Some(due_at.plus(chrono::Duration::minutes(5)));
    store.update_schedule(&mut checked).await.expect("checked");
    let items = scan(&client, &table).await;
    let domain_item = items
        .iter()
        .find(|item| sk_of(item) == "DOMAIN#legacy.example.com")
        .expect("domain item");
    for moved in ["version", "next_check_at", "gsi_due_pk", "gsi_due_sk"] {
        assert!(
            !domain_item.contains_key(moved),
            "{moved} left the domain item"
        );
    }
    assert!(
        items
            .iter()
            .any(|item| sk_of(item) == "DOMAIN#legacy.example.com#SCHEDULE"),
        "a schedule item now"
    );
    let moved = store
        .get("org_a", &name("legacy.example.com"))
        .await
        .expect("get")
        .expect("found");
    assert_eq!(moved.last_checked_at, Some(due_at));
    assert_eq!(moved.schedule, checked.schedule);
    assert_eq!(moved.version, checked.version);
    assert_eq!(
        store.due(due_at, 10, DueSlice::ALL).await.expect("due"),
        [],
        "the old due-index entry went with the move"
    );

    // A write from the read before the move loses, on either kind of write.
    let result = store.update(&mut read.clone()).await;
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    let result = store.update_schedule(&mut read.clone()).await;
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    let result = store.delete(&read).await;
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    store.delete(&moved).await.expect("delete");
    let left: Vec<String> = scan(&client, &table)
        .await
        .iter()
        .map(sk_of)
        .filter(|sk| sk.starts_with("DOMAIN#"))
        .collect();
    assert!(left.is_empty(), "nothing left behind: {left:?}");
}

/// The same domain item, deleted or written while it still has no schedule item:
/// the delete takes it whole, and a stale write loses.
#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn a_domain_stored_before_schedule_items_is_deleted_whole() {
    let original = domain("org_a", "legacy.example.com");
    let (store, client, table) = legacy_store("legacy-delete", &original).await;
    let read = store
        .get("org_a", &original.name)
        .await
        .expect("get")
        .expect("found");
    let mut stale = read.clone();
    stale.version += 1;
    let result = store.delete(&stale).await;
    assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
    store.delete(&read).await.expect("delete");
    assert!(
        scan(&client, &table)
            .await
            .iter()
            .all(|item| !sk_of(item).starts_with("DOMAIN#")),
        "gone whole"
    );
    assert_eq!(store.domain_count("org_a").await.expect("count"), 0);
}
