#!/usr/bin/env bash
# License endpoint throughput and latency (docs/protection.md), with wrk:
#   POST /license/live/bench with a playback token (Authorization: Bearer) and a
#   6-key request (a full playlist window of 6 segments with a key each): token
#   check, 6 cached unwraps, one server ECDH P-256 key pair + agreement, 6 HKDF
#   expansions and AES-256-GCM seals per request.
#
# It builds the release binary, starts `sealcast serve` on free loopback ports with
# live/bench as a `protection = "web"` stream, pushes the 10 s fixture twice (fast,
# ffmpeg: 10 segments, a window of 6), makes one P-256 public key with openssl (the
# server does its ECDH per request whatever the client key), and runs
# `wrk -t2 -c64 -d10s --latency`. Loopback only; stops by itself.
#
# Usage: scripts/bench-license.sh [DURATION]   (as wrk takes it, default 10s)
#        BUILD=0 scripts/bench-license.sh     (skip the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10s}"

need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
command -v ffmpeg >/dev/null || need_apt+=(ffmpeg)
command -v curl >/dev/null || need_apt+=(curl)
command -v openssl >/dev/null || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ "${BUILD:-1}" != 0 ]; then   # BUILD=0: use the release binary already built
  echo "==> cargo build --release"
  cargo build --release --quiet
fi
BIN="${CARGO_TARGET_DIR:-target}/release/sealcast"

WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
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
listen = "127.0.0.1:0"
[hls]
segment_duration_secs = 2
playlist_window = 6
reconnect_grace_secs = 0
[auth]
token_secret_file = "$WORK/token_secret"
[[streams]]
app = "live"
name = "bench"
key = "$PUBLISH_KEY"
protection = "web"
EOF

echo "==> starting sealcast serve on 127.0.0.1:$HTTP_PORT"
RUST_LOG=warn "$BIN" serve --config "$WORK/sealcast.toml" >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null && break; sleep 0.1; done

echo "==> pushing fixtures/high-bframes-aac48k.flv twice"
ffmpeg -nostdin -v error -stream_loop 1 -i fixtures/high-bframes-aac48k.flv -c copy -f flv \
  "rtmp://127.0.0.1:$RTMP_PORT/live/$PUBLISH_KEY"
TOKEN=$("$BIN" token --stream live/bench --ttl-secs 3600 --config "$WORK/sealcast.toml" 2>/dev/null)
PLAYLIST_URL="http://127.0.0.1:$HTTP_PORT/live/bench/index.m3u8"
for _ in $(seq 100); do curl -fs "$PLAYLIST_URL" | grep -q ENDLIST && break; sleep 0.1; done
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/client.pem"
PUBLIC=$(openssl ec -in "$WORK/client.pem" -pubout -outform DER 2>/dev/null | tail -c 65 | base64 -w0 | tr '+/' '-_' | tr -d '=')
curl -fs "$PLAYLIST_URL" | python3 -c '
import json, sys, urllib.parse
keys, seen = [], set()
for line in sys.stdin:
    if line.startswith("#EXT-X-KEY:"):
        uri = line.split("URI=\"", 1)[1].split("\"", 1)[0]
        url = urllib.parse.urlsplit(uri)
        key_id = url.path.rsplit("/", 1)[1]
        if key_id not in seen:
            seen.add(key_id)
            keys.append({"key_id": key_id, "edk": urllib.parse.parse_qs(url.query)["edk"][0]})
print(json.dumps({"public_key": sys.argv[1], "keys": keys}))
' "$PUBLIC" >"$WORK/request.json"
KEYS=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["keys"]))' "$WORK/request.json")
LICENSE_URL="http://127.0.0.1:$HTTP_PORT/license/live/bench"
STATUS=$(curl -s -o "$WORK/license.json" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' --data-binary @"$WORK/request.json" "$LICENSE_URL")
[ "$STATUS" = 200 ] || { echo "the license endpoint answered $STATUS"; exit 1; }
echo "==> $KEYS keys per license; raw key endpoint answers $(curl -s -o /dev/null -w '%{http_code}' \
  "$(curl -fs "$PLAYLIST_URL" | grep -m1 -o 'URI="[^"]*"' | sed 's/^URI="//; s/"$//' | sed "s|^|http://127.0.0.1:$HTTP_PORT|")&token=$TOKEN")"

cat >"$WORK/license.lua" <<EOF
wrk.method = "POST"
local f = io.open("$WORK/request.json", "rb")
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
EOF
# wrk prints "Non-2xx or 3xx responses" when there were any.
echo "==> wrk -t2 -c64 -d$DURATION --latency POST $LICENSE_URL"
wrk -t2 -c64 -d"$DURATION" --latency -s "$WORK/license.lua" "$LICENSE_URL"
