//! One suite, two backends: the in-memory store and DynamoDB on the test server
//! (moto_server, started by `scripts/test`; the DynamoDB cases are ignored in a
//! plain `cargo test` and fail without it when run).

use shared::DomainName;
use shared::model::{DnsRecord, Domain, DomainStatus, RecordStatus, Timestamp};
use shared::records::expected_records;
use std::sync::Arc;

use shared::keys::{NewApiKey, hash_key};
use shared::store::{
    DomainStore, DueSlice, DynamoDbStore, InMemoryStore, KeyStore, StoreError, create_table,
};
use test_support::{RequestCounter, dynamodb_client, moto_endpoint, unique_table_name};

pub(crate) struct Backend {
    pub(crate) store: Arc<dyn DomainStore>,
    keys: Arc<dyn KeyStore>,
    /// DynamoDB requests by operation; `None` for the in-memory store.
    pub(crate) counter: Option<RequestCounter>,
}

pub(crate) async fn in_memory() -> Backend {
    let store = Arc::new(InMemoryStore::new());
    Backend {
        store: store.clone(),
        keys: store,
        counter: None,
    }
}

pub(crate) async fn dynamodb() -> Backend {
    let counter = RequestCounter::new();
    let client = dynamodb_client(&moto_endpoint(), &counter);
    let table = unique_table_name("store-suite");
    assert!(create_table(&client, &table).await.expect("create table"));
    counter.reset();
    let store = Arc::new(DynamoDbStore::new(client, table).with_page_size(2));
    Backend {
        store: store.clone(),
        keys: store,
        counter: Some(counter),
    }
}

pub(crate) fn name(raw: &str) -> DomainName {
    DomainName::parse(raw).expect("valid name")
}

pub(crate) fn domain(org: &str, raw: &str) -> Domain {
    let name = name(raw);
    let mut domain = Domain::new(org, name.clone(), Timestamp::now());
    domain.dkim_tokens = vec!["tok1".into(), "tok2".into(), "tok3".into()];
    domain.records = expected_records(&name, &domain.dkim_tokens, "us-east-2");
    domain
}

async fn insert_then_get_round_trips_every_field(backend: &Backend) {
    let mut original = domain("org_a", "mail.company.co.uk");
    original.records[0] = DnsRecord {
        status: RecordStatus::Failed,
        reason: Some("The MX records point elsewhere.".into()),
        observed: vec!["5 mx.other.example".into()],
        ..original.records[0].clone()
    };
    original.last_checked_at = Some(Timestamp::now());
    backend
        .store
        .insert(&original, usize::MAX)
        .await
        .expect("insert");
    let stored = backend
        .store
        .get("org_a", &original.name)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(stored, original);
    assert_eq!(stored.dkim_tokens, original.dkim_tokens);
}

async fn a_name_belongs_to_one_organization(backend: &Backend) {
    backend
        .store
        .insert(&domain("org_a", "example.com"), usize::MAX)
        .await
        .expect("insert");
    let same_org = backend
        .store
        .insert(&domain("org_a", "example.com"), usize::MAX)
        .await;
    assert!(
        matches!(same_org, Err(StoreError::NameTaken)),
        "{same_org:?}"
    );
    let other_org = backend
        .store
        .insert(&domain("org_b", "example.com"), usize::MAX)
        .await;
    assert!(
        matches!(other_org, Err(StoreError::NameTaken)),
        "{other_org:?}"
    );
    assert!(
        backend
            .store
            .get("org_b", &name("example.com"))
            .await
            .expect("get")
            .is_none()
    );
    assert!(backend.store.list("org_b").await.expect("list").is_empty());
}

async fn reads_are_scoped_to_the_organization(backend: &Backend) {
    for (org, raw) in [
        ("org_a", "b.example.com"),
        ("org_a", "a.example.com"),
        ("org_b", "other.example"),
    ] {
        backend
            .store
            .insert(&domain(org, raw), usize::MAX)
            .await
            .expect("insert");
    }
    let names = |domains: Vec<Domain>| {
        domains
            .into_iter()
            .map(|d| d.name.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(backend.store.list("org_a").await.expect("list")),
        ["a.example.com", "b.example.com"]
    );
    assert_eq!(
        names(backend.store.list("org_b").await.expect("list")),
        ["other.example"]
    );
    assert!(backend.store.list("org_c").await.expect("list").is_empty());
    assert!(
        backend
            .store
            .get("org_a", &name("other.example"))
            .await
            .expect("get")
            .is_none()
    );
}

async fn list_follows_every_page(backend: &Backend) {
    for i in 0..5 {
        backend
            .store
            .insert(&domain("org_a", &format!("d{i}.example.com")), usize::MAX)
            .await
            .expect("insert");
    }
    if let Some(counter) = &backend.counter {
        counter.reset();
    }
    assert_eq!(backend.store.list("org_a").await.expect("list").len(), 5);
    if let Some(counter) = &backend.counter {
        // Page size 2: each page one domain item and its schedule item; one
        // Query per page and nothing else.
        assert_eq!(counter.snapshot(), [("Query".to_string(), 5)]);
    }
}

async fn update_never_recreates_a_deleted_domain(backend: &Backend) {
    let mut original = domain("org_a", "example.com");
    backend
        .store
        .insert(&original, usize::MAX)
        .await
        .expect("insert");
    original.verified = true;
    original.status = DomainStatus::Verified;
    backend.store.update(&mut original).await.expect("update");
    assert!(
        backend
            .store
            .get("org_a", &original.name)
            .await
            .expect("get")
            .is_some_and(|d| d.verified)
    );

    backend.store.delete(&original).await.expect("delete");
    let late = backend.store.update(&mut original).await;
    assert!(matches!(late, Err(StoreError::DomainGone)), "{late:?}");
    assert!(
        backend
            .store
            .get("org_a", &original.name)
            .await
            .expect("get")
            .is_none()
    );

    // Deleted and created again: a write meant for the old one must not land.
    let recreated = domain("org_a", "example.com");
    backend
        .store
        .insert(&recreated, usize::MAX)
        .await
        .expect("insert again");
    let stale = backend.store.update(&mut original).await;
    assert!(matches!(stale, Err(StoreError::DomainGone)), "{stale:?}");
    let stored = backend
        .store
        .get("org_a", &recreated.name)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(stored.id, recreated.id);
}

async fn delete_releases_the_name(backend: &Backend) {
    let original = domain("org_a", "example.com");
    backend
        .store
        .insert(&original, usize::MAX)
        .await
        .expect("insert");
    if let Some(counter) = &backend.counter {
        counter.reset();
    }
    backend.store.delete(&original).await.expect("delete");
    if let Some(counter) = &backend.counter {
        assert_eq!(counter.snapshot(), [("TransactWriteItems".to_string(), 1)]);
    }
    let again = backend.store.delete(&original).await;
    assert!(matches!(again, Err(StoreError::DomainGone)), "{again:?}");
    backend
        .store
        .insert(&domain("org_b", "example.com"), usize::MAX)
        .await
        .expect("name is free again");
}

async fn delete_of_another_organizations_domain_is_refused(backend: &Backend) {
    let owned = domain("org_a", "example.com");
    backend
        .store
        .insert(&owned, usize::MAX)
        .await
        .expect("insert");
    let mut forged = owned.clone();
    forged.organization_id = "org_b".into();
    let result = backend.store.delete(&forged).await;
    assert!(matches!(result, Err(StoreError::DomainGone)), "{result:?}");
    assert!(
        backend
            .store
            .get("org_a", &owned.name)
            .await
            .expect("get")
            .is_some()
    );
}

async fn the_due_index_holds_watched_domains_by_next_check(backend: &Backend) {
    let now = Timestamp::now();
    let at = |minutes: i64| now.plus(chrono::Duration::minutes(minutes));
    let mut overdue = domain("org_a", "overdue.example.com");
    let mut due_now = domain("org_b", "due-now.example.com");
    let mut later = domain("org_a", "later.example.com");
    let mut failed = domain("org_b", "failed.example.com");
    for d in [&overdue, &due_now, &later, &failed] {
        backend.store.insert(d, usize::MAX).await.expect("insert");
    }
    overdue.schedule.next_check_at = Some(at(-30));
    due_now.schedule.next_check_at = Some(now);
    later.schedule.next_check_at = Some(at(5));
    failed.status = DomainStatus::Failed;
    failed.schedule.next_check_at = None;
    for d in [&mut overdue, &mut due_now, &mut later, &mut failed] {
        backend.store.update(d).await.expect("update");
    }
    let due = backend
        .store
        .due(now, 10, DueSlice::ALL)
        .await
        .expect("due");
    let names: Vec<String> = due.iter().map(|d| d.name.to_string()).collect();
    assert_eq!(names, ["overdue.example.com", "due-now.example.com"]);
    assert_eq!(due[0].dkim_tokens.len(), 3);
    assert_eq!(
        due[0].schedule, overdue.schedule,
        "the schedule is stored with the domain"
    );
    assert_eq!(
        backend
            .store
            .due(now, 1, DueSlice::ALL)
            .await
            .expect("due")
            .len(),
        1
    );
    let everything = backend
        .store
        .due(at(10), 10, DueSlice::ALL)
        .await
        .expect("due");
    assert_eq!(everything.len(), 3, "failed domains are not in the index");
}

async fn a_write_from_a_stale_read_is_a_conflict(backend: &Backend) {
    let original = domain("org_a", "example.com");
    backend
        .store
        .insert(&original, usize::MAX)
        .await
        .expect("insert");
    let mut first = backend
        .store
        .get("org_a", &original.name)
        .await
        .expect("get")
        .expect("found");
    let mut second = first.clone();
    first.verified = true;
    backend.store.update(&mut first).await.expect("first write");
    assert_eq!(first.version, original.version + 1);
    let stale = backend.store.update(&mut second).await;
    assert!(matches!(stale, Err(StoreError::Conflict)), "{stale:?}");
    let stored = backend
        .store
        .get("org_a", &original.name)
        .await
        .expect("get")
        .expect("found");
    assert!(stored.verified, "the newer write stays");
    assert_eq!(stored.version, first.version);
    let mut again = stored.clone();
    backend
        .store
        .update(&mut again)
        .await
        .expect("a fresh read writes");
}

async fn insert_is_one_transaction_and_get_one_read(backend: &Backend) {
    let original = domain("org_a", "example.com");
    backend
        .store
        .insert(&original, usize::MAX)
        .await
        .expect("insert");
    backend
        .store
        .get("org_a", &original.name)
        .await
        .expect("get");
    if let Some(counter) = &backend.counter {
        assert_eq!(
            counter.snapshot(),
            [
                ("Query".to_string(), 1),
                ("TransactWriteItems".to_string(), 1)
            ]
        );
    }
}

async fn api_keys_are_found_by_hash_listed_by_organization_and_revoked_once(backend: &Backend) {
    let first = NewApiKey::generate("org_a", Timestamp::now());
    let second = NewApiKey::generate("org_a", Timestamp::now());
    let other = NewApiKey::generate("org_b", Timestamp::now());
    for key in [&first, &second, &other] {
        backend
            .keys
            .put_key(&key.record, &hash_key(&key.secret))
            .await
            .expect("put key");
    }
    // A domain in the same organization does not show up as a key, nor the reverse.
    backend
        .store
        .insert(&domain("org_a", "example.com"), usize::MAX)
        .await
        .expect("insert");
    assert_eq!(backend.store.list("org_a").await.expect("list").len(), 1);

    let found = backend
        .keys
        .find_key(&hash_key(&first.secret))
        .await
        .expect("find");
    assert_eq!(found.as_ref(), Some(&first.record));
    assert!(
        backend
            .keys
            .find_key(&hash_key("dk_unknown"))
            .await
            .expect("find")
            .is_none()
    );

    let mut expected = vec![first.record.clone(), second.record.clone()];
    expected.sort_by(|a, b| a.key_id.cmp(&b.key_id));
    assert_eq!(
        backend.keys.list_keys("org_a").await.expect("list keys"),
        expected
    );

    let revoked_at = Timestamp::now();
    let revoked = backend
        .keys
        .revoke_key(&first.record.key_id, revoked_at)
        .await
        .expect("revoke");
    assert_eq!(revoked.revoked_at, Some(revoked_at));
    let later = Timestamp::from(revoked_at.as_datetime() + chrono::Duration::seconds(5));
    let again = backend
        .keys
        .revoke_key(&first.record.key_id, later)
        .await
        .expect("revoke again");
    assert_eq!(
        again.revoked_at,
        Some(revoked_at),
        "the first revocation time stays"
    );
    let found = backend
        .keys
        .find_key(&hash_key(&first.secret))
        .await
        .expect("find")
        .expect("still stored");
    assert!(!found.is_active());
    let listed = backend.keys.list_keys("org_a").await.expect("list keys");
    assert!(
        listed
            .iter()
            .any(|k| k.key_id == first.record.key_id && !k.is_active())
    );
    assert!(
        backend
            .keys
            .find_key(&hash_key(&second.secret))
            .await
            .expect("find")
            .is_some_and(|k| k.is_active())
    );
    let missing = backend
        .keys
        .revoke_key("key_missing", Timestamp::now())
        .await;
    assert!(
        matches!(missing, Err(StoreError::KeyNotFound)),
        "{missing:?}"
    );
}

async fn the_count_bounds_an_organization_and_follows_deletes(backend: &Backend) {
    let store = &backend.store;
    for raw in ["a.example.com", "b.example.com"] {
        store
            .insert(&domain("org_a", raw), 2)
            .await
            .expect("insert");
    }
    assert_eq!(store.domain_count("org_a").await.expect("count"), 2);
    let third = store.insert(&domain("org_a", "c.example.com"), 2).await;
    assert!(matches!(third, Err(StoreError::LimitReached)), "{third:?}");
    // A taken name is the more specific answer, even at the limit.
    let taken = store.insert(&domain("org_a", "a.example.com"), 2).await;
    assert!(matches!(taken, Err(StoreError::NameTaken)), "{taken:?}");
    assert!(
        store
            .get("org_a", &name("c.example.com"))
            .await
            .expect("get")
            .is_none(),
        "a refused insert writes nothing"
    );
    // Other organizations have counts of their own.
    store
        .insert(&domain("org_b", "c.example.com"), 2)
        .await
        .expect("insert");
    let stored = store
        .get("org_a", &name("a.example.com"))
        .await
        .expect("get")
        .expect("found");
    store.delete(&stored).await.expect("delete");
    assert_eq!(store.domain_count("org_a").await.expect("count"), 1);
    assert_eq!(store.domain_count("org_b").await.expect("count"), 1);
    store
        .insert(&domain("org_a", "d.example.com"), 2)
        .await
        .expect("a place again");
}

async fn reschedule_moves_only_the_next_check_and_is_versioned(backend: &Backend) {
    let store = &backend.store;
    let original = domain("org_a", "example.com");
    store.insert(&original, usize::MAX).await.expect("insert");
    let later = original.created_at.plus(chrono::Duration::hours(1));
    store
        .reschedule(&original, Some(later))
        .await
        .expect("reschedule");
    let stored = store
        .get("org_a", &name("example.com"))
        .await
        .expect("get")
        .expect("found");
    assert_eq!(stored.schedule.next_check_at, Some(later));
    assert_eq!(stored.version, original.version + 1);
    assert_eq!(stored.records, original.records, "nothing else changed");
    assert!(
        store
            .due(later.plus(chrono::Duration::seconds(1)), 10, DueSlice::ALL)
            .await
            .expect("due")
            .len()
            == 1
    );
    // From a stale read: a conflict; for a domain deleted meanwhile: gone.
    let stale = store.reschedule(&original, None).await;
    assert!(matches!(stale, Err(StoreError::Conflict)), "{stale:?}");
    store.delete(&stored).await.expect("delete");
    let gone = store.reschedule(&stored, None).await;
    assert!(matches!(gone, Err(StoreError::DomainGone)), "{gone:?}");
    // Out of the schedule: not due any more.
    let watched = domain("org_a", "watched.example.com");
    store.insert(&watched, usize::MAX).await.expect("insert");
    store.reschedule(&watched, None).await.expect("unschedule");
    assert!(
        store
            .due(later, 10, DueSlice::ALL)
            .await
            .expect("due")
            .is_empty()
    );
    let unscheduled = store
        .get("org_a", &name("watched.example.com"))
        .await
        .expect("an unscheduled domain reads back")
        .expect("found");
    assert_eq!(unscheduled.schedule.next_check_at, None);
    assert_eq!(unscheduled.records, watched.records);
}

/// Runs each named case on both stores: the in-memory one in a plain `cargo
/// test`, DynamoDB on moto only when asked (`--include-ignored`, as scripts/test
/// runs them).
macro_rules! store_suite {
    ($($case:ident),* $(,)?) => {
        mod in_memory {
            $(#[tokio::test]
            async fn $case() {
                super::$case(&super::in_memory().await).await;
            })*
        }
        mod dynamodb {
            $(#[tokio::test]
            #[ignore = "needs moto: scripts/test"]
            async fn $case() {
                super::$case(&super::dynamodb().await).await;
            })*
        }
    };
}

pub(crate) use store_suite;

store_suite!(
    insert_then_get_round_trips_every_field,
    a_name_belongs_to_one_organization,
    reads_are_scoped_to_the_organization,
    list_follows_every_page,
    update_never_recreates_a_deleted_domain,
    delete_releases_the_name,
    delete_of_another_organizations_domain_is_refused,
    the_due_index_holds_watched_domains_by_next_check,
    a_write_from_a_stale_read_is_a_conflict,
    insert_is_one_transaction_and_get_one_read,
    api_keys_are_found_by_hash_listed_by_organization_and_revoked_once,
    the_count_bounds_an_organization_and_follows_deletes,
    reschedule_moves_only_the_next_check_and_is_versioned,
);
