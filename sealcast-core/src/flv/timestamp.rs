//! Extends 32-bit millisecond FLV/RTMP timestamps into one 64-bit timeline.
//!
//! FLV tag timestamps and RTMP message timestamps are 32-bit milliseconds
//! and wrap about every 49.7 days. One extender serves both tracks of a
//! stream: each new timestamp is placed on the 64-bit timeline at the point
//! nearest to the previous one (of either track), i.e. the 32-bit difference
//! is read as signed. A value smaller than the previous one by more than half
//! the 32-bit range is therefore a forward wrap, and a value larger by more
//! than half the range is a late frame from just before the wrap. So when
//! video crosses the wrap first (0xFFFF_FFF0 -> 0x0000_0010) and an audio
//! frame still stamped 0xFFFF_FFE0 follows, the audio frame lands just before
//! the video frame on the same timeline instead of 49.7 days after it.
//! A timestamp that would fall before the start of the timeline (a late frame
//! when the stream starts near 0) is clamped to 0.

/// Timestamp extender; the timeline starts at the first raw value seen.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Extender {
    last_ms: Option<u64>,
}

impl Extender {
    /// Extends `raw_ms` onto the 64-bit millisecond timeline.
    pub(crate) fn extend(&mut self, raw_ms: u32) -> u64 {
        let Some(last) = self.last_ms else {
            self.last_ms = Some(u64::from(raw_ms));
            return u64::from(raw_ms);
        };
        // Truncating `last` to its low 32 bits is the point: the signed
        // 32-bit difference picks the nearest candidate on the timeline.
        let delta = raw_ms.wrapping_sub(last as u32) as i32;
        match last.checked_add_signed(i64::from(delta)) {
            Some(extended) => {
                self.last_ms = Some(extended);
                extended
            }
            // A late frame from before the first timestamp seen: clamp it to
            // the start of the timeline and keep the reference point.
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences() {
        struct Case {
            name: &'static str,
            raw: &'static [u32],
            want: &'static [u64],
        }
        const WRAP: u64 = 1 << 32;
        let cases = [
            Case {
                name: "plain increasing",
                raw: &[0, 20, 40, 33, 100],
                want: &[0, 20, 40, 33, 100],
            },
            Case {
                name: "starts high",
                raw: &[0xFFFF_0000, 0xFFFF_0010],
                want: &[0xFFFF_0000, 0xFFFF_0010],
            },
            Case {
                name: "wrap continues upward",
                raw: &[0xFFFF_FF00, 0x0000_0100, 0x0000_0200],
                want: &[0xFFFF_FF00, WRAP + 0x100, WRAP + 0x200],
            },
            Case {
                name: "video wraps before audio",
                // video, audio (late, pre-wrap), video, audio (post-wrap)
                raw: &[0xFFFF_FFF0, 0x0000_0010, 0xFFFF_FFE0, 0x0000_0030, 0x0000_0020],
                want: &[0xFFFF_FFF0, WRAP + 0x10, 0xFFFF_FFE0, WRAP + 0x30, WRAP + 0x20],
            },
            Case {
                name: "two wraps",
                raw: &[0xC000_0000, 0x3000_0000, 0xA000_0000, 0x1000_0000],
                want: &[
                    0xC000_0000,
                    WRAP + 0x3000_0000,
                    WRAP + 0xA000_0000,
                    2 * WRAP + 0x1000_0000,
                ],
            },
            Case {
                name: "exactly half the range back is not a wrap",
                raw: &[0x8000_0000, 0],
                want: &[0x8000_0000, 0],
            },
            Case {
                name: "late frame before the timeline start",
                raw: &[0x10, 0xFFFF_FFF0, 0x20],
                want: &[0x10, 0, 0x20],
            },
        ];
        for case in cases {
            let mut ext = Extender::default();
            let got: Vec<u64> = case.raw.iter().map(|&r| ext.extend(r)).collect();
            assert_eq!(got, case.want, "{}", case.name);
        }
    }
}
