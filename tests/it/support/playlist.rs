//! Playlists from the tests' side: polling one over HTTP until the server
//! reaches a state it reaches on its own (a first segment, the end), and
//! reading its keyed segments with the library's own parsers
//! (`sealcast::hls::parse_media_playlist`, `sealcast::names::KeyUri::parse`).
//!
//! Polling is bounded by [`POLL_LIMIT`]; no assertion depends on how long a
//! state took to come, the bound only turns "never" into a failure.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sealcast::hls::{ParsedPlaylist, parse_media_playlist};
use sealcast::names::KeyUri;

use super::http;

/// Bound for the server to reach a state it is expected to reach.
pub const POLL_LIMIT: Duration = Duration::from_secs(60);
/// Time between two looks.
pub const POLL_EVERY: Duration = Duration::from_millis(50);

/// Calls `check` every [`POLL_EVERY`] until it returns `Some`; panics naming
/// `what` after `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// [`wait_for`] for code without a runtime (tests that drive child
/// processes synchronously): `check` may itself panic, e.g. when the server
/// it waits on exited.
pub fn wait_for_blocking<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(POLL_EVERY);
    }
}

/// The playlist at `path_and_query` when the server answers 200, `None` on
/// 404 (not published yet); any other status fails the test.
pub async fn fetch(http_addr: SocketAddr, path_and_query: &str) -> Option<String> {
    let response = http::get(http_addr, path_and_query).await;
    match response.status {
        200 => Some(response.text()),
        404 => None,
        status => panic!("{path_and_query} answered {status}: {}", response.text()),
    }
}

/// Polls the playlist at `path_and_query` until `done` holds for its text;
/// returns that text. The failure names `what` and shows the last playlist.
pub async fn poll(http_addr: SocketAddr, path_and_query: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + POLL_LIMIT;
    let mut last = None;
    loop {
        if let Some(text) = fetch(http_addr, path_and_query).await {
            if done(&text) {
                return text;
            }
            last = Some(text);
        }
        assert!(
            Instant::now() < deadline,
            "{path_and_query}: no playlist with {what} after {POLL_LIMIT:?}; last seen:\n{}",
            last.unwrap_or_default()
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// The playlist once it exists (its first segment is out).
pub async fn until_listed(http_addr: SocketAddr, path_and_query: &str) -> String {
    poll(http_addr, path_and_query, "a segment", |t| segment_count(t) >= 1).await
}

/// The playlist once it lists at least `n` segments.
pub async fn until_segments(http_addr: SocketAddr, path_and_query: &str, n: usize) -> String {
    poll(http_addr, path_and_query, &format!("{n} segments"), |t| {
        segment_count(t) >= n
    })
    .await
}

/// The playlist once it carries `#EXT-X-ENDLIST`.
pub async fn until_ended(http_addr: SocketAddr, path_and_query: &str) -> String {
    poll(http_addr, path_and_query, "#EXT-X-ENDLIST", ended).await
}

/// Segments a media playlist lists.
pub fn segment_count(playlist: &str) -> usize {
    playlist.lines().filter(|l| l.starts_with("#EXTINF:")).count()
}

/// Whether a media playlist carries EXT-X-ENDLIST.
pub fn ended(playlist: &str) -> bool {
    playlist.lines().any(|l| l.trim() == "#EXT-X-ENDLIST")
}

/// Parses a media playlist, failing the test with the text when it does not.
pub fn parse(text: &str) -> ParsedPlaylist {
    parse_media_playlist(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// One listed segment with the key that encrypts it.
#[derive(Debug, Clone)]
pub struct KeyedSegment {
    /// The segment URI as listed (a file name).
    pub segment: String,
    /// The key URI as listed, made root-relative (`/keys/…?edk=…`, with any
    /// `token` or `ticket` parameter the playlist carried).
    pub uri: String,
    /// The key URI parsed: stream, key id, wrapped key.
    pub key: KeyUri,
    pub iv: [u8; 16],
}

impl KeyedSegment {
    /// The key id as text.
    pub fn key_id(&self) -> String {
        self.key.key_id.to_string()
    }
}

/// Every segment of a playlist with its key; every segment must have one.
pub fn keyed_segments(text: &str) -> Vec<KeyedSegment> {
    parse(text)
        .segments
        .into_iter()
        .map(|segment| {
            let tag = segment
                .key
                .unwrap_or_else(|| panic!("segment {} is not encrypted\n{text}", segment.uri));
            let key = KeyUri::parse(&tag.uri).unwrap_or_else(|e| panic!("key URI {}: {e}", tag.uri));
            let start = tag.uri.find("/keys/").unwrap_or_default();
            KeyedSegment {
                segment: segment.uri,
                uri: tag.uri[start..].to_owned(),
                key,
                iv: tag.iv,
            }
        })
        .collect()
}

/// Each distinct key URI of a playlist once, with the first segment it
/// encrypts.
pub fn distinct_keys(text: &str) -> Vec<KeyedSegment> {
    let mut keys: Vec<KeyedSegment> = Vec::new();
    for keyed in keyed_segments(text) {
        if !keys.iter().any(|k| k.uri == keyed.uri) {
            keys.push(keyed);
        }
    }
    keys
}

/// The value of `name` in a URI's query string.
pub fn query_param<'a>(uri: &'a str, name: &str) -> Option<&'a str> {
    let (_, query) = uri.split_once('?')?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}
