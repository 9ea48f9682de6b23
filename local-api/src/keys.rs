//! The dev server's own API keys (`DEV_API_KEYS`).

use std::collections::HashMap;

use shared::ApiError;

/// API keys of the dev server: SHA-256 of the key -> organization id. Like the
/// authorizer's, kept and compared only as hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevKeys(HashMap<String, String>);

impl DevKeys {
    /// `key1=org_a,key2=org_b`.
    pub fn parse(value: &str) -> Result<Self, String> {
        let mut keys = HashMap::new();
        for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some((key, org)) if !key.trim().is_empty() && !org.trim().is_empty() => {
                    keys.insert(shared::keys::hash_key(key.trim()), org.trim().to_string());
                }
                _ => return Err(format!("DEV_API_KEYS: {pair:?} is not key=organization_id")),
            }
        }
        if keys.is_empty() {
            return Err("DEV_API_KEYS names no key".into());
        }
        Ok(Self(keys))
    }

    /// Organization of `Authorization: Bearer <key>`: 401 without a bearer key,
    /// 403 for a key that is not known.
    pub fn authorize(&self, authorization: Option<&str>) -> Result<String, ApiError> {
        let key = authorization
            .and_then(shared::keys::bearer_key)
            .ok_or(ApiError::Unauthorized)?;
        self.0
            .get(&shared::keys::hash_key(key))
            .cloned()
            .ok_or(ApiError::Forbidden)
    }

    pub fn organizations(&self) -> Vec<&str> {
        let mut orgs: Vec<&str> = self.0.values().map(String::as_str).collect();
        orgs.sort_unstable();
        orgs.dedup();
        orgs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_organizations() {
        let keys = DevKeys::parse("k1=org_a, k2=org_b").expect("valid");
        assert_eq!(
            keys.authorize(Some("Bearer k1")).ok().as_deref(),
            Some("org_a")
        );
        assert_eq!(
            keys.authorize(Some("bearer k2")).ok().as_deref(),
            Some("org_b")
        );
        assert!(matches!(keys.authorize(None), Err(ApiError::Unauthorized)));
        assert!(matches!(
            keys.authorize(Some("Basic k1")),
            Err(ApiError::Unauthorized)
        ));
        assert!(matches!(
            keys.authorize(Some("Bearer ")),
            Err(ApiError::Unauthorized)
        ));
        assert!(matches!(
            keys.authorize(Some("Bearer k3")),
            Err(ApiError::Forbidden)
        ));
        assert!(DevKeys::parse("k1").is_err());
        assert!(DevKeys::parse("").is_err());
    }
}
