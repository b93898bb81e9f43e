//! The whole cluster of `scripts/cluster-demo.sh`, end to end, with the real
//! software it starts: redis-server, moto's S3 server, two ingest nodes, two
//! edges, haproxy for RTMP and nginx's `proxy_cache` as the CDN. ffmpeg
//! pushes through haproxy to ingest A; a second publisher on ingest B is
//! refused; the cache serves repeated segments from itself and never a
//! playlist or a key; ingest A is SIGKILLed mid-stream and the encoder's
//! retries through haproxy land on B, which takes the stream over; the
//! playlist through the cache grows with one discontinuity and media
//! sequence numbers that only grow, ffmpeg plays it through the cache with
//! the keys the edges hand out, hls.js in headless Chromium plays the edge's
//! watch page through the cache across the takeover (media after it decoded),
//! and nothing in the bucket is plaintext or a data key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use object_store::ClientOptions;
use object_store::aws::AmazonS3Builder;

use crate::s3_storage::{has_ts_run, objects};
use crate::support::http;
use crate::support::kms::fetch_key;
use crate::support::playlist::{keyed_segments, parse, wait_for};
use crate::support::process::{Proc, free_port, path_str};
use crate::support::rtmp::{PublishOutcome, Publisher};
use crate::support::{contains, count_frames, fixture};

/// The demo, detached; stopped (every process it started) on drop.
struct Cluster {
    dir: tempfile::TempDir,
    env: HashMap<String, String>,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        // A block of 51 ports above a free one, out of the ephemeral range.
        let base = 20_000 + (free_port() % 200) * 100;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster-demo.sh");
        let output = Command::new(script)
            .args(["--detach", "--dir", path_str(dir.path())])
            .env("BASE_PORT", base.to_string())
            .env("SEALCAST_BIN", env!("CARGO_BIN_EXE_sealcast"))
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/cluster-demo.sh");
        let cluster = Cluster {
            env: parse_env(&dir.path().join("cluster.env")),
            dir,
        };
        assert!(
            output.status.success(),
            "cluster-demo.sh failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        cluster
    }

    fn get(&self, name: &str) -> &str {
        self.env.get(name).unwrap_or_else(|| panic!("no {name} in cluster.env"))
    }

    fn addr(&self, name: &str) -> SocketAddr {
        self.get(name).parse().unwrap()
    }

    fn playlist_path(&self) -> String {
        format!("/live/demo/index.m3u8?token={}", self.get("TOKEN"))
    }

    /// ffmpeg pushing the fixture in a loop, in real time, through haproxy.
    fn push(&self, label: &str) -> Proc {
        Proc::spawn(
            "ffmpeg push",
            Command::new("ffmpeg")
                .args(["-nostdin", "-v", "error", "-re", "-stream_loop", "-1", "-i"])
                .arg(fixture("baseline-aac44k.flv"))
                .args(["-c", "copy", "-f", "flv", self.get("RTMP_URL")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(self.dir.path().join(format!("{label}.log"))).unwrap()),
        )
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster-demo.sh");
        let _ = Command::new(script)
            .args(["--stop", "--dir", path_str(self.dir.path())])
            .status();
    }
}

fn parse_env(path: &PathBuf) -> HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// tests/browser/cluster.mjs playing a page in headless Chromium; its
/// reports (one JSON object every half second) collected as they come.
struct Browser {
    _node: Proc,
    reports: Arc<Mutex<Vec<Value>>>,
}

impl Browser {
    fn start(url: &str, seconds: u32, dir: &Path) -> Browser {
        use std::io::BufRead as _;
        let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
        assert!(
            browser_dir.join("node_modules/playwright-core").exists() && Path::new("/usr/bin/chromium").exists(),
            "needs chromium (apt-get install chromium) and tests/browser/node_modules (npm ci in tests/browser)"
        );
        let config = serde_json::json!({
            "url": url,
            "seconds": seconds,
            "userDataDir": dir.join("chromium-profile"),
            "chromium": "/usr/bin/chromium",
        });
        let mut node = Proc::spawn(
            "node cluster.mjs",
            Command::new("node")
                .arg(browser_dir.join("cluster.mjs"))
                .arg(config.to_string())
                .current_dir(&browser_dir)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(std::fs::File::create(dir.join("browser.log")).unwrap()),
        );
        let reports = Arc::new(Mutex::new(Vec::new()));
        let (stdout, sink) = (node.child.stdout.take().unwrap(), Arc::clone(&reports));
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(report) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(report);
                }
            }
        });
        Browser { _node: node, reports }
    }

    /// The first report (from now on, or already in) for which `done` holds.
    async fn report_where(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let done = &done;
        wait_for(what, Duration::from_secs(120), || async move {
            let reports = self.reports.lock().unwrap();
            if let Some(error) = reports.iter().find_map(|r| r.get("error")) {
                panic!("cluster.mjs: {error}");
            }
            reports.iter().find(|r| done(r)).cloned()
        })
        .await
    }
}

fn num(report: &Value, key: &str) -> f64 {
    report[key].as_f64().unwrap_or(0.0)
}

/// The playlist through the cache, once `done` holds for it.
async fn playlist_where(cluster: &Cluster, what: &str, done: impl Fn(&str) -> bool) -> String {
    let (cache, path, done) = (cluster.addr("CACHE"), cluster.playlist_path(), &done);
    wait_for(what, Duration::from_secs(90), || {
        let path = path.clone();
        async move {
            let response = http::get(cache, &path).await;
            let text = response.text();
            (response.status == 200 && done(&text)).then_some(text)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_fail_over_and_play_through_the_whole_cluster() {
    // Longer than the usual safety net: a browser plays across a failover.
    let whole = tokio::time::timeout(Duration::from_secs(300), async {
        let cluster = Cluster::start();
        let cache = cluster.addr("CACHE");
        let mut first = cluster.push("push-1");
        let text = playlist_where(&cluster, "two segments from ingest A", |t| keyed_segments(t).len() >= 2).await;
        assert!(
            cluster.log("ingest-a").contains("publish accepted"),
            "A took the first push"
        );
        // hls.js plays the edge's watch page through the cache.
        let watch = format!("http://{cache}/watch/live/demo?token={}", cluster.get("TOKEN"));
        let browser = Browser::start(&watch, 200, cluster.dir.path());
        browser
            .report_where("hls.js to play from ingest A", |r| num(r, "frames") > 0.0)
            .await;

        // A second publisher for the stream, on the other node, is refused.
        let mut second = Publisher::connect(cluster.addr("INGEST_B_RTMP"), "live").await;
        assert!(
            matches!(
                second.request_publish(cluster.get("PUBLISH_KEY")).await,
                PublishOutcome::Refused { .. }
            ),
            "a second publisher was admitted on ingest B"
        );

        // The CDN caches segments, never playlists or keys.
        let segment = &keyed_segments(&text)[0];
        let path = format!("/live/demo/{}", segment.segment);
        let statuses: Vec<Option<String>> = futures_util::future::join_all([0, 1].map(|_| http::get(cache, &path)))
            .await
            .into_iter()
            .map(|r| r.header("x-cache-status").map(str::to_owned))
            .collect();
        let again = http::get(cache, &path).await;
        assert_eq!(
            again.header("x-cache-status"),
            Some("HIT"),
            "segment statuses {statuses:?}"
        );
        // The playlist was fetched with the token: its key URIs carry it.
        let key_path = segment.uri.clone();
        for path in [cluster.playlist_path(), "/live/demo/index.m3u8".to_owned(), key_path] {
            for _ in 0..2 {
                let response = http::get(cache, &path).await;
                assert_eq!(response.status, 200, "{path}");
                assert_ne!(
                    response.header("x-cache-status"),
                    Some("HIT"),
                    "{path} came from the cache"
                );
            }
        }

        // Ingest A dies mid-stream; the encoder's retries land on B.
        let pid = cluster.get("PID_INGEST_A");
        assert!(Command::new("kill").args(["-9", pid]).status().unwrap().success());
        first.kill();
        let before = parse(&playlist_where(&cluster, "the playlist", |_| true).await);
        // Like an encoder's reconnect loop: push again until ingest B took it.
        let mut takeover = None;
        for attempt in 0..20 {
            let mut push = cluster.push(&format!("push-2-{attempt}"));
            let admitted = wait_for("the push to be admitted or to fail", Duration::from_secs(20), || {
                let status = push.try_status();
                let accepted = cluster.log("ingest-b").contains("publish accepted");
                async move { (accepted || status.is_some()).then_some(accepted) }
            })
            .await;
            if admitted {
                takeover = Some(push);
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let _takeover = takeover.expect("a push through haproxy was admitted by ingest B after ingest A died");
        let after = playlist_where(&cluster, "segments from ingest B after a discontinuity", |t| {
            let p = parse(t);
            p.segments.iter().skip_while(|s| !s.discontinuity).count() >= 3
        })
        .await;
        let after = parse(&after);
        assert!(after.media_sequence >= before.media_sequence);
        assert_eq!(
            after.segments.iter().filter(|s| s.discontinuity).count(),
            1,
            "{after:?}"
        );

        // The browser resumes by itself: it fetches ingest B's segments and
        // plays past what it had buffered when it asked for the first one.
        let first_of_b = &after.segments.iter().find(|s| s.discontinuity).unwrap().uri;
        let publish_b = format!("{}-", first_of_b.rsplit_once('-').unwrap().0);
        let from_b = |r: &Value| {
            r["segments"]
                .as_array()
                .is_some_and(|s| s.iter().any(|f| f.as_str().is_some_and(|f| f.starts_with(&publish_b))))
        };
        let asked = browser
            .report_where("hls.js to fetch ingest B's segments", from_b)
            .await;
        let (buffered_from_a, frames_then) = (num(&asked, "bufferedEnd"), num(&asked, "frames"));
        // One more segment of A's may still have been on its way then (4 s).
        let played = browser
            .report_where("hls.js to play ingest B's media", |r| {
                num(r, "currentTime") > buffered_from_a + 6.0 && num(r, "frames") > frames_then
            })
            .await;
        assert!(
            num(&played, "frames") > frames_then,
            "frames decoded after the takeover: {played}"
        );
        eprintln!(
            "browser: first segment of B asked at {} ms (buffered to {buffered_from_a:.1} s, {frames_then} frames); \
             at {} ms played to {:.1} s, {} frames",
            num(&asked, "t"),
            num(&played, "t"),
            num(&played, "currentTime"),
            num(&played, "frames")
        );

        // Every listed segment's key comes from an edge; ffmpeg plays through the cache.
        let text = http::get(cache, "/live/demo/index.m3u8").await.text();
        let mut data_keys = Vec::new();
        for segment in keyed_segments(&text) {
            let (status, key, _) = fetch_key(cluster.addr("EDGE_2"), &segment.uri, cluster.get("TOKEN")).await;
            assert_eq!((status, key.len()), (200, 16), "key of {}", segment.segment);
            data_keys.push(key);
        }
        let played = cluster.dir.path().join("played.ts");
        let url = format!("http://{cache}{}", cluster.playlist_path());
        let status = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-live_start_index", "0", "-i", &url])
            .args(["-t", "12", "-map", "0", "-c", "copy", "-f", "mpegts", path_str(&played)])
            .status()
            .unwrap();
        assert!(status.success(), "ffmpeg playback through the cache");
        assert!(count_frames(&played).video > 0);

        // Nothing in the bucket is plaintext TS or a data key.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store = AmazonS3Builder::new()
            .with_bucket_name(cluster.get("BUCKET"))
            .with_region("us-east-1")
            .with_endpoint(cluster.get("S3_ENDPOINT"))
            .with_access_key_id("demo")
            .with_secret_access_key("demo-secret")
            .with_virtual_hosted_style_request(false)
            .with_client_options(ClientOptions::new().with_allow_http(true))
            .build()
            .unwrap();
        let all = objects(&store).await;
        assert!(all.len() >= 4, "{} objects", all.len());
        for (name, bytes) in &all {
            assert!(!has_ts_run(bytes), "{name} holds plaintext MPEG-TS");
            assert!(data_keys.iter().all(|k| !contains(bytes, k)), "{name} holds a data key");
        }
    })
    .await;
    assert!(whole.is_ok(), "the cluster test did not finish within 300 s");
}
