//! Verification against a real DNS server on 127.0.0.1 (hickory-server in process).

use std::time::Duration;

use shared::DomainName;
use shared::model::{DnsRecord, RecordPurpose, RecordStatus};
use shared::network::AllowedNetworks;
use shared::records::expected_records;
use shared::verify::{DnsChecker, DnsSettings, LazyDnsChecker};
use test_support::dns::SilentDnsServer;
use test_support::{ClosedPort, TestDnsServer};

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
    let spf = "@ 300 IN TXT \"v=spf1 include:_spf.example.com ~all\"\n\
               _spf 300 IN TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n";
    let checked = check_zone("example.com", "example.com", spf).await;
    let spf = record(&checked, RecordPurpose::Spf);
    assert_eq!(spf.status, RecordStatus::Failed, "{spf:?}");
    assert!(
        spf.reason
            .as_deref()
            .is_some_and(|r| r.contains("include:amazonses.com")),
        "{spf:?}"
    );
    assert_eq!(spf.observed, ["v=spf1 include:_spf.example.com ~all"]);
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

    // Concurrency, not speed: the six record lookups reach the server together,
    // within one second (a lookup waits 2 s before it times out, so sequential
    // lookups would arrive one per window). The zone's NS lookup comes first.
    let arrivals = server.arrivals();
    let busiest_second = arrivals
        .iter()
        .map(|start| {
            arrivals
                .iter()
                .filter(|t| **t >= *start && t.duration_since(*start) < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(
        busiest_second >= 6,
        "at most {busiest_second} queries in any second"
    );
}

#[tokio::test]
async fn records_under_an_appended_domain_are_diagnosed() {
    // Entered as "mail.example.com" into a form that appends the zone.
    let zone = "mail.example.com 300 IN MX 10 inbound-smtp.us-east-2.amazonaws.com.\n\
                mail.example.com 300 IN TXT \"v=spf1 include:amazonses.com ~all\"\n\
                _dmarc.mail.example.com 300 IN TXT \"v=DMARC1; p=reject;\"\n\
                tok1._domainkey.mail.example.com 300 IN CNAME tok1.dkim.amazonses.com.\n";
    let checked = check_zone("mail.example.com", "example.com", zone).await;
    for purpose in [RecordPurpose::Mx, RecordPurpose::Spf, RecordPurpose::Dmarc] {
        let record = record(&checked, purpose);
        assert_eq!(record.status, RecordStatus::Failed, "{record:?}");
        let reason = record.reason.as_deref().unwrap_or("");
        assert!(
            reason.contains(&format!("{}.example.com", record.fqdn))
                && reason.contains("adds the domain to the host you enter"),
            "{record:?}"
        );
        assert!(!record.observed.is_empty(), "{record:?}");
    }
    assert_eq!(checked[3].status, RecordStatus::Failed, "{:?}", checked[3]);
    // A DKIM name is given in full, so the host to enter is the part before the zone.
    assert!(
        checked[3]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("enter only tok1._domainkey.mail as the host")),
        "{:?}",
        checked[3]
    );
}

#[tokio::test]
async fn a_proxied_dkim_name_is_diagnosed() {
    let zone = "tok1._domainkey 300 IN A 104.16.1.1\ntok1._domainkey 300 IN AAAA 2606:4700::1\n";
    let checked = check_zone("example.com", "example.com", zone).await;
    let dkim = &checked[3];
    assert_eq!(dkim.status, RecordStatus::Failed);
    assert!(
        dkim.reason
            .as_deref()
            .is_some_and(|r| r.contains("proxied")),
        "{dkim:?}"
    );
    assert_eq!(dkim.observed, ["104.16.1.1", "2606:4700::1"]);
}

#[tokio::test]
async fn spf_without_the_include_suggests_the_merged_record() {
    let spf = "@ 300 IN TXT \"v=spf1 include:_spf.example.com -all\"\n\
               _spf 300 IN TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n";
    let checked = check_zone("example.com", "example.com", spf).await;
    let spf = record(&checked, RecordPurpose::Spf);
    assert_eq!(
        spf.suggested_value.as_deref(),
        Some("v=spf1 include:_spf.example.com include:amazonses.com -all")
    );
    let two = "@ 300 IN TXT \"v=spf1 include:_spf.google.com -all\"\n@ 300 IN TXT \"v=spf1 include:amazonses.com ~all\"\n";
    let checked = check_zone("example.com", "example.com", two).await;
    assert_eq!(
        record(&checked, RecordPurpose::Spf)
            .suggested_value
            .as_deref(),
        Some("v=spf1 include:_spf.google.com include:amazonses.com -all")
    );
    let fine = check_zone("example.com", "example.com", SPF_OK).await;
    assert_eq!(record(&fine, RecordPurpose::Spf).suggested_value, None);
}

#[tokio::test]
async fn an_spf_record_needing_more_than_ten_lookups_is_a_warning() {
    let zone = "@ 300 IN TXT \"v=spf1 include:amazonses.com include:s1.example.com include:s2.example.com ~all\"\n\
                s1 300 IN TXT \"v=spf1 a mx ptr exists:x.example.com include:s3.example.com -all\"\n\
                s2 300 IN TXT \"v=spf1 a -all\"\n\
                s3 300 IN TXT \"v=spf1 a mx a:b.example.com mx:c.example.com -all\"\n";
    let checked = check_zone("example.com", "example.com", zone).await;
    let spf = record(&checked, RecordPurpose::Spf);
    assert_eq!(spf.status, RecordStatus::Verified);
    // include:amazonses.com 1 + include:s1 (1 + a mx ptr exists 4 + include:s3 (1 + 4)) + include:s2 (1 + 1)
    assert!(
        spf.reason
            .as_deref()
            .is_some_and(|r| r.contains("13 DNS lookups")),
        "{spf:?}"
    );
    let light = check_zone("example.com", "example.com", "@ 300 IN TXT \"v=spf1 include:amazonses.com include:s2.example.com ~all\"\ns2 300 IN TXT \"v=spf1 a -all\"\n").await;
    assert_eq!(record(&light, RecordPurpose::Spf).reason, None);
}

#[tokio::test]
async fn several_dmarc_records_fail() {
    let dmarc =
        "_dmarc 300 IN TXT \"v=DMARC1; p=none\"\n_dmarc 300 IN TXT \"v=DMARC1; p=reject\"\n";
    let checked = check_zone("example.com", "example.com", dmarc).await;
    let dmarc = record(&checked, RecordPurpose::Dmarc);
    assert_eq!(dmarc.status, RecordStatus::Failed);
    assert_eq!(dmarc.observed.len(), 2);
    assert!(
        dmarc
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("RFC 7489")),
        "{dmarc:?}"
    );
}

#[tokio::test]
async fn cname_chains_are_followed_and_said() {
    let zone = "tok1._domainkey 300 IN CNAME alias.example.com.\n\
                alias 300 IN CNAME tok1.dkim.amazonses.com.\n\
                _dmarc 300 IN CNAME policy.example.com.\n\
                policy 300 IN TXT \"v=DMARC1; p=none\"\n";
    let checked = check_zone("example.com", "example.com", zone).await;
    let dkim = &checked[3];
    assert_eq!(dkim.status, RecordStatus::Verified, "{dkim:?}");
    assert!(
        dkim.reason.as_deref().is_some_and(|r| r.contains("chain")),
        "{dkim:?}"
    );
    assert_eq!(
        dkim.observed,
        ["alias.example.com", "tok1.dkim.amazonses.com"]
    );
    let dmarc = record(&checked, RecordPurpose::Dmarc);
    assert_eq!(dmarc.status, RecordStatus::Verified, "{dmarc:?}");
    assert!(
        dmarc
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("policy.example.com")),
        "{dmarc:?}"
    );
}

#[tokio::test]
async fn the_zones_authoritative_servers_are_asked_directly() {
    // The authoritative server has the SPF record; the resolver's copy does not
    // (as a resolver that cached the earlier negative answer would answer).
    let authoritative = TestDnsServer::start(&[("example.com", SPF_OK)]).await;
    let delegation = "@ 300 IN NS ns1.example.com.\nns1 300 IN A 127.0.0.1\n";
    let stale_resolver = TestDnsServer::start(&[("example.com", delegation)]).await;
    let name = DomainName::parse("example.com").expect("valid");

    let direct = DnsChecker::with_nameservers(&[stale_resolver.address()])
        .expect("resolver")
        .with_authoritative_port(authoritative.address().port())
        .allowing(loopback());
    let checked = direct.check(&name, &records_for(&name)).await;
    assert_eq!(
        record(&checked, RecordPurpose::Spf).status,
        RecordStatus::Verified
    );

    // A name server on loopback is asked only where the operator allows it:
    // otherwise the record is not checked, and says why (no resolver stands in).
    let not_allowed = DnsChecker::with_nameservers(&[stale_resolver.address()])
        .expect("resolver")
        .with_authoritative_port(authoritative.address().port());
    let checked = not_allowed.check(&name, &records_for(&name)).await;
    let spf = record(&checked, RecordPurpose::Spf);
    assert_eq!(spf.status, RecordStatus::Pending, "{spf:?}");
    assert!(
        spf.reason.as_deref().is_some_and(|r| r.contains(
            "the name servers of example.com are at non-public addresses (127.0.0.1: loopback)"
        )),
        "{spf:?}"
    );

    // Where the authoritative servers cannot be reached, the resolver answers.
    let closed = ClosedPort::hold();
    let unreachable = DnsChecker::with_nameservers(&[stale_resolver.address()])
        .expect("resolver")
        .with_authoritative_port(closed.port())
        .allowing(loopback());
    let checked = unreachable.check(&name, &records_for(&name)).await;
    let spf = record(&checked, RecordPurpose::Spf);
    assert_eq!(spf.status, RecordStatus::Pending, "{spf:?}");
    assert!(
        spf.reason.as_deref().is_some_and(|r| r.contains("No SPF")),
        "{spf:?}"
    );
}

/// Loopback, which the in-process servers are on: allowed as
/// `DNS_ALLOWED_PRIVATE_NETWORKS=127.0.0.0/8` would.
fn loopback() -> AllowedNetworks {
    AllowedNetworks::parse("127.0.0.0/8").expect("a network")
}

#[tokio::test]
async fn a_checker_built_on_first_use_checks_like_one_built_at_start_up() {
    let server =
        TestDnsServer::start(&[("example.com", &[MX_OK, SPF_OK, DMARC_OK, DKIM_OK].concat())])
            .await;
    let name = DomainName::parse("example.com").expect("valid");
    let settings = DnsSettings {
        nameservers: Some(vec![server.address()]),
        ..DnsSettings::default()
    };
    let prepared = LazyDnsChecker::prepared(settings.clone()).expect("resolver");
    let on_first_use = LazyDnsChecker::on_first_use(settings);
    let at_start_up = prepared.check(&name, &records_for(&name)).await;
    let first = on_first_use.check(&name, &records_for(&name)).await;
    let second = on_first_use.check(&name, &records_for(&name)).await;
    assert!(
        at_start_up
            .iter()
            .all(|r| r.status == RecordStatus::Verified),
        "{at_start_up:?}"
    );
    assert_eq!(first, at_start_up);
    assert_eq!(second, at_start_up);
}
