/*
 * combine.c -- futures made of futures: gather, wait, as_completed,
 * wait_for and task groups.  (Waiting for cancellation on a worker lives in
 * cancel.c, the report of failures nobody read in log.c.)
 *
 * Design.  Every combinator is a future (struct comb first in its block)
 * whose ops table is embedded in a struct comb_kind, so fut.ops also names
 * the kind.  It holds one reference to each input, taken when it is made
 * and dropped by ops->release, and it learns of its inputs' ends through
 * one done callback per input (comb_input_done).  Those callbacks can run
 * after the combinator itself has ended, so each one holds a reference to
 * the combinator, dropped when it has run: the combinator's memory outlives
 * every callback that points at it.  This is a cycle (combinator -> input
 * -> callback -> combinator) only until the input ends; an input that
 * never ends keeps both until evexec_free(), which releases everything.
 * The per-kind code runs only while the combinator is pending, so "ends
 * exactly once" is the core's guarantee, not ours.
 *
 * A combinator that ends "on the next loop turn" (no inputs) or on a
 * timeout uses one libevent timer, deleted when it ends and freed on
 * release.  Nothing here runs user code from a timer; user code (each()
 * of as_completed) runs only from done callbacks, which the core runs
 * inside its own enter/leave bracket.
 *
 * Cancelling is ending first, cascading second: a combinator ends itself
 * ECANCELED before it cancels its inputs.  A group instead waits for its
 * cancelled members, so it cascades only once (`stopping`), which also
 * ends the recursion of two groups holding each other's futures; during
 * evexec_free() it ends at once, so teardown always converges.
 *
 * Threads: all of it is loop-thread code.
 */
#define _GNU_SOURCE
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "evexec-internal.h"

/* ---- the common part ------------------------------------------------------ */

struct comb;

struct comb_kind {
    struct evexec__future_ops ops;     /* first: fut.ops points here */
    /* An input ended while the combinator is pending. */
    void (*input)(struct comb *c, struct evexec_future *in);
    /* The timer fired while the combinator is pending. */
    void (*timer)(struct comb *c);
    /* A timeout gave up on input `in` (wait_for and deadlines only). */
    void (*give_up)(struct evexec_future *in);
    /* Inputs' failures count as read (the kind passes them on). */
    unsigned char observes;
};

struct comb {
    struct evexec_future fut;          /* first */
    struct event *timer;               /* NULL when the kind needs none */
    struct timespec due;               /* when the timer is due */
    struct evexec_future **in;         /* inputs, one reference each */
    size_t n;
};

static const struct comb_kind *kind_of(const struct evexec_future *f)
{
    return (const struct comb_kind *)(const void *)evexec__future_ops(f);
}

static int valid_timeval(const struct timeval *tv)
{
    return !tv || (tv->tv_sec >= 0 && tv->tv_usec >= 0 && tv->tv_usec < 1000000);
}

/* EINVAL unless every input is a future of ex. */
static int check_inputs(struct evexec *ex, struct evexec_future **fs, size_t n)
{
    if (!ex || (n > 0 && !fs))
        return EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!fs[i] || fs[i]->ex != ex)
            return EINVAL;
    return 0;
}

/* A combinator of `base` bytes followed by n input slots and n * extra
 * bytes the kind lays out itself; the inputs are referenced.  `base` is a
 * struct size, so the slots after it are aligned. */
static struct comb *comb_alloc(struct evexec *ex, const struct comb_kind *kind,
                               size_t base, size_t extra,
                               struct evexec_future **fs, size_t n)
{
    size_t per = sizeof(struct evexec_future *) + extra;
    if (n > (SIZE_MAX - base) / per) {
        errno = ENOMEM;
        return NULL;
    }
    struct evexec_future *f =
        evexec__future_alloc(ex, base + n * per, EVEXEC__F_OTHER, &kind->ops);
    if (!f)
        return NULL;
    struct comb *c = (struct comb *)f;
    memset((char *)c + sizeof c->fut, 0, base + n * per - sizeof c->fut);
    c->in = (struct evexec_future **)(void *)((char *)c + base);
    c->n = n;
    for (size_t i = 0; i < n; i++)
        c->in[i] = evexec_future_ref(fs[i]);
    return c;
}

/* The kind's own trailing bytes, after the input slots. */
static void *comb_extra(struct comb *c)
{
    return c->in + c->n;
}

static void comb_timer_fired(evutil_socket_t fd, short what, void *arg)
{
    struct comb *c = arg;
    (void)fd;
    (void)what;
    if (evexec__timer_early(c->timer, &c->due))
        return;
    if (c->fut.state == EVEXEC__PENDING)
        kind_of(&c->fut)->timer(c);
}

static int comb_make_timer(struct comb *c)
{
    c->timer = event_new(c->fut.ex->base, -1, 0, comb_timer_fired, c);
    return c->timer ? 0 : ENOMEM;
}

static const struct timeval zero_tv = { 0, 0 };

/* Run the kind's timer step after tv (the next loop turn for zero).
 * Returns 0, or ENOMEM when libevent has no memory for its timer heap. */
static int comb_arm(struct comb *c, const struct timeval *tv)
{
    return evexec__timer_arm(c->timer, &c->due, tv) == 0 ? 0 : ENOMEM;
}

static void comb_end(struct comb *c, int error, void *result)
{
    if (c->timer)
        event_del(c->timer);
    evexec__future_finish(&c->fut, error, result, NULL);
}

static int comb_cancel(struct evexec_future *f)
{
    comb_end((struct comb *)f, ECANCELED, NULL);
    return 0;
}

/* Cancel every input that has not ended. */
static void comb_cancel_inputs(struct comb *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->in[i]->state == EVEXEC__PENDING)
            evexec_future_cancel(c->in[i]);
}

/* ops->cancel of the kinds whose cancel reaches their inputs. */
static int comb_cancel_with_inputs(struct evexec_future *f)
{
    comb_cancel(f);
    comb_cancel_inputs((struct comb *)f);
    return 0;
}

static void comb_release(struct evexec_future *f)
{
    struct comb *c = (struct comb *)f;
    if (c->timer)
        event_free(c->timer);
    c->timer = NULL;
    for (size_t i = 0; i < c->n; i++)
        evexec_future_unref(c->in[i]);
}

static void comb_input_done(struct evexec_future *in, void *arg)
{
    struct comb *c = arg;
    const struct comb_kind *kind = kind_of(&c->fut);
    if (kind->observes && in->error != 0)
        in->observed = 1;
    if (c->fut.state == EVEXEC__PENDING)
        kind->input(c, in);
    evexec_future_unref(&c->fut);       /* this callback's reference */
}

/* Watch input in; the callback holds a reference to c. */
static int comb_watch(struct comb *c, struct evexec_future *in)
{
    int rc = evexec_future_on_done(in, comb_input_done, c);
    if (rc == 0)
        evexec_future_ref(&c->fut);
    return rc;
}

/* Arm the timeout (n == 0: the next turn), watch every input, and hand
 * the caller its reference; NULL + errno on failure, with c given up. */
static struct evexec_future *comb_start(struct comb *c, const struct timeval *tv)
{
    int rc = 0;
    if (c->n == 0)
        tv = &zero_tv;
    if (tv && (rc = comb_make_timer(c)) != 0)
        goto fail;
    for (size_t i = 0; i < c->n; i++)
        if ((rc = comb_watch(c, c->in[i])) != 0)
            goto fail;
    if (tv && (rc = comb_arm(c, tv)) != 0)
        goto fail;
    return &c->fut;

fail:
    /* Callbacks already registered will run and must find it ended; its
     * error goes to nobody, so it is not reported either. */
    comb_end(c, rc, NULL);
    c->fut.observed = 1;
    evexec_future_unref(&c->fut);
    errno = rc;
    return NULL;
}

/* ---- gather --------------------------------------------------------------- */

struct gather {
    struct comb c;
    size_t nseen;          /* inputs whose callback ran */
    int flags;
};

/* Trailing: the result array, after the input slots. */
static void **gather_results(struct gather *g)
{
    return comb_extra(&g->c);
}

static void gather_succeed(struct comb *c)
{
    struct gather *g = (struct gather *)c;
    void **results = gather_results(g);
    for (size_t i = 0; i < c->n; i++)
        results[i] = c->in[i]->error == 0 ? c->in[i]->result : NULL;
    comb_end(c, 0, results);
}

static void gather_input(struct comb *c, struct evexec_future *in)
{
    struct gather *g = (struct gather *)c;
    if (in->error != 0 && !(g->flags & EVEXEC_GATHER_ALL))
        comb_end(c, in->error, NULL);
    else if (++g->nseen == c->n)
        gather_succeed(c);
}

static const struct comb_kind gather_kind = {
    .ops = { .cancel = comb_cancel_with_inputs, .release = comb_release,
             .name = "gather" },
    .input = gather_input,
    .timer = gather_succeed,
    .observes = 1,
};

EVEXEC_API struct evexec_future *evexec_gather_opts(struct evexec *ex,
                                                    struct evexec_future **fs,
                                                    size_t n, int flags)
{
    int rc = check_inputs(ex, fs, n);
    if (rc == 0 && (flags & ~EVEXEC_GATHER_ALL))
        rc = EINVAL;
    if (rc) {
        errno = rc;
        return NULL;
    }
    struct comb *c = comb_alloc(ex, &gather_kind, sizeof(struct gather),
                                sizeof(void *), fs, n);
    if (!c)
        return NULL;
    ((struct gather *)c)->flags = flags;
    return comb_start(c, NULL);
}

EVEXEC_API struct evexec_future *evexec_gather(struct evexec *ex,
                                               struct evexec_future **fs, size_t n)
{
    return evexec_gather_opts(ex, fs, n, 0);
}

EVEXEC_API int evexec_gather_error(const struct evexec_future *gather, size_t i)
{
    if (!gather || evexec__future_ops(gather) != &gather_kind.ops)
        return EINVAL;
    const struct comb *c = (const struct comb *)gather;
    if (i >= c->n)
        return EINVAL;
    c->in[i]->observed = 1;
    return c->in[i]->state == EVEXEC__PENDING ? EINPROGRESS : c->in[i]->error;
}

EVEXEC_API struct evexec_future *evexec_gather_input(struct evexec_future *gather, size_t i)
{
    if (!gather || evexec__future_ops(gather) != &gather_kind.ops || i >= ((struct comb *)gather)->n) {
        errno = EINVAL;
        return NULL;
    }
    return ((struct comb *)gather)->in[i];
}

/* ---- wait ----------------------------------------------------------------- */

struct wait {
    struct comb c;
    struct evexec_wait_result res;
    size_t nseen;
    int when;
};

/* Trailing, after the input slots: n indices (the done ones, then the
 * pending ones), then n done flags. */
static void wait_end(struct comb *c)
{
    struct wait *w = (struct wait *)c;
    size_t *idx = comb_extra(c);
    unsigned char *done = (unsigned char *)(idx + c->n);
    size_t nd = 0;

    for (size_t i = 0; i < c->n; i++)
        nd += done[i] = c->in[i]->state != EVEXEC__PENDING;
    size_t d = 0, p = nd;
    for (size_t i = 0; i < c->n; i++)
        idx[done[i] ? d++ : p++] = i;
    w->res.n = c->n;
    w->res.n_done = nd;
    w->res.n_pending = c->n - nd;
    w->res.done = done;
    w->res.done_index = idx;
    w->res.pending_index = idx + nd;
    comb_end(c, 0, &w->res);
}

static void wait_input(struct comb *c, struct evexec_future *in)
{
    struct wait *w = (struct wait *)c;
    w->nseen++;
    if (w->when == EVEXEC_FIRST_COMPLETED || w->nseen == c->n ||
        (w->when == EVEXEC_FIRST_EXCEPTION && in->error != 0 && in->error != ECANCELED))
        wait_end(c);
}

static const struct comb_kind wait_kind = {
    .ops = { .cancel = comb_cancel, .release = comb_release,
             .name = "wait" },
    .input = wait_input,
    .timer = wait_end,
};

EVEXEC_API struct evexec_future *evexec_wait(struct evexec *ex,
                                             struct evexec_future **fs, size_t n,
                                             int when, const struct timeval *timeout)
{
    int rc = check_inputs(ex, fs, n);
    if (rc == 0 && ((when != EVEXEC_FIRST_COMPLETED && when != EVEXEC_FIRST_EXCEPTION &&
                     when != EVEXEC_ALL_COMPLETED) || !valid_timeval(timeout)))
        rc = EINVAL;
    if (rc) {
        errno = rc;
        return NULL;
    }
    struct comb *c = comb_alloc(ex, &wait_kind, sizeof(struct wait),
                                sizeof(size_t) + 1, fs, n);
    if (!c)
        return NULL;
    ((struct wait *)c)->when = when;
    return comb_start(c, timeout);
}

/* ---- as_completed --------------------------------------------------------- */

struct as_completed {
    struct comb c;
    void (*each)(struct evexec_future *f, void *arg);
    void *arg;
    size_t nseen;
};

static void as_completed_end(struct comb *c)
{
    comb_end(c, 0, NULL);
}

static void as_completed_input(struct comb *c, struct evexec_future *in)
{
    struct as_completed *a = (struct as_completed *)c;
    a->nseen++;
    a->each(in, a->arg);
    /* each() may have cancelled us. */
    if (a->nseen == c->n && c->fut.state == EVEXEC__PENDING)
        as_completed_end(c);
}

static const struct comb_kind as_completed_kind = {
    .ops = { .cancel = comb_cancel, .release = comb_release,
             .name = "as_completed" },
    .input = as_completed_input,
    .timer = as_completed_end,
};

EVEXEC_API struct evexec_future *evexec_as_completed(struct evexec *ex,
                                                     struct evexec_future **fs,
                                                     size_t n,
                                                     void (*each)(struct evexec_future *f,
                                                                  void *arg),
                                                     void *arg)
{
    int rc = check_inputs(ex, fs, n);
    if (rc == 0 && !each)
        rc = EINVAL;
    if (rc) {
        errno = rc;
        return NULL;
    }
    struct comb *c = comb_alloc(ex, &as_completed_kind, sizeof(struct as_completed),
                                0, fs, n);
    if (!c)
        return NULL;
    struct as_completed *a = (struct as_completed *)c;
    a->each = each;
    a->arg = arg;
    return comb_start(c, NULL);
}

/* ---- wait_for ------------------------------------------------------------- */

/* End with the inner future's outcome; its result stays its own. */
static void wait_for_adopt(struct comb *c, struct evexec_future *in)
{
    in->observed = 1;
    comb_end(c, in->error, in->error == 0 ? in->result : NULL);
}

/* The timeout of a wait_for, and of a job's deadline (below). */
static void timeout_fired(struct comb *c)
{
    struct evexec_future *in = c->in[0];
    const struct comb_kind *kind = kind_of(&c->fut);
    /* Ended, but its callbacks have not run yet: its outcome wins. */
    if (in->state != EVEXEC__PENDING) {
        kind->input(c, in);
        return;
    }
    comb_end(c, ETIMEDOUT, NULL);
    kind->give_up(in);
}

static void wait_for_give_up(struct evexec_future *in)
{
    evexec_future_cancel(in);
}

static const struct comb_kind wait_for_kind = {
    .ops = { .cancel = comb_cancel_with_inputs, .release = comb_release,
             .name = "wait_for" },
    .input = wait_for_adopt,
    .timer = timeout_fired,
    .give_up = wait_for_give_up,
    .observes = 1,
};

EVEXEC_API struct evexec_future *evexec_wait_for(struct evexec *ex,
                                                 struct evexec_future *f,
                                                 const struct timeval *timeout)
{
    int rc = check_inputs(ex, &f, 1);
    if (rc == 0 && !valid_timeval(timeout))
        rc = EINVAL;
    if (rc) {
        errno = rc;
        return NULL;
    }
    struct comb *c = comb_alloc(ex, &wait_for_kind, sizeof(struct comb), 0, &f, 1);
    if (!c)
        return NULL;
    return comb_start(c, timeout);
}

/* ---- deadlines of jobs (evexec_run_opts) ---------------------------------- */

/* A wait_for whose timeout also tells the pool that the job it gave up on
 * no longer holds a thread (evexec__job_expire).  Made in two steps, so
 * that nothing that can fail happens after the job was handed over. */
/* End with the job's outcome, its result moved over: the caller never sees
 * the job's own future, so the wrapper owns what it returns. */
static void deadline_adopt(struct comb *c, struct evexec_future *in)
{
    in->observed = 1;
    if (in->error != 0) {
        comb_end(c, in->error, NULL);
        return;
    }
    void *result = in->result;
    void (*free_fn)(void *) = in->free_fn;
    in->result = NULL;
    in->free_fn = NULL;
    event_del(c->timer);
    evexec__future_finish(&c->fut, 0, result, free_fn);
}

static const struct comb_kind deadline_kind = {
    .ops = { .cancel = comb_cancel_with_inputs, .release = comb_release,
             .name = "deadline" },
    .input = deadline_adopt,
    .timer = timeout_fired,
    .give_up = evexec__job_expire,
    .observes = 1,
};

struct evexec_future *evexec__deadline_new(struct evexec *ex)
{
    size_t size = sizeof(struct comb) + sizeof(struct evexec_future *);
    struct evexec_future *f = evexec__future_alloc(ex, size, EVEXEC__F_OTHER,
                                                   &deadline_kind.ops);
    if (!f)
        return NULL;
    struct comb *c = (struct comb *)f;
    c->in = (struct evexec_future **)(void *)(c + 1);
    c->n = 1;
    c->in[0] = NULL;
    if (comb_make_timer(c) != 0) {
        evexec_future_unref(f);
        errno = ENOMEM;
        return NULL;
    }
    return f;
}

void evexec__deadline_start(struct evexec_future *w, struct evexec_future *job,
                            const struct timeval *tv)
{
    struct comb *c = (struct comb *)w;
    c->in[0] = evexec_future_ref(job);
    int rc = comb_watch(c, job);
    if (rc == 0)
        rc = comb_arm(c, tv);
    if (rc != 0) {
        /* The job was handed over: its future, not the call, fails. */
        comb_end(c, rc, NULL);
        evexec_future_cancel(job);
    }
}

struct evexec_future *evexec__wait_for_inner(const struct evexec_future *f)
{
    if (!f || evexec__future_ops(f) != &wait_for_kind.ops)
        return NULL;
    return ((const struct comb *)f)->in[0];
}

/* ---- task groups ---------------------------------------------------------- */

/* The group handle is the group's future block: c.in is a growing array of
 * members (c.n of them), and the handle holds one reference. */
struct evexec_group {
    struct comb c;
    size_t cap;
    size_t npending;        /* members whose done callback has not run */
    int first_error;        /* first member failure other than ECANCELED */
    unsigned char closed;   /* ends once npending == 0 */
    unsigned char stopping; /* takes no more members; pending ones cancelled */
    unsigned char cancelled;
};

static void group_maybe_end(struct comb *c)
{
    struct evexec_group *g = (struct evexec_group *)c;
    if (!g->closed || g->npending > 0)
        return;
    comb_end(c, g->first_error ? g->first_error : g->cancelled ? ECANCELED : 0, NULL);
}

/* Once only: with groups inside each other, the cascade may come back. */
static void group_stop(struct evexec_group *g)
{
    if (g->stopping)
        return;
    g->stopping = 1;
    g->closed = 1;
    comb_cancel_inputs(&g->c);
}

static void group_input(struct comb *c, struct evexec_future *in)
{
    struct evexec_group *g = (struct evexec_group *)c;
    g->npending--;
    if (in->error != 0 && in->error != ECANCELED && g->first_error == 0) {
        /* Later failures stay unread, so they are reported, not lost. */
        in->observed = 1;
        g->first_error = in->error;
        group_stop(g);
    }
    group_maybe_end(c);
}

static int group_cancel(struct evexec_future *f)
{
    struct evexec_group *g = (struct evexec_group *)f;
    if (evexec__closing(f->ex)) {
        /* Teardown ends every member anyway; do not wait for them (nor
         * for a cycle of groups that would never end). */
        comb_end(&g->c, ECANCELED, NULL);
        return 0;
    }
    g->cancelled = 1;
    group_stop(g);
    group_maybe_end(&g->c);
    return 0;
}

static void group_release(struct evexec_future *f)
{
    struct comb *c = (struct comb *)f;
    comb_release(f);
    free(c->in);
    c->in = NULL;
    c->n = 0;
}

static const struct comb_kind group_kind = {
    .ops = { .cancel = group_cancel, .release = group_release,
             .name = "group" },
    .input = group_input,
    .timer = group_maybe_end,
};

EVEXEC_API struct evexec_group *evexec_group_new(struct evexec *ex)
{
    if (!ex) {
        errno = EINVAL;
        return NULL;
    }
    struct comb *c = comb_alloc(ex, &group_kind, sizeof(struct evexec_group), 0,
                                NULL, 0);
    if (!c)
        return NULL;
    c->in = NULL;
    int rc = comb_make_timer(c);
    if (rc) {
        evexec_future_unref(&c->fut);
        errno = rc;
        return NULL;
    }
    return (struct evexec_group *)c;
}

EVEXEC_API int evexec_group_add(struct evexec_group *g, struct evexec_future *f)
{
    if (!g || !f || f == &g->c.fut || f->ex != g->c.fut.ex)
        return EINVAL;
    if (g->stopping || g->c.fut.state != EVEXEC__PENDING)
        return ESHUTDOWN;
    if (g->c.n == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 4;
        struct evexec_future **in =
            cap <= SIZE_MAX / sizeof *in ? evexec__realloc(g->c.in, cap * sizeof *in) : NULL;
        if (!in)
            return ENOMEM;
        g->c.in = in;
        g->cap = cap;
    }
    int rc = comb_watch(&g->c, f);
    if (rc)
        return rc;
    g->c.in[g->c.n++] = evexec_future_ref(f);
    g->npending++;
    return 0;
}

/* Close the group: it ends once no member is pending, on the next turn at
 * the earliest. */
static void group_close(struct evexec_group *g)
{
    g->closed = 1;
    if (g->c.fut.state == EVEXEC__PENDING && g->npending == 0)
        if (comb_arm(&g->c, &zero_tv) != 0)
            kind_of(&g->c.fut)->timer(&g->c);   /* now rather than never */
}

EVEXEC_API struct evexec_future *evexec_group_future(struct evexec_group *g)
{
    if (!g) {
        errno = EINVAL;
        return NULL;
    }
    group_close(g);
    return evexec_future_ref(&g->c.fut);
}

EVEXEC_API void evexec_group_free(struct evexec_group *g)
{
    if (!g)
        return;
    if (g->c.fut.state == EVEXEC__PENDING && g->npending > 0) {
        g->cancelled = 1;
        group_stop(g);
    } else {
        group_close(g);
    }
    evexec_future_unref(&g->c.fut);     /* the handle's reference */
}
