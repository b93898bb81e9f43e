//! An S3 endpoint that answers 403, 500, 503, or holds every request 10 s
//! (a fault-injecting proxy in front of moto, [`FaultProxy`]), one fault
//! after the other in the middle of one publish. Viewers reach the stream
//! as docs/cluster.md describes: nginx (the CDN) in front of an edge, with
//! the ingest node as the backup origin for segments. For each fault: the
//! ingest node serves a stored segment from memory (200, the bytes in the
//! bucket), the CDN serves a stored segment it never cached (200), the
//! playlists stay 200; the log names the operation, the bucket and the
//! status; the node keeps running and publication resumes by itself with a
//! discontinuity; every listed segment is stored; nothing is plaintext.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use object_store::ObjectStoreExt as _;

use crate::edge::start_edge;
use crate::s3_storage::{BUCKET, PREFIX, S3Server, has_ts_run, objects, serve, write_config};
use crate::support::http;
use crate::support::kms::publish;
use crate::support::playlist::{self, wait_for};
use crate::support::process::{Proc, free_port, path_str};
use crate::support::s3_fault::{Fault, FaultProxy};
use crate::support::server::DEMO_KEY;
use crate::support::with_safety_net;

/// nginx caching segments, playlists through to `edge`, segments from
/// `edge` or, when it fails, from the ingest node `origin` (`backup`).
fn start_cdn(dir: &Path, edge: SocketAddr, origin: SocketAddr) -> (Proc, SocketAddr) {
    let port = free_port();
    let d = path_str(dir);
    for sub in ["cache", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let conf = format!(
        r#"daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  proxy_cache_path {d}/cache keys_zone=segments:1m max_size=100m inactive=10m;
  upstream edges {{ server {edge}; }}
  upstream segments {{ server {edge} max_fails=0; server {origin} backup; }}
  server {{
    listen 127.0.0.1:{port};
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_cache segments;
    proxy_cache_lock on;
    proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;
    add_header X-Cache-Status $upstream_cache_status always;
    location ~ \.ts$ {{
      proxy_pass http://segments;
      proxy_read_timeout 5s;
      proxy_next_upstream error timeout http_500 http_502 http_503 http_504 http_404;
    }}
    location / {{ proxy_pass http://edges; }}
  }}
}}
"#
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let nginx = Proc::spawn(
        "nginx",
        Command::new("nginx")
            .args(["-c", path_str(&path), "-p", d])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    (nginx, SocketAddr::from(([127, 0, 0, 1], port)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_errors_and_slowness_are_survived_logged_and_never_a_5xx_for_stored_segments() {
    with_safety_net(async {
        let s3 = S3Server::moto().await;
        let moto: SocketAddr = s3.endpoint().trim_start_matches("http://").parse().unwrap();
        let proxy = FaultProxy::start(moto).await;
        let dir = tempfile::tempdir().unwrap();
        // A window long enough to keep every gap of the run in view.
        let config = write_config(dir.path(), &proxy.endpoint(), BUCKET, 100);
        let (mut server, rtmp, ingest) = serve(&config, (s3.access_key_id, s3.secret_access_key)).unwrap();
        let _publisher = publish(rtmp, DEMO_KEY, 170, true);
        let (_edge, edge) = start_edge(&config, &s3, "edge");
        let cdn_dir = dir.path().join("cdn");
        let (_nginx, cdn) = start_cdn(&cdn_dir, edge, ingest);
        wait_for("nginx to listen", Duration::from_secs(30), || async {
            tokio::net::TcpStream::connect(cdn).await.ok()
        })
        .await;

        let store = s3.client();
        let playlist_path = object_store::path::Path::from(format!("{PREFIX}live/demo/index.m3u8"));
        let stored = || async {
            let bytes = store.get(&playlist_path).await.ok()?.bytes().await.ok()?;
            Some(playlist::parse(&String::from_utf8_lossy(&bytes)))
        };
        let mut listed = 0;
        for fault in [
            Fault::Status(403),
            Fault::Status(500),
            Fault::Status(503),
            Fault::Slow(Duration::from_secs(10)),
        ] {
            // Publication runs (again): two more segments stored and listed.
            let parsed = wait_for("two more stored segments", Duration::from_secs(40), || async {
                stored().await.filter(|p| p.segments.len() >= listed + 2)
            })
            .await;
            listed = parsed.segments.len();
            let newest = &parsed.segments[listed - 1].uri;
            let older = &parsed.segments[listed - 2].uri;
            let in_bucket = store
                .get(&object_store::path::Path::from(format!("{PREFIX}live/demo/{newest}")))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();

            // The edge and the CDN have read the playlist once.
            for addr in [edge, cdn] {
                assert_eq!(http::get(addr, "/live/demo/index.m3u8").await.status, 200);
            }

            proxy.set(fault);
            // The ingest node: from memory, whole and in part.
            let path = format!("/live/demo/{newest}");
            let whole = http::get(ingest, &path).await;
            assert_eq!(whole.status, 200, "{fault:?}: ingest, {path}");
            assert_eq!(whole.body, in_bucket, "{fault:?}: the stored bytes");
            let part = http::get_with(ingest, &path, &[("Range", "bytes=188-375")]).await;
            assert_eq!((part.status, &part.body[..]), (206, &in_bucket[188..376]), "{fault:?}");
            // The CDN, for a segment it never cached: the edge fails, the
            // ingest node answers.
            let via_cdn = http::get(cdn, &format!("/live/demo/{older}")).await;
            assert_eq!(via_cdn.status, 200, "{fault:?}: CDN, {older}: {}", via_cdn.text());
            // Playlists: the node's own, and the edge's last one read.
            for (who, addr) in [("ingest", ingest), ("edge", edge), ("cdn", cdn)] {
                let response = http::get(addr, "/live/demo/index.m3u8").await;
                assert_eq!(response.status, 200, "{fault:?}: {who} playlist");
                assert!(response.text().contains(older.as_str()), "{fault:?}: {who} playlist");
            }
            // Long enough for a segment to miss its deadline (3 × 2 s).
            tokio::time::sleep(Duration::from_secs(8)).await;
            proxy.set(Fault::Pass);
        }
        // Resumed after the last fault too.
        let parsed = wait_for("publication to resume", Duration::from_secs(40), || async {
            stored().await.filter(|p| p.segments.len() >= listed + 2)
        })
        .await;
        assert!(server.try_status().is_none(), "the ingest node must keep running");

        // Each fault left a gap, marked; everything listed is stored.
        let gaps = parsed.segments.iter().filter(|s| s.discontinuity).count();
        assert!(gaps >= 4, "{gaps} discontinuities for 4 faults: {parsed:?}");
        let all = objects(&store).await;
        let names: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
        for segment in &parsed.segments {
            let key = format!("{PREFIX}live/demo/{}", segment.uri);
            assert!(names.contains(&key.as_str()), "{key} listed but not stored");
        }
        for (name, bytes) in &all {
            assert!(!has_ts_run(bytes), "{name} holds plaintext MPEG-TS");
        }

        // The log names operation, bucket and status of each fault.
        let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
        for status in ["403", "500", "503", "timeout"] {
            let line = format!("in bucket {BUCKET} failed: status={status}");
            assert!(
                log.lines()
                    .any(|l| l.contains("S3 put of live/demo/") && l.contains(&line)),
                "no log line naming put, bucket and status {status}:\n{log}"
            );
        }
        assert!(log.contains("segment dropped"), "drops are logged");
        let edge_log = std::fs::read_to_string(dir.path().join("edge.log")).unwrap();
        assert!(edge_log.contains("serving the last one read"), "{edge_log}");
    })
    .await;
}
