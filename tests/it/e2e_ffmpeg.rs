//! End to end with real clients on both sides: the `sealcast` binary runs as a
//! child process (on 127.0.0.1:0 ports, except the default-config test),
//! ffmpeg publishes the fixtures over RTMP, and ffmpeg plays the encrypted HLS
//! back, fetching keys with playback tokens minted by `sealcast token`.
//!
//! Every child process belongs to a guard that ends it when dropped, so a
//! failing assertion leaks neither a server nor an ffmpeg. Waiting is polling
//! with a bound; no assertion depends on how long something took.

use std::cell::RefCell;
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::http::Response;
use crate::support::playlist::{self, POLL_LIMIT, ended, keyed_segments, segment_count};
use crate::support::process::{
    Playback, Player, Proc, SEALCAST, STOP_LIMIT, ffmpeg_publish, framecrc_counts, parse_running_line, path_str,
    read_text, spawn_sealcast, write_private,
};
use crate::support::server::{DEMO_KEY, OTHER_KEY, streams_toml};

const TOKEN_SECRET: &str = "e2e-token-secret-0123456789-0123456789";

/// The fixture pushed to live/demo, and the one pushed to live/other.
const DEMO_FIXTURE: &str = "high-bframes-aac48k.flv";
const OTHER_FIXTURE: &str = "baseline-aac44k.flv";

/// Bound for a child process to finish (a -re push of a 10 s fixture takes
/// about 10 s; a live read ends shortly after it).
const CHILD_LIMIT: Duration = Duration::from_secs(60);

// --- child processes -------------------------------------------------------

/// Runs a short command to completion with a bound; stdout and stderr as text.
fn run_bounded(name: &str, command: &mut Command, out_dir: &Path) -> (ExitStatus, String, String) {
    let stdout = out_dir.join(format!("{name}.out"));
    let stderr = out_dir.join(format!("{name}.err"));
    let mut proc = Proc::spawn(
        name,
        command
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("create a stdout file"))
            .stderr(File::create(&stderr).expect("create a stderr file")),
    );
    let status = proc.wait(CHILD_LIMIT);
    (status, read_text(&stdout), read_text(&stderr))
}

// --- the server ------------------------------------------------------------

/// A running `sealcast serve` and what its banner said.
struct Server {
    /// In a cell so polling (`&self`) can notice that the server died.
    process: RefCell<Proc>,
    rtmp: SocketAddr,
    http: SocketAddr,
    banner: Vec<String>,
    /// Where logs, ffmpeg output and (for configured servers) the config live.
    root: PathBuf,
    log: PathBuf,
    config: Option<PathBuf>,
    data_dir: PathBuf,
}

impl Server {
    /// Starts a server from a config with streams live/demo (DEMO_KEY) and
    /// live/other (OTHER_KEY) on 127.0.0.1:0 ports, everything under `root`.
    fn start(root: &Path) -> Server {
        let secret = root.join("token_secret");
        write_private(&secret, TOKEN_SECRET);
        let data_dir = root.join("data");
        let config = root.join("sealcast.toml");
        write_private(&config, &config_text(&data_dir, &secret));
        let args = ["serve", "--config", path_str(&config)];
        let mut server =
            Server::spawn(root, root, &args, "server").unwrap_or_else(|log| panic!("sealcast did not start:\n{log}"));
        server.config = Some(config);
        server.data_dir = data_dir;
        server
    }

    /// Runs `sealcast ARGS` in `cwd` and reads its banner; `Err(log)` when it
    /// exits before printing one.
    fn spawn(root: &Path, cwd: &Path, args: &[&str], label: &str) -> Result<Server, String> {
        let log = root.join(format!("{label}.log"));
        // The banner ends with the "more tokens" line.
        let (mut process, rx) = spawn_sealcast(args, cwd, &log);
        let deadline = Instant::now() + POLL_LIMIT;
        let mut banner = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let last = line.starts_with("more tokens:");
                    banner.push(line);
                    if last {
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    process.wait_within(STOP_LIMIT);
                    return Err(format!("{}\n{}", banner.join("\n"), read_text(&log)));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "no complete banner after {POLL_LIMIT:?}:\n{}\nlog:\n{}",
                        banner.join("\n"),
                        read_text(&log)
                    )
                }
            }
        }
        let (rtmp, http) = banner
            .first()
            .and_then(|line| parse_running_line(line))
            .unwrap_or_else(|| panic!("the banner does not start with the addresses:\n{}", banner.join("\n")));
        let server = Server {
            process: RefCell::new(process),
            rtmp,
            http,
            banner,
            root: root.to_owned(),
            log,
            config: None,
            data_dir: cwd.join("sealcast-data"),
        };
        // The banner comes before sealcast installs its SIGTERM handler, so a
        // SIGTERM right after it kills the process instead of stopping it
        // gracefully (a bug in src/main.rs). By the time an HTTP request is
        // answered, run() has in practice reached its signal handler.
        server.wait_until("an answer from /healthz", || {
            (server.get("/healthz").status == 200).then_some(())
        });
        Ok(server)
    }

    fn log(&self) -> String {
        read_text(&self.log)
    }

    /// `GET` on the server; a failed request (the helper panics) is reported
    /// with the server's log.
    fn get(&self, path_and_query: &str) -> Response {
        let http = self.http;
        std::panic::catch_unwind(|| http_get(http, path_and_query))
            .unwrap_or_else(|_| panic!("GET {path_and_query} failed; server log:\n{}", self.log()))
    }

    /// `sealcast token --stream STREAM --config CONFIG`.
    fn token(&self, stream: &str) -> String {
        let config = self.config.as_deref().expect("a configured server");
        let (status, stdout, stderr) = run_bounded(
            &format!("token-{}", stream.replace('/', ".")),
            Command::new(SEALCAST).args(["token", "--stream", stream, "--config", path_str(config)]),
            &self.root,
        );
        assert!(status.success(), "sealcast token failed: {stderr}");
        let token = stdout.trim().to_owned();
        assert_eq!(token.split('.').count(), 3, "not a JWT: {stdout:?}");
        token
    }

    /// `ffmpeg -re -i FIXTURE -c copy -f flv rtmp://ADDR/APP/KEY`, running.
    fn publish(&self, label: &str, fixture: &str, app: &str, key: &str) -> Proc {
        let log = self.root.join(format!("publish-{label}.log"));
        let url = format!("rtmp://{}/{app}/{key}", self.rtmp);
        ffmpeg_publish(&format!("ffmpeg publisher {label}"), fixture, &url, true, &log)
    }

    /// The playlist of `stream` (`app/name`) if the server answers 200.
    fn playlist(&self, stream: &str) -> Option<String> {
        let response = self.get(&format!("/{stream}/index.m3u8"));
        (response.status == 200).then(|| response.text())
    }

    /// Polls until `check` gives a value; panics with the server log when
    /// the server exits meanwhile.
    fn wait_until<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        playlist::wait_for_blocking(what, POLL_LIMIT, || {
            if let Some(value) = check() {
                return Some(value);
            }
            if let Some(status) = self.process.borrow_mut().wait_within(Duration::ZERO) {
                panic!(
                    "sealcast exited ({status}) while waiting for {what}; log:\n{}",
                    self.log()
                );
            }
            None
        })
    }

    /// The playlist once it lists at least `n` segments.
    fn wait_for_segments(&self, stream: &str, n: usize) -> String {
        self.wait_until(&format!("{stream} playlist with {n} segments"), || {
            self.playlist(stream).filter(|p| segment_count(p) >= n)
        })
    }

    /// The playlist once it carries EXT-X-ENDLIST.
    fn wait_for_end(&self, stream: &str) -> String {
        self.wait_until(&format!("{stream} playlist with EXT-X-ENDLIST"), || {
            self.playlist(stream).filter(|p| ended(p))
        })
    }

    /// Starts an ffmpeg player (`crate::support::process::Player`) on the playlist of
    /// `stream`, with `?token=` when given.
    fn start_player(&self, label: &str, stream: &str, token: Option<&str>) -> Player {
        let query = token.map(|t| format!("?token={t}")).unwrap_or_default();
        let url = format!("http://{}/{stream}/index.m3u8{query}", self.http);
        Player::start(&url, label, &self.root)
    }

    /// SIGTERM and wait: the exit status of a graceful shutdown.
    fn stop(&mut self) -> ExitStatus {
        let status = self.process.get_mut().terminate(STOP_LIMIT);
        status.unwrap_or_else(|| panic!("sealcast still running {STOP_LIMIT:?} after SIGTERM:\n{}", self.log()))
    }
}

/// A clean decode of at least 95% of the fixture's video and audio frames.
fn assert_plays(playback: &Playback, fixture: &str, server: &Server) {
    let want = crate::support::count_frames(&crate::support::fixture(fixture));
    assert!(
        want.video > 0 && want.audio > 0,
        "ffprobe counted no frames in {fixture}"
    );
    playback.assert_plays(want, &format!("{fixture} (server log:\n{})", server.log()));
}

fn config_text(data_dir: &Path, secret: &Path) -> String {
    format!(
        r#"[rtmp]
listen = "127.0.0.1:0"
[http]
listen = "127.0.0.1:0"
[storage]
data_dir = {data:?}
[auth]
token_secret_file = {secret:?}
{streams}"#,
        data = path_str(data_dir),
        secret = path_str(secret),
        streams = streams_toml(),
    )
}

fn http_get(addr: SocketAddr, path_and_query: &str) -> Response {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(crate::support::http::get(addr, path_and_query))
}

// --- playlists and ffmpeg output -------------------------------------------

/// Sum of the EXTINF durations.
fn listed_secs(playlist: &str) -> f64 {
    playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .filter_map(|l| l.split(',').next()?.trim().parse::<f64>().ok())
        .sum()
}

/// The URI of the key of every segment, as listed.
fn key_uris(playlist: &str) -> Vec<String> {
    keyed_segments(playlist).into_iter().map(|k| k.uri).collect()
}

/// framecrc lines per output stream index (`#` lines are headers).
fn media_duration_secs(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe is required (scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("no duration for {}: {text:?}", path.display()))
}

#[test]
fn helpers_parse_what_they_read() {
    let playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n\
        #EXT-X-KEY:METHOD=AES-128,URI=\"/keys/live/demo/a-0?edk=AQ\",IV=0x00000000000000000000000000000001\n\
        #EXTINF:4.000,\na-0.ts\n\
        #EXT-X-KEY:METHOD=AES-128,URI=\"/keys/live/demo/a-1?edk=Ag\",IV=0x00000000000000000000000000000002\n\
        #EXTINF:2.500,\na-1.ts\n\
        #EXT-X-ENDLIST\n";
    assert_eq!(segment_count(playlist), 2);
    assert!(ended(playlist));
    assert!(!ended("#EXTM3U\n#EXTINF:4.0,\na.ts\n"));
    assert!((listed_secs(playlist) - 6.5).abs() < 1e-9);
    assert_eq!(
        key_uris(playlist),
        vec!["/keys/live/demo/a-0?edk=AQ", "/keys/live/demo/a-1?edk=Ag"]
    );
    let framecrc = "#tb 0: 1/30\n#media_type 0: video\n#tb 1: 1/48000\n#media_type 1: audio\n\
        0, 0, 0, 1, 345600, 0x1\n1, 0, 0, 1024, 4096, 0x2\n1, 1024, 1024, 1024, 4096, 0x3\n";
    assert_eq!(framecrc_counts(framecrc), (1, 2));
    assert_eq!(
        parse_running_line("sealcast is running: RTMP on 127.0.0.1:1935, HTTP on [::1]:8080"),
        Some(("127.0.0.1:1935".parse().unwrap(), "[::1]:8080".parse().unwrap()))
    );
    assert_eq!(parse_running_line("sealcast is running"), None);
}

// --- the tests -------------------------------------------------------------

/// ffmpeg publishes, ffmpeg plays live with a token from `sealcast token`, and
/// decodes (nearly) every frame with no error; the server then stops cleanly.
#[test]
fn ffmpeg_plays_what_ffmpeg_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let token = server.token("live/demo");

    let mut publisher = server.publish("demo", DEMO_FIXTURE, "live", DEMO_KEY);
    server.wait_for_segments("live/demo", 1);
    let player = server.start_player("demo", "live/demo", Some(&token));
    let playback = player.finish(CHILD_LIMIT);
    let published = publisher.wait(CHILD_LIMIT);
    assert!(published.success(), "publisher failed: {published}");
    assert_plays(&playback, DEMO_FIXTURE, &server);

    let playlist = server.wait_for_end("live/demo");
    assert!(
        key_uris(&playlist).iter().all(|uri| !uri.contains("token=")),
        "a playlist fetched without a token carries one:\n{playlist}"
    );
    let status = server.stop();
    assert!(status.success(), "sealcast exited with {status}:\n{}", server.log());
}

/// Without a token the key endpoint answers 401 and ffmpeg decodes nothing;
/// a token for another stream is refused with 403.
#[test]
fn no_token_no_picture() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let demo_token = server.token("live/demo");
    let other_token = server.token("live/other");

    let mut publisher = server.publish("demo", DEMO_FIXTURE, "live", DEMO_KEY);
    let playlist = server.wait_for_segments("live/demo", 1);
    let player = server.start_player("no-token", "live/demo", None);

    let key_uri = key_uris(&playlist).into_iter().next().expect("a key URI");
    assert_eq!(server.get(&key_uri).status, 401, "key without a token");
    let wrong = server.get(&format!("{key_uri}&token={other_token}"));
    assert_eq!(wrong.status, 403, "key with another stream's token");
    let right = server.get(&format!("{key_uri}&token={demo_token}"));
    assert_eq!(
        (right.status, right.body.len()),
        (200, 16),
        "key with the stream's token"
    );
    let playlist_status = server.get(&format!("/live/demo/index.m3u8?token={other_token}")).status;
    assert_eq!(playlist_status, 403, "playlist with another stream's token");

    let playback = player.finish(CHILD_LIMIT);
    assert!(
        !playback.status.success() || playback.video + playback.audio == 0,
        "ffmpeg decoded {} video and {} audio frames without a token",
        playback.video,
        playback.audio
    );
    assert!(publisher.wait(CHILD_LIMIT).success());
}

/// A publish with a wrong key (or the right key under the wrong app) is
/// refused: ffmpeg fails and nothing is written for the stream. A control
/// push with the right key shows the checked directory is the right one.
#[test]
fn wrong_publish_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let stream_dir = server.data_dir.join("live").join("demo");
    let cases = [
        ("wrong-key", "live", "sk_e2e_wrong_0123456789abcdef"),
        ("wrong-app", "other", DEMO_KEY),
        ("malformed-key", "live", "short"),
    ];
    for (label, app, key) in cases {
        let mut publisher = server.publish(label, DEMO_FIXTURE, app, key);
        let status = publisher.wait(CHILD_LIMIT);
        assert!(!status.success(), "{label}: the publisher was not refused");
        assert!(!stream_dir.exists(), "{label}: {} was created", stream_dir.display());
        assert!(
            !server.data_dir.join("live").exists(),
            "{label}: data_dir/live was created"
        );
        assert_eq!(
            server.get("/live/demo/index.m3u8").status,
            404,
            "{label}: a playlist appeared"
        );
    }
    let log = server.log();
    assert!(
        !log.contains("publish accepted"),
        "a refused publish was accepted:\n{log}"
    );

    let mut control = server.publish("control", DEMO_FIXTURE, "live", DEMO_KEY);
    server.wait_for_segments("live/demo", 1);
    control.kill();
    assert!(
        stream_dir.join("index.m3u8").is_file(),
        "the control push wrote no playlist"
    );
}

/// Two publishers at once, each to its own stream: both playlists end after
/// the pushes, and each plays back with its own token.
#[test]
fn two_streams_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let streams = [
        ("live/demo", DEMO_FIXTURE, DEMO_KEY),
        ("live/other", OTHER_FIXTURE, OTHER_KEY),
    ];
    let mut publishers: Vec<_> = streams
        .iter()
        .map(|(stream, fixture, key)| server.publish(&stream.replace('/', "."), fixture, "live", key))
        .collect();
    for (publisher, (stream, ..)) in publishers.iter_mut().zip(&streams) {
        let status = publisher.wait(CHILD_LIMIT);
        assert!(status.success(), "publisher to {stream} failed: {status}");
    }
    for (stream, fixture, _) in streams {
        let playlist = server.wait_for_end(stream);
        assert!(segment_count(&playlist) >= 2, "{stream}:\n{playlist}");
        let token = server.token(stream);
        let playback = server
            .start_player(&stream.replace('/', "."), stream, Some(&token))
            .finish(CHILD_LIMIT);
        assert_plays(&playback, fixture, &server);
    }
}

/// Killing one publisher mid-stream ends its playlist and leaves the other
/// stream, and a live player on it, untouched.
#[test]
fn a_dying_publisher_does_not_disturb_another_stream() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let token = server.token("live/demo");
    let mut demo = server.publish("demo", DEMO_FIXTURE, "live", DEMO_KEY);
    let mut other = server.publish("other", OTHER_FIXTURE, "live", OTHER_KEY);

    server.wait_for_segments("live/demo", 1);
    let player = server.start_player("demo", "live/demo", Some(&token));
    server.wait_for_segments("live/other", 1);
    let killed = other.kill();
    assert!(!killed.success(), "the other publisher finished before it was killed");
    let other_playlist = server.wait_for_end("live/other");
    let other_secs = listed_secs(&other_playlist);
    let other_full = media_duration_secs(&crate::support::fixture(OTHER_FIXTURE));
    assert!(
        other_secs < other_full * 0.9,
        "the killed stream lists {other_secs} s of {other_full} s: it was not cut short"
    );

    let status = demo.wait(CHILD_LIMIT);
    assert!(status.success(), "demo publisher failed: {status}");
    let playlist = server.wait_for_end("live/demo");
    let demo_full = media_duration_secs(&crate::support::fixture(DEMO_FIXTURE));
    let listed = listed_secs(&playlist);
    assert!(
        listed >= demo_full * 0.95,
        "demo lists {listed} s of {demo_full} s:\n{playlist}"
    );
    assert_plays(&player.finish(CHILD_LIMIT), DEMO_FIXTURE, &server);
}

/// `sealcast config check` lists every problem with its key and fails; a
/// good file passes.
#[test]
fn config_check_names_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[hls]\nplaylist_window = 2\n[encryption]\nsegments_per_key = 0\n").unwrap();
    let good = dir.path().join("good.toml");
    let secret = dir.path().join("token_secret");
    write_private(&secret, TOKEN_SECRET);
    std::fs::write(&good, config_text(&dir.path().join("data"), &secret)).unwrap();

    let check = |name: &str, file: &Path| {
        run_bounded(
            name,
            Command::new(SEALCAST).args(["config", "check", path_str(file)]),
            dir.path(),
        )
    };
    let (status, stdout, stderr) = check("check-bad", &bad);
    assert!(!status.success(), "a bad config passed: {stdout}");
    let output = format!("{stdout}{stderr}");
    for problem in [
        "hls.playlist_window must be at least 3 (got 2)",
        "encryption.segments_per_key must be at least 1 (got 0)",
    ] {
        assert!(
            output
                .lines()
                .any(|l| l == format!("error: {}: {problem}", bad.display())),
            "missing {problem:?} in:\n{output}"
        );
    }

    let (status, stdout, stderr) = check("check-good", &good);
    assert!(status.success(), "a good config failed: {stdout}{stderr}");
    assert!(
        stdout.contains("streams: 2 configured, every publish key read"),
        "{stdout}"
    );
    assert!(stdout.contains("ok for sealcast serve"), "{stdout}");
    assert!(!dir.path().join("data").exists(), "config check created the data dir");
}

/// `sealcast serve` with no config in an empty directory: the banner has what
/// OBS and a player need, the keyring is private, and a restart keeps the
/// generated stream key. Uses the default ports 1935 and 8080.
#[test]
fn serve_without_config_prints_obs_settings() {
    use std::os::unix::fs::PermissionsExt as _;

    let ports_free = TcpListener::bind("127.0.0.1:1935").is_ok() && TcpListener::bind("127.0.0.1:8080").is_ok();
    if !ports_free {
        println!("skipped: 127.0.0.1:1935 or 127.0.0.1:8080 is in use");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().join("work");
    std::fs::create_dir(&cwd).unwrap();

    let start = |label: &str| match Server::spawn(dir.path(), &cwd, &["serve"], label) {
        Ok(server) => Some(server),
        // Another process took a default port between the check and the start.
        Err(log) if log.contains("binding") => None,
        Err(log) => panic!("sealcast did not start:\n{log}"),
    };
    let Some(mut first) = start("first") else {
        println!("skipped: a default port was taken");
        return;
    };
    let banner = first.banner.join("\n");
    assert_eq!(
        (first.rtmp, first.http),
        ("127.0.0.1:1935".parse().unwrap(), "127.0.0.1:8080".parse().unwrap())
    );
    assert!(banner.contains("Server:     rtmp://127.0.0.1:1935/live"), "{banner}");
    let key = stream_key(&banner);
    assert!(key.starts_with("sk_") && key.len() >= 16, "{banner}");
    // Stdout is not a terminal: no ready-made token (it would end up in a
    // journal), but the command that mints one, which works from here.
    assert!(!banner.contains("?token=ey"), "{banner}");
    assert!(
        banner.contains("TOKEN=$(sealcast token --stream live/demo)"),
        "{banner}"
    );
    assert!(
        banner.contains("ffplay \"http://127.0.0.1:8080/live/demo/index.m3u8?token=$TOKEN\""),
        "{banner}"
    );
    assert!(
        banner.contains("watch in a browser: http://127.0.0.1:8080/watch/live/demo?token=$TOKEN"),
        "{banner}"
    );
    let (status, stdout, stderr) = run_bounded(
        "banner-token",
        Command::new(SEALCAST)
            .args(["token", "--stream", "live/demo"])
            .current_dir(&cwd),
        dir.path(),
    );
    assert!(status.success(), "{stderr}");
    // The minted token is valid: the playlist is 404 (nothing published),
    // where a bad token is 403.
    let path = format!("/live/demo/index.m3u8?token={}", stdout.trim());
    assert_eq!(first.get(&path).status, 404, "{path}");
    assert_eq!(first.get(&format!("{path}x")).status, 403, "{path}x");

    let keyring = cwd.join("sealcast-data").join("keyring.json");
    let mode = std::fs::metadata(&keyring).expect("keyring.json").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "keyring mode {mode:o}");
    let keyring_bytes = std::fs::read(&keyring).unwrap();
    let status = first.stop();
    assert!(status.success(), "sealcast exited with {status}:\n{}", first.log());

    let Some(mut second) = start("second") else {
        println!("skipped: a default port was taken before the restart");
        return;
    };
    // Shown once, when generated; afterwards only where it is kept.
    let second_banner = second.banner.join("\n");
    let key_file = cwd.join("sealcast-data/publish_keys/live.demo.key");
    assert!(
        second_banner.contains("Stream Key: (generated earlier, kept in ./sealcast-data/publish_keys/live.demo.key)"),
        "{second_banner}"
    );
    assert!(
        !second_banner.contains(&key),
        "the key was shown again:\n{second_banner}"
    );
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap().trim(),
        key,
        "the stream key changed on restart"
    );
    assert_eq!(
        std::fs::read(&keyring).unwrap(),
        keyring_bytes,
        "the keyring changed on restart"
    );
    let status = second.stop();
    assert!(status.success(), "sealcast exited with {status}:\n{}", second.log());
}

/// The key after `Stream Key: ` in a banner.
fn stream_key(banner: &str) -> String {
    banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("Stream Key: "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no stream key in the banner:\n{banner}"))
        .to_owned()
}
