/*
 * http-server -- an evhttp server whose blocking work runs on evexec's pool.
 * Meant to be copied: the main use of evexec in one file.
 *
 *   http-server [--port N] [--deadline-ms MS] [--threads N]
 *               [--queue-limit N] DIR
 *
 *   GET /files/NAME  DIR/NAME, read on the pool by evexec_fs_read_file()
 *                    and sent without a copy (evbuffer_add_reference);
 *                    404 if there is no such file, 400 for a NAME with a
 *                    "/" or ".." in it
 *   GET /db?key=K    K's value in a SQLite table, looked up on the pool
 *                    with the worker's own connection; 404 if absent
 *   GET /slow?ms=N   N ms of blocking work, on the slow lane
 *   GET /stats       the pool's counters (answered on the loop)
 *   GET /quit        shut down, as SIGINT and SIGTERM do
 *
 * Load.  Every job is bounded by evexec_wait_for(): past the deadline
 * (--deadline-ms, default 2000) the answer is 503 and the job is
 * cancelled.  A request that finds --queue-limit jobs (default 64) or
 * more waiting for a thread is refused with 503 at once, as is one the
 * pool refuses (EAGAIN: each lane's max_queued is that limit too).
 *
 * Shutdown, in this order (shutdown_begin() and the end of main()):
 *   1. stop accepting: the listening socket is closed;
 *   2. cancel the work in flight: each of those requests gets its 503;
 *   3. run the loop until every reply is written (at most GRACE_MS);
 *   4. evexec_free(): any done callback still due runs now;
 *   5. evhttp_free(): the connections and their requests go;
 *   6. evexec_pool_free(): the workers exit, closing their connections;
 *   7. event_base_free().
 * evexec_free() comes before evhttp_free() because a done callback that
 * evexec_free() runs answers its request, which must still exist then.
 * A request is only ever touched by the loop thread, between the moment
 * evhttp hands it over and our reply; jobs never see it.
 *
 * Prints "listening on 127.0.0.1:PORT" once it accepts connections
 * (--port 0, the default, picks a free port); exits 0 after a clean
 * shutdown.  Only 127.0.0.1 is served.
 *
 * Build: cc http-server.c \
 *          $(pkg-config --cflags --libs evexec libevent_extra sqlite3)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sqlite3.h>

#include "evexec.h"

#define GRACE_MS 2000           /* longest wait for replies to be written */
#define SLOW_MAX_MS 600000      /* /slow refuses more than this */

struct request;

struct server {
    struct event_base *base;
    struct evexec_pool *pool;
    struct evexec *ex;
    struct evhttp *http;
    struct evhttp_bound_socket *listener;   /* NULL once we stop accepting */
    struct event *sigint, *sigterm, *grace;
    const char *dir;            /* served by /files */
    char tmpdir[PATH_MAX];      /* holds the database */
    char dbpath[PATH_MAX + 8];  /* tmpdir/kv.db */
    struct timeval deadline;    /* of every job */
    size_t queue_limit;
    struct request *inflight;   /* requests waiting for a job */
    unsigned unflushed;         /* replies given to evhttp, not yet written */
    int stopping;
};

/* A request waiting for its job.  It is in srv->inflight from the job's
 * submission until on_done() answers it: that is how shutdown finds the
 * work to cancel. */
struct request {
    struct server *srv;
    struct evhttp_request *req;
    struct evexec_future *job;  /* the job's own future (owns the result) */
    struct evexec_future *wait; /* evexec_wait_for(job, deadline) */
    void (*answer)(struct request *r);  /* builds the 200 reply */
    unsigned long ms;           /* /slow's duration, for its reply */
    struct request *prev, *next;
};

static void maybe_finish(struct server *srv)
{
    /* With the default keep-alive an evexec keeps its loop running, so
     * the loop is ended by hand once everything is answered and written. */
    if (srv->stopping && !srv->inflight && srv->unflushed == 0)
        event_base_loopexit(srv->base, NULL);
}

/* A reply is over when evhttp has written it (on_flushed, from
 * evhttp_request_set_on_complete_cb; req is freed after it returns) or when
 * its connection closes first (on_closed: the client hung up while we
 * wrote; the request goes with the connection), whichever comes first. */
static void on_closed(struct evhttp_connection *evcon, void *arg)
{
    struct server *srv = arg;
    if (evcon)
        evhttp_connection_set_closecb(evcon, NULL, NULL);
    srv->unflushed--;
    maybe_finish(srv);
}

static void on_flushed(struct evhttp_request *req, void *arg)
{
    on_closed(evhttp_request_get_connection(req), arg);
}

/* Send a reply; body may be NULL.  Every reply goes through here. */
static void reply(struct server *srv, struct evhttp_request *req, int code,
                  const char *type, struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", type);
    if (srv->stopping)
        evhttp_add_header(h, "Connection", "close");
    /* A client that went away while its job ran may have left a request
     * with no connection: evhttp_send_reply() then just frees it, and no
     * callback comes.  Count only the replies that will be written. */
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (evcon) {
        srv->unflushed++;
        evhttp_request_set_on_complete_cb(req, on_flushed, srv);
        evhttp_connection_set_closecb(evcon, on_closed, srv);
    }
    evhttp_send_reply(req, code, NULL, body);
}

static void reply_text(struct server *srv, struct evhttp_request *req, int code,
                       const char *fmt, ...)
{
    struct evbuffer *body = evbuffer_new();
    va_list ap;
    va_start(ap, fmt);
    if (body)
        evbuffer_add_vprintf(body, fmt, ap);
    va_end(ap);
    reply(srv, req, code, "text/plain", body);
    if (body)
        evbuffer_free(body);
}

/* ------------------------------------------------------------------ */
/* Jobs: these run on the pool's workers                               */
/* ------------------------------------------------------------------ */

/* thread_start: each worker opens its own connection before its first job
 * and keeps it for its life (a connection is never shared by threads, so
 * SQLite's own locking is off); jobs read it with evexec_job_thread_state(). */
static void *open_db(void *dbpath)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return NULL;            /* the jobs of this worker fail with EIO */
    }
    return db;
}

/* thread_exit: the worker is exiting (idle, or the pool is freed). */
static void close_db(void *dbpath, void *db)
{
    (void)dbpath;
    sqlite3_close(db);
}

/* The job's argument is the key, which the job owns (see serve_db()).  The
 * result is the value, a malloc()ed string the future owns. */
static int lookup(struct evexec_job *job, void *key)
{
    sqlite3 *db = evexec_job_thread_state(job);
    sqlite3_stmt *st = NULL;
    int err = EIO;
    if (db && sqlite3_prepare_v2(db, "SELECT value FROM kv WHERE key = ?1", -1, &st,
                                 NULL) == SQLITE_OK &&
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC) == SQLITE_OK) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            const unsigned char *v = sqlite3_column_text(st, 0);
            char *value = strdup(v ? (const char *)v : "");
            err = value ? 0 : ENOMEM;
            evexec_job_set_result(job, value, free);
        } else if (rc == SQLITE_DONE) {
            err = ENOENT;
        }
    }
    sqlite3_finalize(st);
    return err;
}

/* Stands for any blocking call that may take long.  Unlike sleep(), the
 * wait ends as soon as the job is cancelled (deadline or shutdown), so
 * the worker is free again at once. */
static int slow_work(struct evexec_job *job, void *arg)
{
    unsigned long ms = (unsigned long)(uintptr_t)arg;
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    int rc = evexec_job_wait_cancel(job, &ts);
    return rc == ETIMEDOUT ? 0 : rc;
}

/* ------------------------------------------------------------------ */
/* Requests: everything below runs on the loop thread                  */
/* ------------------------------------------------------------------ */

static void request_free(struct request *r)
{
    struct server *srv = r->srv;
    if (r->prev)
        r->prev->next = r->next;
    else
        srv->inflight = r->next;
    if (r->next)
        r->next->prev = r->prev;
    evexec_future_unref(r->wait);
    evexec_future_unref(r->job);        /* releases the result, if any */
    free(r);
    maybe_finish(srv);
}

/* The wait_for ended: the job's outcome, ETIMEDOUT or ECANCELED.  Runs from
 * the loop, or inside evexec_free() at the latest. */
static void on_done(struct evexec_future *wait, void *arg)
{
    struct request *r = arg;
    int err = evexec_future_error(wait);
    if (err == 0)
        r->answer(r);
    else if (err == ETIMEDOUT)
        reply_text(r->srv, r->req, 503, "deadline passed\n");
    else if (err == ECANCELED)
        reply_text(r->srv, r->req, 503, "shutting down\n");
    else if (err == ENOENT || err == ENOTDIR || err == EISDIR || err == EINVAL)
        reply_text(r->srv, r->req, 404, "not found\n");  /* EINVAL: not a file */
    else if (err == EAGAIN)     /* the pool could not start a thread */
        reply_text(r->srv, r->req, 503, "overloaded\n");
    else {
        fprintf(stderr, "http-server: %s: %s\n", evhttp_request_get_uri(r->req),
                evexec_strerror(err));
        reply_text(r->srv, r->req, 500, "internal error\n");
    }
    request_free(r);
}

/* Load shedding before any work is made: refuse while the pool has more
 * jobs waiting than we allow.  (A snapshot: the pool's own max_queued is
 * the hard bound behind it, see start().) */
static int overloaded(struct server *srv)
{
    struct evexec_pool_stats st;
    return evexec_pool_stats(srv->pool, &st) == 0 && st.queued >= srv->queue_limit;
}

/* Bound the job `job` (a new future, or NULL with errno from its
 * constructor) by the deadline and answer the request when it ends. */
static void start(struct server *srv, struct evhttp_request *req,
                  struct evexec_future *job, void (*answer)(struct request *),
                  unsigned long ms)
{
    if (!job) {                 /* EAGAIN: the job's lane is full (max_queued) */
        int busy = errno == EAGAIN;
        reply_text(srv, req, busy ? 503 : 500, busy ? "overloaded\n" : "internal error\n");
        return;
    }
    struct request *r = calloc(1, sizeof *r);
    if (r) {
        *r = (struct request){ .srv = srv, .req = req, .job = job, .answer = answer,
                               .ms = ms };
        r->wait = evexec_wait_for(srv->ex, job, &srv->deadline);
    }
    /* on_done() runs later, from the loop: never inside on_done's
     * registration, so r may be linked in after it. */
    if (!r || !r->wait || evexec_future_on_done(r->wait, on_done, r) != 0) {
        evexec_future_cancel(job);          /* it need not run any more */
        evexec_future_unref(job);
        if (r)
            evexec_future_unref(r->wait);
        free(r);
        reply_text(srv, req, 500, "internal error\n");
        return;
    }
    r->next = srv->inflight;
    if (srv->inflight)
        srv->inflight->prev = r;
    srv->inflight = r;
}

/* Called by libevent once it has sent (or dropped) the bytes. */
static void release_file(const void *data, size_t len, void *buf)
{
    (void)data;
    (void)len;
    free(buf);                  /* one block: struct evexec_buf and its data */
}

static void answer_file(struct request *r)
{
    /* Take the buffer from the job's future: the wait_for's result is only
     * borrowed from it.  From here on the buffer is ours; the evbuffer
     * refers to its bytes and release_file() frees it. */
    struct evexec_buf *buf = evexec_future_take_result(r->job);
    struct evbuffer *body = evbuffer_new();
    if (!buf || !body || evbuffer_add_reference(body, buf->data, buf->len, release_file,
                                        buf) != 0) {
        free(buf);
        reply_text(r->srv, r->req, 500, "internal error\n");
    } else {
        reply(r->srv, r->req, 200, "application/octet-stream", body);
    }
    if (body)
        evbuffer_free(body);    /* the reply moved the reference out of it */
}

static void serve_file(struct server *srv, struct evhttp_request *req, const char *raw)
{
    char path[PATH_MAX];
    size_t n = 0;
    char *name = evhttp_uridecode(raw, 0, &n);
    int bad = !name || n == 0 || strlen(name) != n ||  /* empty or a NUL in it */
              strchr(name, '/') || strstr(name, "..") ||
              snprintf(path, sizeof path, "%s/%s", srv->dir, name) >= (int)sizeof path;
    free(name);
    if (bad)
        reply_text(srv, req, 400, "bad file name\n");
    else                        /* the path is copied by the call */
        start(srv, req, evexec_fs_read_file(srv->ex, path), answer_file, 0);
}

static void answer_db(struct request *r)
{
    /* The value is borrowed: the job's future owns it. */
    reply_text(r->srv, r->req, 200, "%s\n", (const char *)evexec_future_result(r->wait));
}

/* The value of `name` in a query string, decoded, malloc()ed; or NULL. */
static char *query_value(struct evhttp_request *req, const char *name)
{
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq params = { 0 };
    const char *v = NULL;
    if (query && evhttp_parse_query_str(query, &params) == 0)
        v = evhttp_find_header(&params, name);
    char *copy = v ? strdup(v) : NULL;
    evhttp_clear_headers(&params);
    return copy;
}

static void serve_db(struct server *srv, struct evhttp_request *req)
{
    char *key = query_value(req, "key");
    if (!key) {
        reply_text(srv, req, 400, "no key\n");
        return;
    }
    /* The job owns its argument (arg_free): it may still run after a
     * deadline has answered the request. */
    struct evexec_run_opts opts = EVEXEC_RUN_OPTS_INIT;
    opts.arg_free = free;
    struct evexec_future *job = evexec_run_opts(srv->ex, lookup, key, &opts);
    if (!job) {                 /* a refused submission leaves arg to us */
        int err = errno;
        free(key);
        errno = err;
    }
    start(srv, req, job, answer_db, 0);
}

static void answer_slow(struct request *r)
{
    reply_text(r->srv, r->req, 200, "slept %lu ms\n", r->ms);
}

static void serve_slow(struct server *srv, struct evhttp_request *req)
{
    char *text = query_value(req, "ms"), *end = NULL;
    unsigned long ms = text ? strtoul(text, &end, 10) : 0;
    int bad = !text || !*text || *end || ms > SLOW_MAX_MS;
    free(text);
    if (bad) {
        reply_text(srv, req, 400, "bad ms\n");
        return;
    }
    /* Work that may hang goes to the slow lane: it never holds more than
     * half of the pool's threads, so files and lookups go on meanwhile. */
    struct evexec_run_opts opts = EVEXEC_RUN_OPTS_INIT;
    opts.lane = EVEXEC_LANE_SLOW;
    start(srv, req, evexec_run_opts(srv->ex, slow_work, (void *)(uintptr_t)ms, &opts),
          answer_slow, ms);
}

static void serve_stats(struct server *srv, struct evhttp_request *req)
{
    struct evexec_pool_stats st;
    if (evexec_pool_stats(srv->pool, &st) != 0)
        reply_text(srv, req, 500, "internal error\n");
    else
        reply_text(srv, req, 200, "threads %u idle %u queued %zu running %zu completed %llu\n",
                   st.threads, st.idle, st.queued, st.running,
                   (unsigned long long)st.completed);
}

/* Steps 1 to 3 of the shutdown; main() does the rest once the loop ends. */
static void shutdown_begin(struct server *srv)
{
    if (srv->stopping)
        return;
    srv->stopping = 1;
    if (srv->listener) {        /* 1. no new connections */
        evhttp_del_accept_socket(srv->http, srv->listener);
        srv->listener = NULL;
    }
    /* 2. Cancel what is in flight.  Each wait_for ends ECANCELED now (its
     * job is cancelled too) and on_done() answers 503 from the loop, later:
     * never inside this call, so the list does not change under us. */
    for (struct request *r = srv->inflight; r; r = r->next)
        evexec_future_cancel(r->wait);
    /* 3. The loop runs on until the replies are written; a client that
     * stopped reading cannot hold us longer than this. */
    struct timeval grace = { GRACE_MS / 1000, (GRACE_MS % 1000) * 1000 };
    evtimer_add(srv->grace, &grace);
    maybe_finish(srv);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct server *srv = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (!path)
        path = "";
    int job = strncmp(path, "/files/", 7) == 0 || strcmp(path, "/db") == 0 ||
              strcmp(path, "/slow") == 0;
    if (srv->stopping)          /* a keep-alive connection asks again */
        reply_text(srv, req, 503, "shutting down\n");
    else if (evhttp_request_get_command(req) != EVHTTP_REQ_GET)
        reply_text(srv, req, 405, "GET only\n");
    else if (job && overloaded(srv))    /* shed load before making work */
        reply_text(srv, req, 503, "overloaded\n");
    else if (strncmp(path, "/files/", 7) == 0)
        serve_file(srv, req, path + 7);
    else if (strcmp(path, "/db") == 0)
        serve_db(srv, req);
    else if (strcmp(path, "/slow") == 0)
        serve_slow(srv, req);
    else if (strcmp(path, "/stats") == 0)
        serve_stats(srv, req);
    else if (strcmp(path, "/quit") == 0) {
        reply_text(srv, req, 200, "bye\n");    /* first: it counts as unflushed */
        shutdown_begin(srv);
    } else
        reply_text(srv, req, 404, "not found\n");
}

/* SIGINT or SIGTERM begins the shutdown; a second one, or the end of the
 * grace period (EV_TIMEOUT), ends the loop without waiting any more. */
static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    (void)fd;
    if (srv->stopping || (what & EV_TIMEOUT))
        event_base_loopexit(srv->base, NULL);
    shutdown_begin(srv);
}

/* At start, before the loop and the workers: a few rows to look up. */
static int make_db(const char *path)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open(path, &db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db,
                          "CREATE TABLE kv(key TEXT PRIMARY KEY, value TEXT);"
                          "INSERT INTO kv VALUES ('alpha', 'the first letter'),"
                          " ('omega', 'the last letter'),"
                          " ('evexec', 'blocking work off the loop');",
                          NULL, NULL, NULL);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

static int usage(void)
{
    fprintf(stderr, "usage: http-server [--port N] [--deadline-ms MS] [--threads N]"
                    " [--queue-limit N] DIR\n");
    return 2;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "port", required_argument, NULL, 'p' },
        { "deadline-ms", required_argument, NULL, 'd' },
        { "threads", required_argument, NULL, 't' },
        { "queue-limit", required_argument, NULL, 'q' },
        { NULL, 0, NULL, 0 },
    };
    struct server srv = { .queue_limit = 64 };
    unsigned long port = 0, deadline_ms = 2000, threads = 4;
    int c, rc = 1;
    while ((c = getopt_long(argc, argv, "p:d:t:q:", longopts, NULL)) != -1) {
        char *end;
        unsigned long v = strtoul(optarg ? optarg : "", &end, 10);
        if (c == '?' || !optarg || !*optarg || *end)
            return usage();
        if (c == 'p' && v <= 65535) port = v;
        else if (c == 'd' && v > 0 && v <= 3600000) deadline_ms = v;
        else if (c == 't' && v > 0 && v <= 1024) threads = v;
        else if (c == 'q' && v > 0) srv.queue_limit = v;
        else return usage();
    }
    if (optind != argc - 1)
        return usage();
    srv.dir = argv[optind];
    srv.deadline.tv_sec = (time_t)(deadline_ms / 1000);
    srv.deadline.tv_usec = (suseconds_t)(deadline_ms % 1000) * 1000;
    /* A client that hangs up while we write must not kill us. */
    signal(SIGPIPE, SIG_IGN);

    const char *tmp = getenv("TMPDIR");
    snprintf(srv.tmpdir, sizeof srv.tmpdir, "%s/http-server-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(srv.tmpdir)) {
        perror("http-server: mkdtemp");
        return 1;
    }
    snprintf(srv.dbpath, sizeof srv.dbpath, "%s/kv.db", srv.tmpdir);

    /* The pool: one SQLite connection per worker (thread_start/thread_exit,
     * fields that EVEXEC_POOL_CONFIG_INIT's size makes visible), and a
     * bounded queue in each lane. */
    struct evexec_pool_config cfg = EVEXEC_POOL_CONFIG_INIT;
    cfg.max_threads = (unsigned)threads;
    cfg.max_queued = srv.queue_limit;
    cfg.thread_name = "http";
    cfg.thread_start = open_db;
    cfg.thread_exit = close_db;
    cfg.thread_init_arg = srv.dbpath;

    if (make_db(srv.dbpath) != 0)
        fprintf(stderr, "http-server: cannot make the database %s\n", srv.dbpath);
    else if (!(srv.base = event_base_new()) || !(srv.pool = evexec_pool_new(&cfg)) ||
             !(srv.ex = evexec_new(srv.base, srv.pool)) ||
             !(srv.http = evhttp_new(srv.base)) ||
             !(srv.sigint = evsignal_new(srv.base, SIGINT, on_stop, &srv)) ||
             !(srv.sigterm = evsignal_new(srv.base, SIGTERM, on_stop, &srv)) ||
             !(srv.grace = evtimer_new(srv.base, on_stop, &srv)))
        fprintf(stderr, "http-server: %s\n", evexec_strerror(errno ? errno : ENOMEM));
    else if (!(srv.listener = evhttp_bind_socket_with_handle(srv.http, "127.0.0.1",
                                                              (ev_uint16_t)port)))
        fprintf(stderr, "http-server: cannot listen on 127.0.0.1:%lu\n", port);
    else {
        struct sockaddr_in sin;
        socklen_t len = sizeof sin;
        getsockname(evhttp_bound_socket_get_fd(srv.listener), (struct sockaddr *)&sin, &len);
        evhttp_set_gencb(srv.http, on_request, &srv);
        evsignal_add(srv.sigint, NULL);
        evsignal_add(srv.sigterm, NULL);
        printf("listening on 127.0.0.1:%u\n", (unsigned)ntohs(sin.sin_port));
        fflush(stdout);
        rc = event_base_dispatch(srv.base) == 0 ? 0 : 1;
    }

    /* Steps 4 to 7 (steps 1 to 3 ran in shutdown_begin()). */
    evexec_free(srv.ex);                /* 4. (NULL is ignored) */
    if (srv.http)
        evhttp_free(srv.http);          /* 5. */
    evexec_pool_free(srv.pool);         /* 6. */
    struct event *evs[] = { srv.sigint, srv.sigterm, srv.grace };
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i])
            event_free(evs[i]);
    if (srv.base)
        event_base_free(srv.base);      /* 7. */
    unlink(srv.dbpath);
    rmdir(srv.tmpdir);
    return rc;
}
