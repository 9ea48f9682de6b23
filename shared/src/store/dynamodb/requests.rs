//! The pieces every request of the store is built of: a request on one item by
//! its key, a condition, a transaction's item, and a conditional write's
//! result.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::builders::DeleteItemFluentBuilder;
use aws_sdk_dynamodb::operation::get_item::builders::GetItemFluentBuilder;
use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::builders::{
    ConditionCheckBuilder, DeleteBuilder, PutBuilder, UpdateBuilder,
};
use aws_sdk_dynamodb::types::{ConditionCheck, Delete, Put, TransactWriteItem, Update};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use super::{DynamoDbStore, Item, Modeled, build_error, classify, string_value};
use crate::store::StoreError;

/// A conditional single-item write's result: its output, or (`Err` inside) the
/// service's error when the condition failed, for the item it may carry; any
/// other failure classified.
pub(super) fn condition_checked<T, E>(
    operation: &str,
    result: Result<T, SdkError<E, HttpResponse>>,
) -> Result<Result<T, E>, StoreError>
where
    E: Modeled,
{
    match result {
        Ok(output) => Ok(Ok(output)),
        Err(SdkError::ServiceError(service)) if service.err().is_condition_failed() => {
            Ok(Err(service.into_err()))
        }
        Err(error) => Err(classify(operation, error)),
    }
}

/// A write's condition: its expression and the names and values it uses.
pub(super) struct Condition {
    pub(super) expression: String,
    names: HashMap<String, String>,
    pub(super) values: Item,
}

impl Condition {
    pub(super) fn new(expression: impl Into<String>, values: Item) -> Self {
        Self {
            expression: expression.into(),
            names: HashMap::new(),
            values,
        }
    }

    pub(super) fn with_names(
        mut self,
        names: impl IntoIterator<Item = (&'static str, &'static str)>,
    ) -> Self {
        self.names.extend(
            names
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        self
    }
}

/// The builders of writes that take a `Condition` (none with an empty map of
/// names or values: DynamoDB refuses those).
pub(super) trait Conditioned {
    fn conditioned(self, condition: Condition) -> Self;
}

macro_rules! conditioned {
    ($($builder:ty),*) => {$(
        impl Conditioned for $builder {
            fn conditioned(self, condition: Condition) -> Self {
                let Condition { expression, names, values } = condition;
                self.condition_expression(expression)
                    .set_expression_attribute_names((!names.is_empty()).then_some(names))
                    .set_expression_attribute_values((!values.is_empty()).then_some(values))
            }
        }
    )*};
}

conditioned!(
    PutBuilder,
    DeleteBuilder,
    PutItemFluentBuilder,
    DeleteItemFluentBuilder
);

/// A write built for a transaction: one of its items.
pub(super) trait TransactItem {
    fn transact_item(self) -> Result<TransactWriteItem, StoreError>;
}

macro_rules! transact_item {
    ($($builder:ty => $kind:ident),*) => {$(
        impl TransactItem for $builder {
            fn transact_item(self) -> Result<TransactWriteItem, StoreError> {
                Ok(TransactWriteItem::builder()
                    .$kind(self.build().map_err(build_error)?)
                    .build())
            }
        }
    )*};
}

transact_item!(
    PutBuilder => put,
    UpdateBuilder => update,
    DeleteBuilder => delete,
    ConditionCheckBuilder => condition_check
);

/// How a read sees the table.
#[derive(Clone, Copy)]
pub(super) enum Read {
    /// Strongly consistent: every write acknowledged before it.
    Consistent,
    /// DynamoDB's default: eventually consistent, half the price.
    Eventual,
}

/// Builders of the requests on one item of the table, by its key.
macro_rules! keyed {
    ($($(#[$doc:meta])* $name:ident -> $builder:ty = $start:expr;)*) => {$(
        $(#[$doc])*
        pub(super) fn $name(&self, pk: impl Into<String>, sk: impl Into<String>) -> $builder {
            $start(&self.client)
                .table_name(&self.table)
                .key("pk", string_value(pk))
                .key("sk", string_value(sk))
        }
    )*};
}

impl DynamoDbStore {
    /// The item at (`pk`, `sk`), if any: one `GetItem`.
    pub(super) async fn get_item(
        &self,
        operation: &str,
        pk: impl Into<String>,
        sk: impl Into<String>,
        read: Read,
    ) -> Result<Option<Item>, StoreError> {
        self.get_item_request(pk, sk)
            .set_consistent_read(matches!(read, Read::Consistent).then_some(true))
            .send()
            .await
            .map(|output| output.item)
            .map_err(|e| classify(operation, e))
    }

    keyed! {
        /// A `GetItem` of the item at (`pk`, `sk`) (`get_item` sends it).
        get_item_request -> GetItemFluentBuilder = Client::get_item;
        /// An `UpdateItem` of the item at (`pk`, `sk`).
        update_item -> UpdateItemFluentBuilder = Client::update_item;
        /// A `DeleteItem` of the item at (`pk`, `sk`).
        delete_item -> DeleteItemFluentBuilder = Client::delete_item;
        /// A transaction's update of the item at (`pk`, `sk`).
        transact_update -> UpdateBuilder = |_| Update::builder();
        /// A transaction's delete of the item at (`pk`, `sk`).
        transact_delete -> DeleteBuilder = |_| Delete::builder();
        /// A transaction's check of the item at (`pk`, `sk`).
        transact_check -> ConditionCheckBuilder = |_| ConditionCheck::builder();
    }

    /// A `PutItem` of `item`.
    pub(super) fn put_item(&self, item: Item) -> PutItemFluentBuilder {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
    }

    /// A transaction's put of `item`.
    pub(super) fn transact_put(&self, item: Item) -> PutBuilder {
        Put::builder().table_name(&self.table).set_item(Some(item))
    }

    /// A `Query` of the table.
    pub(super) fn query(&self) -> QueryFluentBuilder {
        self.client.query().table_name(&self.table)
    }

    /// A strongly consistent `Query` of the items of partition `pk` whose sort
    /// key begins with `prefix`.
    pub(super) fn query_prefix(&self, pk: String, prefix: &str) -> QueryFluentBuilder {
        self.query()
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", string_value(pk))
            .expression_attribute_values(":prefix", string_value(prefix))
            .consistent_read(true)
    }
}
