//! A hostile DNS server: every A and AAAA query is answered with thousands of
//! addresses (as a wildcard over a huge record set would), with the answer names
//! compressed as real servers write them, so a 3,000-address answer fits one TCP
//! message. Everything else is answered empty (NOERROR, no data). Over UDP a
//! large answer is truncated (TC), so resolvers retry over TCP, as on the wire.
//!
//! hickory-server cannot stand in here: it writes synthesized names in full,
//! which caps such an answer at about a thousand records.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const UDP_LIMIT: usize = 512;

pub struct FloodDnsServer {
    address: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl FloodDnsServer {
    /// Answers `a` A records and `aaaa` AAAA records at every name.
    pub async fn start(a: usize, aaaa: usize) -> Self {
        let (udp, tcp) = super::dns::bind_same_port().await;
        let address = udp.local_addr().expect("bound address");
        let udp_task = tokio::spawn(async move {
            let mut buffer = [0u8; 4096];
            while let Ok((len, peer)) = udp.recv_from(&mut buffer).await {
                if let Some(mut answer) = respond(&buffer[..len], a, aaaa) {
                    if answer.len() > UDP_LIMIT {
                        answer = truncated(&buffer[..len]).unwrap_or_default();
                    }
                    let _ = udp.send_to(&answer, peer).await;
                }
            }
        });
        let tcp_task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = tcp.accept().await {
                tokio::spawn(async move {
                    loop {
                        let mut length = [0u8; 2];
                        if stream.read_exact(&mut length).await.is_err() {
                            return;
                        }
                        let mut query = vec![0u8; usize::from(u16::from_be_bytes(length))];
                        if stream.read_exact(&mut query).await.is_err() {
                            return;
                        }
                        let Some(answer) = respond(&query, a, aaaa) else {
                            return;
                        };
                        let Ok(size) = u16::try_from(answer.len()) else {
                            return;
                        };
                        let mut framed = size.to_be_bytes().to_vec();
                        framed.extend_from_slice(&answer);
                        if stream.write_all(&framed).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            address,
            tasks: vec![udp_task, tcp_task],
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for FloodDnsServer {
    fn drop(&mut self) {
        self.tasks.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

/// The question section's end and its type, for a query of one question.
fn question(query: &[u8]) -> Option<(usize, u16)> {
    if query.len() < 12 || u16::from_be_bytes([query[4], query[5]]) != 1 {
        return None;
    }
    let mut at = 12;
    loop {
        let length = usize::from(*query.get(at)?);
        at += 1 + length;
        if length == 0 {
            break;
        }
    }
    let qtype = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
    Some((at + 4, qtype))
}

/// Header and question of the response: id and question copied, QR and RA set,
/// RD copied, `answers` answer records to follow.
fn header(query: &[u8], end: usize, answers: u16, truncated: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(end);
    out.extend_from_slice(&query[..2]);
    let rd = query[2] & 0x01;
    out.push(0x80 | rd | if truncated { 0x02 } else { 0 });
    out.push(0x80);
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&answers.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&query[12..end]);
    out
}

fn respond(query: &[u8], a: usize, aaaa: usize) -> Option<Vec<u8>> {
    let (end, qtype) = question(query)?;
    let count = match qtype {
        TYPE_A => a,
        TYPE_AAAA => aaaa,
        _ => 0,
    };
    let mut out = header(query, end, u16::try_from(count).ok()?, false);
    for i in 0..count {
        // The owner name points at the question's name (offset 12).
        out.extend_from_slice(&[0xC0, 0x0C]);
        out.extend_from_slice(&qtype.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&300u32.to_be_bytes());
        let index = u32::try_from(i).ok()?;
        if qtype == TYPE_A {
            out.extend_from_slice(&4u16.to_be_bytes());
            out.extend_from_slice(&(0x0A00_0000 | index).to_be_bytes());
        } else {
            out.extend_from_slice(&16u16.to_be_bytes());
            out.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&index.to_be_bytes());
        }
    }
    Some(out)
}

fn truncated(query: &[u8]) -> Option<Vec<u8>> {
    let (end, _) = question(query)?;
    Some(header(query, end, 0, true))
}
