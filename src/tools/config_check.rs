//! `sealcast config check`: everything `sealcast serve` (or `sealcast
//! keyserver`) would check at start, without starting and without writing
//! anything: the file parses and validates, every secret it names resolves,
//! the keyring opens (or, for `serve`, will be created), the AWS provider can
//! be set up by this build. It also says what the defaults will do, so an
//! empty file is not "ok" in silence.

use std::path::Path;

use crate::config::{Config, KmsConfig, PublishKeySource, ReplayConfig};
use crate::kms::local::LocalKms;

/// Which command the configuration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `sealcast serve`: ingest, HLS and keys.
    Serve,
    /// `sealcast keyserver`: the key endpoint alone.
    Keyserver,
}

/// What the check found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// What the command would refuse to start with, each naming its key.
    pub problems: Vec<String>,
    /// What will happen that the file does not say (defaults, files the
    /// server creates on first start).
    pub notes: Vec<String>,
}

/// Checks a loaded configuration for `role`. Reads secrets and the keyring;
/// writes nothing.
pub fn check(config: &Config, role: Role) -> Report {
    let mut report = Report::default();
    let (problems, notes) = (&mut report.problems, &mut report.notes);
    check_token_secret(config, role, problems, notes);
    if role == Role::Serve {
        check_streams_and_admin(config, problems, notes);
        check_hooks(config, problems, notes);
    }
    if let ReplayConfig::Redis(redis) = &config.auth.replay
        && let Err(e) = redis.resolve_password()
    {
        problems.extend(e.problems);
    }
    check_tls(config, role, problems, notes);
    check_kms(config, role, problems, notes);
    if role == Role::Serve {
        note_listeners(config, notes);
    }
    report
}

type Lines = Vec<String>;

/// The playback token secret: configured, generated already, or to be generated.
fn check_token_secret(config: &Config, role: Role, problems: &mut Lines, notes: &mut Lines) {
    if config.auth.token_secret_is_configured() {
        if let Err(e) = config.read_token_secret() {
            problems.extend(e.problems);
        }
    } else if role == Role::Keyserver {
        problems.push(
            "auth: a key server needs auth.token_secret_env or auth.token_secret_file (the secret the ingest \
             servers sign with); it generates none"
                .to_owned(),
        );
    } else {
        let path = config.generated_token_secret_path();
        if path.exists() {
            if let Err(e) = config.read_token_secret() {
                problems.extend(e.problems);
            }
            notes.push(format!(
                "auth: tokens are signed with the generated secret in {}",
                path.display()
            ));
        } else {
            notes.push(format!(
                "auth: no token secret configured: serve generates one in {} on first start",
                path.display()
            ));
        }
    }
}

/// Streams and their publish keys, the admin token, the publish hook and
/// the data directory (serve only).
fn check_streams_and_admin(config: &Config, problems: &mut Lines, notes: &mut Lines) {
    if config.streams.is_empty() {
        let path = config.generated_publish_key_path("live", "demo");
        let kept = if path.exists() {
            "kept in"
        } else {
            "generated on first start in"
        };
        notes.push(format!(
            "streams: none configured: serve runs the one stream live/demo, its publish key {kept} {}",
            path.display()
        ));
    } else {
        match config.resolve_streams() {
            Ok(streams) => {
                let inline = config
                    .streams
                    .iter()
                    .filter(|s| matches!(s.publish_key, PublishKeySource::Inline(_)))
                    .count();
                notes.push(format!("streams: {} configured, every publish key read", streams.len()));
                if inline > 0 {
                    notes.push(format!(
                        "streams: {inline} publish key(s) written inline; key_env or key_file keeps them out of the file"
                    ));
                }
            }
            Err(e) => problems.extend(e.problems),
        }
    }
    if let Err(e) = config.auth.resolve_admin_token() {
        problems.extend(e.problems);
    } else if config.auth.admin_token_env.is_none() && config.auth.admin_token_file.is_none() {
        notes.push("auth: no admin token: no admin API, the operator page on loopback only".to_owned());
    }
    let data_dir = &config.storage.data_dir;
    if data_dir.exists() && !data_dir.is_dir() {
        problems.push(format!("storage.data_dir {} is not a directory", data_dir.display()));
    } else if !data_dir.exists() {
        notes.push(format!("storage: {} is created on first start", data_dir.display()));
    }
}

/// The publish hook and webhook clients, built as at start: secrets read,
/// CA files loaded.
fn check_hooks(config: &Config, problems: &mut Lines, notes: &mut Lines) {
    if let Some(hook) = &config.auth.publish_hook {
        match hook.resolve_secret() {
            Ok(secret) => match crate::webhooks::PublishHook::new(hook, secret) {
                Ok(_) => notes.push(format!(
                    "auth: publish hook {} decides every publish; [[streams]] keys admit none by themselves",
                    hook.url
                )),
                Err(why) => problems.push(why),
            },
            Err(e) => problems.extend(e.problems),
        }
    }
    match config.webhooks.resolve_secret() {
        Ok(secret) => match crate::webhooks::Delivery::from_config(&config.webhooks, secret) {
            Ok(Some(delivery)) => notes.push(format!("webhooks: events go to {}", delivery.url)),
            Ok(None) => {}
            Err(why) => problems.push(why),
        },
        Err(e) => problems.extend(e.problems),
    }
}

/// The TLS certificates, read and matched to their keys as at start.
fn check_tls(config: &Config, role: Role, problems: &mut Lines, notes: &mut Lines) {
    let mut tls_files: Vec<crate::config::TlsFiles> = config.http.tls_files().into_iter().collect();
    if role == Role::Serve
        && let Some(files) = &config.rtmp.tls
        && !tls_files.contains(files)
    {
        tls_files.push(files.clone());
    }
    for files in &tls_files {
        match crate::tls::CertStore::load(files) {
            Ok(store) => notes.push(format!(
                "tls: {} loaded, sha256 {}",
                files.cert_file.display(),
                store.fingerprint()
            )),
            Err(e) => problems.push(e.to_string()),
        }
    }
}

/// The key provider.
fn check_kms(config: &Config, role: Role, problems: &mut Lines, notes: &mut Lines) {
    match &config.kms {
        KmsConfig::Local { keyring } => check_keyring(keyring, role, problems, notes),
        KmsConfig::Aws(_) => {
            if let Err(e) = crate::kms::open(&config.kms) {
                problems.push(format!("kms: {e}"));
            } else {
                notes.push("kms: AWS KMS set up (credentials are checked by the first request)".to_owned());
            }
        }
    }
}

/// Where serve will listen, and what that means for encoders elsewhere.
fn note_listeners(config: &Config, notes: &mut Lines) {
    notes.push(format!(
        "listen: RTMP on {}, HTTP{} on {}",
        config.rtmp.listen,
        if config.http.tls_files().is_some() { "S" } else { "" },
        config.http.listen
    ));
    if let Some(tls_listen) = config.rtmp.tls_listen {
        notes.push(format!("listen: RTMPS on {tls_listen}"));
    }
    if config.rtmp.listen.ip().is_loopback() {
        notes.push(
            "rtmp.listen is a loopback address: encoders on other machines cannot connect (0.0.0.0:1935 for all)"
                .to_owned(),
        );
    }
}

/// Whether a file has a section only `serve` reads (`[rtmp]`, `[hls]`,
/// `[encryption]`, `[[streams]]`), so it cannot be a key server's.
pub fn has_serve_sections(text: &str) -> bool {
    toml::from_str::<toml::Table>(text)
        .map(|table| {
            ["rtmp", "hls", "encryption", "streams"]
                .iter()
                .any(|k| table.contains_key(*k))
        })
        .unwrap_or(true)
}

fn check_keyring(keyring: &Path, role: Role, problems: &mut Vec<String>, notes: &mut Vec<String>) {
    if keyring.exists() {
        match LocalKms::open(keyring) {
            Ok(kms) => notes.push(format!(
                "kms: local keyring {}, master key version {}",
                keyring.display(),
                kms.current_version()
            )),
            Err(e) => problems.push(format!("kms.keyring: {e}")),
        }
    } else if role == Role::Keyserver {
        problems.push(format!(
            "kms.keyring: no keyring at {}; a key server creates none: give it the ingest servers' keyring",
            keyring.display()
        ));
    } else {
        notes.push(format!(
            "kms: the local keyring {} is created on first start",
            keyring.display()
        ));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn config(text: &str) -> Config {
        Config::from_toml_str(text).unwrap()
    }

    #[test]
    fn an_empty_file_says_what_the_defaults_do_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let c = config(&format!("[storage]\ndata_dir = {:?}\n", data.display().to_string()));
        let report = check(&c, Role::Serve);
        assert_eq!(report.problems, Vec::<String>::new());
        let notes = report.notes.join("\n");
        assert!(notes.contains("serve runs the one stream live/demo"), "{notes}");
        assert!(notes.contains("generates one in"), "{notes}");
        assert!(notes.contains("is created on first start"), "{notes}");
        assert!(!data.exists(), "config check wrote {}", data.display());
    }

    #[test]
    fn what_serve_refuses_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[storage]\ndata_dir = {data:?}\n[auth]\ntoken_secret_file = {missing:?}\n\
             [[streams]]\napp = \"live\"\nname = \"a\"\nkey_env = \"SEALCAST_CHECK_TEST_UNSET\"\n\
             [[streams]]\napp = \"live\"\nname = \"b\"\nkey_file = {missing_key:?}\n",
            data = dir.path().join("data").display().to_string(),
            missing = dir.path().join("secret").display().to_string(),
            missing_key = dir.path().join("b.key").display().to_string(),
        );
        let report = check(&config(&text), Role::Serve);
        assert_eq!(report.problems.len(), 3, "{:?}", report.problems);
        assert!(
            report.problems[0].starts_with("auth.token_secret_file "),
            "{:?}",
            report.problems
        );
        assert_eq!(
            report.problems[1],
            "streams[0].key_env SEALCAST_CHECK_TEST_UNSET is not set or empty"
        );
        assert!(
            report.problems[2].starts_with("streams[1].key_file "),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn an_unreadable_hook_ca_file_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("hook_secret");
        crate::storage::write_private_atomic(&secret, b"0123456789abcdef0123", crate::storage::Place::New).unwrap();
        let config = config(&format!(
            "[auth]\npublish_hook_url = \"https://h/p\"\npublish_hook_secret_file = {secret:?}\n\
             publish_hook_tls_ca_file = \"/nonexistent/ca.pem\"\n"
        ));
        let report = check(&config, Role::Serve);
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.starts_with("auth.publish_hook_tls_ca_file /nonexistent/ca.pem: cannot be read")),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn serve_sections_are_recognized() {
        let cases = [
            ("", false),
            (
                "[http]\nlisten = \"127.0.0.1:0\"\n[auth]\ntoken_secret_env = \"S\"\n",
                false,
            ),
            ("[rtmp]\n", true),
            ("[hls]\nplaylist_window = 5\n", true),
            ("[[streams]]\napp = \"a\"\n", true),
        ];
        for (text, want) in cases {
            assert_eq!(has_serve_sections(text), want, "{text}");
        }
    }

    #[test]
    fn keyserver_needs_a_named_secret_and_an_existing_keyring() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = dir.path().join("keyring.json");
        let c = config(&format!("[kms]\nkeyring = {:?}\n", keyring.display().to_string()));
        let report = check(&c, Role::Keyserver);
        assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
        assert!(report.problems[0].starts_with("auth: a key server needs"));
        assert!(report.problems[1].starts_with("kms.keyring: no keyring at"));
        // As a serve config, the same keyring is created on first start.
        assert!(check(&c, Role::Serve).problems.is_empty());
    }
}
