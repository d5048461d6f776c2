/** @file
 * evexec-io.h -- offloaded I/O: name lookups and file system calls run on
 * the pool, their outcomes delivered as futures on the loop.
 *
 * Included by evexec.h; do not include directly.
 *
 * Every call here is a constructor like evexec_run(): it returns a new
 * future (one reference, the caller's) or NULL with errno set, and then
 * the callback rule of evexec.h holds: a call that fails has started
 * nothing.  All calls are loop-thread only, and so are the accessors.
 *
 * Bad input is refused at the call: NULL with errno EINVAL, and nothing is
 * queued.  That covers a NULL evexec, a NULL path or name, a NULL buffer
 * with a non-zero length, a length above SSIZE_MAX, a negative fd or
 * offset.  Whatever the system call itself judges (a closed fd, a missing
 * file, bad flags) comes back as the future's error.  Besides EINVAL, every
 * constructor may fail as evexec_run() does: EAGAIN (bounded queue full, or
 * no worker thread), ESHUTDOWN (pool shut down, or the evexec being freed),
 * ENOMEM.
 *
 * Strings and small structures passed in (paths, node and service names,
 * hints, socket addresses) are copied: the caller's copies may go as soon
 * as the call returns.  Data buffers are borrowed: the caller keeps them
 * valid until the future has ended.  One caveat: when evexec_free() is
 * called while such a job runs, the future ends there and then but the
 * system call still runs on its worker; keep the buffer until the pool has
 * finished it (evexec_pool_shutdown() with EVEXEC_SHUTDOWN_WAIT, or
 * evexec_pool_free()).
 *
 * Borrowed buffers and combinators.  The buffer belongs to the file
 * future that was given it (the "inner" future), not to any combinator
 * around it.  An evexec_wait_for() that times out, or a gather or wait_for
 * that is cancelled, ends at once, while a job already running goes on
 * reading into (or writing from) the buffer until its system call
 * returns; only then does the inner future end (ECANCELED).  So the buffer
 * must stay valid until the inner future has ended, however the
 * combinator ended.  The safe way to free it is a done callback on the
 * inner future: evexec_future_on_done(inner, free_buffer_cb, buf), added
 * before the caller drops its reference to inner (the callback runs once,
 * also when evexec_free() ends the future).  Keep in mind that the
 * caveat above still holds for evexec_free().
 *
 * Results are owned by the future and released with it, unless taken with
 * evexec_future_take_result() (or evexec_fs_take_fd() for a descriptor).
 * A result that a job made but nobody will see (the future was cancelled
 * while the job ran, or its evexec was freed) is released by the library:
 * a cancelled evexec_fs_open() never leaks its descriptor.  Pointer results
 * are plain C objects read with evexec_future_result() and a conversion
 * (struct addrinfo *ai = evexec_future_result(f)).  Descriptors and byte
 * counts are not pointers: read them with evexec_fs_fd() and
 * evexec_fs_count(), never by converting the result pointer.
 *
 * Scalars through combinators.  evexec_fs_count(), evexec_fs_fd() and
 * evexec_fs_take_fd() given an evexec_wait_for() read through it to its
 * inner future (through wait_fors of wait_fors too): once the wait_for has
 * ended 0 they give what they give on the inner future, and
 * evexec_fs_take_fd() takes the descriptor from the inner future, once.
 * While the wait_for is pending or after it failed, they give -1 with
 * errno set to the wait_for's own error: EINPROGRESS, ETIMEDOUT after a
 * timeout (whatever becomes of the inner future later), ECANCELED.  A
 * gather's inputs are read with evexec_gather_input():
 * evexec_fs_count(evexec_gather_input(g, i)).  The entries of a gather's
 * result array (and the result pointer of a wait_for) are never to be
 * converted either.
 *
 * Lanes.  Name lookups run on the slow lane (EVEXEC_LANE_SLOW): a lookup
 * can hang for as long as the resolver's timeouts, and the slow lane never
 * holds more than half of the pool's threads.  File calls run on the
 * default lane.
 *
 * Cancelling.  A job still queued never runs.  A running lookup or file
 * call cannot be interrupted: it finishes and its result is released.  A
 * file call's future ends ECANCELED when the call has returned; an
 * evexec_getaddrinfo() future ends ECANCELED at once (the lookup may be
 * shared, see there).  evexec_fs_read_file(), evexec_fs_write_file()
 * and evexec_fs_copyfile() look at the cancel request between chunks and
 * stop early.
 */
#ifndef EVEXEC_IO_H
#define EVEXEC_IO_H

#include <fcntl.h>              /* AT_FDCWD and the AT_* flags of the *at calls */
#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netdb.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Name lookups (slow lane)                                            */
/* ------------------------------------------------------------------ */

/**
 * Run getaddrinfo(node, service, hints) on the pool.
 *
 * node, service and hints are copied (of hints only ai_flags, ai_family,
 * ai_socktype and ai_protocol count, as POSIX says); hints may be NULL.
 * At least one of node and service must be given.
 *
 * Result: the `struct addrinfo` list (new, owned by the future, released
 * with freeaddrinfo()).  Taken with evexec_future_take_result(), the
 * caller releases it with freeaddrinfo().
 *
 * Errors of the future: getaddrinfo's EAI_* codes as they are (negative in
 * glibc and musl, so they never collide with errno values there; see
 * evexec_strerror() for systems where they are positive): EAI_NONAME, EAI_AGAIN,
 * EAI_FAIL, EAI_FAMILY, EAI_SOCKTYPE, EAI_SERVICE, EAI_BADFLAGS,
 * EAI_MEMORY...; EAI_SYSTEM becomes the errno it stands for (EIO if none
 * was set); ECANCELED.  evexec_strerror() names all of them.
 *
 * Shared lookups.  Calls on one evexec with the same node, service and
 * hints (NULL hints and zeroed hints count as different) share one
 * getaddrinfo() while it is in flight: a call made before the lookup has
 * ended joins it instead of starting another.  Each call still gets its
 * own future and its own list, released with freeaddrinfo() like any
 * other (the first caller gets the list getaddrinfo() made, the others
 * copies made the way the C library makes its lists); every call gets
 * the same error.  Cancelling (or dropping the last reference to) one
 * call's future ends only that future, ECANCELED at once; the lookup
 * itself is cancelled, and its result released, only when no call waits
 * for it any more.  evexec_free() ends each waiting future ECANCELED
 * once.  A lookup always goes through the system resolver (NSS:
 * /etc/hosts, DNS, every configured module).  Sharing needs copies that
 * freeaddrinfo() releases, which evexec makes on glibc only: elsewhere
 * every call has a lookup of its own, as it had before.  Results may also
 * come from the cache, when it is on: see evexec_dns_set_cache().
 *
 * Returns a new future, or NULL with errno EINVAL (NULL ex; node and
 * service both NULL) or as evexec_run(): ESHUTDOWN also when the pool is
 * shut down and the call would have shared a lookup or found its answer
 * in the cache.  A call that shares a lookup queues nothing, so it never
 * fails with EAGAIN.  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_getaddrinfo(struct evexec *ex,
                                                    const char *node,
                                                    const char *service,
                                                    const struct addrinfo *hints);

/** Settings of evexec_getaddrinfo()'s cache (evexec_dns_set_cache()).
 *  All zero (or a NULL pointer): no cache, the default. */
struct evexec_dns_cache_opts {
    /** The size of this struct as the caller knows it: set it with
     *  EVEXEC_DNS_CACHE_OPTS_INIT.  0 means the first layout (the fields
     *  below); as for struct evexec_pool_config. */
    size_t size;
    /** How long a successful lookup's list is kept, in milliseconds.
     *  0: successful lookups are not cached. */
    unsigned positive_ttl_ms;
    /** How long an answer that the name has no address (EAI_NONAME, and
     *  EAI_NODATA where it exists) is kept, in milliseconds.  0: such
     *  answers are not cached.  Other failures (EAI_AGAIN, EAI_FAIL,
     *  system errors, ECANCELED...) are never cached. */
    unsigned negative_ttl_ms;
    /** Most entries kept; when full, the oldest stored goes first.
     *  0: 1024. */
    size_t max_entries;
};

/** An initializer for struct evexec_dns_cache_opts: cache off, size set. */
#ifdef __cplusplus
#define EVEXEC_DNS_CACHE_OPTS_INIT { sizeof(struct evexec_dns_cache_opts) }
#else
#define EVEXEC_DNS_CACHE_OPTS_INIT { .size = sizeof(struct evexec_dns_cache_opts) }
#endif

/**
 * Turn evexec_getaddrinfo()'s cache on, change it, or turn it off (opts
 * NULL, or both TTLs 0: the default).  Each call empties the cache.
 *
 * The cache belongs to `ex` and is keyed as shared lookups are (node,
 * service, hints).  A call that finds a live entry makes no lookup: its
 * future ends at once (its callbacks run from the loop, as always) with
 * a copy of the cached list, released with freeaddrinfo(), or with the
 * cached error.  Entries expire on the monotonic clock, TTL milliseconds
 * after the lookup that made them ended.  The TTLs are these, never the
 * DNS records' own: getaddrinfo() does not report those, so a record
 * that changes is seen only once its entry has expired; keep the TTLs
 * short.  evexec_free() frees the cache.
 *
 * Returns 0; EINVAL (NULL ex, or a size as struct evexec_pool_config's
 * rules refuse); ENOTSUP (a TTL given where the C library is not glibc:
 * no copies can be made there, see evexec_getaddrinfo()); ENOMEM;
 * ESHUTDOWN (being freed, or inherited across fork()).  Nothing changes
 * when it fails.  Loop thread.
 */
EVEXEC_API int evexec_dns_set_cache(struct evexec *ex,
                                    const struct evexec_dns_cache_opts *opts);

/* Sizes of glibc's NI_MAXHOST and NI_MAXSERV, which <netdb.h> declares
 * only for _DEFAULT_SOURCE/_GNU_SOURCE builds. */
#define EVEXEC_NI_MAXHOST 1025 /**< The size of evexec_nameinfo's host (NI_MAXHOST). */
#define EVEXEC_NI_MAXSERV 32   /**< The size of evexec_nameinfo's serv (NI_MAXSERV). */

/** The result of evexec_getnameinfo(): two NUL-terminated strings. */
struct evexec_nameinfo {
    char host[EVEXEC_NI_MAXHOST]; /**< the host name, or the numeric address */
    char serv[EVEXEC_NI_MAXSERV]; /**< the service name, or the port number */
};

/**
 * Run getnameinfo(sa, salen, ..., flags) on the pool, asking for both the
 * host and the service.
 *
 * The socket address is copied.  flags are getnameinfo's NI_* flags.
 *
 * Result: a struct evexec_nameinfo (new, owned by the future, released
 * with free()).
 *
 * Errors of the future: getnameinfo's EAI_* codes (EAI_FAMILY for an
 * address family it does not know, EAI_NONAME with NI_NAMEREQD and no
 * name, EAI_BADFLAGS, EAI_AGAIN, EAI_FAIL, EAI_OVERFLOW, ...); EAI_SYSTEM
 * becomes its errno; ECANCELED.
 *
 * Returns a new future, or NULL with errno EINVAL (NULL ex or sa, salen 0
 * or larger than struct sockaddr_storage) or as evexec_run().  Loop
 * thread.
 */
EVEXEC_API struct evexec_future *evexec_getnameinfo(struct evexec *ex,
                                                    const struct sockaddr *sa,
                                                    socklen_t salen, int flags);

/* ------------------------------------------------------------------ */
/* Files (default lane)                                                */
/* ------------------------------------------------------------------ */

/*
 * Each evexec_fs_X() runs the system call X(2) on the pool and ends its
 * future with 0 or the call's errno.  Results, where there is one, are
 * listed with each call.
 *
 * Signals.  A call that a signal interrupts (EINTR) is made again, in
 * every evexec_fs_*() and in every step of read_file and write_file, so
 * EINTR never ends a future.  Two exceptions: close(2) is never repeated
 * (see evexec_fs_close(), which reports success then), and scandir(3) is
 * started over as a whole.
 *
 * Directory-relative calls.  The calls ending in "at" (openat, statat,
 * unlinkat, mkdirat, renameat, readlinkat) take a relative path relative
 * to the directory open as dirfd, as openat(2) and its kin do; an
 * absolute path ignores dirfd.  dirfd may be AT_FDCWD, the current
 * directory: the call without "at" is exactly that call with AT_FDCWD.
 * dirfd is borrowed, not duplicated: keep it open until the future has
 * ended (closed earlier, the job may find EBADF, or a descriptor that
 * reused the number).  Errors at the call, besides those of the call
 * without "at": EINVAL for a dirfd < 0 other than AT_FDCWD, and for flag
 * bits the call does not take.  Errors of the future, besides those of
 * the call without "at": EBADF when dirfd is not an open descriptor and
 * ENOTDIR when it is not a directory (both with a relative path only).
 */

/**
 * open(path, flags | O_CLOEXEC, mode).
 *
 * Result: the new descriptor.  The future owns it and closes it when it
 * goes (and when the open was cancelled or its evexec freed while it ran),
 * unless it is taken with evexec_fs_take_fd(): then the caller closes it.
 * Read it with evexec_fs_fd() or evexec_fs_take_fd().
 *
 * Returns a new future, or NULL with errno EINVAL (NULL ex or path) or as
 * evexec_run().  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_open(struct evexec *ex, const char *path,
                                                int flags, mode_t mode);

/**
 * openat(dirfd, path, flags | O_CLOEXEC, mode): evexec_fs_open() relative
 * to dirfd (see "Directory-relative calls" above).  Result as
 * evexec_fs_open()'s, read with evexec_fs_fd() or evexec_fs_take_fd().
 * Errors of the future: openat(2)'s (ENOENT, EACCES, EEXIST, EISDIR,
 * ENOTDIR, EBADF, ELOOP, ...); ECANCELED.  Returns a new future, or NULL
 * with errno EINVAL (NULL ex or path, dirfd < 0 other than AT_FDCWD) or as
 * evexec_run().  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_openat(struct evexec *ex, int dirfd,
                                                  const char *path, int flags,
                                                  mode_t mode);

/**
 * close(fd).  The descriptor is gone when the future ends, whatever the
 * error (as Linux's close(2) does).  Do not cancel a close: once it has
 * been taken by a worker, whether fd was closed is unknown to the caller.
 * Returns a new future, or NULL with errno EINVAL (NULL ex, fd < 0) or as
 * evexec_run().  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_close(struct evexec *ex, int fd);

/**
 * One read(fd, buf, len).  buf is borrowed: it must stay valid, and
 * untouched by the loop, until this future has ended; not merely until a
 * combinator around it has (a wait_for that timed out ends while the read
 * still runs and writes into buf).  Free it from a done callback on this
 * future when it may be cut short (see "Borrowed buffers and
 * combinators" at the top of this file).
 * Result: the byte count, read with evexec_fs_count(); 0 at end of file.
 * Returns a new future, or NULL with errno EINVAL (NULL ex, fd < 0, NULL
 * buf with len > 0, len > SSIZE_MAX) or as evexec_run().  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_read(struct evexec *ex, int fd,
                                                void *buf, size_t len);

/**
 * One write(fd, buf, len).  buf is borrowed, as for evexec_fs_read(): it
 * stays valid until this future has ended, whatever ends a combinator
 * around it first (the write goes on reading it).
 * Result: the byte count (it may be short, as write(2)'s), read with
 * evexec_fs_count().  It is passed on as write(2) gave it, 0 included: a
 * caller that loops until everything is written should treat 0 for a
 * non-zero len as an error (evexec_fs_write_file() ends EIO then) rather
 * than try again forever.  To write a whole file, see
 * evexec_fs_write_file().  Errors at the call as evexec_fs_read().  Loop
 * thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_write(struct evexec *ex, int fd,
                                                 const void *buf, size_t len);

/**
 * One pread(fd, buf, len, offset).  As evexec_fs_read(), buf borrowed
 * until this future has ended; also EINVAL at the call for offset < 0.
 * Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_pread(struct evexec *ex, int fd,
                                                 void *buf, size_t len,
                                                 off_t offset);

/**
 * One pwrite(fd, buf, len, offset).  As evexec_fs_write(), buf borrowed
 * until this future has ended; also EINVAL at the call for offset < 0.
 * Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_pwrite(struct evexec *ex, int fd,
                                                  const void *buf, size_t len,
                                                  off_t offset);

/**
 * stat(path).  Result: a struct stat (new, owned by the future, released
 * with free()).  Returns a new future, or NULL with errno EINVAL (NULL ex
 * or path) or as evexec_run().  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_stat(struct evexec *ex, const char *path);

/**
 * fstatat(dirfd, path, flags): evexec_fs_stat() relative to dirfd (see
 * "Directory-relative calls" above); flags is 0 or AT_SYMLINK_NOFOLLOW
 * (then a symbolic link is not followed, as evexec_fs_lstat()).  Result
 * as evexec_fs_stat()'s: a struct stat (new, owned by the future, released
 * with free()).  Errors of the future: fstatat(2)'s (ENOENT, ENOTDIR,
 * EBADF, EACCES, ELOOP, ENAMETOOLONG, ...); ENOMEM; ECANCELED.  Returns a
 * new future, or NULL with errno EINVAL (NULL ex or path, dirfd < 0 other
 * than AT_FDCWD, a flag other than AT_SYMLINK_NOFOLLOW) or as
 * evexec_run().  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_statat(struct evexec *ex, int dirfd,
                                                  const char *path, int flags);

/**
 * fstat(fd).  Result as evexec_fs_stat().  Returns a new future, or NULL
 * with errno EINVAL (NULL ex, fd < 0) or as evexec_run().  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_fstat(struct evexec *ex, int fd);

/**
 * fsync(fd).  No result.  Returns a new future, or NULL with errno EINVAL
 * (NULL ex, fd < 0) or as evexec_run().  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_fsync(struct evexec *ex, int fd);

/** fdatasync(fd).  As evexec_fs_fsync(). */
EVEXEC_API struct evexec_future *evexec_fs_fdatasync(struct evexec *ex, int fd);

/**
 * unlink(path).  No result.  Returns a new future, or NULL with errno
 * EINVAL (NULL ex or path) or as evexec_run().  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_unlink(struct evexec *ex, const char *path);

/**
 * unlinkat(dirfd, path, flags): evexec_fs_unlink() relative to dirfd (see
 * "Directory-relative calls" above); with flags AT_REMOVEDIR it removes an
 * empty directory instead, as evexec_fs_rmdir().  No result.  Errors of
 * the future: unlinkat(2)'s (ENOENT, ENOTDIR, EBADF, EISDIR for a
 * directory without AT_REMOVEDIR, ENOTEMPTY, EACCES, EBUSY, ...);
 * ECANCELED.  Returns a new future, or NULL with errno EINVAL (NULL ex or
 * path, dirfd < 0 other than AT_FDCWD, a flag other than AT_REMOVEDIR) or
 * as evexec_run().  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_unlinkat(struct evexec *ex, int dirfd,
                                                    const char *path, int flags);

/**
 * rename(from, to).  No result.  Returns a new future, or NULL with errno
 * EINVAL (NULL ex, from or to) or as evexec_run().  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_rename(struct evexec *ex, const char *from,
                                                  const char *to);

/**
 * renameat(olddirfd, oldpath, newdirfd, newpath): evexec_fs_rename() with
 * oldpath relative to olddirfd and newpath relative to newdirfd (see
 * "Directory-relative calls" above; either may be AT_FDCWD).  No result.
 * Errors of the future: renameat(2)'s (ENOENT, ENOTDIR, EBADF, EISDIR,
 * ENOTEMPTY, EXDEV, EACCES, ...); ECANCELED.  Returns a new future, or
 * NULL with errno EINVAL (NULL ex, oldpath or newpath, olddirfd or newdirfd
 * < 0 other than AT_FDCWD) or as evexec_run().  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_renameat(struct evexec *ex, int olddirfd,
                                                    const char *oldpath, int newdirfd,
                                                    const char *newpath);

/**
 * mkdir(path, mode).  No result.  Returns a new future, or NULL with errno
 * EINVAL (NULL ex or path) or as evexec_run().  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_mkdir(struct evexec *ex, const char *path,
                                                 mode_t mode);

/**
 * mkdirat(dirfd, path, mode): evexec_fs_mkdir() relative to dirfd (see
 * "Directory-relative calls" above).  No result.  Errors of the future:
 * mkdirat(2)'s (EEXIST, ENOENT, ENOTDIR, EBADF, EACCES, ...); ECANCELED.
 * Returns a new future, or NULL with errno EINVAL (NULL ex or path, dirfd
 * < 0 other than AT_FDCWD) or as evexec_run().  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_mkdirat(struct evexec *ex, int dirfd,
                                                   const char *path, mode_t mode);

/** rmdir(path).  As evexec_fs_unlink(). */
EVEXEC_API struct evexec_future *evexec_fs_rmdir(struct evexec *ex, const char *path);

/**
 * lstat(path): as evexec_fs_stat(), but a symbolic link is not followed:
 * the result describes the link itself.  Result: a struct stat (new,
 * owned by the future, released with free()).  Errors of the future:
 * lstat(2)'s (ENOENT, ENOTDIR, EACCES, ELOOP, ENAMETOOLONG, ...); ENOMEM;
 * ECANCELED.  Returns a new future, or NULL with errno EINVAL (NULL ex or
 * path) or as evexec_run().  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_lstat(struct evexec *ex, const char *path);

/**
 * readlink(path): the content of the symbolic link at path, of any length
 * (the buffer grows until it fits).  Result: a NUL-terminated char * (new,
 * owned by the future, released with free()).  Errors of the future:
 * readlink(2)'s (EINVAL when path is not a symbolic link, ENOENT, ENOTDIR,
 * EACCES, ELOOP, ENAMETOOLONG, ...); ENOMEM; ECANCELED.  Returns a new
 * future, or NULL with errno EINVAL (NULL ex or path) or as evexec_run().
 * Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_readlink(struct evexec *ex, const char *path);

/**
 * readlinkat(dirfd, path): evexec_fs_readlink() relative to dirfd (see
 * "Directory-relative calls" above).  Result as evexec_fs_readlink()'s: a
 * NUL-terminated char * (new, owned by the future, released with free()).
 * Errors of the future: readlinkat(2)'s (EINVAL when path is not a
 * symbolic link, ENOENT, ENOTDIR, EBADF, EACCES, ...); ENOMEM; ECANCELED.
 * Returns a new future, or NULL with errno EINVAL (NULL ex or path, dirfd
 * < 0 other than AT_FDCWD) or as evexec_run().  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_readlinkat(struct evexec *ex, int dirfd,
                                                      const char *path);

/**
 * realpath(path): the absolute path of the file path names, every
 * symbolic link, "." and ".." resolved.  Result: a NUL-terminated char *
 * (new, owned by the future, released with free()).  Errors of the future:
 * realpath(3)'s (ENOENT, ENOTDIR, EACCES, ELOOP, ENAMETOOLONG when the
 * result would not fit PATH_MAX, ...); ENOMEM; ECANCELED.  Returns a new
 * future, or NULL with errno EINVAL (NULL ex or path) or as evexec_run().
 * Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_realpath(struct evexec *ex, const char *path);

/**
 * ftruncate(fd, length).  No result.  Errors of the future: ftruncate(2)'s
 * (EBADF, EINVAL for a descriptor not open for writing or not a regular
 * file, EFBIG, EPERM, EIO, ...); ECANCELED.  Returns a new future, or NULL
 * with errno EINVAL (NULL ex, fd < 0, length < 0) or as evexec_run().
 * Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_ftruncate(struct evexec *ex, int fd,
                                                     off_t length);

/**
 * chmod(path, mode).  No result.  Errors of the future: chmod(2)'s
 * (ENOENT, ENOTDIR, EACCES, ELOOP, EPERM, EROFS, ...); ECANCELED.  Returns
 * a new future, or NULL with errno EINVAL (NULL ex or path) or as
 * evexec_run().  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_chmod(struct evexec *ex, const char *path,
                                                 mode_t mode);

/**
 * fchmod(fd, mode).  No result.  Errors of the future: fchmod(2)'s (EBADF,
 * EPERM, EROFS, ...); ECANCELED.  Returns a new future, or NULL with errno
 * EINVAL (NULL ex, fd < 0) or as evexec_run().  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_fchmod(struct evexec *ex, int fd, mode_t mode);

/**
 * utimensat(AT_FDCWD, path, times, 0): set the access time (times[0]) and
 * the modification time (times[1]) of path, following symbolic links.
 * times is copied; NULL sets both to the current time, and so does a
 * tv_nsec of UTIME_NOW for one of them (UTIME_OMIT leaves it as it is).
 * No result.  Errors of the future: utimensat(2)'s (ENOENT, ENOTDIR,
 * EACCES, EPERM, ELOOP, EINVAL for a tv_nsec out of range, EROFS, ...);
 * ECANCELED.  Returns a new future, or NULL with errno EINVAL (NULL ex or
 * path) or as evexec_run().  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_utimens(struct evexec *ex, const char *path,
                                                   const struct timespec times[2]);

/**
 * mkdtemp(template): make a new directory, mode 0700, named by template
 * with its last six characters, which must be "XXXXXX", made unique.
 * template is copied and left as it was.  Result: the path of the new
 * directory, a NUL-terminated char * (new, owned by the future, released
 * with free()).  Errors of the future: mkdtemp(3)'s (EINVAL when template
 * does not end in "XXXXXX", ENOENT, ENOTDIR, EACCES, EEXIST when no unique
 * name was found, ...); ENOMEM; ECANCELED (the directory stays made when
 * the job had already run).  Returns a new future, or NULL with errno
 * EINVAL (NULL ex or template) or as evexec_run().  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_mkdtemp(struct evexec *ex, const char *tmpl);

/** evexec_fs_copyfile() flag: fail with EEXIST when the destination exists. */
#define EVEXEC_FS_COPY_EXCL 0x1

/**
 * Copy the file at from to the path to, created if need be and replaced
 * otherwise (through symbolic links, as open(2) follows them); flags is 0
 * or EVEXEC_FS_COPY_EXCL.  The copy gets the source's permission bits
 * (not its owner, times or extended attributes).  On Linux the data is
 * copied by the kernel with copy_file_range(2) where the file system
 * allows (ENOSYS, EXDEV, EINVAL and EOPNOTSUPP fall back to read(2) and
 * write(2)).  The cancel request is looked at between chunks.  Copying a
 * file onto itself (the same inode) succeeds and leaves it as it is.
 *
 * When the copy fails or is cancelled once `to` was opened, `to` is
 * removed if it is a regular file: also one that existed before and was
 * replaced (its old content is gone by then).  A `to` that is not a
 * regular file (a device, a FIFO) is written to as it is: neither
 * truncated, nor given the mode, nor removed.  With EVEXEC_FS_COPY_EXCL
 * an existing `to` is never touched.
 *
 * No result.  Errors of the future: those of open(2) for either path
 * (ENOENT, EACCES, ENOTDIR, ELOOP, ...); EEXIST with EVEXEC_FS_COPY_EXCL;
 * EISDIR when from is a directory (or to is one); those of fstat(2),
 * ftruncate(2), fchmod(2), copy_file_range(2), read(2) and write(2)
 * (ENOSPC, EIO, EFBIG, ...); EIO for a write(2) that returns 0; ENOMEM;
 * ECANCELED.  Returns a new future, or NULL with errno EINVAL (NULL ex,
 * from or to; a flag other than EVEXEC_FS_COPY_EXCL) or as evexec_run().
 * Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_copyfile(struct evexec *ex, const char *from,
                                                    const char *to, int flags);

/**
 * Send up to len bytes of in_fd, from offset on, to out_fd: Linux's
 * sendfile(2), or pread(2) and write(2) where sendfile refuses the pair
 * (ENOSYS, EINVAL, EXDEV, EOPNOTSUPP before any byte was sent) and on
 * other systems.  The file offset of in_fd is not used nor changed; that
 * of out_fd advances.  It goes on until len bytes are sent or in_fd ends,
 * so the count is smaller than len only at end of file or after an error
 * that came once some bytes were sent (that error is not reported then,
 * as write(2) does).
 *
 * Result: the byte count, read with evexec_fs_count().  Errors of the
 * future (when no byte was sent): sendfile(2)'s, pread(2)'s and write(2)'s
 * (EBADF, ESPIPE for an in_fd that cannot be read at an offset, EISDIR,
 * EAGAIN for a non-blocking out_fd, ENOSPC, EIO, ...); EIO for a write(2)
 * that returns 0; ENOMEM; ECANCELED.  Returns a new future, or NULL with
 * errno EINVAL (NULL ex, out_fd or in_fd < 0, offset < 0, len > SSIZE_MAX)
 * or as evexec_run().  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_sendfile(struct evexec *ex, int out_fd,
                                                    int in_fd, off_t offset, size_t len);

/** The result of evexec_fs_scandir(): one malloc() block, names inside. */
struct evexec_dirlist {
    size_t count;       /**< entries, "." and ".." left out */
    char **names;       /**< count names sorted by strcmp(), then NULL */
};

/**
 * List a directory with scandir(3) (started over when a signal interrupts
 * it).  Result: a struct evexec_dirlist (new, owned by the future; one
 * block released with free(), names included).  Errors of the future:
 * opendir(3)'s and readdir(3)'s (ENOENT, ENOTDIR, EACCES, ...), ENOMEM.
 * Returns a new future, or NULL with errno EINVAL (NULL ex or path) or as
 * evexec_run().  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_scandir(struct evexec *ex, const char *path);

/** The result of evexec_fs_read_file(): one malloc() block. */
struct evexec_buf {
    void *data;         /**< len bytes, then a NUL byte (not counted) */
    size_t len;         /**< bytes in data, the NUL byte not counted */
};

/** The largest file evexec_fs_read_file() reads: 1 GiB. */
#define EVEXEC_FS_READ_FILE_MAX ((size_t)1 << 30)

/**
 * Read a whole regular file, of 0 bytes up to EVEXEC_FS_READ_FILE_MAX.
 *
 * Only regular files are read (symbolic links are followed): path is
 * opened with O_NONBLOCK, so that a FIFO without a writer cannot block
 * the worker in open(2) where no cancel reaches it, and then refused by
 * what fstat(2) says.  A file that says size 0 but has content (/proc
 * files) is read to its end.
 *
 * Result: a struct evexec_buf (new, owned by the future; one block
 * released with free(), data included).  data[len] is a NUL byte, so a
 * text file can be used as a C string.
 *
 * Errors of the future: open(2)'s and read(2)'s (ENOENT, EACCES, ...);
 * EISDIR for a directory; EINVAL for anything else that is not a regular
 * file (a FIFO, a device such as /dev/zero, a socket), at once and without
 * reading; EFBIG for a file larger than EVEXEC_FS_READ_FILE_MAX, whether
 * fstat(2) says so or the file grows past it while it is read (nothing is
 * returned then, not even the first part); ENOMEM; ECANCELED (checked
 * between chunks).  Returns a new future, or NULL with errno EINVAL (NULL
 * ex or path) or as evexec_run().  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_read_file(struct evexec *ex, const char *path);

/**
 * Replace the file at path with len bytes of data, atomically: write a
 * temporary file in the same directory (a hidden name ending in ".tmp"),
 * fsync it, rename it over path, fsync the directory.  Readers see the old
 * content or the new one, never a part.
 *
 * Symbolic links are followed: when path is a link (or a chain of them),
 * the file it leads to is replaced (the temporary file is made in that
 * file's directory) and the link stays as it was.  A dangling link leads
 * to a name that does not exist yet: that file is created.  More than 40
 * links in a row is ELOOP.
 *
 * Mode and owner.  An existing regular file keeps its permission bits
 * (mode is then ignored), and its owner and group where the process may
 * change them (as root; otherwise the group alone if the caller belongs to
 * it, else the new file is the caller's).  mode is used for a new file
 * only, less the umask.  Extended attributes and ACLs of the old file are
 * not carried over.
 *
 * data is borrowed (see evexec_fs_read()); it may be NULL when len is 0.
 * A write(2) that returns 0 for a non-zero request ends the call EIO (no
 * endless retry).
 *
 * On error or cancel before the rename, the temporary file is removed and
 * path is left as it was.  After the rename the new content stays and the
 * call reports no failure: a cancel taken then still ends the future
 * ECANCELED (the cancel rule of evexec_future_cancel()), but the fsync of
 * the directory is best effort: when it fails, or when the directory
 * cannot be opened for it (a directory the caller may write but not
 * read, mode 0300), the future still ends 0 and only the durability of
 * the rename across a crash is lost.
 *
 * If the process is killed (or the machine loses power) at any point,
 * path still holds the old content or the new one: the new bytes are
 * written and fsynced under another name first, and rename(2) replaces
 * the name in one step.  What a kill can leave behind is the temporary
 * file itself (hidden, ending in ".tmp"), never a partial path.
 *
 * No result.  Errors of the future: those of readlink(2), open(2),
 * write(2), fchmod(2), fsync(2) and rename(2) (ENOENT for a missing
 * directory, EACCES, ENOSPC, EISDIR, ELOOP, ...), EIO, ECANCELED.  Returns a new future, or NULL with errno EINVAL (NULL
 * ex or path, NULL data with len > 0, len > SSIZE_MAX) or as evexec_run().
 * Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_fs_write_file(struct evexec *ex,
                                                      const char *path,
                                                      const void *data, size_t len,
                                                      mode_t mode);

/* ---- reading results that are not pointers ---- */

/**
 * The byte count of a future made by evexec_fs_read(), _write(), _pread(),
 * _pwrite() or _sendfile() that ended successfully, or of an
 * evexec_wait_for() around one (read through to it; see "Scalars through
 * combinators" at the top of this file; for a gather's input use
 * evexec_gather_input()).  Returns it (>= 0), or -1 with errno set to the
 * future's error when it failed (the wait_for's own: ETIMEDOUT after its
 * timeout), EINPROGRESS while it is pending, EINVAL for NULL or a future
 * of another kind.  Loop thread.
 */
EVEXEC_API ssize_t evexec_fs_count(const struct evexec_future *f);

/**
 * The descriptor of a future made by evexec_fs_open() or _openat() that
 * ended successfully, or of an evexec_wait_for() around one, borrowed: the
 * (inner) future still owns it and closes it when it goes.  Returns it, or
 * -1 with errno as evexec_fs_count() (EINVAL also once the descriptor was
 * taken).  Loop thread.
 */
EVEXEC_API int evexec_fs_fd(const struct evexec_future *f);

/**
 * Take the descriptor out of a future made by evexec_fs_open() or
 * _openat(), or out of the inner future of an evexec_wait_for() around
 * one: the caller now owns it and closes it; the future no longer does.
 * It is taken once: a second take, through the wait_for or on the inner
 * future, is EINVAL.  Returns it, or -1 with errno as evexec_fs_fd().
 * Loop thread.
 */
EVEXEC_API int evexec_fs_take_fd(struct evexec_future *f);

#ifdef __cplusplus
}
#endif

#endif /* EVEXEC_IO_H */
