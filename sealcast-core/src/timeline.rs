//! Where a sealed segment sits in time: its playlist entry (URI, key tag,
//! `EXT-X-PROGRAM-DATE-TIME`) and, for the segments it pushes out of a live
//! window, the moment each may be deleted.
//!
//! Sans-IO: the caller says when a segment closed (`now_unix_ms`); the
//! timeline never reads a clock. The live server and `sealcast package` both
//! turn [`ClosedSegment`]s into playlist entries here.

use crate::clock::UtcDateTime;
use crate::hls::{KeyTag, MediaPlaylist, SegmentEntry};
use crate::media::CLOCK_90K;
use crate::names::{self, KeyUri, StreamName};
use crate::pipeline::ClosedSegment;

/// One publish's (or one packaged file's) segments on the wall clock.
#[derive(Debug, Clone)]
pub struct Timeline {
    stream: StreamName,
    publish_id: String,
    key_uri_base: String,
    /// Whether entries carry `EXT-X-PROGRAM-DATE-TIME` (live) or not (VOD).
    dated: bool,
    /// Wall clock (Unix ms) and DTS of the first segment: program date-times
    /// follow the media timeline from there, not the arrival times.
    anchor: Option<(u64, u64)>,
    /// Wall-clock end of the previous publish's last segment: program
    /// date-times never go backwards, even after an encoder sent faster
    /// than real time.
    not_before_unix_ms: u64,
}

/// A removed segment's file and when it may go.
#[derive(Debug, Clone, PartialEq)]
pub struct Expiry {
    /// The segment's URI in the playlist (its file name).
    pub uri: String,
    /// Milliseconds from the moment the segment left the playlist.
    pub after_ms: u64,
}

/// What listing one segment did to the playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    /// Segments that slid out of the window, with their deletion delays.
    pub expired: Vec<Expiry>,
}

impl Timeline {
    /// A live publish: entries are dated, starting no earlier than
    /// `not_before_unix_ms` (the end of the stream's previous publish, or 0).
    pub fn live(stream: StreamName, publish_id: String, key_uri_base: String, not_before_unix_ms: u64) -> Self {
        Self {
            stream,
            publish_id,
            key_uri_base,
            dated: true,
            anchor: None,
            not_before_unix_ms,
        }
    }

    /// A VOD package: no program date-times.
    pub fn vod(stream: StreamName, publish_id: String, key_uri_base: String) -> Self {
        Self {
            stream,
            publish_id,
            key_uri_base,
            dated: false,
            anchor: None,
            not_before_unix_ms: 0,
        }
    }

    /// The playlist entry of `segment`, which closed at `now_unix_ms`.
    ///
    /// The first segment is dated its duration before it closed (it began
    /// then); later ones follow the media clock from there, so a late or
    /// bursty network does not bend the timeline (RFC 8216 4.3.2.6).
    pub fn entry(&mut self, segment: &ClosedSegment, now_unix_ms: u64) -> SegmentEntry {
        let program_date_time_ms = self.dated.then(|| {
            let (anchor_ms, anchor_dts) = *self.anchor.get_or_insert_with(|| {
                let began = now_unix_ms.saturating_sub((segment.duration_secs * 1000.0) as u64);
                (began.max(self.not_before_unix_ms), segment.start_dts_90k)
            });
            anchor_ms + segment.start_dts_90k.saturating_sub(anchor_dts) * 1000 / CLOCK_90K
        });
        SegmentEntry {
            uri: names::segment_file_name(&self.publish_id, segment.sequence),
            duration_secs: segment.duration_secs,
            key: Some(KeyTag {
                uri: KeyUri::render(&self.stream, &segment.key.id, &segment.key.wrapped, &self.key_uri_base),
                iv: segment.key.iv,
            }),
            // Out of RFC 3339's four-digit years: leave the tag out.
            program_date_time_ms: program_date_time_ms
                .and_then(|ms| i64::try_from(ms).ok())
                .filter(|&ms| UtcDateTime::from_unix_ms(ms).is_some()),
            discontinuity: segment.discontinuity,
            sequence: segment.sequence,
        }
    }

    /// Lists `segment` (closed at `now_unix_ms`) in `playlist`.
    ///
    /// RFC 8216 6.2.2: a segment removed from a live playlist stays
    /// available for its duration plus the playlist's; keys are stateless,
    /// so that covers its key too.
    pub fn list(&mut self, segment: &ClosedSegment, now_unix_ms: u64, playlist: &mut MediaPlaylist) -> Listed {
        let removed = playlist.push(self.entry(segment, now_unix_ms));
        let window_ms = (playlist.duration_secs() * 1000.0).round() as u64;
        let expired = removed
            .into_iter()
            .map(|old| Expiry {
                after_ms: (old.duration_secs * 1000.0).round() as u64 + window_ms,
                uri: old.uri,
            })
            .collect();
        Listed { expired }
    }
}

/// Where a new publish starts numbering, and whether it follows an earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Continuation {
    pub first_sequence: u64,
    pub discontinuity: bool,
    /// Wall-clock end of the previous publish's last segment (0 for none).
    pub previous_end_unix_ms: u64,
}

/// The playlist for a new publish. A republish continues the stream's last
/// playlist rather than starting over: media sequence numbers keep growing
/// and the new segments follow an `EXT-X-DISCONTINUITY` (RFC 8216 6.2.1,
/// 6.2.2), so a player or CDN never sees a sequence number reused.
/// `dvr_window_secs` is [`MediaPlaylist::with_dvr_window_secs`]'s (0: off).
pub fn continue_playlist(
    previous: Option<&MediaPlaylist>,
    target_duration_secs: u32,
    window: usize,
    dvr_window_secs: u32,
) -> (MediaPlaylist, Continuation) {
    let Some(previous) = previous else {
        let first = Continuation {
            first_sequence: 0,
            discontinuity: false,
            previous_end_unix_ms: 0,
        };
        let playlist = MediaPlaylist::live(target_duration_secs, window, 0, 0).with_dvr_window_secs(dvr_window_secs);
        return (playlist, first);
    };
    // Re-list the old segments in a playlist that is not ended; same target
    // and window, so nothing slides out while doing so.
    let mut playlist = MediaPlaylist::live(
        target_duration_secs,
        window,
        previous.media_sequence(),
        previous.discontinuity_sequence(),
    )
    .with_dvr_window_secs(dvr_window_secs);
    for segment in previous.segments() {
        playlist.push(segment.clone());
    }
    let previous_end_unix_ms = previous
        .segments()
        .next_back()
        .and_then(|last| {
            let start = u64::try_from(last.program_date_time_ms?).ok()?;
            Some(start.saturating_add((last.duration_secs * 1000.0) as u64))
        })
        .unwrap_or(0);
    let next = Continuation {
        first_sequence: playlist.next_sequence(),
        discontinuity: !playlist.is_empty(),
        previous_end_unix_ms,
    };
    (playlist, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{KeyId, WrappedKey};
    use crate::pipeline::KeyInfo;

    fn segment(sequence: u64, start_dts_90k: u64, duration_secs: f64) -> ClosedSegment {
        ClosedSegment {
            sequence,
            duration_secs,
            start_dts_90k,
            pieces: Vec::new(),
            key: KeyInfo {
                id: KeyId::new("k0").unwrap(),
                wrapped: std::sync::Arc::new(WrappedKey::from_bytes(vec![7; 16])),
                iv: [sequence as u8; 16],
            },
            discontinuity: false,
            forced_cut: false,
            video_frames: 0,
            audio_frames: 0,
        }
    }

    fn stream() -> StreamName {
        StreamName::parse("live/demo").unwrap()
    }

    #[test]
    fn program_date_times_follow_the_media_clock_from_the_first_segment() {
        let mut timeline = Timeline::live(stream(), "abcd".into(), String::new(), 0);
        // (sequence, start DTS, duration, closed at, expected PDT)
        let table = [
            (0, 0, 2.0, 10_000, 8_000),
            // Arrived late: still dated by its DTS.
            (1, 180_000, 2.0, 15_000, 10_000),
            // Arrived early (a burst): likewise.
            (2, 360_000, 2.0, 11_000, 12_000),
        ];
        for (sequence, dts, duration, now, want) in table {
            let entry = timeline.entry(&segment(sequence, dts, duration), now);
            assert_eq!(entry.program_date_time_ms, Some(want), "seq {sequence}");
            assert_eq!(entry.uri, format!("abcd-{sequence}.ts"));
            assert_eq!(entry.sequence, sequence);
        }
    }

    #[test]
    fn a_republish_never_dates_before_the_previous_end() {
        let mut timeline = Timeline::live(stream(), "abcd".into(), String::new(), 9_500);
        let entry = timeline.entry(&segment(5, 0, 2.0), 10_000);
        assert_eq!(entry.program_date_time_ms, Some(9_500));
    }

    #[test]
    fn vod_entries_are_not_dated_and_key_uris_carry_the_wrapped_key() {
        let mut timeline = Timeline::vod(stream(), "abcd".into(), "https://keys.example".into());
        let entry = timeline.entry(&segment(3, 0, 4.0), 10_000);
        assert_eq!(entry.program_date_time_ms, None);
        let key = entry.key.unwrap();
        assert!(
            key.uri.starts_with("https://keys.example/keys/live/demo/k0?edk="),
            "{}",
            key.uri
        );
        assert_eq!(key.iv, [3; 16]);
    }

    #[test]
    fn expired_segments_stay_for_their_duration_plus_the_window() {
        // Target 2 s, window of 3 segments.
        let mut playlist = MediaPlaylist::live(2, 3, 0, 0);
        let mut timeline = Timeline::live(stream(), "abcd".into(), String::new(), 0);
        for sequence in 0..3 {
            let listed = timeline.list(&segment(sequence, sequence * 180_000, 2.0), 10_000, &mut playlist);
            assert!(listed.expired.is_empty());
        }
        let listed = timeline.list(&segment(3, 540_000, 2.0), 12_000, &mut playlist);
        // Window after the push: 3 × 2 s; the removed segment lasted 2 s.
        assert_eq!(
            listed.expired,
            vec![Expiry {
                uri: "abcd-0.ts".into(),
                after_ms: 2_000 + 6_000,
            }]
        );
        assert_eq!(playlist.media_sequence(), 1);
    }

    #[test]
    fn a_republish_continues_numbering_after_a_discontinuity() {
        let (fresh, first) = continue_playlist(None, 2, 3, 0);
        assert!(fresh.is_empty());
        assert_eq!((first.first_sequence, first.discontinuity), (0, false));

        let mut previous = MediaPlaylist::live(2, 3, 0, 0);
        let mut timeline = Timeline::live(stream(), "abcd".into(), String::new(), 0);
        for sequence in 0..4 {
            timeline.list(&segment(sequence, sequence * 180_000, 2.0), 20_000, &mut previous);
        }
        previous.end();
        let (playlist, next) = continue_playlist(Some(&previous), 2, 3, 0);
        assert!(!playlist.is_ended());
        assert_eq!(playlist.media_sequence(), previous.media_sequence());
        assert_eq!(next.first_sequence, 4);
        assert!(next.discontinuity);
        // The last segment began at 18 s + 3 × 2 s and lasted 2 s.
        assert_eq!(next.previous_end_unix_ms, 18_000 + 6_000 + 2_000);
    }

    #[test]
    fn a_dvr_window_keeps_its_seconds_listed_and_the_rfc_rules() {
        // Target 2 s, window of 3 segments, DVR window 20 s; a key every
        // 3 segments and a discontinuity at sequence 12.
        let mut playlist = MediaPlaylist::live(2, 3, 0, 0).with_dvr_window_secs(20);
        let mut timeline = Timeline::live(stream(), "abcd".into(), String::new(), 0);
        let mut expired = Vec::new();
        for sequence in 0..40u64 {
            let mut closed = segment(sequence, sequence * 180_000, 2.0);
            closed.key.id = KeyId::new(&format!("k{}", sequence / 3)).unwrap();
            closed.discontinuity = sequence == 12;
            let listed = timeline.list(&closed, 10_000 + sequence * 2_000, &mut playlist);
            let listed_ms = (playlist.duration_secs() * 1000.0).round() as u64;
            // Everything while under 20 s, then 20 s and not one segment more.
            assert_eq!(listed_ms, ((sequence + 1) * 2_000).min(20_000), "seq {sequence}");
            for gone in listed.expired {
                // Fetchable for its own duration plus the (DVR-long) playlist's.
                assert_eq!(gone.after_ms, 2_000 + 20_000, "{}", gone.uri);
                expired.push(gone.uri);
            }
            let first = playlist.segments().next().unwrap().sequence;
            assert_eq!(playlist.media_sequence(), first);
            assert_eq!(expired.len() as u64, first);
        }
        assert_eq!(playlist.len(), 10);
        assert_eq!(playlist.discontinuity_sequence(), 1);
        let text = playlist.render(None);
        // The first listed segment (30) is the second of key k10: its key tag stays.
        let first_key = text.lines().position(|l| l.starts_with("#EXT-X-KEY")).unwrap();
        let first_uri = text.lines().position(|l| l == "abcd-30.ts").unwrap();
        assert!(first_key < first_uri, "{text}");
        assert!(text.contains("/keys/live/demo/k10?"), "{text}");
        assert!(!text.contains("ENDLIST") && !text.contains("PLAYLIST-TYPE"), "{text}");

        // A republish keeps the DVR window: nothing slides out re-listing it.
        playlist.end();
        let (again, next) = continue_playlist(Some(&playlist), 2, 3, 20);
        assert_eq!((again.len(), again.dvr_window_secs()), (10, 20));
        assert_eq!(next.first_sequence, 40);
    }
}
