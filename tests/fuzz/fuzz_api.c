/*
 * fuzz_api.c -- libFuzzer harness for the evexec API (see README.md here).
 *
 * Each input is a program: a few configuration bytes, then up to MAX_OPS
 * operations on one event_base, one pool (2-3 workers) and one evexec.
 * After every operation the harness checks the contract of
 * include/evexec.h (and the project's design card) and abort()s on a violation,
 * which libFuzzer reports as a crash:
 *
 *  - a done callback, an as_completed each() or a call_soon_threadsafe
 *    function runs at most once, on the loop thread, never while the
 *    harness is inside an API call (other than the loop, run_until_complete
 *    and evexec_free, which run callbacks by design);
 *  - a future never goes from done back to pending; a done future's error
 *    (and result) stays the same; a failed future has no result;
 *  - cancel returns 0 or EALREADY, EALREADY exactly when the future was
 *    done, and a taken cancel ends the future ECANCELED (at once where the
 *    header says so);
 *  - combinators end as documented (gather, wait, wait_for, as_completed,
 *    groups) relative to their inputs;
 *  - a job cancelled while queued never runs; a job runs at most once;
 *  - after evexec_free() every callback registered on a future ran
 *    exactly once, every call_soon_threadsafe() call that returned 0 ran
 *    exactly once (and none that failed ran); after evexec_pool_free()
 *    every result destructor and every arg_free ran exactly once.
 *
 * Every wait has a deadline: jobs wait at most 1.75 ms, sleeps and
 * combinator timeouts at most 2 ms, EVLOOP_ONCE is used only with the
 * keep-alive off, and run_until_complete only on a fresh sleep or a
 * wait_for with a timeout.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "evexec.h"

#define MAX_OPS 64
#define MAX_FS 512        /* futures tracked per input */
#define MAX_CBS 1024      /* done callbacks registered per input */
#define MAX_RES 4096      /* results made per input */
#define MAX_JOBS 1024     /* jobs submitted per input */
#define MAX_CALLS 1024    /* call_soon_threadsafe calls per input */
#define MAX_AC 64         /* as_completed per input */
#define MAX_GROUPS 4
#define MAX_IN 6          /* inputs of one combinator */
#define MAX_TAKEN 1024

static void fail(int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "fuzz_api.c:%d: contract violated: ", line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}
#define CHECK(c, ...) do { if (!(c)) fail(__LINE__, __VA_ARGS__); } while (0)

/* ---- input ------------------------------------------------------------ */

static const uint8_t *in_p;
static size_t in_n;

static unsigned u8(void)
{
    if (in_n == 0)
        return 0;
    in_n--;
    return *in_p++;
}

/* ---- state of one input ------------------------------------------------ */

static struct event_base *base;
static struct evexec_pool *pool;
static struct evexec *ex;
static pthread_t loop_thread;
static int in_api;          /* >0 while the harness is inside an API call */
static int tearing_down;    /* evexec_free() is running */
static int ex_freed;        /* evexec_free() returned (or was called from a callback) */
static int keepalive;
static int pool_shut;
static size_t max_queued;
static int any_take;        /* some result was taken: borrowed copies may be stale */

#define API(stmt) do { in_api++; stmt; in_api--; } while (0)

static void check_loop_context(const char *what)
{
    CHECK(pthread_equal(pthread_self(), loop_thread), "%s ran off the loop thread", what);
    CHECK(in_api == 0, "%s ran inside an API call", what);
}

/* Results, with a destructor that counts. */
#define RES_MAGIC 0x52455355u
struct res {
    uint32_t magic;
    uint32_t id;
};
static atomic_int n_res;
static atomic_int res_freed[MAX_RES];

static struct res *res_new(void)
{
    int id = atomic_fetch_add(&n_res, 1);
    if (id >= MAX_RES)
        return NULL;
    struct res *r = malloc(sizeof *r);
    if (!r)
        abort();
    r->magic = RES_MAGIC;
    r->id = (uint32_t)id;
    return r;
}

static void res_check(const void *p, const char *what)
{
    const struct res *r = p;
    CHECK(r->magic == RES_MAGIC && r->id < MAX_RES, "%s: not a live result", what);
}

static void res_free(void *p)
{
    struct res *r = p;
    res_check(r, "result destructor");
    int before = atomic_fetch_add(&res_freed[r->id], 1);
    CHECK(before == 0, "result %u released twice", r->id);
    r->magic = 0xdeadbeef;
    free(r);
}

static void *taken[MAX_TAKEN];
static int n_taken;

/* Jobs. */
#define JARG_MAGIC 0x4a415247u
enum { JOB_INSTANT, JOB_WAIT };
struct jarg {
    uint32_t magic;
    int id;
    int kind;
    int ret;              /* JOB_INSTANT: returned; JOB_WAIT: returned on timeout */
    int n_results;        /* 0, 1 or 2 calls of evexec_job_set_result */
    unsigned wait_us;
};
static atomic_int n_jobs;
static atomic_int job_ran[MAX_JOBS];
static atomic_int job_argfreed[MAX_JOBS];
static atomic_int job_must_not_run[MAX_JOBS];
static int job_submitted[MAX_JOBS];

static int job_fn(struct evexec_job *job, void *arg)
{
    struct jarg *j = arg;
    CHECK(j->magic == JARG_MAGIC, "job argument corrupt");
    CHECK(!pthread_equal(pthread_self(), loop_thread), "job ran on the loop thread");
    CHECK(atomic_fetch_add(&job_ran[j->id], 1) == 0, "job %d ran twice", j->id);
    CHECK(!atomic_load(&job_must_not_run[j->id]),
          "job %d ran after a cancel that ended it while queued", j->id);
    for (int i = 0; i < j->n_results; i++) {
        struct res *r = res_new();
        if (r)
            evexec_job_set_result(job, r, res_free);
    }
    if (j->kind == JOB_WAIT) {
        struct timespec ts = { 0, (long)j->wait_us * 1000 };
        int rc = evexec_job_wait_cancel(job, &ts);
        CHECK(rc == ECANCELED || rc == ETIMEDOUT, "evexec_job_wait_cancel returned %d", rc);
        if (rc == ECANCELED) {
            CHECK(evexec_job_cancelled(job), "wait_cancel said ECANCELED, job_cancelled says no");
            return ECANCELED;
        }
    }
    return j->ret;
}

static void jarg_free(void *arg)
{
    struct jarg *j = arg;
    CHECK(j->magic == JARG_MAGIC, "arg_free: argument corrupt");
    CHECK(atomic_fetch_add(&job_argfreed[j->id], 1) == 0, "arg_free of job %d twice", j->id);
    j->magic = 0;
    free(j);
}

/* Tracked futures. */
enum kind { K_JOB, K_MANUAL, K_SLEEP, K_GATHER, K_WAIT, K_WAITFOR, K_AC, K_GROUP };
struct fstate {
    struct evexec_future *f;
    int kind;
    int refs;             /* references the harness holds */
    int done_seen, err;
    void *res_seen;
    int cancel_taken;
    int taken;
    int cb_added, cb_ran; /* done callbacks registered through this record */
    void *set_ptr;        /* K_MANUAL: the result it was given */
    int job_id;           /* K_JOB */
    /* combinators: inputs (kept referenced by the combinator itself) */
    int n_in;
    struct evexec_future *in[MAX_IN];
    unsigned char in_done_at_create[MAX_IN];
    int flags, when, has_timeout;
    struct acrec *ac;     /* K_AC */
    struct grec *group;   /* K_GROUP */
};
static struct fstate fss[MAX_FS];
static int n_fs;

/* as_completed. */
struct acrec {
    int n;
    int calls;
    int calls_at_cancel;  /* -1: no cancel taken */
};
static struct acrec acs[MAX_AC];
static int n_acs;

/* Groups. */
struct grec {
    struct evexec_group *g;
    int live;
    struct evexec_future *gf;    /* the group's future, once known */
    struct fstate *members[MAX_FS / 8];
    int n_members;
};
static struct grec groups[MAX_GROUPS];
static int n_groups;

/* Done callbacks. */
enum cb_action {
    CB_PLAIN, CB_OWN_REF, CB_CANCEL_OTHER, CB_SET_OTHER, CB_RUN_JOB,
    CB_CALL_SOON, CB_ADD_CB, CB_FREE_EX, CB_N
};
struct cbrec {
    struct fstate *fs;
    struct evexec_future *f;
    int index;            /* order among fs's callbacks */
    int action, arg;
    int calls;
    int registered;
};
static struct cbrec cbs[MAX_CBS];
static int n_cbs;

/* call_soon_threadsafe calls. */
struct crec {
    atomic_int calls;
    atomic_int ok;        /* 1: the call returned 0; 2: it failed */
    int source;           /* 0: loop thread, 1: helper */
    unsigned seq;
};
static struct crec crecs[MAX_CALLS];
static atomic_int n_crecs;
static unsigned seq_made[2];     /* per source, by its thread */
static unsigned seq_ran[2];      /* loop thread */
static int seq_any[2];

/* ---- forward ---------------------------------------------------------- */

static void check_all(void);
static struct fstate *add_cb(struct fstate *fs, int action, int arg);
static void do_free_ex(void);

/* ---- helper thread for call_soon_threadsafe ---------------------------- */

static struct {
    pthread_t t;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started, pending, busy, stop;
} H = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static void call_fn(void *arg)
{
    struct crec *c = arg;
    check_loop_context("call_soon_threadsafe function");
    CHECK(atomic_fetch_add(&c->calls, 1) == 0, "call_soon_threadsafe function ran twice");
    if (seq_any[c->source])
        CHECK(c->seq > seq_ran[c->source], "call_soon_threadsafe calls ran out of order");
    seq_any[c->source] = 1;
    seq_ran[c->source] = c->seq;
}

/* Make one call; returns its result. */
static int make_call(int source)
{
    int i = atomic_fetch_add(&n_crecs, 1);
    if (i >= MAX_CALLS)
        return -1;
    struct crec *c = &crecs[i];
    c->source = source;
    c->seq = ++seq_made[source];
    int rc = evexec_call_soon_threadsafe(ex, call_fn, c);
    atomic_store(&c->ok, rc == 0 ? 1 : 2);
    return rc;
}

static void *helper_main(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&H.mu);
    for (;;) {
        while (!H.pending && !H.stop)
            pthread_cond_wait(&H.cv, &H.mu);
        if (!H.pending)
            break;
        int k = H.pending;
        H.pending = 0;
        H.busy = 1;
        pthread_mutex_unlock(&H.mu);
        for (int i = 0; i < k; i++) {
            int rc = make_call(1);
            CHECK(rc == 0 || rc == -1, "call_soon_threadsafe from a thread returned %d", rc);
        }
        pthread_mutex_lock(&H.mu);
        H.busy = 0;
        pthread_cond_broadcast(&H.cv);
    }
    pthread_mutex_unlock(&H.mu);
    return NULL;
}

static void helper_request(int k)
{
    if (!H.started) {
        H.pending = H.busy = H.stop = 0;
        if (pthread_create(&H.t, NULL, helper_main, NULL) != 0)
            return;
        H.started = 1;
    }
    pthread_mutex_lock(&H.mu);
    H.pending += k;
    pthread_cond_broadcast(&H.cv);
    pthread_mutex_unlock(&H.mu);
}

static void helper_quiesce(void)
{
    if (!H.started)
        return;
    pthread_mutex_lock(&H.mu);
    while (H.pending || H.busy)
        pthread_cond_wait(&H.cv, &H.mu);
    pthread_mutex_unlock(&H.mu);
}

static void helper_stop(void)
{
    if (!H.started)
        return;
    pthread_mutex_lock(&H.mu);
    H.stop = 1;
    pthread_cond_broadcast(&H.cv);
    pthread_mutex_unlock(&H.mu);
    pthread_join(H.t, NULL);
    H.started = 0;
}

/* ---- futures ------------------------------------------------------------ */

static struct fstate *track(struct evexec_future *f, int kind)
{
    if (n_fs >= MAX_FS) {
        /* Out of records: give the reference back. */
        API(evexec_future_unref(f));
        return NULL;
    }
    struct fstate *fs = &fss[n_fs++];
    memset(fs, 0, sizeof *fs);
    fs->f = f;
    fs->kind = kind;
    fs->refs = 1;
    fs->job_id = -1;
    return fs;
}

static int n_live(void)
{
    int n = 0;
    for (int i = 0; i < n_fs; i++)
        n += fss[i].refs > 0;
    return n;
}

/* The live future chosen by the next input byte, or NULL. */
static struct fstate *pick(void)
{
    int n = n_live();
    unsigned b = u8();
    if (n == 0)
        return NULL;
    int k = (int)(b % (unsigned)n);
    for (int i = 0; i < n_fs; i++)
        if (fss[i].refs > 0 && k-- == 0)
            return &fss[i];
    return NULL;
}

static void check_null_errno(const char *what, int allowed_einval)
{
    int e = errno;
    if (tearing_down) {
        CHECK(e == ESHUTDOWN, "%s during evexec_free: errno %d, not ESHUTDOWN", what, e);
        return;
    }
    CHECK(e == EAGAIN || e == ESHUTDOWN || e == ENOMEM || (allowed_einval && e == EINVAL),
          "%s returned NULL with errno %d", what, e);
}

/* Submit a job described by the next bytes.  Returns its record or NULL. */
static struct fstate *op_run(int kind, unsigned b1, unsigned b2)
{
    int id = atomic_fetch_add(&n_jobs, 1);
    if (id >= MAX_JOBS)
        return NULL;
    struct jarg *j = malloc(sizeof *j);
    if (!j)
        abort();
    static const int rets[] = { 0, 0, 0, EIO, ENOENT, ETIMEDOUT, ECANCELED, EINVAL };
    j->magic = JARG_MAGIC;
    j->id = id;
    j->kind = kind;
    j->ret = rets[b1 & 7];
    j->n_results = (b1 >> 3) % 3;
    j->wait_us = (b2 & 7) * 250;
    struct evexec_run_opts opts = { .lane = (b1 >> 5) & 1, .arg_free = jarg_free };
    struct evexec_future *f;
    API(f = evexec_run_opts(ex, job_fn, j, &opts));
    if (!f) {
        int e = errno;
        if (tearing_down)
            CHECK(e == ESHUTDOWN, "evexec_run during evexec_free: errno %d", e);
        else if (pool_shut)
            CHECK(e == ESHUTDOWN, "evexec_run after pool shutdown: errno %d, not ESHUTDOWN", e);
        else if (max_queued == 0)
            CHECK(0, "evexec_run on an open unbounded pool failed: errno %d", e);
        else
            CHECK(e == EAGAIN, "evexec_run on a bounded pool: errno %d", e);
        /* arg stays ours: arg_free must not have been called. */
        CHECK(atomic_load(&job_argfreed[id]) == 0, "arg_free called for a refused job");
        atomic_store(&job_argfreed[id], 1);
        j->magic = 0;
        free(j);
        return NULL;
    }
    CHECK(!tearing_down, "evexec_run succeeded during evexec_free");
    job_submitted[id] = 1;
    struct fstate *fs = track(f, K_JOB);
    if (fs)
        fs->job_id = id;
    return fs;
}

static void op_cancel(struct fstate *fs)
{
    int was_done = evexec_future_done(fs->f);
    int rc;
    API(rc = evexec_future_cancel(fs->f));
    CHECK(rc == 0 || rc == EALREADY, "cancel returned %d", rc);
    CHECK((rc == EALREADY) == (was_done == 1),
          "cancel returned %d on a future that was %s", rc, was_done ? "done" : "pending");
    if (rc != 0)
        return;
    fs->cancel_taken = 1;
    int now = evexec_future_done(fs->f);
    switch (fs->kind) {
    case K_JOB:
        if (now && atomic_load(&job_ran[fs->job_id]) == 0)
            atomic_store(&job_must_not_run[fs->job_id], 1);
        break;
    case K_GROUP:
        break;
    default:
        CHECK(now, "kind %d not done right after a taken cancel", fs->kind);
        CHECK(evexec_future_error(fs->f) == ECANCELED, "cancelled future error %d",
              evexec_future_error(fs->f));
        break;
    }
    if (fs->kind == K_AC && fs->ac->calls_at_cancel < 0)
        fs->ac->calls_at_cancel = fs->ac->calls;
}

static void op_set(struct fstate *fs, unsigned b)
{
    int was_done = evexec_future_done(fs->f);
    int rc;
    if (b & 1) {
        struct res *r = res_new();
        if (!r)
            return;
        API(rc = evexec_future_set_result(fs->f, r, res_free));
        if (rc != 0) {
            res_free(r); /* stays ours */
        } else {
            fs->set_ptr = r;
        }
    } else {
        static const int errs[] = { 0, EIO, ECANCELED, ETIMEDOUT, ENOENT, EPERM, -2, 0x7fff };
        int e = errs[(b >> 1) & 7];
        API(rc = evexec_future_set_error(fs->f, e));
        if (e == 0 && fs->kind == K_MANUAL) {
            CHECK(rc == EINVAL, "set_error(0) returned %d", rc);
            return;
        }
    }
    if (fs->kind != K_MANUAL) {
        CHECK(rc == EINVAL, "set_* on a future not made by future_new returned %d", rc);
        return;
    }
    if (was_done || fs->cancel_taken)
        CHECK(rc == EALREADY, "set_* on a %s future returned %d",
              was_done ? "done" : "cancelled", rc);
    else
        CHECK(rc == 0, "set_* on a pending hand-made future returned %d", rc);
    if (rc == 0)
        CHECK(evexec_future_done(fs->f), "not done right after set_*");
}

static void on_done_cb(struct evexec_future *f, void *arg);

static struct fstate *add_cb(struct fstate *fs, int action, int arg)
{
    if (n_cbs >= MAX_CBS)
        return NULL;
    struct cbrec *c = &cbs[n_cbs];
    memset(c, 0, sizeof *c);
    c->fs = fs;
    c->f = fs->f;
    c->action = action;
    c->arg = arg;
    c->index = fs->cb_added;
    int rc;
    API(rc = evexec_future_on_done(fs->f, on_done_cb, c));
    CHECK(rc == 0 || rc == ENOMEM, "on_done returned %d", rc);
    if (rc != 0)
        return NULL;
    n_cbs++;
    fs->cb_added++;
    c->registered = 1;
    if (action == CB_OWN_REF)
        fs->refs--;      /* the callback drops it */
    return fs;
}

static void check_fs(struct fstate *fs);

static void on_done_cb(struct evexec_future *f, void *arg)
{
    struct cbrec *c = arg;
    check_loop_context("done callback");
    CHECK(c->registered, "callback never registered ran");
    CHECK(++c->calls == 1, "done callback ran %d times", c->calls);
    CHECK(f == c->f, "done callback got another future");
    CHECK(evexec_future_done(f) == 1, "done callback on a pending future");
    CHECK(c->index == c->fs->cb_ran, "callbacks of one future ran out of order (%d, expected %d)",
          c->index, c->fs->cb_ran);
    c->fs->cb_ran++;
    int e = evexec_future_error(f);
    CHECK(e != EINPROGRESS, "done callback: error EINPROGRESS");
    if (c->fs->done_seen && !tearing_down)
        CHECK(e == c->fs->err, "error changed from %d to %d", c->fs->err, e);
    if (c->fs->refs > 0 && !tearing_down)
        check_fs(c->fs);

    switch (c->action) {
    case CB_OWN_REF:
        API(evexec_future_unref(f));
        return;
    case CB_ADD_CB:
        if (ex_freed)
            return;
        add_cb(c->fs, CB_PLAIN, 0);
        return;
    default:
        break;
    }
    if (ex_freed)
        return;
    if (tearing_down) {
        /* Only check that new work is refused. */
        if (c->action == CB_RUN_JOB)
            CHECK(op_run(JOB_INSTANT, c->arg, 0) == NULL, "job made during teardown");
        else if (c->action == CB_CALL_SOON) {
            int rc = make_call(0);
            CHECK(rc == ESHUTDOWN || rc == -1, "call_soon during evexec_free returned %d", rc);
        }
        return;
    }
    switch (c->action) {
    case CB_CANCEL_OTHER: {
        int n = n_live(), k = n ? c->arg % n : -1;
        for (int i = 0; i < n_fs && k >= 0; i++)
            if (fss[i].refs > 0 && k-- == 0)
                op_cancel(&fss[i]);
        break;
    }
    case CB_SET_OTHER:
        for (int i = 0; i < n_fs; i++)
            if (fss[i].refs > 0 && fss[i].kind == K_MANUAL && !evexec_future_done(fss[i].f)) {
                op_set(&fss[i], (unsigned)c->arg);
                break;
            }
        break;
    case CB_RUN_JOB: {
        struct fstate *j = op_run(c->arg & 1 ? JOB_WAIT : JOB_INSTANT, (unsigned)c->arg, 3);
        if (j) {
            add_cb(j, CB_PLAIN, 0);
            if (c->arg & 2) {
                j->refs--;
                API(evexec_future_unref(j->f));
            }
        }
        break;
    }
    case CB_CALL_SOON: {
        int rc;
        API(rc = make_call(0));
        CHECK(rc == 0 || rc == -1, "call_soon from a callback returned %d", rc);
        break;
    }
    case CB_FREE_EX:
        do_free_ex();
        break;
    default:
        break;
    }
}

static void ac_each(struct evexec_future *f, void *arg)
{
    struct acrec *a = arg;
    check_loop_context("as_completed each()");
    CHECK(f != NULL, "each(NULL)");
    CHECK(evexec_future_done(f) == 1, "each() of a pending future");
    a->calls++;
    CHECK(a->calls <= a->n, "each() called %d times for %d inputs", a->calls, a->n);
    if (a->calls_at_cancel >= 0)
        CHECK(a->calls == a->calls_at_cancel, "each() called after a taken cancel");
}

/* Pick 0..MAX_IN inputs (possibly repeated). */
static int pick_inputs(struct evexec_future **in, unsigned char *done)
{
    int n = (int)(u8() % (MAX_IN + 1));
    int k = 0;
    for (int i = 0; i < n; i++) {
        struct fstate *fs = pick();
        if (!fs)
            break;
        in[k] = fs->f;
        done[k] = (unsigned char)evexec_future_done(fs->f);
        k++;
    }
    return k;
}

static struct timeval *pick_timeout(struct timeval *tv, unsigned b)
{
    if (b % 5 == 0)
        return NULL;
    tv->tv_sec = 0;
    tv->tv_usec = (b & 7) * 250;
    return tv;
}

static void op_combinator(int which)
{
    struct evexec_future *in[MAX_IN];
    unsigned char done[MAX_IN];
    int n = pick_inputs(in, done);
    unsigned b = u8();
    struct timeval tv, *tvp = pick_timeout(&tv, b >> 3);
    struct evexec_future *f = NULL;
    int kind, flags = 0, when = 0, bad = 0;
    struct acrec *a = NULL;

    switch (which) {
    case 0:
        kind = K_GATHER;
        flags = (b & 3) == 3 ? 2 : (b & 1);
        bad = flags == 2;
        if (b & 4) {
            API(f = evexec_gather_opts(ex, in, (size_t)n, flags));
        } else {
            flags = 0;
            bad = 0;
            API(f = evexec_gather(ex, in, (size_t)n));
        }
        break;
    case 1:
        kind = K_WAIT;
        when = (int)(b & 3) + ((b & 7) == 7 ? 4 : 0); /* 0 and 7 are invalid */
        bad = when < 1 || when > 3;
        API(f = evexec_wait(ex, in, (size_t)n, when, tvp));
        break;
    case 2:
        kind = K_AC;
        if (n_acs >= MAX_AC)
            return;
        a = &acs[n_acs];
        a->n = n;
        a->calls = 0;
        a->calls_at_cancel = -1;
        API(f = evexec_as_completed(ex, in, (size_t)n, ac_each, a));
        break;
    default:
        kind = K_WAITFOR;
        if (n == 0)
            return;
        n = 1;
        if ((b & 0xe0) == 0xe0) {
            tv.tv_sec = 0;
            tv.tv_usec = 1000000;   /* malformed */
            tvp = &tv;
            bad = 1;
        }
        API(f = evexec_wait_for(ex, in[0], tvp));
        break;
    }
    if (bad) {
        CHECK(f == NULL && errno == EINVAL, "invalid argument accepted (kind %d)", kind);
        return;
    }
    if (!f) {
        check_null_errno("combinator", 0);
        return;
    }
    if (a)
        n_acs++;
    struct fstate *fs = track(f, kind);
    if (!fs)
        return;
    fs->n_in = n;
    memcpy(fs->in, in, sizeof in[0] * (size_t)n);
    memcpy(fs->in_done_at_create, done, (size_t)n);
    fs->flags = flags;
    fs->when = when;
    fs->has_timeout = tvp != NULL;
    fs->ac = a;
}

/* ---- invariants --------------------------------------------------------- */

static void check_fs(struct fstate *fs)
{
    struct evexec_future *f = fs->f;
    int d = evexec_future_done(f);
    int e = evexec_future_error(f);
    void *r = evexec_future_result(f);

    CHECK(d == 0 || d == 1, "done() returned %d", d);
    if (!d) {
        CHECK(!fs->done_seen, "a done future (error %d) is pending again", fs->err);
        CHECK(e == EINPROGRESS, "pending future with error %d", e);
        CHECK(r == NULL, "pending future with a result");
        CHECK(!(fs->kind != K_JOB && fs->kind != K_GROUP && fs->cancel_taken),
              "kind %d pending after a taken cancel", fs->kind);
        return;
    }
    CHECK(e != EINPROGRESS, "done future with error EINPROGRESS");
    if (fs->done_seen) {
        CHECK(e == fs->err, "done future's error changed from %d to %d", fs->err, e);
        if (!fs->taken)
            CHECK(r == fs->res_seen, "done future's result changed");
    } else {
        fs->done_seen = 1;
        fs->err = e;
        fs->res_seen = r;
    }
    if (e != 0)
        CHECK(r == NULL, "failed future (error %d) has a result", e);
    if (fs->cancel_taken && fs->kind != K_GROUP)
        CHECK(e == ECANCELED, "kind %d ended %d after a taken cancel", fs->kind, e);

    switch (fs->kind) {
    case K_JOB:
        if (r)
            res_check(r, "job result");
        break;
    case K_MANUAL:
        if (e == 0 && !fs->taken)
            CHECK(r == fs->set_ptr, "hand-made future's result is not the one set");
        if (r)
            res_check(r, "hand-made result");
        break;
    case K_SLEEP:
        CHECK(e == 0 || e == ECANCELED, "sleep ended %d", e);
        CHECK(r == NULL, "sleep with a result");
        break;
    case K_GATHER: {
        int found = 0;
        for (int i = 0; i < fs->n_in; i++) {
            int ie = evexec_future_error(fs->in[i]);
            if (evexec_future_done(fs->in[i]) && ie == e)
                found = 1;
            if (evexec_future_done(fs->in[i]))
                CHECK(evexec_gather_error(f, (size_t)i) == ie,
                      "gather_error(%d) = %d, input's error %d", i,
                      evexec_gather_error(f, (size_t)i), ie);
        }
        CHECK(evexec_gather_error(f, (size_t)fs->n_in) == EINVAL, "gather_error(n) not EINVAL");
        if (e == 0) {
            void **arr = r;
            CHECK(arr != NULL, "gather ended 0 without a result array");
            for (int i = 0; i < fs->n_in; i++) {
                CHECK(evexec_future_done(fs->in[i]), "gather ended with input %d pending", i);
                int ie = evexec_future_error(fs->in[i]);
                if (!(fs->flags & EVEXEC_GATHER_ALL))
                    CHECK(ie == 0, "gather ended 0 with input %d failed (%d)", i, ie);
                else if (ie != 0)
                    CHECK(arr[i] == NULL, "gather ALL: failed input %d has a result", i);
                if (!any_take)
                    CHECK(arr[i] == evexec_future_result(fs->in[i]),
                          "gather result[%d] is not the input's result", i);
            }
        } else if (e != ECANCELED) {
            /* (ECANCELED: also when a wait_for or a group around it cancels it) */
            CHECK(!(fs->flags & EVEXEC_GATHER_ALL), "gather ALL ended %d", e);
            CHECK(found, "gather ended %d, which no input ended with", e);
        }
        break;
    }
    case K_WAIT: {
        CHECK(e == 0 || e == ECANCELED, "wait ended %d", e);
        if (e != 0)
            break;
        const struct evexec_wait_result *w = r;
        CHECK(w != NULL, "wait ended 0 without a result");
        CHECK(w->n == (size_t)fs->n_in && w->n_done + w->n_pending == w->n,
              "wait result counts wrong");
        size_t nd = 0, np = 0;
        int exception = 0;
        for (int i = 0; i < fs->n_in; i++) {
            CHECK(w->done[i] == 0 || w->done[i] == 1, "wait done[] not 0/1");
            if (w->done[i]) {
                CHECK(nd < w->n_done && w->done_index[nd] == (size_t)i, "wait done_index wrong");
                nd++;
                CHECK(evexec_future_done(fs->in[i]), "wait says input %d done; it is pending", i);
                int ie = evexec_future_error(fs->in[i]);
                if (ie != 0 && ie != ECANCELED)
                    exception = 1;
            } else {
                CHECK(np < w->n_pending && w->pending_index[np] == (size_t)i,
                      "wait pending_index wrong");
                np++;
                CHECK(!fs->in_done_at_create[i], "wait: input %d done before the wait, pending in it", i);
            }
        }
        CHECK(nd == w->n_done && np == w->n_pending, "wait index lists wrong");
        if (!fs->has_timeout) {
            if (fs->when == EVEXEC_ALL_COMPLETED)
                CHECK(w->n_pending == 0, "ALL_COMPLETED ended with pending inputs");
            else if (fs->when == EVEXEC_FIRST_COMPLETED)
                CHECK(w->n == 0 || w->n_done > 0, "FIRST_COMPLETED ended with nothing done");
            else
                CHECK(w->n_pending == 0 || exception, "FIRST_EXCEPTION ended early");
        }
        break;
    }
    case K_WAITFOR: {
        struct evexec_future *inner = fs->in[0];
        if (e == ETIMEDOUT && evexec_future_error(inner) != ETIMEDOUT) {
            /* (the inner future may itself have ended ETIMEDOUT) */
            CHECK(fs->has_timeout, "wait_for without timeout ended ETIMEDOUT");
            CHECK(!fs->in_done_at_create[0], "wait_for of a done future timed out");
        } else if (e != ECANCELED) {
            CHECK(evexec_future_done(inner), "wait_for ended %d with its future pending", e);
            CHECK(evexec_future_error(inner) == e, "wait_for ended %d, its future %d", e,
                  evexec_future_error(inner));
            if (!any_take)
                CHECK(r == evexec_future_result(inner), "wait_for's result is not its future's");
        }
        break;
    }
    case K_AC:
        CHECK(e == 0 || e == ECANCELED, "as_completed ended %d", e);
        if (e == 0)
            CHECK(fs->ac->calls == fs->ac->n, "as_completed ended 0 after %d of %d each()",
                  fs->ac->calls, fs->ac->n);
        break;
    case K_GROUP:
        for (int i = 0; i < fs->group->n_members; i++) {
            struct fstate *m = fs->group->members[i];
            if (m->refs > 0)
                CHECK(evexec_future_done(m->f), "group ended with member pending");
        }
        break;
    }
}

static void check_all(void)
{
    if (ex_freed)
        return;
    for (int i = 0; i < n_fs; i++)
        if (fss[i].refs > 0)
            check_fs(&fss[i]);
}

/* ---- teardown ------------------------------------------------------------ */

static void do_free_ex(void)
{
    if (ex_freed)
        return;
    helper_quiesce();
    tearing_down = 1;
    evexec_free(ex);
    tearing_down = 0;
    ex_freed = 1;
    for (int i = 0; i < n_fs; i++)
        fss[i].refs = 0;
    for (int i = 0; i < n_groups; i++)
        groups[i].live = 0;
    /* Every callback registered ran exactly once (the one running now,
     * if this is called from a callback, has already been counted). */
    for (int i = 0; i < n_cbs; i++)
        CHECK(cbs[i].calls == 1, "callback %d (action %d) ran %d times by the end of evexec_free",
              i, cbs[i].action, cbs[i].calls);
}

static void final_checks(void)
{
    int n = atomic_load(&n_crecs);
    if (n > MAX_CALLS)
        n = MAX_CALLS;
    for (int i = 0; i < n; i++) {
        int ok = atomic_load(&crecs[i].ok), calls = atomic_load(&crecs[i].calls);
        if (ok == 1)
            CHECK(calls == 1, "call_soon_threadsafe call %d ran %d times", i, calls);
        else
            CHECK(calls == 0, "a refused call_soon_threadsafe call ran");
    }
    n = atomic_load(&n_res);
    if (n > MAX_RES)
        n = MAX_RES;
    for (int i = 0; i < n; i++)
        CHECK(atomic_load(&res_freed[i]) == 1, "result %d released %d times", i,
              atomic_load(&res_freed[i]));
    n = atomic_load(&n_jobs);
    if (n > MAX_JOBS)
        n = MAX_JOBS;
    for (int i = 0; i < n; i++) {
        CHECK(atomic_load(&job_argfreed[i]) == 1, "arg of job %d released %d times", i,
              atomic_load(&job_argfreed[i]));
        CHECK(atomic_load(&job_ran[i]) <= 1, "job ran twice");
    }
}

/* ---- the program -------------------------------------------------------- */

enum {
    OP_RUN, OP_RUN_WAIT, OP_NEW, OP_SET, OP_CANCEL, OP_GATHER, OP_WAIT, OP_AC,
    OP_WAIT_FOR, OP_SLEEP, OP_GROUP_NEW, OP_GROUP_ADD, OP_GROUP_FUTURE, OP_GROUP_FREE,
    OP_CALL_HELPER, OP_CALL_LOOP, OP_LOOP_NONBLOCK, OP_LOOP_ONCE, OP_RUC, OP_UNREF,
    OP_REF, OP_ON_DONE, OP_SHUTDOWN, OP_KEEPALIVE, OP_TAKE, OP_HELPER_SYNC, OP_N
};

static void run_loop(int flags)
{
    if (flags == EVLOOP_ONCE && keepalive)
        flags = EVLOOP_NONBLOCK;
    int rc = event_base_loop(base, flags);
    CHECK(rc >= 0, "event_base_loop failed");
}

/* Whether the harness holds a reference to g's future (so g->gf is not a
 * stale address). */
static int group_future_live(const struct grec *g)
{
    for (int i = 0; i < n_fs; i++)
        if (fss[i].refs > 0 && fss[i].kind == K_GROUP && fss[i].group == g)
            return 1;
    return 0;
}

static const char *const op_names[OP_N] = {
    "run", "run_wait", "future_new", "set", "cancel", "gather", "wait", "as_completed",
    "wait_for", "sleep", "group_new", "group_add", "group_future", "group_free",
    "call_helper", "call_loop", "loop_nonblock", "loop_once", "run_until_complete",
    "unref", "ref", "on_done", "pool_shutdown", "keepalive", "take_result", "helper_sync"
};
static int trace;   /* FUZZ_TRACE=1: print each operation */

static void op(unsigned code)
{
    struct fstate *fs;
    unsigned b;

    if (trace)
        fprintf(stderr, "op %s (%d live futures)\n", op_names[code % OP_N], n_live());

    switch (code % OP_N) {
    case OP_RUN:
        b = u8();
        op_run(JOB_INSTANT, b, 0);
        break;
    case OP_RUN_WAIT:
        b = u8();
        op_run(JOB_WAIT, b, u8());
        break;
    case OP_NEW: {
        struct evexec_future *f;
        API(f = evexec_future_new(ex));
        CHECK(f != NULL, "future_new failed: errno %d", errno);
        track(f, K_MANUAL);
        break;
    }
    case OP_SET:
        if ((fs = pick()))
            op_set(fs, u8());
        break;
    case OP_CANCEL:
        if ((fs = pick()))
            op_cancel(fs);
        break;
    case OP_GATHER:
        op_combinator(0);
        break;
    case OP_WAIT:
        op_combinator(1);
        break;
    case OP_AC:
        op_combinator(2);
        break;
    case OP_WAIT_FOR:
        op_combinator(3);
        break;
    case OP_SLEEP: {
        b = u8();
        struct timeval tv = { 0, (long)(b % 9) * 250 };
        if (b >= 0xf0)
            tv.tv_usec = -1; /* malformed */
        struct evexec_future *f;
        API(f = evexec_sleep(ex, &tv));
        if (tv.tv_usec < 0) {
            CHECK(f == NULL && errno == EINVAL, "sleep with a negative delay accepted");
            break;
        }
        CHECK(f != NULL, "sleep failed: errno %d", errno);
        track(f, K_SLEEP);
        break;
    }
    case OP_GROUP_NEW: {
        if (n_groups >= MAX_GROUPS)
            break;
        struct evexec_group *g;
        API(g = evexec_group_new(ex));
        CHECK(g != NULL, "group_new failed: errno %d", errno);
        memset(&groups[n_groups], 0, sizeof groups[0]);
        groups[n_groups].g = g;
        groups[n_groups].live = 1;
        n_groups++;
        break;
    }
    case OP_GROUP_ADD: {
        struct grec *g = n_groups ? &groups[u8() % (unsigned)n_groups] : NULL;
        fs = pick();
        if (!g || !g->live || !fs)
            break;
        int rc;
        API(rc = evexec_group_add(g->g, fs->f));
        if (g->gf && fs->f == g->gf && group_future_live(g)) {
            CHECK(rc == EINVAL, "a group took its own future: %d", rc);
            break;
        }
        CHECK(rc == 0 || rc == ESHUTDOWN || rc == EINVAL, "group_add returned %d", rc);
        if (rc == 0 && g->n_members < (int)(sizeof g->members / sizeof g->members[0])) {
            /* Keep it referenced so the group's end can be checked. */
            API(evexec_future_ref(fs->f));
            fs->refs++;
            g->members[g->n_members++] = fs;
        }
        break;
    }
    case OP_GROUP_FUTURE: {
        struct grec *g = n_groups ? &groups[u8() % (unsigned)n_groups] : NULL;
        if (!g || !g->live)
            break;
        struct evexec_future *f;
        API(f = evexec_group_future(g->g));
        CHECK(f != NULL, "group_future failed: errno %d", errno);
        CHECK(!g->gf || g->gf == f, "group_future returned another future");
        g->gf = f;
        if ((fs = track(f, K_GROUP)))
            fs->group = g;
        break;
    }
    case OP_GROUP_FREE: {
        struct grec *g = n_groups ? &groups[u8() % (unsigned)n_groups] : NULL;
        if (!g || !g->live)
            break;
        API(evexec_group_free(g->g));
        g->live = 0;
        break;
    }
    case OP_CALL_HELPER:
        helper_request((int)(u8() % 8) + 1);
        break;
    case OP_CALL_LOOP: {
        int rc;
        API(rc = make_call(0));
        CHECK(rc == 0 || rc == -1, "call_soon_threadsafe on the loop thread returned %d", rc);
        break;
    }
    case OP_LOOP_NONBLOCK:
        run_loop(EVLOOP_NONBLOCK);
        break;
    case OP_LOOP_ONCE:
        run_loop(EVLOOP_ONCE);
        break;
    case OP_RUC: {
        b = u8();
        struct evexec_future *f = NULL;
        struct fstate *inner = NULL;
        struct timeval tv = { 0, (long)(b % 9) * 250 };
        if ((b & 0x80) && (inner = pick()) != NULL)
            API(f = evexec_wait_for(ex, inner->f, &tv));
        else
            API(f = evexec_sleep(ex, &tv));
        CHECK(f != NULL, "sleep/wait_for failed: errno %d", errno);
        struct fstate *w = track(f, inner ? K_WAITFOR : K_SLEEP);
        if (!w)
            break;
        if (inner) {
            w->n_in = 1;
            w->in[0] = inner->f;
            w->in_done_at_create[0] = (unsigned char)evexec_future_done(inner->f);
            w->has_timeout = 1;
        }
        int rc = evexec_run_until_complete(ex, f);
        if (ex_freed)
            break;  /* a callback freed the evexec: f is gone */
        CHECK(evexec_future_done(f), "run_until_complete returned with the future pending");
        CHECK(rc == evexec_future_error(f), "run_until_complete returned %d, future %d", rc,
              evexec_future_error(f));
        break;
    }
    case OP_UNREF:
        if ((fs = pick())) {
            fs->refs--;
            API(evexec_future_unref(fs->f));
        }
        break;
    case OP_REF:
        if ((fs = pick())) {
            struct evexec_future *r;
            API(r = evexec_future_ref(fs->f));
            CHECK(r == fs->f, "ref returned another pointer");
            fs->refs++;
        }
        break;
    case OP_ON_DONE:
        b = u8();
        if ((fs = pick())) {
            int action = (int)(b % CB_N);
            if (action == CB_FREE_EX && (u8() & 7) != 0)
                action = CB_PLAIN;   /* rare */
            add_cb(fs, action, (int)u8());
        }
        break;
    case OP_SHUTDOWN: {
        b = u8();
        static const int fl[] = { 0, EVEXEC_SHUTDOWN_CANCEL, EVEXEC_SHUTDOWN_WAIT,
                                  EVEXEC_SHUTDOWN_WAIT | EVEXEC_SHUTDOWN_CANCEL, 0x10 };
        int flags = fl[b % 5], rc;
        API(rc = evexec_pool_shutdown(pool, flags));
        if (flags == 0x10) {
            CHECK(rc == EINVAL, "shutdown with unknown flags returned %d", rc);
        } else {
            CHECK(rc == 0, "shutdown(%d) returned %d", flags, rc);
            pool_shut = 1;
        }
        break;
    }
    case OP_KEEPALIVE: {
        int k = (int)(u8() & 1), rc;
        API(rc = evexec_set_keepalive(ex, k));
        CHECK(rc == 0, "set_keepalive returned %d", rc);
        keepalive = k;
        CHECK(evexec_get_keepalive(ex) == k, "get_keepalive disagrees");
        break;
    }
    case OP_TAKE:
        if ((fs = pick()) && (fs->kind == K_JOB || fs->kind == K_MANUAL)) {
            void *p;
            API(p = evexec_future_take_result(fs->f));
            if (p) {
                res_check(p, "taken result");
                if (fs->kind == K_MANUAL)
                    CHECK(p == fs->set_ptr, "took another result");
                CHECK(n_taken < MAX_TAKEN, "too many taken");
                taken[n_taken++] = p;
                fs->taken = 1;
                any_take = 1;
            }
            CHECK(evexec_future_result(fs->f) == NULL, "result still there after take");
        }
        break;
    case OP_HELPER_SYNC:
        helper_quiesce();
        break;
    }
}

static void silent_log(int error, const char *msg, void *arg)
{
    (void)error, (void)msg, (void)arg;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    evexec_set_log_fn(silent_log, NULL);
    trace = getenv("FUZZ_TRACE") && *getenv("FUZZ_TRACE") == '1';
    return 0;
}

static void reset(void)
{
    base = NULL;
    pool = NULL;
    ex = NULL;
    in_api = tearing_down = ex_freed = pool_shut = any_take = 0;
    n_fs = n_cbs = n_acs = n_groups = n_taken = 0;
    atomic_store(&n_res, 0);
    atomic_store(&n_jobs, 0);
    atomic_store(&n_crecs, 0);
    for (int i = 0; i < MAX_RES; i++)
        atomic_store(&res_freed[i], 0);
    for (int i = 0; i < MAX_JOBS; i++) {
        atomic_store(&job_ran[i], 0);
        atomic_store(&job_argfreed[i], 0);
        atomic_store(&job_must_not_run[i], 0);
        job_submitted[i] = 0;
    }
    for (int i = 0; i < MAX_CALLS; i++) {
        atomic_store(&crecs[i].calls, 0);
        atomic_store(&crecs[i].ok, 0);
    }
    seq_made[0] = seq_made[1] = seq_ran[0] = seq_ran[1] = 0;
    seq_any[0] = seq_any[1] = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    in_p = data;
    in_n = size;
    reset();
    loop_thread = pthread_self();

    /* Configuration: two bytes. */
    unsigned c0 = u8(), c1 = u8();
    struct evexec_pool_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.max_threads = 2 + (c0 & 1);
    cfg.min_threads = (c0 >> 1) & 1;
    cfg.idle_timeout_ms = (c0 & 4) ? 1 : 0;
    max_queued = (c0 & 8) ? 1 + ((c0 >> 4) & 3) : 0;
    cfg.max_queued = max_queued;
    cfg.thread_name = "fuzz";
    cfg.spin_us = (c0 & 0xc0) == 0xc0 ? 20 : 0;
    if (c1 & 1)
        setenv("EVEXEC_WAKEUP", "pipe", 1);
    else
        unsetenv("EVEXEC_WAKEUP");
    int drop_refs = (c1 >> 1) & 1;      /* drop our references before evexec_free */
    int free_groups = (c1 >> 2) & 1;    /* group_free before evexec_free */
    int end_shutdown = (c1 >> 3) & 3;   /* 0 none, 1 CANCEL, 2 WAIT, 3 CANCEL before evexec_free */
    int final_loop = (c1 >> 5) & 1;     /* a few NONBLOCK turns before teardown */

    base = event_base_new();
    CHECK(base != NULL, "event_base_new");
    pool = evexec_pool_new(&cfg);
    CHECK(pool != NULL, "evexec_pool_new: errno %d", errno);
    ex = evexec_new(base, pool);
    CHECK(ex != NULL, "evexec_new: errno %d", errno);
    keepalive = 1;
    if (!(c1 & 0x80)) {
        CHECK(evexec_set_keepalive(ex, 0) == 0, "set_keepalive(0)");
        keepalive = 0;
    }

    for (int i = 0; i < MAX_OPS && in_n > 0 && !ex_freed; i++) {
        op(u8());
        check_all();
    }

    if (!ex_freed) {
        if (final_loop)
            for (int i = 0; i < 3; i++) {
                run_loop(EVLOOP_NONBLOCK);
                check_all();
            }
        if (free_groups)
            for (int i = 0; i < n_groups; i++)
                if (groups[i].live) {
                    API(evexec_group_free(groups[i].g));
                    groups[i].live = 0;
                }
        if (drop_refs)
            for (int i = 0; i < n_fs; i++)
                while (fss[i].refs > 0) {
                    fss[i].refs--;
                    API(evexec_future_unref(fss[i].f));
                }
        if (end_shutdown == 3)
            CHECK(evexec_pool_shutdown(pool, EVEXEC_SHUTDOWN_CANCEL) == 0, "shutdown");
        helper_quiesce();
        do_free_ex();
    }
    helper_stop();
    if (end_shutdown == 1)
        CHECK(evexec_pool_shutdown(pool, EVEXEC_SHUTDOWN_CANCEL) == 0, "shutdown");
    else if (end_shutdown == 2)
        CHECK(evexec_pool_shutdown(pool, EVEXEC_SHUTDOWN_WAIT) == 0, "shutdown");
    evexec_pool_free(pool);
    event_base_free(base);
    for (int i = 0; i < n_taken; i++)
        res_free(taken[i]);
    final_checks();
    return 0;
}
