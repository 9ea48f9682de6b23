//! A port on 127.0.0.1 that refuses every connection and datagram, held for as
//! long as the value lives: no other process can bind it meanwhile (unlike a port
//! found free and let go, which anyone may take before the test uses it).

use std::net::{SocketAddr, UdpSocket};

use tokio::net::TcpSocket;

pub struct ClosedPort {
    port: u16,
    _udp: UdpSocket,
    _tcp: TcpSocket,
}

impl ClosedPort {
    /// Binds one port for TCP and UDP. The TCP socket never listens, so a
    /// connection is refused; the UDP socket is connected to another port, so a
    /// datagram from anyone else finds no socket and is answered "port
    /// unreachable" (as a closed port is).
    pub fn hold() -> Self {
        for _ in 0..50 {
            let udp = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
            let address = udp.local_addr().expect("UDP address");
            // The discard port: nothing sends from it, so no datagram matches.
            udp.connect("127.0.0.1:9").expect("connect UDP");
            let tcp = TcpSocket::new_v4().expect("TCP socket");
            if tcp.bind(address).is_ok() {
                return Self {
                    port: address.port(),
                    _udp: udp,
                    _tcp: tcp,
                };
            }
        }
        panic!("no port free for both UDP and TCP on 127.0.0.1");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// As an HTTP endpoint (an SDK's endpoint URL).
    pub fn url(&self) -> String {
        format!("http://{}", self.address())
    }
}
