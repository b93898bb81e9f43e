//! A stream's recording while it grows: the live segments it keeps, its
//! `EXT-X-PLAYLIST-TYPE:EVENT` playlist and its manifest. Nothing here does
//! IO; [`super::recordings::Recordings`] stores what this returns.
//!
//! Layout, through the configured storage (a directory or a bucket):
//! `{app}/{name}/recordings/{id}/index.m3u8` and `.../manifest.json`. The
//! segments are not copied: a recording keeps the live segment objects
//! (`{app}/{name}/{publish_id}-{seq}.ts`, ciphertext) from being deleted and
//! its playlist refers to them as `../../{publish_id}-{seq}.ts` (RFC 3986
//! relative references, resolved against the playlist's URL), with the same
//! key tags (wrapped keys) as the live playlist: nothing is re-encrypted.

use serde::{Deserialize, Serialize};

use crate::hls::{MediaPlaylist, SegmentEntry};
use crate::names::StreamName;

/// Folder of a stream's recordings, under `{app}/{name}/`.
pub const RECORDINGS_DIR: &str = "recordings";
/// A recording's playlist file.
pub const PLAYLIST_FILE: &str = "index.m3u8";
/// A recording's manifest file.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The `encryption` the manifest names: whole segments, AES-128-CBC.
const ENCRYPTION: &str = "AES-128";

/// Whether a recording still grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordingState {
    /// Its publish (or the reconnect grace after it) runs: an EVENT playlist.
    Recording,
    /// Ended: a VOD playlist with `EXT-X-ENDLIST`.
    Complete,
}

/// What the API lists and what survives restarts: one small JSON object
/// per recording, written after its playlist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The first publish's id: unique per stream, random.
    pub id: String,
    /// `app/name`.
    pub stream: String,
    /// The publishes it holds: more than one when the encoder reconnected
    /// within the reconnect grace period.
    pub publish_ids: Vec<String>,
    pub started_unix_ms: u64,
    /// When it was completed; `None` while recording.
    pub ended_unix_ms: Option<u64>,
    /// When its last segment was listed.
    pub updated_unix_ms: u64,
    /// Sum of the EXTINF values of its playlist.
    pub duration_secs: f64,
    /// Ciphertext bytes of its segments.
    pub bytes: u64,
    pub segments: u64,
    /// `AES-128`: each segment encrypted whole (RFC 8216 4.3.2.4).
    pub encryption: String,
    pub state: RecordingState,
}

impl Manifest {
    /// `{app}/{name}/recordings/{id}`: the storage folder of its playlist
    /// and manifest.
    pub fn dir_key(&self) -> String {
        format!("{}/{RECORDINGS_DIR}/{}", self.stream, self.id)
    }

    pub fn playlist_key(&self) -> String {
        format!("{}/{PLAYLIST_FILE}", self.dir_key())
    }

    pub fn manifest_key(&self) -> String {
        format!("{}/{MANIFEST_FILE}", self.dir_key())
    }

    /// The playlist's URL path: the storage layout, under the server's root.
    pub fn playlist_path(&self) -> String {
        format!("/{}", self.playlist_key())
    }

    /// Whether `file` (`{publish_id}-{seq}.ts`) is one of its segments.
    pub fn holds_segment(&self, file: &str) -> bool {
        file.rsplit_once('-')
            .is_some_and(|(publish_id, _)| self.publish_ids.iter().any(|p| p == publish_id))
    }
}

/// The key id prefix of `publish_id`'s data keys in recording `recording_id`:
/// `{recording_id}_{publish_id}`, so that a key endpoint can tell, without
/// any state, whether a key belongs to a recording (see
/// [`crate::auth::recording::allows_key`]). Publish ids never hold `_`.
pub fn key_id_prefix(recording_id: &str, publish_id: &str) -> String {
    format!("{recording_id}_{publish_id}")
}

/// The open recording of a stream, in its shared state.
#[derive(Debug)]
pub(super) struct Recording {
    manifest: Manifest,
    playlist: MediaPlaylist,
}

/// A recording as it is to be stored: its playlist text and manifest.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub manifest: Manifest,
    pub playlist: String,
}

impl Recording {
    /// A new recording of `stream`, named after its first publish.
    pub(super) fn start(stream: &StreamName, publish_id: &str, target_duration_secs: u32, now_unix_ms: u64) -> Self {
        Self {
            manifest: Manifest {
                id: publish_id.to_owned(),
                stream: stream.to_string(),
                publish_ids: vec![publish_id.to_owned()],
                started_unix_ms: now_unix_ms,
                ended_unix_ms: None,
                updated_unix_ms: now_unix_ms,
                duration_secs: 0.0,
                bytes: 0,
                segments: 0,
                encryption: ENCRYPTION.to_owned(),
                state: RecordingState::Recording,
            },
            playlist: MediaPlaylist::event(target_duration_secs),
        }
    }

    /// The encoder came back within the grace period: its publish goes on
    /// in this recording (the live playlist marks the discontinuity, and its
    /// first segment carries it here too).
    pub(super) fn continue_with(&mut self, publish_id: &str) {
        self.manifest.publish_ids.push(publish_id.to_owned());
    }

    pub(super) fn id(&self) -> &str {
        &self.manifest.id
    }

    /// Lists a segment the live playlist just listed (`entry`, as listed
    /// there) holding `bytes` of ciphertext.
    pub(super) fn add(&mut self, entry: &SegmentEntry, bytes: u64, now_unix_ms: u64) -> Snapshot {
        let mut entry = entry.clone();
        entry.uri = format!("../../{}", entry.uri);
        self.playlist.push(entry);
        let m = &mut self.manifest;
        m.segments += 1;
        m.bytes += bytes;
        m.duration_secs = self.playlist.duration_secs();
        m.updated_unix_ms = now_unix_ms;
        Snapshot {
            manifest: m.clone(),
            playlist: self.playlist.render(None),
        }
    }

    /// The complete recording: a VOD playlist, or `None` when no segment was
    /// ever listed (nothing worth keeping).
    pub(super) fn finish(self, now_unix_ms: u64) -> Option<Snapshot> {
        if self.playlist.is_empty() {
            return None;
        }
        let mut manifest = self.manifest;
        manifest.state = RecordingState::Complete;
        manifest.ended_unix_ms = Some(now_unix_ms);
        Some(Snapshot {
            manifest,
            playlist: self.playlist.into_vod().render(None),
        })
    }
}

/// A recording found open at start (its server stopped or died while it
/// grew), completed from what it stored: the EVENT playlist becomes VOD and
/// ends, the manifest is complete as of its last segment.
pub fn complete_stored(mut manifest: Manifest, playlist: &str) -> Snapshot {
    let mut text = playlist.replace("#EXT-X-PLAYLIST-TYPE:EVENT\n", "#EXT-X-PLAYLIST-TYPE:VOD\n");
    if !text.contains("#EXT-X-ENDLIST") {
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str("#EXT-X-ENDLIST\n");
    }
    manifest.state = RecordingState::Complete;
    manifest.ended_unix_ms = Some(manifest.updated_unix_ms);
    Snapshot {
        manifest,
        playlist: text,
    }
}

/// The segment files a stored recording playlist refers to (`../../{file}`).
pub fn segment_files(playlist: &str) -> impl Iterator<Item = &str> {
    playlist
        .lines()
        .filter_map(|line| line.strip_prefix("../../"))
        .filter(|file| crate::names::is_segment_file_name(file))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::KeyTag;

    fn entry(uri: &str, discontinuity: bool) -> SegmentEntry {
        SegmentEntry {
            uri: uri.to_owned(),
            duration_secs: 2.0,
            key: Some(KeyTag {
                uri: "/keys/live/cam/r_p-0?edk=AQID".to_owned(),
                iv: [1; 16],
            }),
            program_date_time_ms: None,
            discontinuity,
            sequence: 7,
        }
    }

    /// Two publishes, one recording: every segment, the discontinuity, the
    /// counts; then VOD; and the same from a stored EVENT playlist.
    #[test]
    fn two_publishes_make_one_recording() {
        let stream = StreamName::new("live", "cam").unwrap();
        let mut r = Recording::start(&stream, "aaaa0001", 2, 1000);
        r.add(&entry("aaaa0001-5.ts", false), 100, 2000);
        r.continue_with("bbbb0002");
        let open = r.add(&entry("bbbb0002-6.ts", true), 50, 3000);
        assert_eq!(open.manifest.state, RecordingState::Recording);
        assert_eq!((open.manifest.segments, open.manifest.bytes), (2, 150));
        assert_eq!(open.manifest.duration_secs, 4.0);
        assert!(open.playlist.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"));
        assert_eq!(open.playlist.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
        let files: Vec<&str> = segment_files(&open.playlist).collect();
        assert_eq!(files, ["aaaa0001-5.ts", "bbbb0002-6.ts"]);
        assert!(open.manifest.holds_segment("bbbb0002-6.ts"));
        assert!(!open.manifest.holds_segment("cccc0003-6.ts"));
        assert_eq!(open.manifest.playlist_key(), "live/cam/recordings/aaaa0001/index.m3u8");

        let from_store = complete_stored(open.manifest.clone(), &open.playlist);
        let done = r.finish(4000).unwrap();
        assert_eq!(done.manifest.ended_unix_ms, Some(4000));
        assert!(done.playlist.ends_with("../../bbbb0002-6.ts\n#EXT-X-ENDLIST\n"));
        assert!(done.playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"));
        assert_eq!(
            from_store.playlist.replace("TARGETDURATION:2", ""),
            done.playlist.replace("TARGETDURATION:2", "")
        );
        assert_eq!(from_store.manifest.ended_unix_ms, Some(3000));
        assert_eq!(from_store.manifest.state, RecordingState::Complete);
    }

    #[test]
    fn a_recording_without_segments_is_not_kept() {
        let stream = StreamName::new("live", "cam").unwrap();
        assert!(Recording::start(&stream, "aaaa0001", 2, 1000).finish(2000).is_none());
    }
}
