//! `POST /license/{app}/{name}`: data keys sealed to a player's ephemeral
//! P-256 key ([`crate::license`] has the format), the only way keys of a
//! `protection = "web"` stream leave the server.
//!
//! The request is checked like a key request: the playback token, then
//! each wrapped key unwrapped through the key cache with the encryption
//! context `{stream, key_id}`, so a wrapped key of another stream does not
//! unwrap (403), and cache misses spend the token's KMS decrypt budget (429).

use std::collections::HashSet;
use std::sync::RwLock;

use tracing::{debug, warn};

use super::{KeyError, KeyService, bump};
use crate::auth::ticket;
use crate::crypto::{DataKey, EncryptionContext, KeyId, WrappedKey};
use crate::kms::KmsError;
use crate::license::{self, LicenseError};
use crate::names::StreamName;

/// Longest life of a license, seconds; the token's `exp` if sooner.
pub const LICENSE_TTL_SECS: u64 = 3600;

/// The streams whose keys leave only by license, by `app/name`.
#[derive(Debug, Default)]
pub struct ProtectedStreams(RwLock<HashSet<String>>);

/// Why a license was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LicenseRefusal {
    /// The request itself is wrong: HTTP 400.
    #[error("{0}")]
    BadRequest(#[from] LicenseError),
    /// The token, or a wrapped key, does not check out, or the key service
    /// cannot answer: as for a key request.
    #[error("{0}")]
    Key(KeyError),
}

/// The `app/name` of each `[[streams]]` entry with `protection = "web"`.
pub fn protected_streams(config: &crate::config::Config) -> Vec<String> {
    (config.streams.iter())
        .filter(|s| s.protection == crate::config::Protection::Web)
        .map(|s| format!("{}/{}", s.app, s.name))
        .collect()
}

impl KeyService {
    /// Replaces the set of protected streams (at start and on reload).
    pub fn set_protected_streams(&self, streams: impl IntoIterator<Item = String>) {
        let mut set = self.protected.0.write().unwrap_or_else(|p| p.into_inner());
        *set = streams.into_iter().collect();
    }

    /// Whether `stream` has `protection = "web"`.
    pub fn is_protected(&self, stream: &StreamName) -> bool {
        let set = self.protected.0.read().unwrap_or_else(|p| p.into_inner());
        set.contains(&stream.to_string())
    }

    /// A license (its JSON) for the request `body`, authorized by `token`.
    pub async fn license(&self, stream: &StreamName, token: &str, body: &[u8]) -> Result<String, LicenseRefusal> {
        let now = self.now();
        let claims = self.verify_token(token, stream).map_err(|error| {
            debug!(%stream, %error, route = "license", "token refused");
            bump(&self.counters.key_forbidden);
            LicenseRefusal::Key(KeyError::Forbidden)
        })?;
        let request = license::parse_request(body)?;
        // The ECDH first: a public key off the curve costs no KMS call.
        let sealer = license::Sealer::new(&self.rng, &request.public_key)?;
        self.saw_viewer(stream, &claims, token);
        let viewer = ticket::viewer_tag(&claims, token);
        let stream_text = stream.to_string();
        let mut keys: Vec<(String, DataKey)> = Vec::with_capacity(request.keys.len());
        for wanted in &request.keys {
            let (Ok(key_id), Ok(wrapped)) = (KeyId::new(&wanted.key_id), WrappedKey::from_base64url(&wanted.edk))
            else {
                return Err(LicenseRefusal::Key(KeyError::Forbidden));
            };
            let context = EncryptionContext::new(&stream_text, &key_id);
            if self.cache.would_call_kms(&wrapped, &context, now) && !self.kms_misses.take(&viewer, now) {
                bump(&self.counters.over_budget);
                bump(&self.counters.key_too_many);
                return Err(LicenseRefusal::Key(KeyError::TooMany));
            }
            let key = match self.cache.get_or_unwrap(&*self.kms, &wrapped, &context, now).await {
                Ok(key) => key,
                Err(KmsError::InvalidCiphertext) => {
                    debug!(%stream, key_id = %key_id, route = "license", "wrapped key refused");
                    bump(&self.counters.key_forbidden);
                    return Err(LicenseRefusal::Key(KeyError::Forbidden));
                }
                Err(error) => {
                    warn!(%stream, key_id = %key_id, %error, route = "license", "KMS could not decrypt");
                    bump(&self.counters.key_unavailable);
                    return Err(LicenseRefusal::Key(KeyError::Unavailable));
                }
            };
            keys.push((wanted.key_id.clone(), key));
        }
        let expires = now.saturating_add(LICENSE_TTL_SECS).min(claims.exp);
        let refs: Vec<(&str, &DataKey)> = keys.iter().map(|(id, key)| (id.as_str(), key)).collect();
        let sealed = sealer.seal(&self.rng, &stream_text, expires, &refs)?;
        bump(&self.counters.key_ok);
        Ok(sealed.to_json())
    }
}
