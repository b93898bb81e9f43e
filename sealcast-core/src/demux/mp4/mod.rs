//! ISO BMFF / MP4 (ISO/IEC 14496-12) input: box headers, the `moov` with
//! its sample tables, and `moof` fragments, H.264 (ISO/IEC 14496-15) and AAC
//! (ISO/IEC 14496-3) only.
//!
//! Nothing here reads the file. The caller walks the top-level boxes with
//! [`box_header`], hands the `moov` and each `moof` over whole (both are
//! bounded: [`MAX_MOOV_BYTES`], [`MAX_MOOF_BYTES`]), and reads each
//! [`Sample`]'s bytes at the offset it names: `mdat` is never held.

mod boxes;
mod tables;
#[cfg(test)]
mod tests;

pub use boxes::{BoxHeader, box_header};
pub use tables::SampleTable;

use super::{Error, FourCc};
use crate::media::Track;
use boxes::{Reader, children, find};

/// The largest `moov` held in memory: its sample tables for hours of
/// 60 fps video take a few MB.
pub const MAX_MOOV_BYTES: u64 = 64 << 20;
/// The largest `moof` held in memory.
pub const MAX_MOOF_BYTES: u64 = 16 << 20;
/// The most samples one track or one fragment may declare.
pub const MAX_SAMPLES: u64 = 1 << 24;

/// One sample: where its bytes are and when it is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub track: Track,
    /// Absolute file offset of the sample's first byte.
    pub offset: u64,
    pub size: u32,
    /// Decode time in the track's timescale.
    pub dts: u64,
    /// Composition offset (ctts/trun): pts = dts + cts.
    pub cts: i64,
    pub keyframe: bool,
}

impl Sample {
    /// Orders samples of two tracks by decode time in seconds.
    pub fn before(&self, other: &Sample, timescale: u32, other_timescale: u32) -> bool {
        u128::from(self.dts) * u128::from(other_timescale) <= u128::from(other.dts) * u128::from(timescale)
    }
}

/// A track sealcast packages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    pub kind: Track,
    pub track_id: u32,
    /// Ticks per second of the track's times (mdhd).
    pub timescale: u32,
    /// AVCDecoderConfigurationRecord (avcC, ISO/IEC 14496-15 5.3.3.1) or
    /// AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1): the body of the FLV
    /// sequence header.
    pub config: Vec<u8>,
    /// Presentation shift from the edit list (ISO/IEC 14496-12 8.6.6), in
    /// the track's timescale: the media time shown first, less any empty
    /// edit before it. Subtracted from every time of the track.
    pub edit_shift: i64,
    /// Defaults for fragments (trex, 8.8.3).
    defaults: FragmentDefaults,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct FragmentDefaults {
    duration: u32,
    size: u32,
    flags: u32,
}

/// The parsed `moov`: the packaged tracks and their sample tables (empty for
/// a fragmented file, whose samples are in `moof`s).
#[derive(Debug)]
pub struct Movie {
    pub video: Option<(TrackInfo, SampleTable)>,
    pub audio: Option<(TrackInfo, SampleTable)>,
    /// Next decode time per track for fragments without `tfdt`.
    next_dts: [u64; 2],
}

impl Movie {
    /// Parses a whole `moov` box body (without its header).
    pub fn parse(moov: &[u8]) -> Result<Movie, Error> {
        let movie_timescale = match find(moov, b"mvhd")? {
            Some(mvhd) => mvhd_timescale(mvhd)?,
            None => return Err(Error::Missing("mvhd")),
        };
        let mut trex = Vec::new();
        if let Some(mvex) = find(moov, b"mvex")? {
            for child in children(mvex) {
                let (kind, body) = child?;
                if &kind.0 == b"trex" {
                    trex.push(parse_trex(body)?);
                }
            }
        }
        let mut movie = Movie {
            video: None,
            audio: None,
            next_dts: [0; 2],
        };
        for child in children(moov) {
            let (kind, body) = child?;
            if &kind.0 != b"trak" {
                continue;
            }
            let Some((mut info, table)) = parse_trak(body, movie_timescale)? else {
                continue;
            };
            if let Some((_, defaults)) = trex.iter().find(|(id, _)| *id == info.track_id) {
                info.defaults = *defaults;
            }
            let slot = match info.kind {
                Track::Video => &mut movie.video,
                Track::Audio => &mut movie.audio,
            };
            // The first track of each kind is packaged; later ones are ignored.
            if slot.is_none() {
                *slot = Some((info, table));
            }
        }
        if movie.video.is_none() && movie.audio.is_none() {
            return Err(Error::NoTracks);
        }
        Ok(movie)
    }

    /// The packaged track of `kind`.
    pub fn track(&self, kind: Track) -> Option<&TrackInfo> {
        match kind {
            Track::Video => self.video.as_ref().map(|(info, _)| info),
            Track::Audio => self.audio.as_ref().map(|(info, _)| info),
        }
    }

    /// The samples of one `moof` (ISO/IEC 14496-12 8.8.4), given its body and
    /// the file offset of its first byte (header included), in decode order
    /// per track. Tracks that are not packaged are skipped.
    pub fn fragment(&mut self, moof: &[u8], moof_offset: u64) -> Result<Vec<Sample>, Error> {
        let mut samples = Vec::new();
        for child in children(moof) {
            let (kind, body) = child?;
            if &kind.0 == b"traf" {
                self.traf(body, moof_offset, &mut samples)?;
            }
        }
        Ok(samples)
    }

    fn traf(&mut self, traf: &[u8], moof_offset: u64, out: &mut Vec<Sample>) -> Result<(), Error> {
        let tfhd = find(traf, b"tfhd")?.ok_or(Error::Missing("tfhd"))?;
        let header = parse_tfhd(tfhd)?;
        let (kind, defaults) = match [&self.video, &self.audio]
            .into_iter()
            .flatten()
            .find(|(info, _)| info.track_id == header.track_id)
        {
            Some((info, _)) => (info.kind, info.defaults),
            None => return Ok(()),
        };
        let slot = match kind {
            Track::Video => 0,
            Track::Audio => 1,
        };
        if let Some(tfdt) = find(traf, b"tfdt")? {
            self.next_dts[slot] = parse_tfdt(tfdt)?;
        }
        let mut fragment = tables::Fragment {
            track: kind,
            base_offset: header.base_offset.unwrap_or(moof_offset),
            next_offset: None,
            dts: self.next_dts[slot],
            duration: header.duration.unwrap_or(defaults.duration),
            size: header.size.unwrap_or(defaults.size),
            flags: header.flags.unwrap_or(defaults.flags),
        };
        for child in children(traf) {
            let (kind, body) = child?;
            if &kind.0 == b"trun" {
                fragment.trun(body, out)?;
            }
        }
        self.next_dts[slot] = fragment.dts;
        Ok(())
    }
}

/// mvhd (8.2.2): the movie timescale, which edit list durations use.
fn mvhd_timescale(mvhd: &[u8]) -> Result<u32, Error> {
    let mut r = Reader::new(mvhd, "mvhd");
    let version = r.u8()?;
    r.skip(3)?;
    r.skip(if version == 1 { 16 } else { 8 })?;
    r.u32()
}

/// trex (8.8.3): track_ID and the defaults of its fragments.
fn parse_trex(trex: &[u8]) -> Result<(u32, FragmentDefaults), Error> {
    let mut r = Reader::new(trex, "trex");
    r.skip(4)?;
    let track_id = r.u32()?;
    r.skip(4)?; // default_sample_description_index
    let defaults = FragmentDefaults {
        duration: r.u32()?,
        size: r.u32()?,
        flags: r.u32()?,
    };
    Ok((track_id, defaults))
}

/// tfhd (8.8.7) fields, each present when its tf_flags bit is set.
struct Tfhd {
    track_id: u32,
    base_offset: Option<u64>,
    duration: Option<u32>,
    size: Option<u32>,
    flags: Option<u32>,
}

fn parse_tfhd(tfhd: &[u8]) -> Result<Tfhd, Error> {
    let mut r = Reader::new(tfhd, "tfhd");
    let flags = r.u32()? & 0x00FF_FFFF;
    let track_id = r.u32()?;
    let opt32 = |bit: u32, r: &mut Reader<'_>| -> Result<Option<u32>, Error> {
        if flags & bit != 0 { r.u32().map(Some) } else { Ok(None) }
    };
    let base_offset = if flags & 0x1 != 0 { Some(r.u64()?) } else { None };
    let _description = opt32(0x2, &mut r)?;
    Ok(Tfhd {
        track_id,
        base_offset,
        duration: opt32(0x8, &mut r)?,
        size: opt32(0x10, &mut r)?,
        flags: opt32(0x20, &mut r)?,
    })
}

/// tfdt (8.8.12): baseMediaDecodeTime, 32 or 64 bits by version.
fn parse_tfdt(tfdt: &[u8]) -> Result<u64, Error> {
    let mut r = Reader::new(tfdt, "tfdt");
    let version = r.u8()?;
    r.skip(3)?;
    if version == 1 { r.u64() } else { r.u32().map(u64::from) }
}

/// One `trak`: `None` for tracks that are neither video nor sound (text,
/// timecode, hint), an error for video or sound in a codec sealcast cannot
/// carry.
fn parse_trak(trak: &[u8], movie_timescale: u32) -> Result<Option<(TrackInfo, SampleTable)>, Error> {
    let tkhd = find(trak, b"tkhd")?.ok_or(Error::Missing("tkhd"))?;
    let mut r = Reader::new(tkhd, "tkhd");
    let version = r.u8()?;
    r.skip(3)?;
    r.skip(if version == 1 { 16 } else { 8 })?;
    let track_id = r.u32()?;

    let mdia = find(trak, b"mdia")?.ok_or(Error::Missing("mdia"))?;
    let hdlr = find(mdia, b"hdlr")?.ok_or(Error::Missing("hdlr"))?;
    let mut r = Reader::new(hdlr, "hdlr");
    r.skip(8)?;
    let kind = match &r.fourcc()?.0 {
        b"vide" => Track::Video,
        b"soun" => Track::Audio,
        _ => return Ok(None),
    };
    let mdhd = find(mdia, b"mdhd")?.ok_or(Error::Missing("mdhd"))?;
    let mut r = Reader::new(mdhd, "mdhd");
    let version = r.u8()?;
    r.skip(3)?;
    r.skip(if version == 1 { 16 } else { 8 })?;
    let timescale = r.u32()?;
    if timescale == 0 {
        return Err(Error::Invalid("mdhd timescale 0"));
    }
    let minf = find(mdia, b"minf")?.ok_or(Error::Missing("minf"))?;
    let stbl = find(minf, b"stbl")?.ok_or(Error::Missing("stbl"))?;
    let stsd = find(stbl, b"stsd")?.ok_or(Error::Missing("stsd"))?;
    let config = boxes::sample_entry_config(stsd, kind)?;
    let edit_shift = match find(trak, b"edts")? {
        Some(edts) => match find(edts, b"elst")? {
            Some(elst) => boxes::edit_shift(elst, movie_timescale, timescale)?,
            None => 0,
        },
        None => 0,
    };
    let table = SampleTable::parse(stbl, kind)?;
    let info = TrackInfo {
        kind,
        track_id,
        timescale,
        config,
        edit_shift,
        defaults: FragmentDefaults::default(),
    };
    Ok(Some((info, table)))
}
