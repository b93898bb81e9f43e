//! The optional access log: one line per request with status, route,
//! stream, duration and bytes, and never the token from the query.

use crate::support::http;
use crate::support::logs::capture_logs;
use crate::support::server::TestServer;
use crate::support::with_safety_net;

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
