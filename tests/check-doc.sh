#!/bin/sh
# check-doc.sh -- the API reference documents the whole public API.
#
# Reads what `make doc` made with doxygen (doc/Doxyfile, from
# doc/Doxyfile.in) in the build tree and fails when:
#  - doxygen wrote any warning to doc/doxygen-warnings.log (it warns about
#    every undocumented macro, typedef, struct and struct member of a
#    documented file, and about malformed comments);
#  - a symbol exported by the library (lib/libevexec.map, the version
#    script) is not declared in the headers as doxygen sees them, or has
#    neither a brief nor a detailed description in doc/xml;
#  - a macro, struct or typedef defined in include/*.h (include guards
#    aside), or anything else doxygen put in doc/xml (struct members
#    included), has no description.
# Prints how many symbols are documented.
#
# Run by `make doc` and `make doc-check`, which set top_srcdir and
# top_builddir (by hand: top_srcdir=. top_builddir=build sh tests/check-doc.sh).

set -u

top_srcdir=${top_srcdir:-.}
top_builddir=${top_builddir:-.}
xml="$top_builddir/doc/xml"
log="$top_builddir/doc/doxygen-warnings.log"
map="$top_srcdir/lib/libevexec.map"

if [ ! -f "$log" ] || [ ! -f "$xml/index.xml" ]; then
    echo "check-doc: $log or $xml/index.xml not found (run make doc first)" >&2
    exit 99
fi
if [ ! -f "$map" ]; then
    echo "check-doc: $map not found" >&2
    exit 99
fi

tmp=${TMPDIR:-/tmp}/check-doc.$$
mkdir "$tmp" || exit 99
trap 'rm -rf "$tmp"' EXIT HUP INT TERM

status=0
# report FILE MESSAGE: when FILE is not empty, print MESSAGE and FILE's
# lines, indented, and fail.
report() {
    if [ -s "$1" ]; then
        echo "check-doc: $2"
        sed 's/^/  /' "$1"
        status=1
    fi
}

# 1. Doxygen's warnings.
report "$log" "doxygen warned ($(wc -l < "$log" | tr -d ' ') lines of $log):"

# 2. What doxygen documented: one line per entity, "KIND NAME D", D 1 when
# its brief or detailed description holds any text.  Members are named by
# their qualified name (evexec_buf::len), compounds by theirs.
for f in "$xml"/*.xml; do
    case ${f##*/} in index.xml|Doxyfile.xml) continue ;; esac
    cat "$f"
done | awk '
    function flush_text(s) {
        gsub(/<[^>]*>/, "", s)
        if (s ~ /[^ \t\r]/) {
            if (inmember) mdoc = 1; else cdoc = 1
        }
    }
    /<compounddef / {
        ckind = $0; sub(/.*<compounddef [^>]*kind="/, "", ckind); sub(/".*/, "", ckind)
        cname = ""; cdoc = 0
    }
    /<compoundname>/ && cname == "" {
        cname = $0; sub(/.*<compoundname>/, "", cname); sub(/<\/compoundname>.*/, "", cname)
    }
    /<memberdef / {
        inmember = 1; mname = ""; mqual = ""; mdoc = 0
        mkind = $0; sub(/.*<memberdef [^>]*kind="/, "", mkind); sub(/".*/, "", mkind)
    }
    inmember && /<name>/ && mname == "" {
        mname = $0; sub(/.*<name>/, "", mname); sub(/<\/name>.*/, "", mname)
    }
    inmember && /<qualifiedname>/ && mqual == "" {
        mqual = $0; sub(/.*<qualifiedname>/, "", mqual); sub(/<\/qualifiedname>.*/, "", mqual)
    }
    {
        line = $0
        while (line != "") {
            if (!indesc) {
                p = match(line, /<(brief|detailed)description>/)
                if (!p) break
                line = substr(line, RSTART + RLENGTH)
                indesc = 1
            } else {
                p = match(line, /<\/(brief|detailed)description>/)
                if (!p) { flush_text(line); break }
                flush_text(substr(line, 1, RSTART - 1))
                line = substr(line, RSTART + RLENGTH)
                indesc = 0
            }
        }
    }
    /<\/memberdef>/ {
        print mkind, (mqual != "" ? mqual : mname), mdoc
        inmember = 0
    }
    /<\/compounddef>/ {
        print ckind, cname, cdoc
    }' | LC_ALL=C sort -u > "$tmp/entities"

if [ ! -s "$tmp/entities" ]; then
    echo "check-doc: nothing found in $xml" >&2
    exit 99
fi

# 2a. Every exported symbol: a documented function.
sed -n 's/^[ \t]*\(evexec_[A-Za-z0-9_]*\);.*$/\1/p' "$map" | LC_ALL=C sort -u > "$tmp/exported"
awk '$1 == "function" { print $2 }' "$tmp/entities" | LC_ALL=C sort -u > "$tmp/functions"
awk '$1 == "function" && $3 == 1 { print $2 }' "$tmp/entities" | LC_ALL=C sort -u > "$tmp/functions-doc"
LC_ALL=C comm -23 "$tmp/exported" "$tmp/functions" > "$tmp/unseen"
LC_ALL=C comm -23 "$tmp/exported" "$tmp/functions-doc" |
    LC_ALL=C comm -23 - "$tmp/unseen" > "$tmp/undoc"
report "$tmp/unseen" "exported (lib/libevexec.map) but no function of that name in the reference:"
report "$tmp/undoc" "exported (lib/libevexec.map) without a description:"

# 2b. Every macro, struct and typedef the headers define.  Include guards
# are the macros some #ifndef tests.
cat "$top_srcdir"/include/*.h > "$tmp/headers"
sed -n 's/^[ \t]*#[ \t]*ifndef[ \t][ \t]*\([A-Za-z_][A-Za-z0-9_]*\).*/\1/p' "$tmp/headers" |
    LC_ALL=C sort -u > "$tmp/guards"
{
    sed -n 's/^[ \t]*#[ \t]*define[ \t][ \t]*\([A-Za-z_][A-Za-z0-9_]*\).*/define \1/p' "$tmp/headers" |
        LC_ALL=C sort -u | LC_ALL=C join -v 1 -1 2 -o 1.1,1.2 - "$tmp/guards"
    sed -n 's/^[ \t]*struct[ \t][ \t]*\([A-Za-z_][A-Za-z0-9_]*\)[ \t]*{.*/struct \1/p' "$tmp/headers"
    sed -n 's/^[ \t]*typedef[^;]*(\*[ \t]*\([A-Za-z_][A-Za-z0-9_]*\)[ \t]*).*/typedef \1/p;
            s/^[ \t]*typedef[^;(]*[ \t*]\([A-Za-z_][A-Za-z0-9_]*\)[ \t]*;.*/typedef \1/p' "$tmp/headers"
} | LC_ALL=C sort -u > "$tmp/declared"
awk '$3 == 1 { print $1, $2 }' "$tmp/entities" | LC_ALL=C sort -u > "$tmp/documented"
LC_ALL=C comm -23 "$tmp/declared" "$tmp/documented" > "$tmp/undoc-decl"
report "$tmp/undoc-decl" "defined in include/*.h but not documented in the reference:"

# 2c. Anything else doxygen listed without a description.
awk '$3 != 1 { print $1, $2 }' "$tmp/entities" > "$tmp/undoc-any"
report "$tmp/undoc-any" "in the reference without a description:"

count() { awk -v k="$1" '$1 == k && $3 == 1' "$tmp/entities" | wc -l | tr -d ' '; }
n_fn=$(count function)
n_define=$(count define)
n_typedef=$(count typedef)
n_struct=$(count struct)
n_field=$(count variable)
n_all=$((n_fn + n_define + n_typedef + n_struct + n_field))
echo "check-doc: $n_all documented symbols: $n_fn functions" \
     "($(wc -l < "$tmp/exported" | tr -d ' ') exported in lib/libevexec.map)," \
     "$n_define macros, $n_typedef typedefs, $n_struct structs with $n_field members"
if [ $status -eq 0 ]; then
    echo "check-doc: OK: no doxygen warning; every exported symbol, macro, struct," \
         "typedef and member has a description"
else
    echo "check-doc: FAILED"
fi
exit $status
