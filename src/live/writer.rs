//! A publish's segment files: ciphertext appended as the pipeline fills
//! pieces, renamed into place when the segment closes, so a listed segment is
//! always whole. Every file operation runs on the blocking pool: a slow disk
//! never stalls a runtime thread, so it cannot delay other streams.

use std::path::{Path, PathBuf};

use tracing::error;

use crate::names;
use crate::storage;

/// The open segment's file, written as ciphertext comes out of the pipeline
/// and renamed into place when the segment closes.
struct SegmentFile {
    sequence: u64,
    file: storage::AtomicFile,
}

impl SegmentFile {
    /// Creates the temporary file (and the stream's directory).
    fn create(dir: &Path, file_name: &str, sequence: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let file = storage::AtomicFile::create(&dir.join(file_name))?;
        Ok(Self { sequence, file })
    }

    fn append(&mut self, pieces: &[Vec<u8>]) -> std::io::Result<()> {
        pieces.iter().try_for_each(|piece| self.file.append(piece))
    }

    /// Appends the last pieces and renames the file into place.
    fn complete(mut self, pieces: &[Vec<u8>]) -> std::io::Result<()> {
        match self.append(pieces) {
            Ok(()) => self.file.commit(),
            Err(error) => {
                self.file.discard();
                Err(error)
            }
        }
    }

    fn discard(self) {
        self.file.discard();
    }
}

/// Writes one publish's segments into its stream's directory.
pub(super) struct SegmentWriter {
    dir: PathBuf,
    publish_id: String,
    /// The open segment's file, once its first piece was written.
    open: Option<SegmentFile>,
    /// A segment whose file could not be written: it is not listed.
    failed_sequence: Option<u64>,
}

impl SegmentWriter {
    pub(super) fn new(dir: PathBuf, publish_id: String) -> Self {
        Self {
            dir,
            publish_id,
            open: None,
            failed_sequence: None,
        }
    }

    /// Appends full pieces of segment `sequence`'s ciphertext to its
    /// temporary file, in one trip to the blocking pool. A stream thus holds
    /// about one piece of its segment in memory, not the segment. A failed
    /// write is logged and leaves the segment without a file: it is then not
    /// listed when it closes.
    pub(super) async fn append(&mut self, sequence: u64, pieces: Vec<Vec<u8>>) {
        if self.failed_sequence == Some(sequence) {
            return;
        }
        let file = match self.open.take() {
            Some(file) if file.sequence == sequence => Some(file),
            stale => {
                if let Some(stale) = stale {
                    // Cannot happen: `complete` takes the file of the segment
                    // it closes. Never rename a partial file.
                    stale.discard();
                }
                None
            }
        };
        let dir = self.dir.clone();
        let file_name = names::segment_file_name(&self.publish_id, sequence);
        let result = tokio::task::spawn_blocking(move || {
            let mut file = match file {
                Some(file) => file,
                None => SegmentFile::create(&dir, &file_name, sequence)?,
            };
            file.append(&pieces)?;
            Ok::<_, std::io::Error>(file)
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
        match result {
            Ok(file) => self.open = Some(file),
            Err(error) => {
                error!(seq = sequence, %error, "writing a segment failed; it will not be listed");
                self.failed_sequence = Some(sequence);
            }
        }
    }

    /// Writes the rest of segment `sequence` (`pieces`, the ciphertext not
    /// appended yet) and renames its file into place. Returns the bytes the
    /// whole segment holds; an error means the segment must not be listed.
    pub(super) async fn complete(&mut self, sequence: u64, pieces: Vec<Vec<u8>>) -> std::io::Result<u64> {
        if self.failed_sequence.take() == Some(sequence) {
            self.discard().await;
            return Err(std::io::Error::other("an earlier write of this segment failed"));
        }
        let file = self.open.take().filter(|f| f.sequence == sequence);
        let stored_bytes =
            pieces.iter().map(|p| p.len() as u64).sum::<u64>() + file.as_ref().map_or(0, |f| f.file.written());
        let dir = self.dir.clone();
        let path = dir.join(names::segment_file_name(&self.publish_id, sequence));
        tokio::task::spawn_blocking(move || match file {
            Some(file) => file.complete(&pieces),
            None => {
                std::fs::create_dir_all(&dir)?;
                storage::write_atomic_pieces(&path, &pieces)
            }
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(stored_bytes)
    }

    /// Removes the open segment's temporary file, if any (the publish ended
    /// before its segment closed).
    pub(super) async fn discard(&mut self) {
        if let Some(file) = self.open.take() {
            let _ = tokio::task::spawn_blocking(move || file.discard()).await;
        }
    }
}
