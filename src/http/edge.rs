//! `sealcast edge`: the viewer side of a cluster, stateless. Playlists are
//! the canonical ones ingest nodes keep in storage (key URIs without any
//! credential), personalized per viewer (token or one-time tickets) exactly
//! as `serve` does; segments come from storage, `Range` answered. Nothing is
//! kept between requests but a playlist cache of at most
//! [`PLAYLIST_FRESH`], so any number of edges can stand behind any load
//! balancer, and a viewer may hit a different one on every request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dashmap::DashMap;
use tracing::warn;

use super::{playlist_response, playlist_viewer, query, status, stored, unavailable};
use crate::keyservice::KeyService;
use crate::names::{self, StreamName};
use crate::storage::Storage;

/// How long a canonical playlist read from storage is served before it is
/// read again: an edge is never more than this behind its ingest node, and
/// storage sees at most one playlist read per stream per interval and edge,
/// however many viewers poll.
pub const PLAYLIST_FRESH: Duration = Duration::from_secs(1);

/// Streams whose playlists are cached at once; past it, stale entries are
/// dropped first (names come from requests, so the map must stay bounded).
const MAX_CACHED_PLAYLISTS: usize = 10_000;

/// One stream's cached canonical playlist. The async mutex makes a refresh
/// single-flight: viewers arriving while it is read wait for that read.
type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// A canonical playlist as last read from storage.
struct Cached {
    /// Last time storage was asked (successfully or not).
    checked_at: Instant,
    /// Last time storage answered.
    read_at: Instant,
    text: Option<Arc<str>>,
}

/// How long after the last successful read a playlist is still served while
/// storage fails; past it, 503.
pub const STALE_PLAYLIST_MAX: Duration = Duration::from_secs(60);

/// What an edge's media routes share.
pub struct EdgeState {
    pub storage: Storage,
    pub keys: Arc<KeyService>,
    playlists: DashMap<StreamName, Slot>,
    /// The watch page (`/watch/{app}/{name}`) and its assets, as `serve` has them.
    web: Option<Arc<super::web::WebState>>,
}

impl EdgeState {
    pub fn new(storage: Storage, keys: Arc<KeyService>) -> Self {
        Self {
            storage,
            keys,
            playlists: DashMap::new(),
            web: None,
        }
    }

    /// Serves the watch page too, so a browser plays through the edge (and
    /// a CDN in front) from one origin.
    pub fn with_watch_page(mut self, web: super::web::WebState) -> Self {
        self.web = Some(Arc::new(web));
        self
    }

    /// The stream's canonical playlist, at most [`PLAYLIST_FRESH`] old;
    /// `None` when storage has none (an unknown stream). When storage fails,
    /// the last playlist read, for up to [`STALE_PLAYLIST_MAX`] after it was
    /// read: the ingest node cannot list anything new while storage is down
    /// either, and players keep polling instead of failing.
    async fn canonical_playlist(&self, stream: &StreamName) -> Result<Option<Arc<str>>, crate::storage::StorageError> {
        let slot = self.slot(stream);
        let mut cached = slot.lock().await;
        if let Some(entry) = cached.as_ref()
            && entry.checked_at.elapsed() < PLAYLIST_FRESH
        {
            return Ok(entry.text.clone());
        }
        let key = crate::storage::playlist_key(stream.app(), stream.name());
        match self.storage.get(&key).await {
            Ok(read) => {
                let text = read
                    .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
                    .map(Arc::<str>::from);
                let now = Instant::now();
                *cached = Some(Cached {
                    checked_at: now,
                    read_at: now,
                    text: text.clone(),
                });
                Ok(text)
            }
            Err(error) => match cached.as_mut() {
                Some(entry) if entry.text.is_some() && entry.read_at.elapsed() < STALE_PLAYLIST_MAX => {
                    warn!(%stream, %error, "reading the playlist from storage failed; serving the last one read");
                    // Tried again after PLAYLIST_FRESH: a slow storage must
                    // not hold every viewer's request.
                    entry.checked_at = Instant::now();
                    Ok(entry.text.clone())
                }
                _ => Err(error),
            },
        }
    }

    fn slot(&self, stream: &StreamName) -> Slot {
        if let Some(slot) = self.playlists.get(stream) {
            return Arc::clone(&slot);
        }
        if self.playlists.len() >= MAX_CACHED_PLAYLISTS {
            self.playlists.retain(|_, slot| {
                slot.try_lock().map_or(true, |c| {
                    c.as_ref().is_some_and(|c| c.checked_at.elapsed() < PLAYLIST_FRESH)
                })
            });
        }
        Arc::clone(&self.playlists.entry(stream.clone()).or_default())
    }
}

/// The media routes of an edge: playlists and segments from storage.
pub fn routes(state: Arc<EdgeState>) -> Router {
    let web = state.web.clone();
    let media = Router::new()
        .route("/{app}/{name}/{file}", get(media_file))
        .route(super::recordings::PLAYLIST_ROUTE, get(super::recordings::edge_playlist))
        .with_state(state);
    match web {
        Some(web) => media.merge(super::web::router(web)),
        None => media,
    }
}

/// `GET /{app}/{name}/index.m3u8` and `GET /{app}/{name}/{publish_id}-{seq}.ts`.
async fn media_file(
    State(state): State<Arc<EdgeState>>,
    Path((app, name, file)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    let Some([token]) = query::params(request.uri().query(), ["token"]) else {
        return query::given_twice();
    };
    let headers = request.headers();
    let Ok(stream) = StreamName::new(&app, &name) else {
        return status(StatusCode::NOT_FOUND, "not found\n");
    };
    if file == "index.m3u8" {
        let viewer = match playlist_viewer(&state.keys, &stream, token.as_deref(), headers) {
            Ok(viewer) => viewer,
            Err(refused) => return refused.into_response(),
        };
        let canonical = match state.canonical_playlist(&stream).await {
            Ok(Some(text)) => text,
            Ok(None) => return status(StatusCode::NOT_FOUND, "not found\n"),
            Err(error) => {
                warn!(%stream, %error, "reading the playlist from storage failed");
                return unavailable("playlist unavailable\n");
            }
        };
        let logged = viewer.as_ref().map(super::PlaylistViewer::for_log);
        let personal = super::personal_playlist(&state.keys, &stream, &canonical, viewer.as_ref());
        let text = match personal {
            Ok(text) => text,
            Err(no_tickets) => return no_tickets.into_response(),
        };
        return playlist_response(Some(text), logged);
    }
    if !names::is_segment_file_name(&file) {
        return status(StatusCode::NOT_FOUND, "not found\n");
    }
    let key = crate::storage::segment_key(stream.app(), stream.name(), &file);
    stored::serve_segment(&state.storage, &key, headers).await
}
