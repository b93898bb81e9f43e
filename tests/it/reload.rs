//! SIGHUP reloads instead of killing: stream definitions and publish keys
//! are taken at once while a running publish goes on, a new master key
//! version from `kms rotate` is loaded (until then its keys are 503 with a
//! log line, not 403), and what cannot change without a restart is named.

use std::path::Path;
use std::time::Duration;

use sealcast::config::Config;
use sealcast::crypto::EncryptionContext;
use sealcast::kms::Kms;
use sealcast::kms::local::LocalKms;

use crate::support::http;
use crate::support::playlist::{self, keyed_segments, until_ended};
use crate::support::process::{
    STOP_LIMIT, parse_running_line, path_str, read_text, spawn_sealcast, start_keyserver, write_private,
};
use crate::support::rtmp::{Fixture, PublishOutcome, Publisher};
use crate::support::server::{DEMO_KEY, OTHER_KEY, TestServer, mint_token};
use crate::support::with_safety_net;

const NEW_DEMO_KEY: &str = "sk_demo_new_0123456789abcdef";
const EXTRA_KEY: &str = "sk_extra_0123456789abcdef";

fn streams(toml: &str) -> Vec<sealcast::config::StreamConfig> {
    Config::from_toml_str(toml).unwrap().streams
}

async fn outcome(server: &TestServer, key: &str) -> PublishOutcome {
    let mut client = Publisher::connect(server.rtmp, "live").await;
    let got = client.request_publish(key).await;
    if got == PublishOutcome::Accepted {
        client.finish().await;
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_takes_streams_and_keys_while_a_publish_goes_on() {
    with_safety_net(async {
        let server = TestServer::start("[hls]\nsegment_duration_secs = 1\nplaylist_window = 30\n").await;
        let fixture = Fixture::load("baseline-aac44k.flv");
        let (first, rest) = fixture.split_at_ms(2000);
        let mut running = Publisher::publish(server.rtmp, DEMO_KEY).await;
        running.send_metadata(&fixture.metadata).await;
        running.send_tags(first).await;

        let mut config = server.config.clone();
        config.streams = streams(&format!(
            "[[streams]]\napp = \"live\"\nname = \"demo\"\nkey = \"{NEW_DEMO_KEY}\"\n\
             [[streams]]\napp = \"live\"\nname = \"extra\"\nkey = \"{EXTRA_KEY}\"\n"
        ));
        let changes = server.reloader.reload(&config).await.unwrap();
        assert_eq!(
            changes,
            [
                "stream live/demo: publish key changed (a publish already running goes on)",
                "stream live/extra added",
                "stream live/other removed",
            ]
        );
        assert_eq!(server.reloader.reload(&config).await.unwrap(), Vec::<String>::new());

        // The publish that was running goes on to its end, every segment listed.
        running.send_tags(rest).await;
        running.finish().await;
        let ended = until_ended(server.http, "/live/demo/index.m3u8").await;
        assert!(keyed_segments(&ended).len() >= 4, "{ended}");

        assert!(matches!(
            outcome(&server, DEMO_KEY).await,
            PublishOutcome::Refused { .. }
        ));
        assert!(matches!(
            outcome(&server, OTHER_KEY).await,
            PublishOutcome::Refused { .. }
        ));
        assert_eq!(outcome(&server, NEW_DEMO_KEY).await, PublishOutcome::Accepted);
        assert_eq!(outcome(&server, EXTRA_KEY).await, PublishOutcome::Accepted);

        // A file that does not resolve changes nothing; a section that needs
        // a restart is named.
        let mut broken = config.clone();
        broken.streams =
            streams("[[streams]]\napp = \"live\"\nname = \"demo\"\nkey_env = \"SEALCAST_TEST_UNSET_KEY\"\n");
        let err = server.reloader.reload(&broken).await.unwrap_err();
        assert_eq!(
            err.problems,
            ["streams[0].key_env SEALCAST_TEST_UNSET_KEY is not set or empty"]
        );
        assert_eq!(outcome(&server, EXTRA_KEY).await, PublishOutcome::Accepted);
        let mut hls = config.clone();
        hls.hls.playlist_window = 10;
        assert_eq!(
            server.reloader.reload(&hls).await.unwrap(),
            ["[hls] changed: takes effect after a restart"]
        );
        server.stop().await;
    })
    .await;
}

/// Polls a log file until it holds `needle`.
async fn log_shows(log: &Path, needle: &str) {
    playlist::wait_for(
        &format!("{needle:?} in {}", log.display()),
        playlist::POLL_LIMIT,
        || async { read_text(log).contains(needle).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyserver_answers_503_for_an_unknown_master_version_until_sighup() {
    with_safety_net(async {
        let dir = tempfile::tempdir().unwrap();
        let keyring = dir.path().join("keyring.json");
        LocalKms::open_or_create(&keyring).unwrap();
        let secret_file = dir.path().join("token_secret");
        write_private(&secret_file, "reload-test-secret-0123456789-0123456789");
        let config = dir.path().join("keyserver.toml");
        std::fs::write(
            &config,
            format!(
                "[http]\nlisten = \"127.0.0.1:0\"\n[kms]\nkeyring = {:?}\n[auth]\ntoken_secret_file = {:?}\n",
                path_str(&keyring),
                path_str(&secret_file)
            ),
        )
        .unwrap();
        let log = dir.path().join("keyserver.log");
        let (mut process, addr) = start_keyserver(&config, &log);

        // `kms rotate` by another process, and a key wrapped under version 2.
        assert_eq!(LocalKms::rotate(&keyring).unwrap(), 2);
        let ctx = EncryptionContext::new("live/demo", &sealcast::crypto::KeyId::new("k1").unwrap());
        let (key, wrapped) = LocalKms::open(&keyring).unwrap().generate_data_key(&ctx).await.unwrap();
        let secret = sealcast::auth::Secret::new(b"reload-test-secret-0123456789-0123456789".to_vec());
        let token = mint_token(&secret, "live/demo", 3600);
        let uri = format!("/keys/live/demo/k1?edk={}&token={token}", wrapped.to_base64url());

        let before = http::get(addr, &uri).await;
        assert_eq!(before.status, 503);
        log_shows(&log, "unknown master key version 2: reload (SIGHUP) or restart").await;

        process.signal("HUP");
        log_shows(&log, "reload: keyring").await;
        let after = http::get(addr, &uri).await;
        assert_eq!(after.status, 200);
        assert_eq!(after.body, key.as_bytes());
        assert!(process.try_status().is_none(), "SIGHUP ended the key server");
        assert!(process.terminate(STOP_LIMIT).unwrap().success());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_survives_sighup_and_logs_what_changed() {
    with_safety_net(async {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("sealcast.toml");
        let base = "[rtmp]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n".to_owned();
        std::fs::write(&config, &base).unwrap();
        let log = dir.path().join("serve.log");
        let (mut process, lines) = spawn_sealcast(&["serve", "--config", path_str(&config)], dir.path(), &log);
        let banner = lines.recv_timeout(Duration::from_secs(60)).unwrap();
        let (_, http_addr) = parse_running_line(&banner).unwrap_or_else(|| panic!("banner {banner:?}"));

        process.signal("HUP");
        log_shows(&log, "reload: nothing changed").await;
        assert_eq!(http::get(http_addr, "/healthz").await.status, 200);

        std::fs::write(
            &config,
            format!("{base}[[streams]]\napp = \"live\"\nname = \"cam\"\nkey = \"{EXTRA_KEY}\"\n"),
        )
        .unwrap();
        process.signal("HUP");
        log_shows(&log, "reload: stream live/cam added").await;
        log_shows(&log, "reload: stream live/demo removed").await;

        std::fs::write(&config, format!("{base}[hls]\nplaylist_window = 1\n")).unwrap();
        process.signal("HUP");
        log_shows(
            &log,
            "reload failed, the running configuration stays: hls.playlist_window",
        )
        .await;
        assert!(process.try_status().is_none(), "SIGHUP ended the server");
        assert!(process.terminate(STOP_LIMIT).unwrap().success(), "{}", read_text(&log));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_changes_the_log_level_of_the_config() {
    use std::process::{Command, Stdio};
    with_safety_net(async {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("sealcast.toml");
        let base = "[rtmp]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n";
        std::fs::write(&config, format!("{base}[log]\nlevel = \"warn\"\n")).unwrap();
        let log = dir.path().join("serve.log");
        let out = dir.path().join("serve.out");
        let mut process = crate::support::process::Proc::spawn(
            "sealcast serve",
            Command::new(crate::support::process::SEALCAST)
                .args(["serve", "--config", path_str(&config)])
                .current_dir(dir.path())
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&out).unwrap())
                .stderr(std::fs::File::create(&log).unwrap()),
        );
        log_shows(&out, "more tokens: sealcast token").await;
        assert!(
            !read_text(&log).contains(" INFO "),
            "info lines at level warn:\n{}",
            read_text(&log)
        );

        std::fs::write(&config, format!("{base}[log]\nlevel = \"debug\"\n")).unwrap();
        process.signal("HUP");
        log_shows(&log, "reload: log level debug (was warn)").await;
        assert!(process.terminate(STOP_LIMIT).unwrap().success(), "{}", read_text(&log));
    })
    .await;
}
