#!/usr/bin/env bash
# Benchmark of `slipway deploy` against the raw steps it orchestrates, measured in the same run.
#
#   1. Deploy time: N redeploys (each of a new commit) of the seed-demo fixture with
#      `slipway deploy`, and the same steps done by hand (git archive | tar -x, predeploy.sh,
#      start web + worker, wait until web answers HTTP, wait the settle period, stop the previous release). Goal: <= 1.2x.
#   2. Memory: peak RSS of `slipway deploy` of a ~1 GiB repository, beside the peak RSS of a raw
#      `git archive | tar -x` of the same commit. Goal: < 50 MB.
#
# Usage: bench/deploy.sh            (as root, so that apps get their own system user)
# Knobs: BENCH_N=15 BENCH_SETTLE=1 BENCH_MEM_FILES=64 BENCH_MEM_FILE_MB=16 BENCH_TMPDIR=/tmp BENCH_SKIP_MEM=1
#        CARGO_TARGET_DIR=target
# Everything it creates (apps, their users and processes, temp dirs) is removed on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

N=${BENCH_N:-15}
# The settle period of slipway's health gate (its default), which the raw steps wait out too.
SETTLE_S=${BENCH_SETTLE:-1}
MEM_FILES=${BENCH_MEM_FILES:-64}
MEM_FILE_MB=${BENCH_MEM_FILE_MB:-16}
TMPBASE=${BENCH_TMPDIR:-/tmp}
FIXTURE=$ROOT/fixtures/apps/seed-demo
# The PATH slipway gives processes that run as an app user (src/supervise/process.rs): the raw
# baseline runs the same python3, not e.g. a pyenv shim from root's PATH.
APP_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: error: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------------
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
say "==> cargo build --release (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
cargo build --release >&2
BIN=$(cd "$CARGO_TARGET_DIR/release" && pwd)/slipway
[ -x "$BIN" ] || die "no binary at $BIN"

command -v git >/dev/null || die "git is required"
command -v tar >/dev/null || die "tar is required"
PY=$(PATH=$APP_PATH command -v python3) || die "python3 is required in $APP_PATH"

IS_ROOT=0
[ "$(id -u)" = 0 ] && IS_ROOT=1
[ "$IS_ROOT" = 1 ] || say "bench: note: not root; apps run as the invoking user (no slipway-APP user)"

# ---------------------------------------------------------------------------------------------
# Scratch space and cleanup
# ---------------------------------------------------------------------------------------------
WORK=$(mktemp -d "$TMPBASE/slipway-bench.XXXXXX")
# App users must be able to pass through to their release folders under $HOME_DIR.
chmod 0711 "$WORK"
HOME_DIR=$WORK/home
mkdir -p "$HOME_DIR"
CREATED_APPS=()
RAW_PIDS=()

cleanup() {
    local rc=$? app pid leftover ok=1
    set +e
    trap - EXIT INT TERM
    for pid in "${RAW_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${RAW_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    for app in "${CREATED_APPS[@]}"; do
        if ! "$BIN" --home "$HOME_DIR" apps destroy "$app" --confirm "$app" >"$WORK/destroy-$app.log" 2>&1; then
            ok=0
            say "bench: WARNING: slipway apps destroy $app failed:"
            sed 's/^/    /' "$WORK/destroy-$app.log" >&2
        fi
    done
    leftover=$(pgrep -fa -- "--home $HOME_DIR __supervise" || true)
    if [ -n "$leftover" ]; then
        ok=0
        say "bench: WARNING: supervisors left running after cleanup:"
        say "$leftover"
    fi
    if [ "$ok" = 1 ]; then
        rm -rf "$WORK"
        say "cleanup: destroyed ${#CREATED_APPS[@]} app(s), no __supervise process left, removed $WORK"
    else
        say "cleanup: INCOMPLETE; kept $WORK for inspection"
        [ "$rc" = 0 ] && rc=1
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
# Microseconds since the epoch, without forking.
now_us() { local t=${EPOCHREALTIME//[!0-9]/}; printf '%s' "$t"; }
# Median of integers.
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ms() { awk -v u="$1" 'BEGIN {printf "%.1f", u/1000}'; }

# Read /proc/$1/status into S_NAME S_STATE S_HWM S_ANON S_FILE (kB); false if it is gone.
read_status() {
    S_NAME="" S_STATE="" S_HWM=0 S_ANON=0 S_FILE=0
    [ -r "/proc/$1/status" ] || return 1
    local k v
    while read -r k v _; do
        case $k in
            Name:) S_NAME=$v ;; State:) S_STATE=$v ;; VmHWM:) S_HWM=$v ;;
            RssAnon:) S_ANON=$v ;; RssFile:) S_FILE=$v ;;
        esac
    done 2>/dev/null <"/proc/$1/status" || true
    [ -n "$S_NAME" ]
}

# $1 is a GNU time started in the background. Sample the process it runs every 20 ms until it
# exits: PEAK_SELF_KB = its VmHWM; PEAK_KIDS = one line per child command name, "name hwm anon
# file" with the largest values seen. Returns the exit status of GNU time (= the process's).
measure() {
    local tpid=$1 pid="" kid
    local -A hwm=() anon=() file=()
    PEAK_SELF_KB=0 PEAK_KIDS=""
    until [ -n "$pid" ] || ! kill -0 "$tpid" 2>/dev/null; do pid=$(pgrep -P "$tpid" || true); done
    while [ -n "$pid" ] && read_status "$pid"; do
        [ "$S_HWM" -gt "$PEAK_SELF_KB" ] && PEAK_SELF_KB=$S_HWM
        [ "${S_STATE:0:1}" = Z ] && break
        for kid in $(pgrep -P "$pid" || true); do
            read_status "$kid" || continue
            [ "$S_HWM" -gt "${hwm[$S_NAME]:-0}" ] && hwm[$S_NAME]=$S_HWM
            [ "$S_ANON" -gt "${anon[$S_NAME]:-0}" ] && anon[$S_NAME]=$S_ANON
            [ "$S_FILE" -gt "${file[$S_NAME]:-0}" ] && file[$S_NAME]=$S_FILE
        done
        sleep 0.02
    done
    for kid in "${!hwm[@]}"; do PEAK_KIDS+="$kid ${hwm[$kid]} ${anon[$kid]:-0} ${file[$kid]:-0}"$'\n'; done
    wait "$tpid"
}
# From a PEAK_KIDS list: field $3 (2 hwm, 3 anon, 4 file) of child $2, in MiB, or "-".
kid_mb() { awk -v n="$2" -v f="$3" '$1 == n {printf "%.1f", $f/1024; found=1} END {if (!found) printf "-"}' <<<"$1"; }
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port_open() { (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
gitc() { git -c user.name=bench -c user.email=bench@localhost -c init.defaultBranch=main "$@"; }

slipway() { "$BIN" --home "$HOME_DIR" "$@"; }

create_app() {
    local app=$1
    slipway apps create "$app" >"$WORK/create-$app.log" 2>&1 || { cat "$WORK/create-$app.log" >&2; die "apps create $app failed"; }
    CREATED_APPS+=("$app")
}

# The app's persistent filesystem: `slipway mount enable` when it exists, else by hand.
enable_mount() {
    local app=$1 dir=$HOME_DIR/apps/$1/mount
    if slipway mount enable "$app" >"$WORK/mount-$app.log" 2>&1; then
        MOUNT_HOW="slipway mount enable"
    else
        mkdir -p "$dir"
        [ "$IS_ROOT" = 1 ] && chown "slipway-$app:slipway-$app" "$dir"
        MOUNT_HOW="mkdir + chown (slipway mount enable: $(head -n1 "$WORK/mount-$app.log"))"
    fi
}

# ---------------------------------------------------------------------------------------------
# 1. Deploy time
# ---------------------------------------------------------------------------------------------
say "==> 1. deploy time: $N redeploys of seed-demo, slipway vs raw (plus one warm-up each)"
[ -d "$FIXTURE" ] || die "no fixture at $FIXTURE"
SRC=$WORK/seed-repo
mkdir -p "$SRC"
cp -R "$FIXTURE/." "$SRC/"
gitc -C "$SRC" init -q
gitc -C "$SRC" add -A
gitc -C "$SRC" commit -qm "seed-demo"
new_commit() { printf '%s\n' "$1" >"$SRC/BENCH_REV"; gitc -C "$SRC" add BENCH_REV; gitc -C "$SRC" commit -qm "bench $1"; }

APP=bench-dep-$$
create_app "$APP"
enable_mount "$APP"
say "    app $APP, mount via $MOUNT_HOW"

SLIP_US=() RAW_US=()
PHASE_JSONS=()
slipway_deploy() { # $1 = label; sets LAST_US
    local out=$WORK/deploy-$1.json err=$WORK/deploy-$1.err t0 t1
    t0=$(now_us)
    if ! slipway deploy "$APP" --repo "$SRC" --settle "${SETTLE_S}s" --json >"$out" 2>"$err"; then
        cat "$err" >&2; die "slipway deploy $APP failed"
    fi
    t1=$(now_us)
    LAST_US=$((t1 - t0))
    LAST_JSON=$out
}

# Raw: one folder per release under $RAW, the mount beside them at $RAW/mount (= ../mount).
RAW=$WORK/raw
mkdir -p "$RAW/mount"
PREV_DIR="" PREV_PIDS=()
R_EXTRACT=() R_PREDEPLOY=() R_START=() R_RETIRE=()
raw_deploy() { # $1 = label, $2 = port; sets LAST_US
    local dir=$RAW/rel-$1 port=$2 t0 t1 t2 t3 t4 web worker deadline pid
    t0=$(now_us)
    mkdir "$dir"
    git -C "$SRC" archive --format=tar HEAD | tar -x -C "$dir"
    t1=$(now_us)
    (cd "$dir" && PATH=$APP_PATH bash predeploy.sh) >>"$RAW/predeploy.log" 2>&1 || die "raw predeploy failed"
    t2=$(now_us)
    (cd "$dir" && PATH=$APP_PATH PORT=$port exec "$PY" app.py) >>"$RAW/web.log" 2>&1 &
    web=$!
    (cd "$dir" && PATH=$APP_PATH exec "$PY" worker.py) >>"$RAW/worker.log" 2>&1 &
    worker=$!
    RAW_PIDS+=("$web" "$worker")
    deadline=$(( $(now_us) + 60000000 ))
    # Like slipway's health gate: web answers GET / below 500, then nothing dies for the
    # settle period (slipway's default, src/plan.rs DEFAULT_SETTLE).
    until port_open "$port" && [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")" -lt 500 ] 2>/dev/null; do
        kill -0 "$web" 2>/dev/null || die "raw web process died; see $RAW/web.log"
        [ "$(now_us)" -lt "$deadline" ] || die "raw web did not answer on port $port within 60 s"
        sleep 0.01
    done
    sleep "$SETTLE_S"
    kill -0 "$web" 2>/dev/null && kill -0 "$worker" 2>/dev/null || die "a raw process died while settling"
    t3=$(now_us)
    # Retire the previous release, as slipway does: stop its processes, remove its folder.
    if [ -n "$PREV_DIR" ]; then
        for pid in "${PREV_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
        for pid in "${PREV_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
        rm -rf "$PREV_DIR"
    fi
    t4=$(now_us)
    PREV_DIR=$dir PREV_PIDS=("$web" "$worker")
    RAW_PIDS=("$web" "$worker")
    LAST_US=$((t4 - t0))
    R_EXTRACT+=($((t1 - t0))) R_PREDEPLOY+=($((t2 - t1))) R_START+=($((t3 - t2))) R_RETIRE+=($((t4 - t3)))
}

# Warm-up (not measured), so that every measured deploy is a redeploy that retires a release.
new_commit warmup
slipway_deploy warmup
raw_deploy warmup "$(free_port)"
R_EXTRACT=() R_PREDEPLOY=() R_START=() R_RETIRE=()

for i in $(seq 1 "$N"); do
    new_commit "$i"
    port=$(free_port) # chosen outside the timing; slipway picks its own port inside
    slipway_deploy "$i"; SLIP_US+=("$LAST_US"); PHASE_JSONS+=("$LAST_JSON")
    raw_deploy "$i" "$port"; RAW_US+=("$LAST_US")
    say "    run $i: slipway $(ms "${SLIP_US[-1]}") ms, raw $(ms "${RAW_US[-1]}") ms"
done

# Sanity: slipway's current release is the last commit and its web serves the mount's data.
ps_json=$(slipway ps "$APP" --json)
web_port=$("$PY" -c 'import json,sys; d=json.load(sys.stdin); print(next((i["port"] for i in d["instances"] if i.get("ptype")=="web" and i.get("port")), ""))' <<<"$ps_json")
[ -n "$web_port" ] || die "slipway ps $APP --json shows no web port: $ps_json"
web_check="web on port $web_port answered: $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$web_port/" || echo failed)"
lines=$(wc -l <"$HOME_DIR/apps/$APP/mount/data.csv" 2>/dev/null || echo 0)

SLIP_MED=$(median "${SLIP_US[@]}")
RAW_MED=$(median "${RAW_US[@]}")
RATIO=$(awk -v a="$SLIP_MED" -v b="$RAW_MED" 'BEGIN {printf "%.2f", a/b}')
VERDICT=$(awk -v r="$RATIO" 'BEGIN {print (r <= 1.2 ? "MET" : "NOT MET")}')

# Slipway's own phases (from --json), medians, beside the matching raw step.
PHASES=$("$PY" - "${SLIP_US[@]}" -- "${PHASE_JSONS[@]}" <<'EOF'
import json, re, statistics, sys
args = sys.argv[1:]
sep = args.index("--")
walls, files = [int(x) for x in args[:sep]], args[sep + 1:]
by = {}
other = []
for wall, f in zip(walls, files):
    phases = json.load(open(f))["phases"]
    for p in phases:
        name = re.sub(r"\bv\d+\b", "vN", p["name"])
        name = re.sub(r"\b[0-9a-f]{7,40}\b", "SHA", name)
        by.setdefault(name, []).append(p["millis"] * 1000)
    other.append(wall - sum(p["millis"] * 1000 for p in phases))
for name, v in by.items():
    print(f"{name}\t{statistics.median(v)}")
print(f"outside phases *\t{statistics.median(other)}")
EOF
)

raw_for_phase() {
    case "$1" in
        Building*) ms "$(median "${R_EXTRACT[@]}")" ;;
        "Running predeploy"*) ms "$(median "${R_PREDEPLOY[@]}")" ;;
        Starting*) ms "$(median "${R_START[@]}")" ;;
        Retiring*) ms "$(median "${R_RETIRE[@]}")" ;;
        *) printf -- '-' ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# 2. Memory
# ---------------------------------------------------------------------------------------------
MEM_DONE=0
if [ "${BENCH_SKIP_MEM:-0}" != 1 ]; then
    say "==> 2. memory: deploy of a repository of $MEM_FILES x $MEM_FILE_MB MiB random files"
    GNU_TIME=/usr/bin/time
    if ! "$GNU_TIME" -f %M true >/dev/null 2>&1; then
        say "bench: GNU time (/usr/bin/time) is missing; install it with: apt-get install -y time"
        if [ "$IS_ROOT" = 1 ] && command -v apt-get >/dev/null; then
            say "    trying apt-get install -y time"
            { apt-get install -y time || { apt-get update && apt-get install -y time; }; } >"$WORK/apt.log" 2>&1 || true
        fi
    fi
    total_mb=$((MEM_FILES * MEM_FILE_MB))
    need_kb=$((total_mb * 1024 * 4 + 512 * 1024)) # work tree, objects, raw extract, release
    avail_kb=$(df -Pk "$WORK" | awk 'NR==2 {print $4}')
    say "    df: $((avail_kb / 1024)) MiB free on $(df -P "$WORK" | awk 'NR==2 {print $6}'), need ~$((need_kb / 1024)) MiB"
    if ! "$GNU_TIME" -f %M true >/dev/null 2>&1; then
        MEM_SKIP_WHY="GNU time still missing (apt-get install -y time)"
    elif [ "$avail_kb" -lt "$need_kb" ]; then
        MEM_SKIP_WHY="only $((avail_kb / 1024)) MiB free in $WORK, need ~$((need_kb / 1024)) MiB (set BENCH_TMPDIR)"
    else
        BIG=$WORK/big-repo
        mkdir -p "$BIG"
        gitc -C "$BIG" init -q
        t0=$(now_us)
        for i in $(seq -w 1 "$MEM_FILES"); do
            head -c "${MEM_FILE_MB}M" /dev/urandom >"$BIG/blob-$i.bin"
        done
        printf 'web: python3 -m http.server --bind 127.0.0.1 $PORT\n' >"$BIG/Procfile"
        # Random data does not compress: store it as is, streamed into packs, to save minutes.
        gitc -C "$BIG" -c core.compression=0 -c core.bigFileThreshold=1m add -A
        gitc -C "$BIG" commit -qm "big"
        say "    made $(du -sh "$BIG/.git" | cut -f1) of git objects in $(ms $(( $(now_us) - t0 ))) ms"

        # Both sides run under GNU time, whose %M is the max over the process and the children
        # it waited for. Meanwhile /proc is sampled every 20 ms for the process itself (VmHWM:
        # exact, it is a high-water mark) and for its children (git archive, tar), whose peak
        # is split into anonymous memory (RssAnon) and mapped files (RssFile, e.g. git's mmap of
        # the pack, page cache that the kernel can drop), largest values seen.
        # Baseline: the raw extraction, `bash -c 'git archive | tar -x'`.
        RAWX=$WORK/raw-extract
        mkdir -p "$RAWX"
        sync # flush the repo just written, so that its writeback does not land in a measurement
        t0=$(now_us)
        "$GNU_TIME" -f %M -o "$WORK/raw.rss" bash -c 'git -C "$1" archive --format=tar HEAD | tar -x -C "$2"' \
            bash "$BIG" "$RAWX" &
        measure "$!" || die "raw git archive | tar -x failed"
        RAW_BIG_US=$(( $(now_us) - t0 ))
        RAW_KB=$(tail -n1 "$WORK/raw.rss")
        RAW_SELF_KB=$PEAK_SELF_KB RAW_KIDS=$PEAK_KIDS
        rm -rf "$RAWX"

        BIGAPP=bench-mem-$$
        create_app "$BIGAPP"
        sync
        t0=$(now_us)
        "$GNU_TIME" -f %M -o "$WORK/slipway.rss" "$BIN" --home "$HOME_DIR" deploy "$BIGAPP" --repo "$BIG" --json \
            >"$WORK/deploy-big.json" 2>"$WORK/deploy-big.err" &
        if ! measure "$!"; then cat "$WORK/deploy-big.err" >&2; die "slipway deploy $BIGAPP failed"; fi
        SLIP_BIG_US=$(( $(now_us) - t0 ))
        SLIP_KB=$(tail -n1 "$WORK/slipway.rss")
        SLIP_HWM_KB=$PEAK_SELF_KB SLIP_KIDS=$PEAK_KIDS
        BIG_PHASES=$("$PY" - "$WORK/deploy-big.json" <<'PYEOF'
import json, sys
print(", ".join(f"{p['name']} {p['millis']} ms" for p in json.load(open(sys.argv[1]))["phases"]))
PYEOF
)
        MEM_DONE=1
    fi
else
    MEM_SKIP_WHY="BENCH_SKIP_MEM=1"
fi

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k/1024}'; }
echo
echo "slipway deploy benchmark  ($(date -u +%FT%TZ), $(uname -sr), $(nproc) CPUs, $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo
echo "1. Deploy time: seed-demo (web + worker + predeploy), median of $N redeploys, each of a new commit"
printf '   %-38s %12s %12s %10s %10s\n' "" "slipway" "raw" "ratio" "goal"
printf '   %-38s %9s ms %9s ms %9sx %10s  %s\n' "end to end (wall clock)" "$(ms "$SLIP_MED")" "$(ms "$RAW_MED")" "$RATIO" "<= 1.2x" "$VERDICT"
printf '   %-38s %12s %12s\n' "   all runs (ms)" "" ""
for i in $(seq 0 $((N - 1))); do
    printf '   %-38s %12s %12s\n' "     run $((i + 1))" "$(ms "${SLIP_US[$i]}")" "$(ms "${RAW_US[$i]}")"
done
echo "   breakdown, median ms (slipway phases from deploy --json; raw steps timed in this script):"
while IFS=$'\t' read -r name us; do
    [ -n "$name" ] || continue
    printf '   %-38s %12s %12s\n' "  $name" "$(ms "$us")" "$(raw_for_phase "$name")"
done <<<"$PHASES"
echo "   * outside phases = wall clock - sum of phases: process start, reconcile, lock, git rev-parse/"
echo "     cat-file, state files, exit."
echo "   raw = git archive | tar -x; bash predeploy.sh; $PY app.py & worker.py &; poll GET / every 10 ms until it answers below 500, then wait the ${SETTLE_S} s settle period and check both still run;"
echo "         then TERM + wait the previous release's processes and rm -rf its folder (as root)."
echo "   check: $web_check; mount/data.csv has $lines lines; mount via $MOUNT_HOW"
echo
echo "2. Memory: deploy of $MEM_FILES x $MEM_FILE_MB MiB = $((MEM_FILES * MEM_FILE_MB)) MiB of random files (one commit)"
if [ "$MEM_DONE" = 1 ]; then
    verdict() { awk -v k="$1" 'BEGIN {print (k/1024 < 50 ? "MET" : "NOT MET")}'; }
    row() { printf '   %-50s %10s %14s %9s  %s\n' "$@"; }
    row "peak RSS (MiB)" "slipway" "raw baseline" "goal" ""
    row "the deploying process itself (VmHWM)" "$(mb "$SLIP_HWM_KB")" "$(mb "$RAW_SELF_KB")" "< 50 MB" "$(verdict "$SLIP_HWM_KB")"
    row "with waited children (GNU time %M)" "$(mb "$SLIP_KB")" "$(mb "$RAW_KB")" "< 50 MB" "$(verdict "$SLIP_KB")"
    row "  git archive child, peak RSS (sampled)" "$(kid_mb "$SLIP_KIDS" git 2)" "$(kid_mb "$RAW_KIDS" git 2)" "" ""
    row "    of which anonymous (RssAnon)" "$(kid_mb "$SLIP_KIDS" git 3)" "$(kid_mb "$RAW_KIDS" git 3)" "" ""
    row "    of which mapped files (RssFile: pack mmap)" "$(kid_mb "$SLIP_KIDS" git 4)" "$(kid_mb "$RAW_KIDS" git 4)" "" ""
    row "  tar -x child, peak RSS (sampled)" "$(kid_mb "$SLIP_KIDS" tar 2)" "$(kid_mb "$RAW_KIDS" tar 2)" "" ""
    row "wall clock (s)" "$(awk -v u="$SLIP_BIG_US" 'BEGIN {printf "%.2f", u/1e6}')" "$(awk -v u="$RAW_BIG_US" 'BEGIN {printf "%.2f", u/1e6}')" "" ""
    echo "   deploying process: slipway deploy / the bash running the raw pipeline. slipway extracts with"
    echo "   the tar crate in-process, so it has no tar child. The detached supervisor is not counted."
    echo "   slipway phases: $BIG_PHASES"
    echo "   (children sampled every 20 ms: their figures may miss a short peak; VmHWM and %M are exact.)"
else
    echo "   skipped: $MEM_SKIP_WHY"
fi
echo

