//! `[metrics]`: the Prometheus endpoint. Its own file, so the section's
//! schema, defaults and checks read in one place. The struct is both the
//! schema and the validated configuration (nothing needs converting).

use std::net::SocketAddr;

use serde::Deserialize;

use super::schema::de_socket_addr;

/// `[metrics]`: `GET /metrics` in the Prometheus text format, on a listener
/// of its own, so it can stay on loopback (or a private interface) while
/// playback is public.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `/metrics` at all. `false`: no listener, and nothing is recorded
    /// that would not be counted anyway.
    #[serde(default = "default_metrics_enabled")]
    pub enabled: bool,
    /// Address of the metrics listener, an IP and port. Loopback by
    /// default; `0.0.0.0:9464` lets a Prometheus server on another machine
    /// scrape it (metrics carry stream names, no secrets).
    #[serde(default = "default_metrics_listen", deserialize_with = "de_socket_addr")]
    pub listen: SocketAddr,
    /// Serve `/metrics` over HTTPS with `[http]`'s certificate (reloaded
    /// with it on SIGHUP), for a scraper on another machine. Default: false.
    #[serde(default)]
    pub tls: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: default_metrics_enabled(),
            listen: default_metrics_listen(),
            tls: false,
        }
    }
}

fn default_metrics_enabled() -> bool {
    true
}

/// Port 9464: the OpenTelemetry Prometheus exporter's, free of the
/// Prometheus server's own 9090.
fn default_metrics_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}

/// Problems with `[metrics]`, given the other listeners' addresses and
/// whether `[http]` has a certificate.
pub(super) fn validate(
    metrics: &MetricsConfig,
    others: &[(&str, SocketAddr)],
    http_has_tls: bool,
    problems: &mut Vec<String>,
) {
    if metrics.tls && !http_has_tls {
        problems
            .push("metrics.tls needs http.tls_cert_file and http.tls_key_file: it uses their certificate".to_owned());
    }
    if !metrics.enabled || metrics.listen.port() == 0 {
        return;
    }
    for (key, addr) in others {
        if *addr == metrics.listen {
            problems.push(format!(
                "metrics.listen {} is the same address as {key}",
                metrics.listen
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_clashes() {
        let metrics = MetricsConfig::default();
        assert!(metrics.enabled);
        assert_eq!(metrics.listen.to_string(), "127.0.0.1:9464");
        let mut problems = Vec::new();
        validate(&metrics, &[("http.listen", metrics.listen)], false, &mut problems);
        assert_eq!(
            problems,
            ["metrics.listen 127.0.0.1:9464 is the same address as http.listen"]
        );
        let off = MetricsConfig {
            enabled: false,
            ..MetricsConfig::default()
        };
        let mut problems = Vec::new();
        validate(&off, &[("http.listen", metrics.listen)], false, &mut problems);
        assert!(problems.is_empty());
    }

    #[test]
    fn the_example_file_sets_it() {
        let text = include_str!("../../sealcast.example.toml");
        let config = crate::config::Config::from_toml_str(text).unwrap();
        assert_eq!(config.metrics.listen.to_string(), "10.0.0.5:9464");
    }

    #[test]
    fn the_section_as_written() {
        let config = crate::config::Config::from_toml_str("[metrics]\nlisten = \"0.0.0.0:9100\"\n").unwrap();
        assert_eq!(config.metrics.listen.to_string(), "0.0.0.0:9100");
        let problems = |text: &str| crate::config::Config::from_toml_str(text).unwrap_err().problems;
        assert_eq!(
            problems("[metrics]\nlisen = \"127.0.0.1:1\"\n"),
            ["metrics.lisen: unknown field `lisen`, expected one of `enabled`, `listen`, `tls` (line 2, column 1)"]
        );
        assert_eq!(
            problems("[http]\nlisten = \"127.0.0.1:9464\"\n"),
            ["metrics.listen 127.0.0.1:9464 is the same address as http.listen"]
        );
        assert_eq!(
            problems("[metrics]\ntls = true\n"),
            ["metrics.tls needs http.tls_cert_file and http.tls_key_file: it uses their certificate"]
        );
    }
}
