/*
 * evexec-demo -- run_in_executor, in C, with real threads and a real loop.
 *
 * The asyncio tutorials show run_in_executor with a table: three blocking
 * calls, random_add(5), random_add(8) and random_add(2), where
 * random_add(n) sleeps n delay units and then returns the sum of n random
 * integers.  Called one after another they take the sum of their delays
 * (15 units) and block the loop all that time; handed to a thread pool
 * they overlap, take as long as the longest one (8 units), and the loop
 * stays free.  This program prints those tables, measured, then two more:
 * the pool's results handled one by one as they complete
 * (asyncio.as_completed), and, with --timeout, each call under a timeout
 * that cancels the slow one (asyncio.wait_for).
 *
 * Design.  A mode is one function that runs the three calls its own way
 * and prints one table; adding a mode is one function and one line in
 * demo_modes[].  The pieces modes share:
 *  - struct demo_run: the calls of one run, their times, and a hand-made
 *    future, all_done, that ends when the run is over: every call has
 *    ended, and so has every job future the run watches apart from what
 *    wraps it (the job inside a wait_for).  Modes wait with
 *    evexec_run_until_complete(all_done).
 *  - call_ended(): records a call's finish time and completion order, on
 *    the loop thread; job_done_cb() records when a wrapped job's own future
 *    ended; both end all_done once the run is over.
 *  - print_run(): the shared table printer (print_title() then
 *    print_table(), for modes that print while they run).
 *  - a heartbeat: a plain libevent timer, one delay unit long, counting how
 *    often the loop got to run something else while the calls were busy.
 *
 * Clocks.  The event_base is made with EVENT_BASE_FLAG_PRECISE_TIMER.
 * Without it libevent reads a coarse clock on Linux (a tick of a few ms),
 * so a timer, the timeout of a wait_for included, may fire up to one tick
 * early; at a small --scale that is a good part of a delay unit.
 *
 * Threads.  A worker running random_add_job() reads its struct demo_call
 * and writes only call->start; the loop reads that after the call's future
 * has ended, which the library orders after the function returned.  So a
 * run is over, and its calls may be reused, only once every job's own
 * future has ended, not merely something waiting on it: a wait_for that
 * timed out ends before the job it cancelled has returned.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1   /* POSIX calls under -std=c11 */
#endif

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "evexec.h"

#define PROGNAME "evexec-demo"

#define DEMO_THREADS 4              /* the pool's max_threads */
#define DEMO_DEFAULT_SCALE 0.1      /* seconds per delay unit */
#define DEMO_MAX_SCALE 10.0
#define DEMO_MAX_TIMEOUT 1000.0     /* --timeout, in delay units */
#define DEMO_DEFAULT_SEED 2024
#define DEMO_SLICE_NS 10000000      /* a job looks at cancellation this often */

/* The calls every mode runs, in submission order: delays in units. */
static const unsigned demo_units[] = { 5, 8, 2 };
#define DEMO_NCALLS (sizeof demo_units / sizeof demo_units[0])

struct demo_run;

/* One call of one run. */
struct demo_call {
    struct demo_run *run;
    unsigned index;               /* position in demo_units */
    unsigned units;               /* n: delay units, and how many ints */
    struct evexec_future *future; /* the caller's reference to the job's
                                     future, or NULL */
    struct evexec_future *wrapper;/* the caller's reference to a wait_for
                                     around `future`, or NULL */
    /* Written by whoever runs the call (see "Threads" above). */
    double start;                 /* s since the run began; < 0: never ran */
    /* Written by call_ended() on the loop thread. */
    double finish;                /* s since the run began */
    unsigned order;               /* 1 = ended first; 0 = not ended */
    int error;                    /* 0, or why the call failed */
    long result;                  /* the sum, when error is 0 */
    /* Written by job_done_cb() on the loop thread, when the run watches
     * the job's own future apart from its wrapper. */
    double job_finish;            /* s since the run began */
    int job_error;                /* how the job's own future ended */
};

/* One run: one mode, one table. */
struct demo_run {
    struct demo *demo;
    const char *title;
    struct demo_call calls[DEMO_NCALLS];
    int64_t t0_ns;                /* when the run began (monotonic) */
    unsigned ended;               /* calls ended so far */
    unsigned jobs_watched;        /* job futures watched apart (wait_for) */
    unsigned jobs_ended;          /* of those, ended so far */
    int over;                     /* every call and watched job ended */
    double total;                 /* s from the start to the last end */
    unsigned ticks;               /* heartbeats while calls were busy */
    int error;                    /* a failure seen inside a callback */
    struct event *heartbeat;
    struct evexec_future *all_done;
};

/* The program: options, and what outlives every run. */
struct demo {
    double scale;                 /* seconds per delay unit */
    int64_t unit_ns;
    uint64_t seed;
    double timeout_units;         /* --timeout; < 0: not given */
    struct evexec_pool *pool;
    struct event_base *base;
    struct evexec *ex;
    unsigned nruns;               /* tables printed so far */
    /* Lives until the pool is freed, so a job still running after a failed
     * run never writes into freed memory. */
    struct demo_run run;
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

static int64_t
now_ns(void)
{
    struct timespec ts;

    /* CLOCK_MONOTONIC cannot fail on the systems libevent supports. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Seconds since the run began. */
static double
run_clock(const struct demo_run *run)
{
    return (double)(now_ns() - run->t0_ns) / 1e9;
}

static struct timeval
ns_to_timeval(int64_t ns)
{
    struct timeval tv;

    tv.tv_sec = (time_t)(ns / 1000000000);
    tv.tv_usec = (suseconds_t)(ns % 1000000000 / 1000);
    return tv;
}

/* Print why `what` failed; return code so callers can `return fail(...)`. */
static int
fail(const char *what, int code)
{
    fprintf(stderr, "%s: %s: %s\n", PROGNAME, what, evexec_strerror(code));
    return code;
}

/* splitmix64: a tiny generator whose whole state is one integer, so every
 * call can carry its own and no thread shares one. */
static uint64_t
splitmix64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* ------------------------------------------------------------------ */
/* The blocking function                                               */
/* ------------------------------------------------------------------ */

/*
 * Sleep for call->units delay units.  Given a job, wake every 10 ms to see
 * whether it was cancelled, as a long blocking function should, and return
 * ECANCELED early if so.  The deadline is absolute, so the slices add up
 * to the exact delay.
 */
static int
sleep_units(const struct demo_call *call, const struct evexec_job *job)
{
    const int64_t deadline = now_ns() + (int64_t)call->units * call->run->demo->unit_ns;

    for (;;) {
        int64_t now, wake;
        struct timespec ts;

        if (job != NULL && evexec_job_cancelled(job))
            return ECANCELED;
        now = now_ns();
        if (now >= deadline)
            return 0;
        wake = deadline;
        if (job != NULL && wake - now > DEMO_SLICE_NS)
            wake = now + DEMO_SLICE_NS;
        ts.tv_sec = (time_t)(wake / 1000000000);
        ts.tv_nsec = (long)(wake % 1000000000);
        /* EINTR just means another turn round the loop. */
        (void)clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    }
}

/*
 * random_add(n): sleep n units, then sum n random integers from 1 to 100.
 * The integers depend only on the seed and the call's position, so both
 * runs, and every run with the same --seed, give the same sums.
 * Returns 0 or ECANCELED (job cancelled).
 */
static int
random_add(struct demo_call *call, const struct evexec_job *job, long *sum)
{
    uint64_t state = call->run->demo->seed ^ ((uint64_t)(call->index + 1) << 32);
    long total = 0;
    unsigned i;
    int err;

    call->start = run_clock(call->run);
    err = sleep_units(call, job);
    if (err != 0)
        return err;
    for (i = 0; i < call->units; i++)
        total += (long)(splitmix64(&state) % 100) + 1;
    *sum = total;
    return 0;
}

/* random_add() as a job: the sum becomes the future's result, which the
 * future owns and releases with free(). */
static int
random_add_job(struct evexec_job *job, void *arg)
{
    long sum, *result;
    int err;

    err = random_add(arg, job, &sum);
    if (err != 0)
        return err;
    result = malloc(sizeof *result);
    if (result == NULL)
        return ENOMEM;
    *result = sum;
    evexec_job_set_result(job, result, free);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Runs                                                                */
/* ------------------------------------------------------------------ */

/*
 * Something of the run ended at `now`.  Once every call has ended, and
 * every job future watched apart too, the run is over: end all_done.
 */
static void
run_check_over(struct demo_run *run, double now)
{
    int err;

    if (run->over || run->ended < DEMO_NCALLS || run->jobs_ended < run->jobs_watched)
        return;
    run->over = 1;
    run->total = now;
    /* all_done is NULL once the run was ended early (a failure): the calls
     * still in flight then end during teardown and land here. */
    if (run->all_done == NULL)
        return;
    err = evexec_future_set_result(run->all_done, NULL, NULL);
    if (err != 0 && run->error == 0)
        run->error = fail("evexec_future_set_result", err);
}

/*
 * Record that `call` ended, on the loop thread: its finish time is when the
 * loop learnt of it.
 */
static void
call_ended(struct demo_call *call, int error, long result)
{
    call->finish = run_clock(call->run);
    call->order = ++call->run->ended;
    call->error = error;
    call->result = error == 0 ? result : 0;
    run_check_over(call->run, call->finish);
}

/* The done callback of a call's future. */
static void
call_done_cb(struct evexec_future *f, void *arg)
{
    int error = evexec_future_error(f);
    const long *sum = evexec_future_result(f);

    if (error == 0 && sum == NULL)
        error = EPROTO;           /* a job that forgot its result */
    call_ended(arg, error, error == 0 ? *sum : 0);
}

/* The done callback of a job's own future, when something wraps it. */
static void
job_done_cb(struct evexec_future *f, void *arg)
{
    struct demo_call *call = arg;

    call->job_finish = run_clock(call->run);
    call->job_error = evexec_future_error(f);
    call->run->jobs_ended++;
    run_check_over(call->run, call->job_finish);
}

/* The heartbeat: counts only while the run is not over. */
static void
heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
    struct demo_run *run = arg;

    (void)fd;
    (void)what;
    if (!run->over)
        run->ticks++;
}

/*
 * Begin a run: reset the calls, start the clock and the heartbeat, make
 * all_done.  On failure everything made so far is released.
 */
static int
run_begin(struct demo *d, const char *title)
{
    struct demo_run *run = &d->run;
    struct timeval unit;
    unsigned i;
    int err;

    memset(run, 0, sizeof *run);
    run->demo = d;
    run->title = title;
    for (i = 0; i < DEMO_NCALLS; i++) {
        run->calls[i].run = run;
        run->calls[i].index = i;
        run->calls[i].units = demo_units[i];
        run->calls[i].start = -1.0;
    }

    run->all_done = evexec_future_new(d->ex);
    if (run->all_done == NULL)
        return fail("evexec_future_new", errno);
    run->heartbeat = event_new(d->base, -1, EV_PERSIST, heartbeat_cb, run);
    if (run->heartbeat == NULL) {
        err = fail("event_new", ENOMEM);
        goto fail;
    }
    unit = ns_to_timeval(d->unit_ns);
    if (event_add(run->heartbeat, &unit) != 0) {
        err = fail("event_add", EINVAL);
        goto fail;
    }
    run->t0_ns = now_ns();
    return 0;

fail:
    if (run->heartbeat != NULL)
        event_free(run->heartbeat);
    run->heartbeat = NULL;
    evexec_future_unref(run->all_done);
    run->all_done = NULL;
    return err;
}

/* Run the loop until every call has ended.  Returns 0 or an error. */
static int
run_wait(struct demo_run *run)
{
    int err = evexec_run_until_complete(run->demo->ex, run->all_done);

    if (err != 0)
        return fail("evexec_run_until_complete", err);
    return run->error;
}

/* End a run, finished or not: drop every reference it holds. */
static void
run_end(struct demo_run *run)
{
    unsigned i;

    if (run->heartbeat != NULL)
        event_free(run->heartbeat);
    run->heartbeat = NULL;
    for (i = 0; i < DEMO_NCALLS; i++) {
        evexec_future_unref(run->calls[i].wrapper);
        run->calls[i].wrapper = NULL;
        evexec_future_unref(run->calls[i].future);
        run->calls[i].future = NULL;
    }
    evexec_future_unref(run->all_done);
    run->all_done = NULL;
}

static unsigned
units_sum(void)
{
    unsigned i, sum = 0;

    for (i = 0; i < DEMO_NCALLS; i++)
        sum += demo_units[i];
    return sum;
}

static unsigned
units_max(void)
{
    unsigned i, max = 0;

    for (i = 0; i < DEMO_NCALLS; i++)
        if (demo_units[i] > max)
            max = demo_units[i];
    return max;
}

/* A call's outcome as the result column shows it. */
static void
format_result(const struct demo_call *c, char *buf, size_t size)
{
    if (c->error == 0)
        snprintf(buf, size, "%ld", c->result);
    else if (c->error == ETIMEDOUT)
        snprintf(buf, size, "timed out");
    else
        snprintf(buf, size, "(%s)", evexec_strerror(c->error));
}

/* How a wrapped call's job ended, for the last column. */
static void
format_job(const struct demo_call *c, char *buf, size_t size)
{
    const double due = c->start + c->units * c->run->demo->scale;

    if (c->job_error == 0)
        snprintf(buf, size, "ended %.2f, done", c->job_finish);
    else if (c->job_error == ECANCELED && c->start < 0)
        snprintf(buf, size, "ended %.2f, cancelled before it ran", c->job_finish);
    else if (c->job_error == ECANCELED && c->job_finish < due)
        snprintf(buf, size, "ended %.2f, cancelled: stopped early (due %.2f)",
                 c->job_finish, due);
    else if (c->job_error == ECANCELED)      /* the cancel came too late */
        snprintf(buf, size, "ended %.2f, cancelled (due %.2f)", c->job_finish, due);
    else
        snprintf(buf, size, "ended %.2f (%s)", c->job_finish,
                 evexec_strerror(c->job_error));
}

/* A table's title line.  Modes that print as results come print it first. */
static void
print_title(const struct demo_run *run)
{
    printf("\n%u. %s\n", run->demo->nruns, run->title);
}

/*
 * The shared table printer, below the title.  `note` explains the total,
 * e.g. "pool: longest delay 8 units".  A run that watched its jobs apart
 * from what wraps them (wait_for) gets a last column: how each job's own
 * future ended.
 */
static void
print_table(const struct demo_run *run, const char *note)
{
    const struct demo *d = run->demo;
    const int jobs = run->jobs_watched > 0;
    unsigned i;

    if (jobs)
        printf("  %-14s %7s %7s %6s %10s  %s\n", "call", "start", "finish", "order",
               "result", "the job's own future");
    else
        printf("  %-14s %7s %7s %6s %7s\n", "call", "start", "finish", "order", "result");
    for (i = 0; i < DEMO_NCALLS; i++) {
        const struct demo_call *c = &run->calls[i];
        char name[32], start[16], result[48], job[80];

        snprintf(name, sizeof name, "random_add(%u)", c->units);
        if (c->start < 0)
            snprintf(start, sizeof start, "-");
        else
            snprintf(start, sizeof start, "%.2f", c->start);
        format_result(c, result, sizeof result);
        printf("  %-14s %7s %7.2f %6u  ", name, start, c->finish, c->order);
        if (jobs) {
            format_job(c, job, sizeof job);
            printf("%9s  %s\n", result, job);
        } else {
            printf("%6s\n", result);
        }
    }
    printf("  total %.2f s (%s)\n", run->total, note);
    printf("  heartbeat: a %.2f s loop timer fired %u time%s meanwhile (%s)\n",
           d->scale, run->ticks, run->ticks == 1 ? "" : "s",
           run->ticks > 0 ? "the loop stayed free" :
           run->total < d->scale ? "the run was over first" : "the loop was blocked");
}

/* Title and table, for a run printed once it is over. */
static void
print_run(const struct demo_run *run, const char *note)
{
    print_title(run);
    print_table(run, note);
}

/* ------------------------------------------------------------------ */
/* Modes: one function, one table each                                */
/* ------------------------------------------------------------------ */

/* Runs the three calls back to back inside one loop callback, as a
 * coroutine calling random_add() directly would: the loop is stuck. */
static void
sequential_body(void *arg)
{
    struct demo_run *run = arg;
    unsigned i;

    for (i = 0; i < DEMO_NCALLS; i++) {
        long sum = 0;
        int err = random_add(&run->calls[i], NULL, &sum);

        call_ended(&run->calls[i], err, sum);
    }
}

/* 1. sequential: one after another on the loop thread. */
static int
mode_sequential(struct demo *d)
{
    struct demo_run *run = &d->run;
    unsigned i;
    int err;

    err = run_begin(d, "sequential: one after another on the loop thread");
    if (err != 0)
        return err;
    err = evexec_call_soon_threadsafe(d->ex, sequential_body, run);
    if (err != 0) {
        fail("evexec_call_soon_threadsafe", err);
        goto out;
    }
    err = run_wait(run);
    for (i = 0; err == 0 && i < DEMO_NCALLS; i++)
        err = run->calls[i].error;
    if (err == 0) {
        char note[64];

        d->nruns++;
        snprintf(note, sizeof note, "sequential: sum of delays %u units", units_sum());
        print_run(run, note);
    }
out:
    run_end(run);
    return err;
}

/* Submit call c to the pool; with a done callback when cb is not NULL.
 * Returns 0, or the error after saying so. */
static int
submit_call(struct demo *d, struct demo_call *c, evexec_done_cb cb)
{
    int err;

    c->future = evexec_run(d->ex, random_add_job, c);
    if (c->future == NULL)
        return fail("evexec_run", errno);
    if (cb != NULL && (err = evexec_future_on_done(c->future, cb, c)) != 0)
        return fail("evexec_future_on_done", err);
    return 0;
}

/* 2. pool: evexec_run() all three at once; print when all are done. */
static int
mode_pool(struct demo *d)
{
    struct demo_run *run = &d->run;
    unsigned i;
    int err;

    err = run_begin(d, "pool: evexec_run() all three at once, results when all are done");
    if (err != 0)
        return err;
    for (i = 0; i < DEMO_NCALLS; i++) {
        struct demo_call *c = &run->calls[i];

        err = submit_call(d, c, call_done_cb);
        if (err != 0)
            goto out;
    }
    err = run_wait(run);
    for (i = 0; err == 0 && i < DEMO_NCALLS; i++)
        if (run->calls[i].error != 0)
            err = fail("random_add", run->calls[i].error);
    if (err == 0) {
        char note[64];

        d->nruns++;
        snprintf(note, sizeof note, "pool: longest delay %u units", units_max());
        print_run(run, note);
    }
out:
    run_end(run);
    return err;
}

/* each() of as_completed: one call's future has ended; the loop handles
 * its result now, before the others are in. */
static void
as_completed_each(struct evexec_future *f, void *arg)
{
    struct demo_run *run = arg;
    struct demo_call *call = NULL;
    char result[48];
    unsigned i;

    for (i = 0; i < DEMO_NCALLS; i++)
        if (run->calls[i].future == f)
            call = &run->calls[i];
    if (call == NULL) {           /* a future it was not given */
        if (run->error == 0)
            run->error = fail("evexec_as_completed", EPROTO);
        return;
    }
    call_done_cb(f, call);
    format_result(call, result, sizeof result);
    printf("  each() at %.2f s: random_add(%u) = %s (call %u)\n",
           call->finish, call->units, result, call->index + 1);
    fflush(stdout);               /* show it now, even through a pipe */
}

/* 3. as_completed: evexec_run() all three at once, and let the loop handle
 *    each result as soon as it is in. */
static int
mode_as_completed(struct demo *d)
{
    struct demo_run *run = &d->run;
    struct evexec_future *fs[DEMO_NCALLS], *walk = NULL;
    unsigned i;
    int err;

    err = run_begin(d, "as_completed: each result handled as it completes, "
                       "not all at the end (asyncio.as_completed)");
    if (err != 0)
        return err;
    for (i = 0; i < DEMO_NCALLS; i++) {
        struct demo_call *c = &run->calls[i];

        err = submit_call(d, c, NULL);
        if (err != 0)
            goto out;
        fs[i] = c->future;
    }
    walk = evexec_as_completed(d->ex, fs, DEMO_NCALLS, as_completed_each, run);
    if (walk == NULL) {
        err = fail("evexec_as_completed", errno);
        goto out;
    }
    /* each() prints as the results come, so the title goes first. */
    d->nruns++;
    print_title(run);
    /* The walk is a future too, ending right after the last each(): wait
     * for it, as `for f in asyncio.as_completed(...)` would.  Every call
     * has ended by then, and all_done with them. */
    err = evexec_run_until_complete(d->ex, walk);
    if (err != 0) {
        fail("evexec_run_until_complete", err);
        goto out;
    }
    err = run->error;
    if (err == 0)
        err = run_wait(run);
    for (i = 0; err == 0 && i < DEMO_NCALLS; i++)
        if (run->calls[i].error != 0)
            err = fail("random_add", run->calls[i].error);
    if (err == 0) {
        char note[96];

        snprintf(note, sizeof note,
                 "as_completed: longest delay %u units, each result used as it came",
                 units_max());
        print_table(run, note);
    }
out:
    evexec_future_unref(walk);
    run_end(run);
    return err;
}

/*
 * 4. wait_for: evexec_run() all three at once, each under evexec_wait_for()
 *    with the --timeout.  A call that outlasts it ends ETIMEDOUT and its job
 *    is cancelled: random_add() sees that within 10 ms and returns, so the
 *    job's own future ends ECANCELED soon after the timeout.  The run is
 *    over when those have ended too.  Without --timeout, only say how.
 */
static int
mode_wait_for(struct demo *d)
{
    struct demo_run *run = &d->run;
    struct timeval timeout;
    char title[128];
    unsigned i, ntimedout = 0;
    int err;

    if (d->timeout_units < 0) {
        printf("\nTry --timeout 6: every call under evexec_wait_for(); "
               "random_add(%u) times out, its job cancelled.\n", units_max());
        return 0;
    }
    snprintf(title, sizeof title,
             "wait_for: each call under evexec_wait_for(), timeout %g units "
             "(asyncio.wait_for)", d->timeout_units);
    err = run_begin(d, title);
    if (err != 0)
        return err;
    timeout = ns_to_timeval((int64_t)(d->timeout_units * (double)d->unit_ns + 0.5));
    for (i = 0; i < DEMO_NCALLS; i++) {
        struct demo_call *c = &run->calls[i];

        err = submit_call(d, c, job_done_cb);
        if (err != 0)
            goto out;
        run->jobs_watched++;
        c->wrapper = evexec_wait_for(d->ex, c->future, &timeout);
        if (c->wrapper == NULL) {
            err = fail("evexec_wait_for", errno);
            goto out;
        }
        err = evexec_future_on_done(c->wrapper, call_done_cb, c);
        if (err != 0) {
            fail("evexec_future_on_done", err);
            goto out;
        }
    }
    err = run_wait(run);
    /* Timed out means: the wait_for ended ETIMEDOUT and the job ECANCELED.
     * Anything else but success is a failure. */
    for (i = 0; err == 0 && i < DEMO_NCALLS; i++) {
        const struct demo_call *c = &run->calls[i];

        if (c->error == ETIMEDOUT && c->job_error == ECANCELED)
            ntimedout++;
        else if (c->error != 0)
            err = fail("random_add under evexec_wait_for", c->error);
        else if (c->job_error != 0)
            err = fail("random_add", c->job_error);
    }
    if (err == 0) {
        char note[96];

        if (ntimedout == 0)
            snprintf(note, sizeof note, "wait_for: every call beat the %g-unit timeout",
                     d->timeout_units);
        else
            snprintf(note, sizeof note,
                     "wait_for: %u call%s timed out at %g units, %s cancelled",
                     ntimedout, ntimedout == 1 ? "" : "s", d->timeout_units,
                     ntimedout == 1 ? "its job" : "their jobs");
        d->nruns++;
        print_run(run, note);
    }
out:
    run_end(run);
    return err;
}

struct demo_mode {
    const char *name;
    int (*run)(struct demo *d);
};

/* Run in this order, one table each. */
static const struct demo_mode demo_modes[] = {
    { "sequential", mode_sequential },
    { "pool", mode_pool },
    { "as_completed", mode_as_completed },
    { "wait_for", mode_wait_for },
};

/* ------------------------------------------------------------------ */
/* Options and main                                                    */
/* ------------------------------------------------------------------ */

static void
usage(FILE *out)
{
    fprintf(out,
        "Usage: " PROGNAME " [--scale SECONDS] [--seed N] [--timeout UNITS]\n"
        "\n"
        "Shows what evexec is for, the way asyncio tutorials show\n"
        "run_in_executor.  random_add(n) is a blocking call: it sleeps n\n"
        "delay units, then returns the sum of n random integers from 1 to 100.\n"
        "The demo runs random_add(5), random_add(8) and random_add(2) first one\n"
        "after another on the loop thread, then all at once on a pool of %d\n"
        "worker threads with evexec_run(), then on the pool again with\n"
        "evexec_as_completed(), which hands each result to the loop as soon as\n"
        "it is in.  For each call it prints when it started and finished\n"
        "(seconds since the run began), in which order it completed, and its\n"
        "result.\n"
        "\n"
        "  --scale SECONDS  length of one delay unit, at most %g (default %g)\n"
        "  --seed N         seed of the random integers (default %d)\n"
        "  --timeout UNITS  add a table where each call runs under\n"
        "                   evexec_wait_for() with this timeout, in delay units\n"
        "                   (0 to %g; default: no such table).  A call that\n"
        "                   outlasts it ends \"timed out\" and its job is\n"
        "                   cancelled; try --timeout 6\n"
        "  -h, --help       print this help and exit\n"
        "\n"
        "Exit status: 0 on success, 1 if evexec or libevent failed, 2 for bad\n"
        "usage.\n",
        DEMO_THREADS, DEMO_MAX_SCALE, DEMO_DEFAULT_SCALE, DEMO_DEFAULT_SEED,
        DEMO_MAX_TIMEOUT);
}

/* Parse the options into d.  Returns 0, or the exit status to leave with. */
static int
parse_options(struct demo *d, int argc, char **argv)
{
    static const struct option longopts[] = {
        { "scale", required_argument, NULL, 's' },
        { "seed", required_argument, NULL, 'r' },
        { "timeout", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;

    d->scale = DEMO_DEFAULT_SCALE;
    d->seed = DEMO_DEFAULT_SEED;
    d->timeout_units = -1.0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        char *end;

        switch (c) {
        case 's':
            errno = 0;
            d->scale = strtod(optarg, &end);
            /* Written so that NaN fails too. */
            if (errno != 0 || end == optarg || *end != '\0' ||
                !(d->scale > 0 && d->scale <= DEMO_MAX_SCALE)) {
                fprintf(stderr, "%s: --scale: want seconds, above 0 and at most %g: '%s'\n",
                        PROGNAME, DEMO_MAX_SCALE, optarg);
                return 2;
            }
            break;
        case 'r':
            errno = 0;
            d->seed = strtoull(optarg, &end, 0);
            if (errno != 0 || end == optarg || *end != '\0' || optarg[0] == '-') {
                fprintf(stderr, "%s: --seed: want an unsigned integer: '%s'\n",
                        PROGNAME, optarg);
                return 2;
            }
            break;
        case 't':
            errno = 0;
            d->timeout_units = strtod(optarg, &end);
            /* Written so that NaN fails too; "-0" is refused with the rest. */
            if (errno != 0 || end == optarg || *end != '\0' || optarg[0] == '-' ||
                !(d->timeout_units >= 0 && d->timeout_units <= DEMO_MAX_TIMEOUT)) {
                fprintf(stderr, "%s: --timeout: want delay units, from 0 to %g: '%s'\n",
                        PROGNAME, DEMO_MAX_TIMEOUT, optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return -1;
        default:
            fprintf(stderr, "Try '%s --help'.\n", PROGNAME);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\nTry '%s --help'.\n",
                PROGNAME, argv[optind], PROGNAME);
        return 2;
    }
    d->unit_ns = (int64_t)(d->scale * 1e9 + 0.5);
    if (d->unit_ns < 1000)
        d->unit_ns = 1000;        /* libevent timers count microseconds */
    return 0;
}

int
main(int argc, char **argv)
{
    static struct demo d;         /* static: large, and zeroed */
    struct evexec_pool_config cfg;
    struct event_config *ecfg;
    int status = 1;
    size_t i;

    status = parse_options(&d, argc, argv);
    if (status != 0)
        return status < 0 ? 0 : status;
    status = 1;

    memset(&cfg, 0, sizeof cfg);
    cfg.max_threads = DEMO_THREADS;
    cfg.thread_name = "demo";
    d.pool = evexec_pool_new(&cfg);
    if (d.pool == NULL) {
        fail("evexec_pool_new", errno);
        goto out;
    }
    /* A precise clock: timeouts then never fire early (see "Clocks"). */
    ecfg = event_config_new();
    if (ecfg != NULL) {
        if (event_config_set_flag(ecfg, EVENT_BASE_FLAG_PRECISE_TIMER) == 0)
            d.base = event_base_new_with_config(ecfg);
        event_config_free(ecfg);
    }
    if (d.base == NULL) {
        fprintf(stderr, "%s: event_base_new_with_config failed\n", PROGNAME);
        goto out;
    }
    d.ex = evexec_new(d.base, d.pool);
    if (d.ex == NULL) {
        fail("evexec_new", errno);
        goto out;
    }

    printf("evexec %s: run_in_executor for libevent, on a pool of %d threads\n",
           evexec_version(), DEMO_THREADS);
    printf("random_add(n) sleeps n units of %.2f s, then sums n random ints "
           "from 1 to 100 (seed %" PRIu64 ")\n", d.scale, d.seed);
    for (i = 0; i < sizeof demo_modes / sizeof demo_modes[0]; i++) {
        if (demo_modes[i].run(&d) != 0) {
            fprintf(stderr, "%s: mode '%s' failed\n", PROGNAME, demo_modes[i].name);
            goto out;
        }
    }
    if (fflush(stdout) != 0) {
        fail("stdout", errno);
        goto out;
    }
    status = 0;

out:
    /* Order matters: the evexec ends what is still pending (its callbacks
     * still see d.run), the pool then waits for running jobs, and only
     * then may the memory they write into go. */
    evexec_free(d.ex);
    if (d.base != NULL)
        event_base_free(d.base);
    evexec_pool_free(d.pool);
    libevent_global_shutdown();
    return status;
}
