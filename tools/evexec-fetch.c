/*
 * evexec-fetch -- the asyncio tutorial's comparison, in C: fetch N URLs
 *
 *  1. one after another with a blocking HTTP client;
 *  2. with that same blocking client on the evexec pool, all at once,
 *     gathered (run_in_executor + gather);
 *  3. with libevent's non-blocking evhttp client, each request wrapped in a
 *     hand-made evexec future (evexec_future_new, set from the evhttp
 *     callback) bounded by evexec_wait_for, waited for together;
 *
 * and print one line per way with the time it took.
 *
 * It fetches the http:// URLs it is given (and https:// ones when built
 * with libcurl): a host name, an IPv4 address or an IPv6 address in
 * brackets, a port (default 80, or 443 for https), a path and a query.
 * Every URL is checked before anything is sent.  Host names are looked up
 * once, before the three ways, with evexec_getaddrinfo() on the pool; the
 * socket client and the evhttp way connect to those addresses, trying
 * them in order, and libcurl is handed them too, so it looks nothing up
 * itself.  Redirects are not followed, and any status other than 200 is
 * a failure.  Proxies from the environment are not used.  Each request
 * has --timeout seconds in all (connecting, sending, the whole answer);
 * a body is only counted and discarded, and one longer than --max-bytes
 * is a failure.  Each failure is named per URL on stderr.
 *
 * With no URL, it starts its own evhttp server on 127.0.0.1 (an ephemeral
 * port, in a thread of its own) that answers each request after --delay-ms
 * on a timer of its own, so concurrent requests are answered concurrently,
 * and fetches --count URLs from it: way 1 takes the sum of the delays, ways
 * 2 and 3 about the longest one.  --serve runs only that server (on
 * 127.0.0.1, and on [::1] with the same port where there is IPv6
 * loopback) until SIGINT or SIGTERM, for other clients and the tests.  It
 * answers "/" and "/item/..." with a line of text, "/status/N" with status
 * N, "/bytes/N" with N bytes, "/delay/MS" after MS instead of --delay-ms,
 * and anything else with 404.
 *
 * The blocking client is libcurl's easy interface when built with it
 * (HAVE_LIBCURL), else a small HTTP/1.0 client over a blocking socket,
 * which --client socket also selects.  https needs libcurl: without it an
 * https URL is a usage error, and the evhttp way (which speaks only http)
 * skips https URLs and says so.
 *
 * Exit status: 0 when every fetch of every way answered 200, 1 when some
 * did not (a failed name lookup included), 64 for a usage error or a
 * refused URL.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
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
#define IO_TIMEOUT_S 30                         /* default --timeout */
#define MAX_BYTES_DEFAULT (1024L * 1024 * 1024) /* default --max-bytes */
#define SERVE_MAX_BYTES (64L * 1024 * 1024)     /* the own server's /bytes/N */

/* ---- URLs ------------------------------------------------------------------ */

struct target {
    char *url;                  /* as given */
    char *host;                 /* to look up: an IPv6 address without brackets */
    int https;
    int port;
    char *path;                 /* path and query, "/" at least */
    char *hostport;             /* the Host header */
    struct addrinfo *ai;        /* the addresses, when this target owns them */
    const struct addrinfo *addrs; /* the addresses (maybe another target's) */
    int lookup_error;           /* 0 or getaddrinfo's error */
};

/* One fetch's outcome, written by whichever way ran it. */
struct fetch {
    const struct target *t;
    int error;                  /* 0, an errno value or an EAI code */
    int status;                 /* HTTP status */
    int skipped;                /* not fetched by this way (https in evhttp) */
    size_t bytes;               /* body bytes */
    char detail[256];           /* the client's own words, when it has them */
};

/* Settings every way reads. */
static struct timeval timeout = { IO_TIMEOUT_S, 0 };
static long max_bytes = MAX_BYTES_DEFAULT;
static int use_curl;

/* Parse and check a URL.  Returns 0, or -1 after saying why. */
static int target_parse(struct target *t, const char *url)
{
    struct evhttp_uri *u = evhttp_uri_parse(url);
    const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
    const char *host = u ? evhttp_uri_get_host(u) : NULL;
    int rc = -1;

    memset(t, 0, sizeof *t);
    if (!u || !scheme || !host || !*host ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        fprintf(stderr, "evexec-fetch: %s: refused: not an http://HOST[:PORT]/PATH "
                        "or https:// URL\n", url);
        goto out;
    }
    t->https = strcmp(scheme, "https") == 0;
#ifndef HAVE_LIBCURL
    if (t->https) {
        fprintf(stderr, "evexec-fetch: %s: refused: https needs libcurl, and this "
                        "build has none\n", url);
        goto out;
    }
#else
    if (t->https && !use_curl) {
        fprintf(stderr, "evexec-fetch: %s: refused: https needs --client curl\n", url);
        goto out;
    }
#endif
    int port = evhttp_uri_get_port(u);
    if (port == 0 || port > 65535) {
        fprintf(stderr, "evexec-fetch: %s: refused: port %d\n", url, port);
        goto out;
    }
    t->port = port > 0 ? port : t->https ? 443 : 80;
    size_t hl = strlen(host);
    int bracketed = host[0] == '[' && hl > 2 && host[hl - 1] == ']';
    const char *path = evhttp_uri_get_path(u), *query = evhttp_uri_get_query(u);
    if (!path || !*path)
        path = "/";
    if (!(t->host = bracketed ? strndup(host + 1, hl - 2) : strdup(host)) ||
        asprintf(&t->path, "%s%s%s", path, query ? "?" : "", query ? query : "") < 0 ||
        asprintf(&t->hostport, "%s:%d", host, t->port) < 0 || !(t->url = strdup(url))) {
        t->path = t->hostport = NULL;
        fprintf(stderr, "evexec-fetch: %s\n", evexec_strerror(ENOMEM));
        goto out;
    }
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
        free(ts[i].host);
        free(ts[i].path);
        free(ts[i].hostport);
        if (ts[i].ai)
            freeaddrinfo(ts[i].ai);
    }
    free(ts);
}

/* Look every distinct host up once, all at once on the pool.  0, or an
 * errno value when the lookups could not be started; a failed lookup is
 * kept in its targets' lookup_error. */
static int resolve_all(struct evexec *ex, struct target *ts, size_t n)
{
    struct evexec_future **fs = calloc(n, sizeof *fs);
    size_t *owner = calloc(n, sizeof *owner);   /* the target that looks up */
    struct addrinfo hints;
    int err = fs && owner ? 0 : ENOMEM;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    for (size_t i = 0; i < n && !err; i++) {
        owner[i] = i;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(ts[j].host, ts[i].host) == 0) {
                owner[i] = j;
                break;
            }
        }
        if (owner[i] == i && !(fs[i] = evexec_getaddrinfo(ex, ts[i].host, NULL, &hints)))
            err = errno;
    }
    size_t k = 0;                               /* the lookups, packed */
    struct evexec_future **live = err ? NULL : calloc(n, sizeof *live);
    for (size_t i = 0; live && i < n; i++)
        if (fs[i])
            live[k++] = fs[i];
    struct evexec_future *g = live ? evexec_gather_opts(ex, live, k, EVEXEC_GATHER_ALL) : NULL;
    if (!err && !live)
        err = ENOMEM;
    if (!err && (!g || evexec_run_until_complete(ex, g) != 0))
        err = g ? EIO : errno;
    for (size_t i = 0; i < n && !err; i++) {
        if (owner[i] == i) {
            ts[i].lookup_error = evexec_future_error(fs[i]);
            ts[i].ai = ts[i].lookup_error ? NULL : evexec_future_take_result(fs[i]);
        }
        ts[i].lookup_error = ts[owner[i]].lookup_error;
        ts[i].addrs = ts[owner[i]].ai;
    }
    evexec_future_unref(g);
    for (size_t i = 0; fs && i < n; i++)
        evexec_future_unref(fs[i]);
    free(live);
    free(fs);
    free(owner);
    return err;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- the blocking clients --------------------------------------------------- */

/* Set the socket's send and receive timeouts to what is left until
 * deadline (ms, now_ms()'s clock).  0, or ETIMEDOUT when nothing is left. */
static int socket_time_left(int s, double deadline)
{
    double left = deadline - now_ms();
    if (left <= 0)
        return ETIMEDOUT;
    long ms = (long)left;
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
    if (tv.tv_sec == 0 && tv.tv_usec == 0)
        tv.tv_usec = 1;                         /* 0 would mean no timeout */
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return 0;
}

/* A timed-out blocking call says EAGAIN (connect: EINPROGRESS). */
static int socket_error(int e)
{
    return e == EAGAIN || e == EWOULDBLOCK || e == EINPROGRESS ? ETIMEDOUT : e;
}

/* Connect to the first of the target's addresses that answers.  The socket,
 * or -1 with *err set (the last address's error). */
static int socket_connect(const struct target *t, double deadline, int *err)
{
    *err = EADDRNOTAVAIL;
    for (const struct addrinfo *a = t->addrs; a; a = a->ai_next) {
        int s = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0) {
            *err = errno;
            continue;
        }
        if ((*err = socket_time_left(s, deadline)) != 0) {
            close(s);
            return -1;
        }
        /* The lookup was of the host alone: the port is the URL's. */
        struct sockaddr_storage ss;
        memcpy(&ss, a->ai_addr, a->ai_addrlen);
        if (a->ai_family == AF_INET6)
            ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)t->port);
        else
            ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)t->port);
        if (connect(s, (struct sockaddr *)&ss, a->ai_addrlen) == 0)
            return s;
        *err = socket_error(errno);
        close(s);
        if (*err == ETIMEDOUT)
            return -1;
    }
    return -1;
}

/* A small HTTP/1.0 GET over a blocking socket. */
static int socket_get(struct fetch *ft)
{
    const struct target *t = ft->t;
    double deadline = now_ms() + timeout.tv_sec * 1e3 + timeout.tv_usec / 1e3;
    char req[4096], buf[16384];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: evexec-fetch\r\n"
                     "Connection: close\r\n\r\n", t->path, t->hostport);
    if (n < 0 || (size_t)n >= sizeof req)
        return ENAMETOOLONG;
    int err;
    int s = socket_connect(t, deadline, &err);
    if (s < 0)
        return err;
    for (int off = 0; off < n;) {
        if ((err = socket_time_left(s, deadline)) != 0)
            goto out;
        ssize_t w = send(s, req + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (w < 0 && errno != EINTR) {
            err = socket_error(errno);
            goto out;
        }
        off += w > 0 ? (int)w : 0;
    }
    /* Keep the head (status line and headers) to parse; count the rest. */
    size_t head = 0, total = 0, body_at = 0;
    for (;;) {
        if ((err = socket_time_left(s, deadline)) != 0)
            goto out;
        ssize_t r = recv(s, buf + head, sizeof buf - 1 - head, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            err = socket_error(errno);
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
        if (body_at && total - body_at > (size_t)max_bytes) {
            err = EFBIG;
            goto out;
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
    struct fetch *ft = arg;
    (void)data;
    ft->bytes += size * n;
    return ft->bytes > (size_t)max_bytes ? 0 : size * n;  /* 0 stops it */
}

/* libcurl's easy interface: one handle per fetch, as a legacy blocking
 * library would be used. */
static int curl_get(struct fetch *ft)
{
    const struct target *t = ft->t;
    CURL *c = curl_easy_init();
    if (!c)
        return ENOMEM;
    /* The addresses found by the lookup: curl asks no resolver itself.  A
     * numeric host is not looked up by curl anyway. */
    struct curl_slist *resolve = NULL;
    struct in6_addr a6;
    struct in_addr a4;
    if (inet_pton(AF_INET, t->host, &a4) != 1 && inet_pton(AF_INET6, t->host, &a6) != 1) {
        char pin[4096], addr[INET6_ADDRSTRLEN];
        int len = snprintf(pin, sizeof pin, "%s:%d:", t->host, t->port);
        for (const struct addrinfo *a = t->addrs; a && len > 0 && (size_t)len < sizeof pin;
             a = a->ai_next) {
            if (getnameinfo(a->ai_addr, a->ai_addrlen, addr, sizeof addr, NULL, 0,
                            NI_NUMERICHOST) != 0)
                continue;
            len += snprintf(pin + len, sizeof pin - (size_t)len, "%s%s%s%s",
                            pin[len - 1] == ':' ? "" : ",", a->ai_family == AF_INET6 ? "[" : "",
                            addr, a->ai_family == AF_INET6 ? "]" : "");
        }
        if (len <= 0 || (size_t)len >= sizeof pin || !(resolve = curl_slist_append(NULL, pin))) {
            curl_easy_cleanup(c);
            return ENOMEM;
        }
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    long ms = (long)(timeout.tv_sec * 1000 + timeout.tv_usec / 1000);

    curl_easy_setopt(c, CURLOPT_URL, t->url);
    curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");      /* no proxy from the environment */
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);       /* threads */
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, ms > 0 ? ms : 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "evexec-fetch");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
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
              : rc == CURLE_WRITE_ERROR        ? EFBIG
                                               : EPROTO;
        snprintf(ft->detail, sizeof ft->detail, "%s",
                 errbuf[0] ? errbuf : curl_easy_strerror(rc));
        if (err == EFBIG)
            ft->detail[0] = '\0';       /* curl only says its callback stopped */
    }
    curl_easy_cleanup(c);
    curl_slist_free_all(resolve);
    return err;
}
#endif

static int blocking_get(struct fetch *ft)
{
    if (ft->t->lookup_error)
        return ft->t->lookup_error;
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

/* Run the loop until the gather of fs[0..n) has ended; an input that
 * failed and whose fetch says nothing yet (a timeout) gives the fetch its
 * error.  Drops the inputs. */
static int gather_all(struct evexec *ex, struct evexec_future **fs, size_t n,
                      struct fetch *fts)
{
    struct evexec_future *g = evexec_gather_opts(ex, fs, n, EVEXEC_GATHER_ALL);
    int rc = g ? evexec_run_until_complete(ex, g) : errno;
    for (size_t i = 0; rc == 0 && fts && i < n; i++) {
        int err = evexec_gather_error(g, i);
        if (err && !fts[i].error)
            fts[i].error = err;
    }
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
            gather_all(ex, fs, i, NULL);
            free(fs);
            return err;
        }
    }
    int rc = gather_all(ex, fs, n, fts);
    free(fs);
    return rc;
}

/* ---- way 3: evhttp, each request a hand-made future -------------------------------- */

struct evhttp_fetch {
    struct fetch *ft;
    struct evexec *ex;
    struct evexec_future *f;            /* ends from on_response */
    struct evhttp_connection *conn;
    const struct addrinfo *addr;        /* the address being tried */
    struct event *next;                 /* tries the next address */
    int failure;                        /* 1 + evhttp's error, 0 for none */
};

static int evhttp_connect(struct evhttp_fetch *h);

/* evhttp's words for a failed request, as errno values. */
static int evhttp_error(int failure)
{
    switch (failure - 1) {
    case EVREQ_HTTP_TIMEOUT:
        return ETIMEDOUT;
    case EVREQ_HTTP_EOF:
        return ECONNRESET;
    case EVREQ_HTTP_DATA_TOO_LONG:
        return EFBIG;
    case EVREQ_HTTP_REQUEST_CANCEL:
        return ECANCELED;
    case EVREQ_HTTP_BUFFER_ERROR:
        return EIO;
    default:
        return EPROTO;
    }
}

static void on_error(enum evhttp_request_error e, void *arg)
{
    ((struct evhttp_fetch *)arg)->failure = 1 + (int)e;
}

/* Body data as it comes: counted, then evhttp drains it. */
static void on_chunk(struct evhttp_request *req, void *arg)
{
    struct evhttp_fetch *h = arg;
    h->ft->bytes += evbuffer_get_length(evhttp_request_get_input_buffer(req));
}

static void on_response(struct evhttp_request *req, void *arg)
{
    struct evhttp_fetch *h = arg;
    int status = req ? evhttp_request_get_response_code(req) : 0;
    if (status == 0) {
        /* No answer and no error of evhttp's: the connection failed.  The
         * next address is tried once evhttp is done with this one. */
        if (!h->failure && h->addr->ai_next && !evexec_future_done(h->f)) {
            h->addr = h->addr->ai_next;
            event_active(h->next, EV_TIMEOUT, 0);
            return;
        }
        h->ft->error = h->failure ? evhttp_error(h->failure) : ECONNREFUSED;
        evexec_future_set_error(h->f, h->ft->error);
        return;
    }
    h->ft->status = status;
    evexec_future_set_result(h->f, h->ft, NULL);
}

static void on_next_address(evutil_socket_t fd, short what, void *arg)
{
    struct evhttp_fetch *h = arg;
    (void)fd;
    (void)what;
    evhttp_connection_free(h->conn);
    h->conn = NULL;
    int err = evexec_future_done(h->f) ? 0 : evhttp_connect(h);
    if (err) {
        h->ft->error = err;
        evexec_future_set_error(h->f, err);
    }
}

/* Send the request to h->addr; it ends from on_response.  0 or an errno. */
static int evhttp_connect(struct evhttp_fetch *h)
{
    const struct target *t = h->ft->t;
    char addr[INET6_ADDRSTRLEN];
    int gai = getnameinfo(h->addr->ai_addr, h->addr->ai_addrlen, addr, sizeof addr, NULL, 0,
                          NI_NUMERICHOST);
    if (gai)
        return gai == EAI_MEMORY ? ENOMEM : EINVAL;
    h->failure = 0;
    h->conn = evhttp_connection_base_new(evexec_get_base(h->ex), NULL, addr,
                                         (unsigned short)t->port);
    struct evhttp_request *req = h->conn ? evhttp_request_new(on_response, h) : NULL;
    if (!req)
        return ENOMEM;
    evhttp_connection_set_family(h->conn, h->addr->ai_family);
    /* evhttp's own timeout is per read or write; evexec_wait_for bounds
     * the whole request and comes first. */
    struct timeval io = timeout;
    io.tv_sec += 1;
    evhttp_connection_set_timeout_tv(h->conn, &io);
    evhttp_connection_set_max_body_size(h->conn, max_bytes);
    evhttp_request_set_error_cb(req, on_error);
    evhttp_request_set_chunked_cb(req, on_chunk);
    struct evkeyvalq *hdr = evhttp_request_get_output_headers(req);
    evhttp_add_header(hdr, "Host", t->hostport);
    evhttp_add_header(hdr, "User-Agent", "evexec-fetch");
    /* On failure evhttp has freed the request. */
    return evhttp_make_request(h->conn, req, EVHTTP_REQ_GET, t->path) == 0 ? 0 : EIO;
}

/* Start one fetch: a future that ends from on_response, or at once with
 * the lookup's error; *w is it bounded by the timeout.  0 or an errno. */
static int evhttp_start(struct evexec *ex, struct evhttp_fetch *h, struct fetch *ft,
                        struct evexec_future **w)
{
    h->ft = ft;
    h->ex = ex;
    h->addr = ft->t->addrs;
    if (!(h->f = evexec_future_new(ex)))
        return errno;
    int err = ft->t->lookup_error;
    if (!err && !(h->next = evtimer_new(evexec_get_base(ex), on_next_address, h)))
        err = ENOMEM;
    else if (!err)
        err = evhttp_connect(h);
    if (ft->t->lookup_error) {
        ft->error = err;
        evexec_future_set_error(h->f, err);
        err = 0;
    }
    if (!err && !(*w = evexec_wait_for(ex, h->f, &timeout)))
        err = errno;
    return err;
}

static int way_evhttp(struct evexec *ex, struct fetch *fts, size_t n)
{
    struct evhttp_fetch *hs = calloc(n, sizeof *hs);
    struct evexec_future **fs = calloc(n, sizeof *fs);
    int rc = hs && fs ? 0 : ENOMEM;
    size_t made = 0;                    /* fetches started, in fs[0..made) */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (fts[i].t->https) {
            fts[i].skipped = 1;         /* evhttp speaks only http */
            continue;
        }
        rc = evhttp_start(ex, &hs[i], &fts[i], &fs[made]);
        if (fs[made])
            made++;
    }
    if (rc == 0) {
        rc = gather_all(ex, fs, made, NULL);    /* errors come from hs[] below */
    } else {
        /* Requests already sent are dropped with their connections. */
        for (size_t i = 0; i < made; i++)
            evexec_future_unref(fs[i]);
    }
    for (size_t i = 0; hs && i < n; i++) {
        /* A request that ran out of time: its future was cancelled. */
        if (hs[i].f && evexec_future_cancelled(hs[i].f) && !fts[i].error)
            fts[i].error = ETIMEDOUT;
        if (hs[i].conn)
            evhttp_connection_free(hs[i].conn);
        if (hs[i].next)
            event_free(hs[i].next);
        evexec_future_unref(hs[i].f);
    }
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
    int v6;                     /* also listening on [::1] */
    int stop_fds[2];            /* written by main to stop the loop */
    pthread_t thread;
};

struct pending {
    struct evhttp_request *req;
    struct event *timer;
    int status;
    long bytes;                 /* a body of this many bytes, or -1: a line */
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
    int ok = body != NULL;
    evhttp_connection_set_closecb(evhttp_request_get_connection(p->req), NULL, NULL);
    if (ok && p->bytes < 0) {
        ok = evbuffer_add_printf(body, "hello from evexec-fetch: %s\n",
                                 evhttp_request_get_uri(p->req)) > 0;
    } else if (ok) {
        static const char x[4096] = { 0 };
        for (long left = p->bytes; ok && left > 0; left -= (long)sizeof x)
            ok = evbuffer_add(body, x, left < (long)sizeof x ? (size_t)left : sizeof x) == 0;
    }
    if (ok && p->status / 100 == 3)
        evhttp_add_header(evhttp_request_get_output_headers(p->req), "Location", "/");
    evhttp_send_reply(p->req, ok ? p->status : 500, ok ? "Status" : "Error", ok ? body : NULL);
    if (body)
        evbuffer_free(body);
    pending_free(p);
}

/* The number after prefix in path, from lo to hi, or -1. */
static long path_number(const char *path, const char *prefix, long lo, long hi)
{
    size_t n = strlen(prefix);
    if (strncmp(path, prefix, n) != 0 || path[n] < '0' || path[n] > '9')
        return -1;
    char *end;
    long v = strtol(path + n, &end, 10);
    return *end || v < lo || v > hi ? -1 : v;
}

/* Every request waits for its own timer: the answers are concurrent. */
static void on_request(struct evhttp_request *req, void *arg)
{
    struct server *s = arg;
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *path = u && evhttp_uri_get_path(u) ? evhttp_uri_get_path(u) : "/";
    struct timeval delay = s->delay;
    struct pending *p = calloc(1, sizeof *p);
    if (p)
        p->timer = evtimer_new(s->base, answer, p);
    if (!p || !p->timer) {
        if (p)
            free(p);
        evhttp_send_error(req, 500, NULL);
        return;
    }
    long v;
    p->req = req;
    p->status = 200;
    p->bytes = -1;
    if ((v = path_number(path, "/status/", 100, 599)) >= 0) {
        p->status = (int)v;
    } else if ((v = path_number(path, "/bytes/", 0, SERVE_MAX_BYTES)) >= 0) {
        p->bytes = v;
    } else if ((v = path_number(path, "/delay/", 0, 3600 * 1000)) >= 0) {
        delay.tv_sec = v / 1000;
        delay.tv_usec = (v % 1000) * 1000;
    } else if (strcmp(path, "/") != 0 && strncmp(path, "/item/", 6) != 0) {
        p->status = 404;
    }
    evhttp_connection_set_closecb(evhttp_request_get_connection(req), on_client_gone, p);
    evtimer_add(p->timer, &delay);
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

/* Start the server on 127.0.0.1, an ephemeral port, and on [::1] with the
 * same port when that can be had.  0 or an errno. */
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
    s->v6 = evhttp_bind_socket(s->http, "::1", (unsigned short)s->port) == 0;
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

/* --serve: the server alone until SIGINT or SIGTERM. */
static int serve(long delay_ms)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);     /* the server thread too */
    struct server srv;
    int err = server_start(&srv, delay_ms);
    if (err) {
        fprintf(stderr, "evexec-fetch: own server: %s\n", evexec_strerror(err));
        return 1;
    }
    printf("serving http://127.0.0.1:%d/\n", srv.port);
    if (srv.v6)
        printf("serving http://[::1]:%d/\n", srv.port);
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    server_stop(&srv);
    return 0;
}

/* ---- main ------------------------------------------------------------------------------ */

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: evexec-fetch [OPTIONS] [URL...]\n"
            "       evexec-fetch --serve [--delay-ms MS]\n"
            "Fetch URLs three ways and print how long each took:\n"
            "  one after another with a blocking HTTP client;\n"
            "  that blocking client on an evexec pool, all at once, gathered;\n"
            "  libevent's non-blocking evhttp client in evexec futures.\n"
            "\n"
            "URLs: http://HOST[:PORT][/PATH][?QUERY], HOST a name, an IPv4 address\n"
            "or [an IPv6 address]; https:// too with libcurl (the evhttp way skips\n"
            "those).  Names are looked up once, on the pool.  Redirects are not\n"
            "followed: only status 200 counts as success.  Bodies are counted, not\n"
            "kept.  With no URL it starts its own HTTP server on 127.0.0.1 that\n"
            "answers after --delay-ms, and fetches --count URLs from it.\n"
            "\n"
            "  -c, --count N              URLs from the own server (default 10)\n"
            "  -d, --delay-ms MS          the own server's delay (default 200)\n"
            "  -C, --client curl|socket   the blocking client (default: %s)\n"
            "  -j, --jobs N               pool threads (default: one per URL, at most 64)\n"
            "  -t, --timeout SECONDS      for each request in all (default %d)\n"
            "  -m, --max-bytes N          a longer body fails (default %ld)\n"
            "  -s, --serve                run only the own server (127.0.0.1, and [::1]\n"
            "                             where it can) until SIGINT or SIGTERM; it\n"
            "                             answers /, /item/..., /status/N, /bytes/N,\n"
            "                             /delay/MS, and 404 to anything else\n"
            "  -h, --help                 show this help\n"
            "\n"
            "Exit status: 0 when every fetch answered 200, 1 when some did not,\n"
            "64 for a usage error or a refused URL.\n",
#ifdef HAVE_LIBCURL
            "curl",
#else
            "socket; built without libcurl, so no https",
#endif
            IO_TIMEOUT_S, MAX_BYTES_DEFAULT);
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
    size_t ok = 0, ran = 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (fts[i].skipped)
            continue;
        ran++;
        if (fts[i].error == 0 && fts[i].status == 200)
            ok++;
        bytes += fts[i].bytes;
    }
    printf("%-40s %3zu/%zu ok %9.1f ms  (%zu bytes)", way, ok, ran, ms, bytes);
    if (ran < n)
        printf(", %zu https skipped", n - ran);
    printf("\n");
    for (size_t i = 0; i < n; i++) {
        if (fts[i].skipped)
            continue;
        if (fts[i].error && fts[i].t->lookup_error)
            fprintf(stderr, "  %s: looking up %s: %s\n", fts[i].t->url, fts[i].t->host,
                    evexec_strerror(fts[i].error));
        else if (fts[i].error)
            fprintf(stderr, "  %s: %s%s%s%s\n", fts[i].t->url, evexec_strerror(fts[i].error),
                    fts[i].detail[0] ? " (" : "", fts[i].detail,
                    fts[i].detail[0] ? ")" : "");
        else if (fts[i].status != 200)
            fprintf(stderr, "  %s: HTTP status %d\n", fts[i].t->url, fts[i].status);
    }
    fflush(stdout);
    return ok != ran;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "count", required_argument, NULL, 'c' },
        { "delay-ms", required_argument, NULL, 'd' },
        { "client", required_argument, NULL, 'C' },
        { "jobs", required_argument, NULL, 'j' },
        { "timeout", required_argument, NULL, 't' },
        { "max-bytes", required_argument, NULL, 'm' },
        { "serve", no_argument, NULL, 's' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    long count = 10, delay_ms = 200, jobs = 0;
    int serve_only = 0;
    char *end;
    double secs;
#ifdef HAVE_LIBCURL
    use_curl = 1;
#endif
    int c;
    while ((c = getopt_long(argc, argv, "c:d:C:j:t:m:sh", opts, NULL)) != -1) {
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
        case 't':
            secs = strtod(optarg, &end);
            if (*optarg == '\0' || *end || !(secs >= 0.001 && secs <= 86400)) {
                fprintf(stderr, "evexec-fetch: --timeout: seconds from 0.001 to 86400\n");
                return EX_USAGE;
            }
            timeout.tv_sec = (time_t)secs;
            timeout.tv_usec = (suseconds_t)((secs - (double)timeout.tv_sec) * 1e6);
            break;
        case 'm':
            max_bytes = number("--max-bytes", optarg, 0, LONG_MAX);
            break;
        case 's':
            serve_only = 1;
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
    if (serve_only) {
        if (argc > optind) {
            fprintf(stderr, "evexec-fetch: --serve takes no URL\n");
            return EX_USAGE;
        }
        return serve(delay_ms);
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
    int err = resolve_all(ex, ts, n);
    if (err) {
        fprintf(stderr, "evexec-fetch: looking up the hosts: %s\n", evexec_strerror(err));
        failed = 1;
    }
    for (int w = 1; w <= 3 && !err; w++) {
        for (size_t i = 0; i < n; i++) {
            memset(&fts[i], 0, sizeof fts[i]);
            fts[i].t = &ts[i];
        }
        double t0 = now_ms();
        int werr = 0;
        if (w == 1) {
            snprintf(way, sizeof way, "one after another (%s)", client);
            way_sequential(fts, n);
        } else if (w == 2) {
            snprintf(way, sizeof way, "on the pool, gathered (%s)", client);
            werr = way_pool(ex, fts, n);
        } else {
            snprintf(way, sizeof way, "evhttp, non-blocking, in futures");
            werr = way_evhttp(ex, fts, n);
        }
        double ms = now_ms() - t0;
        if (werr) {
            fprintf(stderr, "evexec-fetch: %s: %s\n", way, evexec_strerror(werr));
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
