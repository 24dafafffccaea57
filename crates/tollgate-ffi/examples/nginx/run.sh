#!/usr/bin/env bash
# Runs the nginx example against a real nginx with 4 worker processes (WORKERS=N for
# another count) and real HTTP
# requests, and checks what the workers enforce together:
#
#   crates/tollgate-ffi/examples/nginx/run.sh LIB HEADER [shared|private]
#
# LIB: the tollgate shared library (e.g. target/release/libtollgate_ffi.so); HEADER: its
# tollgate.h. `shared` (the default) gives every worker one state: one token at 10/min
# is admitted exactly 10 times whichever workers serve it, also across a reload (HUP:
# new workers) and a SIGKILLed worker. `private` gives each worker its own engine, the
# behaviour before the shared state: each worker admits 10 (10 x the workers that
# served). Needs nginx with the lua module (Debian: nginx-light libnginx-mod-http-lua)
# and curl; scripts/test installs them. Every loop is bounded; nginx is stopped on exit.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
examples="$(dirname "$here")"
lib="$(realpath "$1")"
header="$(realpath "$2")"
mode="${3:-shared}"
modules="${NGINX_MODULES:-/usr/lib/nginx/modules}"
# WORKERS=1|2|4... (default 4): nginx's worker_processes.
workers_n="${WORKERS:-4}"
nginx_bin="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"

prefix="$(mktemp -d -t tollgate-nginx.XXXXXX)"
state_dir="$(mktemp -d -p /dev/shm tollgate-nginx-state.XXXXXX)"
master=""
cleanup() {
    if [ -n "$master" ] && kill -0 "$master" 2>/dev/null; then
        kill -QUIT "$master" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$master" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$master" 2>/dev/null || true
    fi
    rm -rf "$prefix" "$state_dir"
}
trap cleanup EXIT

# The workers run as nobody when nginx starts as root: give them readable copies.
mkdir -p "$prefix/tmp" "$prefix/lib"
cp "$lib" "$prefix/lib/libtollgate.so"
cp "$header" "$prefix/lib/tollgate.h"
cp "$here/policy.toml" "$prefix/policy.toml"
chmod -R a+rX "$prefix"
chmod 1777 "$state_dir"
user=""
if [ "$(id -u)" = 0 ]; then
    user="user nobody nogroup;"
fi
state=""
if [ "$mode" = shared ]; then
    state="$state_dir/gw"
fi

start() {
    local port="$1"
    sed -e "s|@PREFIX@|$prefix|g" -e "s|@LUA_MODULE_DIR@|$modules|g" \
        -e "s|@EXAMPLES@|$examples|g" -e "s|@POLICY@|$prefix/policy.toml|g" \
        -e "s|@STATE@|$state|g" -e "s|@HEADER@|$prefix/lib/tollgate.h|g" \
        -e "s|@LIB@|$prefix/lib/libtollgate.so|g" -e "s|@PORT@|$port|g" \
        -e "s|@USER@|$user|g" -e "s|@WORKERS@|$workers_n|g" \
        "$here/nginx.conf.in" > "$prefix/nginx.conf"
    "$nginx_bin" -p "$prefix" -c "$prefix/nginx.conf" &
    master=$!
    for _ in $(seq 100); do
        if curl -s -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null; then
            return 0
        fi
        kill -0 "$master" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# A free loopback port: try a few random ones.
port=""
for _ in $(seq 10); do
    candidate=$((20000 + RANDOM % 20000))
    if start "$candidate"; then
        port="$candidate"
        break
    fi
    kill -KILL "$master" 2>/dev/null || true
    wait "$master" 2>/dev/null || true
    master=""
done
if [ -z "$port" ]; then
    echo "error: nginx did not start; its log:" >&2
    cat "$prefix/error.log" >&2 || true
    exit 1
fi

workers() {
    pgrep -P "$master" | sort
}
wait_workers() {
    for _ in $(seq 100); do
        [ "$(workers | wc -l)" = "$workers_n" ] && return 0
        sleep 0.1
    done
    echo "error: nginx has $(workers | wc -l) workers, expected $workers_n" >&2
    return 1
}
wait_workers

# N requests of one token, each on a new connection (reuseport spreads them over the
# workers). Sets `result` to "allowed distinct_workers_that_served" and adds the
# allowed ones to `served`.
send() {
    local token="$1" n="$2" ok=0 line code
    local seen="$prefix/seen.$token"
    : > "$seen"
    for _ in $(seq "$n"); do
        line=$(curl -s -o /dev/null -D - --max-time 5 \
            -H "Authorization: Bearer $token" -H "X-Tenant: acme" \
            "http://127.0.0.1:$port/api" | tr -d '\r')
        code=$(printf '%s\n' "$line" | awk 'NR==1 {print $2}')
        printf '%s\n' "$line" | awk -F': ' 'tolower($1)=="x-worker" {print $2}' >> "$seen"
        printf '%s\n' "$line" | awk -F': ' 'tolower($1)=="x-tollgate-quota-used" {print $2}' >> "$prefix/quota"
        if [ "$code" = 200 ]; then
            ok=$((ok + 1))
            served=$((served + 1))
        fi
    done
    result="$ok $(sort -u "$seen" | wc -l)"
}

fail=0
served=0
: > "$prefix/quota"
check() {
    local what="$1" got="$2" want="$3"
    echo "$what: $got (expected $want)"
    [ "$got" = "$want" ] || fail=1
}

send tok-one 60
read -r allowed distinct <<< "$result"
echo "60 requests of one token: $allowed allowed, served by $distinct workers"
want_distinct=$(( workers_n > 1 ? 2 : 1 ))
[ "$distinct" -ge "$want_distinct" ] || { echo "error: only $distinct worker served" >&2; fail=1; }
if [ "$mode" = shared ]; then
    check "allowed by $workers_n workers on one state" "$allowed" 10
    # nginx's reload: new workers with a new engine on the same state.
    old="$(workers)"
    kill -HUP "$master"
    for _ in $(seq 100); do
        new="$(workers)"
        if [ "$(comm -12 <(echo "$old") <(echo "$new") | wc -l)" = 0 ] && [ "$(echo "$new" | wc -l)" = "$workers_n" ]; then
            break
        fi
        sleep 0.1
    done
    send tok-one 20
    read -r allowed _ <<< "$result"
    check "allowed after a reload (HUP)" "$allowed" 0
    # A worker SIGKILLed: nginx starts another on the same state.
    kill -KILL "$(workers | head -n 1)"
    sleep 0.3
    wait_workers
    send tok-one 20
    read -r allowed _ <<< "$result"
    check "allowed after a worker was killed" "$allowed" 0
    send tok-two 40
    read -r allowed _ <<< "$result"
    check "a second token, 40 requests" "$allowed" 10
    # The company's quota, counted across the workers, equals the calls served.
    check "the quota's usage across workers (largest X-Tollgate-Quota-Used)" \
        "$(sort -n "$prefix/quota" | tail -n 1)" "$served"
else
    check "allowed by $workers_n private engines (10 per worker that served)" "$allowed" $((10 * distinct))
    echo "the quota's largest usage one worker saw: $(sort -n "$prefix/quota" | tail -n 1) of $served calls served"
fi
if grep -q "tollgate:" "$prefix/error.log"; then
    echo "error: tollgate logged errors:" >&2
    grep "tollgate:" "$prefix/error.log" >&2
    fail=1
fi
exit "$fail"
