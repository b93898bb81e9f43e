//! AWS STS `AssumeRoleWithWebIdentity` (query protocol, version 2011-06-15):
//! an OIDC token (EKS service account, GitHub Actions…) traded for temporary
//! credentials of a role. The request is unsigned: the token is the proof.
//!
//! The endpoint is `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`, else the
//! regional `https://sts.<region>.amazonaws.com` the SDKs use by default.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use quick_xml::events::Event;
use zeroize::Zeroizing;

use super::chain::Fetched;
use super::credentials::Env;
use super::metadata::{self, HttpClient};
use super::sigv4::Credentials;
use crate::clock::UtcDateTime;

/// The STS endpoint for `region` (see the module docs).
pub(super) fn endpoint(env: &Env, region: &str) -> String {
    if let Some(url) = env.get("AWS_ENDPOINT_URL_STS").or_else(|| env.get("AWS_ENDPOINT_URL")) {
        return url.trim_end_matches('/').to_owned();
    }
    let domain = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://sts.{region}.{domain}")
}

/// What to assume, and as whom.
pub(super) struct WebIdentityRequest<'a> {
    pub endpoint: &'a str,
    pub role_arn: &'a str,
    pub token_file: &'a Path,
    pub session_name: &'a str,
}

/// Reads the token (it rotates, so at every call) and asks STS.
pub(super) async fn assume_role_with_web_identity(
    client: &HttpClient,
    request: &WebIdentityRequest<'_>,
    timeout: Duration,
) -> Result<Fetched, String> {
    let token = tokio::fs::read_to_string(request.token_file)
        .await
        .map(Zeroizing::new)
        .map_err(|e| format!("web identity token file {}: {e}", request.token_file.display()))?;
    let body = Zeroizing::new(format!(
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName={}&WebIdentityToken={}",
        form_encode(request.role_arn).as_str(),
        form_encode(request.session_name).as_str(),
        form_encode(token.trim()).as_str()
    ));
    let http = hyper::Request::post(format!("{}/", request.endpoint))
        .header("content-type", "application/x-www-form-urlencoded; charset=utf-8")
        .header("accept", "text/xml")
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .map_err(|e| format!("STS endpoint {}: {e}", request.endpoint))?;
    let (status, answer) = metadata::send(client, http, timeout)
        .await
        .map_err(|e| format!("STS at {}: {e}", request.endpoint))?;
    let text = std::str::from_utf8(&answer).map_err(|_| "STS answer is not UTF-8".to_owned())?;
    if status != 200 {
        return Err(format!(
            "STS AssumeRoleWithWebIdentity: HTTP {status}: {}",
            error_summary(text)
        ));
    }
    parse_credentials(text).map_err(|why| format!("STS AssumeRoleWithWebIdentity answer: {why}"))
}

/// The `Credentials` of an `AssumeRole*` answer.
pub(super) fn parse_credentials(xml: &str) -> Result<Fetched, String> {
    let fields = xml_fields(xml, &["AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"])?;
    let get = |name: &str| fields.get(name).map(|v| v.as_str()).filter(|v| !v.is_empty());
    let (Some(id), Some(secret), Some(token)) = (get("AccessKeyId"), get("SecretAccessKey"), get("SessionToken"))
    else {
        return Err("no AccessKeyId, SecretAccessKey and SessionToken".to_owned());
    };
    let expires_ms = match get("Expiration") {
        Some(text) => Some(
            UtcDateTime::parse_rfc3339(text)
                .and_then(|ms| u64::try_from(ms).ok())
                .ok_or_else(|| format!("Expiration {text:?} is not an RFC 3339 time"))?,
        ),
        None => return Err("no Expiration".to_owned()),
    };
    Ok(Fetched {
        credentials: Credentials::new(id, secret, Some(token)),
        expires_ms,
    })
}

/// `Code: Message` of an STS `ErrorResponse`, short enough for a log line.
fn error_summary(xml: &str) -> String {
    let fields = xml_fields(xml, &["Code", "Message"]).unwrap_or_default();
    let mut text = match (fields.get("Code"), fields.get("Message")) {
        (Some(code), Some(message)) => format!("{}: {}", code.as_str(), message.as_str()),
        (Some(code), None) => code.to_string(),
        _ => "no error code".to_owned(),
    };
    if text.len() > 300 {
        let mut end = 300;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The text of the first element named (local name) each of `names`, entity
/// references resolved. Values may be secrets, so they are zeroized.
fn xml_fields(xml: &str, names: &[&'static str]) -> Result<BTreeMap<&'static str, Zeroizing<String>>, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut fields = BTreeMap::new();
    let mut open: Option<&'static str> = None;
    let mut text = Zeroizing::new(String::new());
    loop {
        match reader.read_event().map_err(|e| format!("not XML: {e}"))? {
            Event::Start(start) => {
                let local = start.local_name();
                open = names
                    .iter()
                    .copied()
                    .find(|name| name.as_bytes() == local.as_ref() && !fields.contains_key(name));
                text.clear();
            }
            Event::Text(t) if open.is_some() => {
                text.push_str(&t.xml10_content().map_err(|e| format!("not XML: {e}"))?);
            }
            Event::GeneralRef(r) if open.is_some() => {
                let name = r.decode().map_err(|e| format!("not XML: {e}"))?;
                match r.resolve_char_ref().map_err(|e| format!("not XML: {e}"))? {
                    Some(c) => text.push(c),
                    None => text.push_str(
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| format!("unknown entity &{name};"))?,
                    ),
                }
            }
            Event::End(_) => {
                if let Some(name) = open.take() {
                    fields.insert(name, Zeroizing::new(text.trim().to_owned()));
                }
                text.clear();
            }
            Event::Eof => return Ok(fields),
            _ => {}
        }
    }
}

/// `application/x-www-form-urlencoded` value encoding (RFC 3986 unreserved kept).
fn form_encode(value: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(value.len()));
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>amzn1.account.AF6RHO7KZU5XRVQJGXK6HB56KR2A</SubjectFromWebIdentityToken>
    <Audience>client.5498841531868486423.1548@apps.example.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/FederatedWebIdentityRole/app1</Arn>
      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:app1</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE&amp;x&#x3D;</SessionToken>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <Expiration>2014-10-24T23:00:23Z</Expiration>
      <AccessKeyId>ASgeIAIOSFODNN7EXAMPLE</AccessKeyId>
    </Credentials>
    <SourceIdentity>SourceIdentityValue</SourceIdentity>
    <Provider>www.amazon.com</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#;

    /// AWS's documented example answer (STS API Reference,
    /// AssumeRoleWithWebIdentity), with entity references added.
    #[test]
    fn parses_the_documented_answer() {
        let fetched = parse_credentials(ANSWER).unwrap();
        assert_eq!(fetched.credentials.access_key_id(), "ASgeIAIOSFODNN7EXAMPLE");
        assert_eq!(
            fetched.credentials.secret_access_key(),
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
        );
        assert_eq!(
            fetched.credentials.session_token(),
            Some("AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE&x=")
        );
        assert_eq!(fetched.expires_ms, Some(1_414_191_623_000));
    }

    #[test]
    fn refuses_incomplete_or_broken_answers() {
        let cases: &[(&str, &str)] = &[
            (
                "<a><AccessKeyId>A</AccessKeyId></a>",
                "no AccessKeyId, SecretAccessKey and SessionToken",
            ),
            (
                "<C><AccessKeyId>A</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken></C>",
                "no Expiration",
            ),
            (
                "<C><AccessKeyId>A</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken><Expiration>soon</Expiration></C>",
                "Expiration \"soon\" is not an RFC 3339 time",
            ),
            ("<a><AccessKeyId>&bogus;</AccessKeyId></a>", "unknown entity &bogus;"),
            ("", "no AccessKeyId, SecretAccessKey and SessionToken"),
        ];
        for (xml, want) in cases {
            match parse_credentials(xml) {
                Err(why) => assert_eq!(why, *want, "{xml}"),
                Ok(_) => panic!("{xml} parsed"),
            }
        }
        assert!(parse_credentials("<a></b>").unwrap_err().starts_with("not XML: "));
    }

    #[test]
    fn error_answers_and_endpoints() {
        let error = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>No OpenIDConnect provider found</Message></Error><RequestId>x</RequestId></ErrorResponse>"#;
        assert_eq!(
            error_summary(error),
            "InvalidIdentityToken: No OpenIDConnect provider found"
        );
        assert_eq!(error_summary("garbage"), "no error code");

        let none = Env::capture(&|_| None);
        assert_eq!(endpoint(&none, "eu-west-1"), "https://sts.eu-west-1.amazonaws.com");
        assert_eq!(endpoint(&none, "cn-north-1"), "https://sts.cn-north-1.amazonaws.com.cn");
        let all = Env::capture(&|name| match name {
            "AWS_ENDPOINT_URL" => Some("http://all:1/".to_owned()),
            "AWS_ENDPOINT_URL_STS" => Some("http://sts:2".to_owned()),
            _ => None,
        });
        assert_eq!(endpoint(&all, "eu-west-1"), "http://sts:2");
        assert_eq!(form_encode("a b/c=d").as_str(), "a%20b%2Fc%3Dd");
    }
}
