//! `/keys/{app}/{name}/{key_id}`: the key endpoint, the one route every
//! viewer asks once per key, so it reads the request in place: the query is
//! split by hand rather than through serde (`Query`), and the headers and
//! extensions are read from the request rather than cloned out of it.

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{access_log, license, presented_token, status, unavailable};
use crate::keyservice::{Credential, KeyError, KeyService};
use crate::names::StreamName;

/// The query of a key request: `edk`, and `ticket` or `token`. Other
/// parameters are ignored; one given twice makes the request a 400, as
/// two values leave it unclear which one was meant.
#[derive(Default)]
struct KeyQuery<'a> {
    edk: Option<Cow<'a, str>>,
    token: Option<Cow<'a, str>>,
    ticket: Option<Cow<'a, str>>,
}

impl<'a> KeyQuery<'a> {
    /// Decodes as `application/x-www-form-urlencoded` (as `Query` did), but
    /// borrows what needs no decoding: tokens, tickets and wrapped keys are
    /// base64url, so a player's request is split without a copy.
    fn parse(query: &'a str) -> Option<Self> {
        let mut parsed = Self::default();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = form_pair(pair);
            let field = match &*name {
                "edk" => &mut parsed.edk,
                "token" => &mut parsed.token,
                "ticket" => &mut parsed.ticket,
                _ => continue,
            };
            if field.replace(value).is_some() {
                return None;
            }
        }
        Some(parsed)
    }

    fn ticket(&self) -> Option<&str> {
        self.ticket.as_deref().filter(|t| !t.is_empty())
    }
}

/// One `name=value` pair, decoded only if it holds an escape or a `+`.
fn form_pair(pair: &str) -> (Cow<'_, str>, Cow<'_, str>) {
    if pair.contains(['%', '+']) {
        let decoded = form_urlencoded::parse(pair.as_bytes()).next();
        let (name, value) = decoded.unwrap_or_default();
        return (Cow::Owned(name.into_owned()), Cow::Owned(value.into_owned()));
    }
    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
    (Cow::Borrowed(name), Cow::Borrowed(value))
}

/// `GET /keys/{app}/{name}/{key_id}?edk=…&(ticket=…|token=…)`: the 16-byte
/// data key. A `ticket` is used when present (and must be good: no fallback
/// to a token); otherwise the token from the query or `Authorization: Bearer`.
pub(super) async fn key(
    State(keys): State<Arc<KeyService>>,
    Path((app, name, key_id)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    let Some(query) = KeyQuery::parse(request.uri().query().unwrap_or_default()) else {
        return status(StatusCode::BAD_REQUEST, "a query parameter is given twice\n");
    };
    let headers = request.headers();
    let Ok(stream) = StreamName::new(&app, &name) else {
        return status(StatusCode::NOT_FOUND, "not found\n");
    };
    if keys.is_protected(&stream) {
        return status(StatusCode::FORBIDDEN, license::PROTECTED_KEY_TEXT);
    }
    let credential = match query.ticket() {
        Some(ticket) => Credential::Ticket(ticket),
        None => match presented_token(query.token.as_deref(), headers) {
            Some(token) => Credential::Token(token),
            None => {
                keys.note_unauthorized();
                return status(StatusCode::UNAUTHORIZED, "token required\n");
            }
        },
    };
    let edk = query.edk.as_deref().unwrap_or_default();
    match keys.key(&stream, &key_id, edk, credential).await {
        Ok(data_key) => {
            let mut response = (
                [
                    (header::CONTENT_TYPE, "application/octet-stream"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                data_key.as_bytes().to_vec(),
            )
                .into_response();
            // For the access log, when it is on; the credential was accepted just now.
            let logged = request.extensions().get::<access_log::Logged>().is_some();
            let viewer = match query.ticket() {
                _ if !logged => None,
                Some(ticket) => access_log::Viewer::of_ticket(ticket),
                None => presented_token(query.token.as_deref(), headers).and_then(|token| {
                    let claims = keys.verify_token(token, &stream).ok()?;
                    Some(access_log::Viewer::of_token(&claims, token))
                }),
            };
            if let Some(viewer) = viewer {
                response.extensions_mut().insert(viewer);
            }
            response
        }
        Err(KeyError::Forbidden) => status(StatusCode::FORBIDDEN, "forbidden\n"),
        Err(KeyError::Unavailable) => unavailable("key service unavailable\n"),
        Err(KeyError::TooMany) => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "10"), (header::CACHE_CONTROL, "no-store")],
            "too many key requests\n",
        )
            .into_response(),
    }
}

/// `HEAD /keys/...`: 405, and nothing checked or spent. A key is only
/// worth fetching whole, and a HEAD that looked at the ticket could not say
/// more than the GET will.
pub(super) async fn key_head() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "GET, OPTIONS"), (header::CACHE_CONTROL, "no-store")],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_read_in_place_and_decoded_like_a_form() {
        let query = KeyQuery::parse("edk=AbC_-&token=a.b.c&other=1").unwrap();
        assert!(matches!(query.edk, Some(Cow::Borrowed("AbC_-"))));
        assert!(matches!(query.token, Some(Cow::Borrowed("a.b.c"))));
        assert_eq!(query.ticket(), None);
        let escaped = KeyQuery::parse("ticket=x%2By+z").unwrap();
        assert_eq!(escaped.ticket(), Some("x+y z"));
        assert_eq!(KeyQuery::parse("ticket=").unwrap().ticket(), None, "empty is absent");
        assert!(KeyQuery::parse("").is_some());
        let name_escaped = KeyQuery::parse("&t%6Fken=a&&edk").unwrap();
        assert_eq!(name_escaped.token.as_deref(), Some("a"));
        assert_eq!(name_escaped.edk.as_deref(), Some(""), "a name alone has an empty value");
    }

    #[test]
    fn a_parameter_given_twice_is_refused() {
        assert!(KeyQuery::parse("token=a&token=b").is_none());
        assert!(KeyQuery::parse("edk=a&ticket=t&edk=a").is_none());
    }
}
