//! `POST /license/{app}/{name}`: keys sealed to the player's ephemeral key
//! (docs/protection.md), for `protection = "web"` streams and, harmlessly,
//! for standard ones. 401 without a token; 403 for a bad token or a wrapped
//! key that is not this stream's; 400 for a malformed body, a bad public key
//! or too many keys; 413 past [`crate::license::MAX_REQUEST_BYTES`]; 429 and
//! 503 as for `/keys/...`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::{TokenQuery, presented_token, status, unavailable};
use crate::keyservice::license::LicenseRefusal;
use crate::keyservice::{KeyError, KeyService};
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

async fn license(
    State(keys): State<Arc<KeyService>>,
    Path((app, name)): Path<(String, String)>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(stream) = StreamName::new(&app, &name) else {
        return status(StatusCode::NOT_FOUND, "not found\n");
    };
    let Some(token) = presented_token(query.token.as_deref(), &headers) else {
        keys.note_unauthorized();
        return status(StatusCode::UNAUTHORIZED, "token required\n");
    };
    match keys.license(&stream, token, &body).await {
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
