//! The HTTP side (axum): playlists with token-rewritten key URIs, segments with
//! Range support, the key endpoint, and health.
//!
//! Status codes follow DESIGN.md: 401 without a token, 403 for a token or
//! wrapped key that does not check out, 404 for what does not exist, 503 when
//! the KMS cannot answer; never a 5xx for anything a client sent. Bodies are
//! terse and never say why a token was refused.

use std::io::SeekFrom;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tracing::{debug, warn};

use crate::auth::{self, Secret};
use crate::crypto::{EncryptionContext, KeyId, WrappedKey};
use crate::kms::KmsError;
use crate::live::Registry;
use crate::names::{self, StreamName};

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
/// Segments are immutable ciphertext under a per-publish name: cache them long.
const SEGMENT_CACHE: &str = "public, max-age=86400, immutable";

/// What the handlers share.
pub struct HttpState {
    pub registry: Arc<Registry>,
    pub token_secret: Secret,
    pub cors: CorsPolicy,
}

/// The router with every route and the CORS layer.
pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/keys/{app}/{name}/{key_id}", get(key))
        .route("/{app}/{name}/{file}", get(media_file))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), cors))
        .with_state(state)
}

/// Which browser origins may read responses (CORS).
#[derive(Debug, Clone, Default)]
pub enum CorsPolicy {
    /// No CORS headers: only same-origin pages can read.
    #[default]
    Off,
    /// `Access-Control-Allow-Origin: *`. Keys are guarded by tokens, not by
    /// origin, so this is safe and the default.
    AnyOrigin,
    /// Only these exact origins, echoed back with `Vary: Origin`.
    Origins(Vec<HeaderValue>),
}

impl CorsPolicy {
    /// From the config list: `"*"` anywhere means any origin.
    pub fn from_origins(origins: &[String]) -> Self {
        if origins.iter().any(|o| o == "*") {
            return Self::AnyOrigin;
        }
        let values: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
        if values.is_empty() {
            Self::Off
        } else {
            Self::Origins(values)
        }
    }

    fn allowed(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        match self {
            Self::Off => None,
            Self::AnyOrigin => Some(HeaderValue::from_static("*")),
            Self::Origins(list) => origin.filter(|o| list.contains(o)).cloned(),
        }
    }
}

/// Adds CORS headers, and answers preflight requests (players send one for a
/// `Range` or `Authorization` header) with 204.
async fn cors(State(state): State<Arc<HttpState>>, request: Request, next: Next) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let preflight = request.method() == Method::OPTIONS;
    let mut response = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    if matches!(state.cors, CorsPolicy::Origins(_)) {
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    let Some(allowed) = state.cors.allowed(origin.as_ref()) else {
        return response;
    };
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Content-Length, Content-Range"),
    );
    if preflight {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, HEAD, OPTIONS"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Authorization, Range"),
        );
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    }
    response
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

#[derive(Deserialize)]
struct KeyQuery {
    edk: Option<String>,
    token: Option<String>,
}

fn status(code: StatusCode, body: &'static str) -> Response {
    (code, [(header::CACHE_CONTROL, "no-store")], body).into_response()
}

/// The token from `?token=` or `Authorization: Bearer`.
fn presented_token<'a>(query: Option<&'a str>, headers: &'a HeaderMap) -> Option<&'a str> {
    query.filter(|t| !t.is_empty()).or_else(|| {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
    })
}

fn now_unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Checks a playback token for `stream`; the reason for a refusal goes to the
/// debug log only, never to the client.
fn token_ok(state: &HttpState, token: &str, stream: &StreamName) -> bool {
    match auth::verify(&state.token_secret, token, &stream.to_string(), now_unix_secs()) {
        Ok(_) => true,
        Err(error) => {
            debug!(stream = %stream, %error, "token refused");
            false
        }
    }
}

/// `GET /keys/{app}/{name}/{key_id}?edk=…&token=…`: the 16-byte data key.
async fn key(
    State(state): State<Arc<HttpState>>,
    Path((app, name, key_id)): Path<(String, String, String)>,
    Query(query): Query<KeyQuery>,
    headers: HeaderMap,
) -> Response {
    let Ok(stream) = StreamName::new(&app, &name) else {
        return status(StatusCode::NOT_FOUND, "not found\n");
    };
    let Some(token) = presented_token(query.token.as_deref(), &headers) else {
        return status(StatusCode::UNAUTHORIZED, "token required\n");
    };
    if !token_ok(&state, token, &stream) {
        return status(StatusCode::FORBIDDEN, "forbidden\n");
    }
    let (Ok(key_id), Some(Ok(wrapped))) = (
        KeyId::new(&key_id),
        query.edk.as_deref().map(WrappedKey::from_base64url),
    ) else {
        return status(StatusCode::FORBIDDEN, "forbidden\n");
    };
    let context = EncryptionContext::new(&stream.to_string(), &key_id);
    match state.registry.kms().decrypt(&wrapped, &context).await {
        Ok(data_key) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            data_key.as_bytes().to_vec(),
        )
            .into_response(),
        Err(KmsError::InvalidCiphertext) => {
            debug!(stream = %stream, key_id = %key_id, route = "key", "wrapped key refused");
            status(StatusCode::FORBIDDEN, "forbidden\n")
        }
        Err(error) => {
            warn!(stream = %stream, key_id = %key_id, %error, route = "key", "KMS could not decrypt");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "2"), (header::CACHE_CONTROL, "no-store")],
                "key service unavailable\n",
            )
                .into_response()
        }
    }
}

/// `GET /{app}/{name}/index.m3u8` and `GET /{app}/{name}/{publish_id}-{seq}.ts`.
async fn media_file(
    State(state): State<Arc<HttpState>>,
    Path((app, name, file)): Path<(String, String, String)>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> Response {
    let Ok(stream_name) = StreamName::new(&app, &name) else {
        return status(StatusCode::NOT_FOUND, "not found\n");
    };
    let Some(stream) = state.registry.get(&stream_name) else {
        return status(StatusCode::NOT_FOUND, "not found\n");
    };
    if file == "index.m3u8" {
        // Native players do not carry the playlist's query to key requests, so
        // a valid token is written into every key URI. An invalid one is refused
        // here rather than echoed into the playlist.
        let token = presented_token(query.token.as_deref(), &headers);
        if token.is_some_and(|token| !token_ok(&state, token, &stream_name)) {
            return status(StatusCode::FORBIDDEN, "forbidden\n");
        }
        let key_query = token.map(|t| format!("token={t}"));
        return match stream.render_playlist(key_query.as_deref()) {
            Some(text) => (
                [
                    (header::CONTENT_TYPE, PLAYLIST_TYPE),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                text,
            )
                .into_response(),
            None => status(StatusCode::NOT_FOUND, "not found\n"),
        };
    }
    if !names::is_segment_file_name(&file) {
        return status(StatusCode::NOT_FOUND, "not found\n");
    }
    serve_segment(&stream.dir().join(&file), &headers).await
}

/// Serves a segment file, answering a single-range `Range` request with 206
/// (RFC 9110 14.2); ffmpeg sends them.
async fn serve_segment(path: &std::path::Path, headers: &HeaderMap) -> Response {
    let Ok(mut file) = tokio::fs::File::open(path).await else {
        return status(StatusCode::NOT_FOUND, "not found\n");
    };
    let Ok(len) = file.metadata().await.map(|m| m.len()) else {
        return status(StatusCode::NOT_FOUND, "not found\n");
    };
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (start, end) = match range.map(|r| parse_range(r, len)) {
        None => (0, len),
        Some(Some(range)) => range,
        Some(None) => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
                "range not satisfiable\n",
            )
                .into_response();
        }
    };
    let mut body = vec![0u8; (end - start) as usize];
    let read = async {
        file.seek(SeekFrom::Start(start)).await?;
        file.read_exact(&mut body).await
    };
    if read.await.is_err() {
        // Deleted or truncated between open and read: the segment expired.
        return status(StatusCode::NOT_FOUND, "not found\n");
    }
    let mut response = (
        [
            (header::CONTENT_TYPE, "video/mp2t"),
            (header::CACHE_CONTROL, SEGMENT_CACHE),
        ],
        body,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", end - 1)) {
            response.headers_mut().insert(header::CONTENT_RANGE, value);
        }
    }
    response
}

/// Parses `bytes=a-b`, `bytes=a-` or `bytes=-n` against a length into a
/// half-open `[start, end)`. `None` when unsatisfiable or not a single range.
fn parse_range(value: &str, len: u64) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let (start, end) = if first.is_empty() {
        let suffix: u64 = last.parse().ok()?;
        (len.saturating_sub(suffix), len)
    } else {
        let start: u64 = first.parse().ok()?;
        let end = if last.is_empty() {
            len
        } else {
            last.parse::<u64>().ok()?.saturating_add(1).min(len)
        };
        (start, end)
    };
    (start < end && end <= len).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        let cases: &[(&str, Option<(u64, u64)>)] = &[
            ("bytes=0-99", Some((0, 100))),
            ("bytes=100-", Some((100, 1000))),
            ("bytes=-100", Some((900, 1000))),
            ("bytes=-5000", Some((0, 1000))),
            ("bytes=990-5000", Some((990, 1000))),
            ("bytes=1000-", None),
            ("bytes=5-4", None),
            ("bytes=0-1,5-6", None),
            ("items=0-1", None),
            ("bytes=x-1", None),
            ("bytes=-0", None),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_range(value, 1000), *expected, "{value}");
        }
    }
}
