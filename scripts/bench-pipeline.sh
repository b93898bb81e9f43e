#!/usr/bin/env bash
# Packaging throughput: runs the criterion benches (benches/pipeline.rs) and the
# machine's single-core AES-128-CBC rate from `openssl speed`, to divide the
# pipeline's MB/s of FLV input by. Prints the load average before and after,
# since the numbers only mean something on a quiet machine.
#
# Usage: scripts/bench-pipeline.sh [criterion filter, e.g. pipeline_package]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v openssl >/dev/null; then
  echo "==> installing openssl"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends openssl >/dev/null
fi

echo "==> $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ //')"
echo "==> load before: $(uptime)"
cargo bench --bench pipeline -- "$@"
echo "==> load after criterion: $(uptime)"

echo "==> openssl speed -evp aes-128-cbc -seconds 3 (single core; k = 1000 bytes/s)"
openssl speed -evp aes-128-cbc -seconds 3 2>/dev/null | tail -n 3
echo "==> openssl speed -evp aes-128-cbc -seconds 3 -bytes 16384"
openssl speed -evp aes-128-cbc -seconds 3 -bytes 16384 2>/dev/null | tail -n 2
echo "==> load after: $(uptime)"
