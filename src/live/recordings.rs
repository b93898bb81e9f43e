//! Recordings in storage: writing them as they grow, completing them, the
//! index the API reads (every manifest, loaded once at start), retention,
//! and deletion. See [`super::record`] for the layout.
//!
//! Recorded segments are the live segment objects; the live side asks
//! [`Recordings::keeps`] before it deletes a segment that slid out of its
//! window or that a previous run left unlisted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use tracing::{info, warn};

pub use super::record::RECORDINGS_DIR;
use super::record::Recording;
use super::record::{MANIFEST_FILE, complete_stored, segment_files};
pub use super::record::{Manifest, RecordingState, Snapshot};
use crate::names::StreamName;
use crate::storage::{Storage, StorageError};

/// How often completed recordings are checked against `retention_days`.
const RETENTION_SWEEP: Duration = Duration::from_secs(3600);

/// `[record]` as the live side needs it.
#[derive(Debug, Clone, Default)]
pub struct RecordSettings {
    /// Streams without a `record` setting of their own are recorded.
    pub enabled: bool,
    /// How long a completed recording is kept; `None`: until deleted.
    pub retention: Option<Duration>,
    /// `http.public_url` without a trailing `/`, or empty: the base of the
    /// playlist URL a `recording.completed` event carries.
    pub public_base: String,
}

/// Why a recording could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    /// No recording has this id.
    #[error("no such recording")]
    NotFound,
    /// It is still recording: deleting it would remove what a live
    /// publish still lists.
    #[error("the recording is still in progress")]
    InProgress,
    /// Storage refused or did not answer.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Every recording of this server's storage.
pub struct Recordings {
    storage: Storage,
    settings: RecordSettings,
    /// Manifests by recording id: what the API lists.
    index: Mutex<HashMap<String, Manifest>>,
    /// Set once the index was loaded from storage.
    loaded: tokio::sync::OnceCell<()>,
    webhooks: OnceLock<crate::webhooks::Notifier>,
    /// `[[streams]] record` of each configured stream that sets it.
    overrides: Mutex<HashMap<StreamName, bool>>,
}

impl std::fmt::Debug for Recordings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recordings")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Recordings {
    pub fn new(storage: Storage, settings: RecordSettings) -> Self {
        Self {
            storage,
            settings,
            index: Mutex::new(HashMap::new()),
            loaded: tokio::sync::OnceCell::new(),
            webhooks: OnceLock::new(),
            overrides: Mutex::new(HashMap::new()),
        }
    }

    /// Takes the `record` settings of the configured streams (at start and on SIGHUP).
    pub(super) fn set_overrides(&self, specs: &[super::StreamSpec]) {
        let overrides = specs.iter().filter_map(|s| s.record.map(|on| (s.name.clone(), on)));
        *self.overrides.lock().unwrap_or_else(|p| p.into_inner()) = overrides.collect();
    }

    /// A new publish of `stream` goes on in the `open` recording (its
    /// encoder came back within the reconnect grace), or starts one when
    /// the stream is recorded.
    pub(super) fn join_or_start(
        &self,
        open: &mut Option<Recording>,
        stream: &StreamName,
        publish_id: &str,
        target_duration_secs: u32,
    ) {
        if let Some(recording) = open {
            return recording.continue_with(publish_id);
        }
        let overrides = self.overrides.lock().unwrap_or_else(|p| p.into_inner());
        if overrides.get(stream).copied().unwrap_or(self.settings.enabled) {
            let now = crate::clock::now_unix_ms();
            *open = Some(Recording::start(stream, publish_id, target_duration_secs, now));
        }
    }

    pub fn settings(&self) -> &RecordSettings {
        &self.settings
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// `recording.completed` events go to `notifier`.
    pub(super) fn set_webhooks(&self, notifier: crate::webhooks::Notifier) {
        let _ = self.webhooks.set(notifier);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Manifest>> {
        // Plain data: a panic while holding the lock leaves it usable.
        self.index.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores a growing recording: its playlist, then its manifest (so a
    /// listed recording always has a playlist).
    pub(super) async fn store(&self, snapshot: &Snapshot) {
        let manifest = &snapshot.manifest;
        self.lock().insert(manifest.id.clone(), manifest.clone());
        if let Err(error) = self.put(snapshot).await {
            warn!(stream = %manifest.stream, recording = %manifest.id, %error, "storing the recording's playlist failed; it is written again with the next segment");
        }
    }

    async fn put(&self, snapshot: &Snapshot) -> Result<(), StorageError> {
        let manifest = &snapshot.manifest;
        let json = serde_json::to_vec_pretty(manifest).unwrap_or_default();
        self.storage
            .put(&manifest.playlist_key(), &[Bytes::from(snapshot.playlist.clone())])
            .await?;
        self.storage.put(&manifest.manifest_key(), &[Bytes::from(json)]).await
    }

    /// Stores the completed recording (retried a few times: it is written
    /// once) and then sends `recording.completed`.
    pub(super) async fn complete(&self, snapshot: Snapshot) {
        let manifest = &snapshot.manifest;
        self.lock().insert(manifest.id.clone(), manifest.clone());
        let mut backoff = Duration::from_millis(200);
        for attempt in 1..=6 {
            match self.put(&snapshot).await {
                Ok(()) => break,
                Err(error) if attempt == 6 => {
                    warn!(stream = %manifest.stream, recording = %manifest.id, %error, "storing the completed recording failed; gave up");
                    return;
                }
                Err(error) => {
                    warn!(stream = %manifest.stream, recording = %manifest.id, %error, "storing the completed recording failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
            }
        }
        info!(
            stream = %manifest.stream,
            recording = %manifest.id,
            segments = manifest.segments,
            duration_secs = manifest.duration_secs,
            "recording completed"
        );
        if let Some(webhooks) = self.webhooks.get() {
            let data = describe(manifest, &self.settings.public_base);
            webhooks.notify("recording.completed", &manifest.stream, data);
        }
    }
}

/// A recording as the API and the webhook describe it; `base` prefixes
/// its playlist URL (empty: a root-relative URL).
pub fn describe(m: &Manifest, base: &str) -> serde_json::Value {
    serde_json::json!({
        "id": m.id,
        "stream": m.stream,
        "state": m.state,
        "publish_ids": m.publish_ids,
        "started_unix_ms": m.started_unix_ms,
        "ended_unix_ms": m.ended_unix_ms,
        "duration_secs": m.duration_secs,
        "bytes": m.bytes,
        "segments": m.segments,
        "encryption": m.encryption,
        "playlist_url": format!("{base}{}", m.playlist_path()),
    })
}

impl Recordings {
    /// Whether the segment object `key` (`{app}/{name}/{file}`) belongs to a
    /// recording and so must not be deleted by the live side.
    pub(super) async fn keeps(&self, key: &str) -> bool {
        self.ensure_loaded().await;
        let Some((stream, file)) = key.rsplit_once('/') else {
            return false;
        };
        self.lock()
            .values()
            .any(|m| m.stream == stream && m.holds_segment(file))
    }

    /// Every recording, or those of `stream` (`app/name`), oldest first.
    pub async fn list(&self, stream: Option<&str>) -> Vec<Manifest> {
        self.ensure_loaded().await;
        let mut all: Vec<Manifest> = self
            .lock()
            .values()
            .filter(|m| stream.is_none_or(|s| m.stream == s))
            .cloned()
            .collect();
        all.sort_by(|a, b| (a.started_unix_ms, &a.id).cmp(&(b.started_unix_ms, &b.id)));
        all
    }

    pub async fn get(&self, id: &str) -> Option<Manifest> {
        self.ensure_loaded().await;
        self.lock().get(id).cloned()
    }

    /// Deletes a completed recording: its manifest first (it is no longer
    /// listed), then its segments and its playlist.
    pub async fn delete(&self, id: &str) -> Result<Manifest, DeleteError> {
        let manifest = self.get(id).await.ok_or(DeleteError::NotFound)?;
        if manifest.state == RecordingState::Recording {
            return Err(DeleteError::InProgress);
        }
        let playlist = self.storage.get(&manifest.playlist_key()).await?;
        self.storage.delete(&manifest.manifest_key()).await?;
        self.lock().remove(id);
        if let Some(playlist) = playlist {
            let text = String::from_utf8_lossy(&playlist);
            for file in segment_files(&text) {
                self.storage.delete(&format!("{}/{file}", manifest.stream)).await?;
            }
        }
        self.storage.delete(&manifest.playlist_key()).await?;
        if let Some(dir) = self.storage.local_dir() {
            // The emptied folder; one that holds anything else stays.
            let _ = tokio::fs::remove_dir(dir.join(manifest.dir_key())).await;
        }
        info!(stream = %manifest.stream, recording = %manifest.id, "recording deleted");
        Ok(manifest)
    }

    /// At start and then hourly: loads the index, completes recordings a
    /// previous run left open (not in cluster mode, where another node may
    /// still be writing them), and deletes those past their retention.
    pub(super) async fn maintain(self: Arc<Self>, cluster: bool) {
        self.ensure_loaded().await;
        if !cluster {
            self.complete_left_open().await;
        }
        loop {
            self.apply_retention().await;
            tokio::time::sleep(RETENTION_SWEEP).await;
        }
    }

    async fn complete_left_open(&self) {
        let open: Vec<Manifest> = self
            .lock()
            .values()
            .filter(|m| m.state == RecordingState::Recording)
            .cloned()
            .collect();
        for manifest in open {
            match self.storage.get(&manifest.playlist_key()).await {
                Ok(Some(text)) => {
                    info!(stream = %manifest.stream, recording = %manifest.id, "completing a recording the previous run left open");
                    let snapshot = complete_stored(manifest, &String::from_utf8_lossy(&text));
                    self.complete(snapshot).await;
                }
                Ok(None) => warn!(recording = %manifest.id, "an open recording without a playlist stays as it is"),
                Err(error) => warn!(recording = %manifest.id, %error, "reading an open recording failed"),
            }
        }
    }

    async fn apply_retention(&self) {
        let Some(retention) = self.settings.retention else {
            return;
        };
        let retention_ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
        let now = crate::clock::now_unix_ms();
        let expired: Vec<String> = self
            .lock()
            .values()
            .filter(|m| {
                m.ended_unix_ms
                    .is_some_and(|end| end.saturating_add(retention_ms) <= now)
            })
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            match self.delete(&id).await {
                Ok(m) => info!(stream = %m.stream, recording = %m.id, "recording past its retention deleted"),
                Err(error) => warn!(recording = %id, %error, "deleting a recording past its retention failed"),
            }
        }
    }

    async fn ensure_loaded(&self) {
        self.loaded
            .get_or_init(|| async {
                let found = self.scan().await;
                let mut index = self.lock();
                for manifest in found {
                    // What this run wrote meanwhile is newer.
                    index.entry(manifest.id.clone()).or_insert(manifest);
                }
            })
            .await;
    }

    /// Every manifest in storage: `{app}/{name}/recordings/{id}/manifest.json`.
    async fn scan(&self) -> Vec<Manifest> {
        let keys = match &self.storage {
            Storage::Local(dir) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || local_manifest_keys(&dir))
                    .await
                    .unwrap_or_default()
            }
            Storage::S3(_) => match self.storage.list("").await {
                Ok(keys) => keys.into_iter().filter(|k| is_manifest_key(k)).collect(),
                Err(error) => {
                    warn!(%error, "listing recordings failed; the API lists only new ones");
                    Vec::new()
                }
            },
        };
        let mut found = Vec::new();
        for key in keys {
            match self.storage.get(&key).await {
                Ok(Some(bytes)) => match serde_json::from_slice::<Manifest>(&bytes) {
                    Ok(manifest) if format!("{}/{MANIFEST_FILE}", manifest.dir_key()) == key => found.push(manifest),
                    _ => warn!(key, "not a recording manifest; skipped"),
                },
                Ok(None) => {}
                Err(error) => warn!(key, %error, "reading a recording manifest failed"),
            }
        }
        found
    }
}

impl super::Stream {
    /// The open recording's key id prefix for `publish_id`'s data keys, or
    /// `publish_id` when the publish is not recorded.
    pub(super) fn key_id_prefix(&self, publish_id: &str) -> String {
        match self.lock().recording.as_ref() {
            Some(recording) => super::record::key_id_prefix(recording.id(), publish_id),
            None => publish_id.to_owned(),
        }
    }
}

fn is_manifest_key(key: &str) -> bool {
    let parts: Vec<&str> = key.split('/').collect();
    matches!(parts.as_slice(), [_, _, dir, _, file] if *dir == RECORDINGS_DIR && *file == MANIFEST_FILE)
}

/// `data_dir/{app}/{name}/recordings/{id}/manifest.json`, as storage keys.
fn local_manifest_keys(root: &std::path::Path) -> Vec<String> {
    let sub_dirs = |dir: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect()
    };
    let mut keys = Vec::new();
    for app in sub_dirs(root) {
        for name in sub_dirs(&root.join(&app)) {
            let recordings = root.join(&app).join(&name).join(RECORDINGS_DIR);
            for id in sub_dirs(&recordings) {
                if recordings.join(&id).join(MANIFEST_FILE).is_file() {
                    keys.push(format!("{app}/{name}/{RECORDINGS_DIR}/{id}/{MANIFEST_FILE}"));
                }
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::SegmentEntry;

    const DAY_MS: u64 = 86_400_000;

    /// A recording of `live/cam` stored as a previous run left it: one
    /// segment file, its playlist and manifest; complete when `ended_unix_ms`.
    async fn stored(storage: &Storage, id: &str, ended_unix_ms: Option<u64>) -> Manifest {
        let stream = StreamName::new("live", "cam").unwrap();
        let at = ended_unix_ms.unwrap_or_else(crate::clock::now_unix_ms) - 1000;
        let mut recording = Recording::start(&stream, id, 2, at);
        let file = format!("{id}-0.ts");
        let entry = SegmentEntry {
            uri: file.clone(),
            duration_secs: 2.0,
            key: None,
            program_date_time_ms: None,
            discontinuity: false,
            sequence: 0,
        };
        let mut snapshot = recording.add(&entry, 32, at + 500);
        if let Some(ended) = ended_unix_ms {
            snapshot = recording.finish(ended).unwrap();
        }
        let writer = Recordings::new(storage.clone(), RecordSettings::default());
        writer.put(&snapshot).await.unwrap();
        storage
            .put(&format!("live/cam/{file}"), &[Bytes::from_static(&[7; 32])])
            .await
            .unwrap();
        snapshot.manifest
    }

    /// At start: the index holds what storage holds, a recording left open
    /// is completed as VOD, one past its retention is deleted with its
    /// segment, a recent one is kept; and the live side keeps recorded
    /// segments only.
    #[tokio::test]
    async fn start_completes_open_recordings_and_applies_retention() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::Local(dir.path().to_owned());
        let now = crate::clock::now_unix_ms();
        stored(&storage, "0000000a", Some(now - 40 * DAY_MS)).await;
        stored(&storage, "0000000b", Some(now - DAY_MS)).await;
        let open = stored(&storage, "0000000c", None).await;
        let recordings = Recordings::new(
            storage.clone(),
            RecordSettings {
                retention: Some(Duration::from_millis(30 * DAY_MS)),
                ..RecordSettings::default()
            },
        );
        assert!(recordings.keeps("live/cam/0000000a-0.ts").await);
        assert!(!recordings.keeps("live/cam/0000000d-0.ts").await);
        assert!(!recordings.keeps("live/other/0000000a-0.ts").await);
        assert_eq!(recordings.list(Some("live/cam")).await.len(), 3);

        recordings.complete_left_open().await;
        recordings.apply_retention().await;

        let ids: Vec<String> = recordings.list(None).await.into_iter().map(|m| m.id).collect();
        assert_eq!(ids, ["0000000b", "0000000c"]);
        assert_eq!(storage.get("live/cam/0000000a-0.ts").await.unwrap(), None);
        assert!(!dir.path().join("live/cam/recordings/0000000a").exists());
        assert!(storage.get("live/cam/0000000b-0.ts").await.unwrap().is_some());
        let completed = recordings.get("0000000c").await.unwrap();
        assert_eq!(completed.state, RecordingState::Complete);
        assert_eq!(completed.ended_unix_ms, Some(open.updated_unix_ms));
        let text = storage.get(&completed.playlist_key()).await.unwrap().unwrap();
        let text = String::from_utf8(text.to_vec()).unwrap();
        assert!(
            text.contains("#EXT-X-PLAYLIST-TYPE:VOD\n") && text.ends_with("#EXT-X-ENDLIST\n"),
            "{text}"
        );

        // A fresh start reads the completed manifest back.
        let again = Recordings::new(storage.clone(), RecordSettings::default());
        assert_eq!(again.get("0000000c").await.unwrap(), completed);
        assert!(matches!(again.delete("nope").await, Err(DeleteError::NotFound)));
    }

    #[tokio::test]
    async fn a_recording_in_progress_is_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::Local(dir.path().to_owned());
        stored(&storage, "0000000c", None).await;
        let recordings = Recordings::new(storage, RecordSettings::default());
        assert!(matches!(
            recordings.delete("0000000c").await,
            Err(DeleteError::InProgress)
        ));
    }

    #[test]
    fn manifest_keys_are_recognized_in_object_listings() {
        assert!(is_manifest_key("live/cam/recordings/0000000a/manifest.json"));
        assert!(!is_manifest_key("live/cam/recordings/0000000a/index.m3u8"));
        assert!(!is_manifest_key("live/cam/0000000a-1.ts"));
        assert!(!is_manifest_key("x/live/cam/recordings/0000000a/manifest.json"));
    }
}
