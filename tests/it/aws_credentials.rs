//! The AWS credential chain beyond static keys: web identity against moto's
//! real STS (`AssumeRoleWithWebIdentity`) followed by KMS calls that moto
//! checks against the assumed role's credentials; the container credentials
//! endpoint and EC2 instance metadata (IMDSv2) against small local servers;
//! refresh of temporary credentials before they expire, on a manual clock.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, put};
use sealcast::clock::{Clock, ManualClock, UtcDateTime};
use sealcast::crypto::{EncryptionContext, KeyId};
use sealcast::kms::Kms;
use sealcast::kms::aws::chain::{AwsCredentialChain, ChainSettings, IMDS_TIMEOUT};
use sealcast::kms::aws::credentials::Env;
use sealcast::kms::aws::sigv4::Credentials;
use sealcast::kms::aws::{AwsKms, AwsSettings, http_client};

use crate::support::kms::Moto;
use crate::support::process::write_private;

/// A chain over exactly `pairs` as its environment (the shared files point at
/// a directory with none), judging expiry by `clock`.
fn chain(pairs: &[(&str, String)], clock: Arc<dyn Clock>) -> AwsCredentialChain {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let env = Env::capture(&move |name| map.get(name).cloned());
    let settings = ChainSettings {
        profile: None,
        region: "us-east-1".to_owned(),
        timeout: Duration::from_secs(5),
        imds_timeout: IMDS_TIMEOUT,
    };
    AwsCredentialChain::new(settings, env, http_client(Duration::from_secs(5)).unwrap(), clock)
}

/// No shared files and no instance metadata: only what a test sets counts.
fn isolated(dir: &std::path::Path) -> Vec<(&'static str, String)> {
    let none = dir.join("absent").display().to_string();
    vec![
        ("AWS_SHARED_CREDENTIALS_FILE", none.clone()),
        ("AWS_CONFIG_FILE", none),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ]
}

/// Web identity from the environment (as EKS IRSA sets it) against moto's
/// STS, then a `GenerateDataKey`/`Decrypt` round trip that moto authorizes as
/// the assumed role (signature, session token and the role's `kms:*` policy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_identity_from_moto_sts_signs_kms_calls() {
    let moto = Moto::start().await;
    let provisioned = moto.provision().await;
    let role_arn = moto.provision_web_identity_role().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    write_private(
        &token_file,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2ln\n",
    );
    let mut env = isolated(dir.path());
    env.extend([
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.display().to_string()),
        ("AWS_ROLE_ARN", role_arn.clone()),
        ("AWS_ROLE_SESSION_NAME", "edge-1".to_owned()),
        ("AWS_ENDPOINT_URL_STS", moto.endpoint()),
    ]);
    let chain = Arc::new(chain(&env, sealcast::clock::system()));
    let settings = AwsSettings {
        key_id: provisioned.key_id.clone(),
        region: Some("us-east-1".to_owned()),
        endpoint: Some(moto.endpoint()),
        profile: None,
        request_timeout: Duration::from_secs(5),
    };
    let kms = AwsKms::with_chain(&settings, Arc::clone(&chain), &|_| None).unwrap();
    let ctx = EncryptionContext::new("live/demo", &KeyId::new("abcd1234-0").unwrap());
    let (key, wrapped) = kms.generate_data_key(&ctx).await.expect("GenerateDataKey as the role");
    let again = kms.decrypt(&wrapped, &ctx).await.expect("Decrypt as the role");
    assert_eq!(again.as_bytes(), key.as_bytes());

    let credentials = chain.credentials().await.unwrap();
    assert_ne!(credentials.access_key_id(), provisioned.access_key_id);
    assert!(credentials.session_token().is_some());
    let source = chain.source().unwrap();
    assert_eq!(
        source,
        format!("web identity (AWS_WEB_IDENTITY_TOKEN_FILE), role {role_arn}")
    );
    assert!(!format!("{chain:?}").contains(credentials.secret_access_key()));
    // moto does check: the same keys with a forged session token are refused.
    let forged = Credentials::new(
        credentials.access_key_id(),
        credentials.secret_access_key(),
        Some("forged"),
    );
    let refused = moto.client(&forged, &provisioned.key_id).decrypt(&wrapped, &ctx).await;
    assert!(refused.is_err(), "moto accepted a forged session token");
}

/// What the local container endpoint and IMDS hand out, and what they saw.
#[derive(Default)]
struct Issuer {
    clock: Option<Arc<ManualClock>>,
    /// Requests that got credentials.
    issued: AtomicUsize,
    /// While set, credential requests get a 500.
    failing: AtomicBool,
    /// Every request, as "METHOD path".
    seen: Mutex<Vec<String>>,
}

impl Issuer {
    /// A credentials document as both endpoints return it, valid 15 minutes
    /// from the manual clock's now, with a new key id each time.
    fn document(&self) -> String {
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let now = self.clock.as_ref().map_or(0, |c| c.now_unix_ms());
        let expires = UtcDateTime::from_unix_ms(i64::try_from(now).unwrap() + 15 * 60 * 1000).unwrap();
        serde_json::json!({
            "Code": "Success",
            "Type": "AWS-HMAC",
            "AccessKeyId": format!("ASIATEST{n}"),
            "SecretAccessKey": format!("secret-{n}"),
            "Token": format!("token-{n}"),
            "Expiration": expires.to_string(),
        })
        .to_string()
    }

    fn note(&self, what: String) {
        self.seen.lock().unwrap().push(what);
    }
}

/// The access key id of the chain's current credentials.
async fn key_id(chain: &AwsCredentialChain) -> String {
    chain.credentials().await.unwrap().access_key_id().to_owned()
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// The container credentials endpoint as ECS and EKS Pod Identity serve it:
/// `GET` with the authorization token in `Authorization`, else 401.
async fn container_endpoint(issuer: Arc<Issuer>) -> SocketAddr {
    async fn credentials(State(issuer): State<Arc<Issuer>>, headers: HeaderMap) -> (StatusCode, String) {
        issuer.note("GET /creds".to_owned());
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("pod-identity-token") {
            return (StatusCode::UNAUTHORIZED, String::new());
        }
        if issuer.failing.load(Ordering::SeqCst) {
            return (StatusCode::INTERNAL_SERVER_ERROR, String::new());
        }
        (StatusCode::OK, issuer.document())
    }
    serve(Router::new().route("/creds", get(credentials)).with_state(issuer)).await
}

/// Temporary credentials from the container endpoint are fetched once,
/// served from the cache, fetched again (once, for many concurrent callers)
/// inside the last five minutes before they expire, and kept while a refresh
/// fails until they actually expire. The real endpoint (169.254.170.2) does
/// not exist here, so a local server implements its documented protocol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_credentials_are_refreshed_before_expiry() {
    let clock = Arc::new(ManualClock::at_unix_secs(1_800_000_000));
    let issuer = Arc::new(Issuer {
        clock: Some(Arc::clone(&clock)),
        ..Issuer::default()
    });
    let addr = container_endpoint(Arc::clone(&issuer)).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("eks-pod-identity-token");
    write_private(&token_file, "pod-identity-token\n");
    let mut env = isolated(dir.path());
    env.extend([
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", format!("http://{addr}/creds")),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            token_file.display().to_string(),
        ),
    ]);
    let chain = Arc::new(chain(&env, Arc::clone(&clock) as Arc<dyn Clock>));
    let issued = || issuer.issued.load(Ordering::SeqCst);

    assert_eq!(key_id(&chain).await, "ASIATEST1");
    assert_eq!(key_id(&chain).await, "ASIATEST1");
    clock.advance_secs(9 * 60); // 6 minutes left: still cached
    assert_eq!(key_id(&chain).await, "ASIATEST1");
    assert_eq!(issued(), 1);

    clock.advance_secs(2 * 60); // 4 minutes left: due for refresh
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let chain = Arc::clone(&chain);
            tokio::spawn(async move { chain.credentials().await.unwrap().access_key_id().to_owned() })
        })
        .collect();
    for caller in callers {
        let got = caller.await.unwrap();
        assert!(got == "ASIATEST1" || got == "ASIATEST2", "{got}");
    }
    assert_eq!(issued(), 2, "one refresh for all callers");
    assert_eq!(key_id(&chain).await, "ASIATEST2");

    // The endpoint fails: the old credentials serve until they expire, and
    // the failure is not retried on every call.
    issuer.failing.store(true, Ordering::SeqCst);
    clock.advance_secs(11 * 60);
    let asked = issuer.seen.lock().unwrap().len();
    assert_eq!(key_id(&chain).await, "ASIATEST2");
    assert_eq!(key_id(&chain).await, "ASIATEST2");
    assert_eq!(issuer.seen.lock().unwrap().len(), asked + 1);
    clock.advance_secs(5 * 60); // expired, endpoint still failing
    let err = chain.credentials().await.unwrap_err().to_string();
    assert_eq!(
        err,
        format!("AWS credentials: container credentials endpoint http://{addr}/creds: HTTP 500")
    );
    issuer.failing.store(false, Ordering::SeqCst);
    clock.advance_secs(10);
    assert_eq!(key_id(&chain).await, "ASIATEST3");

    // A wrong authorization token is refused by the endpoint, and said so.
    write_private(&token_file, "stale");
    let mut env = isolated(dir.path());
    env.extend([
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", format!("http://{addr}/creds")),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            token_file.display().to_string(),
        ),
    ]);
    let err = self::chain(&env, clock as Arc<dyn Clock>)
        .credentials()
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!("AWS credentials: container credentials endpoint http://{addr}/creds: HTTP 401")
    );
}

/// EC2 instance metadata, IMDSv2, as the EC2 User Guide documents it: a
/// session token from `PUT /latest/api/token` (which needs the TTL header),
/// 401 on any read without that token, the role name under
/// `iam/security-credentials/`, and the credentials document under the role.
async fn imds(issuer: Arc<Issuer>) -> SocketAddr {
    const TOKEN: &str = "AQAEAImdsSessionToken==";
    async fn token(State(issuer): State<Arc<Issuer>>, headers: HeaderMap) -> (StatusCode, String) {
        issuer.note("PUT /latest/api/token".to_owned());
        match headers
            .get("x-aws-ec2-metadata-token-ttl-seconds")
            .and_then(|v| v.to_str().ok())
        {
            Some(ttl) if ttl.parse::<u32>().is_ok_and(|t| (1..=21600).contains(&t)) => {
                (StatusCode::OK, TOKEN.to_owned())
            }
            _ => (StatusCode::BAD_REQUEST, String::new()),
        }
    }
    fn authorized(headers: &HeaderMap) -> bool {
        headers.get("x-aws-ec2-metadata-token").and_then(|v| v.to_str().ok()) == Some(TOKEN)
    }
    async fn roles(State(issuer): State<Arc<Issuer>>, headers: HeaderMap) -> (StatusCode, String) {
        issuer.note("GET roles".to_owned());
        if !authorized(&headers) {
            return (StatusCode::UNAUTHORIZED, String::new());
        }
        (StatusCode::OK, "sealcast-edge".to_owned())
    }
    async fn role(State(issuer): State<Arc<Issuer>>, headers: HeaderMap) -> (StatusCode, String) {
        issuer.note("GET role".to_owned());
        if !authorized(&headers) {
            return (StatusCode::UNAUTHORIZED, String::new());
        }
        (StatusCode::OK, issuer.document())
    }
    let base = "/latest/meta-data/iam/security-credentials";
    let router = Router::new()
        .route("/latest/api/token", put(token))
        .route(&format!("{base}/"), get(roles))
        .route(&format!("{base}/sealcast-edge"), get(role))
        .with_state(issuer);
    serve(router).await
}

/// The chain's last source against a local IMDSv2 (the real one, on
/// 169.254.169.254, does not exist here), and the one error that lists every
/// source tried when nothing answers there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imds_v2_credentials_and_the_error_off_ec2() {
    let issuer = Arc::new(Issuer::default());
    let addr = imds(Arc::clone(&issuer)).await;
    // The fake refuses a read without a session token, as IMDSv2 does.
    let unauthenticated = crate::support::http::get(addr, "/latest/meta-data/iam/security-credentials/").await;
    assert_eq!(unauthenticated.status, 401);
    issuer.seen.lock().unwrap().clear();

    let dir = tempfile::tempdir().unwrap();
    let mut env = isolated(dir.path());
    env.retain(|(name, _)| *name != "AWS_EC2_METADATA_DISABLED");
    env.push(("AWS_EC2_METADATA_SERVICE_ENDPOINT", format!("http://{addr}")));
    let chain = chain(&env, sealcast::clock::system());
    let credentials = chain.credentials().await.unwrap();
    assert_eq!(credentials.access_key_id(), "ASIATEST1");
    assert_eq!(credentials.session_token(), Some("token-1"));
    assert_eq!(chain.source().unwrap(), format!("instance metadata http://{addr}"));
    assert_eq!(
        *issuer.seen.lock().unwrap(),
        ["PUT /latest/api/token", "GET roles", "GET role"]
    );

    // Nothing listens: the error names every source and the endpoint.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let none = dir.path().join("absent").display().to_string();
    let env = [
        ("AWS_SHARED_CREDENTIALS_FILE", none.clone()),
        ("AWS_CONFIG_FILE", none.clone()),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", format!("http://{closed}")),
    ];
    let err = self::chain(&env, sealcast::clock::system())
        .credentials()
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "no AWS credentials: AWS_ACCESS_KEY_ID unset; profile [default] not found in {none} or {none}; \
             no web identity token (AWS_WEB_IDENTITY_TOKEN_FILE unset); no container credentials endpoint \
             (AWS_CONTAINER_CREDENTIALS_*_URI unset); instance metadata unreachable at {closed} (1s)"
        )
    );
}
