# Shared by the benchmark scripts (bench-ingest, bench-delivery, bench-keys,
# soak): sourced, never run. Expects ROOT (the checkout) and a `log` function.

# install_missing CHECK:PACKAGE ...: apt-installs the Debian package of every
# missing tool. CHECK is a command name, or an absolute path that must exist.
install_missing() {
  local need=() pair check
  for pair in "$@"; do
    check=${pair%%:*}
    if [[ $check == /* ]]; then
      [[ -e $check ]] || need+=("${pair#*:}")
    else
      command -v "$check" >/dev/null || need+=("${pair#*:}")
    fi
  done
  ((${#need[@]})) || return 0
  log "installing ${need[*]}"
  local sudo=
  [[ $(id -u) == 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

# sealcast_binary: sets BIN to SEALCAST_BIN (a prebuilt binary, e.g. to
# compare two builds) or to a fresh release build.
sealcast_binary() {
  if [[ -n ${SEALCAST_BIN:-} ]]; then
    BIN=$SEALCAST_BIN
    return
  fi
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
  log "building sealcast (release) in $CARGO_TARGET_DIR"
  (cd "$ROOT" && cargo build --release --quiet --bin sealcast)
  BIN=$CARGO_TARGET_DIR/release/sealcast
}

# free_port: a TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ticketed_server [WRAPPER ...]: the server the key benchmarks (bench-keys,
# bench-instructions) measure. Writes $WORK/sealcast.toml (one stream
# live/bench, tickets on, the in-memory replay store, [metrics] enabled =
# ${METRICS:-true}), starts `sealcast serve` as SERVER_PID (under WRAPPER,
# e.g. valgrind, when given), pushes the 10 s fixture once, and sets
# HTTP_PORT, SECRET, TOKEN, PLAYLIST_URL, KEY_PATH, KEY_ID, EDK and TOKEN_URL
# (that key with the token), after checking that it answers 16 bytes.
ticketed_server() {
  HTTP_PORT=$(free_port)
  local rtmp_port publish_key="sk_bench_0123456789abcdef" key_uri
  rtmp_port=$(free_port)
  SECRET="bench-secret-0123456789-0123456789-abcdef"
  printf '%s\n' "$SECRET" >"$WORK/token_secret"
  chmod 600 "$WORK/token_secret"
  cat >"$WORK/sealcast.toml" <<CONFIG
[rtmp]
listen = "127.0.0.1:$rtmp_port"
[http]
listen = "127.0.0.1:$HTTP_PORT"
[storage]
data_dir = "$WORK/data"
[metrics]
enabled = ${METRICS:-true}
listen = "127.0.0.1:0"
[hls]
segment_duration_secs = 2
reconnect_grace_secs = 0
[auth]
token_secret_file = "$WORK/token_secret"
one_time_key_tickets = true
[auth.replay]
max_entries = 4000000
[[streams]]
app = "live"
name = "bench"
key = "$publish_key"
CONFIG
  log "starting sealcast serve on 127.0.0.1:$HTTP_PORT${1:+ under $1}"
  RUST_LOG=warn "$@" "$BIN" serve --config "$WORK/sealcast.toml" >"$WORK/server.out" 2>"$WORK/server.log" &
  SERVER_PID=$!
  for _ in $(seq 600); do curl -fs "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null && break; sleep 0.1; done
  log "pushing fixtures/high-bframes-aac48k.flv"
  ffmpeg -nostdin -v error -i "$ROOT/fixtures/high-bframes-aac48k.flv" -c copy -f flv \
    "rtmp://127.0.0.1:$rtmp_port/live/$publish_key"
  TOKEN=$("$BIN" token --stream live/bench --ttl-secs 3600 --config "$WORK/sealcast.toml" 2>/dev/null)
  PLAYLIST_URL="http://127.0.0.1:$HTTP_PORT/live/bench/index.m3u8?token=$TOKEN"
  for _ in $(seq 100); do curl -fs "$PLAYLIST_URL" | grep -q ENDLIST && break; sleep 0.2; done
  key_uri=$(curl -fs "$PLAYLIST_URL" | grep -m1 -o 'URI="[^"]*"' | sed 's/^URI="//; s/"$//')
  KEY_PATH=${key_uri%%\?*}
  EDK=$(printf '%s' "$key_uri" | grep -o 'edk=[^&]*' | cut -d= -f2)
  KEY_ID=${KEY_PATH##*/}
  [[ -n $EDK && -n $KEY_ID ]] || { echo "no key URI in the playlist"; exit 1; }
  TOKEN_URL="http://127.0.0.1:$HTTP_PORT$KEY_PATH?edk=$EDK&token=$TOKEN"
  [[ $(curl -fs "$TOKEN_URL" | wc -c) -eq 16 ]] || { echo "the key endpoint did not return a key"; exit 1; }
}
