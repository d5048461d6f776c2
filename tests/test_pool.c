/*
 * test_pool.c -- the worker pool: configuration, lazy start and idle
 * shrink, thread_init, per-worker state (thread_start, thread_exit), stack
 * size (and its default), spin settings and thread names, joining exited
 * threads, submission
 * order with one worker, two evexecs served in turn, the bounded queue
 * (per lane), the slow lane,
 * statistics, the three shutdown modes, and freeing a pool.
 *
 * Calls that a bug would make hang (a shutdown or a free that waits, a
 * submission that joins a thread) run on a helper thread with a deadline
 * (bg_run), or are awaited with evexec_wait_for (finish): the test fails
 * instead of hanging, and leaks what the stuck thread still uses.
 *
 * Each test makes the pool it needs (fx_pool); the fixture owns the base,
 * and frees the evexec and the pool after the test.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* pthread_getname_np */
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

/* Make the test's pool from cfg and an evexec on it. */
static void fx_pool(struct tu_fx *fx, const struct evexec_pool_config *cfg)
{
    fx->pool = evexec_pool_new(cfg);
    assert_non_null(fx->pool);
    fx->ex = evexec_new(fx->base, fx->pool);
    assert_non_null(fx->ex);
}

static struct evexec_pool_config config(unsigned max_threads, size_t max_queued)
{
    struct evexec_pool_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.max_threads = max_threads;
    cfg.max_queued = max_queued;
    return cfg;
}

static void dispatch(struct tu_fx *fx)
{
    /* Without keep-alive, dispatch returns once nothing is in flight.
     * The evexec may be freed inside, so it stays that way. */
    if (fx->ex)
        assert_int_equal(evexec_set_keepalive(fx->ex, 0), 0);
    assert_int_not_equal(event_base_dispatch(fx->base), -1);
}

static struct evexec_future *submit_fn(struct tu_fx *fx, evexec_fn fn, void *arg)
{
    struct evexec_future *f = evexec_run(fx->ex, fn, arg);
    assert_non_null(f);
    return f;
}

static struct evexec_future *submit(struct tu_fx *fx, struct tu_job *j)
{
    return submit_fn(fx, tu_job_fn, j);
}

/* Submit n jobs parked at fx->gate and wait until `running` of them run. */
static void park(struct tu_fx *fx, struct tu_job *jobs, struct evexec_future **futs,
                 int n, unsigned running)
{
    for (int i = 0; i < n; i++) {
        tu_job_init(&jobs[i], &fx->frees, 0, 0);
        jobs[i].gate = &fx->gate;
        futs[i] = submit(fx, &jobs[i]);
    }
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, running), 0);
}

/* Every future ended with `error`; drop them. */
static void expect_all(struct evexec_future **futs, int n, int error)
{
    for (int i = 0; i < n; i++) {
        assert_int_equal(evexec_future_error(futs[i]), error);
        evexec_future_unref(futs[i]);
    }
}

static void assert_refused(struct evexec_future *f, int err)
{
    int saved = errno;
    assert_null(f);
    assert_int_equal(saved, err);
}

/* Run the loop until f ends, at most TU_DEADLINE_MS; f's error, or
 * ETIMEDOUT.  f keeps the caller's reference. */
static int finish(struct tu_fx *fx, struct evexec_future *f)
{
    struct timeval tv = { TU_DEADLINE_MS / 1000, 0 };
    struct evexec_future *w = evexec_wait_for(fx->ex, f, &tv);
    assert_non_null(w);
    int rc = evexec_run_until_complete(fx->ex, w);
    evexec_future_unref(w);
    return rc;
}

/* fn(arg) on a helper thread, awaited with a deadline. */
struct bg {
    void (*fn)(void *arg);
    void *arg;
    atomic_int done;
    pthread_t thread;
};

static void *bg_main(void *p)
{
    struct bg *b = p;
    b->fn(b->arg);
    atomic_store(&b->done, 1);
    return NULL;
}

static int bg_is_done(void *p)
{
    return atomic_load(&((struct bg *)p)->done);
}

/* Returns 0 once fn has returned, or ETIMEDOUT after the deadline: then
 * the thread is left stuck, and its memory leaked for it. */
static int bg_run(void (*fn)(void *), void *arg)
{
    struct bg *b = calloc(1, sizeof *b);
    assert_non_null(b);
    b->fn = fn;
    b->arg = arg;
    assert_int_equal(pthread_create(&b->thread, NULL, bg_main, b), 0);
    if (tu_poll(bg_is_done, b) != 0) {
        pthread_detach(b->thread);
        return ETIMEDOUT;
    }
    pthread_join(b->thread, NULL);
    free(b);
    return 0;
}

struct shutdown_call {
    struct evexec_pool *pool;
    int flags;
    int rc;
};

static void shutdown_call(void *arg)
{
    struct shutdown_call *c = arg;
    c->rc = evexec_pool_shutdown(c->pool, c->flags);
}

static void pool_free_call(void *arg)
{
    evexec_pool_free(arg);
}

/* ---- configuration ------------------------------------------------------- */

static void expect_config_refused(struct evexec_pool_config cfg)
{
    errno = 0;
    struct evexec_pool *p = evexec_pool_new(&cfg);
    assert_null(p);
    assert_int_equal(errno, EINVAL);
}

static void test_config(void **state)
{
    (void)state;
    struct evexec_pool_config cfg = config(2, 0);
    cfg.min_threads = 3;
    expect_config_refused(cfg);
    expect_config_refused(config(1025, 0));
    cfg = config(2, 0);
    cfg.spin_us = 1001;
    expect_config_refused(cfg);

    /* Edges that are fine, and the all-default NULL config. */
    cfg = config(1024, 0);
    cfg.min_threads = 1024;
    cfg.spin_us = 1000;
    struct evexec_pool *big = evexec_pool_new(&cfg);
    assert_non_null(big);
    evexec_pool_free(big);
    struct evexec_pool *dflt = evexec_pool_new(NULL);
    assert_non_null(dflt);
    struct evexec_pool_stats st = tu_stats(dflt);
    assert_int_equal(st.threads, 0);
    evexec_pool_free(dflt);
    /* min_threads with max_threads 0 (the default maximum) is fine. */
    cfg = config(0, 0);
    cfg.min_threads = 1;
    struct evexec_pool *p = evexec_pool_new(&cfg);
    assert_non_null(p);
    evexec_pool_free(p);
}

static void test_null_arguments(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_pool_config cfg = config(2, 0);
    fx_pool(fx, &cfg);
    struct evexec_pool_stats st;
    assert_int_equal(evexec_pool_shutdown(NULL, 0), EINVAL);
    assert_int_equal(evexec_pool_shutdown(NULL, EVEXEC_SHUTDOWN_WAIT), EINVAL);
    assert_int_equal(evexec_pool_stats(NULL, &st), EINVAL);
    assert_int_equal(evexec_pool_stats(fx->pool, NULL), EINVAL);
    evexec_pool_free(NULL);

    /* Unknown flag bits are refused and change nothing: work still runs. */
    assert_int_equal(evexec_pool_shutdown(fx->pool, 0x4), EINVAL);
    assert_int_equal(evexec_pool_shutdown(fx->pool, -1), EINVAL);
    assert_int_equal(evexec_pool_shutdown(fx->pool, EVEXEC_SHUTDOWN_WAIT | 0x100), EINVAL);
    struct tu_job *j = tu_fx_job(fx, 0, 0);
    struct evexec_future *f = submit(fx, j);
    assert_int_equal(evexec_run_until_complete(fx->ex, f), 0);
    evexec_future_unref(f);
    assert_int_equal(atomic_load(&j->ran), 1);
}

/* ---- threads ------------------------------------------------------------- */

/* No thread before work arrives, even with min_threads. */
static void test_lazy_start(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_pool_config cfg = config(4, 0);
    cfg.min_threads = 2;
    fx_pool(fx, &cfg);
    struct evexec_pool_stats st = tu_stats(fx->pool);
    assert_int_equal(st.threads, 0);
    assert_int_equal(st.threads_started, 0);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.running, 0);
    assert_int_equal(st.completed, 0);

    struct tu_job *j = tu_fx_job(fx, 0, 0);
    struct evexec_future *f = submit(fx, j);
    assert_int_equal(evexec_run_until_complete(fx->ex, f), 0);
    evexec_future_unref(f);
    st = tu_stats(fx->pool);
    assert_true(st.threads_started >= 1 && st.threads_started <= 4);
    assert_true(st.threads >= 1 && st.threads <= 4);
    assert_int_equal(st.completed, 1);
}

struct shrink {
    struct evexec_pool *pool;
    unsigned want;
};

static int threads_are(void *arg)
{
    struct shrink *s = arg;
    struct evexec_pool_stats st = tu_stats(s->pool);
    return st.threads == s->want && st.idle == s->want;
}

/* Threads grow to max under load, and those above min_threads exit after
 * idle_timeout_ms; min_threads stay. */
static void test_idle_shrink(void **state)
{
    struct tu_fx *fx = *state;
    enum { MAX = 3 };
    struct evexec_pool_config cfg = config(MAX, 0);
    cfg.min_threads = 1;
    cfg.idle_timeout_ms = 50;
    fx_pool(fx, &cfg);
    struct tu_job *jobs = tu_fx_jobs(fx, MAX);
    struct evexec_future *futs[MAX];
    park(fx, jobs, futs, MAX, MAX);
    struct evexec_pool_stats st = tu_stats(fx->pool);
    assert_int_equal(st.threads, MAX);
    assert_int_equal(st.running, MAX);
    assert_int_equal(st.idle, 0);
    tu_gate_open(&fx->gate);
    dispatch(fx);
    expect_all(futs, MAX, 0);

    struct shrink s = { fx->pool, 1 };
    assert_int_equal(tu_poll(threads_are, &s), 0);
    /* Well past the timeout, the last one is still there. */
    tu_sleep_us(300 * 1000);
    st = tu_stats(fx->pool);
    assert_int_equal(st.threads, 1);
    assert_int_equal(st.idle, 1);
    assert_int_equal(st.threads_started, MAX);

    /* And the pool still works after shrinking. */
    struct tu_job *j = tu_fx_job(fx, 0, 0);
    struct evexec_future *f = submit(fx, j);
    assert_int_equal(evexec_run_until_complete(fx->ex, f), 0);
    evexec_future_unref(f);
}

/* Without min_threads, every idle thread exits. */
static void test_idle_shrink_to_zero(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_pool_config cfg = config(2, 0);
    cfg.idle_timeout_ms = 50;
    fx_pool(fx, &cfg);
    struct tu_job *j = tu_fx_job(fx, 0, 0);
    struct evexec_future *f = submit(fx, j);
    assert_int_equal(evexec_run_until_complete(fx->ex, f), 0);
    evexec_future_unref(f);
    struct shrink s = { fx->pool, 0 };
    assert_int_equal(tu_poll(threads_are, &s), 0);
}

/* Threads are joined without the pool lock: a worker's thread-exit
 * destructor that uses the pool (here evexec_pool_stats) runs while a
 * later submission joins that worker, and while evexec_pool_free does.
 * The first worker to exit parks in its destructor until the submission
 * that will join it has had time to start. */
static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;
static struct tu_gate exit_gate;
static atomic_int exit_calls, exit_stats_ok;
static struct evexec_pool *exit_pool;

static void exit_destructor(void *p)
{
    struct evexec_pool_stats st;
    atomic_fetch_add(&exit_calls, 1);
    tu_gate_pass(&exit_gate);
    if (evexec_pool_stats(p, &st) == 0)
        atomic_fetch_add(&exit_stats_ok, 1);
}

static void exit_key_make(void)
{
    pthread_key_create(&exit_key, exit_destructor);
}

static void exit_thread_init(void *arg)
{
    (void)arg;
    pthread_setspecific(exit_key, exit_pool);
}

/* Submits one job from a loop of its own and waits for it. */
struct exit_submit {
    struct tu_job *job;
    int rc;
};

static void exit_submit_body(struct evexec *ex, void *arg)
{
    struct exit_submit *es = arg;
    struct evexec_future *f = evexec_run(ex, tu_job_fn, es->job);
    es->rc = f ? evexec_run_until_complete(ex, f) : errno;
    evexec_future_unref(f);
}

static void exit_submit_main(void *arg)
{
    struct tu_loop *l = arg;
    if (tu_loop_start(l) == 0)
        tu_loop_join(l);
}

static void test_join_outside_lock(void **state)
{
    struct tu_fx *fx = *state;
    pthread_once(&exit_key_once, exit_key_make);
    tu_gate_init(&exit_gate);
    atomic_store(&exit_calls, 0);
    atomic_store(&exit_stats_ok, 0);
    struct evexec_pool_config cfg = config(1, 0);
    cfg.idle_timeout_ms = 20;
    cfg.thread_init = exit_thread_init;
    fx->pool = evexec_pool_new(&cfg);
    assert_non_null(fx->pool);
    exit_pool = fx->pool;
    fx->ex = evexec_new(fx->base, fx->pool);
    assert_non_null(fx->ex);

    struct tu_job *first = tu_fx_job(fx, 0, 0);
    struct evexec_future *f = submit(fx, first);
    assert_int_equal(finish(fx, f), 0);
    evexec_future_unref(f);
    /* The worker timed out, exited, and sits in its destructor. */
    assert_int_equal(tu_gate_wait_arrived(&exit_gate, 1), 0);

    /* Another loop submits: that starts a thread and joins the old one. */
    static struct exit_submit es;
    static struct tu_loop loop;
    es.job = tu_fx_job(fx, 0, 0);
    es.rc = -1;
    loop = (struct tu_loop){ .pool = fx->pool, .body = exit_submit_body, .arg = &es };
    struct bg *b = calloc(1, sizeof *b);
    assert_non_null(b);
    b->fn = exit_submit_main;
    b->arg = &loop;
    assert_int_equal(pthread_create(&b->thread, NULL, bg_main, b), 0);
    tu_sleep_us(50 * 1000);     /* let it reach the join (not asserted) */
    tu_gate_open(&exit_gate);
    if (tu_poll(bg_is_done, b) != 0) {
        pthread_detach(b->thread);
        fail_msg("a submission joining an exiting thread deadlocked");
    }
    pthread_join(b->thread, NULL);
    free(b);
    assert_int_equal(loop.setup_error, 0);
    assert_int_equal(es.rc, 0);
    assert_int_equal(atomic_load(&es.job->ran), 1);
    assert_true(atomic_load(&exit_stats_ok) >= 1);
    struct evexec_pool_stats st;
    assert_int_equal(evexec_pool_stats(fx->pool, &st), 0);
    assert_int_equal(st.threads_started, 2);

    /* evexec_pool_free joins the rest the same way. */
    evexec_free(fx->ex);
    fx->ex = NULL;
    assert_int_equal(bg_run(pool_free_call, fx->pool), 0);
    fx->pool = NULL;
    assert_int_equal(atomic_load(&exit_calls), 2);
    assert_int_equal(atomic_load(&exit_stats_ok), 2);
    tu_gate_destroy(&exit_gate);
}

/* thread_init runs once per worker, before that worker's first job. */
static _Thread_local int tl_inited;
static atomic_int init_calls, init_wrong_arg, job_before_init;
static int init_token;

static void thread_init(void *arg)
{
    if (arg != &init_token)
        atomic_fetch_add(&init_wrong_arg, 1);
    if (tl_inited)
        atomic_fetch_add(&init_calls, 1000);   /* a second call: shows up */
    tl_inited = 1;
    atomic_fetch_add(&init_calls, 1);
}

static int check_init_job(struct evexec_job *job, void *arg)
{
    if (!tl_inited)
        atomic_fetch_add(&job_before_init, 1);
    return tu_job_fn(job, arg);
}

static void test_thread_init(void **state)
{
    struct tu_fx *fx = *state;
    enum { MAX = 3, MORE = 50 };
    struct evexec_pool_config cfg = config(MAX, 0);
    cfg.thread_init = thread_init;
    cfg.thread_init_arg = &init_token;
    fx_pool(fx, &cfg);
    atomic_store(&init_calls, 0);
    struct tu_job *parked = tu_fx_jobs(fx, MAX);
    struct tu_job *more = tu_fx_jobs(fx, MORE);
    struct evexec_future *pf[MAX], *mf[MORE];
    for (int i = 0; i < MAX; i++) {
        tu_job_init(&parked[i], &fx->frees, 0, 0);
        parked[i].gate = &fx->gate;
        pf[i] = submit_fn(fx, check_init_job, &parked[i]);
    }
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, MAX), 0);
    tu_gate_open(&fx->gate);
    for (int i = 0; i < MORE; i++) {
        tu_job_init(&more[i], &fx->frees, 0, 0);
        mf[i] = submit_fn(fx, check_init_job, &more[i]);
    }
    dispatch(fx);
    expect_all(pf, MAX, 0);
    expect_all(mf, MORE, 0);
    struct evexec_pool_stats st = tu_stats(fx->pool);
    assert_int_equal(atomic_load(&job_before_init), 0);
    assert_int_equal(atomic_load(&init_wrong_arg), 0);
    assert_int_equal(st.threads_started, MAX);
    assert_int_equal(atomic_load(&init_calls), (int)st.threads_started);
}

/* thread_start's state reaches every job of its worker, thread_exit gets
 * it back once per worker (idle exit and pool free), and a worker started
 * again runs thread_start again.  Each state is a counter block of its
 * own, so a job that saw another worker's state would show up. */
struct wstate {
    pthread_t owner;
    int jobs;
};
static atomic_int ws_starts, ws_exits, ws_wrong, ws_jobs_seen;
static int ws_token;

static void *ws_start(void *arg)
{
    if (arg != &ws_token)
        atomic_fetch_add(&ws_wrong, 1);
    struct wstate *w = calloc(1, sizeof *w);
    if (w)
        w->owner = pthread_self();
    atomic_fetch_add(&ws_starts, 1);
    return w;
}

static void ws_exit(void *arg, void *state)
{
    struct wstate *w = state;
    if (arg != &ws_token || !w || !pthread_equal(w->owner, pthread_self()))
        atomic_fetch_add(&ws_wrong, 1);
    if (w)
        atomic_fetch_add(&ws_jobs_seen, w->jobs);
    free(w);
    atomic_fetch_add(&ws_exits, 1);
}

static int ws_job(struct evexec_job *job, void *arg)
{
    struct wstate *w = evexec_job_thread_state(job);
    if (!w || !pthread_equal(w->owner, pthread_self()))
        atomic_fetch_add(&ws_wrong, 1);
    else
        w->jobs++;
    return tu_job_fn(job, arg);
}

static struct evexec_pool_config ws_config(unsigned max_threads)
{
    struct evexec_pool_config cfg = EVEXEC_POOL_CONFIG_INIT;
    cfg.max_threads = max_threads;
    cfg.thread_start = ws_start;
    cfg.thread_exit = ws_exit;
    cfg.thread_init_arg = &ws_token;
    return cfg;
}

static void ws_reset(void)
{
    atomic_store(&ws_starts, 0);
    atomic_store(&ws_exits, 0);
    atomic_store(&ws_wrong, 0);
    atomic_store(&ws_jobs_seen, 0);
}

static void run_ws_jobs(struct tu_fx *fx, int n)
{
    struct tu_job *jobs = tu_fx_jobs(fx, n);
    struct evexec_future **f = calloc((size_t)n, sizeof *f);
    assert_non_null(f);
    for (int i = 0; i < n; i++) {
        tu_job_init(&jobs[i], &fx->frees, 0, 0);
        f[i] = submit_fn(fx, ws_job, &jobs[i]);
    }
    dispatch(fx);
    expect_all(f, n, 0);
    free(f);
}

static void test_thread_state(void **state)
{
    struct tu_fx *fx = *state;
    enum { MAX = 3, N = 60 };
    ws_reset();
    struct evexec_pool_config cfg = ws_config(MAX);
    fx_pool(fx, &cfg);
    run_ws_jobs(fx, N);
    struct evexec_pool_stats st = tu_stats(fx->pool);
    evexec_free(fx->ex);
    fx->ex = NULL;
    evexec_pool_free(fx->pool);
    fx->pool = NULL;
    /* Every worker ran thread_start once and thread_exit once, before
     * evexec_pool_free returned, and every job found its own worker's
     * state. */
    assert_int_equal(atomic_load(&ws_wrong), 0);
    assert_int_equal(atomic_load(&ws_starts), (int)st.threads_started);
    assert_int_equal(atomic_load(&ws_exits), (int)st.threads_started);
    assert_int_equal(atomic_load(&ws_jobs_seen), N);
}

/* Idle workers that exit run thread_exit; the next jobs start new workers
 * that run thread_start again. */
static void test_thread_state_idle_exit(void **state)
{
    struct tu_fx *fx = *state;
    enum { MAX = 2, N = 20 };
    ws_reset();
    struct evexec_pool_config cfg = ws_config(MAX);
    cfg.idle_timeout_ms = 10;
    fx_pool(fx, &cfg);
    run_ws_jobs(fx, N);
    /* Wait (bounded) until every worker has gone idle and exited: a
     * worker leaves the thread count before it runs thread_exit. */
    for (int i = 0; i < 2000 && (tu_stats(fx->pool).threads > 0 ||
                                 atomic_load(&ws_exits) != atomic_load(&ws_starts));
         i++)
        tu_sleep_us(5000);
    assert_int_equal(tu_stats(fx->pool).threads, 0);
    int started = atomic_load(&ws_starts);
    assert_true(started >= 1);
    assert_int_equal(atomic_load(&ws_exits), started);
    run_ws_jobs(fx, N);
    assert_true(atomic_load(&ws_starts) > started);
    evexec_free(fx->ex);
    fx->ex = NULL;
    evexec_pool_free(fx->pool);
    fx->pool = NULL;
    assert_int_equal(atomic_load(&ws_wrong), 0);
    assert_int_equal(atomic_load(&ws_exits), atomic_load(&ws_starts));
    assert_int_equal(atomic_load(&ws_jobs_seen), 2 * N);
}

/* Without thread_start the state is NULL; off a worker it is NULL too. */
static int null_state_job(struct evexec_job *job, void *arg)
{
    *(int *)arg = evexec_job_thread_state(job) == NULL;
    return 0;
}

static void test_thread_state_none(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_pool_config cfg = config(1, 0);
    fx_pool(fx, &cfg);
    int was_null = 0;
    struct evexec_future *f = submit_fn(fx, null_state_job, &was_null);
    dispatch(fx);
    assert_int_equal(evexec_future_error(f), 0);
    assert_int_equal(was_null, 1);
    evexec_future_unref(f);
    assert_null(evexec_job_thread_state(NULL));
}

/* stack_size: bounds refused, a small stack works, and the worker's stack
 * is the size asked for. */
struct stack_job {
    size_t size;
    int rc;
};

static int stack_job_fn(struct evexec_job *job, void *arg)
{
    (void)job;
    struct stack_job *sj = arg;
    pthread_attr_t attr;
    sj->rc = pthread_getattr_np(pthread_self(), &attr);
    if (sj->rc == 0) {
        sj->rc = pthread_attr_getstacksize(&attr, &sj->size);
        pthread_attr_destroy(&attr);
    }
    return 0;
}

static void test_stack_size(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_pool_config cfg = EVEXEC_POOL_CONFIG_INIT;
    cfg.stack_size = 16383;
    expect_config_refused(cfg);
    cfg.stack_size = ((size_t)1 << 30) + 1;
    expect_config_refused(cfg);
    /* A struct of the 1.0 layout (size 0) never reads stack_size. */
    cfg.size = 0;
    struct evexec_pool *p = evexec_pool_new(&cfg);
    assert_non_null(p);
    evexec_pool_free(p);

    cfg = (struct evexec_pool_config)EVEXEC_POOL_CONFIG_INIT;
    cfg.max_threads = 2;
    cfg.stack_size = (size_t)256 * 1024;
    fx_pool(fx, &cfg);
    struct stack_job sj = { 0, -1 };
    struct evexec_future *f = submit_fn(fx, stack_job_fn, &sj);
    dispatch(fx);
    assert_int_equal(evexec_future_error(f), 0);
    evexec_future_unref(f);
    assert_int_equal(sj.rc, 0);
    /* The C library may round up to whole pages, never down. */
    assert_true(sj.size >= (size_t)256 * 1024);
    assert_true(sj.size < (size_t)1024 * 1024);
}

/* stack_size 0 gives every worker a stack of EVEXEC_STACK_SIZE_DEFAULT
 * (256 KiB, as the header says), not the system's default (8 MiB with
 * glibc): with a config of the 1.0 layout, which has no stack_size, and
 * with one that sets it to 0. */
static size_t default_stack_of(struct evexec_pool *pool, struct event_base *base)
{
    struct evexec *ex = evexec_new(base, pool);
    assert_non_null(ex);
    struct stack_job sj = { 0, -1 };
    struct evexec_future *f = evexec_run(ex, stack_job_fn, &sj);
    assert_non_null(f);
    assert_int_equal(evexec_run_until_complete(ex, f), 0);
    evexec_future_unref(f);
    evexec_free(ex);
    assert_int_equal(sj.rc, 0);
    return sj.size;
}

static void test_stack_size_default(void **state)
{
    struct tu_fx *fx = *state;
    assert_int_equal(EVEXEC_STACK_SIZE_DEFAULT, (size_t)256 * 1024);
    struct evexec_pool_config old = config(2, 0);       /* size 0: 1.0 */
    struct evexec_pool_config cfg = EVEXEC_POOL_CONFIG_INIT;
    cfg.max_threads = 2;
    const struct evexec_pool_config *cfgs[] = { &old, &cfg, NULL };
    for (int i = 0; i < 3; i++) {
        struct evexec_pool *pool = evexec_pool_new(cfgs[i]);
        assert_non_null(pool);
        size_t size = default_stack_of(pool, fx->base);
        evexec_pool_free(pool);
        /* The C library may round up to whole pages, never down, and
         * the sanitizers raise small stacks by their own thread-local
         * storage; far below the 8 MiB of glibc all the same. */
        assert_true(size >= EVEXEC_STACK_SIZE_DEFAULT);
        assert_true(size < (size_t)1024 * 1024);
    }
}

/* ---- spinning ------------------------------------------------------------ */

/* Round trips: each done callback submits the next job, as a server that
 * waits for one reply before it asks again. */
struct chain {
    struct evexec *ex;
    int left, done, bad;
};

static int chain_job(struct evexec_job *job, void *arg)
{
    (void)job;
    (void)arg;
    return 0;
}

static void chain_next(struct evexec_future *f, void *arg)
{
    struct chain *c = arg;
    if (evexec_future_error(f) != 0)
        c->bad++;
    c->done++;
    evexec_future_unref(f);
    if (c->left == 0)
        return;
    c->left--;
    struct evexec_future *n = evexec_run(c->ex, chain_job, NULL);
    if (n == NULL || evexec_future_on_done(n, chain_next, c) != 0)
        c->bad++;
}

/* With spin_us `spin`: CHAINS chains of round trips, and a burst from
 * outside any callback, on a pool of many workers; every job runs and
 * ends well, and the pool goes idle with every worker alive. */
static void run_spinning(struct event_base *base, unsigned spin)
{
    enum { THREADS = 16, CHAINS = 6, TRIPS = 100, BURST = 300 };
    struct evexec_pool_config cfg = config(THREADS, 0);
    cfg.spin_us = spin;
    struct evexec_pool *pool = evexec_pool_new(&cfg);
    assert_non_null(pool);
    struct evexec *ex = evexec_new(base, pool);
    assert_non_null(ex);
    assert_int_equal(evexec_set_keepalive(ex, 0), 0);
    struct chain c[CHAINS];
    for (int i = 0; i < CHAINS; i++) {
        c[i] = (struct chain){ ex, TRIPS, 0, 0 };
        struct evexec_future *f = evexec_run(ex, chain_job, NULL);
        assert_non_null(f);
        assert_int_equal(evexec_future_on_done(f, chain_next, &c[i]), 0);
    }
    struct chain burst = { ex, 0, 0, 0 };
    for (int i = 0; i < BURST; i++) {
        struct evexec_future *f = evexec_run(ex, chain_job, NULL);
        assert_non_null(f);
        assert_int_equal(evexec_future_on_done(f, chain_next, &burst), 0);
    }
    assert_int_not_equal(event_base_dispatch(base), -1);
    for (int i = 0; i < CHAINS; i++) {
        assert_int_equal(c[i].bad, 0);
        assert_int_equal(c[i].done, TRIPS + 1);
    }
    assert_int_equal(burst.bad, 0);
    assert_int_equal(burst.done, BURST);
    struct evexec_pool_stats st = tu_stats(pool);
    assert_int_equal(st.completed, (uint64_t)(CHAINS * (TRIPS + 1) + BURST));
    assert_int_equal(st.running, 0);
    assert_int_equal(st.queued, 0);
    evexec_free(ex);
    evexec_pool_free(pool);
}

/* spin_us: 0 (adaptive, the default), EVEXEC_SPIN_OFF and 1 to 1000 are
 * taken, and work runs with each; any other value is EINVAL. */
static void test_spin_settings(void **state)
{
    struct tu_fx *fx = *state;
    const unsigned bad[] = { 1001, 65536, EVEXEC_SPIN_OFF - 1, EVEXEC_SPIN_OFF / 2 };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct evexec_pool_config cfg = config(2, 0);
        cfg.spin_us = bad[i];
        expect_config_refused(cfg);
    }
    const unsigned good[] = { 0, EVEXEC_SPIN_OFF, 1, 50, 1000 };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        run_spinning(fx->base, good[i]);
}

/* max_threads bounds the workers alive, and so the per-worker states
 * alive at once (one connection per worker, max_threads connections):
 * a job submitted while the only worker of a max_threads 1 pool is in a
 * slow thread_exit waits for it, and still runs (it is not stranded):
 * the exiting worker starts its successor once thread_exit returns. */
static atomic_int live_states, most_live_states, slow_exit_calls;
static struct tu_gate *slow_exit_gate;

static void *live_start(void *arg)
{
    (void)arg;
    int n = atomic_fetch_add(&live_states, 1) + 1;
    int m = atomic_load(&most_live_states);
    while (n > m && !atomic_compare_exchange_weak(&most_live_states, &m, n))
        continue;
    return NULL;
}

static void live_exit(void *arg, void *state)
{
    (void)arg;
    (void)state;
    /* The first exit (the idle one) waits at the gate. */
    if (atomic_fetch_add(&slow_exit_calls, 1) == 0)
        tu_gate_pass(slow_exit_gate);
    atomic_fetch_sub(&live_states, 1);
}

static void test_thread_exit_bounded_by_max_threads(void **state)
{
    struct tu_fx *fx = *state;
    atomic_store(&live_states, 0);
    atomic_store(&most_live_states, 0);
    atomic_store(&slow_exit_calls, 0);
    slow_exit_gate = &fx->gate;
    struct evexec_pool_config cfg = EVEXEC_POOL_CONFIG_INIT;
    cfg.max_threads = 1;
    cfg.idle_timeout_ms = 1;
    cfg.thread_start = live_start;
    cfg.thread_exit = live_exit;
    fx_pool(fx, &cfg);
    struct tu_job *j = tu_fx_job(fx, 0, 0);
    struct evexec_future *f = submit(fx, j);
    assert_int_equal(finish(fx, f), 0);
    evexec_future_unref(f);
    /* The worker goes idle, exits, and waits in thread_exit. */
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, 1), 0);
    struct tu_job *j2 = tu_fx_job(fx, 0, 0);
    f = submit(fx, j2);
    /* Let the old worker finish its exit only after the new job had every
     * chance to start a second worker. */
    tu_sleep_us(20000);
    tu_gate_open(&fx->gate);
    assert_int_equal(finish(fx, f), 0);
    evexec_future_unref(f);
    evexec_free(fx->ex);
    fx->ex = NULL;
    evexec_pool_free(fx->pool);
    fx->pool = NULL;
    assert_int_equal(atomic_load(&live_states), 0);
    assert_int_equal(atomic_load(&most_live_states), 1);
}

/* thread_exit may read the pool's statistics (evexec_pool_free waits
 * for it without the lock), and runs once in every worker started,
 * whatever ends it: shutdown with CANCEL and WAIT here; a pool freed
 * with no thread ever started runs none. */
static atomic_int stats_exit_rc, stats_exits, stats_starts;
static struct evexec_pool *stats_pool;

static void *stats_start(void *arg)
{
    (void)arg;
    atomic_fetch_add(&stats_starts, 1);
    return NULL;
}

static void stats_exit(void *arg, void *state)
{
    (void)arg;
    (void)state;
    struct evexec_pool_stats st;
    int rc = evexec_pool_stats(stats_pool, &st);
    if (rc != 0)
        atomic_store(&stats_exit_rc, rc);
    atomic_fetch_add(&stats_exits, 1);
}

static void test_thread_exit_stats_and_shutdown(void **state)
{
    struct tu_fx *fx = *state;
    enum { N = 6 };
    atomic_store(&stats_exit_rc, 0);
    atomic_store(&stats_exits, 0);
    atomic_store(&stats_starts, 0);
    struct evexec_pool_config cfg = EVEXEC_POOL_CONFIG_INIT;
    cfg.max_threads = 3;
    cfg.thread_start = stats_start;
    cfg.thread_exit = stats_exit;
    struct evexec_pool *p = evexec_pool_new(&cfg);
    assert_non_null(p);
    evexec_pool_free(p);
    assert_int_equal(atomic_load(&stats_exits), 0);

    fx_pool(fx, &cfg);
    stats_pool = fx->pool;
    struct tu_job jobs[N];
    struct evexec_future *futs[N];
    park(fx, jobs, futs, N, 3);
    struct shutdown_call sc = { fx->pool, EVEXEC_SHUTDOWN_CANCEL | EVEXEC_SHUTDOWN_WAIT, -1 };
    tu_gate_open(&fx->gate);
    assert_int_equal(bg_run(shutdown_call, &sc), 0);
    assert_int_equal(sc.rc, 0);
    /* Every worker started ran thread_exit before shutdown(WAIT) returned. */
    assert_int_equal(atomic_load(&stats_exits), atomic_load(&stats_starts));
    assert_int_equal(atomic_load(&stats_exit_rc), 0);
    dispatch(fx);
    for (int i = 0; i < N; i++)
        evexec_future_unref(futs[i]);
    evexec_free(fx->ex);
    fx->ex = NULL;
    assert_int_equal(bg_run(pool_free_call, fx->pool), 0);
    fx->pool = NULL;
    assert_int_equal(atomic_load(&stats_exits), atomic_load(&stats_starts));
}

/* ---- deadlines ------------------------------------------------------------ */

static atomic_int dl_arg_frees;

static void dl_arg_free(void *arg)
{
    (void)arg;
    atomic_fetch_add(&dl_arg_frees, 1);
}

static struct evexec_future *run_deadline(struct tu_fx *fx, struct tu_job *j, long ms)
{
    struct evexec_run_opts o = EVEXEC_RUN_OPTS_INIT;
    o.deadline.tv_sec = ms / 1000;
    o.deadline.tv_usec = (ms % 1000) * 1000;
    o.arg_free = dl_arg_free;
    struct evexec_future *f = evexec_run_opts(fx->ex, tu_job_fn, j, &o);
    assert_non_null(f);
    return f;
}

/* Met: the future ends with the job's result, readable through it. */
static void test_deadline_met(void **state)
{
    struct tu_fx *fx = *state;
    fx_pool(fx, NULL);
    atomic_store(&dl_arg_frees, 0);
    struct tu_job *j = tu_fx_job(fx, 1, 0);
    struct evexec_future *f = run_deadline(fx, j, 60000);
    assert_int_equal(evexec_run_until_complete(fx->ex, f), 0);
    struct tu_result *r = evexec_future_take_result(f);
    assert_non_null(r);
    tu_result_free(r);
    evexec_future_unref(f);
    assert_int_equal(atomic_load(&j->ran), 1);
    assert_int_equal(atomic_load(&dl_arg_frees), 1);
    assert_int_equal(atomic_load(&fx->frees), 1);
}

/* Still queued at the deadline: ETIMEDOUT, never runs, arg given back. */
static void test_deadline_queued(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_pool_config cfg = config(1, 0);
    fx_pool(fx, &cfg);
    atomic_store(&dl_arg_frees, 0);
    struct tu_job *park = tu_fx_job(fx, 0, 0);
    park->gate = &fx->gate;
    struct evexec_future *pf = submit(fx, park);
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, 1), 0);
    struct tu_job *j = tu_fx_job(fx, 1, 0);
    struct evexec_future *f = run_deadline(fx, j, 20);
    assert_int_equal(evexec_run_until_complete(fx->ex, f), ETIMEDOUT);
    assert_int_equal(atomic_load(&dl_arg_frees), 1);
    tu_gate_open(&fx->gate);
    assert_int_equal(finish(fx, pf), 0);
    dispatch(fx);
    assert_int_equal(atomic_load(&j->ran), 0);
    assert_int_equal(atomic_load(&dl_arg_frees), 1);
    evexec_future_unref(f);
    evexec_future_unref(pf);
}

/* Running at the deadline: ETIMEDOUT at once while the job is still stuck;
 * the job is told to cancel, its result is released when it returns, and
 * a thread is started in its place so other work runs meanwhile (on a
 * pool of one thread).  Only max_threads given-up jobs are replaced at
 * once: a second stuck job past its deadline is not. */
static void test_deadline_running_replaced(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_pool_config cfg = config(1, 0);
    fx_pool(fx, &cfg);
    atomic_store(&dl_arg_frees, 0);
    struct tu_job *stuck = tu_fx_job(fx, 1, 0);
    stuck->gate = &fx->gate;
    struct evexec_future *sf = run_deadline(fx, stuck, 20);
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, 1), 0);
    assert_int_equal(evexec_run_until_complete(fx->ex, sf), ETIMEDOUT);
    assert_int_equal(atomic_load(&stuck->finished), 0);

    /* The replacement runs a second stuck job, which also passes its
     * deadline; the cap (max_threads 1) is reached: no third thread. */
    struct tu_job *stuck2 = tu_fx_job(fx, 0, 0);
    stuck2->gate = &fx->gate;
    struct evexec_future *sf2 = run_deadline(fx, stuck2, 20);
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, 2), 0);
    assert_int_equal(evexec_run_until_complete(fx->ex, sf2), ETIMEDOUT);
    struct tu_job *quick = tu_fx_job(fx, 0, 0);
    struct evexec_future *qf = submit(fx, quick);
    struct evexec_pool_stats st = tu_stats(fx->pool);
    assert_int_equal(st.threads_started, 2);
    assert_int_equal(st.running, 2);
    assert_int_equal(st.queued, 1);
    assert_int_equal(atomic_load(&quick->ran), 0);

    tu_gate_open(&fx->gate);
    assert_int_equal(finish(fx, qf), 0);
    dispatch(fx);
    assert_int_equal(atomic_load(&stuck->ran), 1);
    assert_int_equal(atomic_load(&stuck->saw_cancel), 1);
    assert_int_equal(atomic_load(&stuck2->saw_cancel), 1);
    /* The stuck job's result went to nobody and was released. */
    assert_int_equal(atomic_load(&fx->frees), 1);
    assert_int_equal(atomic_load(&dl_arg_frees), 2);
    assert_null(evexec_future_result(sf));
    evexec_future_unref(sf);
    evexec_future_unref(sf2);
    evexec_future_unref(qf);
}

/* A quick job on a one-thread pool while the only thread is stuck past a
 * deadline runs at once, on the replacement. */
static void test_deadline_replacement_runs_work(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_pool_config cfg = config(1, 0);
    fx_pool(fx, &cfg);
    struct tu_job *stuck = tu_fx_job(fx, 0, 0);
    stuck->gate = &fx->gate;
    struct evexec_future *sf = run_deadline(fx, stuck, 20);
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, 1), 0);
    struct tu_job *quick = tu_fx_job(fx, 0, 0);
    struct evexec_future *qf = submit(fx, quick);
    /* Queued behind the stuck job until its deadline frees the cap. */
    assert_int_equal(finish(fx, qf), 0);
    assert_int_equal(evexec_future_error(sf), ETIMEDOUT);
    assert_int_equal(atomic_load(&stuck->finished), 0);
    tu_gate_open(&fx->gate);
    dispatch(fx);
    evexec_future_unref(sf);
    evexec_future_unref(qf);
}

static void test_deadline_bad(void **state)
{
    struct tu_fx *fx = *state;
    fx_pool(fx, NULL);
    struct tu_job *j = tu_fx_job(fx, 0, 0);
    struct evexec_run_opts o = EVEXEC_RUN_OPTS_INIT;
    o.deadline.tv_sec = -1;
    errno = 0;
    assert_null(evexec_run_opts(fx->ex, tu_job_fn, j, &o));
    assert_int_equal(errno, EINVAL);
    o.deadline.tv_sec = 0;
    o.deadline.tv_usec = 1000000;
    errno = 0;
    assert_null(evexec_run_opts(fx->ex, tu_job_fn, j, &o));
    assert_int_equal(errno, EINVAL);
    o.deadline.tv_usec = 1000;
    o.lane = 7;
    errno = 0;
    assert_null(evexec_run_opts(fx->ex, tu_job_fn, j, &o));
    assert_int_equal(errno, EINVAL);
    /* A struct of the 1.0 layout (size 0) has no deadline. */
    o.lane = EVEXEC_LANE_DEFAULT;
    o.size = 0;
    struct evexec_future *f = evexec_run_opts(fx->ex, tu_job_fn, j, &o);
    assert_non_null(f);
    assert_int_equal(evexec_run_until_complete(fx->ex, f), 0);
    evexec_future_unref(f);
    dispatch(fx);
    assert_int_equal(atomic_load(&j->ran), 1);
}

/* Worker names start with thread_name (NULL: "evexec"). */
struct name_job {
    char name[32];
    int rc;
};

static int name_job_fn(struct evexec_job *job, void *arg)
{
    (void)job;
    struct name_job *n = arg;
    n->rc = pthread_getname_np(pthread_self(), n->name, sizeof n->name);
    return 0;
}

/* Runs one job on a pool named thread_name and checks the worker's name
 * starts with prefix.  The caller's string is scribbled over once the pool
 * is made (before any thread starts), to show the pool keeps a copy. */
static void check_thread_name(struct tu_fx *fx, const char *thread_name, const char *prefix)
{
    char buf[64] = "";
    struct evexec_pool_config cfg = config(1, 0);
    if (thread_name) {
        strncpy(buf, thread_name, sizeof buf - 1);
        cfg.thread_name = buf;
    }
    fx_pool(fx, &cfg);
    memset(buf, 'X', sizeof buf - 1);
    struct name_job n;
    memset(&n, 0, sizeof n);
    struct evexec_future *f = submit_fn(fx, name_job_fn, &n);
    assert_int_equal(evexec_run_until_complete(fx->ex, f), 0);
    evexec_future_unref(f);
    assert_int_equal(n.rc, 0);
    if (strncmp(n.name, prefix, strlen(prefix)) != 0)
        fail_msg("worker name \"%s\" does not start with \"%s\"", n.name, prefix);
}

static void test_thread_name(void **state)
{
#ifndef HAVE_PTHREAD_SETNAME_NP
    skip();     /* workers are not named on this system */
#endif
    check_thread_name(*state, "tpname", "tpname");
}

static void test_thread_name_default(void **state)
{
#ifndef HAVE_PTHREAD_SETNAME_NP
    skip();     /* workers are not named on this system */
#endif
    check_thread_name(*state, NULL, "evexec");
}

/* A name too long for the kernel's 15 bytes is cut, not refused. */
static void test_thread_name_long(void **state)
{
#ifndef HAVE_PTHREAD_SETNAME_NP
    skip();     /* workers are not named on this system */
#endif
    check_thread_name(*state, "averyveryverylongname", "averyvery");
}

/* ---- order, bounds, lanes ------------------------------------------------ */

struct order {
    atomic_int next;
    int *seen;          /* seen[k]: the index of the k-th job run */
};

struct order_job {
    struct order *o;
    int index;
};

/* n order_jobs (index i), their futures, and the order they ran in. */
struct order_run {
    struct order o;
    struct order_job *jobs;
    struct evexec_future **futs;
};

static void order_run_init(struct order_run *r, int n)
{
    atomic_init(&r->o.next, 0);
    r->o.seen = calloc((size_t)n, sizeof *r->o.seen);
    r->jobs = calloc((size_t)n, sizeof *r->jobs);
    r->futs = calloc((size_t)n, sizeof *r->futs);
    assert_non_null(r->o.seen);
    assert_non_null(r->jobs);
    assert_non_null(r->futs);
    for (int i = 0; i < n; i++)
        r->jobs[i] = (struct order_job){ &r->o, i };
}

static void order_run_free(struct order_run *r)
{
    free(r->futs);
    free(r->jobs);
    free(r->o.seen);
}

static int order_job_fn(struct evexec_job *job, void *arg)
{
    (void)job;
    struct order_job *oj = arg;
    oj->o->seen[atomic_fetch_add(&oj->o->next, 1)] = oj->index;
    return 0;
}

/* One worker runs jobs in submission order. */
static void test_single_worker_order(void **state)
{
    struct tu_fx *fx = *state;
    int n = TU_SCALE(2000);
    struct evexec_pool_config cfg = config(1, 0);
    fx_pool(fx, &cfg);
    struct order_run r;
    order_run_init(&r, n);
    for (int i = 0; i < n; i++)
        r.futs[i] = submit_fn(fx, order_job_fn, &r.jobs[i]);
    dispatch(fx);
    expect_all(r.futs, n, 0);
    assert_int_equal(atomic_load(&r.o.next), n);
    for (int i = 0; i < n; i++)
        assert_int_equal(r.o.seen[i], i);
    order_run_free(&r);
}

/* Two evexecs on a pool with one worker: A queues a large backlog (while
 * the worker is held by one of A's jobs), then B queues 10.  The pool
 * serves its submitters in turn, so B's 10 run among the first 2 * 10 jobs
 * after the held one -- not after A's backlog -- and each evexec's jobs
 * run in the order it submitted them.  Order is recorded by a counter. */
static void test_two_evexecs_in_turn(void **state)
{
    struct tu_fx *fx = *state;
    int na = tu_stress_size(20000, 100000), nb = 10, n = na + nb;
    struct evexec_pool_config cfg = config(1, 0);
    fx_pool(fx, &cfg);
    struct evexec *exb = evexec_new(fx->base, fx->pool);
    assert_non_null(exb);
    struct order_run r;
    order_run_init(&r, n);
    struct evexec_future *held = evexec_run(fx->ex, tu_gated_job, &fx->gate);
    assert_non_null(held);
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, 1), 0);
    for (int i = 0; i < n; i++) {
        r.futs[i] = evexec_run(i < na ? fx->ex : exb, order_job_fn, &r.jobs[i]);
        assert_non_null(r.futs[i]);
    }
    tu_gate_open(&fx->gate);
    assert_int_equal(evexec_set_keepalive(exb, 0), 0);
    dispatch(fx);
    assert_int_equal(evexec_future_error(held), 0);
    evexec_future_unref(held);
    expect_all(r.futs, n, 0);
    assert_int_equal(atomic_load(&r.o.next), n);
    int a_next = 0, b_next = na, b_last = -1;
    for (int k = 0; k < n; k++) {
        if (r.o.seen[k] < na) {
            assert_int_equal(r.o.seen[k], a_next++);
        } else {
            assert_int_equal(r.o.seen[k], b_next++);
            b_last = k;
        }
    }
    assert_true(b_last >= 0 && b_last <= 2 * nb);
    evexec_free(exb);
    order_run_free(&r);
}

/* max_queued counts waiting jobs only: with both workers busy, one job
 * may wait and the next is EAGAIN (its function never runs); once the
 * queue drains there is room again. */
static void test_bounded_queue(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_pool_config cfg = config(2, 1);
    fx_pool(fx, &cfg);
    struct tu_job *jobs = tu_fx_jobs(fx, 2);
    struct tu_job *waiting = tu_fx_job(fx, 0, 0);
    struct tu_job *refused = tu_fx_job(fx, 0, 0);
    struct tu_job *later = tu_fx_job(fx, 0, 0);
    struct evexec_future *futs[3];
    park(fx, jobs, futs, 2, 2);
    futs[2] = submit(fx, waiting);
    struct evexec_pool_stats st = tu_stats(fx->pool);
    assert_int_equal(st.running, 2);
    assert_int_equal(st.queued, 1);

    errno = 0;
    assert_refused(evexec_run(fx->ex, tu_job_fn, refused), EAGAIN);
    assert_int_equal(tu_stats(fx->pool).queued, 1);

    tu_gate_open(&fx->gate);
    dispatch(fx);
    expect_all(futs, 3, 0);
    struct evexec_future *f = submit(fx, later);
    assert_int_equal(evexec_run_until_complete(fx->ex, f), 0);
    evexec_future_unref(f);
    evexec_pool_shutdown(fx->pool, EVEXEC_SHUTDOWN_WAIT);
    assert_int_equal(atomic_load(&refused->ran), 0);
    assert_int_equal(atomic_load(&waiting->ran), 1);
}

/* Slow-lane jobs hold at most half the workers; a default job still runs
 * while they are stuck. */
static void test_slow_lane(void **state)
{
    struct tu_fx *fx = *state;
    enum { MAX = 4, SLOW = 4 };
    struct evexec_pool_config cfg = config(MAX, 0);
    fx_pool(fx, &cfg);
    struct evexec_run_opts slow = { .lane = EVEXEC_LANE_SLOW };
    struct tu_job *sj = tu_fx_jobs(fx, SLOW);
    struct tu_job *fast = tu_fx_job(fx, 0, 0);
    struct evexec_future *sf[SLOW];
    for (int i = 0; i < SLOW; i++) {
        tu_job_init(&sj[i], &fx->frees, 0, 0);
        sj[i].gate = &fx->gate;
        sf[i] = evexec_run_opts(fx->ex, tu_job_fn, &sj[i], &slow);
        assert_non_null(sf[i]);
    }
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, MAX / 2), 0);
    struct evexec_future *ff = submit(fx, fast);
    /* The default job finishes while every slow job is still parked. */
    assert_int_equal(evexec_run_until_complete(fx->ex, ff), 0);
    evexec_future_unref(ff);
    assert_int_equal(tu_gate_arrived(&fx->gate), MAX / 2);
    struct evexec_pool_stats st = tu_stats(fx->pool);
    assert_int_equal(st.running, MAX / 2);
    assert_int_equal(st.queued, SLOW - MAX / 2);
    tu_gate_open(&fx->gate);
    dispatch(fx);
    expect_all(sf, SLOW, 0);
}

static int none_running(void *arg)
{
    return tu_stats(arg).running == 0;
}

/* max_queued bounds each lane on its own, and idle threads count as able
 * to take only what they may take: with 4 idle threads, slow_max 2 and
 * max_queued 2, exactly 2 slow jobs run and 2 wait, the next slow one is
 * EAGAIN, and a default-lane job is still accepted and run at once. */
static void test_bounded_queue_per_lane(void **state)
{
    struct tu_fx *fx = *state;
    enum { MAX = 4, SLOW_MAX = MAX / 2, QMAX = 2 };
    struct evexec_pool_config cfg = config(MAX, QMAX);
    cfg.min_threads = MAX;
    fx_pool(fx, &cfg);

    /* Start all four threads, then let them idle. */
    struct tu_job *warm = tu_fx_jobs(fx, MAX);
    struct evexec_future *wf[MAX];
    park(fx, warm, wf, MAX, MAX);
    tu_gate_open(&fx->gate);
    for (int i = 0; i < MAX; i++) {
        assert_int_equal(finish(fx, wf[i]), 0);
        evexec_future_unref(wf[i]);
    }
    tu_gate_destroy(&fx->gate);     /* every parked function has returned */
    tu_gate_init(&fx->gate);
    assert_int_equal(tu_stats(fx->pool).threads, MAX);
    /* A job's future ends before its worker counts itself free again. */
    assert_int_equal(tu_poll(none_running, fx->pool), 0);

    struct evexec_run_opts slow = { .lane = EVEXEC_LANE_SLOW };
    struct tu_job *sj = tu_fx_jobs(fx, SLOW_MAX + QMAX);
    struct tu_job *refused = tu_fx_job(fx, 0, 0);
    struct evexec_future *sf[SLOW_MAX + QMAX];
    for (int i = 0; i < SLOW_MAX + QMAX; i++) {
        tu_job_init(&sj[i], &fx->frees, 0, 0);
        sj[i].gate = &fx->gate;
        sf[i] = evexec_run_opts(fx->ex, tu_job_fn, &sj[i], &slow);
        assert_non_null(sf[i]);
    }
    errno = 0;
    assert_refused(evexec_run_opts(fx->ex, tu_job_fn, refused, &slow), EAGAIN);
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, SLOW_MAX), 0);

    /* The slow lane is full; the default lane is not. */
    struct tu_job *fast = tu_fx_job(fx, 0, 0);
    struct evexec_future *ff = submit(fx, fast);
    assert_int_equal(finish(fx, ff), 0);
    evexec_future_unref(ff);
    assert_int_equal(atomic_load(&fast->ran), 1);
    assert_int_equal(tu_gate_arrived(&fx->gate), SLOW_MAX);
    struct evexec_pool_stats st = tu_stats(fx->pool);
    assert_int_equal(st.running, SLOW_MAX);
    assert_int_equal(st.queued, QMAX);
    errno = 0;
    assert_refused(evexec_run_opts(fx->ex, tu_job_fn, refused, &slow), EAGAIN);

    tu_gate_open(&fx->gate);
    for (int i = 0; i < SLOW_MAX + QMAX; i++) {
        assert_int_equal(finish(fx, sf[i]), 0);
        evexec_future_unref(sf[i]);
    }
    assert_int_equal(atomic_load(&refused->ran), 0);
}

/* The default lane holds max_queued waiting jobs whatever the slow lane
 * holds, and the other way round: two threads busy, two slow jobs and
 * two default jobs wait, the third of each is EAGAIN. */
static void test_bounded_queue_lanes(void **state)
{
    struct tu_fx *fx = *state;
    enum { MAX = 2, QMAX = 2 };
    struct evexec_pool_config cfg = config(MAX, QMAX);
    fx_pool(fx, &cfg);
    struct evexec_run_opts slow = { .lane = EVEXEC_LANE_SLOW };
    struct tu_job *parked = tu_fx_jobs(fx, MAX);
    struct tu_job *sj = tu_fx_jobs(fx, QMAX);
    struct tu_job *dj = tu_fx_jobs(fx, QMAX);
    struct tu_job *refused = tu_fx_job(fx, 0, 0);
    struct evexec_future *pf[MAX], *sf[QMAX], *df[QMAX];
    park(fx, parked, pf, MAX, MAX);

    for (int i = 0; i < QMAX; i++) {
        tu_job_init(&sj[i], &fx->frees, 0, 0);
        sf[i] = evexec_run_opts(fx->ex, tu_job_fn, &sj[i], &slow);
        assert_non_null(sf[i]);
    }
    errno = 0;
    assert_refused(evexec_run_opts(fx->ex, tu_job_fn, refused, &slow), EAGAIN);
    for (int i = 0; i < QMAX; i++) {
        tu_job_init(&dj[i], &fx->frees, 0, 0);
        df[i] = submit(fx, &dj[i]);
    }
    errno = 0;
    assert_refused(evexec_run(fx->ex, tu_job_fn, refused), EAGAIN);
    struct evexec_pool_stats st = tu_stats(fx->pool);
    assert_int_equal(st.running, MAX);
    assert_int_equal(st.queued, 2 * QMAX);

    tu_gate_open(&fx->gate);
    for (int i = 0; i < MAX; i++) {
        assert_int_equal(finish(fx, pf[i]), 0);
        evexec_future_unref(pf[i]);
    }
    for (int i = 0; i < QMAX; i++) {
        assert_int_equal(finish(fx, sf[i]), 0);
        assert_int_equal(finish(fx, df[i]), 0);
        evexec_future_unref(sf[i]);
        evexec_future_unref(df[i]);
    }
    assert_int_equal(atomic_load(&refused->ran), 0);
}

static int one_idle(void *arg)
{
    return tu_stats(arg).idle == 1;
}

/* max_queued = SIZE_MAX is as good as unbounded: no sum wraps, also with
 * an idle thread about. */
static void test_bounded_queue_size_max(void **state)
{
    struct tu_fx *fx = *state;
    enum { MAX = 2, MORE = 6 };
    struct evexec_pool_config cfg = config(MAX, SIZE_MAX);
    cfg.min_threads = 1;
    fx_pool(fx, &cfg);
    struct tu_job *first = tu_fx_job(fx, 0, 0);
    struct evexec_future *f = submit(fx, first);
    assert_int_equal(finish(fx, f), 0);
    evexec_future_unref(f);
    assert_int_equal(tu_poll(one_idle, fx->pool), 0);

    struct evexec_run_opts slow = { .lane = EVEXEC_LANE_SLOW };
    struct tu_job *parked = tu_fx_jobs(fx, MAX);
    struct tu_job *more = tu_fx_jobs(fx, MORE);
    struct evexec_future *pf[MAX], *mf[MORE];
    park(fx, parked, pf, MAX, MAX);
    for (int i = 0; i < MORE; i++) {
        tu_job_init(&more[i], &fx->frees, 0, 0);
        mf[i] = evexec_run_opts(fx->ex, tu_job_fn, &more[i], i % 2 ? &slow : NULL);
        assert_non_null(mf[i]);
    }
    assert_int_equal(tu_stats(fx->pool).queued, MORE);
    tu_gate_open(&fx->gate);
    for (int i = 0; i < MAX; i++) {
        assert_int_equal(finish(fx, pf[i]), 0);
        evexec_future_unref(pf[i]);
    }
    for (int i = 0; i < MORE; i++) {
        assert_int_equal(finish(fx, mf[i]), 0);
        evexec_future_unref(mf[i]);
    }
}

/* From max_threads 2 up the slow lane never holds every thread: with two
 * threads, one slow job blocked and another queued, a default job runs. */
static void test_slow_lane_two_threads(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_pool_config cfg = config(2, 0);
    fx_pool(fx, &cfg);
    struct evexec_run_opts slow = { .lane = EVEXEC_LANE_SLOW };
    struct tu_job *sj = tu_fx_jobs(fx, 2);
    struct evexec_future *sf[2];
    for (int i = 0; i < 2; i++) {
        tu_job_init(&sj[i], &fx->frees, 0, 0);
        sj[i].gate = &fx->gate;
        sf[i] = evexec_run_opts(fx->ex, tu_job_fn, &sj[i], &slow);
        assert_non_null(sf[i]);
    }
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, 1), 0);
    struct tu_job *fast = tu_fx_job(fx, 0, 0);
    struct evexec_future *ff = submit(fx, fast);
    assert_int_equal(finish(fx, ff), 0);
    evexec_future_unref(ff);
    assert_int_equal(tu_gate_arrived(&fx->gate), 1);
    struct evexec_pool_stats st = tu_stats(fx->pool);
    assert_int_equal(st.running, 1);
    assert_int_equal(st.queued, 1);
    tu_gate_open(&fx->gate);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(finish(fx, sf[i]), 0);
        evexec_future_unref(sf[i]);
    }
}

/* slow_max_threads sets the slow lane's share: 3 of 4 threads here, so
 * the fourth slow job waits while a default job still runs at once. */
static void test_slow_lane_share_setting(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_pool_config cfg = EVEXEC_POOL_CONFIG_INIT;
    cfg.max_threads = 4;
    cfg.slow_max_threads = 5;
    expect_config_refused(cfg);
    cfg.slow_max_threads = 3;
    fx_pool(fx, &cfg);
    struct evexec_run_opts slow = { .lane = EVEXEC_LANE_SLOW };
    struct tu_job *sj = tu_fx_jobs(fx, 4);
    struct evexec_future *sf[4];
    for (int i = 0; i < 4; i++) {
        tu_job_init(&sj[i], &fx->frees, 0, 0);
        sj[i].gate = &fx->gate;
        sf[i] = evexec_run_opts(fx->ex, tu_job_fn, &sj[i], &slow);
        assert_non_null(sf[i]);
    }
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, 3), 0);
    struct tu_job *fast = tu_fx_job(fx, 0, 0);
    struct evexec_future *ff = submit(fx, fast);
    assert_int_equal(finish(fx, ff), 0);
    evexec_future_unref(ff);
    assert_int_equal(tu_gate_arrived(&fx->gate), 3);
    struct evexec_pool_stats st = tu_stats(fx->pool);
    assert_int_equal(st.running, 3);
    assert_int_equal(st.queued, 1);
    tu_gate_open(&fx->gate);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(finish(fx, sf[i]), 0);
        evexec_future_unref(sf[i]);
    }
}

/* The documented exception: with max_threads 1 the slow lane shares the
 * only thread, so a default job waits behind a blocked slow one. */
static void test_slow_lane_one_thread(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_pool_config cfg = config(1, 0);
    fx_pool(fx, &cfg);
    struct evexec_run_opts slow = { .lane = EVEXEC_LANE_SLOW };
    struct tu_job *sj = tu_fx_job(fx, 0, 0);
    sj->gate = &fx->gate;
    struct evexec_future *sf = evexec_run_opts(fx->ex, tu_job_fn, sj, &slow);
    assert_non_null(sf);
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, 1), 0);
    struct tu_job *fast = tu_fx_job(fx, 0, 0);
    struct evexec_future *ff = submit(fx, fast);
    struct evexec_pool_stats st = tu_stats(fx->pool);
    assert_int_equal(st.threads, 1);
    assert_int_equal(st.running, 1);
    assert_int_equal(st.queued, 1);
    assert_int_equal(atomic_load(&fast->ran), 0);
    tu_gate_open(&fx->gate);
    assert_int_equal(finish(fx, ff), 0);
    assert_int_equal(finish(fx, sf), 0);
    evexec_future_unref(ff);
    evexec_future_unref(sf);
    assert_int_equal(atomic_load(&fast->ran), 1);
}

/* completed counts returned functions; cancelled counts jobs taken off
 * the queue. */
static void test_stats_counts(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_pool_config cfg = config(1, 0);
    fx_pool(fx, &cfg);
    struct tu_job *parked = tu_fx_jobs(fx, 1);
    struct tu_job *q = tu_fx_jobs(fx, 3);
    struct evexec_future *pf[1], *qf[3];
    park(fx, parked, pf, 1, 1);
    for (int i = 0; i < 3; i++) {
        tu_job_init(&q[i], &fx->frees, 0, 0);
        qf[i] = submit(fx, &q[i]);
    }
    struct evexec_pool_stats st = tu_stats(fx->pool);
    assert_int_equal(st.queued, 3);
    assert_int_equal(st.running, 1);
    assert_int_equal(st.threads, 1);
    assert_int_equal(st.idle, 0);
    assert_int_equal(evexec_future_cancel(qf[1]), 0);
    st = tu_stats(fx->pool);
    assert_int_equal(st.queued, 2);
    assert_int_equal(st.cancelled, 1);
    tu_gate_open(&fx->gate);
    dispatch(fx);
    expect_all(pf, 1, 0);
    assert_int_equal(evexec_future_error(qf[1]), ECANCELED);
    evexec_future_unref(qf[1]);
    qf[1] = qf[2];
    expect_all(qf, 2, 0);
    st = tu_stats(fx->pool);
    assert_int_equal(st.completed, 3);
    assert_int_equal(st.cancelled, 1);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.running, 0);
}

/* ---- shutdown ------------------------------------------------------------ */

/* One worker, one job parked on it, `nqueued` more behind it. */
struct scene {
    struct tu_job *parked;
    struct tu_job *queued;      /* [3] */
    struct evexec_future *pf, *qf[3];
    struct tu_rec prec, qrec[3];
    int nqueued;
};

static void scene_start(struct tu_fx *fx, struct scene *s, int nqueued)
{
    struct evexec_pool_config cfg = config(1, 0);
    fx_pool(fx, &cfg);
    memset(s, 0, sizeof *s);
    s->nqueued = nqueued;
    s->parked = tu_fx_jobs(fx, 1);
    s->queued = tu_fx_jobs(fx, 3);
    park(fx, s->parked, &s->pf, 1, 1);
    s->parked->sleep_us = 50 * 1000;     /* so a shutdown that waits has to */
    tu_rec_init(&s->prec);
    assert_int_equal(evexec_future_on_done(s->pf, tu_rec_cb, &s->prec), 0);
    for (int i = 0; i < nqueued; i++) {
        tu_job_init(&s->queued[i], &fx->frees, 1, 0);
        s->qf[i] = submit(fx, &s->queued[i]);
        tu_rec_init(&s->qrec[i]);
        assert_int_equal(evexec_future_on_done(s->qf[i], tu_rec_cb, &s->qrec[i]), 0);
    }
}

/* After any shutdown: new work is refused with ESHUTDOWN and never runs,
 * a new evexec on the pool too, and shutdown may be called again. */
static void expect_refusing(struct tu_fx *fx)
{
    struct tu_job *j = tu_fx_job(fx, 0, 0);
    errno = 0;
    assert_refused(evexec_run(fx->ex, tu_job_fn, j), ESHUTDOWN);
    errno = 0;
    assert_refused(evexec_run_opts(fx->ex, tu_job_fn, j, NULL), ESHUTDOWN);
    errno = 0;
    struct evexec *ex2 = evexec_new(fx->base, fx->pool);
    int saved = errno;
    assert_null(ex2);
    assert_int_equal(saved, ESHUTDOWN);
    assert_int_equal(evexec_pool_shutdown(fx->pool, 0), 0);
    dispatch(fx);
    assert_int_equal(evexec_pool_shutdown(fx->pool, EVEXEC_SHUTDOWN_WAIT), 0);
    assert_int_equal(atomic_load(&j->ran), 0);
}

/* The recorders and the futures in the scene: parked ended `perr`, each
 * queued one `qerr`.  Drops the futures. */
static void scene_check(struct scene *s, int perr, int qerr)
{
    assert_int_equal(s->prec.calls, 1);
    assert_int_equal(s->prec.error, perr);
    assert_int_equal(s->prec.off_loop, 0);
    evexec_future_unref(s->pf);
    for (int i = 0; i < s->nqueued; i++) {
        assert_int_equal(s->qrec[i].calls, 1);
        assert_int_equal(s->qrec[i].error, qerr);
        assert_int_equal(s->qrec[i].off_loop, 0);
        assert_int_equal(atomic_load(&s->queued[i].ran), qerr == ECANCELED ? 0 : 1);
        evexec_future_unref(s->qf[i]);
    }
}

/* flags 0: returns at once, refuses new work, queued jobs still run. */
/* ---- holding: a busy worker takes several jobs at once ------------------ */

#define HOLD_JOBS 20

struct hold_fx {
    struct tu_gate gate_a, gate_b, gate_first;
    struct tu_job blocker_a, blocker_b, jobs[HOLD_JOBS];
    struct evexec_future *fa, *fb, *futs[HOLD_JOBS];
    struct tu_rec recs[HOLD_JOBS];
};

/* Two threads, both parked (blockers a and b); HOLD_JOBS jobs queued
 * behind them, the first of which parks at gate_first.  Blocker a's
 * thread comes back with every thread busy and a backlog, so it takes
 * jobs[0] and holds 8 more (jobs[1..8]): 11 stay queued. */
static void hold_end(struct tu_fx *fx, struct hold_fx *h);

static void wd_never(struct evexec *ex, int lane, uint64_t ms, void *arg)
{
    (void)ex;
    (void)lane;
    (void)ms;
    (void)arg;
}

static void hold_setup_watched(struct tu_fx *fx, struct hold_fx *h, int watched)
{
    struct evexec_pool_config cfg = config(2, 0);
    fx_pool(fx, &cfg);
    if (watched)
        assert_int_equal(evexec_set_watchdog(fx->ex, 3600 * 1000, wd_never, NULL), 0);
    memset(h, 0, sizeof *h);
    tu_gate_init(&h->gate_a);
    tu_gate_init(&h->gate_b);
    tu_gate_init(&h->gate_first);
    tu_job_init(&h->blocker_a, &fx->frees, 0, 0);
    h->blocker_a.gate = &h->gate_a;
    tu_job_init(&h->blocker_b, &fx->frees, 0, 0);
    h->blocker_b.gate = &h->gate_b;
    h->fa = submit(fx, &h->blocker_a);
    h->fb = submit(fx, &h->blocker_b);
    assert_int_equal(tu_gate_wait_arrived(&h->gate_a, 1), 0);
    assert_int_equal(tu_gate_wait_arrived(&h->gate_b, 1), 0);
    for (int i = 0; i < HOLD_JOBS; i++) {
        tu_job_init(&h->jobs[i], &fx->frees, 0, 0);
        if (i == 0)
            h->jobs[i].gate = &h->gate_first;
        h->futs[i] = submit(fx, &h->jobs[i]);
        tu_rec_init(&h->recs[i]);
        assert_int_equal(evexec_future_on_done(h->futs[i], tu_rec_cb, &h->recs[i]), 0);
    }
    assert_int_equal(tu_stats(fx->pool).queued, HOLD_JOBS);
    tu_gate_open(&h->gate_a);
    assert_int_equal(tu_gate_wait_arrived(&h->gate_first, 1), 0);
    struct evexec_pool_stats st = tu_stats(fx->pool);
    if (watched) {
        assert_int_equal(st.queued, HOLD_JOBS - 1);
        assert_int_equal(st.running, 2);        /* b, jobs[0] */
        return;
    }
    assert_int_equal(st.queued, HOLD_JOBS - 9);
    assert_int_equal(st.running, 10);           /* b, jobs[0], 8 held */
}

static void hold_setup(struct tu_fx *fx, struct hold_fx *h)
{
    hold_setup_watched(fx, h, 0);
}

/* With a watchdog on the pool, workers take one job at a time, so each
 * job is timed from its own start (a holder's slot would time its held
 * jobs as one). */
static void test_held_jobs_not_when_watched(void **state)
{
    struct tu_fx *fx = *state;
    static struct hold_fx h;
    hold_setup_watched(fx, &h, 1);
    tu_gate_open(&h.gate_b);
    for (int i = 1; i < HOLD_JOBS; i++)
        assert_int_equal(finish(fx, h.futs[i]), 0);
    /* Off, or its timer keeps the loop of hold_end's dispatch running. */
    assert_int_equal(evexec_set_watchdog(fx->ex, 0, NULL, NULL), 0);
    hold_end(fx, &h);
}

/* Let everything finish (the futures are the evexec's to release when
 * it was freed already), free the pool (its threads joined), then the
 * gates; every job's callback ran once. */
static void hold_end(struct tu_fx *fx, struct hold_fx *h)
{
    tu_gate_open(&h->gate_b);
    tu_gate_open(&h->gate_first);
    if (fx->ex) {
        assert_int_equal(finish(fx, h->fb), 0);
        assert_int_equal(finish(fx, h->futs[0]), 0);
        assert_int_equal(finish(fx, h->fa), 0);
        dispatch(fx);
        evexec_future_unref(h->fa);
        evexec_future_unref(h->fb);
        for (int i = 0; i < HOLD_JOBS; i++)
            evexec_future_unref(h->futs[i]);
    }
    for (int i = 0; i < HOLD_JOBS; i++)
        assert_int_equal(h->recs[i].calls, 1);
    evexec_free(fx->ex);
    fx->ex = NULL;
    evexec_pool_free(fx->pool);
    fx->pool = NULL;
    tu_gate_destroy(&h->gate_a);
    tu_gate_destroy(&h->gate_b);
    tu_gate_destroy(&h->gate_first);
}

/* A held job is still the loop's to cancel at once (its function never
 * runs), like a queued one; the other thread, back, runs the queued jobs
 * and then the held ones while their holder is still parked; each job
 * runs once. */
static void test_held_jobs_cancel_and_steal(void **state)
{
    struct tu_fx *fx = *state;
    static struct hold_fx h;
    hold_setup(fx, &h);
    assert_int_equal(evexec_future_cancel(h.futs[4]), 0);      /* held */
    assert_int_equal(evexec_future_cancel(h.futs[15]), 0);     /* queued */
    assert_true(evexec_future_done(h.futs[4]));
    assert_true(evexec_future_done(h.futs[15]));
    assert_int_equal(evexec_future_error(h.futs[4]), ECANCELED);
    assert_int_equal(evexec_future_error(h.futs[15]), ECANCELED);
    assert_int_equal(tu_stats(fx->pool).cancelled, 2);

    tu_gate_open(&h.gate_b);
    for (int i = 1; i < HOLD_JOBS; i++)
        assert_int_equal(finish(fx, h.futs[i]), i == 4 || i == 15 ? ECANCELED : 0);
    assert_int_equal(atomic_load(&h.jobs[0].finished), 0);     /* still parked */
    for (int i = 1; i < HOLD_JOBS; i++)
        assert_int_equal(atomic_load(&h.jobs[i].ran), i == 4 || i == 15 ? 0 : 1);
    hold_end(fx, &h);
    assert_int_equal(atomic_load(&h.jobs[0].ran), 1);
}

/* Another evexec's job that comes while a worker holds jobs waits for at
 * most one job of that worker, as without holding: the holder gives the
 * rest back when its job returns.  Here the holder's own job, then one
 * job of the backlog, then the newcomer. */
static struct hold_fx newcomer_h;
static atomic_int newcomer_saw;     /* backlog jobs that ran before it */

static int newcomer_fn(struct evexec_job *job, void *arg)
{
    (void)job;
    (void)arg;
    int n = 0;
    for (int i = 1; i < HOLD_JOBS; i++)
        n += atomic_load(&newcomer_h.jobs[i].ran);
    atomic_store(&newcomer_saw, n);
    return 0;
}

static void test_held_jobs_yield_to_newcomer(void **state)
{
    struct tu_fx *fx = *state;
    hold_setup(fx, &newcomer_h);
    atomic_store(&newcomer_saw, -1);
    struct evexec *ex2 = evexec_new(fx->base, fx->pool);
    assert_non_null(ex2);
    struct evexec_future *nf = evexec_run(ex2, newcomer_fn, NULL);
    assert_non_null(nf);
    tu_gate_open(&newcomer_h.gate_first);
    assert_int_equal(evexec_run_until_complete(ex2, nf), 0);
    assert_int_equal(atomic_load(&newcomer_saw), 1);
    evexec_future_unref(nf);
    evexec_free(ex2);
    hold_end(fx, &newcomer_h);
    for (int i = 0; i < HOLD_JOBS; i++)
        assert_int_equal(atomic_load(&newcomer_h.jobs[i].ran), 1);
}

/* Freeing the evexec takes its held jobs back with its queued ones: they
 * end ECANCELED and never run, also after their holder comes back. */
static void test_held_jobs_evexec_free(void **state)
{
    struct tu_fx *fx = *state;
    static struct hold_fx h;
    hold_setup(fx, &h);
    evexec_free(fx->ex);
    fx->ex = NULL;
    for (int i = 0; i < HOLD_JOBS; i++) {
        assert_int_equal(h.recs[i].calls, 1);
        assert_int_equal(h.recs[i].error, ECANCELED);
    }
    hold_end(fx, &h);
    assert_int_equal(atomic_load(&h.jobs[0].ran), 1);
    for (int i = 1; i < HOLD_JOBS; i++)
        assert_int_equal(atomic_load(&h.jobs[i].ran), 0);
}

/* shutdown(CANCEL) takes held jobs back too: they end ECANCELED, never
 * run; the holder's own job and the blockers finish. */
static void test_held_jobs_shutdown_cancel(void **state)
{
    struct tu_fx *fx = *state;
    static struct hold_fx h;
    hold_setup(fx, &h);
    assert_int_equal(evexec_pool_shutdown(fx->pool, EVEXEC_SHUTDOWN_CANCEL), 0);
    for (int i = 1; i < HOLD_JOBS; i++)
        assert_int_equal(finish(fx, h.futs[i]), ECANCELED);
    assert_int_equal(tu_stats(fx->pool).cancelled, HOLD_JOBS - 1);
    hold_end(fx, &h);
    for (int i = 1; i < HOLD_JOBS; i++)
        assert_int_equal(atomic_load(&h.jobs[i].ran), 0);
}

/* A worker running thread_exit still counts against max_threads but takes
 * no job: meanwhile a busy worker must not hold jobs, or they wait for its
 * job although a thread may start in the exiting one's place.  Here one
 * of two threads idles out and parks in thread_exit; the other takes a
 * parked job out of a batch of nine; once the first has left, the other
 * eight run on a new thread while the parked job still runs. */
static struct tu_gate exitwin_gate;
static atomic_int exitwin_calls;

static void exitwin_exit(void *arg, void *state)
{
    (void)arg;
    (void)state;
    if (atomic_fetch_add(&exitwin_calls, 1) == 0)
        tu_gate_pass(&exitwin_gate);
}

static struct tu_job *exitwin_jobs;

static int exitwin_eight_ran(void *arg)
{
    (void)arg;
    for (int i = 0; i < 8; i++)
        if (atomic_load(&exitwin_jobs[i].ran) == 0)
            return 0;
    return 1;
}

static void test_held_jobs_not_while_exiting(void **state)
{
    struct tu_fx *fx = *state;
    tu_gate_init(&exitwin_gate);
    atomic_store(&exitwin_calls, 0);
    struct evexec_pool_config cfg = EVEXEC_POOL_CONFIG_INIT;
    cfg.max_threads = 2;
    cfg.min_threads = 1;
    cfg.idle_timeout_ms = 1;
    cfg.thread_exit = exitwin_exit;
    fx->pool = evexec_pool_new(&cfg);
    assert_non_null(fx->pool);
    fx->ex = evexec_new(fx->base, fx->pool);
    assert_non_null(fx->ex);
    static struct tu_gate two;      /* both threads up at once */
    tu_gate_init(&two);
    struct evexec_future *w[2];
    for (int i = 0; i < 2; i++) {
        struct tu_job *j = tu_fx_job(fx, 0, 0);
        j->gate = &two;
        w[i] = submit(fx, j);
    }
    int up = tu_gate_wait_arrived(&two, 2);
    tu_gate_open(&two);
    assert_int_equal(up, 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(finish(fx, w[i]), 0);
        evexec_future_unref(w[i]);
    }
    assert_int_equal(tu_gate_wait_arrived(&exitwin_gate, 1), 0);

    struct tu_job *k = tu_fx_job(fx, 0, 0);
    k->gate = &fx->gate;
    exitwin_jobs = tu_fx_jobs(fx, 8);
    struct evexec_future *f[9];
    assert_int_equal(evexec_batch_begin(fx->ex), 0);
    f[8] = evexec_run(fx->ex, tu_job_fn, k);
    for (int i = 0; i < 8; i++) {
        tu_job_init(&exitwin_jobs[i], &fx->frees, 0, 0);
        f[i] = evexec_run(fx->ex, tu_job_fn, &exitwin_jobs[i]);
    }
    for (int i = 0; i < 9; i++)
        assert_non_null(f[i]);
    assert_int_equal(evexec_batch_end(fx->ex), 0);
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, 1), 0);
    tu_gate_open(&exitwin_gate);
    int rc = tu_poll(exitwin_eight_ran, NULL);
    tu_gate_open(&fx->gate);
    assert_int_equal(rc, 0);
    for (int i = 0; i < 9; i++) {
        assert_int_equal(finish(fx, f[i]), 0);
        evexec_future_unref(f[i]);
    }
    evexec_free(fx->ex);
    fx->ex = NULL;
    evexec_pool_free(fx->pool);
    fx->pool = NULL;
    tu_gate_destroy(&exitwin_gate);
    tu_gate_destroy(&two);
}

static void test_shutdown_refuse_only(void **state)
{
    struct tu_fx *fx = *state;
    struct scene s;
    scene_start(fx, &s, 3);
    assert_int_equal(evexec_pool_shutdown(fx->pool, 0), 0);   /* parked: no wait */
    errno = 0;
    struct tu_job *j = tu_fx_job(fx, 0, 0);
    assert_refused(evexec_run(fx->ex, tu_job_fn, j), ESHUTDOWN);
    tu_gate_open(&fx->gate);
    dispatch(fx);
    scene_check(&s, 0, 0);
    expect_refusing(fx);
    assert_int_equal(atomic_load(&fx->frees), 3);
    assert_int_equal(atomic_load(&j->ran), 0);
}

/* WAIT: returns when every queued and running job has finished. */
static void test_shutdown_wait(void **state)
{
    struct tu_fx *fx = *state;
    struct scene s;
    scene_start(fx, &s, 3);
    tu_gate_open(&fx->gate);
    assert_int_equal(evexec_pool_shutdown(fx->pool, EVEXEC_SHUTDOWN_WAIT), 0);
    assert_int_equal(atomic_load(&s.parked->finished), 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(atomic_load(&s.queued[i].finished), 1);
    struct evexec_pool_stats st = tu_stats(fx->pool);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.running, 0);
    assert_int_equal(st.completed, 4);
    /* The results reach the loop afterwards. */
    dispatch(fx);
    scene_check(&s, 0, 0);
    expect_refusing(fx);
}

/* CANCEL: queued jobs never run and end ECANCELED on their loop; the
 * running one is not waited for and keeps its outcome. */
static void test_shutdown_cancel(void **state)
{
    struct tu_fx *fx = *state;
    struct scene s;
    scene_start(fx, &s, 3);
    /* The parked job holds the only worker: if this waited, it would hang. */
    assert_int_equal(evexec_pool_shutdown(fx->pool, EVEXEC_SHUTDOWN_CANCEL), 0);
    assert_int_equal(tu_stats(fx->pool).queued, 0);
    assert_int_equal(tu_stats(fx->pool).cancelled, 3);
    tu_gate_open(&fx->gate);
    dispatch(fx);
    scene_check(&s, 0, ECANCELED);
    expect_refusing(fx);
    assert_int_equal(atomic_load(&fx->frees), 0);
}

/* CANCEL|WAIT: queued jobs are cancelled and the running one waited for. */
static void test_shutdown_cancel_wait(void **state)
{
    struct tu_fx *fx = *state;
    struct scene s;
    scene_start(fx, &s, 2);
    assert_int_equal(evexec_pool_shutdown(fx->pool, EVEXEC_SHUTDOWN_CANCEL), 0);
    tu_gate_open(&fx->gate);
    assert_int_equal(evexec_pool_shutdown(fx->pool,
                                          EVEXEC_SHUTDOWN_CANCEL | EVEXEC_SHUTDOWN_WAIT), 0);
    assert_int_equal(atomic_load(&s.parked->finished), 1);
    assert_int_equal(tu_stats(fx->pool).running, 0);
    dispatch(fx);
    scene_check(&s, 0, ECANCELED);
}

/* CANCEL from another thread while the loop waits: the cancelled jobs
 * reach the loop on their own, ECANCELED. */
struct shutter {
    struct evexec_pool *pool;
    struct tu_gate *gate;
    int rc;
};

static void *shutter_main(void *arg)
{
    struct shutter *sh = arg;
    sh->rc = evexec_pool_shutdown(sh->pool, EVEXEC_SHUTDOWN_CANCEL);
    tu_gate_open(sh->gate);     /* only now may the worker take a job */
    return NULL;
}

static void test_shutdown_cancel_other_thread(void **state)
{
    struct tu_fx *fx = *state;
    struct scene s;
    scene_start(fx, &s, 3);
    struct shutter sh = { fx->pool, &fx->gate, -1 };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, shutter_main, &sh), 0);
    int rc = evexec_run_until_complete(fx->ex, s.qf[2]);
    pthread_join(t, NULL);
    assert_int_equal(sh.rc, 0);
    assert_int_equal(rc, ECANCELED);
    dispatch(fx);
    scene_check(&s, 0, ECANCELED);
}

/* CANCEL reaches running jobs: evexec_job_cancelled() turns true, and
 * jobs blocked in evexec_job_wait_cancel() or evexec_job_poll() with no
 * timeout are woken, so CANCEL|WAIT returns.  Their futures end with what
 * their functions return (here ECANCELED, what the waits returned). */
struct cancel_waiter {
    int use_poll;
    atomic_int entered;
    atomic_int before;      /* evexec_job_cancelled() before waiting */
    atomic_int after;       /* and after */
    atomic_int rc;
};

static int cancel_waiter_job(struct evexec_job *job, void *arg)
{
    struct cancel_waiter *w = arg;
    atomic_store(&w->before, evexec_job_cancelled(job));
    atomic_store(&w->entered, 1);
    int rc = w->use_poll ? evexec_job_poll(job, NULL, 0, NULL)
                         : evexec_job_wait_cancel(job, NULL);
    atomic_store(&w->after, evexec_job_cancelled(job));
    atomic_store(&w->rc, rc);
    return rc;
}

static int waiters_entered(void *arg)
{
    struct cancel_waiter *w = arg;
    return atomic_load(&w[0].entered) && atomic_load(&w[1].entered);
}

static void test_shutdown_cancel_wakes_running(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_pool_config cfg = config(2, 0);
    fx_pool(fx, &cfg);
    static struct cancel_waiter w[2];   /* outlives a failed test */
    memset(w, 0, sizeof w);
    w[1].use_poll = 1;
    struct evexec_future *f[2];
    for (int i = 0; i < 2; i++)
        f[i] = submit_fn(fx, cancel_waiter_job, &w[i]);
    assert_int_equal(tu_poll(waiters_entered, w), 0);

    static struct shutdown_call c;
    c = (struct shutdown_call){ fx->pool, EVEXEC_SHUTDOWN_CANCEL | EVEXEC_SHUTDOWN_WAIT, -1 };
    if (bg_run(shutdown_call, &c) != 0)
        fail_msg("shutdown(CANCEL|WAIT) did not wake the waiting jobs");
    assert_int_equal(c.rc, 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(atomic_load(&w[i].before), 0);
        assert_int_equal(atomic_load(&w[i].after), 1);
        assert_int_equal(atomic_load(&w[i].rc), ECANCELED);
        assert_int_equal(finish(fx, f[i]), ECANCELED);
        evexec_future_unref(f[i]);
    }
}

/* A job that ignores the cancel keeps its own outcome: its future ends
 * with what it returns. */
static void test_shutdown_cancel_running_outcome(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_pool_config cfg = config(1, 0);
    fx_pool(fx, &cfg);
    struct tu_job *j = tu_fx_job(fx, 1, 0);
    j->gate = &fx->gate;
    struct evexec_future *f = submit(fx, j);
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, 1), 0);
    assert_int_equal(evexec_pool_shutdown(fx->pool, EVEXEC_SHUTDOWN_CANCEL), 0);
    tu_gate_open(&fx->gate);
    assert_int_equal(finish(fx, f), 0);
    assert_int_equal(atomic_load(&j->saw_cancel), 1);
    assert_non_null(evexec_future_result(f));
    evexec_future_unref(f);
    assert_int_equal(atomic_load(&fx->frees), 1);
}

/* Inside a done callback too: a job submitted before the shutdown still
 * runs, one submitted after it is refused at the call. */
struct cb_submit {
    struct evexec *ex;
    struct evexec_pool *pool;
    struct tu_job *before, *after;
    struct evexec_future *fbefore, *fafter;
    int after_errno, shutdown_rc, calls;
};

static void cb_submit(struct evexec_future *f, void *arg)
{
    (void)f;
    struct cb_submit *c = arg;
    c->calls++;
    c->fbefore = evexec_run(c->ex, tu_job_fn, c->before);
    c->shutdown_rc = evexec_pool_shutdown(c->pool, 0);
    errno = 0;
    c->fafter = evexec_run(c->ex, tu_job_fn, c->after);
    c->after_errno = errno;
}

static void test_shutdown_inside_callback(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_pool_config cfg = config(2, 0);
    fx_pool(fx, &cfg);
    struct cb_submit c = { fx->ex, fx->pool, tu_fx_job(fx, 1, 0), tu_fx_job(fx, 1, 0),
                           NULL, NULL, 0, -1, 0 };
    struct evexec_future *trigger = evexec_future_new(fx->ex);
    assert_non_null(trigger);
    assert_int_equal(evexec_future_on_done(trigger, cb_submit, &c), 0);
    assert_int_equal(evexec_future_set_result(trigger, NULL, NULL), 0);
    dispatch(fx);
    evexec_future_unref(trigger);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.shutdown_rc, 0);
    assert_non_null(c.fbefore);
    assert_int_equal(evexec_future_error(c.fbefore), 0);
    evexec_future_unref(c.fbefore);
    assert_null(c.fafter);
    assert_int_equal(c.after_errno, ESHUTDOWN);
    assert_int_equal(evexec_pool_shutdown(fx->pool, EVEXEC_SHUTDOWN_WAIT), 0);
    assert_int_equal(atomic_load(&c.before->ran), 1);
    assert_int_equal(atomic_load(&c.after->ran), 0);
}

/* WAIT from one of the pool's own workers would wait for itself. */
struct self_wait {
    struct evexec_pool *pool;
};

static int self_wait_job(struct evexec_job *job, void *arg)
{
    (void)job;
    struct self_wait *sw = arg;
    return evexec_pool_shutdown(sw->pool, EVEXEC_SHUTDOWN_WAIT);
}

static void test_shutdown_wait_from_worker(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_pool_config cfg = config(2, 0);
    fx_pool(fx, &cfg);
    struct self_wait sw = { fx->pool };
    struct evexec_future *f = submit_fn(fx, self_wait_job, &sw);
    assert_int_equal(evexec_run_until_complete(fx->ex, f), EDEADLK);
    evexec_future_unref(f);
}

/* evexec_pool_free without a shutdown waits for the jobs still running,
 * including those of an evexec freed before them. */
static void test_pool_free_waits(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_pool_config cfg = config(2, 0);
    fx_pool(fx, &cfg);
    struct tu_job *j = tu_fx_job(fx, 1, 0);
    j->gate = &fx->gate;
    j->sleep_us = 50 * 1000;
    struct evexec_future *f = submit(fx, j);
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, 1), 0);
    evexec_future_unref(f);
    evexec_free(fx->ex);
    fx->ex = NULL;
    tu_gate_open(&fx->gate);
    evexec_pool_free(fx->pool);
    fx->pool = NULL;
    assert_int_equal(atomic_load(&j->finished), 1);
    assert_int_equal(atomic_load(&j->saw_cancel), 1);
    assert_int_equal(atomic_load(&fx->frees), 1);
}

/* evexec_pool_free from one of the pool's own workers does not wait for
 * itself: it shuts the pool down as shutdown(0) does (queued jobs still
 * run, new ones are refused), sets EDEADLK and returns; the pool is freed
 * later from another thread. */
struct free_self {
    struct evexec_pool *pool;
    struct tu_gate *gate;
    atomic_int err;
    atomic_int returned;
};

static int free_self_job(struct evexec_job *job, void *arg)
{
    (void)job;
    struct free_self *fs = arg;
    tu_gate_pass(fs->gate);
    errno = 0;
    evexec_pool_free(fs->pool);
    atomic_store(&fs->err, errno);
    atomic_store(&fs->returned, 1);
    return 0;
}

static void test_pool_free_from_worker(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_pool_config cfg = config(1, 0);
    fx_pool(fx, &cfg);
    static struct free_self fs;
    memset(&fs, 0, sizeof fs);
    fs.pool = fx->pool;
    fs.gate = &fx->gate;
    struct evexec_future *f = submit_fn(fx, free_self_job, &fs);
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, 1), 0);
    struct tu_job *behind = tu_fx_job(fx, 0, 0);
    struct evexec_future *fb = submit(fx, behind);
    tu_gate_open(&fx->gate);
    if (finish(fx, f) != 0)
        fail_msg("evexec_pool_free from a worker did not return");
    assert_int_equal(atomic_load(&fs.returned), 1);
    assert_int_equal(atomic_load(&fs.err), EDEADLK);
    assert_int_equal(finish(fx, fb), 0);
    assert_int_equal(atomic_load(&behind->ran), 1);
    struct tu_job *late = tu_fx_job(fx, 0, 0);
    errno = 0;
    assert_refused(evexec_run(fx->ex, tu_job_fn, late), ESHUTDOWN);
    evexec_future_unref(f);
    evexec_future_unref(fb);

    evexec_free(fx->ex);
    fx->ex = NULL;
    assert_int_equal(bg_run(pool_free_call, fx->pool), 0);
    fx->pool = NULL;
    assert_int_equal(atomic_load(&late->ran), 0);
}

#define TESTS(X) \
    X(test_config) \
    X(test_null_arguments) \
    X(test_lazy_start) \
    X(test_idle_shrink) \
    X(test_idle_shrink_to_zero) \
    X(test_join_outside_lock) \
    X(test_thread_init) \
    X(test_thread_state) \
    X(test_thread_state_idle_exit) \
    X(test_thread_state_none) \
    X(test_stack_size) \
    X(test_stack_size_default) \
    X(test_spin_settings) \
    X(test_deadline_met) \
    X(test_deadline_queued) \
    X(test_deadline_running_replaced) \
    X(test_deadline_replacement_runs_work) \
    X(test_deadline_bad) \
    X(test_thread_exit_bounded_by_max_threads) \
    X(test_thread_exit_stats_and_shutdown) \
    X(test_thread_name) \
    X(test_thread_name_default) \
    X(test_thread_name_long) \
    X(test_single_worker_order) \
    X(test_two_evexecs_in_turn) \
    X(test_bounded_queue) \
    X(test_slow_lane) \
    X(test_bounded_queue_per_lane) \
    X(test_bounded_queue_lanes) \
    X(test_bounded_queue_size_max) \
    X(test_slow_lane_two_threads) \
    X(test_slow_lane_one_thread) \
    X(test_slow_lane_share_setting) \
    X(test_stats_counts) \
    X(test_held_jobs_cancel_and_steal) \
    X(test_held_jobs_yield_to_newcomer) \
    X(test_held_jobs_evexec_free) \
    X(test_held_jobs_not_when_watched) \
    X(test_held_jobs_shutdown_cancel) \
    X(test_held_jobs_not_while_exiting) \
    X(test_shutdown_refuse_only) \
    X(test_shutdown_wait) \
    X(test_shutdown_cancel) \
    X(test_shutdown_cancel_wait) \
    X(test_shutdown_cancel_other_thread) \
    X(test_shutdown_cancel_wakes_running) \
    X(test_shutdown_cancel_running_outcome) \
    X(test_shutdown_inside_callback) \
    X(test_shutdown_wait_from_worker) \
    X(test_pool_free_waits) \
    X(test_pool_free_from_worker)

TESTS(TU_WRAP)

#define ENTRY(name) TU_ENTRY(name, setup, teardown),

int main(void)
{
    const struct CMUnitTest tests[] = { TESTS(ENTRY) };
    return cmocka_run_group_tests_name("pool", tests, NULL, NULL);
}
