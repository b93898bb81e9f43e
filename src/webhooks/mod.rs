//! Webhooks: `stream.published`, `stream.unpublished`, `segment.dropped` and
//! `recording.completed` events POSTed as JSON to `[webhooks] url`, each with a unique `id`, signed
//! `Sealcast-Signature: t=<unix secs>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`
//! (DESIGN.md, "Operations").
//!
//! [`Notifier::notify`] never waits: it appends to a bounded queue and
//! returns, so a slow or dead receiver never delays ingest. One delivery task
//! sends the queue in order, one event at a time, and removes an event only
//! once the receiver answered 2xx; failures are retried with exponential
//! backoff. Delivery is at least once (an answer lost after the receiver
//! acted on it means a repeat; receivers deduplicate by `id`) and in order.
//! When the receiver stays down and the queue is full, the oldest event is
//! dropped for the newest, counted ([`Notifier::dropped`]) and logged.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;
use tokio::sync::Notify;
use tracing::{debug, warn};

use crate::auth::Secret;
use crate::config::WebhooksConfig;

pub mod client;
pub mod publish_hook;
use client::{HookClient, configured_hook_client};
pub use publish_hook::PublishHook;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "sealcast-signature";

/// One event as the receiver gets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Unique: `evt_` and 32 hex digits.
    pub id: String,
    /// `stream.published`, `stream.unpublished`, `segment.dropped` or
    /// `recording.completed`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// When it happened, Unix milliseconds.
    pub created_unix_ms: u64,
    /// `app/name`.
    pub stream: String,
    /// Event details (`publish_id`, `seq`, `reason`, counts).
    pub data: serde_json::Value,
}

/// The `Sealcast-Signature` value of `body` sent at `unix_secs`.
pub fn signature(secret: &Secret, unix_secs: u64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(unix_secs.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("t={unix_secs},v1={}", hex(ctx.sign().as_ref()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The queue: events with their sequence numbers, oldest first.
struct Queue {
    events: VecDeque<(u64, Event)>,
    next_seq: u64,
}

struct Shared {
    queue: Mutex<Queue>,
    capacity: usize,
    wake: Notify,
    /// Woken when the queue becomes empty.
    empty: Notify,
    dropped: AtomicU64,
    delivered: AtomicU64,
    rng: SystemRandom,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Plain data; a panic elsewhere leaves it consistent.
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The ingest side's handle: cheap to clone, never blocks.
#[derive(Clone)]
pub struct Notifier {
    shared: Arc<Shared>,
}

impl Notifier {
    /// A notifier with room for `capacity` undelivered events, and no
    /// delivery (see [`spawn`]).
    pub fn new(capacity: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue {
                    events: VecDeque::new(),
                    next_seq: 0,
                }),
                capacity: capacity.max(1),
                wake: Notify::new(),
                empty: Notify::new(),
                dropped: AtomicU64::new(0),
                delivered: AtomicU64::new(0),
                rng: SystemRandom::new(),
            }),
        }
    }

    /// Queues an event; drops the oldest one when the queue is full.
    pub fn notify(&self, kind: &'static str, stream: &str, data: serde_json::Value) {
        let mut id = [0u8; 16];
        if self.shared.rng.fill(&mut id).is_err() {
            warn!(
                kind,
                stream, "webhook event not queued: the random number generator failed"
            );
            return;
        }
        let event = Event {
            id: format!("evt_{}", hex(&id)),
            kind,
            created_unix_ms: crate::clock::now_unix_ms(),
            stream: stream.to_owned(),
            data,
        };
        let overflow = {
            let mut queue = self.shared.lock();
            let overflow = if queue.events.len() >= self.shared.capacity {
                queue.events.pop_front()
            } else {
                None
            };
            let seq = queue.next_seq;
            queue.next_seq += 1;
            queue.events.push_back((seq, event));
            overflow
        };
        if let Some((_, lost)) = overflow {
            let dropped = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped % 100 == 1 {
                warn!(id = %lost.id, kind = lost.kind, stream = %lost.stream, dropped,
                    "webhook queue full (receiver down?): oldest event dropped");
            }
        }
        self.shared.wake.notify_one();
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Events the receiver accepted.
    pub fn delivered(&self) -> u64 {
        self.shared.delivered.load(Ordering::Relaxed)
    }

    /// Events waiting for delivery.
    pub fn pending(&self) -> usize {
        self.shared.lock().events.len()
    }

    /// The oldest undelivered event, waiting for one.
    async fn front(&self) -> (u64, Event) {
        loop {
            let notified = self.shared.wake.notified();
            if let Some(front) = self.shared.lock().events.front().cloned() {
                return front;
            }
            notified.await;
        }
    }

    /// Removes event `seq` after its delivery, unless it was dropped meanwhile.
    fn delivered_seq(&self, seq: u64) {
        let mut queue = self.shared.lock();
        if queue.events.front().is_some_and(|(s, _)| *s == seq) {
            queue.events.pop_front();
            self.shared.delivered.fetch_add(1, Ordering::Relaxed);
        }
        if queue.events.is_empty() {
            self.shared.empty.notify_waiters();
        }
    }

    /// Resolves once every queued event was delivered (or dropped).
    pub async fn drained(&self) {
        loop {
            let empty = self.shared.empty.notified();
            if self.shared.lock().events.is_empty() {
                return;
            }
            empty.await;
        }
    }
}

/// Where and how events are sent.
pub struct Delivery {
    pub url: hyper::Uri,
    pub client: HookClient,
    pub secret: Secret,
    pub timeout: Duration,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Delivery {
    /// From `[webhooks]`; `None` when webhooks are off. The error names the
    /// setting at fault.
    pub fn from_config(config: &WebhooksConfig, secret: Option<Secret>) -> Result<Option<Self>, String> {
        let (Some(url), Some(secret)) = (config.url.as_deref(), secret) else {
            return Ok(None);
        };
        let url = url.parse().map_err(|_| format!("webhooks.url {url:?} is not a URL"))?;
        let client = configured_hook_client("webhooks.tls_ca_file", config.tls_ca_file.as_deref())?;
        Ok(Some(Self {
            url,
            client,
            secret,
            timeout: Duration::from_secs(config.timeout_secs),
            initial_backoff: Duration::from_millis(config.initial_backoff_ms),
            max_backoff: Duration::from_secs(config.max_backoff_secs),
        }))
    }
}

/// Starts the delivery task for `notifier`'s queue; it runs until the
/// runtime ends (undelivered events are lost with the process).
pub fn spawn(notifier: Notifier, delivery: Delivery) -> tokio::task::JoinHandle<()> {
    tokio::spawn(deliver(notifier, delivery))
}

async fn deliver(notifier: Notifier, delivery: Delivery) {
    let mut backoff = delivery.initial_backoff;
    loop {
        let (seq, event) = notifier.front().await;
        let body = match serde_json::to_vec(&event) {
            Ok(body) => body,
            Err(error) => {
                warn!(id = %event.id, %error, "webhook event cannot be encoded; dropped");
                notifier.delivered_seq(seq);
                continue;
            }
        };
        match send(&delivery, &event.id, body).await {
            Ok(()) => {
                debug!(id = %event.id, kind = event.kind, stream = %event.stream, "webhook delivered");
                notifier.delivered_seq(seq);
                backoff = delivery.initial_backoff;
            }
            Err(why) => {
                debug!(id = %event.id, %why, retry_in = ?backoff, "webhook delivery failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(delivery.max_backoff);
            }
        }
    }
}

async fn send(delivery: &Delivery, id: &str, body: Vec<u8>) -> Result<(), String> {
    let signature = signature(&delivery.secret, crate::clock::now_unix_secs(), &body);
    let request = hyper::Request::post(delivery.url.clone())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("sealcast/", env!("CARGO_PKG_VERSION")),
        )
        .header(SIGNATURE_HEADER, signature)
        .header("sealcast-event-id", id)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(delivery.timeout, delivery.client.request(request))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", response.status()))
    }
}

#[cfg(test)]
mod tests;
