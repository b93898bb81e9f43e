//! The publish hook (`[auth] publish_hook_url`): each publish request is
//! POSTed to the broadcaster's backend as JSON `{"app", "key", "client",
//! "query"}`, signed like every webhook (`Sealcast-Signature`, same secret
//! format, same [`super::signature`]). A 2xx answer `{"stream": "app/name"}`
//! admits the publish as that stream; any other status, a body that is not
//! that JSON, a transport error or no whole answer within the timeout refuses
//! it. No retries: the encoder retries, and a refusal is the safe default.
//!
//! The stream key goes to the backend only; it is never logged, and errors
//! here never carry it.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use serde::{Deserialize, Serialize};

use super::client::{HookClient, configured_hook_client};
use super::{SIGNATURE_HEADER, signature};
use crate::auth::Secret;
use crate::config::PublishHookConfig;
use crate::names::StreamName;

/// Largest hook answer read; the answer is one small JSON object.
const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// Why the hook did not admit a publish. Never holds the stream key.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// No whole answer within the configured timeout.
    #[error("the publish hook did not answer within {0:?}")]
    Timeout(Duration),
    /// The request could not be sent or the answer not read.
    #[error("the publish hook could not be reached: {0}")]
    Transport(String),
    /// The backend answered with a status other than 2xx: a refusal.
    #[error("the publish hook answered {0}")]
    Refused(hyper::StatusCode),
    /// A 2xx answer that is not `{"stream": "app/name"}`.
    #[error("the publish hook's answer is not {{\"stream\": \"app/name\"}}: {0}")]
    BadAnswer(String),
}

/// What the hook is asked: one publish request. No `Debug`: it holds the key.
#[derive(Serialize)]
pub struct HookRequest<'a> {
    /// `app` from the RTMP connect.
    pub app: &'a str,
    /// The stream key from publish, its query stripped.
    pub key: &'a str,
    /// The encoder's address, `ip:port`.
    pub client: String,
    /// What followed `?` in the stream key, `null` when nothing did.
    pub query: Option<&'a str>,
}

#[derive(Deserialize)]
struct Answer {
    stream: String,
}

/// The hook's client: where, how long, and the signing secret.
pub struct PublishHook {
    url: hyper::Uri,
    secret: Secret,
    timeout: Duration,
    client: HookClient,
}

impl PublishHook {
    /// From the validated configuration and its resolved secret; the error
    /// names the setting at fault (a URL that does not parse, a CA file that
    /// cannot be used).
    pub fn new(config: &PublishHookConfig, secret: Secret) -> Result<Self, String> {
        let url = config
            .url
            .parse()
            .map_err(|_| format!("auth.publish_hook_url {:?} is not a URL", config.url))?;
        let client = configured_hook_client("auth.publish_hook_tls_ca_file", config.tls_ca_file.as_deref())?;
        Ok(Self {
            url,
            secret,
            timeout: config.timeout,
            client,
        })
    }

    /// The hook's URL, for the start log.
    pub fn url(&self) -> &hyper::Uri {
        &self.url
    }

    /// Asks the backend about one publish; the stream it admits it as.
    pub async fn decide(
        &self,
        app: &str,
        key: &str,
        query: Option<&str>,
        peer: SocketAddr,
    ) -> Result<StreamName, HookError> {
        let request = HookRequest {
            app,
            key,
            client: peer.to_string(),
            query,
        };
        let body = serde_json::to_vec(&request).map_err(|e| HookError::Transport(e.to_string()))?;
        tokio::time::timeout(self.timeout, self.ask(body))
            .await
            .map_err(|_| HookError::Timeout(self.timeout))?
    }

    async fn ask(&self, body: Vec<u8>) -> Result<StreamName, HookError> {
        let signed = signature(&self.secret, crate::clock::now_unix_secs(), &body);
        let request = hyper::Request::post(self.url.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(
                hyper::header::USER_AGENT,
                concat!("sealcast/", env!("CARGO_PKG_VERSION")),
            )
            .header(SIGNATURE_HEADER, signed)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| HookError::Transport(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| HookError::Transport(e.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(HookError::Refused(status));
        }
        let answer = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| HookError::Transport(e.to_string()))?
            .to_bytes();
        parse_answer(&answer)
    }
}

/// The stream a 2xx answer names.
fn parse_answer(answer: &[u8]) -> Result<StreamName, HookError> {
    let answer: Answer = serde_json::from_slice(answer).map_err(|e| HookError::BadAnswer(e.to_string()))?;
    StreamName::parse(&answer.stream).map_err(|e| HookError::BadAnswer(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_table() {
        let table: [(&str, Option<&str>); 7] = [
            (r#"{"stream": "live/alice"}"#, Some("live/alice")),
            (
                r#"{"stream": "shows/b-2", "note": "extra fields are ignored"}"#,
                Some("shows/b-2"),
            ),
            (r#"{"stream": "live"}"#, None),
            (r#"{"stream": "live/../x"}"#, None),
            (r#"{"stream": 3}"#, None),
            (r#"{}"#, None),
            ("ok", None),
        ];
        for (body, want) in table {
            let got = parse_answer(body.as_bytes()).ok().map(|s| s.to_string());
            assert_eq!(got.as_deref(), want, "for {body}");
        }
    }

    #[test]
    fn the_request_body_names_app_key_client_and_query() {
        let request = HookRequest {
            app: "live",
            key: "sk_1",
            client: "192.0.2.1:40000".to_owned(),
            query: None,
        };
        assert_eq!(
            serde_json::to_string(&request).unwrap(),
            r#"{"app":"live","key":"sk_1","client":"192.0.2.1:40000","query":null}"#
        );
    }
}
