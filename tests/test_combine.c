/*
 * test_combine.c -- gather, wait, as_completed, wait_for, task groups,
 * evexec_job_wait_cancel, evexec_job_poll and the unobserved-failure log.
 *
 * Completion orders are forced with hand-made futures that the test ends
 * itself, between loop turns, and with jobs parked at gates; real time
 * appears only where a timeout is the thing under test.  Each test drives
 * the loop with evexec_run_until_complete() (which returns once a future's
 * callbacks have run) or with single non-blocking turns, to show that
 * something has not happened yet.
 *
 * Every test ends with close_all(): evexec_free(), then a waiting pool
 * shutdown, then a check that every result made was released exactly once.
 * The stress test at the end builds random trees of combinators over jobs,
 * sleeps and hand-made futures, cancels and times them out at random, and
 * checks that every done callback ran exactly once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "evexec.h"
#include "testutil.h"

#define NTHREADS 2

struct fx {
    struct event_base *base;
    struct evexec_pool *pool;
    struct evexec *ex;
    struct tu_gate gate;     /* jobs with J_GATE park here */
    struct tu_gate arrive;   /* always open: counts jobs that started */
    atomic_int made;         /* results made */
    atomic_int frees;        /* results released */
};

/* ---- fixture ---------------------------------------------------------------- */

/* Tests make failures nobody reads on purpose; keep stderr for real news. */
static void quiet_log(int error, const char *msg, void *arg)
{
    (void)error;
    (void)msg;
    (void)arg;
}

static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof *x);
    if (!x)
        return -1;
    tu_gate_init(&x->gate);
    tu_gate_init(&x->arrive);
    tu_gate_open(&x->arrive);
    x->base = event_base_new();
    x->pool = tu_pool_new(NTHREADS, 0);
    x->ex = x->base && x->pool ? evexec_new(x->base, x->pool) : NULL;
    evexec_set_log_fn(quiet_log, NULL);
    *state = x;
    return x->ex ? 0 : -1;
}

static int teardown(void **state)
{
    struct fx *x = *state;
    evexec_free(x->ex);
    tu_gate_open(&x->gate);
    evexec_pool_free(x->pool);
    if (x->base)
        event_base_free(x->base);
    tu_gate_destroy(&x->gate);
    tu_gate_destroy(&x->arrive);
    free(x);
    evexec_set_log_fn(NULL, NULL);
    return 0;
}

/* Free the evexec with whatever is pending, let parked jobs finish, and
 * check that every result was released exactly once. */
static void close_all(struct fx *x)
{
    evexec_free(x->ex);
    x->ex = NULL;
    tu_gate_open(&x->gate);
    assert_int_equal(evexec_pool_shutdown(x->pool, EVEXEC_SHUTDOWN_WAIT), 0);
    assert_int_equal(atomic_load(&x->frees), atomic_load(&x->made));
}

/* ---- helpers -------------------------------------------------------------- */

static struct evexec_future *hand(struct fx *x)
{
    struct evexec_future *f = evexec_future_new(x->ex);
    assert_non_null(f);
    return f;
}

static struct tu_result *value_new(struct fx *x, long v)
{
    struct tu_result *r = tu_result_new(&x->frees, v);
    if (r)
        atomic_fetch_add(&x->made, 1);
    return r;
}

/* End f with a fresh result if it still takes one; 0 or EALREADY. */
static int try_set_value(struct fx *x, struct evexec_future *f, long v)
{
    struct tu_result *r = value_new(x, v);
    int rc = evexec_future_set_result(f, r, tu_result_free);
    if (rc)
        tu_result_free(r);
    return rc;
}

static void set_value(struct fx *x, struct evexec_future *f, long v)
{
    assert_int_equal(try_set_value(x, f, v), 0);
}

static long value_of(const void *r)
{
    return r ? ((const struct tu_result *)r)->value : -1;
}

/* Register a recorder; nothing may run inside the call. */
static void watch(struct evexec_future *f, struct tu_rec *rec)
{
    tu_rec_init(rec);
    tu_in_api = 1;
    assert_int_equal(evexec_future_on_done(f, tu_rec_cb, rec), 0);
    tu_in_api = 0;
}

/* k non-blocking loop turns. */
static void turns(struct fx *x, int k)
{
    while (k-- > 0)
        event_base_loop(x->base, EVLOOP_NONBLOCK);
}

/* Run until f and its callbacks are done; return its error. */
static int settle(struct fx *x, struct evexec_future *f)
{
    return evexec_run_until_complete(x->ex, f);
}

static void unref_all(struct evexec_future **fs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        evexec_future_unref(fs[i]);
}

static void hands(struct fx *x, struct evexec_future **fs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fs[i] = hand(x);
}

/* Check one recorder: ran once, never inline, on the loop, with `error`. */
static void assert_once(const struct tu_rec *r, int error)
{
    assert_int_equal(r->calls, 1);
    assert_int_equal(r->inline_calls, 0);
    assert_int_equal(r->off_loop, 0);
    assert_int_equal(r->error, error);
}

static const struct timeval long_tv = { 30, 0 };
static const struct timeval zero_tv = { 0, 0 };
static const struct timeval short_tv = { 0, 2000 };

/* ---- jobs ------------------------------------------------------------------ */

enum {
    J_WAIT = 1,        /* evexec_job_wait_cancel(job, wait or NULL) */
    J_GATE = 2,        /* then park at x->gate */
    J_FOREVER = 4,     /* with J_WAIT or J_POLL: no timeout */
    J_POLL = 8,        /* evexec_job_poll() on poll_fd instead of J_WAIT */
};

struct jspec {
    struct fx *x;
    int flags;
    long value;              /* nonzero: set a result */
    int error;               /* returned */
    struct timespec wait;
    int poll_fd;
    short revents;           /* read after the job's future ended */
    atomic_int ran;
    atomic_int wait_rc;
    atomic_int saw_cancel;
};

static int spec_job(struct evexec_job *job, void *arg)
{
    struct jspec *s = arg;
    atomic_fetch_add(&s->ran, 1);
    tu_gate_pass(&s->x->arrive);
    const struct timespec *limit = (s->flags & J_FOREVER) ? NULL : &s->wait;
    if (s->flags & J_WAIT)
        atomic_store(&s->wait_rc, evexec_job_wait_cancel(job, limit));
    if (s->flags & J_POLL) {
        struct pollfd p = { .fd = s->poll_fd, .events = POLLIN };
        atomic_store(&s->wait_rc, evexec_job_poll(job, &p, 1, limit));
        s->revents = p.revents;
    }
    if (s->flags & J_GATE)
        tu_gate_pass(&s->x->gate);
    atomic_store(&s->saw_cancel, evexec_job_cancelled(job));
    if (s->value)
        evexec_job_set_result(job, value_new(s->x, s->value), tu_result_free);
    return s->error;
}

static void jspec_init(struct jspec *s, struct fx *x, int flags, long value, int error)
{
    memset(s, 0, sizeof *s);
    s->x = x;
    s->flags = flags;
    s->value = value;
    s->error = error;
}

static struct evexec_future *submit(struct fx *x, struct jspec *s)
{
    struct evexec_future *f = evexec_run(x->ex, spec_job, s);
    assert_non_null(f);
    return f;
}

static struct evexec_future *job(struct fx *x, struct jspec *s, int flags, long value,
                                 int error)
{
    jspec_init(s, x, flags, value, error);
    return submit(x, s);
}

/* A job that waits for its cancellation (wait_ns < 0: with no limit), and
 * with J_GATE then parks. */
static struct evexec_future *job_waiting(struct fx *x, struct jspec *s, long wait_ns,
                                         long value, int flags)
{
    jspec_init(s, x, flags | J_WAIT | (wait_ns < 0 ? J_FOREVER : 0), value, 0);
    s->wait.tv_nsec = wait_ns;
    return submit(x, s);
}

/* A job in evexec_job_poll() on fd (wait_ns < 0: with no limit). */
static struct evexec_future *job_polling(struct fx *x, struct jspec *s, int fd, long wait_ns)
{
    jspec_init(s, x, J_POLL | (wait_ns < 0 ? J_FOREVER : 0), 0, 0);
    s->wait.tv_nsec = wait_ns;
    s->poll_fd = fd;
    return submit(x, s);
}

/* Occupy n workers with parked jobs. */
static void fill_pool(struct fx *x, struct jspec *s, struct evexec_future **fs, int n)
{
    unsigned before = tu_gate_arrived(&x->arrive);
    for (int i = 0; i < n; i++)
        fs[i] = job(x, &s[i], J_GATE, 0, 0);
    assert_int_equal(tu_gate_wait_arrived(&x->arrive, before + (unsigned)n), 0);
}

/* ---- bad inputs ------------------------------------------------------------ */

enum { MK_GATHER, MK_GATHER_OPTS, MK_WAIT, MK_AS_COMPLETED, MK_WAIT_FOR };

static void each_nop(struct evexec_future *f, void *arg)
{
    (void)f;
    (void)arg;
}

/* Call constructor `kind` and expect NULL with errno EINVAL. */
static void expect_einval(int kind, struct evexec *ex, struct evexec_future **fs, size_t n,
                          int opt, const struct timeval *tv)
{
    struct evexec_future *f = NULL;
    errno = 0;
    switch (kind) {
    case MK_GATHER: f = evexec_gather(ex, fs, n); break;
    case MK_GATHER_OPTS: f = evexec_gather_opts(ex, fs, n, opt); break;
    case MK_WAIT: f = evexec_wait(ex, fs, n, opt, tv); break;
    case MK_AS_COMPLETED: f = evexec_as_completed(ex, fs, n, opt ? each_nop : NULL, NULL); break;
    case MK_WAIT_FOR: f = evexec_wait_for(ex, n ? fs[0] : NULL, tv); break;
    }
    assert_null(f);
    assert_int_equal(errno, EINVAL);
}

static void test_bad_inputs(void **state)
{
    struct fx *x = *state;
    struct evexec *other = evexec_new(x->base, x->pool);
    assert_non_null(other);
    struct evexec_future *ok = hand(x), *alien = evexec_future_new(other);
    assert_non_null(alien);
    struct evexec_future *with_null[2] = { ok, NULL };
    struct evexec_future *with_alien[2] = { ok, alien };
    struct timeval neg = { -1, 0 }, big_usec = { 0, 1000000 };
    static const int kinds[] = { MK_GATHER, MK_GATHER_OPTS, MK_WAIT, MK_AS_COMPLETED };

    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        int opt = kinds[k] == MK_WAIT ? EVEXEC_ALL_COMPLETED : kinds[k] == MK_AS_COMPLETED;
        expect_einval(kinds[k], NULL, with_null, 1, opt, NULL);
        expect_einval(kinds[k], x->ex, NULL, 2, opt, NULL);
        expect_einval(kinds[k], x->ex, with_null, 2, opt, NULL);
        expect_einval(kinds[k], x->ex, with_alien, 2, opt, NULL);
    }
    expect_einval(MK_GATHER_OPTS, x->ex, with_null, 1, 0x100, NULL);
    expect_einval(MK_WAIT, x->ex, with_null, 1, 0, NULL);
    expect_einval(MK_WAIT, x->ex, with_null, 1, 4, NULL);
    expect_einval(MK_WAIT, x->ex, with_null, 1, EVEXEC_ALL_COMPLETED, &neg);
    expect_einval(MK_WAIT, x->ex, with_null, 1, EVEXEC_ALL_COMPLETED, &big_usec);
    expect_einval(MK_AS_COMPLETED, x->ex, with_null, 1, 0, NULL);
    expect_einval(MK_WAIT_FOR, x->ex, with_null, 0, 0, NULL);
    expect_einval(MK_WAIT_FOR, NULL, with_null, 1, 0, NULL);
    expect_einval(MK_WAIT_FOR, x->ex, &alien, 1, 0, NULL);
    expect_einval(MK_WAIT_FOR, x->ex, with_null, 1, 0, &neg);

    assert_int_equal(evexec_gather_error(NULL, 0), EINVAL);
    assert_int_equal(evexec_gather_error(ok, 0), EINVAL);
    assert_int_equal(evexec_job_wait_cancel(NULL, NULL), EINVAL);

    errno = 0;
    assert_null(evexec_group_new(NULL));
    assert_int_equal(errno, EINVAL);
    struct evexec_group *g = evexec_group_new(x->ex);
    assert_non_null(g);
    struct evexec_future *gf = evexec_group_future(g);
    assert_int_equal(evexec_group_add(NULL, ok), EINVAL);
    assert_int_equal(evexec_group_add(g, NULL), EINVAL);
    assert_int_equal(evexec_group_add(g, alien), EINVAL);
    assert_int_equal(evexec_group_add(g, gf), EINVAL);
    errno = 0;
    assert_null(evexec_group_future(NULL));
    assert_int_equal(errno, EINVAL);
    evexec_group_free(NULL);

    /* Nothing was taken: the inputs are still pending and unowned by any
     * combinator. */
    assert_int_equal(evexec_future_done(ok), 0);
    evexec_group_free(g);
    evexec_future_unref(gf);
    evexec_future_unref(ok);
    evexec_future_unref(alien);
    evexec_free(other);
    close_all(x);
}

/* ---- gather ---------------------------------------------------------------- */

/* A gather (with flags) over n new hand futures, watched by rec. */
static struct evexec_future *gather_hands(struct fx *x, struct evexec_future **in,
                                          size_t n, int flags, struct tu_rec *rec)
{
    hands(x, in, n);
    struct evexec_future *g = evexec_gather_opts(x->ex, in, n, flags);
    assert_non_null(g);
    watch(g, rec);
    return g;
}

static void test_gather_input_order(void **state)
{
    struct fx *x = *state;
    struct evexec_future *in[3];
    struct tu_rec rec;
    struct evexec_future *g = gather_hands(x, in, 3, 0, &rec);
    /* The gather holds its own references. */
    unref_all(in, 3);

    static const long order[3] = { 2, 0, 1 };
    for (int k = 0; k < 3; k++) {
        assert_int_equal(evexec_future_done(g), 0);
        set_value(x, in[order[k]], 10 + order[k]);
        turns(x, 1);
    }
    assert_int_equal(settle(x, g), 0);
    assert_once(&rec, 0);
    void **res = evexec_future_result(g);
    assert_non_null(res);
    for (int i = 0; i < 3; i++)
        assert_int_equal(value_of(res[i]), 10 + i);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(evexec_gather_error(g, i), 0);
    assert_int_equal(evexec_gather_error(g, 3), EINVAL);
    /* Results stay until the gather goes. */
    assert_int_equal(atomic_load(&x->frees), 0);
    evexec_future_unref(g);
    assert_int_equal(atomic_load(&x->frees), 3);
    close_all(x);
}

static void test_gather_jobs_and_duplicates(void **state)
{
    struct fx *x = *state;
    struct jspec s[2];
    struct evexec_future *in[4];
    struct tu_rec rec;
    in[0] = job(x, &s[0], 0, 7, 0);
    in[1] = job(x, &s[1], 0, 8, 0);
    in[2] = in[0];
    in[3] = hand(x);
    struct evexec_future *g = evexec_gather(x->ex, in, 4);
    assert_non_null(g);
    watch(g, &rec);
    set_value(x, in[3], 9);
    assert_int_equal(settle(x, g), 0);
    assert_once(&rec, 0);
    void **res = evexec_future_result(g);
    assert_int_equal(value_of(res[0]), 7);
    assert_int_equal(value_of(res[1]), 8);
    assert_ptr_equal(res[2], res[0]);
    assert_int_equal(value_of(res[3]), 9);
    /* Taking the array hands out a pointer; the gather still owns it. */
    assert_ptr_equal(evexec_future_take_result(g), res);
    evexec_future_unref(g);
    unref_all(in, 2);
    evexec_future_unref(in[3]);
    close_all(x);
}

static void test_gather_empty_next_turn(void **state)
{
    struct fx *x = *state;
    struct tu_rec rec;
    struct evexec_future *g = gather_hands(x, NULL, 0, 0, &rec);
    assert_int_equal(evexec_future_done(g), 0);
    assert_int_equal(settle(x, g), 0);
    assert_once(&rec, 0);
    assert_non_null(evexec_future_result(g));
    evexec_future_unref(g);
    close_all(x);
}

/* First failure in completion order wins; siblings keep running. */
static void test_gather_first_failure(void **state)
{
    struct fx *x = *state;
    struct evexec_future *in[3];
    struct tu_rec rec;
    struct evexec_future *g = gather_hands(x, in, 3, 0, &rec);
    assert_int_equal(evexec_future_set_error(in[1], EIO), 0);
    assert_int_equal(evexec_future_set_error(in[2], ENOENT), 0);
    assert_int_equal(settle(x, g), EIO);
    assert_once(&rec, EIO);
    assert_null(evexec_future_result(g));
    assert_int_equal(evexec_future_done(in[0]), 0);
    assert_int_equal(evexec_gather_error(g, 0), EINPROGRESS);
    set_value(x, in[0], 1);
    turns(x, 2);
    assert_int_equal(evexec_gather_error(g, 0), 0);
    assert_int_equal(evexec_gather_error(g, 1), EIO);
    assert_int_equal(evexec_gather_error(g, 2), ENOENT);
    assert_int_equal(rec.calls, 1);
    evexec_future_unref(g);
    unref_all(in, 3);
    close_all(x);
}

/* A cancelled input is a failure for a plain gather (as in asyncio). */
static void test_gather_cancelled_input(void **state)
{
    struct fx *x = *state;
    struct evexec_future *in[2];
    struct tu_rec rec;
    struct evexec_future *g = gather_hands(x, in, 2, 0, &rec);
    assert_int_equal(evexec_future_cancel(in[0]), 0);
    assert_int_equal(settle(x, g), ECANCELED);
    assert_once(&rec, ECANCELED);
    assert_int_equal(evexec_future_done(in[1]), 0);
    evexec_future_unref(g);
    unref_all(in, 2);
    close_all(x);
}

static void test_gather_all(void **state)
{
    struct fx *x = *state;
    struct evexec_future *in[4];
    struct tu_rec rec;
    struct evexec_future *g = gather_hands(x, in, 4, EVEXEC_GATHER_ALL, &rec);
    assert_int_equal(evexec_future_set_error(in[0], EIO), 0);
    assert_int_equal(evexec_future_cancel(in[1]), 0);
    turns(x, 2);
    assert_int_equal(evexec_future_done(g), 0);
    set_value(x, in[2], 3);
    set_value(x, in[3], 4);
    assert_int_equal(settle(x, g), 0);
    assert_once(&rec, 0);
    void **res = evexec_future_result(g);
    assert_null(res[0]);
    assert_null(res[1]);
    assert_int_equal(value_of(res[2]), 3);
    assert_int_equal(value_of(res[3]), 4);
    assert_int_equal(evexec_gather_error(g, 0), EIO);
    assert_int_equal(evexec_gather_error(g, 1), ECANCELED);
    assert_int_equal(evexec_gather_error(g, 2), 0);
    evexec_future_unref(g);
    unref_all(in, 4);
    close_all(x);
}

/* Cancelling a gather cancels a done-nothing hand future, a queued job (it
 * never runs) and a running job (it sees the cancel); a done input keeps
 * its result. */
static void test_gather_cancel(void **state)
{
    struct fx *x = *state;
    struct jspec fill[NTHREADS - 1], queued, running;
    struct evexec_future *busy[NTHREADS - 1], *in[4];
    struct tu_rec rec, rin[4];

    /* Parks after seeing the cancel, so its worker cannot take the queued
     * job before the gather has cancelled that too. */
    in[0] = job_waiting(x, &running, -1, 5, J_GATE);
    assert_int_equal(tu_gate_wait_arrived(&x->arrive, 1), 0);
    fill_pool(x, fill, busy, NTHREADS - 1);   /* in[0] has the other worker */
    in[1] = job(x, &queued, 0, 6, 0);
    in[2] = hand(x);
    in[3] = hand(x);
    set_value(x, in[3], 7);
    struct evexec_future *g = evexec_gather(x->ex, in, 4);
    watch(g, &rec);
    for (int i = 0; i < 4; i++)
        watch(in[i], &rin[i]);

    assert_int_equal(evexec_future_cancel(g), 0);
    assert_int_equal(evexec_future_cancel(g), EALREADY);
    assert_int_equal(settle(x, g), ECANCELED);
    assert_int_equal(settle(x, in[1]), ECANCELED);
    assert_int_equal(atomic_load(&queued.ran), 0);
    tu_gate_open(&x->gate);
    assert_int_equal(settle(x, in[0]), ECANCELED);
    assert_once(&rec, ECANCELED);
    for (int i = 0; i < 3; i++)
        assert_once(&rin[i], ECANCELED);
    assert_once(&rin[3], 0);
    assert_int_equal(atomic_load(&running.wait_rc), ECANCELED);
    evexec_future_unref(g);
    unref_all(in, 4);
    unref_all(busy, NTHREADS - 1);
    close_all(x);
}

/* ---- wait ------------------------------------------------------------------ */

/* Inputs end one per step: 0 cancelled, 1 failed, 2 succeeded.  `step` is
 * the step after which the wait must have ended. */
static void check_wait_mode(struct fx *x, int when, int step)
{
    struct evexec_future *in[3];
    struct tu_rec rec;
    hands(x, in, 3);
    struct evexec_future *w = evexec_wait(x->ex, in, 3, when, NULL);
    assert_non_null(w);
    watch(w, &rec);
    for (int k = 0; k < 3; k++) {
        assert_int_equal(evexec_future_done(w), 0);
        if (k == 0)
            assert_int_equal(evexec_future_cancel(in[0]), 0);
        else if (k == 1)
            assert_int_equal(evexec_future_set_error(in[1], EIO), 0);
        else
            set_value(x, in[2], 1);
        turns(x, 2);
        if (k == step)
            break;
    }
    assert_int_equal(settle(x, w), 0);
    assert_once(&rec, 0);
    const struct evexec_wait_result *r = evexec_future_result(w);
    assert_non_null(r);
    assert_int_equal(r->n, 3);
    assert_int_equal(r->n_done, (size_t)step + 1);
    assert_int_equal(r->n_pending, 2 - (size_t)step);
    for (size_t i = 0; i < r->n_done; i++)
        assert_int_equal(r->done_index[i], i);
    for (size_t i = 0; i < r->n_pending; i++)
        assert_int_equal(r->pending_index[i], (size_t)step + 1 + i);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r->done[i], i <= step);
        /* The wait never touches its inputs. */
        assert_int_equal(evexec_future_done(in[i]), i <= step);
    }
    evexec_future_unref(w);
    unref_all(in, 3);
}

static void test_wait_modes(void **state)
{
    struct fx *x = *state;
    check_wait_mode(x, EVEXEC_FIRST_COMPLETED, 0);
    check_wait_mode(x, EVEXEC_FIRST_EXCEPTION, 1);
    check_wait_mode(x, EVEXEC_ALL_COMPLETED, 2);
    close_all(x);
}

/* FIRST_EXCEPTION with no failure waits for all. */
static void test_wait_first_exception_none(void **state)
{
    struct fx *x = *state;
    struct evexec_future *in[2];
    hands(x, in, 2);
    struct evexec_future *w = evexec_wait(x->ex, in, 2, EVEXEC_FIRST_EXCEPTION, NULL);
    set_value(x, in[1], 1);
    assert_int_equal(evexec_future_cancel(in[0]), 0);
    assert_int_equal(settle(x, w), 0);
    const struct evexec_wait_result *r = evexec_future_result(w);
    assert_int_equal(r->n_done, 2);
    evexec_future_unref(w);
    unref_all(in, 2);
    close_all(x);
}

static void test_wait_timeout_and_cancel(void **state)
{
    struct fx *x = *state;
    struct evexec_future *in[2];
    struct tu_rec rec;
    struct timeval tv = { 0, 5000 };
    hands(x, in, 2);
    set_value(x, in[1], 1);
    struct evexec_future *w = evexec_wait(x->ex, in, 2, EVEXEC_ALL_COMPLETED, &tv);
    watch(w, &rec);
    assert_int_equal(settle(x, w), 0);
    assert_once(&rec, 0);
    const struct evexec_wait_result *r = evexec_future_result(w);
    assert_int_equal(r->n_done, 1);
    assert_int_equal(r->n_pending, 1);
    assert_int_equal(r->pending_index[0], 0);
    assert_int_equal(r->done_index[0], 1);
    assert_int_equal(evexec_future_done(in[0]), 0);   /* not cancelled */
    evexec_future_unref(w);

    /* Cancelling the wait leaves the inputs alone. */
    w = evexec_wait(x->ex, in, 1, EVEXEC_ALL_COMPLETED, NULL);
    watch(w, &rec);
    assert_int_equal(evexec_future_cancel(w), 0);
    assert_int_equal(settle(x, w), ECANCELED);
    assert_once(&rec, ECANCELED);
    assert_null(evexec_future_result(w));
    assert_int_equal(evexec_future_done(in[0]), 0);
    evexec_future_unref(w);

    /* n == 0: next turn, empty. */
    w = evexec_wait(x->ex, NULL, 0, EVEXEC_FIRST_COMPLETED, NULL);
    assert_int_equal(evexec_future_done(w), 0);
    assert_int_equal(settle(x, w), 0);
    r = evexec_future_result(w);
    assert_int_equal(r->n + r->n_done + r->n_pending, 0);
    evexec_future_unref(w);
    unref_all(in, 2);
    close_all(x);
}

/* ---- as_completed ---------------------------------------------------------- */

struct delivery {
    struct evexec_future *seen[8];
    int n;
    int inline_calls;
    struct evexec_future *cancel_after;   /* cancel this future after... */
    int cancel_at;                        /* ...this many deliveries */
};

static void each_record(struct evexec_future *f, void *arg)
{
    struct delivery *d = arg;
    if (tu_in_api)
        d->inline_calls++;
    if (d->n < 8)
        d->seen[d->n] = f;
    d->n++;
    if (d->cancel_after && d->n == d->cancel_at)
        evexec_future_cancel(d->cancel_after);
}

static struct evexec_future *as_completed(struct fx *x, struct evexec_future **in, size_t n,
                                          struct delivery *d)
{
    tu_in_api = 1;
    struct evexec_future *a = evexec_as_completed(x->ex, in, n, each_record, d);
    tu_in_api = 0;
    assert_non_null(a);
    return a;
}

static void test_as_completed_order(void **state)
{
    struct fx *x = *state;
    struct evexec_future *in[4];
    struct delivery d = { 0 };
    struct tu_rec rec;
    hands(x, in, 3);
    in[3] = in[1];
    struct evexec_future *a = as_completed(x, in, 4, &d);
    watch(a, &rec);
    set_value(x, in[1], 1);
    assert_int_equal(evexec_future_set_error(in[2], EIO), 0);
    turns(x, 2);
    assert_int_equal(d.n, 3);
    assert_int_equal(evexec_future_done(a), 0);
    assert_int_equal(evexec_future_cancel(in[0]), 0);
    assert_int_equal(settle(x, a), 0);
    assert_once(&rec, 0);
    assert_int_equal(d.n, 4);
    assert_int_equal(d.inline_calls, 0);
    assert_ptr_equal(d.seen[0], in[1]);
    assert_ptr_equal(d.seen[1], in[1]);
    assert_ptr_equal(d.seen[2], in[2]);
    assert_ptr_equal(d.seen[3], in[0]);
    evexec_future_unref(a);
    unref_all(in, 3);

    /* n == 0: ends on the next turn, no call. */
    memset(&d, 0, sizeof d);
    a = as_completed(x, NULL, 0, &d);
    assert_int_equal(evexec_future_done(a), 0);
    assert_int_equal(settle(x, a), 0);
    assert_int_equal(d.n, 0);
    evexec_future_unref(a);
    close_all(x);
}

/* each() cancels the walk: no more calls, the future ends ECANCELED, the
 * inputs are left alone. */
static void test_as_completed_cancel(void **state)
{
    struct fx *x = *state;
    struct evexec_future *in[3];
    struct delivery d = { 0 };
    hands(x, in, 3);
    struct evexec_future *a = as_completed(x, in, 3, &d);
    d.cancel_after = a;
    d.cancel_at = 1;
    for (int i = 0; i < 3; i++)
        set_value(x, in[i], i + 1);
    assert_int_equal(settle(x, a), ECANCELED);
    turns(x, 2);
    assert_int_equal(d.n, 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(evexec_future_error(in[i]), 0);
    evexec_future_unref(a);
    unref_all(in, 3);
    close_all(x);
}

struct each_frees {
    struct fx *x;
    int calls;
};

static void each_frees(struct evexec_future *f, void *arg)
{
    struct each_frees *e = arg;
    (void)f;
    e->calls++;
    /* The teardown runs at once, inside this call. */
    evexec_free(e->x->ex);
}

/* evexec_free() from inside each(): as_completed was pending, so it ends
 * ECANCELED and each() is not called again; every callback runs once;
 * then the pool and the base may go at once. */
static void test_as_completed_free_inside(void **state)
{
    struct fx *x = *state;
    struct evexec_future *in[2];
    struct tu_rec rec, rw;
    struct each_frees e = { x, 0 };
    hands(x, in, 2);
    struct evexec_future *a = evexec_as_completed(x->ex, in, 2, each_frees, &e);
    watch(a, &rec);
    struct evexec_future *w = evexec_wait_for(x->ex, a, &long_tv);
    watch(w, &rw);
    set_value(x, in[0], 1);
    set_value(x, in[1], 2);
    evexec_set_keepalive(x->ex, 0);
    event_base_dispatch(x->base);
    assert_int_equal(e.calls, 1);
    assert_once(&rec, ECANCELED);
    assert_once(&rw, ECANCELED);
    x->ex = NULL;     /* freed inside each() */
    close_all(x);
}

/* ---- wait_for -------------------------------------------------------------- */

/* wait_for(f, tv) where f is already done: its outcome, even with zero. */
static void check_wait_for_done(struct fx *x, const struct timeval *tv, int error)
{
    struct evexec_future *f = hand(x);
    if (error)
        assert_int_equal(evexec_future_set_error(f, error), 0);
    else
        set_value(x, f, 42);
    struct evexec_future *w = evexec_wait_for(x->ex, f, tv);
    assert_non_null(w);
    assert_int_equal(settle(x, w), error);
    assert_ptr_equal(evexec_future_result(w), evexec_future_result(f));
    evexec_future_unref(w);
    evexec_future_unref(f);
}

static void test_wait_for_outcomes(void **state)
{
    struct fx *x = *state;
    check_wait_for_done(x, &zero_tv, 0);
    check_wait_for_done(x, &zero_tv, EIO);
    check_wait_for_done(x, NULL, 0);
    check_wait_for_done(x, &long_tv, ENOENT);

    /* Ends as the inner ends, with its own result pointer. */
    struct evexec_future *f = hand(x);
    struct evexec_future *w = evexec_wait_for(x->ex, f, &long_tv);
    evexec_future_unref(f);           /* the wait_for keeps it */
    turns(x, 2);
    assert_int_equal(evexec_future_done(w), 0);
    set_value(x, f, 5);
    assert_int_equal(settle(x, w), 0);
    assert_int_equal(value_of(evexec_future_result(w)), 5);
    evexec_future_unref(w);
    close_all(x);
}

static void test_wait_for_timeout_cancels(void **state)
{
    struct fx *x = *state;
    struct jspec s;
    struct evexec_future *in[2];
    struct tu_rec rw[2], rin[2];
    in[0] = hand(x);
    in[1] = job_waiting(x, &s, -1, 9, 0);
    /* Running before the timeout starts: else it is cancelled queued. */
    assert_int_equal(tu_gate_wait_arrived(&x->arrive, 1), 0);
    for (int i = 0; i < 2; i++) {
        struct evexec_future *w = evexec_wait_for(x->ex, in[i], &short_tv);
        assert_non_null(w);
        watch(w, &rw[i]);
        watch(in[i], &rin[i]);
        assert_int_equal(settle(x, w), ETIMEDOUT);
        assert_int_equal(settle(x, in[i]), ECANCELED);
        evexec_future_unref(w);
    }
    for (int i = 0; i < 2; i++) {
        assert_once(&rw[i], ETIMEDOUT);
        assert_once(&rin[i], ECANCELED);
    }
    assert_int_equal(atomic_load(&s.wait_rc), ECANCELED);
    unref_all(in, 2);
    close_all(x);
}

static void test_wait_for_cancel(void **state)
{
    struct fx *x = *state;
    struct evexec_future *f = hand(x);
    struct evexec_future *w = evexec_wait_for(x->ex, f, NULL);
    assert_int_equal(evexec_future_cancel(w), 0);
    assert_int_equal(settle(x, w), ECANCELED);
    assert_int_equal(evexec_future_cancelled(f), 1);
    evexec_future_unref(w);
    evexec_future_unref(f);
    close_all(x);
}

/* ---- file results through combinators ---------------------------------------- */

/* call returns -1 with errno err. */
#define assert_fails(call, err)                 \
    do {                                        \
        errno = 0;                              \
        long r_ = (long)(call);                 \
        int e_ = errno;                         \
        assert_int_equal(r_, -1);               \
        assert_int_equal(e_, (err));            \
    } while (0)

/* A descriptor number that is certainly closed (opened, then closed). */
static int closed_fd(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(close(fd), 0);
    return fd;
}

/* Byte counts read through wait_for (and a wait_for of a wait_for) are
 * the inner future's; a wait_for's own failure or pending state comes
 * first; another kind of result is EINVAL there as on the inner future. */
static void test_fs_count_through_wait_for(void **state)
{
    struct fx *x = *state;
    int p[2];
    char buf[16];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], "abc", 3), 3);
    struct evexec_future *f = evexec_fs_read(x->ex, p[0], buf, sizeof buf);
    assert_non_null(f);
    struct evexec_future *w = evexec_wait_for(x->ex, f, &long_tv);
    assert_non_null(w);
    struct evexec_future *ww = evexec_wait_for(x->ex, w, NULL);
    assert_non_null(ww);
    assert_fails(evexec_fs_count(w), EINPROGRESS);  /* nothing ends inside a call */
    assert_int_equal(settle(x, ww), 0);
    assert_int_equal(evexec_fs_count(f), 3);
    assert_int_equal(evexec_fs_count(w), 3);
    assert_int_equal(evexec_fs_count(ww), 3);
    assert_fails(evexec_fs_fd(w), EINVAL);  /* a count, not a descriptor */
    evexec_future_unref(ww);
    evexec_future_unref(w);
    evexec_future_unref(f);

    /* The inner future failed: its error, through the wait_for. */
    f = evexec_fs_read(x->ex, closed_fd(), buf, sizeof buf);
    assert_non_null(f);
    w = evexec_wait_for(x->ex, f, &long_tv);
    assert_non_null(w);
    assert_int_equal(settle(x, w), EBADF);
    assert_fails(evexec_fs_count(w), EBADF);
    evexec_future_unref(w);
    evexec_future_unref(f);

    /* Not a file future inside: EINVAL, no number made up. */
    f = hand(x);
    set_value(x, f, 7);
    w = evexec_wait_for(x->ex, f, NULL);
    assert_non_null(w);
    assert_int_equal(settle(x, w), 0);
    assert_fails(evexec_fs_count(w), EINVAL);
    evexec_future_unref(w);
    evexec_future_unref(f);
    close(p[0]);
    close(p[1]);
    close_all(x);
}

/* evexec_fs_take_fd() through a wait_for takes the inner future's
 * descriptor once: the futures never close it afterwards, and nobody
 * else can take it.  Left in place, the inner future closes it once. */
static void test_fs_take_fd_through_wait_for(void **state)
{
    struct fx *x = *state;
    struct evexec_future *f = evexec_fs_open(x->ex, "/dev/null", O_RDONLY, 0);
    assert_non_null(f);
    struct evexec_future *w = evexec_wait_for(x->ex, f, &long_tv);
    assert_non_null(w);
    assert_int_equal(settle(x, w), 0);
    int fd = evexec_fs_fd(w);
    assert_true(fd >= 0);
    assert_int_equal(evexec_fs_fd(f), fd);
    assert_int_equal(evexec_fs_take_fd(w), fd);
    assert_fails(evexec_fs_take_fd(w), EINVAL);
    assert_fails(evexec_fs_take_fd(f), EINVAL);
    assert_fails(evexec_fs_fd(w), EINVAL);
    evexec_future_unref(w);
    evexec_future_unref(f);
    /* Still open (no future closed it) and close-on-exec as opened. */
    int fl = fcntl(fd, F_GETFD);
    assert_true(fl != -1 && (fl & FD_CLOEXEC));
    assert_int_equal(close(fd), 0);

    /* Not taken: open while the inner future lives, closed when it goes. */
    f = evexec_fs_open(x->ex, "/dev/null", O_RDONLY, 0);
    assert_non_null(f);
    w = evexec_wait_for(x->ex, f, NULL);
    assert_non_null(w);
    assert_int_equal(settle(x, w), 0);
    fd = evexec_fs_fd(w);
    assert_true(fd >= 0);
    evexec_future_unref(w);
    assert_true(fcntl(fd, F_GETFD) != -1);
    evexec_future_unref(f);
    assert_fails(fcntl(fd, F_GETFD), EBADF);
    close_all(x);
}

/* evexec_gather_input() hands out the inputs, so counts and descriptors
 * are read through a gather; bad arguments are EINVAL. */
static void test_gather_input_scalars(void **state)
{
    struct fx *x = *state;
    int p[2];
    char buf[8];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], "abcd", 4), 4);
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    assert_true(devnull >= 0);
    struct evexec_future *in[3];
    in[0] = evexec_fs_read(x->ex, p[0], buf, sizeof buf);
    in[1] = evexec_fs_write(x->ex, devnull, "xy", 2);
    in[2] = evexec_fs_open(x->ex, "/dev/null", O_RDONLY, 0);
    for (int i = 0; i < 3; i++)
        assert_non_null(in[i]);
    struct evexec_future *g = evexec_gather(x->ex, in, 3);
    assert_non_null(g);
    unref_all(in, 3);                   /* the gather keeps them */
    for (size_t i = 0; i < 3; i++)
        assert_ptr_equal(evexec_gather_input(g, i), in[i]);
    assert_int_equal(settle(x, g), 0);
    assert_int_equal(evexec_fs_count(evexec_gather_input(g, 0)), 4);
    assert_int_equal(evexec_fs_count(evexec_gather_input(g, 1)), 2);
    int fd = evexec_fs_take_fd(evexec_gather_input(g, 2));
    assert_true(fd >= 0);
    assert_fails(evexec_fs_take_fd(evexec_gather_input(g, 2)), EINVAL);
    assert_fails(evexec_fs_count(g), EINVAL);  /* the gather itself: no count */

    struct evexec_future *w = evexec_wait_for(x->ex, g, NULL);
    assert_non_null(w);
    struct evexec_future *bad[4] = { NULL, in[0], w, g };
    size_t idx[4] = { 0, 0, 0, 3 };
    for (int i = 0; i < 4; i++) {
        errno = 0;
        assert_null(evexec_gather_input(bad[i], idx[i]));
        assert_int_equal(errno, EINVAL);
    }
    evexec_future_unref(w);
    evexec_future_unref(g);
    assert_true(fcntl(fd, F_GETFD) != -1);  /* taken: the gather did not close it */
    assert_int_equal(close(fd), 0);
    close(devnull);
    close(p[0]);
    close(p[1]);
    close_all(x);
}

/* A buffer lent to a read under a wait_for, freed the safe way: from a
 * done callback on the read's own future. */
struct lent {
    char *buf;
    struct evexec_future *w;    /* the wait_for around the read */
    int calls;
    int error;                  /* the read's */
    int w_done;                 /* the wait_for had ended by then */
    char seen[8];               /* what the buffer held */
};

static void lent_release(struct evexec_future *f, void *arg)
{
    struct lent *l = arg;
    l->calls++;
    l->error = evexec_future_error(f);
    l->w_done = evexec_future_done(l->w);
    memcpy(l->seen, l->buf, sizeof l->seen);
    free(l->buf);
    l->buf = NULL;
}

static int some_running(void *arg)
{
    return tu_stats(arg).running >= 1;
}

/* The wait_for times out around a read blocked on an empty pipe: it ends
 * ETIMEDOUT at once, while the read still holds the buffer; the read
 * fills the buffer once data comes, after the wait_for ended, and only
 * then does its future end and the callback free the buffer (under ASan,
 * freeing it at the timeout instead is a use after free in read(2)). */
static void test_wait_for_timeout_borrowed_buffer(void **state)
{
    struct fx *x = *state;
    struct lent l;
    memset(&l, 0, sizeof l);
    int p[2];
    assert_int_equal(pipe(p), 0);
    l.buf = calloc(1, sizeof l.seen);
    assert_non_null(l.buf);
    struct evexec_future *f = evexec_fs_read(x->ex, p[0], l.buf, sizeof l.seen);
    assert_non_null(f);
    assert_int_equal(evexec_future_on_done(f, lent_release, &l), 0);
    /* Taken by a worker (so in read(2), or about to be) before the timer
     * starts: a read cancelled while queued never touches the buffer. */
    assert_int_equal(tu_poll(some_running, x->pool), 0);
    l.w = evexec_wait_for(x->ex, f, &short_tv);
    assert_non_null(l.w);
    assert_int_equal(settle(x, l.w), ETIMEDOUT);

    /* The wait_for has ended; the read has not, and still has the buffer. */
    assert_int_equal(evexec_future_done(f), 0);
    assert_int_equal(l.calls, 0);
    assert_non_null(l.buf);
    assert_memory_equal(l.buf, "\0\0\0\0", 4);
    assert_fails(evexec_fs_count(l.w), ETIMEDOUT);

    /* Data arrives: the read writes into the buffer, then ends. */
    assert_int_equal(write(p[1], "late", 4), 4);
    assert_int_equal(settle(x, f), ECANCELED);  /* its cancel was taken */
    assert_int_equal(l.calls, 1);
    assert_int_equal(l.error, ECANCELED);
    assert_int_equal(l.w_done, 1);
    assert_memory_equal(l.seen, "late", 4);
    assert_null(l.buf);
    /* The wait_for keeps its own error for count; the read, its own. */
    assert_fails(evexec_fs_count(l.w), ETIMEDOUT);
    assert_fails(evexec_fs_count(f), ECANCELED);
    evexec_future_unref(l.w);
    evexec_future_unref(f);
    close(p[0]);
    close(p[1]);
    close_all(x);
}

/* ---- cooperative cancellation ----------------------------------------------- */

static void test_job_wait_cancel(void **state)
{
    struct fx *x = *state;
    struct jspec s[4];
    struct evexec_future *f[4];
    /* Times out: 1 ms, and 0 (a check); then a malformed timeout. */
    f[0] = job_waiting(x, &s[0], 1000000, 1, 0);
    f[1] = job_waiting(x, &s[1], 0, 1, 0);
    f[2] = job_waiting(x, &s[2], 1000000000L, 0, 0);
    assert_int_equal(settle(x, f[0]), 0);
    assert_int_equal(settle(x, f[1]), 0);
    assert_int_equal(settle(x, f[2]), 0);
    assert_int_equal(atomic_load(&s[0].wait_rc), ETIMEDOUT);
    assert_int_equal(atomic_load(&s[1].wait_rc), ETIMEDOUT);
    assert_int_equal(atomic_load(&s[2].wait_rc), EINVAL);
    assert_int_equal(value_of(evexec_future_result(f[0])), 1);

    /* Cancelled while waiting with no limit: returns ECANCELED. */
    unsigned before = tu_gate_arrived(&x->arrive);
    f[3] = job_waiting(x, &s[3], -1, 1, 0);
    assert_int_equal(tu_gate_wait_arrived(&x->arrive, before + 1), 0);
    assert_int_equal(evexec_future_cancel(f[3]), 0);
    assert_int_equal(settle(x, f[3]), ECANCELED);
    assert_int_equal(atomic_load(&s[3].wait_rc), ECANCELED);
    assert_int_equal(atomic_load(&s[3].saw_cancel), 1);
    unref_all(f, 4);
    close_all(x);
}

static void test_job_poll(void **state)
{
    struct fx *x = *state;
    struct jspec s[3];
    struct evexec_future *f[3];
    int ready[2], quiet[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(quiet), 0);

    /* The fd becomes readable. */
    f[0] = job_polling(x, &s[0], ready[0], -1);
    assert_int_equal(tu_gate_wait_arrived(&x->arrive, 1), 0);
    assert_int_equal(write(ready[1], "x", 1), 1);
    assert_int_equal(settle(x, f[0]), 0);
    assert_int_equal(atomic_load(&s[0].wait_rc), 0);
    assert_true(s[0].revents & POLLIN);

    /* Cancelled while polling a quiet fd. */
    f[1] = job_polling(x, &s[1], quiet[0], -1);
    assert_int_equal(tu_gate_wait_arrived(&x->arrive, 2), 0);
    assert_int_equal(evexec_future_cancel(f[1]), 0);
    assert_int_equal(settle(x, f[1]), ECANCELED);
    assert_int_equal(atomic_load(&s[1].wait_rc), ECANCELED);

    /* Times out. */
    f[2] = job_polling(x, &s[2], quiet[0], 1000000);
    assert_int_equal(settle(x, f[2]), 0);
    assert_int_equal(atomic_load(&s[2].wait_rc), ETIMEDOUT);

    assert_int_equal(evexec_job_poll(NULL, NULL, 0, NULL), EINVAL);
    unref_all(f, 3);
    close_all(x);
    close(ready[0]);
    close(ready[1]);
    close(quiet[0]);
    close(quiet[1]);
}

/* ---- task groups ------------------------------------------------------------ */

static struct evexec_group *group_of(struct fx *x, struct evexec_future **fs, size_t n)
{
    struct evexec_group *g = evexec_group_new(x->ex);
    assert_non_null(g);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(evexec_group_add(g, fs[i]), 0);
    return g;
}

static void test_group_success(void **state)
{
    struct fx *x = *state;
    struct evexec_future *in[3];
    struct tu_rec rec;
    hands(x, in, 2);
    struct evexec_group *g = group_of(x, in, 2);
    set_value(x, in[0], 1);
    set_value(x, in[1], 2);
    turns(x, 2);
    /* Not closed yet: still pending, and takes members. */
    struct evexec_future *gf = evexec_group_future(g);
    watch(gf, &rec);
    in[2] = hand(x);
    assert_int_equal(evexec_group_add(g, in[2]), 0);
    turns(x, 2);
    assert_int_equal(evexec_future_done(gf), 0);
    assert_int_equal(evexec_future_cancel(in[2]), 0);
    assert_int_equal(settle(x, gf), 0);
    assert_once(&rec, 0);
    assert_int_equal(evexec_group_add(g, in[0]), ESHUTDOWN);
    evexec_group_free(g);
    evexec_future_unref(gf);
    unref_all(in, 3);

    /* Empty: ends on the next turn. */
    g = evexec_group_new(x->ex);
    gf = evexec_group_future(g);
    assert_int_equal(evexec_future_done(gf), 0);
    assert_int_equal(settle(x, gf), 0);
    evexec_group_free(g);
    evexec_future_unref(gf);
    close_all(x);
}

/* The first failure cancels the rest; the group waits for the running job
 * to return, then ends with that failure. */
static void test_group_failure(void **state)
{
    struct fx *x = *state;
    struct jspec s;
    struct evexec_future *in[3];
    struct tu_rec rec, rin[3];
    in[0] = hand(x);
    in[1] = job(x, &s, J_GATE, 3, 0);
    in[2] = hand(x);
    assert_int_equal(tu_gate_wait_arrived(&x->arrive, 1), 0);
    struct evexec_group *g = group_of(x, in, 3);
    struct evexec_future *gf = evexec_group_future(g);
    watch(gf, &rec);
    for (int i = 0; i < 3; i++)
        watch(in[i], &rin[i]);
    assert_int_equal(evexec_future_set_error(in[0], EIO), 0);
    assert_int_equal(settle(x, in[2]), ECANCELED);
    assert_int_equal(evexec_group_add(g, in[0]), ESHUTDOWN);
    turns(x, 2);
    assert_int_equal(evexec_future_done(in[1]), 0);
    assert_int_equal(evexec_future_done(gf), 0);
    tu_gate_open(&x->gate);
    assert_int_equal(settle(x, gf), EIO);
    assert_once(&rec, EIO);
    assert_once(&rin[0], EIO);
    assert_once(&rin[1], ECANCELED);
    assert_once(&rin[2], ECANCELED);
    assert_int_equal(atomic_load(&s.saw_cancel), 1);
    evexec_group_free(g);
    evexec_future_unref(gf);
    unref_all(in, 3);
    close_all(x);
}

/* Cancelling the group's future, and freeing the group, cancel members. */
static void test_group_cancel_and_free(void **state)
{
    struct fx *x = *state;
    struct evexec_future *in[2];
    struct tu_rec rec;
    hands(x, in, 2);
    for (int how = 0; how < 2; how++) {
        struct evexec_group *g = group_of(x, &in[how], 1);
        struct evexec_future *gf = evexec_group_future(g);
        watch(gf, &rec);
        if (how == 0) {
            assert_int_equal(evexec_future_cancel(gf), 0);
            evexec_group_free(g);
        } else {
            evexec_group_free(g);
        }
        assert_int_equal(settle(x, gf), ECANCELED);
        assert_once(&rec, ECANCELED);
        assert_int_equal(evexec_future_cancelled(in[how]), 1);
        evexec_future_unref(gf);
    }
    unref_all(in, 2);
    close_all(x);
}

/* Two groups holding each other's futures (a mistake the API cannot see):
 * a cancel does not recurse forever, and evexec_free still ends both. */
static void test_group_cycle(void **state)
{
    struct fx *x = *state;
    struct evexec_group *g[2];
    struct evexec_future *gf[2];
    struct tu_rec rec[2];
    for (int i = 0; i < 2; i++) {
        g[i] = evexec_group_new(x->ex);
        gf[i] = evexec_group_future(g[i]);
        watch(gf[i], &rec[i]);
    }
    assert_int_equal(evexec_group_add(g[0], gf[1]), 0);
    assert_int_equal(evexec_group_add(g[1], gf[0]), 0);
    assert_int_equal(evexec_future_cancel(gf[0]), 0);
    turns(x, 3);
    assert_int_equal(rec[0].calls + rec[1].calls, 0);
    close_all(x);
    assert_once(&rec[0], ECANCELED);
    assert_once(&rec[1], ECANCELED);
}

/* ---- nesting and propagation -------------------------------------------- */

/* A group holding a gather of wait_fors of a job and a hand future: cancel
 * the group and every level below is cancelled. */
static void test_nested_cancel(void **state)
{
    struct fx *x = *state;
    struct jspec s;
    struct evexec_future *leaf[2], *wf[2];
    struct tu_rec rleaf[2], rwf[2], rg, rgroup;
    leaf[0] = job_waiting(x, &s, -1, 1, 0);
    leaf[1] = hand(x);
    assert_int_equal(tu_gate_wait_arrived(&x->arrive, 1), 0);
    for (int i = 0; i < 2; i++) {
        wf[i] = evexec_wait_for(x->ex, leaf[i], &long_tv);
        watch(leaf[i], &rleaf[i]);
        watch(wf[i], &rwf[i]);
    }
    struct evexec_future *ga = evexec_gather(x->ex, wf, 2);
    watch(ga, &rg);
    struct evexec_group *g = group_of(x, &ga, 1);
    struct evexec_future *gf = evexec_group_future(g);
    watch(gf, &rgroup);
    unref_all(wf, 2);
    evexec_future_unref(ga);

    assert_int_equal(evexec_future_cancel(gf), 0);
    evexec_group_free(g);
    assert_int_equal(settle(x, gf), ECANCELED);
    assert_int_equal(settle(x, leaf[0]), ECANCELED);
    assert_once(&rgroup, ECANCELED);
    assert_once(&rg, ECANCELED);
    for (int i = 0; i < 2; i++) {
        assert_once(&rwf[i], ECANCELED);
        assert_once(&rleaf[i], ECANCELED);
    }
    assert_int_equal(atomic_load(&s.wait_rc), ECANCELED);
    evexec_future_unref(gf);
    unref_all(leaf, 2);
    close_all(x);
}

/* A gather of wait_fors of jobs, with results passed up two levels. */
static void test_nested_results(void **state)
{
    struct fx *x = *state;
    struct jspec s[3];
    struct evexec_future *leaf[3], *wf[3];
    for (int i = 0; i < 3; i++) {
        leaf[i] = job(x, &s[i], 0, 100 + i, 0);
        wf[i] = evexec_wait_for(x->ex, leaf[i], &long_tv);
    }
    unref_all(leaf, 3);
    struct evexec_future *ga = evexec_gather(x->ex, wf, 3);
    unref_all(wf, 3);
    struct evexec_future *outer = evexec_wait_for(x->ex, ga, NULL);
    evexec_future_unref(ga);
    assert_int_equal(settle(x, outer), 0);
    void **res = evexec_future_result(outer);
    for (int i = 0; i < 3; i++)
        assert_int_equal(value_of(res[i]), 100 + i);
    evexec_future_unref(outer);
    assert_int_equal(atomic_load(&x->frees), 3);
    close_all(x);
}

/* ---- the largest timeouts ---------------------------------------------------- */

/* tv_sec LONG_MAX is a valid timeout: "that long", never an overflow into
 * the past.  A short sleep ends first; the long ones are still pending;
 * the inner future's own end still ends the wait_for. */
static void test_huge_timeouts(void **state)
{
    struct fx *x = *state;
    const struct timeval huge = { LONG_MAX, 999999 };
    const struct timeval short_tv = { 0, 20000 };
    struct evexec_future *in = hand(x);
    struct evexec_future *slp = evexec_sleep(x->ex, &huge);
    struct evexec_future *wf = evexec_wait_for(x->ex, in, &huge);
    struct evexec_future *w = evexec_wait(x->ex, &in, 1, EVEXEC_ALL_COMPLETED, &huge);
    struct evexec_future *shortf = evexec_sleep(x->ex, &short_tv);
    assert_non_null(slp);
    assert_non_null(wf);
    assert_non_null(w);
    assert_non_null(shortf);
    assert_int_equal(settle(x, shortf), 0);
    turns(x, 3);
    assert_int_equal(evexec_future_done(slp), 0);
    assert_int_equal(evexec_future_done(wf), 0);
    assert_int_equal(evexec_future_done(w), 0);
    assert_int_equal(evexec_future_done(in), 0);
    set_value(x, in, 42);
    assert_int_equal(settle(x, wf), 0);
    assert_int_equal(value_of(evexec_future_result(wf)), 42);
    assert_int_equal(settle(x, w), 0);
    assert_int_equal(evexec_future_cancel(slp), 0);
    assert_int_equal(settle(x, slp), ECANCELED);
    struct evexec_future *all[] = { in, slp, wf, w, shortf };
    unref_all(all, 5);

    /* On a worker: waiting for a cancel with the largest timespec. */
    struct jspec sw, sp;
    jspec_init(&sw, x, J_WAIT, 0, 0);
    sw.wait.tv_sec = LONG_MAX;
    sw.wait.tv_nsec = 999999999L;
    struct evexec_future *jw = submit(x, &sw);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    jspec_init(&sp, x, J_POLL, 0, 0);
    sp.wait = sw.wait;
    sp.poll_fd = fds[0];
    struct evexec_future *jp = submit(x, &sp);
    assert_int_equal(tu_gate_wait_arrived(&x->arrive, 2), 0);
    struct evexec_future *later = evexec_sleep(x->ex, &short_tv);
    assert_int_equal(settle(x, later), 0);
    evexec_future_unref(later);
    assert_int_equal(evexec_future_done(jw), 0);
    assert_int_equal(evexec_future_done(jp), 0);
    assert_int_equal(evexec_future_cancel(jw), 0);
    assert_int_equal(evexec_future_cancel(jp), 0);
    assert_int_equal(settle(x, jw), ECANCELED);
    assert_int_equal(settle(x, jp), ECANCELED);
    assert_int_equal(atomic_load(&sw.wait_rc), ECANCELED);
    assert_int_equal(atomic_load(&sp.wait_rc), ECANCELED);
    evexec_future_unref(jw);
    evexec_future_unref(jp);
    close(fds[0]);
    close(fds[1]);
    close_all(x);
}

/* ---- teardown -------------------------------------------------------------- */

#define NTEAR 9

/* Every kind of combinator pending over hand futures, a queued job, a
 * running job and a long sleep; evexec_free ends them all ECANCELED, runs
 * each callback once and leaks nothing. */
static void test_teardown_pending(void **state)
{
    struct fx *x = *state;
    struct jspec fill[NTHREADS], q;
    struct evexec_future *busy[NTHREADS], *leaf[4], *top[NTEAR];
    struct tu_rec rtop[NTEAR], rleaf[4];
    struct delivery d = { 0 };
    fill_pool(x, fill, busy, NTHREADS);
    leaf[0] = hand(x);
    leaf[1] = job(x, &q, 0, 1, 0);
    leaf[2] = evexec_sleep(x->ex, &long_tv);
    leaf[3] = busy[0];
    top[0] = evexec_gather(x->ex, leaf, 4);
    top[1] = evexec_gather_opts(x->ex, leaf, 4, EVEXEC_GATHER_ALL);
    top[2] = evexec_wait(x->ex, leaf, 4, EVEXEC_ALL_COMPLETED, &long_tv);
    top[3] = as_completed(x, leaf, 4, &d);
    top[4] = evexec_wait_for(x->ex, leaf[0], &long_tv);
    struct evexec_group *g = group_of(x, leaf, 4);
    top[5] = evexec_group_future(g);
    top[6] = evexec_gather(x->ex, top, 5);
    top[7] = evexec_wait_for(x->ex, top[6], NULL);
    struct evexec_group *g2 = group_of(x, &top[7], 1);   /* left open */
    top[8] = evexec_group_future(g2);
    for (int i = 0; i < NTEAR; i++) {
        assert_non_null(top[i]);
        watch(top[i], &rtop[i]);
    }
    for (int i = 0; i < 4; i++)
        watch(leaf[i], &rleaf[i]);
    evexec_group_free(g);
    /* References kept on purpose: evexec_free releases them. */
    close_all(x);
    for (int i = 0; i < NTEAR; i++)
        assert_once(&rtop[i], ECANCELED);
    for (int i = 0; i < 4; i++)
        assert_once(&rleaf[i], ECANCELED);
    assert_int_equal(atomic_load(&q.ran), 0);
    (void)g2;
}

/* ---- unobserved failures --------------------------------------------------- */

struct logged {
    int n;
    int last_error;
};

static void count_log(int error, const char *msg, void *arg)
{
    struct logged *l = arg;
    l->n++;
    l->last_error = error;
    assert_non_null(strstr(msg, "never retrieved"));
}

static void test_unobserved_log(void **state)
{
    struct fx *x = *state;
    struct logged l = { 0 };
    evexec_set_log_fn(count_log, &l);

    /* Failed, never read: reported once, with its error. */
    struct evexec_future *f = hand(x);
    evexec_future_set_error(f, EIO);
    evexec_future_unref(f);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.last_error, EIO);

    /* Read, cancelled or successful: silent. */
    f = hand(x);
    evexec_future_set_error(f, EIO);
    assert_int_equal(evexec_future_error(f), EIO);
    evexec_future_unref(f);
    f = hand(x);
    evexec_future_cancel(f);
    evexec_future_unref(f);
    assert_int_equal(l.n, 1);

    /* A gather reads its inputs; a wait does not. */
    struct evexec_future *in[2];
    hands(x, in, 2);
    struct evexec_future *ga = evexec_gather(x->ex, in, 1);
    struct evexec_future *w = evexec_wait(x->ex, &in[1], 1, EVEXEC_ALL_COMPLETED, NULL);
    evexec_future_set_error(in[0], ENOENT);
    evexec_future_set_error(in[1], EPERM);
    assert_int_equal(settle(x, ga), ENOENT);       /* reads the gather */
    assert_int_equal(settle(x, w), 0);
    unref_all(in, 2);
    evexec_future_unref(ga);
    assert_int_equal(l.n, 1);
    evexec_future_unref(w);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.last_error, EPERM);

    /* A wait_for that timed out and nobody read. */
    f = hand(x);
    w = evexec_wait_for(x->ex, f, &zero_tv);
    turns(x, 3);
    evexec_future_unref(w);
    evexec_future_unref(f);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.last_error, ETIMEDOUT);
    close_all(x);
}

/* ---- randomized stress ---------------------------------------------------- */

/* Random DAGs of combinators over jobs, sleeps and hand-made futures; a
 * driver timer ends hand futures and cancels anything at random; half the
 * rounds tear down at once with most of it pending.  Every node must see
 * its done callback exactly once and every combinator's outcome must fit
 * its inputs.  References are dropped only where a future stays alive
 * through others (a combinator, or an input of one) or has ended: a
 * pending future whose last reference goes never ends, by design. */

enum {
    N_JOB, N_SLEEP, N_HAND,                    /* leaves */
    N_GATHER, N_GATHER_ALL, N_WAIT, N_ASC, N_WAIT_FOR, N_GROUP,
    N_KINDS
};

#define ST_MAXIN 4

struct snode {
    struct evexec_future *f;      /* the test's reference (NULL once dropped) */
    struct evexec_future *raw;    /* the future, for identity */
    struct stress *st;
    int kind;
    int calls;
    int each_calls;
    int used;                     /* an input of some combinator */
    int nin;
    int in[ST_MAXIN];
    struct jspec job;
};

struct stress {
    struct fx *x;
    struct snode *nodes;
    int n;
    unsigned seed;
    int ticks;
    int tearing;
    int bad;            /* invariant violations seen in callbacks */
    int live;           /* nodes that ended before teardown */
    struct event *driver;
};

static int st_pick(struct stress *st, int below)
{
    st->seed = st->seed * 1103515245u + 12345u;
    return below > 0 ? (int)(((st->seed >> 16) & 0x7fff) % (unsigned)below) : 0;
}

static const struct timeval *st_timeout(struct stress *st, struct timeval *tv)
{
    if (st_pick(st, 3) == 0)
        return NULL;
    tv->tv_sec = 0;
    tv->tv_usec = st_pick(st, 4000);
    return tv;
}

static struct evexec_future *st_input(const struct snode *s, int i)
{
    return s->st->nodes[s->in[i]].raw;
}

static int st_inputs_done(const struct snode *s)
{
    for (int i = 0; i < s->nin; i++)
        if (!evexec_future_done(st_input(s, i)))
            return 0;
    return 1;
}

static int st_check_gather(const struct snode *s, int err)
{
    if (err != 0)
        return s->kind == N_GATHER || err == ECANCELED;
    void **res = evexec_future_result(s->raw);
    for (int i = 0; i < s->nin; i++) {
        struct evexec_future *in = st_input(s, i);
        if ((s->kind == N_GATHER && evexec_future_error(in) != 0) ||
            res[i] != evexec_future_result(in))
            return 0;
    }
    return st_inputs_done(s);
}

static int st_check_wait(const struct snode *s, int err)
{
    if (err != 0)
        return err == ECANCELED;
    const struct evexec_wait_result *r = evexec_future_result(s->raw);
    if (r->n != (size_t)s->nin || r->n_done + r->n_pending != r->n)
        return 0;
    for (int i = 0; i < s->nin; i++)
        if (r->done[i] && !evexec_future_done(st_input(s, i)))
            return 0;
    return 1;
}

/* Invariants a combinator's outcome must meet (outside teardown). */
static int st_check(const struct snode *s, int err)
{
    switch (s->kind) {
    case N_GATHER:
    case N_GATHER_ALL:
        return st_check_gather(s, err);
    case N_WAIT:
        return st_check_wait(s, err);
    case N_ASC:
        return err == ECANCELED || (err == 0 && s->each_calls == s->nin);
    case N_WAIT_FOR:
        return err == ETIMEDOUT || err == ECANCELED ||
               (evexec_future_done(st_input(s, 0)) &&
                err == evexec_future_error(st_input(s, 0)) &&
                evexec_future_result(s->raw) == evexec_future_result(st_input(s, 0)));
    case N_GROUP:
        return st_inputs_done(s);
    default:
        return 1;
    }
}

static void st_done(struct evexec_future *f, void *arg)
{
    struct snode *s = arg;
    s->calls++;
    s->st->live += !s->st->tearing;
    if (f != s->raw || (!s->st->tearing && !st_check(s, evexec_future_error(f))))
        s->st->bad++;
}

static void st_each(struct evexec_future *f, void *arg)
{
    struct snode *s = arg;
    (void)f;
    if (++s->each_calls > s->nin)
        s->st->bad++;
}

static struct evexec_future *st_make_leaf(struct stress *st, struct snode *s)
{
    struct timeval tv = { 0, st_pick(st, 3000) };
    switch (s->kind) {
    case N_JOB:
        jspec_init(&s->job, st->x, st_pick(st, 2) ? J_WAIT : 0,
                   st_pick(st, 4) ? 1 + st_pick(st, 100) : 0,
                   st_pick(st, 5) == 0 ? EIO : 0);
        s->job.wait.tv_nsec = st_pick(st, 2000) * 1000L;
        return evexec_run(st->x->ex, spec_job, &s->job);
    case N_SLEEP:
        return evexec_sleep(st->x->ex, &tv);
    default:
        return evexec_future_new(st->x->ex);
    }
}

static struct evexec_future *st_make_group(struct stress *st, struct evexec_future **in,
                                           int n)
{
    struct evexec_group *g = evexec_group_new(st->x->ex);
    if (!g)
        return NULL;
    for (int i = 0; i < n; i++)
        if (evexec_group_add(g, in[i]) != 0)
            st->bad++;
    struct evexec_future *f = evexec_group_future(g);
    /* Freeing the handle cancels the members; a handle kept is released
     * by evexec_free. */
    if (st_pick(st, 4) == 0)
        evexec_group_free(g);
    return f;
}

static struct evexec_future *st_make(struct stress *st, int idx)
{
    struct snode *s = &st->nodes[idx];
    struct evexec_future *in[ST_MAXIN];
    struct timeval tv;
    if (s->kind <= N_HAND)
        return st_make_leaf(st, s);
    s->nin = s->kind == N_WAIT_FOR ? 1 : 1 + st_pick(st, ST_MAXIN);
    for (int i = 0; i < s->nin; i++) {
        s->in[i] = st_pick(st, idx);
        st->nodes[s->in[i]].used = 1;
        in[i] = st->nodes[s->in[i]].raw;
    }
    size_t n = (size_t)s->nin;
    switch (s->kind) {
    case N_GATHER:
        return evexec_gather(st->x->ex, in, n);
    case N_GATHER_ALL:
        return evexec_gather_opts(st->x->ex, in, n, EVEXEC_GATHER_ALL);
    case N_WAIT:
        return evexec_wait(st->x->ex, in, n, 1 + st_pick(st, 3), st_timeout(st, &tv));
    case N_ASC:
        return evexec_as_completed(st->x->ex, in, n, st_each, s);
    case N_WAIT_FOR:
        return evexec_wait_for(st->x->ex, in[0], st_timeout(st, &tv));
    default:
        return st_make_group(st, in, s->nin);
    }
}

/* One driver tick: end a few hand futures and cancel a few others (only
 * those the test still holds); stop when they all ended, or after enough
 * ticks. */
static void st_tick(evutil_socket_t fd, short what, void *arg)
{
    struct stress *st = arg;
    (void)fd;
    (void)what;
    for (int k = 0; k < 16; k++) {
        struct snode *s = &st->nodes[st_pick(st, st->n)];
        int act = st_pick(st, 10);
        if (!s->f)
            continue;
        if (act < 5 && s->kind == N_HAND) {
            if (st_pick(st, 3))
                try_set_value(st->x, s->f, 1);
            else
                evexec_future_set_error(s->f, EIO);
        } else if (act < 7) {
            evexec_future_cancel(s->f);
        }
    }
    int pending = 0;
    for (int i = 0; i < st->n; i++)
        pending += st->nodes[i].f && !evexec_future_done(st->nodes[i].f);
    if (pending == 0 || ++st->ticks > 150)
        return;
    /* Often no delay at all, so cancels race with jobs still running. */
    struct timeval tv = { 0, st_pick(st, 2) * st_pick(st, 1000) };
    event_add(st->driver, &tv);
}

static void st_build(struct stress *st)
{
    static const int weights[N_KINDS] = { 3, 2, 4, 2, 1, 2, 1, 2, 1 };
    int total = 0;
    for (int k = 0; k < N_KINDS; k++)
        total += weights[k];
    for (int i = 0; i < st->n; i++) {
        struct snode *s = &st->nodes[i];
        int w = st_pick(st, total), k = 0;
        while (w >= weights[k])
            w -= weights[k++];
        s->st = st;
        s->kind = i < 8 ? N_HAND : k;
        s->raw = s->f = st_make(st, i);
        assert_non_null(s->f);
        assert_int_equal(evexec_future_on_done(s->f, st_done, s), 0);
        /* A pending combinator is kept alive by its inputs' callbacks. */
        if (s->kind > N_HAND && st_pick(st, 3) == 0) {
            evexec_future_unref(s->f);
            s->f = NULL;
        }
    }
}

/* Returns how many nodes ended before teardown. */
static int st_round(struct fx *x, unsigned seed, int n)
{
    struct stress st = { .x = x, .n = n, .seed = seed };
    st.nodes = calloc((size_t)n, sizeof *st.nodes);
    assert_non_null(st.nodes);
    st_build(&st);
    st.driver = evtimer_new(x->base, st_tick, &st);
    assert_non_null(st.driver);
    st_tick(-1, 0, &st);
    /* Half the rounds tear down at once, with much still pending. */
    if (seed & 1) {
        evexec_set_keepalive(x->ex, 0);
        event_base_dispatch(x->base);
    }
    event_free(st.driver);
    for (int i = 0; i < n; i++) {
        struct snode *s = &st.nodes[i];
        if (s->f && (s->used || evexec_future_done(s->f)) && st_pick(&st, 2)) {
            evexec_future_unref(s->f);
            s->f = NULL;
        }
    }
    st.tearing = 1;
    close_all(x);
    for (int i = 0; i < n; i++)
        if (st.nodes[i].calls != 1)
            fail_msg("seed %u: node %d (kind %d) had %d callbacks", seed, i,
                     st.nodes[i].kind, st.nodes[i].calls);
    assert_int_equal(st.bad, 0);
    free(st.nodes);
    return st.live;
}

static void test_stress(void **state)
{
    struct fx *x = *state;
    const char *env = getenv("EVEXEC_TEST_SEED");
    unsigned seed = env ? (unsigned)strtoul(env, NULL, 0) : (unsigned)time(NULL);
    const char *env_rounds = getenv("EVEXEC_TEST_ROUNDS");
    int rounds = env_rounds ? atoi(env_rounds) : TU_SANITIZED ? 12 : 30, n = 400;
    printf("test_stress: seed %u (EVEXEC_TEST_SEED=%u repeats it), %d rounds of %d\n",
           seed, seed, rounds, n);
    fflush(stdout);
    long live = 0;
    for (int r = 0; r < rounds; r++) {
        if (r > 0) {
            /* A fresh pool and evexec: close_all shut the pool down. */
            evexec_pool_free(x->pool);
            x->pool = tu_pool_new(NTHREADS, 0);
            assert_non_null(x->pool);
            x->ex = evexec_new(x->base, x->pool);
            assert_non_null(x->ex);
            atomic_store(&x->made, 0);
            atomic_store(&x->frees, 0);
        }
        live += st_round(x, seed + (unsigned)r, n);
    }
    printf("test_stress: %ld of %ld futures ended before teardown\n", live,
           (long)rounds * n);
}

/* ---- main ---------------------------------------------------------------- */

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_bad_inputs),
        T(test_gather_input_order),
        T(test_gather_jobs_and_duplicates),
        T(test_gather_empty_next_turn),
        T(test_gather_first_failure),
        T(test_gather_cancelled_input),
        T(test_gather_all),
        T(test_gather_cancel),
        T(test_wait_modes),
        T(test_wait_first_exception_none),
        T(test_wait_timeout_and_cancel),
        T(test_as_completed_order),
        T(test_as_completed_cancel),
        T(test_as_completed_free_inside),
        T(test_wait_for_outcomes),
        T(test_wait_for_timeout_cancels),
        T(test_wait_for_cancel),
        T(test_fs_count_through_wait_for),
        T(test_fs_take_fd_through_wait_for),
        T(test_gather_input_scalars),
        T(test_wait_for_timeout_borrowed_buffer),
        T(test_job_wait_cancel),
        T(test_job_poll),
        T(test_group_success),
        T(test_group_failure),
        T(test_group_cancel_and_free),
        T(test_group_cycle),
        T(test_nested_cancel),
        T(test_nested_results),
        T(test_huge_timeouts),
        T(test_teardown_pending),
        T(test_unobserved_log),
        T(test_stress),
    };
    /* CMOCKA_TEST_FILTER=test_stress runs one test (wildcards allowed). */
    if (getenv("CMOCKA_TEST_FILTER"))
        cmocka_set_test_filter(getenv("CMOCKA_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
