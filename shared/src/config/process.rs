//! The settings every function shares (logs, metrics, the AWS configuration
//! chain) and those of the functions without a table (the event publisher, the
//! scheduler's fan-out).

use super::{ConfigError, TlsRoots, environment};

/// What every process reads before anything else: its logs, its metrics, and
/// where the AWS configuration chain may look first.
///
/// Lambda puts the function's region and credentials in the environment, which is
/// where the standard chains look first. Naming those sources up front gives the
/// same answer without building the rest of the chains (an STS client for web
/// identity, an IMDS client, each parsing its endpoint rules): most of what loading
/// the configuration cost a cold start (BENCHMARKS.md). Elsewhere (SnapStart's
/// container credentials, a profile), the standard chains.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProcessSettings {
    /// `RUST_LOG`: a level or target levels (`info` when unset).
    pub rust_log: Option<String>,
    /// `METRICS_NAMESPACE`: metrics on stdout under it; none without it.
    pub metrics_namespace: Option<String>,
    /// `AWS_LAMBDA_FUNCTION_NAME` (set by Lambda), else `local`.
    pub function_name: String,
    /// `AWS_REGION`, else `AWS_DEFAULT_REGION`.
    pub region: Option<String>,
    /// Whether the environment holds an access key and its secret.
    pub environment_credentials: bool,
}

impl ProcessSettings {
    /// From the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(&environment)
    }

    fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            rust_log: lookup("RUST_LOG"),
            metrics_namespace: lookup("METRICS_NAMESPACE").map(|n| n.trim().to_string()),
            function_name: lookup("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|| "local".into()),
            region: lookup("AWS_REGION").or_else(|| lookup("AWS_DEFAULT_REGION")),
            environment_credentials: lookup("AWS_ACCESS_KEY_ID").is_some()
                && (lookup("AWS_SECRET_ACCESS_KEY").is_some()
                    || lookup("SECRET_ACCESS_KEY").is_some()),
        }
    }
}

/// The event publisher's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct EventBusSettings {
    /// `EVENT_BUS_NAME`: the bus the domain events are put on.
    pub bus_name: String,
    /// See `TlsRoots::from_lookup`.
    pub tls_roots: TlsRoots,
}

impl EventBusSettings {
    /// From the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            bus_name: environment("EVENT_BUS_NAME").ok_or(ConfigError::MissingSetting {
                name: "EVENT_BUS_NAME",
                what: "the EventBridge bus the domain events are put on",
            })?,
            tls_roots: TlsRoots::from_lookup(&environment)?,
        })
    }
}

/// The scheduler's fan-out: `REVERIFY_WORKERS` (default 1: none) and, above 1,
/// `REVERIFY_TASKS_BUS`, the bus the tasks go on.
#[derive(Debug, Clone, PartialEq)]
pub struct FanoutSettings {
    /// Workers of a run (the tick's own included); at least 1.
    pub workers: u32,
    /// The tasks' bus, set whenever `workers` is above 1.
    pub tasks_bus: Option<String>,
    /// See `TlsRoots::from_lookup`.
    pub tls_roots: TlsRoots,
}

impl FanoutSettings {
    /// From the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&environment)
    }

    fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let workers: u32 = super::at_least_one(lookup, "REVERIFY_WORKERS", 1)?;
        let tasks_bus = lookup("REVERIFY_TASKS_BUS");
        if workers > 1 && tasks_bus.is_none() {
            return Err(ConfigError::MissingSetting {
                name: "REVERIFY_TASKS_BUS",
                what: "the EventBridge bus the scheduler's worker tasks go on (REVERIFY_WORKERS is above 1)",
            });
        }
        Ok(Self {
            workers,
            tasks_bus,
            tls_roots: TlsRoots::from_lookup(lookup)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
                .filter(|v| !v.trim().is_empty())
        }
    }

    #[test]
    fn lambdas_environment_is_named_up_front_and_anything_else_left_to_the_chains() {
        let lambda = ProcessSettings::from_lookup(&lookup(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "ASIA..."),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
        ]));
        assert_eq!(
            (lambda.region.as_deref(), lambda.environment_credentials),
            (Some("eu-west-1"), true)
        );
        // SnapStart: credentials come from a container endpoint, not the environment.
        let snapstart = ProcessSettings::from_lookup(&lookup(&[
            ("AWS_REGION", "eu-west-1"),
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://127.0.0.1:9001/creds",
            ),
        ]));
        assert!(!snapstart.environment_credentials);
        let default_region =
            ProcessSettings::from_lookup(&lookup(&[("AWS_DEFAULT_REGION", "us-west-2")]));
        assert_eq!(default_region.region.as_deref(), Some("us-west-2"));
        let half = ProcessSettings::from_lookup(&lookup(&[
            ("AWS_ACCESS_KEY_ID", "AKIA..."),
            ("AWS_REGION", " "),
        ]));
        assert_eq!((half.region, half.environment_credentials), (None, false));
    }

    #[test]
    fn a_fanout_above_one_worker_needs_its_bus_and_a_whole_number() {
        let none = FanoutSettings::from_lookup(&lookup(&[])).expect("default");
        assert_eq!((none.workers, none.tasks_bus), (1, None));
        assert!(matches!(
            FanoutSettings::from_lookup(&lookup(&[("REVERIFY_WORKERS", "4")])),
            Err(ConfigError::MissingSetting {
                name: "REVERIFY_TASKS_BUS",
                ..
            })
        ));
        let four = FanoutSettings::from_lookup(&lookup(&[
            ("REVERIFY_WORKERS", "4"),
            ("REVERIFY_TASKS_BUS", "tasks"),
        ]))
        .expect("valid");
        assert_eq!(
            (four.workers, four.tasks_bus.as_deref()),
            (4, Some("tasks"))
        );
        assert!(FanoutSettings::from_lookup(&lookup(&[("REVERIFY_WORKERS", "many")])).is_err());
    }

    #[test]
    fn a_process_is_named_by_lambda_or_local() {
        let local = ProcessSettings::from_lookup(&lookup(&[]));
        assert_eq!(local.function_name, "local");
        assert_eq!(local.metrics_namespace, None);
        let deployed = ProcessSettings::from_lookup(&lookup(&[
            ("AWS_LAMBDA_FUNCTION_NAME", "stack-VerifyDomainFunction"),
            ("METRICS_NAMESPACE", " DomainsApi/prod "),
        ]));
        assert_eq!(deployed.function_name, "stack-VerifyDomainFunction");
        assert_eq!(
            deployed.metrics_namespace.as_deref(),
            Some("DomainsApi/prod")
        );
    }
}
