#!/bin/sh
# run.sh FUZZER CORPUS -- `make fuzz`: run the libFuzzer harness for
# $FUZZ_SECONDS seconds (default 60) on CORPUS (read only: new inputs go
# to corpus-new/ beside FUZZER, crashes to artifacts/ there), then print
# the number of executions and the coverage.  Exit status: 0, or non-zero
# when libFuzzer found a crash, a leak or a hang (-timeout, in seconds,
# FUZZ_TIMEOUT, default 10).  Extra libFuzzer flags: FUZZ_FLAGS.
set -u
fuzzer=${1:?usage: run.sh FUZZER CORPUS}
corpus=${2:?usage: run.sh FUZZER CORPUS}
secs=${FUZZ_SECONDS:-60}
dir=$(dirname "$fuzzer")
new=$dir/corpus-new
art=$dir/artifacts
log=$dir/fuzz.log
mkdir -p "$new" "$art"

echo "fuzz: $fuzzer for ${secs}s on $corpus (log: $log)"
# shellcheck disable=SC2086
"$fuzzer" -max_total_time="$secs" -timeout="${FUZZ_TIMEOUT:-10}" \
    -rss_limit_mb=2048 -max_len=512 -print_final_stats=1 \
    -artifact_prefix="$art/" ${FUZZ_FLAGS:-} "$new" "$corpus" >"$log" 2>&1
rc=$?

last=$(grep -E '^#[0-9]+' "$log" | grep 'cov:' | tail -n 1)
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
cov=$(printf '%s\n' "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
ft=$(printf '%s\n' "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
corp=$(printf '%s\n' "$last" | sed -n 's/.* corp: \([^ ]*\).*/\1/p')
echo "fuzz: executions: ${execs:-?} (${rate:-?}/s), cov: ${cov:-?} ft: ${ft:-?}, corpus: ${corp:-?}"
echo "fuzz: last status line: ${last:-none}"

if [ $rc -ne 0 ]; then
    echo "fuzz: FAILED (libFuzzer exit $rc); the report:"
    first=$(grep -n -m 1 -E '^==[0-9]+==|contract violated|runtime error:|ALARM: working on the last Unit' "$log" | cut -d: -f1)
    if [ -n "$first" ]; then
        sed -n "$((first > 20 ? first - 20 : 1)),$((first + 50))p" "$log"
    else
        tail -n 60 "$log"
    fi
    echo "fuzz: saved inputs:"
    ls -l "$art"
    echo "fuzz: replay one with: $fuzzer FILE (FUZZ_TRACE=1 prints its operations)"
    echo "fuzz: keep it as a regression test: copy it into tests/fuzz/corpus/ (see tests/fuzz/README.md)"
fi
exit $rc
