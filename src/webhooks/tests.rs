use super::*;

#[test]
fn signature_is_hmac_sha256_of_time_dot_body() {
    // Known answer, computed with Python's hmac:
    // hmac.new(b"whsec-test-0123456789", b"1700000000.{\"a\":1}", "sha256").hexdigest()
    let secret = Secret::new(b"whsec-test-0123456789".to_vec());
    assert_eq!(
        signature(&secret, 1_700_000_000, br#"{"a":1}"#),
        "t=1700000000,v1=ba8ec7f38c4e076a99176a1bf98ae9f2f3f4e18412b46a5913ddcf5685932c6a"
    );
}

#[test]
fn a_full_queue_drops_the_oldest_and_counts_it() {
    let notifier = Notifier::new(3);
    for i in 0..5 {
        notifier.notify("stream.published", "live/demo", serde_json::json!({ "n": i }));
    }
    assert_eq!(notifier.dropped(), 2);
    assert_eq!(notifier.pending(), 3);
    let queue = notifier.shared.lock();
    let kept: Vec<i64> = queue
        .events
        .iter()
        .map(|(_, e)| e.data["n"].as_i64().unwrap())
        .collect();
    assert_eq!(kept, [2, 3, 4]);
    let ids: std::collections::HashSet<&str> = queue.events.iter().map(|(_, e)| e.id.as_str()).collect();
    assert_eq!(ids.len(), 3);
    assert!(
        queue
            .events
            .iter()
            .all(|(_, e)| e.id.len() == 36 && e.id.starts_with("evt_"))
    );
}

#[test]
fn an_event_dropped_while_being_sent_is_not_removed_twice() {
    let notifier = Notifier::new(2);
    notifier.notify("a", "live/demo", serde_json::Value::Null);
    let first_seq = notifier.shared.lock().events.front().unwrap().0;
    // While event 0 is on the wire, two more push it out.
    notifier.notify("b", "live/demo", serde_json::Value::Null);
    notifier.notify("c", "live/demo", serde_json::Value::Null);
    notifier.delivered_seq(first_seq);
    let kinds: Vec<&str> = notifier.shared.lock().events.iter().map(|(_, e)| e.kind).collect();
    assert_eq!(kinds, ["b", "c"], "the delivery of a dropped event removed another one");
    assert_eq!((notifier.dropped(), notifier.delivered()), (1, 0));
}

#[test]
fn events_serialize_as_the_receiver_reads_them() {
    let event = Event {
        id: "evt_00".into(),
        kind: "segment.dropped",
        created_unix_ms: 5,
        stream: "live/demo".into(),
        data: serde_json::json!({ "seq": 7 }),
    };
    assert_eq!(
        serde_json::to_string(&event).unwrap(),
        r#"{"id":"evt_00","type":"segment.dropped","created_unix_ms":5,"stream":"live/demo","data":{"seq":7}}"#
    );
}
