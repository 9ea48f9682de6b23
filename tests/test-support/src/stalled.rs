//! A server that accepts connections and never answers: a dependency that hangs.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Accepts every TCP connection on 127.0.0.1 and holds it open, silent, until
/// dropped.
pub struct StalledServer {
    address: SocketAddr,
    task: JoinHandle<()>,
}

impl StalledServer {
    /// Listening on a free port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("bound address");
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((connection, _)) = listener.accept().await {
                held.push(connection);
            }
        });
        Self { address, task }
    }

    /// Its URL, as an SDK endpoint.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for StalledServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
