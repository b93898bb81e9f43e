//! Where AWS credentials and the region come from, as the AWS CLI and SDKs
//! look for them (the subset that needs no network): the environment, then
//! the shared credentials file.
//!
//! - `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and optional
//!   `AWS_SESSION_TOKEN`, unless the config names a profile;
//! - else the profile (the config's `kms.profile`, else `AWS_PROFILE`, else
//!   `default`) of the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`,
//!   else `~/.aws/credentials`): `aws_access_key_id`, `aws_secret_access_key`,
//!   optional `aws_session_token`.
//!
//! Credentials are read once, at start. Instance roles (IMDS), SSO and
//! `credential_process` are not supported.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::sigv4::Credentials;
use crate::kms::KmsError;

/// Reads an environment variable: the process environment, or a table in tests.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, for [`resolve_credentials`] and [`resolve_region`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The credentials to sign with; see the module docs for the order.
pub fn resolve_credentials(profile: Option<&str>, env: EnvLookup<'_>) -> Result<Credentials, KmsError> {
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    if profile.is_none()
        && let (Some(id), Some(secret)) = (set("AWS_ACCESS_KEY_ID"), set("AWS_SECRET_ACCESS_KEY"))
    {
        let secret = Zeroizing::new(secret);
        let token = set("AWS_SESSION_TOKEN").map(Zeroizing::new);
        return Ok(Credentials::new(&id, &secret, token.as_deref().map(String::as_str)));
    }
    let profile = profile
        .map(str::to_owned)
        .or_else(|| set("AWS_PROFILE"))
        .unwrap_or_else(|| "default".to_owned());
    let path = set("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| set("HOME").map(|home| Path::new(&home).join(".aws").join("credentials")));
    let Some(path) = path else {
        return Err(no_credentials(&profile, None));
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => Zeroizing::new(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(no_credentials(&profile, Some(&path))),
        Err(e) => {
            return Err(KmsError::Config(format!(
                "AWS credentials file {}: {e}",
                path.display()
            )));
        }
    };
    profile_credentials(&text, &profile)
        .map_err(|why| KmsError::Config(format!("AWS credentials file {}: {why}", path.display())))
}

/// The region: the config's `kms.region`, else `AWS_REGION`, else `AWS_DEFAULT_REGION`.
pub fn resolve_region(configured: Option<&str>, env: EnvLookup<'_>) -> Result<String, KmsError> {
    configured
        .map(str::to_owned)
        .or_else(|| env("AWS_REGION").filter(|v| !v.is_empty()))
        .or_else(|| env("AWS_DEFAULT_REGION").filter(|v| !v.is_empty()))
        .ok_or_else(|| KmsError::Config("no AWS region: set kms.region in the config, or AWS_REGION".to_owned()))
}

fn no_credentials(profile: &str, file: Option<&Path>) -> KmsError {
    let file = file.map_or_else(|| "~/.aws/credentials".to_owned(), |p| p.display().to_string());
    KmsError::Config(format!(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add profile [{profile}] to {file}"
    ))
}

/// The credentials of `[profile]` in the INI text of a shared credentials
/// file. The error names what is missing, never a value.
fn profile_credentials(text: &str, profile: &str) -> Result<Credentials, String> {
    let mut in_profile = false;
    let mut found = false;
    let (mut id, mut secret, mut token) = (None, None::<Zeroizing<String>>, None::<Zeroizing<String>>);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = section.trim() == profile;
            found |= in_profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match key.trim().to_ascii_lowercase().as_str() {
            "aws_access_key_id" => id = Some(value.to_owned()),
            "aws_secret_access_key" => secret = Some(Zeroizing::new(value.to_owned())),
            "aws_session_token" => token = Some(Zeroizing::new(value.to_owned())),
            _ => {}
        }
    }
    if !found {
        return Err(format!("has no profile [{profile}]"));
    }
    match (id.filter(|v| !v.is_empty()), secret.filter(|v| !v.is_empty())) {
        (Some(id), Some(secret)) => Ok(Credentials::new(
            &id,
            &secret,
            token.as_deref().map(String::as_str).filter(|t| !t.is_empty()),
        )),
        _ => Err(format!(
            "profile [{profile}] needs aws_access_key_id and aws_secret_access_key"
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    /// The access key id and whether a session token came with it.
    fn summary(credentials: &Credentials) -> (String, bool) {
        let debug = format!("{credentials:?}");
        (credentials.access_key_id().to_owned(), !debug.contains("None"))
    }

    /// An environment as (name, value) pairs.
    type Env<'a> = &'a [(&'a str, &'a str)];

    const FILE: &str = "\
# comment
[default]
aws_access_key_id = AKIDDEFAULT
aws_secret_access_key = secret-default

[ops]
; another comment
AWS_ACCESS_KEY_ID=AKIDOPS
aws_secret_access_key=secret-ops
aws_session_token = token-ops
region = eu-west-1

[broken]
aws_access_key_id = AKIDBROKEN
";

    #[test]
    fn environment_and_profiles() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        std::fs::write(&file, FILE).unwrap();
        let file = file.to_str().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".aws")).unwrap();
        std::fs::write(
            home.join(".aws/credentials"),
            "[default]\naws_access_key_id=AKIDHOME\naws_secret_access_key=s\n",
        )
        .unwrap();
        let home = home.to_str().unwrap();

        let ok_cases: &[(Option<&str>, Env<'_>, (&str, bool))] = &[
            (
                None,
                &[
                    ("AWS_ACCESS_KEY_ID", "AKIDENV"),
                    ("AWS_SECRET_ACCESS_KEY", "s"),
                    ("AWS_SHARED_CREDENTIALS_FILE", file),
                ],
                ("AKIDENV", false),
            ),
            (
                None,
                &[
                    ("AWS_ACCESS_KEY_ID", "AKIDENV"),
                    ("AWS_SECRET_ACCESS_KEY", "s"),
                    ("AWS_SESSION_TOKEN", "t"),
                ],
                ("AKIDENV", true),
            ),
            // A profile named in the config wins over the environment.
            (
                Some("ops"),
                &[
                    ("AWS_ACCESS_KEY_ID", "AKIDENV"),
                    ("AWS_SECRET_ACCESS_KEY", "s"),
                    ("AWS_SHARED_CREDENTIALS_FILE", file),
                ],
                ("AKIDOPS", true),
            ),
            // Half of the environment pair is not enough: the file is used.
            (
                None,
                &[("AWS_ACCESS_KEY_ID", "AKIDENV"), ("AWS_SHARED_CREDENTIALS_FILE", file)],
                ("AKIDDEFAULT", false),
            ),
            (
                None,
                &[("AWS_PROFILE", "ops"), ("AWS_SHARED_CREDENTIALS_FILE", file)],
                ("AKIDOPS", true),
            ),
            (None, &[("HOME", home)], ("AKIDHOME", false)),
        ];
        for (profile, env, want) in ok_cases {
            let env = env_of(env);
            let got = resolve_credentials(*profile, &env).unwrap_or_else(|e| panic!("{profile:?}: {e}"));
            assert_eq!(summary(&got), (want.0.to_owned(), want.1), "{profile:?}");
        }

        let missing = dir.path().join("missing");
        let missing = missing.to_str().unwrap();
        let err_cases: &[(Option<&str>, Env<'_>, String)] = &[
            (
                Some("nope"),
                &[("AWS_SHARED_CREDENTIALS_FILE", file)],
                format!("AWS credentials file {file}: has no profile [nope]"),
            ),
            (
                Some("broken"),
                &[("AWS_SHARED_CREDENTIALS_FILE", file)],
                format!("AWS credentials file {file}: profile [broken] needs aws_access_key_id and aws_secret_access_key"),
            ),
            (
                None,
                &[("AWS_SHARED_CREDENTIALS_FILE", missing)],
                format!("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add profile [default] to {missing}"),
            ),
            (
                None,
                &[],
                "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add profile [default] to ~/.aws/credentials".to_owned(),
            ),
        ];
        for (profile, env, want) in err_cases {
            let env = env_of(env);
            let err = resolve_credentials(*profile, &env).unwrap_err();
            assert_eq!(err.to_string(), *want, "{profile:?}");
            assert!(!err.to_string().contains("secret-"), "never a value");
        }
    }

    #[test]
    fn region_order() {
        let both = env_of(&[("AWS_REGION", "eu-west-1"), ("AWS_DEFAULT_REGION", "us-west-2")]);
        assert_eq!(resolve_region(Some("ap-south-1"), &both).unwrap(), "ap-south-1");
        assert_eq!(resolve_region(None, &both).unwrap(), "eu-west-1");
        let default_only = env_of(&[("AWS_REGION", ""), ("AWS_DEFAULT_REGION", "us-west-2")]);
        assert_eq!(resolve_region(None, &default_only).unwrap(), "us-west-2");
        let none = env_of(&[]);
        assert_eq!(
            resolve_region(None, &none).unwrap_err().to_string(),
            "no AWS region: set kms.region in the config, or AWS_REGION"
        );
    }
}
