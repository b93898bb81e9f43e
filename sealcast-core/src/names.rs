//! Public names and the URLs built from them: stream names, segment and
//! playlist paths, and key URIs (docs/architecture.md).
//!
//! Every name that reaches a path or a URL is validated here first, so no
//! request can point outside a stream's directory.

use std::fmt;

use crate::crypto::{KeyId, WrappedKey};

/// Longest app, stream or publish-id component accepted.
pub const MAX_NAME_LEN: usize = 64;

/// Why a name or key URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// A component is empty, too long, or has characters outside A-Z a-z 0-9 _ -.
    #[error("{0:?} must be 1 to 64 characters of A-Z a-z 0-9 _ -")]
    BadComponent(String),
    /// A stream name is not `app/name`.
    #[error("{0:?} is not of the form app/name")]
    NotAppSlashName(String),
    /// A key URI does not follow `/keys/{app}/{name}/{key_id}?edk=…`.
    #[error("not a sealcast key URI")]
    BadKeyUri,
}

/// True for 1..=64 characters of `A-Z a-z 0-9 _ -`: safe in paths and URLs.
pub fn is_valid_component(s: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A public stream name, `app/name`, as in `/live/demo/index.m3u8`.
///
/// Kept as its text, so logs, maps keyed by name and the key endpoint's
/// checks read it without formatting it again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamName {
    /// `app/name`; neither component holds a `/`.
    text: String,
    /// Where the `/` is.
    slash: usize,
}

impl StreamName {
    pub fn new(app: &str, name: &str) -> Result<Self, NameError> {
        for part in [app, name] {
            if !is_valid_component(part) {
                return Err(NameError::BadComponent(part.to_owned()));
            }
        }
        Ok(Self {
            text: format!("{app}/{name}"),
            slash: app.len(),
        })
    }

    /// Parses `app/name`.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let (app, name) = s
            .split_once('/')
            .ok_or_else(|| NameError::NotAppSlashName(s.to_owned()))?;
        Self::new(app, name)
    }

    pub fn app(&self) -> &str {
        &self.text[..self.slash]
    }

    pub fn name(&self) -> &str {
        &self.text[self.slash + 1..]
    }

    /// `app/name`, as [`fmt::Display`] writes it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// URL path of the live playlist.
    pub fn playlist_path(&self) -> String {
        format!("/{}/index.m3u8", self.text)
    }
}

/// By app, then name (not by the text: `-` sorts before `/`).
impl Ord for StreamName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.app(), self.name()).cmp(&(other.app(), other.name()))
    }
}

impl PartialOrd for StreamName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// File name of a segment: `{publish_id}-{seq}.ts`. The random publish id keeps
/// two publishes of one stream apart in every cache.
pub fn segment_file_name(publish_id: &str, sequence: u64) -> String {
    format!("{publish_id}-{sequence}.ts")
}

/// A random 8-hex-digit id per publish (or per packaging run), so two sessions
/// of one stream never share a segment URL.
pub fn random_publish_id() -> Result<String, ring::error::Unspecified> {
    let mut bytes = [0u8; 4];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// True for names [`segment_file_name`] makes: the only files a segment
/// request may open.
pub fn is_segment_file_name(file: &str) -> bool {
    let Some(stem) = file.strip_suffix(".ts") else {
        return false;
    };
    let Some((publish_id, seq)) = stem.rsplit_once('-') else {
        return false;
    };
    is_valid_component(publish_id) && !seq.is_empty() && seq.len() <= 20 && seq.bytes().all(|b| b.is_ascii_digit())
}

/// A parsed key URI: everything the key endpoint needs to unwrap a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUri {
    pub stream: StreamName,
    pub key_id: KeyId,
    pub wrapped: WrappedKey,
}

impl KeyUri {
    /// The URI written into `EXT-X-KEY`: `{base}/keys/{app}/{name}/{key_id}?edk=…`.
    /// `base` is the server's public URL without a trailing slash, or empty for a
    /// root-relative URI.
    pub fn render(stream: &StreamName, key_id: &KeyId, wrapped: &WrappedKey, base: &str) -> String {
        format!(
            "{}/keys/{}/{}/{}?edk={}",
            base.trim_end_matches('/'),
            stream.app(),
            stream.name(),
            key_id,
            wrapped.to_base64url()
        )
    }

    /// Parses a key URI as [`KeyUri::render`] writes it, with or without a scheme
    /// and host, ignoring query parameters other than `edk` (such as `token`).
    pub fn parse(uri: &str) -> Result<Self, NameError> {
        let path_start = uri.find("/keys/").ok_or(NameError::BadKeyUri)?;
        let rest = &uri[path_start + "/keys/".len()..];
        let (path, query) = rest.split_once('?').ok_or(NameError::BadKeyUri)?;
        let mut parts = path.split('/');
        let (Some(app), Some(name), Some(key_id), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(NameError::BadKeyUri);
        };
        let edk = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("edk="))
            .ok_or(NameError::BadKeyUri)?;
        Ok(Self {
            stream: StreamName::new(app, name)?,
            key_id: KeyId::new(key_id).map_err(|_| NameError::BadKeyUri)?,
            wrapped: WrappedKey::from_base64url(edk).map_err(|_| NameError::BadKeyUri)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components() {
        for ok in ["live", "a", "demo_1", "A-b", &"x".repeat(64)] {
            assert!(is_valid_component(ok), "{ok}");
        }
        for bad in ["", "a b", "../x", "a/b", "é", ".", "..", &"x".repeat(65), "a%2f"] {
            assert!(!is_valid_component(bad), "{bad}");
        }
    }

    #[test]
    fn stream_names() {
        let s = StreamName::parse("live/demo").unwrap();
        assert_eq!((s.app(), s.name()), ("live", "demo"));
        assert_eq!(s.to_string(), "live/demo");
        assert_eq!(s.playlist_path(), "/live/demo/index.m3u8");
        assert_eq!(
            StreamName::parse("live"),
            Err(NameError::NotAppSlashName("live".into()))
        );
        assert_eq!(
            StreamName::parse("live/../x"),
            Err(NameError::BadComponent("../x".into()))
        );
        assert!(StreamName::parse("live/demo/x").is_err());
    }

    #[test]
    fn segment_names() {
        assert_eq!(segment_file_name("ab12", 7), "ab12-7.ts");
        assert!(is_segment_file_name("ab12-7.ts"));
        assert!(is_segment_file_name("a-b-18446744073709551615.ts"));
        for bad in [
            "ab12-7.ts.tmp",
            "ab12.ts",
            "-7.ts",
            "ab12-.ts",
            "../x-1.ts",
            "ab12-7x.ts",
            "index.m3u8",
            "a b-1.ts",
        ] {
            assert!(!is_segment_file_name(bad), "{bad}");
        }
    }

    #[test]
    fn key_uri_round_trip() {
        let stream = StreamName::parse("live/demo").unwrap();
        let key_id = KeyId::new("ab12-3").unwrap();
        let wrapped = WrappedKey::from_bytes(vec![0xfb, 0xff, 0x00, 0x10]);
        let uri = KeyUri::render(&stream, &key_id, &wrapped, "http://h:8080/");
        assert_eq!(uri, "http://h:8080/keys/live/demo/ab12-3?edk=-_8AEA");
        let rel = KeyUri::render(&stream, &key_id, &wrapped, "");
        assert_eq!(rel, "/keys/live/demo/ab12-3?edk=-_8AEA");
        for text in [uri.as_str(), rel.as_str(), "/keys/live/demo/ab12-3?token=x&edk=-_8AEA"] {
            let parsed = KeyUri::parse(text).unwrap();
            assert_eq!(
                parsed,
                KeyUri {
                    stream: stream.clone(),
                    key_id: key_id.clone(),
                    wrapped: wrapped.clone()
                }
            );
        }
        for bad in [
            "",
            "/keys/live/demo/k",
            "/keys/live/demo?edk=AA",
            "/keys/live/demo/k/x?edk=AA",
            "/keys/l/d/k?edk=***",
            "/keys/l/d/k?x=1",
        ] {
            assert!(KeyUri::parse(bad).is_err(), "{bad}");
        }
    }
}
