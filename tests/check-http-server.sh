#!/bin/sh
# check-http-server.sh -- examples/http-server against tests/http-get, on
# 127.0.0.1 only.  Run by `make check` from the build directory.
#
# First server (4 threads, 2 s deadline): files byte for byte (cmp), an
# empty file, 404s, "/" and ".." refused (400), SQLite keys found and not,
# a slow job within the deadline (200) and past it (503), clients that hang
# up before their answer, a burst of concurrent requests, then /quit.
# Second server (2 threads, queue limit 1): one slow job running and one
# queued (seen through /stats), so further requests are shed with 503 at
# once; SIGTERM then cancels both, which are answered 503.
# Each time the server must exit 0 and print nothing on stderr.
#
# Environment: HTTP_SERVER_WRAPPER, a command the server is run under
# (tests/valgrind/run.sh runs it under valgrind this way); HTTP_DEADLINE_MS,
# the first server's deadline (default 2000), for slow wrappers.

set -u
b=${top_builddir:-.}
server=$b/examples/http-server
get=$b/tests/http-get
work=$(mktemp -d "${TMPDIR:-/tmp}/check-http-server.XXXXXX") || exit 99
pid=
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$work"' EXIT
fails=0
checks=0

ok() { checks=$((checks + 1)); echo "ok   $1"; }
bad() { checks=$((checks + 1)); fails=$((fails + 1)); echo "FAIL $1: $2"; }

# start_server ARGS...: start it, read its port from "listening on ...".
start_server() {
    : >"$work/out"
    ${HTTP_SERVER_WRAPPER:-} "$server" "$@" "$work/www" >"$work/out" 2>"$work/err" &
    pid=$!
    i=0
    while ! grep -q '^listening on 127\.0\.0\.1:[0-9]*$' "$work/out"; do
        i=$((i + 1))
        if [ $i -gt 600 ] || ! kill -0 "$pid" 2>/dev/null; then
            echo "FAIL the server did not start"; cat "$work/err"; exit 1
        fi
        sleep 0.1
    done
    port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/out")
    echo "server $pid on 127.0.0.1:$port ($*)"
}

# stop_server: wait (at most 60 s) for it to exit; it must exit 0 and
# print nothing on stderr.
stop_server() {
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 600 ]; do
        i=$((i + 1)); sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"; bad "server exits" "still running after 60 s"
    fi
    wait "$pid"; rc=$?
    pid=
    [ $rc -eq 0 ] && ok "server exit status 0" || bad "server exit status" "$rc"
    [ ! -s "$work/err" ] && ok "nothing on stderr" || { bad "stderr" "not empty:"; cat "$work/err"; }
}

# expect NAME STATUS PATH [FILE | =TEXT]: GET PATH, check the status and,
# when given, the body (byte for byte against FILE, or TEXT and a newline).
expect() {
    name=$1 want=$2 path=$3
    got=$("$get" "$port" "$path" "$work/body.$name") || got="no reply"
    if [ "$got" != "$want" ]; then
        bad "$name" "GET $path: status $got, expected $want"; return
    fi
    if [ $# -ge 4 ]; then
        case $4 in
            =*) printf '%s\n' "${4#=}" >"$work/want.$name"; w=$work/want.$name ;;
            *) w=$4 ;;
        esac
        if ! cmp -s "$w" "$work/body.$name"; then
            bad "$name" "GET $path: the body differs from $w"; return
        fi
    fi
    ok "$name ($want $path)"
}

# wait_stats TEXT: poll /stats until its line has TEXT (at most 60 s).
wait_stats() {
    i=0
    while :; do
        "$get" "$port" /stats "$work/stats" >/dev/null && grep -q "$1" "$work/stats" && return 0
        i=$((i + 1)); [ $i -gt 600 ] && { bad "stats" "never '$1': $(cat "$work/stats")"; return 1; }
        sleep 0.1
    done
}

mkdir "$work/www" "$work/www/sub"
head -c 300007 /dev/urandom >"$work/www/blob.bin"
printf 'hello, evexec\n' >"$work/www/hello.txt"
: >"$work/www/empty"
echo secret >"$work/secret"

# --- First server ---------------------------------------------------------
start_server --threads 4 --deadline-ms "${HTTP_DEADLINE_MS:-2000}"
expect file 200 /files/blob.bin "$work/www/blob.bin"
expect text 200 /files/hello.txt "$work/www/hello.txt"
expect empty 200 /files/empty "$work/www/empty"
expect missing 404 /files/nothing-here
expect dir 404 /files/sub
expect dotdot 400 /files/..
expect escape 400 '/files/..%2Fsecret'
expect escape-dots 400 '/files/%2e%2e%2fsecret'
expect slash 400 '/files/sub%2Fx'
expect nul 400 '/files/hello.txt%00x'
expect key 200 '/db?key=alpha' '=the first letter'
expect key2 200 '/db?key=evexec' '=blocking work off the loop'
expect no-key 404 '/db?key=beta'
expect key-missing 400 /db
expect slow 200 '/slow?ms=20' '=slept 20 ms'
expect past-deadline 503 '/slow?ms=60000' '=deadline passed'
expect slow-bad 400 '/slow?ms=x'
expect unknown 404 /nowhere

# Clients that hang up before their answer: the server answers into a
# connection that is gone, and must neither crash nor leak.
"$get" "$port" '/slow?ms=200' --hang-up
"$get" "$port" /files/blob.bin --hang-up
"$get" "$port" '/db?key=omega' --hang-up

# A burst: files, keys and slow jobs at once.
clients=
for i in 1 2 3 4; do
    "$get" "$port" /files/blob.bin "$work/c.file.$i" >"$work/c.file.$i.status" &
    clients="$clients $!"
    "$get" "$port" '/db?key=omega' "$work/c.db.$i" >"$work/c.db.$i.status" &
    clients="$clients $!"
    "$get" "$port" '/slow?ms=50' "$work/c.slow.$i" >"$work/c.slow.$i.status" &
    clients="$clients $!"
done
for c in $clients; do wait "$c"; done
printf 'the last letter\n' >"$work/want.db"
printf 'slept 50 ms\n' >"$work/want.slow"
burst=0
for i in 1 2 3 4; do
    for k in file:"$work/www/blob.bin" db:"$work/want.db" slow:"$work/want.slow"; do
        n=${k%%:*} w=${k#*:}
        [ "$(cat "$work/c.$n.$i.status")" = 200 ] && cmp -s "$w" "$work/c.$n.$i" &&
            burst=$((burst + 1))
    done
done
[ $burst -eq 12 ] && ok "12 concurrent requests answered right" ||
    bad "burst" "$burst of 12 concurrent requests answered right"
expect stats 200 /stats
grep -q '^threads [0-9]* idle [0-9]* queued 0 running' "$work/body.stats" &&
    ok "stats line" || bad "stats line" "$(cat "$work/body.stats")"
expect quit 200 /quit '=bye'
stop_server

# --- Second server: load shedding, and SIGTERM with work in flight --------
start_server --threads 2 --queue-limit 1 --deadline-ms 60000
"$get" "$port" '/slow?ms=60000' "$work/a" >"$work/a.status" &
a=$!
wait_stats 'running 1 ' || true
"$get" "$port" '/slow?ms=60000' "$work/b" >"$work/b.status" &
bb=$!
wait_stats 'queued 1 ' || true
expect shed-db 503 '/db?key=alpha' '=overloaded'
expect shed-file 503 /files/hello.txt '=overloaded'
expect shed-slow 503 '/slow?ms=1' '=overloaded'
kill -TERM "$pid"
wait "$a"; wait "$bb"
printf 'shutting down\n' >"$work/want.stop"
for c in a b; do
    [ "$(cat "$work/$c.status")" = 503 ] && cmp -s "$work/want.stop" "$work/$c" &&
        ok "in flight at SIGTERM ($c): 503 shutting down" ||
        bad "in flight at SIGTERM ($c)" "status $(cat "$work/$c.status"), body $(cat "$work/$c")"
done
stop_server

echo "$((checks - fails)) of $checks checks passed"
[ $fails -eq 0 ]
