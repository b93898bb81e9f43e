//! `GET /`: the operator's list of streams, and signing in to it.
//!
//! With an admin token, a browser signs in once (the form posts to `/`, or
//! `/?admin=…` for a bookmark) and then carries a session cookie:
//! `{exp}.{HMAC-SHA256(admin token, exp)}`, HttpOnly (no script reads it),
//! SameSite=Strict (no other site's page sends it), 12 hours. The cookie is
//! derived from the token rather than being the token, so it expires, and
//! changing the admin token signs every browser out. Scripts and `curl` can
//! send `Authorization: Bearer <admin token>` instead. Prefer the form: a
//! `?admin=` URL lands in browser history and proxy logs (a right one is
//! answered with a redirect that drops it). Every wrong admin credential is
//! slowed down per address ([`FailedAuthGate`]).
//!
//! Without an admin token (loopback mode) the page answers only requests
//! whose `Host` is a loopback name (`localhost`, `127.0.0.1`, `[::1]`, any
//! port) and whose `Origin`, when sent, is that same host: a web page that
//! rebinds its own DNS name to 127.0.0.1 sends its own name and gets 403.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path as FsPath;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use serde::Deserialize;
use tracing::warn;

use super::{PLAIN_PAGE_CSP, WebState, escape, layout, message_page, now_unix_secs, page_response};
use crate::auth::{self, Claims, Secret};
use crate::hls::{SegmentEntry, parse_media_playlist};
use crate::http::admin_gate::peer_ip;
use crate::live::Stream;
use crate::media::{AudioCodec, VideoCodec};

const SESSION_COOKIE: &str = "sealcast_operator";
const SESSION_SECS: u64 = 12 * 3600;
/// How long the watch links on the operator page stay valid.
const WATCH_LINK_SECS: u64 = crate::config::DEFAULT_TOKEN_TTL_SECS;
/// Segments at the live edge the shown bitrate is measured over.
const BITRATE_SEGMENTS: usize = 3;
/// The operator page reloads itself this often, in seconds.
const REFRESH_SECS: u32 = 10;

/// Who may see the operator page.
#[derive(Debug)]
pub enum OperatorAccess {
    /// Whoever presents this admin token.
    Token(Secret),
    /// No admin token, but HTTP listens on loopback only: open to this machine.
    Loopback,
    /// No admin token and a listener other machines reach: the page is off.
    Off,
}

impl OperatorAccess {
    /// An admin token (non-empty) guards the page; without one, the page is
    /// open only when `listen` is a loopback address.
    pub fn from_config(admin_token: Option<Secret>, listen: SocketAddr) -> Self {
        match admin_token.filter(|t| !t.is_empty()) {
            Some(token) => Self::Token(token),
            None if listen.ip().is_loopback() => Self::Loopback,
            None => Self::Off,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct IndexQuery {
    admin: Option<String>,
}

/// `GET /` (and `GET /?admin=…`, which signs in and redirects to `/`).
pub(super) async fn index(
    State(state): State<Arc<WebState>>,
    Query(query): Query<IndexQuery>,
    extensions: Extensions,
    headers: HeaderMap,
) -> Response {
    match &state.operator {
        OperatorAccess::Off => off_page(),
        OperatorAccess::Loopback if !loopback_request(&headers) => not_loopback_page(),
        OperatorAccess::Loopback => streams_page(&state).await,
        OperatorAccess::Token(admin) => {
            let peer = peer_ip(&extensions);
            if let Some(given) = query.admin.as_deref() {
                return sign_in(&state, admin, given, peer).await;
            }
            let bearer = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(auth::bearer_token);
            let session = cookie(&headers, SESSION_COOKIE);
            let bearer_ok = bearer.is_some_and(|t| admin.ct_eq(t.as_bytes()));
            let session_ok = session.is_some_and(|v| session_valid(admin, v, now_unix_secs()));
            if bearer_ok || session_ok {
                return streams_page(&state).await;
            }
            if bearer.is_some() || session.is_some() {
                // A wrong token or a forged (or expired) cookie: as slow as a
                // wrong form, so no way of guessing is cheaper than another.
                state.failed_auth.penalize(peer).await;
                warn!(
                    route = "operator",
                    "operator page request with a wrong admin credential"
                );
            }
            login_page(None)
        }
    }
}

/// `POST /` with the form field `admin`.
pub(super) async fn login(
    State(state): State<Arc<WebState>>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match &state.operator {
        OperatorAccess::Off => off_page(),
        OperatorAccess::Loopback if !loopback_request(&headers) => not_loopback_page(),
        OperatorAccess::Loopback => see_other(None),
        OperatorAccess::Token(admin) => {
            let given = form_field(&body, "admin").unwrap_or_default();
            sign_in(&state, admin, &given, peer_ip(&extensions)).await
        }
    }
}

async fn sign_in(state: &WebState, admin: &Secret, given: &str, peer: Option<IpAddr>) -> Response {
    if !given.is_empty() && admin.ct_eq(given.as_bytes()) {
        let exp = now_unix_secs() + SESSION_SECS;
        let secure = if state.secure_cookie { "; Secure" } else { "" };
        let cookie = format!(
            "{SESSION_COOKIE}={}; Path=/; Max-Age={SESSION_SECS}; HttpOnly; SameSite=Strict{secure}",
            session_value(admin, exp)
        );
        return see_other(Some(cookie));
    }
    state.failed_auth.penalize(peer).await;
    warn!(route = "operator", "operator sign-in with a wrong admin token");
    login_page(Some("That admin token is not valid."))
}

/// Whether a request to the loopback-only page came by a loopback name:
/// `Host` is `localhost`, `127.0.0.1` (any loopback IPv4 literal) or `[::1]`,
/// with or without a port, and `Origin`, when present, is `http://` or
/// `https://` and that same host. See the module docs (DNS rebinding).
fn loopback_request(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    if !loopback_host(host) {
        return false;
    }
    match headers.get(header::ORIGIN) {
        None => true,
        Some(origin) => origin.to_str().is_ok_and(|origin| {
            let origin = origin.to_ascii_lowercase();
            let host = host.to_ascii_lowercase();
            origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                == Some(host.as_str())
        }),
    }
}

/// `localhost`, a loopback IPv4 literal or `[::1]`, then nothing or `:port`.
fn loopback_host(host: &str) -> bool {
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, port)) => {
                if !v6.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback()) {
                    return false;
                }
                ("", port)
            }
            None => return false,
        },
        // The port part keeps its ':', as after "[::1]".
        None => host.split_at(host.find(':').unwrap_or(host.len())),
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let name_ok = host.starts_with('[')
        || name.eq_ignore_ascii_case("localhost")
        || name.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback());
    port_ok && name_ok
}

fn not_loopback_page() -> Response {
    message_page(
        StatusCode::FORBIDDEN,
        "",
        "Operator page refused",
        "Without an admin token this page answers only at http://localhost or http://127.0.0.1 on the server \
         itself. To reach it under another name (a reverse proxy, a LAN address), set auth.admin_token_env or \
         auth.admin_token_file.",
    )
}

/// 303 to `/` (relative, so a path prefix is kept), setting `cookie` if given.
fn see_other(cookie: Option<String>) -> Response {
    let mut response = (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, "./"), (header::CACHE_CONTROL, "no-store")],
    )
        .into_response();
    if let Some(value) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

fn off_page() -> Response {
    message_page(
        StatusCode::FORBIDDEN,
        "",
        "Operator page off",
        "This server listens on an address other machines can reach and has no admin token, so the \
         operator page is off. Set auth.admin_token_env or auth.admin_token_file, or open this page on \
         the server itself with http.listen on 127.0.0.1.",
    )
}

fn login_page(failure: Option<&str>) -> Response {
    let alert = failure
        .map(|f| format!("<p class=\"error\" role=\"alert\">{}</p>\n", escape(f)))
        .unwrap_or_default();
    let body = format!(
        "<main class=\"message\">\n<h1>Operator sign-in</h1>\n{alert}\
         <form method=\"post\" action=\"./\" class=\"login\">\n\
         <label for=\"admin\">Admin token</label>\n\
         <input id=\"admin\" name=\"admin\" type=\"password\" autocomplete=\"current-password\" required autofocus>\n\
         <button type=\"submit\">Sign in</button>\n</form>\n\
         <p class=\"hint\">The token set by auth.admin_token_env or auth.admin_token_file. \
         This browser stays signed in for 12 hours.</p>\n</main>"
    );
    let html = layout("Sign in", "", "", &body, "");
    page_response(StatusCode::UNAUTHORIZED, HeaderValue::from_static(PLAIN_PAGE_CSP), html)
}

async fn streams_page(state: &WebState) -> Response {
    // An edge has no streams of its own to list.
    let Some(registry) = &state.registry else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let now = now_unix_secs();
    let segments_per_key = registry.settings().segments_per_key.get();
    let mut items = String::new();
    for stream in registry.all() {
        let summary = summarize(&stream, now).await;
        let watch_href = watch_link(&state.token_secret, state.audience.as_deref(), &summary.name, now);
        items.push_str(&render_summary(&summary, segments_per_key, &watch_href));
    }
    if items.is_empty() {
        items.push_str("<li class=\"stream\"><p>No streams are configured.</p></li>\n");
    }
    let body = format!(
        "<main class=\"operator\">\n<h1>Streams</h1>\n\
         <p class=\"hint\">This page reloads every {REFRESH_SECS} s. Watch links carry a playback token \
         valid for {}: share them only with viewers you trust.</p>\n\
         <ul class=\"streams\">\n{items}</ul>\n</main>",
        match WATCH_LINK_SECS / 3600 {
            1 => "1 hour".to_owned(),
            hours => format!("{hours} hours"),
        }
    );
    let head = format!("<meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">");
    let html = layout("Streams", "", &head, &body, "");
    page_response(StatusCode::OK, HeaderValue::from_static(PLAIN_PAGE_CSP), html)
}

/// A watch URL (relative to `/`) with a fresh token for `stream`, carrying
/// `aud` when the server expects one (else the watch page and the key
/// endpoint would refuse it).
fn watch_link(secret: &Secret, audience: Option<&str>, stream: &str, now: u64) -> String {
    let claims = Claims {
        exp: now + WATCH_LINK_SECS,
        stream: stream.to_owned(),
        sub: Some("operator".to_owned()),
        jti: None,
        recording: None,
    };
    format!(
        "watch/{stream}?token={}",
        auth::mint_with_audience(secret, &claims, audience)
    )
}

/// Where a stream stands, as the operator page says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// A publisher is connected.
    Live,
    /// The publisher left; the playlist waits for it within the grace period.
    Reconnecting,
    /// The last playlist has ended.
    Ended,
    /// Never published (since the data dir was made).
    Offline,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Live => "live",
            Status::Reconnecting => "reconnecting",
            Status::Ended => "ended",
            Status::Offline => "offline",
        }
    }
}

/// What the operator page shows of one stream.
#[derive(Debug, Clone, PartialEq)]
struct Summary {
    name: String,
    status: Status,
    uptime_secs: Option<u64>,
    resolution: Option<(u32, u32)>,
    bitrate_bps: Option<u64>,
    codecs: Vec<&'static str>,
    segments: u64,
    keys_listed: usize,
}

async fn summarize(stream: &Stream, now: u64) -> Summary {
    let info = stream.info();
    let parsed = stream.playlist_text().and_then(|text| parse_media_playlist(&text).ok());
    let status = match (&parsed, info.live) {
        (_, true) => Status::Live,
        (Some(p), false) if !p.ended => Status::Reconnecting,
        (Some(_), false) => Status::Ended,
        (None, false) => Status::Offline,
    };
    let segments = parsed.as_ref().map_or(&[][..], |p| p.segments.as_slice());
    let bitrate_bps = recent_bitrate(stream.dir(), segments).await;
    let mut key_uris: Vec<&str> = segments
        .iter()
        .filter_map(|s| s.key.as_ref())
        .map(|k| k.uri.as_str())
        .collect();
    key_uris.sort_unstable();
    key_uris.dedup();
    let codecs = [
        info.tracks.video.map(|VideoCodec::H264| "H.264"),
        info.tracks.audio.map(|AudioCodec::Aac| "AAC"),
    ]
    .into_iter()
    .flatten()
    .collect();
    Summary {
        name: stream.name.to_string(),
        status,
        uptime_secs: info
            .started_unix_ms
            .filter(|_| info.live)
            .map(|started| now.saturating_sub(started / 1000)),
        resolution: info.width.zip(info.height),
        bitrate_bps,
        codecs,
        segments: info.segments,
        keys_listed: key_uris.len(),
    }
}

/// Bits per second of the last few segments (ciphertext, so TS overhead and
/// padding included): what a viewer downloads.
async fn recent_bitrate(dir: &FsPath, segments: &[SegmentEntry]) -> Option<u64> {
    let recent = &segments[segments.len().saturating_sub(BITRATE_SEGMENTS)..];
    let (mut bytes, mut secs) = (0u64, 0f64);
    for segment in recent {
        // A segment expired between render and stat is simply left out.
        if let Ok(meta) = tokio::fs::metadata(dir.join(&segment.uri)).await {
            bytes += meta.len();
            secs += segment.duration_secs;
        }
    }
    (secs > 0.0).then(|| (bytes as f64 * 8.0 / secs).round() as u64)
}

fn render_summary(s: &Summary, segments_per_key: u32, watch_href: &str) -> String {
    let dash = || "—".to_string();
    let uptime = s.uptime_secs.map_or_else(dash, format_uptime);
    let resolution = s.resolution.map_or_else(dash, |(w, h)| format!("{w}×{h}"));
    let bitrate = s.bitrate_bps.map_or_else(dash, format_bitrate);
    let codecs = if s.codecs.is_empty() {
        dash()
    } else {
        s.codecs.join(", ")
    };
    let rotation = match segments_per_key {
        1 => "a new key for every segment".to_string(),
        n => format!("a new key every {n} segments"),
    };
    let label = s.status.label();
    let name = escape(&s.name);
    let watch = escape(watch_href);
    format!(
        "<li class=\"stream {label}\">\n<h2>{name} <span class=\"badge {label}\">{label}</span></h2>\n<dl>\n\
         <div><dt>Uptime</dt><dd>{uptime}</dd></div>\n\
         <div><dt>Resolution</dt><dd>{resolution}</dd></div>\n\
         <div><dt>Bitrate</dt><dd>{bitrate}</dd></div>\n\
         <div><dt>Codecs</dt><dd>{codecs}</dd></div>\n\
         <div><dt>Encryption</dt><dd>AES-128, {rotation}</dd></div>\n\
         <div><dt>Segments</dt><dd>{} published, {} keys in the playlist</dd></div>\n\
         </dl>\n<p><a class=\"button\" href=\"{watch}\">Watch</a></p>\n</li>\n",
        s.segments, s.keys_listed
    )
}

fn format_uptime(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {:02} s", s / 60, s % 60),
        s => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

fn format_bitrate(bps: u64) -> String {
    if bps >= 1_000_000 {
        format!("{:.2} Mbit/s", bps as f64 / 1e6)
    } else {
        format!("{} kbit/s", (bps + 500) / 1000)
    }
}

fn session_message(exp: u64) -> String {
    format!("sealcast operator session v1:{exp}")
}

fn session_value(admin: &Secret, exp: u64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, admin.expose());
    let tag = hmac::sign(&key, session_message(exp).as_bytes());
    format!("{exp}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// A session cookie value signed with `admin` that has not expired at `now`.
fn session_valid(admin: &Secret, value: &str, now: u64) -> bool {
    let Some((exp_text, tag_b64)) = value.split_once('.') else {
        return false;
    };
    let (Ok(exp), Ok(tag)) = (exp_text.parse::<u64>(), URL_SAFE_NO_PAD.decode(tag_b64)) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, admin.expose());
    // Canonical form only ("012" or "+12" would parse but sign differently anyway).
    exp > now && exp.to_string() == exp_text && hmac::verify(&key, session_message(exp).as_bytes(), &tag).is_ok()
}

/// The value of cookie `name` from the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Field `name` of an `application/x-www-form-urlencoded` body (the first
/// one), decoded; `None` when absent or not UTF-8.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(n, _)| form_decode(n).as_deref() == Some(name))
        .and_then(|(_, v)| form_decode(v))
}

/// Decodes `+` and `%XX` (WHATWG URL, application/x-www-form-urlencoded).
/// A `%` not followed by two hex digits is kept as it is, as browsers do.
fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |at: usize| bytes.get(at).and_then(|c| (*c as char).to_digit(16));
        match (b, hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                // Two hex digits make at most 0xFF.
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_from_config() {
        let loopback: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let loopback6: SocketAddr = "[::1]:8080".parse().unwrap();
        let public: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let token = || Some(Secret::from("admin-token-0123456789".to_string()));
        let cases = [
            (token(), public, "Token"),
            (token(), loopback, "Token"),
            (Some(Secret::new(Vec::new())), public, "Off"),
            (None, loopback, "Loopback"),
            (None, loopback6, "Loopback"),
            (None, public, "Off"),
        ];
        for (admin, listen, want) in cases {
            let got = match OperatorAccess::from_config(admin, listen) {
                OperatorAccess::Token(_) => "Token",
                OperatorAccess::Loopback => "Loopback",
                OperatorAccess::Off => "Off",
            };
            assert_eq!(got, want, "{listen}");
        }
    }

    #[test]
    fn session_cookies() {
        let admin = Secret::from("admin-token-0123456789".to_string());
        let other = Secret::from("admin-token-9876543210".to_string());
        let now = 1_700_000_000;
        let value = session_value(&admin, now + 60);
        assert!(session_valid(&admin, &value, now));
        assert!(!session_valid(&admin, &value, now + 60), "expired at exp");
        assert!(!session_valid(&other, &value, now), "another admin token");
        let (_, tag) = value.split_once('.').unwrap();
        let cases = [
            format!("{}.{tag}", now + 61),
            format!("0{}.{tag}", now + 60),
            format!("{}", now + 60),
            format!("{}.", now + 60),
            format!("{}.!!", now + 60),
            String::new(),
            "x.y".to_string(),
        ];
        for forged in cases {
            assert!(!session_valid(&admin, &forged, now), "{forged}");
        }
    }

    #[test]
    fn cookies_from_headers() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; sealcast_operator=v.w"));
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&headers, "sealcast_operator"), Some("v.w"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "c"), None);
        assert_eq!(cookie(&HeaderMap::new(), "a"), None);
    }

    #[test]
    fn form_fields() {
        let cases: &[(&[u8], Option<&str>)] = &[
            (b"admin=abc", Some("abc")),
            (b"x=1&admin=a%2Bb+c%3D", Some("a+b c=")),
            (b"admin=%zz%4", Some("%zz%4")),
            (b"admin=", Some("")),
            (b"adm%69n=yes", Some("yes")),
            (b"other=1", None),
            (b"admin=%ff", None),
            (b"\xff=1", None),
            (b"", None),
        ];
        for (body, want) in cases {
            assert_eq!(form_field(body, "admin").as_deref(), *want, "{body:?}");
        }
    }

    #[test]
    fn formats() {
        let uptimes = [
            (0, "0 s"),
            (59, "59 s"),
            (60, "1 min 00 s"),
            (3599, "59 min 59 s"),
            (3600, "1 h 00 min"),
            (90061, "25 h 01 min"),
        ];
        for (secs, want) in uptimes {
            assert_eq!(format_uptime(secs), want);
        }
        let rates = [
            (0, "0 kbit/s"),
            (499, "0 kbit/s"),
            (500, "1 kbit/s"),
            (999_499, "999 kbit/s"),
            (1_000_000, "1.00 Mbit/s"),
            (2_345_678, "2.35 Mbit/s"),
        ];
        for (bps, want) in rates {
            assert_eq!(format_bitrate(bps), want);
        }
    }

    #[test]
    fn summary_rendering() {
        let summary = Summary {
            name: "live/demo".to_string(),
            status: Status::Live,
            uptime_secs: Some(75),
            resolution: Some((640, 360)),
            bitrate_bps: Some(1_500_000),
            codecs: vec!["H.264", "AAC"],
            segments: 12,
            keys_listed: 3,
        };
        let html = render_summary(&summary, 2, "watch/live/demo?token=a.b.c");
        for want in [
            "<li class=\"stream live\">",
            "<h2>live/demo <span class=\"badge live\">live</span></h2>",
            "<dd>1 min 15 s</dd>",
            "<dd>640×360</dd>",
            "<dd>1.50 Mbit/s</dd>",
            "<dd>H.264, AAC</dd>",
            "<dd>AES-128, a new key every 2 segments</dd>",
            "<dd>12 published, 3 keys in the playlist</dd>",
            "href=\"watch/live/demo?token=a.b.c\"",
        ] {
            assert!(html.contains(want), "{want} in\n{html}");
        }
        let idle = Summary {
            status: Status::Offline,
            uptime_secs: None,
            resolution: None,
            bitrate_bps: None,
            codecs: Vec::new(),
            ..summary
        };
        let html = render_summary(&idle, 1, "watch/live/demo?token=<x>");
        for want in [
            "<span class=\"badge offline\">offline</span>",
            "<dd>—</dd>",
            "AES-128, a new key for every segment",
            "token=&lt;x&gt;",
        ] {
            assert!(html.contains(want), "{want} in\n{html}");
        }
        assert_eq!(html.matches("<dd>—</dd>").count(), 4, "{html}");
    }

    #[test]
    fn watch_links_carry_a_token_for_that_stream() {
        let secret = Secret::from("test-secret-0123456789-0123456789-abcdef".to_string());
        let now = 1_700_000_000;
        let link = watch_link(&secret, None, "live/demo", now);
        let token = link.strip_prefix("watch/live/demo?token=").expect(&link);
        let claims = auth::verify(&secret, token, "live/demo", now).unwrap();
        assert_eq!(claims.exp, now + WATCH_LINK_SECS);
        assert_eq!(claims.sub.as_deref(), Some("operator"));
        assert!(auth::verify(&secret, token, "live/other", now).is_err());
    }

    /// Issue 18, finding 9: with `[auth] audience` set, the links carry it.
    #[test]
    fn watch_links_carry_the_audience() {
        let secret = Secret::from("test-secret-0123456789-0123456789-abcdef".to_string());
        let now = 1_700_000_000;
        let link = watch_link(&secret, Some("sealcast-tv"), "live/demo", now);
        let token = link.strip_prefix("watch/live/demo?token=").expect(&link);
        let expect = |audience| auth::Expect {
            stream: "live/demo",
            audience,
        };
        assert!(auth::verify_with(&secret, token, &expect(Some("sealcast-tv")), now).is_ok());
        assert_eq!(
            auth::verify_with(&secret, token, &expect(Some("other")), now),
            Err(auth::TokenError::WrongAudience)
        );
    }

    /// Issue 18, finding 1: DNS rebinding sends the attacker's own name.
    #[test]
    fn loopback_hosts_and_origins() {
        // (Host, Origin, accepted)
        let cases: &[(Option<&str>, Option<&str>, bool)] = &[
            (Some("127.0.0.1:8080"), None, true),
            (Some("127.0.0.1"), None, true),
            (Some("localhost:8080"), None, true),
            (Some("LocalHost"), None, true),
            (Some("[::1]:8080"), None, true),
            (Some("[::1]"), None, true),
            (Some("127.0.0.2:80"), None, true),
            (Some("127.0.0.1:8080"), Some("http://127.0.0.1:8080"), true),
            (Some("localhost:8080"), Some("http://localhost:8080"), true),
            (Some("[::1]:8080"), Some("http://[::1]:8080"), true),
            (Some("attacker.example:8080"), None, false),
            (Some("attacker.example"), None, false),
            (Some("localhost.attacker.example"), None, false),
            (Some("127.0.0.1.nip.io:8080"), None, false),
            (Some("192.168.1.10:8080"), None, false),
            (Some("[::2]:8080"), None, false),
            (Some("[::1"), None, false),
            (Some("127.0.0.1:80x"), None, false),
            (Some("127.0.0.1:"), None, false),
            (Some(""), None, false),
            (None, None, false),
            (Some("127.0.0.1:8080"), Some("http://attacker.example:8080"), false),
            (Some("127.0.0.1:8080"), Some("http://localhost:8080"), false),
            (Some("127.0.0.1:8080"), Some("null"), false),
            (
                Some("attacker.example:8080"),
                Some("http://attacker.example:8080"),
                false,
            ),
        ];
        for (host, origin, want) in cases {
            let mut headers = HeaderMap::new();
            if let Some(host) = host {
                headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
            }
            if let Some(origin) = origin {
                headers.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
            }
            assert_eq!(loopback_request(&headers), *want, "Host {host:?}, Origin {origin:?}");
        }
    }
}
