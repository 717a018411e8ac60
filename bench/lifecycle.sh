#!/usr/bin/env bash
# Benchmark of a buildpack-built local deploy against the raw steps it orchestrates, measured
# in the same run: N redeploys (each of a new commit) of fixtures/apps/lifecycle-tools (a
# committed buildpack with a launch + cache layer, then slipway's Procfile buildpack).
#
#   slipway: `slipway deploy` (extract, detect, restore, build, export, predeploy, start web +
#            clock + ticker through the launcher, wait for web, retire the previous release);
#   raw:     git archive | tar -x; both buildpacks' bin/detect and bin/build by hand with the
#            CNB variables and the previous build's layers copied back; predeploy and web,
#            clock and ticker started with the layer's bin/ on PATH and its env; wait for
#            web's port; stop the previous release.
#
# It prints the median of each, their ratio, and the median of slipway's own [lifecycle]
# phase lines. Usage: bench/lifecycle.sh (as root). Knobs: BENCH_N=7 BENCH_PROFILE=release
# BENCH_TMPDIR=/tmp. Everything it creates is removed on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
N=${BENCH_N:-7}
PROFILE=${BENCH_PROFILE:-release}
FIXTURE=$ROOT/fixtures/apps/lifecycle-tools
APP_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
say() { printf '%s\n' "$*" >&2; }
die() { say "bench: error: $*"; exit 1; }

if [ "$PROFILE" = release ]; then cargo build --release >&2; else cargo build >&2; fi
BIN=$ROOT/target/$([ "$PROFILE" = release ] && echo release || echo debug)/slipway
[ -x "$BIN" ] || die "no binary at $BIN"

WORK=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/slipway-bench-lc.XXXXXX")
chmod 0711 "$WORK"
HOME_DIR=$WORK/home
APP=bench-lc-$$
RAW_PIDS=()
cleanup() {
    set +e
    for pid in "${RAW_PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null; done
    "$BIN" --home "$HOME_DIR" apps destroy "$APP" --confirm "$APP" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT

now_us() { local t=${EPOCHREALTIME//[!0-9]/}; printf '%s' "$t"; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ms() { awk -v u="$1" 'BEGIN {printf "%.1f", u/1000}'; }
gitc() { git -c user.name=bench -c user.email=bench@localhost -c init.defaultBranch=main "$@"; }
port_open() { (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

SRC=$WORK/repo
mkdir -p "$SRC" "$HOME_DIR"
cp -R "$FIXTURE/." "$SRC/"
gitc -C "$SRC" init -q && gitc -C "$SRC" add -A && gitc -C "$SRC" commit -qm fixture
new_commit() { echo "$1" >"$SRC/BENCH_REV"; gitc -C "$SRC" add BENCH_REV; gitc -C "$SRC" commit -qm "bench $1"; }

"$BIN" --home "$HOME_DIR" apps create "$APP" >/dev/null 2>&1
"$BIN" --home "$HOME_DIR" mount enable "$APP" --size 256M >/dev/null 2>&1

# Raw: one folder per release, the mount and the cache beside them.
RAW=$WORK/raw
mkdir -p "$RAW/mount" "$RAW/cache"
PREV_PGIDS=()
raw_deploy() { # $1 = label
    local rel=$RAW/rel-$1 app layers port pid bp t0
    t0=$(now_us)
    app=$rel/app layers=$rel/layers
    mkdir -p "$app" "$layers" "$rel/plan"
    ln -s ../mount "$rel/mount"
    git -C "$SRC" archive HEAD | tar -x -C "$app"
    for bp in buildpacks/tools "$ROOT"; do
        local id; id=$(basename "$bp")
        mkdir -p "$layers/$id"
        [ -d "$RAW/cache/$id" ] && cp -a "$RAW/cache/$id/." "$layers/$id/"
        local dir=$bp; [ "$bp" = "$ROOT" ] || dir=$app/$bp
        (cd "$app" && CNB_BUILD_PLAN_PATH=$rel/plan/$id.toml CNB_PLATFORM_DIR=$rel/plan "$dir/bin/detect") >/dev/null
        (cd "$app" && CNB_LAYERS_DIR=$layers/$id CNB_BP_PLAN_PATH=$rel/plan/$id.toml CNB_PLATFORM_DIR=$rel/plan "$dir/bin/build") >/dev/null
    done
    rm -rf "$RAW/cache/tools" && mkdir -p "$RAW/cache/tools" && cp -a "$layers/tools/tools" "$layers/tools/tools.toml" "$RAW/cache/tools/"
    rm -rf "$layers/tools/scratch" "$layers/tools/scratch.toml"
    local l=$layers/tools/tools
    local env=(env -i "PATH=$l/bin:$APP_PATH" "HOME=$rel" "GREETING=$(<"$l/env.launch/GREETING")" "TOOLS_LIST=tools-lib" "PROFILE_SEEN=1")
    (cd "$app" && "${env[@]}" bash predeploy.sh) >/dev/null
    port=$(free_port)
    local pgids=()
    for cmd in "exec python3 -m http.server $port" 'while :; do echo "procfile clock"; sleep 1; done' \
        'while :; do echo "tick $GREETING"; sleep 1; done'; do
        (cd "$app" && exec setsid "${env[@]}" bash -c "$cmd") >/dev/null 2>&1 &
        pgids+=("$!") RAW_PIDS+=("$!")
    done
    until port_open "$port"; do sleep 0.02; done
    for pid in "${PREV_PGIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    PREV_PGIDS=("${pgids[@]}")
    LAST_US=$(($(now_us) - t0))
}

slipway_deploy() { # $1 = label
    local t0 err=$WORK/deploy-$1.err
    t0=$(now_us)
    "$BIN" --home "$HOME_DIR" deploy "$APP" --repo "$SRC" 2>"$err" >/dev/null || { cat "$err" >&2; die "deploy failed"; }
    LAST_US=$(($(now_us) - t0))
    LAST_ERR=$err
}

say "==> $N redeploys of lifecycle-tools, slipway ($PROFILE) vs raw, plus one warm-up each"
new_commit warmup
slipway_deploy warm
raw_deploy warm
SLIP=() RAWT=() DET=() BLD=() EXP=()
for i in $(seq 1 "$N"); do
    new_commit "$i"
    slipway_deploy "$i"; SLIP+=("$LAST_US")
    DET+=("$(sed -n 's/.*\[lifecycle\] detect: .*(\([0-9.]*\)s)$/\1/p' "$LAST_ERR" | awk '{print $1*1000000}')")
    BLD+=("$(sed -n 's/.*\[lifecycle\] build: .*(\([0-9.]*\)s)$/\1/p' "$LAST_ERR" | awk '{print $1*1000000}')")
    EXP+=("$(sed -n 's/.*\[lifecycle\] export: .*(\([0-9.]*\)s)$/\1/p' "$LAST_ERR" | awk '{print $1*1000000}')")
    raw_deploy "$i"; RAWT+=("$LAST_US")
done
s=$(median "${SLIP[@]}") r=$(median "${RAWT[@]}")
printf '\n%-44s %10s\n' "measure (median of $N)" "ms"
printf '%-44s %10s\n' "slipway deploy (buildpacks, local)" "$(ms "$s")"
printf '%-44s %10s\n' "raw steps (extract, bin/build, start, stop)" "$(ms "$r")"
printf '%-44s %10s\n' "ratio slipway / raw" "$(awk -v a="$s" -v b="$r" 'BEGIN {printf "%.2fx", a/b}')"
printf '%-44s %10s\n' "  of which [lifecycle] detect" "$(ms "$(median "${DET[@]}")")"
printf '%-44s %10s\n' "  of which [lifecycle] build" "$(ms "$(median "${BLD[@]}")")"
printf '%-44s %10s\n' "  of which [lifecycle] export" "$(ms "$(median "${EXP[@]}")")"
