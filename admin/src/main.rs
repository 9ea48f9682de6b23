//! `domains-admin`: operator commands against the deployment's table (API keys and
//! the table itself). `domains-admin --help` and `domains-admin <command> --help`
//! say the rest.

use std::process::ExitCode;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use clap::{Parser, Subcommand};
use shared::Timestamp;
use shared::keys::{NewApiKey, hash_key};
use shared::store::{DynamoDbStore, KeyStore, StoreError, create_table};

const ENVIRONMENT: &str = "Environment: TABLE_NAME (the deployment's table: the stack output \
TableName; --stack finds it instead), and the AWS configuration chain: AWS_PROFILE or \
AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_REGION (the stack's region), and \
AWS_ENDPOINT_URL_DYNAMODB for a local server such as moto.

After `sam deploy --config-env dev`:
  AWS_REGION=us-east-2 domains-admin --stack domains-api-dev keys create --org org_123";

/// The template's logical id of the table: CloudFormation names it
/// `<stack>-DomainsTable-<random>`.
const TABLE_LOGICAL_ID: &str = "DomainsTable";

/// Operator commands against the Domains API's table.
#[derive(Parser)]
#[command(name = "domains-admin", version, after_help = ENVIRONMENT)]
struct Cli {
    /// The deployed stack (e.g. domains-api-dev) whose table to use, found among the
    /// region's tables by its name (`<stack>-DomainsTable-…`); instead of TABLE_NAME.
    #[arg(long, global = true, value_name = "STACK_NAME")]
    stack: Option<String>,
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
    let hint = match error {
        StoreError::KeyNotFound => {
            "no such API key: `domains-admin keys list --org ORG_ID` shows the ids".into()
        }
        _ => hint(
            table,
            &error.to_string(),
            matches!(error, StoreError::Unavailable(_)),
        ),
    };
    format!("{what}: {hint}")
}

/// What to do about an AWS failure whose text is `detail`.
fn hint(table: &str, detail: &str, unreachable: bool) -> String {
    if detail.contains("ResourceNotFoundException") {
        format!(
            "table {table} does not exist in this region: check TABLE_NAME (the stack output \
             TableName) and AWS_REGION (the stack's region), or run `domains-admin table create` \
             for a local table"
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
    } else if unreachable || detail.contains("dispatch failure") {
        "DynamoDB could not be reached: check AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB and the network"
            .into()
    } else {
        detail
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect()
    }
}

/// The shell command that prints a stack's table name.
fn describe_stacks_hint(stack: &str) -> String {
    format!(
        "export TABLE_NAME=$(aws cloudformation describe-stacks --stack-name {stack} \
         --query \"Stacks[0].Outputs[?OutputKey=='TableName'].OutputValue\" --output text)"
    )
}

/// `TABLE_NAME`, or what to do when it is not set.
fn table_from_environment(value: Option<String>) -> Result<String, String> {
    match value.map(|v| v.trim().to_string()) {
        Some(table) if !table.is_empty() => Ok(table),
        _ => Err(format!(
            "TABLE_NAME is not set: it names the deployment's table, the stack output \
             TableName. Pass --stack STACK_NAME (e.g. --stack domains-api-dev) to find it, \
             or set it with\n  {}\n(for a local table, e.g. on moto: TABLE_NAME=domains)",
            describe_stacks_hint("domains-api-dev")
        )),
    }
}

/// The one table among `tables` that CloudFormation made for `stack`'s table.
fn table_of_stack(stack: &str, region: &str, tables: &[String]) -> Result<String, String> {
    let prefix = format!("{stack}-{TABLE_LOGICAL_ID}-");
    let found: Vec<&String> = tables
        .iter()
        .filter(|name| {
            name.strip_prefix(&prefix)
                .is_some_and(|rest| !rest.is_empty() && !rest.contains('-'))
        })
        .collect();
    match found.as_slice() {
        [table] => Ok((*table).clone()),
        [] => Err(format!(
            "stack {stack} has no table in region {region} (none is named {prefix}…): check the \
             stack name (`aws cloudformation list-stacks`) and set AWS_REGION to the stack's \
             region (samconfig.toml deploys to us-east-2)"
        )),
        several => Err(format!(
            "several tables look like stack {stack}'s ({}): set TABLE_NAME to the stack output \
             TableName instead:\n  {}",
            several
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            describe_stacks_hint(stack)
        )),
    }
}

/// Every table name in the client's region.
async fn list_tables(client: &aws_sdk_dynamodb::Client) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let page = client
            .list_tables()
            .set_exclusive_start_table_name(start.take())
            .send()
            .await
            .map_err(|e| {
                let detail = DisplayErrorContext(&e).to_string();
                format!("cannot list the tables: {}", hint("", &detail, false))
            })?;
        names.extend(page.table_names.unwrap_or_default());
        match page.last_evaluated_table_name {
            Some(last) => start = Some(last),
            None => return Ok(names),
        }
    }
}

/// Where the table's name comes from.
enum Table {
    /// `TABLE_NAME`.
    Named(String),
    /// `--stack`: looked up among the region's tables.
    OfStack(String),
}

async fn run(stack: Option<String>, command: Command) -> Result<(), String> {
    // What is missing is said before any AWS call.
    let table = match stack {
        Some(_) if matches!(command, Command::Table(_)) => {
            return Err(
                "a deployed stack makes its own table: `table create` is for a local table \
                 (set TABLE_NAME instead of passing --stack)"
                    .into(),
            );
        }
        Some(stack) => Table::OfStack(stack),
        None => Table::Named(table_from_environment(std::env::var("TABLE_NAME").ok())?),
    };
    // A tool on a developer's machine: trust its system's roots (its proxy's, say).
    let sdk = shared::app::load_sdk_config(shared::config::TlsRoots::System).await;
    let Some(region) = sdk.region().map(|r| r.to_string()) else {
        return Err(
            "no AWS region is set: set AWS_REGION to the stack's region \
                    (samconfig.toml deploys both stacks to us-east-2), or use a profile \
                    that has one"
                .into(),
        );
    };
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let table = match table {
        Table::Named(table) => table,
        Table::OfStack(stack) => {
            let table = table_of_stack(&stack, &region, &list_tables(&client).await?)?;
            eprintln!("stack {stack}: table {table} ({region})");
            table
        }
    };
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
    match run(cli.stack, cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("domains-admin: {message}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_stack_s_table_is_the_one_cloudformation_named_for_it() {
        let tables = names(&[
            "domains-api-dev-DomainsTable-1A2B3C4D5E6F",
            "domains-api-dev-extra-DomainsTable-9Z8Y7X",
            "domains-api-prod-DomainsTable-QWERTY",
            "domains",
        ]);
        assert_eq!(
            table_of_stack("domains-api-dev", "us-east-2", &tables),
            Ok("domains-api-dev-DomainsTable-1A2B3C4D5E6F".into())
        );
        assert_eq!(
            table_of_stack("domains-api-prod", "us-east-2", &tables),
            Ok("domains-api-prod-DomainsTable-QWERTY".into())
        );
    }

    #[test]
    fn no_table_or_several_say_what_to_do() {
        let none = table_of_stack("domains-api-dev", "eu-west-1", &names(&["domains"]))
            .expect_err("no table");
        assert!(
            none.contains("eu-west-1") && none.contains("AWS_REGION"),
            "{none}"
        );
        let several = table_of_stack(
            "s",
            "us-east-2",
            &names(&["s-DomainsTable-AAA", "s-DomainsTable-BBB"]),
        )
        .expect_err("two tables");
        assert!(
            several.contains("describe-stacks --stack-name s"),
            "{several}"
        );
    }

    #[test]
    fn a_missing_table_name_says_where_to_get_it() {
        for unset in [None, Some("  ".to_string())] {
            let message = table_from_environment(unset).expect_err("not set");
            assert!(message.starts_with("TABLE_NAME is not set"), "{message}");
            assert!(message.contains("--stack"), "{message}");
            assert!(message.contains("OutputKey=='TableName'"), "{message}");
        }
        assert_eq!(
            table_from_environment(Some(" domains ".into())),
            Ok("domains".into())
        );
    }
}
