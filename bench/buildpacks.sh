#!/usr/bin/env bash
# Benchmark of the per-buildpack overhead of a local buildpack build, measured in the same
# run: N redeploys (each of a new commit) of a small Procfile app with ONE no-op buildpack
# (`--buildpack`: bin/detect and bin/build that exit 0), alternating with N redeploys with
# FIVE of them. Both then run slipway's own Procfile buildpack and start the same web.
#
# It prints the median deploy time of each, the difference (goal: at most +0.5 s for the
# four extra buildpacks), and the median of the [lifecycle] detect and build lines of each.
# Usage: bench/buildpacks.sh (as root). Knobs: BENCH_N=5 BENCH_PROFILE=debug|release
# BENCH_TMPDIR=/tmp. Everything it creates is removed on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
N=${BENCH_N:-5}
PROFILE=${BENCH_PROFILE:-debug}
say() { printf '%s\n' "$*" >&2; }
die() { say "bench: error: $*"; exit 1; }

if [ "$PROFILE" = release ]; then cargo build --release >&2; else cargo build >&2; fi
BIN=$ROOT/target/$([ "$PROFILE" = release ] && echo release || echo debug)/slipway
[ -x "$BIN" ] || die "no binary at $BIN"

WORK=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/slipway-bench-bp.XXXXXX")
chmod 0711 "$WORK"
HOME_DIR=$WORK/home
APP=bench-bp-$$
cleanup() {
    set +e
    "$BIN" --home "$HOME_DIR" apps destroy "$APP" --confirm "$APP" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT

now_us() { local t=${EPOCHREALTIME//[!0-9]/}; printf '%s' "$t"; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ms() { awk -v u="$1" 'BEGIN {printf "%.0f", u/1000}'; }
gitc() { git -c user.name=bench -c user.email=bench@localhost -c init.defaultBranch=main "$@"; }

# Five no-op buildpacks (Buildpack API 0.10), readable by root, which installs them.
BPS=()
for i in 1 2 3 4 5; do
    d=$WORK/noop-$i
    mkdir -p "$d/bin"
    printf 'api = "0.10"\n[buildpack]\nid = "bench/noop-%s"\nversion = "1.0.0"\n' "$i" >"$d/buildpack.toml"
    printf '#!/usr/bin/env bash\nexit 0\n' >"$d/bin/detect"
    printf '#!/usr/bin/env bash\nexit 0\n' >"$d/bin/build"
    chmod 0755 "$d/bin/detect" "$d/bin/build"
    BPS+=(--buildpack "$d")
done

SRC=$WORK/repo
mkdir -p "$SRC" "$HOME_DIR"
printf 'web: exec python3 -m http.server "$PORT"\n' >"$SRC/Procfile"
printf 'bench\n' >"$SRC/index.html"
gitc -C "$SRC" init -q && gitc -C "$SRC" add -A && gitc -C "$SRC" commit -qm app
new_commit() { echo "$1" >"$SRC/BENCH_REV"; gitc -C "$SRC" add BENCH_REV; gitc -C "$SRC" commit -qm "bench $1"; }

"$BIN" --home "$HOME_DIR" apps create "$APP" >/dev/null
LOG=$WORK/deploy.log

# deploy LABEL BUILDPACK-ARGS...: one deploy of a new commit; prints its time in µs and
# appends its [lifecycle] detect/build seconds to $WORK/LABEL.phases.
deploy() {
    local label=$1; shift
    new_commit "$label-$RANDOM$RANDOM"
    local t0; t0=$(now_us)
    "$BIN" --home "$HOME_DIR" deploy "$APP" --repo "$SRC" "$@" >/dev/null 2>"$LOG" || { cat "$LOG" >&2; die "deploy failed"; }
    local t1; t1=$(now_us)
    sed -n 's/.*\[lifecycle\] \(detect\|build\): .*(\([0-9.]*\)s)$/\1 \2/p' "$LOG" >>"$WORK/$label.phases"
    # The whole build step (extract, install the buildpacks, the lifecycle, the launcher).
    awk '/-----> Building/ {b = 1} b && /done in [0-9.]+s$/ {sub(/.*done in /, ""); sub(/s$/, ""); print "step", $0; exit}' "$LOG" >>"$WORK/$label.phases"
    echo $((t1 - t0))
}

say "warm-up deploy"
deploy warm "${BPS[@]:0:2}" >/dev/null
ONE=(); FIVE=()
for i in $(seq 1 "$N"); do
    ONE+=("$(deploy one "${BPS[@]:0:2}")")
    FIVE+=("$(deploy five "${BPS[@]}")")
    say "run $i/$N: one $(ms "${ONE[-1]}") ms, five $(ms "${FIVE[-1]}") ms"
done

m1=$(median "${ONE[@]}"); m5=$(median "${FIVE[@]}")
phase() { median $(awk -v p="$2" '$1 == p {print $2 * 1000000}' "$WORK/$1.phases"); }
printf 'binary: %s (%s)\n' "$BIN" "$PROFILE"
printf 'deploy, 1 no-op buildpack  (median of %s): %s ms  [build step %s ms: detect %s ms, build %s ms]\n' "$N" "$(ms "$m1")" "$(ms "$(phase one step)")" "$(ms "$(phase one detect)")" "$(ms "$(phase one build)")"
printf 'deploy, 5 no-op buildpacks (median of %s): %s ms  [build step %s ms: detect %s ms, build %s ms]\n' "$N" "$(ms "$m5")" "$(ms "$(phase five step)")" "$(ms "$(phase five detect)")" "$(ms "$(phase five build)")"
diff=$(awk -v a="$m5" -v b="$m1" 'BEGIN {printf "%.0f", a - b}')
sdiff=$(awk -v a="$(phase five step)" -v b="$(phase one step)" 'BEGIN {printf "%.0f", a - b}')
printf 'difference: %+d ms per deploy, %+d ms in the build step, for 4 more buildpacks (goal: at most +500 ms)\n' "$(ms "$diff")" "$(ms "$sdiff")"
