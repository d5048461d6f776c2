/*
 * test_future.c -- futures: states, results and their destructors,
 * references, done callbacks (exactly once, in order, never inline), cancel
 * of hand-made futures, and the bad inputs of every future call.
 *
 * Hand-made futures (evexec_future_new) need no worker, so most tests here
 * are single-threaded; job futures appear only where a call must refuse
 * them.
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
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "evexec.h"
#include "testutil.h"

static int setup(void **state)
{
    return tu_fx_setup(state, 2);
}

static int teardown(void **state)
{
    return tu_fx_teardown(state);
}

static struct evexec_future *new_future(struct tu_fx *fx)
{
    struct evexec_future *f = evexec_future_new(fx->ex);
    assert_non_null(f);
    return f;
}

static struct tu_result *new_result(struct tu_fx *fx, long value)
{
    struct tu_result *r = tu_result_new(&fx->frees, value);
    assert_non_null(r);
    return r;
}

/* Register a recorder on f, with tu_in_api set: it must not run now. */
static void watch(struct evexec_future *f, struct tu_rec *rec)
{
    tu_rec_init(rec);
    tu_in_api = 1;
    assert_int_equal(evexec_future_on_done(f, tu_rec_cb, rec), 0);
    tu_in_api = 0;
    assert_int_equal(rec->calls, 0);
}

/* Run the loop until it has nothing left (0, or 1 for "no events"). */
static void dispatch(struct tu_fx *fx)
{
    /* Without keep-alive, dispatch returns once nothing is in flight.
     * The evexec may be freed inside, so it stays that way. */
    if (fx->ex)
        assert_int_equal(evexec_set_keepalive(fx->ex, 0), 0);
    assert_int_not_equal(event_base_dispatch(fx->base), -1);
}

static void assert_pending(const struct evexec_future *f)
{
    assert_int_equal(evexec_future_done(f), 0);
    assert_int_equal(evexec_future_error(f), EINPROGRESS);
    assert_null(evexec_future_result(f));
    assert_int_equal(evexec_future_cancelled(f), 0);
}

/* The callback ran once, on the loop thread, from the loop, and saw `error`
 * and `result`. */
static void assert_rec(const struct tu_rec *rec, int error, const void *result)
{
    const char *bad = tu_rec_check(rec, error, result);
    if (bad)
        fail_msg("%s", bad);
}

/* ---- states -------------------------------------------------------------- */

static void test_new_is_pending(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_future *f = new_future(fx);
    assert_pending(f);
    assert_ptr_equal(evexec_future_get_evexec(f), fx->ex);
    evexec_future_unref(f);
}

static void test_set_result(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_future *f = new_future(fx);
    struct tu_result *r = new_result(fx, 7);
    struct tu_rec rec;
    watch(f, &rec);

    tu_in_api = 1;
    assert_int_equal(evexec_future_set_result(f, r, tu_result_free), 0);
    tu_in_api = 0;
    /* Done as soon as set_result returns; the callback comes later. */
    assert_int_equal(rec.calls, 0);
    assert_int_equal(evexec_future_done(f), 1);
    assert_int_equal(evexec_future_error(f), 0);
    assert_ptr_equal(evexec_future_result(f), r);
    assert_int_equal(evexec_future_cancelled(f), 0);

    dispatch(fx);
    assert_rec(&rec, 0, r);
    /* Reading the result does not release it; the last unref does. */
    assert_int_equal(atomic_load(&fx->frees), 0);
    evexec_future_unref(f);
    assert_int_equal(atomic_load(&fx->frees), 1);
}

/* A result never read is still released, exactly once. */
static void test_result_released_unread(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_future *f = new_future(fx);
    assert_int_equal(evexec_future_set_result(f, new_result(fx, 1), tu_result_free), 0);
    evexec_future_unref(f);
    assert_int_equal(atomic_load(&fx->frees), 1);
    dispatch(fx);
    assert_int_equal(atomic_load(&fx->frees), 1);
}

/* A NULL destructor is allowed: the result stays the caller's memory. */
static void test_result_without_destructor(void **state)
{
    struct tu_fx *fx = *state;
    static int value = 3;
    struct evexec_future *f = new_future(fx);
    assert_int_equal(evexec_future_set_result(f, &value, NULL), 0);
    dispatch(fx);
    assert_ptr_equal(evexec_future_result(f), &value);
    evexec_future_unref(f);
}

static void test_set_error(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_future *f = new_future(fx);
    struct tu_rec rec;
    watch(f, &rec);

    tu_in_api = 1;
    assert_int_equal(evexec_future_set_error(f, EIO), 0);
    tu_in_api = 0;
    assert_int_equal(rec.calls, 0);
    assert_int_equal(evexec_future_done(f), 1);
    assert_int_equal(evexec_future_error(f), EIO);
    assert_null(evexec_future_result(f));
    assert_int_equal(evexec_future_cancelled(f), 0);

    dispatch(fx);
    assert_rec(&rec, EIO, NULL);
    evexec_future_unref(f);
}

/* getaddrinfo's negative codes travel like any error. */
static void test_set_error_negative(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_future *f = new_future(fx);
    assert_int_equal(evexec_future_set_error(f, EAI_NONAME), 0);
    assert_int_equal(evexec_future_error(f), EAI_NONAME);
    evexec_future_unref(f);
}

/* set_error(0) is EINVAL and leaves the future pending. */
static void test_set_error_zero(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_future *f = new_future(fx);
    assert_int_equal(evexec_future_set_error(f, 0), EINVAL);
    assert_pending(f);
    assert_int_equal(evexec_future_set_error(f, ENOENT), 0);
    assert_int_equal(evexec_future_error(f), ENOENT);
    evexec_future_unref(f);
}

/* Ends f with a result, then checks that every later set_* and cancel
 * fails and changes nothing; the refused result stays the caller's. */
static void check_second_set_refused(struct tu_fx *fx, struct evexec_future *f,
                                     int first_error, void *first_result)
{
    struct tu_result *mine = new_result(fx, 99);
    assert_int_equal(evexec_future_set_result(f, mine, tu_result_free), EALREADY);
    assert_int_equal(evexec_future_set_error(f, EPERM), EALREADY);
    assert_int_equal(evexec_future_cancel(f), EALREADY);
    assert_int_equal(evexec_future_done(f), 1);
    assert_int_equal(evexec_future_error(f), first_error);
    assert_ptr_equal(evexec_future_result(f), first_result);
    assert_int_equal(evexec_future_cancelled(f), first_error == ECANCELED);
    int before = atomic_load(&fx->frees);
    tu_result_free(mine);
    assert_int_equal(atomic_load(&fx->frees), before + 1);
}

static void test_second_set_after_result(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_future *f = new_future(fx);
    struct tu_result *r = new_result(fx, 1);
    struct tu_rec rec;
    watch(f, &rec);
    assert_int_equal(evexec_future_set_result(f, r, tu_result_free), 0);
    check_second_set_refused(fx, f, 0, r);
    dispatch(fx);
    assert_rec(&rec, 0, r);
    evexec_future_unref(f);
    assert_int_equal(atomic_load(&fx->frees), 2);
}

static void test_second_set_after_error(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_future *f = new_future(fx);
    struct tu_rec rec;
    watch(f, &rec);
    assert_int_equal(evexec_future_set_error(f, EIO), 0);
    check_second_set_refused(fx, f, EIO, NULL);
    dispatch(fx);
    assert_rec(&rec, EIO, NULL);
    evexec_future_unref(f);
}

/* Cancel of a pending hand-made future: taken (0), ends ECANCELED now,
 * the callback runs later; set_* afterwards is EALREADY. */
static void test_cancel_pending(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_future *f = new_future(fx);
    struct tu_rec rec;
    watch(f, &rec);

    tu_in_api = 1;
    assert_int_equal(evexec_future_cancel(f), 0);
    tu_in_api = 0;
    assert_int_equal(rec.calls, 0);
    assert_int_equal(evexec_future_done(f), 1);
    assert_int_equal(evexec_future_error(f), ECANCELED);
    assert_int_equal(evexec_future_cancelled(f), 1);
    check_second_set_refused(fx, f, ECANCELED, NULL);

    dispatch(fx);
    assert_rec(&rec, ECANCELED, NULL);
    evexec_future_unref(f);
}

/* take_result: the caller owns the result, the future forgets it, and the
 * destructor is never called by the library. */
static void test_take_result(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_future *f = new_future(fx);
    struct tu_result *r = new_result(fx, 5);
    assert_null(evexec_future_take_result(f));   /* pending: nothing */
    assert_int_equal(evexec_future_set_result(f, r, tu_result_free), 0);

    assert_ptr_equal(evexec_future_take_result(f), r);
    assert_null(evexec_future_result(f));
    assert_null(evexec_future_take_result(f));
    assert_int_equal(evexec_future_error(f), 0);
    dispatch(fx);
    evexec_future_unref(f);
    assert_int_equal(atomic_load(&fx->frees), 0);
    tu_result_free(r);
    assert_int_equal(atomic_load(&fx->frees), 1);
}

static void test_take_result_of_failed(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_future *f = new_future(fx);
    assert_int_equal(evexec_future_set_error(f, EIO), 0);
    assert_null(evexec_future_take_result(f));
    assert_int_equal(evexec_future_error(f), EIO);
    evexec_future_unref(f);
}

/* ---- references ---------------------------------------------------------- */

static void test_refs(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_future *f = new_future(fx);
    assert_ptr_equal(evexec_future_ref(f), f);
    assert_ptr_equal(evexec_future_ref(f), f);
    assert_int_equal(evexec_future_set_result(f, new_result(fx, 1), tu_result_free), 0);
    evexec_future_unref(f);
    evexec_future_unref(f);
    assert_int_equal(atomic_load(&fx->frees), 0);
    assert_int_equal(evexec_future_error(f), 0);   /* still referenced */
    evexec_future_unref(f);
    assert_int_equal(atomic_load(&fx->frees), 1);
}

/* A future whose last reference goes while pending, with a callback:
 * the callback still runs exactly once (at the latest in evexec_free). */
static void test_unref_pending_with_callback(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_future *f = new_future(fx);
    struct tu_rec rec;
    watch(f, &rec);
    evexec_future_unref(f);
    dispatch(fx);
    evexec_free(fx->ex);
    fx->ex = NULL;
    assert_int_equal(rec.calls, 1);
    assert_int_equal(rec.error, ECANCELED);
}

/* ---- callbacks ----------------------------------------------------------- */

/* Callbacks of one future run in the order they were added. */
static void test_callback_order(void **state)
{
    struct tu_fx *fx = *state;
    enum { N = 50 };
    struct tu_rec recs[N];
    int order = 0;
    struct evexec_future *f = new_future(fx);
    for (int i = 0; i < N; i++) {
        watch(f, &recs[i]);
        recs[i].order = &order;
    }
    assert_int_equal(evexec_future_set_error(f, EIO), 0);
    dispatch(fx);
    for (int i = 0; i < N; i++) {
        assert_rec(&recs[i], EIO, NULL);
        assert_int_equal(recs[i].seq, i);
    }
    evexec_future_unref(f);
}

/* on_done on a future that already ended: the callback still runs later,
 * from the loop, never inside on_done. */
static void test_on_done_after_end(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_future *f = new_future(fx);
    struct tu_rec first, late;
    watch(f, &first);
    assert_int_equal(evexec_future_set_error(f, EPERM), 0);
    dispatch(fx);
    assert_rec(&first, EPERM, NULL);

    watch(f, &late);   /* must not run inside on_done */
    dispatch(fx);
    assert_rec(&late, EPERM, NULL);
    assert_int_equal(first.calls, 1);
    evexec_future_unref(f);
}

/* A callback that drops its future's last reference, followed by another
 * callback on the same future: both run once; the result goes once. */
struct unref_ctx {
    int calls;
};

static void unref_cb(struct evexec_future *f, void *arg)
{
    struct unref_ctx *c = arg;
    c->calls++;
    evexec_future_unref(f);
}

static void test_callback_unrefs_own_future(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_future *f = new_future(fx);
    struct unref_ctx c = { 0 };
    struct tu_rec after;
    assert_int_equal(evexec_future_on_done(f, unref_cb, &c), 0);
    watch(f, &after);
    assert_int_equal(evexec_future_set_result(f, new_result(fx, 1), tu_result_free), 0);
    dispatch(fx);
    assert_int_equal(c.calls, 1);
    assert_int_equal(after.calls, 1);
    assert_int_equal(after.error, 0);
    assert_int_equal(atomic_load(&fx->frees), 1);
}

/* A callback adds another callback to its own future and ends a second
 * future: both new callbacks run later, exactly once, not nested. */
struct chain_ctx {
    struct evexec_future *other;
    struct tu_rec added;
    struct tu_rec on_other;
    int calls;
    int depth;          /* >0 while chain_cb runs */
    int nested;         /* recorder runs seen while depth > 0 */
    int add_rc, set_rc, on_other_rc;
};

static void chain_rec_cb(struct evexec_future *f, void *arg);

static void chain_cb(struct evexec_future *f, void *arg)
{
    struct chain_ctx *c = arg;
    c->calls++;
    c->depth++;
    tu_rec_init(&c->added);
    tu_rec_init(&c->on_other);
    c->add_rc = evexec_future_on_done(f, chain_rec_cb, c);
    c->on_other_rc = evexec_future_on_done(c->other, chain_rec_cb, c);
    c->set_rc = evexec_future_set_error(c->other, ENOENT);
    c->depth--;
}

static void chain_rec_cb(struct evexec_future *f, void *arg)
{
    struct chain_ctx *c = arg;
    if (c->depth)
        c->nested++;
    tu_rec_cb(f, f == c->other ? &c->on_other : &c->added);
}

static void test_callback_adds_callbacks(void **state)
{
    struct tu_fx *fx = *state;
    struct chain_ctx c;
    memset(&c, 0, sizeof c);
    struct evexec_future *f = new_future(fx);
    c.other = new_future(fx);
    assert_int_equal(evexec_future_on_done(f, chain_cb, &c), 0);
    assert_int_equal(evexec_future_set_error(f, EIO), 0);
    dispatch(fx);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.add_rc, 0);
    assert_int_equal(c.on_other_rc, 0);
    assert_int_equal(c.set_rc, 0);
    assert_int_equal(c.nested, 0);
    assert_rec(&c.added, EIO, NULL);
    assert_rec(&c.on_other, ENOENT, NULL);
    evexec_future_unref(c.other);
    evexec_future_unref(f);
}

/* ---- refusals ------------------------------------------------------------ */

static int quick_job(struct evexec_job *job, void *arg)
{
    (void)job;
    (void)arg;
    return 0;
}

/* set_* is only for hand-made futures: a job's future refuses it. */
static void test_set_on_job_future(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_future *f = evexec_run(fx->ex, quick_job, NULL);
    assert_non_null(f);
    struct tu_result *mine = new_result(fx, 1);
    assert_int_equal(evexec_future_set_result(f, mine, tu_result_free), EINVAL);
    assert_int_equal(evexec_future_set_error(f, EIO), EINVAL);
    assert_int_equal(evexec_run_until_complete(fx->ex, f), 0);
    assert_int_equal(evexec_future_error(f), 0);
    assert_null(evexec_future_result(f));
    /* Refused and done: still refused, the result still the caller's. */
    assert_int_equal(evexec_future_set_result(f, mine, tu_result_free), EINVAL);
    evexec_future_unref(f);
    assert_int_equal(atomic_load(&fx->frees), 0);
    tu_result_free(mine);
}

/* NULL everywhere: EINVAL (or NULL with errno EINVAL), no crash. */
static void test_null_arguments(void **state)
{
    struct tu_fx *fx = *state;
    static int value;

    errno = 0;
    assert_null(evexec_future_new(NULL));
    assert_int_equal(errno, EINVAL);

    assert_int_equal(evexec_future_set_result(NULL, &value, NULL), EINVAL);
    assert_int_equal(evexec_future_set_error(NULL, EIO), EINVAL);
    assert_int_equal(evexec_future_done(NULL), 0);
    assert_int_equal(evexec_future_error(NULL), EINVAL);
    assert_null(evexec_future_result(NULL));
    assert_null(evexec_future_take_result(NULL));
    assert_int_equal(evexec_future_cancel(NULL), EINVAL);
    assert_int_equal(evexec_future_cancelled(NULL), 0);
    assert_int_equal(evexec_future_on_done(NULL, tu_rec_cb, NULL), EINVAL);
    assert_null(evexec_future_ref(NULL));
    evexec_future_unref(NULL);
    assert_null(evexec_future_get_evexec(NULL));

    /* NULL callback: refused, the future unchanged. */
    struct evexec_future *f = new_future(fx);
    assert_int_equal(evexec_future_on_done(f, NULL, NULL), EINVAL);
    assert_pending(f);
    assert_int_equal(evexec_future_set_error(f, EIO), 0);
    dispatch(fx);
    evexec_future_unref(f);
}

#define TESTS(X) \
    X(test_new_is_pending) \
    X(test_set_result) \
    X(test_result_released_unread) \
    X(test_result_without_destructor) \
    X(test_set_error) \
    X(test_set_error_negative) \
    X(test_set_error_zero) \
    X(test_second_set_after_result) \
    X(test_second_set_after_error) \
    X(test_cancel_pending) \
    X(test_take_result) \
    X(test_take_result_of_failed) \
    X(test_refs) \
    X(test_unref_pending_with_callback) \
    X(test_callback_order) \
    X(test_on_done_after_end) \
    X(test_callback_unrefs_own_future) \
    X(test_callback_adds_callbacks) \
    X(test_set_on_job_future) \
    X(test_null_arguments)

TESTS(TU_WRAP)

#define ENTRY(name) TU_ENTRY(name, setup, teardown),

int main(void)
{
    const struct CMUnitTest tests[] = { TESTS(ENTRY) };
    return cmocka_run_group_tests_name("future", tests, NULL, NULL);
}
