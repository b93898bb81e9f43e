//! HLS, sans-IO: where segments are cut ([`Segmenter`]) and the media playlist
//! that lists them ([`MediaPlaylist`], rendered for live and VOD, and read back
//! by [`parse_media_playlist`]).
//!
//! Nothing here reads the clock or touches files: time comes from access-unit
//! timestamps, program date-times come in as Unix milliseconds, and playlists
//! come out as strings.
//!
//! The RFC 8216 rules that players actually enforce are kept here, each cited
//! where the code depends on it: every EXTINF rounded to the nearest integer is
//! at most TARGETDURATION (4.3.3.1), which never changes (6.2.1); a key tag that
//! applies to a listed segment stays listed (6.2.3); MEDIA-SEQUENCE and
//! DISCONTINUITY-SEQUENCE grow by removed segments only (6.2.2); a live
//! playlist stays at least three target durations long (6.2.2).

mod parse;
mod playlist;
mod segmenter;

pub use parse::{ParsedPlaylist, PlaylistType, parse_media_playlist};
pub use playlist::{KeyTag, MediaPlaylist, PlaylistKind, SegmentEntry};
pub use segmenter::{CutPolicy, Decision, Segmenter};

/// Why a playlist could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The first line is not `#EXTM3U` (RFC 8216 4.3.1.1).
    #[error("not a playlist: first line is not #EXTM3U")]
    MissingHeader,
    /// The required `#EXT-X-TARGETDURATION` is absent (RFC 8216 4.3.3.1).
    #[error("playlist has no #EXT-X-TARGETDURATION")]
    MissingTargetDuration,
    /// A tag's value does not have the form RFC 8216 section 4 gives it.
    #[error("line {line}: malformed #{tag}")]
    Malformed { line: usize, tag: &'static str },
    /// A tag that may appear once appears again.
    #[error("line {line}: duplicate #{tag}")]
    Duplicate { line: usize, tag: &'static str },
    /// A playlist tag after the first segment (RFC 8216 4.3.3: it must precede them).
    #[error("line {line}: #{tag} after the first segment")]
    Misplaced { line: usize, tag: &'static str },
    /// A URI line with no `#EXTINF` before it (RFC 8216 4.3.2.1: required per segment).
    #[error("line {line}: segment URI without #EXTINF")]
    MissingExtinf { line: usize },
    /// A segment URI line holding a `"` or a CR: no URI (RFC 3986), and
    /// nothing [`MediaPlaylist`] could list.
    #[error("line {line}: malformed segment URI")]
    BadUri { line: usize },
    /// The text ends with segment tags but no URI line for them.
    #[error("playlist ends before the URI of its last segment")]
    Truncated,
    /// A feature sealcast never writes and this parser does not read: master
    /// playlists, byte ranges, fMP4 maps, sample encryption, key formats other
    /// than `identity`.
    #[error("line {line}: unsupported {tag}")]
    Unsupported { line: usize, tag: &'static str },
}
