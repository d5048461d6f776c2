/*
 * test_bridge.c -- evexec_run() and the bridge between pool and loop:
 * results and their destructors, error codes, cancel in every state of a
 * job, re-entrancy, run_until_complete, sleep, call_soon_threadsafe, two
 * loops on one pool, and teardown with work in flight.
 *
 * Every test runs three times: with the default wake-up channel (eventfd),
 * with EVEXEC_WAKEUP=pipe (set by the second group's setup), and with the
 * pools' opt-in spin on (TU_SPIN_US, read by tu_pool_new), where the loop
 * and the workers watch for work before they sleep.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "evexec.h"
#include "evexec-combine.h"
#include "evexec-io.h"
#include "testutil.h"

#define NWORKERS 4

static int setup(void **state)
{
    return tu_fx_setup(state, NWORKERS);
}

static int teardown(void **state)
{
    return tu_fx_teardown(state);
}

static int setup_pipe_group(void **state)
{
    (void)state;
    return setenv("EVEXEC_WAKEUP", "pipe", 1);
}

static int teardown_pipe_group(void **state)
{
    (void)state;
    return unsetenv("EVEXEC_WAKEUP");
}

static int setup_spin_group(void **state)
{
    (void)state;
    return setenv("TU_SPIN_US", "200", 1);
}

static int teardown_spin_group(void **state)
{
    (void)state;
    return unsetenv("TU_SPIN_US");
}

/* Run the loop until this evexec has nothing in flight. */
static void dispatch(struct tu_fx *fx)
{
    /* Without keep-alive, dispatch returns once nothing is in flight.
     * The evexec may be freed inside, so it stays that way. */
    if (fx->ex)
        assert_int_equal(evexec_set_keepalive(fx->ex, 0), 0);
    assert_int_not_equal(event_base_dispatch(fx->base), -1);
}

/* ---- jobs ---------------------------------------------------------------- */

static struct evexec_future *submit(struct tu_fx *fx, struct tu_job *j)
{
    struct evexec_future *f = evexec_run(fx->ex, tu_job_fn, j);
    assert_non_null(f);
    return f;
}

/* Occupy every worker with a job parked at fx->gate, so the next job
 * submitted is certainly queued.  Returns when all have arrived. */
static void park_workers(struct tu_fx *fx, struct tu_job jobs[NWORKERS],
                         struct evexec_future *futs[NWORKERS], int nresults)
{
    for (int i = 0; i < NWORKERS; i++) {
        tu_job_init(&jobs[i], &fx->frees, nresults, 0);
        jobs[i].gate = &fx->gate;
        futs[i] = submit(fx, &jobs[i]);
    }
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, NWORKERS), 0);
}

static void unref_all(struct evexec_future **futs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        evexec_future_unref(futs[i]);
}

static void watch(struct evexec_future *f, struct tu_rec *rec)
{
    tu_rec_init(rec);
    assert_int_equal(evexec_future_on_done(f, tu_rec_cb, rec), 0);
}

static void assert_rec(const struct tu_rec *rec, int error, const void *result)
{
    const char *bad = tu_rec_check(rec, error, result);
    if (bad)
        fail_msg("%s", bad);
}

/* Submit j, watch it, run the loop dry, check the outcome. */
static struct evexec_future *run_and_check(struct tu_fx *fx, struct tu_job *j, int error)
{
    struct tu_rec rec;
    struct evexec_future *f = submit(fx, j);
    watch(f, &rec);
    dispatch(fx);
    assert_rec(&rec, error, evexec_future_result(f));
    assert_int_equal(evexec_future_error(f), error);
    assert_int_equal(atomic_load(&j->ran), 1);
    return f;
}

/* ---- the wake-up channel ------------------------------------------------- */

/* The /proc link of fd into buf ("" when not open). */
static void fd_link(int fd, char buf[128])
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(path, buf, 127);
    buf[len > 0 ? len : 0] = '\0';
}

/* "eventfd", "pipe" or "other" for an open fd; NULL when it is not open. */
static const char *fd_kind(int fd)
{
    char link[128];
    fd_link(fd, link);
    if (!link[0])
        return NULL;
    if (strcmp(link, "anon_inode:[eventfd]") == 0)
        return "eventfd";
    return strncmp(link, "pipe:", 5) == 0 ? "pipe" : "other";
}

#define MAX_FD 256

struct new_fds {
    int fd[4];
    int n;
};

static int new_fds_closed(void *arg)
{
    const struct new_fds *nf = arg;
    for (int i = 0; i < nf->n; i++)
        if (fd_kind(nf->fd[i]))
            return 0;
    return 1;
}

/* EVEXEC_WAKEUP=pipe really selects a pipe, and otherwise an eventfd is
 * used (Linux); either way jobs complete, and the fds are closed once the
 * evexec is freed (a worker may drop the last reference a moment later).
 * An fd is new when its /proc link changed: pipes carry their inode there,
 * so a number freed and reused meanwhile is still told apart. */
static void test_wakeup_channel(void **state)
{
    struct tu_fx *fx = *state;
    if (!fd_kind(0) && !fd_kind(1) && !fd_kind(2))
        skip();     /* no /proc */
    const char *env = getenv("EVEXEC_WAKEUP");
#if defined(HAVE_SYS_EVENTFD_H) && defined(HAVE_EVENTFD)
    const char *dflt = "eventfd";
#else
    const char *dflt = "pipe";      /* built without eventfd */
#endif
    const char *want_kind = env && strcmp(env, "pipe") == 0 ? "pipe" : dflt;
    static char before[MAX_FD][128];
    for (int fd = 0; fd < MAX_FD; fd++)
        fd_link(fd, before[fd]);
    struct evexec *ex2 = evexec_new(fx->base, fx->pool);
    assert_non_null(ex2);
    struct new_fds nf = { { 0 }, 0 };
    for (int fd = 0; fd < MAX_FD; fd++) {
        char now[128];
        fd_link(fd, now);
        if (!now[0] || strcmp(now, before[fd]) == 0)
            continue;
        if (strcmp(fd_kind(fd), want_kind) != 0)
            fail_msg("evexec_new opened %s, wanted a %s", now, want_kind);
        assert_true(nf.n < 4);
        nf.fd[nf.n++] = fd;
    }
    assert_int_equal(nf.n, strcmp(want_kind, "pipe") == 0 ? 2 : 1);

    struct tu_job *j = tu_fx_job(fx, 1, 0);
    struct tu_rec rec;
    struct evexec_future *f = evexec_run(ex2, tu_job_fn, j);
    assert_non_null(f);
    watch(f, &rec);
    assert_int_equal(evexec_run_until_complete(ex2, f), 0);
    assert_rec(&rec, 0, evexec_future_result(f));
    evexec_future_unref(f);
    evexec_free(ex2);
    assert_int_equal(atomic_load(&fx->frees), 1);
    if (tu_poll(new_fds_closed, &nf) != 0)
        fail_msg("fd %d (a %s) is still open after evexec_free", nf.fd[0], want_kind);
}

/* ---- results and errors -------------------------------------------------- */

static void test_result(void **state)
{
    struct tu_fx *fx = *state;
    struct tu_job *j = tu_fx_job(fx, 1, 0);
    struct evexec_future *f = run_and_check(fx, j, 0);
    struct tu_result *r = evexec_future_result(f);
    assert_non_null(r);
    assert_int_equal(r->value, 0);
    assert_int_equal(atomic_load(&j->saw_cancel), 0);
    assert_int_equal(atomic_load(&fx->frees), 0);
    evexec_future_unref(f);
    assert_int_equal(atomic_load(&fx->frees), 1);
}

/* A job without a result ends 0 with a NULL result. */
static void test_no_result(void **state)
{
    struct tu_fx *fx = *state;
    struct tu_job *j = tu_fx_job(fx, 0, 0);
    struct evexec_future *f = run_and_check(fx, j, 0);
    assert_null(evexec_future_result(f));
    evexec_future_unref(f);
}

/* A second set_result releases the first result at once. */
static void test_result_set_twice(void **state)
{
    struct tu_fx *fx = *state;
    struct tu_job *j = tu_fx_job(fx, 2, 0);
    struct evexec_future *f = run_and_check(fx, j, 0);
    assert_int_equal(atomic_load(&fx->frees), 1);
    struct tu_result *r = evexec_future_result(f);
    assert_non_null(r);
    assert_int_equal(r->value, 1);
    evexec_future_unref(f);
    assert_int_equal(atomic_load(&fx->frees), 2);
}

static void test_take_result(void **state)
{
    struct tu_fx *fx = *state;
    struct tu_job *j = tu_fx_job(fx, 1, 0);
    struct evexec_future *f = run_and_check(fx, j, 0);
    struct tu_result *r = evexec_future_take_result(f);
    assert_non_null(r);
    assert_null(evexec_future_result(f));
    evexec_future_unref(f);
    assert_int_equal(atomic_load(&fx->frees), 0);
    tu_result_free(r);
}

/* The job's return code is the future's error; a result it set anyway is
 * released by the library, exactly once. */
static void test_error_code(void **state)
{
    struct tu_fx *fx = *state;
    struct tu_job *plain = tu_fx_job(fx, 0, EIO);
    struct tu_job *with_result = tu_fx_job(fx, 1, ENOENT);
    struct evexec_future *f1 = run_and_check(fx, plain, EIO);
    struct evexec_future *f2 = run_and_check(fx, with_result, ENOENT);
    assert_null(evexec_future_result(f2));
    assert_null(evexec_future_take_result(f2));
    evexec_future_unref(f1);
    evexec_future_unref(f2);
    assert_int_equal(atomic_load(&fx->frees), 1);
}

/* A job's negative EAI_* code passes through unchanged. */
static void test_error_code_negative(void **state)
{
    struct tu_fx *fx = *state;
    struct tu_job *j = tu_fx_job(fx, 0, EAI_AGAIN);
    evexec_future_unref(run_and_check(fx, j, EAI_AGAIN));
}

/* A job's future is pending while the job is queued or running. */
static void test_pending_while_running(void **state)
{
    struct tu_fx *fx = *state;
    struct tu_job *jobs = tu_fx_jobs(fx, NWORKERS);
    struct tu_job *queued = tu_fx_job(fx, 0, 0);
    struct evexec_future *futs[NWORKERS];
    park_workers(fx, jobs, futs, 0);
    struct evexec_future *q = submit(fx, queued);
    for (int i = 0; i < NWORKERS; i++) {
        assert_int_equal(evexec_future_done(futs[i]), 0);
        assert_int_equal(evexec_future_error(futs[i]), EINPROGRESS);
        assert_null(evexec_future_result(futs[i]));
    }
    assert_int_equal(evexec_future_error(q), EINPROGRESS);
    tu_gate_open(&fx->gate);
    assert_int_equal(evexec_run_until_complete(fx->ex, q), 0);
    dispatch(fx);
    for (int i = 0; i < NWORKERS; i++)
        assert_int_equal(evexec_future_error(futs[i]), 0);
    unref_all(futs, NWORKERS);
    evexec_future_unref(q);
}

/* Dropping the last reference to a pending job's future cancels nothing:
 * running and queued jobs still run to the end (never told to cancel), and
 * their results are released once each. */
static void test_unref_pending_job(void **state)
{
    struct tu_fx *fx = *state;
    struct tu_job *jobs = tu_fx_jobs(fx, NWORKERS);
    struct tu_job *queued = tu_fx_job(fx, 1, 0);
    struct evexec_future *futs[NWORKERS];
    park_workers(fx, jobs, futs, 1);
    struct evexec_future *q = submit(fx, queued);
    unref_all(futs, NWORKERS);
    evexec_future_unref(q);
    tu_gate_open(&fx->gate);
    dispatch(fx);
    for (int i = 0; i < NWORKERS; i++) {
        assert_int_equal(atomic_load(&jobs[i].ran), 1);
        assert_int_equal(atomic_load(&jobs[i].saw_cancel), 0);
    }
    assert_int_equal(atomic_load(&queued->ran), 1);
    assert_int_equal(atomic_load(&queued->saw_cancel), 0);
    assert_int_equal(atomic_load(&fx->frees), NWORKERS + 1);
}

/* ---- cancel -------------------------------------------------------------- */

/* Cancelled while queued: taken, ends ECANCELED at once, never runs; its
 * callback runs once, later; a second cancel is EALREADY. */
static void test_cancel_queued(void **state)
{
    struct tu_fx *fx = *state;
    struct tu_job *jobs = tu_fx_jobs(fx, NWORKERS);
    struct tu_job *queued = tu_fx_job(fx, 1, 0);
    struct evexec_future *futs[NWORKERS];
    struct tu_rec rec;
    park_workers(fx, jobs, futs, 0);
    uint64_t cancelled0 = tu_stats(fx->pool).cancelled;

    struct evexec_future *q = submit(fx, queued);
    watch(q, &rec);
    tu_in_api = 1;
    assert_int_equal(evexec_future_cancel(q), 0);
    tu_in_api = 0;
    assert_int_equal(evexec_future_done(q), 1);
    assert_int_equal(evexec_future_error(q), ECANCELED);
    assert_int_equal(evexec_future_cancelled(q), 1);
    assert_null(evexec_future_result(q));
    assert_int_equal(evexec_future_cancel(q), EALREADY);
    assert_int_equal(evexec_future_error(q), ECANCELED);
    assert_int_equal(tu_stats(fx->pool).cancelled, cancelled0 + 1);

    tu_gate_open(&fx->gate);
    dispatch(fx);
    assert_rec(&rec, ECANCELED, NULL);
    assert_int_equal(atomic_load(&queued->ran), 0);
    for (int i = 0; i < NWORKERS; i++)
        assert_int_equal(evexec_future_error(futs[i]), 0);
    unref_all(futs, NWORKERS);
    evexec_future_unref(q);
    assert_int_equal(evexec_pool_shutdown(fx->pool, EVEXEC_SHUTDOWN_WAIT), 0);
    assert_int_equal(atomic_load(&queued->ran), 0);
    assert_int_equal(atomic_load(&fx->frees), 0);
}

/* Cancelled while running: the job sees evexec_job_cancelled(), the future
 * stays pending until fn returns, then ends ECANCELED; the result it set
 * is released exactly once. */
static void test_cancel_running(void **state)
{
    struct tu_fx *fx = *state;
    struct tu_job *j = tu_fx_job(fx, 1, 0);
    struct tu_rec rec;
    tu_gate_open(&fx->gate);            /* an open gate only counts arrivals */
    j->gate = &fx->gate;
    j->wait_cancel = 1;
    struct evexec_future *f = submit(fx, j);
    watch(f, &rec);
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, 1), 0);

    assert_int_equal(evexec_future_cancel(f), 0);
    /* Whether fn has returned yet is up to the worker; either way the
     * callback has not run. */
    assert_int_equal(rec.calls, 0);
    dispatch(fx);
    assert_rec(&rec, ECANCELED, NULL);
    assert_int_equal(atomic_load(&j->ran), 1);
    assert_int_equal(atomic_load(&j->saw_cancel), 1);
    assert_int_equal(evexec_future_cancel(f), EALREADY);
    evexec_future_unref(f);
    assert_int_equal(atomic_load(&fx->frees), 1);
}

/* The running job's future stays pending until fn returns. */
static void test_cancel_running_stays_pending(void **state)
{
    struct tu_fx *fx = *state;
    struct tu_job *j = tu_fx_job(fx, 1, 0);
    struct tu_rec rec;
    j->gate = &fx->gate;
    struct evexec_future *f = submit(fx, j);
    watch(f, &rec);
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, 1), 0);
    assert_int_equal(evexec_future_cancel(f), 0);
    assert_int_equal(evexec_future_done(f), 0);
    assert_int_equal(evexec_future_error(f), EINPROGRESS);
    /* A second request while it runs is not an error for a pending future. */
    int again = evexec_future_cancel(f);
    assert_true(again == 0 || again == EALREADY);
    tu_gate_open(&fx->gate);
    dispatch(fx);
    assert_rec(&rec, ECANCELED, NULL);
    assert_int_equal(atomic_load(&j->saw_cancel), 1);
    evexec_future_unref(f);
    assert_int_equal(atomic_load(&fx->frees), 1);
}

static int stats_completed_at_least(void *arg)
{
    struct tu_fx *fx = arg;
    return tu_stats(fx->pool).completed >= 1;
}

/* The function returned but the loop has not drained its completion yet:
 * a cancel is still taken and the future ends ECANCELED, its result
 * released once. */
static void test_cancel_returned_undelivered(void **state)
{
    struct tu_fx *fx = *state;
    struct tu_job *j = tu_fx_job(fx, 1, 0);
    struct tu_rec rec;
    struct evexec_future *f = submit(fx, j);
    watch(f, &rec);
    /* The loop does not run, so the completion cannot be delivered. */
    assert_int_equal(tu_poll(stats_completed_at_least, fx), 0);
    assert_int_equal(evexec_future_cancel(f), 0);
    assert_int_equal(rec.calls, 0);
    dispatch(fx);
    assert_rec(&rec, ECANCELED, NULL);
    assert_int_equal(evexec_future_error(f), ECANCELED);
    assert_int_equal(atomic_load(&j->ran), 1);
    evexec_future_unref(f);
    assert_int_equal(atomic_load(&fx->frees), 1);
}

/* A delivered job: cancel is EALREADY and changes nothing. */
static void test_cancel_done(void **state)
{
    struct tu_fx *fx = *state;
    struct tu_job *j = tu_fx_job(fx, 1, 0);
    struct evexec_future *f = run_and_check(fx, j, 0);
    void *r = evexec_future_result(f);
    assert_int_equal(evexec_future_cancel(f), EALREADY);
    assert_int_equal(evexec_future_error(f), 0);
    assert_ptr_equal(evexec_future_result(f), r);
    assert_int_equal(evexec_future_cancelled(f), 0);
    evexec_future_unref(f);
    assert_int_equal(atomic_load(&fx->frees), 1);
}

/* ---- re-entrancy --------------------------------------------------------- */

static void count_call(void *arg)
{
    (*(int *)arg)++;
}

/* None of run, future_new, set_result, cancel, on_done or
 * call_soon_threadsafe runs a callback that is already due. */
static void test_no_inline_callbacks(void **state)
{
    struct tu_fx *fx = *state;
    struct tu_rec rec;
    int calls = 0;
    struct tu_job *j = tu_fx_job(fx, 0, 0);
    struct evexec_future *due = evexec_future_new(fx->ex);
    assert_non_null(due);
    watch(due, &rec);
    assert_int_equal(evexec_future_set_error(due, EIO), 0);

    tu_in_api = 1;
    struct evexec_future *f = submit(fx, j);
    struct evexec_future *u = evexec_future_new(fx->ex);
    struct evexec_future *c = evexec_future_new(fx->ex);
    assert_int_equal(evexec_future_set_result(u, NULL, NULL), 0);
    assert_int_equal(evexec_future_cancel(c), 0);
    assert_int_equal(evexec_future_on_done(due, tu_rec_cb, &rec), 0);
    assert_int_equal(evexec_call_soon_threadsafe(fx->ex, count_call, &calls), 0);
    tu_in_api = 0;
    assert_int_equal(rec.calls, 0);
    assert_int_equal(calls, 0);

    dispatch(fx);
    assert_int_equal(rec.calls, 2);
    assert_int_equal(rec.inline_calls, 0);
    assert_int_equal(calls, 1);
    evexec_future_unref(f);
    evexec_future_unref(u);
    evexec_future_unref(c);
    evexec_future_unref(due);
}

/* Callbacks submit the next job and drop their own future: a chain of
 * jobs, each callback once, all inside one dispatch. */
struct chain {
    struct tu_fx *fx;
    struct tu_job *job;     /* one job, run again by each link */
    int left;
    int callbacks;
    int failures;
};

static void chain_cb(struct evexec_future *f, void *arg)
{
    struct chain *c = arg;
    c->callbacks++;
    if (evexec_future_error(f) != 0)
        c->failures++;
    evexec_future_unref(f);
    if (--c->left > 0) {
        struct evexec_future *next = evexec_run(c->fx->ex, tu_job_fn, c->job);
        if (!next || evexec_future_on_done(next, chain_cb, c) != 0)
            c->failures++;
    }
}

static void test_callback_submits_work(void **state)
{
    struct tu_fx *fx = *state;
    struct chain c;
    memset(&c, 0, sizeof c);
    c.fx = fx;
    c.job = tu_fx_job(fx, 1, 0);
    c.left = 200;
    struct evexec_future *f = submit(fx, c.job);
    assert_int_equal(evexec_future_on_done(f, chain_cb, &c), 0);
    dispatch(fx);
    assert_int_equal(c.failures, 0);
    assert_int_equal(c.callbacks, 200);
    assert_int_equal(atomic_load(&c.job->ran), 200);
    assert_int_equal(atomic_load(&fx->frees), 200);
}

/* A callback that runs with no job in flight (a hand-made future's, a
 * sleep's) submits a job: the loop stays alive until it is delivered. */
struct submit_from_cb {
    struct tu_fx *fx;
    struct tu_job *job;
    struct evexec_future *f;
    struct tu_rec rec;
};

static void submit_from_cb(struct evexec_future *trigger, void *arg)
{
    (void)trigger;
    struct submit_from_cb *s = arg;
    s->f = evexec_run(s->fx->ex, tu_job_fn, s->job);
    if (s->f)
        evexec_future_on_done(s->f, tu_rec_cb, &s->rec);
}

static void check_submit_from_cb(struct tu_fx *fx, struct evexec_future *trigger)
{
    struct submit_from_cb s = { fx, tu_fx_job(fx, 1, 0), NULL, { 0 } };
    tu_rec_init(&s.rec);
    assert_int_equal(evexec_future_on_done(trigger, submit_from_cb, &s), 0);
    dispatch(fx);
    evexec_future_unref(trigger);
    assert_non_null(s.f);
    /* EINPROGRESS here: the loop returned with the job in flight. */
    assert_int_equal(evexec_future_error(s.f), 0);
    assert_int_equal(atomic_load(&s.job->ran), 1);
    assert_rec(&s.rec, 0, evexec_future_result(s.f));
    evexec_future_unref(s.f);
    assert_int_equal(atomic_load(&fx->frees), 1);
}

static void test_user_callback_submits_work(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_future *trigger = evexec_future_new(fx->ex);
    assert_non_null(trigger);
    assert_int_equal(evexec_future_set_result(trigger, NULL, NULL), 0);
    check_submit_from_cb(fx, trigger);
}

static struct evexec_future *sleep_ms(struct tu_fx *fx, long ms);

static void test_sleep_callback_submits_work(void **state)
{
    struct tu_fx *fx = *state;
    check_submit_from_cb(fx, sleep_ms(fx, 1));
}

/* ---- run_until_complete -------------------------------------------------- */

static void test_run_until_complete(void **state)
{
    struct tu_fx *fx = *state;
    struct tu_job *ok = tu_fx_job(fx, 1, 0);
    struct tu_job *bad = tu_fx_job(fx, 0, EIO);
    struct tu_rec rec_ok, rec_bad;
    struct evexec_future *f_ok = submit(fx, ok);
    struct evexec_future *f_bad = submit(fx, bad);
    watch(f_ok, &rec_ok);
    watch(f_bad, &rec_bad);
    /* Returns the future's error, after its callbacks ran. */
    assert_int_equal(evexec_run_until_complete(fx->ex, f_bad), EIO);
    assert_rec(&rec_bad, EIO, NULL);
    assert_int_equal(evexec_run_until_complete(fx->ex, f_ok), 0);
    assert_rec(&rec_ok, 0, evexec_future_result(f_ok));
    /* Already done: returns at once with the same error. */
    assert_int_equal(evexec_run_until_complete(fx->ex, f_bad), EIO);
    assert_int_equal(rec_bad.calls, 1);
    evexec_future_unref(f_ok);
    evexec_future_unref(f_bad);
}

/* A hand-made future set by a call made from another thread keeps the loop
 * alive until then. */
struct setter {
    struct evexec *ex;
    struct evexec_future *f;
    int rc;
};

static void set_future_call(void *arg)
{
    struct setter *s = arg;
    s->rc = evexec_future_set_error(s->f, ETIMEDOUT);
}

static void *setter_thread(void *arg)
{
    struct setter *s = arg;
    tu_sleep_us(20000);     /* let the loop block first; not needed for correctness */
    if (evexec_call_soon_threadsafe(s->ex, set_future_call, s) != 0)
        s->rc = -1;
    return NULL;
}

static void test_run_until_complete_keeps_loop(void **state)
{
    struct tu_fx *fx = *state;
    struct setter s = { fx->ex, evexec_future_new(fx->ex), -2 };
    assert_non_null(s.f);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, setter_thread, &s), 0);
    int rc = evexec_run_until_complete(fx->ex, s.f);
    pthread_join(t, NULL);
    assert_int_equal(rc, ETIMEDOUT);
    assert_int_equal(s.rc, 0);
    evexec_future_unref(s.f);
}

static void test_run_until_complete_bad(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_future *f = evexec_future_new(fx->ex);
    assert_non_null(f);
    assert_int_equal(evexec_run_until_complete(NULL, f), EINVAL);
    assert_int_equal(evexec_run_until_complete(fx->ex, NULL), EINVAL);

    /* A future of another evexec, on the same base. */
    struct evexec *ex2 = evexec_new(fx->base, fx->pool);
    assert_non_null(ex2);
    struct evexec_future *f2 = evexec_future_new(ex2);
    assert_non_null(f2);
    assert_int_equal(evexec_run_until_complete(fx->ex, f2), EINVAL);
    assert_int_equal(evexec_run_until_complete(ex2, f), EINVAL);
    assert_int_equal(evexec_future_done(f2), 0);
    evexec_future_unref(f2);
    evexec_free(ex2);
    assert_int_equal(evexec_future_done(f), 0);
    evexec_future_unref(f);
}

/* From inside one of the evexec's callbacks, and from any other callback
 * of the running base: EDEADLK. */
struct nested_ruc {
    struct evexec *ex;
    struct evexec_future *target;
    int rc;
    int calls;
};

static void nested_ruc_cb(struct evexec_future *f, void *arg)
{
    (void)f;
    struct nested_ruc *n = arg;
    n->calls++;
    n->rc = evexec_run_until_complete(n->ex, n->target);
}

static void nested_ruc_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    nested_ruc_cb(NULL, arg);
}

static void quiet_log(int severity, const char *msg)
{
    (void)severity;
    (void)msg;
}

static void test_run_until_complete_nested(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_future *target = evexec_future_new(fx->ex);
    struct evexec_future *trigger = evexec_future_new(fx->ex);
    assert_non_null(target);
    assert_non_null(trigger);
    struct nested_ruc in_cb = { fx->ex, target, -1, 0 };
    struct nested_ruc in_event = { fx->ex, target, -1, 0 };
    assert_int_equal(evexec_future_on_done(trigger, nested_ruc_cb, &in_cb), 0);
    assert_int_equal(evexec_future_set_result(trigger, NULL, NULL), 0);
    struct timeval zero = { 0, 0 };
    assert_int_equal(event_base_once(fx->base, -1, EV_TIMEOUT, nested_ruc_event,
                                     &in_event, &zero), 0);
    event_set_log_callback(quiet_log);     /* libevent warns of the nested loop */
    dispatch(fx);
    event_set_log_callback(NULL);
    assert_int_equal(in_cb.calls, 1);
    assert_int_equal(in_cb.rc, EDEADLK);
    assert_int_equal(in_event.calls, 1);
    assert_int_equal(in_event.rc, EDEADLK);
    assert_int_equal(evexec_future_done(target), 0);
    evexec_future_unref(target);
    evexec_future_unref(trigger);
}

/* ---- sleep --------------------------------------------------------------- */

static struct evexec_future *sleep_ms(struct tu_fx *fx, long ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    struct evexec_future *f = evexec_sleep(fx->ex, &tv);
    assert_non_null(f);
    return f;
}

static void test_sleep(void **state)
{
    struct tu_fx *fx = *state;
    struct tu_rec rec;
    int64_t t0 = tu_now_us();
    struct evexec_future *f = sleep_ms(fx, 30);
    watch(f, &rec);
    assert_int_equal(evexec_future_done(f), 0);
    dispatch(fx);
    assert_rec(&rec, 0, NULL);
    /* A timer never fires early. */
    assert_true(tu_now_us() - t0 >= 25000);
    /* Not hand-made: set_* is refused. */
    assert_int_equal(evexec_future_set_error(f, EIO), EINVAL);
    evexec_future_unref(f);
}

/* Cancelling a sleep ends it ECANCELED and stops its timer: the loop does
 * not wait for it. */
static void test_sleep_cancel(void **state)
{
    struct tu_fx *fx = *state;
    struct tu_rec rec;
    int64_t t0 = tu_now_us();
    struct evexec_future *f = sleep_ms(fx, 60000);
    watch(f, &rec);
    assert_int_equal(evexec_future_cancel(f), 0);
    assert_int_equal(evexec_future_error(f), ECANCELED);
    dispatch(fx);
    assert_rec(&rec, ECANCELED, NULL);
    assert_true(tu_now_us() - t0 < 20 * 1000000);
    evexec_future_unref(f);
}

/* Ten sleeps of 200 ms at once take far less than 2 s. */
static void test_sleeps_overlap(void **state)
{
    struct tu_fx *fx = *state;
    enum { N = 10 };
    struct evexec_future *f[N];
    int64_t t0 = tu_now_us();
    for (int i = 0; i < N; i++)
        f[i] = sleep_ms(fx, 200);
    dispatch(fx);
    int64_t elapsed = tu_now_us() - t0;
    for (int i = 0; i < N; i++)
        assert_int_equal(evexec_future_error(f[i]), 0);
    unref_all(f, N);
    assert_true(elapsed < 1500000);
}

static void test_sleep_bad(void **state)
{
    struct tu_fx *fx = *state;
    struct timeval neg = { -1, 0 }, neg_us = { 0, -5 }, ok = { 0, 1000 };
    errno = 0;
    assert_null(evexec_sleep(fx->ex, NULL));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(evexec_sleep(fx->ex, &neg));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(evexec_sleep(fx->ex, &neg_us));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(evexec_sleep(NULL, &ok));
    assert_int_equal(errno, EINVAL);
}

/* ---- call_soon_threadsafe ------------------------------------------------ */

enum { PRODUCERS = 4 };

struct soon_ctx {
    struct evexec *ex;
    struct evexec_future *done;     /* set by the last call */
    int per_thread;
    int total_run;                  /* loop thread only */
    int out_of_order;               /* loop thread only */
    int last_seq[PRODUCERS];        /* loop thread only */
    int off_loop;                   /* loop thread only */
    pthread_t loop;
    atomic_int call_failures;
    struct soon_arg *args;
};

struct soon_arg {
    struct soon_ctx *ctx;
    int thread, seq;
};

static void soon_fn(void *p)
{
    struct soon_arg *a = p;
    struct soon_ctx *c = a->ctx;
    if (!pthread_equal(pthread_self(), c->loop))
        c->off_loop++;
    if (c->last_seq[a->thread] != a->seq - 1)
        c->out_of_order++;
    c->last_seq[a->thread] = a->seq;
    if (++c->total_run == PRODUCERS * c->per_thread)
        evexec_future_set_result(c->done, NULL, NULL);
}

struct producer {
    struct soon_ctx *ctx;
    int thread;
};

static void *producer_main(void *p)
{
    struct producer *pr = p;
    struct soon_ctx *c = pr->ctx;
    for (int s = 0; s < c->per_thread; s++) {
        struct soon_arg *a = &c->args[pr->thread * c->per_thread + s];
        if (evexec_call_soon_threadsafe(c->ex, soon_fn, a) != 0)
            atomic_fetch_add(&c->call_failures, 1);
    }
    return NULL;
}

/* Many threads call at once: each call runs once, on the loop thread, in
 * the order its thread made them. */
static void test_call_soon_many_threads(void **state)
{
    struct tu_fx *fx = *state;
    struct soon_ctx c;
    memset(&c, 0, sizeof c);
    c.ex = fx->ex;
    c.loop = pthread_self();
    c.per_thread = TU_SCALE(5000);
    c.done = evexec_future_new(fx->ex);
    assert_non_null(c.done);
    c.args = calloc((size_t)PRODUCERS * c.per_thread, sizeof *c.args);
    assert_non_null(c.args);
    for (int t = 0; t < PRODUCERS; t++) {
        c.last_seq[t] = -1;
        for (int s = 0; s < c.per_thread; s++)
            c.args[t * c.per_thread + s] = (struct soon_arg){ &c, t, s };
    }
    pthread_t th[PRODUCERS];
    struct producer pr[PRODUCERS];
    for (int t = 0; t < PRODUCERS; t++) {
        pr[t] = (struct producer){ &c, t };
        assert_int_equal(pthread_create(&th[t], NULL, producer_main, &pr[t]), 0);
    }
    int rc = evexec_run_until_complete(fx->ex, c.done);
    for (int t = 0; t < PRODUCERS; t++)
        pthread_join(th[t], NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(atomic_load(&c.call_failures), 0);
    dispatch(fx);   /* nothing more may run */
    assert_int_equal(c.total_run, PRODUCERS * c.per_thread);
    assert_int_equal(c.out_of_order, 0);
    assert_int_equal(c.off_loop, 0);
    for (int t = 0; t < PRODUCERS; t++)
        assert_int_equal(c.last_seq[t], c.per_thread - 1);
    evexec_future_unref(c.done);
    free(c.args);
}

/* Called on the loop thread: never inline, runs from the loop (which it
 * keeps alive), in order; a call made by a call runs after it returns. */
struct soon_log {
    struct evexec *ex;
    int log[8];
    int n;
    int depth;
    int nested;
};

struct soon_item {
    struct soon_log *log;
    int id;
    int again;      /* make one more call, id + 100 */
};

static void logging_call(void *p)
{
    struct soon_item *it = p;
    struct soon_log *l = it->log;
    if (l->depth)
        l->nested++;
    l->depth++;
    if (l->n < 8)
        l->log[l->n++] = it->id;
    if (it->again) {
        it->again = 0;
        it->id += 100;
        if (evexec_call_soon_threadsafe(l->ex, logging_call, it) != 0)
            l->nested += 1000;
    }
    l->depth--;
}

/* The loop thread is bound by first use, not by evexec_new: an evexec
 * made on one thread is used and run on another.  Loop-thread calls from
 * any other thread then fail with EINVAL and change nothing; calls made
 * with evexec_call_soon_threadsafe() from there run on the loop thread. */
static int bind_noop(struct evexec_job *job, void *arg)
{
    (void)job;
    (void)arg;
    return 0;
}

struct bind_ctx {
    struct evexec *ex;
    atomic_int bound;           /* set by the loop thread once it is bound */
    atomic_int posted;          /* set by main once its checks are done */
    struct evexec_future *done; /* ended by posted_call */
    pthread_t loop;
    int off_loop;               /* posted_call ran elsewhere */
    int job_rc, done_rc;
};

static void posted_call(void *arg)
{
    struct bind_ctx *b = arg;
    if (!pthread_equal(pthread_self(), b->loop))
        b->off_loop = 1;
    evexec_future_set_result(b->done, NULL, NULL);
}

static void *bind_loop_main(void *arg)
{
    struct bind_ctx *b = arg;
    b->loop = pthread_self();
    struct evexec_future *f = evexec_run(b->ex, bind_noop, NULL);
    b->done = evexec_future_new(b->ex);
    atomic_store(&b->bound, 1);
    if (!f || !b->done) {
        b->job_rc = -1;
        return NULL;
    }
    b->job_rc = evexec_run_until_complete(b->ex, f);
    evexec_future_unref(f);
    /* Main's call ends b->done; wait (bounded) until main has posted. */
    for (int i = 0; i < 10000 && !atomic_load(&b->posted); i++)
        tu_sleep_us(1000);
    b->done_rc = evexec_run_until_complete(b->ex, b->done);
    evexec_future_unref(b->done);
    return NULL;
}

static void expect_not_loop(struct evexec *ex)
{
    struct timeval tv = { 0, 1000 };
    errno = 0;
    assert_null(evexec_run(ex, bind_noop, NULL));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(evexec_future_new(ex));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(evexec_sleep(ex, &tv));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(evexec_submit(ex, bind_noop, NULL, tu_rec_cb, NULL), EINVAL);
    assert_int_equal(evexec_set_keepalive(ex, 0), EINVAL);
    assert_int_equal(evexec_get_keepalive(ex), 1);
}

static void test_loop_thread_bound_by_first_use(void **state)
{
    struct tu_fx *fx = *state;
    struct bind_ctx b;
    memset(&b, 0, sizeof b);
    b.ex = fx->ex;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, bind_loop_main, &b), 0);
    for (int i = 0; i < 10000 && !atomic_load(&b.bound); i++)
        tu_sleep_us(1000);
    assert_int_equal(atomic_load(&b.bound), 1);
    expect_not_loop(fx->ex);
    assert_int_equal(evexec_call_soon_threadsafe(fx->ex, posted_call, &b), 0);
    atomic_store(&b.posted, 1);
    pthread_join(th, NULL);
    assert_int_equal(b.job_rc, 0);
    assert_int_equal(b.done_rc, 0);
    assert_int_equal(b.off_loop, 0);
    /* The loop thread is gone; main takes the evexec back. */
    assert_int_equal(evexec_set_loop_thread(NULL), EINVAL);
    assert_int_equal(evexec_set_loop_thread(fx->ex), 0);
    struct evexec_future *f = evexec_run(fx->ex, bind_noop, NULL);
    assert_non_null(f);
    assert_int_equal(evexec_run_until_complete(fx->ex, f), 0);
    evexec_future_unref(f);
}

/* Used on main, then run by another thread's dispatch: the base running
 * the evexec's events there makes that thread the loop thread, so the
 * callbacks it runs may make work; main may not any more. */
struct move_ctx {
    struct evexec *ex;
    struct event_base *base;
    struct evexec_future *second;
    int second_errno;
    int dispatch_rc;
};

static void second_done(struct evexec_future *f, void *arg)
{
    struct move_ctx *m = arg;
    (void)f;
    event_base_loopexit(m->base, NULL);
}

static void first_done(struct evexec_future *f, void *arg)
{
    struct move_ctx *m = arg;
    (void)f;
    errno = 0;
    m->second = evexec_run(m->ex, bind_noop, NULL);
    m->second_errno = errno;
    if (!m->second || evexec_future_on_done(m->second, second_done, m) != 0)
        event_base_loopexit(m->base, NULL);
}

static void *move_loop_main(void *arg)
{
    struct move_ctx *m = arg;
    m->dispatch_rc = event_base_dispatch(m->base);
    return NULL;
}

static void test_loop_thread_moves_with_base(void **state)
{
    struct tu_fx *fx = *state;
    struct move_ctx m = { fx->ex, fx->base, NULL, 0, -2 };
    struct evexec_future *first = evexec_run(fx->ex, bind_noop, NULL);
    assert_non_null(first);
    assert_int_equal(evexec_future_on_done(first, first_done, &m), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, move_loop_main, &m), 0);
    pthread_join(th, NULL);
    assert_int_equal(m.dispatch_rc, 0);
    assert_int_equal(m.second_errno, 0);
    assert_non_null(m.second);
    assert_int_equal(evexec_future_error(m.second), 0);
    /* The base ran the evexec's events on that thread: main is no longer
     * the loop thread, until it takes it back. */
    expect_not_loop(fx->ex);
    assert_int_equal(evexec_set_loop_thread(fx->ex), 0);
    assert_int_equal(evexec_set_keepalive(fx->ex, 1), 0);
    evexec_future_unref(first);
    evexec_future_unref(m.second);
}

/* A job calling loop-thread calls on its own evexec from its worker: each
 * fails with EINVAL (not ESHUTDOWN, not a crash, not a hang) and changes
 * nothing; the evexec stays usable from its loop thread afterwards. */
struct worker_calls {
    struct evexec *ex;
    struct evexec_future *other;    /* pending on the loop; read only */
    struct evexec_group *group;
    int bad;                        /* first call that did not fail EINVAL */
};

static void worker_each(struct evexec_future *f, void *arg)
{
    (void)f;
    (void)arg;
}

#define WC_NULL(n, call)                                        \
    do {                                                        \
        errno = 0;                                              \
        struct evexec_future *wc_f = (call);                    \
        if ((wc_f != NULL || errno != EINVAL) && !c->bad)       \
            c->bad = (n);                                       \
    } while (0)
#define WC_RC(n, call)                                          \
    do {                                                        \
        if ((call) != EINVAL && !c->bad)                        \
            c->bad = (n);                                       \
    } while (0)

static int worker_calls_fn(struct evexec_job *job, void *arg)
{
    (void)job;
    struct worker_calls *c = arg;
    struct evexec *ex = c->ex;
    struct timeval tv = { 0, 1000 };
    struct evexec_future *one[1] = { c->other };
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct evexec_dns_cache_opts dopts = EVEXEC_DNS_CACHE_OPTS_INIT;
    dopts.positive_ttl_ms = 1000;

    WC_NULL(1, evexec_run(ex, bind_noop, NULL));
    WC_NULL(2, evexec_future_new(ex));
    WC_NULL(3, evexec_sleep(ex, &tv));
    WC_NULL(4, evexec_wait_for(ex, c->other, &tv));
    WC_NULL(5, evexec_gather(ex, one, 1));
    WC_NULL(6, evexec_wait(ex, one, 1, EVEXEC_ALL_COMPLETED, &tv));
    WC_NULL(7, evexec_as_completed(ex, one, 1, worker_each, NULL));
    errno = 0;
    struct evexec_group *g = evexec_group_new(ex);
    if ((g != NULL || errno != EINVAL) && !c->bad)
        c->bad = 8;
    WC_RC(9, evexec_submit(ex, bind_noop, NULL, tu_rec_cb, NULL));
    WC_RC(10, evexec_set_keepalive(ex, 0));
    WC_RC(13, evexec_run_until_complete(ex, c->other));
    WC_NULL(14, evexec_getaddrinfo(ex, "127.0.0.1", "80", NULL));
    WC_NULL(15, evexec_getnameinfo(ex, (struct sockaddr *)&sin, sizeof sin,
                                   NI_NUMERICHOST | NI_NUMERICSERV));
    WC_RC(16, evexec_dns_set_cache(ex, &dopts));
    WC_NULL(17, evexec_fs_openat(ex, AT_FDCWD, "/", O_RDONLY, 0));
    WC_NULL(18, evexec_fs_stat(ex, "/"));
    return 0;
}

static void test_worker_calls_loop_api(void **state)
{
    struct tu_fx *fx = *state;
    struct worker_calls c;
    memset(&c, 0, sizeof c);
    c.ex = fx->ex;
    c.other = evexec_future_new(fx->ex);
    assert_non_null(c.other);
    c.group = evexec_group_new(fx->ex);
    assert_non_null(c.group);
    struct evexec_future *f = evexec_run(fx->ex, worker_calls_fn, &c);
    assert_non_null(f);
    assert_int_equal(evexec_run_until_complete(fx->ex, f), 0);
    evexec_future_unref(f);
    if (c.bad)
        fail_msg("call %d from the worker did not fail with EINVAL", c.bad);
    /* Nothing changed: keep-alive is still on, the group holds nothing,
     * the other future is still pending and usable. */
    assert_int_equal(evexec_get_keepalive(fx->ex), 1);
    assert_int_equal(evexec_future_done(c.other), 0);
    assert_int_equal(evexec_future_set_result(c.other, NULL, NULL), 0);
    struct evexec_future *gf = evexec_group_future(c.group);
    evexec_group_free(c.group);
    assert_int_equal(evexec_run_until_complete(fx->ex, gf), 0);
    evexec_future_unref(gf);
    evexec_future_unref(c.other);
}

/* The loop thread is a thread, not an address: once the thread bound as
 * the loop thread has exited, a new thread (which the C library may give
 * the same stack and thread-local block) is not the loop thread, and its
 * loop-thread calls fail with EINVAL until it takes the evexec over with
 * evexec_set_loop_thread(). */
struct rebind_ctx {
    struct evexec *ex;
    int rc;
    int err;
};

static void *rebind_first(void *arg)
{
    struct rebind_ctx *r = arg;
    evexec_set_loop_thread(r->ex);
    struct evexec_future *f = evexec_run(r->ex, bind_noop, NULL);
    r->rc = f ? evexec_run_until_complete(r->ex, f) : -1;
    if (f)
        evexec_future_unref(f);
    return NULL;
}

static void *rebind_second(void *arg)
{
    struct rebind_ctx *r = arg;
    errno = 0;
    struct evexec_future *f = evexec_run(r->ex, bind_noop, NULL);
    r->err = errno;
    if (f) {
        evexec_run_until_complete(r->ex, f);
        evexec_future_unref(f);
    }
    r->rc = f != NULL;
    return NULL;
}

static void test_loop_thread_not_reused(void **state)
{
    struct tu_fx *fx = *state;
    for (int i = 0; i < 8; i++) {
        struct rebind_ctx r = { fx->ex, -1, 0 };
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, rebind_first, &r), 0);
        pthread_join(th, NULL);
        assert_int_equal(r.rc, 0);
        assert_int_equal(pthread_create(&th, NULL, rebind_second, &r), 0);
        pthread_join(th, NULL);
        if (r.rc != 0)
            fail_msg("round %d: a new thread made work on an evexec bound to an exited thread", i);
        assert_int_equal(r.err, EINVAL);
        /* Hand the evexec to the next round's first thread. */
        assert_int_equal(evexec_set_loop_thread(fx->ex), 0);
        assert_int_equal(evexec_set_keepalive(fx->ex, 1), 0);
    }
}

static void test_call_soon_loop_thread(void **state)
{
    struct tu_fx *fx = *state;
    struct soon_log l;
    memset(&l, 0, sizeof l);
    l.ex = fx->ex;
    struct soon_item items[3] = { { &l, 1, 1 }, { &l, 2, 0 }, { &l, 3, 0 } };
    for (int i = 0; i < 3; i++)
        assert_int_equal(evexec_call_soon_threadsafe(fx->ex, logging_call, &items[i]), 0);
    assert_int_equal(l.n, 0);
    dispatch(fx);
    assert_int_equal(l.nested, 0);
    assert_int_equal(l.n, 4);
    assert_int_equal(l.log[0], 1);
    assert_int_equal(l.log[1], 2);
    assert_int_equal(l.log[2], 3);
    assert_int_equal(l.log[3], 101);
}

/* ---- two loops in two threads on one pool ---------------------------------- */

struct loop_work {
    struct tu_fx *fx;          /* for the shared frees counter */
    int njobs;
    struct tu_job *jobs;
    /* written by the loop thread, read after join */
    int callbacks, wrong_error, wrong_result, submit_failures;
};

static void loop_work_cb(struct evexec_future *f, void *arg)
{
    struct loop_work *w = arg;
    w->callbacks++;
    evexec_future_unref(f);
}

static void loop_work_body(struct evexec *ex, void *arg)
{
    struct loop_work *w = arg;
    struct evexec_future **futs = calloc((size_t)w->njobs, sizeof *futs);
    if (!futs) {
        w->submit_failures = w->njobs;
        return;
    }
    for (int i = 0; i < w->njobs; i++) {
        futs[i] = evexec_run(ex, tu_job_fn, &w->jobs[i]);
        if (!futs[i])
            w->submit_failures++;
    }
    /* Check the outcome from a first callback, count from a second one
     * that drops the future. */
    for (int i = 0; i < w->njobs; i++) {
        if (!futs[i])
            continue;
        evexec_future_ref(futs[i]);
        evexec_future_on_done(futs[i], loop_work_cb, w);
    }
    evexec_set_keepalive(ex, 0);
    event_base_dispatch(evexec_get_base(ex));
    for (int i = 0; i < w->njobs; i++) {
        if (!futs[i])
            continue;
        struct tu_result *r = evexec_future_result(futs[i]);
        if (evexec_future_error(futs[i]) != w->jobs[i].ret)
            w->wrong_error++;
        if ((w->jobs[i].nresults && w->jobs[i].ret == 0) != (r != NULL))
            w->wrong_result++;
        evexec_future_unref(futs[i]);
    }
    free(futs);
}

static void test_two_loops_one_pool(void **state)
{
    struct tu_fx *fx = *state;
    enum { LOOPS = 2 };
    struct loop_work w[LOOPS];
    struct tu_loop loops[LOOPS];
    int n = TU_SCALE(2000);
    int results = 0;    /* over both loops */
    for (int l = 0; l < LOOPS; l++) {
        memset(&w[l], 0, sizeof w[l]);
        w[l].fx = fx;
        w[l].njobs = n;
        w[l].jobs = calloc((size_t)n, sizeof *w[l].jobs);
        assert_non_null(w[l].jobs);
        for (int i = 0; i < n; i++) {
            tu_job_init(&w[l].jobs[i], &fx->frees, i % 3 == 0, i % 5 == 0 ? EIO : 0);
            results += i % 3 == 0;
        }
        loops[l] = (struct tu_loop){ .pool = fx->pool, .body = loop_work_body, .arg = &w[l] };
        assert_int_equal(tu_loop_start(&loops[l]), 0);
    }
    for (int l = 0; l < LOOPS; l++)
        assert_int_equal(tu_loop_join(&loops[l]), 0);
    for (int l = 0; l < LOOPS; l++) {
        assert_int_equal(w[l].submit_failures, 0);
        assert_int_equal(w[l].callbacks, n);
        assert_int_equal(w[l].wrong_error, 0);
        assert_int_equal(w[l].wrong_result, 0);
        for (int i = 0; i < n; i++)
            assert_int_equal(atomic_load(&w[l].jobs[i].ran), 1);
        free(w[l].jobs);
    }
    assert_int_equal(atomic_load(&fx->frees), results);
}

/* ---- teardown ------------------------------------------------------------ */

/* evexec_free with tu_in_api set: the recorders count the callbacks that
 * run inside it as inline_calls. */
static void free_ex(struct tu_fx *fx)
{
    tu_in_api = 1;
    evexec_free(fx->ex);
    tu_in_api = 0;
    fx->ex = NULL;
}

/* The callback ran exactly once, inside evexec_free. */
static void assert_ran_in_free(const struct tu_rec *rec, int error)
{
    assert_int_equal(rec->calls, 1);
    assert_int_equal(rec->inline_calls, 1);
    assert_int_equal(rec->error, error);
    assert_int_equal(rec->off_loop, 0);
}

/* What a callback run by evexec_free may still ask for. */
struct in_free {
    struct evexec *ex;
    struct tu_rec rec;
    int new_errno, run_errno, soon_rc;
    int late_calls;     /* count_call runs of the refused call: must stay 0 */
    int on_done_rc;     /* adding a callback to its own future */
    struct tu_rec added;
};

static int noop_job(struct evexec_job *job, void *arg)
{
    (void)job;
    (void)arg;
    return 0;
}

static void in_free_cb(struct evexec_future *f, void *arg)
{
    struct in_free *s = arg;
    tu_rec_cb(f, &s->rec);
    errno = 0;
    struct evexec_future *g = evexec_future_new(s->ex);
    s->new_errno = g ? 0 : errno;
    evexec_future_unref(g);
    errno = 0;
    g = evexec_run(s->ex, noop_job, NULL);
    s->run_errno = g ? 0 : errno;
    evexec_future_unref(g);
    s->soon_rc = evexec_call_soon_threadsafe(s->ex, count_call, &s->late_calls);
    tu_rec_init(&s->added);
    s->on_done_rc = evexec_future_on_done(f, tu_rec_cb, &s->added);
}

/* Hand-made futures: pending ones end ECANCELED, an ended one keeps its
 * outcome, every callback runs once inside evexec_free, the references the
 * test still holds are released (the result with them), and no new work
 * can start from those callbacks. */
static void test_free_user_futures(void **state)
{
    struct tu_fx *fx = *state;
    struct tu_rec pending_rec, done_rec;
    struct in_free s;
    memset(&s, 0, sizeof s);
    s.ex = fx->ex;
    tu_rec_init(&s.rec);
    struct evexec_future *pending = evexec_future_new(fx->ex);
    struct evexec_future *done = evexec_future_new(fx->ex);
    assert_non_null(pending);
    assert_non_null(done);
    struct tu_result *r = tu_result_new(&fx->frees, 1);
    watch(pending, &pending_rec);
    watch(done, &done_rec);
    assert_int_equal(evexec_future_on_done(pending, in_free_cb, &s), 0);
    assert_int_equal(evexec_future_set_result(done, r, tu_result_free), 0);
    /* A future with no callback and an extra reference. */
    struct evexec_future *extra = evexec_future_new(fx->ex);
    assert_non_null(extra);
    evexec_future_ref(extra);

    free_ex(fx);
    assert_ran_in_free(&pending_rec, ECANCELED);
    assert_ran_in_free(&done_rec, 0);
    assert_ptr_equal(done_rec.result, r);
    assert_ran_in_free(&s.rec, ECANCELED);
    assert_int_equal(s.new_errno, ESHUTDOWN);
    assert_int_equal(s.run_errno, ESHUTDOWN);
    assert_int_equal(s.soon_rc, ESHUTDOWN);
    assert_int_equal(s.late_calls, 0);
    /* A callback added during the free either runs once or is refused. */
    if (s.on_done_rc == 0)
        assert_ran_in_free(&s.added, ECANCELED);
    else
        assert_int_equal(s.on_done_rc, ESHUTDOWN);
    assert_int_equal(s.added.calls, s.on_done_rc == 0);
    assert_int_equal(atomic_load(&fx->frees), 1);
}

/* Jobs in flight: the queued one never runs, the running ones see
 * evexec_job_cancelled() and finish later on a living pool, their results
 * released once on the worker; every callback runs once inside the free. */
static void test_free_with_jobs(void **state)
{
    struct tu_fx *fx = *state;
    struct tu_job *running = tu_fx_jobs(fx, NWORKERS);
    struct tu_job *queued = tu_fx_job(fx, 1, 0);
    struct evexec_future *futs[NWORKERS];
    struct tu_rec rrec[NWORKERS], qrec;
    park_workers(fx, running, futs, 1);
    for (int i = 0; i < NWORKERS; i++)
        watch(futs[i], &rrec[i]);
    struct evexec_future *q = submit(fx, queued);
    watch(q, &qrec);

    free_ex(fx);
    for (int i = 0; i < NWORKERS; i++)
        assert_ran_in_free(&rrec[i], ECANCELED);
    assert_ran_in_free(&qrec, ECANCELED);

    tu_gate_open(&fx->gate);
    assert_int_equal(evexec_pool_shutdown(fx->pool, EVEXEC_SHUTDOWN_WAIT), 0);
    for (int i = 0; i < NWORKERS; i++) {
        assert_int_equal(atomic_load(&running[i].ran), 1);
        assert_int_equal(atomic_load(&running[i].saw_cancel), 1);
    }
    assert_int_equal(atomic_load(&queued->ran), 0);
    assert_int_equal(atomic_load(&fx->frees), NWORKERS);
    assert_int_equal(tu_stats(fx->pool).running, 0);
}

/* A job that returned before the free but was never delivered: its
 * callback runs in the free with its real outcome or ECANCELED (it had
 * ended on the worker, not on the loop), and its result goes once. */
static void test_free_undelivered_job(void **state)
{
    struct tu_fx *fx = *state;
    struct tu_job *j = tu_fx_job(fx, 1, 0);
    struct tu_rec rec;
    struct evexec_future *f = submit(fx, j);
    watch(f, &rec);
    assert_int_equal(tu_poll(stats_completed_at_least, fx), 0);
    free_ex(fx);
    assert_int_equal(rec.calls, 1);
    assert_int_equal(rec.inline_calls, 1);
    assert_true(rec.error == 0 || rec.error == ECANCELED);
    assert_int_equal(evexec_pool_shutdown(fx->pool, EVEXEC_SHUTDOWN_WAIT), 0);
    assert_int_equal(atomic_load(&fx->frees), 1);
}

struct calls_from_thread {
    struct evexec *ex;
    int *calls;     /* counted by count_call, on the loop thread */
    int failures;
};

static void *calls_from_thread(void *arg)
{
    struct calls_from_thread *c = arg;
    for (int i = 0; i < 3; i++)
        c->failures += evexec_call_soon_threadsafe(c->ex, count_call, c->calls) != 0;
    return NULL;
}

/* A pending sleep ends ECANCELED inside the free; calls already made, on
 * the loop thread or another, run there too. */
static void test_free_sleep_and_calls(void **state)
{
    struct tu_fx *fx = *state;
    struct tu_rec rec;
    int calls = 0;
    struct evexec_future *f = sleep_ms(fx, 60000);
    watch(f, &rec);
    assert_int_equal(evexec_call_soon_threadsafe(fx->ex, count_call, &calls), 0);
    assert_int_equal(evexec_call_soon_threadsafe(fx->ex, count_call, &calls), 0);
    struct calls_from_thread c = { fx->ex, &calls, 0 };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, calls_from_thread, &c), 0);
    pthread_join(t, NULL);
    assert_int_equal(c.failures, 0);
    int64_t t0 = tu_now_us();
    free_ex(fx);
    assert_ran_in_free(&rec, ECANCELED);
    assert_int_equal(calls, 5);
    /* The base no longer holds the timer. */
    dispatch(fx);
    assert_true(tu_now_us() - t0 < 20 * 1000000);
}

/* evexec_free from inside one of its own callbacks: the teardown finishes
 * when that callback returns; every other callback still runs once; the
 * loop then has nothing left and returns. */
struct free_in_cb {
    struct tu_fx *fx;
    int calls;
};

static void free_in_cb(struct evexec_future *f, void *arg)
{
    (void)f;
    struct free_in_cb *c = arg;
    c->calls++;
    evexec_free(c->fx->ex);
}

static void test_free_inside_callback(void **state)
{
    struct tu_fx *fx = *state;
    struct free_in_cb c = { fx, 0 };
    struct tu_rec after, pending_rec, job_rec;
    struct tu_job *parked = tu_fx_job(fx, 1, 0);
    struct evexec_future *trigger = evexec_future_new(fx->ex);
    struct evexec_future *pending = evexec_future_new(fx->ex);
    assert_non_null(trigger);
    assert_non_null(pending);
    assert_int_equal(evexec_future_on_done(trigger, free_in_cb, &c), 0);
    watch(trigger, &after);
    watch(pending, &pending_rec);
    parked->gate = &fx->gate;
    struct evexec_future *jf = submit(fx, parked);
    watch(jf, &job_rec);
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, 1), 0);
    assert_int_equal(evexec_future_set_result(trigger, tu_result_new(&fx->frees, 0),
                                              tu_result_free), 0);
    dispatch(fx);
    fx->ex = NULL;
    assert_int_equal(c.calls, 1);
    assert_int_equal(after.calls, 1);
    assert_int_equal(after.error, 0);
    assert_int_equal(pending_rec.calls, 1);
    assert_int_equal(pending_rec.error, ECANCELED);
    assert_int_equal(job_rec.calls, 1);
    assert_int_equal(job_rec.error, ECANCELED);
    tu_gate_open(&fx->gate);
    assert_int_equal(evexec_pool_shutdown(fx->pool, EVEXEC_SHUTDOWN_WAIT), 0);
    assert_int_equal(atomic_load(&parked->saw_cancel), 1);
    assert_int_equal(atomic_load(&fx->frees), 2);
}

/* ---- the contract at the hand-offs (keep-alive, teardown, limits) -------- */

/* A watchdog for tests that dispatch with the default keep-alive: ends the
 * loop after a long deadline and says so, so a lost wake-up fails the test
 * instead of hanging it. */
struct watchdog {
    struct event *ev;
    int fired;
};

static void watchdog_fired(evutil_socket_t fd, short what, void *arg)
{
    struct watchdog *w = arg;
    (void)fd;
    (void)what;
    w->fired = 1;
    event_base_loopbreak(event_get_base(w->ev));
}

static void watchdog_start(struct watchdog *w, struct event_base *base)
{
    struct timeval tv = { TU_DEADLINE_MS / 1000, 0 };
    w->fired = 0;
    w->ev = evtimer_new(base, watchdog_fired, w);
    assert_non_null(w->ev);
    assert_int_equal(evtimer_add(w->ev, &tv), 0);
}

static void watchdog_stop(struct watchdog *w)
{
    event_free(w->ev);
    assert_int_equal(w->fired, 0);
}

struct idle_call {
    struct evexec *ex;
    struct event_base *base;
    atomic_int ran;
    long delay_us;
};

static void idle_call_fn(void *arg)
{
    struct idle_call *c = arg;
    atomic_fetch_add(&c->ran, 1);
    event_base_loopexit(c->base, NULL);
}

static void *idle_call_thread(void *arg)
{
    struct idle_call *c = arg;
    tu_sleep_us(c->delay_us);       /* the loop is idle in epoll by then */
    if (evexec_call_soon_threadsafe(c->ex, idle_call_fn, c) != 0)
        atomic_store(&c->ran, -1000);
    return NULL;
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (*(int *)arg)++;
}

/* A call from another thread runs while nothing of the evexec is in
 * flight, with the loop kept running by something else (a persistent
 * timer), by the evexec itself (dispatch), or stepped with EVLOOP_ONCE. */
static void test_call_soon_idle_loop(void **state)
{
    struct tu_fx *fx = *state;
    assert_int_equal(evexec_get_keepalive(fx->ex), 1);
    for (int mode = 0; mode < 3; mode++) {
        struct idle_call c = { fx->ex, fx->base, 0, 20000 };
        struct watchdog w;
        int ticks = 0;
        struct event *timer = NULL;
        if (mode == 1) {
            struct timeval tv = { 0, 5000 };
            timer = event_new(fx->base, -1, EV_PERSIST, tick, &ticks);
            assert_non_null(timer);
            assert_int_equal(event_add(timer, &tv), 0);
        }
        watchdog_start(&w, fx->base);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, idle_call_thread, &c), 0);
        if (mode == 2) {
            while (atomic_load(&c.ran) == 0 && !w.fired)
                assert_int_not_equal(event_base_loop(fx->base, EVLOOP_ONCE), -1);
        } else {
            assert_int_not_equal(event_base_dispatch(fx->base), -1);
        }
        pthread_join(t, NULL);
        watchdog_stop(&w);
        if (timer)
            event_free(timer);
        assert_int_equal(atomic_load(&c.ran), 1);
    }
}

/* Without keep-alive, an idle evexec lets dispatch return at once. */
static void test_keepalive_off_returns(void **state)
{
    struct tu_fx *fx = *state;
    assert_int_equal(evexec_set_keepalive(NULL, 0), EINVAL);
    assert_int_equal(evexec_get_keepalive(NULL), 0);
    assert_int_equal(evexec_set_keepalive(fx->ex, 0), 0);
    assert_int_equal(evexec_get_keepalive(fx->ex), 0);
    assert_int_equal(event_base_dispatch(fx->base), 1);   /* no events */
    assert_int_equal(evexec_set_keepalive(fx->ex, 1), 0);
    assert_int_equal(evexec_get_keepalive(fx->ex), 1);
}

/* Many threads call while jobs complete, and while nothing is in flight:
 * every call runs exactly once, in order per thread. */
#define RACE_THREADS 4

struct race {
    struct evexec *ex;
    struct event_base *base;
    int per_thread;
    unsigned char *seen;        /* loop thread only */
    int last[RACE_THREADS];     /* loop thread only */
    int out_of_order;
    int total_run;
    int jobs_left;
    atomic_int failures;
};

struct race_call {
    struct race *r;
    int thread, i;
};

static void race_maybe_done(struct race *r)
{
    if (r->total_run == RACE_THREADS * r->per_thread && r->jobs_left == 0)
        event_base_loopexit(r->base, NULL);
}

static void race_call_fn(void *arg)
{
    struct race_call *c = arg;
    struct race *r = c->r;
    r->seen[c->thread * r->per_thread + c->i]++;
    if (c->i != r->last[c->thread] + 1)
        r->out_of_order++;
    r->last[c->thread] = c->i;
    r->total_run++;
    free(c);
    race_maybe_done(r);
}

struct race_thread {
    struct race *r;
    int thread;
};

static void *race_thread_main(void *arg)
{
    struct race_thread *t = arg;
    unsigned seed = (unsigned)t->thread * 7919u + 1;
    for (int i = 0; i < t->r->per_thread; i++) {
        struct race_call *c = malloc(sizeof *c);
        if (!c) {
            atomic_fetch_add(&t->r->failures, 1);
            continue;
        }
        *c = (struct race_call){ t->r, t->thread, i };
        if (evexec_call_soon_threadsafe(t->r->ex, race_call_fn, c) != 0) {
            free(c);
            atomic_fetch_add(&t->r->failures, 1);
        }
        seed = seed * 1103515245u + 12345u;
        if ((seed >> 16) % 64 == 0)
            tu_sleep_us(200);           /* let the loop go idle now and then */
    }
    return NULL;
}

static int race_noop(struct evexec_job *job, void *arg)
{
    (void)job;
    (void)arg;
    return 0;
}

static void race_job_done(struct evexec_future *f, void *arg)
{
    struct race *r = arg;
    evexec_future_unref(f);
    if (--r->jobs_left > 0) {
        struct evexec_future *g = evexec_run(r->ex, race_noop, NULL);
        if (!g || evexec_future_on_done(g, race_job_done, r) != 0)
            atomic_fetch_add(&r->failures, 1);
        return;
    }
    race_maybe_done(r);
}

static void test_call_soon_races_completions(void **state)
{
    struct tu_fx *fx = *state;
    struct race r = { .ex = fx->ex, .base = fx->base, .per_thread = TU_SCALE(20000) };
    r.seen = calloc((size_t)RACE_THREADS * (size_t)r.per_thread, 1);
    assert_non_null(r.seen);
    for (int i = 0; i < RACE_THREADS; i++)
        r.last[i] = -1;
    atomic_init(&r.failures, 0);
    /* A chain of jobs: completions arrive while calls do. */
    r.jobs_left = TU_SCALE(4000);
    struct evexec_future *g = evexec_run(fx->ex, race_noop, NULL);
    assert_non_null(g);
    assert_int_equal(evexec_future_on_done(g, race_job_done, &r), 0);
    struct race_thread th[RACE_THREADS];
    pthread_t tid[RACE_THREADS];
    struct watchdog w;
    watchdog_start(&w, fx->base);
    for (int i = 0; i < RACE_THREADS; i++) {
        th[i] = (struct race_thread){ &r, i };
        assert_int_equal(pthread_create(&tid[i], NULL, race_thread_main, &th[i]), 0);
    }
    assert_int_not_equal(event_base_dispatch(fx->base), -1);
    for (int i = 0; i < RACE_THREADS; i++)
        pthread_join(tid[i], NULL);
    watchdog_stop(&w);
    assert_int_equal(atomic_load(&r.failures), 0);
    assert_int_equal(r.total_run, RACE_THREADS * r.per_thread);
    assert_int_equal(r.out_of_order, 0);
    for (int i = 0; i < RACE_THREADS * r.per_thread; i++)
        assert_int_equal(r.seen[i], 1);
    free(r.seen);
}

/* A call that finds the teardown under way is refused, from the loop
 * thread and from another; it never runs and its arg stays the caller's. */
struct late_call {
    struct evexec *ex;
    int ran;
    int rc_loop, rc_thread, cb_calls;
};

static void late_fn(void *arg)
{
    ((struct late_call *)arg)->ran++;
}

static void *late_thread(void *arg)
{
    struct late_call *c = arg;
    c->rc_thread = evexec_call_soon_threadsafe(c->ex, late_fn, c);
    return NULL;
}

static void late_cb(struct evexec_future *f, void *arg)
{
    struct late_call *c = arg;
    (void)f;
    c->cb_calls++;
    c->rc_loop = evexec_call_soon_threadsafe(c->ex, late_fn, c);
    pthread_t t;
    if (pthread_create(&t, NULL, late_thread, c) == 0)
        pthread_join(t, NULL);
}

static void test_call_soon_after_teardown_began(void **state)
{
    struct tu_fx *fx = *state;
    struct late_call c = { fx->ex, 0, -1, -1, 0 };
    struct evexec_future *f = evexec_future_new(fx->ex);
    assert_non_null(f);
    assert_int_equal(evexec_future_on_done(f, late_cb, &c), 0);
    /* Made before the teardown: runs inside it. */
    assert_int_equal(evexec_call_soon_threadsafe(fx->ex, late_fn, &c), 0);
    free_ex(fx);
    assert_int_equal(c.cb_calls, 1);
    assert_int_equal(c.rc_loop, ESHUTDOWN);
    assert_int_equal(c.rc_thread, ESHUTDOWN);
    assert_int_equal(c.ran, 1);
}

/* evexec_free() from a callback, then the pool freed at once: a running
 * job (waiting for its cancel), queued jobs, a sleep and a hand-made
 * future end inside the free, each callback once; nothing touches the
 * freed pool (AddressSanitizer watches).  Once from the loop's dispatch,
 * once from inside evexec_run_until_complete. */
static int wait_cancel_job(struct evexec_job *job, void *arg)
{
    atomic_int *started = arg;
    atomic_fetch_add(started, 1);
    return evexec_job_wait_cancel(job, NULL);
}

struct free_all {
    struct tu_fx *fx;
    int calls;
};

static void free_ex_and_pool(struct evexec_future *f, void *arg)
{
    struct free_all *c = arg;
    (void)f;
    c->calls++;
    evexec_free(c->fx->ex);
    evexec_pool_free(c->fx->pool);
    c->fx->ex = NULL;
    c->fx->pool = NULL;
    /* The watchdog is the only event left on the base. */
    event_base_loopexit(c->fx->base, NULL);
}

static int started_one(void *arg)
{
    return atomic_load((atomic_int *)arg) >= 1;
}

/* Replace the fixture's pool and evexec by ones with a single worker. */
static void one_worker(struct tu_fx *fx)
{
    evexec_free(fx->ex);
    evexec_pool_free(fx->pool);
    fx->pool = tu_pool_new(1, 0);
    assert_non_null(fx->pool);
    fx->ex = evexec_new(fx->base, fx->pool);
    assert_non_null(fx->ex);
}

static void check_free_then_pool_free(struct tu_fx *fx, int inside_ruc)
{
    /* One worker, so the other jobs stay queued. */
    one_worker(fx);

    atomic_int started;
    atomic_init(&started, 0);
    struct tu_rec rrun, rq1, rq2, rsleep, rhand, rafter;
    struct free_all c = { fx, 0 };
    struct evexec_future *run = evexec_run(fx->ex, wait_cancel_job, &started);
    assert_non_null(run);
    assert_int_equal(tu_poll(started_one, &started), 0);
    struct evexec_future *q1 = evexec_run(fx->ex, wait_cancel_job, &started);
    struct evexec_future *q2 = evexec_run(fx->ex, wait_cancel_job, &started);
    struct evexec_future *sl = sleep_ms(fx, 60000);
    struct evexec_future *hand = evexec_future_new(fx->ex);
    struct evexec_future *trigger = evexec_future_new(fx->ex);
    assert_non_null(q1);
    assert_non_null(q2);
    assert_non_null(hand);
    assert_non_null(trigger);
    watch(run, &rrun);
    watch(q1, &rq1);
    watch(q2, &rq2);
    watch(sl, &rsleep);
    watch(hand, &rhand);
    assert_int_equal(evexec_future_on_done(trigger, free_ex_and_pool, &c), 0);
    watch(trigger, &rafter);
    assert_int_equal(evexec_future_set_result(trigger, NULL, NULL), 0);
    if (inside_ruc) {
        assert_int_equal(evexec_run_until_complete(fx->ex, trigger), 0);
    } else {
        struct watchdog w;
        watchdog_start(&w, fx->base);
        assert_int_not_equal(event_base_dispatch(fx->base), -1);
        watchdog_stop(&w);
    }
    assert_null(fx->ex);
    assert_null(fx->pool);
    assert_int_equal(c.calls, 1);
    assert_int_equal(rafter.calls, 1);
    assert_int_equal(rafter.error, 0);
    const struct tu_rec *cancelled[] = { &rrun, &rq1, &rq2, &rsleep, &rhand };
    for (int i = 0; i < 5; i++) {
        assert_int_equal(cancelled[i]->calls, 1);
        assert_int_equal(cancelled[i]->error, ECANCELED);
    }
    /* The queued ones never ran; the running one was cancelled. */
    assert_int_equal(atomic_load(&started), 1);
}

static void test_free_in_callback_then_pool(void **state)
{
    check_free_then_pool_free(*state, 0);
}

static void test_free_in_run_until_complete_then_pool(void **state)
{
    check_free_then_pool_free(*state, 1);
}

/* libevent's allocator failing at each of evexec_new's allocations in
 * turn (event_new twice, event_add of the wake-up event): NULL with
 * ENOMEM, nothing leaked, and the next try works. */
static int ev_fail_at = -1;     /* the n-th libevent allocation fails */
static int ev_allocs;

static int ev_should_fail(void)
{
    if (ev_fail_at < 0)
        return 0;
    return ev_allocs++ == ev_fail_at;
}

static void *ev_malloc(size_t n)
{
    return ev_should_fail() ? NULL : malloc(n);
}

static void *ev_realloc(void *p, size_t n)
{
    return ev_should_fail() ? NULL : realloc(p, n);
}

static void test_new_libevent_out_of_memory(void **state)
{
    struct tu_fx *fx = *state;
    int failures = 0, k;
    for (k = 0; k < 64; k++) {
        /* A fresh base each time, so every allocation of the first
         * event_add happens again. */
        struct event_base *base = event_base_new();
        assert_non_null(base);
        ev_allocs = 0;
        ev_fail_at = k;
        errno = 0;
        struct evexec *ex = evexec_new(base, fx->pool);
        int err = errno;
        int used = ev_allocs;
        ev_fail_at = -1;
        if (!ex) {
            assert_int_equal(err, ENOMEM);
            failures++;
            event_base_free(base);
            continue;
        }
        assert_true(used <= k);     /* it made fewer allocations than k+1 */
        struct tu_job *j = tu_fx_job(fx, 1, 0);
        struct evexec_future *f = evexec_run(ex, tu_job_fn, j);
        assert_non_null(f);
        assert_int_equal(evexec_run_until_complete(ex, f), 0);
        evexec_future_unref(f);
        evexec_free(ex);
        event_base_free(base);
        break;
    }
    assert_true(k < 64);
    /* Two event_new calls and at least one allocation in event_add. */
    assert_true(failures >= 3);
}

/* ---- structs that grow ------------------------------------------------------ */

/* A caller compiled against a newer header: our struct plus a field we do
 * not know. */
struct newer_config {
    struct evexec_pool_config known;
    uint64_t unknown;
};

struct newer_opts {
    struct evexec_run_opts known;
    uint64_t unknown;
};

static void test_struct_sizes(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_pool_config init = EVEXEC_POOL_CONFIG_INIT;
    assert_int_equal(init.size, sizeof init);
    struct evexec_pool *p = evexec_pool_new(&init);
    assert_non_null(p);
    evexec_pool_free(p);

    /* Zero-filled: the 1.0 layout; its fields are read. */
    struct evexec_pool_config zero;
    memset(&zero, 0, sizeof zero);
    zero.min_threads = 3;
    zero.max_threads = 2;
    errno = 0;
    assert_null(evexec_pool_new(&zero));       /* min > max: it was read */
    assert_int_equal(errno, EINVAL);

    struct newer_config nc;
    memset(&nc, 0, sizeof nc);
    nc.known.size = sizeof nc;
    nc.known.max_threads = 2;
    p = evexec_pool_new(&nc.known);            /* unknown bytes zero: fine */
    assert_non_null(p);
    evexec_pool_free(p);
    nc.unknown = 1;
    errno = 0;
    assert_null(evexec_pool_new(&nc.known));   /* asks for what we lack */
    assert_int_equal(errno, EINVAL);
    nc.unknown = 0;
    nc.known.size = 2;                         /* not even the size field */
    errno = 0;
    assert_null(evexec_pool_new(&nc.known));
    assert_int_equal(errno, EINVAL);

    struct newer_opts no;
    memset(&no, 0, sizeof no);
    no.known.size = sizeof no;
    no.known.lane = EVEXEC_LANE_SLOW;
    struct tu_job *j = tu_fx_job(fx, 0, 0);
    struct evexec_future *f = evexec_run_opts(fx->ex, tu_job_fn, j, &no.known);
    assert_non_null(f);
    assert_int_equal(evexec_run_until_complete(fx->ex, f), 0);
    evexec_future_unref(f);
    no.unknown = 7;
    errno = 0;
    assert_null(evexec_run_opts(fx->ex, tu_job_fn, j, &no.known));
    assert_int_equal(errno, EINVAL);
    struct evexec_run_opts oi = EVEXEC_RUN_OPTS_INIT;
    assert_int_equal(oi.size, sizeof oi);
    f = evexec_run_opts(fx->ex, tu_job_fn, j, &oi);
    assert_non_null(f);
    assert_int_equal(evexec_run_until_complete(fx->ex, f), 0);
    evexec_future_unref(f);
}

/* ---- evexec_submit: the common case in one call ---------------------------- */

struct submit_seen {
    int calls, error;
    long value;
    int in_api;
};

static void submit_done(struct evexec_future *f, void *arg)
{
    struct submit_seen *s = arg;
    s->calls++;
    s->error = evexec_future_error(f);
    struct tu_result *r = evexec_future_result(f);
    s->value = r ? r->value : -1;
    s->in_api = tu_in_api;
}

static void test_submit(void **state)
{
    struct tu_fx *fx = *state;
    struct submit_seen ok = { 0 }, bad = { 0 }, cancelled = { 0 };
    struct tu_job *a = tu_fx_job(fx, 1, 0);
    struct tu_job *b = tu_fx_job(fx, 0, EIO);
    tu_in_api = 1;
    assert_int_equal(evexec_submit(fx->ex, tu_job_fn, a, submit_done, &ok), 0);
    assert_int_equal(evexec_submit(fx->ex, tu_job_fn, b, submit_done, &bad), 0);
    tu_in_api = 0;
    assert_int_equal(evexec_submit(fx->ex, tu_job_fn, a, NULL, &ok), EINVAL);
    assert_int_equal(evexec_submit(NULL, tu_job_fn, a, submit_done, &ok), EINVAL);
    assert_int_equal(evexec_submit(fx->ex, NULL, a, submit_done, &ok), EINVAL);
    dispatch(fx);
    assert_int_equal(ok.calls, 1);
    assert_int_equal(ok.error, 0);
    assert_int_equal(ok.in_api, 0);
    assert_int_equal(ok.value, 0);
    assert_int_equal(bad.calls, 1);
    assert_int_equal(bad.error, EIO);
    /* The result went with the future, after the callback. */
    assert_int_equal(atomic_load(&fx->frees), 1);
    /* Pending at evexec_free: ECANCELED, once. */
    struct tu_job *parked = tu_fx_job(fx, 1, 0);
    parked->gate = &fx->gate;
    assert_int_equal(evexec_submit(fx->ex, tu_job_fn, parked, submit_done, &cancelled), 0);
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, 1), 0);
    free_ex(fx);
    assert_int_equal(cancelled.calls, 1);
    assert_int_equal(cancelled.error, ECANCELED);
}

/* ---- bad input and defaults ---------------------------------------------- */

static void test_null_arguments(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_pool_stats before = tu_stats(fx->pool);
    struct tu_job *j = tu_fx_job(fx, 0, 0);

    errno = 0;
    assert_null(evexec_new(NULL, fx->pool));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(evexec_run(NULL, tu_job_fn, j));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(evexec_run(fx->ex, NULL, j));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(evexec_run_opts(NULL, tu_job_fn, j, NULL));
    assert_int_equal(errno, EINVAL);
    struct evexec_run_opts bad_lane = { .lane = 7 };
    errno = 0;
    assert_null(evexec_run_opts(fx->ex, tu_job_fn, j, &bad_lane));
    assert_int_equal(errno, EINVAL);
    bad_lane.lane = -1;
    errno = 0;
    assert_null(evexec_run_opts(fx->ex, tu_job_fn, j, &bad_lane));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(evexec_call_soon_threadsafe(NULL, count_call, NULL), EINVAL);
    assert_int_equal(evexec_call_soon_threadsafe(fx->ex, NULL, NULL), EINVAL);
    assert_null(evexec_get_base(NULL));
    assert_null(evexec_get_pool(NULL));
    evexec_free(NULL);
    evexec_job_set_result(NULL, NULL, NULL);

    /* Nothing was queued or started by the refused calls. */
    dispatch(fx);
    struct evexec_pool_stats after = tu_stats(fx->pool);
    assert_int_equal(after.threads_started, before.threads_started);
    assert_int_equal(after.completed, before.completed);
    assert_int_equal(after.queued, 0);
    assert_int_equal(atomic_load(&j->ran), 0);

    assert_ptr_equal(evexec_get_base(fx->ex), fx->base);
    assert_ptr_equal(evexec_get_pool(fx->ex), fx->pool);
}

/* opts NULL and an explicit default lane both run like evexec_run. */
/* arg_free gives the argument back exactly once: on the worker after a
 * job ran, at cancel for a queued job, in evexec_free for one still
 * queued; never for a refused submission. */
static atomic_int arg_frees;

static void count_arg_free(void *arg)
{
    (void)arg;
    atomic_fetch_add(&arg_frees, 1);
}

static void test_arg_free(void **state)
{
    struct tu_fx *fx = *state;
    struct tu_job *jobs = tu_fx_jobs(fx, NWORKERS);
    struct tu_job *later = tu_fx_jobs(fx, 3);
    struct evexec_future *futs[NWORKERS];
    struct evexec_run_opts opts = { .arg_free = count_arg_free };
    atomic_store(&arg_frees, 0);
    park_workers(fx, jobs, futs, 0);

    for (int i = 0; i < 3; i++)
        tu_job_init(&later[i], &fx->frees, 0, 0);
    struct evexec_future *cancelled = evexec_run_opts(fx->ex, tu_job_fn, &later[0], &opts);
    struct evexec_future *runs = evexec_run_opts(fx->ex, tu_job_fn, &later[1], &opts);
    struct evexec_future *left = evexec_run_opts(fx->ex, tu_job_fn, &later[2], &opts);
    assert_non_null(cancelled);
    assert_non_null(runs);
    assert_non_null(left);
    assert_int_equal(evexec_future_cancel(cancelled), 0);
    assert_int_equal(atomic_load(&arg_frees), 1);

    tu_gate_open(&fx->gate);
    assert_int_equal(evexec_run_until_complete(fx->ex, runs), 0);
    assert_int_equal(evexec_run_until_complete(fx->ex, left), 0);
    assert_int_equal(atomic_load(&later[1].ran), 1);
    assert_int_equal(atomic_load(&later[2].ran), 1);
    assert_int_equal(atomic_load(&arg_frees), 3);
    assert_int_equal(atomic_load(&later[0].ran), 0);

    errno = 0;
    assert_null(evexec_run_opts(fx->ex, NULL, &later[0], &opts));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(atomic_load(&arg_frees), 3);
    evexec_future_unref(cancelled);
    evexec_future_unref(runs);
    evexec_future_unref(left);
    unref_all(futs, NWORKERS);
}

/* A queued job's argument is given back inside evexec_free. */
static void test_arg_free_teardown(void **state)
{
    struct tu_fx *fx = *state;
    struct tu_job *jobs = tu_fx_jobs(fx, NWORKERS);
    struct tu_job *queued = tu_fx_job(fx, 0, 0);
    struct evexec_future *futs[NWORKERS];
    struct evexec_run_opts opts = { .arg_free = count_arg_free };
    atomic_store(&arg_frees, 0);
    park_workers(fx, jobs, futs, 0);
    struct evexec_future *q = evexec_run_opts(fx->ex, tu_job_fn, queued, &opts);
    assert_non_null(q);
    unref_all(futs, NWORKERS);
    evexec_future_unref(q);
    evexec_free(fx->ex);
    fx->ex = NULL;
    assert_int_equal(atomic_load(&arg_frees), 1);
    assert_int_equal(atomic_load(&queued->ran), 0);
    tu_gate_open(&fx->gate);
}

static void test_run_opts(void **state)
{
    struct tu_fx *fx = *state;
    struct tu_job *a = tu_fx_job(fx, 0, 0);
    struct tu_job *b = tu_fx_job(fx, 0, EIO);
    struct evexec_run_opts slow = { .lane = EVEXEC_LANE_SLOW };
    struct evexec_future *fa = evexec_run_opts(fx->ex, tu_job_fn, a, NULL);
    struct evexec_future *fb = evexec_run_opts(fx->ex, tu_job_fn, b, &slow);
    assert_non_null(fa);
    assert_non_null(fb);
    assert_int_equal(evexec_run_until_complete(fx->ex, fa), 0);
    assert_int_equal(evexec_run_until_complete(fx->ex, fb), EIO);
    evexec_future_unref(fa);
    evexec_future_unref(fb);
}

/* pool NULL is the process-wide default pool, which works. */
static void test_default_pool(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_pool *def = evexec_pool_default();
    assert_non_null(def);
    assert_ptr_equal(evexec_pool_default(), def);
    struct evexec *ex = evexec_new(fx->base, NULL);
    assert_non_null(ex);
    assert_ptr_equal(evexec_get_pool(ex), def);
    struct tu_job *j = tu_fx_job(fx, 1, 0);
    struct evexec_future *f = evexec_run(ex, tu_job_fn, j);
    assert_non_null(f);
    assert_int_equal(evexec_run_until_complete(ex, f), 0);
    assert_non_null(evexec_future_result(f));
    evexec_future_unref(f);
    evexec_free(ex);
    assert_int_equal(atomic_load(&fx->frees), 1);
}

/* ---- drain budget ------------------------------------------------------ */

#define FLOOD 1000

/* What a flood test saw, in order: job callbacks by index, and the
 * position (callbacks run before it) of the other event's first run. */
static struct flood {
    struct tu_fx *fx;
    int order[FLOOD];
    int ncalls;
    int other_at;           /* -1: the other event has not run */
    int sv[2];              /* socketpair: the loop's other event */
    struct event *sock_ev;
    int free_in_other;      /* the other event frees the evexec */
    int free_at;            /* a job callback frees it at this count (-1) */
    int slow;               /* each callback sleeps 1 us */
    int errors;
} flood;

static int flood_job(struct evexec_job *job, void *arg)
{
    (void)job;
    (void)arg;
    return 0;
}

static void flood_done(struct evexec_future *f, void *arg)
{
    int i = (int)(intptr_t)arg;
    if (evexec_future_error(f) != 0)
        flood.errors++;
    if (flood.ncalls < FLOOD)
        flood.order[flood.ncalls] = i;
    flood.ncalls++;
    if (flood.slow)
        tu_sleep_us(1);
    if (flood.ncalls == 1) {
        /* The drain has begun: only now does the other event get ready. */
        char c = 'x';
        assert_int_equal(write(flood.sv[1], &c, 1), 1);
    }
    if (flood.ncalls == flood.free_at)
        free_ex(flood.fx);
}

static void flood_sock(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    char c;
    if (read(fd, &c, 1) == 1 && flood.other_at < 0)
        flood.other_at = flood.ncalls;
    event_del(flood.sock_ev);
    if (flood.free_in_other && flood.fx->ex)
        free_ex(flood.fx);
}

static int flood_all_back(void *arg)
{
    return tu_stats(((struct tu_fx *)arg)->pool).completed >= FLOOD;
}

/* One worker, so jobs complete in submission order; FLOOD jobs submitted
 * and back before the loop runs, so that the first drain finds them all. */
static void flood_setup(struct tu_fx *fx, unsigned max_cb, unsigned max_usec)
{
    one_worker(fx);
    memset(&flood, 0, sizeof flood);
    flood.fx = fx;
    flood.other_at = -1;
    flood.free_at = -1;
    assert_int_equal(evexec_set_drain_budget(fx->ex, max_cb, max_usec), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, flood.sv), 0);
    flood.sock_ev = event_new(fx->base, flood.sv[0], EV_READ | EV_PERSIST, flood_sock, NULL);
    assert_non_null(flood.sock_ev);
    assert_int_equal(event_add(flood.sock_ev, NULL), 0);
    for (int i = 0; i < FLOOD; i++)
        assert_int_equal(evexec_submit(fx->ex, flood_job, NULL, flood_done,
                                       (void *)(intptr_t)i), 0);
    assert_int_equal(tu_poll(flood_all_back, fx), 0);
    tu_sleep_us(10000);     /* the last push follows the count at once */
}

static void flood_check(void)
{
    assert_int_equal(flood.ncalls, FLOOD);
    for (int i = 0; i < FLOOD; i++)
        assert_int_equal(flood.order[i], i);
    event_free(flood.sock_ev);
    close(flood.sv[0]);
    close(flood.sv[1]);
}

/* Run a flood under a budget; the other event ran after at most `most`
 * callbacks, and every callback ran once, in completion order. */
static void flood_run(struct tu_fx *fx, unsigned max_cb, unsigned max_usec,
                      int slow, int most)
{
    flood_setup(fx, max_cb, max_usec);
    flood.slow = slow;
    dispatch(fx);
    assert_in_range(flood.other_at, 1, most);
    assert_int_equal(flood.errors, 0);
    flood_check();
}

/* With a budget of 10, a socket made readable by the first callback runs
 * after at most 10 of the 1000 pending callbacks (without a budget, after
 * all of them). */
static void test_drain_budget_yields(void **state)
{
    flood_run(*state, 10, 0, 0, 10);
}

/* The same with a time budget only (1 us, the clock read every 16
 * callbacks; each callback sleeps at least 1 us): at most 16 run first. */
static void test_drain_budget_time(void **state)
{
    flood_run(*state, 0, 1, 1, 16);
}

/* 0, 0 is the default: everything pending is delivered in one pass. */
static void test_drain_budget_unlimited(void **state)
{
    struct tu_fx *fx = *state;
    flood_setup(fx, 10, 0);
    assert_int_equal(evexec_set_drain_budget(fx->ex, 0, 0), 0);
    dispatch(fx);
    assert_int_equal(flood.other_at, FLOOD);
    flood_check();
}

/* Free the evexec in the middle of a budgeted drain: from the loop's
 * other event (free_in_other) or from the free_at-th callback.  The rest
 * end inside the free, once each, in order; the other event ran first. */
static void flood_free(struct tu_fx *fx, int free_in_other, int free_at)
{
    flood_setup(fx, 10, 0);
    flood.free_in_other = free_in_other;
    flood.free_at = free_at;
    dispatch(fx);
    assert_null(fx->ex);
    assert_in_range(flood.other_at, 1, 10);
    flood_check();
}

/* While the drain waits for its next pass. */
static void test_drain_budget_free_between(void **state)
{
    flood_free(*state, 1, -1);
}

/* From a callback of the drain, in its second pass of callbacks. */
static void test_drain_budget_free_inside(void **state)
{
    flood_free(*state, 0, 15);
}

/* A budgeted drain that ends with budget to spare looks at the list
 * again.  Calls c1..c8 are two passes of a budget of 4; c8 pushes c9,
 * which the second pass detaches with no budget left (so more_ev goes on
 * with it), then asks, from the ready queue of the same pass, for c10:
 * c10 lands on the emptied list and writes the wake-up.  The loop's next
 * turn reads that wake-up in a pass that waits for more_ev, and more_ev
 * delivers c9 with budget to spare: c10 must follow in the same pass,
 * nothing else would wake the loop for it (with no spin to find it). */
static struct {
    struct evexec *ex;
    struct evexec_future *done_fut;
    struct event_base *base;
    int order[16], n;
} lw;

static void lw_push10(struct evexec_future *f, void *arg);

static void lw_call(void *arg)
{
    int id = (int)(intptr_t)arg;
    if (lw.n < 16)
        lw.order[lw.n++] = id;
    if (id == 8) {
        assert_int_equal(evexec_call_soon_threadsafe(lw.ex, lw_call, (void *)(intptr_t)9), 0);
        assert_int_equal(evexec_future_on_done(lw.done_fut, lw_push10, NULL), 0);
    }
    if (id == 10)
        event_base_loopbreak(lw.base);
}

static void lw_push10(struct evexec_future *f, void *arg)
{
    (void)f;
    (void)arg;
    assert_int_equal(evexec_call_soon_threadsafe(lw.ex, lw_call, (void *)(intptr_t)10), 0);
}

static void lw_give_up(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    event_base_loopbreak(lw.base);
}

static void test_drain_budget_no_lost_wakeup(void **state)
{
    struct tu_fx *fx = *state;
    /* No spin: a loop that watches the list after a pass would find c10
     * by itself and hide the lost wake-up. */
    evexec_free(fx->ex);
    evexec_pool_free(fx->pool);
    struct evexec_pool_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.size = sizeof cfg;
    cfg.max_threads = 1;
    cfg.spin_us = EVEXEC_SPIN_OFF;
    fx->pool = evexec_pool_new(&cfg);
    assert_non_null(fx->pool);
    fx->ex = evexec_new(fx->base, fx->pool);
    assert_non_null(fx->ex);
    memset(&lw, 0, sizeof lw);
    lw.ex = fx->ex;
    lw.base = fx->base;
    assert_int_equal(evexec_set_drain_budget(fx->ex, 4, 0), 0);
    lw.done_fut = evexec_future_new(fx->ex);
    assert_non_null(lw.done_fut);
    assert_int_equal(evexec_future_set_result(lw.done_fut, NULL, NULL), 0);
    for (int i = 1; i <= 8; i++)
        assert_int_equal(evexec_call_soon_threadsafe(fx->ex, lw_call, (void *)(intptr_t)i), 0);
    /* Only a lost wake-up lets this fire. */
    struct timeval limit = { 10, 0 };
    struct event *guard = evtimer_new(fx->base, lw_give_up, NULL);
    assert_non_null(guard);
    assert_int_equal(evtimer_add(guard, &limit), 0);
    assert_int_not_equal(event_base_dispatch(fx->base), -1);
    event_free(guard);
    assert_int_equal(lw.n, 10);
    for (int i = 0; i < 10; i++)
        assert_int_equal(lw.order[i], i + 1);
    evexec_future_unref(lw.done_fut);
}

static void test_drain_budget_bad(void **state)
{
    struct tu_fx *fx = *state;
    assert_int_equal(evexec_set_drain_budget(NULL, 1, 1), EINVAL);
    assert_int_equal(evexec_set_drain_budget(fx->ex, 5, 100), 0);
    assert_int_equal(evexec_set_drain_budget(fx->ex, 0, 0), 0);
}

/* ---- watermarks ---------------------------------------------------------- */

static struct wm_rec {
    int calls[16];
    int n;
    int delivered_at[16];   /* job callbacks run before each call */
    int delivered;
    int in_api;             /* a call came inside an API call */
} wm;

static void wm_cb(struct evexec *ex, int above, void *arg)
{
    (void)ex;
    assert_ptr_equal(arg, &wm);
    if (tu_in_api)
        wm.in_api++;
    if (wm.n < 16) {
        wm.calls[wm.n] = above;
        wm.delivered_at[wm.n] = wm.delivered;
    }
    wm.n++;
}

static void wm_count(struct evexec_future *f, void *arg)
{
    (void)f;
    (void)arg;
    wm.delivered++;
}

static int wm_gated(struct evexec_job *job, void *arg)
{
    return tu_gated_job(job, arg);
}

static void wm_submit(struct tu_fx *fx, int n, int gated)
{
    tu_in_api = 1;
    for (int i = 0; i < n; i++)
        assert_int_equal(evexec_submit(fx->ex, gated ? wm_gated : flood_job,
                                       gated ? &fx->gate : NULL, wm_count, NULL), 0);
    tu_in_api = 0;
}

/* 100 gated jobs, high 50, low 10: one "above" call from the loop (none
 * inside evexec_run), then, as they complete, one "below" call once the
 * count fell to 10. */
static void test_watermarks(void **state)
{
    struct tu_fx *fx = *state;
    memset(&wm, 0, sizeof wm);
    assert_int_equal(evexec_set_watermarks(fx->ex, 10, 50, wm_cb, &wm), 0);
    wm_submit(fx, 100, 1);
    assert_int_equal(wm.n, 0);
    tu_gate_open(&fx->gate);
    dispatch(fx);
    assert_int_equal(wm.delivered, 100);
    assert_int_equal(wm.n, 2);
    assert_int_equal(wm.calls[0], 1);
    assert_int_equal(wm.calls[1], 0);
    assert_true(wm.delivered_at[0] < 90);
    assert_true(wm.delivered_at[1] >= 90);
    assert_int_equal(wm.in_api, 0);
}

/* One call per crossing, alternating, also when the count goes up and
 * down before the loop runs (a cancel of queued jobs). */
static void test_watermarks_oscillate(void **state)
{
    struct tu_fx *fx = *state;
    memset(&wm, 0, sizeof wm);
    assert_int_equal(evexec_set_watermarks(fx->ex, 4, 6, wm_cb, &wm), 0);
    struct tu_job *running = tu_fx_jobs(fx, NWORKERS);
    struct evexec_future *futs[NWORKERS];
    park_workers(fx, running, futs, 0);                 /* 4 */
    struct evexec_future *q1 = evexec_run(fx->ex, flood_job, NULL);
    struct evexec_future *q2 = evexec_run(fx->ex, flood_job, NULL); /* 6: up */
    assert_non_null(q1);
    assert_non_null(q2);
    tu_in_api = 1;
    assert_int_equal(evexec_future_cancel(q1), 0);     /* 5 */
    assert_int_equal(evexec_future_cancel(q2), 0);     /* 4: down */
    tu_in_api = 0;
    assert_int_equal(wm.n, 0);
    evexec_future_unref(q1);
    evexec_future_unref(q2);
    tu_gate_open(&fx->gate);
    unref_all(futs, NWORKERS);
    dispatch(fx);
    assert_int_equal(wm.n, 2);
    for (int round = 0; round < 3; round++) {
        wm_submit(fx, 6, 0);
        dispatch(fx);
    }
    assert_int_equal(wm.n, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(wm.calls[i], i % 2 == 0);
    assert_int_equal(wm.in_api, 0);
}

/* high 0 is off; so is setting it off after it was on. */
static void test_watermarks_off(void **state)
{
    struct tu_fx *fx = *state;
    memset(&wm, 0, sizeof wm);
    assert_int_equal(evexec_set_watermarks(fx->ex, 0, 0, NULL, NULL), 0);
    wm_submit(fx, 20, 0);
    dispatch(fx);
    assert_int_equal(evexec_set_watermarks(fx->ex, 1, 5, wm_cb, &wm), 0);
    wm_submit(fx, 10, 0);                       /* crossed: told later */
    assert_int_equal(evexec_set_watermarks(fx->ex, 1, 0, NULL, NULL), 0);
    dispatch(fx);
    assert_int_equal(wm.delivered, 30);
    assert_int_equal(wm.n, 0);
}

/* Freed while above: no call during or after the free. */
static void test_watermarks_free_above(void **state)
{
    struct tu_fx *fx = *state;
    memset(&wm, 0, sizeof wm);
    assert_int_equal(evexec_set_watermarks(fx->ex, 1, 5, wm_cb, &wm), 0);
    wm_submit(fx, 10, 1);
    assert_int_equal(event_base_loop(fx->base, EVLOOP_NONBLOCK), 0);
    assert_int_equal(wm.n, 1);
    assert_int_equal(wm.calls[0], 1);
    free_ex(fx);
    tu_gate_open(&fx->gate);
    assert_int_equal(evexec_pool_shutdown(fx->pool, EVEXEC_SHUTDOWN_WAIT), 0);
    event_base_loop(fx->base, EVLOOP_NONBLOCK);
    assert_int_equal(wm.delivered, 10);
    assert_int_equal(wm.n, 1);
}

static void test_watermarks_bad(void **state)
{
    struct tu_fx *fx = *state;
    assert_int_equal(evexec_set_watermarks(NULL, 1, 2, wm_cb, NULL), EINVAL);
    assert_int_equal(evexec_set_watermarks(fx->ex, 2, 2, wm_cb, NULL), EINVAL);
    assert_int_equal(evexec_set_watermarks(fx->ex, 3, 2, wm_cb, NULL), EINVAL);
    assert_int_equal(evexec_set_watermarks(fx->ex, 1, 2, NULL, NULL), EINVAL);
    assert_int_equal(evexec_set_watermarks(fx->ex, 5, 0, NULL, NULL), 0);
}

/* ---- bursts larger than a slab of job blocks ------------------------------ */

enum { BURST_N = 1500 };       /* job blocks come 481 to a 64 KiB slab */

static int burst_seen[BURST_N];
static int burst_bad;
static int burst_cancelled;

static int burst_job(struct evexec_job *job, void *arg)
{
    evexec_job_set_result(job, arg, NULL);
    return 0;
}

static void burst_done(struct evexec_future *f, void *arg)
{
    int *seen = arg;
    seen[0]++;
    if (evexec_future_error(f) == ECANCELED) {
        burst_cancelled++;
        return;
    }
    if (evexec_future_error(f) != 0 || evexec_future_result(f) != (void *)(seen + 1))
        burst_bad++;
}

/* Submit jobs [from, to) with evexec_submit: job i's result is
 * &burst_seen[i + 1] (a pointer only compared), its callback counts
 * burst_seen[i]. */
static void burst_submit(struct evexec *ex, int from, int to)
{
    static int tail[1];
    for (int i = from; i < to; i++)
        assert_int_equal(evexec_submit(ex, burst_job,
                                       i + 1 < BURST_N ? (void *)&burst_seen[i + 1] : tail,
                                       burst_done, &burst_seen[i]), 0);
}

/* Bursts over several slabs deliver every job once with its result, also
 * a second burst after the first drained (blocks recycled, all slabs but
 * one given back); evexec_free() with blocks of several slabs in use
 * (futures still referenced, jobs running, jobs queued) ends the queued
 * ones ECANCELED, and the running ones finish into blocks that outlive
 * the evexec (the sanitizer builds check that). */
static void test_burst_slabs(void **state)
{
    struct tu_fx *fx = *state;
    memset(burst_seen, 0, sizeof burst_seen);
    burst_bad = burst_cancelled = 0;
    for (int round = 0; round < 2; round++) {
        burst_submit(fx->ex, 0, BURST_N - 1);
        dispatch(fx);
        for (int i = 0; i < BURST_N - 1; i++)
            assert_int_equal(burst_seen[i], round + 1);
    }
    assert_int_equal(burst_bad, 0);
    assert_int_equal(burst_cancelled, 0);

    /* Blocks held by referenced futures fill the first slab... */
    enum { HELD = 500 };
    static struct evexec_future *held[HELD];
    for (int i = 0; i < HELD; i++) {
        held[i] = evexec_run(fx->ex, burst_job, NULL);
        assert_non_null(held[i]);
    }
    dispatch(fx);
    /* ...so that the running jobs are in the second, the queued ones
     * after. */
    struct tu_job parked[NWORKERS];
    struct evexec_future *pf[NWORKERS];
    park_workers(fx, parked, pf, 1);
    unref_all(pf, NWORKERS);
    memset(burst_seen, 0, sizeof burst_seen);
    burst_submit(fx->ex, 0, 1000);
    evexec_free(fx->ex);
    fx->ex = NULL;
    for (int i = 0; i < 1000; i++)
        assert_int_equal(burst_seen[i], 1);
    assert_int_equal(burst_cancelled, 1000);
    tu_gate_open(&fx->gate);
    assert_int_equal(evexec_pool_shutdown(fx->pool, EVEXEC_SHUTDOWN_WAIT), 0);
    for (int i = 0; i < NWORKERS; i++)
        assert_int_equal(atomic_load(&parked[i].ran), 1);
    assert_int_equal(atomic_load(&fx->frees), NWORKERS);   /* released on the workers */
}

/* ---- batches of submissions (evexec_batch_begin/end) --------------------- */

struct stats_reader {
    struct evexec_pool *pool;
    size_t queued;
};

static void *read_queued(void *arg)
{
    struct stats_reader *r = arg;
    struct evexec_pool_stats st;
    r->queued = evexec_pool_stats(r->pool, &st) == 0 ? st.queued : (size_t)-1;
    return NULL;
}

/* The pool's queued count, read by another thread: a snapshot made on the
 * loop thread would hand this thread's batch over first. */
static size_t queued_elsewhere(struct evexec_pool *pool)
{
    struct stats_reader r = { pool, 0 };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, read_queued, &r), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    return r.queued;
}

/* Jobs submitted in a batch from outside evexec's callbacks reach the pool
 * only when the outermost batch ends, all of them, and each then runs once
 * with its result delivered. */
static void test_batch_hands_over_at_end(void **state)
{
    struct tu_fx *fx = *state;
    struct tu_job parked[NWORKERS];
    struct evexec_future *pf[NWORKERS];
    park_workers(fx, parked, pf, 0);
    assert_int_equal(queued_elsewhere(fx->pool), 0);

    enum { N = 5 };
    struct tu_job *j = tu_fx_jobs(fx, N);
    struct evexec_future *f[N];
    struct tu_rec rec[N];
    assert_int_equal(evexec_batch_begin(fx->ex), 0);
    assert_int_equal(evexec_batch_begin(fx->ex), 0);     /* nested */
    for (int i = 0; i < N; i++) {
        tu_job_init(&j[i], &fx->frees, 1, 0);
        f[i] = submit(fx, &j[i]);
        watch(f[i], &rec[i]);
    }
    assert_int_equal(queued_elsewhere(fx->pool), 0);
    assert_int_equal(evexec_batch_end(fx->ex), 0);
    assert_int_equal(queued_elsewhere(fx->pool), 0);     /* still open */
    assert_int_equal(evexec_batch_end(fx->ex), 0);
    assert_int_equal(queued_elsewhere(fx->pool), N);
    assert_int_equal(evexec_batch_end(fx->ex), EINVAL);  /* none open */

    tu_gate_open(&fx->gate);
    dispatch(fx);
    for (int i = 0; i < N; i++) {
        assert_rec(&rec[i], 0, evexec_future_result(f[i]));
        assert_non_null(evexec_future_result(f[i]));
        assert_int_equal(atomic_load(&j[i].ran), 1);
    }
    unref_all(f, N);
    unref_all(pf, NWORKERS);
    assert_int_equal(atomic_load(&fx->frees), N);
}

/* A cancelled job of an open batch never runs; evexec_run_until_complete
 * inside a batch does not wait for a job still held in it; the batch
 * stays open afterwards. */
static void test_batch_cancel_and_wait(void **state)
{
    struct tu_fx *fx = *state;
    struct tu_job *j = tu_fx_jobs(fx, 3);
    struct tu_rec rec[3];
    struct evexec_future *f[3];
    assert_int_equal(evexec_batch_begin(fx->ex), 0);
    for (int i = 0; i < 3; i++) {
        tu_job_init(&j[i], &fx->frees, 1, 0);
        f[i] = submit(fx, &j[i]);
        watch(f[i], &rec[i]);
    }
    tu_in_api = 1;
    assert_int_equal(evexec_future_cancel(f[1]), 0);
    tu_in_api = 0;
    assert_int_equal(evexec_run_until_complete(fx->ex, f[0]), 0);
    assert_int_equal(atomic_load(&j[0].ran), 1);
    assert_int_equal(evexec_batch_end(fx->ex), 0);
    dispatch(fx);
    assert_rec(&rec[0], 0, evexec_future_result(f[0]));
    assert_rec(&rec[1], ECANCELED, NULL);
    assert_rec(&rec[2], 0, evexec_future_result(f[2]));
    assert_int_equal(atomic_load(&j[1].ran), 0);
    unref_all(f, 3);
    assert_int_equal(atomic_load(&fx->frees), 2);
}

/* evexec_free() with a batch open ends its jobs ECANCELED, each callback
 * once, and they never run; bad calls are refused. */
static void test_batch_free_open(void **state)
{
    struct tu_fx *fx = *state;
    assert_int_equal(evexec_batch_begin(NULL), EINVAL);
    assert_int_equal(evexec_batch_end(NULL), EINVAL);
    assert_int_equal(evexec_batch_end(fx->ex), EINVAL);
    struct tu_job parked[NWORKERS];
    struct evexec_future *pf[NWORKERS];
    park_workers(fx, parked, pf, 0);
    unref_all(pf, NWORKERS);
    struct tu_job *j = tu_fx_jobs(fx, 4);
    struct tu_rec rec[4];
    assert_int_equal(evexec_batch_begin(fx->ex), 0);
    for (int i = 0; i < 4; i++) {
        tu_job_init(&j[i], &fx->frees, 1, 0);
        struct evexec_future *f = submit(fx, &j[i]);
        watch(f, &rec[i]);
        evexec_future_unref(f);
    }
    evexec_free(fx->ex);
    fx->ex = NULL;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(rec[i].calls, 1);
        assert_int_equal(rec[i].error, ECANCELED);
    }
    tu_gate_open(&fx->gate);
    evexec_pool_shutdown(fx->pool, EVEXEC_SHUTDOWN_WAIT);
    for (int i = 0; i < 4; i++)
        assert_int_equal(atomic_load(&j[i].ran), 0);
    assert_int_equal(atomic_load(&fx->frees), 0);
}

/* evexec_run_until_complete() inside an open batch also hands over the
 * jobs submitted while it runs from the loop's other events (not evexec
 * callbacks, which end a pass and hand them over anyway): a job submitted
 * from a plain libevent timer must run, or a wait for it never ends. */
struct batch_wait {
    struct tu_fx *fx;
    struct tu_job *job;
    struct evexec_future *until;    /* hand-made: ends when the job ends */
    struct evexec_future *jf;
};

static void batch_wait_job_done(struct evexec_future *f, void *arg)
{
    struct batch_wait *bw = arg;
    assert_int_equal(evexec_future_error(f), 0);
    if (!evexec_future_done(bw->until))
        assert_int_equal(evexec_future_set_result(bw->until, NULL, NULL), 0);
}

static void batch_wait_submit(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct batch_wait *bw = arg;
    bw->jf = submit(bw->fx, bw->job);
    assert_int_equal(evexec_future_on_done(bw->jf, batch_wait_job_done, bw), 0);
}

static void batch_wait_guard(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct batch_wait *bw = arg;
    if (!evexec_future_done(bw->until))
        evexec_future_set_error(bw->until, ETIMEDOUT);
}

static void test_batch_run_until_complete_later_jobs(void **state)
{
    struct tu_fx *fx = *state;
    struct batch_wait bw = { fx, tu_fx_job(fx, 0, 0), NULL, NULL };
    bw.until = evexec_future_new(fx->ex);
    assert_non_null(bw.until);
    struct timeval zero = { 0, 0 }, guard_after = { 10, 0 };
    struct event *sub = evtimer_new(fx->base, batch_wait_submit, &bw);
    struct event *guard = evtimer_new(fx->base, batch_wait_guard, &bw);
    assert_non_null(sub);
    assert_non_null(guard);
    assert_int_equal(evtimer_add(sub, &zero), 0);
    assert_int_equal(evtimer_add(guard, &guard_after), 0);

    assert_int_equal(evexec_batch_begin(fx->ex), 0);
    assert_int_equal(evexec_run_until_complete(fx->ex, bw.until), 0);
    assert_int_equal(atomic_load(&bw.job->ran), 1);
    assert_int_equal(evexec_batch_end(fx->ex), 0);

    event_free(sub);
    event_free(guard);
    dispatch(fx);
    assert_true(evexec_future_done(bw.jf));
    assert_int_equal(evexec_future_error(bw.jf), 0);
    evexec_future_unref(bw.jf);
    evexec_future_unref(bw.until);
}

/* The batch calls' error codes as the header gives them, and what a
 * batch does not hold: another thread's begin and end are EINVAL; on a
 * bounded pool a full queue is still EAGAIN at the call; a pool shut
 * down from another thread before the batch ends ends its jobs
 * ESHUTDOWN; two evexecs batching on one thread both hand theirs over. */
struct batch_other {
    struct evexec *ex;
    struct evexec_pool *pool;
    int begin_rc, end_rc;
};

static void *batch_other_thread(void *arg)
{
    struct batch_other *o = arg;
    o->begin_rc = evexec_batch_begin(o->ex);
    o->end_rc = evexec_batch_end(o->ex);
    if (o->pool)
        evexec_pool_shutdown(o->pool, 0);
    return NULL;
}

static void test_batch_errors(void **state)
{
    struct tu_fx *fx = *state;
    /* Another thread: EINVAL, and the batch opened here stays open. */
    assert_int_equal(evexec_batch_begin(fx->ex), 0);
    struct batch_other o = { fx->ex, NULL, -1, -1 };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, batch_other_thread, &o), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(o.begin_rc, EINVAL);
    assert_int_equal(o.end_rc, EINVAL);
    assert_int_equal(evexec_batch_end(fx->ex), 0);
    assert_int_equal(evexec_batch_end(fx->ex), EINVAL);

    /* Bounded: one worker parked, one job waiting, the next refused. */
    struct evexec_pool *bp = tu_pool_new(1, 1);
    struct evexec *bx = evexec_new(fx->base, bp);
    assert_non_null(bx);
    struct tu_gate gate;
    tu_gate_init(&gate);
    assert_int_equal(evexec_batch_begin(bx), 0);
    struct evexec_future *b0 = evexec_run(bx, tu_gated_job, &gate);
    assert_non_null(b0);
    assert_int_equal(tu_gate_wait_arrived(&gate, 1), 0);
    struct evexec_future *b1 = evexec_run(bx, tu_gated_job, &gate);
    assert_non_null(b1);
    errno = 0;
    assert_null(evexec_run(bx, tu_gated_job, &gate));
    assert_int_equal(errno, EAGAIN);
    tu_gate_open(&gate);
    assert_int_equal(evexec_run_until_complete(bx, b1), 0);
    assert_int_equal(evexec_batch_end(bx), 0);
    assert_int_equal(evexec_run_until_complete(bx, b0), 0);
    evexec_future_unref(b0);
    evexec_future_unref(b1);
    evexec_free(bx);
    evexec_pool_free(bp);
    tu_gate_destroy(&gate);

    /* Two evexecs on one thread, then a pool shut down meanwhile. */
    struct evexec_pool *sp = tu_pool_new(2, 0);
    struct evexec *sx = evexec_new(fx->base, sp);
    assert_non_null(sx);
    struct tu_job *j = tu_fx_jobs(fx, 3);
    struct tu_rec rec[3];
    struct evexec_future *f[3];
    for (int i = 0; i < 3; i++)
        tu_job_init(&j[i], &fx->frees, 0, 0);
    assert_int_equal(evexec_batch_begin(fx->ex), 0);
    assert_int_equal(evexec_batch_begin(sx), 0);
    f[0] = submit(fx, &j[0]);
    f[1] = evexec_run(sx, tu_job_fn, &j[1]);
    f[2] = submit(fx, &j[2]);
    assert_non_null(f[1]);
    for (int i = 0; i < 3; i++)
        watch(f[i], &rec[i]);
    struct evexec_future *late = evexec_run(sx, tu_job_fn, &j[1]);
    assert_non_null(late);
    struct tu_rec late_rec;
    watch(late, &late_rec);
    struct batch_other sd = { sx, sp, -1, -1 };
    assert_int_equal(pthread_create(&t, NULL, batch_other_thread, &sd), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(evexec_batch_end(sx), 0);
    assert_int_equal(evexec_batch_end(fx->ex), 0);
    assert_int_equal(evexec_run_until_complete(fx->ex, f[2]), 0);
    assert_int_equal(evexec_run_until_complete(fx->ex, f[0]), 0);
    assert_int_equal(evexec_run_until_complete(sx, f[1]), 0);
    assert_int_equal(evexec_run_until_complete(sx, late), ESHUTDOWN);
    assert_int_equal(atomic_load(&j[0].ran), 1);
    assert_int_equal(atomic_load(&j[1].ran), 1);
    assert_int_equal(atomic_load(&j[2].ran), 1);
    evexec_future_unref(late);
    unref_all(f, 3);
    evexec_free(sx);
    evexec_pool_free(sp);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rec[i].calls, 1);
    assert_int_equal(late_rec.calls, 1);
}

#define TESTS(X) \
    X(test_wakeup_channel) \
    X(test_result) \
    X(test_no_result) \
    X(test_result_set_twice) \
    X(test_take_result) \
    X(test_error_code) \
    X(test_error_code_negative) \
    X(test_pending_while_running) \
    X(test_unref_pending_job) \
    X(test_cancel_queued) \
    X(test_cancel_running) \
    X(test_cancel_running_stays_pending) \
    X(test_cancel_returned_undelivered) \
    X(test_cancel_done) \
    X(test_no_inline_callbacks) \
    X(test_callback_submits_work) \
    X(test_user_callback_submits_work) \
    X(test_sleep_callback_submits_work) \
    X(test_run_until_complete) \
    X(test_run_until_complete_keeps_loop) \
    X(test_run_until_complete_bad) \
    X(test_run_until_complete_nested) \
    X(test_sleep) \
    X(test_sleep_cancel) \
    X(test_sleeps_overlap) \
    X(test_sleep_bad) \
    X(test_call_soon_many_threads) \
    X(test_call_soon_loop_thread) \
    X(test_loop_thread_bound_by_first_use) \
    X(test_loop_thread_moves_with_base) \
    X(test_worker_calls_loop_api) \
    X(test_loop_thread_not_reused) \
    X(test_two_loops_one_pool) \
    X(test_free_user_futures) \
    X(test_free_with_jobs) \
    X(test_free_undelivered_job) \
    X(test_free_sleep_and_calls) \
    X(test_free_inside_callback) \
    X(test_call_soon_idle_loop) \
    X(test_keepalive_off_returns) \
    X(test_call_soon_races_completions) \
    X(test_call_soon_after_teardown_began) \
    X(test_free_in_callback_then_pool) \
    X(test_free_in_run_until_complete_then_pool) \
    X(test_new_libevent_out_of_memory) \
    X(test_struct_sizes) \
    X(test_submit) \
    X(test_null_arguments) \
    X(test_arg_free) \
    X(test_arg_free_teardown) \
    X(test_run_opts) \
    X(test_default_pool) \
    X(test_drain_budget_yields) \
    X(test_drain_budget_time) \
    X(test_drain_budget_unlimited) \
    X(test_drain_budget_free_between) \
    X(test_drain_budget_free_inside) \
    X(test_drain_budget_bad) \
    X(test_drain_budget_no_lost_wakeup) \
    X(test_watermarks) \
    X(test_watermarks_oscillate) \
    X(test_watermarks_off) \
    X(test_watermarks_free_above) \
    X(test_watermarks_bad) \
    X(test_batch_hands_over_at_end) \
    X(test_batch_cancel_and_wait) \
    X(test_batch_free_open) \
    X(test_batch_run_until_complete_later_jobs) \
    X(test_batch_errors) \
    X(test_burst_slabs)

TESTS(TU_WRAP)

#define ENTRY(name) TU_ENTRY(name, setup, teardown),

int main(void)
{
    /* Before any other libevent call: lets a test fail its allocations. */
    event_set_mem_functions(ev_malloc, ev_realloc, free);
    const struct CMUnitTest tests[] = { TESTS(ENTRY) };
    int failed = cmocka_run_group_tests_name("bridge-eventfd", tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("bridge-pipe", tests, setup_pipe_group,
                                          teardown_pipe_group);
    failed += cmocka_run_group_tests_name("bridge-spin", tests, setup_spin_group,
                                          teardown_spin_group);
    return failed;
}
