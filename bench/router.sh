#!/usr/bin/env bash
# The app's router beside its baselines, in one run:
#  1. added latency per request against a direct connection to web (fixtures/apps/router-probe,
#     an HTTP/1.1 server), on new connections and on one kept-alive connection, for slipway's
#     router and for nginx from Debian's package configured as Dokku configures it (upstream
#     with keepalive, proxy_http_version 1.1, X-Forwarded-*), both in front of the same web;
#     and the peak memory of each;
#  2. throughput across 3 web instances against 1, with a single-threaded web that waits 50 ms
#     per request (fixtures/apps/router-scale with WEB_THREADS=1), 12 clients at once
#     (goal: >= 2.5x);
#  3. p99 latency of a normal client, idle and during 8 uploads at 1 byte/s (goal: within 2x).
# Needs root for apt-get when nginx is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
if ! command -v nginx >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
bin=$PWD/target/release/slipway
work=$(mktemp -d "${TMPDIR:-/tmp}/slipway-bench.XXXXXX")
home=$work/home
chmod 0711 "$work" # the app's own user must pass through to its tree
app=bench-route-$$
scaled=bench-scale-$$
sw() { "$bin" --home "$home" "$@"; }
nginx_pid=
cleanup() {
    [[ -n $nginx_pid ]] && kill "$nginx_pid" 2>/dev/null || true
    sw apps destroy "$app" --confirm "$app" >/dev/null 2>&1 || true
    sw apps destroy "$scaled" --confirm "$scaled" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
router_port() { sw apps info "$1" | sed -n 's/^url: *http:\/\/[^:]*:\([0-9]*\)\/$/\1/p'; }
peak_kb() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status"; }

sw apps create "$app" >/dev/null 2>&1
sw mount enable "$app" --size 64M >/dev/null 2>&1
sw deploy "$app" --repo fixtures/apps/router-probe >/dev/null 2>&1
router=$(router_port "$app")
web=$(sw ps "$app" --json | python3 -c 'import json,sys; print(next(i["port"] for i in json.load(sys.stdin)["instances"] if i["port"]))')
nginx_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# nginx as Dokku's nginx.conf.sigil sets up an app: an upstream of web's listeners (with
# keepalive, as the issue asks), HTTP/1.1 to it, and the forwarding headers. One worker, as
# slipway's router is one thread.
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    upstream app-web { server 127.0.0.1:$web; keepalive 16; }
    server {
        listen 127.0.0.1:$nginx_port;
        location / {
            proxy_pass http://app-web;
            proxy_http_version 1.1;
            proxy_read_timeout 60s;
            proxy_buffer_size 4k;
            proxy_buffers 8 4k;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$http_connection;
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_set_header X-Forwarded-Port \$server_port;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Request-Start \$msec;
        }
    }
}
NGINX
"$nginx_bin" -p "$work/nginx" -c "$work/nginx/nginx.conf" &
nginx_pid=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$nginx_port/" >/dev/null && break; sleep 0.1; done

n=${N:-2000}
echo "== 1. added latency per request ($n requests per path and mode; $("$nginx_bin" -v 2>&1))"
python3 - "$web" "$router" "$nginx_port" "$n" <<'PY'
import http.client, statistics, sys, time
web, router, nginx, n = (int(a) for a in sys.argv[1:5])
def run(port, keep_alive):
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
ms = lambda x: f"{x * 1e3:10.3f}"
for keep_alive, title in [(False, "new connection per request"), (True, "one kept-alive connection")]:
    for p in (web, router, nginx):
        run(p, keep_alive)  # warm
    # Alternate the paths in halves so drift on a shared machine hits all alike.
    d, r, g = [], [], []
    for _ in range(2):
        d += run(web, keep_alive); r += run(router, keep_alive); g += run(nginx, keep_alive)
    md, mr, mg = (statistics.median(x) for x in (d, r, g))
    print(f"\n{title:30} {'direct':>10} {'slipway':>10} {'nginx':>10} {'+slipway':>10} {'+nginx':>10}")
    print(f"{'median (ms)':30} {ms(md)} {ms(mr)} {ms(mg)} {ms(mr - md)} {ms(mg - md)}")
    print(f"{'p99 (ms)':30} {ms(p99(d))} {ms(p99(r))} {ms(p99(g))} {ms(p99(r) - p99(d))} {ms(p99(g) - p99(d))}")
PY
router_pid=$(cat "$home/state/$app/router.pid")
nginx_kb=0
for p in $nginx_pid $(pgrep -P "$nginx_pid" || true); do nginx_kb=$((nginx_kb + $(peak_kb "$p"))); done
printf '\n%-30s %10s %10s\n' "peak RSS (VmHWM)" "slipway" "nginx"
printf '%-30s %10s %10s\n' "" "$(awk -v k="$(peak_kb "$router_pid")" 'BEGIN { printf "%.1f MB", k / 1024 }')" \
    "$(awk -v k="$nginx_kb" 'BEGIN { printf "%.1f MB", k / 1024 }')"
echo "(nginx: master and worker together; slipway: the router process)"

sw apps create "$scaled" >/dev/null 2>&1
sw config set "$scaled" WEB_THREADS=1 >/dev/null 2>&1
sw deploy "$scaled" --repo fixtures/apps/router-scale >/dev/null 2>&1
scaled_port=$(router_port "$scaled")
wait_up() {
    for _ in $(seq 100); do
        up=$(sw ps "$scaled" --json | python3 -c 'import json,sys; print(sum(1 for i in json.load(sys.stdin)["instances"] if i["ptype"]=="web" and i["state"]=="up"))')
        [[ $up == "$1" ]] && return
        sleep 0.2
    done
}
throughput() {
    python3 - "$scaled_port" <<'PY'
import http.client, sys, threading, time
port, clients, secs = int(sys.argv[1]), 12, 5.0
done = [0]
stop = time.perf_counter() + secs
def client():
    while time.perf_counter() < stop:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/wait"); r = c.getresponse(); r.read(); c.close()
        if r.status == 200:
            done[0] += 1
ts = [threading.Thread(target=client) for _ in range(clients)]
[t.start() for t in ts]; [t.join() for t in ts]
print(f"{done[0] / secs:.1f}")
PY
}
echo
echo "== 2. throughput, single-threaded web waiting 50 ms per request, 12 clients, 5 s"
one=$(throughput)
sw ps scale "$scaled" web=3 >/dev/null 2>&1
wait_up 3
sleep 1
three=$(throughput)
printf '%-30s %10s %10s %10s\n' "requests/s" "web=1" "web=3" "ratio"
printf '%-30s %10s %10s %10s\n' "" "$one" "$three" "$(awk -v a="$one" -v b="$three" 'BEGIN { printf "%.2fx", b / a }')"
echo "(goal: >= 2.5x)"

echo
echo "== 3. a normal client's latency, idle and during 8 uploads at 1 byte/s (web=3, single-threaded)"
python3 - "$scaled_port" <<'PY'
import http.client, socket, sys, threading, time
port = int(sys.argv[1])
def normal(secs=5.0):
    times, stop = [], time.perf_counter() + secs
    while time.perf_counter() < stop:
        t = time.perf_counter()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", "/"); r = c.getresponse(); r.read(); c.close()
        assert r.status == 200, r.status
        times.append(time.perf_counter() - t)
        time.sleep(0.02)
    return sorted(times)
p99 = lambda xs: xs[int(len(xs) * 0.99)]
idle = normal()
halt = threading.Event()
def slow_upload():
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
    while not halt.wait(1.0):
        try:
            s.sendall(b"x")
        except OSError:
            return
    s.close()
ups = [threading.Thread(target=slow_upload) for _ in range(8)]
[u.start() for u in ups]
time.sleep(0.5)
busy = normal()
halt.set(); [u.join() for u in ups]
print(f"{'':30} {'idle':>10} {'uploads':>10} {'ratio':>10}")
print(f"{'p99 (ms)':30} {p99(idle)*1e3:10.3f} {p99(busy)*1e3:10.3f} {p99(busy)/p99(idle):9.2f}x")
print(f"{'requests':30} {len(idle):10d} {len(busy):10d}")
print("(goal: within 2x)")
PY
