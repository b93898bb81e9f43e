//! Sample tables (ISO/IEC 14496-12 8.6, 8.7) of a progressive file, walked
//! sample by sample, and track fragment runs (8.8.8) of a fragmented one.

use super::boxes::{Reader, find};
use super::{Error, MAX_SAMPLES, Sample};
use crate::media::Track;

/// The most samples one `moof` may list (all its `trun`s together).
pub const MAX_FRAGMENT_SAMPLES: u64 = 1 << 18;

/// One track's sample tables, as read from its `stbl`.
#[derive(Debug, Default)]
pub struct SampleTable {
    track: Option<Track>,
    /// stts (8.6.1.2): (sample_count, sample_delta).
    stts: Vec<(u32, u32)>,
    /// ctts (8.6.1.3): (sample_count, sample_offset); version 1 offsets are
    /// signed, and version 0 ones are read the same way (as ffmpeg does).
    ctts: Vec<(u32, i32)>,
    /// stsc (8.7.4): (first_chunk, samples_per_chunk), first_chunk from 1.
    stsc: Vec<(u32, u32)>,
    /// stsz (8.7.3.2): one size for all samples, or one per sample.
    constant_size: u32,
    sizes: Vec<u32>,
    count: u32,
    /// stco / co64 (8.7.5).
    chunk_offsets: Vec<u64>,
    /// stss (8.6.2): 1-based numbers of sync samples; `None`: all are.
    sync: Option<Vec<u32>>,
}

/// Reads a FullBox table header and checks `entry_count * entry_len` fits
/// the body before anything is allocated for it.
fn table_of<'a>(body: &'a [u8], what: &'static str, entry_len: usize) -> Result<(Reader<'a>, u32), Error> {
    let mut r = Reader::new(body, what);
    r.skip(4)?;
    let count = r.u32()?;
    if u64::from(count) * entry_len as u64 > r.remaining() as u64 {
        return Err(Error::Truncated(what));
    }
    Ok((r, count))
}

fn pairs<T>(body: &[u8], what: &'static str, f: impl Fn(u32, u32) -> T) -> Result<Vec<T>, Error> {
    let (mut r, count) = table_of(body, what, 8)?;
    (0..count).map(|_| Ok(f(r.u32()?, r.u32()?))).collect()
}

impl SampleTable {
    /// Parses the tables of an `stbl` body. A fragmented file's tables are
    /// empty, which is allowed.
    pub fn parse(stbl: &[u8], track: Track) -> Result<SampleTable, Error> {
        let mut table = SampleTable {
            track: Some(track),
            ..SampleTable::default()
        };
        table.stts = pairs(find(stbl, b"stts")?.ok_or(Error::Missing("stts"))?, "stts", |n, d| {
            (n, d)
        })?;
        if let Some(ctts) = find(stbl, b"ctts")? {
            table.ctts = pairs(ctts, "ctts", |n, o| (n, o as i32))?;
        }
        // stsc entries are 12 bytes: first_chunk, samples_per_chunk, sample_description_index.
        let (mut r, count) = table_of(find(stbl, b"stsc")?.ok_or(Error::Missing("stsc"))?, "stsc", 12)?;
        table.stsc = (0..count)
            .map(|_| {
                let entry = (r.u32()?, r.u32()?);
                r.skip(4)?;
                Ok(entry)
            })
            .collect::<Result<_, Error>>()?;
        if let Some(stsz) = find(stbl, b"stsz")? {
            let mut r = Reader::new(stsz, "stsz");
            r.skip(4)?;
            table.constant_size = r.u32()?;
            table.count = r.u32()?;
            if table.constant_size == 0 {
                if u64::from(table.count) * 4 > r.remaining() as u64 {
                    return Err(Error::Truncated("stsz"));
                }
                table.sizes = (0..table.count).map(|_| r.u32()).collect::<Result<_, _>>()?;
            }
        } else if find(stbl, b"stz2")?.is_some() {
            return Err(Error::Invalid("stz2 (compact sample sizes are not supported)"));
        } else {
            return Err(Error::Missing("stsz"));
        }
        if u64::from(table.count) > MAX_SAMPLES {
            return Err(Error::TooManySamples {
                what: "stsz",
                count: table.count.into(),
                limit: MAX_SAMPLES,
            });
        }
        if let Some(stco) = find(stbl, b"stco")? {
            let (mut r, count) = table_of(stco, "stco", 4)?;
            table.chunk_offsets = (0..count).map(|_| r.u32().map(u64::from)).collect::<Result<_, _>>()?;
        } else if let Some(co64) = find(stbl, b"co64")? {
            let (mut r, count) = table_of(co64, "co64", 8)?;
            table.chunk_offsets = (0..count).map(|_| r.u64()).collect::<Result<_, _>>()?;
        } else {
            return Err(Error::Missing("stco"));
        }
        if let Some(stss) = find(stbl, b"stss")? {
            let (mut r, count) = table_of(stss, "stss", 4)?;
            table.sync = Some((0..count).map(|_| r.u32()).collect::<Result<_, _>>()?);
        }
        let timed: u64 = table.stts.iter().map(|&(n, _)| u64::from(n)).sum();
        if timed != u64::from(table.count) {
            return Err(Error::TablesDisagree("stts and stsz count different samples"));
        }
        Ok(table)
    }

    /// Number of samples.
    pub fn len(&self) -> u32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Walks the samples in decode order. Tables that disagree (a chunk
    /// past stco, ctts shorter than stsz) end the walk with an error.
    pub fn samples(&self) -> Samples<'_> {
        Samples {
            table: self,
            index: 0,
            stts: (0, 0),
            ctts: (0, 0),
            stsc: 0,
            chunk: None,
            chunk_left: 0,
            offset: 0,
            dts: 0,
            stss: 0,
            failed: false,
        }
    }
}

/// Iterator over a [`SampleTable`]'s samples.
pub struct Samples<'a> {
    table: &'a SampleTable,
    index: u32,
    /// (entry, samples of it used) in stts and ctts.
    stts: (usize, u32),
    ctts: (usize, u32),
    stsc: usize,
    /// Current chunk, 0-based.
    chunk: Option<usize>,
    chunk_left: u32,
    offset: u64,
    dts: u64,
    stss: usize,
    failed: bool,
}

/// Moves a run-length cursor one sample on; the value of the run it lands in.
fn run<T: Copy>(entries: &[(u32, T)], cursor: &mut (usize, u32)) -> Option<T> {
    while entries.get(cursor.0).is_some_and(|&(count, _)| cursor.1 >= count) {
        *cursor = (cursor.0 + 1, 0);
    }
    let &(_, value) = entries.get(cursor.0)?;
    cursor.1 += 1;
    Some(value)
}

impl Samples<'_> {
    fn next_chunk(&mut self) -> Result<(), Error> {
        let t = self.table;
        while self.chunk_left == 0 {
            let chunk = self.chunk.map_or(0, |c| c + 1);
            self.chunk = Some(chunk);
            self.offset = *t
                .chunk_offsets
                .get(chunk)
                .ok_or(Error::TablesDisagree("stsc and stsz need more chunks than stco lists"))?;
            let number = chunk as u64 + 1;
            while t
                .stsc
                .get(self.stsc + 1)
                .is_some_and(|&(first, _)| u64::from(first) <= number)
            {
                self.stsc += 1;
            }
            let &(first, per_chunk) = t.stsc.get(self.stsc).ok_or(Error::Missing("stsc entries"))?;
            if u64::from(first) > number {
                return Err(Error::Invalid("stsc (first entry does not start at chunk 1)"));
            }
            self.chunk_left = per_chunk;
        }
        Ok(())
    }

    fn sample(&mut self) -> Result<Sample, Error> {
        let t = self.table;
        let index = self.index as usize;
        let size = if t.constant_size != 0 {
            t.constant_size
        } else {
            t.sizes[index]
        };
        let delta = run(&t.stts, &mut self.stts).ok_or(Error::TablesDisagree("stts shorter than stsz"))?;
        let cts = if t.ctts.is_empty() {
            0
        } else {
            run(&t.ctts, &mut self.ctts).ok_or(Error::TablesDisagree("ctts shorter than stsz"))?
        };
        self.next_chunk()?;
        let offset = self.offset;
        self.offset = offset.checked_add(size.into()).ok_or(Error::Invalid("sample offset"))?;
        self.chunk_left -= 1;
        let dts = self.dts;
        self.dts = dts.saturating_add(delta.into());
        let number = self.index + 1;
        let keyframe = match &t.sync {
            None => true,
            Some(sync) => {
                while sync.get(self.stss).is_some_and(|&n| n < number) {
                    self.stss += 1;
                }
                sync.get(self.stss) == Some(&number)
            }
        };
        Ok(Sample {
            track: t.track.unwrap_or(Track::Video),
            offset,
            size,
            dts,
            cts: cts.into(),
            keyframe,
        })
    }
}

impl Iterator for Samples<'_> {
    type Item = Result<Sample, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.index >= self.table.count {
            return None;
        }
        let sample = self.sample();
        self.index += 1;
        self.failed = sample.is_err();
        Some(sample)
    }
}

/// One track fragment being read: tfhd/trex defaults and where the next
/// run's data starts (8.8.7, 8.8.8).
pub(super) struct Fragment {
    pub track: Track,
    pub base_offset: u64,
    /// End of the previous run's data: where a run without data_offset starts.
    pub next_offset: Option<u64>,
    pub dts: u64,
    pub duration: u32,
    pub size: u32,
    pub flags: u32,
}

/// sample_is_non_sync_sample in the sample flags (8.8.3.1).
const NON_SYNC: u32 = 0x0001_0000;

impl Fragment {
    /// Appends the samples of one trun.
    pub fn trun(&mut self, trun: &[u8], out: &mut Vec<Sample>) -> Result<(), Error> {
        let mut r = Reader::new(trun, "trun");
        let version = r.u8()?;
        let f = {
            let b = r.take(3)?;
            u32::from_be_bytes([0, b[0], b[1], b[2]])
        };
        let count = r.u32()?;
        let total = out.len() as u64 + u64::from(count);
        if total > MAX_FRAGMENT_SAMPLES {
            return Err(Error::TooManySamples {
                what: "moof",
                count: total,
                limit: MAX_FRAGMENT_SAMPLES,
            });
        }
        let data_offset = if f & 0x1 != 0 { Some(r.u32()? as i32) } else { None };
        let first_flags = if f & 0x4 != 0 { Some(r.u32()?) } else { None };
        let per_sample = [0x100, 0x200, 0x400, 0x800].iter().filter(|&&bit| f & bit != 0).count() * 4;
        if u64::from(count) * per_sample as u64 > r.remaining() as u64 {
            return Err(Error::Truncated("trun"));
        }
        let mut offset = match data_offset {
            Some(delta) => self
                .base_offset
                .checked_add_signed(delta.into())
                .ok_or(Error::Invalid("trun data_offset"))?,
            None => self.next_offset.unwrap_or(self.base_offset),
        };
        out.reserve(count as usize);
        for i in 0..count {
            let duration = if f & 0x100 != 0 { r.u32()? } else { self.duration };
            let size = if f & 0x200 != 0 { r.u32()? } else { self.size };
            let flags = if f & 0x400 != 0 { r.u32()? } else { self.flags };
            let flags = if i == 0 { first_flags.unwrap_or(flags) } else { flags };
            let cts = if f & 0x800 != 0 {
                // Version 1 offsets are signed; version 0 ones are read the
                // same way, as ffmpeg does (some muxers write negative ones).
                let _ = version;
                i64::from(r.u32()? as i32)
            } else {
                0
            };
            out.push(Sample {
                track: self.track,
                offset,
                size,
                dts: self.dts,
                cts,
                keyframe: flags & NON_SYNC == 0,
            });
            offset = offset
                .checked_add(size.into())
                .ok_or(Error::Invalid("trun sample offset"))?;
            self.dts = self.dts.saturating_add(duration.into());
        }
        self.next_offset = Some(offset);
        Ok(())
    }
}
