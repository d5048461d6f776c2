/*
 * error.c -- names for every error code evexec returns.
 *
 * Two tables: errno_names lists the errno values the library and its jobs
 * commonly produce, eai_names getaddrinfo's and getnameinfo's EAI_* codes
 * (every one this system defines).  They are arrays searched in order, not
 * switch labels, so that two macros with the same value (EAGAIN and
 * EWOULDBLOCK, an EAI code and an errno value) can never be a compile
 * error.
 *
 * The same int can mean two things.  glibc and musl make the EAI codes
 * negative, so they never collide with errno values and both kinds are
 * named.  The BSDs and macOS make them small positive numbers (EAI_AGAIN
 * is 2, which is also ENOENT): there a positive code is named as the errno
 * value it is, and the EAI table only names codes that are no errno value
 * of errno_names (include/evexec.h says so at evexec_strerror).
 * tests/check-portable-error.sh builds this file with macOS's values.
 *
 * Strings are static: evexec_strerror() is safe from any thread.
 */
#define _GNU_SOURCE
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <errno.h>
#include <netdb.h>
#include <stddef.h>

#include "evexec-internal.h"

struct evexec__code_name {
    int code;
    const char *text;
};

static const struct evexec__code_name errno_names[] = {
    { EPERM, "operation not permitted" },
    { ENOENT, "no such file or directory" },
    { ESRCH, "no such process" },
    { EINTR, "interrupted system call" },
    { EIO, "input/output error" },
    { ENXIO, "no such device or address" },
    { E2BIG, "argument list too long" },
    { ENOEXEC, "exec format error" },
    { EBADF, "bad file descriptor" },
    { ECHILD, "no child processes" },
    { EAGAIN, "resource temporarily unavailable" },
#if EAGAIN != EWOULDBLOCK
    { EWOULDBLOCK, "operation would block" },
#endif
    { ENOMEM, "out of memory" },
    { EACCES, "permission denied" },
    { EFAULT, "bad address" },
    { EBUSY, "resource busy" },
    { EEXIST, "file exists" },
    { EXDEV, "cross-device link" },
    { ENODEV, "no such device" },
    { ENOTDIR, "not a directory" },
    { EISDIR, "is a directory" },
    { EINVAL, "invalid argument" },
    { ENFILE, "too many open files in system" },
    { EMFILE, "too many open files" },
    { EFBIG, "file too large" },
    { ENOSPC, "no space left on device" },
    { ESPIPE, "illegal seek" },
    { EROFS, "read-only file system" },
    { EMLINK, "too many links" },
    { EPIPE, "broken pipe" },
    { ERANGE, "result out of range" },
    { EDEADLK, "resource deadlock avoided" },
    { ENAMETOOLONG, "file name too long" },
    { ENOSYS, "function not implemented" },
    { ENOTEMPTY, "directory not empty" },
    { ELOOP, "too many levels of symbolic links" },
    { EOVERFLOW, "value too large for defined data type" },
    { ENOTSUP, "operation not supported" },
    { EADDRINUSE, "address already in use" },
    { EADDRNOTAVAIL, "address not available" },
    { ENETUNREACH, "network is unreachable" },
    { ECONNABORTED, "connection aborted" },
    { ECONNRESET, "connection reset by peer" },
    { ECONNREFUSED, "connection refused" },
    { EHOSTUNREACH, "host is unreachable" },
    { ENOTCONN, "socket is not connected" },
    { ESHUTDOWN, "shut down: no new work is taken" },
    { ETIMEDOUT, "timed out" },
    { EALREADY, "already done" },
    { EINPROGRESS, "still pending" },
    { ECANCELED, "cancelled" },
    { EPROTO, "protocol error" },
    { EMSGSIZE, "message too long" },
};

/* POSIX's codes first, then each system's own, where defined.  EAI_SYSTEM
 * is named although evexec's DNS calls turn it into the errno it means. */
static const struct evexec__code_name eai_names[] = {
    { EAI_AGAIN, "temporary failure in name resolution" },
    { EAI_BADFLAGS, "bad value for ai_flags" },
    { EAI_FAIL, "non-recoverable failure in name resolution" },
    { EAI_FAMILY, "address family not supported" },
    { EAI_MEMORY, "out of memory in name resolution" },
    { EAI_NONAME, "name or service not known" },
    { EAI_SERVICE, "service not supported for socket type" },
    { EAI_SOCKTYPE, "socket type not supported" },
    { EAI_SYSTEM, "system error in name resolution" },
    { EAI_OVERFLOW, "argument buffer overflow" },
#ifdef EAI_NODATA
    { EAI_NODATA, "no address associated with hostname" },
#endif
#ifdef EAI_ADDRFAMILY
    { EAI_ADDRFAMILY, "address family for hostname not supported" },
#endif
#ifdef EAI_BADHINTS
    { EAI_BADHINTS, "invalid value for hints" },
#endif
#ifdef EAI_PROTOCOL
    { EAI_PROTOCOL, "resolved protocol is unknown" },
#endif
#ifdef EAI_IDN_ENCODE
    { EAI_IDN_ENCODE, "parameter string not correctly encoded" },
#endif
#ifdef EAI_INPROGRESS
    { EAI_INPROGRESS, "name resolution in progress" },
#endif
#ifdef EAI_CANCELED
    { EAI_CANCELED, "name resolution cancelled" },
#endif
#ifdef EAI_NOTCANCELED
    { EAI_NOTCANCELED, "name resolution not cancelled" },
#endif
#ifdef EAI_ALLDONE
    { EAI_ALLDONE, "all name resolutions done" },
#endif
#ifdef EAI_INTR
    { EAI_INTR, "name resolution interrupted" },
#endif
};

#define EVEXEC__NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const char *lookup(const struct evexec__code_name *t, size_t n, int code)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].code == code)
            return t[i].text;
    return NULL;
}

EVEXEC_API const char *evexec_strerror(int code)
{
    if (code == 0)
        return "success";
    /* errno first: where EAI codes are positive, the errno meaning wins. */
    const char *s = lookup(errno_names, EVEXEC__NELEM(errno_names), code);
    if (!s)
        s = lookup(eai_names, EVEXEC__NELEM(eai_names), code);
    return s ? s : "unknown error";
}
