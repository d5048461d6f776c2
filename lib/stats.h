/*
 * stats.h -- what a pool counts per lane, and which job each worker runs.
 *
 * The pool embeds a struct evexec__pstats and calls the inline hooks
 * below from its workers and submissions (no allocation); stats.c reads
 * them through evexec__pool_stats_locked() for evexec_pool_lane_stats(),
 * the watchdog and the stats socket.
 *
 * Timing is the pool's opt-in (`timing`, set once before any thread):
 * reading the clock twice per job on the worker and once per submission
 * costs about 15 % of the instructions of the quickest jobs, so without
 * it the histograms stay empty and only the counters are kept.
 *
 *  - taken: jobs a worker took, under pool->lock (held then anyway).
 *  - completed: jobs whose function returned, counted by the worker
 *    before it hands the job back, so a loop that has seen the job end
 *    sees it counted.  Atomic (relaxed): the worker holds no lock then.
 *  - wait_hist: time queued, counted as `taken` is (timing only).
 *  - run_hist: time running, counted as `completed` is (timing only).
 *  - cancelled: jobs taken off a queue without running, under pool->lock.
 *  - workers: every live worker's slot (on the worker's own stack), linked
 *    and unlinked under pool->lock: the job it runs (owner, lane, start;
 *    without timing, the watchdog stamps the start when it first sees
 *    the job).
 */
#ifndef EVEXEC_STATS_H
#define EVEXEC_STATS_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "evexec-internal.h"

/* A worker's slot: what it runs now.  All fields under pool->lock. */
struct evexec__wslot {
    struct evexec__wslot *prev, *next;
    const struct evexec__pool_owner *owner;  /* the job's (NULL: pool's) */
    uint64_t start_ns;                       /* taken (CLOCK_MONOTONIC);
                                                0: not timed yet */
    unsigned char busy;                      /* running a job */
    unsigned char lane;
    unsigned char reported;                  /* the watchdog told it */
};

struct evexec__pstats {
    unsigned char timing;                                   /* set once */
    unsigned char watched;      /* a watchdog was set on an evexec of the
                                   pool: workers hold no jobs from then on
                                   (pool.c), so that each job is timed from
                                   its own start.  pool->lock; set once */
    uint64_t taken[EVEXEC_MAX_LANES];                    /* pool->lock */
    atomic_uint_fast64_t completed[EVEXEC_MAX_LANES];    /* atomic */
    uint64_t wait_hist[EVEXEC_MAX_LANES][EVEXEC_HIST_BUCKETS];
                                                         /* pool->lock */
    atomic_uint_fast64_t run_hist[EVEXEC_MAX_LANES][EVEXEC_HIST_BUCKETS];
                                                         /* atomic */
    uint64_t cancelled[EVEXEC_MAX_LANES];                /* pool->lock */
    struct evexec__wslot *workers;                          /* pool->lock */
};

/* CLOCK_MONOTONIC in nanoseconds (the vDSO: no system call on Linux). */
static inline uint64_t evexec__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The bucket of a duration: floor(log2(us)), 0 for 0 and 1, at most the
 * last. */
static inline unsigned evexec__hist_bucket(uint64_t us)
{
    if (us < 2)
        return 0;
    unsigned b = 63u - (unsigned)__builtin_clzll(us);
    return b < EVEXEC_HIST_BUCKETS ? b : EVEXEC_HIST_BUCKETS - 1;
}

/* Nanoseconds from a to b in microseconds; 0 if b is before a. */
static inline uint64_t evexec__elapsed_us(uint64_t a, uint64_t b)
{
    return b > a ? (b - a) / 1000u : 0;
}

/* A submission: stamp the job, or a chain of jobs linked through qnext,
 * with one clock read (timing only).  The submitter owns them (not yet
 * queued).  The stamp is 32 bits of microseconds (it shares its room in
 * the job with the job's error): a time queued is exact up to 71 minutes
 * and counted modulo 2^32 us beyond. */
static inline void evexec__stats_stamp(const struct evexec__pstats *st,
                                       struct evexec_job *job, int chain)
{
    if (!st->timing)
        return;
    uint32_t now = (uint32_t)(evexec__now_ns() / 1000u);
    for (; job; job = chain ? job->qnext : NULL)
        job->queued_us = now;
}

/* A worker took `job`: count it (and its time queued) and fill the
 * worker's slot.  Caller holds pool->lock.  Returns the start time for
 * evexec__stats_ran() (0 without timing). */
static inline uint64_t evexec__stats_take(struct evexec__pstats *st,
                                          struct evexec__wslot *slot,
                                          const struct evexec_job *job)
{
    uint64_t now = 0;
    st->taken[job->lane]++;
    if (st->timing) {
        now = evexec__now_ns();
        st->wait_hist[job->lane][evexec__hist_bucket(
            (uint32_t)((uint32_t)(now / 1000u) - job->queued_us))]++;
    }
    slot->owner = job->owner;
    slot->lane = job->lane;
    slot->start_ns = now;
    slot->reported = 0;
    slot->busy = 1;
    return now;
}

/* The job a worker took at `start` returned: count it (and its time
 * running).  No lock held; before the job is handed back. */
static inline void evexec__stats_ran(struct evexec__pstats *st, int lane,
                                     uint64_t start)
{
    if (st->timing) {
        unsigned b = evexec__hist_bucket(evexec__elapsed_us(start, evexec__now_ns()));
        atomic_fetch_add_explicit(&st->run_hist[lane][b], 1, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&st->completed[lane], 1, memory_order_relaxed);
}

/* A worker starts (link its slot) or exits (unlink it).  Caller holds
 * pool->lock. */
static inline void evexec__wslot_link(struct evexec__pstats *st,
                                      struct evexec__wslot *slot)
{
    slot->owner = NULL;
    slot->start_ns = 0;
    slot->busy = slot->lane = slot->reported = 0;
    slot->prev = NULL;
    slot->next = st->workers;
    if (st->workers)
        st->workers->prev = slot;
    st->workers = slot;
}

static inline void evexec__wslot_unlink(struct evexec__pstats *st,
                                        struct evexec__wslot *slot)
{
    struct evexec__wslot *no_tail = NULL;   /* the list keeps no tail */
    EVEXEC__DLIST_UNLINK(st->workers, no_tail, slot, prev, next);
    (void)no_tail;
}

#endif /* EVEXEC_STATS_H */
