//! Prometheus metrics: `GET /metrics` on `[metrics] listen`, in `serve` and
//! `keyserver`.
//!
//! One [`Metrics`] per server, not a process-global recorder: the
//! `metrics` crate's handles ([`Counter`], [`Gauge`], [`Histogram`]) are
//! registered on this server's own `metrics-exporter-prometheus` recorder,
//! which also renders the text format, so two servers in one process (the
//! tests) keep separate books. What the server already counts (key results,
//! the key cache, viewers, live streams) is read when `/metrics` is
//! scraped ([`Exporter::render`]), so the hot paths pay nothing extra for
//! it; what it does not (KMS calls and their latency, ingest bytes, segments
//! and their publish latency, RTMP connections) is recorded through handles
//! taken once per publish or connection.
//!
//! The series are DESIGN.md's ("Operations"); `sealcast_storage_requests_total`
//! is left out until there is a storage backend that makes requests (local
//! files have none). `docs/metrics.md` lists them, `docs/grafana-dashboard.json`
//! graphs them.

mod kms;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Level, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use tokio::net::TcpListener;
use tracing::info;

pub use kms::MeteredKms;

use crate::keyservice::KeyService;
use crate::live::Registry;

/// Streams with a publisher connected (gauge).
pub const STREAMS_LIVE: &str = "sealcast_streams_live";
/// RTMP connections open (gauge).
pub const RTMP_CONNECTIONS: &str = "sealcast_rtmp_connections";
/// Bytes of audio and video tag bodies received, per stream (counter).
pub const INGEST_BYTES: &str = "sealcast_ingest_bytes_total";
/// Segments listed in the playlist, per stream (counter).
pub const SEGMENTS: &str = "sealcast_segments_total";
/// From a segment's last frame to the playlist listing it (histogram).
pub const SEGMENT_PUBLISH_SECONDS: &str = "sealcast_segment_publish_seconds";
/// Segment ciphertext held in memory for viewers, all streams (gauge).
pub const SEGMENT_MEMORY_BYTES: &str = "sealcast_segment_memory_bytes";
/// Distinct authorized viewers in the last 30 s, per stream (gauge).
pub const VIEWERS: &str = "sealcast_viewers";
/// Key requests by answer (counter).
pub const KEY_REQUESTS: &str = "sealcast_key_requests_total";
/// KMS calls by operation and outcome (counter).
pub const KMS_REQUESTS: &str = "sealcast_kms_requests_total";
/// KMS call latency (histogram).
pub const KMS_REQUEST_SECONDS: &str = "sealcast_kms_request_seconds";
/// Key requests answered from the key cache (counter).
pub const KEY_CACHE_HITS: &str = "sealcast_key_cache_hits_total";
/// Key requests that needed the KMS (counter).
pub const KEY_CACHE_MISSES: &str = "sealcast_key_cache_misses_total";
/// Object storage requests by `op` (put, get, head, list, delete) and
/// `result` (ok, not_found, error).
pub const STORAGE_REQUESTS: &str = "sealcast_storage_requests_total";
/// Segments dropped because object storage did not take them in time.
pub const STORAGE_SEGMENTS_DROPPED: &str = "sealcast_storage_segments_dropped_total";
/// Webhook events the receiver accepted (counter).
pub const WEBHOOKS_DELIVERED: &str = "sealcast_webhook_events_delivered_total";
/// Webhook events dropped from a full queue (counter).
pub const WEBHOOKS_DROPPED: &str = "sealcast_webhook_events_dropped_total";
/// Webhook events waiting for delivery (gauge).
pub const WEBHOOKS_PENDING: &str = "sealcast_webhook_events_pending";

/// Histogram buckets in seconds: from a local unwrap (tens of µs) to a KMS
/// or disk that is seconds late.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// One server's metrics: its recorder and what renders it.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let builder = PrometheusBuilder::new();
        // The buckets are constant and valid (non-empty); should that ever
        // change, the default (summaries) still renders.
        let builder = match builder.set_buckets(SECONDS_BUCKETS) {
            Ok(builder) => builder,
            Err(_) => PrometheusBuilder::new(),
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let metrics = Self { recorder, handle };
        metrics.describe();
        metrics
    }

    fn describe(&self) {
        let r = &self.recorder;
        let text = |s: &'static str| SharedString::from(s);
        r.describe_gauge(
            KeyName::from(STREAMS_LIVE),
            None,
            text("Streams with a publisher connected."),
        );
        r.describe_gauge(KeyName::from(RTMP_CONNECTIONS), None, text("RTMP connections open."));
        r.describe_counter(
            KeyName::from(INGEST_BYTES),
            Some(Unit::Bytes),
            text("Bytes of audio and video received from publishers."),
        );
        r.describe_counter(KeyName::from(SEGMENTS), None, text("Segments listed in playlists."));
        r.describe_histogram(
            KeyName::from(SEGMENT_PUBLISH_SECONDS),
            Some(Unit::Seconds),
            text("Time from a segment's last frame to the playlist listing it."),
        );
        r.describe_gauge(
            KeyName::from(SEGMENT_MEMORY_BYTES),
            Some(Unit::Bytes),
            text("Segment ciphertext held in memory for viewers, all streams ([http.limits] segment_memory_mb)."),
        );
        r.describe_gauge(
            KeyName::from(VIEWERS),
            None,
            text("Distinct authorized viewers seen in the last 30 seconds."),
        );
        r.describe_counter(KeyName::from(KEY_REQUESTS), None, text("Key requests by result."));
        r.describe_counter(
            KeyName::from(KMS_REQUESTS),
            None,
            text("KMS calls by operation and result."),
        );
        r.describe_histogram(
            KeyName::from(KMS_REQUEST_SECONDS),
            Some(Unit::Seconds),
            text("KMS call latency."),
        );
        r.describe_counter(
            KeyName::from(KEY_CACHE_HITS),
            None,
            text("Key requests answered from the key cache."),
        );
        r.describe_counter(
            KeyName::from(KEY_CACHE_MISSES),
            None,
            text("Key requests that needed the KMS."),
        );
    }

    fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
        let labels: Vec<Label> = labels.iter().map(|(k, v)| Label::new(*k, (*v).to_owned())).collect();
        Key::from_parts(name, labels)
    }

    /// The counter `name{labels}` (registered on first use).
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        self.recorder.register_counter(&Self::key(name, labels), &METADATA)
    }

    /// The gauge `name{labels}`.
    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        self.recorder.register_gauge(&Self::key(name, labels), &METADATA)
    }

    /// The histogram `name{labels}`.
    pub fn histogram(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
        self.recorder.register_histogram(&Self::key(name, labels), &METADATA)
    }

    /// The handles one publish records with.
    pub fn stream(&self, stream: &str) -> StreamMeters {
        StreamMeters {
            ingest_bytes: self.counter(INGEST_BYTES, &[("stream", stream)]),
            segments: self.counter(SEGMENTS, &[("stream", stream)]),
            publish_seconds: self.histogram(SEGMENT_PUBLISH_SECONDS, &[]),
        }
    }

    /// Everything recorded so far, in the Prometheus text format (0.0.4).
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Folds the histogram samples recorded since the last call into their
    /// buckets. The exporter keeps every sample until then, so a server that
    /// nobody scrapes would grow by one sample per request and per segment
    /// (the hour-long soak found about 6 MB an hour); [`Exporter::keep_up`]
    /// calls this every [`UPKEEP_INTERVAL`].
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }
}

/// How often [`Exporter::keep_up`] folds histogram samples into buckets.
pub const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// A publish's handles (no-ops when metrics are off).
#[derive(Clone)]
pub struct StreamMeters {
    pub ingest_bytes: Counter,
    pub segments: Counter,
    pub publish_seconds: Histogram,
}

impl StreamMeters {
    /// Handles that record nothing.
    pub fn noop() -> Self {
        Self {
            ingest_bytes: Counter::noop(),
            segments: Counter::noop(),
            publish_seconds: Histogram::noop(),
        }
    }
}

/// `/metrics`: the recorded series plus what the server counts anyway,
/// read at scrape time.
pub struct Exporter {
    metrics: Arc<Metrics>,
    keys: Arc<KeyService>,
    /// Absent in `sealcast keyserver` (no streams are published there).
    registry: Option<Arc<Registry>>,
    /// The webhook queue, when webhooks are on.
    webhooks: Option<crate::webhooks::Notifier>,
}

impl Exporter {
    pub fn new(metrics: Arc<Metrics>, keys: Arc<KeyService>, registry: Option<Arc<Registry>>) -> Self {
        Self {
            metrics,
            keys,
            registry,
            webhooks: None,
        }
    }

    /// Also reports the webhook queue's counters.
    pub fn with_webhooks(mut self, webhooks: Option<crate::webhooks::Notifier>) -> Self {
        self.webhooks = webhooks;
        self
    }

    /// Runs [`Metrics::run_upkeep`] every [`UPKEEP_INTERVAL`], for as long
    /// as the server runs, scraped or not.
    pub async fn keep_up(&self) {
        let mut ticks = tokio::time::interval(UPKEEP_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.metrics.run_upkeep();
        }
    }

    /// The text a scrape gets.
    pub fn render(&self) -> String {
        let m = &self.metrics;
        let stats = self.keys.stats();
        let results = stats.key_results;
        for (result, count) in [
            ("ok", results.ok),
            ("unauthorized", results.unauthorized),
            ("forbidden", results.forbidden),
            ("unavailable", results.unavailable),
            ("too_many", results.too_many),
        ] {
            m.counter(KEY_REQUESTS, &[("result", result)]).absolute(count);
        }
        m.counter(KEY_CACHE_HITS, &[]).absolute(stats.cache.hits);
        m.counter(KEY_CACHE_MISSES, &[]).absolute(stats.cache.misses);
        let viewers = self.keys.viewer_counts();
        if let Some(registry) = &self.registry {
            let mut live = 0u32;
            for stream in registry.all() {
                let name = stream.name.to_string();
                if stream.info().live {
                    live += 1;
                }
                if !viewers.iter().any(|(s, _)| *s == name) {
                    m.gauge(VIEWERS, &[("stream", &name)]).set(0.0);
                }
            }
            m.gauge(STREAMS_LIVE, &[]).set(f64::from(live));
            let memory = registry.settings().segment_memory.held();
            m.gauge(SEGMENT_MEMORY_BYTES, &[]).set(memory as f64);
        }
        for (stream, count) in &viewers {
            m.gauge(VIEWERS, &[("stream", stream)]).set(*count as f64);
        }
        if let Some(webhooks) = &self.webhooks {
            m.counter(WEBHOOKS_DELIVERED, &[]).absolute(webhooks.delivered());
            m.counter(WEBHOOKS_DROPPED, &[]).absolute(webhooks.dropped());
            m.gauge(WEBHOOKS_PENDING, &[]).set(webhooks.pending() as f64);
        }
        m.render()
    }
}

/// The metrics listener's routes: `GET /metrics`, 404 for anything else.
pub fn router(exporter: Arc<Exporter>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(
                |axum::extract::State(exporter): axum::extract::State<Arc<Exporter>>| async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                        exporter.render(),
                    )
                },
            ),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n").into_response() })
        .with_state(exporter)
}

/// Serves `/metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    exporter: Arc<Exporter>,
    tls: Option<crate::tls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    info!(addr = %listener.local_addr()?, https = tls.is_some(), "metrics listening");
    crate::http::serve::serve_tls(listener, router(exporter), SCRAPER_LIMITS, tls, shutdown).await
}

/// A few scrapers, not the public: a small connection budget of its own,
/// so a stuck scraper never takes descriptors from ingest or viewers.
const SCRAPER_LIMITS: crate::http::serve::ServeLimits = crate::http::serve::ServeLimits {
    header_timeout: std::time::Duration::from_secs(10),
    max_connections: 64,
    max_connections_per_ip: 16,
};

#[cfg(test)]
mod tests;
