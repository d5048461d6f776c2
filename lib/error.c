/*
 * error.c -- names for every error code evexec returns.
 *
 * One table, EVEXEC__ERRNO_MAP, lists the errno values the library and its
 * jobs commonly produce; EVEXEC__EAI_MAP lists getaddrinfo's codes, which
 * glibc makes negative so they never collide with errno values.  Both
 * expand into one switch, so a code is named in exactly one place.
 * Strings are static: evexec_strerror() is safe from any thread.
 */
#define _GNU_SOURCE
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <errno.h>
#include <netdb.h>

#include "evexec-internal.h"

#define EVEXEC__ERRNO_MAP(X)                                          \
    X(EPERM, "operation not permitted")                               \
    X(ENOENT, "no such file or directory")                            \
    X(ESRCH, "no such process")                                       \
    X(EINTR, "interrupted system call")                               \
    X(EIO, "input/output error")                                      \
    X(ENXIO, "no such device or address")                             \
    X(E2BIG, "argument list too long")                                \
    X(EBADF, "bad file descriptor")                                   \
    X(EAGAIN, "resource temporarily unavailable")                     \
    X(ENOMEM, "out of memory")                                        \
    X(EACCES, "permission denied")                                    \
    X(EFAULT, "bad address")                                          \
    X(EBUSY, "resource busy")                                         \
    X(EEXIST, "file exists")                                          \
    X(EXDEV, "cross-device link")                                     \
    X(ENODEV, "no such device")                                       \
    X(ENOTDIR, "not a directory")                                     \
    X(EISDIR, "is a directory")                                       \
    X(EINVAL, "invalid argument")                                     \
    X(ENFILE, "too many open files in system")                        \
    X(EMFILE, "too many open files")                                  \
    X(EFBIG, "file too large")                                        \
    X(ENOSPC, "no space left on device")                              \
    X(ESPIPE, "illegal seek")                                         \
    X(EROFS, "read-only file system")                                 \
    X(EMLINK, "too many links")                                       \
    X(EPIPE, "broken pipe")                                           \
    X(ERANGE, "result out of range")                                  \
    X(EDEADLK, "resource deadlock avoided")                           \
    X(ENAMETOOLONG, "file name too long")                             \
    X(ENOSYS, "function not implemented")                             \
    X(ENOTEMPTY, "directory not empty")                               \
    X(ELOOP, "too many levels of symbolic links")                     \
    X(EOVERFLOW, "value too large for defined data type")             \
    X(ENOTSUP, "operation not supported")                             \
    X(EADDRINUSE, "address already in use")                           \
    X(EADDRNOTAVAIL, "address not available")                         \
    X(ENETUNREACH, "network is unreachable")                          \
    X(ECONNABORTED, "connection aborted")                             \
    X(ECONNRESET, "connection reset by peer")                         \
    X(ECONNREFUSED, "connection refused")                             \
    X(EHOSTUNREACH, "host is unreachable")                            \
    X(ENOTCONN, "socket is not connected")                            \
    X(ESHUTDOWN, "shut down: no new work is taken")                   \
    X(ETIMEDOUT, "timed out")                                         \
    X(EALREADY, "already done")                                       \
    X(EINPROGRESS, "still pending")                                   \
    X(ECANCELED, "cancelled")                                         \
    X(EPROTO, "protocol error")                                       \
    X(EMSGSIZE, "message too long")

#define EVEXEC__EAI_MAP(X)                                            \
    X(EAI_BADFLAGS, "bad value for ai_flags")                         \
    X(EAI_NONAME, "name or service not known")                        \
    X(EAI_AGAIN, "temporary failure in name resolution")              \
    X(EAI_FAIL, "non-recoverable failure in name resolution")         \
    X(EAI_FAMILY, "address family not supported")                     \
    X(EAI_SOCKTYPE, "socket type not supported")                      \
    X(EAI_SERVICE, "service not supported for socket type")           \
    X(EAI_MEMORY, "out of memory in name resolution")                 \
    X(EAI_SYSTEM, "system error in name resolution")                  \
    X(EAI_OVERFLOW, "argument buffer overflow")                       \
    EVEXEC__EAI_GNU_MAP(X)

#if defined(EAI_NODATA) && defined(EAI_ADDRFAMILY)
#define EVEXEC__EAI_GNU_MAP(X)                                        \
    X(EAI_NODATA, "no address associated with hostname")              \
    X(EAI_ADDRFAMILY, "address family for hostname not supported")
#else
#define EVEXEC__EAI_GNU_MAP(X)
#endif

#define EVEXEC__CASE(code, text) case code: return text;

EVEXEC_API const char *evexec_strerror(int code)
{
    if (code == 0)
        return "success";
    switch (code) {
    EVEXEC__ERRNO_MAP(EVEXEC__CASE)
#if EAGAIN != EWOULDBLOCK
    case EWOULDBLOCK: return "operation would block";
#endif
    EVEXEC__EAI_MAP(EVEXEC__CASE)
    default:
        return "unknown error";
    }
}

EVEXEC_API const char *evexec_version(void)
{
    return EVEXEC_VERSION_STRING;
}
