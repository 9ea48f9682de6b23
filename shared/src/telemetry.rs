//! Structured JSON logs, one line per event, level from `RUST_LOG` (default info):
//! a level, or `target=level` pairs separated by commas (e.g. `info,shared=debug`).
//! It is read as tracing's `Targets`, not `EnvFilter`, whose span and field
//! filters need the `regex` crates: ~80 KB more zipped bootstrap for every function.
//!
//! Whatever `RUST_LOG` asks for, the crates under us log at `debug` at most: at
//! `trace` the Lambda runtime logs every raw event (with its `Authorization`
//! header) and the AWS SDK logs requests and responses (API-key hashes are item
//! keys), and no log line may hold a key or its hash.

use tracing_subscriber::Layer;
use tracing_subscriber::filter::{FilterExt, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Dependencies whose `trace` output can carry secrets (raw events, HTTP
/// messages, signing inputs).
const CAPPED_AT_DEBUG: [&str; 12] = [
    "lambda_runtime",
    "lambda_runtime_api_client",
    "lambda_http",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
    "aws_sigv4",
    "aws_runtime",
    "aws_config",
    "hyper",
    "hyper_util",
    "h2",
];

/// What may be logged at all: everything `RUST_LOG` allows, dependencies in
/// `CAPPED_AT_DEBUG` at most at `debug`.
pub fn log_cap() -> Targets {
    CAPPED_AT_DEBUG.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |targets, target| targets.with_target(*target, LevelFilter::DEBUG),
    )
}

/// What `RUST_LOG` asks for; `info` when it is unset or cannot be read.
fn requested(rust_log: Option<&str>) -> Targets {
    rust_log
        .and_then(|value| value.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

/// Installs the JSON log subscriber (once per process).
pub fn init() {
    let filter = requested(
        crate::config::ProcessSettings::from_env()
            .rust_log
            .as_deref(),
    );
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .with_target(false)
        .with_current_span(false)
        .flatten_event(true)
        .with_filter(filter.and(log_cap()));
    // try_init: a second call (tests, dev server) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn dependencies_never_log_at_trace() {
        let cap = log_cap();
        assert!(!cap.would_enable("lambda_runtime::layers::api_response", &Level::TRACE));
        assert!(!cap.would_enable("aws_smithy_runtime::client::orchestrator", &Level::TRACE));
        assert!(cap.would_enable("lambda_runtime", &Level::DEBUG));
        assert!(cap.would_enable("shared::handlers", &Level::TRACE));
    }

    #[test]
    fn rust_log_is_a_level_or_target_levels() {
        let default = requested(None);
        assert!(default.would_enable("shared::handlers", &Level::INFO));
        assert!(!default.would_enable("shared::handlers", &Level::DEBUG));
        assert!(requested(Some("trace")).would_enable("shared", &Level::TRACE));
        let mixed = requested(Some("warn,shared=debug"));
        assert!(mixed.would_enable("shared::verify", &Level::DEBUG));
        assert!(!mixed.would_enable("hyper", &Level::INFO));
        assert!(requested(Some("shared=loud")).would_enable("shared", &Level::INFO));
    }
}
