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
        "/us-east-1/kms/aws4_request, signedheaders=content-type;host;x-amz-date;x-amz-target, signature=".to_owned(),
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

/// No credentials anywhere: the KMS call is unavailable (503), with the
/// chain's list of what it tried, and nothing is sent to the KMS.
#[tokio::test]
async fn no_credentials_is_unavailable() {
    let (addr, seen) = fake_kms("200 OK", "{}").await;
    let dir = tempfile::tempdir().unwrap();
    let none = dir.path().join("absent").display().to_string();
    let env = credentials::Env::capture(&|name| match name {
        "AWS_SHARED_CREDENTIALS_FILE" | "AWS_CONFIG_FILE" => Some(none.clone()),
        "AWS_EC2_METADATA_DISABLED" => Some("true".to_owned()),
        _ => None,
    });
    let s = settings(&format!("http://{addr}"));
    let client = http_client(s.request_timeout).unwrap();
    let chain = AwsCredentialChain::new(
        ChainSettings {
            profile: None,
            region: "us-east-1".to_owned(),
            timeout: s.request_timeout,
            imds_timeout: chain::IMDS_TIMEOUT,
        },
        env,
        client,
        crate::clock::system(),
    );
    let kms = AwsKms::with_chain(&s, Arc::new(chain), &|_| None).unwrap();
    match kms.generate_data_key(&ctx()).await {
        Err(KmsError::Unavailable(why)) => {
            assert!(
                why.starts_with("AWS KMS GenerateDataKey: no AWS credentials: AWS_ACCESS_KEY_ID unset; "),
                "{why}"
            );
            assert!(
                why.ends_with("instance metadata disabled (AWS_EC2_METADATA_DISABLED)"),
                "{why}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(seen.lock().unwrap().is_empty());
}
