//! The `local-api` binary, spawned as a user runs it, called over HTTP.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::{
    RequestCounter, fresh_account, moto_endpoint, sesv2_client_in, tokens_of, unique_table_name,
};

struct DevServer {
    child: Child,
    url: String,
    /// Everything the server printed after its banner (its request log).
    output: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_local-api"));
    command
        .args(args)
        .env("PORT", "0")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("DEV_API_KEYS")
        .env_remove("TABLE_NAME");
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

/// Starts the server and waits for the line that names its URL.
fn start(args: &[&str], env: &[(&str, &str)]) -> DevServer {
    let mut child = command(args, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn local-api");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("local-api exited before printing its URL")
            .expect("stdout line");
        if let Some(url) = line.strip_prefix("Domains API listening on ") {
            break url.trim().to_string();
        }
    };
    // Keep draining stdout (the request log) so the server never blocks on a full pipe.
    let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let collected = output.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            collected.lock().expect("log lock").push(line);
        }
    });
    DevServer { child, url, output }
}

struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    fn new(server: &DevServer) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: server.url.clone(),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<String>,
    ) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.expect("HTTP call");
        let status = response.status();
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{path}"
        );
        let body = response.json().await.expect("JSON body");
        (status, body)
    }
}

/// Waits until `done()` holds, polling every 20 ms, for at most 30 s (a deadline
/// for a loaded machine, not a pause: a condition met early ends the wait early).
/// Whether it held.
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    true
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("array")
        .iter()
        .map(|d| d["name"].as_str().expect("name"))
        .collect()
}

async fn assert_two_organizations_are_isolated(client: &Client) {
    let create = |name: &str| Some(json!({ "name": name }).to_string());
    let (status, _) = client
        .call("POST", "/domains", Some("key_a"), create("example.com"))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = client
        .call("POST", "/domains", Some("key_b"), create("b.example.org"))
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, body) = client
        .call("POST", "/domains", Some("key_b"), create("Example.com."))
        .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (StatusCode::CONFLICT, Some("Domain already exists"))
    );
    for (method, path) in [
        ("GET", "/domains/example.com"),
        ("GET", "/domains/EXAMPLE.COM."),
        ("GET", "/domains/example.com/dns-records"),
        ("POST", "/domains/example.com/verify"),
        ("DELETE", "/domains/example.com"),
    ] {
        let (status, body) = client.call(method, path, Some("key_b"), None).await;
        assert_eq!(
            (status, body["message"].as_str()),
            (StatusCode::NOT_FOUND, Some("Domain not found")),
            "{method} {path}"
        );
    }
    let (_, listed) = client.call("GET", "/domains", Some("key_b"), None).await;
    assert_eq!(names(&listed), ["b.example.org"]);
    let (_, listed) = client.call("GET", "/domains", Some("key_a"), None).await;
    assert_eq!(names(&listed), ["example.com"]);
    let (status, _) = client
        .call("DELETE", "/domains/example.com", Some("key_a"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn in_memory_default_isolates_organizations_and_checks_keys() {
    let server = start(&[], &[("DEV_API_KEYS", "key_a=org_a,key_b=org_b")]);
    let client = Client::new(&server);
    assert_two_organizations_are_isolated(&client).await;

    let (status, body) = client.call("GET", "/domains", None, None).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            json!({"message": "Unauthorized", "code": "unauthorized"})
        )
    );
    let (status, body) = client
        .call("GET", "/domains", Some("not_a_key"), None)
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::FORBIDDEN,
            json!({"message": "Forbidden", "code": "forbidden"})
        )
    );
    let (status, _) = client.call("GET", "/nowhere", Some("key_a"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = client.call("PUT", "/domains", Some("key_a"), None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let response = reqwest::Client::new()
        .request(
            reqwest::Method::TRACE,
            format!("{}/domains/x.example.com/verify", server.url),
        )
        .bearer_auth("key_a")
        .send()
        .await
        .expect("HTTP call");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "POST");
    let huge = json!({ "name": "x.example.com", "pad": "x".repeat(20_000) }).to_string();
    let (status, body) = client
        .call("POST", "/domains", Some("key_a"), Some(huge))
        .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("Request body too large")
        )
    );
    let (status, body) = client
        .call("POST", "/domains", Some("key_a"), Some("{".into()))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_json"))
    );
}

#[tokio::test]
async fn default_key_serves_the_readme_walkthrough_shape() {
    let server = start(&[], &[]);
    let client = Client::new(&server);
    let key = Some("dk_dev_local");
    let (status, created) = client
        .call(
            "POST",
            "/domains",
            key,
            Some(r#"{"name": "mail.example.com"}"#.into()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["organization_id"], "org_local");
    assert_eq!(created["records"].as_array().map(Vec::len), Some(6));
    let (status, records) = client
        .call("GET", "/domains/mail.example.com/dns-records", key, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(records[0]["name"], "mail");
    assert_eq!(records[2]["name"], "_dmarc.mail");
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn aws_mode_on_moto_isolates_organizations() {
    let endpoint = moto_endpoint();
    let table = unique_table_name("local-api");
    let account = fresh_account();
    let server = start(
        &["--aws", "--create-table"],
        &[
            ("DEV_API_KEYS", "key_a=org_a,key_b=org_b"),
            ("TABLE_NAME", &table),
            ("AWS_ENDPOINT_URL_DYNAMODB", &endpoint),
            ("AWS_ENDPOINT_URL_SESV2", &endpoint),
            ("AWS_REGION", "us-east-2"),
            ("AWS_ACCESS_KEY_ID", &account),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ],
    );
    let client = Client::new(&server);
    assert_two_organizations_are_isolated(&client).await;
    // SES on moto issues DKIM tokens as SES does (tests/moto-ses): all six records.
    let (_, listed) = client.call("GET", "/domains", Some("key_b"), None).await;
    assert_eq!(listed[0]["records"].as_array().map(Vec::len), Some(6));
    let (status, records) = client
        .call(
            "GET",
            "/domains/b.example.org/dns-records",
            Some("key_b"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{records}");
    assert_eq!(records.as_array().map(Vec::len), Some(6));
}

/// SES identities as `local-api --aws` meets them on moto (SESv2 answering as SES
/// does): one made outside the API is never taken, changed or deleted; an orphan
/// of the same organization is taken back; another organization's is made anew.
#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn aws_mode_on_moto_respects_who_owns_each_ses_identity() {
    let endpoint = moto_endpoint();
    let table = unique_table_name("local-api-owners");
    let account = fresh_account();
    let server = start(
        &["--aws", "--create-table"],
        &[
            ("DEV_API_KEYS", "key_a=org_a"),
            ("TABLE_NAME", &table),
            ("AWS_ENDPOINT_URL_DYNAMODB", &endpoint),
            ("AWS_ENDPOINT_URL_SESV2", &endpoint),
            ("AWS_REGION", "us-east-2"),
            ("AWS_ACCESS_KEY_ID", &account),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ],
    );
    let client = Client::new(&server);
    let ses = sesv2_client_in(&account, &endpoint, &RequestCounter::new());
    let make = |name: &'static str, tags: Vec<(String, String)>| {
        let ses = ses.clone();
        async move {
            let tags = tags
                .into_iter()
                .map(|(k, v)| {
                    aws_sdk_sesv2::types::Tag::builder()
                        .key(k)
                        .value(v)
                        .build()
                        .expect("tag")
                })
                .collect();
            ses.create_email_identity()
                .email_identity(name)
                .set_tags(Some(tags))
                .send()
                .await
                .expect("identity")
                .dkim_attributes()
                .map(|d| d.tokens().to_vec())
                .unwrap_or_default()
        }
    };
    let seen = |name: &'static str| {
        let ses = ses.clone();
        async move {
            let identity = ses
                .get_email_identity()
                .email_identity(name)
                .send()
                .await
                .ok()?;
            let mut tags: Vec<(String, String)> = identity
                .tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect();
            tags.sort();
            Some((
                identity
                    .dkim_attributes()
                    .map(|d| d.tokens().to_vec())
                    .unwrap_or_default(),
                tags,
            ))
        }
    };
    // As an older release tagged identities: the organization id itself.
    let ours = |org: &str| {
        vec![
            ("domains-api:deployment".to_string(), table.clone()),
            ("domains-api:organization".to_string(), org.to_string()),
        ]
    };
    // As this release tags them: every organization id hashed.
    let written = |org: &str| {
        vec![
            ("domains-api:deployment".to_string(), table.clone()),
            (
                "domains-api:organization".to_string(),
                shared::identity::organization_tag_value(org),
            ),
        ]
    };
    let create = |name: &str| {
        client.call(
            "POST",
            "/domains",
            Some("key_a"),
            Some(json!({ "name": name }).to_string()),
        )
    };

    // Made outside the API (the platform's own sending domain): 409, 404, untouched.
    let outside = make("platform.example.com", vec![("team".into(), "mail".into())]).await;
    let before = seen("platform.example.com").await;
    let (status, body) = create("platform.example.com").await;
    assert_eq!(
        (status, body["message"].as_str()),
        (StatusCode::CONFLICT, Some("Domain already exists"))
    );
    let (status, _) = client
        .call(
            "DELETE",
            "/domains/platform.example.com",
            Some("key_a"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        seen("platform.example.com").await,
        before,
        "identity, tokens and tags untouched"
    );
    assert_eq!(before.map(|(tokens, _)| tokens), Some(outside));

    // Left by this organization (its items lost): taken back with its tokens.
    let orphan = make("mine.example.com", ours("org_a")).await;
    let (status, body) = create("mine.example.com").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(tokens_of(&body), orphan);

    // Left by another organization: made anew, fresh tokens, tagged for org_a.
    let theirs = make("theirs.example.com", ours("org_gone")).await;
    let (status, body) = create("theirs.example.com").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let tokens = tokens_of(&body);
    assert!(tokens.iter().all(|t| !theirs.contains(t)), "fresh tokens");
    assert_eq!(
        seen("theirs.example.com").await,
        Some((tokens, written("org_a")))
    );
}

#[test]
fn bad_configuration_fails_at_start_with_a_clear_message() {
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 4] = [
        (&["--aws"], &[], "TABLE_NAME is not set"),
        (
            &[],
            &[("DEV_API_KEYS", "no-equals-sign")],
            "is not key=organization_id",
        ),
        (&["--bogus"], &[], "unknown argument"),
        (&[], &[("PORT", "eighty")], "is not a port number"),
    ];
    for (args, env, message) in cases {
        let output = command(args, env).output().expect("run local-api");
        assert!(!output.status.success(), "{args:?} {env:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[tokio::test]
async fn each_request_is_logged_once_as_json_with_its_request_id_and_never_the_key() {
    let key = "dk_secret_key_that_must_not_be_logged";
    let server = start(&[], &[("DEV_API_KEYS", &format!("{key}=org_log"))]);
    let client = Client::new(&server);
    let body = Some(r#"{"name": "logged.example.com"}"#.to_string());
    client.call("POST", "/domains", Some(key), body).await;
    client
        .call("GET", "/domains/logged.example.com", Some(key), None)
        .await;
    client
        .call("GET", "/domains/missing.example.com", Some(key), None)
        .await;

    // The log line is written before the response is sent; the reader thread
    // collects it a moment later.
    let request_lines = || {
        server
            .output
            .lock()
            .expect("log lock")
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|entry| entry["message"] == "request")
            .collect::<Vec<_>>()
    };
    eventually(|| request_lines().len() >= 3).await;
    let request_lines = request_lines();
    let operations: Vec<&str> = request_lines
        .iter()
        .map(|e| e["operation"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(operations, ["create_domain", "get_domain", "get_domain"]);
    let statuses: Vec<u64> = request_lines
        .iter()
        .map(|e| e["status"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(statuses, [201, 200, 404]);
    for entry in &request_lines {
        assert!(
            entry["request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty()),
            "{entry}"
        );
        assert_eq!(entry["organization_id"], "org_log");
    }
    let all = server.output.lock().expect("log lock").join("\n");
    assert!(!all.contains(key), "the API key appeared in the log");
    assert!(
        !all.contains(&shared::keys::hash_key(key)),
        "the key's hash appeared in the log"
    );
    assert!(
        !all.to_lowercase().contains("bearer"),
        "an Authorization header appeared in the log"
    );
}

/// Requests refused before any handler runs (no key, a refused key, an unknown
/// route) are logged once each, with their status; a 5xx there (the key store
/// unreachable) with its cause, which the caller never sees.
#[tokio::test]
async fn every_refused_request_is_logged_once_and_a_5xx_with_its_cause() {
    // Well formed, so the key store is asked.
    let key = "dk_AnotherSecretThatMustNotBeLogged00000000";
    let server = start(
        &["--aws"],
        &[
            ("TABLE_NAME", "refusals"),
            // Nothing listens there: the key store cannot be reached.
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9"),
            ("AWS_ENDPOINT_URL_SESV2", "http://127.0.0.1:9"),
            ("AWS_REGION", "us-east-2"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ],
    );
    let client = Client::new(&server);
    let (status, _) = client.call("GET", "/domains", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = client.call("GET", "/domains", Some(key), None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        !body.to_string().contains("127.0.0.1"),
        "the cause never reaches the caller: {body}"
    );
    let (status, _) = client.call("GET", "/nowhere", Some(key), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let refused = || {
        server
            .output
            .lock()
            .expect("log lock")
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|entry| entry["message"] == "request refused")
            .collect::<Vec<_>>()
    };
    eventually(|| refused().len() >= 3).await;
    let refused = refused();
    let statuses: Vec<u64> = refused
        .iter()
        .map(|e| e["status"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(statuses, [401, 503, 404], "{refused:?}");
    assert!(
        refused[1]["cause"].as_str().is_some_and(|c| !c.is_empty()),
        "the 503's cause is logged: {}",
        refused[1]
    );
    let all = server.output.lock().expect("log lock").join("\n");
    assert!(!all.contains(key), "a key appeared in the log");
}

/// A webhook receiver on 127.0.0.1: answers 500 to the first POST (so the server
/// must retry), 200 to the rest, and keeps each accepted body.
struct Webhook {
    url: String,
    received: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    attempts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

async fn webhook() -> Webhook {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let attempts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (kept, counted) = (received.clone(), attempts.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (kept, counted) = (kept.clone(), counted.clone());
            tokio::spawn(async move {
                let mut reader = tokio::io::BufReader::new(stream);
                loop {
                    // One request per loop (the client may keep the connection).
                    let mut length = 0;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(value) = lower.strip_prefix("content-length:") {
                            length = value.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let attempt = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let status = if attempt == 0 {
                        "500 Internal Server Error"
                    } else {
                        kept.lock()
                            .expect("lock")
                            .push(serde_json::from_slice::<Value>(&body).expect("JSON event"));
                        "200 OK"
                    };
                    let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                    if reader.get_mut().write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Webhook {
        url,
        received,
        attempts,
    }
}

/// The dev server publishes the same events as the stream's publisher, from its
/// in-memory store: printed, and POSTed to `DEV_WEBHOOK_URL` (retried after a
/// failure); reads publish nothing.
#[tokio::test]
async fn dev_webhook_gets_created_verified_claimed_and_deleted_and_nothing_for_reads() {
    let dns = test_support::TestDnsServer::start(&[("example.com", "")]).await;
    let hook = webhook().await;
    let server = start(
        &[],
        &[
            ("DEV_API_KEYS", "dk_a=org_a,dk_b=org_b"),
            ("DNS_NAMESERVERS", &dns.address().to_string()),
            ("DEV_WEBHOOK_URL", &hook.url),
        ],
    );
    let client = Client::new(&server);
    let name = "hook.example.com";
    let (status, created) = client
        .call(
            "POST",
            "/domains",
            Some("dk_a"),
            Some(json!({ "name": name }).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    // Reads.
    for path in [
        "/domains",
        "/domains/hook.example.com",
        "/domains/hook.example.com/dns-records",
        "/domain-claims",
    ] {
        assert_eq!(
            client.call("GET", path, Some("dk_a"), None).await.0,
            StatusCode::OK,
            "{path}"
        );
    }
    let tokens = tokens_of(&created);
    let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
    dns.publish(0, &test_support::dns::all_records_zone("hook", &tokens))
        .await;
    let (_, verified) = client
        .call(
            "POST",
            "/domains/hook.example.com/verify",
            Some("dk_a"),
            None,
        )
        .await;
    assert_eq!(verified["status"], "verified", "{verified}");
    // B claims it and proves it.
    let (status, claim) = client
        .call(
            "POST",
            "/domain-claims",
            Some("dk_b"),
            Some(json!({ "name": name }).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{claim}");
    let value = claim["record"]["value"].as_str().expect("value");
    dns.publish(0, &format!("_domains-claim.hook 300 IN TXT \"{value}\"\n"))
        .await;
    let (_, done) = client
        .call(
            "POST",
            "/domain-claims/hook.example.com/verify",
            Some("dk_b"),
            None,
        )
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    let (status, _) = client
        .call("DELETE", "/domains/hook.example.com", Some("dk_b"), None)
        .await;
    assert_eq!(status, StatusCode::OK);

    let expected = [
        ("domain.created", "org_a", Value::Null),
        ("domain.verified", "org_a", json!("pending")),
        ("domain.claimed", "org_a", json!("verified")),
        ("domain.created", "org_b", Value::Null),
        ("domain.deleted", "org_b", json!("pending")),
    ];
    // One more change, last: the feed delivers in order, so once its event has
    // arrived, every event published before it has, wanted or not (one for a
    // read would be among them). No pause guessing how long the rest may take.
    let sentinel = "sentinel.example.com";
    let (status, _) = client
        .call(
            "POST",
            "/domains",
            Some("dk_a"),
            Some(json!({ "name": sentinel }).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let is_sentinel = |e: &Value| e["detail"]["domain"]["name"] == sentinel;
    assert!(
        eventually(|| hook.received.lock().expect("lock").iter().any(is_sentinel)).await,
        "the last change's event never arrived: {:?}",
        hook.received.lock().expect("lock")
    );
    let mut got = hook.received.lock().expect("lock").clone();
    assert!(
        got.last().is_some_and(is_sentinel),
        "nothing after the last change: {got:?}"
    );
    got.pop();
    let seen: Vec<(String, String, Value)> = got
        .iter()
        .map(|e| {
            (
                e["detail-type"].as_str().unwrap_or_default().to_string(),
                e["detail"]["organization_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                e["detail"]["previous_status"].clone(),
            )
        })
        .collect();
    let expected: Vec<(String, String, Value)> = expected
        .iter()
        .map(|(t, o, p)| (t.to_string(), o.to_string(), p.clone()))
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(
        hook.attempts.load(std::sync::atomic::Ordering::SeqCst),
        expected.len() + 2,
        "the first POST failed and was retried (and the last change's event came)"
    );
    for event in &got {
        assert_eq!(event["source"], "domains-api");
        assert_eq!(event["id"], event["detail"]["event_id"]);
        assert_eq!(event["detail"]["domain"]["name"], name);
    }
    assert_eq!(
        got[2]["detail"]["domain"]["id"], created["id"],
        "claimed: A's domain as it was"
    );
    assert_eq!(got[3]["detail"]["domain"]["id"], done["domain"]["id"]);
    // The same events, one JSON line each, on stdout (and the last change's).
    let printed = || {
        server
            .output
            .lock()
            .expect("log lock")
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line.get("detail-type").is_some())
            .count()
    };
    eventually(|| printed() > expected.len()).await;
    assert_eq!(printed(), expected.len() + 1);
}
