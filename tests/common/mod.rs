//! Helpers shared by the integration tests: fixtures and the outside world
//! (ffprobe, ffmpeg) that judges sealcast's output.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

fn run(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} is required for this test (scripts/test.sh installs it): {e}"))
}

/// True when the bytes look like MPEG-TS: a 0x47 sync byte every 188 bytes.
pub fn has_ts_sync(bytes: &[u8]) -> bool {
    bytes.len() >= 188 * 2 && bytes.chunks(188).all(|p| p[0] == 0x47)
}

/// Codec names of the streams ffprobe finds (empty when it finds none).
pub fn probe_streams(path: &Path) -> Vec<String> {
    let out = run(
        "ffprobe",
        &["-v", "quiet", "-show_entries", "stream=codec_name", "-of", "csv=p=0", path.to_str().unwrap()],
    );
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()).collect()
}

/// What `ffmpeg -v error -i FILE -f null -` prints: empty for a clean decode.
pub fn ffmpeg_errors(path: &Path) -> String {
    let out = run("ffmpeg", &["-nostdin", "-v", "error", "-i", path.to_str().unwrap(), "-f", "null", "-"]);
    assert!(out.status.success(), "ffmpeg failed on {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameCounts {
    pub video: u64,
    pub audio: u64,
}

/// Decoded frame counts per stream type, from `ffprobe -count_frames`.
pub fn count_frames(path: &Path) -> FrameCounts {
    let out = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_type,nb_read_frames",
            "-of",
            "csv=p=0",
            path.to_str().unwrap(),
        ],
    );
    let mut counts = FrameCounts::default();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut fields = line.split(',');
        let (Some(kind), Some(n)) = (fields.next(), fields.next()) else { continue };
        let n: u64 = n.trim().parse().unwrap_or(0);
        match kind {
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
    String::from_utf8_lossy(&out.stdout).lines().next().map(|l| l.trim() == "1")
}
