//! Test support: a real DNS server on 127.0.0.1 serving zones written as zone-file
//! text, the DynamoDB-API test server's endpoint, and a request counter for SDK
//! clients.

pub mod dns;
pub mod dynamodb;
pub mod flood;

pub use dns::TestDnsServer;
pub use dynamodb::{
    RequestCounter, dynamodb_client, fresh_account, moto_endpoint, sesv2_client, sesv2_client_in,
    unique_table_name,
};
pub use flood::FloodDnsServer;
