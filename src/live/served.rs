//! A stream's live playlist with its canonical text (no credential in its
//! key URIs), rendered once per change rather than once per viewer request:
//! the publish task asks for it right after each change, to write the
//! playlist file (or object), and every playlist request of every viewer
//! starts from that same text; only an `Arc` is cloned under the stream's
//! lock.

use std::sync::Arc;

use crate::hls::MediaPlaylist;

#[derive(Default)]
pub(super) struct ServedPlaylist {
    playlist: Option<MediaPlaylist>,
    /// `playlist` rendered; `None` until asked for after a change.
    text: Option<Arc<str>>,
}

impl ServedPlaylist {
    pub(super) fn new(playlist: Option<MediaPlaylist>) -> Self {
        Self { playlist, text: None }
    }

    pub(super) fn get(&self) -> Option<&MediaPlaylist> {
        self.playlist.as_ref()
    }

    /// The playlist, to change it: its rendered text is dropped.
    pub(super) fn edit(&mut self) -> Option<&mut MediaPlaylist> {
        self.text = None;
        self.playlist.as_mut()
    }

    pub(super) fn set(&mut self, playlist: Option<MediaPlaylist>) {
        self.text = None;
        self.playlist = playlist;
    }

    /// The canonical text, rendered at most once per change; `None` before
    /// the first segment.
    pub(super) fn text(&mut self) -> Option<Arc<str>> {
        let playlist = self.playlist.as_ref().filter(|p| !p.is_empty())?;
        Some(Arc::clone(
            self.text.get_or_insert_with(|| playlist.render(None).into()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::SegmentEntry;

    fn segment(uri: &str) -> SegmentEntry {
        SegmentEntry {
            uri: uri.to_owned(),
            duration_secs: 2.0,
            key: None,
            program_date_time_ms: None,
            discontinuity: false,
            sequence: 0,
        }
    }

    #[test]
    fn the_text_is_rendered_once_and_again_after_a_change() {
        let mut served = ServedPlaylist::new(Some(MediaPlaylist::live(2, 5, 0, 0)));
        assert!(served.text().is_none(), "no segment yet: no playlist");
        served.edit().unwrap().push(segment("a-0.ts"));
        let first = served.text().unwrap();
        assert!(Arc::ptr_eq(&first, &served.text().unwrap()), "rendered once");
        served.edit().unwrap().push(segment("a-1.ts"));
        let second = served.text().unwrap();
        assert!(!first.contains("a-1.ts") && second.contains("a-1.ts"));
        assert_eq!(&*second, served.get().unwrap().render(None));
        served.set(None);
        assert!(served.text().is_none());
    }
}
