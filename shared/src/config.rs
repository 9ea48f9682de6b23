//! Settings read once from the environment at start-up.

use std::net::SocketAddr;

pub const DEFAULT_RECEIVING_REGION: &str = "us-east-2";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// DynamoDB table (`TABLE_NAME`).
    pub table_name: String,
    /// SES receiving region for the inbound MX host: `SES_RECEIVING_REGION`, else
    /// `AWS_REGION`, else us-east-2.
    pub receiving_region: String,
    /// `DNS_NAMESERVERS=ip:port[,ip:port]`: ask only these servers instead of the
    /// system resolver.
    pub dns_nameservers: Option<Vec<SocketAddr>>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("{0} is not set; it must name the DynamoDB table (see README, Configuration)")]
    Missing(&'static str),
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let non_empty = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let table_name = non_empty("TABLE_NAME").ok_or(ConfigError::Missing("TABLE_NAME"))?;
        Ok(Self {
            table_name,
            receiving_region: receiving_region(&non_empty)?,
            dns_nameservers: non_empty("DNS_NAMESERVERS")
                .map(|v| parse_nameservers(&v))
                .transpose()?,
        })
    }
}

/// The receiving region alone, for modes without a table (the dev server's default).
pub fn receiving_region_from_env() -> Result<String, ConfigError> {
    receiving_region(&|name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
}

pub fn nameservers_from_env() -> Result<Option<Vec<SocketAddr>>, ConfigError> {
    std::env::var("DNS_NAMESERVERS")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| parse_nameservers(&v))
        .transpose()
}

fn receiving_region(lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    let (name, region) = match lookup("SES_RECEIVING_REGION") {
        Some(region) => ("SES_RECEIVING_REGION", region),
        None => match lookup("AWS_REGION") {
            Some(region) => ("AWS_REGION", region),
            None => return Ok(DEFAULT_RECEIVING_REGION.to_string()),
        },
    };
    let region = region.trim().to_string();
    let valid = region
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid && region.contains('-') {
        Ok(region)
    } else {
        Err(ConfigError::Invalid {
            name,
            reason: format!("{region:?} is not an AWS region name such as us-east-2"),
        })
    }
}

fn parse_nameservers(value: &str) -> Result<Vec<SocketAddr>, ConfigError> {
    value
        .split(',')
        .map(|part| {
            part.trim()
                .parse::<SocketAddr>()
                .map_err(|_| ConfigError::Invalid {
                    name: "DNS_NAMESERVERS",
                    reason: format!("{:?} is not ip:port (e.g. 127.0.0.1:5353)", part.trim()),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn table_name_is_required() {
        assert_eq!(config(&[]), Err(ConfigError::Missing("TABLE_NAME")));
        assert_eq!(
            config(&[("TABLE_NAME", " ")]),
            Err(ConfigError::Missing("TABLE_NAME"))
        );
    }

    #[test]
    fn receiving_region_defaults_and_overrides() {
        let default = config(&[("TABLE_NAME", "t")]).expect("valid");
        assert_eq!(default.receiving_region, "us-east-2");
        let from_aws = config(&[("TABLE_NAME", "t"), ("AWS_REGION", "eu-west-1")]).expect("valid");
        assert_eq!(from_aws.receiving_region, "eu-west-1");
        let explicit = config(&[
            ("TABLE_NAME", "t"),
            ("AWS_REGION", "eu-west-1"),
            ("SES_RECEIVING_REGION", "us-west-2"),
        ])
        .expect("valid");
        assert_eq!(explicit.receiving_region, "us-west-2");
        assert!(config(&[("TABLE_NAME", "t"), ("AWS_REGION", "Not A Region")]).is_err());
    }

    #[test]
    fn nameservers_parse_or_fail_clearly() {
        let parsed = config(&[
            ("TABLE_NAME", "t"),
            ("DNS_NAMESERVERS", "127.0.0.1:5353, [::1]:53"),
        ])
        .expect("valid");
        assert_eq!(parsed.dns_nameservers.map(|s| s.len()), Some(2));
        let bad = config(&[("TABLE_NAME", "t"), ("DNS_NAMESERVERS", "127.0.0.1")]);
        assert!(matches!(
            bad,
            Err(ConfigError::Invalid {
                name: "DNS_NAMESERVERS",
                ..
            })
        ));
    }
}
