/*
 * evexec-internal.h -- declarations shared by the rooms of lib/.
 *
 * Who touches what:
 *  - struct evexec_future: the loop thread only.
 *  - struct evexec_job: written by the loop thread before it is queued,
 *    then owned by the pool (queue links, qstate: under pool->lock), then
 *    by the worker running it (error, result), then handed back through the
 *    core's completion list.  `cancelled` is the one field both sides touch
 *    at once (atomic).
 *  - struct evexec: the loop thread only, but for `core`, set before any
 *    other thread can see the evexec, and `loop_tid` (atomic), both read
 *    by evexec_call_soon_threadsafe() from any thread.
 *  - struct evexec__core: the part of an evexec that workers see: the
 *    completion list and the wake-up fd.  Reference counted (atomic) so that
 *    it outlives its evexec while orphaned jobs still finish.
 */
#ifndef EVEXEC_INTERNAL_H
#define EVEXEC_INTERNAL_H

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <stddef.h>
#include <stdint.h>

#include "evexec.h"

struct event;

#define EVEXEC__CONTAINER_OF(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* ---- wakefd.c: the wake-up channel ------------------------------------- */

/* An eventfd (rfd == wfd) or a non-blocking, close-on-exec pipe. */
struct evexec__wakefd {
    int rfd, wfd;
};

/* Open one: an eventfd unless use_pipe or the system has none.  Returns 0
 * or an errno value (EMFILE, ENFILE, ENOMEM...). */
int evexec__wakefd_open(struct evexec__wakefd *w, int use_pipe);
/* Make it readable.  Any thread; never blocks; EINTR retried. */
void evexec__wakefd_signal(const struct evexec__wakefd *w);
/* Read everything pending.  The owner; never blocks. */
void evexec__wakefd_drain(const struct evexec__wakefd *w);
/* Close both ends (once). */
void evexec__wakefd_close(struct evexec__wakefd *w);

/* A pause instruction for spin loops, where the CPU has one. */
static inline void evexec__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __asm__ __volatile__("pause");
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#elif defined(__powerpc__) || defined(__powerpc64__)
    __asm__ __volatile__("or 27,27,27");
#endif
}

/* ---- alloc.c: allocations and threads, with fault hooks ------------------ */

/* A test hook: returns non-zero when the call (of n bytes, for memory)
 * should fail.  NULL (the default): nothing fails. */
typedef int (*evexec__fail_hook)(size_t n);
extern _Atomic(evexec__fail_hook) evexec__alloc_hook;
extern _Atomic(evexec__fail_hook) evexec__thread_hook;

/* malloc, calloc, realloc: NULL with errno ENOMEM when the hook says so.
 * Release with free(). */
void *evexec__malloc(size_t n);
void *evexec__calloc(size_t count, size_t size);
void *evexec__realloc(void *p, size_t n);
/* n bytes of fresh pages (mmap), aligned to n (a power of two, a multiple
 * of the page size): only the pages touched count in the RSS.  NULL with
 * errno ENOMEM.  Release with evexec__unmap(p, n). */
void *evexec__map_aligned(size_t n);
void evexec__unmap(void *p, size_t n);
/* pthread_create, with the system's default stack when stack_size is 0;
 * EAGAIN when the hook says so. */
int evexec__thread_create(pthread_t *tid, void *(*start)(void *), void *arg,
                          size_t stack_size);

/* ---- version.c: public structs that grow ---------------------------------- */

/* Copy the caller's struct `in` (NULL: all defaults) into `out` (ours
 * bytes, zeroed first).  Its leading size_t says how big the caller's
 * struct is; 0 means first_size, the 1.0 layout.  Returns 0, or EINVAL for
 * a size too small, or larger than ours with non-zero bytes we do not
 * know. */
int evexec__read_struct(void *out, size_t ours, const void *in, size_t first_size);

/* The 1.0 layouts: the size of each struct up to its last 1.0 field. */
#define EVEXEC__POOL_CONFIG_SIZE_1_0 \
    (offsetof(struct evexec_pool_config, spin_us) + sizeof(unsigned))
#define EVEXEC__RUN_OPTS_SIZE_1_0 \
    (offsetof(struct evexec_run_opts, arg_free) + sizeof(void (*)(void *)))

/* ---- fork.c -------------------------------------------------------------- */

/* Bumped in every child after fork(); a pool or evexec made in an older
 * generation is inherited and unusable. */
extern atomic_uint evexec__fork_gen;

static inline unsigned evexec__fork_generation(void)
{
    return atomic_load_explicit(&evexec__fork_gen, memory_order_relaxed);
}

/* Install the fork handlers (once) and return the current generation.
 * Called by every constructor of a pool or an evexec. */
unsigned evexec__fork_init(void);

enum evexec__fork_phase {
    EVEXEC__FORK_PREPARE,   /* before fork: take the process-wide locks */
    EVEXEC__FORK_PARENT,    /* after, in the parent: release them */
    EVEXEC__FORK_CHILD,     /* after, in the child: release or reset them */
};

/* Each room's part (pool.c: the default pool; cancel stripes; the log
 * sink), and bridge.c's thread-local batch in the child. */
void evexec__pool_atfork(int phase);
void evexec__cancel_atfork(int phase);
void evexec__log_atfork(int phase);
void evexec__bridge_atfork_child(void);

/* ---- time ----------------------------------------------------------------- */

/* The largest time_t (signed on every system evexec builds on). */
#define EVEXEC__TIME_MAX \
    ((time_t)(((uintmax_t)1 << (sizeof(time_t) * CHAR_BIT - 1)) - 1))

/* *t += sec seconds + nsec nanoseconds (both >= 0, nsec < 1e9; t
 * normalised), saturating at the largest time_t: a huge timeout is "that
 * long", never an overflow into the past. */
static inline void evexec__timespec_add(struct timespec *t, time_t sec, long nsec)
{
    long ns = t->tv_nsec + nsec;
    time_t carry = ns >= 1000000000L;
    if (carry)
        ns -= 1000000000L;
    if (sec > EVEXEC__TIME_MAX - t->tv_sec - carry) {
        t->tv_sec = EVEXEC__TIME_MAX;
        t->tv_nsec = 999999999L;
        return;
    }
    t->tv_sec += sec + carry;
    t->tv_nsec = ns;
}

/* ---- completion list nodes (bridge.c) ---------------------------------- */

enum evexec__node_kind {
    EVEXEC__NODE_JOB = 1,   /* a struct evexec_job */
    EVEXEC__NODE_CALL = 2,  /* a call_soon_threadsafe call */
};

struct evexec__node {
    struct evexec__node *next;
    int kind;
};

struct evexec__core;

/* Push a node onto a core's completion list from any thread; writes the
 * wake-up fd only when the list was empty.  Returns 0, or ESHUTDOWN if
 * the evexec was freed: a job is then disposed of here (its result is
 * released), a call stays the caller's. */
int evexec__core_push(struct evexec__core *core, struct evexec__node *node);

/* ---- jobs (bridge.c runs them through pool.c) --------------------------- */

enum evexec__qstate {
    EVEXEC__Q_NEW = 0,
    EVEXEC__Q_QUEUED,     /* on the pool's run queue */
    EVEXEC__Q_RUNNING,    /* taken by a worker */
    EVEXEC__Q_REMOVED,    /* taken off the queue without running */
};

struct evexec_job {
    /* One link for every list a job is on, one at a time: the run queue
     * or a loop's batch (qnext, qprev: pool->lock / the loop), then the
     * completion list or the free list (node: the kind is set when the
     * job is pushed). */
    union {
        struct evexec__node node;          /* completion list link; first */
        struct {
            struct evexec_job *qnext, *qprev;
        };
    };
    struct evexec__pool_owner *owner;  /* whose queue (NULL: the pool's
                                          own); set before submission */
    evexec_fn fn;
    void *arg;
    void (*arg_free)(void *);          /* once: worker after fn, or whoever
                                          ends a job that never ran */
    union {
        uint32_t queued_us;            /* handed to the pool (CLOCK_MONOTONIC,
                                          microseconds, modulo 2^32): the
                                          pool's, set at submission when
                                          timing, read when taken */
        int error;                     /* then: fn's return, or ECANCELED;
                                          written before it is read */
    };
    unsigned char qstate;              /* written under pool->lock; RUNNING
                                          means fn was called.  Read without
                                          the lock only by whoever ends the
                                          job, after it came back */
    unsigned char lane;
    atomic_uchar marks;                /* EVEXEC__JOB_CANCELLED: the loop
                                          sets it, the worker reads it;
                                          EVEXEC__JOB_ORPHAN: teardown
                                          handshake, see bridge.c */
    atomic_uchar expired;              /* deadline handshake (pool.c):
                                          EVEXEC__EXP_*; set by the loop
                                          before the job is queued, then
                                          LIVE->GIVEN_UP by the loop under
                                          pool->lock, ->DONE by the worker */
    /* The result a worker sets lives in the job's future (result,
     * free_fn), which nobody else reads or writes until the job is back:
     * see evexec_job_set_result. */
};

/* job->marks */
enum {
    EVEXEC__JOB_CANCELLED = 1,
    EVEXEC__JOB_ORPHAN = 2
};

/* job->expired.  NEVER: no deadline, nobody changes it (the worker spends
 * no atomic exchange on it).  LIVE: a deadline job not given up.
 * GIVEN_UP: the loop gave it up while it ran and counted it in the pool's
 * `extra`.  DONE: its function returned; too late to give it up. */
enum {
    EVEXEC__EXP_LIVE = 0,       /* 0, so zero-filled jobs are watched */
    EVEXEC__EXP_GIVEN_UP = 1,
    EVEXEC__EXP_DONE = 2,
    EVEXEC__EXP_NEVER = 3
};

/* A FIFO of jobs linked through their own qprev/qnext (no allocation):
 * the pool's lanes, and a loop's batch of submissions. */
struct evexec__jobq {
    struct evexec_job *head, *tail;
    size_t len;
};

/* Append n to such a list: the one append of every list in lib/. */
#define EVEXEC__DLIST_APPEND(head, tail, n, prev, next) \
    do {                                                \
        (n)->next = NULL;                               \
        (n)->prev = (tail);                             \
        if (tail)                                       \
            (tail)->next = (n);                         \
        else                                            \
            (head) = (n);                               \
        (tail) = (n);                                   \
    } while (0)

static inline void evexec__jobq_push(struct evexec__jobq *q, struct evexec_job *job)
{
    EVEXEC__DLIST_APPEND(q->head, q->tail, job, qprev, qnext);
    q->len++;
}

/* Unlink n from a doubly linked list threaded through its fields `prev`
 * and `next`, whose first element is the lvalue `head` and last `tail`,
 * and clear n's links.  The one unlink of every list in lib/. */
#define EVEXEC__DLIST_UNLINK(head, tail, n, prev, next) \
    do {                                                \
        if ((n)->prev)                                  \
            (n)->prev->next = (n)->next;                \
        else                                            \
            (head) = (n)->next;                         \
        if ((n)->next)                                  \
            (n)->next->prev = (n)->prev;                \
        else                                            \
            (tail) = (n)->prev;                         \
        (n)->prev = (n)->next = NULL;                   \
    } while (0)

/* Put job at the front of q (a job given back, before those after it). */
static inline void evexec__jobq_push_front(struct evexec__jobq *q, struct evexec_job *job)
{
    job->qprev = NULL;
    job->qnext = q->head;
    if (q->head)
        q->head->qprev = job;
    else
        q->tail = job;
    q->head = job;
    q->len++;
}

static inline void evexec__jobq_unlink(struct evexec__jobq *q, struct evexec_job *job)
{
    EVEXEC__DLIST_UNLINK(q->head, q->tail, job, qprev, qnext);
    q->len--;
}

/* Empty q; returns what it held, linked through qnext. */
static inline struct evexec_job *evexec__jobq_take_all(struct evexec__jobq *q)
{
    struct evexec_job *head = q->head;
    q->head = q->tail = NULL;
    q->len = 0;
    return head;
}

/* ---- pool.c ------------------------------------------------------------ */

/* One submitter's jobs in one lane of a pool: its FIFO, and its place in
 * the lane's ring of submitters that have jobs queued (on the ring iff
 * q.len > 0).  All under pool->lock. */
struct evexec__pool_olane {
    struct evexec__jobq q;
    struct evexec__pool_olane *rprev, *rnext;
};

/* A submitter of a pool (an evexec): the pool serves submitters
 * round-robin, one job each in turn.  Its memory is the submitter's (zeroed
 * before first use, kept until none of its jobs is queued); its fields are
 * the pool's, under pool->lock. */
struct evexec__pool_owner {
    struct evexec__pool_olane lane[EVEXEC_MAX_LANES];
};

/*
 * The pool's interface.  The pool owns only a job's queue fields (qprev,
 * qnext, qstate, lane) and the owner record a job names (`owner`); `core`
 * is the client's.  What running and handing back a job mean is its
 * client's, through these three calls.  bridge.c is the client; a test of
 * the pool alone defines its own evexec__pool_client.
 */
struct evexec__pool_client {
    /* Run the job (a worker, no lock held). */
    void (*run)(struct evexec_job *job);
    /* Hand the job back: ran, or (ran == 0) taken off the queue by a
     * cancelling shutdown.  The job may be freed by then end of the call. */
    void (*complete)(struct evexec_job *job, int ran);
    /* Hand this thread's unsent submissions to their pool now (before a
     * shutdown or a stats snapshot made on a loop thread). */
    void (*flush)(void);
};
extern const struct evexec__pool_client evexec__pool_client;

/* Queue a job.  Returns 0, ESHUTDOWN, EAGAIN (full, or no thread at all). */
int evexec__pool_submit(struct evexec_pool *pool, struct evexec_job *job);

/* Queue a chain of jobs linked through qnext (a batch made on one loop).
 * Returns 0, ESHUTDOWN, or EAGAIN when no thread at all can be made. */
int evexec__pool_submit_batch(struct evexec_pool *pool, struct evexec_job *head);

/* Take a queued job off the queue.  Returns 1 if it was queued (it will
 * never run), 0 if it is running or done. */
int evexec__pool_unqueue(struct evexec_pool *pool, struct evexec_job *job);

/* A running job passed its deadline: unless its function has returned,
 * it stops counting against the pool's thread caps (max_threads and its
 * lane's), up to max_threads such jobs at once, and a thread is started
 * if work waits.  Loop thread; job->expired is the handshake. */
void evexec__pool_expire(struct evexec_pool *pool, struct evexec_job *job);

/* Take every queued job of `owner` (job->owner) off the queue; returns
 * them linked through qnext, in the order they were queued per lane. */
struct evexec_job *evexec__pool_unqueue_owner(struct evexec_pool *pool,
                                              struct evexec__pool_owner *owner);

/* A thread that spins a little before it sleeps: a worker out of work,
 * or a loop waiting for the jobs it has in flight.  Each has its own,
 * set up from its pool's spin_us by evexec__spinner_init.  Adaptive (the
 * default): it spins only while its spins catch what it waits for, and
 * only while the process's spinners and the threads that must run for
 * it fit in the CPUs (pool.c). */
struct evexec__spinner {
    unsigned us;                /* longest spin; 0: never spins */
    unsigned char adaptive;     /* spin_us 0: only while spinning pays */
    unsigned char backoff;      /* misses in a row, capped */
    unsigned short skip;        /* waits left that sleep without spinning */
};
void evexec__spinner_init(struct evexec__spinner *s, const struct evexec_pool *pool);

/* 1 if `s` spins now; then evexec__spin_run must follow.  `busy`: the
 * threads that need a CPU meanwhile (those running the jobs it waits
 * for, or the one that submits them).  Any thread, for its own spinner. */
int evexec__spin_begin(struct evexec__spinner *s, size_t busy);

/* Spin until ready(arg) or s->us microseconds passed, after
 * evexec__spin_begin said 1; 1 if it got ready.  An adaptive spinner
 * learns from it. */
int evexec__spin_run(struct evexec__spinner *s,
                     int (*ready)(const void *arg), const void *arg);

/* Spin until ready(arg) or `us` microseconds passed; 1 if it got ready. */
int evexec__spin(int (*ready)(const void *arg), const void *arg, unsigned us);

/* 1 if `lane` is one of the pool's lanes (published: a job may name it). */
int evexec__pool_lane_ok(const struct evexec_pool *pool, int lane);

/* 1 if jobs of `lane` must be queued at submission, not batched (the lane
 * is bounded, or affine). */
int evexec__pool_lane_direct(const struct evexec_pool *pool, int lane);

/* The name of a lane, or NULL for no such lane. */
const char *evexec__pool_lane_name(const struct evexec_pool *pool, int lane);

/* 1 if the pool refuses new work. */
int evexec__pool_is_shutdown(struct evexec_pool *pool);
/* The pool's shutdown flag (set once, never cleared), for a reader that
 * knows the pool is not inherited across fork (evexec_run's batch path:
 * an evexec usable here has a pool made in this fork generation too). */
const atomic_int *evexec__pool_shutdown_flag(const struct evexec_pool *pool);

/* The pool whose worker the calling thread is, or NULL. */
struct evexec_pool *evexec__worker_pool(void);

/* stats.c reads a pool's statistics and its workers' running jobs:
 * fn(st, qlen, arg) runs under pool->lock, qlen the lanes' queued counts.
 * Returns 0, or ESHUTDOWN for a pool inherited across fork (fn not run). */
struct evexec__pstats;
int evexec__pool_stats_locked(const struct evexec_pool *pool,
                              void (*fn)(struct evexec__pstats *st,
                                         const size_t *qlen, void *arg),
                              void *arg);

/* 1 if the calling thread is a worker of a pool shut down with CANCEL:
 * its running job counts as cancelled (evexec_job_cancelled). */
int evexec__worker_cancelling(void);

/* ---- future.c ---------------------------------------------------------- */

enum evexec__fstate { EVEXEC__PENDING = 0, EVEXEC__DONE = 1 };

enum evexec__fkind {
    EVEXEC__F_USER = 0,   /* evexec_future_new */
    EVEXEC__F_JOB,        /* evexec_run: a struct evexec__jobfut */
    EVEXEC__F_OTHER,      /* timers, combinators: ops decide */
};

struct evexec__cb {
    evexec_done_cb fn;
    void *arg;
};

/* What a kind of future does on cancel and release. */
struct evexec__future_ops {
    /* Cancel a pending future.  Must end it (now or later) and return 0,
     * or return an error code and leave it alone.  NULL: end it ECANCELED
     * now. */
    int (*cancel)(struct evexec_future *f);
    /* Release what the kind owns (timers, references to inputs).  Called
     * once, before the memory goes.  May be NULL.  At teardown it is called
     * for every future before any memory is freed, and unref is then a
     * no-op, so it may unref other futures freely. */
    void (*release)(struct evexec_future *f);
    /* The kind, as reports name it ("job", "sleep", "gather"...). */
    const char *name;
};

/* The most callbacks one future holds (on_done: ENOMEM beyond). */
#define EVEXEC__CB_MAX ((1u << 27) - 1)

/* 80 bytes: a job's future and its job (56) make one 136-byte block.  A
 * kind's ops are not stored here: see evexec__future_ops(). */
struct evexec_future {
    struct evexec *ex;
    struct evexec_future *all_prev, *all_next;   /* ex->all */
    struct evexec_future *ready_next;            /* ex->ready queue */
    void *result;
    void (*free_fn)(void *);
    union {                        /* the callbacks: ncb <= 1, the one */
        struct evexec__cb cb0;     /* inline; more, an array of room */
        struct evexec__cb *cbs;    /* for 4, 8, 16... (future.c) */
    };
    unsigned refs;
    int error;
    unsigned ncb : 27;             /* callbacks added */
    unsigned state : 1;
    unsigned kind : 2;
    unsigned in_ready : 1;
    unsigned lane_counted : 1;     /* job: counted in its lane's
                                      watermarks (ex->lane_wm_on) */
    unsigned cbnext : 27;          /* the next callback to run */
    unsigned cancel_taken : 1;     /* a cancel was accepted */
    unsigned outstanding : 1;      /* job: not yet back from the pool */
    unsigned batched : 1;          /* job: in ex->batch, not yet queued */
    unsigned observed : 1;         /* error was read */
};

/* A kind's ops: NULL for a hand-made future, the job's for a job, and for
 * the other kinds (made by evexec__future_alloc) the ops it was given. */
const struct evexec__future_ops *evexec__future_ops(const struct evexec_future *f);
extern const struct evexec__future_ops evexec__job_ops;

/* A job future: one allocation for both halves. */
struct evexec__jobfut {
    struct evexec_future fut;
    struct evexec_job job;
};

/* Allocate a future of `size` bytes (>= sizeof(struct evexec_future), the
 * future first), one reference, linked into ex.  NULL + errno on failure,
 * ESHUTDOWN while ex is being freed.  For EVEXEC__F_OTHER the ops are kept
 * in a header before the future (evexec__future_ops); the memory goes with
 * evexec__future_free_block. */
struct evexec_future *evexec__future_alloc(struct evexec *ex, size_t size,
                                           int kind,
                                           const struct evexec__future_ops *ops);

/* End a pending future.  On success the future owns `result` (only kept
 * when error == 0; otherwise released now).  Returns EALREADY if it had
 * already ended (nothing is taken then). */
int evexec__future_finish(struct evexec_future *f, int error, void *result,
                          void (*free_fn)(void *));

/* Initialise a future in memory the caller provides (one reference,
 * linked into ex), of kind EVEXEC__F_USER or EVEXEC__F_JOB.
 * evexec__future_alloc does this for fresh memory. */
static inline void evexec__future_init(struct evexec *ex, struct evexec_future *f,
                                       int kind);   /* below struct evexec */

/* free() the memory of a future that is not a job's (see
 * evexec__future_alloc). */
void evexec__future_free_block(struct evexec_future *f);

/* Release what a future owns: its result (destructor), the kind's state
 * (ops->release), its callback array.  Leaves the memory.  Called once, when
 * the last reference goes or at teardown. */
void evexec__future_release(struct evexec_future *f);

/* Unlink a released future from its evexec and free (or recycle) it. */
void evexec__future_free_mem(struct evexec_future *f);
/* The end of evexec_future_unref, once the last reference is gone (and
 * the evexec is not closing): release and free, unless pending with
 * callbacks to run. */
void evexec__future_unref_last(struct evexec_future *f);
/* Run a future's callbacks not yet run, in order (loop thread, from the
 * loop; the future has ended). */
void evexec__future_run_callbacks(struct evexec_future *f);

/* End a pending future and run its callbacks now, without the ready
 * queue: for a drain that is itself running from the loop.  The caller
 * holds a reference across the call. */
void evexec__future_deliver(struct evexec_future *f, int error, void *result,
                            void (*free_fn)(void *));

/* Timers that never fire early.  libevent measures timeouts on a coarse
 * clock unless the base was made with EVENT_BASE_FLAG_PRECISE_TIMER, so a
 * timer may fire a tick before its time.  evexec__timer_arm records in
 * *due when a timeout of `tv` from now is due (saturating: any valid tv,
 * up to tv_sec LONG_MAX, is "that long", never the past) and adds the
 * timer, at most a year at a time; it returns event_add()'s result.
 * evexec__timer_early, called first in the timer's callback, re-adds the
 * timer for what is left and returns 1 if it fired early. */
int evexec__timer_arm(struct event *timer, struct timespec *due,
                      const struct timeval *tv);
int evexec__timer_early(struct event *timer, const struct timespec *due);

/* Queue the callbacks of an ended future that have not run yet (those
 * after the one running now, when a callback tore the evexec down). */
void evexec__future_resume(struct evexec_future *f);

/* Run every due done callback.  Loop thread, from a libevent callback. */
void evexec__run_ready(struct evexec *ex);

/* ---- log.c: failures nobody read ---------------------------------------- */

/* Report a failed future released without its error having been read
 * (checks that itself).  Called by evexec__future_release. */
void evexec__report_unobserved(struct evexec_future *f);

/* ---- cancel.c: waiting for cancellation on a worker --------------------- */

/* Wake a worker waiting in evexec_job_wait_cancel/poll for this job.
 * Called right after job->cancelled is set. */
void evexec__job_cancel_notify(struct evexec_job *job);

/* Wake every worker of `pool` waiting in evexec_job_wait_cancel/poll.
 * Called by evexec_pool_shutdown(CANCEL) after it set the pool's
 * cancel_running flag, without the pool lock. */
void evexec__cancel_notify_pool(struct evexec_pool *pool);

/* ---- combine.c ---------------------------------------------------------- */

/* f's inner future when f is a wait_for (borrowed: the wait_for holds a
 * reference to it), else NULL.  For fs.c's accessors, which read a
 * descriptor or a byte count through a wait_for.  Loop thread. */
struct evexec_future *evexec__wait_for_inner(const struct evexec_future *f);

/* Deadlines of jobs: evexec__deadline_new() makes the future that
 * evexec_run_opts() returns for a job with a deadline, before the job is
 * handed over (NULL + errno ENOMEM/ESHUTDOWN/EINVAL); once it has been,
 * evexec__deadline_start() makes it end as `job` ends, or ETIMEDOUT after
 * tv, when it gives the job up (evexec__job_expire, bridge.c).  A wrapper
 * never started is dropped with evexec_future_unref().  Loop thread. */
struct evexec_future *evexec__deadline_new(struct evexec *ex);
void evexec__deadline_start(struct evexec_future *w, struct evexec_future *job,
                            const struct timeval *tv);
/* bridge.c: cancel the pending job future f that passed its deadline; if
 * its job is running, the pool stops counting it against its caps. */
void evexec__job_expire(struct evexec_future *f);

/* ---- fs.c / dns.c: offloaded I/O ---------------------------------------- */

/* An I/O request block starts with the function that runs it; the job owns
 * the block and frees it once, whether or not the job ran. */
typedef int (*evexec__io_fn)(struct evexec_job *job, void *req);

/* Run the request block `req` (malloc'd, evexec__io_fn first) on `lane`.
 * Returns the future, or NULL + errno (the block is freed then). */
struct evexec_future *evexec__io_submit(struct evexec *ex, void *req, int lane);

/* Test seams of fs.c, for white-box tests that link the library
 * statically; nothing else stores to them.  Every write(2) fs.c makes goes
 * through evexec__fs_write_hook (default: write), so a test can make
 * write() misbehave; evexec__fs_read_file_max is read_file's size limit
 * (default: EVEXEC_FS_READ_FILE_MAX).  Store before submitting the job,
 * put back after its future has ended. */
extern ssize_t (*_Atomic evexec__fs_write_hook)(int fd, const void *buf, size_t len);
extern _Atomic size_t evexec__fs_read_file_max;

/* dns.c: coalesced lookups and the cache of one evexec (NULL until the
 * first lookup or evexec_dns_set_cache()).  Freed by evexec_free() once
 * every future has ended (evexec__dns_free). */
struct evexec__dns;
void evexec__dns_free(struct evexec *ex);

/* Test seams of dns.c, as fs.c's: every getaddrinfo() a lookup makes goes
 * through evexec__dns_getaddrinfo_hook (default: getaddrinfo; read by
 * workers), and the cache reads its clock, in milliseconds, from
 * evexec__dns_clock_hook when it is set (NULL: CLOCK_MONOTONIC; loop
 * thread).  Store before the lookups, put back when they have ended. */
extern int (*_Atomic evexec__dns_getaddrinfo_hook)(const char *node, const char *service,
                                                   const struct addrinfo *hints,
                                                   struct addrinfo **res);
extern uint64_t (*evexec__dns_clock_hook)(void);

/* ---- bridge.c: struct evexec ------------------------------------------- */

/* An evexec's life, in this order; each state is left only forward. */
enum evexec__life {
    EVEXEC__OPEN,       /* taking work */
    EVEXEC__CLOSING,    /* evexec_free() running its teardown */
    EVEXEC__CLOSED      /* torn down inside a callback: the memory goes
                           when the outermost callback returns
                           (evexec__leave) */
};

/* One set of watermarks (evexec_set_watermarks, or one lane's): jobs
 * submitted and not yet delivered, and the counts at which they cross a
 * watermark (up_at: SIZE_MAX when off or above; down_below: low + 1 when
 * above, else 0).  Loop thread. */
struct evexec__wm {
    size_t n, up_at, down_below, low, high;
    void (*cb)(struct evexec *ex, int above, void *arg);
    void *arg;
    unsigned unreported;            /* crossings not yet told to cb */
    unsigned char told;             /* the last state told (1: above) */
};

struct evexec__slab;

struct evexec {
    struct event_base *base;
    struct evexec_pool *pool;
    struct evexec__core *core;
    struct event *wake_ev;          /* read side of the core's fd */
    struct event *ready_ev;         /* runs due callbacks */
    struct evexec_future *all;      /* every live future */
    struct evexec_future *ready_head, *ready_tail;
    struct evexec__slab *slabs;     /* job blocks come from these (bridge.c) */
    struct evexec__jobfut *free_jobs;  /* recycled blocks (linked by job.node.next) */
    size_t live_jobs;               /* blocks handed out */
    struct evexec__jobq batch;      /* submissions made in our
                                                    callbacks, not yet queued */
    struct evexec__node *draining;  /* completions detached, not yet delivered */
    struct evexec__dns *dns;        /* dns.c's lookups in flight and cache */
    size_t inflight;                /* jobs and loop-thread calls not drained */
    unsigned in_pass;               /* inside callback_pass: submissions
                                       are batched (see evexec_run_opts);
                                       not `depth`, which also counts
                                       run_until_complete, where other
                                       libevent callbacks submit */
    struct evexec__spinner spin;    /* waiting for jobs in flight */
    unsigned batch_open;            /* evexec_batch_begin() nesting:
                                       submissions are batched too */
    unsigned holds;                 /* evexec__keepalive(): run_until_complete
                                       nesting, keeps the loop running */
    unsigned depth;                 /* inside our own libevent callbacks */
    unsigned fork_gen;              /* made in this fork generation; set in
                                       evexec_new, read from any thread */
    atomic_uintptr_t loop_tid;      /* the loop thread's evexec__self(), 0
                                       until first use; see evexec__on_loop */
    /* evexec_set_drain_budget(): a pass delivers at most drain_max
     * completions (0: any number) or for drain_usec (0: any time); what is
     * left waits in `draining` (and on the list) for more_ev, a zero
     * timer that runs after the loop polled its other events. */
    unsigned drain_max, drain_usec;
    unsigned drain_used;            /* delivered in this pass */
    struct timespec drain_start;    /* this pass began (drain_usec) */
    struct evexec__node *rev_todo;  /* detached, newest first, not yet
                                       walked into completion order */
    struct evexec__node *rev_fifo;  /* walked so far, oldest first */
    struct event *more_ev;          /* made by the first budget set */
    unsigned char drain_limited;    /* drain_max || drain_usec */
    unsigned char drain_more;       /* more_ev is added: a drain continues */
    const atomic_int *pool_down;    /* evexec__pool_shutdown_flag */
    int pool_bounded;               /* lanes 0 and 1 are bounded (the
                                       pool has max_queued): set once */
    struct evexec__wm wm;           /* evexec_set_watermarks(): all lanes */
    struct evexec__wm lane_wm[EVEXEC_MAX_LANES];
                                    /* evexec_set_lane_watermarks(): they
                                       count jobs submitted from its first
                                       call on (lane_wm_on) */
    unsigned char lane_wm_on;
    unsigned wm_unreported;         /* crossings not yet told, all wms */
    struct evexec__obs *obs;        /* stats.c: watchdog, stats socket */
    unsigned char keep_loop;        /* evexec_set_keepalive(): watch always */
    unsigned char wake_added;
    unsigned char ready_active;
    enum evexec__life life;         /* open, closing, closed */
};

/* 1 once evexec_free() has begun: no new work, no callbacks added. */
static inline int evexec__closing(const struct evexec *ex)
{
    return ex->life != EVEXEC__OPEN;
}

/* 1 if ex was made in the parent of this process (fork). */
static inline int evexec__inherited(const struct evexec *ex)
{
    return ex->fork_gen != evexec__fork_generation();
}

/* The calling thread, as a number that can be stored atomically: never 0,
 * and never given to another thread of the process, live or later. */
uintptr_t evexec__self(void);

/* The loop thread is the thread that runs ex's event_base.  It is bound
 * by the first loop-thread call (or the first of ex's events the base
 * runs), and moved by the base running ex's events on another thread.
 * 1 if the calling thread is ex's loop thread, binding it when none is
 * yet; 0 if another thread is. */
static inline int evexec__on_loop(struct evexec *ex)
{
    uintptr_t me = evexec__self();
    uintptr_t cur = atomic_load_explicit(&ex->loop_tid, memory_order_relaxed);
    if (cur == me)
        return 1;
    return cur == 0 &&
           atomic_compare_exchange_strong_explicit(&ex->loop_tid, &cur, me,
                                                   memory_order_relaxed,
                                                   memory_order_relaxed);
}

/* 0 if new work may be made on ex, else ESHUTDOWN (being freed, or
 * inherited across fork) or EINVAL (called from a thread that is not
 * ex's loop thread). */
/* Inline: it runs once per job (evexec_run). */
static inline void evexec__future_init(struct evexec *ex, struct evexec_future *f,
                                       int kind)
{
    /* Field by field: this runs once per job. */
    f->ex = ex;
    f->all_prev = NULL;
    f->result = NULL;
    f->free_fn = NULL;
    f->refs = 1;
    f->ncb = f->cbnext = 0;
    f->error = EINPROGRESS;
    f->state = EVEXEC__PENDING;
    f->kind = (unsigned)kind & 3u;
    f->in_ready = f->cancel_taken = f->outstanding = f->batched = 0;
    f->observed = 0;
    f->all_next = ex->all;
    if (ex->all)
        ex->all->all_prev = f;
    ex->all = f;
}

static inline int evexec__usable(struct evexec *ex)
{
    if (evexec__closing(ex) || evexec__inherited(ex))
        return ESHUTDOWN;
    return evexec__on_loop(ex) ? 0 : EINVAL;
}

/* Schedule the ready queue to run from the loop. */
void evexec__schedule_ready(struct evexec *ex);

/* Watermarks: count a job of `lane` submitted (up) or ended (down); see
 * evexec_set_watermarks.  The crossing itself is told from the loop. */
void evexec__wm_cross(struct evexec *ex, struct evexec__wm *wm);
static inline void evexec__wm_up(struct evexec *ex, struct evexec__wm *wm)
{
    if (++wm->n >= wm->up_at)
        evexec__wm_cross(ex, wm);
}
static inline void evexec__wm_down(struct evexec *ex, struct evexec__wm *wm)
{
    if (--wm->n < wm->down_below)
        evexec__wm_cross(ex, wm);
}
static inline void evexec__jobs_up(struct evexec *ex, struct evexec_future *f,
                                   int lane)
{
    evexec__wm_up(ex, &ex->wm);
    f->lane_counted = ex->lane_wm_on;
    if (f->lane_counted)
        evexec__wm_up(ex, &ex->lane_wm[lane]);
}
static inline void evexec__jobs_down(struct evexec *ex, struct evexec_future *f,
                                     int lane)
{
    evexec__wm_down(ex, &ex->wm);
    if (f->lane_counted)
        evexec__wm_down(ex, &ex->lane_wm[lane]);
}

/* Hand ex's batched submissions to its pool now (run_until_complete, so
 * that it never waits for a job still in an open batch). */
void evexec__flush_batch(struct evexec *ex);

/* Called when ex->inflight may have dropped to 0 outside a drain. */
void evexec__maybe_idle(struct evexec *ex);

/* The record naming ex's jobs in its pool (job->owner). */
struct evexec__pool_owner *evexec__owner(struct evexec *ex);

/* stats.c: stop ex's watchdog and stats socket, free their state.
 * Called by evexec_free(). */
void evexec__obs_free(struct evexec *ex);

/* Entered/left around user callbacks; returns after a deferred free. */
void evexec__enter(struct evexec *ex);
/* Returns 1 if ex was freed (deferred evexec_free) and must not be used. */
int evexec__leave(struct evexec *ex);

/* Hold the loop open (the wake-up event added) while on > 0.  Returns 0,
 * or ENOMEM if the wake-up event could not be added (nothing held then). */
int evexec__keepalive(struct evexec *ex, int on);

/* For tests: the write end of ex's wake-up channel. */
int evexec__wakeup_fd(const struct evexec *ex);

/* Job futures: cancel handling lives in bridge.c. */
int evexec__job_cancel(struct evexec_future *f);
void evexec__jobfut_recycle(struct evexec *ex, struct evexec__jobfut *jf);

#endif /* EVEXEC_INTERNAL_H */
