//! Credentials from the local metadata endpoints: the container credentials
//! endpoint (ECS task roles, EKS Pod Identity) and EC2 instance metadata,
//! IMDSv2 (EC2 User Guide, "Use the Instance Metadata Service to access
//! instance metadata": a session token from `PUT /latest/api/token`, sent on
//! every read). Both answer the same JSON document.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde::Deserialize;
use zeroize::{Zeroize, Zeroizing};

use super::chain::Fetched;
use super::credentials::ContainerAuth;
use super::sigv4::Credentials;
use crate::clock::UtcDateTime;

/// The HTTP(S) client of the AWS provider, shared by KMS calls and the chain.
pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Credential documents are under 2 KiB; a larger body is not one.
const MAX_BODY: usize = 64 * 1024;
/// The IMDSv2 session token lifetime asked for (the SDKs' 6 hours).
const IMDS_TOKEN_TTL_SECS: &str = "21600";

/// Why an HTTP exchange failed.
#[derive(Debug)]
pub(super) enum SendError {
    /// Nothing answered: connection refused or unroutable, or no answer in time.
    Unreachable(String),
    /// Anything else (TLS, a broken answer).
    Other(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable(why) | Self::Other(why) => f.write_str(why),
        }
    }
}

/// Sends `request` and reads the answer, all within `timeout`.
pub(super) async fn send(
    client: &HttpClient,
    request: hyper::Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<(u16, Zeroizing<Vec<u8>>), SendError> {
    let exchange = async {
        let response = client.request(request).await.map_err(|e| {
            let why = super::error_chain(&e);
            if e.is_connect() {
                SendError::Unreachable(why)
            } else {
                SendError::Other(why)
            }
        })?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| SendError::Other(format!("reading the answer: {e}")))?
            .to_bytes();
        Ok((status, Zeroizing::new(Vec::from(body))))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(SendError::Unreachable(format!("no answer within {timeout:?}"))),
    }
}

/// The credentials of the container endpoint at `uri`.
pub(super) async fn container(
    client: &HttpClient,
    uri: &str,
    auth: &ContainerAuth,
    timeout: Duration,
) -> Result<Fetched, String> {
    let token = match auth {
        ContainerAuth::None => None,
        ContainerAuth::Token(token) => Some(Zeroizing::new(token.0.to_string())),
        ContainerAuth::File(path) => Some(
            tokio::fs::read_to_string(path)
                .await
                .map(|t| Zeroizing::new(t.trim().to_owned()))
                .map_err(|e| format!("container authorization token file {}: {e}", path.display()))?,
        ),
    };
    let mut request = hyper::Request::get(uri);
    if let Some(token) = &token {
        request = request.header("authorization", token.as_str());
    }
    let request = request
        .body(Full::default())
        .map_err(|e| format!("container credentials URI: {e}"))?;
    let (status, body) = send(client, request, timeout)
        .await
        .map_err(|e| format!("container credentials endpoint {uri}: {e}"))?;
    if status != 200 {
        return Err(format!("container credentials endpoint {uri}: HTTP {status}"));
    }
    parse_document(&body).map_err(|why| format!("container credentials endpoint {uri}: {why}"))
}

/// IMDSv2: a session token, the instance's role name, then its credentials.
/// `Err(Unreachable)` when nothing answers at `endpoint` (not on EC2).
pub(super) async fn imds(client: &HttpClient, endpoint: &str, timeout: Duration) -> Result<Fetched, SendError> {
    let request = hyper::Request::put(format!("{endpoint}/latest/api/token"))
        .header("x-aws-ec2-metadata-token-ttl-seconds", IMDS_TOKEN_TTL_SECS)
        .body(Full::default())
        .map_err(|e| SendError::Other(format!("instance metadata endpoint {endpoint}: {e}")))?;
    let (status, token) = send(client, request, timeout).await?;
    if status != 200 {
        return Err(SendError::Other(format!(
            "instance metadata at {endpoint}: token request: HTTP {status}"
        )));
    }
    let token = Zeroizing::new(String::from_utf8_lossy(&token).trim().to_owned());
    let base = format!("{endpoint}/latest/meta-data/iam/security-credentials/");
    let roles = imds_get(client, &base, &token, timeout).await?;
    let roles = String::from_utf8_lossy(&roles).into_owned();
    let Some(role) = roles.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return Err(SendError::Other(format!(
            "instance metadata at {endpoint}: the instance has no IAM role"
        )));
    };
    if role.contains(['/', '?', '#']) || role.len() > 128 {
        return Err(SendError::Other(format!(
            "instance metadata at {endpoint}: bad role name"
        )));
    }
    let document = imds_get(client, &format!("{base}{role}"), &token, timeout).await?;
    parse_document(&document).map_err(|why| SendError::Other(format!("instance metadata at {endpoint}: {why}")))
}

async fn imds_get(
    client: &HttpClient,
    uri: &str,
    token: &str,
    timeout: Duration,
) -> Result<Zeroizing<Vec<u8>>, SendError> {
    let request = hyper::Request::get(uri)
        .header("x-aws-ec2-metadata-token", token)
        .body(Full::default())
        .map_err(|e| SendError::Other(format!("instance metadata {uri}: {e}")))?;
    let (status, body) = send(client, request, timeout).await?;
    if status != 200 {
        return Err(SendError::Other(format!("instance metadata {uri}: HTTP {status}")));
    }
    Ok(body)
}

/// The JSON credentials document both endpoints serve.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Document {
    /// IMDS only: `Success`, or why not.
    code: Option<String>,
    #[serde(default)]
    access_key_id: String,
    #[serde(default)]
    secret_access_key: String,
    #[serde(default)]
    token: Option<String>,
    expiration: Option<String>,
}

impl Drop for Document {
    fn drop(&mut self) {
        self.secret_access_key.zeroize();
        if let Some(token) = &mut self.token {
            token.zeroize();
        }
    }
}

/// The credentials of a metadata document (`Expiration` in RFC 3339).
pub(super) fn parse_document(body: &[u8]) -> Result<Fetched, String> {
    let document: Document =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not a credentials document: {e}"))?;
    if let Some(code) = document.code.as_deref().filter(|c| *c != "Success") {
        let code: String = code.chars().take(100).collect();
        return Err(format!("the answer says {code:?}"));
    }
    if document.access_key_id.is_empty() || document.secret_access_key.is_empty() {
        return Err("the answer has no AccessKeyId and SecretAccessKey".to_owned());
    }
    let expires_ms = match document.expiration.as_deref() {
        None => None,
        Some(text) => Some(
            UtcDateTime::parse_rfc3339(text)
                .and_then(|ms| u64::try_from(ms).ok())
                .ok_or_else(|| "the answer's Expiration is not an RFC 3339 time".to_owned())?,
        ),
    };
    let token = document.token.as_deref().filter(|t| !t.is_empty());
    Ok(Fetched {
        credentials: Credentials::new(&document.access_key_id, &document.secret_access_key, token),
        expires_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents() {
        // The shape IMDS documents (EC2 User Guide, "Retrieve security
        // credentials from instance metadata").
        let imds = br#"{
  "Code" : "Success",
  "LastUpdated" : "2012-04-26T16:39:16Z",
  "Type" : "AWS-HMAC",
  "AccessKeyId" : "ASIAIOSFODNN7EXAMPLE",
  "SecretAccessKey" : "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
  "Token" : "token",
  "Expiration" : "2017-05-17T15:09:54Z"
}"#;
        let fetched = parse_document(imds).unwrap();
        assert_eq!(fetched.credentials.access_key_id(), "ASIAIOSFODNN7EXAMPLE");
        assert_eq!(fetched.credentials.session_token(), Some("token"));
        assert_eq!(fetched.expires_ms, Some(1_495_033_794_000));
        // The container endpoint's (ECS Developer Guide, "Task IAM role").
        let ecs = br#"{"AccessKeyId":"ASIAX","Expiration":"2017-05-17T15:09:54.123Z","RoleArn":"arn:aws:iam::1:role/r","SecretAccessKey":"s","Token":"t"}"#;
        assert_eq!(parse_document(ecs).unwrap().expires_ms, Some(1_495_033_794_123));

        let bad: &[(&[u8], &str)] = &[
            (
                br#"{"Code":"AssumeRoleUnauthorizedAccess"}"#,
                "the answer says \"AssumeRoleUnauthorizedAccess\"",
            ),
            (
                br#"{"AccessKeyId":"A"}"#,
                "the answer has no AccessKeyId and SecretAccessKey",
            ),
            (
                br#"{"AccessKeyId":"A","SecretAccessKey":"s","Expiration":"tomorrow"}"#,
                "the answer's Expiration is not an RFC 3339 time",
            ),
        ];
        for (body, want) in bad {
            assert_eq!(parse_document(body).err().as_deref(), Some(*want));
        }
        assert!(
            parse_document(b"<html>")
                .unwrap_err()
                .starts_with("the answer is not a credentials document")
        );
    }
}
