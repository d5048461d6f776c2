/*
 * future.c -- future states, done callbacks, references, timers.
 *
 * Design.  A future lives on its evexec's loop thread and nowhere else, so
 * nothing here takes a lock.  It is pending, then ends exactly once
 * (evexec__future_finish) with an error code and, on success, a result it
 * owns.  Ending never runs a callback: it puts the future on the evexec's
 * ready queue, which the loop runs from a libevent callback (after a drain
 * of completions, or from a dedicated active event).  So a callback never
 * runs inside the API call that registered or caused it.
 *
 * References.  The caller's reference, one for being on the ready queue,
 * and for a job one while it is in the pool.  The last unref releases the
 * result (its destructor), the kind's own state (ops->release) and the
 * memory; but a pending future with callbacks is kept until it ends, so
 * that they run.  While the evexec is being freed, unref releases nothing:
 * teardown frees every future itself at the end.
 *
 * Callbacks.  Stored in call order: the first inline, more in an array.
 * `cbnext` is the first one not yet run, so callbacks added to a future
 * that already ended run once each, in order, on a later pass.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "evexec-internal.h"

/* The header before a future of kind EVEXEC__F_OTHER: its ops, the room
 * of a max_align_t so that the future stays aligned. */
union evexec__ops_header {
    const struct evexec__future_ops *ops;
    max_align_t align;
};

const struct evexec__future_ops *evexec__future_ops(const struct evexec_future *f)
{
    if (f->kind == EVEXEC__F_JOB)
        return &evexec__job_ops;
    if (f->kind != EVEXEC__F_OTHER)
        return NULL;
    return ((const union evexec__ops_header *)(const void *)f)[-1].ops;
}

struct evexec_future *evexec__future_alloc(struct evexec *ex, size_t size, int kind,
                                           const struct evexec__future_ops *ops)
{
    int rc = evexec__usable(ex);
    if (rc) {
        errno = rc;
        return NULL;
    }
    size_t head = kind == EVEXEC__F_OTHER ? sizeof(union evexec__ops_header) : 0;
    char *p = evexec__malloc(head + size);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    if (head)
        ((union evexec__ops_header *)(void *)p)->ops = ops;
    struct evexec_future *f = (struct evexec_future *)(void *)(p + head);
    memset((char *)f + sizeof *f, 0, size - sizeof *f);
    evexec__future_init(ex, f, kind);
    return f;
}

void evexec__future_free_block(struct evexec_future *f)
{
    if (f->kind == EVEXEC__F_OTHER)
        free((union evexec__ops_header *)(void *)f - 1);
    else
        free(f);
}

static void schedule(struct evexec_future *f)
{
    struct evexec *ex = f->ex;
    if (f->in_ready)
        return;
    f->in_ready = 1;
    f->refs++;
    f->ready_next = NULL;
    if (ex->ready_tail)
        ex->ready_tail->ready_next = f;
    else
        ex->ready_head = f;
    ex->ready_tail = f;
    evexec__schedule_ready(ex);
}

/* A future's callbacks: one inline (cb0) while ncb <= 1, then an array
 * (cbs) with room for 4, 8, 16...: ncb alone says which and how big, so
 * neither a pointer to the inline one nor a capacity is stored. */
static unsigned cb_room(unsigned ncb)
{
    if (ncb <= 1)
        return 1;
    unsigned room = 4;
    while (room < ncb)
        room *= 2;
    return room;
}

static struct evexec__cb *cb_array(struct evexec_future *f)
{
    return f->ncb <= 1 ? &f->cb0 : f->cbs;
}

/* Run the callbacks not yet run, in order.  Loop thread, from the loop. */
static void run_callbacks(struct evexec_future *f)
{
    while (f->cbnext < f->ncb) {
        /* Copy: the callback may add callbacks and move the array. */
        struct evexec__cb cb = cb_array(f)[f->cbnext++];
        cb.fn(f, cb.arg);
    }
}

void evexec__future_run_callbacks(struct evexec_future *f)
{
    run_callbacks(f);
}

/* The one place a future's outcome is written: a result is kept only on
 * success, and released at once otherwise. */
static void set_outcome(struct evexec_future *f, int error, void *result,
                        void (*free_fn)(void *))
{
    f->state = EVEXEC__DONE;
    f->error = error;
    if (error == 0) {
        f->result = result;
        f->free_fn = free_fn;
    } else if (result && free_fn) {
        free_fn(result);
    }
}

void evexec__future_deliver(struct evexec_future *f, int error, void *result,
                            void (*free_fn)(void *))
{
    set_outcome(f, error, result, free_fn);
    if (!f->in_ready)
        run_callbacks(f);
}

int evexec__future_finish(struct evexec_future *f, int error, void *result,
                          void (*free_fn)(void *))
{
    if (f->state != EVEXEC__PENDING)
        return EALREADY;
    set_outcome(f, error, result, free_fn);
    if (f->cbnext < f->ncb)
        schedule(f);
    return 0;
}

void evexec__future_resume(struct evexec_future *f)
{
    if (f->state != EVEXEC__PENDING && f->cbnext < f->ncb)
        schedule(f);
}

void evexec__run_ready(struct evexec *ex)
{
    struct evexec_future *f;
    while ((f = ex->ready_head) != NULL) {
        ex->ready_head = f->ready_next;
        if (!ex->ready_head)
            ex->ready_tail = NULL;
        f->in_ready = 0;
        run_callbacks(f);
        evexec_future_unref(f);
    }
}

void evexec__future_release(struct evexec_future *f)
{
    if (f->error != 0 && !f->observed)      /* cheap test first: per job */
        evexec__report_unobserved(f);
    /* A job still out in the pool (teardown) owns the result fields: the
     * worker releases what it set when it comes back (bridge.c). */
    if (!(f->kind == EVEXEC__F_JOB && f->outstanding)) {
        if (f->result && f->free_fn)
            f->free_fn(f->result);
        f->result = NULL;
        f->free_fn = NULL;
    }
    const struct evexec__future_ops *ops = evexec__future_ops(f);
    if (ops && ops->release)
        ops->release(f);
    if (f->ncb > 1)
        free(f->cbs);
    f->ncb = f->cbnext = 0;
}

void evexec__future_free_mem(struct evexec_future *f)
{
    struct evexec *ex = f->ex;
    struct evexec_future *no_tail = NULL;   /* the list keeps no tail */
    EVEXEC__DLIST_UNLINK(ex->all, no_tail, f, all_prev, all_next);
    (void)no_tail;
    if (f->kind == EVEXEC__F_JOB) {
        evexec__jobfut_recycle(ex, EVEXEC__CONTAINER_OF(f, struct evexec__jobfut, fut));
        return;
    }
    evexec__future_free_block(f);
}

/* ---- the public face ----------------------------------------------------- */

EVEXEC_API struct evexec_future *evexec_future_new(struct evexec *ex)
{
    if (!ex) {
        errno = EINVAL;
        return NULL;
    }
    return evexec__future_alloc(ex, sizeof(struct evexec_future), EVEXEC__F_USER, NULL);
}

static int user_settable(const struct evexec_future *f)
{
    if (!f || f->kind != EVEXEC__F_USER)
        return EINVAL;
    if (f->state != EVEXEC__PENDING || f->cancel_taken)
        return EALREADY;
    return 0;
}

EVEXEC_API int evexec_future_set_result(struct evexec_future *f, void *result,
                                        void (*free_fn)(void *))
{
    int rc = user_settable(f);
    return rc ? rc : evexec__future_finish(f, 0, result, free_fn);
}

EVEXEC_API int evexec_future_set_error(struct evexec_future *f, int error)
{
    if (error == 0)
        return EINVAL;
    int rc = user_settable(f);
    return rc ? rc : evexec__future_finish(f, error, NULL, NULL);
}

EVEXEC_API int evexec_future_done(const struct evexec_future *f)
{
    return f && f->state != EVEXEC__PENDING;
}

EVEXEC_API int evexec_future_error(const struct evexec_future *f)
{
    if (!f)
        return EINVAL;
    ((struct evexec_future *)f)->observed = 1;
    return f->error;
}

EVEXEC_API void *evexec_future_result(const struct evexec_future *f)
{
    return f && f->state != EVEXEC__PENDING && f->error == 0 ? f->result : NULL;
}

EVEXEC_API void *evexec_future_take_result(struct evexec_future *f)
{
    void *r = evexec_future_result(f);
    if (r) {
        f->result = NULL;
        f->free_fn = NULL;
    }
    return r;
}

EVEXEC_API int evexec_future_cancelled(const struct evexec_future *f)
{
    return f && f->state != EVEXEC__PENDING && f->error == ECANCELED;
}

EVEXEC_API int evexec_future_cancel(struct evexec_future *f)
{
    if (!f)
        return EINVAL;
    if (f->state != EVEXEC__PENDING)
        return EALREADY;
    if (f->cancel_taken)
        return 0;           /* a running job: already asked */
    const struct evexec__future_ops *ops = evexec__future_ops(f);
    if (ops && ops->cancel)
        return ops->cancel(f);
    f->cancel_taken = 1;
    return evexec__future_finish(f, ECANCELED, NULL, NULL);
}

/* Make room for more callbacks: the rare path, kept out of line so that
 * adding the first callback stays a leaf. */
static __attribute__((noinline)) int grow_callbacks(struct evexec_future *f)
{
    size_t bytes;
    if (__builtin_mul_overflow((size_t)cb_room(f->ncb + 1), sizeof(struct evexec__cb), &bytes))
        return ENOMEM;
    struct evexec__cb *cbs = f->ncb == 1 ? evexec__malloc(bytes)
                                         : evexec__realloc(f->cbs, bytes);
    if (!cbs)
        return ENOMEM;
    if (f->ncb == 1)
        cbs[0] = f->cb0;
    f->cbs = cbs;       /* over cb0, copied: ncb goes to 2 at once */
    return 0;
}

EVEXEC_API int evexec_future_on_done(struct evexec_future *f, evexec_done_cb cb,
                                     void *arg)
{
    if (!f || !cb)
        return EINVAL;
    if (f->ncb == 0 && f->state == EVEXEC__PENDING) {     /* the common case */
        f->cb0.fn = cb;
        f->cb0.arg = arg;
        f->ncb = 1;
        return 0;
    }
    if (f->ncb != 0 && (f->ncb == EVEXEC__CB_MAX ||
                        (f->ncb == cb_room(f->ncb) && grow_callbacks(f) != 0)))
        return ENOMEM;
    struct evexec__cb *slot = f->ncb == 0 ? &f->cb0 : &f->cbs[f->ncb];
    slot->fn = cb;
    slot->arg = arg;
    f->ncb++;
    if (f->state != EVEXEC__PENDING)
        schedule(f);
    return 0;
}

EVEXEC_API struct evexec_future *evexec_future_ref(struct evexec_future *f)
{
    if (f)
        f->refs++;
    return f;
}

EVEXEC_API void evexec_future_unref(struct evexec_future *f)
{
    if (!f || evexec__closing(f->ex))
        return;
    if (--f->refs > 0)
        return;
    evexec__future_unref_last(f);
}

void evexec__future_unref_last(struct evexec_future *f)
{
    /* Pending with callbacks to run: kept until it ends (at the latest in
     * evexec_free); the ready queue's reference frees it after them. */
    if (f->state == EVEXEC__PENDING && f->cbnext < f->ncb)
        return;
    evexec__future_release(f);
    evexec__future_free_mem(f);
}

EVEXEC_API struct evexec *evexec_future_get_evexec(const struct evexec_future *f)
{
    return f ? f->ex : NULL;
}

/* ---- timers that never fire early ---------------------------------------- */

/* The longest timeout handed to libevent at once: it adds a timeout to
 * its clock with no overflow check.  A longer one re-arms for the rest
 * when this much has passed (evexec__timer_early). */
#define EVEXEC__TIMER_SLICE_SEC ((time_t)86400 * 365)

/* now + tv, saturating. */
static void due_after(struct timespec *due, const struct timeval *tv)
{
    clock_gettime(CLOCK_MONOTONIC, due);
    evexec__timespec_add(due, tv->tv_sec, (long)tv->tv_usec * 1000L);
}

/* Add the timer for tv, at most one slice of it. */
static int add_clamped(struct event *timer, const struct timeval *tv)
{
    struct timeval t = *tv;
    if (t.tv_sec >= EVEXEC__TIMER_SLICE_SEC) {
        t.tv_sec = EVEXEC__TIMER_SLICE_SEC;
        t.tv_usec = 0;
    }
    return event_add(timer, &t);
}

int evexec__timer_arm(struct event *timer, struct timespec *due,
                      const struct timeval *tv)
{
    due_after(due, tv);
    return add_clamped(timer, tv);
}

int evexec__timer_early(struct event *timer, const struct timespec *due)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec > due->tv_sec ||
        (now.tv_sec == due->tv_sec && now.tv_nsec >= due->tv_nsec))
        return 0;
    /* What is left, rounded up to a microsecond. */
    time_t sec = due->tv_sec - now.tv_sec;
    long nsec = due->tv_nsec - now.tv_nsec;
    if (nsec < 0) {
        sec--;
        nsec += 1000000000L;
    }
    struct timeval left = { sec, (suseconds_t)((nsec + 999) / 1000) };
    if (left.tv_usec >= 1000000) {
        left.tv_sec++;
        left.tv_usec -= 1000000;
    }
    return add_clamped(timer, &left) == 0;
}

/* ---- sleep: a future on a libevent timer -------------------------------- */

struct evexec__sleep {
    struct evexec_future fut;
    struct event *timer;
    struct timespec due;
};

static void sleep_fired(evutil_socket_t fd, short what, void *arg)
{
    struct evexec__sleep *s = arg;
    (void)fd;
    (void)what;
    if (evexec__timer_early(s->timer, &s->due))
        return;
    evexec__future_finish(&s->fut, 0, NULL, NULL);
}

static int sleep_cancel(struct evexec_future *f)
{
    struct evexec__sleep *s = (struct evexec__sleep *)f;
    event_del(s->timer);
    f->cancel_taken = 1;
    return evexec__future_finish(f, ECANCELED, NULL, NULL);
}

static void sleep_release(struct evexec_future *f)
{
    struct evexec__sleep *s = (struct evexec__sleep *)f;
    if (s->timer)
        event_free(s->timer);
    s->timer = NULL;
}

static const struct evexec__future_ops sleep_ops = {
    .cancel = sleep_cancel,
    .release = sleep_release,
    .name = "sleep",
};

EVEXEC_API struct evexec_future *evexec_sleep(struct evexec *ex, const struct timeval *delay)
{
    if (!ex || !delay || delay->tv_sec < 0 || delay->tv_usec < 0 ||
        delay->tv_usec >= 1000000) {
        errno = EINVAL;
        return NULL;
    }
    struct evexec__sleep *s = (struct evexec__sleep *)evexec__future_alloc(
        ex, sizeof *s, EVEXEC__F_OTHER, &sleep_ops);
    if (!s)
        return NULL;
    s->timer = evtimer_new(ex->base, sleep_fired, s);
    if (!s->timer || evexec__timer_arm(s->timer, &s->due, delay) != 0) {
        s->fut.refs = 0;
        evexec__future_release(&s->fut);
        evexec__future_free_mem(&s->fut);
        errno = ENOMEM;
        return NULL;
    }
    return &s->fut;
}

/* ---- running the loop ------------------------------------------------------ */

static int settled(const struct evexec_future *f)
{
    return f->state != EVEXEC__PENDING && f->cbnext == f->ncb;
}

EVEXEC_API int evexec_run_until_complete(struct evexec *ex, struct evexec_future *f)
{
    if (!ex || !f || f->ex != ex)
        return EINVAL;
    if (evexec__inherited(ex))
        return ESHUTDOWN;
    if (!evexec__on_loop(ex))
        return EINVAL;
    if (ex->depth > 0 || evexec__closing(ex))
        return EDEADLK;

    int rc = evexec__keepalive(ex, 1), first = 1;
    if (rc)
        return rc;
    evexec_future_ref(f);
    evexec__enter(ex);
    /* evexec_free() from a callback ends f; the memory stays until
     * evexec__leave() below. */
    while (!settled(f) && !evexec__closing(ex)) {
        /* f may wait for a job of an open batch, also one submitted
         * meanwhile from an event that is not ours (no pass of our
         * callbacks hands that over). */
        evexec__flush_batch(ex);
        if (settled(f) || evexec__closing(ex))
            break;
        int r = event_base_loop(ex->base, EVLOOP_ONCE);
        if (r < 0) {
            rc = first ? EDEADLK : EIO;
            break;
        }
        if (r > 0) {            /* nothing to wait for: cannot happen */
            rc = EIO;
            break;
        }
        first = 0;
    }
    if (rc == 0)
        rc = settled(f) ? f->error : ECANCELED;
    f->observed = 1;
    evexec_future_unref(f);
    evexec__keepalive(ex, 0);
    evexec__leave(ex);
    return rc;
}
