/*
 * evexec-resolve -- resolve many names at once with evexec_getaddrinfo()
 * and print them as `getent ahosts` does.
 *
 * Names come from the arguments, or one per line on standard input.  At
 * most --jobs lookups are in flight: a new one is started from the done
 * callback of the last, so none waits in a queue and each one's time,
 * from submission to its callback, is its own.  Results are printed in the
 * order the names were given, each as soon as it and those before it are
 * done.  A closing line on standard error compares the time the whole run
 * took with the sum of the single lookups' times.
 *
 * Exit status: 0 when every name resolved, 2 when some did not (as
 * getent), 64 for a usage error, 1 when evexec itself failed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/event.h>

#include "evexec.h"

#define EX_USAGE 64

struct run;

struct name {
    struct run *run;
    char *text;
    struct evexec_future *f;
    double t_start, t_done;     /* ms */
};

struct run {
    struct evexec *ex;
    struct addrinfo hints;
    struct name *names;
    size_t n, next_start, next_print, inflight;
    unsigned jobs;
    int failed;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: evexec-resolve [OPTIONS] [NAME...]\n"
            "Resolve names concurrently on an evexec thread pool and print them as\n"
            "`getent ahosts` does: address, socket type, canonical name.\n"
            "With no NAME, read names from standard input, one per line.\n"
            "\n"
            "  -j, --jobs N       at most N lookups at once (default 8)\n"
            "  -f, --family 4|6   IPv4 or IPv6 addresses only (default: both)\n"
            "  -n, --numeric      numeric addresses only: never ask a resolver\n"
            "  -h, --help         show this help\n"
            "\n"
            "A closing line on standard error compares the time taken with the\n"
            "sum of the single lookups' times.  Exit status: 0 all resolved,\n"
            "2 some failed, 64 usage error.\n");
}

/* One entry as getent ahosts prints it. */
static void print_ai(const struct addrinfo *ai)
{
    for (; ai; ai = ai->ai_next) {
        char addr[INET6_ADDRSTRLEN], sock[16];
        const void *a = ai->ai_family == AF_INET
                            ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                            : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        if (!inet_ntop(ai->ai_family, a, addr, sizeof addr))
            strcpy(addr, "<invalid>");
        const char *s = ai->ai_socktype == SOCK_STREAM ? "STREAM"
                        : ai->ai_socktype == SOCK_DGRAM ? "DGRAM"
                        : ai->ai_socktype == SOCK_RAW   ? "RAW"
                                                        : NULL;
        if (!s) {
            snprintf(sock, sizeof sock, "%d", ai->ai_socktype);
            s = sock;
        }
        printf("%-15s %-6s %s\n", addr, s, ai->ai_canonname ? ai->ai_canonname : "");
    }
}

/* Print every finished name not yet printed that has no unfinished one
 * before it. */
static void print_ready(struct run *r)
{
    while (r->next_print < r->n && r->names[r->next_print].f &&
           evexec_future_done(r->names[r->next_print].f)) {
        struct name *nm = &r->names[r->next_print++];
        int err = evexec_future_error(nm->f);
        if (err == 0) {
            print_ai(evexec_future_result(nm->f));
        } else {
            fprintf(stderr, "evexec-resolve: %s: %s\n", nm->text, evexec_strerror(err));
            r->failed = 1;
        }
        evexec_future_unref(nm->f);
        nm->f = NULL;
    }
    fflush(stdout);
}

static void start_next(struct run *r);

static void on_done(struct evexec_future *f, void *arg)
{
    struct name *nm = arg;
    struct run *r = nm->run;
    (void)f;
    nm->t_done = now_ms();
    r->inflight--;
    print_ready(r);
    start_next(r);
}

/* Start lookups until --jobs are in flight or none is left. */
static void start_next(struct run *r)
{
    while (r->inflight < r->jobs && r->next_start < r->n) {
        struct name *nm = &r->names[r->next_start++];
        nm->t_start = now_ms();
        nm->f = evexec_getaddrinfo(r->ex, nm->text, NULL, &r->hints);
        if (!nm->f || evexec_future_on_done(nm->f, on_done, nm) != 0) {
            fprintf(stderr, "evexec-resolve: %s: %s\n", nm->text, evexec_strerror(errno));
            exit(1);
        }
        r->inflight++;
    }
}

/* Names from standard input: one per line, blanks and '#' comments out. */
static size_t read_names(char ***out)
{
    size_t n = 0, cap = 0;
    char **v = NULL, *line = NULL;
    size_t lcap = 0;
    while (getline(&line, &lcap, stdin) > 0) {
        char *s = line + strspn(line, " \t");
        s[strcspn(s, " \t\r\n#")] = '\0';
        if (!*s)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            v = realloc(v, cap * sizeof *v);
        }
        if (!v || !(v[n++] = strdup(s))) {
            fprintf(stderr, "evexec-resolve: out of memory\n");
            exit(1);
        }
    }
    free(line);
    *out = v;
    return n;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "jobs", required_argument, NULL, 'j' },
        { "family", required_argument, NULL, 'f' },
        { "numeric", no_argument, NULL, 'n' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct run r;
    memset(&r, 0, sizeof r);
    r.jobs = 8;
    /* What getent ahosts asks for. */
    r.hints.ai_flags = AI_V4MAPPED | AI_ADDRCONFIG | AI_CANONNAME;
    r.hints.ai_family = AF_UNSPEC;

    int c;
    while ((c = getopt_long(argc, argv, "j:f:nh", opts, NULL)) != -1) {
        char *end;
        long v;
        switch (c) {
        case 'j':
            v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 512) {
                fprintf(stderr, "evexec-resolve: --jobs: 1 to 512\n");
                return EX_USAGE;
            }
            r.jobs = (unsigned)v;
            break;
        case 'f':
            if (strcmp(optarg, "4") == 0) {
                r.hints.ai_family = AF_INET;
            } else if (strcmp(optarg, "6") == 0) {
                r.hints.ai_family = AF_INET6;
            } else {
                fprintf(stderr, "evexec-resolve: --family: 4 or 6\n");
                return EX_USAGE;
            }
            break;
        case 'n':
            r.hints.ai_flags |= AI_NUMERICHOST;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EX_USAGE;
        }
    }
    char **list = argv + optind;
    r.n = (size_t)(argc - optind);
    if (r.n == 0)
        r.n = read_names(&list);
    if (r.n == 0) {
        usage(stderr);
        return EX_USAGE;
    }
    r.names = calloc(r.n, sizeof *r.names);
    if (!r.names)
        return 1;
    for (size_t i = 0; i < r.n; i++) {
        r.names[i].run = &r;
        r.names[i].text = list[i];
    }

    /* Lookups run on the slow lane, which takes at most half of the
     * threads: twice --jobs lets --jobs of them run at once. */
    struct evexec_pool_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.max_threads = 2 * r.jobs;
    cfg.thread_name = "resolve";
    struct event_base *base = event_base_new();
    struct evexec_pool *pool = base ? evexec_pool_new(&cfg) : NULL;
    r.ex = pool ? evexec_new(base, pool) : NULL;
    if (!r.ex) {
        fprintf(stderr, "evexec-resolve: %s\n", evexec_strerror(errno));
        return 1;
    }
    /* No other thread calls into the loop: let dispatch return once the
     * last lookup is done. */
    evexec_set_keepalive(r.ex, 0);

    double t0 = now_ms();
    start_next(&r);
    event_base_dispatch(base);
    double wall = now_ms() - t0, sum = 0;
    for (size_t i = 0; i < r.n; i++)
        sum += r.names[i].t_done - r.names[i].t_start;

    fprintf(stderr,
            "# %zu name%s in %.2f ms, %u at once; the single lookups add up to "
            "%.2f ms (%.1fx)\n",
            r.n, r.n == 1 ? "" : "s", wall, r.jobs < r.n ? r.jobs : (unsigned)r.n, sum,
            wall > 0 ? sum / wall : 0.0);

    evexec_free(r.ex);
    evexec_pool_free(pool);
    event_base_free(base);
    if (list != argv + optind) {
        for (size_t i = 0; i < r.n; i++)
            free(list[i]);
        free(list);
    }
    free(r.names);
    return r.failed ? 2 : 0;
}
