#![warn(missing_docs)]
//! The Domains API: models, domain-name parsing, storage, SES and DNS adapters,
//! errors and the handlers every Lambda (and the dev server) runs.

pub mod app;
pub mod authorizer;
pub mod claims;
pub mod config;
pub mod domain_name;
pub mod domains;
pub mod endpoints;
pub mod error;
pub mod events;
pub mod fanout;
pub mod handlers;
pub mod identity;
pub mod keys;
pub mod mail_from;
pub mod metrics;
pub mod model;
pub mod network;
pub mod publishing;
pub mod records;
pub mod request;
pub mod store;
pub mod telemetry;
pub mod verify;

pub use app::{App, StartupError};
// The use cases' modules, where callers outside the crate knew them.
pub use domain_name::DomainName;
pub use domains::{confirmation, lifecycle, provisioning, scheduler, transfer};
pub use error::ApiError;
pub use lambda_http::aws_lambda_events::apigw as lambda_events;
pub use model::{DnsRecord, Domain, DomainStatus, RecordStatus, Timestamp};
