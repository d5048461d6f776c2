/*
 * handoff.pml -- a model of evexec's completion hand-off (lib/bridge.c),
 * checked with spin (tests/model/check.sh runs it).
 *
 * What is modelled, step for step with the C code:
 *
 *  worker(me)     takes its job off the run queue (under the pool lock,
 *                 unless teardown removed it first), runs it, then
 *                 evexec__core_push(): refs++, load head, CAS loop that
 *                 links the node (next = old) or, on CLOSED, disposes of
 *                 the job itself (dispose_orphan: orphan exchange, then
 *                 core_unref(2)); after a successful push it loads
 *                 `spinning` and writes the wake-up fd only when the list
 *                 was empty and the loop is not spinning; core_unref(1).
 *  loop           the libevent loop: while jobs are in flight it blocks
 *                 until the fd is readable (on_wake: drain the fd, THEN
 *                 exchange head with NULL, reverse, deliver), or runs a
 *                 pass without a wake-up (on_ready); after a pass it may
 *                 spin (spin_for_completions: spinning = 1, watch head
 *                 until it is non-empty or the time is up, spinning = 0,
 *                 look at head once more, deliver); evexec_free() may be
 *                 called between passes or from a done callback in the
 *                 middle of a drain.
 *  teardown       td_end_unsent (queued jobs never run), bias added to
 *                 refs, the rest of a drain on the stack and the list
 *                 swapped for CLOSED are delivered, running = inflight,
 *                 core_unref(BIAS - running) (td_release), free_memory
 *                 (orphan exchange for each job still out, plain free
 *                 otherwise, then the evexec's own core_unref(1) just
 *                 before struct evexec goes).
 *
 * Memory is sequentially consistent here: the C code's seq_cst CAS and
 * `spinning` accesses are what make that assumption hold for the
 * lost-wake-up argument; the acquire/release pairs carry the rest.
 * Calls from evexec_call_soon_threadsafe are pushes like the workers'
 * and are not modelled separately; neither is the pool's cancelling
 * shutdown, whose ECANCELED pushes are a worker's push without a run.
 *
 * Properties (assertions, plus spin's check for invalid end states):
 *  - no lost wake-up: whenever the loop blocks waiting for readability,
 *    the list is empty, or the fd is readable, or a pusher that found
 *    the list empty has not yet decided whether to write (`owe`); and
 *    the loop never blocks for ever (invalid end state);
 *  - no job delivered twice; none delivered after teardown finished;
 *    none delivered that a worker disposed of (pushed after CLOSED);
 *    delivery in completion order;
 *  - each job's memory freed exactly once (orphan exchange), never
 *    touched after it was freed;
 *  - the core freed exactly once, never touched after it was freed,
 *    refs never negative;
 *  - at the end: every job ended exactly once (delivered, disposed of
 *    by its worker, or removed from the queue unrun).
 *
 * Mutants (-D at spin -a time; check.sh expects each to fail):
 *  MUT_SIGNAL_WHEN_SPINNING  the pusher writes only when the loop spins
 *  MUT_EXCHANGE_BEFORE_DRAIN the loop exchanges head, then drains the fd
 *  MUT_NO_RECHECK            spin phase ends on a time-out without its
 *                            last look at head after clearing `spinning`
 *  MUT_NO_BIAS               teardown adds no bias: it counts the running
 *                            jobs after the swap, then adds them
 *  MUT_ORPHAN_LOAD_STORE     the orphan exchange split into a load and a
 *                            store
 *
 * Not a mutant, not run by check.sh: -DFOREIGN_CALL adds a thread that
 * calls evexec_call_soon_threadsafe while evexec_free runs (after the
 * swap); spin shows it can still take its core reference after the
 * evexec's last one went with its memory (see proctype caller).
 */

#ifndef NW
#define NW 3                 /* workers, one job each: ids 1..NW */
#endif
#define NIL 0
#define CLOSED 255
#define BIAS 64              /* stands for LONG_MAX / 4: > every count */
#define SPIN_ROUNDS 2        /* the C code allows 64 */

/* ---- the core (struct evexec__core) ---- */
byte head = NIL;             /* id of the newest node, NIL or CLOSED */
byte next[NW + 1];           /* node links (in the jobs' memory) */
bit readable;                /* eventfd counter > 0 / bytes in the pipe */
bit spinning;
short refs = 1;              /* the evexec's own reference */
byte core_freed;

/* ---- jobs ---- */
bit taken[NW + 1];           /* a worker took it (qstate RUNNING) */
bit unqueued[NW + 1];        /* teardown took it off the queue */
bit outstanding[NW + 1];     /* the loop's future still waits for it */
byte delivered[NW + 1];
bit disposed[NW + 1];        /* its worker found CLOSED */
bit orphan[NW + 1];
byte freed[NW + 1];
byte seq[NW + 1];            /* order of successful pushes */
byte nseq;
byte lastdel;                /* seq of the last delivered job */

/* ---- the loop's side (struct evexec) ---- */
byte inflight;
bit spin_us;                 /* the pool's spin_us is set (chosen at start) */
bit closing;                 /* evexec_free started */
bit torn;                    /* evexec_free delivered its last */
byte dq[NW];                 /* ex->draining: detached, not yet delivered */
byte dqh, dqn;

/* ---- ghosts ---- */
bit swapped;                 /* teardown swapped CLOSED in */
bit ex_freed;                /* evexec_free freed struct evexec */
byte owe;                    /* pushers that found the list empty and have
                                not yet decided whether to write the fd */

inline core_unref(amount)
{
    atomic {
        assert(core_freed == 0);
        refs = refs - (amount);
        assert(refs >= 0);
        if
        :: refs == 0 -> core_freed++
        :: else
        fi
    }
}

/* The orphan exchange: whoever reads 1 frees the job's memory. */
inline orphan_xchg(j)
{
#ifndef MUT_ORPHAN_LOAD_STORE
    atomic {
        if
        :: orphan[j] -> assert(freed[j] == 0); freed[j]++
        :: else -> orphan[j] = 1
        fi
    }
#else
    if
    :: orphan[j] -> assert(freed[j] == 0); freed[j]++
    :: else -> orphan[j] = 1
    fi
#endif
}

proctype worker(byte me)
{
    byte old;
    bit pushed, sp;

    /* take() under pool->lock, unless td_end_unsent removed it */
    atomic {
        if
        :: unqueued[me] -> goto done
        :: else -> taken[me] = 1
        fi
    }
    /* job->fn(job, arg) runs here */

    /* evexec__core_push */
    atomic { assert(core_freed == 0); refs++ }
    atomic { assert(core_freed == 0); old = head }
    do
    :: old == CLOSED -> break
    :: else ->
        atomic {                         /* next = old (not yet shared); CAS */
            assert(freed[me] == 0);
            next[me] = old;
            assert(core_freed == 0);
            if
            :: head == old ->
                head = me;
                nseq++;
                seq[me] = nseq;
                pushed = 1;
                if
                :: old == NIL -> owe++
                :: else
                fi
            :: else -> old = head
            fi
        }
        if
        :: pushed -> break
        :: else
        fi
    od;

    if
    :: pushed ->
        if
        :: old == NIL ->
            atomic {                     /* load spinning (seq_cst) */
                assert(core_freed == 0);
                sp = spinning;
#ifndef MUT_SIGNAL_WHEN_SPINNING
                if :: sp -> owe-- :: else fi
#else
                if :: !sp -> owe-- :: else fi
#endif
            }
#ifndef MUT_SIGNAL_WHEN_SPINNING
            if
            :: !sp ->
#else
            if
            :: sp ->
#endif
                atomic {                 /* evexec__wakefd_signal */
                    assert(core_freed == 0);
                    readable = 1;
                    owe--
                }
            :: else
            fi
        :: else
        fi;
        d_step { old = 0; pushed = 0; sp = 0 }
        core_unref(1)
    :: else ->
        /* dispose_orphan: the job's result is released on the worker */
        assert(freed[me] == 0);
        disposed[me] = 1;
        orphan_xchg(me);
        core_unref(2)                    /* the push's and teardown's */
    fi;
done:
    skip
}

/* Deliver job j (deliver_job): the future ends, in completion order. */
inline deliver(j)
{
    assert(j != NIL && j != CLOSED);
    assert(freed[j] == 0);
    assert(delivered[j] == 0);
    assert(!disposed[j]);
    assert(!torn);
    assert(seq[j] > lastdel);
    lastdel = seq[j];
    delivered[j]++;
    outstanding[j] = 0;
    inflight--;
    next[j] = 0;                         /* forget what no longer matters */
    seq[j] = 0
}

/* Detach the list (exchange with `leave`), reverse it and append it to the
 * draining queue. */
inline detach(leave)
{
    atomic {
        assert(core_freed == 0);
        n = head;
        head = leave;
        if
        :: leave == CLOSED -> swapped = 1
        :: else
        fi
    }
    /* The detached nodes are the loop's alone now: one step. */
    d_step {
        cnt = 0;
        do
        :: n != NIL && n != CLOSED ->
            assert(freed[n] == 0);
            tmp[cnt] = n;
            cnt++;
            n = next[n]
        :: else -> break
        od;
        n = 0;
        do
        :: cnt > 0 ->
            cnt--;
            dq[(dqh + dqn) % NW] = tmp[cnt];
            tmp[cnt] = 0;
            dqn++
        :: else -> break
        od
    }
}

inline pop_one()
{
    d_step {
        j = dq[dqh];
        dq[dqh] = 0;
        dqh = (dqh + 1) % NW;
        dqn--;
        deliver(j);
        j = 0
    }
}

/* evexec_free */
inline teardown()
{
    closing = 1;
    /* 1. td_end_unsent: queued jobs never run (pool->lock) */
    atomic {
        k = 1;
        do
        :: k <= NW ->
            if
            :: !taken[k] && !unqueued[k] ->
                unqueued[k] = 1;
                outstanding[k] = 0;
                inflight--
            :: else
            fi;
            k++
        :: else -> break
        od;
        k = 0
    }
    /* 2. td_cancel_running: only a flag the jobs read; nothing here */
    /* 3. td_close_completions */
#ifndef MUT_NO_BIAS
    atomic { assert(core_freed == 0); refs = refs + BIAS }
#endif
    detach(CLOSED);
    do
    :: dqn > 0 -> pop_one()
    :: else -> break
    od;
    running = inflight;
    torn = 1;
    /* 4. td_end_pending: futures only.  5. td_release: settle the bias;
     * the evexec's own reference goes with its memory (step 6). */
#ifndef MUT_NO_BIAS
    core_unref(BIAS - running);
#else
    atomic { assert(core_freed == 0); refs = refs + running }
#endif
    /* 6. free_memory (one step: each worker's own exchange still falls
     * before or after it) */
    atomic {
        k = 1;
        do
        :: k <= NW ->
            if
            :: outstanding[k] -> orphan_xchg(k)
            :: else -> assert(freed[k] == 0); freed[k]++
            fi;
            k++
        :: else -> break
        od;
        k = 0
    }
    core_unref(1);                       /* the evexec's own reference */
    ex_freed = 1                         /* free(ex) */
}

/* deliver_all(ex, NULL) from a callback pass; a done callback may call
 * evexec_free, which delivers the rest of the drain itself. */
inline deliver_all()
{
    detach(NIL);
    do
    :: dqn > 0 -> pop_one()
    :: dqn > 0 -> teardown(); goto finished   /* evexec_free in a callback */
    :: else -> break
    od
}

/* spin_for_completions (pool spin_us > 0) */
inline spin_phase()
{
    rounds = 0;
    do
    :: spin_us && rounds < SPIN_ROUNDS && inflight > 0 && !closing ->
        rounds++;
        spinning = 1;
        if
        :: head != NIL -> got = 1        /* evexec__spin saw a push */
        :: true -> got = 0               /* time is up */
        fi;
        spinning = 0;
#ifndef MUT_NO_RECHECK
        if
        :: !got && head == NIL -> break
        :: else
        fi;
#else
        if
        :: !got -> break
        :: else
        fi;
#endif
        deliver_all()
    :: else -> break
    od;
    skip;                                /* a break lands here */
    d_step { rounds = 0; got = 0 }
}

#ifdef FOREIGN_CALL
/* evexec_call_soon_threadsafe from another thread while evexec_free runs,
 * after the swap (the header: calls made from then on fail with
 * ESHUTDOWN): it reads ex->core while ex still exists, then pushes, which
 * takes a reference on the core and finds CLOSED.  Not part of check.sh:
 * spin shows the core can be freed (free_memory's core_unref(1), with no
 * job running) between the caller's read of ex->core and its refs++. */
proctype caller()
{
    atomic { swapped && !ex_freed -> skip }   /* reads ex->core */
    atomic { assert(core_freed == 0); refs++ }
    atomic { assert(core_freed == 0); head == CLOSED }
    core_unref(1)
}
#endif

proctype loop()
{
    byte n, j, k, cnt, running, rounds;
    byte tmp[NW];
    bit got;

    do
    :: inflight > 0 ->
        /* event_base_dispatch waits for the read event */
#ifndef NO_WAIT_ASSERT
        assert(head == NIL || readable || owe > 0);
#endif
        readable == 1;                   /* blocks: a lost wake-up is an
                                            invalid end state */
        /* on_wake -> callback_pass(drain = 1) */
#ifndef MUT_EXCHANGE_BEFORE_DRAIN
        readable = 0;                    /* evexec__wakefd_drain */
        deliver_all();
#else
        detach(NIL);
        readable = 0;
        do
        :: dqn > 0 -> pop_one()
        :: else -> break
        od;
#endif
        spin_phase()
    :: spin_us && inflight > 0 ->
        /* on_ready: a pass without the wake-up, then the spin phase */
        spin_phase()
    :: true -> break                     /* evexec_free from elsewhere */
    od;
    teardown();
finished:
    skip
}

init
{
    byte i;
    atomic {
        if
        :: spin_us = 0
        :: spin_us = 1
        fi;
        i = 1;
        do
        :: i <= NW ->
            outstanding[i] = 1;
            inflight++;
            i++
        :: else -> break
        od;
        run loop();
#ifdef FOREIGN_CALL
        run caller();
#endif
        i = 1;
        do
        :: i <= NW -> run worker(i); i++
        :: else -> break
        od
    }
    _nr_pr == 1;                         /* everyone else has finished */
    assert(core_freed == 1 && refs == 0);
    i = 1;
    do
    :: i <= NW ->
        assert(freed[i] == 1);
        assert(delivered[i] + disposed[i] + unqueued[i] == 1);
        assert(taken[i] != unqueued[i]);
        i++
    :: else -> break
    od
}
