//! Verification against a real DNS server on 127.0.0.1 (hickory-server in process).

use std::time::Duration;

use shared::DomainName;
use shared::model::{DnsRecord, RecordPurpose, RecordStatus};
use shared::records::expected_records;
use shared::verify::DnsChecker;
use test_support::TestDnsServer;
use test_support::dns::SilentDnsServer;

const TOKENS: [&str; 3] = ["tok1", "tok2", "tok3"];

const MX_OK: &str = "@ 300 IN MX 10 inbound-smtp.us-east-2.amazonaws.com.\n";
const SPF_OK: &str = "@ 300 IN TXT \"v=spf1 include:amazonses.com ~all\"\n";
const DMARC_OK: &str = "_dmarc 300 IN TXT \"v=DMARC1; p=reject;\"\n";
const DKIM_OK: &str = "tok1._domainkey 300 IN CNAME tok1.dkim.amazonses.com.\n\
                       tok2._domainkey 300 IN CNAME TOK2.dkim.amazonses.com.\n\
                       tok3._domainkey 300 IN CNAME tok3.dkim.amazonses.com.\n";

fn records_for(name: &DomainName) -> Vec<DnsRecord> {
    let tokens: Vec<String> = TOKENS.iter().map(|t| t.to_string()).collect();
    expected_records(name, &tokens, "us-east-2")
}

async fn check_zone(domain: &str, zone: &str, records: &str) -> Vec<DnsRecord> {
    let server = TestDnsServer::start(&[(zone, records)]).await;
    let checker = DnsChecker::with_nameservers(&[server.address()]).expect("resolver");
    let name = DomainName::parse(domain).expect("valid");
    checker.check(&name, &records_for(&name)).await
}

fn status_of(records: &[DnsRecord], purpose: RecordPurpose) -> Vec<RecordStatus> {
    records
        .iter()
        .filter(|r| r.record == purpose)
        .map(|r| r.status)
        .collect()
}

fn record(records: &[DnsRecord], purpose: RecordPurpose) -> &DnsRecord {
    records
        .iter()
        .find(|r| r.record == purpose)
        .expect("record present")
}

#[tokio::test]
async fn all_records_correct_verifies_all_six() {
    let checked = check_zone(
        "example.com",
        "example.com",
        &[MX_OK, SPF_OK, DMARC_OK, DKIM_OK].concat(),
    )
    .await;
    assert_eq!(checked.len(), 6);
    for record in &checked {
        assert_eq!(record.status, RecordStatus::Verified, "{record:?}");
        assert_eq!(record.reason, None, "{record:?}");
        assert!(!record.observed.is_empty(), "{record:?}");
    }
    assert_eq!(
        record(&checked, RecordPurpose::Mx).observed,
        ["10 inbound-smtp.us-east-2.amazonaws.com"]
    );
}

#[tokio::test]
async fn a_txt_record_split_into_two_strings_is_joined() {
    let spf = "@ 300 IN TXT \"v=spf1 include:amazon\" \"ses.com ~all\"\n";
    let checked = check_zone(
        "example.com",
        "example.com",
        &[MX_OK, spf, DMARC_OK, DKIM_OK].concat(),
    )
    .await;
    let spf = record(&checked, RecordPurpose::Spf);
    assert_eq!(spf.status, RecordStatus::Verified, "{spf:?}");
    assert_eq!(spf.observed, ["v=spf1 include:amazonses.com ~all"]);
}

#[tokio::test]
async fn two_spf_records_fail() {
    let spf =
        "@ 300 IN TXT \"v=spf1 include:amazonses.com ~all\"\n@ 300 IN TXT \"v=spf1 mx -all\"\n";
    let checked = check_zone("example.com", "example.com", spf).await;
    let spf = record(&checked, RecordPurpose::Spf);
    assert_eq!(spf.status, RecordStatus::Failed);
    assert!(
        spf.reason
            .as_deref()
            .is_some_and(|r| r.contains("RFC 7208")),
        "{spf:?}"
    );
    assert_eq!(spf.observed.len(), 2);
}

#[tokio::test]
async fn spf_without_the_amazonses_include_fails() {
    let spf = "@ 300 IN TXT \"v=spf1 include:_spf.google.com ~all\"\n";
    let checked = check_zone("example.com", "example.com", spf).await;
    let spf = record(&checked, RecordPurpose::Spf);
    assert_eq!(spf.status, RecordStatus::Failed);
    assert!(
        spf.reason
            .as_deref()
            .is_some_and(|r| r.contains("include:amazonses.com")),
        "{spf:?}"
    );
    assert_eq!(spf.observed, ["v=spf1 include:_spf.google.com ~all"]);
}

#[tokio::test]
async fn nothing_published_leaves_every_record_pending_with_a_reason() {
    let checked = check_zone("example.com", "example.com", "").await;
    for record in &checked {
        assert_eq!(record.status, RecordStatus::Pending, "{record:?}");
        assert!(record.reason.is_some(), "{record:?}");
        assert!(record.observed.is_empty(), "{record:?}");
    }
}

#[tokio::test]
async fn a_wrong_dkim_target_fails_and_shows_what_was_found() {
    let dkim = "tok1._domainkey 300 IN CNAME tok1.dkim.amazonses.com.\n\
                tok2._domainkey 300 IN CNAME wrong.dkim.example.net.\n";
    let checked = check_zone("example.com", "example.com", dkim).await;
    assert_eq!(
        status_of(&checked, RecordPurpose::Dkim),
        [
            RecordStatus::Verified,
            RecordStatus::Failed,
            RecordStatus::Pending
        ]
    );
    let wrong = &checked[4];
    assert_eq!(wrong.observed, ["wrong.dkim.example.net"]);
    assert!(
        wrong
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("tok2.dkim.amazonses.com"))
    );
}

#[tokio::test]
async fn dmarc_with_any_policy_verifies() {
    let dmarc = "_dmarc 300 IN TXT \"v=DMARC1; p=none; rua=mailto:d@example.com\"\n";
    let checked = check_zone("example.com", "example.com", dmarc).await;
    assert_eq!(
        status_of(&checked, RecordPurpose::Dmarc),
        [RecordStatus::Verified]
    );
}

#[tokio::test]
async fn a_subdomain_inherits_the_organizational_dmarc_record() {
    let checked = check_zone("mail.example.com", "example.com", DMARC_OK).await;
    let dmarc = record(&checked, RecordPurpose::Dmarc);
    assert_eq!(dmarc.fqdn, "_dmarc.mail.example.com");
    assert_eq!(dmarc.status, RecordStatus::Verified);
    assert!(
        dmarc
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("organizational")),
        "{dmarc:?}"
    );
}

#[tokio::test]
async fn a_foreign_mx_with_lower_preference_fails() {
    let mx = "@ 300 IN MX 10 inbound-smtp.us-east-2.amazonaws.com.\n@ 300 IN MX 5 mx.other-provider.example.\n";
    let checked = check_zone("example.com", "example.com", mx).await;
    let mx = record(&checked, RecordPurpose::Mx);
    assert_eq!(mx.status, RecordStatus::Failed);
    assert!(
        mx.reason
            .as_deref()
            .is_some_and(|r| r.contains("mx.other-provider.example")),
        "{mx:?}"
    );
    assert_eq!(
        mx.observed,
        [
            "5 mx.other-provider.example",
            "10 inbound-smtp.us-east-2.amazonaws.com"
        ]
    );
}

#[tokio::test]
async fn a_record_published_after_a_negative_answer_is_seen_on_the_next_check() {
    let server = TestDnsServer::start(&[("example.com", "")]).await;
    let checker = DnsChecker::with_nameservers(&[server.address()]).expect("resolver");
    let name = DomainName::parse("example.com").expect("valid");
    let first = checker.check(&name, &records_for(&name)).await;
    assert_eq!(
        record(&first, RecordPurpose::Spf).status,
        RecordStatus::Pending
    );

    server.publish(0, SPF_OK).await;
    let second = checker.check(&name, &first).await;
    assert_eq!(
        record(&second, RecordPurpose::Spf).status,
        RecordStatus::Verified
    );
}

#[tokio::test]
async fn a_refused_lookup_keeps_the_previous_status() {
    // The server answers REFUSED for a zone it does not serve.
    let server = TestDnsServer::start(&[("other.example", "")]).await;
    let checker = DnsChecker::with_nameservers(&[server.address()]).expect("resolver");
    let name = DomainName::parse("example.com").expect("valid");
    let mut previous = records_for(&name);
    for record in &mut previous {
        record.status = RecordStatus::Verified;
        record.observed = vec!["seen before".into()];
    }
    let checked = checker.check(&name, &previous).await;
    for record in &checked {
        assert_eq!(record.status, RecordStatus::Verified, "{record:?}");
        assert_eq!(record.observed, ["seen before"]);
        assert!(
            record
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("could not be completed")),
            "{record:?}"
        );
    }
}

#[tokio::test]
async fn a_silent_server_fails_no_record_and_every_lookup_is_sent_at_once() {
    let server = SilentDnsServer::start().await;
    let checker = DnsChecker::with_nameservers(&[server.address()]).expect("resolver");
    let name = DomainName::parse("example.com").expect("valid");
    let mut previous = records_for(&name);
    previous[0].status = RecordStatus::Verified;
    let checked = checker.check(&name, &previous).await;
    assert_eq!(checked[0].status, RecordStatus::Verified);
    assert!(
        checked[1..]
            .iter()
            .all(|r| r.status == RecordStatus::Pending)
    );
    assert!(checked.iter().all(|r| {
        r.reason
            .as_deref()
            .is_some_and(|r| r.contains("could not be completed"))
    }));

    // Concurrency, not speed: all six first queries reach the server before the
    // first one could have timed out (2 s). Sequential lookups would send one.
    let arrivals = server.arrivals();
    let first = arrivals.first().copied().expect("queries arrived");
    let before_first_timeout = arrivals
        .iter()
        .filter(|t| t.duration_since(first) < Duration::from_secs(1))
        .count();
    assert!(
        before_first_timeout >= 6,
        "{before_first_timeout} queries in the first second"
    );
}
