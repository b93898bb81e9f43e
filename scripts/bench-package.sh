#!/usr/bin/env bash
# `sealcast package` against ffmpeg's own HLS encryption on the same 60 s
# 720p FLV, timed in one run: RUNS repetitions each (default 7), medians of
# wall-clock and CPU (user + system) seconds.
#
#   scripts/bench-package.sh [RUNS]
#
# The input is fixtures/bench-720p.flv (scripts/make-fixtures.sh bench)
# looped to 60 s without re-encoding. ffmpeg is given a key file because
# Debian's ffmpeg fails `-hls_enc 1` without `-hls_enc_key` ("Function not
# implemented"); it then encrypts every segment with that one key, where
# sealcast generates and wraps a key per segment through its local KMS.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${1:-7}
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
[[ -x /usr/bin/time ]] || need+=(time)
if ((${#need[@]})); then
  echo "==> installing ${need[*]}"
  SUDO=; [[ $(id -u) == 0 ]] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
[[ -f fixtures/bench-720p.flv ]] || scripts/make-fixtures.sh bench
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
cargo build --release --quiet --bin sealcast
BIN=$CARGO_TARGET_DIR/release/sealcast

WORK=$(mktemp -d /tmp/sealcast-bench-package.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
INPUT=$WORK/bench60.flv
ffmpeg -v error -stream_loop 5 -i fixtures/bench-720p.flv -c copy -t 60 -f flv "$INPUT"
printf '0123456789abcdef' >"$WORK/key.bin"
echo "==> input: $(du -h "$INPUT" | cut -f1) $(ffprobe -v error -show_entries format=duration -of csv=p=0 "$INPUT") s; load $(cut -d' ' -f1-3 /proc/loadavg)"

# run NAME COMMAND...: appends "wall cpu" (seconds) to $WORK/NAME.times.
run() {
  local name=$1; shift
  local out=$WORK/out-$name
  rm -rf "$out"; mkdir -p "$out"
  (cd "$out" && /usr/bin/time -f '%e %U %S' -o "$WORK/time" "$@" >/dev/null 2>&1)
  awk '{printf "%.3f %.3f\n", $1, $2 + $3}' "$WORK/time" >>"$WORK/$name.times"
}
"$BIN" kms init --keyring "$WORK/keyring.json" >/dev/null
for ((i = 0; i < RUNS; i++)); do
  run sealcast "$BIN" package "$INPUT" . --keyring "$WORK/keyring.json" --segment-duration-secs 2
  run ffmpeg ffmpeg -v error -i "$INPUT" -c copy -f hls -hls_time 2 -hls_enc 1 \
    -hls_enc_key "$WORK/key.bin" -hls_enc_key_url key.bin -hls_list_size 0 out.m3u8
done
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
printf '%-10s %12s %12s %9s\n' "" "wall (s)" "cpu (s)" "segments"
for name in sealcast ffmpeg; do
  wall=$(cut -d' ' -f1 "$WORK/$name.times" | median)
  cpu=$(cut -d' ' -f2 "$WORK/$name.times" | median)
  printf '%-10s %12s %12s %9s\n' "$name" "$wall" "$cpu" "$(ls "$WORK/out-$name" | grep -c '\.ts$')"
  eval "${name}_wall=$wall ${name}_cpu=$cpu"
done
awk -v sw="$sealcast_wall" -v fw="$ffmpeg_wall" -v sc="$sealcast_cpu" -v fc="$ffmpeg_cpu" \
  'BEGIN {printf "ffmpeg / sealcast: %.1fx wall, %.1fx cpu (medians of '"$RUNS"' runs)\n", fw / sw, fc / sc}'
