#!/usr/bin/env bash
# The one test command: installs what the tests need, then runs the format check,
# clippy with warnings as errors, and every test (unit, integration, end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need_apt+=(ffmpeg)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy
# moto's server: a real implementation of the AWS KMS API for the AWS provider's tests.
if ! python3 -c 'import moto.server, flask, flask_cors' >/dev/null 2>&1; then
  echo "==> installing moto[server]"
  python3 -m pip install --quiet 'moto[server]>=5,<6'
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --all-targets -- -D warnings
echo "==> cargo clippy --all-features (aws-tls)"
cargo clippy --all-targets --all-features -- -D warnings
echo "==> cargo test"
mkdir -p target
cargo test --all-targets 2>&1 | tee target/test-output.log
echo "==> cargo test --all-features --lib (aws-tls)"
cargo test --all-features --lib 2>&1 | tee -a target/test-output.log
passed=$(grep -oE '[0-9]+ passed' target/test-output.log | awk '{s+=$1} END {print s+0}')
failed=$(grep -oE '[0-9]+ failed' target/test-output.log | awk '{s+=$1} END {print s+0}')
echo "all suites: $passed passed, $failed failed"
