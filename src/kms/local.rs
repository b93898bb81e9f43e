//! The embedded key provider: master keys in a local keyring file.
//!
//! Keyring format (JSON, mode 0600, never holds data keys):
//! ```json
//! {"format":1,"master_keys":[{"version":1,"created_unix_secs":1767225600,"key":"<base64, 32 bytes>"}]}
//! ```
//! New data keys are wrapped under the highest version; every listed version still
//! unwraps. Data keys are wrapped with [`crate::crypto::seal_data_key`]
//! (AES-256-GCM, the context and master version as AAD).
//!
//! Writes are atomic: the new content goes to a temporary file created with
//! `O_CREAT | O_EXCL` and mode 0600 next to the keyring, is fsynced, and then takes
//! the keyring's name (`link` when creating, so two processes starting at once
//! cannot both create one and a reader never sees a half-written file; `rename`
//! when rotating), and the directory is synced: `storage::write_private_atomic`,
//! which also writes the generated token secret and publish key.

use std::fmt;
use std::fs::{DirBuilder, File};
use std::io::{self, Read as _};
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::{Kms, KmsError};
use crate::crypto::{self, DataKey, EncryptionContext, MasterKey, WrappedKey};
use crate::storage::{self, Place};

/// The only keyring format so far.
const FORMAT: u32 = 1;
/// A keyring is a few hundred bytes per master key; anything past this is not one.
const MAX_KEYRING_BYTES: u64 = 1 << 20;

/// The local key provider. Holds every master key of its keyring in memory.
///
/// A running instance sees a later [`LocalKms::rotate`] by another process once
/// it reloads the file ([`Kms::reload`], on SIGHUP) or restarts.
pub struct LocalKms {
    path: PathBuf,
    /// Sorted by version, ascending; never empty. Replaced whole on reload;
    /// the lock is held only to clone the `Arc`.
    masters: std::sync::RwLock<Arc<Vec<Master>>>,
    rng: SystemRandom,
}

struct Master {
    version: u32,
    created_unix_secs: u64,
    key: MasterKey,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyringFile {
    format: u32,
    master_keys: Vec<KeyringEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyringEntry {
    version: u32,
    created_unix_secs: u64,
    /// Standard base64 of the 32 key bytes; zeroized on drop.
    key: String,
}

impl Drop for KeyringEntry {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl LocalKms {
    /// Opens the keyring at `path`, creating it (and missing parent directories, mode
    /// 0700) with one fresh master key, version 1, if it does not exist. Refuses a
    /// keyring that group or others may read or write.
    pub fn open_or_create(path: &Path) -> Result<Self, KmsError> {
        match load(path) {
            Ok(masters) => return Ok(Self::new(path, masters)),
            Err(KmsError::KeyringIo { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }

        let rng = SystemRandom::new();
        let first = Master {
            version: 1,
            created_unix_secs: crate::clock::now_unix_secs(),
            key: MasterKey::generate(&rng).map_err(|e| rng_failed(&e))?,
        };
        if let Some(dir) = parent_dir(path) {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_error(dir, "create directory"))?;
        }
        let content = serialize(path, std::slice::from_ref(&first))?;
        match storage::write_private_atomic(path, &content, Place::New).map_err(io_error(path, "create")) {
            Ok(()) => {
                tracing::info!("created keyring {} with master key version 1", path.display());
                Ok(Self::new(path, vec![first]))
            }
            // Another process created it between our open and our link: use theirs.
            Err(KmsError::KeyringIo { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
                Ok(Self::new(path, load(path)?))
            }
            Err(e) => Err(e),
        }
    }

    /// Opens the existing keyring at `path`; never creates a file or a
    /// directory (for `sealcast keyserver`, which must not write).
    pub fn open(path: &Path) -> Result<Self, KmsError> {
        Ok(Self::new(path, load(path)?))
    }

    /// Adds a master key version to the keyring at `path` and returns it. Instances
    /// opened afterwards wrap new data keys under it; every older version still
    /// unwraps. Not guarded against a concurrent `rotate` of the same keyring.
    pub fn rotate(path: &Path) -> Result<u32, KmsError> {
        let mut masters = load(path)?;
        let newest = masters.last().map_or(0, |m| m.version);
        let version = newest.checked_add(1).ok_or_else(|| KmsError::KeyringInvalid {
            path: path.to_owned(),
            reason: format!("master key version {newest} is the last one possible"),
        })?;
        let rng = SystemRandom::new();
        masters.push(Master {
            version,
            created_unix_secs: crate::clock::now_unix_secs(),
            key: MasterKey::generate(&rng).map_err(|e| rng_failed(&e))?,
        });
        let content = serialize(path, &masters)?;
        storage::write_private_atomic(path, &content, Place::Replace).map_err(io_error(path, "replace"))?;
        tracing::info!("rotated keyring {} to master key version {version}", path.display());
        Ok(version)
    }

    /// Every master key version with its creation time (unix seconds, as text),
    /// oldest first.
    pub fn versions(&self) -> Vec<(u32, String)> {
        self.masters()
            .iter()
            .map(|m| (m.version, m.created_unix_secs.to_string()))
            .collect()
    }

    /// The version new data keys are wrapped under (the highest).
    pub fn current_version(&self) -> u32 {
        self.masters().last().map_or(0, |m| m.version)
    }

    /// The keyring file this instance was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The master keys as loaded now.
    fn masters(&self) -> Arc<Vec<Master>> {
        // Plain data behind the lock; a panic elsewhere leaves it usable.
        Arc::clone(&self.masters.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn new(path: &Path, masters: Vec<Master>) -> Self {
        Self {
            path: path.to_owned(),
            masters: std::sync::RwLock::new(Arc::new(masters)),
            rng: SystemRandom::new(),
        }
    }
}

impl fmt::Debug for LocalKms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let versions: Vec<u32> = self.masters().iter().map(|m| m.version).collect();
        f.debug_struct("LocalKms")
            .field("path", &self.path)
            .field("versions", &versions)
            .finish()
    }
}

#[async_trait]
impl Kms for LocalKms {
    async fn generate_data_key(&self, ctx: &EncryptionContext) -> Result<(DataKey, WrappedKey), KmsError> {
        let masters = self.masters();
        let master = masters.last().ok_or_else(|| KmsError::KeyringInvalid {
            path: self.path.clone(),
            reason: "no master keys".to_owned(),
        })?;
        let key = DataKey::generate(&self.rng).map_err(|e| rng_failed(&e))?;
        let wrapped = crypto::seal_data_key(&master.key, master.version, &key, ctx, &self.rng)
            .map_err(|e| KmsError::Unavailable(format!("local key provider: {e}")))?;
        Ok((key, wrapped))
    }

    async fn reload(&self) -> Result<Option<String>, KmsError> {
        let loaded = load(&self.path)?;
        let before: Vec<u32> = self.masters().iter().map(|m| m.version).collect();
        let after: Vec<u32> = loaded.iter().map(|m| m.version).collect();
        *self.masters.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded);
        Ok((before != after).then(|| {
            format!(
                "keyring {}: master key versions {} (were {}); new data keys use version {}",
                self.path.display(),
                list(&after),
                list(&before),
                after.last().copied().unwrap_or(0)
            )
        }))
    }

    async fn decrypt(&self, wrapped: &WrappedKey, ctx: &EncryptionContext) -> Result<DataKey, KmsError> {
        let version = crypto::wrapped_master_version(wrapped).map_err(|_| KmsError::InvalidCiphertext)?;
        let masters = self.masters();
        let Some(master) = masters.iter().find(|m| m.version == version) else {
            // A version above the newest may come from a `kms rotate` this
            // process has not loaded yet: the operator's to fix, not the
            // client's fault. One below it was never in this keyring.
            let newest = masters.last().map_or(0, |m| m.version);
            return Err(if version > newest {
                KmsError::UnknownMasterVersion(version)
            } else {
                KmsError::InvalidCiphertext
            });
        };
        crypto::open_data_key(&master.key, wrapped, ctx).map_err(|_| KmsError::InvalidCiphertext)
    }
}

fn list(versions: &[u32]) -> String {
    versions.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

fn rng_failed(e: &crypto::Error) -> KmsError {
    KmsError::Unavailable(format!("local key provider: {e}"))
}

fn io_error(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> KmsError {
    let path = path.to_owned();
    move |source| KmsError::KeyringIo { path, action, source }
}

fn invalid(path: &Path, reason: impl Into<String>) -> KmsError {
    KmsError::KeyringInvalid {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// The directory holding `path`, unless it is the current directory.
fn parent_dir(path: &Path) -> Option<&Path> {
    path.parent().filter(|p| !p.as_os_str().is_empty())
}

/// Reads, permission-checks and parses the keyring.
fn load(path: &Path) -> Result<Vec<Master>, KmsError> {
    let file = File::open(path).map_err(io_error(path, "open"))?;
    // Checked on the open handle, so the file cannot be swapped after the check.
    let meta = file.metadata().map_err(io_error(path, "stat"))?;
    if !meta.is_file() {
        return Err(invalid(path, "not a regular file"));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KmsError::KeyringPermissions {
            path: path.to_owned(),
            mode,
        });
    }
    if meta.len() > MAX_KEYRING_BYTES {
        return Err(invalid(
            path,
            format!("{} bytes, more than a keyring can be", meta.len()),
        ));
    }
    let mut text = Zeroizing::new(String::with_capacity(meta.len() as usize + 1));
    file.take(MAX_KEYRING_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(io_error(path, "read"))?;
    parse(path, &text)
}

fn parse(path: &Path, text: &str) -> Result<Vec<Master>, KmsError> {
    let file: KeyringFile = serde_json::from_str(text).map_err(|e| {
        // serde_json quotes offending string values in some messages; one of them
        // could be a misplaced key, so those messages are replaced by the position.
        let message = e.to_string();
        if message.contains('"') {
            invalid(
                path,
                format!("bad JSON value at line {} column {}", e.line(), e.column()),
            )
        } else {
            invalid(path, format!("bad JSON: {message}"))
        }
    })?;
    if file.format != FORMAT {
        return Err(invalid(
            path,
            format!("format {} is not supported (expected {FORMAT})", file.format),
        ));
    }
    if file.master_keys.is_empty() {
        return Err(invalid(path, "master_keys is empty"));
    }
    let mut masters = Vec::with_capacity(file.master_keys.len());
    for entry in &file.master_keys {
        if entry.version == 0 {
            return Err(invalid(path, "master key version 0 (versions start at 1)"));
        }
        if masters.iter().any(|m: &Master| m.version == entry.version) {
            return Err(invalid(
                path,
                format!("master key version {} appears twice", entry.version),
            ));
        }
        let bad_key = || {
            invalid(
                path,
                format!("key of master key version {} is not 32 bytes of base64", entry.version),
            )
        };
        let mut buf = Zeroizing::new([0u8; 48]);
        let len = STANDARD
            .decode_slice(entry.key.as_bytes(), &mut buf[..])
            .map_err(|_| bad_key())?;
        let key = buf
            .get(..len)
            .and_then(|bytes| MasterKey::from_slice(bytes).ok())
            .ok_or_else(bad_key)?;
        masters.push(Master {
            version: entry.version,
            created_unix_secs: entry.created_unix_secs,
            key,
        });
    }
    masters.sort_by_key(|m| m.version);
    Ok(masters)
}

fn serialize(path: &Path, masters: &[Master]) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    let file = KeyringFile {
        format: FORMAT,
        master_keys: masters
            .iter()
            .map(|m| KeyringEntry {
                version: m.version,
                created_unix_secs: m.created_unix_secs,
                key: STANDARD.encode(m.key.as_bytes()),
            })
            .collect(),
    };
    // Sized up front so the buffer never reallocates and leaves key text behind.
    let mut out = Zeroizing::new(Vec::with_capacity(256 + 160 * masters.len()));
    serde_json::to_writer_pretty(&mut *out, &file).map_err(|e| invalid(path, format!("serializing: {e}")))?;
    out.push(b'\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::crypto::KeyId;

    fn ctx(stream: &str, key_id: &str) -> EncryptionContext {
        EncryptionContext::new(stream, &KeyId::new(key_id).unwrap())
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn set_mode(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[tokio::test]
    async fn creates_keyring_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/keys/keyring.json");
        let kms = LocalKms::open_or_create(&path).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(mode_of(path.parent().unwrap()), 0o700);
        assert_eq!(kms.current_version(), 1);
        let versions = kms.versions();
        assert_eq!(versions.len(), 1);
        assert_eq!(versions[0].0, 1);
        assert!(versions[0].1.parse::<u64>().unwrap() > 1_700_000_000);

        let text = fs::read_to_string(&path).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["format"], 1);
        assert_eq!(json["master_keys"][0]["version"], 1);
        let key = json["master_keys"][0]["key"].as_str().unwrap();
        assert_eq!(STANDARD.decode(key).unwrap().len(), 32);
        // No temporary files left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["keyring.json"]);
    }

    #[tokio::test]
    async fn reopen_unwraps_keys_wrapped_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        let c = ctx("live/cam", "k1");
        let (key, wrapped) = {
            let kms = LocalKms::open_or_create(&path).unwrap();
            kms.generate_data_key(&c).await.unwrap()
        };
        assert_eq!(crypto::wrapped_master_version(&wrapped), Ok(1));
        let reopened = LocalKms::open_or_create(&path).unwrap();
        let unwrapped = reopened.decrypt(&wrapped, &c).await.unwrap();
        assert_eq!(unwrapped.as_bytes(), key.as_bytes());
    }

    #[tokio::test]
    async fn keyring_never_holds_data_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        // Used the way the server holds it: as a shared trait object.
        let kms: std::sync::Arc<dyn Kms> = std::sync::Arc::new(LocalKms::open_or_create(&path).unwrap());
        let before = fs::read(&path).unwrap();
        for i in 0..5 {
            let (key, _) = kms.generate_data_key(&ctx("live/cam", &format!("k{i}"))).await.unwrap();
            let encoded = STANDARD.encode(key.as_bytes());
            assert!(!String::from_utf8_lossy(&before).contains(&encoded));
        }
        assert_eq!(fs::read(&path).unwrap(), before);
    }

    #[tokio::test]
    async fn rotate_adds_a_version_and_old_keys_still_unwrap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        let c = ctx("live/cam", "k1");
        let v1 = LocalKms::open_or_create(&path).unwrap();
        let (key1, wrapped1) = v1.generate_data_key(&c).await.unwrap();

        assert_eq!(LocalKms::rotate(&path).unwrap(), 2);
        assert_eq!(mode_of(&path), 0o600);
        let v2 = LocalKms::open_or_create(&path).unwrap();
        assert_eq!(v2.current_version(), 2);
        let versions: Vec<u32> = v2.versions().iter().map(|v| v.0).collect();
        assert_eq!(versions, [1, 2]);

        let (key2, wrapped2) = v2.generate_data_key(&c).await.unwrap();
        assert_eq!(wrapped2.as_bytes()[..5], [1, 0, 0, 0, 2]);
        assert_eq!(v2.decrypt(&wrapped1, &c).await.unwrap().as_bytes(), key1.as_bytes());
        assert_eq!(v2.decrypt(&wrapped2, &c).await.unwrap().as_bytes(), key2.as_bytes());
        // The instance opened before the rotation does not know version 2
        // until it reloads: unavailable (the operator's to fix), not refused.
        assert!(matches!(
            v1.decrypt(&wrapped2, &c).await,
            Err(KmsError::UnknownMasterVersion(2))
        ));
        let changed = v1.reload().await.unwrap().unwrap();
        assert_eq!(
            changed,
            format!(
                "keyring {}: master key versions 1, 2 (were 1); new data keys use version 2",
                path.display()
            )
        );
        assert_eq!(v1.current_version(), 2);
        assert_eq!(v1.decrypt(&wrapped2, &c).await.unwrap().as_bytes(), key2.as_bytes());
        assert_eq!(v1.reload().await.unwrap(), None, "nothing changed");

        assert_eq!(LocalKms::rotate(&path).unwrap(), 3);
        let v3 = LocalKms::open_or_create(&path).unwrap();
        assert_eq!(v3.decrypt(&wrapped1, &c).await.unwrap().as_bytes(), key1.as_bytes());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["keyring.json"]);
    }

    #[test]
    fn refuses_keyring_open_to_group_or_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        LocalKms::open_or_create(&path).unwrap();
        for mode in [0o640, 0o620, 0o610, 0o604, 0o602, 0o601, 0o644, 0o666, 0o660, 0o777] {
            set_mode(&path, mode);
            let err = LocalKms::open_or_create(&path).unwrap_err();
            assert!(
                matches!(err, KmsError::KeyringPermissions { mode: m, .. } if m == mode),
                "{mode:o}: {err:?}"
            );
            let message = err.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains(&format!("chmod 600 {}", path.display())), "{message}");
            assert!(message.contains(&format!("{mode:03o}")), "{message}");
            assert!(matches!(
                LocalKms::rotate(&path),
                Err(KmsError::KeyringPermissions { .. })
            ));
        }
        // The keyring itself is left alone, and works again once fixed.
        set_mode(&path, 0o600);
        assert_eq!(LocalKms::open_or_create(&path).unwrap().current_version(), 1);
        set_mode(&path, 0o400);
        assert!(LocalKms::open_or_create(&path).is_ok());
    }

    #[test]
    fn refuses_invalid_keyrings_with_clear_errors() {
        let key = STANDARD.encode([7u8; 32]);
        let short_key = STANDARD.encode([7u8; 31]);
        let entry = |version: u32, key: &str| format!(r#"{{"version":{version},"created_unix_secs":1,"key":"{key}"}}"#);
        let keyring = |entries: &[String]| format!(r#"{{"format":1,"master_keys":[{}]}}"#, entries.join(","));
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "bad JSON: EOF while parsing a value at line 1 column 0"),
            (
                "{".to_owned(),
                "bad JSON: EOF while parsing an object at line 1 column 1",
            ),
            ("not json".to_owned(), "bad JSON: expected ident at line 1 column 2"),
            (
                "[]".to_owned(),
                "bad JSON: invalid length 0, expected struct KeyringFile with 2 elements at line 1 column 2",
            ),
            (
                keyring(&[entry(1, &key)]).replace("\"format\":1", "\"format\":2"),
                "format 2 is not supported (expected 1)",
            ),
            (keyring(&[]), "master_keys is empty"),
            (keyring(&[entry(0, &key)]), "master key version 0 (versions start at 1)"),
            (
                keyring(&[entry(1, &key), entry(1, &key)]),
                "master key version 1 appears twice",
            ),
            (
                keyring(&[entry(1, &key), entry(2, &short_key)]),
                "key of master key version 2 is not 32 bytes of base64",
            ),
            (
                keyring(&[entry(3, "not base64!")]),
                "key of master key version 3 is not 32 bytes of base64",
            ),
            (
                keyring(&[entry(3, &"QUFB".repeat(100))]),
                "key of master key version 3 is not 32 bytes of base64",
            ),
            (
                keyring(&[entry(1, &key)]).replace("\"format\"", "\"extra\":0,\"format\""),
                "bad JSON: unknown field `extra`, expected `format` or `master_keys` at line 1 column 8",
            ),
            // A key in the wrong place is not echoed back.
            (
                format!(r#"{{"format":"{key}","master_keys":[]}}"#),
                "bad JSON value at line 1 column 56",
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        for (content, want) in cases {
            fs::write(&path, &content).unwrap();
            set_mode(&path, 0o600);
            let err = LocalKms::open_or_create(&path).unwrap_err();
            match &err {
                KmsError::KeyringInvalid { reason, .. } => assert_eq!(reason, want, "{content}"),
                other => panic!("{content}: {other:?}"),
            }
            let message = err.to_string();
            assert!(message.starts_with(&format!("keyring {} is invalid: ", path.display())));
            assert!(!message.contains(&key), "{message}");
            // Rotation refuses it too, and leaves it as it was.
            assert!(LocalKms::rotate(&path).is_err());
            assert_eq!(fs::read_to_string(&path).unwrap(), content);
        }
    }

    #[test]
    fn loads_a_hand_written_keyring() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        let text = format!(
            r#"{{"format":1,"master_keys":[
                {{"version":5,"created_unix_secs":1767225600,"key":"{}"}},
                {{"version":2,"created_unix_secs":1700000000,"key":"{}"}}]}}"#,
            STANDARD.encode([5u8; 32]),
            STANDARD.encode([2u8; 32])
        );
        fs::write(&path, text).unwrap();
        set_mode(&path, 0o600);
        let kms = LocalKms::open_or_create(&path).unwrap();
        assert_eq!(
            kms.versions(),
            [(2, "1700000000".to_owned()), (5, "1767225600".to_owned())]
        );
        assert_eq!(kms.current_version(), 5);
        assert_eq!(kms.masters()[1].key.as_bytes(), &[5; 32]);
        assert_eq!(LocalKms::rotate(&path).unwrap(), 6);
    }

    #[tokio::test]
    async fn refuses_foreign_or_tampered_wrapped_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        let kms = LocalKms::open_or_create(&path).unwrap();
        let a = ctx("live/a", "k1");
        let (_, wrapped) = kms.generate_data_key(&a).await.unwrap();

        let mut unknown_version = wrapped.as_bytes().to_vec();
        unknown_version[4] = 9;
        let other_master = MasterKey::from_bytes([9; 32]);
        let rng = SystemRandom::new();
        let key = DataKey::from_bytes([1; 16]);
        let sealed_v9 = crypto::seal_data_key(&other_master, 9, &key, &a, &rng).unwrap();
        let sealed_v1_other_master = crypto::seal_data_key(&other_master, 1, &key, &a, &rng).unwrap();

        let cases: Vec<(&str, WrappedKey, EncryptionContext)> = vec![
            ("stream A's key for stream B", wrapped.clone(), ctx("live/b", "k1")),
            ("other key id", wrapped.clone(), ctx("live/a", "k2")),
            ("another keyring's version 1", sealed_v1_other_master, a.clone()),
            ("empty", WrappedKey::from_bytes(vec![]), a.clone()),
            ("garbage", WrappedKey::from_bytes(vec![0x42; 49]), a.clone()),
            (
                "truncated",
                WrappedKey::from_bytes(wrapped.as_bytes()[..48].to_vec()),
                a.clone(),
            ),
        ];
        for (name, w, c) in cases {
            assert!(
                matches!(kms.decrypt(&w, &c).await, Err(KmsError::InvalidCiphertext)),
                "{name}"
            );
        }
        // A version above the newest loaded may be a rotation not loaded yet.
        for (name, w) in [
            ("version byte changed", WrappedKey::from_bytes(unknown_version)),
            ("unknown master version", sealed_v9),
        ] {
            assert!(
                matches!(kms.decrypt(&w, &a).await, Err(KmsError::UnknownMasterVersion(9))),
                "{name}"
            );
        }
        // Control: the right context unwraps.
        assert!(kms.decrypt(&wrapped, &a).await.is_ok());
    }

    #[test]
    fn concurrent_creation_yields_one_keyring() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/keyring.json");
        let opened: Vec<LocalKms> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| LocalKms::open_or_create(&path))).collect();
            handles.into_iter().map(|h| h.join().unwrap().unwrap()).collect()
        });
        let first_masters = opened[0].masters();
        let first = first_masters[0].key.as_bytes();
        for kms in &opened {
            assert_eq!(kms.versions().len(), 1);
            assert_eq!(kms.masters()[0].key.as_bytes(), first);
        }
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["keyring.json"]);
    }

    #[test]
    fn rotate_or_open_of_a_missing_keyring_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.json");
        let err = LocalKms::open(&path).unwrap_err();
        assert!(
            matches!(&err, KmsError::KeyringIo { action: "open", source, .. } if source.kind() == io::ErrorKind::NotFound),
            "{err:?}"
        );
        let err = LocalKms::rotate(&path).unwrap_err();
        assert!(
            matches!(&err, KmsError::KeyringIo { action: "open", source, .. } if source.kind() == io::ErrorKind::NotFound),
            "{err:?}"
        );
        assert!(!path.exists());
    }

    #[test]
    fn debug_does_not_print_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        let kms = LocalKms::open_or_create(&path).unwrap();
        let debug = format!("{kms:?}");
        assert!(debug.starts_with("LocalKms { path: "), "{debug}");
        assert!(debug.ends_with("versions: [1] }"), "{debug}");
        let key = STANDARD.encode(kms.masters()[0].key.as_bytes());
        assert!(!debug.contains(&key));
    }
}
