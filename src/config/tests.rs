//! Parsing and validation: defaults, the example file, exact error texts.

use super::*;

fn problems(text: &str) -> Vec<String> {
    match Config::from_toml_str(text) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems,
    }
}

#[test]
fn empty_file_is_the_default() {
    assert_eq!(Config::from_toml_str(""), Ok(Config::default()));
    assert_eq!(Config::from_toml_str("# nothing\n\n"), Ok(Config::default()));
}

#[test]
fn default_values() {
    let c = Config::default();
    assert_eq!(c.rtmp.listen.to_string(), "127.0.0.1:1935");
    assert_eq!(c.rtmp.max_connections.get(), 1000);
    assert_eq!(c.rtmp.idle_timeout_secs.get(), 30);
    assert_eq!(c.rtmp.max_connections_per_ip.get(), 32);
    assert_eq!(c.rtmp.handshake_timeout_secs.get(), 10);
    assert_eq!(c.rtmp.max_message_bytes, 8_388_608);
    assert_eq!(c.rtmp.max_chunk_size_bytes, 65536);
    assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.http.public_url, None);
    assert_eq!(c.http.public_base(), "");
    assert_eq!(c.http.cors_allowed_origins, vec!["*".to_string()]);
    assert_eq!(c.http.hlsjs_url, DEFAULT_HLSJS_URL);
    assert_eq!(c.http.hlsjs_integrity(), Some(DEFAULT_HLSJS_INTEGRITY));
    assert_eq!(c.storage.data_dir, PathBuf::from("./sealcast-data"));
    assert_eq!(c.hls.segment_duration_secs, 4);
    assert_eq!(c.hls.playlist_window, 6);
    assert_eq!(c.encryption.segments_per_key.get(), 1);
    assert_eq!(
        c.kms,
        KmsConfig::Local {
            keyring: PathBuf::from("./sealcast-data/keyring.json")
        }
    );
    assert_eq!(schema::Kms::default().request_timeout_ms, 2000);
    assert_eq!(c.auth.token_secret_env, None);
    assert_eq!(c.auth.token_secret_file, None);
    assert_eq!(c.auth.audience, None);
    assert!(!c.auth.one_time_key_tickets);
    assert_eq!(c.auth.ticket_ttl_secs, 60);
    assert_eq!(c.auth.offline_ttl_secs, 0, "offline licenses are off by default");
    assert_eq!(
        (c.auth.admin_token_env.as_ref(), c.auth.admin_token_file.as_ref()),
        (None, None)
    );
    assert_eq!(
        (c.auth.key_cache.max_entries.get(), c.auth.key_cache.ttl_secs),
        (10_000, 600)
    );
    assert_eq!(
        c.auth.replay,
        ReplayConfig::Memory {
            max_entries: NonZeroUsize::new(1_000_000).unwrap()
        }
    );
    // The Redis keys' defaults, used once backend = "redis".
    let replay = schema::Replay::default();
    assert_eq!(replay.key_prefix, "sealcast:ticket:");
    assert_eq!((replay.timeout_ms, replay.pool_size), (500, 4));
    assert!(c.streams.is_empty());
    assert_eq!(
        c.generated_token_secret_path(),
        PathBuf::from("./sealcast-data/token_secret")
    );
    assert_eq!(
        c.generated_publish_key_path("live", "demo"),
        PathBuf::from("./sealcast-data/publish_keys/live.demo.key")
    );
}

#[test]
fn defaults_are_valid() {
    // Config::default() relies on it.
    assert!(validate::validate(schema::Document::default()).is_ok());
}

#[test]
fn example_file_parses_and_validates() {
    let text = include_str!("../../sealcast.example.toml");
    let c = Config::from_toml_str(text).unwrap();
    // Every value differs from the default, so a key the parser silently
    // dropped would show up here.
    assert_eq!(c.rtmp.listen.to_string(), "0.0.0.0:1935");
    assert_eq!(c.rtmp.max_connections.get(), 500);
    assert_eq!(c.rtmp.idle_timeout_secs.get(), 20);
    assert_eq!(c.rtmp.max_connections_per_ip.get(), 8);
    assert_eq!(c.rtmp.handshake_timeout_secs.get(), 5);
    assert_eq!(c.rtmp.max_message_bytes, 4_194_304);
    assert_eq!(c.rtmp.max_chunk_size_bytes, 131_072);
    assert_eq!(c.http.listen.to_string(), "[::]:8080");
    assert_eq!(c.http.public_url.as_deref(), Some("https://video.example.com/"));
    assert_eq!(c.http.public_base(), "https://video.example.com");
    assert_eq!(
        c.http.cors_allowed_origins,
        vec!["https://player.example.com".to_string()]
    );
    assert_eq!(
        c.http.hlsjs_url,
        "https://video.example.com/assets/hls.js@1.7.4/hls.min.js"
    );
    assert_eq!(
        c.http.hlsjs_integrity(),
        Some("sha384-p9vgU/7IYJWd3I4STrtqxqR/2cAQlhIX7D/HrTnIMEjjcUox165b7se7sxmm3zDg")
    );
    assert_eq!(c.storage.data_dir, PathBuf::from("/var/lib/sealcast"));
    assert_eq!(
        c.record,
        crate::config::RecordConfig {
            enabled: true,
            retention_days: 7
        }
    );
    assert_eq!(c.record_override("live", "backup"), Some(false));
    assert_eq!(c.record_override("live", "main"), None);
    assert_eq!(c.hls.segment_duration_secs, 6);
    assert_eq!(c.hls.playlist_window, 5);
    assert_eq!(c.encryption.segments_per_key.get(), 10);
    assert_eq!(
        c.kms,
        KmsConfig::Local {
            keyring: PathBuf::from("/etc/sealcast/keyring.json")
        }
    );
    // Keys the typed form drops for the chosen provider or backend are still
    // read from the file (and validated).
    let document: schema::Document = toml::from_str(text).unwrap();
    assert_eq!(document.kms.request_timeout_ms, 3000);
    assert_eq!(document.auth.replay.max_entries, 2_000_000);
    assert_eq!(c.auth.token_secret_env.as_deref(), Some("SEALCAST_TOKEN_SECRET"));
    assert_eq!(c.auth.token_secret_file, None);
    assert_eq!(c.auth.audience.as_deref(), Some("sealcast-viewers"));
    assert!(c.auth.one_time_key_tickets);
    assert_eq!(c.auth.ticket_ttl_secs, 30);
    assert_eq!(c.auth.offline_ttl_secs, 86_400);
    assert_eq!(c.auth.admin_token_env.as_deref(), Some("SEALCAST_ADMIN_TOKEN"));
    assert_eq!(c.auth.admin_token_file, None);
    assert_eq!(
        c.auth.key_cache,
        KeyCacheConfig {
            max_entries: NonZeroUsize::new(50_000).unwrap(),
            ttl_secs: 300
        }
    );
    assert_eq!(
        c.auth.replay,
        ReplayConfig::Redis(RedisReplayConfig {
            url: RedisUrl {
                host: "10.0.0.5".into(),
                port: 6379,
                db: Some(1),
                tls: false,
                sentinel: None,
            },
            key_prefix: "video:ticket:".into(),
            timeout_ms: 250,
            pool_size: NonZeroU32::new(8).unwrap(),
            username: None,
            tls_ca_file: None,
            password_env: Some("SEALCAST_REDIS_PASSWORD".into()),
            password_file: None,
        })
    );
    assert_eq!(
        c.streams,
        vec![
            StreamConfig {
                app: "live".into(),
                name: "main".into(),
                publish_key: PublishKeySource::File("/etc/sealcast/main.key".into()),
                protection: Default::default(),
                record: None,
            },
            StreamConfig {
                app: "live".into(),
                name: "backup".into(),
                publish_key: PublishKeySource::Env("SEALCAST_BACKUP_KEY".into()),
                protection: Default::default(),
                record: Some(false),
            },
        ]
    );
}

#[test]
fn aws_kms_table() {
    let c = Config::from_toml_str(
        "[kms]\nprovider = \"aws\"\nkey_id = \"alias/sealcast\"\nregion = \"eu-west-1\"\n\
         endpoint = \"http://127.0.0.1:4566/\"\nprofile = \"ops\"\nrequest_timeout_ms = 1500\n",
    )
    .unwrap();
    assert_eq!(
        c.kms,
        KmsConfig::Aws(AwsKmsConfig {
            key_id: "alias/sealcast".into(),
            region: Some("eu-west-1".into()),
            endpoint: Some("http://127.0.0.1:4566/".into()),
            profile: Some("ops".into()),
            request_timeout_ms: 1500,
        })
    );
    // Region, endpoint and profile are optional.
    let minimal =
        Config::from_toml_str("[kms]\nprovider = \"aws\"\nkey_id = \"1234abcd-12ab-34cd-56ef-1234567890ab\"\n");
    assert!(minimal.is_ok(), "{minimal:?}");
    for endpoint in ["https://kms.example.com", "http://[::1]:4566", "http://kms:80/"] {
        assert_eq!(validate::check_kms_endpoint(endpoint), Ok(()), "{endpoint}");
    }
    for endpoint in ["kms.example.com", "http://", "http://a/b", "http://a?x", "http://u@a"] {
        assert_eq!(validate::check_kms_endpoint(endpoint), Err(()), "{endpoint}");
    }
}

#[test]
fn unknown_keys_name_the_key() {
    let cases = [
        (
            "[hls]\nsegment_duration = 4\n",
            "hls.segment_duration: unknown field `segment_duration`, expected one of `segment_duration_secs`, `playlist_window`, `reconnect_grace_secs`, `dvr_window_secs` (line 2, column 1)",
        ),
        (
            "listen = \"127.0.0.1:1\"\n",
            "listen: unknown field `listen`, expected one of `rtmp`, `http`, `storage`, `hls`, `encryption`, `kms`, `auth`, `streams`, `metrics`, `webhooks`, `log`, `cluster`, `record` (line 1, column 1)",
        ),
        (
            "[rtmpp]\n",
            "rtmpp: unknown field `rtmpp`, expected one of `rtmp`, `http`, `storage`, `hls`, `encryption`, `kms`, `auth`, `streams`, `metrics`, `webhooks`, `log`, `cluster`, `record` (line 1, column 2)",
        ),
        (
            "hls.playlist = 3\n",
            "hls.playlist: unknown field `playlist`, expected one of `segment_duration_secs`, `playlist_window`, `reconnect_grace_secs`, `dvr_window_secs` (line 1, column 5)",
        ),
        (
            "[[streams]]\napp = \"live\"\nname = \"a\"\nkey_env = \"A\"\n\n[[streams]]\napp = \"live\"\nnmae = \"b\"\n",
            "streams[1].nmae: unknown field `nmae`, expected one of `app`, `name`, `key`, `key_env`, `key_file`, `protection`, `record` (line 8, column 1)",
        ),
    ];
    for (text, want) in cases {
        // The element without a name is a problem of its own, found once
        // the unknown key is set aside.
        let mut want = vec![want.to_string()];
        if text.contains("nmae") {
            want.insert(0, "streams[1]: missing field `name` (line 6, column 1)".to_string());
        }
        assert_eq!(problems(text), want, "{text}");
    }
}

#[test]
fn every_parse_problem_is_listed_in_one_run() {
    let text = "\
[rtmp]
listen = \"localhost:1935\"
max_connections = \"many\"
[hls]
segment_duration = 4
playlist_window = 2
[rtmpp]
a = 1
b = [1,
  2]
[kms]
provider = \"vault\"
[[streams]]
app = \"live\"
name = \"demo\"
colour = \"red\"
key = \"sk_demo_0123456789abcdef\"
";
    assert_eq!(
        problems(text),
        vec![
            "rtmp.listen: invalid value: string \"localhost:1935\", expected an IP address and port such as 127.0.0.1:1935 (line 2, column 10)",
            "rtmp.max_connections: invalid type: string \"many\", expected u32 (line 3, column 19)",
            "hls.segment_duration: unknown field `segment_duration`, expected one of `segment_duration_secs`, `playlist_window`, `reconnect_grace_secs`, `dvr_window_secs` (line 5, column 1)",
            "rtmpp: unknown field `rtmpp`, expected one of `rtmp`, `http`, `storage`, `hls`, `encryption`, `kms`, `auth`, `streams`, `metrics`, `webhooks`, `log`, `cluster`, `record` (line 7, column 2)",
            "kms.provider: unknown variant `vault`, expected `local` or `aws` (line 12, column 12)",
            "streams[0].colour: unknown field `colour`, expected one of `app`, `name`, `key`, `key_env`, `key_file`, `protection`, `record` (line 16, column 1)",
            "hls.playlist_window must be at least 3 (got 2)",
        ]
    );
}

#[test]
fn type_errors_name_the_key() {
    let cases = [
        (
            "[rtmp]\nlisten = \"localhost:1935\"\n",
            "rtmp.listen: invalid value: string \"localhost:1935\", expected an IP address and port such as 127.0.0.1:1935 (line 2, column 10)",
        ),
        (
            "[http]\nlisten = \"127.0.0.1\"\n",
            "http.listen: invalid value: string \"127.0.0.1\", expected an IP address and port such as 127.0.0.1:1935 (line 2, column 10)",
        ),
        (
            "[hls]\nplaylist_window = \"six\"\n",
            "hls.playlist_window: invalid type: string \"six\", expected u32 (line 2, column 19)",
        ),
        (
            "[encryption]\nsegments_per_key = -1\n",
            "encryption.segments_per_key: invalid value: integer `-1`, expected u32 (line 2, column 20)",
        ),
        (
            "[kms]\nprovider = \"vault\"\n",
            "kms.provider: unknown variant `vault`, expected `local` or `aws` (line 2, column 12)",
        ),
        (
            "[[streams]]\napp = \"live\"\n",
            "streams[0]: missing field `name` (line 1, column 1)",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(problems(text), vec![want.to_string()], "{text}");
    }
}

#[test]
fn syntax_error_has_position() {
    assert_eq!(
        problems("[hls]\nplaylist_window = \n"),
        vec![
            "TOML syntax error at line 2, column 19: string values must be quoted, expected literal string".to_string()
        ]
    );
}

#[test]
fn validation_messages() {
    let stream = |extra: &str| format!("[[streams]]\napp = \"live\"\nname = \"demo\"\n{extra}\n");
    let cases: Vec<(String, &str)> = vec![
        (
            "[hls]\nplaylist_window = 2\n".into(),
            "hls.playlist_window must be at least 3 (got 2)",
        ),
        (
            "[hls]\nsegment_duration_secs = 0\n".into(),
            "hls.segment_duration_secs must be between 1 and 30 (got 0)",
        ),
        (
            "[hls]\ndvr_window_secs = 86401\n".into(),
            "hls.dvr_window_secs must be at most 86400 (got 86401)",
        ),
        (
            "[hls]\nsegment_duration_secs = 31\n".into(),
            "hls.segment_duration_secs must be between 1 and 30 (got 31)",
        ),
        (
            "[encryption]\nsegments_per_key = 0\n".into(),
            "encryption.segments_per_key must be at least 1 (got 0)",
        ),
        (
            "[rtmp]\nmax_connections = 0\n".into(),
            "rtmp.max_connections must be at least 1",
        ),
        (
            "[rtmp]\nidle_timeout_secs = 0\n".into(),
            "rtmp.idle_timeout_secs must be at least 1",
        ),
        (
            "[rtmp]\nmax_connections_per_ip = 0\n".into(),
            "rtmp.max_connections_per_ip must be at least 1",
        ),
        (
            "[rtmp]\nhandshake_timeout_secs = 0\n".into(),
            "rtmp.handshake_timeout_secs must be at least 1",
        ),
        (
            "[rtmp]\nmax_message_bytes = 1000\n".into(),
            "rtmp.max_message_bytes must be between 65536 and 16777215 (got 1000)",
        ),
        (
            "[rtmp]\nmax_message_bytes = 16777216\n".into(),
            "rtmp.max_message_bytes must be between 65536 and 16777215 (got 16777216)",
        ),
        (
            "[rtmp]\nmax_chunk_size_bytes = 0\n".into(),
            "rtmp.max_chunk_size_bytes must be between 128 and 2147483647 (got 0)",
        ),
        (
            "[rtmp]\nmax_chunk_size_bytes = 2147483648\n".into(),
            "rtmp.max_chunk_size_bytes must be between 128 and 2147483647 (got 2147483648)",
        ),
        (
            "[http]\nlisten = \"127.0.0.1:1935\"\n".into(),
            "http.listen 127.0.0.1:1935 is the same address as rtmp.listen",
        ),
        (
            "[http]\npublic_url = \"video.example.com\"\n".into(),
            "http.public_url \"video.example.com\" must start with http:// or https://",
        ),
        (
            "[http]\npublic_url = \"https://\"\n".into(),
            "http.public_url \"https://\" has no host",
        ),
        (
            "[http]\npublic_url = \"https://a.example/x?y=1\"\n".into(),
            "http.public_url \"https://a.example/x?y=1\" must not contain a query, fragment or spaces",
        ),
        (
            "[http]\ncors_allowed_origins = [\"*\", \"https://a.example/\"]\n".into(),
            "http.cors_allowed_origins[1] \"https://a.example/\" must be \"*\" or an origin such as \"https://player.example.com\" (no path)",
        ),
        (
            "[storage]\ndata_dir = \"\"\n".into(),
            "storage.data_dir must not be empty",
        ),
        (
            "[kms]\nkeyring = \"\"\n".into(),
            "kms.keyring must not be empty (omit it for the default)",
        ),
        (
            "[kms]\nregion = \"eu-west-1\"\n".into(),
            "kms.region applies only to provider \"aws\"",
        ),
        (
            "[kms]\nprovider = \"aws\"\n".into(),
            "kms.key_id is required when kms.provider is \"aws\" (a key id, key ARN, alias/NAME or alias ARN)",
        ),
        (
            "[kms]\nprovider = \"aws\"\nkey_id = \"alias/x\"\nkeyring = \"/k.json\"\n".into(),
            "kms.keyring applies only to provider \"local\"",
        ),
        (
            "[kms]\nprovider = \"aws\"\nkey_id = \"alias x\"\n".into(),
            "kms.key_id \"alias x\" must be a key id, key ARN, alias/NAME or alias ARN",
        ),
        (
            "[kms]\nprovider = \"aws\"\nkey_id = \"k\"\nregion = \"EU West\"\n".into(),
            "kms.region \"EU West\" must be a region name such as \"eu-west-1\"",
        ),
        (
            "[kms]\nprovider = \"aws\"\nkey_id = \"k\"\nendpoint = \"http://kms.local/v1\"\n".into(),
            "kms.endpoint \"http://kms.local/v1\" must be http://host[:port] or https://host[:port] (no path or query)",
        ),
        (
            "[kms]\nprovider = \"aws\"\nkey_id = \"k\"\nprofile = \"\"\n".into(),
            "kms.profile must not be empty (omit it for the default)",
        ),
        (
            "[kms]\nrequest_timeout_ms = 50\n".into(),
            "kms.request_timeout_ms must be between 100 and 60000 (got 50)",
        ),
        (
            "[auth]\ntoken_secret_env = \"S\"\ntoken_secret_file = \"/s\"\n".into(),
            "auth.token_secret_env and auth.token_secret_file are both set; set at most one",
        ),
        (
            "[auth]\ntoken_secret_env = \"A=B\"\n".into(),
            "auth.token_secret_env \"A=B\" is not a valid environment variable name",
        ),
        (
            "[[streams]]\napp = \"live\"\nname = \"a b\"\nkey_env = \"K\"\n".into(),
            "streams[0].name \"a b\" may only contain A-Z a-z 0-9 _ -",
        ),
        (
            "[[streams]]\napp = \"live/x\"\nname = \"a\"\nkey_env = \"K\"\n".into(),
            "streams[0].app \"live/x\" may only contain A-Z a-z 0-9 _ -",
        ),
        (
            "[[streams]]\napp = \"\"\nname = \"a\"\nkey_env = \"K\"\n".into(),
            "streams[0].app \"\" must be 1 to 64 characters long",
        ),
        (
            format!(
                "[[streams]]\napp = \"live\"\nname = \"{}\"\nkey_env = \"K\"\n",
                "n".repeat(65)
            ),
            "streams[0].name \"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn\" must be 1 to 64 characters long",
        ),
        (
            "[[streams]]\napp = \"keys\"\nname = \"a\"\nkey_env = \"K\"\n".into(),
            "streams[0].app \"keys\" is reserved for sealcast's own URLs",
        ),
        (
            "[[streams]]\napp = \"watch\"\nname = \"a\"\nkey_env = \"K\"\n".into(),
            "streams[0].app \"watch\" is reserved for sealcast's own URLs",
        ),
        (
            "[http]\nhlsjs_url = \"//cdn.example/hls.js\"\n".into(),
            "http.hlsjs_url \"//cdn.example/hls.js\" must start with http:// or https://",
        ),
        (
            "[http]\nhlsjs_url = \"https://cdn.example/hls.js?v=1\"\n".into(),
            "http.hlsjs_url \"https://cdn.example/hls.js?v=1\" must not contain a query, fragment or spaces",
        ),
        (
            "[http]\nhlsjs_url = \"https://cdn.example/a;b.js\"\n".into(),
            "http.hlsjs_url \"https://cdn.example/a;b.js\" must not contain ; , quotes, angle brackets or non-ASCII characters",
        ),
        (
            "[http]\nhlsjs_integrity = \"sha384-abc\"\n".into(),
            "http.hlsjs_integrity \"sha384-abc\" must be \"sha256-\", \"sha384-\" or \"sha512-\" followed by base64, or \"\"",
        ),
        (
            "[http]\nhlsjs_integrity = \"md5-1B2M2Y8AsgTpgAmY7PhCfg==\"\n".into(),
            "http.hlsjs_integrity \"md5-1B2M2Y8AsgTpgAmY7PhCfg==\" must be \"sha256-\", \"sha384-\" or \"sha512-\" followed by base64, or \"\"",
        ),
        (
            stream(""),
            "streams[0] has no publish key: set one of key, key_env, key_file",
        ),
        (
            stream("key = \"sk_0123456789abcdef\"\nkey_env = \"K\""),
            "streams[0] sets key and key_env; set exactly one of key, key_env, key_file",
        ),
        (
            stream("key = \"sk_0123456789abcdef\"\nkey_env = \"K\"\nkey_file = \"/k\""),
            "streams[0] sets key and key_env and key_file; set exactly one of key, key_env, key_file",
        ),
        (
            stream("key = \"short\""),
            "streams[0].key must be 16 to 256 characters from A-Z a-z 0-9 . _ ~ -",
        ),
        (
            stream("key = \"sk_0123456789abcdef/\""),
            "streams[0].key must be 16 to 256 characters from A-Z a-z 0-9 . _ ~ -",
        ),
        (stream("key_file = \"\""), "streams[0].key_file must not be empty"),
    ];
    for (text, want) in &cases {
        assert_eq!(problems(text), vec![want.to_string()], "{text}");
    }
}

#[test]
fn duplicates() {
    let text = "
        [[streams]]
        app = \"live\"
        name = \"a\"
        key = \"sk_0123456789abcdef\"
        [[streams]]
        app = \"live\"
        name = \"a\"
        key_env = \"KEY_A\"
        [[streams]]
        app = \"live\"
        name = \"b\"
        key = \"sk_0123456789abcdef\"
        [[streams]]
        app = \"other\"
        name = \"a\"
        key_env = \"KEY_A\"
        [[streams]]
        app = \"other\"
        name = \"b\"
        key_file = \"/k\"
        [[streams]]
        app = \"other\"
        name = \"c\"
        key_file = \"/k\"
    ";
    assert_eq!(
        problems(text),
        vec![
            "streams[1] duplicates stream live/a of streams[0]",
            "streams[2].key is the same as streams[0].key; publish keys must be unique",
            "streams[3].key_env is the same as streams[1].key_env; publish keys must be unique",
            "streams[5].key_file is the same as streams[4].key_file; publish keys must be unique",
        ]
    );
}

#[test]
fn every_problem_is_listed_together() {
    let text = "
        [hls]
        segment_duration_secs = 40
        playlist_window = 1
        [encryption]
        segments_per_key = 0
        [auth]
        token_secret_env = \"S\"
        token_secret_file = \"/s\"
        [[streams]]
        app = \"live\"
        name = \"a b\"
    ";
    let err = Config::from_toml_str(text).unwrap_err();
    let want = [
        "hls.segment_duration_secs must be between 1 and 30 (got 40)",
        "hls.playlist_window must be at least 3 (got 1)",
        "encryption.segments_per_key must be at least 1 (got 0)",
        "auth.token_secret_env and auth.token_secret_file are both set; set at most one",
        "streams[0].name \"a b\" may only contain A-Z a-z 0-9 _ -",
        "streams[0] has no publish key: set one of key, key_env, key_file",
    ];
    assert_eq!(err.problems, want);
    assert_eq!(err.to_string(), want.join("\n"));
}

#[test]
fn inline_key_is_never_printed() {
    let text = "[[streams]]\napp = \"live\"\nname = \"a\"\nkey = \"sk_do-not-print-me\"\n";
    let c = Config::from_toml_str(text).unwrap();
    assert!(!format!("{c:?}").contains("do-not-print"));
    let bad = "[[streams]]\napp = \"live\"\nname = \"a\"\nkey = \"bad key!\"\nkey_env = \"X\"\n";
    let err = Config::from_toml_str(bad).unwrap_err();
    assert_eq!(err.problems.len(), 2);
    assert!(!err.to_string().contains("bad key!"));
}

#[test]
fn hlsjs_integrity_follows_the_url() {
    let own = "https://static.example/hls.min.js";
    let hash = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
    let cases = [
        (DEFAULT_HLSJS_URL, None, Some(DEFAULT_HLSJS_INTEGRITY)),
        (DEFAULT_HLSJS_URL, Some(""), None),
        (DEFAULT_HLSJS_URL, Some(hash), Some(hash)),
        (own, None, None),
        (own, Some(hash), Some(hash)),
    ];
    for (url, integrity, want) in cases {
        let http = HttpConfig {
            hlsjs_url: url.to_string(),
            hlsjs_integrity: integrity.map(str::to_string),
            ..HttpConfig::default()
        };
        assert_eq!(http.hlsjs_integrity(), want, "{url} {integrity:?}");
    }
    assert!(validate::is_sri_hash(DEFAULT_HLSJS_INTEGRITY));
    assert!(validate::is_sri_hash(hash));
    assert!(!validate::is_sri_hash(
        "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
    ));
    assert!(!validate::is_sri_hash(
        "sha384-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    ));
}

#[test]
fn public_base_trims_slashes() {
    let cases = [
        (None, ""),
        (Some("https://v.example"), "https://v.example"),
        (Some("https://v.example/"), "https://v.example"),
        (Some("https://v.example/tv/"), "https://v.example/tv"),
    ];
    for (url, want) in cases {
        let http = HttpConfig {
            public_url: url.map(str::to_string),
            ..HttpConfig::default()
        };
        assert_eq!(http.public_base(), want);
    }
}

#[test]
fn key_base_is_key_base_url_else_public_url() {
    let cases = [
        (None, None, ""),
        (Some("https://v.example/"), None, "https://v.example"),
        (
            Some("https://v.example"),
            Some("https://keys.example/"),
            "https://keys.example",
        ),
        (None, Some("https://keys.example/k"), "https://keys.example/k"),
    ];
    for (public, keys, want) in cases {
        let http = HttpConfig {
            public_url: public.map(str::to_string),
            key_base_url: keys.map(str::to_string),
            ..HttpConfig::default()
        };
        assert_eq!(http.key_base(), want, "{public:?} {keys:?}");
        assert_eq!(http.public_base(), public.map_or("", |p| p.trim_end_matches('/')));
    }
    let err = Config::from_toml_str("[http]\nkey_base_url = \"keys.example\"\n").unwrap_err();
    assert_eq!(
        err.problems,
        ["http.key_base_url \"keys.example\" must start with http:// or https://"]
    );
}

#[test]
fn load_reads_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sealcast.toml");
    fs::write(&path, "[hls]\nplaylist_window = 9\n").unwrap();
    assert_eq!(Config::load(&path).unwrap().hls.playlist_window, 9);
    let missing = dir.path().join("missing.toml");
    let err = Config::load(&missing).unwrap_err();
    assert_eq!(err.problems.len(), 1);
    assert!(
        err.problems[0].starts_with(&format!("cannot read {}: ", missing.display())),
        "{err}"
    );
}

#[test]
fn auth_problems() {
    let cases: &[(&str, &[&str])] = &[
        (
            "[auth]\naudience = \"\"",
            &["auth.audience must not be empty (omit it to not check aud)"],
        ),
        (
            "[auth]\nticket_ttl_secs = 0",
            &["auth.ticket_ttl_secs must be between 1 and 3600 (got 0)"],
        ),
        (
            "[auth]\nticket_ttl_secs = 3601",
            &["auth.ticket_ttl_secs must be between 1 and 3600 (got 3601)"],
        ),
        (
            "[auth]\noffline_ttl_secs = 2592001",
            &["auth.offline_ttl_secs must be at most 2592000 (30 days; got 2592001)"],
        ),
        (
            "[auth]\nadmin_token_env = \"A\"\nadmin_token_file = \"/a\"",
            &["auth.admin_token_env and auth.admin_token_file are both set; set at most one"],
        ),
        (
            "[auth]\nadmin_token_env = \"A=B\"",
            &["auth.admin_token_env \"A=B\" is not a valid environment variable name"],
        ),
        (
            "[auth]\nadmin_token_file = \"\"",
            &["auth.admin_token_file must not be empty"],
        ),
        (
            "[auth.key_cache]\nmax_entries = 0\nttl_secs = 0",
            &[
                "auth.key_cache.max_entries must be at least 1 (got 0)",
                "auth.key_cache.ttl_secs must be between 1 and 86400 (got 0)",
            ],
        ),
        (
            "[auth.replay]\nbackend = \"redis\"",
            &["auth.replay.url must be set when auth.replay.backend is \"redis\""],
        ),
        (
            "[auth.replay]\nbackend = \"redis\"\nurl = \"http://h:1\"",
            &[
                "auth.replay.url \"http://h:1\" must start with redis://, rediss://, redis+sentinel:// or rediss+sentinel://",
            ],
        ),
        (
            "[auth.replay]\nurl = \"redis://h:1\"",
            &["auth.replay.url is only used with auth.replay.backend = \"redis\""],
        ),
        (
            "[auth.replay]\nmax_entries = 0\nkey_prefix = \"\"\ntimeout_ms = 0\npool_size = 65",
            &[
                "auth.replay.max_entries must be at least 1 (got 0)",
                "auth.replay.key_prefix must not be empty",
                "auth.replay.timeout_ms must be between 1 and 60000 (got 0)",
                "auth.replay.pool_size must be between 1 and 64 (got 65)",
            ],
        ),
        (
            "[auth.replay]\npassword_env = \"P\"\npassword_file = \"/p\"",
            &["auth.replay.password_env and auth.replay.password_file are both set; set at most one"],
        ),
        (
            "[[streams]]\napp = \"api\"\nname = \"v1\"\nkey = \"sk_0123456789abcdef\"",
            &["streams[0].app \"api\" is reserved for sealcast's own URLs"],
        ),
    ];
    for (text, want) in cases {
        assert_eq!(problems(text), *want, "{text}");
    }
    let ok =
        "[auth]\none_time_key_tickets = true\n[auth.replay]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:6390\"\n";
    assert_eq!(problems(ok), Vec::<String>::new());
    let unknown = Config::from_toml_str("[auth.replay]\nbackend = \"memcached\"\n").unwrap_err();
    assert!(unknown.problems[0].starts_with("auth.replay.backend: "), "{unknown}");
}

#[test]
fn a_table_of_the_wrong_type_names_the_struct_users_have_always_seen() {
    // serde prints the struct's name; the schema's structs keep the names
    // they had before the configuration was split into schema and Config.
    let cases = [
        ("rtmp = 5\n", "RtmpConfig"),
        ("encryption = 5\n", "EncryptionConfig"),
        ("kms = 5\n", "KmsConfig"),
        ("auth = 5\n", "AuthConfig"),
        ("[auth]\nkey_cache = 5\n", "KeyCacheConfig"),
        ("[auth]\nreplay = 5\n", "ReplayConfig"),
        ("streams = [5]\n", "StreamConfig"),
    ];
    for (text, name) in cases {
        let got = problems(text);
        assert_eq!(got.len(), 1, "{text}");
        assert!(got[0].contains(&format!("expected struct {name} ")), "{text}: {got:?}");
    }
}

#[test]
fn log_level_is_a_filter() {
    let c = Config::from_toml_str("[log]\nlevel = \"warn,sealcast::access=info\"\n").unwrap();
    assert_eq!(c.log.level.as_deref(), Some("warn,sealcast::access=info"));
    let err = Config::from_toml_str("[log]\nlevel = \"sealcast=loud\"\n").unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
    assert!(
        err.problems[0].starts_with("log.level \"sealcast=loud\" is not a log filter"),
        "{err}"
    );
}

/// The TLS keys: pairs, files that exist, `tls_listen` only with a
/// certificate, `[rtmp]`'s certificate defaulting to `[http]`'s.
#[test]
fn tls_keys() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, "pem").unwrap();
        path.display().to_string()
    };
    let (cert, key, rtmp_cert, rtmp_key) = (file("c.pem"), file("k.pem"), file("rc.pem"), file("rk.pem"));
    let missing = dir.path().join("missing.pem").display().to_string();
    let dir_path = dir.path().display().to_string();
    let cases: Vec<(&str, String, Vec<String>)> = vec![
        ("none", String::new(), vec![]),
        (
            "http pair",
            format!("[http]\ntls_cert_file = {cert:?}\ntls_key_file = {key:?}\n"),
            vec![],
        ),
        (
            "cert without key",
            format!("[http]\ntls_cert_file = {cert:?}\n"),
            vec!["http.tls_cert_file is set but http.tls_key_file is not".to_owned()],
        ),
        (
            "rtmp key without cert",
            format!("[rtmp]\ntls_listen = \"127.0.0.1:1936\"\ntls_key_file = {key:?}\n"),
            vec![
                "rtmp.tls_key_file is set but rtmp.tls_cert_file is not".to_owned(),
                "rtmp.tls_listen needs a certificate: set rtmp.tls_cert_file and rtmp.tls_key_file, \
                 or http.tls_cert_file and http.tls_key_file"
                    .to_owned(),
            ],
        ),
        (
            "missing file",
            format!("[http]\ntls_cert_file = {missing:?}\ntls_key_file = {key:?}\n"),
            vec![format!(
                "http.tls_cert_file {missing} cannot be read: No such file or directory (os error 2)"
            )],
        ),
        (
            "a directory",
            format!("[http]\ntls_cert_file = {cert:?}\ntls_key_file = {dir_path:?}\n"),
            vec![format!("http.tls_key_file {dir_path} is not a file")],
        ),
        (
            "tls_listen without any certificate",
            "[rtmp]\ntls_listen = \"127.0.0.1:1936\"\n".to_owned(),
            vec![
                "rtmp.tls_listen needs a certificate: set rtmp.tls_cert_file and rtmp.tls_key_file, \
                 or http.tls_cert_file and http.tls_key_file"
                    .to_owned(),
            ],
        ),
        (
            "tls_listen on the http address",
            format!(
                "[rtmp]\ntls_listen = \"127.0.0.1:8080\"\ntls_cert_file = {rtmp_cert:?}\ntls_key_file = {rtmp_key:?}\n"
            ),
            vec!["rtmp.tls_listen 127.0.0.1:8080 is the same address as http.listen".to_owned()],
        ),
        (
            "tls_listen not an address",
            "[rtmp]\ntls_listen = \"localhost:1936\"\n".to_owned(),
            vec![],
        ),
    ];
    for (label, text, want) in cases {
        let got = problems(&text);
        if label == "tls_listen not an address" {
            assert_eq!(got.len(), 1, "{label}: {got:?}");
            assert!(got[0].contains("rtmp.tls_listen"), "{label}: {got:?}");
            continue;
        }
        assert_eq!(got, want, "{label}");
    }

    // [rtmp] takes [http]'s certificate unless it names its own.
    let http = format!("[http]\ntls_cert_file = {cert:?}\ntls_key_file = {key:?}\n");
    let c = Config::from_toml_str(&format!("[rtmp]\ntls_listen = \"127.0.0.1:1936\"\n{http}")).unwrap();
    let tls = c.rtmp.tls.unwrap();
    assert_eq!(
        (tls.cert_file.display().to_string(), tls.cert_setting),
        (cert.clone(), "http.tls_cert_file")
    );
    let c = Config::from_toml_str(&format!(
        "[rtmp]\ntls_listen = \"127.0.0.1:1936\"\ntls_cert_file = {rtmp_cert:?}\ntls_key_file = {rtmp_key:?}\n{http}"
    ))
    .unwrap();
    let tls = c.rtmp.tls.unwrap();
    assert_eq!(
        (tls.key_file.display().to_string(), tls.key_setting),
        (rtmp_key, "rtmp.tls_key_file")
    );
    // Without tls_listen, no RTMPS certificate is in effect.
    assert_eq!(Config::from_toml_str(&http).unwrap().rtmp.tls, None);
}

#[test]
fn stream_protection_is_standard_or_web() {
    let with = |value: &str| {
        Config::from_toml_str(&format!(
            "[[streams]]\napp = \"live\"\nname = \"a\"\nkey_env = \"A\"\n{value}"
        ))
    };
    assert_eq!(with("").unwrap().streams[0].protection, Protection::Standard);
    assert_eq!(
        with("protection = \"web\"\n").unwrap().streams[0].protection,
        Protection::Web
    );
    let error = with("protection = \"drm\"\n").unwrap_err().to_string();
    assert!(
        error.contains("streams[0].protection: unknown variant `drm`, expected `standard` or `web`"),
        "{error}"
    );
}
