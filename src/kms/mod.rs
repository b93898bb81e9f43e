//! Key providers behind one async trait.
//!
//! A [`Kms`] hands out data keys (plaintext for the segment cipher, wrapped for the
//! playlist) and unwraps them again for the key endpoint. Providers:
//! - [`local::LocalKms`] (the default): versioned master keys in a keyring file,
//!   AES-256-GCM wrapping;
//! - [`aws::AwsKms`]: AWS KMS `GenerateDataKey`/`Decrypt` (or a compatible service).
//!
//! # Encryption context
//! Every wrapped key is bound to an [`EncryptionContext`], the same for every
//! provider: `{"key_id": "<key id>", "stream": "<app>/<name>"}`, the key id being
//! the one in the key URI (`/keys/{app}/{name}/{key_id}`). The local provider
//! authenticates it as AES-GCM associated data, AWS KMS as its `EncryptionContext`;
//! either way a wrapped key copied to another stream or key id does not unwrap, and
//! the key endpoint answers 403.
//!
//! [`open`] opens the provider `[kms]` names.
//!
//! Wrappers: [`Delayed`] adds latency to every call (tests and demonstrations of
//! prefetching); [`KeyPrefetcher`] keeps a stream's next data key ready ahead of need.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tracing::info;

use crate::config::KmsConfig;
use crate::crypto::{DataKey, EncryptionContext, WrappedKey};
use aws::{AwsKms, AwsSettings};
use local::LocalKms;

pub mod aws;
mod delayed;
pub mod local;
mod prefetch;

pub use delayed::Delayed;
pub use prefetch::{Backoff, KeyPrefetcher, PrefetchedKey};

/// A key management service that generates and unwraps data keys.
#[async_trait]
pub trait Kms: Send + Sync + 'static {
    /// A fresh data key and its wrapped form, bound to `ctx`.
    async fn generate_data_key(&self, ctx: &EncryptionContext) -> Result<(DataKey, WrappedKey), KmsError>;

    /// Unwraps `wrapped`, which must have been generated for exactly `ctx`.
    async fn decrypt(&self, wrapped: &WrappedKey, ctx: &EncryptionContext) -> Result<DataKey, KmsError>;

    /// Loads what may have changed since the provider was opened (the local
    /// keyring's master key versions, on SIGHUP). Returns what changed, for
    /// the log, or `None`; on error the provider keeps what it had. A
    /// wrapper (metrics, test latency) must forward it.
    async fn reload(&self) -> Result<Option<String>, KmsError> {
        Ok(None)
    }
}

/// Errors of key providers. None of them carries key material.
#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    /// The wrapped key is malformed, names a master key this provider does not have,
    /// or does not authenticate under its context: the client's fault (HTTP 403).
    #[error("wrapped key does not authenticate")]
    InvalidCiphertext,
    /// The wrapped key names a master key version newer than any this
    /// process has loaded, as after a `kms rotate` by another process (HTTP
    /// 503 and a log line: reload with SIGHUP or restart).
    #[error("unknown master key version {0}: reload (SIGHUP) or restart")]
    UnknownMasterVersion(u32),
    /// The provider is unavailable or throttling (HTTP 503); the text is for logs.
    #[error("key provider unavailable: {0}")]
    Unavailable(String),
    /// The keyring file or its directory could not be read, created or written.
    #[error("keyring {}: {action}: {source}", .path.display())]
    KeyringIo {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// What was being done, e.g. "open", "write".
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The keyring is readable or writable by group or others; like ssh with a
    /// private key, the local provider refuses to use it.
    #[error(
        "keyring {} is accessible by group or others (mode {mode:03o}); it holds master keys, run `chmod 600 {}`",
        .path.display(),
        .path.display()
    )]
    KeyringPermissions {
        /// The keyring file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The provider cannot be set up (no credentials, an endpoint this build
    /// cannot reach); the text says what to fix.
    #[error("{0}")]
    Config(String),
    /// The keyring's content is not a valid keyring.
    #[error("keyring {} is invalid: {reason}", .path.display())]
    KeyringInvalid {
        /// The keyring file.
        path: PathBuf,
        /// What is wrong, without key material.
        reason: String,
    },
}

/// Opens the key provider `[kms]` names: the local keyring (created on first
/// start, refused when group or others may read it), or AWS KMS with region
/// and credentials from the environment. Makes no KMS request.
pub fn open(config: &KmsConfig) -> Result<Arc<dyn Kms>, KmsError> {
    match config {
        KmsConfig::Local { keyring } => {
            let local = LocalKms::open_or_create(keyring)?;
            info!(
                keyring = %local.path().display(),
                version = local.current_version(),
                "key provider: local keyring"
            );
            Ok(Arc::new(local))
        }
        KmsConfig::Aws(aws) => {
            let settings = AwsSettings {
                key_id: aws.key_id.clone(),
                region: aws.region.clone(),
                endpoint: aws.endpoint.clone(),
                profile: aws.profile.clone(),
                request_timeout: Duration::from_millis(aws.request_timeout_ms),
            };
            let aws = AwsKms::new(&settings)?;
            info!(
                "key provider: AWS KMS key {} in {} at {}",
                aws.key_id(),
                aws.region(),
                aws.endpoint()
            );
            Ok(Arc::new(aws))
        }
    }
}
