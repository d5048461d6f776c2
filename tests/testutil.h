/*
 * testutil.h -- small helpers shared by the evexec tests.
 *
 * Determinism.  Threads are ordered with gates, not sleeps: a job calls
 * tu_gate_pass() and blocks until the test calls tu_gate_open(); the test
 * learns that n jobs are parked there with tu_gate_wait_arrived().  Filling
 * every worker with a parked job makes "this job is still queued" certain.
 *
 * Asserting.  cmocka's assert_*() longjmps back to the runner, so it is
 * called only on the test's own thread.  Workers and extra threads record
 * what they see in atomics (or in fields read after a join), and the test
 * asserts after event_base_dispatch() or pthread_join() returns.
 *
 * No hangs.  Every wait here has a deadline (TU_DEADLINE_MS): a broken
 * library makes a test fail, not hang.  A failed test does not crash the
 * next one either: see struct tu_fx.
 *
 * Scale.  Sanitizer builds run TU_SCALE(n) iterations instead of n.
 *
 * Everything is static inline: include it from one file per program.
 */
#ifndef EVEXEC_TESTUTIL_H
#define EVEXEC_TESTUTIL_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "evexec.h"

#define TU_DEADLINE_MS 30000

/* ThreadSanitizer, which does not support fork() with threads running. */
#if defined(__SANITIZE_THREAD__)
#define TU_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TU_TSAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define TU_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define TU_SANITIZED 1
#endif
#endif
#ifndef TU_SANITIZED
#define TU_SANITIZED 0
#endif

/* Iteration counts: a quarter under sanitizers (at least 1), which keeps
 * every program well under 20 s with TSan on two loaded cores. */
#define TU_SCALE(n) (TU_SANITIZED ? ((n) / 4 > 0 ? (n) / 4 : 1) : (n))

/* ---- time ---------------------------------------------------------------- */

static inline int64_t tu_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline void tu_sleep_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* Poll pred(arg) every millisecond until it is true.  Returns 0, or
 * ETIMEDOUT after TU_DEADLINE_MS.  For states only visible through polling
 * (pool statistics); anything a test controls uses a gate instead. */
static inline int tu_poll(int (*pred)(void *arg), void *arg)
{
    int64_t end = tu_now_us() + (int64_t)TU_DEADLINE_MS * 1000;
    while (!pred(arg)) {
        if (tu_now_us() > end)
            return ETIMEDOUT;
        tu_sleep_us(1000);
    }
    return 0;
}

/* ---- gates --------------------------------------------------------------- */

struct tu_gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned arrived;   /* threads that reached tu_gate_pass() */
    int open;
};

static inline void tu_gate_init(struct tu_gate *g)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    g->arrived = 0;
    g->open = 0;
}

static inline void tu_gate_destroy(struct tu_gate *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

static inline struct timespec tu__deadline(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += TU_DEADLINE_MS / 1000;
    return ts;
}

/* Wait, with g->mu held, until cond(g, n) holds or the deadline passes. */
static inline int tu__gate_wait(struct tu_gate *g, int (*cond)(struct tu_gate *, unsigned),
                                unsigned n)
{
    struct timespec end = tu__deadline();
    int rc = 0;
    while (!cond(g, n) && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&g->cv, &g->mu, &end);
    return cond(g, n) ? 0 : ETIMEDOUT;
}

static inline int tu__gate_is_open(struct tu_gate *g, unsigned n)
{
    (void)n;
    return g->open;
}

static inline int tu__gate_has_arrived(struct tu_gate *g, unsigned n)
{
    return g->arrived >= n;
}

/* Any thread: count one arrival, then block until the gate is open.
 * Returns 0, or ETIMEDOUT if it never opened. */
static inline int tu_gate_pass(struct tu_gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->arrived++;
    pthread_cond_broadcast(&g->cv);
    int rc = tu__gate_wait(g, tu__gate_is_open, 0);
    pthread_mutex_unlock(&g->mu);
    return rc;
}

/* Block until at least n threads have arrived.  0 or ETIMEDOUT. */
static inline int tu_gate_wait_arrived(struct tu_gate *g, unsigned n)
{
    pthread_mutex_lock(&g->mu);
    int rc = tu__gate_wait(g, tu__gate_has_arrived, n);
    pthread_mutex_unlock(&g->mu);
    return rc;
}

static inline void tu_gate_open(struct tu_gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static inline unsigned tu_gate_arrived(struct tu_gate *g)
{
    pthread_mutex_lock(&g->mu);
    unsigned n = g->arrived;
    pthread_mutex_unlock(&g->mu);
    return n;
}

/* A job that parks at the gate passed as arg and returns 0. */
static inline int tu_gated_job(struct evexec_job *job, void *arg)
{
    (void)job;
    return tu_gate_pass(arg);
}

/* ---- counted results ----------------------------------------------------- */

/* A result whose destructor counts its calls, to check that every result is
 * released exactly once and by the right party. */
struct tu_result {
    atomic_int *frees;
    long value;
};

static inline void tu_result_free(void *p)
{
    struct tu_result *r = p;
    atomic_fetch_add(r->frees, 1);
    free(r);
}

/* NULL only when out of memory. */
static inline struct tu_result *tu_result_new(atomic_int *frees, long value)
{
    struct tu_result *r = malloc(sizeof *r);
    if (r) {
        r->frees = frees;
        r->value = value;
    }
    return r;
}

/* ---- one configurable job ------------------------------------------------ */

/* A job for tu_job_fn: optionally parks at a gate, spins until cancelled,
 * sleeps, sets counted results, and returns `ret`.  The test fills the
 * settings before submitting; the worker writes only the atomics. */
struct tu_job {
    atomic_int *frees;      /* destructor counter of the results it sets */
    struct tu_gate *gate;   /* park here first, if set */
    int wait_cancel;        /* then spin until evexec_job_cancelled() */
    long sleep_us;          /* then sleep this long */
    int nresults;           /* then set this many results (values 0, 1...) */
    int ret;                /* and return this */
    atomic_int ran;         /* times the function was called */
    atomic_int saw_cancel;  /* evexec_job_cancelled() just before returning */
    atomic_int finished;    /* the function is about to return */
};

static inline void tu_job_init(struct tu_job *j, atomic_int *frees, int nresults, int ret)
{
    memset(j, 0, sizeof *j);
    j->frees = frees;
    j->nresults = nresults;
    j->ret = ret;
}

static inline int tu_job_fn(struct evexec_job *job, void *arg)
{
    struct tu_job *j = arg;
    atomic_fetch_add(&j->ran, 1);
    if (j->gate)
        tu_gate_pass(j->gate);
    if (j->wait_cancel) {
        int64_t end = tu_now_us() + (int64_t)TU_DEADLINE_MS * 1000;
        while (!evexec_job_cancelled(job) && tu_now_us() < end)
            tu_sleep_us(100);
    }
    if (j->sleep_us)
        tu_sleep_us(j->sleep_us);
    atomic_store(&j->saw_cancel, evexec_job_cancelled(job));
    for (int i = 0; i < j->nresults; i++)
        evexec_job_set_result(job, tu_result_new(j->frees, i), tu_result_free);
    atomic_store(&j->finished, 1);
    return j->ret;
}

/* An arena of jobs that outlive the test function (struct tu_fx keeps
 * one), so that a worker still running a job after a failed assertion
 * never reads a dead stack frame. */
#define TU_MAX_JOBS 128

struct tu_jobs {
    struct tu_job slot[TU_MAX_JOBS];
    int used;
};

/* n zeroed jobs.  A full arena is a bug in the test: abort. */
static inline struct tu_job *tu_jobs_take(struct tu_jobs *a, int n)
{
    if (n < 0 || a->used + n > TU_MAX_JOBS) {
        fprintf(stderr, "tu_jobs_take: arena full (raise TU_MAX_JOBS)\n");
        abort();
    }
    struct tu_job *j = &a->slot[a->used];
    memset(j, 0, (size_t)n * sizeof *j);
    a->used += n;
    return j;
}

/* ---- done-callback recorder ---------------------------------------------- */

/* Set by tests (loop thread) around an API call that must not run callbacks
 * inline; tu_rec_cb counts the callbacks that run while it is set. */
static int tu_in_api;

/* What one done callback saw.  Loop thread only, so plain fields. */
struct tu_rec {
    int calls;          /* times the callback ran: must end 1 */
    int error;          /* evexec_future_error() seen */
    void *result;       /* evexec_future_result() seen */
    int done;           /* evexec_future_done() seen */
    int inline_calls;   /* runs while tu_in_api was set */
    int off_loop;       /* runs on another thread than `loop` */
    int seq;            /* value of *order when it ran, if order set */
    int *order;         /* optional shared counter giving the run order */
    pthread_t loop;     /* the loop thread, set by tu_rec_init */
};

static inline void tu_rec_init(struct tu_rec *r)
{
    memset(r, 0, sizeof *r);
    r->seq = -1;
    r->loop = pthread_self();
}

static inline void tu_rec_cb(struct evexec_future *f, void *arg)
{
    struct tu_rec *r = arg;
    r->calls++;
    r->error = evexec_future_error(f);
    r->result = evexec_future_result(f);
    r->done = evexec_future_done(f);
    if (tu_in_api)
        r->inline_calls++;
    if (!pthread_equal(pthread_self(), r->loop))
        r->off_loop++;
    if (r->order)
        r->seq = (*r->order)++;
}

/* Run ex's loop until f has ended; check that its callback ran exactly
 * once, on the loop, from the dispatch; return f's error. */
static inline int tu_finish(struct evexec *ex, struct evexec_future *f)
{
    struct tu_rec rec;
    tu_rec_init(&rec);
    assert_non_null(f);
    assert_int_equal(evexec_future_on_done(f, tu_rec_cb, &rec), 0);
    int rc = evexec_run_until_complete(ex, f);
    assert_int_equal(rec.calls, 1);
    assert_int_equal(rec.inline_calls, 0);
    assert_int_equal(rec.off_loop, 0);
    assert_int_equal(rec.error, rc);
    return rc;
}

/* NULL when the callback ran exactly once, on the loop thread, outside any
 * API call marked with tu_in_api, and saw the future done with `error` and
 * `result`; otherwise what went wrong, for fail_msg(). */
static inline const char *tu_rec_check(const struct tu_rec *r, int error, const void *result)
{
    static char msg[200];
    if (r->calls != 1)
        snprintf(msg, sizeof msg, "the callback ran %d times", r->calls);
    else if (r->error != error)
        snprintf(msg, sizeof msg, "the future ended %d (%s), not %d (%s)", r->error,
                 evexec_strerror(r->error), error, evexec_strerror(error));
    else if (r->result != result)
        snprintf(msg, sizeof msg, "the result was %p, not %p", r->result, (void *)result);
    else if (!r->done)
        snprintf(msg, sizeof msg, "the future was not done in its callback");
    else if (r->inline_calls)
        snprintf(msg, sizeof msg, "the callback ran inside an API call");
    else if (r->off_loop)
        snprintf(msg, sizeof msg, "the callback ran off the loop thread");
    else
        return NULL;
    return msg;
}

/* ---- a loop in its own thread ---------------------------------------------- */

/* Runs body(ex, arg) in a new thread that owns its own event_base and an
 * evexec on `pool`, then frees both.  The body asserts nothing (it is not
 * the test's thread): it records into memory the test reads after join. */
struct tu_loop {
    struct evexec_pool *pool;
    void (*body)(struct evexec *ex, void *arg);
    void *arg;
    int setup_error;    /* errno if the base or the evexec could not be made */
    pthread_t thread;
};

static inline void *tu__loop_main(void *p)
{
    struct tu_loop *l = p;
    struct event_base *base = event_base_new();
    struct evexec *ex = base ? evexec_new(base, l->pool) : NULL;
    if (!ex) {
        l->setup_error = errno ? errno : ENOMEM;
    } else {
        l->body(ex, l->arg);
        evexec_free(ex);
    }
    if (base)
        event_base_free(base);
    return NULL;
}

/* Returns 0 or pthread_create's error. */
static inline int tu_loop_start(struct tu_loop *l)
{
    l->setup_error = 0;
    return pthread_create(&l->thread, NULL, tu__loop_main, l);
}

/* Returns the loop's setup error (0 when it ran). */
static inline int tu_loop_join(struct tu_loop *l)
{
    pthread_join(l->thread, NULL);
    return l->setup_error;
}

/* ---- pools --------------------------------------------------------------- */

/* A pool with max_threads workers and max_queued waiting jobs; with the
 * opt-in spin when the environment has TU_SPIN_US (microseconds). */
static inline struct evexec_pool *tu_pool_new(unsigned max_threads, size_t max_queued)
{
    struct evexec_pool_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.max_threads = max_threads;
    cfg.max_queued = max_queued;
    const char *spin = getenv("TU_SPIN_US");
    cfg.spin_us = spin ? (unsigned)strtoul(spin, NULL, 10) : 0;
    return evexec_pool_new(&cfg);
}

static inline struct evexec_pool_stats tu_stats(const struct evexec_pool *pool)
{
    struct evexec_pool_stats st;
    memset(&st, 0, sizeof st);
    evexec_pool_stats(pool, &st);
    return st;
}

/* ---- the usual fixture ------------------------------------------------------ */

/* A loop, a pool of max_threads workers and an evexec on them (or, with
 * max_threads 0, only the loop: the test makes the rest), a counter for
 * tu_result destructors, a gate that teardown opens, and an arena of jobs
 * that outlive the test function.
 *
 *     static int setup(void **state) { return tu_fx_setup(state, 4); }
 *     static int teardown(void **state) { return tu_fx_teardown(state); }
 *
 * A failed test leaves by longjmp, its stack frame gone while workers and
 * pending callbacks may still point into it.  Listed with TU_WRAP and
 * TU_ENTRY, a test tells the fixture it returned; after a failure teardown
 * leaks the fixture instead of freeing it (the test failed anyway), so
 * nothing ever runs a job or a callback on dead memory:
 *
 *     #define TESTS(X) X(test_a) X(test_b)
 *     TESTS(TU_WRAP)
 *     #define ENTRY(name) TU_ENTRY(name, setup, teardown),
 *     const struct CMUnitTest tests[] = { TESTS(ENTRY) };
 */
struct tu_fx {
    int passed;                 /* the test body returned */
    struct event_base *base;
    struct evexec_pool *pool;
    struct evexec *ex;
    atomic_int frees;           /* tu_result destructor calls */
    struct tu_gate gate;
    struct tu_jobs jobs;
};

#define TU_WRAP(name)                                   \
    static void name##_wrapped(void **state)            \
    {                                                   \
        name(state);                                    \
        ((struct tu_fx *)*state)->passed = 1;           \
    }

#define TU_ENTRY(name, setup, teardown) { #name, name##_wrapped, setup, teardown, NULL }

static inline int tu_fx_setup(void **state, unsigned max_threads)
{
    struct tu_fx *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    tu_gate_init(&fx->gate);
    atomic_init(&fx->frees, 0);
    *state = fx;
    fx->base = event_base_new();
    if (!fx->base)
        return -1;
    if (max_threads == 0)
        return 0;
    fx->pool = tu_pool_new(max_threads, 0);
    fx->ex = fx->pool ? evexec_new(fx->base, fx->pool) : NULL;
    return fx->ex ? 0 : -1;
}

static inline int tu_fx_teardown(void **state)
{
    struct tu_fx *fx = *state;
    tu_gate_open(&fx->gate);    /* parked jobs finish into memory that stays */
    if (!fx->passed)
        return 0;               /* leaked on purpose, see above */
    evexec_free(fx->ex);
    evexec_pool_free(fx->pool);
    event_base_free(fx->base);
    tu_gate_destroy(&fx->gate);
    free(fx);
    return 0;
}

/* n zeroed jobs kept by the fixture. */
static inline struct tu_job *tu_fx_jobs(struct tu_fx *fx, int n)
{
    return tu_jobs_take(&fx->jobs, n);
}

/* One job kept by the fixture; its results count into fx->frees. */
static inline struct tu_job *tu_fx_job(struct tu_fx *fx, int nresults, int ret)
{
    struct tu_job *j = tu_fx_jobs(fx, 1);
    tu_job_init(j, &fx->frees, nresults, ret);
    return j;
}

/* ---- stress sizes, seeds, randomness ---------------------------------------- */

/* 1 under EVEXEC_STRESS=long (`make stress`). */
static inline int tu_stress_long(void)
{
    const char *e = getenv("EVEXEC_STRESS");
    return e && strcmp(e, "long") == 0;
}

/* The CI size, or the long size under EVEXEC_STRESS=long; a quarter of
 * either under sanitizers. */
static inline int tu_stress_size(int ci, int lng)
{
    return TU_SCALE(tu_stress_long() ? lng : ci);
}

/* xorshift64* */
static inline uint64_t tu_rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static inline unsigned tu_rng_below(uint64_t *s, unsigned n)
{
    return (unsigned)(tu_rng_next(s) >> 33) % n;
}

/* EVEXEC_STRESS_SEED, or one from the clock. */
static inline uint64_t tu_stress_seed(void)
{
    const char *env = getenv("EVEXEC_STRESS_SEED");
    if (env && *env)
        return strtoull(env, NULL, 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000000007ULL) ^ (uint64_t)ts.tv_nsec;
}

#endif /* EVEXEC_TESTUTIL_H */
