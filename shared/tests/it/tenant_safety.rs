//! Tenant safety on the DNS path, each attack built on the loopback hierarchy
//! (Knot DNS and unbound: scripts/dns-hierarchy; these tests are ignored in a
//! plain `cargo test` and fail without it when run):
//!
//! - a zone's wildcard CNAME into an attacker's zone, whose server also answers
//!   for the victim's name: the attacker's servers are never asked, so a claim
//!   proof published there takes nothing and no record is judged from there;
//! - name servers at addresses the operator did not allow: never sent a packet
//!   (a listener on each counts), the records say why they are not checked;
//! - a zone built to make one check ask many questions: it stops at 64;
//! - name servers that never close a TCP connection (an in-process server, no
//!   hierarchy needed): a check's connections are closed when it ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use lambda_http::http::StatusCode;
use serde_json::json;
use shared::model::{DnsRecord, RecordPurpose, RecordStatus};
use shared::network::AllowedNetworks;
use shared::records::expected_records;
use shared::store::InMemoryStore;
use shared::verify::{DnsChecker, MAX_QUESTIONS};
use shared::{App, DomainName};

use crate::common::*;
use crate::dns_hierarchy::{authoritative_port, hierarchy_checker, publish, resolver_address};

/// The embedded default on the hierarchy: a deployment's DNS path, in memory.
fn hierarchy_app() -> App {
    App::new(
        Arc::new(InMemoryStore::new()),
        Arc::new(shared::identity::LocalIdentities::new()),
        hierarchy_checker().into(),
        "us-east-2",
    )
    .with_manual_check_interval(std::time::Duration::ZERO)
}

fn unique_label() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

fn records_of(name: &DomainName) -> Vec<DnsRecord> {
    expected_records(
        name,
        &["tok1".to_string(), "tok2".into(), "tok3".into()],
        "us-east-2",
    )
}

fn record(records: &[DnsRecord], purpose: RecordPurpose) -> &DnsRecord {
    records
        .iter()
        .find(|r| r.record == purpose)
        .expect("the record is there")
}

/// wild-victim.com answers every other name with `CNAME evil.attacker-host.com`;
/// the attacker delegated that name to its own server, which also serves a zone
/// `sub.wild-victim.com` it has no right to. A resolver asked for the NS records
/// of `<x>.sub.wild-victim.com` answers with the CNAME and the attacker's NS
/// records: trusting those made the attacker's server the name's "authoritative"
/// one, and the attacker's TXT record there its proof.
#[tokio::test]
#[ignore = "needs the DNS hierarchy: scripts/test"]
async fn a_proof_on_the_servers_behind_a_wildcard_cname_takes_nothing() {
    let app = hierarchy_app();
    let label = unique_label();
    let name = format!("{label}.sub.wild-victim.com");
    let created = create(&name).org("org_victim").send(&app).await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    let claimed = Call::new(Endpoint::CreateClaim)
        .body(&json!({ "name": name }).to_string())
        .org("org_attacker")
        .send(&app)
        .await;
    assert_eq!(claimed.status, StatusCode::CREATED, "{claimed:?}");
    let value = claimed.body["record"]["value"]
        .as_str()
        .expect("value")
        .to_string();
    // On the attacker's own server, in the zone it made up for the name.
    publish(
        "child",
        "sub.wild-victim.com",
        &format!("_domains-claim.{label}"),
        &["TXT", &format!("\"{value}\"")],
    );

    let verified = Call::new(Endpoint::VerifyClaim)
        .domain(&name)
        .org("org_attacker")
        .send(&app)
        .await;
    assert_eq!(verified.status, StatusCode::OK, "{verified:?}");
    assert_eq!(verified.body["status"], "pending", "{verified:?}");
    assert!(
        verified.body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("CNAME to evil.attacker-host.com")),
        "{verified:?}"
    );
    assert_ne!(verified.body["observed"], json!([value]), "{verified:?}");
    let holder = app
        .store
        .holder(&DomainName::parse(&name).expect("name"))
        .await
        .expect("holder")
        .map(|h| h.organization_id);
    assert_eq!(holder.as_deref(), Some("org_victim"));
    let victims = Call::new(Endpoint::Get)
        .domain(&name)
        .org("org_victim")
        .send(&app)
        .await;
    assert_eq!(
        victims.status,
        StatusCode::OK,
        "the victim keeps its domain"
    );
}

/// A name server the victim no longer uses, whose name the attacker took over,
/// with a copy of the zone and the proof: listed by the zone's own NS records
/// only (stale-ns-victim.com: a resolver trusting them may even learn the
/// attacker's answers for the zone's other servers' addresses), or by the
/// delegation in com. too (stale-delegation-victim.com). The zone's servers are
/// taken from its parent's delegation, and a proof must be answered alike by
/// every one of them that answers: the attacker's copy takes nothing.
#[tokio::test]
#[ignore = "needs the DNS hierarchy: scripts/test"]
async fn a_proof_on_a_stale_name_server_of_the_zone_takes_nothing() {
    for name in ["stale-ns-victim.com", "stale-delegation-victim.com"] {
        let app = hierarchy_app();
        assert_eq!(
            create(name).org("org_victim").send(&app).await.status,
            StatusCode::CREATED
        );
        let claimed = Call::new(Endpoint::CreateClaim)
            .body(&json!({ "name": name }).to_string())
            .org("org_attacker")
            .send(&app)
            .await;
        let value = claimed.body["record"]["value"]
            .as_str()
            .expect("value")
            .to_string();
        publish(
            "child",
            name,
            "_domains-claim",
            &["TXT", &format!("\"{value}\"")],
        );
        // Servers are asked in turn: several verifies would meet the stale one first.
        for _ in 0..4 {
            let verified = Call::new(Endpoint::VerifyClaim)
                .domain(name)
                .org("org_attacker")
                .send(&app)
                .await;
            assert_eq!(verified.body["status"], "pending", "{name}: {verified:?}");
        }
        let holder = app
            .store
            .holder(&DomainName::parse(name).expect("name"))
            .await
            .expect("holder")
            .map(|h| h.organization_id);
        assert_eq!(holder.as_deref(), Some("org_victim"), "{name}");
    }
    // Where the delegation names it, the servers disagree, and the claim says so.
    let app = hierarchy_app();
    let name = "stale-delegation-victim.com";
    create(name).org("org_victim").send(&app).await;
    Call::new(Endpoint::CreateClaim)
        .body(&json!({ "name": name }).to_string())
        .org("org_attacker")
        .send(&app)
        .await;
    let verified = Call::new(Endpoint::VerifyClaim)
        .domain(name)
        .org("org_attacker")
        .send(&app)
        .await;
    assert!(
        verified.body["reason"].as_str().is_some_and(
            |r| r.contains("answer _domains-claim.stale-delegation-victim.com differently")
        ),
        "{verified:?}"
    );
}

/// The records of a name under that wildcard are judged from wild-victim.com's own
/// servers (which answer with the CNAME), never from the attacker's server, which
/// serves every record correct for it.
#[tokio::test]
#[ignore = "needs the DNS hierarchy: scripts/test"]
async fn records_under_a_wildcard_cname_are_never_judged_from_the_targets_servers() {
    let name = DomainName::parse(&format!("{}.sub.wild-victim.com", unique_label())).expect("name");
    let checked = hierarchy_checker().check(&name, &records_of(&name)).await;
    for purpose in [RecordPurpose::Mx, RecordPurpose::Spf] {
        let judged = record(&checked, purpose);
        assert_ne!(judged.status, RecordStatus::Verified, "{judged:?}");
    }
    let spf = record(&checked, RecordPurpose::Spf);
    assert_eq!(
        spf.observed,
        ["v=spf1 -all"],
        "the CNAME target's own record: {spf:?}"
    );
}

/// Counts what arrives at one loopback address, on the hierarchy's port (53 as
/// root), over UDP and TCP.
struct Listener {
    address: SocketAddr,
    packets: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Listener {
    async fn on(ip: &str) -> Self {
        let address = SocketAddr::new(ip.parse().expect("address"), authoritative_port());
        let udp = tokio::net::UdpSocket::bind(address)
            .await
            .expect("bind UDP (loopback; port 53 needs root)");
        let tcp = tokio::net::TcpListener::bind(address)
            .await
            .expect("bind TCP");
        let packets = Arc::new(AtomicUsize::new(0));
        let (udp_count, tcp_count) = (packets.clone(), packets.clone());
        let tasks = vec![
            tokio::spawn(async move {
                let mut buffer = [0u8; 2048];
                while udp.recv_from(&mut buffer).await.is_ok() {
                    udp_count.fetch_add(1, Ordering::SeqCst);
                }
            }),
            tokio::spawn(async move {
                while let Ok((_connection, _)) = tcp.accept().await {
                    tcp_count.fetch_add(1, Ordering::SeqCst);
                }
            }),
        ];
        Self {
            address,
            packets,
            tasks,
        }
    }

    fn received(&self) -> usize {
        self.packets.load(Ordering::SeqCst)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.tasks.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

/// A checker on the hierarchy that allows only the hierarchy's own servers
/// (127.0.0.0/29), not the attacker's name servers at 127.0.7.50 and
/// ::ffff:127.0.7.51 (unbound is told never to query 127.0.7.0/24, so whatever
/// arrives there was sent by the check).
fn narrow_checker() -> DnsChecker {
    DnsChecker::with_nameservers(&[resolver_address()])
        .expect("resolver")
        .with_authoritative_port(authoritative_port())
        .allowing(AllowedNetworks::parse("127.0.0.0/29").expect("networks"))
}

#[tokio::test]
#[ignore = "needs the DNS hierarchy: scripts/test"]
async fn name_servers_at_addresses_not_allowed_are_never_sent_a_packet() {
    let mapped_v4 = Listener::on("127.0.7.51").await;
    let private = Listener::on("127.0.7.50").await;

    // One of two name servers refused: the other answers, and all is verified.
    let partly = DomainName::parse("private-ns.com").expect("name");
    let checked = narrow_checker().check(&partly, &records_of(&partly)).await;
    assert!(
        checked.iter().all(|r| r.status == RecordStatus::Verified),
        "{checked:?}"
    );

    // Every name server refused: nothing is checked, and each record says why.
    let only = DomainName::parse("private-only.com").expect("name");
    let checked = narrow_checker().check(&only, &records_of(&only)).await;
    for judged in &checked {
        assert_eq!(judged.status, RecordStatus::Pending, "{judged:?}");
        let reason = judged.reason.as_deref().unwrap_or_default();
        assert!(
            reason.contains("the name servers of private-only.com are at non-public addresses")
                && reason.contains("loopback")
                && reason.contains("which this service does not query"),
            "{judged:?}"
        );
    }
    // A claim's proof there is not looked for anywhere else.
    let proof = narrow_checker()
        .claim_proof(&only, "_domains-claim.private-only.com")
        .await;
    assert!(
        matches!(&proof.0, shared::verify::Answer::Failed(why) if why.contains("non-public")),
        "{proof:?}"
    );
    assert_eq!(
        (private.received(), mapped_v4.received()),
        (0, 0),
        "nothing was sent to {} or {}",
        private.address,
        mapped_v4.address
    );

    // The listeners do see a check that is allowed to send there.
    let wide = DnsChecker::with_nameservers(&[resolver_address()])
        .expect("resolver")
        .with_authoritative_port(authoritative_port())
        .allowing(AllowedNetworks::parse("127.0.0.0/8").expect("networks"));
    let _ = wide.check(&only, &records_of(&only)).await;
    assert!(
        private.received() + mapped_v4.received() > 0,
        "an allowed check reaches the listeners"
    );
}

/// A zone with four glue-less name servers and an SPF record whose nine includes
/// each find a delegation to four more: checked, it would ask about a hundred
/// questions. The check stops at 64, and the record it could not finish says so.
#[tokio::test]
#[ignore = "needs the DNS hierarchy: scripts/test"]
async fn a_check_asks_at_most_64_questions_and_says_when_it_ran_out() {
    let name = DomainName::parse("deep-cuts.com").expect("name");
    let (checked, stats) = hierarchy_checker()
        .check_measured(&name, &records_of(&name))
        .await;
    assert_eq!(stats.questions, MAX_QUESTIONS, "{stats:?}");
    let out_of_questions: Vec<&DnsRecord> = checked
        .iter()
        .filter(|r| {
            r.reason
                .as_deref()
                .is_some_and(|reason| reason.contains("limit of 64 DNS questions"))
        })
        .collect();
    assert!(!out_of_questions.is_empty(), "{checked:?}");
    assert!(
        out_of_questions
            .iter()
            .all(|r| r.status == RecordStatus::Pending),
        "a record out of questions keeps its status: {out_of_questions:?}"
    );
}

/// A name as deep as a name may be (90 labels below its registrable domain) is
/// found in its zone with a handful of questions: the walk follows referrals
/// from the registrable domain's servers, never one lookup per label.
#[tokio::test]
#[ignore = "needs the DNS hierarchy: scripts/test"]
async fn a_deep_name_costs_a_handful_of_questions_not_one_per_label() {
    let deep = format!("{}all-correct.com", "a.".repeat(90));
    let name = DomainName::parse(&deep).expect("90 labels below all-correct.com");
    let (_, stats) = hierarchy_checker()
        .check_measured(&name, &records_of(&name))
        .await;
    assert!(stats.questions < 40, "{stats:?}");
    // One label more is refused outright.
    assert!(DomainName::parse(&format!("a.{deep}")).is_err());
}

/// A tenant's name server that holds connections: on its own port of 127.0.0.1
/// it is the resolver for queries with RD (every `<x>.com` has the name server
/// `ns.<x>.com` at 127.0.0.1) and the zone's server for queries without it,
/// answering UDP truncated (so the checker comes back over TCP), then over TCP
/// with "nothing there", and never closing a TCP connection itself.
mod holding {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::str::FromStr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use hickory_proto::op::{Message, OpCode, ResponseCode};
    use hickory_proto::rr::rdata::{A, NS, SOA};
    use hickory_proto::rr::{Name, RData, Record, RecordType};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, UdpSocket};

    pub struct HoldingServer {
        pub address: SocketAddr,
        /// TCP connections accepted, and those the other side has not closed.
        pub accepted: Arc<AtomicUsize>,
        pub open: Arc<AtomicUsize>,
        tasks: Vec<tokio::task::JoinHandle<()>>,
    }

    impl Drop for HoldingServer {
        fn drop(&mut self) {
            self.tasks.iter().for_each(tokio::task::JoinHandle::abort);
        }
    }

    fn zone_of(name: &Name) -> Name {
        let ascii = name.to_ascii();
        let labels: Vec<&str> = ascii.trim_end_matches('.').split('.').collect();
        let n = labels.len();
        Name::from_str(&format!(
            "{}.{}.",
            labels[n.saturating_sub(2)],
            labels[n - 1]
        ))
        .expect("zone")
    }

    fn answer(query: &Message, over_tcp: bool) -> Message {
        let mut reply = Message::response(query.metadata.id, OpCode::Query);
        reply.metadata.recursion_desired = query.metadata.recursion_desired;
        reply.metadata.recursion_available = true;
        let Some(question) = query.queries.first().cloned() else {
            reply.metadata.response_code = ResponseCode::FormErr;
            return reply;
        };
        reply.add_query(question.clone());
        let zone = zone_of(&question.name);
        let host = |zone: &Name| Name::from_str(&format!("ns.{}", zone.to_ascii())).expect("host");
        let soa = Record::from_rdata(
            zone.clone(),
            60,
            RData::SOA(SOA::new(host(&zone), host(&zone), 1, 60, 60, 60, 60)),
        );
        if query.metadata.recursion_desired {
            match question.query_type {
                RecordType::NS if question.name == zone => {
                    reply.add_answer(Record::from_rdata(
                        zone.clone(),
                        60,
                        RData::NS(NS(host(&zone))),
                    ));
                }
                RecordType::A if question.name == host(&zone) => {
                    reply.add_answer(Record::from_rdata(
                        host(&zone),
                        60,
                        RData::A(A(Ipv4Addr::LOCALHOST)),
                    ));
                }
                _ => {
                    reply.add_authority(soa);
                }
            }
            return reply;
        }
        reply.metadata.authoritative = true;
        if !over_tcp {
            reply.metadata.truncation = true;
            return reply;
        }
        reply.metadata.response_code = ResponseCode::NXDomain;
        reply.add_authority(soa);
        reply
    }

    impl HoldingServer {
        pub async fn start() -> Self {
            // UDP and TCP on one port: a port free for UDP may be taken for TCP.
            let (udp, tcp) = loop {
                let udp = UdpSocket::bind("127.0.0.1:0").await.expect("udp");
                let address = udp.local_addr().expect("address");
                if let Ok(tcp) = TcpListener::bind(address).await {
                    break (udp, tcp);
                }
            };
            let address = udp.local_addr().expect("address");
            let accepted = Arc::new(AtomicUsize::new(0));
            let open = Arc::new(AtomicUsize::new(0));
            let udp_task = tokio::spawn(async move {
                let mut buffer = vec![0u8; 4096];
                while let Ok((n, from)) = udp.recv_from(&mut buffer).await {
                    if let Ok(query) = Message::from_vec(&buffer[..n])
                        && let Ok(bytes) = answer(&query, false).to_vec()
                    {
                        let _ = udp.send_to(&bytes, from).await;
                    }
                }
            });
            let (counted, still_open) = (accepted.clone(), open.clone());
            let tcp_task = tokio::spawn(async move {
                while let Ok((mut stream, _)) = tcp.accept().await {
                    counted.fetch_add(1, Ordering::SeqCst);
                    still_open.fetch_add(1, Ordering::SeqCst);
                    let still_open = still_open.clone();
                    tokio::spawn(async move {
                        loop {
                            let mut length = [0u8; 2];
                            if stream.read_exact(&mut length).await.is_err() {
                                break;
                            }
                            let mut message = vec![0u8; usize::from(u16::from_be_bytes(length))];
                            if stream.read_exact(&mut message).await.is_err() {
                                break;
                            }
                            let Ok(query) = Message::from_vec(&message) else {
                                break;
                            };
                            let Ok(bytes) = answer(&query, true).to_vec() else {
                                break;
                            };
                            let Ok(size) = u16::try_from(bytes.len()) else {
                                break;
                            };
                            let mut framed = size.to_be_bytes().to_vec();
                            framed.extend(bytes);
                            if stream.write_all(&framed).await.is_err() {
                                break;
                            }
                        }
                        // The checker closed it.
                        still_open.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            });
            Self {
                address,
                accepted,
                open,
                tasks: vec![udp_task, tcp_task],
            }
        }
    }
}

/// Forty checks of zones whose servers hold every TCP connection open: once the
/// checks end, the checker has closed every connection they made. A warm process
/// checks every tenant's domains; sockets a tenant's servers could keep open
/// there would, a few hundred zones later, leave no descriptor for anyone's check.
#[tokio::test]
async fn a_tenants_name_servers_cannot_keep_the_checkers_connections_open() {
    use std::sync::atomic::Ordering;
    let server = holding::HoldingServer::start().await;
    let checker = Arc::new(
        DnsChecker::with_nameservers(&[server.address])
            .expect("resolver")
            .with_authoritative_port(server.address.port())
            .allowing(AllowedNetworks::parse("127.0.0.0/8").expect("networks")),
    );
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let names: Vec<DomainName> = (0..40)
        .map(|i| DomainName::parse(&format!("z{i}-{run}.com")).expect("name"))
        .collect();
    futures::future::join_all(names.iter().map(|name| {
        let checker = checker.clone();
        async move { checker.check(name, &records_of(name)).await }
    }))
    .await;
    assert!(
        server.accepted.load(Ordering::SeqCst) > 0,
        "the checks came back over TCP"
    );
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.open.load(Ordering::SeqCst) > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {} connections still open after the checks ended",
            server.open.load(Ordering::SeqCst),
            server.accepted.load(Ordering::SeqCst)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
