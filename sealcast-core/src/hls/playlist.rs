//! The media playlist: a model of the listed segments and its rendering
//! (RFC 8216 sections 4.3 and 6.2).

use std::collections::VecDeque;
use std::fmt::{self, Write as _};

use crate::clock::UtcDateTime;

/// An `EXT-X-KEY` with `METHOD=AES-128` (RFC 8216 4.3.2.4). The IV is always
/// written: without it the IV would be the media sequence number, of which
/// hls.js uses only the low 32 bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTag {
    pub uri: String,
    pub iv: [u8; 16],
}

/// One media segment as listed in a playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentEntry {
    pub uri: String,
    /// EXTINF, written rounded to milliseconds.
    pub duration_secs: f64,
    /// The key the segment is encrypted with; `None` for a clear segment.
    pub key: Option<KeyTag>,
    /// `EXT-X-PROGRAM-DATE-TIME` of the segment's first sample, Unix milliseconds.
    pub program_date_time_ms: Option<i64>,
    /// Preceded by `EXT-X-DISCONTINUITY` (RFC 8216 4.3.2.3).
    pub discontinuity: bool,
    /// Media sequence number (RFC 8216 4.3.3.2); [`MediaPlaylist::push`] sets it.
    pub sequence: u64,
}

/// Whether segments are removed as new ones arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaylistKind {
    /// A sliding window without `EXT-X-PLAYLIST-TYPE` (RFC 8216 6.2.2).
    Live,
    /// A complete presentation: `EXT-X-PLAYLIST-TYPE:VOD` and `EXT-X-ENDLIST`.
    Vod,
    /// A growing presentation (a recording while its publish runs):
    /// `EXT-X-PLAYLIST-TYPE:EVENT`, segments only appended, never removed
    /// (RFC 8216 4.3.3.5); `EXT-X-ENDLIST` once ended.
    Event,
}

/// A media playlist under construction.
#[derive(Debug, Clone)]
pub struct MediaPlaylist {
    kind: PlaylistKind,
    /// Live only: fixed for the playlist's life (RFC 8216 6.2.1).
    target_duration_secs: u32,
    window: usize,
    /// Live only: the listed EXTINFs never add up to less than this once
    /// there were enough segments (the DVR window), in milliseconds.
    dvr_window_ms: u64,
    segments: VecDeque<SegmentEntry>,
    media_sequence: u64,
    discontinuity_sequence: u64,
    /// Sum of the listed EXTINF values as written, in milliseconds.
    listed_ms: u64,
    ended: bool,
    target_overruns: u64,
}

impl MediaPlaylist {
    /// A live playlist listing at least `window` segments (clamped to at least
    /// 1; the server's config requires 3). `media_sequence_start` and
    /// `discontinuity_sequence_start` continue the numbering of an earlier
    /// publish, so that neither ever goes backwards (RFC 8216 6.2.2).
    /// `target_duration_secs` is clamped to at least 1.
    pub fn live(
        target_duration_secs: u32,
        window: usize,
        media_sequence_start: u64,
        discontinuity_sequence_start: u64,
    ) -> Self {
        Self {
            kind: PlaylistKind::Live,
            target_duration_secs: target_duration_secs.max(1),
            window: window.max(1),
            dvr_window_ms: 0,
            segments: VecDeque::with_capacity(window.clamp(1, 64) + 1),
            media_sequence: media_sequence_start,
            discontinuity_sequence: discontinuity_sequence_start,
            listed_ms: 0,
            ended: false,
            target_overruns: 0,
        }
    }

    /// A VOD playlist: every segment stays listed; TARGETDURATION is the
    /// longest EXTINF rounded half up, computed at render.
    pub fn vod() -> Self {
        Self {
            kind: PlaylistKind::Vod,
            target_duration_secs: 1,
            window: usize::MAX,
            dvr_window_ms: 0,
            segments: VecDeque::new(),
            media_sequence: 0,
            discontinuity_sequence: 0,
            listed_ms: 0,
            ended: false,
            target_overruns: 0,
        }
    }

    /// An event playlist (see [`PlaylistKind::Event`]) whose TARGETDURATION
    /// is fixed at `target_duration_secs` (at least 1), like a live one's.
    pub fn event(target_duration_secs: u32) -> Self {
        Self {
            kind: PlaylistKind::Event,
            target_duration_secs: target_duration_secs.max(1),
            ..Self::vod()
        }
    }

    /// The complete presentation this event playlist grew into: the same
    /// segments as `EXT-X-PLAYLIST-TYPE:VOD` with `EXT-X-ENDLIST`.
    pub fn into_vod(mut self) -> Self {
        self.kind = PlaylistKind::Vod;
        self.ended = true;
        self
    }

    /// A live playlist that also keeps `secs` of segments listed (startover,
    /// "DVR"): a segment slides out only when more than `window` are listed
    /// *and* the rest still add up to `secs`, so a late viewer can seek back
    /// that far. Still a live playlist (no `EXT-X-PLAYLIST-TYPE`, no
    /// `EXT-X-ENDLIST`), with every RFC 8216 6.2.2 rule of [`MediaPlaylist::push`].
    /// 0 turns it off.
    #[must_use]
    pub fn with_dvr_window_secs(mut self, secs: u32) -> Self {
        self.dvr_window_ms = u64::from(secs) * 1000;
        self
    }

    /// The DVR window given to [`MediaPlaylist::with_dvr_window_secs`], in seconds.
    pub fn dvr_window_secs(&self) -> u32 {
        u32::try_from(self.dvr_window_ms / 1000).unwrap_or(u32::MAX)
    }

    /// Appends a segment and sets its `sequence` to the media sequence number
    /// it gets: numbers are positional (RFC 8216 4.3.3.2), so any value the
    /// caller put there is replaced.
    ///
    /// In a live playlist the oldest segments then slide out while more than
    /// `window` are listed — but never so far that the listed EXTINFs add up
    /// to less than three target durations (RFC 8216 6.2.2). Each removed
    /// segment raises MEDIA-SEQUENCE by one, and DISCONTINUITY-SEQUENCE by one
    /// if it carried `EXT-X-DISCONTINUITY`, so the numbers of the segments
    /// still listed never change (RFC 8216 6.2.2). The removed segments are
    /// returned: the server must keep them, and their keys, fetchable for
    /// their duration plus the playlist's.
    ///
    /// After [`MediaPlaylist::end`] the playlist may no longer change (RFC 8216
    /// 6.2.1): the segment is not listed and comes straight back.
    pub fn push(&mut self, mut seg: SegmentEntry) -> Vec<SegmentEntry> {
        if self.ended {
            return vec![seg];
        }
        debug_assert!(
            is_clean_uri(&seg.uri) && seg.key.as_ref().is_none_or(|k| is_clean_uri(&k.uri)),
            "URIs must be non-empty and free of '\"', CR and LF: {seg:?}"
        );
        debug_assert!(
            seg.duration_secs.is_finite() && seg.duration_secs >= 0.0,
            "bad duration {}",
            seg.duration_secs
        );
        debug_assert!(
            seg.program_date_time_ms
                .is_none_or(|ms| UtcDateTime::from_unix_ms(ms).is_some()),
            "program date-time outside years 0000-9999"
        );
        if !(seg.duration_secs.is_finite() && seg.duration_secs >= 0.0) {
            seg.duration_secs = 0.0;
        }
        let seg_ms = extinf_ms(seg.duration_secs);
        if self.kind != PlaylistKind::Vod && rounded_secs(seg_ms) > u64::from(self.target_duration_secs) {
            self.target_overruns += 1;
        }
        seg.sequence = self.next_sequence();
        self.listed_ms = self.listed_ms.saturating_add(seg_ms);
        self.segments.push_back(seg);

        let mut removed = Vec::new();
        if self.kind == PlaylistKind::Live {
            let floor_ms = (3 * 1000 * u64::from(self.target_duration_secs)).max(self.dvr_window_ms);
            while self.segments.len() > self.window {
                let Some(front) = self.segments.front() else {
                    break;
                };
                let front_ms = extinf_ms(front.duration_secs);
                if self.listed_ms.saturating_sub(front_ms) < floor_ms {
                    break;
                }
                let Some(front) = self.segments.pop_front() else {
                    break;
                };
                self.listed_ms = self.listed_ms.saturating_sub(front_ms);
                // Saturating: a tampered playlist restored from disk may start near u64::MAX.
                self.media_sequence = self.media_sequence.saturating_add(1);
                if front.discontinuity {
                    self.discontinuity_sequence = self.discontinuity_sequence.saturating_add(1);
                }
                removed.push(front);
            }
        }
        removed
    }

    /// Marks the presentation complete: `EXT-X-ENDLIST` (RFC 8216 4.3.3.4).
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// Whether [`MediaPlaylist::end`] was called (always written for VOD).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Live, VOD or event.
    pub fn kind(&self) -> PlaylistKind {
        self.kind
    }

    /// The listed segments, oldest first.
    pub fn segments(&self) -> impl ExactSizeIterator<Item = &SegmentEntry> + DoubleEndedIterator {
        self.segments.iter()
    }

    /// Number of listed segments.
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    /// Whether no segment is listed.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// `EXT-X-MEDIA-SEQUENCE`: the sequence number of the first listed segment.
    pub fn media_sequence(&self) -> u64 {
        self.media_sequence
    }

    /// `EXT-X-DISCONTINUITY-SEQUENCE` (RFC 8216 4.3.3.3).
    pub fn discontinuity_sequence(&self) -> u64 {
        self.discontinuity_sequence
    }

    /// The sequence number the next pushed segment gets.
    pub fn next_sequence(&self) -> u64 {
        self.media_sequence.saturating_add(self.segments.len() as u64)
    }

    /// `EXT-X-TARGETDURATION`: fixed for live; for VOD the longest EXTINF
    /// rounded half up, at least 1.
    pub fn target_duration_secs(&self) -> u32 {
        match self.kind {
            // An event playlist's TARGETDURATION must not change as it grows (RFC 8216 6.2.1).
            PlaylistKind::Live | PlaylistKind::Event => self.target_duration_secs,
            PlaylistKind::Vod => {
                let longest = self
                    .segments
                    .iter()
                    .map(|s| rounded_secs(extinf_ms(s.duration_secs)))
                    .max()
                    .unwrap_or(1);
                u32::try_from(longest).unwrap_or(u32::MAX).max(1)
            }
        }
    }

    /// The playlist's duration: the sum of the listed EXTINFs as written.
    pub fn duration_secs(&self) -> f64 {
        self.listed_ms as f64 / 1000.0
    }

    /// Live segments pushed so far whose EXTINF rounds above TARGETDURATION
    /// (RFC 8216 4.3.3.1 violated: the encoder stalled mid-segment, or
    /// the segmenter was not [`super::CutPolicy::BoundedByTarget`]).
    pub fn target_overruns(&self) -> u64 {
        self.target_overruns
    }

    /// Renders the playlist. `key_query` (e.g. `token=abc`) is appended to
    /// every key URI with `?` or `&` as the URI needs, because native players
    /// do not carry the playlist's query string over to key requests.
    pub fn render(&self, key_query: Option<&str>) -> String {
        let mut out = String::new();
        self.render_into(&mut out, key_query);
        out
    }

    /// [`MediaPlaylist::render`] appending to a caller's buffer, so a server
    /// rendering per request can reuse one.
    pub fn render_into(&self, out: &mut String, key_query: Option<&str>) {
        let key_query = key_query
            .map(|q| q.trim_start_matches(['?', '&']))
            .filter(|q| !q.is_empty());
        out.reserve(self.render_len_hint(key_query));
        // fmt::Write into a String never fails.
        let _ = self.write(out, key_query);
    }

    fn write(&self, out: &mut String, key_query: Option<&str>) -> fmt::Result {
        // Version 2 for the IV attribute, 3 for decimal EXTINF (RFC 8216 7).
        out.push_str("#EXTM3U\n#EXT-X-VERSION:3\n");
        writeln!(out, "#EXT-X-TARGETDURATION:{}", self.target_duration_secs())?;
        writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence)?;
        // Required once segments with EXT-X-DISCONTINUITY were removed (RFC
        // 8216 6.2.2); a non-zero value means exactly that, or a republish
        // continuing an earlier count. Zero is the default when absent (4.3.3.3).
        if self.discontinuity_sequence > 0 {
            writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{}", self.discontinuity_sequence)?;
        }
        match self.kind {
            PlaylistKind::Vod => out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n"),
            PlaylistKind::Event => out.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n"),
            PlaylistKind::Live => {}
        }
        let mut previous_key: Option<&KeyTag> = None;
        for (i, seg) in self.segments.iter().enumerate() {
            if seg.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            // A key tag applies until the next one, and one that applies to a
            // listed segment must stay listed (RFC 8216 6.2.3): repeat it on
            // the first listed segment, whatever slid out before it.
            match (&seg.key, previous_key) {
                (Some(key), previous) if i == 0 || previous != Some(key) => {
                    out.push_str("#EXT-X-KEY:METHOD=AES-128,URI=\"");
                    write_uri(out, &key.uri, key_query);
                    out.push_str("\",IV=0x");
                    write_hex(out, &key.iv);
                    out.push('\n');
                }
                // A clear segment after an encrypted one needs METHOD=NONE
                // (RFC 8216 6.2.3).
                (None, Some(_)) => out.push_str("#EXT-X-KEY:METHOD=NONE\n"),
                _ => {}
            }
            previous_key = seg.key.as_ref();
            if let Some(dt) = seg.program_date_time_ms.and_then(UtcDateTime::from_unix_ms) {
                writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{dt}")?;
            }
            let ms = extinf_ms(seg.duration_secs);
            writeln!(out, "#EXTINF:{}.{:03},", ms / 1000, ms % 1000)?;
            write_uri(out, &seg.uri, None);
            out.push('\n');
        }
        if self.kind == PlaylistKind::Vod || self.ended {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        Ok(())
    }

    fn render_len_hint(&self, key_query: Option<&str>) -> usize {
        let query = key_query.map_or(0, |q| q.len() + 1);
        self.segments.iter().fold(160, |n, s| {
            n + s.uri.len()
                + 48
                + s.key.as_ref().map_or(0, |k| k.uri.len() + query + 80)
                + s.program_date_time_ms.map_or(0, |_| 50)
        })
    }
}

/// EXTINF in whole milliseconds, rounded half up: the value written.
pub(crate) fn extinf_ms(duration_secs: f64) -> u64 {
    // `as` saturates, and maps NaN and negatives to 0.
    (duration_secs * 1000.0).round() as u64
}

/// A written EXTINF rounded half up to whole seconds, as RFC 8216 4.3.3.1
/// compares it with TARGETDURATION.
fn rounded_secs(ms: u64) -> u64 {
    ms.saturating_add(500) / 1000
}

/// What [`MediaPlaylist::push`] accepts as a URI; the parser refuses the rest.
pub(super) fn is_clean_uri(uri: &str) -> bool {
    !uri.is_empty() && !uri.bytes().any(|b| matches!(b, b'"' | b'\r' | b'\n'))
}

/// Writes `uri`, percent-encoding every byte RFC 3986 does not allow in a URI
/// (so `"`, CR, LF, spaces and control characters can never break the quoted
/// string or the line, RFC 8216 4.2), with `query` appended to its query
/// component.
fn write_uri(out: &mut String, uri: &str, query: Option<&str>) {
    let (base, fragment) = match uri.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (uri, None),
    };
    write_escaped(out, base);
    if let Some(query) = query {
        match base.split_once('?') {
            Some((_, existing)) if !existing.is_empty() && !existing.ends_with('&') => {
                out.push('&');
            }
            Some(_) => {}
            None => out.push('?'),
        }
        write_escaped(out, query);
    }
    if let Some(fragment) = fragment {
        out.push('#');
        write_escaped(out, fragment);
    }
}

fn write_escaped(out: &mut String, text: &str) {
    let mut rest = text;
    loop {
        let clean = rest.bytes().position(|b| !is_uri_byte(b)).unwrap_or(rest.len());
        // Bytes before `clean` are ASCII, so `clean` is a char boundary.
        let Some((ok, tail)) = rest.split_at_checked(clean) else {
            return;
        };
        out.push_str(ok);
        let mut chars = tail.chars();
        let Some(c) = chars.next() else {
            return;
        };
        let mut buf = [0u8; 4];
        for b in c.encode_utf8(&mut buf).bytes() {
            out.push('%');
            write_hex_upper(out, b);
        }
        rest = chars.as_str();
    }
}

/// RFC 3986 2.2 and 2.3: unreserved and reserved characters, and `%` of an
/// existing escape. `#` is excluded: only the fragment separator may appear.
fn is_uri_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:/?[]@!$&'()*+,;=%".contains(&b)
}

const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";
const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn write_hex(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        // Nibbles are < 16.
        out.push(char::from(HEX_LOWER[usize::from(b >> 4)]));
        out.push(char::from(HEX_LOWER[usize::from(b & 0x0f)]));
    }
}

fn write_hex_upper(out: &mut String, b: u8) {
    // Nibbles are < 16.
    out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
    out.push(char::from(HEX_UPPER[usize::from(b & 0x0f)]));
}

#[cfg(test)]
pub(crate) mod tests;
