/*
 * test_fault.c -- faults the library must survive: every allocation
 * failing in turn (its own and libevent's), threads that cannot be made
 * (and who makes a burst's threads),
 * descriptors running out, a wake-up counter already full.  A failure is
 * an error code where the header says, never an abort, a hang or a leak
 * (the AddressSanitizer build checks leaks at exit); every callback of a
 * future that was handed out runs exactly once.
 *
 * White box: the tests link the static library and set the hooks of
 * lib/alloc.c, and use evexec__wakeup_fd().
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "evexec.h"
#include "evexec-internal.h"
#include "testutil.h"

/* ---- failing the n-th allocation ------------------------------------------ */

static atomic_long alloc_count;     /* allocations seen since armed */
static atomic_long alloc_fail_at;   /* the one that fails (1-based); 0: none */
static atomic_int alloc_failed;     /* it happened */

static int fail_nth(size_t n)
{
    (void)n;
    long at = atomic_load(&alloc_fail_at);
    if (at <= 0)
        return 0;
    if (atomic_fetch_add(&alloc_count, 1) + 1 == at) {
        atomic_store(&alloc_failed, 1);
        return 1;
    }
    return 0;
}

/* libevent's allocations count too (event_set_mem_functions, in main). */
static void *ev_malloc(size_t n)
{
    return fail_nth(n) ? NULL : malloc(n);
}

static void *ev_realloc(void *p, size_t n)
{
    return fail_nth(n) ? NULL : realloc(p, n);
}

static void arm(long at)
{
    atomic_store(&alloc_count, 0);
    atomic_store(&alloc_failed, 0);
    atomic_store(&alloc_fail_at, at);
    atomic_store(&evexec__alloc_hook, fail_nth);
}

static void disarm(void)
{
    atomic_store(&evexec__alloc_hook, NULL);
    atomic_store(&alloc_fail_at, 0);
}

/* ---- the scenario ------------------------------------------------------------ */

#define MAXF 32

struct tally {
    int registered[MAXF];       /* on_done accepted for slot i */
    int ran[MAXF];              /* callback runs of slot i */
    int bad_errno;              /* a failed call with an unexpected errno */
    int last_bad;               /* which step */
    atomic_int call_ran;        /* call_soon_threadsafe runs */
    int call_ok;                /* it was accepted */
    int results_made, results_freed;
    char dir[64];
};

static struct tally *cur;

static void count_cb(struct evexec_future *f, void *arg)
{
    (void)f;
    cur->ran[(intptr_t)arg]++;
}

static void call_fn(void *arg)
{
    atomic_fetch_add(&((struct tally *)arg)->call_ran, 1);
}

static atomic_int res_made, res_freed;

static void res_free(void *p)
{
    atomic_fetch_add(&res_freed, 1);
    free(p);
}

static int job_result(struct evexec_job *job, void *arg)
{
    (void)arg;
    long *v = malloc(sizeof *v);     /* the job's own, not the library's */
    if (!v)
        return ENOMEM;
    *v = 42;
    atomic_fetch_add(&res_made, 1);
    evexec_job_set_result(job, v, res_free);
    return 0;
}

static int job_fail(struct evexec_job *job, void *arg)
{
    (void)job;
    (void)arg;
    return EIO;
}

static int job_wait(struct evexec_job *job, void *arg)
{
    (void)arg;
    struct timespec ts = { 0, 2000000 };
    evexec_job_wait_cancel(job, &ts);
    return 0;
}

/* A NULL from a constructor: errno must be one the header names. */
static void check_null(struct tally *t, int step, int allowed2)
{
    if (errno != ENOMEM && errno != allowed2) {
        t->bad_errno++;
        t->last_bad = step * 1000 + errno;
    }
}

static int nf;
static struct evexec_future *fs[MAXF];

static void keep(struct tally *t, struct evexec_future *f, int step, int allowed2)
{
    if (!f) {
        check_null(t, step, allowed2);
        return;
    }
    int slot = nf++;
    fs[slot] = f;
    int rc = evexec_future_on_done(f, count_cb, (void *)(intptr_t)slot);
    if (rc == 0)
        t->registered[slot] = 1;
    else if (rc != ENOMEM) {
        t->bad_errno++;
        t->last_bad = 90000 + rc;
    }
}

static void scenario(struct tally *t)
{
    nf = 0;
    cur = t;
    struct evexec_pool_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.max_threads = 2;
    struct evexec_pool *pool = evexec_pool_new(&cfg);
    if (!pool) {
        check_null(t, 1, 0);
        return;
    }
    struct event_base *base = event_base_new();
    if (!base) {                      /* libevent's own failure */
        evexec_pool_free(pool);
        return;
    }
    struct evexec *ex = evexec_new(base, pool);
    if (!ex) {
        check_null(t, 2, 0);
        event_base_free(base);
        evexec_pool_free(pool);
        return;
    }
    struct timeval ms1 = { 0, 1000 }, sec5 = { 5, 0 };
    struct evexec_future *f1 = evexec_run(ex, job_result, NULL);
    keep(t, f1, 3, EAGAIN);
    keep(t, evexec_run(ex, job_fail, NULL), 4, EAGAIN);
    struct evexec_future *f3 = evexec_run(ex, job_wait, NULL);
    keep(t, f3, 5, EAGAIN);
    if (f3)
        evexec_future_cancel(f3);
    keep(t, evexec_sleep(ex, &ms1), 6, 0);
    if (f1)
        keep(t, evexec_wait_for(ex, f1, &sec5), 7, 0);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_family = AF_INET;
    /* The same lookup twice shares one getaddrinfo (the second gets a
     * copy of the list), with the cache on: its tables, copies and
     * entries are allocations too. */
    struct evexec_dns_cache_opts copts = EVEXEC_DNS_CACHE_OPTS_INIT;
    copts.positive_ttl_ms = 60000;
    int crc = evexec_dns_set_cache(ex, &copts);
    if (crc != 0 && crc != ENOMEM && crc != ENOTSUP) {
        t->bad_errno++;
        t->last_bad = 14000 + crc;
    }
    keep(t, evexec_getaddrinfo(ex, "localhost", "80", &hints), 8, EAGAIN);
    keep(t, evexec_getaddrinfo(ex, "localhost", "80", &hints), 14, EAGAIN);
    char path[128];
    snprintf(path, sizeof path, "%s/in", t->dir);
    keep(t, evexec_fs_read_file(ex, path), 9, EAGAIN);
    snprintf(path, sizeof path, "%s/out", t->dir);
    keep(t, evexec_fs_write_file(ex, path, "data", 4, 0600), 10, EAGAIN);
    struct evexec_group *g = evexec_group_new(ex);
    if (!g) {
        check_null(t, 11, 0);
    } else {
        if (f1 && evexec_group_add(g, f1) != 0 && errno != ENOMEM)
            t->bad_errno++;
        keep(t, evexec_group_future(g), 12, 0);
        evexec_group_free(g);
    }
    int n = nf;
    if (n > 0)
        keep(t, evexec_gather(ex, fs, (size_t)n), 13, 0);
    int rc = evexec_call_soon_threadsafe(ex, call_fn, t);
    t->call_ok = rc == 0;
    if (rc != 0 && rc != ENOMEM)
        t->bad_errno++;
    /* Everything but the one waiting forever ends by itself. */
    struct evexec_future *all = nf > 0 ? evexec_gather_opts(ex, fs, (size_t)nf,
                                                             EVEXEC_GATHER_ALL) : NULL;
    if (all) {
        struct evexec_future *guard = evexec_wait_for(ex, all, &sec5);
        if (guard) {
            evexec_run_until_complete(ex, guard);
            evexec_future_unref(guard);
        }
        evexec_future_unref(all);
    }
    for (int i = 0; i < nf; i++)
        evexec_future_unref(fs[i]);
    evexec_free(ex);
    evexec_pool_free(pool);
    event_base_free(base);
}

static void make_dir(struct tally *t)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/evexec-fault-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    char path[128];
    snprintf(path, sizeof path, "%s/in", t->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("hello", f);
    fclose(f);
}

static void remove_dir(struct tally *t)
{
    char path[128];
    snprintf(path, sizeof path, "%s/in", t->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/out", t->dir);
    unlink(path);
    rmdir(t->dir);
}

static void check_tally(struct tally *t, long at)
{
    if (t->bad_errno)
        fail_msg("failing allocation %ld: unexpected errno (step*1000+errno %d)", at,
                 t->last_bad);
    for (int i = 0; i < MAXF; i++) {
        if (t->registered[i] && t->ran[i] != 1)
            fail_msg("failing allocation %ld: callback %d ran %d times", at, i, t->ran[i]);
        if (!t->registered[i] && t->ran[i] != 0)
            fail_msg("failing allocation %ld: unregistered callback %d ran", at, i);
    }
    if (atomic_load(&t->call_ran) != t->call_ok)
        fail_msg("failing allocation %ld: call ran %d times, accepted %d", at,
                 atomic_load(&t->call_ran), t->call_ok);
    if (atomic_load(&res_made) != atomic_load(&res_freed))
        fail_msg("failing allocation %ld: %d results made, %d freed", at,
                 atomic_load(&res_made), atomic_load(&res_freed));
}

static void run_every_failure(const char *wakeup)
{
    if (wakeup)
        setenv("EVEXEC_WAKEUP", wakeup, 1);
    long points = 0, at;
    for (at = 1; at < 5000; at++) {
        struct tally t;
        memset(&t, 0, sizeof t);
        atomic_init(&t.call_ran, 0);
        atomic_store(&res_made, 0);
        atomic_store(&res_freed, 0);
        make_dir(&t);
        arm(at);
        scenario(&t);
        disarm();
        remove_dir(&t);
        check_tally(&t, at);
        if (!atomic_load(&alloc_failed))
            break;          /* ran clean: every point was tried */
        points++;
    }
    if (wakeup)
        unsetenv("EVEXEC_WAKEUP");
    assert_true(at < 5000);
    assert_true(points > 20);
    printf("# %s: %ld allocation failure points injected, each survived\n",
           wakeup ? wakeup : "eventfd", points);
}

static void test_every_allocation_fails(void **state)
{
    (void)state;
    run_every_failure(NULL);
}

static void test_every_allocation_fails_pipe(void **state)
{
    (void)state;
    run_every_failure("pipe");
}

/* ---- threads that cannot be made ---------------------------------------------- */

static atomic_int threads_left;     /* successes still allowed; < 0: all */

static int fail_threads(size_t n)
{
    (void)n;
    return atomic_fetch_sub(&threads_left, 1) <= 0;
}

static void noop_cb(struct evexec_future *f, void *arg)
{
    (void)f;
    (*(int *)arg)++;
}

struct batch_try {
    struct evexec *ex;
    int rc_errno;
    struct evexec_future *f;
};

static int quick(struct evexec_job *job, void *arg)
{
    (void)job;
    (void)arg;
    return 0;
}

static void submit_in_cb(struct evexec_future *f, void *arg)
{
    struct batch_try *b = arg;
    (void)f;
    b->f = evexec_run(b->ex, quick, NULL);    /* batched: queued after this pass */
    b->rc_errno = b->f ? 0 : errno;
}

static void test_threads_never(void **state)
{
    (void)state;
    struct evexec_pool *pool = tu_pool_new(4, 0);
    struct event_base *base = event_base_new();
    struct evexec *ex = evexec_new(base, pool);
    assert_non_null(ex);
    atomic_store(&threads_left, 0);
    atomic_store(&evexec__thread_hook, fail_threads);
    errno = 0;
    assert_null(evexec_run(ex, quick, NULL));
    assert_int_equal(errno, EAGAIN);
    /* Batched (from a callback): the future ends EAGAIN. */
    struct batch_try b = { ex, -1, NULL };
    struct evexec_future *h = evexec_future_new(ex);
    assert_int_equal(evexec_future_on_done(h, submit_in_cb, &b), 0);
    assert_int_equal(evexec_future_set_result(h, NULL, NULL), 0);
    assert_int_equal(evexec_run_until_complete(ex, h), 0);
    assert_non_null(b.f);
    assert_int_equal(evexec_run_until_complete(ex, b.f), EAGAIN);
    evexec_future_unref(b.f);
    evexec_future_unref(h);
    atomic_store(&evexec__thread_hook, NULL);
    struct evexec_future *ok = evexec_run(ex, quick, NULL);
    assert_non_null(ok);
    assert_int_equal(evexec_run_until_complete(ex, ok), 0);
    evexec_future_unref(ok);
    evexec_free(ex);
    evexec_pool_free(pool);
    event_base_free(base);
}

static void test_threads_after_k(void **state)
{
    (void)state;
    for (int k = 1; k <= 3; k++) {
        struct evexec_pool *pool = tu_pool_new(4, 0);
        struct event_base *base = event_base_new();
        struct evexec *ex = evexec_new(base, pool);
        assert_non_null(ex);
        atomic_store(&threads_left, k);
        atomic_store(&evexec__thread_hook, fail_threads);
        int done = 0;
        struct evexec_future *f[16];
        for (int i = 0; i < 16; i++) {
            f[i] = evexec_run(ex, job_wait, NULL);
            assert_non_null(f[i]);
            assert_int_equal(evexec_future_on_done(f[i], noop_cb, &done), 0);
        }
        struct evexec_future *all = evexec_gather(ex, f, 16);
        assert_non_null(all);
        assert_int_equal(evexec_run_until_complete(ex, all), 0);
        assert_int_equal(done, 16);
        struct evexec_pool_stats st = tu_stats(pool);
        assert_int_equal(st.threads_started, (uint64_t)k);
        atomic_store(&evexec__thread_hook, NULL);
        evexec_future_unref(all);
        for (int i = 0; i < 16; i++)
            evexec_future_unref(f[i]);
        evexec_free(ex);
        evexec_pool_free(pool);
        event_base_free(base);
    }
}

/* RLIMIT_NPROC, for real, in a child that is not root (root ignores it). */
static int nproc_child(rlim_t limit)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NPROC, &rl) != 0)
        return 78;
    if (limit < rl.rlim_max)
        rl.rlim_cur = rl.rlim_max = limit;     /* lowering needs no right */
    if (setrlimit(RLIMIT_NPROC, &rl) != 0)
        return 78;
    if (getuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
        return 77;
    struct evexec_pool *pool = evexec_pool_new(NULL);
    struct event_base *base = event_base_new();
    struct evexec *ex = pool && base ? evexec_new(base, pool) : NULL;
    if (!ex)
        return 10;
    struct evexec_future *f[8];
    int made = 0;
    for (int i = 0; i < 8; i++) {
        f[i] = evexec_run(ex, quick, NULL);
        if (!f[i] && errno != EAGAIN)
            return 11;
        made += f[i] != NULL;
    }
    for (int i = 0; i < 8; i++) {
        if (f[i] && evexec_run_until_complete(ex, f[i]) != 0)
            return 12;
        evexec_future_unref(f[i]);
    }
    evexec_free(ex);
    evexec_pool_free(pool);
    event_base_free(base);
    return made;
}

static void test_threads_rlimit_nproc(void **state)
{
    (void)state;
#ifdef TU_TSAN
    skip();
#endif
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(nproc_child(1000000));
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) == 77 || WEXITSTATUS(st) == 78)
        skip();
    assert_int_equal(WEXITSTATUS(st), 8);  /* unlimited: all 8 ran */
    /* A limit of one: the child itself; no worker thread can start. */
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(nproc_child(1));              /* no thread at all */
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);   /* all refused with EAGAIN */
}

/* ---- descriptors ------------------------------------------------------------------ */

static void check_emfile(const char *wakeup)
{
    if (wakeup)
        setenv("EVEXEC_WAKEUP", wakeup, 1);
    struct evexec_pool *pool = tu_pool_new(2, 0);
    struct event_base *base = event_base_new();
    assert_non_null(pool);
    assert_non_null(base);
    struct rlimit old, rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    rl = old;
    rl.rlim_cur = 256;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    int fds[256], n = 0;
    while (n < 256 && (fds[n] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        n++;
    assert_int_equal(errno, EMFILE);
    errno = 0;
    assert_null(evexec_new(base, pool));
    assert_int_equal(errno, EMFILE);
    close(fds[--n]);
    close(fds[--n]);
    struct evexec *ex = evexec_new(base, pool);
    assert_non_null(ex);
    while (n > 0)
        close(fds[--n]);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    struct evexec_future *f = evexec_run(ex, quick, NULL);
    assert_non_null(f);
    assert_int_equal(evexec_run_until_complete(ex, f), 0);
    evexec_future_unref(f);
    evexec_free(ex);
    evexec_pool_free(pool);
    event_base_free(base);
    if (wakeup)
        unsetenv("EVEXEC_WAKEUP");
}

static void test_emfile(void **state)
{
    (void)state;
    check_emfile(NULL);
    check_emfile("pipe");
}

/* The wake-up channel already full (an eventfd counter at its maximum,
 * a pipe with no room): the next completion is still delivered. */
static void check_channel_full(const char *wakeup)
{
    if (wakeup)
        setenv("EVEXEC_WAKEUP", wakeup, 1);
    struct evexec_pool *pool = tu_pool_new(2, 0);
    struct event_base *base = event_base_new();
    struct evexec *ex = evexec_new(base, pool);
    assert_non_null(ex);
    int fd = evexec__wakeup_fd(ex);
    int is_pipe = wakeup != NULL;
#if !(defined(HAVE_SYS_EVENTFD_H) && defined(HAVE_EVENTFD))
    is_pipe = 1;        /* built without eventfd */
#endif
    if (is_pipe) {
        char buf[4096];
        memset(buf, 0, sizeof buf);
        while (write(fd, buf, sizeof buf) > 0)
            continue;
        assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    } else {
        uint64_t max = UINT64_C(0xfffffffffffffffe);
        assert_int_equal(write(fd, &max, sizeof max), (ssize_t)sizeof max);
        uint64_t one = 1;
        assert_int_equal(write(fd, &one, sizeof one), -1);
        assert_int_equal(errno, EAGAIN);
    }
    struct timeval tv = { TU_DEADLINE_MS / 1000, 0 };
    for (int i = 0; i < 3; i++) {
        struct evexec_future *f = evexec_run(ex, quick, NULL);
        assert_non_null(f);
        struct evexec_future *w = evexec_wait_for(ex, f, &tv);
        assert_non_null(w);
        assert_int_equal(evexec_run_until_complete(ex, w), 0);
        evexec_future_unref(w);
        evexec_future_unref(f);
    }
    evexec_free(ex);
    evexec_pool_free(pool);
    event_base_free(base);
    if (wakeup)
        unsetenv("EVEXEC_WAKEUP");
}

static void test_channel_full(void **state)
{
    (void)state;
    check_channel_full(NULL);
    check_channel_full("pipe");
}

/* A burst's threads are started by the workers: the submitter starts
 * one, and each new worker the next ones the queue wants.  A batch (jobs
 * submitted inside a callback) of 8 jobs that each hold a thread asks for
 * 8 threads at once. */
static pthread_t submitter;
static atomic_int made_by_submitter, made_by_worker;

static int count_makers(size_t n)
{
    (void)n;
    if (pthread_equal(pthread_self(), submitter))
        atomic_fetch_add(&made_by_submitter, 1);
    else
        atomic_fetch_add(&made_by_worker, 1);
    return 0;
}

enum { BURST_THREADS = 8 };

struct burst {
    struct evexec *ex;
    struct tu_gate gate;
    struct evexec_future *f[BURST_THREADS];
};

static void submit_burst(struct evexec_future *h, void *arg)
{
    struct burst *b = arg;
    (void)h;
    for (int i = 0; i < BURST_THREADS; i++)
        b->f[i] = evexec_run(b->ex, tu_gated_job, &b->gate);
}

static void test_workers_start_workers(void **state)
{
    (void)state;
    struct evexec_pool *pool = tu_pool_new(BURST_THREADS, 0);
    struct event_base *base = event_base_new();
    struct burst b;
    b.ex = evexec_new(base, pool);
    assert_non_null(b.ex);
    tu_gate_init(&b.gate);
    submitter = pthread_self();
    atomic_store(&made_by_submitter, 0);
    atomic_store(&made_by_worker, 0);
    atomic_store(&evexec__thread_hook, count_makers);
    struct evexec_future *h = evexec_future_new(b.ex);
    assert_non_null(h);
    assert_int_equal(evexec_future_on_done(h, submit_burst, &b), 0);
    assert_int_equal(evexec_future_set_result(h, NULL, NULL), 0);
    assert_int_equal(evexec_run_until_complete(b.ex, h), 0);
    evexec_future_unref(h);
    for (int i = 0; i < BURST_THREADS; i++)
        assert_non_null(b.f[i]);
    /* Every job holds its own thread. */
    assert_int_equal(tu_gate_wait_arrived(&b.gate, BURST_THREADS), 0);
    atomic_store(&evexec__thread_hook, NULL);
    assert_int_equal(atomic_load(&made_by_submitter), 1);
    assert_int_equal(atomic_load(&made_by_worker), BURST_THREADS - 1);
    tu_gate_open(&b.gate);
    struct evexec_future *all = evexec_gather(b.ex, b.f, BURST_THREADS);
    assert_non_null(all);
    assert_int_equal(evexec_run_until_complete(b.ex, all), 0);
    evexec_future_unref(all);
    for (int i = 0; i < BURST_THREADS; i++)
        evexec_future_unref(b.f[i]);
    struct evexec_pool_stats st = tu_stats(pool);
    assert_int_equal(st.threads_started, BURST_THREADS);
    evexec_free(b.ex);
    evexec_pool_free(pool);
    event_base_free(base);
    tu_gate_destroy(&b.gate);
}

/* A job queued while the only worker runs thread_exit (it still counts,
 * so no thread is started for the job at submission), and the worker
 * then cannot start one in its place: the job still runs (the worker
 * starts again), instead of waiting for ever. */
static atomic_int exit_entered, exit_go;

static void slow_exit(void *arg, void *st)
{
    (void)arg;
    (void)st;
    atomic_store(&exit_entered, 1);
    while (!atomic_load(&exit_go))
        usleep(1000);
}

static void test_thread_exit_replacement_fails(void **state)
{
    (void)state;
    struct evexec_pool_config cfg = EVEXEC_POOL_CONFIG_INIT;
    cfg.max_threads = 1;
    cfg.idle_timeout_ms = 20;
    cfg.thread_exit = slow_exit;
    struct evexec_pool *pool = evexec_pool_new(&cfg);
    struct event_base *base = event_base_new();
    struct evexec *ex = evexec_new(base, pool);
    assert_non_null(ex);
    atomic_store(&exit_entered, 0);
    atomic_store(&exit_go, 0);
    struct evexec_future *f0 = evexec_run(ex, quick, NULL);
    assert_non_null(f0);
    assert_int_equal(evexec_run_until_complete(ex, f0), 0);
    evexec_future_unref(f0);
    while (!atomic_load(&exit_entered))     /* idle: the worker exits */
        usleep(1000);
    struct evexec_future *f1 = evexec_run(ex, quick, NULL);
    assert_non_null(f1);
    atomic_store(&threads_left, 0);
    atomic_store(&evexec__thread_hook, fail_threads);
    atomic_store(&exit_go, 1);
    struct timeval limit = { 10, 0 };
    struct evexec_future *w = evexec_wait_for(ex, f1, &limit);
    assert_non_null(w);
    int rc = evexec_run_until_complete(ex, w);
    atomic_store(&evexec__thread_hook, NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(evexec_future_error(f1), 0);
    struct evexec_pool_stats st = tu_stats(pool);
    assert_true(st.threads <= 1);
    evexec_future_unref(w);
    evexec_future_unref(f1);
    evexec_free(ex);
    evexec_pool_free(pool);
    event_base_free(base);
}

/* Job blocks come from 64 KiB slabs: a slab that cannot be had makes
 * the submission fail with ENOMEM at the call, nothing else; the jobs
 * already made all end once with their outcome, later submissions get
 * slabs again, and the blocks go back (the sanitizer build checks that
 * nothing leaks). */
static atomic_int slabs_left;       /* slab allocations still allowed */

static int fail_slab(size_t n)
{
    return n == 65536 && atomic_fetch_sub(&slabs_left, 1) <= 0;
}

enum { SLAB_TRY = 1500 };

static void test_slab_fails(void **state)
{
    (void)state;
    struct evexec_pool *pool = tu_pool_new(2, 0);
    struct event_base *base = event_base_new();
    struct evexec *ex = evexec_new(base, pool);
    assert_non_null(ex);
    struct tu_gate gate;
    tu_gate_init(&gate);
    static struct evexec_future *f[SLAB_TRY + 1];
    int done = 0, made = 0;
    atomic_store(&slabs_left, 1);
    atomic_store(&evexec__alloc_hook, fail_slab);
    for (; made < SLAB_TRY; made++) {
        errno = 0;
        f[made] = evexec_run(ex, tu_gated_job, &gate);
        if (!f[made])
            break;
        assert_int_equal(evexec_future_on_done(f[made], noop_cb, &done), 0);
    }
    atomic_store(&evexec__alloc_hook, NULL);
    /* One slab's blocks, then ENOMEM. */
    assert_true(made > 100 && made < SLAB_TRY);
    assert_int_equal(errno, ENOMEM);
    f[made] = evexec_run(ex, tu_gated_job, &gate);  /* a slab again */
    assert_non_null(f[made]);
    assert_int_equal(evexec_future_on_done(f[made], noop_cb, &done), 0);
    made++;
    tu_gate_open(&gate);
    struct evexec_future *all = evexec_gather(ex, f, (size_t)made);
    assert_non_null(all);
    assert_int_equal(evexec_run_until_complete(ex, all), 0);
    assert_int_equal(done, made);
    evexec_future_unref(all);
    for (int i = 0; i < made; i++)
        evexec_future_unref(f[i]);
    /* Blocks are recycled: a second burst needs no failing slab. */
    atomic_store(&slabs_left, 0);
    atomic_store(&evexec__alloc_hook, fail_slab);
    struct evexec_future *g = evexec_run(ex, tu_gated_job, &gate);
    atomic_store(&evexec__alloc_hook, NULL);
    assert_non_null(g);
    assert_int_equal(evexec_run_until_complete(ex, g), 0);
    evexec_future_unref(g);
    evexec_free(ex);
    evexec_pool_free(pool);
    event_base_free(base);
    tu_gate_destroy(&gate);
}

int main(void)
{
    /* Before any other libevent call. */
    event_set_mem_functions(ev_malloc, ev_realloc, free);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_allocation_fails),
        cmocka_unit_test(test_every_allocation_fails_pipe),
        cmocka_unit_test(test_threads_never),
        cmocka_unit_test(test_threads_after_k),
        cmocka_unit_test(test_workers_start_workers),
        cmocka_unit_test(test_threads_rlimit_nproc),
        cmocka_unit_test(test_emfile),
        cmocka_unit_test(test_channel_full),
        cmocka_unit_test(test_thread_exit_replacement_fails),
        cmocka_unit_test(test_slab_fails),
    };
    return cmocka_run_group_tests_name("fault", tests, NULL, NULL);
}
