#!/usr/bin/env bash
# HTTP benchmark: wrk against clarity's /liveness and against nginx serving
# the same fixed JSON, same wrk settings (keep-alive, 64 connections), same
# machine; plus clarity's idle resident memory. Both servers log every request
# to a file, as deployed. Targets (issue #2): >= 100,000 req/s, p99 <= 5 ms,
# >= 0.8 of nginx; idle RSS <= 20 MB.
set -euo pipefail
bin=$(realpath "${1:?usage: bench/http.sh PATH/TO/clarity}")
duration=${BENCH_SECONDS:-10}
conns=${BENCH_CONNECTIONS:-64}
threads=${BENCH_WRK_THREADS:-2}
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() { for _ in $(seq 600); do curl -fs "http://127.0.0.1:$1$2" >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "server on $1 did not start" >&2; return 1; }

run_wrk() { # url label -> prints "label rps p50 p99"
    wrk -t"$threads" -c"$conns" -d2s "$1" >/dev/null 2>&1 || true   # warm-up
    out=$(wrk -t"$threads" -c"$conns" -d"${duration}s" --latency "$1")
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out")
    printf '%-8s %12s req/s   p50 %-9s p99 %-9s %s\n' "$2" "$rps" "$p50" "$p99" "$errs"
    echo "$rps" >"$tmp/$2.rps"
}

# --- clarity
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
echo "wrk: $threads threads, $conns connections, keep-alive, ${duration}s, $(nproc) cores shared with the servers"
run_wrk "http://127.0.0.1:$cport/liveness" clarity

# An authenticated request: ES256 verification, rate limit, one SQLite read.
curl -fs -H 'Content-Type: application/json' -d '{"email":"bench@example.com","password":"Bench-Pass-1","first_name":"B","last_name":"B","terms_accepted":true,"privacy_policy_accepted":true}' \
    "http://127.0.0.1:$cport/api/v1/auth/register" >/dev/null
token=$(curl -fs -H 'Content-Type: application/json' -d '{"email":"bench@example.com","password":"Bench-Pass-1"}' \
    "http://127.0.0.1:$cport/api/v1/auth/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens"]["access_token"])')
cat >"$tmp/auth.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $token"
LUA
wrk -t"$threads" -c"$conns" -d2s -s "$tmp/auth.lua" "http://127.0.0.1:$cport/api/v1/auth/me" >/dev/null 2>&1 || true
out=$(wrk -t"$threads" -c"$conns" -d"${duration}s" --latency -s "$tmp/auth.lua" "http://127.0.0.1:$cport/api/v1/auth/me")
printf '%-8s %12s req/s   p50 %-9s p99 %-9s %s\n' "me" "$(awk '/^Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '$1=="50%" {print $2}' <<<"$out")" "$(awk '$1=="99%" {print $2}' <<<"$out")" "$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out")"
kill "$cpid"; wait "$cpid" 2>/dev/null || true

# --- nginx, same fixed JSON body size as /liveness
nport=$(free_port)
mkdir -p "$tmp/nginx"
body='{"status":"alive","timestamp":"2026-11-27T04:24:24.375Z"}'
cat >"$tmp/nginx/nginx.conf" <<CONF
worker_processes auto;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log;
daemon off;
events { worker_connections 4096; }
http {
    access_log $tmp/nginx/access.log;
    client_body_temp_path $tmp/nginx;
    proxy_temp_path $tmp/nginx;
    fastcgi_temp_path $tmp/nginx;
    uwsgi_temp_path $tmp/nginx;
    scgi_temp_path $tmp/nginx;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$nport;
        location /liveness { default_type "application/json; charset=utf-8"; return 200 '$body'; }
    }
}
CONF
nginx -c "$tmp/nginx/nginx.conf" &
pids+=($!)
npid=$!
wait_port "$nport" /liveness
run_wrk "http://127.0.0.1:$nport/liveness" nginx
kill "$npid"; wait "$npid" 2>/dev/null || true

python3 - "$tmp/clarity.rps" "$tmp/nginx.rps" <<'PY'
import sys
c = float(open(sys.argv[1]).read()); n = float(open(sys.argv[2]).read())
print("clarity / nginx = %.2f   target >= 0.80" % (c / n))
PY
