#!/usr/bin/env bash
# The app's router beside a direct connection to the release's web port, in one run:
# sequential requests through each path to the same web process (fixtures/apps/router-probe,
# an HTTP/1.1 server), first a new connection each (as a client without keep-alive), then all
# on one kept-alive connection (as a browser), and the router's peak RSS.
# Goal (ours): the router adds well under a millisecond per request.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release/slipway
work=$(mktemp -d "${TMPDIR:-/tmp}/slipway-bench.XXXXXX")
home=$work/home
chmod 0711 "$work" # the app's own user must pass through to its tree
app=bench-route-$$
sw() { "$bin" --home "$home" "$@"; }
cleanup() { sw apps destroy "$app" --confirm "$app" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
sw apps create "$app" >/dev/null 2>&1
sw mount enable "$app" --size 64M >/dev/null 2>&1
sw deploy "$app" --repo fixtures/apps/router-probe >/dev/null 2>&1
router=$(sw apps info "$app" | sed -n 's/^url: *http:\/\/[^:]*:\([0-9]*\)\/$/\1/p')
web=$(sw ps "$app" --json | python3 -c 'import json,sys; print(next(i["port"] for i in json.load(sys.stdin)["instances"] if i["port"]))')
n=${N:-2000}
python3 - "$web" "$router" "$n" <<'PY'
import http.client, statistics, sys, time
web, router, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def run(port, keep_alive=False):
    times = []
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for _ in range(n):
        t = time.perf_counter()
        if not keep_alive:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/")
        r = c.getresponse(); r.read()
        if not keep_alive:
            c.close()
        assert r.status == 200, r.status
        times.append(time.perf_counter() - t)
    c.close()
    return times
p99 = lambda xs: sorted(xs)[int(len(xs) * 0.99)]
for keep_alive, title in [(False, "per request (new connection)"), (True, "per request (one kept-alive connection)")]:
    run(web, keep_alive); run(router, keep_alive)  # warm both
    # Alternate the two paths in halves so drift on a shared machine hits both alike.
    d, r = [], []
    for _ in range(2):
        d += run(web, keep_alive); r += run(router, keep_alive)
    md, mr = statistics.median(d), statistics.median(r)
    print(f"\n{title:42} {'direct':>10} {'router':>10} {'added':>10}")
    print(f"{'median (ms)':42} {md*1e3:10.3f} {mr*1e3:10.3f} {(mr-md)*1e3:10.3f}")
    print(f"{'p99 (ms)':42} {p99(d)*1e3:10.3f} {p99(r)*1e3:10.3f} {(p99(r)-p99(d))*1e3:10.3f}")
    print(f"{'requests per path':42} {len(d):10d} {len(r):10d}")
PY
pid=$(cat "$home/state/$app/router.pid")
printf '%-42s %10s\n' "router peak RSS (VmHWM)" "$(awk '/^VmHWM/ { printf "%.1f MB", $2 / 1024 }' "/proc/$pid/status")"
