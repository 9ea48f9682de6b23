//! Test support: a real DNS server on 127.0.0.1 serving zones written as zone-file
//! text (and one that floods), the DynamoDB-API test server's endpoint and fresh
//! accounts on it, a request counter for SDK clients, one hookable store wrapper
//! for staging faults and races, a server that never answers, and a port held
//! closed.

pub mod closed;
pub mod dns;
pub mod dynamodb;
pub mod flood;
pub mod stalled;
pub mod store_hook;

pub use closed::ClosedPort;
pub use dns::TestDnsServer;
pub use dynamodb::{
    RequestCounter, dynamodb_client, eventbridge_client, fresh_account, moto_endpoint,
    sesv2_client, sesv2_client_in, unique_table_name,
};
pub use flood::FloodDnsServer;
pub use stalled::StalledServer;
pub use store_hook::{Hooked, HookedStore, StoreHook, StoreOp};

/// The DKIM tokens of a domain as the API answers it (from its DKIM records' names).
pub fn tokens_of(domain: &serde_json::Value) -> Vec<String> {
    domain["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["record"] == "DKIM")
        .map(|r| {
            r["fqdn"]
                .as_str()
                .expect("fqdn")
                .split('.')
                .next()
                .expect("token")
                .to_string()
        })
        .collect()
}
