//! Issue 18's attacks, replayed against the real server over real sockets;
//! each now gets the safe answer.
//!
//! - 1: a forged `Host` (DNS rebinding) gets no operator page and no tokens.
//! - 4: hostile RTMP app names (a newline and a forged log line, terminal
//!   escapes, 60,000 bytes) reach the log escaped and capped, and a wrong-key
//!   flood writes one line per hundred refusals; the key is never logged.
//! - 5: `HEAD` on a key URI does not spend its one-time ticket.
//! - 6: playlists with a viewer's credential are `private, no-store`.
//! - 8: `stream` patterns match whole path segments; minting refuses others.
//! - 9: with `[auth] audience`, the operator page's Watch links play.
//! - 10: wrong admin credentials are all slowed down alike; `exp` beyond
//!   u64 is refused.
//! - 2 and 3: a viewer flooding the key endpoint with random wrapped keys,
//!   repeats of one bad wrapped key and ticket redemptions spends its own
//!   budgets; another viewer of another stream, and ingest publishing
//!   meanwhile, are not affected.
//!
//! The log test of finding 4 runs on a current-thread runtime with a log
//! capture as its thread's subscriber, so it sees its own server's lines and
//! no other test's.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::support::http::{self, Response, raw};
use crate::support::kms::CountingKms;
use crate::support::logs::capture_logs;
use crate::support::rtmp::{Fixture, PublishOutcome, Publisher};
use crate::support::server::{DEMO_KEY, OTHER_KEY, TestServer};
use crate::support::with_safety_net;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use sealcast::config::Config;
use sealcast::server::Server;
use tokio::net::TcpListener;

const FIXTURE: &str = "high-bframes-aac48k.flv";
const ADMIN: &str = "admin-token-for-security-tests-0123";
async fn get_as(addr: SocketAddr, path: &str, host: &str, extra: &str) -> Response {
    raw(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}\r\n"),
        b"",
    )
    .await
}

/// Publishes the fixture to live/demo over RTMP and waits for the ended playlist.
async fn publish_demo(server: &TestServer, token: &str) -> String {
    let fixture = Fixture::load(FIXTURE);
    let mut publisher = Publisher::publish(server.rtmp, DEMO_KEY).await;
    publisher.send_fixture(&fixture).await;
    publisher.finish().await;
    loop {
        let response = http::get(server.http, &format!("/live/demo/index.m3u8?token={token}")).await;
        if response.status == 200 && response.text().contains("#EXT-X-ENDLIST") {
            return response.text();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The key URIs of a playlist, root-relative, one per key.
fn key_uris(playlist: &str) -> Vec<String> {
    crate::support::playlist::distinct_keys(playlist)
        .into_iter()
        .map(|key| key.uri)
        .collect()
}

/// Finding 1: a page that rebinds its own name to 127.0.0.1 sends that name
/// as `Host` (and `Origin`): no operator page, no watch tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_host_gets_no_operator_page() {
    with_safety_net(async {
        let server = TestServer::start("").await;
        let addr = server.http;
        let forged = get_as(addr, "/", "attacker.example:8080", "").await;
        assert_eq!(forged.status, 403);
        assert!(!forged.text().contains("token="), "{}", forged.text());
        assert!(!forged.text().contains("live/demo"), "{}", forged.text());
        let origin = get_as(addr, "/", &addr.to_string(), "Origin: http://attacker.example:8080\r\n").await;
        assert_eq!(origin.status, 403);
        let form = raw(
            addr,
            "POST / HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            b"",
        )
        .await;
        assert_eq!(form.status, 403);

        // The operator on this machine still gets the page, by any loopback name.
        let port = addr.port();
        for host in [addr.to_string(), format!("localhost:{port}"), "127.0.0.1".to_string()] {
            let page = get_as(addr, "/", &host, "").await;
            assert_eq!(page.status, 200, "{host}");
            assert!(page.text().contains("watch/live/demo?token="), "{host}");
        }
        let same_origin = get_as(addr, "/", &addr.to_string(), &format!("Origin: http://{addr}\r\n")).await;
        assert_eq!(same_origin.status, 200);
        server.stop().await;
    })
    .await;
}

/// Findings 5 and 6 with one-time tickets: a HEAD on a key URI spends
/// nothing, and the playlist that carries tickets is `private, no-store`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_does_not_spend_a_ticket() {
    with_safety_net(async {
        let server = TestServer::start_with_config("", |c| c.auth.one_time_key_tickets = true).await;
        let token = server.token("live/demo", 3600);
        publish_demo(&server, &token).await;
        let response = http::get(server.http, &format!("/live/demo/index.m3u8?token={token}")).await;
        assert_eq!(response.header("cache-control"), Some("private, no-store"));
        let uris = key_uris(&response.text());
        assert!(uris[0].contains("&ticket="), "{uris:?}");

        let head = http::request(server.http, "HEAD", &uris[0], &[], b"").await;
        assert_eq!(head.status, 405);
        assert_eq!(head.header("allow"), Some("GET, OPTIONS"));
        let get = http::get(server.http, &uris[0]).await;
        assert_eq!(get.status, 200, "the ticket was not spent by HEAD");
        assert_eq!(get.body.len(), 16);
        assert_eq!(http::get(server.http, &uris[0]).await.status, 403, "still one use");
        let stats = server.keys.stats();
        assert_eq!((stats.tickets_accepted, stats.tickets_replayed), (1, 1), "{stats:?}");
        server.stop().await;
    })
    .await;
}

/// Finding 6 with tokens in key URIs: personal playlists are never stored
/// by a shared cache; the credential-free one stays cacheable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playlists_with_a_credential_are_private() {
    with_safety_net(async {
        let server = TestServer::start("").await;
        let token = server.token("live/demo", 3600);
        publish_demo(&server, &token).await;

        let by_query = http::get(server.http, &format!("/live/demo/index.m3u8?token={token}")).await;
        assert_eq!(by_query.status, 200);
        assert!(by_query.text().contains(&format!("token={token}")));
        assert_eq!(by_query.header("cache-control"), Some("private, no-store"));

        let bearer = format!("Bearer {token}");
        let by_header = http::get_with(server.http, "/live/demo/index.m3u8", &[("Authorization", &bearer)]).await;
        assert_eq!(by_header.status, 200);
        assert!(by_header.text().contains(&format!("token={token}")));
        assert_eq!(by_header.header("cache-control"), Some("private, no-store"));

        let plain = http::get(server.http, "/live/demo/index.m3u8").await;
        assert_eq!(plain.status, 200);
        assert!(!plain.text().contains("token="), "{}", plain.text());
        assert!(plain.text().contains("#EXT-X-KEY:"));
        assert_eq!(plain.header("cache-control"), Some("no-cache"));
        server.stop().await;
    })
    .await;
}

/// A token with exactly these claims, signed with the server's secret (as
/// any JWT library would).
fn sign_claims(server: &TestServer, claims_json: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims_json));
    let key = hmac::Key::new(hmac::HMAC_SHA256, server.secret.expose());
    let tag = hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Findings 8 and 10 (`exp`): prefix patterns and an `exp` past u64 open
/// nothing; `live/*` and `*` still do. Not published: a token that passes
/// gets 404 (no playlist yet), one that does not gets 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_patterns_match_whole_segments_and_exp_must_fit() {
    with_safety_net(async {
        let server = TestServer::start("").await;
        let far = sealcast::clock::now_unix_secs() + 3600;
        // (claims, status for /live/demo/index.m3u8)
        let cases = [
            (format!(r#"{{"exp":{far},"stream":"live*"}}"#), 403),
            (format!(r#"{{"exp":{far},"stream":"live/demo*"}}"#), 403),
            (format!(r#"{{"exp":{far},"stream":"live/d*"}}"#), 403),
            (format!(r#"{{"exp":{far},"stream":"*/demo"}}"#), 403),
            (format!(r#"{{"exp":{far},"stream":"liv/*"}}"#), 403),
            (format!(r#"{{"exp":{far},"stream":"live/*"}}"#), 404),
            (format!(r#"{{"exp":{far},"stream":"*"}}"#), 404),
            (format!(r#"{{"exp":{far},"stream":"live/demo"}}"#), 404),
            (r#"{"exp":1e30,"stream":"live/demo"}"#.to_string(), 403),
            (r#"{"exp":18446744073709551616,"stream":"live/demo"}"#.to_string(), 403),
        ];
        for (claims, want) in cases {
            let token = sign_claims(&server, &claims);
            let got = http::get(server.http, &format!("/live/demo/index.m3u8?token={token}")).await;
            assert_eq!(got.status, want, "{claims}");
        }
        server.stop().await;
    })
    .await;
}

/// Finding 8 at the admin API: only an exact `app/name` is minted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_mints_exact_streams_only() {
    with_safety_net(async {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("admin_token");
        std::fs::write(&file, ADMIN).unwrap();
        crate::support::process::make_private(&file);
        let server = TestServer::start_with_config("", |c| c.auth.admin_token_file = Some(file.clone())).await;
        let bearer = format!("Bearer {ADMIN}");
        let headers = [("Authorization", bearer.as_str()), ("Content-Type", "application/json")];
        for (stream, want) in [
            ("live*", 400),
            ("live/demo*", 400),
            ("live/*", 400),
            ("*", 400),
            ("live/demo", 200),
        ] {
            let body = format!(r#"{{"stream":"{stream}"}}"#);
            let got = http::request(server.http, "POST", "/api/v1/playback", &headers, body.as_bytes()).await;
            assert_eq!(got.status, want, "{stream}: {}", got.text());
        }
        server.stop().await;
    })
    .await;
}

/// Finding 9: with an audience configured, the operator's Watch link opens
/// a watch page that accepts its token, and the token opens the playlist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_links_play_with_an_audience() {
    with_safety_net(async {
        let server = TestServer::start_with_config("", |c| c.auth.audience = Some("sealcast-tv".to_string())).await;
        let page = http::get(server.http, "/").await;
        assert_eq!(page.status, 200);
        let html = page.text();
        let start = html.find("watch/live/demo?token=").expect("a watch link");
        let end = html[start..].find('"').unwrap() + start;
        let link = &html[start..end];
        let token = link.strip_prefix("watch/live/demo?token=").unwrap();

        let watch = http::get(server.http, &format!("/{link}")).await;
        assert_eq!(watch.status, 200, "{}", watch.text());
        assert!(watch.text().contains("player.js"), "the player is loaded");
        publish_demo(&server, token).await;
        let playlist = http::get(server.http, &format!("/live/demo/index.m3u8?token={token}")).await;
        assert_eq!(playlist.status, 200);
        let key = http::get(server.http, &key_uris(&playlist.text())[0]).await;
        assert_eq!((key.status, key.body.len()), (200, 16));
        // A token without the audience is still refused everywhere.
        let plain = server.token("live/demo", 3600);
        assert_eq!(
            http::get(server.http, &format!("/watch/live/demo?token={plain}"))
                .await
                .status,
            403
        );
        server.stop().await;
    })
    .await;
}

/// Finding 10: every kind of wrong admin credential waits out the same
/// per-address delay (counted by the gate, not timed here); a right one,
/// or none at all, does not. A right `?admin=` is redirected off the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_admin_credentials_are_all_slowed_down() {
    with_safety_net(async {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("token_secret");
        std::fs::write(&secret, "test-secret-0123456789-0123456789-abcdef").unwrap();
        crate::support::process::make_private(&secret);
        let admin = dir.path().join("admin_token");
        std::fs::write(&admin, ADMIN).unwrap();
        crate::support::process::make_private(&admin);
        let text = format!(
            "[storage]\ndata_dir = \"{}\"\n[auth]\ntoken_secret_file = \"{}\"\nadmin_token_file = \"{}\"\n{}",
            dir.path().join("data").display(),
            secret.display(),
            admin.display(),
            crate::support::server::streams_toml(),
        );
        let config = Config::from_toml_str(&text).unwrap();
        let server = Server::from_config(&config).unwrap();
        let gate = Arc::clone(server.failed_admin_auth());
        let rtmp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(rtmp, listener, async move {
            let _ = stopped.await;
        }));

        let wrong = [("Authorization", "Bearer wrong-admin-token")];
        let right_value = format!("Bearer {ADMIN}");
        let right = [("Authorization", right_value.as_str())];
        let form_type = [("Content-Type", "application/x-www-form-urlencoded")];
        let forged_cookie = [("Cookie", "sealcast_operator=99999999999.AAAA")];
        // The gate has counted a failure by the time its answer arrives.
        let check = |what: &str, response: &Response, status: u16, failures: u64| {
            assert_eq!(response.status, status, "{what}");
            assert_eq!(gate.failures(), failures, "{what}");
        };
        check("no credential on /", &http::get(addr, "/").await, 401, 0);
        check(
            "no credential on /api",
            &http::get(addr, "/api/v1/streams").await,
            401,
            0,
        );
        check("wrong bearer on /", &http::get_with(addr, "/", &wrong).await, 401, 1);
        let api = http::get_with(addr, "/api/v1/streams", &wrong).await;
        check("wrong bearer on /api", &api, 401, 2);
        check("wrong ?admin=", &http::get(addr, "/?admin=wrong").await, 401, 3);
        let posted = http::request(addr, "POST", "/", &form_type, b"admin=wrong").await;
        check("wrong form", &posted, 401, 4);
        check(
            "forged cookie",
            &http::get_with(addr, "/", &forged_cookie).await,
            401,
            5,
        );
        check("right bearer on /", &http::get_with(addr, "/", &right).await, 200, 5);
        let api = http::get_with(addr, "/api/v1/streams", &right).await;
        check("right bearer on /api", &api, 200, 5);
        let redirect = http::get(addr, &format!("/?admin={ADMIN}")).await;
        check("right ?admin=", &redirect, 303, 5);
        assert_eq!(redirect.header("location"), Some("./"), "the token leaves the URL");
        assert!(redirect.header("set-cookie").is_some());

        let _ = stop.send(());
        task.await.unwrap().unwrap();
    })
    .await;
}

/// Finding 4: hostile app names and a wrong-key flood over real RTMP.
#[tokio::test]
async fn hostile_rtmp_names_are_escaped_and_refusals_throttled_in_the_log() {
    let (_capture, logs) = capture_logs();
    with_safety_net(async {
        let server = TestServer::start("").await;
        const WRONG_KEY: &str = "sk_wrong_key_guess_f00dfeed";
        // Within its first 64 bytes: escapes, a newline and a forged line.
        let forged = "live\x1b[2J\x1b]0;owned\x07\n2026-12-04T05:00:00Z INFO publish accepted stream=live/demo";
        let huge = "a".repeat(60_000);
        let mut attempts = 0;
        for app in [forged.to_string(), huge.clone()] {
            for _ in 0..100 {
                let mut client = Publisher::connect(server.rtmp, &app).await;
                let outcome = client.request_publish(WRONG_KEY).await;
                assert!(matches!(outcome, PublishOutcome::Refused { .. }), "{outcome:?}");
                attempts += 1;
            }
        }
        // One more, so the third line (the 201st refusal) is written.
        let mut client = Publisher::connect(server.rtmp, "live").await;
        assert!(matches!(
            client.request_publish(WRONG_KEY).await,
            PublishOutcome::Refused { .. }
        ));
        attempts += 1;
        assert_eq!(attempts, 201);
        server.stop().await;

        let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
        let refused: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("publish refused: unknown app or stream key"))
            .collect();
        assert_eq!(refused.len(), 3, "one line per 100 refusals:\n{}", refused.join("\n"));
        for (line, count) in refused.iter().zip([1, 101, 201]) {
            assert!(line.contains(&format!("refused_from_address={count}")), "{line}");
        }
        for line in text.lines() {
            assert!(line.len() < 1000, "a {}-byte log line: {}", line.len(), &line[..200]);
            assert!(!line.chars().any(|c| c.is_control()), "a control character in {line:?}");
            assert!(!line.starts_with("2026-12-04T05:00:00"), "a forged line: {line}");
        }
        assert!(!text.contains(WRONG_KEY), "a stream key was logged");
        assert!(
            !text.contains(&"a".repeat(65)),
            "a peer string over 64 bytes was logged"
        );
        // The forged text is there, escaped, on the refused line itself.
        assert!(
            refused[0].contains(r"live\u{1b}[2J\u{1b}]0;owned\u{7}\n2026-12-04T05:00:00Z INFO publish"),
            "{}",
            refused[0]
        );
    })
    .await;
}

/// Findings 2 and 3: one viewer's floods are bounded by its own budgets;
/// a viewer of another stream keeps getting keys, and a publish running
/// during the attack drops nothing and never waits for the KMS in vain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_floods_spend_only_the_attackers_budget() {
    with_safety_net(async {
        let counting: Arc<OnceLock<Arc<CountingKms>>> = Arc::new(OnceLock::new());
        let slot = Arc::clone(&counting);
        let server = TestServer::start_wrapping_kms(
            "[hls]\nsegment_duration_secs = 2\n[encryption]\nsegments_per_key = 1\n",
            move |inner| {
                let kms = Arc::new(CountingKms::new(inner));
                let _ = slot.set(Arc::clone(&kms));
                kms
            },
        )
        .await;
        let kms = Arc::clone(counting.get().unwrap());
        let attacker = server.token("live/demo", 3600);
        let playlist = publish_demo(&server, &attacker).await;
        let key_uri = key_uris(&playlist)[0].clone();
        let key_path = key_uri.split('?').next().unwrap().to_owned();

        // Ingest publishes live/other while the attack runs.
        let fixture = Fixture::load(FIXTURE);
        let rtmp = server.rtmp;
        let ingest = tokio::spawn(async move {
            let mut publisher = Publisher::publish(rtmp, OTHER_KEY).await;
            publisher.send_fixture(&fixture).await;
            publisher.finish().await;
        });

        // The attack of the issue: 40 random 150-byte wrapped keys, 20
        // repeats of one bad one; then random ones until refused.
        let before = kms.decrypted();
        // 150 bytes, distinct per `i`.
        let random_edk = |i: u32| {
            let mut bytes: Vec<u8> = (0..150u32).map(|j| (j.wrapping_mul(40_503) >> 3) as u8).collect();
            bytes[..4].copy_from_slice(&i.to_be_bytes());
            URL_SAFE_NO_PAD.encode(bytes)
        };
        let mut statuses = Vec::new();
        for i in 0..40 {
            let uri = format!("{key_path}?edk={}&token={attacker}", random_edk(i));
            statuses.push(http::get(server.http, &uri).await.status);
        }
        for _ in 0..20 {
            let uri = format!("{key_path}?edk={}&token={attacker}", random_edk(1_000_000));
            statuses.push(http::get(server.http, &uri).await.status);
        }
        assert!(statuses.iter().all(|s| *s == 403), "{statuses:?}");
        let first_attack = kms.decrypted() - before;
        assert_eq!(first_attack, 41, "one decrypt per distinct bad wrapped key");

        let budget = sealcast::keyservice::budget::KMS_MISSES_PER_WINDOW;
        let mut refused = 0;
        for i in 40..budget + 20 {
            let uri = format!("{key_path}?edk={}&token={attacker}", random_edk(i));
            match http::get(server.http, &uri).await.status {
                403 => {}
                429 => refused += 1,
                other => panic!("status {other}"),
            }
        }
        let attack_decrypts = kms.decrypted() - before;
        assert_eq!(
            attack_decrypts,
            u64::from(budget),
            "the token's decrypt budget, no more"
        );
        // 580 more requests, 559 decrypts left in the budget.
        assert_eq!(
            refused,
            (budget + 20 - 40) - (budget - 41),
            "the rest: 429 without a KMS call"
        );

        // Another viewer of another stream gets its key.
        ingest.await.unwrap();
        let viewer = server.token("live/other", 3600);
        let other = loop {
            let response = http::get(server.http, &format!("/live/other/index.m3u8?token={viewer}")).await;
            if response.status == 200 && response.text().contains("#EXT-X-ENDLIST") {
                break response.text();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        for uri in key_uris(&other) {
            let key = http::get(server.http, &uri).await;
            assert_eq!((key.status, key.body.len()), (200, 16), "{uri}");
        }
        let info = server.stream_info("live/other");
        assert!(info.segments >= 4, "{info:?}");
        assert_eq!((info.segments_dropped, info.kms_failures), (0, 0), "{info:?}");
        eprintln!(
            "KMS during the attack: {attack_decrypts} decrypts for {} attack requests; {} data keys generated in all",
            60 + budget + 20 - 40,
            kms.generated()
        );
        server.stop().await;
    })
    .await;
}

/// Finding 2: one viewer redeeming tickets as fast as it can is stopped at
/// its budget, far below the store's size; another viewer of another
/// stream still redeems its tickets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_floods_leave_room_in_the_replay_store() {
    with_safety_net(async {
        let server = TestServer::start_with_config(
            "[hls]\nsegment_duration_secs = 2\n[encryption]\nsegments_per_key = 1\n",
            |c| {
                c.auth.one_time_key_tickets = true;
                c.auth.replay = sealcast::config::ReplayConfig::Memory {
                    max_entries: std::num::NonZeroUsize::new(1000).unwrap(),
                };
            },
        )
        .await;
        let attacker = server.token("live/demo", 3600);
        publish_demo(&server, &attacker).await;
        let budget = u64::from(sealcast::keyservice::budget::TICKET_REDEMPTIONS_PER_WINDOW);
        let (mut accepted, mut too_many) = (0u64, 0u64);
        while too_many < 5 {
            let playlist = http::get(server.http, &format!("/live/demo/index.m3u8?token={attacker}")).await;
            for uri in key_uris(&playlist.text()) {
                match http::get(server.http, &uri).await.status {
                    200 => accepted += 1,
                    429 => too_many += 1,
                    other => panic!("status {other}"),
                }
            }
            assert!(accepted <= budget, "{accepted} redeemed");
        }
        assert_eq!(accepted, budget);

        let fixture = Fixture::load(FIXTURE);
        let mut publisher = Publisher::publish(server.rtmp, OTHER_KEY).await;
        publisher.send_fixture(&fixture).await;
        publisher.finish().await;
        let viewer = server.token("live/other", 3600);
        let other = loop {
            let response = http::get(server.http, &format!("/live/other/index.m3u8?token={viewer}")).await;
            if response.status == 200 && response.text().contains("#EXT-X-ENDLIST") {
                break response.text();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        for uri in key_uris(&other) {
            assert!(uri.contains("&ticket="), "{uri}");
            let key = http::get(server.http, &uri).await;
            assert_eq!((key.status, key.body.len()), (200, 16), "{uri}");
        }
        let stats = server.keys.stats();
        assert_eq!(
            stats.tickets_accepted,
            budget + key_uris(&other).len() as u64,
            "{stats:?}"
        );
        server.stop().await;
    })
    .await;
}

/// Finding 8 at the command line: `sealcast token` mints `*`, `app/*` and
/// `app/name`, and refuses every other pattern before reading any secret.
#[test]
fn token_command_refuses_prefix_patterns() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("token_secret");
    std::fs::write(&secret, "test-secret-0123456789-0123456789-abcdef").unwrap();
    crate::support::process::make_private(&secret);
    let config = dir.path().join("sealcast.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndata_dir = \"{}\"\n[auth]\ntoken_secret_file = \"{}\"\n",
            dir.path().join("data").display(),
            secret.display()
        ),
    )
    .unwrap();
    for (pattern, ok) in [
        ("live/demo", true),
        ("live/*", true),
        ("*", true),
        ("live*", false),
        ("live/demo*", false),
        ("*/demo", false),
        ("live", false),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sealcast"))
            .args(["token", "--stream", pattern, "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(
            out.status.success(),
            ok,
            "{pattern}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if ok {
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim().split('.').count(),
                3,
                "{pattern}"
            );
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("expected app/name, app/* or *"), "{pattern}: {stderr}");
            assert!(out.stdout.is_empty(), "{pattern}");
        }
    }
}
