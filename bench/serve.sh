#!/usr/bin/env bash
# Benchmark of the App Manager (`slipway serve`) against the raw operations, in the same run:
#
#   1. Upload throughput: a 1 GiB file PUT through the API into an app's mount, beside `cp` of
#      the same file into the same mount followed by `sync`. Goal: >= 70% of cp + sync.
#   2. Memory: the server's peak RSS (VmHWM) after that upload. Goal: < 64 MB.
#   3. Listing: GET of a folder holding 10,000 files (median of 5). Goal: < 200 ms.
#
# Usage: bench/serve.sh   (as root the mount is a hard-limited ext4 image; otherwise soft)
# Knobs: BENCH_UPLOAD_MB=1024 BENCH_FILES=10000 BENCH_TMPDIR=/tmp CARGO_TARGET_DIR=target
#        SLIPWAY_BIN=path (a built binary: skips the build, e.g. to measure an older one)
# Everything it creates (home, app, server, temp files) is removed on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
UPLOAD_MB=${BENCH_UPLOAD_MB:-1024}
FILES=${BENCH_FILES:-10000}
TMPBASE=${BENCH_TMPDIR:-/tmp}

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: error: $*"; exit 1; }
command -v curl >/dev/null || die "curl is required"

if [ -n "${SLIPWAY_BIN:-}" ]; then
  BIN=$(cd "$(dirname "$SLIPWAY_BIN")" && pwd)/$(basename "$SLIPWAY_BIN")
  say "==> using $BIN (SLIPWAY_BIN)"
else
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
  say "==> cargo build --release (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
  cargo build --release >&2
  BIN=$(cd "$CARGO_TARGET_DIR/release" && pwd)/slipway
fi

WORK=$(mktemp -d "$TMPBASE/slipway-bench-serve.XXXXXX")
chmod 0711 "$WORK" # app users must pass through to their tree
HOME_DIR=$WORK/home
APP=benchserve$$
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  "$BIN" --home "$HOME_DIR" apps destroy "$APP" --confirm "$APP" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

sw() { "$BIN" --home "$HOME_DIR" "$@"; }
now_ms() { date +%s%3N; }

sw apps create "$APP" >/dev/null 2>"$WORK/create.log" || die "apps create: $(cat "$WORK/create.log")"
sw mount enable "$APP" --size "$((UPLOAD_MB * 3 + 512))M" >/dev/null 2>&1
MOUNT=$HOME_DIR/apps/$APP/mount
MODE=$(sw mount status "$APP" --json | sed -n 's/.*"mode": "\([a-z]*\)".*/\1/p')

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" --home "$HOME_DIR" serve --listen "127.0.0.1:$PORT" 2>"$WORK/serve.log" &
SERVER_PID=$!
for _ in $(seq 100); do
  TOKEN=$(sw tokens show-admin 2>/dev/null || true)
  [ -n "$TOKEN" ] && curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/apps" 2>/dev/null && break
  sleep 0.1
done
[ -n "$TOKEN" ] || die "the server did not start: $(cat "$WORK/serve.log")"

say "==> making a ${UPLOAD_MB} MiB file"
SRC=$WORK/src.bin
head -c "$((UPLOAD_MB << 20))" /dev/urandom >"$SRC"
cat "$SRC" >/dev/null # both runs read it from the page cache

say "==> cp + sync into the mount ($MODE limit)"
sync
t0=$(now_ms); cp "$SRC" "$MOUNT/baseline.bin"; sync; t1=$(now_ms)
CP_MS=$((t1 - t0))
rm -f "$MOUNT/baseline.bin"; sync

say "==> PUT through the API"
t0=$(now_ms)
code=$(curl -sS -o "$WORK/put.out" -w '%{http_code}' -X PUT -H "Authorization: Bearer $TOKEN" \
  -H "Content-Type: application/octet-stream" -T "$SRC" \
  "http://127.0.0.1:$PORT/api/apps/$APP/mount/files/upload.bin")
sync; t1=$(now_ms)
[ "$code" = 201 ] || die "upload answered $code: $(cat "$WORK/put.out")"
API_MS=$((t1 - t0))
cmp -s "$SRC" "$MOUNT/upload.bin" || die "the uploaded file differs from its source"
RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status")
rm -f "$MOUNT/upload.bin" "$SRC"

say "==> listing a folder of $FILES files"
mkdir -p "$MOUNT/many"
(cd "$MOUNT/many" && seq -f 'file-%05g.txt' 1 "$FILES" | xargs touch)
[ "$(id -u)" = 0 ] && chown -R --reference="$MOUNT" "$MOUNT/many"
times=()
for _ in 1 2 3 4 5; do
  t0=$(now_ms)
  n=$(curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/apps/$APP/mount/files/many" | grep -o '"name"' | wc -l)
  t1=$(now_ms)
  [ "$n" = "$FILES" ] || die "the listing has $n entries, not $FILES"
  times+=($((t1 - t0)))
done
LIST_MS=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)
t0=$(now_ms); ls -l "$MOUNT/many" >/dev/null; t1=$(now_ms)
LS_MS=$((t1 - t0))

mbps() { awk -v mb="$UPLOAD_MB" -v ms="$1" 'BEGIN { printf "%.0f", mb / (ms / 1000) }'; }
CP_RATE=$(mbps "$CP_MS"); API_RATE=$(mbps "$API_MS")
RATIO=$(awk -v a="$CP_MS" -v b="$API_MS" 'BEGIN { printf "%.0f", 100 * a / b }')
printf '\n%-34s %12s %12s %10s\n' "measure" "slipway" "baseline" "goal"
printf '%-34s %9s MB/s %7s MB/s %10s\n' "upload ${UPLOAD_MB} MiB (PUT vs cp+sync)" "$API_RATE" "$CP_RATE" ">=70%"
printf '%-34s %11s%% %12s %10s\n' "  throughput vs baseline" "$RATIO" "100%" ""
printf '%-34s %9s MB %12s %10s\n' "server peak RSS" "$((RSS_KB / 1024))" "-" "<64 MB"
printf '%-34s %9s ms %9s ms %10s\n' "list $FILES files (GET vs ls -l)" "$LIST_MS" "$LS_MS" "<200 ms"
