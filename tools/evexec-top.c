/*
 * evexec-top -- watch a running program's evexec pool, like top.
 *
 *   evexec-top [--once] [--interval MS] PATH
 *
 * PATH is the Unix socket the program opened with evexec_stats_listen().
 * Every interval (1000 ms) evexec-top connects, reads the snapshot the
 * program answers with ("pool key=value..." and a "lane=NAME key=value..."
 * line per lane) and redraws a table in place (ANSI clear and home), with
 * the jobs completed per second since the last snapshot.  --once prints
 * the table once, as plain lines, and exits: 0, or 1 when the program
 * could not be reached.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_LANES 8

struct lane {
    char name[32];
    unsigned long long queued, running, completed, cancelled;
    char q50[24], q99[24], qmax[24], r50[24], r99[24], rmax[24];
};

struct snap {
    int have_pool;
    unsigned long long threads, idle;
    int nlanes;
    struct lane lanes[MAX_LANES];
};

static void usage(FILE *to)
{
    fprintf(to, "usage: evexec-top [--once] [--interval MS] PATH\n"
                "  PATH           the Unix socket a program opened with evexec_stats_listen()\n"
                "  --once         print one snapshot as plain lines and exit\n"
                "  --interval MS  time between snapshots (default 1000)\n");
}

/* Connect, read everything until the program closes.  Returns the length
 * read, or -1 with errno. */
static ssize_t fetch(const char *path, char *buf, size_t len)
{
    struct sockaddr_un sa;
    if (strlen(path) >= sizeof sa.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    /* A program that never answers does not hang us. */
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, len - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (r == 0 || (n += (size_t)r) == len - 1)
            break;
    }
    close(fd);
    buf[n] = '\0';
    return (ssize_t)n;
}

/* The value of `key=` in a line of space-separated key=value words. */
static int field(const char *line, const char *key, char *out, size_t len)
{
    size_t kl = strlen(key);
    for (const char *p = line; p && *p;) {
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
            p += kl + 1;
            size_t n = strcspn(p, " \n");
            if (n >= len)
                n = len - 1;
            memcpy(out, p, n);
            out[n] = '\0';
            return 1;
        }
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    return 0;
}

static unsigned long long num(const char *line, const char *key)
{
    char v[32];
    return field(line, key, v, sizeof v) ? strtoull(v, NULL, 10) : 0;
}

static void parse(char *text, struct snap *s)
{
    memset(s, 0, sizeof *s);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "pool ", 5) == 0) {
            s->have_pool = 1;
            s->threads = num(line, "threads");
            s->idle = num(line, "idle");
        } else if (strncmp(line, "lane=", 5) == 0 && s->nlanes < MAX_LANES) {
            struct lane *l = &s->lanes[s->nlanes++];
            field(line, "lane", l->name, sizeof l->name);
            l->queued = num(line, "queued");
            l->running = num(line, "running");
            l->completed = num(line, "completed");
            l->cancelled = num(line, "cancelled");
            field(line, "queued_p50_us", l->q50, sizeof l->q50);
            field(line, "queued_p99_us", l->q99, sizeof l->q99);
            field(line, "queued_max_us", l->qmax, sizeof l->qmax);
            field(line, "running_p50_us", l->r50, sizeof l->r50);
            field(line, "running_p99_us", l->r99, sizeof l->r99);
            field(line, "running_max_us", l->rmax, sizeof l->rmax);
        }
    }
}

/* The completed count of lane `name` in the previous snapshot. */
static const struct lane *find_lane(const struct snap *s, const char *name)
{
    for (int i = 0; i < s->nlanes; i++)
        if (strcmp(s->lanes[i].name, name) == 0)
            return &s->lanes[i];
    return NULL;
}

/* A percentile bound as the table shows it: "-" for none (no jobs yet). */
static const char *bnd(const char *v)
{
    return (!*v || strcmp(v, "0") == 0) ? "-" : v;
}

static void show(const char *path, const struct snap *s, const struct snap *prev,
                 double secs)
{
    char when[32];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%H:%M:%S", localtime(&now));
    printf("evexec-top  %s  %s", path, when);
    if (s->have_pool)
        printf("  threads %llu (idle %llu)", s->threads, s->idle);
    printf("\n\n%-8s %8s %8s %12s %10s %10s  %-22s %-22s\n", "LANE", "QUEUED",
           "RUNNING", "COMPLETED", "CANCELLED", "DONE/S",
           "QUEUED <us p50/p99/max", "RUNNING <us p50/p99/max");
    for (int i = 0; i < s->nlanes; i++) {
        const struct lane *l = &s->lanes[i];
        const struct lane *p = prev ? find_lane(prev, l->name) : NULL;
        char rate[24] = "-";
        if (p && secs > 0 && l->completed >= p->completed)
            snprintf(rate, sizeof rate, "%.0f", (double)(l->completed - p->completed) / secs);
        char qb[80], rb[80];
        snprintf(qb, sizeof qb, "%s/%s/%s", bnd(l->q50), bnd(l->q99), bnd(l->qmax));
        snprintf(rb, sizeof rb, "%s/%s/%s", bnd(l->r50), bnd(l->r99), bnd(l->rmax));
        printf("%-8s %8llu %8llu %12llu %10llu %10s  %-22s %-22s\n", l->name,
               l->queued, l->running, l->completed, l->cancelled, rate, qb, rb);
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    int once = 0;
    long interval_ms = 1000;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--once") == 0) {
            once = 1;
        } else if (strcmp(argv[i], "--interval") == 0 && i + 1 < argc) {
            char *end;
            interval_ms = strtol(argv[++i], &end, 10);
            if (*end || interval_ms < 10 || interval_ms > 3600000) {
                fprintf(stderr, "evexec-top: --interval wants 10 to 3600000 ms\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' || path) {
            usage(stderr);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    static char buf[16384];
    struct snap cur, prev;
    int have_prev = 0;
    double prev_t = 0;
    for (;;) {
        ssize_t n = fetch(path, buf, sizeof buf);
        if (once) {
            if (n < 0) {
                fprintf(stderr, "evexec-top: %s: %s\n", path, strerror(errno));
                return 1;
            }
            parse(buf, &cur);
            show(path, &cur, NULL, 0);
            return 0;
        }
        double t = now_s();
        printf("\033[H\033[2J");
        if (n < 0) {
            printf("evexec-top  %s: %s (trying again)\n", path, strerror(errno));
            have_prev = 0;
        } else {
            parse(buf, &cur);
            show(path, &cur, have_prev ? &prev : NULL, t - prev_t);
            prev = cur;
            prev_t = t;
            have_prev = 1;
        }
        fflush(stdout);
        struct timespec d = { interval_ms / 1000, (interval_ms % 1000) * 1000000L };
        while (nanosleep(&d, &d) != 0 && errno == EINTR)
            continue;
    }
}
