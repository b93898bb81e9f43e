//! The registry of configured streams: publish decisions, what a previous
//! run left behind, and the timers that end playlists and delete expired
//! segments. Each stream's shared state is in [`super::stream`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use dashmap::DashMap;
use ring::digest;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::cluster::HeldLease;
use super::publish::Publish;
use super::stored::{read_stored_playlist, remove_segment, unlisted_segments};
use super::stream::Stream;
use super::{LiveSettings, PublishControl, Stop, StreamInfo, StreamSpec};
use crate::cluster::Leases;
use crate::hls::MediaPlaylist;
use crate::ingest::{PublishAuthorizer, PublishGrant};
use crate::kms::Kms;
use crate::names::{self, StreamName};
use crate::rtmp::PublishRefused;
use crate::storage::Storage;
use crate::timeline::continue_playlist;

/// Media messages buffered between an RTMP connection and its pipeline. When
/// full, the connection stops reading: backpressure, never loss.
const MEDIA_CHANNEL_CAPACITY: usize = 512;

/// All configured streams, their live state, and publish authorization.
pub struct Registry {
    settings: LiveSettings,
    kms: Arc<dyn Kms>,
    streams: DashMap<StreamName, Arc<Stream>>,
    /// SHA-256 of each publish key → stream. Looking up a digest reveals
    /// nothing about the key through timing, unlike comparing keys directly.
    /// Replaced whole when stream definitions are reloaded (SIGHUP).
    by_key_digest: RwLock<HashMap<[u8; 32], StreamName>>,
    /// Publish tasks still running, and a wake-up for when that reaches zero.
    active_publishes: AtomicUsize,
    idle: Notify,
    /// Grace timers and segment deletions: owned here, so shutdown cancels
    /// them ([`Registry::stop_timers`]) instead of leaving them detached.
    timers: Mutex<JoinSet<()>>,
    /// Where publishes record ingest bytes and segments; `None`: nowhere.
    metrics: Option<Arc<crate::metrics::Metrics>>,
    /// Where stream events go; `None`: no webhooks.
    webhooks: Option<crate::webhooks::Notifier>,
    /// The broadcaster's backend, deciding every publish; `None`: the
    /// configured publish keys decide.
    publish_hook: Option<crate::webhooks::PublishHook>,
    /// Cluster mode: the publish leases in Redis; `None`: one node.
    cluster: Option<Arc<Leases>>,
}

/// How long a new publish waits for the quiet one it takes over from to
/// store its accepted media and end (its last key may take 2 s).
const TAKEOVER_WAIT: Duration = Duration::from_secs(10);

impl Registry {
    pub fn new(settings: LiveSettings, kms: Arc<dyn Kms>, specs: Vec<StreamSpec>) -> Self {
        let streams = DashMap::new();
        let mut by_key_digest = HashMap::new();
        settings.recordings.set_overrides(&specs);
        for spec in specs {
            by_key_digest.insert(key_digest(spec.publish_key.expose()), spec.name.clone());
            let stream = Stream::restore(spec.name.clone(), &settings);
            streams.insert(spec.name, Arc::new(stream));
        }
        Self {
            settings,
            kms,
            streams,
            by_key_digest: RwLock::new(by_key_digest),
            active_publishes: AtomicUsize::new(0),
            idle: Notify::new(),
            timers: Mutex::new(JoinSet::new()),
            metrics: None,
            webhooks: None,
            publish_hook: None,
            cluster: None,
        }
    }

    /// Every recording of this server's storage.
    pub fn recordings(&self) -> &Arc<super::Recordings> {
        &self.settings.recordings
    }

    /// Where segments and playlists go.
    pub fn storage(&self) -> &Storage {
        &self.settings.storage
    }

    /// The stream's canonical playlist in object storage, for a publish to
    /// continue (another node or an earlier run may have written it); `None`
    /// with the local backend (its playlist is restored at start) or when
    /// storage has none or does not answer in time (logged: the publish then
    /// continues from what this node knows).
    async fn stored_playlist(&self, stream: &Stream) -> Option<MediaPlaylist> {
        read_stored_playlist(stream, &self.settings).await
    }

    /// Counts a segment dropped because storage did not take it in time.
    pub(super) fn count_storage_drop(&self) {
        if let Some(metrics) = &self.metrics {
            metrics
                .counter(crate::metrics::STORAGE_SEGMENTS_DROPPED, &[])
                .increment(1);
        }
    }

    /// Every publish is decided by `hook` (the configured keys no longer
    /// admit anything), and may name a stream the configuration does not
    /// list: it is created then, with its directory under `storage.data_dir`.
    pub fn with_publish_hook(mut self, hook: crate::webhooks::PublishHook) -> Self {
        self.publish_hook = Some(hook);
        self
    }

    /// Which stream a publish request is for: the hook's answer when there
    /// is a hook, otherwise the stream whose key it presented.
    async fn admit(
        &self,
        app: &str,
        stream_key: &str,
        query: Option<&str>,
        peer: std::net::SocketAddr,
    ) -> Result<Arc<Stream>, PublishRefused> {
        let Some(hook) = &self.publish_hook else {
            return self
                .by_key_digest
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key_digest(stream_key.as_bytes()))
                .filter(|name| name.app() == app)
                .and_then(|name| self.get(name))
                .ok_or(PublishRefused::BadKey);
        };
        let name = hook.decide(app, stream_key, query, peer).await.map_err(|error| {
            let app = crate::rtmp::printable(app.as_bytes());
            match error {
                // The backend said no: the connection logs the refusal.
                crate::webhooks::publish_hook::HookError::Refused(_) => debug!(%app, %error, "publish hook refused"),
                _ => warn!(%app, %error, "publish refused: no usable answer from the publish hook"),
            }
            PublishRefused::BadKey
        })?;
        Ok(self.stream_at_run_time(name).await)
    }

    /// The stream named `name`, created (with what a previous run left in
    /// its directory) when the configuration does not list it.
    async fn stream_at_run_time(&self, name: StreamName) -> Arc<Stream> {
        if let Some(stream) = self.get(&name) {
            return stream;
        }
        let settings = self.settings.clone();
        let restoring = name.clone();
        let restored = tokio::task::spawn_blocking(move || Stream::restore(restoring, &settings))
            .await
            .unwrap_or_else(|_| Stream::fresh(name.clone(), &self.settings));
        // Two publishes may race here; the first one in wins, the other
        // then finds the stream live.
        let stream = Arc::clone(
            self.streams
                .entry(name.clone())
                .or_insert_with(|| Arc::new(restored))
                .value(),
        );
        info!(stream = %name, "stream created at run time by the publish hook");
        stream
    }

    /// Cluster mode: every publish holds its stream's lease in Redis.
    pub fn with_cluster(mut self, leases: Arc<Leases>) -> Self {
        self.cluster = Some(leases);
        self
    }

    /// Publishes and unpublishes, and dropped segments, are queued as
    /// webhook events on `notifier`.
    pub fn with_webhooks(mut self, notifier: crate::webhooks::Notifier) -> Self {
        self.settings.recordings.set_webhooks(notifier.clone());
        self.webhooks = Some(notifier);
        self
    }

    /// Queues a webhook event (never waits).
    pub(super) fn event(&self, kind: &'static str, stream: &StreamName, data: serde_json::Value) {
        if let Some(webhooks) = &self.webhooks {
            webhooks.notify(kind, &stream.to_string(), data);
        }
    }

    /// Publishes record their ingest bytes, segments and publish latency in
    /// `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The handles a publish of `stream` records with.
    pub(super) fn stream_meters(&self, stream: &StreamName) -> crate::metrics::StreamMeters {
        match &self.metrics {
            Some(metrics) => metrics.stream(&stream.to_string()),
            None => crate::metrics::StreamMeters::noop(),
        }
    }

    /// Resolves once no publish task is running (after shutdown stopped ingest,
    /// every pipeline has flushed and ended its playlist).
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.active_publishes.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Cancels pending grace timers and segment deletions, and waits until
    /// they are gone. What they would have done is picked up by the next
    /// start ([`Registry::resume`]): an open playlist gets its grace period
    /// again, expired segment files are deleted on schedule.
    pub async fn stop_timers(&self) {
        let mut timers = std::mem::take(&mut *self.lock_timers());
        timers.abort_all();
        while timers.join_next().await.is_some() {}
    }

    /// Takes new stream definitions and publish keys (SIGHUP): new streams
    /// can be published at once; a removed stream or a changed key refuses
    /// new publishes with its old key, while a publish already running goes
    /// on to its end (a removed stream's playlist is served until then).
    /// Returns one line per change, for the log; never a key.
    pub fn reload_streams(&self, specs: Vec<StreamSpec>) -> Vec<String> {
        let mut changes = Vec::new();
        let mut digests = HashMap::new();
        for spec in &specs {
            digests.insert(key_digest(spec.publish_key.expose()), spec.name.clone());
        }
        let mut current = self.by_key_digest.write().unwrap_or_else(|p| p.into_inner());
        let old_key_of = |name: &StreamName| current.iter().find(|(_, n)| *n == name).map(|(d, _)| *d);
        for spec in &specs {
            match old_key_of(&spec.name) {
                None => {
                    changes.push(format!("stream {} added", spec.name));
                    if !self.streams.contains_key(&spec.name) {
                        let stream = Stream::restore(spec.name.clone(), &self.settings);
                        self.streams.insert(spec.name.clone(), Arc::new(stream));
                    }
                }
                Some(old) if old != key_digest(spec.publish_key.expose()) => changes.push(format!(
                    "stream {}: publish key changed (a publish already running goes on)",
                    spec.name
                )),
                Some(_) => {}
            }
        }
        let kept: Vec<StreamName> = specs.iter().map(|s| s.name.clone()).collect();
        let mut removed: Vec<StreamName> = current.values().filter(|n| !kept.contains(n)).cloned().collect();
        removed.sort_by_key(ToString::to_string);
        for name in removed {
            let live = self.get(&name).is_some_and(|s| s.lock().live);
            if live {
                changes.push(format!(
                    "stream {name} removed: new publishes are refused, the running one goes on to its end"
                ));
            } else {
                self.streams.remove(&name);
                changes.push(format!("stream {name} removed"));
            }
        }
        *current = digests;
        self.settings.recordings.set_overrides(&specs);
        changes
    }

    pub fn settings(&self) -> &LiveSettings {
        &self.settings
    }

    /// Picks up where a previous run left off, once the runtime runs: a
    /// playlist left open (its server was stopped or killed mid-publish) gets
    /// the reconnect grace period to see its publisher return, and segments
    /// the previous run would have deleted by now are deleted on schedule.
    pub fn resume(self: &Arc<Self>) {
        let recordings = Arc::clone(self.recordings());
        self.spawn_timer(recordings.maintain(self.cluster.is_some()));
        for stream in self.all() {
            self.resume_stream(&stream);
        }
    }

    /// [`Registry::resume`] for one stream (also for a stream the publish
    /// hook creates at run time, whose directory a previous run may have
    /// left behind).
    fn resume_stream(&self, stream: &Arc<Stream>) {
        let (generation, open, listed, window_secs) = {
            let state = stream.lock();
            let Some(playlist) = state.playlist.get() else {
                return;
            };
            let listed: Vec<String> = playlist.segments().map(|s| s.uri.clone()).collect();
            (state.generation, !playlist.is_ended(), listed, playlist.duration_secs())
        };
        if open {
            info!(stream = %stream.name, "resuming a playlist left open by the previous run");
            self.end_after_grace_timer(stream, generation);
        }
        if self.cluster.is_some() {
            // Another node may be writing this directory now: leftovers are
            // deleted by whoever takes the stream's lease next.
            return;
        }
        let delay = Duration::from_secs_f64(window_secs + f64::from(self.settings.segment_duration_secs));
        self.delete_unlisted_after(stream, listed, delay);
    }

    /// Deletes, after `delay`, the segments of `stream` (files, or objects
    /// in the bucket) that `listed` does not name: leftovers of a run or a
    /// node that ended without listing them.
    fn delete_unlisted_after(&self, stream: &Stream, listed: Vec<String>, delay: Duration) {
        let recordings = Arc::clone(self.recordings());
        let dir_key = format!("{}/{}", stream.name.app(), stream.name.name());
        if self.settings.storage.local_dir().is_some() {
            let dir = stream.dir().to_path_buf();
            return self.spawn_timer(async move {
                let expired = unlisted_segments(&dir, &listed).await;
                tokio::time::sleep(delay).await;
                for path in expired {
                    let file = path.file_name().and_then(|f| f.to_str()).unwrap_or_default();
                    if !recordings.keeps(&format!("{dir_key}/{file}")).await {
                        remove_segment(&path).await;
                    }
                }
            });
        }
        let storage = self.settings.storage.clone();
        self.spawn_timer(async move {
            let keys = match storage.list(&dir_key).await {
                Ok(keys) => keys,
                Err(error) => {
                    warn!(%error, "listing the stream's objects failed; unlisted segments stay");
                    return;
                }
            };
            let unlisted: Vec<String> = keys
                .into_iter()
                .filter(|key| {
                    let name = key.rsplit('/').next().unwrap_or_default();
                    names::is_segment_file_name(name) && !listed.iter().any(|l| l == name)
                })
                .collect();
            tokio::time::sleep(delay).await;
            for key in unlisted {
                if recordings.keeps(&key).await {
                    continue;
                }
                if let Err(error) = storage.delete(&key).await {
                    debug!(%error, key, "deleting an unlisted segment");
                }
            }
        });
    }

    /// Ends the stream's playlist after the grace period unless a new publish
    /// (a later generation) started meanwhile; at once without a grace period.
    pub(super) async fn end_after_grace(&self, stream: &Arc<Stream>, generation: u64) {
        let grace = self.settings.reconnect_grace;
        match &self.cluster {
            None if grace.is_zero() => stream.end_playlist_if(generation).await,
            _ => self.end_after_grace_timer(stream, generation),
        }
    }

    /// The grace timer: in cluster mode the playlist is ended only under
    /// the stream's lease, from what storage holds.
    fn end_after_grace_timer(&self, stream: &Arc<Stream>, generation: u64) {
        let grace = self.settings.reconnect_grace;
        let stream = Arc::clone(stream);
        match &self.cluster {
            None => self.spawn_timer(end_after(grace, stream, generation)),
            Some(leases) => {
                let leases = Arc::clone(leases);
                let settings = self.settings.clone();
                self.spawn_timer(async move {
                    tokio::time::sleep(grace).await;
                    super::cluster::end_under_lease(&settings, &leases, &stream, generation).await;
                });
            }
        }
    }

    /// Deletes, after the RFC 8216 window, the segment files of `stream`
    /// its restored playlist does not list (cluster mode, a new lease holder
    /// cleaning up after a node that died).
    pub(super) fn delete_unlisted_later(&self, stream: &Arc<Stream>) {
        let Some((listed, window_secs)) = stream.lock().playlist.get().map(|p| {
            (
                p.segments().map(|s| s.uri.clone()).collect::<Vec<_>>(),
                p.duration_secs(),
            )
        }) else {
            return;
        };
        let delay = Duration::from_secs_f64(window_secs + f64::from(self.settings.segment_duration_secs));
        self.delete_unlisted_after(stream, listed, delay);
    }

    /// Deletes a segment (its storage key) after `delay` (RFC 8216 6.2.2:
    /// it stays fetchable for its duration plus the playlist's).
    pub(super) fn delete_after(&self, key: String, delay: Duration) {
        let storage = self.settings.storage.clone();
        let recordings = Arc::clone(self.recordings());
        self.spawn_timer(async move {
            tokio::time::sleep(delay).await;
            if recordings.keeps(&key).await {
                return;
            }
            if let Err(error) = storage.delete(&key).await {
                warn!(%error, "deleting an expired segment failed");
            }
        });
    }

    fn spawn_timer(&self, timer: impl Future<Output = ()> + Send + 'static) {
        let mut timers = self.lock_timers();
        // Reap the finished ones, so the set holds only pending timers.
        while timers.try_join_next().is_some() {}
        timers.spawn(timer);
    }

    fn lock_timers(&self) -> MutexGuard<'_, JoinSet<()>> {
        // A panic while holding this lock leaves a usable set behind.
        self.timers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn kms(&self) -> &Arc<dyn Kms> {
        &self.kms
    }

    /// The stream, cloned out of the map so no map guard is held by the caller.
    pub fn get(&self, name: &StreamName) -> Option<Arc<Stream>> {
        self.streams.get(name).map(|entry| Arc::clone(entry.value()))
    }

    /// Every configured stream, sorted by name.
    pub fn all(&self) -> Vec<Arc<Stream>> {
        let mut all: Vec<_> = self.streams.iter().map(|entry| Arc::clone(entry.value())).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}

async fn end_after(grace: Duration, stream: Arc<Stream>, generation: u64) {
    tokio::time::sleep(grace).await;
    stream.end_playlist_if(generation).await;
}

fn key_digest(key: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, key).as_ref());
    out
}

impl Registry {
    /// When `stream` is live on this node: takes over from its publisher if
    /// it has sent no media for `takeover_idle` (asks it to stop, waits for
    /// it to store what it accepted), otherwise refuses.
    async fn take_over_if_quiet(&self, stream: &Stream) -> Result<(), PublishRefused> {
        let control = {
            let state = stream.lock();
            if !state.live {
                return Ok(());
            }
            state.control.clone().ok_or(PublishRefused::AlreadyLive)?
        };
        let quiet = control.quiet_for(std::time::Instant::now());
        match self.settings.takeover_idle {
            Some(idle) if quiet >= idle => {}
            _ => return Err(PublishRefused::AlreadyLive),
        }
        info!(
            stream = %stream.name,
            quiet_ms = quiet.as_millis() as u64,
            "a new publish takes over from a publisher that sent no media for takeover_idle_secs; closing the old connection"
        );
        control.stop(Stop::TakenOver);
        tokio::time::timeout(TAKEOVER_WAIT, control.finished())
            .await
            .map_err(|_| PublishRefused::AlreadyLive)
    }

    /// Marks `stream` live for a new publish and continues its playlist
    /// (`stored`: the one storage holds, in cluster mode).
    fn start_publish(
        &self,
        stream: &Stream,
        control: &Arc<PublishControl>,
        stored: Option<MediaPlaylist>,
        publish_id: &str,
    ) -> Result<crate::timeline::Continuation, PublishRefused> {
        let mut state = stream.lock();
        if state.live {
            return Err(PublishRefused::AlreadyLive);
        }
        // Another node (or a previous run) got further: continue from there.
        // Never back: storage may still lack this node's last uploads.
        if let Some(stored) = stored
            && state
                .playlist
                .get()
                .is_none_or(|p| stored.next_sequence() > p.next_sequence())
        {
            state.playlist.set(Some(stored));
        }
        if state.playlist.get().is_some_and(|p| !p.is_ended()) {
            info!(
                stream = %stream.name,
                "publisher returned within the reconnect grace period: the playlist continues after a discontinuity"
            );
        }
        state.live = true;
        state.generation += 1;
        state.control = Some(Arc::clone(control));
        state.info = StreamInfo {
            live: true,
            started_unix_ms: Some(crate::clock::now_unix_ms()),
            ..StreamInfo::default()
        };
        let (playlist, continuation) = continue_playlist(
            state.playlist.get(),
            self.settings.segment_duration_secs,
            self.settings.playlist_window,
            self.settings.dvr_window_secs,
        );
        state.playlist.set(Some(playlist));
        let recordings = &self.settings.recordings;
        recordings.join_or_start(
            &mut state.recording,
            &stream.name,
            publish_id,
            self.settings.segment_duration_secs,
        );
        Ok(continuation)
    }

    /// Cluster mode: the stream's lease and its keeper. `Ok(None)` on a
    /// single node.
    async fn lease_for(
        &self,
        stream: &Arc<Stream>,
        publish_id: &str,
        control: &Arc<PublishControl>,
    ) -> Result<Option<HeldLease>, PublishRefused> {
        let Some(leases) = &self.cluster else {
            return Ok(None);
        };
        let (holder, sent_at) = super::cluster::acquire(leases, stream, publish_id).await?;
        Ok(Some(super::cluster::keep(leases, stream, holder, sent_at, control)))
    }
}

#[async_trait::async_trait]
impl PublishAuthorizer for Arc<Registry> {
    async fn authorize(
        &self,
        app: &str,
        stream_key: &str,
        query: Option<&str>,
        peer: std::net::SocketAddr,
    ) -> Result<PublishGrant, PublishRefused> {
        let stream = self.admit(app, stream_key, query, peer).await?;
        // Without randomness the server cannot name segments safely.
        let publish_id = names::random_publish_id().map_err(|_| {
            error!(stream = %stream.name, "publish refused: the system's random number generator failed");
            PublishRefused::Unavailable
        })?;
        self.take_over_if_quiet(&stream).await?;
        let control = Arc::new(PublishControl::new(std::time::Instant::now()));
        let lease = self.lease_for(&stream, &publish_id, &control).await?;
        // Read under the lease in cluster mode: another node may have written it.
        let stored = self.stored_playlist(&stream).await;
        let continuation = match self.start_publish(&stream, &control, stored, &publish_id) {
            Ok(continuation) => continuation,
            Err(refused) => {
                if let Some(lease) = lease {
                    lease.release().await;
                }
                return Err(refused);
            }
        };
        if lease.is_some() {
            self.delete_unlisted_later(&stream);
        }
        let (tx, rx) = mpsc::channel(MEDIA_CHANNEL_CAPACITY);
        let span = info_span!("publish", stream = %stream.name);
        self.event(
            "stream.published",
            &stream.name,
            serde_json::json!({ "publish_id": publish_id, "client": peer.to_string() }),
        );
        let publish = Publish::new(Arc::clone(self), Arc::clone(&stream), publish_id, continuation);
        self.active_publishes.fetch_add(1, Ordering::AcqRel);
        let registry = Arc::clone(self);
        tokio::spawn(
            async move {
                publish.run(rx, Arc::clone(&control)).await;
                if let Some(lease) = lease {
                    lease.release().await;
                }
                control.finish();
                if registry.active_publishes.fetch_sub(1, Ordering::AcqRel) == 1 {
                    registry.idle.notify_waiters();
                }
            }
            .instrument(span),
        );
        info!(stream = %stream.name, %peer, "publish accepted");
        Ok(PublishGrant {
            stream: stream.name.to_string(),
            media: tx,
        })
    }
}
