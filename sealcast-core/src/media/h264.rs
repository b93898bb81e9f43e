//! H.264 access units in the two framings that meet in sealcast: the
//! length-prefixed NAL units of ISO/IEC 14496-15 (what FLV and MP4 carry) and
//! the Annex B byte stream (ITU-T H.264 Annex B, what MPEG-TS carries).
//! [`AnnexB`] describes the rewrite of one sample without copying it.

/// Annex B start code; the 4-byte form (with zero_byte) is valid before every
/// NAL unit and required before parameter sets and an access unit's first
/// NAL unit (H.264 B.1.2), so it is used throughout.
pub const START_CODE: &[u8] = &[0, 0, 0, 1];
/// Access unit delimiter with primary_pic_type 7 ("any slice type") and the
/// RBSP stop bit, with its start code.
pub const AUD: &[u8] = &[0, 0, 0, 1, 0x09, 0xF0];

/// NAL unit types (H.264 Table 7-1) the rewrite cares about.
pub const NAL_IDR: u8 = 5;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;
pub const NAL_AUD: u8 = 9;

/// Why a length-prefixed sample cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NalError {
    /// The sample ends inside a NAL unit's length prefix.
    #[error("truncated NAL unit length prefix")]
    TruncatedLength,
    /// A NAL unit's length runs past the end of the sample.
    #[error("NAL unit length {length} past the end of the sample ({remaining} bytes left)")]
    LengthPastEnd { length: usize, remaining: usize },
}

/// The NAL units of a sample whose length prefixes are `length_size` bytes
/// (1, 2 or 4).
pub fn nals(sample: &[u8], length_size: u8) -> Nals<'_> {
    Nals {
        rest: sample,
        length_size: usize::from(length_size),
    }
}

/// Iterates over the NAL units of an AVC sample (length-prefixed, ISO/IEC
/// 14496-15 5.3.4.2). Zero-length NAL units are yielded as empty slices.
pub struct Nals<'a> {
    rest: &'a [u8],
    length_size: usize,
}

impl<'a> Iterator for Nals<'a> {
    type Item = Result<&'a [u8], NalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let Some(prefix) = self.rest.get(..self.length_size) else {
            self.rest = &[];
            return Some(Err(NalError::TruncatedLength));
        };
        let length = prefix.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let body = &self.rest[self.length_size..];
        let Some(nal) = body.get(..length) else {
            self.rest = &[];
            return Some(Err(NalError::LengthPastEnd {
                length,
                remaining: body.len(),
            }));
        };
        self.rest = &body[length..];
        Some(Ok(nal))
    }
}

/// NAL unit type of a non-empty NAL unit (H.264 7.3.1).
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|h| h & 0x1F)
}

/// An AVC sample (ISO/IEC 14496-15 length-prefixed NAL units) and how it is
/// written as an Annex B access unit (H.264 7.4.1.2.3): an access unit
/// delimiter first (the sample's own if it starts with one, else
/// `00 00 00 01 09 F0`; later AUDs are misplaced and dropped), then the
/// parameter sets (for an IDR picture that does not carry them in band)
/// before the first other NAL unit, then the NAL units in order, each after a
/// 4-byte start code. Empty NAL units are skipped.
///
/// Built (by the FLV demuxer) after every NAL length was checked against the
/// sample, which is why reading it has no error case.
#[derive(Debug, Clone, Copy)]
pub struct AnnexB<'a> {
    sample: &'a [u8],
    length_size: u8,
    /// SPS and PPS with start codes, or empty when none are to be inserted.
    param_sets: &'a [u8],
    insert_aud: bool,
    len: usize,
}

impl<'a> AnnexB<'a> {
    /// `sample` must be well formed: every length prefix of `length_size`
    /// bytes (1, 2 or 4) is followed by that many bytes, to the end.
    pub fn new(sample: &'a [u8], length_size: u8, param_sets: &'a [u8], insert_aud: bool) -> Self {
        let mut annex_b = Self {
            sample,
            length_size,
            param_sets,
            insert_aud,
            len: 0,
        };
        // Derived from the slices themselves, so the two cannot disagree; a
        // walk over a frame's few NAL headers, not its bytes.
        annex_b.len = annex_b.slices().map(<[u8]>::len).sum();
        annex_b
    }

    /// Length in bytes of the Annex B access unit.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The access unit as consecutive slices of the sample and constants.
    pub fn slices(&self) -> AnnexBSlices<'a> {
        AnnexBSlices {
            nals: nals(self.sample, self.length_size),
            param_sets: self.param_sets,
            queued: [&[]; 3],
            queued_len: 0,
            // The sample's own AUD is written when it comes first.
            aud_written: self.insert_aud,
            insert_aud: self.insert_aud,
        }
    }
}

/// Iterator over the slices of an [`AnnexB`] access unit.
pub struct AnnexBSlices<'a> {
    nals: Nals<'a>,
    param_sets: &'a [u8],
    /// Slices decided but not yet returned, last first.
    queued: [&'a [u8]; 3],
    queued_len: usize,
    aud_written: bool,
    /// An AUD is still to be written before the sample's NAL units.
    insert_aud: bool,
}

impl<'a> AnnexBSlices<'a> {
    fn queue(&mut self, slices: &[&'a [u8]]) {
        for (slot, slice) in self.queued.iter_mut().zip(slices.iter().rev()) {
            *slot = slice;
        }
        self.queued_len = slices.len();
    }
}

impl<'a> Iterator for AnnexBSlices<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.queued_len > 0 {
            self.queued_len -= 1;
            return Some(self.queued[self.queued_len]);
        }
        if std::mem::take(&mut self.insert_aud) {
            return Some(AUD);
        }
        loop {
            // A length error cannot happen (`AnnexB::new`'s contract); if it
            // did, the access unit would just end there.
            let nal = self.nals.next()?.ok()?;
            let Some(t) = nal_type(nal) else { continue };
            if t == NAL_AUD {
                if !self.aud_written {
                    self.aud_written = true;
                    self.queue(&[nal]);
                    return Some(START_CODE);
                }
                continue;
            }
            self.aud_written = true;
            if !self.param_sets.is_empty() {
                let param_sets = std::mem::take(&mut self.param_sets);
                self.queue(&[START_CODE, nal]);
                return Some(param_sets);
            }
            self.queue(&[nal]);
            return Some(START_CODE);
        }
    }
}
