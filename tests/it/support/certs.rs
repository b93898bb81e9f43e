//! A test certificate authority made with `openssl`: the CA the TLS tests
//! trust and the server certificates it signs (for 127.0.0.1 and localhost).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::process::path_str;

/// Runs `command` to completion; panics with its stderr when it fails.
pub fn run(what: &str, command: &mut Command) -> String {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e} (scripts/test.sh installs it)"));
    assert!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A test CA (`ca.pem`, `ca.key`) in `dir`.
pub fn make_ca(dir: &Path) -> PathBuf {
    let (pem, key) = (dir.join("ca.pem"), dir.join("ca.key"));
    run(
        "openssl req (CA)",
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-days", "2", "-subj", "/CN=sealcast test CA"])
            .args(["-keyout", path_str(&key), "-out", path_str(&pem)]),
    );
    pem
}

/// A server certificate for 127.0.0.1 and localhost signed by the CA in
/// `dir`: (`NAME.pem`, `NAME.key`).
pub fn make_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (pem, key, csr, ext) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.csr")),
        dir.join(format!("{name}.ext")),
    );
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    run(
        "openssl req (server)",
        Command::new("openssl")
            .args([
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-subj", &format!("/CN={name}")])
            .args(["-keyout", path_str(&key), "-out", path_str(&csr)]),
    );
    run(
        "openssl x509 (sign)",
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-in", path_str(&csr)])
            .args([
                "-CA",
                path_str(&dir.join("ca.pem")),
                "-CAkey",
                path_str(&dir.join("ca.key")),
            ])
            .args(["-CAcreateserial", "-extfile", path_str(&ext), "-out", path_str(&pem)]),
    );
    (pem, key)
}
