//! Where `sealcast package` writes: a local directory, or a bucket
//! (`s3://BUCKET/PREFIX/`) through the server's own S3 storage backend
//! ([`crate::storage::Storage`]). Each segment is stored as soon as it is
//! sealed (one segment's ciphertext in memory at a time), the playlist last,
//! so a player never sees a playlist naming a segment that is not there yet.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::{DirSink, PackageError, PackageOptions, PackageReport, Sink, io_err, package_to, prepare_outdir};
use crate::config::S3Config;
use crate::kms::Kms;
use crate::names;
use crate::storage::s3::S3Store;
use crate::storage::{Storage, StorageError};

/// A package's destination, as given on the command line.
#[derive(Debug, Clone, PartialEq)]
pub enum Destination {
    /// A local directory.
    Dir(PathBuf),
    /// `s3://BUCKET/PREFIX/`: bucket and prefix from the URL, everything else
    /// (endpoint, region, addressing, profile) from `[storage.s3]`.
    Bucket(S3Config),
}

impl Destination {
    /// `arg` is `s3://BUCKET[/PREFIX]` or a directory. `s3` is the
    /// configuration's `[storage.s3]`, if any: its bucket and prefix are
    /// replaced by the URL's, the rest is kept. Without it the bucket is on
    /// AWS (region from `AWS_REGION`/`AWS_DEFAULT_REGION`); credentials always
    /// come from the standard AWS chain, as for the server.
    pub fn parse(arg: &str, s3: Option<&S3Config>) -> Result<Self, PackageError> {
        let Some(rest) = arg.strip_prefix("s3://") else {
            return Ok(Destination::Dir(PathBuf::from(arg)));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // S3 bucket naming rules, loosely: what a URL host may hold.
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket {
            return Err(PackageError::Output(format!(
                "{arg}: not s3://BUCKET/PREFIX/ (a bucket name is 3 to 63 of a-z 0-9 . -)"
            )));
        }
        if prefix.split('/').any(|part| part == "." || part == "..") {
            return Err(PackageError::Output(format!("{arg}: the prefix may not hold . or ..")));
        }
        let mut config = s3.cloned().unwrap_or(S3Config {
            bucket: String::new(),
            endpoint: None,
            region: None,
            prefix: String::new(),
            path_style: None,
            profile: None,
        });
        config.bucket = bucket.to_owned();
        config.prefix = prefix.to_owned();
        Ok(Destination::Bucket(config))
    }

    /// Where the playlist ends up, for the command's report.
    pub fn playlist_location(&self) -> String {
        match self {
            Destination::Dir(dir) => dir.join("index.m3u8").display().to_string(),
            Destination::Bucket(config) => format!("s3://{}/{}index.m3u8", config.bucket, config.key_prefix()),
        }
    }
}

/// Packages `input` into `destination`: a directory made ready with
/// [`prepare_outdir`], or a bucket prefix checked the same way (an earlier
/// package is replaced only with `replace`; other objects are never touched).
pub async fn package_into(
    input: &Path,
    destination: &Destination,
    replace: bool,
    options: &PackageOptions,
    kms: &dyn Kms,
) -> Result<PackageReport, PackageError> {
    match destination {
        Destination::Dir(outdir) => {
            prepare_outdir(outdir, replace)?;
            std::fs::create_dir_all(outdir).map_err(io_err(outdir))?;
            package_to(input, &mut DirSink { outdir }, options, kms).await
        }
        Destination::Bucket(config) => {
            let store = S3Store::open(config, None).map_err(storage_err("s3://"))?;
            store.check().await.map_err(storage_err("s3://"))?;
            let storage = Storage::S3(Arc::new(store));
            prepare_prefix(&storage, config, replace).await?;
            package_to(input, &mut StorageSink { storage }, options, kms).await
        }
    }
}

/// [`prepare_outdir`] for a bucket prefix.
async fn prepare_prefix(storage: &Storage, config: &S3Config, replace: bool) -> Result<(), PackageError> {
    let url = format!("s3://{}/{}", config.bucket, config.key_prefix());
    let keys = storage.list("").await.map_err(storage_err(&url))?;
    let (ours, others): (Vec<String>, Vec<String>) = keys
        .into_iter()
        .partition(|key| key == "index.m3u8" || names::is_segment_file_name(key));
    let refuse = |reason: String| PackageError::Output(format!("{url}: {reason}"));
    if !others.is_empty() {
        let shown: Vec<&str> = others.iter().take(5).map(String::as_str).collect();
        return Err(refuse(format!(
            "holds objects sealcast package did not write ({}{}); choose an empty or new prefix",
            shown.join(", "),
            if others.len() > 5 { ", ..." } else { "" }
        )));
    }
    if ours.is_empty() {
        return Ok(());
    }
    if !replace {
        return Err(refuse(format!(
            "holds an earlier package ({} objects); pass --replace to remove it first, or choose an empty or new prefix",
            ours.len()
        )));
    }
    // The playlist first: no moment where it names deleted segments.
    for key in ours
        .iter()
        .filter(|k| *k == "index.m3u8")
        .chain(ours.iter().filter(|k| *k != "index.m3u8"))
    {
        storage.delete(key).await.map_err(storage_err(&url))?;
    }
    Ok(())
}

/// Objects under the destination's prefix, each PUT whole.
struct StorageSink {
    storage: Storage,
}

#[async_trait::async_trait(?Send)]
impl Sink for StorageSink {
    async fn put_segment(&mut self, name: &str, pieces: Vec<Vec<u8>>) -> Result<(), PackageError> {
        // Moved, not copied: object_store sends the pieces as they are.
        let pieces: Vec<Bytes> = pieces.into_iter().map(Bytes::from).collect();
        self.storage.put(name, &pieces).await.map_err(storage_err(name))
    }

    async fn put_playlist(&mut self, name: &str, text: &[u8]) -> Result<(), PackageError> {
        let text = [Bytes::copy_from_slice(text)];
        self.storage.put(name, &text).await.map_err(storage_err(name))
    }
}

fn storage_err(what: &str) -> impl FnOnce(StorageError) -> PackageError + use<> {
    let what = what.to_owned();
    move |source| PackageError::Storage {
        what,
        source: Box::new(source),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn s3_urls_and_directories() {
        let base = S3Config {
            bucket: "configured".into(),
            endpoint: Some("http://127.0.0.1:9000".into()),
            region: Some("eu-west-1".into()),
            prefix: "live/".into(),
            path_style: Some(true),
            profile: None,
        };
        let Destination::Bucket(got) = Destination::parse("s3://vod-bucket/talks/2026/", Some(&base)).unwrap() else {
            panic!("not a bucket");
        };
        assert_eq!(
            (got.bucket.as_str(), got.key_prefix().as_str()),
            ("vod-bucket", "talks/2026/")
        );
        assert_eq!(got.endpoint, base.endpoint);
        let Destination::Bucket(bare) = Destination::parse("s3://vod-bucket", None).unwrap() else {
            panic!("not a bucket");
        };
        assert_eq!((bare.key_prefix().as_str(), bare.endpoint), ("", None));
        assert_eq!(
            Destination::parse("out/talk", None).unwrap(),
            Destination::Dir(PathBuf::from("out/talk"))
        );
        for bad in ["s3://", "s3://A_B/x", "s3://ab/x", "s3://bucket/../x"] {
            let err = Destination::parse(bad, None).unwrap_err().to_string();
            assert!(err.starts_with(bad), "{bad}: {err}");
        }
    }
}
