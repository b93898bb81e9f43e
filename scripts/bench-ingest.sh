#!/usr/bin/env bash
# Side-by-side ingest benchmark: sealcast vs nginx-rtmp (hls_keys on), same
# load generator, same fixture, same segment duration / window / key rotation.
#
#   scripts/bench-ingest.sh N [SECONDS]
#
# N publishers replay fixtures/bench-720p.flv (720p30 H.264 + AAC, ~2.7 Mb/s,
# 10 s, looped with continuous timestamps) in real time into each server in
# turn, with each generator of GENERATORS (default "realtime"):
#   realtime  sealcast bench-push --pattern realtime (one process): each RTMP
#             message when due, written as ffmpeg writes it (type 1/2/3
#             headers, a send per chunk, Nagle on): what servers see from
#             real encoders;
#   batched   sealcast bench-push --pattern batched: every message due in a
#             40 ms tick in one write (the old default; flatters servers);
#   ffmpeg    N real `ffmpeg -re -stream_loop -1 -c copy` processes, the
#             reference the generator is calibrated against.
# GENERATORS="realtime ffmpeg" is the calibration run: the report then gives
# per-stream CPU of each generator over ffmpeg's, per server, in one run. After WARMUP seconds (default 15) the
# script measures for SECONDS (default 60):
#   - server CPU % of one core per stream: /proc/PID/stat utime+stime delta over
#     the window (nginx: master + workers);
#   - RSS total at the end of the window, and per stream: (RSS - idle RSS) / N;
#   - segment publication latency p50/p99/max: sealcast's own measurement
#     (`publish_latency_us`, debug log of sealcast::live: segment closed ->
#     playlist renamed into place); nginx: inotify, close of the .ts -> rename
#     of the .m3u8 that lists it;
#   - segments per stream in the window vs expected (SECONDS / 2), and streams
#     whose playlist stopped advancing (no new playlist in the last 3 segments);
#   - the load generator's own report (connected, failed, behind real time).
#
# STORAGE=s3 with S3_ENDPOINT, S3_BUCKET (an existing bucket) and AWS_ACCESS_KEY_ID /
# AWS_SECRET_ACCESS_KEY stores sealcast's segments in object storage instead of BENCH_DIR;
# latency is then segment closed -> stored and listed -> canonical playlist PUT.
# Environment: GENERATORS (above), WARMUP (s), SEGMENT_SECS (2), WINDOW (5 segments), NGINX_WORKERS
# (1, as the reference figures; Debian's stock nginx.conf says `auto`),
# BENCH_DIR (work dir, default a fresh /tmp dir), SEALCAST_BIN (skip the build), SERVERS ("sealcast nginx"),
# RECORD=1 (sealcast records every stream: [record] enabled, the recording's playlist and
# manifest written after each segment, inside the measured publication latency),
# RTMP_PORT_BASE (19350). Installs nginx, libnginx-mod-rtmp, inotify-tools and
# python3 from Debian when missing. Kills only the processes it started.
#
# Both servers write segments to BENCH_DIR. On a disk filesystem, kernel
# writeback of ~100 MB/s (300 streams) stalls file writes now and then, which
# shows up as publication latency spikes for both; BENCH_DIR=/dev/shm/NAME
# (tmpfs, as HLS origins often use) takes the disk out of the comparison.
# Needs ~5 GB free there at N=300 (segments left behind are not cleaned up).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

N=${1:?usage: scripts/bench-ingest.sh N [SECONDS]}
SECS=${2:-60}
WARMUP=${WARMUP:-15}
SEG=${SEGMENT_SECS:-2}
WINDOW=${WINDOW:-5}
NGINX_WORKERS=${NGINX_WORKERS:-1}
SERVERS=${SERVERS:-"sealcast nginx"}
GENERATORS=${GENERATORS:-realtime}
PORT_BASE=${RTMP_PORT_BASE:-19350}
WORK=${BENCH_DIR:-$(mktemp -d /tmp/sealcast-bench.XXXXXX)}
mkdir -p "$WORK"
FIXTURE=$ROOT/fixtures/bench-720p.flv
HZ=$(getconf CLK_TCK)

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }

# --- prerequisites ---------------------------------------------------------
source scripts/bench-lib.sh
install_missing nginx:nginx /usr/lib/nginx/modules/ngx_rtmp_module.so:libnginx-mod-rtmp \
  inotifywait:inotify-tools python3:python3 ffmpeg:ffmpeg
[[ -f $FIXTURE ]] || scripts/make-fixtures.sh bench
sealcast_binary

# --- keys ------------------------------------------------------------------
RUN_ID=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
KEYS=$WORK/keys.txt
for ((i = 0; i < N; i++)); do echo "sk_${RUN_ID}_$i"; done >"$KEYS"

# --- process helpers -------------------------------------------------------
STARTED=()
cleanup() {
  for pid in "${STARTED[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [[ -f $WORK/nginx/nginx.pid ]]; then kill "$(cat "$WORK/nginx/nginx.pid")" 2>/dev/null || true; fi
}
trap cleanup EXIT

# Sum of utime+stime ticks and of VmRSS kB over the given PIDs.
cpu_ticks() { local t=0 pid f; for pid; do f=($(sed 's/.*) //' "/proc/$pid/stat")); t=$((t + f[11] + f[12])); done; echo $t; }
rss_kb() { local r=0 pid; for pid; do r=$((r + $(awk '/^VmRSS/ {print $2}' "/proc/$pid/status"))); done; echo $r; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# start_load GENERATOR PORT NAME: starts the publishers; sets LOAD_PIDS (the
# processes whose CPU is the generator's).
start_load() {
  local gen=$1 port=$2 name=$3
  case $gen in
    realtime | batched)
      "$BIN" bench-push --pattern "$gen" --url "rtmp://127.0.0.1:$port/live" --fixture "$FIXTURE" --keys-file "$KEYS" \
        --duration-secs $((WARMUP + SECS + 3)) --ramp-ms 3000 >"$WORK/$name.push.log" 2>&1 &
      LOAD_PIDS=$!
      STARTED+=("$!")
      ;;
    ffmpeg)
      LOAD_PIDS=""
      : >"$WORK/$name.push.log"
      local key
      while read -r key; do
        ffmpeg -nostdin -v error -re -stream_loop -1 -i "$FIXTURE" -c copy -f flv \
          "rtmp://127.0.0.1:$port/live/$key" 2>>"$WORK/$name.push.log" &
        LOAD_PIDS+=" $!"
        STARTED+=("$!")
        sleep "$(awk "BEGIN {print 3 / $N}")"
      done <"$KEYS"
      ;;
    *) log "unknown generator $gen"; exit 1 ;;
  esac
}

# stop_load GENERATOR NAME: ends ffmpeg publishers (bench-push stops by itself).
stop_load() {
  local pid
  if [[ $1 == ffmpeg ]]; then
    local alive=0
    for pid in $LOAD_PIDS; do kill -0 "$pid" 2>/dev/null && alive=$((alive + 1)); done
    echo "bench-push done: ffmpeg publishers=$N failed=$((N - alive))" >>"$WORK/$2.push.log"
    for pid in $LOAD_PIDS; do kill "$pid" 2>/dev/null || true; done
  fi
  for pid in $LOAD_PIDS; do wait "$pid" 2>/dev/null || true; done
}

# measure NAME PORT PIDS_FUNC EVENTS GENERATOR: runs the load and fills
# $WORK/NAME.env with figures.
measure() {
  local name=$1 port=$2 pids_func=$3 events=$4 gen=$5
  local pids idle_rss
  pids=$($pids_func)
  idle_rss=$(rss_kb $pids)
  log "$name: idle RSS $((idle_rss / 1024)) MB; starting $N $gen publishers (load $(loadavg))"
  start_load "$gen" "$port" "$name"
  sleep "$WARMUP"
  pids=$($pids_func)
  local c0 p0 t0 e0 load0
  c0=$(cpu_ticks $pids); p0=$(cpu_ticks $LOAD_PIDS); t0=$(date +%s.%N); e0=$(wc -l <"$events"); load0=$(loadavg)
  sleep "$SECS"
  pids=$($pids_func)
  local c1 p1 t1 e1 rss
  c1=$(cpu_ticks $pids); p1=$(cpu_ticks $LOAD_PIDS); t1=$(date +%s.%N); e1=$(wc -l <"$events"); rss=$(rss_kb $pids)
  cat >"$WORK/$name.env" <<EOF
cpu_ticks=$((c1 - c0))
push_ticks=$((p1 - p0))
wall=$(awk "BEGIN {print $t1 - $t0}")
event_from=$e0
event_to=$e1
idle_rss_kb=$idle_rss
rss_kb=$rss
load_start="$load0"
load_end="$(loadavg)"
EOF
  stop_load "$gen" "$name"
  log "$name: $(tail -n 1 "$WORK/$name.push.log" | head -c 300)"
}

# --- sealcast --------------------------------------------------------------
run_sealcast() {
  local port=$PORT_BASE dir=$WORK/sealcast
  rm -rf "$dir"; mkdir -p "$dir"
  {
    echo "[rtmp]"
    echo "listen = \"127.0.0.1:$port\""
    echo "max_connections = $((N + 64))"
    echo "max_connections_per_ip = $((N + 64))"
    echo "[http]"
    echo "listen = \"127.0.0.1:$((port + 1))\""
    echo "[storage]"
    echo "data_dir = \"$dir/data\""
    if [[ ${STORAGE:-local} == s3 ]]; then
      echo 'backend = "s3"'
      echo "[storage.s3]"
      echo "bucket = \"${S3_BUCKET:?STORAGE=s3 needs S3_BUCKET}\""
      echo "endpoint = \"${S3_ENDPOINT:?STORAGE=s3 needs S3_ENDPOINT}\""
      echo 'region = "us-east-1"'
    fi
    echo "[hls]"
    echo "segment_duration_secs = $SEG"
    echo "playlist_window = $WINDOW"
    echo "[encryption]"
    echo "segments_per_key = 1"
    if [[ ${RECORD:-0} == 1 ]]; then
      echo "[record]"
      echo "enabled = true"
    fi
    echo "[kms]"
    echo "provider = \"local\""
    echo "keyring = \"$dir/keyring.json\""
    local i=0 key
    while read -r key; do
      printf '[[streams]]\napp = "live"\nname = "s%d"\nkey = "%s"\n' "$i" "$key"
      i=$((i + 1))
    done <"$KEYS"
  } >"$dir/sealcast.toml"
  # Per-segment debug lines carry publish_latency_us; everything else at info.
  RUST_LOG=info,sealcast::live=debug "$BIN" serve --config "$dir/sealcast.toml" >"$dir/stdout.log" 2>"$dir/server.log" &
  SEALCAST_PID=$!
  STARTED+=("$SEALCAST_PID")
  wait_port "$port" || { log "sealcast did not start"; tail "$dir/server.log" >&2; exit 1; }
  sleep 1
  sealcast_pids() { echo "$SEALCAST_PID"; }
  local gen
  for gen in $GENERATORS; do
    measure "sealcast-$gen" "$port" sealcast_pids "$dir/server.log" "$gen"
    sleep 3  # the streams end before the next generator publishes them again
  done
  kill "$SEALCAST_PID"; wait "$SEALCAST_PID" 2>/dev/null || true
}

# --- nginx-rtmp ------------------------------------------------------------
run_nginx() {
  local port=$((PORT_BASE + 10)) dir=$WORK/nginx
  rm -rf "$dir"; mkdir -p "$dir/hls" "$dir/logs"
  local user_line=""
  [[ $(id -u) == 0 ]] && user_line="user root;"  # workers must write hls_path
  cat >"$dir/nginx.conf" <<EOF
# Written by scripts/bench-ingest.sh. worker_processes $NGINX_WORKERS: the
# reference figures used one worker (Debian's stock nginx.conf says auto).
$user_line
worker_processes $NGINX_WORKERS;
daemon on;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
events { worker_connections 4096; }
rtmp {
  server {
    listen 127.0.0.1:$port;
    chunk_size 4096;
    application live {
      live on;
      record off;
      hls on;
      hls_path $dir/hls;
      hls_fragment ${SEG}s;
      hls_playlist_length $((SEG * WINDOW))s;
      hls_keys on;
      hls_fragments_per_key 1;
    }
  }
}
EOF
  # inotify, each event stamped as it arrives (monotonic ns). The python
  # reader exits when inotifywait (whose PID we keep) is killed.
  inotifywait -m -q -e close_write,moved_to --format '%e %f' "$dir/hls" 2>/dev/null > >(
    exec python3 -u -c '
import sys, time
for line in sys.stdin:
    sys.stdout.write("%d %s" % (time.monotonic_ns(), line))
' >"$dir/events.log") &
  local inotify=$!
  STARTED+=("$inotify")
  sleep 0.5
  nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log"
  wait_port "$port" || { log "nginx did not start"; cat "$dir/logs/error.log" >&2; exit 1; }
  sleep 1
  nginx_pids() { local m; m=$(cat "$dir/nginx.pid"); echo "$m" $(ps -o pid= --ppid "$m"); }
  local gen
  for gen in $GENERATORS; do
    measure "nginx-$gen" "$port" nginx_pids "$dir/events.log" "$gen"
    sleep 3
  done
  kill "$(cat "$dir/nginx.pid")"; kill "$inotify"; sleep 1
}

for server in $SERVERS; do
  case $server in
    sealcast) run_sealcast ;;
    nginx) run_nginx ;;
  esac
done

# --- report ----------------------------------------------------------------
NAMES=""
for gen in $GENERATORS; do for server in $SERVERS; do NAMES+=" $server-$gen"; done; done
python3 - "$WORK" "$N" "$SECS" "$SEG" "$HZ" "$NAMES" <<'PY'
import datetime, os, re, sys, time
work, n, secs, seg, hz, servers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6].split()

def env(name):
    d = {}
    for line in open(os.path.join(work, name + ".env")):
        k, v = line.rstrip("\n").split("=", 1)
        d[k] = v.strip('"')
    return d

def pct(xs, p):
    if not xs: return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

def window(path, e):
    with open(path, errors="replace") as f:
        lines = f.readlines()
    return lines[int(e["event_from"]):int(e["event_to"])], lines

rows = {}
for s in servers:
    e = env(s)
    wall = float(e["wall"])
    cpu = int(e["cpu_ticks"]) / hz / wall * 100
    r = {
        "cpu_total": cpu, "cpu_per_stream": cpu / n,
        "push_cpu": int(e["push_ticks"]) / hz / wall * 100,
        "rss_mb": int(e["rss_kb"]) / 1024,
        "rss_per_stream_kb": (int(e["rss_kb"]) - int(e["idle_rss_kb"])) / n,
        "load": e["load_start"] + " -> " + e["load_end"],
    }
    lat, per_stream, last_seen = [], {}, {}
    if s.startswith("sealcast"):
        lines, _ = window(os.path.join(work, "sealcast/server.log"), e)
        last_ts = {}
        for line in lines:
            m = re.search(r"stream=(\S+?)[}:].*publish_latency_us=(\d+)", line)
            if m:
                st = m.group(1)
                per_stream[st] = per_stream.get(st, 0) + 1
                lat.append(int(m.group(2)) / 1000)
                t = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)", line)
                if t:
                    last_ts[st] = datetime.datetime.fromisoformat(t.group(1)[:26]).timestamp() * 1e9
        newest = max(last_ts.values()) if last_ts else 0
        stalled = sum(1 for t in last_ts.values() if newest - t > 3 * seg * 1e9) + (n - len(last_ts))
    else:
        lines, _ = window(os.path.join(work, "nginx/events.log"), e)
        pending = {}
        last_ts = {}
        for line in lines:
            parts = line.split()
            if len(parts) < 3: continue
            t, ev, f = int(parts[0]), parts[1], parts[2]
            if f.endswith(".ts") and "CLOSE_WRITE" in ev:
                stream = f.rsplit("-", 1)[0]
                pending[stream] = t
            elif f.endswith(".m3u8") and "MOVED_TO" in ev:
                stream = f[:-5]
                if stream in pending:
                    lat.append((t - pending.pop(stream)) / 1e6)
                    per_stream[stream] = per_stream.get(stream, 0) + 1
                last_ts[stream] = t
        newest = max(last_ts.values()) if last_ts else 0
        stalled = sum(1 for t in last_ts.values() if newest - t > 3 * seg * 1e9) + (n - len(last_ts))
    counts = [per_stream.get(k, 0) for k in per_stream] + [0] * (n - len(per_stream))
    r.update({
        "lat_n": len(lat), "p50": pct(lat, 50), "p99": pct(lat, 99), "max": max(lat) if lat else float("nan"),
        "seg_min": min(counts) if counts else 0, "seg_avg": sum(counts) / max(1, len(counts)),
        "seg_expected": secs / seg, "stalled": stalled,
    })
    push = open(os.path.join(work, s + ".push.log")).read().strip().splitlines()
    r["push"] = next((l for l in reversed(push) if l.startswith("bench-push done")), push[-1] if push else "")
    rows[s] = r

fmt = [
    ("CPU % of one core, total", "cpu_total", "{:.1f}"),
    ("CPU % of one core per stream", "cpu_per_stream", "{:.3f}"),
    ("load generator CPU %", "push_cpu", "{:.1f}"),
    ("RSS total (MB)", "rss_mb", "{:.1f}"),
    ("RSS per stream (KB)", "rss_per_stream_kb", "{:.0f}"),
    ("publish latency p50 (ms)", "p50", "{:.3f}"),
    ("publish latency p99 (ms)", "p99", "{:.3f}"),
    ("publish latency max (ms)", "max", "{:.3f}"),
    ("latency samples", "lat_n", "{}"),
    ("segments/stream min", "seg_min", "{}"),
    ("segments/stream avg", "seg_avg", "{:.1f}"),
    ("segments/stream expected", "seg_expected", "{:.1f}"),
    ("playlists stalled", "stalled", "{}"),
]
print(f"\n== bench-ingest N={n} window={secs}s segment={seg}s ({time.strftime('%F %T')}) work dir {work}")
# Columns: server-generator; ratio columns: sealcast over nginx per generator.
pairs = [(s, "nginx" + s[len("sealcast"):]) for s in servers if s.startswith("sealcast-") and "nginx" + s[len("sealcast"):] in rows]
head = "{:<32}".format("") + "".join("{:>18}".format(s) for s in servers)
head += "".join("{:>18}".format("ratio" + a[len("sealcast"):]) for a, _ in pairs)
print(head)
for label, key, f in fmt:
    line = "{:<32}".format(label) + "".join("{:>18}".format(f.format(rows[s][key])) for s in servers)
    if key in ("cpu_total", "cpu_per_stream", "rss_mb", "rss_per_stream_kb", "p50", "p99", "max"):
        for a, b in pairs:
            a, b = rows[a][key], rows[b][key]
            line += "{:>18}".format("{:.2f}".format(a / b) if b else "-")
    print(line)
# Calibration: each generator's per-stream server CPU over ffmpeg's, per server.
for server in ("sealcast", "nginx"):
    ref = rows.get(server + "-ffmpeg")
    for s in servers:
        if ref and s.startswith(server + "-") and s != server + "-ffmpeg":
            a, b = rows[s]["cpu_per_stream"], ref["cpu_per_stream"]
            print(f"calibration {server}: {s[len(server) + 1:]} / ffmpeg per-stream CPU = {a:.3f} / {b:.3f} = {a / b:.2f}")
for s in servers:
    print(f"{s}: load {rows[s]['load']}")
    print(f"  {rows[s]['push']}")
PY
