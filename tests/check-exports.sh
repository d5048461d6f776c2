#!/bin/sh
# check-exports.sh -- the shared library exports exactly the public API.
#
# The public API is every function declared EVEXEC_API in include/*.h; the
# exports are the defined dynamic symbols of the built libevexec.so.  The
# two sets must be equal: a declared function that is not exported is a
# missing definition, and an exported symbol that is not declared (an
# evexec__ internal, a helper without `static`, anything from a
# dependency) is a leak.  Comparing with the headers themselves leaves no
# separate list to keep in sync.
#
# Run by `make check`, which sets top_srcdir, top_builddir and NM.  Exits
# 77 (skipped) when no shared library was built or nm is missing.

set -u

top_srcdir=${top_srcdir:-.}
top_builddir=${top_builddir:-.}
NM=${NM:-nm}

la="$top_builddir/lib/libevexec.la"
if [ ! -f "$la" ]; then
    echo "check-exports: $la not found (build the library first)" >&2
    exit 99
fi

# libtool names the shared library in the .la file: dlname='libevexec.so.0'.
dlname=$(sed -n "s/^dlname='\(.*\)'\$/\1/p" "$la")
if [ -z "$dlname" ]; then
    echo "check-exports: SKIP: no shared library was built"
    exit 77
fi
so="$top_builddir/lib/.libs/$dlname"
if [ ! -f "$so" ]; then
    echo "check-exports: $so not found" >&2
    exit 99
fi

set -- $NM
if ! command -v "$1" >/dev/null 2>&1; then
    echo "check-exports: SKIP: nm ($NM) not found"
    exit 77
fi

tmp=${TMPDIR:-/tmp}/check-exports.$$
mkdir "$tmp" || exit 99
trap 'rm -rf "$tmp"' EXIT HUP INT TERM

# Declared: strip comments and preprocessor lines, join the rest into one
# line, then take the identifier right before the first `(` after each
# EVEXEC_API.
for h in "$top_srcdir"/include/*.h; do
    cat "$h"
    echo
done | awk '
    { text = text $0 "\n" }
    END {
        # Remove /* ... */ and // comments.
        out = ""
        while (length(text) > 0) {
            b = index(text, "/*"); l = index(text, "//")
            if (b == 0 && l == 0) { out = out text; break }
            if (b != 0 && (l == 0 || b < l)) {
                out = out substr(text, 1, b - 1)
                text = substr(text, b + 2)
                e = index(text, "*/")
                text = (e == 0) ? "" : substr(text, e + 2)
                out = out " "
            } else {
                out = out substr(text, 1, l - 1)
                text = substr(text, l + 2)
                e = index(text, "\n")
                text = (e == 0) ? "" : substr(text, e)
            }
        }
        # Drop preprocessor lines (with their continuations), join the rest.
        n = split(out, lines, "\n")
        joined = ""; cont = 0
        for (i = 1; i <= n; i++) {
            line = lines[i]
            if (cont || line ~ /^[ \t]*#/) {
                cont = (line ~ /\\[ \t]*$/)
                continue
            }
            joined = joined " " line
        }
        # Each EVEXEC_API ... name( declaration.
        while ((p = index(joined, "EVEXEC_API")) > 0) {
            joined = substr(joined, p + 10)
            q = index(joined, "(")
            s = index(joined, ";")
            if (q == 0 || (s != 0 && s < q))
                continue          # not a function (a variable?): ignored
            decl = substr(joined, 1, q - 1)
            sub(/[ \t]+$/, "", decl)
            if (match(decl, /[A-Za-z_][A-Za-z0-9_]*$/))
                print substr(decl, RSTART, RLENGTH)
        }
    }' | LC_ALL=C sort -u > "$tmp/declared"

if [ ! -s "$tmp/declared" ]; then
    echo "check-exports: no EVEXEC_API declarations found in $top_srcdir/include" >&2
    exit 99
fi

# Exported: every defined dynamic symbol but the ones the linker makes.
$NM -D --defined-only "$so" > "$tmp/nm" || {
    echo "check-exports: $NM -D failed on $so" >&2
    exit 99
}
awk 'NF >= 3 { print $3 } NF == 2 { print $2 }' "$tmp/nm" |
    sed 's/@.*//' |
    grep -v -x -E '_init|_fini|_edata|_end|__bss_start|__end__|_etext|__data_start|EVEXEC_[0-9.]+' |
    LC_ALL=C sort -u > "$tmp/exported"

LC_ALL=C comm -23 "$tmp/declared" "$tmp/exported" > "$tmp/missing"
LC_ALL=C comm -13 "$tmp/declared" "$tmp/exported" > "$tmp/extra"

status=0
if [ -s "$tmp/missing" ]; then
    echo "check-exports: declared EVEXEC_API but not exported by $dlname:"
    sed 's/^/  /' "$tmp/missing"
    status=1
fi
if [ -s "$tmp/extra" ]; then
    echo "check-exports: exported by $dlname but not declared EVEXEC_API in include/*.h:"
    sed 's/^/  /' "$tmp/extra"
    status=1
fi
# The recorded list (lib/libevexec.map): a symbol that disappears is an ABI
# break, one that appears must be recorded on purpose, in its version node.
map="$top_srcdir/lib/libevexec.map"
sed -n 's/^[ \t]*\(evexec_[A-Za-z0-9_]*\);[ \t]*$/\1/p' "$map" | LC_ALL=C sort -u > "$tmp/recorded"
LC_ALL=C comm -23 "$tmp/recorded" "$tmp/declared" > "$tmp/gone"
LC_ALL=C comm -13 "$tmp/recorded" "$tmp/declared" > "$tmp/unrecorded"
if [ -s "$tmp/gone" ]; then
    echo "check-exports: recorded in lib/libevexec.map but no longer declared (an ABI break):"
    sed 's/^/  /' "$tmp/gone"
    status=1
fi
if [ -s "$tmp/unrecorded" ]; then
    echo "check-exports: declared EVEXEC_API but not recorded in lib/libevexec.map:"
    sed 's/^/  /' "$tmp/unrecorded"
    status=1
fi
# With the version script, every export carries its version node.
if grep -q '@@EVEXEC_' "$tmp/nm"; then
    if grep ' evexec_' "$tmp/nm" | grep -v '@@EVEXEC_' > "$tmp/unversioned"; then
        echo "check-exports: exported without a version node:"
        sed 's/^/  /' "$tmp/unversioned"
        status=1
    fi
fi
if [ $status -eq 0 ]; then
    echo "check-exports: OK: $(wc -l < "$tmp/exported" | tr -d ' ') symbols," \
         "exactly the EVEXEC_API functions of include/*.h and the list in lib/libevexec.map"
fi
exit $status
