/*
 * bench-naive.c -- the "first attempt" libevent bridge evexec-bench
 * compares against.
 *
 * One run queue (a mutex and a condition variable, signalled on every
 * submission), N worker threads started on the first submission, one
 * malloc'd node per job.  A worker that finishes a job appends it to a
 * mutex-protected completion list and writes the eventfd, every time.  The
 * loop's eventfd callback reads the fd, detaches the whole list and
 * delivers it.  The two locks are never held together.  Its pool serves
 * its one loop (a finished job goes to that loop's list), so it has no
 * lanes and no second loop: w7's slow jobs share the one queue, and w7's
 * two-loop part is not run for it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1   /* POSIX and Linux calls under -std=c11 */
#endif
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "bench.h"

struct naive_job {
    struct naive_job *next;
    enum bench_job kind;
};

struct naive {
    struct bench *b;
    struct event_base *base;
    struct event *wake_ev;
    int efd;
    int wake_added;
    uint64_t inflight;              /* loop thread */
    void (*start)(struct bench *b);

    pthread_mutex_t qlock;          /* guards qhead, qtail, stop */
    pthread_cond_t qcond;
    struct naive_job *qhead, *qtail;
    int stop;

    pthread_mutex_t dlock;          /* guards dhead, dtail */
    struct naive_job *dhead, *dtail;

    pthread_t *tids;
    unsigned nstarted;
};

static void *naive_worker(void *arg)
{
    struct naive *nv = arg;
    for (;;) {
        pthread_mutex_lock(&nv->qlock);
        while (nv->qhead == NULL && !nv->stop)
            pthread_cond_wait(&nv->qcond, &nv->qlock);
        struct naive_job *j = nv->qhead;
        if (j == NULL) {                 /* stop, and nothing left */
            pthread_mutex_unlock(&nv->qlock);
            return NULL;
        }
        nv->qhead = j->next;
        if (nv->qhead == NULL)
            nv->qtail = NULL;
        pthread_mutex_unlock(&nv->qlock);

        switch (j->kind) {
        case BENCH_NOOP: bench_job_noop(); break;
        case BENCH_SLEEP: bench_job_sleep(); break;
        case BENCH_GATE: bench_job_gate(); break;
        case BENCH_SPIN1: bench_job_spin1(); break;
        case BENCH_SPIN100: bench_job_spin100(); break;
        case BENCH_KINDS: break;
        }

        j->next = NULL;
        pthread_mutex_lock(&nv->dlock);
        if (nv->dtail)
            nv->dtail->next = j;
        else
            nv->dhead = j;
        nv->dtail = j;
        pthread_mutex_unlock(&nv->dlock);

        uint64_t one = 1;
        while (write(nv->efd, &one, sizeof one) < 0 && errno == EINTR)
            ;
    }
}

static void naive_drain(evutil_socket_t fd, short what, void *arg)
{
    struct naive *nv = arg;
    uint64_t n;
    (void)what;
    while (read(fd, &n, sizeof n) < 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&nv->dlock);
    struct naive_job *j = nv->dhead;
    nv->dhead = nv->dtail = NULL;
    pthread_mutex_unlock(&nv->dlock);

    while (j) {
        struct naive_job *next = j->next;
        enum bench_job kind = j->kind;
        free(j);
        nv->inflight--;
        bench_delivered(nv->b, 1, kind);
        j = next;
    }
    /* Nothing left in flight: let event_base_dispatch() return. */
    if (nv->inflight == 0 && nv->wake_added) {
        event_del(nv->wake_ev);
        nv->wake_added = 0;
    }
}

static int naive_open(struct bench *b)
{
    struct naive *nv = calloc(1, sizeof *nv);
    if (nv == NULL)
        return ENOMEM;
    nv->b = b;
    nv->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    nv->base = event_base_new();
    nv->tids = calloc(b->threads, sizeof *nv->tids);
    if (nv->efd < 0 || nv->base == NULL || nv->tids == NULL)
        goto fail;
    nv->wake_ev = event_new(nv->base, nv->efd, EV_READ | EV_PERSIST,
                            naive_drain, nv);
    if (nv->wake_ev == NULL)
        goto fail;
    pthread_mutex_init(&nv->qlock, NULL);
    pthread_cond_init(&nv->qcond, NULL);
    pthread_mutex_init(&nv->dlock, NULL);
    b->impl = nv;
    return 0;
fail:
    if (nv->efd >= 0)
        close(nv->efd);
    if (nv->base)
        event_base_free(nv->base);
    free(nv->tids);
    free(nv);
    return ENOMEM;
}

static int naive_submit(struct bench *b, enum bench_job kind)
{
    struct naive *nv = b->impl;
    /* Threads start with the first job, so a cold pool costs the same
     * here as in the other backends. */
    while (nv->nstarted < b->threads) {
        int rc = pthread_create(&nv->tids[nv->nstarted], NULL, naive_worker, nv);
        if (rc != 0)
            return rc;
        nv->nstarted++;
    }
    struct naive_job *j = malloc(sizeof *j);
    if (j == NULL)
        return ENOMEM;
    j->next = NULL;
    j->kind = kind;
    pthread_mutex_lock(&nv->qlock);
    if (nv->qtail)
        nv->qtail->next = j;
    else
        nv->qhead = j;
    nv->qtail = j;
    pthread_cond_signal(&nv->qcond);
    pthread_mutex_unlock(&nv->qlock);

    nv->inflight++;
    if (!nv->wake_added) {
        if (event_add(nv->wake_ev, NULL) != 0)
            return EIO;
        nv->wake_added = 1;
    }
    return 0;
}

static void naive_start_cb(evutil_socket_t fd, short what, void *arg)
{
    struct naive *nv = arg;
    (void)fd;
    (void)what;
    nv->start(nv->b);
}

static int naive_run(struct bench *b, void (*start)(struct bench *b))
{
    struct naive *nv = b->impl;
    struct timeval zero = { 0, 0 };
    nv->start = start;
    if (event_base_once(nv->base, -1, EV_TIMEOUT, naive_start_cb, nv, &zero) != 0)
        return EIO;
    return event_base_dispatch(nv->base) < 0 ? EIO : 0;
}

static void naive_close(struct bench *b)
{
    struct naive *nv = b->impl;
    if (nv == NULL)
        return;
    pthread_mutex_lock(&nv->qlock);
    nv->stop = 1;
    pthread_cond_broadcast(&nv->qcond);
    pthread_mutex_unlock(&nv->qlock);
    for (unsigned i = 0; i < nv->nstarted; i++)
        pthread_join(nv->tids[i], NULL);
    /* Completions that were never drained (a failed run). */
    for (struct naive_job *j = nv->dhead, *next; j; j = next) {
        next = j->next;
        free(j);
    }
    event_free(nv->wake_ev);
    event_base_free(nv->base);
    close(nv->efd);
    pthread_mutex_destroy(&nv->qlock);
    pthread_cond_destroy(&nv->qcond);
    pthread_mutex_destroy(&nv->dlock);
    free(nv->tids);
    free(nv);
    b->impl = NULL;
}

const struct bench_backend bench_naive = {
    .name = "naive",
    .open = naive_open,
    .submit = naive_submit,
    .run = naive_run,
    .close = naive_close,
};
