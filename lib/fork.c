/*
 * fork.c -- what evexec does when the process forks.
 *
 * Design.  A child of a process that used evexec inherits pools whose
 * threads do not exist in it, evexecs whose wake-up channel and epoll set
 * are shared with the parent, and locks that a vanished thread may hold.
 * None of that can be repaired, so it is disowned: every pool and evexec
 * records the fork generation it was made in, the child handler bumps the
 * generation, and an object of an older generation is "inherited": calls
 * that would use it fail with ESHUTDOWN, and freeing it touches nothing the
 * parent still uses (see evexec_pool_free and evexec_free).
 *
 * The process-wide locks that a child must still be able to take (the
 * default pool's, the cancellation stripes', the log sink's) are taken by
 * the prepare handler and released on both sides, so no thread holds them
 * across the fork.  Thread-local state of the forking thread (a pending
 * batch, being a worker) is cleared in the child, and so is the count of
 * the process's adaptive spinners (none of the parent's is there).
 *
 * Threads: the handlers run in the thread that calls fork(); the
 * generation is read from any thread (relaxed: it changes only in a child,
 * which has one thread at that moment).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <pthread.h>

#include "evexec-internal.h"

atomic_uint evexec__fork_gen;

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void prepare(void)
{
    evexec__pool_atfork(EVEXEC__FORK_PREPARE);
    evexec__cancel_atfork(EVEXEC__FORK_PREPARE);
    evexec__log_atfork(EVEXEC__FORK_PREPARE);
}

static void parent(void)
{
    evexec__log_atfork(EVEXEC__FORK_PARENT);
    evexec__cancel_atfork(EVEXEC__FORK_PARENT);
    evexec__pool_atfork(EVEXEC__FORK_PARENT);
}

static void child(void)
{
    atomic_fetch_add_explicit(&evexec__fork_gen, 1, memory_order_relaxed);
    evexec__log_atfork(EVEXEC__FORK_CHILD);
    evexec__cancel_atfork(EVEXEC__FORK_CHILD);
    evexec__pool_atfork(EVEXEC__FORK_CHILD);
    evexec__bridge_atfork_child();
}

static void install(void)
{
    pthread_atfork(prepare, parent, child);
}

unsigned evexec__fork_init(void)
{
    pthread_once(&atfork_once, install);
    return evexec__fork_generation();
}
