use std::sync::Arc;

use super::*;
use crate::crypto::{EncryptionContext, KeyId};
use crate::kms::Kms;
use crate::kms::local::LocalKms;

/// Upkeep folds samples into the buckets (what keeps an unscraped server
/// from growing) without losing any: a later scrape counts them all.
#[test]
fn upkeep_between_scrapes_keeps_every_sample() {
    let metrics = Metrics::new();
    let latency = metrics.stream("live/demo").publish_seconds;
    for _ in 0..1000 {
        latency.record(0.003);
    }
    metrics.run_upkeep();
    latency.record(0.02);
    metrics.run_upkeep();
    let text = metrics.render();
    assert!(
        text.contains("sealcast_segment_publish_seconds_bucket{le=\"0.005\"} 1000\n"),
        "{text}"
    );
    assert!(text.contains("sealcast_segment_publish_seconds_count 1001\n"), "{text}");
}

#[test]
fn renders_described_series_in_the_text_format() {
    let metrics = Metrics::new();
    metrics.counter(KEY_REQUESTS, &[("result", "ok")]).absolute(7);
    metrics.stream("live/demo").ingest_bytes.increment(1234);
    metrics.stream("live/demo").publish_seconds.record(0.003);
    let text = metrics.render();
    assert!(
        text.contains("# HELP sealcast_key_requests_total Key requests by result.\n"),
        "{text}"
    );
    assert!(text.contains("# TYPE sealcast_key_requests_total counter\n"), "{text}");
    assert!(
        text.contains("sealcast_key_requests_total{result=\"ok\"} 7\n"),
        "{text}"
    );
    assert!(
        text.contains("sealcast_ingest_bytes_total{stream=\"live/demo\"} 1234\n"),
        "{text}"
    );
    // A histogram with buckets, not a summary.
    assert!(
        text.contains("# TYPE sealcast_segment_publish_seconds histogram\n"),
        "{text}"
    );
    assert!(
        text.contains("sealcast_segment_publish_seconds_bucket{le=\"0.005\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("sealcast_segment_publish_seconds_count 1\n"), "{text}");
}

#[test]
fn two_servers_keep_separate_books() {
    let a = Metrics::new();
    let b = Metrics::new();
    a.counter(KEY_CACHE_HITS, &[]).increment(2);
    assert!(a.render().contains("sealcast_key_cache_hits_total 2\n"));
    assert!(!b.render().contains("sealcast_key_cache_hits_total"));
}

#[tokio::test]
async fn metered_kms_counts_calls_by_operation_and_result() {
    let dir = tempfile::tempdir().unwrap();
    let local: Arc<dyn Kms> = Arc::new(LocalKms::open_or_create(&dir.path().join("keyring.json")).unwrap());
    let metrics = Arc::new(Metrics::new());
    let kms = MeteredKms::new(local, Arc::clone(&metrics));
    let ctx = EncryptionContext::new("live/demo", &KeyId::new("k1").unwrap());
    let other = EncryptionContext::new("live/other", &KeyId::new("k1").unwrap());
    let (_, wrapped) = kms.generate_data_key(&ctx).await.unwrap();
    kms.decrypt(&wrapped, &ctx).await.unwrap();
    kms.decrypt(&wrapped, &ctx).await.unwrap();
    assert!(kms.decrypt(&wrapped, &other).await.is_err());
    let text = metrics.render();
    for line in [
        "sealcast_kms_requests_total{op=\"generate_data_key\",result=\"ok\"} 1\n",
        "sealcast_kms_requests_total{op=\"decrypt\",result=\"ok\"} 2\n",
        "sealcast_kms_requests_total{op=\"decrypt\",result=\"invalid\"} 1\n",
        "sealcast_kms_request_seconds_count{op=\"decrypt\"} 3\n",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
}

/// Every series the Grafana dashboard queries is one sealcast exports.
#[test]
fn the_dashboard_queries_exported_series() {
    let dashboard: serde_json::Value = serde_json::from_str(include_str!("../../docs/grafana-dashboard.json")).unwrap();
    let exported = [
        STREAMS_LIVE,
        RTMP_CONNECTIONS,
        INGEST_BYTES,
        SEGMENTS,
        SEGMENT_PUBLISH_SECONDS,
        VIEWERS,
        KEY_REQUESTS,
        KMS_REQUESTS,
        KMS_REQUEST_SECONDS,
        KEY_CACHE_HITS,
        KEY_CACHE_MISSES,
        WEBHOOKS_DELIVERED,
        WEBHOOKS_DROPPED,
        WEBHOOKS_PENDING,
    ];
    let mut queried = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("sealcast_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                queried.push(name);
            }
        }
    }
    assert!(queried.len() >= exported.len(), "{queried:?}");
    for name in &queried {
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        assert!(
            exported.contains(&base),
            "the dashboard queries {name}, which sealcast does not export"
        );
    }
    for name in exported {
        assert!(
            queried.iter().any(|q| q.starts_with(name)),
            "the dashboard does not show {name}"
        );
    }
}
