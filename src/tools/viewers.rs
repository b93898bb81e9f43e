//! `sealcast bench-play`: many simulated HLS viewers in one process, for load
//! tests of sealcast's delivery side and of any HTTP server serving the same
//! files (nginx).
//!
//! Each viewer is one task with one HTTP/1.1 keep-alive connection (reopened
//! if the server closes it), and behaves as hls.js does for a live playlist
//! (RFC 8216 6.3.4 and hls.js's `liveSyncDurationCount` of 3): it loads the
//! playlist, starts three segments from the live edge, fetches each new
//! segment and, before it, the key that covers it (once per key: players
//! cache keys), then reloads the playlist a target duration later, or half
//! of one when the last reload brought nothing new. The credential is the
//! playlist URL's own query (`?token=...`); with tickets on, the server
//! writes a fresh one into each key URI, and the viewer uses it as given.
//!
//! It records requests, bytes, errors and latency (request sent to body
//! read) per request type. Plain `http://` only.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Segments a viewer starts behind the live edge (hls.js default).
const LIVE_SYNC_SEGMENTS: usize = 3;

/// One request may take this long before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why bench-play could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A URL is not `http://host[:port]/path`.
    #[error("bad URL {0:?}: expected http://host[:port]/path")]
    BadUrl(String),
}

/// A parsed `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `host:port`, also the Host header.
    pub authority: String,
    /// Path and query, starting with `/`.
    pub path_and_query: String,
}

impl Url {
    pub fn parse(url: &str) -> Result<Self, Error> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| Error::BadUrl(url.to_owned()))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(Error::BadUrl(url.to_owned()));
        }
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(Self {
            authority,
            path_and_query: path.to_owned(),
        })
    }

    /// A URI from the playlist, resolved against this (playlist) URL
    /// (RFC 3986 5.2, the cases playlists use: absolute, absolute path,
    /// relative to the playlist's directory).
    pub fn join(&self, uri: &str) -> Result<Url, Error> {
        if uri.starts_with("http://") {
            return Url::parse(uri);
        }
        let path_and_query = if uri.starts_with('/') {
            uri.to_owned()
        } else {
            let path = self.path_and_query.split('?').next().unwrap_or("/");
            let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{uri}")
        };
        Ok(Url {
            authority: self.authority.clone(),
            path_and_query,
        })
    }
}

/// One media segment of a playlist, with the key URI that applies to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub seq: u64,
    pub uri: String,
    pub key_uri: Option<String>,
}

/// What a viewer needs from a media playlist.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Playlist {
    pub target_duration_secs: u64,
    pub segments: Vec<Segment>,
    pub ended: bool,
}

/// Parses a media playlist: TARGETDURATION, MEDIA-SEQUENCE, EXT-X-KEY (which
/// applies to every following segment until the next, RFC 8216 4.3.2.4;
/// METHOD=NONE clears it), EXTINF + URI lines and ENDLIST.
pub fn parse_playlist(text: &str) -> Playlist {
    let mut playlist = Playlist::default();
    let mut seq = 0u64;
    let mut key_uri: Option<String> = None;
    let mut in_segment = false;
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            playlist.target_duration_secs = v.parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            seq = v.parse().unwrap_or(0);
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-KEY:") {
            key_uri = if attrs.contains("METHOD=NONE") {
                None
            } else {
                attribute(attrs, "URI")
            };
        } else if line.starts_with("#EXTINF:") {
            in_segment = true;
        } else if line == "#EXT-X-ENDLIST" {
            playlist.ended = true;
        } else if in_segment && !line.is_empty() && !line.starts_with('#') {
            playlist.segments.push(Segment {
                seq,
                uri: line.to_owned(),
                key_uri: key_uri.clone(),
            });
            seq += 1;
            in_segment = false;
        }
    }
    playlist
}

/// A quoted attribute's value from an attribute list (RFC 8216 4.2).
fn attribute(attrs: &str, name: &str) -> Option<String> {
    let start = attrs.find(&format!("{name}=\""))? + name.len() + 2;
    let len = attrs[start..].find('"')?;
    Some(attrs[start..start + len].to_owned())
}

/// A key URI without its credential (`token`/`ticket` query parameters):
/// what identifies the key itself, for the viewer's key cache.
pub fn key_identity(uri: &str) -> String {
    match uri.split_once('?') {
        None => uri.to_owned(),
        Some((path, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|p| !p.starts_with("token=") && !p.starts_with("ticket="))
                .collect();
            format!("{path}?{}", kept.join("&"))
        }
    }
}

/// Request types reported separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Playlist,
    Segment,
    Key,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Playlist, Kind::Segment, Kind::Key];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Playlist => "playlist",
            Kind::Segment => "segment",
            Kind::Key => "key",
        }
    }
}

/// Counters and latencies of one request type.
#[derive(Debug, Clone, Default)]
pub struct KindStats {
    pub requests: u64,
    pub errors: u64,
    pub bytes: u64,
    /// Microseconds, one per successful request.
    pub latencies_us: Vec<u32>,
}

impl KindStats {
    /// The `p`-th percentile latency in milliseconds (nearest rank).
    pub fn percentile_ms(&self, p: f64) -> f64 {
        percentile(&self.latencies_us, p) as f64 / 1000.0
    }
}

/// Nearest-rank percentile of unsorted values; 0 for none.
pub fn percentile(values: &[u32], p: f64) -> u32 {
    if values.is_empty() {
        return 0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Everything one or many viewers did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub playlist: KindStats,
    pub segment: KindStats,
    pub key: KindStats,
    /// The first few distinct errors.
    pub error_samples: Vec<String>,
}

impl Report {
    pub fn kind(&self, kind: Kind) -> &KindStats {
        match kind {
            Kind::Playlist => &self.playlist,
            Kind::Segment => &self.segment,
            Kind::Key => &self.key,
        }
    }

    fn kind_mut(&mut self, kind: Kind) -> &mut KindStats {
        match kind {
            Kind::Playlist => &mut self.playlist,
            Kind::Segment => &mut self.segment,
            Kind::Key => &mut self.key,
        }
    }

    pub fn errors(&self) -> u64 {
        Kind::ALL.iter().map(|&k| self.kind(k).errors).sum()
    }

    fn merge(&mut self, other: Report) {
        for kind in Kind::ALL {
            let (a, b) = (self.kind_mut(kind), other.kind(kind));
            a.requests += b.requests;
            a.errors += b.errors;
            a.bytes += b.bytes;
            a.latencies_us.extend_from_slice(&b.latencies_us);
        }
        for e in other.error_samples {
            if self.error_samples.len() < 8 && !self.error_samples.contains(&e) {
                self.error_samples.push(e);
            }
        }
    }

    fn error(&mut self, kind: Kind, text: String) {
        self.kind_mut(kind).errors += 1;
        if self.error_samples.len() < 8 && !self.error_samples.contains(&text) {
            self.error_samples.push(text);
        }
    }
}

/// What `bench-play` runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Playlist URLs (with their credential); viewer `i` watches `i % len`.
    pub playlists: Vec<Url>,
    pub viewers: usize,
    pub duration: Duration,
    /// Viewers start evenly spread over this time.
    pub ramp: Duration,
}

/// Runs every viewer for `duration` and returns what they did together.
pub async fn run(options: Options) -> Report {
    let end = Instant::now() + options.duration;
    let count = options.viewers.max(1) as u32;
    let options = Arc::new(options);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..options.viewers {
        let options = Arc::clone(&options);
        let delay = options.ramp * i as u32 / count;
        tasks.spawn(async move {
            tokio::time::sleep(delay).await;
            let url = options.playlists[i % options.playlists.len()].clone();
            Viewer::new(url).watch(end).await
        });
    }
    let mut report = Report::default();
    while let Some(result) = tasks.join_next().await {
        if let Ok(viewer) = result {
            report.merge(viewer);
        }
    }
    report
}

/// One simulated player.
struct Viewer {
    playlist_url: Url,
    connection: Option<http1::SendRequest<Empty<Bytes>>>,
    report: Report,
    /// Next segment to fetch; `None` before the first playlist.
    next_seq: Option<u64>,
    /// Keys fetched, by identity (newest last; a few are enough).
    keys: VecDeque<String>,
}

impl Viewer {
    fn new(playlist_url: Url) -> Self {
        Self {
            playlist_url,
            connection: None,
            report: Report::default(),
            next_seq: None,
            keys: VecDeque::new(),
        }
    }

    async fn watch(mut self, end: Instant) -> Report {
        while Instant::now() < end {
            let url = self.playlist_url.clone();
            let Some(body) = self.fetch(Kind::Playlist, &url, end).await else {
                // hls.js retries a failed playlist load after a delay.
                tokio::time::sleep_until((Instant::now() + Duration::from_secs(1)).min(end)).await;
                continue;
            };
            let playlist = parse_playlist(&String::from_utf8_lossy(&body));
            let target = Duration::from_secs(playlist.target_duration_secs.max(1));
            let reloaded_at = Instant::now();
            let fetched = self.load_new_segments(&playlist, end).await;
            if playlist.ended {
                break;
            }
            let wait = if fetched == 0 { target / 2 } else { target };
            tokio::time::sleep_until((reloaded_at + wait).min(end)).await;
        }
        self.report
    }

    /// Fetches the segments after the last one loaded (from the live edge
    /// minus three at first), each after its key; returns how many.
    async fn load_new_segments(&mut self, playlist: &Playlist, end: Instant) -> usize {
        let start_seq = match self.next_seq {
            Some(seq) => seq,
            None => {
                let first = playlist.segments.len().saturating_sub(LIVE_SYNC_SEGMENTS);
                playlist.segments.get(first).map_or(0, |s| s.seq)
            }
        };
        let mut fetched = 0;
        for segment in playlist.segments.iter().filter(|s| s.seq >= start_seq) {
            if Instant::now() >= end {
                break;
            }
            if let Some(key_uri) = &segment.key_uri {
                let identity = key_identity(key_uri);
                if !self.keys.contains(&identity) {
                    if let Ok(url) = self.playlist_url.join(key_uri) {
                        match self.fetch(Kind::Key, &url, end).await {
                            Some(key) if key.len() == 16 => {}
                            Some(key) => self.report.error(Kind::Key, format!("key of {} bytes", key.len())),
                            None => {}
                        }
                    }
                    self.keys.push_back(identity);
                    if self.keys.len() > 16 {
                        self.keys.pop_front();
                    }
                }
            }
            if let Ok(url) = self.playlist_url.join(&segment.uri) {
                self.fetch(Kind::Segment, &url, end).await;
            }
            self.next_seq = Some(segment.seq + 1);
            fetched += 1;
        }
        fetched
    }

    /// One GET; counts it, and returns the body of a 2xx answer. Errors are
    /// counted and sampled, never fatal.
    async fn fetch(&mut self, kind: Kind, url: &Url, end: Instant) -> Option<Bytes> {
        if Instant::now() >= end {
            return None;
        }
        self.report.kind_mut(kind).requests += 1;
        let started = Instant::now();
        let result = tokio::time::timeout(REQUEST_TIMEOUT, self.get(url)).await;
        let elapsed = started.elapsed();
        match result {
            Ok(Ok(body)) => {
                let stats = self.report.kind_mut(kind);
                stats.bytes += body.len() as u64;
                stats
                    .latencies_us
                    .push(elapsed.as_micros().min(u128::from(u32::MAX)) as u32);
                Some(body)
            }
            Ok(Err(text)) => {
                self.report.error(
                    kind,
                    format!(
                        "{} {}: {text}",
                        kind.name(),
                        url.path_and_query.split('?').next().unwrap_or("")
                    ),
                );
                None
            }
            Err(_) => {
                self.connection = None;
                self.report.error(kind, format!("{} timed out", kind.name()));
                None
            }
        }
    }

    /// A GET on the kept-alive connection; if that connection turns out to
    /// be closed before an answer came, once more on a new one, as browsers
    /// do for idempotent requests on a reused connection.
    async fn get(&mut self, url: &Url) -> Result<Bytes, String> {
        if let Some(sender) = self.connection.take().filter(|s| !s.is_closed()) {
            match self.get_on(sender, url).await {
                Err(GetError::Connection(_)) => {}
                other => return other.map_err(GetError::into_text),
            }
        }
        let sender = connect(&url.authority).await?;
        self.get_on(sender, url).await.map_err(GetError::into_text)
    }

    async fn get_on(&mut self, mut sender: http1::SendRequest<Empty<Bytes>>, url: &Url) -> Result<Bytes, GetError> {
        let connection = |e: hyper::Error| GetError::Connection(e.to_string());
        sender.ready().await.map_err(connection)?;
        let request = hyper::Request::get(url.path_and_query.as_str())
            .header(hyper::header::HOST, url.authority.as_str())
            .body(Empty::new())
            .map_err(|e| GetError::Other(e.to_string()))?;
        let response = sender.send_request(request).await.map_err(connection)?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| GetError::Other(e.to_string()))?
            .to_bytes();
        self.connection = Some(sender);
        if status.is_success() {
            Ok(body)
        } else {
            Err(GetError::Other(format!("status {}", status.as_u16())))
        }
    }
}

/// A request that failed before any answer (worth one retry on a new
/// connection), or after one.
enum GetError {
    Connection(String),
    Other(String),
}

impl GetError {
    fn into_text(self) -> String {
        match self {
            GetError::Connection(text) | GetError::Other(text) => text,
        }
    }
}

/// A new HTTP/1.1 connection; its driver runs as its own task until closed.
async fn connect(authority: &str) -> Result<http1::SendRequest<Empty<Bytes>>, String> {
    let socket = TcpStream::connect(authority).await.map_err(|e| e.to_string())?;
    let _ = socket.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(socket))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        // The connection ends when the server closes it or the sender is dropped.
        let _ = connection.await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parse_and_join_table() {
        let base = Url::parse("http://127.0.0.1:8080/live/s0/index.m3u8?token=abc").unwrap();
        assert_eq!(base.authority, "127.0.0.1:8080");
        let cases = [
            ("p1-7.ts", "/live/s0/p1-7.ts"),
            ("/keys/live/s0/k1?edk=x&ticket=t", "/keys/live/s0/k1?edk=x&ticket=t"),
            ("sub/a.ts", "/live/s0/sub/a.ts"),
        ];
        for (uri, want) in cases {
            assert_eq!(base.join(uri).unwrap().path_and_query, want, "{uri}");
        }
        let other = base.join("http://cdn.example:81/x.ts").unwrap();
        assert_eq!(
            (other.authority.as_str(), other.path_and_query.as_str()),
            ("cdn.example:81", "/x.ts")
        );
        assert_eq!(Url::parse("http://localhost/a").unwrap().authority, "localhost:80");
        for bad in ["https://x/a", "http:///a", "ftp://x"] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    /// A sealcast playlist: the key tag applies to every following segment
    /// until the next one, and sequence numbers count from MEDIA-SEQUENCE.
    #[test]
    fn parses_keys_segments_and_sequence() {
        let text = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:41\n\
            #EXT-X-KEY:METHOD=AES-128,URI=\"/keys/live/s0/k41?edk=A&ticket=t1\",IV=0x01\n\
            #EXT-X-PROGRAM-DATE-TIME:2026-12-04T12:00:00.000Z\n#EXTINF:2.000,\np-41.ts\n\
            #EXTINF:2.000,\np-42.ts\n\
            #EXT-X-KEY:METHOD=AES-128,URI=\"/keys/live/s0/k43?edk=B&ticket=t2\",IV=0x02\n\
            #EXTINF:2.000,\np-43.ts\n";
        let p = parse_playlist(text);
        assert_eq!(p.target_duration_secs, 2);
        assert!(!p.ended);
        let got: Vec<(u64, &str, Option<&str>)> = p
            .segments
            .iter()
            .map(|s| (s.seq, s.uri.as_str(), s.key_uri.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (41, "p-41.ts", Some("/keys/live/s0/k41?edk=A&ticket=t1")),
                (42, "p-42.ts", Some("/keys/live/s0/k41?edk=A&ticket=t1")),
                (43, "p-43.ts", Some("/keys/live/s0/k43?edk=B&ticket=t2")),
            ]
        );
        let clear = parse_playlist("#EXT-X-KEY:METHOD=NONE\n#EXTINF:1,\na.ts\n#EXT-X-ENDLIST\n");
        assert_eq!(clear.segments[0].key_uri, None);
        assert!(clear.ended);
    }

    #[test]
    fn key_identity_drops_only_the_credential() {
        let cases = [
            ("/keys/a/b/k?edk=X&ticket=T", "/keys/a/b/k?edk=X"),
            ("/keys/a/b/k?token=J&edk=X", "/keys/a/b/k?edk=X"),
            ("/keys/a/b/k?edk=X", "/keys/a/b/k?edk=X"),
            ("/keys/a/b/k", "/keys/a/b/k"),
        ];
        for (uri, want) in cases {
            assert_eq!(key_identity(uri), want, "{uri}");
        }
    }

    #[test]
    fn percentile_nearest_rank() {
        let v: Vec<u32> = (1..=100).rev().collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7], 1.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }
}
