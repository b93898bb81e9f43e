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

use super::{Credential, KeyError, KeyService, bump};
use crate::auth::ticket::{self, TicketBinding, TicketError};
use crate::auth::{Claims, recording};
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

    /// A one-time ticket for one license request on `stream`, for the
    /// viewer whose verified token is `claims`/`token`: what a protected
    /// playlist carries when tickets are on (docs/protection.md). It is
    /// bound to the stream and to no key (an empty key id, which no key
    /// URI has, and [`LICENSE_TICKET_EDK`]), so it opens no `/keys/...`.
    pub fn license_ticket(&self, stream: &StreamName, claims: &Claims, token: &str) -> Result<String, TicketError> {
        let ttl = self.ticket_ttl_secs.unwrap_or(0);
        let exp = self.now().saturating_add(ttl).min(claims.exp);
        let stream = stream.to_string();
        let binding = license_ticket_binding(&stream);
        let ticket = ticket::issue(
            &self.ticket_key,
            &binding,
            ticket::viewer_tag(claims, token),
            exp,
            self.nonces.next()?,
        );
        bump(&self.counters.tickets_issued);
        Ok(ticket)
    }

    /// A license (its JSON) for the request `body`, authorized by a
    /// playback token or a license ticket ([`KeyService::license_ticket`]).
    pub async fn license(
        &self,
        stream: &StreamName,
        credential: Credential<'_>,
        body: &[u8],
    ) -> Result<String, LicenseRefusal> {
        let now = self.now();
        let grant = self.authorize_license(stream, credential, now)?;
        let request = license::parse_request(body)?;
        if request.offline {
            self.check_offline(stream, &grant, &request)?;
        }
        // A token scoped to one recording licenses only its keys.
        if let Some(wanted) =
            (request.keys.iter()).find(|k| !recording::allows_key(grant.recording.as_deref(), &k.key_id))
        {
            debug!(%stream, key_id = %wanted.key_id, route = "license", "token scoped to another recording");
            return Err(self.forbidden());
        }
        // The ECDH first: a public key off the curve costs no KMS call.
        let sealer = license::Sealer::new(&self.rng, &request.public_key)?;
        let keys = self.unwrap_all(stream, &request.keys, grant.budget_viewer, now).await?;
        let expires = if request.offline {
            // Not capped by the token's exp: watching after the link expired
            // is what an offline license is for; the operator picks the TTL.
            now.saturating_add(self.offline_ttl_secs)
        } else {
            now.saturating_add(LICENSE_TTL_SECS).min(grant.exp)
        };
        let refs: Vec<(&str, &DataKey)> = keys.iter().map(|(id, key)| (id.as_str(), key)).collect();
        let sealed = sealer.seal_as(&self.rng, request.offline, &stream.to_string(), expires, &refs)?;
        if let Some(ticket) = grant.ticket {
            self.spend_license_ticket(stream, &ticket, now).await?;
        }
        bump(&self.counters.key_ok);
        Ok(sealed.to_json())
    }

    fn forbidden(&self) -> LicenseRefusal {
        bump(&self.counters.key_forbidden);
        LicenseRefusal::Key(KeyError::Forbidden)
    }

    /// Who may have the license: a token's claims, or a good ticket (spent
    /// only once the license is sealed, as on `/keys/...`).
    fn authorize_license(
        &self,
        stream: &StreamName,
        credential: Credential<'_>,
        now: u64,
    ) -> Result<Grant, LicenseRefusal> {
        match credential {
            Credential::Token(token) => {
                let claims = self.verify_token(token, stream).map_err(|error| {
                    debug!(%stream, %error, route = "license", "token refused");
                    self.forbidden()
                })?;
                let viewer = self.saw_viewer(stream, &claims, token);
                Ok(Grant {
                    exp: claims.exp,
                    recording: claims.recording.clone(),
                    budget_viewer: Some(viewer),
                    ticket: None,
                })
            }
            Credential::Ticket(text) => {
                let stream_text = stream.to_string();
                match ticket::verify(&self.ticket_key, text, &license_ticket_binding(&stream_text), now) {
                    Ok(ticket) if !self.redemptions.take(&ticket.viewer, now) => {
                        bump(&self.counters.over_budget);
                        bump(&self.counters.key_too_many);
                        Err(LicenseRefusal::Key(KeyError::TooMany))
                    }
                    Ok(ticket) => {
                        self.viewers.saw(&stream_text, ticket.viewer, now);
                        Ok(Grant {
                            exp: ticket.exp_unix_secs,
                            recording: None,
                            budget_viewer: None,
                            ticket: Some(ticket),
                        })
                    }
                    Err(error) => {
                        bump(&self.counters.tickets_refused);
                        debug!(%stream, %error, route = "license", "license ticket refused");
                        Err(self.forbidden())
                    }
                }
            }
        }
    }

    /// Offline licenses: on when `offline_ttl_secs` > 0, for a token (a
    /// ticket is for one online license), and only for keys of recordings.
    fn check_offline(
        &self,
        stream: &StreamName,
        grant: &Grant,
        request: &license::Request,
    ) -> Result<(), LicenseRefusal> {
        let recorded = |key_id: &str| {
            key_id
                .split_once('_')
                .is_some_and(|(rec, rest)| !rec.is_empty() && !rest.is_empty())
        };
        if self.offline_ttl_secs == 0 || grant.ticket.is_some() || !request.keys.iter().all(|k| recorded(&k.key_id)) {
            debug!(%stream, route = "license", "offline license refused");
            return Err(self.forbidden());
        }
        Ok(())
    }

    /// Each wanted key through the key cache, with the encryption context
    /// `{stream, key_id}`; cache misses spend the token's decrypt budget.
    async fn unwrap_all(
        &self,
        stream: &StreamName,
        wanted: &[license::KeyRef],
        budget_viewer: Option<[u8; ticket::VIEWER_LEN]>,
        now: u64,
    ) -> Result<Vec<(String, DataKey)>, LicenseRefusal> {
        let stream_text = stream.to_string();
        let mut keys: Vec<(String, DataKey)> = Vec::with_capacity(wanted.len());
        for wanted in wanted {
            let (Ok(key_id), Ok(wrapped)) = (KeyId::new(&wanted.key_id), WrappedKey::from_base64url(&wanted.edk))
            else {
                return Err(self.forbidden());
            };
            let context = EncryptionContext::new(&stream_text, &key_id);
            if let Some(viewer) = &budget_viewer
                && self.cache.would_call_kms(&wrapped, &context, now)
                && !self.kms_misses.take(viewer, now)
            {
                bump(&self.counters.over_budget);
                bump(&self.counters.key_too_many);
                return Err(LicenseRefusal::Key(KeyError::TooMany));
            }
            let key = match self.cache.get_or_unwrap(&*self.kms, &wrapped, &context, now).await {
                Ok(key) => key,
                Err(KmsError::InvalidCiphertext) => {
                    debug!(%stream, key_id = %key_id, route = "license", "wrapped key refused");
                    return Err(self.forbidden());
                }
                Err(error) => {
                    warn!(%stream, key_id = %key_id, %error, route = "license", "KMS could not decrypt");
                    bump(&self.counters.key_unavailable);
                    return Err(LicenseRefusal::Key(KeyError::Unavailable));
                }
            };
            keys.push((wanted.key_id.clone(), key));
        }
        Ok(keys)
    }

    /// [`KeyService::spend_ticket`], as a license refusal.
    async fn spend_license_ticket(
        &self,
        stream: &StreamName,
        ticket: &ticket::VerifiedTicket,
        now: u64,
    ) -> Result<(), LicenseRefusal> {
        match self.spend_ticket(stream, "license", ticket, now).await {
            Ok(()) => Ok(()),
            Err(KeyError::Unavailable) => {
                bump(&self.counters.key_unavailable);
                Err(LicenseRefusal::Key(KeyError::Unavailable))
            }
            Err(_) => Err(self.forbidden()),
        }
    }
}

/// The `edk` a license ticket is bound to, with an empty key id: no key
/// URI has either, so a license ticket opens no key and a key ticket no
/// license.
pub const LICENSE_TICKET_EDK: &str = "sealcast-license-ticket-v1";

fn license_ticket_binding(stream: &str) -> TicketBinding<'_> {
    TicketBinding {
        stream,
        key_id: "",
        edk: LICENSE_TICKET_EDK,
    }
}

/// What authorized a license request.
struct Grant {
    /// The credential's expiry: an online license ends no later.
    exp: u64,
    /// The token's `recording` claim.
    recording: Option<String>,
    /// Whose KMS decrypt budget cache misses spend (tokens).
    budget_viewer: Option<[u8; ticket::VIEWER_LEN]>,
    /// The ticket to spend once the license is sealed.
    ticket: Option<ticket::VerifiedTicket>,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;
    use ring::agreement;
    use ring::rand::SystemRandom;

    use super::*;
    use crate::auth::Secret;
    use crate::clock::ManualClock;
    use crate::keyservice::replay::MemoryReplayStore;
    use crate::keyservice::{Clock, KeySettings};
    use crate::kms::Kms;

    /// Wrapped keys are the data key itself (16 bytes), else refused.
    struct PlainKms;

    #[async_trait]
    impl Kms for PlainKms {
        async fn generate_data_key(&self, _: &EncryptionContext) -> Result<(DataKey, WrappedKey), KmsError> {
            Err(KmsError::Unavailable("unused".into()))
        }

        async fn decrypt(&self, wrapped: &WrappedKey, _: &EncryptionContext) -> Result<DataKey, KmsError> {
            <[u8; 16]>::try_from(wrapped.as_bytes())
                .map(DataKey::from_bytes)
                .map_err(|_| KmsError::InvalidCiphertext)
        }
    }

    const NOW: u64 = 1_000_000;

    fn service(offline_ttl_secs: u64) -> KeyService {
        KeyService::new(
            KeySettings {
                token_secret: Secret::new(b"test-secret-0123456789-0123456789-abcdef".to_vec()),
                audience: None,
                ticket_ttl_secs: Some(60),
                offline_ttl_secs,
                cache_max_entries: 100,
                cache_ttl_secs: 600,
            },
            Arc::new(PlainKms),
            Arc::new(MemoryReplayStore::new(1000)),
            Arc::new(ManualClock::at_unix_secs(NOW)) as Clock,
        )
    }

    fn claims(exp: u64) -> Claims {
        Claims {
            exp,
            stream: "live/demo".into(),
            sub: None,
            jti: None,
            recording: None,
        }
    }

    fn stream() -> StreamName {
        StreamName::parse("live/demo").unwrap()
    }

    fn edk() -> String {
        WrappedKey::from_bytes(vec![1; 16]).to_base64url()
    }

    /// A request body for `key_ids` with a fresh P-256 public key.
    fn body(key_ids: &[&str], offline: bool) -> Vec<u8> {
        let private = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &SystemRandom::new()).unwrap();
        let public = private.compute_public_key().unwrap();
        let keys: Vec<serde_json::Value> = (key_ids.iter())
            .map(|id| serde_json::json!({"key_id": id, "edk": edk()}))
            .collect();
        serde_json::json!({
            "public_key": base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, public.as_ref()),
            "keys": keys,
            "offline": offline,
        })
        .to_string()
        .into_bytes()
    }

    fn expiry(json: &str) -> u64 {
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        value["expires_unix_secs"].as_u64().unwrap()
    }

    #[tokio::test]
    async fn offline_licenses_last_their_ttl_and_only_for_recordings() {
        let token = service(0).mint_token(&claims(NOW + 60));
        let refused = service(0)
            .license(&stream(), Credential::Token(&token), &body(&["rec_p-0"], true))
            .await;
        assert_eq!(refused, Err(LicenseRefusal::Key(KeyError::Forbidden)), "offline off");
        let on = service(7200);
        let not_recorded = on
            .license(&stream(), Credential::Token(&token), &body(&["p-0"], true))
            .await;
        assert_eq!(not_recorded, Err(LicenseRefusal::Key(KeyError::Forbidden)));
        let offline = (on
            .license(&stream(), Credential::Token(&token), &body(&["rec_p-0"], true))
            .await)
            .unwrap();
        assert_eq!(expiry(&offline), NOW + 7200, "not capped by the token's exp");
        let online = (on
            .license(&stream(), Credential::Token(&token), &body(&["rec_p-0"], false))
            .await)
            .unwrap();
        assert_eq!(expiry(&online), NOW + 60, "capped by the token's exp");
    }

    /// A license ticket opens one license and no key; a key ticket opens no
    /// license.
    #[tokio::test]
    async fn license_and_key_tickets_do_not_cross() {
        let service = service(3600);
        let token = service.mint_token(&claims(NOW + 3600));
        let ticket = service.license_ticket(&stream(), &claims(NOW + 3600), &token).unwrap();
        let as_key = service.key(&stream(), "p-0", &edk(), Credential::Ticket(&ticket)).await;
        assert_eq!(as_key.err(), Some(KeyError::Forbidden));
        let as_empty_key = (service
            .key(&stream(), "", LICENSE_TICKET_EDK, Credential::Ticket(&ticket))
            .await)
            .err();
        assert_eq!(as_empty_key, Some(KeyError::Forbidden));
        let playlist = format!(
            "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/live/demo/p-0?edk={}\",IV=0x00000000000000000000000000000001\n#EXTINF:2.0,\np-0.ts\n",
            edk()
        );
        let ticketed = service
            .ticket_playlist(
                &playlist,
                &claims(NOW + 3600),
                ticket::viewer_tag(&claims(NOW + 3600), &token),
            )
            .unwrap();
        let key_ticket = ticketed.split("ticket=").nth(1).unwrap().split('"').next().unwrap();
        let refused = service
            .license(&stream(), Credential::Ticket(key_ticket), &body(&["p-0"], false))
            .await;
        assert_eq!(refused, Err(LicenseRefusal::Key(KeyError::Forbidden)));
        let once = service
            .license(&stream(), Credential::Ticket(&ticket), &body(&["p-0"], false))
            .await;
        assert!(once.is_ok(), "{once:?}");
        let twice = service
            .license(&stream(), Credential::Ticket(&ticket), &body(&["p-0"], false))
            .await;
        assert_eq!(twice, Err(LicenseRefusal::Key(KeyError::Forbidden)));
    }
}
