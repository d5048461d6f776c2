/** @file
 * evexec-combine.h -- combining futures: gather, wait, as_completed,
 * wait_for, task groups; cooperative cancellation for jobs; reports of
 * failures nobody looked at.
 *
 * Included by evexec.h; do not include directly.
 *
 * Combinators are futures.  Each constructor returns one reference, the
 * caller's, to a future of the evexec it is given; it can be waited on,
 * cancelled, given done callbacks, and passed to another combinator (a
 * gather of wait_fors of jobs).  A combinator takes its own reference to
 * each input when it is made and drops them when it is released, so the
 * caller may drop its references to the inputs at once.  It learns of its
 * inputs' ends through done callbacks, so it reacts from the loop's
 * dispatch, never inside the call that ended an input.
 *
 * Common errors of the constructors (NULL, errno): EINVAL for a NULL
 * evexec, a NULL input array with n > 0, a NULL input, an input of another
 * evexec, or a malformed timeout (negative, or tv_usec not in
 * [0, 1000000)); ENOMEM; ESHUTDOWN while the evexec is being freed.
 *
 * Timeouts are relative, measured on the event_base's clock by a libevent
 * timer.  NULL means none.  With keep-alive off (evexec_set_keepalive()),
 * a pending timer keeps event_base_dispatch() running and a combinator
 * waiting only on hand-made futures does not; with the default keep-alive
 * the evexec keeps it running anyway.
 *
 * Teardown.  evexec_free() ends pending combinators ECANCELED at once, like
 * every other pending future, and releases them.
 *
 * Everything here is loop-thread only, except evexec_job_wait_cancel() and
 * evexec_job_poll() (the worker running the job) and evexec_set_log_fn()
 * (any thread).
 */
#ifndef EVEXEC_COMBINE_H
#define EVEXEC_COMBINE_H

#include <poll.h>
#include <stddef.h>
#include <time.h>
#include <sys/time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* gather                                                              */
/* ------------------------------------------------------------------ */

/** Gather flags. */
#define EVEXEC_GATHER_ALL 0x1  /**< wait for every input; end 0 (asyncio's
                                    return_exceptions=True) */

/**
 * A future that ends once every input has ended, with an array of n
 * pointers as its result: result[i] is input i's result (borrowed from the
 * input, which the gather keeps referenced).  The array belongs to the
 * gather and is valid while the gather is referenced; never free it (even
 * after evexec_future_take_result(), which only hands out the pointer).
 * For n == 0 the array is empty (the pointer is not NULL).
 *
 * Without flags the gather ends with the error of the first input to fail
 * in completion order (ECANCELED included, as asyncio's gather does when a
 * child is cancelled); the other inputs keep running.  It then has no
 * result, and evexec_gather_error() still reads each input.
 *
 * Cancelling the gather cancels every input that has not ended and ends
 * the gather ECANCELED at once (a running job's future itself ends when
 * its function returns).
 *
 * n == 0 ends 0 on the next loop turn, never inside this call.  The same
 * future may appear more than once.  The gather reads its inputs' errors,
 * so their failures count as observed (see evexec_set_log_fn()).
 *
 * Returns a new future, or NULL with errno as described at the top of this
 * file.  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_gather(struct evexec *ex,
                                               struct evexec_future **fs, size_t n);

/**
 * evexec_gather() with flags: 0, or EVEXEC_GATHER_ALL to wait for every
 * input and end 0 whatever they did; result[i] is then NULL for an input
 * that failed or was cancelled, and evexec_gather_error() tells why.
 * Unknown flag bits are EINVAL.
 */
EVEXEC_API struct evexec_future *evexec_gather_opts(struct evexec *ex,
                                                    struct evexec_future **fs,
                                                    size_t n, int flags);

/**
 * Input i's error as the gather holds it: 0, the input's error code, or
 * EINPROGRESS if it has not ended.  EINVAL for NULL, a future that is not
 * a gather, or i >= n (an input may itself have failed with EINVAL: check
 * i against n to tell them apart).  Loop thread.
 */
EVEXEC_API int evexec_gather_error(const struct evexec_future *gather, size_t i);

/**
 * Input i of the gather, borrowed: the gather holds a reference to it, so
 * it is valid while the gather is referenced (take a reference of your own
 * to keep it longer).  It is how an input's outcome is read through the
 * gather when it is not a pointer: evexec_fs_count(evexec_gather_input(g,
 * i)) is input i's byte count, evexec_fs_take_fd(evexec_gather_input(g,
 * i)) takes its descriptor (result[i] of the gather's array must not be
 * converted for those).  Returns the input, or NULL with errno EINVAL for
 * NULL, a future that is not a gather, or i >= n.  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_gather_input(struct evexec_future *gather,
                                                     size_t i);

/* ------------------------------------------------------------------ */
/* wait                                                                */
/* ------------------------------------------------------------------ */

/** When evexec_wait() ends. */
#define EVEXEC_FIRST_COMPLETED 1  /**< when any input ends */
#define EVEXEC_FIRST_EXCEPTION 2  /**< when an input fails (ECANCELED is not a
                                       failure), or when all have ended */
#define EVEXEC_ALL_COMPLETED   3  /**< when every input has ended */

/**
 * The result of evexec_wait(): which inputs had ended when the wait ended.
 * Owned by the wait future (borrowed: valid while it is referenced).
 */
struct evexec_wait_result {
    size_t n;                     /**< inputs given */
    size_t n_done;                /**< inputs that had ended */
    size_t n_pending;             /**< inputs still pending; n_done + n_pending == n */
    const unsigned char *done;    /**< done[i] is 1 if input i had ended, else 0 */
    const size_t *done_index;     /**< the n_done indices with done[i], ascending */
    const size_t *pending_index;  /**< the n_pending other indices, ascending */
};

/**
 * A future that ends 0, with a struct evexec_wait_result as its result,
 * when `when` is met (see EVEXEC_FIRST_COMPLETED and the others) or when
 * `timeout` passes, whichever comes first.  The result is a snapshot taken
 * as the wait ends: an input counts as done if evexec_future_done() was
 * true for it then.
 *
 * The wait never cancels its inputs and never fails because of them: it
 * ends 0 on timeout and when an input failed (read the inputs to learn
 * why; the wait does not count as having observed their errors).
 * Cancelling the wait ends it ECANCELED, with no result, and leaves the
 * inputs alone.  n == 0 ends 0 on the next loop turn.  The same future may
 * appear more than once.
 *
 * Returns a new future, or NULL with errno as described at the top of this
 * file; EINVAL also for any other value of `when`.  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_wait(struct evexec *ex,
                                             struct evexec_future **fs, size_t n,
                                             int when, const struct timeval *timeout);

/* ------------------------------------------------------------------ */
/* as_completed                                                        */
/* ------------------------------------------------------------------ */

/**
 * Call each(f, arg) once per input, in the order the inputs end, from the
 * loop's dispatch (never inside this call).  `f` is borrowed (the
 * as_completed future keeps it referenced during the call); each() may
 * take a reference to it, read it, drop references of its own, cancel any
 * future (this one included) and call evexec_free().  An input given twice
 * is delivered twice.
 *
 * Returns a future, not a status: it ends 0 right after the last each()
 * call returns, so "all delivered" can be waited on, combined (wrap it in
 * evexec_wait_for() to bound the whole walk) and cancelled.  Cancelling it
 * ends it ECANCELED and stops the calls to come; the inputs are left
 * alone.  n == 0 ends 0 on the next loop turn with no call.
 *
 * Returns a new future, or NULL with errno as described at the top of this
 * file; EINVAL also for a NULL `each`.  When it returns NULL, each() is
 * never called.  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_as_completed(struct evexec *ex,
                                                     struct evexec_future **fs,
                                                     size_t n,
                                                     void (*each)(struct evexec_future *f,
                                                                  void *arg),
                                                     void *arg);

/* ------------------------------------------------------------------ */
/* wait_for                                                            */
/* ------------------------------------------------------------------ */

/**
 * A future that ends as `f` ends, with f's own result pointer (borrowed:
 * the wait_for keeps f referenced) and error, unless `timeout` passes
 * first: then it ends ETIMEDOUT and cancels f.  A NULL timeout means none.
 * If f has ended by the time the timer fires, its outcome wins, so an f
 * already done gives its outcome even with a zero timeout.
 *
 * The result stays f's: evexec_future_take_result() on the wait_for hands
 * out f's pointer but takes nothing from f, so never free it.
 *
 * Cancelling the wait_for cancels f and ends the wait_for ECANCELED at
 * once (a running job's future itself ends when its function returns).
 * The wait_for reads f's error, so f's failure counts as observed.
 *
 * Borrowed buffers.  After a timeout (or a cancel) the wait_for has ended
 * but f may still be running: an evexec_fs_read() keeps writing into its
 * buffer, an evexec_fs_write() keeps reading from it, until the system
 * call returns and f ends.  A buffer lent to f is f's until f has ended,
 * not until the wait_for has.  Free it from a done callback on f
 * (evexec_future_on_done(f, ...), added before dropping the reference to
 * f), never when the wait_for ends.  See evexec-io.h, "Borrowed buffers
 * and combinators".
 *
 * Byte counts and descriptors of a file future f are read through the
 * wait_for with evexec_fs_count(), evexec_fs_fd() and evexec_fs_take_fd()
 * (see evexec-io.h, "Scalars through combinators").
 *
 * Returns a new future, or NULL with errno as described at the top of this
 * file.  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_wait_for(struct evexec *ex,
                                                 struct evexec_future *f,
                                                 const struct timeval *timeout);

/* ------------------------------------------------------------------ */
/* Task groups                                                         */
/* ------------------------------------------------------------------ */

/**
 * A task group (asyncio's TaskGroup): members are added one by one; the
 * group's future ends once the group is closed (evexec_group_future() or
 * evexec_group_free()) and every member has ended.  The first member to
 * fail with an error other than ECANCELED cancels the others; the group
 * still waits for them all, then ends with that first error.  So when the
 * group's future has ended, none of its members is pending.
 *
 * A group belongs to its evexec: evexec_free() ends it ECANCELED (at once)
 * and frees it, handle included.
 */
struct evexec_group;

/**
 * Make an empty, open group.  Returns it, or NULL with errno EINVAL (NULL
 * ex), ENOMEM or ESHUTDOWN.  Free it with evexec_group_free().  Loop thread.
 */
EVEXEC_API struct evexec_group *evexec_group_new(struct evexec *ex);

/**
 * Add f to the group; the group takes its own reference (the caller keeps
 * its own).  Members may be added while the group's future is pending,
 * also after it was closed (a member may start more work), but not once
 * the group is shutting down.
 *
 * A group must not hold its own future, directly (EINVAL) or through
 * other groups (it would never end before evexec_free()).
 *
 * Returns 0; EINVAL (NULL arguments, a future of another evexec, or the
 * group's own future); ESHUTDOWN when the group takes no more members (a
 * member failed, the group was cancelled or freed, or its future ended):
 * f is left alone then; ENOMEM.  Loop thread.
 */
EVEXEC_API int evexec_group_add(struct evexec_group *g, struct evexec_future *f);

/**
 * The group's future, a new reference.  Closes the group: from now on it
 * ends as soon as no member is pending (with no member at all: on the
 * next loop turn).  It ends 0 with no result, with the first member
 * failure, or ECANCELED when it was cancelled (and no member failed).
 * Cancelling it cancels every pending member; it then ends when they all
 * have ended.  May be called more than once.  Returns NULL with errno
 * EINVAL for NULL.  Loop thread.
 */
EVEXEC_API struct evexec_future *evexec_group_future(struct evexec_group *g);

/**
 * Close the group and drop the handle: members still pending are
 * cancelled (the group's future then ends ECANCELED, or with a member's
 * failure, once they have ended).  The group's future stays valid for
 * whoever holds a reference.  NULL is ignored.  Call it before
 * evexec_free(), which otherwise frees the group.  Loop thread.
 */
EVEXEC_API void evexec_group_free(struct evexec_group *g);

/* ------------------------------------------------------------------ */
/* Cooperative cancellation, on the worker                             */
/* ------------------------------------------------------------------ */

/**
 * Block the worker until cancellation of `job` is asked or `timeout`
 * (relative; NULL: no limit) passes.  Use it instead of polling
 * evexec_job_cancelled() in a job that waits or paces itself.
 * Cancellation is asked as evexec_job_cancelled() says, shutdown(CANCEL)
 * of the job's pool included.
 *
 * Returns ECANCELED as soon as cancellation is asked (at once if it
 * already was); ETIMEDOUT when the timeout passed first (a zero timeout
 * only checks); EINVAL for a NULL job or a timeout with a negative field
 * or tv_nsec >= 1000000000.  Worker thread running this job.
 */
EVEXEC_API int evexec_job_wait_cancel(struct evexec_job *job,
                                      const struct timespec *timeout);

/**
 * poll(2) that also returns when cancellation of `job` is asked: wait until
 * one of the n `fds` is ready, cancellation is asked, or `timeout`
 * (relative; NULL: no limit) passes.  For jobs that block on their own
 * sockets or pipes and want to stop when their future is cancelled.
 * With n == 0 it is evexec_job_wait_cancel().
 *
 * Returns 0 when some fd is ready (their revents are set as by poll();
 * only then); ECANCELED as soon as cancellation is asked (at once if it
 * already was); ETIMEDOUT; EINVAL (NULL job, NULL fds with n > 0, a
 * malformed timeout); ENOMEM; or poll()'s own error.  The wake-up uses one
 * fd per worker thread, made on first use and closed when the thread
 * exits.  Worker thread running this job.
 */
EVEXEC_API int evexec_job_poll(struct evexec_job *job, struct pollfd *fds, nfds_t n,
                               const struct timespec *timeout);

/* ------------------------------------------------------------------ */
/* Failures nobody looked at                                           */
/* ------------------------------------------------------------------ */

/**
 * A log sink.  `error` is the code the message is about (0 if none);
 * `msg` is one line without a newline, valid during the call.  It may be
 * called from any loop thread, also during evexec_free(), and must not
 * call into evexec.
 */
typedef void (*evexec_log_fn)(int error, const char *msg, void *arg);

/**
 * Where evexec reports what it cannot return to anyone.  Today that is a
 * future that failed (an error other than ECANCELED) and was released
 * without anyone having read its error (asyncio's "exception was never
 * retrieved"): evexec_future_error(), evexec_run_until_complete() and the
 * combinators that pass an input's error on (gather, wait_for, group) read
 * it; evexec_wait() and evexec_as_completed() do not.
 *
 * By default each report is one line on stderr.  fn NULL restores that
 * default; to silence reports, pass a function that ignores them.
 * Process-wide; any thread.
 */
EVEXEC_API void evexec_set_log_fn(evexec_log_fn fn, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* EVEXEC_COMBINE_H */
