//! A provider wrapper that answers late: shows that KMS latency stays off the
//! segment path (the prefetcher hides it), in tests and demonstrations.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Kms, KmsError};
use crate::crypto::{DataKey, EncryptionContext, WrappedKey};

/// Waits `delay` before every call of the wrapped provider.
pub struct Delayed {
    inner: Arc<dyn Kms>,
    delay: Duration,
}

impl Delayed {
    pub fn new(inner: Arc<dyn Kms>, delay: Duration) -> Self {
        Self { inner, delay }
    }
}

#[async_trait]
impl Kms for Delayed {
    async fn generate_data_key(&self, ctx: &EncryptionContext) -> Result<(DataKey, WrappedKey), KmsError> {
        tokio::time::sleep(self.delay).await;
        self.inner.generate_data_key(ctx).await
    }

    async fn decrypt(&self, wrapped: &WrappedKey, ctx: &EncryptionContext) -> Result<DataKey, KmsError> {
        tokio::time::sleep(self.delay).await;
        self.inner.decrypt(wrapped, ctx).await
    }

    async fn reload(&self) -> Result<Option<String>, KmsError> {
        self.inner.reload().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KeyId;
    use crate::kms::local::LocalKms;

    #[tokio::test(start_paused = true)]
    async fn every_call_waits_then_answers_as_the_inner_provider() {
        let dir = tempfile::tempdir().unwrap();
        let local: Arc<dyn Kms> = Arc::new(LocalKms::open_or_create(&dir.path().join("keyring.json")).unwrap());
        let kms = Delayed::new(Arc::clone(&local), Duration::from_millis(500));
        let ctx = EncryptionContext::new("live/demo", &KeyId::new("k1").unwrap());

        let start = tokio::time::Instant::now();
        let (key, wrapped) = kms.generate_data_key(&ctx).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(500));
        let unwrapped = kms.decrypt(&wrapped, &ctx).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(1000));
        assert_eq!(unwrapped.as_bytes(), key.as_bytes());
        assert_eq!(local.decrypt(&wrapped, &ctx).await.unwrap().as_bytes(), key.as_bytes());
    }
}
