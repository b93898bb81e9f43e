//! Where segments and playlists are kept: one interface ([`Storage`]) over
//! the local directory (the default: files written atomically, see
//! [`file`]) and S3-compatible object storage ([`s3`]).
//!
//! Keys are relative, `{app}/{name}/index.m3u8` and
//! `{app}/{name}/{publish_id}-{seq}.ts`; the local backend puts them under
//! `storage.data_dir`, the S3 one under `storage.s3.prefix` in the bucket.
//! The read side (`get`, `get_range`, `head`, `list`, `delete`) is all a
//! stateless viewer-facing node needs.

mod file;
pub mod s3;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

pub use file::{
    AtomicFile, Place, replace_atomic, unfinished_name, write_atomic, write_atomic_pieces, write_private_atomic,
};

/// Why a storage request failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A local file operation failed.
    #[error("{op} {key}: {source}")]
    Io {
        op: &'static str,
        key: String,
        source: std::io::Error,
    },
    /// Object storage refused or did not answer: the S3 operation, the
    /// bucket, and the HTTP status when there was one (`403`, `503`...).
    #[error("S3 {op} of {key} in bucket {bucket} failed: status={}: {source}", s3::status_label(*status))]
    Object {
        op: &'static str,
        bucket: String,
        key: String,
        status: Option<u16>,
        source: Box<object_store::Error>,
    },
    /// Object storage did not answer in time.
    #[error("S3 {op} of {key} in bucket {bucket} failed: status=timeout: no answer within {secs} s")]
    Timeout {
        op: &'static str,
        bucket: String,
        key: String,
        secs: u64,
    },
    /// The backend could not be set up or checked at start (the message
    /// names the setting).
    #[error("{0}")]
    Config(String),
}

/// The store of one server: the local directory or a bucket. Cheap to clone.
#[derive(Clone, Debug)]
pub enum Storage {
    /// Files under a directory (`storage.data_dir`).
    Local(PathBuf),
    /// Objects in an S3-compatible bucket.
    S3(Arc<s3::S3Store>),
}

impl Storage {
    /// The local directory, when this is the local backend: its segments are
    /// streamed to files as they are sealed (see `live::writer`).
    pub fn local_dir(&self) -> Option<&Path> {
        match self {
            Storage::Local(dir) => Some(dir),
            Storage::S3(_) => None,
        }
    }

    /// Where objects go, for log lines: `bucket NAME` or `directory PATH`.
    pub fn location(&self) -> String {
        match self {
            Storage::Local(dir) => format!("directory {}", dir.display()),
            Storage::S3(store) => format!("bucket {}", store.bucket()),
        }
    }

    /// Stores `bytes` under `key`, whole or not at all.
    /// The object is `pieces` one after the other, never copied into one
    /// buffer (a segment's ciphertext arrives in pieces).
    pub async fn put(&self, key: &str, pieces: &[Bytes]) -> Result<(), StorageError> {
        match self {
            Storage::Local(dir) => {
                let path = dir.join(key);
                let io = |source| StorageError::Io {
                    op: "put",
                    key: key.to_owned(),
                    source,
                };
                let pieces = pieces.to_vec();
                tokio::task::spawn_blocking(move || {
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    write_atomic_pieces(&path, &pieces)
                })
                .await
                .map_err(|e| io(std::io::Error::other(e)))?
                .map_err(io)
            }
            Storage::S3(store) => store.put(key, pieces).await,
        }
    }

    /// The whole object, or `None` when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        match self {
            Storage::Local(dir) => match tokio::fs::read(dir.join(key)).await {
                Ok(bytes) => Ok(Some(Bytes::from(bytes))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(io_error("get", key, source)),
            },
            Storage::S3(store) => store.get(key).await,
        }
    }

    /// Bytes `range` of the object (the caller checked it against `head`).
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Option<Bytes>, StorageError> {
        match self {
            Storage::Local(dir) => {
                use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
                let mut file = match tokio::fs::File::open(dir.join(key)).await {
                    Ok(file) => file,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(source) => return Err(io_error("get", key, source)),
                };
                let mut out = Vec::new();
                let read = async {
                    file.seek(std::io::SeekFrom::Start(range.start)).await?;
                    file.take(range.end.saturating_sub(range.start))
                        .read_to_end(&mut out)
                        .await
                };
                read.await.map_err(|source| io_error("get", key, source))?;
                Ok(Some(Bytes::from(out)))
            }
            Storage::S3(store) => store.get_range(key, range).await,
        }
    }

    /// The object's size, or `None` when there is none.
    pub async fn head(&self, key: &str) -> Result<Option<u64>, StorageError> {
        match self {
            Storage::Local(dir) => match tokio::fs::metadata(dir.join(key)).await {
                Ok(meta) => Ok(Some(meta.len())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(io_error("head", key, source)),
            },
            Storage::S3(store) => store.head(key).await,
        }
    }

    /// Keys directly under `dir` (`{app}/{name}`), relative to the root.
    pub async fn list(&self, dir_key: &str) -> Result<Vec<String>, StorageError> {
        match self {
            Storage::Local(dir) => {
                let mut keys = Vec::new();
                let mut entries = match tokio::fs::read_dir(dir.join(dir_key)).await {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(keys),
                    Err(source) => return Err(io_error("list", dir_key, source)),
                };
                while let Some(entry) = entries.next_entry().await.map_err(|s| io_error("list", dir_key, s))? {
                    if let Some(name) = entry.file_name().to_str() {
                        keys.push(format!("{dir_key}/{name}"));
                    }
                }
                keys.sort();
                Ok(keys)
            }
            Storage::S3(store) => store.list(dir_key).await,
        }
    }

    /// Deletes the object; deleting what is not there succeeds.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self {
            Storage::Local(dir) => match tokio::fs::remove_file(dir.join(key)).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(source) => Err(io_error("delete", key, source)),
            },
            Storage::S3(store) => store.delete(key).await,
        }
    }
}

fn io_error(op: &'static str, key: &str, source: std::io::Error) -> StorageError {
    StorageError::Io {
        op,
        key: key.to_owned(),
        source,
    }
}

/// The key of a stream's canonical playlist.
pub fn playlist_key(app: &str, name: &str) -> String {
    format!("{app}/{name}/index.m3u8")
}

/// The key of a stream's segment `file` (`{publish_id}-{seq}.ts`).
pub fn segment_key(app: &str, name: &str, file: &str) -> String {
    format!("{app}/{name}/{file}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The local backend's read side: what `put` stored, whole, in a range,
    /// its size, listed, and gone after `delete` (twice is fine).
    #[tokio::test]
    async fn local_backend_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::Local(dir.path().to_owned());
        let key = segment_key("live", "demo", "abcd-1.ts");
        assert_eq!(storage.get(&key).await.unwrap(), None);
        assert_eq!(storage.head(&key).await.unwrap(), None);
        storage
            .put(&key, &[Bytes::from_static(b"01234"), Bytes::from_static(b"56789")])
            .await
            .unwrap();
        assert_eq!(storage.get(&key).await.unwrap().unwrap(), &b"0123456789"[..]);
        assert_eq!(storage.get_range(&key, 2..5).await.unwrap().unwrap(), &b"234"[..]);
        assert_eq!(storage.head(&key).await.unwrap(), Some(10));
        assert_eq!(storage.list("live/demo").await.unwrap(), vec![key.clone()]);
        assert!(storage.list("live/none").await.unwrap().is_empty());
        storage.delete(&key).await.unwrap();
        storage.delete(&key).await.unwrap();
        assert_eq!(storage.get(&key).await.unwrap(), None);
    }
}
