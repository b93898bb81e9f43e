//! The key request path of [`KeyService::key`]: admit the credential (a
//! token, or a one-time ticket and its viewer's budget), unwrap the data key
//! through the cache or the KMS, and only then spend the ticket.

use std::sync::atomic::Ordering;

use tracing::{debug, warn};

use super::{Credential, KeyError, KeyService, bump};
use crate::auth::ticket::TicketBinding;
use crate::auth::{self, ticket};
use crate::crypto::{DataKey, EncryptionContext, KeyId, WrappedKey};
use crate::kms::KmsError;
use crate::names::StreamName;

impl KeyService {
    pub(super) async fn checked_key(
        &self,
        stream: &StreamName,
        key_id: &str,
        edk: &str,
        credential: Credential<'_>,
    ) -> Result<DataKey, KeyError> {
        let now = self.now();
        let admitted = match credential {
            Credential::Token(token) => self.admit_token(stream, key_id, token)?,
            Credential::Ticket(text) => {
                let binding = TicketBinding {
                    stream: stream.as_str(),
                    key_id,
                    edk,
                };
                self.admit_ticket(stream, &binding, text, now)?
            }
        };
        let (Ok(key_id), Ok(wrapped)) = (KeyId::new(key_id), WrappedKey::from_base64url(edk)) else {
            return Err(KeyError::Forbidden);
        };
        let context = EncryptionContext::new(stream.as_str(), &key_id);
        if let Admitted::Token { viewer } = admitted
            && self.cache.would_call_kms(&wrapped, &context, now)
            && !self.kms_misses.take(&viewer, now)
        {
            bump(&self.counters.over_budget);
            debug!(stream = %stream, route = "key", "token over its KMS decrypt budget");
            return Err(KeyError::TooMany);
        }
        let data_key = self.unwrap_data_key(stream, &key_id, &wrapped, &context, now).await?;
        if let Admitted::Ticket(ticket) = admitted {
            self.spend_ticket(stream, "key", &ticket, now).await?;
        }
        Ok(data_key)
    }

    /// A token request: the token must hold for the stream (and, scoped to
    /// a recording, for its keys only).
    fn admit_token(&self, stream: &StreamName, key_id: &str, token: &str) -> Result<Admitted, KeyError> {
        bump(&self.counters.token_key_requests);
        match self.verify_token(token, stream) {
            Ok(claims) if !auth::recording::allows_key(claims.recording.as_deref(), key_id) => {
                debug!(stream = %stream, route = "key", "token scoped to another recording");
                Err(KeyError::Forbidden)
            }
            Ok(claims) => {
                let viewer = self.saw_viewer(stream, &claims, token);
                Ok(Admitted::Token { viewer })
            }
            Err(error) => {
                debug!(stream = %stream, %error, route = "key", "token refused");
                Err(KeyError::Forbidden)
            }
        }
    }

    /// A ticket request: the ticket must be bound to this key, unexpired,
    /// and its viewer within the redemption budget (it is spent later).
    fn admit_ticket(
        &self,
        stream: &StreamName,
        binding: &TicketBinding<'_>,
        text: &str,
        now: u64,
    ) -> Result<Admitted, KeyError> {
        match ticket::verify(&self.ticket_key, text, binding, now) {
            Ok(ticket) if !self.redemptions.take(&ticket.viewer, now) => {
                bump(&self.counters.over_budget);
                debug!(stream = %stream, route = "key", "ticket viewer over its redemption budget");
                Err(KeyError::TooMany)
            }
            Ok(ticket) => {
                self.viewers.saw(binding.stream, ticket.viewer, now);
                Ok(Admitted::Ticket(ticket))
            }
            Err(error) => {
                bump(&self.counters.tickets_refused);
                debug!(stream = %stream, %error, route = "key", "ticket refused");
                Err(KeyError::Forbidden)
            }
        }
    }

    /// The data key, from the cache or the KMS; what the KMS refuses is
    /// a 403, what it cannot answer a 503.
    async fn unwrap_data_key(
        &self,
        stream: &StreamName,
        key_id: &KeyId,
        wrapped: &WrappedKey,
        context: &EncryptionContext,
        now: u64,
    ) -> Result<DataKey, KeyError> {
        match self.cache.get_or_unwrap(&*self.kms, wrapped, context, now).await {
            Ok(key) => Ok(key),
            Err(KmsError::InvalidCiphertext) => {
                debug!(stream = %stream, key_id = %key_id, route = "key", "wrapped key refused");
                Err(KeyError::Forbidden)
            }
            Err(KmsError::UnknownMasterVersion(version)) => {
                warn!(stream = %stream, key_id = %key_id, route = "key",
                    "unknown master key version {version}: reload (SIGHUP) or restart");
                Err(KeyError::Unavailable)
            }
            Err(error) => {
                warn!(stream = %stream, key_id = %key_id, %error, route = "key", "KMS could not decrypt");
                Err(KeyError::Unavailable)
            }
        }
    }

    /// Spends a ticket in the replay store, once what it pays for (a key, a
    /// license) is in hand: a replay is [`KeyError::Forbidden`], a store
    /// that cannot answer [`KeyError::Unavailable`].
    pub(super) async fn spend_ticket(
        &self,
        stream: &StreamName,
        route: &'static str,
        ticket: &ticket::VerifiedTicket,
        now: u64,
    ) -> Result<(), KeyError> {
        match self.replay.first_use(&ticket.nonce, ticket.exp_unix_secs, now).await {
            Ok(true) => {
                bump(&self.counters.tickets_accepted);
                Ok(())
            }
            Ok(false) => {
                bump(&self.counters.tickets_replayed);
                debug!(stream = %stream, route, "ticket replayed");
                Err(KeyError::Forbidden)
            }
            Err(error) => {
                // A full store answers every request alike: one line per 1000.
                let failures = self.counters.replay_failures.fetch_add(1, Ordering::Relaxed) + 1;
                if failures % 1000 == 1 {
                    warn!(stream = %stream, %error, failures, route, "replay store failed; refusing");
                }
                Err(KeyError::Unavailable)
            }
        }
    }
}

/// Who a key request was admitted as.
enum Admitted {
    /// A token holder: a cache miss spends this viewer's decrypt budget.
    Token { viewer: [u8; ticket::VIEWER_LEN] },
    /// A one-time ticket, spent once the key is in hand.
    Ticket(ticket::VerifiedTicket),
}
