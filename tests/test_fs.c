/*
 * test_fs.c -- the evexec_fs_* calls against a fresh temporary directory:
 * every call's result and errors, read_file of 0 bytes, 1 byte and more
 * than 64 MiB, write_file's atomicity (also when cancelled), descriptors
 * that a cancelled or orphaned open must not leak, bad input refused at
 * the call, and requests freed on every path (ASan's leak check).
 *
 * Each test gets a base, a pool of its own, an evexec and a directory made
 * by mkdtemp (removed afterwards).  Jobs that must stay queued are put
 * behind a one-thread pool blocked at a gate.  A job that must be running
 * when the test acts blocks in open(2) of a FIFO, which returns once the
 * test opens the other end.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "evexec.h"
#include "testutil.h"

struct fx {
    struct event_base *base;
    struct evexec_pool *pool;
    struct evexec *ex;
    struct tu_gate gate;
    char dir[64];
    char path[8][128];          /* in_dir() results, in turn */
    unsigned next_path;
};

static struct fx *fx_make(unsigned max_threads)
{
    struct fx *x = calloc(1, sizeof *x);
    assert_non_null(x);
    tu_gate_init(&x->gate);
    snprintf(x->dir, sizeof x->dir, "%s/evexec-fs-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(x->dir));
    x->base = event_base_new();
    assert_non_null(x->base);
    x->pool = tu_pool_new(max_threads, 0);
    assert_non_null(x->pool);
    x->ex = evexec_new(x->base, x->pool);
    assert_non_null(x->ex);
    return x;
}

static int setup(void **state)
{
    *state = fx_make(4);
    return 0;
}

static int setup_one_thread(void **state)
{
    *state = fx_make(1);
    return 0;
}

static int rm_entry(const char *p, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(p);
}

static int teardown(void **state)
{
    struct fx *x = *state;
    tu_gate_open(&x->gate);
    evexec_free(x->ex);
    evexec_pool_free(x->pool);
    event_base_free(x->base);
    nftw(x->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    tu_gate_destroy(&x->gate);
    free(x);
    return 0;
}

/* "<dir>/<name>", in one of eight rotating buffers. */
static const char *in_dir(struct fx *x, const char *name)
{
    char *p = x->path[x->next_path++ % 8];
    snprintf(p, sizeof x->path[0], "%s/%s", x->dir, name);
    return p;
}

/* Run the loop until f has ended (see tu_finish); its error. */
static int finish(struct fx *x, struct evexec_future *f)
{
    return tu_finish(x->ex, f);
}

/* finish() for a call that must succeed; the caller unrefs f. */
static struct evexec_future *ok(struct fx *x, struct evexec_future *f)
{
    assert_int_equal(finish(x, f), 0);
    return f;
}

/* finish() and drop the future: its error. */
static int outcome(struct fx *x, struct evexec_future *f)
{
    int rc = finish(x, f);
    evexec_future_unref(f);
    return rc;
}

static void put_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

/* Entries of the test directory, "." and ".." left out. */
static int dir_entries(struct fx *x)
{
    DIR *d = opendir(x->dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* The whole file at path, NUL-terminated (free it). */
static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    rewind(fp);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, fp), (size_t)n);
    s[n] = '\0';
    fclose(fp);
    *len = (size_t)n;
    return s;
}

static int stat_pending_running(void *arg)
{
    return tu_stats(arg).running >= 1;
}

/* Occupy a one-thread pool with a job parked at the gate. */
static struct evexec_future *block_pool(struct fx *x)
{
    struct evexec_future *g = evexec_run(x->ex, tu_gated_job, &x->gate);
    assert_non_null(g);
    assert_int_equal(tu_gate_wait_arrived(&x->gate, 1), 0);
    return g;
}

/* ---- descriptors and byte counts ------------------------------------------ */

static void test_open_write_read_close(void **state)
{
    struct fx *x = *state;
    const char *p = in_dir(x, "data");
    char buf[32] = { 0 };

    struct evexec_future *fo = ok(x, evexec_fs_open(x->ex, p, O_RDWR | O_CREAT, 0600));
    int fd = evexec_fs_fd(fo);
    assert_true(fd >= 0);
    assert_int_equal(evexec_fs_fd(fo), fd);          /* borrowed, still there */
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);

    struct evexec_future *f = ok(x, evexec_fs_write(x->ex, fd, "hello", 5));
    assert_int_equal(evexec_fs_count(f), 5);
    evexec_future_unref(f);

    f = ok(x, evexec_fs_pwrite(x->ex, fd, " world", 6, 5));
    assert_int_equal(evexec_fs_count(f), 6);
    evexec_future_unref(f);

    f = ok(x, evexec_fs_pread(x->ex, fd, buf, sizeof buf, 0));
    assert_int_equal(evexec_fs_count(f), 11);
    assert_string_equal(buf, "hello world");
    evexec_future_unref(f);

    /* read() goes on from the offset write() left: after "hello". */
    memset(buf, 0, sizeof buf);
    f = ok(x, evexec_fs_read(x->ex, fd, buf, sizeof buf));
    assert_int_equal(evexec_fs_count(f), 6);
    assert_string_equal(buf, " world");
    evexec_future_unref(f);

    f = ok(x, evexec_fs_read(x->ex, fd, buf, sizeof buf));      /* end of file */
    assert_int_equal(evexec_fs_count(f), 0);
    evexec_future_unref(f);

    f = ok(x, evexec_fs_fstat(x->ex, fd));
    const struct stat *st = evexec_future_result(f);
    assert_non_null(st);
    assert_int_equal(st->st_size, 11);
    assert_true(S_ISREG(st->st_mode));
    evexec_future_unref(f);

    assert_int_equal(outcome(x, evexec_fs_fsync(x->ex, fd)), 0);
    assert_int_equal(outcome(x, evexec_fs_fdatasync(x->ex, fd)), 0);

    /* Taking the descriptor: the future lets go of it. */
    assert_int_equal(evexec_fs_take_fd(fo), fd);
    errno = 0;
    assert_int_equal(evexec_fs_fd(fo), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(evexec_fs_take_fd(fo), -1);
    evexec_future_unref(fo);
    assert_true(fcntl(fd, F_GETFD) >= 0);             /* not closed by unref */

    assert_int_equal(outcome(x, evexec_fs_close(x->ex, fd)), 0);
    assert_int_equal(fcntl(fd, F_GETFD), -1);
    assert_int_equal(outcome(x, evexec_fs_close(x->ex, fd)), EBADF);
}

static void test_future_owns_fd(void **state)
{
    struct fx *x = *state;
    int before = open_fds();
    struct evexec_future *fo = ok(x, evexec_fs_open(x->ex, x->dir, O_RDONLY, 0));
    int fd = evexec_fs_fd(fo);
    assert_true(fd >= 0);
    assert_int_equal(open_fds(), before + 1);
    evexec_future_unref(fo);                /* never taken: closed with it */
    assert_int_equal(fcntl(fd, F_GETFD), -1);
    assert_int_equal(open_fds(), before);
}

static void test_io_errors(void **state)
{
    struct fx *x = *state;
    char buf[8];
    int closed = open("/dev/null", O_RDONLY);
    assert_true(closed >= 0);
    close(closed);                          /* a descriptor number now unused */

    struct evexec_future *f = evexec_fs_read(x->ex, closed, buf, sizeof buf);
    assert_int_equal(finish(x, f), EBADF);
    errno = 0;
    assert_int_equal(evexec_fs_count(f), -1);
    assert_int_equal(errno, EBADF);
    evexec_future_unref(f);

    assert_int_equal(outcome(x, evexec_fs_write(x->ex, closed, "x", 1)), EBADF);
    assert_int_equal(outcome(x, evexec_fs_pread(x->ex, closed, buf, 1, 0)), EBADF);
    assert_int_equal(outcome(x, evexec_fs_pwrite(x->ex, closed, "x", 1, 0)), EBADF);
    assert_int_equal(outcome(x, evexec_fs_fstat(x->ex, closed)), EBADF);
    assert_int_equal(outcome(x, evexec_fs_fsync(x->ex, closed)), EBADF);
    assert_int_equal(outcome(x, evexec_fs_fdatasync(x->ex, closed)), EBADF);
    assert_int_equal(outcome(x, evexec_fs_open(x->ex, in_dir(x, "missing"), O_RDONLY, 0)),
                     ENOENT);

    /* Writing to a descriptor opened read-only. */
    f = ok(x, evexec_fs_open(x->ex, x->dir, O_RDONLY | O_DIRECTORY, 0));
    int dfd = evexec_fs_fd(f);
    assert_int_equal(outcome(x, evexec_fs_write(x->ex, dfd, "x", 1)), EBADF);
    assert_int_equal(outcome(x, evexec_fs_read(x->ex, dfd, buf, sizeof buf)), EISDIR);
    evexec_future_unref(f);
}

static void test_accessors(void **state)
{
    struct fx *x = *state;

    errno = 0;
    assert_int_equal(evexec_fs_count(NULL), -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(evexec_fs_fd(NULL), -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(evexec_fs_take_fd(NULL), -1);
    assert_int_equal(errno, EINVAL);

    /* Pending: EINPROGRESS. */
    struct evexec_future *f = evexec_fs_stat(x->ex, x->dir);
    assert_non_null(f);
    errno = 0;
    assert_int_equal(evexec_fs_count(f), -1);
    assert_int_equal(errno, EINPROGRESS);
    assert_int_equal(finish(x, f), 0);

    /* Another kind of result: EINVAL, not a number made of a pointer. */
    errno = 0;
    assert_int_equal(evexec_fs_count(f), -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(evexec_fs_fd(f), -1);
    assert_int_equal(errno, EINVAL);
    evexec_future_unref(f);

    /* A descriptor is not a count, nor a count a descriptor. */
    f = ok(x, evexec_fs_open(x->ex, "/dev/null", O_RDONLY, 0));
    errno = 0;
    assert_int_equal(evexec_fs_count(f), -1);
    assert_int_equal(errno, EINVAL);
    char c;
    struct evexec_future *r = ok(x, evexec_fs_read(x->ex, evexec_fs_fd(f), &c, 0));
    assert_int_equal(evexec_fs_count(r), 0);
    errno = 0;
    assert_int_equal(evexec_fs_fd(r), -1);
    assert_int_equal(errno, EINVAL);
    evexec_future_unref(r);
    evexec_future_unref(f);

    /* A hand-made future is not an fs future. */
    f = evexec_future_new(x->ex);
    assert_int_equal(evexec_future_set_result(f, (void *)1, NULL), 0);
    errno = 0;
    assert_int_equal(evexec_fs_count(f), -1);
    assert_int_equal(errno, EINVAL);
    evexec_future_unref(f);
}

/* ---- paths ------------------------------------------------------------------ */

static void test_stat_rename_unlink(void **state)
{
    struct fx *x = *state;
    const char *a = in_dir(x, "a"), *b = in_dir(x, "b");
    put_file(a, "12345");

    struct evexec_future *f = ok(x, evexec_fs_stat(x->ex, a));
    const struct stat *st = evexec_future_result(f);
    assert_int_equal(st->st_size, 5);
    evexec_future_unref(f);

    assert_int_equal(outcome(x, evexec_fs_rename(x->ex, a, b)), 0);
    assert_int_equal(outcome(x, evexec_fs_stat(x->ex, a)), ENOENT);
    assert_int_equal(outcome(x, evexec_fs_stat(x->ex, b)), 0);
    assert_int_equal(outcome(x, evexec_fs_rename(x->ex, a, b)), ENOENT);
    assert_int_equal(outcome(x, evexec_fs_unlink(x->ex, b)), 0);
    assert_int_equal(outcome(x, evexec_fs_unlink(x->ex, b)), ENOENT);
    assert_int_equal(dir_entries(x), 0);
}

static void test_mkdir_rmdir_scandir(void **state)
{
    struct fx *x = *state;
    char sub[128];
    snprintf(sub, sizeof sub, "%s", in_dir(x, "sub"));

    assert_int_equal(outcome(x, evexec_fs_mkdir(x->ex, sub, 0700)), 0);
    assert_int_equal(outcome(x, evexec_fs_mkdir(x->ex, sub, 0700)), EEXIST);
    put_file(in_dir(x, "b"), "");
    put_file(in_dir(x, "a"), "");
    put_file(in_dir(x, "B"), "");
    put_file(in_dir(x, ".hidden"), "");

    struct evexec_future *f = ok(x, evexec_fs_scandir(x->ex, x->dir));
    const struct evexec_dirlist *dl = evexec_future_result(f);
    assert_non_null(dl);
    assert_int_equal(dl->count, 5);
    static const char *const want[] = { ".hidden", "B", "a", "b", "sub" };
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(dl->names[i], want[i]);
    assert_null(dl->names[5]);
    evexec_future_unref(f);

    /* Taken, the list is one block that free() releases. */
    f = ok(x, evexec_fs_scandir(x->ex, sub));
    struct evexec_dirlist *empty = evexec_future_take_result(f);
    assert_non_null(empty);
    assert_int_equal(empty->count, 0);
    assert_null(empty->names[0]);
    free(empty);
    evexec_future_unref(f);

    put_file(in_dir(x, "sub/inner"), "");
    assert_int_equal(outcome(x, evexec_fs_rmdir(x->ex, sub)), ENOTEMPTY);
    assert_int_equal(outcome(x, evexec_fs_unlink(x->ex, in_dir(x, "sub/inner"))), 0);
    assert_int_equal(outcome(x, evexec_fs_rmdir(x->ex, sub)), 0);
    assert_int_equal(outcome(x, evexec_fs_rmdir(x->ex, sub)), ENOENT);
    assert_int_equal(outcome(x, evexec_fs_scandir(x->ex, sub)), ENOENT);
    assert_int_equal(outcome(x, evexec_fs_scandir(x->ex, in_dir(x, "a"))), ENOTDIR);
    assert_int_equal(outcome(x, evexec_fs_mkdir(x->ex, in_dir(x, "no/such"), 0700)),
                     ENOENT);
}

/* ---- read_file ---------------------------------------------------------------- */

/* read_file(path) must succeed: its buffer (borrowed from f). */
static const struct evexec_buf *read_ok(struct fx *x, const char *path,
                                        struct evexec_future **fp)
{
    *fp = ok(x, evexec_fs_read_file(x->ex, path));
    const struct evexec_buf *b = evexec_future_result(*fp);
    assert_non_null(b);
    assert_non_null(b->data);
    assert_int_equal(((const char *)b->data)[b->len], '\0');
    return b;
}

static void test_read_file_small(void **state)
{
    struct fx *x = *state;
    struct evexec_future *f;

    put_file(in_dir(x, "empty"), "");
    const struct evexec_buf *b = read_ok(x, in_dir(x, "empty"), &f);
    assert_int_equal(b->len, 0);
    evexec_future_unref(f);

    put_file(in_dir(x, "one"), "z");
    b = read_ok(x, in_dir(x, "one"), &f);
    assert_int_equal(b->len, 1);
    assert_string_equal(b->data, "z");
    evexec_future_unref(f);

    /* Not a regular file: read until end of file. */
    b = read_ok(x, "/proc/self/status", &f);
    assert_true(b->len > 0);
    assert_non_null(strstr(b->data, "Name:"));
    evexec_future_unref(f);

    assert_int_equal(outcome(x, evexec_fs_read_file(x->ex, x->dir)), EISDIR);
    assert_int_equal(outcome(x, evexec_fs_read_file(x->ex, in_dir(x, "nope"))), ENOENT);
}

static void test_read_file_large(void **state)
{
    struct fx *x = *state;
    const size_t size = ((size_t)64 << 20) + 3;     /* more than 64 MiB */
    const char *p = in_dir(x, "big");
    int fd = open(p, O_RDWR | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);   /* sparse: quick */
    assert_int_equal(pwrite(fd, "head", 4, 0), 4);
    assert_int_equal(pwrite(fd, "mid", 3, (off_t)(size / 2)), 3);
    assert_int_equal(pwrite(fd, "end", 3, (off_t)(size - 3)), 3);
    close(fd);

    struct evexec_future *f;
    const struct evexec_buf *b = read_ok(x, p, &f);
    const char *d = b->data;
    assert_int_equal(b->len, size);
    assert_memory_equal(d, "head", 4);
    assert_memory_equal(d + size / 2, "mid", 3);
    assert_memory_equal(d + size - 3, "end", 3);
    assert_int_equal(d[4], 0);
    assert_int_equal(d[size - 4], 0);
    evexec_future_unref(f);
}

/* ---- write_file ---------------------------------------------------------------- */

static void assert_file(const char *path, const char *want)
{
    size_t len;
    char *s = slurp(path, &len);
    assert_int_equal(len, strlen(want));
    assert_string_equal(s, want);
    free(s);
}

static void test_write_file(void **state)
{
    struct fx *x = *state;
    const char *p = in_dir(x, "conf");

    assert_int_equal(outcome(x, evexec_fs_write_file(x->ex, p, "first", 5, 0600)), 0);
    assert_file(p, "first");
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0077, 0);         /* 0600 less the umask */

    assert_int_equal(outcome(x, evexec_fs_write_file(x->ex, p, "second!", 7, 0600)), 0);
    assert_file(p, "second!");

    assert_int_equal(outcome(x, evexec_fs_write_file(x->ex, p, NULL, 0, 0600)), 0);
    assert_file(p, "");
    assert_int_equal(dir_entries(x), 1);             /* no temporary left */

    /* Relative path: the temporary goes in the current directory. */
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(x->dir), 0);
    int rc = outcome(x, evexec_fs_write_file(x->ex, "rel", "r", 1, 0644));
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(rc, 0);
    assert_file(in_dir(x, "rel"), "r");
    assert_int_equal(dir_entries(x), 2);
}

static void test_write_file_errors(void **state)
{
    struct fx *x = *state;
    const char *sub = in_dir(x, "sub");

    assert_int_equal(outcome(x, evexec_fs_write_file(x->ex, in_dir(x, "no/f"), "x", 1, 0600)),
                     ENOENT);
    /* The target is a directory: the rename fails, nothing is left. */
    assert_int_equal(mkdir(sub, 0700), 0);
    int rc = outcome(x, evexec_fs_write_file(x->ex, sub, "x", 1, 0600));
    assert_true(rc == EISDIR || rc == EEXIST || rc == ENOTEMPTY);
    assert_int_equal(dir_entries(x), 1);
}

static void test_write_file_cancel_queued(void **state)
{
    struct fx *x = *state;                   /* one thread */
    const char *p = in_dir(x, "t");
    put_file(p, "old");

    struct evexec_future *g = block_pool(x);
    struct evexec_future *f = evexec_fs_write_file(x->ex, p, "new", 3, 0600);
    assert_non_null(f);
    assert_int_equal(evexec_future_cancel(f), 0);
    assert_true(evexec_future_cancelled(f));
    tu_gate_open(&x->gate);
    assert_int_equal(finish(x, f), ECANCELED);
    evexec_future_unref(f);
    assert_int_equal(outcome(x, g), 0);

    assert_file(p, "old");
    assert_int_equal(dir_entries(x), 1);
    assert_int_equal(tu_stats(x->pool).cancelled, 1);
}

static void test_write_file_cancel_running(void **state)
{
    struct fx *x = *state;
    const char *p = in_dir(x, "t");
    /* Big enough to take several chunks, so the cancel may land inside. */
    size_t len = TU_SANITIZED ? (size_t)16 << 20 : (size_t)64 << 20;
    char *data = malloc(len + 1);
    assert_non_null(data);
    memset(data, 'n', len);
    data[len] = '\0';
    put_file(p, "old");

    struct evexec_future *f = evexec_fs_write_file(x->ex, p, data, len, 0600);
    assert_non_null(f);
    assert_int_equal(tu_poll(stat_pending_running, x->pool), 0);
    assert_int_equal(evexec_future_cancel(f), 0);
    assert_int_equal(finish(x, f), ECANCELED);
    evexec_future_unref(f);

    /* Whole old or whole new, whichever side of the rename it stopped. */
    size_t got;
    char *s = slurp(p, &got);
    assert_true((got == 3 && strcmp(s, "old") == 0) ||
                (got == len && memcmp(s, data, len) == 0));
    free(s);
    free(data);
    assert_int_equal(dir_entries(x), 1);
}

/* ---- descriptors of cancelled and orphaned opens ------------------------------- */

static void test_cancel_queued_open(void **state)
{
    struct fx *x = *state;                   /* one thread */
    int before = open_fds();
    struct evexec_future *g = block_pool(x);
    struct evexec_future *f = evexec_fs_open(x->ex, x->dir, O_RDONLY, 0);
    assert_non_null(f);
    assert_int_equal(evexec_future_cancel(f), 0);
    assert_int_equal(evexec_future_cancel(f), EALREADY);
    tu_gate_open(&x->gate);
    assert_int_equal(finish(x, f), ECANCELED);
    errno = 0;
    assert_int_equal(evexec_fs_fd(f), -1);
    assert_int_equal(errno, ECANCELED);
    evexec_future_unref(f);
    assert_int_equal(outcome(x, g), 0);
    assert_int_equal(open_fds(), before);
}

/* A job blocked in open(2) of a FIFO until the test opens the write end. */
static struct evexec_future *open_fifo_blocked(struct fx *x, const char *fifo)
{
    assert_int_equal(mkfifo(fifo, 0600), 0);
    struct evexec_future *f = evexec_fs_open(x->ex, fifo, O_RDONLY, 0);
    assert_non_null(f);
    assert_int_equal(tu_poll(stat_pending_running, x->pool), 0);
    return f;
}

static void test_cancel_running_open_closes_fd(void **state)
{
    struct fx *x = *state;
    const char *fifo = in_dir(x, "fifo");
    int before = open_fds();
    struct evexec_future *f = open_fifo_blocked(x, fifo);

    assert_int_equal(evexec_future_cancel(f), 0);
    assert_false(evexec_future_done(f));     /* a running job ends when it returns */
    int w = open(fifo, O_WRONLY);            /* lets the job's open return */
    assert_true(w >= 0);
    assert_int_equal(finish(x, f), ECANCELED);
    evexec_future_unref(f);
    close(w);
    /* The descriptor the job opened was closed with its result. */
    assert_int_equal(open_fds(), before);
}

static void test_free_while_open_runs(void **state)
{
    struct fx *x = *state;
    const char *fifo = in_dir(x, "fifo");
    /* Counted without an evexec: its wake-up fd goes with it. */
    evexec_free(x->ex);
    int before = open_fds();
    x->ex = evexec_new(x->base, x->pool);
    assert_non_null(x->ex);
    struct tu_rec rec;
    tu_rec_init(&rec);
    struct evexec_future *f = open_fifo_blocked(x, fifo);
    assert_int_equal(evexec_future_on_done(f, tu_rec_cb, &rec), 0);

    evexec_free(x->ex);                      /* ends f, runs its callback */
    x->ex = NULL;
    assert_int_equal(rec.calls, 1);
    assert_int_equal(rec.error, ECANCELED);

    int w = open(fifo, O_WRONLY);
    assert_true(w >= 0);
    evexec_pool_free(x->pool);               /* waits for the orphaned job */
    x->pool = NULL;
    close(w);
    assert_int_equal(open_fds(), before);
}

/* ---- every request freed once, whatever happens ----------------------------------- */

/* One of each call, all queued behind the gate, so each takes the
 * never-ran path; ASan's leak check and the callback count do the rest. */
static int queue_one_of_each(struct fx *x, struct evexec_future **fs)
{
    static char buf[4];
    int n = 0;
    fs[n++] = evexec_fs_open(x->ex, x->dir, O_RDONLY, 0);
    fs[n++] = evexec_fs_close(x->ex, 1000);
    fs[n++] = evexec_fs_read(x->ex, 0, buf, sizeof buf);
    fs[n++] = evexec_fs_write(x->ex, 1, buf, sizeof buf);
    fs[n++] = evexec_fs_pread(x->ex, 0, buf, sizeof buf, 0);
    fs[n++] = evexec_fs_pwrite(x->ex, 1, buf, sizeof buf, 0);
    fs[n++] = evexec_fs_stat(x->ex, x->dir);
    fs[n++] = evexec_fs_fstat(x->ex, 0);
    fs[n++] = evexec_fs_fsync(x->ex, 1000);
    fs[n++] = evexec_fs_fdatasync(x->ex, 1000);
    fs[n++] = evexec_fs_unlink(x->ex, in_dir(x, "u"));
    fs[n++] = evexec_fs_rename(x->ex, in_dir(x, "r1"), in_dir(x, "r2"));
    fs[n++] = evexec_fs_mkdir(x->ex, in_dir(x, "m"), 0700);
    fs[n++] = evexec_fs_rmdir(x->ex, in_dir(x, "m"));
    fs[n++] = evexec_fs_scandir(x->ex, x->dir);
    fs[n++] = evexec_fs_read_file(x->ex, x->dir);
    fs[n++] = evexec_fs_write_file(x->ex, in_dir(x, "w"), buf, sizeof buf, 0600);
    for (int i = 0; i < n; i++)
        assert_non_null(fs[i]);
    return n;
}

static void test_cancel_each_queued(void **state)
{
    struct fx *x = *state;                   /* one thread */
    struct evexec_future *fs[32];
    struct tu_rec rec[32];
    struct evexec_future *g = block_pool(x);
    int n = queue_one_of_each(x, fs);
    for (int i = 0; i < n; i++) {
        tu_rec_init(&rec[i]);
        assert_int_equal(evexec_future_on_done(fs[i], tu_rec_cb, &rec[i]), 0);
        assert_int_equal(evexec_future_cancel(fs[i]), 0);
    }
    tu_gate_open(&x->gate);
    assert_int_equal(outcome(x, g), 0);
    for (int i = 0; i < n; i++) {
        assert_int_equal(rec[i].calls, 1);
        assert_int_equal(rec[i].error, ECANCELED);
        evexec_future_unref(fs[i]);
    }
    assert_int_equal(dir_entries(x), 0);
}

static void test_free_with_queued(void **state)
{
    struct fx *x = *state;                   /* one thread */
    struct evexec_future *fs[32];
    struct tu_rec rec[32];
    block_pool(x);
    int n = queue_one_of_each(x, fs);
    for (int i = 0; i < n; i++) {
        tu_rec_init(&rec[i]);
        assert_int_equal(evexec_future_on_done(fs[i], tu_rec_cb, &rec[i]), 0);
    }
    evexec_free(x->ex);                      /* queued: never run */
    x->ex = NULL;
    for (int i = 0; i < n; i++) {
        assert_int_equal(rec[i].calls, 1);
        assert_int_equal(rec[i].error, ECANCELED);
    }
    tu_gate_open(&x->gate);
    evexec_pool_free(x->pool);
    x->pool = NULL;
    assert_int_equal(dir_entries(x), 0);
}

static void test_shutdown_cancel_with_queued(void **state)
{
    struct fx *x = *state;                   /* one thread */
    struct evexec_future *fs[32];
    struct evexec_future *g = block_pool(x);
    int n = queue_one_of_each(x, fs);
    assert_int_equal(evexec_pool_shutdown(x->pool, EVEXEC_SHUTDOWN_CANCEL), 0);
    tu_gate_open(&x->gate);
    for (int i = 0; i < n; i++)
        assert_int_equal(outcome(x, fs[i]), ECANCELED);
    assert_int_equal(outcome(x, g), 0);
    errno = 0;
    assert_null(evexec_fs_stat(x->ex, x->dir));
    assert_int_equal(errno, ESHUTDOWN);
}

/* ---- bad input: refused at the call ------------------------------------------------ */

#define assert_einval(call)                 \
    do {                                    \
        errno = 0;                          \
        assert_null(call);                  \
        assert_int_equal(errno, EINVAL);    \
    } while (0)

static void test_bad_input(void **state)
{
    struct fx *x = *state;
    struct evexec *ex = x->ex;
    char buf[4];
    const size_t huge = (size_t)SSIZE_MAX + 1;

    assert_einval(evexec_fs_open(NULL, x->dir, O_RDONLY, 0));
    assert_einval(evexec_fs_open(ex, NULL, O_RDONLY, 0));
    assert_einval(evexec_fs_close(NULL, 0));
    assert_einval(evexec_fs_close(ex, -1));
    assert_einval(evexec_fs_read(NULL, 0, buf, 1));
    assert_einval(evexec_fs_read(ex, -1, buf, 1));
    assert_einval(evexec_fs_read(ex, 0, NULL, 1));
    assert_einval(evexec_fs_read(ex, 0, buf, huge));
    assert_einval(evexec_fs_write(NULL, 1, buf, 1));
    assert_einval(evexec_fs_write(ex, -5, buf, 1));
    assert_einval(evexec_fs_write(ex, 1, NULL, 1));
    assert_einval(evexec_fs_write(ex, 1, buf, huge));
    assert_einval(evexec_fs_pread(NULL, 0, buf, 1, 0));
    assert_einval(evexec_fs_pread(ex, -1, buf, 1, 0));
    assert_einval(evexec_fs_pread(ex, 0, NULL, 1, 0));
    assert_einval(evexec_fs_pread(ex, 0, buf, 1, -1));
    assert_einval(evexec_fs_pwrite(NULL, 1, buf, 1, 0));
    assert_einval(evexec_fs_pwrite(ex, -1, buf, 1, 0));
    assert_einval(evexec_fs_pwrite(ex, 1, NULL, 1, 0));
    assert_einval(evexec_fs_pwrite(ex, 1, buf, 1, -1));
    assert_einval(evexec_fs_stat(NULL, x->dir));
    assert_einval(evexec_fs_stat(ex, NULL));
    assert_einval(evexec_fs_fstat(NULL, 0));
    assert_einval(evexec_fs_fstat(ex, -1));
    assert_einval(evexec_fs_fsync(NULL, 0));
    assert_einval(evexec_fs_fsync(ex, -1));
    assert_einval(evexec_fs_fdatasync(NULL, 0));
    assert_einval(evexec_fs_fdatasync(ex, -1));
    assert_einval(evexec_fs_unlink(NULL, "x"));
    assert_einval(evexec_fs_unlink(ex, NULL));
    assert_einval(evexec_fs_rename(NULL, "a", "b"));
    assert_einval(evexec_fs_rename(ex, NULL, "b"));
    assert_einval(evexec_fs_rename(ex, "a", NULL));
    assert_einval(evexec_fs_mkdir(NULL, "x", 0700));
    assert_einval(evexec_fs_mkdir(ex, NULL, 0700));
    assert_einval(evexec_fs_rmdir(NULL, "x"));
    assert_einval(evexec_fs_rmdir(ex, NULL));
    assert_einval(evexec_fs_scandir(NULL, x->dir));
    assert_einval(evexec_fs_scandir(ex, NULL));
    assert_einval(evexec_fs_read_file(NULL, x->dir));
    assert_einval(evexec_fs_read_file(ex, NULL));
    assert_einval(evexec_fs_write_file(NULL, "x", buf, 1, 0600));
    assert_einval(evexec_fs_write_file(ex, NULL, buf, 1, 0600));
    assert_einval(evexec_fs_write_file(ex, "x", NULL, 1, 0600));
    assert_einval(evexec_fs_write_file(ex, "x", buf, huge, 0600));

    /* Nothing was queued by the refused calls: no thread even started. */
    struct evexec_pool_stats st = tu_stats(x->pool);
    assert_int_equal(st.threads_started, 0);
    assert_int_equal(st.queued, 0);

    /* Zero-length transfers need no buffer. */
    int fd = open("/dev/null", O_RDONLY);
    assert_true(fd >= 0);
    struct evexec_future *f = ok(x, evexec_fs_read(ex, fd, NULL, 0));
    assert_int_equal(evexec_fs_count(f), 0);
    evexec_future_unref(f);
    close(fd);
    assert_int_equal(dir_entries(x), 0);
}

/* Paths are copied: the caller's buffer may change right after the call. */
static void test_paths_copied(void **state)
{
    struct fx *x = *state;                   /* one thread */
    char from[128], to[128];
    put_file(in_dir(x, "one"), "1");
    snprintf(from, sizeof from, "%s", in_dir(x, "one"));
    snprintf(to, sizeof to, "%s", in_dir(x, "two"));

    struct evexec_future *g = block_pool(x);
    struct evexec_future *f = evexec_fs_rename(x->ex, from, to);
    assert_non_null(f);
    memset(from, 'X', sizeof from - 1);
    memset(to, 'Y', sizeof to - 1);
    tu_gate_open(&x->gate);
    assert_int_equal(outcome(x, f), 0);
    assert_int_equal(outcome(x, g), 0);
    assert_file(in_dir(x, "two"), "1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_write_read_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_future_owns_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_accessors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stat_rename_unlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mkdir_rmdir_scandir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_file_small, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_file_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_file_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_file_cancel_queued, setup_one_thread,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_write_file_cancel_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_queued_open, setup_one_thread, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_running_open_closes_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_while_open_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_each_queued, setup_one_thread, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_queued, setup_one_thread, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_cancel_with_queued, setup_one_thread,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paths_copied, setup_one_thread, teardown),
    };
    return cmocka_run_group_tests_name("fs", tests, NULL, NULL);
}
