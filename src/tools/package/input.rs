//! The IO side of `sealcast package`'s inputs: reads an FLV, MP4 or MPEG-TS
//! file through the sans-IO demuxers of [`crate::demux`] and feeds the FLV
//! tag bodies they describe into the [`Packager`].
//!
//! MP4 and TS are read piece by piece with positioned reads (no mmap, no
//! whole-file read): a progressive MP4 is walked box header by box header to
//! find its `moov` wherever it is, then each sample is read at its offset.

use std::fs::File;
use std::io::IsTerminal;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{PackageError, Packager, io_err};
use crate::demux::mp4::{self, Movie, Sample, TrackInfo};
use crate::demux::{self, Format, flv_body};
use crate::flv::{self, TagKind};
use crate::media::Track;

/// The largest sample read into memory (a 4K intra frame is a few MB).
const MAX_SAMPLE_BYTES: u64 = 64 << 20;
/// How much of an MPEG-TS file is read at once: whole packets.
const TS_READ_BYTES: usize = crate::ts::PACKET_SIZE * 2048;
/// Where MPEG-TS input times start on the FLV clock: room for audio that
/// starts a little before the first video frame.
const TS_START_MS: u64 = 1_000;

/// How much of the input one read brings in: MP4 samples are read where
/// they lie, mostly one after the other, so a window this size turns
/// thousands of sample-sized `pread`s into a few large ones (mmap is out:
/// unsafe is forbidden).
const READ_WINDOW_BYTES: usize = 1 << 20;

/// An opened input and what it holds.
pub(super) struct InputFile {
    path: PathBuf,
    file: File,
    len: u64,
    pub(super) format: Format,
    progress: indicatif::ProgressBar,
    /// The last [`READ_WINDOW_BYTES`] read, and the offset it starts at.
    window: std::cell::RefCell<(u64, Vec<u8>)>,
}

impl InputFile {
    pub(super) fn open(path: &Path) -> Result<InputFile, PackageError> {
        let file = File::open(path).map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        let mut head = vec![0u8; len.min(512) as usize];
        file.read_exact_at(&mut head, 0).map_err(io_err(path))?;
        let format = demux::detect(&head).ok_or_else(|| PackageError::UnknownFormat(path.to_owned()))?;
        // A bar on a terminal only; hidden (and free) when stderr is a file or pipe.
        let progress = if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(len);
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {eta}")
            {
                bar.set_style(style);
            }
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        Ok(InputFile {
            path: path.to_owned(),
            file,
            len,
            format,
            progress,
            window: std::cell::RefCell::new((0, Vec::new())),
        })
    }

    fn demux_err(&self) -> impl FnOnce(demux::Error) -> PackageError + use<> {
        let path = self.path.clone();
        move |source| PackageError::Demux { path, source }
    }

    /// Fills `buf` from `offset`; an input that ends first is truncated.
    /// Small reads go through the read-ahead window.
    fn read_at(&self, offset: u64, buf: &mut [u8], what: &'static str) -> Result<(), PackageError> {
        let Some(end) = offset.checked_add(buf.len() as u64).filter(|&end| end <= self.len) else {
            return Err((self.demux_err())(demux::Error::Truncated(what)));
        };
        if buf.len() > READ_WINDOW_BYTES / 4 {
            return self.file.read_exact_at(buf, offset).map_err(io_err(&self.path));
        }
        let mut window = self.window.borrow_mut();
        let (start, bytes) = &mut *window;
        if offset < *start || end > *start + bytes.len() as u64 {
            // Refill from `offset`: `end - offset <= len - offset`, so the sample fits.
            let n = (self.len - offset).min(READ_WINDOW_BYTES as u64) as usize;
            bytes.resize(n, 0);
            self.file.read_exact_at(bytes, offset).map_err(io_err(&self.path))?;
            *start = offset;
        }
        // In the window now: both bounds checked just above.
        let from = (offset - *start) as usize;
        buf.copy_from_slice(&bytes[from..from + buf.len()]);
        Ok(())
    }
}

/// How much of an FLV file is read at once; a tag longer than this (at most
/// 16 MB, its DataSize is 24 bits) grows the buffer to fit it.
const FLV_READ_BYTES: usize = 1 << 20;

/// FLV: tags parsed out of a window that slides over the file.
pub(super) async fn flv(input: InputFile, packager: &mut Packager<'_>) -> Result<(), PackageError> {
    let flv_err = |source| PackageError::Flv {
        path: input.path.clone(),
        source,
    };
    let mut buf = Vec::with_capacity(FLV_READ_BYTES);
    let mut pos = 0u64;
    let mut start = 0usize;
    let mut header_done = false;
    loop {
        // Slide: keep the unparsed tail, read more behind it.
        buf.drain(..start);
        start = 0;
        let want = FLV_READ_BYTES.max(buf.len() * 2) - buf.len();
        let n = (input.len - pos).min(want as u64) as usize;
        let old = buf.len();
        buf.resize(old + n, 0);
        input.read_at(pos, &mut buf[old..], "FLV data")?;
        pos += n as u64;
        let at_end = pos == input.len;
        if !header_done {
            match flv::parse_file_header(&buf).map_err(flv_err)? {
                Some((_, consumed)) => {
                    start = consumed;
                    header_done = true;
                }
                None if at_end => return Err(flv_err(flv::Error::Truncated("FLV file header"))),
                None => continue,
            }
        }
        loop {
            match flv::parse_tag(&buf[start..]) {
                Ok(Some((tag, consumed))) => {
                    packager.push(tag.kind, tag.timestamp_ms, tag.body).await?;
                    start += consumed;
                }
                Ok(None) if !at_end => break,
                Ok(None) if start == buf.len() => return Ok(()),
                result => {
                    // A malformed or truncated tail: keep everything before it.
                    let error = result.err().unwrap_or(flv::Error::Truncated("FLV tag at end of file"));
                    tracing::warn!(%error, "stopping at a malformed FLV tag");
                    packager.skipped();
                    return Ok(());
                }
            }
        }
        input.progress.set_position(pos);
    }
}

/// Track times in milliseconds on one clock: each track's edit-list shift
/// taken off, then all moved by the largest shift so none is negative.
struct Clock {
    /// (timescale, shift) for video and audio.
    tracks: [(u32, i64); 2],
    base_ms: i128,
}

impl Clock {
    fn new(movie: &Movie) -> Clock {
        let track = |kind| {
            movie
                .track(kind)
                .map_or((1, 0), |t: &TrackInfo| (t.timescale, t.edit_shift))
        };
        let tracks = [track(Track::Video), track(Track::Audio)];
        let base_ms = tracks
            .iter()
            .map(|&(scale, shift)| (i128::from(shift) * 1000).div_euclid(i128::from(scale)) + 1)
            .max()
            .unwrap_or(0)
            .max(0);
        Clock { tracks, base_ms }
    }

    fn ms(&self, track: Track, time: i128) -> i128 {
        let (scale, shift) = self.tracks[track as usize];
        ((time - i128::from(shift)) * 1000).div_euclid(i128::from(scale)) + self.base_ms
    }

    fn timescale(&self, track: Track) -> u32 {
        self.tracks[track as usize].0
    }
}

/// MP4: find the `moov`, send the sequence headers, then the samples of the
/// sample tables and of every `moof` in decode order.
pub(super) async fn mp4(input: InputFile, packager: &mut Packager<'_>) -> Result<(), PackageError> {
    let moov = read_box(&input, &top_level(&input, b"moov")?, mp4::MAX_MOOV_BYTES)?;
    let mut movie = Movie::parse(&moov).map_err(input.demux_err())?;
    drop(moov);
    let clock = Clock::new(&movie);
    let mut buf = Vec::new();
    for kind in [Track::Video, Track::Audio] {
        if let Some(track) = movie.track(kind) {
            buf.clear();
            match kind {
                Track::Video => buf.extend_from_slice(&flv_body::video_header(true, true, 0)),
                Track::Audio => buf.extend_from_slice(&flv_body::audio_header(true)),
            }
            buf.extend_from_slice(&track.config);
            packager.push(tag_kind(kind), 0, &buf).await?;
        }
    }
    // Progressive: merge the two tracks' tables by decode time.
    {
        let mut video = movie.video.as_ref().map(|(_, table)| table.samples().peekable());
        let mut audio = movie.audio.as_ref().map(|(_, table)| table.samples().peekable());
        loop {
            let next_v = video.as_mut().and_then(|v| v.peek()).cloned();
            let next_a = audio.as_mut().and_then(|a| a.peek()).cloned();
            let take_video = match (&next_v, &next_a) {
                (None, None) => break,
                (Some(Err(_)), _) | (Some(_), None) => true,
                (None, Some(_)) | (_, Some(Err(_))) => false,
                (Some(Ok(v)), Some(Ok(a))) => v.before(a, clock.timescale(Track::Video), clock.timescale(Track::Audio)),
            };
            let next = if take_video { video.as_mut() } else { audio.as_mut() };
            let Some(Some(sample)) = next.map(Iterator::next) else {
                break;
            };
            let sample = sample.map_err(input.demux_err())?;
            push_sample(&input, packager, &clock, &sample, &mut buf).await?;
        }
    }
    // Fragmented: every moof in file order.
    let mut pos = 0;
    while let Some(header) = next_box(&input, pos)? {
        if &header.kind.0 == b"moof" {
            let moof = read_box(&input, &(pos, header), mp4::MAX_MOOF_BYTES)?;
            let mut samples = movie.fragment(&moof, pos).map_err(input.demux_err())?;
            let (v, a) = (clock.timescale(Track::Video), clock.timescale(Track::Audio));
            samples.sort_by(|x, y| {
                let scale = |s: &Sample| if s.track == Track::Video { (v, a) } else { (a, v) };
                let (xs, _) = scale(x);
                let (ys, _) = scale(y);
                (u128::from(x.dts) * u128::from(ys)).cmp(&(u128::from(y.dts) * u128::from(xs)))
            });
            for sample in &samples {
                push_sample(&input, packager, &clock, sample, &mut buf).await?;
            }
        }
        pos = header_end(&input, pos, &header);
    }
    input.progress.finish_and_clear();
    Ok(())
}

fn tag_kind(track: Track) -> TagKind {
    match track {
        Track::Video => TagKind::Video,
        Track::Audio => TagKind::Audio,
    }
}

/// Reads one sample behind its FLV tag header and feeds it.
async fn push_sample(
    input: &InputFile,
    packager: &mut Packager<'_>,
    clock: &Clock,
    sample: &Sample,
    buf: &mut Vec<u8>,
) -> Result<(), PackageError> {
    if u64::from(sample.size) > MAX_SAMPLE_BYTES {
        return Err((input.demux_err())(demux::Error::TooManySamples {
            what: "sample bytes",
            count: sample.size.into(),
            limit: MAX_SAMPLE_BYTES,
        }));
    }
    let dts_ms = clock.ms(sample.track, i128::from(sample.dts));
    let pts_ms = clock.ms(sample.track, i128::from(sample.dts) + i128::from(sample.cts));
    let header_len = match sample.track {
        Track::Video => {
            let cts_ms = (pts_ms - dts_ms).clamp(i32::MIN.into(), i32::MAX.into()) as i32;
            buf.clear();
            buf.extend_from_slice(&flv_body::video_header(sample.keyframe, false, cts_ms));
            flv_body::VIDEO_HEADER_LEN
        }
        Track::Audio => {
            buf.clear();
            buf.extend_from_slice(&flv_body::audio_header(false));
            flv_body::AUDIO_HEADER_LEN
        }
    };
    buf.resize(header_len + sample.size as usize, 0);
    input.read_at(
        sample.offset,
        &mut buf[header_len..],
        "sample data past the end of the file",
    )?;
    input.progress.set_position(sample.offset + u64::from(sample.size));
    let timestamp_ms = dts_ms.clamp(0, u32::MAX.into()) as u32;
    packager.push(tag_kind(sample.track), timestamp_ms, buf).await
}

/// The header of the top-level box at `pos`; `None` at the end of the file.
fn next_box(input: &InputFile, pos: u64) -> Result<Option<mp4::BoxHeader>, PackageError> {
    if pos >= input.len {
        return Ok(None);
    }
    let mut head = [0u8; 16];
    let n = (input.len - pos).min(16) as usize;
    input.read_at(pos, &mut head[..n], "box header")?;
    match mp4::box_header(&head[..n]).map_err(input.demux_err())? {
        Some(header) => Ok(Some(header)),
        None => Err((input.demux_err())(demux::Error::Truncated(
            "box header at the end of the file",
        ))),
    }
}

/// Where the box at `pos` ends (size 0: at the end of the file).
fn header_end(input: &InputFile, pos: u64, header: &mp4::BoxHeader) -> u64 {
    header.size.map_or(input.len, |size| pos.saturating_add(size))
}

/// The first top-level box of `kind`, walking headers only.
fn top_level(input: &InputFile, kind: &[u8; 4]) -> Result<(u64, mp4::BoxHeader), PackageError> {
    let mut pos = 0;
    while let Some(header) = next_box(input, pos)? {
        if &header.kind.0 == kind {
            return Ok((pos, header));
        }
        let end = header_end(input, pos, &header);
        if end > input.len {
            return Err((input.demux_err())(demux::Error::Truncated(
                "file (a box runs past its end)",
            )));
        }
        pos = end;
    }
    Err((input.demux_err())(demux::Error::Missing("moov")))
}

/// The body of a box, at most `limit` bytes.
fn read_box(input: &InputFile, (pos, header): &(u64, mp4::BoxHeader), limit: u64) -> Result<Vec<u8>, PackageError> {
    let size = header.size.unwrap_or(input.len.saturating_sub(*pos));
    let body_len = size - header.header_len;
    if body_len > limit {
        return Err((input.demux_err())(demux::Error::BoxTooLarge {
            kind: header.kind,
            size,
            limit,
        }));
    }
    let mut body = vec![0u8; body_len as usize];
    input.read_at(pos + header.header_len, &mut body, "box past the end of the file")?;
    Ok(body)
}

/// MPEG-TS: packets in large reads; frames fed as the demuxer finishes them.
pub(super) async fn ts(input: InputFile, packager: &mut Packager<'_>) -> Result<(), PackageError> {
    let mut demuxer = demux::ts::Demuxer::new();
    let mut buf = vec![0u8; TS_READ_BYTES];
    let mut tags = Vec::new();
    let mut feed = TsFeed::default();
    let mut pos = 0u64;
    loop {
        let n = (input.len - pos).min(TS_READ_BYTES as u64) as usize;
        let whole = n - n % crate::ts::PACKET_SIZE;
        if whole == 0 {
            if n > 0 {
                tracing::warn!(bytes = n, "ignoring a partial transport packet at the end of the file");
                packager.skipped();
            }
            demuxer.finish(&mut tags).map_err(input.demux_err())?;
            feed.feed(packager, demuxer.streams(), &mut tags, true).await?;
            break;
        }
        input.read_at(pos, &mut buf[..whole], "transport packets")?;
        for packet in buf[..whole].chunks_exact(crate::ts::PACKET_SIZE) {
            demuxer.push(packet, &mut tags).map_err(input.demux_err())?;
            feed.feed(packager, demuxer.streams(), &mut tags, false).await?;
        }
        pos += whole as u64;
        input.progress.set_position(pos);
    }
    input.progress.finish_and_clear();
    Ok(())
}

/// Feeds the TS demuxer's tags. Until every stream the PMT declares has
/// shown its configuration, tags are held and then fed sequence headers
/// first: the pipeline's first segment must know both tracks, or audio that
/// comes after video would wait for a new segment with a discontinuity.
#[derive(Default)]
struct TsFeed {
    first_90k: Option<u64>,
    held: Vec<demux::ts::Tag>,
    held_bytes: usize,
    ready: bool,
}

/// The most held before feeding anyway (a stream whose configuration never comes).
const TS_MAX_HELD_BYTES: usize = 32 << 20;

impl TsFeed {
    async fn feed(
        &mut self,
        packager: &mut Packager<'_>,
        streams: (bool, bool),
        tags: &mut Vec<demux::ts::Tag>,
        end: bool,
    ) -> Result<(), PackageError> {
        if !self.ready {
            for tag in tags.drain(..) {
                self.held_bytes += tag.body.len();
                self.held.push(tag);
            }
            let configured = |kind: TagKind| self.held.iter().any(|t| t.kind == kind && t.body.get(1) == Some(&0));
            let (video, audio) = streams;
            // Before the PMT no stream is known, and nothing is ready.
            let all =
                (video || audio) && (!video || configured(TagKind::Video)) && (!audio || configured(TagKind::Audio));
            if !(all || end || self.held_bytes > TS_MAX_HELD_BYTES) {
                return Ok(());
            }
            self.ready = true;
            // Stable: sequence headers first, everything else in arrival order.
            let mut held = std::mem::take(&mut self.held);
            held.sort_by_key(|t| t.body.get(1) != Some(&0));
            tags.splice(0..0, held);
        }
        for tag in tags.drain(..) {
            let first = *self.first_90k.get_or_insert(tag.dts_90k);
            let ms = (tag.dts_90k / 90 + TS_START_MS).saturating_sub(first / 90);
            packager
                .push(tag.kind, ms.min(u32::MAX.into()) as u32, &tag.body)
                .await?;
        }
        Ok(())
    }
}
