//! `GET /{app}/{name}/recordings/{id}/index.m3u8`: a recording's playlist,
//! read from storage (the storage layout, so its `../../{segment}` URIs
//! resolve to the stream's segment route) and personalized like a live
//! playlist. Served by `sealcast serve` and `sealcast edge` alike.
//!
//! Key URIs always carry the viewer's token, never one-time tickets: a VOD
//! playlist is read once (RFC 8216 6.3.4: no reload after `EXT-X-ENDLIST`),
//! so tickets would expire before the player reached later keys.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::warn;

use super::edge::EdgeState;
use super::{HttpState, PlaylistViewer, TokenQuery, playlist_response, scoped_playlist_viewer, status, unavailable};
use crate::keyservice::KeyService;
use crate::names::{self, StreamName};
use crate::storage::Storage;

/// The route, in axum's syntax.
pub(super) const PLAYLIST_ROUTE: &str = "/{app}/{name}/recordings/{id}/index.m3u8";

pub(super) async fn serve_playlist(
    State(state): State<Arc<HttpState>>,
    Path((app, name, id)): Path<(String, String, String)>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> Response {
    let storage = state.registry.storage();
    recording_playlist(
        &state.keys,
        storage,
        (&app, &name, &id),
        query.token.as_deref(),
        &headers,
    )
    .await
}

pub(super) async fn edge_playlist(
    State(state): State<Arc<EdgeState>>,
    Path((app, name, id)): Path<(String, String, String)>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> Response {
    recording_playlist(
        &state.keys,
        &state.storage,
        (&app, &name, &id),
        query.token.as_deref(),
        &headers,
    )
    .await
}

async fn recording_playlist(
    keys: &KeyService,
    storage: &Storage,
    (app, name, id): (&str, &str, &str),
    query_token: Option<&str>,
    headers: &HeaderMap,
) -> Response {
    let Ok(stream) = StreamName::new(app, name) else {
        return status(StatusCode::NOT_FOUND, "not found\n");
    };
    if !names::is_valid_component(id) {
        return status(StatusCode::NOT_FOUND, "not found\n");
    }
    let viewer = match scoped_playlist_viewer(keys, &stream, Some(id), query_token, headers) {
        Ok(viewer) => viewer,
        Err(refused) => return refused.into_response(),
    };
    let key = format!(
        "{stream}/{}/{id}/{}",
        crate::live::recordings::RECORDINGS_DIR,
        "index.m3u8"
    );
    let text = match storage.get(&key).await {
        Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        Ok(None) => return status(StatusCode::NOT_FOUND, "not found\n"),
        Err(error) => {
            warn!(%stream, %error, "reading a recording's playlist failed");
            return unavailable("playlist unavailable\n");
        }
    };
    let logged = viewer.as_ref().map(PlaylistViewer::for_log);
    // A protected stream's key URIs stay credential-free (licenses).
    let text = match viewer.filter(|_| !keys.is_protected(&stream)) {
        Some(viewer) => crate::keyservice::with_key_query(&text, &format!("token={}", viewer.token)),
        None => text,
    };
    playlist_response(Some(text), logged)
}
