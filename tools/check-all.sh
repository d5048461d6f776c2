#!/usr/bin/env bash
# check-all.sh -- every check evexec has, in one command.
#
#   bash tools/check-all.sh [options]
#
# 1. deps:      installs the Debian packages it needs when some are missing
#               (apt-get, through sudo unless run as root);
# 2. autoreconf -fi in the source tree (in a clean copy of it, under
#    build/src, when the tree was configured in place);
# 3. five out-of-tree builds under build/, each `make` then `make check`:
#      build/plain  the normal build
#      build/tsan   --enable-sanitizer=thread   (ThreadSanitizer)
#      build/asan   --enable-sanitizer=address  (AddressSanitizer, leaks,
#                                                UndefinedBehaviorSanitizer)
#      build/portable      clang, strict ISO C11 + POSIX 2008 ($STRICT_CFLAGS),
#                          --enable-werror, and configure told that eventfd,
#                          <sys/eventfd.h>, pipe2 and pthread_setname_np are
#                          missing: the fallbacks pass the whole suite, and
#                          tests/check-config-defs.sh sees none of them called
#      build/portable-gcc  gcc, the same strict flags and --enable-werror,
#                          with what configure really finds; `make` only
#                          (and `make check`'s programs built, not run):
#                          its tests would repeat plain's for ~25s more
#      build/fuzz   the libFuzzer harness (tests/fuzz/README.md) with ASan
#                   and UBSan: configure --enable-fuzzer, then `make fuzz`
#                   for FUZZ_SECONDS (default 60) seconds; a clean run counts
#                   as one passed test, a crash, leak or hang as one failure
#    then, after the builds:
#      model check  tests/model/check.sh: spin on the hand-off and shutdown
#                   models, and their mutants (which must fail)
#      valgrind     tests/valgrind/run.sh build/plain: memcheck over the
#                   examples and the demo
#      install      tests/check-install.sh build/plain: install into a
#                   scratch prefix, build examples/hello.c against it with
#                   pkg-config and with CMake's find_package(evexec)
#      doc          `make doc` in build/plain: the API reference with
#                   doxygen, then tests/check-doc.sh (no doxygen warning,
#                   a description for every exported symbol, macro,
#                   struct, member and typedef)
#      perfcheck    `make perfcheck` in build/plain (tests/perfcheck.sh):
#                   instructions per job of the bench's W2 and W3 under
#                   callgrind, failing above tests/perf-ceilings; its
#                   lines are repeated in the closing summary
#    each one counts as one passed test, or one failure;
# 4. `make distcheck` once, in build/plain;
# 5. adds up the cmocka summaries of every test log of the three builds and
#    ends with one line, "N passed, M failed".  M counts failed tests, plus
#    test programs that failed without a cmocka summary (a crash, a
#    sanitizer report, a timeout), plus failed build steps.  The exit status
#    is non-zero when M is.
#
# Options:
#   --print-deps     print the Debian packages needed (one line) and exit
#   --no-deps        never install packages
#   --no-autoreconf  use the configure script already in the source tree
#   --no-distcheck   skip `make distcheck`
#   --no-model       skip the spin model check
#   --no-valgrind    skip valgrind over build/plain
#   --no-perfcheck   skip `make perfcheck`
#   --builds "LIST"  which builds to make
#                    (default: "plain tsan asan portable portable-gcc fuzz")
# Environment:
#   JOBS        parallel make jobs (default 2)
#   BUILD_ROOT  where the builds go (default: build/ in the source tree)
#   FUZZ_SECONDS   how long the fuzz build fuzzes (default 60)
#   CC          compiler (default: configure's choice)
#   TEST_TIMEOUT   seconds one test program may run (default 300)
#   STEP_TIMEOUT   seconds one `make check` or `make distcheck` may run
#                  (default 900), so that hangs cannot eat a CI budget
# Each step's output goes to a log beside its build (configure.log,
# make.log, check.log, distcheck.log); on failure its end is printed.

set -euo pipefail

DEB_PACKAGES=(
    build-essential autoconf automake libtool pkg-config autoconf-archive
    libevent-dev libcmocka-dev libuv1-dev libcurl4-openssl-dev
    libsqlite3-dev clang spin valgrind cmake doxygen
)

srcdir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBS=${JOBS:-2}
TEST_TIMEOUT=${TEST_TIMEOUT:-300}
STEP_TIMEOUT=${STEP_TIMEOUT:-900}
BUILD_ROOT=${BUILD_ROOT:-$srcdir/build}
BUILDS="plain tsan asan portable portable-gcc fuzz"
# The portable builds: every file (library, tools, tests, examples) in
# strict ISO C11 + POSIX 2008; lib/*.c ask for _GNU_SOURCE themselves.
STRICT_CFLAGS="-std=c11 -D_POSIX_C_SOURCE=200809L -O1 -g"
NO_LINUX_EXTRAS=(ac_cv_func_pipe2=no ac_cv_func_eventfd=no
                 ac_cv_header_sys_eventfd_h=no ac_cv_func_pthread_setname_np=no)
do_deps=1
do_autoreconf=1
do_distcheck=1
do_model=1
do_valgrind=1
do_perfcheck=1

while [ $# -gt 0 ]; do
    case $1 in
    --print-deps) echo "${DEB_PACKAGES[*]}"; exit 0 ;;
    --no-deps) do_deps=0 ;;
    --no-autoreconf) do_autoreconf=0 ;;
    --no-distcheck) do_distcheck=0 ;;
    --no-model) do_model=0 ;;
    --no-valgrind) do_valgrind=0 ;;
    --no-perfcheck) do_perfcheck=0 ;;
    --builds) shift; BUILDS=${1:?--builds needs a list} ;;
    --builds=*) BUILDS=${1#--builds=} ;;
    -h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "check-all: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done

# Sanitizer settings: every report is fatal.  The caller's own settings
# come last and so win.  tests/{tsan,lsan,ubsan}.supp are used if present.
supp() { [ -f "$srcdir/tests/$1.supp" ] && echo ":suppressions=$srcdir/tests/$1.supp" || true; }
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export LSAN_OPTIONS="print_suppressions=0$(supp lsan)${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1$(supp ubsan)${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1$(supp tsan)${TSAN_OPTIONS:+:$TSAN_OPTIONS}"

# ---------------------------------------------------------------------------
# Bookkeeping: phase times and failures.
# ---------------------------------------------------------------------------
t_all=$SECONDS
phase_lines=()        # "name  status  seconds" for the closing table
failed_phases=()      # logs of phases that failed
phase_fail_count=0    # failed phases not explained by counted test failures

note() { printf '==> %s\n' "$*"; }

# run_phase NAME LOG CMD...: run CMD with its output in LOG; record time.
run_phase() {
    local name=$1 log=$2 t0=$SECONDS rc=0
    shift 2
    note "$name"
    "$@" >"$log" 2>&1 || rc=$?
    local dt=$((SECONDS - t0))
    if [ $rc -eq 0 ]; then
        phase_lines+=("$(printf '%-26s %-8s %5ss' "$name" ok "$dt")")
        printf '    ok (%ss)\n' "$dt"
    else
        phase_lines+=("$(printf '%-26s %-8s %5ss' "$name" "FAILED" "$dt")")
        printf '    FAILED (exit %s, %ss); log: %s\n' "$rc" "$dt" "$log"
    fi
    return $rc
}

skip_phase() {
    phase_lines+=("$(printf '%-26s %-8s %5s' "$1" skipped -)")
    note "$1: SKIPPED: $2"
}

show_tail() {   # show_tail LOG [LINES]
    printf -- '---- %s (last %s lines) ----\n' "${1#"$srcdir"/}" "${2:-60}"
    tail -n "${2:-60}" "$1" || true
    printf -- '---- end of %s ----\n' "${1#"$srcdir"/}"
}

# show_test_failure LOG: why a test program failed: the first sanitizer
# report, or cmocka's failure lines, then how the log ends (a hung test's
# last "[ RUN ]" line, the exit status).
show_test_failure() {
    local log=$1 first
    printf -- '---- %s ----\n' "${log#"$srcdir"/}"
    first=$(grep -n -m 1 -E '^==[0-9]+==ERROR|^WARNING: ThreadSanitizer|^==[0-9]+==WARNING|runtime error:|Sanitizer:' "$log" |
            cut -d: -f1 || true)
    if [ -n "$first" ]; then
        sed -n "${first},$((first + 45))p" "$log"
        echo "  [...]"
    else
        grep -E -B 2 -A 2 '^\[  (ERROR|FAILED) *\]|^\[   LINE   \]' "$log" | head -n 60 || true
    fi
    echo "  [last lines]"
    tail -n 8 "$log" | sed 's/^/  /'
}

# ---------------------------------------------------------------------------
# 1. Dependencies.
# ---------------------------------------------------------------------------
install_deps() {
    local missing=() p
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "    not a Debian system: not installing packages (needed: ${DEB_PACKAGES[*]})"
        return 0
    fi
    for p in "${DEB_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
            missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "    all ${#DEB_PACKAGES[@]} packages installed"
        return 0
    fi
    echo "    installing: ${missing[*]}"
    local sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

t0=$SECONDS
if [ $do_deps -eq 1 ]; then
    note "deps"
    install_deps
    phase_lines+=("$(printf '%-26s %-8s %5ss' deps ok $((SECONDS - t0)))")
fi

# ---------------------------------------------------------------------------
# 2. autoreconf.
# ---------------------------------------------------------------------------
mkdir -p "$BUILD_ROOT"
BUILD_ROOT=$(cd "$BUILD_ROOT" && pwd)
# A tree configured in place (the README's first command does that) can't
# host out-of-tree builds.  Build from a clean copy of its files instead:
# what git tracks plus new files it does not ignore, so uncommitted work is
# tested too.  Outside git, clean the tree.
if [ -f "$srcdir/config.status" ]; then
    if git -C "$srcdir" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        note "source tree is configured in place: building from a clean copy in ${BUILD_ROOT#"$srcdir"/}/src"
        rm -rf "$BUILD_ROOT/src"
        mkdir -p "$BUILD_ROOT/src"
        git -C "$srcdir" ls-files -z -co --exclude-standard |
            (cd "$srcdir" && tar --null --ignore-failed-read -T - -cf -) |
            tar -xf - -C "$BUILD_ROOT/src"
        srcdir=$BUILD_ROOT/src
    else
        note "source tree is configured in place: make distclean"
        make -C "$srcdir" distclean >/dev/null
    fi
fi

if [ $do_autoreconf -eq 1 ]; then
    if ! run_phase autoreconf "$BUILD_ROOT/autoreconf.log" \
            sh -c "cd '$srcdir' && autoreconf -fi"; then
        show_tail "$BUILD_ROOT/autoreconf.log"
        echo "0 passed, 1 failed"
        exit 1
    fi
fi

# ---------------------------------------------------------------------------
# ThreadSanitizer needs an address space it recognizes; with high mmap
# randomization some kernels break it ("unexpected memory mapping").  Find
# out once with a tiny program, and run the tsan tests without
# randomization (setarch -R) if that is what works.
# ---------------------------------------------------------------------------
TSAN_WRAP=()
tsan_usable() {
    local dir=$BUILD_ROOT/tsan-probe cc=${CC:-cc}
    mkdir -p "$dir"
    cat >"$dir/probe.c" <<'EOF'
#include <pthread.h>
static int shared;
static void *run(void *arg) { (void)arg; shared++; return 0; }
int main(void) { pthread_t t; pthread_create(&t, 0, run, 0); pthread_join(t, 0); return shared != 1; }
EOF
    $cc -fsanitize=thread -pthread "$dir/probe.c" -o "$dir/probe" >"$dir/probe.log" 2>&1 ||
        return 1
    "$dir/probe" >>"$dir/probe.log" 2>&1 && return 0
    if command -v setarch >/dev/null 2>&1 &&
       setarch "$(uname -m)" -R "$dir/probe" >>"$dir/probe.log" 2>&1; then
        TSAN_WRAP=(setarch "$(uname -m)" -R)
        echo "    ThreadSanitizer runs only without address randomization here: using setarch -R"
        return 0
    fi
    return 1
}

# ---------------------------------------------------------------------------
# 3. The builds.
# ---------------------------------------------------------------------------
build_ok=()   # builds whose `make` succeeded

# The fuzz build: only the harness, then `make fuzz` (tests/fuzz/run.sh).
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
fuzz_passed=0
do_fuzz() {
    local dir=$BUILD_ROOT/fuzz
    rm -rf "$dir"
    mkdir -p "$dir"
    if ! run_phase "[fuzz] configure" "$dir/configure.log" \
            sh -c 'cd "$1" && shift && "$@"' - "$dir" "$srcdir/configure" --enable-fuzzer; then
        show_tail "$dir/configure.log" 30
        failed_phases+=("$dir/configure.log"); phase_fail_count=$((phase_fail_count + 1))
        return 0
    fi
    if ! run_phase "[fuzz] make" "$dir/make.log" make -C "$dir" tests/fuzz/fuzz_api; then
        show_tail "$dir/make.log" 40
        failed_phases+=("$dir/make.log"); phase_fail_count=$((phase_fail_count + 1))
        return 0
    fi
    if run_phase "[fuzz] ${FUZZ_SECONDS}s" "$dir/fuzz-run.log" \
            timeout -k 30 $((FUZZ_SECONDS + 300)) \
            make -C "$dir" fuzz FUZZ_SECONDS="$FUZZ_SECONDS"; then
        fuzz_passed=$((fuzz_passed + 1))
    else
        show_tail "$dir/fuzz-run.log" 100
        failed_phases+=("$dir/fuzz-run.log"); phase_fail_count=$((phase_fail_count + 1))
    fi
    grep '^fuzz: ' "$dir/fuzz-run.log" | head -n 2 | sed 's/^/    /' || true
}

do_build() {
    local b=$1 dir=$BUILD_ROOT/$1 flags=() need= run_tests=1
    if [ "$b" = fuzz ]; then do_fuzz; return 0; fi
    case $b in
    plain) ;;
    tsan) flags=(--enable-sanitizer=thread) ;;
    asan) flags=(--enable-sanitizer=address) ;;
    portable) need=clang
        flags=(--enable-werror CC=clang "CFLAGS=$STRICT_CFLAGS" "${NO_LINUX_EXTRAS[@]}") ;;
    portable-gcc) need=gcc run_tests=0
        flags=(--enable-werror CC=gcc "CFLAGS=$STRICT_CFLAGS") ;;
    *) echo "check-all: unknown build '$b'" >&2; exit 2 ;;
    esac
    if [ -n "$need" ] && ! command -v "$need" >/dev/null 2>&1; then
        # Counted as a failure: CI installs it (DEB_PACKAGES).
        skip_phase "[$b]" "$need not found"
        failed_phases+=("$need not found for [$b]"); phase_fail_count=$((phase_fail_count + 1))
        return 0
    fi
    if [ "$b" = tsan ] && ! tsan_usable; then
        skip_phase "[tsan]" "ThreadSanitizer cannot run on this machine (see $BUILD_ROOT/tsan-probe/probe.log)"
        return 0
    fi
    rm -rf "$dir"
    mkdir -p "$dir"

    if ! run_phase "[$b] configure" "$dir/configure.log" \
            sh -c 'cd "$1" && shift && "$@"' - "$dir" "$srcdir/configure" "${flags[@]}"; then
        show_tail "$dir/configure.log" 30
        failed_phases+=("$dir/configure.log"); phase_fail_count=$((phase_fail_count + 1))
        return 0
    fi
    # -k: one run shows every file that does not build.
    if ! run_phase "[$b] make" "$dir/make.log" make -k -C "$dir" -j"$JOBS"; then
        echo "    errors:"
        grep -E 'error:|undefined reference|\*\*\*' "$dir/make.log" | head -n 40 | sed 's/^/      /'
        show_tail "$dir/make.log" 40
        failed_phases+=("$dir/make.log"); phase_fail_count=$((phase_fail_count + 1))
        return 0
    fi
    if grep -q 'warning:' "$dir/make.log"; then
        echo "    compiler warnings:"
        grep 'warning:' "$dir/make.log" | sort -u | head -n 40 | sed 's/^/      /'
    fi
    build_ok+=("$b")

    if [ $run_tests -eq 0 ]; then
        # Build what `make check` would run, without running it.
        if ! run_phase "[$b] make check-progs" "$dir/check.log" \
                make -k -C "$dir" -j"$JOBS" check TESTS=; then
            echo "    errors:"
            grep -E 'error:|undefined reference|\*\*\*' "$dir/check.log" | head -n 40 | sed 's/^/      /'
            failed_phases+=("$dir/check.log"); phase_fail_count=$((phase_fail_count + 1))
        fi
        return 0
    fi
    local check=(make -C "$dir" -j"$JOBS" check TEST_TIMEOUT="$TEST_TIMEOUT")
    [ "$b" = tsan ] && check=("${TSAN_WRAP[@]}" "${check[@]}")
    check=(timeout -k 30 "$STEP_TIMEOUT" "${check[@]}")
    if run_phase "[$b] make check" "$dir/check.log" "${check[@]}"; then :; else
        check_failed["$b"]=1
    fi
    # The harness's per-test lines (PASS:/FAIL:/SKIP:...) and totals.
    grep -E '^(PASS|FAIL|SKIP|XFAIL|XPASS|ERROR): |^# (TOTAL|PASS|SKIP|XFAIL|FAIL|XPASS|ERROR):' \
        "$dir/check.log" | sed 's/^/    /' || true
}

declare -A check_failed=()
for b in $BUILDS; do
    do_build "$b"
done

# ---------------------------------------------------------------------------
# 3b. The spin models (tests/model) and valgrind over build/plain
# (tests/valgrind).  A missing tool counts as a failure: CI installs both.
# ---------------------------------------------------------------------------
extra_passed=0
# run_counted NAME LOG CMD...: run_phase, counted as one test.
run_counted() {
    local log=$2
    if run_phase "$@"; then
        extra_passed=$((extra_passed + 1))
    else
        show_tail "$log" 60
        failed_phases+=("$log"); phase_fail_count=$((phase_fail_count + 1))
    fi
}
if [ $do_model -eq 1 ]; then
    if ! command -v spin >/dev/null 2>&1; then
        skip_phase "model check" "spin not found"
        failed_phases+=("spin not found for the model check"); phase_fail_count=$((phase_fail_count + 1))
    else
        run_counted "model check" "$BUILD_ROOT/model-check.log" \
            sh "$srcdir/tests/model/check.sh"
        grep -E '^model check: ' "$BUILD_ROOT/model-check.log" | sed 's/^/    /' || true
    fi
fi
if [ $do_valgrind -eq 1 ]; then
    if ! command -v valgrind >/dev/null 2>&1; then
        skip_phase "[plain] valgrind" "valgrind not found"
        failed_phases+=("valgrind not found"); phase_fail_count=$((phase_fail_count + 1))
    elif [[ " ${build_ok[*]-} " != *" plain "* ]]; then
        skip_phase "[plain] valgrind" "no plain build"
    else
        run_counted "[plain] valgrind" "$BUILD_ROOT/plain/valgrind.log" \
            sh "$srcdir/tests/valgrind/run.sh" "$BUILD_ROOT/plain"
        grep -E 'errors, exit|^valgrind: ' "$BUILD_ROOT/plain/valgrind.log" | sed 's/^/    /' || true
    fi
fi
if [[ " ${build_ok[*]-} " != *" plain "* ]]; then
    skip_phase "[plain] install" "no plain build"
elif ! command -v cmake >/dev/null 2>&1; then
    skip_phase "[plain] install" "cmake not found"
    failed_phases+=("cmake not found for the install check"); phase_fail_count=$((phase_fail_count + 1))
else
    run_counted "[plain] install" "$BUILD_ROOT/plain/install.log" \
        sh "$srcdir/tests/check-install.sh" "$BUILD_ROOT/plain"
    grep -E '^check-install: (pkg-config|CMake) build' "$BUILD_ROOT/plain/install.log" | sed 's/^/    /' || true
fi
# The API reference: `make doc` runs doxygen and then tests/check-doc.sh.
if [[ " ${build_ok[*]-} " != *" plain "* ]]; then
    skip_phase "[plain] doc" "no plain build"
elif ! command -v doxygen >/dev/null 2>&1; then
    skip_phase "[plain] doc" "doxygen not found"
    failed_phases+=("doxygen not found for make doc"); phase_fail_count=$((phase_fail_count + 1))
else
    run_counted "[plain] doc" "$BUILD_ROOT/plain/doc.log" make -C "$BUILD_ROOT/plain" doc
    grep -E '^check-doc: [0-9]+ documented' "$BUILD_ROOT/plain/doc.log" | sed 's/^/    /' || true
fi
# Instructions per job under callgrind against tests/perf-ceilings.
perf_summary=
if [ $do_perfcheck -eq 0 ]; then
    :
elif [[ " ${build_ok[*]-} " != *" plain "* ]]; then
    skip_phase "[plain] perfcheck" "no plain build"
elif ! command -v valgrind >/dev/null 2>&1; then
    skip_phase "[plain] perfcheck" "valgrind not found"
    failed_phases+=("valgrind not found for make perfcheck"); phase_fail_count=$((phase_fail_count + 1))
else
    run_counted "[plain] perfcheck" "$BUILD_ROOT/plain/perfcheck.log" \
        make -C "$BUILD_ROOT/plain" perfcheck
    perf_summary=$(grep -E '^perfcheck: (w[0-9]|SKIP)' "$BUILD_ROOT/plain/perfcheck.log" || true)
    [ -z "$perf_summary" ] || echo "$perf_summary" | sed 's/^/    /'
fi

# ---------------------------------------------------------------------------
# 4. distcheck, once, in the plain build.
# ---------------------------------------------------------------------------
# Its own `make check` would fail the same way as the plain one did, so it
# runs only after that one passed.
if [ $do_distcheck -eq 1 ]; then
    if [[ " ${build_ok[*]-} " != *" plain "* ]]; then
        skip_phase "[plain] distcheck" "no plain build"
    elif [ -n "${check_failed[plain]-}" ]; then
        skip_phase "[plain] distcheck" "the plain make check failed"
    else
        if ! run_phase "[plain] distcheck" "$BUILD_ROOT/plain/distcheck.log" \
                timeout -k 30 "$STEP_TIMEOUT" \
                make -C "$BUILD_ROOT/plain" -j"$JOBS" distcheck TEST_TIMEOUT="$TEST_TIMEOUT"; then
            show_tail "$BUILD_ROOT/plain/distcheck.log" 80
            failed_phases+=("$BUILD_ROOT/plain/distcheck.log")
            phase_fail_count=$((phase_fail_count + 1))
        fi
    fi
fi

# ---------------------------------------------------------------------------
# 5. Add up the test logs.
# ---------------------------------------------------------------------------
passed=0 failed=0 skipped=0
failing_logs=()

# cmocka_sum LOG WORD: sum N over lines "[  WORD  ] N test(s)".
cmocka_sum() {
    sed -n "s/^\[ *$2 *\] \([0-9][0-9]*\) test(s).*/\1/p" "$1" |
        awk '{ s += $1 } END { print s + 0 }'
}

for b in $BUILDS; do
    dir=$BUILD_ROOT/$b
    [ -d "$dir" ] || continue
    bfailed=0
    for trs in "$dir"/tests/*.trs "$dir"/examples/*.trs; do
        [ -f "$trs" ] || continue
        log=${trs%.trs}.log
        result=$(sed -n 's/^:test-result: *//p' "$trs" | head -n 1)
        p=0 f=0 s=0 has_summary=0
        if [ -f "$log" ] && grep -q '^\[ *\(PASSED\|FAILED\) *\] [0-9]* test(s)' "$log"; then
            has_summary=1
            p=$(cmocka_sum "$log" PASSED)
            f=$(cmocka_sum "$log" FAILED)
            s=$(cmocka_sum "$log" SKIPPED)
        fi
        case $result in
        PASS|XFAIL)
            if [ $has_summary -eq 1 ]; then
                passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
                bfailed=$((bfailed + f))
            else
                passed=$((passed + 1))
            fi ;;
        SKIP)
            skipped=$((skipped + 1)) ;;
        *)  # FAIL, ERROR, XPASS
            passed=$((passed + p)); skipped=$((skipped + s))
            [ "$f" -gt 0 ] || f=1     # died without saying which test
            failed=$((failed + f)); bfailed=$((bfailed + f))
            failing_logs+=("$log") ;;
        esac
    done
    # `make check` failed but no test log says why (a test program that
    # did not build, a harness error): count the step itself.
    if [ -n "${check_failed[$b]-}" ] && [ $bfailed -eq 0 ]; then
        phase_fail_count=$((phase_fail_count + 1))
        failed_phases+=("$dir/check.log")
    fi
done

for log in "${failing_logs[@]}"; do
    show_test_failure "$log"
done
for log in "${failed_phases[@]}"; do
    case $log in
    */check.log) show_tail "$log" 60 ;;
    esac
done

passed=$((passed + fuzz_passed))
passed=$((passed + extra_passed))
failed=$((failed + phase_fail_count))

echo
echo "Phases:"
for l in "${phase_lines[@]}"; do echo "    $l"; done
printf '    %-26s %-8s %5ss\n' total "" $((SECONDS - t_all))
[ -z "$perf_summary" ] || { echo "Instructions per job:"; echo "$perf_summary" | sed 's/^/    /'; }
[ $skipped -eq 0 ] || echo "Skipped: $skipped (tests or programs)"
[ ${#failing_logs[@]} -eq 0 ] || echo "Failing test logs: ${failing_logs[*]#"$srcdir"/}"
[ ${#failed_phases[@]} -eq 0 ] || echo "Failed steps: ${failed_phases[*]#"$srcdir"/}"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
