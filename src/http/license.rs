//! `POST /license/{app}/{name}`: keys sealed to the player's ephemeral key
//! (docs/protection.md), for `protection = "web"` streams and, harmlessly,
//! for standard ones. 401 without a token; 403 for a bad token or a wrapped
//! key that is not this stream's; 400 for a malformed body, a bad public key
//! or too many keys; 413 past [`crate::license::MAX_REQUEST_BYTES`]; 429 and
//! 503 as for `/keys/...`. Authorized by the playback token or, with
//! `?ticket=`, by the one-time license ticket a protected playlist carries
//! when `[auth] one_time_key_tickets` is on ([`with_license_ticket`]).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use serde::Deserialize;
use tracing::error;

use super::{NoTickets, PlaylistViewer, presented_token, status, unavailable};
use crate::keyservice::license::LicenseRefusal;
use crate::keyservice::{Credential, KeyError, KeyService};
use crate::license::{LicenseError, MAX_REQUEST_BYTES};
use crate::names::StreamName;

/// What `/keys/...` says for a protected stream, whatever the credential.
pub(crate) const PROTECTED_KEY_TEXT: &str =
    "forbidden: this stream is protected; its keys are delivered only by POST /license/{app}/{name}\n";

pub(crate) fn routes(keys: Arc<KeyService>) -> Router {
    Router::new()
        .route("/license/{app}/{name}", post(license))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(keys)
}

/// The tag a protected playlist carries its license ticket in. Players
/// that do not know it ignore it (RFC 8216 6.3.1: clients MUST ignore
/// unrecognized tags).
pub(crate) const LICENSE_TICKET_TAG: &str = "#EXT-X-SEALCAST-LICENSE-TICKET:";

/// A protected playlist for `viewer`: with tickets on, a fresh one-time
/// license ticket in a [`LICENSE_TICKET_TAG`] line after `#EXTM3U`, so the
/// license request need not carry the token; with tickets off, as it is.
pub(crate) fn with_license_ticket(
    keys: &KeyService,
    stream: &StreamName,
    text: &str,
    viewer: Option<&PlaylistViewer<'_>>,
) -> Result<String, NoTickets> {
    let Some(viewer) = viewer.filter(|_| keys.tickets_enabled()) else {
        return Ok(text.to_owned());
    };
    let ticket = keys.license_ticket(stream, &viewer.claims, viewer.token).map_err(|e| {
        error!(%stream, error = %e, "cannot issue a license ticket");
        NoTickets
    })?;
    let at = text.find('\n').map_or(text.len(), |i| i + 1);
    Ok(format!("{}{LICENSE_TICKET_TAG}{ticket}\n{}", &text[..at], &text[at..]))
}

#[derive(Deserialize)]
struct LicenseQuery {
    token: Option<String>,
    ticket: Option<String>,
}

async fn license(
    State(keys): State<Arc<KeyService>>,
    Path((app, name)): Path<(String, String)>,
    Query(query): Query<LicenseQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(stream) = StreamName::new(&app, &name) else {
        return status(StatusCode::NOT_FOUND, "not found\n");
    };
    let credential = match query.ticket.as_deref().filter(|t| !t.is_empty()) {
        Some(ticket) => Credential::Ticket(ticket),
        None => match presented_token(query.token.as_deref(), &headers) {
            Some(token) => Credential::Token(token),
            None => {
                keys.note_unauthorized();
                return status(StatusCode::UNAUTHORIZED, "token required\n");
            }
        },
    };
    match keys.license(&stream, credential, &body).await {
        Ok(json) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            json,
        )
            .into_response(),
        Err(LicenseRefusal::BadRequest(LicenseError::Random)) => unavailable("license unavailable\n"),
        Err(LicenseRefusal::BadRequest(error)) => (
            StatusCode::BAD_REQUEST,
            [(header::CACHE_CONTROL, "no-store")],
            format!("{error}\n"),
        )
            .into_response(),
        Err(LicenseRefusal::Key(KeyError::Forbidden)) => status(StatusCode::FORBIDDEN, "forbidden\n"),
        Err(LicenseRefusal::Key(KeyError::Unavailable)) => unavailable("key service unavailable\n"),
        Err(LicenseRefusal::Key(KeyError::TooMany)) => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "10"), (header::CACHE_CONTROL, "no-store")],
            "too many key requests\n",
        )
            .into_response(),
    }
}
