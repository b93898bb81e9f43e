//! S3-compatible object storage through the `object_store` crate (SigV4,
//! XML and HTTP are its business). Every request has a time limit, and the
//! client's own retries are off: the caller decides (the segment uploader
//! retries with backoff until the segment's deadline).

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt as _;
use object_store::aws::{AmazonS3, AmazonS3Builder, AwsCredential};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, CredentialProvider, ObjectStore as _, ObjectStoreExt as _, RetryConfig};

use super::StorageError;
use crate::config::S3Config;
use crate::kms::aws::chain::{AwsCredentialChain, ChainSettings};
use crate::kms::aws::credentials;
use crate::kms::aws::sigv4::Credentials;

/// Limit of one request (a segment of a few MB on a slow link included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Limit of the connection setup.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Limit of the check at start.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// A bucket (and key prefix) of an S3-compatible service.
pub struct S3Store {
    store: AmazonS3,
    prefix: String,
    bucket: String,
    endpoint: String,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// The AWS credential chain as object storage's client asks for it: the one
/// adapter between sealcast's chain ([`AwsCredentialChain`]: environment,
/// shared profile, web identity, container, instance metadata; refreshed
/// before temporary credentials expire) and `object_store`. The mapped
/// credential is kept until the chain hands out new ones.
pub struct ChainCredentials {
    chain: Arc<AwsCredentialChain>,
    mapped: std::sync::Mutex<Option<(Arc<Credentials>, Arc<AwsCredential>)>>,
}

impl std::fmt::Debug for ChainCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainCredentials").finish_non_exhaustive()
    }
}

impl ChainCredentials {
    /// Credentials from the chain for `profile` (absent: the environment,
    /// then `AWS_PROFILE`, then `default`), fetched at the first request.
    pub fn new(profile: Option<&str>, region: &str) -> Result<Self, StorageError> {
        let client = crate::kms::aws::http_client(REQUEST_TIMEOUT)
            .map_err(|e| StorageError::Config(format!("storage.s3 credentials: {e}")))?;
        let chain = AwsCredentialChain::new(
            ChainSettings {
                profile: profile.map(str::to_owned),
                region: region.to_owned(),
                timeout: REQUEST_TIMEOUT,
                imds_timeout: crate::kms::aws::chain::IMDS_TIMEOUT,
            },
            credentials::Env::capture(&credentials::process_env),
            client,
            crate::clock::system(),
        );
        Ok(Self {
            chain: Arc::new(chain),
            mapped: std::sync::Mutex::new(None),
        })
    }
}

#[async_trait::async_trait]
impl CredentialProvider for ChainCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let current = self
            .chain
            .credentials()
            .await
            .map_err(|e| object_store::Error::Generic {
                store: "S3",
                source: Box::new(e),
            })?;
        let mut mapped = self.mapped.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((from, credential)) = mapped.as_ref()
            && Arc::ptr_eq(from, &current)
        {
            return Ok(Arc::clone(credential));
        }
        let credential = Arc::new(AwsCredential {
            key_id: current.access_key_id().to_owned(),
            secret_key: current.secret_access_key().to_owned(),
            token: current.session_token().map(str::to_owned),
        });
        *mapped = Some((current, Arc::clone(&credential)));
        Ok(credential)
    }
}

impl S3Store {
    /// Sets up the client (no request yet; see [`S3Store::check`]).
    pub fn open(config: &S3Config, metrics: Option<Arc<crate::metrics::Metrics>>) -> Result<Self, StorageError> {
        // reqwest's rustls takes the process's provider: ring, as everywhere
        // in sealcast. Installing twice is harmless (the first one stays).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let region = credentials::resolve_region(config.region.as_deref(), &credentials::process_env)
            .unwrap_or_else(|_| "us-east-1".to_owned());
        let credentials = ChainCredentials::new(config.profile.as_deref(), &region)?;
        let options = ClientOptions::new()
            .with_timeout(REQUEST_TIMEOUT)
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_allow_http(true);
        let retry = RetryConfig {
            max_retries: 0,
            retry_timeout: REQUEST_TIMEOUT,
            ..RetryConfig::default()
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&region)
            .with_credentials(Arc::new(credentials))
            .with_virtual_hosted_style_request(!config.uses_path_style())
            .with_client_options(options)
            .with_retry(retry);
        let endpoint = match &config.endpoint {
            Some(endpoint) => {
                builder = builder.with_endpoint(endpoint.trim_end_matches('/'));
                endpoint.clone()
            }
            None => format!("https://s3.{region}.amazonaws.com"),
        };
        let store = builder
            .build()
            .map_err(|e| StorageError::Config(format!("storage.s3: {e}")))?;
        Ok(Self {
            store,
            prefix: config.key_prefix(),
            bucket: config.bucket.clone(),
            endpoint,
            metrics,
        })
    }

    /// Lists the prefix once: a wrong bucket, endpoint or credential is an
    /// error naming the setting to fix.
    pub async fn check(&self) -> Result<(), StorageError> {
        let prefix = ObjectPath::from(self.prefix.as_str());
        let listed = tokio::time::timeout(CHECK_TIMEOUT, self.store.list_with_delimiter(Some(&prefix))).await;
        let error = match listed {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(error)) => error,
            Err(_) => {
                return Err(StorageError::Config(format!(
                    "storage.s3.endpoint {}: no answer within {} s",
                    self.endpoint,
                    CHECK_TIMEOUT.as_secs()
                )));
            }
        };
        Err(StorageError::Config(self.explain(&error)))
    }

    /// What a failed check means, naming the setting.
    fn explain(&self, error: &object_store::Error) -> String {
        let text = format!("{error}");
        let (bucket, endpoint) = (&self.bucket, &self.endpoint);
        if matches!(error, object_store::Error::NotFound { .. }) || text.contains("NoSuchBucket") {
            format!("storage.s3.bucket {bucket:?} does not exist at {endpoint}: {text}")
        } else if ["InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"]
            .iter()
            .any(|s| text.contains(s))
        {
            format!(
                "storage.s3: the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or storage.s3.profile) are refused for bucket {bucket:?} at {endpoint}: {text}"
            )
        } else if text.contains("error sending request") || text.contains("connect") || text.contains("dns") {
            format!("storage.s3.endpoint {endpoint}: cannot reach it: {text}")
        } else {
            format!("storage.s3 (bucket {bucket:?} at storage.s3.endpoint {endpoint}): {text}")
        }
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn path(&self, key: &str) -> ObjectPath {
        ObjectPath::from(format!("{}{key}", self.prefix))
    }

    /// Counts a request and maps its error.
    fn record<T>(
        &self,
        op: &'static str,
        key: &str,
        result: Result<object_store::Result<T>, tokio::time::error::Elapsed>,
    ) -> Result<Option<T>, StorageError> {
        let (label, out) = match result {
            Ok(Ok(value)) => ("ok", Ok(Some(value))),
            Ok(Err(object_store::Error::NotFound { .. })) => ("not_found", Ok(None)),
            Ok(Err(source)) => (
                "error",
                Err(StorageError::Object {
                    op,
                    bucket: self.bucket.clone(),
                    key: key.to_owned(),
                    status: http_status(&source),
                    source: Box::new(source),
                }),
            ),
            Err(_) => (
                "error",
                Err(StorageError::Timeout {
                    op,
                    bucket: self.bucket.clone(),
                    key: key.to_owned(),
                    secs: REQUEST_TIMEOUT.as_secs(),
                }),
            ),
        };
        if let Some(metrics) = &self.metrics {
            metrics
                .counter(crate::metrics::STORAGE_REQUESTS, &[("op", op), ("result", label)])
                .increment(1);
        }
        out
    }

    pub async fn put(&self, key: &str, pieces: &[Bytes]) -> Result<(), StorageError> {
        let payload: object_store::PutPayload = pieces.iter().cloned().collect();
        let result = tokio::time::timeout(REQUEST_TIMEOUT, self.store.put(&self.path(key), payload)).await;
        self.record("put", key, result).map(|_| ())
    }

    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        let result = tokio::time::timeout(REQUEST_TIMEOUT, async {
            self.store.get(&self.path(key)).await?.bytes().await
        })
        .await;
        self.record("get", key, result)
    }

    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Option<Bytes>, StorageError> {
        let result = tokio::time::timeout(REQUEST_TIMEOUT, self.store.get_range(&self.path(key), range)).await;
        self.record("get", key, result)
    }

    pub async fn head(&self, key: &str) -> Result<Option<u64>, StorageError> {
        let result = tokio::time::timeout(REQUEST_TIMEOUT, self.store.head(&self.path(key))).await;
        Ok(self.record("head", key, result)?.map(|meta| meta.size))
    }

    /// Keys under `dir_key/`, relative to the prefix.
    pub async fn list(&self, dir_key: &str) -> Result<Vec<String>, StorageError> {
        let dir = self.path(dir_key);
        let result = tokio::time::timeout(REQUEST_TIMEOUT, self.store.list(Some(&dir)).try_collect::<Vec<_>>()).await;
        let metas = self.record("list", dir_key, result)?.unwrap_or_default();
        let mut keys: Vec<String> = metas
            .into_iter()
            .filter_map(|meta| {
                meta.location
                    .as_ref()
                    .strip_prefix(self.prefix.as_str())
                    .map(str::to_owned)
            })
            .collect();
        keys.sort();
        Ok(keys)
    }

    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let result = tokio::time::timeout(REQUEST_TIMEOUT, self.store.delete(&self.path(key))).await;
        self.record("delete", key, result).map(|_| ())
    }
}

/// The HTTP status an S3 request was answered with, when it got one:
/// `object_store` keeps it in its error (`PermissionDenied` is a 403,
/// `Unauthenticated` a 401) or in the text "status code: 503 ...".
fn http_status(error: &object_store::Error) -> Option<u16> {
    match error {
        object_store::Error::PermissionDenied { .. } => return Some(403),
        object_store::Error::Unauthenticated { .. } => return Some(401),
        object_store::Error::NotFound { .. } => return Some(404),
        _ => {}
    }
    let text = format!("{error}");
    let at = text.find("status code: ")? + "status code: ".len();
    text.get(at..at + 3)?.parse().ok()
}

/// `503`, or `none` for a request that got no HTTP answer (connection
/// refused or reset).
pub fn status_label(status: Option<u16>) -> String {
    status.map_or_else(|| "none".to_owned(), |s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_read_from_errors() {
        let generic = |text: &str| object_store::Error::Generic {
            store: "S3",
            source: text.to_owned().into(),
        };
        let denied = object_store::Error::PermissionDenied {
            path: "p".into(),
            source: "AccessDenied".into(),
        };
        assert_eq!(http_status(&denied), Some(403));
        assert_eq!(
            http_status(&generic(
                "Server returned non-2xx status code: 503 Service Unavailable: SlowDown"
            )),
            Some(503)
        );
        assert_eq!(http_status(&generic("error sending request")), None);
        assert_eq!(status_label(None), "none");
    }
}
