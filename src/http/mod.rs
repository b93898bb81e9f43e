//! The HTTP side (axum): playlists with token-rewritten key URIs (or
//! one-time tickets), segments with Range support, the key endpoint, the
//! admin API, and health.
//!
//! Status codes (docs/architecture.md, "http"): 401 without a token, 403 for a token,
//! ticket or wrapped key that does not check out, 404 for what does not
//! exist, 429 when a viewer spent its key budget (ticket redemptions or KMS
//! decrypts per minute, see [`crate::keyservice::budget`]), 503 when the KMS
//! or the replay store cannot answer; never a 5xx for anything a client sent. Bodies are terse and never say why a token was
//! refused.

use std::io::{self, SeekFrom};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, ReadBuf, Take};
use tokio_util::io::ReaderStream;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::{debug, error};

pub mod access_log;
pub mod admin_gate;
pub mod api;
mod api_recordings;
pub mod edge;
mod keys;
mod license;
mod query;
mod recordings;
pub mod serve;
mod stored;
pub mod web;

use crate::auth::Secret;
use crate::keyservice::KeyService;
use crate::keyservice::viewers::ViewerId;
use crate::live::Registry;
use crate::names::{self, StreamName};

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
/// A playlist without a viewer's credential: the same for everyone, so any
/// cache may keep it, revalidating each time.
const PLAYLIST_CACHE: &str = "no-cache";
/// A playlist with a viewer's token or tickets written into its key URIs:
/// no shared cache may keep it (a CDN that ignores query strings would hand
/// one viewer's credential to everyone), and no cache at all needs to.
const PERSONAL_PLAYLIST_CACHE: &str = "private, no-store";
/// Segments are immutable ciphertext under a per-publish name: cache them long.
const SEGMENT_CACHE: &str = "public, max-age=86400, immutable";
/// Read size for segment bodies: what one request holds, whatever the
/// segment's size or the number of viewers.
const SEGMENT_CHUNK_BYTES: usize = 64 * 1024;

/// What the handlers of `sealcast serve` share.
pub struct HttpState {
    pub registry: Arc<Registry>,
    /// Token checks, tickets and key delivery.
    pub keys: Arc<KeyService>,
    pub cors: CorsPolicy,
    /// The admin API's bearer token; `None` turns the admin API off (404).
    pub admin_token: Option<Secret>,
    /// Slows down wrong admin tokens, per address (shared with the operator page).
    pub failed_admin_auth: Arc<admin_gate::FailedAuthGate>,
    /// `http.public_url` without a trailing `/`, or empty: playback URLs
    /// the admin API returns then use the request's `Host`.
    pub public_base: String,
}

/// The router of `sealcast serve`: every route and the CORS layer.
pub fn router(state: Arc<HttpState>) -> Router {
    let mut app = Router::new()
        .route("/{app}/{name}/{file}", get(media_file))
        .route(recordings::PLAYLIST_ROUTE, get(recordings::serve_playlist))
        // "api" is a reserved app name: without an admin token (or for an
        // unknown API path) any method gets 404, not 405 from the media route.
        .route(
            "/api/{*rest}",
            any(|| async { status(StatusCode::NOT_FOUND, "not found\n") }),
        )
        .with_state(Arc::clone(&state))
        .merge(key_routes(Arc::clone(&state.keys)));
    if state.admin_token.is_some() {
        app = app.merge(api::routes(Arc::clone(&state)));
    }
    finish(app, &state.cors)
}

/// The router of `sealcast keyserver`: the key endpoint and health only.
pub fn key_server_router(keys: Arc<KeyService>, cors: CorsPolicy) -> Router {
    finish(key_routes(keys), &cors)
}

/// The router of `sealcast edge`: the key endpoint, and playlists and
/// segments from storage.
pub fn edge_router(keys: Arc<KeyService>, edge: Arc<edge::EdgeState>, cors: CorsPolicy) -> Router {
    finish(key_routes(keys).merge(edge::routes(edge)), &cors)
}

fn key_routes(keys: Arc<KeyService>) -> Router {
    // HEAD gets its own answer: axum would otherwise run the GET handler,
    // which spends a one-time ticket (link checkers and prefetching proxies
    // send HEAD).
    Router::new()
        .route("/keys/{app}/{name}/{key_id}", get(keys::key).head(keys::key_head))
        .with_state(Arc::clone(&keys))
        .merge(license::routes(keys))
}

/// Health, the 404 fallback and CORS around every route.
fn finish(app: Router, cors_policy: &CorsPolicy) -> Router {
    let app = app
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") });
    match cors_policy.layer() {
        Some(cors) => app.layer(cors),
        None => app,
    }
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

    /// The CORS layer, or `None` when no origin but our own may read.
    /// Preflight requests (players send one for a `Range` or `Authorization`
    /// header) are answered by the layer; `Content-Length` and
    /// `Content-Range` are exposed for ranged segment reads.
    fn layer(&self) -> Option<CorsLayer> {
        // `Vary: Origin` only where the answer depends on it: a `*` answer
        // does not, and a CDN should keep one copy of each segment.
        let (allow_origin, vary) = match self {
            Self::Off => return None,
            Self::AnyOrigin => (AllowOrigin::any(), vec![]),
            Self::Origins(list) => (AllowOrigin::list(list.iter().cloned()), vec![header::ORIGIN]),
        };
        Some(
            CorsLayer::new()
                .allow_origin(allow_origin)
                .vary(vary)
                .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::OPTIONS])
                .allow_headers([header::AUTHORIZATION, header::RANGE, header::CONTENT_TYPE])
                .expose_headers([header::CONTENT_LENGTH, header::CONTENT_RANGE])
                .max_age(Duration::from_secs(86_400)),
        )
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

fn status(code: StatusCode, body: &'static str) -> Response {
    (code, [(header::CACHE_CONTROL, "no-store")], body).into_response()
}

fn unavailable(body: &'static str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "2"), (header::CACHE_CONTROL, "no-store")],
        body,
    )
        .into_response()
}

/// The token from `?token=` or `Authorization: Bearer`.
fn presented_token<'a>(query: Option<&'a str>, headers: &'a HeaderMap) -> Option<&'a str> {
    query.filter(|t| !t.is_empty()).or_else(|| {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::auth::bearer_token)
    })
}

/// `GET /{app}/{name}/index.m3u8` and `GET /{app}/{name}/{publish_id}-{seq}.ts`.
async fn media_file(
    State(state): State<Arc<HttpState>>,
    Path((app, name, file)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    let Some([token]) = query::params(request.uri().query(), ["token"]) else {
        return query::given_twice();
    };
    let headers = request.headers();
    let Ok(stream_name) = StreamName::new(&app, &name) else {
        return status(StatusCode::NOT_FOUND, "not found\n");
    };
    let Some(stream) = state.registry.get(&stream_name) else {
        return status(StatusCode::NOT_FOUND, "not found\n");
    };
    if file == "index.m3u8" {
        let viewer = match playlist_viewer(&state.keys, &stream_name, token.as_deref(), headers) {
            Ok(viewer) => viewer,
            Err(refused) => return refused.into_response(),
        };
        let logged = viewer.as_ref().map(PlaylistViewer::for_log);
        let text = match stream.playlist_text() {
            Some(text) => match personal_playlist(&state.keys, &stream_name, &text, viewer.as_ref()) {
                Ok(text) => Some(text),
                Err(no_tickets) => return no_tickets.into_response(),
            },
            None => None,
        };
        return playlist_response(text, logged);
    }
    if !names::is_segment_file_name(&file) {
        return status(StatusCode::NOT_FOUND, "not found\n");
    }
    // In object storage: what this node stored lately (no storage round
    // trip, and no 503 while storage is down). On disk: what viewers asked
    // for lately (one read of the file for all of a stream's viewers).
    if let Some(pieces) = stream.recent().get(&file) {
        return stored::serve_pieces(&pieces, headers);
    }
    let storage = state.registry.storage();
    if storage.local_dir().is_none() {
        let key = crate::storage::segment_key(stream_name.app(), stream_name.name(), &file);
        return stored::serve_segment(storage, &key, headers).await;
    }
    serve_local_segment(&stream, &file, headers).await
}

/// Segments on disk kept in memory per stream after a viewer asked for them:
/// players at the live edge all fetch the newest three.
const HOT_SEGMENTS: usize = 4;
/// Larger segment files are streamed from disk for each request instead.
const HOT_SEGMENT_MAX_BYTES: u64 = 8 * 1024 * 1024;

/// A segment on disk: read whole once into the stream's
/// [`crate::live::RecentSegments`] and served from there, so a segment that
/// many viewers fetch costs one read instead of one per viewer; streamed from
/// the file when it is too large to keep, or when the node's segment memory
/// (`[http.limits] segment_memory_mb`) has no room for it: a full memory must
/// not turn into a whole-file read per request.
async fn serve_local_segment(stream: &crate::live::Stream, file: &str, headers: &HeaderMap) -> Response {
    let path = stream.dir().join(file);
    let limit = HOT_SEGMENT_MAX_BYTES.min(stream.recent().room());
    // Open, size and read in one blocking-pool hop; a segment too large to
    // keep is streamed from the file already open.
    let read = tokio::task::spawn_blocking({
        let path = path.clone();
        move || read_if_small(&path, limit)
    });
    let bytes = match read.await {
        Ok(Ok(SegmentFile::Read(bytes))) => bytes,
        Ok(Ok(SegmentFile::Open { file, len })) => {
            return serve_segment(tokio::fs::File::from_std(file), len, path, headers).await;
        }
        Ok(Err(_)) | Err(_) => return status(StatusCode::NOT_FOUND, "not found\n"),
    };
    let pieces: std::sync::Arc<[bytes::Bytes]> = std::sync::Arc::from([bytes::Bytes::from(bytes)]);
    stream
        .recent()
        .insert(file.to_owned(), std::sync::Arc::clone(&pieces), HOT_SEGMENTS);
    stored::serve_pieces(&pieces, headers)
}

/// A segment file as [`read_if_small`] leaves it.
enum SegmentFile {
    /// All of it.
    Read(Vec<u8>),
    /// Larger than the limit: open, `len` bytes, not read.
    Open { file: std::fs::File, len: u64 },
}

/// The whole file when it is at most `limit` bytes, else the open file.
/// Listed segments are complete and never rewritten (names are unique per
/// publish), so what is read is the segment.
fn read_if_small(path: &std::path::Path, limit: u64) -> io::Result<SegmentFile> {
    use std::io::Read as _;

    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    if len > limit {
        return Ok(SegmentFile::Open { file, len });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.read_to_end(&mut bytes)?;
    Ok(SegmentFile::Read(bytes))
}

/// A viewer who presented a valid token for a playlist.
pub(crate) struct PlaylistViewer<'a> {
    token: &'a str,
    claims: crate::auth::Claims,
    /// [`crate::auth::ticket::viewer_tag`], hashed once per request.
    tag: ViewerId,
}

impl PlaylistViewer<'_> {
    /// Who the access log says the playlist was for.
    fn for_log(&self) -> access_log::Viewer {
        access_log::Viewer::of_tagged_token(&self.claims, self.tag)
    }
}

/// The playlist's viewer, if a token came with the request; a token that
/// does not check out is refused here ([`RefusedToken`]) rather than echoed
/// into the playlist. Native players do not carry the playlist's query over to key
/// requests, so a valid token is written into every key URI.
fn playlist_viewer<'a>(
    keys: &KeyService,
    stream: &StreamName,
    query_token: Option<&'a str>,
    headers: &'a HeaderMap,
) -> Result<Option<PlaylistViewer<'a>>, RefusedToken> {
    scoped_playlist_viewer(keys, stream, None, query_token, headers)
}

/// [`playlist_viewer`] for the live playlist (`recording: None`) or a
/// recording's: a token scoped to one recording opens only that one.
fn scoped_playlist_viewer<'a>(
    keys: &KeyService,
    stream: &StreamName,
    recording: Option<&str>,
    query_token: Option<&'a str>,
    headers: &'a HeaderMap,
) -> Result<Option<PlaylistViewer<'a>>, RefusedToken> {
    let Some(token) = presented_token(query_token, headers) else {
        return Ok(None);
    };
    match keys.verify_token(token, stream) {
        Ok(claims) if !crate::auth::recording::allows_playlist(claims.recording.as_deref(), recording) => {
            debug!(%stream, "token scoped to another recording");
            Err(RefusedToken)
        }
        Ok(claims) => {
            let tag = keys.saw_viewer(stream, &claims, token);
            Ok(Some(PlaylistViewer { token, claims, tag }))
        }
        Err(error) => {
            debug!(%stream, %error, "token refused");
            Err(RefusedToken)
        }
    }
}

/// A playlist request whose token does not check out: a 403.
pub(crate) struct RefusedToken;

impl IntoResponse for RefusedToken {
    fn into_response(self) -> Response {
        status(StatusCode::FORBIDDEN, "forbidden\n")
    }
}

/// Tickets could not be issued for a playlist (logged): a 503.
pub(crate) struct NoTickets;

impl IntoResponse for NoTickets {
    fn into_response(self) -> Response {
        unavailable("playlist unavailable\n")
    }
}

/// `canonical` as `viewer` gets it: for a protected stream, key URIs as
/// stored (the player sends its credential with the license request) and a
/// license ticket when tickets are on; otherwise the viewer's token, or
/// one-time tickets, in every key URI. Without a viewer, as stored.
pub(crate) fn personal_playlist(
    keys: &KeyService,
    stream: &StreamName,
    canonical: &str,
    viewer: Option<&PlaylistViewer<'_>>,
) -> Result<String, NoTickets> {
    if keys.is_protected(stream) {
        return license::with_license_ticket(keys, stream, canonical, viewer);
    }
    match viewer {
        Some(viewer) => personalize(keys, stream, canonical, viewer),
        None => Ok(canonical.to_owned()),
    }
}

/// The credential-free playlist `text` with the viewer's credential written
/// into its key URIs: one-time tickets when they are on, else the token.
fn personalize(
    keys: &KeyService,
    stream: &StreamName,
    text: &str,
    viewer: &PlaylistViewer<'_>,
) -> Result<String, NoTickets> {
    if !keys.tickets_enabled() {
        return Ok(crate::keyservice::with_key_query(
            text,
            &format!("token={}", viewer.token),
        ));
    }
    keys.ticket_playlist(text, &viewer.claims, viewer.tag).map_err(|error| {
        error!(%stream, %error, "cannot issue key tickets");
        NoTickets
    })
}

/// A playlist answer: personal ones (a credential inside, given to `viewer`)
/// are never cached.
fn playlist_response(text: Option<String>, viewer: Option<access_log::Viewer>) -> Response {
    let cache_control = if viewer.is_some() {
        PERSONAL_PLAYLIST_CACHE
    } else {
        PLAYLIST_CACHE
    };
    let Some(text) = text else {
        return status(StatusCode::NOT_FOUND, "not found\n");
    };
    let mut response = (
        [
            (header::CONTENT_TYPE, PLAYLIST_TYPE),
            (header::CACHE_CONTROL, cache_control),
        ],
        text,
    )
        .into_response();
    if let Some(viewer) = viewer {
        response.extensions_mut().insert(viewer);
    }
    response
}

/// Streams a segment file, answering a single-range `Range` request with 206
/// (RFC 9110 14.2); ffmpeg sends them. The body is read and sent in
/// `SEGMENT_CHUNK_BYTES` chunks: what a request holds does not grow with the
/// segment (hyper may still queue a few chunks for a slow client).
///
/// `file` is opened before any answer, so a missing (expired) segment is a
/// 404; once open, an unlink does not stop the read (Unix).
async fn serve_segment(mut file: tokio::fs::File, len: u64, path: PathBuf, headers: &HeaderMap) -> Response {
    let range = match SegmentRange::requested(headers, len) {
        Ok(range) => range,
        Err(unsatisfiable) => return unsatisfiable.into_response(),
    };
    let (start, end) = (range.start, range.end);
    if start > 0 && file.seek(SeekFrom::Start(start)).await.is_err() {
        return status(StatusCode::NOT_FOUND, "not found\n");
    }
    let body = SegmentBody {
        file: file.take(end - start),
        path,
    };
    let mut response = (
        [
            (header::CONTENT_TYPE, "video/mp2t"),
            (header::CACHE_CONTROL, SEGMENT_CACHE),
        ],
        Body::from_stream(ReaderStream::with_capacity(body, SEGMENT_CHUNK_BYTES)),
    )
        .into_response();
    // A stream has no size hint: set the length, or hyper would send chunked.
    (response.headers_mut()).insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    range.mark(&mut response);
    response
}

/// The bytes of a segment a request asks for (RFC 9110 14.2: one range, or
/// the whole segment); shared by segments on disk and in object storage.
pub(crate) struct SegmentRange {
    start: u64,
    end: u64,
    len: u64,
    partial: bool,
}

/// A `Range` the segment cannot satisfy: 416 with its length.
pub(crate) struct Unsatisfiable(u64);

impl IntoResponse for Unsatisfiable {
    fn into_response(self) -> Response {
        (
            StatusCode::RANGE_NOT_SATISFIABLE,
            [(header::CONTENT_RANGE, format!("bytes */{}", self.0))],
            "range not satisfiable\n",
        )
            .into_response()
    }
}

impl SegmentRange {
    /// What `headers` ask of a segment of `len` bytes.
    fn requested(headers: &HeaderMap, len: u64) -> Result<Self, Unsatisfiable> {
        let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
        let (start, end) = match range.map(|r| parse_range(r, len)) {
            None => (0, len),
            Some(Some(range)) => range,
            Some(None) => return Err(Unsatisfiable(len)),
        };
        Ok(Self {
            start,
            end,
            len,
            partial: range.is_some(),
        })
    }

    /// `Accept-Ranges`, and for a range 206 with its `Content-Range`.
    fn mark(&self, response: &mut Response) {
        let headers = response.headers_mut();
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if !self.partial {
            return;
        }
        let content_range = format!("bytes {}-{}/{}", self.start, self.end - 1, self.len);
        if let Ok(value) = HeaderValue::from_str(&content_range) {
            headers.insert(header::CONTENT_RANGE, value);
        }
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
}

/// The bytes of a segment response: the file limited to the range.
///
/// The status line and `Content-Length` are sent before the first read, so a
/// read error, or the file ending before the range does (truncated under
/// us), can only end the body early: it is returned as an error, which makes
/// hyper close the connection rather than leave the client waiting.
struct SegmentBody {
    file: Take<tokio::fs::File>,
    /// For the log line only.
    path: PathBuf,
}

impl AsyncRead for SegmentBody {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let filled = buf.filled().len();
        let result = ready!(Pin::new(&mut self.file).poll_read(cx, buf)).and_then(|()| {
            let eof = buf.filled().len() == filled && buf.remaining() > 0;
            if eof && self.file.limit() > 0 {
                Err(io::ErrorKind::UnexpectedEof.into())
            } else {
                Ok(())
            }
        });
        if let Err(error) = &result {
            debug!(path = %self.path.display(), %error, "segment body cut short");
        }
        Poll::Ready(result)
    }
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
    use std::io::Write;

    use tokio::io::AsyncReadExt;

    use super::{SegmentBody, parse_range};

    /// The body reads exactly its range, and a file shorter than the range
    /// (truncated after the headers went out) is an error, not a short body.
    #[tokio::test]
    async fn segment_body_reads_its_range_or_fails() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        let bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        file.write_all(&bytes).unwrap();
        // (take limit, read should give)
        let cases: &[(u64, Option<usize>)] = &[(1000, Some(1000)), (999, Some(999)), (0, Some(0)), (1001, None)];
        for &(limit, expected) in cases {
            let opened = tokio::fs::File::open(file.path()).await.unwrap();
            let mut body = SegmentBody {
                file: opened.take(limit),
                path: file.path().to_owned(),
            };
            let mut out = Vec::new();
            let read = body.read_to_end(&mut out).await;
            match expected {
                Some(n) => {
                    assert_eq!(read.unwrap(), n, "limit {limit}");
                    assert_eq!(out, bytes[..n], "limit {limit}");
                }
                None => {
                    let error = read.unwrap_err();
                    assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof, "limit {limit}");
                }
            }
        }
    }

    /// What a browser sees: (policy, request Origin, preflight?) →
    /// (Access-Control-Allow-Origin, Vary names Origin).
    #[tokio::test]
    async fn cors_answers_by_policy() {
        use axum::body::Body;
        use axum::http::{Method, Request, header};
        use tower::ServiceExt as _;

        use super::{CorsPolicy, finish};

        let listed = CorsPolicy::from_origins(&["https://player.example".to_owned()]);
        // (name, policy, request Origin, preflight, allowed origin, Vary: Origin)
        type Case = (
            &'static str,
            CorsPolicy,
            Option<&'static str>,
            bool,
            Option<&'static str>,
            bool,
        );
        let cases: [Case; 6] = [
            ("off", CorsPolicy::Off, Some("https://a.example"), false, None, false),
            (
                "any",
                CorsPolicy::AnyOrigin,
                Some("https://a.example"),
                false,
                Some("*"),
                false,
            ),
            (
                "any, preflight",
                CorsPolicy::AnyOrigin,
                Some("https://a.example"),
                true,
                Some("*"),
                false,
            ),
            (
                "listed",
                listed.clone(),
                Some("https://player.example"),
                false,
                Some("https://player.example"),
                true,
            ),
            (
                "listed, preflight",
                listed.clone(),
                Some("https://player.example"),
                true,
                Some("https://player.example"),
                true,
            ),
            ("not listed", listed, Some("https://evil.example"), false, None, true),
        ];
        for (name, policy, origin, preflight, allowed, varies) in cases {
            let app = finish(axum::Router::new(), &policy);
            let mut request = Request::builder().uri("/healthz");
            if preflight {
                request = request
                    .method(Method::OPTIONS)
                    .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
                    .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "range");
            }
            if let Some(origin) = origin {
                request = request.header(header::ORIGIN, origin);
            }
            let response = app.oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
            let get = |name: header::HeaderName| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
            assert!(response.status().is_success(), "{name}: {}", response.status());
            assert_eq!(get(header::ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(), allowed, "{name}");
            let vary = response
                .headers()
                .get_all(header::VARY)
                .iter()
                .any(|v| v.to_str().unwrap().to_ascii_lowercase().contains("origin"));
            assert_eq!(vary, varies, "{name}");
            if allowed.is_some() && !preflight {
                assert_eq!(
                    get(header::ACCESS_CONTROL_EXPOSE_HEADERS).as_deref(),
                    Some("content-length,content-range"),
                    "{name}"
                );
            }
            if allowed.is_some() && preflight {
                assert_eq!(
                    get(header::ACCESS_CONTROL_ALLOW_METHODS).as_deref(),
                    Some("GET,HEAD,POST,OPTIONS"),
                    "{name}"
                );
                assert_eq!(
                    get(header::ACCESS_CONTROL_ALLOW_HEADERS).as_deref(),
                    Some("authorization,range,content-type"),
                    "{name}"
                );
                assert_eq!(get(header::ACCESS_CONTROL_MAX_AGE).as_deref(), Some("86400"), "{name}");
            }
        }
    }

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
