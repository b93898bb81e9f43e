//! Helpers shared by the integration tests: fixtures, the outside world
//! (ffprobe, ffmpeg) that judges sealcast's output, and the safety net.
//!
//! - [`server`]: the real server in process on 127.0.0.1:0, tokens;
//! - [`rtmp`]: fixtures as RTMP publishes, over `sealcast::tools::publisher`;
//! - [`ingest`]: `sealcast::ingest::serve` with a test publish authorizer;
//! - [`http`]: a minimal HTTP/1.1 client;
//! - [`playlist`]: polling a playlist until a state, its keyed segments;
//! - [`process`]: child processes ended on drop, the `sealcast` binary,
//!   ffmpeg as publisher and player;
//! - [`certs`]: a test CA and server certificates made with `openssl`;
//! - [`kms`]: moto (AWS KMS), a proxy that cuts it off, a counting KMS.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Bound on a whole test; no assertion depends on it, it only turns a hang
/// into a failure.
const SAFETY: Duration = Duration::from_secs(180);

/// Runs a whole test under [`SAFETY`].
pub async fn with_safety_net(test: impl Future<Output = ()>) {
    tokio::time::timeout(SAFETY, test)
        .await
        .expect("test did not finish within the safety timeout");
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

fn run(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} is required for this test (scripts/test.sh installs it): {e}"))
}

/// Every file under `dir`, recursively.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// True when the bytes look like MPEG-TS: a 0x47 sync byte every 188 bytes.
pub fn has_ts_sync(bytes: &[u8]) -> bool {
    bytes.len() >= 188 * 2 && bytes.chunks(188).all(|p| p[0] == 0x47)
}

/// Codec names of the streams ffprobe finds (empty when it finds none), sorted.
pub fn probe_streams(path: &Path) -> Vec<String> {
    let mut names: Vec<String> = probe(path, "stream=index,codec_name", &[])
        .into_values()
        .map(|v| v[0].clone())
        .collect();
    names.sort();
    names
}

/// Streams an MPEG-TS demuxer finds in a file. Forcing the format matters for
/// ciphertext: probing random bytes as "any format" now and then guesses a raw
/// audio format and reports a stream.
pub fn probe_ts_streams(path: &Path) -> Vec<String> {
    probe(path, "stream=index,codec_name", &["-f", "mpegts"])
        .into_values()
        .map(|v| v[0].clone())
        .collect()
}

/// `ffprobe -show_entries ENTRIES` per stream index (TS files list each stream
/// twice, under its program and alone; keying by index counts it once).
fn probe(path: &Path, entries: &str, extra: &[&str]) -> std::collections::BTreeMap<u32, Vec<String>> {
    let mut args = vec!["-v", "quiet", "-show_entries", entries, "-of", "csv=p=0"];
    args.extend_from_slice(extra);
    args.push(path.to_str().unwrap());
    let out = run("ffprobe", &args);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(',').map(|f| f.trim().to_owned());
            let index = fields.next()?.parse().ok()?;
            Some((index, fields.filter(|f| !f.is_empty()).collect::<Vec<_>>()))
        })
        .filter(|(_, fields)| !fields.is_empty())
        .collect()
}

/// What `ffmpeg -v error -i FILE -f null -` prints: empty for a clean decode.
pub fn ffmpeg_errors(path: &Path) -> String {
    let out = run(
        "ffmpeg",
        &[
            "-nostdin",
            "-v",
            "error",
            "-i",
            path.to_str().unwrap(),
            "-f",
            "null",
            "-",
        ],
    );
    assert!(
        out.status.success(),
        "ffmpeg failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameCounts {
    pub video: u64,
    pub audio: u64,
}

/// Decoded frame counts per stream type, from `ffprobe -count_frames`.
pub fn count_frames(path: &Path) -> FrameCounts {
    let mut counts = FrameCounts::default();
    for fields in probe(path, "stream=index,codec_type,nb_read_frames", &["-count_frames"]).values() {
        let n: u64 = fields.get(1).and_then(|n| n.parse().ok()).unwrap_or(0);
        match fields[0].as_str() {
            "video" => counts.video += n,
            "audio" => counts.audio += n,
            _ => {}
        }
    }
    counts
}

/// Whether the first decoded video frame of a file is a keyframe.
pub fn first_video_frame_is_key(path: &Path) -> Option<bool> {
    let out = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-read_intervals",
            "%+#1",
            "-show_entries",
            "frame=key_frame",
            "-of",
            "csv=p=0",
            path.to_str().unwrap(),
        ],
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        // csv lines look like "1," (a separator for side data follows).
        .map(|l| l.trim().trim_end_matches(',') == "1")
}

pub mod certs;
pub mod http;
pub mod ingest;
pub mod kms;
pub mod logs;
pub mod playlist;
pub mod process;
pub mod rtmp;
pub mod s3_fault;
pub mod server;
