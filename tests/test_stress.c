/*
 * test_stress.c -- races, hunted with many jobs, counted.
 *
 * Sizes.  Every test has a CI size, run by `make check` (a quarter of it
 * under sanitizers, TU_SCALE), and a long size, selected with
 * EVEXEC_STRESS=long and run by `make stress`.  Each test prints one
 * "stress <name>: ..." summary line.
 *
 * Seeds.  One seed per run, printed first ("stress seed:
 * EVEXEC_STRESS_SEED=..."); each test derives its own from it.  Set
 * EVEXEC_STRESS_SEED to replay a run's random choices (the interleaving of
 * threads still varies).
 *
 * Behaviour, never timing: nothing here asserts how long anything took.
 * Every wait has a deadline: a loop that makes no progress for
 * TU_DEADLINE_MS fails the test instead of hanging it.
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
 * counts exactly the jobs that ran; destructors == results set.
 *
 * test_threadsafe_calls: 8 threads each make N evexec_call_soon_threadsafe()
 * calls (N = 50000 CI, 100000 long) in paced bursts, with pauses that
 * leave the evexec idle (no job in flight, nothing queued), while the loop
 * dispatches with the default keep-alive; the loop also submits a job now
 * and then.  The loop is ended with event_base_loopexit() once every call
 * and job is done; a watchdog timer breaks it when nothing progressed for
 * TU_DEADLINE_MS, and fails.  Every call runs exactly once, in order per
 * thread.
 *
 * test_cancel_race: batches of short jobs; the loop cancels each at a
 * random moment (before it runs, while it runs, after it returned but
 * before delivery, after delivery) by spinning a random few microseconds
 * between cancels.  Checked: cancel returns 0 exactly when the future was
 * not done, EALREADY otherwise; a taken cancel always ends ECANCELED with
 * no result; any other future ends with the job's own outcome and its job
 * never saw a cancel; a job runs at most once, and never without a taken
 * cancel only; every callback once; every result destructor once.
 *
 * test_wait_for_race: jobs of 0-1000 us with evexec_wait_for() timeouts of
 * 0-1000 us (precise timers).  Checked, per the header: the wait_for ends
 * ETIMEDOUT with no result, or with the inner future's own error and
 * result pointer; the inner future ends ECANCELED exactly when the wait_for
 * timed out, else with the job's outcome; both callbacks once; results
 * released once.
 *
 * test_submit_vs_shutdown: rounds of three loop threads submitting to one
 * pool (from the loop and from done callbacks, with a bounded queue in
 * some rounds) while the test thread calls evexec_pool_shutdown() with
 * random flags after a random delay.  Checked: a refused submission fails
 * with ESHUTDOWN or EAGAIN and its function never runs, and after the
 * first ESHUTDOWN every submission is refused; an accepted one's future
 * ends exactly once, with its result when the job ran, else ECANCELED
 * (CANCEL only) or ESHUTDOWN (submitted from a callback only); without
 * CANCEL every job submitted from the loop runs; after shutdown(WAIT)
 * returns no job is still running; results released once.
 *
 * test_free_vs_running: rounds of evexec_free() while its jobs run (its
 * callbacks run inside), alternating EVEXEC_WAKEUP=pipe and the default
 * eventfd; right after evexec_free() the test opens eventfds, pipes and
 * socket pairs, which take the freed fd numbers; once the pool has
 * finished every job (shutdown WAIT) nothing may have been written into
 * any of them (non-blocking reads give EAGAIN).  Every callback once,
 * every result released once; ASan sees any use after free.
 *
 * test_reentrant_callbacks: rounds in which one done callback, chosen at
 * random, unrefs its own future, then (each step at random) cancels a
 * sibling, submits more jobs, shuts the pool down with random flags, calls
 * evexec_free() and then evexec_pool_free() -- all inside the callback.
 * Every future ends once with an outcome the contract allows for what
 * happened; results released once.
 *
 * test_idle_shrink: a pool with idle_timeout_ms 1 and min_threads 0 gets
 * bursts of 1-8 jobs separated by random 0-3 ms gaps (from timers and from
 * done callbacks), so workers keep exiting as work arrives: every job
 * completes (deadline), none is stranded.
 *
 * test_two_loops_one_freed: two loop threads share a pool; one frees its
 * evexec mid-flight (from a callback or after leaving its loop) while the
 * other keeps streaming jobs: every job of the other completes with its own
 * outcome.
 *
 * test_wakeup_handoff: hunts lost wake-ups across the loop/worker hand-off,
 * with the pool's spin off (EVEXEC_SPIN_OFF: nothing but the wake-up fd
 * brings a completion in), with the adaptive spin, and spin off with
 * EVEXEC_WAKEUP=pipe; keep-alive off, so the loop must end by itself.
 * Each run has 400 rounds (20000 long, a quarter under sanitizers); each
 * sets a random drain budget (1-8 callbacks, now and then with 1-30 us; a
 * time budget alone; or none), submits 1-40 jobs (evexec_run or
 * evexec_submit; half no-ops, half sleeping 1-200 us), cancels one in eight
 * at once, and has 2 outside threads make 0-32
 * evexec_call_soon_threadsafe() calls each, with short pauses, while a held
 * job keeps the round in flight until they are made.  Callbacks make
 * loop-thread calls (which make more), cancel random jobs of the round and
 * submit more; the round's last callback starts the next round from inside
 * the drain, so bursts land while a budgeted drain is split.  A watchdog
 * fails the test when nothing progressed for WH_STALL_MS (20 s: a lost
 * wake-up leaves the loop asleep for ever).  Checked: every callback once;
 * a taken cancel ends ECANCELED, any other job ran once and ended 0;
 * submitted == delivered; calls made == calls run, each thread's in order;
 * after the last round the dispatch returns by itself.
 *
 * test_hold_race: races holding (pool.c: a busy worker takes up to 8 more
 * jobs of a one-owner backlog).  Rounds of a pool of 2-4 threads, one or
 * two evexecs on the test's loop and, in a third of the rounds, a second
 * loop on its own thread; each loop submits bursts of 1-40 jobs (half
 * no-ops, half sleeping 1-200 us), mostly of one evexec, from outside
 * callbacks and from callbacks, and cancels random pending jobs (queued,
 * held or running; from callbacks only jobs already handed to the pool).
 * In some rounds the second evexec is freed mid-flight, and in a third
 * the pool is shut down with CANCEL.  Checked: every callback once; a job
 * runs at most once; a cancel that ended the job at once before its
 * function returned means it never runs; ECANCELED only after a cancel,
 * a free or shutdown(CANCEL); at the end queued 0, running 0, completed ==
 * the jobs that ran, completed + cancelled == the jobs handed to the
 * pool.  The summary counts the passes whose stats showed more jobs
 * running than threads (jobs held).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef HAVE_EVENTFD
#include <sys/eventfd.h>
#endif
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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

/* ---- seeds (sizes and randomness: testutil.h) ------------------------------- */

static uint64_t g_seed;

/* A test's own seed: the run's seed mixed with the test's name. */
static uint64_t seed_for(const char *name)
{
    uint64_t h = g_seed ^ 0x9e3779b97f4a7c15ULL;
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    return h ? h : 1;
}

static void spin_us(int us)
{
    int64_t end = tu_now_us() + us;
    while (tu_now_us() < end)
        ;
}

/* ---- running a loop with a deadline ------------------------------------------ */

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* Run base one iteration at a time until pred(arg) holds.  Returns 0; or
 * ETIMEDOUT when *progress (if given, else the whole wait) has not changed
 * for TU_DEADLINE_MS; EIO if the loop failed; ENOMEM.  A 50 ms tick keeps
 * each iteration short, so the deadline is looked at. */
static int loop_until(struct event_base *base, int (*pred)(void *), void *arg,
                      const long *progress)
{
    if (pred(arg))
        return 0;
    struct event *tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
    if (!tick)
        return ENOMEM;
    struct timeval tv = { 0, 50000 };
    event_add(tick, &tv);
    long last = progress ? *progress : 0;
    int64_t end = tu_now_us() + (int64_t)TU_DEADLINE_MS * 1000;
    int rc = 0;
    while (!pred(arg)) {
        if (progress && *progress != last) {
            last = *progress;
            end = tu_now_us() + (int64_t)TU_DEADLINE_MS * 1000;
        }
        if (tu_now_us() > end) {
            rc = ETIMEDOUT;
            break;
        }
        if (event_base_loop(base, EVLOOP_ONCE) < 0) {
            rc = EIO;
            break;
        }
    }
    event_free(tick);
    return rc;
}

/* A base whose timers are precise (timerfd), for microsecond races. */
static struct event_base *precise_base_new(void)
{
    struct event_config *cfg = event_config_new();
    assert_non_null(cfg);
    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    struct event_base *base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    assert_non_null(base);
    return base;
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
    int n = tu_stress_size(100000, 1000000);
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
    printf("stress many_jobs: %d jobs, every callback once, %d results released once\n",
           n, atomic_load(&m.frees));
    free(args);
    free(m.calls);
}

/* ---- random cancels on two loops ------------------------------------------- */

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
    j->spin_us = tu_rng_below(&l->rng, 4) == 0 ? 0 : (int)tu_rng_below(&l->rng, 51);
    j->set_result = tu_rng_below(&l->rng, 3) == 0;
    j->ret = tu_rng_below(&l->rng, 10) == 0 ? EIO : 0;
    l->futs[i] = evexec_run(l->ex, stress_job, j);
    if (!l->futs[i] || evexec_future_on_done(l->futs[i], stress_cb, j) != 0) {
        l->submit_failures++;
        l->done++;      /* no callback will come */
        return;
    }
    if (tu_rng_below(&l->rng, 10) == 0)
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
    if (tu_rng_below(&l->rng, 3) == 0) {
        int lo = l->submitted > l->window ? l->submitted - l->window : 0;
        try_cancel(l, lo + (int)tu_rng_below(&l->rng, (unsigned)(l->submitted - lo)));
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
    int n = tu_stress_size(20000, 500000);
    uint64_t seed = seed_for("random_cancel");

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

/* ---- call_soon_threadsafe from 8 threads ---------------------------------------- */

#define TS_THREADS 8
#define TS_SEQ_BITS 24

struct ts {
    struct event_base *base;
    struct evexec *ex;
    int per_thread;
    struct tu_gate start;
    atomic_int call_failures;
    atomic_int pauses;          /* idle pauses the threads made */
    /* loop thread only */
    uint64_t rng;
    int next[TS_THREADS];
    int out_of_order;
    long total, expected;
    int jobs_submitted, jobs_done, jobs_bad, job_submit_failures;
    int exit_asked;
    long progress;
    /* watchdog */
    struct event *wd;
    long wd_last;
    int64_t wd_since;
    int wd_fired;
};

struct ts_thread {
    struct ts *t;
    int id;
    uint64_t rng;
    pthread_t th;
};

static struct ts *g_ts;

static void ts_maybe_exit(struct ts *t)
{
    long failed = atomic_load(&t->call_failures);
    if (!t->exit_asked && t->total + failed == t->expected &&
        t->jobs_done == t->jobs_submitted) {
        t->exit_asked = 1;
        event_base_loopexit(t->base, NULL);
    }
}

static int ts_job(struct evexec_job *job, void *arg)
{
    (void)job;
    spin_us((int)(intptr_t)arg);
    return 0;
}

static void ts_job_done(struct evexec_future *f, void *arg)
{
    struct ts *t = arg;
    if (evexec_future_error(f) != 0)
        t->jobs_bad++;
    evexec_future_unref(f);
    t->jobs_done++;
    t->progress++;
    ts_maybe_exit(t);
}

static void ts_call(void *arg)
{
    struct ts *t = g_ts;
    uintptr_t v = (uintptr_t)arg;
    int id = (int)(v >> TS_SEQ_BITS);
    int seq = (int)(v & ((1u << TS_SEQ_BITS) - 1));
    if (id >= TS_THREADS || seq != t->next[id])
        t->out_of_order++;
    if (id < TS_THREADS)
        t->next[id] = seq + 1;
    t->total++;
    t->progress++;
    /* Now and then a job, so that part of the time work is in flight. */
    if (tu_rng_below(&t->rng, 4096) == 0) {
        struct evexec_future *f =
            evexec_run(t->ex, ts_job, (void *)(intptr_t)tu_rng_below(&t->rng, 200));
        if (!f || evexec_future_on_done(f, ts_job_done, t) != 0) {
            t->job_submit_failures++;
        } else {
            t->jobs_submitted++;
        }
    }
    ts_maybe_exit(t);
}

static void *ts_thread_main(void *p)
{
    struct ts_thread *me = p;
    struct ts *t = me->t;
    tu_gate_pass(&t->start);
    unsigned burst = 1 + tu_rng_below(&me->rng, 1024);
    for (int i = 0; i < t->per_thread; i++) {
        uintptr_t v = ((uintptr_t)me->id << TS_SEQ_BITS) | (uintptr_t)i;
        if (evexec_call_soon_threadsafe(t->ex, ts_call, (void *)v) != 0)
            atomic_fetch_add(&t->call_failures, 1);
        if (--burst == 0) {
            burst = 1 + tu_rng_below(&me->rng, 1024);
            if (tu_rng_below(&me->rng, 8) == 0) {
                /* Long enough for the loop to drain everything and sleep. */
                atomic_fetch_add(&t->pauses, 1);
                tu_sleep_us(1000 + tu_rng_below(&me->rng, 2000));
            } else {
                tu_sleep_us(tu_rng_below(&me->rng, 200));
            }
        }
    }
    return NULL;
}

static void ts_watchdog(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct ts *t = arg;
    if (t->progress != t->wd_last) {
        t->wd_last = t->progress;
        t->wd_since = tu_now_us();
    } else if (tu_now_us() - t->wd_since > (int64_t)TU_DEADLINE_MS * 1000) {
        t->wd_fired = 1;
        event_base_loopbreak(t->base);
    }
}

static void test_threadsafe_calls(void **state)
{
    (void)state;
    struct ts *t = xcalloc(1, sizeof *t);
    g_ts = t;
    t->rng = seed_for("threadsafe_calls");
    t->per_thread = tu_stress_size(50000, 100000);
    t->expected = (long)t->per_thread * TS_THREADS;
    atomic_init(&t->call_failures, 0);
    atomic_init(&t->pauses, 0);
    tu_gate_init(&t->start);
    t->base = event_base_new();
    assert_non_null(t->base);
    struct evexec_pool *pool = tu_pool_new(WORKERS, 0);
    assert_non_null(pool);
    t->ex = evexec_new(t->base, pool);
    assert_non_null(t->ex);
    assert_int_equal(evexec_get_keepalive(t->ex), 1);

    t->wd = event_new(t->base, -1, EV_PERSIST, ts_watchdog, t);
    assert_non_null(t->wd);
    struct timeval sec = { 1, 0 };
    t->wd_since = tu_now_us();
    assert_int_equal(event_add(t->wd, &sec), 0);

    struct ts_thread th[TS_THREADS];
    for (int k = 0; k < TS_THREADS; k++) {
        th[k] = (struct ts_thread){ .t = t, .id = k, .rng = t->rng + 77 * (uint64_t)(k + 1) };
        assert_int_equal(pthread_create(&th[k].th, NULL, ts_thread_main, &th[k]), 0);
    }
    tu_gate_open(&t->start);
    int rc = event_base_dispatch(t->base);
    for (int k = 0; k < TS_THREADS; k++)
        pthread_join(th[k].th, NULL);
    event_free(t->wd);

    printf("stress threadsafe_calls: %d threads x %d calls, %ld ran, %d jobs, "
           "%d idle pauses\n", TS_THREADS, t->per_thread, t->total, t->jobs_submitted,
           atomic_load(&t->pauses));
    if (t->wd_fired)
        fail_msg("watchdog: no progress for %d ms; %ld of %ld calls ran, %d of %d jobs",
                 TU_DEADLINE_MS, t->total, t->expected, t->jobs_done, t->jobs_submitted);
    assert_int_not_equal(rc, -1);
    assert_int_equal(atomic_load(&t->call_failures), 0);
    assert_int_equal(t->job_submit_failures, 0);
    assert_int_equal(t->total, t->expected);
    assert_int_equal(t->out_of_order, 0);
    for (int k = 0; k < TS_THREADS; k++)
        assert_int_equal(t->next[k], t->per_thread);
    assert_int_equal(t->jobs_bad, 0);
    assert_int_equal(t->jobs_done, t->jobs_submitted);
    evexec_free(t->ex);
    evexec_pool_free(pool);
    event_base_free(t->base);
    tu_gate_destroy(&t->start);
    free(t);
    g_ts = NULL;
}

/* ---- cancel racing completion ------------------------------------------------- */

#define CR_BATCH 32

enum { CR_NONE, CR_BEFORE, CR_DURING, CR_UNDELIVERED, CR_DELIVERED, CR_KINDS };

struct cr_job {
    int spin;               /* microseconds */
    int nresults;           /* 0-2: the second replaces the first */
    int ret;                /* 0 or EIO */
    atomic_int phase;       /* 0 queued, 1 running, 2 returned */
    atomic_int ran;
    atomic_int saw_cancel;
    atomic_int results_set;
    atomic_int frees;
    /* loop thread only */
    int plan;               /* 0 cancel at a random moment, 1 never, 2 after delivery */
    int taken;
    int when;               /* CR_* seen at the cancel */
    int calls;
    int bad;                /* what went wrong, for the message */
};

/* One batch being delivered. */
struct cr_batch {
    struct cr_job *jobs;
    int k;
};

static int cr_batch_delivered(void *arg)
{
    struct cr_batch *b = arg;
    for (int i = 0; i < b->k; i++)
        if (b->jobs[i].calls == 0)
            return 0;
    return 1;
}

static int cr_fn(struct evexec_job *job, void *arg)
{
    struct cr_job *j = arg;
    atomic_fetch_add(&j->ran, 1);
    atomic_store(&j->phase, 1);
    spin_us(j->spin);
    for (int k = 0; k < j->nresults; k++) {
        atomic_fetch_add(&j->results_set, 1);
        evexec_job_set_result(job, tu_result_new(&j->frees, k), tu_result_free);
    }
    atomic_store(&j->saw_cancel, evexec_job_cancelled(job));
    atomic_store(&j->phase, 2);
    return j->ret;
}

static void cr_cb(struct evexec_future *f, void *arg)
{
    struct cr_job *j = arg;
    j->calls++;
    int err = evexec_future_error(f);
    struct tu_result *r = evexec_future_result(f);
    if (!evexec_future_done(f)) {
        j->bad = 1;
    } else if (j->taken) {
        if (err != ECANCELED || r)
            j->bad = 2;
    } else if (err != j->ret || atomic_load(&j->ran) != 1 || atomic_load(&j->saw_cancel)) {
        j->bad = 3;
    } else if (err == 0 && j->nresults ? !r || r->value != j->nresults - 1 : r != NULL) {
        j->bad = 4;
    } else if (j->plan == 2) {
        /* After delivery: refused, and nothing changes. */
        if (evexec_future_cancel(f) != EALREADY || evexec_future_error(f) != err ||
            evexec_future_result(f) != r)
            j->bad = 5;
        else
            j->when = CR_DELIVERED;
    }
    evexec_future_unref(f);
}

static void test_cancel_race(void **state)
{
    (void)state;
    static const char *const why[] = {
        "ok", "not done in its callback", "a taken cancel did not end it ECANCELED",
        "an uncancelled job did not end with its own outcome, ran once, unasked to cancel",
        "wrong result", "a cancel after delivery was not EALREADY or changed it",
    };
    uint64_t rng = seed_for("cancel_race");
    int n = tu_stress_size(20000, 500000);
    struct cr_job *jobs = xcalloc((size_t)n, sizeof *jobs);
    int bad_rc = 0, count[CR_KINDS] = { 0 };
    struct event_base *base = event_base_new();
    struct evexec_pool *pool = tu_pool_new(WORKERS, 0);
    assert_non_null(base);
    assert_non_null(pool);
    struct evexec *ex = evexec_new(base, pool);
    assert_non_null(ex);

    struct evexec_future *futs[CR_BATCH];
    int order[CR_BATCH];
    for (int first = 0; first < n; first += CR_BATCH) {
        struct cr_batch b = { &jobs[first], n - first < CR_BATCH ? n - first : CR_BATCH };
        for (int i = 0; i < b.k; i++) {
            struct cr_job *j = &b.jobs[i];
            j->spin = tu_rng_below(&rng, 4) == 0 ? 0 : 20 + (int)tu_rng_below(&rng, 130);
            j->nresults = (int)tu_rng_below(&rng, 3);
            j->ret = tu_rng_below(&rng, 8) == 0 ? EIO : 0;
            unsigned p = tu_rng_below(&rng, 8);
            j->plan = p == 0 ? 1 : p == 1 ? 2 : 0;
            futs[i] = evexec_run(ex, cr_fn, j);
            assert_non_null(futs[i]);
            assert_int_equal(evexec_future_on_done(futs[i], cr_cb, j), 0);
            /* The callback drops the first reference; this one stays
             * until the batch is delivered, so cancel may run late. */
            evexec_future_ref(futs[i]);
            order[i] = i;
        }
        for (int i = b.k - 1; i > 0; i--) {
            int r = (int)tu_rng_below(&rng, (unsigned)i + 1);
            int tmp = order[i];
            order[i] = order[r];
            order[r] = tmp;
        }
        /* Cancel in random order, a random few microseconds apart: some
         * jobs are still queued, some run, some have returned but are not
         * delivered (the loop is busy here, not draining). */
        for (int o = 0; o < b.k; o++) {
            int i = order[o];
            struct cr_job *j = &b.jobs[i];
            spin_us((int)tu_rng_below(&rng, 20));
            if (j->plan != 0)
                continue;
            int was_done = evexec_future_done(futs[i]);
            int ph = atomic_load(&j->phase);
            int rc = evexec_future_cancel(futs[i]);
            if (was_done ? rc != EALREADY : rc != 0)
                bad_rc++;
            if (rc == 0) {
                j->taken = 1;
                j->when = ph == 0 ? CR_BEFORE : ph == 1 ? CR_DURING : CR_UNDELIVERED;
            }
        }
        int rc = loop_until(base, cr_batch_delivered, &b, NULL);
        if (rc != 0)
            fail_msg("jobs %d-%d: not all delivered (%s)", first, first + b.k - 1,
                     evexec_strerror(rc));
        for (int i = 0; i < b.k; i++)
            evexec_future_unref(futs[i]);
    }
    evexec_free(ex);
    assert_int_equal(evexec_pool_shutdown(pool, EVEXEC_SHUTDOWN_WAIT), 0);
    assert_int_equal(bad_rc, 0);
    int never_ran = 0;
    for (int i = 0; i < n; i++) {
        struct cr_job *j = &jobs[i];
        int ran = atomic_load(&j->ran);
        if (j->calls != 1)
            fail_msg("job %d: callback ran %d times", i, j->calls);
        if (j->bad)
            fail_msg("job %d (cancel %s, ran %d): %s", i, j->taken ? "taken" : "not taken",
                     ran, why[j->bad]);
        if (ran > 1 || (ran == 0 && !j->taken))
            fail_msg("job %d ran %d times (cancel %staken)", i, ran, j->taken ? "" : "not ");
        if (atomic_load(&j->frees) != atomic_load(&j->results_set))
            fail_msg("job %d: %d results set, %d destructor calls", i,
                     atomic_load(&j->results_set), atomic_load(&j->frees));
        never_ran += ran == 0;
        count[j->when]++;
    }
    printf("stress cancel_race: %d jobs; cancels taken seen queued %d, running %d, "
           "returned undelivered %d; refused after delivery %d; no cancel taken %d; "
           "%d never ran\n", n, count[CR_BEFORE], count[CR_DURING], count[CR_UNDELIVERED],
           count[CR_DELIVERED], count[CR_NONE], never_ran);
    evexec_pool_free(pool);
    event_base_free(base);
    free(jobs);
}

/* ---- wait_for's timer racing completion ------------------------------------------ */

struct wf_job {
    int spin;               /* microseconds, cut short by a cancel */
    int set_result;
    int ret;                /* 0 or EIO */
    atomic_int ran;
    atomic_int results_set;
    atomic_int frees;
    /* loop thread only */
    struct wf *w;
    struct evexec_future *inner;
    int inner_calls, wf_calls;
    int inner_err, wf_err;
    int bad;
};

struct wf {
    struct evexec *ex;
    uint64_t rng;
    struct wf_job *jobs;
    int n, window;
    int submitted, finished;    /* finished: both callbacks ran */
    int submit_failures;
    long progress;
};

static int wf_fn(struct evexec_job *job, void *arg)
{
    struct wf_job *j = arg;
    atomic_fetch_add(&j->ran, 1);
    int64_t end = tu_now_us() + j->spin;
    while (tu_now_us() < end && !evexec_job_cancelled(job))
        ;
    if (j->set_result) {
        atomic_fetch_add(&j->results_set, 1);
        evexec_job_set_result(job, tu_result_new(&j->frees, 7), tu_result_free);
    }
    return j->ret;
}

static void wf_submit(struct wf *w);

static void wf_finished(struct wf_job *j)
{
    struct wf *w = j->w;
    w->finished++;
    w->progress++;
    while (w->submitted < w->n && w->submitted - w->finished < w->window)
        wf_submit(w);
}

static void wf_inner_cb(struct evexec_future *f, void *arg)
{
    struct wf_job *j = arg;
    j->inner_calls++;
    j->inner_err = evexec_future_error(f);
    struct tu_result *r = evexec_future_result(f);
    if (j->inner_err == ECANCELED ? r != NULL
        : j->inner_err != j->ret || atomic_load(&j->ran) != 1 ||
          (j->ret == 0 && j->set_result ? !r || r->value != 7 : r != NULL))
        j->bad = 1;
    evexec_future_unref(f);
    j->inner = NULL;
    if (j->wf_calls)
        wf_finished(j);
}

static void wf_cb(struct evexec_future *f, void *arg)
{
    struct wf_job *j = arg;
    j->wf_calls++;
    j->wf_err = evexec_future_error(f);
    void *r = evexec_future_result(f);
    if (j->wf_err == ETIMEDOUT) {
        if (r)
            j->bad = 2;
    } else {
        /* The inner future's own outcome, and it has ended: its callback,
         * added before the wait_for's, has run. */
        if (!j->inner_calls || j->wf_err != j->inner_err || j->wf_err == ECANCELED)
            j->bad = 3;
        else if (j->wf_err == 0 && j->set_result ? !r || ((struct tu_result *)r)->value != 7
                                                 : r != NULL)
            j->bad = 4;
    }
    evexec_future_unref(f);
    if (j->inner_calls)
        wf_finished(j);
}

static void wf_submit(struct wf *w)
{
    struct wf_job *j = &w->jobs[w->submitted++];
    j->w = w;
    j->spin = (int)tu_rng_below(&w->rng, 1001);
    j->set_result = tu_rng_below(&w->rng, 3) == 0;
    j->ret = tu_rng_below(&w->rng, 8) == 0 ? EIO : 0;
    unsigned t = tu_rng_below(&w->rng, 16);
    struct timeval tv = { 0, t == 0 ? 0 : (suseconds_t)tu_rng_below(&w->rng, 1001) };
    /* The inner callback is added before the wait_for exists, so it runs
     * before the wait_for learns of the inner future's end. */
    j->inner = evexec_run(w->ex, wf_fn, j);
    if (!j->inner || evexec_future_on_done(j->inner, wf_inner_cb, j) != 0) {
        w->submit_failures++;
        j->inner_calls = j->wf_calls = 1;   /* not waited for; the test fails */
        w->finished++;
        return;
    }
    struct evexec_future *wfut = evexec_wait_for(w->ex, j->inner, &tv);
    if (!wfut || evexec_future_on_done(wfut, wf_cb, j) != 0) {
        w->submit_failures++;
        j->inner_calls = j->wf_calls = 1;   /* not waited for; the test fails */
        w->finished++;
        return;
    }
}

static int wf_all_finished(void *arg)
{
    struct wf *w = arg;
    return w->finished >= w->n;
}

static void test_wait_for_race(void **state)
{
    (void)state;
    static const char *const why[] = {
        "ok", "the inner future's outcome is not the job's, nor ECANCELED without result",
        "a timed-out wait_for has a result",
        "a wait_for that did not time out does not carry the inner future's outcome",
        "a wait_for has the wrong result",
    };
    struct wf w;
    memset(&w, 0, sizeof w);
    w.rng = seed_for("wait_for_race");
    w.n = tu_stress_size(4000, 100000);
    w.window = WORKERS;   /* jobs start about when submitted */
    w.jobs = xcalloc((size_t)w.n, sizeof *w.jobs);
    struct event_base *base = precise_base_new();
    struct evexec_pool *pool = tu_pool_new(WORKERS, 0);
    assert_non_null(pool);
    w.ex = evexec_new(base, pool);
    assert_non_null(w.ex);

    while (w.submitted < w.n && w.submitted < w.window)
        wf_submit(&w);
    int rc = loop_until(base, wf_all_finished, &w, &w.progress);
    if (rc != 0)
        fail_msg("%d of %d jobs finished (%s)", w.finished, w.n, evexec_strerror(rc));
    assert_int_equal(w.submit_failures, 0);
    evexec_free(w.ex);
    assert_int_equal(evexec_pool_shutdown(pool, EVEXEC_SHUTDOWN_WAIT), 0);

    int timed_out = 0, ran_cancelled = 0;
    for (int i = 0; i < w.n; i++) {
        struct wf_job *j = &w.jobs[i];
        if (j->inner_calls != 1 || j->wf_calls != 1)
            fail_msg("job %d: inner callback ran %d times, wait_for's %d times", i,
                     j->inner_calls, j->wf_calls);
        if (j->bad)
            fail_msg("job %d (inner %s, wait_for %s): %s", i, evexec_strerror(j->inner_err),
                     evexec_strerror(j->wf_err), why[j->bad]);
        if ((j->wf_err == ETIMEDOUT) != (j->inner_err == ECANCELED))
            fail_msg("job %d: wait_for ended %s but the inner future %s", i,
                     evexec_strerror(j->wf_err), evexec_strerror(j->inner_err));
        if (atomic_load(&j->ran) > 1 || (atomic_load(&j->ran) == 0 && j->inner_err != ECANCELED))
            fail_msg("job %d ran %d times", i, atomic_load(&j->ran));
        if (atomic_load(&j->frees) != atomic_load(&j->results_set))
            fail_msg("job %d: %d results set, %d destructor calls", i,
                     atomic_load(&j->results_set), atomic_load(&j->frees));
        timed_out += j->wf_err == ETIMEDOUT;
        ran_cancelled += j->wf_err == ETIMEDOUT && atomic_load(&j->ran);
    }
    printf("stress wait_for_race: %d jobs, %d timed out (%d of them had started), "
           "%d completed first\n", w.n, timed_out, ran_cancelled, w.n - timed_out);
    evexec_pool_free(pool);
    event_base_free(base);
    free(w.jobs);
}

/* ---- submissions racing shutdown ----------------------------------------------- */

#define SD_LOOPS 3
#define SD_CAP 3000         /* most submissions per loop per round */

struct sd_round {
    struct evexec_pool *pool;
    int flags;
    atomic_int after_wait;      /* shutdown(WAIT) has returned */
    atomic_int late_running;    /* jobs still running after that */
    atomic_int results_set, frees;
    struct tu_gate start;       /* the loops have their evexecs */
};

struct sd_job {
    struct sd_loop *l;
    int spin;
    int from_cb;
    int accepted;
    int refused;                /* errno of a refused submission */
    atomic_int ran;
    /* loop thread only */
    int calls;
    int err;
    int result_ok;
};

struct sd_loop {
    struct sd_round *r;
    uint64_t rng;
    struct evexec *ex;
    struct sd_job jobs[SD_CAP];
    int attempts, accepted, done;
    int stopped;                /* a submission was refused with ESHUTDOWN */
    int accepted_after_stop;    /* must stay 0 */
    int refused_other;          /* refusals other than ESHUTDOWN and EAGAIN */
    int refused_again;          /* EAGAIN */
    int eagain_pending;         /* the last submission was refused EAGAIN */
    int wait_rc;
    long progress;
};

static int sd_fn(struct evexec_job *job, void *arg)
{
    struct sd_job *j = arg;
    struct sd_round *r = j->l->r;
    atomic_fetch_add(&j->ran, 1);
    spin_us(j->spin);
    atomic_fetch_add(&r->results_set, 1);
    evexec_job_set_result(job, tu_result_new(&r->frees, 42), tu_result_free);
    if (atomic_load(&r->after_wait))
        atomic_fetch_add(&r->late_running, 1);
    return 0;
}

static void sd_cb(struct evexec_future *f, void *arg);

static void sd_submit(struct sd_loop *l, int from_cb)
{
    if (l->attempts >= SD_CAP)
        return;
    /* A submission refused with EAGAIN leaves its slot to the next one:
     * had its function run anyway, the slot would show it (ran twice, or
     * ran while refused). */
    struct sd_job *j = &l->jobs[l->attempts++];
    j->l = l;
    j->spin = (int)tu_rng_below(&l->rng, 20);
    j->from_cb = from_cb;
    errno = 0;
    struct evexec_future *f = evexec_run(l->ex, sd_fn, j);
    if (!f) {
        j->refused = errno;
        if (errno == ESHUTDOWN)
            l->stopped = 1;
        else if (errno == EAGAIN) {
            l->refused_again++;
            l->attempts--;
            l->eagain_pending = 1;
        }
        else
            l->refused_other++;
        return;
    }
    if (l->stopped)
        l->accepted_after_stop++;
    j->accepted = 1;
    l->accepted++;
    if (evexec_future_on_done(f, sd_cb, j) != 0)
        l->refused_other++;     /* counted as a failure */
}

static void sd_cb(struct evexec_future *f, void *arg)
{
    struct sd_job *j = arg;
    struct sd_loop *l = j->l;
    j->calls++;
    j->err = evexec_future_error(f);
    struct tu_result *r = evexec_future_result(f);
    j->result_ok = j->err == 0 ? r && r->value == 42 : r == NULL;
    evexec_future_unref(f);
    l->done++;
    l->progress++;
    if (!l->stopped && tu_rng_below(&l->rng, 2) == 0)
        sd_submit(l, 1);
}

static int sd_all_done(void *arg)
{
    struct sd_loop *l = arg;
    return l->done == l->accepted;
}

static void sd_body(struct evexec *ex, void *arg)
{
    struct sd_loop *l = arg;
    struct event_base *base = evexec_get_base(ex);
    l->ex = ex;
    tu_gate_pass(&l->r->start);
    while (!l->stopped && l->attempts < SD_CAP) {
        sd_submit(l, 0);
        if (l->eagain_pending) {
            /* The queue is full: let it drain a little. */
            l->eagain_pending = 0;
            event_base_loop(base, EVLOOP_NONBLOCK);
            tu_sleep_us((long)tu_rng_below(&l->rng, 50));
        } else if (l->attempts % 8 == 0) {
            event_base_loop(base, EVLOOP_NONBLOCK);
        }
    }
    if (l->stopped && l->attempts < SD_CAP)
        sd_submit(l, 0);        /* refused again */
    l->wait_rc = loop_until(base, sd_all_done, l, &l->progress);
}

/* Checks one loop of a round; returns its accepted jobs that never ran. */
static int sd_check(struct sd_loop *l, int round, int which)
{
    int flags = l->r->flags, never_ran = 0;
    if (l->wait_rc)
        fail_msg("round %d loop %d: %d of %d futures ended (%s)", round, which, l->done,
                 l->accepted, evexec_strerror(l->wait_rc));
    if (l->refused_other || l->accepted_after_stop)
        fail_msg("round %d loop %d: %d refusals neither ESHUTDOWN nor EAGAIN, "
                 "%d accepted after an ESHUTDOWN", round, which, l->refused_other,
                 l->accepted_after_stop);
    for (int i = 0; i < l->attempts; i++) {
        struct sd_job *j = &l->jobs[i];
        int ran = atomic_load(&j->ran);
        if (!j->accepted) {
            if (ran)
                fail_msg("round %d loop %d job %d: refused (%s) yet ran", round, which, i,
                         evexec_strerror(j->refused));
            continue;
        }
        if (j->calls != 1 || ran > 1)
            fail_msg("round %d loop %d job %d: callback ran %d times, job %d times", round,
                     which, i, j->calls, ran);
        if (!j->result_ok)
            fail_msg("round %d loop %d job %d: wrong result for %s", round, which, i,
                     evexec_strerror(j->err));
        if (ran ? j->err != 0
                : !(j->err == ECANCELED && (flags & EVEXEC_SHUTDOWN_CANCEL)) &&
                  !(j->err == ESHUTDOWN && j->from_cb))
            fail_msg("round %d loop %d job %d (from %s, shutdown flags %d): ran %d, ended %s",
                     round, which, i, j->from_cb ? "a callback" : "the loop", flags, ran,
                     evexec_strerror(j->err));
        if (!ran && !j->from_cb && !(flags & EVEXEC_SHUTDOWN_CANCEL))
            fail_msg("round %d loop %d job %d: queued before a shutdown without CANCEL, "
                     "never ran", round, which, i);
        never_ran += !ran;
    }
    return never_ran;
}

static void test_submit_vs_shutdown(void **state)
{
    (void)state;
    static const int flag_set[] = { 0, EVEXEC_SHUTDOWN_WAIT, EVEXEC_SHUTDOWN_CANCEL,
                                    EVEXEC_SHUTDOWN_WAIT | EVEXEC_SHUTDOWN_CANCEL };
    static const size_t queue_set[] = { 0, 0, 4, 64 };
    uint64_t rng = seed_for("submit_vs_shutdown");
    int rounds = tu_stress_size(60, 1000);
    struct sd_loop *l = xcalloc(SD_LOOPS, sizeof *l);
    long late_new = 0;
    long accepted = 0, refused_shutdown = 0, refused_again = 0, never_ran = 0;
    for (int round = 0; round < rounds; round++) {
        struct sd_round r;
        memset(&r, 0, sizeof r);
        r.flags = flag_set[tu_rng_below(&rng, 4)];
        struct evexec_pool_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.max_threads = WORKERS;
        cfg.max_queued = queue_set[tu_rng_below(&rng, 4)];
        r.pool = evexec_pool_new(&cfg);
        assert_non_null(r.pool);
        tu_gate_init(&r.start);
        /* Now and then the shutdown races the loops' evexec_new() too. */
        int race_new = tu_rng_below(&rng, 8) == 0;
        if (race_new)
            tu_gate_open(&r.start);
        struct tu_loop loops[SD_LOOPS];
        for (int k = 0; k < SD_LOOPS; k++) {
            memset(&l[k], 0, sizeof l[k]);
            l[k].r = &r;
            l[k].rng = tu_rng_next(&rng);
            loops[k] = (struct tu_loop){ .pool = r.pool, .body = sd_body, .arg = &l[k] };
            assert_int_equal(tu_loop_start(&loops[k]), 0);
        }
        if (!race_new) {
            assert_int_equal(tu_gate_wait_arrived(&r.start, SD_LOOPS), 0);
            tu_gate_open(&r.start);
        }
        tu_sleep_us((long)tu_rng_below(&rng, 2000));
        assert_int_equal(evexec_pool_shutdown(r.pool, r.flags), 0);
        if (r.flags & EVEXEC_SHUTDOWN_WAIT)
            atomic_store(&r.after_wait, 1);
        for (int k = 0; k < SD_LOOPS; k++) {
            int e = tu_loop_join(&loops[k]);
            /* Only a loop that raced the shutdown may find it done. */
            if (e != 0 && !(race_new && e == ESHUTDOWN))
                fail_msg("round %d loop %d: evexec_new failed: %s", round, k,
                         evexec_strerror(e));
            late_new += e != 0;
        }
        tu_gate_destroy(&r.start);
        evexec_pool_free(r.pool);
        for (int k = 0; k < SD_LOOPS; k++) {
            never_ran += sd_check(&l[k], round, k);
            accepted += l[k].accepted;
            refused_again += l[k].refused_again;
            refused_shutdown += l[k].attempts - l[k].accepted;
        }
        if (atomic_load(&r.late_running))
            fail_msg("round %d: %d jobs still ran after shutdown(flags %d) returned", round,
                     atomic_load(&r.late_running), r.flags);
        assert_int_equal(atomic_load(&r.frees), atomic_load(&r.results_set));
    }
    printf("stress submit_vs_shutdown: %d rounds x %d loops, %ld accepted (%ld never ran), "
           "%ld refused ESHUTDOWN, %ld refused EAGAIN, %ld evexec_new refused ESHUTDOWN\n",
           rounds, SD_LOOPS, accepted, never_ran, refused_shutdown, refused_again, late_new);
    free(l);
}

/* ---- evexec_free racing running jobs; freed fd numbers reused ------------------ */

#define FR_JOBS 12
#define FR_MAXFD 4096

struct fr_job {
    int spin;
    int set_result;
    atomic_int ran;
    /* loop thread only */
    int calls;
    int err;
    int result_ok;
};

struct fr_round {
    struct fr_job jobs[FR_JOBS];
    atomic_int results_set, frees;
};

static atomic_int *g_fr_frees, *g_fr_set;

static int fr_fn(struct evexec_job *job, void *arg)
{
    struct fr_job *j = arg;
    atomic_fetch_add(&j->ran, 1);
    spin_us(j->spin);
    if (j->set_result) {
        atomic_fetch_add(g_fr_set, 1);
        evexec_job_set_result(job, tu_result_new(g_fr_frees, 5), tu_result_free);
    }
    return 0;
}

static void fr_cb(struct evexec_future *f, void *arg)
{
    struct fr_job *j = arg;
    j->calls++;
    j->err = evexec_future_error(f);
    struct tu_result *r = evexec_future_result(f);
    j->result_ok = j->err == 0 && j->set_result ? r && r->value == 5 : r == NULL;
    evexec_future_unref(f);
}

/* Mark the open fds in set (one byte each); returns 0 or -1 when
 * /proc/self/fd cannot be read. */
static int fd_snapshot(unsigned char *set)
{
    memset(set, 0, FR_MAXFD);
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd >= 0 && fd < FR_MAXFD && fd != dirfd(d))
            set[fd] = 1;
    }
    closedir(d);
    return 0;
}

/* The fds opened after evexec_free(): eventfds (where the system has
 * them), pipes and socket pairs,
 * in a random order of kinds, so that any of them may take the evexec's
 * old numbers.  Only ends that can receive bytes are listed to read. */
struct fr_fds {
    int fd[32];
    int n;
    int readable[32];       /* fds whose reads show bytes written to any of the fds */
    int nr;
};

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    assert_true(fl >= 0);
    assert_int_equal(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

static void fr_open(struct fr_fds *s, uint64_t *rng)
{
    memset(s, 0, sizeof *s);
    unsigned first = tu_rng_below(rng, 3);
    for (unsigned k = 0; k < 3; k++) {
        switch ((first + k) % 3) {
        case 0:
#ifdef HAVE_EVENTFD
            for (int i = 0; i < 2; i++) {
                int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
                assert_true(fd >= 0);
                s->fd[s->n++] = fd;
                s->readable[s->nr++] = fd;
            }
#endif
            break;
        case 1:
            for (int i = 0; i < 3; i++) {
                int p[2];
                assert_int_equal(pipe(p), 0);
                set_nonblock(p[0]);
                set_nonblock(p[1]);
                s->fd[s->n++] = p[0];
                s->fd[s->n++] = p[1];
                s->readable[s->nr++] = p[0];    /* what lands in p[1] */
            }
            break;
        default:
            for (int i = 0; i < 2; i++) {
                int p[2];
                assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p), 0);
                set_nonblock(p[0]);
                set_nonblock(p[1]);
                s->fd[s->n++] = p[0];
                s->fd[s->n++] = p[1];
                s->readable[s->nr++] = p[0];    /* what lands in p[1] */
                s->readable[s->nr++] = p[1];    /* what lands in p[0] */
            }
            break;
        }
    }
}

static void test_free_vs_running(void **state)
{
    (void)state;
    uint64_t rng = seed_for("free_vs_running");
    int rounds = tu_stress_size(400, 20000);
    atomic_int frees, set;
    g_fr_frees = &frees;
    g_fr_set = &set;
    unsigned char *before = xcalloc(FR_MAXFD, 1), *held = xcalloc(FR_MAXFD, 1);
    const char *saved = getenv("EVEXEC_WAKEUP");
    char *saved_copy = saved ? strdup(saved) : NULL;
    long reused[2] = { 0, 0 }, held_fds[2] = { 0, 0 }, ran = 0, cancelled = 0, jobs = 0;
    int proc_ok = 1;

    for (int round = 0; round < rounds; round++) {
        int use_pipe = round % 2;
        atomic_init(&frees, 0);
        atomic_init(&set, 0);
        struct fr_round *rd = xcalloc(1, sizeof *rd);
        if (use_pipe)
            setenv("EVEXEC_WAKEUP", "pipe", 1);
        else
            unsetenv("EVEXEC_WAKEUP");
        struct evexec_pool *pool = tu_pool_new(WORKERS, 0);
        struct event_base *base = event_base_new();
        assert_non_null(pool);
        assert_non_null(base);
        if (fd_snapshot(before) != 0)
            proc_ok = 0;
        struct evexec *ex = evexec_new(base, pool);
        assert_non_null(ex);
        if (proc_ok && fd_snapshot(held) == 0) {
            for (int fd = 0; fd < FR_MAXFD; fd++) {
                held[fd] = held[fd] && !before[fd];
                held_fds[use_pipe] += held[fd];
            }
        }
        int k = 1 + (int)tu_rng_below(&rng, FR_JOBS);
        for (int i = 0; i < k; i++) {
            struct fr_job *j = &rd->jobs[i];
            j->spin = (int)tu_rng_below(&rng, 300);
            j->set_result = tu_rng_below(&rng, 2);
            struct evexec_future *f = evexec_run(ex, fr_fn, j);
            assert_non_null(f);
            assert_int_equal(evexec_future_on_done(f, fr_cb, j), 0);
        }
        /* Let a random part of the work finish and be delivered first. */
        switch (tu_rng_below(&rng, 3)) {
        case 0:
            break;
        case 1:
            spin_us((int)tu_rng_below(&rng, 300));
            break;
        default:
            spin_us((int)tu_rng_below(&rng, 300));
            event_base_loop(base, EVLOOP_NONBLOCK);
            break;
        }
        evexec_free(ex);
        struct fr_fds s;
        fr_open(&s, &rng);
        for (int i = 0; i < s.n; i++)
            if (proc_ok && s.fd[i] < FR_MAXFD && held[s.fd[i]])
                reused[use_pipe]++;
        /* Every job has finished, its completion included. */
        assert_int_equal(evexec_pool_shutdown(pool, EVEXEC_SHUTDOWN_WAIT), 0);
        for (int i = 0; i < s.nr; i++) {
            char buf[64];
            ssize_t got = read(s.readable[i], buf, sizeof buf);
            if (got >= 0 || errno != EAGAIN)
                fail_msg("round %d (%s): fd %d, opened after evexec_free(), read %zd (%s): "
                         "the freed evexec wrote into a reused fd number", round,
                         use_pipe ? "pipe" : "eventfd", s.readable[i], got,
                         got < 0 ? strerror(errno) : "bytes");
        }
        for (int i = 0; i < s.n; i++)
            close(s.fd[i]);
        for (int i = 0; i < k; i++) {
            struct fr_job *j = &rd->jobs[i];
            int r = atomic_load(&j->ran);
            if (j->calls != 1)
                fail_msg("round %d job %d: callback ran %d times", round, i, j->calls);
            if (r > 1 || !j->result_ok || (j->err != 0 && j->err != ECANCELED) ||
                (j->err == 0 && r != 1))
                fail_msg("round %d job %d: ran %d times, ended %s, result %s", round, i, r,
                         evexec_strerror(j->err), j->result_ok ? "right" : "wrong");
            ran += r;
            cancelled += j->err == ECANCELED;
        }
        jobs += k;
        evexec_pool_free(pool);
        event_base_free(base);
        assert_int_equal(atomic_load(&frees), atomic_load(&set));
        free(rd);
    }
    if (saved_copy)
        setenv("EVEXEC_WAKEUP", saved_copy, 1);
    else
        unsetenv("EVEXEC_WAKEUP");
    free(saved_copy);
    printf("stress free_vs_running: %d rounds, %ld jobs (%ld ran, %ld ended ECANCELED); "
           "evexec fds held: eventfd rounds %ld, pipe rounds %ld; reused after free: "
           "eventfd rounds %ld, pipe rounds %ld%s\n", rounds, jobs, ran, cancelled,
           held_fds[0], held_fds[1], reused[0], reused[1],
           proc_ok ? "" : " (no /proc/self/fd: not counted)");
    /* The test only means something if the numbers were reused. */
    if (proc_ok && rounds >= 2)
        assert_true(reused[0] > 0 && reused[1] > 0);
    free(before);
    free(held);
}

/* ---- re-entrancy from a done callback ---------------------------------------------- */

#define RE_MAXJ 40

struct re_job {
    struct re_round *r;
    int index;
    int spin;
    int set_result;
    int ret;                /* 0 or EIO */
    int from_cb;
    atomic_int ran;
    /* loop thread only */
    int calls;
    int err;
    int result_ok;
    int cancel_taken;
};

struct re_round {
    uint64_t rng;
    struct evexec_pool *pool;
    struct evexec *ex;
    struct re_job jobs[RE_MAXJ];
    struct evexec_future *futs[RE_MAXJ];    /* our references, NULL once dropped */
    int njobs;
    int designated, completions, acted;
    int do_cancel, do_submit, do_shutdown, flags, do_free, do_pool_free;
    int shut_down, freeing, freed, pool_freed;
    int bad_cancel_rc, bad_refusal, submit_failures;
    int refused_after_shutdown;
    long progress;
    atomic_int results_set, frees;
};

static int re_fn(struct evexec_job *job, void *arg)
{
    struct re_job *j = arg;
    atomic_fetch_add(&j->ran, 1);
    spin_us(j->spin);
    if (j->set_result) {
        atomic_fetch_add(&j->r->results_set, 1);
        evexec_job_set_result(job, tu_result_new(&j->r->frees, j->index), tu_result_free);
    }
    return j->ret;
}

static void re_cb(struct evexec_future *f, void *arg);

static struct re_job *re_submit(struct re_round *r, int from_cb)
{
    if (r->njobs >= RE_MAXJ)
        return NULL;
    struct re_job *j = &r->jobs[r->njobs];
    memset(j, 0, sizeof *j);
    j->r = r;
    j->index = r->njobs;
    j->spin = (int)tu_rng_below(&r->rng, 60);
    j->set_result = tu_rng_below(&r->rng, 2);
    j->ret = tu_rng_below(&r->rng, 6) == 0 ? EIO : 0;
    j->from_cb = from_cb;
    errno = 0;
    struct evexec_future *f = evexec_run(r->ex, re_fn, j);
    if (!f) {
        if (!(r->shut_down && errno == ESHUTDOWN))
            r->submit_failures++;
        else
            r->refused_after_shutdown++;
        return NULL;
    }
    r->njobs++;
    r->futs[j->index] = f;
    if (evexec_future_on_done(f, re_cb, j) != 0)
        r->submit_failures++;
    return j;
}

static void re_act(struct re_round *r)
{
    /* Cancel a random sibling still referenced (pending or done). */
    if (r->do_cancel) {
        int live[RE_MAXJ], n = 0;
        for (int i = 0; i < r->njobs; i++)
            if (r->futs[i])
                live[n++] = i;
        if (n) {
            int i = live[tu_rng_below(&r->rng, (unsigned)n)];
            int was_done = evexec_future_done(r->futs[i]);
            int rc = evexec_future_cancel(r->futs[i]);
            if (was_done ? rc != EALREADY : rc != 0)
                r->bad_cancel_rc++;
            if (rc == 0)
                r->jobs[i].cancel_taken = 1;
        }
    }
    if (r->do_submit) {
        int m = 1 + (int)tu_rng_below(&r->rng, 4);
        for (int i = 0; i < m; i++)
            re_submit(r, 1);
    }
    if (r->do_shutdown) {
        if (evexec_pool_shutdown(r->pool, r->flags) != 0)
            r->bad_refusal++;
        r->shut_down = 1;
        /* Refused now, or a future that ends ESHUTDOWN without running. */
        re_submit(r, 1);
    }
    if (r->do_free) {
        r->freeing = 1;
        evexec_free(r->ex);
        r->freed = 1;
        memset(r->futs, 0, sizeof r->futs);     /* released by evexec_free */
        if (r->do_pool_free) {
            evexec_pool_free(r->pool);
            r->pool_freed = 1;
        }
    }
}

static void re_cb(struct evexec_future *f, void *arg)
{
    struct re_job *j = arg;
    struct re_round *r = j->r;
    j->calls++;
    j->err = evexec_future_error(f);
    struct tu_result *res = evexec_future_result(f);
    j->result_ok = j->err == 0 && j->set_result ? res && res->value == j->index : res == NULL;
    r->completions++;
    r->progress++;
    /* Every callback drops its own reference, also inside evexec_free(). */
    if (r->futs[j->index]) {
        r->futs[j->index] = NULL;
        evexec_future_unref(f);
    }
    if (!r->acted && !r->freeing && r->completions == r->designated) {
        r->acted = 1;
        re_act(r);
    }
}

static int re_round_over(void *arg)
{
    struct re_round *r = arg;
    return r->freed || r->completions == r->njobs;
}

static void test_reentrant_callbacks(void **state)
{
    (void)state;
    uint64_t rng = seed_for("reentrant_callbacks");
    int rounds = tu_stress_size(400, 20000);
    long acts[6] = { 0 }, jobs = 0, ended[4] = { 0 };
    for (int round = 0; round < rounds; round++) {
        struct re_round *r = xcalloc(1, sizeof *r);
        r->rng = tu_rng_next(&rng);
        atomic_init(&r->results_set, 0);
        atomic_init(&r->frees, 0);
        r->pool = tu_pool_new(1 + tu_rng_below(&r->rng, WORKERS), 0);
        struct event_base *base = event_base_new();
        assert_non_null(r->pool);
        assert_non_null(base);
        r->ex = evexec_new(base, r->pool);
        assert_non_null(r->ex);
        int n = 4 + (int)tu_rng_below(&r->rng, 16);
        r->designated = 1 + (int)tu_rng_below(&r->rng, (unsigned)n);
        r->do_cancel = tu_rng_below(&r->rng, 2);
        r->do_submit = tu_rng_below(&r->rng, 2);
        r->do_shutdown = tu_rng_below(&r->rng, 2);
        r->flags = (int)tu_rng_below(&r->rng, 4);      /* 0, WAIT, CANCEL, both */
        r->do_free = tu_rng_below(&r->rng, 4) != 0;
        r->do_pool_free = r->do_free && tu_rng_below(&r->rng, 2);
        for (int i = 0; i < n; i++)
            assert_non_null(re_submit(r, 0));
        int rc = loop_until(base, re_round_over, r, &r->progress);
        if (rc != 0)
            fail_msg("round %d: %d of %d callbacks ran (%s)", round, r->completions, r->njobs,
                     evexec_strerror(rc));
        if (!r->freed) {
            for (int i = 0; i < r->njobs; i++)
                assert_null(r->futs[i]);
            r->freeing = 1;
            evexec_free(r->ex);
        }
        if (!r->pool_freed)
            evexec_pool_free(r->pool);
        event_base_free(base);

        acts[0] += r->acted;
        acts[1] += r->acted && r->do_cancel;
        acts[2] += r->acted && r->do_submit;
        acts[3] += r->acted && r->do_shutdown;
        acts[4] += r->acted && r->do_free;
        acts[5] += r->acted && r->do_pool_free;
        if (!r->acted)
            fail_msg("round %d: callback %d never came (%d callbacks)", round, r->designated,
                     r->completions);
        if (r->bad_cancel_rc || r->bad_refusal || r->submit_failures)
            fail_msg("round %d: %d wrong cancel codes, %d shutdown failures, %d refused "
                     "submissions", round, r->bad_cancel_rc, r->bad_refusal,
                     r->submit_failures);
        int cancel_shutdown = r->shut_down && (r->flags & EVEXEC_SHUTDOWN_CANCEL);
        for (int i = 0; i < r->njobs; i++) {
            struct re_job *j = &r->jobs[i];
            int ran = atomic_load(&j->ran);
            int ok;
            if (j->calls != 1 || ran > 1)
                fail_msg("round %d job %d: callback ran %d times, job %d times", round, i,
                         j->calls, ran);
            if (j->cancel_taken)
                ok = j->err == ECANCELED;
            else if (j->err == j->ret)
                ok = ran == 1;
            else if (j->err == ECANCELED)
                ok = r->freed || (cancel_shutdown && !ran);
            else if (j->err == ESHUTDOWN)
                ok = j->from_cb && r->shut_down && !ran;
            else
                ok = 0;
            if (!ok || !j->result_ok)
                fail_msg("round %d job %d (from %s; cancel %staken; shutdown %s flags %d; "
                         "evexec %sfreed): ran %d, ended %s, result %s", round, i,
                         j->from_cb ? "callback" : "loop", j->cancel_taken ? "" : "not ",
                         r->shut_down ? "with" : "no", r->flags, r->freed ? "" : "not ", ran,
                         evexec_strerror(j->err), j->result_ok ? "right" : "wrong");
            ended[j->err == j->ret ? 0 : j->err == ECANCELED ? 1 : j->err == ESHUTDOWN ? 2 : 3]++;
        }
        jobs += r->njobs;
        if (atomic_load(&r->frees) != atomic_load(&r->results_set))
            fail_msg("round %d: %d results set, %d destructor calls", round,
                     atomic_load(&r->results_set), atomic_load(&r->frees));
        free(r);
    }
    printf("stress reentrant_callbacks: %d rounds (in the callback: %ld cancelled a sibling, "
           "%ld submitted, %ld shut the pool down, %ld freed the evexec, %ld then the pool); "
           "%ld jobs: %ld own outcome, %ld ECANCELED, %ld ESHUTDOWN\n", rounds, acts[1],
           acts[2], acts[3], acts[4], acts[5], jobs, ended[0], ended[1], ended[2]);
}

/* ---- idle shrink: workers exit as work arrives ------------------------------------- */

struct is {
    struct evexec *ex;
    struct event *timer;
    uint64_t rng;
    int bursts, bursts_started;
    int submitted, done, bad, submit_failures;
    int in_burst;                   /* jobs of the current burst not yet done */
    int from_timer, from_cb;
    long progress;
};

static int is_fn(struct evexec_job *job, void *arg)
{
    (void)job;
    spin_us((int)(intptr_t)arg);
    return 0;
}

static void is_burst(struct is *s, int from_cb);

static void is_cb(struct evexec_future *f, void *arg)
{
    struct is *s = arg;
    if (evexec_future_error(f) != 0)
        s->bad++;
    evexec_future_unref(f);
    s->done++;
    s->progress++;
    if (--s->in_burst > 0 || s->bursts_started == s->bursts)
        return;
    /* The burst is over: the next one after a random 0-3 ms gap, or at
     * once from this callback (handed to the pool when the pass ends). */
    unsigned gap = tu_rng_below(&s->rng, 3001);
    if (tu_rng_below(&s->rng, 4) == 0) {
        is_burst(s, 1);
    } else {
        struct timeval tv = { 0, (suseconds_t)gap };
        event_add(s->timer, &tv);
    }
}

static void is_burst(struct is *s, int from_cb)
{
    int k = 1 + (int)tu_rng_below(&s->rng, 8);
    s->bursts_started++;
    s->in_burst = k;
    if (from_cb)
        s->from_cb++;
    else
        s->from_timer++;
    for (int i = 0; i < k; i++) {
        struct evexec_future *f = evexec_run(s->ex, is_fn, (void *)(intptr_t)tu_rng_below(&s->rng, 50));
        if (!f || evexec_future_on_done(f, is_cb, s) != 0) {
            s->submit_failures++;
            s->in_burst--;
            continue;
        }
        s->submitted++;
    }
}

static void is_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    is_burst(arg, 0);
}

static int is_over(void *arg)
{
    struct is *s = arg;
    return s->submit_failures || (s->bursts_started == s->bursts && s->done == s->submitted);
}

static void test_idle_shrink(void **state)
{
    (void)state;
    struct is s;
    memset(&s, 0, sizeof s);
    s.rng = seed_for("idle_shrink");
    s.bursts = tu_stress_size(600, 20000);
    struct evexec_pool_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.max_threads = WORKERS;
    cfg.min_threads = 0;
    cfg.idle_timeout_ms = 1;
    struct evexec_pool *pool = evexec_pool_new(&cfg);
    assert_non_null(pool);
    struct event_base *base = precise_base_new();
    s.ex = evexec_new(base, pool);
    assert_non_null(s.ex);
    s.timer = evtimer_new(base, is_timer, &s);
    assert_non_null(s.timer);

    is_burst(&s, 0);
    int rc = loop_until(base, is_over, &s, &s.progress);
    struct evexec_pool_stats st = tu_stats(pool);
    if (rc != 0)
        fail_msg("burst %d of %d: %d of %d jobs done (%s): a job was stranded",
                 s.bursts_started, s.bursts, s.done, s.submitted, evexec_strerror(rc));
    assert_int_equal(s.submit_failures, 0);
    assert_int_equal(s.bad, 0);
    printf("stress idle_shrink: %d bursts (%d from timers, %d from callbacks), %d jobs, "
           "%" PRIu64 " threads started\n", s.bursts, s.from_timer, s.from_cb, s.submitted,
           st.threads_started);
    event_free(s.timer);
    evexec_free(s.ex);
    evexec_pool_free(pool);
    event_base_free(base);
}

/* ---- two loops share a pool; one is freed mid-flight ------------------------------ */

struct tl_job {
    struct tl_loop *l;
    int spin;
    int wait_cancel_us;         /* B's jobs: wait for a cancel this long */
    int ret;
    atomic_int ran;
    int calls;
    int err;
    int result_ok;
};

struct tl_loop {
    uint64_t rng;
    struct evexec *ex;
    struct event_base *base;
    struct tl_job *jobs;
    int cap;                    /* A: jobs to run; B: most jobs */
    int window;
    int submitted, done, submit_failures;
    int is_b;
    int free_at;                /* B: free after this many completions */
    int free_in_cb;             /* B: from that callback, else after leaving the loop */
    int freed, broke;
    int setup_failed;
    struct evexec_pool *pool;
    int wait_rc;
    long progress;
    atomic_int results_set, frees;
};

static int tl_fn(struct evexec_job *job, void *arg)
{
    struct tl_job *j = arg;
    atomic_fetch_add(&j->ran, 1);
    spin_us(j->spin);
    if (j->wait_cancel_us) {
        struct timespec ts = { 0, (long)j->wait_cancel_us * 1000 };
        evexec_job_wait_cancel(job, &ts);
    }
    atomic_fetch_add(&j->l->results_set, 1);
    evexec_job_set_result(job, tu_result_new(&j->l->frees, 9), tu_result_free);
    return j->ret;
}

static void tl_submit(struct tl_loop *l);

static void tl_cb(struct evexec_future *f, void *arg)
{
    struct tl_job *j = arg;
    struct tl_loop *l = j->l;
    j->calls++;
    j->err = evexec_future_error(f);
    struct tu_result *r = evexec_future_result(f);
    j->result_ok = j->err == 0 ? r && r->value == 9 : r == NULL;
    evexec_future_unref(f);
    l->done++;
    l->progress++;
    if (l->freed)
        return;                 /* inside evexec_free() */
    if (l->is_b && l->done == l->free_at) {
        if (l->free_in_cb) {
            l->freed = 1;
            evexec_free(l->ex);
        } else {
            l->broke = 1;
            event_base_loopbreak(l->base);
        }
        return;
    }
    while (l->submitted < l->cap && l->submitted - l->done < l->window)
        tl_submit(l);
}

static void tl_submit(struct tl_loop *l)
{
    struct tl_job *j = &l->jobs[l->submitted];
    j->l = l;
    j->spin = (int)tu_rng_below(&l->rng, 100);
    j->wait_cancel_us = l->is_b && tu_rng_below(&l->rng, 4) == 0 ? (int)tu_rng_below(&l->rng, 500) : 0;
    j->ret = tu_rng_below(&l->rng, 8) == 0 ? EIO : 0;
    struct evexec_future *f = evexec_run(l->ex, tl_fn, j);
    if (!f || evexec_future_on_done(f, tl_cb, j) != 0) {
        l->submit_failures++;
        l->cap = l->submitted;      /* stop */
        return;
    }
    l->submitted++;
}

static int tl_over(void *arg)
{
    struct tl_loop *l = arg;
    return l->freed || l->broke || l->done == l->cap;
}

static void *tl_main(void *arg)
{
    struct tl_loop *l = arg;
    l->base = event_base_new();
    l->ex = l->base ? evexec_new(l->base, l->pool) : NULL;
    if (l->ex) {
        while (l->submitted < l->cap && l->submitted < l->window)
            tl_submit(l);
        l->wait_rc = loop_until(l->base, tl_over, l, &l->progress);
        if (!l->freed) {
            l->freed = 1;
            evexec_free(l->ex);     /* B: with jobs in flight */
        }
    } else {
        l->setup_failed = 1;
    }
    if (l->base)
        event_base_free(l->base);
    return NULL;
}

static void tl_check(struct tl_loop *l, int round)
{
    const char *name = l->is_b ? "B (freed)" : "A";
    if (l->setup_failed || l->submit_failures)
        fail_msg("round %d loop %s: setup failed, or %d submissions failed", round, name,
                 l->submit_failures);
    if (l->wait_rc)
        fail_msg("round %d loop %s: %d of %d jobs done (%s)", round, name, l->done,
                 l->is_b ? l->free_at : l->cap, evexec_strerror(l->wait_rc));
    if (!l->is_b && l->submitted != l->cap)
        fail_msg("round %d loop A: %d of %d jobs submitted", round, l->submitted, l->cap);
    for (int i = 0; i < l->submitted; i++) {
        struct tl_job *j = &l->jobs[i];
        int ran = atomic_load(&j->ran);
        if (j->calls != 1 || ran > 1)
            fail_msg("round %d loop %s job %d: callback ran %d times, job %d times", round,
                     name, i, j->calls, ran);
        int ok = j->err == j->ret ? ran == 1 : l->is_b && j->err == ECANCELED;
        if (!ok || !j->result_ok)
            fail_msg("round %d loop %s job %d: ran %d, ended %s (its own code: %s), "
                     "result %s", round, name, i, ran, evexec_strerror(j->err),
                     evexec_strerror(j->ret), j->result_ok ? "right" : "wrong");
    }
    if (atomic_load(&l->frees) != atomic_load(&l->results_set))
        fail_msg("round %d loop %s: %d results set, %d destructor calls", round, name,
                 atomic_load(&l->results_set), atomic_load(&l->frees));
}

static void test_two_loops_one_freed(void **state)
{
    (void)state;
    uint64_t rng = seed_for("two_loops_one_freed");
    int rounds = tu_stress_size(40, 500);
    int a_jobs = 600;
    long b_cancelled = 0, b_jobs = 0, in_cb = 0;
    for (int round = 0; round < rounds; round++) {
        struct evexec_pool *pool = tu_pool_new(WORKERS, 0);
        assert_non_null(pool);
        struct tl_loop *l = xcalloc(2, sizeof *l);
        for (int k = 0; k < 2; k++) {
            l[k].rng = tu_rng_next(&rng);
            l[k].pool = pool;
            l[k].is_b = k;
            l[k].window = 16;
            atomic_init(&l[k].results_set, 0);
            atomic_init(&l[k].frees, 0);
        }
        l[0].cap = a_jobs;
        l[1].free_at = 1 + (int)tu_rng_below(&rng, (unsigned)a_jobs / 2);
        l[1].free_in_cb = tu_rng_below(&rng, 2);
        l[1].cap = l[1].free_at + 2 * l[1].window;
        for (int k = 0; k < 2; k++)
            l[k].jobs = xcalloc((size_t)l[k].cap, sizeof *l[k].jobs);
        pthread_t th[2];
        for (int k = 0; k < 2; k++)
            assert_int_equal(pthread_create(&th[k], NULL, tl_main, &l[k]), 0);
        for (int k = 0; k < 2; k++)
            pthread_join(th[k], NULL);
        /* B's jobs cut short may still run on the workers. */
        assert_int_equal(evexec_pool_shutdown(pool, EVEXEC_SHUTDOWN_WAIT), 0);
        for (int k = 0; k < 2; k++)
            tl_check(&l[k], round);
        for (int i = 0; i < l[1].submitted; i++)
            b_cancelled += l[1].jobs[i].err == ECANCELED;
        b_jobs += l[1].submitted;
        in_cb += l[1].free_in_cb;
        evexec_pool_free(pool);
        for (int k = 0; k < 2; k++)
            free(l[k].jobs);
        free(l);
    }
    printf("stress two_loops_one_freed: %d rounds, loop A %d jobs each, all with their own "
           "outcome; loop B %ld jobs, %ld ended ECANCELED by its evexec_free (%ld rounds "
           "freed from a callback)\n", rounds, a_jobs, b_jobs, b_cancelled, in_cb);
}

/* ---- the loop/worker hand-off: lost wake-ups, lost or doubled callbacks ---------- */

#define WH_THREADS 2
#define WH_MAX_JOBS 40          /* jobs a round starts with, at most */
#define WH_MAX_EXTRA 16         /* jobs its callbacks add, at most */
#define WH_MAX_EXT_CALLS 32     /* calls each outside thread makes per round, at most */
#define WH_SEQ_BITS 24
/* No progress for this long is a lost wake-up: the loop sleeps for ever. */
#ifndef WH_STALL_MS
#define WH_STALL_MS 20000
#endif

struct wh;

struct wh_job {
    struct wh *w;
    int sleep_us;               /* 0: a no-op */
    atomic_int ran;
    /* loop thread only */
    struct evexec_future *fut;  /* an evexec_run job's, until its callback */
    int from_run;               /* evexec_run (else evexec_submit) */
    int cancel_taken;
    int calls;
    int err;
};

struct wh_thread {
    struct wh *w;
    int id;
    uint64_t rng;
    pthread_t th;
    int seq;                    /* calls made */
};

struct wh {
    struct event_base *base;
    struct evexec *ex;
    /* loop thread only */
    uint64_t rng;
    int rounds, round;
    struct wh_job *jobs;
    int njobs, cap;
    int round_first, round_extra;
    int outstanding;            /* the round's callbacks still to come */
    long submitted, delivered, cancels_taken, cancels_late, bad_cancel_rc;
    long loop_calls_made, loop_calls_run, ext_calls_run;
    int ext_next[WH_THREADS];
    int out_of_order, failures, hold_bad;
    long budgets[3];            /* rounds with a count budget, a time budget, none */
    int finished;
    long progress;
    int hold_round;             /* written before the hold job is submitted */
    /* the outside threads, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int go_round, quit;
    int pushed[WH_THREADS];     /* the last round each has made all its calls for */
    atomic_long ext_calls_made;
    atomic_int ext_call_failures;
    struct wh_thread th[WH_THREADS];
    /* watchdog */
    struct event *wd;
    long wd_last;
    int64_t wd_since;
    int stalled, not_idle;
};

static struct wh *g_wh;

static void wh_round_start(struct wh *w);

/* One of the round's callbacks ran: the last one starts the next round
 * (from inside the drain, so its jobs and calls land while it goes on). */
static void wh_one_done(struct wh *w)
{
    w->progress++;
    if (--w->outstanding > 0)
        return;
    if (w->round < w->rounds) {
        wh_round_start(w);
        return;
    }
    w->finished = 1;
    w->wd_since = tu_now_us();
    pthread_mutex_lock(&w->mu);
    w->quit = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void wh_loop_call(void *arg);

static void wh_make_loop_call(struct wh *w)
{
    uintptr_t seq = (uintptr_t)w->loop_calls_made;
    if (evexec_call_soon_threadsafe(w->ex, wh_loop_call, (void *)seq) != 0) {
        w->failures++;
        return;
    }
    w->loop_calls_made++;
    w->outstanding++;
}

/* Made on the loop thread, so they run in the order made. */
static void wh_loop_call(void *arg)
{
    struct wh *w = g_wh;
    if ((long)(uintptr_t)arg != w->loop_calls_run)
        w->out_of_order++;
    w->loop_calls_run++;
    if (tu_rng_below(&w->rng, 4) == 0)
        wh_make_loop_call(w);
    wh_one_done(w);
}

/* Made by an outside thread: in its order, before the round's hold job
 * comes back (they were pushed before it was). */
static void wh_ext_call(void *arg)
{
    struct wh *w = g_wh;
    uintptr_t v = (uintptr_t)arg;
    int id = (int)(v >> WH_SEQ_BITS);
    int seq = (int)(v & ((1u << WH_SEQ_BITS) - 1));
    if (id >= WH_THREADS || seq != w->ext_next[id])
        w->out_of_order++;
    else
        w->ext_next[id] = seq + 1;
    w->ext_calls_run++;
    w->progress++;
    if (tu_rng_below(&w->rng, 8) == 0)
        wh_make_loop_call(w);
}

static void *wh_thread_main(void *p)
{
    struct wh_thread *me = p;
    struct wh *w = me->w;
    struct timespec end = tu__deadline();
    int done = 0;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->go_round == done && !w->quit)
            if (pthread_cond_timedwait(&w->cv, &w->mu, &end) == ETIMEDOUT)
                w->quit = 1;    /* the loop is stuck: the test fails */
        if (w->quit)
            break;
        int r = w->go_round;
        pthread_mutex_unlock(&w->mu);
        int k = (int)tu_rng_below(&me->rng, WH_MAX_EXT_CALLS + 1);
        for (int i = 0; i < k; i++) {
            uintptr_t v = ((uintptr_t)me->id << WH_SEQ_BITS) | (uintptr_t)me->seq;
            if (evexec_call_soon_threadsafe(w->ex, wh_ext_call, (void *)v) != 0) {
                atomic_fetch_add(&w->ext_call_failures, 1);
                continue;
            }
            me->seq++;
            atomic_fetch_add(&w->ext_calls_made, 1);
            unsigned pause = tu_rng_below(&me->rng, 16);
            if (pause == 0)
                tu_sleep_us(tu_rng_below(&me->rng, 100));
            else if (pause == 1)
                sched_yield();
        }
        pthread_mutex_lock(&w->mu);
        w->pushed[me->id] = done = r;
        pthread_cond_broadcast(&w->cv);
        end = tu__deadline();
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Keeps the round in flight until both outside threads have made their
 * calls: those are not counted (keep-alive off), this job is. */
static int wh_hold(struct evexec_job *job, void *arg)
{
    (void)job;
    struct wh *w = arg;
    struct timespec end = tu__deadline();
    int rc = 0;
    pthread_mutex_lock(&w->mu);
    int r = w->hold_round;
    for (int k = 0; k < WH_THREADS && rc != ETIMEDOUT; k++)
        while (w->pushed[k] < r && !w->quit && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&w->cv, &w->mu, &end);
    if (w->quit)
        rc = ECANCELED;
    pthread_mutex_unlock(&w->mu);
    return rc == ETIMEDOUT ? ETIMEDOUT : rc;
}

static void wh_hold_done(struct evexec_future *f, void *arg)
{
    struct wh *w = arg;
    if (evexec_future_error(f) != 0)
        w->hold_bad++;
    wh_one_done(w);
}

static int wh_job_fn(struct evexec_job *job, void *arg)
{
    (void)job;
    struct wh_job *j = arg;
    atomic_fetch_add(&j->ran, 1);
    if (j->sleep_us)
        tu_sleep_us(j->sleep_us);
    return 0;
}

static void wh_cancel(struct wh *w, struct wh_job *j)
{
    if (!j->fut || j->cancel_taken)
        return;
    int rc = evexec_future_cancel(j->fut);
    if (rc == 0) {
        j->cancel_taken = 1;
        w->cancels_taken++;
    } else if (rc == EALREADY) {
        w->cancels_late++;
    } else {
        w->bad_cancel_rc++;
    }
}

static void wh_submit(struct wh *w);

static void wh_job_done(struct evexec_future *f, void *arg)
{
    struct wh_job *j = arg;
    struct wh *w = j->w;
    j->calls++;
    j->err = evexec_future_error(f);
    if (j->fut) {
        j->fut = NULL;
        evexec_future_unref(f);
    }
    w->delivered++;
    if (tu_rng_below(&w->rng, 3) == 0)
        wh_make_loop_call(w);
    if (tu_rng_below(&w->rng, 6) == 0)
        wh_cancel(w, &w->jobs[w->round_first +
                              (int)tu_rng_below(&w->rng, (unsigned)(w->njobs - w->round_first))]);
    if (tu_rng_below(&w->rng, 8) == 0 && w->round_extra < WH_MAX_EXTRA) {
        w->round_extra++;
        wh_submit(w);
    }
    wh_one_done(w);
}

static void wh_submit(struct wh *w)
{
    assert_true(w->njobs < w->cap);
    struct wh_job *j = &w->jobs[w->njobs];
    j->w = w;
    j->sleep_us = tu_rng_below(&w->rng, 2) ? 0 : 1 + (int)tu_rng_below(&w->rng, 200);
    j->from_run = tu_rng_below(&w->rng, 3) != 0;
    if (j->from_run) {
        struct evexec_future *f = evexec_run(w->ex, wh_job_fn, j);
        if (!f || evexec_future_on_done(f, wh_job_done, j) != 0) {
            w->failures++;
            return;
        }
        j->fut = f;
    } else if (evexec_submit(w->ex, wh_job_fn, j, wh_job_done, j) != 0) {
        w->failures++;
        return;
    }
    w->njobs++;
    w->submitted++;
    w->outstanding++;
    if (tu_rng_below(&w->rng, 8) == 0)
        wh_cancel(w, j);
}

static void wh_round_start(struct wh *w)
{
    w->round++;
    /* A count budget of 1-8 (with a time budget of 1-30 us now and then),
     * a time budget alone, or none. */
    unsigned pick = tu_rng_below(&w->rng, 10);
    unsigned max_cb = pick < 7 ? 1 + tu_rng_below(&w->rng, 8) : 0;
    unsigned max_us = pick == 7 || (pick < 7 && tu_rng_below(&w->rng, 4) == 0)
                          ? 1 + tu_rng_below(&w->rng, 30) : 0;
    w->budgets[max_cb ? 0 : max_us ? 1 : 2]++;
    if (evexec_set_drain_budget(w->ex, max_cb, max_us) != 0)
        w->failures++;
    w->round_first = w->njobs;
    w->round_extra = 0;
    w->hold_round = w->round;
    struct evexec_future *hold = evexec_run(w->ex, wh_hold, w);
    if (!hold || evexec_future_on_done(hold, wh_hold_done, w) != 0) {
        w->failures++;
        return;
    }
    evexec_future_unref(hold);
    w->outstanding++;
    pthread_mutex_lock(&w->mu);
    w->go_round = w->round;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    int n = 1 + (int)tu_rng_below(&w->rng, WH_MAX_JOBS);
    for (int i = 0; i < n; i++)
        wh_submit(w);
}

/* Fails the test when nothing progressed for WH_STALL_MS; once every round
 * is over, steps aside when it is the last event, so that the dispatch
 * ends by itself (the evexec, keep-alive off, must have let go). */
static void wh_watchdog(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct wh *w = arg;
    if (w->finished && event_base_get_num_events(w->base, EVENT_BASE_COUNT_ADDED) == 1) {
        event_del(w->wd);
        return;
    }
    if (w->progress != w->wd_last) {
        w->wd_last = w->progress;
        w->wd_since = tu_now_us();
    } else if (tu_now_us() - w->wd_since > (int64_t)WH_STALL_MS * 1000) {
        if (w->finished)
            w->not_idle = 1;
        else
            w->stalled = 1;
        event_base_loopbreak(w->base);
    }
}

/* One run: spin_us is EVEXEC_SPIN_OFF or 0 (adaptive). */
static void wh_run(uint64_t seed, unsigned spin_us, const char *what)
{
    struct wh *w = xcalloc(1, sizeof *w);
    g_wh = w;
    w->rng = seed;
    w->rounds = tu_stress_size(400, 20000);
    w->cap = w->rounds * (WH_MAX_JOBS + WH_MAX_EXTRA);
    w->jobs = xcalloc((size_t)w->cap, sizeof *w->jobs);
    for (int i = 0; i < w->cap; i++)
        atomic_init(&w->jobs[i].ran, 0);
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&w->ext_calls_made, 0);
    atomic_init(&w->ext_call_failures, 0);

    struct evexec_pool_config cfg = EVEXEC_POOL_CONFIG_INIT;
    cfg.max_threads = WORKERS;
    cfg.spin_us = spin_us;
    struct evexec_pool *pool = evexec_pool_new(&cfg);
    assert_non_null(pool);
    w->base = event_base_new();
    assert_non_null(w->base);
    w->ex = evexec_new(w->base, pool);
    assert_non_null(w->ex);
    assert_int_equal(evexec_set_keepalive(w->ex, 0), 0);
    w->wd = event_new(w->base, -1, EV_PERSIST, wh_watchdog, w);
    assert_non_null(w->wd);
    struct timeval tick = { 0, 50000 };
    w->wd_since = tu_now_us();
    assert_int_equal(event_add(w->wd, &tick), 0);

    for (int k = 0; k < WH_THREADS; k++) {
        w->th[k] = (struct wh_thread){ .w = w, .id = k, .rng = tu_rng_next(&w->rng) | 1 };
        assert_int_equal(pthread_create(&w->th[k].th, NULL, wh_thread_main, &w->th[k]), 0);
    }
    wh_round_start(w);
    int rc = event_base_dispatch(w->base);
    pthread_mutex_lock(&w->mu);
    w->quit = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (int k = 0; k < WH_THREADS; k++)
        pthread_join(w->th[k].th, NULL);

    long ext_made = atomic_load(&w->ext_calls_made);
    printf("stress wakeup_handoff (spin %s): %d rounds (%ld count budgets, %ld time only, "
           "%ld none), %ld jobs (%ld cancels taken, %ld late), %ld loop calls, "
           "%ld outside calls\n", what, w->round, w->budgets[0], w->budgets[1], w->budgets[2],
           w->submitted, w->cancels_taken, w->cancels_late, w->loop_calls_made, ext_made);
    if (w->stalled)
        fail_msg("spin %s: the loop stalled in round %d of %d: %ld of %ld jobs delivered, "
                 "%ld of %ld loop calls, %ld of %ld outside calls run (a lost wake-up)", what,
                 w->round, w->rounds, w->delivered, w->submitted, w->loop_calls_run,
                 w->loop_calls_made, w->ext_calls_run, ext_made);
    if (w->not_idle)
        fail_msg("spin %s: every round over, yet the loop did not end by itself", what);
    assert_int_not_equal(rc, -1);
    assert_int_equal(w->round, w->rounds);
    assert_int_equal(w->failures, 0);
    assert_int_equal(atomic_load(&w->ext_call_failures), 0);
    assert_int_equal(w->hold_bad, 0);
    assert_int_equal(w->bad_cancel_rc, 0);
    if (w->out_of_order)
        fail_msg("spin %s: %d calls ran out of order, twice or never", what, w->out_of_order);
    assert_int_equal(w->delivered, w->submitted);
    assert_int_equal(w->loop_calls_run, w->loop_calls_made);
    assert_int_equal(w->ext_calls_run, ext_made);
    for (int k = 0; k < WH_THREADS; k++)
        assert_int_equal(w->ext_next[k], w->th[k].seq);
    for (int i = 0; i < w->njobs; i++) {
        struct wh_job *j = &w->jobs[i];
        int ran = atomic_load(&j->ran);
        if (j->calls != 1 || ran > 1)
            fail_msg("spin %s, job %d: callback ran %d times, job %d times", what, i,
                     j->calls, ran);
        if (j->cancel_taken ? j->err != ECANCELED : j->err != 0 || ran != 1)
            fail_msg("spin %s, job %d: cancel %staken, ran %d, ended %s", what, i,
                     j->cancel_taken ? "" : "not ", ran, evexec_strerror(j->err));
    }
    event_free(w->wd);
    evexec_free(w->ex);
    evexec_pool_free(pool);
    event_base_free(w->base);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w->jobs);
    free(w);
    g_wh = NULL;
}

static void test_wakeup_handoff(void **state)
{
    (void)state;
    uint64_t seed = seed_for("wakeup_handoff");
    wh_run(seed, EVEXEC_SPIN_OFF, "off");
    wh_run(tu_rng_next(&seed) | 1, 0, "adaptive");
    /* The pipe wake-up, whose drain reads a buffer at a time. */
    const char *saved = getenv("EVEXEC_WAKEUP");
    char *saved_copy = saved ? strdup(saved) : NULL;
    setenv("EVEXEC_WAKEUP", "pipe", 1);
    wh_run(tu_rng_next(&seed) | 1, EVEXEC_SPIN_OFF, "off, pipe");
    if (saved_copy)
        setenv("EVEXEC_WAKEUP", saved_copy, 1);
    else
        unsetenv("EVEXEC_WAKEUP");
    free(saved_copy);
}

/* ---- holding raced ---------------------------------------------------------- */

#define HR_JOBS 240     /* per loop and round */

struct hr_run;

struct hr_job {
    struct hr_run *r;
    int sleep_us;               /* 0 (a no-op) or 1-200 */
    int direct;                 /* submitted outside callbacks */
    long pass;                  /* the loop's pass it was submitted in */
    int refused;                /* evexec_run returned NULL */
    int calls, err;             /* loop thread */
    int cancel_taken, cancel_unstarted;
    struct evexec_future *fut;  /* ours until its callback ran */
    atomic_int ran, finished;
};

/* One loop's jobs.  The loop thread owns the plain fields; workers write
 * only the jobs' atomics.  The test reads it all after the loop ended. */
struct hr_run {
    uint64_t rng;
    struct evexec *ex[2];       /* ex[1]: a second evexec on this loop, or NULL */
    struct evexec_pool *pool;
    struct hr_job jobs[HR_JOBS];
    int n;                      /* submitted (or refused) */
    long done, pass;
    int in_cb, stop;
    int free_at, shutdown_at;   /* -1: never */
    int freed, shut, loop_rc;
    long held_seen;             /* passes that saw running > threads */
};

static int hr_job_fn(struct evexec_job *job, void *arg)
{
    (void)job;
    struct hr_job *j = arg;
    atomic_fetch_add(&j->ran, 1);
    if (j->sleep_us)
        tu_sleep_us(j->sleep_us);
    atomic_store(&j->finished, 1);
    return 0;
}

static void hr_cb(struct evexec_future *f, void *arg);

/* A burst of jobs of one evexec (mostly the first: a backlog of one owner
 * alone is what a worker holds). */
static void hr_burst(struct hr_run *r, int direct)
{
    int e = r->ex[1] && tu_rng_below(&r->rng, 4) == 0;
    int k = 1 + (int)tu_rng_below(&r->rng, 40);
    for (; k > 0 && r->n < HR_JOBS && !r->stop; k--) {
        struct hr_job *j = &r->jobs[r->n++];
        j->r = r;
        j->direct = direct;
        j->pass = r->pass;
        j->sleep_us = tu_rng_below(&r->rng, 2) ? 0 : (int)tu_rng_below(&r->rng, 201);
        j->fut = evexec_run(r->ex[e], hr_job_fn, j);
        if (!j->fut) {          /* the pool is shut down */
            j->refused = 1;
            r->stop = 1;
            break;
        }
        if (evexec_future_on_done(j->fut, hr_cb, j) != 0)
            j->err = -1;        /* fails the check of calls */
    }
}

/* Cancel a few random jobs whose callback has not run yet, among those
 * handed to the pool (a job submitted in this pass of callbacks may still
 * be in the loop's batch, which the pool never sees). */
static void hr_cancel_some(struct hr_run *r)
{
    int k = (int)tu_rng_below(&r->rng, 3);
    for (; k > 0 && r->n > 0; k--) {
        struct hr_job *j = &r->jobs[tu_rng_below(&r->rng, (unsigned)r->n)];
        if (!j->fut || (!j->direct && j->pass == r->pass && r->in_cb))
            continue;
        struct evexec_future *f = j->fut;
        if (evexec_future_cancel(f) != 0)
            continue;
        j->cancel_taken = 1;
        /* Ended at once and its function had not returned: it was taken
         * off the queue or back from its holder, so it never runs. */
        if (j->fut && evexec_future_done(f) && !atomic_load(&j->finished))
            j->cancel_unstarted = 1;
    }
}

static void hr_cb(struct evexec_future *f, void *arg)
{
    struct hr_job *j = arg;
    struct hr_run *r = j->r;
    j->calls++;
    j->err = evexec_future_error(f);
    j->fut = NULL;
    r->done++;
    evexec_future_unref(f);
    if (j->err == ESHUTDOWN)
        r->stop = 1;
    if (r->freed < 0)           /* inside evexec_free: no more work */
        return;
    r->in_cb = 1;
    if (tu_rng_below(&r->rng, 6) == 0)
        hr_burst(r, 0);
    if (tu_rng_below(&r->rng, 4) == 0)
        hr_cancel_some(r);
    r->in_cb = 0;
}

static int hr_accepted(const struct hr_run *r)
{
    int n = 0;
    for (int i = 0; i < r->n; i++)
        n += !r->jobs[i].refused;
    return n;
}

/* Between passes of the loop: bursts from outside callbacks, cancels,
 * the second evexec's free, the pool's shutdown(CANCEL). */
static int hr_step(void *arg)
{
    struct hr_run *r = arg;
    r->pass++;
    struct evexec_pool_stats st = tu_stats(r->pool);
    r->held_seen += st.running > st.threads;   /* jobs held */
    int all_done = (r->stop || r->n == HR_JOBS) && r->done == hr_accepted(r);
    if (r->ex[1] && (r->done >= r->free_at || all_done)) {
        r->freed = -1;
        evexec_free(r->ex[1]);
        r->ex[1] = NULL;
        r->freed = 1;
    }
    if (r->shutdown_at >= 0 && !r->shut && r->done >= r->shutdown_at) {
        r->shut = 1;
        r->stop = 1;
        evexec_pool_shutdown(r->pool, EVEXEC_SHUTDOWN_CANCEL);
    }
    if (!r->stop && r->n < HR_JOBS &&
        (r->done == hr_accepted(r) || tu_rng_below(&r->rng, 8) == 0))
        hr_burst(r, 1);
    if (tu_rng_below(&r->rng, 4) == 0)
        hr_cancel_some(r);
    return (r->stop || r->n == HR_JOBS) && r->done == hr_accepted(r) && !r->ex[1];
}

static void hr_drive(struct hr_run *r, struct event_base *base)
{
    hr_burst(r, 1);
    hr_burst(r, 1);
    if (r->ex[1] && r->free_at < 0)
        r->free_at = HR_JOBS;   /* freed once every job is done */
    r->loop_rc = loop_until(base, hr_step, r, &r->done);
}

static void *hr_thread(void *arg)
{
    struct hr_run *r = arg;
    struct event_base *base = event_base_new();
    r->ex[0] = base ? evexec_new(base, r->pool) : NULL;
    if (!r->ex[0]) {
        r->loop_rc = ENOMEM;
    } else {
        hr_drive(r, base);
        evexec_free(r->ex[0]);
    }
    if (base)
        event_base_free(base);
    return NULL;
}

/* Check one loop's jobs (shut: the pool was shut down with CANCEL); add up what ran and what ended ESHUTDOWN unrun. */
static void hr_check(const struct hr_run *r, int shut, long *ran, long *refused_late)
{
    assert_int_equal(r->loop_rc, 0);
    for (int i = 0; i < r->n; i++) {
        const struct hr_job *j = &r->jobs[i];
        int runs = atomic_load(&j->ran);
        if (j->refused) {
            if (runs != 0)
                fail_msg("job %d: refused, yet ran", i);
            continue;
        }
        if (j->calls != 1)
            fail_msg("job %d: callback ran %d times", i, j->calls);
        if (runs > 1)
            fail_msg("job %d: ran %d times", i, runs);
        if (j->cancel_unstarted && runs)
            fail_msg("job %d: cancelled before it started, yet ran", i);
        if (j->err == 0 && runs != 1)
            fail_msg("job %d: ended 0 without running", i);
        if (j->err != 0 && j->err != ECANCELED && j->err != ESHUTDOWN)
            fail_msg("job %d: ended %d", i, j->err);
        if (j->err == ECANCELED && !j->cancel_taken && !shut && !r->freed)
            fail_msg("job %d: ECANCELED with no cancel", i);
        *ran += runs;
        *refused_late += j->err == ESHUTDOWN && runs == 0;
    }
}

static void test_hold_race(void **state)
{
    (void)state;
    uint64_t rng = seed_for("hold_race");
    int rounds = tu_stress_size(200, 2000);
    long jobs = 0, held = 0, cancels = 0, unstarted = 0, frees = 0, shutdowns = 0, seconds = 0;
    for (int round = 0; round < rounds; round++) {
        unsigned nthreads = 2 + tu_rng_below(&rng, 3);
        struct evexec_pool *pool = tu_pool_new(nthreads, 0);
        assert_non_null(pool);
        struct event_base *base = event_base_new();
        assert_non_null(base);
        struct hr_run *r = xcalloc(2, sizeof *r);
        for (int k = 0; k < 2; k++) {
            r[k].rng = tu_rng_next(&rng);
            r[k].pool = pool;
            r[k].free_at = r[k].shutdown_at = -1;
        }
        r[0].ex[0] = evexec_new(base, pool);
        assert_non_null(r[0].ex[0]);
        if (tu_rng_below(&rng, 2)) {
            r[0].ex[1] = evexec_new(base, pool);
            assert_non_null(r[0].ex[1]);
            if (tu_rng_below(&rng, 4))
                r[0].free_at = (int)tu_rng_below(&rng, HR_JOBS / 2);
        }
        if (tu_rng_below(&rng, 3) == 0)
            r[0].shutdown_at = HR_JOBS / 4 + (int)tu_rng_below(&rng, HR_JOBS / 2);
        int second = tu_rng_below(&rng, 3) == 0;
        pthread_t th;
        if (second)
            assert_int_equal(pthread_create(&th, NULL, hr_thread, &r[1]), 0);
        hr_drive(&r[0], base);
        if (second) {
            pthread_join(th, NULL);
            seconds++;
        }
        assert_int_equal(evexec_pool_shutdown(pool, EVEXEC_SHUTDOWN_WAIT), 0);
        long ran = 0, late = 0, accepted = hr_accepted(&r[0]) + hr_accepted(&r[1]);
        hr_check(&r[0], r[0].shut, &ran, &late);
        if (second)
            hr_check(&r[1], r[0].shut, &ran, &late);
        struct evexec_pool_stats st = tu_stats(pool);
        assert_int_equal(st.queued, 0);
        assert_int_equal(st.running, 0);
        assert_int_equal(st.completed, (uint64_t)ran);
        if (st.completed + st.cancelled != (uint64_t)(accepted - late))
            fail_msg("round %d: completed %" PRIu64 " + cancelled %" PRIu64
                     " != handed to the pool %ld", round, st.completed,
                     st.cancelled, accepted - late);
        for (int k = 0; k < 2; k++)
            for (int i = 0; i < r[k].n; i++) {
                cancels += r[k].jobs[i].cancel_taken;
                unstarted += r[k].jobs[i].cancel_unstarted;
            }
        jobs += accepted;
        frees += r[0].freed && r[0].free_at < HR_JOBS;
        shutdowns += r[0].shut;
        held += r[0].held_seen + r[1].held_seen;
        evexec_free(r[0].ex[0]);
        evexec_pool_free(pool);
        event_base_free(base);
        free(r);
    }
    printf("stress hold_race: %d rounds, %ld jobs, %ld passes saw held jobs, %ld cancels taken (%ld before "
           "the start), %ld evexecs freed mid-flight, %ld shutdowns, %ld second "
           "loops; every callback once, no job twice, counts exact\n",
           rounds, jobs, held, cancels, unstarted, frees, shutdowns, seconds);
}

/* Each test's wall time, printed for `make stress` (never asserted). */
static int64_t g_test_start;

static int time_setup(void **state)
{
    (void)state;
    g_test_start = tu_now_us();
    return 0;
}

static int time_teardown(void **state)
{
    (void)state;
    printf("stress time: %.2f s\n", (double)(tu_now_us() - g_test_start) / 1e6);
    return 0;
}

#define T(name) cmocka_unit_test_setup_teardown(name, time_setup, time_teardown)

int main(void)
{
    g_seed = tu_stress_seed();
    printf("stress seed: EVEXEC_STRESS_SEED=%" PRIu64 " (size: %s)\n", g_seed,
           tu_stress_long() ? "long" : "CI");
    fflush(stdout);
    const struct CMUnitTest tests[] = {
        T(test_many_jobs),
        T(test_random_cancel),
        T(test_threadsafe_calls),
        T(test_cancel_race),
        T(test_wait_for_race),
        T(test_submit_vs_shutdown),
        T(test_free_vs_running),
        T(test_reentrant_callbacks),
        T(test_idle_shrink),
        T(test_two_loops_one_freed),
        T(test_wakeup_handoff),
        T(test_hold_race),
    };
    /* CMOCKA_TEST_FILTER=test_hold_race runs one test (wildcards allowed). */
    if (getenv("CMOCKA_TEST_FILTER"))
        cmocka_set_test_filter(getenv("CMOCKA_TEST_FILTER"));
    return cmocka_run_group_tests_name("stress", tests, NULL, NULL);
}
