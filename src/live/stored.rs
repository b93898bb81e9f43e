//! The playlist and segments as storage holds them: reading a stored
//! playlist back (a restart, a publish continuing another node's), and the
//! segment files nothing lists any more.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::{debug, warn};

use super::LiveSettings;
use super::stream::Stream;
use crate::hls::{MediaPlaylist, parse_media_playlist};
use crate::names;
use crate::storage;

/// The live playlist's file name, in the stream's directory.
pub(super) const PLAYLIST_FILE: &str = "index.m3u8";

/// The stream's playlist as storage holds it (the local directory or the
/// bucket); `None` when there is none or it cannot be read in time (logged:
/// the publish then continues from memory).
pub(super) async fn read_stored_playlist(stream: &Stream, settings: &LiveSettings) -> Option<MediaPlaylist> {
    const READ_TIMEOUT: Duration = Duration::from_secs(3);
    let key = storage::playlist_key(stream.name.app(), stream.name.name());
    let text = match tokio::time::timeout(READ_TIMEOUT, settings.storage.get(&key)).await {
        Ok(Ok(bytes)) => bytes?,
        Ok(Err(error)) => {
            warn!(stream = %stream.name, %error, "cannot read the stored playlist; continuing from memory");
            return None;
        }
        Err(_) => {
            warn!(stream = %stream.name, "no stored playlist within 3 s; continuing from memory");
            return None;
        }
    };
    parse_playlist(&String::from_utf8_lossy(&text), &key, settings)
}

/// Reads a stream's playlist as the previous run left it, or `None` when
/// there is none (or it cannot be read: then the stream starts afresh at
/// sequence 0, which is logged, since players may see numbers reused).
pub(super) fn restore_playlist(dir: &Path, settings: &LiveSettings) -> Option<MediaPlaylist> {
    let path = dir.join(PLAYLIST_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => {
            warn!(path = %path.display(), %error, "cannot read the previous playlist; starting afresh");
            return None;
        }
    };
    parse_playlist(&text, &path.display().to_string(), settings)
}

/// A stored playlist as this server's live playlist (same target duration
/// and window), or `None` when it does not parse (logged with `source`).
fn parse_playlist(text: &str, source: &str, settings: &LiveSettings) -> Option<MediaPlaylist> {
    let parsed = match parse_media_playlist(text) {
        Ok(parsed) => parsed,
        Err(error) => {
            warn!(path = source, %error, "cannot parse the previous playlist; starting afresh");
            return None;
        }
    };
    let mut playlist = MediaPlaylist::live(
        settings.segment_duration_secs,
        settings.playlist_window,
        parsed.media_sequence,
        parsed.discontinuity_sequence,
    )
    .with_dvr_window_secs(settings.dvr_window_secs);
    for segment in parsed.segments {
        playlist.push(segment);
    }
    if parsed.ended {
        playlist.end();
    }
    Some(playlist)
}

/// Segment files in a stream's directory that `listed` does not name: those
/// a previous run removed from its window but had not deleted yet, and the
/// partial (ciphertext) files of segments it never finished.
pub(super) async fn unlisted_segments(dir: &Path, listed: &[String]) -> Vec<PathBuf> {
    let mut unlisted = Vec::new();
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return unlisted;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let unfinished = storage::unfinished_name(name).is_some_and(names::is_segment_file_name);
        if unfinished || (names::is_segment_file_name(name) && !listed.iter().any(|l| l == name)) {
            unlisted.push(entry.path());
        }
    }
    unlisted
}

pub(super) async fn remove_segment(path: &Path) {
    if let Err(error) = tokio::fs::remove_file(path).await {
        debug!(%error, path = %path.display(), "removing an expired segment");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unlisted_segments_are_the_previous_runs_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        // (file, listed in the restored playlist, expected in the answer)
        let table = [
            ("aaaa-4.ts", false, true),
            ("aaaa-5.ts", false, true),
            ("aaaa-6.ts", true, false),
            ("index.m3u8", false, false),
            // An unfinished segment (ciphertext pieces) of the killed run.
            (".aaaa-7.ts.tmp", false, true),
            ("notes.txt", false, false),
        ];
        for (file, ..) in table {
            std::fs::write(dir.path().join(file), b"x").unwrap();
        }
        let listed: Vec<String> = table.iter().filter(|t| t.1).map(|t| t.0.to_owned()).collect();
        let mut got = unlisted_segments(dir.path(), &listed).await;
        got.sort();
        let mut want: Vec<PathBuf> = table.iter().filter(|t| t.2).map(|t| dir.path().join(t.0)).collect();
        want.sort();
        assert_eq!(got, want);
        // A segment written afterwards (a new publish) is not in an answer
        // already given; a missing directory has no leftovers.
        std::fs::write(dir.path().join("bbbb-7.ts"), b"x").unwrap();
        assert!(!got.contains(&dir.path().join("bbbb-7.ts")));
        assert!(unlisted_segments(&dir.path().join("nope"), &listed).await.is_empty());
    }
}
