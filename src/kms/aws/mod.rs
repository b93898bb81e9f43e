//! The AWS KMS provider: `GenerateDataKey` (`KeySpec` `AES_128`) and `Decrypt`
//! over the KMS JSON protocol (`X-Amz-Target: TrentService.*`,
//! `Content-Type: application/x-amz-json-1.1`), signed with SigV4
//! ([`sigv4`]). Works with any service that speaks that API (moto in tests,
//! KMS-compatible services on a private network).
//!
//! Both calls carry the same encryption context the local provider
//! authenticates as AAD, `{"key_id": …, "stream": "app/name"}`
//! ([`EncryptionContext`]), so AWS KMS refuses to decrypt a wrapped key (its
//! `CiphertextBlob`) for any other stream or key id. `Decrypt` also names the
//! configured KMS key, so a blob made under another KMS key is refused.
//!
//! Errors: a blob KMS calls invalid, or wrapped for another context or key
//! (`InvalidCiphertextException`, `IncorrectKeyException`,
//! `AccessDeniedException` on `Decrypt`) is [`KmsError::InvalidCiphertext`]
//! (the key endpoint's 403); a timeout, a network error, throttling, a 5xx
//! or anything else is [`KmsError::Unavailable`] (503 with `Retry-After`).
//! Every call has a timeout.
//!
//! Credentials come from the standard AWS chain ([`chain::AwsCredentialChain`]:
//! environment, shared profile, web identity, container endpoint, instance
//! metadata), fetched at the first call and refreshed before they expire.
//!
//! HTTPS (AWS itself) is rustls with the Mozilla roots of `webpki-roots` and
//! *ring* crypto; plain `http` endpoints (moto, private KMS-compatible
//! services) work too.

pub mod chain;
pub mod credentials;
pub mod metadata;
pub mod sigv4;
mod sts;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use self::chain::{AwsCredentialChain, ChainSettings};
use self::metadata::HttpClient;
use self::sigv4::{Credentials, SigningParams};
use super::{Kms, KmsError};
use crate::crypto::{DataKey, EncryptionContext, WrappedKey};

/// The SigV4 service name of KMS.
const SERVICE: &str = "kms";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// KMS answers are a few hundred bytes; a larger body is not a KMS answer.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// What the provider needs from the `[kms]` table.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    /// The KMS key: key id, key ARN, alias name (`alias/…`) or alias ARN.
    pub key_id: String,
    /// The region; `None`: `AWS_REGION`, else `AWS_DEFAULT_REGION`.
    pub region: Option<String>,
    /// `http(s)://host[:port]`; `None`: `https://kms.<region>.amazonaws.com`.
    pub endpoint: Option<String>,
    /// Shared profile that wins over the environment keys; `None`: the chain's order.
    pub profile: Option<String>,
    /// Limit for each KMS call, connection included.
    pub request_timeout: Duration,
}

/// An AWS KMS key used through the KMS API.
pub struct AwsKms {
    client: HttpClient,
    endpoint: Endpoint,
    region: String,
    key_id: String,
    credentials: Arc<AwsCredentialChain>,
    timeout: Duration,
}

/// Where requests go: the URI to send to and the `Host` header it signs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    uri: Uri,
    host: String,
    https: bool,
}

impl AwsKms {
    /// Resolves the region from the process environment, sets up the HTTP
    /// client and the credential chain (sharing that client). Makes no
    /// request: credentials are fetched at the first call.
    pub fn new(settings: &AwsSettings) -> Result<Self, KmsError> {
        let env = credentials::process_env;
        let region = credentials::resolve_region(settings.region.as_deref(), &env)?;
        let client = http_client(settings.request_timeout)?;
        let chain = AwsCredentialChain::new(
            ChainSettings {
                profile: settings.profile.clone(),
                region,
                timeout: settings.request_timeout,
                imds_timeout: chain::IMDS_TIMEOUT,
            },
            credentials::Env::capture(&env),
            client.clone(),
            crate::clock::system(),
        );
        Self::build(settings, client, Arc::new(chain), &env)
    }

    /// As [`AwsKms::new`] with given credentials; the region may still come
    /// from `env`.
    pub fn with_credentials(
        settings: &AwsSettings,
        credentials: Credentials,
        env: credentials::EnvLookup<'_>,
    ) -> Result<Self, KmsError> {
        let client = http_client(settings.request_timeout)?;
        let chain = AwsCredentialChain::fixed(credentials, client.clone());
        Self::build(settings, client, Arc::new(chain), env)
    }

    /// As [`AwsKms::new`] with credentials from `chain` (which may be shared
    /// with other AWS clients of the same identity).
    pub fn with_chain(
        settings: &AwsSettings,
        chain: Arc<AwsCredentialChain>,
        env: credentials::EnvLookup<'_>,
    ) -> Result<Self, KmsError> {
        Self::build(settings, http_client(settings.request_timeout)?, chain, env)
    }

    fn build(
        settings: &AwsSettings,
        client: HttpClient,
        credentials: Arc<AwsCredentialChain>,
        env: credentials::EnvLookup<'_>,
    ) -> Result<Self, KmsError> {
        let region = credentials::resolve_region(settings.region.as_deref(), env)?;
        let endpoint = match &settings.endpoint {
            Some(text) => Endpoint::parse(text)?,
            None => Endpoint::parse(&default_endpoint(&region))?,
        };
        Ok(Self {
            client,
            endpoint,
            region,
            key_id: settings.key_id.clone(),
            credentials,
            timeout: settings.request_timeout,
        })
    }

    /// The endpoint requests go to, e.g. `https://kms.eu-west-1.amazonaws.com/`.
    pub fn endpoint(&self) -> String {
        self.endpoint.uri.to_string()
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The configured KMS key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Sends one KMS API call (`target` such as `TrentService.CreateKey`) with
    /// a JSON body, signed, within the timeout; the JSON answer of a 2xx.
    /// [`Kms`] uses it, and so can tools and tests for other KMS operations.
    /// Credentials are had first, outside the timeout (the chain has its own).
    pub async fn call(&self, target: &str, body: Vec<u8>) -> Result<Zeroizing<Vec<u8>>, CallError> {
        let credentials = self
            .credentials
            .credentials()
            .await
            .map_err(|e| CallError::Credentials(e.to_string()))?;
        match tokio::time::timeout(self.timeout, self.send(target, body, &credentials)).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout(self.timeout)),
        }
    }

    async fn send(
        &self,
        target: &str,
        body: Vec<u8>,
        credentials: &Credentials,
    ) -> Result<Zeroizing<Vec<u8>>, CallError> {
        let unix_secs = crate::clock::now_unix_secs();
        let headers = [
            ("host", self.endpoint.host.as_str()),
            ("content-type", CONTENT_TYPE),
            ("x-amz-target", target),
        ];
        let signed = sigv4::sign(
            &sigv4::Request {
                method: "POST",
                path: "/",
                query: "",
                headers: &headers,
                payload: &body,
            },
            &SigningParams {
                credentials,
                region: &self.region,
                service: SERVICE,
                unix_secs,
            },
        );
        let mut request = hyper::Request::post(self.endpoint.uri.clone());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        for (name, value) in &signed {
            request = request.header(*name, value.as_str());
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| CallError::Transport(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| CallError::Transport(error_chain(&e)))?;
        let status = response.status();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| CallError::Transport(format!("reading the answer: {e}")))?
            .to_bytes();
        // Reuses the allocation when `body` is its only owner, so the copy
        // that is zeroized is the one that held the key.
        let body = Zeroizing::new(Vec::from(body));
        if status.is_success() {
            return Ok(body);
        }
        Err(service_error(status.as_u16(), error_type.as_deref(), &body))
    }

    async fn call_json<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
        body: Vec<u8>,
    ) -> Result<T, CallError> {
        let target = format!("TrentService.{operation}");
        let answer = self.call(&target, body).await?;
        serde_json::from_slice(&answer)
            .map_err(|e| CallError::BadResponse(format!("{operation} answer is not the expected JSON: {e}")))
    }
}

impl fmt::Debug for AwsKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKms")
            .field("endpoint", &self.endpoint.uri)
            .field("region", &self.region)
            .field("key_id", &self.key_id)
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// Why a KMS call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No answer within the configured time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Connecting, sending or receiving failed.
    #[error("transport: {0}")]
    Transport(String),
    /// The credential chain yielded no credentials.
    #[error("{0}")]
    Credentials(String),
    /// KMS answered with an error.
    #[error("HTTP {status}: {code}: {message}")]
    Service {
        /// HTTP status.
        status: u16,
        /// The error type without namespace, e.g. `ThrottlingException`.
        code: String,
        /// KMS's message (never holds key material).
        message: String,
    },
    /// A 2xx answer that is not what the operation returns.
    #[error("{0}")]
    BadResponse(String),
}

impl CallError {
    /// The error of `operation` as a [`KmsError`]: the client's fault
    /// (a foreign or tampered blob, on `Decrypt` only) or unavailability.
    fn into_kms_error(self, operation: &str) -> KmsError {
        if operation == "Decrypt"
            && let Self::Service { code, .. } = &self
            && matches!(
                code.as_str(),
                "InvalidCiphertextException" | "IncorrectKeyException" | "AccessDeniedException"
            )
        {
            tracing::debug!(kms_error = %code, "AWS KMS refused a wrapped key");
            return KmsError::InvalidCiphertext;
        }
        KmsError::Unavailable(format!("AWS KMS {operation}: {self}"))
    }
}

/// The error an AWS JSON-protocol answer carries: `__type` in the body (maybe
/// namespaced, `com.amazonaws.kms#X`) or the `x-amzn-ErrorType` header
/// (maybe with a `:url` suffix), and `message` or `Message`.
fn service_error(status: u16, header: Option<&str>, body: &[u8]) -> CallError {
    #[derive(Deserialize, Default)]
    struct ErrorBody {
        #[serde(rename = "__type")]
        kind: Option<String>,
        message: Option<String>,
        #[serde(rename = "Message")]
        message_upper: Option<String>,
    }
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    // Authentication errors may come as the query protocol's XML instead.
    let xml_code = std::str::from_utf8(body)
        .ok()
        .and_then(|text| text.split_once("<Code>"))
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code);
    let code = parsed
        .kind
        .as_deref()
        .or(header)
        .or(xml_code)
        .map(|c| {
            let c = c.rsplit('#').next().unwrap_or(c);
            c.split(':').next().unwrap_or(c).to_owned()
        })
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| format!("HTTP{status}"));
    let mut message = parsed.message.or(parsed.message_upper).unwrap_or_default();
    // A message is for logs; keep a hostile or broken server from flooding them.
    if message.len() > 300 {
        let mut end = 300;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    CallError::Service { status, code, message }
}

/// The error with its sources, for logs (hyper's own text is terse).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

fn default_endpoint(region: &str) -> String {
    let domain = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://kms.{region}.{domain}")
}

impl Endpoint {
    /// `http://host[:port]` or `https://host[:port]`, optionally with `/`.
    fn parse(text: &str) -> Result<Self, KmsError> {
        let bad = |why: &str| KmsError::Config(format!("kms.endpoint {text:?} {why}"));
        let uri: Uri = text.parse().map_err(|_| bad("is not a URL"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("must start with http:// or https://")),
        };
        let authority = uri.authority().ok_or_else(|| bad("has no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("must not carry user information"));
        }
        if authority.host().is_empty() {
            return Err(bad("has no host"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad("must have no path or query"));
        }
        let host = authority.as_str().to_owned();
        let uri = Uri::builder()
            .scheme(if https { "https" } else { "http" })
            .authority(host.as_str())
            .path_and_query("/")
            .build()
            .map_err(|_| bad("is not a URL"))?;
        Ok(Self { uri, host, https })
    }
}

/// The provider's HTTP(S) client (rustls, Mozilla roots; plain `http` too),
/// connecting within `timeout`; clones share one connection pool.
pub fn http_client(timeout: Duration) -> Result<HttpClient, KmsError> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(timeout));
    http.set_nodelay(true);
    http.enforce_http(false);
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| KmsError::Config(format!("setting up TLS for AWS KMS: {e}")))?;
    let connector: Connector = builder.https_or_http().enable_http1().wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector))
}

/// `GenerateDataKey` request.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GenerateDataKeyRequest<'a> {
    key_id: &'a str,
    key_spec: &'static str,
    encryption_context: BTreeMap<&'a str, &'a str>,
}

/// `Decrypt` request.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DecryptRequest<'a> {
    ciphertext_blob: String,
    encryption_context: BTreeMap<&'a str, &'a str>,
    key_id: &'a str,
}

/// The fields of the answers sealcast reads; base64, standard alphabet.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyAnswer {
    #[serde(default)]
    ciphertext_blob: Option<String>,
    plaintext: String,
}

impl Drop for KeyAnswer {
    fn drop(&mut self) {
        self.plaintext.zeroize();
    }
}

fn context_map(ctx: &EncryptionContext) -> BTreeMap<&str, &str> {
    ctx.iter().collect()
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, KmsError> {
    serde_json::to_vec(value).map_err(|e| KmsError::Unavailable(format!("AWS KMS request: {e}")))
}

/// A 16-byte data key from the base64 `Plaintext` of an answer.
fn data_key(plaintext_b64: &str, operation: &str) -> Result<DataKey, KmsError> {
    let mut buf = Zeroizing::new([0u8; 48]);
    let len = STANDARD.decode_slice(plaintext_b64.as_bytes(), &mut buf[..]).ok();
    let bytes = len
        .and_then(|len| buf.get(..len))
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .ok_or_else(|| KmsError::Unavailable(format!("AWS KMS {operation}: Plaintext is not a 16-byte key")))?;
    Ok(DataKey::from_bytes(bytes))
}

#[async_trait]
impl Kms for AwsKms {
    async fn generate_data_key(&self, ctx: &EncryptionContext) -> Result<(DataKey, WrappedKey), KmsError> {
        const OP: &str = "GenerateDataKey";
        let body = to_json(&GenerateDataKeyRequest {
            key_id: &self.key_id,
            key_spec: "AES_128",
            encryption_context: context_map(ctx),
        })?;
        let answer: KeyAnswer = self.call_json(OP, body).await.map_err(|e| e.into_kms_error(OP))?;
        let key = data_key(&answer.plaintext, OP)?;
        let blob = answer
            .ciphertext_blob
            .as_deref()
            .and_then(|b| STANDARD.decode(b).ok())
            .filter(|b| !b.is_empty() && b.len() <= WrappedKey::MAX_LEN)
            .ok_or_else(|| {
                KmsError::Unavailable(format!(
                    "AWS KMS {OP}: CiphertextBlob missing, not base64, or over {} bytes",
                    WrappedKey::MAX_LEN
                ))
            })?;
        Ok((key, WrappedKey::from_bytes(blob)))
    }

    async fn decrypt(&self, wrapped: &WrappedKey, ctx: &EncryptionContext) -> Result<DataKey, KmsError> {
        const OP: &str = "Decrypt";
        let body = to_json(&DecryptRequest {
            ciphertext_blob: STANDARD.encode(wrapped.as_bytes()),
            encryption_context: context_map(ctx),
            key_id: &self.key_id,
        })?;
        let answer: KeyAnswer = self.call_json(OP, body).await.map_err(|e| e.into_kms_error(OP))?;
        data_key(&answer.plaintext, OP)
    }
}

#[cfg(test)]
mod tests;
