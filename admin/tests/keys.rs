//! `domains-admin` as an operator runs it: its usage, help and failures on their
//! own, and (ignored in a plain `cargo test`: scripts/test runs them) against the
//! DynamoDB-API test server, where the keys it makes are then judged by the
//! authorizer's own code.

use std::process::{Command, Output};

use shared::authorizer::{Decision, decide};
use shared::store::DynamoDbStore;
use test_support::{ClosedPort, RequestCounter, dynamodb_client, moto_endpoint, unique_table_name};

/// `domains-admin` against moto (`MOTO_ENDPOINT`).
fn admin(table: &str, args: &[&str]) -> Output {
    admin_at(&moto_endpoint(), table, args)
}

/// `domains-admin` with DynamoDB at a port nothing listens on: for what it must
/// answer without reaching AWS (usage, help, refusals).
fn offline_admin(args: &[&str]) -> Output {
    let closed = ClosedPort::hold();
    admin_at(&closed.url(), "unused", args)
}

fn admin_at(endpoint: &str, table: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_domains-admin"))
        .args(args)
        .env("TABLE_NAME", table)
        .env("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
        .env("AWS_REGION", "us-east-2")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run domains-admin")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn field<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn keys_made_listed_and_revoked_with_the_cli_are_judged_by_the_authorizer() {
    let table = unique_table_name("admin");
    assert!(stdout(&admin(&table, &["table", "create"])).contains("created"));
    assert!(stdout(&admin(&table, &["table", "create"])).contains("already exists"));

    let created = stdout(&admin(&table, &["keys", "create", "--org", "org_cli"]));
    let key = field(&created, "api_key").to_string();
    let key_id = field(&created, "key_id").to_string();
    assert!(key.starts_with("dk_") && key.len() == 43, "{key}");

    let store = DynamoDbStore::new(
        dynamodb_client(&moto_endpoint(), &RequestCounter::new()),
        table.clone(),
    );
    let bearer = format!("Bearer {key}");
    assert_eq!(
        decide(&store, Some(&bearer)).await.expect("decides"),
        Decision::Allowed {
            organization_id: "org_cli".into(),
            key_id: key_id.clone()
        }
    );

    // `--org=ID` and `--org ID` both work.
    let listed = stdout(&admin(&table, &["keys", "list", "--org=org_cli"]));
    assert!(
        listed.contains(&key_id) && listed.contains("active"),
        "{listed}"
    );
    assert!(!listed.contains(&key), "list never shows a key");
    assert!(
        stdout(&admin(&table, &["keys", "list", "--org", "org_other"]))
            .trim()
            .is_empty()
    );

    let revoked = stdout(&admin(&table, &["keys", "revoke", &key_id]));
    assert!(revoked.contains("revoked"), "{revoked}");
    assert_eq!(
        decide(&store, Some(&bearer)).await.expect("decides"),
        Decision::Refused
    );
    assert!(stdout(&admin(&table, &["keys", "list", "--org", "org_cli"])).contains("revoked"));

    let missing = admin(&table, &["keys", "revoke", "key_doesnotexist"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no such API key"));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("keys list"));
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn usage_errors_are_clear() {
    for args in [
        &["keys"][..],
        &["keys", "create"],
        &["keys", "create", "--org"],
        &["keys", "create", "--org", "  "],
        &["nope"],
    ] {
        let output = offline_admin(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let text = stderr(&output);
        assert!(
            text.contains("Usage:") || text.contains("--help"),
            "{args:?}: {text}"
        );
    }
}

#[test]
fn every_command_has_help() {
    for (args, says) in [
        (&["--help"][..], "Operator commands"),
        (&["keys", "--help"], "Make, list and revoke API keys"),
        (&["keys", "create", "--help"], "printed once"),
        (&["keys", "list", "--help"], "never the keys themselves"),
        (&["keys", "revoke", "--help"], "never the key itself"),
        (&["table", "create", "--help"], "due-keys index"),
    ] {
        let output = offline_admin(args);
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            text.contains("Usage:") && text.contains(says),
            "{args:?}: {text}"
        );
    }
    let top = String::from_utf8_lossy(&offline_admin(&["--help"]).stdout).into_owned();
    assert!(
        top.contains("TABLE_NAME") && top.contains("AWS_PROFILE"),
        "{top}"
    );
}

#[test]
fn a_key_passed_for_its_id_is_refused_without_being_echoed() {
    let secret = "dk_0123456789abcdefghijABCDEFGHIJ0123456789";
    let output = offline_admin(&["keys", "revoke", secret]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(text.contains("not its id"), "{text}");
    assert!(!text.contains(&secret[3..]), "the key was echoed: {text}");
}

/// AWS failures are one line saying what to do, not an SDK dump: a table never
/// created (on moto).
#[test]
#[ignore = "needs moto: scripts/test"]
fn failures_say_what_to_do_in_one_line() {
    let missing = admin(
        &unique_table_name("never-created"),
        &["keys", "list", "--org", "org_x"],
    );
    assert_eq!(missing.status.code(), Some(1));
    let text = stderr(&missing);
    assert!(text.contains("domains-admin table create"), "{text}");
    assert_eq!(text.trim().lines().count(), 1, "{text}");
    assert!(text.len() < 300, "{text}");
}

/// The same for DynamoDB that cannot be reached (a port held closed, which no
/// other process can take meanwhile) and a missing TABLE_NAME: no server needed.
#[test]
fn unreachable_aws_and_a_missing_table_name_say_what_to_do_in_one_line() {
    let closed = ClosedPort::hold();
    let unreachable = Command::new(env!("CARGO_BIN_EXE_domains-admin"))
        .args(["keys", "list", "--org", "org_x"])
        .env("TABLE_NAME", "t")
        .env("AWS_ENDPOINT_URL_DYNAMODB", closed.url())
        .env("AWS_REGION", "us-east-2")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run domains-admin");
    assert_eq!(unreachable.status.code(), Some(1));
    let text = stderr(&unreachable);
    assert!(text.contains("could not be reached"), "{text}");
    assert_eq!(text.trim().lines().count(), 1, "{text}");

    let no_table_name = Command::new(env!("CARGO_BIN_EXE_domains-admin"))
        .args(["table", "create"])
        .env_remove("TABLE_NAME")
        .output()
        .expect("run domains-admin");
    assert_eq!(no_table_name.status.code(), Some(1));
    assert!(stderr(&no_table_name).contains("TABLE_NAME is not set"));
}
