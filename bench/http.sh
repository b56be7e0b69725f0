#!/usr/bin/env bash
# HTTP benchmark (issue 22): clarity's /liveness against nginx answering the
# same fixed JSON with the same headers (request id, security headers,
# Cache-Control, Content-Type), both logging every request to a file, and
# clarity's authenticated /api/v1/auth/me. Single runs on this shared
# machine swing by ±20 %, so the servers run side by side and wrk visits
# them in interleaved rounds (the order alternating); the figure is the
# median of the same-round ratios, with their range.
#
# Targets: /liveness >= 1.0 x nginx; /api/v1/auth/me >= 0.5 x /liveness;
# idle RSS <= 20 MB. Allocations per probe: bench/http_allocs.sh.
set -euo pipefail
bin=$(realpath "${1:?usage: bench/http.sh PATH/TO/clarity}")
duration=${BENCH_SECONDS:-4}
rounds=${BENCH_ROUNDS:-10}
conns=${BENCH_CONNECTIONS:-64}
threads=${BENCH_WRK_THREADS:-2}
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() { for _ in $(seq 600); do curl -fs "http://127.0.0.1:$1$2" >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "server on $1 did not start" >&2; return 1; }

rps_of() { # url [lua script] -> requests/s
    local script=()
    [ -n "${2:-}" ] && script=(-s "$2")
    wrk -t"$threads" -c"$conns" -d"${duration}s" "${script[@]}" "$1" | awk '/^Requests\/sec/ {print $2}'
}

# --- clarity (logs every request to a file, as deployed)
cport=$(free_port)
(cd "$tmp" && PORT=$cport HOST=127.0.0.1 DATABASE_URL="sqlite:$tmp/bench.db" LOG_LEVEL=INFO \
    PASSWORD_HASH_PROFILE=interactive RATE_LIMITS="auth=1000/60,api=1000000/1" \
    exec "$bin" serve 2>"$tmp/clarity.log") &
pids+=($!)
cpid=$!
wait_port "$cport" /liveness
sleep 1
rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$cpid/status)
echo "clarity idle RSS: $((rss_kb / 1024)) MiB ($rss_kb kB)   target <= 20 MB"

curl -fs -H 'Content-Type: application/json' -d '{"email":"bench@example.com","password":"Bench-Pass-1","first_name":"B","last_name":"B","terms_accepted":true,"privacy_policy_accepted":true}' \
    "http://127.0.0.1:$cport/api/v1/auth/register" >/dev/null
token=$(curl -fs -H 'Content-Type: application/json' -d '{"email":"bench@example.com","password":"Bench-Pass-1"}' \
    "http://127.0.0.1:$cport/api/v1/auth/login" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("access_token") or d["tokens"]["access_token"])')
cat >"$tmp/auth.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $token"
LUA

# --- nginx: the same body size, headers and per-request log line
nport=$(free_port)
mkdir -p "$tmp/nginx"
body='{"status":"alive","timestamp":"2026-12-07T04:24:24Z"}'
cat >"$tmp/nginx/nginx.conf" <<CONF
worker_processes auto;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log;
daemon off;
events { worker_connections 4096; }
http {
    log_format json escape=json '{"timestamp":"\$time_iso8601","level":"INFO","message":"request",'
        '"request_id":"\$request_id","method":"\$request_method","route":"\$uri","status":\$status,'
        '"duration_ms":\$request_time,"bytes":\$body_bytes_sent}';
    access_log $tmp/nginx/access.log json;
    client_body_temp_path $tmp/nginx;
    proxy_temp_path $tmp/nginx;
    fastcgi_temp_path $tmp/nginx;
    uwsgi_temp_path $tmp/nginx;
    scgi_temp_path $tmp/nginx;
    keepalive_requests 1000000;
    server_tokens off;
    server {
        listen 127.0.0.1:$nport;
        location /liveness {
            default_type "application/json; charset=utf-8";
            add_header X-Request-ID \$request_id always;
            add_header X-Content-Type-Options nosniff always;
            add_header X-Frame-Options DENY always;
            add_header Referrer-Policy no-referrer always;
            add_header Content-Security-Policy "default-src 'none'; frame-ancestors 'none'" always;
            add_header Cache-Control no-store always;
            return 200 '$body';
        }
    }
}
CONF
nginx -c "$tmp/nginx/nginx.conf" &
pids+=($!)
wait_port "$nport" /liveness

echo "wrk: $threads threads, $conns connections, keep-alive, ${duration}s per run, $rounds interleaved rounds, $(nproc) cores shared with the servers"
# Warm-up of each.
for u in "http://127.0.0.1:$cport/liveness" "http://127.0.0.1:$nport/liveness"; do
    wrk -t"$threads" -c"$conns" -d2s "$u" >/dev/null 2>&1 || true
done
: >"$tmp/rounds"
for r in $(seq "$rounds"); do
    if [ $((r % 2)) -eq 1 ]; then
        c=$(rps_of "http://127.0.0.1:$cport/liveness")
        n=$(rps_of "http://127.0.0.1:$nport/liveness")
    else
        n=$(rps_of "http://127.0.0.1:$nport/liveness")
        c=$(rps_of "http://127.0.0.1:$cport/liveness")
    fi
    m=$(rps_of "http://127.0.0.1:$cport/api/v1/auth/me" "$tmp/auth.lua")
    printf 'round %2d  clarity %10s  nginx %10s  me %10s req/s\n' "$r" "$c" "$n" "$m"
    echo "$c $n $m" >>"$tmp/rounds"
done
lines=$(grep -c '"message":"request"' "$tmp/clarity.log" || true)
echo "access log lines written: clarity $lines, nginx $(wc -l <"$tmp/nginx/access.log")"

python3 - "$tmp/rounds" <<'PY'
import statistics, sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
live = [c / n for c, n, m in rows]
me = [m / c for c, n, m in rows]
print("clarity /liveness / nginx: median %.2f (range %.2f-%.2f over %d rounds)   target >= 1.0"
      % (statistics.median(live), min(live), max(live), len(rows)))
print("/api/v1/auth/me / /liveness: median %.2f (range %.2f-%.2f)   target >= 0.5"
      % (statistics.median(me), min(me), max(me)))
print("medians: clarity %.0f, nginx %.0f, me %.0f req/s" % tuple(statistics.median(x) for x in zip(*rows)))
PY
