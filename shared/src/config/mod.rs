//! Settings read once from the environment at start-up: the one place that
//! reads the environment (`process` has the settings every function shares).

mod process;

use std::net::SocketAddr;

use crate::network::AllowedNetworks;
pub use process::{EventBusSettings, FanoutSettings, ProcessSettings};

/// SES receiving region when neither `SES_RECEIVING_REGION` nor `AWS_REGION` says.
pub const DEFAULT_RECEIVING_REGION: &str = "us-east-2";

/// How a checker is built: from `DNS_NAMESERVERS` and `DNS_ALLOWED_PRIVATE_NETWORKS`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DnsSettings {
    /// The recursive resolver: `None`, the system's; else these. It finds the
    /// zones (registrable domains' and public suffixes' name servers, name
    /// servers' addresses); a zone's own name servers are then asked directly.
    pub nameservers: Option<Vec<SocketAddr>>,
    /// Non-public networks whose name servers may be asked.
    pub allowed_networks: AllowedNetworks,
}

#[derive(Debug, Clone, PartialEq)]
/// Every setting a function reads, once, at start-up.
pub struct Config {
    /// DynamoDB table (`TABLE_NAME`).
    pub table_name: String,
    /// SES receiving region for the inbound MX host: `SES_RECEIVING_REGION`, else
    /// `AWS_REGION`, else us-east-2.
    pub receiving_region: String,
    /// `DNS_NAMESERVERS=ip:port[,ip:port]`: ask only these servers instead of the
    /// system resolver; `DNS_ALLOWED_PRIVATE_NETWORKS=cidr[,cidr]`: non-public
    /// networks whose authoritative name servers may be asked (none by default).
    pub dns: DnsSettings,
    /// Certificate authorities the SDK clients trust: see `TlsRoots::from_lookup`.
    pub tls_roots: TlsRoots,
    /// `STARTUP_WARM_UP=true|false` (default true): make one DynamoDB read during
    /// start-up, so that the first invocation does not pay for the connection.
    pub warm_up: bool,
    /// `MAX_DOMAINS_PER_ORGANIZATION` (default 1000): domains one organization
    /// may hold at once.
    pub max_domains_per_organization: usize,
    /// `SES_MAX_RPS` (default 1): SES identity reads (and MAIL FROM re-sends) per
    /// second that manual verifies and the scheduled job make at most, together,
    /// across every process (SES throttles identity APIs per account).
    pub ses_max_rps: u32,
}

/// A domain (or claim) is checked by hand at most once in this long: a tenant
/// cannot make the service ask DNS and SES for one domain faster (the scheduler
/// has its own pace).
pub const MANUAL_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Domains one organization may hold when `MAX_DOMAINS_PER_ORGANIZATION` is unset.
pub const DEFAULT_MAX_DOMAINS_PER_ORGANIZATION: usize = 1000;

/// Which certificate authorities the SDK clients trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRoots {
    /// Only Amazon Trust Services' five roots: what AWS endpoints chain to. Parsing
    /// five compiled-in certificates costs microseconds, where reading the system's
    /// store (one bundle of ~140 certificates, on Debian also a directory of ~150
    /// files) is a measurable part of every cold start (BENCHMARKS.md has the figure).
    AmazonTrustServices,
    /// The operating system's store: for endpoints that are not AWS's own.
    System,
}

impl TlsRoots {
    /// `TLS_ROOTS=amazon|system` if set; else Amazon's roots, unless an endpoint was
    /// overridden (`AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_<SERVICE>`, as for
    /// LocalStack), whose certificate may come from any authority, or the region is
    /// in a partition outside Amazon Trust Services' documented reach (China's
    /// `cn-*`, the isolated `*-iso*` regions).
    pub(crate) fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        const OVERRIDES: [&str; 5] = [
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_DYNAMODB",
            "AWS_ENDPOINT_URL_SESV2",
            "AWS_ENDPOINT_URL_EVENTBRIDGE",
            "AWS_ENDPOINT_URL_STS",
        ];
        match lookup("TLS_ROOTS").as_deref().map(str::trim) {
            Some("amazon") => Ok(Self::AmazonTrustServices),
            Some("system") => Ok(Self::System),
            Some(other) => Err(ConfigError::Invalid {
                name: "TLS_ROOTS",
                reason: format!("{other:?} is neither amazon nor system"),
            }),
            None if OVERRIDES.iter().any(|name| lookup(name).is_some()) => Ok(Self::System),
            None if lookup("AWS_REGION")
                .or_else(|| lookup("AWS_DEFAULT_REGION"))
                .is_some_and(|region| region.starts_with("cn-") || region.contains("-iso")) =>
            {
                Ok(Self::System)
            }
            None => Ok(Self::AmazonTrustServices),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
/// Why the configuration could not be read.
pub enum ConfigError {
    #[error("{0} is not set; it must name the DynamoDB table (see README, Configuration)")]
    /// A required variable is not set.
    Missing(&'static str),
    /// A setting without a default is not set.
    #[error("{name} is not set; it must name {what} (see README, Configuration)")]
    MissingSetting {
        /// The variable.
        name: &'static str,
        /// What it names.
        what: &'static str,
    },
    #[error("{name} is invalid: {reason}")]
    /// A variable is set to something unusable.
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
}

/// A variable of the process environment, `None` when unset or blank: the one
/// function that reads the environment.
pub(crate) fn environment(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Config {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(environment)
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let non_empty = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let table_name = non_empty("TABLE_NAME").ok_or(ConfigError::Missing("TABLE_NAME"))?;
        Ok(Self {
            max_domains_per_organization: max_domains(&non_empty)?,
            ses_max_rps: at_least_one(&non_empty, "SES_MAX_RPS", 1)?,
            table_name,
            receiving_region: receiving_region(&non_empty)?,
            dns: dns_settings(&non_empty)?,
            tls_roots: TlsRoots::from_lookup(&non_empty)?,
            warm_up: match non_empty("STARTUP_WARM_UP").as_deref().map(str::trim) {
                None | Some("true") => true,
                Some("false") => false,
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        name: "STARTUP_WARM_UP",
                        reason: format!("{other:?} is neither true nor false"),
                    });
                }
            },
        })
    }
}

fn max_domains(lookup: &dyn Fn(&str) -> Option<String>) -> Result<usize, ConfigError> {
    at_least_one(
        lookup,
        "MAX_DOMAINS_PER_ORGANIZATION",
        DEFAULT_MAX_DOMAINS_PER_ORGANIZATION,
    )
}

/// A whole number of at least 1 in `name`, `default` when it is unset.
pub(crate) fn at_least_one<T: std::str::FromStr + PartialOrd + From<u8>>(
    lookup: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match lookup(name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse::<T>()
            .ok()
            .filter(|n| *n >= T::from(1))
            .ok_or_else(|| ConfigError::Invalid {
                name,
                reason: format!("{raw:?} is not a whole number of at least 1"),
            }),
    }
}

/// `MAX_DOMAINS_PER_ORGANIZATION` alone, for modes without a table (the dev
/// server's default).
pub fn max_domains_from_env() -> Result<usize, ConfigError> {
    max_domains(&environment)
}

/// The receiving region alone, for modes without a table (the dev server's default).
pub fn receiving_region_from_env() -> Result<String, ConfigError> {
    receiving_region(&environment)
}

/// The DNS settings alone, for modes without a table (the dev server's default).
pub fn dns_settings_from_env() -> Result<DnsSettings, ConfigError> {
    dns_settings(&environment)
}

fn dns_settings(lookup: &dyn Fn(&str) -> Option<String>) -> Result<DnsSettings, ConfigError> {
    Ok(DnsSettings {
        nameservers: lookup("DNS_NAMESERVERS")
            .map(|v| parse_nameservers(&v))
            .transpose()?,
        allowed_networks: match lookup("DNS_ALLOWED_PRIVATE_NETWORKS") {
            None => AllowedNetworks::none(),
            Some(value) => {
                AllowedNetworks::parse(&value).map_err(|reason| ConfigError::Invalid {
                    name: "DNS_ALLOWED_PRIVATE_NETWORKS",
                    reason,
                })?
            }
        },
    })
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
        assert_eq!(parsed.dns.nameservers.map(|s| s.len()), Some(2));
        assert!(parsed.dns.allowed_networks.is_empty(), "none by default");
        let bad = config(&[("TABLE_NAME", "t"), ("DNS_NAMESERVERS", "127.0.0.1")]);
        assert!(matches!(
            bad,
            Err(ConfigError::Invalid {
                name: "DNS_NAMESERVERS",
                ..
            })
        ));
    }

    #[test]
    fn allowed_private_networks_parse_or_fail_clearly() {
        let parsed = config(&[
            ("TABLE_NAME", "t"),
            ("DNS_ALLOWED_PRIVATE_NETWORKS", "127.0.0.0/8, 10.1.0.0/16"),
        ])
        .expect("valid");
        let allowed = parsed.dns.allowed_networks;
        assert_eq!(allowed.refusal("127.0.0.9".parse().expect("ip")), None);
        assert!(allowed.refusal("10.2.0.1".parse().expect("ip")).is_some());
        let bad = config(&[
            ("TABLE_NAME", "t"),
            ("DNS_ALLOWED_PRIVATE_NETWORKS", "127.0.0.0/8,private"),
        ]);
        assert!(
            matches!(&bad, Err(ConfigError::Invalid { name: "DNS_ALLOWED_PRIVATE_NETWORKS", reason }) if reason.contains("\"private\"")),
            "{bad:?}"
        );
    }

    #[test]
    fn amazons_roots_unless_an_endpoint_is_overridden_or_roots_are_named() {
        use TlsRoots::{AmazonTrustServices as Amazon, System};
        let mut cases: Vec<(Vec<(&str, &str)>, TlsRoots)> = vec![
            (vec![], Amazon),
            (vec![("AWS_ENDPOINT_URL", " ")], Amazon),
            (vec![("TLS_ROOTS", "system")], System),
        ];
        for name in [
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_DYNAMODB",
            "AWS_ENDPOINT_URL_SESV2",
            "AWS_ENDPOINT_URL_STS",
        ] {
            cases.push((vec![(name, "https://localhost:4566")], System));
            let named = vec![(name, "http://127.0.0.1:5000"), ("TLS_ROOTS", "amazon")];
            cases.push((named, Amazon));
        }
        // Partitions outside Amazon Trust Services' documented reach.
        for region in [
            "cn-north-1",
            "cn-northwest-1",
            "us-iso-east-1",
            "us-isob-east-1",
        ] {
            cases.push((vec![("AWS_REGION", region)], System));
        }
        for region in ["us-east-1", "eu-central-1", "us-gov-west-1"] {
            cases.push((vec![("AWS_REGION", region)], Amazon));
        }
        for (vars, roots) in cases {
            let mut all = vec![("TABLE_NAME", "t")];
            all.extend(vars.iter().copied());
            assert_eq!(config(&all).expect("valid").tls_roots, roots, "{vars:?}");
        }
        assert_eq!(
            config(&[("TABLE_NAME", "t"), ("TLS_ROOTS", "mozilla")]),
            Err(ConfigError::Invalid {
                name: "TLS_ROOTS",
                reason: "\"mozilla\" is neither amazon nor system".into()
            })
        );
    }

    #[test]
    fn warm_up_is_on_unless_turned_off() {
        assert!(config(&[("TABLE_NAME", "t")]).expect("valid").warm_up);
        let on = config(&[("TABLE_NAME", "t"), ("STARTUP_WARM_UP", "true")]).expect("valid");
        assert!(on.warm_up);
        let off = config(&[("TABLE_NAME", "t"), ("STARTUP_WARM_UP", "false")]).expect("valid");
        assert!(!off.warm_up);
        assert_eq!(
            config(&[("TABLE_NAME", "t"), ("STARTUP_WARM_UP", "no")]),
            Err(ConfigError::Invalid {
                name: "STARTUP_WARM_UP",
                reason: "\"no\" is neither true nor false".into()
            })
        );
    }
}
