/*
 * fs.c -- file system calls on the pool, and the job shape that every
 * offloaded I/O call (these and dns.c's) shares.
 *
 * Design.  An I/O call copies its arguments into one malloc() block, a
 * request whose first member is the function that does the work on the
 * worker, and hands it to evexec__io_submit().  The job owns the request
 * and gives it back through evexec_run_opts' arg_free: freed on the worker
 * as soon as the function returns, or by the core wherever a job that
 * never ran is ended (cancelled while queued, its evexec freed, the pool
 * shut down with CANCEL).
 *
 * Results that are not pointers travel in the result pointer itself: a
 * descriptor or a byte count n is stored as n + 1, so that it is never
 * NULL, and the destructor stored with it says what it is (fs_fd_close
 * closes a descriptor, fs_count_tag marks a byte count and owns nothing).
 * The accessors check that destructor, so a future of another kind is
 * EINVAL, not a wrong number.  A descriptor owned by the future is closed
 * by the destructor: a cancelled open does not leak.
 *
 * Threads: the public calls and the accessors run on the loop thread; the
 * fs_do_* functions on a worker, touching only their request, the job and
 * the caller's borrowed buffers.  The two test seams below
 * (evexec__fs_write_hook, evexec__fs_read_file_max) are atomics read by
 * workers; only white-box tests ever store to them.
 *
 * Signals: every system call that can fail with EINTR is retried
 * (FS_RETRY), close(2) excepted (see fs_do_close); scandir(3) is retried as
 * a whole.
 */
#define _GNU_SOURCE
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/sendfile.h>
#endif

#include "evexec-internal.h"

/* ---- test seams (see evexec-internal.h) ----------------------------------- */

/* The write(2) every write in this file goes through. */
ssize_t (*_Atomic evexec__fs_write_hook)(int fd, const void *buf, size_t len) = write;

/* read_file's size limit. */
_Atomic size_t evexec__fs_read_file_max = EVEXEC_FS_READ_FILE_MAX;

static ssize_t fs_write(int fd, const void *buf, size_t len)
{
    return atomic_load_explicit(&evexec__fs_write_hook, memory_order_relaxed)(fd, buf, len);
}

/* ---- the shared job shape ------------------------------------------------ */

static int io_job(struct evexec_job *job, void *req)
{
    evexec__io_fn run = *(evexec__io_fn *)req;
    return run(job, req);
}

/* Run a request (a malloc() block starting with its evexec__io_fn) on
 * `lane`.  The job owns req from here on, also when this fails.  Returns a
 * new future, or NULL with errno as evexec_run_opts().  Loop thread. */
struct evexec_future *evexec__io_submit(struct evexec *ex, void *req, int lane)
{
    struct evexec_run_opts opts = { .lane = lane, .arg_free = free };
    struct evexec_future *f = evexec_run_opts(ex, io_job, req, &opts);
    if (!f) {
        int err = errno;
        free(req);
        errno = err;
    }
    return f;
}

/* ---- results that are not pointers --------------------------------------- */

static void fs_fd_close(void *p)
{
    close((int)((intptr_t)p - 1));
}

static void fs_count_tag(void *p)
{
    (void)p;
}

static void fs_set_scalar(struct evexec_job *job, intptr_t v, void (*tag)(void *))
{
    evexec_job_set_result(job, (void *)(v + 1), tag);
}

/* The future that holds the scalar result stored by fs_set_scalar() with
 * `tag`: f itself, or, through each wait_for that ended 0, its inner
 * future (a wait_for only borrows the pointer, its destructor stays with
 * the inner future).  Returns it, or NULL with errno set: the first
 * failed or pending future's error on the way (a wait_for that timed out
 * is ETIMEDOUT), EINVAL for NULL, another kind of result, or a result
 * already taken. */
static struct evexec_future *fs_scalar_holder(const struct evexec_future *f,
                                              void (*tag)(void *))
{
    struct evexec_future *in;
    int err;
    while ((err = evexec_future_error(f)) == 0 && (in = evexec__wait_for_inner(f)) != NULL)
        f = in;
    if (err == 0 && (!f->result || f->free_fn != tag))
        err = EINVAL;
    if (err) {
        errno = err;
        return NULL;
    }
    return (struct evexec_future *)f;
}

/* The scalar in holder's result, or -1 (errno set) for NULL. */
static intptr_t fs_scalar(const struct evexec_future *holder)
{
    return holder ? (intptr_t)holder->result - 1 : -1;
}

EVEXEC_API ssize_t evexec_fs_count(const struct evexec_future *f)
{
    return (ssize_t)fs_scalar(fs_scalar_holder(f, fs_count_tag));
}

EVEXEC_API int evexec_fs_fd(const struct evexec_future *f)
{
    return (int)fs_scalar(fs_scalar_holder(f, fs_fd_close));
}

EVEXEC_API int evexec_fs_take_fd(struct evexec_future *f)
{
    struct evexec_future *holder = fs_scalar_holder(f, fs_fd_close);
    int fd = (int)fs_scalar(holder);
    if (holder)
        evexec_future_take_result(holder);  /* no longer closed by it */
    return fd;
}

/* ---- requests ------------------------------------------------------------- */

struct fs_req {
    evexec__io_fn run;          /* first: see evexec__io_submit() */
    int kind;                   /* which call, for a run that does several */
    int fd;
    int fd2;                    /* sendfile's in_fd */
    int dirfd, dirfd2;          /* what path and path2 are relative to */
    int flags;
    int okflags;                /* the flag bits the call takes (NEED_FLAGS) */
    mode_t mode;
    void *buf;                  /* borrowed; only read by writes */
    size_t len;
    off_t off;
    int has_times;              /* utimens: times[] given, else now */
    struct timespec times[2];
    const char *path, *path2;   /* copies, in `names` */
    char names[];
};

enum { FS_READ = 1, FS_WRITE, FS_PREAD, FS_PWRITE, FS_DATASYNC };

/* What fs_call() checks before anything is queued. */
enum {
    NEED_PATH = 1 << 0,
    NEED_PATH2 = 1 << 1,
    NEED_FD = 1 << 2,
    NEED_BUF = 1 << 3,          /* buf/len, for read and write calls */
    NEED_OFF = 1 << 4,
    NEED_FD2 = 1 << 5,
    NEED_LEN = 1 << 6,          /* len <= SSIZE_MAX, no buffer */
    NEED_DIRFD = 1 << 7,        /* dirfd >= 0 or AT_FDCWD */
    NEED_DIRFD2 = 1 << 8,       /* dirfd2 likewise */
    NEED_FLAGS = 1 << 9,        /* no flag bit outside okflags */
};

static int bad_dirfd(int dirfd)
{
    return dirfd < 0 && dirfd != AT_FDCWD;
}

/* Check the arguments in *t (and the paths, which it copies), then queue a
 * copy of it.  Loop thread. */
static struct evexec_future *fs_call(struct evexec *ex, int need, const struct fs_req *t,
                                     const char *path, const char *path2)
{
    if (!ex || ((need & NEED_PATH) && !path) || ((need & NEED_PATH2) && !path2) ||
        ((need & NEED_FD) && t->fd < 0) ||
        ((need & NEED_BUF) && ((!t->buf && t->len > 0) || t->len > SSIZE_MAX)) ||
        ((need & NEED_OFF) && t->off < 0) || ((need & NEED_FD2) && t->fd2 < 0) ||
        ((need & NEED_LEN) && t->len > SSIZE_MAX) ||
        ((need & NEED_DIRFD) && bad_dirfd(t->dirfd)) ||
        ((need & NEED_DIRFD2) && bad_dirfd(t->dirfd2)) ||
        ((need & NEED_FLAGS) && (t->flags & ~t->okflags))) {
        errno = EINVAL;
        return NULL;
    }
    size_t l1 = path ? strlen(path) + 1 : 0;
    size_t l2 = path2 ? strlen(path2) + 1 : 0;
    struct fs_req *r = evexec__malloc(sizeof *r + l1 + l2);
    if (!r) {
        errno = ENOMEM;
        return NULL;
    }
    *r = *t;
    r->path = path ? memcpy(r->names, path, l1) : NULL;
    r->path2 = path2 ? memcpy(r->names + l1, path2, l2) : NULL;
    return evexec__io_submit(ex, r, EVEXEC_LANE_DEFAULT);
}

/* ---- the calls, on the worker --------------------------------------------- */

/* rc = call, again while a signal interrupts it. */
#define FS_RETRY(rc, call)                  \
    do                                      \
        (rc) = (call);                      \
    while ((rc) == -1 && errno == EINTR)

/* Read and write at most this much per system call, so long transfers look
 * at evexec_job_cancelled() now and then. */
#define FS_CHUNK ((size_t)8 << 20)

static int fs_status(int rc)
{
    return rc == 0 ? 0 : errno;
}

static int fs_do_open(struct evexec_job *job, void *arg)
{
    struct fs_req *r = arg;
    int fd;
    FS_RETRY(fd, openat(r->dirfd, r->path, r->flags | O_CLOEXEC, r->mode));
    if (fd < 0)
        return errno;
    fs_set_scalar(job, fd, fs_fd_close);
    return 0;
}

static int fs_do_close(struct evexec_job *job, void *arg)
{
    struct fs_req *r = arg;
    (void)job;
    /* Linux releases the descriptor even when close(2) says EINTR: never
     * retry, that could close someone else's new descriptor. */
    if (close(r->fd) != 0 && errno != EINTR)
        return errno;
    return 0;
}

/* read, write, pread or pwrite, as r->kind says; the count is the result. */
static int fs_do_xfer(struct evexec_job *job, void *arg)
{
    struct fs_req *r = arg;
    ssize_t n;
    switch (r->kind) {
    case FS_READ:
        FS_RETRY(n, read(r->fd, r->buf, r->len));
        break;
    case FS_WRITE:
        FS_RETRY(n, fs_write(r->fd, r->buf, r->len));
        break;
    case FS_PREAD:
        FS_RETRY(n, pread(r->fd, r->buf, r->len, r->off));
        break;
    default:
        FS_RETRY(n, pwrite(r->fd, r->buf, r->len, r->off));
        break;
    }
    if (n < 0)
        return errno;
    fs_set_scalar(job, n, fs_count_tag);
    return 0;
}

static int fs_do_stat(struct evexec_job *job, void *arg)
{
    struct fs_req *r = arg;
    struct stat *st = evexec__malloc(sizeof *st);
    if (!st)
        return ENOMEM;
    int rc;
    if (r->path)
        FS_RETRY(rc, fstatat(r->dirfd, r->path, st, r->flags));
    else
        FS_RETRY(rc, fstat(r->fd, st));
    if (rc != 0) {
        int err = errno;
        free(st);
        return err;
    }
    evexec_job_set_result(job, st, free);
    return 0;
}

/* fsync, or fdatasync when r->kind is FS_DATASYNC. */
static int fs_do_sync(struct evexec_job *job, void *arg)
{
    struct fs_req *r = arg;
    int rc;
    (void)job;
    if (r->kind == FS_DATASYNC)
        FS_RETRY(rc, fdatasync(r->fd));
    else
        FS_RETRY(rc, fsync(r->fd));
    return fs_status(rc);
}

static int fs_do_unlink(struct evexec_job *job, void *arg)
{
    struct fs_req *r = arg;
    int rc;
    (void)job;
    FS_RETRY(rc, unlinkat(r->dirfd, r->path, r->flags));
    return fs_status(rc);
}

static int fs_do_rename(struct evexec_job *job, void *arg)
{
    struct fs_req *r = arg;
    int rc;
    (void)job;
    FS_RETRY(rc, renameat(r->dirfd, r->path, r->dirfd2, r->path2));
    return fs_status(rc);
}

static int fs_do_mkdir(struct evexec_job *job, void *arg)
{
    struct fs_req *r = arg;
    int rc;
    (void)job;
    FS_RETRY(rc, mkdirat(r->dirfd, r->path, r->mode));
    return fs_status(rc);
}

static int not_dots(const struct dirent *d)
{
    const char *n = d->d_name;
    return !(n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0')));
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int fs_do_scandir(struct evexec_job *job, void *arg)
{
    struct fs_req *r = arg;
    struct dirent **ents;
    int n;
    /* scandir(3) frees what it made when it fails: start it over. */
    FS_RETRY(n, scandir(r->path, &ents, not_dots, by_name));
    if (n < 0)
        return errno;

    /* One block: the list, the name pointers, the names. */
    size_t count = (size_t)n;
    size_t bytes = sizeof(struct evexec_dirlist) + (count + 1) * sizeof(char *);
    for (size_t i = 0; i < count; i++)
        bytes += strlen(ents[i]->d_name) + 1;
    struct evexec_dirlist *dl = evexec__malloc(bytes);
    if (dl) {
        dl->count = count;
        dl->names = (char **)(dl + 1);
        char *p = (char *)(dl->names + count + 1);
        for (size_t i = 0; i < count; i++) {
            size_t l = strlen(ents[i]->d_name) + 1;
            dl->names[i] = memcpy(p, ents[i]->d_name, l);
            p += l;
        }
        dl->names[count] = NULL;
        evexec_job_set_result(job, dl, free);
    }
    for (size_t i = 0; i < count; i++)
        free(ents[i]);
    free(ents);
    return dl ? 0 : ENOMEM;
}

/* Open path for read_file: never blocks in open(2) (O_NONBLOCK, so a FIFO
 * with no writer cannot hang the worker), refuses what is not a regular
 * file, and clears O_NONBLOCK again.  Returns the fd with *st filled, or
 * -1 with *err set. */
static int fs_open_regular(const char *path, struct stat *st, int *err)
{
    int fd, rc;
    FS_RETRY(fd, open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    FS_RETRY(rc, fstat(fd, st));
    if (rc != 0)
        *err = errno;
    else if (S_ISDIR(st->st_mode))
        *err = EISDIR;
    else if (!S_ISREG(st->st_mode))
        *err = EINVAL;          /* FIFO, device, socket */
    else {
        int fl = fcntl(fd, F_GETFL);
        if (fl != -1 && fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != -1)
            return fd;
        *err = errno;
    }
    close(fd);
    return -1;
}

static int fs_do_read_file(struct evexec_job *job, void *arg)
{
    struct fs_req *r = arg;
    struct evexec_buf *b = NULL;
    struct stat st;
    int err = 0;
    size_t max = atomic_load_explicit(&evexec__fs_read_file_max, memory_order_relaxed);
    if (max > SIZE_MAX - sizeof *b - 1)
        max = SIZE_MAX - sizeof *b - 1;
    int fd = fs_open_regular(r->path, &st, &err);
    if (fd < 0)
        return err;
    if ((uintmax_t)st.st_size > max) {
        err = EFBIG;
        goto out;
    }
    /* The buffer holds cap bytes plus one spare byte: the read that comes
     * back 0 into the spare byte ends it without growing.  A file larger
     * than fstat said (it grew, or it is a /proc file of size 0) grows the
     * buffer, up to `max`; a byte beyond that is EFBIG. */
    size_t cap = st.st_size > 0 ? (size_t)st.st_size : 4096;
    if (cap > max)
        cap = max;
    size_t len = 0;
    for (;;) {
        if (!b || len == cap + 1) {
            if (b) {
                if (cap >= max) {
                    err = EFBIG;
                    goto out;
                }
                cap = cap == 0 ? 4096 : cap > max / 2 ? max : cap * 2;
                if (cap > max)
                    cap = max;
            }
            struct evexec_buf *nb = evexec__realloc(b, sizeof *b + cap + 1);
            if (!nb) {
                err = ENOMEM;
                goto out;
            }
            b = nb;
        }
        if (evexec_job_cancelled(job)) {
            err = ECANCELED;
            goto out;
        }
        char *data = (char *)(b + 1);
        size_t want = cap + 1 - len < FS_CHUNK ? cap + 1 - len : FS_CHUNK;
        ssize_t n;
        FS_RETRY(n, read(fd, data + len, want));
        if (n < 0) {
            err = errno;
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    b->data = b + 1;
    b->len = len;
    ((char *)b->data)[len] = '\0';
    evexec_job_set_result(job, b, free);
    b = NULL;
out:
    free(b);
    close(fd);
    return err;
}

/* Follow `path` while it names a symbolic link, as open(2) would, and write
 * the name it ends at to out (outsize bytes): the name write_file replaces.
 * That name need not exist: a dangling link leads to the name it points
 * to, which write_file then creates.  A relative link is taken relative to
 * the directory of the link.  Returns 0 or an errno value (ELOOP after 40
 * links, as Linux; ENAMETOOLONG; readlink(2)'s EACCES, ENOTDIR, ...). */
static int fs_follow_links(const char *path, char *out, size_t outsize)
{
    char link[PATH_MAX];
    size_t plen = strlen(path);
    if (plen >= outsize)
        return ENAMETOOLONG;
    memcpy(out, path, plen + 1);
    for (int hops = 0;; hops++) {
        ssize_t n;
        FS_RETRY(n, readlink(out, link, sizeof link));
        if (n < 0) /* EINVAL: not a link; ENOENT: the name to create */
            return errno == EINVAL || errno == ENOENT ? 0 : errno;
        if (hops == 40)
            return ELOOP;
        if ((size_t)n >= sizeof link)
            return ENAMETOOLONG;
        link[n] = '\0';
        const char *slash = strrchr(out, '/');
        size_t keep = link[0] == '/' || !slash ? 0 : (size_t)(slash - out) + 1;
        if (keep + (size_t)n >= outsize)
            return ENAMETOOLONG;
        memcpy(out + keep, link, (size_t)n + 1);
    }
}

/* Open a new temporary file next to `path`, its name written to tmp.
 * Returns the fd, or -1 with errno. */
static int fs_open_temp(const char *path, mode_t mode, char *tmp, size_t tmpsize)
{
    static atomic_uint serial;
    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path + 1) : 0;
    const char *base = slash ? slash + 1 : path;

    for (int tries = 0; tries < 100; tries++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned x = (unsigned)getpid() * 2654435761u ^
                     atomic_fetch_add(&serial, 1) * 0x9e3779b9u ^ (unsigned)ts.tv_nsec;
        if ((size_t)snprintf(tmp, tmpsize, "%.*s.%.32s.%08x.tmp", dirlen, path,
                             base, x) >= tmpsize) {
            errno = ENAMETOOLONG;
            return -1;
        }
        int fd;
        FS_RETRY(fd, open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1;
}

/* Give the temporary file fd what the file it replaces had: its owner and
 * group where the process may (root; or the group alone, for a member of
 * it), else they stay the caller's; then its permission bits, always
 * (after the chown, which clears set-user-ID bits).  Returns 0 or fchmod's
 * errno. */
static int fs_keep_owner_mode(int fd, const struct stat *old)
{
    struct stat now;
    int rc;
    FS_RETRY(rc, fstat(fd, &now));
    if (rc == 0 && (now.st_uid != old->st_uid || now.st_gid != old->st_gid)) {
        FS_RETRY(rc, fchown(fd, old->st_uid, old->st_gid));
        if (rc != 0 && now.st_gid != old->st_gid)
            FS_RETRY(rc, fchown(fd, (uid_t)-1, old->st_gid));
    }
    FS_RETRY(rc, fchmod(fd, old->st_mode & 07777));
    return fs_status(rc);
}

/* After the rename: fsync the directory that holds path, so that the
 * rename itself survives a crash.  Best effort: the new content is in
 * place whatever happens here, so nothing is reported.  A directory the
 * caller may write but not read (mode 0300) cannot be opened for fsync
 * (O_PATH descriptors refuse fsync), nor can some file systems sync a
 * directory at all. */
static void fs_sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    if (!slash)
        strcpy(dir, ".");
    else if ((size_t)(slash - path) >= sizeof dir)
        return;
    else
        snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    int fd, rc;
    FS_RETRY(fd, open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd < 0)
        return;
    FS_RETRY(rc, fsync(fd));
    (void)rc;
    close(fd);
}

static int fs_do_write_file(struct evexec_job *job, void *arg)
{
    struct fs_req *r = arg;
    char target[PATH_MAX];
    char tmp[PATH_MAX + 64];
    struct stat old;
    int rc;

    /* Through a symbolic link: replace the file it leads to, not the link. */
    int err = fs_follow_links(r->path, target, sizeof target);
    if (err)
        return err;
    FS_RETRY(rc, stat(target, &old));
    int keep = rc == 0 && S_ISREG(old.st_mode);
    /* An existing file's bits are set with fchmod below; until then the
     * temporary file is the owner's alone. */
    int fd = fs_open_temp(target, keep ? S_IRUSR | S_IWUSR : r->mode, tmp, sizeof tmp);
    if (fd < 0)
        return errno;
    if (keep)
        err = fs_keep_owner_mode(fd, &old);

    const char *p = r->buf;
    size_t left = r->len;
    while (left > 0 && !err) {
        if (evexec_job_cancelled(job)) {
            err = ECANCELED;
            break;
        }
        ssize_t n;
        FS_RETRY(n, fs_write(fd, p, left < FS_CHUNK ? left : FS_CHUNK));
        if (n < 0) {
            err = errno;
        } else if (n == 0) {
            err = EIO;          /* no progress and no reason: never spin */
        } else {
            p += n;
            left -= (size_t)n;
        }
    }
    if (!err) {
        FS_RETRY(rc, fsync(fd));
        err = fs_status(rc);
    }
    if (close(fd) != 0 && !err && errno != EINTR)
        err = errno;
    /* The last moment a cancel can still leave the old file in place. */
    if (!err && evexec_job_cancelled(job))
        err = ECANCELED;
    if (!err) {
        FS_RETRY(rc, rename(tmp, target));
        err = fs_status(rc);
    }
    if (err) {
        FS_RETRY(rc, unlink(tmp));
        return err;
    }
    /* The new content is in place: from here on, nothing is a failure. */
    fs_sync_dir(target);
    return 0;
}

/* ---- links, modes, times, temporary directories --------------------------- */

static int fs_do_readlink(struct evexec_job *job, void *arg)
{
    struct fs_req *r = arg;
    char *buf = NULL;
    /* Grow until the link fits with a byte to spare: readlink(2) filling
     * the whole buffer may have cut the link short. */
    for (size_t cap = 128;; cap = cap > (size_t)SSIZE_MAX / 2 ? (size_t)SSIZE_MAX : cap * 2) {
        char *nb = evexec__realloc(buf, cap);
        if (!nb) {
            free(buf);
            return ENOMEM;
        }
        buf = nb;
        ssize_t n;
        FS_RETRY(n, readlinkat(r->dirfd, r->path, buf, cap));
        if (n < 0) {
            int err = errno;
            free(buf);
            return err;
        }
        if ((size_t)n < cap) {
            buf[n] = '\0';
            evexec_job_set_result(job, buf, free);
            return 0;
        }
        if (cap == (size_t)SSIZE_MAX) {
            free(buf);
            return ENAMETOOLONG;
        }
    }
}

static int fs_do_realpath(struct evexec_job *job, void *arg)
{
    struct fs_req *r = arg;
    char *buf = evexec__malloc(PATH_MAX);
    if (!buf)
        return ENOMEM;
    char *res;
    do
        res = realpath(r->path, buf);
    while (!res && errno == EINTR);
    if (!res) {
        int err = errno;
        free(buf);
        return err;
    }
    char *small = evexec__realloc(buf, strlen(buf) + 1);
    if (small)
        buf = small;            /* else keep the larger block */
    evexec_job_set_result(job, buf, free);
    return 0;
}

static int fs_do_ftruncate(struct evexec_job *job, void *arg)
{
    struct fs_req *r = arg;
    int rc;
    (void)job;
    FS_RETRY(rc, ftruncate(r->fd, r->off));
    return fs_status(rc);
}

/* chmod(path) or, without a path, fchmod(fd). */
static int fs_do_chmod(struct evexec_job *job, void *arg)
{
    struct fs_req *r = arg;
    int rc;
    (void)job;
    if (r->path)
        FS_RETRY(rc, chmod(r->path, r->mode));
    else
        FS_RETRY(rc, fchmod(r->fd, r->mode));
    return fs_status(rc);
}

static int fs_do_utimens(struct evexec_job *job, void *arg)
{
    struct fs_req *r = arg;
    int rc;
    (void)job;
    FS_RETRY(rc, utimensat(AT_FDCWD, r->path, r->has_times ? r->times : NULL, 0));
    return fs_status(rc);
}

static int fs_do_mkdtemp(struct evexec_job *job, void *arg)
{
    struct fs_req *r = arg;
    size_t l = strlen(r->path) + 1;
    char *name = evexec__malloc(l);
    if (!name)
        return ENOMEM;
    char *res;
    /* mkdtemp(3) fills in the X's: each try starts from the template. */
    do {
        memcpy(name, r->path, l);
        res = mkdtemp(name);
    } while (!res && errno == EINTR);
    if (!res) {
        int err = errno;
        free(name);
        return err;
    }
    evexec_job_set_result(job, name, free);
    return 0;
}

/* ---- copyfile and sendfile ------------------------------------------------ */

/* The fallback's buffer. */
#define FS_COPY_BUF ((size_t)64 << 10)

/* Write all len bytes of p to fd.  Returns 0 or an errno value (EIO for
 * a write that returns 0). */
static int fs_write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n;
        FS_RETRY(n, fs_write(fd, p, len));
        if (n < 0)
            return errno;
        if (n == 0)
            return EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

#ifdef __linux__
/* Errors after which the kernel's copy is given up for read and write. */
static int fs_no_offload(int err)
{
    return err == ENOSYS || err == EXDEV || err == EINVAL || err == EOPNOTSUPP ||
           err == ENOTSUP;
}
#endif

/* Copy from `in` to `out` from their file offsets to the end of in,
 * looking at the cancel request between chunks.  Returns 0 or an errno
 * value. */
static int fs_copy_fds(struct evexec_job *job, int in, int out)
{
    char *buf = NULL;
    int err = 0;
#ifdef __linux__
    int offload = 1;
#endif
    for (;;) {
        if (evexec_job_cancelled(job)) {
            err = ECANCELED;
            break;
        }
#ifdef __linux__
        if (offload) {
            ssize_t n;
            FS_RETRY(n, copy_file_range(in, NULL, out, NULL, FS_CHUNK, 0));
            if (n > 0)
                continue;
            if (n == 0)
                break;
            if (!fs_no_offload(errno)) {
                err = errno;
                break;
            }
            offload = 0;        /* from here: read and write */
        }
#endif
        if (!buf && !(buf = evexec__malloc(FS_COPY_BUF))) {
            err = ENOMEM;
            break;
        }
        ssize_t n;
        FS_RETRY(n, read(in, buf, FS_COPY_BUF));
        if (n < 0) {
            err = errno;
            break;
        }
        if (n == 0)
            break;
        err = fs_write_all(out, buf, (size_t)n);
        if (err)
            break;
    }
    free(buf);
    return err;
}

static int fs_do_copyfile(struct evexec_job *job, void *arg)
{
    struct fs_req *r = arg;
    struct stat st, dst;
    int in, out, rc, err = 0;

    FS_RETRY(in, open(r->path, O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (in < 0)
        return errno;
    FS_RETRY(rc, fstat(in, &st));
    if (rc != 0) {
        err = errno;
        goto close_in;
    }
    if (S_ISDIR(st.st_mode)) {
        err = EISDIR;
        goto close_in;
    }
    int oflags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY;
    if (r->flags & EVEXEC_FS_COPY_EXCL)
        oflags |= O_EXCL;
    FS_RETRY(out, open(r->path2, oflags, st.st_mode & 07777));
    if (out < 0) {
        err = errno;
        goto close_in;
    }
    /* Copying a file onto itself: nothing to do (truncating it first
     * would lose it). */
    int regular = 0;            /* only a regular file is removed on failure */
    FS_RETRY(rc, fstat(out, &dst));
    if (rc != 0) {
        err = errno;
    } else if (dst.st_dev == st.st_dev && dst.st_ino == st.st_ino) {
        close(out);
        goto close_in;
    } else if (S_ISREG(dst.st_mode)) {
        regular = 1;
        FS_RETRY(rc, ftruncate(out, 0));
        if (rc == 0)
            FS_RETRY(rc, fchmod(out, st.st_mode & 07777));
        err = fs_status(rc);
    }
    if (!err)
        err = fs_copy_fds(job, in, out);
    if (close(out) != 0 && !err && errno != EINTR)
        err = errno;
    if (err && regular)
        FS_RETRY(rc, unlink(r->path2));
close_in:
    close(in);
    return err;
}

static int fs_do_sendfile(struct evexec_job *job, void *arg)
{
    struct fs_req *r = arg;
    off_t off = r->off;
    size_t done = 0;
    char *buf = NULL;
    int err = 0;
#ifdef __linux__
    int offload = 1;
#endif
    while (done < r->len) {
        size_t want = r->len - done < FS_CHUNK ? r->len - done : FS_CHUNK;
        ssize_t n;
#ifdef __linux__
        if (offload) {
            FS_RETRY(n, sendfile(r->fd, r->fd2, &off, want));
            if (n > 0) {
                done += (size_t)n;
                continue;
            }
            if (n == 0)
                break;
            if (done > 0 || !fs_no_offload(errno)) {
                err = errno;
                break;
            }
            offload = 0;        /* from here: pread and write */
        }
#endif
        if (!buf && !(buf = evexec__malloc(FS_COPY_BUF))) {
            err = ENOMEM;
            break;
        }
        if (want > FS_COPY_BUF)
            want = FS_COPY_BUF;
        FS_RETRY(n, pread(r->fd2, buf, want, off));
        if (n < 0) {
            err = errno;
            break;
        }
        if (n == 0)
            break;
        err = fs_write_all(r->fd, buf, (size_t)n);
        if (err)
            break;
        off += n;
        done += (size_t)n;
    }
    free(buf);
    /* Bytes already sent are reported, as a short write(2) would be. */
    if (err && done == 0)
        return err;
    fs_set_scalar(job, (intptr_t)done, fs_count_tag);
    return 0;
}

/* ---- the public calls ----------------------------------------------------- */

EVEXEC_API struct evexec_future *evexec_fs_openat(struct evexec *ex, int dirfd,
                                                  const char *path, int flags, mode_t mode)
{
    struct fs_req t = { .run = fs_do_open, .dirfd = dirfd, .flags = flags, .mode = mode };
    return fs_call(ex, NEED_PATH | NEED_DIRFD, &t, path, NULL);
}

EVEXEC_API struct evexec_future *evexec_fs_open(struct evexec *ex, const char *path,
                                                int flags, mode_t mode)
{
    return evexec_fs_openat(ex, AT_FDCWD, path, flags, mode);
}

EVEXEC_API struct evexec_future *evexec_fs_close(struct evexec *ex, int fd)
{
    struct fs_req t = { .run = fs_do_close, .fd = fd };
    return fs_call(ex, NEED_FD, &t, NULL, NULL);
}

EVEXEC_API struct evexec_future *evexec_fs_read(struct evexec *ex, int fd,
                                                void *buf, size_t len)
{
    struct fs_req t = { .run = fs_do_xfer, .kind = FS_READ, .fd = fd, .buf = buf,
                        .len = len };
    return fs_call(ex, NEED_FD | NEED_BUF, &t, NULL, NULL);
}

EVEXEC_API struct evexec_future *evexec_fs_write(struct evexec *ex, int fd,
                                                 const void *buf, size_t len)
{
    struct fs_req t = { .run = fs_do_xfer, .kind = FS_WRITE, .fd = fd, .buf = (void *)buf,
                        .len = len };
    return fs_call(ex, NEED_FD | NEED_BUF, &t, NULL, NULL);
}

EVEXEC_API struct evexec_future *evexec_fs_pread(struct evexec *ex, int fd,
                                                 void *buf, size_t len, off_t offset)
{
    struct fs_req t = { .run = fs_do_xfer, .kind = FS_PREAD, .fd = fd, .buf = buf,
                        .len = len, .off = offset };
    return fs_call(ex, NEED_FD | NEED_BUF | NEED_OFF, &t, NULL, NULL);
}

EVEXEC_API struct evexec_future *evexec_fs_pwrite(struct evexec *ex, int fd,
                                                  const void *buf, size_t len,
                                                  off_t offset)
{
    struct fs_req t = { .run = fs_do_xfer, .kind = FS_PWRITE, .fd = fd,
                        .buf = (void *)buf, .len = len, .off = offset };
    return fs_call(ex, NEED_FD | NEED_BUF | NEED_OFF, &t, NULL, NULL);
}

EVEXEC_API struct evexec_future *evexec_fs_statat(struct evexec *ex, int dirfd,
                                                  const char *path, int flags)
{
    struct fs_req t = { .run = fs_do_stat, .dirfd = dirfd, .flags = flags,
                        .okflags = AT_SYMLINK_NOFOLLOW };
    return fs_call(ex, NEED_PATH | NEED_DIRFD | NEED_FLAGS, &t, path, NULL);
}

EVEXEC_API struct evexec_future *evexec_fs_stat(struct evexec *ex, const char *path)
{
    return evexec_fs_statat(ex, AT_FDCWD, path, 0);
}

EVEXEC_API struct evexec_future *evexec_fs_fstat(struct evexec *ex, int fd)
{
    struct fs_req t = { .run = fs_do_stat, .fd = fd };
    return fs_call(ex, NEED_FD, &t, NULL, NULL);
}

EVEXEC_API struct evexec_future *evexec_fs_fsync(struct evexec *ex, int fd)
{
    struct fs_req t = { .run = fs_do_sync, .fd = fd };
    return fs_call(ex, NEED_FD, &t, NULL, NULL);
}

EVEXEC_API struct evexec_future *evexec_fs_fdatasync(struct evexec *ex, int fd)
{
    struct fs_req t = { .run = fs_do_sync, .kind = FS_DATASYNC, .fd = fd };
    return fs_call(ex, NEED_FD, &t, NULL, NULL);
}

EVEXEC_API struct evexec_future *evexec_fs_unlinkat(struct evexec *ex, int dirfd,
                                                    const char *path, int flags)
{
    struct fs_req t = { .run = fs_do_unlink, .dirfd = dirfd, .flags = flags,
                        .okflags = AT_REMOVEDIR };
    return fs_call(ex, NEED_PATH | NEED_DIRFD | NEED_FLAGS, &t, path, NULL);
}

EVEXEC_API struct evexec_future *evexec_fs_unlink(struct evexec *ex, const char *path)
{
    return evexec_fs_unlinkat(ex, AT_FDCWD, path, 0);
}

EVEXEC_API struct evexec_future *evexec_fs_renameat(struct evexec *ex, int olddirfd,
                                                    const char *oldpath, int newdirfd,
                                                    const char *newpath)
{
    struct fs_req t = { .run = fs_do_rename, .dirfd = olddirfd, .dirfd2 = newdirfd };
    return fs_call(ex, NEED_PATH | NEED_PATH2 | NEED_DIRFD | NEED_DIRFD2, &t, oldpath,
                   newpath);
}

EVEXEC_API struct evexec_future *evexec_fs_rename(struct evexec *ex, const char *from,
                                                  const char *to)
{
    return evexec_fs_renameat(ex, AT_FDCWD, from, AT_FDCWD, to);
}

EVEXEC_API struct evexec_future *evexec_fs_mkdirat(struct evexec *ex, int dirfd,
                                                   const char *path, mode_t mode)
{
    struct fs_req t = { .run = fs_do_mkdir, .dirfd = dirfd, .mode = mode };
    return fs_call(ex, NEED_PATH | NEED_DIRFD, &t, path, NULL);
}

EVEXEC_API struct evexec_future *evexec_fs_mkdir(struct evexec *ex, const char *path,
                                                 mode_t mode)
{
    return evexec_fs_mkdirat(ex, AT_FDCWD, path, mode);
}

EVEXEC_API struct evexec_future *evexec_fs_rmdir(struct evexec *ex, const char *path)
{
    return evexec_fs_unlinkat(ex, AT_FDCWD, path, AT_REMOVEDIR);
}

EVEXEC_API struct evexec_future *evexec_fs_scandir(struct evexec *ex, const char *path)
{
    struct fs_req t = { .run = fs_do_scandir };
    return fs_call(ex, NEED_PATH, &t, path, NULL);
}

EVEXEC_API struct evexec_future *evexec_fs_read_file(struct evexec *ex, const char *path)
{
    struct fs_req t = { .run = fs_do_read_file };
    return fs_call(ex, NEED_PATH, &t, path, NULL);
}

EVEXEC_API struct evexec_future *evexec_fs_write_file(struct evexec *ex, const char *path,
                                                      const void *data, size_t len,
                                                      mode_t mode)
{
    struct fs_req t = { .run = fs_do_write_file, .buf = (void *)data, .len = len,
                        .mode = mode };
    return fs_call(ex, NEED_PATH | NEED_BUF, &t, path, NULL);
}

EVEXEC_API struct evexec_future *evexec_fs_lstat(struct evexec *ex, const char *path)
{
    return evexec_fs_statat(ex, AT_FDCWD, path, AT_SYMLINK_NOFOLLOW);
}

EVEXEC_API struct evexec_future *evexec_fs_readlinkat(struct evexec *ex, int dirfd,
                                                      const char *path)
{
    struct fs_req t = { .run = fs_do_readlink, .dirfd = dirfd };
    return fs_call(ex, NEED_PATH | NEED_DIRFD, &t, path, NULL);
}

EVEXEC_API struct evexec_future *evexec_fs_readlink(struct evexec *ex, const char *path)
{
    return evexec_fs_readlinkat(ex, AT_FDCWD, path);
}

EVEXEC_API struct evexec_future *evexec_fs_realpath(struct evexec *ex, const char *path)
{
    struct fs_req t = { .run = fs_do_realpath };
    return fs_call(ex, NEED_PATH, &t, path, NULL);
}

EVEXEC_API struct evexec_future *evexec_fs_ftruncate(struct evexec *ex, int fd, off_t length)
{
    struct fs_req t = { .run = fs_do_ftruncate, .fd = fd, .off = length };
    return fs_call(ex, NEED_FD | NEED_OFF, &t, NULL, NULL);
}

EVEXEC_API struct evexec_future *evexec_fs_chmod(struct evexec *ex, const char *path,
                                                 mode_t mode)
{
    struct fs_req t = { .run = fs_do_chmod, .mode = mode };
    return fs_call(ex, NEED_PATH, &t, path, NULL);
}

EVEXEC_API struct evexec_future *evexec_fs_fchmod(struct evexec *ex, int fd, mode_t mode)
{
    struct fs_req t = { .run = fs_do_chmod, .fd = fd, .mode = mode };
    return fs_call(ex, NEED_FD, &t, NULL, NULL);
}

EVEXEC_API struct evexec_future *evexec_fs_utimens(struct evexec *ex, const char *path,
                                                   const struct timespec times[2])
{
    struct fs_req t = { .run = fs_do_utimens };
    if (times) {
        t.has_times = 1;
        t.times[0] = times[0];
        t.times[1] = times[1];
    }
    return fs_call(ex, NEED_PATH, &t, path, NULL);
}

EVEXEC_API struct evexec_future *evexec_fs_mkdtemp(struct evexec *ex, const char *tmpl)
{
    struct fs_req t = { .run = fs_do_mkdtemp };
    return fs_call(ex, NEED_PATH, &t, tmpl, NULL);
}

EVEXEC_API struct evexec_future *evexec_fs_copyfile(struct evexec *ex, const char *from,
                                                    const char *to, int flags)
{
    struct fs_req t = { .run = fs_do_copyfile, .flags = flags,
                        .okflags = EVEXEC_FS_COPY_EXCL };
    return fs_call(ex, NEED_PATH | NEED_PATH2 | NEED_FLAGS, &t, from, to);
}

EVEXEC_API struct evexec_future *evexec_fs_sendfile(struct evexec *ex, int out_fd,
                                                    int in_fd, off_t offset, size_t len)
{
    struct fs_req t = { .run = fs_do_sendfile, .fd = out_fd, .fd2 = in_fd, .off = offset,
                        .len = len };
    return fs_call(ex, NEED_FD | NEED_FD2 | NEED_OFF | NEED_LEN, &t, NULL, NULL);
}
