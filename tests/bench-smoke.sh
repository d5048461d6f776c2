#!/bin/sh
# bench-smoke.sh -- evexec-bench runs every backend and workload at tiny
# sizes and delivers every job; it exits non-zero on a lost job, a hang or
# a crash.  It checks the tool, never a timing.
set -eu
: "${top_builddir:=.}"
exec "$top_builddir/tools/evexec-bench" --smoke --spin 50
