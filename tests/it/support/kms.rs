//! What the KMS tests share: moto's server (a real implementation of the AWS
//! KMS API, with SigV4 checking switched on), a TCP proxy that can cut the KMS
//! off, a KMS wrapper that counts calls, and an ffmpeg publisher and player.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sealcast::crypto::{DataKey, EncryptionContext, WrappedKey};
use sealcast::kms::aws::sigv4::{self, Credentials, SigningParams};
use sealcast::kms::aws::{AwsKms, AwsSettings};
use sealcast::kms::{Kms, KmsError};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::http;
use super::playlist::wait_for;
use super::process::{Proc, free_port};

/// moto's server on a loopback port, killed on drop. The first three requests
/// (the IAM setup of [`Moto::provision`]) go unchecked; from then on moto
/// verifies every request's SigV4 signature against the access keys it issued,
/// the way AWS does.
pub struct Moto {
    /// Ended when the guard drops.
    _process: Proc,
    pub addr: SocketAddr,
}

/// Requests moto serves before it starts checking signatures.
const UNCHECKED_SETUP_REQUESTS: &str = "3";

impl Moto {
    pub async fn start() -> Self {
        let port = free_port();
        let process = Proc::spawn(
            "python3 -m moto.server (moto[server])",
            Command::new("python3")
                .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
                .env("INITIAL_NO_AUTH_ACTION_COUNT", UNCHECKED_SETUP_REQUESTS)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let moto = Self {
            _process: process,
            addr,
        };
        wait_for("moto to listen", Duration::from_secs(60), || async {
            TcpStream::connect(addr).await.ok().map(|_| ())
        })
        .await;
        moto
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates an IAM user allowed `kms:*` and its access key (the three
    /// unchecked requests), then a symmetric KMS key with those credentials
    /// (checked).
    pub async fn provision(&self) -> Provisioned {
        let setup = Credentials::new("AKIASETUPONLY", "unchecked", None);
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#;
        self.iam(&setup, "Action=CreateUser&UserName=sealcast&Version=2010-05-08")
            .await;
        self.iam(
            &setup,
            &format!(
                "Action=PutUserPolicy&UserName=sealcast&PolicyName=kms&PolicyDocument={}&Version=2010-05-08",
                form_encode(policy)
            ),
        )
        .await;
        let created = self
            .iam(&setup, "Action=CreateAccessKey&UserName=sealcast&Version=2010-05-08")
            .await;
        let id = xml_text(&created, "AccessKeyId");
        let secret = xml_text(&created, "SecretAccessKey");
        let credentials = Credentials::new(&id, &secret, None);

        let kms = self.client(&credentials, "unused");
        let answer = kms
            .call(
                "TrentService.CreateKey",
                br#"{"KeySpec":"SYMMETRIC_DEFAULT","KeyUsage":"ENCRYPT_DECRYPT"}"#.to_vec(),
            )
            .await
            .expect("CreateKey");
        let json: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        let key_id = json["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
        Provisioned {
            credentials,
            access_key_id: id,
            secret_access_key: secret,
            key_id,
        }
    }

    /// An AWS KMS provider talking to `endpoint` (moto, or a proxy in front).
    pub fn client_at(&self, endpoint: &str, credentials: &Credentials, key_id: &str, timeout: Duration) -> AwsKms {
        let settings = AwsSettings {
            key_id: key_id.to_owned(),
            region: Some("us-east-1".to_owned()),
            endpoint: Some(endpoint.to_owned()),
            profile: None,
            request_timeout: timeout,
        };
        let no_env = |_: &str| None;
        AwsKms::with_credentials(&settings, credentials.clone(), &no_env).unwrap()
    }

    pub fn client(&self, credentials: &Credentials, key_id: &str) -> AwsKms {
        self.client_at(&self.endpoint(), credentials, key_id, Duration::from_secs(5))
    }

    /// Lets the next three requests through unchecked (moto's
    /// `/moto-api/reset-auth`), creates IAM role `sealcast-web` allowed
    /// `kms:*` with two of them, and leaves the third for the caller's
    /// unsigned STS `AssumeRoleWithWebIdentity`. Returns the role's ARN.
    pub async fn provision_web_identity_role(&self) -> String {
        let reset =
            "POST /moto-api/reset-auth HTTP/1.1\r\nHost: moto\r\nContent-Length: 1\r\nConnection: close\r\n\r\n3";
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        stream.write_all(reset.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        assert!(raw.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&raw));

        let setup = Credentials::new("AKIASETUPONLY", "unchecked", None);
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::123456789012:oidc-provider/example.com"},"Action":"sts:AssumeRoleWithWebIdentity"}]}"#;
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#;
        let created = self
            .iam(
                &setup,
                &format!(
                    "Action=CreateRole&RoleName=sealcast-web&AssumeRolePolicyDocument={}&Version=2010-05-08",
                    form_encode(trust)
                ),
            )
            .await;
        self.iam(
            &setup,
            &format!(
                "Action=PutRolePolicy&RoleName=sealcast-web&PolicyName=kms&PolicyDocument={}&Version=2010-05-08",
                form_encode(policy)
            ),
        )
        .await;
        xml_text(&created, "Arn")
    }

    /// One IAM query-protocol request; the XML answer, which must be a 200.
    async fn iam(&self, credentials: &Credentials, body: &str) -> String {
        let host = self.addr.to_string();
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let unix_secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let signed = sigv4::sign(
            &sigv4::Request {
                method: "POST",
                path: "/",
                query: "",
                headers: &[("host", &host), ("content-type", content_type)],
                payload: body.as_bytes(),
            },
            &SigningParams {
                credentials,
                region: "us-east-1",
                service: "iam",
                unix_secs,
            },
        );
        let mut request = format!(
            "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (name, value) in &signed {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        let text = String::from_utf8_lossy(&raw).into_owned();
        assert!(text.starts_with("HTTP/1.1 200"), "IAM {body}: {text}");
        text
    }
}

/// What [`Moto::provision`] made.
pub struct Provisioned {
    pub credentials: Credentials,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// The symmetric KMS key's id (a UUID).
    pub key_id: String,
}

fn xml_text(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = xml.find(&open).unwrap_or_else(|| panic!("<{tag}> in {xml}")) + open.len();
    let end = xml[start..].find('<').unwrap() + start;
    xml[start..end].to_owned()
}

/// `application/x-www-form-urlencoded` value encoding (RFC 3986 unreserved kept).
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Unwraps `edk` at moto directly, with the context sealcast binds keys to.
pub async fn moto_decrypt(kms: &AwsKms, edk: &[u8], stream: &str, key_id: &str) -> Result<Vec<u8>, String> {
    let body = serde_json::json!({
        "CiphertextBlob": STANDARD.encode(edk),
        "EncryptionContext": {"stream": stream, "key_id": key_id},
    });
    let answer = kms
        .call("TrentService.Decrypt", serde_json::to_vec(&body).unwrap())
        .await
        .map_err(|e| e.to_string())?;
    let json: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    Ok(STANDARD.decode(json["Plaintext"].as_str().unwrap()).unwrap())
}

/// A TCP proxy whose link can be cut (open connections closed, new ones
/// closed right after accept, like a KMS that went away) and restored.
pub struct Proxy {
    pub addr: SocketAddr,
    up: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, _) = watch::channel(true);
        let state = up.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut down = state.subscribe();
                if !*down.borrow() {
                    continue; // dropped: the connection closes at once
                }
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = down.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { addr, up, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Frames per second of the test publisher.
pub const FPS: u32 = 30;

/// Starts ffmpeg publishing `seconds` of a 320x240 test pattern at 30 fps
/// (a keyframe every second) with a sine tone, in real time when `realtime`.
pub fn publish(rtmp: SocketAddr, publish_key: &str, seconds: u32, realtime: bool) -> Proc {
    let mut command = Command::new("ffmpeg");
    command.args(["-hide_banner", "-nostdin", "-loglevel", "error"]);
    for input in ["testsrc2=size=320x240:rate=30", "sine=frequency=440:sample_rate=44100"] {
        if realtime {
            command.arg("-re");
        }
        command.args(["-f", "lavfi", "-i", input]);
    }
    command
        .args(["-t", &seconds.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "30",
            "-keyint_min",
            "30",
        ])
        .args(["-c:a", "aac", "-f", "flv"])
        .arg(format!("rtmp://{rtmp}/live/{publish_key}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    Proc::spawn("ffmpeg publisher", &mut command)
}

/// Waits for a publisher to exit successfully.
pub async fn finished(mut publisher: Proc) {
    let (status, stderr) = tokio::task::spawn_blocking(move || {
        let mut stderr = String::new();
        if let Some(mut pipe) = publisher.child.stderr.take() {
            // Until ffmpeg exits and closes it.
            let _ = pipe.read_to_string(&mut stderr);
        }
        (publisher.wait(Duration::from_secs(120)), stderr)
    })
    .await
    .unwrap();
    assert!(status.success(), "ffmpeg publish failed: {stderr}");
}

/// Plays `/{stream}/index.m3u8?token=…` with ffmpeg (keys through the key
/// endpoint), copying what it gets into `out`; returns ffmpeg's error output.
pub async fn play(http_addr: SocketAddr, stream: &str, token: &str, out: &Path) -> String {
    let url = format!("http://{http_addr}/{stream}/index.m3u8?token={token}");
    let out = out.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", &url])
            .args(["-map", "0", "-c", "copy", "-f", "mpegts"])
            .arg(&out)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        output.status.success(),
        "ffmpeg playback failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// GET a key through the key endpoint with `token`: (status, body, Retry-After).
pub async fn fetch_key(http_addr: SocketAddr, uri: &str, token: &str) -> (u16, Vec<u8>, Option<String>) {
    let sep = if uri.contains('?') { '&' } else { '?' };
    let response = http::get(http_addr, &format!("{uri}{sep}token={token}")).await;
    let retry_after = response.header("retry-after").map(str::to_owned);
    (response.status, response.body, retry_after)
}

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => out.push(path),
                _ => {}
            }
        }
    }
    out
}

/// Shared handle for test values set from tasks.
pub type Shared<T> = Arc<std::sync::Mutex<T>>;

/// A key provider that counts the calls made to the one it wraps.
pub struct CountingKms {
    inner: Arc<dyn Kms>,
    generated: AtomicU64,
    decrypted: AtomicU64,
}

impl CountingKms {
    pub fn new(inner: Arc<dyn Kms>) -> Self {
        Self {
            inner,
            generated: AtomicU64::new(0),
            decrypted: AtomicU64::new(0),
        }
    }

    /// `generate_data_key` calls started so far.
    pub fn generated(&self) -> u64 {
        self.generated.load(Ordering::SeqCst)
    }

    /// `decrypt` calls started so far.
    pub fn decrypted(&self) -> u64 {
        self.decrypted.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl Kms for CountingKms {
    async fn generate_data_key(&self, ctx: &EncryptionContext) -> Result<(DataKey, WrappedKey), KmsError> {
        self.generated.fetch_add(1, Ordering::SeqCst);
        self.inner.generate_data_key(ctx).await
    }

    async fn decrypt(&self, wrapped: &WrappedKey, ctx: &EncryptionContext) -> Result<DataKey, KmsError> {
        self.decrypted.fetch_add(1, Ordering::SeqCst);
        self.inner.decrypt(wrapped, ctx).await
    }

    async fn reload(&self) -> Result<Option<String>, KmsError> {
        self.inner.reload().await
    }
}
