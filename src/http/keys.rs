//! `/keys/{app}/{name}/{key_id}`: the key endpoint, the one route every
//! viewer asks once per key, so it reads the request in place: the query
//! through [`query::params`], the headers and extensions from the request
//! rather than cloned out of it.

use std::borrow::Cow;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{access_log, license, presented_token, query, status, unavailable};
use crate::keyservice::{Credential, KeyError, KeyService};
use crate::names::StreamName;

/// The query of a key request: `edk`, and `ticket` or `token`.
struct KeyQuery<'a> {
    edk: Option<Cow<'a, str>>,
    token: Option<Cow<'a, str>>,
    ticket: Option<Cow<'a, str>>,
}

impl<'a> KeyQuery<'a> {
    fn parse(query: Option<&'a str>) -> Option<Self> {
        let [edk, token, ticket] = query::params(query, ["edk", "token", "ticket"])?;
        Some(Self { edk, token, ticket })
    }

    /// An empty ticket is none.
    fn ticket(&self) -> Option<&str> {
        self.ticket.as_deref().filter(|t| !t.is_empty())
    }
}

/// `GET /keys/{app}/{name}/{key_id}?edk=…&(ticket=…|token=…)`: the 16-byte
/// data key. A `ticket` is used when present (and must be good: no fallback
/// to a token); otherwise the token from the query or `Authorization: Bearer`.
pub(super) async fn key(
    State(keys): State<Arc<KeyService>>,
    Path((app, name, key_id)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    let Some(query) = KeyQuery::parse(request.uri().query()) else {
        return query::given_twice();
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
