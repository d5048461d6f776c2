/*
 * alloc.c -- the one place the library allocates memory and starts
 * threads, so that tests can make any of them fail.
 *
 * Every malloc, calloc and realloc of lib/ goes through evexec__malloc()
 * and friends, and the pool starts its workers through
 * evexec__thread_create().  Each consults a hook that is NULL in normal
 * use (one relaxed load); a test installs a hook that says which calls
 * fail (the n-th allocation, every thread after the k-th...), and sees
 * that every failure becomes an error code, never a crash, a hang or a
 * leak.  Memory from here is released with plain free(): results handed
 * to users keep free() as their destructor.
 *
 * Threads: any; the hooks are atomic pointers, set by tests while no
 * other thread of theirs allocates through the library.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#if defined(MAP_ANONYMOUS)
#define EVEXEC__MAP_ANON MAP_ANONYMOUS
#elif defined(MAP_ANON)
#define EVEXEC__MAP_ANON MAP_ANON
#endif

#include "evexec-internal.h"

_Atomic(evexec__fail_hook) evexec__alloc_hook;
_Atomic(evexec__fail_hook) evexec__thread_hook;

static int fails(_Atomic(evexec__fail_hook) *hook, size_t n)
{
    evexec__fail_hook h = atomic_load_explicit(hook, memory_order_relaxed);
    return h != NULL && h(n) != 0;
}

void *evexec__malloc(size_t n)
{
    if (fails(&evexec__alloc_hook, n)) {
        errno = ENOMEM;
        return NULL;
    }
    return malloc(n);
}

void *evexec__calloc(size_t count, size_t size)
{
    if (fails(&evexec__alloc_hook, size)) {
        errno = ENOMEM;
        return NULL;
    }
    return calloc(count, size);
}

void *evexec__realloc(void *p, size_t n)
{
    if (fails(&evexec__alloc_hook, n)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, n);
}

void *evexec__map_aligned(size_t n)
{
    if (fails(&evexec__alloc_hook, n)) {
        errno = ENOMEM;
        return NULL;
    }
#ifndef EVEXEC__MAP_ANON
    /* No anonymous mmap in this system's headers (strict POSIX 2008):
     * aligned heap memory, which malloc's neighbours may touch. */
    void *m = NULL;
    if (posix_memalign(&m, n, n) != 0) {
        errno = ENOMEM;
        return NULL;
    }
    return m;
#else
    /* Twice the room, then give back what lies outside an aligned n. */
    char *p = mmap(NULL, 2 * n, PROT_READ | PROT_WRITE, MAP_PRIVATE | EVEXEC__MAP_ANON,
                   -1, 0);
    if (p == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    char *q = (char *)(((uintptr_t)p + n - 1) & ~(uintptr_t)(n - 1));
    if (q > p)
        munmap(p, (size_t)(q - p));
    if (q + n < p + 2 * n)
        munmap(q + n, (size_t)(p + 2 * n - (q + n)));
    return q;
#endif
}

void evexec__unmap(void *p, size_t n)
{
#ifdef EVEXEC__MAP_ANON
    munmap(p, n);
#else
    (void)n;
    free(p);
#endif
}

int evexec__thread_create(pthread_t *tid, void *(*start)(void *), void *arg,
                          size_t stack_size)
{
    if (fails(&evexec__thread_hook, 0))
        return EAGAIN;
    if (stack_size == 0)
        return pthread_create(tid, NULL, start, arg);
    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc != 0)
        return rc;
    rc = pthread_attr_setstacksize(&attr, stack_size);
    if (rc == 0)
        rc = pthread_create(tid, &attr, start, arg);
    pthread_attr_destroy(&attr);
    return rc;
}
