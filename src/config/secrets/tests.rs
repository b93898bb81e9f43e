//! Secrets from env vars and files, and generated ones.

use super::*;

/// A deterministic RNG for tests: 0, 1, 2, ...
fn counting_rng(dest: &mut [u8]) -> io::Result<()> {
    for (b, i) in dest.iter_mut().zip(0u8..) {
        *b = i;
    }
    Ok(())
}

fn in_dir(dir: &Path, extra: &str) -> Config {
    let text = format!("[storage]\ndata_dir = {:?}\n{extra}", dir.display().to_string());
    Config::from_toml_str(&text).unwrap()
}

fn no_env(_: &str) -> Option<OsString> {
    None
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn generated_token_secret_is_private_and_stable() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let c = in_dir(&data_dir, "");
    let first = c.resolve_token_secret().unwrap();
    let path = data_dir.join("token_secret");
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600);
    assert_eq!(first.len(), 43);
    let on_disk = fs::read(&path).unwrap();
    assert_eq!(on_disk, [first.expose(), b"\n"].concat());
    let second = c.resolve_token_secret().unwrap();
    assert_eq!(first, second);
    // Only the secret remains: no staging files.
    let names: Vec<_> = fs::read_dir(&data_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![OsString::from("token_secret")]);
}

#[test]
fn generated_secret_uses_the_rng() {
    let dir = tempfile::tempdir().unwrap();
    let c = in_dir(dir.path(), "");
    let secret = c.resolve_token_secret_with(&no_env, Some(&counting_rng)).unwrap();
    let want: Vec<u8> = (0u8..32).collect();
    assert_eq!(secret.expose(), URL_SAFE_NO_PAD.encode(want).as_bytes());
}

#[test]
fn token_secret_from_env() {
    let c = Config::from_toml_str("[auth]\ntoken_secret_env = \"TS\"\n").unwrap();
    let long = "x".repeat(32);
    let env = |name: &str| (name == "TS").then(|| OsString::from(&long));
    let secret = c.resolve_token_secret_with(&env, Some(&os_random)).unwrap();
    assert_eq!(secret.expose(), long.as_bytes());

    let cases = [
        (
            None,
            "auth.token_secret_env: environment variable TS is not set or empty",
        ),
        (
            Some(""),
            "auth.token_secret_env: environment variable TS is not set or empty",
        ),
        (
            Some("0123456789012345678901234567890"),
            "auth.token_secret_env: environment variable TS holds 31 bytes; a token secret needs at least 32",
        ),
    ];
    for (value, want) in cases {
        let env = |_: &str| value.map(OsString::from);
        let err = c.resolve_token_secret_with(&env, Some(&os_random)).unwrap_err();
        assert_eq!(err.problems, vec![want.to_string()], "{value:?}");
    }
}

#[test]
fn token_secret_from_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ts");
    let c = in_dir(
        &dir.path().join("data"),
        &format!("[auth]\ntoken_secret_file = {:?}\n", path.display().to_string()),
    );
    fs::write(&path, "0123456789abcdef0123456789abcdef\r\n\n").unwrap();
    private(&path);
    let secret = c.resolve_token_secret_with(&no_env, Some(&os_random)).unwrap();
    assert_eq!(secret.expose(), b"0123456789abcdef0123456789abcdef");
    // Nothing is generated when a file is named.
    assert!(!dir.path().join("data").exists());

    fs::write(&path, "short\n").unwrap();
    let err = c.resolve_token_secret_with(&no_env, Some(&os_random)).unwrap_err();
    assert_eq!(
        err.problems,
        vec![format!(
            "auth.token_secret_file {} holds 5 bytes; a token secret needs at least 32",
            path.display()
        )]
    );
    fs::remove_file(&path).unwrap();
    let err = c.resolve_token_secret_with(&no_env, Some(&os_random)).unwrap_err();
    assert!(
        err.problems[0].starts_with(&format!("auth.token_secret_file {}: cannot read: ", path.display())),
        "{err}"
    );
}

#[test]
fn default_stream_key_is_generated_private_and_stable() {
    let dir = tempfile::tempdir().unwrap();
    let c = in_dir(dir.path(), "");
    let first = c.resolve_streams().unwrap();
    assert_eq!(first.len(), 1);
    let s = &first[0];
    let path = dir.path().join("publish_keys/live.demo.key");
    assert_eq!((s.app.as_str(), s.name.as_str()), ("live", "demo"));
    assert_eq!(s.path(), "live/demo");
    assert_eq!(s.key_origin, KeyOrigin::Generated(path.clone()));
    let key = s.publish_key.expose_str().unwrap();
    assert!(key.starts_with("sk_") && key.len() == 46, "{key}");
    assert_eq!(check_publish_key(key.as_bytes()), Ok(()));
    #[cfg(unix)]
    {
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("publish_keys")), 0o700);
    }
    assert!(s.generated_now, "the first call generated it");
    let again = c.resolve_streams().unwrap();
    assert_eq!(again[0].publish_key, s.publish_key);
    assert!(!again[0].generated_now, "the second call read it");
}

#[test]
fn configured_streams_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("b.key");
    fs::write(&key_file, "sk_from_file_0123456789\n").unwrap();
    private(&key_file);
    let data_dir = dir.path().join("data");
    let text = format!(
        "[storage]\ndata_dir = {:?}\n\
         [[streams]]\napp = \"live\"\nname = \"a\"\nkey = \"sk_inline_0123456789\"\n\
         [[streams]]\napp = \"live\"\nname = \"b\"\nkey_file = {:?}\n\
         [[streams]]\napp = \"live\"\nname = \"c\"\nkey_env = \"KEY_C\"\n",
        data_dir.display().to_string(),
        key_file.display().to_string()
    );
    let c = Config::from_toml_str(&text).unwrap();
    let env = |name: &str| (name == "KEY_C").then(|| OsString::from("sk_from_env_0123456789"));
    let got = c.resolve_streams_with(&env, &os_random).unwrap();
    let summary: Vec<_> = got
        .iter()
        .map(|s| (s.path(), s.publish_key.expose_str().unwrap(), s.key_origin.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("live/a".to_string(), "sk_inline_0123456789", KeyOrigin::Inline),
            (
                "live/b".to_string(),
                "sk_from_file_0123456789",
                KeyOrigin::File(key_file.clone())
            ),
            (
                "live/c".to_string(),
                "sk_from_env_0123456789",
                KeyOrigin::Env("KEY_C".into())
            ),
        ]
    );
    // Nothing is generated for configured streams.
    assert!(!data_dir.exists());

    // Problems across streams are all reported; values are never echoed.
    let same = |name: &str| match name {
        "KEY_C" => Some(OsString::from("sk_inline_0123456789")),
        _ => None,
    };
    let err = c.resolve_streams_with(&same, &os_random).unwrap_err();
    assert_eq!(
        err.problems,
        vec!["streams: live/a and live/c have the same publish key; publish keys must be unique"]
    );
    let bad = |_: &str| Some(OsString::from("has space 0123456789"));
    fs::remove_file(&key_file).unwrap();
    let err = c.resolve_streams_with(&bad, &os_random).unwrap_err();
    assert_eq!(err.problems.len(), 2, "{err}");
    assert!(err.problems[0].starts_with(&format!("streams[1].key_file {}: cannot read: ", key_file.display())));
    assert_eq!(
        err.problems[1],
        "streams[2].key_env KEY_C: the publish key must be 16 to 256 characters from A-Z a-z 0-9 . _ ~ -"
    );
    let err = c.resolve_streams_with(&no_env, &os_random).unwrap_err();
    assert!(
        err.problems
            .contains(&"streams[2].key_env KEY_C is not set or empty".to_string())
    );
}

#[test]
fn concurrent_starts_agree_on_one_secret() {
    let dir = tempfile::tempdir().unwrap();
    let c = in_dir(dir.path(), "");
    let secrets: Vec<Secret> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| c.resolve_token_secret().unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(secrets.len(), 8);
    assert!(secrets.iter().all(|s| *s == secrets[0]));
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn damaged_generated_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let c = in_dir(dir.path(), "");
    fs::write(dir.path().join("token_secret"), "\n").unwrap();
    private(&dir.path().join("token_secret"));
    let err = c.resolve_token_secret().unwrap_err();
    assert_eq!(
        err.problems,
        vec![format!(
            "generated token secret {} holds 0 bytes; a token secret needs at least 32",
            dir.path().join("token_secret").display()
        )]
    );
    let key_path = dir.path().join("publish_keys/live.demo.key");
    fs::create_dir_all(key_path.parent().unwrap()).unwrap();
    fs::write(&key_path, "sk_short").unwrap();
    private(&key_path);
    let err = c.resolve_streams().unwrap_err();
    assert_eq!(
        err.problems,
        vec![format!(
            "generated publish key {}: the publish key must be 16 to 256 characters \
             from A-Z a-z 0-9 . _ ~ -; delete the file to generate a new one",
            key_path.display()
        )]
    );
}

#[test]
fn admin_token_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin");
    fs::write(&file, "admin-token-0123456789\n").unwrap();
    private(&file);
    let from_file = Config::from_toml_str(&format!(
        "[auth]\nadmin_token_file = {:?}\n",
        file.display().to_string()
    ))
    .unwrap();
    let token = from_file.auth.resolve_admin_token_with(&no_env).unwrap().unwrap();
    assert_eq!(token.expose(), b"admin-token-0123456789");
    assert_eq!(Config::default().auth.resolve_admin_token_with(&no_env).unwrap(), None);

    let from_env = Config::from_toml_str("[auth]\nadmin_token_env = \"ADM\"\n").unwrap();
    let cases = [
        (Some("0123456789abcdef"), Ok(Some(b"0123456789abcdef".to_vec()))),
        (
            Some("short"),
            Err("auth.admin_token_env: environment variable ADM holds 5 bytes; at least 16 are needed".to_string()),
        ),
        (
            None,
            Err("auth.admin_token_env: environment variable ADM is not set or empty".to_string()),
        ),
    ];
    for (value, want) in cases {
        let env = |name: &str| (name == "ADM").then(|| value.map(OsString::from)).flatten();
        let got = from_env
            .auth
            .resolve_admin_token_with(&env)
            .map(|t| t.map(|t| t.expose().to_vec()))
            .map_err(|e| e.to_string());
        assert_eq!(got, want, "{value:?}");
    }
}

#[test]
fn tools_read_the_generated_secret_but_never_create_it() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let c = in_dir(&data_dir, "");
    let err = c.read_token_secret().unwrap_err();
    assert_eq!(err.problems.len(), 1);
    let want = format!("no token secret at {}: ", data_dir.join("token_secret").display());
    assert!(err.problems[0].starts_with(&want), "{err}");
    assert!(err.problems[0].contains("--config"), "{err}");
    assert!(!data_dir.exists(), "a tool created the data dir");

    let made = c.resolve_token_secret().unwrap();
    assert_eq!(c.read_token_secret().unwrap(), made);
}

fn private(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

/// A secret file group or others may read is refused, with the fix in the
/// message, for every kind of secret file (issue 18, finding 7).
#[test]
fn secret_files_readable_by_others_are_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("token_secret");
    fs::write(&secret, "a-token-secret-0123456789-0123456789-abcdef\n").unwrap();
    let admin = dir.path().join("admin");
    fs::write(&admin, "admin-token-0123456789\n").unwrap();
    let config = Config::from_toml_str(&format!(
        "[auth]\ntoken_secret_file = {:?}\nadmin_token_file = {:?}\n",
        secret.display().to_string(),
        admin.display().to_string()
    ))
    .unwrap();
    for mode in [0o644, 0o640, 0o604, 0o660] {
        fs::set_permissions(&secret, fs::Permissions::from_mode(mode)).unwrap();
        fs::set_permissions(&admin, fs::Permissions::from_mode(mode)).unwrap();
        let problems = config.resolve_token_secret().unwrap_err().problems;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains(&format!(
                "(mode {mode:03o}); it holds a secret, run `chmod 600 {}`",
                secret.display()
            )),
            "{problems:?}"
        );
        let problems = config.auth.resolve_admin_token_with(&no_env).unwrap_err().problems;
        assert!(
            problems[0].contains(&format!("run `chmod 600 {}`", admin.display())),
            "{problems:?}"
        );
    }
    private(&secret);
    private(&admin);
    assert!(config.resolve_token_secret().is_ok());
    assert!(config.auth.resolve_admin_token_with(&no_env).unwrap().is_some());
}
