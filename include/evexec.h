/** @file
 * evexec.h -- run blocking functions on a thread pool, get the results back
 * on a libevent loop as futures.
 *
 * The whole public contract of evexec is in this file.
 *
 * Threads.  A `struct evexec_pool` is thread-safe.  A `struct evexec` and
 * every future made through it belong to the thread that runs its
 * event_base (the "loop thread"): call them only from there.  The only
 * exceptions are evexec_call_soon_threadsafe() (any thread) and the job
 * calls evexec_job_*() (the worker running that job).  An evexec may be
 * made on one thread and used on another: the loop thread is bound by the
 * first call that makes work or changes the evexec (evexec_run and every
 * call that returns a future, evexec_submit, evexec_set_keepalive,
 * evexec_run_until_complete) or by the base first running one of the
 * evexec's events, whichever comes first; and whenever the base runs the
 * evexec's events on another thread, that thread becomes the loop thread
 * (the hand-over itself must be ordered by the program, as for any
 * event_base; evexec_set_loop_thread() moves it by hand).  Those calls
 * made from any other thread fail with EINVAL (NULL with errno EINVAL)
 * and do nothing.
 *
 * Errors.  Constructors return NULL and set errno.  Other calls return 0 or
 * a positive errno code.  Name resolution keeps getaddrinfo's EAI_* codes,
 * which are negative in glibc and musl and so never collide with an errno
 * value there (see evexec_strerror() for systems where they are positive).
 * evexec_strerror() names every code.  When a call that takes a callback
 * fails, the callback is never called.
 *
 * Callbacks.  Every done callback runs exactly once, on the loop thread,
 * from the loop's dispatch: never inside the API call that registered it.
 * evexec_free() runs the ones that are left.
 *
 * References.  Every call that returns a future returns one reference that
 * the caller owns and drops with evexec_future_unref().  A done callback
 * may drop its own future's reference.  References still held when
 * evexec_free() is called are released by it.
 */
#ifndef EVEXEC_H
#define EVEXEC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <netdb.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Marks the functions of the public API: the shared library exports
 *  them and nothing else (default visibility with GCC and clang). */
#if defined(__GNUC__) && __GNUC__ >= 4
#define EVEXEC_API __attribute__((visibility("default")))
#else
#define EVEXEC_API
#endif

#define EVEXEC_VERSION_MAJOR 0   /**< The major version of this header. */
#define EVEXEC_VERSION_MINOR 1   /**< The minor version of this header. */
#define EVEXEC_VERSION_PATCH 0   /**< The patch level of this header. */
#define EVEXEC_VERSION_STRING "0.1.0" /**< This header's version, as "MAJOR.MINOR.PATCH". */
/** The version this header belongs to, as 0xMMmmpp00 (libevent's form):
 *  compare with evexec_version_number() to detect a library older than
 *  the header a program was compiled with. */
#define EVEXEC_VERSION_NUMBER \
    (((unsigned long)EVEXEC_VERSION_MAJOR << 24) | \
     ((unsigned long)EVEXEC_VERSION_MINOR << 16) | \
     ((unsigned long)EVEXEC_VERSION_PATCH << 8))

/** The version of the library linked in, as "MAJOR.MINOR.PATCH". */
EVEXEC_API const char *evexec_version(void);

/** The version of the library linked in, as EVEXEC_VERSION_NUMBER. */
EVEXEC_API unsigned long evexec_version_number(void);

struct event_base;
struct evexec_pool;
struct evexec;
struct evexec_future;
struct evexec_job;

/** A done callback.  `f` is borrowed; the callback may unref it. */
typedef void (*evexec_done_cb)(struct evexec_future *f, void *arg);

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

/**
 * Name an error code: any errno value, or a getaddrinfo EAI_* code.
 * Returns a static string; never NULL.  Unknown codes give "unknown error".
 * Where EAI codes are negative (glibc, musl) both kinds have their own
 * names.  Where they are positive (the BSDs, macOS) the same int is also an
 * errno value, and a code is named as that errno value; an EAI code is
 * named as such only if it is no errno value evexec knows.  There, to name
 * the error of an evexec_getaddrinfo() or evexec_getnameinfo() future, use
 * gai_strerror().
 */
EVEXEC_API const char *evexec_strerror(int code);

/* ------------------------------------------------------------------ */
/* Pools                                                               */
/* ------------------------------------------------------------------ */

/** Pool settings.  All zero (or a NULL pointer) means defaults. */
struct evexec_pool_config {
    /** The size of this struct as the caller knows it, so that fields
     *  added in later versions never break programs built before them.
     *  Set it with EVEXEC_POOL_CONFIG_INIT.  0 means the 1.0 layout (the
     *  fields up to spin_us), so a zero-filled struct works; fields added
     *  after 1.0 are read only when size covers them.  A size larger than
     *  the library knows is EINVAL unless the bytes it does not know are
     *  zero. */
    size_t size;
    /** Most worker threads.  0: min(32, number of CPUs + 4), as Python.
     *  Slow-lane jobs (EVEXEC_LANE_SLOW) get at most half of them, at
     *  least one, unless slow_max_threads says otherwise; so with max_threads 1 the slow lane shares the only
     *  thread and a hung slow job holds up every other job.  From
     *  max_threads 2 up, slow jobs never hold every thread. */
    unsigned max_threads;
    /** Threads kept alive when idle (they are still started lazily). */
    unsigned min_threads;
    /** Idle threads above min_threads exit after this long.  0: 10000. */
    unsigned idle_timeout_ms;
    /** Most jobs waiting for a thread, in each lane on its own (the
     *  default lane, the slow lane and lanes made without their own
     *  bound each hold up to max_queued).  A job waits when no thread
     *  takes it at once: running jobs do not count, nor does a job that a
     *  free thread, or one the pool may still start, takes at once
     *  (counted as if free threads went to the default lane first, then
     *  to the other lanes in their order, each up to its cap).  A
     *  submission that would make its lane's waiting jobs more than
     *  max_queued fails with EAGAIN; one lane's backlog never refuses
     *  another lane's work.  The count is made at submission: default-lane
     *  jobs submitted later go first and may leave more jobs of other
     *  lanes waiting.  Any value up to SIZE_MAX works.  0: unbounded. */
    size_t max_queued;
    /** Prefix of worker thread names (at most 15 bytes are kept in all).
     *  NULL: "evexec".  Copied. */
    const char *thread_name;
    /** Called once in each worker, before its first job.  May be NULL. */
    void (*thread_init)(void *arg);
    void *thread_init_arg; /**< The argument of thread_init, thread_start
                                and thread_exit. */
    /** Spinning, for latency: a worker that runs out of work, and a loop
     *  waiting for the jobs it has in flight, first spin a little before
     *  they sleep, so that a quick hand-off costs no wake-up.
     *
     *  0 (the default): adaptive.  Each of them spins at most 50
     *  microseconds, and only while spinning pays: after a spin that
     *  caught nothing it sleeps at once the next 1, 2, 4 ... up to 256
     *  times it waits, then tries again; a spin that catches what it
     *  waits for keeps it spinning.  And only while the spinners of the
     *  process and the threads they wait for fit in the online CPUs: a
     *  spinner never takes the CPU that the thread it waits for needs, so
     *  nothing spins on one CPU, a loop with more jobs in flight than
     *  CPUs but one does not spin, nor does a worker while the others
     *  keep the CPUs busy.  An idle pool sleeps after one spin per
     *  thread, and a lightly loaded one spins rarely.
     *
     *  EVEXEC_SPIN_OFF: never spin.
     *
     *  1 to 1000: always spin up to this many microseconds, whatever it
     *  catches and however many others spin (not counted against the
     *  CPUs above).  It burns CPU while it spins.
     *
     *  A spinning loop may hold its event_base for up to 64 spins in a
     *  row.  Other values are EINVAL. */
    unsigned spin_us;
    /* Fields after spin_us are read only when `size` covers them: set
     * size with EVEXEC_POOL_CONFIG_INIT to use them. */
    /** Each worker's stack size in bytes.  0:
     *  EVEXEC_STACK_SIZE_DEFAULT (256 KiB), not the system's default (8
     *  MiB with glibc): a thread with a small stack starts faster, so a
     *  cold pool reaches its full size sooner.  That is room for
     *  getaddrinfo and the name service modules (glibc runs
     *  getaddrinfo_a's lookups on threads of about 80 KiB; musl's
     *  default stack is 128 KiB) and for ordinary blocking calls, but not
     *  for deep recursion or large arrays on the stack: a job that needs
     *  more overflows its stack, which is a crash.  Raise it for such
     *  jobs, say to 8 << 20 for what glibc gives a thread (libuv's
     *  workers have 8 MiB too).  The memory is reserved, and only what a
     *  job touches is used.  EINVAL below 16384 (PTHREAD_STACK_MIN on
     *  Linux x86-64), below the system's PTHREAD_STACK_MIN where that is
     *  larger, or above 1 GiB. */
    size_t stack_size;
    /** Called once in each worker before its first job, after
     *  thread_init, with thread_init_arg.  What it returns is the
     *  worker's state: a job reads it with evexec_job_thread_state()
     *  (one database connection per worker, say).  May be NULL: the
     *  state is then NULL. */
    void *(*thread_start)(void *arg);
    /** Called once in each worker that started, on that worker, as it
     *  exits (idle longer than idle_timeout_ms, shutdown, or
     *  evexec_pool_free()), with thread_init_arg and the state that
     *  thread_start returned (NULL without thread_start).  A worker
     *  started again later runs thread_init and thread_start again.  It
     *  runs after the worker's last job; evexec_pool_free() and
     *  evexec_pool_shutdown(WAIT) return after it has run in every worker
     *  they waited for.  May be NULL.  Not called in a child after
     *  fork(): the threads are the parent's. */
    void (*thread_exit)(void *arg, void *state);
    /** Opt-in: time every job, for the histograms of time queued and
     *  time running of evexec_pool_lane_stats() and exact start times for
     *  evexec_set_watchdog().  It reads the clock twice per job on the
     *  worker and once per submission, which costs the quickest jobs some
     *  throughput (about 15 % more instructions per job).  0: off; the
     *  lane counters are kept anyway and the histograms stay empty. */
    unsigned timing;
    /** Most threads the slow lane (EVEXEC_LANE_SLOW) holds at once, from
     *  1 to max_threads; the default lane can always have the rest.  0:
     *  half of max_threads, at least one.  A server whose slow requests
     *  are a small share of its work but slow each (50 ms calls to a
     *  legacy backend) raises it; one that must keep default-lane
     *  threads free for hung lookups lowers it.  EINVAL above
     *  max_threads. */
    unsigned slow_max_threads;
};

/** evexec_pool_config::spin_us: never spin. */
#define EVEXEC_SPIN_OFF (~0u)

/** The workers' stack size when evexec_pool_config::stack_size is 0:
 *  256 KiB. */
#define EVEXEC_STACK_SIZE_DEFAULT ((size_t)256 * 1024)

/** An initializer for struct evexec_pool_config: defaults, size set:
 *  `struct evexec_pool_config cfg = EVEXEC_POOL_CONFIG_INIT;` */
#ifdef __cplusplus
#define EVEXEC_POOL_CONFIG_INIT { sizeof(struct evexec_pool_config) }
#else
#define EVEXEC_POOL_CONFIG_INIT { .size = sizeof(struct evexec_pool_config) }
#endif

/**
 * Make a pool.  Threads start lazily, as work arrives.  Jobs run in
 * lanes: EVEXEC_LANE_DEFAULT, EVEXEC_LANE_SLOW, and those made later with
 * evexec_pool_add_lane().  The slow lane never holds more than half of
 * max_threads (at least one; slow_max_threads sets it), so from
 * max_threads 2 up slow jobs never starve the rest; with max_threads 1 the
 * slow lane shares the only thread.
 * Fairness: when several evexecs share a pool, each lane serves them
 * round-robin, one job each in turn (among those with jobs queued in that
 * lane), so an evexec's backlog, however long, delays another evexec's
 * job by at most one job per other busy evexec per turn, not by the
 * backlog.  One evexec's jobs of one lane start in the order it submitted
 * them.  The default lane still goes before the other lanes.
 * Returns a new pool, or NULL with errno EINVAL (min_threads > max_threads,
 * max_threads above 1024, spin_us above 1000 but for EVEXEC_SPIN_OFF,
 * slow_max_threads above max_threads, stack_size out of range) or ENOMEM.
 * Thread-safe.
 */
EVEXEC_API struct evexec_pool *evexec_pool_new(const struct evexec_pool_config *cfg);

/** The most lanes a pool has: the default lane, the slow lane and up to
 *  EVEXEC_MAX_LANES - 2 lanes made with evexec_pool_add_lane(). */
#define EVEXEC_MAX_LANES 8

/** A lane's settings, for evexec_pool_add_lane().  All zero but name
 *  means: as many threads as the pool's max_threads, the pool's
 *  max_queued, not affine. */
struct evexec_lane_config {
    /** The size of this struct as the caller knows it: set it with
     *  EVEXEC_LANE_CONFIG_INIT.  0 means this layout. */
    size_t size;
    /** The lane's name, 1 to 15 bytes, none a space, a control byte or
     *  '=', unique in the pool ("default" and "slow" are taken).  Copied.  Shown by the stats socket and
     *  tools/evexec-top; evexec_pool_lane_find() looks it up. */
    const char *name;
    /** Most jobs of the lane run at once, from 1 to the pool's
     *  max_threads: a lane at its cap never takes another thread, however
     *  many are idle.  1 runs a library that is not thread-safe one call
     *  at a time, with no lock in user code (on any of the pool's
     *  threads).  A job given up at its deadline (evexec_run_opts) still
     *  counts against the cap until it returns (the pool starts a thread
     *  in its place for the other lanes).  0: the pool's max_threads.
     *  Ignored (1) when affine. */
    unsigned max_threads;
    /** Most jobs of the lane waiting for a thread, as the pool's
     *  max_queued counts them for its lanes (EAGAIN past it).  0: the
     *  pool's max_queued (which may be 0: unbounded). */
    size_t max_queued;
    /** Non-zero: an affine lane.  Every job of the lane runs on one
     *  dedicated thread of its own, started by the lane's first job, kept
     *  until the pool is shut down (never ended for being idle), and not
     *  counted in the pool's max_threads: for libraries whose handles must
     *  be used from the thread that made them (thread-local state, some
     *  database clients, OpenGL-style contexts).  The thread runs the
     *  pool's thread_init, thread_start and thread_exit like any worker.
     *  A job given up at its deadline (evexec_run_opts) still holds it:
     *  the lane's later jobs wait until it returns. */
    int affine;
};

/** An initializer for struct evexec_lane_config: defaults, size set. */
#ifdef __cplusplus
#define EVEXEC_LANE_CONFIG_INIT { sizeof(struct evexec_lane_config) }
#else
#define EVEXEC_LANE_CONFIG_INIT { .size = sizeof(struct evexec_lane_config) }
#endif

/**
 * Give a pool a lane of its own name, with its own cap on threads, its
 * own queue bound, or a dedicated thread (struct evexec_lane_config).
 * One set of threads serves every lane but affine ones; a job goes to a
 * lane through struct evexec_run_opts' `lane`.
 *
 * Which lane a free worker serves: the default lane first, then the
 * other lanes with jobs queued and below their caps in turn, one job
 * each (round-robin, starting after the lane served last), so no lane
 * starves another that is below its cap.  Within a lane, evexecs are
 * served in turn, as for the default lane (see evexec_pool_new()).
 *
 *     struct evexec_lane_config lc = EVEXEC_LANE_CONFIG_INIT;
 *     lc.name = "legacy";
 *     lc.max_threads = 1;            // one call at a time, no lock
 *     int legacy;
 *     if (evexec_pool_add_lane(pool, &lc, &legacy) == 0) {
 *         struct evexec_run_opts o = EVEXEC_RUN_OPTS_INIT;
 *         o.lane = legacy;
 *         evexec_run_opts(ex, call_legacy, req, &o);
 *     }
 *
 * Lanes are never taken away; they last as long as the pool.  Sets
 * *lane_out to the new lane's number (2 and up) and returns 0; EINVAL
 * (NULL pool, cfg, lane_out or name; a name empty, longer than 15 bytes
 * or holding a space, a control byte or '='; max_threads above the
 * pool's max_threads (not affine); unknown fields set in cfg); EEXIST (a
 * lane of that name); ENOSPC (EVEXEC_MAX_LANES lanes already); ESHUTDOWN (pool shut down, or inherited across fork());
 * ENOMEM.  Thread-safe; may be called while the pool runs jobs.
 */
EVEXEC_API int evexec_pool_add_lane(struct evexec_pool *pool,
                                    const struct evexec_lane_config *cfg,
                                    int *lane_out);

/**
 * The number of the pool's lane called `name` ("default": 0, "slow": 1,
 * or one made by evexec_pool_add_lane()), or -1 with errno ENOENT (no
 * such lane) or EINVAL (NULL pool or name).  Thread-safe.
 */
EVEXEC_API int evexec_pool_lane_find(const struct evexec_pool *pool,
                                     const char *name);

/** Shutdown flags. */
#define EVEXEC_SHUTDOWN_WAIT   0x1  /**< run everything queued, wait for it */
#define EVEXEC_SHUTDOWN_CANCEL 0x2  /**< end queued jobs ECANCELED instead */

/**
 * Stop taking work.  Afterwards every submission fails with ESHUTDOWN and
 * its function never runs.
 *
 * flags 0: return at once; queued jobs still run.
 * EVEXEC_SHUTDOWN_CANCEL: queued jobs never run; their futures end
 *   ECANCELED on their own loops.  Running jobs see evexec_job_cancelled()
 *   true and are woken (from evexec_job_wait_cancel() and evexec_job_poll(),
 *   which return ECANCELED); their futures end with what their functions
 *   return.  Running jobs are not waited for.
 * EVEXEC_SHUTDOWN_WAIT: return when every queued and running job has
 *   finished (with CANCEL: every running one).
 *
 * Returns 0; EINVAL for a NULL pool or unknown flag bits; EDEADLK when
 * asked to wait from one of the pool's own workers (nothing is done then:
 * call it without EVEXEC_SHUTDOWN_WAIT from there).  0 at once for a pool
 * inherited across fork() (nothing of it runs in the child).  May be
 * called again.  Thread-safe.
 */
EVEXEC_API int evexec_pool_shutdown(struct evexec_pool *pool, int flags);

/**
 * Free a pool.  Without an earlier shutdown this is shutdown(WAIT): queued
 * and running jobs finish first (running jobs are not told to cancel).
 * Every evexec using the pool must have been freed.  NULL is ignored.
 *
 * Called from one of the pool's own workers, it would wait for itself:
 * instead it shuts the pool down as evexec_pool_shutdown(pool, 0) does,
 * neither waits nor frees, sets errno to EDEADLK and returns.  The pool
 * must then still be freed from another thread.
 */
EVEXEC_API void evexec_pool_free(struct evexec_pool *pool);

/** A snapshot of a pool's counters. */
struct evexec_pool_stats {
    unsigned threads;     /**< worker threads alive */
    unsigned idle;        /**< of those, waiting for work */
    size_t   queued;      /**< jobs queued, all lanes, not yet taken by a
                               thread (a job a free thread is about to
                               take counts here, not in max_queued) */
    size_t   running;     /**< jobs taken by a thread: being run now, or
                               taken with one to run next (while every
                               thread is busy and jobs wait, a worker
                               takes up to 8 default-lane jobs at once;
                               another thread with nothing to do, a
                               cancel, a teardown or shutdown(CANCEL)
                               still takes such a job back before it
                               starts) */
    uint64_t completed;   /**< jobs whose function returned */
    uint64_t cancelled;   /**< jobs taken off the queue (or back from a
                               worker, see running) without running */
    uint64_t threads_started; /**< threads ever started */
};

/** Fill *out.  Returns 0, or EINVAL for NULL arguments.  Thread-safe. */
EVEXEC_API int evexec_pool_stats(const struct evexec_pool *pool,
                                 struct evexec_pool_stats *out);

/** The number of buckets of a lane histogram: bucket i counts durations
 *  in [2^i, 2^(i+1)) microseconds; bucket 0 also counts 0, and the last
 *  bucket counts everything from 2^31 microseconds (about 36 minutes) up. */
#define EVEXEC_HIST_BUCKETS 32

/** A snapshot of one lane of a pool (see evexec_pool_lane_stats()). */
struct evexec_lane_stats {
    size_t   queued;      /**< jobs of the lane queued now, not yet taken */
    size_t   running;     /**< jobs of the lane taken by a thread (see
                               evexec_pool_stats.running) */
    uint64_t completed;   /**< jobs of the lane whose function returned */
    uint64_t cancelled;   /**< jobs of the lane taken off the queue
                               without running */
    /** Time queued: from the job's hand-over to the pool (at evexec_run(),
     *  or when the pass of callbacks that submitted it ends) until a worker
     *  took it; one count per job taken.  Only with the pool's `timing`
     *  on (else all zero). */
    uint64_t queued_us_hist[EVEXEC_HIST_BUCKETS];
    /** Time running: how long the job's function ran; one count per job
     *  completed, so its sum is `completed` (jobs run since the pool was
     *  made, as timing is set then).  Only with the pool's `timing` on. */
    uint64_t running_us_hist[EVEXEC_HIST_BUCKETS];
};

/**
 * Fill *out with the counters and histograms of one lane of a pool
 * (EVEXEC_LANE_DEFAULT, EVEXEC_LANE_SLOW, or one made by
 * evexec_pool_add_lane()), all read at one moment.
 * Counting costs no allocation and no lock the pool does not take anyway;
 * the histograms are filled only when the pool was made with `timing`
 * (struct evexec_pool_config).  A job the loop has seen end is already
 * counted in `completed` and `running_us_hist`.
 * Returns 0; EINVAL (NULL pool or out, unknown lane); ESHUTDOWN (a pool
 * inherited across fork()).  Thread-safe.
 */
EVEXEC_API int evexec_pool_lane_stats(const struct evexec_pool *pool, int lane,
                                      struct evexec_lane_stats *out);

/**
 * An upper bound, in microseconds, of the p-th percentile (0 to 100) of a
 * histogram of EVEXEC_HIST_BUCKETS buckets as evexec_lane_stats holds:
 * the end 2^(i+1) of the bucket i that holds it, so p of the durations
 * were below the value returned.  p 100 bounds the largest.  UINT64_MAX
 * when that is the last bucket (no bound); 0 for an empty histogram, a
 * NULL hist, or p outside 0..100.  Any thread.
 */
EVEXEC_API uint64_t evexec_hist_percentile(const uint64_t *hist, double p);

/**
 * A watchdog on the evexec's running jobs: every threshold_ms / 2
 * milliseconds (at least 10), a libevent timer on the evexec's base looks
 * at the jobs of this evexec that the pool is running, and calls
 * cb(ex, lane, running_ms, arg) once for each job that has been running
 * for threshold_ms or longer: once per job, however long it runs on.
 * `lane` is the job's lane, running_ms how long it had run at that tick.
 * With the pool's `timing` on, the time counts from the moment a worker
 * took the job; without it, from the first tick that saw the job running,
 * so a job is reported up to threshold_ms / 2 later and running_ms is
 * that much short (a lower bound either way).
 * Like every callback of the evexec, cb runs on the loop thread from the
 * loop's dispatch; it may cancel, submit, set the watchdog again or free
 * the evexec.  Setting it again replaces the threshold and callback (a
 * job already reported is not reported again).  threshold_ms 0 turns it
 * off (cb may then be NULL).  While it is on, its timer keeps
 * event_base_dispatch() running, as keep-alive does.  evexec_free() turns
 * it off.  Once a watchdog is set, the pool's workers no longer take
 * several jobs at once (see evexec_pool_stats.running), so that each job
 * is timed from its own start.
 *
 *     static void slow_job(struct evexec *ex, int lane, uint64_t ms, void *arg)
 *     {
 *         fprintf(stderr, "a job of lane %d has run %llu ms\n", lane,
 *                 (unsigned long long)ms);
 *     }
 *     evexec_set_watchdog(ex, 5000, slow_job, NULL);
 *
 * Returns 0; EINVAL (NULL ex; NULL cb with a threshold; not the loop
 * thread); ESHUTDOWN (being freed, or inherited across fork()); ENOMEM
 * (nothing changed).  Loop thread.
 */
EVEXEC_API int evexec_set_watchdog(struct evexec *ex, unsigned threshold_ms,
                                   void (*cb)(struct evexec *ex, int lane,
                                              uint64_t running_ms, void *arg),
                                   void *arg);

/**
 * Opt in to being watched (by tools/evexec-top): listen on a Unix stream
 * socket made at `unix_path`.  The evexec answers every connection, on
 * its loop thread, with a text snapshot of its pool and closes it: a line
 * "pool threads=N idle=N queued=N running=N completed=N cancelled=N",
 * then one line per lane, "lane=default" or "lane=slow" followed by
 * queued=, running=, completed=, cancelled= and the p50, p99 and max
 * bounds of both histograms (queued_p50_us=... running_max_us=..., as
 * evexec_hist_percentile() gives them; "inf" for no bound).  A file
 * already at the path is not replaced (EADDRINUSE).  Calling it again
 * listens on the new path and closes the old one; NULL stops listening.
 * The socket file is removed when listening stops, also at evexec_free().
 * While listening, the socket's event keeps event_base_dispatch() running.
 * Returns 0; EINVAL (NULL ex, an empty path, not the loop thread);
 * ENAMETOOLONG (a path longer than a sockaddr_un holds); ESHUTDOWN (being
 * freed, inherited across fork()); the errno of socket(), bind() or
 * listen() (EADDRINUSE, EACCES, ENOENT...); ENOMEM.  Nothing changed on
 * failure.  Loop thread.
 */
EVEXEC_API int evexec_stats_listen(struct evexec *ex, const char *unix_path);

/**
 * The process-wide default pool, made on first use and never freed.  Its
 * settings are the defaults, except that the environment variable
 * EVEXEC_THREADS, when it holds a number from 1 to 1024 at the moment the
 * pool is made, sets max_threads (as UV_THREADPOOL_SIZE does for libuv);
 * any other value is ignored.  In a child after fork() the first call
 * makes the child's own default pool (the parent's is inherited: see
 * evexec_free()).  Returns NULL with errno ENOMEM if it cannot be made (a
 * later call tries again).  Thread-safe.
 */
EVEXEC_API struct evexec_pool *evexec_pool_default(void);

/* ------------------------------------------------------------------ */
/* The bridge on one loop                                              */
/* ------------------------------------------------------------------ */

/**
 * Make the bridge between `base` and `pool` (NULL: evexec_pool_default()).
 * One evexec per event_base is the usual shape; several are allowed.
 * The caller keeps ownership of base and pool; both must outlive the
 * evexec.  evexec does not need evthread_use_pthreads(): only the loop
 * thread ever touches the base.
 *
 * Completions wake the loop through an eventfd, or a pipe where there is
 * none.  Setting the environment variable EVEXEC_WAKEUP=pipe forces the
 * pipe.
 *
 * Keep-alive.  By default the evexec watches its wake-up channel for its
 * whole life, like a referenced uv_async_t: event_base_dispatch() does not
 * return while it exists (end the loop with evexec_free(),
 * event_base_loopexit() or event_base_loopbreak()), and a call from any
 * thread to evexec_call_soon_threadsafe() runs within one loop iteration,
 * whether or not anything else is in flight.  evexec_set_keepalive(ex, 0)
 * gives the other behaviour, see there.
 *
 * Returns NULL with errno EINVAL (NULL base), ENOMEM (also when libevent
 * cannot add the wake-up event), EMFILE/ENFILE (no fd) or ESHUTDOWN (pool
 * shut down, or inherited from the parent after fork()).  Loop thread.
 */
EVEXEC_API struct evexec *evexec_new(struct event_base *base,
                                     struct evexec_pool *pool);

/**
 * Whether the evexec keeps its event_base running while it is idle.
 *
 * 1 (the default): it always watches its wake-up channel, so
 *   event_base_dispatch() returns only after evexec_free() or a
 *   loopexit/loopbreak, and calls from other threads are always seen.
 * 0: it keeps the base running only while work of its own is in flight
 *   (jobs, loop-thread calls, sleeps and combinator timers, due callbacks)
 *   and while evexec_run_until_complete() runs, so event_base_dispatch()
 *   returns once that is done, as with an unreferenced uv_async_t.  While
 *   it is idle it does not watch its channel: a call that another thread
 *   makes then runs only once the evexec has work in flight again.  Use
 *   0 only when no other thread calls evexec_call_soon_threadsafe(), or
 *   when something else of the program ends the loop.
 *
 * Returns 0; EINVAL (NULL ex); ESHUTDOWN (being freed); ENOMEM (libevent
 * could not add the wake-up event; nothing changed).  Loop thread.
 */
EVEXEC_API int evexec_set_keepalive(struct evexec *ex, int keepalive);

/**
 * Make the calling thread the evexec's loop thread (see "Threads" at the
 * top of this file).  Needed only to hand an evexec whose loop thread is
 * bound over to a thread that calls it before its base has run there:
 * the old loop thread must have stopped using the evexec and its base,
 * and the program must order the hand-over (a pthread_create, a join, a
 * mutex).  Returns 0, or EINVAL for NULL.
 */
EVEXEC_API int evexec_set_loop_thread(struct evexec *ex);

/** The current keep-alive setting (1 or 0); 0 for NULL. */
EVEXEC_API int evexec_get_keepalive(const struct evexec *ex);

/**
 * Let a flood of completions yield to the loop's other events.
 *
 * By default (0, 0) one pass of the evexec's callbacks delivers every
 * completion that is back, however many, before the loop looks at its
 * sockets again.  With a budget, a pass delivers at most `max_callbacks`
 * completions (0: no count limit), or stops once `max_usec` microseconds
 * have passed (0: no time limit; the clock is read every 16 completions,
 * so a pass may run a little over).  A completion counts once with all of
 * its future's done callbacks; a call_soon_threadsafe call counts as one.
 * The rest is delivered on the next loop iteration, after libevent has
 * polled its fds and run the events that were ready (sockets, timers;
 * the evexec goes on from a zero timeout, run after those of the same
 * priority).  Nothing is lost, reordered or run twice; evexec_free() in
 * the middle ends what is left as usual.
 *
 *     evexec_set_drain_budget(ex, 64, 2000);   // 64 callbacks or 2 ms
 *
 * Returns 0; EINVAL (NULL ex, or not the loop thread); ESHUTDOWN (being
 * freed); ENOMEM (libevent could not make the event it needs; nothing
 * changed).  Loop thread.
 */
EVEXEC_API int evexec_set_drain_budget(struct evexec *ex, unsigned max_callbacks,
                                       unsigned max_usec);

/**
 * Back-pressure: be told when too many jobs are in flight, as with a
 * bufferevent's watermarks.
 *
 * The count is this evexec's jobs (evexec_run and everything made on it:
 * evexec_submit, the fs and DNS calls) submitted and not yet delivered,
 * queued or running.  When it reaches `high` on the way up, cb(ex, 1, arg)
 * is called; when it then falls to `low` or below, cb(ex, 0, arg).  One
 * call per crossing, so the calls alternate 1, 0, 1, 0...  Like every
 * callback of the evexec, cb runs on the loop thread from the loop's
 * dispatch, never inside the call that crossed (evexec_run, a cancel): in
 * the same pass of the evexec's callbacks when that call was made inside
 * one, else on the next loop iteration.  cb may submit, cancel, change the
 * watermarks or free the evexec.
 *
 * Setting them again starts from "below" and forgets crossings not yet
 * told (if the count is already at or above the new `high`, an "above"
 * call follows).  high == 0 turns them off, without a call.  From
 * evexec_free() on, cb is never called.  Counted per evexec, all lanes
 * together; evexec_set_lane_watermarks() counts one lane.
 *
 *     static void pressure(struct evexec *ex, int above, void *arg)
 *     {
 *         struct evconnlistener *l = arg;
 *         (above ? evconnlistener_disable : evconnlistener_enable)(l);
 *     }
 *     evexec_set_watermarks(ex, 1000, 10000, pressure, listener);
 *
 * Returns 0; EINVAL (NULL ex; high != 0 with low >= high or a NULL cb;
 * not the loop thread); ESHUTDOWN (being freed).  Loop thread.
 */
EVEXEC_API int evexec_set_watermarks(struct evexec *ex, size_t low, size_t high,
                                     void (*cb)(struct evexec *ex, int above,
                                                void *arg),
                                     void *arg);

/**
 * Watermarks on one lane: as evexec_set_watermarks(), counting only this
 * evexec's jobs of `lane` in flight (submitted and not yet delivered), so
 * a server can stop taking the requests that go to a lane backed up (its
 * slow lane, a lane with one thread for a legacy library) and keep
 * taking the rest.  Each lane's watermarks are set, told and turned off
 * on their own, and apart from the evexec's: a crossing of both calls
 * both callbacks (the evexec's first, then the lanes' in lane order).
 * The lane counts start with the evexec's first call of this function:
 * jobs submitted before it are not counted (so a job the hot path needs
 * not count costs nothing until lane watermarks are used).
 *
 *     evexec_set_lane_watermarks(ex, EVEXEC_LANE_SLOW, 10, 100,
 *                                slow_pressure, listener);
 *
 * Returns 0; EINVAL (NULL ex, a lane the pool does not have, high != 0
 * with low >= high or a NULL cb, not the loop thread); ESHUTDOWN (being
 * freed).  Loop thread.
 */
EVEXEC_API int evexec_set_lane_watermarks(struct evexec *ex, int lane, size_t low,
                                          size_t high,
                                          void (*cb)(struct evexec *ex, int above,
                                                     void *arg),
                                          void *arg);

/**
 * Tear down.  Inside this call, on the calling (loop) thread:
 *  - queued jobs of this evexec are taken off the pool; they never run;
 *  - running jobs see evexec_job_cancelled() true; when they return, their
 *    results are released on the worker; they never touch freed memory;
 *  - pending futures end ECANCELED, futures that already ended keep their
 *    outcome, and every done callback not yet run is run;
 *  - evexec_call_soon_threadsafe() calls already made are run; calls
 *    made from then on fail with ESHUTDOWN;
 *  - every future reference still held is released.
 * New futures cannot be made from those callbacks (ESHUTDOWN).
 * Those callbacks run inside evexec_free(), so what they point at (their
 * `arg`: a connection, an evhttp request) must still be alive when it is
 * called: free such objects after evexec_free(), or first let their
 * callbacks run (cancel the futures, then let the loop turn) or make the
 * callbacks check that their object is gone.
 * When it returns, nothing of the evexec touches its pool or its base any
 * more: both may be freed at once, also when evexec_free() was called from
 * one of the evexec's own callbacks (then only the memory the callbacks
 * on the stack still read is kept until the outermost of them returns;
 * ex and its futures must not be used after evexec_free() anyway).
 * NULL and a second call are ignored.
 *
 * After fork(), in the child, an evexec made in the parent is inherited:
 * every call that would make work on it fails with ESHUTDOWN (evexec_run,
 * evexec_future_new, evexec_sleep, the combinators, the I/O calls,
 * evexec_call_soon_threadsafe, evexec_run_until_complete), because its
 * pool's threads do not exist in the child and its wake-up channel is
 * shared with the parent.  It may be leaked, or freed with evexec_free()
 * after event_reinit() of its base (libevent requires event_reinit()
 * before an inherited base is used at all; without it, deleting events
 * would take them out of the epoll set the parent still uses).  Freeing
 * it never reads or writes the channel and never touches the pool: its
 * pending futures end ECANCELED and their callbacks run; a job that was
 * running in the parent at fork time ends ECANCELED in the child without
 * its argument or result being released there (the parent's worker still
 * owns them).
 */
EVEXEC_API void evexec_free(struct evexec *ex);

/** The event_base of an evexec (borrowed), or NULL for NULL. */
EVEXEC_API struct event_base *evexec_get_base(const struct evexec *ex);

/** The pool of an evexec (borrowed), or NULL for NULL. */
EVEXEC_API struct evexec_pool *evexec_get_pool(const struct evexec *ex);

/**
 * Run fn(arg) on the loop thread soon.  Callable from any thread,
 * including the loop thread, where it still runs later, never inline.
 * Calls run in the order they were made.  While the loop dispatches, a
 * call runs within one loop iteration (with the default keep-alive, see
 * evexec_set_keepalive()).  Calls made before evexec_free() began are run
 * inside it; a call that finds the teardown under way fails with
 * ESHUTDOWN and is never run (fn and arg stay the caller's).
 * Returns 0, EINVAL (NULL ex or fn), ENOMEM, or ESHUTDOWN (being freed, or
 * inherited across fork()).  The evexec's memory must stay while another
 * thread may call this: a call that may race evexec_free() must be over
 * before evexec_free() returns (or, when evexec_free() is called from one
 * of the evexec's callbacks, before that callback returns).
 */
EVEXEC_API int evexec_call_soon_threadsafe(struct evexec *ex,
                                           void (*fn)(void *arg), void *arg);

/* ------------------------------------------------------------------ */
/* run_in_executor                                                     */
/* ------------------------------------------------------------------ */

/**
 * A blocking function run on a worker.  Returns 0 on success or a positive
 * error code; the future ends with that code.  It may set a result with
 * evexec_job_set_result() and should look at evexec_job_cancelled() now and
 * then if it runs long.
 */
typedef int (*evexec_fn)(struct evexec_job *job, void *arg);

/** Lanes: where a job queues.  See struct evexec_run_opts. */
#define EVEXEC_LANE_DEFAULT 0
#define EVEXEC_LANE_SLOW    1  /**< the slow lane, for work that may hang */

/** Options for evexec_run_opts().  All zero = evexec_run(). */
struct evexec_run_opts {
    /** The size of this struct as the caller knows it: set it with
     *  EVEXEC_RUN_OPTS_INIT.  0 means the 1.0 layout (lane, arg_free).
     *  As for struct evexec_pool_config. */
    size_t size;
    /** EVEXEC_LANE_DEFAULT, EVEXEC_LANE_SLOW for work that may hang
     *  (name lookups), or a lane made by evexec_pool_add_lane(): slow-lane
     *  jobs never occupy more than half of the pool's max_threads (at
     *  least one; its slow_max_threads), so from max_threads 2 up they
     *  never starve the rest.  With max_threads 1 the slow lane shares the
     *  only thread: a hung slow job holds up every job behind it.  EINVAL
     *  for a lane the evexec's pool does not have.  Each lane has its own
     *  max_queued bound and its own cap on threads. */
    int lane;
    /** Called once with `arg` when the job is done with it: on the worker
     *  right after fn returns, or on the loop thread (or the thread that
     *  shut the pool down with CANCEL) if the job never runs.  Not called
     *  when the submission itself fails: arg is still the caller's then.
     *  NULL: arg stays the caller's. */
    void (*arg_free)(void *arg);
    /* Fields after arg_free are read only when `size` covers them: set
     * size with EVEXEC_RUN_OPTS_INIT to use them. */
    /** How long the job may take, from the call, queued and running
     *  together; zero: no deadline.  EINVAL if negative or tv_usec is
     *  1000000 or more.  With a deadline, evexec_run_opts() returns a
     *  future that ends as the job's would, or ETIMEDOUT at the deadline,
     *  whichever comes first:
     *  - still queued then: the job never runs (arg_free is called);
     *  - running then: the future ends ETIMEDOUT at once, the job sees
     *    evexec_job_cancelled() true, and whatever it returns is released
     *    when it does.  Until then it no longer counts against the pool's
     *    max_threads nor the default or slow lane's share (a lane made
     *    with evexec_pool_add_lane() keeps its cap): if work waits,
     *    another thread is started in its place, so the pool keeps its
     *    capacity while a stuck job finishes.  At most max_threads such given-up jobs are
     *    replaced at once (more stay counted), so a storm of stuck jobs
     *    cannot make threads without bound; the extra threads exit when
     *    idle, as any thread above min_threads.
     *  Cancelling the future cancels the job.  The job's result is the
     *  future's own, as without a deadline. */
    struct timeval deadline;
};

/** An initializer for struct evexec_run_opts: defaults, size set. */
#ifdef __cplusplus
#define EVEXEC_RUN_OPTS_INIT { sizeof(struct evexec_run_opts) }
#else
#define EVEXEC_RUN_OPTS_INIT { .size = sizeof(struct evexec_run_opts) }
#endif

/**
 * Run fn(job, arg) on a worker of the evexec's pool.  Returns a new future
 * (one reference, the caller's) that ends with fn's result and return code.
 * Returns NULL with errno EINVAL (NULL ex or fn), EAGAIN (the job's lane
 * of a bounded queue full, or no worker thread can be made), ESHUTDOWN
 * (pool shut down or evexec being freed), ENOMEM.  `arg` stays the
 * caller's.  Loop thread.
 *
 * Jobs submitted from inside evexec callbacks are handed to the pool
 * together, under one lock, when that pass of callbacks ends (so do not
 * block a callback waiting for a job it just submitted; nothing should
 * block a loop callback anyway).  If the pool is shut down in between,
 * such a job never runs and its future ends ESHUTDOWN; if by then the
 * pool has no thread and none can be made, it never runs and its future
 * ends EAGAIN.  On a pool with max_queued, and for jobs submitted anywhere
 * else, jobs are queued (or refused) before evexec_run returns.
 */
EVEXEC_API struct evexec_future *evexec_run(struct evexec *ex, evexec_fn fn,
                                            void *arg);

/**
 * The common case in one call: run fn(job, arg) on a worker and call
 * done(f, done_arg) on the loop thread once it has ended, with no future
 * to keep or drop.  `f` is borrowed for the callback: read it with
 * evexec_future_error() and evexec_future_result() (valid until done
 * returns; keep the result with evexec_future_take_result()).  done runs
 * exactly once, as every done callback does: with the job's outcome, or
 * ECANCELED at evexec_free() at the latest.
 * Returns 0; EINVAL (NULL ex, fn or done) and the errors of evexec_run(),
 * in which case done is never called.  Loop thread.
 */
EVEXEC_API int evexec_submit(struct evexec *ex, evexec_fn fn, void *arg,
                             evexec_done_cb done, void *done_arg);

/**
 * Open a batch of submissions on ex, for a caller about to submit many jobs
 * at once from outside evexec's own callbacks (from main, or from another
 * library's callback).  Until the matching evexec_batch_end(), jobs
 * submitted through ex (evexec_run, evexec_run_opts, evexec_submit, the
 * offloaded I/O calls) are kept on the loop thread and handed to the pool
 * together, under one lock, instead of one lock per job; they behave as
 * jobs submitted inside evexec callbacks do (see evexec_run): a job
 * refused by a pool shut down in between ends ESHUTDOWN, one no thread can
 * be made for ends EAGAIN, and evexec_free() ends the jobs not yet handed
 * over ECANCELED.  Jobs may be handed over earlier (when a pass of ex's
 * callbacks ends, while evexec_run_until_complete() runs, or when the
 * thread submits to another evexec), never later.  No job of a batch
 * starts before it is handed over: do not block waiting for one inside
 * the batch.  On a pool with max_queued nothing is batched (jobs are
 * queued or refused at the call, as without a batch).  Batches nest: only
 * the outermost evexec_batch_end() hands the jobs over.
 * Returns 0; EINVAL (NULL ex, or not ex's loop thread), ESHUTDOWN (ex
 * being freed, or inherited across fork), EOVERFLOW (nesting too deep).
 * Loop thread.
 */
EVEXEC_API int evexec_batch_begin(struct evexec *ex);

/**
 * Close a batch opened by evexec_batch_begin(); the outermost close hands
 * every job submitted in the batch to the pool under one lock.  Returns
 * 0; EINVAL (NULL ex, not ex's loop thread, no batch open, or ex
 * inherited across fork).  Allowed while ex is being freed (the jobs
 * have been ended then).  Loop thread.
 */
EVEXEC_API int evexec_batch_end(struct evexec *ex);

/** evexec_run() with options; opts NULL means defaults.  EINVAL for an
 *  unknown lane. */
EVEXEC_API struct evexec_future *evexec_run_opts(struct evexec *ex, evexec_fn fn,
                                                 void *arg,
                                                 const struct evexec_run_opts *opts);

/**
 * Set the job's result: the future will own `result` and release it with
 * free_fn (which may be NULL) when its last reference goes, unless the
 * future fails or is cancelled, in which case the library releases it
 * exactly once.  A second call releases the previous result first.
 * Worker thread running this job.  NULL job is ignored.
 */
EVEXEC_API void evexec_job_set_result(struct evexec_job *job, void *result,
                                      void (*free_fn)(void *));

/** The state that the pool's thread_start returned in the worker running
 *  this job (see struct evexec_pool_config); NULL without thread_start,
 *  for a NULL job, or when called from a thread that is not one of the
 *  pool's workers.  Worker thread running this job. */
EVEXEC_API void *evexec_job_thread_state(const struct evexec_job *job);

/** True (1) once cancellation of this job was asked: its future was
 *  cancelled, its evexec freed, or its pool shut down with
 *  EVEXEC_SHUTDOWN_CANCEL while it ran.  Worker thread running this job. */
EVEXEC_API int evexec_job_cancelled(const struct evexec_job *job);

/* ------------------------------------------------------------------ */
/* Futures                                                             */
/* ------------------------------------------------------------------ */

/**
 * A future set by hand, for wrapping any non-blocking operation.
 * Returns a new future, or NULL with errno EINVAL, ENOMEM or ESHUTDOWN.
 */
EVEXEC_API struct evexec_future *evexec_future_new(struct evexec *ex);

/**
 * End a hand-made future with a result it will own (released with free_fn
 * when its last reference goes).  Done callbacks run later, from the loop.
 * Returns 0; EINVAL for NULL or a future not made by evexec_future_new();
 * EALREADY if it already ended or a cancel was taken (the result stays the
 * caller's then).
 */
EVEXEC_API int evexec_future_set_result(struct evexec_future *f, void *result,
                                        void (*free_fn)(void *));

/**
 * End a hand-made future with an error (non-zero).  Returns 0; EINVAL for
 * NULL, error 0, or a future not made by evexec_future_new(); EALREADY if
 * it already ended or a cancel was taken.
 */
EVEXEC_API int evexec_future_set_error(struct evexec_future *f, int error);

/** 1 if the future has ended, 0 if pending or NULL. */
EVEXEC_API int evexec_future_done(const struct evexec_future *f);

/**
 * The future's error: 0 on success, ECANCELED, ETIMEDOUT, the job's code,
 * an EAI_* code...  EINPROGRESS while pending; EINVAL for NULL.
 */
EVEXEC_API int evexec_future_error(const struct evexec_future *f);

/**
 * The future's result (borrowed: valid while the future is referenced);
 * NULL while pending, after failure or cancel, and for NULL.
 */
EVEXEC_API void *evexec_future_result(const struct evexec_future *f);

/**
 * Take the result out: the caller now owns it and must release it; the
 * future's result becomes NULL.  Returns NULL if there is none.
 */
EVEXEC_API void *evexec_future_take_result(struct evexec_future *f);

/**
 * Ask to cancel.  Returns 0 when the request was taken: a pending future
 * (it ends ECANCELED now), a queued job (it never runs; ends ECANCELED
 * now), a running job (evexec_job_cancelled() turns true; the future ends
 * ECANCELED when the function returns, and any result is released), a job
 * that returned but was not yet delivered (ends ECANCELED), a pending
 * combinator (it cancels what it waits on, as documented for each).
 * Returns EALREADY for a future that already ended, which is left
 * unchanged; EINVAL for NULL.
 */
EVEXEC_API int evexec_future_cancel(struct evexec_future *f);

/** 1 if the future ended ECANCELED. */
EVEXEC_API int evexec_future_cancelled(const struct evexec_future *f);


/**
 * Call cb(f, arg) once f has ended: later, from the loop, even if f has
 * already ended.  Callbacks of one future run in the order they were added.
 * Callbacks added while evexec_free() runs (from other callbacks) still
 * run, inside it.  Returns 0; EINVAL (NULL f or cb); ENOMEM (also past
 * 134217727 callbacks on one future).
 */
EVEXEC_API int evexec_future_on_done(struct evexec_future *f, evexec_done_cb cb,
                                     void *arg);

/** Add a reference.  Returns f (NULL for NULL). */
EVEXEC_API struct evexec_future *evexec_future_ref(struct evexec_future *f);

/** Drop a reference; the last one releases the future and its result.
 *  A pending future that still has done callbacks to run is kept until it
 *  ends (at the latest in evexec_free) and they have run.  Dropping the
 *  last reference to a pending job's future does not cancel the job: it
 *  still runs (or waits in its queue) to the end, and what it returns is
 *  released when it ends, as for a cancelled job; call
 *  evexec_future_cancel() first to stop it.  NULL is ignored. */
EVEXEC_API void evexec_future_unref(struct evexec_future *f);

/** The evexec a future belongs to (borrowed), or NULL for NULL. */
EVEXEC_API struct evexec *evexec_future_get_evexec(const struct evexec_future *f);

/* ------------------------------------------------------------------ */
/* Time and the loop                                                   */
/* ------------------------------------------------------------------ */

/**
 * A future that ends 0 (no result) after `delay`, on a libevent timer.
 * Cancelling it stops the timer.  Returns NULL with errno EINVAL (NULL ex,
 * NULL or negative delay), ENOMEM, ESHUTDOWN.
 */
EVEXEC_API struct evexec_future *evexec_sleep(struct evexec *ex,
                                              const struct timeval *delay);

/**
 * Run the evexec's event_base until f has ended and its done callbacks
 * have run.  Returns f's error (0 on success).  EINVAL for NULL arguments
 * or a future of another evexec; EDEADLK when called from inside this
 * evexec's callbacks or while the base is already running; EIO if the
 * loop failed; ENOMEM if libevent could not add the wake-up event;
 * ESHUTDOWN for an evexec inherited across fork().  Keeps the loop alive
 * (whatever evexec_set_keepalive() says) until then.  A callback that
 * calls evexec_free() meanwhile ends f (ECANCELED unless it had ended)
 * and makes this return once that callback is over.  Loop thread.
 */
EVEXEC_API int evexec_run_until_complete(struct evexec *ex, struct evexec_future *f);

#ifdef __cplusplus
}
#endif

/* Combining futures (gather, wait, as_completed, wait_for) and offloaded
 * I/O (name lookups, files) are declared in these two, kept apart so each
 * room's contract reads on its own. */
#include "evexec-combine.h"
#include "evexec-io.h"

#endif /* EVEXEC_H */
