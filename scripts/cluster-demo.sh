#!/usr/bin/env bash
# A whole sealcast cluster on loopback, from real software (README, "Cluster"):
#
#   encoders --RTMP--> haproxy (TCP, :BASE+40) --> ingest-a (first) / ingest-b (backup)
#   ingest nodes --> S3 (moto's server, :BASE+1) + Redis (leases, tickets, :BASE+0)
#   players --> nginx proxy_cache (:BASE+50, caches segments only) --> edge-1 / edge-2
#
# Usage: scripts/cluster-demo.sh [--dir DIR] [--detach]
#        scripts/cluster-demo.sh --stop --dir DIR
# Without --detach it prints where to push and play, and stops everything on
# Ctrl-C. With --detach it leaves the processes running and writes
# DIR/cluster.env (addresses, a playback token, every pid) for scripts and
# tests; --stop ends them. Env: BASE_PORT (default 20000), SEALCAST_BIN (else
# a release build), LEASE_TTL_SECS (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."

dir="" detach=0 stop=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --detach) detach=1; shift ;;
    --stop) stop=1; shift ;;
    *) echo "usage: $0 [--dir DIR] [--detach] | --stop --dir DIR" >&2; exit 2 ;;
  esac
done

stop_all() {
  for pidfile in "$1"/*.pid; do
    [ -e "$pidfile" ] || continue
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  done
}
if [ "$stop" = 1 ]; then
  [ -n "$dir" ] || { echo "--stop needs --dir" >&2; exit 2; }
  stop_all "$dir"
  exit 0
fi

# What it runs, from Debian and PyPI.
need_apt=()
for tool in haproxy nginx redis-server curl; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || need_apt+=("$tool")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
python3 -c 'import moto.server' 2>/dev/null || python3 -m pip install --quiet 'moto[server]>=5,<6'
PATH="$PATH:/usr/sbin"

if [ -z "${SEALCAST_BIN:-}" ]; then
  cargo build --release --quiet
  SEALCAST_BIN="$PWD/target/release/sealcast"
fi
dir="${dir:-$(mktemp -d /tmp/sealcast-cluster.XXXXXX)}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
base="${BASE_PORT:-20000}"
redis_port=$base s3_port=$((base + 1)) lb_port=$((base + 40)) cache_port=$((base + 50))
bucket=sealcast-media

# Started processes are remembered in DIR/NAME.pid.
start() { # NAME COMMAND...
  local name="$1"; shift
  "$@" >"$dir/$name.log" 2>&1 &
  echo $! >"$dir/$name.pid"
}
wait_port() { # PORT WHAT
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$2 did not listen on $1; see $dir/*.log" >&2
  exit 1
}
[ "$detach" = 1 ] || trap 'stop_all "$dir"' EXIT

# Redis (leases and the one-time-ticket replay set) and S3 (moto).
start redis redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no
start s3 python3 -m moto.server -H 127.0.0.1 -p "$s3_port"
wait_port "$redis_port" redis-server
wait_port "$s3_port" "moto (S3)"
curl -fsS -X PUT "http://127.0.0.1:$s3_port/$bucket" >/dev/null

# Secrets shared by every node: the token secret and the publish key, 0600.
umask 077
head -c 32 /dev/urandom | base64 | tr -d '\n' >"$dir/token_secret"
publish_key="sk_$(head -c 12 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
printf '%s' "$publish_key" >"$dir/publish_key"
umask 022
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo-secret

# One configuration per node: the same sections everywhere, its own listeners.
write_config() { # NAME RTMP_PORT HTTP_PORT METRICS_PORT
  cat >"$dir/$1.toml" <<EOF
[rtmp]
listen = "127.0.0.1:$2"
[http]
listen = "127.0.0.1:$3"
[metrics]
listen = "127.0.0.1:$4"
[storage]
data_dir = "$dir/$1-data"
backend = "s3"
[storage.s3]
bucket = "$bucket"
endpoint = "http://127.0.0.1:$s3_port"
region = "us-east-1"
prefix = "media/"
[kms]
provider = "local"
keyring = "$dir/keyring.json"
[auth]
token_secret_file = "$dir/token_secret"
[auth.replay]
backend = "redis"
url = "redis://127.0.0.1:$redis_port"
[cluster]
redis_url = "redis://127.0.0.1:$redis_port"
node_id = "$1"
lease_ttl_secs = ${LEASE_TTL_SECS:-10}
[[streams]]
app = "live"
name = "demo"
key_file = "$dir/publish_key"
EOF
}
write_config ingest-a $((base + 10)) $((base + 11)) $((base + 12))
write_config ingest-b $((base + 20)) $((base + 21)) $((base + 22))
write_config edge-1 $((base + 30)) $((base + 31)) $((base + 33))
write_config edge-2 $((base + 30)) $((base + 32)) $((base + 34))

# Ingest A first: it creates the shared keyring the others open.
start ingest-a "$SEALCAST_BIN" serve --config "$dir/ingest-a.toml"
wait_port $((base + 10)) "ingest-a"
start ingest-b "$SEALCAST_BIN" serve --config "$dir/ingest-b.toml"
start edge-1 "$SEALCAST_BIN" edge --config "$dir/edge-1.toml"
start edge-2 "$SEALCAST_BIN" edge --config "$dir/edge-2.toml"
wait_port $((base + 20)) "ingest-b"
wait_port $((base + 31)) "edge-1"
wait_port $((base + 32)) "edge-2"

# The TCP load balancer for RTMP: every encoder to ingest-a while it is up,
# to ingest-b once its health check fails.
cat >"$dir/haproxy.cfg" <<EOF
global
  log stdout format raw local0 info
defaults
  mode tcp
  # A connection to a node that just died is retried on the other one.
  retries 2
  option redispatch
  timeout connect 2s
  timeout client 60s
  timeout server 60s
frontend rtmp
  bind 127.0.0.1:$lb_port
  default_backend ingest
backend ingest
  balance first
  server ingest-a 127.0.0.1:$((base + 10)) check inter 500ms fall 2 rise 2
  server ingest-b 127.0.0.1:$((base + 20)) check inter 500ms fall 2 rise 2 backup
EOF
start haproxy haproxy -db -f "$dir/haproxy.cfg"

# The CDN: nginx caching what the edges allow. Segments say `public, immutable`
# and are cached; playlists (no-cache, or private, no-store with a credential)
# and keys (no-store) are not: nginx obeys Cache-Control.
mkdir -p "$dir/nginx-cache" "$dir/nginx-tmp"
cat >"$dir/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $dir/nginx-master.pid;
error_log $dir/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $dir/nginx-tmp/body;
  proxy_temp_path $dir/nginx-tmp/proxy;
  fastcgi_temp_path $dir/nginx-tmp/fastcgi;
  uwsgi_temp_path $dir/nginx-tmp/uwsgi;
  scgi_temp_path $dir/nginx-tmp/scgi;
  proxy_cache_path $dir/nginx-cache keys_zone=segments:10m max_size=1g inactive=10m;
  upstream edges {
    server 127.0.0.1:$((base + 31));
    server 127.0.0.1:$((base + 32));
  }
  # Segments: the edges, and when both fail (object storage down or slow)
  # the ingest nodes, which serve the segments they stored lately from memory
  # (docs/cluster.md, "When object storage fails").
  upstream segments {
    server 127.0.0.1:$((base + 31));
    server 127.0.0.1:$((base + 32));
    server 127.0.0.1:$((base + 11)) backup;
    server 127.0.0.1:$((base + 21)) backup;
  }
  server {
    listen 127.0.0.1:$cache_port;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_cache segments;
    proxy_cache_lock on;
    # An expired or revalidating copy beats an error (segments never change).
    proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;
    add_header X-Cache-Status \$upstream_cache_status always;
    location ~ \.ts\$ {
      proxy_pass http://segments;
      proxy_read_timeout 5s;
      proxy_next_upstream error timeout http_500 http_502 http_503 http_504 http_404;
    }
    location / {
      proxy_pass http://edges;
      proxy_next_upstream error timeout http_502 http_503;
    }
  }
}
EOF
start nginx nginx -c "$dir/nginx.conf" -p "$dir"
wait_port "$lb_port" haproxy
wait_port "$cache_port" nginx

token="$("$SEALCAST_BIN" token --stream live/demo --ttl-secs 86400 --config "$dir/ingest-a.toml")"
pids=""
for name in redis s3 ingest-a ingest-b edge-1 edge-2 haproxy nginx; do
  pids+="PID_$(echo "$name" | tr 'a-z-' 'A-Z_')=$(cat "$dir/$name.pid")"$'\n'
done
cat >"$dir/cluster.env" <<EOF
RTMP_URL=rtmp://127.0.0.1:$lb_port/live/$publish_key
PLAY_URL=http://127.0.0.1:$cache_port/live/demo/index.m3u8?token=$token
WATCH_URL=http://127.0.0.1:$cache_port/watch/live/demo?token=$token
CACHE=127.0.0.1:$cache_port
EDGE_1=127.0.0.1:$((base + 31))
EDGE_2=127.0.0.1:$((base + 32))
INGEST_A_RTMP=127.0.0.1:$((base + 10))
INGEST_B_RTMP=127.0.0.1:$((base + 20))
S3_ENDPOINT=http://127.0.0.1:$s3_port
BUCKET=$bucket
REDIS_PORT=$redis_port
TOKEN=$token
PUBLISH_KEY=$publish_key
$pids
EOF

cat <<EOF
sealcast cluster on loopback (logs and configs in $dir):
  push:  ffmpeg -re -i input.mp4 -c copy -f flv 'rtmp://127.0.0.1:$lb_port/live/$publish_key'
  play:  ffplay 'http://127.0.0.1:$cache_port/live/demo/index.m3u8?token=$token'
  watch: http://127.0.0.1:$cache_port/watch/live/demo?token=$token  (hls.js, through the cache and an edge)
  kill the ingest node in use (kill -9 \$(cat $dir/ingest-a.pid)) and push again: it lands on ingest-b.
EOF
if [ "$detach" = 1 ]; then
  echo "detached; stop with: $0 --stop --dir $dir"
else
  echo "Ctrl-C stops everything."
  wait
fi
