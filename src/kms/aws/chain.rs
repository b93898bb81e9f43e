//! [`AwsCredentialChain`]: the standard AWS credential chain (see
//! [`super::credentials`] for the order) behind one async accessor, cached,
//! and refreshed before temporary credentials expire.
//!
//! Refresh is single-flight: one caller fetches while callers holding still
//! valid credentials go on with them, and callers with none wait for that one
//! fetch. A failed refresh keeps the old credentials while they last and is
//! not retried for [`RETRY_AFTER_FAILURE_MS`], so an STS or metadata outage
//! does not turn every KMS call into a credential request.
//!
//! Other AWS clients of the same identity share one chain (`Arc`): an S3
//! store, for instance, implements object_store's `CredentialProvider` with
//! `credentials().await` mapped to its `AwsCredential` (`access_key_id()`,
//! `secret_access_key()`, `session_token()`).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::credentials::{self, Env, Plan};
use super::metadata::{self, HttpClient, SendError};
use super::sigv4::Credentials;
use super::sts;
use crate::clock::Clock;

/// Refresh this long before expiry (or at half the remaining lifetime, if shorter).
pub const REFRESH_BEFORE_EXPIRY_MS: u64 = 5 * 60 * 1000;
/// After a failed fetch, callers get the outcome of that fetch for this long.
pub const RETRY_AFTER_FAILURE_MS: u64 = 5 * 1000;
/// Limit for each instance metadata request: off EC2 nothing answers, and the
/// chain should say so quickly (the AWS SDKs use 1 s too).
pub const IMDS_TIMEOUT: Duration = Duration::from_secs(1);

/// Credentials fetched from a source, and when they expire (Unix ms).
#[derive(Debug)]
pub struct Fetched {
    pub credentials: Credentials,
    pub expires_ms: Option<u64>,
}

/// Why no credentials could be had; says what was tried, never a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct CredentialsError(String);

/// How the chain looks for credentials.
#[derive(Debug, Clone)]
pub struct ChainSettings {
    /// A profile that wins over the environment keys (`kms.profile`).
    pub profile: Option<String>,
    /// The region, for the regional STS endpoint.
    pub region: String,
    /// Limit for each STS or container endpoint request.
    pub timeout: Duration,
    /// Limit for each instance metadata request.
    pub imds_timeout: Duration,
}

/// AWS credentials from the standard chain, cached and kept fresh. Share it
/// (`Arc`) between the clients of one identity; cheap to call per request.
pub struct AwsCredentialChain {
    settings: ChainSettings,
    env: Env,
    client: HttpClient,
    clock: Arc<dyn Clock>,
    cache: Mutex<Cache>,
    /// Held by the one caller fetching.
    flight: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Cache {
    current: Option<Current>,
    /// A failed fetch: until when it stands (Unix ms), and why.
    failure: Option<(u64, CredentialsError)>,
}

struct Current {
    credentials: Arc<Credentials>,
    /// `None`: long-term keys, never refreshed.
    expires_ms: Option<u64>,
    refresh_at_ms: Option<u64>,
    source: String,
}

impl AwsCredentialChain {
    /// A chain reading `env` (captured now) and the shared files, fetching
    /// with `client`, judging expiry by `clock`. Does no IO.
    pub fn new(settings: ChainSettings, env: Env, client: HttpClient, clock: Arc<dyn Clock>) -> Self {
        Self {
            settings,
            env,
            client,
            clock,
            cache: Mutex::new(Cache::default()),
            flight: tokio::sync::Mutex::new(()),
        }
    }

    /// A chain of just these credentials, never refreshed (tests, tools).
    pub fn fixed(credentials: Credentials, client: HttpClient) -> Self {
        let chain = Self::new(
            ChainSettings {
                profile: None,
                region: String::new(),
                timeout: IMDS_TIMEOUT,
                imds_timeout: IMDS_TIMEOUT,
            },
            Env::default(),
            client,
            crate::clock::system(),
        );
        chain.lock().current = Some(Current {
            credentials: Arc::new(credentials),
            expires_ms: None,
            refresh_at_ms: None,
            source: "given".to_owned(),
        });
        chain
    }

    /// The credentials to sign with now: cached, or fetched (once for all
    /// concurrent callers) when missing or about to expire.
    pub async fn credentials(&self) -> Result<Arc<Credentials>, CredentialsError> {
        if let Some(fresh) = self.fresh(self.clock.now_unix_ms()) {
            return Ok(fresh);
        }
        let _flight = match self.flight.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                // Someone is fetching: use what still works, else wait for it.
                if let Some(valid) = self.valid(self.clock.now_unix_ms()) {
                    return Ok(valid);
                }
                self.flight.lock().await
            }
        };
        let now = self.clock.now_unix_ms();
        if let Some(fresh) = self.fresh(now) {
            return Ok(fresh);
        }
        let failure = self.lock().failure.clone().filter(|(until, _)| now < *until);
        let error = match failure {
            Some((_, error)) => error,
            None => match self.fetch().await {
                Ok((fetched, source)) => return Ok(self.store(fetched, source)),
                Err(error) => {
                    tracing::warn!(error = %error, "AWS credentials: fetch failed");
                    let until = self.clock.now_unix_ms().saturating_add(RETRY_AFTER_FAILURE_MS);
                    self.lock().failure = Some((until, error.clone()));
                    error
                }
            },
        };
        self.valid(self.clock.now_unix_ms()).ok_or(error)
    }

    /// Where the current credentials came from, e.g. `profile [ops]`.
    pub fn source(&self) -> Option<String> {
        self.lock().current.as_ref().map(|c| c.source.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        // The cache holds plain values; a panic elsewhere cannot leave it half-written.
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Cached credentials not yet due for refresh.
    fn fresh(&self, now: u64) -> Option<Arc<Credentials>> {
        let cache = self.lock();
        let current = cache.current.as_ref()?;
        current
            .refresh_at_ms
            .is_none_or(|at| now < at)
            .then(|| Arc::clone(&current.credentials))
    }

    /// Cached credentials not yet expired.
    fn valid(&self, now: u64) -> Option<Arc<Credentials>> {
        let cache = self.lock();
        let current = cache.current.as_ref()?;
        current
            .expires_ms
            .is_none_or(|at| now < at)
            .then(|| Arc::clone(&current.credentials))
    }

    fn store(&self, fetched: Fetched, source: String) -> Arc<Credentials> {
        let now = self.clock.now_unix_ms();
        let refresh_at_ms = fetched.expires_ms.map(|expires| {
            let lead = REFRESH_BEFORE_EXPIRY_MS.min(expires.saturating_sub(now) / 2);
            expires.saturating_sub(lead)
        });
        tracing::info!(
            source = %source,
            access_key_id = fetched.credentials.access_key_id(),
            expires_in_secs = fetched.expires_ms.map(|e| e.saturating_sub(now) / 1000),
            "AWS credentials loaded"
        );
        let credentials = Arc::new(fetched.credentials);
        let mut cache = self.lock();
        cache.failure = None;
        cache.current = Some(Current {
            credentials: Arc::clone(&credentials),
            expires_ms: fetched.expires_ms,
            refresh_at_ms,
            source,
        });
        credentials
    }

    /// Runs the chain: picks the source, then fetches from it.
    async fn fetch(&self) -> Result<(Fetched, String), CredentialsError> {
        let (plan, mut tried) = credentials::select(self.settings.profile.as_deref(), &self.env)
            .await
            .map_err(CredentialsError)?;
        match plan {
            Plan::Static { credentials, source } => Ok((
                Fetched {
                    credentials,
                    expires_ms: None,
                },
                source,
            )),
            Plan::WebIdentity {
                role_arn,
                token_file,
                session_name,
                source,
            } => {
                let endpoint = sts::endpoint(&self.env, &self.settings.region);
                let session_name = session_name.unwrap_or_else(|| format!("sealcast-{}", self.clock.now_unix_secs()));
                let request = sts::WebIdentityRequest {
                    endpoint: &endpoint,
                    role_arn: &role_arn,
                    token_file: &token_file,
                    session_name: &session_name,
                };
                let fetched = sts::assume_role_with_web_identity(&self.client, &request, self.settings.timeout)
                    .await
                    .map_err(|why| CredentialsError(format!("AWS credentials from {source}: {why}")))?;
                Ok((fetched, format!("{source}, role {role_arn}")))
            }
            Plan::Container { uri, auth } => {
                let fetched = metadata::container(&self.client, &uri, &auth, self.settings.timeout)
                    .await
                    .map_err(|why| CredentialsError(format!("AWS credentials: {why}")))?;
                Ok((fetched, format!("container endpoint {uri}")))
            }
            Plan::Imds { endpoint } => {
                match metadata::imds(&self.client, &endpoint, self.settings.imds_timeout).await {
                    Ok(fetched) => Ok((fetched, format!("instance metadata {endpoint}"))),
                    Err(SendError::Unreachable(_)) => {
                        let host = endpoint.trim_start_matches("http://").trim_start_matches("https://");
                        tried.push(format!(
                            "instance metadata unreachable at {host} ({:?})",
                            self.settings.imds_timeout
                        ));
                        Err(CredentialsError(format!("no AWS credentials: {}", tried.join("; "))))
                    }
                    Err(SendError::Other(why)) => Err(CredentialsError(format!("AWS credentials: {why}"))),
                }
            }
        }
    }
}

impl fmt::Debug for AwsCredentialChain {
    /// Settings and the source; never a key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentialChain")
            .field("settings", &self.settings)
            .field("source", &self.source())
            .finish_non_exhaustive()
    }
}
