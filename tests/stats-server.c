/*
 * stats-server -- a program that opts in to being watched, for
 * tests/check-stats-top.sh: it runs 6 jobs on the default lane and 2 on
 * the slow lane, listens on the Unix socket PATH with
 * evexec_stats_listen(), prints "ready" and serves snapshots until
 * SIGTERM or SIGINT, then frees everything (which removes the socket)
 * and exits 0.
 *
 *   stats-server PATH
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "evexec.h"

static int job(struct evexec_job *job, void *arg)
{
    (void)job;
    (void)arg;
    return 0;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: stats-server PATH\n");
        return 2;
    }
    struct event_base *base = event_base_new();
    struct evexec_pool_config cfg = EVEXEC_POOL_CONFIG_INIT;
    cfg.max_threads = 2;
    cfg.timing = 1;
    struct evexec_pool *pool = base ? evexec_pool_new(&cfg) : NULL;
    struct evexec *ex = pool ? evexec_new(base, pool) : NULL;
    if (!ex) {
        fprintf(stderr, "stats-server: setup failed: %s\n", strerror(errno));
        return 1;
    }
    struct evexec_future *fs[8];
    struct evexec_run_opts slow = EVEXEC_RUN_OPTS_INIT;
    slow.lane = EVEXEC_LANE_SLOW;
    for (int i = 0; i < 8; i++)
        fs[i] = evexec_run_opts(ex, job, NULL, i < 6 ? NULL : &slow);
    struct evexec_future *all = evexec_gather(ex, fs, 8);
    int rc = all ? evexec_run_until_complete(ex, all) : errno;
    if (rc == 0)
        rc = evexec_stats_listen(ex, argv[1]);
    if (rc) {
        fprintf(stderr, "stats-server: %s\n", evexec_strerror(rc));
        return 1;
    }
    evexec_future_unref(all);
    for (int i = 0; i < 8; i++)
        evexec_future_unref(fs[i]);
    struct event *term = evsignal_new(base, SIGTERM, on_signal, base);
    struct event *intr = evsignal_new(base, SIGINT, on_signal, base);
    if (!term || !intr || event_add(term, NULL) || event_add(intr, NULL)) {
        fprintf(stderr, "stats-server: no signal events\n");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    event_base_dispatch(base);
    event_free(term);
    event_free(intr);
    evexec_free(ex);
    evexec_pool_free(pool);
    event_base_free(base);
    return 0;
}
