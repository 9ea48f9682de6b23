//! `domains-admin`: operator commands against the deployment's table (API keys and
//! the table itself). `domains-admin --help` and `domains-admin <command> --help`
//! say the rest.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shared::Timestamp;
use shared::config::Config;
use shared::keys::{NewApiKey, hash_key};
use shared::store::{DynamoDbStore, KeyStore, StoreError, create_table};

const ENVIRONMENT: &str = "Environment: TABLE_NAME (the deployment's table), and the AWS \
configuration chain: AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
AWS_REGION, and AWS_ENDPOINT_URL_DYNAMODB for a local server such as moto.";

/// Operator commands against the Domains API's table.
#[derive(Parser)]
#[command(name = "domains-admin", version, after_help = ENVIRONMENT)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make, list and revoke API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Create the table.
    #[command(subcommand)]
    Table(TableCommand),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a key for an organization. The key is printed once; only its SHA-256
    /// hash is stored.
    Create {
        /// The organization the key acts for.
        #[arg(long = "org", value_name = "ORG_ID", value_parser = organization_id)]
        organization_id: String,
    },
    /// The organization's keys: ids, hints and states, never the keys themselves.
    List {
        /// The organization whose keys to list.
        #[arg(long = "org", value_name = "ORG_ID", value_parser = organization_id)]
        organization_id: String,
    },
    /// Refuse a key from now on (API Gateway's cache may still accept it for up to
    /// 5 minutes).
    Revoke {
        /// The key's id (`key_…`, as `keys create` and `keys list` show it), never
        /// the key itself.
        #[arg(value_name = "KEY_ID")]
        key_id: String,
    },
}

#[derive(Subcommand)]
enum TableCommand {
    /// Create the table and its due-keys index if they do not exist.
    Create,
}

fn organization_id(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("an organization id cannot be empty".into());
    }
    Ok(trimmed.to_string())
}

/// A key id; a key passed by mistake is refused without being echoed (which is
/// why this is checked here and not by clap, whose errors repeat the value).
fn key_id(raw: &str) -> Result<String, String> {
    if raw.starts_with("dk_") {
        return Err(
            "that is an API key, not its id (it is not repeated here): pass the key_… id \
             that `domains-admin keys list --org ORG_ID` shows"
                .into(),
        );
    }
    if raw.trim().is_empty() {
        return Err("a key id cannot be empty".into());
    }
    Ok(raw.trim().to_string())
}

/// One line saying what went wrong and what to do, instead of the SDK's dump.
fn explain(what: &str, table: &str, error: &StoreError) -> String {
    let detail = error.to_string();
    let hint = if detail.contains("ResourceNotFoundException") {
        format!(
            "table {table} does not exist: run `domains-admin table create` first, or check TABLE_NAME"
        )
    } else if detail.contains("credentials") || detail.contains("Credentials") {
        "no AWS credentials were found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into()
    } else if detail.contains("UnrecognizedClientException")
        || detail.contains("InvalidSignatureException")
        || detail.contains("ExpiredToken")
    {
        "AWS refused the credentials: check AWS_PROFILE or the access keys (and that they are not expired)".into()
    } else if detail.contains("AccessDenied") {
        format!("these credentials may not use table {table}: check the IAM policy")
    } else if matches!(error, StoreError::Unavailable(_)) {
        "DynamoDB could not be reached: check AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB and the network"
            .into()
    } else if matches!(error, StoreError::KeyNotFound) {
        "no such API key: `domains-admin keys list --org ORG_ID` shows the ids".into()
    } else {
        detail
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect()
    };
    format!("{what}: {hint}")
}

async fn run(command: Command) -> Result<(), String> {
    let table = Config::from_env().map_err(|e| e.to_string())?.table_name;
    // A tool on a developer's machine: trust its system's roots (its proxy's, say).
    let sdk = shared::app::load_sdk_config(shared::config::TlsRoots::System).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let store = DynamoDbStore::new(client.clone(), table.clone());
    match command {
        Command::Keys(KeysCommand::Create { organization_id }) => {
            let key = NewApiKey::generate(&organization_id, Timestamp::now());
            store
                .put_key(&key.record, &hash_key(&key.secret))
                .await
                .map_err(|e| explain("cannot store the key", &table, &e))?;
            println!("key_id: {}", key.record.key_id);
            println!("organization_id: {organization_id}");
            println!("api_key: {}", key.secret);
            eprintln!("The key is shown only this once; only its SHA-256 hash is stored.");
        }
        Command::Keys(KeysCommand::List { organization_id }) => {
            let keys = store
                .list_keys(&organization_id)
                .await
                .map_err(|e| explain("cannot list keys", &table, &e))?;
            for key in keys {
                let state = match key.revoked_at {
                    Some(at) => format!("revoked {at}"),
                    None => "active".into(),
                };
                println!(
                    "{}\t{}\tcreated {}\t{state}",
                    key.key_id, key.hint, key.created_at
                );
            }
        }
        Command::Keys(KeysCommand::Revoke { key_id }) => {
            let key = store
                .revoke_key(&key_id, Timestamp::now())
                .await
                .map_err(|e| explain(&format!("cannot revoke {key_id}"), &table, &e))?;
            let at = key.revoked_at.map(|t| t.to_string()).unwrap_or_default();
            println!(
                "{} revoked {at} (organization {})",
                key.key_id, key.organization_id
            );
        }
        Command::Table(TableCommand::Create) => {
            let created = create_table(&client, &table)
                .await
                .map_err(|e| explain(&format!("cannot create table {table}"), &table, &e))?;
            println!(
                "table {table}: {}",
                if created { "created" } else { "already exists" }
            );
        }
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // Usage errors exit 2 with clap's message; help and version exit 0.
    let mut cli = Cli::parse();
    if let Command::Keys(KeysCommand::Revoke { key_id: raw }) = &mut cli.command {
        match key_id(raw) {
            Ok(id) => *raw = id,
            Err(message) => {
                eprintln!("domains-admin: {message}");
                return ExitCode::from(2);
            }
        }
    }
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("domains-admin: {message}");
            ExitCode::from(1)
        }
    }
}
