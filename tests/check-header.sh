#!/bin/sh
# check-header.sh -- the public header compiles on its own for users who
# build with strict ISO C11 plus POSIX, and from C++.
set -eu
: "${top_srcdir:=.}"
cc=${CC:-cc}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat >"$dir/use.c" <<'SRC'
#include <evexec.h>
int main(void) { return evexec_strerror(0) == 0; }
SRC
$cc -std=c11 -D_POSIX_C_SOURCE=200809L -pedantic -Wall -Wextra -Werror \
    -I"$top_srcdir/include" -c "$dir/use.c" -o "$dir/c.o"
echo "ok: C11 + POSIX, -pedantic -Werror"
if command -v c++ >/dev/null 2>&1; then
    cp "$dir/use.c" "$dir/use.cc"
    c++ -std=c++11 -pedantic -Wall -Wextra -Werror \
        -I"$top_srcdir/include" -c "$dir/use.cc" -o "$dir/cc.o"
    echo "ok: C++11"
fi
