//! Child processes for tests that run the real `sealcast` binary, real
//! encoders and players, and real services: the one guard that ends a child
//! when dropped ([`Proc`]), starting the binary with its banner on a
//! channel, ffmpeg as publisher and player, and small file helpers.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub const SEALCAST: &str = env!("CARGO_BIN_EXE_sealcast");

/// Bound for a graceful shutdown after SIGTERM, and for a SIGKILLed child to
/// be reaped.
pub const STOP_LIMIT: Duration = Duration::from_secs(15);

/// A child process that is ended when dropped: SIGTERM first (sealcast and
/// ffmpeg both exit cleanly on it), SIGKILL if it is still there after a grace
/// period.
pub struct Proc {
    pub name: String,
    pub child: Child,
    status: Option<ExitStatus>,
}

impl Proc {
    pub fn spawn(name: &str, command: &mut Command) -> Proc {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e} (scripts/test.sh installs what the tests need)"));
        Proc {
            name: name.to_owned(),
            child,
            status: None,
        }
    }

    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// The exit status if the process exits within `limit`.
    pub fn wait_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while self.try_status().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.status
    }

    /// The exit status; panics (and the guard kills it) past `limit`.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let name = self.name.clone();
        self.wait_within(limit)
            .unwrap_or_else(|| panic!("{name} still running after {limit:?}"))
    }

    /// Sends a signal by pid. Only while the child is unreaped, so the pid
    /// cannot belong to another process yet.
    pub fn signal(&mut self, signal: &str) {
        if self.try_status().is_none() {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(self.child.id().to_string())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// SIGTERM, then the exit status if it exits within `limit`.
    pub fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.signal("TERM");
        self.wait_within(limit)
    }

    /// SIGKILL: an abrupt end, as when an encoder's machine dies.
    pub fn kill(&mut self) -> ExitStatus {
        if self.try_status().is_none() {
            let _ = self.child.kill();
        }
        self.wait(STOP_LIMIT)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.terminate(Duration::from_secs(10)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `sealcast ARGS` in `cwd`, logging at info into `log`, and its stdout lines
/// (the banner first). A thread drains stdout to the end, so the server never
/// writes to a closed pipe.
pub fn spawn_sealcast(args: &[&str], cwd: &Path, log: &Path) -> (Proc, mpsc::Receiver<String>) {
    let mut process = Proc::spawn(
        "sealcast serve",
        Command::new(SEALCAST)
            .args(args)
            .current_dir(cwd)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(log).expect("create the server log")),
    );
    let stdout = process.child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    (process, rx)
}

/// `ffmpeg [-re] -i FIXTURE -c copy -f flv URL`, its errors into `log`.
pub fn ffmpeg_publish(name: &str, fixture: &str, url: &str, real_time: bool, log: &Path) -> Proc {
    let mut command = Command::new("ffmpeg");
    command.args(["-nostdin", "-v", "error"]);
    if real_time {
        command.arg("-re");
    }
    command
        .arg("-i")
        .arg(super::fixture(fixture))
        .args(["-c", "copy", "-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(log).expect("create a publisher log"));
    Proc::spawn(name, &mut command)
}

/// `sealcast is running: RTMP on ADDR, HTTP on ADDR`.
pub fn parse_running_line(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let rest = line.strip_prefix("sealcast is running: RTMP on ")?;
    let (rtmp, http) = rest.split_once(", HTTP on ")?;
    Some((rtmp.trim().parse().ok()?, http.trim().parse().ok()?))
}

/// A file's text (lossy), empty when it cannot be read.
pub fn read_text(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Writes a file with mode 0600, as secrets and configs are kept.
pub fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .expect("create a test file");
    file.write_all(text.as_bytes()).expect("write a test file");
}

/// Makes a file only its owner may read (mode 0600): sealcast refuses
/// secret files that group or others may read.
pub fn make_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600 a test file");
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// A free loopback port (bound, noted and released; a child binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An ffmpeg reading a live playlist from its first listed segment
/// (`-live_start_index 0`) and writing a framecrc line per decoded frame.
pub struct Player {
    process: Proc,
    framecrc: PathBuf,
    stderr: PathBuf,
}

/// What a finished player decoded.
#[derive(Debug)]
pub struct Playback {
    pub status: ExitStatus,
    pub video: u64,
    pub audio: u64,
    pub stderr: String,
}

impl Player {
    /// Plays `url`; the framecrc and log files go to `dir`, named after `label`.
    /// Streams the playlist lacks are not an error (`-map 0:v?`): counts tell.
    pub fn start(url: &str, label: &str, dir: &Path) -> Player {
        Self::start_with_headers(url, label, dir, "")
    }

    /// [`Player::start`] sending `headers` (CRLF-terminated lines, ffmpeg's
    /// `-headers`) with every request: playlist, segments and keys.
    pub fn start_with_headers(url: &str, label: &str, dir: &Path, headers: &str) -> Player {
        let mut header_args = Vec::new();
        if !headers.is_empty() {
            header_args = vec!["-headers", headers];
        }
        let framecrc = dir.join(format!("play-{label}.framecrc"));
        let stderr = dir.join(format!("play-{label}.log"));
        let process = Proc::spawn(
            &format!("ffmpeg player {label}"),
            Command::new("ffmpeg")
                .args(["-nostdin", "-v", "error", "-live_start_index", "0"])
                .args(&header_args)
                .args(["-i", url])
                .args(["-map", "0:v?", "-map", "0:a?", "-fps_mode", "passthrough"])
                .args(["-f", "framecrc", "-"])
                .stdin(Stdio::null())
                .stdout(File::create(&framecrc).expect("create the framecrc file"))
                .stderr(File::create(&stderr).expect("create a player log")),
        );
        Player {
            process,
            framecrc,
            stderr,
        }
    }

    /// Waits for the player to end (the playlist's ENDLIST), up to `limit`.
    pub fn finish(mut self, limit: Duration) -> Playback {
        let status = self.process.wait(limit);
        let (video, audio) = framecrc_counts(&read_text(&self.framecrc));
        Playback {
            status,
            video,
            audio,
            stderr: read_text(&self.stderr),
        }
    }
}

impl Playback {
    /// A clean exit, nothing on stderr at `-v error`, and at least 95% of
    /// `want`'s video and audio frames; `what` names the playback (and may
    /// carry a server log) in the failure.
    pub fn assert_plays(&self, want: super::FrameCounts, what: &str) {
        assert!(want.video > 0 || want.audio > 0, "{what}: nothing to compare against");
        assert!(
            self.status.success() && self.stderr.is_empty(),
            "{what}: ffmpeg player failed ({}): {}",
            self.status,
            self.stderr
        );
        let enough = |got: u64, of: u64| got * 100 >= of * 95;
        assert!(
            enough(self.video, want.video) && enough(self.audio, want.audio),
            "{what}: decoded {} of {} video and {} of {} audio frames",
            self.video,
            want.video,
            self.audio,
            want.audio
        );
    }
}

/// Decoded (video, audio) frames in ffmpeg's framecrc output, by the
/// `#media_type` header of each stream index.
pub fn framecrc_counts(text: &str) -> (u64, u64) {
    let mut types = std::collections::BTreeMap::new();
    let mut counts: std::collections::BTreeMap<u32, u64> = std::collections::BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("#media_type ") {
            if let Some((index, kind)) = rest.split_once(':') {
                types.insert(index.trim().parse::<u32>().unwrap_or(u32::MAX), kind.trim().to_owned());
            }
        } else if !line.starts_with('#')
            && let Some(Ok(index)) = line.split(',').next().map(|f| f.trim().parse::<u32>())
        {
            *counts.entry(index).or_insert(0) += 1;
        }
    }
    let of = |kind: &str| -> u64 {
        counts
            .iter()
            .filter(|(index, _)| types.get(index).is_some_and(|t| t == kind))
            .map(|(_, n)| n)
            .sum()
    };
    (of("video"), of("audio"))
}

/// `sealcast keyserver --config <file>`; returns it and its HTTP(S) address
/// (it listens on port 0 and prints where).
pub fn start_keyserver(config: &Path, log: &Path) -> (Proc, SocketAddr) {
    let mut process = Proc::spawn(
        "sealcast keyserver",
        Command::new(SEALCAST)
            .arg("keyserver")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "sealcast=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(log).unwrap()),
    );
    let stdout = process.child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let rest = line.trim().strip_prefix("sealcast keyserver listening on ");
    let addr = (rest.and_then(|r| r.strip_prefix("http://").or_else(|| r.strip_prefix("https://"))))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}; log in {}", log.display()))
        .parse()
        .unwrap();
    (process, addr)
}

/// One RESP command to Redis; the reply's first line.
pub async fn redis_command(port: u16, command: &str) -> Option<String> {
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    socket.write_all(command.as_bytes()).await.ok()?;
    let mut buf = vec![0u8; 256];
    let n = socket.read(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    Some(text.lines().next()?.to_owned())
}

/// `redis-server` on 127.0.0.1:`port` with `extra` arguments (such as
/// `--requirepass`), once it answers.
pub async fn start_redis(port: u16, extra: &[&str]) -> Proc {
    let process = Proc::spawn(
        "redis-server",
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .stdin(Stdio::null()),
    );
    // Any answer will do: with a password PING is answered -NOAUTH.
    super::playlist::wait_for("redis to answer PING", super::playlist::POLL_LIMIT, || async {
        redis_command(port, "PING\r\n").await.map(|_| ())
    })
    .await;
    process
}
