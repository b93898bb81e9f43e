//! The built-in web pages: an operator's list of streams at `GET /` and a
//! player at `GET /watch/{app}/{name}?token=…`.
//!
//! Plain HTML, CSS and a little JavaScript embedded in the binary; no build
//! step. The player uses hls.js, loaded from `[http] hlsjs_url`: by default
//! the pinned release embedded in the binary (`vendor/hls.js/`, served at
//! `/static/hls.js@1.7.4/hls.min.js` with its license beside it), so the page
//! plays without internet access; a CDN URL is an option. Apple browsers use
//! their native HLS player, which plays AES-128 streams with the
//! token-rewritten key URIs the playlist carries.
//!
//! Every page is sent with a strict Content-Security-Policy: no inline
//! script or style, scripts only from this server and the exact hls.js URL,
//! media and fetches only from this server (and `public_url`), no framing.
//! Pages also send `Referrer-Policy: no-referrer`, so the token in a watch
//! URL never leaks to the hls.js CDN in a `Referer` header.
//!
//! Access to the operator page ([`OperatorAccess`]): with an admin token
//! configured, the page asks for it (a form, `?admin=`, or
//! `Authorization: Bearer`) and then keeps an HttpOnly, SameSite=Strict
//! session cookie derived from it. Without an admin token, the page is served
//! only when the HTTP listener is a loopback address (the default
//! `127.0.0.1:8080`), and only to requests that name a loopback host (not a
//! DNS-rebinding page's name); a reverse proxy on the same machine gets 403
//! and needs an admin token.

mod operator;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

pub use operator::OperatorAccess;

use crate::auth::{self, Expect, Secret};
use crate::clock::now_unix_secs;
use crate::config::HttpConfig;
use crate::http::admin_gate::FailedAuthGate;
use crate::live::Registry;
use crate::names::StreamName;

const PAGE_LAYOUT: &str = include_str!("page.html");
const WATCH_BODY: &str = include_str!("watch.html");
const STYLE_CSS: &str = include_str!("style.css");
const PLAYER_JS: &str = include_str!("player.js");
const PROTECTED_JS: &str = include_str!("protected.js");
const OFFLINE_JS: &str = include_str!("offline.js");

/// Appended to static URLs, so a new release is never served an old cached file.
const ASSET_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a viewer reads when the server or the player refuses playback.
pub const REFUSED_TEXT: &str = "Playback refused: token missing, expired or not valid for this stream.";

/// What the watch page says when the link's token has expired.
pub const EXPIRED_TEXT: &str = "Playback refused: this link's token has expired; ask for a new link.";

/// What the watch page says when the link's token is for another stream.
pub const WRONG_STREAM_TEXT: &str = "Playback refused: this link's token is for another stream.";
/// What a viewer reads when the watch URL has no token.
pub const TOKEN_NEEDED_TEXT: &str =
    "A playback token is needed to watch this stream: open the full link you were given (it ends in ?token=…).";

/// CSP of the operator and message pages: no script at all.
const PLAIN_PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// What the page handlers share.
pub struct WebState {
    /// `None` on `sealcast edge`: no operator page, and a watch page for any
    /// stream name (the token decides; an unknown stream's playlist is 404).
    registry: Option<Arc<Registry>>,
    /// Signs the watch links the operator page offers.
    token_secret: Secret,
    operator: OperatorAccess,
    hlsjs_url: String,
    hlsjs_integrity: Option<String>,
    watch_csp: HeaderValue,
    /// Session cookies get `Secure` when the public URL is https.
    secure_cookie: bool,
    /// `[auth] audience`: watch links carry it, the watch page checks it.
    audience: Option<String>,
    /// Slows down wrong admin credentials (shared with the admin API).
    failed_auth: Arc<FailedAuthGate>,
    /// Which streams are `protection = "web"`; `None`: none.
    keys: Option<Arc<crate::keyservice::KeyService>>,
}

impl WebState {
    /// `admin_token` guards the operator page; see [`OperatorAccess::from_config`].
    pub fn new(
        registry: impl Into<Option<Arc<Registry>>>,
        token_secret: Secret,
        admin_token: Option<Secret>,
        http: &HttpConfig,
    ) -> Self {
        let public_origin = http.public_url.as_deref().and_then(origin_of);
        let csp = watch_csp(&http.hlsjs_url, public_origin);
        Self {
            registry: registry.into(),
            token_secret,
            operator: OperatorAccess::from_config(admin_token, http.listen),
            hlsjs_url: http.hlsjs_url.clone(),
            hlsjs_integrity: http.hlsjs_integrity().map(str::to_owned),
            // Config validation keeps the URLs to visible ASCII, so this parses;
            // were it not to, the page falls back to allowing nothing at all.
            watch_csp: HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static("default-src 'none'")),
            secure_cookie: http.public_url.as_deref().is_some_and(|u| u.starts_with("https://")),
            audience: None,
            failed_auth: Arc::default(),
            keys: None,
        }
    }

    /// Watch pages of protected streams use licenses (`protected.js`).
    pub fn with_key_service(mut self, keys: Arc<crate::keyservice::KeyService>) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Tokens carry and must carry `aud = audience` (`[auth] audience`).
    pub fn with_audience(mut self, audience: Option<String>) -> Self {
        self.audience = audience;
        self
    }

    /// Wrong admin credentials here and at the admin API share one gate, so
    /// an address cannot guess twice as fast by using both.
    pub fn with_failed_auth_gate(mut self, gate: Arc<FailedAuthGate>) -> Self {
        self.failed_auth = gate;
        self
    }
}

/// The page routes; merged into the HTTP router by the server. No CORS layer:
/// other sites have no business reading these pages.
pub fn router(state: Arc<WebState>) -> Router {
    Router::new()
        .route("/", get(operator::index).post(operator::login))
        .route("/watch/{app}/{name}", get(watch))
        .route("/static/style.css", get(style))
        .route("/static/player.js", get(player))
        .route("/static/protected.js", get(protected_player))
        .route("/static/offline.js", get(offline_player))
        .route(crate::config::DEFAULT_HLSJS_URL, get(hlsjs))
        .route(HLSJS_LICENSE_PATH, get(hlsjs_license))
        .with_state(state)
}

/// hls.js, the pinned release (see `vendor/hls.js/README.md`).
const HLSJS: &[u8] = include_bytes!("vendor/hls.js/hls.min.js");
const HLSJS_LICENSE: &str = include_str!("vendor/hls.js/LICENSE");
/// Beside the script, under the same versioned directory.
const HLSJS_LICENSE_PATH: &str = "/static/hls.js@1.7.4/LICENSE";

/// `GET /static/hls.js@1.7.4/hls.min.js`: under a versioned path, so any
/// cache may keep it for good.
async fn hlsjs() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        HLSJS,
    )
}

async fn hlsjs_license() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        HLSJS_LICENSE,
    )
}

/// The Content-Security-Policy of the watch page. hls.js needs `blob:` for
/// its worker and for the MediaSource it plays from; the key and playlist
/// fetches go to this server or the configured public URL. The hls.js source
/// is the exact file URL, not its host: a CDN host serves every npm package,
/// some of which would be script gadgets.
pub fn watch_csp(hlsjs_url: &str, public_origin: Option<&str>) -> String {
    let extra = public_origin.map(|o| format!(" {o}")).unwrap_or_default();
    // The embedded hls.js is ours: 'self' covers it (and a CSP source is
    // never a bare path).
    let script_src = if hlsjs_url.starts_with('/') {
        "'self'".to_owned()
    } else {
        format!("'self' {hlsjs_url}")
    };
    format!(
        "default-src 'none'; script-src {script_src}; connect-src 'self'{extra}; \
         media-src 'self' blob:{extra}; worker-src blob:; style-src 'self'; img-src 'self' data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// `scheme://host[:port]` of a validated `http(s)` URL.
fn origin_of(url: &str) -> Option<&str> {
    let scheme_end = url.find("://")? + 3;
    let host_end = url[scheme_end..].find('/').map_or(url.len(), |i| scheme_end + i);
    Some(&url[..host_end])
}

#[derive(Deserialize)]
struct WatchQuery {
    token: Option<String>,
    /// `?recording={id}`: the page plays that recording of the stream (and,
    /// for a protected stream, offers "Save for offline").
    recording: Option<String>,
}

/// `GET /watch/{app}/{name}?token=…`: the player page. The token is checked
/// here too, so a refused viewer reads why at once, with no script needed;
/// the page's script handles refusals that come later (a token expiring
/// while the stream plays).
async fn watch(
    State(state): State<Arc<WebState>>,
    Path((app, name)): Path<(String, String)>,
    Query(query): Query<WatchQuery>,
) -> Response {
    let Some(stream) = StreamName::new(&app, &name)
        .ok()
        .filter(|n| state.registry.as_ref().is_none_or(|r| r.get(n).is_some()))
    else {
        return message_page(
            StatusCode::NOT_FOUND,
            "../../",
            "Not found",
            "There is no stream at this address.",
        );
    };
    let refusal = token_refusal(&state, &stream, query.token.as_deref());
    let stream_text = escape(&stream.to_string());
    // Relative URLs (from /watch/{app}/{name}) keep working behind a proxy
    // that serves sealcast under a path prefix.
    let recording = query.recording.as_deref().filter(|id| !id.is_empty());
    if recording.is_some_and(|id| !crate::names::is_valid_component(id)) {
        return message_page(
            StatusCode::NOT_FOUND,
            "../../",
            "Not found",
            "There is no recording at this address.",
        );
    }
    let playlist = escape(&match recording {
        Some(id) => format!("../../{}/{}/recordings/{id}/index.m3u8", stream.app(), stream.name()),
        None => format!("../../{}/{}/index.m3u8", stream.app(), stream.name()),
    });
    // The embedded hls.js, relative like the page's other assets.
    let hlsjs_src = match state.hlsjs_url.strip_prefix('/') {
        Some(path) => format!("../../{path}"),
        None => state.hlsjs_url.clone(),
    };
    let protected = state.keys.as_ref().is_some_and(|keys| keys.is_protected(&stream));
    // Offline copies: recordings of protected streams (docs/protection.md).
    let offline = protected && recording.is_some() && refusal.is_none();
    let scripts = page_scripts(refusal.is_some(), protected, offline);
    let license = escape(&format!("../../license/{}/{}", stream.app(), stream.name()));
    let (error, error_hidden) = match refusal {
        Some((_, text)) => (escape(text), ""),
        None => (String::new(), " hidden"),
    };
    let body = fill(
        WATCH_BODY,
        &[
            ("stream", &stream_text),
            ("playlist", &playlist),
            ("hlsjs_url", &escape(&hlsjs_src)),
            (
                "hlsjs_integrity",
                &escape(state.hlsjs_integrity.as_deref().unwrap_or("")),
            ),
            ("refused", if refusal.is_some() { "1" } else { "" }),
            (
                "status",
                match refusal {
                    None => "Connecting…",
                    Some((StatusCode::UNAUTHORIZED, _)) => "No token",
                    Some(_) => "Refused",
                },
            ),
            ("error", &error),
            ("error_hidden", error_hidden),
            ("refused_text", &escape(REFUSED_TEXT)),
            ("token_needed_text", &escape(TOKEN_NEEDED_TEXT)),
            ("protected", if protected { "1" } else { "" }),
            ("license", &license),
            ("recording", &escape(recording.unwrap_or(""))),
            ("offline", if offline { "1" } else { "" }),
        ],
    );
    let html = layout(&stream_text, "../../", "", &body, &scripts);
    let status = refusal.map_or(StatusCode::OK, |(status, _)| status);
    page_response(status, state.watch_csp.clone(), html)
}

/// Why the watch page refuses `token` for `stream` (status, text for the
/// viewer); `None` when it plays.
fn token_refusal(state: &WebState, stream: &StreamName, token: Option<&str>) -> Option<(StatusCode, &'static str)> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Some((StatusCode::UNAUTHORIZED, TOKEN_NEEDED_TEXT));
    };
    let expect = Expect {
        stream: &stream.to_string(),
        audience: state.audience.as_deref(),
    };
    let error = auth::verify_with(&state.token_secret, token, &expect, now_unix_secs()).err()?;
    // Expiry and stream are in the token the viewer holds: saying which of
    // the two is wrong tells them nothing new.
    let text = match error {
        auth::TokenError::Expired => EXPIRED_TEXT,
        auth::TokenError::WrongStream => WRONG_STREAM_TEXT,
        _ => REFUSED_TEXT,
    };
    Some((StatusCode::FORBIDDEN, text))
}

/// The page's scripts: none for a refused viewer; the player, after the
/// license loader for a protected stream, and the offline store for a
/// protected recording.
fn page_scripts(refused: bool, protected: bool, offline: bool) -> String {
    if refused {
        return String::new();
    }
    let script = |name: &str| format!("<script src=\"../../static/{name}?v={ASSET_VERSION}\" defer></script>");
    let mut scripts = String::new();
    if protected {
        scripts.push_str(&script("protected.js"));
    }
    scripts.push_str(&script("player.js"));
    if offline {
        scripts.push_str(&script("offline.js"));
    }
    scripts
}

async fn style() -> Response {
    static_file("text/css; charset=utf-8", STYLE_CSS)
}

async fn player() -> Response {
    static_file("text/javascript; charset=utf-8", PLAYER_JS)
}

async fn protected_player() -> Response {
    static_file("text/javascript; charset=utf-8", PROTECTED_JS)
}

async fn offline_player() -> Response {
    static_file("text/javascript; charset=utf-8", OFFLINE_JS)
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // URLs carry the release version, so a day of caching is safe.
            (header::CACHE_CONTROL, "public, max-age=86400"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// A whole HTML page: the layout around `body`. `root` leads from the page's
/// URL back to the server root (`""` for `/`, `"../../"` for a watch page).
fn layout(title: &str, root: &str, head: &str, body: &str, scripts: &str) -> String {
    fill(
        PAGE_LAYOUT,
        &[
            ("title", title),
            ("root", root),
            ("version", ASSET_VERSION),
            ("head", head),
            ("body", body),
            ("scripts", scripts),
        ],
    )
}

/// A page that only says something: not found, off, refused.
fn message_page(status: StatusCode, root: &str, title: &str, text: &str) -> Response {
    let body = format!(
        "<main class=\"message\"><h1>{}</h1><p>{}</p></main>",
        escape(title),
        escape(text)
    );
    let html = layout(&escape(title), root, "", &body, "");
    page_response(status, HeaderValue::from_static(PLAIN_PAGE_CSP), html)
}

/// An HTML response with the headers every page carries.
fn page_response(status: StatusCode, csp: HeaderValue, html: String) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    let fixed: [(HeaderName, &'static str); 6] = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        // Pages carry tokens (watch links) or operator data.
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (HeaderName::from_static("cross-origin-opener-policy"), "same-origin"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    response
}

/// Replaces each `{{name}}` in `template` with its value, in one pass, so a
/// value that itself contains `{{…}}` is never expanded. Unknown names are
/// left as they are.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + values.iter().map(|(_, v)| v.len()).sum::<usize>());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let name = &after[..end];
                match values.iter().find(|(n, _)| *n == name) {
                    Some((_, value)) => out.push_str(value),
                    None => out.push_str(&rest[start..start + 2 + end + 2]),
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Escapes text for HTML element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded hls.js is the file the pinned Subresource Integrity hash
    /// names: the page would refuse to run anything else.
    #[test]
    fn the_embedded_hlsjs_matches_its_integrity_hash() {
        use base64::Engine as _;
        let digest = ring::digest::digest(&ring::digest::SHA384, HLSJS);
        let sri = format!(
            "sha384-{}",
            base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
        );
        assert_eq!(sri, crate::config::DEFAULT_HLSJS_INTEGRITY);
        assert!(HLSJS_LICENSE.contains("Apache License"), "{HLSJS_LICENSE}");
    }

    #[test]
    fn the_csp_names_a_cdn_script_but_not_our_own_path() {
        let own = watch_csp(crate::config::DEFAULT_HLSJS_URL, None);
        assert!(
            own.starts_with("default-src 'none'; script-src 'self'; connect-src"),
            "{own}"
        );
        let cdn = watch_csp(crate::config::CDN_HLSJS_URL, None);
        assert!(
            cdn.contains(&format!("script-src 'self' {}; ", crate::config::CDN_HLSJS_URL)),
            "{cdn}"
        );
    }

    /// Template, values, expected output.
    type FillCase<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

    #[test]
    fn fill_replaces_once_and_keeps_unknown_names() {
        let cases: &[FillCase] = &[
            ("a {{x}} b", &[("x", "1")], "a 1 b"),
            ("{{x}}{{x}}", &[("x", "ab")], "abab"),
            ("{{x}}", &[("x", "{{y}}"), ("y", "no")], "{{y}}"),
            ("{{unknown}} {{x}}", &[("x", "1")], "{{unknown}} 1"),
            ("open {{x", &[("x", "1")], "open {{x"),
            ("", &[("x", "1")], ""),
            ("é{{x}}ü", &[("x", "ß")], "éßü"),
        ];
        for (template, values, want) in cases {
            assert_eq!(fill(template, values), *want, "{template}");
        }
    }

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("live/demo"), "live/demo");
    }

    #[test]
    fn origins() {
        let cases = [
            ("https://video.example.com/", Some("https://video.example.com")),
            ("https://video.example.com", Some("https://video.example.com")),
            ("http://127.0.0.1:8080/tv/x", Some("http://127.0.0.1:8080")),
            ("video.example.com", None),
        ];
        for (url, want) in cases {
            assert_eq!(origin_of(url), want, "{url}");
        }
    }

    #[test]
    fn watch_csp_names_exactly_what_the_page_loads() {
        assert_eq!(
            watch_csp("https://cdn.example/hls.js@1/hls.min.js", None),
            "default-src 'none'; script-src 'self' https://cdn.example/hls.js@1/hls.min.js; \
             connect-src 'self'; media-src 'self' blob:; worker-src blob:; style-src 'self'; \
             img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        );
        let with_public = watch_csp("https://cdn.example/h.js", Some("https://video.example.com"));
        assert!(
            with_public.contains("connect-src 'self' https://video.example.com;"),
            "{with_public}"
        );
        assert!(
            with_public.contains("media-src 'self' blob: https://video.example.com;"),
            "{with_public}"
        );
        assert!(!with_public.contains("unsafe"), "{with_public}");
    }

    #[test]
    fn embedded_files_have_no_inline_script_or_style() {
        for (name, text) in [("page.html", PAGE_LAYOUT), ("watch.html", WATCH_BODY)] {
            assert!(!text.contains("<script>"), "{name} has an inline script");
            assert!(!text.contains("<style"), "{name} has an inline style element");
            assert!(!text.contains("style="), "{name} has a style attribute");
            let handler = text.match_indices(" on").any(|(at, _)| {
                let rest = &text[at + 3..];
                let word = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_alphabetic()).len();
                word > 0 && rest[word..].starts_with('=')
            });
            assert!(!handler, "{name} has an inline event handler");
        }
        assert!(PLAYER_JS.contains("'use strict'"));
        assert!(STYLE_CSS.contains("@media"), "the stylesheet adapts to small screens");
    }
}
