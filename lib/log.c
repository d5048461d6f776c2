/*
 * log.c -- failures nobody read.
 *
 * A future that failed (with anything but ECANCELED) and is released
 * without its error ever having been read is reported once, like
 * asyncio's "exception was never retrieved": to the sink set with
 * evexec_set_log_fn(), or to stderr.  future.c calls
 * evexec__report_unobserved() for every future it releases; the kind of
 * future is named by its ops table.
 *
 * Threads: the report is made on the loop thread that releases the future;
 * the sink is set from any thread, under log_mu, and called with no lock
 * held.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#include "evexec-internal.h"

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static evexec_log_fn log_fn;
static void *log_arg;

EVEXEC_API void evexec_set_log_fn(evexec_log_fn fn, void *arg)
{
    pthread_mutex_lock(&log_mu);
    log_fn = fn;
    log_arg = fn ? arg : NULL;
    pthread_mutex_unlock(&log_mu);
}

void evexec__log_atfork(int phase)
{
    if (phase == EVEXEC__FORK_PREPARE)
        pthread_mutex_lock(&log_mu);
    else
        pthread_mutex_unlock(&log_mu);
}

static void log_line(int error, const char *msg)
{
    pthread_mutex_lock(&log_mu);
    evexec_log_fn fn = log_fn;
    void *arg = log_arg;
    pthread_mutex_unlock(&log_mu);
    if (fn)
        fn(error, msg, arg);
    else
        fprintf(stderr, "%s\n", msg);
}

static const char *kind_name(const struct evexec_future *f)
{
    if (f->kind == EVEXEC__F_USER)
        return "hand-made";
    const struct evexec__future_ops *ops = evexec__future_ops(f);
    return ops && ops->name ? ops->name : "other";
}

void evexec__report_unobserved(struct evexec_future *f)
{
    if (f->state == EVEXEC__PENDING || f->error == 0 || f->error == ECANCELED ||
        f->observed)
        return;
    char msg[200];
    snprintf(msg, sizeof msg,
             "evexec: error never retrieved from a %s future: %s (%d)",
             kind_name(f), evexec_strerror(f->error), f->error);
    log_line(f->error, msg);
}
