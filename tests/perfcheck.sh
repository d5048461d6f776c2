#!/bin/sh
# perfcheck.sh -- instructions per job of evexec-bench's W2 and W3, counted
# by valgrind's callgrind, checked against recorded ceilings.
#
#   sh tests/perfcheck.sh [--runs N] [BUILDDIR]      (`make perfcheck`)
#
# Times flake on a loaded machine; instruction counts do not.  For each
# workload, tools/evexec-bench --one (one worker, no warm-up) runs under
# `valgrind --tool=callgrind` twice, with $PERFCHECK_JOBS jobs (default
# "20000 60000"); the difference of the two instruction totals divided by
# the difference of the job counts is the cost of one job, with start-up
# and shutdown cancelled out.  It prints one line per workload:
#
#   perfcheck: w2 evexec N instr/job (ceiling C), libuv M instr/job
#
# and fails when evexec is above its ceiling, read from tests/perf-ceilings
# (or $PERFCHECK_CEILINGS).  libuv is measured when the bench has it
# (configure found libuv), for comparison only: never checked.
#
#   W2  throughput: 1024 jobs in flight, each done callback submits one more
#   W3  burst: every job submitted at once from the loop, outside callbacks
#
# One worker (--threads 1): with several, how many jobs a worker takes per
# wakeup depends on the interleaving valgrind happens to choose, and W3's
# count moved by ~7 % from one run to the next; with one worker, < 1 %.
#
# --runs N   measure each workload N times and print every value, the
#            spread and a ceiling 10 % above the highest (to update
#            tests/perf-ceilings on purpose); the check uses the highest.
#
# BUILDDIR (default .) is a configured and built plain build (valgrind
# cannot run sanitizer builds); tools/evexec-bench is run through its
# libtool wrapper.  Exit status: 0 all below their ceilings, 1 one above
# (or a run failed), 2 bad usage, 77 skipped (no valgrind, a sanitizer
# build).  Environment: VALGRIND (default valgrind), PERFCHECK_JOBS,
# PERFCHECK_CEILINGS, PERFCHECK_TIMEOUT (seconds per run, default 300).
set -u

here=$(cd "$(dirname "$0")" && pwd)
runs=1
while [ $# -gt 0 ]; do
    case $1 in
    --runs) runs=${2:-}; shift 2 || { echo "perfcheck: --runs needs N" >&2; exit 2; } ;;
    --runs=*) runs=${1#--runs=}; shift ;;
    -h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*) echo "perfcheck: unknown option '$1'" >&2; exit 2 ;;
    *) break ;;
    esac
done
case $runs in ''|*[!0-9]*|0) echo "perfcheck: --runs takes a positive number" >&2; exit 2 ;; esac
b=${1:-${top_builddir:-.}}
if [ ! -f "$b/Makefile" ]; then
    echo "usage: $0 [--runs N] [BUILDDIR]  (a configured, built evexec build directory)" >&2
    exit 2
fi
b=$(cd "$b" && pwd)
VALGRIND=${VALGRIND:-valgrind}
JOBS=${PERFCHECK_JOBS:-20000 60000}
CEILINGS=${PERFCHECK_CEILINGS:-$here/perf-ceilings}
TIMEOUT=${PERFCHECK_TIMEOUT:-300}

if ! command -v "$VALGRIND" >/dev/null 2>&1; then
    echo "perfcheck: SKIP: valgrind not found (Debian: apt-get install valgrind)"
    exit 77
fi
if grep -q '^SANITIZER_FLAGS = .*-fsanitize' "$b/Makefile"; then
    echo "perfcheck: SKIP: $b is a sanitizer build; valgrind needs a plain one"
    exit 77
fi
if [ ! -f "$CEILINGS" ]; then
    echo "perfcheck: no ceilings file $CEILINGS" >&2
    exit 2
fi
set -- $JOBS
n1=${1:-} n2=${2:-}
case $#:$n1:$n2 in
2:[1-9]*:[1-9]*) case $n1$n2 in *[!0-9]*) n2=0 ;; esac ;;
*) n2=0 ;;
esac
if [ "$n2" -le "$n1" ]; then
    echo "perfcheck: PERFCHECK_JOBS must be two job counts, the smaller first" >&2
    exit 2
fi

bench=tools/evexec-bench
if [ ! -x "$b/$bench" ]; then
    make -C "$b" "$bench" >/dev/null 2>&1 || {
        echo "perfcheck: could not build $bench in $b" >&2; exit 1; }
fi
backends=evexec
"$b/$bench" --help 2>&1 | grep -q '^ *--backend LIST.*from:.* libuv' &&
    backends="evexec libuv"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/evexec-perfcheck.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT HUP INT TERM
to=
command -v timeout >/dev/null 2>&1 && to="timeout -k 10 $TIMEOUT"

echo "perfcheck: $("$VALGRIND" --version), $(sed -n 's/^CFLAGS = //p' "$b/Makefile" | head -n 1 | sed 's/^$/(no CFLAGS)/'), jobs $n1 and $n2, one worker"

# count BACKEND WORKLOAD JOBS: print the instructions callgrind counted in
# one run of the bench (every thread), or fail.
count() {
    out=$tmp/cg.out log=$tmp/run.log
    rm -f "$out"
    if ! (cd "$b" && $to ./libtool --mode=execute "$VALGRIND" --tool=callgrind \
              --callgrind-out-file="$out" "./$bench" --one --backend "$1" \
              --workload "$2" --threads 1 --no-warmup --jobs "$3" \
              --timeout "$TIMEOUT") >"$log" 2>&1; then
        echo "perfcheck: $2 $1 with $3 jobs failed:" >&2
        tail -n 15 "$log" >&2
        return 1
    fi
    total=$(sed -n 's/^totals: *\([0-9][0-9]*\).*/\1/p' "$out" 2>/dev/null | head -n 1)
    [ -n "$total" ] ||
        total=$(sed -n 's/^summary: *\([0-9][0-9]*\).*/\1/p' "$out" 2>/dev/null | head -n 1)
    if [ -z "$total" ]; then
        echo "perfcheck: $2 $1 with $3 jobs: no instruction total in callgrind's output" >&2
        return 1
    fi
    echo "$total"
}

# per_job BACKEND WORKLOAD: instructions per job, rounded.
per_job() {
    c1=$(count "$1" "$2" "$n1") || return 1
    c2=$(count "$1" "$2" "$n2") || return 1
    awk -v a="$c1" -v b="$c2" -v n1="$n1" -v n2="$n2" \
        'BEGIN { printf "%.0f\n", (b - a) / (n2 - n1) }'
}

# measure BACKEND WORKLOAD: $runs values; sets vals and hi (the highest).
measure() {
    vals= hi=
    i=0
    while [ $i -lt "$runs" ]; do
        v=$(per_job "$1" "$2") || return 1
        vals="$vals${vals:+ }$v"
        { [ -z "$hi" ] || [ "$v" -gt "$hi" ]; } && hi=$v
        i=$((i + 1))
    done
    return 0
}

# spread: " (runs: a b c; spread x %; ceiling at +10 %: c)" with --runs > 1.
spread() {
    [ "$runs" -gt 1 ] || return 0
    echo "$vals" | awk '{ lo = hi = $1; for (i = 2; i <= NF; i++) {
                            if ($i < lo) lo = $i; if ($i > hi) hi = $i }
                          printf " (runs: %s; spread %.1f %%; +10 %%: %d)",
                                 $0, lo ? 100 * (hi - lo) / lo : 0,
                                 int(hi * 1.1 + 0.999) }'
}

fail=0
for w in w2 w3; do
    ceiling=$(awk -v w="$w" '$1 == w && $2 == "evexec" { print $3; exit }' "$CEILINGS")
    case $ceiling in
    ''|*[!0-9]*) echo "perfcheck: $w evexec: no ceiling in $CEILINGS"; fail=1; continue ;;
    esac
    if ! measure evexec "$w"; then
        echo "perfcheck: $w evexec: FAILED: the run failed"; fail=1; continue
    fi
    line="perfcheck: $w evexec $hi instr/job (ceiling $ceiling)$(spread)"
    verdict=
    if [ "$hi" -gt "$ceiling" ]; then
        verdict=" -- FAILED: above the ceiling by $(awk -v a="$hi" -v c="$ceiling" \
            'BEGIN { printf "%.1f %%", 100 * (a - c) / c }')"
        fail=1
    fi
    if [ "$backends" = "evexec libuv" ]; then
        if measure libuv "$w"; then
            line="$line, libuv $hi instr/job$(spread)"
        else
            line="$line, libuv: the run failed (not checked)"
        fi
    fi
    echo "$line$verdict"
done
if [ $fail -ne 0 ]; then
    echo "perfcheck: FAILED (ceilings: $CEILINGS; see its header to change one on purpose)"
    exit 1
fi
echo "perfcheck: ok"
exit 0
