#!/bin/sh
# tools/evexec-top --once against tests/stats-server: the program listens
# on a Unix socket in a scratch directory (evexec_stats_listen); evexec-top
# prints a line per lane with the counts the program's jobs made; the
# socket is gone once the program has exited.  A missing socket is exit 1.
set -u
b=${top_builddir:-.}
server=$b/tests/stats-server
top=$b/tools/evexec-top
dir=$(mktemp -d "${TMPDIR:-/tmp}/evexec-top.XXXXXX") || exit 99
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

sock=$dir/stats.sock
"$server" "$sock" > "$dir/out" 2>&1 &
pid=$!
i=0
until grep -q '^ready$' "$dir/out" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { cat "$dir/out"; fail "stats-server exited"; }
    i=$((i + 1))
    [ $i -lt 300 ] || fail "stats-server not ready after 30 s"
    sleep 0.1
done

"$top" --once "$sock" > "$dir/top" 2>&1 || { cat "$dir/top"; fail "evexec-top --once failed"; }
cat "$dir/top"
grep -q '^LANE ' "$dir/top" || fail "no header line"
# LANE QUEUED RUNNING COMPLETED CANCELLED: the jobs stats-server ran.
grep -Eq '^default +0 +0 +6 +0 ' "$dir/top" || fail "no default lane with 6 jobs completed"
grep -Eq '^slow +0 +0 +2 +0 ' "$dir/top" || fail "no slow lane with 2 jobs completed"
grep -q 'threads ' "$dir/top" || fail "no pool line"

kill -TERM "$pid"
wait "$pid"
rc=$?
pid=
[ $rc -eq 0 ] || fail "stats-server exited $rc"
[ ! -e "$sock" ] || fail "the socket was left behind"
# Nothing listens any more.
if "$top" --once "$sock" > "$dir/top2" 2>&1; then
    fail "evexec-top --once succeeded without a program"
fi
echo "PASS: evexec-top --once read both lanes"
exit 0
