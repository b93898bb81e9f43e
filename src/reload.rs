//! What SIGHUP does: reload what can change safely in a running server and
//! log what changed, like nginx and Prometheus. The stream definitions and
//! publish keys (`[[streams]]`) and the local keyring's master key versions
//! are taken at once; a publish already running is never touched. Any other
//! change to the file (listen addresses, paths, limits) is named in the log
//! as needing a restart. A file that does not load changes nothing. The TLS
//! certificates (`[http]`, `[rtmp]`) are read again from their files: new
//! handshakes get the new one, established connections keep theirs, and a
//! certificate that does not load is logged while the old one stays.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tracing::{error, info, warn};

use crate::config::{Config, ConfigError};
use crate::kms::Kms;
use crate::live::{Registry, StreamSpec};
use crate::names::StreamName;

/// Applies a log filter (`[log] level`; `None`: the default), returning
/// whether it changed anything; given by the binary, which owns logging.
pub type LogLevelSetter = Arc<dyn Fn(Option<&str>) -> Result<Option<String>, String> + Send + Sync>;

/// Reloads a running `serve` (streams and keyring) or `keyserver` (keyring).
#[derive(Clone)]
pub struct Reloader {
    /// Sets the log filter; `None` in tests and library use.
    log_level: Option<LogLevelSetter>,
    /// `None` for a key server, which has no streams.
    registry: Option<Arc<Registry>>,
    kms: Arc<dyn Kms>,
    /// The configuration in effect: what the next reload compares against.
    running: Arc<Mutex<Config>>,
    /// The listeners' certificates, re-read on each reload.
    certificates: Vec<Arc<crate::tls::CertStore>>,
}

impl Reloader {
    /// A reloader for `sealcast serve`.
    pub fn for_server(config: &Config, registry: Arc<Registry>, kms: Arc<dyn Kms>) -> Self {
        Self {
            log_level: None,
            registry: Some(registry),
            kms,
            running: Arc::new(Mutex::new(config.clone())),
            certificates: Vec::new(),
        }
    }

    /// A reloader for `sealcast keyserver`: only the KMS.
    pub fn for_keyserver(config: &Config, kms: Arc<dyn Kms>) -> Self {
        Self {
            log_level: None,
            registry: None,
            kms,
            running: Arc::new(Mutex::new(config.clone())),
            certificates: Vec::new(),
        }
    }

    /// With the certificates in `stores` re-read on reload.
    pub fn with_certificates(mut self, stores: Vec<Arc<crate::tls::CertStore>>) -> Self {
        self.certificates = stores;
        self
    }

    /// With `[log] level` applied on reload through `setter`.
    pub fn with_log_level(mut self, setter: LogLevelSetter) -> Self {
        self.log_level = Some(setter);
        self
    }

    /// Applies `config` and returns one line per change. On error nothing
    /// has changed: the problems are returned, each naming its key.
    pub async fn reload(&self, config: &Config) -> Result<Vec<String>, ConfigError> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let specs = match &self.registry {
            Some(_) => Some(stream_specs(config)?),
            None => None,
        };
        let mut changes = Vec::new();
        if config.kms == running.kms {
            match self.kms.reload().await {
                Ok(Some(change)) => changes.push(change),
                Ok(None) => {}
                Err(e) => {
                    return Err(ConfigError {
                        problems: vec![e.to_string()],
                    });
                }
            }
        }
        if config.log != running.log
            && let Some(setter) = &self.log_level
        {
            match setter(config.log.level.as_deref()) {
                Ok(Some(change)) => changes.push(change),
                Ok(None) => {}
                Err(e) => return Err(ConfigError { problems: vec![e] }),
            }
        }
        for store in &self.certificates {
            let before = store.fingerprint();
            match store.reload() {
                Ok(after) if after != before => changes.push(format!(
                    "{} {}: new certificate, sha256 {after}",
                    store.files().cert_setting,
                    store.files().cert_file.display()
                )),
                Ok(_) => {}
                // Not a reason to refuse the rest of the reload.
                Err(e) => error!("reload: {e}; the running certificate stays"),
            }
        }
        if let (Some(registry), Some(specs)) = (&self.registry, specs) {
            changes.extend(registry.reload_streams(specs));
        }
        let restart_needed = [
            ("[rtmp]", config.rtmp != running.rtmp),
            ("[http]", config.http != running.http),
            ("[storage]", config.storage != running.storage),
            ("[hls]", config.hls != running.hls),
            ("[encryption]", config.encryption != running.encryption),
            ("[kms]", config.kms != running.kms),
            ("[auth]", config.auth != running.auth),
            (
                "[[streams]] protection",
                crate::keyservice::license::protected_streams(config)
                    != crate::keyservice::license::protected_streams(&running),
            ),
            ("[record]", config.record != running.record),
        ];
        for (section, changed) in restart_needed {
            if changed {
                changes.push(format!("{section} changed: takes effect after a restart"));
            }
        }
        let mut stored = self.running.lock().unwrap_or_else(|p| p.into_inner());
        stored.streams = config.streams.clone();
        stored.log = config.log.clone();
        Ok(changes)
    }
}

/// The registry's view of the configured streams, with keys read.
fn stream_specs(config: &Config) -> Result<Vec<StreamSpec>, ConfigError> {
    let resolved = config.resolve_streams()?;
    resolved
        .into_iter()
        .map(|s| {
            let name = StreamName::new(&s.app, &s.name).map_err(|e| ConfigError {
                problems: vec![format!("streams: {e}")],
            })?;
            Ok(StreamSpec {
                name,
                record: config.record_override(&s.app, &s.name),
                publish_key: s.publish_key,
            })
        })
        .collect()
}

/// Installs the SIGHUP handler now (so a SIGHUP never kills the process once
/// it has announced itself) and spawns the task that reloads on each one:
/// the configuration file is read again (`None`: the embedded defaults) and
/// applied, every change or problem logged.
pub fn reload_on_hangup(reloader: Reloader, config_path: Option<PathBuf>) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            let shown = config_path
                .as_ref()
                .map_or_else(|| "the embedded defaults".to_owned(), |p| p.display().to_string());
            info!("SIGHUP: reloading {shown}");
            let loaded = match &config_path {
                Some(path) => Config::load(path),
                None => Ok(Config::default()),
            };
            let result = match loaded {
                Ok(config) => reloader.reload(&config).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(changes) if changes.is_empty() => info!("reload: nothing changed"),
                Ok(changes) => {
                    for change in changes {
                        if change.contains("after a restart") {
                            warn!("reload: {change}");
                        } else {
                            info!("reload: {change}");
                        }
                    }
                }
                Err(problems) => {
                    for problem in &problems.problems {
                        error!("reload failed, the running configuration stays: {problem}");
                    }
                }
            }
        }
    });
    Ok(())
}
