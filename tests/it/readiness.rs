//! `/readyz` beside `/healthz`: ready only when the KMS, the replay store and
//! the storage answer; a Redis that refuses the configured password makes a
//! key server not ready (while `/healthz` stays ok), and says so at start.

use crate::support::http;
use crate::support::process::{free_port, path_str, read_text, start_keyserver, start_redis, write_private};
use crate::support::server::TestServer;
use crate::support::with_safety_net;
use sealcast::kms::local::LocalKms;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_is_ready_when_kms_replay_store_and_storage_answer() {
    with_safety_net(async {
        let server = TestServer::start("").await;
        let ready = http::get(server.http, "/readyz").await;
        assert_eq!(ready.status, 200);
        assert_eq!(ready.text(), "ready\nkms: ok\nreplay store: ok\nstorage: ok\n");
        server.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyserver_with_a_wrong_redis_password_is_not_ready() {
    with_safety_net(async {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let _redis = start_redis(port, &["--requirepass", "right-password"]).await;
        let keyring = dir.path().join("keyring.json");
        LocalKms::open_or_create(&keyring).unwrap();
        let secret = dir.path().join("token_secret");
        write_private(&secret, "readiness-test-secret-0123456789-0123456789");
        let password = dir.path().join("redis_password");
        let config = dir.path().join("keyserver.toml");
        std::fs::write(
            &config,
            format!(
                "[http]\nlisten = \"127.0.0.1:0\"\n[kms]\nkeyring = {:?}\n[auth]\ntoken_secret_file = {:?}\n\
                 [auth.replay]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:{port}\"\npassword_file = {:?}\n",
                path_str(&keyring),
                path_str(&secret),
                path_str(&password),
            ),
        )
        .unwrap();
        for (given, ready) in [("wrong-password", false), ("right-password", true)] {
            write_private(&password, given);
            let log = dir.path().join(format!("keyserver-{given}.log"));
            let (_keyserver, addr) = start_keyserver(&config, &log);
            assert_eq!(
                http::get(addr, "/healthz").await.status,
                200,
                "liveness is not readiness"
            );
            let got = http::get(addr, "/readyz").await;
            if ready {
                assert_eq!(
                    (got.status, got.text()),
                    (200, "ready\nkms: ok\nreplay store: ok\n".to_owned())
                );
            } else {
                assert_eq!(
                    (got.status, got.text()),
                    (503, "not ready\nkms: ok\nreplay store: not ready\n".to_owned())
                );
                crate::support::playlist::wait_for(
                    "the start check in the log",
                    crate::support::playlist::POLL_LIMIT,
                    || async {
                        read_text(&log)
                            .contains("replay store is not ready at start")
                            .then_some(())
                    },
                )
                .await;
                assert!(
                    read_text(&log).contains("WRONGPASS")
                        || read_text(&log).contains("invalid")
                        || read_text(&log).contains("authentication failed"),
                    "{}",
                    read_text(&log)
                );
            }
        }
    })
    .await;
}
