//! `domains-admin`: operator commands against the deployment's table.
//!
//! ```text
//! domains-admin keys create --org ORG_ID    make a key; it is printed once
//! domains-admin keys list --org ORG_ID      the organization's keys (never the keys themselves)
//! domains-admin keys revoke KEY_ID          refuse the key from now on
//! domains-admin table create                create the table and its GSI if missing
//! ```
//!
//! Uses `TABLE_NAME` and the standard AWS configuration chain (so
//! `AWS_ENDPOINT_URL_DYNAMODB` points it at a local server).

use std::process::ExitCode;

use shared::Timestamp;
use shared::config::Config;
use shared::keys::{NewApiKey, hash_key};
use shared::store::{DynamoDbStore, KeyStore, create_table};

const USAGE: &str = "usage:
  domains-admin keys create --org ORG_ID
  domains-admin keys list --org ORG_ID
  domains-admin keys revoke KEY_ID
  domains-admin table create
environment: TABLE_NAME, and the AWS configuration chain (AWS_REGION, credentials,
AWS_ENDPOINT_URL_DYNAMODB)";

enum Command {
    CreateKey { organization_id: String },
    ListKeys { organization_id: String },
    RevokeKey { key_id: String },
    CreateTable,
}

fn parse(args: &[String]) -> Result<Command, String> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let organization = |rest: &[&str]| match rest {
        ["--org", org] if !org.trim().is_empty() => Ok(org.trim().to_string()),
        _ => Err("expected --org ORG_ID".to_string()),
    };
    match words.as_slice() {
        ["keys", "create", rest @ ..] => Ok(Command::CreateKey {
            organization_id: organization(rest)?,
        }),
        ["keys", "list", rest @ ..] => Ok(Command::ListKeys {
            organization_id: organization(rest)?,
        }),
        ["keys", "revoke", key_id] => Ok(Command::RevokeKey {
            key_id: key_id.to_string(),
        }),
        ["table", "create"] => Ok(Command::CreateTable),
        _ => Err("unknown command".into()),
    }
}

async fn run(command: Command) -> Result<(), String> {
    let table = Config::from_env().map_err(|e| e.to_string())?.table_name;
    // A tool on a developer's machine: trust its system's roots (its proxy's, say).
    let sdk = shared::app::load_sdk_config(shared::config::TlsRoots::System).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let store = DynamoDbStore::new(client.clone(), table.clone());
    match command {
        Command::CreateKey { organization_id } => {
            let key = NewApiKey::generate(&organization_id, Timestamp::now());
            store
                .put_key(&key.record, &hash_key(&key.secret))
                .await
                .map_err(|e| format!("cannot store the key: {e}"))?;
            println!("key_id: {}", key.record.key_id);
            println!("organization_id: {organization_id}");
            println!("api_key: {}", key.secret);
            eprintln!("The key is shown only this once; only its SHA-256 hash is stored.");
        }
        Command::ListKeys { organization_id } => {
            let keys = store
                .list_keys(&organization_id)
                .await
                .map_err(|e| format!("cannot list keys: {e}"))?;
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
        Command::RevokeKey { key_id } => {
            let key = store
                .revoke_key(&key_id, Timestamp::now())
                .await
                .map_err(|e| format!("cannot revoke {key_id}: {e}"))?;
            let at = key.revoked_at.map(|t| t.to_string()).unwrap_or_default();
            println!(
                "{} revoked {at} (organization {})",
                key.key_id, key.organization_id
            );
        }
        Command::CreateTable => {
            let created = create_table(&client, &table)
                .await
                .map_err(|e| format!("cannot create table {table}: {e}"))?;
            println!(
                "table {table}: {}",
                if created { "created" } else { "already exists" }
            );
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let command = match parse(&args) {
        Ok(command) => command,
        Err(message) => {
            eprintln!("domains-admin: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("domains-admin: {message}");
            ExitCode::from(1)
        }
    }
}
