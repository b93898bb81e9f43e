//! `hls::parse_media_playlist` on arbitrary text, then what the server does
//! with a playlist it finds on disk after a restart (`live::restore_playlist`):
//! push every parsed segment into a live `MediaPlaylist` and render it. No
//! input may panic, the rendered text must parse again, and rendering is a
//! fixed point after one round (render(parse(render(p))) == render(p)), for a
//! live and a VOD playlist.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealcast_core::hls::{MediaPlaylist, ParsedPlaylist, parse_media_playlist};

/// The server's default window and a short one, so segments slide out.
const WINDOWS: [usize; 2] = [6, 1];

fn live(parsed: &ParsedPlaylist, window: usize) -> MediaPlaylist {
    let mut playlist = MediaPlaylist::live(
        parsed.target_duration_secs,
        window,
        parsed.media_sequence,
        parsed.discontinuity_sequence,
    );
    for segment in &parsed.segments {
        playlist.push(segment.clone());
    }
    if parsed.ended {
        playlist.end();
    }
    playlist
}

fn vod(parsed: &ParsedPlaylist) -> MediaPlaylist {
    let mut playlist = MediaPlaylist::vod();
    for segment in &parsed.segments {
        playlist.push(segment.clone());
    }
    playlist
}

/// Renders as the server stores it, parses the rendering, rebuilds with
/// `build` and renders again. The rendering with a token in the key URIs, as
/// served to a viewer, must parse too.
fn round_trip(first: &MediaPlaylist, build: impl Fn(&ParsedPlaylist) -> MediaPlaylist) {
    let text = first.render(None);
    let reparsed =
        parse_media_playlist(&text).unwrap_or_else(|e| panic!("rendered playlist does not parse: {e}\n{text}"));
    assert_eq!(reparsed.media_sequence, first.media_sequence());
    assert_eq!(reparsed.discontinuity_sequence, first.discontinuity_sequence());
    assert_eq!(reparsed.segments.len(), first.len());
    let again = build(&reparsed).render(None);
    assert_eq!(again, text, "render is not a fixed point");

    let served = first.render(Some("token=t"));
    let parsed =
        parse_media_playlist(&served).unwrap_or_else(|e| panic!("served playlist does not parse: {e}\n{served}"));
    assert_eq!(parsed.segments.len(), first.len());
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(parsed) = parse_media_playlist(&text) else {
        return;
    };
    for window in WINDOWS {
        let playlist = live(&parsed, window);
        // Sequence numbers never go backwards.
        assert!(playlist.media_sequence() >= parsed.media_sequence);
        assert!(playlist.discontinuity_sequence() >= parsed.discontinuity_sequence);
        round_trip(&playlist, |p| live(p, window));
    }
    round_trip(&vod(&parsed), vod);
});
