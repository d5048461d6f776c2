#!/bin/sh
# replay.sh -- `make check`: run the libFuzzer harness once over every file
# of tests/fuzz/corpus, so that every saved input is a regression test.
set -u
fuzzer=${top_builddir:-.}/tests/fuzz/fuzz_api
corpus=${top_srcdir:-.}/tests/fuzz/corpus
if [ ! -x "$fuzzer" ]; then
    echo "replay: $fuzzer was not built" >&2
    exit 1
fi
files=$(find "$corpus" -type f | LC_ALL=C sort)
if [ -z "$files" ]; then
    echo "replay: no inputs in $corpus" >&2
    exit 1
fi
echo "replay: $(printf '%s\n' "$files" | wc -l) inputs from $corpus"
# File arguments (not a directory): libFuzzer runs each once and stops.
# shellcheck disable=SC2086
exec "$fuzzer" -timeout=60 -rss_limit_mb=2048 $files
