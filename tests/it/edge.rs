//! `sealcast edge` in front of the S3 backend (moto's server): an ingest
//! node stores a stream, and two stateless edges serve it from the bucket
//! with nothing shared but the configuration. ffmpeg plays through one edge;
//! playlists are personalized per viewer (the canonical one carries no
//! credential); a key URI handed out by one edge is answered by the other;
//! segments answer `Range`; bad tokens and unknown streams are refused; the
//! watch page is served as on `serve`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::s3_storage::{S3Server, TOKEN_SECRET, serve, stored_playlist_ended, write_config};
use crate::support::http;
use crate::support::kms::{FPS, fetch_key, finished, play, publish};
use crate::support::playlist::keyed_segments;
use crate::support::process::Proc;
use crate::support::server::{DEMO_KEY, mint_token};
use crate::support::{count_frames, with_safety_net};

/// `sealcast edge --config FILE` with the S3 credentials in its environment;
/// its address from the banner.
pub(crate) fn start_edge(config: &Path, s3: &S3Server, label: &str) -> (Proc, SocketAddr) {
    use std::io::BufRead as _;
    let log = config.with_file_name(format!("{label}.log"));
    let mut edge = Proc::spawn(
        "sealcast edge",
        Command::new(env!("CARGO_BIN_EXE_sealcast"))
            .args(["edge", "--config"])
            .arg(config)
            .env("AWS_ACCESS_KEY_ID", s3.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", s3.secret_access_key)
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env("RUST_LOG", "sealcast=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    let mut banner = String::new();
    std::io::BufReader::new(edge.child.stdout.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    let addr = banner
        .trim()
        .strip_prefix("sealcast edge listening on http://")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "banner {banner:?}; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
    (edge, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_edges_serve_a_stored_stream_from_the_bucket() {
    with_safety_net(async {
        let s3 = S3Server::moto().await;
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &s3.endpoint(), crate::s3_storage::BUCKET, 30);
        let (_ingest, rtmp, _) = serve(&config, (s3.access_key_id, s3.secret_access_key)).unwrap();
        let seconds = 8;
        finished(publish(rtmp, DEMO_KEY, seconds, true)).await;
        let canonical = stored_playlist_ended(&s3.client()).await;

        let (_edge1, edge1) = start_edge(&config, &s3, "edge1");
        let (_edge2, edge2) = start_edge(&config, &s3, "edge2");
        let secret = sealcast::auth::Secret::new(TOKEN_SECRET.as_bytes().to_vec());
        let token = mint_token(&secret, "live/demo", 3600);

        // Without a credential: the canonical playlist, cacheable.
        let plain = http::get(edge1, "/live/demo/index.m3u8").await;
        assert_eq!(plain.status, 200);
        assert_eq!(plain.text(), canonical);
        assert_eq!(plain.header("cache-control"), Some("no-cache"));
        // With a token: written into every key URI, never cached.
        let personal = http::get(edge1, &format!("/live/demo/index.m3u8?token={token}")).await;
        assert_eq!(personal.status, 200);
        assert_eq!(personal.header("cache-control"), Some("private, no-store"));
        let keyed = keyed_segments(&personal.text());
        assert!(!keyed.is_empty() && keyed.iter().all(|s| s.uri.ends_with(&format!("&token={token}"))));
        // Refused: a bad token, another stream's token, an unknown stream.
        let other = mint_token(&secret, "live/other", 3600);
        for (path, want) in [
            ("/live/demo/index.m3u8?token=nope".to_owned(), 403),
            (format!("/live/demo/index.m3u8?token={other}"), 403),
            ("/live/nosuch/index.m3u8".to_owned(), 404),
            ("/live/demo/nosuch-1.ts".to_owned(), 404),
            ("/live/demo/secrets.txt".to_owned(), 404),
        ] {
            assert_eq!(http::get(edge2, &path).await.status, want, "{path}");
        }

        // The watch page, as on `serve`: the token checked; no operator page.
        let page = http::get(edge1, &format!("/watch/live/demo?token={token}")).await;
        assert_eq!(page.status, 200);
        assert!(page.text().contains("index.m3u8"), "{}", page.text());
        assert_eq!(http::get(edge1, "/watch/live/demo").await.status, 401);
        assert_eq!(
            http::get(edge1, &format!("/watch/live/demo?token={other}"))
                .await
                .status,
            403
        );
        assert_eq!(http::get(edge1, "/").await.status, 404);
        let hlsjs = http::get(edge1, "/static/hls.js@1.7.4/hls.min.js").await;
        assert_eq!(hlsjs.status, 200);

        // A key URI from edge 1's playlist is answered by edge 2.
        for segment in keyed_segments(&canonical).iter().take(2) {
            let (status, key, _) = fetch_key(edge2, &segment.uri, &token).await;
            assert_eq!((status, key.len()), (200, 16), "key of {}", segment.segment);
        }
        // Segments: immutable, and a Range answered with 206.
        let first = &keyed[0].segment;
        let whole = http::get(edge2, &format!("/live/demo/{first}")).await;
        assert_eq!(whole.status, 200);
        assert_eq!(whole.header("cache-control"), Some("public, max-age=86400, immutable"));
        let part = http::get_with(edge2, &format!("/live/demo/{first}"), &[("Range", "bytes=16-47")]).await;
        assert_eq!(part.status, 206);
        assert_eq!(part.body, whole.body[16..48]);

        // ffmpeg plays the whole stream through edge 1.
        let played = dir.path().join("played.ts");
        play(edge1, "live/demo", &token, &played).await;
        let frames = count_frames(&played);
        let pushed = u64::from(seconds * FPS);
        assert!(
            frames.video * 100 >= pushed * 95,
            "played {} of {pushed} video frames",
            frames.video
        );
    })
    .await;
}
