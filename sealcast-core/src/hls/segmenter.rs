//! Where segments are cut, decided from access-unit timestamps alone.
//!
//! The segmenter sees every access unit before it is written and answers with a
//! [`Decision`]. It never reads a clock: elapsed time is the DTS distance on the
//! *deciding track* — video when the stream has video, audio otherwise. Audio in a
//! stream with video simply follows into whatever segment is open.
//!
//! Segment durations (the EXTINF values) come back with each cut: the distance
//! from the closed segment's first DTS to the first DTS of the new one on the
//! deciding track, or — for the last segment ([`Segmenter::finish`]) and for a
//! segment closed by a timestamp jump — its last DTS plus one frame interval
//! minus its first DTS.

use crate::media::{AccessUnit, CLOCK_90K, Track, Tracks};

/// A DTS step on the deciding track larger than this many target durations is
/// an encoder glitch, not a pause: it is treated like a backward step. Under
/// [`CutPolicy::BoundedByTarget`] a shorter step is one too when the segment
/// could no longer close within the bound (see [`Segmenter::decide`]).
const JUMP_TARGETS: u64 = 10;

/// How segment boundaries are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutPolicy {
    /// VOD: cut only at keyframes — the first keyframe at or after the target
    /// duration. Segments may run long (a 250-frame GOP makes 8.33 s segments);
    /// a VOD playlist derives its TARGETDURATION from the longest one.
    KeyframesOnly,
    /// Live: the TARGETDURATION of a live playlist is fixed when it is first
    /// published (RFC 8216 6.2.1) and bounds every EXTINF rounded to the nearest
    /// integer (RFC 8216 4.3.3.1), so segments must not run long. Cuts happen at
    /// keyframes as in [`CutPolicy::KeyframesOnly`], with two additions:
    ///
    /// - *early keyframe cut*: at a keyframe after at least half the target, if
    ///   the last GOP length says the next keyframe would come too late, cut
    ///   here (a 3 s GOP with a 4 s target gives clean 3 s segments instead of
    ///   forced cuts);
    /// - *forced cut*: when no keyframe comes in time, cut before a frame that
    ///   is not a keyframe, reported as `forced: true`. The new segment then
    ///   does not start with an IDR picture; players decode it fine when
    ///   playing continuously, and the operator should shorten the GOP.
    BoundedByTarget,
}

/// What to do with one access unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Discard the access unit: it comes before the first keyframe of the
    /// stream, before the next keyframe after the set of tracks changed, or
    /// belongs to a track whose sequence header has not been seen (it cannot be
    /// declared in the PMT).
    Drop,
    /// Write the access unit into the open segment.
    Continue,
    /// Close the open segment, if any, and open a new one that starts with this
    /// access unit.
    Cut {
        /// EXTINF of the segment this cut closes, in seconds; `None` when no
        /// segment was open (the first cut of a stream).
        closed_duration_secs: Option<f64>,
        /// The new segment does not start with a keyframe (a forced cut under
        /// [`CutPolicy::BoundedByTarget`], or a timestamp jump at a non-key frame).
        forced: bool,
        /// The new segment needs `#EXT-X-DISCONTINUITY` (RFC 8216 4.3.2.3): the
        /// timestamps jumped backwards or more than ten target durations
        /// forwards (live: or so far forwards that the segment would overrun
        /// the target), the set of tracks changed (the new segment's PMT
        /// differs), or a codec configuration changed
        /// ([`Segmenter::config_changed`]).
        /// The closed segment's duration is then measured up to its own last
        /// frame, never across the jump, so it is never negative or huge.
        discontinuity: bool,
    },
}

/// State of the segment being written.
#[derive(Debug, Clone, Copy)]
struct Open {
    /// Track whose timestamps measure this segment.
    track: Track,
    /// Tracks declared when the segment was opened (its PMT).
    tracks: Tracks,
    start_dts_90k: u64,
    /// DTS of the latest deciding-track access unit in this segment.
    last_dts_90k: u64,
    /// Largest DTS step between deciding-track access units in this segment.
    max_interval_90k: u64,
}

/// Decides segment boundaries. Time comes only from access-unit timestamps.
#[derive(Debug, Clone)]
pub struct Segmenter {
    policy: CutPolicy,
    target_secs: u32,
    target_90k: u64,
    /// Exclusive upper bound on a live segment's duration: the shortest duration
    /// whose EXTINF, written with three decimals, rounds above the target.
    /// See [`Segmenter::decide`].
    limit_90k: u64,
    jump_90k: u64,
    open: Option<Open>,
    /// Latest non-zero DTS step on the deciding track: the duration given to a
    /// segment's last frame when nothing follows it.
    last_interval_90k: u64,
    /// DTS of the latest keyframe on the deciding track.
    last_keyframe_dts_90k: Option<u64>,
    /// Distance between the two latest keyframes: the GOP length estimate.
    gop_90k: Option<u64>,
    /// A codec configuration changed since the open segment started.
    config_changed: bool,
    forced_cuts: u64,
    discontinuities: u64,
    dropped: u64,
}

impl Segmenter {
    /// A segmenter aiming at `target_duration_secs` (clamped to at least 1 s;
    /// the server's config validation rejects 0 before this point).
    pub fn new(target_duration_secs: u32, policy: CutPolicy) -> Self {
        let target_secs = target_duration_secs.max(1);
        let target_90k = u64::from(target_secs) * CLOCK_90K;
        Self {
            policy,
            target_secs,
            target_90k,
            // EXTINF is written in whole milliseconds rounded half up, and then
            // rounded half up to seconds by the reader: it stays <= target while
            // the duration is below target + 499.5 ms = target + 44_955 ticks.
            limit_90k: target_90k + 44_955,
            jump_90k: target_90k * JUMP_TARGETS,
            open: None,
            last_interval_90k: 0,
            last_keyframe_dts_90k: None,
            gop_90k: None,
            config_changed: false,
            forced_cuts: 0,
            discontinuities: 0,
            dropped: 0,
        }
    }

    /// Called for every access unit BEFORE it is written. `tracks` are the
    /// tracks known so far (sequence headers seen).
    ///
    /// Rules, on the deciding track (video when `tracks.video` is set, else audio):
    /// - nothing is open: the first keyframe opens a segment (`Cut` with no
    ///   closed duration); everything before it is dropped — audio too, when
    ///   the stream has video;
    /// - a keyframe whose DTS is at least the target past the segment start
    ///   cuts;
    /// - under [`CutPolicy::BoundedByTarget`], a keyframe at least half the
    ///   target past the start also cuts when `elapsed + gop >= target + 0.5 s`
    ///   (`gop`: distance between the two latest keyframes), since waiting for
    ///   the next keyframe would overshoot and end in a forced cut;
    /// - under [`CutPolicy::BoundedByTarget`], a frame forces a cut when
    ///   `elapsed + interval >= target + 0.5 s`, where `elapsed` is this
    ///   frame's DTS minus the segment start and `interval` the largest frame
    ///   step seen in the segment. Keeping this frame would make the segment
    ///   last at least until the next frame, about `elapsed + interval`, which
    ///   rounds above the target (RFC 8216 4.3.3.1: rounding to nearest, so
    ///   `d` rounds to at most `T` exactly when `d < T + 0.5`). Cutting before
    ///   it closes the segment at `elapsed`, which the previous frame's check
    ///   kept below `T + 0.5`. The largest step rather than the last one is used
    ///   because RTMP millisecond timestamps jitter (30 fps is 33, 33, 34 ms):
    ///   the last step alone can under-predict by a millisecond and let a
    ///   segment of exactly `T + 0.5` s through. The bound holds whenever no
    ///   frame step exceeds the largest earlier step of its segment; a stall
    ///   longer than that can't be foreseen. `T + 0.5 s` is taken as
    ///   `T + 0.4995 s` because EXTINF is itself written rounded to milliseconds.
    /// - a backward DTS step, or a forward step of more than ten target
    ///   durations, cuts with `discontinuity: true`; so does, under
    ///   [`CutPolicy::BoundedByTarget`], a forward step that puts the frame
    ///   `T + 0.5 s` or more past the segment start (an encoder that stalled
    ///   or dropped frames): closing the segment at that frame would give an
    ///   EXTINF above the target, so it closes at its own last frame and the
    ///   gap becomes a discontinuity rather than a too-long segment;
    /// - when the set of tracks changes, audio keeps flowing into the open
    ///   segment if it carries audio, frames of the new track are dropped, and
    ///   the next keyframe of the deciding track cuts with `discontinuity: true`
    ///   (RFC 8216 4.3.2.3: a change in the number or type of tracks); so does
    ///   a forced cut that comes first. A codec configuration change
    ///   ([`Segmenter::config_changed`]) is handled the same way.
    pub fn decide(&mut self, au: &AccessUnit<'_>, tracks: Tracks) -> Decision {
        if !carries(tracks, au.track) {
            return self.drop();
        }
        let deciding = if tracks.video.is_some() {
            Track::Video
        } else {
            Track::Audio
        };
        let Some(open) = self.open else {
            if au.track == deciding && au.keyframe {
                return self.open_at(au, deciding, tracks, None, false);
            }
            return self.drop();
        };

        if open.track != deciding {
            return self.switch_track(open, au, deciding, tracks);
        }
        if au.track != deciding {
            return self.follow(&open, au.track);
        }

        let dts = au.dts_90k;
        let bounded = self.policy == CutPolicy::BoundedByTarget;
        // dts >= last_dts >= start_dts when the step is not negative.
        let step = dts
            .checked_sub(open.last_dts_90k)
            .filter(|s| *s <= self.jump_90k && !(bounded && dts - open.start_dts_90k >= self.limit_90k));
        let Some(step) = step else {
            let closed = self.tail_duration(&open);
            self.last_keyframe_dts_90k = None;
            return self.open_at(au, deciding, tracks, Some(closed), true);
        };
        if step > 0 {
            self.last_interval_90k = step;
        }
        let max_interval_90k = open.max_interval_90k.max(step);
        // dts >= last_dts >= start_dts inside a segment, so this cannot underflow.
        let elapsed = dts - open.start_dts_90k;

        // A cut while the track set differs from the open segment's PMT, or
        // after a codec configuration changed, is a discontinuity; at a
        // keyframe it cuts at once.
        let tracks_changed = tracks != open.tracks || self.config_changed;
        if au.keyframe {
            if let Some(prev) = self.last_keyframe_dts_90k {
                self.gop_90k = dts.checked_sub(prev).filter(|g| *g > 0).or(self.gop_90k);
            }
            self.last_keyframe_dts_90k = Some(dts);
            let early = self.policy == CutPolicy::BoundedByTarget
                && elapsed.saturating_mul(2) >= self.target_90k
                && self
                    .gop_90k
                    .is_some_and(|gop| elapsed.saturating_add(gop) >= self.limit_90k);
            if tracks_changed || early || elapsed >= self.target_90k {
                return self.open_at(au, deciding, tracks, Some(elapsed), tracks_changed);
            }
        }
        if self.policy == CutPolicy::BoundedByTarget && elapsed.saturating_add(max_interval_90k) >= self.limit_90k {
            return self.open_at(au, deciding, tracks, Some(elapsed), tracks_changed);
        }

        self.open = Some(Open {
            last_dts_90k: dts,
            max_interval_90k,
            ..open
        });
        Decision::Continue
    }

    /// The open segment is on another track than the deciding one: video
    /// appeared in a stream that started audio-only. The open segment goes on
    /// with audio until a video keyframe can start a new one.
    fn switch_track(&mut self, open: Open, au: &AccessUnit<'_>, deciding: Track, tracks: Tracks) -> Decision {
        if au.track == deciding {
            if au.keyframe {
                let closed = self.tail_duration(&open);
                // Keyframe spacing and steps measured on the old track mean
                // nothing for the new one.
                self.last_keyframe_dts_90k = None;
                self.gop_90k = None;
                return self.open_at(au, deciding, tracks, Some(closed), true);
            }
            return self.drop();
        }
        if au.track == open.track {
            // Keep measuring the open segment so its duration stays right.
            let step = au.dts_90k.checked_sub(open.last_dts_90k);
            if let Some(step) = step.filter(|s| *s <= self.jump_90k) {
                if step > 0 {
                    self.last_interval_90k = step;
                }
                self.open = Some(Open {
                    last_dts_90k: au.dts_90k,
                    ..open
                });
            }
            return Decision::Continue;
        }
        self.follow(&open, au.track)
    }

    /// Closes the open segment at the end of the stream and returns its
    /// duration in seconds: last DTS plus one frame interval minus first DTS
    /// (on the deciding track). `None` when no segment is open. The next
    /// access unit starts afresh, as at the beginning of a stream.
    pub fn finish(&mut self) -> Option<f64> {
        self.config_changed = false;
        let open = self.open.take()?;
        let secs = ticks_to_secs(self.tail_duration(&open));
        self.last_keyframe_dts_90k = None;
        self.last_interval_90k = 0;
        Some(secs)
    }

    /// Reports that a track's codec configuration changed mid-stream: a new
    /// AVC sequence header with other parameter sets (an encoder restarting
    /// with a new resolution) or a new AAC config. The next keyframe of the
    /// deciding track then cuts with a discontinuity: RFC 8216 4.3.2.3 asks
    /// for one on a change of encoding parameters, and players set their
    /// decoders up again there (hls.js builds a new MSE init segment from the
    /// parameter sets it finds) rather than expecting them to change in the
    /// middle of a run. Nothing to do before the first segment.
    pub fn config_changed(&mut self) {
        self.config_changed = self.open.is_some();
    }

    /// First DTS (90 kHz) of the open segment on its deciding track.
    pub fn segment_start_dts_90k(&self) -> Option<u64> {
        self.open.map(|o| o.start_dts_90k)
    }

    /// The target duration in seconds (at least 1).
    pub fn target_duration_secs(&self) -> u32 {
        self.target_secs
    }

    /// The policy given at construction.
    pub fn policy(&self) -> CutPolicy {
        self.policy
    }

    /// Cuts so far whose new segment does not start with a keyframe.
    pub fn forced_cuts(&self) -> u64 {
        self.forced_cuts
    }

    /// Cuts so far that were reported with `discontinuity: true`.
    pub fn discontinuities(&self) -> u64 {
        self.discontinuities
    }

    /// Access units answered with [`Decision::Drop`] so far.
    pub fn dropped_access_units(&self) -> u64 {
        self.dropped
    }

    fn drop(&mut self) -> Decision {
        self.dropped += 1;
        Decision::Drop
    }

    /// A non-deciding access unit joins the open segment if its PMT has the track.
    fn follow(&mut self, open: &Open, track: Track) -> Decision {
        if carries(open.tracks, track) {
            Decision::Continue
        } else {
            self.drop()
        }
    }

    /// Duration of a segment measured to the end of its last frame.
    fn tail_duration(&self, open: &Open) -> u64 {
        // last_dts >= start_dts inside a segment (jumps never enter one).
        (open.last_dts_90k - open.start_dts_90k).saturating_add(self.last_interval_90k)
    }

    fn open_at(
        &mut self,
        au: &AccessUnit<'_>,
        track: Track,
        tracks: Tracks,
        closed_90k: Option<u64>,
        discontinuity: bool,
    ) -> Decision {
        let forced = !au.keyframe;
        if forced {
            self.forced_cuts += 1;
        }
        if discontinuity {
            self.discontinuities += 1;
        }
        self.config_changed = false;
        if au.keyframe && self.last_keyframe_dts_90k.is_none() {
            self.last_keyframe_dts_90k = Some(au.dts_90k);
        }
        self.open = Some(Open {
            track,
            tracks,
            start_dts_90k: au.dts_90k,
            last_dts_90k: au.dts_90k,
            max_interval_90k: 0,
        });
        Decision::Cut {
            closed_duration_secs: closed_90k.map(ticks_to_secs),
            forced,
            discontinuity,
        }
    }
}

/// Whether a program with `tracks` declares `track`.
fn carries(tracks: Tracks, track: Track) -> bool {
    match track {
        Track::Video => tracks.video.is_some(),
        Track::Audio => tracks.audio.is_some(),
    }
}

fn ticks_to_secs(ticks: u64) -> f64 {
    ticks as f64 / CLOCK_90K as f64
}

#[cfg(test)]
mod tests;
