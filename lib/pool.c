/*
 * pool.c -- worker threads and their run queue.
 *
 * Design.  One mutex, pool->lock, guards everything in struct evexec_pool
 * below it: the two lanes' queues, the thread counters and the shutdown
 * state.  A job's qstate and queue links, and the owner record it names,
 * are also guarded by pool->lock; its other fields belong to whoever holds
 * the job (see evexec-internal.h).
 *
 * Fairness.  Each job names its owner (struct evexec__pool_owner: the
 * submitting evexec's, embedded in its core; NULL for the pool's own).
 * Per lane, each owner has a FIFO of its jobs linked through their own
 * qprev/qnext fields (no allocation per job), and the lane keeps a ring
 * of the owners that have jobs queued in it.  A worker takes the oldest
 * job of the owner at the head of the ring and moves that owner to the
 * back: owners are served round-robin, one job each in turn, so an evexec
 * with a backlog of any size delays another's new job by at most one job
 * per other busy owner (per worker), not by its backlog.  Within one
 * owner and lane, jobs start in the order they were submitted.  An owner
 * with an empty FIFO is off the ring; a lane's `len` counts all its jobs,
 * which is what max_queued and the thread counts read.  A single owner
 * costs a few pointer moves more per job than one FIFO; taking an evexec's
 * jobs off when it is freed unlinks its FIFOs whole.
 *
 * A loop hands the jobs it submitted inside its own callbacks over in one
 * batch when the callback returns (bridge.c): one lock for many jobs.
 *
 * Threads start lazily: a submission starts one when the runnable queued
 * jobs outnumber the threads that are free to take them (`free_threads`:
 * alive and not running a job) and max_threads allows, unless one is
 * still starting (`starting`).  A new worker, before its first job,
 * starts up to two more if the queue still wants them (start_more), with
 * the lock released while it makes them: a cold burst's threads start as
 * a tree, several at a time, not one by one under the submitter's lock.
 * Workers have small stacks unless the pool asks otherwise
 * (EVEXEC_STACK_SIZE_DEFAULT), which makes them quicker to start.  A
 * submission signals the condition variable only when a worker is waiting
 * on it and no spinning worker will take the job.
 *
 * Spinning.  A worker out of work spins a little before it sleeps,
 * watching `submits`; by default (spin_us 0) only while that pays, and
 * only while the spinners and the threads they wait for fit in the CPUs
 * (evexec__spinner, also used by a loop waiting for its jobs in
 * bridge.c).  A spinner counts in `spinning` under the lock, and looks
 * at the queue under the lock again when it stops, so a job it was
 * counted on is never left.
 * A worker takes the lock once per job: it books the job it just finished
 * and takes the next one in the same critical section.  Idle workers above
 * min_threads exit after idle_timeout_ms.
 *
 * Holding.  When every thread the pool may have is alive and busy (none
 * waits, spins, is starting or runs thread_exit: one that does may start
 * another in its place only for queued jobs) and the default lane has a backlog of one
 * owner's jobs alone, a worker that takes a job also takes a few more of
 * them (at most EVEXEC__HOLD_MAX, at most its share of the backlog) and
 * runs them one after the other: one lock for several jobs.  When
 * another owner's job comes meanwhile, the worker gives back what it has
 * not started (to the front of the owner's FIFO) once its current job
 * returns: the newcomer waits for at most one job per busy worker, as
 * without holding.  A held job is taken
 * (counted as running, qstate RUNNING) but its fn not yet called; its
 * pointer sits in the worker's struct evexec__hold, and whoever takes it
 * out of there with an atomic exchange owns it: the holder (without the
 * lock), a worker that found nothing else to do (hold_steal), or a
 * cancel, an evexec's teardown or shutdown(CANCEL) (unhold_*), which end
 * it unrun as they end a queued job.  Only the owner dereferences a held
 * job: the others compare pointers and the owner recorded beside them.
 * No held job waits while a worker is idle: holds are made only while
 * none is, and a worker steals before it spins or sleeps.  Jobs with a
 * deadline, of other lanes, or while the pool times jobs (statistics
 * timing, or once a watchdog was set: st.watched) are never held.
 *
 * Lanes.  A pool has the default lane (0), the slow lane (1) and up to
 * EVEXEC_MAX_LANES - 2 lanes users add (evexec_pool_add_lane).  Each lane
 * but the default lane has a cap on the jobs it runs at once: a worker
 * takes a job of such a lane only below it.  The default lane has none
 * of its own (the threads alive bound it, also the extra threads started
 * for given-up jobs of other lanes); the slow lane's cap is
 * slow_max_threads (half of max_threads, at least one), so hung name
 * lookups cannot starve the default lane -- from max_threads 2 up; with
 * one thread the slow lane shares it.  Workers take default-lane jobs
 * first, then serve the other lanes in turn (next_lane).  An affine lane
 * is served by one thread of its own (struct evexec__thread.affine),
 * started by its first job, waiting on the lane's own condition variable,
 * and never idle-exiting; it is counted in affine_alive, not nthreads, so
 * max_threads and the shared workers' counts never see it.
 *
 * max_queued bounds each lane on its own: a submission is refused when its
 * lane already has max_queued jobs that no thread would take at once
 * (lane_waiting: free threads and threads still allowed to start go to the
 * default lane first, then to the other lanes in their order, each up to
 * its room).  No sums that could wrap.  Jobs of a bounded or affine lane
 * ("direct" lanes) are queued at submission, never in a loop's batch, so
 * a refusal reaches the caller.
 *
 * Cancelling shutdown never writes into a running job (the loop may free
 * it the moment its worker hands it back): it sets `cancel_running`, which
 * evexec_job_cancelled() reads through evexec__worker_cancelling() on the
 * worker, and then wakes the pool's waiters in cancel.c.
 *
 * The pool knows a job only by its queue fields; it runs a job and hands
 * it back through evexec__pool_client (bridge.c), so it can be built and
 * tested alone (tests/test_pool_alone.c).  Workers never hold pool->lock
 * while running a job or while handing it back (the bridge's hand-back is
 * lock-free), so the pool lock is never held together with any other
 * lock.
 *
 * Per-worker hooks: thread_init and thread_start run on the worker before
 * its first job; thread_exit runs on it after its last one, without the
 * lock, when the worker has already left nthreads but is counted in
 * `exiting`: no thread starts in its place meanwhile (max_threads bounds
 * the threads alive, and so the per-worker states), it starts one itself
 * after thread_exit if jobs came, and shutdown(WAIT) and free wait for
 * it as for nthreads.  worker_state is the
 * worker's own thread-local: only that worker reads or writes it.
 *
 * Threads are joinable.  An exiting worker puts its handle on `exited`,
 * drops nthreads and signals `exit_cv`, all under the lock, and touches the
 * pool no more -- but its thread-exit destructors may, after that.  So
 * threads are joined without the lock: a submission takes the `exited`
 * list under the lock and joins it after unlocking, and evexec_pool_free
 * waits for every worker to exit, then joins them all before it destroys
 * the lock.  No thread outlives the pool and none is left unjoined.
 */
#define _GNU_SOURCE
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "evexec-internal.h"
#include "stats.h"

#define EVEXEC__MAX_THREADS_LIMIT 1024
#define EVEXEC__DEFAULT_IDLE_MS 10000
#define EVEXEC__MAX_SPIN_US 1000
#define EVEXEC__ADAPTIVE_SPIN_US 50  /* spin_us 0: the longest adaptive spin */
#define EVEXEC__SPIN_BACKOFF_MAX 8   /* after misses, sleep up to 2^8 waits */
#define EVEXEC__SPIN_PATIENCE 64     /* turns an adaptive spinner waits
                                        for a spinner to stop */
#define EVEXEC__MIN_STACK ((size_t)16384)        /* PTHREAD_STACK_MIN on Linux */
#define EVEXEC__MAX_STACK ((size_t)1 << 30)
#define EVEXEC__START_FANOUT 2     /* workers a new worker starts at most */

/* A lane: the ring of owners that have jobs queued in it, served in turn,
 * how many jobs it holds in all, and its cap.  Lanes 0 (default) and 1
 * (slow) exist from the start; evexec_pool_add_lane() sets up the next
 * one under pool->lock and only then publishes it (pool->nlanes, release).
 * The settings (cap, max_queued, affine, name) are set once then. */
struct evexec__lane {
    struct evexec__pool_olane *head, *tail;
    size_t len;
    unsigned running;            /* its jobs taken and not yet returned */
    unsigned cap;                /* most running at once; 0: no cap of
                                    its own (the default lane: the
                                    threads bound it) */
    unsigned extra;              /* running given-up jobs (deadlines):
                                    they hold threads beyond the cap */
    size_t max_queued;           /* 0: unbounded */
    unsigned char affine;        /* served by one thread of its own */
    unsigned char affine_up;     /* that thread started and not exited */
    unsigned affine_waiting;     /* it waits on cv */
    pthread_cond_t cv;           /* affine lanes only */
    char name[16];
};

struct evexec_pool {
    pthread_mutex_t lock;
    pthread_cond_t work_cv;      /* waiting workers */
    pthread_cond_t exit_cv;      /* shutdown(WAIT) and free */
    struct evexec__lane q[EVEXEC_MAX_LANES];   /* by lane number */
    atomic_uint nlanes;          /* lanes set up: only grows (see above) */
    unsigned next_lane;          /* where the turn of lanes 1.. goes on */
    size_t queued;               /* jobs queued, all lanes */
    unsigned affine_alive;       /* affine lanes' threads, till exited */
    atomic_uint direct_lanes;    /* bit per lane whose jobs must be queued
                                    at submission (bounded or affine): a
                                    loop's batch never holds them */
    struct evexec__pool_owner anon;  /* jobs submitted with no owner */
    unsigned nthreads;           /* alive */
    unsigned starting;           /* made, not yet at their first look at
                                    the queue: one of them starts more */
    unsigned exiting;            /* left the counts, running thread_exit */
    unsigned free_threads;       /* alive and not running a job */
    unsigned waiting;            /* in cond_wait on work_cv */
    unsigned max_threads, min_threads;
    unsigned extra;              /* running jobs past their deadline: they
                                    hold threads beyond max_threads */
    unsigned idle_timeout_ms;
    uint64_t cancelled, started;
    uint64_t taken;              /* jobs ever taken by a worker */
    atomic_uint_fast64_t completed;  /* counted before the loop can see it */
    atomic_int shutdown;         /* refuses new work; written under lock,
                                    read without it by evexec__pool_is_shutdown */
    atomic_int cancel_running;   /* shutdown(CANCEL): running jobs see
                                    evexec_job_cancelled(); set once, read
                                    by workers without the lock */
    int spawn_errno;             /* last pthread_create failure */
    struct evexec__thread *exited;   /* to be joined */
    unsigned spin_us;            /* spin before sleeping; 0: never */
    int spin_adaptive;           /* spin_us was 0: only while it pays */
    unsigned spinning;           /* workers spinning: a submission wakes
                                    no sleeper for a job they take */
    struct evexec__hold *holds;  /* every shared worker's (see Holding) */
    unsigned holding;            /* of them with n > 0 */
    atomic_uint submits;         /* bumped (under lock) by every submission:
                                    what a spinning worker watches */
    char name[16];
    void (*thread_init)(void *);
    void *(*thread_start)(void *);
    void (*thread_exit)(void *, void *);
    void *thread_init_arg;
    size_t stack_size;           /* each worker's; never 0 */
    unsigned fork_gen;           /* made in this fork generation; set once */
    struct evexec__pstats st;    /* lane histograms, running jobs (stats.h) */
};

/* A pool made before this process forked: its threads are the parent's
 * and its lock may be held by one of them, so it is never locked here. */
static int inherited(const struct evexec_pool *pool)
{
    return pool->fork_gen != evexec__fork_generation();
}

/* A worker's handle, kept for pthread_join. */
struct evexec__thread {
    struct evexec__thread *next;
    struct evexec_pool *pool;
    pthread_t tid;
    unsigned long serial;          /* 1, 2, ...: its name's suffix */
    struct evexec__lane *affine;   /* the affine lane it serves, or NULL */
};

/* The jobs a worker holds (see Holding above).  On the worker's stack,
 * on pool->holds from its start to its exit.  `n`, `owner` and the
 * links: pool->lock.  `job[i]`: set under pool->lock by the holder,
 * emptied by an atomic exchange (the holder's without the lock). */
#define EVEXEC__HOLD_MAX 8

struct evexec__hold {
    struct evexec__hold *prev, *next;
    unsigned n;                                    /* slots filled last */
    atomic_int yield;            /* another owner's job came: give the
                                    rest back (set under pool->lock) */
    const struct evexec__pool_owner *owner;        /* of every held job:
                                                      one owner's backlog */
    _Atomic(struct evexec_job *) job[EVEXEC__HOLD_MAX];
};

/* The pool whose worker this thread is: EDEADLK, and cancelling shutdown. */
static _Thread_local struct evexec_pool *evexec__current_pool;
/* What the pool's thread_start returned in this worker. */
static _Thread_local void *worker_state;

struct evexec_pool *evexec__worker_pool(void)
{
    return evexec__current_pool;
}

EVEXEC_API void *evexec_job_thread_state(const struct evexec_job *job)
{
    if (!job || evexec__current_pool == NULL)
        return NULL;
    return worker_state;
}

int evexec__worker_cancelling(void)
{
    struct evexec_pool *pool = evexec__current_pool;
    return pool && atomic_load_explicit(&pool->cancel_running, memory_order_acquire);
}

/* Tell spinning workers that work arrived.  Caller holds pool->lock, so
 * load and store need not be one atomic step. */
static void bump_submits(struct evexec_pool *pool)
{
    unsigned n = atomic_load_explicit(&pool->submits, memory_order_relaxed);
    atomic_store_explicit(&pool->submits, n + 1, memory_order_relaxed);
}

/* The caps, raised by one for each running job given up at its deadline
 * (evexec__pool_expire).  Caller holds pool->lock. */
static unsigned thread_cap(const struct evexec_pool *pool)
{
    return pool->max_threads + pool->extra;
}

/* Jobs of a lane that may still start now.  Caller holds pool->lock. */
static size_t lane_room(const struct evexec__lane *ln)
{
    if (ln->cap == 0)
        return SIZE_MAX;
    unsigned cap = ln->cap + ln->extra;
    return cap > ln->running ? cap - ln->running : 0;
}

/* 1 if a job of ln given up at its deadline frees its place under the
 * lane's cap: the default and slow lanes, shares of the pool.  A declared
 * lane keeps counting it (cap 1 guards a library that is not thread-safe);
 * the pool still starts a thread in its place for the other lanes. */
static int lane_gives_way(const struct evexec_pool *pool, const struct evexec__lane *ln)
{
    return ln <= &pool->q[EVEXEC_LANE_SLOW];
}

/* Lanes set up.  Any thread; only grows. */
static unsigned lanes_of(const struct evexec_pool *pool)
{
    return atomic_load_explicit(&pool->nlanes, memory_order_acquire);
}

/* 1 if one more thread may start: workers running thread_exit still
 * count, so max_threads bounds the threads (and per-worker states) alive.
 * Caller holds pool->lock. */
static int may_spawn(const struct evexec_pool *pool)
{
    return pool->nthreads + pool->exiting < thread_cap(pool);
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* Jobs a free shared worker could take now (affine lanes have their own
 * thread).  Caller holds pool->lock. */
static size_t runnable(const struct evexec_pool *pool)
{
    size_t n = 0;
    for (unsigned i = 0, nl = lanes_of(pool); i < nl; i++) {
        const struct evexec__lane *ln = &pool->q[i];
        if (!ln->affine && ln->len)
            n += min_size(ln->len, lane_room(ln));
    }
    return n;
}

/* Threads that would take a job at once: free ones, and those that may
 * still be started.  Caller holds pool->lock.  No wrap: free_threads <=
 * nthreads, and both stay far below SIZE_MAX. */
static size_t spare_threads(const struct evexec_pool *pool)
{
    unsigned cap = thread_cap(pool), used = pool->nthreads + pool->exiting;
    return (size_t)pool->free_threads + (cap > used ? cap - used : 0);
}

/* Jobs of `lane` that no thread would take at once if `spare` shared
 * threads were free: the default lane goes first, then the other lanes in
 * their order, each up to its room.  An affine lane's own thread takes
 * one if it is free.  Caller holds pool->lock. */
static size_t lane_waiting(const struct evexec_pool *pool, int lane, size_t spare)
{
    const struct evexec__lane *ln = &pool->q[lane];
    if (ln->affine)
        return ln->len - min_size(ln->len, lane_room(ln));
    for (int i = 0;; i++) {
        const struct evexec__lane *li = &pool->q[i];
        if (li->affine)
            continue;
        size_t take = min_size(min_size(li->len, lane_room(li)), spare);
        if (i == lane)
            return li->len - take;
        spare -= take;
    }
}

/* ---- the lanes: a ring of owners, each with its FIFO ------------------ */

static inline void ring_append(struct evexec__lane *ln, struct evexec__pool_olane *ol)
{
    EVEXEC__DLIST_APPEND(ln->head, ln->tail, ol, rprev, rnext);
}

static inline void ring_remove(struct evexec__lane *ln, struct evexec__pool_olane *ol)
{
    EVEXEC__DLIST_UNLINK(ln->head, ln->tail, ol, rprev, rnext);
}

static void hold_newcomer(struct evexec_pool *pool,
                          const struct evexec__pool_owner *owner);

/* An owner that had no job queued in a lane joins the back of its ring.
 * A newcomer to the default lane makes workers that hold another owner's
 * jobs give the rest back, so that it waits for at most one job per busy
 * worker, as without holding.  Caller holds pool->lock. */
static inline void ring_join(struct evexec_pool *pool, int lane,
                             struct evexec__pool_olane *ol,
                             const struct evexec__pool_owner *owner)
{
    ring_append(&pool->q[lane], ol);
    if (pool->holding && lane == EVEXEC_LANE_DEFAULT)
        hold_newcomer(pool, owner);
}

/* The FIFO `job` goes on or is on.  Caller holds pool->lock. */
static inline struct evexec__pool_olane *olane_of(struct evexec_pool *pool,
                                           const struct evexec_job *job)
{
    struct evexec__pool_owner *o = job->owner ? job->owner : &pool->anon;
    return &o->lane[job->lane];
}

/* Queue `job` at the back of its owner's FIFO; an owner that had none
 * queued in this lane joins the back of the ring.  Caller holds pool->lock. */
static inline void lane_push(struct evexec_pool *pool, struct evexec_job *job)
{
    struct evexec__lane *ln = &pool->q[job->lane];
    struct evexec__pool_olane *ol = olane_of(pool, job);
    if (ol->q.len == 0)
        ring_join(pool, job->lane, ol, job->owner);
    evexec__jobq_push(&ol->q, job);
    ln->len++;
    pool->queued++;
    job->qstate = EVEXEC__Q_QUEUED;
}

/* Take a queued `job` off its lane.  Caller holds pool->lock. */
static void lane_unlink(struct evexec_pool *pool, struct evexec_job *job)
{
    struct evexec__lane *ln = &pool->q[job->lane];
    struct evexec__pool_olane *ol = olane_of(pool, job);
    evexec__jobq_unlink(&ol->q, job);
    ln->len--;
    pool->queued--;
    if (ol->q.len == 0)
        ring_remove(ln, ol);
}

/* The next job of a lane: the oldest of the owner at the head of the
 * ring, which then goes to the back of the ring if it has more (one job
 * per owner in turn).  Caller holds pool->lock; the lane is not empty. */
static inline struct evexec_job *lane_take(struct evexec__lane *ln)
{
    struct evexec__pool_olane *ol = ln->head;
    struct evexec_job *job = ol->q.head;
    evexec__jobq_unlink(&ol->q, job);
    ln->len--;
    if (ol->q.len == 0) {
        ring_remove(ln, ol);
    } else if (ol->rnext) {
        ln->head = ol->rnext;
        ln->head->rprev = NULL;
        ol->rprev = ln->tail;
        ol->rnext = NULL;
        ln->tail->rnext = ol;
        ln->tail = ol;
    }
    return job;
}

/* 1 if a shared worker may take a job of ln now. */
static int lane_ready(const struct evexec__lane *ln)
{
    return ln->len && !ln->affine && lane_room(ln);
}

/* The lane a shared worker serves when the default lane is empty: the
 * next lane in turn after the one served last that has jobs below its
 * cap; NULL if none.  Caller holds pool->lock. */
static struct evexec__lane *next_lane(struct evexec_pool *pool)
{
    unsigned nl = lanes_of(pool), n = nl - 1;   /* lanes 1..nl-1 */
    unsigned at = pool->next_lane % n;
    for (unsigned k = 0; k < n; k++, at = (at + 1) % n) {
        struct evexec__lane *ln = &pool->q[1 + at];
        if (lane_ready(ln)) {
            pool->next_lane = at + 1;
            return ln;
        }
    }
    return NULL;
}

/* Take the next job for a worker (a shared one for affine NULL, else the
 * thread of that affine lane).  Caller holds pool->lock. */
static struct evexec_job *take(struct evexec_pool *pool, struct evexec__lane *affine)
{
    struct evexec__lane *ln;
    if (affine)
        ln = affine->len ? affine : NULL;
    else if (pool->q[EVEXEC_LANE_DEFAULT].len)   /* first, and uncapped */
        ln = &pool->q[EVEXEC_LANE_DEFAULT];
    else
        ln = next_lane(pool);
    if (!ln)
        return NULL;
    struct evexec_job *job = lane_take(ln);
    pool->queued--;
    ln->running++;
    job->qstate = EVEXEC__Q_RUNNING;
    if (!affine)
        pool->free_threads--;
    pool->taken++;
    return job;
}

/* ---- holding (see Holding above) ---------------------------------------- */

static int no_deadline(const struct evexec_job *job)
{
    return atomic_load_explicit(&job->expired, memory_order_relaxed) == EVEXEC__EXP_NEVER;
}

/* A shared worker's hold joins the pool's list (start) or leaves it
 * (exit, empty).  Caller holds pool->lock. */
static void hold_link(struct evexec_pool *pool, struct evexec__hold *h)
{
    h->prev = NULL;
    h->next = pool->holds;
    if (pool->holds)
        pool->holds->prev = h;
    pool->holds = h;
}

static void hold_unlink(struct evexec_pool *pool, struct evexec__hold *h)
{
    struct evexec__hold *no_tail = NULL;    /* the list keeps no tail */
    EVEXEC__DLIST_UNLINK(pool->holds, no_tail, h, prev, next);
    (void)no_tail;
}

/* After taking `first`, take up to EVEXEC__HOLD_MAX more jobs of the
 * default lane into h, when the pool allows it: every thread busy, a
 * backlog of one owner's jobs alone; returns how many.  Caller holds
 * pool->lock. */
static unsigned hold_more(struct evexec_pool *pool, struct evexec__hold *h,
                          const struct evexec_job *first)
{
    struct evexec__lane *ln = &pool->q[EVEXEC_LANE_DEFAULT];
    if (first->lane != EVEXEC_LANE_DEFAULT || ln->len < 2 * pool->nthreads ||
        ln->head != ln->tail || pool->waiting || pool->spinning || pool->starting ||
        pool->exiting || may_spawn(pool) || pool->st.timing || pool->st.watched ||
        pool->shutdown || !no_deadline(first))
        return 0;
    size_t most = min_size(ln->len / pool->nthreads, EVEXEC__HOLD_MAX);
    unsigned n = 0;
    while (n < most) {
        struct evexec_job *job = ln->head->q.head;     /* lane_take's next */
        if (!no_deadline(job))
            break;
        lane_take(ln);
        pool->queued--;
        ln->running++;
        job->qstate = EVEXEC__Q_RUNNING;
        pool->taken++;
        pool->st.taken[EVEXEC_LANE_DEFAULT]++;
        h->owner = job->owner;          /* the same for all: one owner */
        atomic_store_explicit(&h->job[n], job, memory_order_relaxed);
        n++;
    }
    if (n) {
        h->n = n;
        pool->holding++;
    }
    return n;
}

/* The holder is back: its slots are all empty now.  Caller holds
 * pool->lock; `ran` of them it ran itself. */
static void hold_done(struct evexec_pool *pool, struct evexec__hold *h, unsigned ran)
{
    if (h->n) {
        h->n = 0;
        pool->holding--;
        pool->q[EVEXEC_LANE_DEFAULT].running -= ran;
        atomic_store_explicit(&h->yield, 0, memory_order_relaxed);
    }
}

/* Take slot i of h if it still holds a job.  Caller holds pool->lock. */
static struct evexec_job *hold_claim(struct evexec__hold *h, unsigned i)
{
    if (atomic_load_explicit(&h->job[i], memory_order_relaxed) == NULL)
        return NULL;
    return atomic_exchange_explicit(&h->job[i], NULL, memory_order_acq_rel);
}

/* A held job taken from its holder ends unrun, as a queued job taken off
 * its lane does.  Caller holds pool->lock. */
static void unheld(struct evexec_pool *pool, struct evexec_job *job)
{
    pool->q[EVEXEC_LANE_DEFAULT].running--;
    pool->taken--;
    pool->st.taken[EVEXEC_LANE_DEFAULT]--;
    pool->cancelled++;
    pool->st.cancelled[EVEXEC_LANE_DEFAULT]++;
    job->qnext = job->qprev = NULL;
    job->qstate = EVEXEC__Q_REMOVED;
}

static void hold_newcomer(struct evexec_pool *pool,
                          const struct evexec__pool_owner *owner)
{
    for (struct evexec__hold *h = pool->holds; h; h = h->next)
        if (h->n && h->owner != owner)
            atomic_store_explicit(&h->yield, 1, memory_order_relaxed);
}

/* The holder gives its slots from `from` on back: those nobody took go
 * back to the front of their owner's FIFO, in their order, queued again.
 * Caller holds pool->lock. */
static void hold_give_back(struct evexec_pool *pool, struct evexec__hold *h,
                           unsigned from)
{
    struct evexec__lane *ln = &pool->q[EVEXEC_LANE_DEFAULT];
    for (unsigned i = h->n; i-- > from;) {
        struct evexec_job *job = hold_claim(h, i);
        if (!job)
            continue;
        struct evexec__pool_olane *ol = olane_of(pool, job);
        if (ol->q.len == 0)
            ring_append(ln, ol);
        evexec__jobq_push_front(&ol->q, job);
        ln->len++;
        ln->running--;
        pool->queued++;
        pool->taken--;
        pool->st.taken[EVEXEC_LANE_DEFAULT]--;
        job->qstate = EVEXEC__Q_QUEUED;
    }
}

/* A shared worker with nothing queued to take runs a job another worker
 * holds: the oldest slot of the first holder found.  Counted as taken
 * when it was held.  Caller holds pool->lock. */
static struct evexec_job *hold_steal(struct evexec_pool *pool)
{
    if (pool->holding == 0)
        return NULL;
    for (struct evexec__hold *h = pool->holds; h; h = h->next)
        for (unsigned i = 0; i < h->n; i++) {
            struct evexec_job *job = hold_claim(h, i);
            if (job) {
                pool->free_threads--;
                pool->st.taken[EVEXEC_LANE_DEFAULT]--;  /* stats_take counts it */
                return job;
            }
        }
    return NULL;
}

/* Take `job` back from the worker that holds it; 1 if it was held.
 * Caller holds pool->lock; the job is the caller's to end. */
static int unhold_job(struct evexec_pool *pool, struct evexec_job *job)
{
    if (pool->holding == 0)
        return 0;
    for (struct evexec__hold *h = pool->holds; h; h = h->next)
        for (unsigned i = 0; i < h->n; i++)
            if (atomic_load_explicit(&h->job[i], memory_order_relaxed) == job &&
                hold_claim(h, i) == job) {
                unheld(pool, job);
                return 1;
            }
    return 0;
}

/* Take back every held job of `owner` (all for NULL) and chain them at
 * *tail through qnext; returns the new tail.  Caller holds pool->lock. */
static struct evexec_job **unhold_matching(struct evexec_pool *pool,
                                           const struct evexec__pool_owner *owner,
                                           struct evexec_job **tail)
{
    if (pool->holding == 0)
        return tail;
    for (struct evexec__hold *h = pool->holds; h; h = h->next)
        for (unsigned i = 0; i < h->n; i++) {
            struct evexec_job *job;
            if ((owner && h->owner != owner) || !(job = hold_claim(h, i)))
                continue;
            unheld(pool, job);
            *tail = job;
            tail = &job->qnext;
        }
    return tail;
}

static void name_thread(const struct evexec_pool *pool, unsigned long n)
{
#ifdef HAVE_PTHREAD_SETNAME_NP
    char name[48];
    snprintf(name, sizeof name, "%s-%lu", pool->name, n);
    name[15] = '\0';   /* the kernel keeps 15 bytes */
    pthread_setname_np(pthread_self(), name);
#else
    (void)pool;
    (void)n;
#endif
}

static void deadline_after(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    evexec__timespec_add(ts, (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L);
}

/* What a spinning worker watches: the submission counter moving on. */
struct submits_watch {
    const atomic_uint *submits;
    unsigned seen;
};

static int submits_moved(const void *arg)
{
    const struct submits_watch *w = arg;
    return atomic_load_explicit(w->submits, memory_order_acquire) != w->seen;
}

static int spawn(struct evexec_pool *pool);
static int spawn_one(struct evexec_pool *pool, struct evexec__lane *affine,
                     int drop_lock);
static void start_more(struct evexec_pool *pool);
static void spin_slots_init(void);

/* Wait for work, as a shared worker or an affine lane's thread.  Returns
 * 1 if the worker should exit (idle past idle_timeout_ms above
 * min_threads; shared workers only).  Caller holds pool->lock. */
static int wait_work(struct evexec_pool *pool, struct evexec__lane *affine)
{
    if (affine) {
        affine->affine_waiting++;
        pthread_cond_wait(&affine->cv, &pool->lock);
        affine->affine_waiting--;
        return 0;
    }
    pool->waiting++;
    if (pool->nthreads > pool->min_threads && !pool->shutdown) {
        struct timespec ts;
        deadline_after(&ts, pool->idle_timeout_ms);
        int rc = pthread_cond_timedwait(&pool->work_cv, &pool->lock, &ts);
        pool->waiting--;
        return rc == ETIMEDOUT && runnable(pool) == 0 &&
               pool->nthreads > pool->min_threads;
    }
    pthread_cond_wait(&pool->work_cv, &pool->lock);
    pool->waiting--;
    return 0;
}

/* A worker leaves the counts: shared workers nthreads and free_threads,
 * an affine lane's thread its lane.  Caller holds pool->lock. */
static void leave_counts(struct evexec_pool *pool, struct evexec__lane *affine)
{
    if (affine) {
        affine->affine_up = 0;
        return;
    }
    pool->nthreads--;
    pool->free_threads--;
}

static void *worker_main(void *arg)
{
    struct evexec__thread *self = arg;
    struct evexec_pool *pool = self->pool;
    struct evexec__lane *affine = self->affine;
    struct evexec_job *job = NULL;
    int spun = 0;
    struct evexec__spinner spinner;
    struct evexec__wslot slot;   /* what this worker runs (stats.h) */
    struct evexec__hold hold;    /* jobs it took to run after this one */

    evexec__current_pool = pool;
    evexec__spinner_init(&spinner, pool);
    name_thread(pool, self->serial);
again:
    if (!affine) {
        pthread_mutex_lock(&pool->lock);
        pool->starting--;
        start_more(pool);
        pthread_mutex_unlock(&pool->lock);
    }
    if (pool->thread_init)
        pool->thread_init(pool->thread_init_arg);
    if (pool->thread_start)
        worker_state = pool->thread_start(pool->thread_init_arg);

    pthread_mutex_lock(&pool->lock);
    evexec__wslot_link(&pool->st, &slot);
    memset(&hold, 0, sizeof hold);
    if (!affine)
        hold_link(pool, &hold);
    for (;;) {
        job = take(pool, affine);
        if (!job && !affine)
            job = hold_steal(pool);
        if (job) {
            spun = 0;
            uint64_t t0 = evexec__stats_take(&pool->st, &slot, job);
            unsigned nheld = affine ? 0 : hold_more(pool, &hold, job);
            pthread_mutex_unlock(&pool->lock);
            struct evexec__lane *ln = &pool->q[job->lane];
            evexec__pool_client.run(job);
            evexec__stats_ran(&pool->st, job->lane, t0);
            /* Given up at its deadline meanwhile?  The loop counted it in
             * `extra`; from now on it will not. */
            int expired =
                atomic_load_explicit(&job->expired, memory_order_relaxed) !=
                    EVEXEC__EXP_NEVER &&
                atomic_exchange_explicit(&job->expired, EVEXEC__EXP_DONE,
                                         memory_order_acq_rel) == EVEXEC__EXP_GIVEN_UP;
            atomic_fetch_add_explicit(&pool->completed, 1, memory_order_relaxed);
            evexec__pool_client.complete(job, 1);   /* the job may be gone */
            /* The jobs it holds, those nobody took back meanwhile. */
            unsigned ran = 0;
            for (unsigned i = 0; i < nheld; i++) {
                if (atomic_load_explicit(&hold.yield, memory_order_relaxed)) {
                    pthread_mutex_lock(&pool->lock);
                    hold_give_back(pool, &hold, i);
                    pthread_mutex_unlock(&pool->lock);
                    break;
                }
                struct evexec_job *held =
                    atomic_exchange_explicit(&hold.job[i], NULL, memory_order_acq_rel);
                if (!held)
                    continue;
                evexec__pool_client.run(held);
                evexec__stats_ran(&pool->st, EVEXEC_LANE_DEFAULT, 0);
                atomic_fetch_add_explicit(&pool->completed, 1, memory_order_relaxed);
                evexec__pool_client.complete(held, 1);
                ran++;
            }
            pthread_mutex_lock(&pool->lock);
            hold_done(pool, &hold, ran);
            slot.busy = 0;
            if (!affine)
                pool->free_threads++;
            ln->running--;
            if (expired) {
                pool->extra--;
                if (lane_gives_way(pool, ln))
                    ln->extra--;
            }
            continue;
        }
        if (pool->shutdown && (affine ? affine->len : pool->queued) == 0)
            break;
        /* Busy: the threads running jobs, and a submitter.  An affine
         * lane's thread never spins. */
        if (!affine && !spun && !pool->shutdown &&
            evexec__spin_begin(&spinner, pool->nthreads - pool->free_threads + 1)) {
            struct submits_watch w = {
                &pool->submits,
                atomic_load_explicit(&pool->submits, memory_order_relaxed),
            };
            pool->spinning++;
            pthread_mutex_unlock(&pool->lock);
            evexec__spin_run(&spinner, submits_moved, &w);
            pthread_mutex_lock(&pool->lock);
            pool->spinning--;
            spun = 1;       /* look again (work? shutdown?), then sleep */
            continue;
        }
        spun = 0;
        if (wait_work(pool, affine))
            break;
    }
    leave_counts(pool, affine);
    evexec__wslot_unlink(&pool->st, &slot);
    if (!affine)
        hold_unlink(pool, &hold);
    if (pool->thread_exit && affine) {
        /* Only at shutdown: no thread starts in its place. */
        pthread_mutex_unlock(&pool->lock);
        pool->thread_exit(pool->thread_init_arg, worker_state);
        pthread_mutex_lock(&pool->lock);
    } else if (pool->thread_exit) {
        /* Gone from the counts, so a job submitted meanwhile gets a new
         * thread; shutdown(WAIT) and free still wait for this one. */
        pool->exiting++;
        pthread_mutex_unlock(&pool->lock);
        pool->thread_exit(pool->thread_init_arg, worker_state);
        pthread_mutex_lock(&pool->lock);
        pool->exiting--;
        /* A job that came meanwhile found no thread to start (this one
         * still counted): start it one now.  If none can be made and no
         * other thread is left to run it, this one starts again in its
         * place (thread_init and thread_start run again), or the job
         * would wait for ever. */
        if (runnable(pool) > pool->free_threads && may_spawn(pool) &&
            spawn(pool) != 0 && pool->nthreads == 0 && pool->exiting == 0) {
            pool->nthreads++;
            pool->free_threads++;
            pool->starting++;
            pthread_mutex_unlock(&pool->lock);
            goto again;
        }
    }
    if (affine)
        pool->affine_alive--;
    worker_state = NULL;
    self->next = pool->exited;
    pool->exited = self;
    /* Wakes shutdown(WAIT)/free, and waiting peers that may now exit. */
    pthread_cond_broadcast(&pool->exit_cv);
    if (pool->shutdown)
        pthread_cond_broadcast(&pool->work_cv);
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

/* Take the workers that have exited, to join.  Caller holds pool->lock. */
static struct evexec__thread *take_exited(struct evexec_pool *pool)
{
    struct evexec__thread *t = pool->exited;
    pool->exited = NULL;
    return t;
}

/* Join what take_exited() gave.  Without pool->lock: an exiting thread
 * still runs its thread-exit destructors, which may use the pool. */
static void join_exited(struct evexec__thread *t)
{
    while (t) {
        struct evexec__thread *next = t->next;
        pthread_join(t->tid, NULL);
        free(t);
        t = next;
    }
}

/* Start one worker: a shared one (affine NULL) or the thread of an
 * affine lane.  Caller holds pool->lock; with drop_lock (shared workers
 * only) it is released while the thread is made (other workers take jobs
 * meanwhile) and taken again.  The thread is counted, alive and free,
 * before it is made, and uncounted if it cannot be.  Returns 0 or an
 * errno. */
static int spawn_one(struct evexec_pool *pool, struct evexec__lane *affine,
                     int drop_lock)
{
    struct evexec__thread *t = evexec__malloc(sizeof *t);
    if (!t) {
        pool->spawn_errno = ENOMEM;
        return ENOMEM;
    }
    t->pool = pool;
    t->affine = affine;
    t->serial = (unsigned long)++pool->started;
    if (affine) {
        affine->affine_up = 1;
        pool->affine_alive++;
    } else {
        pool->nthreads++;
        pool->free_threads++;
        pool->starting++;
    }
    if (drop_lock)
        pthread_mutex_unlock(&pool->lock);
    int rc = evexec__thread_create(&t->tid, worker_main, t, pool->stack_size);
    if (drop_lock)
        pthread_mutex_lock(&pool->lock);
    if (rc) {
        pool->started--;
        if (affine) {
            affine->affine_up = 0;
            pool->affine_alive--;
        } else {
            pool->nthreads--;
            pool->free_threads--;
            pool->starting--;
        }
        pool->spawn_errno = rc;
        free(t);
        return rc;
    }
    return 0;
}

/* Start one shared worker.  Caller holds pool->lock. */
static int spawn(struct evexec_pool *pool)
{
    return spawn_one(pool, NULL, 0);
}

/* A new worker starts the next ones the queue wants, up to
 * EVEXEC__START_FANOUT, before its own first job; each of those does the
 * same.  So a burst's threads start as a tree, several at a time, and
 * not one after another under the submitter's lock: a submission starts
 * a thread only while none is starting.  Caller holds pool->lock. */
static void start_more(struct evexec_pool *pool)
{
    for (int i = 0; i < EVEXEC__START_FANOUT && !pool->shutdown &&
                    runnable(pool) > pool->free_threads && may_spawn(pool); i++)
        if (spawn_one(pool, NULL, 1) != 0)
            break;
}

static unsigned default_max_threads(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1)
        cpus = 1;
    return cpus + 4 < 32 ? (unsigned)cpus + 4 : 32;
}

/* 1 if threads can be made with this stack size here: where the system's
 * minimum is above EVEXEC__MIN_STACK (glibc on some architectures), the
 * pool refuses it at once instead of every thread failing later. */
static int stack_size_ok(size_t size)
{
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return 1;           /* thread creation reports it */
    int rc = pthread_attr_setstacksize(&attr, size);
    pthread_attr_destroy(&attr);
    return rc == 0;
}

EVEXEC_API struct evexec_pool *evexec_pool_new(const struct evexec_pool_config *user_cfg)
{
    struct evexec_pool_config c;
    const struct evexec_pool_config *cfg = &c;
    if (evexec__read_struct(&c, sizeof c, user_cfg, EVEXEC__POOL_CONFIG_SIZE_1_0) != 0) {
        errno = EINVAL;
        return NULL;
    }
    unsigned max = cfg->max_threads ? cfg->max_threads : default_max_threads();
    if (max > EVEXEC__MAX_THREADS_LIMIT || cfg->min_threads > max ||
        (cfg->spin_us > EVEXEC__MAX_SPIN_US && cfg->spin_us != EVEXEC_SPIN_OFF) ||
        cfg->slow_max_threads > max ||
        (cfg->stack_size && (cfg->stack_size < EVEXEC__MIN_STACK ||
                             cfg->stack_size > EVEXEC__MAX_STACK)) ||
        !stack_size_ok(cfg->stack_size ? cfg->stack_size : EVEXEC_STACK_SIZE_DEFAULT)) {
        errno = EINVAL;
        return NULL;
    }
    int rc;
    struct evexec_pool *pool = evexec__calloc(1, sizeof *pool);
    if (!pool) {
        errno = ENOMEM;
        return NULL;
    }
    pthread_condattr_t ca;
    pthread_mutexattr_t ma;
    if (pthread_mutexattr_init(&ma) != 0)
        goto fail_mutex;
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
    /* Critical sections are a few dozen instructions: spin briefly before
     * sleeping in the kernel. */
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
    rc = pthread_mutex_init(&pool->lock, &ma);
    pthread_mutexattr_destroy(&ma);
    if (rc != 0)
        goto fail_mutex;
    if (pthread_condattr_init(&ca) != 0)
        goto fail_cond;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    rc = pthread_cond_init(&pool->work_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc)
        goto fail_cond;
    if (pthread_cond_init(&pool->exit_cv, NULL) != 0) {
        pthread_cond_destroy(&pool->work_cv);
        goto fail_cond;
    }
    pool->max_threads = max;
    pool->min_threads = cfg->min_threads;
    pool->q[EVEXEC_LANE_SLOW].cap = cfg->slow_max_threads ? cfg->slow_max_threads
                                                          : (max / 2 ? max / 2 : 1);
    strcpy(pool->q[EVEXEC_LANE_DEFAULT].name, "default");
    strcpy(pool->q[EVEXEC_LANE_SLOW].name, "slow");
    pool->q[EVEXEC_LANE_DEFAULT].max_queued = cfg->max_queued;
    pool->q[EVEXEC_LANE_SLOW].max_queued = cfg->max_queued;
    atomic_init(&pool->nlanes, 2);
    atomic_init(&pool->direct_lanes, cfg->max_queued ? 3u : 0u);
    pool->idle_timeout_ms = cfg->idle_timeout_ms ? cfg->idle_timeout_ms
                                                 : EVEXEC__DEFAULT_IDLE_MS;
    /* Keep room for "-N" so the prefix survives the 15-byte limit. */
    snprintf(pool->name, 12, "%s", cfg->thread_name ? cfg->thread_name : "evexec");
    pool->spin_adaptive = cfg->spin_us == 0;
    pool->spin_us = cfg->spin_us == EVEXEC_SPIN_OFF ? 0
                  : cfg->spin_us ? cfg->spin_us : EVEXEC__ADAPTIVE_SPIN_US;
    spin_slots_init();
    pool->thread_init = cfg->thread_init;
    pool->thread_start = cfg->thread_start;
    pool->thread_exit = cfg->thread_exit;
    pool->thread_init_arg = cfg->thread_init_arg;
    pool->stack_size = cfg->stack_size ? cfg->stack_size : EVEXEC_STACK_SIZE_DEFAULT;
    pool->st.timing = cfg->timing != 0;
    pool->fork_gen = evexec__fork_init();
    return pool;

fail_cond:
    pthread_mutex_destroy(&pool->lock);
fail_mutex:
    free(pool);
    errno = ENOMEM;
    return NULL;
}

/* An affine lane got a job: start its thread, or wake it.  Caller holds
 * pool->lock.  Returns 0 or spawn()'s error. */
static int affine_kick(struct evexec_pool *pool, struct evexec__lane *ln)
{
    if (!ln->affine_up)
        return spawn_one(pool, ln, 0);
    if (ln->affine_waiting)
        pthread_cond_signal(&ln->cv);
    return 0;
}

/* Queue one job.  Caller holds pool->lock; the pool takes work. */
static int submit_locked(struct evexec_pool *pool, struct evexec_job *job)
{
    int lane = job->lane;
    struct evexec__lane *ln = &pool->q[lane];

    /* max_queued counts this lane's jobs that will wait; a job a spare
     * thread takes at once does not wait.  Full when it already has
     * max_queued waiting (then this one would wait too). */
    if (ln->max_queued &&
        lane_waiting(pool, lane, spare_threads(pool)) >= ln->max_queued)
        return EAGAIN;
    if (ln->affine) {
        lane_push(pool, job);
        if (affine_kick(pool, ln) != 0) {
            lane_unlink(pool, job);
            job->qstate = EVEXEC__Q_NEW;
            return EAGAIN;
        }
        return 0;
    }
    lane_push(pool, job);
    bump_submits(pool);
    /* runnable() <= queued: count it only when a thread may be wanted.
     * A submission starts a thread only while none is starting (a new
     * worker starts the next ones itself, start_more). */
    if (pool->starting == 0 && may_spawn(pool) && pool->queued > pool->free_threads &&
        runnable(pool) > pool->free_threads &&
        spawn(pool) != 0 &&
        /* The thread counted on above cannot be made: refuse the job if
         * nothing would ever run it, or if it now waits beyond the bound. */
        ((pool->nthreads == 0 && pool->exiting == 0) ||
         (ln->max_queued &&
          lane_waiting(pool, lane, pool->free_threads) > ln->max_queued))) {
        lane_unlink(pool, job);
        job->qstate = EVEXEC__Q_NEW;
        return EAGAIN;
    }
    /* A waiting worker can take this job now if its lane has room, and
     * no spinning worker will take it first. */
    if (pool->waiting > 0 && lane_room(ln) > 0 &&
        (pool->spinning == 0 || runnable(pool) > pool->spinning))
        pthread_cond_signal(&pool->work_cv);
    return 0;
}

/* Wake every waiting worker, shared and affine (shutdown).  Caller holds
 * pool->lock. */
static void wake_all(struct evexec_pool *pool)
{
    pthread_cond_broadcast(&pool->work_cv);
    for (unsigned i = 2, nl = lanes_of(pool); i < nl; i++)
        if (pool->q[i].affine)
            pthread_cond_broadcast(&pool->q[i].cv);
}

/* Wake up to `n` waiting workers.  Caller holds pool->lock. */
static void signal_workers(struct evexec_pool *pool, size_t n)
{
    if (n >= pool->waiting) {
        if (pool->waiting > 0)
            pthread_cond_broadcast(&pool->work_cv);
        return;
    }
    while (n-- > 0)
        pthread_cond_signal(&pool->work_cv);
}

/* Queue a chain of jobs, none of a direct lane (evexec__pool_lane_direct).
 * Caller holds pool->lock; the pool takes work. */
static int submit_batch_locked(struct evexec_pool *pool, struct evexec_job *head)
{
    struct evexec_job *job, *next;

    /* Not one thread, and none can be made: nothing would ever run them. */
    if (pool->nthreads == 0 && (pool->exiting == 0 || may_spawn(pool)) &&
        spawn(pool) != 0)
        return EAGAIN;
    /* Mostly one owner's jobs of one lane (a loop's batch): then the
     * chain goes onto the owner's FIFO whole. */
    struct evexec_job *prev = NULL;
    size_t n = 0;
    int one_fifo = 1;
    for (job = head; job; prev = job, job = job->qnext, n++) {
        job->qprev = prev;
        job->qstate = EVEXEC__Q_QUEUED;
        one_fifo &= job->lane == head->lane && job->owner == head->owner;
    }
    if (one_fifo) {
        struct evexec__lane *ln = &pool->q[head->lane];
        struct evexec__pool_olane *ol = olane_of(pool, head);
        if (ol->q.len == 0)
            ring_join(pool, head->lane, ol, head->owner);
        head->qprev = ol->q.tail;
        if (ol->q.tail)
            ol->q.tail->qnext = head;
        else
            ol->q.head = head;
        ol->q.tail = prev;
        ol->q.len += n;
        ln->len += n;
        pool->queued += n;
    } else {
        for (job = head; job; job = next) {
            next = job->qnext;
            lane_push(pool, job);
        }
    }
    bump_submits(pool);
    size_t want = runnable(pool);
    if (want > pool->free_threads && pool->starting == 0 && may_spawn(pool))
        spawn(pool);
    signal_workers(pool, want > pool->spinning ? want - pool->spinning : 0);
    return 0;
}

void evexec__pool_expire(struct evexec_pool *pool, struct evexec_job *job)
{
    if (inherited(pool))
        return;
    pthread_mutex_lock(&pool->lock);
    /* At most max_threads given-up jobs hold extra threads: a storm of
     * stuck jobs cannot make threads without bound. */
    struct evexec__lane *ln = &pool->q[job->lane];
    /* An affine lane's job keeps its thread: nothing can stand in. */
    if (job->qstate == EVEXEC__Q_RUNNING && pool->extra < pool->max_threads &&
        !pool->shutdown && !ln->affine) {
        unsigned char live = EVEXEC__EXP_LIVE;
        if (atomic_compare_exchange_strong_explicit(&job->expired, &live,
                                                    EVEXEC__EXP_GIVEN_UP,
                                                    memory_order_acq_rel,
                                                    memory_order_acquire)) {
            pool->extra++;
            if (lane_gives_way(pool, ln))
                ln->extra++;
            size_t want = runnable(pool);
            while (want > pool->free_threads && may_spawn(pool) &&
                   spawn(pool) == 0)
                continue;
            signal_workers(pool, want);
        }
    }
    pthread_mutex_unlock(&pool->lock);
}

/* A submission: under the lock unless the pool refuses work (shut down,
 * or inherited across fork); workers that exited meanwhile are joined
 * after the lock is released. */
static int submit_with(struct evexec_pool *pool,
                       int (*locked)(struct evexec_pool *, struct evexec_job *),
                       struct evexec_job *job)
{
    if (inherited(pool))
        return ESHUTDOWN;
    pthread_mutex_lock(&pool->lock);
    struct evexec__thread *dead = take_exited(pool);
    int rc = pool->shutdown ? ESHUTDOWN : locked(pool, job);
    pthread_mutex_unlock(&pool->lock);
    join_exited(dead);
    return rc;
}

int evexec__pool_submit(struct evexec_pool *pool, struct evexec_job *job)
{
    evexec__stats_stamp(&pool->st, job, 0);
    return submit_with(pool, submit_locked, job);
}

int evexec__pool_submit_batch(struct evexec_pool *pool, struct evexec_job *head)
{
    evexec__stats_stamp(&pool->st, head, 1);
    return submit_with(pool, submit_batch_locked, head);
}

int evexec__pool_unqueue(struct evexec_pool *pool, struct evexec_job *job)
{
    int removed = 0;
    pthread_mutex_lock(&pool->lock);
    if (job->qstate == EVEXEC__Q_QUEUED) {
        lane_unlink(pool, job);
        job->qstate = EVEXEC__Q_REMOVED;
        pool->cancelled++;
        pool->st.cancelled[job->lane]++;
        removed = 1;
        if (pool->shutdown && pool->queued == 0)
            wake_all(pool);
    } else if (job->qstate == EVEXEC__Q_RUNNING) {
        removed = unhold_job(pool, job);    /* taken, fn not yet called */
    }
    pthread_mutex_unlock(&pool->lock);
    return removed;
}

/* Take all of one owner's queued jobs in one lane off it and chain them
 * at *tail through qnext; returns the new tail.  Caller holds pool->lock. */
static struct evexec_job **unqueue_olane(struct evexec_pool *pool, int lane,
                                         struct evexec__pool_olane *ol,
                                         struct evexec_job **tail)
{
    if (ol->q.len == 0)
        return tail;
    pool->q[lane].len -= ol->q.len;
    pool->queued -= ol->q.len;
    pool->cancelled += ol->q.len;
    pool->st.cancelled[lane] += ol->q.len;
    ring_remove(&pool->q[lane], ol);
    struct evexec_job *job = evexec__jobq_take_all(&ol->q);
    *tail = job;
    for (; job; job = job->qnext) {
        job->qprev = NULL;
        job->qstate = EVEXEC__Q_REMOVED;
        tail = &job->qnext;
    }
    return tail;
}

/* Unlink every queued job of `owner` (all of them for NULL), held ones
 * first (they were queued before the rest), and chain them through
 * qnext.  Caller holds pool->lock. */
static struct evexec_job *unqueue_matching(struct evexec_pool *pool,
                                           struct evexec__pool_owner *owner)
{
    struct evexec_job *out = NULL, **tail = unhold_matching(pool, owner, &out);
    for (int lane = 0, nl = (int)lanes_of(pool); lane < nl; lane++) {
        if (owner) {
            tail = unqueue_olane(pool, lane, &owner->lane[lane], tail);
            continue;
        }
        while (pool->q[lane].head)
            tail = unqueue_olane(pool, lane, pool->q[lane].head, tail);
    }
    if (pool->shutdown && pool->queued == 0)
        wake_all(pool);
    return out;
}

struct evexec_job *evexec__pool_unqueue_owner(struct evexec_pool *pool,
                                              struct evexec__pool_owner *owner)
{
    pthread_mutex_lock(&pool->lock);
    struct evexec_job *out = unqueue_matching(pool, owner);
    pthread_mutex_unlock(&pool->lock);
    return out;
}

/* Adaptive spinning.  Threads of the process that spin now, of all
 * pools and loops, and the online CPUs.  A spinner may start only while
 * the spinners, itself included, and the `busy` threads it knows need a
 * CPU (those that run its jobs, or the one that will submit them) fit in
 * the CPUs: so a spinner never takes the CPU the thread it waits for
 * needs, none spins on one CPU, and none while the workers are all busy
 * (a loop with many jobs in flight).  Spinners with a fixed spin_us are
 * not counted. */
static atomic_uint spinners;
static atomic_uint spin_cpus;

static void spin_slots_init(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    atomic_store_explicit(&spin_cpus, cpus > 1 ? (unsigned)cpus : 1,
                          memory_order_relaxed);
}

void evexec__spinner_init(struct evexec__spinner *s, const struct evexec_pool *pool)
{
    memset(s, 0, sizeof *s);
    s->us = pool->spin_us;          /* set once, before any thread */
    s->adaptive = pool->spin_adaptive != 0;
}

static int take_spin_slot(size_t busy)
{
    unsigned n = atomic_load_explicit(&spinners, memory_order_relaxed);
    unsigned cpus = atomic_load_explicit(&spin_cpus, memory_order_relaxed);
    while (n + 1 + busy <= cpus)
        if (atomic_compare_exchange_weak_explicit(&spinners, &n, n + 1,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
            return 1;
    return 0;
}

int evexec__spin_begin(struct evexec__spinner *s, size_t busy)
{
    if (s->us == 0)
        return 0;
    if (!s->adaptive)
        return 1;
    if (s->skip > 0) {      /* backing off after a miss: sleep at once */
        s->skip--;
        return 0;
    }
    if (busy >= atomic_load_explicit(&spin_cpus, memory_order_relaxed))
        return 0;           /* no CPU left for a spinner */
    /* A spinner that is about to stop (its wait is over: the hand-off
     * goes the other way) leaves its slot within a few turns. */
    for (unsigned i = 0; i < EVEXEC__SPIN_PATIENCE; i++) {
        if (take_spin_slot(busy))
            return 1;
        evexec__cpu_relax();
    }
    return 0;
}

int evexec__spin_run(struct evexec__spinner *s,
                     int (*ready)(const void *arg), const void *arg)
{
    int got = evexec__spin(ready, arg, s->us);
    if (!s->adaptive)
        return got;
    atomic_fetch_sub_explicit(&spinners, 1, memory_order_relaxed);
    if (got) {
        s->backoff = 0;
    } else {
        /* A miss: sleep at once for the next 1, 2, 4 ... 256 waits, then
         * try once more. */
        s->skip = (unsigned short)(1u << s->backoff);
        if (s->backoff < EVEXEC__SPIN_BACKOFF_MAX)
            s->backoff++;
    }
    return got;
}

/* Spin until ready(arg) or `us` microseconds have passed.  Returns 1 if it
 * became ready.  Reads the clock only every 64 turns. */
int evexec__spin(int (*ready)(const void *arg), const void *arg, unsigned us)
{
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned i = 1;; i++) {
        if (ready(arg))
            return 1;
        evexec__cpu_relax();
        if ((i & 63) == 0) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            long long el = (long long)(now.tv_sec - t0.tv_sec) * 1000000LL +
                           (now.tv_nsec - t0.tv_nsec) / 1000;
            if (el >= (long long)us)
                return 0;
        }
    }
}

int evexec__pool_is_shutdown(struct evexec_pool *pool)
{
    return inherited(pool) || atomic_load_explicit(&pool->shutdown, memory_order_acquire);
}

const atomic_int *evexec__pool_shutdown_flag(const struct evexec_pool *pool)
{
    return &pool->shutdown;
}

/* Wait until every worker has exited.  Caller holds pool->lock. */
static void wait_for_exit(struct evexec_pool *pool)
{
    wake_all(pool);
    while (pool->nthreads > 0 || pool->exiting > 0 || pool->affine_alive > 0)
        pthread_cond_wait(&pool->exit_cv, &pool->lock);
}

EVEXEC_API int evexec_pool_shutdown(struct evexec_pool *pool, int flags)
{
    if (!pool || (flags & ~(EVEXEC_SHUTDOWN_WAIT | EVEXEC_SHUTDOWN_CANCEL)))
        return EINVAL;
    if (inherited(pool))
        return 0;           /* nothing of it runs in this process */
    if ((flags & EVEXEC_SHUTDOWN_WAIT) && evexec__current_pool == pool)
        return EDEADLK;
    /* Submissions this loop thread already made count as made before. */
    evexec__pool_client.flush();

    struct evexec_job *cancelled = NULL;
    pthread_mutex_lock(&pool->lock);
    atomic_store_explicit(&pool->shutdown, 1, memory_order_release);
    if (flags & EVEXEC_SHUTDOWN_CANCEL) {
        atomic_store_explicit(&pool->cancel_running, 1, memory_order_release);
        cancelled = unqueue_matching(pool, NULL);
    }
    wake_all(pool);
    pthread_mutex_unlock(&pool->lock);

    /* Running jobs now see evexec_job_cancelled(): wake those that wait
     * for it (the flag is set before, so none misses it). */
    if (flags & EVEXEC_SHUTDOWN_CANCEL)
        evexec__cancel_notify_pool(pool);

    /* Hand the cancelled jobs back to their loops, with no lock held. */
    while (cancelled) {
        struct evexec_job *next = cancelled->qnext;
        evexec__pool_client.complete(cancelled, 0);
        cancelled = next;
    }

    if (flags & EVEXEC_SHUTDOWN_WAIT) {
        pthread_mutex_lock(&pool->lock);
        wait_for_exit(pool);
        pthread_mutex_unlock(&pool->lock);
    }
    return 0;
}

EVEXEC_API void evexec_pool_free(struct evexec_pool *pool)
{
    if (!pool)
        return;
    if (inherited(pool)) {
        /* No thread of it exists here, and its lock may be held by one
         * that vanished: free the memory alone.  Handles of threads that
         * were running are leaked (they belong to the parent). */
        struct evexec__thread *t = pool->exited, *next;
        for (; t; t = next) {
            next = t->next;
            free(t);
        }
        free(pool);
        return;
    }
    if (evexec__current_pool == pool) {
        /* A worker would wait for itself: only refuse new work. */
        evexec_pool_shutdown(pool, 0);
        errno = EDEADLK;
        return;
    }
    pthread_mutex_lock(&pool->lock);
    atomic_store_explicit(&pool->shutdown, 1, memory_order_release);
    wait_for_exit(pool);
    struct evexec__thread *dead = take_exited(pool);
    pthread_mutex_unlock(&pool->lock);
    /* Every worker is on `dead` now (or was joined by a submission); their
     * exit destructors may still take the lock, so join before destroying. */
    join_exited(dead);
    pthread_cond_destroy(&pool->work_cv);
    pthread_cond_destroy(&pool->exit_cv);
    for (unsigned i = 2, nl = lanes_of(pool); i < nl; i++)
        if (pool->q[i].affine)
            pthread_cond_destroy(&pool->q[i].cv);
    pthread_mutex_destroy(&pool->lock);
#ifndef NDEBUG
    memset(pool, 0xf0, sizeof *pool);
#endif
    free(pool);
}

EVEXEC_API int evexec_pool_stats(const struct evexec_pool *cpool,
                                 struct evexec_pool_stats *out)
{
    if (!cpool || !out)
        return EINVAL;
    if (inherited(cpool))
        return ESHUTDOWN;
    struct evexec_pool *pool = (struct evexec_pool *)cpool;
    evexec__pool_client.flush();
    pthread_mutex_lock(&pool->lock);
    out->threads = pool->nthreads;
    out->idle = pool->waiting;
    out->queued = pool->queued;
    /* A worker counts a job completed before handing it back, so a loop
     * that has seen it done also sees it counted, not running. */
    out->completed = atomic_load_explicit(&pool->completed, memory_order_relaxed);
    out->running = (size_t)(pool->taken - out->completed);
    out->cancelled = pool->cancelled;
    out->threads_started = pool->started;
    pthread_mutex_unlock(&pool->lock);
    return 0;
}

/* The default pool: made on first use, by generation, so that a child of
 * fork() makes its own (the parent's is inherited and unusable there). */
static pthread_mutex_t default_mu = PTHREAD_MUTEX_INITIALIZER;
static struct evexec_pool *default_pool;
static unsigned default_gen;

EVEXEC_API struct evexec_pool *evexec_pool_default(void)
{
    unsigned gen = evexec__fork_init();
    int err = 0;
    pthread_mutex_lock(&default_mu);
    if (!default_pool || default_gen != gen) {
        /* A parent's pool is left as it is: its threads are not here. */
        struct evexec_pool_config cfg;
        memset(&cfg, 0, sizeof cfg);
        const char *env = getenv("EVEXEC_THREADS");
        if (env && *env) {
            char *end;
            errno = 0;
            unsigned long n = strtoul(env, &end, 10);
            if (errno == 0 && *end == '\0' && n >= 1 && n <= EVEXEC__MAX_THREADS_LIMIT)
                cfg.max_threads = (unsigned)n;
        }
        default_pool = evexec_pool_new(&cfg);
        default_gen = gen;
        if (!default_pool)
            err = errno;
    }
    struct evexec_pool *pool = default_pool;
    pthread_mutex_unlock(&default_mu);
    if (!pool)
        errno = err;
    return pool;
}

void evexec__pool_atfork(int phase)
{
    switch (phase) {
    case EVEXEC__FORK_PREPARE:
        pthread_mutex_lock(&default_mu);
        break;
    case EVEXEC__FORK_PARENT:
        pthread_mutex_unlock(&default_mu);
        break;
    default:
        pthread_mutex_unlock(&default_mu);
        /* A job that forks: its child is no worker. */
        evexec__current_pool = NULL;
        /* The parent's spinners are not here to give their slots back;
         * the forking thread itself does not spin. */
        atomic_store_explicit(&spinners, 0, memory_order_relaxed);
        break;
    }
}

int evexec__pool_stats_locked(const struct evexec_pool *cpool,
                              void (*fn)(struct evexec__pstats *st,
                                         const size_t *qlen, void *arg),
                              void *arg)
{
    if (inherited(cpool))
        return ESHUTDOWN;
    struct evexec_pool *pool = (struct evexec_pool *)cpool;
    pthread_mutex_lock(&pool->lock);
    size_t qlen[EVEXEC_MAX_LANES];
    for (unsigned i = 0, nl = lanes_of(pool); i < nl; i++)
        qlen[i] = pool->q[i].len;
    fn(&pool->st, qlen, arg);
    pthread_mutex_unlock(&pool->lock);
    return 0;
}

/* ---- lanes users declare ------------------------------------------------ */

/* 1 if `name` may name a lane: 1 to 15 printable bytes, none of them a
 * space or '=' (the stats socket writes "lane=NAME key=value ..."). */
static int lane_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 15)
        return 0;
    for (const unsigned char *c = (const unsigned char *)name; *c; c++)
        if (*c <= ' ' || *c == '=' || *c == 0x7f)
            return 0;
    return 1;
}

/* The lane called `name`, or -1.  Any thread: names are set before their
 * lane is published and never change. */
static int find_lane(const struct evexec_pool *pool, const char *name)
{
    for (unsigned i = 0, nl = lanes_of(pool); i < nl; i++)
        if (strcmp(pool->q[i].name, name) == 0)
            return (int)i;
    return -1;
}

EVEXEC_API int evexec_pool_add_lane(struct evexec_pool *pool,
                                    const struct evexec_lane_config *user_cfg,
                                    int *lane_out)
{
    struct evexec_lane_config cfg;
    if (!pool || !user_cfg || !lane_out ||
        evexec__read_struct(&cfg, sizeof cfg, user_cfg, sizeof cfg) != 0 ||
        !cfg.name || !lane_name_ok(cfg.name) ||
        (cfg.max_threads > pool->max_threads && !cfg.affine))
        return EINVAL;
    if (inherited(pool))
        return ESHUTDOWN;
    int rc = 0;
    pthread_mutex_lock(&pool->lock);
    unsigned nl = lanes_of(pool);
    if (pool->shutdown)
        rc = ESHUTDOWN;
    else if (find_lane(pool, cfg.name) >= 0)
        rc = EEXIST;
    else if (nl == EVEXEC_MAX_LANES)
        rc = ENOSPC;
    else if (cfg.affine && pthread_cond_init(&pool->q[nl].cv, NULL) != 0)
        rc = ENOMEM;
    if (rc == 0) {
        struct evexec__lane *ln = &pool->q[nl];
        ln->affine = cfg.affine != 0;
        ln->cap = ln->affine ? 1 : cfg.max_threads ? cfg.max_threads : pool->max_threads;
        /* (a lane made later always has a cap: 0 is the default lane's) */
        ln->max_queued = cfg.max_queued ? cfg.max_queued
                                        : pool->q[EVEXEC_LANE_DEFAULT].max_queued;
        snprintf(ln->name, sizeof ln->name, "%s", cfg.name);
        if (ln->max_queued || ln->affine)
            atomic_fetch_or_explicit(&pool->direct_lanes, 1u << nl,
                                     memory_order_relaxed);
        /* Published last: a job names the lane only after this. */
        atomic_store_explicit(&pool->nlanes, nl + 1, memory_order_release);
        *lane_out = (int)nl;
    }
    pthread_mutex_unlock(&pool->lock);
    return rc;
}

EVEXEC_API int evexec_pool_lane_find(const struct evexec_pool *pool, const char *name)
{
    if (!pool || !name) {
        errno = EINVAL;
        return -1;
    }
    int lane = find_lane(pool, name);
    if (lane < 0)
        errno = ENOENT;
    return lane;
}

int evexec__pool_lane_ok(const struct evexec_pool *pool, int lane)
{
    return lane >= 0 && (unsigned)lane < lanes_of(pool);
}

int evexec__pool_lane_direct(const struct evexec_pool *pool, int lane)
{
    return (atomic_load_explicit(&pool->direct_lanes, memory_order_relaxed) >> lane) & 1;
}

const char *evexec__pool_lane_name(const struct evexec_pool *pool, int lane)
{
    return evexec__pool_lane_ok(pool, lane) ? pool->q[lane].name : NULL;
}
