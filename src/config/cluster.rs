//! `[cluster]`: publish leases in a Redis shared by every ingest node. Absent:
//! one node, no Redis, today's behaviour. The struct is both the schema and
//! the validated configuration.

use std::path::PathBuf;

use serde::Deserialize;

use super::RedisUrl;

/// `[cluster]`: see `docs/cluster.md`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `redis://host[:port][/db]` or `rediss://...` (TLS). Required.
    pub redis_url: String,
    /// This node's name in lease values and logs: 1 to 64 of `A-Z a-z 0-9 . _ -`,
    /// unique in the cluster. Required.
    pub node_id: String,
    /// Lease time to live, 5 to 300 seconds: after a node dies, its streams
    /// can be published elsewhere within this long.
    #[serde(default = "default_lease_ttl_secs")]
    pub lease_ttl_secs: u64,
    /// Prefix of the lease keys; `app/name` follows.
    #[serde(default = "default_lease_key_prefix")]
    pub lease_key_prefix: String,
    /// ACL user name; absent: the `default` user.
    #[serde(default)]
    pub redis_username: Option<String>,
    /// Environment variable holding the Redis password.
    #[serde(default)]
    pub redis_password_env: Option<String>,
    /// File holding the Redis password (mode 0600).
    #[serde(default)]
    pub redis_password_file: Option<PathBuf>,
    /// `rediss://`: PEM CA certificate(s) to trust instead of the Mozilla roots.
    #[serde(default)]
    pub redis_tls_ca_file: Option<PathBuf>,
    /// Bound on one Redis request, 100 to 10000 ms.
    #[serde(default = "default_redis_timeout_ms")]
    pub redis_timeout_ms: u64,
}

fn default_lease_ttl_secs() -> u64 {
    10
}

fn default_lease_key_prefix() -> String {
    "sealcast:lease:".into()
}

fn default_redis_timeout_ms() -> u64 {
    1000
}

impl ClusterConfig {
    /// The Redis password, if one is configured.
    pub fn resolve_password(&self) -> Result<Option<crate::auth::Secret>, super::ConfigError> {
        super::secrets::resolve_cluster_password(
            self.redis_password_env.as_deref(),
            self.redis_password_file.as_deref(),
        )
    }
}

/// Problems with `[cluster]`, each naming its key.
pub(super) fn validate(cluster: &ClusterConfig, problems: &mut Vec<String>) {
    if let Err(why) = RedisUrl::parse(&cluster.redis_url) {
        problems.push(format!("cluster.redis_url {:?} {why}", cluster.redis_url));
    }
    if !crate::cluster::lease::valid_node_id(&cluster.node_id) {
        problems.push(format!(
            "cluster.node_id {:?} must be 1 to 64 characters of A-Z a-z 0-9 . _ -",
            cluster.node_id
        ));
    }
    if !(5..=300).contains(&cluster.lease_ttl_secs) {
        problems.push(format!(
            "cluster.lease_ttl_secs must be between 5 and 300 (got {})",
            cluster.lease_ttl_secs
        ));
    }
    if !(100..=10_000).contains(&cluster.redis_timeout_ms) {
        problems.push(format!(
            "cluster.redis_timeout_ms must be between 100 and 10000 (got {})",
            cluster.redis_timeout_ms
        ));
    }
    if cluster.redis_password_env.is_some() && cluster.redis_password_file.is_some() {
        problems.push("cluster.redis_password_env and cluster.redis_password_file are exclusive".into());
    }
    if cluster.lease_key_prefix.is_empty() {
        problems.push("cluster.lease_key_prefix must not be empty".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_name_their_keys() {
        let good: ClusterConfig = toml::from_str("redis_url = \"redis://127.0.0.1\"\nnode_id = \"a\"\n").unwrap();
        assert_eq!(good.lease_ttl_secs, 10);
        let mut p = Vec::new();
        validate(&good, &mut p);
        assert!(p.is_empty(), "{p:?}");
        let bad = ClusterConfig {
            redis_url: "http://x".into(),
            node_id: "a b".into(),
            lease_ttl_secs: 2,
            redis_timeout_ms: 50,
            ..good
        };
        validate(&bad, &mut p);
        assert_eq!(
            p,
            [
                "cluster.redis_url \"http://x\" must start with redis://, rediss://, redis+sentinel:// or rediss+sentinel://",
                "cluster.node_id \"a b\" must be 1 to 64 characters of A-Z a-z 0-9 . _ -",
                "cluster.lease_ttl_secs must be between 5 and 300 (got 2)",
                "cluster.redis_timeout_ms must be between 100 and 10000 (got 50)",
            ]
        );
    }
}
