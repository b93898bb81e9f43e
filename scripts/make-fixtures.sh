#!/usr/bin/env bash
# Regenerates the FLV fixtures under fixtures/ with ffmpeg (synthetic sources, so
# anyone can reproduce them). The committed files are what the tests use; rerun
# this only to change them, and update fixtures/README.md with it.
#
#   scripts/make-fixtures.sh          the committed test fixtures
#   scripts/make-fixtures.sh bench    fixtures/bench-720p.flv only (not committed, ~3.4 MB):
#                                     720p30 H.264 High ~2.6 Mb/s CBR + AAC 128k, 10 s,
#                                     keyframe every 2 s; used by scripts/bench-ingest.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v ffmpeg >/dev/null || { echo "ffmpeg is required (apt-get install -y ffmpeg)" >&2; exit 1; }

common=(-hide_banner -loglevel error -y -fflags +bitexact -flags:v +bitexact -flags:a +bitexact)

if [[ "${1:-}" == bench ]]; then
  # Temporal noise keeps x264 from undershooting on a synthetic picture, and
  # nal-hrd=cbr holds the rate near 2.6 Mb/s (+128k audio: ~2.7 Mb/s total).
  ffmpeg "${common[@]}" \
    -f lavfi -i "testsrc2=size=1280x720:rate=30,noise=alls=12:allf=t" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000,aformat=channel_layouts=stereo" \
    -t 10 \
    -c:v libx264 -profile:v high -preset veryfast -bf 2 \
    -b:v 2600k -minrate 2600k -maxrate 2600k -bufsize 2600k -x264-params nal-hrd=cbr \
    -g 60 -keyint_min 60 -sc_threshold 0 -pix_fmt yuv420p \
    -c:a aac -b:a 128k -ar 48000 -ac 2 \
    -f flv fixtures/bench-720p.flv
  ls -l fixtures/bench-720p.flv
  exit 0
fi

# 1. H.264 High with B-frames + AAC-LC 48 kHz stereo, keyframe every 2 s, 10 s.
ffmpeg "${common[@]}" \
  -f lavfi -i "testsrc2=size=640x360:rate=30" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000,aformat=channel_layouts=stereo" \
  -t 10 \
  -c:v libx264 -profile:v high -preset veryfast -bf 3 -b:v 700k -maxrate 900k -bufsize 1400k \
  -g 60 -keyint_min 60 -sc_threshold 0 -pix_fmt yuv420p \
  -c:a aac -b:a 96k -ar 48000 -ac 2 \
  -f flv fixtures/high-bframes-aac48k.flv

# 2. H.264 Baseline (no B-frames) + AAC-LC 44.1 kHz stereo, keyframe every 2 s, 10 s.
ffmpeg "${common[@]}" \
  -f lavfi -i "testsrc2=size=426x240:rate=25" \
  -f lavfi -i "sine=frequency=1000:sample_rate=44100,aformat=channel_layouts=stereo" \
  -t 10 \
  -c:v libx264 -profile:v baseline -preset veryfast -b:v 500k -maxrate 700k -bufsize 1000k \
  -g 50 -keyint_min 50 -sc_threshold 0 -pix_fmt yuv420p \
  -c:a aac -b:a 96k -ar 44100 -ac 2 \
  -f flv fixtures/baseline-aac44k.flv

# 3. Audio only: AAC-LC 48 kHz stereo, 6 s.
ffmpeg "${common[@]}" \
  -f lavfi -i "sine=frequency=660:sample_rate=48000,aformat=channel_layouts=stereo" -t 6 \
  -c:a aac -b:a 96k -f flv fixtures/audio-only-aac48k.flv

# 4. Video only: H.264 Main, keyframe every 1 s, 6 s.
ffmpeg "${common[@]}" \
  -f lavfi -i "testsrc2=size=320x180:rate=30" -t 6 \
  -c:v libx264 -profile:v main -preset veryfast -b:v 300k -g 30 -keyint_min 30 -sc_threshold 0 \
  -pix_fmt yuv420p -f flv fixtures/video-only-main.flv

ls -l fixtures/*.flv
