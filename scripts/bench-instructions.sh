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

HTTP_PORT=$(free_port)
RTMP_PORT=$(free_port)
PUBLISH_KEY="sk_bench_0123456789abcdef"
printf '%s\n' "bench-secret-0123456789-0123456789-abcdef" >"$WORK/token_secret"
chmod 600 "$WORK/token_secret"
cat >"$WORK/sealcast.toml" <<EOF
[rtmp]
listen = "127.0.0.1:$RTMP_PORT"
[http]
listen = "127.0.0.1:$HTTP_PORT"
[storage]
data_dir = "$WORK/data"
[metrics]
enabled = false
[hls]
segment_duration_secs = 2
reconnect_grace_secs = 0
[auth]
token_secret_file = "$WORK/token_secret"
one_time_key_tickets = true
[[streams]]
app = "live"
name = "bench"
key = "$PUBLISH_KEY"
EOF

log "starting sealcast serve under callgrind (slow to start)"
RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.%p.out" \
  "$BIN" serve --config "$WORK/sealcast.toml" >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 300); do curl -fs "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null && break; sleep 0.2; done
ffmpeg -nostdin -v error -i fixtures/high-bframes-aac48k.flv -c copy -f flv "rtmp://127.0.0.1:$RTMP_PORT/live/$PUBLISH_KEY"
TOKEN=$("$BIN" token --stream live/bench --ttl-secs 3600 --config "$WORK/sealcast.toml" 2>/dev/null)
PLAYLIST_URL="http://127.0.0.1:$HTTP_PORT/live/bench/index.m3u8?token=$TOKEN"
for _ in $(seq 100); do curl -fs "$PLAYLIST_URL" | grep -q ENDLIST && break; sleep 0.2; done
KEY_URI=$(curl -fs "$PLAYLIST_URL" | grep -m1 -o 'URI="[^"]*"' | sed 's/^URI="//; s/"$//')
KEY_PATH=${KEY_URI%%\?*}
EDK=$(printf '%s' "$KEY_URI" | grep -o 'edk=[^&]*' | cut -d= -f2)
KEY_URL="http://127.0.0.1:$HTTP_PORT$KEY_PATH?edk=$EDK&token=$TOKEN"
[[ $(curl -fs "$KEY_URL" | wc -c) -eq 16 ]] || { echo "the key endpoint did not return a key"; exit 1; }
wrk -t1 -c4 -d3s "$KEY_URL" >/dev/null
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
count key "$KEY_URL"
count playlist "$PLAYLIST_URL"
