#!/usr/bin/env bash
# Swarm runtime benchmark: slipway deploys of the seed demo on a three-node docker-in-docker
# swarm (fixtures/swarm/cluster.sh), beside the same release images rolled out by hand with
# `docker service create`/`update` in the same run.
#
# The hand-run does what an operator would for the same app: push the image, run predeploy as
# a replicated job with the shared mount, then update web and worker start-first and wait for
# convergence (`--detach=false`). Both roll out the images slipway built, so the build is left
# out of slipway's figure (its `build` phase, from `releases --json`, is subtracted); slipway's
# extra work, the proof that the mount is shared, stays in, and is also printed on its own.
#
# Both sides start from the same nodes: the stack image is preloaded on every node
# (SLIPWAY_SWARM_PRELOAD), and the first deploy, not measured, warms each side's caches.
#
# Goal (issue 10): a redeploy within 1.2x the hand-run. Needs root, the stack image
# (`slipway stack import`), debootstrap (the node image, built once), curl.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
slipway=${SLIPWAY:-$root/target/release/slipway}
[[ -x $slipway ]] || { echo "build slipway first: cargo build --release (or set SLIPWAY=path)" >&2; exit 1; }
runs=${RUNS:-3}
name=slipway-bench-swarm-$$
work=$(mktemp -d)
chmod 755 "$work"  # app users must reach their apps below the home
shared=$work/shared
home=$work/home
app=swbench$$
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
reg=127.0.0.1:$port
sw() { "$slipway" --home "$home" "$@"; }
reuse=${SLIPWAY_SWARM_REUSE:-}  # a cluster left up by `cluster.sh up NAME ...`, kept afterwards
[[ -n $reuse ]] && name=$reuse
cleanup() {
  sw apps destroy "$app" --confirm "$app" >/dev/null 2>&1 || true
  [[ -n $reuse ]] && { "${M[@]}" service rm "raw-$app-web" "raw-$app-worker" >/dev/null 2>&1 || true; }
  [[ -n $reuse ]] || "$root/fixtures/swarm/cluster.sh" down "$name"
  docker images --format '{{.Repository}}:{{.Tag}}' | grep "^$reg/" | xargs -r docker rmi >/dev/null 2>&1 || true
  [[ -n $reuse ]] && rm -rf "${shared:?}/$app" "${shared:?}/raw"
  rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

M=(false)
if [[ -n $reuse ]]; then
  out=$("$root/fixtures/swarm/cluster.sh" info "$name")
  port=$(sed -n 's/^registry=//p' <<<"$out"); reg=127.0.0.1:$port
  shared=$(sed -n 's/^shared=//p' <<<"$out")
else
  out=$(SLIPWAY_SWARM_PRELOAD=slipway/stack:bookworm "$root/fixtures/swarm/cluster.sh" up "$name" "$port" "$shared")
fi
mkdir -p "$shared/$app" "$shared/raw"
mip=$(sed -n 's/^manager=//p' <<<"$out")
M=(docker -H "tcp://$mip:2375")

repo=$work/repo
cp -r "$root/fixtures/apps/seed-demo" "$repo"
sed -i 's/("127.0.0.1", port)/("0.0.0.0", port)/' "$repo/app.py"
git -C "$repo" init -q -b main
commit() { git -C "$repo" add -A && git -C "$repo" -c user.name=b -c user.email=b@b commit -qm "$1"; }
commit initial

sw cluster set --registry "$reg" --docker-host "tcp://$mip:2375" 2>/dev/null
sw apps create "$app" --runtime swarm >/dev/null 2>&1
sw mount enable "$app" --mount-path "/srv/slipway-shared/$app" 2>/dev/null
echo "first deploy (cold: stack push, pulls on every node; not measured)" >&2
sw deploy "$app" --repo "$repo" >/dev/null 2>&1

# The hand-run's services, on the first image, with the same mount and ports.
img() { echo "$reg/raw/$app:$1"; }
push() { docker tag "slipway/$app:$1" "$(img "$1")" && docker push -q "$(img "$1")" >/dev/null; }
mnt=(--mount "type=bind,source=/srv/slipway-shared/raw,target=/mount")
common=(--user 1000:1000 --workdir /workspace --env HOME=/home/slipway --restart-condition any "${mnt[@]}")
chown 1000:1000 "$shared/raw"
push v1
"${M[@]}" service create -q --detach=false --name "raw-$app-web" --replicas 2 "${common[@]}" --env PORT=5000 \
  --publish mode=host,published=$((port % 2000 + 32000)),target=5000 --update-order start-first "$(img v1)" web >/dev/null
"${M[@]}" service create -q --detach=false --name "raw-$app-worker" "${common[@]}" --update-order start-first "$(img v1)" worker >/dev/null

total_sw=0; total_raw=0; total_check=0
for i in $(seq 2 $((runs + 1))); do
  echo "deploy $i" >"$repo/deploy.txt"; commit "deploy $i"
  t0=$(now); sw deploy "$app" --repo "$repo" --json >"$work/out.json" 2>/dev/null; t1=$(now)
  build=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sum(p["millis"] for p in d["phases"] if p["name"].startswith("Building"))/1000)' "$work/out.json")
  check=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sum(p["millis"] for p in d["phases"] if p["name"].startswith("Attaching"))/1000)' "$work/out.json")
  s=$(awk -v e="$(elapsed "$t0" "$t1")" -v b="$build" 'BEGIN { printf "%.2f", e - b }')
  v=v$i
  t2=$(now)
  push "$v"
  "${M[@]}" service create -q --detach=false --name "raw-$app-predeploy-$i" --mode replicated-job "${common[@]/any/none}" "$(img "$v")" bash predeploy.sh >/dev/null
  "${M[@]}" service rm "raw-$app-predeploy-$i" >/dev/null
  "${M[@]}" service update -q --detach=false --image "$(img "$v")" "raw-$app-web" >/dev/null
  "${M[@]}" service update -q --detach=false --image "$(img "$v")" "raw-$app-worker" >/dev/null
  t3=$(now)
  r=$(elapsed "$t2" "$t3")
  printf 'redeploy %d: slipway %6.2f s (build %.2f s left out; mount proof %.2f s)   by hand %6.2f s\n' "$i" "$s" "$build" "$check" "$r"
  total_sw=$(awk -v a="$total_sw" -v b="$s" 'BEGIN { print a + b }')
  total_raw=$(awk -v a="$total_raw" -v b="$r" 'BEGIN { print a + b }')
  total_check=$(awk -v a="$total_check" -v b="$check" 'BEGIN { print a + b }')
done
"${M[@]}" service rm "raw-$app-web" "raw-$app-worker" >/dev/null
awk -v s="$total_sw" -v r="$total_raw" -v c="$total_check" -v n="$runs" 'BEGIN {
  printf "mean redeploy: slipway %.2f s, by hand %.2f s: %.2fx (goal <= 1.2x); without the mount proof %.2fx\n",
    s / n, r / n, s / r, (s - c) / r }'
