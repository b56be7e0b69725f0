#!/usr/bin/env bash
# Heap allocations per probe request (issue 22: <= 30): `clarity serve` runs
# under tests/fault/malloc_fail.c (counting only: no MALLOC_FAIL_EVERY) twice, once serving N keep-alive GET /liveness
# and once idle for as long, and the difference is divided by N.
set -euo pipefail
bin=$(realpath "${1:?usage: bench/http_allocs.sh PATH/TO/clarity [PATH/TO/libmalloc_fail.so]}")
lib=$(realpath "${2:-$(dirname "$bin")/libmalloc_fail.so}")
n=${ALLOC_REQUESTS:-20000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

run() { # requests -> allocation count
    local reqs=$1 secs=$2
    : >"$tmp/log"
    (cd "$tmp" && PORT=0 HOST=127.0.0.1 DATABASE_URL="sqlite:$tmp/a.db" WORKER_THREADS=0 HTTP_THREADS=1 \
        LD_PRELOAD="$lib" MALLOC_COUNT_FILE="$tmp/count" exec "$bin" serve 2>"$tmp/log") &
    local pid=$!
    local port=""
    for _ in $(seq 400); do
        port=$(sed -n 's/.*"message":"listening".*"port":\([0-9]*\).*/\1/p' "$tmp/log" | head -n 1)
        [ -n "$port" ] && break
        sleep 0.05
    done
    python3 - "$port" "$reqs" "$secs" <<'PY'
import http.client, sys, time
port, n, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
t0 = time.monotonic()
c = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(n):
    c.request("GET", "/liveness")
    c.getresponse().read()
c.close()
left = secs - (time.monotonic() - t0)
if left > 0:
    time.sleep(left)
PY
    kill -TERM "$pid"
    wait "$pid" || true
    cat "$tmp/count"
}
t0=$(date +%s.%N)
busy=$(run "$n" 0)
secs=$(python3 -c "import time; print(time.time() - $t0)")
idle=$(run 0 "$secs")
python3 -c "
busy, idle, n = $busy, $idle, $n
print('allocations per GET /liveness: %.1f  (busy %d, idle %d, %d requests)   target <= 30' % ((busy - idle) / n, busy, idle, n))"
