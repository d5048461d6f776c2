/*
 * wakefd.c -- the one wake-up channel evexec uses: an eventfd where the
 * system has one, a non-blocking pipe elsewhere (or when asked for).
 *
 * Who touches what: any thread may signal; only the owner drains; the
 * owner closes, once, when nobody can signal any more.  Signalling and
 * draining retry EINTR; a full counter or pipe (EAGAIN) is not an error,
 * since it means the reader has a wake-up waiting already.
 *
 * Compile-time choices follow configure: HAVE_SYS_EVENTFD_H and
 * HAVE_EVENTFD for the eventfd, HAVE_PIPE2 for an atomic O_CLOEXEC pipe
 * (else pipe() and fcntl()).
 */
#define _GNU_SOURCE
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>
#if defined(HAVE_SYS_EVENTFD_H) && defined(HAVE_EVENTFD)
#include <sys/eventfd.h>
#define EVEXEC__USE_EVENTFD 1
#endif

#include "evexec-internal.h"

static int open_pipe(int fds[2])
{
#ifdef HAVE_PIPE2
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0)
        return 0;
    if (errno != ENOSYS)
        return errno;
#endif
    if (pipe(fds) != 0)
        return errno;
    for (int i = 0; i < 2; i++) {
        int fl = fcntl(fds[i], F_GETFL);
        int fdfl = fcntl(fds[i], F_GETFD);
        if (fl < 0 || fdfl < 0 || fcntl(fds[i], F_SETFL, fl | O_NONBLOCK) != 0 ||
            fcntl(fds[i], F_SETFD, fdfl | FD_CLOEXEC) != 0) {
            int err = errno;
            close(fds[0]);
            close(fds[1]);
            return err;
        }
    }
    return 0;
}

int evexec__wakefd_open(struct evexec__wakefd *w, int use_pipe)
{
#ifdef EVEXEC__USE_EVENTFD
    if (!use_pipe) {
        int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (fd >= 0) {
            w->rfd = w->wfd = fd;
            return 0;
        }
        /* No eventfd in this kernel: fall back to a pipe.  Anything else
         * (EMFILE, ENFILE, ENOMEM) a pipe would meet as well. */
        if (errno != ENOSYS && errno != EINVAL)
            return errno;
    }
#endif
    (void)use_pipe;
    int fds[2];
    int err = open_pipe(fds);
    if (err)
        return err;
    w->rfd = fds[0];
    w->wfd = fds[1];
    return 0;
}

void evexec__wakefd_signal(const struct evexec__wakefd *w)
{
    ssize_t n;
#ifdef EVEXEC__USE_EVENTFD
    if (w->rfd == w->wfd) {
        uint64_t one = 1;
        do
            n = write(w->wfd, &one, sizeof one);
        while (n < 0 && errno == EINTR);
        return;
    }
#endif
    char c = 0;
    do
        n = write(w->wfd, &c, 1);
    while (n < 0 && errno == EINTR);
    /* EAGAIN: full, so the reader is awake anyway. */
}

void evexec__wakefd_drain(const struct evexec__wakefd *w)
{
    ssize_t n;
#ifdef EVEXEC__USE_EVENTFD
    if (w->rfd == w->wfd) {
        uint64_t v;
        do
            n = read(w->rfd, &v, sizeof v);
        while (n < 0 && errno == EINTR);
        return;
    }
#endif
    char buf[256];
    do
        n = read(w->rfd, buf, sizeof buf);
    while (n > 0 || (n < 0 && errno == EINTR));
}

void evexec__wakefd_close(struct evexec__wakefd *w)
{
    if (w->rfd >= 0)
        close(w->rfd);
    if (w->wfd >= 0 && w->wfd != w->rfd)
        close(w->wfd);
    w->rfd = w->wfd = -1;
}
