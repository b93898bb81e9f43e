#!/usr/bin/env bash
# Endurance run: does sealcast drift?
#
#   scripts/soak.sh [MINUTES]       (default 60)
#
# Starts `sealcast serve` (segments on tmpfs, a key per segment, one-time key
# tickets on), PUBLISHERS (100) realtime publishers (`sealcast bench-push`,
# the 2.7 Mb/s 720p fixture) and VIEWERS (200) simulated hls.js viewers
# (`sealcast bench-play`) for MINUTES. Every 10 s it appends to
# OUT/soak.csv: elapsed seconds, server RSS (kB), open descriptors, server
# CPU (% of one core over the last 10 s), error and warning lines in the
# server log so far, publishers failed and behind real time (from
# bench-push's own report), the load average, and the segment ciphertext the
# server keeps in memory for viewers (`sealcast_segment_memory_bytes`, scraped
# from /metrics as Prometheus would). At the end it draws OUT/soak.png
# (gnuplot) and prints RSS growth over the last half (first to last sample,
# and the least-squares trend), the same for RSS without the segment memory
# (which churns by tens of MB as segments come and go), the descriptor range
# and bench-play's report.
#
# Environment: PUBLISHERS, VIEWERS, OUT (default docs/soak, where the PNG is
# kept), WORK (default a fresh /dev/shm dir), SEALCAST_BIN (skip the build).
# Installs gnuplot, curl and ffmpeg from Debian when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MINUTES=${1:-60}
PUBLISHERS=${PUBLISHERS:-100}
VIEWERS=${VIEWERS:-200}
OUT=${OUT:-$ROOT/docs/soak}
WORK=${WORK:-$(mktemp -d /dev/shm/sealcast-soak.XXXXXX)}
FIXTURE=$ROOT/fixtures/bench-720p.flv
HZ=$(getconf CLK_TCK)
mkdir -p "$OUT" "$WORK"
log() { printf '[soak %s] %s\n' "$(date +%T)" "$*" >&2; }

source scripts/bench-lib.sh
install_missing gnuplot:gnuplot-nox curl:curl ffmpeg:ffmpeg python3:python3
[[ -f $FIXTURE ]] || scripts/make-fixtures.sh bench
sealcast_binary

STARTED=()
cleanup() { for pid in "${STARTED[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

RTMP_PORT=$(free_port); HTTP_PORT=$(free_port); METRICS_PORT=$(free_port)
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/token_secret"
chmod 600 "$WORK/token_secret"
RUN_ID=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
for ((i = 0; i < PUBLISHERS; i++)); do echo "sk_${RUN_ID}_$i"; done >"$WORK/keys.txt"
{
  printf '[rtmp]\nlisten = "127.0.0.1:%s"\nmax_connections = %d\nmax_connections_per_ip = %d\n' \
    "$RTMP_PORT" $((PUBLISHERS + 64)) $((PUBLISHERS + 64))
  printf '[http]\nlisten = "127.0.0.1:%s"\n' "$HTTP_PORT"
  # Every viewer comes from 127.0.0.1: lift the per-address cap (128).
  printf '[http.limits]\nmax_connections_per_ip = %d\n' $((VIEWERS + 256))
  printf '[metrics]\nenabled = true\nlisten = "127.0.0.1:%s"\n' "$METRICS_PORT"
  printf '[storage]\ndata_dir = "%s"\n[hls]\nsegment_duration_secs = 2\n' "$WORK/data"
  printf '[encryption]\nsegments_per_key = 1\n'
  printf '[auth]\ntoken_secret_file = "%s"\none_time_key_tickets = true\n' "$WORK/token_secret"
  i=0
  while read -r key; do
    printf '[[streams]]\napp = "live"\nname = "s%d"\nkey = "%s"\n' "$i" "$key"
    i=$((i + 1))
  done <"$WORK/keys.txt"
} >"$WORK/sealcast.toml"
RUST_LOG=warn "$BIN" serve --config "$WORK/sealcast.toml" >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER=$!
STARTED+=("$SERVER")
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null && break; sleep 0.1; done

SECS=$((MINUTES * 60))
log "$PUBLISHERS publishers, $VIEWERS viewers, $MINUTES min; server pid $SERVER; work $WORK"
"$BIN" bench-push --url "rtmp://127.0.0.1:$RTMP_PORT/live" --fixture "$FIXTURE" --keys-file "$WORK/keys.txt" \
  --duration-secs $((SECS + 20)) --ramp-ms 5000 >"$WORK/push.log" 2>&1 &
STARTED+=("$!")
TOKEN=$("$BIN" token --stream 'live/*' --ttl-secs $((SECS + 3600)) --config "$WORK/sealcast.toml" 2>/dev/null)
until [[ $(curl -fs "http://127.0.0.1:$HTTP_PORT/live/s$((PUBLISHERS - 1))/index.m3u8?token=$TOKEN" | grep -c '^#EXTINF') -ge 3 ]]; do sleep 1; done
# Each viewer its own token (key budgets are per viewer); viewer i watches
# stream i mod PUBLISHERS.
for ((i = 0; i < VIEWERS; i++)); do
  t=$("$BIN" token --stream 'live/*' --ttl-secs $((SECS + 3600)) --sub "viewer$i" --config "$WORK/sealcast.toml" 2>/dev/null)
  echo "http://127.0.0.1:$HTTP_PORT/live/s$((i % PUBLISHERS))/index.m3u8?token=$t"
done >"$WORK/urls.txt"
"$BIN" bench-play --urls-file "$WORK/urls.txt" -n "$VIEWERS" --duration-secs "$SECS" --ramp-ms 10000 >"$WORK/play.log" 2>&1 &
PLAY=$!
STARTED+=("$PLAY")

CSV=$OUT/soak.csv
echo "elapsed_s,rss_kb,fds,cpu_pct,log_errors,log_warnings,push_failed,push_behind,load1,segment_memory_kb" >"$CSV"
ticks() { local f; f=($(sed 's/.*) //' "/proc/$SERVER/stat")); echo $((f[11] + f[12])); }
start=$(date +%s); last_ticks=$(ticks); last_t=$start
while kill -0 "$PLAY" 2>/dev/null; do
  sleep 10
  kill -0 "$SERVER" 2>/dev/null || { log "the server died"; break; }
  now=$(date +%s); t=$(ticks)
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$SERVER/status")
  fds=$(ls "/proc/$SERVER/fd" | wc -l)
  cpu=$(awk "BEGIN {printf \"%.1f\", ($t - $last_ticks) / $HZ / ($now - $last_t) * 100}")
  errors=$(grep -c ' ERROR ' "$WORK/server.log" || true)
  warnings=$(grep -c ' WARN ' "$WORK/server.log" || true)
  report=$(grep '^t=' "$WORK/push.log" | tail -n 1)
  failed=$(sed -n 's/.* failed=\([0-9]*\).*/\1/p' <<<"$report"); behind=$(sed -n 's/.* behind=\([0-9]*\).*/\1/p' <<<"$report")
  segment_kb=$(curl -fs "http://127.0.0.1:$METRICS_PORT/metrics" | awk '$1 == "sealcast_segment_memory_bytes" {printf "%d", $2 / 1024}')
  echo "$((now - start)),$rss,$fds,$cpu,$errors,$warnings,${failed:-0},${behind:-0},$(cut -d' ' -f1 /proc/loadavg),${segment_kb:-0}" >>"$CSV"
  last_ticks=$t; last_t=$now
done
wait "$PLAY" || true

gnuplot <<EOF
set terminal pngcairo size 1000,700 noenhanced
set output "$OUT/soak.png"
set datafile separator ","
set multiplot layout 3,1 title "sealcast soak: $PUBLISHERS publishers, $VIEWERS viewers, $MINUTES min (key per segment, tickets)"
set key left top
set ylabel "RSS (MB)"
plot "$CSV" using (\$1/60):(\$2/1024) skip 1 with lines title "RSS", "$CSV" using (\$1/60):((\$2-\$10)/1024) skip 1 with lines title "RSS without the segment memory"
set ylabel "descriptors"
plot "$CSV" using (\$1/60):3 skip 1 with lines title "open fds"
set ylabel "% of a core"
set xlabel "minutes"
plot "$CSV" using (\$1/60):4 skip 1 with lines title "server CPU", "$CSV" using (\$1/60):(\$5+\$7) skip 1 with lines title "errors + failed publishers", "$CSV" using (\$1/60):(\$9*10) skip 1 with lines title "load average x10"
unset multiplot
EOF

python3 - "$CSV" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1]))]
if not rows:
    sys.exit("no samples")
half = [r for r in rows if int(r["elapsed_s"]) >= int(rows[-1]["elapsed_s"]) / 2]
fds = [int(r["fds"]) for r in rows]
t = [int(r["elapsed_s"]) for r in half]
span = t[-1] - t[0]
window = max(1, min(30, len(t) // 4))

def report(name, kb):
    # Drift as the least-squares slope over the second half: first and last
    # samples alone move with whatever is in flight at that instant.
    mt, mk = sum(t) / len(t), sum(kb) / len(kb)
    var = sum((x - mt) ** 2 for x in t)
    slope = sum((x - mt) * (y - mk) for x, y in zip(t, kb)) / var if var else 0.0
    print(f"{name}, last half: first {kb[0] / 1024:.1f} MB, last {kb[-1] / 1024:.1f} MB, "
          f"growth {(kb[-1] - kb[0]) / 1024:+.2f} MB (min {min(kb) / 1024:.1f}, max {max(kb) / 1024:.1f}); "
          f"trend (least squares) {slope * span / 1024:+.2f} MB over {span / 60:.0f} min; mean of its first "
          f"{window} samples {sum(kb[:window]) / window / 1024:.1f} MB, of its last {window} "
          f"{sum(kb[-window:]) / window / 1024:.1f} MB")

print(f"samples {len(rows)}")
report("RSS", [int(r["rss_kb"]) for r in half])
report("RSS without the segment memory", [int(r["rss_kb"]) - int(r["segment_memory_kb"]) for r in half])
print(f"descriptors min {min(fds)} max {max(fds)} last {fds[-1]}; server CPU mean "
      f"{sum(float(r['cpu_pct']) for r in rows) / len(rows):.1f} %; log errors {rows[-1]['log_errors']}, "
      f"warnings {rows[-1]['log_warnings']}; publishers failed {rows[-1]['push_failed']}; "
      f"load average {min(float(r['load1']) for r in rows):.1f}-{max(float(r['load1']) for r in rows):.1f}")
PY
grep -v '^t=' "$WORK/push.log" | tail -n 3
cat "$WORK/play.log"
log "CSV $CSV, plot $OUT/soak.png"
