//! The tools (`token`, `decrypt`, `package`, `kms`) run as an operator runs
//! them, from another working directory: they use what the server uses (its
//! configuration, its keyring, its token secret) or refuse and say how to
//! point them at it; they never create secrets or keyrings on their own.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::fixture;

const BIN: &str = env!("CARGO_BIN_EXE_sealcast");

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `sealcast ARGS` in `cwd`.
fn sealcast(cwd: &Path, args: &[&str]) -> Run {
    let out = Command::new(BIN).current_dir(cwd).args(args).output().unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Every file and directory under `dir`, recursively.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        all.push(path.clone());
        if path.is_dir() {
            all.extend(tree(&path));
        }
    }
    all.sort();
    all
}

#[test]
fn token_elsewhere_refuses_instead_of_creating_a_secret() {
    let elsewhere = tempfile::tempdir().unwrap();
    let run = sealcast(elsewhere.path(), &["token", "--stream", "live/demo"]);
    assert!(!run.ok, "{}", run.stdout);
    assert!(run.stdout.is_empty(), "printed a token: {}", run.stdout);
    let want = format!(
        "error: no token secret at {}: ",
        elsewhere.path().join("sealcast-data/token_secret").display()
    );
    assert!(run.stderr.starts_with(&want), "{}", run.stderr);
    assert!(run.stderr.contains("--config"), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        tree(elsewhere.path()).is_empty(),
        "created {:?}",
        tree(elsewhere.path())
    );
}

#[test]
fn token_signs_with_the_servers_generated_secret() {
    let server_dir = tempfile::tempdir().unwrap();
    let data = server_dir.path().join("data");
    let config = server_dir.path().join("sealcast.toml");
    std::fs::write(&config, format!("[storage]\ndata_dir = {:?}\n", s(&data))).unwrap();
    // What `serve` does on first start.
    let secret = sealcast::config::Config::load(&config)
        .unwrap()
        .resolve_token_secret()
        .unwrap();

    let elsewhere = tempfile::tempdir().unwrap();
    let run = sealcast(
        elsewhere.path(),
        &["token", "--stream", "live/demo", "--config", s(&config)],
    );
    assert!(run.ok, "{}", run.stderr);
    let claims = sealcast::auth::verify(&secret, run.stdout.trim(), "live/demo", 0).unwrap();
    assert_eq!(claims.stream, "live/demo");
    assert!(tree(elsewhere.path()).is_empty());
}

#[test]
fn decrypt_and_package_elsewhere_refuse_without_the_keyring() {
    let elsewhere = tempfile::tempdir().unwrap();
    let out = elsewhere.path().join("out");
    for args in [
        vec!["decrypt", "index.m3u8", "plain.ts"],
        vec!["package", s(&fixture("baseline-aac44k.flv")), s(&out)],
        vec!["kms", "rotate"],
        vec!["kms", "info"],
    ] {
        let run = sealcast(elsewhere.path(), &args);
        assert!(!run.ok, "{args:?}: {}", run.stdout);
        let want = format!(
            "error: no keyring at {}: ",
            elsewhere.path().join("sealcast-data/keyring.json").display()
        );
        assert!(run.stderr.starts_with(&want), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("--keyring FILE"), "{args:?}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {}", run.stderr);
        assert!(
            tree(elsewhere.path()).is_empty(),
            "{args:?} created {:?}",
            tree(elsewhere.path())
        );
    }
}

#[test]
fn kms_init_creates_once_and_package_uses_the_configured_keyring() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = dir.path().join("keys/keyring.json");
    let config = dir.path().join("sealcast.toml");
    std::fs::write(&config, format!("[kms]\nkeyring = {:?}\n", s(&keyring))).unwrap();

    let run = sealcast(dir.path(), &["kms", "init", "--config", s(&config)]);
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.contains("created keyring"), "{}", run.stdout);
    assert!(keyring.exists());
    let run = sealcast(dir.path(), &["kms", "init", "--config", s(&config)]);
    assert!(!run.ok);
    assert_eq!(
        run.stderr.trim(),
        format!("error: keyring {} exists already", keyring.display())
    );

    let out = dir.path().join("vod");
    let input = fixture("baseline-aac44k.flv");
    let package = |extra: &[&str]| {
        let mut args = vec![
            "package",
            s(&input),
            s(&out),
            "--config",
            s(&config),
            "--segment-duration-secs",
            "2",
        ];
        args.extend_from_slice(extra);
        sealcast(dir.path(), &args)
    };
    let run = package(&[]);
    assert!(run.ok, "{}", run.stderr);
    let first: Vec<_> = tree(&out);
    assert!(first.len() > 2, "{first:?}");

    // Again into the same folder: refused, then replaced with --replace and
    // no segment of the first run left behind.
    let run = package(&[]);
    assert!(!run.ok);
    assert!(run.stderr.contains("pass --replace"), "{}", run.stderr);
    assert_eq!(tree(&out), first);
    let run = package(&["--replace"]);
    assert!(run.ok, "{}", run.stderr);
    let second = tree(&out);
    assert_eq!(second.len(), first.len());
    assert!(second.iter().all(|p| !first.contains(p) || p.ends_with("index.m3u8")));

    // decrypt with the same config finds the keyring; --new-keyring on an
    // existing keyring is refused.
    let plain = dir.path().join("plain.ts");
    let run = sealcast(
        dir.path(),
        &["decrypt", s(&out.join("index.m3u8")), s(&plain), "--config", s(&config)],
    );
    assert!(run.ok, "{}", run.stderr);
    let run = package(&["--replace", "--new-keyring"]);
    assert!(!run.ok);
    assert!(
        run.stderr.contains("exists already; drop --new-keyring"),
        "{}",
        run.stderr
    );
}

#[test]
fn decrypt_with_another_keyring_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("vod");
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.json");
    let run = sealcast(
        dir.path(),
        &[
            "package",
            s(&fixture("baseline-aac44k.flv")),
            s(&out),
            "--keyring",
            s(&a),
            "--new-keyring",
        ],
    );
    assert!(run.ok, "{}", run.stderr);
    assert!(sealcast(dir.path(), &["kms", "init", "--keyring", s(&b)]).ok);
    let run = sealcast(
        dir.path(),
        &["decrypt", s(&out.join("index.m3u8")), "plain.ts", "--keyring", s(&b)],
    );
    assert!(!run.ok);
    assert!(
        run.stderr.contains("is not the one these keys were wrapped with"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}

#[test]
fn startup_errors_are_one_line_per_problem() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sealcast.toml");
    std::fs::write(&config, "[auth]\ntoken_secret_file = \"/nonexistent/secret\"\n").unwrap();
    let run = sealcast(dir.path(), &["serve", "--config", s(&config)]);
    assert!(!run.ok);
    let errors: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors,
        ["error: auth.token_secret_file /nonexistent/secret: cannot read: No such file or directory (os error 2)"],
        "{}",
        run.stderr
    );

    std::fs::write(&config, "[hls]\nplaylist_window = \"six\"\nsegment_duration = 4\n").unwrap();
    let run = sealcast(dir.path(), &["serve", "--config", s(&config)]);
    assert!(!run.ok);
    let shown = config.display();
    assert_eq!(
        run.stderr.lines().collect::<Vec<_>>(),
        [
            format!(
                "error: {shown}: hls.playlist_window: invalid type: string \"six\", expected u32 (line 2, column 19)"
            ),
            format!(
                "error: {shown}: hls.segment_duration: unknown field `segment_duration`, expected one of \
                 `segment_duration_secs`, `playlist_window`, `reconnect_grace_secs`, `dvr_window_secs` (line 3, column 1)"
            ),
        ]
    );
}

#[test]
fn config_check_refuses_what_serve_refuses_and_explains_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let run = sealcast(dir.path(), &["config", "check", s(&empty)]);
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains("serve runs the one stream live/demo"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("ok for sealcast serve"), "{}", run.stdout);
    assert!(
        tree(dir.path()) == [empty.clone()],
        "config check wrote {:?}",
        tree(dir.path())
    );

    // What `serve` refuses: a missing token secret file, an unset key_env.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[auth]\ntoken_secret_file = \"/nonexistent/secret\"\n\
         [[streams]]\napp = \"live\"\nname = \"cam\"\nkey_env = \"SEALCAST_IT_UNSET_KEY\"\n",
    )
    .unwrap();
    let run = sealcast(dir.path(), &["config", "check", s(&bad)]);
    assert!(!run.ok);
    let shown = bad.display();
    assert_eq!(
        run.stderr.lines().collect::<Vec<_>>(),
        [
            format!(
                "error: {shown}: auth.token_secret_file /nonexistent/secret: cannot read: No such file or directory (os error 2)"
            ),
            format!("error: {shown}: streams[0].key_env SEALCAST_IT_UNSET_KEY is not set or empty"),
        ]
    );
    let serve = sealcast(dir.path(), &["serve", "--config", s(&bad)]);
    assert!(!serve.ok);

    // The empty file as a key server's: no secret, no keyring.
    let run = sealcast(dir.path(), &["config", "check", "--role", "keyserver", s(&empty)]);
    assert!(!run.ok);
    assert_eq!(run.stderr.lines().count(), 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("a key server needs auth.token_secret_env"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("kms.keyring: no keyring at"), "{}", run.stderr);
}

#[test]
fn token_validates_like_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("token_secret");
    std::fs::write(&secret, "tools-cli-secret-0123456789-0123456789\n").unwrap();
    crate::support::process::make_private(&secret);
    let config = dir.path().join("sealcast.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\ntoken_secret_file = {:?}\n[[streams]]\napp = \"live\"\nname = \"cam\"\nkey = \"sk_cam_0123456789abcdef\"\n",
            s(&secret)
        ),
    )
    .unwrap();
    let token = |extra: &[&str]| {
        let mut args = vec!["token", "--config", s(&config)];
        args.extend_from_slice(extra);
        sealcast(dir.path(), &args)
    };
    // (arguments, accepted, what stderr says when refused)
    let cases: [(&[&str], bool, &str); 10] = [
        (&["--stream", "live/cam"], true, ""),
        (&["--stream", "live/*"], true, ""),
        (&["--stream", "*"], true, ""),
        (&["--stream", "live"], false, "expected app/name, app/* or *"),
        (&["--stream", "li ve/cam"], false, "expected app/name, app/* or *"),
        (&["--stream", "live/cam/x"], false, "expected app/name, app/* or *"),
        (&["--stream", "live/cam", "--ttl-secs", "0"], false, "--ttl-secs"),
        (
            &["--stream", "live/other"],
            false,
            "matches no stream of the configuration (live/cam)",
        ),
        (
            &["--stream", "other/*"],
            false,
            "matches no stream of the configuration (live/cam)",
        ),
        (&["--stream", "live/other", "--unlisted"], true, ""),
    ];
    for (args, ok, why) in cases {
        let run = token(args);
        assert_eq!(run.ok, ok, "{args:?}: {}", run.stderr);
        if ok {
            assert_eq!(run.stdout.trim().split('.').count(), 3, "{args:?}");
        } else {
            assert!(run.stdout.is_empty(), "{args:?}");
            assert!(run.stderr.contains(why), "{args:?}: {}", run.stderr);
        }
    }
}

/// With a publish hook, streams are created at run time: `sealcast token`
/// mints for any stream name, listed or not.
#[test]
fn token_takes_any_stream_with_a_publish_hook() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("token_secret");
    std::fs::write(&secret, "tools-cli-secret-0123456789-0123456789\n").unwrap();
    crate::support::process::make_private(&secret);
    let config = dir.path().join("sealcast.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\ntoken_secret_file = {:?}\npublish_hook_url = \"http://127.0.0.1:9/publish\"\n\
             publish_hook_secret_env = \"HOOK\"\n[[streams]]\napp = \"live\"\nname = \"cam\"\nkey = \"sk_cam_0123456789abcdef\"\n",
            s(&secret)
        ),
    )
    .unwrap();
    for stream in ["shows/alice", "live/cam", "shows/*"] {
        let run = sealcast(dir.path(), &["token", "--config", s(&config), "--stream", stream]);
        assert!(run.ok, "{stream}: {}", run.stderr);
        assert_eq!(run.stdout.trim().split('.').count(), 3, "{stream}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_push_fails_when_publishers_fail_and_shows_the_servers_reason() {
    use crate::support::server::{DEMO_KEY, TestServer};
    crate::support::with_safety_net(async {
        let server = TestServer::start("").await;
        let url = format!("rtmp://{}/live", server.rtmp);
        let input = fixture("baseline-aac44k.flv");
        let dir = tempfile::tempdir().unwrap();
        let bench = |key: &str| {
            let args = [
                "bench-push",
                "--url",
                &url,
                "--fixture",
                s(&input),
                "-n",
                "1",
                "--key-template",
                key,
                "--duration-secs",
                "1",
                "--ramp-ms",
                "0",
            ];
            let (cwd, args) = (dir.path().to_owned(), args.map(str::to_owned));
            tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                sealcast(&cwd, &args)
            })
        };
        let run = bench("sk_wrong_0123456789abcdef").await.unwrap();
        assert!(!run.ok, "{}", run.stdout);
        assert!(run.stdout.starts_with("bench-push: 1 publisher to "), "{}", run.stdout);
        assert!(
            run.stdout
                .contains("error: refused: NetStream.Publish.Denied: unknown app or stream key"),
            "{}",
            run.stdout
        );
        assert!(run.stderr.contains("error: 1 of 1 publisher failed"), "{}", run.stderr);

        let run = bench(DEMO_KEY).await.unwrap();
        assert!(run.ok, "{}{}", run.stdout, run.stderr);
        assert!(run.stdout.contains("failed=0"), "{}", run.stdout);
        server.stop().await;
    })
    .await;
}
