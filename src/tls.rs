//! TLS for the listeners (HTTPS, RTMPS): rustls with *ring*, a certificate
//! chain and key from PEM files, swapped in place on SIGHUP.
//!
//! A [`CertStore`] is rustls's certificate resolver: every new handshake
//! takes the certificate in effect at that moment (an `Arc` clone under a
//! short lock), so [`CertStore::reload`] changes what new connections get and
//! leaves established ones alone. A file that does not load is an error at
//! start naming its setting (`http.tls_cert_file ...`); at reload it is
//! logged and the old certificate stays.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
pub use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;

/// ALPN for HTTPS: HTTP/2 preferred, HTTP/1.1 otherwise.
pub const ALPN_HTTP: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read, or holds no PEM item of
    /// the kind expected.
    #[error("{setting} {path}: {reason}")]
    File {
        /// The TOML key that named the file.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// The key is of a kind rustls cannot sign with, or does not belong to
    /// the certificate.
    #[error("{setting} {path}: {reason}")]
    Key {
        /// The TOML key that named the key file.
        setting: &'static str,
        /// The key file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// rustls refused the protocol settings (not expected with *ring*).
    #[error("TLS setup: {0}")]
    Setup(#[from] rustls::Error),
}

/// The certificate one or more listeners present, reloadable.
pub struct CertStore {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key; the files and the fingerprint are enough.
        f.debug_struct("CertStore")
            .field("cert_file", &self.files.cert_file)
            .field("key_file", &self.files.key_file)
            .field("sha256", &self.fingerprint())
            .finish()
    }
}

impl CertStore {
    /// Loads `files`; an unreadable or mismatched pair is an error naming its
    /// setting.
    pub fn load(files: &TlsFiles) -> Result<Arc<Self>, TlsError> {
        let key = load_pair(files)?;
        Ok(Arc::new(Self {
            files: files.clone(),
            current: RwLock::new(Arc::new(key)),
        }))
    }

    /// The files this store reads.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Reads the files again; on success new handshakes get the new
    /// certificate, on error the old one stays. Returns the new fingerprint.
    pub fn reload(&self) -> Result<String, TlsError> {
        let key = Arc::new(load_pair(&self.files)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = key;
        Ok(self.fingerprint())
    }

    /// SHA-256 of the leaf certificate (DER), hex: what
    /// `openssl x509 -fingerprint -sha256` shows, without the colons.
    pub fn fingerprint(&self) -> String {
        let current = self.certified();
        current.cert.first().map_or_else(String::new, |leaf| {
            let digest = ring::digest::digest(&ring::digest::SHA256, leaf.as_ref());
            digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
        })
    }

    fn certified(&self) -> Arc<CertifiedKey> {
        // A panic elsewhere cannot leave a half-written Arc.
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// A rustls acceptor presenting this store's certificate, offering `alpn`.
    pub fn acceptor(self: &Arc<Self>, alpn: &[&[u8]]) -> Result<TlsAcceptor, TlsError> {
        let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.certified())
    }
}

/// Reads and checks a certificate chain and its key.
fn load_pair(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let cert_error = |reason: String| TlsError::File {
        setting: files.cert_setting,
        path: files.cert_file.clone(),
        reason,
    };
    let certs = read_certs(&files.cert_file).map_err(cert_error)?;
    let key_error = |reason: String| TlsError::Key {
        setting: files.key_setting,
        path: files.key_file.clone(),
        reason,
    };
    let key = PrivateKeyDer::from_pem_file(&files.key_file).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::File {
            setting: files.key_setting,
            path: files.key_file.clone(),
            reason: "no PEM private key (PKCS#8, PKCS#1 or SEC1) in the file".to_owned(),
        },
        other => TlsError::File {
            setting: files.key_setting,
            path: files.key_file.clone(),
            reason: pem_reason(&other),
        },
    })?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| key_error(format!("unsupported private key: {e}")))?;
    let certified = CertifiedKey::new(certs, signer);
    certified.keys_match().map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => key_error(format!(
            "the key does not belong to the certificate in {}",
            files.cert_file.display()
        )),
        rustls::Error::InvalidCertificate(e) => TlsError::File {
            setting: files.cert_setting,
            path: files.cert_file.clone(),
            reason: format!("not a valid certificate: {e:?}"),
        },
        other => key_error(other.to_string()),
    })?;
    Ok(certified)
}

pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_reason(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_reason(&e))?;
    if certs.is_empty() {
        return Err("no PEM certificate in the file".to_owned());
    }
    Ok(certs)
}

/// A PEM reading error in words (rustls's show marker bytes as numbers).
fn pem_reason(error: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match error {
        Error::Io(e) => format!("cannot be read: {e}"),
        Error::MissingSectionEnd { .. } => "malformed PEM: a BEGIN line has no END line".to_owned(),
        Error::IllegalSectionStart { .. } => "malformed PEM: a bad BEGIN line".to_owned(),
        Error::Base64Decode(_) => "malformed PEM: the base64 does not decode".to_owned(),
        other => format!("malformed PEM: {other:?}"),
    }
}
