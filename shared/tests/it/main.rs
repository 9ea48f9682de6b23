//! The `shared` crate's integration tests, one binary (the AWS SDK is linked
//! once): a module per concern. Tests that need the DynamoDB-API server (moto,
//! `MOTO_ENDPOINT`) or the loopback DNS hierarchy (`DNS_HIERARCHY_*`) are
//! `#[ignore]`d, so a plain `cargo test` runs the rest with no server;
//! `scripts/test` starts both and runs them too (`--include-ignored`), and they
//! fail, never skip, without their server.

mod common;

mod authorizer;
mod bill;
mod check_limits;
mod claim_races;
mod claims;
mod deadlines;
mod dns_hierarchy;
mod dynamodb_errors;
mod endpoint_table;
mod event_publisher;
mod events;
mod fanout;
mod faults;
mod handlers;
mod held_names;
mod iam_policies;
mod limits;
mod races;
mod schedule_items;
mod scheduler;
mod ses_adapter;
mod ses_confirmation;
mod store_claims;
mod store_suite;
mod tenancy;
mod tenant_isolation;
mod tenant_safety;
mod verification;
