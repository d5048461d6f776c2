#!/bin/sh
# run.sh -- valgrind memcheck over evexec's examples and demo.
#
#   sh tests/valgrind/run.sh BUILDDIR
#
# BUILDDIR is a plain build (no --enable-sanitizer: valgrind cannot run
# sanitizer binaries) where `make` and `make check` (which builds the
# examples) ran; a program that is missing is built with `make` first.
# Runs, each under
#   valgrind --error-exitcode=1 --leak-check=full
#            --errors-for-leak-kinds=definite,indirect --track-fds=no
#            --suppressions=tests/valgrind/evexec.supp
# (through libtool --mode=execute, since the programs are libtool wrapper
# scripts around the shared library):
#   examples/hello
#   examples/sqlite-gather          (when configure found SQLite)
#   examples/http-server            (when configure found SQLite), run
#                                   twice by tests/check-http-server.sh
#                                   and driven by its client
#   tools/evexec-demo --scale 0.01
#   tools/evexec-demo --scale 0.01 --timeout 6   (timeouts, cancelled jobs)
# and prints each one's memcheck error count, exit status and time.  Each
# full valgrind report goes to BUILDDIR/valgrind/<name>.log; the first
# error of a failing one is printed.
#
# Exit status: 0 when every program ran clean (0 errors, exit 0), 1 when
# one did not, 2 for bad usage or no valgrind.
# Environment: VALGRIND (default valgrind), VALGRIND_TIMEOUT (seconds per
# program, default 600).

set -u

here=$(cd "$(dirname "$0")" && pwd)
if [ $# -ne 1 ] || [ ! -f "$1/Makefile" ]; then
    echo "usage: $0 BUILDDIR  (a configured, built evexec build directory)" >&2
    exit 2
fi
b=$(cd "$1" && pwd)
VALGRIND=${VALGRIND:-valgrind}
VALGRIND_TIMEOUT=${VALGRIND_TIMEOUT:-600}

if ! command -v "$VALGRIND" >/dev/null 2>&1; then
    echo "valgrind not found (Debian: apt-get install valgrind)" >&2
    exit 2
fi
if grep -q '^SANITIZER_FLAGS = .*-fsanitize' "$b/Makefile"; then
    echo "$b is a sanitizer build: valgrind needs a plain one" >&2
    exit 2
fi

mkdir -p "$b/valgrind"
"$VALGRIND" --version

vg="$VALGRIND --error-exitcode=1 --leak-check=full"
vg="$vg --errors-for-leak-kinds=definite,indirect --track-fds=no"
vg="$vg --suppressions=$here/evexec.supp"
to=
command -v timeout >/dev/null 2>&1 && to="timeout -k 10 $VALGRIND_TIMEOUT"

bad=0
total=0
results=

# check NAME PROGRAM [ARGS...]
check() {
    name=$1 prog=$2
    shift 2
    if [ ! -x "$b/$prog" ]; then
        make -C "$b" "$prog" >"$b/valgrind/$name.make.log" 2>&1 || true
    fi
    if [ ! -x "$b/$prog" ]; then
        printf '%-28s not built (see %s)\n' "$name" "$b/valgrind/$name.make.log"
        bad=$((bad + 1))
        return
    fi
    log=$b/valgrind/$name.log
    t0=$(date +%s)
    (cd "$b" && $to ./libtool --mode=execute $vg "./$prog" "$@") >"$log" 2>&1
    rc=$?
    t1=$(date +%s)
    errors=$(count_errors "$log")
    verdict "$name" "$rc" $((t1 - t0)) "$errors" "$log"
}

# count_errors LOG: memcheck's error count in LOG, or ? if it has none.
count_errors() {
    e=$(sed -n 's/^==[0-9]*== ERROR SUMMARY: \([0-9][0-9]*\) errors.*/\1/p' "$1" | tail -n 1)
    echo "${e:-?}"
}

# verdict NAME STATUS SECONDS ERRORS LOG: count, print, show a failure.
verdict() {
    name=$1 rc=$2 secs=$3 errors=$4 log=$5
    verdict=ok
    if [ "$errors" != 0 ] || [ $rc -ne 0 ]; then
        verdict=FAILED
        bad=$((bad + 1))
    fi
    [ "$errors" = "?" ] || total=$((total + errors))
    printf '%-28s %s errors, exit %s, %ss  %s\n' "$name" "$errors" "$rc" "$secs" "$verdict"
    if [ $verdict = FAILED ]; then
        first=$(grep -n -m 1 -E '^==[0-9]+== (Invalid|Conditional|Use of|Syscall param|Mismatched|Source and destination|Argument|[0-9,]+ bytes in [0-9,]+ blocks are (definitely|indirectly))' "$log" | cut -d: -f1)
        if [ -n "$first" ]; then
            sed -n "${first},$((first + 30))p" "$log" | sed 's/^/    | /'
        else
            tail -n 20 "$log" | sed 's/^/    | /'
        fi
        echo "    full report: $log"
    fi
}

check hello examples/hello
if grep -q '^S\["HAVE_SQLITE3_TRUE"\]=""' "$b/config.status" 2>/dev/null; then
    check sqlite-gather examples/sqlite-gather
else
    printf '%-28s skipped (configure found no SQLite)\n' sqlite-gather
fi
# check_http: examples/http-server under valgrind, driven by
# tests/check-http-server.sh (exit status: that script's); one report per
# server run, valgrind/http-server.log.<pid>, their errors added up.
check_http() {
    name=http-server
    for prog in examples/http-server tests/http-get; do
        [ -x "$b/$prog" ] || make -C "$b" "$prog" >>"$b/valgrind/$name.make.log" 2>&1 || true
        if [ ! -x "$b/$prog" ]; then
            printf '%-28s not built (see %s)\n' "$name" "$b/valgrind/$name.make.log"
            bad=$((bad + 1))
            return
        fi
    done
    rm -f "$b/valgrind/$name.log".*
    t0=$(date +%s)
    (cd "$b" && top_builddir=. HTTP_DEADLINE_MS=10000 \
        HTTP_SERVER_WRAPPER="./libtool --mode=execute $vg --log-file=$b/valgrind/$name.log.%p" \
        $to sh "$here/../check-http-server.sh") >"$b/valgrind/$name.test.log" 2>&1
    rc=$?
    t1=$(date +%s)
    errors=0 n=0 shown=
    for log in "$b/valgrind/$name.log".*; do
        [ -f "$log" ] || continue
        n=$((n + 1))
        e=$(count_errors "$log")
        if [ "$e" = "?" ] || [ "$errors" = "?" ]; then errors=?; else errors=$((errors + e)); fi
        [ -z "$shown" ] && [ "$e" != 0 ] && shown=$log
    done
    [ $n -gt 0 ] || errors=?
    # A failure shows the first report with errors, else the test's output.
    verdict "$name" "$rc" $((t1 - t0)) "$errors" "${shown:-$b/valgrind/$name.test.log}"
}

if grep -q '^S\["HAVE_SQLITE3_TRUE"\]=""' "$b/config.status" 2>/dev/null; then
    check_http
else
    printf '%-28s skipped (configure found no SQLite)\n' http-server
fi
check evexec-demo tools/evexec-demo --scale 0.01
check evexec-demo-timeout tools/evexec-demo --scale 0.01 --timeout 6

if [ $bad -eq 0 ]; then
    echo "valgrind: every program clean ($total errors)"
    exit 0
fi
echo "valgrind: $bad program(s) failed ($total memcheck errors)"
exit 1
