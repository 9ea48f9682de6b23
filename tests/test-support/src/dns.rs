//! An authoritative DNS server (hickory-server) on 127.0.0.1, UDP and TCP on the
//! same port, stopped when dropped.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::{LowerName, Name, Record, RecordType};
use hickory_proto::serialize::txt::Parser;
use hickory_resolver::net::runtime::Time;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_server::Server;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use tokio::net::{TcpListener, UdpSocket};

type Zone = InMemoryZoneHandler<TokioRuntimeProvider>;

pub struct TestDnsServer {
    address: SocketAddr,
    zones: Vec<Arc<Zone>>,
    _server: Server<Delayed>,
}

/// How long the server waits before answering, by record type (for benchmarks
/// that need a DNS server with a realistic latency).
#[derive(Clone, Debug, Default)]
pub struct Latency {
    pub default: Duration,
    pub by_type: Vec<(RecordType, Duration)>,
}

impl Latency {
    fn of(&self, record_type: RecordType) -> Duration {
        self.by_type
            .iter()
            .find(|(t, _)| *t == record_type)
            .map_or(self.default, |(_, d)| *d)
    }
}

/// The catalog, answering after the configured latency.
pub struct Delayed {
    catalog: Catalog,
    latency: Latency,
}

#[async_trait::async_trait]
impl RequestHandler for Delayed {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        if let Ok(info) = request.request_info() {
            let delay = self.latency.of(info.query.query_type());
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        }
        self.catalog
            .handle_request::<R, T>(request, response_handle)
            .await
    }
}

const SOA: &str = "@ 3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60\n";

impl TestDnsServer {
    /// Serves each `(origin, records)` zone. `records` is zone-file text relative to
    /// the origin (an SOA is added), e.g. `"@ 300 IN MX 10 mx.example.net."`.
    pub async fn start(zones: &[(&str, &str)]) -> Self {
        Self::start_with_latency(zones, Latency::default()).await
    }

    /// As `start`, answering each query after `latency`.
    pub async fn start_with_latency(zones: &[(&str, &str)], latency: Latency) -> Self {
        let mut catalog = Catalog::new();
        let mut handlers = Vec::new();
        for (origin, records) in zones {
            let origin = Name::from_str(&format!("{}.", origin.trim_end_matches('.')))
                .expect("zone origin is a valid name");
            let text = format!("{SOA}{records}");
            let (origin, records) = Parser::new(text, None, Some(origin))
                .parse()
                .expect("zone text parses");
            let zone = Arc::new(
                Zone::new(origin.clone(), records, ZoneType::Primary, AxfrPolicy::Deny)
                    .expect("zone is valid"),
            );
            catalog.upsert(
                LowerName::new(&origin),
                vec![zone.clone() as Arc<dyn ZoneHandler>],
            );
            handlers.push(zone);
        }
        let (udp, tcp) = bind_same_port().await;
        let address = udp.local_addr().expect("bound address");
        let mut server = Server::new(Delayed { catalog, latency });
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 4096);
        Self {
            address,
            zones: handlers,
            _server: server,
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Adds records (zone-file text relative to the zone at `index`), as a user
    /// publishing them would.
    pub async fn publish(&self, index: usize, records: &str) {
        let zone = &self.zones[index];
        let parsed = parse_records(zone, records);
        for record_set in parsed.values() {
            for record in record_set.records_without_rrsigs() {
                let record: Record = record.clone();
                zone.upsert(record, 2).await;
            }
        }
    }
}

impl TestDnsServer {
    /// Replaces everything in the zone at `index` by `records` (as a user
    /// removing or changing records would).
    pub async fn replace(&self, index: usize, records: &str) {
        let zone = &self.zones[index];
        let parsed = parse_records(zone, records);
        let mut stored = zone.records_mut().await;
        stored.clear();
        for (key, record_set) in parsed {
            stored.insert(key, Arc::new(record_set));
        }
    }
}

/// Zone-file text relative to `zone`'s origin (with the test SOA), parsed.
fn parse_records(
    zone: &Zone,
    records: &str,
) -> std::collections::BTreeMap<hickory_proto::rr::RrKey, hickory_proto::rr::RecordSet> {
    let origin = Name::from(zone.origin().clone());
    let (_, parsed) = Parser::new(format!("{SOA}{records}"), None, Some(origin))
        .parse()
        .expect("zone text parses");
    parsed
}

/// UDP and TCP on one port number, so a resolver configured with one port can
/// use both.
pub(crate) async fn bind_same_port() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind UDP");
        let port = udp.local_addr().expect("UDP address").port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)).await {
            return (udp, tcp);
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1");
}

/// A UDP socket and TCP listener that take queries and never answer: a DNS
/// server that times out. It records when each UDP query arrived.
pub struct SilentDnsServer {
    address: SocketAddr,
    arrivals: Arc<std::sync::Mutex<Vec<std::time::Instant>>>,
    reader: tokio::task::JoinHandle<()>,
    _tcp: TcpListener,
}

impl SilentDnsServer {
    pub async fn start() -> Self {
        let (udp, tcp) = bind_same_port().await;
        let address = udp.local_addr().expect("bound address");
        let arrivals = Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = arrivals.clone();
        let reader = tokio::spawn(async move {
            let mut buffer = [0u8; 4096];
            while udp.recv_from(&mut buffer).await.is_ok() {
                recorded
                    .lock()
                    .expect("arrivals lock")
                    .push(std::time::Instant::now());
            }
        });
        Self {
            address,
            arrivals,
            reader,
            _tcp: tcp,
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// When each UDP query arrived, in order.
    pub fn arrivals(&self) -> Vec<std::time::Instant> {
        self.arrivals.lock().expect("arrivals lock").clone()
    }
}

impl Drop for SilentDnsServer {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Zone-file lines publishing the six records the API asks for (MX, SPF, DMARC and
/// a DKIM CNAME per token, region us-east-2) for a domain `prefix` labels below the
/// zone apex ("" for the apex itself).
/// The two records of the MAIL FROM domain `<label>.<prefix>` (us-east-2), as
/// `all_records_zone` writes the six.
pub fn mail_from_zone(prefix: &str, label: &str) -> String {
    let owner = if prefix.is_empty() {
        label.to_string()
    } else {
        format!("{label}.{prefix}")
    };
    format!(
        "{owner} 300 IN MX 10 feedback-smtp.us-east-2.amazonses.com.\n\
         {owner} 300 IN TXT \"v=spf1 include:amazonses.com ~all\"\n"
    )
}

pub fn all_records_zone(prefix: &str, tokens: &[&str]) -> String {
    let owner = |name: &str| {
        if prefix.is_empty() {
            name.to_string()
        } else if name == "@" {
            prefix.to_string()
        } else {
            format!("{name}.{prefix}")
        }
    };
    let mut zone = format!(
        "{} 300 IN MX 10 inbound-smtp.us-east-2.amazonaws.com.\n\
         {} 300 IN TXT \"v=spf1 include:amazonses.com ~all\"\n\
         {} 300 IN TXT \"v=DMARC1; p=reject;\"\n",
        owner("@"),
        owner("@"),
        owner("_dmarc")
    );
    for token in tokens {
        zone.push_str(&format!(
            "{} 300 IN CNAME {token}.dkim.amazonses.com.\n",
            owner(&format!("{token}._domainkey"))
        ));
    }
    zone
}
