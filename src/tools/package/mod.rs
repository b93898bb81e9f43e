//! The file tools: `sealcast package` (an FLV, MP4 or MPEG-TS file to
//! encrypted HLS VOD) and
//! `sealcast decrypt` (an encrypted playlist back to one TS file, for operators
//! and tests). Both run the same cores as the live server.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

mod input;
mod output;

pub use output::{Destination, package_into};

use crate::crypto::{self, EncryptionContext, KeyId};
use crate::demux::{self, Format};
use crate::flv::{self, TagKind};
use crate::hls::{self, CutPolicy, MediaPlaylist};
use crate::kms::{Kms, KmsError};
use crate::names::{self, KeyUri, StreamName};
use crate::pipeline::{Output, Pipeline, PipelineConfig, SegmentKey};
use crate::storage;
use crate::timeline::Timeline;

/// Why packaging or decrypting failed.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// Reading the input or writing the output failed.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The input is not an FLV file.
    #[error("{path}: {source}")]
    Flv { path: PathBuf, source: flv::Error },
    /// The MP4 or MPEG-TS input is malformed or holds a codec sealcast
    /// cannot carry.
    #[error("{path}: {source}")]
    Demux { path: PathBuf, source: demux::Error },
    /// The input is none of FLV, MP4 and MPEG-TS.
    #[error("{0}: not an FLV, MP4 or MPEG-TS file")]
    UnknownFormat(PathBuf),
    /// The input holds no segment's worth of media.
    #[error("{0}: no media to package")]
    Empty(PathBuf),
    /// The key service refused or failed.
    #[error("key service: {0}")]
    Kms(#[from] KmsError),
    /// The playlist cannot be parsed or names something unexpected.
    #[error("{path}: {reason}")]
    Playlist { path: PathBuf, reason: String },
    /// The operating system's random number generator failed.
    #[error("no randomness available from the operating system")]
    NoRandomness,
    /// The output directory holds files, and replacing them was not asked
    /// for, or it holds files that `sealcast package` did not write.
    #[error("{}: {reason}", .path.display())]
    Outdir { path: PathBuf, reason: String },
    /// The `--output` argument is not a usable destination, or the bucket
    /// prefix holds objects that must not be overwritten.
    #[error("{0}")]
    Output(String),
    /// The bucket refused or did not answer.
    #[error("{what}: {source}")]
    Storage {
        what: String,
        /// Boxed: object_store's errors are large, and this enum is every
        /// packaging function's error.
        source: Box<crate::storage::StorageError>,
    },
    /// A segment did not decrypt with its key.
    #[error("{path}: {source}")]
    Crypto { path: PathBuf, source: crypto::Error },
}

/// What `sealcast package` is asked to do.
#[derive(Debug, Clone)]
pub struct PackageOptions {
    pub stream: StreamName,
    pub segment_duration_secs: u32,
    pub segments_per_key: NonZeroU32,
    /// Prefix of key URIs; empty for root-relative `/keys/…` URIs.
    pub key_uri_base: String,
}

/// What packaging produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageReport {
    pub segments: u64,
    /// Data keys that encrypt at least one segment.
    pub keys: u64,
    pub video_frames: u64,
    pub audio_frames: u64,
    /// Frames skipped as malformed or unsupported (each logged with its reason).
    pub skipped_tags: u64,
}

/// Readies `outdir` for a package: creates it if missing. A directory that
/// holds files is refused unless `replace` is set; then the playlist and
/// segments an earlier `sealcast package` wrote there are removed first, so
/// no old segment is left beside the new ones. Files of any other kind are
/// never removed: such a directory is refused either way.
pub fn prepare_outdir(outdir: &Path, replace: bool) -> Result<(), PackageError> {
    std::fs::create_dir_all(outdir).map_err(io_err(outdir))?;
    let mut ours = Vec::new();
    let mut others = Vec::new();
    for entry in std::fs::read_dir(outdir).map_err(io_err(outdir))? {
        let entry = entry.map_err(io_err(outdir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().map_err(io_err(&entry.path()))?.is_file();
        if is_file && (name == "index.m3u8" || names::is_segment_file_name(&name)) {
            ours.push(entry.path());
        } else {
            others.push(name);
        }
    }
    let refuse = |reason: String| PackageError::Outdir {
        path: outdir.to_owned(),
        reason,
    };
    if !others.is_empty() {
        others.sort();
        return Err(refuse(format!(
            "not empty, and holds files sealcast package did not write ({}); choose an empty or new directory",
            others.join(", ")
        )));
    }
    if ours.is_empty() {
        return Ok(());
    }
    if !replace {
        return Err(refuse(format!(
            "holds an earlier package ({} files); pass --replace to remove it first, or choose an empty or new directory",
            ours.len()
        )));
    }
    for path in ours {
        std::fs::remove_file(&path).map_err(io_err(&path))?;
    }
    Ok(())
}

/// Packages an FLV, MP4 or MPEG-TS file (told apart by content) into
/// `outdir/index.m3u8` and encrypted segments. Every file is written
/// atomically (temporary name, then rename).
pub async fn package(
    input: &Path,
    outdir: &Path,
    options: &PackageOptions,
    kms: &dyn Kms,
) -> Result<PackageReport, PackageError> {
    std::fs::create_dir_all(outdir).map_err(io_err(outdir))?;
    let mut sink = DirSink { outdir };
    package_to(input, &mut sink, options, kms).await
}

/// [`package`] into any [`Sink`].
pub async fn package_to(
    input: &Path,
    sink: &mut dyn Sink,
    options: &PackageOptions,
    kms: &dyn Kms,
) -> Result<PackageReport, PackageError> {
    let file = input::InputFile::open(input)?;
    let publish_id = names::random_publish_id().map_err(|_| PackageError::NoRandomness)?;
    let mut packager = Packager {
        input,
        pipeline: Pipeline::new(PipelineConfig {
            target_duration_secs: options.segment_duration_secs,
            segments_per_key: options.segments_per_key,
            cut_policy: CutPolicy::KeyframesOnly,
            first_sequence: 0,
            discontinuity_at_start: false,
        }),
        vod: VodWriter {
            sink,
            playlist: MediaPlaylist::vod(),
            timeline: Timeline::vod(options.stream.clone(), publish_id.clone(), options.key_uri_base.clone()),
            report: PackageReport::default(),
            last_key_id: None,
        },
        kms,
        stream: options.stream.to_string(),
        publish_id,
        keys_generated: 0,
    };
    match file.format {
        Format::Flv => input::flv(file, &mut packager).await?,
        Format::Mp4 => input::mp4(file, &mut packager).await?,
        Format::Ts => input::ts(file, &mut packager).await?,
    }
    packager.finish().await
}

/// The pipeline, its keys and the writer: what every input format feeds
/// FLV tag bodies into.
pub(crate) struct Packager<'a> {
    input: &'a Path,
    pipeline: Pipeline,
    vod: VodWriter<'a>,
    kms: &'a dyn Kms,
    stream: String,
    publish_id: String,
    keys_generated: u64,
}

impl Packager<'_> {
    /// One FLV tag body: a frame or a sequence header. A tag the pipeline
    /// refuses is counted and logged, as the live path does.
    pub(crate) async fn push(&mut self, kind: TagKind, timestamp_ms: u32, body: &[u8]) -> Result<(), PackageError> {
        while self.pipeline.wants_key() {
            let key_id = KeyId::new(&format!("{}-{}", self.publish_id, self.keys_generated)).map_err(|e| {
                PackageError::Playlist {
                    path: self.input.to_owned(),
                    reason: e.to_string(),
                }
            })?;
            let (key, wrapped) = self
                .kms
                .generate_data_key(&EncryptionContext::new(&self.stream, &key_id))
                .await?;
            self.pipeline.provide_key(SegmentKey {
                id: key_id,
                key,
                wrapped,
            });
            self.keys_generated += 1;
        }
        match self.pipeline.push(kind, timestamp_ms, body) {
            Ok(Some(output)) => self.vod.store(output).await?,
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, timestamp_ms, "skipping a frame");
                self.vod.report.skipped_tags += 1;
            }
        }
        Ok(())
    }

    /// A tag that could not even be read (the FLV path's truncated tail).
    pub(crate) fn skipped(&mut self) {
        self.vod.report.skipped_tags += 1;
    }

    async fn finish(mut self) -> Result<PackageReport, PackageError> {
        if let Some(output) = self.pipeline.finish() {
            self.vod.store(output).await?;
        }
        let stats = self.pipeline.stats();
        self.vod.report.video_frames = stats.video_frames;
        self.vod.report.audio_frames = stats.audio_frames;
        if self.vod.report.segments == 0 {
            return Err(PackageError::Empty(self.input.to_owned()));
        }
        self.vod.finish().await
    }
}

/// Where a package's files go: a directory, or a bucket ([`output`]).
/// Each segment is stored before the next is made, so memory holds one.
#[async_trait::async_trait(?Send)]
pub trait Sink {
    /// Stores one segment's ciphertext, given in pieces, under `name`.
    async fn put_segment(&mut self, name: &str, pieces: Vec<Vec<u8>>) -> Result<(), PackageError>;
    /// Stores the playlist, after every segment it lists.
    async fn put_playlist(&mut self, name: &str, text: &[u8]) -> Result<(), PackageError>;
}

/// A local directory; each file written atomically.
pub struct DirSink<'a> {
    pub outdir: &'a Path,
}

#[async_trait::async_trait(?Send)]
impl Sink for DirSink<'_> {
    async fn put_segment(&mut self, name: &str, pieces: Vec<Vec<u8>>) -> Result<(), PackageError> {
        let path = self.outdir.join(name);
        storage::write_atomic_pieces(&path, &pieces).map_err(io_err(&path))
    }

    async fn put_playlist(&mut self, name: &str, text: &[u8]) -> Result<(), PackageError> {
        let path = self.outdir.join(name);
        storage::write_atomic(&path, text).map_err(io_err(&path))
    }
}

/// A VOD package being written: segment files as they close, the playlist
/// at the end.
struct VodWriter<'a> {
    sink: &'a mut dyn Sink,
    playlist: MediaPlaylist,
    timeline: Timeline,
    report: PackageReport,
    last_key_id: Option<KeyId>,
}

impl VodWriter<'_> {
    async fn store(&mut self, output: Output) -> Result<(), PackageError> {
        let Output::Segment(mut segment) = output else {
            // Keys are provided before every push, so no segment waits for one.
            return Ok(());
        };
        let entry = self.timeline.entry(&segment, 0);
        let pieces = std::mem::take(&mut segment.pieces);
        self.sink.put_segment(&entry.uri, pieces).await?;
        self.report.segments += 1;
        if self.last_key_id.as_ref() != Some(&segment.key.id) {
            self.report.keys += 1;
            self.last_key_id = Some(segment.key.id.clone());
        }
        self.playlist.push(entry);
        Ok(())
    }

    /// Writes the ended playlist, after every segment it lists.
    async fn finish(mut self) -> Result<PackageReport, PackageError> {
        self.playlist.end();
        self.sink
            .put_playlist("index.m3u8", self.playlist.render(None).as_bytes())
            .await?;
        Ok(self.report)
    }
}

/// An IO error, with the path it happened on.
fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PackageError + use<> {
    let path = path.to_owned();
    move |source| PackageError::Io { path, source }
}

/// Decrypts every segment of a playlist written by sealcast into one TS file,
/// unwrapping each key through `kms`. Returns the number of segments.
pub async fn decrypt(playlist_path: &Path, output: &Path, kms: &dyn Kms) -> Result<u64, PackageError> {
    let playlist_err = |reason: String| PackageError::Playlist {
        path: playlist_path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(playlist_path).map_err(io_err(playlist_path))?;
    let parsed = hls::parse_media_playlist(&text).map_err(|e| playlist_err(e.to_string()))?;
    let dir = playlist_path.parent().unwrap_or(Path::new("."));

    let mut ts = Vec::new();
    let mut segments = 0;
    for segment in &parsed.segments {
        if !names::is_segment_file_name(&segment.uri) {
            return Err(playlist_err(format!(
                "segment URI {:?} is not a sealcast segment",
                segment.uri
            )));
        }
        let key_tag = segment
            .key
            .as_ref()
            .ok_or_else(|| playlist_err(format!("{} has no key", segment.uri)))?;
        let key_uri = KeyUri::parse(&key_tag.uri).map_err(|e| playlist_err(format!("{}: {e}", key_tag.uri)))?;
        let context = EncryptionContext::new(&key_uri.stream.to_string(), &key_uri.key_id);
        let key = kms.decrypt(&key_uri.wrapped, &context).await?;
        let path = dir.join(&segment.uri);
        let mut bytes = std::fs::read(&path).map_err(io_err(&path))?;
        crypto::decrypt_segment(&key, key_tag.iv, &mut bytes)
            .map_err(|source| PackageError::Crypto { path, source })?;
        ts.extend_from_slice(&bytes);
        segments += 1;
    }
    storage::write_atomic(output, &ts).map_err(io_err(output))?;
    Ok(segments)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn outdir_new_or_empty_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a/b");
        prepare_outdir(&out, false).unwrap();
        assert!(out.is_dir());
        prepare_outdir(&out, false).unwrap();
    }

    #[test]
    fn outdir_with_an_earlier_package_is_refused_or_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.m3u8"), "#EXTM3U\n").unwrap();
        std::fs::write(dir.path().join("abc-0.ts"), "x").unwrap();
        std::fs::write(dir.path().join("abc-1.ts"), "x").unwrap();
        let err = prepare_outdir(dir.path(), false).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: holds an earlier package (3 files); pass --replace to remove it first, or choose an empty or new directory",
                dir.path().display()
            )
        );
        prepare_outdir(dir.path(), true).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn outdir_with_other_files_is_refused_even_with_replace() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.m3u8"), "#EXTM3U\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        for replace in [false, true] {
            let err = prepare_outdir(dir.path(), replace).unwrap_err().to_string();
            assert!(
                err.contains("holds files sealcast package did not write (notes.txt)"),
                "{err}"
            );
        }
        assert!(dir.path().join("index.m3u8").exists());
        assert!(dir.path().join("notes.txt").exists());
    }
}
