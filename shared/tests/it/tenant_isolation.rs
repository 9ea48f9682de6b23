//! Another organization's domains, named in every spelling that normalizes to
//! them, through every endpoint, on both stores: always 404 (409 for create), and
//! never a change to the owner's domain.

use crate::common::*;
use lambda_http::http::StatusCode;
use serde_json::Value;
use shared::App;

/// The owner's names, as created.
const OWNED: [&str; 3] = ["example.com", "mail.company.co.uk", "bücher.example"];

/// Every spelling of `name` that normalizes to it: letter cases (all of them for
/// short names, a spread for long ones), a trailing dot, surrounding spaces, and the
/// other IDN form.
fn spellings(name: &str) -> Vec<String> {
    let ascii = shared::DomainName::parse(name).expect("valid").to_string();
    let mut forms = vec![name.to_string(), ascii.clone()];
    let letters: Vec<usize> = ascii
        .char_indices()
        .filter(|(_, c)| c.is_ascii_alphabetic())
        .map(|(i, _)| i)
        .collect();
    // Every combination of the first 6 letters' case, the rest alternating.
    for mask in 0u32..(1 << letters.len().min(6)) {
        let mut spelled: Vec<char> = ascii.chars().collect();
        for (bit, &i) in letters.iter().enumerate() {
            let upper = if bit < 8 {
                mask & (1 << bit) != 0
            } else {
                bit % 2 == 0
            };
            if upper {
                spelled[i] = spelled[i].to_ascii_uppercase();
            }
        }
        forms.push(spelled.into_iter().collect());
    }
    forms.push(ascii.to_uppercase());
    forms.push(name.to_uppercase());
    let with_dots: Vec<String> = forms.iter().map(|f| format!("{f}.")).collect();
    forms.extend(with_dots);
    forms.push(format!("  {ascii} "));
    forms.sort();
    forms.dedup();
    forms
}

async fn assert_isolated(app: &App) {
    for name in OWNED {
        let created = create(name).org("org_owner").send(app).await;
        assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    }
    let before = Call::new(Endpoint::List)
        .org("org_owner")
        .send(app)
        .await
        .body;
    let mut attempts = 0;
    for name in OWNED {
        for spelling in spellings(name) {
            for endpoint in [
                Endpoint::Get,
                Endpoint::DnsRecords,
                Endpoint::Verify,
                Endpoint::Update,
                Endpoint::Delete,
            ] {
                Call::new(endpoint)
                    .org("org_intruder")
                    .domain(&spelling)
                    .send(app)
                    .await
                    .assert_error(404, "Domain not found");
                attempts += 1;
            }
            create(&spelling)
                .org("org_intruder")
                .send(app)
                .await
                .assert_error(409, "Domain already exists");
            attempts += 1;
        }
    }
    assert!(attempts > 1000, "{attempts} attempts");
    let listed = Call::new(Endpoint::List)
        .org("org_intruder")
        .send(app)
        .await;
    assert_eq!(
        listed.body,
        Value::Array(vec![]),
        "the intruder lists nothing"
    );
    let after = Call::new(Endpoint::List)
        .org("org_owner")
        .send(app)
        .await
        .body;
    assert_eq!(
        after, before,
        "the owner's domains are untouched (no verify ran, nothing changed or deleted)"
    );
    for name in OWNED {
        let identity = app
            .identities
            .get(&shared::DomainName::parse(name).expect("valid"))
            .await
            .expect("the owner's identity");
        assert_eq!(identity.mail_from_domain, None, "{name}: SES untouched");
    }
}

#[test]
fn spellings_cover_cases_dots_spaces_and_idn_forms() {
    let forms = spellings("bücher.example");
    assert!(forms.contains(&"xn--bcher-kva.example".to_string()));
    assert!(forms.contains(&"BÜCHER.EXAMPLE.".to_string()));
    assert!(forms.contains(&"XN--BCHER-KVA.EXAMPLE".to_string()));
    assert!(forms.len() > 128);
    for form in &forms {
        assert_eq!(
            shared::DomainName::parse(form).map(|d| d.to_string()),
            Ok("xn--bcher-kva.example".into()),
            "{form}"
        );
    }
}

#[tokio::test]
async fn organizations_are_isolated_in_memory() {
    assert_isolated(&in_memory_world().await.app).await;
}

#[tokio::test]
#[ignore = "needs moto: scripts/test"]
async fn organizations_are_isolated_on_dynamodb() {
    let (world, _) = dynamodb_world().await;
    assert_isolated(&world.app).await;
}
