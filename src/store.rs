//! Atomic file output: readers (an HTTP server, a CDN origin pull, a player
//! reading from disk) see a file whole or not at all.

use std::io::Write;
use std::path::{Path, PathBuf};

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
    let tmp = temp_path(path);
    let result = std::fs::File::create(&tmp)
        .and_then(|mut file| pieces.iter().try_for_each(|piece| file.write_all(piece.as_ref())))
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
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
}
