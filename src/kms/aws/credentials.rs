//! Where AWS credentials and the region come from: which source of the
//! standard AWS credential chain applies, decided from the environment and the
//! shared files without touching the network. [`super::chain`] then fetches
//! (STS, container endpoint, instance metadata) and keeps them fresh.
//!
//! The order is the AWS SDKs' default chain:
//! 1. `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`),
//!    unless the config names a profile;
//! 2. the profile (`kms.profile`, else `AWS_PROFILE`, else `default`) of the
//!    shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else
//!    `~/.aws/credentials`) and config file (`AWS_CONFIG_FILE`, else
//!    `~/.aws/config`, section `[profile NAME]`): static keys, or `role_arn` +
//!    `web_identity_token_file` (+ `role_session_name`);
//! 3. web identity from `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`
//!    (+ `AWS_ROLE_SESSION_NAME`), as EKS IRSA sets them;
//! 4. the container endpoint: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (on
//!    169.254.170.2) or `AWS_CONTAINER_CREDENTIALS_FULL_URI`, with
//!    `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` or
//!    `AWS_CONTAINER_AUTHORIZATION_TOKEN` (ECS, EKS Pod Identity);
//! 5. EC2 instance metadata (IMDSv2), unless `AWS_EC2_METADATA_DISABLED=true`;
//!    `AWS_EC2_METADATA_SERVICE_ENDPOINT` moves it.
//!
//! A profile named explicitly (config or `AWS_PROFILE`) must exist. SSO,
//! `credential_process` and `source_profile` role chains are not supported.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::sigv4::Credentials;
use crate::kms::KmsError;

/// Reads an environment variable: the process environment, or a table in tests.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, for [`Env::capture`] and [`resolve_region`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The variables the chain reads, captured once so a lookup table can stand
/// in for the process environment in tests.
const VARIABLES: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "HOME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
];

/// The chain's environment variables; empty values count as unset.
#[derive(Clone, Default)]
pub struct Env(BTreeMap<&'static str, Zeroizing<String>>);

impl Env {
    /// Reads the chain's variables through `lookup`.
    pub fn capture(lookup: EnvLookup<'_>) -> Self {
        Self(
            VARIABLES
                .iter()
                .filter_map(|name| {
                    lookup(name)
                        .filter(|v| !v.is_empty())
                        .map(|v| (*name, Zeroizing::new(v)))
                })
                .collect(),
        )
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.as_str())
    }

    fn path_or_home(&self, name: &str, home_relative: &str) -> Option<PathBuf> {
        self.get(name)
            .map(PathBuf::from)
            .or_else(|| self.get("HOME").map(|home| Path::new(home).join(home_relative)))
    }
}

impl fmt::Debug for Env {
    /// Names only: values may be secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// The region: the config's `kms.region`, else `AWS_REGION`, else `AWS_DEFAULT_REGION`.
pub fn resolve_region(configured: Option<&str>, env: EnvLookup<'_>) -> Result<String, KmsError> {
    configured
        .map(str::to_owned)
        .or_else(|| env("AWS_REGION").filter(|v| !v.is_empty()))
        .or_else(|| env("AWS_DEFAULT_REGION").filter(|v| !v.is_empty()))
        .ok_or_else(|| KmsError::Config("no AWS region: set kms.region in the config, or AWS_REGION".to_owned()))
}

/// Where the credentials will come from: the first source of the chain that
/// is configured.
#[derive(Debug)]
pub(super) enum Plan {
    /// Keys at hand (environment or profile): no request, no expiry.
    Static { credentials: Credentials, source: String },
    /// STS `AssumeRoleWithWebIdentity` with the token in `token_file`.
    WebIdentity {
        role_arn: String,
        token_file: PathBuf,
        session_name: Option<String>,
        source: String,
    },
    /// The container credentials endpoint (ECS, EKS Pod Identity).
    Container { uri: String, auth: ContainerAuth },
    /// EC2 instance metadata, IMDSv2, at `endpoint` (`http://host[:port]`).
    Imds { endpoint: String },
}

/// The `Authorization` value for the container endpoint.
#[derive(Debug)]
pub(super) enum ContainerAuth {
    None,
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`: read at every fetch (it rotates).
    File(PathBuf),
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN`.
    Token(RedactedString),
}

/// A secret string whose `Debug` prints nothing of it.
pub(super) struct RedactedString(pub Zeroizing<String>);

impl fmt::Debug for RedactedString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"..\"")
    }
}

/// The ECS task credentials host of `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`.
const ECS_HOST: &str = "http://169.254.170.2";
/// The EC2 instance metadata service.
pub(super) const IMDS_ENDPOINT: &str = "http://169.254.169.254";

/// Picks the source (see the module docs for the order). `Err` when a
/// configured source is broken; otherwise the plan and why each earlier
/// source did not apply, for the error if the plan fails to yield.
pub(super) async fn select(profile: Option<&str>, env: &Env) -> Result<(Plan, Vec<String>), String> {
    let mut tried = Vec::new();
    match (env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")) {
        _ if profile.is_some() => tried.push("environment keys skipped (kms.profile is set)".to_owned()),
        (Some(id), Some(secret)) => {
            let credentials = Credentials::new(id, secret, env.get("AWS_SESSION_TOKEN"));
            let source = "environment (AWS_ACCESS_KEY_ID)".to_owned();
            return Ok((Plan::Static { credentials, source }, tried));
        }
        (None, _) => tried.push("AWS_ACCESS_KEY_ID unset".to_owned()),
        (Some(_), None) => tried.push("AWS_SECRET_ACCESS_KEY unset".to_owned()),
    }
    if let Some(plan) = from_profile(profile, env, &mut tried).await? {
        return Ok((plan, tried));
    }
    match (env.get("AWS_WEB_IDENTITY_TOKEN_FILE"), env.get("AWS_ROLE_ARN")) {
        (Some(file), Some(role)) => {
            let plan = Plan::WebIdentity {
                role_arn: role.to_owned(),
                token_file: PathBuf::from(file),
                session_name: env.get("AWS_ROLE_SESSION_NAME").map(str::to_owned),
                source: "web identity (AWS_WEB_IDENTITY_TOKEN_FILE)".to_owned(),
            };
            return Ok((plan, tried));
        }
        (Some(_), None) => return Err("AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not".to_owned()),
        _ => tried.push("no web identity token (AWS_WEB_IDENTITY_TOKEN_FILE unset)".to_owned()),
    }
    if let Some(plan) = container(env)? {
        return Ok((plan, tried));
    }
    tried.push("no container credentials endpoint (AWS_CONTAINER_CREDENTIALS_*_URI unset)".to_owned());
    if env
        .get("AWS_EC2_METADATA_DISABLED")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        tried.push("instance metadata disabled (AWS_EC2_METADATA_DISABLED)".to_owned());
        return Err(format!("no AWS credentials: {}", tried.join("; ")));
    }
    let endpoint = env
        .get("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        .unwrap_or(IMDS_ENDPOINT)
        .trim_end_matches('/')
        .to_owned();
    Ok((Plan::Imds { endpoint }, tried))
}

/// The profile's plan; `None` (with the reason in `tried`) when the default
/// profile is absent. A profile named explicitly must exist.
async fn from_profile(profile: Option<&str>, env: &Env, tried: &mut Vec<String>) -> Result<Option<Plan>, String> {
    let explicit = profile.or_else(|| env.get("AWS_PROFILE"));
    let name = explicit.unwrap_or("default");
    let credentials_path = env.path_or_home("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
    let config_path = env.path_or_home("AWS_CONFIG_FILE", ".aws/config");
    let credentials_text = read_optional(credentials_path.as_deref()).await?;
    let config_text = read_optional(config_path.as_deref()).await?;
    let shown = |p: &Option<PathBuf>, default: &str| p.as_ref().map_or(default.to_owned(), |p| p.display().to_string());
    let files = format!(
        "{} or {}",
        shown(&credentials_path, "~/.aws/credentials"),
        shown(&config_path, "~/.aws/config")
    );
    let plan = profile_plan(
        name,
        credentials_text.as_deref().map(|t| t.as_str()),
        config_text.as_deref().map(|t| t.as_str()),
    )
    .map_err(|why| format!("AWS profile [{name}] ({files}): {why}"))?;
    match plan {
        Some(plan) => Ok(Some(plan)),
        None if explicit.is_some() => Err(format!("AWS profile [{name}] not found in {files}")),
        None => {
            tried.push(format!("profile [{name}] not found in {files}"));
            Ok(None)
        }
    }
}

/// A file's text, `None` when it does not exist.
async fn read_optional(path: Option<&Path>) -> Result<Option<Zeroizing<String>>, String> {
    let Some(path) = path else { return Ok(None) };
    match tokio::fs::read_to_string(path).await {
        Ok(text) => Ok(Some(Zeroizing::new(text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("AWS shared file {}: {e}", path.display())),
    }
}

/// What profile `name` of the shared files says: `[name]` in the credentials
/// file over `[profile name]` (or `[default]`) in the config file. The error
/// names what is missing, never a value.
pub(super) fn profile_plan(
    name: &str,
    credentials: Option<&str>,
    config: Option<&str>,
) -> Result<Option<Plan>, String> {
    let from_config = config.and_then(|text| {
        section(text, &format!("profile {name}")).or_else(|| (name == "default").then(|| section(text, name)).flatten())
    });
    let from_credentials = credentials.and_then(|text| section(text, name));
    if from_config.is_none() && from_credentials.is_none() {
        return Ok(None);
    }
    let mut values = from_config.unwrap_or_default();
    values.extend(from_credentials.unwrap_or_default());
    let get = |key: &str| values.get(key).map(|v| v.as_str()).filter(|v| !v.is_empty());
    if let (Some(id), Some(secret)) = (get("aws_access_key_id"), get("aws_secret_access_key")) {
        let credentials = Credentials::new(id, secret, get("aws_session_token"));
        let source = format!("profile [{name}]");
        return Ok(Some(Plan::Static { credentials, source }));
    }
    match (get("role_arn"), get("web_identity_token_file")) {
        (Some(role), Some(file)) => Ok(Some(Plan::WebIdentity {
            role_arn: role.to_owned(),
            token_file: PathBuf::from(file),
            session_name: get("role_session_name").map(str::to_owned),
            source: format!("profile [{name}] web identity"),
        })),
        (Some(_), None) => Err(
            "role_arn without web_identity_token_file (source_profile and credential_source are not supported)"
                .to_owned(),
        ),
        _ => {
            Err("needs aws_access_key_id and aws_secret_access_key, or role_arn and web_identity_token_file".to_owned())
        }
    }
}

/// The keys and values of section `[header]` of an INI text (the last one if
/// repeated), keys lower-cased.
fn section(text: &str, header: &str) -> Option<BTreeMap<String, Zeroizing<String>>> {
    let mut current: Option<BTreeMap<String, Zeroizing<String>>> = None;
    let mut found = None;
    let mut in_section = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if in_section {
                found = current.take();
            }
            in_section = name.split_whitespace().eq(header.split_whitespace());
            if in_section {
                current = Some(BTreeMap::new());
            }
            continue;
        }
        if let (true, Some(map), Some((key, value))) = (in_section, current.as_mut(), line.split_once('=')) {
            map.insert(key.trim().to_ascii_lowercase(), Zeroizing::new(value.trim().to_owned()));
        }
    }
    if in_section { current } else { found }
}

/// The container endpoint plan, if `AWS_CONTAINER_CREDENTIALS_*_URI` is set.
/// A full URI over plain HTTP must be a loopback or the ECS/EKS link-local
/// address, as the AWS SDKs require, so credentials never cross a network
/// in clear.
fn container(env: &Env) -> Result<Option<Plan>, String> {
    let uri = if let Some(relative) = env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
        if !relative.starts_with('/') {
            return Err("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must start with /".to_owned());
        }
        format!("{ECS_HOST}{relative}")
    } else if let Some(full) = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
        let parsed: hyper::Uri = full
            .parse()
            .map_err(|_| "AWS_CONTAINER_CREDENTIALS_FULL_URI is not a URL".to_owned())?;
        let host = parsed
            .host()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']');
        let allowed = match parsed.scheme_str() {
            Some("https") => true,
            Some("http") => {
                host == "localhost"
                    || matches!(host, "169.254.170.2" | "169.254.170.23" | "fd00:ec2::23")
                    || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
            }
            _ => false,
        };
        if !allowed {
            return Err(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, or http on a loopback or 169.254.170.2/.23"
                    .to_owned(),
            );
        }
        full.to_owned()
    } else {
        return Ok(None);
    };
    let auth = if let Some(file) = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
        ContainerAuth::File(PathBuf::from(file))
    } else if let Some(token) = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN") {
        ContainerAuth::Token(RedactedString(Zeroizing::new(token.to_owned())))
    } else {
        ContainerAuth::None
    };
    Ok(Some(Plan::Container { uri, auth }))
}

#[cfg(test)]
#[path = "credentials_tests.rs"]
mod tests;
