#!/usr/bin/env bash
# Instructions per request on the key endpoint and the ticketed playlist,
# counted by valgrind (callgrind): a measure that does not move with the
# machine's load, where requests per second here swing by ±20–40 % from run
# to run. Use it to compare two builds of one change; it counts user-space
# instructions only (not the kernel's TCP work, about 40 % of a request's
# time), and valgrind hides SHA-NI from ring, so SHA-256 weighs more here
# than on the hardware.
#
#   scripts/bench-instructions.sh [SECONDS]       (per case, default 8)
#   SEALCAST_BIN=/path/to/sealcast scripts/bench-instructions.sh
#
# It starts `sealcast serve` under callgrind (tickets on, metrics off, the
# in-memory replay store), pushes the 10 s fixture once, warms each case up,
# then for each of (1) a key with a token and (2) the playlist with 5
# one-time tickets: zeroes the counters, runs `wrk -t1 -c4` for SECONDS,
# dumps, and prints Ir (instructions) per request. The callgrind files stay
# in the work directory it prints, for `callgrind_annotate --inclusive=yes`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${1:-8}
log() { echo "==> $*"; }
source scripts/bench-lib.sh
install_missing valgrind:valgrind wrk:wrk ffmpeg:ffmpeg curl:curl python3:python3
sealcast_binary

WORK=$(mktemp -d /tmp/sealcast-instructions.XXXXXX)
SERVER_PID=""
cleanup() { if [[ -n $SERVER_PID ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi; }
trap cleanup EXIT

METRICS=false ticketed_server valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.%p.out"
wrk -t1 -c4 -d3s "$TOKEN_URL" >/dev/null
wrk -t1 -c4 -d3s "$PLAYLIST_URL" >/dev/null

# count NAME URL: instructions per request of URL.
count() {
  callgrind_control -z "$SERVER_PID" >/dev/null 2>&1
  local out requests dump instructions
  out=$(wrk -t1 -c4 -d"${SECS}s" "$2")
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  callgrind_control -d "$1" "$SERVER_PID" >/dev/null 2>&1
  sleep 1
  dump=$(ls -t "$WORK"/callgrind."$SERVER_PID".out.* | head -1)
  instructions=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
  [[ $out != *Non-2xx* ]] || { echo "$1: answers other than 2xx"; exit 1; }
  printf '%-9s requests %8d  instructions %14d  per request %8d  (%s)\n' "$1" "$requests" "$instructions" \
    $((instructions / requests)) "$dump"
}
count key "$TOKEN_URL"
count playlist "$PLAYLIST_URL"
