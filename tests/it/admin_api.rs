//! The admin API over real HTTP: 401 without the admin token, 404 when none
//! is configured, the live stream list during a push, and a playback URL
//! from `POST /api/v1/playback` that ffmpeg plays.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::http;
use crate::support::playlist::until_listed;
use crate::support::process::Proc;
use crate::support::server::{DEMO_KEY, TestServer};
use crate::support::{count_frames, fixture, with_safety_net};
use sealcast::auth;
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "admin-0123456789-abcdef";
const FIXTURE: &str = "high-bframes-aac48k.flv";
/// Bound for a child process to finish.
const CHILD_LIMIT: Duration = Duration::from_secs(90);

async fn with_admin_token() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin_token");
    std::fs::write(&file, format!("{ADMIN_TOKEN}\n")).unwrap();
    crate::support::process::make_private(&file);
    let server = TestServer::start_with_config("[hls]\nsegment_duration_secs = 2\n", |c| {
        c.auth.admin_token_file = Some(file.clone());
    })
    .await;
    // The token was read at start; the file is no longer needed.
    drop(dir);
    server
}

async fn api(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &str,
) -> (u16, Value, http::Response) {
    let mut headers = vec![("Content-Type", "application/json")];
    let value;
    if let Some(token) = auth {
        value = format!("Bearer {token}");
        headers.push(("Authorization", &value));
    }
    let response = http::request(addr, method, path, &headers, body.as_bytes()).await;
    let json = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    (response.status, json, response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_is_off_without_a_token() {
    let server = TestServer::start("").await;
    let playback = api(
        server.http,
        "POST",
        "/api/v1/playback",
        Some(ADMIN_TOKEN),
        r#"{"stream":"live/demo"}"#,
    )
    .await;
    assert_eq!(playback.0, 404);
    assert_eq!(
        api(server.http, "GET", "/api/v1/streams", Some(ADMIN_TOKEN), "")
            .await
            .0,
        404
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_requests_without_the_admin_token_get_401() {
    let server = with_admin_token().await;
    let cases = [
        None,
        Some("wrong-token-0123456789"),
        Some(""),
        Some("admin-0123456789-abcde"),
    ];
    for auth in cases {
        for (method, path) in [("POST", "/api/v1/playback"), ("GET", "/api/v1/streams")] {
            let (status, body, response) = api(server.http, method, path, auth, r#"{"stream":"live/demo"}"#).await;
            assert_eq!(status, 401, "{method} {path} with {auth:?}");
            assert_eq!(body, json!({"error": "admin token required"}));
            assert_eq!(
                response.header("www-authenticate"),
                Some("Bearer realm=\"sealcast-admin\"")
            );
        }
    }
    // A playback token is not an admin token.
    let viewer = server.token("*", 3600);
    assert_eq!(
        api(server.http, "GET", "/api/v1/streams", Some(&viewer), "").await.0,
        401
    );
    // Basic auth with the right secret is still not a bearer token.
    let basic = format!("Basic {ADMIN_TOKEN}");
    let response = http::get_with(server.http, "/api/v1/streams", &[("Authorization", &basic)]).await;
    assert_eq!(response.status, 401);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playback_requests_are_validated() {
    let server = with_admin_token().await;
    let cases = [
        (r#"not json"#, 400),
        (r#"{"stream":"live/demo","ttl_secs":0}"#, 400),
        (r#"{"stream":"live/demo","ttl_secs":604801}"#, 400),
        (r#"{"stream":"live/demo","extra":1}"#, 400),
        (r#"{"stream":"demo"}"#, 400),
        (r#"{"stream":"live/*"}"#, 400),
        (r#"{"ttl_secs":60}"#, 400),
        (r#"{"stream":"live/nope"}"#, 404),
    ];
    for (body, want) in cases {
        let (status, json, _) = api(server.http, "POST", "/api/v1/playback", Some(ADMIN_TOKEN), body).await;
        assert_eq!(status, want, "{body}");
        assert!(json["error"].is_string(), "{body}: {json}");
    }
    // A 400 names the field at fault.
    let named = [
        (
            r#"{"stream":"live/demo","extra":1}"#,
            "unknown field \"extra\"; the fields are stream, ttl_secs and sub",
        ),
        (r#"{"ttl_secs":60}"#, "stream is required (\"app/name\")"),
        (r#"{"stream":5}"#, "stream must be a string \"app/name\""),
        (
            r#"{"stream":"live/demo","ttl_secs":"1h"}"#,
            "ttl_secs must be a whole number of seconds",
        ),
        (
            r#"{"stream":"live/demo","ttl_secs":-5}"#,
            "ttl_secs must be a whole number of seconds",
        ),
        (r#"{"stream":"live/demo","sub":7}"#, "sub must be a string"),
        (
            r#"{"stream":"live/demo","ttl_secs":0}"#,
            "ttl_secs must be between 1 and 604800",
        ),
        (r#"{"stream":"demo"}"#, "stream must be app/name"),
    ];
    for (body, want) in named {
        let (status, json, _) = api(server.http, "POST", "/api/v1/playback", Some(ADMIN_TOKEN), body).await;
        assert_eq!((status, json["error"].as_str()), (400, Some(want)), "{body}");
    }
    let long_sub = format!(r#"{{"stream":"live/demo","sub":"{}"}}"#, "x".repeat(257));
    assert_eq!(
        api(server.http, "POST", "/api/v1/playback", Some(ADMIN_TOKEN), &long_sub)
            .await
            .0,
        400
    );
    // Defaults: one hour, no sub.
    let (status, json, _) = api(
        server.http,
        "POST",
        "/api/v1/playback",
        Some(ADMIN_TOKEN),
        r#"{"stream":"live/other"}"#,
    )
    .await;
    assert_eq!(status, 200);
    let claims = auth::verify(&server.secret, json["token"].as_str().unwrap(), "live/other", 0).unwrap();
    assert_eq!(json["expires_unix_secs"].as_u64(), Some(claims.exp));
    assert!(claims.exp >= server.keys.now() + 3599 && claims.exp <= server.keys.now() + 3600);
    assert_eq!(claims.sub, None);
    // No stream is live: the list is empty.
    let (status, json, _) = api(server.http, "GET", "/api/v1/streams", Some(ADMIN_TOKEN), "").await;
    assert_eq!((status, json), (200, json!({"streams": []})));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_list_and_a_playback_url_that_ffmpeg_plays() {
    with_safety_net(async {
        let server = with_admin_token().await;
        let mut publisher = Proc::spawn(
            "ffmpeg publisher",
            Command::new("ffmpeg")
                .args(["-nostdin", "-v", "error", "-re", "-i"])
                .arg(fixture(FIXTURE))
                .args(["-c", "copy", "-f", "flv"])
                .arg(format!("rtmp://{}/live/{DEMO_KEY}", server.rtmp))
                .stdin(Stdio::null()),
        );

        let (status, json, _) = api(
            server.http,
            "POST",
            "/api/v1/playback",
            Some(ADMIN_TOKEN),
            r#"{"stream": "live/demo", "ttl_secs": 600, "sub": "viewer-42"}"#,
        )
        .await;
        assert_eq!(status, 200, "{json}");
        let token = json["token"].as_str().unwrap();
        let claims = auth::verify(&server.secret, token, "live/demo", 0).unwrap();
        assert_eq!(claims.sub.as_deref(), Some("viewer-42"));
        assert_eq!(claims.stream, "live/demo");
        assert_eq!(claims.jti.as_ref().map(String::len), Some(22), "a random 128-bit jti");
        assert_eq!(json["expires_unix_secs"].as_u64(), Some(claims.exp));
        assert_eq!(json["stream"], "live/demo");
        let playback_url = json["playback_url"].as_str().unwrap().to_owned();
        assert_eq!(
            playback_url,
            format!("http://{}/live/demo/index.m3u8?token={token}", server.http)
        );

        // Wait until the stream has a segment, then list it.
        let path = playback_url
            .strip_prefix(&format!("http://{}", server.http))
            .unwrap()
            .to_owned();
        until_listed(server.http, &path).await;
        let (status, json, response) = api(server.http, "GET", "/api/v1/streams", Some(ADMIN_TOKEN), "").await;
        assert_eq!(status, 200);
        assert_eq!(response.header("content-type"), Some("application/json"));
        let streams = json["streams"].as_array().unwrap();
        assert_eq!(streams.len(), 1, "only live streams: {json}");
        let s = &streams[0];
        assert_eq!(s["stream"], "live/demo");
        assert_eq!(
            s["playlist_url"],
            format!("http://{}/live/demo/index.m3u8", server.http)
        );
        assert_eq!(s["codecs"], json!(["h264", "aac"]));
        assert_eq!(s["resolution"], json!({"width": 640, "height": 360}));
        assert_eq!(s["encryption"], "AES-128");
        assert_eq!(s["segments_per_key"], 1);
        assert_eq!(s["segment_duration_secs"], 2);
        assert!(s["segments"].as_u64().unwrap() >= 1, "{s}");
        assert!(s["media_sequence"].is_u64(), "{s}");
        assert!(s["started_unix_ms"].as_u64().unwrap() > 1_700_000_000_000, "{s}");
        // The fixture is about 0.5 Mb/s of video and audio: a plausible range.
        let bitrate = s["bitrate_bps"].as_u64().unwrap();
        assert!((100_000..5_000_000).contains(&bitrate), "{bitrate}");

        let out = server.dir.path().join("played.ts");
        let mut player = Proc::spawn(
            "ffmpeg player",
            Command::new("ffmpeg")
                .args(["-nostdin", "-v", "error", "-live_start_index", "0", "-i", &playback_url])
                .args(["-c", "copy", "-f", "mpegts"])
                .arg(&out)
                .stdin(Stdio::null()),
        );
        let (pushed, played) =
            tokio::task::spawn_blocking(move || (publisher.wait(CHILD_LIMIT), player.wait(CHILD_LIMIT)))
                .await
                .unwrap();
        assert!(pushed.success());
        assert!(played.success());
        let want = count_frames(&fixture(FIXTURE));
        let got = count_frames(&out);
        assert!(got.video * 100 >= want.video * 95, "video {got:?} of {want:?}");
        assert!(got.audio * 100 >= want.audio * 95, "audio {got:?} of {want:?}");
        server.stop().await;
    })
    .await;
}

/// With separate key servers (`key_base_url`), key URIs point at them while
/// the admin API's playlist and playback URLs stay on this server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_base_url_moves_key_uris_and_nothing_else() {
    with_safety_net(async {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("admin_token");
        std::fs::write(&file, format!("{ADMIN_TOKEN}\n")).unwrap();
        crate::support::process::make_private(&file);
        let server = TestServer::start_with_config("[hls]\nsegment_duration_secs = 2\n", |c| {
            c.auth.admin_token_file = Some(file.clone());
            c.http.public_url = Some("https://video.example.com/".to_owned());
            c.http.key_base_url = Some("https://keys.example.com/".to_owned());
        })
        .await;
        let mut publisher = crate::support::rtmp::Publisher::publish(server.rtmp, DEMO_KEY).await;
        let fixture = crate::support::rtmp::Fixture::load(FIXTURE);
        publisher.send_metadata(&fixture.metadata).await;
        publisher.send_tags(&fixture.tags).await;

        let (status, body, _) = api(
            server.http,
            "POST",
            "/api/v1/playback",
            Some(ADMIN_TOKEN),
            r#"{"stream":"live/demo"}"#,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let playback_url = body["playback_url"].as_str().unwrap();
        assert!(
            playback_url.starts_with("https://video.example.com/live/demo/index.m3u8?token="),
            "{playback_url}"
        );
        let (status, body, _) = api(server.http, "GET", "/api/v1/streams", Some(ADMIN_TOKEN), "").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["streams"][0]["playlist_url"],
            "https://video.example.com/live/demo/index.m3u8"
        );

        let token = server.token("live/demo", 3600);
        let playlist = until_listed(server.http, &format!("/live/demo/index.m3u8?token={token}")).await;
        let key_lines: Vec<&str> = playlist.lines().filter(|l| l.starts_with("#EXT-X-KEY")).collect();
        assert!(!key_lines.is_empty(), "{playlist}");
        for line in key_lines {
            assert!(
                line.contains("URI=\"https://keys.example.com/keys/live/demo/"),
                "{line}"
            );
        }
        publisher.finish().await;
        server.stop().await;
    })
    .await;
}
