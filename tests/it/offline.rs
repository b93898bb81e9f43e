//! Offline viewing of protected recordings and license tickets
//! (docs/protection.md): offline licenses sealed to a device key, bound to
//! their own label and an expiry `[auth] offline_ttl_secs` away, refused
//! like online ones for bad credentials and only for recordings; one-time
//! license tickets in protected playlists that work once; and the watch page
//! in headless Chromium saving a recording, playing it with the network cut,
//! refusing it past its expiry and in another profile, with no data key in
//! IndexedDB or in any response body.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use sealcast::auth::{Claims, recording};
use sealcast::config::Protection;
use sealcast::license::{LABEL, OFFLINE_LABEL};
use serde_json::Value;

use crate::browser::{CHROMIUM, ONE_BROWSER_AT_A_TIME, artifacts_dir, browser_dir, require_tools};
use crate::protected::{Player, forms, post_license, refs, unwrap};
use crate::support::http;
use crate::support::playlist::{self, distinct_keys, wait_for};
use crate::support::process::{Proc, read_text};
use crate::support::server::{DEMO_KEY, OTHER_KEY, TestServer};
use crate::support::{contains, fixture, with_safety_net};

const FIXTURE: &str = "high-bframes-aac48k.flv";
const LIMIT: Duration = Duration::from_secs(120);
/// The life of an offline license on the test server.
const OFFLINE_TTL_SECS: u64 = 3600;
const TICKET_TAG: &str = "#EXT-X-SEALCAST-LICENSE-TICKET:";

/// `live/demo` protected and recorded; `live/other` protected, not
/// recorded; offline licenses on; one-time tickets on.
async fn start_server() -> TestServer {
    TestServer::start_with_config(
        "[hls]\nsegment_duration_secs = 2\n[encryption]\nsegments_per_key = 2\n[record]\nenabled = true\n",
        |c| {
            for s in &mut c.streams {
                s.protection = Protection::Web;
                if s.name == "other" {
                    s.record = Some(false);
                }
            }
            c.auth.offline_ttl_secs = OFFLINE_TTL_SECS;
            c.auth.one_time_key_tickets = true;
        },
    )
    .await
}

/// ffmpeg pushes the fixture `1 + loops` times, as fast as it is taken.
async fn push(rtmp: SocketAddr, key: &str, loops: u32) {
    let mut process = Proc::spawn(
        "ffmpeg publisher",
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-stream_loop", &loops.to_string(), "-i"])
            .arg(fixture(FIXTURE))
            .args(["-c", "copy", "-f", "flv"])
            .arg(format!("rtmp://{rtmp}/live/{key}"))
            .stdin(Stdio::null()),
    );
    let status = tokio::task::spawn_blocking(move || process.wait(LIMIT)).await.unwrap();
    assert!(status.success(), "ffmpeg publisher: {status}");
}

/// The id of the one complete recording of `live/demo`.
async fn completed_recording(server: &TestServer) -> String {
    let recordings = server.registry.recordings();
    wait_for("the recording to complete", LIMIT, || async {
        (recordings.list(Some("live/demo")).await.into_iter())
            .find(|m| m.state == sealcast::live::RecordingState::Complete)
            .map(|m| m.id)
    })
    .await
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A request body with `"offline": true` (or another value).
fn with_offline(body: &str, value: &str) -> String {
    let mut json: Value = serde_json::from_str(body).unwrap();
    json["offline"] = serde_json::from_str(value).unwrap();
    json.to_string()
}

async fn post(addr: SocketAddr, path: &str, body: &str) -> http::Response {
    http::request(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_licenses_and_license_tickets() {
    with_safety_net(async {
        let server = start_server().await;
        let addr = server.http;
        push(server.rtmp, DEMO_KEY, 0).await;
        push(server.rtmp, OTHER_KEY, 0).await;
        let id = completed_recording(&server).await;
        let token = server.token("live/demo", 3600);
        let text = http::get(addr, &format!("/live/demo/recordings/{id}/index.m3u8?token={token}")).await;
        assert_eq!(text.status, 200, "{}", text.text());
        let text = text.text();
        assert!(
            !text.contains("token="),
            "a protected recording's key URIs carry no credential: {text}"
        );
        let keys = distinct_keys(&text);
        assert!(keys.len() >= 2, "{text}");

        // An offline license, asked for with a token that expires in 2
        // minutes: it lasts offline_ttl_secs, and opens only as offline.
        let short = server.token("live/demo", 120);
        let player = Player::new();
        let body = with_offline(&player.request(&refs(&keys)), "true");
        let answer = post_license(addr, "live/demo", Some(&short), body.as_bytes()).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.header("cache-control"), Some("no-store"));
        let json: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(json["offline"], true, "{json}");
        let expires = json["expires_unix_secs"].as_u64().unwrap();
        let issued_by = now();
        assert!(
            expires > issued_by + OFFLINE_TTL_SECS - 600 && expires <= issued_by + OFFLINE_TTL_SECS,
            "{expires} vs now {issued_by}"
        );
        let opened = player.open_labelled(OFFLINE_LABEL, "live/demo", &json);
        for (keyed, (key_id, key)) in keys.iter().zip(&opened) {
            assert_eq!(*key_id, keyed.key_id());
            assert_eq!(key.expect("opens as offline"), unwrap(&server, &keyed.key).await);
            for form in forms(&key.unwrap()) {
                assert!(!contains(&answer.body, &form), "a key in the license");
            }
        }
        let as_online = Player::new();
        let online_body = with_offline(&as_online.request(&refs(&keys)), "true");
        let answer = post_license(addr, "live/demo", Some(&token), online_body.as_bytes()).await;
        let json: Value = serde_json::from_slice(&answer.body).unwrap();
        let opened = as_online.open_labelled(LABEL, "live/demo", &json);
        assert!(
            opened.iter().all(|(_, k)| k.is_none()),
            "an offline license opened as online"
        );

        hostile_offline_requests(&server, &id, &keys).await;
        license_tickets(&server).await;
        server.stop().await;
    })
    .await;
}

/// Offline requests are refused like online ones, and only for recordings.
async fn hostile_offline_requests(server: &TestServer, id: &str, keys: &[crate::support::playlist::KeyedSegment]) {
    let addr = server.http;
    let player = Player::new();
    let good = with_offline(&player.request(&refs(keys)), "true");
    let token = server.token("live/demo", 3600);
    let claims = |stream: &str| Claims {
        exp: now() + 3600,
        stream: stream.into(),
        sub: None,
        jti: None,
        recording: None,
    };
    let scoped_other = recording::mint_for_recording(&server.secret, &claims("live/demo"), "another", None);
    let scoped_this = recording::mint_for_recording(&server.secret, &claims("live/demo"), id, None);
    let other_token = server.token("live/other", 3600);
    let other = playlist::until_ended(addr, &format!("/live/other/index.m3u8?token={other_token}")).await;
    let other_keys = refs(&distinct_keys(&other));
    let other_online = player.request(&other_keys);
    let other_offline = with_offline(&other_online, "true");
    let mut off_curve = player.public.clone();
    off_curve[64] ^= 1;
    let off_curve = good.replace(&base64_url(&player.public), &base64_url(&off_curve));
    let expired = server.token("live/demo", -60);
    let not_bool = with_offline(&good, "\"yes\"");
    // (case, stream, token, body, status)
    let cases: Vec<(&str, &str, Option<&str>, &str, u16)> = vec![
        ("no token", "live/demo", None, &good, 401),
        ("bad token", "live/demo", Some("a.b.c"), &good, 403),
        ("expired token", "live/demo", Some(&expired), &good, 403),
        ("token for another stream", "live/demo", Some(&other_token), &good, 403),
        (
            "token scoped to another recording",
            "live/demo",
            Some(&scoped_other),
            &good,
            403,
        ),
        (
            "token scoped to this recording",
            "live/demo",
            Some(&scoped_this),
            &good,
            200,
        ),
        (
            "offline, not a recording",
            "live/other",
            Some(&other_token),
            &other_offline,
            403,
        ),
        (
            "online, not a recording",
            "live/other",
            Some(&other_token),
            &other_online,
            200,
        ),
        ("offline not a boolean", "live/demo", Some(&token), &not_bool, 400),
        ("off the curve", "live/demo", Some(&token), &off_curve, 400),
    ];
    for (case, stream, token, body, expected) in cases {
        let answer = post_license(addr, stream, token, body.as_bytes()).await;
        assert_eq!(answer.status, expected, "{case}: {}", answer.text());
        assert_eq!(answer.text().contains("ciphertext"), expected == 200, "{case}");
    }
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The license ticket of a protected playlist fetched with `token`.
async fn license_ticket(addr: SocketAddr, token: &str) -> String {
    let text = http::get(addr, &format!("/live/demo/index.m3u8?token={token}"))
        .await
        .text();
    let line = (text.lines().find(|l| l.starts_with(TICKET_TAG))).unwrap_or_else(|| panic!("no ticket: {text}"));
    assert_eq!(text.lines().next(), Some("#EXTM3U"), "{text}");
    line[TICKET_TAG.len()..].to_owned()
}

/// A protected playlist carries one license ticket per response; it
/// licenses once, for its stream, online only.
async fn license_tickets(server: &TestServer) {
    let addr = server.http;
    let token = server.token("live/demo", 3600);
    let anonymous = http::get(addr, "/live/demo/index.m3u8").await.text();
    assert!(!anonymous.contains(TICKET_TAG), "no token, no ticket: {anonymous}");
    let text = http::get(addr, &format!("/live/demo/index.m3u8?token={token}"))
        .await
        .text();
    assert!(!text.contains("token=") && !text.contains("ticket="), "{text}");
    let keys = distinct_keys(&text);
    let ticket = license_ticket(addr, &token).await;
    let player = Player::new();
    let body = player.request(&refs(&keys));
    let answer = post(addr, &format!("/license/live/demo?ticket={ticket}"), &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let json: Value = serde_json::from_slice(&answer.body).unwrap();
    for (keyed, (_, key)) in keys.iter().zip(player.open("live/demo", &json)) {
        assert_eq!(key, unwrap(server, &keyed.key).await);
    }
    let replayed = post(
        addr,
        &format!("/license/live/demo?ticket={ticket}"),
        &Player::new().request(&refs(&keys)),
    )
    .await;
    assert_eq!(replayed.status, 403, "a replayed ticket: {}", replayed.text());

    let fresh = license_ticket(addr, &token).await;
    let mut tampered = fresh.clone().into_bytes();
    tampered[20] = if tampered[20] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let cases: Vec<(&str, String, String, u16)> = vec![
        (
            "another stream",
            format!("/license/live/other?ticket={fresh}"),
            body.clone(),
            403,
        ),
        (
            "offline",
            format!("/license/live/demo?ticket={fresh}"),
            with_offline(&body, "true"),
            403,
        ),
        (
            "tampered",
            format!("/license/live/demo?ticket={tampered}"),
            body.clone(),
            403,
        ),
        ("malformed", "/license/live/demo?ticket=abc".into(), body.clone(), 403),
        // Refusals above spent nothing: the ticket still works, once.
        ("fresh", format!("/license/live/demo?ticket={fresh}"), body.clone(), 200),
        (
            "fresh, replayed",
            format!("/license/live/demo?ticket={fresh}"),
            body.clone(),
            403,
        ),
    ];
    for (case, path, body, expected) in cases {
        let answer = post(addr, &path, &body).await;
        assert_eq!(answer.status, expected, "{case}: {}", answer.text());
    }
    let stats = server.keys.stats();
    assert!(stats.tickets_replayed >= 2, "{stats:?}");
}

/// Runs offline.mjs with `config`; its JSON report.
async fn run_script(config: Value) -> Value {
    tokio::task::spawn_blocking(move || {
        let out = tempfile::tempdir().unwrap();
        let (stdout_path, stderr_path) = (out.path().join("stdout"), out.path().join("stderr"));
        let mut node = Proc::spawn(
            "node offline.mjs",
            Command::new("node")
                .arg(browser_dir().join("offline.mjs"))
                .arg(config.to_string())
                .current_dir(browser_dir())
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&stdout_path).unwrap())
                .stderr(std::fs::File::create(&stderr_path).unwrap()),
        );
        node.wait(Duration::from_secs(300));
        let stdout = read_text(&stdout_path);
        let stderr = read_text(&stderr_path);
        let line = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(line).unwrap_or_else(|e| panic!("offline.mjs output ({e}):\n{stdout}\nstderr:\n{stderr}"))
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_page_saves_a_recording_and_plays_it_offline_only_in_its_profile() {
    require_tools();
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    with_safety_net(async {
        let server = start_server().await;
        // 20 s of video: 10 s of offline play fit with room to spare.
        push(server.rtmp, DEMO_KEY, 1).await;
        let id = completed_recording(&server).await;
        let token = server.token("live/demo", 3600);
        let out = artifacts_dir("offline");
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        let config = serde_json::json!({
            "base": format!("http://{}", server.http),
            "chromium": CHROMIUM,
            "outDir": out,
            "stream": "live/demo",
            "recording": id,
            "token": token,
            "playSecs": 10,
        });
        let report = run_script(config).await;
        assert!(report["error"].is_null(), "{report:#}");
        assert_eq!(report["httpStatus"], 200, "{report:#}");
        assert_eq!(report["afterSave"]["status"], "saved", "{report:#}");
        let segments = report["afterSave"]["segments"].as_u64().unwrap();
        assert!(segments >= 8, "{report:#}");
        assert_eq!(report["idbSegments"].as_u64(), Some(segments), "{report:#}");

        // Offline: played 10 s from IndexedDB, no response from the network.
        let offline = &report["offline"];
        assert_eq!(report["playedOffline"], true, "{report:#}");
        assert_eq!(offline["status"], "playing", "{report:#}");
        assert!(offline["currentTime"].as_f64().unwrap() >= 10.0, "{report:#}");
        assert!(offline["framesSincePlay"].as_u64().unwrap() >= 200, "{report:#}");
        assert!(offline["decrypted"].as_u64().unwrap() >= 5, "{report:#}");
        assert_eq!(report["lateResponses"].as_array().unwrap().len(), 0, "{report:#}");
        // No key exports: the AES keys nor the device's private key.
        assert_eq!(report["deviceExtractable"], false, "{report:#}");
        let exports = report["exports"].as_array().unwrap();
        assert!(exports.iter().any(|e| e["algorithm"] == "ECDH"), "{report:#}");
        assert!(
            exports.iter().filter(|e| e["algorithm"] == "AES-CBC").count() >= 6,
            "{report:#}"
        );
        for export in exports {
            assert_ne!(export["result"], "exported", "{export}");
        }

        // Past the expiry: refused, saying so, and deleted.
        assert_eq!(report["expired"]["status"], "expired", "{report:#}");
        let text = report["expiredText"].as_str().unwrap();
        assert!(text.contains("This offline copy has expired"), "{text}");
        assert_eq!(report["afterExpiry"]["copies"], 0, "{report:#}");
        assert_eq!(report["afterExpiry"]["segments"], 0, "{report:#}");

        // Another profile with the same saved data: refused, nothing played.
        assert_eq!(report["otherProfile"]["status"], "refused", "{report:#}");
        assert_eq!(report["otherProfile"]["decrypted"], 0, "{report:#}");
        let text = report["otherProfileText"].as_str().unwrap();
        assert!(text.contains("cannot be played here"), "{text}");

        assert_no_key_stored_or_sent(&server, &id, &report).await;
        server.stop().await;
    })
    .await;
}

/// Every data key of the recording is in no IndexedDB record, no response
/// body of the saving session and not in the heap of the page playing the
/// saved copy, in any of its text forms.
async fn assert_no_key_stored_or_sent(server: &TestServer, id: &str, report: &Value) {
    let token = server.token("live/demo", 3600);
    let text = http::get(
        server.http,
        &format!("/live/demo/recordings/{id}/index.m3u8?token={token}"),
    )
    .await
    .text();
    let keys = distinct_keys(&text);
    assert!(keys.len() >= 5, "{text}");
    let mut files: Vec<String> = (report["idbFiles"].as_array().unwrap().iter())
        .map(|f| f.as_str().unwrap().to_owned())
        .collect();
    let bodies = report["bodies"].as_array().unwrap();
    assert!(
        bodies
            .iter()
            .any(|b| b["url"].as_str().unwrap_or("").contains("/license/")),
        "{report:#}"
    );
    assert_eq!(report["bodyFailures"].as_array().unwrap().len(), 0, "{report:#}");
    files.extend(bodies.iter().map(|b| b["file"].as_str().unwrap().to_owned()));
    let stored: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let heap = std::fs::read(report["heapFile"].as_str().unwrap()).unwrap();
    assert!(heap.len() > 100_000, "a heap snapshot");
    assert!(
        contains(&heap, b"sealcast-offline-license-v1"),
        "the page's strings are in the snapshot"
    );
    files.push(report["heapFile"].as_str().unwrap().to_owned());
    let stored: Vec<Vec<u8>> = (stored.into_iter()).chain(std::iter::once(heap)).collect();
    let copies = String::from_utf8_lossy(&stored[0]).into_owned();
    assert!(
        copies.contains("expires_unix_secs"),
        "the license is in IndexedDB: {copies}"
    );
    for keyed in &keys {
        let key = unwrap(server, &keyed.key).await;
        for form in forms(&key) {
            for (file, bytes) in files.iter().zip(&stored) {
                assert!(!contains(bytes, &form), "key {} in {file}", keyed.key_id());
            }
        }
    }
}

/// The watch page of a protected live stream with one-time tickets on: it
/// licenses with the playlist's license ticket, not the token, and plays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_page_licenses_with_the_playlists_ticket() {
    require_tools();
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    with_safety_net(async {
        let server = start_server().await;
        let _encoder = crate::browser::Encoder::publish(server.rtmp, DEMO_KEY, FIXTURE, 2);
        playlist::until_listed(server.http, "/live/demo/index.m3u8").await;
        let out = artifacts_dir("offline-ticket");
        let _ = std::fs::remove_dir_all(out.join("bodies"));
        let config = serde_json::json!({
            "base": format!("http://{}", server.http),
            "chromium": CHROMIUM,
            "outDir": out,
            "mode": "capture",
            "capture": {"stream": "live/demo", "token": server.token("live/demo", 3600), "playSecs": 6},
        });
        let before = server.keys.stats();
        let report = crate::protected::run_script(config, Duration::from_secs(200)).await;
        let c = &report["capture"];
        assert!(report["error"].is_null(), "{report:#}");
        assert_eq!(c["started"], true, "{c:#}");
        assert!(c["totalVideoFrames"].as_u64().unwrap() >= 100, "{c:#}");
        assert_eq!(c["fatalErrors"].as_array().unwrap().len(), 0, "{c:#}");
        let protection = &c["protection"];
        let licenses = protection["licenses"].as_u64().unwrap();
        assert!(licenses >= 1, "{c:#}");
        assert_eq!(
            protection["ticketLicenses"].as_u64(),
            Some(licenses),
            "every license by ticket: {c:#}"
        );
        let after = server.keys.stats();
        assert!(
            after.tickets_accepted >= before.tickets_accepted + licenses,
            "{after:?}"
        );
        assert_eq!(after.tickets_replayed, before.tickets_replayed, "{after:?}");
        server.stop().await;
    })
    .await;
}

/// `/watch/{app}/{name}?recording={id}`: the recording's playlist; the
/// offline script only for a protected stream; a malformed id is 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_page_opens_a_recording() {
    with_safety_net(async {
        let server = TestServer::start_with_config("[record]\nenabled = true\n", |c| {
            let demo = (c.streams.iter_mut()).find(|s| s.name == "demo").unwrap();
            demo.protection = Protection::Web;
        })
        .await;
        let page = |stream: &str, query: String| {
            let path = format!("/watch/{stream}?token={}&{query}", server.token(stream, 3600));
            async move { http::get(server.http, &path).await }
        };
        let protected = page("live/demo", "recording=abc123".into()).await;
        assert_eq!(protected.status, 200);
        let html = protected.text();
        assert!(
            html.contains("data-playlist=\"../../live/demo/recordings/abc123/index.m3u8\""),
            "{html}"
        );
        assert!(
            html.contains("data-offline=\"1\"") && html.contains("static/offline.js"),
            "{html}"
        );
        let standard = page("live/other", "recording=abc123".into()).await.text();
        assert!(standard.contains("recordings/abc123/index.m3u8"), "{standard}");
        assert!(
            !standard.contains("offline.js") && standard.contains("data-offline=\"\""),
            "{standard}"
        );
        let live = page("live/demo", String::new()).await.text();
        assert!(live.contains("data-playlist=\"../../live/demo/index.m3u8\"") && !live.contains("offline.js"));
        for bad in ["..", "a%2Fb", "a.b"] {
            let answer = page("live/demo", format!("recording={bad}")).await;
            assert_eq!(answer.status, 404, "{bad}: {}", answer.text());
        }
        let js = http::get(server.http, "/static/offline.js").await;
        assert_eq!(js.status, 200);
        assert!(js.text().contains("sealcast-offline-license-v1"));
        server.stop().await;
    })
    .await;
}
