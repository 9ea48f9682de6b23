//! `domains-admin` against the DynamoDB-API test server, as an operator runs it; the
//! keys it makes are then judged by the authorizer's own code.

use std::process::{Command, Output};

use shared::authorizer::{Decision, decide};
use shared::store::DynamoDbStore;
use test_support::{RequestCounter, dynamodb_client, moto_endpoint, unique_table_name};

fn admin(table: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_domains-admin"))
        .args(args)
        .env("TABLE_NAME", table)
        .env("AWS_ENDPOINT_URL_DYNAMODB", moto_endpoint())
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

    let listed = stdout(&admin(&table, &["keys", "list", "--org", "org_cli"]));
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
}

#[test]
fn usage_errors_are_clear() {
    for args in [
        &["keys"][..],
        &["keys", "create"],
        &["keys", "create", "--org"],
        &["nope"],
    ] {
        let output = admin("unused", args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("usage:"),
            "{args:?}"
        );
    }
}
