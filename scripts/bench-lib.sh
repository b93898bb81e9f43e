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
