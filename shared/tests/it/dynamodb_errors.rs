//! How the DynamoDB store reads DynamoDB's failures, against aws-smithy-mocks:
//! throttling, 5xx, cancelled transactions and failed conditions.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::query::{QueryError, QueryOutput};
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsError, TransactWriteItemsOutput,
};
use aws_sdk_dynamodb::types::CancellationReason;
use aws_sdk_dynamodb::types::error::{
    ConditionalCheckFailedException, ProvisionedThroughputExceededException,
    TransactionCanceledException,
};
use aws_smithy_mocks::{Rule, RuleMode, mock};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use shared::DomainName;
use shared::model::{Domain, Timestamp};
use shared::store::DomainItems;
use shared::store::{DynamoDbStore, StoreError};

fn store(rules: &[&Rule]) -> DynamoDbStore {
    let (sdk, interceptor) = crate::common::mocked_sdk(rules, RuleMode::Sequential);
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .interceptor(interceptor)
        .build();
    DynamoDbStore::new(Client::from_conf(config), "table")
}

fn domain() -> Domain {
    Domain::new(
        "org_a",
        DomainName::parse("example.com").expect("valid"),
        Timestamp::now(),
    )
}

fn cancelled(codes: &[&str]) -> TransactWriteItemsError {
    let reasons = codes
        .iter()
        .map(|c| CancellationReason::builder().code(*c).build())
        .collect();
    TransactWriteItemsError::TransactionCanceledException(
        TransactionCanceledException::builder()
            .set_cancellation_reasons(Some(reasons))
            .build(),
    )
}

#[tokio::test]
async fn a_failed_claim_condition_is_name_taken() {
    let rule = mock!(Client::transact_write_items)
        .then_error(|| cancelled(&["ConditionalCheckFailed", "None"]));
    let result = store(&[&rule]).insert(&domain(), usize::MAX).await;
    assert!(matches!(result, Err(StoreError::NameTaken)), "{result:?}");
}

#[tokio::test]
async fn a_transaction_conflict_is_retried_then_succeeds_or_is_unavailable() {
    let conflict = mock!(Client::transact_write_items)
        .then_error(|| cancelled(&["TransactionConflict", "None"]));
    let ok = mock!(Client::transact_write_items)
        .then_output(|| TransactWriteItemsOutput::builder().build());
    store(&[&conflict, &ok])
        .insert(&domain(), usize::MAX)
        .await
        .expect("retried after a conflict");
    assert_eq!((conflict.num_calls(), ok.num_calls()), (1, 1));

    let always = mock!(Client::transact_write_items)
        .sequence()
        .error(|| cancelled(&["TransactionConflict", "None"]))
        .times(4)
        .build();
    let result = store(&[&always]).insert(&domain(), usize::MAX).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert_eq!(always.num_calls(), 4, "the first try and 3 retries");
}

#[tokio::test]
async fn throttling_is_throttled_wherever_it_comes_from() {
    let cancelled_by_throttling =
        mock!(Client::transact_write_items).then_error(|| cancelled(&["ThrottlingError", "None"]));
    let result = store(&[&cancelled_by_throttling])
        .insert(&domain(), usize::MAX)
        .await;
    assert!(
        matches!(result, Err(StoreError::Throttled(_))),
        "{result:?}"
    );

    let throttled_read = mock!(Client::query).then_error(|| {
        QueryError::ProvisionedThroughputExceededException(
            ProvisionedThroughputExceededException::builder()
                .message("slow down")
                .build(),
        )
    });
    let result = store(&[&throttled_read]).get("org_a", &domain().name).await;
    assert!(
        matches!(result, Err(StoreError::Throttled(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn server_errors_are_unavailable() {
    let failing = mock!(Client::query).then_http_response(|| {
        HttpResponse::new(
            StatusCode::try_from(500).expect("status"),
            SdkBody::from(r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"boom"}"#),
        )
    });
    let result = store(&[&failing]).get("org_a", &domain().name).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_failed_update_condition_is_a_conflict_or_gone() {
    let mut stale = domain();
    let item = std::collections::HashMap::from([(
        "id".to_string(),
        aws_sdk_dynamodb::types::AttributeValue::S(stale.id.clone()),
    )]);
    // The schedule item alone: the failure returns the item it found.
    let conflict = mock!(Client::put_item).then_error(move || {
        PutItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder()
                .set_item(Some(item.clone()))
                .build(),
        )
    });
    let result = store(&[&conflict]).update_schedule(&mut stale).await;
    assert!(
        matches!(result, Err(StoreError::Conflict)),
        "same id still there: {result:?}"
    );

    // No schedule item: the store reads the domain, and finds nothing.
    let gone = mock!(Client::put_item).then_error(|| {
        PutItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder().build(),
        )
    });
    let nothing = mock!(Client::query).then_output(|| QueryOutput::builder().build());
    let result = store(&[&gone, &nothing]).update_schedule(&mut stale).await;
    assert!(matches!(result, Err(StoreError::DomainGone)), "{result:?}");

    // Both items: a cancelled transaction, then the same read.
    let cancelled_update = mock!(Client::transact_write_items)
        .then_error(|| cancelled(&["ConditionalCheckFailed", "None"]));
    let nothing = mock!(Client::query).then_output(|| QueryOutput::builder().build());
    let version = stale.version;
    let result = store(&[&cancelled_update, &nothing])
        .update(&mut stale)
        .await;
    assert!(matches!(result, Err(StoreError::DomainGone)), "{result:?}");
    assert_eq!(
        stale.version, version,
        "a failed update leaves the version as read"
    );
}
