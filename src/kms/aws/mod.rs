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
mod tests {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;
    use crate::crypto::KeyId;

    fn settings(endpoint: &str) -> AwsSettings {
        AwsSettings {
            key_id: "alias/sealcast".to_owned(),
            region: Some("us-east-1".to_owned()),
            endpoint: Some(endpoint.to_owned()),
            profile: None,
            request_timeout: Duration::from_millis(500),
        }
    }

    fn kms(endpoint: &str) -> AwsKms {
        let none = |_: &str| None;
        AwsKms::with_credentials(&settings(endpoint), Credentials::new("AKIDTEST", "secret", None), &none).unwrap()
    }

    fn ctx() -> EncryptionContext {
        EncryptionContext::new("live/demo", &KeyId::new("abcd1234-0").unwrap())
    }

    #[test]
    fn endpoints() {
        let ok: &[(&str, &str, &str, bool)] = &[
            (
                "http://127.0.0.1:4566",
                "http://127.0.0.1:4566/",
                "127.0.0.1:4566",
                false,
            ),
            ("http://localhost/", "http://localhost/", "localhost", false),
            (
                "https://kms.eu-west-1.amazonaws.com",
                "https://kms.eu-west-1.amazonaws.com/",
                "kms.eu-west-1.amazonaws.com",
                true,
            ),
            ("http://[::1]:9000", "http://[::1]:9000/", "[::1]:9000", false),
        ];
        for (text, uri, host, https) in ok {
            let e = Endpoint::parse(text).unwrap();
            assert_eq!(
                (e.uri.to_string().as_str(), e.host.as_str(), e.https),
                (*uri, *host, *https)
            );
        }
        let bad: &[(&str, &str)] = &[
            ("kms.example.com", "must start with http:// or https://"),
            ("ftp://kms.example.com", "must start with http:// or https://"),
            ("http://kms.example.com/prefix", "must have no path or query"),
            ("http://kms.example.com/?a=1", "must have no path or query"),
            ("http://user:pw@kms.example.com", "must not carry user information"),
            ("http://", "is not a URL"),
        ];
        for (text, why) in bad {
            let err = Endpoint::parse(text).unwrap_err().to_string();
            assert_eq!(err, format!("kms.endpoint {text:?} {why}"));
        }
        assert_eq!(default_endpoint("eu-west-1"), "https://kms.eu-west-1.amazonaws.com");
        assert_eq!(
            default_endpoint("cn-north-1"),
            "https://kms.cn-north-1.amazonaws.com.cn"
        );
    }

    #[tokio::test]
    async fn https_endpoints_are_accepted() {
        let none = |_: &str| None;
        let mut s = settings("https://kms.eu-west-1.amazonaws.com");
        s.endpoint = None;
        let kms = AwsKms::with_credentials(&s, Credentials::new("AKIDTEST", "secret", None), &none).unwrap();
        assert_eq!(kms.endpoint(), "https://kms.us-east-1.amazonaws.com/");
    }

    /// An `https` endpoint is reached over TLS: the first bytes on the wire
    /// are a TLS handshake record (0x16, version 3.x), and a server that is
    /// not a TLS server makes the call unavailable, not a panic.
    #[tokio::test]
    async fn https_endpoints_speak_tls() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let first_bytes = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 3];
            socket.read_exact(&mut buf).await.unwrap();
            socket.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await.unwrap();
            buf
        });
        let none = |_: &str| None;
        let kms = AwsKms::with_credentials(
            &settings(&format!("https://{addr}")),
            Credentials::new("AKIDTEST", "secret", None),
            &none,
        )
        .unwrap();
        match kms.generate_data_key(&ctx()).await {
            Err(KmsError::Unavailable(why)) => {
                assert!(why.starts_with("AWS KMS GenerateDataKey: transport: "), "{why}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(first_bytes.await.unwrap(), [0x16, 0x03, 0x01]);
    }

    #[test]
    fn error_answers() {
        let cases: &[(u16, Option<&str>, &str, &str, &str)] = &[
            (
                400,
                None,
                r#"{"__type":"InvalidCiphertextException","message":"bad"}"#,
                "InvalidCiphertextException",
                "bad",
            ),
            (
                400,
                None,
                r#"{"__type":"com.amazonaws.kms#ThrottlingException","Message":"slow down"}"#,
                "ThrottlingException",
                "slow down",
            ),
            (
                400,
                Some("AccessDeniedException:http://internal.amazon.com/coral/"),
                "not json",
                "AccessDeniedException",
                "",
            ),
            (503, None, "", "HTTP503", ""),
            (
                403,
                None,
                "<ErrorResponse><Errors><Error><Code>SignatureDoesNotMatch</Code></Error></Errors></ErrorResponse>",
                "SignatureDoesNotMatch",
                "",
            ),
        ];
        for (status, header, body, code, message) in cases {
            match service_error(*status, *header, body.as_bytes()) {
                CallError::Service {
                    status: s,
                    code: c,
                    message: m,
                } => assert_eq!((s, c.as_str(), m.as_str()), (*status, *code, *message)),
                other => panic!("{other:?}"),
            }
        }
        let long = format!(r#"{{"__type":"X","message":"{}"}}"#, "é".repeat(400));
        let CallError::Service { message, .. } = service_error(400, None, long.as_bytes()) else {
            panic!()
        };
        assert!(message.len() <= 300 && message.starts_with('é'));
    }

    #[test]
    fn error_mapping() {
        let service = |code: &str| CallError::Service {
            status: 400,
            code: code.to_owned(),
            message: "m".to_owned(),
        };
        for code in [
            "InvalidCiphertextException",
            "IncorrectKeyException",
            "AccessDeniedException",
        ] {
            assert!(matches!(
                service(code).into_kms_error("Decrypt"),
                KmsError::InvalidCiphertext
            ));
            // On GenerateDataKey the same errors are the server's problem.
            assert!(matches!(
                service(code).into_kms_error("GenerateDataKey"),
                KmsError::Unavailable(_)
            ));
        }
        for error in [
            service("ThrottlingException"),
            service("KMSInternalException"),
            service("DisabledException"),
            service("UnrecognizedClientException"),
            CallError::Timeout(Duration::from_secs(2)),
            CallError::Transport("connection refused".to_owned()),
            CallError::Service {
                status: 500,
                code: "HTTP500".to_owned(),
                message: String::new(),
            },
        ] {
            let text = error.to_string();
            match error.into_kms_error("Decrypt") {
                KmsError::Unavailable(why) => assert_eq!(why, format!("AWS KMS Decrypt: {text}")),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    /// A one-request-per-connection HTTP server answering with `status` and
    /// the JSON `body`, and recording each request's head and body.
    async fn fake_kms(status: &str, body: &str) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
        let answer: Arc<str> = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let log = Arc::clone(&log);
                let answer = Arc::clone(&answer);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = socket.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&request).into_owned();
                        if let Some((head, body)) = text.split_once("\r\n\r\n") {
                            let length: usize = head
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse().unwrap())
                                })
                                .unwrap_or(0);
                            if body.len() >= length {
                                log.lock().unwrap().push(text.clone());
                                break;
                            }
                        }
                    }
                    let _ = socket.write_all(answer.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        (addr, seen)
    }

    #[tokio::test]
    async fn generate_and_decrypt_requests_and_answers() {
        let answer = r#"{"CiphertextBlob":"AQIDBA==","Plaintext":"AAECAwQFBgcICQoLDA0ODw==","KeyId":"arn:aws:kms:k"}"#;
        let (addr, seen) = fake_kms("200 OK", answer).await;
        let kms = kms(&format!("http://{addr}"));
        let (key, wrapped) = kms.generate_data_key(&ctx()).await.unwrap();
        assert_eq!(key.as_bytes(), &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
        assert_eq!(wrapped.as_bytes(), &[1, 2, 3, 4]);
        let again = kms.decrypt(&wrapped, &ctx()).await.unwrap();
        assert_eq!(again.as_bytes(), key.as_bytes());

        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        let generate = seen[0].to_ascii_lowercase();
        assert!(generate.starts_with("post / http/1.1\r\n"), "{generate}");
        for header in [
            format!("host: {addr}\r\n"),
            "content-type: application/x-amz-json-1.1\r\n".to_owned(),
            "x-amz-target: trentservice.generatedatakey\r\n".to_owned(),
            "authorization: aws4-hmac-sha256 credential=akidtest/".to_owned(),
            "/us-east-1/kms/aws4_request, signedheaders=content-type;host;x-amz-date;x-amz-target, signature="
                .to_owned(),
        ] {
            assert!(generate.contains(&header), "{header} in {generate}");
        }
        assert!(seen[0].ends_with(
            r#"{"KeyId":"alias/sealcast","KeySpec":"AES_128","EncryptionContext":{"key_id":"abcd1234-0","stream":"live/demo"}}"#
        ));
        assert!(
            seen[1].contains("X-Amz-Target: TrentService.Decrypt")
                || seen[1].contains("x-amz-target: TrentService.Decrypt")
        );
        assert!(seen[1].ends_with(
            r#"{"CiphertextBlob":"AQIDBA==","EncryptionContext":{"key_id":"abcd1234-0","stream":"live/demo"},"KeyId":"alias/sealcast"}"#
        ));
    }

    #[tokio::test]
    async fn bad_answers_are_unavailable_not_panics() {
        let too_long = format!(
            r#"{{"CiphertextBlob":"{}","Plaintext":"AAECAwQFBgcICQoLDA0ODw=="}}"#,
            STANDARD.encode([0u8; 1025])
        );
        let cases: &[(&str, &str, &str)] = &[
            (
                "400 Bad Request",
                r#"{"__type":"ThrottlingException","message":"x"}"#,
                "AWS KMS GenerateDataKey: HTTP 400: ThrottlingException: x",
            ),
            (
                "500 Internal Server Error",
                "",
                "AWS KMS GenerateDataKey: HTTP 500: HTTP500: ",
            ),
            (
                "200 OK",
                "{}",
                "AWS KMS GenerateDataKey: GenerateDataKey answer is not the expected JSON: missing field `Plaintext` at line 1 column 2",
            ),
            (
                "200 OK",
                r#"{"CiphertextBlob":"AQ==","Plaintext":"AAEC"}"#,
                "AWS KMS GenerateDataKey: Plaintext is not a 16-byte key",
            ),
            (
                "200 OK",
                r#"{"CiphertextBlob":"!","Plaintext":"AAECAwQFBgcICQoLDA0ODw=="}"#,
                "AWS KMS GenerateDataKey: CiphertextBlob missing, not base64, or over 1024 bytes",
            ),
            (
                "200 OK",
                &too_long,
                "AWS KMS GenerateDataKey: CiphertextBlob missing, not base64, or over 1024 bytes",
            ),
        ];
        for (status, answer, want) in cases {
            let (addr, _) = fake_kms(status, answer).await;
            match kms(&format!("http://{addr}")).generate_data_key(&ctx()).await {
                Err(KmsError::Unavailable(why)) => assert_eq!(why, *want),
                other => panic!("{answer}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn refused_and_silent_endpoints_are_unavailable() {
        // A port nothing listens on: bind, note the port, close.
        let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        match kms(&format!("http://{addr}"))
            .decrypt(&WrappedKey::from_bytes(vec![1]), &ctx())
            .await
        {
            Err(KmsError::Unavailable(why)) => assert!(why.starts_with("AWS KMS Decrypt: transport: "), "{why}"),
            other => panic!("{other:?}"),
        }
        // A server that accepts and never answers: the timeout (500 ms) ends the call.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        match kms(&format!("http://{addr}"))
            .decrypt(&WrappedKey::from_bytes(vec![1]), &ctx())
            .await
        {
            Err(KmsError::Unavailable(why)) => assert_eq!(why, "AWS KMS Decrypt: no answer within 500ms"),
            other => panic!("{other:?}"),
        }
        drop(silent);
    }
}
