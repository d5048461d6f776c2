#!/bin/sh
# check-config-defs.sh -- what configure found is what the library uses.
#
# evexec has no config.h: configure's HAVE_* results reach the compiler as
# -D flags in DEFS, which automake puts on every compile line.  This reads
# DEFS from the Makefile and checks, with nm, that the library calls
# eventfd, pipe2 and pthread_setname_np exactly when DEFS says the system
# has them.  A define that got lost on the way (a compile rule without
# DEFS, a source that wants a config.h) or a call made without its guard
# fails here; tools/check-all.sh's "portable" build runs it with configure
# told that none of them exist.
#
# Run by `make check`, which sets top_builddir and NM.  Exits 77 (skipped)
# when nm is missing.
set -u
top_builddir=${top_builddir:-.}
NM=${NM:-nm}

mf=$top_builddir/Makefile
la=$top_builddir/lib/libevexec.la
[ -f "$mf" ] && [ -f "$la" ] || {
    echo "check-config-defs: $mf or $la not found (build first)" >&2
    exit 99
}
set -- $NM
command -v "$1" >/dev/null 2>&1 || { echo "check-config-defs: SKIP: no nm ($NM)"; exit 77; }

defs=$(sed -n 's/^DEFS = //p' "$mf")
echo "DEFS = $defs"

# The static archive when there is one (the tests link it), else the
# shared library.
old=$(sed -n "s/^old_library='\(.*\)'\$/\1/p" "$la")
dl=$(sed -n "s/^dlname='\(.*\)'\$/\1/p" "$la")
if [ -n "$old" ] && [ -f "$top_builddir/lib/.libs/$old" ]; then
    lib=$top_builddir/lib/.libs/$old
    undef=$($NM "$lib" 2>/dev/null)
elif [ -n "$dl" ] && [ -f "$top_builddir/lib/.libs/$dl" ]; then
    lib=$top_builddir/lib/.libs/$dl
    undef=$($NM -D "$lib" 2>/dev/null)
else
    echo "check-config-defs: no built library next to $la" >&2
    exit 99
fi
undef=$(printf '%s\n' "$undef" | awk '$1 == "U" { print $2 }' |
        sed -e 's/@.*//' -e 's/^_//' | sort -u)

has_def() {
    for d in $defs; do
        case $d in -D$1|-D$1=*) return 0 ;; esac
    done
    return 1
}
calls() { printf '%s\n' "$undef" | grep -x -q "$1"; }

status=0
# check SYMBOL DEFINE...: SYMBOL is called iff every DEFINE is in DEFS.
check() {
    sym=$1; shift
    want=yes
    for d in "$@"; do has_def "$d" || want=no; done
    if calls "$sym"; then got=yes; else got=no; fi
    if [ "$want" = "$got" ]; then
        echo "ok: $sym: configure says $want ($*), the library calls it: $got"
    else
        echo "FAIL: $sym: configure says $want ($*), but the library calls it: $got"
        status=1
    fi
}
check eventfd HAVE_SYS_EVENTFD_H HAVE_EVENTFD
check pipe2 HAVE_PIPE2
check pthread_setname_np HAVE_PTHREAD_SETNAME_NP
[ $status -eq 0 ] && echo "check-config-defs: OK ($lib)"
exit $status
