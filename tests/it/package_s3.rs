//! `sealcast package INPUT s3://BUCKET/PREFIX/` against moto's S3 server:
//! the package lands in the bucket (segments as they are made, the playlist
//! last), plays in ffmpeg straight from the bucket with keys from the
//! server's key endpoint (a bearer token), decrypts with `sealcast decrypt`
//! to exactly the input's frames, and nothing in the bucket is plaintext or
//! a data key. A prefix holding an earlier package is refused without
//! `--replace`, and one holding anything else is refused either way.

use std::path::Path;
use std::process::{Command, Output};

use futures_util::TryStreamExt as _;
use object_store::{ObjectStore as _, ObjectStoreExt as _};

use crate::s3_storage::{BUCKET, S3Server, has_ts_run};
use crate::support::playlist::keyed_segments;
use crate::support::process::{Player, path_str};
use crate::support::server::{TestServer, mint_token};
use crate::support::{contains, count_frames, fixture, with_safety_net};

const INPUT: &str = "high-bframes-aac48k.flv";
const URL: &str = "s3://sealcast-media/vod/talk/";

/// `sealcast package INPUT URL --config CONFIG ...` with moto's credentials.
fn package(s3: &S3Server, config: &Path, key_uri_base: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sealcast"))
        .arg("package")
        .arg(fixture(INPUT))
        .arg(URL)
        .arg("--config")
        .arg(config)
        .args([
            "--name",
            "vod/talk",
            "--segment-duration-secs",
            "2",
            "--key-uri-base",
            key_uri_base,
        ])
        .args(extra)
        .env("AWS_ACCESS_KEY_ID", s3.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", s3.secret_access_key)
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap()
}

/// Keys of every object in the bucket.
async fn keys(s3: &S3Server) -> Vec<String> {
    s3.client()
        .list(None)
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn package_into_a_bucket_plays_decrypts_and_holds_only_ciphertext() {
    with_safety_net(async {
        let s3 = S3Server::moto().await;
        // The key endpoint, and the keyring the package's keys are wrapped with.
        let server = TestServer::start("").await;
        let keyring = server.data_dir().join("keyring.json");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("package.toml");
        std::fs::write(
            &config,
            format!(
                "[kms]\nkeyring = \"{}\"\n[storage.s3]\nbucket = \"not-this-one\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\n",
                keyring.display(),
                s3.endpoint()
            ),
        )
        .unwrap();
        let key_base = format!("http://{}", server.http);
        let out = package(&s3, &config, &key_base, &[]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("into s3://sealcast-media/vod/talk/index.m3u8"), "{stdout}");
        // stderr is not a terminal here: no progress bar (it redraws with \r).
        assert!(!out.stderr.contains(&b'\r'), "{}", String::from_utf8_lossy(&out.stderr));

        // In the bucket: the playlist and every segment it lists, nothing else.
        let store = s3.client();
        let get = |key: String| {
            let store = store.clone();
            async move {
                let path = object_store::path::Path::from(key);
                store.get(&path).await.unwrap().bytes().await.unwrap().to_vec()
            }
        };
        let text = String::from_utf8(get("vod/talk/index.m3u8".into()).await).unwrap();
        let listed = keyed_segments(&text);
        let mut want: Vec<String> = listed.iter().map(|k| format!("vod/talk/{}", k.segment)).collect();
        want.push("vod/talk/index.m3u8".into());
        want.sort();
        let mut have = keys(&s3).await;
        have.sort();
        assert_eq!(have, want);

        // Ciphertext only: no TS packet run, no data key (fetched with a token).
        let token = mint_token(&server.secret, "vod/talk", 600);
        let bearer = format!("Bearer {token}");
        let mut data_keys = Vec::new();
        for keyed in &listed {
            let path = keyed.uri.clone();
            let got = crate::support::http::get_with(server.http, &path, &[("Authorization", bearer.as_str())]).await;
            assert_eq!((got.status, got.body.len()), (200, 16), "{path}");
            data_keys.push(got.body);
        }
        let plain_dir = dir.path().join("copy");
        std::fs::create_dir_all(&plain_dir).unwrap();
        for key in &have {
            let bytes = get(key.clone()).await;
            assert!(!has_ts_run(&bytes), "{key} is plaintext TS");
            for data_key in &data_keys {
                assert!(!contains(&bytes, data_key), "{key} holds a data key");
            }
            std::fs::write(plain_dir.join(key.rsplit('/').next().unwrap()), &bytes).unwrap();
        }

        // ffmpeg plays it from the bucket, keys from the server with the bearer token.
        let want = count_frames(&fixture(INPUT));
        let url = format!("{}/{BUCKET}/vod/talk/index.m3u8", s3.endpoint());
        let player = Player::start_with_headers(&url, "bucket", dir.path(), &format!("Authorization: {bearer}\r\n"));
        let played = tokio::task::spawn_blocking(move || player.finish(std::time::Duration::from_secs(60)))
            .await
            .unwrap();
        assert!(played.status.success() && played.stderr.is_empty(), "{played:?}");
        assert_eq!((played.video, played.audio), (want.video, want.audio), "{played:?}");

        // sealcast decrypt of a copy: exactly the input's frames.
        let decrypted = dir.path().join("decrypted.ts");
        let dec = Command::new(env!("CARGO_BIN_EXE_sealcast"))
            .arg("decrypt")
            .arg(plain_dir.join("index.m3u8"))
            .arg(&decrypted)
            .args(["--keyring", path_str(&keyring)])
            .output()
            .unwrap();
        assert!(dec.status.success(), "{}", String::from_utf8_lossy(&dec.stderr));
        assert_eq!(count_frames(&decrypted), want);

        // Again into the same prefix: refused, then replaced with --replace.
        let again = package(&s3, &config, &key_base, &[]);
        let stderr = String::from_utf8_lossy(&again.stderr);
        assert_eq!(again.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("holds an earlier package"), "{stderr}");
        let replaced = package(&s3, &config, &key_base, &["--replace"]);
        assert!(replaced.status.success(), "{}", String::from_utf8_lossy(&replaced.stderr));
        let text = String::from_utf8(get("vod/talk/index.m3u8".into()).await).unwrap();
        assert_eq!(keys(&s3).await.len(), keyed_segments(&text).len() + 1);

        // Someone else's object under the prefix: never overwritten or removed.
        let theirs = object_store::path::Path::from("vod/talk/notes.txt");
        store.put(&theirs, b"mine".to_vec().into()).await.unwrap();
        let refused = package(&s3, &config, &key_base, &["--replace"]);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("holds objects sealcast package did not write (notes.txt)"), "{stderr}");
        server.stop().await;
    })
    .await;
}
