/*
 * dns.c -- getaddrinfo and getnameinfo on the pool's slow lane.
 *
 * Design.  Neither call has a non-blocking form, and either can hang for
 * as long as the resolver's timeouts: they run on the slow lane, which
 * never holds more than half of the pool's threads.  A call copies its
 * arguments into one request block and runs it with the job shape shared
 * with fs.c (evexec__io_submit): the block is the job's and is freed once,
 * whether the job runs or not.  A result is handed to the job with its
 * destructor before the function returns, so a lookup that finishes after
 * its future was cancelled, or after its evexec was freed, is released by
 * the library.
 *
 * Coalescing.  evexec_getaddrinfo() never returns the job's future: each
 * caller gets a future of its own (a "waiter") attached to a shared lookup
 * (struct dns_lookup), which owns the job.  A call whose key (node,
 * service, whether hints were given, and the four hint fields) matches a
 * lookup still in flight on the same evexec joins it instead of starting
 * one.  When the job ends, every waiter ends with its outcome: the first
 * with the list getaddrinfo made, each other one with a copy built node by
 * node as glibc builds its own (struct addrinfo and the socket address in
 * one malloc block, the canonical name in another), so that every caller
 * releases its list with freeaddrinfo().  Where the C library is not
 * glibc that layout is not known, so nothing is coalesced there (every
 * call has its own lookup) and the cache is refused.  A waiter that is
 * cancelled or dropped leaves its lookup; the lookup is cancelled once it
 * has no waiter left, and taken out of the table first, so that a later
 * call starts afresh rather than join a lookup on its way out.
 *
 * Cache.  Off by default; evexec_dns_set_cache() turns it on.  A finished
 * lookup stores its list (then every waiter gets a copy) or its
 * EAI_NONAME/EAI_NODATA answer, with an expiry on the monotonic clock;
 * calls look there before they look for a lookup in flight.  Entries leave
 * when found expired, when the cache is full (the oldest stored goes
 * first), when the options are set again, and at evexec_free().
 *
 * Errors keep getaddrinfo's EAI_* values, which glibc and musl make
 * negative so they never collide with errno values (elsewhere they are
 * positive and may: see evexec_strerror); EAI_SYSTEM is replaced by the
 * errno it stands for.
 *
 * Threads: the public calls, the tables and the cache on the loop thread;
 * dns_do_* on a worker, touching only their request and the job.
 */
#define _GNU_SOURCE
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netdb.h>
#include <time.h>

#include "evexec-internal.h"

static int dns_error(int rc)
{
    if (rc == EAI_SYSTEM)
        return errno ? errno : EIO;
    return rc;
}

/* ---- test seams (see evexec-internal.h) ----------------------------------- */

int (*_Atomic evexec__dns_getaddrinfo_hook)(const char *node, const char *service,
                                            const struct addrinfo *hints,
                                            struct addrinfo **res) = getaddrinfo;
uint64_t (*evexec__dns_clock_hook)(void);

/* Copies that freeaddrinfo() releases: see dns_copy(). */
#if defined(__GLIBC__)
#define DNS_CAN_COPY 1
#else
#define DNS_CAN_COPY 0
#endif

#define DNS_CACHE_MAX_DEFAULT 1024

/* ---- getaddrinfo: the job ---------------------------------------------------- */

struct dns_ai_req {
    evexec__io_fn run;          /* first: see evexec__io_submit() */
    struct addrinfo hints;      /* the four fields POSIX lets callers set */
    int has_hints;
    const char *node, *service; /* copies, in `names` */
    char names[];
};

static void dns_freeaddrinfo(void *ai)
{
    freeaddrinfo(ai);
}

static int dns_do_getaddrinfo(struct evexec_job *job, void *arg)
{
    struct dns_ai_req *r = arg;
    struct addrinfo *res = NULL;
    errno = 0;
    int rc = atomic_load_explicit(&evexec__dns_getaddrinfo_hook, memory_order_relaxed)(
        r->node, r->service, r->has_hints ? &r->hints : NULL, &res);
    if (rc != 0)
        return dns_error(rc);
    evexec_job_set_result(job, res, dns_freeaddrinfo);
    return 0;
}

/* ---- keys and a small hash table --------------------------------------------- */

/* What makes two calls the same lookup.  NULL hints differ from zeroed
 * hints: glibc reads NULL as AI_V4MAPPED | AI_ADDRCONFIG. */
struct dns_key {
    const char *node, *service;     /* in the owner's names[] */
    int has_hints, flags, family, socktype, protocol;
    uint32_t hash;
};

static uint32_t fnv(uint32_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 16777619u;
    return h;
}

static uint32_t key_hash(const struct dns_key *k)
{
    int ints[5] = { k->has_hints, k->flags, k->family, k->socktype, k->protocol };
    uint32_t h = fnv(2166136261u, ints, sizeof ints);
    /* The strings with their NULs, and a mark for NULL. */
    h = k->node ? fnv(h, k->node, strlen(k->node) + 1) : fnv(h, "\1", 1);
    return k->service ? fnv(h, k->service, strlen(k->service) + 1) : fnv(h, "\1", 1);
}

/* A key of the call's arguments (borrowed strings). */
static void key_of(struct dns_key *k, const char *node, const char *service,
                   const struct addrinfo *hints)
{
    memset(k, 0, sizeof *k);
    k->node = node;
    k->service = service;
    if (hints) {
        k->has_hints = 1;
        k->flags = hints->ai_flags;
        k->family = hints->ai_family;
        k->socktype = hints->ai_socktype;
        k->protocol = hints->ai_protocol;
    }
    k->hash = key_hash(k);
}

/* Room for the key's strings after a struct. */
static size_t key_names_size(const struct dns_key *k)
{
    return (k->node ? strlen(k->node) + 1 : 0) + (k->service ? strlen(k->service) + 1 : 0);
}

/* Copy k into *dst, its strings into names (key_names_size bytes). */
static void key_copy(struct dns_key *dst, const struct dns_key *k, char *names)
{
    *dst = *k;
    size_t ln = k->node ? strlen(k->node) + 1 : 0;
    dst->node = k->node ? memcpy(names, k->node, ln) : NULL;
    dst->service = k->service ? strcpy(names + ln, k->service) : NULL;
}

static int str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static int key_eq(const struct dns_key *a, const struct dns_key *b)
{
    return a->hash == b->hash && a->has_hints == b->has_hints && a->flags == b->flags &&
           a->family == b->family && a->socktype == b->socktype &&
           a->protocol == b->protocol && str_eq(a->node, b->node) &&
           str_eq(a->service, b->service);
}

struct dns_item {
    struct dns_item *hnext;
    struct dns_key key;
};

/* Chained buckets, a power of two of them, grown when the items outnumber
 * them.  No allocation failure is an error here: an item that finds no
 * room is just not in the table (not coalesced, not cached). */
struct dns_table {
    struct dns_item **b;
    size_t nb, n;
};

static struct dns_item *table_find(const struct dns_table *t, const struct dns_key *k)
{
    if (!t->nb)
        return NULL;
    for (struct dns_item *it = t->b[k->hash & (t->nb - 1)]; it; it = it->hnext)
        if (key_eq(&it->key, k))
            return it;
    return NULL;
}

static void table_grow(struct dns_table *t)
{
    size_t nb = t->nb ? t->nb * 2 : 16;
    struct dns_item **b = evexec__calloc(nb, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < t->nb; i++) {
        struct dns_item *it, *next;
        for (it = t->b[i]; it; it = next) {
            next = it->hnext;
            it->hnext = b[it->key.hash & (nb - 1)];
            b[it->key.hash & (nb - 1)] = it;
        }
    }
    free(t->b);
    t->b = b;
    t->nb = nb;
}

/* Returns 1 if the item went in. */
static int table_add(struct dns_table *t, struct dns_item *it)
{
    if (t->n >= t->nb)
        table_grow(t);
    if (!t->nb)
        return 0;
    struct dns_item **slot = &t->b[it->key.hash & (t->nb - 1)];
    it->hnext = *slot;
    *slot = it;
    t->n++;
    return 1;
}

static void table_remove(struct dns_table *t, struct dns_item *it)
{
    struct dns_item **p = &t->b[it->key.hash & (t->nb - 1)];
    while (*p != it)
        p = &(*p)->hnext;
    *p = it->hnext;
    it->hnext = NULL;
    t->n--;
}

/* ---- the evexec's state -------------------------------------------------------- */

struct dns_entry;

struct evexec__dns {
    struct dns_table inflight;          /* struct dns_lookup, joinable */
    struct dns_table cache;             /* struct dns_entry */
    struct dns_entry *oldest, *newest;  /* the cache in the order stored */
    unsigned positive_ttl_ms, negative_ttl_ms;
    size_t max_entries;
};

/* ex's state, made on first use; NULL if it cannot be (then nothing is
 * coalesced or cached, and lookups still work). */
static struct evexec__dns *dns_state(struct evexec *ex)
{
    if (!ex->dns)
        ex->dns = evexec__calloc(1, sizeof *ex->dns);
    return ex->dns;
}

static uint64_t dns_now_ms(void)
{
    if (evexec__dns_clock_hook)
        return evexec__dns_clock_hook();
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- copies that freeaddrinfo() releases ------------------------------------- */

#if DNS_CAN_COPY
/*
 * glibc's freeaddrinfo() frees, for each node, ai_canonname and the node
 * itself, and nothing else: its getaddrinfo() allocates a node and its
 * socket address in one block (ai_addr pointing just past the struct) and
 * the canonical name on its own.  A copy made the same way, with malloc,
 * is released by freeaddrinfo() exactly as the original is.
 */
static struct addrinfo *dns_copy(const struct addrinfo *src)
{
    struct addrinfo *head = NULL, **tail = &head;
    for (; src; src = src->ai_next) {
        size_t alen = src->ai_addr ? src->ai_addrlen : 0;
        struct addrinfo *n = evexec__malloc(sizeof *n + alen);
        if (!n)
            goto fail;
        *n = *src;
        n->ai_next = NULL;
        n->ai_canonname = NULL;
        n->ai_addr = alen ? memcpy(n + 1, src->ai_addr, alen) : NULL;
        *tail = n;
        tail = &n->ai_next;
        if (src->ai_canonname) {
            size_t len = strlen(src->ai_canonname) + 1;
            if (!(n->ai_canonname = evexec__malloc(len)))
                goto fail;
            memcpy(n->ai_canonname, src->ai_canonname, len);
        }
    }
    return head;
fail:
    if (head)
        freeaddrinfo(head);
    return NULL;
}
#endif

/* ---- the cache ------------------------------------------------------------------- */

struct dns_entry {
    struct dns_item item;               /* in dns->cache */
    struct dns_entry *older, *newer;
    uint64_t expires;                   /* dns_now_ms() */
    int error;                          /* 0, EAI_NONAME or EAI_NODATA */
    struct addrinfo *list;              /* error 0: ours, copied out */
    char names[];
};

static int cache_on(const struct evexec__dns *d)
{
    return d && (d->positive_ttl_ms || d->negative_ttl_ms);
}

static void cache_drop(struct evexec__dns *d, struct dns_entry *e)
{
    table_remove(&d->cache, &e->item);
    EVEXEC__DLIST_UNLINK(d->oldest, d->newest, e, older, newer);
    if (e->list)
        freeaddrinfo(e->list);
    free(e);
}

static void cache_clear(struct evexec__dns *d)
{
    while (d->oldest)
        cache_drop(d, d->oldest);
}

/* The live entry for k, or NULL (an expired one is dropped). */
static struct dns_entry *cache_find(struct evexec__dns *d, const struct dns_key *k)
{
    struct dns_item *it = table_find(&d->cache, k);
    if (!it)
        return NULL;
    struct dns_entry *e = EVEXEC__CONTAINER_OF(it, struct dns_entry, item);
    if (dns_now_ms() < e->expires)
        return e;
    cache_drop(d, e);
    return NULL;
}

/* An answer worth keeping: the name has no address. */
static int cacheable_error(int error)
{
#ifdef EAI_NODATA
    if (error == EAI_NODATA)
        return 1;
#endif
    return error == EAI_NONAME;
}

/* Store the outcome of a lookup of k.  A list is taken (*list becomes
 * NULL) when stored.  Nothing is stored when memory is short. */
static void cache_store(struct evexec__dns *d, const struct dns_key *k, int error,
                        struct addrinfo **list)
{
    unsigned ttl = error == 0 ? d->positive_ttl_ms
                   : cacheable_error(error) ? d->negative_ttl_ms : 0;
    if (ttl == 0 || (error == 0 && !*list))
        return;
    struct dns_item *old = table_find(&d->cache, k);
    if (old)
        cache_drop(d, EVEXEC__CONTAINER_OF(old, struct dns_entry, item));
    while (d->cache.n >= d->max_entries && d->oldest)
        cache_drop(d, d->oldest);
    struct dns_entry *e = evexec__calloc(1, sizeof *e + key_names_size(k));
    if (!e)
        return;
    key_copy(&e->item.key, k, e->names);
    if (!table_add(&d->cache, &e->item)) {
        free(e);
        return;
    }
    e->expires = dns_now_ms() + ttl;
    e->error = error;
    if (error == 0) {
        e->list = *list;
        *list = NULL;
    }
    EVEXEC__DLIST_APPEND(d->oldest, d->newest, e, older, newer);
}

/* ---- lookups and their waiters ------------------------------------------------- */

struct dns_waiter;

struct dns_lookup {
    struct dns_item item;               /* in dns->inflight while joinable */
    int joinable;
    struct evexec *ex;
    struct evexec_future *job;          /* our reference */
    struct dns_waiter *head, *tail;     /* in call order */
    char names[];
};

struct dns_waiter {
    struct evexec_future fut;
    struct dns_lookup *lk;              /* NULL once it left or ended */
    struct dns_waiter *prev, *next;
};

static void lookup_unjoinable(struct dns_lookup *lk)
{
    if (lk->joinable) {
        table_remove(&lk->ex->dns->inflight, &lk->item);
        lk->joinable = 0;
    }
}

static void waiter_attach(struct dns_lookup *lk, struct dns_waiter *w)
{
    w->lk = lk;
    EVEXEC__DLIST_APPEND(lk->head, lk->tail, w, prev, next);
}

static void waiter_detach(struct dns_waiter *w)
{
    struct dns_lookup *lk = w->lk;
    EVEXEC__DLIST_UNLINK(lk->head, lk->tail, w, prev, next);
    w->lk = NULL;
}

/* A waiter goes (cancelled, or dropped while pending).  The last one to
 * go cancels the lookup; its job's callback frees it.  While the evexec
 * is being freed the teardown ends the job itself. */
static void waiter_leave(struct dns_waiter *w)
{
    struct dns_lookup *lk = w->lk;
    if (!lk)
        return;
    waiter_detach(w);
    if (lk->head)
        return;
    lookup_unjoinable(lk);
    if (!evexec__closing(lk->ex))
        evexec_future_cancel(lk->job);
}

static int waiter_cancel(struct evexec_future *f)
{
    waiter_leave((struct dns_waiter *)f);
    f->cancel_taken = 1;
    return evexec__future_finish(f, ECANCELED, NULL, NULL);
}

static void waiter_release(struct evexec_future *f)
{
    waiter_leave((struct dns_waiter *)f);
}

static const struct evexec__future_ops waiter_ops = {
    .cancel = waiter_cancel,
    .release = waiter_release,
    .name = "getaddrinfo",
};

/* Hand an outcome to a waiter: the list itself (own != 0), or a copy. */
static void waiter_end(struct dns_waiter *w, int error, struct addrinfo *list, int own)
{
    struct addrinfo *res = NULL;
    if (error == 0) {
#if DNS_CAN_COPY
        res = own ? list : dns_copy(list);
#else
        res = list;     /* never shared where no copy can be made */
#endif
        if (!res)
            error = EAI_MEMORY;
    }
    evexec__future_finish(&w->fut, error, res, dns_freeaddrinfo);
}

/* The job's done callback: every waiter gets the outcome. */
static void lookup_done(struct evexec_future *job, void *arg)
{
    struct dns_lookup *lk = arg;
    struct evexec *ex = lk->ex;
    int error = evexec_future_error(job);
    struct addrinfo *list = error == 0 ? evexec_future_take_result(job) : NULL;
    const struct addrinfo *src = list;

    lookup_unjoinable(lk);
    if (!evexec__closing(ex) && cache_on(ex->dns))
        cache_store(ex->dns, &lk->item.key, error, &list);
    struct dns_waiter *w;
    while ((w = lk->head) != NULL) {
        waiter_detach(w);
        waiter_end(w, error, (struct addrinfo *)src, list != NULL);
        list = NULL;    /* the first took it, if it was ours */
    }
    if (list)
        freeaddrinfo(list);
    evexec_future_unref(job);
    free(lk);
}

/* Start a lookup of k: NULL + errno (as evexec_run) if it cannot be. */
static struct dns_lookup *lookup_start(struct evexec *ex, const struct dns_key *k)
{
    size_t names = key_names_size(k);
    struct dns_lookup *lk = evexec__calloc(1, sizeof *lk + names);
    struct dns_ai_req *r = evexec__calloc(1, sizeof *r + names);
    if (!lk || !r) {
        free(lk);
        free(r);
        errno = ENOMEM;
        return NULL;
    }
    lk->ex = ex;
    key_copy(&lk->item.key, k, lk->names);
    r->run = dns_do_getaddrinfo;
    r->has_hints = k->has_hints;
    r->hints.ai_flags = k->flags;
    r->hints.ai_family = k->family;
    r->hints.ai_socktype = k->socktype;
    r->hints.ai_protocol = k->protocol;
    struct dns_key rk;
    key_copy(&rk, k, r->names);
    r->node = rk.node;
    r->service = rk.service;
    lk->job = evexec__io_submit(ex, r, EVEXEC_LANE_SLOW);
    if (!lk->job) {
        int err = errno;
        free(lk);
        errno = err;
        return NULL;
    }
    /* A fresh future keeps its first callback inline: this cannot fail. */
    evexec_future_on_done(lk->job, lookup_done, lk);
    struct evexec__dns *d = DNS_CAN_COPY ? dns_state(ex) : NULL;
    if (d && table_add(&d->inflight, &lk->item))
        lk->joinable = 1;
    return lk;
}

EVEXEC_API struct evexec_future *evexec_getaddrinfo(struct evexec *ex, const char *node,
                                                    const char *service,
                                                    const struct addrinfo *hints)
{
    if (!ex || (!node && !service)) {
        errno = EINVAL;
        return NULL;
    }
    /* Refused as a submission would be, also when it need not queue. */
    int rc = evexec__usable(ex);
    if (rc == 0 && evexec__pool_is_shutdown(ex->pool))
        rc = ESHUTDOWN;
    if (rc) {
        errno = rc;
        return NULL;
    }
    struct dns_key k;
    key_of(&k, node, service, hints);
    struct dns_waiter *w = (struct dns_waiter *)evexec__future_alloc(
        ex, sizeof *w, EVEXEC__F_OTHER, &waiter_ops);
    if (!w)
        return NULL;
    struct evexec__dns *d = ex->dns;
    struct dns_entry *e = cache_on(d) ? cache_find(d, &k) : NULL;
    if (e) {
        waiter_end(w, e->error, e->list, 0);
        return &w->fut;
    }
    struct dns_item *it = d ? table_find(&d->inflight, &k) : NULL;
    struct dns_lookup *lk = it ? EVEXEC__CONTAINER_OF(it, struct dns_lookup, item)
                               : lookup_start(ex, &k);
    if (!lk) {
        int err = errno;
        w->fut.refs = 0;
        evexec__future_release(&w->fut);
        evexec__future_free_mem(&w->fut);
        errno = err;
        return NULL;
    }
    waiter_attach(lk, w);
    return &w->fut;
}

/* ---- cache settings and teardown ------------------------------------------------- */

EVEXEC_API int evexec_dns_set_cache(struct evexec *ex,
                                    const struct evexec_dns_cache_opts *user_opts)
{
    struct evexec_dns_cache_opts o;
    if (!ex || evexec__read_struct(&o, sizeof o, user_opts, sizeof o) != 0)
        return EINVAL;
    int rc = evexec__usable(ex);
    if (rc)
        return rc;
    int on = o.positive_ttl_ms || o.negative_ttl_ms;
    if (on && !DNS_CAN_COPY)
        return ENOTSUP;
    struct evexec__dns *d = on ? dns_state(ex) : ex->dns;
    if (!d)
        return on ? ENOMEM : 0;
    cache_clear(d);
    d->positive_ttl_ms = o.positive_ttl_ms;
    d->negative_ttl_ms = o.negative_ttl_ms;
    d->max_entries = o.max_entries ? o.max_entries : DNS_CACHE_MAX_DEFAULT;
    return 0;
}

void evexec__dns_free(struct evexec *ex)
{
    struct evexec__dns *d = ex->dns;
    if (!d)
        return;
    cache_clear(d);
    /* Every lookup ended in the teardown and its callback freed it; one
     * still listed would be memory only (its futures go with the evexec). */
    for (size_t i = 0; i < d->inflight.nb; i++) {
        struct dns_item *it, *next;
        for (it = d->inflight.b[i]; it; it = next) {
            next = it->hnext;
            free(EVEXEC__CONTAINER_OF(it, struct dns_lookup, item));
        }
    }
    free(d->inflight.b);
    free(d->cache.b);
    free(d);
    ex->dns = NULL;
}

/* ---- getnameinfo ------------------------------------------------------------ */

struct dns_ni_req {
    evexec__io_fn run;          /* first: see evexec__io_submit() */
    struct sockaddr_storage sa;
    socklen_t salen;
    int flags;
};

static int dns_do_getnameinfo(struct evexec_job *job, void *arg)
{
    struct dns_ni_req *r = arg;
    struct evexec_nameinfo *ni = evexec__malloc(sizeof *ni);
    if (!ni)
        return ENOMEM;
    errno = 0;
    int rc = getnameinfo((const struct sockaddr *)&r->sa, r->salen, ni->host,
                         sizeof ni->host, ni->serv, sizeof ni->serv, r->flags);
    if (rc != 0) {
        rc = dns_error(rc);
        free(ni);
        return rc;
    }
    evexec_job_set_result(job, ni, free);
    return 0;
}

EVEXEC_API struct evexec_future *evexec_getnameinfo(struct evexec *ex,
                                                    const struct sockaddr *sa,
                                                    socklen_t salen, int flags)
{
    if (!ex || !sa || salen == 0 || salen > sizeof(struct sockaddr_storage)) {
        errno = EINVAL;
        return NULL;
    }
    struct dns_ni_req *r = evexec__calloc(1, sizeof *r);
    if (!r) {
        errno = ENOMEM;
        return NULL;
    }
    r->run = dns_do_getnameinfo;
    memcpy(&r->sa, sa, salen);
    r->salen = salen;
    r->flags = flags;
    return evexec__io_submit(ex, r, EVEXEC_LANE_SLOW);
}
