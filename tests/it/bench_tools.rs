//! The load generators run as an operator runs them: `sealcast bench-push`
//! (realtime pattern, the default) publishes into a real server and
//! `sealcast bench-play` watches it as hls.js would, with one-time key
//! tickets. Benchmarks are scripts; this only checks that the tools work
//! and count what they did (no timing is asserted).

use std::process::Command;

use crate::support::playlist;
use crate::support::server::{DEMO_KEY, TestServer};
use crate::support::{fixture, with_safety_net};

const BIN: &str = env!("CARGO_BIN_EXE_sealcast");

/// A figure `name=N` from the tool's final line.
fn figure(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in {line:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_play_watches_a_live_stream_with_tickets_and_no_errors() {
    with_safety_net(async {
        let server = TestServer::start_with_config("", |c| c.auth.one_time_key_tickets = true).await;
        let url = format!("rtmp://{}/live", server.rtmp);
        let flv = fixture("high-bframes-aac48k.flv");
        let push = tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .args(["bench-push", "--url", &url, "--key-template", DEMO_KEY, "-n", "1"])
                .args(["--duration-secs", "14", "--ramp-ms", "0", "--fixture"])
                .arg(flv)
                .output()
                .unwrap()
        });
        // Viewers join a stream that has begun, as they do in production.
        playlist::until_segments(server.http, "/live/demo/index.m3u8", 1).await;
        let token = server.token("live/demo", 600);
        let playlist_url = format!("http://{}/live/demo/index.m3u8?token={token}", server.http);
        let play = tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .args(["bench-play", "--url", &playlist_url, "-n", "3"])
                .args(["--duration-secs", "7", "--ramp-ms", "300"])
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&play.stdout);
        assert!(
            play.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&play.stderr)
        );
        let done = stdout
            .lines()
            .find(|l| l.starts_with("bench-play done:"))
            .expect(&stdout);
        assert_eq!(figure(done, "errors"), 0, "{stdout}");
        // 3 viewers, 7 s of 2 s segments: each loads the live edge and at
        // least one reload.
        assert!(figure(done, "playlists") >= 6, "{stdout}");
        assert!(figure(done, "segments") >= 3, "{stdout}");
        assert!(figure(done, "keys") >= 3, "{stdout}");
        // Every key came from a ticket the server wrote into the playlist.
        assert!(server.keys.stats().tickets_accepted >= 3, "{stdout}");

        let push = push.await.unwrap();
        let push_out = String::from_utf8_lossy(&push.stdout);
        assert!(push.status.success(), "{push_out}");
        let done = push_out
            .lines()
            .find(|l| l.starts_with("bench-push done:"))
            .expect(&push_out);
        assert_eq!(figure(done, "failed"), 0, "{push_out}");
        server.stop().await;
    })
    .await;
}
