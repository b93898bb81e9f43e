//! The HTTP client of webhooks and the publish hook. `https://` receivers
//! are verified against the Mozilla roots (`webpki-roots`) plus, when the
//! operator names one, a CA file of their own (a receiver on a private PKI);
//! `http://` stays allowed for a receiver on loopback or a private network.
//! The publish hook sends stream keys: over anything but loopback it belongs
//! on `https://` (the README says so).

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A client for `http://` and `https://` receivers.
pub type HookClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client trusting the Mozilla roots and the certificates in `ca_file`;
/// the error says what is wrong with the file.
pub fn hook_client(ca_file: Option<&Path>) -> Result<HookClient, String> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        for cert in crate::tls::read_certs(path)? {
            roots
                .add(cert)
                .map_err(|e| format!("holds an unusable CA certificate: {e}"))?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// [`hook_client`] for a configuration: the error names `setting` (the CA
/// file's key) and the file.
pub fn configured_hook_client(setting: &str, ca_file: Option<&Path>) -> Result<HookClient, String> {
    hook_client(ca_file).map_err(|why| {
        let file = ca_file.map(|f| f.display().to_string()).unwrap_or_default();
        format!("{setting} {file}: {why}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("ca.pem");
        assert!(hook_client(Some(&missing)).unwrap_err().contains("cannot be read"));
        std::fs::write(&missing, "not pem\n").unwrap();
        assert!(hook_client(Some(&missing)).unwrap_err().contains("no PEM certificate"));
        assert!(hook_client(None).is_ok());
    }
}
