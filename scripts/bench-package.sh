#!/usr/bin/env bash
# `sealcast package` against ffmpeg's own HLS encryption on the same 60 s 720p
# MP4 (H.264 + AAC, made here with ffmpeg's lavfi sources), with hyperfine:
# medians of RUNS runs each (default 10), then sealcast's throughput (MB of
# input per second) against the single-core `openssl speed -evp aes-128-cbc`
# rate on 16 KiB blocks, the ceiling for any AES-128-CBC packager.
#
#   scripts/bench-package.sh [RUNS]        (BENCH_BITRATE=3M for a 3 Mb/s input; default 5M)
#
# Then both again under scripts/cpu-median.py: medians of user+sys CPU time
# per run (getrusage), the measure that survives a shared, loaded machine.
#
# ffmpeg is given a key file because Debian's ffmpeg fails `-hls_enc 1`
# without `-hls_enc_key` ("Function not implemented"); it then encrypts every
# segment with that one key, where sealcast generates and wraps a key per
# segment through its local KMS. The numbers mean something only on a quiet
# machine: the load average is printed before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${1:-10}
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v jq >/dev/null || need+=(jq)
command -v openssl >/dev/null || need+=(openssl)
if ((${#need[@]})); then
  echo "==> installing ${need[*]}"
  SUDO=; [[ $(id -u) == 0 ]] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
cargo build --release --quiet --bin sealcast
BIN=$CARGO_TARGET_DIR/release/sealcast

WORK=$(mktemp -d /tmp/sealcast-bench-package.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
INPUT=${BENCH_INPUT:-$WORK/bench60.mp4}
if [[ ! -f $INPUT ]]; then
  RATE=${BENCH_BITRATE:-5M}
  echo "==> making a 60 s 720p30 H.264 ($RATE) + AAC MP4"
  ffmpeg -nostdin -v error -f lavfi -i testsrc2=size=1280x720:rate=30 \
    -f lavfi -i sine=frequency=440:sample_rate=48000 -t 60 -pix_fmt yuv420p \
    -c:v libx264 -preset ultrafast -b:v "$RATE" -maxrate "$RATE" -bufsize 10M -g 60 \
    -c:a aac -b:a 128k "$INPUT"
fi
BYTES=$(stat -c %s "$INPUT")
printf '0123456789abcdef' >"$WORK/key.bin"
"$BIN" kms init --keyring "$WORK/keyring.json" >/dev/null
echo "==> input: $BYTES bytes; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
# ffmpeg writes the key file its -hls_enc_key_url names into the current
# directory: run from the work directory, so it goes away with it.
cd "$WORK"

hyperfine --runs "$RUNS" --warmup 2 --export-json "$WORK/hyperfine.json" \
  --prepare "rm -rf $WORK/out-s $WORK/out-f && mkdir -p $WORK/out-f" \
  -n sealcast "$BIN package $INPUT $WORK/out-s --keyring $WORK/keyring.json --segment-duration-secs 2" \
  -n ffmpeg "ffmpeg -nostdin -v error -i $INPUT -c copy -f hls -hls_time 2 -hls_enc 1 -hls_enc_key $WORK/key.bin -hls_enc_key_url key.bin -hls_list_size 0 $WORK/out-f/out.m3u8"

echo "==> openssl speed -evp aes-128-cbc -bytes 16384 (single core)"
OPENSSL_KBS=$(openssl speed -evp aes-128-cbc -seconds 3 -bytes 16384 2>/dev/null | awk '/^AES-128-CBC/ {sub(/k$/, "", $2); print $2}')
jq -r --arg bytes "$BYTES" --arg ossl "$OPENSSL_KBS" '
  .results[] | . as $r
  | ($bytes | tonumber) as $b | ($ossl | tonumber * 1000) as $o
  | "\($r.command): median \($r.median * 1000 | floor) ms wall, mean cpu \(($r.user + $r.system) * 1000 | floor) ms; "
    + "\($b / $r.median / 1e6 | floor) MB/s wall = \($b / $r.median / $o * 100 | floor)% of openssl, "
    + "\($b / ($r.user + $r.system) / 1e6 | floor) MB/s cpu = \($b / ($r.user + $r.system) / $o * 100 | floor)% of openssl (\($o / 1e6 | floor) MB/s)"' \
  "$WORK/hyperfine.json"
echo "==> load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "==> CPU time (user+sys), medians of $RUNS runs"
python3 "$ROOT/scripts/cpu-median.py" "$RUNS" "$WORK/out-s" "$BIN" package "$INPUT" "$WORK/out-s" --keyring "$WORK/keyring.json" --segment-duration-secs 2
python3 "$ROOT/scripts/cpu-median.py" "$RUNS" "$WORK/out-f" ffmpeg -nostdin -v error -i "$INPUT" -c copy -f hls -hls_time 2 -hls_enc 1 \
  -hls_enc_key "$WORK/key.bin" -hls_enc_key_url key.bin -hls_list_size 0 "$WORK/out-f/out.m3u8"
