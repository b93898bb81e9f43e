//! `sealcast bench-push`: many RTMP publishers in one process, for load tests
//! of sealcast and of other RTMP servers (nginx-rtmp) with the same traffic.
//!
//! The fixture's tags are read once and shared ([`Fixture`], behind an `Arc`).
//! Each publisher is one task: a [`Publisher`] (handshake, `connect`,
//! `createStream`, `publish`), then a send loop in one of two patterns
//! ([`Pattern`]):
//! - `Realtime` (the default): each message is written when its timestamp
//!   is due, as `ffmpeg -re` and live encoders do, with ffmpeg's header
//!   compression, one write per chunk and Nagle on ([`super::wire`]), so the
//!   server wakes up per message as it does with real encoders;
//! - `Batched`: a timer-driven loop that appends every tag due in the
//!   current tick (20–50 ms) and writes them with one syscall: cheaper for
//!   the generator, but it flatters the server (fewer, larger reads).
//!
//! The fixture loops
//! with continuous timestamps: loop `n` is offset by `n` times its duration.
//! The codec configurations and the metadata are sent once, at the start, as
//! an encoder does. A publisher whose oldest unsent tag is more than
//! [`BEHIND_THRESHOLD_MS`] late counts as behind real time.
//!
//! Per publisher and second the realtime pattern costs about 80 timer
//! wakeups and 250 writes (2.7 Mb/s, 30 fps + AAC), against an ffmpeg
//! process per stream for `ffmpeg -re`.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::{Instant, MissedTickBehavior};

use super::publisher::{self, Publisher};
use crate::flv::{self, TagKind};
use crate::rtmp::chunk::message_type;

/// A publisher whose oldest unsent tag is later than this is behind.
pub const BEHIND_THRESHOLD_MS: u64 = 1000;

/// From TCP connect to `NetStream.Publish.Start`.
const SETUP_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a publisher stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The fixture file could not be read.
    #[error("reading {path}: {source}")]
    ReadFixture { path: PathBuf, source: std::io::Error },
    /// The fixture is not a usable FLV file.
    #[error("fixture: {0}")]
    Fixture(String),
    /// The URL is not `rtmp://host:port/app`.
    #[error("bad RTMP URL {0:?}: expected rtmp://host[:port]/app")]
    BadUrl(String),
    /// The connection failed, or the server refused or closed it.
    #[error(transparent)]
    Rtmp(#[from] publisher::Error),
    /// The server did not complete the publish in time.
    #[error("publish setup timed out")]
    SetupTimeout,
}

/// One tag of the fixture: its body is a range of the file.
#[derive(Debug, Clone)]
struct FixtureTag {
    type_id: u8,
    /// Relative to the first media tag.
    timestamp_ms: u64,
    body: Range<usize>,
}

/// An FLV file split into what is sent once (metadata, codec configurations)
/// and the media tags that loop.
#[derive(Debug)]
pub struct Fixture {
    file: Bytes,
    /// `onMetaData` body (sent as `@setDataFrame`), if the file has one.
    metadata: Option<Range<usize>>,
    /// AVC/AAC sequence headers, sent before the first media tag.
    configs: Vec<FixtureTag>,
    media: Vec<FixtureTag>,
    /// The offset between loops: last media timestamp plus one video frame.
    duration_ms: u64,
    /// Media bytes per loop (tag bodies), for the bitrate.
    media_bytes: u64,
}

impl Fixture {
    pub fn load(path: &Path) -> Result<Self, Error> {
        let data = std::fs::read(path).map_err(|source| Error::ReadFixture {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(Bytes::from(data))
    }

    pub fn parse(file: Bytes) -> Result<Self, Error> {
        let base = file.as_ptr() as usize;
        let (_, tags) = flv::tags(&file).map_err(|e| Error::Fixture(e.to_string()))?;
        let mut metadata = None;
        let mut configs = Vec::new();
        let mut media = Vec::new();
        let mut first_ts = None;
        let mut video_ts = Vec::new();
        let mut audio_ts = Vec::new();
        for tag in tags {
            let tag = tag.map_err(|e| Error::Fixture(e.to_string()))?;
            // The bodies borrow `file`, so the offset is within it.
            let start = tag.body.as_ptr() as usize - base;
            let body = start..start + tag.body.len();
            let (type_id, is_config) = match tag.kind {
                TagKind::Script => {
                    metadata.get_or_insert(body);
                    continue;
                }
                // FLV v10.1 E.4.3: AVC (codec 7) packet type 0 is the
                // decoder configuration record.
                TagKind::Video => (
                    message_type::VIDEO,
                    tag.body.first().is_some_and(|b| b & 0x0F == 7) && tag.body.get(1) == Some(&0),
                ),
                // FLV v10.1 E.4.2: AAC (format 10) packet type 0 is the
                // AudioSpecificConfig.
                TagKind::Audio => (
                    message_type::AUDIO,
                    tag.body.first().is_some_and(|b| b >> 4 == 10) && tag.body.get(1) == Some(&0),
                ),
            };
            let first = *first_ts.get_or_insert(tag.timestamp_ms);
            let timestamp_ms = u64::from(tag.timestamp_ms.saturating_sub(first));
            let entry = FixtureTag {
                type_id,
                timestamp_ms,
                body,
            };
            if is_config {
                configs.push(entry);
            } else {
                if type_id == message_type::VIDEO {
                    video_ts.push(timestamp_ms);
                } else {
                    audio_ts.push(timestamp_ms);
                }
                media.push(entry);
            }
        }
        // Tags are in file order; real time needs them in timestamp order.
        media.sort_by_key(|t| t.timestamp_ms);
        if media.is_empty() {
            return Err(Error::Fixture("no media tags".into()));
        }
        // Each track ends one frame after its last tag; the loop is as long
        // as the longer track, so neither overlaps itself on the next loop.
        let track_end = |ts: &[u64]| match ts {
            [.., a, b] => b + b.saturating_sub(*a),
            [a] => *a,
            [] => 0,
        };
        let duration_ms = track_end(&video_ts).max(track_end(&audio_ts)).max(1);
        let media_bytes = media.iter().map(|t| t.body.len() as u64).sum();
        Ok(Self {
            file,
            metadata,
            configs,
            media,
            duration_ms,
            media_bytes,
        })
    }

    /// One loop's length in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.duration_ms
    }

    /// Media bits per second of one publisher.
    pub fn bitrate_bps(&self) -> u64 {
        self.media_bytes * 8 * 1000 / self.duration_ms.max(1)
    }

    fn body(&self, range: &Range<usize>) -> &[u8] {
        // Ranges were made from this file's tags.
        self.file.get(range.clone()).unwrap_or_default()
    }
}

/// What `bench-push` runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Host and port.
    pub addr: String,
    pub app: String,
    /// The URL as given, sent as `tcUrl`.
    pub tc_url: String,
    /// One stream key per publisher.
    pub keys: Vec<String>,
    /// Zero: until `stop` resolves.
    pub duration: Duration,
    /// How messages are written.
    pub pattern: Pattern,
    /// Publishers start evenly spread over this time.
    pub ramp: Duration,
}

/// How a publisher writes its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// Each message when due, written as ffmpeg writes it.
    Realtime,
    /// Every message due in a tick of this period, in one write.
    Batched { tick: Duration },
}

/// Splits `rtmp://host[:port]/app` into (`host:port`, `app`).
pub fn parse_url(url: &str) -> Result<(String, String), Error> {
    let bad = || Error::BadUrl(url.to_owned());
    let rest = url.strip_prefix("rtmp://").ok_or_else(bad)?;
    let (host, app) = rest.split_once('/').ok_or_else(bad)?;
    let app = app.trim_end_matches('/');
    if host.is_empty() || app.is_empty() || app.contains('/') {
        return Err(bad());
    }
    let addr = if host.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        host.to_owned()
    } else {
        format!("{host}:1935")
    };
    Ok((addr, app.to_owned()))
}

/// Counters shared by every publisher; read by the reporter.
#[derive(Debug, Default)]
pub struct Stats {
    /// Publishers whose publish was accepted and still run.
    pub connected: AtomicUsize,
    /// Publishers that ended with an error.
    pub failed: AtomicUsize,
    pub bytes_sent: AtomicU64,
    /// Publishers now behind real time by more than the threshold.
    pub behind: AtomicUsize,
    /// Publishers that were behind at least once.
    pub behind_ever: AtomicUsize,
    /// Largest lag seen, milliseconds.
    pub max_lag_ms: AtomicU64,
    /// The first few distinct errors.
    errors: Mutex<Vec<String>>,
}

impl Stats {
    fn record_error(&self, error: &Error) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let text = error.to_string();
        if let Ok(mut errors) = self.errors.lock()
            && errors.len() < 8
            && !errors.contains(&text)
        {
            errors.push(text);
        }
    }

    /// The first few distinct errors publishers ended with.
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            connected: self.connected.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            behind: self.behind.load(Ordering::Relaxed),
            behind_ever: self.behind_ever.load(Ordering::Relaxed),
            max_lag_ms: self.max_lag_ms.load(Ordering::Relaxed),
        }
    }
}

/// A copy of [`Stats`] at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub connected: usize,
    pub failed: usize,
    pub bytes_sent: u64,
    pub behind: usize,
    pub behind_ever: usize,
    pub max_lag_ms: u64,
}

/// Runs every publisher until `duration` passes (or `stop` resolves when the
/// duration is zero), calling `report` once a second with the counters.
pub async fn run(
    fixture: Arc<Fixture>,
    options: Options,
    stop: impl std::future::Future<Output = ()>,
    mut report: impl FnMut(Duration, &Snapshot),
) -> Arc<Stats> {
    let stats = Arc::new(Stats::default());
    let start = Instant::now();
    let end = (!options.duration.is_zero()).then(|| start + options.duration);
    let options = Arc::new(options);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, key) in options.keys.iter().enumerate() {
        let delay = start_delay(i, options.ramp);
        let (fixture, options, stats, key) = (
            Arc::clone(&fixture),
            Arc::clone(&options),
            Arc::clone(&stats),
            key.clone(),
        );
        tasks.spawn(async move {
            tokio::time::sleep(delay).await;
            let mut sender = Sender::new(&fixture, &stats);
            let result = sender.run(&options, &key, end).await;
            sender.set_behind(false);
            if let Err(error) = result {
                stats.record_error(&error);
            }
        });
    }
    let mut ticker = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                report(start.elapsed(), &stats.snapshot());
                if end.is_some_and(|end| Instant::now() >= end) {
                    break;
                }
            }
            () = &mut stop, if end.is_none() => break,
        }
    }
    tasks.shutdown().await;
    stats
}

/// One publisher's send state and counters; the connection is a
/// [`publisher::Publisher`].
struct Sender<'a> {
    fixture: &'a Fixture,
    stats: &'a Stats,
    behind: bool,
    connected: bool,
}

impl Drop for Sender<'_> {
    fn drop(&mut self) {
        self.set_behind(false);
        if self.connected {
            self.stats.connected.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl<'a> Sender<'a> {
    fn new(fixture: &'a Fixture, stats: &'a Stats) -> Self {
        Self {
            fixture,
            stats,
            behind: false,
            connected: false,
        }
    }

    fn set_behind(&mut self, behind: bool) {
        if behind == self.behind {
            return;
        }
        self.behind = behind;
        if behind {
            self.stats.behind.fetch_add(1, Ordering::Relaxed);
            self.stats.behind_ever.fetch_add(1, Ordering::Relaxed);
        } else {
            self.stats.behind.fetch_sub(1, Ordering::Relaxed);
        }
    }

    async fn run(&mut self, options: &Options, key: &str, end: Option<Instant>) -> Result<(), Error> {
        let publisher = tokio::time::timeout(SETUP_TIMEOUT, self.setup(options, key))
            .await
            .map_err(|_| Error::SetupTimeout)??;
        self.connected = true;
        self.stats.connected.fetch_add(1, Ordering::Relaxed);
        match options.pattern {
            Pattern::Realtime => self.stream_realtime(publisher, end).await,
            Pattern::Batched { tick } => self.stream(publisher, tick, end).await,
        }
    }

    /// Connect and publish; once the server said `NetStream.Publish.Start`,
    /// sends what an encoder sends once: metadata, then codec configurations.
    async fn setup(&mut self, options: &Options, key: &str) -> Result<Publisher, Error> {
        let mut publisher = Publisher::connect(options.addr.as_str(), &options.app, &options.tc_url).await?;
        publisher.publish(key).await?;
        let fixture = self.fixture;
        if let Some(range) = &fixture.metadata {
            publisher.push_metadata(fixture.body(range));
        }
        for tag in &fixture.configs {
            publisher.push_media(tag.type_id, 0, fixture.body(&tag.body));
        }
        let sent = publisher.flush().await?;
        self.stats.bytes_sent.fetch_add(sent as u64, Ordering::Relaxed);
        Ok(publisher)
    }

    /// Each message when it is due, written as an encoder writes it; answers
    /// the server's pings in between.
    async fn stream_realtime(&mut self, mut publisher: Publisher, end: Option<Instant>) -> Result<(), Error> {
        let fixture = self.fixture;
        // ffmpeg leaves Nagle on; the kernel coalesces its small writes.
        publisher.set_nodelay(false).map_err(publisher::Error::from)?;
        let start = Instant::now();
        for (due_ms, tag) in schedule(fixture) {
            let due = start + Duration::from_millis(due_ms);
            if end.is_some_and(|end| due >= end) {
                if let Some(end) = end {
                    tokio::time::sleep_until(end).await;
                }
                publisher.shutdown_write().await;
                return Ok(());
            }
            let sleep = tokio::time::sleep_until(due);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    readable = publisher.readable() => {
                        readable.map_err(publisher::Error::from)?;
                        publisher.read_available()?;
                        publisher.flush().await?;
                    }
                }
            }
            // RTMP timestamps are 32-bit and wrap (spec 5.3.1).
            let sent = publisher
                .send_media_like_encoder(tag.type_id, due_ms as u32, fixture.body(&tag.body))
                .await?;
            self.stats.bytes_sent.fetch_add(sent as u64, Ordering::Relaxed);
            let lag_ms = (start.elapsed().as_millis() as u64).saturating_sub(due_ms);
            self.stats.max_lag_ms.fetch_max(lag_ms, Ordering::Relaxed);
            self.set_behind(lag_ms > BEHIND_THRESHOLD_MS);
        }
        Ok(())
    }

    /// The batched send loop, and answers to the server's pings.
    async fn stream(&mut self, mut publisher: Publisher, tick: Duration, end: Option<Instant>) -> Result<(), Error> {
        let fixture = self.fixture;
        let start = Instant::now();
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut next = 0usize;
        let mut loop_offset_ms = 0u64;
        loop {
            tokio::select! {
                now = ticker.tick() => {
                    if end.is_some_and(|end| now >= end) {
                        publisher.shutdown_write().await;
                        return Ok(());
                    }
                    let now_ms = now.duration_since(start).as_millis() as u64;
                    let mut oldest_due_ms = None;
                    loop {
                        let Some(tag) = fixture.media.get(next) else {
                            next = 0;
                            loop_offset_ms += fixture.duration_ms;
                            continue;
                        };
                        let due_ms = loop_offset_ms + tag.timestamp_ms;
                        if due_ms > now_ms {
                            break;
                        }
                        oldest_due_ms.get_or_insert(due_ms);
                        // RTMP timestamps are 32-bit and wrap (spec 5.3.1).
                        publisher.push_media(tag.type_id, due_ms as u32, fixture.body(&tag.body));
                        next += 1;
                    }
                    if publisher.buffered_bytes() == 0 {
                        continue;
                    }
                    let sent = publisher.flush().await?;
                    self.stats.bytes_sent.fetch_add(sent as u64, Ordering::Relaxed);
                    if let Some(due_ms) = oldest_due_ms {
                        let lag_ms = (start.elapsed().as_millis() as u64).saturating_sub(due_ms);
                        self.stats.max_lag_ms.fetch_max(lag_ms, Ordering::Relaxed);
                        self.set_behind(lag_ms > BEHIND_THRESHOLD_MS);
                    }
                }
                readable = publisher.readable() => {
                    readable.map_err(publisher::Error::from)?;
                    publisher.read_available()?;
                    publisher.flush().await?;
                }
            }
        }
    }
}

/// When publisher `i` starts within the ramp: the fractional part of
/// `i` times the golden ratio, a sequence that spreads any number of
/// publishers evenly without a common period. Evenly spaced starts (`i *
/// ramp / n`, 100 ms apart for 30 over 3 s) put every publisher's frames on
/// the same millisecond (100 ms is three 30 fps frames), so the server would
/// find several connections ready per wakeup, which independent encoders
/// do not give it.
fn start_delay(i: usize, ramp: Duration) -> Duration {
    const GOLDEN_FRACTION: f64 = 0.618_033_988_749_895;
    ramp.mul_f64((i as f64 * GOLDEN_FRACTION).fract())
}

/// The media tags in send order, looping with continuous timestamps: the
/// due time (ms from the start) and the tag.
fn schedule(fixture: &Fixture) -> impl Iterator<Item = (u64, &FixtureTag)> {
    (0u64..).flat_map(move |n| {
        let offset = n * fixture.duration_ms;
        fixture.media.iter().map(move |tag| (offset + tag.timestamp_ms, tag))
    })
}

/// Stream keys from a template: `{i}` becomes `first`, `first + 1`, ...
pub fn keys_from_template(template: &str, first: usize, count: usize) -> Vec<String> {
    (first..first + count)
        .map(|i| template.replace("{i}", &i.to_string()))
        .collect()
}

/// This process's CPU time (user + system), from `/proc/self/stat`; `None`
/// where that file does not exist.
pub fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesized command name; utime and stime are the
    // 14th and 15th fields of the whole line (proc(5)), in clock ticks.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // Linux reports these in USER_HZ, 100 on every mainstream architecture.
    Some(Duration::from_millis((utime + stime) * 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_url_table() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("rtmp://127.0.0.1:1935/live", Some(("127.0.0.1:1935", "live"))),
            ("rtmp://localhost/live/", Some(("localhost:1935", "live"))),
            ("rtmp://[::1]:19350/app", Some(("[::1]:19350", "app"))),
            ("http://127.0.0.1/live", None),
            ("rtmp://127.0.0.1", None),
            ("rtmp://127.0.0.1/a/b", None),
            ("rtmp:///live", None),
        ];
        for (url, want) in cases {
            let got = parse_url(url).ok();
            let want = want.map(|(a, b)| (a.to_owned(), b.to_owned()));
            assert_eq!(got, want, "{url}");
        }
    }

    #[test]
    fn keys_from_template_numbers_each_key() {
        assert_eq!(
            keys_from_template("sk_bench_{i}", 3, 3),
            ["sk_bench_3", "sk_bench_4", "sk_bench_5"]
        );
        assert_eq!(keys_from_template("fixed", 0, 2), ["fixed", "fixed"]);
    }

    #[test]
    fn fixture_splits_configs_from_looping_media() {
        let fixture = Fixture::load(Path::new("fixtures/high-bframes-aac48k.flv")).unwrap();
        // One AVC and one AAC sequence header, sent once.
        assert_eq!(fixture.configs.len(), 2);
        assert!(fixture.metadata.is_some());
        assert!(fixture.media.windows(2).all(|w| w[0].timestamp_ms <= w[1].timestamp_ms));
        // 10 s at 30 fps: the loop is 10 s long to a frame.
        assert!(
            (9_990..=10_120).contains(&fixture.duration_ms()),
            "{}",
            fixture.duration_ms()
        );
        // 700 kb/s video + 96 kb/s audio, within encoder slack.
        let bps = fixture.bitrate_bps();
        assert!((500_000..1_100_000).contains(&bps), "{bps}");
    }

    /// The schedule is in timestamp order and loop `n` is offset by `n`
    /// loop lengths, so timestamps never go backwards across a loop.
    #[test]
    fn schedule_loops_with_continuous_timestamps() {
        let fixture = Fixture::load(Path::new("fixtures/high-bframes-aac48k.flv")).unwrap();
        let per_loop = fixture.media.len();
        let due: Vec<u64> = schedule(&fixture).take(3 * per_loop).map(|(d, _)| d).collect();
        assert!(due.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(due[per_loop], fixture.duration_ms() + due[0]);
        assert_eq!(due[2 * per_loop + 5], 2 * fixture.duration_ms() + due[5]);
    }

    /// 30 publishers over a 3 s ramp: starts stay within the ramp, and
    /// their phases against a 30 fps frame (33 ms) are spread out, not
    /// stacked on one millisecond as evenly spaced starts would be.
    #[test]
    fn start_delays_spread_frame_phases() {
        let ramp = Duration::from_millis(3000);
        let delays: Vec<u128> = (0..30).map(|i| start_delay(i, ramp).as_millis()).collect();
        assert!(delays.iter().all(|&d| d < 3000), "{delays:?}");
        let mut per_phase = [0u32; 33];
        for d in &delays {
            per_phase[(*d % 33) as usize] += 1;
        }
        assert!(per_phase.iter().all(|&n| n <= 3), "{per_phase:?}");
        // The old spacing: all 30 on one phase.
        let even: Vec<u128> = (0..30u128).map(|i| i * 3000 / 30 % 100).collect();
        assert!(even.iter().all(|&p| p == 0));
    }

    #[test]
    fn fixture_rejects_non_flv() {
        assert!(matches!(
            Fixture::parse(Bytes::from_static(b"not an flv")),
            Err(Error::Fixture(_))
        ));
        // A header with no tags has nothing to send.
        let empty: &[u8] = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00";
        assert!(matches!(
            Fixture::parse(Bytes::from_static(empty)),
            Err(Error::Fixture(_))
        ));
    }

    /// Publishes to the real server: every publisher connects, none fails,
    /// and the server writes segments.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn publishes_to_the_real_server() {
        use crate::config::Config;
        use crate::server::Server;

        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<String> = keys_from_template("sk_loadgen_test_{i}", 0, 3);
        let mut toml = format!(
            "[storage]\ndata_dir = {:?}\n[hls]\nsegment_duration_secs = 2\n",
            dir.path().display().to_string()
        );
        for (i, key) in keys.iter().enumerate() {
            toml.push_str(&format!(
                "[[streams]]\napp = \"live\"\nname = \"s{i}\"\nkey = \"{key}\"\n"
            ));
        }
        let path = dir.path().join("sealcast.toml");
        std::fs::write(&path, toml).unwrap();
        let config = Config::load(&path).unwrap();
        let server = Server::from_config(&config).unwrap();
        let rtmp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = rtmp.local_addr().unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server_task = tokio::spawn(server.run(rtmp, http, async move {
            let _ = stop_rx.await;
        }));

        let fixture = Arc::new(Fixture::load(Path::new("fixtures/high-bframes-aac48k.flv")).unwrap());
        let options = Options {
            addr: addr.to_string(),
            app: "live".into(),
            tc_url: format!("rtmp://{addr}/live"),
            keys: keys.clone(),
            duration: Duration::from_millis(4500),
            pattern: Pattern::Realtime,
            ramp: Duration::from_millis(100),
        };
        let mut reports = Vec::new();
        let stats = run(fixture, options, std::future::pending(), |_, s| reports.push(*s)).await;
        let end = stats.snapshot();
        assert_eq!(stats.errors(), Vec::<String>::new());
        assert_eq!(end.failed, 0);
        // (Lag is not asserted: it depends on the machine's load.)
        assert_eq!(reports.iter().map(|r| r.connected).max(), Some(3));
        // 3 publishers, 4.5 s at ~800 kb/s each: well over a megabyte.
        assert!(end.bytes_sent > 1_000_000, "{}", end.bytes_sent);
        let _ = stop_tx.send(());
        let _ = server_task.await;
        // Keyframes every 2 s: the first segment closed for every stream.
        for i in 0..3 {
            let stream_dir = dir.path().join("live").join(format!("s{i}"));
            let segments = std::fs::read_dir(&stream_dir)
                .unwrap()
                .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "ts"))
                .count();
            assert!(segments >= 1, "stream s{i}: {segments} segments");
        }
    }
}
