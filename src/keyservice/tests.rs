use super::*;
use crate::clock::{Clock as _, ManualClock};
use crate::crypto::{EncryptionContext, WrappedKey};
use crate::hls::parse_media_playlist;
use crate::kms::KmsError;
use async_trait::async_trait;

const SECRET: &[u8] = b"test-secret-0123456789-0123456789-abcdef";

/// A KMS whose wrapped keys are the data key itself, refusing `edk`s of
/// another length, or `0xff...`: enough to drive the service.
struct PlainKms;

#[async_trait]
impl Kms for PlainKms {
    async fn generate_data_key(&self, _: &EncryptionContext) -> Result<(DataKey, WrappedKey), KmsError> {
        Err(KmsError::Unavailable("unused".into()))
    }

    async fn decrypt(&self, wrapped: &WrappedKey, _: &EncryptionContext) -> Result<DataKey, KmsError> {
        match <[u8; 16]>::try_from(wrapped.as_bytes()) {
            Ok([0xff, ..]) => Err(KmsError::Unavailable("down".into())),
            Ok(bytes) => Ok(DataKey::from_bytes(bytes)),
            Err(_) => Err(KmsError::InvalidCiphertext),
        }
    }
}

/// The viewer tag of [`claims`]: its `jti`'s, whatever the token.
fn viewer_1() -> ViewerId {
    ticket::viewer_tag(&claims(0), "tok")
}

struct Fixture {
    service: KeyService,
    now: Arc<ManualClock>,
}

fn fixture(ticket_ttl_secs: Option<u64>) -> Fixture {
    let now = Arc::new(ManualClock::at_unix_secs(1_000_000));
    let service = KeyService::new(
        KeySettings {
            token_secret: Secret::new(SECRET.to_vec()),
            audience: None,
            ticket_ttl_secs,
            offline_ttl_secs: 0,
            cache_max_entries: 100,
            cache_ttl_secs: 600,
        },
        Arc::new(PlainKms),
        Arc::new(MemoryReplayStore::new(1000)),
        Arc::clone(&now) as Clock,
    );
    Fixture { service, now }
}

fn edk(b: u8) -> String {
    WrappedKey::from_bytes(vec![b; 16]).to_base64url()
}

fn playlist() -> String {
    format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-KEY:METHOD=AES-128,URI=\"/keys/live/demo/p-0?edk={a}\",IV=0x00000000000000000000000000000001\n\
             #EXTINF:2.000,\np-0.ts\n\
             #EXT-X-KEY:METHOD=AES-128,URI=\"/keys/live/demo/p-0?edk={a}\",IV=0x00000000000000000000000000000002\n\
             #EXTINF:2.000,\np-1.ts\n\
             #EXT-X-KEY:METHOD=AES-128,URI=\"https://v.example/tv/keys/live/demo/p-1?edk={b}\",IV=0x00000000000000000000000000000003\n\
             #EXTINF:2.000,\np-2.ts\n",
        a = edk(1),
        b = edk(2)
    )
}

fn claims(exp: u64) -> Claims {
    Claims {
        exp,
        stream: "live/demo".into(),
        sub: None,
        jti: Some("viewer-1".into()),
        recording: None,
    }
}

fn stream() -> StreamName {
    StreamName::parse("live/demo").unwrap()
}

/// (key_id, edk, ticket) of every key URI in a ticketed playlist.
fn tickets(text: &str) -> Vec<(String, String, String)> {
    let parsed = parse_media_playlist(text).unwrap();
    parsed
        .segments
        .iter()
        .map(|s| {
            let uri = &s.key.as_ref().unwrap().uri;
            let (path, query) = uri.split_once('?').unwrap();
            let param = |name: &str| query.split('&').find_map(|p| p.strip_prefix(name)).unwrap().to_owned();
            let key_id = path.rsplit('/').next().unwrap().to_owned();
            (key_id, param("edk="), param("ticket="))
        })
        .collect()
}

#[tokio::test]
async fn playlist_tickets_work_once() {
    let f = fixture(Some(60));
    let now = f.now.now_unix_secs();
    let text = f
        .service
        .ticket_playlist(&playlist(), &claims(now + 3600), viewer_1())
        .unwrap();
    let t = tickets(&text);
    assert_eq!(t.len(), 3);
    // One ticket per distinct key URI; the rest of the playlist unchanged.
    assert_eq!(t[0], t[1]);
    assert_ne!(t[0].2, t[2].2);
    assert_eq!(f.service.stats().tickets_issued, 2);
    let stripped = text
        .replace(&format!("&ticket={}", t[0].2), "")
        .replace(&format!("&ticket={}", t[2].2), "");
    assert_eq!(stripped, playlist());

    for (key_id, edk, ticket) in [&t[0], &t[2]] {
        let key = f
            .service
            .key(&stream(), key_id, edk, Credential::Ticket(ticket))
            .await
            .unwrap();
        assert_eq!(key.as_bytes()[0], if key_id == "p-0" { 1 } else { 2 });
        let again = f.service.key(&stream(), key_id, edk, Credential::Ticket(ticket)).await;
        assert_eq!(again.map(|_| ()), Err(KeyError::Forbidden));
    }
    let stats = f.service.stats();
    assert_eq!((stats.tickets_accepted, stats.tickets_replayed), (2, 2));
    // A new playlist fetch hands out new tickets.
    let t2 = tickets(
        &f.service
            .ticket_playlist(&playlist(), &claims(now + 3600), viewer_1())
            .unwrap(),
    );
    assert_ne!(t2[0].2, t[0].2);
    let (key_id, edk, ticket) = &t2[0];
    assert!(
        f.service
            .key(&stream(), key_id, edk, Credential::Ticket(ticket))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn tickets_are_bound_and_expire() {
    let f = fixture(Some(60));
    let now = f.now.now_unix_secs();
    let t = tickets(
        &f.service
            .ticket_playlist(&playlist(), &claims(now + 3600), viewer_1())
            .unwrap(),
    );
    let (key_id, edk, ticket) = &t[0];
    let other_stream = StreamName::parse("live/other").unwrap();
    let cases = [
        (stream(), "p-1", edk.as_str()),
        (stream(), key_id.as_str(), t[2].1.as_str()),
        (other_stream, key_id.as_str(), edk.as_str()),
    ];
    for (s, k, e) in &cases {
        let got = f.service.key(s, k, e, Credential::Ticket(ticket)).await;
        assert_eq!(got.map(|_| ()), Err(KeyError::Forbidden), "{s} {k}");
    }
    // Expiry, by the injected clock: valid through now + 59.
    f.now.set_unix_secs(now + 60);
    let got = f.service.key(&stream(), key_id, edk, Credential::Ticket(ticket)).await;
    assert_eq!(got.map(|_| ()), Err(KeyError::Forbidden));
    f.now.set_unix_secs(now + 59);
    assert!(
        f.service
            .key(&stream(), key_id, edk, Credential::Ticket(ticket))
            .await
            .is_ok()
    );
    assert_eq!(f.service.stats().tickets_refused, 4);
}

#[tokio::test]
async fn tickets_never_outlive_the_token() {
    let f = fixture(Some(60));
    let now = f.now.now_unix_secs();
    let t = tickets(
        &f.service
            .ticket_playlist(&playlist(), &claims(now + 10), viewer_1())
            .unwrap(),
    );
    let (key_id, edk, ticket) = &t[0];
    f.now.set_unix_secs(now + 10);
    let got = f.service.key(&stream(), key_id, edk, Credential::Ticket(ticket)).await;
    assert_eq!(got.map(|_| ()), Err(KeyError::Forbidden));
}

#[tokio::test]
async fn tokens_and_failures() {
    let f = fixture(None);
    let now = f.now.now_unix_secs();
    let secret = Secret::new(SECRET.to_vec());
    let good = auth::mint(&secret, &claims(now + 60));
    let expired = auth::mint(&secret, &claims(now));
    let e1 = edk(1);
    let cases: &[(&str, &str, &str, Result<u8, KeyError>)] = &[
        ("p-0", &e1, &good, Ok(1)),
        ("p-0", &e1, &expired, Err(KeyError::Forbidden)),
        ("p-0", &e1, "garbage", Err(KeyError::Forbidden)),
        ("bad id!", &e1, &good, Err(KeyError::Forbidden)),
        ("p-0", "***", &good, Err(KeyError::Forbidden)),
        ("p-0", "AQID", &good, Err(KeyError::Forbidden)),
        ("p-0", &edk(0xff), &good, Err(KeyError::Unavailable)),
    ];
    for (key_id, edk, token, want) in cases {
        let got = f.service.key(&stream(), key_id, edk, Credential::Token(token)).await;
        assert_eq!(got.map(|k| k.as_bytes()[0]), *want, "{key_id} {edk}");
    }
    assert_eq!(f.service.stats().token_key_requests, 7);
    // Tickets still verify when the service does not issue them.
    assert!(!f.service.tickets_enabled());
}

#[tokio::test]
async fn a_failing_replay_store_fails_closed() {
    struct Down;
    #[async_trait]
    impl ReplayStore for Down {
        async fn first_use(&self, _: &[u8; 12], _: u64, _: u64) -> Result<bool, ReplayError> {
            Err(ReplayError::Unavailable("down".into()))
        }
    }
    let f = fixture(Some(60));
    let service = KeyService::new(
        KeySettings {
            token_secret: Secret::new(SECRET.to_vec()),
            audience: None,
            ticket_ttl_secs: Some(60),
            offline_ttl_secs: 0,
            cache_max_entries: 10,
            cache_ttl_secs: 60,
        },
        Arc::new(PlainKms),
        Arc::new(Down),
        crate::clock::system(),
    );
    let now = service.now();
    let t = tickets(
        &service
            .ticket_playlist(&playlist(), &claims(now + 3600), viewer_1())
            .unwrap(),
    );
    let (key_id, edk, ticket) = &t[0];
    let got = service.key(&stream(), key_id, edk, Credential::Ticket(ticket)).await;
    assert_eq!(got.map(|_| ()), Err(KeyError::Unavailable));
    drop(f);
}

/// Only key URIs get the query, with `&` after `?edk=` and `?` otherwise.
#[test]
fn with_key_query_touches_key_uris_only() {
    let playlist = "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/live/demo/k1?edk=AA\",IV=0x01\n\
                        #EXTINF:2.0,\na-1.ts\n#EXT-X-KEY:METHOD=AES-128,URI=\"/k2\"\n";
    assert_eq!(
        with_key_query(playlist, "token=t.o.k"),
        "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/live/demo/k1?edk=AA&token=t.o.k\",IV=0x01\n\
             #EXTINF:2.0,\na-1.ts\n#EXT-X-KEY:METHOD=AES-128,URI=\"/k2?token=t.o.k\"\n"
    );
}

#[test]
fn key_uri_parts() {
    let cases = [
        ("/keys/live/demo/p-0?edk=AA", Some(("live/demo", "p-0", "AA"))),
        (
            "https://h/keys/x/keys/live/demo/p-0?token=t&edk=AA",
            Some(("live/demo", "p-0", "AA")),
        ),
        ("/keys/live/demo/p-0", None),
        ("/keys/live/demo/p-0?token=t", None),
        ("/live/demo/p-0?edk=AA", None),
    ];
    for (uri, want) in cases {
        let got = key_uri_binding(uri).map(|b| (b.stream, b.key_id, b.edk));
        assert_eq!(got, want, "{uri}");
    }
    assert_eq!(key_tag_uri("#EXT-X-KEY:METHOD=NONE\n"), None);
    assert_eq!(key_tag_uri("#EXTINF:2,\n"), None);
    assert_eq!(
        key_tag_uri("#EXT-X-KEY:METHOD=AES-128,URI=\"u\",IV=0x1\n"),
        Some(("#EXT-X-KEY:METHOD=AES-128,URI=\"", "u", "\",IV=0x1\n"))
    );
}

/// Issue 18, finding 3: random wrapped keys under one token cost at
/// most its decrypt budget of KMS calls per window; another token, and
/// keys already cached, are not affected.
#[tokio::test]
async fn a_token_spends_at_most_its_kms_budget() {
    let f = fixture(None);
    let now = f.now.now_unix_secs();
    let token = auth::mint(&Secret::new(SECRET.to_vec()), &claims(now + 3600));
    let budget = budget::KMS_MISSES_PER_WINDOW as usize;
    let mut answers = Vec::new();
    for i in 0..budget + 10 {
        // 17-byte wrapped keys: PlainKms refuses each, a distinct one.
        let edk = WrappedKey::from_bytes((i as u32).to_be_bytes().repeat(5)[..17].to_vec()).to_base64url();
        answers.push(f.service.key(&stream(), "p-0", &edk, Credential::Token(&token)).await);
    }
    let forbidden = answers
        .iter()
        .filter(|a| a.as_ref().err() == Some(&KeyError::Forbidden))
        .count();
    let too_many = answers
        .iter()
        .filter(|a| a.as_ref().err() == Some(&KeyError::TooMany))
        .count();
    assert_eq!((forbidden, too_many), (budget, 10));
    let stats = f.service.stats();
    assert_eq!((stats.cache.kms_calls, stats.over_budget), (budget as u64, 10));

    // Another viewer's token still gets keys.
    let mut other = claims(now + 3600);
    other.jti = Some("viewer-2".into());
    let other = auth::mint(&Secret::new(SECRET.to_vec()), &other);
    assert!(
        f.service
            .key(&stream(), "p-0", &edk(3), Credential::Token(&other))
            .await
            .is_ok()
    );
    // A key already cached costs the spent token nothing.
    assert!(
        f.service
            .key(&stream(), "p-0", &edk(3), Credential::Token(&token))
            .await
            .is_ok()
    );
    // The next window brings the budget back.
    f.now.set_unix_secs(now + budget::WINDOW_SECS);
    assert!(
        f.service
            .key(&stream(), "p-0", &edk(4), Credential::Token(&token))
            .await
            .is_ok()
    );
}

/// Issue 18, finding 2: one viewer redeems at most its budget of tickets
/// per window, so it cannot fill the replay store; another viewer can.
#[tokio::test]
async fn a_viewer_redeems_at_most_its_budget_of_tickets() {
    let f = fixture(Some(60));
    let now = f.now.now_unix_secs();
    let budget = budget::TICKET_REDEMPTIONS_PER_WINDOW as usize;
    let mut answers = Vec::new();
    while answers.len() < budget + 4 {
        let text = f
            .service
            .ticket_playlist(&playlist(), &claims(now + 3600), viewer_1())
            .unwrap();
        let t = tickets(&text);
        for (key_id, edk, ticket) in [&t[0], &t[2]] {
            answers.push(f.service.key(&stream(), key_id, edk, Credential::Ticket(ticket)).await);
        }
    }
    assert!(answers[..budget].iter().all(Result::is_ok));
    assert!(
        answers[budget..]
            .iter()
            .all(|a| a.as_ref().err() == Some(&KeyError::TooMany))
    );
    let stats = f.service.stats();
    assert_eq!((stats.tickets_accepted, stats.over_budget), (budget as u64, 4));

    let mut other = claims(now + 3600);
    other.jti = Some("viewer-2".into());
    let t = tickets(
        &f.service
            .ticket_playlist(&playlist(), &other, ticket::viewer_tag(&other, "tok2"))
            .unwrap(),
    );
    let (key_id, edk, ticket) = &t[0];
    assert!(
        f.service
            .key(&stream(), key_id, edk, Credential::Ticket(ticket))
            .await
            .is_ok()
    );
}
