/*
 * test_signals.c -- jobs under a storm of signals that do not restart
 * system calls.
 *
 * test_signal_storm: SIGALRM from setitimer() every 100 us (process-wide:
 * mostly the loop thread, in epoll_wait) and SIGUSR1 sent with
 * pthread_kill() to every worker thread every ~100 us by a helper thread,
 * both handled WITHOUT SA_RESTART, while N jobs run (N = 8000 CI, 100000
 * long; a quarter under sanitizers): plain sleeps, evexec_job_poll() with
 * a short timeout on a pipe nobody writes (ETIMEDOUT) and on one that
 * holds a byte (0, POLLIN), evexec_job_wait_cancel() with a short timeout
 * (ETIMEDOUT), evexec_job_poll() with a long timeout on a job cancelled
 * from the loop (ECANCELED), and evexec_fs_write_file() then
 * evexec_fs_read_file() of files in a temporary directory (the content
 * read back is the content written).  Checked: no EINTR reaches a job or a
 * future, every future ends once with the expected outcome, nothing is
 * lost (with a deadline).  Afterwards the timer and the helper are stopped
 * and both signals keep a harmless handler (with SA_RESTART), so late
 * signals do nothing.
 *
 * Sizes and seeds as in test_stress.c: EVEXEC_STRESS=long selects the long
 * size; EVEXEC_STRESS_SEED replays the random choices.
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
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "evexec.h"
#include "testutil.h"

#define WORKERS 4

/* ---- seeds (sizes and randomness: testutil.h) ------------------------------- */

static uint64_t g_seed;

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* Run base until pred(arg); ETIMEDOUT when *progress stood still for
 * TU_DEADLINE_MS. */
static int loop_until(struct event_base *base, int (*pred)(void *), void *arg,
                      const long *progress)
{
    struct event *tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
    if (!tick)
        return ENOMEM;
    struct timeval tv = { 0, 50000 };
    event_add(tick, &tv);
    long last = *progress;
    int64_t end = tu_now_us() + (int64_t)TU_DEADLINE_MS * 1000;
    int rc = 0;
    while (!pred(arg)) {
        if (*progress != last) {
            last = *progress;
            end = tu_now_us() + (int64_t)TU_DEADLINE_MS * 1000;
        }
        if (tu_now_us() > end) {
            rc = ETIMEDOUT;
            break;
        }
        if (event_base_loop(base, EVLOOP_ONCE) < 0 && errno != EINTR) {
            rc = EIO;
            break;
        }
    }
    event_free(tick);
    return rc;
}

/* ---- the signals ------------------------------------------------------------- */

static atomic_long g_alarms, g_usr1;

static void on_alarm(int sig)
{
    (void)sig;
    atomic_fetch_add(&g_alarms, 1);
}

static void on_usr1(int sig)
{
    (void)sig;
    atomic_fetch_add(&g_usr1, 1);
}

static void install(int sig, void (*fn)(int), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(sig, &sa, NULL), 0);
}

/* Workers, recorded by thread_init; the pool keeps them (min_threads ==
 * max_threads) until it is shut down, after the helper stopped. */
static pthread_mutex_t g_workers_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_t g_workers[WORKERS];
static int g_nworkers;

static void record_worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g_workers_mu);
    if (g_nworkers < WORKERS)
        g_workers[g_nworkers++] = pthread_self();
    pthread_mutex_unlock(&g_workers_mu);
}

static atomic_int g_helper_stop;
static atomic_long g_kills;

static void *helper_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_helper_stop)) {
        pthread_mutex_lock(&g_workers_mu);
        for (int i = 0; i < g_nworkers; i++)
            if (pthread_kill(g_workers[i], SIGUSR1) == 0)
                atomic_fetch_add(&g_kills, 1);
        pthread_mutex_unlock(&g_workers_mu);
        struct timespec ts = { 0, 100000 };
        nanosleep(&ts, NULL);   /* EINTR is fine: a shorter pause */
    }
    return NULL;
}

/* ---- the jobs --------------------------------------------------------------- */

enum { K_SLEEP, K_POLL_IDLE, K_POLL_READY, K_WAIT_CANCEL, K_POLL_CANCELLED, K_KINDS };
static const char *const kind_name[K_KINDS] = {
    "sleep", "poll (idle pipe)", "poll (ready pipe)", "wait_cancel", "poll (cancelled)",
};

struct sg {
    int idle_rfd, ready_rfd;
    int n, window;
    int submitted, done, submit_failures;
    long progress;
    struct evexec *ex;
    uint64_t rng;
    struct sg_job *jobs;
    int files, next_file, files_done;
    struct sg_file *file;
    char dir[64];
    int fs_bad;
    int fs_eintr;
    int count[K_KINDS];
};

struct sg_job {
    struct sg *s;
    int kind;
    int timeout_us;
    atomic_int ran;
    atomic_int rc;              /* what the library call returned */
    atomic_int revents;
    int calls;
    int err;
    int cancel_taken;
};

static int sg_fn(struct evexec_job *job, void *arg)
{
    struct sg_job *j = arg;
    struct sg *s = j->s;
    atomic_fetch_add(&j->ran, 1);
    struct timespec to = { 0, (long)j->timeout_us * 1000 };
    struct pollfd p = { -1, POLLIN, 0 };
    int rc = 0;
    switch (j->kind) {
    case K_SLEEP:
        tu_sleep_us(j->timeout_us);
        break;
    case K_POLL_IDLE:
    case K_POLL_CANCELLED:
        p.fd = s->idle_rfd;
        rc = evexec_job_poll(job, &p, 1, &to);
        break;
    case K_POLL_READY:
        p.fd = s->ready_rfd;
        rc = evexec_job_poll(job, &p, 1, &to);
        atomic_store(&j->revents, p.revents);
        break;
    case K_WAIT_CANCEL:
        rc = evexec_job_wait_cancel(job, &to);
        break;
    }
    atomic_store(&j->rc, rc);
    return rc == ETIMEDOUT ? 0 : rc;
}

static void sg_submit(struct sg *s);

static void sg_cb(struct evexec_future *f, void *arg)
{
    struct sg_job *j = arg;
    struct sg *s = j->s;
    j->calls++;
    j->err = evexec_future_error(f);
    evexec_future_unref(f);
    s->done++;
    s->progress++;
    while (s->submitted < s->n && s->submitted - s->done < s->window)
        sg_submit(s);
}

static void sg_submit(struct sg *s)
{
    struct sg_job *j = &s->jobs[s->submitted++];
    j->s = s;
    j->kind = (int)tu_rng_below(&s->rng, K_KINDS);
    j->timeout_us = 50 + (int)tu_rng_below(&s->rng, 300);
    if (j->kind == K_POLL_CANCELLED)
        j->timeout_us = 200000;     /* the cancel ends it */
    s->count[j->kind]++;
    struct evexec_future *f = evexec_run(s->ex, sg_fn, j);
    if (!f || evexec_future_on_done(f, sg_cb, j) != 0) {
        s->submit_failures++;
        j->calls = 1;
        s->done++;
        return;
    }
    if (j->kind == K_POLL_CANCELLED) {
        /* Hold a reference across the cancel; the callback drops the
         * first one. */
        evexec_future_ref(f);
        if (tu_rng_below(&s->rng, 2))
            tu_sleep_us((long)tu_rng_below(&s->rng, 200));   /* let it start, often */
        j->cancel_taken = evexec_future_cancel(f) == 0;
        evexec_future_unref(f);
    }
}

/* ---- files --------------------------------------------------------------- */

struct sg_file {
    struct sg *s;
    int index;
    char path[128];
    unsigned char *data;
    size_t len;
    int write_err, read_err, calls;
    int content_ok;
};

static void sg_file_submit(struct sg *s, struct sg_file *fl);

static void sg_read_cb(struct evexec_future *f, void *arg)
{
    struct sg_file *fl = arg;
    struct sg *s = fl->s;
    fl->calls++;
    fl->read_err = evexec_future_error(f);
    struct evexec_buf *b = evexec_future_result(f);
    fl->content_ok = fl->read_err == 0 && b && b->len == fl->len &&
                     memcmp(b->data, fl->data, fl->len) == 0;
    evexec_future_unref(f);
    s->files_done++;
    s->progress++;
    if (s->next_file < s->files)
        sg_file_submit(s, &s->file[s->next_file++]);
}

static void sg_write_cb(struct evexec_future *f, void *arg)
{
    struct sg_file *fl = arg;
    struct sg *s = fl->s;
    fl->calls++;
    fl->write_err = evexec_future_error(f);
    evexec_future_unref(f);
    s->progress++;
    struct evexec_future *r = fl->write_err ? NULL : evexec_fs_read_file(s->ex, fl->path);
    if (!r || evexec_future_on_done(r, sg_read_cb, fl) != 0) {
        fl->read_err = fl->write_err ? fl->write_err : errno;
        s->files_done++;    /* this chain ends; the test fails */
    }
}

static void sg_file_submit(struct sg *s, struct sg_file *fl)
{
    fl->s = s;
    snprintf(fl->path, sizeof fl->path, "%s/f%d", s->dir, fl->index % 64);
    struct evexec_future *f = evexec_fs_write_file(s->ex, fl->path, fl->data, fl->len, 0600);
    if (!f || evexec_future_on_done(f, sg_write_cb, fl) != 0) {
        fl->write_err = errno ? errno : EIO;
        s->files_done++;
    }
}

static int sg_all_done(void *arg)
{
    struct sg *s = arg;
    return s->done == s->n && s->files_done == s->files;
}

static void test_signal_storm(void **state)
{
    (void)state;
    struct sg s;
    memset(&s, 0, sizeof s);
    s.rng = g_seed ? g_seed : 1;
    s.n = tu_stress_size(16000, 100000);
    s.files = tu_stress_size(240, 3000);
    s.window = 2 * WORKERS;
    s.jobs = calloc((size_t)s.n, sizeof *s.jobs);
    struct sg_file *files = calloc((size_t)s.files, sizeof *files);
    assert_non_null(s.jobs);
    assert_non_null(files);
    const char *tmp = getenv("TMPDIR");
    snprintf(s.dir, sizeof s.dir, "%s/evexec-sig-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(s.dir));
    int idle[2], ready[2];
    assert_int_equal(pipe(idle), 0);
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(write(ready[1], "x", 1), 1);
    s.idle_rfd = idle[0];
    s.ready_rfd = ready[0];

    struct evexec_pool_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.max_threads = WORKERS;
    cfg.min_threads = WORKERS;
    cfg.thread_init = record_worker;
    struct evexec_pool *pool = evexec_pool_new(&cfg);
    assert_non_null(pool);
    struct event_base *base = event_base_new();
    assert_non_null(base);
    s.ex = evexec_new(base, pool);
    assert_non_null(s.ex);

    /* The storm: no SA_RESTART. */
    install(SIGALRM, on_alarm, 0);
    install(SIGUSR1, on_usr1, 0);
    pthread_t helper;
    atomic_store(&g_helper_stop, 0);
    assert_int_equal(pthread_create(&helper, NULL, helper_main, NULL), 0);
    struct itimerval it = { { 0, 100 }, { 0, 100 } };
    assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);

    for (int i = 0; i < s.files; i++) {
        struct sg_file *fl = &files[i];
        fl->index = i;
        fl->len = 1 + tu_rng_below(&s.rng, 200000);
        fl->data = malloc(fl->len);
        assert_non_null(fl->data);
        for (size_t k = 0; k < fl->len; k++)
            fl->data[k] = (unsigned char)(k * 31 + (size_t)i);
    }
    /* Jobs in a window; files in four chains of write then read (64
     * names, each rewritten now and then). */
    s.file = files;
    while (s.submitted < s.n && s.submitted < s.window)
        sg_submit(&s);
    while (s.next_file < s.files && s.next_file < 4)
        sg_file_submit(&s, &files[s.next_file++]);
    int rc = loop_until(base, sg_all_done, &s, &s.progress);

    /* Calm: stop the sources, keep harmless handlers for late signals. */
    struct itimerval off = { { 0, 0 }, { 0, 0 } };
    setitimer(ITIMER_REAL, &off, NULL);
    atomic_store(&g_helper_stop, 1);
    pthread_join(helper, NULL);
    install(SIGALRM, on_alarm, SA_RESTART);
    install(SIGUSR1, on_usr1, SA_RESTART);

    if (rc != 0)
        fail_msg("%d of %d jobs and %d of %d files done (%s)", s.done, s.n, s.files_done,
                 s.files, evexec_strerror(rc));
    assert_int_equal(s.submit_failures, 0);
    int eintr = 0;
    for (int i = 0; i < s.n; i++) {
        struct sg_job *j = &s.jobs[i];
        int ran = atomic_load(&j->ran), jrc = atomic_load(&j->rc);
        if (j->calls != 1 || ran > 1)
            fail_msg("job %d (%s): callback ran %d times, job %d times", i,
                     kind_name[j->kind], j->calls, ran);
        eintr += jrc == EINTR || j->err == EINTR;
        int ok;
        switch (j->kind) {
        case K_POLL_READY:
            ok = ran && jrc == 0 && (atomic_load(&j->revents) & POLLIN) && j->err == 0;
            break;
        case K_POLL_CANCELLED:
            ok = j->cancel_taken && j->err == ECANCELED &&
                 (!ran || jrc == ECANCELED || jrc == ETIMEDOUT);
            break;
        case K_SLEEP:
            ok = ran && j->err == 0;
            break;
        default:
            ok = ran && jrc == ETIMEDOUT && j->err == 0;
            break;
        }
        if (!ok)
            fail_msg("job %d (%s): ran %d, the call returned %s, the future ended %s", i,
                     kind_name[j->kind], ran, evexec_strerror(jrc), evexec_strerror(j->err));
    }
    assert_int_equal(eintr, 0);
    for (int i = 0; i < s.files; i++) {
        struct sg_file *fl = &files[i];
        if (fl->write_err || fl->read_err || !fl->content_ok || fl->calls != 2)
            fail_msg("file %d (%zu bytes): write %s, read %s, content %s, %d callbacks", i,
                     fl->len, evexec_strerror(fl->write_err), evexec_strerror(fl->read_err),
                     fl->content_ok ? "right" : "wrong", fl->calls);
    }
    printf("stress signal_storm: %d jobs (", s.n);
    for (int k = 0; k < K_KINDS; k++)
        printf("%s%d %s", k ? ", " : "", s.count[k], kind_name[k]);
    printf("), %d files written and read back; %ld SIGALRM and %ld SIGUSR1 handled "
           "(%ld sent to workers), no EINTR\n", s.files, atomic_load(&g_alarms),
           atomic_load(&g_usr1), atomic_load(&g_kills));

    evexec_free(s.ex);
    evexec_pool_free(pool);
    event_base_free(base);
    for (int i = 0; i < s.files; i++) {
        free(files[i].data);
        if (i < 64) {
            char p[160];
            snprintf(p, sizeof p, "%s/f%d", s.dir, i);
            unlink(p);
        }
    }
    rmdir(s.dir);
    close(idle[0]);
    close(idle[1]);
    close(ready[0]);
    close(ready[1]);
    free(files);
    free(s.jobs);
}

int main(void)
{
    g_seed = tu_stress_seed();
    printf("stress seed: EVEXEC_STRESS_SEED=%" PRIu64 " (size: %s)\n", g_seed,
           tu_stress_long() ? "long" : "CI");
    fflush(stdout);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signal_storm),
    };
    return cmocka_run_group_tests_name("signals", tests, NULL, NULL);
}
