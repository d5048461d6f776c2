/*
 * hello.c -- the smallest complete evexec program: run a blocking function
 * on the default pool and print its result from the libevent loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <event2/event.h>
#include <evexec.h>

/* Runs on a worker thread: may block as long as it likes. */
static int slow_square(struct evexec_job *job, void *arg)
{
    int *out = malloc(sizeof *out);
    if (!out)
        return 12; /* ENOMEM: the future ends with this code */
    nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000 * 1000 }, NULL);
    *out = *(int *)arg * *(int *)arg;
    evexec_job_set_result(job, out, free);  /* the future owns it now */
    return 0;
}

/* Runs on the loop thread once the job is done. */
static void print_result(struct evexec_future *f, void *arg)
{
    struct event_base *base = arg;
    if (evexec_future_error(f) == 0)
        printf("7 squared is %d\n", *(int *)evexec_future_result(f));
    else
        printf("failed: %s\n", evexec_strerror(evexec_future_error(f)));
    evexec_future_unref(f);     /* releases the result too */
    /* An evexec keeps its loop running, so that calls from other threads
     * (evexec_call_soon_threadsafe) are always seen: say when to stop. */
    event_base_loopexit(base, NULL);
}

int main(void)
{
    static int seven = 7;
    struct event_base *base = event_base_new();
    struct evexec *ex = base ? evexec_new(base, NULL) : NULL;
    if (!ex)
        return 1;

    struct evexec_future *f = evexec_run(ex, slow_square, &seven);
    if (!f || evexec_future_on_done(f, print_result, base) != 0)
        return 1;

    event_base_dispatch(base);  /* returns after print_result's loopexit */

    evexec_free(ex);
    event_base_free(base);
    return 0;
}
