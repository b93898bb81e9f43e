use std::collections::HashMap;

use super::*;

/// An environment as (name, value) pairs.
type Pairs<'a> = &'a [(&'a str, &'a str)];

/// A chain case: `kms.profile`, the environment, and what it yields.
type Case<'a> = (Option<&'a str>, Vec<(&'a str, &'a str)>, String);

fn env_of(pairs: Pairs<'_>) -> Env {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Env::capture(&move |name| map.get(name).cloned())
}

/// What a plan amounts to, as text: the source and the access key id (static
/// keys, with `+token` when a session token came along) or the target.
fn summary(plan: &Plan) -> String {
    match plan {
        Plan::Static { credentials, source } => {
            let token = if credentials.session_token().is_some() {
                "+token"
            } else {
                ""
            };
            format!("{source}: {}{token}", credentials.access_key_id())
        }
        Plan::WebIdentity {
            role_arn,
            token_file,
            session_name,
            source,
        } => format!("{source}: {role_arn} {} {session_name:?}", token_file.display()),
        Plan::Container { uri, auth } => format!("container {uri} {auth:?}"),
        Plan::Imds { endpoint } => format!("imds {endpoint}"),
    }
}

const CREDENTIALS: &str = "\
# comment
[default]
aws_access_key_id = AKIDDEFAULT
aws_secret_access_key = secret-default

[ops]
; another comment
AWS_ACCESS_KEY_ID=AKIDOPS
aws_secret_access_key=secret-ops
aws_session_token = token-ops

[broken]
aws_access_key_id = AKIDBROKEN
";

const CONFIG: &str = "\
[default]
region = eu-west-1

[profile irsa]
role_arn = arn:aws:iam::123456789012:role/stream
web_identity_token_file = /var/run/token
role_session_name = edge-1

[profile chained]
role_arn = arn:aws:iam::123456789012:role/other
source_profile = default

[profile ops]
aws_access_key_id = AKIDCONFIGLOSES
";

/// Chain order, decided without the network: each case's environment (with
/// the two shared files written to a temp dir) and the source it selects.
#[tokio::test]
async fn chain_order() {
    let dir = tempfile::tempdir().unwrap();
    let (credentials, config) = (dir.path().join("credentials"), dir.path().join("config"));
    std::fs::write(&credentials, CREDENTIALS).unwrap();
    std::fs::write(&config, CONFIG).unwrap();
    let (credentials, config) = (credentials.to_str().unwrap(), config.to_str().unwrap());
    let empty = dir.path().join("none");
    let empty = empty.to_str().unwrap();
    let files = [
        ("AWS_SHARED_CREDENTIALS_FILE", credentials),
        ("AWS_CONFIG_FILE", config),
    ];
    let no_files = [("AWS_SHARED_CREDENTIALS_FILE", empty), ("AWS_CONFIG_FILE", empty)];
    let keys = [("AWS_ACCESS_KEY_ID", "AKIDENV"), ("AWS_SECRET_ACCESS_KEY", "s")];
    let web = [
        ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
        ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
    ];
    let container = [("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc")];
    let cat = |parts: &[&[(&'static str, &'static str)]]| parts.concat();

    let cases: Vec<Case<'_>> = vec![
        (
            None,
            cat(&[&keys, &web, &container]),
            "environment (AWS_ACCESS_KEY_ID): AKIDENV".into(),
        ),
        (
            None,
            cat(&[&keys, &[("AWS_SESSION_TOKEN", "t")]]),
            "environment (AWS_ACCESS_KEY_ID): AKIDENV+token".into(),
        ),
        // A profile named in the config wins over the environment.
        (
            Some("ops"),
            [&keys[..], &files].concat(),
            "profile [ops]: AKIDOPS+token".into(),
        ),
        // Half of the environment pair is not enough: the default profile is used.
        (
            None,
            [&keys[..1], &files].concat(),
            "profile [default]: AKIDDEFAULT".into(),
        ),
        (
            None,
            [&[("AWS_PROFILE", "irsa")][..], &files, &web].concat(),
            "profile [irsa] web identity: arn:aws:iam::123456789012:role/stream /var/run/token Some(\"edge-1\")".into(),
        ),
        // No profile in the files: web identity from the environment beats the container.
        (
            None,
            [&no_files[..], &web, &container].concat(),
            "web identity (AWS_WEB_IDENTITY_TOKEN_FILE): arn:aws:iam::1:role/r /t None".into(),
        ),
        (
            None,
            [
                &no_files[..],
                &container,
                &[("AWS_CONTAINER_AUTHORIZATION_TOKEN", "secret-auth")],
            ]
            .concat(),
            "container http://169.254.170.2/v2/credentials/abc Token(\"..\")".into(),
        ),
        (
            None,
            [
                &no_files[..],
                &[
                    ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:9/creds"),
                    ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/tok"),
                    ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "loses"),
                ],
            ]
            .concat(),
            "container http://127.0.0.1:9/creds File(\"/tok\")".into(),
        ),
        (None, no_files.to_vec(), "imds http://169.254.169.254".into()),
        (
            None,
            [
                &no_files[..],
                &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://[::1]:8/")],
            ]
            .concat(),
            "imds http://[::1]:8".into(),
        ),
    ];
    for (profile, pairs, want) in cases {
        let (plan, _) = select(profile, &env_of(&pairs))
            .await
            .unwrap_or_else(|e| panic!("{want}: {e}"));
        assert_eq!(summary(&plan), want);
    }
}

#[tokio::test]
async fn chain_errors_say_what_was_tried() {
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials");
    let config = dir.path().join("config");
    std::fs::write(&credentials, CREDENTIALS).unwrap();
    std::fs::write(&config, CONFIG).unwrap();
    let (c, k) = (credentials.to_str().unwrap(), config.to_str().unwrap());
    let files = format!("{c} or {k}");
    let home = dir.path().join("home");
    let h = home.to_str().unwrap();
    let cases: Vec<Case<'_>> = vec![
        (
            None,
            vec![("HOME", h), ("AWS_EC2_METADATA_DISABLED", "true")],
            format!(
                "no AWS credentials: AWS_ACCESS_KEY_ID unset; profile [default] not found in {h}/.aws/credentials or {h}/.aws/config; \
                 no web identity token (AWS_WEB_IDENTITY_TOKEN_FILE unset); no container credentials endpoint \
                 (AWS_CONTAINER_CREDENTIALS_*_URI unset); instance metadata disabled (AWS_EC2_METADATA_DISABLED)"
            ),
        ),
        (
            Some("nope"),
            vec![("AWS_SHARED_CREDENTIALS_FILE", c), ("AWS_CONFIG_FILE", k)],
            format!("AWS profile [nope] not found in {files}"),
        ),
        (
            None,
            vec![
                ("AWS_PROFILE", "broken"),
                ("AWS_SHARED_CREDENTIALS_FILE", c),
                ("AWS_CONFIG_FILE", k),
            ],
            format!(
                "AWS profile [broken] ({files}): needs aws_access_key_id and aws_secret_access_key, or role_arn and web_identity_token_file"
            ),
        ),
        (
            Some("chained"),
            vec![("AWS_SHARED_CREDENTIALS_FILE", c), ("AWS_CONFIG_FILE", k)],
            format!(
                "AWS profile [chained] ({files}): role_arn without web_identity_token_file (source_profile and credential_source are not supported)"
            ),
        ),
        (
            None,
            vec![("HOME", h), ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t")],
            "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not".to_owned(),
        ),
        (
            None,
            vec![
                ("HOME", h),
                ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://10.0.0.5/creds"),
            ],
            "AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, or http on a loopback or 169.254.170.2/.23".to_owned(),
        ),
        (
            None,
            vec![("HOME", h), ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "v2/creds")],
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must start with /".to_owned(),
        ),
    ];
    for (profile, pairs, want) in cases {
        let err = select(profile, &env_of(&pairs)).await.unwrap_err();
        assert_eq!(err, want);
        assert!(!err.contains("secret-"), "never a value");
    }
}

#[test]
fn profile_files() {
    // `[default]` of the config file, and the credentials file over the config.
    let plan = profile_plan(
        "default",
        None,
        Some("[default]\naws_access_key_id=A\naws_secret_access_key=s\n"),
    )
    .unwrap()
    .unwrap();
    assert_eq!(summary(&plan), "profile [default]: A");
    let plan = profile_plan("ops", Some(CREDENTIALS), Some(CONFIG)).unwrap().unwrap();
    assert_eq!(summary(&plan), "profile [ops]: AKIDOPS+token");
    // `[ops]` in a config file is not `[profile ops]`.
    assert!(
        profile_plan(
            "ops",
            None,
            Some("[ops]\naws_access_key_id=A\naws_secret_access_key=s\n")
        )
        .unwrap()
        .is_none()
    );
    assert!(profile_plan("x", None, None).unwrap().is_none());
}

#[test]
fn debug_redacts() {
    let env = env_of(&[
        ("AWS_SECRET_ACCESS_KEY", "secret-env"),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "secret-tok"),
    ]);
    let text = format!(
        "{env:?} {:?}",
        ContainerAuth::Token(RedactedString(Zeroizing::new("secret-tok".into())))
    );
    assert!(!text.contains("secret-"), "{text}");
}

#[test]
fn region_order() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    };
    let both = env(&[("AWS_REGION", "eu-west-1"), ("AWS_DEFAULT_REGION", "us-west-2")]);
    assert_eq!(resolve_region(Some("ap-south-1"), &both).unwrap(), "ap-south-1");
    assert_eq!(resolve_region(None, &both).unwrap(), "eu-west-1");
    let default_only = env(&[("AWS_REGION", ""), ("AWS_DEFAULT_REGION", "us-west-2")]);
    assert_eq!(resolve_region(None, &default_only).unwrap(), "us-west-2");
    let none = env(&[]);
    assert_eq!(
        resolve_region(None, &none).unwrap_err().to_string(),
        "no AWS region: set kms.region in the config, or AWS_REGION"
    );
}
