/*
 * shutdown.pml -- a model of evexec's pool shutdown (lib/pool.c), checked
 * with spin (tests/model/check.sh runs it).
 *
 * What is modelled, step for step with the C code:
 *
 *  worker(me)   worker_main: under pool->lock take() the queue's head
 *               (qstate RUNNING), unlock, run it, push its completion,
 *               lock, free_threads++; with nothing to take: exit when
 *               shut down and the queue is empty, else wait on work_cv --
 *               a timed wait above min_threads (and then exit on a time-out
 *               with nothing runnable), an untimed one otherwise.  On exit:
 *               nthreads--, broadcast exit_cv, and work_cv when shut down.
 *  submitter    the loop thread: evexec__pool_submit of NJ jobs (refused
 *               once shut down; starts a worker when the queued jobs
 *               outnumber the free threads; signals work_cv when a worker
 *               waits), and evexec__pool_unqueue of job 1 at some point
 *               (evexec_future_cancel: removed while queued, or too late).
 *  shutter      evexec_pool_shutdown(flags) with flags chosen among 0,
 *               WAIT, CANCEL, WAIT|CANCEL: shutdown = 1, and for CANCEL
 *               cancel_running = 1 and every queued job unlinked (REMOVED)
 *               under the lock, broadcast work_cv, unlock, push an
 *               ECANCELED completion for each unlinked job; for WAIT, wait
 *               on exit_cv until nthreads == 0.  Then evexec_pool_free:
 *               shutdown = 1, wait until every worker exited.
 *
 * Condition variables are modelled as POSIX defines them: a waiter
 * releases the lock and registers in one step; a signal wakes one
 * registered waiter (any), a broadcast all; a woken waiter retakes the
 * lock.  Timed waits may time out at any moment.  One lane (the slow
 * lane's cap is not modelled), no spin before sleeping, no spawn failures.
 *
 * Properties (assertions, plus spin's check for invalid end states, which
 * catches a lost signal as a thread waiting for ever):
 *  - a job never runs twice; only a job taken off the queue by a worker
 *    runs; a job removed from the queue (cancelled while queued, by the
 *    loop or by shutdown(CANCEL)) never runs;
 *  - shutdown(WAIT) returns only when no job is running, no job is
 *    queued and no worker is left; evexec_pool_free likewise;
 *  - at the end every job ended exactly once: run and pushed, pushed
 *    ECANCELED by shutdown, ended by the loop's cancel, or refused at
 *    submission.
 *
 * Mutants (-D at spin -a time; check.sh expects each to fail):
 *  MUT_WAIT_IF             wait_for_exit waits once ("if") instead of
 *                          until nthreads == 0 ("while")
 *  MUT_EXIT_IGNORES_QUEUE  a worker exits on shutdown with jobs queued
 *  MUT_CANCEL_OUTSIDE_LOCK shutdown(CANCEL) reads the queue under the
 *                          lock but unlinks the jobs after unlocking
 *  MUT_NO_SHUTDOWN_WAKE    shutdown and wait_for_exit do not broadcast
 *                          work_cv: a worker asleep below min_threads
 *                          never sees the shutdown
 */

#ifndef NJ
#define NJ 3                 /* jobs 1..NJ */
#endif
#define MAXT 2               /* max_threads: worker slots 0..MAXT-1 */
#define MINT 1               /* min_threads: waits untimed at or below */
#define SHUTTER MAXT         /* the shutdown thread's waiter slot */

#define Q_NEW 0
#define Q_QUEUED 1
#define Q_RUNNING 2
#define Q_REMOVED 3

#define F_WAIT 1
#define F_CANCEL 2

/* ---- struct evexec_pool, guarded by lk ---- */
byte lk;                     /* 0: free, else owner slot + 1 */
byte q[NJ];                  /* the run queue, q[0] the head */
byte qn;
byte qstate[NJ + 1];
byte nthreads, free_threads, waiting;
byte alive;                  /* worker slots in use (bit mask) */
bit shutdown, cancel_running;

/* ---- condition variables: waiting slots (bit masks) ---- */
byte work_cv, exit_cv, woken;

/* ---- ghosts ---- */
byte runs[NJ + 1];
byte ended[NJ + 1];
byte running;                /* taken and not yet pushed back */
bit refused[NJ + 1];
byte flags;

inline lock(me)
{
    atomic { lk == 0 -> lk = me + 1 }
}

inline unlock(me)
{
    assert(lk == me + 1);
    lk = 0
}

inline cond_wait(cv, me)
{
    atomic { assert(lk == me + 1); cv = cv | (1 << me); lk = 0 }
    atomic {
        (woken & (1 << me)) && lk == 0 ->
        woken = woken & ~(1 << me);
        lk = me + 1
    }
}

/* A wait that may time out at any moment while nobody woke it. */
inline cond_timedwait(cv, me, timedout)
{
    atomic { assert(lk == me + 1); cv = cv | (1 << me); lk = 0 }
    if
    :: atomic {
        (woken & (1 << me)) && lk == 0 ->
        woken = woken & ~(1 << me);
        lk = me + 1;
        timedout = 0
       }
    :: atomic {
        !(woken & (1 << me)) && lk == 0 ->
        cv = cv & ~(1 << me);
        lk = me + 1;
        timedout = 1
       }
    fi
}

inline cond_broadcast(cv)
{
    woken = woken | cv;
    cv = 0
}

inline cond_signal(cv)
{
    if
    :: cv & 1 -> cv = cv & ~1; woken = woken | 1
    :: cv & 2 -> cv = cv & ~2; woken = woken | 2
    :: cv & 4 -> cv = cv & ~4; woken = woken | 4
    :: cv == 0 -> skip
    fi
}

/* Unlink queue entry i (caller holds the lock). */
inline queue_unlink(i)
{
    d_step {
        do
        :: i + 1 < qn -> q[i] = q[i + 1]; i++
        :: else -> break
        od;
        qn--;
        q[qn] = 0;
        i = 0
    }
}

proctype worker(byte me)
{
    byte j, i;
    bit to;

    lock(me);
    do
    :: qn > 0 ->                         /* take() */
        d_step {
            j = q[0];
            assert(qstate[j] == Q_QUEUED);
            qstate[j] = Q_RUNNING;
            free_threads--;
            running++
        }
        queue_unlink(i);
        unlock(me);
        atomic {                         /* job->fn runs */
            assert(runs[j] == 0 && qstate[j] == Q_RUNNING);
            runs[j]++
        }
        atomic {                         /* evexec__core_push */
            ended[j]++;
            running--;
            j = 0
        }
        lock(me);
        free_threads++
    :: qn == 0 && shutdown -> break
#ifdef MUT_EXIT_IGNORES_QUEUE
    :: qn > 0 && shutdown -> break
#endif
    :: qn == 0 && !shutdown ->
        waiting++;
        if
        :: nthreads > MINT ->
            cond_timedwait(work_cv, me, to);
            waiting--;
            if
            :: to && qn == 0 && nthreads > MINT -> to = 0; break
            :: else -> to = 0
            fi
        :: else ->
            cond_wait(work_cv, me);
            waiting--
        fi
    od;
    skip;                                /* a break lands here */
    d_step {
        nthreads--;
        free_threads--;
        alive = alive & ~(1 << me);
        cond_broadcast(exit_cv);
        if
        :: shutdown -> cond_broadcast(work_cv)
        :: else
        fi
    }
    unlock(me)
}

/* The loop thread: submit NJ jobs, cancel job 1 once at some point. */
proctype submitter()
{
    byte j = 1, i, slot;
    bit cancel_done;

    do
    :: j <= NJ ->
        lock(SHUTTER + 1);
        if
        :: shutdown -> refused[j] = 1; ended[j]++   /* ESHUTDOWN */
        :: else ->
            d_step {
                q[qn] = j;
                qn++;
                qstate[j] = Q_QUEUED
            }
            if                           /* start a thread */
            :: qn > free_threads && nthreads < MAXT ->
                atomic {
                    if
                    :: !(alive & 1) -> slot = 0
                    :: else -> slot = 1
                    fi;
                    alive = alive | (1 << slot);
                    nthreads++;
                    free_threads++;
                    run worker(slot);
                    slot = 0
                }
            :: else
            fi;
            if
            :: waiting > 0 -> cond_signal(work_cv)
            :: else
            fi
        fi;
        unlock(SHUTTER + 1);
        j++
    :: j > 1 && !cancel_done ->          /* evexec__pool_unqueue(job 1) */
        cancel_done = 1;
        lock(SHUTTER + 1);
        if
        :: qstate[1] == Q_QUEUED ->
            d_step {
                i = 0;
                do
                :: q[i] == 1 -> break
                :: else -> i++
                od
            }
            queue_unlink(i);
            d_step {
                qstate[1] = Q_REMOVED;
                ended[1]++;              /* end_unsent(ECANCELED) */
                if
                :: shutdown && qn == 0 -> cond_broadcast(work_cv)
                :: else
                fi
            }
        :: else                          /* running or done: a flag */
        fi;
        unlock(SHUTTER + 1)
    :: j > NJ -> break
    od
}

proctype shutter()
{
    byte c[NJ], nc, i, j;

    lock(SHUTTER);
    shutdown = 1;
    if
    :: flags & F_CANCEL ->
        cancel_running = 1;
#ifndef MUT_CANCEL_OUTSIDE_LOCK
        d_step {                         /* unqueue_matching(pool, NULL) */
            do
            :: qn > 0 ->
                qn--;
                c[nc] = q[qn];
                q[qn] = 0;
                qstate[c[nc]] = Q_REMOVED;
                nc++
            :: else -> break
            od;
            if
            :: shutdown && qn == 0 -> cond_broadcast(work_cv)
            :: else
            fi
        }
#else
        d_step {                         /* only a snapshot under the lock */
            do
            :: nc < qn -> c[nc] = q[nc]; nc++
            :: else -> break
            od
        }
#endif
    :: else
    fi;
#ifndef MUT_NO_SHUTDOWN_WAKE
    cond_broadcast(work_cv);
#endif
    unlock(SHUTTER);
#ifdef MUT_CANCEL_OUTSIDE_LOCK
    d_step {                             /* too late: a worker may have it */
        i = 0;
        do
        :: i < nc ->
            j = 0;
            do
            :: j < qn && q[j] == c[i] -> break
            :: j < qn && q[j] != c[i] -> j++
            :: j >= qn -> break
            od;
            if
            :: j < qn ->
                do
                :: j + 1 < qn -> q[j] = q[j + 1]; j++
                :: else -> break
                od;
                qn--;
                q[qn] = 0
            :: else
            fi;
            qstate[c[i]] = Q_REMOVED;
            i++
        :: else -> break
        od;
        i = 0;
        j = 0
    }
#endif
    /* hand the cancelled jobs back (ECANCELED), no lock held */
    do
    :: nc > 0 ->
        nc--;
        atomic { ended[c[nc]]++; c[nc] = 0 }
    :: else -> break
    od;
    if
    :: flags & F_WAIT ->
        lock(SHUTTER);
#ifndef MUT_NO_SHUTDOWN_WAKE
        cond_broadcast(work_cv);         /* wait_for_exit */
#endif
#ifndef MUT_WAIT_IF
        do
        :: nthreads > 0 -> cond_wait(exit_cv, SHUTTER)
        :: else -> break
        od;
#else
        if
        :: nthreads > 0 -> cond_wait(exit_cv, SHUTTER)
        :: else
        fi;
#endif
        skip;                            /* a break lands here */
        d_step {
            assert(running == 0);
            i = 1;
            do
            :: i <= NJ -> assert(qstate[i] != Q_QUEUED); i++
            :: else -> break
            od;
            i = 0
        }
        unlock(SHUTTER)
    :: else
    fi;
    /* evexec_pool_free */
    lock(SHUTTER);
    shutdown = 1;
#ifndef MUT_NO_SHUTDOWN_WAKE
    cond_broadcast(work_cv);
#endif
    do
    :: nthreads > 0 -> cond_wait(exit_cv, SHUTTER)
    :: else -> break
    od;
    assert(running == 0 && nthreads == 0);
    unlock(SHUTTER)
}

init
{
    byte i;
    atomic {
        if
        :: flags = 0
        :: flags = F_WAIT
        :: flags = F_CANCEL
        :: flags = F_WAIT | F_CANCEL
        fi;
        run submitter();
        run shutter()
    }
    _nr_pr == 1;
    i = 1;
    do
    :: i <= NJ ->
        assert(runs[i] <= 1);
        assert(ended[i] == 1);
        assert(qstate[i] != Q_REMOVED || runs[i] == 0);
        assert(refused[i] == 0 || runs[i] == 0);
        i++
    :: else -> break
    od
}
