#!/bin/sh
# check-portable-error.sh -- lib/error.c builds and names codes right where
# getaddrinfo's EAI_* codes are positive, as on the BSDs and macOS.
#
# There the same int is both an EAI code and an errno value (EAI_AGAIN is
# 2, so is ENOENT), so one switch over both would not compile (duplicate
# case labels).  This compiles lib/error.c, with -Werror, under a forced
# include that replaces this system's EAI_* macros with macOS's values,
# then runs a small program against it: every one of those codes has a
# name, and a code that is also an errno value keeps its errno name (the
# rule include/evexec.h gives at evexec_strerror).
#
# Run by `make check`, which sets top_srcdir and CC.  ERROR_C names another
# error.c to try (default: $top_srcdir/lib/error.c).
set -eu
: "${top_srcdir:=.}"
cc=${CC:-cc}
src=${ERROR_C:-$top_srcdir/lib/error.c}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

cat >"$dir/eai-macos.h" <<'HDR'
/* This system's <netdb.h> first (its include guard then keeps it from
 * coming back), then macOS's EAI_* values in place of its own. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <netdb.h>
#undef EAI_ADDRFAMILY
#undef EAI_AGAIN
#undef EAI_BADFLAGS
#undef EAI_FAIL
#undef EAI_FAMILY
#undef EAI_MEMORY
#undef EAI_NODATA
#undef EAI_NONAME
#undef EAI_SERVICE
#undef EAI_SOCKTYPE
#undef EAI_SYSTEM
#undef EAI_BADHINTS
#undef EAI_PROTOCOL
#undef EAI_OVERFLOW
#undef EAI_MAX
#undef EAI_INPROGRESS
#undef EAI_CANCELED
#undef EAI_NOTCANCELED
#undef EAI_ALLDONE
#undef EAI_INTR
#undef EAI_IDN_ENCODE
#define EAI_ADDRFAMILY 1
#define EAI_AGAIN 2
#define EAI_BADFLAGS 3
#define EAI_FAIL 4
#define EAI_FAMILY 5
#define EAI_MEMORY 6
#define EAI_NODATA 7
#define EAI_NONAME 8
#define EAI_SERVICE 9
#define EAI_SOCKTYPE 10
#define EAI_SYSTEM 11
#define EAI_BADHINTS 12
#define EAI_PROTOCOL 13
#define EAI_OVERFLOW 14
#define EAI_MAX 15
HDR

cat >"$dir/use.c" <<'SRC'
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "evexec.h"

static int bad;

static void named(const char *what, int code)
{
    const char *s = evexec_strerror(code);
    if (!s || !*s || strcmp(s, "unknown error") == 0) {
        printf("FAIL: %s (%d) has no name\n", what, code);
        bad = 1;
    }
}

static void is(const char *what, int code, const char *want)
{
    const char *s = evexec_strerror(code);
    if (!s || strcmp(s, want) != 0) {
        printf("FAIL: %s (%d) is \"%s\", not \"%s\"\n", what, code,
               s ? s : "(null)", want);
        bad = 1;
    }
}

#define NAMED(c) named(#c, c)
int main(void)
{
    NAMED(EAI_ADDRFAMILY); NAMED(EAI_AGAIN); NAMED(EAI_BADFLAGS);
    NAMED(EAI_FAIL); NAMED(EAI_FAMILY); NAMED(EAI_MEMORY); NAMED(EAI_NODATA);
    NAMED(EAI_NONAME); NAMED(EAI_SERVICE); NAMED(EAI_SOCKTYPE);
    NAMED(EAI_SYSTEM); NAMED(EAI_BADHINTS); NAMED(EAI_PROTOCOL);
    NAMED(EAI_OVERFLOW);
    /* errno values keep their names, whatever EAI code shares the int. */
    is("ENOENT", ENOENT, "no such file or directory");
    is("EINTR", EINTR, "interrupted system call");
    is("EIO", EIO, "input/output error");
    is("EBADF", EBADF, "bad file descriptor");
    is("EAGAIN", EAGAIN, "resource temporarily unavailable");
    is("ENOMEM", ENOMEM, "out of memory");
    is("EACCES", EACCES, "permission denied");
    is("ECANCELED", ECANCELED, "cancelled");
    is("ETIMEDOUT", ETIMEDOUT, "timed out");
    is("0", 0, "success");
    is("123456", 123456, "unknown error");
    is("-123456", -123456, "unknown error");
    if (!bad)
        printf("ok: every macOS EAI code named; errno names kept\n");
    return bad;
}
SRC

flags="-std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror"
inc="-I$top_srcdir/include -I$top_srcdir/lib"
echo "compiling $src with macOS's EAI_* values"
$cc $flags $inc -include "$dir/eai-macos.h" -c "$src" -o "$dir/error.o"
$cc $flags $inc -include "$dir/eai-macos.h" -c "$dir/use.c" -o "$dir/use.o"
$cc "$dir/use.o" "$dir/error.o" -o "$dir/use"
"$dir/use"
