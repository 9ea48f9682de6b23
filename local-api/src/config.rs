//! The dev server's settings: its arguments and environment, read once at
//! start-up into [`Config`]. The one module of `local-api` that reads either; a
//! missing or invalid setting is an error that names it, never a panic.

use shared::config::{self as service, DnsSettings, TlsRoots};

use crate::DevKeys;

/// Port without `--port` or `PORT`.
pub const DEFAULT_PORT: u16 = 3000;
/// API keys without `DEV_API_KEYS` (in-memory mode only).
pub const DEFAULT_DEV_KEYS: &str = "dk_dev_local=org_local";

const USAGE: &str = "usage: local-api [--port N] [--aws [--create-table]]\n\
     env: PORT, DEV_API_KEYS=key=org[,key=org], TABLE_NAME, AWS_REGION, \
     SES_RECEIVING_REGION, DNS_NAMESERVERS, DNS_ALLOWED_PRIVATE_NETWORKS, \
     MAX_DOMAINS_PER_ORGANIZATION, SES_MAX_RPS (--aws), DEV_WEBHOOK_URL, RUST_LOG, \
     AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_SESV2 (README, Configuration)";

/// Everything the dev server is started with.
#[derive(Debug)]
pub struct Config {
    /// `--port N`, else `PORT`, else 3000 (0: any free port).
    pub port: u16,
    /// `DEV_API_KEYS`, else the fixed dev key in memory and none with `--aws`
    /// (where `domains-admin` keys serve).
    pub dev_keys: Option<DevKeys>,
    /// Whether the keys came from `DEV_API_KEYS` (the banner says which).
    pub dev_keys_from_env: bool,
    /// Where the app keeps its state.
    pub backend: Backend,
}

/// The in-memory default, or AWS with `--aws`.
#[derive(Debug)]
pub enum Backend {
    /// In-memory store and local DKIM tokens: no AWS.
    InMemory {
        /// `DNS_NAMESERVERS`, `DNS_ALLOWED_PRIVATE_NETWORKS`.
        dns: DnsSettings,
        /// `DEV_WEBHOOK_URL`: where each domain event is also POSTed (http:// only).
        webhook: Option<String>,
        /// `SES_RECEIVING_REGION`, else `AWS_REGION`, else the default.
        receiving_region: String,
        /// `MAX_DOMAINS_PER_ORGANIZATION`.
        max_domains: usize,
    },
    /// DynamoDB and SESv2 through the standard AWS configuration.
    Aws {
        /// The service's settings, as a Lambda reads them (`TABLE_NAME`, ..), but
        /// trusting the system's certificate authorities (a developer's proxy's).
        service: Box<service::Config>,
        /// `--create-table`: create the table when it is missing.
        create_table: bool,
    },
}

impl Backend {
    /// `--aws`.
    pub fn is_aws(&self) -> bool {
        matches!(self, Self::Aws { .. })
    }
}

/// The command line, before the environment is read.
#[derive(Debug, PartialEq, Eq)]
struct Arguments {
    aws: bool,
    create_table: bool,
    port: Option<u16>,
}

impl Config {
    /// Reads the command line and the environment; the message says what is
    /// wrong (or is the usage, for `--help`).
    pub fn load() -> Result<Self, String> {
        // PORT is checked even when --port overrides it.
        let port_variable = match variable("PORT")? {
            Some(port) => Some(
                port.parse::<u16>()
                    .map_err(|_| format!("PORT={port:?} is not a port number"))?,
            ),
            None => None,
        };
        let arguments = parse_arguments(std::env::args().skip(1))?;
        let port = arguments.port.or(port_variable).unwrap_or(DEFAULT_PORT);
        let keys_variable = variable("DEV_API_KEYS")?;
        let dev_keys_from_env = keys_variable.is_some();
        let dev_keys = match keys_variable {
            Some(value) => Some(DevKeys::parse(&value)?),
            None if arguments.aws => None,
            None => Some(DevKeys::parse(DEFAULT_DEV_KEYS)?),
        };
        let backend = if arguments.aws {
            Backend::Aws {
                service: Box::new(service::Config {
                    tls_roots: TlsRoots::System,
                    ..service::Config::from_env().map_err(|e| e.to_string())?
                }),
                create_table: arguments.create_table,
            }
        } else {
            Backend::InMemory {
                dns: service::dns_settings_from_env().map_err(|e| e.to_string())?,
                webhook: webhook(variable("DEV_WEBHOOK_URL")?)?,
                receiving_region: service::receiving_region_from_env()
                    .map_err(|e| e.to_string())?,
                max_domains: service::max_domains_from_env().map_err(|e| e.to_string())?,
            }
        };
        Ok(Self {
            port,
            dev_keys,
            dev_keys_from_env,
            backend,
        })
    }
}

/// A variable of the environment; unset is `None`, a value that is not UTF-8 is
/// an error.
fn variable(name: &str) -> Result<Option<String>, String> {
    match std::env::var(name) {
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{name} is not valid UTF-8")),
    }
}

fn parse_arguments(mut args: impl Iterator<Item = String>) -> Result<Arguments, String> {
    let mut arguments = Arguments {
        aws: false,
        create_table: false,
        port: None,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--aws" => arguments.aws = true,
            "--create-table" => arguments.create_table = true,
            "--port" => {
                let value = args.next().ok_or("--port needs a number")?;
                arguments.port = Some(
                    value
                        .parse()
                        .map_err(|_| format!("--port {value:?} is not a port number"))?,
                );
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if arguments.create_table && !arguments.aws {
        return Err("--create-table only applies with --aws".into());
    }
    Ok(arguments)
}

/// `DEV_WEBHOOK_URL`: blank is none; the dev server speaks plain HTTP only.
fn webhook(value: Option<String>) -> Result<Option<String>, String> {
    match value.filter(|url| !url.trim().is_empty()) {
        Some(url) if !url.starts_with("http://") => Err(format!(
            "DEV_WEBHOOK_URL must be an http:// URL (the dev server speaks plain HTTP): {url:?}"
        )),
        webhook => Ok(webhook),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Arguments, String> {
        parse_arguments(args.iter().map(|a| a.to_string()))
    }

    #[test]
    fn arguments_parse_or_say_what_is_wrong() {
        assert_eq!(
            parse(&["--aws", "--create-table", "--port", "8080"]),
            Ok(Arguments {
                aws: true,
                create_table: true,
                port: Some(8080),
            })
        );
        assert_eq!(
            parse(&[]),
            Ok(Arguments {
                aws: false,
                create_table: false,
                port: None,
            })
        );
        let error = |args: &[&str]| parse(args).err().unwrap_or_default();
        assert!(error(&["--port"]).contains("--port needs a number"));
        assert!(error(&["--port", "x"]).contains("is not a port number"));
        assert!(error(&["--bogus"]).contains("unknown argument"));
        assert!(error(&["--create-table"]).contains("only applies with --aws"));
        assert!(error(&["--help"]).starts_with("usage: local-api"));
    }

    #[test]
    fn webhooks_are_plain_http_and_blank_is_none() {
        assert_eq!(webhook(None), Ok(None));
        assert_eq!(webhook(Some("  ".into())), Ok(None));
        assert_eq!(
            webhook(Some("http://127.0.0.1:9/hook".into())),
            Ok(Some("http://127.0.0.1:9/hook".into()))
        );
        assert!(webhook(Some("https://example.com".into())).is_err());
    }
}
