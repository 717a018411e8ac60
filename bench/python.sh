#!/usr/bin/env bash
# Benchmark of the seed's Dash app (fixtures/apps/seed-dash) built by the slipway/python
# buildpack, beside the raw steps, in the same run:
#
#   1. Cold local deploy (empty pip cache) against the raw steps: `python3 -m venv` +
#      `pip install -r requirements.txt` (its own empty cache) + start gunicorn and the worker
#      until /_dash-layout answers, run before and after slipway's (the mean). Goal: <= 1.1x.
#   2. Warm local redeploy (a code change only: the venv layer is reused). Goal: <= 1.5 s and
#      >= 10x faster than the cold deploy. Printed beside its floor: the raw restart, i.e. the
#      app's own predeploy and start until /_dash-layout answers, with the venv already built.
#   3. Warm docker redeploy (code change only) against a cold docker deploy. Goal: >= 5x faster.
#   4. Peak RSS of the `slipway deploy` process itself (VmHWM, sampled until it exits; pip and
#      gunicorn are children and not counted). Goal: < 64 MB.
#
# Usage: bench/python.sh            (as root, so that apps get their own system user)
# Knobs: BENCH_BIN=path/to/slipway (skip the release build), BENCH_TMPDIR=/tmp,
#        BENCH_SKIP_DOCKER=1, BENCH_SKIP_LOCAL=1 (only the docker part), BENCH_PHASES=1 (print each
#        deploy's phase lines), CARGO_TARGET_DIR=target
# Needs the network to PyPI (the host's CA bundle is used) and, for 3, `slipway stack import`.
# Everything it creates (apps, processes, temp dirs) is removed on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TMPBASE=${BENCH_TMPDIR:-/tmp}
FIXTURE=$ROOT/fixtures/apps/seed-dash
# The PATH slipway gives processes of an app user: the raw baseline uses the same python3.
APP_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { printf '%s\n' "$*" >&2; }
die() {
    say "bench: error: $*"
    exit 1
}

if [ -n "${BENCH_BIN:-}" ]; then
    BIN=$(realpath "$BENCH_BIN")
else
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
    say "==> cargo build --release (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    cargo build --release >&2
    BIN=$(cd "$CARGO_TARGET_DIR/release" && pwd)/slipway
fi
[ -x "$BIN" ] || die "no binary at $BIN"
PY=$(PATH=$APP_PATH command -v python3) || die "python3 is required in $APP_PATH"
"$PY" -c 'import venv, ensurepip' 2>/dev/null || die "$PY has no venv module: apt-get install python3-venv"
command -v curl >/dev/null || die "curl is required"

WORK=$(mktemp -d "$TMPBASE/slipway-bench-python.XXXXXX")
chmod 0711 "$WORK"
HOME_DIR=$WORK/home
mkdir -p "$HOME_DIR"
CREATED_APPS=()
RAW_PIDS=()

cleanup() {
    set +e
    trap - EXIT INT TERM
    for pid in "${RAW_PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null; done
    for pid in "${RAW_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    for app in "${CREATED_APPS[@]}"; do
        "$BIN" --home "$HOME_DIR" apps destroy "$app" --confirm "$app" >"$WORK/destroy-$app.log" 2>&1 ||
            say "bench: WARNING: apps destroy $app failed: $(tail -3 "$WORK/destroy-$app.log")"
    done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

sw() { "$BIN" --home "$HOME_DIR" "$@"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# A git repository of the fixture, owned so that app users can read it.
REPO=$WORK/repo
cp -r "$FIXTURE" "$REPO"
git -C "$REPO" init -q
git -C "$REPO" add -A
git -C "$REPO" -c user.name=bench -c user.email=bench@localhost commit -qm seed-dash
chmod -R a+rX "$REPO"
code_change() {
    echo "# change $(now)" >>"$REPO/app.py"
    git -C "$REPO" -c user.name=bench -c user.email=bench@localhost commit -qam "code change"
}

# Runs `slipway deploy APP`, sampling its VmHWM; sets DEPLOY_SECS and DEPLOY_HWM_KB.
deploy() {
    local app=$1 log=$WORK/deploy-$1-$(date +%s%N).log start pid hwm=0 h
    start=$(now)
    # Started directly (not through the sw function), so that $! is slipway itself.
    "$BIN" --home "$HOME_DIR" deploy "$app" --repo "$REPO" >"$log" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        h=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
        [ -n "$h" ] && [ "$h" -gt "$hwm" ] && hwm=$h
        sleep 0.05
    done
    wait "$pid" || {
        sed 's/^/    /' "$log" >&2
        die "slipway deploy $app failed"
    }
    DEPLOY_SECS=$(secs "$start" "$(now)")
    DEPLOY_HWM_KB=$hwm
    DEPLOY_LOG=$log
}
# The phase lines of the last deploy (progress and [lifecycle] timings), when BENCH_PHASES is set.
phases() {
    if [ -n "${BENCH_PHASES:-}" ]; then grep -E '^----->|^ +(done|FAILED) in |\[lifecycle\]|predeploy changed' "$DEPLOY_LOG" | sed 's/^/      /' >&2 || true; fi
}

RAW_COLD=- RAW_WARM=- LOCAL_COLD=- LOCAL_WARM=- HWM_COLD=0 HWM_WARM=0
if [ -z "${BENCH_SKIP_LOCAL:-}" ]; then
# ---------------------------------------------------------------------------------------------
# 1. Raw baseline: venv + pip + start until /_dash-layout answers. PyPI's speed through this
#    network drifts by seconds from one minute to the next, so it is measured twice, before
#    and after slipway's cold deploy, and the mean is the baseline.
# ---------------------------------------------------------------------------------------------
RAW=$WORK/raw
mkdir -p "$RAW/mount"
cp -r "$FIXTURE" "$RAW/app"
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# web and worker in one new process group (setsid of a background child keeps its pid), so
# that they are stopped together by that group's id.
start_raw() {
    (
        cd "$RAW/app"
        export PATH=$RAW/venv/bin:$APP_PATH PYTHONUNBUFFERED=1 PORT
        exec setsid bash -c 'python worker.py >>../worker.log 2>&1 & exec gunicorn app:server --workers 4 -b "127.0.0.1:$PORT" >>../web.log 2>&1'
    ) &
    RAW_PIDS+=($!)
    until curl -fs -o /dev/null "http://127.0.0.1:$PORT/_dash-layout"; do sleep 0.05; done
}
stop_raw() {
    for pid in "${RAW_PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    for pid in "${RAW_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    RAW_PIDS=()
}
raw_predeploy() {
    (
        cd "$RAW/app"
        PATH=$RAW/venv/bin:$APP_PATH bash predeploy.sh >/dev/null
    ) >&2 || die "raw predeploy failed"
}
raw_cold() { # sets RAW_SECS
    rm -rf "$RAW/venv" "$RAW/pip-cache"
    local start
    start=$(now)
    (
        cd "$RAW/app"
        "$PY" -m venv "$RAW/venv"
        "$RAW/venv/bin/pip" install -q --progress-bar off --cache-dir "$RAW/pip-cache" -r requirements.txt
    ) >&2 || die "raw pip install failed"
    raw_predeploy
    start_raw
    RAW_SECS=$(secs "$start" "$(now)")
    stop_raw
}
say "==> raw: python3 -m venv + pip install -r requirements.txt + gunicorn (empty pip cache)"
raw_cold
RAW_COLD_1=$RAW_SECS
say "    raw cold: ${RAW_COLD_1}s"

# The floor of a warm redeploy: the app's own predeploy and start with the venv already built
# (no build, no health gate, no settle period, nothing retired).
say "==> raw restart: predeploy + gunicorn with the venv already built"
start=$(now)
raw_predeploy
start_raw
RAW_WARM=$(secs "$start" "$(now)")
stop_raw
say "    raw restart: ${RAW_WARM}s"

# ---------------------------------------------------------------------------------------------
# 2. slipway, local: cold, then warm (code change only).
# ---------------------------------------------------------------------------------------------
APP=pybench-$$
sw apps create "$APP" >/dev/null 2>&1
CREATED_APPS+=("$APP")
sw mount enable "$APP" --size 256M >/dev/null 2>&1
say "==> slipway deploy (local, cold: empty build cache)"
deploy "$APP"
LOCAL_COLD=$DEPLOY_SECS
HWM_COLD=$DEPLOY_HWM_KB
say "    slipway cold: ${LOCAL_COLD}s"
phases
say "==> raw again: python3 -m venv + pip install + gunicorn (empty pip cache)"
raw_cold
RAW_COLD_2=$RAW_SECS
RAW_COLD=$(awk -v a="$RAW_COLD_1" -v b="$RAW_COLD_2" 'BEGIN { printf "%.2f", (a + b) / 2 }')
say "    raw cold: ${RAW_COLD_2}s (mean of both: ${RAW_COLD}s)"
code_change
say "==> slipway deploy (local, warm: code change only)"
deploy "$APP"
LOCAL_WARM=$DEPLOY_SECS
HWM_WARM=$DEPLOY_HWM_KB
say "    slipway warm: ${LOCAL_WARM}s"
phases
fi

# ---------------------------------------------------------------------------------------------
# 3. slipway, docker: cold, then warm.
# ---------------------------------------------------------------------------------------------
DOCKER_COLD=- DOCKER_WARM=-
if [ -z "${BENCH_SKIP_DOCKER:-}" ]; then
    DAPP=pybenchd-$$
    sw apps create "$DAPP" --runtime docker >/dev/null 2>&1
    CREATED_APPS+=("$DAPP")
    sw mount enable "$DAPP" --size 256M >/dev/null 2>&1
    say "==> slipway deploy (docker, cold: new cache volume)"
    deploy "$DAPP"
    DOCKER_COLD=$DEPLOY_SECS
    say "    docker cold: ${DOCKER_COLD}s"
    phases
    code_change
    say "==> slipway deploy (docker, warm: code change only)"
    deploy "$DAPP"
    DOCKER_WARM=$DEPLOY_SECS
    say "    docker warm: ${DOCKER_WARM}s"
    phases
fi

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
printf '\n%-44s %10s %10s %8s  %s\n' "measure" "slipway" "baseline" "ratio" "goal"
if [ "$LOCAL_COLD" != - ]; then
printf '%-44s %9ss %9ss %8s  %s\n' "cold local deploy vs raw venv+pip+start" "$LOCAL_COLD" "$RAW_COLD" \
    "$(ratio "$LOCAL_COLD" "$RAW_COLD")x" "<= 1.1x"
printf '%-44s %9ss %9ss %8s  %s\n' "warm local redeploy (code only) vs cold" "$LOCAL_WARM" "$LOCAL_COLD" \
    "$(ratio "$LOCAL_COLD" "$LOCAL_WARM")x faster" "<= 1.5 s, >= 10x"
printf '%-44s %9ss %9ss %8s  %s\n' "warm local redeploy vs raw restart (floor)" "$LOCAL_WARM" "$RAW_WARM" \
    "$(ratio "$LOCAL_WARM" "$RAW_WARM")x" "-"
fi
if [ "$DOCKER_COLD" != - ]; then
    printf '%-44s %9ss %9ss %8s  %s\n' "warm docker redeploy vs cold docker" "$DOCKER_WARM" "$DOCKER_COLD" \
        "$(ratio "$DOCKER_COLD" "$DOCKER_WARM")x faster" ">= 5x"
fi
if [ "$LOCAL_COLD" != - ]; then
printf '%-44s %8sMB %10s %8s  %s\n' "peak RSS of slipway deploy (cold / warm)" \
    "$((HWM_COLD / 1024))/$((HWM_WARM / 1024))" "-" "-" "< 64 MB"
fi
