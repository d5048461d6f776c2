/*
 * test_fork.c -- fork(): a child can make and use new pools, new evexecs
 * and the default pool; what it inherits from the parent is unusable,
 * refuses work with ESHUTDOWN, and can be freed without disturbing the
 * parent, whose loop and pool go on working.
 *
 * A child never asserts (cmocka longjmps): each step that fails exits
 * with its own code, and the parent asserts that code is 0.  Children
 * leave with _exit(), so what they inherited and leaked on purpose is not
 * reported as a leak.  Skipped under ThreadSanitizer, which does not
 * support fork() with threads running.
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
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "evexec.h"
#include "evexec-internal.h"
#include "testutil.h"

static int setup(void **state)
{
    return tu_fx_setup(state, 2);
}

static int teardown(void **state)
{
    return tu_fx_teardown(state);
}

/* Wait for a child, killing it after the deadline.  Returns its exit
 * code, or 1000 + signal, or -1 on timeout. */
static int wait_child(pid_t pid)
{
    int64_t end = tu_now_us() + (int64_t)TU_DEADLINE_MS * 1000;
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            return -2;
        if (tu_now_us() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        tu_sleep_us(2000);
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return WIFSIGNALED(status) ? 1000 + WTERMSIG(status) : -3;
}

static int square(struct evexec_job *job, void *arg)
{
    long *v = malloc(sizeof *v);
    if (!v)
        return ENOMEM;
    *v = (long)(intptr_t)arg * (long)(intptr_t)arg;
    evexec_job_set_result(job, v, free);
    return 0;
}

/* Run square(n) on ex and check the answer; 0 or a step code. */
static int child_job(struct evexec *ex, long n, int code)
{
    struct evexec_future *f = evexec_run(ex, square, (void *)(intptr_t)n);
    if (!f)
        return code;
    int rc = evexec_run_until_complete(ex, f);
    long *v = evexec_future_result(f);
    int ok = rc == 0 && v && *v == n * n;
    evexec_future_unref(f);
    return ok ? 0 : code + 1;
}

struct counter {
    int calls, error;
};

static void count_cb(struct evexec_future *f, void *arg)
{
    struct counter *c = arg;
    c->calls++;
    c->error = evexec_future_error(f);
}

static void noop_fn(void *arg)
{
    (void)arg;
}

/* Everything the child does; returns 0 or the number of the failed step. */
static int child_main(struct tu_fx *fx, struct evexec_pool *parent_default,
                      struct evexec_future *parked, struct counter *parked_cb)
{
    /* The default pool is the child's own. */
    struct evexec_pool *dp = evexec_pool_default();
    if (!dp || dp == parent_default)
        return 10;
    struct event_base *b2 = event_base_new();
    struct evexec *e2 = b2 ? evexec_new(b2, NULL) : NULL;
    if (!e2)
        return 11;
    int rc = child_job(e2, 7, 12);
    if (rc)
        return rc;

    /* A new pool and evexec. */
    struct evexec_pool *p3 = evexec_pool_new(NULL);
    struct event_base *b3 = event_base_new();
    struct evexec *e3 = p3 && b3 ? evexec_new(b3, p3) : NULL;
    if (!e3)
        return 20;
    if ((rc = child_job(e3, 9, 21)) != 0)
        return rc;
    if (evexec_pool_shutdown(p3, EVEXEC_SHUTDOWN_WAIT) != 0)
        return 23;

    /* What was inherited refuses work. */
    errno = 0;
    if (evexec_run(fx->ex, square, NULL) || errno != ESHUTDOWN)
        return 30;
    errno = 0;
    if (evexec_future_new(fx->ex) || errno != ESHUTDOWN)
        return 31;
    struct timeval tv = { 0, 1000 };
    errno = 0;
    if (evexec_sleep(fx->ex, &tv) || errno != ESHUTDOWN)
        return 32;
    if (evexec_call_soon_threadsafe(fx->ex, noop_fn, NULL) != ESHUTDOWN)
        return 33;
    if (evexec_run_until_complete(fx->ex, parked) != ESHUTDOWN)
        return 34;
    errno = 0;
    if (evexec_new(b2, fx->pool) || errno != ESHUTDOWN)
        return 35;
    errno = 0;
    if (evexec_getaddrinfo(fx->ex, "localhost", NULL, NULL) || errno != ESHUTDOWN)
        return 36;
    struct evexec_pool_stats st;
    if (evexec_pool_stats(fx->pool, &st) != ESHUTDOWN)
        return 37;
    if (evexec_pool_shutdown(fx->pool, EVEXEC_SHUTDOWN_WAIT) != 0)
        return 38;

    /* Freeing the inherited ones: the parked job's future ends ECANCELED
     * in the child, its callback runs once. */
    if (event_reinit(fx->base) != 0)
        return 40;
    evexec_free(fx->ex);
    if (parked_cb->calls != 1 || parked_cb->error != ECANCELED)
        return 41;
    evexec_pool_free(fx->pool);

    evexec_free(e3);
    evexec_pool_free(p3);
    event_base_free(b3);
    evexec_free(e2);
    event_base_free(b2);
    return 0;
}

static void test_child_uses_new_and_frees_inherited(void **state)
{
    struct tu_fx *fx = *state;
#ifdef TU_TSAN
    skip();
#endif
    /* The parent has used its pool and the default pool: threads exist,
     * one job is running (parked) when it forks. */
    struct evexec_pool *dp = evexec_pool_default();
    assert_non_null(dp);
    struct evexec *dex = evexec_new(fx->base, dp);
    assert_non_null(dex);
    struct evexec_future *df = evexec_run(dex, square, (void *)(intptr_t)3);
    assert_int_equal(evexec_run_until_complete(dex, df), 0);
    evexec_future_unref(df);
    evexec_free(dex);

    struct tu_job *parked = tu_fx_job(fx, 1, 0);
    parked->gate = &fx->gate;
    struct evexec_future *pf = evexec_run(fx->ex, tu_job_fn, parked);
    assert_non_null(pf);
    struct counter pc = { 0, 0 };
    assert_int_equal(evexec_future_on_done(pf, count_cb, &pc), 0);
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, 1), 0);

    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(child_main(fx, dp, pf, &pc));
    assert_int_equal(wait_child(pid), 0);

    /* The parent goes on: the parked job finishes and is delivered
     * through the channel the child closed its copy of. */
    tu_gate_open(&fx->gate);
    assert_int_equal(evexec_run_until_complete(fx->ex, pf), 0);
    assert_int_equal(pc.calls, 1);
    assert_int_equal(pc.error, 0);
    evexec_future_unref(pf);
    struct tu_job *j = tu_fx_job(fx, 1, 0);
    struct evexec_future *f = evexec_run(fx->ex, tu_job_fn, j);
    assert_non_null(f);
    assert_int_equal(evexec_run_until_complete(fx->ex, f), 0);
    evexec_future_unref(f);
}

/* A job that forks: its child is no worker (shutdown(WAIT) there is not
 * EDEADLK) and runs a pool of its own. */
static int forking_job(struct evexec_job *job, void *arg)
{
    (void)job;
    (void)arg;
    pid_t pid = fork();
    if (pid < 0)
        return errno;
    if (pid == 0) {
        struct evexec_pool *p = evexec_pool_new(NULL);
        struct event_base *b = event_base_new();
        struct evexec *e = p && b ? evexec_new(b, p) : NULL;
        if (!e)
            _exit(50);
        int rc = child_job(e, 5, 51);
        if (rc)
            _exit(rc);
        evexec_free(e);
        if (evexec_pool_shutdown(p, EVEXEC_SHUTDOWN_WAIT) != 0)
            _exit(53);
        evexec_pool_free(p);
        event_base_free(b);
        _exit(0);
    }
    int code = wait_child(pid);
    return code == 0 ? 0 : code < 0 ? ETIMEDOUT : 1000 + code;
}

static void test_fork_from_job(void **state)
{
    struct tu_fx *fx = *state;
#ifdef TU_TSAN
    skip();
#endif
    fflush(NULL);
    struct evexec_future *f = evexec_run(fx->ex, forking_job, NULL);
    assert_non_null(f);
    assert_int_equal(evexec_run_until_complete(fx->ex, f), 0);
    evexec_future_unref(f);
}

/* EVEXEC_THREADS sizes the default pool, made anew in a child. */
static atomic_int arrived;

static int wait_for_three(struct evexec_job *job, void *arg)
{
    (void)job;
    (void)arg;
    atomic_fetch_add(&arrived, 1);
    int64_t end = tu_now_us() + 10 * 1000000;
    while (atomic_load(&arrived) < 3 && tu_now_us() < end)
        tu_sleep_us(1000);
    return atomic_load(&arrived) >= 3 ? 0 : ETIMEDOUT;
}

static int threads_child(const char *value, unsigned want)
{
    setenv("EVEXEC_THREADS", value, 1);
    struct evexec_pool *p = evexec_pool_default();
    struct event_base *b = event_base_new();
    struct evexec *e = p && b ? evexec_new(b, NULL) : NULL;
    if (!e)
        return 60;
    struct evexec_future *f[6];
    for (int i = 0; i < 6; i++)
        if (!(f[i] = evexec_run(e, wait_for_three, NULL)))
            return 61;
    struct evexec_future *all = evexec_gather(e, f, 6);
    if (!all || evexec_run_until_complete(e, all) != 0)
        return 62;
    struct evexec_pool_stats st;
    if (evexec_pool_stats(p, &st) != 0)
        return 63;
    if (want ? st.threads_started != want : st.threads_started < 3)
        return 64;
    return 0;
}

static void test_default_pool_size_from_env(void **state)
{
    (void)state;
#ifdef TU_TSAN
    skip();
#endif
    const char *values[] = { "3", "0", "junk", "99999" };
    unsigned want[] = { 3, 0, 0, 0 };     /* 0: the default size */
    for (int i = 0; i < 4; i++) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            _exit(threads_child(values[i], want[i]));
        assert_int_equal(wait_child(pid), 0);
    }
}

/* Workers of the parent were waiting for their cancel (on the shared
 * cancellation condition variables) when it forked: the child's own jobs
 * still wait and are woken, and a cancel there does not block. */
static int wait_cancel_fn(struct evexec_job *job, void *arg)
{
    (void)arg;
    return evexec_job_wait_cancel(job, NULL);
}

static int cancel_child(void)
{
    struct evexec_pool_config cfg = EVEXEC_POOL_CONFIG_INIT;
    cfg.max_threads = 34;
    struct evexec_pool *p = evexec_pool_new(&cfg);
    struct event_base *b = event_base_new();
    struct evexec *e = p && b ? evexec_new(b, p) : NULL;
    if (!e)
        return 70;
    for (int round = 0; round < 3; round++) {
        struct evexec_future *f[32];
        for (int i = 0; i < 32; i++)
            if (!(f[i] = evexec_run(e, wait_cancel_fn, NULL)))
                return 71;
        struct timeval tv = { 0, 20000 };
        struct evexec_future *s = evexec_sleep(e, &tv);
        if (!s || evexec_run_until_complete(e, s) != 0)
            return 72;
        evexec_future_unref(s);
        for (int i = 0; i < 32; i++)
            evexec_future_cancel(f[i]);
        struct evexec_future *g = evexec_gather_opts(e, f, 32, EVEXEC_GATHER_ALL);
        if (!g || evexec_run_until_complete(e, g) != 0)
            return 73;
        for (int i = 0; i < 32; i++) {
            if (evexec_future_error(f[i]) != ECANCELED)
                return 74;
            evexec_future_unref(f[i]);
        }
        evexec_future_unref(g);
    }
    if (evexec_pool_shutdown(p, EVEXEC_SHUTDOWN_CANCEL | EVEXEC_SHUTDOWN_WAIT) != 0)
        return 75;
    evexec_free(e);
    evexec_pool_free(p);
    event_base_free(b);
    return 0;
}

static void test_fork_while_waiting_for_cancel(void **state)
{
    struct tu_fx *fx = *state;
#ifdef TU_TSAN
    skip();
#endif
    /* Eight workers waiting, so that most stripes have a waiter. */
    struct evexec_pool_config cfg = EVEXEC_POOL_CONFIG_INIT;
    cfg.max_threads = 8;
    struct evexec_pool *p8 = evexec_pool_new(&cfg);
    assert_non_null(p8);
    struct evexec *ex8 = evexec_new(fx->base, p8);
    assert_non_null(ex8);
    struct evexec_future *w[8];
    for (int i = 0; i < 8; i++) {
        w[i] = evexec_run(ex8, wait_cancel_fn, NULL);
        assert_non_null(w[i]);
    }
    /* Let the workers reach their wait. */
    struct timeval tv = { 0, 100000 };
    struct evexec_future *s = evexec_sleep(ex8, &tv);
    assert_int_equal(evexec_run_until_complete(ex8, s), 0);
    evexec_future_unref(s);
    for (int k = 0; k < 3; k++) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            _exit(cancel_child());
        assert_int_equal(wait_child(pid), 0);
    }
    for (int i = 0; i < 8; i++) {
        assert_int_equal(evexec_future_cancel(w[i]), 0);
        assert_int_equal(evexec_run_until_complete(ex8, w[i]), ECANCELED);
        evexec_future_unref(w[i]);
    }
    evexec_free(ex8);
    evexec_pool_free(p8);
}

/* The process-wide count of adaptive spinners: a slot that a thread of
 * the parent holds when the process forks is not held in the child (the
 * thread is not there to give it back), so the child's spinners still
 * spin.  White box: a thread of the parent holds a slot across fork(),
 * and the child must find every slot free. */
static atomic_int slot_held, slot_release;

static int ready_now(const void *arg)
{
    (void)arg;
    return 1;
}

static void *hold_spin_slot(void *arg)
{
    struct evexec__spinner s;
    evexec__spinner_init(&s, arg);
    while (!evexec__spin_begin(&s, 0))
        usleep(100);            /* other spinners of the process */
    atomic_store(&slot_held, 1);
    while (!atomic_load(&slot_release))
        usleep(100);
    evexec__spin_run(&s, ready_now, NULL);
    return NULL;
}

static int spin_child(void)
{
    struct evexec_pool *p = evexec_pool_new(NULL);      /* adaptive spin */
    if (!p)
        return 2;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    struct evexec__spinner s;
    evexec__spinner_init(&s, p);
    /* Every CPU but one busy: a slot is free only if no one spins. */
    if (!evexec__spin_begin(&s, cpus > 1 ? (size_t)cpus - 1 : 0))
        return 3;
    evexec__spin_run(&s, ready_now, NULL);
    evexec_pool_free(p);
    return 0;
}

static void test_fork_while_spinning(void **state)
{
    struct tu_fx *fx = *state;
#ifdef TU_TSAN
    skip();
#endif
    pthread_t t;
    atomic_store(&slot_held, 0);
    atomic_store(&slot_release, 0);
    assert_int_equal(pthread_create(&t, NULL, hold_spin_slot, fx->pool), 0);
    while (!atomic_load(&slot_held))
        usleep(100);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(spin_child());
    int code = wait_child(pid);
    atomic_store(&slot_release, 1);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(code, 0);
}

#define TESTS(X) \
    X(test_child_uses_new_and_frees_inherited) \
    X(test_fork_while_waiting_for_cancel) \
    X(test_fork_from_job) \
    X(test_fork_while_spinning) \
    X(test_default_pool_size_from_env)

TESTS(TU_WRAP)

#define ENTRY(name) TU_ENTRY(name, setup, teardown),

int main(void)
{
    const struct CMUnitTest tests[] = { TESTS(ENTRY) };
    return cmocka_run_group_tests_name("fork", tests, NULL, NULL);
}
