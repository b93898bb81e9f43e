//! A key provider wrapper that counts calls and times them:
//! `sealcast_kms_requests_total{op,result}` and `sealcast_kms_request_seconds`.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::{KMS_REQUEST_SECONDS, KMS_REQUESTS, Metrics};
use crate::crypto::{DataKey, EncryptionContext, WrappedKey};
use crate::kms::{Kms, KmsError};

/// Forwards every call to the wrapped provider and records it.
pub struct MeteredKms {
    inner: Arc<dyn Kms>,
    metrics: Arc<Metrics>,
}

impl MeteredKms {
    pub fn new(inner: Arc<dyn Kms>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    fn record<T>(&self, op: &'static str, started: Instant, result: &Result<T, KmsError>) {
        let outcome = match result {
            Ok(_) => "ok",
            // A wrapped key that does not unwrap: the caller's fault, not the KMS's.
            Err(KmsError::InvalidCiphertext) => "invalid",
            Err(_) => "error",
        };
        self.metrics
            .counter(KMS_REQUESTS, &[("op", op), ("result", outcome)])
            .increment(1);
        self.metrics
            .histogram(KMS_REQUEST_SECONDS, &[("op", op)])
            .record(started.elapsed().as_secs_f64());
    }
}

#[async_trait]
impl Kms for MeteredKms {
    async fn generate_data_key(&self, ctx: &EncryptionContext) -> Result<(DataKey, WrappedKey), KmsError> {
        let started = Instant::now();
        let result = self.inner.generate_data_key(ctx).await;
        self.record("generate_data_key", started, &result);
        result
    }

    async fn decrypt(&self, wrapped: &WrappedKey, ctx: &EncryptionContext) -> Result<DataKey, KmsError> {
        let started = Instant::now();
        let result = self.inner.decrypt(wrapped, ctx).await;
        self.record("decrypt", started, &result);
        result
    }

    /// Forwarded: a wrapper that kept the default would make SIGHUP miss
    /// the keyring's new master key versions.
    async fn reload(&self) -> Result<Option<String>, KmsError> {
        self.inner.reload().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A provider whose only news is that it reloaded.
    struct Reloads;

    #[async_trait]
    impl Kms for Reloads {
        async fn generate_data_key(&self, _: &EncryptionContext) -> Result<(DataKey, WrappedKey), KmsError> {
            Err(KmsError::Unavailable("unused".into()))
        }

        async fn decrypt(&self, _: &WrappedKey, _: &EncryptionContext) -> Result<DataKey, KmsError> {
            Err(KmsError::Unavailable("unused".into()))
        }

        async fn reload(&self) -> Result<Option<String>, KmsError> {
            Ok(Some("master key version 2 loaded".into()))
        }
    }

    /// SIGHUP reaches the provider behind the metrics (a key server with
    /// metrics on once answered 503 for new master key versions forever).
    #[tokio::test]
    async fn reload_reaches_the_wrapped_provider() {
        let metered = MeteredKms::new(Arc::new(Reloads), Arc::new(Metrics::new()));
        assert_eq!(
            metered.reload().await.unwrap().as_deref(),
            Some("master key version 2 loaded")
        );
    }
}
