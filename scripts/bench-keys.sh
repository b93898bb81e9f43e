#!/usr/bin/env bash
# Key endpoint throughput and latency on this machine, with wrk:
#   1. token:    GET /keys/...?edk=…&token=<JWT>   (JWT HS256 check + cached unwrap)
#   2. ticket:   GET /keys/...?edk=…&ticket=<one-time ticket>, a fresh ticket per
#                request (ticket MAC check + cached unwrap + replay-store insert).
#                Tickets are single use, so they are minted up front (by a short
#                Python script that implements the documented ticket format) into a
#                file that a wrk Lua script walks through.
#   3. playlist: GET /live/bench/index.m3u8?token=<JWT> with tickets on (a JWT check
#                and one fresh ticket per key URI: the per-refresh cost of tickets).
#
# It builds the release binary, starts `sealcast serve` on free loopback ports with
# the in-memory replay store, pushes the 10 s fixture once (fast, ffmpeg), and runs
# `wrk -t2 -c64 -d10s --latency` for each case. Loopback only; stops by itself.
#
# Usage: scripts/bench-keys.sh [DURATION]   (DURATION as wrk takes it, default 10s)
#        METRICS=false scripts/bench-keys.sh   (the same with [metrics] enabled = false,
#                                               to measure what metrics cost)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10s}"
THREADS=2
CONNECTIONS=64
TICKETS=${TICKETS:-1500000}
METRICS=${METRICS:-true}

ROOT=$PWD
log() { echo "==> $*"; }
source scripts/bench-lib.sh
install_missing wrk:wrk ffmpeg:ffmpeg curl:curl python3:python3
sealcast_binary

WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

ticketed_server

echo "==> minting $TICKETS one-time tickets for $KEY_PATH"
python3 - "$SECRET" "live/bench" "$KEY_ID" "$EDK" "$TICKETS" >"$WORK/tickets.txt" <<'PY'
# The ticket format of src/auth/ticket.rs: version 1 | exp u64 BE | nonce 12 |
# viewer 8 | HMAC-SHA256(HKDF(secret), domain | first 29 bytes | len-prefixed
# stream, key_id, edk)[:16], unpadded base64url.
import base64, hashlib, hmac, os, struct, sys, time
secret, stream, key_id, edk, count = sys.argv[1:6]
prk = hmac.new(b"sealcast", secret.encode(), hashlib.sha256).digest()
mac_key = hmac.new(prk, b"sealcast key ticket mac v1\x01", hashlib.sha256).digest()
lp = lambda s: struct.pack(">Q", len(s)) + s
tail = lp(stream.encode()) + lp(key_id.encode()) + lp(edk.encode())
head = bytes([1]) + struct.pack(">Q", int(time.time()) + 600)
mac = hmac.new(mac_key, b"sealcast-ticket-v1\0", hashlib.sha256)
out = sys.stdout
# 5000 viewers: one viewer's ticket budget (600 a minute, src/keyservice/budget.rs)
# would answer 429 long before the endpoint's own limit.
viewers = [os.urandom(8) for _ in range(5000)]
for i in range(int(count)):
    body = head + os.urandom(12) + viewers[i % len(viewers)]
    m = mac.copy(); m.update(body); m.update(tail)
    ticket = base64.urlsafe_b64encode(body + m.digest()[:16]).rstrip(b"=").decode()
    out.write(ticket + "\n")
PY
TICKET_PREFIX="$KEY_PATH?edk=$EDK&ticket="
FIRST_TICKET="$TICKET_PREFIX$(head -1 "$WORK/tickets.txt")"
[ "$(curl -fs "http://127.0.0.1:$HTTP_PORT$FIRST_TICKET" | wc -c)" -eq 16 ] || { echo "a minted ticket was refused"; exit 1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT$FIRST_TICKET")" = 403 ] || { echo "a ticket worked twice"; exit 1; }
tail -n +2 "$WORK/tickets.txt" >"$WORK/tickets-unused.txt"

cat >"$WORK/tickets.lua" <<EOF
-- Each wrk thread walks its own share of the pre-minted one-time tickets.
local threads_made = 0
function setup(thread)
  thread:set("id", threads_made)
  threads_made = threads_made + 1
end
function init(args)
  paths = {}
  local i = 0
  for line in io.lines("$WORK/tickets-unused.txt") do
    if i % $THREADS == id then paths[#paths + 1] = "$TICKET_PREFIX" .. line end
    i = i + 1
  end
  next_path = 1
end
function request()
  local path = paths[next_path]
  next_path = next_path + 1
  if next_path > #paths then next_path = 1 end
  return wrk.format("GET", path)
end
EOF

# The server's CPU time (user + system, clock ticks) so far: per request it is
# steadier than requests per second, which move with whatever else the two
# cores run.
server_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }
run() {
  local name="$1"; shift
  echo "==> wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency ($name)"
  local before; before=$(server_ticks)
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" | tee "$WORK/$name.txt"
  echo $(($(server_ticks) - before)) >"$WORK/$name.ticks"
}
run token "$TOKEN_URL"
run ticket -s "$WORK/tickets.lua" "http://127.0.0.1:$HTTP_PORT"
run playlist "$PLAYLIST_URL"

summary() {
  local name="$1" file="$WORK/$1.txt"
  local rps p50 p90 p99 bad cpu
  rps=$(awk '/Requests\/sec/ {print $2}' "$file")
  p50=$(awk '$1 == "50%" {print $2}' "$file")
  p90=$(awk '$1 == "90%" {print $2}' "$file")
  p99=$(awk '$1 == "99%" {print $2}' "$file")
  bad=$(awk '/Non-2xx/ {print $5}' "$file")
  cpu=$(awk -v ticks="$(cat "$WORK/$name.ticks")" -v hz="$(getconf CLK_TCK)" \
    '/requests in/ {printf "%.1f", ticks / hz * 1e6 / $1}' "$file")
  printf '%-9s %12s %10s %10s %10s %10s %14s\n' "$name" "$rps" "$p50" "$p90" "$p99" "${bad:-0}" "$cpu"
}
echo
echo "key endpoint on $(nproc) cores, wrk -t$THREADS -c$CONNECTIONS -d$DURATION (wrk shares the cores):"
printf '%-9s %12s %10s %10s %10s %10s %14s\n' case "requests/s" p50 p90 p99 non-2xx "server µs/req"
summary token
summary ticket
summary playlist
echo "(ticket: each request spends a fresh pre-minted ticket; $TICKETS were minted. A"
echo " non-2xx count there means a wrk thread ran out and reused tickets: raise TICKETS.)"
