//! Verification on the path a deployed verify takes: Knot DNS authoritative servers
//! on loopback addresses (a `com.` zone delegating to the situation zones, child
//! zones delegated below them, a lame server) and unbound as the recursive
//! resolver, with its negative cache, all on one port (53 as root, another without:
//! `DNS_HIERARCHY_AUTHORITATIVE_PORT`). `scripts/dns-hierarchy start` runs them
//! (scripts/test does) and names the resolver in `DNS_HIERARCHY_RESOLVER`; these
//! tests are ignored in a plain `cargo test` and fail without it when run. The
//! zones are tests/dns-hierarchy/{provider,child}/*.zone, one per situation.

use std::net::SocketAddr;
use std::process::Command;

use futures::future::join_all;
use hickory_resolver::Resolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use shared::DomainName;
use shared::model::{DnsRecord, RecordPurpose, RecordStatus};
use shared::network::AllowedNetworks;
use shared::records::expected_records;
use shared::verify::DnsChecker;

pub(crate) fn resolver_address() -> SocketAddr {
    let address = std::env::var("DNS_HIERARCHY_RESOLVER").expect(
        "DNS_HIERARCHY_RESOLVER is not set: these tests need the loopback DNS hierarchy; \
         run `eval \"$(scripts/dns-hierarchy start)\"` (as root) or scripts/test",
    );
    address
        .parse()
        .expect("DNS_HIERARCHY_RESOLVER is an address:port")
}

/// The port every server of the hierarchy answers on, which a check asks the
/// authoritative servers on: `DNS_HIERARCHY_AUTHORITATIVE_PORT`, as
/// `scripts/dns-hierarchy start` sets it (53 as root; another port without root,
/// `DNS_HIERARCHY_PORT`), else the resolver's port (the hierarchy shares one).
pub(crate) fn authoritative_port() -> u16 {
    match std::env::var("DNS_HIERARCHY_AUTHORITATIVE_PORT") {
        Ok(port) if !port.is_empty() => port
            .parse()
            .expect("DNS_HIERARCHY_AUTHORITATIVE_PORT is a port number"),
        _ => resolver_address().port(),
    }
}

/// The networks the hierarchy's name servers are on, which a check may ask only
/// because the operator allows them: `DNS_ALLOWED_PRIVATE_NETWORKS`, as
/// `scripts/dns-hierarchy start` sets it (127.0.0.0/8).
pub(crate) fn hierarchy_networks() -> AllowedNetworks {
    let value = std::env::var("DNS_ALLOWED_PRIVATE_NETWORKS").expect(
        "DNS_ALLOWED_PRIVATE_NETWORKS is not set: `scripts/dns-hierarchy start` sets it with \
         DNS_HIERARCHY_RESOLVER (the hierarchy's servers are on loopback addresses)",
    );
    AllowedNetworks::parse(&value).expect("DNS_ALLOWED_PRIVATE_NETWORKS is a list of networks")
}

/// A checker as a deployment on the hierarchy runs one: the recursive resolver,
/// and the hierarchy's loopback networks allowed (its name servers asked on the
/// hierarchy's port).
pub(crate) fn hierarchy_checker() -> DnsChecker {
    DnsChecker::with_nameservers(&[resolver_address()])
        .expect("resolver")
        .with_authoritative_port(authoritative_port())
        .allowing(hierarchy_networks())
}

fn records_for(name: &DomainName) -> Vec<DnsRecord> {
    let tokens: Vec<String> = ["tok1", "tok2", "tok3"].map(String::from).to_vec();
    expected_records(name, &tokens, "us-east-2")
}

async fn check(domain: &str) -> Vec<DnsRecord> {
    let checker = hierarchy_checker();
    let name = DomainName::parse(domain).expect("valid name");
    checker.check(&name, &records_for(&name)).await
}

#[derive(Clone, Copy, Debug)]
enum Which {
    Mx,
    Spf,
    Dmarc,
    /// The DKIM record of token 1, 2 or 3.
    Dkim(usize),
}

fn pick(records: &[DnsRecord], which: Which) -> &DnsRecord {
    let (purpose, nth) = match which {
        Which::Mx => (RecordPurpose::Mx, 0),
        Which::Spf => (RecordPurpose::Spf, 0),
        Which::Dmarc => (RecordPurpose::Dmarc, 0),
        Which::Dkim(n) => (RecordPurpose::Dkim, n - 1),
    };
    records
        .iter()
        .filter(|r| r.record == purpose)
        .nth(nth)
        .expect("the record is there")
}

/// One situation: a zone, the record it is about, what it must be judged.
struct Situation {
    domain: &'static str,
    which: Which,
    status: RecordStatus,
    /// Words the reason must contain; `None`: no reason at all.
    reason: Option<&'static str>,
    /// The suggested value, when one must be given.
    suggested: Option<&'static str>,
}

const fn case(
    domain: &'static str,
    which: Which,
    status: RecordStatus,
    reason: Option<&'static str>,
) -> Situation {
    Situation {
        domain,
        which,
        status,
        reason,
        suggested: None,
    }
}

const VERIFIED: RecordStatus = RecordStatus::Verified;
const FAILED: RecordStatus = RecordStatus::Failed;
const PENDING: RecordStatus = RecordStatus::Pending;
const SES_SPF: &str = "v=spf1 include:amazonses.com ~all";

fn situations() -> Vec<Situation> {
    vec![
        // Receivers fail the mail, so must we.
        Situation {
            suggested: Some(SES_SPF),
            ..case(
                "spf-after-all.com",
                Which::Spf,
                FAILED,
                Some("comes after ~all"),
            )
        },
        case(
            "spf-syntax.com",
            Which::Spf,
            FAILED,
            Some("syntax error at ip4:192.0.2"),
        ),
        Situation {
            suggested: Some(SES_SPF),
            ..case(
                "spf-space.com",
                Which::Spf,
                FAILED,
                Some("starts with a space"),
            )
        },
        Situation {
            suggested: Some(
                "v=spf1 include:amazonses.com a mx a:h1.spf-eleven.com a:h2.spf-eleven.com a:h3.spf-eleven.com a:h4.spf-eleven.com a:h5.spf-eleven.com a:h6.spf-eleven.com a:h7.spf-eleven.com a:h8.spf-eleven.com ~all",
            ),
            ..case(
                "spf-eleven.com",
                Which::Spf,
                FAILED,
                Some("more than 10 DNS-querying terms"),
            )
        },
        case(
            "dmarc-unquoted.com",
            Which::Dmarc,
            FAILED,
            Some("only v=DMARC1"),
        ),
        // A subdomain without DMARC of its own falls back to the organizational
        // domain's, which receivers discard: no DMARC applies.
        case(
            "mail.dmarc-org-misordered.com",
            Which::Dmarc,
            FAILED,
            Some("does not start with v=DMARC1"),
        ),
        case(
            "mail.dmarc-org-two.com",
            Which::Dmarc,
            FAILED,
            Some("2 DMARC records are at _dmarc.dmarc-org-two.com"),
        ),
        // Receivers pass the mail, so must we.
        case("spf-ten.com", Which::Spf, VERIFIED, None),
        case("spf-trailing-dot.com", Which::Spf, VERIFIED, None),
        case("spf-nested.com", Which::Spf, VERIFIED, None),
        case("spf-redirect.com", Which::Spf, VERIFIED, None),
        case(
            "dmarc-cname.com",
            Which::Dmarc,
            VERIFIED,
            Some("through a CNAME"),
        ),
        case("dmarc-rua-only.com", Which::Dmarc, VERIFIED, Some("p=none")),
        // Present but broken: failed, with the fix named.
        Situation {
            suggested: Some(SES_SPF),
            ..case(
                "spf-quoted-value.com",
                Which::Spf,
                FAILED,
                Some("quotation marks"),
            )
        },
        case(
            "spf-unquoted.com",
            Which::Spf,
            FAILED,
            Some("double quotes"),
        ),
        Situation {
            suggested: Some(SES_SPF),
            ..case(
                "spf-neutral.com",
                Which::Spf,
                FAILED,
                Some("neutral instead of pass"),
            )
        },
        case(
            "dkim-txt.com",
            Which::Dkim(1),
            FAILED,
            Some("TXT record (a DKIM key) stands where the CNAME belongs"),
        ),
        case(
            "dmarc-at-apex.com",
            Which::Dmarc,
            FAILED,
            Some("only from _dmarc.dmarc-at-apex.com"),
        ),
        case(
            "dkim-appended.com",
            Which::Dkim(1),
            FAILED,
            Some("enter only tok1._domainkey as the host"),
        ),
        // Delegations are followed, never read as empty.
        case("delegated-dkim.com", Which::Dkim(1), VERIFIED, None),
        case("delegated-dkim.com", Which::Dkim(2), VERIFIED, None),
        case("delegated-dkim.com", Which::Dkim(3), VERIFIED, None),
        case("delegated-dmarc.com", Which::Dmarc, VERIFIED, None),
        // The right diagnosis.
        case(
            "wildcard.com",
            Which::Dkim(1),
            PENDING,
            Some("wildcard record"),
        ),
        case(
            "proxied.com",
            Which::Dkim(1),
            FAILED,
            Some("proxied or flattened"),
        ),
        case("null-mx.com", Which::Mx, FAILED, Some("null MX")),
        // Plain zones, on servers that make it hard.
        case("all-correct.com", Which::Mx, VERIFIED, None),
        case("all-correct.com", Which::Spf, VERIFIED, None),
        case("all-correct.com", Which::Dmarc, VERIFIED, None),
        case("all-correct.com", Which::Dkim(1), VERIFIED, None),
        case("lame-ns.com", Which::Mx, VERIFIED, None),
        case("lame-ns.com", Which::Spf, VERIFIED, None),
        case("lame-ns.com", Which::Dmarc, VERIFIED, None),
        case("lame-ns.com", Which::Dkim(3), VERIFIED, None),
        case("large-txt.com", Which::Spf, VERIFIED, None),
    ]
}

#[tokio::test]
#[ignore = "needs the DNS hierarchy: scripts/test"]
async fn every_situation_is_judged_as_receivers_would() {
    let situations = situations();
    let mut domains: Vec<&str> = situations.iter().map(|s| s.domain).collect();
    domains.dedup();
    let checked = join_all(domains.iter().map(|d| async move { (*d, check(d).await) })).await;
    let mut wrong = Vec::new();
    for situation in &situations {
        let (_, records) = checked
            .iter()
            .find(|(d, _)| *d == situation.domain)
            .expect("checked");
        let record = pick(records, situation.which);
        let reason_ok = match (situation.reason, &record.reason) {
            (None, None) => true,
            (Some(words), Some(reason)) => reason.contains(words),
            _ => false,
        };
        let suggestion_ok = situation
            .suggested
            .is_none_or(|s| record.suggested_value.as_deref() == Some(s));
        if record.status != situation.status || !reason_ok || !suggestion_ok {
            wrong.push(format!(
                "{} {:?}: expected {:?} with reason containing {:?} and suggestion {:?}; got {:?}",
                situation.domain,
                situation.which,
                situation.status,
                situation.reason,
                situation.suggested,
                record
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} situations judged wrong:\n{}",
        wrong.len(),
        situations.len(),
        wrong.join("\n")
    );
}

/// One `knotc` transaction at a time in this process: Knot allows one open
/// transaction per zone, and tests run in parallel.
static KNOTC: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `knotc` on the Knot server `server` ("provider" or "child"): one transaction.
pub(crate) fn publish(server: &str, zone: &str, owner: &str, record: &[&str]) {
    let _one_at_a_time = KNOTC
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let directory = std::env::var("DNS_HIERARCHY_DIR")
        .expect("DNS_HIERARCHY_DIR is set with DNS_HIERARCHY_RESOLVER");
    let socket = format!("{directory}/{server}/knot.sock");
    let mut set = vec!["zone-set", zone, owner, "300"];
    set.extend_from_slice(record);
    for arguments in [vec!["zone-begin", zone], set, vec!["zone-commit", zone]] {
        let output = Command::new("knotc")
            .arg("-s")
            .arg(&socket)
            .args(&arguments)
            .output()
            .expect("knotc runs");
        assert!(output.status.success(), "knotc {arguments:?}: {output:?}");
    }
}

/// A resolver that asks the hierarchy's recursive resolver, cache and all (on its
/// port: 53 only as root).
fn through_the_cache() -> hickory_resolver::TokioResolver {
    let resolver = resolver_address();
    let mut server = NameServerConfig::udp_and_tcp(resolver.ip());
    for connection in &mut server.connections {
        connection.port = resolver.port();
    }
    let config = ResolverConfig::from_name_servers(vec![server]);
    Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        .build()
        .expect("resolver")
}

/// A record published after the resolver cached its absence is seen on the next
/// check: asked of the zone's own servers, not of the resolver's negative cache.
#[tokio::test]
#[ignore = "needs the DNS hierarchy: scripts/test"]
async fn a_record_published_after_a_negative_answer_is_seen_at_once() {
    let label = format!("t{}", uuid::Uuid::new_v4().simple());
    let domain = format!("{label}.late-publish.com");
    let resolver = through_the_cache();
    let cached = resolver.txt_lookup(format!("{domain}.")).await;
    assert!(cached.is_err(), "nothing is published yet: {cached:?}");
    assert_eq!(pick(&check(&domain).await, Which::Spf).status, PENDING);

    publish(
        "provider",
        "late-publish.com",
        &label,
        &["TXT", "\"v=spf1 include:amazonses.com ~all\""],
    );

    let cached = resolver.txt_lookup(format!("{domain}.")).await;
    assert!(
        cached.is_err(),
        "the resolver still answers from its negative cache: {cached:?}"
    );
    let spf = pick(&check(&domain).await, Which::Spf).clone();
    assert_eq!(spf.status, VERIFIED, "{spf:?}");
}

/// A claim's proof is looked up as a record is checked: published after the
/// resolver cached its absence, it is found on the next verify of the claim.
#[tokio::test]
#[ignore = "needs the DNS hierarchy: scripts/test"]
async fn a_claim_proof_published_after_a_negative_answer_is_found_at_once() {
    let label = format!("t{}", uuid::Uuid::new_v4().simple());
    let name = DomainName::parse(&format!("{label}.late-publish.com")).expect("valid");
    let proof = shared::claims::proof_name(&name);
    let checker = hierarchy_checker();
    let resolver = through_the_cache();
    assert!(resolver.txt_lookup(format!("{proof}.")).await.is_err());
    assert_eq!(
        checker.claim_proof(&name, &proof).await,
        (shared::verify::Answer::Empty, vec![])
    );

    let value = "domains-claim=Xy12ab34Cd56ef78Gh90ij12Kl34mn56";
    publish(
        "provider",
        "late-publish.com",
        &format!("_domains-claim.{label}"),
        &["TXT", &format!("\"{value}\"")],
    );

    assert!(
        resolver.txt_lookup(format!("{proof}.")).await.is_err(),
        "the resolver still answers from its negative cache"
    );
    assert_eq!(
        checker.claim_proof(&name, &proof).await,
        (
            shared::verify::Answer::Found(vec![value.to_string()]),
            vec![]
        )
    );
}

/// The same in a zone one of whose name servers is lame (refuses the zone): the
/// other server is asked, not the resolver's negative cache.
#[tokio::test]
#[ignore = "needs the DNS hierarchy: scripts/test"]
async fn a_record_published_in_a_zone_with_a_lame_server_is_seen_at_once() {
    let label = format!("t{}", uuid::Uuid::new_v4().simple());
    let domain = format!("{label}.lame-ns.com");
    let resolver = through_the_cache();
    let cached = resolver.txt_lookup(format!("{domain}.")).await;
    assert!(cached.is_err(), "nothing is published yet: {cached:?}");

    publish(
        "provider",
        "lame-ns.com",
        &label,
        &["TXT", "\"v=spf1 include:amazonses.com ~all\""],
    );

    for _ in 0..5 {
        let spf = pick(&check(&domain).await, Which::Spf).clone();
        assert_eq!(spf.status, VERIFIED, "{spf:?}");
    }
}

/// The same inside a delegated child zone: only following the parent's referral
/// to the child's server sees the new record (the resolver still has its absence
/// cached), so this fails if a referral is read as "nothing there".
#[tokio::test]
#[ignore = "needs the DNS hierarchy: scripts/test"]
async fn a_record_published_in_a_delegated_zone_is_seen_through_the_referral() {
    let token = format!("t{}", uuid::Uuid::new_v4().simple());
    let fqdn = format!("{token}._domainkey.delegated-dkim.com");
    let resolver = through_the_cache();
    let cached = resolver
        .lookup(
            format!("{fqdn}."),
            hickory_resolver::proto::rr::RecordType::CNAME,
        )
        .await;
    assert!(cached.is_err(), "nothing is published yet: {cached:?}");

    let name = DomainName::parse("delegated-dkim.com").expect("valid name");
    let records = expected_records(
        &name,
        &[token.clone(), "tok2".into(), "tok3".into()],
        "us-east-2",
    );
    let checker = hierarchy_checker();
    assert_eq!(
        pick(&checker.check(&name, &records).await, Which::Dkim(1)).status,
        PENDING
    );

    publish(
        "child",
        "_domainkey.delegated-dkim.com",
        &token,
        &["CNAME", &format!("{token}.dkim.amazonses.com.")],
    );

    let cached = resolver
        .lookup(
            format!("{fqdn}."),
            hickory_resolver::proto::rr::RecordType::CNAME,
        )
        .await;
    assert!(
        cached.is_err(),
        "the resolver still answers from its negative cache: {cached:?}"
    );
    let dkim = pick(&checker.check(&name, &records).await, Which::Dkim(1)).clone();
    assert_eq!(dkim.status, VERIFIED, "{dkim:?}");
}
