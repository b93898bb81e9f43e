#!/usr/bin/env bash
# The sans-IO rule for sealcast-core, checked where the compiler cannot see it.
#
# The core crate's manifest keeps tokio, axum and hyper out, so the compiler
# already refuses any use of them. What it cannot refuse is the standard
# library's IO and clock: this check fails when non-test code in
# sealcast-core/src imports std::net, std::fs or std::process, reads the
# clock (SystemTime::now, Instant::now), sleeps or spawns threads, or when an
# IO crate appears among the core's dependencies. Test code (files named
# tests.rs and everything after a `#[cfg(test)]` line) may do IO: real-tool
# checks such as ffprobe reading our TS live there.
#
# Usage: scripts/check-sans-io.sh [DIR]   (sources to check; default
# sealcast-core; scripts/test.sh also runs it on a copy with a planted
# violation, to show that it fails)
set -euo pipefail
cd "$(dirname "$0")/.."
core="${1:-sealcast-core}"

forbidden='std::net|std::fs|std::process|std::thread|SystemTime::now|Instant::now|UNIX_EPOCH|\btokio\b|\baxum\b|\bhyper\b|\bmio\b|\bsocket2\b|\breqwest\b'
problems=0
while IFS= read -r -d '' file; do
  [[ "$(basename "$file")" == tests.rs ]] && continue
  # Lines up to the first #[cfg(test)]: the non-test part of the file.
  hits=$(awk '/^[[:space:]]*#\[cfg\(test\)\]/ { exit } { print FILENAME ":" FNR ": " $0 }' "$file" |
    grep -E "$forbidden" | grep -vE '^[^:]+:[0-9]+: *//' || true)
  if [[ -n "$hits" ]]; then
    echo "$hits"
    problems=1
  fi
done < <(find "$core/src" -name '*.rs' -print0)

# No IO crate among the core crate's (normal) dependencies, direct or not.
io_crates='^(tokio|tokio-util|axum|hyper|hyper-util|mio|socket2|reqwest|async-std|smol)$'
deps=$(cargo tree -p sealcast-core -e normal --prefix none | awk '{print $1}' | sort -u)
if bad=$(grep -E "$io_crates" <<<"$deps"); then
  echo "sealcast-core depends on IO crates: $bad"
  problems=1
fi

if [[ $problems -ne 0 ]]; then
  echo "sans-IO check failed: the lines above do IO or read the clock in $core (move them to an adapter in src/, or pass time in as an argument)"
  exit 1
fi
echo "sans-IO check: $core does no IO and reads no clock"
