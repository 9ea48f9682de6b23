//! API keys: random, with a readable prefix, stored only as a SHA-256 hash.

use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::Timestamp;

/// What every API key starts with.
pub const KEY_PREFIX: &str = "dk_";
/// 40 characters from 62: about 238 random bits.
const KEY_RANDOM_CHARS: usize = 40;
const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// What is kept about a key: never the key itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Public identifier, for listing and revoking.
    pub key_id: String,
    /// The organization the key acts for.
    pub organization_id: String,
    /// The key's first characters, so an operator can tell keys apart.
    pub hint: String,
    /// When the key was made.
    pub created_at: Timestamp,
    /// Absent until revoked (so a revoke can set it only once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
}

impl ApiKeyRecord {
    /// Whether the key is still accepted (not revoked).
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// A freshly made key: `secret` is shown once and then only its hash exists.
pub struct NewApiKey {
    /// The key itself: shown once, never stored.
    pub secret: String,
    /// What is stored about it (under its hash).
    pub record: ApiKeyRecord,
}

/// `len` random letters and digits.
pub(crate) fn random_alphanumeric(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHANUMERIC[rng.random_range(0..ALPHANUMERIC.len())]))
        .collect()
}

impl NewApiKey {
    /// A fresh random key for `organization_id`.
    pub fn generate(organization_id: &str, now: Timestamp) -> Self {
        let secret = format!("{KEY_PREFIX}{}", random_alphanumeric(KEY_RANDOM_CHARS));
        let record = ApiKeyRecord {
            key_id: format!("key_{}", random_alphanumeric(16)),
            organization_id: organization_id.to_string(),
            hint: format!("{}…", &secret[..KEY_PREFIX.len() + 4]),
            created_at: now,
            revoked_at: None,
        };
        Self { secret, record }
    }
}

/// Hex SHA-256 of the key: the only form in which keys are stored or compared.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Whether `key` has the shape of one of our keys; anything else is refused
/// without a lookup.
pub fn is_well_formed(key: &str) -> bool {
    key.strip_prefix(KEY_PREFIX).is_some_and(|random| {
        random.len() == KEY_RANDOM_CHARS && random.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// The key in an `Authorization: Bearer <key>` header value.
pub fn bearer_key(authorization: &str) -> Option<&str> {
    let (scheme, key) = authorization.trim().split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_well_formed_random_and_hashed() {
        let first = NewApiKey::generate("org_a", Timestamp::now());
        let second = NewApiKey::generate("org_a", Timestamp::now());
        assert!(is_well_formed(&first.secret));
        assert_ne!(first.secret, second.secret);
        assert_ne!(first.record.key_id, second.record.key_id);
        assert!(first.secret.starts_with(&first.record.hint[..7]));
        let hash = hash_key(&first.secret);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&first.secret[3..]));
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn malformed_keys_and_headers_are_recognized() {
        for key in [
            "",
            "dk_",
            "dk_short",
            "xx_0123456789012345678901234567890123456789",
            "dk_012345678901234567890123456789012345678!",
        ] {
            assert!(!is_well_formed(key), "{key}");
        }
        assert_eq!(bearer_key("Bearer dk_abc"), Some("dk_abc"));
        assert_eq!(bearer_key("bearer   dk_abc "), Some("dk_abc"));
        assert_eq!(bearer_key("Basic dk_abc"), None);
        assert_eq!(bearer_key("Bearer"), None);
        assert_eq!(bearer_key("dk_abc"), None);
    }
}
