#!/usr/bin/env bash
# Docker runtime benchmark: slipway's deploy of the Dockerfile fixture beside a raw
# `docker build` + `docker run` of the same Dockerfile, in one run, side by side.
#
# Goals (issue 4): deploy time <= 1.1x raw; a redeploy with unchanged dependencies >= 3x
# faster than the cold build; peak RSS < 64 MB with a 1 GiB build context.
#
# Both sides build the same committed tree: fixtures/apps/docker-deps, which installs its
# dependencies (requirements.txt) in a slow RUN step before `COPY . .`, as real apps do. A nonce
# step after FROM makes the cold builds really cold for both (the engine's layer cache is
# shared); the warm run changes only index.html, so the dependency step comes from the cache. Needs: the stack image
# (`slipway stack import`), git, curl, GNU time (/usr/bin/time) for the memory figure.
set -euo pipefail

# The engine here is 20.10 without buildx: ask for the legacy builder rather than be warned.
export DOCKER_BUILDKIT=0

root=$(cd "$(dirname "$0")/.." && pwd)
slipway=${SLIPWAY:-$root/target/release/slipway}
fixture=$root/fixtures/apps/docker-deps
work=$(mktemp -d)
tag=slipway-bench/raw:$$
name=slipway-bench-raw-$$
home=$work/home
app=bench$$
big_app=benchbig$$
sw() { "$slipway" --home "$home" "$@"; }
cleanup() {
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker rmi -f "$tag" "$tag-cold" >/dev/null 2>&1 || true
  for a in "$app" "$big_app"; do sw apps destroy "$a" --confirm "$a" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
[[ -x $slipway ]] || { echo "build slipway first: cargo build --release (or set SLIPWAY=path)" >&2; exit 1; }

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# The fixture as a committed repo, as slipway sees it.
repo=$work/repo
cp -a "$fixture/." "$repo"
sed -i "/^FROM /a RUN echo bench-nonce-$$-$(date +%s%N)" "$repo/Dockerfile"
git -C "$repo" init -q
git -C "$repo" -c user.name=bench -c user.email=bench@example.com add -A
git -C "$repo" -c user.name=bench -c user.email=bench@example.com commit -qm bench

wait_http() { # port
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$1/" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing answered on 127.0.0.1:$1" >&2
  return 1
}

# Raw: build from the same committed tree (git archive, as slipway streams it), run, and wait
# until the web process answers: the same finish line as a deploy's switch.
raw_deploy() { # extra docker build flags...
  local t0 t1
  t0=$(now)
  git -C "$repo" archive --format=tar HEAD | docker build -q -t "$tag" "$@" - >/dev/null
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker run -d --name "$name" -e PORT=5000 -p 127.0.0.1::5000 "$tag" >/dev/null
  wait_http "$(docker port "$name" 5000/tcp | head -1 | sed 's/.*://')"
  t1=$(now)
  elapsed "$t0" "$t1"
}

# slipway: `slipway deploy` returns once the new web answers (the switch), so time it whole.
slipway_deploy() {
  local t0 t1
  t0=$(now)
  sw deploy "$app" --repo "$repo" >/dev/null 2>&1
  t1=$(now)
  elapsed "$t0" "$t1"
}

# A new commit that changes no dependency: only the served page.
touch_page() {
  echo "edit $(date +%s%N)" >>"$repo/index.html"
  git -C "$repo" -c user.name=bench -c user.email=bench@example.com commit -qam edit
}

docker image inspect slipway/stack:bookworm >/dev/null 2>&1 || {
  echo "the stack image is missing: run \`slipway stack import\` first" >&2
  exit 1
}

sw apps create "$app" --runtime docker >/dev/null 2>&1
# slipway first: its cold build must not find the nonce layer cached by the raw build.
sw_cold=$(slipway_deploy)
raw_cold=$(raw_deploy --no-cache)
# Each side gets its own edit: the engine's layer cache is shared, and a tree one side has
# built would be a full cache hit for the other.
touch_page
sw_warm=$(slipway_deploy)
touch_page
raw_warm=$(raw_deploy)

# Memory: a 1 GiB build context streamed from git archive.
big=$work/big
mkdir -p "$big"
printf 'FROM slipway/stack:bookworm\nCOPY big.bin /tmp/big.bin\nCMD ["sleep", "infinity"]\n' >"$big/Dockerfile"
printf 'worker: sleep infinity\n' >"$big/Procfile"
head -c 1G /dev/urandom >"$big/big.bin"
git -C "$big" init -q
git -C "$big" -c user.name=b -c user.email=b@e add -A
git -C "$big" -c user.name=b -c user.email=b@e commit -qm big
raw_rss="n/a"
sw_rss="n/a"
if [[ -x /usr/bin/time ]]; then
  raw_rss=$( { /usr/bin/time -f '%M' bash -c "git -C '$big' archive --format=tar HEAD | docker build -q -t '$tag-big' - >/dev/null" ; } 2>&1 | tail -1)
  raw_rss="$((raw_rss / 1024)) MB"
  docker rmi -f "$tag-big" >/dev/null 2>&1 || true
  sw apps create "$big_app" --runtime docker >/dev/null 2>&1
  # time(1) reports the largest process of the tree, which is `git archive` (git holds each
  # blob whole); slipway's own peak comes from its VmHWM, sampled until it exits.
  /usr/bin/time -o "$work/sw-rss" -f '%M' "$slipway" --home "$home" deploy "$big_app" --repo "$big" >/dev/null 2>&1 &
  sleep 0.2
  sw_pid=$(pgrep -n -f -- "--home $home deploy $big_app") || true
  hwm=0
  while [[ -n $sw_pid ]] && [[ -r /proc/$sw_pid/status ]]; do
    h=$(awk '/^VmHWM/ { print $2 }' "/proc/$sw_pid/status" 2>/dev/null) || true
    [[ -n $h ]] && hwm=$h
    sleep 0.2
  done
  wait
  sw_rss="$((hwm / 1024)) MB (tree $(($(tail -1 "$work/sw-rss") / 1024)) MB)"
  sw apps destroy "$big_app" --confirm "$big_app" >/dev/null 2>&1 || true
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
printf '%-34s %12s %12s %10s\n' "" "raw docker" "slipway" "slipway/raw"
printf '%-34s %12s %12s %10s\n' "deploy, cold (no cache)" "${raw_cold}s" "${sw_cold}s" "$(ratio "$sw_cold" "$raw_cold")"
printf '%-34s %12s %12s %10s\n' "redeploy, unchanged deps (cache)" "${raw_warm}s" "${sw_warm}s" "$(ratio "$sw_warm" "$raw_warm")"
printf '%-34s %12s %12s\n' "cache speed-up (cold / warm)" "$(ratio "$raw_cold" "$raw_warm")" "$(ratio "$sw_cold" "$sw_warm")"
printf '%-34s %12s %s\n' "peak RSS, 1 GiB context (client)" "$raw_rss" "$sw_rss"
