//! `local-api`: the Domains API on 127.0.0.1 for development.
//!
//! Default: in-memory store and local DKIM tokens (no AWS, no Docker).
//! `--aws`: DynamoDB (`TABLE_NAME`) and SESv2 through the standard AWS
//! configuration; `--create-table` creates the table if it is missing.
//! Settings: `local_api::config` (`--help` lists them).

use std::process::ExitCode;
use std::sync::Arc;

use local_api::config::{Backend, Config};
use local_api::{DevServer, serve};
use shared::identity::LocalIdentities;
use shared::store::{InMemoryStore, KeyStore, create_table};
use shared::verify::LazyDnsChecker;
use shared::{App, app::StartupClients, telemetry};

/// The app, and the key store whose keys the dev server accepts (`--aws` only).
async fn build_app(backend: Backend) -> Result<(App, Option<Arc<dyn KeyStore>>), String> {
    match backend {
        Backend::Aws {
            service,
            create_table: create,
        } => {
            let (app, store) = App::on_aws(&service, StartupClients::ALL)
                .await
                .map_err(|e| e.to_string())?;
            if create {
                let table = &service.table_name;
                let created = create_table(store.client(), table)
                    .await
                    .map_err(|e| format!("cannot create table {table}: {e}"))?;
                println!(
                    "table {table}: {}",
                    if created { "created" } else { "already exists" }
                );
            }
            Ok((app, Some(store)))
        }
        Backend::InMemory {
            dns,
            webhook,
            receiving_region,
            max_domains,
        } => {
            // Domain events from the store's changes, as the table's stream gives
            // them to the publisher Lambda (docs/events.md).
            let (changes, feed) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(local_api::events::publish(feed, webhook));
            let app = App::new(
                Arc::new(InMemoryStore::with_changes(changes)),
                Arc::new(LocalIdentities::new()),
                LazyDnsChecker::prepared(dns).map_err(|e| e.to_string())?,
                receiving_region,
            )
            .with_domain_limit(max_domains);
            Ok((app, None))
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init();
    let config = match Config::load() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("local-api: {message}");
            return ExitCode::from(2);
        }
    };
    let aws = config.backend.is_aws();
    let (app, key_store) = match build_app(config.backend).await {
        Ok(parts) => parts,
        Err(message) => {
            eprintln!("local-api: {message}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", config.port)).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!(
                "local-api: cannot listen on 127.0.0.1:{}: {error}",
                config.port
            );
            return ExitCode::from(1);
        }
    };
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    println!("Domains API listening on http://{address}");
    println!(
        "backend: {}",
        if aws {
            "DynamoDB + SESv2 (--aws)"
        } else {
            "in-memory store, local DKIM tokens"
        }
    );
    match (&config.dev_keys, config.dev_keys_from_env) {
        (Some(_), false) => println!("dev API key: dk_dev_local (organization org_local)"),
        (Some(keys), true) => println!(
            "API keys from DEV_API_KEYS for: {}",
            keys.organizations().join(", ")
        ),
        (None, _) => {}
    }
    if key_store.is_some() {
        println!("API keys made with domains-admin in the table are accepted");
    }
    let server = Arc::new(DevServer {
        app,
        dev_keys: config.dev_keys,
        key_store,
    });
    tokio::select! {
        result = serve(listener, server) => {
            if let Err(error) = result {
                eprintln!("local-api: server stopped: {error}");
                return ExitCode::from(1);
            }
        }
        _ = tokio::signal::ctrl_c() => {}
    }
    ExitCode::SUCCESS
}
