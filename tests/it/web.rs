//! The web pages over real HTTP: headers (CSP and friends), who may see the
//! operator page, signing in with the admin token, and the watch page's
//! answers to missing, bad and good tokens. The browser test
//! (tests/it/browser.rs) shows the pages working in Chromium.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::support::http::{self, Response};
use crate::support::server::TestServer;
use sealcast::auth::Secret;
use sealcast::config::{Config, DEFAULT_HLSJS_INTEGRITY, DEFAULT_HLSJS_URL};
use sealcast::http::web::{self, REFUSED_TEXT, TOKEN_NEEDED_TEXT, WebState};
use sealcast::server::Server;
use tokio::net::TcpListener;

const ADMIN: &str = "admin-token-for-tests-0123456789";

/// Only the web router, with `admin` as the admin token and `listen` as the
/// configured HTTP address (which decides access without a token).
async fn web_only(admin: Option<&str>, listen: &str, public_url: Option<&str>) -> (SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let public = public_url
        .map(|u| format!("public_url = \"{u}\"\n"))
        .unwrap_or_default();
    let text = format!(
        "[storage]\ndata_dir = \"{}\"\n[http]\nlisten = \"{listen}\"\n{public}",
        dir.path().display()
    );
    let config = Config::from_toml_str(&text).unwrap();
    let server = Server::from_config(&config).unwrap();
    let state = WebState::new(
        Arc::clone(server.registry()),
        server.token_secret().clone(),
        admin.map(|a| Secret::from(a.to_string())),
        &config.http,
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = web::router(Arc::new(state));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, dir)
}

/// `POST path` with a form body; the response.
async fn post_form(addr: SocketAddr, path: &str, body: &str) -> Response {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    crate::support::http::raw(addr, &head, body.as_bytes()).await
}

fn session_cookie(response: &Response) -> String {
    let set = response.header("set-cookie").expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set.split("; ").any(|a| a == attribute), "{attribute} in {set}");
    }
    set.split(';').next().unwrap().to_owned()
}

fn assert_page_headers(response: &Response) {
    assert_eq!(response.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert_eq!(response.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(response.header("x-frame-options"), Some("DENY"));
    let csp = response.header("content-security-policy").expect("a CSP");
    assert!(csp.starts_with("default-src 'none';"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    let body = response.text();
    assert!(!body.contains("<script>"), "no inline script:\n{body}");
}

#[tokio::test]
async fn watch_page_answers_by_token() {
    let server = TestServer::start("").await;
    let valid = server.token("live/demo", 3600);

    let page = http::get(server.http, &format!("/watch/live/demo?token={valid}")).await;
    assert_eq!(page.status, 200);
    assert_page_headers(&page);
    assert_eq!(
        page.header("content-security-policy"),
        Some(
            "default-src 'none'; script-src 'self'; connect-src 'self'; \
             media-src 'self' blob:; worker-src blob:; style-src 'self'; img-src 'self' data:; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
    );
    let html = page.text();
    for want in [
        "data-playlist=\"../../live/demo/index.m3u8\"",
        &format!("data-hlsjs-url=\"../..{DEFAULT_HLSJS_URL}\""),
        &format!("data-hlsjs-integrity=\"{DEFAULT_HLSJS_INTEGRITY}\""),
        "<script src=\"../../static/player.js?v=",
        "<link rel=\"stylesheet\" href=\"../../static/style.css?v=",
        "<video id=\"video\"",
        "<p id=\"error\" class=\"error\" role=\"alert\" hidden></p>",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
    ] {
        assert!(html.contains(want), "{want} in\n{html}");
    }
    assert!(!html.contains(&valid), "the page never echoes the token");

    let refusals = [
        ("/watch/live/demo".to_string(), 401, TOKEN_NEEDED_TEXT),
        ("/watch/live/demo?token=".to_string(), 401, TOKEN_NEEDED_TEXT),
        ("/watch/live/demo?token=x.y.z".to_string(), 403, REFUSED_TEXT),
        (
            format!("/watch/live/demo?token={}", server.token("live/demo", -10)),
            403,
            web::EXPIRED_TEXT,
        ),
        (
            format!("/watch/live/demo?token={}", server.token("live/other", 3600)),
            403,
            web::WRONG_STREAM_TEXT,
        ),
    ];
    for (path, status, text) in refusals {
        let page = http::get(server.http, &path).await;
        assert_eq!(page.status, status, "{path}");
        assert_page_headers(&page);
        let html = page.text();
        let shown = format!("role=\"alert\">{}</p>", text.replace('\'', "&#39;"));
        assert!(html.contains(&shown), "{path}: {shown} in\n{html}");
        assert!(!html.contains("player.js"), "{path}: no player on a refused page");
    }

    for path in ["/watch/live/nope?token=x", "/watch/li.ve/demo", "/watch/live"] {
        let page = http::get(server.http, path).await;
        assert_eq!(page.status, 404, "{path}");
    }

    // The media routes still answer next to the page routes.
    assert_eq!(http::get(server.http, "/live/demo/index.m3u8").await.status, 404);
    assert_eq!(http::get(server.http, "/healthz").await.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn static_files_are_served_with_types() {
    let server = TestServer::start("").await;
    let cases = [
        ("/static/player.js", "text/javascript; charset=utf-8", "hls.js"),
        ("/static/style.css", "text/css; charset=utf-8", "@media"),
        // hls.js, embedded: the watch page needs no CDN.
        (DEFAULT_HLSJS_URL, "text/javascript; charset=utf-8", "hls.js"),
        (
            "/static/hls.js@1.7.4/LICENSE",
            "text/plain; charset=utf-8",
            "Apache License",
        ),
    ];
    for (path, content_type, marker) in cases {
        let response = http::get(server.http, path).await;
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.header("content-type"), Some(content_type), "{path}");
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert!(response.text().contains(marker), "{path}");
    }
    assert_eq!(http::get(server.http, "/static/nope.js").await.status, 404);
    server.stop().await;
}

#[tokio::test]
async fn operator_page_on_loopback_without_admin_token() {
    let server = TestServer::start("").await;
    let page = http::get(server.http, "/").await;
    assert_eq!(page.status, 200);
    assert_page_headers(&page);
    let csp = page.header("content-security-policy").unwrap();
    assert!(!csp.contains("script-src"), "the operator page runs no script: {csp}");
    let html = page.text();
    for want in [
        "<h2>live/demo <span class=\"badge offline\">offline</span></h2>",
        "<h2>live/other <span class=\"badge offline\">offline</span></h2>",
        "href=\"watch/live/demo?token=",
        "<meta http-equiv=\"refresh\" content=\"10\">",
    ] {
        assert!(html.contains(want), "{want} in\n{html}");
    }
    // Nothing to sign in to: the form just leads back.
    let posted = post_form(server.http, "/", "admin=x").await;
    assert_eq!(posted.status, 303);
    assert!(posted.header("set-cookie").is_none());
    server.stop().await;
}

#[tokio::test]
async fn operator_page_is_off_on_a_public_listener_without_admin_token() {
    let (addr, _dir) = web_only(None, "0.0.0.0:8080", None).await;
    for response in [http::get(addr, "/").await, post_form(addr, "/", "admin=x").await] {
        assert_eq!(response.status, 403);
        assert!(response.text().contains("auth.admin_token_env"), "{}", response.text());
        assert!(!response.text().contains("live/demo"));
    }
    // The watch page does not depend on the operator's access.
    assert_eq!(http::get(addr, "/watch/live/demo").await.status, 401);
}

#[tokio::test]
async fn operator_page_needs_the_admin_token_when_one_is_set() {
    let (addr, _dir) = web_only(Some(ADMIN), "0.0.0.0:8080", Some("https://video.example.com")).await;

    // Anonymous: a sign-in form, and no stream names.
    let page = http::get(addr, "/").await;
    assert_eq!(page.status, 401);
    assert_page_headers(&page);
    let html = page.text();
    assert!(html.contains("<form method=\"post\" action=\"./\""), "{html}");
    assert!(html.contains("name=\"admin\" type=\"password\""), "{html}");
    assert!(!html.contains("live/demo"), "{html}");

    // Wrong tokens, by form, query, bearer or cookie.
    let wrong = post_form(addr, "/", "admin=nope").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());
    assert!(wrong.text().contains("That admin token is not valid."));
    assert_eq!(http::get(addr, "/?admin=nope").await.status, 401);
    let headers = [("Authorization", "Bearer nope")];
    assert_eq!(http::get_with(addr, "/", &headers).await.status, 401);
    let forged = [("Cookie", "sealcast_operator=99999999999.AAAA")];
    assert_eq!(http::get_with(addr, "/", &forged).await.status, 401);

    // The form signs in: a cookie, then the list.
    let signed_in = post_form(addr, "/", &format!("admin={ADMIN}")).await;
    assert_eq!(signed_in.status, 303);
    assert_eq!(signed_in.header("location"), Some("./"));
    let cookie = session_cookie(&signed_in);
    assert!(
        signed_in.header("set-cookie").unwrap().ends_with("; Secure"),
        "https public URL: Secure cookie"
    );
    assert!(!cookie.contains(ADMIN), "the cookie is not the token itself");
    let page = http::get_with(addr, "/", &[("Cookie", &cookie)]).await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("live/demo"), "{}", page.text());

    // `?admin=` signs in too, and redirects so the token leaves the address bar.
    let by_query = http::get(addr, &format!("/?admin={ADMIN}")).await;
    assert_eq!(by_query.status, 303);
    assert_eq!(by_query.header("location"), Some("./"));
    session_cookie(&by_query);

    // Scripts send the token as a bearer token.
    let bearer = format!("Bearer {ADMIN}");
    let page = http::get_with(addr, "/", &[("Authorization", &bearer)]).await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("live/demo"));
}
