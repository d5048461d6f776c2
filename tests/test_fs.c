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
 *
 * White box.  The program links the library statically, so it reaches
 * fs.c's test seams (evexec-internal.h: a write(2) that returns 0, a lower
 * read_file limit), and its own definitions of stat, fstatat, fstat, chmod,
 * fchmod, ftruncate, utimensat, readlink, readlinkat, unlink, unlinkat,
 * rename, renameat, mkdirat and scandir take the place of libc's for the library too: they pass every call on to libc, except that, while a test
 * turns eintr.on, every other call made on a worker of that test's pool
 * fails with EINTR first.  Real signals cannot do that deterministically
 * (Linux's local file systems finish those calls rather than interrupt
 * them); test_signal_storm sends real ones anyway.
 *
 * Privileges.  Tests run as root here; what needs an ordinary user runs in
 * a forked child that switches to nobody, and is skipped when it cannot.
 *
 * TEST_FS_FILTER=<glob> runs only the tests whose names match.
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
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "evexec.h"
#include "evexec-internal.h"    /* fs.c's test seams */
#include "testutil.h"

/* ---- EINTR on demand (see the top) ------------------------------------------- */

static struct {
    atomic_int on;              /* inject while set */
    atomic_int injected;        /* calls failed with EINTR */
} eintr;

/* Set on the workers of the pool that test_eintr_retried makes. */
static _Thread_local int eintr_worker;
static _Thread_local unsigned eintr_tick;

static void eintr_mark_worker(void *arg)
{
    (void)arg;
    eintr_worker = 1;
}

/* 1 (errno EINTR) if this call is to fail instead of being made. */
static int eintr_now(void)
{
    if (!eintr_worker || !atomic_load(&eintr.on) || eintr_tick++ % 2 != 0)
        return 0;
    atomic_fetch_add(&eintr.injected, 1);
    errno = EINTR;
    return 1;
}

/* libc's definition of name (the next one after this program's). */
static void *eintr_real(void *_Atomic *slot, const char *name)
{
    void *f = atomic_load(slot);
    if (!f) {
        f = dlsym(RTLD_NEXT, name);
        if (!f)
            abort();
        atomic_store(slot, f);
    }
    return f;
}

typedef int (*stat_fn)(const char *, struct stat *);
typedef int (*fstat_fn)(int, struct stat *);
typedef int (*path_fn)(const char *);
typedef int (*rename_fn)(const char *, const char *);
typedef int (*fstatat_fn)(int, const char *, struct stat *, int);
typedef int (*unlinkat_fn)(int, const char *, int);
typedef int (*renameat_fn)(int, const char *, int, const char *);
typedef int (*mkdirat_fn)(int, const char *, mode_t);
typedef ssize_t (*readlinkat_fn)(int, const char *, char *, size_t);

#define EINTR_REAL(type, name)                                      \
    static void *_Atomic slot;                                      \
    type real = (type)eintr_real(&slot, name)

int stat(const char *restrict path, struct stat *restrict st)
{
    EINTR_REAL(stat_fn, "stat");
    return eintr_now() ? -1 : real(path, st);
}

int fstat(int fd, struct stat *st)
{
    EINTR_REAL(fstat_fn, "fstat");
    return eintr_now() ? -1 : real(fd, st);
}

int unlink(const char *path)
{
    EINTR_REAL(path_fn, "unlink");
    return eintr_now() ? -1 : real(path);
}

int rename(const char *from, const char *to)
{
    EINTR_REAL(rename_fn, "rename");
    return eintr_now() ? -1 : real(from, to);
}

int fstatat(int dirfd, const char *restrict path, struct stat *restrict st, int flags)
{
    EINTR_REAL(fstatat_fn, "fstatat");
    return eintr_now() ? -1 : real(dirfd, path, st, flags);
}

int unlinkat(int dirfd, const char *path, int flags)
{
    EINTR_REAL(unlinkat_fn, "unlinkat");
    return eintr_now() ? -1 : real(dirfd, path, flags);
}

int renameat(int olddirfd, const char *from, int newdirfd, const char *to)
{
    EINTR_REAL(renameat_fn, "renameat");
    return eintr_now() ? -1 : real(olddirfd, from, newdirfd, to);
}

int mkdirat(int dirfd, const char *path, mode_t mode)
{
    EINTR_REAL(mkdirat_fn, "mkdirat");
    return eintr_now() ? -1 : real(dirfd, path, mode);
}

ssize_t readlinkat(int dirfd, const char *restrict path, char *restrict buf, size_t len)
{
    EINTR_REAL(readlinkat_fn, "readlinkat");
    return eintr_now() ? -1 : real(dirfd, path, buf, len);
}

typedef int (*chmod_fn)(const char *, mode_t);
typedef int (*fchmod_fn)(int, mode_t);
typedef int (*ftruncate_fn)(int, off_t);
typedef int (*utimensat_fn)(int, const char *, const struct timespec *, int);
typedef ssize_t (*readlink_fn)(const char *, char *, size_t);

int chmod(const char *path, mode_t mode)
{
    EINTR_REAL(chmod_fn, "chmod");
    return eintr_now() ? -1 : real(path, mode);
}

int fchmod(int fd, mode_t mode)
{
    EINTR_REAL(fchmod_fn, "fchmod");
    return eintr_now() ? -1 : real(fd, mode);
}

int ftruncate(int fd, off_t len)
{
    EINTR_REAL(ftruncate_fn, "ftruncate");
    return eintr_now() ? -1 : real(fd, len);
}

int utimensat(int dirfd, const char *path, const struct timespec times[2], int flags)
{
    EINTR_REAL(utimensat_fn, "utimensat");
    return eintr_now() ? -1 : real(dirfd, path, times, flags);
}

ssize_t readlink(const char *restrict path, char *restrict buf, size_t len)
{
    EINTR_REAL(readlink_fn, "readlink");
    return eintr_now() ? -1 : real(path, buf, len);
}

typedef int (*scandir_fn)(const char *restrict, struct dirent ***restrict,
                          int (*)(const struct dirent *),
                          int (*)(const struct dirent **, const struct dirent **));

int scandir(const char *restrict dir, struct dirent ***restrict list,
            int (*sel)(const struct dirent *),
            int (*cmp)(const struct dirent **, const struct dirent **))
{
    EINTR_REAL(scandir_fn, "scandir");
    return eintr_now() ? -1 : real(dir, list, sel, cmp);
}

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

    /* A regular file that says 0 bytes (/proc): read until end of file. */
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

/* A FIFO with no writer: refused at once, never a worker stuck in open(2).
 * The deadline only keeps a broken library from hanging the test. */
static void test_read_file_fifo(void **state)
{
    struct fx *x = *state;
    const char *fifo = in_dir(x, "fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);

    struct evexec_future *f = evexec_fs_read_file(x->ex, fifo);
    assert_non_null(f);
    struct timeval deadline = { TU_DEADLINE_MS / 1000, 0 };
    struct evexec_future *w = evexec_wait_for(x->ex, f, &deadline);
    assert_non_null(w);
    int rc = finish(x, w);
    if (rc == ETIMEDOUT) {
        /* Stuck in open(): give it a writer so the pool can be freed. */
        int fd = open(fifo, O_WRONLY | O_NONBLOCK);
        if (fd >= 0)
            close(fd);
    }
    evexec_future_unref(w);
    evexec_future_unref(f);
    assert_int_equal(rc, EINVAL);
}

/* Devices are not read (from /dev/zero, reading would never end). */
static void test_read_file_device(void **state)
{
    struct fx *x = *state;
    assert_int_equal(outcome(x, evexec_fs_read_file(x->ex, "/dev/zero")), EINVAL);
    assert_int_equal(outcome(x, evexec_fs_read_file(x->ex, "/dev/null")), EINVAL);

    /* A regular file next to them still reads, also through a link. */
    put_file(in_dir(x, "reg"), "regular");
    assert_int_equal(symlink("reg", in_dir(x, "link")), 0);
    struct evexec_future *f;
    const struct evexec_buf *b = read_ok(x, in_dir(x, "link"), &f);
    assert_int_equal(b->len, 7);
    assert_string_equal(b->data, "regular");
    evexec_future_unref(f);
}

/* A file of `size` bytes, sparse but for its first byte. */
static void make_sparse(const char *path, off_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, size), 0);
    assert_int_equal(pwrite(fd, "s", 1, 0), 1);
    close(fd);
}

static void test_read_file_limit(void **state)
{
    struct fx *x = *state;

    /* The real limit: one byte more is EFBIG, without reading 1 GiB. */
    make_sparse(in_dir(x, "huge"), (off_t)EVEXEC_FS_READ_FILE_MAX + 1);
    assert_int_equal(outcome(x, evexec_fs_read_file(x->ex, in_dir(x, "huge"))), EFBIG);

    /* A limit of 64 bytes (the seam): 64 read, 65 refused. */
    make_sparse(in_dir(x, "64"), 64);
    make_sparse(in_dir(x, "65"), 65);
    atomic_store(&evexec__fs_read_file_max, 64);
    struct evexec_future *f = evexec_fs_read_file(x->ex, in_dir(x, "64"));
    int rc64 = finish(x, f);
    const struct evexec_buf *b = evexec_future_result(f);
    size_t len64 = b ? b->len : 0;
    evexec_future_unref(f);
    int rc65 = outcome(x, evexec_fs_read_file(x->ex, in_dir(x, "65")));
    /* A file larger than fstat(2) said, as one that grows while it is read:
     * /proc files say 0 bytes and have more than 64. */
    int rcproc = outcome(x, evexec_fs_read_file(x->ex, "/proc/self/status"));
    atomic_store(&evexec__fs_read_file_max, EVEXEC_FS_READ_FILE_MAX);

    assert_int_equal(rc64, 0);
    assert_int_equal(len64, 64);
    assert_int_equal(rc65, EFBIG);
    assert_int_equal(rcproc, EFBIG);

    /* Back at the real limit, the same file reads whole. */
    b = read_ok(x, "/proc/self/status", &f);
    assert_true(b->len > 64);
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

static void assert_link(const char *link, const char *to)
{
    char buf[256];
    struct stat st;
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    ssize_t n = readlink(link, buf, sizeof buf - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, to);
}

/* Through a link: the link stays, the file it leads to gets the content. */
static void test_write_file_symlink(void **state)
{
    struct fx *x = *state;
    char target[128], sub[128], abs[128];
    snprintf(target, sizeof target, "%s", in_dir(x, "target"));
    snprintf(sub, sizeof sub, "%s", in_dir(x, "sub"));
    snprintf(abs, sizeof abs, "%s", in_dir(x, "sub/real"));
    put_file(target, "old");
    assert_int_equal(mkdir(sub, 0700), 0);
    put_file(abs, "old");

    /* Relative link, and a chain of two. */
    assert_int_equal(symlink("target", in_dir(x, "l1")), 0);
    assert_int_equal(symlink("l1", in_dir(x, "l2")), 0);
    assert_int_equal(outcome(x, evexec_fs_write_file(x->ex, in_dir(x, "l1"), "one", 3, 0600)),
                     0);
    assert_link(in_dir(x, "l1"), "target");
    assert_file(target, "one");
    assert_int_equal(outcome(x, evexec_fs_write_file(x->ex, in_dir(x, "l2"), "two", 3, 0600)),
                     0);
    assert_link(in_dir(x, "l2"), "l1");
    assert_link(in_dir(x, "l1"), "target");
    assert_file(target, "two");

    /* Absolute link into another directory: the temporary goes there. */
    assert_int_equal(symlink(abs, in_dir(x, "la")), 0);
    assert_int_equal(outcome(x, evexec_fs_write_file(x->ex, in_dir(x, "la"), "abs", 3, 0600)),
                     0);
    assert_link(in_dir(x, "la"), abs);
    assert_file(abs, "abs");

    /* A link relative to a directory: "sub/lr" -> "real" is sub/real. */
    assert_int_equal(symlink("real", in_dir(x, "sub/lr")), 0);
    assert_int_equal(outcome(x, evexec_fs_write_file(x->ex, in_dir(x, "sub/lr"), "rel", 3,
                                                     0600)),
                     0);
    assert_file(abs, "rel");

    /* Dangling: the file the link names is created, with `mode`. */
    assert_int_equal(symlink("made", in_dir(x, "ld")), 0);
    assert_int_equal(outcome(x, evexec_fs_write_file(x->ex, in_dir(x, "ld"), "new", 3, 0600)),
                     0);
    assert_link(in_dir(x, "ld"), "made");
    assert_file(in_dir(x, "made"), "new");
    struct stat st;
    assert_int_equal(stat(in_dir(x, "made"), &st), 0);
    assert_int_equal(st.st_mode & 0077, 0);

    /* A loop of links. */
    assert_int_equal(symlink("loop2", in_dir(x, "loop1")), 0);
    assert_int_equal(symlink("loop1", in_dir(x, "loop2")), 0);
    assert_int_equal(
        outcome(x, evexec_fs_write_file(x->ex, in_dir(x, "loop1"), "x", 1, 0600)), ELOOP);

    /* target l1 l2 sub la ld made loop1 loop2; sub: real lr.  No temporary. */
    assert_int_equal(dir_entries(x), 9);
}

/* An existing file keeps its mode (mode is for new files), and its owner
 * when the process may set it (root). */
static void test_write_file_keeps_mode_owner(void **state)
{
    struct fx *x = *state;
    const char *p = in_dir(x, "private");
    const char *q = in_dir(x, "shared");
    struct stat st;

    put_file(p, "old");
    assert_int_equal(chmod(p, 0600), 0);
    assert_int_equal(outcome(x, evexec_fs_write_file(x->ex, p, "new", 3, 0644)), 0);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_file(p, "new");

    put_file(q, "old");
    assert_int_equal(chmod(q, 0640), 0);
    assert_int_equal(outcome(x, evexec_fs_write_file(x->ex, q, "new", 3, 0600)), 0);
    assert_int_equal(stat(q, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);

    if (geteuid() != 0)
        return;                 /* only root may give a file away */
    assert_int_equal(chown(q, 65534, 65534), 0);
    assert_int_equal(outcome(x, evexec_fs_write_file(x->ex, q, "newer", 5, 0600)), 0);
    assert_int_equal(stat(q, &st), 0);
    assert_int_equal(st.st_uid, 65534);
    assert_int_equal(st.st_gid, 65534);
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_file(q, "newer");
}

/* The child of test_write_file_unreadable_dir, as nobody: write_file into
 * a directory it may write and search but not read.  Exit status: 0
 * passed, 77 cannot run here, else the step that failed. */
static int unreadable_dir_child(const char *dir, const char *file)
{
    if (geteuid() == 0) {
        if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
            return 77;
    }
    DIR *d = opendir(dir);
    if (d) {                    /* still readable: privileges not dropped */
        closedir(d);
        return 77;
    }
    if (errno != EACCES)
        return 77;              /* not even reachable (TMPDIR) */

    struct event_base *base = event_base_new();
    struct evexec_pool *pool = base ? tu_pool_new(2, 0) : NULL;
    struct evexec *ex = pool ? evexec_new(base, pool) : NULL;
    if (!ex)
        return 2;
    for (int round = 0; round < 2; round++) {      /* new, then existing */
        const char *text = round ? "second" : "first";
        struct evexec_future *f =
            evexec_fs_write_file(ex, file, text, strlen(text), 0600);
        if (!f)
            return 3;
        int rc = evexec_run_until_complete(ex, f);
        evexec_future_unref(f);
        if (rc != 0) {
            fprintf(stderr, "write_file in a 0300 directory: %s\n", evexec_strerror(rc));
            return 4 + round;
        }
        char buf[16] = { 0 };
        int fd = open(file, O_RDONLY);
        if (fd < 0 || read(fd, buf, sizeof buf - 1) != (ssize_t)strlen(text) ||
            strcmp(buf, text) != 0)
            return 6 + round;
        close(fd);
    }
    evexec_free(ex);
    evexec_pool_free(pool);
    event_base_free(base);
    return 0;
}

static void test_write_file_unreadable_dir(void **state)
{
    struct fx *x = *state;
    char sub[128], file[128];
    snprintf(sub, sizeof sub, "%s", in_dir(x, "wo"));
    snprintf(file, sizeof file, "%s", in_dir(x, "wo/f"));
    assert_int_equal(mkdir(sub, 0700), 0);
    if (geteuid() == 0) {
        assert_int_equal(chown(sub, 65534, 65534), 0);
        assert_int_equal(chmod(x->dir, 0711), 0);    /* nobody may pass */
    }
    assert_int_equal(chmod(sub, 0300), 0);

    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(unreadable_dir_child(sub, file));

    int status = 0;
    pid_t got = 0;
    int64_t end = tu_now_us() + (int64_t)TU_DEADLINE_MS * 1000;
    while ((got = waitpid(pid, &status, WNOHANG)) == 0 && tu_now_us() < end)
        tu_sleep_us(1000);
    if (got == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("the child did not finish in time");
    }
    assert_int_equal(got, pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77)
        skip();                 /* cannot drop privileges here */
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(chmod(sub, 0700), 0);
    assert_file(file, "second");
}

/* ---- EINTR: retried by every call ----------------------------------------------- */

/* The calls that had no retry, and read_file and write_file, with the
 * first attempt of each interposed system call failing EINTR (see the
 * top): all must succeed.  One worker, so that each job starts on an even
 * tick: its first attempt fails, the retry passes. */
static void test_eintr_retried(void **state)
{
    struct fx *x = *state;
    struct evexec_pool_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.max_threads = 1;
    cfg.thread_init = eintr_mark_worker;
    evexec_free(x->ex);
    evexec_pool_free(x->pool);
    x->pool = evexec_pool_new(&cfg);
    assert_non_null(x->pool);
    x->ex = evexec_new(x->base, x->pool);
    assert_non_null(x->ex);

    char sub[128], a[128], b[128];
    snprintf(sub, sizeof sub, "%s", in_dir(x, "sub"));
    snprintf(a, sizeof a, "%s", in_dir(x, "sub/a"));
    snprintf(b, sizeof b, "%s", in_dir(x, "sub/b"));
    int fd = open(x->dir, O_RDONLY | O_DIRECTORY);
    assert_true(fd >= 0);

    atomic_store(&eintr.injected, 0);
    atomic_store(&eintr.on, 1);
    int rc[24], n = 0;
    rc[n++] = outcome(x, evexec_fs_mkdir(x->ex, sub, 0700));
    rc[n++] = outcome(x, evexec_fs_write_file(x->ex, a, "abc", 3, 0600));
    rc[n++] = outcome(x, evexec_fs_write_file(x->ex, a, "abcd", 4, 0600));
    rc[n++] = outcome(x, evexec_fs_stat(x->ex, a));
    rc[n++] = outcome(x, evexec_fs_fstat(x->ex, fd));
    rc[n++] = outcome(x, evexec_fs_read_file(x->ex, a));
    rc[n++] = outcome(x, evexec_fs_scandir(x->ex, sub));
    rc[n++] = outcome(x, evexec_fs_rename(x->ex, a, b));
    rc[n++] = outcome(x, evexec_fs_unlink(x->ex, b));
    rc[n++] = outcome(x, evexec_fs_rmdir(x->ex, sub));

    char c[128], d[128], l[128];
    snprintf(c, sizeof c, "%s", in_dir(x, "c"));
    snprintf(d, sizeof d, "%s", in_dir(x, "d"));
    snprintf(l, sizeof l, "%s", in_dir(x, "l"));
    put_file(c, "abc");                     /* on this thread: never injected */
    assert_int_equal(symlink("c", l), 0);
    int cfd = open(c, O_RDWR);
    assert_true(cfd >= 0);
    rc[n++] = outcome(x, evexec_fs_lstat(x->ex, l));
    rc[n++] = outcome(x, evexec_fs_chmod(x->ex, c, 0600));
    rc[n++] = outcome(x, evexec_fs_fchmod(x->ex, cfd, 0600));
    rc[n++] = outcome(x, evexec_fs_ftruncate(x->ex, cfd, 2));
    rc[n++] = outcome(x, evexec_fs_utimens(x->ex, c, NULL));
    rc[n++] = outcome(x, evexec_fs_readlink(x->ex, l));
    rc[n++] = outcome(x, evexec_fs_copyfile(x->ex, c, d, 0));
    rc[n++] = outcome(x, evexec_fs_statat(x->ex, fd, "l", AT_SYMLINK_NOFOLLOW));
    rc[n++] = outcome(x, evexec_fs_readlinkat(x->ex, fd, "l"));
    rc[n++] = outcome(x, evexec_fs_mkdirat(x->ex, fd, "s", 0700));
    rc[n++] = outcome(x, evexec_fs_renameat(x->ex, fd, "s", fd, "t"));
    rc[n++] = outcome(x, evexec_fs_unlinkat(x->ex, fd, "t", AT_REMOVEDIR));
    atomic_store(&eintr.on, 0);
    close(fd);
    close(cfd);
    assert_file(d, "ab");
    assert_int_equal(unlink(c), 0);
    assert_int_equal(unlink(d), 0);
    assert_int_equal(unlink(l), 0);

    static const char *const what[] = { "mkdir", "write_file", "write_file again",
                                        "stat", "fstat", "read_file", "scandir",
                                        "rename", "unlink", "rmdir", "lstat", "chmod",
                                        "fchmod", "ftruncate", "utimens", "readlink",
                                        "copyfile", "statat", "readlinkat", "mkdirat",
                                        "renameat", "unlinkat" };
    for (int i = 0; i < n; i++)
        if (rc[i] != 0)
            fail_msg("evexec_fs_%s ended %d (%s)", what[i], rc[i], evexec_strerror(rc[i]));
    /* The injection itself worked (else this test proves nothing). */
    assert_true(atomic_load(&eintr.injected) >= n);
    assert_int_equal(dir_entries(x), 0);
}

/* Real signals, without SA_RESTART, sent to the workers every ~100 us
 * while thousands of file calls run: none may end EINTR.  (On Linux's
 * local file systems these calls are not interrupted, so this checks that
 * nothing else is, rather than the retries themselves.) */
#define STORM_THREADS 4

struct storm {
    pthread_t workers[STORM_THREADS];
    atomic_int nworkers;
    struct tu_gate gate;
    atomic_int stop;
    atomic_long sent;
};

static atomic_long storm_caught;

static void storm_handler(int sig)
{
    (void)sig;
    atomic_fetch_add(&storm_caught, 1);
}

static int storm_record(struct evexec_job *job, void *arg)
{
    struct storm *s = arg;
    (void)job;
    int i = atomic_fetch_add(&s->nworkers, 1);
    if (i < STORM_THREADS)
        s->workers[i] = pthread_self();
    return tu_gate_pass(&s->gate);
}

static void *storm_main(void *arg)
{
    struct storm *s = arg;
    while (!atomic_load(&s->stop)) {
        for (int i = 0; i < STORM_THREADS; i++)
            if (pthread_kill(s->workers[i], SIGUSR2) == 0)
                atomic_fetch_add(&s->sent, 1);
        tu_sleep_us(100);
    }
    return NULL;
}

static void test_signal_storm(void **state)
{
    struct fx *x = *state;
    /* Workers that never exit while the storm lasts (min = max). */
    struct evexec_pool_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.max_threads = cfg.min_threads = STORM_THREADS;
    evexec_free(x->ex);
    evexec_pool_free(x->pool);
    x->pool = evexec_pool_new(&cfg);
    assert_non_null(x->pool);
    x->ex = evexec_new(x->base, x->pool);
    assert_non_null(x->ex);

    /* Learn the workers' thread ids: one job parked on each. */
    static struct storm s;
    memset(&s, 0, sizeof s);
    tu_gate_init(&s.gate);
    struct evexec_future *rec[STORM_THREADS];
    for (int i = 0; i < STORM_THREADS; i++)
        assert_non_null(rec[i] = evexec_run(x->ex, storm_record, &s));
    assert_int_equal(tu_gate_wait_arrived(&s.gate, STORM_THREADS), 0);
    tu_gate_open(&s.gate);
    for (int i = 0; i < STORM_THREADS; i++)
        assert_int_equal(outcome(x, rec[i]), 0);
    assert_int_equal(atomic_load(&s.nworkers), STORM_THREADS);

    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = storm_handler;      /* no SA_RESTART */
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR2, &sa, &old), 0);
    atomic_store(&storm_caught, 0);
    pthread_t killer;
    assert_int_equal(pthread_create(&killer, NULL, storm_main, &s), 0);

    enum { K = 25, OPS = 8 };
    const int rounds = TU_SCALE(12);    /* 12 * 25 * 8 = 2400 jobs */
    static const char *const what[OPS] = { "mkdir", "write_file", "stat", "read_file",
                                           "scandir", "rename", "unlink", "rmdir" };
    int bad_op = -1, bad_rc = 0;
    for (int r = 0; r < rounds && bad_op < 0; r++) {
        for (int op = 0; op < OPS && bad_op < 0; op++) {
            struct evexec_future *fs[K];
            for (int i = 0; i < K; i++) {
                char d[128], f[128], g[128];
                snprintf(d, sizeof d, "%s/d%d", x->dir, i);
                snprintf(f, sizeof f, "%s/f%d", x->dir, i);
                snprintf(g, sizeof g, "%s/d%d/g", x->dir, i);
                switch (op) {
                case 0: fs[i] = evexec_fs_mkdir(x->ex, d, 0700); break;
                case 1: fs[i] = evexec_fs_write_file(x->ex, f, "storm", 5, 0600); break;
                case 2: fs[i] = evexec_fs_stat(x->ex, f); break;
                case 3: fs[i] = evexec_fs_read_file(x->ex, f); break;
                case 4: fs[i] = evexec_fs_scandir(x->ex, x->dir); break;
                case 5: fs[i] = evexec_fs_rename(x->ex, f, g); break;
                case 6: fs[i] = evexec_fs_unlink(x->ex, g); break;
                default: fs[i] = evexec_fs_rmdir(x->ex, d); break;
                }
                assert_non_null(fs[i]);
            }
            for (int i = 0; i < K; i++) {
                int rc = outcome(x, fs[i]);
                if (rc != 0 && bad_op < 0) {
                    bad_op = op;
                    bad_rc = rc;
                }
            }
        }
    }

    atomic_store(&s.stop, 1);
    pthread_join(killer, NULL);
    /* The handler stays: a signal still pending on a worker must not meet
     * the default action, which ends the process. */
    (void)old;
    tu_gate_destroy(&s.gate);

    if (bad_op >= 0)
        fail_msg("evexec_fs_%s ended %d (%s) under signals", what[bad_op], bad_rc,
                 evexec_strerror(bad_rc));
    assert_true(atomic_load(&s.sent) > 0);
    assert_int_equal(dir_entries(x), 0);
}

/* ---- write() that returns 0 --------------------------------------------------------- */

static atomic_int zero_writes;

/* write(2) that makes no progress: 0 the first 1000 times (a loop that
 * retries 0 would spin there forever), then ENOSPC, so that code which
 * does loop ends, and fails the test, instead of hanging it. */
static ssize_t write_returns_0(int fd, const void *buf, size_t len)
{
    (void)fd;
    (void)buf;
    (void)len;
    if (atomic_fetch_add(&zero_writes, 1) < 1000)
        return 0;
    errno = ENOSPC;
    return -1;
}

static void test_write_file_write_returns_0(void **state)
{
    struct fx *x = *state;
    const char *p = in_dir(x, "t");
    put_file(p, "old");

    atomic_store(&zero_writes, 0);
    atomic_store(&evexec__fs_write_hook, write_returns_0);
    int rc = outcome(x, evexec_fs_write_file(x->ex, p, "new", 3, 0600));
    int calls = atomic_load(&zero_writes);

    /* A single write passes the 0 on as the count. */
    atomic_store(&zero_writes, 0);
    int fd = open("/dev/null", O_WRONLY);
    assert_true(fd >= 0);
    struct evexec_future *f = evexec_fs_write(x->ex, fd, "x", 1);
    int wrc = finish(x, f);
    ssize_t count = evexec_fs_count(f);
    evexec_future_unref(f);
    close(fd);
    atomic_store(&evexec__fs_write_hook, write);

    assert_int_equal(rc, EIO);
    assert_int_equal(calls, 1);                      /* no second try */
    assert_file(p, "old");
    assert_int_equal(dir_entries(x), 1);             /* temporary removed */
    assert_int_equal(wrc, 0);
    assert_int_equal(count, 0);
}

/* ---- links, modes, times, temporary directories --------------------------------- */

static void test_lstat_readlink_realpath(void **state)
{
    struct fx *x = *state;
    char a[128], link[128], loop1[128], loop2[128], longl[128];
    snprintf(a, sizeof a, "%s", in_dir(x, "a"));
    snprintf(link, sizeof link, "%s", in_dir(x, "link"));
    snprintf(loop1, sizeof loop1, "%s", in_dir(x, "loop1"));
    snprintf(loop2, sizeof loop2, "%s", in_dir(x, "loop2"));
    snprintf(longl, sizeof longl, "%s", in_dir(x, "long"));
    put_file(a, "12345");
    assert_int_equal(symlink("a", link), 0);
    assert_int_equal(symlink("loop2", loop1), 0);
    assert_int_equal(symlink("loop1", loop2), 0);
    char target[3000];
    memset(target, 'y', sizeof target - 1);
    target[sizeof target - 1] = '\0';
    assert_int_equal(symlink(target, longl), 0);

    /* lstat describes the link, stat what it leads to. */
    struct evexec_future *f = ok(x, evexec_fs_lstat(x->ex, link));
    const struct stat *st = evexec_future_result(f);
    assert_true(S_ISLNK(st->st_mode));
    assert_int_equal(st->st_size, 1);
    evexec_future_unref(f);
    f = ok(x, evexec_fs_stat(x->ex, link));
    st = evexec_future_result(f);
    assert_true(S_ISREG(st->st_mode));
    assert_int_equal(st->st_size, 5);
    evexec_future_unref(f);
    assert_int_equal(outcome(x, evexec_fs_lstat(x->ex, loop1)), 0);
    assert_int_equal(outcome(x, evexec_fs_stat(x->ex, loop1)), ELOOP);
    assert_int_equal(outcome(x, evexec_fs_lstat(x->ex, in_dir(x, "missing"))), ENOENT);
    assert_int_equal(outcome(x, evexec_fs_lstat(x->ex, in_dir(x, "a/b"))), ENOTDIR);

    /* readlink: the link's text, of any length; taken, free() releases it. */
    f = ok(x, evexec_fs_readlink(x->ex, link));
    assert_string_equal(evexec_future_result(f), "a");
    evexec_future_unref(f);
    f = ok(x, evexec_fs_readlink(x->ex, longl));
    char *s = evexec_future_take_result(f);
    evexec_future_unref(f);
    assert_string_equal(s, target);
    free(s);
    assert_int_equal(outcome(x, evexec_fs_readlink(x->ex, a)), EINVAL);
    assert_int_equal(outcome(x, evexec_fs_readlink(x->ex, in_dir(x, "missing"))), ENOENT);

    /* realpath: every link and dot resolved. */
    char want[PATH_MAX];
    assert_non_null(realpath(a, want));
    char twisted[160];
    snprintf(twisted, sizeof twisted, "%s/./../%s/link", x->dir, strrchr(x->dir, '/') + 1);
    f = ok(x, evexec_fs_realpath(x->ex, twisted));
    assert_string_equal(evexec_future_result(f), want);
    evexec_future_unref(f);
    assert_int_equal(outcome(x, evexec_fs_realpath(x->ex, in_dir(x, "missing"))), ENOENT);
    assert_int_equal(outcome(x, evexec_fs_realpath(x->ex, loop1)), ELOOP);
    /* A link to a name longer than NAME_MAX. */
    assert_int_equal(outcome(x, evexec_fs_realpath(x->ex, longl)), ENAMETOOLONG);
}

static void test_ftruncate_chmod(void **state)
{
    struct fx *x = *state;
    char p[128];
    snprintf(p, sizeof p, "%s", in_dir(x, "f"));
    put_file(p, "some text");
    int fd = open(p, O_RDWR);
    assert_true(fd >= 0);
    struct stat st;

    assert_int_equal(outcome(x, evexec_fs_ftruncate(x->ex, fd, 4)), 0);
    assert_file(p, "some");
    assert_int_equal(outcome(x, evexec_fs_ftruncate(x->ex, fd, 100)), 0);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_size, 100);
    assert_int_equal(outcome(x, evexec_fs_ftruncate(x->ex, fd, 0)), 0);
    assert_file(p, "");

    assert_int_equal(outcome(x, evexec_fs_fchmod(x->ex, fd, 0604)), 0);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0604);
    assert_int_equal(outcome(x, evexec_fs_chmod(x->ex, p, 0640)), 0);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    close(fd);

    /* Errors: a closed descriptor, one not open for writing, no file, a loop. */
    int ro = open(p, O_RDONLY);
    assert_true(ro >= 0);
    assert_int_equal(outcome(x, evexec_fs_ftruncate(x->ex, ro, 0)), EINVAL);
    close(ro);
    assert_int_equal(outcome(x, evexec_fs_ftruncate(x->ex, fd, 0)), EBADF);
    assert_int_equal(outcome(x, evexec_fs_fchmod(x->ex, fd, 0600)), EBADF);
    assert_int_equal(outcome(x, evexec_fs_chmod(x->ex, in_dir(x, "missing"), 0600)),
                     ENOENT);
    assert_int_equal(symlink("loop", in_dir(x, "loop")), 0);
    assert_int_equal(outcome(x, evexec_fs_chmod(x->ex, in_dir(x, "loop"), 0600)), ELOOP);
}

static void test_utimens(void **state)
{
    struct fx *x = *state;                   /* one thread */
    char p[128];
    snprintf(p, sizeof p, "%s", in_dir(x, "t"));
    put_file(p, "");
    struct stat st;

    /* The times are copied: changed right after the call, they still count. */
    struct timespec times[2] = { { 1000, 500 }, { 2000, 0 } };
    struct evexec_future *g = block_pool(x);
    struct evexec_future *f = evexec_fs_utimens(x->ex, p, times);
    assert_non_null(f);
    times[1].tv_sec = 9;
    tu_gate_open(&x->gate);
    assert_int_equal(outcome(x, f), 0);
    assert_int_equal(outcome(x, g), 0);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_atim.tv_sec, 1000);
    assert_int_equal(st.st_atim.tv_nsec, 500);
    assert_int_equal(st.st_mtim.tv_sec, 2000);

    /* NULL: now. */
    time_t before = time(NULL);
    assert_int_equal(outcome(x, evexec_fs_utimens(x->ex, p, NULL)), 0);
    assert_int_equal(stat(p, &st), 0);
    assert_true(st.st_mtim.tv_sec >= before - 1);
    assert_true(st.st_atim.tv_sec >= before - 1);

    /* UTIME_OMIT leaves one alone. */
    struct timespec omit[2] = { { 0, UTIME_OMIT }, { 3000, 0 } };
    assert_int_equal(outcome(x, evexec_fs_utimens(x->ex, p, omit)), 0);
    assert_int_equal(stat(p, &st), 0);
    assert_true(st.st_atim.tv_sec >= before - 1);
    assert_int_equal(st.st_mtim.tv_sec, 3000);

    struct timespec bad[2] = { { 1, 2000000000L }, { 1, 0 } };
    assert_int_equal(outcome(x, evexec_fs_utimens(x->ex, p, bad)), EINVAL);
    assert_int_equal(outcome(x, evexec_fs_utimens(x->ex, in_dir(x, "missing"), NULL)),
                     ENOENT);
}

static void test_mkdtemp(void **state)
{
    struct fx *x = *state;
    char tmpl[128];
    snprintf(tmpl, sizeof tmpl, "%s", in_dir(x, "sub-XXXXXX"));

    struct evexec_future *f = ok(x, evexec_fs_mkdtemp(x->ex, tmpl));
    const char *made = evexec_future_result(f);
    assert_non_null(made);
    assert_int_equal(strlen(made), strlen(tmpl));
    assert_memory_equal(made, tmpl, strlen(tmpl) - 6);
    assert_string_not_equal(made, tmpl);
    assert_string_equal(tmpl + strlen(tmpl) - 6, "XXXXXX");   /* left as it was */
    struct stat st;
    assert_int_equal(stat(made, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);

    /* Another from the same template: another name. */
    struct evexec_future *f2 = ok(x, evexec_fs_mkdtemp(x->ex, tmpl));
    char *made2 = evexec_future_take_result(f2);
    evexec_future_unref(f2);
    assert_string_not_equal(made, made2);
    free(made2);
    evexec_future_unref(f);
    assert_int_equal(dir_entries(x), 2);

    assert_int_equal(outcome(x, evexec_fs_mkdtemp(x->ex, in_dir(x, "noX"))), EINVAL);
    assert_int_equal(outcome(x, evexec_fs_mkdtemp(x->ex, in_dir(x, "no/sub-XXXXXX"))),
                     ENOENT);
    assert_int_equal(dir_entries(x), 2);
}

/* ---- copyfile and sendfile -------------------------------------------------------- */

/* A file of n bytes of a pattern that no offset repeats soon. */
static void put_pattern(const char *path, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    for (size_t i = 0; i < n; i++)
        fputc((int)((i * 7 + i / 251) & 0xff), fp);
    assert_int_equal(fclose(fp), 0);
}

static void assert_same_file(const char *a, const char *b)
{
    size_t la, lb;
    char *sa = slurp(a, &la), *sb = slurp(b, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(sa, sb, la);
    free(sa);
    free(sb);
}

static void test_copyfile(void **state)
{
    struct fx *x = *state;
    char src[128], dst[128], sub[128];
    snprintf(src, sizeof src, "%s", in_dir(x, "src"));
    snprintf(dst, sizeof dst, "%s", in_dir(x, "dst"));
    snprintf(sub, sizeof sub, "%s", in_dir(x, "sub"));
    put_pattern(src, (3 << 20) + 17);
    assert_int_equal(chmod(src, 0640), 0);

    assert_int_equal(outcome(x, evexec_fs_copyfile(x->ex, src, dst, 0)), 0);
    assert_same_file(src, dst);
    struct stat st;
    assert_int_equal(stat(dst, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);

    /* Over a longer file: replaced, and given the source's mode. */
    put_file(src, "short");
    assert_int_equal(chmod(src, 0600), 0);
    assert_int_equal(outcome(x, evexec_fs_copyfile(x->ex, src, dst, 0)), 0);
    assert_file(dst, "short");
    assert_int_equal(stat(dst, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);

    /* An empty file. */
    put_file(src, "");
    assert_int_equal(outcome(x, evexec_fs_copyfile(x->ex, src, dst, 0)), 0);
    assert_file(dst, "");

    /* EXCL: an existing destination is refused and left alone. */
    put_file(src, "new");
    put_file(dst, "old");
    assert_int_equal(outcome(x, evexec_fs_copyfile(x->ex, src, dst, EVEXEC_FS_COPY_EXCL)),
                     EEXIST);
    assert_file(dst, "old");
    assert_int_equal(unlink(dst), 0);
    assert_int_equal(outcome(x, evexec_fs_copyfile(x->ex, src, dst, EVEXEC_FS_COPY_EXCL)),
                     0);
    assert_file(dst, "new");

    /* Onto itself: nothing lost. */
    assert_int_equal(outcome(x, evexec_fs_copyfile(x->ex, src, src, 0)), 0);
    assert_file(src, "new");

    /* Errors, and no destination made by them. */
    assert_int_equal(unlink(dst), 0);
    assert_int_equal(outcome(x, evexec_fs_copyfile(x->ex, in_dir(x, "missing"), dst, 0)),
                     ENOENT);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(outcome(x, evexec_fs_copyfile(x->ex, sub, dst, 0)), EISDIR);
    assert_int_equal(outcome(x, evexec_fs_copyfile(x->ex, src, sub, 0)), EISDIR);
    assert_int_equal(outcome(x, evexec_fs_copyfile(x->ex, src, in_dir(x, "no/dst"), 0)),
                     ENOENT);
    assert_int_equal(symlink("loop", in_dir(x, "loop")), 0);
    assert_int_equal(outcome(x, evexec_fs_copyfile(x->ex, in_dir(x, "loop"), dst, 0)),
                     ELOOP);
    assert_int_equal(access(dst, F_OK), -1);
    assert_int_equal(dir_entries(x), 3);            /* src, sub, loop */
}

/* A write(2) that writes the first two chunks and then fails ENOSPC. */
static atomic_int copy_writes;

static ssize_t write_then_enospc(int fd, const void *buf, size_t len)
{
    if (atomic_fetch_add(&copy_writes, 1) < 2)
        return write(fd, buf, len);
    errno = ENOSPC;
    return -1;
}

/* A write(2) that parks at the gate the first time, then writes. */
static struct tu_gate *copy_gate;

static ssize_t write_gated(int fd, const void *buf, size_t len)
{
    if (atomic_fetch_add(&copy_writes, 1) == 0)
        tu_gate_pass(copy_gate);
    return write(fd, buf, len);
}

static int pool_idle(void *arg)
{
    struct evexec_pool_stats st = tu_stats(arg);
    return st.running == 0 && st.queued == 0;
}

/* The read/write path (copy_file_range refuses a device: /dev/zero, an
 * endless source, so only a failure or a cancel ends it): the partial
 * destination is removed. */
static void test_copyfile_partial_removed(void **state)
{
    struct fx *x = *state;
    char dst[128];
    snprintf(dst, sizeof dst, "%s", in_dir(x, "dst"));

    atomic_store(&copy_writes, 0);
    atomic_store(&evexec__fs_write_hook, write_then_enospc);
    int rc = outcome(x, evexec_fs_copyfile(x->ex, "/dev/zero", dst, 0));
    atomic_store(&evexec__fs_write_hook, write);
    assert_int_equal(rc, ENOSPC);
    assert_true(atomic_load(&copy_writes) >= 3);
    assert_int_equal(access(dst, F_OK), -1);

    /* A write(2) that returns 0: EIO, not an endless loop. */
    atomic_store(&zero_writes, 999);
    atomic_store(&evexec__fs_write_hook, write_returns_0);
    rc = outcome(x, evexec_fs_copyfile(x->ex, "/dev/zero", dst, 0));
    atomic_store(&evexec__fs_write_hook, write);
    assert_int_equal(rc, EIO);
    assert_int_equal(access(dst, F_OK), -1);

    /* Cancelled while it runs: stops between chunks, the copy removed. */
    atomic_store(&copy_writes, 0);
    copy_gate = &x->gate;
    atomic_store(&evexec__fs_write_hook, write_gated);
    struct evexec_future *f = evexec_fs_copyfile(x->ex, "/dev/zero", dst, 0);
    assert_non_null(f);
    assert_int_equal(tu_gate_wait_arrived(&x->gate, 1), 0);
    evexec_future_cancel(f);
    tu_gate_open(&x->gate);
    assert_int_equal(outcome(x, f), ECANCELED);
    assert_int_equal(tu_poll(pool_idle, x->pool), 0);
    atomic_store(&evexec__fs_write_hook, write);
    assert_int_equal(access(dst, F_OK), -1);
    assert_int_equal(dir_entries(x), 0);
}

static void test_sendfile(void **state)
{
    struct fx *x = *state;
    char src[128], dst[128], big[128], bigcopy[128];
    snprintf(src, sizeof src, "%s", in_dir(x, "src"));
    snprintf(dst, sizeof dst, "%s", in_dir(x, "dst"));
    snprintf(big, sizeof big, "%s", in_dir(x, "big"));
    snprintf(bigcopy, sizeof bigcopy, "%s", in_dir(x, "bigcopy"));
    put_file(src, "hello world");
    int in = open(src, O_RDONLY);
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(in >= 0 && out >= 0);

    /* From an offset, to the end of the file: a short count. */
    struct evexec_future *f = ok(x, evexec_fs_sendfile(x->ex, out, in, 6, 100));
    assert_int_equal(evexec_fs_count(f), 5);
    evexec_future_unref(f);
    assert_int_equal(lseek(in, 0, SEEK_CUR), 0);    /* in_fd's offset untouched */
    f = ok(x, evexec_fs_sendfile(x->ex, out, in, 0, 5));
    assert_int_equal(evexec_fs_count(f), 5);
    evexec_future_unref(f);
    assert_file(dst, "worldhello");
    f = ok(x, evexec_fs_sendfile(x->ex, out, in, 0, 0));
    assert_int_equal(evexec_fs_count(f), 0);
    evexec_future_unref(f);
    f = ok(x, evexec_fs_sendfile(x->ex, out, in, 50, 10));     /* past the end */
    assert_int_equal(evexec_fs_count(f), 0);
    evexec_future_unref(f);
    close(out);

    /* To a descriptor in append mode. */
    out = open(dst, O_WRONLY | O_APPEND);
    assert_true(out >= 0);
    f = ok(x, evexec_fs_sendfile(x->ex, out, in, 5, 6));
    assert_int_equal(evexec_fs_count(f), 6);
    evexec_future_unref(f);
    close(out);
    assert_file(dst, "worldhello world");

    /* More than one chunk. */
    const size_t n = (9 << 20) + 3;
    put_pattern(big, n);
    int bin = open(big, O_RDONLY);
    out = open(bigcopy, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(bin >= 0 && out >= 0);
    f = ok(x, evexec_fs_sendfile(x->ex, out, bin, 0, n));
    assert_int_equal(evexec_fs_count(f), (ssize_t)n);
    evexec_future_unref(f);
    close(out);
    close(bin);
    assert_same_file(big, bigcopy);

    /* Errors: closed descriptors; a pipe cannot be read at an offset. */
    out = open(dst, O_WRONLY);
    assert_true(out >= 0);
    int closed = open("/dev/null", O_RDONLY);
    assert_true(closed >= 0);
    close(closed);
    f = evexec_fs_sendfile(x->ex, out, closed, 0, 1);
    assert_int_equal(finish(x, f), EBADF);
    errno = 0;
    assert_int_equal(evexec_fs_count(f), -1);
    assert_int_equal(errno, EBADF);
    evexec_future_unref(f);
    assert_int_equal(outcome(x, evexec_fs_sendfile(x->ex, closed, in, 0, 1)), EBADF);
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(outcome(x, evexec_fs_sendfile(x->ex, out, p[0], 0, 1)), ESPIPE);
    close(p[0]);
    close(p[1]);
    close(out);
    close(in);
    assert_file(dst, "worldhello world");
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
    assert_einval(evexec_fs_openat(NULL, AT_FDCWD, x->dir, O_RDONLY, 0));
    assert_einval(evexec_fs_openat(ex, AT_FDCWD, NULL, O_RDONLY, 0));
    assert_einval(evexec_fs_openat(ex, -1, "x", O_RDONLY, 0));
    assert_einval(evexec_fs_statat(NULL, AT_FDCWD, x->dir, 0));
    assert_einval(evexec_fs_statat(ex, AT_FDCWD, NULL, 0));
    assert_einval(evexec_fs_statat(ex, -2, "x", 0));
    assert_einval(evexec_fs_statat(ex, AT_FDCWD, "x", AT_REMOVEDIR));
    assert_einval(evexec_fs_statat(ex, AT_FDCWD, "x", AT_SYMLINK_NOFOLLOW | 0x10000000));
    assert_einval(evexec_fs_unlinkat(NULL, AT_FDCWD, "x", 0));
    assert_einval(evexec_fs_unlinkat(ex, AT_FDCWD, NULL, 0));
    assert_einval(evexec_fs_unlinkat(ex, -1, "x", 0));
    assert_einval(evexec_fs_unlinkat(ex, AT_FDCWD, "x", AT_SYMLINK_NOFOLLOW));
    assert_einval(evexec_fs_unlinkat(ex, AT_FDCWD, "x", AT_REMOVEDIR | 0x10000000));
    assert_einval(evexec_fs_mkdirat(NULL, AT_FDCWD, "x", 0700));
    assert_einval(evexec_fs_mkdirat(ex, AT_FDCWD, NULL, 0700));
    assert_einval(evexec_fs_mkdirat(ex, -1, "x", 0700));
    assert_einval(evexec_fs_renameat(NULL, AT_FDCWD, "a", AT_FDCWD, "b"));
    assert_einval(evexec_fs_renameat(ex, AT_FDCWD, NULL, AT_FDCWD, "b"));
    assert_einval(evexec_fs_renameat(ex, AT_FDCWD, "a", AT_FDCWD, NULL));
    assert_einval(evexec_fs_renameat(ex, -1, "a", AT_FDCWD, "b"));
    assert_einval(evexec_fs_renameat(ex, AT_FDCWD, "a", -1, "b"));
    assert_einval(evexec_fs_readlinkat(NULL, AT_FDCWD, "x"));
    assert_einval(evexec_fs_readlinkat(ex, AT_FDCWD, NULL));
    assert_einval(evexec_fs_readlinkat(ex, -1, "x"));
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
    assert_einval(evexec_fs_lstat(NULL, x->dir));
    assert_einval(evexec_fs_lstat(ex, NULL));
    assert_einval(evexec_fs_readlink(NULL, x->dir));
    assert_einval(evexec_fs_readlink(ex, NULL));
    assert_einval(evexec_fs_realpath(NULL, x->dir));
    assert_einval(evexec_fs_realpath(ex, NULL));
    assert_einval(evexec_fs_ftruncate(NULL, 0, 0));
    assert_einval(evexec_fs_ftruncate(ex, -1, 0));
    assert_einval(evexec_fs_ftruncate(ex, 0, -1));
    assert_einval(evexec_fs_chmod(NULL, "x", 0600));
    assert_einval(evexec_fs_chmod(ex, NULL, 0600));
    assert_einval(evexec_fs_fchmod(NULL, 0, 0600));
    assert_einval(evexec_fs_fchmod(ex, -1, 0600));
    assert_einval(evexec_fs_utimens(NULL, "x", NULL));
    assert_einval(evexec_fs_utimens(ex, NULL, NULL));
    assert_einval(evexec_fs_mkdtemp(NULL, "xXXXXXX"));
    assert_einval(evexec_fs_mkdtemp(ex, NULL));
    assert_einval(evexec_fs_copyfile(NULL, "a", "b", 0));
    assert_einval(evexec_fs_copyfile(ex, NULL, "b", 0));
    assert_einval(evexec_fs_copyfile(ex, "a", NULL, 0));
    assert_einval(evexec_fs_copyfile(ex, "a", "b", 0x2));
    assert_einval(evexec_fs_sendfile(NULL, 1, 0, 0, 1));
    assert_einval(evexec_fs_sendfile(ex, -1, 0, 0, 1));
    assert_einval(evexec_fs_sendfile(ex, 1, -1, 0, 1));
    assert_einval(evexec_fs_sendfile(ex, 1, 0, -1, 1));
    assert_einval(evexec_fs_sendfile(ex, 1, 0, 0, huge));

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

/* ---- directory-relative calls ----------------------------------------------- */

/* A descriptor number that is certainly closed (opened, then closed). */
static int closed_fd(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(close(fd), 0);
    assert_int_equal(fcntl(fd, F_GETFD), -1);
    return fd;
}

/* The size of what statat(dirfd, path, flags) ends with, -1 if it fails. */
static long statat_size(struct fx *x, int dirfd, const char *path, int flags, mode_t *type)
{
    struct evexec_future *f = evexec_fs_statat(x->ex, dirfd, path, flags);
    assert_non_null(f);
    long size = -1;
    if (finish(x, f) == 0) {
        const struct stat *st = evexec_future_result(f);
        size = (long)st->st_size;
        if (type)
            *type = st->st_mode & S_IFMT;
    }
    evexec_future_unref(f);
    return size;
}

/* readlinkat's result compared with want. */
static void assert_readlinkat(struct fx *x, int dirfd, const char *path, const char *want)
{
    struct evexec_future *f = ok(x, evexec_fs_readlinkat(x->ex, dirfd, path));
    assert_string_equal(evexec_future_result(f), want);
    evexec_future_unref(f);
}

/* Make sub/, a file in it, a link to that file, rename and remove them,
 * every path relative to dirfd (which may be AT_FDCWD).  check_fd is an
 * open descriptor of the same directory, for checks made by hand. */
static void at_calls_in(struct fx *x, int dirfd, int check_fd)
{
    struct stat st;
    mode_t type = 0;
    assert_int_equal(outcome(x, evexec_fs_mkdirat(x->ex, dirfd, "sub", 0700)), 0);
    assert_int_equal(fstatat(check_fd, "sub", &st, 0), 0);
    assert_true(S_ISDIR(st.st_mode));

    struct evexec_future *f =
        ok(x, evexec_fs_openat(x->ex, dirfd, "sub/f", O_WRONLY | O_CREAT | O_EXCL, 0600));
    int fd = evexec_fs_take_fd(f);
    evexec_future_unref(f);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "hello", 5), 5);
    assert_int_equal(close(fd), 0);

    assert_int_equal(statat_size(x, dirfd, "sub/f", 0, &type), 5);
    assert_int_equal(type, S_IFREG);
    assert_int_equal(symlinkat("f", check_fd, "sub/l"), 0);
    assert_int_equal(statat_size(x, dirfd, "sub/l", 0, &type), 5);
    assert_int_equal(type, S_IFREG);
    assert_int_equal(statat_size(x, dirfd, "sub/l", AT_SYMLINK_NOFOLLOW, &type), 1);
    assert_int_equal(type, S_IFLNK);
    assert_readlinkat(x, dirfd, "sub/l", "f");

    /* Between two directory descriptors. */
    int sub = openat(check_fd, "sub", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(sub >= 0);
    assert_int_equal(outcome(x, evexec_fs_renameat(x->ex, dirfd, "sub/f", sub, "g")), 0);
    assert_int_equal(fstatat(sub, "g", &st, 0), 0);
    assert_int_equal(fstatat(sub, "f", &st, 0), -1);
    assert_int_equal(errno, ENOENT);
    f = ok(x, evexec_fs_openat(x->ex, sub, "g", O_RDONLY, 0));
    char buf[8] = { 0 };
    assert_int_equal(read(evexec_fs_fd(f), buf, sizeof buf), 5);
    assert_string_equal(buf, "hello");
    evexec_future_unref(f);

    /* A directory is removed only with AT_REMOVEDIR, and only empty. */
    assert_int_equal(outcome(x, evexec_fs_unlinkat(x->ex, dirfd, "sub", 0)), EISDIR);
    assert_int_equal(outcome(x, evexec_fs_unlinkat(x->ex, dirfd, "sub", AT_REMOVEDIR)),
                     ENOTEMPTY);
    assert_int_equal(outcome(x, evexec_fs_unlinkat(x->ex, dirfd, "sub/l", 0)), 0);
    assert_int_equal(outcome(x, evexec_fs_unlinkat(x->ex, sub, "g", 0)), 0);
    assert_int_equal(outcome(x, evexec_fs_unlinkat(x->ex, dirfd, "sub", AT_REMOVEDIR)), 0);
    assert_int_equal(fstatat(check_fd, "sub", &st, 0), -1);
    assert_int_equal(errno, ENOENT);
    close(sub);
}

/* Every *at call relative to a directory descriptor, that descriptor made
 * with evexec_fs_mkdtemp() and opened with evexec_fs_open(). */
static void test_at_calls_dirfd(void **state)
{
    struct fx *x = *state;
    struct evexec_future *t = ok(x, evexec_fs_mkdtemp(x->ex, in_dir(x, "tXXXXXX")));
    const char *tdir = evexec_future_result(t);
    struct evexec_future *o = ok(x, evexec_fs_open(x->ex, tdir, O_RDONLY | O_DIRECTORY, 0));
    int dirfd = evexec_fs_fd(o);
    assert_true(dirfd >= 0);
    at_calls_in(x, dirfd, dirfd);

    /* An absolute path ignores dirfd; the directory was left empty. */
    assert_true(statat_size(x, dirfd, tdir, 0, NULL) >= 0);
    assert_int_equal(outcome(x, evexec_fs_unlinkat(x->ex, dirfd, tdir, AT_REMOVEDIR)), 0);
    evexec_future_unref(o);
    evexec_future_unref(t);
    assert_int_equal(dir_entries(x), 0);
}

/* The same with AT_FDCWD: relative to the current directory. */
static void test_at_calls_fdcwd(void **state)
{
    struct fx *x = *state;
    int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(cwd >= 0);
    int dirfd = open(x->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(dirfd >= 0);
    assert_int_equal(chdir(x->dir), 0);
    at_calls_in(x, AT_FDCWD, dirfd);
    assert_int_equal(fchdir(cwd), 0);
    close(cwd);
    close(dirfd);
    assert_int_equal(dir_entries(x), 0);
}

/* The *at call `which` (0 to 5) of path relative to dirfd. */
static struct evexec_future *at_call(struct fx *x, int which, int dirfd, const char *path)
{
    switch (which) {
    case 0: return evexec_fs_openat(x->ex, dirfd, path, O_RDONLY, 0);
    case 1: return evexec_fs_statat(x->ex, dirfd, path, 0);
    case 2: return evexec_fs_unlinkat(x->ex, dirfd, path, 0);
    case 3: return evexec_fs_mkdirat(x->ex, dirfd, path, 0700);
    case 4: return evexec_fs_renameat(x->ex, dirfd, path, dirfd, "to");
    default: return evexec_fs_readlinkat(x->ex, dirfd, path);
    }
}

/* Each *at call ends ENOENT for a missing name (or parent), ENOTDIR for a
 * dirfd that is a file, EBADF for a dirfd that is closed; and the errors
 * of the call itself come through. */
static void test_at_errors(void **state)
{
    struct fx *x = *state;
    static const char *const what[] = { "openat", "statat", "unlinkat", "mkdirat",
                                        "renameat", "readlinkat" };
    put_file(in_dir(x, "file"), "x");
    int dirfd = open(x->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(dirfd >= 0);
    int filefd = open(in_dir(x, "file"), O_RDONLY | O_CLOEXEC);
    assert_true(filefd >= 0);

    for (int which = 0; which < 6; which++) {
        int rc[3];
        rc[0] = outcome(x, at_call(x, which, dirfd, "missing/x"));
        rc[1] = outcome(x, at_call(x, which, filefd, "x"));
        rc[2] = outcome(x, at_call(x, which, closed_fd(), "x"));
        if (rc[0] != ENOENT || rc[1] != ENOTDIR || rc[2] != EBADF)
            fail_msg("evexec_fs_%s ended %s, %s, %s", what[which], evexec_strerror(rc[0]),
                     evexec_strerror(rc[1]), evexec_strerror(rc[2]));
    }
    /* renameat's second directory is checked too. */
    assert_int_equal(outcome(x, evexec_fs_renameat(x->ex, dirfd, "file", filefd, "x")),
                     ENOTDIR);
    assert_int_equal(outcome(x, evexec_fs_renameat(x->ex, dirfd, "file", closed_fd(), "x")),
                     EBADF);
    /* The call's own errors. */
    assert_int_equal(outcome(x, evexec_fs_openat(x->ex, dirfd, "file",
                                                 O_WRONLY | O_CREAT | O_EXCL, 0600)),
                     EEXIST);
    assert_int_equal(outcome(x, evexec_fs_mkdirat(x->ex, dirfd, "file", 0700)), EEXIST);
    assert_int_equal(outcome(x, evexec_fs_readlinkat(x->ex, dirfd, "file")), EINVAL);
    assert_int_equal(outcome(x, evexec_fs_unlinkat(x->ex, dirfd, "file", AT_REMOVEDIR)),
                     ENOTDIR);
    assert_int_equal(outcome(x, evexec_fs_statat(x->ex, dirfd, "file/x", 0)), ENOTDIR);
    close(filefd);
    close(dirfd);
    assert_int_equal(unlink(in_dir(x, "file")), 0);
    assert_int_equal(dir_entries(x), 0);
}

int main(void)
{
    if (getenv("TEST_FS_FILTER"))
        cmocka_set_test_filter(getenv("TEST_FS_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_write_read_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_future_owns_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_accessors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stat_rename_unlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mkdir_rmdir_scandir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_file_small, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_file_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_file_fifo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_file_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_file_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_file_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_file_cancel_queued, setup_one_thread,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_write_file_cancel_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_file_symlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_file_keeps_mode_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_file_unreadable_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_file_write_returns_0, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eintr_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signal_storm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_queued_open, setup_one_thread, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_running_open_closes_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_while_open_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_each_queued, setup_one_thread, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_queued, setup_one_thread, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_cancel_with_queued, setup_one_thread,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lstat_readlink_realpath, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ftruncate_chmod, setup, teardown),
        cmocka_unit_test_setup_teardown(test_utimens, setup_one_thread, teardown),
        cmocka_unit_test_setup_teardown(test_mkdtemp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copyfile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copyfile_partial_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sendfile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paths_copied, setup_one_thread, teardown),
        cmocka_unit_test_setup_teardown(test_at_calls_dirfd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_at_calls_fdcwd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_at_errors, setup, teardown),
    };
    return cmocka_run_group_tests_name("fs", tests, NULL, NULL);
}
