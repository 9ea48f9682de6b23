//! Absurd input: the caller gets a clear 4xx and nothing is stored.

use crate::common::*;
use lambda_http::http::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn absurd_names_are_400_and_store_nothing() {
    let world = in_memory_world().await;
    let long_label = format!("{}.com", "a".repeat(64));
    let huge = "x".repeat(10_000);
    let names = [
        "exa\u{0}mple.com",
        "example.com\u{0}",
        "\u{202e}moc.elpmaxe",
        "example..com",
        "..",
        ".",
        "-",
        "a.-b.com",
        "xn--.com",
        "xn--a.com",
        "127.0.0.1",
        "[::1]",
        "example.com:443",
        "http://example.com",
        "example.com/",
        "*.example.com",
        "_dmarc.example.com",
        long_label.as_str(),
        huge.as_str(),
    ];
    for name in names {
        create(name)
            .send(&world.app)
            .await
            .assert_error(400, "Invalid domain name format");
    }
    for body in [
        json!({"name": ["example.com"]}),
        json!({"name": {"a": 1}}),
        json!({"name": true}),
    ] {
        Call::new(Endpoint::Create)
            .body(&body.to_string())
            .send(&world.app)
            .await
            .assert_error(400, "Invalid domain name format");
    }
    assert_eq!(
        Call::new(Endpoint::List).send(&world.app).await.body,
        Value::Array(vec![])
    );
}

#[tokio::test]
async fn the_body_limit_is_16_kib_exactly() {
    let world = in_memory_world().await;
    let body_of = |size: usize| {
        let base = json!({"name": "example.com", "pad": ""}).to_string();
        json!({"name": "example.com", "pad": "x".repeat(size - base.len())}).to_string()
    };
    let at_limit = body_of(16 * 1024);
    assert_eq!(at_limit.len(), 16 * 1024);
    let over = body_of(16 * 1024 + 1);
    Call::new(Endpoint::Create)
        .body(&over)
        .send(&world.app)
        .await
        .assert_error(413, "Request body too large");
    let reply = Call::new(Endpoint::Create)
        .body(&at_limit)
        .send(&world.app)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
}

#[tokio::test]
async fn absurd_paths_are_not_found() {
    let world = in_memory_world().await;
    let long = "a".repeat(4096);
    for domain in [
        "\u{0}",
        "%00",
        "..",
        "a/b",
        long.as_str(),
        "💌",
        "example.com/verify",
        "*",
    ] {
        for endpoint in [
            Endpoint::Get,
            Endpoint::DnsRecords,
            Endpoint::Verify,
            Endpoint::Delete,
        ] {
            Call::new(endpoint)
                .domain(domain)
                .send(&world.app)
                .await
                .assert_error(404, "Domain not found");
        }
    }
}
