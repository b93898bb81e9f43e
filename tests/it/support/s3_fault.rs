//! A fault-injecting HTTP proxy in front of a real S3 server (moto): every
//! request is read whole and, by the current [`Fault`], forwarded to the
//! server, answered with an S3 error status of its own, or held for a while
//! before being forwarded (a very slow endpoint). One request per
//! connection (`Connection: close` both ways), so a mode change applies to
//! the very next request, pooled connections included.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the proxy does with the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward to the server.
    Pass,
    /// Answer with this status and an S3 error body (403 AccessDenied, 500
    /// InternalError, 503 SlowDown).
    Status(u16),
    /// Forward, after holding the request this long.
    Slow(Duration),
}

pub struct FaultProxy {
    pub addr: SocketAddr,
    mode: Arc<Mutex<Fault>>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(Fault::Pass));
        let shared = Arc::clone(&mode);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mode = Arc::clone(&shared);
                tokio::spawn(async move {
                    let _ = handle(client, target, &mode).await;
                });
            }
        });
        Self { addr, mode, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, fault: Fault) {
        *self.mode.lock().unwrap() = fault;
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(mut client: TcpStream, target: SocketAddr, mode: &Mutex<Fault>) -> std::io::Result<()> {
    let request = read_message(&mut client).await?;
    let fault = *mode.lock().unwrap();
    let response = match fault {
        Fault::Status(code) => error_response(code),
        Fault::Slow(delay) => {
            tokio::time::sleep(delay).await;
            forward(&request, target).await?
        }
        Fault::Pass => forward(&request, target).await?,
    };
    client.write_all(&response).await?;
    client.shutdown().await
}

/// One HTTP/1.1 request: its head and its `Content-Length` body.
async fn read_message(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(at) = find(&buf, b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    assert!(
        !head.contains("transfer-encoding: chunked"),
        "the fault proxy reads Content-Length bodies only:\n{head}"
    );
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(with_connection_close(&buf))
}

/// Sends `request` to the server on a fresh connection and reads the whole
/// answer (the server closes it after the response).
async fn forward(request: &[u8], target: SocketAddr) -> std::io::Result<Vec<u8>> {
    let mut server = TcpStream::connect(target).await?;
    server.write_all(request).await?;
    let mut response = Vec::new();
    server.read_to_end(&mut response).await?;
    Ok(with_connection_close(&response))
}

/// The message with its `Connection` header replaced by `Connection: close`.
fn with_connection_close(message: &[u8]) -> Vec<u8> {
    let Some(head_end) = find(message, b"\r\n\r\n") else {
        return message.to_vec();
    };
    let head = String::from_utf8_lossy(&message[..head_end]);
    let mut lines: Vec<&str> = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    let mut out = lines.join("\r\n").into_bytes();
    out.extend_from_slice(&message[head_end..]);
    out
}

/// An S3 error answer (the XML body S3 sends) with `code`.
fn error_response(code: u16) -> Vec<u8> {
    let (reason, s3_code) = match code {
        403 => ("Forbidden", "AccessDenied"),
        500 => ("Internal Server Error", "InternalError"),
        503 => ("Service Unavailable", "SlowDown"),
        _ => ("Error", "InternalError"),
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{s3_code}</Code>\
         <Message>injected by the test's fault proxy</Message></Error>"
    );
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
