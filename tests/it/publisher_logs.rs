//! The log tells an encoder that dropped from one that stopped, and says
//! when a dropped encoder came back within the reconnect grace period.

use crate::support::logs::capture_logs;
use crate::support::rtmp::{Fixture, Publisher};
use crate::support::server::{DEMO_KEY, TestServer};
use crate::support::with_safety_net;

fn text(logs: &std::sync::Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&logs.lock().unwrap()).into_owned()
}

#[tokio::test]
async fn a_drop_a_return_and_a_clean_stop_each_have_their_line() {
    let (_capture, logs) = capture_logs();
    with_safety_net(async {
        let server = TestServer::start("[hls]\nreconnect_grace_secs = 600\n").await;
        let fixture = Fixture::load("baseline-aac44k.flv");
        let (first, rest) = fixture.split_at_ms(2000);

        // Dropped: the connection closes without an unpublish.
        let mut publisher = Publisher::publish(server.rtmp, DEMO_KEY).await;
        publisher.send_metadata(&fixture.metadata).await;
        publisher.send_tags(first).await;
        publisher.close().await;
        crate::support::playlist::wait_for("the publish to end", crate::support::playlist::POLL_LIMIT, || async {
            (!server.stream_info("live/demo").live).then_some(())
        })
        .await;

        // Back within the grace period, then a clean stop.
        let mut publisher = Publisher::publish(server.rtmp, DEMO_KEY).await;
        publisher.send_metadata(&fixture.metadata).await;
        publisher.send_tags(rest).await;
        publisher.finish().await;
        crate::support::playlist::wait_for(
            "the second publish to end",
            crate::support::playlist::POLL_LIMIT,
            || async { (!server.stream_info("live/demo").live).then_some(()) },
        )
        .await;
        server.stop().await;
    })
    .await;
    let log = text(&logs);
    let lines = |needle: &str| log.lines().filter(|l| l.contains(needle)).collect::<Vec<_>>();
    let dropped = lines("publisher dropped: the connection closed without an unpublish");
    assert_eq!(dropped.len(), 1, "{log}");
    assert!(dropped[0].contains(" WARN "), "{}", dropped[0]);
    let returned = lines("publisher returned within the reconnect grace period");
    assert_eq!(returned.len(), 1, "{log}");
    assert!(returned[0].contains(" INFO "), "{}", returned[0]);
    let stopped = lines("publisher stopped: unpublish received");
    assert_eq!(stopped.len(), 1, "{log}");
    assert!(stopped[0].contains(" INFO "), "{}", stopped[0]);
}
