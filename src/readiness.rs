//! `/readyz`: can this process do its job right now? `/healthz` only says it
//! answers (liveness); readiness asks each dependency: the KMS (a data key
//! generated under a probe context), the replay store (a Redis connection
//! opened and authenticated), the storage (a file written and removed in the
//! data directory). Results are cached briefly, so a load balancer polling
//! every second costs one round of checks per [`CACHE_FOR`]. The same checks
//! run once at start ([`Readiness::log_at_start`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::crypto::{EncryptionContext, KeyId};
use crate::keyservice::replay::ReplayStore;
use crate::kms::Kms;

/// How long one round of checks is reused.
pub const CACHE_FOR: Duration = Duration::from_secs(10);

/// The dependencies of a server, checked on demand.
pub struct Readiness {
    kms: Arc<dyn Kms>,
    replay: Arc<dyn ReplayStore>,
    /// The data directory (`serve`); `None` for a key server, which writes nothing.
    storage: Option<PathBuf>,
    /// The bucket, with `[storage] backend = "s3"` (listed once per check).
    object_storage: Option<Arc<crate::storage::s3::S3Store>>,
    last: Mutex<Option<(Instant, Vec<Check>)>>,
}

/// One dependency's state: its name, and why it is not ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub problem: Option<String>,
}

impl Readiness {
    pub fn new(kms: Arc<dyn Kms>, replay: Arc<dyn ReplayStore>, storage: Option<PathBuf>) -> Self {
        Self {
            kms,
            replay,
            storage,
            object_storage: None,
            last: Mutex::new(None),
        }
    }

    /// Checks the bucket segments go to, too.
    pub fn with_object_storage(mut self, store: Arc<crate::storage::s3::S3Store>) -> Self {
        self.object_storage = Some(store);
        self
    }

    /// Every dependency's state, from the cache when it is fresh.
    pub async fn check(&self) -> Vec<Check> {
        let mut last = self.last.lock().await;
        if let Some((at, checks)) = last.as_ref()
            && at.elapsed() < CACHE_FOR
        {
            return checks.clone();
        }
        let checks = self.run().await;
        *last = Some((Instant::now(), checks.clone()));
        checks
    }

    async fn run(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        // A probe context (the key is discarded at once; nothing refers to it).
        let probe = KeyId::new("readyz").map(|id| EncryptionContext::new("_readyz/probe", &id));
        let kms = match probe {
            Ok(ctx) => self.kms.generate_data_key(&ctx).await.err().map(|e| e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        checks.push(Check {
            name: "kms",
            problem: kms,
        });
        checks.push(Check {
            name: "replay store",
            problem: self.replay.check().await.err().map(|e| e.to_string()),
        });
        if let Some(dir) = &self.storage {
            checks.push(Check {
                name: "storage",
                problem: probe_dir(dir.clone()).await.err(),
            });
        }
        if let Some(store) = &self.object_storage {
            checks.push(Check {
                name: "object storage",
                problem: store.check().await.err().map(|e| e.to_string()),
            });
        }
        checks
    }

    /// Runs the checks once and logs each dependency that is not ready (a
    /// warning: the server starts anyway, and `/readyz` says 503 until it is).
    pub async fn log_at_start(&self) {
        for check in self.check().await {
            match check.problem {
                None => info!("{}: ready", check.name),
                Some(problem) => warn!("{} is not ready at start: {problem}", check.name),
            }
        }
    }
}

/// Writes and removes a small file in `dir`, on the blocking pool.
async fn probe_dir(dir: PathBuf) -> Result<(), String> {
    tokio::task::spawn_blocking(move || {
        let path = dir.join(".readyz-probe");
        std::fs::write(&path, b"ok")
            .and_then(|()| std::fs::remove_file(&path))
            .map_err(|e| format!("{}: {e}", dir.display()))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// `GET /readyz`: 200 `ready` when every dependency is, else 503 naming the
/// ones that are not (the reasons go to the log, not to the client).
pub fn router(readiness: Arc<Readiness>) -> Router {
    Router::new().route("/readyz", get(readyz)).with_state(readiness)
}

async fn readyz(State(readiness): State<Arc<Readiness>>) -> (StatusCode, String) {
    let checks = readiness.check().await;
    let mut body = String::new();
    let mut ready = true;
    for check in &checks {
        match &check.problem {
            None => body.push_str(&format!("{}: ok\n", check.name)),
            Some(problem) => {
                ready = false;
                warn!(route = "readyz", "{} not ready: {problem}", check.name);
                body.push_str(&format!("{}: not ready\n", check.name));
            }
        }
    }
    if ready {
        (StatusCode::OK, format!("ready\n{body}"))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready\n{body}"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::keyservice::replay::ReplayError;
    use crate::kms::local::LocalKms;

    /// A replay store that counts checks and fails them.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    #[async_trait::async_trait]
    impl ReplayStore for Counting {
        async fn first_use(
            &self,
            _: &[u8; crate::auth::ticket::NONCE_LEN],
            _: u64,
            _: u64,
        ) -> Result<bool, ReplayError> {
            Ok(true)
        }
        async fn check(&self) -> Result<(), ReplayError> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Err(ReplayError::Unavailable("down".into()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn checks_are_cached_for_a_while() {
        let dir = tempfile::tempdir().unwrap();
        let kms: Arc<dyn Kms> = Arc::new(LocalKms::open_or_create(&dir.path().join("k.json")).unwrap());
        let replay = Arc::new(Counting::default());
        let readiness = Readiness::new(
            kms,
            Arc::clone(&replay) as Arc<dyn ReplayStore>,
            Some(dir.path().to_owned()),
        );
        let first = readiness.check().await;
        assert_eq!(
            first,
            [
                Check {
                    name: "kms",
                    problem: None
                },
                Check {
                    name: "replay store",
                    problem: Some("replay store unavailable: down".into())
                },
                Check {
                    name: "storage",
                    problem: None
                },
            ]
        );
        readiness.check().await;
        assert_eq!(replay.0.load(Ordering::Relaxed), 1, "within CACHE_FOR: cached");
        tokio::time::advance(CACHE_FOR).await;
        readiness.check().await;
        assert_eq!(replay.0.load(Ordering::Relaxed), 2, "after CACHE_FOR: checked again");
        assert!(!dir.path().join(".readyz-probe").exists());
    }
}
