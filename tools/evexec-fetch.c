/*
 * evexec-fetch -- the asyncio tutorial's comparison, in C: fetch N URLs
 *
 *  1. one after another with a blocking HTTP client;
 *  2. with that same blocking client on the evexec pool, all at once,
 *     gathered (run_in_executor + gather);
 *  3. with libevent's non-blocking evhttp client, each request wrapped in a
 *     hand-made evexec future (evexec_future_new, set from the evhttp
 *     callback), waited for together;
 *
 * and print one line per way with the time it took.
 *
 * With no URL, it starts its own evhttp server on 127.0.0.1 (an ephemeral
 * port, in a thread of its own) that answers each request after --delay-ms
 * on a timer of its own, so concurrent requests are answered concurrently,
 * and fetches --count URLs from it: way 1 takes the sum of the delays, ways
 * 2 and 3 about the longest one.
 *
 * It is a local demo: it fetches only http:// URLs whose host is
 * 127.0.0.1, [::1] or localhost (taken as 127.0.0.1, never looked up), and
 * refuses any other before sending anything.
 *
 * The blocking client is libcurl's easy interface when built with it
 * (HAVE_LIBCURL), else a small HTTP/1.0 client over a blocking socket,
 * which --client socket also selects.
 *
 * Exit status: 0 when every fetch of every way answered 200, 1 when some
 * did not, 64 for a usage error or a refused URL.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#ifdef HAVE_LIBCURL
#include <curl/curl.h>
#endif

#include "evexec.h"

#define EX_USAGE 64
#define IO_TIMEOUT_S 30

/* ---- URLs ------------------------------------------------------------------ */

struct target {
    char *url;                  /* as given */
    char addr[INET6_ADDRSTRLEN];/* numeric address to connect to */
    int family;
    int port;
    char *path;                 /* path and query, "/" at least */
    char hostport[80];          /* the Host header */
};

/* One fetch's outcome, written by whichever way ran it. */
struct fetch {
    const struct target *t;
    int error;                  /* 0 or an errno value */
    int status;                 /* HTTP status */
    size_t bytes;               /* body bytes */
};

/* Parse and check a URL: http, and a loopback host only.  Returns 0, or -1
 * after saying why. */
static int target_parse(struct target *t, const char *url)
{
    struct evhttp_uri *u = evhttp_uri_parse(url);
    const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
    const char *host = u ? evhttp_uri_get_host(u) : NULL;
    int rc = -1;

    memset(t, 0, sizeof *t);
    if (!u || !scheme || strcmp(scheme, "http") != 0 || !host) {
        fprintf(stderr, "evexec-fetch: %s: refused: only http://HOST[:PORT]/PATH URLs\n", url);
        goto out;
    }
    if (strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0) {
        t->family = AF_INET;
        strcpy(t->addr, "127.0.0.1");
    } else if (strcmp(host, "[::1]") == 0) {
        t->family = AF_INET6;
        strcpy(t->addr, "::1");
    } else {
        fprintf(stderr,
                "evexec-fetch: %s: refused: a local demo fetches only from "
                "127.0.0.1, [::1] or localhost\n", url);
        goto out;
    }
    t->port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : 80;
    const char *path = evhttp_uri_get_path(u), *query = evhttp_uri_get_query(u);
    if (!path || !*path)
        path = "/";
    if (asprintf(&t->path, "%s%s%s", path, query ? "?" : "", query ? query : "") < 0 ||
        !(t->url = strdup(url)))
        goto out;
    snprintf(t->hostport, sizeof t->hostport, "%s:%d", host, t->port);
    rc = 0;
out:
    if (u)
        evhttp_uri_free(u);
    return rc;
}

static void targets_free(struct target *ts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(ts[i].url);
        free(ts[i].path);
    }
    free(ts);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- the blocking clients --------------------------------------------------- */

/* A small HTTP/1.0 GET over a blocking socket. */
static int socket_get(struct fetch *ft)
{
    const struct target *t = ft->t;
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    if (t->family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)t->port);
        inet_pton(AF_INET, t->addr, &sin->sin_addr);
        len = sizeof *sin;
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)t->port);
        inet_pton(AF_INET6, t->addr, &sin6->sin6_addr);
        len = sizeof *sin6;
    }
    int s = socket(t->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return errno;
    struct timeval tv = { IO_TIMEOUT_S, 0 };
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

    int err = 0;
    char req[1024], buf[16384];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: evexec-fetch\r\n"
                     "Connection: close\r\n\r\n", t->path, t->hostport);
    if (n < 0 || (size_t)n >= sizeof req) {
        err = ENAMETOOLONG;
        goto out;
    }
    if (connect(s, (struct sockaddr *)&ss, len) != 0) {
        err = errno;
        goto out;
    }
    for (int off = 0; off < n;) {
        ssize_t w = send(s, req + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (w < 0 && errno != EINTR) {
            err = errno;
            goto out;
        }
        off += w > 0 ? (int)w : 0;
    }
    /* Keep the head (status line and headers) to parse; count the rest. */
    size_t head = 0, total = 0, body_at = 0;
    for (;;) {
        ssize_t r = recv(s, buf + head, sizeof buf - 1 - head, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            err = errno == EAGAIN ? ETIMEDOUT : errno;
            goto out;
        }
        if (r == 0)
            break;
        total += (size_t)r;
        if (!body_at) {
            head += (size_t)r;
            buf[head] = '\0';
            char *end = strstr(buf, "\r\n\r\n");
            if (end)
                body_at = (size_t)(end - buf) + 4;
            else if (head == sizeof buf - 1)
                break;                  /* headers too long */
        } else {
            head = 0;                   /* body: only counted */
        }
    }
    if (!body_at || sscanf(buf, "HTTP/%*d.%*d %d", &ft->status) != 1) {
        err = EPROTO;
        goto out;
    }
    ft->bytes = total - body_at;
out:
    close(s);
    return err;
}

#ifdef HAVE_LIBCURL
static size_t curl_count(char *data, size_t size, size_t n, void *arg)
{
    (void)data;
    ((struct fetch *)arg)->bytes += size * n;
    return size * n;
}

/* libcurl's easy interface: one handle per fetch, as a legacy blocking
 * library would be used. */
static int curl_get(struct fetch *ft)
{
    const struct target *t = ft->t;
    CURL *c = curl_easy_init();
    if (!c)
        return ENOMEM;
    /* "localhost" is taken as 127.0.0.1 here too, never looked up. */
    char pin[128];
    snprintf(pin, sizeof pin, "localhost:%d:127.0.0.1", t->port);
    struct curl_slist *resolve = curl_slist_append(NULL, pin);

    curl_easy_setopt(c, CURLOPT_URL, t->url);
    curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");      /* no proxy from the environment */
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTP);
#endif
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);       /* threads */
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)IO_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "evexec-fetch");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_count);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, ft);

    CURLcode rc = curl_easy_perform(c);
    int err = 0;
    long status = 0;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        ft->status = (int)status;
    } else {
        err = rc == CURLE_COULDNT_CONNECT       ? ECONNREFUSED
              : rc == CURLE_OPERATION_TIMEDOUT ? ETIMEDOUT
                                               : EPROTO;
    }
    curl_easy_cleanup(c);
    curl_slist_free_all(resolve);
    return err;
}
#endif

static int use_curl;

static int blocking_get(struct fetch *ft)
{
#ifdef HAVE_LIBCURL
    if (use_curl)
        return curl_get(ft);
#endif
    return socket_get(ft);
}

/* ---- way 1: one after another ---------------------------------------------------- */

static void way_sequential(struct fetch *fts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fts[i].error = blocking_get(&fts[i]);
}

/* ---- way 2: the blocking client on the pool, gathered ----------------------------- */

/* The fetch is the job's argument: its outcome is read after the gather,
 * which the job's completion happens before. */
static int fetch_job(struct evexec_job *job, void *arg)
{
    struct fetch *ft = arg;
    (void)job;
    return ft->error = blocking_get(ft);
}

/* Run the loop until the gather of fs[0..n) has ended; drops the inputs. */
static int gather_all(struct evexec *ex, struct evexec_future **fs, size_t n)
{
    struct evexec_future *g = evexec_gather_opts(ex, fs, n, EVEXEC_GATHER_ALL);
    int rc = g ? evexec_run_until_complete(ex, g) : errno;
    evexec_future_unref(g);
    for (size_t i = 0; i < n; i++)
        evexec_future_unref(fs[i]);
    return rc;
}

static int way_pool(struct evexec *ex, struct fetch *fts, size_t n)
{
    struct evexec_future **fs = calloc(n, sizeof *fs);
    if (!fs)
        return ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!(fs[i] = evexec_run(ex, fetch_job, &fts[i]))) {
            int err = errno;
            gather_all(ex, fs, i);
            free(fs);
            return err;
        }
    }
    int rc = gather_all(ex, fs, n);
    free(fs);
    return rc;
}

/* ---- way 3: evhttp, each request a hand-made future -------------------------------- */

struct evhttp_fetch {
    struct fetch *ft;
    struct evexec_future *f;
    struct evhttp_connection *conn;
};

static void on_response(struct evhttp_request *req, void *arg)
{
    struct evhttp_fetch *h = arg;
    int status = req ? evhttp_request_get_response_code(req) : 0;
    if (status == 0) {
        h->ft->error = ECONNREFUSED;
        evexec_future_set_error(h->f, h->ft->error);
        return;
    }
    h->ft->status = status;
    h->ft->bytes = evbuffer_get_length(evhttp_request_get_input_buffer(req));
    evexec_future_set_result(h->f, h->ft, NULL);
}

/* Send one request; its future ends from on_response.  0 or an errno. */
static int evhttp_start(struct evexec *ex, struct evhttp_fetch *h, struct fetch *ft)
{
    const struct target *t = ft->t;
    h->ft = ft;
    if (!(h->f = evexec_future_new(ex)))
        return errno;
    h->conn = evhttp_connection_base_new(evexec_get_base(ex), NULL, t->addr,
                                         (unsigned short)t->port);
    struct evhttp_request *req = h->conn ? evhttp_request_new(on_response, h) : NULL;
    if (!req)
        return ENOMEM;
    evhttp_connection_set_timeout(h->conn, IO_TIMEOUT_S);
    struct evkeyvalq *hdr = evhttp_request_get_output_headers(req);
    evhttp_add_header(hdr, "Host", t->hostport);
    evhttp_add_header(hdr, "User-Agent", "evexec-fetch");
    /* On failure evhttp has freed the request. */
    return evhttp_make_request(h->conn, req, EVHTTP_REQ_GET, t->path) == 0 ? 0 : EIO;
}

static int way_evhttp(struct evexec *ex, struct fetch *fts, size_t n)
{
    struct evhttp_fetch *hs = calloc(n, sizeof *hs);
    struct evexec_future **fs = calloc(n, sizeof *fs);
    int rc = hs && fs ? 0 : ENOMEM;
    size_t made = 0;
    while (rc == 0 && made < n) {
        rc = evhttp_start(ex, &hs[made], &fts[made]);
        fs[made] = hs[made].f;
        made++;
    }
    if (rc == 0) {
        rc = gather_all(ex, fs, n);
    } else {
        /* Requests already sent are dropped with their connections. */
        for (size_t i = 0; i < made; i++)
            evexec_future_unref(fs[i]);
    }
    for (size_t i = 0; i < made; i++)
        if (hs[i].conn)
            evhttp_connection_free(hs[i].conn);
    free(hs);
    free(fs);
    return rc;
}

/* ---- the own server ------------------------------------------------------------------ */

struct server {
    struct event_base *base;
    struct evhttp *http;
    struct event *stop;
    struct timeval delay;
    int port;
    int stop_fds[2];            /* written by main to stop the loop */
    pthread_t thread;
};

struct pending {
    struct evhttp_request *req;
    struct event *timer;
};

static void pending_free(struct pending *p)
{
    event_free(p->timer);
    free(p);
}

static void on_client_gone(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    pending_free(arg);
}

static void answer(evutil_socket_t fd, short what, void *arg)
{
    struct pending *p = arg;
    (void)fd;
    (void)what;
    struct evbuffer *body = evbuffer_new();
    evhttp_connection_set_closecb(evhttp_request_get_connection(p->req), NULL, NULL);
    if (body)
        evbuffer_add_printf(body, "hello from evexec-fetch: %s\n",
                            evhttp_request_get_uri(p->req));
    evhttp_send_reply(p->req, body ? 200 : 500, body ? "OK" : "Error", body);
    if (body)
        evbuffer_free(body);
    pending_free(p);
}

/* Every request waits for its own timer: the answers are concurrent. */
static void on_request(struct evhttp_request *req, void *arg)
{
    struct server *s = arg;
    struct pending *p = calloc(1, sizeof *p);
    if (p)
        p->timer = evtimer_new(s->base, answer, p);
    if (!p || !p->timer) {
        free(p);
        evhttp_send_error(req, 500, NULL);
        return;
    }
    p->req = req;
    evhttp_connection_set_closecb(evhttp_request_get_connection(req), on_client_gone, p);
    evtimer_add(p->timer, &s->delay);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

static void *server_main(void *arg)
{
    struct server *s = arg;
    event_base_dispatch(s->base);
    return NULL;
}

/* Start the server on 127.0.0.1, an ephemeral port.  0 or an errno. */
static int server_start(struct server *s, long delay_ms)
{
    memset(s, 0, sizeof *s);
    s->delay.tv_sec = delay_ms / 1000;
    s->delay.tv_usec = (delay_ms % 1000) * 1000;
    if (pipe2(s->stop_fds, O_CLOEXEC) != 0)
        return errno;
    s->base = event_base_new();
    s->http = s->base ? evhttp_new(s->base) : NULL;
    if (!s->http)
        return ENOMEM;
    struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(s->http, "127.0.0.1", 0);
    if (!bound)
        return EADDRNOTAVAIL;
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&sin, &len) != 0)
        return errno;
    s->port = ntohs(sin.sin_port);
    evhttp_set_gencb(s->http, on_request, s);
    s->stop = event_new(s->base, s->stop_fds[0], EV_READ, on_stop, s->base);
    if (!s->stop || event_add(s->stop, NULL) != 0)
        return ENOMEM;
    int rc = pthread_create(&s->thread, NULL, server_main, s);
    return rc;
}

static void server_stop(struct server *s)
{
    char c = 0;
    if (write(s->stop_fds[1], &c, 1) != 1)
        perror("evexec-fetch: stopping the server");
    pthread_join(s->thread, NULL);
    evhttp_free(s->http);
    event_free(s->stop);
    event_base_free(s->base);
    close(s->stop_fds[0]);
    close(s->stop_fds[1]);
}

/* ---- main ------------------------------------------------------------------------------ */

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: evexec-fetch [OPTIONS] [URL...]\n"
            "Fetch URLs three ways and print how long each took:\n"
            "  one after another with a blocking HTTP client;\n"
            "  that blocking client on an evexec pool, all at once, gathered;\n"
            "  libevent's non-blocking evhttp client in evexec futures.\n"
            "\n"
            "A local demo: only http:// URLs on 127.0.0.1, [::1] or localhost are\n"
            "fetched; any other host is refused.  With no URL it starts its own\n"
            "HTTP server on 127.0.0.1 that answers after --delay-ms, and fetches\n"
            "--count URLs from it.\n"
            "\n"
            "  -c, --count N              URLs from the own server (default 10)\n"
            "  -d, --delay-ms MS          the own server's delay (default 200)\n"
            "  -C, --client curl|socket   the blocking client (default: %s)\n"
            "  -j, --jobs N               pool threads (default: one per URL, at most 64)\n"
            "  -h, --help                 show this help\n"
            "\n"
            "Exit status: 0 when every fetch answered 200, 1 when some did not,\n"
            "64 for a usage error or a refused URL.\n",
#ifdef HAVE_LIBCURL
            "curl"
#else
            "socket; built without libcurl"
#endif
    );
}

static long number(const char *opt, const char *s, long lo, long hi)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end || v < lo || v > hi) {
        fprintf(stderr, "evexec-fetch: %s: a number from %ld to %ld\n", opt, lo, hi);
        exit(EX_USAGE);
    }
    return v;
}

/* Print a way's line; returns 1 if a fetch failed. */
static int report(const char *way, const struct fetch *fts, size_t n, double ms)
{
    size_t ok = 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (fts[i].error == 0 && fts[i].status == 200)
            ok++;
        bytes += fts[i].bytes;
    }
    printf("%-40s %3zu/%zu ok %9.1f ms  (%zu bytes)\n", way, ok, n, ms, bytes);
    for (size_t i = 0; i < n; i++) {
        if (fts[i].error)
            fprintf(stderr, "  %s: %s\n", fts[i].t->url, evexec_strerror(fts[i].error));
        else if (fts[i].status != 200)
            fprintf(stderr, "  %s: HTTP status %d\n", fts[i].t->url, fts[i].status);
    }
    fflush(stdout);
    return ok != n;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "count", required_argument, NULL, 'c' },
        { "delay-ms", required_argument, NULL, 'd' },
        { "client", required_argument, NULL, 'C' },
        { "jobs", required_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    long count = 10, delay_ms = 200, jobs = 0;
#ifdef HAVE_LIBCURL
    use_curl = 1;
#endif
    int c;
    while ((c = getopt_long(argc, argv, "c:d:C:j:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            count = number("--count", optarg, 1, 1000);
            break;
        case 'd':
            delay_ms = number("--delay-ms", optarg, 0, 60000);
            break;
        case 'j':
            jobs = number("--jobs", optarg, 1, 1024);
            break;
        case 'C':
            if (strcmp(optarg, "socket") == 0) {
                use_curl = 0;
            } else if (strcmp(optarg, "curl") == 0) {
#ifndef HAVE_LIBCURL
                fprintf(stderr, "evexec-fetch: built without libcurl\n");
                return EX_USAGE;
#endif
            } else {
                fprintf(stderr, "evexec-fetch: --client: curl or socket\n");
                return EX_USAGE;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EX_USAGE;
        }
    }

    /* Every URL is checked before anything is sent. */
    size_t n = argc > optind ? (size_t)(argc - optind) : (size_t)count;
    struct target *ts = calloc(n, sizeof *ts);
    if (!ts)
        return 1;
    struct server srv;
    int own = argc == optind;
    for (size_t i = 0; i < n && !own; i++) {
        if (target_parse(&ts[i], argv[optind + i]) != 0) {
            targets_free(ts, n);
            return EX_USAGE;
        }
    }
    if (own) {
        int err = server_start(&srv, delay_ms);
        if (err) {
            fprintf(stderr, "evexec-fetch: own server: %s\n", evexec_strerror(err));
            return 1;
        }
        for (size_t i = 0; i < n; i++) {
            char url[64];
            snprintf(url, sizeof url, "http://127.0.0.1:%d/item/%zu", srv.port, i + 1);
            if (target_parse(&ts[i], url) != 0)
                return 1;
        }
        printf("own server http://127.0.0.1:%d/, answering after %ld ms: %zu URLs, "
               "%.0f ms of delays in all, %ld ms the longest\n",
               srv.port, delay_ms, n, (double)delay_ms * (double)n, delay_ms);
    }

#ifdef HAVE_LIBCURL
    if (use_curl && curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "evexec-fetch: curl_global_init failed\n");
        return 1;
    }
    const char *client = use_curl ? "curl" : "socket";
#else
    const char *client = "socket";
#endif

    struct evexec_pool_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.max_threads = jobs ? (unsigned)jobs : (unsigned)(n < 64 ? n : 64);
    cfg.thread_name = "fetch";
    struct event_base *base = event_base_new();
    struct evexec_pool *pool = base ? evexec_pool_new(&cfg) : NULL;
    struct evexec *ex = pool ? evexec_new(base, pool) : NULL;
    struct fetch *fts = calloc(n, sizeof *fts);
    if (!ex || !fts) {
        fprintf(stderr, "evexec-fetch: %s\n", evexec_strerror(errno));
        return 1;
    }

    char way[64];
    int failed = 0;
    for (int w = 1; w <= 3; w++) {
        for (size_t i = 0; i < n; i++) {
            memset(&fts[i], 0, sizeof fts[i]);
            fts[i].t = &ts[i];
        }
        double t0 = now_ms();
        int err = 0;
        if (w == 1) {
            snprintf(way, sizeof way, "one after another (%s)", client);
            way_sequential(fts, n);
        } else if (w == 2) {
            snprintf(way, sizeof way, "on the pool, gathered (%s)", client);
            err = way_pool(ex, fts, n);
        } else {
            snprintf(way, sizeof way, "evhttp, non-blocking, in futures");
            err = way_evhttp(ex, fts, n);
        }
        double ms = now_ms() - t0;
        if (err) {
            fprintf(stderr, "evexec-fetch: %s: %s\n", way, evexec_strerror(err));
            failed = 1;
        }
        failed |= report(way, fts, n, ms);
    }

    evexec_free(ex);
    evexec_pool_free(pool);
    event_base_free(base);
    if (own)
        server_stop(&srv);
#ifdef HAVE_LIBCURL
    if (use_curl)
        curl_global_cleanup();
#endif
    targets_free(ts, n);
    free(fts);
    return failed;
}
