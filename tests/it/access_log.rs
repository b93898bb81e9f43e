//! The optional access log: one line per request with status, route,
//! stream, duration, bytes and the authorized viewer, and never the token
//! from the query.

use std::process::{Command, Stdio};
use std::time::Duration;

use sealcast::auth::{Claims, ticket};

use crate::support::http;
use crate::support::logs::capture_logs;
use crate::support::playlist::{self, distinct_keys, query_param};
use crate::support::process::Proc;
use crate::support::server::{DEMO_KEY, TestServer};
use crate::support::{fixture, with_safety_net};

#[tokio::test]
async fn one_line_per_request_and_never_a_token() {
    let (_capture, logs) = capture_logs();
    let token_text = "eyJhbGciOiJIUzI1NiJ9.eyJzdHJlYW0iOiJsaXZlL290aGVyIn0.secret-signature";
    with_safety_net(async {
        let server = TestServer::start_with_config("", |c| c.http.access_log = true).await;
        let refused = http::get(server.http, &format!("/live/demo/index.m3u8?token={token_text}")).await;
        assert_eq!(refused.status, 403);
        let health = http::get(server.http, "/healthz").await;
        assert_eq!(health.status, 200);
        server.stop().await;
    })
    .await;
    let log = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("sealcast::access")).collect();
    assert_eq!(lines.len(), 2, "{log}");
    for (line, want) in lines.iter().zip([
        [
            "status=403",
            "method=GET",
            "route=/live/demo/index.m3u8",
            "stream=live/demo",
        ],
        ["status=200", "method=GET", "route=/healthz", "stream=-"],
    ]) {
        for field in want {
            assert!(line.contains(field), "{field} missing: {line}");
        }
        assert!(line.contains("duration_ms="), "{line}");
        assert!(line.contains(" INFO "), "{line}");
    }
    assert!(lines[0].contains("bytes=10"), "{}", lines[0]);
    assert!(lines[1].contains("bytes=3"), "{}", lines[1]);
    assert!(!log.contains("secret-signature"), "a token reached the log:\n{log}");
}

#[tokio::test]
async fn off_by_default() {
    let (_capture, logs) = capture_logs();
    with_safety_net(async {
        let server = TestServer::start("").await;
        assert_eq!(http::get(server.http, "/healthz").await.status, 200);
        server.stop().await;
    })
    .await;
    let log = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(!log.contains("sealcast::access"), "{log}");
}

/// The authorized viewer on playlist and key lines: the viewer tag (the one
/// tickets carry, so the lines of one viewer match) and the token's `sub`;
/// never the token or the ticket. Current-thread, so the capture sees the
/// server's tasks.
#[tokio::test]
async fn playlist_and_key_lines_name_the_viewer() {
    let (_capture, logs) = capture_logs();
    let (mut token, mut ticket) = (String::new(), String::new());
    let mut tag = String::new();
    with_safety_net(async {
        let segments = "[hls]\nsegment_duration_secs = 2\n[encryption]\nsegments_per_key = 1\n";
        let server = TestServer::start_with_config(segments, |c| {
            c.http.access_log = true;
            c.auth.one_time_key_tickets = true;
        })
        .await;
        let claims = Claims {
            exp: sealcast::clock::now_unix_secs() + 3600,
            stream: "live/demo".to_owned(),
            sub: Some("viewer-7".to_owned()),
            jti: Some("j-1".to_owned()),
            recording: None,
        };
        token = server.keys.mint_token(&claims);
        tag = ticket::viewer_tag(&claims, &token)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut push = Command::new("ffmpeg");
        push.args(["-nostdin", "-v", "error", "-i"])
            .arg(fixture("high-bframes-aac48k.flv"))
            .args(["-c", "copy", "-f", "flv"])
            .arg(format!("rtmp://{}/live/{DEMO_KEY}", server.rtmp))
            .stdin(Stdio::null());
        let mut publisher = Proc::spawn("ffmpeg publisher", &mut push);
        let status = tokio::task::spawn_blocking(move || publisher.wait(Duration::from_secs(120)))
            .await
            .unwrap();
        assert!(status.success());
        let text = playlist::until_ended(server.http, &format!("/live/demo/index.m3u8?token={token}")).await;
        let keys = distinct_keys(&text);
        ticket = query_param(&keys[0].uri, "ticket").unwrap().to_owned();
        assert_eq!(http::get(server.http, &keys[0].uri).await.status, 200);
        let edk = query_param(&keys[1].uri, "edk").unwrap();
        let by_token = format!("/keys/live/demo/{}?edk={edk}&token={token}", keys[1].key_id());
        assert_eq!(http::get(server.http, &by_token).await.status, 200);
        server.stop().await;
    })
    .await;
    let log = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("sealcast::access")).collect();
    let playlist_line = lines
        .iter()
        .rev()
        .find(|l| l.contains("route=/live/demo/index.m3u8"))
        .unwrap();
    let key_lines: Vec<&&str> = lines.iter().filter(|l| l.contains("route=/keys/")).collect();
    assert_eq!(key_lines.len(), 2, "{log}");
    for (line, sub) in [
        (playlist_line, "sub=viewer-7"),
        (key_lines[0], "sub=-"),
        (key_lines[1], "sub=viewer-7"),
    ] {
        assert!(line.contains("status=200"), "{line}");
        assert!(line.contains(&format!("viewer={tag}")), "{line}");
        assert!(line.contains(sub), "{line}");
    }
    let token_signature = token.rsplit('.').next().unwrap();
    assert!(!log.contains(token_signature), "a token reached the log");
    assert!(!log.contains(&ticket), "a ticket reached the log");
}
