//! `sealcast package` on MP4 and MPEG-TS inputs made by ffmpeg in the test:
//! several H.264 profiles, B-frames, 44.1 and 48 kHz AAC, progressive (moov
//! at the end and faststart), fragmented MP4 and TS. The decrypted output
//! must hold exactly the source's frames; malformed inputs must be clear
//! errors with a nonzero exit and no panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{FrameCounts, count_frames, ffmpeg_errors};

/// Makes a 4 s test input: testsrc + sine, H.264 `profile` with `bframes`,
/// AAC at `rate` Hz, then `extra` output flags (container options).
fn make_input(dir: &Path, name: &str, profile: &str, bframes: u32, rate: u32, extra: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let bf = bframes.to_string();
    let sine = format!("sine=frequency=440:sample_rate={rate}");
    let mut args = vec![
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=30",
        "-f",
        "lavfi",
        "-i",
    ];
    args.push(&sine);
    args.extend([
        "-t",
        "4",
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libx264",
        "-profile:v",
        profile,
    ]);
    args.extend(["-bf", &bf, "-g", "30", "-c:a", "aac"]);
    args.extend_from_slice(extra);
    args.push(path.to_str().unwrap());
    run_ok("ffmpeg", &args);
    path
}

fn run_ok(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Packets (samples) per stream type, from `ffprobe -count_packets`. The
/// source is counted in packets: an MP4's edit list makes ffmpeg's decoder
/// drop the AAC priming frame, which `sealcast package` (like `ffmpeg -c
/// copy -f hls`) carries, so decoded frames would undercount the input.
fn count_packets(path: &Path) -> FrameCounts {
    let out = run_ok(
        "ffprobe",
        &[
            "-v",
            "error",
            "-count_packets",
            "-show_entries",
            "stream=index,codec_type,nb_read_packets",
            "-of",
            "csv=p=0",
            path.to_str().unwrap(),
        ],
    );
    // A TS stream is listed twice (under its program and alone): key by index.
    let mut streams = std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if let [index, kind, n, ..] = fields[..] {
            streams.insert(index.to_owned(), (kind.to_owned(), n.parse::<u64>().unwrap_or(0)));
        }
    }
    let mut counts = FrameCounts::default();
    for (kind, n) in streams.into_values() {
        match kind.as_str() {
            "video" => counts.video += n,
            "audio" => counts.audio += n,
            _ => {}
        }
    }
    counts
}

fn sealcast(args: &[&Path], extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sealcast"))
        .args(args)
        .args(extra)
        .output()
        .unwrap()
}

/// `--keyring PATH`, with `--new-keyring` the first time.
fn keyring_args(keyring: &Path) -> Vec<&str> {
    let mut args = vec!["--keyring", keyring.to_str().unwrap()];
    if !keyring.exists() {
        args.push("--new-keyring");
    }
    args
}

/// Packages `input`, decrypts the package and checks the frame counts
/// against the source's samples.
fn package_and_check(dir: &Path, input: &Path) {
    let out = dir.join(format!("{}-out", input.file_name().unwrap().to_str().unwrap()));
    let keyring = dir.join("keyring.json");
    let packaged = sealcast(
        &[Path::new("package"), input, &out],
        &[&keyring_args(&keyring)[..], &["--segment-duration-secs", "2"]].concat(),
    );
    let stderr = String::from_utf8_lossy(&packaged.stderr);
    assert!(packaged.status.success(), "package {}: {stderr}", input.display());
    assert!(!stderr.contains("skipping"), "{stderr}");
    let decrypted = dir.join(format!("{}.dec.ts", input.file_name().unwrap().to_str().unwrap()));
    let dec = sealcast(
        &[Path::new("decrypt"), &out.join("index.m3u8"), &decrypted],
        &["--keyring", keyring.to_str().unwrap()],
    );
    assert!(dec.status.success(), "{}", String::from_utf8_lossy(&dec.stderr));

    let want = count_packets(input);
    assert!(want.video > 100 && want.audio > 150, "{want:?}");
    assert_eq!(count_frames(&decrypted), want, "decoded frames of {}", input.display());
    assert_eq!(count_packets(&decrypted), want, "packets of {}", input.display());
    // The video decodes to the same pictures ffmpeg decodes from the source.
    assert_eq!(count_frames(&decrypted).video, count_frames(input).video);
    assert_eq!(ffmpeg_errors(&decrypted), "", "{}", input.display());
    let playlist = std::fs::read_to_string(out.join("index.m3u8")).unwrap();
    assert!(playlist.matches("#EXTINF").count() >= 2, "{playlist}");
}

#[test]
fn mp4_baseline_48k_moov_at_end() {
    let dir = tempfile::tempdir().unwrap();
    let input = make_input(dir.path(), "baseline.mp4", "baseline", 0, 48_000, &[]);
    package_and_check(dir.path(), &input);
}

#[test]
fn mp4_main_bframes_44k_faststart() {
    let dir = tempfile::tempdir().unwrap();
    let input = make_input(dir.path(), "main.mp4", "main", 2, 44_100, &["-movflags", "faststart"]);
    package_and_check(dir.path(), &input);
}

#[test]
fn mp4_high_bframes_48k_fragmented() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["-movflags", "frag_keyframe+empty_moov"];
    let input = make_input(dir.path(), "frag.mp4", "high", 3, 48_000, &flags);
    package_and_check(dir.path(), &input);
}

#[test]
fn ts_high_bframes_44k() {
    let dir = tempfile::tempdir().unwrap();
    let input = make_input(dir.path(), "input.ts", "high", 2, 44_100, &[]);
    package_and_check(dir.path(), &input);
}

/// The container is told from the content, not the name.
#[test]
fn misnamed_inputs_are_detected_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let input = make_input(dir.path(), "upload.flv", "main", 2, 48_000, &["-f", "mp4"]);
    package_and_check(dir.path(), &input);
    let input = make_input(dir.path(), "upload.mp4", "main", 0, 44_100, &["-f", "mpegts"]);
    package_and_check(dir.path(), &input);
}

/// Runs `sealcast package` on a bad input: a nonzero exit, `want` in the
/// message, no panic, and no playlist written.
fn assert_refused(dir: &Path, input: &Path, want: &str) {
    let out = dir.join("refused");
    let _ = std::fs::remove_dir_all(&out);
    let result = sealcast(
        &[Path::new("package"), input, &out],
        &keyring_args(&dir.join("keyring.json")),
    );
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success(), "{} was packaged: {stderr}", input.display());
    assert_eq!(result.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains(want), "{}: want {want:?} in {stderr}", input.display());
    assert!(!out.join("index.m3u8").exists());
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Offset of the first box of type `kind` (a plain byte search is enough
/// for ffmpeg's output, where box types do not occur in the sample data
/// before the moov of a faststart file).
fn find_box(bytes: &[u8], kind: &[u8; 4]) -> usize {
    bytes.windows(4).position(|w| w == kind).unwrap() - 4
}

#[test]
fn malformed_mp4_and_ts_inputs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let progressive = std::fs::read(make_input(d, "p.mp4", "main", 2, 48_000, &[])).unwrap();
    let faststart = std::fs::read(make_input(d, "f.mp4", "main", 2, 48_000, &["-movflags", "faststart"])).unwrap();
    let ts = std::fs::read(make_input(d, "t.ts", "main", 2, 48_000, &[])).unwrap();

    // Truncated: the mdat runs past the end (moov never reached), or the
    // moov is there and the samples it lists are not.
    let input = write(d, "cut.mp4", &progressive[..progressive.len() / 2]);
    assert_refused(d, &input, "truncated file (a box runs past its end)");
    let input = write(d, "cut-fast.mp4", &faststart[..faststart.len() * 2 / 3]);
    assert_refused(d, &input, "truncated sample data past the end of the file");
    let moov = find_box(&faststart, b"moov");
    let input = write(d, "cut-moov.mp4", &faststart[..moov + 200]);
    assert_refused(d, &input, "box past the end of the file");

    // Absurd sizes: a moov of 4 GB, a sample count of 2^31 in stsz.
    let mut huge = faststart.clone();
    huge[moov..moov + 4].copy_from_slice(&0xFFFF_FFF0u32.to_be_bytes());
    let input = write(d, "huge-moov.mp4", &huge);
    assert_refused(
        d,
        &input,
        "box 'moov' of 4294967280 bytes exceeds the limit of 67108864 bytes",
    );
    let mut counted = faststart.clone();
    let stsz = find_box(&counted, b"stsz");
    counted[stsz + 16..stsz + 20].copy_from_slice(&0x8000_0000u32.to_be_bytes());
    let input = write(d, "stsz.mp4", &counted);
    assert_refused(d, &input, "truncated stsz");

    // Unknown codecs: MPEG-4 Part 2 video, MP3 audio (in MP4 and in TS).
    let input = d.join("mpeg4.mp4");
    run_ok(
        "ffmpeg",
        &[
            "-nostdin",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=10",
            "-t",
            "1",
            "-c:v",
            "mpeg4",
        ]
        .into_iter()
        .chain([input.to_str().unwrap()])
        .collect::<Vec<_>>(),
    );
    assert_refused(d, &input, "unsupported Video codec: sample entry 'mp4v'");
    for (name, want) in [("mp3.mp4", "MP3 (0x6b)"), ("mp3.ts", "MPEG-TS stream_type 0x03")] {
        let input = d.join(name);
        let args = [
            "-nostdin",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=sample_rate=44100",
            "-t",
            "1",
        ];
        let path = input.to_str().unwrap();
        run_ok("ffmpeg", &[&args[..], &["-c:a", "libmp3lame", path]].concat());
        assert_refused(d, &input, want);
    }

    // A TS whose packet sync is lost is refused; so is noise.
    let mut garbled = ts.clone();
    garbled[188 * 40] = 0x00;
    let input = write(d, "garbled.ts", &garbled);
    assert_refused(d, &input, "transport packet (no 0x47 sync byte)");
    let input = write(d, "noise.bin", &[0x5Au8; 4096]);
    assert_refused(d, &input, "not an FLV, MP4 or MPEG-TS file");
}
