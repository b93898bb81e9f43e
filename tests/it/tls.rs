//! TLS on every listener, with the `sealcast` binary as a child: ffmpeg
//! publishes over `rtmps://` and plays over `https://`, curl negotiates
//! HTTP/2 by ALPN against a test CA (made with `openssl`), SIGHUP swaps the
//! certificate for new connections while a publish goes on, and an unusable
//! certificate is a clear error at start.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::support::certs::{make_ca, make_cert, run};
use crate::support::playlist::{POLL_LIMIT, ended, segment_count, wait_for_blocking};
use crate::support::process::{
    Player, Proc, SEALCAST, STOP_LIMIT, ffmpeg_publish, parse_running_line, path_str, read_text, spawn_sealcast,
    write_private,
};
use crate::support::server::streams_toml;

const TOKEN_SECRET: &str = "tls-token-secret-0123456789-0123456789";
const FIXTURE: &str = "baseline-aac44k.flv";
const CHILD_LIMIT: Duration = Duration::from_secs(60);

/// SHA-256 of the first certificate in a PEM file, hex.
fn file_fingerprint(pem: &Path) -> String {
    let der = CertificateDer::pem_file_iter(pem).unwrap().next().unwrap().unwrap();
    hex_sha256(der.as_ref())
}

fn hex_sha256(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Connects with rustls, trusting only `ca`, and returns the fingerprint of
/// the certificate the server presented and the protocol ALPN chose.
async fn served(addr: SocketAddr, ca: &Path, alpn: &[&[u8]]) -> (String, Option<Vec<u8>>) {
    let tls = connect(addr, ca, alpn).await;
    let (_, connection) = tls.get_ref();
    let leaf = &connection.peer_certificates().unwrap()[0];
    (
        hex_sha256(leaf.as_ref()),
        connection.alpn_protocol().map(<[u8]>::to_vec),
    )
}

/// A rustls connection trusting only `ca`, offering `alpn`.
async fn connect(
    addr: SocketAddr,
    ca: &Path,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(ca).unwrap()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::IpAddress(addr.ip().into());
    connector
        .connect(name, socket)
        .await
        .expect("TLS handshake with the test CA")
}

/// A running `sealcast serve` with HTTPS and RTMPS.
struct Server {
    process: Proc,
    rtmps: SocketAddr,
    http: SocketAddr,
    log: PathBuf,
    config: PathBuf,
    dir: PathBuf,
}

impl Server {
    /// Writes the config (TLS from `cert`/`key`) and starts the binary.
    fn start(dir: &Path, cert: &Path, key: &Path) -> Server {
        Self::start_with(dir, cert, key, "", "")
    }

    /// [`Server::start`] with lines added to the config (see [`config_with`]).
    fn start_with(dir: &Path, cert: &Path, key: &Path, rtmp: &str, tail: &str) -> Server {
        let secret = dir.join("token-secret");
        write_private(&secret, TOKEN_SECRET);
        let config = dir.join("sealcast.toml");
        write_private(&config, &config_with(dir, &secret, cert, key, rtmp, tail));
        let log = dir.join("sealcast.log");
        let (mut process, rx) = spawn_sealcast(&["serve", "--config", path_str(&config)], dir, &log);
        let mut line = |what: &str| {
            rx.recv_timeout(POLL_LIMIT).unwrap_or_else(|_| {
                process.wait_within(STOP_LIMIT);
                panic!("no {what} line in the banner; log:\n{}", read_text(&log))
            })
        };
        let (_, http) = parse_running_line(&line("running")).expect("the banner starts with the addresses");
        let rtmps = line("RTMPS");
        let rtmps = rtmps
            .strip_prefix("RTMPS on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("not the RTMPS line: {rtmps}"));
        Server {
            process,
            rtmps,
            http,
            log,
            config,
            dir: dir.to_owned(),
        }
    }

    fn log(&self) -> String {
        read_text(&self.log)
    }

    fn token(&self, stream: &str) -> String {
        let out = run(
            "sealcast token",
            Command::new(SEALCAST).args(["token", "--stream", stream, "--config", path_str(&self.config)]),
        );
        out.trim().to_owned()
    }

    /// `curl --cacert CA URL`: (status, http_version, body).
    fn curl(&self, path: &str, extra: &[&str]) -> (String, String, String) {
        let body = self.dir.join("curl-body");
        let out = run(
            "curl",
            Command::new("curl")
                .args([
                    "-sS",
                    "--max-time",
                    "10",
                    "--cacert",
                    path_str(&self.dir.join("ca.pem")),
                ])
                .args(extra)
                .args(["-o", path_str(&body), "-w", "%{http_code} %{http_version}"])
                .arg(format!("https://{}{path}", self.http)),
        );
        let (status, version) = out.split_once(' ').unwrap();
        (status.to_owned(), version.to_owned(), read_text(&body))
    }

    fn playlist(&self, stream: &str) -> Option<String> {
        let (status, _, body) = self.curl(&format!("/{stream}/index.m3u8"), &[]);
        (status == "200").then_some(body)
    }

    fn wait_for_segments(&self, stream: &str, n: usize) -> String {
        wait_for_blocking(&format!("{stream} with {n} segments"), POLL_LIMIT, || {
            self.playlist(stream).filter(|p| segment_count(p) >= n)
        })
    }

    fn publish_rtmps(&self, label: &str, key: &str) -> Proc {
        let url = format!("rtmps://{}/live/{key}", self.rtmps);
        ffmpeg_publish(label, FIXTURE, &url, true, &self.dir.join(format!("{label}.log")))
    }
}

fn config_text(dir: &Path, secret: &Path, cert: &Path, key: &Path) -> String {
    config_with(dir, secret, cert, key, "", "")
}

/// The test config with `rtmp` lines added to `[rtmp]` and `tail` at the end.
fn config_with(dir: &Path, secret: &Path, cert: &Path, key: &Path, rtmp: &str, tail: &str) -> String {
    format!(
        r#"[rtmp]
listen = "127.0.0.1:0"
tls_listen = "127.0.0.1:0"
{rtmp}
[http]
listen = "127.0.0.1:0"
tls_cert_file = {cert:?}
tls_key_file = {key:?}
[hls]
segment_duration_secs = 1
playlist_window = 30
reconnect_grace_secs = 0
[storage]
data_dir = {data:?}
[auth]
token_secret_file = {secret:?}
{streams}
{tail}"#,
        cert = path_str(cert),
        key = path_str(key),
        data = path_str(&dir.join("data")),
        secret = path_str(secret),
        streams = streams_toml(),
    )
}

/// ffmpeg publishes over rtmps:// and plays the stream over https:// (keys
/// with a token); curl with the test CA gets HTTP/2 by ALPN, and HTTP/1.1
/// when it asks for it.
#[test]
fn rtmps_publish_and_https_playback_with_http2() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path());
    let (cert, key) = make_cert(dir.path(), "server");
    let server = Server::start(dir.path(), &cert, &key);
    let token = server.token("live/demo");
    let mut publisher = server.publish_rtmps("publish-rtmps", crate::support::server::DEMO_KEY);
    server.wait_for_segments("live/demo", 1);

    let (status, version, _) = server.curl("/live/demo/index.m3u8", &["--http2"]);
    assert_eq!((status.as_str(), version.as_str()), ("200", "2"), "curl --http2");
    let (status, version, _) = server.curl("/live/demo/index.m3u8", &["--http1.1"]);
    assert_eq!((status.as_str(), version.as_str()), ("200", "1.1"), "curl --http1.1");
    assert_eq!(file_fingerprint(&ca).len(), 64);

    let url = format!("https://{}/live/demo/index.m3u8?token={token}", server.http);
    let player = Player::start(&url, "https", dir.path());
    let status = publisher.wait(CHILD_LIMIT);
    assert!(
        status.success(),
        "ffmpeg rtmps publish failed: {}\nserver log:\n{}",
        read_text(&dir.path().join("publish-rtmps.log")),
        server.log()
    );
    let playback = player.finish(CHILD_LIMIT);
    let want = crate::support::count_frames(&crate::support::fixture(FIXTURE));
    playback.assert_plays(want, &format!("https playback (server log:\n{})", server.log()));
}

/// After SIGHUP with a new certificate in the same files, new HTTPS and
/// RTMPS connections get it while a publish over RTMPS goes on to its end;
/// a broken certificate at the next SIGHUP is logged and the last good one
/// stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_the_certificate_while_a_publish_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path());
    let (old_cert, old_key) = make_cert(dir.path(), "old");
    let (new_cert, new_key) = make_cert(dir.path(), "new");
    let (cert, key) = (dir.path().join("live.pem"), dir.path().join("live.key"));
    std::fs::copy(&old_cert, &cert).unwrap();
    std::fs::copy(&old_key, &key).unwrap();
    let (old_fp, new_fp) = (file_fingerprint(&old_cert), file_fingerprint(&new_cert));
    assert_ne!(old_fp, new_fp);

    let mut server = Server::start(dir.path(), &cert, &key);
    let (fp, alpn) = served(server.http, &ca, &[b"h2", b"http/1.1"]).await;
    assert_eq!((fp.as_str(), alpn.as_deref()), (old_fp.as_str(), Some(&b"h2"[..])));
    assert_eq!(served(server.rtmps, &ca, &[]).await.0, old_fp);

    let mut publisher = server.publish_rtmps("publish-reload", crate::support::server::DEMO_KEY);
    let before = tokio::task::block_in_place(|| server.wait_for_segments("live/demo", 2));

    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    server.process.signal("HUP");
    let deadline = Instant::now() + POLL_LIMIT;
    while served(server.http, &ca, &[]).await.0 != new_fp {
        assert!(
            Instant::now() < deadline,
            "no new certificate after SIGHUP:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served(server.rtmps, &ca, &[]).await.0, new_fp, "RTMPS after SIGHUP");
    assert!(
        server.log().contains(&format!("new certificate, sha256 {new_fp}")),
        "{}",
        server.log()
    );

    // The publish that started before the reload runs to its end.
    let status = tokio::task::block_in_place(|| publisher.wait(CHILD_LIMIT));
    assert!(
        status.success(),
        "the rtmps publish broke off: {}\nserver log:\n{}",
        read_text(&dir.path().join("publish-reload.log")),
        server.log()
    );
    let last = tokio::task::block_in_place(|| {
        wait_for_blocking("live/demo ended", POLL_LIMIT, || {
            server.playlist("live/demo").filter(|p| ended(p))
        })
    });
    assert!(
        segment_count(&last) > segment_count(&before) + 3,
        "no segments after the reload:\nbefore:\n{before}\nafter:\n{last}"
    );
    assert!(!last.contains("#EXT-X-DISCONTINUITY"), "the publish was cut:\n{last}");

    // A broken certificate: logged, the running one stays.
    std::fs::write(&cert, "not a certificate\n").unwrap();
    server.process.signal("HUP");
    let logged = "the running certificate stays";
    wait_for_blocking("the reload error in the log", POLL_LIMIT, || {
        server.log().contains(logged).then_some(())
    });
    assert!(
        server.log().contains("http.tls_cert_file"),
        "the error names the setting:\n{}",
        server.log()
    );
    assert_eq!(served(server.http, &ca, &[]).await.0, new_fp);
    assert!(server.process.terminate(STOP_LIMIT).is_some_and(|s| s.success()));
}

/// A client that connects to the HTTPS or RTMPS port and stalls its TLS
/// handshake (silent, or a ClientHello cut short) is closed by the server:
/// the handshake counts inside the header and start timeouts (1 s here), so
/// it cannot hold a slot. So is an HTTP/2 connection that goes quiet after
/// the handshake. (Without them these reads would never end; the
/// exact timing is a unit test in `http::serve` on a paused clock.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_tls_handshakes_are_closed() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().unwrap();
    make_ca(dir.path());
    let (cert, key) = make_cert(dir.path(), "server");
    let server = Server::start_with(
        dir.path(),
        &cert,
        &key,
        "handshake_timeout_secs = 1",
        "[http.limits]\nheader_timeout_secs = 1\n",
    );
    for (what, addr) in [("https", server.http), ("rtmps", server.rtmps)] {
        for cut_short in [false, true] {
            let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
            if cut_short {
                socket.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await.unwrap();
            }
            let mut rest = Vec::new();
            let read = tokio::time::timeout(POLL_LIMIT, socket.read_to_end(&mut rest)).await;
            assert!(
                read.is_ok(),
                "{what} (cut short: {cut_short}): still open after {POLL_LIMIT:?}:\n{}",
                server.log()
            );
        }
    }
    let ca = dir.path().join("ca.pem");
    let mut quiet_h2 = connect(server.http, &ca, &[b"h2"]).await;
    assert_eq!(quiet_h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut rest = Vec::new();
    let read = tokio::time::timeout(POLL_LIMIT, quiet_h2.read_to_end(&mut rest)).await;
    assert!(
        read.is_ok(),
        "a quiet HTTP/2 connection is still open:\n{}",
        server.log()
    );
}

/// `sealcast keyserver` serves HTTPS too: curl with the test CA gets
/// `/healthz` over HTTP/2.
#[test]
fn keyserver_speaks_https() {
    let dir = tempfile::tempdir().unwrap();
    make_ca(dir.path());
    let (cert, key) = make_cert(dir.path(), "keys");
    let secret = dir.path().join("token-secret");
    write_private(&secret, TOKEN_SECRET);
    let keyring = dir.path().join("keyring.json");
    sealcast::kms::local::LocalKms::open_or_create(&keyring).unwrap();
    let config = dir.path().join("keyserver.toml");
    write_private(
        &config,
        &format!(
            "[http]\nlisten = \"127.0.0.1:0\"\ntls_cert_file = {:?}\ntls_key_file = {:?}\n\
             [kms]\nkeyring = {:?}\n[auth]\ntoken_secret_file = {:?}\n[metrics]\nenabled = false\n",
            path_str(&cert),
            path_str(&key),
            path_str(&keyring),
            path_str(&secret)
        ),
    );
    let (_process, addr) = crate::support::process::start_keyserver(&config, &dir.path().join("keyserver.log"));
    let out = run(
        "curl",
        Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "--http2",
                "--cacert",
                path_str(&dir.path().join("ca.pem")),
            ])
            .args(["-w", " %{http_version}"])
            .arg(format!("https://{addr}/healthz")),
    );
    assert_eq!(out, "ok\n 2");
}

/// What `sealcast serve` says and does with an unusable certificate or key:
/// it exits non-zero before listening, naming the setting and the file.
#[test]
fn an_unusable_certificate_is_a_clear_error_at_start() {
    let dir = tempfile::tempdir().unwrap();
    make_ca(dir.path());
    let (cert, key) = make_cert(dir.path(), "good");
    let (_, other_key) = make_cert(dir.path(), "other");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not PEM at all\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let broken = dir.path().join("broken.pem");
    std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap();
    let cases: [(&str, &Path, &Path, &str); 5] = [
        ("missing", &missing, &key, "http.tls_cert_file"),
        ("garbage", &garbage, &key, "no PEM certificate in the file"),
        ("broken", &broken, &key, "malformed PEM: a BEGIN line has no END line"),
        ("no key", &cert, &garbage, "no PEM private key"),
        (
            "mismatch",
            &cert,
            &other_key,
            "the key does not belong to the certificate",
        ),
    ];
    let mut failures = Vec::new();
    for (label, cert, key, want) in cases {
        let case_dir = dir.path().join(label.replace(' ', "-"));
        std::fs::create_dir(&case_dir).unwrap();
        let secret = case_dir.join("token-secret");
        write_private(&secret, TOKEN_SECRET);
        let config = case_dir.join("sealcast.toml");
        write_private(&config, &config_text(&case_dir, &secret, cert, key));
        let log = case_dir.join("stderr");
        let mut process = Proc::spawn(
            "sealcast serve",
            Command::new(SEALCAST)
                .args(["serve", "--config", path_str(&config)])
                .current_dir(&case_dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(File::create(&log).unwrap()),
        );
        let status = process.wait(CHILD_LIMIT);
        let stderr = read_text(&log);
        if status.success() || !stderr.contains(want) || !stderr.contains("http.tls_") {
            failures.push(format!("{label}: {status}, want {want:?} in:\n{stderr}"));
        }
        // `config check` refuses the same file with the same words.
        let checked = Command::new(SEALCAST)
            .args(["config", "check", path_str(&config)])
            .current_dir(&case_dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&checked.stdout),
            String::from_utf8_lossy(&checked.stderr)
        );
        if checked.status.success() || !said.contains(want) {
            failures.push(format!(
                "config check, {label}: {}, want {want:?} in:\n{said}",
                checked.status
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `[metrics] tls = true`: a scraper gets `/metrics` over HTTPS with
/// `[http]`'s certificate, and plain HTTP gets no metrics.
#[test]
fn metrics_speak_https_with_the_http_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path());
    let (cert, key) = make_cert(dir.path(), "server");
    let port = crate::support::process::free_port();
    let metrics = format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\ntls = true\n");
    let server = Server::start_with(dir.path(), &cert, &key, "", &metrics);
    let scrape = |scheme: &str| {
        Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert", path_str(&ca)])
            .arg(format!("{scheme}://127.0.0.1:{port}/metrics"))
            .stdin(Stdio::null())
            .output()
            .expect("curl (scripts/test.sh installs it)")
    };
    let https = scrape("https");
    let text = String::from_utf8_lossy(&https.stdout);
    assert!(
        https.status.success() && text.contains("sealcast_streams_live"),
        "https scrape: {text}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&https.stderr),
        server.log()
    );
    let plain = scrape("http");
    assert!(
        !String::from_utf8_lossy(&plain.stdout).contains("sealcast_streams_live"),
        "plain HTTP got the metrics"
    );
}
