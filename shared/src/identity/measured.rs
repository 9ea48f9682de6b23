//! SES calls measured: an identity provider wrapped so that every call emits its
//! outcome and duration (`Operation=ses`, by `Call` and `Outcome`), whichever code
//! path made it.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::{Identity, IdentityError, IdentityOwner, IdentityProvider};
use crate::domain_name::DomainName;
use crate::metrics::{MetricSet, Metrics};

/// `inner`, with every call measured into `metrics`.
pub struct MeasuredIdentities {
    inner: Arc<dyn IdentityProvider>,
    metrics: Metrics,
}

impl MeasuredIdentities {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn IdentityProvider>, metrics: Metrics) -> Self {
        Self { inner, metrics }
    }

    fn record<T>(&self, call: &'static str, started: Instant, result: &Result<T, IdentityError>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(IdentityError::NotFound) => "not_found",
            Err(IdentityError::AlreadyExists) => "already_exists",
            Err(IdentityError::Throttled(_)) => "throttled",
            Err(IdentityError::Unavailable(_)) => "unavailable",
            Err(IdentityError::LimitExceeded(_)) => "limit_exceeded",
            Err(IdentityError::Other(_)) => "error",
        };
        self.metrics.emit(
            MetricSet::for_operation("ses")
                .dimension("Call", call)
                .dimension("Outcome", outcome)
                .count("SesCalls", 1)
                .millis("SesMillis", started.elapsed()),
        );
    }
}

#[async_trait]
impl IdentityProvider for MeasuredIdentities {
    async fn create(
        &self,
        name: &DomainName,
        owner: &IdentityOwner,
    ) -> Result<Vec<String>, IdentityError> {
        let started = Instant::now();
        let result = self.inner.create(name, owner).await;
        self.record("CreateEmailIdentity", started, &result);
        result
    }

    async fn get(&self, name: &DomainName) -> Result<Identity, IdentityError> {
        let started = Instant::now();
        let result = self.inner.get(name).await;
        self.record("GetEmailIdentity", started, &result);
        result
    }

    async fn delete(&self, name: &DomainName) -> Result<(), IdentityError> {
        let started = Instant::now();
        let result = self.inner.delete(name).await;
        self.record("DeleteEmailIdentity", started, &result);
        result
    }

    async fn set_mail_from(
        &self,
        name: &DomainName,
        mail_from_domain: Option<&str>,
    ) -> Result<(), IdentityError> {
        let started = Instant::now();
        let result = self.inner.set_mail_from(name, mail_from_domain).await;
        self.record("PutEmailIdentityMailFromAttributes", started, &result);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::LocalIdentities;

    #[tokio::test]
    async fn every_call_is_one_line_with_its_outcome() {
        let (metrics, captured) = Metrics::in_memory("DomainsApi/test");
        let identities = MeasuredIdentities::new(Arc::new(LocalIdentities::new()), metrics);
        let name = DomainName::parse("example.com").expect("valid");
        let owner = IdentityOwner::new("table", "org");
        identities.create(&name, &owner).await.expect("created");
        let _ = identities.create(&name, &owner).await;
        identities.get(&name).await.expect("read");
        identities.delete(&name).await.expect("deleted");
        let _ = identities.set_mail_from(&name, None).await;
        let seen: Vec<(String, String)> = captured
            .lines()
            .iter()
            .map(|line| {
                assert_eq!(line["SesCalls"], 1.0);
                assert!(line["SesMillis"].as_f64().is_some());
                (
                    line["Call"].as_str().unwrap_or_default().to_string(),
                    line["Outcome"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let expected = [
            ("CreateEmailIdentity", "ok"),
            ("CreateEmailIdentity", "already_exists"),
            ("GetEmailIdentity", "ok"),
            ("DeleteEmailIdentity", "ok"),
            ("PutEmailIdentityMailFromAttributes", "not_found"),
        ]
        .map(|(call, outcome)| (call.to_string(), outcome.to_string()));
        assert_eq!(seen, expected);
    }
}
