//! A local webhook receiver: what an MSP's ticketing system would be. It verifies Vigie's
//! signature on every request and keeps what it received. Used by the demo and the tests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;

/// One request the sink received.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// Whether `x-vigie-signature` verified with the sink's secret.
    pub signature_valid: bool,
    pub received_ms: i64,
}

/// A running sink.
pub struct WebhookSink {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSink")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl WebhookSink {
    /// Listens on loopback (a free port) and answers `status` to every request.
    pub async fn start(secret: &str, status: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = Arc::clone(&received);
        let secret = secret.to_owned();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let store = Arc::clone(&store);
                let secret = secret.clone();
                tokio::spawn(async move {
                    let _ = serve_one(stream, &secret, status, &store).await;
                });
            }
        });
        Ok(Self {
            addr,
            received,
            task,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks/vigie", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_one(
    stream: tokio::net::TcpStream,
    secret: &str,
    status: u16,
    store: &Mutex<Vec<Received>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line).await?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len.min(1 << 20)];
    reader.read_exact(&mut body).await?;
    let now_ms = vigie_domain::clock::Clock::now_ms(&vigie_domain::clock::SystemClock);
    let signature_valid = headers.get("x-vigie-signature").is_some_and(|h| {
        vigie_notifier::verify(secret.as_bytes(), h, &body, now_ms / 1000, 300).is_ok()
    });
    if let Ok(mut r) = store.lock() {
        r.push(Received {
            headers,
            body,
            signature_valid,
            received_ms: now_ms,
        });
    }
    let mut stream = reader.into_inner();
    let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}
