/*
 * test_stress.c -- many jobs, counted.
 *
 * test_many_jobs: TU_SCALE(100000) jobs at once on one loop; every done
 * callback runs exactly once and every result is released once.
 *
 * test_random_cancel: two loop threads share one pool.  Each streams jobs
 * of random length (0-50 us of spinning), some setting results with
 * destructors, some failing, and cancels random ones from the loop: at
 * submission (queued, or still in the loop's batch) and from other jobs'
 * callbacks (queued, running, or returned but not yet delivered).  Checked:
 * every callback exactly once; a job that never ran ended ECANCELED after a
 * taken cancel; a taken cancel always ends ECANCELED; any other outcome is
 * the job's own; ran + never-ran == submitted; the pool's `completed`
 * counts exactly the jobs that ran; destructors == results set.  The seed
 * is printed; set EVEXEC_STRESS_SEED to replay one (the interleaving of
 * threads still varies).
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
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "evexec.h"
#include "testutil.h"

#define WORKERS 4

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    assert_non_null(p);
    return p;
}

/* ---- many jobs ----------------------------------------------------------- */

struct many {
    int *calls;             /* loop thread only */
    int wrong_error;        /* loop thread only */
    atomic_int frees;
};

struct many_arg {
    struct many *m;
    int index;
};

static int many_job(struct evexec_job *job, void *arg)
{
    struct many_arg *a = arg;
    if (a->index % 10 == 0)
        evexec_job_set_result(job, tu_result_new(&a->m->frees, a->index), tu_result_free);
    return a->index % 7 == 0 ? EIO : 0;
}

static void many_cb(struct evexec_future *f, void *arg)
{
    struct many_arg *a = arg;
    a->m->calls[a->index]++;
    if (evexec_future_error(f) != (a->index % 7 == 0 ? EIO : 0))
        a->m->wrong_error++;
    evexec_future_unref(f);
}

static void test_many_jobs(void **state)
{
    (void)state;
    int n = TU_SCALE(100000);
    struct many m;
    m.calls = xcalloc((size_t)n, sizeof *m.calls);
    m.wrong_error = 0;
    atomic_init(&m.frees, 0);
    struct many_arg *args = xcalloc((size_t)n, sizeof *args);
    struct event_base *base = event_base_new();
    struct evexec_pool *pool = tu_pool_new(WORKERS, 0);
    assert_non_null(base);
    assert_non_null(pool);
    struct evexec *ex = evexec_new(base, pool);
    assert_non_null(ex);

    for (int i = 0; i < n; i++) {
        args[i] = (struct many_arg){ &m, i };
        struct evexec_future *f = evexec_run(ex, many_job, &args[i]);
        assert_non_null(f);
        assert_int_equal(evexec_future_on_done(f, many_cb, &args[i]), 0);
    }
    assert_int_equal(evexec_set_keepalive(ex, 0), 0);
    assert_int_not_equal(event_base_dispatch(base), -1);
    for (int i = 0; i < n; i++)
        if (m.calls[i] != 1)
            fail_msg("job %d: callback ran %d times", i, m.calls[i]);
    assert_int_equal(m.wrong_error, 0);
    evexec_free(ex);
    evexec_pool_free(pool);
    event_base_free(base);
    /* Results of failed jobs are released too, on delivery. */
    assert_int_equal(atomic_load(&m.frees), n / 10 + (n % 10 != 0));
    free(args);
    free(m.calls);
}

/* ---- random cancels on two loops ------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static unsigned rng_below(uint64_t *s, unsigned n)
{
    return (unsigned)(rng_next(s) >> 33) % n;
}

struct sjob {
    struct sloop *loop;
    int index;
    int spin_us;            /* 0-50 */
    int set_result;
    int ret;                /* 0 or EIO */
    atomic_int ran;
};

/* One loop's state.  The loop thread owns every plain field; workers write
 * only the atomics.  The test reads all of it after joining the loop. */
struct sloop {
    uint64_t rng;
    int n;                  /* jobs to submit */
    int window;             /* most jobs in flight */
    struct sjob *jobs;
    struct evexec_future **futs;    /* NULL once its callback dropped it */
    unsigned char *cancel_taken;
    int *calls;
    struct evexec *ex;
    int submitted, done;
    int submit_failures, bad_cancel_rc, wrong_outcome;
    int cancels_taken, cancels_late;
    atomic_int *results_set, *frees;
};

static void spin_us(int us)
{
    int64_t end = tu_now_us() + us;
    while (tu_now_us() < end)
        ;
}

static int stress_job(struct evexec_job *job, void *arg)
{
    struct sjob *j = arg;
    atomic_fetch_add(&j->ran, 1);
    if (j->spin_us)
        spin_us(j->spin_us);
    if (j->set_result) {
        atomic_fetch_add(j->loop->results_set, 1);
        evexec_job_set_result(job, tu_result_new(j->loop->frees, j->index), tu_result_free);
    }
    /* Stop early when asked, as a long job should. */
    return evexec_job_cancelled(job) ? ECANCELED : j->ret;
}

static void try_cancel(struct sloop *l, int i)
{
    if (!l->futs[i] || l->cancel_taken[i])
        return;
    int rc = evexec_future_cancel(l->futs[i]);
    if (rc == 0) {
        l->cancel_taken[i] = 1;
        l->cancels_taken++;
    } else if (rc == EALREADY) {
        l->cancels_late++;
    } else {
        l->bad_cancel_rc++;
    }
}

static void stress_cb(struct evexec_future *f, void *arg);

static void submit_one(struct sloop *l)
{
    int i = l->submitted++;
    struct sjob *j = &l->jobs[i];
    j->loop = l;
    j->index = i;
    j->spin_us = rng_below(&l->rng, 4) == 0 ? 0 : (int)rng_below(&l->rng, 51);
    j->set_result = rng_below(&l->rng, 3) == 0;
    j->ret = rng_below(&l->rng, 10) == 0 ? EIO : 0;
    l->futs[i] = evexec_run(l->ex, stress_job, j);
    if (!l->futs[i] || evexec_future_on_done(l->futs[i], stress_cb, j) != 0) {
        l->submit_failures++;
        l->done++;      /* no callback will come */
        return;
    }
    if (rng_below(&l->rng, 10) == 0)
        try_cancel(l, i);
}

/* The outcome the job's own code asks for, when it ran uncancelled. */
static int check_outcome(struct sloop *l, struct sjob *j, struct evexec_future *f)
{
    int err = evexec_future_error(f);
    int ran = atomic_load(&j->ran);
    if (!evexec_future_done(f) || ran > 1)
        return 0;
    if (l->cancel_taken[j->index])
        return err == ECANCELED && evexec_future_result(f) == NULL;
    if (!ran || err == ECANCELED)
        return 0;               /* nothing but a taken cancel stops a job */
    if (err != j->ret)
        return 0;
    struct tu_result *r = evexec_future_result(f);
    if (err != 0 || !j->set_result)
        return r == NULL;
    return r && r->value == j->index;
}

static void stress_cb(struct evexec_future *f, void *arg)
{
    struct sjob *j = arg;
    struct sloop *l = j->loop;
    int i = j->index;
    l->calls[i]++;
    l->done++;
    if (!check_outcome(l, j, f))
        l->wrong_outcome++;
    evexec_future_unref(f);
    l->futs[i] = NULL;
    /* Cancel a random recent job: queued, running, or already back. */
    if (rng_below(&l->rng, 3) == 0) {
        int lo = l->submitted > l->window ? l->submitted - l->window : 0;
        try_cancel(l, lo + (int)rng_below(&l->rng, (unsigned)(l->submitted - lo)));
    }
    /* Keep the window full. */
    for (int k = 0; k < 2 && l->submitted < l->n &&
                    l->submitted - l->done < l->window; k++)
        submit_one(l);
}

static void stress_body(struct evexec *ex, void *arg)
{
    struct sloop *l = arg;
    l->ex = ex;
    while (l->submitted < l->n && l->submitted < l->window)
        submit_one(l);
    evexec_set_keepalive(ex, 0);
    event_base_dispatch(evexec_get_base(ex));
    /* Whatever is left (a lost callback) is left to evexec_free: not
     * counted as a call here, so the test sees it. */
}

static uint64_t stress_seed(void)
{
    const char *env = getenv("EVEXEC_STRESS_SEED");
    if (env && *env)
        return strtoull(env, NULL, 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000000007ULL) ^ (uint64_t)ts.tv_nsec;
}

static void sloop_init(struct sloop *l, uint64_t seed, int n, atomic_int *results_set,
                       atomic_int *frees)
{
    memset(l, 0, sizeof *l);
    l->rng = seed ? seed : 1;
    l->n = n;
    l->window = 256;
    l->jobs = xcalloc((size_t)n, sizeof *l->jobs);
    l->futs = xcalloc((size_t)n, sizeof *l->futs);
    l->cancel_taken = xcalloc((size_t)n, 1);
    l->calls = xcalloc((size_t)n, sizeof *l->calls);
    l->results_set = results_set;
    l->frees = frees;
}

static void sloop_free(struct sloop *l)
{
    free(l->jobs);
    free(l->futs);
    free(l->cancel_taken);
    free(l->calls);
}

/* Checks one loop's counts; returns how many of its jobs ran. */
static int sloop_check(const struct sloop *l, int which)
{
    int ran = 0, never_ran = 0, ran_then_cancelled = 0;
    assert_int_equal(l->submit_failures, 0);
    assert_int_equal(l->bad_cancel_rc, 0);
    assert_int_equal(l->submitted, l->n);
    for (int i = 0; i < l->n; i++) {
        if (l->calls[i] != 1)
            fail_msg("loop %d, job %d: callback ran %d times", which, i, l->calls[i]);
        int r = atomic_load(&l->jobs[i].ran);
        if (r > 1)
            fail_msg("loop %d, job %d ran %d times", which, i, r);
        if (r == 0 && !l->cancel_taken[i])
            fail_msg("loop %d, job %d never ran yet was not cancelled", which, i);
        ran += r;
        never_ran += r == 0;
        ran_then_cancelled += r == 1 && l->cancel_taken[i];
    }
    assert_int_equal(l->wrong_outcome, 0);
    assert_int_equal(ran + never_ran, l->n);
    printf("stress loop %d: %d jobs, %d ran, %d cancelled before running, "
           "%d while running or undelivered, %d cancels too late\n",
           which, l->n, ran, never_ran, ran_then_cancelled, l->cancels_late);
    return ran;
}

static void test_random_cancel(void **state)
{
    (void)state;
    enum { LOOPS = 2 };
    int n = TU_SCALE(20000);
    uint64_t seed = stress_seed();
    printf("stress seed: EVEXEC_STRESS_SEED=%" PRIu64 "\n", seed);
    fflush(stdout);

    atomic_int results_set, frees;
    atomic_init(&results_set, 0);
    atomic_init(&frees, 0);
    struct evexec_pool *pool = tu_pool_new(WORKERS, 0);
    assert_non_null(pool);
    struct sloop l[LOOPS];
    struct tu_loop loops[LOOPS];
    for (int k = 0; k < LOOPS; k++) {
        sloop_init(&l[k], seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(k + 1)), n,
                   &results_set, &frees);
        loops[k] = (struct tu_loop){ .pool = pool, .body = stress_body, .arg = &l[k] };
        assert_int_equal(tu_loop_start(&loops[k]), 0);
    }
    for (int k = 0; k < LOOPS; k++)
        assert_int_equal(tu_loop_join(&loops[k]), 0);
    /* Jobs cut short by a cancel may still be finishing on the workers. */
    assert_int_equal(evexec_pool_shutdown(pool, EVEXEC_SHUTDOWN_WAIT), 0);
    struct evexec_pool_stats st = tu_stats(pool);

    int ran = 0;
    for (int k = 0; k < LOOPS; k++)
        ran += sloop_check(&l[k], k);
    assert_int_equal(st.completed, (uint64_t)ran);
    assert_true(st.cancelled <= (uint64_t)(LOOPS * n - ran));
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.running, 0);
    assert_int_equal(atomic_load(&frees), atomic_load(&results_set));
    evexec_pool_free(pool);
    for (int k = 0; k < LOOPS; k++)
        sloop_free(&l[k]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_jobs),
        cmocka_unit_test(test_random_cancel),
    };
    return cmocka_run_group_tests_name("stress", tests, NULL, NULL);
}
