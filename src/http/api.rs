//! The admin API, for a broadcaster's backend: authorize a viewer ("play
//! auth") and list live streams ("play info"). JSON in and out; every
//! request needs `Authorization: Bearer <admin token>` (`[auth]
//! admin_token_env` / `admin_token_file`), else 401. Without an admin token
//! configured these routes do not exist (404).
//!
//! - `POST /api/v1/playback` `{"stream": "live/demo", "ttl_secs": 3600, "sub": "viewer-42"}`
//!   → `{"stream", "token", "playback_url", "expires_unix_secs"}`
//! - `GET /api/v1/streams` → `{"streams": [{"stream", "playlist_url", "started_unix_ms",
//!   "codecs", "resolution", "bitrate_bps", "media_sequence", "segments", "encryption",
//!   "segments_per_key", "segment_duration_secs"}]}`

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest;
use ring::rand::{SecureRandom as _, SystemRandom};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::auth::{Claims, bearer_token};
use crate::http::HttpState;
use crate::http::admin_gate::peer_ip;
use crate::live::StreamInfo;
use crate::media::{AudioCodec, VideoCodec};
use crate::names::StreamName;

/// Longest playback token lifetime the API mints: 7 days.
pub const MAX_PLAYBACK_TTL_SECS: u64 = 7 * 24 * 3600;
/// Lifetime when the request gives none: sealcast's one default.
pub const DEFAULT_PLAYBACK_TTL_SECS: u64 = crate::config::DEFAULT_TOKEN_TTL_SECS;
/// Longest `sub` accepted, in bytes.
pub(super) const MAX_SUB_BYTES: usize = 256;
/// Largest request body read.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// The admin routes, behind the admin token check.
pub fn routes(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/api/v1/playback", post(playback))
        .route("/api/v1/streams", get(streams))
        .merge(super::api_recordings::routes())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), require_admin))
        .with_state(state)
}

pub(super) fn json_error(code: StatusCode, message: &str) -> Response {
    (
        code,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}

/// 401 unless the request carries the admin token. Both sides are hashed
/// first and the digests compared in constant time, so neither the token's
/// bytes nor its length leak through timing. A wrong token is answered after
/// the per-address delay of [`crate::http::admin_gate`].
async fn require_admin(State(state): State<Arc<HttpState>>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let authorized = match (&state.admin_token, presented) {
        (Some(expected), Some(presented)) => {
            let want = digest::digest(&digest::SHA256, expected.expose());
            let got = digest::digest(&digest::SHA256, presented.as_bytes());
            crate::auth::Secret::new(want.as_ref().to_vec()).ct_eq(got.as_ref())
        }
        _ => false,
    };
    if !authorized {
        if presented.is_some() {
            // A wrong token (not a missing one): slowed down per address.
            state.failed_admin_auth.penalize(peer_ip(request.extensions())).await;
        }
        let mut response = json_error(StatusCode::UNAUTHORIZED, "admin token required");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"sealcast-admin\""),
        );
        return response;
    }
    next.run(request).await
}

/// `POST /api/v1/playback` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaybackRequest {
    /// `app/name` of a configured stream.
    stream: String,
    /// Token lifetime, 1 to [`MAX_PLAYBACK_TTL_SECS`]; default 1 hour.
    #[serde(default = "default_ttl_secs")]
    ttl_secs: u64,
    /// The viewer, for the token's `sub` claim.
    #[serde(default)]
    sub: Option<String>,
}

fn default_ttl_secs() -> u64 {
    DEFAULT_PLAYBACK_TTL_SECS
}

/// `POST /api/v1/playback` answer.
#[derive(Serialize)]
struct PlaybackResponse {
    stream: String,
    /// A playback token (JWT HS256) for the stream, with a random `jti`.
    token: String,
    /// The playlist URL with the token, ready for any HLS player.
    playback_url: String,
    expires_unix_secs: u64,
}

/// A 400's text for a body that did not deserialize: which field is wrong
/// and how, found by reading the body as plain JSON (serde's own message
/// gives a position, not the field).
fn body_problem(body: &[u8], error: &serde_json::Error) -> String {
    const SHAPE: &str = "{\"stream\": \"app/name\", \"ttl_secs\": 3600, \"sub\": \"viewer\"}";
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return format!("body is not JSON ({error}); expected {SHAPE}");
    };
    let Some(object) = value.as_object() else {
        return format!("body must be a JSON object {SHAPE}");
    };
    if let Some(unknown) = object
        .keys()
        .find(|k| !["stream", "ttl_secs", "sub"].contains(&k.as_str()))
    {
        return format!("unknown field {unknown:?}; the fields are stream, ttl_secs and sub");
    }
    match (object.get("stream"), object.get("ttl_secs"), object.get("sub")) {
        (None, _, _) => "stream is required (\"app/name\")".to_owned(),
        (Some(stream), _, _) if !stream.is_string() => "stream must be a string \"app/name\"".to_owned(),
        (_, Some(ttl), _) if !ttl.is_u64() => "ttl_secs must be a whole number of seconds".to_owned(),
        (_, _, Some(sub)) if !sub.is_string() && !sub.is_null() => "sub must be a string".to_owned(),
        _ => format!("body: {error}"),
    }
}

async fn playback(State(state): State<Arc<HttpState>>, headers: HeaderMap, body: Bytes) -> Response {
    let request = match serde_json::from_slice::<PlaybackRequest>(&body) {
        Ok(request) => request,
        Err(error) => return json_error(StatusCode::BAD_REQUEST, &body_problem(&body, &error)),
    };
    let Ok(stream) = StreamName::parse(&request.stream) else {
        return json_error(StatusCode::BAD_REQUEST, "stream must be app/name");
    };
    if state.registry.get(&stream).is_none() {
        return json_error(StatusCode::NOT_FOUND, "no such stream");
    }
    let (claims, base) = match playback_claims(&state, &headers, stream.to_string(), request.ttl_secs, request.sub) {
        Ok(grant) => grant,
        Err((status, message)) => return json_error(status, message),
    };
    let expires_unix_secs = claims.exp;
    let token = state.keys.mint_token(&claims);
    info!(stream = %stream, route = "api", "playback token issued");
    let playback_url = format!("{base}{}?token={token}", stream.playlist_path());
    let body = PlaybackResponse {
        stream: stream.to_string(),
        token,
        playback_url,
        expires_unix_secs,
    };
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
}

/// What both playback endpoints (a stream's, a recording's) check and
/// mint before signing: the TTL and `sub` limits, the base URL of the
/// playback link, and claims for `stream` with a fresh random `jti`. `Err`
/// is the status and message to answer with.
pub(super) fn playback_claims(
    state: &HttpState,
    headers: &HeaderMap,
    stream: String,
    ttl_secs: u64,
    sub: Option<String>,
) -> Result<(Claims, String), (StatusCode, &'static str)> {
    if !(1..=MAX_PLAYBACK_TTL_SECS).contains(&ttl_secs) {
        return Err((StatusCode::BAD_REQUEST, "ttl_secs must be between 1 and 604800"));
    }
    if sub.as_ref().is_some_and(|sub| sub.len() > MAX_SUB_BYTES) {
        return Err((StatusCode::BAD_REQUEST, "sub must be at most 256 bytes"));
    }
    let Some(base) = public_base(state, headers) else {
        return Err((StatusCode::BAD_REQUEST, "no usable Host header; set http.public_url"));
    };
    let mut jti = [0u8; 16];
    if SystemRandom::new().fill(&mut jti).is_err() {
        return Err((StatusCode::SERVICE_UNAVAILABLE, "random number generator failed"));
    }
    let claims = Claims {
        exp: state.keys.now().saturating_add(ttl_secs),
        stream,
        sub,
        jti: Some(URL_SAFE_NO_PAD.encode(jti)),
        recording: None,
    };
    Ok((claims, base))
}

/// `http.public_url`, else `http://` and the request's `Host` (only host and
/// port characters accepted, so nothing can be injected into the URL).
pub(super) fn public_base(state: &HttpState, headers: &HeaderMap) -> Option<String> {
    if !state.public_base.is_empty() {
        return Some(state.public_base.clone());
    }
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let valid = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    valid.then(|| format!("http://{host}"))
}

/// `GET /api/v1/streams` answer.
#[derive(Serialize)]
struct StreamsResponse {
    streams: Vec<StreamEntry>,
}

/// One live stream.
#[derive(Serialize)]
struct StreamEntry {
    /// `app/name`.
    stream: String,
    /// The playlist URL, without a token.
    playlist_url: String,
    started_unix_ms: Option<u64>,
    /// `"h264"`, `"aac"`: the elementary streams seen so far.
    codecs: Vec<&'static str>,
    /// From the encoder's metadata, when it sent width and height.
    resolution: Option<Resolution>,
    /// Average bitrate of the stored (encrypted MPEG-TS) segments of this
    /// publish, bits per second; `None` before the first segment.
    bitrate_bps: Option<u64>,
    /// `EXT-X-MEDIA-SEQUENCE` of the live playlist.
    media_sequence: u64,
    /// Segments stored by this publish.
    segments: u64,
    /// Always `"AES-128"` (RFC 8216 `METHOD=AES-128`).
    encryption: &'static str,
    segments_per_key: u32,
    segment_duration_secs: u32,
}

#[derive(Serialize)]
struct Resolution {
    width: u32,
    height: u32,
}

async fn streams(State(state): State<Arc<HttpState>>, headers: HeaderMap) -> Response {
    let settings = state.registry.settings();
    let base = public_base(&state, &headers).unwrap_or_default();
    let streams = state
        .registry
        .all()
        .into_iter()
        .filter_map(|stream| {
            let info = stream.info();
            info.live.then(|| StreamEntry {
                stream: stream.name.to_string(),
                playlist_url: format!("{base}{}", stream.name.playlist_path()),
                started_unix_ms: info.started_unix_ms,
                codecs: codecs(&info),
                resolution: info
                    .width
                    .zip(info.height)
                    .map(|(width, height)| Resolution { width, height }),
                bitrate_bps: (info.stored_media_ms > 0).then(|| info.stored_bytes * 8 * 1000 / info.stored_media_ms),
                media_sequence: info.media_sequence,
                segments: info.segments,
                encryption: "AES-128",
                segments_per_key: settings.segments_per_key.get(),
                segment_duration_secs: settings.segment_duration_secs,
            })
        })
        .collect();
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(StreamsResponse { streams }),
    )
        .into_response()
}

fn codecs(info: &StreamInfo) -> Vec<&'static str> {
    let video = info.tracks.video.map(|codec| match codec {
        VideoCodec::H264 => "h264",
    });
    let audio = info.tracks.audio.map(|codec| match codec {
        AudioCodec::Aac => "aac",
    });
    video.into_iter().chain(audio).collect()
}
