/*
 * bridge.c -- struct evexec: one libevent loop's end of the pool.
 *
 * Design.  Workers hand finished jobs back through the evexec's core: a
 * lock-free LIFO list (`head`, pushed with compare-and-swap) and a wake-up
 * fd (an eventfd, or a pipe).  A pusher writes the fd only when it finds
 * the list empty, so a burst of completions costs one write.  The loop's
 * read event drains the fd first, then detaches the whole list with one
 * exchange, reverses it into completion order and ends each future; then it
 * runs every due done callback (future.c) with no lock held.  Reading the
 * fd before detaching means no wake-up is lost: a push that lands after the
 * exchange finds the list empty and writes again.
 *
 * Keep-alive.  By default the read event stays added for the evexec's
 * whole life, so a call from another thread is always seen.  With
 * keep-alive off (evexec_set_keepalive) it is added only while jobs or
 * loop-thread calls are in flight (or while evexec_run_until_complete
 * runs), so event_base_dispatch() returns when there is nothing left to
 * do; it is then deleted at the end of a drain, after callbacks had their
 * chance to submit more work, so a steady stream of jobs never adds and
 * deletes it per job.  Adding it is the one libevent call that can fail
 * (ENOMEM): it is made before anything is handed over, so a failure is
 * reported by the call that needed it and no completion goes unwatched.
 *
 * Drain budget (evexec_set_drain_budget).  Off by default: one pass
 * delivers everything.  With a budget a pass stops after so many
 * completions or microseconds; what is detached but not delivered stays
 * in ex->draining (a long list is also walked into completion order over
 * several passes: rev_todo, rev_fifo), and more_ev, a zero timer, goes on
 * with it on the next loop iteration, after libevent has polled the fds.
 * A wake-up meanwhile only runs what is due, so the order holds.
 *
 * Watermarks (evexec_set_watermarks).  ex->njobs counts jobs submitted
 * and not yet delivered; crossing a watermark costs one compare per job
 * and is only noted (wm_unreported); the callback runs from the next pass
 * of our callbacks (ready_ev), never inside the call that crossed.
 *
 * Teardown (evexec_free).  The loop takes its queued jobs off the pool, then
 * swaps the list head for CLOSED.  From then on a pusher that finds CLOSED
 * disposes of its node itself: it releases the job's result on the worker
 * (a call_soon_threadsafe is refused with ESHUTDOWN instead).
 * The job's memory is shared with its future, so it is freed by whichever
 * of the loop (done with the future) and the worker (done with the job)
 * comes second: each sets EVEXEC__JOB_ORPHAN in job->marks, and the one
 * that finds it set
 * frees.  The core itself is reference counted: the evexec holds one
 * reference, every push holds one while it touches the core, and each job
 * still running at teardown holds one.  Teardown does not know how many
 * jobs are still running until after the swap, so it first adds a large
 * bias that keeps the count positive, then settles.
 *
 * Threads: everything here runs on the loop thread except
 * evexec__core_push() and evexec_call_soon_threadsafe().
 */
#define _GNU_SOURCE
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "evexec-internal.h"

#define EVEXEC__CORE_BIAS (LONG_MAX / 4)

struct evexec__core {
    _Atomic(struct evexec__node *) head;   /* completions, newest first */
    atomic_long refs;
    atomic_int spinning;                   /* the loop watches head: no write */
    struct evexec__wakefd chan;
    struct evexec__pool_owner powner;      /* our queues in the pool: the
                                              pool's, under its lock */
};

struct evexec__call {
    struct evexec__node node;
    void (*fn)(void *);
    void *arg;
    int counted;        /* made on the loop thread: counted in inflight */
};

static struct evexec__node closed_sentinel;
#define CLOSED (&closed_sentinel)

static void core_free(struct evexec__core *core)
{
    evexec__wakefd_close(&core->chan);
    free(core);
}

static void core_unref(struct evexec__core *core, long n)
{
    if (atomic_fetch_sub_explicit(&core->refs, n, memory_order_acq_rel) == n)
        core_free(core);
}

/* A job a worker took has had its function called.  The caller ends the
 * job: no worker or pool lock holds it any more. */
static int job_fn_called(const struct evexec_job *job)
{
    return job->qstate == EVEXEC__Q_RUNNING;
}

/* A job that never ran gives its argument back here; one that ran did so
 * on the worker.  Whoever ends the job calls this once. */
static void release_unrun_arg(struct evexec_job *job)
{
    if (!job_fn_called(job) && job->arg_free)
        job->arg_free(job->arg);
}

/* The future of a job, whose result and free_fn hold the job's result
 * until the job is delivered. */
static struct evexec_future *fut_of(struct evexec_job *job)
{
    return &EVEXEC__CONTAINER_OF(job, struct evexec__jobfut, job)->fut;
}

/* Release the result a job set (a job that failed or was cancelled). */
static void release_job_result(struct evexec_job *job)
{
    struct evexec_future *f = fut_of(job);
    if (f->result && f->free_fn)
        f->free_fn(f->result);
    f->result = NULL;
    f->free_fn = NULL;
}

/* Teardown's handshake: set EVEXEC__JOB_ORPHAN in job->marks; 1 if the
 * other side (loop or worker) had set it first, and so frees the block. */
static int mark_orphan(struct evexec_job *job)
{
    return (atomic_fetch_or_explicit(&job->marks, EVEXEC__JOB_ORPHAN,
                                     memory_order_acq_rel) & EVEXEC__JOB_ORPHAN) != 0;
}

/* Job blocks live in slabs (see jobfut_alloc). */
struct evexec__slab;
static struct evexec__slab *slab_of(struct evexec__jobfut *jf);
static void slab_put(struct evexec__slab *s);
static inline void recycle(struct evexec *ex, struct evexec__jobfut *jf);

/* A job that came back after teardown: nobody will read it. */
static void dispose_orphan(struct evexec__core *core, struct evexec__node *node)
{
    struct evexec_job *job = EVEXEC__CONTAINER_OF(node, struct evexec_job, node);
    release_job_result(job);
    release_unrun_arg(job);
    if (mark_orphan(job))
        slab_put(slab_of(EVEXEC__CONTAINER_OF(job, struct evexec__jobfut, job)));
    /* The push's reference and the one teardown counted for this job. */
    core_unref(core, 2);
}

int evexec__core_push(struct evexec__core *core, struct evexec__node *node)
{
    atomic_fetch_add_explicit(&core->refs, 1, memory_order_relaxed);
    struct evexec__node *old = atomic_load_explicit(&core->head, memory_order_relaxed);
    do {
        if (old == CLOSED) {
            if (node->kind == EVEXEC__NODE_JOB)
                dispose_orphan(core, node);
            else
                core_unref(core, 1);     /* a call: the caller keeps it */
            return ESHUTDOWN;
        }
        node->next = old;
    } while (!atomic_compare_exchange_weak_explicit(&core->head, &old, node,
                                                    memory_order_seq_cst,
                                                    memory_order_relaxed));
    /* A spinning loop sees the push itself.  It clears `spinning` before
     * its last look at head, and we look at `spinning` after our push:
     * with both in one total order, one of us always sees the other. */
    if (old == NULL && !atomic_load_explicit(&core->spinning, memory_order_seq_cst))
        evexec__wakefd_signal(&core->chan);
    core_unref(core, 1);
    return 0;
}

/* ---- keeping the loop alive --------------------------------------------- */

/* The wake-up event is added while the evexec keeps its loop (the
 * default: always), while jobs or loop-thread calls are in flight, and
 * while run_until_complete runs.  Adding can fail (libevent out of
 * memory): callers report ENOMEM before they hand anything over, so no
 * completion is ever left unwatched. */
static int ensure_wake(struct evexec *ex)
{
    if (!ex->wake_added) {
        if (event_add(ex->wake_ev, NULL) != 0)
            return ENOMEM;
        ex->wake_added = 1;
    }
    return 0;
}

/* Without keep-alive, stop watching the channel once nothing of ours is
 * in flight and nothing waits on the completion list (calls made from
 * threads that were not the loop thread are not counted in inflight). */
void evexec__maybe_idle(struct evexec *ex)
{
    if (ex->wake_added && !ex->keep_loop && ex->inflight == 0 && ex->holds == 0 &&
        !evexec__closing(ex) &&
        atomic_load_explicit(&ex->core->head, memory_order_acquire) == NULL) {
        event_del(ex->wake_ev);
        ex->wake_added = 0;
    }
}

void evexec__enter(struct evexec *ex)
{
    ex->depth++;
}

static void free_memory(struct evexec *ex);

int evexec__leave(struct evexec *ex)
{
    if (--ex->depth == 0 && ex->life == EVEXEC__CLOSED) {
        free_memory(ex);
        return 1;
    }
    return 0;
}

/* ---- batched submission ------------------------------------------------ */

/* Jobs submitted inside our own callbacks (which run from the loop in a
 * burst: one drain delivers many completions, and their callbacks submit
 * more) are kept in ex->batch and handed to the pool with one lock when the
 * callback pass ends.  The evexec holding a batch on this thread is noted
 * so that a shutdown or stats call on the same thread sees those jobs. */
#if defined(__GNUC__)
/* initial-exec: a plain %fs-relative load instead of a __tls_get_addr
 * call per job; fine for a library linked at start-up, and one pointer
 * is well within the static TLS reserve left for dlopen. */
static _Thread_local struct evexec *batching __attribute__((tls_model("initial-exec")));
#else
static _Thread_local struct evexec *batching;
#endif

static void flush_thread_batch(void);

/* A number per thread, never reused: a thread-local's address would be,
 * by a thread made after the one that had it exited. */
#if defined(__GNUC__)
static _Thread_local uintptr_t thread_id __attribute__((tls_model("initial-exec")));
#else
static _Thread_local uintptr_t thread_id;
#endif
static atomic_uintptr_t last_thread_id;

uintptr_t evexec__self(void)
{
    uintptr_t id = thread_id;
    if (id == 0)
        thread_id = id = atomic_fetch_add_explicit(&last_thread_id, 1,
                                                   memory_order_relaxed) + 1;
    return id;
}

static inline void batch_add(struct evexec *ex, struct evexec_job *job)
{
    if (batching && batching != ex)
        flush_thread_batch();
    evexec__jobq_push(&ex->batch, job);
    batching = ex;
}

static void end_unsent(struct evexec *ex, struct evexec_job *job, int error);

static void flush_batch(struct evexec *ex)
{
    struct evexec_job *head = evexec__jobq_take_all(&ex->batch), *job, *next;
    if (!head)
        return;
    if (batching == ex)
        batching = NULL;
    for (job = head; job; job = job->qnext)
        EVEXEC__CONTAINER_OF(job, struct evexec__jobfut, job)->fut.batched = 0;
    int rc = evexec__pool_submit_batch(ex->pool, head);
    if (rc == 0)
        return;
    /* Shut down in between: these never reached the pool. */
    for (job = head; job; job = next) {
        next = job->qnext;
        end_unsent(ex, job, rc);
    }
    evexec__maybe_idle(ex);
}

static void flush_thread_batch(void)
{
    if (batching)
        flush_batch(batching);
}

/* ---- delivering completions --------------------------------------------- */

/* Inlined into the drain's loop: once per job. */
static inline __attribute__((always_inline)) void deliver_job(struct evexec *ex,
                                                              struct evexec_job *job)
{
    struct evexec__jobfut *jf = EVEXEC__CONTAINER_OF(job, struct evexec__jobfut, job);
    struct evexec_future *f = &jf->fut;

    f->outstanding = 0;
    ex->inflight--;
    evexec__jobs_down(ex, f, job->lane);
    release_unrun_arg(job);
    if (f->cancel_taken || job->error != 0 || evexec__closing(ex)) {
        if (f->cancel_taken || (!job_fn_called(job) && job->error == ECANCELED)) {
            release_job_result(job);
            evexec__future_finish(f, ECANCELED, NULL, NULL);
        } else if (job->error != 0) {
            release_job_result(job);
            evexec__future_finish(f, job->error, NULL, NULL);
        } else {
            evexec__future_finish(f, 0, f->result, f->free_fn);
        }
    } else {
        /* The common case, from the drain: callbacks run here, in
         * completion order, without a trip through the ready queue
         * (evexec__future_deliver, the result and free_fn in place; the
         * one callback a job mostly has is run from here). */
        f->state = EVEXEC__DONE;
        f->error = 0;
        if (!f->in_ready && f->cbnext < f->ncb) {
            if (f->ncb == 1) {
                f->cbnext = 1;
                f->cb0.fn(f, f->cb0.arg);
            }
            if (f->cbnext < f->ncb)     /* more, or added by the callback */
                evexec__future_run_callbacks(f);
        }
    }
    /* The in-flight reference (evexec_future_unref).  Mostly the last one,
     * of a job that ended well with no result and at most one callback
     * (run): then nothing is left to release and the block goes back to
     * the free list here. */
    if (evexec__closing(ex) || --f->refs > 0)
        return;
    if (f->error == 0 && !f->result && f->ncb <= 1 && f->state != EVEXEC__PENDING) {
        struct evexec_future *no_tail = NULL;   /* the list keeps no tail */
        EVEXEC__DLIST_UNLINK(ex->all, no_tail, f, all_prev, all_next);
        (void)no_tail;
        recycle(ex, jf);
        return;
    }
    evexec__future_unref_last(f);
}

/* End a job that the pool never saw (or gave back unrun). */
static void end_unsent(struct evexec *ex, struct evexec_job *job, int error)
{
    struct evexec__jobfut *jf = EVEXEC__CONTAINER_OF(job, struct evexec__jobfut, job);
    release_unrun_arg(job);
    jf->fut.outstanding = 0;
    jf->fut.batched = 0;
    ex->inflight--;
    evexec__jobs_down(ex, &jf->fut, job->lane);
    evexec__future_finish(&jf->fut, error, NULL, NULL);
    evexec_future_unref(&jf->fut);          /* the in-flight reference */
}

static inline __attribute__((always_inline)) void deliver(struct evexec *ex,
                                                          struct evexec__node *node)
{
    if (node->kind == EVEXEC__NODE_JOB) {
        deliver_job(ex, EVEXEC__CONTAINER_OF(node, struct evexec_job, node));
        return;
    }
    struct evexec__call *call = EVEXEC__CONTAINER_OF(node, struct evexec__call, node);
    if (call->counted)
        ex->inflight--;
    call->fn(call->arg);
    free(call);
}

/* Reverse up to `max` nodes of the detached list ex->rev_todo (newest
 * first) onto ex->rev_fifo, which then holds the walked part oldest
 * first; returns how many.  A budgeted drain walks a long list over
 * several passes: one walk over a million cold nodes alone takes tens
 * of milliseconds. */
static size_t walk(struct evexec *ex, size_t max)
{
    struct evexec__node *list = ex->rev_todo, *fifo = ex->rev_fifo;
    size_t n = 0;
    while (list && n < max) {
        struct evexec__node *next = list->next;
        list->next = fifo;
        fifo = list;
        list = next;
        n++;
    }
    ex->rev_todo = list;
    ex->rev_fifo = fifo;
    return n;
}

/* Queue the walked list behind what ex->draining still holds: what is
 * detached but not yet delivered waits there, so that a teardown started
 * by one of the deliveries, or the next pass of a budgeted drain, ends
 * the rest. */
static void queue_walked(struct evexec *ex)
{
    struct evexec__node *fifo = ex->rev_fifo;
    ex->rev_fifo = NULL;
    if (ex->draining) {          /* a teardown inside a drain: keep order */
        struct evexec__node *t = ex->draining;
        while (t->next)
            t = t->next;
        t->next = fifo;
    } else {
        ex->draining = fifo;
    }
}

/* Detach the list (given the value to leave behind) and queue all of it,
 * oldest first, after a walk a budgeted drain left unfinished. */
static void detach(struct evexec *ex, struct evexec__node *leave)
{
    if (ex->rev_todo || ex->rev_fifo) {
        walk(ex, SIZE_MAX);
        queue_walked(ex);
    }
    ex->rev_todo = atomic_exchange_explicit(&ex->core->head, leave, memory_order_acquire);
    walk(ex, SIZE_MAX);
    queue_walked(ex);
}

static void deliver_all(struct evexec *ex, struct evexec__node *leave)
{
    detach(ex, leave);
    struct evexec__node *n;
    while ((n = ex->draining) != NULL) {
        ex->draining = n->next;
        deliver(ex, n);
    }
}

/* The clock is read once every this many deliveries (drain_usec). */
#define EVEXEC__DRAIN_CLOCK_EVERY 16

static int budget_spent(struct evexec *ex)
{
    unsigned used = ex->drain_used;
    if (ex->drain_max && used >= ex->drain_max)
        return 1;
    if (ex->drain_usec && used && used % EVEXEC__DRAIN_CLOCK_EVERY == 0) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long us = (long long)(now.tv_sec - ex->drain_start.tv_sec) * 1000000 +
                       (now.tv_nsec - ex->drain_start.tv_nsec) / 1000;
        return us >= (long long)ex->drain_usec;
    }
    return 0;
}

/* Deliver from ex->draining until it is empty or the budget is spent;
 * 1 if something is left. */
static int deliver_some(struct evexec *ex)
{
    struct evexec__node *n;
    while ((n = ex->draining) != NULL) {
        if (budget_spent(ex))
            return 1;
        ex->draining = n->next;
        ex->drain_used++;
        deliver(ex, n);
    }
    return 0;
}

/* Walking the list costs this many nodes per callback of the budget;
 * with a time budget only, a pass walks at most a chunk. */
#define EVEXEC__WALK_PER_CALLBACK 16
#define EVEXEC__WALK_CHUNK 4096

/* Walk (part of) the list, detached first unless a walk is under way;
 * 1 if it is all queued in ex->draining. */
static int walk_budgeted(struct evexec *ex)
{
    if (!ex->rev_todo && !ex->rev_fifo)
        ex->rev_todo = atomic_exchange_explicit(&ex->core->head, NULL,
                                                memory_order_acquire);
    size_t max = EVEXEC__WALK_CHUNK;
    if (ex->drain_max)
        max = ex->drain_max > ex->drain_used
                  ? (size_t)(ex->drain_max - ex->drain_used) * EVEXEC__WALK_PER_CALLBACK
                  : 0;
    size_t n = walk(ex, max);
    ex->drain_used += (unsigned)(n / EVEXEC__WALK_PER_CALLBACK);
    if (ex->rev_todo)
        return 0;
    queue_walked(ex);
    return 1;
}

/* A budgeted drain: what an earlier pass left first, then the list.
 * When the budget is spent, the rest waits for more_ev, a zero timer:
 * libevent runs timers after it has polled the fds, so the loop's sockets
 * (and every event already active) run before the drain goes on. */
static void deliver_budgeted(struct evexec *ex)
{
    static const struct timeval zero = { 0, 0 };
    int left = deliver_some(ex);
    /* With budget to spare, go on until the list is seen empty: a pass
     * that finished an earlier walk has not looked at what was pushed
     * since, and that push's wake-up may have been read by a pass that
     * waited for this one.  A pass ends with the budget spent (more_ev
     * goes on) or with the list seen empty after the wake-up was read. */
    while (!left && !evexec__closing(ex)) {
        if (!ex->rev_todo && !ex->rev_fifo &&
            atomic_load_explicit(&ex->core->head, memory_order_acquire) == NULL)
            return;
        left = walk_budgeted(ex) ? deliver_some(ex) : 1;
    }
    if (!left || evexec__closing(ex))
        return;
    if (event_add(ex->more_ev, &zero) == 0) {
        ex->drain_more = 1;
        return;
    }
    /* libevent out of memory: finish now rather than lose the rest. */
    deliver_all(ex, NULL);
}

/* One pass of our callbacks from the loop: deliver completions (when woken
 * by the channel), run what is due, hand over the jobs submitted meanwhile
 * in one batch, and let the loop go idle if nothing is left in flight. */
static void wm_tell(struct evexec *ex);
static void wm_off(struct evexec *ex);

static void deliver_and_run(struct evexec *ex, int deliver)
{
    ex->in_pass++;
    ex->ready_active = 1;
    if (deliver) {
        if (ex->drain_limited)
            deliver_budgeted(ex);
        else
            deliver_all(ex, NULL);
    }
    for (;;) {
        evexec__run_ready(ex);
        if (!ex->wm_unreported)
            break;
        wm_tell(ex);
    }
    ex->ready_active = 0;
    ex->in_pass--;
    flush_batch(ex);
}

static int head_nonempty(const void *arg)
{
    const struct evexec__core *core = arg;
    return atomic_load_explicit(&core->head, memory_order_relaxed) != NULL;
}

/* With jobs in flight, watch the completion list a little before going
 * back to the loop (pool spin_us; by default only while that pays), so a
 * quick reply costs neither a write nor an epoll wake-up.  At most 64
 * rounds, so that the loop's other events are not starved. */
static void spin_for_completions(struct evexec *ex)
{
    struct evexec__core *core = ex->core;
    for (int round = 0; round < 64 && ex->inflight > 0 && !evexec__closing(ex) &&
                        !ex->drain_more; round++) {
        if (!evexec__spin_begin(&ex->spin, ex->inflight))
            break;
        atomic_store_explicit(&core->spinning, 1, memory_order_seq_cst);
        int got = evexec__spin_run(&ex->spin, head_nonempty, core);
        atomic_store_explicit(&core->spinning, 0, memory_order_seq_cst);
        if (!got && atomic_load_explicit(&core->head, memory_order_seq_cst) == NULL)
            break;
        deliver_and_run(ex, 1);
    }
}

enum pass_kind {
    PASS_READY,     /* due callbacks only */
    PASS_WAKE,      /* the channel is readable */
    PASS_MORE,      /* a budgeted drain goes on (more_ev) */
};

static void callback_pass(struct evexec *ex, enum pass_kind kind)
{
    /* The thread running the base is the loop thread (evexec__on_loop). */
    uintptr_t me = evexec__self();
    if (atomic_load_explicit(&ex->loop_tid, memory_order_relaxed) != me)
        atomic_store_explicit(&ex->loop_tid, me, memory_order_relaxed);
    evexec__enter(ex);
    if (kind == PASS_WAKE)
        evexec__wakefd_drain(&ex->core->chan);
    if (kind == PASS_MORE)
        ex->drain_more = 0;
    if (ex->drain_limited) {
        ex->drain_used = 0;
        if (ex->drain_usec)
            clock_gettime(CLOCK_MONOTONIC, &ex->drain_start);
    }
    /* While a budgeted drain waits for more_ev, a wake-up only runs what
     * is due: more_ev goes on with the completions, in order. */
    deliver_and_run(ex, kind == PASS_MORE || (kind == PASS_WAKE && !ex->drain_more));
    if (ex->spin.us && !evexec__closing(ex))
        spin_for_completions(ex);
    evexec__maybe_idle(ex);
    evexec__leave(ex);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    callback_pass(arg, PASS_WAKE);
}

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    callback_pass(arg, PASS_READY);
}

static void on_more(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    callback_pass(arg, PASS_MORE);
}

void evexec__schedule_ready(struct evexec *ex)
{
    if (!ex->ready_active) {
        ex->ready_active = 1;
        event_active(ex->ready_ev, EV_TIMEOUT, 0);
    }
}

/* ---- making and freeing an evexec ---------------------------------------- */

EVEXEC_API struct evexec *evexec_new(struct event_base *base, struct evexec_pool *pool)
{
    if (!base) {
        errno = EINVAL;
        return NULL;
    }
    if (!pool && !(pool = evexec_pool_default()))
        return NULL;
    if (evexec__pool_is_shutdown(pool)) {
        errno = ESHUTDOWN;
        return NULL;
    }
    unsigned gen = evexec__fork_init();
    struct evexec *ex = evexec__calloc(1, sizeof *ex);
    struct evexec__core *core = evexec__calloc(1, sizeof *core);
    int err = ENOMEM;
    if (!ex || !core)
        goto fail;
    const char *force = getenv("EVEXEC_WAKEUP");
    err = evexec__wakefd_open(&core->chan, force && strcmp(force, "pipe") == 0);
    if (err) {
        free(core);
        core = NULL;
        goto fail;
    }
    atomic_init(&core->head, NULL);
    atomic_init(&core->refs, 1);
    atomic_init(&core->spinning, 0);
    ex->base = base;
    ex->pool = pool;
    ex->core = core;
    atomic_init(&ex->loop_tid, 0);      /* bound by first use */
    ex->fork_gen = gen;
    ex->keep_loop = 1;
    wm_off(ex);                         /* watermarks off */
    ex->pool_down = evexec__pool_shutdown_flag(pool);
    ex->pool_bounded = evexec__pool_lane_direct(pool, EVEXEC_LANE_DEFAULT);
    /* A bounded queue must answer EAGAIN at the call: no batching then. */
    evexec__spinner_init(&ex->spin, pool);
    ex->wake_ev = event_new(base, core->chan.rfd, EV_READ | EV_PERSIST, on_wake, ex);
    ex->ready_ev = event_new(base, -1, 0, on_ready, ex);
    err = ENOMEM;
    if (!ex->wake_ev || !ex->ready_ev || ensure_wake(ex) != 0)
        goto fail;
    return ex;

fail:
    if (ex) {
        if (ex->wake_ev)
            event_free(ex->wake_ev);
        if (ex->ready_ev)
            event_free(ex->ready_ev);
        free(ex);
    }
    if (core)
        core_free(core);
    errno = err;
    return NULL;
}

/* Ask a running job to stop, and wake it if it waits for that. */
static void set_cancelled(struct evexec_job *job)
{
    atomic_fetch_or_explicit(&job->marks, EVEXEC__JOB_CANCELLED, memory_order_release);
    evexec__job_cancel_notify(job);
}

/* A job's future whose job has not come back from the pool: queued or
 * running (or, in an inherited evexec, never coming back). */
static int job_outstanding(const struct evexec_future *f)
{
    return f->kind == EVEXEC__F_JOB && f->outstanding;
}

static struct evexec_job *job_of(struct evexec_future *f)
{
    return &EVEXEC__CONTAINER_OF(f, struct evexec__jobfut, fut)->job;
}

/*
 * Teardown, in steps.  All of it runs inside evexec_free(), also when that
 * is called from one of the evexec's own callbacks: afterwards nothing
 * touches the pool or the base, so the caller may free both at once.  Only
 * the memory of the evexec and its futures waits, when callbacks are on
 * the stack, until the outermost one returns (evexec__leave), because
 * those frames still read it.
 *
 * An evexec inherited across fork() has no workers and shares its channel
 * and its pool's locks with the parent: its steps never touch the pool or
 * write the channel, and its running jobs, which will never come back,
 * end ECANCELED with their memory freed here.
 */

/* 1. Jobs not yet handed over, and queued jobs, never run. */
static void td_end_unsent(struct evexec *ex)
{
    struct evexec_job *bj = evexec__jobq_take_all(&ex->batch), *bnext;
    if (batching == ex)
        batching = NULL;
    for (; bj; bj = bnext) {
        bnext = bj->qnext;
        end_unsent(ex, bj, ECANCELED);
    }
    if (evexec__inherited(ex)) {
        /* The pool is the parent's: read its queue state, never lock it. */
        for (struct evexec_future *f = ex->all; f; f = f->all_next)
            if (job_outstanding(f) && job_of(f)->qstate == EVEXEC__Q_QUEUED) {
                job_of(f)->qstate = EVEXEC__Q_REMOVED;
                end_unsent(ex, job_of(f), ECANCELED);
            }
        return;
    }
    struct evexec_job *j = evexec__pool_unqueue_owner(ex->pool, &ex->core->powner), *jn;
    for (; j; j = jn) {
        jn = j->qnext;
        end_unsent(ex, j, ECANCELED);
    }
}

/* 2. Running jobs should stop early.  After step 1, so that a worker
 * that stops early cannot take one of our queued jobs next. */
static void td_cancel_running(struct evexec *ex)
{
    if (evexec__inherited(ex))
        return;
    for (struct evexec_future *f = ex->all; f; f = f->all_next)
        if (job_outstanding(f))
            set_cancelled(job_of(f));
}

/* 3. Close the completion list; what was on it, and what a drain on the
 * stack had not delivered yet, ends with its real outcome.  Returns how
 * many jobs are still running: each will push once more, into CLOSED. */
static long td_close_completions(struct evexec *ex)
{
    atomic_fetch_add_explicit(&ex->core->refs, EVEXEC__CORE_BIAS, memory_order_relaxed);
    deliver_all(ex, CLOSED);
    return (long)ex->inflight;
}

/* 4. End everything still pending (ECANCELED), then run every callback
 * that is due, the ones already due before with their futures' real
 * outcomes; again until nothing is pending and no callback is due. */
static void td_end_pending(struct evexec *ex)
{
    int again = 1;
    while (again) {
        again = 0;
        for (struct evexec_future *f = ex->all; f; f = f->all_next) {
            if (f->state != EVEXEC__PENDING) {
                evexec__future_resume(f);
                continue;
            }
            again = 1;
            if (job_outstanding(f)) {
                f->cancel_taken = 1;
                evexec__future_finish(f, ECANCELED, NULL, NULL);
            } else if (evexec_future_cancel(f) != 0) {
                evexec__future_finish(f, ECANCELED, NULL, NULL);
            }
        }
        evexec__run_ready(ex);
    }
}

/* 5. Release what futures own (results, timers, inputs), the events and
 * the channel: the last step that touches the base or other threads. */
static void td_release(struct evexec *ex, long running)
{
    for (struct evexec_future *f = ex->all; f; f = f->all_next)
        evexec__future_release(f);
    event_free(ex->wake_ev);
    event_free(ex->ready_ev);
    if (ex->more_ev)
        event_free(ex->more_ev);
    ex->wake_ev = ex->ready_ev = ex->more_ev = NULL;
    ex->drain_more = 0;
    ex->wake_added = 0;
    /* Settle the bias; the evexec's own reference stays until its memory
     * goes, so that a call another thread makes while the teardown runs
     * finds the list closed (ESHUTDOWN), not freed memory. */
    if (!evexec__inherited(ex))
        core_unref(ex->core, EVEXEC__CORE_BIAS - running);
}

/* Job blocks.  A job and its future are one 136-byte block, carved from
 * 64 KiB slabs of fresh pages aligned to their size (the slab of a block
 * is its address rounded down): no malloc header or rounding per job,
 * and no malloc call per job in a burst.  Returned blocks go on one free
 * list (LIFO: the warmest first).  When no block is out any more (the end
 * of a burst), every slab but one goes back to the system.  Loop thread,
 * but for teardown: a slab that still holds blocks of running jobs then
 * goes with the last of them (`refs`: one for the evexec, one per such
 * block; see free_memory). */
#define EVEXEC__SLAB_SIZE ((size_t)65536)

struct evexec__slab {
    struct evexec__slab *next;          /* ex->slabs */
    unsigned fresh;                     /* blocks from here on never used */
    atomic_uint refs;
};

#define EVEXEC__SLAB_FIRST \
    ((sizeof(struct evexec__slab) + _Alignof(struct evexec__jobfut) - 1) / \
     _Alignof(struct evexec__jobfut) * _Alignof(struct evexec__jobfut))
#define EVEXEC__SLAB_BLOCKS \
    ((unsigned)((EVEXEC__SLAB_SIZE - EVEXEC__SLAB_FIRST) / sizeof(struct evexec__jobfut)))

static struct evexec__slab *slab_of(struct evexec__jobfut *jf)
{
    return (struct evexec__slab *)(void *)((uintptr_t)jf & ~(uintptr_t)(EVEXEC__SLAB_SIZE - 1));
}

/* Drop a reference; the last frees the slab.  Any thread. */
static void slab_put(struct evexec__slab *s)
{
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        evexec__unmap(s, EVEXEC__SLAB_SIZE);
}

/* Drop the evexec's reference to every slab after `s` in its list. */
static void slabs_put(struct evexec__slab *s)
{
    while (s) {
        struct evexec__slab *next = s->next;
        slab_put(s);
        s = next;
    }
}

/* A block for a job from a slab, or NULL (ENOMEM): the free list is
 * empty. */
static __attribute__((noinline)) struct evexec__jobfut *jobfut_alloc_slab(struct evexec *ex)
{
    struct evexec__slab *s = ex->slabs;
    if (!s || s->fresh == EVEXEC__SLAB_BLOCKS) {
        s = evexec__map_aligned(EVEXEC__SLAB_SIZE);
        if (!s)
            return NULL;
        s->fresh = 0;
        atomic_init(&s->refs, 1);
        s->next = ex->slabs;
        ex->slabs = s;
    }
    struct evexec__jobfut *jf =
        (struct evexec__jobfut *)(void *)((char *)s + EVEXEC__SLAB_FIRST) + s->fresh++;
    ex->live_jobs++;
    return jf;
}

/* A block for a job, or NULL (ENOMEM). */
static inline struct evexec__jobfut *jobfut_alloc(struct evexec *ex)
{
    struct evexec__jobfut *jf = ex->free_jobs;
    if (!jf)
        return jobfut_alloc_slab(ex);
    ex->free_jobs = (struct evexec__jobfut *)(void *)jf->job.node.next;
    ex->live_jobs++;
    return jf;
}

/* 6. Free the memory.  A block still held by a running job goes to
 * whichever of the loop and the worker lets go of it last. */
static void free_memory(struct evexec *ex)
{
    int inherited = evexec__inherited(ex);
    struct evexec_future *f, *next;
    /* A block a running job still holds keeps its slab: counted before
     * any is handed over, so that no worker drops a slab too soon. */
    for (f = ex->all; f; f = f->all_next)
        if (job_outstanding(f) && !inherited)
            atomic_fetch_add_explicit(
                &slab_of(EVEXEC__CONTAINER_OF(f, struct evexec__jobfut, fut))->refs, 1,
                memory_order_relaxed);
    /* Everything goes, so nothing is unlinked: a block handed to its
     * worker below may be gone before the next one is looked at. */
    for (f = ex->all, ex->all = NULL; f; f = next) {
        next = f->all_next;
        if (job_outstanding(f) && !inherited) {
            struct evexec__jobfut *jf = EVEXEC__CONTAINER_OF(f, struct evexec__jobfut, fut);
            if (mark_orphan(&jf->job))
                slab_put(slab_of(jf));
        } else if (f->kind != EVEXEC__F_JOB) {
            evexec__future_free_block(f);
        }                       /* a job's block goes with its slab */
    }
    slabs_put(ex->slabs);
    ex->slabs = NULL;
    if (inherited)
        core_free(ex->core);    /* the parent's workers push to their own */
    else
        core_unref(ex->core, 1);
#ifndef NDEBUG
    memset(ex, 0xf0, sizeof *ex);
#endif
    free(ex);
}

EVEXEC_API void evexec_free(struct evexec *ex)
{
    if (!ex || evexec__closing(ex))
        return;
    ex->life = EVEXEC__CLOSING;
    ex->ready_active = 1;      /* run_ready is called by hand below */
    evexec__obs_free(ex);      /* no watchdog call from here on */
    /* No watermark call from here on. */
    wm_off(ex);
    td_end_unsent(ex);
    td_cancel_running(ex);
    long running = td_close_completions(ex);
    td_end_pending(ex);
    evexec__dns_free(ex);       /* every lookup has ended by now */
    td_release(ex, running);
    if (ex->depth > 0)
        ex->life = EVEXEC__CLOSED;   /* evexec__leave frees it */
    else
        free_memory(ex);
}

EVEXEC_API struct event_base *evexec_get_base(const struct evexec *ex)
{
    return ex ? ex->base : NULL;
}

EVEXEC_API struct evexec_pool *evexec_get_pool(const struct evexec *ex)
{
    return ex ? ex->pool : NULL;
}

struct evexec__pool_owner *evexec__owner(struct evexec *ex)
{
    return &ex->core->powner;
}

/* ---- jobs ------------------------------------------------------------- */

/* The pool's client (evexec-internal.h): what running a job and handing
 * it back mean here. */
static void job_run(struct evexec_job *job)
{
    job->error = job->fn(job, job->arg);
    if (job->arg_free)
        job->arg_free(job->arg);
}

static void job_complete(struct evexec_job *job, int ran)
{
    if (!ran)
        job->error = ECANCELED;
    job->node.kind = EVEXEC__NODE_JOB;      /* the link was the queue's */
    evexec__core_push(EVEXEC__CONTAINER_OF(job->owner, struct evexec__core, powner),
                      &job->node);
}

const struct evexec__pool_client evexec__pool_client = {
    .run = job_run,
    .complete = job_complete,
    .flush = flush_thread_batch,
};

const struct evexec__future_ops evexec__job_ops = {
    .cancel = evexec__job_cancel,
    .release = NULL,
    .name = "job",
};

static inline void recycle(struct evexec *ex, struct evexec__jobfut *jf)
{
    jf->job.node.next = (struct evexec__node *)(void *)ex->free_jobs;
    ex->free_jobs = jf;
    if (--ex->live_jobs == 0 && ex->slabs->next) {
        /* Shrink after a burst: keep the newest slab, empty. */
        slabs_put(ex->slabs->next);
        ex->slabs->next = NULL;
        ex->slabs->fresh = 0;
        ex->free_jobs = NULL;
    }
}

void evexec__jobfut_recycle(struct evexec *ex, struct evexec__jobfut *jf)
{
    recycle(ex, jf);
}

/* ---- deadlines ----------------------------------------------------------- */

static struct evexec_future *run_job(struct evexec *ex, evexec_fn fn, void *arg,
                                     const struct evexec_run_opts *opts, int expirable);

/* evexec_run_opts() with a deadline: the caller gets a wrapper that ends
 * as the job's future ends, or ETIMEDOUT at the deadline (combine.c).
 * The wrapper is made first, so that nothing can fail once the job has
 * been handed over. */
static struct evexec_future *run_with_deadline(struct evexec *ex, evexec_fn fn,
                                               void *arg,
                                               const struct evexec_run_opts *opts)
{
    struct timeval deadline = opts->deadline;
    if (!ex || !fn || deadline.tv_sec < 0 || deadline.tv_usec < 0 ||
        deadline.tv_usec >= 1000000) {
        errno = EINVAL;
        return NULL;
    }
    struct evexec_future *w = evexec__deadline_new(ex);
    if (!w)
        return NULL;
    struct evexec_future *f = run_job(ex, fn, arg, opts, 1);
    if (!f) {
        int err = errno;
        evexec_future_unref(w);
        errno = err;
        return NULL;
    }
    evexec__deadline_start(w, f, &deadline);
    evexec_future_unref(f);         /* the wrapper holds it */
    return w;
}

void evexec__job_expire(struct evexec_future *f)
{
    evexec_future_cancel(f);
    /* Still pending: running, or back and not yet delivered. */
    if (f->kind == EVEXEC__F_JOB && f->state == EVEXEC__PENDING &&
        !evexec__inherited(f->ex)) {
        struct evexec__jobfut *jf = EVEXEC__CONTAINER_OF(f, struct evexec__jobfut, fut);
        evexec__pool_expire(f->ex->pool, &jf->job);
    }
}

EVEXEC_API struct evexec_future *evexec_run_opts(struct evexec *ex, evexec_fn fn,
                                                 void *arg,
                                                 const struct evexec_run_opts *user_opts)
{
    struct evexec_run_opts o;
    if (!user_opts)
        return run_job(ex, fn, arg, NULL, 0);
    if (evexec__read_struct(&o, sizeof o, user_opts, EVEXEC__RUN_OPTS_SIZE_1_0) != 0) {
        errno = EINVAL;
        return NULL;
    }
    if (o.deadline.tv_sec != 0 || o.deadline.tv_usec != 0)
        return run_with_deadline(ex, fn, arg, &o);
    return run_job(ex, fn, arg, &o, 0);
}

/* Make and hand over a job.  `expirable`: it has a deadline, so the pool
 * must watch job->expired for it (see evexec__pool_expire).  Inlined into
 * evexec_run with opts NULL, where the compiler drops what opts and
 * deadlines cost; run_job is the out-of-line copy for the rest. */
static inline __attribute__((always_inline)) struct evexec_future *
make_job(struct evexec *ex, evexec_fn fn, void *arg,
         const struct evexec_run_opts *opts, int expirable)
{
    int rc;
    int lane = opts ? opts->lane : EVEXEC_LANE_DEFAULT;
    /* Lanes 0 and 1 always exist, and are direct iff the pool is bounded:
     * only a lane made later is looked up in the pool. */
    if (!ex || !fn || ((unsigned)lane > EVEXEC_LANE_SLOW &&
                       !evexec__pool_lane_ok(ex->pool, lane))) {
        errno = EINVAL;
        return NULL;
    }
    rc = evexec__usable(ex);
    if (rc == 0)
        rc = ensure_wake(ex);   /* before anything is handed over */
    if (rc) {
        errno = rc;
        return NULL;
    }
    struct evexec__jobfut *jf = jobfut_alloc(ex);
    if (!jf) {
        evexec__maybe_idle(ex);
        errno = ENOMEM;
        return NULL;
    }
    struct evexec_future *f = &jf->fut;
    evexec__future_init(ex, f, EVEXEC__F_JOB);
    struct evexec_job *job = &jf->job;
    job->qprev = job->qnext = NULL;
    job->owner = &ex->core->powner;
    job->fn = fn;
    job->arg = arg;
    job->arg_free = opts ? opts->arg_free : NULL;
    job->error = 0;
    job->qstate = EVEXEC__Q_NEW;
    job->lane = (unsigned char)lane;
    atomic_init(&job->marks, 0);
    atomic_init(&job->expired, expirable ? EVEXEC__EXP_LIVE : EVEXEC__EXP_NEVER);
    f->outstanding = 1;
    f->refs++;                          /* the in-flight reference */

    int direct = lane > EVEXEC_LANE_SLOW ? evexec__pool_lane_direct(ex->pool, lane)
                                         : ex->pool_bounded;
    if ((ex->in_pass || ex->batch_open) && !direct) {
        /* evexec__pool_is_shutdown: evexec__usable() above found ex, and
         * so its pool, made in this fork generation. */
        rc = atomic_load_explicit(ex->pool_down, memory_order_acquire) ? ESHUTDOWN : 0;
        if (rc == 0) {
            f->batched = 1;
            batch_add(ex, job);
        }
    } else {
        rc = evexec__pool_submit(ex->pool, job);
    }
    if (rc) {
        f->outstanding = 0;
        f->refs = 0;
        evexec__future_release(f);
        evexec__future_free_mem(f);
        evexec__maybe_idle(ex);
        errno = rc;
        return NULL;
    }
    ex->inflight++;
    evexec__jobs_up(ex, f, lane);
    return f;
}

static struct evexec_future *run_job(struct evexec *ex, evexec_fn fn, void *arg,
                                     const struct evexec_run_opts *opts, int expirable)
{
    return make_job(ex, fn, arg, opts, expirable);
}

EVEXEC_API struct evexec_future *evexec_run(struct evexec *ex, evexec_fn fn, void *arg)
{
    return make_job(ex, fn, arg, NULL, 0);
}

EVEXEC_API int evexec_submit(struct evexec *ex, evexec_fn fn, void *arg,
                             evexec_done_cb done, void *done_arg)
{
    if (!done)
        return EINVAL;
    struct evexec_future *f = evexec_run(ex, fn, arg);
    if (!f)
        return errno;
    /* A fresh future keeps its first callback inline: this cannot fail.
     * Dropping our reference leaves the in-flight one, and a pending
     * future with a callback is kept until it has run. */
    evexec_future_on_done(f, done, done_arg);
    evexec_future_unref(f);
    return 0;
}

EVEXEC_API int evexec_batch_begin(struct evexec *ex)
{
    if (!ex)
        return EINVAL;
    int rc = evexec__usable(ex);
    if (rc)
        return rc;
    if (ex->batch_open == UINT_MAX)
        return EOVERFLOW;
    ex->batch_open++;
    return 0;
}

EVEXEC_API int evexec_batch_end(struct evexec *ex)
{
    if (!ex || evexec__inherited(ex) || !evexec__on_loop(ex) || ex->batch_open == 0)
        return EINVAL;
    if (--ex->batch_open == 0)
        flush_batch(ex);
    return 0;
}

void evexec__flush_batch(struct evexec *ex)
{
    flush_batch(ex);
}

int evexec__job_cancel(struct evexec_future *f)
{
    struct evexec__jobfut *jf = EVEXEC__CONTAINER_OF(f, struct evexec__jobfut, fut);
    struct evexec *ex = f->ex;

    f->cancel_taken = 1;
    if (f->batched) {
        evexec__jobq_unlink(&ex->batch, &jf->job);
        end_unsent(ex, &jf->job, ECANCELED);
        evexec__maybe_idle(ex);
    } else if (evexec__inherited(ex)) {
        /* Its pool is the parent's: the job never runs here. */
        end_unsent(ex, &jf->job, ECANCELED);
    } else if (evexec__pool_unqueue(ex->pool, &jf->job)) {
        end_unsent(ex, &jf->job, ECANCELED);
        evexec__maybe_idle(ex);
    } else {
        /* Running, or back but not yet delivered: delivery ends it. */
        set_cancelled(&jf->job);
    }
    return 0;
}

EVEXEC_API void evexec_job_set_result(struct evexec_job *job, void *result,
                                      void (*free_fn)(void *))
{
    if (!job)
        return;
    /* The future is pending and its result is ours until the job is back:
     * the loop neither reads nor writes it meanwhile (evexec_future_result
     * reads it only once the future is done with no error, which a job's
     * future is not before it is delivered). */
    struct evexec_future *f = fut_of(job);
    if (f->result && f->free_fn && f->result != result)
        f->free_fn(f->result);
    f->result = result;
    f->free_fn = free_fn;
}

EVEXEC_API int evexec_job_cancelled(const struct evexec_job *job)
{
    return job && ((atomic_load_explicit(&job->marks, memory_order_relaxed) &
                    EVEXEC__JOB_CANCELLED) != 0 ||
                   evexec__worker_cancelling());
}

/* ---- calls from any thread -------------------------------------------- */

EVEXEC_API int evexec_call_soon_threadsafe(struct evexec *ex, void (*fn)(void *),
                                           void *arg)
{
    if (!ex || !fn)
        return EINVAL;
    /* Inherited across fork: the channel is the parent's. */
    if (evexec__inherited(ex))
        return ESHUTDOWN;
    int on_loop = atomic_load_explicit(&ex->loop_tid, memory_order_relaxed) ==
                  evexec__self();
    if (on_loop && evexec__closing(ex))
        return ESHUTDOWN;
    struct evexec__call *call = evexec__malloc(sizeof *call);
    if (!call)
        return ENOMEM;
    call->node.kind = EVEXEC__NODE_CALL;
    call->fn = fn;
    call->arg = arg;
    call->counted = on_loop;
    if (on_loop) {
        /* Counted, so the loop stays alive until the call has run. */
        if (ensure_wake(ex) != 0) {
            free(call);
            return ENOMEM;
        }
        ex->inflight++;
    }
    /* Once teardown has closed the list, a call would never run: refuse
     * it.  Pushed before, it runs, inside evexec_free at the latest. */
    if (evexec__core_push(ex->core, &call->node) != 0) {
        free(call);
        return ESHUTDOWN;
    }
    return 0;
}

/* The checks of a loop-thread setting: 0, EINVAL or ESHUTDOWN. */
static int setting_allowed(struct evexec *ex)
{
    if (!ex)
        return EINVAL;
    if (evexec__closing(ex))
        return ESHUTDOWN;
    return evexec__on_loop(ex) ? 0 : EINVAL;
}

EVEXEC_API int evexec_set_keepalive(struct evexec *ex, int keepalive)
{
    int rc = setting_allowed(ex);
    if (rc)
        return rc;
    if (keepalive) {
        rc = ensure_wake(ex);
        if (rc)
            return rc;
        ex->keep_loop = 1;
    } else {
        ex->keep_loop = 0;
        evexec__maybe_idle(ex);
    }
    return 0;
}

EVEXEC_API int evexec_set_loop_thread(struct evexec *ex)
{
    if (!ex)
        return EINVAL;
    atomic_store_explicit(&ex->loop_tid, evexec__self(), memory_order_relaxed);
    return 0;
}

EVEXEC_API int evexec_get_keepalive(const struct evexec *ex)
{
    return ex ? ex->keep_loop : 0;
}

int evexec__wakeup_fd(const struct evexec *ex)
{
    return ex->core->chan.wfd;
}

void evexec__bridge_atfork_child(void)
{
    /* The forking thread's pending batch belongs to an inherited evexec:
     * it is ended by that evexec's evexec_free, never handed over. */
    batching = NULL;
}

/* ---- keeping the loop alive for run_until_complete --------------------- */

int evexec__keepalive(struct evexec *ex, int on)
{
    if (on) {
        int rc = ensure_wake(ex);
        if (rc)
            return rc;
        ex->holds++;
    } else {
        ex->holds--;
        evexec__maybe_idle(ex);
    }
    return 0;
}

/* ---- drain budget and watermarks -------------------------------------- */

EVEXEC_API int evexec_set_drain_budget(struct evexec *ex, unsigned max_callbacks,
                                       unsigned max_usec)
{
    int rc = setting_allowed(ex);
    if (rc)
        return rc;
    if ((max_callbacks || max_usec) && !ex->more_ev &&
        !(ex->more_ev = event_new(ex->base, -1, 0, on_more, ex)))
        return ENOMEM;
    ex->drain_max = max_callbacks;
    ex->drain_usec = max_usec;
    ex->drain_limited = max_callbacks || max_usec;
    return 0;
}

void evexec__wm_cross(struct evexec *ex, struct evexec__wm *wm)
{
    if (wm->down_below == 0) {          /* reached high, going up */
        wm->up_at = SIZE_MAX;
        wm->down_below = wm->low + 1;
    } else {                            /* fell to low */
        wm->down_below = 0;
        wm->up_at = wm->high;
    }
    wm->unreported++;
    ex->wm_unreported++;
    evexec__schedule_ready(ex);
}

/* Tell one set's crossings not yet told, one call each.  Returns 1 if ex
 * is closing (stop telling). */
static int wm_tell_one(struct evexec *ex, struct evexec__wm *wm)
{
    while (wm->unreported) {
        if (evexec__closing(ex))
            return 1;
        wm->unreported--;
        ex->wm_unreported--;
        wm->told ^= 1;
        wm->cb(ex, wm->told, wm->arg);
    }
    return 0;
}

/* Tell the crossings not yet told, from the loop: the evexec's, then each
 * lane's.  A callback may set watermarks again or free ex. */
static void wm_tell(struct evexec *ex)
{
    if (wm_tell_one(ex, &ex->wm))
        return;
    for (int i = 0; i < EVEXEC_MAX_LANES && ex->wm_unreported; i++)
        if (wm_tell_one(ex, &ex->lane_wm[i]))
            return;
}

/* Forget every watermark (evexec_free): no call from here on. */
static void wm_off(struct evexec *ex)
{
    struct evexec__wm off = { .up_at = SIZE_MAX };
    off.n = ex->wm.n;
    ex->wm = off;
    for (int i = 0; i < EVEXEC_MAX_LANES; i++) {
        off.n = ex->lane_wm[i].n;
        ex->lane_wm[i] = off;
    }
    ex->wm_unreported = 0;
}

/* Set one set of watermarks; see evexec_set_watermarks. */
static void wm_set(struct evexec *ex, struct evexec__wm *wm, size_t low, size_t high,
                   void (*cb)(struct evexec *ex, int above, void *arg), void *arg)
{
    ex->wm_unreported -= wm->unreported;
    wm->unreported = 0;
    wm->told = 0;
    wm->low = low;
    wm->high = high;
    wm->cb = high ? cb : NULL;
    wm->arg = arg;
    wm->down_below = 0;
    wm->up_at = high ? high : SIZE_MAX;
    if (high && wm->n >= high)
        evexec__wm_cross(ex, wm);
}

EVEXEC_API int evexec_set_watermarks(struct evexec *ex, size_t low, size_t high,
                                     void (*cb)(struct evexec *ex, int above, void *arg),
                                     void *arg)
{
    if (high != 0 && (low >= high || !cb))
        return EINVAL;
    int rc = setting_allowed(ex);
    if (rc)
        return rc;
    wm_set(ex, &ex->wm, low, high, cb, arg);
    return 0;
}

EVEXEC_API int evexec_set_lane_watermarks(struct evexec *ex, int lane, size_t low,
                                          size_t high,
                                          void (*cb)(struct evexec *ex, int above,
                                                     void *arg),
                                          void *arg)
{
    if (!ex || !evexec__pool_lane_ok(ex->pool, lane) ||
        (high != 0 && (low >= high || !cb)))
        return EINVAL;
    int rc = setting_allowed(ex);
    if (rc)
        return rc;
    ex->lane_wm_on = 1;
    wm_set(ex, &ex->lane_wm[lane], low, high, cb, arg);
    return 0;
}
