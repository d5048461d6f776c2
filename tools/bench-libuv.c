/*
 * bench-libuv.c -- libuv's thread pool (uv_queue_work + uv_run) as an
 * evexec-bench backend.
 *
 * Used as a libuv program would: one malloc'd uv_work_t per job (with the
 * job's kind next to it), freed in the after-work callback.  libuv's pool is process-wide and sized once
 * from UV_THREADPOOL_SIZE, which is set before its first use; every
 * measured run is its own process, so each gets the size it asks for.
 *
 * Lanes: libuv's pool has a cap for slow I/O (at most half its threads),
 * but only its own getaddrinfo and getnameinfo requests are classed
 * there: every uv_queue_work job is in its CPU class, and the public API
 * offers no other.  So w7's 10 ms jobs go through uv_queue_work like the
 * short ones (no submit_slow), as a libuv program's would.  Its second loop is a
 * second uv_loop_t: the pool is process-wide, so the two loops share it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1   /* POSIX and Linux calls under -std=c11 */
#endif
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#ifdef HAVE_LIBUV

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <uv.h>

#include "bench.h"

/* One job: libuv's request and the kind of job it carries. */
struct uvb_req {
    uv_work_t req;
    enum bench_job kind;
};

struct uvb {
    struct bench *b;
    uv_loop_t loop;
    uv_timer_t start_timer;
    void (*start)(struct bench *b);
};

static void uvb_noop(uv_work_t *req) { (void)req; bench_job_noop(); }
static void uvb_sleep(uv_work_t *req) { (void)req; bench_job_sleep(); }
static void uvb_gate(uv_work_t *req) { (void)req; bench_job_gate(); }
static void uvb_spin1(uv_work_t *req) { (void)req; bench_job_spin1(); }
static void uvb_spin100(uv_work_t *req) { (void)req; bench_job_spin100(); }

/* The job bodies, by kind. */
static const uv_work_cb uvb_fns[BENCH_KINDS] = {
    [BENCH_NOOP] = uvb_noop,
    [BENCH_SLEEP] = uvb_sleep,
    [BENCH_GATE] = uvb_gate,
    [BENCH_SPIN1] = uvb_spin1,
    [BENCH_SPIN100] = uvb_spin100,
};

static void uvb_after(uv_work_t *req, int status)
{
    struct bench *b = req->data;
    struct uvb_req *r = (struct uvb_req *)req;
    enum bench_job kind = r->kind;
    free(r);
    bench_delivered(b, status == 0, kind);
}

static int uvb_open_loop(struct bench *b)
{
    struct uvb *u = calloc(1, sizeof *u);
    if (u == NULL)
        return ENOMEM;
    u->b = b;
    int rc = uv_loop_init(&u->loop);
    if (rc != 0) {
        free(u);
        return -rc;
    }
    b->impl = u;
    return 0;
}

static int uvb_open(struct bench *b)
{
    char n[16];
    snprintf(n, sizeof n, "%u", b->threads);
    if (setenv("UV_THREADPOOL_SIZE", n, 1) != 0)
        return errno;
    return uvb_open_loop(b);
}

/* A second loop: libuv's pool is already the process's, shared. */
static int uvb_open_peer(struct bench *peer, struct bench *b)
{
    (void)b;
    return uvb_open_loop(peer);
}

static int uvb_submit(struct bench *b, enum bench_job kind)
{
    struct uvb *u = b->impl;
    struct uvb_req *r = malloc(sizeof *r);
    if (r == NULL)
        return ENOMEM;
    r->req.data = b;
    r->kind = kind;
    int rc = uv_queue_work(&u->loop, &r->req, uvb_fns[kind], uvb_after);
    if (rc != 0) {
        free(r);
        return -rc;
    }
    return 0;
}

static void uvb_start_cb(uv_timer_t *t)
{
    struct uvb *u = t->data;
    uv_close((uv_handle_t *)t, NULL);
    u->start(u->b);
}

static int uvb_run(struct bench *b, void (*start)(struct bench *b))
{
    struct uvb *u = b->impl;
    u->start = start;
    uv_timer_init(&u->loop, &u->start_timer);
    u->start_timer.data = u;
    uv_timer_start(&u->start_timer, uvb_start_cb, 0, 0);
    uv_run(&u->loop, UV_RUN_DEFAULT);
    return 0;
}

static void uvb_close(struct bench *b)
{
    struct uvb *u = b->impl;
    if (u == NULL)
        return;
    uv_run(&u->loop, UV_RUN_DEFAULT);   /* finish closing handles */
    uv_loop_close(&u->loop);
    free(u);
    b->impl = NULL;
}

const struct bench_backend bench_libuv = {
    .name = "libuv",
    .open = uvb_open,
    .submit = uvb_submit,
    .run = uvb_run,
    .close = uvb_close,
    .open_peer = uvb_open_peer,
};

#else
typedef int bench_libuv_absent; /* keeps the unit non-empty (ISO C) */
#endif /* HAVE_LIBUV */
