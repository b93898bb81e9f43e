#!/usr/bin/env bash
# Viewer-side benchmark: sealcast against nginx serving the same files, in one run.
#
#   scripts/bench-delivery.sh [VIEWERS] [SECONDS]      (defaults 200, 30)
#
# Starts `sealcast serve` (one-time key tickets on, a key per segment, segments
# on tmpfs) and STREAMS (4) realtime publishers (`sealcast bench-push`, the
# 2.7 Mb/s 720p fixture), and nginx (Debian's, static, NGINX_WORKERS=1) whose
# root is sealcast's data directory, so it serves the very same segment files
# and canonical playlists, and a 16-byte file for every /keys/ URI. Then:
#   1. viewers: `sealcast bench-play` with VIEWERS simulated hls.js players
#      spread over the streams, SECONDS long, against sealcast (token in the
#      playlist URL, fresh tickets in its key URIs) and then against nginx;
#      requests, bytes, errors and latency percentiles per request type;
#   2. throughput: `wrk -t2 -c64 -d10s --latency` on one segment, on a playlist
#      (sealcast: token check + a fresh ticket per key URI; nginx: the static
#      file) and on a key (sealcast: token check + cached unwrap; nginx: a
#      static 16-byte file), printed side by side with the ratio.
# Everything runs on loopback with the load generators on the same cores:
# compare the two columns of one run, not runs on different days.
#
# Environment: STREAMS, NGINX_WORKERS, WRK_SECS (10), WORK (default a fresh
# /dev/shm dir), SEALCAST_BIN (skip the build). Installs nginx, wrk, curl and
# python3 from Debian when missing. Kills only the processes it started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VIEWERS=${1:-200}
SECS=${2:-30}
STREAMS=${STREAMS:-4}
NGINX_WORKERS=${NGINX_WORKERS:-1}
WRK_SECS=${WRK_SECS:-10}
WORK=${WORK:-$(mktemp -d /dev/shm/sealcast-delivery.XXXXXX)}
mkdir -p "$WORK"
FIXTURE=$ROOT/fixtures/bench-720p.flv

log() { printf '[delivery %s] %s\n' "$(date +%T)" "$*" >&2; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

source scripts/bench-lib.sh
install_missing nginx:nginx wrk:wrk curl:curl python3:python3 ffmpeg:ffmpeg
[[ -f $FIXTURE ]] || scripts/make-fixtures.sh bench
sealcast_binary

STARTED=()
cleanup() {
  for pid in "${STARTED[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [[ -f $WORK/nginx/nginx.pid ]]; then kill "$(cat "$WORK/nginx/nginx.pid")" 2>/dev/null || true; fi
}
trap cleanup EXIT

# --- sealcast ----------------------------------------------------------------
RTMP_PORT=$(free_port); HTTP_PORT=$(free_port); NGINX_PORT=$(free_port)
DATA=$WORK/data
mkdir -p "$DATA"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/token_secret"
chmod 600 "$WORK/token_secret"
RUN_ID=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
for ((i = 0; i < STREAMS; i++)); do echo "sk_${RUN_ID}_$i"; done >"$WORK/keys.txt"
{
  printf '[rtmp]\nlisten = "127.0.0.1:%s"\n[http]\nlisten = "127.0.0.1:%s"\n' "$RTMP_PORT" "$HTTP_PORT"
  # Every viewer comes from 127.0.0.1: lift the per-address cap (128).
  printf '[http.limits]\nmax_connections_per_ip = %d\n' $((VIEWERS + 256))
  printf '[storage]\ndata_dir = "%s"\n[hls]\nsegment_duration_secs = 2\n' "$DATA"
  printf '[encryption]\nsegments_per_key = 1\n'
  printf '[auth]\ntoken_secret_file = "%s"\none_time_key_tickets = true\n' "$WORK/token_secret"
  printf '[auth.replay]\nmax_entries = 4000000\n'
  i=0
  while read -r key; do
    printf '[[streams]]\napp = "live"\nname = "s%d"\nkey = "%s"\n' "$i" "$key"
    i=$((i + 1))
  done <"$WORK/keys.txt"
} >"$WORK/sealcast.toml"
RUST_LOG=warn "$BIN" serve --config "$WORK/sealcast.toml" >"$WORK/server.out" 2>"$WORK/server.log" &
STARTED+=("$!")
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null && break; sleep 0.1; done
PUSH_SECS=$((2 * SECS + 6 * WRK_SECS + 60))
"$BIN" bench-push --url "rtmp://127.0.0.1:$RTMP_PORT/live" --fixture "$FIXTURE" --keys-file "$WORK/keys.txt" \
  --duration-secs "$PUSH_SECS" --ramp-ms 1000 >"$WORK/push.log" 2>&1 &
STARTED+=("$!")
TOKEN=$("$BIN" token --stream 'live/*' --ttl-secs 7200 --config "$WORK/sealcast.toml" 2>/dev/null)
log "waiting for $STREAMS live playlists with 3 segments"
for ((i = 0; i < STREAMS; i++)); do
  for _ in $(seq 300); do
    [[ $(curl -fs "http://127.0.0.1:$HTTP_PORT/live/s$i/index.m3u8?token=$TOKEN" | grep -c '^#EXTINF') -ge 3 ]] && break
    sleep 0.2
  done
done

# --- nginx: the same files, static ---------------------------------------------
mkdir -p "$WORK/nginx/logs"
head -c 16 /dev/urandom >"$WORK/nginx/key16.bin"
user_line=""; [[ $(id -u) == 0 ]] && user_line="user root;"
cat >"$WORK/nginx/nginx.conf" <<EOF
$user_line
worker_processes $NGINX_WORKERS;
daemon on;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $DATA;
    location /keys/ { root $WORK/nginx; try_files /key16.bin =404; add_header Cache-Control no-store; }
  }
}
EOF
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/logs/error.log"

# --- 1. simulated viewers ---------------------------------------------------------
# Each viewer its own token, as each player has its own (key budgets are per
# viewer); viewer i watches stream i mod STREAMS.
log "minting $VIEWERS viewer tokens"
for ((i = 0; i < VIEWERS; i++)); do
  t=$("$BIN" token --stream 'live/*' --ttl-secs 7200 --sub "viewer$i" --config "$WORK/sealcast.toml" 2>/dev/null)
  echo "http://127.0.0.1:$HTTP_PORT/live/s$((i % STREAMS))/index.m3u8?token=$t"
done >"$WORK/sealcast-urls.txt"
for ((i = 0; i < STREAMS; i++)); do echo "http://127.0.0.1:$NGINX_PORT/live/s$i/index.m3u8"; done >"$WORK/nginx-urls.txt"
play() { "$BIN" bench-play --urls-file "$1" -n "$VIEWERS" --duration-secs "$SECS" --ramp-ms 2000 || true; }
log "bench-play: $VIEWERS viewers x ${SECS}s against sealcast (load $(loadavg))"
play "$WORK/sealcast-urls.txt" >"$WORK/play-sealcast.txt"
log "bench-play: $VIEWERS viewers x ${SECS}s against nginx (load $(loadavg))"
play "$WORK/nginx-urls.txt" >"$WORK/play-nginx.txt"

# --- 2. throughput (wrk) -----------------------------------------------------------
PLAYLIST=$(curl -fs "http://127.0.0.1:$HTTP_PORT/live/s0/index.m3u8?token=$TOKEN")
SEGMENT=/live/s0/$(printf '%s\n' "$PLAYLIST" | grep -v '^#' | grep '\.ts' | tail -n 1)
KEY_URI=$(printf '%s\n' "$PLAYLIST" | grep -o 'URI="[^"]*"' | tail -n 1 | sed 's/^URI="//; s/"$//')
KEY_PATH=${KEY_URI%%\?*}
EDK=$(printf '%s' "$KEY_URI" | grep -o 'edk=[^&]*' | cut -d= -f2)
: >"$WORK/wrk.txt"
bench() {
  local label=$1 url=$2
  echo "== $label load $(loadavg)" >>"$WORK/wrk.txt"
  wrk -t2 -c64 -d"${WRK_SECS}s" --latency "$url" >>"$WORK/wrk.txt" 2>&1 || true
}
log "wrk: segment, playlist, key against both (load $(loadavg))"
bench "segment sealcast" "http://127.0.0.1:$HTTP_PORT$SEGMENT"
bench "segment nginx" "http://127.0.0.1:$NGINX_PORT$SEGMENT"
bench "playlist sealcast" "http://127.0.0.1:$HTTP_PORT/live/s0/index.m3u8?token=$TOKEN"
bench "playlist nginx" "http://127.0.0.1:$NGINX_PORT/live/s0/index.m3u8"
bench "key sealcast" "http://127.0.0.1:$HTTP_PORT$KEY_PATH?edk=$EDK&token=$TOKEN"
bench "key nginx" "http://127.0.0.1:$NGINX_PORT$KEY_PATH?edk=$EDK"

# --- report ------------------------------------------------------------------------
echo
echo "== bench-delivery: $VIEWERS viewers on $STREAMS streams, ${SECS}s; work dir $WORK"
echo "-- sealcast (token in the playlist URL, one-time tickets in key URIs)"
cat "$WORK/play-sealcast.txt"
echo "-- nginx (static files: the same segments and canonical playlists, a 16-byte key file)"
cat "$WORK/play-nginx.txt"
python3 - "$WORK/wrk.txt" <<'PY'
import re, sys
runs, cur = {}, None
for line in open(sys.argv[1]):
    m = re.match(r"== (\w+) (\w+) load (.*)", line)
    if m:
        cur = runs.setdefault((m.group(1), m.group(2)), {"load": m.group(3).strip(), "non2xx": 0})
        continue
    if cur is None:
        continue
    if line.startswith("Requests/sec:"):
        cur["rps"] = float(line.split()[1])
    elif line.startswith("Transfer/sec:"):
        v = line.split()[1]
        unit = {"B": 1e-6, "KB": 1e-3 * 1.024, "MB": 1.048576, "GB": 1073.741824}
        num, suf = re.match(r"([\d.]+)(\w+)", v).groups()
        cur["mbs"] = float(num) * unit.get(suf, 1)
    elif re.match(r"\s+(50|99)%", line):
        p, v = line.split()
        num, suf = re.match(r"([\d.]+)(\w+)", v).groups()
        cur["p" + p[:-1]] = float(num) * {"us": 1e-3, "ms": 1, "s": 1000}[suf]
    elif "Non-2xx" in line:
        cur["non2xx"] = int(line.split()[-1])
print("\n-- throughput, wrk -t2 -c64 (one connection per wrk slot, keep-alive)")
print(f"{'request':<10}{'server':<10}{'req/s':>10}{'MB/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}  load")
for kind in ("segment", "playlist", "key"):
    for server in ("sealcast", "nginx"):
        r = runs.get((kind, server), {})
        print(f"{kind:<10}{server:<10}{r.get('rps', 0):>10.0f}{r.get('mbs', 0):>9.1f}{r.get('p50', 0):>9.2f}{r.get('p99', 0):>9.2f}{r.get('non2xx', 0):>9}  {r.get('load', '')}")
    a, b = runs.get((kind, "sealcast"), {}).get("rps", 0), runs.get((kind, "nginx"), {}).get("rps", 0)
    print(f"{kind:<10}{'ratio':<10}{(a / b if b else 0):>10.2f}")
PY
