//! Atomic file output: readers (an HTTP server, a CDN origin pull, a player
//! reading from disk) see a file whole or not at all.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `bytes` to `path` through a temporary file in the same directory and
/// a rename, so the file appears complete or not at all. No fsync: segments and
/// playlists are replaced every few seconds, and after a crash a torn temporary
/// file is never visible under its final name.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_pieces(path, &[bytes])
}

/// [`write_atomic`] for a file that is replaced over and over (a live
/// playlist), returning the replaced file still open, for the caller to drop
/// when a stall no longer matters. While it is open, the rename does not free
/// its blocks; a file system that discards freed blocks synchronously (ext4
/// mounted with `discard`) would otherwise spend tens of milliseconds inside
/// the rename under load, delaying whatever waits for the new file.
pub fn replace_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<Option<std::fs::File>> {
    let replaced = std::fs::File::open(path).ok();
    write_atomic(path, bytes).map(|()| replaced)
}

/// [`write_atomic`] for a file given as consecutive pieces.
pub fn write_atomic_pieces<B: AsRef<[u8]>>(path: &Path, pieces: &[B]) -> std::io::Result<()> {
    let mut file = AtomicFile::create(path)?;
    match pieces.iter().try_for_each(|piece| file.append(piece.as_ref())) {
        Ok(()) => file.commit(),
        Err(error) => {
            file.discard();
            Err(error)
        }
    }
}

/// A file written over time under its temporary name and renamed into place
/// by [`AtomicFile::commit`] (a live segment, appended to as its ciphertext
/// comes). Dropping one without `commit` or `discard` leaves the temporary
/// file behind, for [`unfinished_name`] to recognise at the next start.
#[derive(Debug)]
pub struct AtomicFile {
    file: std::fs::File,
    tmp: PathBuf,
    path: PathBuf,
    written: u64,
}

impl AtomicFile {
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let tmp = temp_path(path);
        Ok(Self {
            file: std::fs::File::create(&tmp)?,
            tmp,
            path: path.to_owned(),
            written: 0,
        })
    }

    pub fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Bytes appended so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Renames the file into place; on failure the temporary file is removed.
    pub fn commit(self) -> std::io::Result<()> {
        let result = std::fs::rename(&self.tmp, &self.path);
        if result.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        result
    }

    /// Drops an unfinished file.
    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// `dir/.name.tmp`: hidden, never a valid segment or playlist name, and unique
/// per final path (each path has a single writer: its stream's task).
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// The final name a temporary file name stands for (`.name.tmp` → `name`):
/// what a crash left unfinished.
pub fn unfinished_name(file_name: &str) -> Option<&str> {
    file_name.strip_prefix('.')?.strip_suffix(".tmp")
}

/// Where [`write_private_atomic`] puts the new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Only where nothing is yet: `AlreadyExists` otherwise, so two processes
    /// creating the same file at once agree on one.
    New,
    /// Over whatever is there.
    Replace,
}

/// Writes a private file (secrets, keyrings): mode 0600, durable, and whole
/// or absent under its name. The content goes to a staging file next to
/// `path`, created with `O_EXCL` (never through a symlink) and fsynced, which
/// then takes the name by `link` ([`Place::New`]) or `rename`
/// ([`Place::Replace`]); the directory is synced after, best effort (some
/// file systems cannot sync a directory, and the content is safe without it).
pub fn write_private_atomic(path: &Path, content: &[u8], place: Place) -> io::Result<()> {
    static STAGING_COUNTER: AtomicU64 = AtomicU64::new(0);
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::other("path has no file name"))?
        .to_string_lossy();
    // Unique per process and call, so concurrent writers never share it.
    let staging = path.with_file_name(format!(
        ".{file_name}.{}.{}.tmp",
        std::process::id(),
        STAGING_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    // A leftover from a crashed process with a reused pid; never follow it.
    match std::fs::remove_file(&staging) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let placed = write_new_private(&staging, content).and_then(|()| match place {
        Place::New => std::fs::hard_link(&staging, path),
        Place::Replace => std::fs::rename(&staging, path),
    });
    // After a link the staging name is redundant, after a failure litter;
    // after a rename it is gone and this fails harmlessly.
    let _ = std::fs::remove_file(&staging);
    placed?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Writes `bytes` to a new file (never an existing one or a symlink) with
/// mode 0600, and syncs it.
fn write_new_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("sealcast-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.ts");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.ts")]);
        assert!(write_atomic(&dir.join("missing/b.ts"), b"x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The new content is in place while the replaced file, still open,
    /// reads its old content; the first write has nothing to hand back.
    #[test]
    fn replace_hands_back_the_replaced_file() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.m3u8");
        assert!(replace_atomic(&path, b"one").unwrap().is_none());
        let mut replaced = replace_atomic(&path, b"two").unwrap().expect("the first file");
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mut old = String::new();
        replaced.read_to_string(&mut old).unwrap();
        assert_eq!(old, "one");
    }

    /// Appended pieces appear under the final name only at commit; a
    /// discarded file leaves nothing; temporary names map back to final ones.
    #[test]
    fn atomic_file_appears_at_commit_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a-1.ts");
        let mut file = AtomicFile::create(&path).unwrap();
        file.append(b"ab").unwrap();
        file.append(b"cd").unwrap();
        assert_eq!(file.written(), 4);
        assert!(!path.exists());
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, [".a-1.ts.tmp"]);
        assert_eq!(unfinished_name(&names[0]), Some("a-1.ts"));
        assert_eq!(unfinished_name("a-1.ts"), None);
        file.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abcd");

        let other = dir.path().join("a-2.ts");
        let mut file = AtomicFile::create(&other).unwrap();
        file.append(b"x").unwrap();
        file.discard();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
