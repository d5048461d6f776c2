/*
 * test_pool_alone.c -- the pool built and tested without the bridge: this
 * program links lib/pool.c (with alloc.c and version.c) and its own
 * client (evexec__pool_client), so a change to the pool is checked on its
 * own terms: every job submitted is run once and handed back once; a
 * cancelling shutdown hands queued jobs back unrun; a job taken off the
 * queue is never run; a pool with one worker runs jobs in order; the slow
 * lane keeps to its share; owners are served in turn.
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
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "evexec.h"
#include "evexec-internal.h"

#define TA_DEADLINE_US (30LL * 1000000)

/* ---- what the rest of the library would provide ----------------------- */

atomic_uint evexec__fork_gen;

unsigned evexec__fork_init(void)
{
    return evexec__fork_generation();
}

void evexec__cancel_notify_pool(struct evexec_pool *pool)
{
    (void)pool;
}

/* The client: a job is a struct ta_job; running it counts, and may wait
 * at a gate; handing it back records how. */
struct ta_job {
    struct evexec_job job;          /* the pool's part */
    atomic_int ran, completed, unrun;
    int seq;                        /* order it ran in */
    atomic_int *gate;               /* wait while *gate == 0 */
    struct evexec__pool_owner owner;    /* t[0]'s: the owner of the set */
};

static atomic_int run_seq;
static atomic_int slow_now, slow_peak;

static void ta_run(struct evexec_job *job)
{
    struct ta_job *t = (struct ta_job *)job;
    int slow = job->lane == EVEXEC_LANE_SLOW;
    if (slow) {
        int n = atomic_fetch_add(&slow_now, 1) + 1;
        int peak = atomic_load(&slow_peak);
        while (n > peak && !atomic_compare_exchange_weak(&slow_peak, &peak, n))
            continue;
    }
    t->seq = atomic_fetch_add(&run_seq, 1);
    atomic_fetch_add(&t->ran, 1);
    struct timespec ts = { 0, 200000 };
    while (t->gate && atomic_load(t->gate) == 0)
        nanosleep(&ts, NULL);
    if (slow)
        atomic_fetch_sub(&slow_now, 1);
}

static void ta_complete(struct evexec_job *job, int ran)
{
    struct ta_job *t = (struct ta_job *)job;
    atomic_fetch_add(ran ? &t->completed : &t->unrun, 1);
}

static void ta_flush(void)
{
}

const struct evexec__pool_client evexec__pool_client = {
    .run = ta_run,
    .complete = ta_complete,
    .flush = ta_flush,
};

/* ---- helpers ------------------------------------------------------------- */

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static struct ta_job *jobs_new(int n, int lane, atomic_int *gate)
{
    struct ta_job *t = calloc((size_t)n, sizeof *t);
    assert_non_null(t);
    for (int i = 0; i < n; i++) {
        t[i].job.lane = (unsigned char)lane;
        t[i].job.owner = &t[0].owner;
        t[i].gate = gate;
    }
    return t;
}

/* Wait until every job is handed back (either way). */
static void wait_back(struct ta_job *t, int n)
{
    int64_t end = now_us() + TA_DEADLINE_US;
    for (int i = 0; i < n; i++) {
        while (atomic_load(&t[i].completed) + atomic_load(&t[i].unrun) == 0) {
            if (now_us() > end)
                fail_msg("job %d never came back", i);
            struct timespec ts = { 0, 500000 };
            nanosleep(&ts, NULL);
        }
    }
}

static struct evexec_pool *pool_of(unsigned threads)
{
    struct evexec_pool_config cfg = EVEXEC_POOL_CONFIG_INIT;
    cfg.max_threads = threads;
    struct evexec_pool *p = evexec_pool_new(&cfg);
    assert_non_null(p);
    return p;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_every_job_once(void **state)
{
    (void)state;
    enum { N = 20000 };
    struct evexec_pool *p = pool_of(4);
    struct ta_job *t = jobs_new(N, EVEXEC_LANE_DEFAULT, NULL);
    for (int i = 0; i < N; i++)
        assert_int_equal(evexec__pool_submit(p, &t[i].job), 0);
    wait_back(t, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&t[i].ran), 1);
        assert_int_equal(atomic_load(&t[i].completed), 1);
        assert_int_equal(atomic_load(&t[i].unrun), 0);
    }
    struct evexec_pool_stats st;
    assert_int_equal(evexec_pool_stats(p, &st), 0);
    assert_int_equal(st.completed, N);
    evexec_pool_free(p);
    free(t);
}

static void test_one_worker_in_order(void **state)
{
    (void)state;
    enum { N = 500 };
    atomic_store(&run_seq, 0);
    struct evexec_pool *p = pool_of(1);
    struct ta_job *t = jobs_new(N, EVEXEC_LANE_DEFAULT, NULL);
    /* Half one by one, half as one batch. */
    for (int i = 0; i < N / 2; i++)
        assert_int_equal(evexec__pool_submit(p, &t[i].job), 0);
    for (int i = N / 2; i < N - 1; i++)
        t[i].job.qnext = &t[i + 1].job;
    t[N - 1].job.qnext = NULL;
    assert_int_equal(evexec__pool_submit_batch(p, &t[N / 2].job), 0);
    wait_back(t, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(t[i].seq, i);
    evexec_pool_free(p);
    free(t);
}

static void test_cancel_shutdown_hands_back_unrun(void **state)
{
    (void)state;
    enum { N = 50 };
    atomic_int gate;
    atomic_init(&gate, 0);
    struct evexec_pool *p = pool_of(2);
    struct ta_job *t = jobs_new(N, EVEXEC_LANE_DEFAULT, &gate);
    for (int i = 0; i < N; i++)
        assert_int_equal(evexec__pool_submit(p, &t[i].job), 0);
    /* Both workers are held at the gate with one job each. */
    int64_t end = now_us() + TA_DEADLINE_US;
    int running = 0;
    while (running < 2 && now_us() < end) {
        running = 0;
        for (int i = 0; i < N; i++)
            running += atomic_load(&t[i].ran);
    }
    assert_int_equal(running, 2);
    /* One more taken off the queue by its owner never runs. */
    assert_int_equal(evexec__pool_unqueue(p, &t[N - 1].job), 1);
    assert_int_equal(evexec_pool_shutdown(p, EVEXEC_SHUTDOWN_CANCEL), 0);
    assert_int_equal(evexec__pool_submit(p, &t[N - 1].job), ESHUTDOWN);
    atomic_store(&gate, 1);
    wait_back(t, N - 1);
    int ran = 0, unrun = 0;
    for (int i = 0; i < N - 1; i++) {
        assert_int_equal(atomic_load(&t[i].completed) + atomic_load(&t[i].unrun), 1);
        assert_int_equal(atomic_load(&t[i].ran), atomic_load(&t[i].completed));
        ran += atomic_load(&t[i].ran);
        unrun += atomic_load(&t[i].unrun);
    }
    assert_int_equal(ran, 2);
    assert_int_equal(unrun, N - 3);
    assert_int_equal(atomic_load(&t[N - 1].ran), 0);
    assert_int_equal(atomic_load(&t[N - 1].completed) + atomic_load(&t[N - 1].unrun), 0);
    evexec_pool_free(p);
    free(t);
}

static void test_owner_unqueue(void **state)
{
    (void)state;
    enum { N = 20 };
    atomic_int gate;
    atomic_init(&gate, 0);
    struct evexec_pool *p = pool_of(1);
    struct ta_job *a = jobs_new(N, EVEXEC_LANE_DEFAULT, &gate);
    struct ta_job *b = jobs_new(N, EVEXEC_LANE_DEFAULT, NULL);
    for (int i = 0; i < N; i++) {
        assert_int_equal(evexec__pool_submit(p, &a[i].job), 0);
        assert_int_equal(evexec__pool_submit(p, &b[i].job), 0);
    }
    int64_t end = now_us() + TA_DEADLINE_US;
    while (atomic_load(&a[0].ran) == 0 && now_us() < end)
        continue;
    /* Every queued job of owner a comes off; b's stay. */
    int n = 0;
    for (struct evexec_job *j = evexec__pool_unqueue_owner(p, &a[0].owner); j; j = j->qnext)
        n++;
    assert_int_equal(n, N - 1);
    atomic_store(&gate, 1);
    wait_back(b, N);
    for (int i = 1; i < N; i++)
        assert_int_equal(atomic_load(&a[i].ran), 0);
    evexec_pool_free(p);
    free(a);
    free(b);
}

static void test_slow_lane_share(void **state)
{
    (void)state;
    enum { N = 40 };
    atomic_store(&slow_now, 0);
    atomic_store(&slow_peak, 0);
    atomic_int gate;
    atomic_init(&gate, 0);
    struct evexec_pool *p = pool_of(4);
    struct ta_job *s = jobs_new(N, EVEXEC_LANE_SLOW, &gate);
    struct ta_job *d = jobs_new(N, EVEXEC_LANE_DEFAULT, NULL);
    for (int i = 0; i < N; i++)
        assert_int_equal(evexec__pool_submit(p, &s[i].job), 0);
    /* With the slow lane held at its share, default jobs still run. */
    for (int i = 0; i < N; i++)
        assert_int_equal(evexec__pool_submit(p, &d[i].job), 0);
    wait_back(d, N);
    /* Free workers now take slow jobs up to the share, and no further:
     * wait until two are at the gate (not for a time), then check. */
    int64_t end = now_us() + TA_DEADLINE_US;
    while (atomic_load(&slow_now) < 2 && now_us() < end)
        continue;
    assert_int_equal(atomic_load(&slow_now), 2);
    assert_true(atomic_load(&slow_peak) <= 2);
    atomic_store(&gate, 1);
    wait_back(s, N);
    assert_int_equal(atomic_load(&slow_peak), 2);
    evexec_pool_free(p);
    free(s);
    free(d);
}

/* Two owners on one worker: 10 k jobs of A queued behind a job that holds
 * the worker, then 10 of B.  Served in turn, B's 10 are among the first
 * 21 jobs run after the held one, long before A's backlog drains. */
static void test_owners_in_turn(void **state)
{
    (void)state;
    enum { NA = 10000, NB = 10 };
    atomic_store(&run_seq, 0);
    atomic_int gate;
    atomic_init(&gate, 0);
    struct evexec_pool *p = pool_of(1);
    struct ta_job *hold = jobs_new(1, EVEXEC_LANE_DEFAULT, &gate);
    struct ta_job *a = jobs_new(NA, EVEXEC_LANE_DEFAULT, NULL);
    struct ta_job *b = jobs_new(NB, EVEXEC_LANE_DEFAULT, NULL);
    for (int i = 0; i < NA; i++)
        a[i].job.owner = &hold[0].owner;    /* A: the holder's owner too */
    assert_int_equal(evexec__pool_submit(p, &hold[0].job), 0);
    int64_t end = now_us() + TA_DEADLINE_US;
    while (atomic_load(&hold[0].ran) == 0 && now_us() < end)
        continue;
    assert_int_equal(atomic_load(&hold[0].ran), 1);
    /* A's as one batch, B's one by one, while the worker is held. */
    for (int i = 0; i < NA - 1; i++)
        a[i].job.qnext = &a[i + 1].job;
    a[NA - 1].job.qnext = NULL;
    assert_int_equal(evexec__pool_submit_batch(p, &a[0].job), 0);
    for (int i = 0; i < NB; i++)
        assert_int_equal(evexec__pool_submit(p, &b[i].job), 0);
    atomic_store(&gate, 1);
    wait_back(a, NA);
    wait_back(b, NB);
    /* Alternating A, B: B's i-th runs as job 2 + 2i (the held one is 0). */
    for (int i = 0; i < NB; i++)
        assert_true(b[i].seq <= 2 * NB + 1);
    /* Each owner's own jobs in the order submitted. */
    for (int i = 1; i < NA; i++)
        assert_true(a[i].seq > a[i - 1].seq);
    for (int i = 1; i < NB; i++)
        assert_true(b[i].seq > b[i - 1].seq);
    evexec_pool_free(p);
    free(hold);
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_job_once),
        cmocka_unit_test(test_one_worker_in_order),
        cmocka_unit_test(test_cancel_shutdown_hands_back_unrun),
        cmocka_unit_test(test_owner_unqueue),
        cmocka_unit_test(test_slow_lane_share),
        cmocka_unit_test(test_owners_in_turn),
    };
    return cmocka_run_group_tests_name("pool-alone", tests, NULL, NULL);
}
