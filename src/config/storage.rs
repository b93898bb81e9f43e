//! `[storage] backend` and `[storage.s3]`: where segments and playlists go.
//! Its own file, so the section's schema, defaults and checks read in one
//! place; `[storage] data_dir` stays in the schema beside it.

use serde::Deserialize;

/// `[storage] backend`: the local directory (the default, one node) or
/// S3-compatible object storage (several nodes, a CDN in front).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// Files under `storage.data_dir`.
    #[default]
    Local,
    /// Objects in `[storage.s3] bucket`.
    S3,
}

/// `[storage.s3]`: an S3-compatible bucket (AWS S3, MinIO, Ceph, R2 ...).
/// Credentials come from the AWS chain (environment, then the shared
/// credentials file), never from this file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The bucket; it must exist (checked at start).
    pub bucket: String,
    /// `http(s)://host[:port]` of an S3-compatible service; absent: AWS
    /// (`https://s3.<region>.amazonaws.com`).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The region requests are signed for; absent: `AWS_REGION`, else
    /// `AWS_DEFAULT_REGION`, else `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// Prepended to every object key (`sealcast/` puts a stream at
    /// `sealcast/live/demo/`); a `/` is added when it does not end in one.
    #[serde(default)]
    pub prefix: String,
    /// Path-style addressing (`endpoint/bucket/key`) instead of
    /// virtual-hosted (`bucket.endpoint/key`). Absent: path-style when an
    /// `endpoint` is set (what most S3-compatible services expect),
    /// virtual-hosted on AWS.
    #[serde(default)]
    pub path_style: Option<bool>,
    /// Profile of the shared credentials file; absent: the environment,
    /// then `AWS_PROFILE`, then `default`.
    #[serde(default)]
    pub profile: Option<String>,
}

impl S3Config {
    /// `prefix`, ending in `/` unless empty.
    pub fn key_prefix(&self) -> String {
        let prefix = self.prefix.trim_start_matches('/');
        if prefix.is_empty() || prefix.ends_with('/') {
            prefix.to_owned()
        } else {
            format!("{prefix}/")
        }
    }

    /// Whether requests use path-style addressing (see `path_style`).
    pub fn uses_path_style(&self) -> bool {
        self.path_style.unwrap_or(self.endpoint.is_some())
    }
}

/// Problems with `[storage] backend` and `[storage.s3]`.
pub(super) fn validate(backend: StorageBackend, s3: Option<&S3Config>, problems: &mut Vec<String>) {
    match (backend, s3) {
        (StorageBackend::S3, None) => {
            problems.push("storage.s3.bucket must be set when storage.backend = \"s3\"".to_owned());
        }
        (StorageBackend::S3, Some(s3)) => {
            if s3.bucket.trim().is_empty() {
                problems.push("storage.s3.bucket must not be empty".to_owned());
            }
            if let Some(endpoint) = &s3.endpoint
                && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
            {
                problems.push(format!(
                    "storage.s3.endpoint {endpoint:?} must start with http:// or https://"
                ));
            }
        }
        (StorageBackend::Local, _) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(bucket: &str, endpoint: Option<&str>, prefix: &str, path_style: Option<bool>) -> S3Config {
        S3Config {
            bucket: bucket.to_owned(),
            endpoint: endpoint.map(str::to_owned),
            region: None,
            prefix: prefix.to_owned(),
            path_style,
            profile: None,
        }
    }

    /// (backend, [storage.s3], the problems listed)
    #[test]
    fn validation_names_the_key() {
        let table: [(StorageBackend, Option<S3Config>, &[&str]); 5] = [
            (StorageBackend::Local, None, &[]),
            (StorageBackend::S3, Some(s3("media", None, "", None)), &[]),
            (
                StorageBackend::S3,
                None,
                &["storage.s3.bucket must be set when storage.backend = \"s3\""],
            ),
            (
                StorageBackend::S3,
                Some(s3(" ", None, "", None)),
                &["storage.s3.bucket must not be empty"],
            ),
            (
                StorageBackend::S3,
                Some(s3("media", Some("minio:9000"), "", None)),
                &["storage.s3.endpoint \"minio:9000\" must start with http:// or https://"],
            ),
        ];
        for (backend, config, want) in table {
            let mut problems = Vec::new();
            validate(backend, config.as_ref(), &mut problems);
            assert_eq!(problems, want, "{backend:?} {config:?}");
        }
    }

    /// The TOML tables as an operator writes them; unknown keys are errors.
    #[test]
    fn parses_from_toml() {
        let text = "[storage]\nbackend = \"s3\"\n[storage.s3]\nbucket = \"media\"\nendpoint = \"http://127.0.0.1:9000\"\nprefix = \"p\"\n";
        let config = crate::config::Config::from_toml_str(text).unwrap();
        assert_eq!(config.storage.backend, StorageBackend::S3);
        let s3 = config.storage.s3.unwrap();
        assert_eq!(
            (s3.bucket.as_str(), s3.key_prefix().as_str(), s3.uses_path_style()),
            ("media", "p/", true)
        );
        let error = crate::config::Config::from_toml_str("[storage.s3]\nbucket = \"m\"\nbuckt = \"x\"\n").unwrap_err();
        assert!(error.to_string().contains("buckt"), "{error}");
        let error = crate::config::Config::from_toml_str("[storage]\nbackend = \"gcs\"\n").unwrap_err();
        assert!(error.to_string().contains("storage.backend"), "{error}");
    }

    /// The prefix always ends in `/` (unless empty); path-style is the
    /// default with an endpoint, virtual-hosted on AWS, unless set.
    #[test]
    fn prefix_and_addressing_defaults() {
        let table = [
            (s3("b", None, "", None), "", false),
            (s3("b", None, "a/b", None), "a/b/", false),
            (s3("b", Some("http://x"), "/a/", None), "a/", true),
            (s3("b", Some("http://x"), "a/", Some(false)), "a/", false),
            (s3("b", None, "", Some(true)), "", true),
        ];
        for (config, prefix, path_style) in table {
            assert_eq!(config.key_prefix(), prefix, "{config:?}");
            assert_eq!(config.uses_path_style(), path_style, "{config:?}");
        }
    }
}
