//! The admin API's recordings (see `api.rs` for the admin token check):
//!
//! - `GET /api/v1/recordings[?stream=app/name]` → `{"recordings": [{…}]}`, oldest first
//! - `GET /api/v1/recordings/{id}` → one recording, 404 when there is none
//! - `DELETE /api/v1/recordings/{id}` → 204; its playlist, manifest and
//!   segments are gone; 409 while it is still recording
//! - `POST /api/v1/recordings/{id}/playback` `{"ttl_secs", "sub"}` → a token
//!   scoped to that recording (`recording` claim) and its playback URL
//!
//! Each recording: `id`, `stream`, `state` (`recording` | `complete`),
//! `publish_ids`, `started_unix_ms`, `ended_unix_ms`, `duration_secs`,
//! `bytes`, `segments`, `encryption`, `playlist_url`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tracing::{info, warn};

use super::HttpState;
use super::api::{DEFAULT_PLAYBACK_TTL_SECS, json_error, playback_claims, public_base};
use crate::live::recordings::{DeleteError, describe};

pub(super) fn routes() -> Router<Arc<HttpState>> {
    Router::new()
        .route("/api/v1/recordings", get(list))
        .route("/api/v1/recordings/{id}", get(one).delete(remove))
        .route("/api/v1/recordings/{id}/playback", post(playback))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// `app/name`: only this stream's recordings.
    stream: Option<String>,
}

fn json(value: serde_json::Value) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(value)).into_response()
}

async fn list(State(state): State<Arc<HttpState>>, Query(query): Query<ListQuery>, headers: HeaderMap) -> Response {
    let base = public_base(&state, &headers).unwrap_or_default();
    let recordings = state.registry.recordings().list(query.stream.as_deref()).await;
    let recordings: Vec<_> = recordings.iter().map(|m| describe(m, &base)).collect();
    json(serde_json::json!({ "recordings": recordings }))
}

async fn one(State(state): State<Arc<HttpState>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let base = public_base(&state, &headers).unwrap_or_default();
    match state.registry.recordings().get(&id).await {
        Some(manifest) => json(describe(&manifest, &base)),
        None => json_error(StatusCode::NOT_FOUND, "no such recording"),
    }
}

async fn remove(State(state): State<Arc<HttpState>>, Path(id): Path<String>) -> Response {
    match state.registry.recordings().delete(&id).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(DeleteError::NotFound) => json_error(StatusCode::NOT_FOUND, "no such recording"),
        Err(DeleteError::InProgress) => json_error(StatusCode::CONFLICT, "the recording is still in progress"),
        Err(DeleteError::Storage(error)) => {
            warn!(recording = %id, %error, "deleting a recording failed");
            json_error(StatusCode::SERVICE_UNAVAILABLE, "storage unavailable")
        }
    }
}

/// `POST /api/v1/recordings/{id}/playback` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaybackRequest {
    #[serde(default = "default_ttl_secs")]
    ttl_secs: u64,
    #[serde(default)]
    sub: Option<String>,
}

fn default_ttl_secs() -> u64 {
    DEFAULT_PLAYBACK_TTL_SECS
}

async fn playback(
    State(state): State<Arc<HttpState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: &[u8] = if body.is_empty() { b"{}" } else { &body };
    let request = match serde_json::from_slice::<PlaybackRequest>(body) {
        Ok(request) => request,
        Err(error) => return json_error(StatusCode::BAD_REQUEST, &format!("body: {error}")),
    };
    let Some(manifest) = state.registry.recordings().get(&id).await else {
        return json_error(StatusCode::NOT_FOUND, "no such recording");
    };
    let (claims, base) = match playback_claims(&state, &headers, manifest.stream.clone(), request.ttl_secs, request.sub)
    {
        Ok(grant) => grant,
        Err((status, message)) => return json_error(status, message),
    };
    let token = crate::auth::recording::mint_for_recording(
        state.keys.token_secret(),
        &claims,
        &manifest.id,
        state.keys.audience(),
    );
    info!(stream = %manifest.stream, recording = %manifest.id, route = "api", "recording playback token issued");
    json(serde_json::json!({
        "recording": manifest.id,
        "stream": manifest.stream,
        "playback_url": format!("{base}{}?token={token}", manifest.playlist_path()),
        "token": token,
        "expires_unix_secs": claims.exp,
    }))
}
