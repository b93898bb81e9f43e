//! Hostile RTMP clients against the real server (in process, real sockets).
//! Every case is a raw TCP client built from rml_rtmp's client handshake and
//! hand-made chunks; the table says what the server must do: keep the
//! connection serving (it still answers a ping), close it (before the
//! handshake deadline could have, so the close is the server's verdict on
//! the bytes), or refuse it outright.
//!
//! Each row of the table is a test of its own ([`hostile_rows!`]), against
//! its own server while a good publisher holds `live/demo`, so a failure
//! names its row and the other rows still run. One more test runs the whole
//! table, a slow loris and a flood while ffmpeg pushes a good stream in real
//! time: afterwards the server is still running, the good stream's playlist
//! has a segment every 2 s with no discontinuity, and a whole fixture pushed
//! with audio and video interleaved chunk by chunk decrypts to every one of
//! its frames.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::support::playlist::{until_ended, until_listed};
use crate::support::process::Proc;
use crate::support::rtmp::{Fixture, Publisher};
use crate::support::server::{DEMO_KEY, OTHER_KEY, TestServer};
use crate::support::{count_frames, fixture};
use rml_rtmp::chunk_io::ChunkDeserializer;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::{RtmpMessage, UserControlEventType};
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::time::RtmpTimestamp;
use sealcast::flv::{self, TagKind};
use sealcast::hls::parse_media_playlist;
use sealcast::kms::local::LocalKms;
use sealcast::rtmp::chunk::{encode_message, message_type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use self::cases::{Case, Expect, PUBLISH_START, cases, check, publisher};
use self::raw::{Raw, ping};

mod cases;
mod raw;

/// Start deadline (handshake to publish) of the server the slow-loris and
/// flood cases run against.
const SHORT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(6);
/// Start deadline of the server the table cases run against: longer than any
/// wait here, so a close the table sees is the server's reaction to the bytes,
/// never the deadline, and no assertion needs a clock.
const LONG_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(600);
const SEGMENT_SECS: f64 = 2.0;
/// Safety net for any single wait; no assertion depends on it.
const SAFETY: Duration = Duration::from_secs(60);
const GOOD_FIXTURE: &str = "high-bframes-aac48k.flv";
const MIXED_KEY: &str = "sk_mixed_0123456789abcdef";

fn hostile_key(i: usize) -> String {
    format!("sk_hostile_{i:02}_0123456789")
}

fn extra_toml(handshake_timeout: Duration) -> String {
    let mut toml = format!(
        "[rtmp]\nhandshake_timeout_secs = {}\nmax_connections_per_ip = 100\n\
         [hls]\nsegment_duration_secs = {SEGMENT_SECS}\nplaylist_window = 60\n\
         [[streams]]\napp = \"live\"\nname = \"mixed\"\nkey = \"{MIXED_KEY}\"\n",
        handshake_timeout.as_secs()
    );
    for i in 0..16 {
        toml.push_str(&format!(
            "[[streams]]\napp = \"live\"\nname = \"h{i:02}\"\nkey = \"{}\"\n",
            hostile_key(i)
        ));
    }
    toml
}

/// A client that sends its handshake one byte per second.
async fn slow_loris(addr: SocketAddr) -> usize {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let c0c1 = Handshake::new(PeerType::Client).generate_outbound_p0_and_p1().unwrap();
    for (sent, byte) in c0c1.iter().enumerate() {
        // The first write after the server's close may still succeed; the
        // next one fails.
        if socket.write_all(&[*byte]).await.is_err() {
            return sent;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    c0c1.len()
}

/// 300 connections at once, idle. The per-IP cap (100) closes the excess
/// at once and the start deadline the rest; while they are held, one more
/// connection from this address is refused; afterwards publishing works.
async fn flood(addr: SocketAddr) {
    let mut sockets = Vec::with_capacity(300);
    for _ in 0..300 {
        sockets.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut extra = Raw::tcp(addr).await;
    extra
        .send(&Handshake::new(PeerType::Client).generate_outbound_p0_and_p1().unwrap())
        .await;
    let observed = extra.observe().await;
    check(
        "connection while the flood holds the per-IP slots",
        Expect::Refused,
        &observed,
    );
    for mut socket in sockets {
        let mut buf = [0_u8; 64];
        let read = tokio::time::timeout(SAFETY, socket.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "an idle flood connection got data or stayed open"
        );
    }
    let mut raw = publisher(addr, 10).await;
    let observed = {
        raw.send(&ping()).await;
        raw.wait_for(|raw| raw.observed.pong).await;
        raw.observed
    };
    check("publish after the flood", Expect::Open(PUBLISH_START), &observed);
}

/// Runs one case against `server` and checks the verdict; the server must
/// still run afterwards.
async fn run_case(case: &Case, server: &TestServer) {
    let raw = tokio::time::timeout(SAFETY, (case.run)(server.rtmp))
        .await
        .unwrap_or_else(|_| panic!("{}: stuck", case.name));
    let observed = tokio::time::timeout(SAFETY, raw.observe())
        .await
        .unwrap_or_else(|_| panic!("{}: no verdict", case.name));
    check(case.name, case.expect, &observed);
    assert!(server.is_running(), "server exited after: {}", case.name);
}

/// The row called `name`, alone: its own server, `live/demo` held live by
/// a good publisher (as the row about publishing to a live stream needs),
/// the verdict checked, and the server still running.
async fn run_row(name: &str) {
    let case = cases()
        .into_iter()
        .find(|case| case.name == name)
        .unwrap_or_else(|| panic!("no row {name:?}"));
    let server = TestServer::start(&extra_toml(LONG_HANDSHAKE_TIMEOUT)).await;
    let good_fixture = Fixture::load(GOOD_FIXTURE);
    let mut good = Publisher::publish(server.rtmp, DEMO_KEY).await;
    good.send_metadata(&good_fixture.metadata).await;
    good.send_tags(good_fixture.split_at_ms(3000).0).await;
    run_case(&case, &server).await;
    good.finish().await;
    server.stop().await;
}

/// A test per row of [`cases`], named after it, and a test that no row
/// lacks one.
macro_rules! hostile_rows {
    ($($test:ident => $row:literal,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                run_row($row).await;
            }
        )*

        #[test]
        fn every_row_has_its_test() {
            let tested = [$($row),*];
            let rows: Vec<&str> = cases().iter().map(|case| case.name).collect();
            assert_eq!(rows, tested);
        }
    };
}

hostile_rows! {
    garbage_before_the_handshake => "garbage before the handshake (an HTTP request)",
    wrong_handshake_version => "wrong handshake version (C0 = 6, RTMPE)",
    truncated_handshake_then_end_of_stream => "truncated handshake, then end of stream",
    garbage_after_the_handshake => "garbage after the handshake",
    type_3_chunk_on_an_unused_chunk_stream => "type 3 chunk on a chunk stream never used",
    bare_set_data_frame_before_publish => "rml_rtmp panic (a): bare @setDataFrame before publish",
    type_1_header_shrinking_the_length_mid_message =>
        "rml_rtmp panic (c): type 1 header shrinking the length mid-message",
    chunk_size_0 => "chunk size 0",
    chunk_size_2_pow_31_minus_1 => "chunk size 2^31-1",
    message_of_16_mb_before_publish => "message length of 16 MB before publish",
    message_of_16_mb_while_publishing => "message length of 16 MB while publishing",
    unknown_message_types => "unknown message types",
    tag_bodies_of_zero_bytes => "tag bodies of zero bytes",
    avc_nalu_lengths_past_the_end_of_the_tag => "AVC NALU lengths past the end of the tag",
    video_before_its_sequence_header => "video before its sequence header",
    aac_config_with_an_invalid_sample_rate_index => "AAC config with an invalid sample-rate index",
    publish_without_connect => "publish without connect",
    publish_to_an_app_that_does_not_exist => "publish to an app that does not exist",
    publish_with_a_wrong_key => "publish with a wrong key",
    publish_to_the_good_stream_while_it_is_live => "publish to the good stream while it is live",
    two_publishes_on_one_connection => "two publishes on one connection",
    play_request => "play request",
    second_connect_on_one_connection => "second connect on one connection",
    amf0_command_nested_100000_levels_before_publish => "AMF0 command nested 100,000 levels before publish",
    amf0_command_nested_100000_levels_while_publishing => "AMF0 command nested 100,000 levels while publishing",
    amf0_metadata_nested_100000_levels_while_publishing => "AMF0 metadata nested 100,000 levels while publishing",
    amf0_string_whose_length_runs_past_the_message => "AMF0 string whose length runs past the message",
    abort_message_in_the_middle_of_a_message => "Abort message in the middle of a message",
    malformed_aggregate_message => "malformed aggregate message",
    too_many_chunk_streams => "too many chunk streams",
    too_many_unfinished_messages => "too many unfinished messages",
    whole_fixture_interleaved_chunk_by_chunk =>
        "rml_rtmp panic (b): a whole fixture, audio and video interleaved chunk by chunk",
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_while_a_good_stream_is_pushed() {
    let server = TestServer::start(&extra_toml(LONG_HANDSHAKE_TIMEOUT)).await;
    let deadline_server = TestServer::start(&extra_toml(SHORT_HANDSHAKE_TIMEOUT)).await;
    let addr = server.rtmp;
    let url = format!("rtmp://{addr}/live/{DEMO_KEY}");
    let log = server.dir.path().join("ffmpeg.log");
    let mut ffmpeg = Proc::spawn(
        "ffmpeg publisher",
        Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-nostdin",
                "-loglevel",
                "error",
                "-re",
                "-stream_loop",
                "1",
                "-i",
            ])
            .arg(fixture(GOOD_FIXTURE))
            .args(["-c", "copy", "-f", "flv"])
            .arg(&url)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    // The good stream is live once its first segment is out.
    until_listed(server.http, "/live/demo/index.m3u8").await;

    let loris = tokio::spawn(slow_loris(deadline_server.rtmp));
    let cases = cases();
    assert!(cases.len() + 2 >= 25, "{} cases", cases.len() + 2);
    for case in &cases {
        run_case(case, &server).await;
    }

    // Slow loris: cut off at the start deadline, long before its handshake.
    // One byte a second, so the byte count bounds how long it was let in.
    let sent = loris.await.unwrap();
    assert!(sent < 1537, "slow loris finished its handshake");

    tokio::time::timeout(SAFETY, flood(deadline_server.rtmp))
        .await
        .expect("flood case stuck");
    assert!(deadline_server.is_running(), "server exited after the flood");

    // The good stream: ffmpeg pushed all of it without an error.
    let status = tokio::task::spawn_blocking(move || ffmpeg.wait(SAFETY)).await.unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "ffmpeg failed: {stderr}");

    // Its playlist: a segment every 2 s, no gap, no discontinuity.
    let text = until_ended(server.http, "/live/demo/index.m3u8").await;
    let playlist = parse_media_playlist(&text).unwrap();
    assert!(!text.contains("#EXT-X-DISCONTINUITY"), "{text}");
    let durations: Vec<f64> = playlist.segments.iter().map(|s| s.duration_secs).collect();
    assert!((9..=11).contains(&durations.len()), "{text}");
    let (last, full) = durations.split_last().unwrap();
    for d in full {
        assert!((d - SEGMENT_SECS).abs() < 0.1, "segment of {d} s: {text}");
    }
    assert!(*last <= SEGMENT_SECS + 0.1, "{text}");
    let total: f64 = durations.iter().sum();
    assert!((total - 20.0).abs() < 0.5, "{total} s of 20: {text}");

    // The interleaved publish plays: every frame of the fixture is there.
    until_ended(server.http, "/live/mixed/index.m3u8").await;
    let mixed = server.data_dir().join("live/mixed/index.m3u8");
    let decrypted = server.dir.path().join("mixed.ts");
    let kms = LocalKms::open_or_create(&server.data_dir().join("keyring.json")).unwrap();
    let segments = sealcast::tools::package::decrypt(&mixed, &decrypted, &kms)
        .await
        .unwrap();
    assert!(segments >= 5, "{segments} segments");
    assert_eq!(count_frames(&decrypted), count_frames(&fixture(GOOD_FIXTURE)));
    assert_eq!(crate::support::ffmpeg_errors(Path::new(&decrypted)), "");

    assert!(server.is_running());
    server.stop().await;
}
