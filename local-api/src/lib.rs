//! The dev server: turns each HTTP request into the request API Gateway (HTTP API,
//! payload 2.0) would hand the Lambda, with the authorizer's context, and runs the
//! same handler the Lambda runs.
//!
//! - [`config`]: the arguments and environment, read once at start-up;
//! - [`routes`]: the endpoint table's routes, and the handler of each;
//! - [`server`]: serving HTTP, refusing as API Gateway and the authorizer would;
//! - [`gateway`]: the API Gateway event a Lambda is handed;
//! - [`keys`]: the dev server's own API keys;
//! - [`events`]: the domain events of the in-memory store.

pub mod config;
pub mod events;
pub mod gateway;
pub mod keys;
pub mod routes;
pub mod server;

pub use gateway::{ApiGatewayRequest, api_gateway_event};
pub use keys::DevKeys;
pub use routes::{Route, allow_header, route};
pub use server::{DevServer, serve};
