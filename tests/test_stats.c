/*
 * test_stats.c -- seeing into a pool: the lane counters and histograms
 * (evexec_pool_lane_stats, evexec_hist_percentile), the watchdog
 * (evexec_set_watchdog) and the stats socket (evexec_stats_listen).
 *
 * No timing is asserted beyond what cannot fail on a loaded machine: a
 * job that sleeps 20 ms ran at least 16.384 ms; a job held at a gate
 * past the watchdog's threshold is reported once, however long it is
 * held afterwards.
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
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "testutil.h"
#include "stats.h"

/* The fixture's loop, with a pool of max_threads that times its jobs
 * (timing 1) or not, and an evexec on it. */
static int setup_pool(void **state, unsigned max_threads, unsigned timing)
{
    if (tu_fx_setup(state, 0) != 0)
        return -1;
    struct tu_fx *fx = *state;
    struct evexec_pool_config cfg = EVEXEC_POOL_CONFIG_INIT;
    cfg.max_threads = max_threads;
    cfg.timing = timing;
    fx->pool = evexec_pool_new(&cfg);
    fx->ex = fx->pool ? evexec_new(fx->base, fx->pool) : NULL;
    return fx->ex ? 0 : -1;
}

static int setup(void **state) { return setup_pool(state, 2, 1); }
static int setup1(void **state) { return setup_pool(state, 1, 1); }
static int setup_untimed(void **state) { return setup_pool(state, 2, 0); }
static int teardown(void **state) { return tu_fx_teardown(state); }

static uint64_t hist_sum(const uint64_t *h)
{
    uint64_t n = 0;
    for (int i = 0; i < EVEXEC_HIST_BUCKETS; i++)
        n += h[i];
    return n;
}

static struct evexec_lane_stats lane_stats(const struct evexec_pool *pool, int lane)
{
    struct evexec_lane_stats ls;
    memset(&ls, 0xa5, sizeof ls);
    assert_int_equal(evexec_pool_lane_stats(pool, lane, &ls), 0);
    return ls;
}

/* Run the loop of fx for about ms milliseconds. */
static void run_for(struct evexec *ex, long ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    struct evexec_future *f = evexec_sleep(ex, &tv);
    assert_non_null(f);
    assert_int_equal(evexec_run_until_complete(ex, f), 0);
    evexec_future_unref(f);
}

static struct evexec_future *run_lane(struct evexec *ex, struct tu_job *j, int lane)
{
    struct evexec_run_opts o = EVEXEC_RUN_OPTS_INIT;
    o.lane = lane;
    return evexec_run_opts(ex, tu_job_fn, j, &o);
}

/* ---- histograms ---------------------------------------------------------- */

static void test_hist_bucket(void **state)
{
    (void)state;
    assert_int_equal(evexec__hist_bucket(0), 0);
    assert_int_equal(evexec__hist_bucket(1), 0);
    assert_int_equal(evexec__hist_bucket(2), 1);
    assert_int_equal(evexec__hist_bucket(3), 1);
    assert_int_equal(evexec__hist_bucket(1023), 9);
    assert_int_equal(evexec__hist_bucket(1024), 10);
    assert_int_equal(evexec__hist_bucket(((uint64_t)1 << 31) - 1), 30);
    assert_int_equal(evexec__hist_bucket((uint64_t)1 << 31), 31);
    assert_int_equal(evexec__hist_bucket(UINT64_MAX), 31);
}

static void test_hist_percentile(void **state)
{
    (void)state;
    uint64_t h[EVEXEC_HIST_BUCKETS];
    memset(h, 0, sizeof h);
    assert_int_equal(evexec_hist_percentile(h, 50), 0);        /* empty */
    h[0] = 50;          /* 50 below 2 us */
    h[3] = 49;          /* 49 in [8, 16) */
    h[10] = 1;          /* 1 in [1024, 2048) */
    assert_int_equal(evexec_hist_percentile(h, 0), 2);
    assert_int_equal(evexec_hist_percentile(h, 50), 2);
    assert_int_equal(evexec_hist_percentile(h, 50.5), 16);
    assert_int_equal(evexec_hist_percentile(h, 99), 16);
    assert_int_equal(evexec_hist_percentile(h, 99.5), 2048);
    assert_int_equal(evexec_hist_percentile(h, 100), 2048);
    h[EVEXEC_HIST_BUCKETS - 1] = 1;     /* unbounded */
    assert_true(evexec_hist_percentile(h, 100) == UINT64_MAX);
    assert_int_equal(evexec_hist_percentile(h, -1), 0);
    assert_int_equal(evexec_hist_percentile(h, 100.5), 0);
    assert_int_equal(evexec_hist_percentile(NULL, 50), 0);
}

static void test_lane_stats_bad(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec_lane_stats ls;
    assert_int_equal(evexec_pool_lane_stats(NULL, 0, &ls), EINVAL);
    assert_int_equal(evexec_pool_lane_stats(fx->pool, 0, NULL), EINVAL);
    assert_int_equal(evexec_pool_lane_stats(fx->pool, 2, &ls), EINVAL);
    assert_int_equal(evexec_pool_lane_stats(fx->pool, -1, &ls), EINVAL);
    ls = lane_stats(fx->pool, EVEXEC_LANE_SLOW);        /* a new pool */
    assert_int_equal(ls.queued, 0);
    assert_int_equal(ls.running, 0);
    assert_int_equal(ls.completed, 0);
    assert_int_equal(ls.cancelled, 0);
    assert_int_equal(hist_sum(ls.queued_us_hist), 0);
    assert_int_equal(hist_sum(ls.running_us_hist), 0);
}

/* Every job is counted once, in its lane, in both histograms; a job that
 * sleeps 20 ms lands at or above the 16 ms bucket. */
static void test_lane_counts(void **state)
{
    struct tu_fx *fx = *state;
    enum { QUICK = 40, SLOW = 3 };
    struct evexec_future *fs[QUICK + SLOW];
    struct tu_job *j = tu_fx_jobs(fx, QUICK + SLOW);
    for (int i = 0; i < QUICK; i++)
        assert_non_null(fs[i] = evexec_run(fx->ex, tu_job_fn, &j[i]));
    for (int i = QUICK; i < QUICK + SLOW; i++) {
        j[i].sleep_us = 20000;
        assert_non_null(fs[i] = run_lane(fx->ex, &j[i], EVEXEC_LANE_SLOW));
    }
    struct evexec_future *all = evexec_gather(fx->ex, fs, QUICK + SLOW);
    assert_int_equal(tu_finish(fx->ex, all), 0);
    evexec_future_unref(all);

    /* Every future has ended: every job is counted. */
    struct evexec_lane_stats d = lane_stats(fx->pool, EVEXEC_LANE_DEFAULT);
    assert_int_equal(d.completed, QUICK);
    assert_int_equal(hist_sum(d.running_us_hist), QUICK);
    assert_int_equal(hist_sum(d.queued_us_hist), QUICK);
    assert_int_equal(d.queued, 0);
    assert_int_equal(d.running, 0);
    assert_int_equal(d.cancelled, 0);

    struct evexec_lane_stats s = lane_stats(fx->pool, EVEXEC_LANE_SLOW);
    assert_int_equal(s.completed, SLOW);
    assert_int_equal(hist_sum(s.running_us_hist), SLOW);
    assert_int_equal(hist_sum(s.queued_us_hist), SLOW);
    assert_int_equal(s.running, 0);
    for (int i = 0; i < 14; i++)        /* 2^14 us = 16.384 ms */
        assert_int_equal(s.running_us_hist[i], 0);
    assert_true(evexec_hist_percentile(s.running_us_hist, 0) >= 32768);

    struct evexec_pool_stats ps = tu_stats(fx->pool);
    assert_int_equal(ps.completed, QUICK + SLOW);
    for (int i = 0; i < QUICK + SLOW; i++)
        evexec_future_unref(fs[i]);
}

/* Without timing: the same counters, empty histograms. */
static void test_lane_counts_untimed(void **state)
{
    struct tu_fx *fx = *state;
    enum { QUICK = 30, SLOW = 4 };
    struct evexec_future *fs[QUICK + SLOW];
    struct tu_job *j = tu_fx_jobs(fx, QUICK + SLOW);
    for (int i = 0; i < QUICK + SLOW; i++)
        assert_non_null(fs[i] = run_lane(fx->ex, &j[i], i < QUICK ? 0 : 1));
    struct evexec_future *all = evexec_gather(fx->ex, fs, QUICK + SLOW);
    assert_int_equal(tu_finish(fx->ex, all), 0);
    evexec_future_unref(all);
    struct evexec_lane_stats d = lane_stats(fx->pool, EVEXEC_LANE_DEFAULT);
    struct evexec_lane_stats s = lane_stats(fx->pool, EVEXEC_LANE_SLOW);
    assert_int_equal(d.completed, QUICK);
    assert_int_equal(s.completed, SLOW);
    assert_int_equal(d.running + d.queued + s.running + s.queued, 0);
    assert_int_equal(hist_sum(d.queued_us_hist) + hist_sum(d.running_us_hist), 0);
    assert_int_equal(hist_sum(s.queued_us_hist) + hist_sum(s.running_us_hist), 0);
    for (int i = 0; i < QUICK + SLOW; i++)
        evexec_future_unref(fs[i]);
}

/* queued, running and cancelled per lane, with one worker held at a gate. */
static void test_lane_queued_running_cancelled(void **state)
{
    struct tu_fx *fx = *state;
    struct tu_job *j = tu_fx_jobs(fx, 5);
    struct evexec_future *f[5];
    j[0].gate = &fx->gate;
    assert_non_null(f[0] = evexec_run(fx->ex, tu_job_fn, &j[0]));
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, 1), 0);
    for (int i = 1; i < 4; i++)
        assert_non_null(f[i] = evexec_run(fx->ex, tu_job_fn, &j[i]));
    assert_non_null(f[4] = run_lane(fx->ex, &j[4], EVEXEC_LANE_SLOW));
    assert_int_equal(evexec_future_cancel(f[1]), 0);
    assert_int_equal(evexec_future_cancel(f[2]), 0);
    assert_int_equal(evexec_future_cancel(f[4]), 0);

    struct evexec_lane_stats d = lane_stats(fx->pool, EVEXEC_LANE_DEFAULT);
    assert_int_equal(d.running, 1);
    assert_int_equal(d.queued, 1);
    assert_int_equal(d.cancelled, 2);
    assert_int_equal(d.completed, 0);
    assert_int_equal(hist_sum(d.queued_us_hist), 1);    /* taken: the gated one */
    struct evexec_lane_stats s = lane_stats(fx->pool, EVEXEC_LANE_SLOW);
    assert_int_equal(s.cancelled, 1);
    assert_int_equal(s.queued, 0);
    assert_int_equal(s.running, 0);

    tu_gate_open(&fx->gate);
    assert_int_equal(tu_finish(fx->ex, f[3]), 0);
    d = lane_stats(fx->pool, EVEXEC_LANE_DEFAULT);
    assert_int_equal(d.completed, 2);
    assert_int_equal(d.running, 0);
    assert_int_equal(d.queued, 0);
    assert_int_equal(hist_sum(d.queued_us_hist), 2);
    assert_int_equal(atomic_load(&j[1].ran) + atomic_load(&j[2].ran), 0);
    for (int i = 0; i < 5; i++)
        evexec_future_unref(f[i]);
}

/* ---- the watchdog -------------------------------------------------------- */

struct wd_rec {
    int calls[2];               /* by lane */
    int other;                  /* calls with a lane that is neither */
    uint64_t ms;                /* the last running_ms */
    struct evexec *ex;          /* the ex it was called with */
    int wrong_ex;
};

static void wd_cb(struct evexec *ex, int lane, uint64_t ms, void *arg)
{
    struct wd_rec *r = arg;
    if (ex != r->ex)
        r->wrong_ex++;
    if (lane == 0 || lane == 1)
        r->calls[lane]++;
    else
        r->other++;
    r->ms = ms;
}

#define WD_MS 250

/* A slow-lane job held past the threshold is reported exactly once, with
 * its lane; quick jobs never; the watchdog of another evexec on the same
 * pool never sees it. */
static void test_watchdog_once(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec *ex2 = evexec_new(fx->base, fx->pool);
    assert_non_null(ex2);
    struct wd_rec r, r2;
    memset(&r, 0, sizeof r);
    memset(&r2, 0, sizeof r2);
    r.ex = fx->ex;
    r2.ex = ex2;
    assert_int_equal(evexec_set_watchdog(fx->ex, WD_MS, wd_cb, &r), 0);
    /* ex2's threshold is the shorter: were it to see ex's job, it would
     * report it first. */
    assert_int_equal(evexec_set_watchdog(ex2, 10, wd_cb, &r2), 0);

    struct tu_job *j = tu_fx_jobs(fx, 21);
    j[0].gate = &fx->gate;
    struct evexec_future *held = run_lane(fx->ex, &j[0], EVEXEC_LANE_SLOW);
    assert_non_null(held);
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, 1), 0);
    struct evexec_future *quick[20];
    for (int i = 0; i < 20; i++)
        assert_non_null(quick[i] = evexec_run(fx->ex, tu_job_fn, &j[i + 1]));
    struct evexec_future *all = evexec_gather(fx->ex, quick, 20);
    assert_int_equal(tu_finish(fx->ex, all), 0);
    evexec_future_unref(all);

    /* Wait for the report (the deadline only bounds a broken library). */
    int64_t end = tu_now_us() + (int64_t)TU_DEADLINE_MS * 1000;
    while (r.calls[1] == 0 && tu_now_us() < end)
        run_for(fx->ex, 50);
    assert_int_equal(r.calls[1], 1);
    assert_true(r.ms >= WD_MS);
    /* Many more ticks while it is still held: no second report. */
    run_for(fx->ex, 4 * WD_MS);
    assert_int_equal(r.calls[1], 1);
    assert_int_equal(r.calls[0], 0);
    assert_int_equal(r.other, 0);
    assert_int_equal(r.wrong_ex, 0);
    assert_int_equal(r2.calls[0] + r2.calls[1] + r2.other, 0);

    tu_gate_open(&fx->gate);
    assert_int_equal(tu_finish(fx->ex, held), 0);
    run_for(fx->ex, WD_MS);
    assert_int_equal(r.calls[0] + r.calls[1], 1);
    assert_int_equal(evexec_set_watchdog(fx->ex, 0, NULL, NULL), 0);
    evexec_future_unref(held);
    for (int i = 0; i < 20; i++)
        evexec_future_unref(quick[i]);
    evexec_free(ex2);           /* frees its watchdog (ASan: no leak) */
}

static void test_watchdog_off_and_bad(void **state)
{
    struct tu_fx *fx = *state;
    struct wd_rec r;
    memset(&r, 0, sizeof r);
    r.ex = fx->ex;
    assert_int_equal(evexec_set_watchdog(NULL, 10, wd_cb, &r), EINVAL);
    assert_int_equal(evexec_set_watchdog(fx->ex, 10, NULL, &r), EINVAL);
    assert_int_equal(evexec_set_watchdog(fx->ex, 0, NULL, NULL), 0);
    /* On, then off: a job held far past the threshold is never reported. */
    assert_int_equal(evexec_set_watchdog(fx->ex, 10, wd_cb, &r), 0);
    assert_int_equal(evexec_set_watchdog(fx->ex, 0, NULL, NULL), 0);
    struct tu_job *j = tu_fx_jobs(fx, 1);
    j[0].gate = &fx->gate;
    struct evexec_future *f = evexec_run(fx->ex, tu_job_fn, &j[0]);
    assert_non_null(f);
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, 1), 0);
    run_for(fx->ex, 100);
    assert_int_equal(r.calls[0] + r.calls[1] + r.other, 0);
    /* On again with a short threshold: now it is reported, lane 0. */
    assert_int_equal(evexec_set_watchdog(fx->ex, 10, wd_cb, &r), 0);
    int64_t end = tu_now_us() + (int64_t)TU_DEADLINE_MS * 1000;
    while (r.calls[0] == 0 && tu_now_us() < end)
        run_for(fx->ex, 20);
    assert_int_equal(r.calls[0], 1);
    assert_int_equal(r.calls[1], 0);
    tu_gate_open(&fx->gate);
    assert_int_equal(tu_finish(fx->ex, f), 0);
    evexec_future_unref(f);
}

/* The callback may free its evexec. */
static void wd_free_cb(struct evexec *ex, int lane, uint64_t ms, void *arg)
{
    (void)lane;
    (void)ms;
    (*(int *)arg)++;
    evexec_free(ex);
}

static void test_watchdog_frees_evexec(void **state)
{
    struct tu_fx *fx = *state;
    struct evexec *ex2 = evexec_new(fx->base, fx->pool);
    assert_non_null(ex2);
    int calls = 0;
    assert_int_equal(evexec_set_watchdog(ex2, 10, wd_free_cb, &calls), 0);
    struct tu_job *j = tu_fx_jobs(fx, 1);
    j[0].gate = &fx->gate;
    struct evexec_future *f = evexec_run(ex2, tu_job_fn, &j[0]);
    assert_non_null(f);
    evexec_future_unref(f);     /* the job runs on; ex2's free ends it */
    assert_int_equal(tu_gate_wait_arrived(&fx->gate, 1), 0);
    int64_t end = tu_now_us() + (int64_t)TU_DEADLINE_MS * 1000;
    while (calls == 0 && tu_now_us() < end)
        run_for(fx->ex, 20);
    assert_int_equal(calls, 1);
    run_for(fx->ex, 50);
    assert_int_equal(calls, 1);
    tu_gate_open(&fx->gate);
}

/* ---- the stats socket ------------------------------------------------------ */

/* Connect to path, then turn the loop until the evexec answered and
 * closed; returns what it sent (static buffer). */
static const char *query(struct evexec *ex, const char *path)
{
    static char buf[4096];
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    size_t n = 0;
    int64_t end = tu_now_us() + (int64_t)TU_DEADLINE_MS * 1000;
    for (;;) {
        ssize_t r = recv(fd, buf + n, sizeof buf - 1 - n, MSG_DONTWAIT);
        if (r == 0)
            break;
        if (r > 0) {
            n += (size_t)r;
            continue;
        }
        assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
        assert_true(tu_now_us() < end);
        run_for(ex, 10);
    }
    close(fd);
    buf[n] = '\0';
    return buf;
}

static int is_socket(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISSOCK(sb.st_mode);
}

static void test_stats_listen(void **state)
{
    struct tu_fx *fx = *state;
    char dir[] = "/tmp/evexec-stats-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], path2[128], missing[160];
    snprintf(path, sizeof path, "%s/s", dir);
    snprintf(path2, sizeof path2, "%s/s2", dir);
    snprintf(missing, sizeof missing, "%s/no/such/dir", dir);
    char longp[200];
    memset(longp, 'x', sizeof longp - 1);
    longp[0] = '/';
    longp[sizeof longp - 1] = '\0';

    assert_int_equal(evexec_stats_listen(NULL, path), EINVAL);
    assert_int_equal(evexec_stats_listen(fx->ex, ""), EINVAL);
    assert_int_equal(evexec_stats_listen(fx->ex, longp), ENAMETOOLONG);
    assert_int_equal(evexec_stats_listen(fx->ex, missing), ENOENT);
    assert_int_equal(evexec_stats_listen(fx->ex, NULL), 0);  /* not listening */

    /* Some work to report: 5 default jobs, 2 slow ones. */
    struct tu_job *j = tu_fx_jobs(fx, 7);
    struct evexec_future *fs[7];
    for (int i = 0; i < 7; i++)
        assert_non_null(fs[i] = run_lane(fx->ex, &j[i], i < 5 ? 0 : 1));
    struct evexec_future *all = evexec_gather(fx->ex, fs, 7);
    assert_int_equal(tu_finish(fx->ex, all), 0);
    evexec_future_unref(all);
    for (int i = 0; i < 7; i++)
        evexec_future_unref(fs[i]);

    assert_int_equal(evexec_stats_listen(fx->ex, path), 0);
    assert_true(is_socket(path));
    struct evexec *ex2 = evexec_new(fx->base, fx->pool);
    assert_non_null(ex2);
    assert_int_equal(evexec_stats_listen(ex2, path), EADDRINUSE);
    assert_true(is_socket(path));       /* left alone */

    const char *text = query(fx->ex, path);
    assert_non_null(strstr(text, "pool threads="));
    assert_non_null(strstr(text, "lane=default queued=0 running=0 completed=5 cancelled=0 "));
    assert_non_null(strstr(text, "lane=slow queued=0 running=0 completed=2 cancelled=0 "));
    assert_non_null(strstr(text, "running_max_us="));
    /* Twice: every connection is answered. */
    text = query(fx->ex, path);
    assert_non_null(strstr(text, "completed=5"));

    /* Every lane the pool has, by name, each line whole: lanes of the
     * longest names up to EVEXEC_MAX_LANES, a job in the last. */
    char names[EVEXEC_MAX_LANES][16], want[64];
    int lane = -1;
    for (int i = 2; i < EVEXEC_MAX_LANES; i++) {
        struct evexec_lane_config lc = EVEXEC_LANE_CONFIG_INIT;
        snprintf(names[i], sizeof names[i], "lane-with-name%c", (char)('0' + i));
        lc.name = names[i];
        assert_int_equal(evexec_pool_add_lane(fx->pool, &lc, &lane), 0);
    }
    struct tu_job *last = tu_fx_job(fx, 0, 0);
    struct evexec_future *lf = run_lane(fx->ex, last, lane);
    assert_non_null(lf);
    assert_int_equal(tu_finish(fx->ex, lf), 0);
    evexec_future_unref(lf);
    text = query(fx->ex, path);
    for (int i = 2; i < EVEXEC_MAX_LANES; i++) {
        snprintf(want, sizeof want, "lane=%s queued=0 running=0 completed=%d cancelled=0 ",
                 names[i], i == lane);
        assert_non_null(strstr(text, want));
    }
    const char *tail = strstr(text, names[EVEXEC_MAX_LANES - 1]);
    assert_non_null(strstr(tail, "running_max_us="));
    assert_non_null(strchr(tail, '\n'));

    /* Another path: the old socket goes. */
    assert_int_equal(evexec_stats_listen(fx->ex, path2), 0);
    assert_false(is_socket(path));
    assert_true(is_socket(path2));
    assert_int_equal(evexec_stats_listen(fx->ex, NULL), 0);
    assert_false(is_socket(path2));

    /* evexec_free() removes it too. */
    assert_int_equal(evexec_stats_listen(ex2, path), 0);
    assert_true(is_socket(path));
    evexec_free(ex2);
    assert_false(is_socket(path));
    assert_int_equal(rmdir(dir), 0);
}

#define TESTS(X) \
    X(test_hist_bucket) \
    X(test_hist_percentile) \
    X(test_lane_stats_bad) \
    X(test_lane_counts) \
    X(test_watchdog_once) \
    X(test_watchdog_off_and_bad) \
    X(test_watchdog_frees_evexec) \
    X(test_stats_listen)

TESTS(TU_WRAP)
TU_WRAP(test_lane_queued_running_cancelled)
TU_WRAP(test_lane_counts_untimed)

#define ENTRY(name) TU_ENTRY(name, setup, teardown),

int main(void)
{
    const struct CMUnitTest tests[] = {
        TESTS(ENTRY)
        TU_ENTRY(test_lane_queued_running_cancelled, setup1, teardown),
        TU_ENTRY(test_lane_counts_untimed, setup_untimed, teardown),
        /* The watchdog without timing: from the first tick that saw a job. */
        { "test_watchdog_once_untimed", test_watchdog_once_wrapped,
          setup_untimed, teardown, NULL },
        { "test_watchdog_off_and_bad_untimed", test_watchdog_off_and_bad_wrapped,
          setup_untimed, teardown, NULL },
    };
    return cmocka_run_group_tests_name("stats", tests, NULL, NULL);
}
