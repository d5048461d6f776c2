/*
 * stats.c -- seeing into a pool: lane counters and histograms, the
 * watchdog on an evexec's running jobs, and the stats socket that
 * tools/evexec-top reads.
 *
 * The pool counts (stats.h); this file only reads, under the pool lock,
 * through evexec__pool_stats_locked().  The watchdog and the socket are
 * an evexec's, on its loop thread: their state (struct evexec__obs) is
 * made by the first call that needs it and freed by evexec_free().
 */
#define _GNU_SOURCE
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "evexec-internal.h"
#include "stats.h"

/* ---- lane statistics ---------------------------------------------------- */

struct lane_read {
    int lane;
    struct evexec_lane_stats *out;
};

static void read_lane(struct evexec__pstats *st, const size_t *qlen, void *arg)
{
    struct lane_read *r = arg;
    struct evexec_lane_stats *out = r->out;
    for (int i = 0; i < EVEXEC_HIST_BUCKETS; i++) {
        out->queued_us_hist[i] = st->wait_hist[r->lane][i];
        out->running_us_hist[i] =
            atomic_load_explicit(&st->run_hist[r->lane][i], memory_order_relaxed);
    }
    /* A job is counted taken (under this lock) before it is counted
     * done, so done <= taken here. */
    uint64_t taken = st->taken[r->lane];
    uint64_t done = atomic_load_explicit(&st->completed[r->lane], memory_order_relaxed);
    out->queued = qlen[r->lane];
    out->running = (size_t)(taken - done);
    out->completed = done;
    out->cancelled = st->cancelled[r->lane];
}

EVEXEC_API int evexec_pool_lane_stats(const struct evexec_pool *pool, int lane,
                                      struct evexec_lane_stats *out)
{
    if (!pool || !out || !evexec__pool_lane_ok(pool, lane))
        return EINVAL;
    /* Submissions this loop thread still holds count as made. */
    evexec__pool_client.flush();
    struct lane_read r = { lane, out };
    return evexec__pool_stats_locked(pool, read_lane, &r);
}

EVEXEC_API uint64_t evexec_hist_percentile(const uint64_t *hist, double p)
{
    if (!hist || !(p >= 0.0 && p <= 100.0))
        return 0;
    uint64_t n = 0;
    for (int i = 0; i < EVEXEC_HIST_BUCKETS; i++)
        n += hist[i];
    if (n == 0)
        return 0;
    /* The rank of the p-th percentile, 1..n. */
    double want = p / 100.0 * (double)n;
    uint64_t rank = want >= (double)n ? n : (uint64_t)want;
    if ((double)rank < want)
        rank++;                 /* rounded up */
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    int i;
    for (i = 0; i < EVEXEC_HIST_BUCKETS - 1; i++) {
        seen += hist[i];
        if (seen >= rank)
            break;
    }
    return i == EVEXEC_HIST_BUCKETS - 1 ? UINT64_MAX : (uint64_t)2 << i;
}

/* ---- an evexec's watchdog and stats socket -------------------------------- */

struct evexec__obs {
    /* the watchdog */
    struct event *wd_ev;           /* persistent timer, added while on */
    unsigned wd_threshold_ms;      /* 0: off */
    void (*wd_cb)(struct evexec *ex, int lane, uint64_t running_ms, void *arg);
    void *wd_arg;
    /* the stats socket */
    struct event *sock_ev;
    int sock_fd;                   /* -1: not listening */
    char *sock_path;
    dev_t sock_dev;                /* the file bind() made, removed only */
    ino_t sock_ino;                /* while it is still that file */
};

static struct evexec__obs *obs_get(struct evexec *ex)
{
    if (!ex->obs) {
        struct evexec__obs *o = evexec__calloc(1, sizeof *o);
        if (!o)
            return NULL;
        o->sock_fd = -1;
        ex->obs = o;
    }
    return ex->obs;
}

static void sock_close(struct evexec__obs *o)
{
    if (o->sock_ev)
        event_free(o->sock_ev);
    if (o->sock_fd >= 0) {
        struct stat sb;
        if (stat(o->sock_path, &sb) == 0 && sb.st_dev == o->sock_dev &&
            sb.st_ino == o->sock_ino)
            unlink(o->sock_path);
        close(o->sock_fd);
    }
    free(o->sock_path);
    o->sock_ev = NULL;
    o->sock_fd = -1;
    o->sock_path = NULL;
}

void evexec__obs_free(struct evexec *ex)
{
    struct evexec__obs *o = ex->obs;
    if (!o)
        return;
    ex->obs = NULL;
    if (o->wd_ev)
        event_free(o->wd_ev);
    sock_close(o);
    free(o);
}

/* Jobs of one owner past the threshold, found under the pool lock; each
 * is marked reported there, so it is told once.  At most WD_MAX a tick:
 * the rest are found on the next. */
#define WD_MAX 16

struct wd_scan {
    const struct evexec__pool_owner *owner;
    uint64_t now_ns, threshold_ns;
    unsigned n;
    int lane[WD_MAX];
    uint64_t ms[WD_MAX];
};

static void wd_find(struct evexec__pstats *st, const size_t qlen[2], void *arg)
{
    struct wd_scan *s = arg;
    (void)qlen;
    for (struct evexec__wslot *w = st->workers; w && s->n < WD_MAX; w = w->next) {
        if (!w->busy || w->reported || w->owner != s->owner)
            continue;
        if (w->start_ns == 0)           /* not timed: from first seen */
            w->start_ns = s->now_ns;
        if (s->now_ns < w->start_ns || s->now_ns - w->start_ns < s->threshold_ns)
            continue;
        w->reported = 1;
        s->lane[s->n] = w->lane;
        s->ms[s->n] = (s->now_ns - w->start_ns) / 1000000u;
        s->n++;
    }
}

/* Under pool->lock: from now on the pool's workers run one job per
 * take (see Holding in pool.c), so a slot's start is its job's. */
static void wd_watch(struct evexec__pstats *st, const size_t *qlen, void *arg)
{
    (void)qlen;
    (void)arg;
    st->watched = 1;
}

static void wd_tick(evutil_socket_t fd, short what, void *arg)
{
    struct evexec *ex = arg;
    struct evexec__obs *o = ex->obs;
    (void)fd;
    (void)what;
    if (evexec__closing(ex) || !o->wd_threshold_ms)
        return;
    struct wd_scan s;
    s.owner = evexec__owner(ex);
    s.now_ns = evexec__now_ns();
    s.threshold_ns = (uint64_t)o->wd_threshold_ms * 1000000u;
    s.n = 0;
    if (evexec__pool_stats_locked(ex->pool, wd_find, &s) != 0)
        return;
    /* The callback may set the watchdog again or free the evexec: read
     * both from ex each time. */
    evexec__enter(ex);
    for (unsigned i = 0; i < s.n && !evexec__closing(ex) && ex->obs &&
                         ex->obs->wd_cb; i++)
        ex->obs->wd_cb(ex, s.lane[i], s.ms[i], ex->obs->wd_arg);
    evexec__leave(ex);
}

EVEXEC_API int evexec_set_watchdog(struct evexec *ex, unsigned threshold_ms,
                                   void (*cb)(struct evexec *ex, int lane,
                                              uint64_t running_ms, void *arg),
                                   void *arg)
{
    if (!ex || (threshold_ms && !cb))
        return EINVAL;
    int rc = evexec__usable(ex);
    if (rc)
        return rc;
    if (!threshold_ms && !ex->obs)
        return 0;
    struct evexec__obs *o = obs_get(ex);
    if (!o)
        return ENOMEM;
    if (!o->wd_ev && !(o->wd_ev = event_new(ex->base, -1, EV_PERSIST, wd_tick, ex)))
        return ENOMEM;
    if (!threshold_ms) {
        event_del(o->wd_ev);
        o->wd_threshold_ms = 0;
        o->wd_cb = NULL;
        o->wd_arg = NULL;
        return 0;
    }
    if (evexec__pool_stats_locked(ex->pool, wd_watch, NULL) != 0)
        return ESHUTDOWN;
    unsigned period = threshold_ms / 2 < 10 ? 10 : threshold_ms / 2;
    struct timeval tv = { (time_t)(period / 1000), (suseconds_t)(period % 1000) * 1000 };
    if (event_add(o->wd_ev, &tv) != 0)
        return ENOMEM;
    o->wd_threshold_ms = threshold_ms;
    o->wd_cb = cb;
    o->wd_arg = arg;
    return 0;
}

/* ---- the stats socket ------------------------------------------------------ */

/* A histogram bound as text: a number, or "inf". */
static const char *bound(char *buf, size_t len, const uint64_t *hist, double p)
{
    uint64_t v = evexec_hist_percentile(hist, p);
    if (v == UINT64_MAX)
        snprintf(buf, len, "inf");
    else
        snprintf(buf, len, "%llu", (unsigned long long)v);
    return buf;
}

/* The snapshot the socket sends: the pool's line, then a line per lane.
 * Returns its length (at most len - 1). */
static size_t snapshot(struct evexec *ex, char *buf, size_t len)
{
    struct evexec_pool_stats ps;
    size_t n = 0;
    if (evexec_pool_stats(ex->pool, &ps) == 0)
        n += (size_t)snprintf(buf, len,
                              "pool threads=%u idle=%u queued=%zu running=%zu "
                              "completed=%llu cancelled=%llu\n",
                              ps.threads, ps.idle, ps.queued, ps.running,
                              (unsigned long long)ps.completed,
                              (unsigned long long)ps.cancelled);
    for (int lane = 0; lane < EVEXEC_MAX_LANES && n < len; lane++) {
        struct evexec_lane_stats ls;
        char b[6][24];
        if (evexec_pool_lane_stats(ex->pool, lane, &ls) != 0)
            break;
        n += (size_t)snprintf(
            buf + n, len - n,
            "lane=%s queued=%zu running=%zu completed=%llu cancelled=%llu "
            "queued_p50_us=%s queued_p99_us=%s queued_max_us=%s "
            "running_p50_us=%s running_p99_us=%s running_max_us=%s\n",
            evexec__pool_lane_name(ex->pool, lane), ls.queued, ls.running,
            (unsigned long long)ls.completed, (unsigned long long)ls.cancelled,
            bound(b[0], sizeof b[0], ls.queued_us_hist, 50),
            bound(b[1], sizeof b[1], ls.queued_us_hist, 99),
            bound(b[2], sizeof b[2], ls.queued_us_hist, 100),
            bound(b[3], sizeof b[3], ls.running_us_hist, 50),
            bound(b[4], sizeof b[4], ls.running_us_hist, 99),
            bound(b[5], sizeof b[5], ls.running_us_hist, 100));
    }
    return n < len ? n : len - 1;
}

/* A connection: answer with the snapshot and close.  At most a few per
 * wake-up, so a flood of connections cannot hold the loop. */
static void on_connect(evutil_socket_t fd, short what, void *arg)
{
    struct evexec *ex = arg;
    (void)what;
    for (int i = 0; i < 16; i++) {
        int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0)
            return;     /* EAGAIN, or a connection gone before accept */
        char buf[256 + 320 * EVEXEC_MAX_LANES];
        size_t n = snapshot(ex, buf, sizeof buf);
        /* A few hundred bytes into an empty socket buffer: one send. */
        (void)send(c, buf, n, MSG_NOSIGNAL);
        close(c);
    }
}

EVEXEC_API int evexec_stats_listen(struct evexec *ex, const char *unix_path)
{
    struct sockaddr_un sa;
    if (!ex || (unix_path && !*unix_path))
        return EINVAL;
    int rc = evexec__usable(ex);
    if (rc)
        return rc;
    if (!unix_path) {
        if (ex->obs)
            sock_close(ex->obs);
        return 0;
    }
    if (strlen(unix_path) >= sizeof sa.sun_path)
        return ENAMETOOLONG;
    struct evexec__obs *o = obs_get(ex);
    char *path = evexec__malloc(strlen(unix_path) + 1);
    if (!o || !path) {
        free(path);
        return ENOMEM;
    }
    strcpy(path, unix_path);
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, unix_path, strlen(unix_path));
    struct stat sb;
    struct event *ev = NULL;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        goto fail;
    if (listen(fd, 16) != 0 || stat(unix_path, &sb) != 0)
        goto fail_unlink;
    ev = event_new(ex->base, fd, EV_READ | EV_PERSIST, on_connect, ex);
    if (!ev || event_add(ev, NULL) != 0) {
        errno = ENOMEM;
        goto fail_unlink;
    }
    sock_close(o);      /* the old one, if any */
    o->sock_ev = ev;
    o->sock_fd = fd;
    o->sock_path = path;
    o->sock_dev = sb.st_dev;
    o->sock_ino = sb.st_ino;
    return 0;

fail_unlink:
    rc = errno;
    unlink(unix_path);
    errno = rc;
fail:
    rc = errno ? errno : ENOMEM;
    if (ev)
        event_free(ev);
    if (fd >= 0)
        close(fd);
    free(path);
    return rc;
}
