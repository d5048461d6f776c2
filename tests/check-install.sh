#!/bin/sh
# check-install.sh -- install evexec into a scratch prefix and build
# examples/hello.c against the installed tree twice: with pkg-config and
# with CMake's find_package(evexec); run both programs.
#
#   sh tests/check-install.sh BUILDDIR
#
# BUILDDIR is a configured and built (non-sanitizer) build directory.  Run
# by tools/check-all.sh.  Exits 77 (skipped) when cmake or pkg-config is
# missing, 1 on any failure.
set -u
build=${1:?usage: check-install.sh BUILDDIR}
build=$(cd "$build" && pwd)
srcdir=$(cd "$(dirname "$0")/.." && pwd)
for tool in pkg-config cmake cc; do
    command -v $tool >/dev/null 2>&1 || { echo "check-install: SKIP: no $tool"; exit 77; }
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/evexec-install.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT HUP INT TERM
prefix=$tmp/prefix

echo "check-install: make install prefix=$prefix"
make -C "$build" install prefix="$prefix" >"$tmp/install.log" 2>&1 || {
    tail -20 "$tmp/install.log"; echo "check-install: make install failed"; exit 1; }

fail=0
# pkg-config: the .pc file sits in PREFIX/lib/pkgconfig; --define-prefix
# points it at where it was installed.
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
flags=$(pkg-config --define-prefix --cflags --libs evexec libevent_core) || fail=1
if [ $fail -eq 0 ] && cc "$srcdir/examples/hello.c" $flags -o "$tmp/hello-pc" &&
   out=$(LD_LIBRARY_PATH="$prefix/lib" "$tmp/hello-pc") && echo "$out" | grep -q "7 squared is 49"; then
    echo "check-install: pkg-config build: $out"
else
    echo "check-install: the pkg-config build failed"; fail=1
fi

# CMake: find_package(evexec) from the installed config.
mkdir "$tmp/cm" "$tmp/cm/build"
cp "$srcdir/examples/hello.c" "$tmp/cm/"
cat > "$tmp/cm/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.13)
project(hello C)
find_package(evexec 0.1 REQUIRED)
add_executable(hello hello.c)
target_link_libraries(hello PRIVATE evexec::evexec)
CMAKE
if (cd "$tmp/cm/build" &&
    cmake -DCMAKE_PREFIX_PATH="$prefix" .. >"$tmp/cmake.log" 2>&1 &&
    make >>"$tmp/cmake.log" 2>&1) &&
   out=$(LD_LIBRARY_PATH="$prefix/lib" "$tmp/cm/build/hello") && echo "$out" | grep -q "7 squared is 49"; then
    echo "check-install: CMake build: $out"
else
    tail -20 "$tmp/cmake.log"; echo "check-install: the CMake build failed"; fail=1
fi

# A version the install cannot satisfy is refused.
sed -i 's/find_package(evexec 0.1 REQUIRED)/find_package(evexec 7.0 REQUIRED)/' "$tmp/cm/CMakeLists.txt"
rm -rf "$tmp/cm/build"; mkdir "$tmp/cm/build"
if (cd "$tmp/cm/build" && cmake -DCMAKE_PREFIX_PATH="$prefix" .. >/dev/null 2>&1); then
    echo "check-install: find_package(evexec 7.0) should have failed"; fail=1
fi

make -C "$build" uninstall prefix="$prefix" >/dev/null 2>&1 || { echo "check-install: uninstall failed"; fail=1; }
left=$(find "$prefix" -type f 2>/dev/null | wc -l)
[ "$left" -eq 0 ] || { echo "check-install: uninstall left $left files"; find "$prefix" -type f; fail=1; }
[ $fail -eq 0 ] && echo "check-install: OK"
exit $fail
