#!/usr/bin/env bash
# Checks packaging/sealcast.service with `systemd-analyze verify` (Debian's
# systemd package). verify exits 0 on unknown keys and bad values and only
# prints them, so any output at all is a failure here. The unit's binary path
# (/usr/local/bin/sealcast) is pointed at an existing executable first, as
# verify checks that ExecStart= exists.
# Usage: scripts/check-systemd-unit.sh [UNIT]
set -euo pipefail
cd "$(dirname "$0")/.."
unit=${1:-packaging/sealcast.service}
if ! command -v systemd-analyze >/dev/null; then
  echo "==> installing systemd (for systemd-analyze)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s|/usr/local/bin/sealcast|$(command -v true)|" "$unit" >"$work/sealcast.service"
out=$(SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no "$work/sealcast.service" 2>&1) || {
  echo "$out"; echo "systemd-analyze verify failed on $unit"; exit 1; }
if [ -n "$out" ]; then
  echo "$out"
  echo "systemd-analyze verify complained about $unit"
  exit 1
fi
echo "$unit: systemd-analyze verify is clean"
