//! `sealcast package` and `sealcast decrypt` on the real fixtures, checked with
//! ffprobe and ffmpeg: the output is ciphertext, decrypts to valid TS holding
//! every frame of the input, and no data key is ever written to disk.

use std::path::PathBuf;
use std::process::Command;

use crate::support::{
    contains, count_frames, ffmpeg_errors, fixture, has_ts_sync, probe_streams, probe_ts_streams, walk,
};
use sealcast::crypto::{self, EncryptionContext};
use sealcast::hls::parse_media_playlist;
use sealcast::kms::Kms;
use sealcast::kms::local::LocalKms;
use sealcast::names::KeyUri;

struct Packaged {
    dir: tempfile::TempDir,
    keyring: PathBuf,
    out: PathBuf,
    stdout: String,
}

fn package(fixture_name: &str, extra: &[&str]) -> Packaged {
    let dir = tempfile::tempdir().unwrap();
    let keyring = dir.path().join("kms/keyring.json");
    let out = dir.path().join("out");
    let output = Command::new(env!("CARGO_BIN_EXE_sealcast"))
        .arg("package")
        .arg(fixture(fixture_name))
        .arg(&out)
        .arg("--keyring")
        .arg(&keyring)
        .arg("--new-keyring")
        .args(["--name", "vod/test"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "package failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    Packaged {
        dir,
        keyring,
        out,
        stdout,
    }
}

fn decrypt_all(p: &Packaged) -> PathBuf {
    let decrypted = p.dir.path().join("decrypted.ts");
    let output = Command::new(env!("CARGO_BIN_EXE_sealcast"))
        .arg("decrypt")
        .arg(p.out.join("index.m3u8"))
        .arg(&decrypted)
        .arg("--keyring")
        .arg(&p.keyring)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "decrypt failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    decrypted
}

/// Segment files and their keys, unwrapped through the keyring as a key server would.
fn segments_with_keys(p: &Packaged) -> Vec<(PathBuf, String, [u8; 16], crypto::DataKey)> {
    let kms = LocalKms::open_or_create(&p.keyring).unwrap();
    let text = std::fs::read_to_string(p.out.join("index.m3u8")).unwrap();
    let playlist = parse_media_playlist(&text).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    playlist
        .segments
        .iter()
        .map(|s| {
            let tag = s.key.clone().expect("every segment is encrypted");
            let uri = KeyUri::parse(&tag.uri).unwrap();
            let ctx = EncryptionContext::new(&uri.stream.to_string(), &uri.key_id);
            let key = runtime.block_on(kms.decrypt(&uri.wrapped, &ctx)).unwrap();
            (p.out.join(&s.uri), tag.uri, tag.iv, key)
        })
        .collect()
}

fn check_fixture(name: &str, video: bool, audio: bool) {
    let p = package(name, &[]);
    let text = std::fs::read_to_string(p.out.join("index.m3u8")).unwrap();
    assert!(text.starts_with("#EXTM3U\n"), "{text}");
    assert!(
        text.contains("#EXT-X-PLAYLIST-TYPE:VOD\n") && text.ends_with("#EXT-X-ENDLIST\n"),
        "{text}"
    );

    let segments = segments_with_keys(&p);
    assert!(segments.len() >= 2, "{text}");
    let mut ivs = std::collections::HashSet::new();
    for (path, _, iv, key) in &segments {
        assert!(ivs.insert(*iv), "IV reused in {text}");
        let ciphertext = std::fs::read(path).unwrap();
        assert_eq!(ciphertext.len() % 16, 0);
        assert!(!has_ts_sync(&ciphertext), "{} looks like plaintext TS", path.display());
        assert!(
            probe_ts_streams(path).is_empty(),
            "ffprobe found streams in ciphertext {}",
            path.display()
        );

        // Each segment decrypts on its own and (for video) starts with a keyframe.
        let mut plain = ciphertext.clone();
        crypto::decrypt_segment(key, *iv, &mut plain).unwrap();
        assert!(has_ts_sync(&plain));
        if video {
            let single = p.dir.path().join("single.ts");
            std::fs::write(&single, &plain).unwrap();
            assert_eq!(
                crate::support::first_video_frame_is_key(&single),
                Some(true),
                "{} does not start with a keyframe",
                path.display()
            );
        }
    }

    let decrypted = decrypt_all(&p);
    let mut expected = Vec::new();
    if audio {
        expected.push("aac".to_owned());
    }
    if video {
        expected.push("h264".to_owned());
    }
    assert_eq!(probe_streams(&decrypted), expected);
    assert_eq!(ffmpeg_errors(&decrypted), "", "ffmpeg reported errors decoding {name}");
    let input_counts = count_frames(&fixture(name));
    assert!(input_counts.video > 0 || input_counts.audio > 0);
    assert_eq!(count_frames(&decrypted), input_counts, "frames lost packaging {name}");
    assert!(
        p.stdout.contains(&format!(
            "{} video and {} audio frames",
            input_counts.video, input_counts.audio
        )),
        "{}",
        p.stdout
    );

    // No data key reaches disk in any form we can search for.
    let keys: Vec<[u8; 16]> = segments.iter().map(|(_, _, _, k)| *k.as_bytes()).collect();
    for file in walk(p.dir.path()) {
        if file == decrypted {
            continue;
        }
        let bytes = std::fs::read(&file).unwrap();
        for key in &keys {
            assert!(!contains(&bytes, key), "{} holds a data key", file.display());
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            assert!(
                !contains(&bytes, hex.as_bytes()),
                "{} holds a data key in hex",
                file.display()
            );
        }
    }
}

#[test]
fn packages_high_profile_with_b_frames() {
    check_fixture("high-bframes-aac48k.flv", true, true);
}

#[test]
fn packages_baseline_44k() {
    check_fixture("baseline-aac44k.flv", true, true);
}

#[test]
fn packages_audio_only() {
    check_fixture("audio-only-aac48k.flv", false, true);
}

#[test]
fn packages_video_only() {
    check_fixture("video-only-main.flv", true, false);
}

#[test]
fn keys_change_every_third_segment() {
    let p = package(
        "high-bframes-aac48k.flv",
        &["--segments-per-key", "3", "--segment-duration-secs", "2"],
    );
    let segments = segments_with_keys(&p);
    assert!(segments.len() >= 5, "{} segments", segments.len());
    for (i, window) in segments.windows(2).enumerate() {
        let changed = window[0].1 != window[1].1;
        assert_eq!(changed, (i + 1) % 3 == 0, "key change after segment {i}");
        assert_ne!(window[0].2, window[1].2, "IVs must differ");
    }
    let distinct: std::collections::HashSet<_> = segments.iter().map(|s| s.1.clone()).collect();
    assert_eq!(distinct.len(), segments.len().div_ceil(3));
}

#[test]
fn keyring_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let p = package("audio-only-aac48k.flv", &[]);
    let mode = std::fs::metadata(&p.keyring).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn refuses_a_non_flv_input() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.flv");
    std::fs::write(&bogus, b"not an flv file at all").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sealcast"))
        .arg("package")
        .arg(&bogus)
        .arg(dir.path().join("out"))
        .arg("--keyring")
        .arg(dir.path().join("keyring.json"))
        .arg("--new-keyring")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bogus.flv"), "{stderr}");
    assert!(!dir.path().join("out/index.m3u8").exists());
}

/// The README's VOD flow: package with the server's keyring, serve the files
/// anywhere, and a player that sends a token for the package's name as
/// `Authorization: Bearer` gets every key from the running server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packaged_vod_keys_come_from_the_server_with_a_bearer_token() {
    use crate::support::http;
    use crate::support::server::{TestServer, mint_token};
    crate::support::with_safety_net(async {
        let server = TestServer::start("").await;
        let keyring = server.data_dir().join("keyring.json");
        let out = server.dir.path().join("vod");
        let output = Command::new(env!("CARGO_BIN_EXE_sealcast"))
            .arg("package")
            .arg(fixture("baseline-aac44k.flv"))
            .arg(&out)
            .arg("--keyring")
            .arg(&keyring)
            .args(["--name", "vod/talk", "--key-uri-base"])
            .arg(format!("http://{}", server.http))
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

        let text = std::fs::read_to_string(out.join("index.m3u8")).unwrap();
        let playlist = parse_media_playlist(&text).unwrap();
        assert!(!playlist.segments.is_empty());
        let bearer = format!("Bearer {}", mint_token(&server.secret, "vod/talk", 3600));
        let other = format!("Bearer {}", mint_token(&server.secret, "vod/other", 3600));
        let prefix = format!("http://{}", server.http);
        for segment in &playlist.segments {
            let tag = segment.key.clone().unwrap();
            let path = tag.uri.strip_prefix(&prefix).expect("key URIs point at the server");
            assert_eq!(http::get(server.http, path).await.status, 401, "no token");
            let refused = http::get_with(server.http, path, &[("Authorization", other.as_str())]).await;
            assert_eq!(refused.status, 403, "a token for another name");
            let got = http::get_with(server.http, path, &[("Authorization", bearer.as_str())]).await;
            assert_eq!(got.status, 200, "{path}");
            let key = crypto::DataKey::from_bytes(got.body.as_slice().try_into().unwrap());
            let mut bytes = std::fs::read(out.join(&segment.uri)).unwrap();
            crypto::decrypt_segment(&key, tag.iv, &mut bytes).unwrap();
            assert!(has_ts_sync(&bytes), "{}", segment.uri);
        }
        server.stop().await;
    })
    .await;
}
