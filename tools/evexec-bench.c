/*
 * evexec-bench -- evexec against libuv's thread pool and a naive libevent
 * bridge, on the same workloads, in one run.
 *
 * How it measures.  The parent process never touches a pool: for every
 * cell of every table it runs this same program again (fork + exec, with
 * the internal --one flag) once per repetition and backend, interleaving
 * the backends (their order rotates from one repetition to the next) so
 * that a change in machine load hits all of them alike.  Each child opens
 * a fresh pool, does a short warm-up where the workload allows it, runs
 * the workload once, checks that every job it submitted was run and
 * delivered without error, and prints "metric NAME VALUE" lines.  The
 * parent keeps the median and the range of each metric and prints one
 * markdown table per workload, with the ratios evexec/libuv and
 * evexec/naive (and evexec-spin/libuv with --spin), or CSV with --csv.
 *
 * A child that loses a job either returns with fewer deliveries than
 * submissions or hangs until its alarm fires; both make the parent exit
 * non-zero.  --smoke runs every workload once at tiny sizes, for
 * `make check`: it checks delivery, never timings.
 *
 * Workloads (no-op jobs unless said):
 *   w1     latency: one job in flight, each done callback submits the next
 *   w2     throughput: 1024 in flight, each done callback submits one more
 *   w3     burst: all jobs submitted at once from the loop; peak RSS
 *   w4     blocking: 256 jobs of usleep(10 ms) on 64 workers, cold pool
 *   w5     memory: jobs queued behind one gate job per worker: RSS growth
 *          per queued job, then the time to drain them
 *   w6     scaling: w2 at 1, 2, 4, 8, 16 and 64 workers
 *   w7     isolation: p50 and p99 latency of 1 us jobs, one in flight,
 *          (a) while 10 ms jobs keep the slow lane saturated, (b) while
 *          a second loop on the same pool keeps 200 jobs of 100 us in
 *          flight (b: backends whose pool serves two loops)
 *   w8     a socket's wait behind a flood of completions (all jobs at
 *          once), max and p99, without and with a drain budget of 64
 *          callbacks per pass (evexec backends only)
 *   idle   CPU time and context switches in one idle second after work
 *          (one job sleeps 1 s; the loop waits for it)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1   /* POSIX and Linux calls under -std=c11 */
#endif
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "bench.h"

/* ---- job bodies -------------------------------------------------------- */

int bench_count_runs;
atomic_ullong bench_ran;

static unsigned sleep_us = 10000;            /* BENCH_SLEEP */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_is_open;
static atomic_uint gate_arrived;

void bench_job_sleep(void)
{
    usleep(sleep_us);
    bench_job_noop();
}

void bench_job_gate(void)
{
    atomic_fetch_add(&gate_arrived, 1);
    pthread_mutex_lock(&gate_lock);
    while (!gate_is_open)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    bench_job_noop();
}

static void spin_ns(long ns)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do
        clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < ns);
    bench_job_noop();
}

void bench_job_spin1(void)
{
    spin_ns(1000);
}

void bench_job_spin100(void)
{
    spin_ns(100000);
}

void bench_gate_open(void)
{
    pthread_mutex_lock(&gate_lock);
    gate_is_open = 1;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

/* ---- options ------------------------------------------------------------ */

#define MAX_BACKENDS 5
#define MAX_REPS 101

/* The default set, in column order; evexec-spin joins with --spin. */
static const struct bench_backend *const all_backends[] = {
    &bench_evexec,
#ifdef HAVE_LIBUV
    &bench_libuv,
#endif
    &bench_naive,
    &bench_evexec_spin,
    &bench_evexec_batch,
};
#define N_ALL_BACKENDS (sizeof all_backends / sizeof all_backends[0])
#define N_DEFAULT_BACKENDS (N_ALL_BACKENDS - 2)

struct opts {
    unsigned threads;
    uint64_t jobs;              /* 0: each workload's default */
    unsigned reps;
    const struct bench_backend *be[MAX_BACKENDS];
    unsigned nbe;
    unsigned wl_mask;           /* bit i: wspecs[i] */
    int csv, smoke, one, count, warmup;
    int threads_set;            /* --threads was given */
    unsigned timeout;           /* child alarm, seconds; 0: none */
    unsigned spin_us;           /* evexec-spin's spin_us; 0: not run */
};

/* ---- the child: one workload, one backend, one process ------------------ */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct {
    uint64_t n;          /* jobs (or round trips) this phase */
    uint64_t window;     /* w2: jobs kept in flight */
    enum bench_job kind;
    uint64_t t0, t1;     /* start, last delivery */
} W;

static void metric(const char *name, double v)
{
    printf("metric %s %.6g\n", name, v);
}

static void reset_counts(struct bench *b, void (*done)(struct bench *))
{
    b->submitted = b->delivered = b->failed = 0;
    b->submit_error = 0;
    b->on_done = done;
}

/* Check a run that returned rc: expect jobs submitted and delivered
 * without error, and (when counted) ran_expect job bodies run.  0, or 1
 * with a message. */
static int check_run(struct bench *b, int rc, uint64_t expect,
                     uint64_t ran_expect)
{
    uint64_t ran = atomic_load(&bench_ran);
    if (rc != 0 || b->submit_error != 0 || b->submitted != expect ||
        b->delivered != expect || b->failed != 0 ||
        (bench_count_runs && ran != ran_expect)) {
        fprintf(stderr, "evexec-bench: %s: run %s, submit error %s; "
                "expected %llu, submitted %llu, delivered %llu, failed %llu, "
                "ran %s%llu\n", b->be->name, rc ? strerror(rc) : "ok",
                b->submit_error ? strerror(b->submit_error) : "none",
                (unsigned long long)expect, (unsigned long long)b->submitted,
                (unsigned long long)b->delivered, (unsigned long long)b->failed,
                bench_count_runs ? "" : "(not counted) ",
                (unsigned long long)ran);
        return 1;
    }
    return 0;
}

/* Reset the counts, run the loop once, check that every job submitted ran
 * and came back without error.  0, or 1 with a message. */
static int phase(struct bench *b, void (*start)(struct bench *),
                 void (*done)(struct bench *), uint64_t expect)
{
    reset_counts(b, done);
    atomic_store(&bench_ran, 0);
    W.t0 = W.t1 = 0;
    if (check_run(b, b->be->run(b, start), expect, expect) != 0)
        return 1;
    if (W.t1 == 0)
        W.t1 = now_ns();
    return 0;
}

/* Keep W.window jobs in flight until W.n were submitted (w1: window 1). */
static void window_start(struct bench *b)
{
    W.t0 = now_ns();
    for (uint64_t i = 0; i < W.window && i < W.n; i++)
        if (bench_submit(b, W.kind) != 0)
            break;
}

static void window_done(struct bench *b)
{
    if (b->submitted < W.n && b->submit_error == 0)
        bench_submit(b, W.kind);
    if (b->delivered == W.n)
        W.t1 = now_ns();
}

static int run_window(struct bench *b, uint64_t n, uint64_t window)
{
    W.n = n;
    W.window = window;
    W.kind = BENCH_NOOP;
    return phase(b, window_start, window_done, n);
}

/* Submit everything at once (w3, w4). */
static void burst_start(struct bench *b)
{
    W.t0 = now_ns();
    if (b->be->burst_begin)
        b->be->burst_begin(b);
    for (uint64_t i = 0; i < W.n; i++)
        if (bench_submit(b, W.kind) != 0)
            break;
    if (b->be->burst_end)
        b->be->burst_end(b);
}

static void count_done(struct bench *b)
{
    if (b->delivered == W.n)
        W.t1 = now_ns();
}

static int run_burst(struct bench *b, uint64_t n, enum bench_job kind)
{
    W.n = n;
    W.kind = kind;
    return phase(b, burst_start, count_done, n);
}

/* w5: gates first, then the queued jobs, RSS read around the latter. */
static long page_size;
static double w5_bytes_per_job;

static long statm_resident(void)
{
    long size = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &res) != 2)
        res = -1;
    fclose(f);
    return res;
}

static void gate_start(struct bench *b)
{
    for (unsigned i = 0; i < b->threads; i++)
        if (bench_submit(b, BENCH_GATE) != 0)
            return;
    /* Let every worker reach its gate, so that thread start-up (stacks,
     * malloc arenas) is not counted as queue memory. */
    uint64_t deadline = now_ns() + 5000000000u;
    while (atomic_load(&gate_arrived) < b->threads && now_ns() < deadline) {
        struct timespec ms = { 0, 1000000 };
        nanosleep(&ms, NULL);
    }
    if (atomic_load(&gate_arrived) < b->threads)
        fprintf(stderr, "evexec-bench: %s: only %u of %u workers reached the "
                "gate\n", b->be->name, atomic_load(&gate_arrived), b->threads);
    long before = statm_resident();
    for (uint64_t i = 0; i < W.n; i++)
        if (bench_submit(b, BENCH_NOOP) != 0)
            break;
    long after = statm_resident();
    w5_bytes_per_job = (double)(after - before) * (double)page_size / (double)W.n;
    W.t0 = now_ns();
    bench_gate_open();
    W.n += b->threads;       /* count_done waits for the gates too */
}

static double tdiff_s(void)
{
    return (double)(W.t1 - W.t0) / 1e9;
}

/* w8: a socket's wait behind a flood of completions.  Another thread
 * writes its clock to a socketpair every 100 us; the loop's read event
 * records how long each stamp waited.  All jobs are submitted at once;
 * stamps written while that submission ran are not counted (that wait
 * is the submission's, not the drain's). */
#define W8_BUDGET 64            /* callbacks per pass with the budget */
#define W8_MAX_SAMPLES 65536

static struct {
    int sv[2];
    struct event *ev;
    atomic_int stop;
    uint64_t armed;             /* stamps before this are not counted */
    uint64_t wait_ns[W8_MAX_SAMPLES];
    unsigned n;
} w8;

static void *w8_writer(void *arg)
{
    (void)arg;
    while (!atomic_load(&w8.stop)) {
        uint64_t t = now_ns();
        if (write(w8.sv[1], &t, sizeof t) < 0 && errno != EAGAIN)
            break;
        struct timespec gap = { 0, 100000 };
        nanosleep(&gap, NULL);
    }
    return NULL;
}

static void w8_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    uint64_t t[64];
    ssize_t got;
    while ((got = read(fd, t, sizeof t)) > 0) {
        uint64_t now = now_ns();
        for (ssize_t i = 0; i < got / (ssize_t)sizeof t[0]; i++)
            if (t[i] >= w8.armed && w8.n < W8_MAX_SAMPLES)
                w8.wait_ns[w8.n++] = now - t[i];
    }
}

static void w8_start(struct bench *b)
{
    w8.armed = UINT64_MAX;
    burst_start(b);
    w8.armed = now_ns();
}

static void w8_done(struct bench *b)
{
    if (b->delivered == W.n) {
        W.t1 = now_ns();
        atomic_store(&w8.stop, 1);
        /* Stamps still unread waited behind the whole flood: count them. */
        w8_read(w8.sv[0], EV_READ, NULL);
        event_del(w8.ev);       /* the loop ends with the flood */
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* One flood of n jobs; prints the max and p99 wait in microseconds under
 * the metric names given.  0, or 1 with a message. */
static int run_w8(struct bench *b, uint64_t n, unsigned budget,
                  const char *max_key, const char *p99_key)
{
    pthread_t writer;
    memset(&w8, 0, sizeof w8);
    if (b->be->drain_budget(b, budget, 0) != 0 ||
        socketpair(AF_UNIX, SOCK_STREAM, 0, w8.sv) != 0) {
        fprintf(stderr, "evexec-bench: w8: set-up failed\n");
        return 1;
    }
    fcntl(w8.sv[0], F_SETFL, O_NONBLOCK);
    fcntl(w8.sv[1], F_SETFL, O_NONBLOCK);
    w8.ev = event_new(b->be->base(b), w8.sv[0], EV_READ | EV_PERSIST, w8_read, NULL);
    int bad = !w8.ev || event_add(w8.ev, NULL) != 0 ||
              pthread_create(&writer, NULL, w8_writer, NULL) != 0;
    if (!bad) {
        W.n = n;
        W.kind = BENCH_NOOP;
        bad = phase(b, w8_start, w8_done, n);
        atomic_store(&w8.stop, 1);
        pthread_join(writer, NULL);
    }
    if (w8.ev)
        event_free(w8.ev);
    close(w8.sv[0]);
    close(w8.sv[1]);
    if (bad)
        return 1;
    qsort(w8.wait_ns, w8.n, sizeof w8.wait_ns[0], cmp_u64);
    metric(budget ? "samples_budget" : "samples", w8.n);
    metric(max_key, w8.n ? (double)w8.wait_ns[w8.n - 1] / 1e3 : 0);
    metric(p99_key, w8.n ? (double)w8.wait_ns[(w8.n - 1) * 99 / 100] / 1e3 : 0);
    return 0;
}

/* w7: isolation.  The latency, from the submission on the loop to the
 * done callback on the loop, of 1 us busy jobs (BENCH_SPIN1) sent one at a
 * time, each as the one before it is back:
 *   a) while 10 ms sleeps keep the slow lane saturated: W7_SLOW_PER_WORKER
 *      per worker in flight from the start, each sent again as it comes
 *      back.  evexec puts them on EVEXEC_LANE_SLOW.  libuv's public API
 *      puts every uv_queue_work job in one class (its slow-I/O cap covers
 *      only its own getaddrinfo and getnameinfo), and naive has one queue,
 *      so there they queue with the short jobs (no submit_slow), as a user
 *      of those pools would have them;
 *   b) while a second loop on another thread, on the same pool, keeps
 *      W7_FLOOD jobs busy for 100 us each in flight (each sent again as
 *      it comes back): a backlog of about 10 ms of work on 2 cores.  Its
 *      jobs are not no-ops so that its own loop keeps up with the workers
 *      and the backlog stays queued (with no-ops the workers drain it
 *      faster than that loop refills it, and the short jobs would find
 *      idle workers whatever the pool's order).  Only backends whose pool serves two loops (open_peer): evexec, two
 *      evexecs on one evexec_pool; libuv, two uv loops on its process-wide
 *      pool.  naive's pool serves its one loop: "–".
 * Every job of both loops is counted: what each submitted came back
 * without error, the short jobs numbered exactly n. */
#define W7_SLOW_PER_WORKER 2
#define W7_FLOOD 200

static struct {
    uint64_t n;                 /* short jobs to measure */
    uint64_t *lat_ns;           /* their latencies, n of them */
    uint64_t short_sub, short_done;
    uint64_t t_sub;             /* when the short job in flight was sent */
    uint64_t slow_sub, slow_done;
} w7;

/* The measuring loop's second part and the flooding loop's thread. */
static struct {
    struct bench a;             /* the flooding loop */
    struct bench *b;            /* the measuring loop: its pool is shared */
    atomic_int ready;           /* 1: the flood is queued; -1: it failed */
    atomic_int stop;            /* the measuring loop is done */
    int open_rc, run_rc;
} w7f;

static void w7_send_short(struct bench *b)
{
    w7.t_sub = now_ns();
    if (bench_submit(b, BENCH_SPIN1) == 0)
        w7.short_sub++;
}

/* A delivery: a short job's latency is kept and the next one sent.
 * Returns 0 for any other job. */
static int w7_short_done(struct bench *b)
{
    if (b->done_kind != BENCH_SPIN1)
        return 0;
    if (w7.short_done < w7.n)
        w7.lat_ns[w7.short_done] = now_ns() - w7.t_sub;
    w7.short_done++;
    if (w7.short_sub < w7.n && b->submit_error == 0)
        w7_send_short(b);
    return 1;
}

static void w7a_start(struct bench *b)
{
    for (unsigned i = 0; i < W7_SLOW_PER_WORKER * b->threads; i++) {
        if (bench_submit_slow(b, BENCH_SLEEP) != 0)
            return;
        w7.slow_sub++;
    }
    w7_send_short(b);
}

static void w7a_done(struct bench *b)
{
    if (w7_short_done(b))
        return;
    w7.slow_done++;
    if (w7.short_done < w7.n && b->submit_error == 0 &&
        bench_submit_slow(b, BENCH_SLEEP) == 0)
        w7.slow_sub++;
}

static void w7b_start(struct bench *b)
{
    /* Wait (5 s at most) for the other loop to queue its flood. */
    for (int i = 0; i < 5000 && atomic_load(&w7f.ready) == 0; i++) {
        struct timespec ms = { 0, 1000000 };
        nanosleep(&ms, NULL);
    }
    if (atomic_load(&w7f.ready) != 1) {
        fprintf(stderr, "evexec-bench: %s: w7: the flood never started\n",
                b->be->name);
        return;                 /* nothing sent: the check fails */
    }
    w7_send_short(b);
}

static void w7b_done(struct bench *b)
{
    w7_short_done(b);
    if (w7.short_done == w7.n)
        atomic_store(&w7f.stop, 1);
}

static void flood_start(struct bench *a)
{
    for (unsigned i = 0; i < W7_FLOOD; i++)
        if (bench_submit(a, BENCH_SPIN100) != 0)
            break;
    atomic_store(&w7f.ready, 1);
}

static void flood_done(struct bench *a)
{
    if (!atomic_load_explicit(&w7f.stop, memory_order_relaxed) &&
        a->submit_error == 0)
        bench_submit(a, BENCH_SPIN100);
}

/* The flooding loop's thread: its own loop on b's pool, run until the
 * measuring loop is done and the flood has drained. */
static void *flood_main(void *arg)
{
    struct bench *a = &w7f.a;
    (void)arg;
    w7f.open_rc = w7f.b->be->open_peer(a, w7f.b);
    if (w7f.open_rc == 0) {
        reset_counts(a, flood_done);
        w7f.run_rc = a->be->run(a, flood_start);
    }
    atomic_store(&w7f.ready, atomic_load(&w7f.ready) == 1 ? 1 : -1);
    return NULL;
}

/* Print the p50 and p99 of the n latencies, in microseconds. */
static void w7_metrics(const char *p50_key, const char *p99_key)
{
    qsort(w7.lat_ns, w7.n, sizeof w7.lat_ns[0], cmp_u64);
    metric(p50_key, (double)w7.lat_ns[(w7.n - 1) / 2] / 1e3);
    metric(p99_key, (double)w7.lat_ns[(w7.n - 1) * 99 / 100] / 1e3);
}

/* One part of w7 (flood: b), n short jobs.  0, or 1 with a message. */
static int run_w7(struct bench *b, uint64_t n, int flood)
{
    pthread_t t;
    w7.n = n;
    w7.short_sub = w7.short_done = w7.slow_sub = w7.slow_done = 0;
    reset_counts(b, flood ? w7b_done : w7a_done);
    atomic_store(&bench_ran, 0);
    if (!flood) {
        int rc = b->be->run(b, w7a_start);
        if (check_run(b, rc, n + w7.slow_sub, n + w7.slow_sub) != 0)
            return 1;
    } else {
        memset(&w7f.a, 0, sizeof w7f.a);
        w7f.a.be = b->be;
        w7f.a.threads = b->threads;
        w7f.a.spin_us = b->spin_us;
        w7f.b = b;
        atomic_store(&w7f.ready, 0);
        atomic_store(&w7f.stop, 0);
        w7f.open_rc = w7f.run_rc = 0;
        if (pthread_create(&t, NULL, flood_main, NULL) != 0) {
            fprintf(stderr, "evexec-bench: w7: no thread\n");
            return 1;
        }
        int rc = b->be->run(b, w7b_start);
        atomic_store(&w7f.stop, 1);     /* also when b's run failed */
        pthread_join(t, NULL);
        if (w7f.open_rc != 0) {
            fprintf(stderr, "evexec-bench: %s: w7: second loop: %s\n",
                    b->be->name, strerror(w7f.open_rc));
            return 1;
        }
        uint64_t all = w7f.a.submitted + n;
        int bad = check_run(&w7f.a, w7f.run_rc, w7f.a.submitted, all);
        w7f.a.be->close(&w7f.a);
        if (check_run(b, rc, n, all) != 0 || bad)
            return 1;
    }
    if (w7.short_done != n || w7.slow_done != w7.slow_sub) {
        fprintf(stderr, "evexec-bench: %s: w7: %llu of %llu short jobs, "
                "%llu of %llu slow jobs back\n", b->be->name,
                (unsigned long long)w7.short_done, (unsigned long long)n,
                (unsigned long long)w7.slow_done,
                (unsigned long long)w7.slow_sub);
        return 1;
    }
    return 0;
}

enum wl_id { WL_W1, WL_W2, WL_W3, WL_W4, WL_W5, WL_W6, WL_W7, WL_W8, WL_IDLE, WL_COUNT };

static uint64_t warm_size(uint64_t n, uint64_t cap)
{
    uint64_t w = n / 10;
    return w < 1 ? 1 : w > cap ? cap : w;
}

static int child_main(const struct opts *o, enum wl_id wl, uint64_t n)
{
    struct bench b = { .be = o->be[0], .threads = o->threads,
                       .spin_us = o->spin_us };
    int bad = 0;

    if (o->timeout)
        alarm(o->timeout);
    bench_count_runs = o->count;
    page_size = sysconf(_SC_PAGESIZE);
    int rc = b.be->open(&b);
    if (rc != 0) {
        fprintf(stderr, "evexec-bench: %s: open: %s\n", b.be->name, strerror(rc));
        return 1;
    }
    switch (wl) {
    case WL_W1:
        if (o->warmup)
            bad |= run_window(&b, warm_size(n, 1000), 1);
        bad = bad || run_window(&b, n, 1);
        if (!bad)
            metric("ns_per_rt", (double)(W.t1 - W.t0) / (double)n);
        break;
    case WL_W2:
    case WL_W6:
        if (o->warmup)
            bad |= run_window(&b, warm_size(n, 50000), 1024);
        bad = bad || run_window(&b, n, 1024);
        if (!bad)
            metric("jobs_per_s", (double)n / tdiff_s());
        break;
    case WL_W3:
        if (o->warmup)
            bad |= run_burst(&b, warm_size(n, 1000), BENCH_NOOP);
        bad = bad || run_burst(&b, n, BENCH_NOOP);
        if (!bad) {
            struct rusage ru;
            getrusage(RUSAGE_SELF, &ru);
            metric("jobs_per_s", (double)n / tdiff_s());
            metric("peak_rss_mib", (double)ru.ru_maxrss / 1024.0);
        }
        break;
    case WL_W4: {
        /* Cold pool: no warm-up. */
        bad = run_burst(&b, n, BENCH_SLEEP);
        double ideal = (double)((n + b.threads - 1) / b.threads) * sleep_us / 1e6;
        if (!bad) {
            metric("makespan_ms", tdiff_s() * 1e3);
            metric("efficiency", ideal / tdiff_s());
        }
        break;
    }
    case WL_W5:
        /* No warm-up: recycled blocks would hide the memory. */
        W.n = n;
        bad = phase(&b, gate_start, count_done, n + b.threads);
        if (!bad) {
            metric("bytes_per_job", w5_bytes_per_job);
            metric("drain_ms", tdiff_s() * 1e3);
        }
        break;
    case WL_W7:
        w7.lat_ns = malloc(n * sizeof *w7.lat_ns);
        if (w7.lat_ns == NULL) {
            bad = 1;
            break;
        }
        /* Start every worker first. */
        if (o->warmup)
            bad |= run_window(&b, 2000, 64);
        bad = bad || run_w7(&b, n, 0);
        if (!bad)
            w7_metrics("lat_p50_us", "lat_p99_us");
        /* The second part where the pool serves two loops. */
        if (!bad && b.be->open_peer) {
            bad = run_w7(&b, n, 1);
            if (!bad)
                w7_metrics("lat_p50_us_flood", "lat_p99_us_flood");
        }
        free(w7.lat_ns);
        break;
    case WL_W8:
        if (!b.be->drain_budget || !b.be->base) {
            fprintf(stderr, "evexec-bench: w8: not for %s\n", b.be->name);
            bad = 1;
            break;
        }
        bad = run_w8(&b, n, 0, "wait_max_us", "wait_p99_us");
        bad = bad || run_w8(&b, n, W8_BUDGET, "wait_max_us_budget",
                            "wait_p99_us_budget");
        break;
    case WL_IDLE: {
        bad = run_window(&b, 10000, 1024);      /* start every worker */
        /* Let the workers park first: that is not idle cost. */
        struct timespec settle = { 0, 100000000 };
        nanosleep(&settle, NULL);
        struct rusage r0, r1;
        getrusage(RUSAGE_SELF, &r0);
        sleep_us = (unsigned)n;
        bad = bad || run_burst(&b, 1, BENCH_SLEEP);
        getrusage(RUSAGE_SELF, &r1);
        double cpu_us = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) * 1e6 +
                        (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) +
                        (double)(r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) * 1e6 +
                        (double)(r1.ru_stime.tv_usec - r0.ru_stime.tv_usec);
        double csw = (double)(r1.ru_nvcsw - r0.ru_nvcsw + r1.ru_nivcsw - r0.ru_nivcsw);
        if (!bad) {
            metric("idle_cpu_us_per_s", cpu_us / tdiff_s());
            metric("idle_csw_per_s", csw / tdiff_s());
        }
        break;
    }
    default:
        bad = 1;
    }
    b.be->close(&b);
    fflush(stdout);
    return bad ? 1 : 0;
}

/* ---- the parent: specs, runs, tables ----------------------------------- */

struct mspec {
    const char *key;      /* as the child prints it */
    const char *label;
    int higher_better;
};

struct wspec {
    const char *id;
    const char *title;
    uint64_t jobs, smoke_jobs;   /* default and --smoke sizes */
    int fixed_threads;           /* workers regardless of --threads; 0: no */
    int warm;                    /* child does a warm-up */
    struct mspec m[4];
    unsigned nm;
};

static const struct wspec wspecs[WL_COUNT] = {
    [WL_W1] = { "w1", "W1 latency: one job in flight", 20000, 200, 0, 1,
                { { "ns_per_rt", "ns per round trip", 0 } }, 1 },
    [WL_W2] = { "w2", "W2 throughput: 1024 in flight", 1000000, 20000, 0, 1,
                { { "jobs_per_s", "jobs/s", 1 } }, 1 },
    [WL_W3] = { "w3", "W3 burst: all submitted at once from the loop",
                100000, 5000, 0, 1,
                { { "jobs_per_s", "jobs/s", 1 },
                  { "peak_rss_mib", "peak RSS, MiB", 0 } }, 2 },
    [WL_W4] = { "w4", "W4 blocking: usleep(10 ms) jobs, cold pool",
                256, 256, 64, 0,
                { { "makespan_ms", "makespan, ms", 0 },
                  { "efficiency", "efficiency (ideal/measured)", 1 } }, 2 },
    [WL_W5] = { "w5", "W5 memory: jobs queued behind one gate per worker",
                200000, 5000, 0, 0,
                { { "bytes_per_job", "RSS growth per queued job, bytes", 0 },
                  { "drain_ms", "drain time, ms", 0 } }, 2 },
    [WL_W6] = { "w6", "W6 scaling: W2 at several worker counts",
                1000000, 5000, 0, 1,
                { { "jobs_per_s", "jobs/s", 1 } }, 1 },
    [WL_W7] = { "w7", "W7 isolation: 1 us jobs, one in flight, beside "
                "10 ms jobs on the slow lane or a second loop's flood",
                100, 10, 0, 1,
                { { "lat_p50_us", "p50 latency, us, slow lane saturated", 0 },
                  { "lat_p99_us", "p99 latency, us, slow lane saturated", 0 },
                  { "lat_p50_us_flood", "p50 latency, us, other loop flooding", 0 },
                  { "lat_p99_us_flood", "p99 latency, us, other loop flooding", 0 } },
                4 },
    [WL_W8] = { "w8", "W8 a socket's wait behind a flood of completions",
                1000000, 5000, 0, 0,
                { { "wait_max_us", "max wait, us, no budget", 0 },
                  { "wait_p99_us", "p99 wait, us, no budget", 0 },
                  { "wait_max_us_budget", "max wait, us, budget 64", 0 },
                  { "wait_p99_us_budget", "p99 wait, us, budget 64", 0 } }, 4 },
    [WL_IDLE] = { "idle", "Idle: one second with warm workers and no work",
                  1000000, 50000, 0, 0,
                  { { "idle_cpu_us_per_s", "CPU us per idle second", 0 },
                    { "idle_csw_per_s", "context switches per idle second", 0 } },
                  2 },
};

static const unsigned w6_threads[] = { 1, 2, 4, 8, 16, 64 };
#define N_W6 (sizeof w6_threads / sizeof w6_threads[0])

/* One table row per (worker count, metric); values per backend. */
struct cell {
    double v[MAX_BACKENDS][MAX_REPS];
    unsigned n[MAX_BACKENDS];
};

static char self_exe[PATH_MAX];
static int any_failure;

/* Metric m of workload wl is not measured for backend be (printed "–"):
 * w8 without a drain budget, w7's two-loop part without a second loop. */
static int not_for(const struct bench_backend *be, enum wl_id wl, unsigned m)
{
    return (wl == WL_W8 && !be->drain_budget) ||
           (wl == WL_W7 && m >= 2 && !be->open_peer);
}

/* Run one child; fill vals[] (by metric index).  0, or 1 on failure. */
static int run_child(const struct opts *o, const struct bench_backend *be,
                     enum wl_id wl, unsigned threads, uint64_t jobs,
                     int warm, double vals[4])
{
    const struct wspec *ws = &wspecs[wl];
    char sthreads[16], sjobs[32], stimeout[16];
    snprintf(sthreads, sizeof sthreads, "%u", threads);
    snprintf(sjobs, sizeof sjobs, "%llu", (unsigned long long)jobs);
    snprintf(stimeout, sizeof stimeout, "%u", o->timeout);
    char sspin[16];
    snprintf(sspin, sizeof sspin, "%u", o->spin_us);
    if (o->spin_us == BENCH_SPIN_OFF)
        snprintf(sspin, sizeof sspin, "off");
    const char *argv[20];
    int a = 0;
    argv[a++] = self_exe;
    argv[a++] = "--one";
    argv[a++] = "--backend";  argv[a++] = be->name;
    argv[a++] = "--workload"; argv[a++] = ws->id;
    argv[a++] = "--threads";  argv[a++] = sthreads;
    argv[a++] = "--jobs";     argv[a++] = sjobs;
    argv[a++] = "--timeout";  argv[a++] = stimeout;
    if (o->count)
        argv[a++] = "--count";
    if (!warm)
        argv[a++] = "--no-warmup";
    if (o->spin_us) {
        argv[a++] = "--spin";
        argv[a++] = sspin;
    }
    argv[a] = NULL;

    int fds[2];
    if (pipe(fds) != 0) {
        perror("evexec-bench: pipe");
        return 1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("evexec-bench: fork");
        close(fds[0]);
        close(fds[1]);
        return 1;
    }
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execv(self_exe, (char *const *)argv);
        perror("evexec-bench: exec");
        _exit(127);
    }
    close(fds[1]);
    FILE *in = fdopen(fds[0], "r");
    char line[256], key[64];
    double v;
    unsigned got = 0, need = 0;
    for (unsigned i = 0; i < ws->nm; i++)
        if (!not_for(be, wl, i))
            need |= 1u << i;
    while (in && fgets(line, sizeof line, in)) {
        if (sscanf(line, "metric %63s %lf", key, &v) != 2)
            continue;
        for (unsigned i = 0; i < ws->nm; i++)
            if (strcmp(key, ws->m[i].key) == 0) {
                vals[i] = v;
                got |= 1u << i;
            }
    }
    if (in)
        fclose(in);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
        got == need)
        return 0;
    if (WIFSIGNALED(status))
        fprintf(stderr, "evexec-bench: %s %s (%u workers): killed by signal %d%s\n",
                be->name, ws->id, threads, WTERMSIG(status),
                WTERMSIG(status) == SIGALRM ? " (timeout: a lost job?)" : "");
    else
        fprintf(stderr, "evexec-bench: %s %s (%u workers): failed (exit %d)\n",
                be->name, ws->id, threads,
                WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, unsigned n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Three significant digits, with k/M for large values. */
static void fmt_num(char *buf, size_t len, double x)
{
    const char *suffix = "";
    if (fabs(x) >= 1e6) {
        x /= 1e6;
        suffix = " M";
    } else if (fabs(x) >= 1e4) {
        x /= 1e3;
        suffix = " k";
    }
    int digits = fabs(x) >= 100 ? 0 : fabs(x) >= 10 ? 1 : fabs(x) >= 1 ? 2 : 3;
    snprintf(buf, len, "%.*f%s", digits, x, suffix);
}

/* The ratio columns, where both backends ran. */
static const char *const ratios[][2] = {
    { "evexec", "libuv" },
    { "evexec", "naive" },
    { "evexec-spin", "libuv" },
    { "evexec-batch", "libuv" },
    { "evexec-batch", "naive" },
};
#define N_RATIOS (sizeof ratios / sizeof ratios[0])

static int backend_index(const struct opts *o, const char *name)
{
    for (unsigned i = 0; i < o->nbe; i++)
        if (strcmp(o->be[i]->name, name) == 0)
            return (int)i;
    return -1;
}

static void print_row(const struct opts *o, const struct wspec *ws,
                      unsigned threads, const struct mspec *m, struct cell *c,
                      const char *rowlabel)
{
    double med[MAX_BACKENDS];
    char num[32], lo[32], hi[32];

    for (unsigned k = 0; k < o->nbe; k++) {
        med[k] = c->n[k] ? median(c->v[k], c->n[k]) : NAN;
        if (o->csv && c->n[k])
            printf("%s,%s,%u,%s,%.6g,%.6g,%.6g,%u\n", ws->id, m->key, threads,
                   o->be[k]->name, med[k], c->v[k][0], c->v[k][c->n[k] - 1],
                   c->n[k]);
    }
    if (o->csv)
        return;
    printf("| %s %s |", rowlabel, m->higher_better ? "(higher is better)"
                                                   : "(lower is better)");
    for (unsigned k = 0; k < o->nbe; k++) {
        if (c->n[k] == 0) {
            printf(not_for(o->be[k], (enum wl_id)(ws - wspecs),
                           (unsigned)(m - ws->m)) ? " – |" : " FAILED |");
            continue;
        }
        fmt_num(num, sizeof num, med[k]);
        fmt_num(lo, sizeof lo, c->v[k][0]);
        fmt_num(hi, sizeof hi, c->v[k][c->n[k] - 1]);
        if (c->n[k] > 1)
            printf(" %s [%s – %s] |", num, lo, hi);
        else
            printf(" %s |", num);
    }
    for (unsigned r = 0; r < N_RATIOS; r++) {
        int a = backend_index(o, ratios[r][0]), k = backend_index(o, ratios[r][1]);
        if (a < 0 || k < 0)
            continue;
        if (isnan(med[a]) || isnan(med[k]) || med[k] == 0)
            printf(" – |");
        else if (med[a] / med[k] < 0.1)     /* two significant digits */
            printf(" %.2g |", med[a] / med[k]);
        else
            printf(" %.2f |", med[a] / med[k]);
    }
    printf("\n");
}

static void run_workload(const struct opts *o, enum wl_id wl)
{
    const struct wspec *ws = &wspecs[wl];
    uint64_t jobs = o->smoke ? ws->smoke_jobs : ws->jobs;
    if (o->jobs && wl != WL_W4)
        jobs = o->jobs;
    unsigned nparam = wl == WL_W6 ? N_W6 : 1;
    static struct cell cells[N_W6][4];
    memset(cells, 0, sizeof cells);

    for (unsigned rep = 0; rep < o->reps; rep++) {
        for (unsigned p = 0; p < nparam; p++) {
            unsigned threads = wl == WL_W6 ? w6_threads[p]
                             : ws->fixed_threads ? (unsigned)ws->fixed_threads
                             : o->threads;
            for (unsigned i = 0; i < o->nbe; i++) {
                unsigned k = (i + rep) % o->nbe;       /* rotate the order */
                double vals[4];
                if (wl == WL_W8 && !o->be[k]->drain_budget)
                    continue;                      /* printed as "–" */
                if (!o->csv && !o->smoke)
                    fputc('.', stderr);
                if (run_child(o, o->be[k], wl, threads, jobs,
                              o->warmup && ws->warm, vals) != 0) {
                    any_failure = 1;
                    continue;
                }
                for (unsigned m = 0; m < ws->nm; m++) {
                    struct cell *c = &cells[p][m];
                    if (!not_for(o->be[k], wl, m))
                        c->v[k][c->n[k]++] = vals[m];
                }
            }
        }
    }
    if (!o->csv && !o->smoke)
        fputc('\n', stderr);

    if (!o->csv) {
        unsigned threads = ws->fixed_threads ? (unsigned)ws->fixed_threads
                                             : o->threads;
        printf("\n### %s\n\n", ws->title);
        if (wl == WL_W6)
            printf("%llu jobs per run; ", (unsigned long long)jobs);
        else if (wl == WL_IDLE)
            printf("%u workers; ", threads);
        else if (wl == WL_W7)
            printf("%llu jobs of 1 us one at a time per part, %u workers; "
                   "%u jobs of 10 ms in flight on the slow lane (where the "
                   "backend has one; else in its one queue), or %u jobs of "
                   "100 us kept in flight by a second loop on the same pool; ",
                   (unsigned long long)jobs, threads,
                   W7_SLOW_PER_WORKER * threads, W7_FLOOD);
        else
            printf("%llu %s, %u workers; ", (unsigned long long)jobs,
                   wl == WL_W1 ? "round trips" : "jobs", threads);
        double load[3] = { 0, 0, 0 };
        getloadavg(load, 3);
        printf("%u run%s per cell, median [min – max]; load average %.2f "
               "after\n\n", o->reps, o->reps == 1 ? "" : "s", load[0]);
        printf("| |");
        for (unsigned k = 0; k < o->nbe; k++)
            printf(" %s |", o->be[k]->name);
        unsigned nratio = 0;
        for (unsigned r = 0; r < N_RATIOS; r++)
            if (backend_index(o, ratios[r][0]) >= 0 &&
                backend_index(o, ratios[r][1]) >= 0) {
                printf(" %s/%s |", ratios[r][0], ratios[r][1]);
                nratio++;
            }
        printf("\n|---|");
        for (unsigned k = 0; k < o->nbe + nratio; k++)
            printf("---:|");
        printf("\n");
    }
    for (unsigned p = 0; p < nparam; p++)
        for (unsigned m = 0; m < ws->nm; m++) {
            char label[96];
            unsigned threads = wl == WL_W6 ? w6_threads[p] : o->threads;
            if (wl == WL_W6)
                snprintf(label, sizeof label, "%s, %u worker%s", ws->m[m].label,
                         threads, threads == 1 ? "" : "s");
            else
                snprintf(label, sizeof label, "%s", ws->m[m].label);
            print_row(o, ws, wl == WL_W6 ? threads
                             : ws->fixed_threads ? (unsigned)ws->fixed_threads
                             : o->threads, &ws->m[m], &cells[p][m], label);
        }
    fflush(stdout);
}

/* ---- main ------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
"usage: evexec-bench [options]\n"
"  --backend LIST   comma-separated, from:");
    for (unsigned i = 0; i < N_ALL_BACKENDS; i++)
        fprintf(out, " %s", all_backends[i]->name);
    fprintf(out, " (default: all but evexec-spin and evexec-batch;\n"
"                   evexec-batch: evexec with each burst in one\n"
"                   evexec_batch_begin/end)\n"
"  --workload LIST  comma-separated, from: w1 w2 w3 w4 w5 w6 w7 w8 idle\n"
"  --all            every workload (the default)\n"
"  --threads N      workers (default 4; w4 always uses 64, w6 its own list)\n"
"  --jobs N         jobs per run, k/M suffixes allowed (default: per workload;\n"
"                   w1: round trips; w7: 1 us jobs measured per part;\n"
"                   idle: microseconds idle; not w4)\n"
"  --reps N         runs per cell, each a separate process (default 5)\n"
"  --csv            CSV (workload,metric,workers,backend,median,min,max,runs)\n"
"  --smoke          tiny sizes, 1 run, every job counted; for make check\n"
"  --spin US        also run evexec-spin: evexec with the pool's spin_us = US\n"
"                   (1..1000, or off for EVEXEC_SPIN_OFF; selecting\n"
"                   evexec-spin alone means 50; evexec itself has the\n"
"                   default, adaptive spin)\n"
"  --no-warmup      skip the warm-ups\n"
"  --one            run one backend and one workload in this process and\n"
"                   print its metrics (for strace, valgrind, perf)\n"
"  --count          count every job run (--one; --smoke implies it)\n"
"  --timeout S      alarm after S seconds (--one; default none)\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno)
        return -1;
    if (*end == 'k' || *end == 'K')
        v *= 1e3, end++;
    else if (*end == 'm' || *end == 'M')
        v *= 1e6, end++;
    if (*end != '\0' || v < 0 || v > 1e15)
        return -1;
    *out = (uint64_t)(v + 0.5);
    return 0;
}

static int parse_list(const char *s, struct opts *o, int backends)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int found = 0;
        if (backends) {
            for (unsigned i = 0; i < N_ALL_BACKENDS; i++)
                if (strcmp(t, all_backends[i]->name) == 0 && o->nbe < MAX_BACKENDS) {
                    o->be[o->nbe++] = all_backends[i];
                    found = 1;
                }
        } else {
            for (unsigned i = 0; i < WL_COUNT; i++)
                if (strcasecmp(t, wspecs[i].id) == 0) {
                    o->wl_mask |= 1u << i;
                    found = 1;
                }
        }
        if (!found) {
            fprintf(stderr, "evexec-bench: unknown %s '%s'%s\n",
                    backends ? "backend" : "workload", t,
                    backends ? " (not compiled in?)" : "");
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = { .threads = 4, .reps = 5, .warmup = 1 };
    uint64_t u;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (strcmp(a, "--threads") == 0 && v && !parse_u64(v, &u) && u >= 1 && u <= 1024)
            o.threads = (unsigned)u, o.threads_set = 1;
        else if (strcmp(a, "--jobs") == 0 && v && !parse_u64(v, &u) && u >= 1)
            o.jobs = u;
        else if (strcmp(a, "--reps") == 0 && v && !parse_u64(v, &u) && u >= 1 && u <= MAX_REPS)
            o.reps = (unsigned)u;
        else if (strcmp(a, "--timeout") == 0 && v && !parse_u64(v, &u) && u <= 86400)
            o.timeout = (unsigned)u;
        else if (strcmp(a, "--spin") == 0 && v && !parse_u64(v, &u) && u >= 1 && u <= 1000)
            o.spin_us = (unsigned)u;
        else if (strcmp(a, "--spin") == 0 && v && strcmp(v, "off") == 0)
            o.spin_us = BENCH_SPIN_OFF;
        else if (strcmp(a, "--backend") == 0 && v) {
            if (parse_list(v, &o, 1) != 0)
                return 2;
        } else if (strcmp(a, "--workload") == 0 && v) {
            if (parse_list(v, &o, 0) != 0)
                return 2;
        } else {
            takes = 0;
            if (strcmp(a, "--all") == 0)
                o.wl_mask = (1u << WL_COUNT) - 1;
            else if (strcmp(a, "--csv") == 0)
                o.csv = 1;
            else if (strcmp(a, "--smoke") == 0)
                o.smoke = 1;
            else if (strcmp(a, "--one") == 0)
                o.one = 1;
            else if (strcmp(a, "--count") == 0)
                o.count = 1;
            else if (strcmp(a, "--no-warmup") == 0)
                o.warmup = 0;
            else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
                usage(stdout);
                return 0;
            } else {
                fprintf(stderr, "evexec-bench: bad option or value: %s%s%s\n",
                        a, v ? " " : "", v ? v : "");
                usage(stderr);
                return 2;
            }
        }
        i += takes;
    }
    if (o.nbe == 0)
        for (unsigned i = 0; i < N_ALL_BACKENDS && o.nbe < MAX_BACKENDS; i++)
            if (i < N_DEFAULT_BACKENDS || (o.spin_us && all_backends[i] == &bench_evexec_spin))
                o.be[o.nbe++] = all_backends[i];
    if (o.spin_us == 0 && backend_index(&o, "evexec-spin") >= 0)
        o.spin_us = 50;
    if (o.wl_mask == 0)
        o.wl_mask = (1u << WL_COUNT) - 1;

    if (o.one) {
        enum wl_id wl = WL_COUNT;
        for (unsigned i = 0; i < WL_COUNT; i++)
            if (o.wl_mask & (1u << i))
                wl = wl == WL_COUNT ? (enum wl_id)i : WL_COUNT + 1;
        if (o.nbe != 1 || wl >= WL_COUNT) {
            fprintf(stderr, "evexec-bench: --one takes one --backend and one --workload\n");
            return 2;
        }
        uint64_t n = o.jobs ? o.jobs : wspecs[wl].jobs;
        if (wspecs[wl].fixed_threads && !o.threads_set)
            o.threads = (unsigned)wspecs[wl].fixed_threads;
        return child_main(&o, wl, n);
    }

    ssize_t len = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
    if (len > 0)
        self_exe[len] = '\0';
    else
        snprintf(self_exe, sizeof self_exe, "%s", argv[0]);
    if (o.smoke) {
        o.reps = 1;
        o.count = 1;
        if (o.timeout == 0)
            o.timeout = 60;
    } else if (o.timeout == 0) {
        o.timeout = 600;
    }

    if (o.csv) {
        printf("workload,metric,workers,backend,median,min,max,runs\n");
    } else {
        double load[3] = { 0, 0, 0 };
        getloadavg(load, 3);
        printf("## evexec-bench\n\n%ld CPUs, load average %.2f at start; "
               "backends:", sysconf(_SC_NPROCESSORS_ONLN), load[0]);
        for (unsigned k = 0; k < o.nbe; k++)
            printf(" %s", o.be[k]->name);
        printf("%s.  Ratios are of medians; below 1 is better for evexec "
               "where lower is better.\n",
               N_DEFAULT_BACKENDS < 3 ? " (libuv not compiled in)" : "");
        fflush(stdout);
    }

    /* A short warm-up: page in the program and its libraries. */
    if (!o.smoke && o.warmup)
        for (unsigned k = 0; k < o.nbe; k++) {
            double vals[4];
            run_child(&o, o.be[k], WL_W2, o.threads, 20000, 0, vals);
        }

    for (unsigned i = 0; i < WL_COUNT; i++)
        if (o.wl_mask & (1u << i))
            run_workload(&o, (enum wl_id)i);

    if (!o.csv) {
        double load[3] = { 0, 0, 0 };
        getloadavg(load, 3);
        printf("\nLoad average %.2f at the end.%s\n", load[0],
               any_failure ? "  SOME RUNS FAILED (see stderr)." : "");
    }
    if (o.smoke && !any_failure)
        fprintf(stderr, "evexec-bench: smoke: every backend delivered every job\n");
    return any_failure ? 1 : 0;
}
