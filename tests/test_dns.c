/*
 * test_dns.c -- evexec_getaddrinfo and evexec_getnameinfo: results for
 * "localhost", "127.0.0.1" and "::1", getaddrinfo's error codes kept as
 * they are, arguments copied at the call, bad input refused, cancel and
 * teardown with lookups queued; the slow lane never holding more than half
 * of the threads while default-lane work goes on; and the two tools built
 * with this room, evexec-resolve and evexec-fetch, run end to end.
 *
 * Only names that never reach a name server are looked up: "localhost"
 * (from /etc/hosts, IPv4 only, as that is where every system lists it) and
 * numeric addresses; the failure cases use AI_NUMERICHOST, so a non-numeric
 * name fails before any resolver is asked.  Reverse lookups of ::1 ask for
 * the numeric form for the same reason.
 *
 * Lookups that must stay queued sit behind slow-lane jobs parked at a gate.
 *
 * Shared lookups and the cache are checked through the library's test
 * seams: every getaddrinfo() a lookup makes goes through a counting hook
 * (which may park at the gate, so that a lookup stays running, and which
 * answers EAI_NONAME itself for names under the reserved .invalid domain,
 * so that no such name ever reaches a resolver), and the cache reads a
 * clock the test moves by hand.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "evexec.h"
#include "evexec-internal.h"
#include "testutil.h"

#define THREADS 4               /* so the slow lane holds at most 2 */
#define SLOW_MAX (THREADS / 2)

struct fx {
    struct event_base *base;
    struct evexec_pool *pool;
    struct evexec *ex;
    struct tu_gate gate;
};

static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof *x);
    assert_non_null(x);
    tu_gate_init(&x->gate);
    x->base = event_base_new();
    assert_non_null(x->base);
    x->pool = tu_pool_new(THREADS, 0);
    assert_non_null(x->pool);
    x->ex = evexec_new(x->base, x->pool);
    assert_non_null(x->ex);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    struct fx *x = *state;
    tu_gate_open(&x->gate);
    evexec_free(x->ex);
    evexec_pool_free(x->pool);
    event_base_free(x->base);
    tu_gate_destroy(&x->gate);
    free(x);
    return 0;
}

/* Run the loop until f has ended (see tu_finish); its error. */
static int finish(struct fx *x, struct evexec_future *f)
{
    return tu_finish(x->ex, f);
}

static int outcome(struct fx *x, struct evexec_future *f)
{
    int rc = finish(x, f);
    evexec_future_unref(f);
    return rc;
}

static struct addrinfo hints_of(int flags, int family, int socktype)
{
    struct addrinfo h;
    memset(&h, 0, sizeof h);
    h.ai_flags = flags;
    h.ai_family = family;
    h.ai_socktype = socktype;
    return h;
}

/* The first address of a successful lookup, as text. */
static const char *first_addr(const struct addrinfo *ai, char *buf, size_t size)
{
    assert_non_null(ai);
    const void *a = ai->ai_family == AF_INET
                        ? (const void *)&((const struct sockaddr_in *)ai->ai_addr)->sin_addr
                        : (const void *)&((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
    assert_non_null(inet_ntop(ai->ai_family, a, buf, (socklen_t)size));
    return buf;
}

static int have_ipv6_loopback(void)
{
    int s = socket(AF_INET6, SOCK_DGRAM, 0);
    if (s < 0)
        return 0;
    struct sockaddr_in6 sa;
    memset(&sa, 0, sizeof sa);
    sa.sin6_family = AF_INET6;
    sa.sin6_addr = in6addr_loopback;
    int ok = bind(s, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(s);
    return ok;
}

/* The first name /etc/hosts gives an address, or NULL: read here so that
 * the reverse lookup it predicts never has to leave the machine. */
static char *hosts_name(const char *addr, char *name, size_t size)
{
    FILE *fp = fopen("/etc/hosts", "r");
    char line[512];
    char *found = NULL;
    while (fp && !found && fgets(line, sizeof line, fp)) {
        char a[128], n[256];
        if (sscanf(line, " %127s %255s", a, n) == 2 && a[0] != '#' &&
            strcmp(a, addr) == 0 && strlen(n) < size)
            found = strcpy(name, n);
    }
    if (fp)
        fclose(fp);
    return found;
}

/* Park `n` slow-lane jobs at the gate; returns them (the caller unrefs). */
static void fill_slow_lane(struct fx *x, struct evexec_future **fs, unsigned n)
{
    struct evexec_run_opts slow = { .lane = EVEXEC_LANE_SLOW };
    for (unsigned i = 0; i < n; i++) {
        fs[i] = evexec_run_opts(x->ex, tu_gated_job, &x->gate, &slow);
        assert_non_null(fs[i]);
    }
    assert_int_equal(tu_gate_wait_arrived(&x->gate, n < SLOW_MAX ? n : SLOW_MAX), 0);
}

static void drain(struct fx *x, struct evexec_future **fs, unsigned n)
{
    tu_gate_open(&x->gate);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(outcome(x, fs[i]), 0);
}

/* ---- getaddrinfo ------------------------------------------------------------ */

static void test_getaddrinfo_localhost(void **state)
{
    struct fx *x = *state;
    struct addrinfo h = hints_of(AI_CANONNAME, AF_INET, SOCK_STREAM);
    char buf[INET6_ADDRSTRLEN];

    struct evexec_future *f = evexec_getaddrinfo(x->ex, "localhost", "80", &h);
    assert_int_equal(finish(x, f), 0);
    const struct addrinfo *ai = evexec_future_result(f);
    assert_string_equal(first_addr(ai, buf, sizeof buf), "127.0.0.1");
    assert_int_equal(ntohs(((const struct sockaddr_in *)ai->ai_addr)->sin_port), 80);
    assert_int_equal(ai->ai_socktype, SOCK_STREAM);
    assert_non_null(ai->ai_canonname);
    assert_string_equal(ai->ai_canonname, "localhost");
    evexec_future_unref(f);
}

static void test_getaddrinfo_numeric(void **state)
{
    struct fx *x = *state;
    struct addrinfo h = hints_of(AI_NUMERICHOST | AI_NUMERICSERV, AF_UNSPEC, SOCK_DGRAM);
    char buf[INET6_ADDRSTRLEN];

    struct evexec_future *f = evexec_getaddrinfo(x->ex, "127.0.0.1", "53", &h);
    assert_int_equal(finish(x, f), 0);
    /* Taken, the list is the caller's, released with freeaddrinfo(). */
    struct addrinfo *ai = evexec_future_take_result(f);
    assert_null(evexec_future_result(f));
    evexec_future_unref(f);
    assert_string_equal(first_addr(ai, buf, sizeof buf), "127.0.0.1");
    assert_int_equal(ai->ai_family, AF_INET);
    assert_int_equal(ai->ai_socktype, SOCK_DGRAM);
    assert_int_equal(ntohs(((struct sockaddr_in *)ai->ai_addr)->sin_port), 53);
    assert_null(ai->ai_next);
    freeaddrinfo(ai);

    /* No hints at all: every socket type. */
    f = evexec_getaddrinfo(x->ex, "127.0.0.1", NULL, NULL);
    assert_int_equal(finish(x, f), 0);
    int n = 0;
    for (ai = evexec_future_result(f); ai; ai = ai->ai_next)
        n++;
    assert_true(n >= 2);
    evexec_future_unref(f);

    /* Service only. */
    h = hints_of(AI_PASSIVE | AI_NUMERICSERV, AF_INET, SOCK_STREAM);
    f = evexec_getaddrinfo(x->ex, NULL, "8080", &h);
    assert_int_equal(finish(x, f), 0);
    assert_string_equal(first_addr(evexec_future_result(f), buf, sizeof buf), "0.0.0.0");
    evexec_future_unref(f);
}

static void test_getaddrinfo_ipv6(void **state)
{
    struct fx *x = *state;
    if (!have_ipv6_loopback())
        skip();
    struct addrinfo h = hints_of(AI_NUMERICHOST, AF_INET6, SOCK_STREAM);
    char buf[INET6_ADDRSTRLEN];
    struct evexec_future *f = evexec_getaddrinfo(x->ex, "::1", "443", &h);
    assert_int_equal(finish(x, f), 0);
    const struct addrinfo *ai = evexec_future_result(f);
    assert_int_equal(ai->ai_family, AF_INET6);
    assert_string_equal(first_addr(ai, buf, sizeof buf), "::1");
    assert_int_equal(ntohs(((const struct sockaddr_in6 *)ai->ai_addr)->sin6_port), 443);
    evexec_future_unref(f);
}

static void test_getaddrinfo_errors(void **state)
{
    struct fx *x = *state;
    struct addrinfo h = hints_of(AI_NUMERICHOST, AF_UNSPEC, SOCK_STREAM);

    assert_int_equal(outcome(x, evexec_getaddrinfo(x->ex, "not-a-number", NULL, &h)),
                     EAI_NONAME);
    assert_int_equal(outcome(x, evexec_getaddrinfo(x->ex, "300.1.2.3", NULL, &h)),
                     EAI_NONAME);
    h.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    assert_int_equal(outcome(x, evexec_getaddrinfo(x->ex, "127.0.0.1", "http", &h)),
                     EAI_NONAME);
    h.ai_flags = 0x40000000;              /* no such flag */
    assert_int_equal(outcome(x, evexec_getaddrinfo(x->ex, "127.0.0.1", NULL, &h)),
                     EAI_BADFLAGS);
    h.ai_flags = AI_CANONNAME;            /* a canonical name of no name */
    assert_int_equal(outcome(x, evexec_getaddrinfo(x->ex, NULL, "80", &h)),
                     EAI_BADFLAGS);
    h = hints_of(AI_NUMERICHOST, 12345, 0);
    assert_int_equal(outcome(x, evexec_getaddrinfo(x->ex, "127.0.0.1", NULL, &h)),
                     EAI_FAMILY);
    h = hints_of(AI_NUMERICHOST, AF_INET, 12345);
    assert_int_equal(outcome(x, evexec_getaddrinfo(x->ex, "127.0.0.1", NULL, &h)),
                     EAI_SOCKTYPE);

    /* The codes stay getaddrinfo's, and evexec_strerror names them. */
    static const int codes[] = { EAI_NONAME, EAI_BADFLAGS, EAI_FAMILY, EAI_SOCKTYPE };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        assert_true(codes[i] < 0 || codes[i] > 4095);   /* never an errno here */
        assert_string_not_equal(evexec_strerror(codes[i]), "unknown error");
    }
}

/* ---- getnameinfo -------------------------------------------------------------- */

static struct sockaddr_in v4(const char *addr, int port)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET, addr, &sa.sin_addr), 1);
    return sa;
}

static void test_getnameinfo_v4(void **state)
{
    struct fx *x = *state;
    struct sockaddr_in sa = v4("127.0.0.1", 8080);

    struct evexec_future *f = evexec_getnameinfo(x->ex, (struct sockaddr *)&sa, sizeof sa,
                                                 NI_NUMERICHOST | NI_NUMERICSERV);
    assert_int_equal(finish(x, f), 0);
    const struct evexec_nameinfo *ni = evexec_future_result(f);
    assert_string_equal(ni->host, "127.0.0.1");
    assert_string_equal(ni->serv, "8080");
    evexec_future_unref(f);

    /* The name /etc/hosts gives 127.0.0.1 (found there, nowhere else). */
    char name[256];
    if (hosts_name("127.0.0.1", name, sizeof name)) {
        f = evexec_getnameinfo(x->ex, (struct sockaddr *)&sa, sizeof sa,
                               NI_NAMEREQD | NI_NUMERICSERV);
        assert_int_equal(finish(x, f), 0);
        ni = evexec_future_result(f);
        assert_string_equal(ni->host, name);
        assert_string_equal(ni->serv, "8080");
        evexec_future_unref(f);
    }
}

static void test_getnameinfo_v6(void **state)
{
    struct fx *x = *state;
    if (!have_ipv6_loopback())
        skip();
    struct sockaddr_in6 sa;
    memset(&sa, 0, sizeof sa);
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(443);
    sa.sin6_addr = in6addr_loopback;
    struct evexec_future *f = evexec_getnameinfo(x->ex, (struct sockaddr *)&sa, sizeof sa,
                                                 NI_NUMERICHOST | NI_NUMERICSERV);
    assert_int_equal(finish(x, f), 0);
    const struct evexec_nameinfo *ni = evexec_future_result(f);
    assert_string_equal(ni->host, "::1");
    assert_string_equal(ni->serv, "443");
    evexec_future_unref(f);
}

static void test_getnameinfo_errors(void **state)
{
    struct fx *x = *state;
    struct sockaddr_in sa = v4("127.0.0.1", 80);
    const int numeric = NI_NUMERICHOST | NI_NUMERICSERV;

    assert_int_equal(outcome(x, evexec_getnameinfo(x->ex, (struct sockaddr *)&sa, sizeof sa,
                                                   0x40000000)),
                     EAI_BADFLAGS);
    struct sockaddr_in bad = sa;
    bad.sin_family = 12345;
    assert_int_equal(outcome(x, evexec_getnameinfo(x->ex, (struct sockaddr *)&bad,
                                                   sizeof bad, numeric)),
                     EAI_FAMILY);
    /* Too short for its family. */
    assert_int_equal(outcome(x, evexec_getnameinfo(x->ex, (struct sockaddr *)&sa, 4,
                                                   numeric)),
                     EAI_FAMILY);
}

/* ---- copies, bad input, cancel, teardown ---------------------------------------- */

static void test_arguments_copied(void **state)
{
    struct fx *x = *state;
    struct evexec_future *slow[SLOW_MAX];
    char node[32], serv[8], buf[INET6_ADDRSTRLEN];
    struct addrinfo h = hints_of(AI_NUMERICHOST | AI_NUMERICSERV, AF_INET, SOCK_STREAM);
    struct sockaddr_in sa = v4("127.0.0.1", 7);

    fill_slow_lane(x, slow, SLOW_MAX);      /* the lookups below stay queued */
    strcpy(node, "127.0.0.1");
    strcpy(serv, "22");
    struct evexec_future *fa = evexec_getaddrinfo(x->ex, node, serv, &h);
    struct evexec_future *fn = evexec_getnameinfo(x->ex, (struct sockaddr *)&sa, sizeof sa,
                                                  NI_NUMERICHOST | NI_NUMERICSERV);
    assert_non_null(fa);
    assert_non_null(fn);
    strcpy(node, "garbage!");
    strcpy(serv, "x");
    h = hints_of(0x40000000, 999, 999);
    memset(&sa, 0xff, sizeof sa);
    assert_int_equal(tu_stats(x->pool).queued, 2);
    drain(x, slow, SLOW_MAX);

    assert_int_equal(finish(x, fa), 0);
    const struct addrinfo *ai = evexec_future_result(fa);
    assert_string_equal(first_addr(ai, buf, sizeof buf), "127.0.0.1");
    assert_int_equal(ntohs(((const struct sockaddr_in *)ai->ai_addr)->sin_port), 22);
    evexec_future_unref(fa);
    assert_int_equal(finish(x, fn), 0);
    const struct evexec_nameinfo *ni = evexec_future_result(fn);
    assert_string_equal(ni->host, "127.0.0.1");
    assert_string_equal(ni->serv, "7");
    evexec_future_unref(fn);
}

static void test_bad_input(void **state)
{
    struct fx *x = *state;
    struct sockaddr_in sa = v4("127.0.0.1", 80);
    struct sockaddr *sp = (struct sockaddr *)&sa;
    struct evexec_future *refused[] = {
        evexec_getaddrinfo(NULL, "127.0.0.1", NULL, NULL),
        evexec_getaddrinfo(x->ex, NULL, NULL, NULL),
        evexec_getnameinfo(NULL, sp, sizeof sa, 0),
        evexec_getnameinfo(x->ex, NULL, sizeof sa, 0),
        evexec_getnameinfo(x->ex, sp, 0, 0),
        evexec_getnameinfo(x->ex, sp, sizeof(struct sockaddr_storage) + 1, 0),
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        assert_null(refused[i]);
    errno = 0;
    assert_null(evexec_getaddrinfo(x->ex, NULL, NULL, NULL));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(evexec_getnameinfo(x->ex, sp, 0, 0));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(tu_stats(x->pool).threads_started, 0);    /* nothing queued */

    assert_int_equal(evexec_pool_shutdown(x->pool, 0), 0);
    errno = 0;
    assert_null(evexec_getaddrinfo(x->ex, "127.0.0.1", NULL, NULL));
    assert_int_equal(errno, ESHUTDOWN);
}

static void test_cancel_queued_lookup(void **state)
{
    struct fx *x = *state;
    struct evexec_future *slow[SLOW_MAX];
    struct sockaddr_in sa = v4("127.0.0.1", 80);

    fill_slow_lane(x, slow, SLOW_MAX);
    struct evexec_future *fa = evexec_getaddrinfo(x->ex, "127.0.0.1", "80", NULL);
    struct evexec_future *fn = evexec_getnameinfo(x->ex, (struct sockaddr *)&sa, sizeof sa,
                                                  NI_NUMERICHOST | NI_NUMERICSERV);
    assert_non_null(fa);
    assert_non_null(fn);
    assert_int_equal(evexec_future_cancel(fa), 0);
    assert_int_equal(evexec_future_cancel(fn), 0);
    assert_int_equal(finish(x, fa), ECANCELED);
    assert_null(evexec_future_result(fa));
    assert_int_equal(finish(x, fn), ECANCELED);
    evexec_future_unref(fa);
    evexec_future_unref(fn);
    assert_int_equal(tu_stats(x->pool).cancelled, 2);
    drain(x, slow, SLOW_MAX);
}

static void test_free_with_queued_lookups(void **state)
{
    struct fx *x = *state;
    struct evexec_future *slow[SLOW_MAX];
    struct tu_rec rec[8];
    struct sockaddr_in sa = v4("127.0.0.1", 80);

    fill_slow_lane(x, slow, SLOW_MAX);
    for (int i = 0; i < 8; i++) {
        struct evexec_future *f =
            i % 2 ? evexec_getaddrinfo(x->ex, "127.0.0.1", "80", NULL)
                  : evexec_getnameinfo(x->ex, (struct sockaddr *)&sa, sizeof sa,
                                       NI_NUMERICHOST | NI_NUMERICSERV);
        assert_non_null(f);
        tu_rec_init(&rec[i]);
        assert_int_equal(evexec_future_on_done(f, tu_rec_cb, &rec[i]), 0);
        evexec_future_unref(f);          /* the callbacks still run */
    }
    evexec_free(x->ex);
    x->ex = NULL;
    for (int i = 0; i < 8; i++) {
        assert_int_equal(rec[i].calls, 1);
        assert_int_equal(rec[i].error, ECANCELED);
    }
}

/* ---- the slow lane ---------------------------------------------------------------- */

struct lane_probe {
    struct tu_gate *gate;
    atomic_int now, max, ran;
};

static int slow_probe_job(struct evexec_job *job, void *arg)
{
    struct lane_probe *p = arg;
    (void)job;
    int n = atomic_fetch_add(&p->now, 1) + 1;
    int m = atomic_load(&p->max);
    while (n > m && !atomic_compare_exchange_weak(&p->max, &m, n))
        continue;
    int rc = tu_gate_pass(p->gate);
    atomic_fetch_sub(&p->now, 1);
    atomic_fetch_add(&p->ran, 1);
    return rc;
}

static int quick_job(struct evexec_job *job, void *arg)
{
    (void)job;
    atomic_fetch_add((atomic_int *)arg, 1);
    return 0;
}

static void test_slow_lane_bounded(void **state)
{
    struct fx *x = *state;
    enum { SLOW_JOBS = 100, QUICK_JOBS = 40 };
    struct lane_probe probe = { .gate = &x->gate };
    struct evexec_run_opts slow = { .lane = EVEXEC_LANE_SLOW };
    struct evexec_future *fs[SLOW_JOBS];
    atomic_int quick = 0;

    for (int i = 0; i < SLOW_JOBS; i++) {
        fs[i] = evexec_run_opts(x->ex, slow_probe_job, &probe, &slow);
        assert_non_null(fs[i]);
    }
    assert_int_equal(tu_gate_wait_arrived(&x->gate, SLOW_MAX), 0);
    /* A lookup queues behind them, on the same lane. */
    struct addrinfo h = hints_of(AI_NUMERICHOST, AF_INET, SOCK_STREAM);
    struct evexec_future *lookup = evexec_getaddrinfo(x->ex, "127.0.0.1", NULL, &h);
    assert_non_null(lookup);

    /* The default lane keeps going while the slow lane is stuffed. */
    for (int i = 0; i < QUICK_JOBS; i++)
        assert_int_equal(outcome(x, evexec_run(x->ex, quick_job, &quick)), 0);
    assert_int_equal(atomic_load(&quick), QUICK_JOBS);
    struct evexec_pool_stats st = tu_stats(x->pool);
    assert_true(st.running <= THREADS);
    assert_int_equal(atomic_load(&probe.now), SLOW_MAX);
    assert_int_equal(atomic_load(&probe.ran), 0);
    assert_false(evexec_future_done(lookup));

    tu_gate_open(&x->gate);
    for (int i = 0; i < SLOW_JOBS; i++)
        assert_int_equal(outcome(x, fs[i]), 0);
    assert_int_equal(outcome(x, lookup), 0);
    assert_int_equal(atomic_load(&probe.ran), SLOW_JOBS);
    assert_int_equal(atomic_load(&probe.max), SLOW_MAX);
}

/* ---- shared lookups and the cache ------------------------------------------------ */

static atomic_int gai_calls;                  /* getaddrinfo() calls made */
static struct tu_gate *_Atomic gai_gate;      /* set: each call parks here */
static uint64_t fake_ms;                      /* the cache's clock */

static int ends_with(const char *s, const char *tail)
{
    size_t ls = strlen(s), lt = strlen(tail);
    return ls >= lt && strcmp(s + ls - lt, tail) == 0;
}

static int counting_getaddrinfo(const char *node, const char *service,
                                const struct addrinfo *hints, struct addrinfo **res)
{
    atomic_fetch_add(&gai_calls, 1);
    struct tu_gate *g = atomic_load(&gai_gate);
    if (g)
        tu_gate_pass(g);
    if (node && ends_with(node, ".invalid"))
        return EAI_NONAME;                    /* never asked of a resolver */
    return getaddrinfo(node, service, hints, res);
}

static uint64_t fake_clock(void)
{
    return fake_ms;
}

static int setup_hooked(void **state)
{
    atomic_store(&gai_calls, 0);
    atomic_store(&gai_gate, NULL);
    atomic_store(&evexec__dns_getaddrinfo_hook, counting_getaddrinfo);
    fake_ms = 1000;
    evexec__dns_clock_hook = fake_clock;
    return setup(state);
}

static int teardown_hooked(void **state)
{
    int rc = teardown(state);
    atomic_store(&evexec__dns_getaddrinfo_hook, getaddrinfo);
    evexec__dns_clock_hook = NULL;
    atomic_store(&gai_gate, NULL);
    return rc;
}

static int calls(void)
{
    return atomic_load(&gai_calls);
}

static size_t list_len(const struct addrinfo *ai)
{
    size_t n = 0;
    for (; ai; ai = ai->ai_next)
        n++;
    return n;
}

/* A list for localhost:80 over TCP/IPv4 with its canonical name, equal
 * node by node to `ref` (when given) but sharing no memory with it. */
static void check_localhost_list(const struct addrinfo *ai, const struct addrinfo *ref)
{
    char buf[INET6_ADDRSTRLEN];
    assert_string_equal(first_addr(ai, buf, sizeof buf), "127.0.0.1");
    assert_int_equal(ntohs(((const struct sockaddr_in *)ai->ai_addr)->sin_port), 80);
    assert_int_equal(ai->ai_socktype, SOCK_STREAM);
    assert_non_null(ai->ai_canonname);
    assert_string_equal(ai->ai_canonname, "localhost");
    if (!ref)
        return;
    assert_int_equal(list_len(ai), list_len(ref));
    for (const struct addrinfo *a = ai, *b = ref; a; a = a->ai_next, b = b->ai_next) {
        assert_ptr_not_equal(a, b);
        assert_ptr_not_equal(a->ai_addr, b->ai_addr);
        assert_int_equal(a->ai_flags, b->ai_flags);
        assert_int_equal(a->ai_family, b->ai_family);
        assert_int_equal(a->ai_socktype, b->ai_socktype);
        assert_int_equal(a->ai_protocol, b->ai_protocol);
        assert_int_equal(a->ai_addrlen, b->ai_addrlen);
        assert_memory_equal(a->ai_addr, b->ai_addr, a->ai_addrlen);
        assert_true((a->ai_canonname == NULL) == (b->ai_canonname == NULL));
        if (a->ai_canonname) {
            assert_ptr_not_equal(a->ai_canonname, b->ai_canonname);
            assert_string_equal(a->ai_canonname, b->ai_canonname);
        }
    }
}

/* Run the loop until no job of ex is in flight any more. */
static void settle(struct fx *x)
{
    const struct timeval ms = { 0, 1000 };
    int64_t end = tu_now_us() + (int64_t)TU_DEADLINE_MS * 1000;
    while (x->ex->inflight > 0 && tu_now_us() < end)
        assert_int_equal(outcome(x, evexec_sleep(x->ex, &ms)), 0);
    assert_int_equal(x->ex->inflight, 0);
}

static struct evexec_future *lookup_localhost(struct fx *x, const char *service)
{
    struct addrinfo h = hints_of(AI_CANONNAME, AF_INET, SOCK_STREAM);
    struct evexec_future *f = evexec_getaddrinfo(x->ex, "localhost", service, &h);
    assert_non_null(f);
    return f;
}

/* N identical calls made before the loop runs share one getaddrinfo();
 * each gets a list of its own, equal to the others, that freeaddrinfo()
 * releases (taken by the caller, or released by the future). */
static void test_shared_identical(void **state)
{
    struct fx *x = *state;
    enum { N = 8 };
    struct evexec_future *fs[N];
    struct addrinfo *lists[N];

    for (int i = 0; i < N; i++)
        fs[i] = lookup_localhost(x, "80");
    for (int i = 0; i < N; i++)
        assert_int_equal(finish(x, fs[i]), 0);
    assert_int_equal(calls(), 1);
    for (int i = 0; i < N; i++)
        lists[i] = evexec_future_result(fs[i]);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            if (i != j)
                check_localhost_list(lists[i], lists[j]);
    /* Half taken and freed here, half released with their futures. */
    for (int i = 0; i < N; i++) {
        if (i % 2) {
            assert_ptr_equal(evexec_future_take_result(fs[i]), lists[i]);
            freeaddrinfo(lists[i]);
        }
        evexec_future_unref(fs[i]);
    }

    /* Ended lookups are not joined: without the cache, a new call looks up. */
    assert_int_equal(outcome(x, lookup_localhost(x, "80")), 0);
    assert_int_equal(calls(), 2);
}

/* Calls that differ in anything that reaches getaddrinfo() do not share. */
static void test_shared_keys_differ(void **state)
{
    struct fx *x = *state;
    struct addrinfo h[] = {
        hints_of(AI_CANONNAME, AF_INET, SOCK_STREAM),   /* lookup_localhost's */
        hints_of(0, AF_INET, SOCK_STREAM),
        hints_of(AI_CANONNAME, AF_UNSPEC, SOCK_STREAM),
        hints_of(AI_CANONNAME, AF_INET, SOCK_DGRAM),
        hints_of(AI_CANONNAME, AF_INET, SOCK_STREAM),
        hints_of(0, 0, 0),                             /* not the same as NULL */
    };
    h[4].ai_protocol = IPPROTO_TCP;
    struct evexec_future *fs[] = {
        lookup_localhost(x, "80"),
        lookup_localhost(x, "81"),
        lookup_localhost(x, "80"),                      /* shares fs[0]'s */
        evexec_getaddrinfo(x->ex, "127.0.0.1", "80", &h[0]),
        evexec_getaddrinfo(x->ex, "localhost", NULL, &h[0]),
        evexec_getaddrinfo(x->ex, "localhost", "80", &h[1]),
        evexec_getaddrinfo(x->ex, "localhost", "80", &h[2]),
        evexec_getaddrinfo(x->ex, "localhost", "80", &h[3]),
        evexec_getaddrinfo(x->ex, "localhost", "80", &h[4]),
        evexec_getaddrinfo(x->ex, "localhost", "80", &h[5]),
        evexec_getaddrinfo(x->ex, "localhost", "80", NULL),
        evexec_getaddrinfo(x->ex, "localhost", "80", NULL), /* shares the one above */
    };
    size_t n = sizeof fs / sizeof fs[0];
    for (size_t i = 0; i < n; i++) {
        assert_non_null(fs[i]);
        finish(x, fs[i]);       /* whatever the system answers */
    }
    assert_int_equal(calls(), (int)n - 2);
    for (size_t i = 0; i < n; i++)
        evexec_future_unref(fs[i]);
}

/* One waiter cancelled, one dropped while the lookup runs: both leave,
 * the others get the list. */
static void test_shared_cancel_one(void **state)
{
    struct fx *x = *state;
    struct evexec_future *fs[4];
    struct tu_rec rec;

    atomic_store(&gai_gate, &x->gate);
    for (int i = 0; i < 4; i++)
        fs[i] = lookup_localhost(x, "80");
    assert_int_equal(tu_gate_wait_arrived(&x->gate, 1), 0);     /* running */

    tu_rec_init(&rec);
    assert_int_equal(evexec_future_on_done(fs[1], tu_rec_cb, &rec), 0);
    assert_int_equal(evexec_future_cancel(fs[1]), 0);
    assert_true(evexec_future_done(fs[1]));                     /* at once */
    assert_int_equal(evexec_future_error(fs[1]), ECANCELED);
    assert_null(evexec_future_result(fs[1]));
    assert_int_equal(evexec_future_cancel(fs[1]), EALREADY);
    evexec_future_unref(fs[3]);                                 /* leaves too */

    tu_gate_open(&x->gate);
    assert_int_equal(finish(x, fs[0]), 0);
    assert_int_equal(finish(x, fs[2]), 0);
    check_localhost_list(evexec_future_result(fs[0]), evexec_future_result(fs[2]));
    assert_int_equal(rec.calls, 1);
    assert_int_equal(rec.error, ECANCELED);
    assert_int_equal(calls(), 1);
    for (int i = 0; i < 3; i++)
        evexec_future_unref(fs[i]);
}

/* Every waiter gone while the lookup is queued: it is cancelled and never
 * runs. */
static void test_shared_cancel_all_queued(void **state)
{
    struct fx *x = *state;
    struct evexec_future *slow[SLOW_MAX], *fs[3];

    fill_slow_lane(x, slow, SLOW_MAX);
    for (int i = 0; i < 3; i++)
        fs[i] = lookup_localhost(x, "80");
    assert_int_equal(evexec_future_cancel(fs[0]), 0);
    assert_int_equal(evexec_future_cancel(fs[1]), 0);
    assert_int_equal(tu_stats(x->pool).cancelled, 0);           /* one still waits */
    evexec_future_unref(fs[2]);                                 /* the last */
    assert_int_equal(tu_stats(x->pool).cancelled, 1);
    for (int i = 0; i < 2; i++)
        assert_int_equal(outcome(x, fs[i]), ECANCELED);
    drain(x, slow, SLOW_MAX);
    assert_int_equal(calls(), 0);
}

/* Every waiter gone while the lookup runs: it finishes unseen (its list is
 * released), and a new call does not join it. */
static void test_shared_cancel_all_running(void **state)
{
    struct fx *x = *state;
    struct evexec_future *a, *b, *c;

    atomic_store(&gai_gate, &x->gate);
    a = lookup_localhost(x, "80");
    b = lookup_localhost(x, "80");
    assert_int_equal(tu_gate_wait_arrived(&x->gate, 1), 0);
    assert_int_equal(evexec_future_cancel(a), 0);
    assert_int_equal(evexec_future_cancel(b), 0);
    c = lookup_localhost(x, "80");
    assert_int_equal(tu_gate_wait_arrived(&x->gate, 2), 0);     /* a second lookup */
    tu_gate_open(&x->gate);
    assert_int_equal(outcome(x, a), ECANCELED);
    assert_int_equal(outcome(x, b), ECANCELED);
    assert_int_equal(finish(x, c), 0);
    check_localhost_list(evexec_future_result(c), NULL);
    evexec_future_unref(c);
    assert_int_equal(calls(), 2);
    settle(x);          /* the abandoned lookup comes back, unseen */
}

/* evexec_free with waiters on a running lookup and on a queued one: each
 * ends ECANCELED, its callback run once. */
static void test_shared_free_with_waiters(void **state)
{
    struct fx *x = *state;
    struct evexec_future *slow[SLOW_MAX - 1];
    struct tu_rec rec[6];

    fill_slow_lane(x, slow, SLOW_MAX - 1);      /* one slow thread left */
    atomic_store(&gai_gate, &x->gate);
    for (int i = 0; i < 6; i++) {
        struct evexec_future *f = lookup_localhost(x, i < 3 ? "80" : "81");
        tu_rec_init(&rec[i]);
        assert_int_equal(evexec_future_on_done(f, tu_rec_cb, &rec[i]), 0);
        evexec_future_unref(f);                 /* the callbacks keep them */
    }
    assert_int_equal(tu_gate_wait_arrived(&x->gate, SLOW_MAX), 0);
    assert_int_equal(tu_stats(x->pool).queued, 1);   /* "81" waits */
    for (unsigned i = 0; i < SLOW_MAX - 1; i++)
        evexec_future_unref(slow[i]);
    evexec_free(x->ex);
    x->ex = NULL;
    for (int i = 0; i < 6; i++) {
        assert_int_equal(rec[i].calls, 1);
        assert_int_equal(rec[i].error, ECANCELED);
    }
    assert_int_equal(calls(), 1);
}

/* An error reaches every waiter. */
static void test_shared_error(void **state)
{
    struct fx *x = *state;
    struct evexec_future *fs[3];
    for (int i = 0; i < 3; i++) {
        fs[i] = evexec_getaddrinfo(x->ex, "no-such-host.invalid", "80", NULL);
        assert_non_null(fs[i]);
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(finish(x, fs[i]), EAI_NONAME);
        assert_null(evexec_future_result(fs[i]));
        evexec_future_unref(fs[i]);
    }
    assert_int_equal(calls(), 1);
}

static int set_cache(struct fx *x, unsigned pos, unsigned neg, size_t max)
{
    struct evexec_dns_cache_opts o = EVEXEC_DNS_CACHE_OPTS_INIT;
    o.positive_ttl_ms = pos;
    o.negative_ttl_ms = neg;
    o.max_entries = max;
    return evexec_dns_set_cache(x->ex, &o);
}

/* A hit within the TTL makes no call and ends at once with a list of its
 * own; the first call after it makes one. */
static void test_cache_positive(void **state)
{
    struct fx *x = *state;
    assert_int_equal(set_cache(x, 5000, 0, 0), 0);

    struct evexec_future *f = lookup_localhost(x, "80");
    assert_int_equal(finish(x, f), 0);
    struct addrinfo *first = evexec_future_take_result(f);
    evexec_future_unref(f);
    assert_int_equal(calls(), 1);

    fake_ms += 4999;
    f = lookup_localhost(x, "80");
    assert_true(evexec_future_done(f));         /* from the cache, at once */
    assert_int_equal(finish(x, f), 0);
    struct addrinfo *hit = evexec_future_take_result(f);
    evexec_future_unref(f);
    assert_int_equal(calls(), 1);
    check_localhost_list(hit, first);
    freeaddrinfo(first);
    freeaddrinfo(hit);

    /* Failures are not cached without a negative TTL. */
    assert_int_equal(outcome(x, evexec_getaddrinfo(x->ex, "a.invalid", NULL, NULL)),
                     EAI_NONAME);
    assert_int_equal(outcome(x, evexec_getaddrinfo(x->ex, "a.invalid", NULL, NULL)),
                     EAI_NONAME);
    assert_int_equal(calls(), 3);

    fake_ms += 1;                               /* expired */
    assert_int_equal(outcome(x, lookup_localhost(x, "80")), 0);
    assert_int_equal(calls(), 4);
    assert_int_equal(outcome(x, lookup_localhost(x, "80")), 0);
    assert_int_equal(calls(), 4);

    /* Turned off: emptied, and nothing is kept. */
    assert_int_equal(evexec_dns_set_cache(x->ex, NULL), 0);
    assert_int_equal(outcome(x, lookup_localhost(x, "80")), 0);
    assert_int_equal(outcome(x, lookup_localhost(x, "80")), 0);
    assert_int_equal(calls(), 6);

    /* Setting it again empties it. */
    assert_int_equal(set_cache(x, 5000, 0, 0), 0);
    assert_int_equal(outcome(x, lookup_localhost(x, "80")), 0);
    assert_int_equal(set_cache(x, 5000, 0, 0), 0);
    assert_int_equal(outcome(x, lookup_localhost(x, "80")), 0);
    assert_int_equal(calls(), 8);
    /* An entry left for evexec_free to release. */
    assert_int_equal(outcome(x, lookup_localhost(x, "80")), 0);
    assert_int_equal(calls(), 8);
}

/* A name that has no address is cached for the negative TTL. */
static void test_cache_negative(void **state)
{
    struct fx *x = *state;
    assert_int_equal(set_cache(x, 0, 1000, 0), 0);

    assert_int_equal(outcome(x, evexec_getaddrinfo(x->ex, "no-such-host.invalid", "80",
                                                   NULL)),
                     EAI_NONAME);
    assert_int_equal(calls(), 1);
    fake_ms += 999;
    struct evexec_future *f = evexec_getaddrinfo(x->ex, "no-such-host.invalid", "80", NULL);
    assert_true(evexec_future_done(f));
    assert_int_equal(outcome(x, f), EAI_NONAME);
    assert_int_equal(calls(), 1);
    fake_ms += 1;
    assert_int_equal(outcome(x, evexec_getaddrinfo(x->ex, "no-such-host.invalid", "80",
                                                   NULL)),
                     EAI_NONAME);
    assert_int_equal(calls(), 2);

    /* Successes are not cached without a positive TTL. */
    assert_int_equal(outcome(x, lookup_localhost(x, "80")), 0);
    assert_int_equal(outcome(x, lookup_localhost(x, "80")), 0);
    assert_int_equal(calls(), 4);
}

/* A full cache lets the oldest entry go. */
static void test_cache_max_entries(void **state)
{
    struct fx *x = *state;
    assert_int_equal(set_cache(x, 60000, 60000, 2), 0);
    assert_int_equal(outcome(x, lookup_localhost(x, "1")), 0);
    assert_int_equal(outcome(x, lookup_localhost(x, "2")), 0);
    assert_int_equal(outcome(x, lookup_localhost(x, "3")), 0);
    assert_int_equal(calls(), 3);
    assert_int_equal(outcome(x, lookup_localhost(x, "3")), 0);
    assert_int_equal(outcome(x, lookup_localhost(x, "2")), 0);
    assert_int_equal(calls(), 3);
    assert_int_equal(outcome(x, lookup_localhost(x, "1")), 0);  /* it went */
    assert_int_equal(calls(), 4);
}

/* Identical calls in flight share one lookup with the cache on too, and
 * the cached list is copied for each. */
static void test_cache_and_shared(void **state)
{
    struct fx *x = *state;
    assert_int_equal(set_cache(x, 60000, 0, 0), 0);
    struct evexec_future *a = lookup_localhost(x, "80"), *b = lookup_localhost(x, "80");
    assert_int_equal(finish(x, a), 0);
    assert_int_equal(finish(x, b), 0);
    struct evexec_future *c = lookup_localhost(x, "80");
    assert_int_equal(finish(x, c), 0);
    assert_int_equal(calls(), 1);
    check_localhost_list(evexec_future_result(a), evexec_future_result(b));
    check_localhost_list(evexec_future_result(c), evexec_future_result(a));
    check_localhost_list(evexec_future_result(c), evexec_future_result(b));
    evexec_future_unref(a);
    evexec_future_unref(b);
    evexec_future_unref(c);
}

static void test_cache_bad_input(void **state)
{
    struct fx *x = *state;
    struct evexec_dns_cache_opts o = EVEXEC_DNS_CACHE_OPTS_INIT;
    o.positive_ttl_ms = 1000;
    assert_int_equal(evexec_dns_set_cache(NULL, &o), EINVAL);
    o.size = 1;
    assert_int_equal(evexec_dns_set_cache(x->ex, &o), EINVAL);
    o.size = 0;                                 /* the first layout */
    assert_int_equal(evexec_dns_set_cache(x->ex, &o), 0);
    struct {
        struct evexec_dns_cache_opts o;
        size_t later;                           /* a field of a later version */
    } big;
    memset(&big, 0, sizeof big);
    big.o.size = sizeof big;
    big.later = 1;
    assert_int_equal(evexec_dns_set_cache(x->ex, &big.o), EINVAL);
    big.later = 0;
    assert_int_equal(evexec_dns_set_cache(x->ex, &big.o), 0);
}

/* ---- the tools, end to end --------------------------------------------------------- */

/* Run a tool of the build tree with `args`; its output (stdout and
 * stderr) goes to out.  Returns the exit status, or -1 when the tool was
 * not built (the test is then skipped). */
static int run_tool(const char *tool, const char *args, char *out, size_t size)
{
    const char *top = getenv("top_builddir");
    char path[1024], cmd[2048];
    snprintf(path, sizeof path, "%s/tools/%s", top ? top : ".", tool);
    if (access(path, X_OK) != 0)
        return -1;
    snprintf(cmd, sizeof cmd, "%s %s 2>&1 </dev/null", path, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, size - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int count_lines_with(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void test_tool_resolve(void **state)
{
    (void)state;
    static char out[8192];
    int rc = run_tool("evexec-resolve", "--family 4 localhost 127.0.0.1", out, sizeof out);
    if (rc < 0)
        skip();
    assert_int_equal(rc, 0);
    /* getent ahosts: address, socket type, the canonical name first. */
    assert_non_null(strstr(out, "127.0.0.1       STREAM localhost\n"));
    assert_non_null(strstr(out, "127.0.0.1       STREAM 127.0.0.1\n"));
    assert_int_equal(count_lines_with(out, "DGRAM"), 2);
    assert_int_equal(count_lines_with(out, "RAW"), 2);
    assert_non_null(strstr(out, "single lookups"));

    /* Names one per line on standard input; a failure exits 2. */
    rc = run_tool("evexec-resolve", "--jobs 2 --numeric not-a-number 127.0.0.1", out,
                  sizeof out);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "not-a-number"));
    assert_non_null(strstr(out, "127.0.0.1       STREAM"));

    rc = run_tool("evexec-resolve", "--family 5 localhost", out, sizeof out);
    assert_int_equal(rc, 64);
}

static void test_tool_fetch(void **state)
{
    (void)state;
    static char out[8192];
    int rc = run_tool("evexec-fetch", "--count 4 --delay-ms 30", out, sizeof out);
    if (rc < 0)
        skip();
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "one after another"));
    assert_non_null(strstr(out, "on the pool"));
    assert_non_null(strstr(out, "evhttp"));
    assert_int_equal(count_lines_with(out, " 4/4 ok "), 3);

    /* The socket client, whatever configure found. */
    rc = run_tool("evexec-fetch", "--client socket --count 3 --delay-ms 10", out, sizeof out);
    assert_int_equal(rc, 0);
    assert_int_equal(count_lines_with(out, " 3/3 ok "), 3);

    /* A URL it cannot fetch is refused before anything is sent (URLs of
     * every kind: tests/fetch-urls.sh). */
    rc = run_tool("evexec-fetch", "ftp://127.0.0.1/", out, sizeof out);
    assert_int_equal(rc, 64);
    assert_non_null(strstr(out, "refused"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_getaddrinfo_localhost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_getaddrinfo_numeric, setup, teardown),
        cmocka_unit_test_setup_teardown(test_getaddrinfo_ipv6, setup, teardown),
        cmocka_unit_test_setup_teardown(test_getaddrinfo_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_getnameinfo_v4, setup, teardown),
        cmocka_unit_test_setup_teardown(test_getnameinfo_v6, setup, teardown),
        cmocka_unit_test_setup_teardown(test_getnameinfo_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arguments_copied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_queued_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_queued_lookups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_lane_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_identical, setup_hooked, teardown_hooked),
        cmocka_unit_test_setup_teardown(test_shared_keys_differ, setup_hooked, teardown_hooked),
        cmocka_unit_test_setup_teardown(test_shared_cancel_one, setup_hooked, teardown_hooked),
        cmocka_unit_test_setup_teardown(test_shared_cancel_all_queued, setup_hooked,
                                        teardown_hooked),
        cmocka_unit_test_setup_teardown(test_shared_cancel_all_running, setup_hooked,
                                        teardown_hooked),
        cmocka_unit_test_setup_teardown(test_shared_free_with_waiters, setup_hooked,
                                        teardown_hooked),
        cmocka_unit_test_setup_teardown(test_shared_error, setup_hooked, teardown_hooked),
        cmocka_unit_test_setup_teardown(test_cache_positive, setup_hooked, teardown_hooked),
        cmocka_unit_test_setup_teardown(test_cache_negative, setup_hooked, teardown_hooked),
        cmocka_unit_test_setup_teardown(test_cache_max_entries, setup_hooked, teardown_hooked),
        cmocka_unit_test_setup_teardown(test_cache_and_shared, setup_hooked, teardown_hooked),
        cmocka_unit_test_setup_teardown(test_cache_bad_input, setup_hooked, teardown_hooked),
        cmocka_unit_test(test_tool_resolve),
        cmocka_unit_test(test_tool_fetch),
    };
    return cmocka_run_group_tests_name("dns", tests, NULL, NULL);
}
