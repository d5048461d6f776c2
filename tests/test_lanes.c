/*
 * test_lanes.c -- lanes users declare (evexec_pool_add_lane): names and
 * errors, a lane's cap on threads (1: one call at a time), its queue
 * bound, affine lanes (one dedicated thread of their own), the turn the
 * lanes take, deadlines on an affine lane, lane statistics, shutdown with
 * an affine lane, and per-lane watermarks (evexec_set_lane_watermarks).
 *
 * Each test makes the pool it needs (fx_pool); the fixture owns the base,
 * and frees the evexec and the pool after the test.  What workers record
 * goes to static memory that outlives a failed test.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "evexec.h"
#include "testutil.h"

static int setup(void **state)
{
    return tu_fx_setup(state, 0);
}

static int teardown(void **state)
{
    return tu_fx_teardown(state);
}

static struct evexec_pool_config config(unsigned max_threads, size_t max_queued)
{
    struct evexec_pool_config cfg = EVEXEC_POOL_CONFIG_INIT;
    cfg.max_threads = max_threads;
    cfg.max_queued = max_queued;
    return cfg;
}

static void fx_pool(struct tu_fx *fx, const struct evexec_pool_config *cfg)
{
    fx->pool = evexec_pool_new(cfg);
    assert_non_null(fx->pool);
    fx->ex = evexec_new(fx->base, fx->pool);
    assert_non_null(fx->ex);
}

/* The fixture, with a pool of max_threads and an evexec on it. */
static struct tu_fx *fx_threads(void **state, unsigned max_threads)
{
    struct tu_fx *fx = *state;
    struct evexec_pool_config cfg = config(max_threads, 0);
    fx_pool(fx, &cfg);
    return fx;
}

/* Add a lane; its number. */
static int add_lane(struct tu_fx *fx, const char *name, unsigned max_threads,
                    size_t max_queued, int affine)
{
    struct evexec_lane_config lc = EVEXEC_LANE_CONFIG_INIT;
    lc.name = name;
    lc.max_threads = max_threads;
    lc.max_queued = max_queued;
    lc.affine = affine;
    int lane = -1;
    assert_int_equal(evexec_pool_add_lane(fx->pool, &lc, &lane), 0);
    assert_true(lane >= 2 && lane < EVEXEC_MAX_LANES);
    return lane;
}

static struct evexec_future *run_in(struct tu_fx *fx, int lane, evexec_fn fn, void *arg)
{
    struct evexec_run_opts o = EVEXEC_RUN_OPTS_INIT;
    o.lane = lane;
    struct evexec_future *f = evexec_run_opts(fx->ex, fn, arg, &o);
    assert_non_null(f);
    return f;
}

/* Submit n jobs to `lane` that park at fx->gate. */
static void park_in(struct tu_fx *fx, int lane, struct tu_job *j,
                    struct evexec_future **f, int n)
{
    for (int i = 0; i < n; i++) {
        tu_job_init(&j[i], &fx->frees, 0, 0);
        j[i].gate = &fx->gate;
        f[i] = run_in(fx, lane, tu_job_fn, &j[i]);
    }
}

/* Run the loop until f ends, at most TU_DEADLINE_MS; f's error. */
static int finish(struct tu_fx *fx, struct evexec_future *f)
{
    struct timeval tv = { TU_DEADLINE_MS / 1000, 0 };
    struct evexec_future *w = evexec_wait_for(fx->ex, f, &tv);
    assert_non_null(w);
    int rc = evexec_run_until_complete(fx->ex, w);
    evexec_future_unref(w);
    return rc;
}

static void finish_all(struct tu_fx *fx, struct evexec_future **f, int n, int error)
{
    for (int i = 0; i < n; i++) {
        assert_int_equal(finish(fx, f[i]), error);
        evexec_future_unref(f[i]);
    }
}

/* ---- what jobs record ------------------------------------------------------ */

static atomic_int inside, most_inside, calls;
static pthread_t tids[512];
static atomic_int order[64], norder;

static void record_reset(void)
{
    atomic_store(&inside, 0);
    atomic_store(&most_inside, 0);
    atomic_store(&calls, 0);
    atomic_store(&norder, 0);
}

/* Count how many run at once, for a while, and where. */
static int overlap_job(struct evexec_job *job, void *arg)
{
    (void)job;
    (void)arg;
    int now = atomic_fetch_add(&inside, 1) + 1;
    int most = atomic_load(&most_inside);
    while (now > most && !atomic_compare_exchange_weak(&most_inside, &most, now))
        ;
    int n = atomic_fetch_add(&calls, 1);
    if (n < (int)(sizeof tids / sizeof tids[0]))
        tids[n] = pthread_self();
    tu_sleep_us(1000);
    atomic_fetch_sub(&inside, 1);
    return 0;
}

/* Record its tag (arg) in the order the jobs ran. */
static int order_job(struct evexec_job *job, void *arg)
{
    (void)job;
    int i = atomic_fetch_add(&norder, 1);
    if (i < 64)
        atomic_store(&order[i], (int)(intptr_t)arg);
    return 0;
}

static pthread_t where_tid;

static int where_job(struct evexec_job *job, void *arg)
{
    (void)job;
    (void)arg;
    where_tid = pthread_self();
    return 0;
}

/* ---- names and errors -------------------------------------------------------- */

static void test_add_lane_errors(void **state)
{
    struct tu_fx *fx = fx_threads(state, 4);
    struct evexec_lane_config lc = EVEXEC_LANE_CONFIG_INIT;
    int lane = -7;

    assert_int_equal(evexec_pool_lane_find(fx->pool, "default"), EVEXEC_LANE_DEFAULT);
    assert_int_equal(evexec_pool_lane_find(fx->pool, "slow"), EVEXEC_LANE_SLOW);
    errno = 0;
    assert_int_equal(evexec_pool_lane_find(fx->pool, "db"), -1);
    assert_int_equal(errno, ENOENT);
    errno = 0;
    assert_int_equal(evexec_pool_lane_find(NULL, "db"), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(evexec_pool_lane_find(fx->pool, NULL), -1);

    lc.name = "db";
    assert_int_equal(evexec_pool_add_lane(NULL, &lc, &lane), EINVAL);
    assert_int_equal(evexec_pool_add_lane(fx->pool, NULL, &lane), EINVAL);
    assert_int_equal(evexec_pool_add_lane(fx->pool, &lc, NULL), EINVAL);
    lc.name = NULL;
    assert_int_equal(evexec_pool_add_lane(fx->pool, &lc, &lane), EINVAL);
    lc.name = "";
    assert_int_equal(evexec_pool_add_lane(fx->pool, &lc, &lane), EINVAL);
    lc.name = "0123456789abcdef";          /* 16 bytes */
    assert_int_equal(evexec_pool_add_lane(fx->pool, &lc, &lane), EINVAL);
    /* Names the stats socket could not write as one word. */
    static const char *const bad[] = { "a b", "x\nlane=y", "k=v", "tab\t", "\x7f" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lc.name = bad[i];
        assert_int_equal(evexec_pool_add_lane(fx->pool, &lc, &lane), EINVAL);
    }
    lc.name = "db";
    lc.max_threads = 5;                    /* above the pool's 4 */
    assert_int_equal(evexec_pool_add_lane(fx->pool, &lc, &lane), EINVAL);
    lc.affine = 1;                         /* ignored when affine */
    assert_int_equal(evexec_pool_add_lane(fx->pool, &lc, &lane), 0);
    assert_int_equal(lane, 2);
    lane = -7;
    lc.affine = 0;
    lc.max_threads = 0;
    lc.name = "default";
    assert_int_equal(evexec_pool_add_lane(fx->pool, &lc, &lane), EEXIST);
    lc.name = "slow";
    assert_int_equal(evexec_pool_add_lane(fx->pool, &lc, &lane), EEXIST);
    assert_int_equal(lane, -7);            /* untouched by every failure */

    /* A lane that does not exist yet is EINVAL for a job. */
    struct evexec_run_opts o = EVEXEC_RUN_OPTS_INIT;
    o.lane = 3;
    errno = 0;
    assert_null(evexec_run_opts(fx->ex, order_job, NULL, &o));
    assert_int_equal(errno, EINVAL);
    o.lane = -1;
    assert_null(evexec_run_opts(fx->ex, order_job, NULL, &o));

    char name[8];
    for (int i = 3; i < EVEXEC_MAX_LANES; i++) {
        snprintf(name, sizeof name, "l%d", i);
        assert_int_equal(add_lane(fx, name, 0, 0, 0), i);
        assert_int_equal(evexec_pool_lane_find(fx->pool, name), i);
    }
    lc.name = "one-too-many";
    assert_int_equal(evexec_pool_add_lane(fx->pool, &lc, &lane), ENOSPC);
    lc.name = "l3";
    assert_int_equal(evexec_pool_add_lane(fx->pool, &lc, &lane), EEXIST);

    /* Every lane takes jobs now; the last one too. */
    o.lane = EVEXEC_MAX_LANES - 1;
    struct evexec_future *f = evexec_run_opts(fx->ex, order_job, NULL, &o);
    assert_non_null(f);
    assert_int_equal(finish(fx, f), 0);
    evexec_future_unref(f);

    struct evexec_lane_stats ls;
    assert_int_equal(evexec_pool_lane_stats(fx->pool, EVEXEC_MAX_LANES - 1, &ls), 0);
    assert_int_equal(ls.completed, 1);
    assert_int_equal(evexec_pool_lane_stats(fx->pool, EVEXEC_MAX_LANES, &ls), EINVAL);

    assert_int_equal(evexec_pool_shutdown(fx->pool, 0), 0);
    lc.name = "late";
    assert_int_equal(evexec_pool_add_lane(fx->pool, &lc, &lane), ESHUTDOWN);
}

/* ---- caps ---------------------------------------------------------------------- */

/* A lane with cap 1 on a pool of 4 threads runs its jobs one at a time,
 * on whichever thread: a library that is not thread-safe needs no lock. */
static void test_cap_one_serialises(void **state)
{
    enum { N = 64 };
    struct tu_fx *fx = fx_threads(state, 4);
    int lane = add_lane(fx, "legacy", 1, 0, 0);
    record_reset();
    struct evexec_future *f[N];
    for (int i = 0; i < N; i++)
        f[i] = run_in(fx, lane, overlap_job, NULL);
    finish_all(fx, f, N, 0);
    assert_int_equal(atomic_load(&calls), N);
    assert_int_equal(atomic_load(&most_inside), 1);

    /* The same jobs in the default lane do overlap: the pool has the
     * threads, so the cap is what kept them apart.  The four threads are
     * started first (parked together once): under a sanitizer on a loaded
     * machine, starting them could take longer than the jobs. */
    struct tu_job *warm = tu_fx_jobs(fx, 4);
    struct evexec_future *wf[4];
    park_in(fx, EVEXEC_LANE_DEFAULT, warm, wf, 4);
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, 4), 0);
    tu_gate_open(&fx->gate);
    finish_all(fx, wf, 4, 0);
    record_reset();
    for (int i = 0; i < N; i++)
        f[i] = run_in(fx, EVEXEC_LANE_DEFAULT, overlap_job, NULL);
    finish_all(fx, f, N, 0);
    assert_true(atomic_load(&most_inside) > 1);
}

struct lane_probe {
    const struct evexec_pool *pool;
    int lane;
    size_t running, queued;
};

static int lane_is(void *arg)
{
    struct lane_probe *p = arg;
    struct evexec_lane_stats ls;
    return evexec_pool_lane_stats(p->pool, p->lane, &ls) == 0 &&
           ls.running == p->running && ls.queued == p->queued;
}

/* A lane at its cap never takes another thread, however many are idle,
 * and the other lanes keep theirs: cap 2 of 4 threads, 4 parked jobs ->
 * 2 run, 2 wait, and a default-lane job still runs at once. */
static void test_cap_holds(void **state)
{
    enum { CAP = 2, N = 4 };
    struct tu_fx *fx = fx_threads(state, 4);
    int lane = add_lane(fx, "two", CAP, 0, 0);
    struct tu_job *j = tu_fx_jobs(fx, N);
    struct evexec_future *f[N];
    park_in(fx, lane, j, f, N);
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, CAP), 0);
    struct tu_job *fast = tu_fx_job(fx, 0, 0);
    struct evexec_future *ff = run_in(fx, EVEXEC_LANE_DEFAULT, tu_job_fn, fast);
    assert_int_equal(finish(fx, ff), 0);
    evexec_future_unref(ff);
    /* Two free threads were there all along; still only CAP run. */
    tu_sleep_us(20000);
    assert_int_equal(tu_gate_arrived(&fx->gate), CAP);
    struct lane_probe p = { fx->pool, lane, CAP, N - CAP };
    assert_true(lane_is(&p));
    tu_gate_open(&fx->gate);
    finish_all(fx, f, N, 0);
}

/* ---- queue bound ------------------------------------------------------------------ */

struct refuse_ctx {
    struct tu_fx *fx;
    int lane;
    int err;             /* errno of the submission made in the callback */
    int done;
};

static void submit_in_callback(struct evexec_future *f, void *arg)
{
    (void)f;
    struct refuse_ctx *c = arg;
    struct evexec_run_opts o = EVEXEC_RUN_OPTS_INIT;
    o.lane = c->lane;
    errno = 0;
    struct evexec_future *g = evexec_run_opts(c->fx->ex, order_job, NULL, &o);
    c->err = g ? 0 : errno;
    if (g)
        evexec_future_unref(g);
    c->done = 1;
}

/* A lane's own max_queued on a pool without one: cap 1, bound 2 -> one
 * runs, two wait, the next is EAGAIN, also from inside a callback (where
 * other jobs are batched), while the default lane takes any number. */
static void test_lane_bound(void **state)
{
    enum { QMAX = 2, N = 1 + QMAX };
    struct tu_fx *fx = fx_threads(state, 4);
    int lane = add_lane(fx, "bounded", 1, QMAX, 0);
    struct tu_job *j = tu_fx_jobs(fx, N);
    struct evexec_future *f[N];
    park_in(fx, lane, j, f, N);
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, 1), 0);
    struct evexec_run_opts o = EVEXEC_RUN_OPTS_INIT;
    o.lane = lane;
    errno = 0;
    assert_null(evexec_run_opts(fx->ex, order_job, NULL, &o));
    assert_int_equal(errno, EAGAIN);

    struct refuse_ctx c = { fx, lane, -1, 0 };
    struct evexec_future *d = evexec_run(fx->ex, order_job, NULL);
    assert_non_null(d);
    assert_int_equal(evexec_future_on_done(d, submit_in_callback, &c), 0);
    assert_int_equal(finish(fx, d), 0);
    evexec_future_unref(d);
    assert_int_equal(c.done, 1);
    assert_int_equal(c.err, EAGAIN);

    struct evexec_future *many[16];
    for (int i = 0; i < 16; i++)
        many[i] = run_in(fx, EVEXEC_LANE_DEFAULT, order_job, NULL);
    finish_all(fx, many, 16, 0);
    tu_gate_open(&fx->gate);
    finish_all(fx, f, N, 0);
}

/* ---- the turn of lanes ------------------------------------------------------------ */

/* One thread, parked; then three jobs each in lanes A and B (all of A
 * first): once free, the thread serves the lanes in turn, A B A B A B,
 * and the default lane before both. */
static void test_lanes_take_turns(void **state)
{
    struct tu_fx *fx = fx_threads(state, 1);
    int a = add_lane(fx, "a", 0, 0, 0);
    int b = add_lane(fx, "b", 0, 0, 0);
    record_reset();
    struct tu_job *gate_job = tu_fx_job(fx, 0, 0);
    gate_job->gate = &fx->gate;
    struct evexec_future *g = run_in(fx, EVEXEC_LANE_DEFAULT, tu_job_fn, gate_job);
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, 1), 0);
    struct evexec_future *f[7];
    for (int i = 0; i < 3; i++)
        f[i] = run_in(fx, a, order_job, (void *)(intptr_t)(10 + i));
    for (int i = 0; i < 3; i++)
        f[3 + i] = run_in(fx, b, order_job, (void *)(intptr_t)(20 + i));
    f[6] = run_in(fx, EVEXEC_LANE_DEFAULT, order_job, (void *)(intptr_t)1);
    tu_gate_open(&fx->gate);
    assert_int_equal(finish(fx, g), 0);
    evexec_future_unref(g);
    finish_all(fx, f, 7, 0);
    static const int want[7] = { 1, 10, 20, 11, 21, 12, 22 };
    assert_int_equal(atomic_load(&norder), 7);
    for (int i = 0; i < 7; i++)
        assert_int_equal(atomic_load(&order[i]), want[i]);
}

/* ---- affine lanes ------------------------------------------------------------------ */

static atomic_int starts, exits;

static void *count_start(void *arg)
{
    (void)arg;
    atomic_fetch_add(&starts, 1);
    return NULL;
}

static void count_exit(void *arg, void *st)
{
    (void)arg;
    (void)st;
    atomic_fetch_add(&exits, 1);
}

static _Thread_local int handle_made;

/* A library handle made on first use, valid only on its thread. */
static int handle_job(struct evexec_job *job, void *arg)
{
    (void)job;
    int *made_here = arg;
    *made_here = !handle_made;
    handle_made = 1;
    return 0;
}

/* Every job of an affine lane runs on one thread, a thread no default
 * job runs on, that exists apart from max_threads: with max_threads 1 and
 * the pool's only thread parked, affine jobs still run.  Thread-local
 * state lives from one job to the next.  The thread runs thread_start
 * and thread_exit like any worker, and exits with the pool. */
static void test_affine_lane(void **state)
{
    struct tu_fx *fx = *state;
    enum { N = 50 };
    struct evexec_pool_config cfg = config(1, 0);
    cfg.thread_start = count_start;
    cfg.thread_exit = count_exit;
    atomic_store(&starts, 0);
    atomic_store(&exits, 0);
    fx_pool(fx, &cfg);
    int lane = add_lane(fx, "gl", 0, 0, 1);
    record_reset();

    struct tu_job *gate_job = tu_fx_job(fx, 0, 0);
    gate_job->gate = &fx->gate;
    struct evexec_future *g = run_in(fx, EVEXEC_LANE_DEFAULT, tu_job_fn, gate_job);
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, 1), 0);

    struct evexec_future *f[N];
    for (int i = 0; i < N; i++)
        f[i] = run_in(fx, lane, overlap_job, NULL);
    finish_all(fx, f, N, 0);          /* the only shared thread is parked */
    assert_int_equal(atomic_load(&calls), N);
    assert_int_equal(atomic_load(&most_inside), 1);
    for (int i = 1; i < N; i++)
        assert_true(pthread_equal(tids[i], tids[0]));
    assert_int_equal(tu_stats(fx->pool).threads, 1);   /* not counted */

    static int made[3];
    for (int i = 0; i < 3; i++) {
        struct evexec_future *h = run_in(fx, lane, handle_job, &made[i]);
        assert_int_equal(finish(fx, h), 0);
        evexec_future_unref(h);
    }
    assert_int_equal(made[0] + made[1] + made[2], 1);   /* made once */

    tu_gate_open(&fx->gate);
    assert_int_equal(finish(fx, g), 0);
    evexec_future_unref(g);
    struct evexec_future *d = run_in(fx, EVEXEC_LANE_DEFAULT, where_job, NULL);
    assert_int_equal(finish(fx, d), 0);
    evexec_future_unref(d);
    assert_false(pthread_equal(where_tid, tids[0]));

    /* With the shared thread free and busy beside it, still one thread. */
    pthread_t affine_tid = tids[0];
    record_reset();
    struct evexec_future *mix[2 * N];
    for (int i = 0; i < N; i++) {
        mix[2 * i] = run_in(fx, EVEXEC_LANE_DEFAULT, order_job, NULL);
        mix[2 * i + 1] = run_in(fx, lane, overlap_job, NULL);
    }
    finish_all(fx, mix, 2 * N, 0);
    assert_int_equal(atomic_load(&calls), N);
    for (int i = 0; i < N; i++)
        assert_true(pthread_equal(tids[i], affine_tid));

    evexec_free(fx->ex);
    fx->ex = NULL;
    evexec_pool_free(fx->pool);
    fx->pool = NULL;
    assert_int_equal(atomic_load(&starts), 2);   /* the shared one, the affine one */
    assert_int_equal(atomic_load(&exits), 2);
}

static int stuck_job(struct evexec_job *job, void *arg)
{
    struct tu_gate *g = arg;
    (void)job;
    tu_gate_pass(g);
    where_tid = pthread_self();
    return 0;
}

/* A job of `lane` with a 20 ms deadline, parked at fx->gate: returns its
 * future once it runs. */
static struct evexec_future *run_stuck(struct tu_fx *fx, int lane)
{
    struct evexec_run_opts o = EVEXEC_RUN_OPTS_INIT;
    o.lane = lane;
    o.deadline.tv_usec = 20000;
    struct evexec_future *stuck = evexec_run_opts(fx->ex, stuck_job, &fx->gate, &o);
    assert_non_null(stuck);
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, 1), 0);
    return stuck;
}

/* A job of an affine lane given up at its deadline keeps the lane's
 * thread: its future ends ETIMEDOUT at once, and the next job waits for
 * it, then runs on the same thread. */
static void test_affine_deadline(void **state)
{
    struct tu_fx *fx = fx_threads(state, 2);
    int lane = add_lane(fx, "tls", 0, 0, 1);
    struct evexec_future *stuck = run_stuck(fx, lane);
    assert_int_equal(finish(fx, stuck), ETIMEDOUT);
    evexec_future_unref(stuck);

    record_reset();
    struct evexec_future *next = run_in(fx, lane, overlap_job, NULL);
    tu_sleep_us(20000);
    assert_int_equal(atomic_load(&calls), 0);     /* behind the stuck one */
    tu_gate_open(&fx->gate);
    assert_int_equal(finish(fx, next), 0);
    evexec_future_unref(next);
    assert_int_equal(atomic_load(&calls), 1);
    assert_true(pthread_equal(tids[0], where_tid));
}

/* A job of a declared lane given up at its deadline still counts against
 * the lane's cap until it returns: cap 1 stays one call at a time.  The
 * pool keeps its capacity for the other lanes: with max_threads 1 and the
 * given-up job holding the only thread, a default-lane job still runs. */
static void test_cap_holds_past_deadline(void **state)
{
    struct tu_fx *fx = fx_threads(state, 1);
    int lane = add_lane(fx, "legacy", 1, 0, 0);
    record_reset();
    struct evexec_future *stuck = run_stuck(fx, lane);
    struct evexec_future *next = run_in(fx, lane, overlap_job, NULL);
    assert_int_equal(finish(fx, stuck), ETIMEDOUT);
    evexec_future_unref(stuck);

    struct evexec_future *d = run_in(fx, EVEXEC_LANE_DEFAULT, order_job, NULL);
    assert_int_equal(finish(fx, d), 0);
    evexec_future_unref(d);
    tu_sleep_us(20000);
    assert_int_equal(atomic_load(&calls), 0);     /* behind the given-up one */
    struct lane_probe p = { fx->pool, lane, 1, 1 };
    assert_true(lane_is(&p));
    tu_gate_open(&fx->gate);
    assert_int_equal(finish(fx, next), 0);
    evexec_future_unref(next);
    assert_int_equal(atomic_load(&calls), 1);
}

/* Shutdown(CANCEL) ends an affine lane's queued jobs ECANCELED; free
 * joins its thread. */
static void test_affine_shutdown(void **state)
{
    enum { N = 4 };
    struct tu_fx *fx = fx_threads(state, 2);
    int lane = add_lane(fx, "one", 0, 0, 1);
    struct tu_job *j = tu_fx_jobs(fx, N);
    struct evexec_future *f[N];
    park_in(fx, lane, j, f, N);
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, 1), 0);
    assert_int_equal(evexec_pool_shutdown(fx->pool, EVEXEC_SHUTDOWN_CANCEL), 0);
    for (int i = 1; i < N; i++)
        assert_int_equal(finish(fx, f[i]), ECANCELED);
    tu_gate_open(&fx->gate);
    assert_int_equal(finish(fx, f[0]), 0);
    for (int i = 0; i < N; i++)
        evexec_future_unref(f[i]);
    assert_int_equal(atomic_load(&j[0].ran), 1);
    for (int i = 1; i < N; i++)
        assert_int_equal(atomic_load(&j[i].ran), 0);
}

/* ---- per-lane watermarks -------------------------------------------------------------- */

struct wm_log {
    int calls[EVEXEC_MAX_LANES + 1];
    int last[EVEXEC_MAX_LANES + 1];
};

static struct wm_log wml;

static void wm_cb(struct evexec *ex, int above, void *arg)
{
    (void)ex;
    int i = (int)(intptr_t)arg;
    wml.calls[i]++;
    wml.last[i] = above;
}

/* A lane's watermarks count only its jobs: three parked jobs in lane A
 * cross A's high mark (3), the default lane's jobs never touch it, and
 * draining A falls to its low mark (1).  The evexec's own watermarks
 * count all lanes together and are told apart. */
static void test_lane_watermarks(void **state)
{
    struct tu_fx *fx = fx_threads(state, 4);
    int a = add_lane(fx, "a", 0, 0, 0);
    memset(&wml, 0, sizeof wml);
    assert_int_equal(evexec_set_lane_watermarks(NULL, a, 1, 3, wm_cb, NULL), EINVAL);
    assert_int_equal(evexec_set_lane_watermarks(fx->ex, a + 1, 1, 3, wm_cb, NULL), EINVAL);
    assert_int_equal(evexec_set_lane_watermarks(fx->ex, a, 3, 3, wm_cb, NULL), EINVAL);
    assert_int_equal(evexec_set_lane_watermarks(fx->ex, a, 1, 3, NULL, NULL), EINVAL);
    assert_int_equal(evexec_set_lane_watermarks(fx->ex, a, 1, 3, wm_cb,
                                                (void *)(intptr_t)a), 0);
    assert_int_equal(evexec_set_watermarks(fx->ex, 1, 5, wm_cb,
                                           (void *)(intptr_t)EVEXEC_MAX_LANES), 0);

    /* Four default-lane jobs: A's count stays 0; the evexec's reaches 4. */
    struct evexec_future *d[4];
    for (int i = 0; i < 4; i++)
        d[i] = run_in(fx, EVEXEC_LANE_DEFAULT, order_job, NULL);
    finish_all(fx, d, 4, 0);
    assert_int_equal(wml.calls[a], 0);
    assert_int_equal(wml.calls[EVEXEC_MAX_LANES], 0);

    struct tu_job *j = tu_fx_jobs(fx, 3);
    struct evexec_future *f[3];
    park_in(fx, a, j, f, 3);
    assert_int_equal(wml.calls[a], 0);          /* told from the loop */
    struct tu_job *one = tu_fx_job(fx, 0, 0);
    struct evexec_future *o = run_in(fx, EVEXEC_LANE_DEFAULT, tu_job_fn, one);
    assert_int_equal(finish(fx, o), 0);
    evexec_future_unref(o);
    assert_int_equal(wml.calls[a], 1);
    assert_int_equal(wml.last[a], 1);
    assert_int_equal(wml.calls[EVEXEC_MAX_LANES], 0);   /* 4 < 5 */

    tu_gate_open(&fx->gate);
    finish_all(fx, f, 3, 0);
    assert_int_equal(wml.calls[a], 2);
    assert_int_equal(wml.last[a], 0);

    /* Off: no more calls. */
    assert_int_equal(evexec_set_lane_watermarks(fx->ex, a, 0, 0, NULL, NULL), 0);
    for (int i = 0; i < 3; i++)
        f[i] = run_in(fx, a, order_job, NULL);
    finish_all(fx, f, 3, 0);
    assert_int_equal(wml.calls[a], 2);
}

/* ---- lanes added while jobs run ------------------------------------------------ */

static atomic_int adder_done;

static void *add_lanes_main(void *arg)
{
    struct evexec_pool *pool = arg;
    char name[8];
    for (int i = 2; i < EVEXEC_MAX_LANES; i++) {
        struct evexec_lane_config lc = EVEXEC_LANE_CONFIG_INIT;
        snprintf(name, sizeof name, "r%d", i);
        lc.name = name;
        lc.max_threads = (unsigned)(i % 3);
        lc.max_queued = i % 4 == 0 ? 64 : 0;
        lc.affine = i % 3 == 2;
        int lane;
        if (evexec_pool_add_lane(pool, &lc, &lane) != 0 || lane != i)
            atomic_store(&adder_done, -1);
        tu_sleep_us(2000);
    }
    if (atomic_load(&adder_done) == 0)
        atomic_store(&adder_done, 1);
    return NULL;
}

/* Lanes added by another thread while the loop submits to every lane it
 * finds by name and reads their statistics: each job runs once, in a
 * lane that was published whole (its name, cap, bound and kind). */
static void test_add_lane_while_running(void **state)
{
    enum { PER = 8 };
    struct tu_fx *fx = fx_threads(state, 4);
    record_reset();
    atomic_store(&adder_done, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, add_lanes_main, fx->pool), 0);
    int submitted = 0, rounds_after = 0;
    char name[8];
    while (rounds_after < 2) {
        if (atomic_load(&adder_done) != 0)
            rounds_after++;
        struct evexec_future *f[EVEXEC_MAX_LANES * PER];
        int nf = 0;
        for (int i = 2; i < EVEXEC_MAX_LANES; i++) {
            snprintf(name, sizeof name, "r%d", i);
            int lane = evexec_pool_lane_find(fx->pool, name);
            if (lane < 0)
                continue;
            assert_int_equal(lane, i);
            struct evexec_lane_stats ls;
            assert_int_equal(evexec_pool_lane_stats(fx->pool, lane, &ls), 0);
            for (int k = 0; k < PER; k++)
                f[nf++] = run_in(fx, lane, order_job, NULL);
        }
        submitted += nf;
        finish_all(fx, f, nf, 0);
    }
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&adder_done), 1);
    assert_int_equal(atomic_load(&norder), submitted);
    assert_true(submitted >= (EVEXEC_MAX_LANES - 2) * PER);
}

/* ---- stress: every kind of lane, two loops, cancels and deadlines ---------------- */

/* The lanes of the stress pool, by role. */
enum { SL_DEFAULT, SL_SLOW, SL_CAP1, SL_CAP2, SL_BOUNDED, SL_AFFINE, SL_N };

struct sjob {
    atomic_int ran;             /* fn calls (worker) */
    pthread_t tid;              /* where fn ran (worker, read after the join) */
    unsigned spin_us;
    int role;
    unsigned char deadline, fail, set_result;
    /* loop thread only */
    unsigned char accepted, refused, cancel_taken;
    int calls, err;
};

struct sloop {
    struct evexec *ex;
    const int *lane;            /* lane number by role */
    struct sjob *jobs;
    int n, next;                /* jobs made, the next to submit */
    int inflight, done;
    int slot_job[64];           /* in-flight job of each slot, or -1 */
    struct evexec_future *slot_fut[64];
    int slot_free[64], nfree;
    uint64_t rng;
    struct event *timer;
    int bad_submit, bad_cancel, bad_outcome, refused;
};

static atomic_int s_inside[SL_N], s_most[SL_N];
static atomic_int s_results;    /* results set by jobs, minus those released */

static void s_result_free(void *p)
{
    atomic_fetch_sub(&s_results, 1);
    free(p);
}

static void s_busy_us(unsigned us)
{
    int64_t end = tu_now_us() + us;
    while (tu_now_us() < end)
        ;
}

static int s_job(struct evexec_job *job, void *arg)
{
    struct sjob *j = arg;
    int role = j->role;
    atomic_fetch_add(&j->ran, 1);
    j->tid = pthread_self();
    int now = atomic_fetch_add(&s_inside[role], 1) + 1;
    int most = atomic_load(&s_most[role]);
    while (now > most && !atomic_compare_exchange_weak(&s_most[role], &most, now))
        ;
    for (unsigned t = 0; t < j->spin_us && !evexec_job_cancelled(job); t += 10)
        s_busy_us(10);
    atomic_fetch_sub(&s_inside[role], 1);
    if (j->set_result) {
        atomic_fetch_add(&s_results, 1);
        evexec_job_set_result(job, malloc(16), s_result_free);
    }
    return j->fail ? EIO : 0;
}

static void s_submit_one(struct sloop *l);

static void s_done(struct evexec_future *f, void *arg)
{
    struct sloop *l = arg;
    int slot = -1;
    for (int i = 0; i < 64; i++)
        if (l->slot_fut[i] == f)
            slot = i;
    if (slot < 0) {
        l->bad_outcome++;
        return;
    }
    struct sjob *j = &l->jobs[l->slot_job[slot]];
    int err = evexec_future_error(f);
    j->calls++;
    j->err = err;
    /* The outcome is the job's own, unless a cancel was taken (ECANCELED)
     * or its deadline passed (ETIMEDOUT). */
    int own = j->fail ? EIO : 0;
    if (j->cancel_taken ? err != ECANCELED
                        : !(err == own && atomic_load(&j->ran) == 1) &&
                              !(err == ETIMEDOUT && j->deadline))
        l->bad_outcome++;
    if (err == 0 && j->set_result && !evexec_future_result(f))
        l->bad_outcome++;
    evexec_future_unref(f);
    l->slot_fut[slot] = NULL;
    l->slot_job[slot] = -1;
    l->slot_free[l->nfree++] = slot;
    l->inflight--;
    l->done++;
    for (int k = 0; k < 2; k++)
        s_submit_one(l);
    if (l->next == l->n && l->inflight == 0) {
        evtimer_del(l->timer);
        event_base_loopexit(evexec_get_base(l->ex), NULL);
    }
}

/* Submit the next job into a free slot, if any. */
static void s_submit_one(struct sloop *l)
{
    while (l->nfree > 0 && l->next < l->n) {
        struct sjob *j = &l->jobs[l->next++];
        j->role = (int)tu_rng_below(&l->rng, SL_N);
        j->spin_us = tu_rng_below(&l->rng, 16) == 0 ? 300 : tu_rng_below(&l->rng, 30);
        j->fail = tu_rng_below(&l->rng, 8) == 0;
        j->set_result = tu_rng_below(&l->rng, 3) == 0;
        /* Deadlines in every lane: a given-up job of a declared lane
         * still counts against its cap. */
        j->deadline = tu_rng_below(&l->rng, 4) == 0;
        struct evexec_run_opts o = EVEXEC_RUN_OPTS_INIT;
        o.lane = l->lane[j->role];
        if (j->deadline)
            o.deadline.tv_usec = 20 + (long)tu_rng_below(&l->rng, 600);
        errno = 0;
        struct evexec_future *f = evexec_run_opts(l->ex, s_job, j, &o);
        if (!f) {
            if (errno == EAGAIN && j->role == SL_BOUNDED) {
                j->refused = 1;
                l->refused++;
                continue;
            }
            l->bad_submit++;
            continue;
        }
        if (evexec_future_on_done(f, s_done, l) != 0)
            l->bad_submit++;
        j->accepted = 1;
        int slot = l->slot_free[--l->nfree];
        l->slot_fut[slot] = f;
        l->slot_job[slot] = (int)(j - l->jobs);
        l->inflight++;
        return;
    }
}

/* A timer, outside any callback pass of the evexec (so no job it cancels
 * is still in the loop's batch): cancel a few random jobs in flight. */
static void s_tick(evutil_socket_t fd, short what, void *arg)
{
    struct sloop *l = arg;
    (void)fd;
    (void)what;
    for (int k = 0; k < 3; k++) {
        int slot = (int)tu_rng_below(&l->rng, 64);
        struct evexec_future *f = l->slot_fut[slot];
        if (!f || tu_rng_below(&l->rng, 2))
            continue;
        struct sjob *j = &l->jobs[l->slot_job[slot]];
        int rc = evexec_future_cancel(f);
        if (rc == 0)
            j->cancel_taken = 1;
        else if (rc != EALREADY)
            l->bad_cancel++;
    }
}

static void s_body(struct evexec *ex, void *arg)
{
    struct sloop *l = arg;
    l->ex = ex;
    l->timer = event_new(evexec_get_base(ex), -1, EV_PERSIST, s_tick, l);
    assert_non_null(l->timer);
    struct timeval tv = { 0, 300 };
    evtimer_add(l->timer, &tv);
    for (int i = 0; i < 64; i++)
        s_submit_one(l);
    evexec_set_keepalive(ex, 0);
    event_base_dispatch(evexec_get_base(ex));
    event_free(l->timer);
}

/* Two loops on two threads share a pool with a default, a slow, a cap-1,
 * a cap-2, a bounded and an affine lane, and stream jobs of random
 * length to random lanes, some with deadlines, some cancelled at random
 * moments.  Checked: every done callback once, with the job's own outcome
 * unless a cancel was taken (ECANCELED) or its deadline passed
 * (ETIMEDOUT); refused submissions only EAGAIN on the bounded lane, and
 * their fn never runs; a job runs at most once; the cap-1 lane never runs
 * two jobs at once, the cap-2 lane never three, the affine lane one, on
 * one thread that no other job uses; every result released; each lane's
 * completed + cancelled is what it was given, and completed covers every
 * job that ran. */
static void test_lanes_stress(void **state)
{
    (void)state;
    enum { LOOPS = 2 };
    int n = TU_SCALE(30000);
    uint64_t seed = tu_stress_seed();
    printf("stress lanes: EVEXEC_STRESS_SEED=%llu\n", (unsigned long long)seed);

    struct evexec_pool_config cfg = config(4, 0);
    struct evexec_pool *pool = evexec_pool_new(&cfg);
    assert_non_null(pool);
    int lane[SL_N] = { EVEXEC_LANE_DEFAULT, EVEXEC_LANE_SLOW };
    const char *names[SL_N] = { 0, 0, "cap1", "cap2", "bounded", "affine" };
    for (int r = SL_CAP1; r < SL_N; r++) {
        struct evexec_lane_config lc = EVEXEC_LANE_CONFIG_INIT;
        lc.name = names[r];
        lc.max_threads = r == SL_CAP1 ? 1 : r == SL_CAP2 ? 2 : 0;
        lc.max_queued = r == SL_BOUNDED ? 4 : 0;
        lc.affine = r == SL_AFFINE;
        assert_int_equal(evexec_pool_add_lane(pool, &lc, &lane[r]), 0);
    }
    for (int r = 0; r < SL_N; r++) {
        atomic_store(&s_inside[r], 0);
        atomic_store(&s_most[r], 0);
    }
    atomic_store(&s_results, 0);

    struct sloop l[LOOPS];
    struct tu_loop loops[LOOPS];
    for (int k = 0; k < LOOPS; k++) {
        memset(&l[k], 0, sizeof l[k]);
        l[k].lane = lane;
        l[k].n = n;
        l[k].jobs = calloc((size_t)n, sizeof *l[k].jobs);
        assert_non_null(l[k].jobs);
        l[k].rng = (seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(k + 1))) | 1;
        for (int i = 0; i < 64; i++) {
            l[k].slot_job[i] = -1;
            l[k].slot_free[i] = 63 - i;
        }
        l[k].nfree = 64;
        loops[k] = (struct tu_loop){ .pool = pool, .body = s_body, .arg = &l[k] };
        assert_int_equal(tu_loop_start(&loops[k]), 0);
    }
    for (int k = 0; k < LOOPS; k++)
        assert_int_equal(tu_loop_join(&loops[k]), 0);
    /* Given-up and cancelled jobs may still be finishing on the workers. */
    assert_int_equal(evexec_pool_shutdown(pool, EVEXEC_SHUTDOWN_WAIT), 0);

    uint64_t accepted[SL_N] = { 0 }, ran[SL_N] = { 0 };
    int have_affine = 0;
    pthread_t affine_tid;
    for (int k = 0; k < LOOPS; k++) {
        assert_int_equal(l[k].bad_submit, 0);
        assert_int_equal(l[k].bad_cancel, 0);
        assert_int_equal(l[k].bad_outcome, 0);
        assert_int_equal(l[k].next, n);
        assert_int_equal(l[k].inflight, 0);
        int cancelled = 0, timed_out = 0;
        for (int i = 0; i < n; i++) {
            struct sjob *j = &l[k].jobs[i];
            int r = atomic_load(&j->ran);
            if (r > 1)
                fail_msg("loop %d job %d ran %d times", k, i, r);
            if (j->refused) {
                if (r != 0 || j->calls != 0)
                    fail_msg("loop %d job %d: refused, yet ran or called back", k, i);
                continue;
            }
            if (j->calls != 1)
                fail_msg("loop %d job %d: done callback ran %d times", k, i, j->calls);
            accepted[j->role]++;
            ran[j->role] += (uint64_t)r;
            cancelled += j->err == ECANCELED;
            timed_out += j->err == ETIMEDOUT;
            if (r && j->role == SL_AFFINE) {
                if (!have_affine)
                    affine_tid = j->tid;
                have_affine = 1;
                assert_true(pthread_equal(j->tid, affine_tid));
            }
        }
        printf("stress lanes loop %d: %d jobs, %d refused (bounded lane), %d cancelled, "
               "%d timed out\n", k, n, l[k].refused, cancelled, timed_out);
    }
    /* No shared job ran on the affine lane's thread. */
    for (int k = 0; have_affine && k < LOOPS; k++)
        for (int i = 0; i < n; i++) {
            struct sjob *j = &l[k].jobs[i];
            if (atomic_load(&j->ran) && j->role != SL_AFFINE &&
                pthread_equal(j->tid, affine_tid))
                fail_msg("loop %d job %d (role %d) ran on the affine thread", k, i, j->role);
        }
    assert_int_equal(atomic_load(&s_most[SL_CAP1]), 1);
    assert_true(atomic_load(&s_most[SL_CAP2]) <= 2);
    assert_true(atomic_load(&s_most[SL_AFFINE]) <= 1);
    assert_int_equal(atomic_load(&s_results), 0);
    for (int r = 0; r < SL_N; r++) {
        struct evexec_lane_stats ls;
        assert_int_equal(evexec_pool_lane_stats(pool, lane[r], &ls), 0);
        if (ls.completed + ls.cancelled != accepted[r] || ls.completed < ran[r] ||
            ls.queued != 0 || ls.running != 0)
            fail_msg("lane %d: completed %llu + cancelled %llu, given %llu, ran %llu, "
                     "queued %zu, running %zu", r, (unsigned long long)ls.completed,
                     (unsigned long long)ls.cancelled, (unsigned long long)accepted[r],
                     (unsigned long long)ran[r], ls.queued, ls.running);
    }
    evexec_pool_free(pool);
    for (int k = 0; k < LOOPS; k++)
        free(l[k].jobs);
}

#define TESTS(X)                  \
    X(test_add_lane_errors)       \
    X(test_cap_one_serialises)    \
    X(test_cap_holds)             \
    X(test_cap_holds_past_deadline) \
    X(test_lane_bound)            \
    X(test_lanes_take_turns)      \
    X(test_affine_lane)           \
    X(test_affine_deadline)       \
    X(test_affine_shutdown)       \
    X(test_lane_watermarks)       \
    X(test_add_lane_while_running) \
    X(test_lanes_stress)

TESTS(TU_WRAP)

int main(void)
{
#define ENTRY(name) TU_ENTRY(name, setup, teardown),
    const struct CMUnitTest tests[] = { TESTS(ENTRY) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
