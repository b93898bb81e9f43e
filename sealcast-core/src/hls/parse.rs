//! A minimal media playlist parser for the playlists sealcast writes (used by
//! `sealcast decrypt` and tests). It follows RFC 8216 section 4 for the tags
//! sealcast uses, ignores unknown tags as clients must (RFC 8216 6.3.1), and
//! refuses features it cannot honour (byte ranges, fMP4 maps, sample
//! encryption, master playlists) rather than misread them.

use super::Error;
use super::playlist::{KeyTag, SegmentEntry, is_clean_uri};
use crate::clock::UtcDateTime;

/// `EXT-X-PLAYLIST-TYPE` (RFC 8216 4.3.3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaylistType {
    Event,
    Vod,
}

/// What [`parse_media_playlist`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedPlaylist {
    pub version: Option<u32>,
    pub target_duration_secs: u32,
    /// `EXT-X-MEDIA-SEQUENCE`, 0 when absent (RFC 8216 4.3.3.2).
    pub media_sequence: u64,
    /// `EXT-X-DISCONTINUITY-SEQUENCE`, 0 when absent (RFC 8216 4.3.3.3).
    pub discontinuity_sequence: u64,
    pub playlist_type: Option<PlaylistType>,
    pub independent_segments: bool,
    /// `EXT-X-ENDLIST` seen.
    pub ended: bool,
    /// Segments in order, each with the key in effect for it and its media
    /// sequence number. An AES-128 key without an IV attribute gets the
    /// segment's media sequence number as IV (RFC 8216 5.2).
    pub segments: Vec<SegmentEntry>,
}

/// Key state while reading: the latest `EXT-X-KEY` (RFC 8216 4.3.2.4 applies
/// it to every following segment until the next one).
#[derive(Default)]
enum Key {
    #[default]
    None,
    Aes128 {
        uri: String,
        iv: Option<[u8; 16]>,
    },
}

/// Tags seen since the last URI line, applying to the next segment.
#[derive(Default)]
struct Pending {
    duration_secs: Option<f64>,
    discontinuity: bool,
    program_date_time_ms: Option<i64>,
}

/// Parses a media playlist. Errors say which line and tag failed; nothing in
/// the input can make it panic.
pub fn parse_media_playlist(text: &str) -> Result<ParsedPlaylist, Error> {
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    if lines.next() != Some("#EXTM3U") {
        return Err(Error::MissingHeader);
    }
    let mut reader = Reader::default();
    for (index, line) in lines.enumerate() {
        let line_no = index + 2;
        if line.trim().is_empty() {
            continue;
        }
        match line.strip_prefix('#') {
            None => reader.uri_line(line, line_no)?,
            Some(comment_or_tag) => {
                if let Some(tag) = comment_or_tag.strip_prefix("EXT") {
                    let (name, value) = match tag.split_once(':') {
                        Some((name, value)) => (name, Some(value)),
                        None => (tag, None),
                    };
                    reader.tag(name, value, line_no)?;
                }
            }
        }
    }
    reader.finish()
}

/// The playlist read so far.
#[derive(Default)]
struct Reader {
    version: Option<u32>,
    target: Option<u32>,
    media_sequence: Option<u64>,
    discontinuity_sequence: Option<u64>,
    playlist_type: Option<PlaylistType>,
    independent_segments: bool,
    ended: bool,
    key: Key,
    pending: Pending,
    segments: Vec<SegmentEntry>,
}

impl Reader {
    /// A segment URI line: the segment the pending tags describe.
    fn uri_line(&mut self, line: &str, line_no: usize) -> Result<(), Error> {
        let Some(duration_secs) = self.pending.duration_secs else {
            return Err(Error::MissingExtinf { line: line_no });
        };
        // A `"` or a CR inside the line is no URI (RFC 3986) and could not
        // be written back as one.
        if !is_clean_uri(line) {
            return Err(Error::BadUri { line: line_no });
        }
        let sequence = self
            .media_sequence
            .unwrap_or(0)
            .saturating_add(self.segments.len() as u64);
        let key = match &self.key {
            Key::None => None,
            Key::Aes128 { uri, iv } => Some(KeyTag {
                uri: uri.clone(),
                iv: iv.unwrap_or_else(|| u128::from(sequence).to_be_bytes()),
            }),
        };
        let pending = std::mem::take(&mut self.pending);
        self.segments.push(SegmentEntry {
            uri: line.to_owned(),
            duration_secs,
            key,
            program_date_time_ms: pending.program_date_time_ms,
            discontinuity: pending.discontinuity,
            sequence,
        });
        Ok(())
    }

    /// A playlist tag that may appear once, before the first segment
    /// (RFC 8216 4.3.3).
    fn before_segments(&self, tag: &'static str, seen: bool, line: usize) -> Result<(), Error> {
        if seen {
            Err(Error::Duplicate { line, tag })
        } else if !self.segments.is_empty() || self.pending.duration_secs.is_some() {
            Err(Error::Misplaced { line, tag })
        } else {
            Ok(())
        }
    }

    /// One `#EXT...` line: `name` is what follows `#EXT`, `value` what
    /// follows the colon.
    fn tag(&mut self, name: &str, value: Option<&str>, line_no: usize) -> Result<(), Error> {
        let err = |tag: &'static str| Error::Malformed { line: line_no, tag };
        let integer = |tag: &'static str| value.and_then(decimal_integer).ok_or(err(tag));
        match name {
            "M3U" => {}
            "-X-VERSION" => {
                let t = "EXT-X-VERSION";
                self.before_segments(t, self.version.is_some(), line_no)?;
                self.version = Some(u32::try_from(integer(t)?).map_err(|_| err(t))?);
            }
            "-X-TARGETDURATION" => {
                let t = "EXT-X-TARGETDURATION";
                self.before_segments(t, self.target.is_some(), line_no)?;
                self.target = Some(u32::try_from(integer(t)?).map_err(|_| err(t))?);
            }
            "-X-MEDIA-SEQUENCE" => {
                let t = "EXT-X-MEDIA-SEQUENCE";
                self.before_segments(t, self.media_sequence.is_some(), line_no)?;
                self.media_sequence = Some(integer(t)?);
            }
            "-X-DISCONTINUITY-SEQUENCE" => {
                let t = "EXT-X-DISCONTINUITY-SEQUENCE";
                self.before_segments(t, self.discontinuity_sequence.is_some(), line_no)?;
                self.discontinuity_sequence = Some(integer(t)?);
            }
            "-X-PLAYLIST-TYPE" => {
                let t = "EXT-X-PLAYLIST-TYPE";
                self.before_segments(t, self.playlist_type.is_some(), line_no)?;
                self.playlist_type = Some(match value {
                    Some("VOD") => PlaylistType::Vod,
                    Some("EVENT") => PlaylistType::Event,
                    _ => return Err(err(t)),
                });
            }
            "-X-INDEPENDENT-SEGMENTS" => self.independent_segments = true,
            "-X-ENDLIST" => self.ended = true,
            "-X-DISCONTINUITY" => {
                if value.is_some() {
                    return Err(err("EXT-X-DISCONTINUITY"));
                }
                self.pending.discontinuity = true;
            }
            "-X-PROGRAM-DATE-TIME" => {
                let t = "EXT-X-PROGRAM-DATE-TIME";
                self.pending.program_date_time_ms = Some(value.and_then(UtcDateTime::parse_rfc3339).ok_or(err(t))?);
            }
            "INF" => {
                let t = "EXTINF";
                if self.pending.duration_secs.is_some() {
                    return Err(Error::Duplicate { line: line_no, tag: t });
                }
                let value = value.ok_or(err(t))?;
                let duration = value.split_once(',').map_or(value, |(d, _title)| d);
                self.pending.duration_secs = Some(decimal_float(duration).ok_or(err(t))?);
            }
            "-X-KEY" => self.key = parse_key(value.unwrap_or(""), line_no)?,
            "-X-BYTERANGE" | "-X-MAP" | "-X-STREAM-INF" | "-X-I-FRAME-STREAM-INF" | "-X-I-FRAMES-ONLY" | "-X-MEDIA" => {
                return Err(Error::Unsupported {
                    line: line_no,
                    tag: match name {
                        "-X-BYTERANGE" => "EXT-X-BYTERANGE",
                        "-X-MAP" => "EXT-X-MAP",
                        "-X-I-FRAMES-ONLY" => "EXT-X-I-FRAMES-ONLY",
                        _ => "master playlist tag",
                    },
                });
            }
            _ => {} // unknown tags are ignored (RFC 8216 6.3.1)
        }
        Ok(())
    }

    fn finish(self) -> Result<ParsedPlaylist, Error> {
        let pending = &self.pending;
        if pending.duration_secs.is_some() || pending.discontinuity || pending.program_date_time_ms.is_some() {
            return Err(Error::Truncated);
        }
        Ok(ParsedPlaylist {
            version: self.version,
            target_duration_secs: self.target.ok_or(Error::MissingTargetDuration)?,
            media_sequence: self.media_sequence.unwrap_or(0),
            discontinuity_sequence: self.discontinuity_sequence.unwrap_or(0),
            playlist_type: self.playlist_type,
            independent_segments: self.independent_segments,
            ended: self.ended,
            segments: self.segments,
        })
    }
}

/// `EXT-X-KEY` attributes (RFC 8216 4.3.2.4).
fn parse_key(attrs: &str, line: usize) -> Result<Key, Error> {
    let err = Error::Malformed { line, tag: "EXT-X-KEY" };
    let mut method = None;
    let mut uri = None;
    let mut iv = None;
    let mut rest = attrs;
    while !rest.is_empty() {
        let (name, value, quoted, next) = next_attribute(rest).ok_or(err.clone())?;
        rest = next;
        match (name, quoted) {
            ("METHOD", false) => method = Some(value),
            ("URI", true) => uri = Some(value),
            ("IV", false) => iv = Some(hex_iv(value).ok_or(err.clone())?),
            ("KEYFORMAT", true) if value != "identity" => {
                return Err(Error::Unsupported {
                    line,
                    tag: "EXT-X-KEY KEYFORMAT",
                });
            }
            ("KEYFORMAT", true) => {}
            ("METHOD" | "URI" | "IV" | "KEYFORMAT", _) => return Err(err),
            _ => {} // unknown attributes are ignored (RFC 8216 4.2)
        }
    }
    match method {
        // With NONE "the other attributes MUST NOT be present".
        Some("NONE") if uri.is_none() && iv.is_none() => Ok(Key::None),
        // RFC 8216 4.2: a quoted-string holds no CR; an empty URI names no key.
        Some("AES-128") => Ok(Key::Aes128 {
            uri: uri.filter(|uri| is_clean_uri(uri)).ok_or(err)?.to_owned(),
            iv,
        }),
        Some("SAMPLE-AES" | "SAMPLE-AES-CTR") => Err(Error::Unsupported {
            line,
            tag: "EXT-X-KEY METHOD",
        }),
        _ => Err(err),
    }
}

/// One `name=value` of an attribute list (RFC 8216 4.2) and what follows it.
/// Returns (name, value without quotes, whether it was quoted, rest).
fn next_attribute(text: &str) -> Option<(&str, &str, bool, &str)> {
    let (name, after) = text.split_once('=')?;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
    {
        return None;
    }
    let (value, quoted, rest) = match after.strip_prefix('"') {
        Some(quoted) => {
            let (value, rest) = quoted.split_once('"')?;
            (value, true, rest)
        }
        None => match after.split_once(',') {
            Some((value, rest)) => (value, false, rest),
            None => (after, false, ""),
        },
    };
    let rest = if quoted {
        match rest.strip_prefix(',') {
            Some(r) => r,
            None if rest.is_empty() => rest,
            None => return None,
        }
    } else {
        rest
    };
    // A trailing comma would leave an empty attribute.
    if rest.is_empty() && text.ends_with(',') {
        return None;
    }
    Some((name, value, quoted, rest))
}

/// A 128-bit hexadecimal-sequence: `0x` or `0X` and 32 hex digits.
fn hex_iv(text: &str) -> Option<[u8; 16]> {
    let digits = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X"))?;
    if digits.len() != 32 {
        return None;
    }
    u128::from_str_radix(digits, 16)
        .ok()
        .filter(|_| digits.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(u128::to_be_bytes)
}

/// RFC 8216 4.2 decimal-integer: 1 to 20 digits, at most 2^64 - 1.
fn decimal_integer(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// RFC 8216 4.2 decimal-floating-point (non-negative): digits, optionally a
/// point and more digits.
fn decimal_float(text: &str) -> Option<f64> {
    let (int, frac) = text.split_once('.').unwrap_or((text, "0"));
    if int.is_empty()
        || frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    text.parse().ok().filter(|d: &f64| d.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::playlist::extinf_ms;
    use crate::hls::playlist::tests::{live_golden, vod_golden};
    use crate::hls::{MediaPlaylist, PlaylistKind};

    fn assert_round_trip(p: &MediaPlaylist, text: &str) -> ParsedPlaylist {
        let parsed = parse_media_playlist(text).unwrap();
        assert_eq!(parsed.version, Some(3));
        assert_eq!(parsed.target_duration_secs, p.target_duration_secs());
        assert_eq!(parsed.media_sequence, p.media_sequence());
        assert_eq!(parsed.discontinuity_sequence, p.discontinuity_sequence());
        assert_eq!(parsed.ended, p.is_ended() || p.kind() == PlaylistKind::Vod);
        // EXTINF is written in whole milliseconds.
        let want: Vec<SegmentEntry> = p
            .segments()
            .map(|s| SegmentEntry {
                duration_secs: extinf_ms(s.duration_secs) as f64 / 1000.0,
                ..s.clone()
            })
            .collect();
        assert_eq!(parsed.segments, want);
        parsed
    }

    #[test]
    fn round_trips_rendered_playlists() {
        let (vod, vod_text) = vod_golden();
        let parsed = assert_round_trip(&vod, vod_text);
        assert_eq!(parsed.playlist_type, Some(PlaylistType::Vod));

        let (mut live, _, live_text) = live_golden();
        let parsed = assert_round_trip(&live, live_text);
        assert_eq!(parsed.playlist_type, None);
        // The first listed segment carries k1 although its tag was first
        // written before segment 100.
        assert_eq!(
            parsed.segments[0].key.as_ref().map(|k| k.uri.as_str()),
            Some("/keys/live/cam/k1?edk=RW5jcnlwdGVk")
        );

        live.push(SegmentEntry {
            discontinuity: true,
            ..parsed.segments[2].clone()
        });
        live.push(parsed.segments[2].clone());
        live.push(parsed.segments[2].clone());
        live.end();
        let parsed = assert_round_trip(&live, &live.render(None));
        assert_eq!((parsed.media_sequence, parsed.discontinuity_sequence), (105, 0));

        live.push(parsed.segments[0].clone());
        let text = live.render(Some("token=t"));
        let parsed = parse_media_playlist(&text).unwrap();
        assert!(
            parsed
                .segments
                .iter()
                .all(|s| s.key.as_ref().is_some_and(|k| k.uri.ends_with("&token=t")))
        );
    }

    #[test]
    fn every_prefix_of_a_golden_parses_or_fails_cleanly() {
        let (_, vod_text) = vod_golden();
        let (_, _, live_text) = live_golden();
        for text in [vod_text, live_text] {
            let mut complete = 0;
            for end in 0..=text.len() {
                // Goldens are ASCII, so every index is a char boundary.
                let prefix = &text[..end];
                if let Ok(p) = parse_media_playlist(prefix) {
                    complete = complete.max(p.segments.len());
                    assert!(p.segments.len() <= 3);
                }
                let with_crlf = prefix.replace('\n', "\r\n");
                let _ = parse_media_playlist(&with_crlf);
            }
            assert_eq!(complete, 3);
        }
    }

    #[test]
    fn known_errors() {
        let h = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n";
        let key = |attrs: &str| format!("{h}#EXT-X-KEY:{attrs}\n#EXTINF:4,\ns.ts\n");
        let cases: Vec<(String, Error)> = vec![
            (String::new(), Error::MissingHeader),
            ("\u{feff}#EXTM3U\n".into(), Error::MissingHeader),
            ("#EXTM3U\n#EXTINF:4,\ns.ts\n".into(), Error::MissingTargetDuration),
            (format!("{h}s.ts\n"), Error::MissingExtinf { line: 3 }),
            (format!("{h}#EXTINF:4,\n"), Error::Truncated),
            (format!("{h}#EXT-X-DISCONTINUITY\n"), Error::Truncated),
            (
                format!("{h}#EXTINF:4,\n#EXTINF:4,\ns.ts\n"),
                Error::Duplicate { line: 4, tag: "EXTINF" },
            ),
            (
                format!("{h}#EXT-X-TARGETDURATION:4\n"),
                Error::Duplicate {
                    line: 3,
                    tag: "EXT-X-TARGETDURATION",
                },
            ),
            (
                format!("{h}#EXTINF:4,\ns.ts\n#EXT-X-MEDIA-SEQUENCE:3\n"),
                Error::Misplaced {
                    line: 5,
                    tag: "EXT-X-MEDIA-SEQUENCE",
                },
            ),
            (
                "#EXTM3U\n#EXT-X-TARGETDURATION:4.5\n".into(),
                Error::Malformed {
                    line: 2,
                    tag: "EXT-X-TARGETDURATION",
                },
            ),
            (
                "#EXTM3U\n#EXT-X-TARGETDURATION:4294967296\n".into(),
                Error::Malformed {
                    line: 2,
                    tag: "EXT-X-TARGETDURATION",
                },
            ),
            (
                "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:+1\n".into(),
                Error::Malformed {
                    line: 2,
                    tag: "EXT-X-MEDIA-SEQUENCE",
                },
            ),
            (
                "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:18446744073709551616\n".into(),
                Error::Malformed {
                    line: 2,
                    tag: "EXT-X-MEDIA-SEQUENCE",
                },
            ),
            (
                "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:LIVE\n".into(),
                Error::Malformed {
                    line: 2,
                    tag: "EXT-X-PLAYLIST-TYPE",
                },
            ),
            (
                format!("{h}#EXTINF:-1,\ns.ts\n"),
                Error::Malformed { line: 3, tag: "EXTINF" },
            ),
            (
                format!("{h}#EXTINF:inf,\ns.ts\n"),
                Error::Malformed { line: 3, tag: "EXTINF" },
            ),
            (
                format!("{h}#EXTINF:1e3,\ns.ts\n"),
                Error::Malformed { line: 3, tag: "EXTINF" },
            ),
            (
                format!("{h}#EXTINF:4.,\ns.ts\n"),
                Error::Malformed { line: 3, tag: "EXTINF" },
            ),
            (
                format!("{h}#EXTINF\ns.ts\n"),
                Error::Malformed { line: 3, tag: "EXTINF" },
            ),
            (
                format!("{h}#EXT-X-DISCONTINUITY:1\n"),
                Error::Malformed {
                    line: 3,
                    tag: "EXT-X-DISCONTINUITY",
                },
            ),
            (
                format!("{h}#EXT-X-PROGRAM-DATE-TIME:yesterday\n"),
                Error::Malformed {
                    line: 3,
                    tag: "EXT-X-PROGRAM-DATE-TIME",
                },
            ),
            (
                key("METHOD=AES-128"),
                Error::Malformed {
                    line: 3,
                    tag: "EXT-X-KEY",
                },
            ),
            (
                key("METHOD=AES-128,URI=k"),
                Error::Malformed {
                    line: 3,
                    tag: "EXT-X-KEY",
                },
            ),
            (
                key("METHOD=AES-128,URI=\"k"),
                Error::Malformed {
                    line: 3,
                    tag: "EXT-X-KEY",
                },
            ),
            (
                key("METHOD=AES-128,URI=\"k\"x"),
                Error::Malformed {
                    line: 3,
                    tag: "EXT-X-KEY",
                },
            ),
            (
                key("METHOD=AES-128,URI=\"k\","),
                Error::Malformed {
                    line: 3,
                    tag: "EXT-X-KEY",
                },
            ),
            (
                key("METHOD=AES-128,URI=\"k\",IV=0x01"),
                Error::Malformed {
                    line: 3,
                    tag: "EXT-X-KEY",
                },
            ),
            (
                key("METHOD=AES-128,URI=\"k\",IV=0x+0000000000000000000000000000000"),
                Error::Malformed {
                    line: 3,
                    tag: "EXT-X-KEY",
                },
            ),
            (
                key("METHOD=AES-128,URI=\"k\",IV=0xg0000000000000000000000000000000"),
                Error::Malformed {
                    line: 3,
                    tag: "EXT-X-KEY",
                },
            ),
            (
                key("METHOD=NONE,URI=\"k\""),
                Error::Malformed {
                    line: 3,
                    tag: "EXT-X-KEY",
                },
            ),
            (
                key("method=AES-128,URI=\"k\""),
                Error::Malformed {
                    line: 3,
                    tag: "EXT-X-KEY",
                },
            ),
            (
                key(""),
                Error::Malformed {
                    line: 3,
                    tag: "EXT-X-KEY",
                },
            ),
            // Found by fuzz/hls_playlist_parse: these parsed, then tripped
            // MediaPlaylist::push's URI check in live::restore_playlist.
            (
                key("METHOD=AES-128,URI=\"\""),
                Error::Malformed {
                    line: 3,
                    tag: "EXT-X-KEY",
                },
            ),
            (
                key("METHOD=AES-128,URI=\"k\rk\""),
                Error::Malformed {
                    line: 3,
                    tag: "EXT-X-KEY",
                },
            ),
            (format!("{h}#EXTINF:4,\na\"b.ts\n"), Error::BadUri { line: 4 }),
            (format!("{h}#EXTINF:4,\na\rb.ts\r\n"), Error::BadUri { line: 4 }),
            (
                key("METHOD=SAMPLE-AES,URI=\"k\""),
                Error::Unsupported {
                    line: 3,
                    tag: "EXT-X-KEY METHOD",
                },
            ),
            (
                key("METHOD=AES-128,URI=\"k\",KEYFORMAT=\"com.apple.streamingkeydelivery\""),
                Error::Unsupported {
                    line: 3,
                    tag: "EXT-X-KEY KEYFORMAT",
                },
            ),
            (
                format!("{h}#EXT-X-BYTERANGE:100@0\n"),
                Error::Unsupported {
                    line: 3,
                    tag: "EXT-X-BYTERANGE",
                },
            ),
            (
                format!("{h}#EXT-X-MAP:URI=\"init.mp4\"\n"),
                Error::Unsupported {
                    line: 3,
                    tag: "EXT-X-MAP",
                },
            ),
            (
                "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n".into(),
                Error::Unsupported {
                    line: 2,
                    tag: "master playlist tag",
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_media_playlist(&text), Err(want), "{text:?}");
        }
    }

    #[test]
    fn reads_what_other_writers_produce() {
        // ffmpeg-style: no IV (IV = media sequence number, RFC 8216 5.2),
        // integer EXTINF with a title, comments, blank lines, unknown tags,
        // KEYFORMAT identity, CRLF.
        let text = "#EXTM3U\r\n#EXT-X-VERSION:3\r\n#EXT-X-TARGETDURATION:6\r\n\
            #EXT-X-MEDIA-SEQUENCE:258\r\n#EXT-X-INDEPENDENT-SEGMENTS\r\n# a comment\r\n\r\n\
            #EXT-X-KEY:METHOD=AES-128,URI=\"key.bin\",KEYFORMAT=\"identity\",KEYFORMATVERSIONS=\"1\"\r\n\
            #EXTINF:6,title, with comma\r\n#EXT-X-FUTURE-TAG:X=1\r\na.ts\r\n\
            #EXT-X-KEY:METHOD=NONE\r\n#EXTINF:5.5,\r\nb.ts\r\n#EXT-X-ENDLIST\r\n";
        let p = parse_media_playlist(text).unwrap();
        assert!(p.independent_segments && p.ended);
        assert_eq!(p.media_sequence, 258);
        let mut iv = [0u8; 16];
        iv[14] = 1;
        iv[15] = 2;
        assert_eq!(
            p.segments,
            vec![
                SegmentEntry {
                    uri: "a.ts".into(),
                    duration_secs: 6.0,
                    key: Some(KeyTag {
                        uri: "key.bin".into(),
                        iv
                    }),
                    program_date_time_ms: None,
                    discontinuity: false,
                    sequence: 258,
                },
                SegmentEntry {
                    uri: "b.ts".into(),
                    duration_secs: 5.5,
                    key: None,
                    program_date_time_ms: None,
                    discontinuity: false,
                    sequence: 259,
                },
            ]
        );
    }

    #[test]
    fn garbage_never_panics() {
        // A cheap deterministic fuzz: byte soup built from playlist fragments.
        let pieces = [
            "#EXTM3U\n",
            "#EXT-X-TARGETDURATION:",
            "#EXTINF:",
            "#EXT-X-KEY:",
            "METHOD=AES-128",
            ",URI=\"",
            "\"",
            ",IV=0x",
            "ffffffffffffffffffffffffffffffff",
            "\n",
            "\r",
            "4",
            ".",
            ",",
            "=",
            "s.ts",
            "#EXT-X-PROGRAM-DATE-TIME:",
            "2024-02-29T",
            "23:59:59",
            ".9",
            "Z",
            "+01:00",
            "#EXT-X-DISCONTINUITY",
            "#EXT-X-MEDIA-SEQUENCE:",
            "99999999999999999999",
            "\u{e9}",
            "#",
            ":",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let mut text = String::from("#EXTM3U\n");
            for _ in 0..(state % 24) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push_str(pieces[(state % pieces.len() as u64) as usize]);
            }
            let _ = parse_media_playlist(&text);
        }
    }
}
