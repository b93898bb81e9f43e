//! `--log-format json`: the real binary writes one JSON object per line,
//! span fields included.

use std::time::Duration;

use crate::support::playlist::{POLL_LIMIT, wait_for_blocking};
use crate::support::process::{path_str, read_text, spawn_sealcast, write_private};
use crate::support::server::streams_toml;

#[test]
fn serve_logs_one_json_object_per_line() {
    let root = tempfile::tempdir().unwrap();
    let secret = root.path().join("token_secret");
    write_private(&secret, "logging-token-secret-0123456789-0123456789");
    let config = root.path().join("sealcast.toml");
    write_private(
        &config,
        &format!(
            "[rtmp]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n[metrics]\nenabled = false\n\
             [storage]\ndata_dir = {:?}\n[auth]\ntoken_secret_file = {:?}\n{}",
            path_str(&root.path().join("data")),
            path_str(&secret),
            streams_toml()
        ),
    );
    let log = root.path().join("server.log");
    let (mut server, _stdout) = spawn_sealcast(
        &["serve", "--config", path_str(&config), "--log-format", "json"],
        root.path(),
        &log,
    );
    wait_for_blocking("the listening line", POLL_LIMIT, || {
        read_text(&log).contains("\"rtmp ingest listening\"").then_some(())
    });
    let status = server.terminate(Duration::from_secs(30));
    assert!(status.is_some_and(|s| s.success()), "{}", read_text(&log));
    let text = read_text(&log);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(lines.len() >= 3, "{text}");
    for line in &lines {
        assert!(line["timestamp"].is_string() && line["level"].is_string(), "{line}");
        assert!(line["fields"]["message"].is_string(), "{line}");
    }
    let shut_down = lines.iter().any(|l| l["fields"]["message"] == "shut down");
    assert!(shut_down, "{text}");
}
