//! Webhooks against a real receiver: a small Python HTTP server that checks
//! every `Sealcast-Signature` with Python's own `hmac`. The receiver is down
//! while two streams publish and unpublish; once it comes up, every event
//! arrives exactly once by id, in order per stream, and the queue empties.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::certs::{make_ca, make_cert};
use crate::support::http;
use crate::support::playlist::{POLL_LIMIT, until_ended, wait_for};
use crate::support::process::{Proc, free_port, path_str, read_text, write_private};
use crate::support::rtmp::{Fixture, Publisher};
use crate::support::server::{DEMO_KEY, OTHER_KEY, TestServer};
use crate::support::with_safety_net;

pub(crate) const SECRET: &str = "whsec-test-0123456789-abcdef";

/// Accepts POSTs whose signature checks out (a JSON line per event into the
/// output file, 200) and refuses others (a `bad` line, 400).
const RECEIVER: &str = r#"
import hashlib, hmac, json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, secret, out = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3]

class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        fields = dict(p.split("=", 1) for p in self.headers.get("Sealcast-Signature", "").split(","))
        want = hmac.new(secret, fields.get("t", "").encode() + b"." + body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(want, fields.get("v1", ""))
        event = json.loads(body) if ok else {}
        with open(out, "a") as f:
            f.write(json.dumps({"ok": ok, "id": event.get("id"), "type": event.get("type"),
                                "stream": event.get("stream"), "data": event.get("data"),
                                "header_id": self.headers.get("Sealcast-Event-Id")}) + "\n")
        self.send_response(200 if ok else 400)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", port), Hook)
if len(sys.argv) > 5:  # TLS: certificate and key files
    import ssl
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[4], sys.argv[5])
    server.socket = context.wrap_socket(server.socket, server_side=True)
print("ready", flush=True)
server.serve_forever()
"#;

async fn scrape(addr: SocketAddr, series: &str) -> f64 {
    let text = http::get(addr, "/metrics").await.text();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{series} ")))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

async fn publish_once(server: &TestServer, key: &str, stream: &str) {
    let mut publisher = Publisher::publish(server.rtmp, key).await;
    publisher.send_fixture(&Fixture::load("baseline-aac44k.flv")).await;
    publisher.finish().await;
    until_ended(server.http, &format!("/{stream}/index.m3u8")).await;
}

/// Starts the receiver on `port`, writing to `out`; over TLS with the
/// certificate and key given.
pub(crate) fn start_receiver(port: u16, out: &Path, tls: Option<(&Path, &Path)>) -> Proc {
    let mut command = Command::new("python3");
    command.args(["-c", RECEIVER, &port.to_string(), SECRET, path_str(out)]);
    if let Some((cert, key)) = tls {
        command.args([path_str(cert), path_str(key)]);
    }
    let mut receiver = Proc::spawn(
        "python webhook receiver",
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let stdout = receiver.child.stdout.take().unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut ready).unwrap();
    assert_eq!(ready.trim(), "ready");
    receiver
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_once_in_order_after_the_receiver_was_down() {
    with_safety_net(async {
        let root = tempfile::tempdir().unwrap();
        let secret = root.path().join("webhook_secret");
        write_private(&secret, SECRET);
        let port = free_port();
        let server = TestServer::start(&format!(
            "[webhooks]\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret_file = {:?}\n\
             initial_backoff_ms = 50\nmax_backoff_secs = 1\n",
            path_str(&secret)
        ))
        .await;

        // The receiver is down: two publishes of live/demo, one of live/other.
        publish_once(&server, DEMO_KEY, "live/demo").await;
        publish_once(&server, OTHER_KEY, "live/other").await;
        publish_once(&server, DEMO_KEY, "live/demo").await;
        assert_eq!(scrape(server.metrics, "sealcast_webhook_events_pending").await, 6.0);
        assert_eq!(
            scrape(server.metrics, "sealcast_webhook_events_delivered_total").await,
            0.0
        );

        // The receiver comes up on the configured port.
        let out = root.path().join("events.jsonl");
        let _receiver = start_receiver(port, &out, None);

        wait_for("every webhook delivered", POLL_LIMIT, || async {
            (scrape(server.metrics, "sealcast_webhook_events_pending").await == 0.0).then_some(())
        })
        .await;
        assert_eq!(
            scrape(server.metrics, "sealcast_webhook_events_delivered_total").await,
            6.0
        );
        assert_eq!(
            scrape(server.metrics, "sealcast_webhook_events_dropped_total").await,
            0.0
        );

        let text = read_text(&out);
        let events: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert!(
            events.iter().all(|e| e["ok"] == true),
            "a signature did not check out:\n{text}"
        );
        let ids: HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
        assert_eq!((events.len(), ids.len()), (6, 6), "every event exactly once:\n{text}");
        assert!(events.iter().all(|e| e["id"] == e["header_id"]), "{text}");
        let mut per_stream: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
        for event in &events {
            per_stream.entry(event["stream"].as_str().unwrap()).or_default().push((
                event["type"].as_str().unwrap(),
                event["data"]["publish_id"].as_str().unwrap(),
            ));
        }
        let demo = &per_stream["live/demo"];
        let kinds: Vec<&str> = demo.iter().map(|(kind, _)| *kind).collect();
        assert_eq!(
            kinds,
            [
                "stream.published",
                "stream.unpublished",
                "stream.published",
                "stream.unpublished"
            ],
            "{text}"
        );
        assert_eq!(demo[0].1, demo[1].1, "{text}");
        assert_eq!(demo[2].1, demo[3].1, "{text}");
        assert_ne!(demo[0].1, demo[2].1, "{text}");
        let other: Vec<&str> = per_stream["live/other"].iter().map(|(kind, _)| *kind).collect();
        assert_eq!(other, ["stream.published", "stream.unpublished"], "{text}");
        server.stop().await;
    })
    .await;
}

/// An `https://` receiver whose certificate comes from a private CA, trusted
/// through `tls_ca_file`, gets the events, signed and whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_an_https_receiver_of_a_private_ca() {
    with_safety_net(async {
        let root = tempfile::tempdir().unwrap();
        let ca = make_ca(root.path());
        let (cert, key) = make_cert(root.path(), "receiver");
        let secret = root.path().join("webhook_secret");
        write_private(&secret, SECRET);
        let out = root.path().join("events.jsonl");
        let port = free_port();
        let _receiver = start_receiver(port, &out, Some((&cert, &key)));
        let server = TestServer::start(&format!(
            "[webhooks]\nurl = \"https://localhost:{port}/hook\"\ntls_ca_file = {:?}\n\
             secret_file = {:?}\ninitial_backoff_ms = 50\nmax_backoff_secs = 1\n",
            path_str(&ca),
            path_str(&secret)
        ))
        .await;
        publish_once(&server, DEMO_KEY, "live/demo").await;
        wait_for("both events delivered over TLS", POLL_LIMIT, || async {
            (scrape(server.metrics, "sealcast_webhook_events_delivered_total").await == 2.0).then_some(())
        })
        .await;
        let text = read_text(&out);
        let kinds: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|e| {
                assert_eq!(e["ok"], true, "{text}");
                e["type"].clone()
            })
            .collect();
        assert_eq!(kinds, ["stream.published", "stream.unpublished"], "{text}");
        server.stop().await;
    })
    .await;
}
