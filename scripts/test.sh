#!/usr/bin/env bash
# The one test command: installs what the tests need, then runs the format check,
# clippy with warnings as errors, and every test (unit, integration, end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need_apt+=(ffmpeg)
# The browser test (tests/it/browser.rs) drives Debian's Chromium.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v node >/dev/null && command -v npm >/dev/null || need_apt+=(nodejs npm)
# Two key servers share a real Redis in tests/it/key_service.rs.
command -v redis-server >/dev/null || need_apt+=(redis-server)
# tests/it/cluster_demo.rs runs scripts/cluster-demo.sh: haproxy (RTMP) and nginx (the cache).
[ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null || need_apt+=(haproxy)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || need_apt+=(nginx)
# The TLS tests make their CA and certificates with openssl; curl checks HTTP/2 by ALPN.
command -v openssl >/dev/null || need_apt+=(openssl)
command -v curl >/dev/null || need_apt+=(curl)
# tests/it/metrics.rs checks /metrics with `promtool check metrics`.
command -v promtool >/dev/null || need_apt+=(prometheus)
# GStreamer publishes in tests/it/robustness.rs: rtmp2sink and rtmpsink (librtmp,
# the RTMP stack OBS derives from) from plugins-bad, flvmux/flvdemux from -good.
if ! { command -v gst-launch-1.0 >/dev/null && gst-inspect-1.0 rtmp2sink >/dev/null 2>&1 &&
  gst-inspect-1.0 rtmpsink >/dev/null 2>&1 && gst-inspect-1.0 flvmux >/dev/null 2>&1; }; then
  need_apt+=(gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# tests/it/pyjwt_interop.rs mints tokens with PyJWT (RS256 ones need `cryptography`).
if ! python3 -c "import jwt, cryptography" 2>/dev/null; then
  echo "==> installing PyJWT and cryptography (pip)"
  python3 -m pip install --quiet PyJWT cryptography 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages PyJWT cryptography
fi
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy
# playwright-core (drives Chromium) and pngjs, as package-lock.json pins them (the
# watch page loads the hls.js embedded in sealcast; the npm copy pins the same release).
echo "==> npm ci in tests/browser"
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
# moto's server: a real implementation of the AWS KMS API for the AWS provider's tests.
if ! python3 -c 'import moto.server, flask, flask_cors' >/dev/null 2>&1; then
  echo "==> installing moto[server]"
  python3 -m pip install --quiet 'moto[server]>=5,<6'
fi
# s3rver: a second, independent S3 implementation (Node, knows one access key, stores on disk)
# for the object storage backend's tests; moto's S3 is the first. Chosen over s3s-fs
# because it installs in seconds from npm instead of minutes of compiling.
if ! command -v s3rver >/dev/null; then
  echo "==> installing s3rver (npm)"
  npm install -g --no-audit --no-fund --loglevel=error s3rver@3.7.1
fi

echo "==> sans-IO check of sealcast-core, and proof that it catches a violation"
scripts/check-sans-io.sh
planted=$(mktemp -d)
trap 'rm -rf "$planted"' EXIT
cp -r sealcast-core/src "$planted/src"
sed -i '1i use std::net::TcpStream;' "$planted/src/pipeline.rs"
if scripts/check-sans-io.sh "$planted" >/dev/null; then
  echo "the sans-IO check missed a planted 'use std::net::TcpStream' in pipeline.rs"
  exit 1
fi

echo "==> the systemd unit (systemd-analyze verify), and proof that the check catches a bad key"
scripts/check-systemd-unit.sh
sed 's/^ProtectSystem=strict/ProtectSystem=sideways/' packaging/sealcast.service >"$planted/bad.service"
if scripts/check-systemd-unit.sh "$planted/bad.service" >/dev/null; then
  echo "the systemd unit check missed a planted 'ProtectSystem=sideways'"
  exit 1
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
# --workspace: the sans-IO core crate (sealcast-core) is linted and tested too.
echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> fuzz targets compile (fuzz/ is its own workspace; run them with scripts/fuzz.sh)"
(cd fuzz && RUSTC_BOOTSTRAP=1 cargo check --quiet --bins)
echo "==> cargo test"
mkdir -p target
cargo test --workspace --all-targets 2>&1 | tee target/test-output.log
passed=$(grep -oE '[0-9]+ passed' target/test-output.log | awk '{s+=$1} END {print s+0}')
failed=$(grep -oE '[0-9]+ failed' target/test-output.log | awk '{s+=$1} END {print s+0}')
echo "all suites: $passed passed, $failed failed"
