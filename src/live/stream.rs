//! One configured stream's shared state: the playlist the HTTP side
//! serves and the publish tasks edit, its directory, its recent segments,
//! and the writes that persist its playlist.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tracing::{error, info, warn};

use super::StreamInfo;
use super::stored::{PLAYLIST_FILE, restore_playlist};
use super::{LiveSettings, PublishControl};
use crate::hls::MediaPlaylist;
use crate::names::StreamName;
use crate::storage::{self, Storage};

/// One configured stream: its directory and what the HTTP side reads.
pub struct Stream {
    pub name: StreamName,
    dir: PathBuf,
    /// Where its playlist is written.
    storage: Storage,
    /// Where its recordings go when they complete.
    recordings: Arc<super::Recordings>,
    state: Mutex<StreamState>,
    /// Segments served from memory: on disk, those viewers asked for
    /// lately; with object storage, those this node stored lately.
    recent: super::RecentSegments,
}

/// A stream's shared state. Locked only for short, non-async sections.
#[derive(Default)]
pub(super) struct StreamState {
    /// A publisher is connected (or its pipeline is still flushing).
    pub(super) live: bool,
    /// Counts publishes, so a grace timer can tell whether the publish it
    /// waits on is still the latest one.
    pub(super) generation: u64,
    pub(super) playlist: super::served::ServedPlaylist,
    pub(super) info: StreamInfo,
    /// The running publish's controls (while `live`).
    pub(super) control: Option<Arc<PublishControl>>,
    /// The recording this playlist's publishes go to, until the playlist ends.
    pub(super) recording: Option<super::record::Recording>,
}

impl Stream {
    /// A configured stream with what a previous run left in its directory.
    pub(super) fn restore(name: StreamName, settings: &LiveSettings) -> Stream {
        let dir = settings.data_dir.join(name.app()).join(name.name());
        // Object storage is read at each publish's start instead
        // (`Registry::stored_playlist`), since another node may have written it.
        let playlist = settings
            .storage
            .local_dir()
            .and_then(|_| restore_playlist(&dir, settings));
        Stream {
            name,
            dir,
            storage: settings.storage.clone(),
            recordings: Arc::clone(&settings.recordings),
            state: Mutex::new(StreamState {
                playlist: super::served::ServedPlaylist::new(playlist),
                ..StreamState::default()
            }),
            recent: super::RecentSegments::new(Arc::clone(&settings.segment_memory)),
        }
    }

    /// A stream with nothing restored (when reading its directory failed).
    pub(super) fn fresh(name: StreamName, settings: &LiveSettings) -> Stream {
        let dir = settings.data_dir.join(name.app()).join(name.name());
        Stream {
            name,
            dir,
            storage: settings.storage.clone(),
            recordings: Arc::clone(&settings.recordings),
            state: Mutex::new(StreamState::default()),
            recent: super::RecentSegments::new(Arc::clone(&settings.segment_memory)),
        }
    }

    /// Cluster mode, end of a grace period: takes the playlist storage
    /// holds, unless a publish started here after `generation`. `false`:
    /// leave the playlist alone.
    pub(super) fn replace_playlist_if_idle(&self, generation: u64, stored: Option<MediaPlaylist>) -> bool {
        let mut state = self.lock();
        if state.live || state.generation != generation {
            return false;
        }
        state.playlist.set(stored);
        true
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, StreamState> {
        // A panic while holding this lock leaves plain data behind; keep serving it.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Segments viewers asked for lately (on disk) or this node stored
    /// lately (object storage), by file name.
    pub fn recent(&self) -> &super::RecentSegments {
        &self.recent
    }

    /// The directory holding this stream's segments and playlist.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The canonical playlist (no credential in its key URIs), or `None`
    /// before the first segment.
    pub fn playlist_text(&self) -> Option<Arc<str>> {
        self.lock().playlist.text()
    }

    pub fn info(&self) -> StreamInfo {
        self.lock().info.clone()
    }

    /// Writes the playlist file. It doubles as the stream's persisted state:
    /// after a restart, [`restore_playlist`] reads it back, so media and
    /// discontinuity sequence numbers continue where they were.
    /// `text` is the canonical text viewers are served too
    /// ([`super::served::ServedPlaylist::text`]).
    pub(super) async fn write_playlist(&self, text: Arc<str>) {
        if self.storage.local_dir().is_none() {
            let key = storage::playlist_key(self.name.app(), self.name.name());
            if let Err(error) = self.storage.put(&key, &[playlist_body(&text)]).await {
                error!(stream = %self.name, %error, "writing the playlist failed");
            }
            return;
        }
        let path = self.dir.join(PLAYLIST_FILE);
        let result = tokio::task::spawn_blocking(move || storage::replace_atomic(&path, text.as_bytes())).await;
        match result {
            // Closing the old playlist may stall (see `replace_atomic`):
            // done in the background, after the new one is in place.
            Ok(Ok(replaced)) => {
                if let Some(replaced) = replaced {
                    drop(tokio::task::spawn_blocking(move || drop(replaced)));
                }
            }
            Ok(Err(error)) => error!(stream = %self.name, %error, "writing the playlist failed"),
            Err(error) => error!(stream = %self.name, %error, "playlist writer task failed"),
        }
    }

    /// Ends the playlist with `#EXT-X-ENDLIST` if no publish started after
    /// `generation`.
    pub(super) async fn end_playlist_if(&self, generation: u64) {
        let (text, recording) = {
            let mut state = self.lock();
            if state.live || state.generation != generation {
                return;
            }
            let state = &mut *state;
            match state.playlist.edit() {
                Some(playlist) if playlist.is_empty() => {
                    // A publish that produced no segment leaves nothing behind.
                    state.playlist.set(None);
                    state.recording = None;
                    return;
                }
                Some(playlist) if !playlist.is_ended() => playlist.end(),
                _ => return,
            }
            // Rendered once, for storage and for every viewer after.
            let Some(text) = state.playlist.text() else {
                return;
            };
            (text, state.recording.take())
        };
        info!(stream = %self.name, "playlist ended");
        // An ended stream holds no segment memory.
        self.recent.clear();
        if self.storage.local_dir().is_some() {
            self.write_playlist(text).await;
        } else {
            self.put_final_playlist(text, generation).await;
        }
        if let Some(done) = recording.and_then(|r| r.finish(crate::clock::now_unix_ms())) {
            self.recordings.complete(done).await;
        }
    }

    /// Object storage: PUTs the ended playlist, retrying with backoff for
    /// up to [`FINAL_PLAYLIST_RETRY`] while no newer publish started (whose
    /// own playlist must not be overwritten with this one).
    async fn put_final_playlist(&self, text: Arc<str>, generation: u64) {
        let key = storage::playlist_key(self.name.app(), self.name.name());
        let body = playlist_body(&text);
        let until = tokio::time::Instant::now() + FINAL_PLAYLIST_RETRY;
        let mut backoff = Duration::from_millis(200);
        loop {
            let Err(error) = self.storage.put(&key, std::slice::from_ref(&body)).await else {
                return;
            };
            let current = {
                let state = self.lock();
                !state.live && state.generation == generation
            };
            if !current || tokio::time::Instant::now() + backoff > until {
                error!(stream = %self.name, %error, "writing the ended playlist failed; gave up");
                return;
            }
            warn!(stream = %self.name, %error, retry_in = ?backoff, "writing the ended playlist failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

/// The playlist text as a body for storage, not copied: the `Bytes` holds
/// on to the `Arc` viewers are served from.
pub(super) fn playlist_body(text: &Arc<str>) -> bytes::Bytes {
    struct Text(Arc<str>);
    impl AsRef<[u8]> for Text {
        fn as_ref(&self) -> &[u8] {
            self.0.as_bytes()
        }
    }
    bytes::Bytes::from_owner(Text(Arc::clone(text)))
}

/// How long the ended playlist is retried when object storage is down:
/// bounded, since a shutdown waits for it.
const FINAL_PLAYLIST_RETRY: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_storage_body_is_the_served_text_not_a_copy() {
        let text: Arc<str> = Arc::from("#EXTM3U\n#EXT-X-VERSION:3\n");
        let body = playlist_body(&text);
        assert_eq!(&body[..], text.as_bytes());
        assert_eq!(body.as_ptr(), text.as_ptr());
    }
}
