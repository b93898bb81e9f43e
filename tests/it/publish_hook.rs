//! The publish hook against a real backend: a small Python HTTP server that
//! checks every `Sealcast-Signature` with Python's own `hmac`, records what
//! it was asked, and answers by stream key. It admits a stream the TOML does
//! not list (which then plays with a token for it), refuses others (a 403, a
//! 2xx that is not the JSON, a hook that hangs past the timeout, and a key
//! the TOML lists: with a hook, the hook decides every publish), and nothing
//! reaches the disk for a refused publish.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sealcast::config::PublishHookConfig;
use sealcast::crypto::{self, DataKey};
use sealcast::names::StreamName;

use crate::support::certs::{make_ca, make_cert};
use crate::support::http;
use crate::support::logs::capture_logs;
use crate::support::playlist::{keyed_segments, parse, until_ended};
use crate::support::process::{Proc, free_port, path_str, read_text, write_private};
use crate::support::rtmp::{Fixture, PublishOutcome, Publisher};
use crate::support::server::{DEMO_KEY, TestServer};
use crate::support::{has_ts_sync, walk, with_safety_net};

const SECRET: &str = "hooksec-test-0123456789-abcdef";

/// Answers by key: `sk_alice` is admitted as `shows/alice`; `malformed` gets
/// a 200 that is not JSON; `hang` gets no answer for a minute; everything
/// else a 403. A bad signature gets a 401. Every request is recorded as a
/// JSON line (with whether its signature checked out).
const HOOK: &str = r#"
import hashlib, hmac, json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, secret, out = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3]

class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        fields = dict(p.split("=", 1) for p in self.headers.get("Sealcast-Signature", "").split(",") if "=" in p)
        want = hmac.new(secret, fields.get("t", "").encode() + b"." + body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(want, fields.get("v1", ""))
        asked = json.loads(body) if ok else {}
        with open(out, "a") as f:
            f.write(json.dumps({"ok": ok, "path": self.path, "type": self.headers.get("Content-Type"),
                                "asked": asked}) + "\n")
        key = asked.get("key")
        if not ok:
            status, answer = 401, b""
        elif key == "sk_alice":
            status, answer = 200, json.dumps({"stream": "shows/alice"}).encode()
        elif key == "malformed":
            status, answer = 200, b"yes, go ahead"
        elif key == "hang":
            time.sleep(60)
            return
        else:
            status, answer = 403, b'{"error": "no"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass

class Server(ThreadingHTTPServer):
    daemon_threads = True

server = Server(("127.0.0.1", port), Hook)
if len(sys.argv) > 5:  # TLS: certificate and key files
    import ssl
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[4], sys.argv[5])
    server.socket = context.wrap_socket(server.socket, server_side=True)
print("ready", flush=True)
server.serve_forever()
"#;

/// Starts the Python hook on a free port; returns it with that port.
fn start_hook(out: &Path) -> (Proc, u16) {
    start_hook_with(out, None)
}

/// [`start_hook`], over TLS with the certificate and key given.
fn start_hook_with(out: &Path, tls: Option<(&Path, &Path)>) -> (Proc, u16) {
    let port = free_port();
    let mut command = Command::new("python3");
    command.args(["-c", HOOK, &port.to_string(), SECRET, path_str(out)]);
    if let Some((cert, key)) = tls {
        command.args([path_str(cert), path_str(key)]);
    }
    let mut hook = Proc::spawn(
        "python publish hook",
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let stdout = hook.child.stdout.take().unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut ready).unwrap();
    assert_eq!(ready.trim(), "ready");
    (hook, port)
}

/// A server whose publishes the hook on `port` decides (300 ms timeout),
/// keeping its streams in `data` when given.
async fn start_server(port: u16, secret: &Path, data: Option<PathBuf>) -> TestServer {
    start_server_with(&format!("http://127.0.0.1:{port}/publish"), None, secret, data).await
}

/// [`start_server`] for the hook at `url`, trusting `ca` besides the
/// Mozilla roots.
async fn start_server_with(url: &str, ca: Option<&Path>, secret: &Path, data: Option<PathBuf>) -> TestServer {
    let secret = secret.to_owned();
    let url = url.to_owned();
    let ca = ca.map(Path::to_owned);
    TestServer::start_with_config("", |config| {
        config.auth.publish_hook = Some(PublishHookConfig {
            url,
            tls_ca_file: ca,
            // Short, so the hanging case is refused quickly; nothing
            // measures how long it took.
            timeout: Duration::from_millis(300),
            secret_env: None,
            secret_file: Some(secret),
        });
        if let Some(data) = data {
            config.storage.data_dir = data;
        }
    })
    .await
}

/// Publishes the fixture to `shows/alice` through the hook and waits for the
/// playlist to end; returns it.
async fn publish_alice(server: &TestServer) -> String {
    let mut publisher = Publisher::connect(server.rtmp, "shows").await;
    assert_eq!(
        publisher.request_publish("sk_alice?tier=gold").await,
        PublishOutcome::Accepted
    );
    publisher.send_fixture(&Fixture::load("baseline-aac44k.flv")).await;
    publisher.finish().await;
    let token = server.token("shows/alice", 600);
    until_ended(server.http, &format!("/shows/alice/index.m3u8?token={token}")).await
}

/// A runtime stream lives in its directory: after a restart it is unknown
/// (404) until the hook admits it again, and then its playlist continues
/// where it was, after a discontinuity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_stream_continues_after_a_restart_once_admitted_again() {
    with_safety_net(async {
        let root = tempfile::tempdir().unwrap();
        let secret = root.path().join("hook_secret");
        write_private(&secret, SECRET);
        let (_hook, port) = start_hook(&root.path().join("asked.jsonl"));
        let data = root.path().join("data");

        let server = start_server(port, &secret, Some(data.clone())).await;
        let first = parse(&publish_alice(&server).await);
        server.stop().await;

        let server = start_server(port, &secret, Some(data.clone())).await;
        let before = http::get(server.http, "/shows/alice/index.m3u8").await;
        assert_eq!(before.status, 404, "{}", before.text());
        let second = parse(&publish_alice(&server).await);
        let first_end = first.media_sequence + first.segments.len() as u64;
        assert!(second.media_sequence >= first.media_sequence, "{second:?}");
        let last = second.media_sequence + second.segments.len() as u64;
        assert!(last > first_end, "sequence numbers went on: {first_end} then {last}");
        assert!(
            second.discontinuity_sequence > first.discontinuity_sequence
                || second.segments.iter().any(|s| s.discontinuity),
            "no discontinuity between the two publishes"
        );
        server.stop().await;
    })
    .await;
}

// Current-thread, so every line the server logs is captured.
#[tokio::test]
async fn the_hook_admits_a_runtime_stream_and_refuses_the_rest() {
    let (_guard, logs) = capture_logs();
    with_safety_net(async {
        let root = tempfile::tempdir().unwrap();
        let secret = root.path().join("hook_secret");
        write_private(&secret, SECRET);
        let asked = root.path().join("asked.jsonl");
        let (_hook, port) = start_hook(&asked);
        let server = start_server(port, &secret, None).await;
        let data = server.data_dir();
        let on_disk_before = walk(&data);

        // (why, app, key): each refused with the status encoders know.
        let refusals = [
            ("the hook answers 403", "shows", "sk_mallory"),
            ("a 2xx that is not {\"stream\": ...}", "shows", "malformed"),
            ("no answer within the timeout", "shows", "hang"),
            ("a [[streams]] key: the hook decides every publish", "live", DEMO_KEY),
        ];
        for (why, app, key) in refusals {
            let mut publisher = Publisher::connect(server.rtmp, app).await;
            let outcome = publisher.request_publish(key).await;
            assert_eq!(
                outcome,
                PublishOutcome::Refused {
                    code: Some("NetStream.Publish.Denied".to_owned()),
                    closed: true
                },
                "{why}"
            );
        }
        assert_eq!(walk(&data), on_disk_before, "a refused publish left something on disk");
        assert!(
            server
                .registry
                .get(&StreamName::parse("shows/mallory").unwrap())
                .is_none()
        );
        assert!(!server.stream_info("live/demo").live);

        // Admitted: shows/alice is in no TOML; it is created, and it plays.
        let text = publish_alice(&server).await;
        let segments = keyed_segments(&text);
        assert!(!segments.is_empty(), "{text}");
        for segment in &segments {
            assert!(segment.uri.starts_with("/keys/shows/alice/"), "{}", segment.uri);
            let key = http::get(server.http, &segment.uri).await;
            assert_eq!(key.status, 200, "key {}: {}", segment.uri, key.text());
            let key: [u8; 16] = key.body.as_slice().try_into().unwrap();
            let media = http::get(server.http, &format!("/shows/alice/{}", segment.segment)).await;
            assert_eq!(media.status, 200, "{}", segment.segment);
            let mut body = media.body;
            crypto::decrypt_segment(&DataKey::from_bytes(key), segment.iv, &mut body).unwrap();
            assert!(
                has_ts_sync(&body) && body.len() % 188 == 0,
                "{} is not TS",
                segment.segment
            );
        }
        // The key needs a token for this stream: none, or another stream's, is refused.
        let bare = segments[0].uri.split("&token=").next().unwrap().to_owned();
        assert_eq!(http::get(server.http, &bare).await.status, 401, "{bare}");
        let other = format!("{bare}&token={}", server.token("live/demo", 600));
        assert_eq!(http::get(server.http, &other).await.status, 403);
        assert!(data.join("shows/alice").is_dir());

        // What the hook was asked: every request signed, with app, key,
        // client address and query.
        let log = read_text(&asked);
        let requests: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(requests.len(), 5, "{log}");
        assert!(
            requests.iter().all(|r| r["ok"] == true),
            "a signature did not check out:\n{log}"
        );
        assert!(
            requests
                .iter()
                .all(|r| r["path"] == "/publish" && r["type"] == "application/json"),
            "{log}"
        );
        let keys: Vec<&str> = requests.iter().map(|r| r["asked"]["key"].as_str().unwrap()).collect();
        assert_eq!(keys, ["sk_mallory", "malformed", "hang", DEMO_KEY, "sk_alice"], "{log}");
        let alice = &requests[4]["asked"];
        assert_eq!(
            (alice["app"].as_str(), alice["query"].as_str()),
            (Some("shows"), Some("tier=gold")),
            "{log}"
        );
        assert!(alice["client"].as_str().unwrap().starts_with("127.0.0.1:"), "{log}");
        assert!(requests[0]["asked"]["query"].is_null(), "{log}");
        server.stop().await;
    })
    .await;

    // The keys went to the hook only: never into a log line.
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    for key in ["sk_alice", "sk_mallory", DEMO_KEY] {
        assert!(!logged.contains(key), "{key} was logged:\n{logged}");
    }
    assert!(
        logged.contains("stream created at run time by the publish hook"),
        "{logged}"
    );
    assert!(
        logged.contains("publish refused: no usable answer from the publish hook"),
        "{logged}"
    );
}

/// The hook over `https://` (the request carries the stream key), its
/// certificate from a private CA trusted through `publish_hook_tls_ca_file`:
/// it admits the stream as over plain HTTP, and it was asked with the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_hook_of_a_private_ca_admits_a_stream() {
    with_safety_net(async {
        let root = tempfile::tempdir().unwrap();
        let ca = make_ca(root.path());
        let (cert, key) = make_cert(root.path(), "hook");
        let secret = root.path().join("hook_secret");
        write_private(&secret, SECRET);
        let asked = root.path().join("asked.jsonl");
        let (_hook, port) = start_hook_with(&asked, Some((&cert, &key)));
        let url = format!("https://localhost:{port}/publish");
        let server = start_server_with(&url, Some(&ca), &secret, None).await;
        let playlist = parse(&publish_alice(&server).await);
        assert!(!playlist.segments.is_empty(), "{playlist:?}");
        let line: serde_json::Value = serde_json::from_str(read_text(&asked).lines().next().unwrap()).unwrap();
        assert_eq!(
            (&line["ok"], &line["asked"]["key"]),
            (&true.into(), &"sk_alice".into()),
            "{line}"
        );
        server.stop().await;
    })
    .await;
}
