//! The watch page in a real browser: Debian's headless Chromium, driven by
//! playwright-core (tests/browser/watch.mjs), plays the encrypted live stream
//! with hls.js while ffmpeg pushes a fixture in real time, with a key change
//! every two segments. scripts/test.sh installs Chromium (apt) and the npm
//! packages (`npm ci` in tests/browser). hls.js is the release embedded in
//! sealcast, served by it under the default configuration; Chromium resolves
//! no host name but 127.0.0.1, so nothing can come from a CDN.
//!
//! A second test plays the same stream with one-time key tickets on. The two
//! take turns (two Chromiums and two encoders on a small machine would starve
//! each other's frame counts).
//!
//! Screenshots land in `target/test-artifacts/browser/` (the ticket test's in
//! its `tickets/` subdirectory).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::fixture;
use crate::support::playlist::until_listed;
use crate::support::process::{Proc, read_text};
use crate::support::server::{DEMO_KEY, TestServer};
use sealcast::config::Config;
use sealcast::http::web::{EXPIRED_TEXT, REFUSED_TEXT, TOKEN_NEEDED_TEXT, WRONG_STREAM_TEXT};
use serde_json::Value;
use tokio::sync::Mutex;

pub(crate) const CHROMIUM: &str = "/usr/bin/chromium";
/// 640x360 H.264 High with B-frames at 30 fps, a keyframe every 2 s, 10 s long.
const FIXTURE: &str = "high-bframes-aac48k.flv";
/// Wall-clock seconds the playing page is watched.
const PLAY_SECS: u64 = 10;
/// Lifetime of the token that runs out while the stream plays. It is minted
/// before Chromium starts: 14 s ran out before the first frame once, with the
/// suite running beside a soak (load 5 on 2 cores).
const SHORT_TOKEN_SECS: i64 = 24;
/// A uniform picture has variance 0; the fixture's test pattern, hundreds.
const MIN_PICTURE_VARIANCE: f64 = 100.0;
/// Where the key URIs of `live/demo` start; the key id follows.
const DEMO_KEY_PREFIX: &str = "/keys/live/demo/";

/// Held by each test while its browser and encoder run.
pub(crate) static ONE_BROWSER_AT_A_TIME: Mutex<()> = Mutex::const_new(());

pub(crate) fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("browser")
}

/// `target/test-artifacts/browser/<sub>`, created.
pub(crate) fn artifacts_dir(sub: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("test-artifacts")
        .join("browser")
        .join(sub);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Fails with what to install when a tool is missing: this test must run.
pub(crate) fn require_tools() {
    let missing: Vec<&str> = [
        (Path::new(CHROMIUM).exists(), "chromium (apt-get install chromium)"),
        (
            Command::new("node").arg("--version").output().is_ok(),
            "node (apt-get install nodejs npm)",
        ),
        (
            browser_dir().join("node_modules/playwright-core").exists(),
            "tests/browser/node_modules (npm ci in tests/browser)",
        ),
        (
            Command::new("ffmpeg").arg("-version").output().is_ok(),
            "ffmpeg (apt-get install ffmpeg)",
        ),
    ]
    .into_iter()
    .filter_map(|(present, what)| (!present).then_some(what))
    .collect();
    assert!(
        missing.is_empty(),
        "the browser test needs {}; scripts/test.sh installs them",
        missing.join(", ")
    );
}

/// ffmpeg publishing a fixture in real time (`-re`), looped; ended when
/// dropped.
pub(crate) struct Encoder {
    _process: Proc,
}

impl Encoder {
    pub(crate) fn publish(rtmp: SocketAddr, key: &str, fixture_name: &str, loops: u32) -> Self {
        let process = Proc::spawn(
            "ffmpeg publisher",
            Command::new("ffmpeg")
                .args([
                    "-nostdin",
                    "-v",
                    "error",
                    "-re",
                    "-stream_loop",
                    &loops.to_string(),
                    "-i",
                ])
                .arg(fixture(fixture_name))
                .args(["-c", "copy", "-f", "flv"])
                .arg(format!("rtmp://{rtmp}/live/{key}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null()),
        );
        Self { _process: process }
    }
}

/// Waits until the stream's playlist lists a segment.
async fn wait_for_first_segment(addr: SocketAddr, path: &str) {
    until_listed(addr, path).await;
}

/// Runs watch.mjs with `config` and parses the JSON it prints; kills it
/// after `limit`.
async fn run_browser(config: Value, limit: Duration) -> Value {
    tokio::task::spawn_blocking(move || {
        let out = tempfile::tempdir().unwrap();
        let (stdout_path, stderr_path) = (out.path().join("stdout"), out.path().join("stderr"));
        let mut node = Proc::spawn(
            "node watch.mjs",
            Command::new("node")
                .arg(browser_dir().join("watch.mjs"))
                .arg(config.to_string())
                .current_dir(browser_dir())
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&stdout_path).unwrap())
                .stderr(std::fs::File::create(&stderr_path).unwrap()),
        );
        // Past the limit the guard ends it.
        node.wait(limit);
        let stdout = read_text(&stdout_path);
        let stderr = read_text(&stderr_path);
        let line = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(line).unwrap_or_else(|e| panic!("watch.mjs output ({e}):\n{stdout}\nstderr:\n{stderr}"))
    })
    .await
    .unwrap()
}

fn f64_of(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} in {v:#}"))
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} in {v:#}"))
}

fn len_of(v: &Value, key: &str) -> usize {
    v[key].as_array().unwrap_or_else(|| panic!("{key} in {v:#}")).len()
}

/// The server for a browser test, with 2 s segments and a key change every
/// two segments; `edit` changes the parsed config. hls.js is the default: the
/// release embedded in sealcast (Chromium resolves no host but 127.0.0.1, so
/// a CDN could not be reached).
async fn start_server(edit: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::start_with_config(
        "[hls]\nsegment_duration_secs = 2\n[encryption]\nsegments_per_key = 2\n",
        edit,
    )
    .await
}

/// The "play" scenario's judgement, with key URIs carrying `credential`
/// (`token` or `ticket`) and never the other one. Returns the distinct key
/// ids seen.
fn assert_plays(play: &Value, credential: &str) -> Vec<String> {
    let other = if credential == "token" { "ticket" } else { "token" };
    assert_eq!(play["httpStatus"], 200, "{play:#}");
    assert_eq!(play["started"], true, "playback never started: {play:#}");
    assert_eq!(str_of(play, "engine"), "hls.js", "{play:#}");
    assert!(f64_of(play, "wallSecs") >= PLAY_SECS as f64, "{play:#}");
    assert!(
        f64_of(play, "advanceSecs") >= 8.0,
        "currentTime advanced too little: {play:#}"
    );
    assert!(f64_of(play, "totalVideoFrames") >= 200.0, "too few frames: {play:#}");
    assert_eq!(len_of(play, "fatalErrors"), 0, "hls.js fatal errors: {play:#}");
    // keyUris are distinct request paths, so distinct key ids even when
    // every playlist refresh brings new ticket URIs for the same key.
    let key_ids: Vec<String> = play["keyUris"]
        .as_array()
        .unwrap()
        .iter()
        .map(|uri| {
            let path = uri.as_str().unwrap();
            let id = path
                .strip_prefix(DEMO_KEY_PREFIX)
                .unwrap_or_else(|| panic!("key URI {path} outside {DEMO_KEY_PREFIX}: {play:#}"));
            assert!(!id.is_empty() && !id.contains('/'), "key id in {path}: {play:#}");
            id.to_owned()
        })
        .collect();
    assert!(key_ids.len() >= 2, "key rotation not seen: {play:#}");
    let statuses = play["keyStatuses"].as_array().unwrap();
    assert!(!statuses.is_empty(), "{play:#}");
    assert!(statuses.iter().all(|s| s == 200), "a key request failed: {play:#}");
    let params = play["keyParams"].as_array().unwrap();
    assert_eq!(params.len(), len_of(play, "keyStatuses"), "{play:#}");
    for names in params {
        let names = names.as_array().unwrap();
        assert!(
            names.iter().any(|n| n == credential) && !names.iter().any(|n| n == other),
            "a key URI without {credential}= or with {other}=: {names:?} in {play:#}"
        );
    }
    assert_eq!(len_of(play, "cspViolations"), 0, "CSP blocked something: {play:#}");
    assert!(
        f64_of(play, "pictureVariance") > MIN_PICTURE_VARIANCE,
        "the picture is uniform: {play:#}"
    );
    assert_eq!(play["errorVisible"], false, "{play:#}");
    assert_eq!(str_of(play, "statusText"), "Live", "{play:#}");
    assert_eq!(str_of(play, "resolutionText"), "640×360", "{play:#}");
    assert!(str_of(play, "bitrateText").ends_with("bit/s"), "{play:#}");
    key_ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_page_plays_the_encrypted_stream_in_chromium() {
    require_tools();
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let started = Instant::now();
    let server = start_server(|_| {}).await;
    // 40 s of stream, more than the browser needs; killed when it is done.
    let encoder = Encoder::publish(server.rtmp, DEMO_KEY, FIXTURE, 3);
    wait_for_first_segment(server.http, "/live/demo/index.m3u8").await;

    let out_dir = artifacts_dir("");
    let user_data_dir = tempfile::tempdir().unwrap();
    let config = serde_json::json!({
        "base": format!("http://{}", server.http),
        "stream": "live/demo",
        "idleStream": "live/other",
        "tokens": {
            "idle": server.token("live/other", 3600),
            "valid": server.token("live/demo", 3600),
            "expired": server.token("live/demo", -60),
            "wrongStream": server.token("live/other", 3600),
            "shortLived": server.token("live/demo", SHORT_TOKEN_SECS),
        },
        "playSecs": PLAY_SECS,
        "outDir": out_dir,
        "userDataDir": user_data_dir.path(),
        "chromium": CHROMIUM,
    });
    let report = run_browser(config, Duration::from_secs(120)).await;
    drop(encoder);
    std::fs::write(out_dir.join("report.json"), format!("{report:#}")).unwrap();
    assert!(report.get("error").is_none(), "watch.mjs failed: {report:#}");

    // Plays: time advances, frames decode, hls.js is happy, keys rotate.
    assert_plays(&report["play"], "token");
    let stats = server.keys.stats();
    assert_eq!(stats.tickets_issued, 0, "{stats:?}");

    // Refused: no frame, the error text, and no key ever fetched.
    for (name, status, text) in [
        ("noToken", 401, TOKEN_NEEDED_TEXT),
        ("expired", 403, EXPIRED_TEXT),
        ("wrongStream", 403, WRONG_STREAM_TEXT),
    ] {
        let page = &report[name];
        assert_eq!(page["httpStatus"], status, "{name}: {page:#}");
        assert_eq!(f64_of(page, "totalVideoFrames"), 0.0, "{name} played: {page:#}");
        assert_eq!(page["errorVisible"], true, "{name}: {page:#}");
        assert_eq!(str_of(page, "errorText"), text, "{name}: {page:#}");
        assert_eq!(len_of(page, "keyUris"), 0, "{name}: {page:#}");
        assert_eq!(
            page["horizontalOverflow"], false,
            "{name} is wider than a phone: {page:#}"
        );
        assert_eq!(len_of(page, "cspViolations"), 0, "{name}: {page:#}");
    }

    // A token that runs out mid-stream: it played, then the page says why it stopped.
    let expiring = &report["expiresWhilePlaying"];
    assert_eq!(expiring["started"], true, "{expiring:#}");
    assert!(f64_of(expiring, "framesBeforeRefusal") > 0.0, "{expiring:#}");
    assert_eq!(expiring["refusedInTime"], true, "{expiring:#}");
    assert_eq!(str_of(expiring, "playerStatus"), "refused", "{expiring:#}");
    let text = str_of(expiring, "errorText");
    assert!(
        text.starts_with(REFUSED_TEXT) && text.contains("expired at"),
        "{expiring:#}"
    );

    // A stream nobody publishes: the page waits and retries, with no error.
    let waiting = &report["waiting"];
    assert_eq!(waiting["httpStatus"], 200, "{waiting:#}");
    assert_eq!(str_of(waiting, "playerStatus"), "waiting", "{waiting:#}");
    assert_eq!(
        str_of(waiting, "statusText"),
        "Waiting for the stream to start…",
        "{waiting:#}"
    );
    assert_eq!(waiting["errorVisible"], false, "{waiting:#}");
    assert_eq!(f64_of(waiting, "totalVideoFrames"), 0.0, "{waiting:#}");
    let statuses = waiting["playlistStatuses"].as_array().unwrap();
    assert!(
        statuses.len() >= 2 && statuses.iter().all(|s| s == 404),
        "retried the playlist: {waiting:#}"
    );

    // The operator page lists the stream with its numbers and a watch link.
    let operator = &report["operator"];
    assert_eq!(operator["httpStatus"], 200, "{operator:#}");
    let text = str_of(operator, "text");
    for want in [
        "live/demo",
        "LIVE",
        "640×360",
        "H.264, AAC",
        "AES-128, a new key every 2 segments",
        "live/other",
        "OFFLINE",
    ] {
        assert!(text.contains(want), "{want:?} on the operator page:\n{text}");
    }
    assert!(text.contains("bit/s"), "a bitrate on the operator page:\n{text}");
    let links = operator["watchLinks"].as_array().unwrap();
    assert!(
        links
            .iter()
            .any(|l| l.as_str().unwrap().starts_with("watch/live/demo?token=")),
        "{operator:#}"
    );
    assert_eq!(operator["horizontalOverflow"], false, "{operator:#}");
    assert_eq!(len_of(operator, "cspViolations"), 0, "{operator:#}");

    server.stop().await;
    eprintln!(
        "browser test: {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        out_dir.display()
    );
}

/// Issue 5: the same playback with `[auth] one_time_key_tickets = true`. Each
/// playlist refresh hands hls.js fresh ticket URIs; every one works once, so
/// a player that fetched a key URI twice, or with the token, would show here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_page_plays_with_one_time_key_tickets() {
    require_tools();
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let started = Instant::now();
    let server = start_server(|config| config.auth.one_time_key_tickets = true).await;
    assert!(server.keys.tickets_enabled());
    // 30 s of stream, more than the play scenario needs; killed when it is done.
    let encoder = Encoder::publish(server.rtmp, DEMO_KEY, FIXTURE, 2);
    wait_for_first_segment(server.http, "/live/demo/index.m3u8").await;

    let out_dir = artifacts_dir("tickets");
    let user_data_dir = tempfile::tempdir().unwrap();
    let config = serde_json::json!({
        "base": format!("http://{}", server.http),
        "stream": "live/demo",
        "idleStream": "live/other",
        "tokens": { "valid": server.token("live/demo", 3600) },
        "playSecs": PLAY_SECS,
        "outDir": out_dir,
        "userDataDir": user_data_dir.path(),
        "chromium": CHROMIUM,
        "scenarios": ["play"],
    });
    let report = run_browser(config, Duration::from_secs(90)).await;
    drop(encoder);
    std::fs::write(out_dir.join("report.json"), format!("{report:#}")).unwrap();
    assert!(report.get("error").is_none(), "watch.mjs failed: {report:#}");
    assert_eq!(
        report.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["play"],
        "only the play scenario ran: {report:#}"
    );

    let play = &report["play"];
    let key_ids = assert_plays(play, "ticket");
    // The server agrees: every key request was a first use of a ticket.
    let key_requests = len_of(play, "keyStatuses") as u64;
    let stats = server.keys.stats();
    assert_eq!(stats.tickets_accepted, key_requests, "{stats:?} {play:#}");
    assert_eq!(
        (stats.tickets_refused, stats.tickets_replayed, stats.token_key_requests),
        (0, 0, 0),
        "{stats:?}"
    );
    assert!(stats.tickets_issued >= key_requests, "{stats:?}");

    server.stop().await;
    eprintln!(
        "browser ticket test: {:.1} s; {} frames, {:.1} s advance, {} key ids, {} key requests, {} tickets issued",
        started.elapsed().as_secs_f64(),
        f64_of(play, "totalVideoFrames"),
        f64_of(play, "advanceSecs"),
        key_ids.len(),
        key_requests,
        stats.tickets_issued,
    );
}
