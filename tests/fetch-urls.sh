#!/bin/sh
# fetch-urls.sh -- evexec-fetch fetches the URLs it is given, by each of its
# three ways: from a server of its own that this script starts
# (`evexec-fetch --serve`, on 127.0.0.1 and, where there is IPv6 loopback,
# on [::1]), by 127.0.0.1 with its port, by localhost (looked up from
# /etc/hosts), by [::1]; status 404 and a redirect fail (exit 1, no
# redirect followed); a refused port, a body over --max-bytes and a
# --timeout fail with their own messages; https without libcurl is a usage
# error (64) before anything is sent, and with libcurl fails on a refused
# port.  Ways 1 and 2 run with both blocking clients.
#
# Only 127.0.0.1, ::1 and localhost are ever reached: no name server is
# asked, no packet leaves the machine.  Never a timing is checked.
set -u
: "${top_builddir:=.}"
fetch="$top_builddir/tools/evexec-fetch"
[ -x "$fetch" ] || { echo "SKIP: no $fetch"; exit 77; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fetch-urls.XXXXXX") || exit 99
server=
dead=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    [ -n "$dead" ] && kill "$dead" 2>/dev/null && wait "$dead" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 99' INT TERM

failures=0
checks=0
fail() {
    echo "FAIL: $*"
    sed 's/^/    /' "$tmp/out"
    failures=$((failures + 1))
}

# start_server FILE: run `evexec-fetch --serve` with its lines in FILE;
# returns once it says where it listens, its pid in $pid (a child of this
# shell, so that `wait` reads its exit status).
start_server() {
    "$fetch" --serve --delay-ms 0 >"$1" 2>&1 </dev/null &
    pid=$!
    i=0
    while ! grep -q '^serving http://127.0.0.1:' "$1"; do
        i=$((i + 1))
        if [ $i -gt 300 ] || ! kill -0 $pid 2>/dev/null; then
            echo "FAIL: the server did not start" >&2
            cat "$1" >&2
            exit 1
        fi
        sleep 0.1
    done
}

# expect STATUS PATTERN [ARGS...]: evexec-fetch ARGS exits STATUS and its
# output (stdout and stderr) has a line matching PATTERN (grep -E), "" for
# any.
expect() {
    want=$1 pattern=$2
    shift 2
    checks=$((checks + 1))
    "$fetch" "$@" >"$tmp/out" 2>&1 </dev/null
    got=$?
    if [ "$got" != "$want" ]; then
        fail "evexec-fetch $*: exit $got, expected $want"
    elif [ -n "$pattern" ] && ! grep -Eq -- "$pattern" "$tmp/out"; then
        fail "evexec-fetch $*: no line matching '$pattern'"
    fi
}

# expect_ways N OK ARGS...: exit 0 and the three ways each fetched N of N
# with OK bytes in all.
expect_ways() {
    n=$1 bytes=$2
    shift 2
    expect 0 "" "$@"
    lines=$(grep -Ec " $n/$n ok .*\($bytes bytes\)" "$tmp/out")
    [ "$lines" = 3 ] || fail "evexec-fetch $*: $lines of 3 ways fetched $n/$n, $bytes bytes"
}

# How many lines of the last output match PATTERN.
count() {
    grep -Ec -- "$1" "$tmp/out"
}

start_server "$tmp/server"
server=$pid
port=$(sed -n 's|^serving http://127.0.0.1:\([0-9]*\)/$|\1|p' "$tmp/server")
v6=no
grep -q "^serving http://\[::1\]:$port/\$" "$tmp/server" && v6=yes

# A port nobody listens on: a second server's, once it has stopped.
start_server "$tmp/dead"
dead=$pid
refused=$(sed -n 's|^serving http://127.0.0.1:\([0-9]*\)/$|\1|p' "$tmp/dead")
kill "$dead" && wait "$dead"
dead=

if "$fetch" --help | grep -q 'built without libcurl'; then
    curl=no
    clients=socket
else
    curl=yes
    clients="curl socket"
fi
base=http://127.0.0.1:$port

# The hello line is "hello from evexec-fetch: " and the path and a newline.
for c in $clients; do
    # By number and port; a path and a query: 33 + 35 bytes.
    expect_ways 2 68 --client $c "$base/item/1" "$base/?q=12345"
    # By name, looked up on the pool.
    expect_ways 1 27 --client $c "http://localhost:$port/"
    if [ $v6 = yes ]; then
        expect_ways 1 33 --client $c "http://[::1]:$port/item/2"
    fi
    # Not found: a failure, named per URL, in each way.
    expect 1 "/missing: HTTP status 404" --client $c "$base/missing"
    [ "$(count 'HTTP status 404')" = 3 ] || fail "--client $c: 404 not named 3 times"
    # A redirect is not followed.
    expect 1 "/status/302: HTTP status 302" --client $c "$base/status/302"
    # One good URL and one refused: exit 1, the good one still fetched.
    expect 1 "127.0.0.1:$refused/: connection refused" --client $c \
        "$base/item/3" "http://127.0.0.1:$refused/"
    [ "$(count ' 1/2 ok ')" = 3 ] || fail "--client $c: a refused port spoiled the others"
    [ "$(count 'connection refused')" = 3 ] || fail "--client $c: refused not named 3 times"
    # The body limit: at it is fine, one byte over fails.
    expect_ways 1 1000 --client $c --max-bytes 1000 "$base/bytes/1000"
    expect 1 "/bytes/1000: file too large" --client $c --max-bytes 999 "$base/bytes/1000"
    [ "$(count 'file too large')" = 3 ] || fail "--client $c: too large not named 3 times"
    # The timeout: the server answers after 60 s, each request gets 0.2 s.
    expect 1 "/delay/60000: timed out" --client $c --timeout 0.2 "$base/delay/60000"
    [ "$(count 'timed out')" = 3 ] || fail "--client $c: timeout not named 3 times"
done
if [ $v6 = no ]; then
    echo "SKIP: no IPv6 loopback: [::1] not tried"
fi

# https: a usage error before anything is sent without libcurl; with it,
# fetched by curl (here: refused) and skipped by the evhttp way.
if [ $curl = no ]; then
    expect 64 "https needs libcurl" "https://127.0.0.1:$refused/" "$base/"
    [ "$(count ' ok ')" = 0 ] || fail "https without libcurl: something was fetched"
else
    expect 1 "https://127.0.0.1:$refused/: connection refused" "https://127.0.0.1:$refused/"
    [ "$(count '1 https skipped')" = 1 ] || fail "https: the evhttp way did not skip it"
    expect 64 "https needs --client curl" --client socket "https://127.0.0.1:$refused/"
fi

# Refused before anything is sent.
expect 64 "refused" "ftp://127.0.0.1:$port/"
expect 64 "refused: port 0" "http://127.0.0.1:0/"
expect 64 "" --timeout 0 "$base/"
expect 64 "takes no URL" --serve "$base/"

# The server stops on SIGTERM and exits 0.
kill "$server"
wait "$server"
st=$?
server=
checks=$((checks + 1))
[ $st = 0 ] || { echo "FAIL: the server exited $st on SIGTERM"; failures=$((failures + 1)); }

echo "$checks checks, $failures failed (libcurl: $curl, IPv6 loopback: $v6)"
[ $failures = 0 ]
