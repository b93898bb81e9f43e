//! The optional access log (`[http] access_log = true`): one line per
//! request, at info level under the `sealcast::access` target, like nginx's
//! access log: status, method, route (the path, never the query: tokens,
//! tickets and wrapped keys travel there), the stream the path names,
//! duration, response bytes (when known), the peer address, and the viewer a
//! playlist or key request was authorized for ([`Viewer`]). Refused requests
//! show up here with their status even when nothing else logs them.

use std::net::SocketAddr;

use axum::body::HttpBody;
use axum::extract::{ConnectInfo, Request};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::Response;
use tokio::time::Instant;

use crate::auth::Claims;
use crate::auth::ticket;

/// The viewer a handler authorized, put in the response's extensions for the
/// log: the viewer tag (hex; the hash of the token's `jti`, else of the whole
/// token, that tickets carry too, so a viewer's playlist and ticket key lines
/// match) and the token's `sub` when it has one. Never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    tag: [u8; ticket::VIEWER_LEN],
    sub: Option<String>,
}

impl Viewer {
    /// The viewer of a verified token.
    pub fn of_token(claims: &Claims, token: &str) -> Self {
        Self::of_tagged_token(claims, ticket::viewer_tag(claims, token))
    }

    /// The viewer of a verified token whose viewer tag is `tag`.
    pub fn of_tagged_token(claims: &Claims, tag: [u8; ticket::VIEWER_LEN]) -> Self {
        Self {
            tag,
            sub: claims.sub.clone(),
        }
    }

    /// The viewer of a ticket already accepted.
    pub fn of_ticket(ticket: &str) -> Option<Self> {
        Some(Self {
            tag: ticket::viewer_of(ticket)?,
            sub: None,
        })
    }

    fn tag_hex(&self) -> String {
        self.tag.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Put in a request's extensions by the middleware: the access log is on,
/// so a handler that must do extra work to name the viewer (the key
/// endpoint, which checks a token a second time for it) does it.
#[derive(Debug, Clone, Copy)]
pub struct Logged;

/// The middleware: `router.layer(axum::middleware::from_fn(access_log::log))`.
pub async fn log(mut request: Request, next: Next) -> Response {
    request.extensions_mut().insert(Logged);
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.uri().path().to_owned();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.to_string());
    let response = next.run(request).await;
    let viewer = response.extensions().get::<Viewer>();
    let bytes = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| HttpBody::size_hint(response.body()).exact().map(|n| n.to_string()));
    tracing::info!(
        target: "sealcast::access",
        status = response.status().as_u16(),
        %method,
        route = %escape(&route),
        stream = %stream_of(&route).as_deref().unwrap_or("-"),
        duration_ms = %format!("{:.1}", started.elapsed().as_secs_f64() * 1000.0),
        bytes = %bytes.as_deref().unwrap_or("-"),
        peer = %peer.as_deref().unwrap_or("-"),
        viewer = %viewer.map_or_else(|| "-".to_owned(), Viewer::tag_hex),
        sub = %viewer.and_then(|v| v.sub.as_deref()).map_or_else(|| "-".to_owned(), escape),
        "request"
    );
    response
}

/// The `app/name` a path names: `/{app}/{name}/...`, `/keys/{app}/{name}/...`,
/// `/watch/{app}/{name}`; `None` for other routes.
fn stream_of(path: &str) -> Option<String> {
    let mut parts = path.trim_start_matches('/').split('/');
    let first = parts.next()?;
    let (app, name) = match first {
        "keys" | "watch" => (parts.next()?, parts.next()?),
        "" | "api" | "healthz" | "readyz" => return None,
        app => (app, parts.next()?),
    };
    if app.is_empty() || name.is_empty() {
        return None;
    }
    Some(escape(&format!("{app}/{name}")))
}

/// A path as one log token: anything outside printable ASCII (and spaces)
/// escaped, capped, so a request cannot forge or flood log lines.
fn escape(text: &str) -> String {
    const MAX: usize = 256;
    let mut out: String = text.chars().take(MAX).flat_map(char::escape_default).collect();
    if text.chars().count() > MAX {
        out.push('…');
    }
    out.replace(' ', "\\x20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_from_path() {
        let cases = [
            ("/live/demo/index.m3u8", Some("live/demo")),
            ("/live/demo/abc-1.ts", Some("live/demo")),
            ("/keys/live/demo/k1", Some("live/demo")),
            ("/watch/live/demo", Some("live/demo")),
            ("/healthz", None),
            ("/readyz", None),
            ("/api/v1/streams", None),
            ("/", None),
            ("/keys/live", None),
        ];
        for (path, want) in cases {
            assert_eq!(stream_of(path).as_deref(), want, "{path}");
        }
    }

    #[test]
    fn escape_keeps_lines_whole() {
        assert_eq!(escape("/a\nb c"), "/a\\nb\\x20c");
        assert_eq!(escape(&"x".repeat(300)).chars().count(), 257);
    }
}
