//! The table's schema: its key attributes, the `due-keys` index, and how each
//! item's keys are written (one place for every key literal).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};

use super::{build_error, classify};
use crate::domain_name::DomainName;
use crate::model::Timestamp;
use crate::store::StoreError;

/// Name of the sparse index of due checks. Keys only: an entry moves on every
/// check, and a small entry is the cheapest to move (BENCHMARKS.md, "The scheduled
/// job's bill"). It replaced `due-checks`, which projected every attribute.
pub const DUE_INDEX: &str = "due-keys";

/// Sort keys and sort-key prefixes of the items (see the table in `dynamodb`).
pub(super) const DOMAIN_SORT_PREFIX: &str = "DOMAIN#";
/// Sort-key suffix of a domain's schedule item (`DOMAIN#<name>#SCHEDULE`). No
/// name character sorts before `#`, so the schedule item sorts right after its
/// domain item and one `Query` reads both.
pub(super) const SCHEDULE_SUFFIX: &str = "#SCHEDULE";
pub(super) const API_KEY_PREFIX: &str = "APIKEY#";
pub(super) const API_KEY_SORT_KEY: &str = "APIKEY";
pub(super) const API_KEY_ID_SORT_KEY: &str = "APIKEYID";
/// A key no item has: the start-up read asks for it.
pub(super) const WARM_UP_KEY: &str = "WARMUP";

/// Sort key of a name's holder item (`NAME#<name>`): which organization holds the
/// name. (Its stored value keeps the older word; in code a "claim" is only ever
/// a `DomainClaim`.)
pub(super) const HOLDER_SORT_KEY: &str = "CLAIM";
/// Sort-key prefix of an organization's domain claims (`DOMAINCLAIM#<name>`).
pub(super) const DOMAIN_CLAIM_PREFIX: &str = "DOMAINCLAIM#";
/// Sort key of an organization's claims guard.
pub(super) const CLAIM_GUARD_SORT_KEY: &str = "CLAIMS";
/// The attribute that makes a domain item the mark of a domain taken by another
/// organization: readers see no domain there.
pub(super) const CLAIMED_MARK: &str = "claimed_domain_id";
/// The table's TTL attribute (epoch seconds): claims and claimed marks expire.
pub const TTL_ATTRIBUTE: &str = "ttl";

pub(super) const COUNT_SORT_KEY: &str = "COUNT";

pub(super) fn organization_pk(organization_id: &str) -> String {
    format!("ORG#{organization_id}")
}

pub(super) fn domain_sk(name: &DomainName) -> String {
    format!("{DOMAIN_SORT_PREFIX}{name}")
}

pub(super) fn schedule_sk(name: &DomainName) -> String {
    format!("{DOMAIN_SORT_PREFIX}{name}{SCHEDULE_SUFFIX}")
}

pub(super) fn domain_claim_sk(name: &DomainName) -> String {
    format!("{DOMAIN_CLAIM_PREFIX}{name}")
}

pub(super) fn due_partition(shard: u32) -> String {
    format!("DUE#{shard}")
}

pub(super) fn holder_pk(name: &DomainName) -> String {
    format!("NAME#{name}")
}

/// The due-keys index's partition key of a domain.
pub(super) fn due_partition_key_of(name: &DomainName) -> String {
    due_partition(crate::store::due_partition_of(name))
}

pub(super) fn due_sort_key(at: Timestamp, name: &DomainName) -> String {
    format!("{at}#{name}")
}

pub(super) fn key_hash_pk(key_hash: &str) -> String {
    format!("{API_KEY_PREFIX}{key_hash}")
}

pub(super) fn key_org_sk(key_id: &str) -> String {
    format!("{API_KEY_PREFIX}{key_id}")
}

pub(super) fn key_id_pk(key_id: &str) -> String {
    format!("{API_KEY_ID_SORT_KEY}#{key_id}")
}

/// Creates the table with its keys and the sparse due-keys GSI (on-demand billing).
/// `Ok(false)` if it already existed.
pub async fn create_table(client: &Client, table: &str) -> Result<bool, StoreError> {
    let key = |name: &str, key_type| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .map_err(build_error)
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(build_error)
    };
    let due_index = GlobalSecondaryIndex::builder()
        .index_name(DUE_INDEX)
        .key_schema(key("gsi_due_pk", KeyType::Hash)?)
        .key_schema(key("gsi_due_sk", KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::KeysOnly)
                .build(),
        )
        .build()
        .map_err(build_error)?;
    let result = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .attribute_definitions(attribute("pk")?)
        .attribute_definitions(attribute("sk")?)
        .attribute_definitions(attribute("gsi_due_pk")?)
        .attribute_definitions(attribute("gsi_due_sk")?)
        .global_secondary_indexes(due_index)
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(service)) if service.err().is_resource_in_use_exception() => {
            Ok(false)
        }
        Err(error) => Err(classify("create table", error)),
    }
}
