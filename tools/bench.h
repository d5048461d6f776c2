/*
 * bench.h -- what evexec-bench's backends and workloads share.
 *
 * A backend is a thread pool that answers one event loop.  The driver
 * (evexec-bench.c) sees it only through struct bench_backend: open a pool
 * of `threads` workers, submit a job of one of five kinds from the loop
 * thread, run the loop until nothing is in flight, close.  Every
 * completion is handed to bench_delivered() on the loop thread, which
 * counts it and calls the workload's hook (which may submit more).
 * Optional hooks serve single workloads (w7, w8).
 *
 * Everything here runs on the loop thread except the job bodies
 * (bench_job_*), which run on workers.
 */
#ifndef EVEXEC_BENCH_H
#define EVEXEC_BENCH_H

#include <stdatomic.h>
#include <stdint.h>

enum bench_job {
    BENCH_NOOP = 0,   /* returns at once */
    BENCH_SLEEP,      /* usleep(10 ms) */
    BENCH_GATE,       /* blocks until bench_gate_open() */
    BENCH_SPIN1,      /* busy for about 1 us */
    BENCH_SPIN100,    /* busy for about 100 us */
    BENCH_KINDS
};

struct bench;
struct event_base;

struct bench_backend {
    const char *name;
    /* Make the pool and the loop.  0 or an errno value. */
    int (*open)(struct bench *b);
    /* Queue one job; its completion reaches bench_delivered().  0 or an
     * errno value.  Loop thread (also from inside bench_delivered). */
    int (*submit)(struct bench *b, enum bench_job kind);
    /* Run the loop: call start(b) from inside it first, return once every
     * submitted job was delivered.  0 or an errno value. */
    int (*run)(struct bench *b, void (*start)(struct bench *b));
    /* Tear everything down.  No job in flight. */
    void (*close)(struct bench *b);
    /* Optional (NULL: the backend does not run w8): the loop's base, and
     * evexec_set_drain_budget() on the backend's evexec. */
    struct event_base *(*base)(struct bench *b);
    int (*drain_budget)(struct bench *b, unsigned max_callbacks, unsigned max_usec);
    /* Optional (NULL: the backend's pool has one queue, and w7 sends its
     * slow jobs through submit like the others): queue a job on the
     * pool's slow lane. */
    int (*submit_slow)(struct bench *b, enum bench_job kind);
    /* Optional (NULL: the pool serves one loop only; no w7 with two
     * loops): open `peer` as a second loop on b's pool, with its own
     * state in peer->impl, to be run (submit, run, close) by the calling
     * thread, which is not b's loop thread.  peer->be->close(peer) leaves
     * the pool to b; it is called before b's close.  0 or an errno value. */
    int (*open_peer)(struct bench *peer, struct bench *b);
    /* Optional (NULL: nothing): called around a burst of submissions (w3,
     * w4), for a backend with a batch API (evexec-batch). */
    void (*burst_begin)(struct bench *b);
    void (*burst_end)(struct bench *b);
};

struct bench {
    const struct bench_backend *be;
    void *impl;                        /* the backend's state */
    unsigned threads;
    unsigned spin_us;                  /* evexec-spin: the pool's spin_us */
#define BENCH_SPIN_OFF (~0u)           /* = EVEXEC_SPIN_OFF: --spin off */
    void (*on_done)(struct bench *b);  /* the workload's hook */
    uint64_t submitted;                /* counted by bench_submit() */
    uint64_t delivered;                /* counted by bench_delivered() */
    uint64_t failed;                   /* delivered with an error */
    int submit_error;                  /* first submit failure */
    enum bench_job done_kind;          /* the job bench_delivered() passes on */
};

/* Count a submission's outcome; returns rc. */
static inline int bench_count_submit(struct bench *b, int rc)
{
    if (rc == 0)
        b->submitted++;
    else if (b->submit_error == 0)
        b->submit_error = rc;
    return rc;
}

/* Submit and count.  Returns 0 or the backend's error (kept in b). */
static inline int bench_submit(struct bench *b, enum bench_job kind)
{
    return bench_count_submit(b, b->be->submit(b, kind));
}

/* On the slow lane where the backend has one (w7); else as bench_submit. */
static inline int bench_submit_slow(struct bench *b, enum bench_job kind)
{
    return bench_count_submit(b, b->be->submit_slow ? b->be->submit_slow(b, kind)
                                                    : b->be->submit(b, kind));
}

/* A backend calls this once per completion, on the loop thread; ok is 0
 * when the backend reported an error for that job, kind is the job's. */
static inline void bench_delivered(struct bench *b, int ok, enum bench_job kind)
{
    b->done_kind = kind;
    b->delivered++;
    if (!ok)
        b->failed++;
    if (b->on_done)
        b->on_done(b);
}

/* Job bodies, shared by every backend (evexec-bench.c). */
extern int bench_count_runs;          /* count bench_ran (checks only) */
extern atomic_ullong bench_ran;       /* jobs whose body ran */

static inline void bench_job_noop(void)
{
    /* Counting costs a contended atomic per job, so it is off in timed
     * runs; the loop-side delivered count is always checked. */
    if (bench_count_runs)
        atomic_fetch_add_explicit(&bench_ran, 1, memory_order_relaxed);
}
void bench_job_sleep(void);
void bench_job_gate(void);
void bench_gate_open(void);
void bench_job_spin1(void);
void bench_job_spin100(void);

/* The backends compiled in. */
extern const struct bench_backend bench_evexec;
extern const struct bench_backend bench_evexec_spin;  /* spin_us set */
extern const struct bench_backend bench_evexec_batch; /* bursts batched */
extern const struct bench_backend bench_naive;
#ifdef HAVE_LIBUV
extern const struct bench_backend bench_libuv;
#endif

#endif /* EVEXEC_BENCH_H */
