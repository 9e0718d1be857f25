
/*
 * ngx_http_c1_module: conversation threads.
 *
 * A hash of threads by id, and a list of them from the most to the least
 * recently used.  A turn "begins" on a thread (marking it busy, so that a
 * second turn racing on it is refused), and when C1's answer is whole it
 * "commits" the user message and the answer together; a turn that failed
 * only "ends", leaving the thread as it was (a thread made for it and still
 * empty goes again).  Messages beyond max_messages go, oldest first;
 * threads unused for "inactive" seconds expire; when memory runs out the
 * least recently used threads that are not busy are evicted, and if that
 * is not enough the turn is not kept (the request itself goes on).
 */


#include <string.h>

#include "ngx_http_c1_history.h"


static uint32_t c1_history_hash(const unsigned char *id, size_t len);
static void *c1_history_alloc(c1_history_t *h, size_t size,
    c1_thread_t *keep);
static void c1_history_free_thread(c1_history_t *h, c1_thread_t *t);
static void c1_history_drop_oldest(c1_history_t *h, c1_thread_t *t);
static void c1_history_touch(c1_history_t *h, c1_thread_t *t, time_t now);


int
c1_thread_id_valid(const unsigned char *id, size_t len)
{
    size_t  i;

    if (len == 0 || len > C1_THREAD_ID_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (id[i] < 0x21 || id[i] > 0x7e) {
            return 0;
        }
    }

    return 1;
}


int
c1_history_init(c1_history_t *h, uint32_t nbuckets, void *pool)
{
    memset(h, 0, sizeof(c1_history_t));

    h->pool = pool;

    h->buckets = c1_history_mem_alloc(pool, nbuckets * sizeof(c1_thread_t *));
    if (h->buckets == NULL) {
        return C1_HISTORY_NOMEM;
    }

    memset(h->buckets, 0, nbuckets * sizeof(c1_thread_t *));
    h->nbuckets = nbuckets;

    h->lru.prev = &h->lru;
    h->lru.next = &h->lru;

    return C1_HISTORY_OK;
}


c1_thread_t *
c1_history_find(c1_history_t *h, const unsigned char *id, size_t len)
{
    uint32_t      hash;
    c1_thread_t  *t;

    hash = c1_history_hash(id, len);

    for (t = h->buckets[hash % h->nbuckets]; t; t = t->hnext) {
        if (t->hash == hash && t->id_len == len
            && memcmp(t->id, id, len) == 0)
        {
            return t;
        }
    }

    return NULL;
}


/*
 * A turn begins: the thread (made if need be) is busy until commit or end.
 * Returns C1_HISTORY_BUSY when another turn runs on it.
 */

int
c1_history_begin(c1_history_t *h, const unsigned char *id, size_t len,
    time_t now, const c1_holder_t *holder, c1_thread_t **thread,
    uint64_t *token)
{
    uint32_t      hash;
    c1_thread_t  *t, **b;

    t = c1_history_find(h, id, len);

    if (t != NULL) {
        if (c1_history_busy(t)) {
            return C1_HISTORY_BUSY;
        }

    } else {
        t = c1_history_alloc(h, sizeof(c1_thread_t), NULL);
        if (t == NULL) {
            return C1_HISTORY_NOMEM;
        }

        memset(t, 0, sizeof(c1_thread_t));

        hash = c1_history_hash(id, len);
        t->hash = hash;
        t->id_len = (uint8_t) len;
        memcpy(t->id, id, len);

        b = &h->buckets[hash % h->nbuckets];
        t->hnext = *b;
        *b = t;

        t->prev = &h->lru;
        t->next = h->lru.next;
        h->lru.next->prev = t;
        h->lru.next = t;

        h->threads++;
    }

    t->busy = *holder;
    t->busy_token = ++h->tokens;

    c1_history_touch(h, t, now);

    *thread = t;
    *token = t->busy_token;

    return C1_HISTORY_OK;
}


/* the turn's answer is whole: its two messages join the thread together */

int
c1_history_commit(c1_history_t *h, c1_thread_t *t, uint64_t token,
    const unsigned char *user, size_t ulen, const unsigned char *answer,
    size_t alen, time_t now)
{
    c1_msg_t  *u, *a;

    if (t->busy_token != token || t->busy.pid == 0) {
        return C1_HISTORY_NONE;
    }

    /* a turn too large for the zone must not evict every other thread */

    if (h->max_message && (ulen > h->max_message || alen > h->max_message)) {
        h->dropped++;
        return C1_HISTORY_NOMEM;
    }

    u = c1_history_alloc(h, offsetof(c1_msg_t, data) + ulen, t);
    if (u == NULL) {
        h->dropped++;
        return C1_HISTORY_NOMEM;
    }

    a = c1_history_alloc(h, offsetof(c1_msg_t, data) + alen, t);
    if (a == NULL) {
        c1_history_mem_free(h->pool, u);
        h->dropped++;
        return C1_HISTORY_NOMEM;
    }

    u->role = C1_ROLE_USER;
    u->len = (uint32_t) ulen;

    if (ulen) {
        memcpy(u->data, user, ulen);
    }

    u->next = a;

    a->role = C1_ROLE_ASSISTANT;
    a->len = (uint32_t) alen;

    if (alen) {
        memcpy(a->data, answer, alen);      /* an empty answer: NULL */
    }

    a->next = NULL;

    if (t->last) {
        t->last->next = u;

    } else {
        t->first = u;
    }

    t->last = a;
    t->nmsgs += 2;

    h->messages += 2;
    h->bytes += ulen + alen;

    while (h->max_messages && t->nmsgs > h->max_messages) {
        c1_history_drop_oldest(h, t);
    }

    c1_history_touch(h, t, now);

    return C1_HISTORY_OK;
}


/*
 * A turn runs on the thread: its lock lives as long as the turn, however
 * long that is.  The only stale lock is one whose holder died (a worker
 * killed mid-turn): it is dropped here, at the first look.
 */

int
c1_history_busy(c1_thread_t *t)
{
    if (t->busy.pid == 0) {
        return 0;
    }

    if (c1_history_holder_alive(&t->busy)) {
        return 1;
    }

    t->busy.pid = 0;
    t->busy.start = 0;

    return 0;
}


/* the turn is over, kept or not; a thread made for it and empty goes */

void
c1_history_end(c1_history_t *h, c1_thread_t *t, uint64_t token)
{
    if (t->busy_token != token || t->busy.pid == 0) {
        return;
    }

    t->busy.pid = 0;
    t->busy.start = 0;

    if (t->nmsgs == 0) {
        c1_history_free_thread(h, t);
    }
}


int
c1_history_delete(c1_history_t *h, const unsigned char *id, size_t len)
{
    c1_thread_t  *t;

    t = c1_history_find(h, id, len);

    if (t == NULL) {
        return C1_HISTORY_NONE;
    }

    if (c1_history_busy(t)) {
        return C1_HISTORY_BUSY;
    }

    c1_history_free_thread(h, t);

    return C1_HISTORY_OK;
}


/* threads unused for longer than "inactive" go, a few at a time */

void
c1_history_expire(c1_history_t *h, time_t now, unsigned limit)
{
    c1_thread_t  *t, *prev;

    if (h->inactive == 0) {
        return;
    }

    for (t = h->lru.prev; t != &h->lru && limit; t = prev) {
        prev = t->prev;

        if (now - t->used < h->inactive) {
            return;
        }

        if (c1_history_busy(t)) {
            continue;
        }

        c1_history_free_thread(h, t);
        h->expired++;
        limit--;
    }
}


static void *
c1_history_alloc(c1_history_t *h, size_t size, c1_thread_t *keep)
{
    void         *p;
    c1_thread_t  *t, *prev;

    p = c1_history_mem_alloc(h->pool, size);

    /* no room: evict the least recently used threads first */

    for (t = h->lru.prev; p == NULL && t != &h->lru; t = prev) {
        prev = t->prev;

        if (t == keep || c1_history_busy(t)) {
            continue;
        }

        c1_history_free_thread(h, t);
        h->evicted++;

        p = c1_history_mem_alloc(h->pool, size);
    }

    return p;
}


static void
c1_history_free_thread(c1_history_t *h, c1_thread_t *t)
{
    c1_thread_t  **b;

    while (t->first) {
        c1_history_drop_oldest(h, t);
    }

    for (b = &h->buckets[t->hash % h->nbuckets]; *b; b = &(*b)->hnext) {
        if (*b == t) {
            *b = t->hnext;
            break;
        }
    }

    t->prev->next = t->next;
    t->next->prev = t->prev;

    h->threads--;

    c1_history_mem_free(h->pool, t);
}


static void
c1_history_drop_oldest(c1_history_t *h, c1_thread_t *t)
{
    c1_msg_t  *m;

    m = t->first;
    t->first = m->next;

    if (t->first == NULL) {
        t->last = NULL;
    }

    t->nmsgs--;
    h->messages--;
    h->bytes -= m->len;

    c1_history_mem_free(h->pool, m);
}


static void
c1_history_touch(c1_history_t *h, c1_thread_t *t, time_t now)
{
    t->used = now;

    t->prev->next = t->next;
    t->next->prev = t->prev;

    t->prev = &h->lru;
    t->next = h->lru.next;
    h->lru.next->prev = t;
    h->lru.next = t;
}


/* FNV-1a */

static uint32_t
c1_history_hash(const unsigned char *id, size_t len)
{
    size_t    i;
    uint32_t  hash;

    hash = 2166136261u;

    for (i = 0; i < len; i++) {
        hash ^= id[i];
        hash *= 16777619u;
    }

    return hash;
}
