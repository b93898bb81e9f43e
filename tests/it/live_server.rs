//! The live server end to end, in process: fixtures pushed over real RTMP
//! (the publishing client of `sealcast::tools::publisher`), playlists, segments and keys fetched over
//! real HTTP, segments decrypted and judged by ffprobe/ffmpeg against the
//! fixture they came from.
//!
//! Every test ends by walking its server's data dir: no data key fetched
//! from the key endpoint is on disk, and no stored file is plaintext TS.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::Command;

use crate::support::http;
use crate::support::playlist::{query_param, segment_count, until_ended, until_segments};
use crate::support::rtmp::{Fixture, PublishOutcome, Publisher};
use crate::support::server::{DEMO_KEY, OTHER_KEY, TestServer};
use crate::support::{contains, count_frames, ffmpeg_errors, fixture, has_ts_sync, walk, with_safety_net};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sealcast::crypto::{self, DataKey};
use sealcast::hls::{ParsedPlaylist, parse_media_playlist};
use sealcast::names::{self, KeyUri};

/// 10 s, 30 fps, B-frames, keyframe every 2 s.
const HIGH: &str = "high-bframes-aac48k.flv";
/// 10 s, 25 fps, keyframe every 2 s.
const BASELINE: &str = "baseline-aac44k.flv";
/// Both fixtures last 10 s.
const FIXTURE_SECS: f64 = 10.0;

// ---------------------------------------------------------------------------
// Playlist checks

fn playlist_path(stream: &str, token: Option<&str>) -> String {
    match token {
        Some(token) => format!("/{stream}/index.m3u8?token={token}"),
        None => format!("/{stream}/index.m3u8"),
    }
}

/// Waits for the publisher's end to reach the playlist (`#EXT-X-ENDLIST`).
async fn wait_for_end(server: &TestServer, stream: &str, token: &str) -> String {
    until_ended(server.http, &playlist_path(stream, Some(token))).await
}

async fn wait_for_segments(server: &TestServer, stream: &str, token: &str, n: usize) -> String {
    until_segments(server.http, &playlist_path(stream, Some(token)), n).await
}

/// The attributes of an `#EXT-X-KEY` line (RFC 8216 4.2 attribute list:
/// quoted strings may contain commas).
fn key_attributes(line: &str) -> BTreeMap<String, String> {
    let list = line.strip_prefix("#EXT-X-KEY:").expect("an EXT-X-KEY line");
    let mut attrs = BTreeMap::new();
    let mut rest = list;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once('=')
            .unwrap_or_else(|| panic!("malformed attribute list: {line}"));
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or_else(|| panic!("unterminated quote: {line}"));
            (&quoted[..end], &quoted[end + 1..])
        } else {
            after.split_once(',').map_or((after, ""), |(v, r)| (v, r))
        };
        assert!(
            attrs.insert(name.to_owned(), value.to_owned()).is_none(),
            "duplicate {name}: {line}"
        );
        rest = after.strip_prefix(',').unwrap_or(after);
    }
    attrs
}

/// Checks an ended playlist against RFC 8216 and sealcast's rules, with
/// `token` expected in every key URI (or no token anywhere when `None`).
fn check_playlist(text: &str, token: Option<&str>) -> ParsedPlaylist {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"#EXTM3U"), "4.3.1.1: #EXTM3U first\n{text}");
    assert_eq!(lines.last(), Some(&"#EXT-X-ENDLIST"), "ENDLIST last\n{text}");
    assert!(text.ends_with('\n'), "{text}");
    let first_segment = lines
        .iter()
        .position(|l| l.starts_with("#EXTINF:"))
        .unwrap_or_else(|| panic!("no segments\n{text}"));
    let header = &lines[..first_segment];
    for tag in ["#EXT-X-VERSION:", "#EXT-X-TARGETDURATION:", "#EXT-X-MEDIA-SEQUENCE:"] {
        assert_eq!(
            lines.iter().filter(|l| l.starts_with(tag)).count(),
            1,
            "{tag} exactly once\n{text}"
        );
        assert!(
            header.iter().any(|l| l.starts_with(tag)),
            "{tag} before the segments\n{text}"
        );
    }
    assert!(
        header.iter().any(|l| l.starts_with("#EXT-X-KEY:")),
        "a key tag applies to the first segment\n{text}"
    );

    // Every key tag: AES-128, a quoted URI, an explicit 128-bit IV, the token.
    let mut key_lines = 0;
    for line in lines.iter().filter(|l| l.starts_with("#EXT-X-KEY:")) {
        key_lines += 1;
        let attrs = key_attributes(line);
        assert_eq!(attrs.get("METHOD").map(String::as_str), Some("AES-128"), "{line}");
        let uri = attrs.get("URI").unwrap_or_else(|| panic!("key without URI: {line}"));
        assert!(line.contains(&format!("URI=\"{uri}\"")), "URI is quoted: {line}");
        let iv = attrs.get("IV").unwrap_or_else(|| panic!("key without IV: {line}"));
        let hex = iv.strip_prefix("0x").unwrap_or_else(|| panic!("IV without 0x: {line}"));
        assert!(
            hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "IV is 32 hex digits: {line}"
        );
        match token {
            Some(token) => {
                assert!(uri.contains("&token="), "{line}");
                assert_eq!(query_param(uri, "token"), Some(token), "{line}");
            }
            None => assert!(!line.contains("token="), "{line}"),
        }
    }
    assert!(key_lines > 0);

    // Every segment has a PROGRAM-DATE-TIME among its tags.
    let mut saw_date = false;
    let mut segments_with_date = 0;
    for line in &lines {
        if line.starts_with("#EXT-X-PROGRAM-DATE-TIME:") {
            saw_date = true;
        } else if !line.starts_with('#') && !line.is_empty() {
            assert!(saw_date, "segment {line} has no PROGRAM-DATE-TIME\n{text}");
            segments_with_date += 1;
            saw_date = false;
        }
    }

    let parsed = parse_media_playlist(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(parsed.ended);
    assert!(
        parsed.version.is_some_and(|v| v >= 3),
        "VERSION 3 for decimal EXTINF\n{text}"
    );
    assert_eq!(segments_with_date, parsed.segments.len());
    let mut previous_date = None;
    for (i, segment) in parsed.segments.iter().enumerate() {
        assert!(
            segment.duration_secs.round() as u32 <= parsed.target_duration_secs,
            "4.3.3.1: EXTINF {} > TARGETDURATION {}\n{text}",
            segment.duration_secs,
            parsed.target_duration_secs
        );
        assert!(segment.duration_secs > 0.0, "{text}");
        assert_eq!(segment.sequence, parsed.media_sequence + i as u64, "{text}");
        assert!(names::is_segment_file_name(&segment.uri), "{}", segment.uri);
        assert!(
            segment.key.is_some(),
            "segment {} is not encrypted\n{text}",
            segment.uri
        );
        let date = segment.program_date_time_ms.expect("PROGRAM-DATE-TIME");
        assert!(previous_date.is_none_or(|p| p < date), "dates go forward\n{text}");
        previous_date = Some(date);
    }
    let total: f64 = parsed.segments.iter().map(|s| s.duration_secs).sum();
    assert!(
        (total - FIXTURE_SECS).abs() < 0.5,
        "EXTINFs add up to {total} s, the fixture lasts {FIXTURE_SECS} s\n{text}"
    );
    parsed
}

// ---------------------------------------------------------------------------
// Segments and keys

/// One segment as fetched, with the key that decrypted it.
struct FetchedSegment {
    key_uri: String,
    iv: [u8; 16],
    key: [u8; 16],
}

/// Fetches every segment of `playlist` and its key over HTTP, checks both,
/// decrypts, and writes the concatenated TS to `out`.
async fn fetch_and_decrypt(
    server: &TestServer,
    stream: &str,
    playlist: &ParsedPlaylist,
    out: &Path,
) -> Vec<FetchedSegment> {
    let mut concatenated = Vec::new();
    let mut fetched = Vec::new();
    for segment in &playlist.segments {
        let path = format!("/{stream}/{}", segment.uri);
        let response = http::get(server.http, &path).await;
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.header("content-type"), Some("video/mp2t"), "{path}");
        let mut body = response.body;
        assert!(!body.is_empty() && body.len() % 16 == 0, "{path}: {} bytes", body.len());
        assert!(!has_ts_sync(&body), "{path} is served as plaintext");

        let tag = segment.key.clone().expect("encrypted segment");
        assert!(
            tag.uri.starts_with(&format!("/keys/{stream}/")),
            "key URI {} is not this stream's",
            tag.uri
        );
        let key = fetch_key(server, &tag.uri).await;
        crypto::decrypt_segment(&DataKey::from_bytes(key), tag.iv, &mut body)
            .unwrap_or_else(|e| panic!("{path} does not decrypt under its key: {e}"));
        assert!(
            has_ts_sync(&body) && body.len() % 188 == 0,
            "{path} does not decrypt to TS"
        );
        concatenated.extend_from_slice(&body);
        fetched.push(FetchedSegment {
            key_uri: tag.uri,
            iv: tag.iv,
            key,
        });
    }
    std::fs::write(out, &concatenated).unwrap();
    fetched
}

async fn fetch_key(server: &TestServer, uri: &str) -> [u8; 16] {
    let response = http::get(server.http, uri).await;
    assert_eq!(response.status, 200, "key {uri}: {}", response.text());
    assert_eq!(response.header("cache-control"), Some("no-store"), "{uri}");
    response
        .body
        .as_slice()
        .try_into()
        .unwrap_or_else(|_| panic!("key is {} bytes, not 16", response.body.len()))
}

/// The decrypted TS holds every frame of the fixture, decodes cleanly, and
/// its DTS increases per stream.
fn check_media(decrypted: &Path, fixture_name: &str) {
    let expected = count_frames(&fixture(fixture_name));
    assert!(expected.video > 0 && expected.audio > 0, "{expected:?}");
    assert_eq!(count_frames(decrypted), expected, "frames of {fixture_name}");
    assert_eq!(ffmpeg_errors(decrypted), "", "ffmpeg decoding {fixture_name}");
    assert_dts_increasing(decrypted);
}

fn assert_dts_increasing(path: &Path) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=stream_index,dts",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe is required");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut last: BTreeMap<u32, i64> = BTreeMap::new();
    let mut packets = 0;
    // Packets with side data print a trailing comma and a blank line.
    for line in String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let (index, dts) = line.split_once(',').unwrap_or_else(|| panic!("ffprobe line {line:?}"));
        let index: u32 = index.trim().parse().unwrap();
        let dts: i64 = dts
            .trim()
            .trim_end_matches(',')
            .parse()
            .unwrap_or_else(|_| panic!("packet without DTS: {line:?}"));
        if let Some(previous) = last.insert(index, dts) {
            assert!(dts > previous, "stream {index}: DTS {dts} after {previous}");
        }
        packets += 1;
    }
    assert_eq!(last.len(), 2, "an audio and a video stream");
    assert!(packets > 100, "{packets} packets");
}

/// Everything one ended publish is checked for. Returns the fetched segments.
async fn verify_stream(
    server: &TestServer,
    stream: &str,
    token: &str,
    fixture_name: &str,
    scratch: &Path,
) -> Vec<FetchedSegment> {
    let text = wait_for_end(server, stream, token).await;
    let playlist = check_playlist(&text, Some(token));
    let out = scratch.join(format!("{}.ts", stream.replace('/', "_")));
    let segments = fetch_and_decrypt(server, stream, &playlist, &out).await;
    check_media(&out, fixture_name);
    let ivs: HashSet<[u8; 16]> = segments.iter().map(|s| s.iv).collect();
    assert_eq!(ivs.len(), segments.len(), "IVs are distinct per segment\n{text}");
    segments
}

/// Connects, publishes and pushes a whole fixture, then unpublishes.
async fn push(server: &TestServer, key: &str, fixture: &Fixture) {
    let mut publisher = Publisher::publish(server.rtmp, key).await;
    publisher.send_fixture(fixture).await;
    publisher.finish().await;
}

// ---------------------------------------------------------------------------
// Data dir

/// No file under the data dir holds a data key (raw or hex), and none is
/// plaintext TS: segments fail `has_ts_sync`, and no file but a playlist
/// starts like TS. Ciphertext starts with 0x47 one time in 256, so "starts
/// like TS" means sync bytes at 0, 188 and 376 (by chance: 2^-24), or a
/// 0x47 first byte for a file too short for three packets.
fn assert_data_dir_clean(data_dir: &Path, keys: &[[u8; 16]]) {
    assert!(!keys.is_empty());
    let files = walk(data_dir);
    let segments = files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "ts"))
        .count();
    assert!(segments > 0, "no segments under {}", data_dir.display());
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        for key in keys {
            assert!(!contains(&bytes, key), "{} holds a data key", file.display());
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            assert!(
                !contains(&bytes, hex.as_bytes()),
                "{} holds a data key in hex",
                file.display()
            );
        }
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.ends_with(".tmp"),
            "temporary file left behind: {}",
            file.display()
        );
        if name.ends_with(".ts") {
            assert!(!has_ts_sync(&bytes), "{} is plaintext TS", file.display());
        }
        if name != "index.m3u8" {
            let starts_like_ts = if bytes.len() >= 3 * 188 {
                bytes[0] == 0x47 && bytes[188] == 0x47 && bytes[376] == 0x47
            } else {
                bytes.first() == Some(&0x47)
            };
            assert!(!starts_like_ts, "{} starts like plaintext TS", file.display());
        }
    }
}

// ---------------------------------------------------------------------------
// Tests

/// 1: one push of the B-frame fixture, checked from playlist to decoded frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_stream_plays_back_as_encrypted_hls() {
    with_safety_net(async {
        let server = TestServer::start("").await;
        let scratch = tempfile::tempdir().unwrap();
        let token = server.token("live/demo", 3600);
        push(&server, DEMO_KEY, &Fixture::load(HIGH)).await;
        let segments = verify_stream(&server, "live/demo", &token, HIGH, scratch.path()).await;
        assert!(segments.len() >= 2, "{} segments", segments.len());
        // Default segments_per_key = 1: a new key (and key URI) per segment.
        let uris: HashSet<&str> = segments.iter().map(|s| s.key_uri.as_str()).collect();
        assert_eq!(uris.len(), segments.len());
        let keys: HashSet<[u8; 16]> = segments.iter().map(|s| s.key).collect();
        assert_eq!(keys.len(), segments.len());

        let keys: Vec<[u8; 16]> = keys.into_iter().collect();
        assert_data_dir_clean(&server.data_dir(), &keys);
        server.stop().await;
    })
    .await;
}

/// 2: two segments per key: the key changes exactly every second segment.
/// With no segment memory, so every segment is read from disk per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_every_second_segment() {
    with_safety_net(async {
        let server = TestServer::start(
            "[encryption]\nsegments_per_key = 2\n[hls]\nsegment_duration_secs = 2\n[http.limits]\nsegment_memory_mb = 0\n",
        )
        .await;
        let scratch = tempfile::tempdir().unwrap();
        let token = server.token("live/demo", 3600);
        push(&server, DEMO_KEY, &Fixture::load(BASELINE)).await;
        let segments = verify_stream(&server, "live/demo", &token, BASELINE, scratch.path()).await;
        assert!(segments.len() >= 4, "{} segments", segments.len());
        for (i, pair) in segments.windows(2).enumerate() {
            let changed = pair[0].key_uri != pair[1].key_uri;
            assert_eq!(changed, (i + 1) % 2 == 0, "key change after segment {i}");
            assert_eq!(changed, pair[0].key != pair[1].key, "a new URI means a new key");
        }
        let uris: HashSet<&str> = segments.iter().map(|s| s.key_uri.as_str()).collect();
        assert_eq!(uris.len(), segments.len().div_ceil(2));

        let keys: Vec<[u8; 16]> = segments.iter().map(|s| s.key).collect();
        assert_data_dir_clean(&server.data_dir(), &keys);
        server.stop().await;
    })
    .await;
}

/// Replaces the `edk` query parameter of a key URI.
fn with_edk(uri: &str, edk: &str) -> String {
    let (path, query) = uri.split_once('?').unwrap();
    let query: Vec<String> = query
        .split('&')
        .map(|pair| {
            if pair.starts_with("edk=") {
                format!("edk={edk}")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// 3: what the HTTP side answers to good and bad requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_refuse_bad_requests_and_never_fail() {
    with_safety_net(async {
        let server = TestServer::start("").await;
        let token = server.token("live/demo", 3600);
        push(&server, DEMO_KEY, &Fixture::load(BASELINE)).await;
        let text = wait_for_end(&server, "live/demo", &token).await;
        let playlist = check_playlist(&text, Some(&token));
        let segment = &playlist.segments[0];
        let with_token = segment.key.clone().unwrap().uri;
        let good_key = fetch_key(&server, &with_token).await;

        // The key URI as stored: `/keys/live/demo/{key_id}?edk=…`.
        let bare = with_token.replace(&format!("&token={token}"), "");
        assert!(!bare.contains("token="), "{bare}");
        let (path, _) = bare.split_once('?').unwrap();
        let parsed = KeyUri::parse(&bare).unwrap();
        let key_id = parsed.key_id.as_str();
        let edk = parsed.wrapped.to_base64url();
        let with = |uri: &str, token: &str| format!("{uri}&token={token}");

        // Signature with one character changed (not the last, whose low bits
        // base64url may not carry).
        let mut bad_signature = token.clone().into_bytes();
        let sig_start = token.rfind('.').unwrap() + 1;
        bad_signature[sig_start + 3] = if bad_signature[sig_start + 3] == b'A' {
            b'B'
        } else {
            b'A'
        };
        let bad_signature = String::from_utf8(bad_signature).unwrap();
        let expired = server.token("live/demo", -60);
        let other = server.token("live/other", 3600);
        let wildcard = server.token("live/*", 3600);

        let mut flipped = URL_SAFE_NO_PAD.decode(&edk).unwrap();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0x01;
        let flipped = URL_SAFE_NO_PAD.encode(&flipped);
        let foreign = bare.replacen("/keys/live/demo/", "/keys/live/other/", 1);
        let (counter_at, _) = key_id.rsplit_once('-').unwrap();
        let other_key_id = bare.replacen(key_id, &format!("{counter_at}-999"), 1);

        let bearer = format!("Bearer {token}");
        // (what, URI, Authorization header, expected status)
        let cases: Vec<(&str, String, Option<&str>, u16)> = vec![
            ("good token", with(&bare, &token), None, 200),
            ("no token", bare.clone(), None, 401),
            ("bad signature", with(&bare, &bad_signature), None, 403),
            ("expired token", with(&bare, &expired), None, 403),
            ("token for live/other", with(&bare, &other), None, 403),
            ("token for live/*", with(&bare, &wildcard), None, 200),
            ("Authorization: Bearer", bare.clone(), Some(bearer.as_str()), 200),
            ("garbage token", with(&bare, "not.a.jwt"), None, 403),
            (
                "edk with a flipped byte",
                with(&with_edk(&bare, &flipped), &token),
                None,
                403,
            ),
            ("live/demo edk under live/other", with(&foreign, &other), None, 403),
            ("another key id", with(&other_key_id, &token), None, 403),
            (
                "invalid key id",
                with(&bare.replacen(key_id, "bad.id", 1), &token),
                None,
                403,
            ),
            (
                "edk not base64url",
                with(&with_edk(&bare, "not*base64"), &token),
                None,
                403,
            ),
            (
                "edk of the wrong length",
                with(&with_edk(&bare, "AAAA"), &token),
                None,
                403,
            ),
            (
                "edk of random bytes",
                with(&with_edk(&bare, &URL_SAFE_NO_PAD.encode([7u8; 49])), &token),
                None,
                403,
            ),
            ("empty edk", with(&with_edk(&bare, ""), &token), None, 403),
            ("no edk", format!("{path}?token={token}"), None, 403),
        ];
        for (what, uri, authorization, expected) in &cases {
            let headers: Vec<(&str, &str)> = authorization.iter().map(|a| ("Authorization", *a)).collect();
            let response = http::get_with(server.http, uri, &headers).await;
            assert!(response.status < 500, "{what}: {} for {uri}", response.status);
            assert_eq!(response.status, *expected, "{what}: {uri} answered {}", response.text());
            assert_eq!(response.header("cache-control"), Some("no-store"), "{what}");
            if *expected == 200 {
                assert_eq!(response.body, good_key, "{what}");
            } else {
                assert!(!contains(&response.body, &good_key), "{what}: key material in an error");
            }
        }

        // Playlists: a bad token is refused, none gives a playlist without one.
        let response = http::get(server.http, &playlist_path("live/demo", Some(&bad_signature))).await;
        assert_eq!(response.status, 403);
        let response = http::get(server.http, &playlist_path("live/demo", Some(&other))).await;
        assert_eq!(response.status, 403);
        let response = http::get(server.http, &playlist_path("live/demo", None)).await;
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-type"), Some("application/vnd.apple.mpegurl"));
        check_playlist(&response.text(), None);

        // Segment URLs: only existing segment files of configured streams.
        let segment_path = format!("/live/demo/{}", segment.uri);
        let missing_segment = format!("/live/demo/{}", segment.uri.replace(".ts", "9999.ts"));
        let mut misses: Vec<String> = [
            "/live/demo/..%2F..%2Fetc%2Fpasswd",
            "/live/demo/..%2F..%2Fkeyring.json",
            "/live/demo/%2E%2E%2Fdemo%2Findex.m3u8",
            "/live/demo/index.m3u8.tmp",
            "/live/demo/.index.m3u8.tmp",
            "/live/nope/index.m3u8",
            "/nope/demo/index.m3u8",
            "/live/demo/keyring.json",
        ]
        .map(str::to_owned)
        .into();
        misses.push(missing_segment);
        misses.push(segment_path.replacen("/live/demo/", "/live/nope/", 1));
        misses.push(segment_path.replacen("/live/demo/", "/live/other/", 1));
        for path in &misses {
            let response = http::get(server.http, path).await;
            assert_eq!(response.status, 404, "{path}: {}", response.text());
        }

        // ffmpeg-style Range request.
        let whole = http::get(server.http, &segment_path).await;
        assert_eq!(whole.status, 200);
        let response = http::get_with(server.http, &segment_path, &[("Range", "bytes=0-187")]).await;
        assert_eq!(response.status, 206);
        assert_eq!(
            response.header("content-range"),
            Some(format!("bytes 0-187/{}", whole.body.len()).as_str())
        );
        assert_eq!(response.body.len(), 188);
        assert_eq!(response.body, whole.body[..188]);
        check_segment_bodies(&server, &playlist).await;

        assert_data_dir_clean(&server.data_dir(), &[good_key]);
        server.stop().await;
    })
    .await;
}

/// Segment bodies (read once into the stream's memory, then served from it):
/// on the largest segment, whole and ranged answers carry exactly the file's
/// bytes with a matching `Content-Length`, HEAD gives the length without a
/// body, and a range past the end is 416.
async fn check_segment_bodies(server: &TestServer, playlist: &ParsedPlaylist) {
    let dir = server.data_dir().join("live").join("demo");
    let (uri, on_disk) = playlist
        .segments
        .iter()
        .map(|s| (s.uri.as_str(), std::fs::read(dir.join(&s.uri)).unwrap()))
        .max_by_key(|(_, bytes)| bytes.len())
        .unwrap();
    let len = on_disk.len();
    const CHUNK: usize = 64 * 1024;
    assert!(len > 2 * CHUNK, "largest segment {uri} is only {len} bytes");
    let path = format!("/live/demo/{uri}");

    let whole = http::get(server.http, &path).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("content-length"), Some(len.to_string().as_str()));
    assert_eq!(whole.header("content-type"), Some("video/mp2t"));
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert_eq!(whole.header("transfer-encoding"), None);
    assert!(whole.body == on_disk, "whole segment differs from {uri} on disk");

    // (Range header, first byte, last byte): across chunk boundaries, a
    // suffix, the last byte, one past a chunk.
    let ranges = [
        (
            format!("bytes={}-{}", CHUNK - 100, 2 * CHUNK + 100),
            CHUNK - 100,
            2 * CHUNK + 100,
        ),
        ("bytes=-1000".to_owned(), len - 1000, len - 1),
        (format!("bytes={}-", len - 1), len - 1, len - 1),
        (format!("bytes={CHUNK}-"), CHUNK, len - 1),
        (format!("bytes=0-{}", len * 2), 0, len - 1),
    ];
    for (range, first, last) in &ranges {
        let response = http::get_with(server.http, &path, &[("Range", range)]).await;
        assert_eq!(response.status, 206, "{range}");
        assert_eq!(
            response.header("content-range"),
            Some(format!("bytes {first}-{last}/{len}").as_str()),
            "{range}"
        );
        let expected = &on_disk[*first..=*last];
        assert_eq!(
            response.header("content-length"),
            Some(expected.len().to_string().as_str()),
            "{range}"
        );
        assert!(response.body == expected, "{range}: body differs from {uri} on disk");
    }

    let head = http::request(server.http, "HEAD", &path, &[], b"").await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some(len.to_string().as_str()));
    assert!(head.body.is_empty(), "HEAD answered {} body bytes", head.body.len());

    let past_end = http::get_with(server.http, &path, &[("Range", &format!("bytes={len}-"))]).await;
    assert_eq!(past_end.status, 416);
    assert_eq!(
        past_end.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );
}

fn refused(code: &str) -> PublishOutcome {
    PublishOutcome::Refused {
        code: Some(code.to_owned()),
        closed: true,
    }
}

/// 4: wrong keys are refused before anything is stored; a second publisher
/// is refused while the first keeps going.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_publishes_store_nothing_and_disturb_nothing() {
    with_safety_net(async {
        let server = TestServer::start("").await;
        let data_dir = server.data_dir();
        let token = server.token("live/demo", 3600);

        let mut wrong = Publisher::connect(server.rtmp, "live").await;
        assert_eq!(
            wrong.request_publish("sk_wrong").await,
            refused("NetStream.Publish.Denied")
        );
        // A stream key is only good for its own app.
        let mut wrong_app = Publisher::connect(server.rtmp, "other").await;
        assert_eq!(
            wrong_app.request_publish(DEMO_KEY).await,
            refused("NetStream.Publish.Denied")
        );
        assert!(
            !data_dir.join("live/demo").exists(),
            "a refused publish created its directory"
        );
        assert!(!data_dir.join("other").exists());
        assert_eq!(
            http::get(server.http, &playlist_path("live/demo", Some(&token)))
                .await
                .status,
            404
        );

        // First publisher: live, with at least one segment out.
        let fixture = Fixture::load(HIGH);
        let (first_part, rest) = fixture.split_at_ms(5000);
        let mut first = Publisher::publish(server.rtmp, DEMO_KEY).await;
        first.send_metadata(&fixture.metadata).await;
        first.send_tags(first_part).await;
        wait_for_segments(&server, "live/demo", &token, 1).await;

        let mut second = Publisher::connect(server.rtmp, "live").await;
        assert_eq!(
            second.request_publish(DEMO_KEY).await,
            refused("NetStream.Publish.BadName")
        );
        let text = http::get(server.http, &playlist_path("live/demo", Some(&token)))
            .await
            .text();
        assert!(
            !text.contains("#EXT-X-ENDLIST"),
            "the refusal ended the live publish\n{text}"
        );

        first.send_tags(rest).await;
        first.finish().await;
        let scratch = tempfile::tempdir().unwrap();
        let segments = verify_stream(&server, "live/demo", &token, HIGH, scratch.path()).await;

        let keys: Vec<[u8; 16]> = segments.iter().map(|s| s.key).collect();
        assert_data_dir_clean(&data_dir, &keys);
        server.stop().await;
    })
    .await;
}

/// 5: two streams at once, then one leaving while the other goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_streams_are_independent() {
    with_safety_net(async {
        let high = Fixture::load(HIGH);
        let baseline = Fixture::load(BASELINE);
        let scratch = tempfile::tempdir().unwrap();
        let mut keys = Vec::new();

        // Both pushed at once, both complete.
        let server = TestServer::start("").await;
        let demo_token = server.token("live/demo", 3600);
        let other_token = server.token("live/other", 3600);
        tokio::join!(push(&server, DEMO_KEY, &high), push(&server, OTHER_KEY, &baseline));
        for segment in verify_stream(&server, "live/demo", &demo_token, HIGH, scratch.path()).await {
            keys.push(segment.key);
        }
        for segment in verify_stream(&server, "live/other", &other_token, BASELINE, scratch.path()).await {
            keys.push(segment.key);
        }
        assert_data_dir_clean(&server.data_dir(), &keys);
        server.stop().await;

        // Both live; demo's encoder disconnects; other goes on and ends well.
        let server = TestServer::start("").await;
        let demo_token = server.token("live/demo", 3600);
        let other_token = server.token("live/other", 3600);
        let mut demo = Publisher::publish(server.rtmp, DEMO_KEY).await;
        let mut other = Publisher::publish(server.rtmp, OTHER_KEY).await;
        // Cuts at the keyframes at 4 s and 8 s: the first 5 s give one segment.
        let (other_first, other_rest) = baseline.split_at_ms(5000);
        tokio::join!(demo.send_fixture(&high), async {
            other.send_metadata(&baseline.metadata).await;
            other.send_tags(other_first).await;
        });
        wait_for_segments(&server, "live/other", &other_token, 1).await;
        demo.close().await;
        wait_for_end(&server, "live/demo", &demo_token).await;
        let before = http::get(server.http, &playlist_path("live/other", Some(&other_token)))
            .await
            .text();
        assert!(!before.contains("#EXT-X-ENDLIST"), "other ended with demo\n{before}");
        let segments_before = segment_count(&before);

        other.send_tags(other_rest).await;
        other.finish().await;
        let after = wait_for_end(&server, "live/other", &other_token).await;
        assert!(
            segment_count(&after) >= segments_before + 2,
            "other gained no segments after demo ended:\n{before}\n{after}"
        );
        for segment in verify_stream(&server, "live/demo", &demo_token, HIGH, scratch.path()).await {
            keys.push(segment.key);
        }
        for segment in verify_stream(&server, "live/other", &other_token, BASELINE, scratch.path()).await {
            keys.push(segment.key);
        }
        assert_data_dir_clean(&server.data_dir(), &keys);
        server.stop().await;
    })
    .await;
}
