//! The S3 storage backend (`[storage] backend = "s3"`) against two
//! independent S3 implementations that run here: moto's server (Python) and
//! s3rver (Node, refuses any access key but its S3RVER). ffmpeg
//! pushes, the canonical playlist in the bucket lists only stored segments,
//! ffmpeg plays through sealcast's HTTP (segments read back from the bucket),
//! and nothing in the bucket is plaintext or a data key. Storage cut off
//! mid-stream is survived with a marked gap; a wrong bucket or endpoint
//! stops the start naming the setting.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryStreamExt as _;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{ClientOptions, ObjectStore as _, ObjectStoreExt as _};

use crate::support::http;
use crate::support::kms::{FPS, Proxy, fetch_key};
use crate::support::playlist::{self, keyed_segments, wait_for};
use crate::support::process::{Proc, free_port, parse_running_line, write_private};
use crate::support::server::{DEMO_KEY, mint_token, streams_toml};
use crate::support::{contains, count_frames};

pub(crate) const BUCKET: &str = "sealcast-media";
pub(crate) const PREFIX: &str = "media/";
pub(crate) const TOKEN_SECRET: &str = "s3-test-secret-0123456789-0123456789-abcdef";

/// An S3 implementation on a loopback port with [`BUCKET`] created, killed
/// on drop.
pub(crate) struct S3Server {
    _process: Proc,
    addr: SocketAddr,
    pub(crate) access_key_id: &'static str,
    pub(crate) secret_access_key: &'static str,
    _dir: tempfile::TempDir,
}

impl S3Server {
    /// moto's server (any credentials; path-style), bucket made by a PUT.
    pub(crate) async fn moto() -> Self {
        let port = free_port();
        let process = Proc::spawn(
            "python3 -m moto.server (moto[server])",
            Command::new("python3")
                .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let server = Self::listening(process, port, "AKIAMOTOTEST", "moto-secret").await;
        let host = server.addr;
        let created = http::raw(
            host,
            &format!("PUT /{BUCKET} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            b"",
        )
        .await;
        assert_eq!(created.status, 200, "creating the bucket in moto: {}", created.text());
        server
    }

    /// s3rver with the bucket configured at start, files in a temporary dir.
    async fn s3rver() -> Self {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let process = Proc::spawn(
            "s3rver (npm install -g s3rver)",
            Command::new("s3rver")
                .args(["-d"])
                .arg(dir.path())
                .args([
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "--silent",
                    "--no-vhost-buckets",
                ])
                .args(["--configure-bucket", BUCKET])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let mut server = Self::listening(process, port, "S3RVER", "S3RVER").await;
        server._dir = dir;
        server
    }

    async fn listening(process: Proc, port: u16, id: &'static str, secret: &'static str) -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_for("the S3 server to listen", Duration::from_secs(60), || async {
            tokio::net::TcpStream::connect(addr).await.ok().map(|_| ())
        })
        .await;
        Self {
            _process: process,
            addr,
            access_key_id: id,
            secret_access_key: secret,
            _dir: tempfile::tempdir().unwrap(),
        }
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client of the bucket for the test's own reads.
    pub(crate) fn client(&self) -> AmazonS3 {
        let _ = rustls::crypto::ring::default_provider().install_default();
        AmazonS3Builder::new()
            .with_bucket_name(BUCKET)
            .with_region("us-east-1")
            .with_endpoint(self.endpoint())
            .with_access_key_id(self.access_key_id)
            .with_secret_access_key(self.secret_access_key)
            .with_virtual_hosted_style_request(false)
            .with_client_options(ClientOptions::new().with_allow_http(true))
            .build()
            .unwrap()
    }
}

/// Every object in the bucket: (key, bytes).
pub(crate) async fn objects(store: &AmazonS3) -> Vec<(String, Vec<u8>)> {
    let metas: Vec<_> = store.list(None).try_collect().await.unwrap();
    let mut out = Vec::new();
    for meta in metas {
        let bytes = store.get(&meta.location).await.unwrap().bytes().await.unwrap();
        out.push((meta.location.to_string(), bytes.to_vec()));
    }
    out.sort();
    out
}

/// A run of five 0x47 sync bytes 188 bytes apart anywhere: plaintext MPEG-TS.
pub(crate) fn has_ts_run(bytes: &[u8]) -> bool {
    (0..bytes.len().saturating_sub(188 * 4)).any(|i| (0..5).all(|k| bytes[i + 188 * k] == 0x47))
}

/// The config of a server storing into `endpoint`.
pub(crate) fn write_config(dir: &Path, endpoint: &str, bucket: &str, window: u32) -> std::path::PathBuf {
    let secret_file = dir.join("token_secret");
    write_private(&secret_file, TOKEN_SECRET);
    let config = dir.join("sealcast.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[rtmp]
listen = "127.0.0.1:0"
[http]
listen = "127.0.0.1:0"
[metrics]
listen = "127.0.0.1:0"
[storage]
data_dir = "{data}"
backend = "s3"
[storage.s3]
bucket = "{bucket}"
endpoint = "{endpoint}"
region = "us-east-1"
prefix = "{PREFIX}"
[hls]
segment_duration_secs = 2
playlist_window = {window}
reconnect_grace_secs = 0
[auth]
token_secret_file = "{secret}"
{streams}"#,
            data = dir.join("data").display(),
            secret = secret_file.display(),
            streams = streams_toml(),
        ),
    )
    .unwrap();
    config
}

/// `sealcast serve --config FILE` with the S3 credentials in its
/// environment only, as in production; `Err(log)` when it exits instead of
/// printing its banner.
pub(crate) fn serve(config: &Path, s3: (&str, &str)) -> Result<(Proc, SocketAddr, SocketAddr), String> {
    use std::io::BufRead as _;
    let log_path = config.with_file_name("server.log");
    let mut child = Proc::spawn(
        "sealcast serve",
        Command::new(env!("CARGO_BIN_EXE_sealcast"))
            .args(["serve", "--config"])
            .arg(config)
            .env("AWS_ACCESS_KEY_ID", s3.0)
            .env("AWS_SECRET_ACCESS_KEY", s3.1)
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env("RUST_LOG", "sealcast=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log_path).unwrap()),
    );
    let stdout = child.child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let Some(Ok(banner)) = lines.next() else {
        child.wait(Duration::from_secs(30));
        return Err(std::fs::read_to_string(&log_path).unwrap_or_default());
    };
    let (rtmp, http) = parse_running_line(&banner).unwrap_or_else(|| panic!("{banner}"));
    std::thread::spawn(move || for _ in lines {});
    Ok((child, rtmp, http))
}

/// The canonical playlist in the bucket, once it has `#EXT-X-ENDLIST`.
pub(crate) async fn stored_playlist_ended(store: &AmazonS3) -> String {
    stored_playlist_where(store, playlist::ended).await
}

/// The canonical playlist in the bucket, once `done` holds for it.
async fn stored_playlist_where(store: &AmazonS3, done: impl Fn(&str) -> bool) -> String {
    let path = object_store::path::Path::from(format!("{PREFIX}live/demo/index.m3u8"));
    let (done, path) = (&done, &path);
    wait_for("the stored playlist", Duration::from_secs(60), || async move {
        let bytes = store.get(path).await.ok()?.bytes().await.ok()?;
        let text = String::from_utf8(bytes.to_vec()).ok()?;
        done(&text).then_some(text)
    })
    .await
}

/// Pushes `seconds` to a server storing into `s3`, then checks the bucket,
/// playback through sealcast, and that nothing in the bucket is plaintext or
/// a data key.
async fn push_play_and_scan(s3: &S3Server) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &s3.endpoint(), BUCKET, 30);
    let (_server, rtmp, http_addr) = serve(&config, (s3.access_key_id, s3.secret_access_key)).unwrap();
    let ready = http::get(http_addr, "/readyz").await;
    assert_eq!(ready.status, 200, "the bucket is part of readiness: {}", ready.text());
    let seconds = 10;
    crate::support::kms::finished(crate::support::kms::publish(rtmp, DEMO_KEY, seconds, true)).await;
    let store = s3.client();
    let stored = stored_playlist_ended(&store).await;
    assert!(
        !stored.contains("token="),
        "the canonical playlist carries no credential:\n{stored}"
    );

    // Every listed segment is in the bucket.
    let keyed = keyed_segments(&stored);
    assert!(keyed.len() >= 4, "{stored}");
    let all = objects(&store).await;
    let names: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
    for segment in &keyed {
        let key = format!("{PREFIX}live/demo/{}", segment.segment);
        assert!(names.contains(&key.as_str()), "{key} listed but not stored: {names:?}");
    }

    // Playback through sealcast, segments read back from the bucket.
    let token = mint_token(
        &sealcast::auth::Secret::new(TOKEN_SECRET.as_bytes().to_vec()),
        "live/demo",
        3600,
    );
    let played = dir.path().join("played.ts");
    crate::support::kms::play(http_addr, "live/demo", &token, &played).await;
    let frames = count_frames(&played);
    let pushed = u64::from(seconds * FPS);
    assert!(
        frames.video * 100 >= pushed * 95,
        "played {} of {pushed} video frames",
        frames.video
    );
    assert!(frames.audio > 0, "{frames:?}");

    // No plaintext TS and no data key anywhere in the bucket.
    let mut data_keys = Vec::new();
    for segment in &keyed {
        let (status, key, _) = fetch_key(http_addr, &segment.uri, &token).await;
        assert_eq!(status, 200, "key of {}", segment.segment);
        assert_eq!(key.len(), 16);
        data_keys.push(key);
    }
    for (name, bytes) in &all {
        assert!(!has_ts_run(bytes), "{name} holds plaintext MPEG-TS");
        for key in &data_keys {
            assert!(!contains(bytes, key), "{name} holds a data key");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_s3_stores_lists_plays_and_holds_only_ciphertext() {
    push_play_and_scan(&S3Server::moto().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3rver_stores_lists_plays_and_holds_only_ciphertext() {
    push_play_and_scan(&S3Server::s3rver().await).await;
}

/// Storage unreachable for about 10 s mid-stream (a relay between sealcast
/// and moto cut, then restored): the server keeps running, every listed
/// segment is stored, the gap is marked, and publication resumes by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_outage_mid_stream_is_a_marked_gap() {
    let s3 = S3Server::moto().await;
    let relay = Proxy::start(s3.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &relay.endpoint(), BUCKET, 60);
    let (mut server, rtmp, http_addr) = serve(&config, (s3.access_key_id, s3.secret_access_key)).unwrap();
    let publisher = crate::support::kms::publish(rtmp, DEMO_KEY, 30, true);
    let store = s3.client();
    let playlist_path = object_store::path::Path::from(format!("{PREFIX}live/demo/index.m3u8"));
    let listed_now = || async {
        let bytes = store.get(&playlist_path).await.ok()?.bytes().await.ok()?;
        Some(playlist::segment_count(&String::from_utf8_lossy(&bytes)))
    };
    wait_for("two stored segments", Duration::from_secs(30), || async {
        listed_now().await.filter(|&n| n >= 2)
    })
    .await;
    relay.cut();
    tokio::time::sleep(Duration::from_secs(10)).await;
    relay.restore();
    crate::support::kms::finished(publisher).await;
    let stored = stored_playlist_ended(&store).await;
    assert!(server.try_status().is_none(), "the server must keep running");
    assert_eq!(http::get(http_addr, "/healthz").await.status, 200);

    let parsed = playlist::parse(&stored);
    let gap = parsed
        .segments
        .iter()
        .position(|s| s.discontinuity)
        .unwrap_or_else(|| panic!("no discontinuity marks the gap:\n{stored}"));
    assert!(gap >= 2, "the gap follows the first stored segments:\n{stored}");
    assert!(
        parsed.segments.len() > gap + 3,
        "publication resumed after the gap:\n{stored}"
    );
    let all = objects(&store).await;
    for (name, bytes) in &all {
        assert!(!has_ts_run(bytes), "{name} holds plaintext MPEG-TS");
    }
    let names: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
    for segment in &parsed.segments {
        let key = format!("{PREFIX}live/demo/{}", segment.uri);
        assert!(names.contains(&key.as_str()), "{key} listed but not stored");
    }
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert!(log.contains("segment dropped"), "the drop is logged:\n{log}");
}

/// A wrong bucket, an endpoint nobody answers on, or a wrong secret stops
/// the start, and the error names the setting to fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_bucket_endpoint_or_credentials_is_a_start_error_naming_the_setting() {
    let s3 = Arc::new(S3Server::moto().await);
    let unreachable = format!("http://127.0.0.1:{}", free_port());
    // (endpoint, bucket, the setting the error must name)
    let table = [
        (s3.endpoint(), "no-such-bucket", "storage.s3.bucket"),
        (unreachable, BUCKET, "storage.s3.endpoint"),
    ];
    for (endpoint, bucket, setting) in table {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &endpoint, bucket, 6);
        match serve(&config, (s3.access_key_id, s3.secret_access_key)) {
            Ok(_) => panic!("{setting}: the server started"),
            Err(log) => assert!(log.contains(setting), "{setting} not named:\n{log}"),
        }
    }
    // s3rver knows one access key (S3RVER): another one is refused, and said so.
    let s3rver = S3Server::s3rver().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &s3rver.endpoint(), BUCKET, 6);
    match serve(&config, ("AKIANOTKNOWN", s3rver.secret_access_key)) {
        Ok(_) => panic!("wrong credentials: the server started"),
        Err(log) => assert!(log.contains("the credentials"), "credentials not named:\n{log}"),
    }
}

/// The keys of the bucket's objects.
async fn keys(store: &AmazonS3) -> Vec<String> {
    let metas: Vec<_> = store.list(None).try_collect().await.unwrap();
    metas.into_iter().map(|m| m.location.to_string()).collect()
}

/// With a window of three segments, segments that slid out of the playlist
/// are deleted from the bucket (after their duration plus the playlist's,
/// RFC 8216 6.2.2), and the listed ones stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_segments_are_deleted_from_the_bucket() {
    let s3 = S3Server::moto().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &s3.endpoint(), BUCKET, 3);
    let (_server, rtmp, _http) = serve(&config, (s3.access_key_id, s3.secret_access_key)).unwrap();
    crate::support::kms::finished(crate::support::kms::publish(rtmp, DEMO_KEY, 12, false)).await;
    let store = s3.client();
    let stored = stored_playlist_ended(&store).await;
    let parsed = playlist::parse(&stored);
    assert_eq!(parsed.segments.len(), 3, "{stored}");
    assert!(parsed.media_sequence >= 2, "segments slid out:\n{stored}");
    let listed: Vec<String> = parsed
        .segments
        .iter()
        .map(|s| format!("{PREFIX}live/demo/{}", s.uri))
        .collect();
    let remaining = wait_for("expired segments to be deleted", Duration::from_secs(60), || async {
        let segments: Vec<String> = keys(&store).await.into_iter().filter(|k| k.ends_with(".ts")).collect();
        (segments.len() == listed.len()).then_some(segments)
    })
    .await;
    for key in &listed {
        assert!(remaining.contains(key), "{key} is listed but was deleted");
    }
}

/// Another node (a fresh process with its own data directory, the same
/// bucket) continues the stored playlist: the first node's segments stay,
/// a discontinuity, media sequence numbers that only grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_continues_the_stored_playlist() {
    let s3 = S3Server::moto().await;
    let store = s3.client();
    let mut uris = Vec::new();
    for node in ["a", "b"] {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &s3.endpoint(), BUCKET, 30);
        let (mut server, rtmp, _http) = serve(&config, (s3.access_key_id, s3.secret_access_key)).unwrap();
        crate::support::kms::finished(crate::support::kms::publish(rtmp, DEMO_KEY, 4, false)).await;
        let before = uris.len();
        let stored = stored_playlist_where(&store, |text| {
            playlist::ended(text) && playlist::segment_count(text) > before
        })
        .await;
        let parsed = playlist::parse(&stored);
        let now: Vec<String> = parsed.segments.iter().map(|s| s.uri.clone()).collect();
        assert!(
            now.starts_with(&uris),
            "node {node} kept the earlier segments:\n{stored}"
        );
        if node == "b" {
            let first_of_b = &parsed.segments[uris.len()];
            assert!(
                first_of_b.discontinuity,
                "node b's first segment follows a discontinuity:\n{stored}"
            );
            assert_eq!(parsed.media_sequence, 0, "{stored}");
            let seq = |uri: &str| -> u64 { uri.trim_end_matches(".ts").rsplit('-').next().unwrap().parse().unwrap() };
            assert!(
                seq(&first_of_b.uri) > seq(&uris[uris.len() - 1]),
                "sequence numbers grow:\n{stored}"
            );
        }
        assert!(now.len() > uris.len(), "node {node} added segments:\n{stored}");
        uris = now;
        server.kill();
    }
}
