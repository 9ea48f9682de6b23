//! `local-api`: the Domains API on 127.0.0.1 for development.
//!
//! Default: in-memory store and local DKIM tokens (no AWS, no Docker).
//! `--aws`: DynamoDB (`TABLE_NAME`) and SESv2 through the standard AWS
//! configuration; `--create-table` creates the table if it is missing.

use std::process::ExitCode;
use std::sync::Arc;

use local_api::{DevKeys, DevServer, serve};
use shared::identity::LocalIdentities;
use shared::store::{InMemoryStore, KeyStore, create_table};
use shared::verify::LazyDnsChecker;
use shared::{App, app::StartupClients, config, telemetry};

const DEFAULT_PORT: u16 = 3000;
const DEFAULT_DEV_KEYS: &str = "dk_dev_local=org_local";

struct Options {
    aws: bool,
    create_table: bool,
    port: u16,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        aws: false,
        create_table: false,
        port: match std::env::var("PORT") {
            Ok(port) => port
                .parse()
                .map_err(|_| format!("PORT={port:?} is not a port number"))?,
            Err(_) => DEFAULT_PORT,
        },
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--aws" => options.aws = true,
            "--create-table" => options.create_table = true,
            "--port" => {
                let value = args.next().ok_or("--port needs a number")?;
                options.port = value
                    .parse()
                    .map_err(|_| format!("--port {value:?} is not a port number"))?;
            }
            "-h" | "--help" => {
                return Err("usage: local-api [--port N] [--aws [--create-table]]\n\
                     env: PORT, DEV_API_KEYS=key=org[,key=org], TABLE_NAME, AWS_REGION, \
                     SES_RECEIVING_REGION, DNS_NAMESERVERS, DNS_ALLOWED_PRIVATE_NETWORKS, \
                     MAX_DOMAINS_PER_ORGANIZATION, SES_MAX_RPS (--aws), DEV_WEBHOOK_URL, RUST_LOG, \
                     AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_SESV2 (README, Configuration)"
                    .into());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if options.create_table && !options.aws {
        return Err("--create-table only applies with --aws".into());
    }
    Ok(options)
}

/// The app, and the key store whose keys the dev server accepts (`--aws` only).
async fn build_app(options: &Options) -> Result<(App, Option<Arc<dyn KeyStore>>), String> {
    if options.aws {
        // On a developer's machine: trust its system's roots (its proxy's, say).
        let config = config::Config {
            tls_roots: config::TlsRoots::System,
            ..config::Config::from_env().map_err(|e| e.to_string())?
        };
        let (app, store) = App::on_aws(&config, StartupClients::ALL)
            .await
            .map_err(|e| e.to_string())?;
        if options.create_table {
            let table = &config.table_name;
            let created = create_table(store.client(), table)
                .await
                .map_err(|e| format!("cannot create table {table}: {e}"))?;
            println!(
                "table {table}: {}",
                if created { "created" } else { "already exists" }
            );
        }
        Ok((app, Some(store)))
    } else {
        let dns = config::dns_settings_from_env().map_err(|e| e.to_string())?;
        // Domain events from the store's changes, as the table's stream gives them
        // to the publisher Lambda (docs/events.md).
        let (changes, feed) = tokio::sync::mpsc::unbounded_channel();
        let webhook = std::env::var("DEV_WEBHOOK_URL")
            .ok()
            .filter(|url| !url.trim().is_empty());
        if let Some(url) = &webhook
            && !url.starts_with("http://")
        {
            return Err(format!(
                "DEV_WEBHOOK_URL must be an http:// URL (the dev server speaks plain HTTP): {url:?}"
            ));
        }
        tokio::spawn(local_api::events::publish(feed, webhook));
        let app = App::new(
            Arc::new(InMemoryStore::with_changes(changes)),
            Arc::new(LocalIdentities::new()),
            LazyDnsChecker::prepared(dns).map_err(|e| e.to_string())?,
            config::receiving_region_from_env().map_err(|e| e.to_string())?,
        )
        .with_domain_limit(config::max_domains_from_env().map_err(|e| e.to_string())?);
        Ok((app, None))
    }
}

/// `DEV_API_KEYS`; without it, the fixed dev key in the default mode and none with
/// `--aws` (where `domains-admin` keys serve).
fn dev_keys(options: &Options) -> Result<Option<DevKeys>, String> {
    match std::env::var("DEV_API_KEYS") {
        Ok(value) => DevKeys::parse(&value).map(Some),
        Err(_) if options.aws => Ok(None),
        Err(_) => DevKeys::parse(DEFAULT_DEV_KEYS).map(Some),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init();
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("local-api: {message}");
            return ExitCode::from(2);
        }
    };
    let dev_keys = match dev_keys(&options) {
        Ok(keys) => keys,
        Err(message) => {
            eprintln!("local-api: {message}");
            return ExitCode::from(2);
        }
    };
    let (app, key_store) = match build_app(&options).await {
        Ok(parts) => parts,
        Err(message) => {
            eprintln!("local-api: {message}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", options.port)).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!(
                "local-api: cannot listen on 127.0.0.1:{}: {error}",
                options.port
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
        if options.aws {
            "DynamoDB + SESv2 (--aws)"
        } else {
            "in-memory store, local DKIM tokens"
        }
    );
    match (&dev_keys, std::env::var_os("DEV_API_KEYS")) {
        (Some(_), None) => println!("dev API key: dk_dev_local (organization org_local)"),
        (Some(keys), Some(_)) => println!(
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
        dev_keys,
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
