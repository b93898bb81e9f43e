//! `protection = "web"` (docs/protection.md): raw keys refused, licenses
//! checked against hostile requests, ffmpeg unable to play, a license client
//! written with ring that recovers the keys; and the watch page in headless
//! Chromium playing a protected stream while the DevTools protocol records
//! every response body and a heap snapshot, in none of which any data key
//! of the stream appears, with CryptoKeys that do not export.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::{aead, agreement, hkdf};
use sealcast::config::Protection;
use sealcast::crypto::{DataKey, EncryptionContext, decrypt_segment};
use sealcast::kms::Kms;
use sealcast::kms::local::LocalKms;
use sealcast::license;
use sealcast::names::KeyUri;
use serde_json::Value;

use crate::browser::{CHROMIUM, Encoder, ONE_BROWSER_AT_A_TIME, artifacts_dir, browser_dir, require_tools};
use crate::support::http;
use crate::support::playlist::{self, KeyedSegment, distinct_keys};
use crate::support::process::{Proc, read_text};
use crate::support::server::{DEMO_KEY, OTHER_KEY, TestServer};
use crate::support::{contains, count_frames, fixture, has_ts_sync, with_safety_net};

const FIXTURE: &str = "high-bframes-aac48k.flv";
/// 2 s segments, a key change every two segments (as the browser tests).
const SHORT_SEGMENTS: &str = "[hls]\nsegment_duration_secs = 2\n[encryption]\nsegments_per_key = 2\n";
const PROTECTED: &str = "live/demo";
const STANDARD_STREAM: &str = "live/other";

/// A server whose `live/demo` is protected and `live/other` standard.
async fn start_server() -> TestServer {
    TestServer::start_with_config(SHORT_SEGMENTS, |c| {
        let demo = (c.streams.iter_mut()).find(|s| s.name == "demo").expect("live/demo");
        demo.protection = Protection::Web;
    })
    .await
}

/// ffmpeg pushing the fixture once, as fast as it can; waited for.
async fn push_once(rtmp: SocketAddr, key: &str) {
    let mut process = Proc::spawn(
        "ffmpeg publisher",
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(fixture(FIXTURE))
            .args(["-c", "copy", "-f", "flv"])
            .arg(format!("rtmp://{rtmp}/live/{key}"))
            .stdin(Stdio::null()),
    );
    let status = tokio::task::spawn_blocking(move || process.wait(Duration::from_secs(120)))
        .await
        .unwrap();
    assert!(status.success(), "ffmpeg publisher: {status}");
}

/// A license client with ring: its request body and what opens the answer.
pub(crate) struct Player {
    private: agreement::EphemeralPrivateKey,
    pub(crate) public: Vec<u8>,
}

impl Player {
    pub(crate) fn new() -> Self {
        let private = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &SystemRandom::new()).unwrap();
        let public = private.compute_public_key().unwrap().as_ref().to_vec();
        Self { private, public }
    }

    pub(crate) fn request(&self, keys: &[(String, String)]) -> String {
        let keys: Vec<Value> = keys
            .iter()
            .map(|(id, edk)| serde_json::json!({"key_id": id, "edk": edk}))
            .collect();
        serde_json::json!({"public_key": URL_SAFE_NO_PAD.encode(&self.public), "keys": keys}).to_string()
    }

    /// Every key of a license answer, opened as docs/protection.md says.
    pub(crate) fn open(self, stream: &str, answer: &Value) -> Vec<(String, [u8; 16])> {
        (self.open_labelled(license::LABEL, stream, answer).into_iter())
            .map(|(id, key)| (id, key.expect("the license opens")))
            .collect()
    }

    /// Every key of a license answer opened with the binding label `label`
    /// (online or offline): `None` where the tag does not verify.
    pub(crate) fn open_labelled(self, label: &[u8], stream: &str, answer: &Value) -> Vec<(String, Option<[u8; 16]>)> {
        let b64 = |v: &Value| URL_SAFE_NO_PAD.decode(v.as_str().unwrap()).unwrap();
        let server_key = b64(&answer["server_public_key"]);
        let salt = b64(&answer["salt"]);
        let expires = answer["expires_unix_secs"].as_u64().unwrap();
        let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, &server_key);
        let prk = agreement::agree_ephemeral(self.private, &peer, |shared| {
            hkdf::Salt::new(hkdf::HKDF_SHA256, &salt).extract(shared)
        })
        .unwrap();
        (answer["keys"].as_array().unwrap().iter())
            .map(|sealed| {
                let key_id = sealed["key_id"].as_str().unwrap().to_owned();
                let info = license::labelled_binding(label, stream, &key_id, expires);
                let key = license::aead_key(&prk, &info).unwrap();
                let iv: [u8; 12] = b64(&sealed["iv"]).try_into().unwrap();
                let mut buf = b64(&sealed["ciphertext"]);
                let plain = key
                    .open_in_place(aead::Nonce::assume_unique_for_key(iv), aead::Aad::from(&info), &mut buf)
                    .ok()
                    .map(|plain| <[u8; 16]>::try_from(&plain[..]).unwrap());
                (key_id, plain)
            })
            .collect()
    }
}

pub(crate) fn refs(keys: &[KeyedSegment]) -> Vec<(String, String)> {
    keys.iter()
        .map(|k| (k.key_id(), k.key.wrapped.to_base64url()))
        .collect()
}

pub(crate) async fn post_license(addr: SocketAddr, stream: &str, token: Option<&str>, body: &[u8]) -> http::Response {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(bearer) = &bearer {
        headers.push(("Authorization", bearer));
    }
    http::request(addr, "POST", &format!("/license/{stream}"), &headers, body).await
}

/// The data key of a key URI, unwrapped through the server's keyring as
/// the KMS would.
pub(crate) async fn unwrap(server: &TestServer, key: &KeyUri) -> [u8; 16] {
    let kms = LocalKms::open(&server.data_dir().join("keyring.json")).unwrap();
    let context = EncryptionContext::new(&key.stream.to_string(), &key.key_id);
    *kms.decrypt(&key.wrapped, &context).await.unwrap().as_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_streams_give_keys_only_by_license() {
    with_safety_net(async {
        let server = start_server().await;
        let addr = server.http;
        push_once(server.rtmp, DEMO_KEY).await;
        push_once(server.rtmp, OTHER_KEY).await;
        let token = server.token(PROTECTED, 3600);
        let text = playlist::until_ended(addr, &format!("/{PROTECTED}/index.m3u8?token={token}")).await;
        assert!(!text.contains("token="), "no credential in key URIs: {text}");
        let keys = distinct_keys(&text);
        assert!(keys.len() >= 2, "{text}");

        // The raw key endpoint refuses, whatever the credential.
        for query in [format!("&token={token}"), String::new()] {
            let raw = http::get(addr, &format!("{}{query}", keys[0].uri)).await;
            assert_eq!(raw.status, 403, "{}", raw.text());
            assert!(raw.text().contains("POST /license/"), "{}", raw.text());
        }
        let bearer = format!("Bearer {token}");
        let raw = http::get_with(addr, &keys[0].uri, &[("Authorization", &bearer)]).await;
        assert_eq!(raw.status, 403);

        // ffmpeg with a valid token plays nothing.
        let out = server.dir.path().join("ffmpeg.ts");
        let mut player = Proc::spawn(
            "ffmpeg player",
            Command::new("ffmpeg")
                .args(["-nostdin", "-v", "error", "-i"])
                .arg(format!("http://{addr}/{PROTECTED}/index.m3u8?token={token}"))
                .args(["-c", "copy", "-f", "mpegts"])
                .arg(&out)
                .stdin(Stdio::null()),
        );
        let status = tokio::task::spawn_blocking(move || player.wait(Duration::from_secs(120)))
            .await
            .unwrap();
        let frames = if out.exists() { count_frames(&out).video } else { 0 };
        assert!(
            !status.success() || frames == 0,
            "ffmpeg played {frames} frames ({status})"
        );

        // A license for the whole window opens to the KMS's keys, which decrypt.
        let player = Player::new();
        let answer = post_license(addr, PROTECTED, Some(&token), player.request(&refs(&keys)).as_bytes()).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.header("cache-control"), Some("no-store"));
        let json: Value = serde_json::from_slice(&answer.body).unwrap();
        let opened = player.open(PROTECTED, &json);
        assert_eq!(opened.len(), keys.len());
        for (keyed, (key_id, key)) in keys.iter().zip(&opened) {
            assert_eq!(*key_id, keyed.key_id());
            assert_eq!(*key, unwrap(&server, &keyed.key).await);
            assert!(!contains(&answer.body, key) && !answer.text().contains(&hex(key)));
            let mut segment = http::get(addr, &format!("/{PROTECTED}/{}", keyed.segment)).await.body;
            decrypt_segment(&DataKey::from_bytes(*key), keyed.iv, &mut segment).unwrap();
            assert!(has_ts_sync(&segment));
        }

        hostile_license_requests(&server, &keys).await;

        // The standard stream is as before: raw keys for a token.
        let other_token = server.token(STANDARD_STREAM, 3600);
        let other = playlist::until_ended(addr, &format!("/{STANDARD_STREAM}/index.m3u8?token={other_token}")).await;
        assert!(other.contains("token="), "{other}");
        let other_keys = distinct_keys(&other);
        let raw = http::get(addr, &other_keys[0].uri).await;
        assert_eq!(raw.status, 200, "{}", raw.text());
        assert_eq!(raw.body, unwrap(&server, &other_keys[0].key).await);
        server.stop().await;
    })
    .await;
}

/// Every hostile request gets its 4xx, never a 5xx, never a key.
async fn hostile_license_requests(server: &TestServer, keys: &[KeyedSegment]) {
    let addr = server.http;
    let token = server.token(PROTECTED, 3600);
    let expired = server.token(PROTECTED, -60);
    let other_token = server.token(STANDARD_STREAM, 3600);
    let good = refs(keys);
    let player = Player::new();
    let with_key = |public: &[u8]| {
        serde_json::json!({"public_key": URL_SAFE_NO_PAD.encode(public), "keys": [{"key_id": good[0].0, "edk": good[0].1}]})
            .to_string()
    };
    let mut off_curve = player.public.clone();
    off_curve[64] ^= 1;
    let jwk = |crv: &str| {
        serde_json::json!({"public_key": {"kty": "EC", "crv": crv, "x": URL_SAFE_NO_PAD.encode(&player.public[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&player.public[33..])}, "keys": [{"key_id": good[0].0, "edk": good[0].1}]})
        .to_string()
    };
    let too_many: Vec<(String, String)> = (0..=license::MAX_KEYS).map(|_| good[0].clone()).collect();
    // A wrapped key of live/other presented as live/demo's (same key id).
    let other = playlist::until_ended(addr, &format!("/{STANDARD_STREAM}/index.m3u8")).await;
    let foreign = refs(&distinct_keys(&other));
    let mut tampered = good[0].1.clone().into_bytes();
    tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    // (case, token, body, status)
    let cases: Vec<(&str, Option<&str>, String, u16)> = vec![
        ("no token", None, player.request(&good), 401),
        ("bad token", Some("a.b.c"), player.request(&good), 403),
        ("expired token", Some(&expired), player.request(&good), 403),
        (
            "token for another stream",
            Some(&other_token),
            player.request(&good),
            403,
        ),
        ("not json", Some(&token), "{\"public_key\":".into(), 400),
        ("empty", Some(&token), String::new(), 400),
        ("no keys", Some(&token), player.request(&[]), 400),
        ("too many keys", Some(&token), player.request(&too_many), 400),
        ("off the curve", Some(&token), with_key(&off_curve), 400),
        ("point at infinity", Some(&token), with_key(&[0]), 400),
        (
            "all-zero point",
            Some(&token),
            with_key(&[&[4u8][..], &[0; 64]].concat()),
            400,
        ),
        ("P-384 JWK", Some(&token), jwk("P-384"), 400),
        ("other stream's key", Some(&token), player.request(&foreign[..1]), 403),
        (
            "tampered key",
            Some(&token),
            player.request(&[(good[0].0.clone(), tampered)]),
            403,
        ),
        (
            "bad key id",
            Some(&token),
            player.request(&[("../x".into(), good[0].1.clone())]),
            403,
        ),
        ("huge", Some(&token), "x".repeat(100_000), 413),
    ];
    for (case, token, body, expected) in cases {
        let answer = post_license(addr, PROTECTED, token, body.as_bytes()).await;
        assert_eq!(answer.status, expected, "{case}: {}", answer.text());
        assert!(!answer.text().contains("ciphertext"), "{case}");
    }
    // The P-256 JWK form is accepted.
    let answer = post_license(addr, PROTECTED, Some(&token), jwk("P-256").as_bytes()).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every text form a key could take in a body or a heap snapshot.
pub(crate) fn forms(key: &[u8; 16]) -> Vec<Vec<u8>> {
    let numbers: Vec<String> = key.iter().map(u8::to_string).collect();
    vec![
        key.to_vec(),
        hex(key).into_bytes(),
        hex(key).to_uppercase().into_bytes(),
        STANDARD.encode(key).trim_end_matches('=').as_bytes().to_vec(),
        URL_SAFE_NO_PAD.encode(key).into_bytes(),
        numbers.join(",").into_bytes(),
    ]
}

/// Runs protected.mjs with `config`; its JSON report.
pub(crate) async fn run_script(config: Value, limit: Duration) -> Value {
    tokio::task::spawn_blocking(move || {
        let out = tempfile::tempdir().unwrap();
        let (stdout_path, stderr_path) = (out.path().join("stdout"), out.path().join("stderr"));
        let mut node = Proc::spawn(
            "node protected.mjs",
            Command::new("node")
                .arg(browser_dir().join("protected.mjs"))
                .arg(config.to_string())
                .current_dir(browser_dir())
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&stdout_path).unwrap())
                .stderr(std::fs::File::create(&stderr_path).unwrap()),
        );
        node.wait(limit);
        let stdout = read_text(&stdout_path);
        let stderr = read_text(&stderr_path);
        let line = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("protected.mjs output ({e}):\n{stdout}\nstderr:\n{stderr}"))
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_page_plays_a_protected_stream_without_a_key_in_sight() {
    require_tools();
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    with_safety_net(async {
        let server = start_server().await;
        let _encoder = Encoder::publish(server.rtmp, DEMO_KEY, FIXTURE, 2);
        playlist::until_listed(server.http, &format!("/{PROTECTED}/index.m3u8")).await;
        let out = artifacts_dir("protected");
        let _ = std::fs::remove_dir_all(out.join("bodies"));
        let config = serde_json::json!({
            "base": format!("http://{}", server.http),
            "chromium": CHROMIUM,
            "outDir": out,
            "mode": "capture",
            "capture": {"stream": PROTECTED, "token": server.token(PROTECTED, 3600), "playSecs": 10},
        });
        let report = run_script(config, Duration::from_secs(200)).await;
        let c = &report["capture"];
        assert!(report["error"].is_null(), "{report:#}");
        assert_eq!(c["httpStatus"], 200, "{c:#}");
        assert_eq!(c["started"], true, "{c:#}");
        assert_eq!(c["engine"], "hls.js", "{c:#}");
        assert!(c["advanceSecs"].as_f64().unwrap() >= 8.0, "{c:#}");
        assert!(c["totalVideoFrames"].as_u64().unwrap() >= 200, "{c:#}");
        assert_eq!(c["fatalErrors"].as_array().unwrap().len(), 0, "{c:#}");
        assert_eq!(c["keyRequests"], 0, "{c:#}");
        assert!(c["licenseRequests"].as_u64().unwrap() >= 1, "{c:#}");
        assert!(c["protection"]["decrypted"].as_u64().unwrap() >= 5, "{c:#}");
        // Keys are licensed before their segments are asked for (ahead of rotation).
        assert_eq!(c["protection"]["notReady"], 0, "{c:#}");
        // Every CryptoKey of the page is non-extractable and refuses export.
        assert!(c["aesCbcKeys"].as_u64().unwrap() >= 2, "{c:#}");
        assert_eq!(c["extractable"], 0, "{c:#}");
        for export in c["exports"].as_array().unwrap() {
            assert_ne!(export["result"], "exported", "{export}");
        }

        assert_no_key_in_bodies_or_heap(&server, c, &out).await;
        server.stop().await;
    })
    .await;
}

/// Every data key the stream used (from the playlists the page received,
/// unwrapped through the keyring) is in no recorded response body and not in
/// the heap snapshot, in any of its [`forms`].
async fn assert_no_key_in_bodies_or_heap(server: &TestServer, c: &Value, out: &std::path::Path) {
    // The keys the stream used: from the playlists the page received.
    let bodies: Vec<Vec<u8>> = (c["bodies"].as_array().unwrap().iter())
        .map(|b| std::fs::read(b["file"].as_str().unwrap()).unwrap())
        .collect();
    assert!(bodies.len() >= 8, "{c:#}");
    assert_eq!(c["bodyFailures"].as_array().unwrap().len(), 0, "{c:#}");
    let mut used: Vec<KeyUri> = Vec::new();
    for body in &bodies {
        let text = String::from_utf8_lossy(body);
        if text.starts_with("#EXTM3U") {
            for keyed in distinct_keys(&text) {
                if !used.iter().any(|k| k.key_id == keyed.key.key_id) {
                    used.push(keyed.key);
                }
            }
        }
    }
    assert!(used.len() >= 2, "at least two keys: {used:?}");
    let heap = std::fs::read(out.join("heap.heapsnapshot")).unwrap();
    assert!(heap.len() > 100_000, "a heap snapshot");
    // The snapshot holds the page's strings (protected.js's source among them).
    assert!(
        contains(&heap, b"sealcast-license-v1"),
        "the page's strings are in the snapshot"
    );
    for key in &used {
        let key_bytes = unwrap(server, key).await;
        for form in forms(&key_bytes) {
            for (i, body) in bodies.iter().enumerate() {
                assert!(
                    !contains(body, &form),
                    "key {} in body {i} ({:?})",
                    key.key_id.as_str(),
                    c["bodies"][i]
                );
            }
            assert!(
                !contains(&heap, &form),
                "key {} in the heap snapshot",
                key.key_id.as_str()
            );
        }
    }
}

/// Startup, standard against protected: time to first frame and requests
/// before it, 10 cold starts each (docs/protection.md has the numbers). A
/// measurement, not a check: `cargo test --test it -- --ignored protected::startup`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run by hand"]
async fn startup_standard_against_protected() {
    require_tools();
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let server = start_server().await;
    let _a = Encoder::publish(server.rtmp, DEMO_KEY, FIXTURE, 20);
    let _b = Encoder::publish(server.rtmp, OTHER_KEY, FIXTURE, 20);
    playlist::until_segments(server.http, &format!("/{PROTECTED}/index.m3u8"), 3).await;
    playlist::until_segments(server.http, &format!("/{STANDARD_STREAM}/index.m3u8"), 3).await;
    let config = serde_json::json!({
        "base": format!("http://{}", server.http),
        "chromium": CHROMIUM,
        "outDir": artifacts_dir("protected"),
        "mode": "startup",
        "startup": {"runs": 10, "streams": [
            {"label": "standard", "stream": STANDARD_STREAM, "token": server.token(STANDARD_STREAM, 3600)},
            {"label": "protected", "stream": PROTECTED, "token": server.token(PROTECTED, 3600)},
        ]},
    });
    let report = run_script(config, Duration::from_secs(290)).await;
    assert!(report["error"].is_null(), "{report:#}");
    for label in ["standard", "protected"] {
        let runs = report["startup"][label].as_array().unwrap();
        let mut ms: Vec<f64> = runs
            .iter()
            .map(|r| r["firstFrameMs"].as_f64().unwrap_or(f64::NAN))
            .collect();
        ms.sort_by(f64::total_cmp);
        let mean = ms.iter().sum::<f64>() / ms.len() as f64;
        let requests: Vec<u64> = runs.iter().map(|r| r["requests"].as_u64().unwrap_or(0)).collect();
        let keys: Vec<u64> = runs.iter().map(|r| r["keyOrLicense"].as_u64().unwrap_or(0)).collect();
        println!(
            "{label}: first frame ms min {:.0} median {:.0} mean {mean:.0} max {:.0}; requests before it {requests:?}; key/license requests {keys:?}; all ok {}",
            ms[0],
            ms[ms.len() / 2],
            ms[ms.len() - 1],
            runs.iter().all(|r| r["ok"] == true)
        );
    }
    println!("{report}");
    server.stop().await;
}
