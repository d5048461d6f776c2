/*
 * dns.c -- getaddrinfo and getnameinfo on the pool's slow lane.
 *
 * Design.  Neither call has a non-blocking form, and either can hang for
 * as long as the resolver's timeouts: they run on the slow lane, which
 * never holds more than half of the pool's threads.  A call copies its
 * arguments into one request block and runs it with the job shape shared
 * with fs.c (evexec__io_submit): the block is the job's and is freed once,
 * whether the job runs or not.  A result is handed to the job with its
 * destructor before the function returns, so a lookup that finishes after
 * its future was cancelled, or after its evexec was freed, is released by
 * the library.
 *
 * Errors keep getaddrinfo's EAI_* values, which glibc and musl make
 * negative so they never collide with errno values (elsewhere they are
 * positive and may: see evexec_strerror); EAI_SYSTEM is replaced by the
 * errno it stands for.
 *
 * Threads: the public calls on the loop thread; dns_do_* on a worker,
 * touching only their request and the job.
 */
#define _GNU_SOURCE
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netdb.h>

#include "evexec-internal.h"


static int dns_error(int rc)
{
    if (rc == EAI_SYSTEM)
        return errno ? errno : EIO;
    return rc;
}

/* ---- getaddrinfo ----------------------------------------------------------- */

struct dns_ai_req {
    evexec__io_fn run;          /* first: see evexec__io_submit() */
    struct addrinfo hints;      /* the four fields POSIX lets callers set */
    int has_hints;
    const char *node, *service; /* copies, in `names` */
    char names[];
};

static void dns_freeaddrinfo(void *ai)
{
    freeaddrinfo(ai);
}

static int dns_do_getaddrinfo(struct evexec_job *job, void *arg)
{
    struct dns_ai_req *r = arg;
    struct addrinfo *res = NULL;
    errno = 0;
    int rc = getaddrinfo(r->node, r->service, r->has_hints ? &r->hints : NULL, &res);
    if (rc != 0)
        return dns_error(rc);
    evexec_job_set_result(job, res, dns_freeaddrinfo);
    return 0;
}

EVEXEC_API struct evexec_future *evexec_getaddrinfo(struct evexec *ex, const char *node,
                                                    const char *service,
                                                    const struct addrinfo *hints)
{
    if (!ex || (!node && !service)) {
        errno = EINVAL;
        return NULL;
    }
    size_t ln = node ? strlen(node) + 1 : 0;
    size_t ls = service ? strlen(service) + 1 : 0;
    struct dns_ai_req *r = evexec__calloc(1, sizeof *r + ln + ls);
    if (!r) {
        errno = ENOMEM;
        return NULL;
    }
    r->run = dns_do_getaddrinfo;
    if (hints) {
        r->has_hints = 1;
        r->hints.ai_flags = hints->ai_flags;
        r->hints.ai_family = hints->ai_family;
        r->hints.ai_socktype = hints->ai_socktype;
        r->hints.ai_protocol = hints->ai_protocol;
    }
    r->node = node ? memcpy(r->names, node, ln) : NULL;
    r->service = service ? memcpy(r->names + ln, service, ls) : NULL;
    return evexec__io_submit(ex, r, EVEXEC_LANE_SLOW);
}

/* ---- getnameinfo ------------------------------------------------------------ */

struct dns_ni_req {
    evexec__io_fn run;          /* first: see evexec__io_submit() */
    struct sockaddr_storage sa;
    socklen_t salen;
    int flags;
};

static int dns_do_getnameinfo(struct evexec_job *job, void *arg)
{
    struct dns_ni_req *r = arg;
    struct evexec_nameinfo *ni = evexec__malloc(sizeof *ni);
    if (!ni)
        return ENOMEM;
    errno = 0;
    int rc = getnameinfo((const struct sockaddr *)&r->sa, r->salen, ni->host,
                         sizeof ni->host, ni->serv, sizeof ni->serv, r->flags);
    if (rc != 0) {
        rc = dns_error(rc);
        free(ni);
        return rc;
    }
    evexec_job_set_result(job, ni, free);
    return 0;
}

EVEXEC_API struct evexec_future *evexec_getnameinfo(struct evexec *ex,
                                                    const struct sockaddr *sa,
                                                    socklen_t salen, int flags)
{
    if (!ex || !sa || salen == 0 || salen > sizeof(struct sockaddr_storage)) {
        errno = EINVAL;
        return NULL;
    }
    struct dns_ni_req *r = evexec__calloc(1, sizeof *r);
    if (!r) {
        errno = ENOMEM;
        return NULL;
    }
    r->run = dns_do_getnameinfo;
    memcpy(&r->sa, sa, salen);
    r->salen = salen;
    r->flags = flags;
    return evexec__io_submit(ex, r, EVEXEC_LANE_SLOW);
}
