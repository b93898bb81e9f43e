//! The starvation attack of issue 14, against the real binary under a low
//! descriptor limit: `sealcast serve` runs under `prlimit --nofile=1024`,
//! one address keeps opening thousands of HTTP connections that never finish
//! their request headers, and meanwhile ffmpeg publishes a stream and another
//! ffmpeg plays it. No publisher is refused, the playlist keeps advancing,
//! the player decodes the stream, and every attacking connection is closed
//! by the server (at once past the per-address cap, else at the header
//! timeout); nothing waits on a wall-clock bound but the safety net.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sealcast::auth::Secret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

use crate::support::playlist::{self, POLL_LIMIT};
use crate::support::process::{
    Player, Proc, SEALCAST, ffmpeg_publish, parse_running_line, path_str, read_text, write_private,
};
use crate::support::server::{DEMO_KEY, mint_token, streams_toml};
use crate::support::{count_frames, fixture, with_safety_net};

const TOKEN_SECRET: &str = "starvation-token-secret-0123456789-0123456789";
const FIXTURE: &str = "baseline-aac44k.flv";
/// Attacking connections opened per wave; each wave waits until the server
/// closed all of them, then the next starts, until the publish is over.
const WAVE: usize = 2000;

/// `prlimit --nofile=1024:1024 sealcast serve --config FILE`, and its
/// addresses from the banner.
fn start(root: &Path) -> (Proc, SocketAddr, SocketAddr) {
    let secret = root.join("token_secret");
    write_private(&secret, TOKEN_SECRET);
    let config = root.join("sealcast.toml");
    write_private(
        &config,
        &format!(
            r#"[rtmp]
listen = "127.0.0.1:0"
[http]
listen = "127.0.0.1:0"
[http.limits]
header_timeout_secs = 2
[hls]
segment_duration_secs = 2
[metrics]
enabled = false
[storage]
data_dir = {data:?}
[auth]
token_secret_file = {secret:?}
{streams}"#,
            data = path_str(&root.join("data")),
            secret = path_str(&secret),
            streams = streams_toml(),
        ),
    );
    let log = root.join("server.log");
    let mut process = Proc::spawn(
        "sealcast serve (nofile 1024)",
        Command::new("prlimit")
            .args(["--nofile=1024:1024", "--"])
            .arg(SEALCAST)
            .args(["serve", "--config", path_str(&config)])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    // The banner's first line has the addresses; the rest is drained, so the
    // server never writes to a closed pipe.
    let stdout = process.child.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    std::thread::spawn(move || lines.for_each(drop));
    let (rtmp, http) =
        parse_running_line(first.trim()).unwrap_or_else(|| panic!("no banner ({first:?}):\n{}", read_text(&log)));
    (process, rtmp, http)
}

/// Opens a connection from 127.0.0.2 (the attacker's one address; the
/// player and the test poll from 127.0.0.1), sends half a request, and reads
/// until the server closes it. Connections the kernel refuses count as
/// closed by the server.
async fn half_open(http: SocketAddr, closed: Arc<AtomicU64>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    if let Ok(mut socket) = socket.connect(http).await {
        let _ = socket
            .write_all(b"GET /live/demo/index.m3u8 HTTP/1.1\r\nHost: x\r\n")
            .await;
        let mut sink = [0u8; 256];
        loop {
            match socket.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
    closed.fetch_add(1, Ordering::Relaxed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_http_floods_starve_neither_ingest_nor_playback() {
    with_safety_net(async {
        let root = tempfile::tempdir().unwrap();
        let (mut server, rtmp, http) = tokio::task::block_in_place(|| start(root.path()));
        let log = root.path().join("server.log");

        // The attacker: waves of half-open connections from 127.0.0.1 until told to stop.
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicU64::new(0));
        let closed = Arc::new(AtomicU64::new(0));
        let attacker = tokio::spawn({
            let (stop, opened, closed) = (Arc::clone(&stop), Arc::clone(&opened), Arc::clone(&closed));
            async move {
                let mut waves = 0u64;
                while !stop.load(Ordering::Relaxed) || waves == 0 {
                    let mut wave = JoinSet::new();
                    for _ in 0..WAVE {
                        opened.fetch_add(1, Ordering::Relaxed);
                        wave.spawn(half_open(http, Arc::clone(&closed)));
                    }
                    while wave.join_next().await.is_some() {}
                    waves += 1;
                }
                waves
            }
        });
        // The flood is on before the publisher comes.
        playlist::wait_for("the first attacking connections to be closed", POLL_LIMIT, || async {
            (closed.load(Ordering::Relaxed) > 0).then_some(())
        })
        .await;

        let url = format!("rtmp://{rtmp}/live/{DEMO_KEY}");
        let mut publisher = ffmpeg_publish(
            "ffmpeg publisher",
            FIXTURE,
            &url,
            true,
            &root.path().join("publish.log"),
        );
        let token = mint_token(&Secret::new(TOKEN_SECRET.as_bytes().to_vec()), "live/demo", 3600);
        let path = format!("/live/demo/index.m3u8?token={token}");
        // The playlist advances while the flood goes on: three distinct media
        // sequence states seen in a row.
        let first = playlist::until_segments(http, &path, 1).await;
        let player = Player::start(&format!("http://{http}{path}"), "starved", root.path());
        let mut last = first.clone();
        for _ in 0..2 {
            last = playlist::poll(http, &path, "the playlist to advance under the flood", |text| {
                playlist::segment_count(text) > playlist::segment_count(&last) || playlist::ended(text)
            })
            .await;
        }
        assert!(
            playlist::segment_count(&last) > playlist::segment_count(&first),
            "the playlist did not advance:\n{last}"
        );

        let status = tokio::task::block_in_place(|| publisher.wait(Duration::from_secs(120)));
        assert!(
            status.success(),
            "the publisher failed: {}\n{}",
            read_text(&root.path().join("publish.log")),
            read_text(&log)
        );
        playlist::until_ended(http, &path).await;
        let playback = tokio::task::block_in_place(|| player.finish(Duration::from_secs(120)));
        playback.assert_plays(count_frames(&fixture(FIXTURE)), "the player under the flood");

        stop.store(true, Ordering::Relaxed);
        let waves = attacker.await.unwrap();
        let (opened, closed) = (opened.load(Ordering::Relaxed), closed.load(Ordering::Relaxed));
        assert_eq!(opened, closed, "attacking connections the server never closed");
        assert!(opened >= WAVE as u64 * 2, "{waves} waves, {opened} connections");

        let text = read_text(&log);
        assert!(!text.contains("Too many open files"), "descriptors ran out:\n{text}");
        assert!(!text.contains("publish refused"), "{text}");
        assert!(text.contains("http connection refused: per-IP limit reached"), "{text}");
        assert!(
            server.terminate(Duration::from_secs(30)).is_some_and(|s| s.success()),
            "{text}"
        );
    })
    .await;
}
