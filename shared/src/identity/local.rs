//! Identities kept in memory: the dev server's embedded default, no AWS needed.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use rand::Rng;

use super::{Identity, IdentityError, IdentityOwner, IdentityProvider};
use crate::domain_name::DomainName;

/// Identities kept in memory with SES-like tokens and tags, for the dev server's
/// embedded default: no AWS needed. Behaves like SES (AlreadyExists, NotFound).
#[derive(Default)]
pub struct LocalIdentities {
    identities: Mutex<HashMap<DomainName, Identity>>,
}

impl LocalIdentities {
    /// No identities yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, HashMap<DomainName, Identity>>, IdentityError> {
        self.identities
            .lock()
            .map_err(|_| IdentityError::Other("local identities lock poisoned".into()))
    }

    /// Adds an identity as someone else would (e.g. the platform's own sending
    /// domain, made outside this API): `owner: None` means untagged.
    pub fn insert(
        &self,
        name: &DomainName,
        owner: Option<IdentityOwner>,
    ) -> Result<Vec<String>, IdentityError> {
        let tokens: Vec<String> = (0..3).map(|_| random_dkim_token()).collect();
        let mut identities = self.lock()?;
        if identities.contains_key(name) {
            return Err(IdentityError::AlreadyExists);
        }
        identities.insert(
            name.clone(),
            Identity {
                tokens: tokens.clone(),
                owner,
                dkim_status: None,
                mail_from_domain: None,
                mail_from_status: None,
            },
        );
        Ok(tokens)
    }
}

/// 32 lowercase letters and digits, the shape of an SES Easy DKIM token.
pub fn random_dkim_token() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..32)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

#[async_trait]
impl IdentityProvider for LocalIdentities {
    async fn create(
        &self,
        name: &DomainName,
        owner: &IdentityOwner,
    ) -> Result<Vec<String>, IdentityError> {
        self.insert(name, Some(owner.clone()))
    }

    async fn get(&self, name: &DomainName) -> Result<Identity, IdentityError> {
        self.lock()?
            .get(name)
            .cloned()
            .ok_or(IdentityError::NotFound)
    }

    async fn delete(&self, name: &DomainName) -> Result<(), IdentityError> {
        self.lock()?.remove(name);
        Ok(())
    }

    async fn set_mail_from(
        &self,
        name: &DomainName,
        mail_from_domain: Option<&str>,
    ) -> Result<(), IdentityError> {
        let mut identities = self.lock()?;
        let identity = identities.get_mut(name).ok_or(IdentityError::NotFound)?;
        identity.mail_from_domain = mail_from_domain.map(str::to_string);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_tokens_look_like_ses_tokens() {
        let token = random_dkim_token();
        assert_eq!(token.len(), 32);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        assert_ne!(token, random_dkim_token());
    }

    #[tokio::test]
    async fn local_identities_behave_like_ses() {
        let identities = LocalIdentities::new();
        let name = DomainName::parse("example.com").expect("valid");
        let owner = IdentityOwner::new("table", "org_1");
        let tokens = identities.create(&name, &owner).await.expect("created");
        assert_eq!(tokens.len(), 3);
        assert_eq!(
            identities.create(&name, &owner).await,
            Err(IdentityError::AlreadyExists)
        );
        assert_eq!(
            identities.get(&name).await,
            Ok(Identity {
                tokens: tokens.clone(),
                owner: Some(owner.clone()),
                dkim_status: None,
                mail_from_domain: None,
                mail_from_status: None,
            })
        );
        identities
            .set_mail_from(&name, Some("send.example.com"))
            .await
            .expect("set");
        let identity = identities.get(&name).await.expect("there");
        assert_eq!(
            identity.mail_from_domain.as_deref(),
            Some("send.example.com")
        );
        identities
            .set_mail_from(&name, None)
            .await
            .expect("cleared");
        assert_eq!(
            identities.get(&name).await.expect("there").mail_from_domain,
            None
        );
        identities.delete(&name).await.expect("deleted");
        identities
            .delete(&name)
            .await
            .expect("deleting again is fine");
        assert_eq!(identities.get(&name).await, Err(IdentityError::NotFound));
    }
}
