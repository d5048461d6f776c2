/*
 * bench-evexec.c -- evexec as an evexec-bench backend, through the public
 * API only: evexec_run() per job, one done callback per future, the
 * future's reference dropped in that callback.  Default pool settings but
 * for max_threads (so "evexec" spins adaptively, the default);
 * "evexec-spin" also sets spin_us (--spin: a fixed spin, or off).  w7's
 * slow jobs go on EVEXEC_LANE_SLOW (evexec_run_opts()), and its second
 * loop is a second evexec on the same evexec_pool.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1   /* POSIX and Linux calls under -std=c11 */
#endif
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdlib.h>

#include <event2/event.h>

#include "evexec.h"
#include "bench.h"

_Static_assert(BENCH_SPIN_OFF == EVEXEC_SPIN_OFF, "--spin off is EVEXEC_SPIN_OFF");

/* A done callback's argument: the bench and the kind of job it was. */
struct evb_tag {
    struct bench *b;
    enum bench_job kind;
};

struct evb {
    struct bench *b;
    struct event_base *base;
    struct evexec_pool *pool;
    int shares_pool;                /* a peer's: the pool is another's */
    struct evexec *ex;
    void (*start)(struct bench *b);
    struct evb_tag tag[BENCH_KINDS];
};

static int evb_noop(struct evexec_job *job, void *arg)
{
    (void)job;
    (void)arg;
    bench_job_noop();
    return 0;
}

static int evb_sleep(struct evexec_job *job, void *arg)
{
    (void)job;
    (void)arg;
    bench_job_sleep();
    return 0;
}

static int evb_gate(struct evexec_job *job, void *arg)
{
    (void)job;
    (void)arg;
    bench_job_gate();
    return 0;
}

static int evb_spin1(struct evexec_job *job, void *arg)
{
    (void)job;
    (void)arg;
    bench_job_spin1();
    return 0;
}

static int evb_spin100(struct evexec_job *job, void *arg)
{
    (void)job;
    (void)arg;
    bench_job_spin100();
    return 0;
}

static void evb_done(struct evexec_future *f, void *arg)
{
    struct evb_tag *t = arg;
    int ok = evexec_future_error(f) == 0;
    evexec_future_unref(f);
    bench_delivered(t->b, ok, t->kind);
}

/* A loop on `pool`, or on a pool of its own when pool is NULL. */
static int evb_open_on(struct bench *b, struct evexec_pool *pool)
{
    struct evb *e = calloc(1, sizeof *e);
    if (e == NULL)
        return ENOMEM;
    e->b = b;
    for (unsigned k = 0; k < BENCH_KINDS; k++)
        e->tag[k] = (struct evb_tag){ b, (enum bench_job)k };
    struct evexec_pool_config cfg = { 0 };
    cfg.max_threads = b->threads;
    if (b->be == &bench_evexec_spin)
        cfg.spin_us = b->spin_us;
    int rc = ENOMEM;
    e->base = event_base_new();
    if (e->base == NULL)
        goto fail;
    e->shares_pool = pool != NULL;
    e->pool = pool ? pool : evexec_pool_new(&cfg);
    if (e->pool == NULL) {
        rc = errno;
        goto fail;
    }
    e->ex = evexec_new(e->base, e->pool);
    /* The run ends when the base has nothing left: no keep-alive. */
    if (e->ex)
        evexec_set_keepalive(e->ex, 0);
    if (e->ex == NULL) {
        rc = errno;
        goto fail;
    }
    b->impl = e;
    return 0;
fail:
    if (!e->shares_pool)
        evexec_pool_free(e->pool);
    if (e->base)
        event_base_free(e->base);
    free(e);
    return rc;
}

static int evb_open(struct bench *b)
{
    return evb_open_on(b, NULL);
}

static int evb_open_peer(struct bench *peer, struct bench *b)
{
    return evb_open_on(peer, ((struct evb *)b->impl)->pool);
}

/* The job bodies, by kind. */
static const evexec_fn evb_fns[BENCH_KINDS] = {
    [BENCH_NOOP] = evb_noop,
    [BENCH_SLEEP] = evb_sleep,
    [BENCH_GATE] = evb_gate,
    [BENCH_SPIN1] = evb_spin1,
    [BENCH_SPIN100] = evb_spin100,
};

/* Watch the future f (NULL: the submission failed) of a job of `kind`. */
static int evb_watch(struct evb *e, struct evexec_future *f, enum bench_job kind)
{
    if (f == NULL)
        return errno;
    int rc = evexec_future_on_done(f, evb_done, &e->tag[kind]);
    if (rc != 0) {
        evexec_future_cancel(f);
        evexec_future_unref(f);
        return rc;
    }
    return 0;
}

static int evb_submit(struct bench *b, enum bench_job kind)
{
    struct evb *e = b->impl;
    return evb_watch(e, evexec_run(e->ex, evb_fns[kind], NULL), kind);
}

static int evb_submit_slow(struct bench *b, enum bench_job kind)
{
    struct evb *e = b->impl;
    struct evexec_run_opts opts = EVEXEC_RUN_OPTS_INIT;
    opts.lane = EVEXEC_LANE_SLOW;
    return evb_watch(e, evexec_run_opts(e->ex, evb_fns[kind], NULL, &opts), kind);
}

static void evb_start_cb(evutil_socket_t fd, short what, void *arg)
{
    struct evb *e = arg;
    (void)fd;
    (void)what;
    e->start(e->b);
}

static int evb_run(struct bench *b, void (*start)(struct bench *b))
{
    struct evb *e = b->impl;
    struct timeval zero = { 0, 0 };
    e->start = start;
    if (event_base_once(e->base, -1, EV_TIMEOUT, evb_start_cb, e, &zero) != 0)
        return EIO;
    return event_base_dispatch(e->base) < 0 ? EIO : 0;
}

static void evb_close(struct bench *b)
{
    struct evb *e = b->impl;
    if (e == NULL)
        return;
    evexec_free(e->ex);
    if (!e->shares_pool)
        evexec_pool_free(e->pool);
    event_base_free(e->base);
    free(e);
    b->impl = NULL;
}

static struct event_base *evb_base(struct bench *b)
{
    return ((struct evb *)b->impl)->base;
}

static int evb_drain_budget(struct bench *b, unsigned max_callbacks, unsigned max_usec)
{
    return evexec_set_drain_budget(((struct evb *)b->impl)->ex, max_callbacks, max_usec);
}

/* The three evexec backends differ only in their name and burst hooks. */
#define EVB_CALLS                       \
    .open = evb_open,                   \
    .submit = evb_submit,               \
    .run = evb_run,                     \
    .close = evb_close,                 \
    .base = evb_base,                   \
    .drain_budget = evb_drain_budget,   \
    .submit_slow = evb_submit_slow,     \
    .open_peer = evb_open_peer

const struct bench_backend bench_evexec = { .name = "evexec", EVB_CALLS };

const struct bench_backend bench_evexec_spin = { .name = "evexec-spin", EVB_CALLS };

static void evb_burst_begin(struct bench *b)
{
    evexec_batch_begin(((struct evb *)b->impl)->ex);
}

static void evb_burst_end(struct bench *b)
{
    evexec_batch_end(((struct evb *)b->impl)->ex);
}

/* evexec with a burst's submissions in one evexec_batch_begin/end. */
const struct bench_backend bench_evexec_batch = {
    .name = "evexec-batch",
    EVB_CALLS,
    .burst_begin = evb_burst_begin,
    .burst_end = evb_burst_end,
};
