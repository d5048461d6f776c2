/*
 * cancel.c -- waiting for cancellation on a worker: evexec_job_wait_cancel()
 * and evexec_job_poll(), and the notifications that wake them.
 *
 * Design.  Waiters sleep on a stripe chosen by the job's address, so no
 * field is added to the job: evexec_job_wait_cancel() on the stripe's
 * condition variable, evexec_job_poll() in poll() on its thread's own
 * wake-up channel (wakefd.c), listed on the stripe while it polls.  A
 * cancel reaches a waiter two ways:
 *  - one job: bridge.c marks job->marks cancelled, then calls
 *    evexec__job_cancel_notify(job), which broadcasts the stripe's
 *    condition variable and wakes the pollers of that job;
 *  - every running job of a pool: evexec_pool_shutdown(CANCEL) sets the
 *    pool's cancel_running flag (pool.c), then calls
 *    evexec__cancel_notify_pool(pool), which broadcasts every stripe and
 *    wakes every poller that runs on a worker of that pool (each poller
 *    records its pool when it registers).  The pool never writes into a
 *    running job: its memory may go the moment the worker hands it back.
 * A waiter checks evexec_job_cancelled() (which reads both flags) under the
 * stripe's mutex before it sleeps or registers, and a notifier sets its flag
 * before it takes that mutex, so a notification cannot fall between the
 * check and the sleep.  Sleeps are also cut into 20 ms slices that re-read
 * the flags, which bounds the delay should a cancel ever come without a
 * notification (or when no wake-up fd could be made).
 *
 * Threads.  A stripe (its waiters' condition variable and its list of
 * pollers) is guarded by its own mutex, taken by the worker that waits and
 * by whoever notifies (the loop thread that cancels a job, the thread that
 * shuts a pool down with CANCEL).  A poller entry lives on its worker's
 * stack, listed only while it polls.  Each worker's wake-up channel is
 * thread-local: made on its first poll, signalled by notifiers under the
 * stripe mutex while it is listed, drained and closed by the worker only.
 * No other lock is taken while a stripe mutex is held.
 */
#define _GNU_SOURCE
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "evexec-internal.h"

#define CANCEL_STRIPES 16
#define CANCEL_SLICE_NS 20000000L   /* 20 ms */

/* A worker in evexec_job_poll(), listed on its job's stripe. */
struct cancel_poller {
    struct cancel_poller *next;
    const struct evexec_job *job;
    const struct evexec_pool *pool;        /* its worker's pool, or NULL */
    const struct evexec__wakefd *wake;     /* its thread's channel */
};

static struct cancel_stripe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct cancel_poller *pollers;
} cancel_stripes[CANCEL_STRIPES];
static pthread_once_t cancel_once = PTHREAD_ONCE_INIT;

static void cancel_stripes_init(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    for (int i = 0; i < CANCEL_STRIPES; i++) {
        pthread_mutex_init(&cancel_stripes[i].mu, NULL);
        pthread_cond_init(&cancel_stripes[i].cv, &ca);
        cancel_stripes[i].pollers = NULL;
    }
    pthread_condattr_destroy(&ca);
}

static struct cancel_stripe *cancel_stripe_of(const struct evexec_job *job)
{
    pthread_once(&cancel_once, cancel_stripes_init);
    uintptr_t h = (uintptr_t)job;
    h ^= h >> 12;
    return &cancel_stripes[(h >> 6) % CANCEL_STRIPES];
}

/* Wake the waiters of stripe s, and its pollers of `job` (or, with job
 * NULL, of `pool`). */
static void stripe_wake(struct cancel_stripe *s, const struct evexec_job *job,
                        const struct evexec_pool *pool)
{
    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&s->cv);
    for (struct cancel_poller *p = s->pollers; p; p = p->next)
        if (job ? p->job == job : p->pool == pool)
            evexec__wakefd_signal(p->wake);
    pthread_mutex_unlock(&s->mu);
}

void evexec__job_cancel_notify(struct evexec_job *job)
{
    stripe_wake(cancel_stripe_of(job), job, NULL);
}

void evexec__cancel_notify_pool(struct evexec_pool *pool)
{
    pthread_once(&cancel_once, cancel_stripes_init);
    for (int i = 0; i < CANCEL_STRIPES; i++)
        stripe_wake(&cancel_stripes[i], NULL, pool);
}

static int timespec_before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static int valid_timespec(const struct timespec *ts)
{
    return !ts || (ts->tv_sec >= 0 && ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000L);
}

/* A wait's clock: when it started, when it ends, and the next slice. */
struct cancel_clock {
    struct timespec now, end;
    int bounded;
};

static void clock_start(struct cancel_clock *c, const struct timespec *timeout)
{
    clock_gettime(CLOCK_MONOTONIC, &c->now);
    c->end = c->now;
    c->bounded = timeout != NULL;
    if (timeout)
        evexec__timespec_add(&c->end, timeout->tv_sec, timeout->tv_nsec);
}

/* 1 once the timeout has passed. */
static int clock_expired(struct cancel_clock *c)
{
    clock_gettime(CLOCK_MONOTONIC, &c->now);
    return c->bounded && !timespec_before(&c->now, &c->end);
}

/* The end of the next slice: one slice from now, or the deadline. */
static struct timespec clock_slice(const struct cancel_clock *c)
{
    struct timespec until = c->now;
    evexec__timespec_add(&until, 0, CANCEL_SLICE_NS);
    if (c->bounded && timespec_before(&c->end, &until))
        until = c->end;
    return until;
}

EVEXEC_API int evexec_job_wait_cancel(struct evexec_job *job,
                                      const struct timespec *timeout)
{
    if (!job || !valid_timespec(timeout))
        return EINVAL;
    struct cancel_stripe *s = cancel_stripe_of(job);
    struct cancel_clock c;
    int rc;
    clock_start(&c, timeout);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (evexec_job_cancelled(job)) {
            rc = ECANCELED;
            break;
        }
        if (clock_expired(&c)) {
            rc = ETIMEDOUT;
            break;
        }
        struct timespec until = clock_slice(&c);
        pthread_cond_timedwait(&s->cv, &s->mu, &until);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Each worker that polls gets one wake-up channel, kept for its life and
 * closed when it exits (the key's destructor).  `poll_wake_tried` makes a
 * failure to open one final for the thread: the slices still see a
 * cancel then. */
static pthread_key_t poll_wake_key;
static pthread_once_t poll_wake_once = PTHREAD_ONCE_INIT;
static _Thread_local struct evexec__wakefd poll_wake = { -1, -1 };
static _Thread_local int poll_wake_tried;

static void poll_wake_close(void *unused)
{
    (void)unused;
    evexec__wakefd_close(&poll_wake);
}

static void poll_wake_key_init(void)
{
    pthread_key_create(&poll_wake_key, poll_wake_close);
}

/* This thread's channel, or NULL when none could be made. */
static const struct evexec__wakefd *poll_wake_get(void)
{
    if (!poll_wake_tried) {
        poll_wake_tried = 1;
        pthread_once(&poll_wake_once, poll_wake_key_init);
        if (evexec__wakefd_open(&poll_wake, 0) != 0)
            poll_wake.rfd = poll_wake.wfd = -1;
        else
            pthread_setspecific(poll_wake_key, &poll_wake);  /* for the destructor */
    }
    return poll_wake.rfd >= 0 ? &poll_wake : NULL;
}

static int poll_slice_ms(const struct cancel_clock *c)
{
    struct timespec until = clock_slice(c);
    long ms = (long)(until.tv_sec - c->now.tv_sec) * 1000 +
              (until.tv_nsec - c->now.tv_nsec + 999999) / 1000000;
    return ms > 0 ? (int)ms : 0;
}

#define POLL_STACK 16

EVEXEC_API int evexec_job_poll(struct evexec_job *job, struct pollfd *fds, nfds_t nfds,
                               const struct timespec *timeout)
{
    if (!job || (nfds > 0 && !fds) || !valid_timespec(timeout))
        return EINVAL;
    struct pollfd stack[POLL_STACK + 1], *all = stack;
    if (nfds >= POLL_STACK) {
        all = nfds < SIZE_MAX / sizeof *all - 1 ? evexec__malloc((nfds + 1) * sizeof *all) : NULL;
        if (!all)
            return ENOMEM;
    }
    if (nfds > 0)
        memcpy(all, fds, nfds * sizeof *all);
    struct cancel_poller me = {
        .job = job,
        .pool = evexec__worker_pool(),
        .wake = poll_wake_get(),
    };
    all[nfds].fd = me.wake ? me.wake->rfd : -1;   /* negative: poll() ignores it */
    all[nfds].events = POLLIN;
    all[nfds].revents = 0;

    struct cancel_stripe *s = cancel_stripe_of(job);
    int rc = 0, listed = 0;
    pthread_mutex_lock(&s->mu);
    if (evexec_job_cancelled(job)) {
        rc = ECANCELED;
    } else if (me.wake) {
        me.next = s->pollers;
        s->pollers = &me;
        listed = 1;
    }
    pthread_mutex_unlock(&s->mu);

    struct cancel_clock c;
    clock_start(&c, timeout);
    while (rc == 0) {
        int n = poll(all, nfds + 1, poll_slice_ms(&c));
        if (n < 0 && errno != EINTR) {
            rc = errno;
            break;
        }
        if (evexec_job_cancelled(job)) {
            rc = ECANCELED;
            break;
        }
        if (n > 0 && n > (all[nfds].revents != 0)) {
            for (nfds_t i = 0; i < nfds; i++)
                fds[i].revents = all[i].revents;
            break;
        }
        if (n > 0)
            evexec__wakefd_drain(me.wake);   /* a wake-up meant for an earlier job */
        if (clock_expired(&c))
            rc = ETIMEDOUT;
    }

    if (listed) {
        pthread_mutex_lock(&s->mu);
        struct cancel_poller **pp = &s->pollers;
        while (*pp != &me)
            pp = &(*pp)->next;
        *pp = me.next;
        pthread_mutex_unlock(&s->mu);
        /* No notification can come now; leave the channel quiet for the
         * next poll. */
        evexec__wakefd_drain(me.wake);
    }
    if (all != stack)
        free(all);
    return rc;
}

/* fork.c: no thread may hold a stripe across fork(); in the child the
 * listed pollers belong to threads that no longer exist, and this
 * thread's wake-up channel is shared with the parent's copy of it. */
void evexec__cancel_atfork(int phase)
{
    pthread_once(&cancel_once, cancel_stripes_init);
    for (int i = 0; i < CANCEL_STRIPES; i++) {
        struct cancel_stripe *s = &cancel_stripes[i];
        switch (phase) {
        case EVEXEC__FORK_PREPARE:
            pthread_mutex_lock(&s->mu);
            break;
        case EVEXEC__FORK_CHILD: {
            /* The condition variable may still count waiters of the
             * parent, whose threads are not here: a broadcast would wait
             * for them forever.  Make it anew (and the mutex, which only
             * this thread holds). */
            s->pollers = NULL;
            pthread_condattr_t ca;
            pthread_condattr_init(&ca);
            pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
            memset(&s->cv, 0, sizeof s->cv);
            pthread_cond_init(&s->cv, &ca);
            pthread_condattr_destroy(&ca);
            memset(&s->mu, 0, sizeof s->mu);
            pthread_mutex_init(&s->mu, NULL);
            break;
        }
        default:
            pthread_mutex_unlock(&s->mu);
            break;
        }
    }
    if (phase == EVEXEC__FORK_CHILD) {
        evexec__wakefd_close(&poll_wake);
        poll_wake_tried = 0;
    }
}
