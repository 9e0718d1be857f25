
/*
 * ngx_http_c1_module: conversation threads.
 *
 * A hash of threads by (owner, id), a list of them from the most to the
 * least recently used, and for each owner an index of its listed threads
 * from the most to the least recently updated (each update takes the next
 * "seq", so the index is in seq order, and a page starts after the thread
 * whose seq the cursor names).
 *
 * A turn "begins" on a thread (marking it busy, so that a second turn
 * racing on it is refused), and when C1's answer is whole it "commits" the
 * turn's messages together; a turn that failed only "ends", leaving the
 * thread as it was (a thread made for it and never listed goes again).
 * Messages beyond max_messages go, oldest first; threads unused for
 * "inactive" seconds expire; when memory runs out the least recently used
 * threads that are not busy are evicted, and if that is not enough the
 * change is not made.
 */


#include <string.h>

#include "ngx_http_c1_history.h"


static uint32_t c1_history_hash(const unsigned char *owner, size_t olen,
    const unsigned char *id, size_t len);
static uint32_t c1_history_fnv(uint32_t hash, const unsigned char *p,
    size_t len);
static c1_owner_t *c1_history_owner(c1_history_t *h,
    const unsigned char *owner, size_t olen);
static void *c1_history_alloc(c1_history_t *h, size_t size,
    c1_thread_t *keep);
static c1_thread_t *c1_history_new(c1_history_t *h,
    const unsigned char *owner, size_t olen, const unsigned char *id,
    size_t len, time_t now);
static c1_msg_t *c1_history_msg(c1_history_t *h, c1_thread_t *keep,
    const c1_msg_in_t *in, uint64_t ms);
static int c1_history_has(c1_thread_t *t, const unsigned char *id,
    size_t len);
static int c1_history_title(c1_history_t *h, c1_thread_t *t,
    const unsigned char *title, size_t tlen);
static void c1_history_free_thread(c1_history_t *h, c1_thread_t *t);
static void c1_history_drop_oldest(c1_history_t *h, c1_thread_t *t);
static void c1_history_updated(c1_history_t *h, c1_thread_t *t,
    uint64_t ms);
static void c1_history_unlist(c1_history_t *h, c1_thread_t *t);


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
    size_t  size;

    memset(h, 0, sizeof(c1_history_t));

    h->magic = C1_HISTORY_MAGIC;
    h->pool = pool;

    size = nbuckets * sizeof(void *);

    h->buckets = c1_history_mem_alloc(pool, size);
    h->seqs = c1_history_mem_alloc(pool, size);
    h->owners = c1_history_mem_alloc(pool, size);

    if (h->buckets == NULL || h->seqs == NULL || h->owners == NULL) {
        return C1_HISTORY_NOMEM;
    }

    memset(h->buckets, 0, size);
    memset(h->seqs, 0, size);
    memset(h->owners, 0, size);
    h->nbuckets = nbuckets;

    h->lru.prev = &h->lru;
    h->lru.next = &h->lru;

    return C1_HISTORY_OK;
}


c1_thread_t *
c1_history_find(c1_history_t *h, const unsigned char *owner, size_t olen,
    const unsigned char *id, size_t len)
{
    uint32_t      hash;
    c1_thread_t  *t;

    hash = c1_history_hash(owner, olen, id, len);

    for (t = h->buckets[hash % h->nbuckets]; t; t = t->hnext) {
        if (t->hash == hash && t->id_len == len
            && memcmp(t->id, id, len) == 0
            && t->owner->len == olen
            && memcmp(t->owner->data, owner, olen) == 0)
        {
            return t;
        }
    }

    return NULL;
}


/*
 * A turn begins: the thread (made if need be, and then not listed until
 * its first commit) is busy until commit or end.  Returns C1_HISTORY_BUSY
 * when another turn runs on it.
 */

int
c1_history_begin(c1_history_t *h, const unsigned char *owner, size_t olen,
    const unsigned char *id, size_t len, time_t now,
    const c1_holder_t *holder, c1_thread_t **thread, uint64_t *token)
{
    c1_thread_t  *t;

    t = c1_history_find(h, owner, olen, id, len);

    if (t != NULL) {
        if (c1_history_busy(t)) {
            return C1_HISTORY_BUSY;
        }

    } else {
        t = c1_history_new(h, owner, olen, id, len, now);
        if (t == NULL) {
            return C1_HISTORY_NOMEM;
        }
    }

    t->busy = *holder;
    t->busy_token = ++h->tokens;

    c1_history_use(h, t, now);

    *thread = t;
    *token = t->busy_token;

    return C1_HISTORY_OK;
}


/*
 * The turn's answer is whole: its messages join the thread together (a
 * message id already there is not stored twice), or with "replace" they
 * become the thread's messages.  A thread without a title takes the one
 * given.  Nothing changes when there is no room for all of it.
 */

int
c1_history_commit(c1_history_t *h, c1_thread_t *t, uint64_t token,
    const c1_msg_in_t *msgs, size_t n, int replace,
    const unsigned char *title, size_t tlen, time_t now, uint64_t ms)
{
    size_t     i, j, skip;
    c1_msg_t  *m, *first, *last;

    if (t->busy_token != token || t->busy.pid == 0) {
        return C1_HISTORY_NONE;
    }

    /* a turn too large for the zone must not evict every other thread */

    for (i = 0; i < n; i++) {
        if (h->max_message && msgs[i].len > h->max_message) {
            h->dropped++;
            return C1_HISTORY_NOMEM;
        }
    }

    /* what would be trimmed at once is not stored at all */

    skip = (replace && h->max_messages && n > h->max_messages)
           ? n - h->max_messages : 0;

    first = NULL;
    last = NULL;

    for (i = skip; i < n; i++) {

        if (!replace) {
            if (c1_history_has(t, msgs[i].id, msgs[i].id_len)) {
                continue;
            }

            for (j = 0; j < i; j++) {
                if (msgs[j].id_len == msgs[i].id_len
                    && memcmp(msgs[j].id, msgs[i].id, msgs[i].id_len) == 0)
                {
                    break;
                }
            }

            if (j < i) {
                continue;                   /* twice in this turn */
            }
        }

        m = c1_history_msg(h, t, &msgs[i], ms);
        if (m == NULL) {
            goto nomem;
        }

        if (last) {
            last->next = m;

        } else {
            first = m;
        }

        last = m;
    }

    if (t->title == NULL && tlen
        && c1_history_title(h, t, title, tlen) != C1_HISTORY_OK)
    {
        goto nomem;
    }

    if (replace) {
        while (t->first) {
            c1_history_drop_oldest(h, t);
        }
    }

    for (m = first; m; m = m->next) {
        t->nmsgs++;
        h->messages++;
        h->bytes += m->len;
    }

    if (first) {
        if (t->last) {
            t->last->next = first;

        } else {
            t->first = first;
        }

        t->last = last;
    }

    while (h->max_messages && t->nmsgs > h->max_messages) {
        c1_history_drop_oldest(h, t);
    }

    c1_history_updated(h, t, ms);
    c1_history_use(h, t, now);

    return C1_HISTORY_OK;

nomem:

    while (first) {
        m = first->next;
        c1_history_mem_free(h->pool, first);
        first = m;
    }

    h->dropped++;

    return C1_HISTORY_NOMEM;
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


/* the turn is over, kept or not; a thread made for it and never listed goes */

void
c1_history_end(c1_history_t *h, c1_thread_t *t, uint64_t token)
{
    if (t->busy_token != token || t->busy.pid == 0) {
        return;
    }

    t->busy.pid = 0;
    t->busy.start = 0;

    if (t->seq == 0 && t->nmsgs == 0) {
        c1_history_free_thread(h, t);
    }
}


/* a thread made by the thread API: listed at once, with its title */

int
c1_history_create(c1_history_t *h, const unsigned char *owner, size_t olen,
    const unsigned char *id, size_t len, const unsigned char *title,
    size_t tlen, time_t now, uint64_t ms, c1_thread_t **thread)
{
    c1_thread_t  *t;

    if (c1_history_find(h, owner, olen, id, len) != NULL) {
        return C1_HISTORY_EXISTS;
    }

    t = c1_history_new(h, owner, olen, id, len, now);
    if (t == NULL) {
        return C1_HISTORY_NOMEM;
    }

    if (c1_history_title(h, t, title, tlen) != C1_HISTORY_OK) {
        c1_history_free_thread(h, t);
        return C1_HISTORY_NOMEM;
    }

    t->created = ms;
    c1_history_updated(h, t, ms);

    *thread = t;

    return C1_HISTORY_OK;
}


int
c1_history_rename(c1_history_t *h, c1_thread_t *t,
    const unsigned char *title, size_t tlen, time_t now, uint64_t ms)
{
    unsigned char  *old;
    uint32_t        olen;

    if (c1_history_busy(t)) {
        return C1_HISTORY_BUSY;
    }

    old = t->title;
    olen = t->title_len;
    t->title = NULL;

    if (c1_history_title(h, t, title, tlen) != C1_HISTORY_OK) {
        t->title = old;
        t->title_len = olen;
        return C1_HISTORY_NOMEM;
    }

    if (old) {
        h->bytes -= olen;
        c1_history_mem_free(h->pool, old);
    }

    c1_history_updated(h, t, ms);
    c1_history_use(h, t, now);

    return C1_HISTORY_OK;
}


/*
 * A message's content replaced (a form's state in an answer): the message
 * keeps its place, id, role and time.  C1_HISTORY_NONE: no such message;
 * C1_HISTORY_ROLE: it has another role than the one given.
 */

int
c1_history_replace(c1_history_t *h, c1_thread_t *t, const c1_msg_in_t *msg,
    time_t now, uint64_t ms, c1_msg_t **out)
{
    c1_msg_t     *m, *prev, *n;
    c1_msg_in_t   in;

    if (c1_history_busy(t)) {
        return C1_HISTORY_BUSY;
    }

    prev = NULL;

    for (m = t->first; m; prev = m, m = m->next) {
        if (m->id_len == msg->id_len
            && memcmp(c1_msg_id(m), msg->id, msg->id_len) == 0)
        {
            break;
        }
    }

    if (m == NULL) {
        return C1_HISTORY_NONE;
    }

    if (msg->role && msg->role != m->role) {
        return C1_HISTORY_ROLE;
    }

    if (h->max_message && msg->len > h->max_message) {
        return C1_HISTORY_NOMEM;
    }

    in = *msg;
    in.role = m->role;

    n = c1_history_msg(h, t, &in, m->time);
    if (n == NULL) {
        return C1_HISTORY_NOMEM;
    }

    n->next = m->next;

    if (prev) {
        prev->next = n;

    } else {
        t->first = n;
    }

    if (t->last == m) {
        t->last = n;
    }

    h->bytes += n->len;
    h->bytes -= m->len;

    c1_history_mem_free(h->pool, m);

    c1_history_updated(h, t, ms);
    c1_history_use(h, t, now);

    *out = n;

    return C1_HISTORY_OK;
}


/*
 * A page of an owner's threads, the most recently updated first, after
 * the thread whose seq is "cursor" (0: from the first).  A cursor whose
 * thread has since moved or gone starts at the first thread updated
 * before it.
 */

size_t
c1_history_list(c1_history_t *h, const unsigned char *owner, size_t olen,
    uint64_t cursor, size_t limit, c1_thread_t **out, int *more)
{
    size_t        n;
    c1_owner_t   *o;
    c1_thread_t  *t;

    *more = 0;

    o = c1_history_owner(h, owner, olen);
    if (o == NULL) {
        return 0;
    }

    t = o->first;

    if (cursor) {
        for (t = h->seqs[cursor % h->nbuckets]; t; t = t->snext) {
            if (t->seq == cursor) {
                break;
            }
        }

        if (t && t->owner == o) {
            t = t->onext;

        } else {
            for (t = o->first; t && t->seq >= cursor; t = t->onext) {
                /* void */
            }
        }
    }

    for (n = 0; t && n < limit; t = t->onext) {
        out[n++] = t;
    }

    *more = (t != NULL);

    return n;
}


int
c1_history_delete(c1_history_t *h, c1_thread_t *t)
{
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

        /* never before "inactive": seconds are whole, so one more */

        if (now - t->used <= h->inactive) {
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


/* the thread was used: it goes to the front of the least recently used */

void
c1_history_use(c1_history_t *h, c1_thread_t *t, time_t now)
{
    t->used = now;

    t->prev->next = t->next;
    t->next->prev = t->prev;

    t->prev = &h->lru;
    t->next = h->lru.next;
    h->lru.next->prev = t;
    h->lru.next = t;
}


static c1_owner_t *
c1_history_owner(c1_history_t *h, const unsigned char *owner, size_t olen)
{
    uint32_t     hash;
    c1_owner_t  *o;

    hash = c1_history_fnv(2166136261u, owner, olen);

    for (o = h->owners[hash % h->nbuckets]; o; o = o->hnext) {
        if (o->hash == hash && o->len == olen
            && memcmp(o->data, owner, olen) == 0)
        {
            return o;
        }
    }

    return NULL;
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


/* a new thread, not listed, with its owner's record made if need be */

static c1_thread_t *
c1_history_new(c1_history_t *h, const unsigned char *owner, size_t olen,
    const unsigned char *id, size_t len, time_t now)
{
    uint32_t       hash;
    c1_owner_t    *o, **ob;
    c1_thread_t   *t, **b;

    t = c1_history_alloc(h, offsetof(c1_thread_t, id) + len, NULL);
    if (t == NULL) {
        return NULL;
    }

    /* found after the thread's memory: evicting may free an owner */

    o = c1_history_owner(h, owner, olen);

    if (o == NULL) {
        o = c1_history_alloc(h, offsetof(c1_owner_t, data) + olen, NULL);
        if (o == NULL) {
            c1_history_mem_free(h->pool, t);
            return NULL;
        }

        memset(o, 0, offsetof(c1_owner_t, data));
        o->hash = c1_history_fnv(2166136261u, owner, olen);
        o->len = (uint32_t) olen;
        memcpy(o->data, owner, olen);

        ob = &h->owners[o->hash % h->nbuckets];
        o->hnext = *ob;
        *ob = o;
    }

    memset(t, 0, offsetof(c1_thread_t, id));

    hash = c1_history_hash(owner, olen, id, len);
    t->hash = hash;
    t->id_len = (uint8_t) len;
    memcpy(t->id, id, len);
    t->owner = o;
    t->used = now;

    o->nthreads++;

    b = &h->buckets[hash % h->nbuckets];
    t->hnext = *b;
    *b = t;

    t->prev = &h->lru;
    t->next = h->lru.next;
    h->lru.next->prev = t;
    h->lru.next = t;

    h->threads++;

    return t;
}


static c1_msg_t *
c1_history_msg(c1_history_t *h, c1_thread_t *keep, const c1_msg_in_t *in,
    uint64_t ms)
{
    c1_msg_t  *m;

    m = c1_history_alloc(h, offsetof(c1_msg_t, data) + in->id_len + in->len,
                         keep);
    if (m == NULL) {
        return NULL;
    }

    m->next = NULL;
    m->time = ms;
    m->len = (uint32_t) in->len;
    m->role = (uint8_t) in->role;
    m->id_len = (uint8_t) in->id_len;

    memcpy(m->data, in->id, in->id_len);

    if (in->len) {
        memcpy(m->data + in->id_len, in->content, in->len);
    }

    return m;
}


static int
c1_history_has(c1_thread_t *t, const unsigned char *id, size_t len)
{
    c1_msg_t  *m;

    for (m = t->first; m; m = m->next) {
        if (m->id_len == len && memcmp(c1_msg_id(m), id, len) == 0) {
            return 1;
        }
    }

    return 0;
}


static int
c1_history_title(c1_history_t *h, c1_thread_t *t, const unsigned char *title,
    size_t tlen)
{
    unsigned char  *p;

    p = c1_history_alloc(h, tlen ? tlen : 1, t);
    if (p == NULL) {
        return C1_HISTORY_NOMEM;
    }

    memcpy(p, title, tlen);

    t->title = p;
    t->title_len = (uint32_t) tlen;
    h->bytes += tlen;

    return C1_HISTORY_OK;
}


static void
c1_history_free_thread(c1_history_t *h, c1_thread_t *t)
{
    c1_owner_t   *o, **ob;
    c1_thread_t  **b;

    while (t->first) {
        c1_history_drop_oldest(h, t);
    }

    if (t->title) {
        h->bytes -= t->title_len;
        c1_history_mem_free(h->pool, t->title);
    }

    for (b = &h->buckets[t->hash % h->nbuckets]; *b; b = &(*b)->hnext) {
        if (*b == t) {
            *b = t->hnext;
            break;
        }
    }

    c1_history_unlist(h, t);

    t->prev->next = t->next;
    t->next->prev = t->prev;

    o = t->owner;

    if (--o->nthreads == 0) {
        for (ob = &h->owners[o->hash % h->nbuckets]; *ob;
             ob = &(*ob)->hnext)
        {
            if (*ob == o) {
                *ob = o->hnext;
                break;
            }
        }

        c1_history_mem_free(h->pool, o);
    }

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


/* the thread changed: it takes the next seq and heads its owner's index */

static void
c1_history_updated(c1_history_t *h, c1_thread_t *t, uint64_t ms)
{
    c1_owner_t    *o;
    c1_thread_t  **b;

    c1_history_unlist(h, t);

    o = t->owner;

    t->seq = ++h->seq;
    t->updated = ms;

    if (t->created == 0) {
        t->created = ms;                    /* first listed */
    }

    b = &h->seqs[t->seq % h->nbuckets];
    t->snext = *b;
    *b = t;

    t->oprev = NULL;
    t->onext = o->first;

    if (o->first) {
        o->first->oprev = t;

    } else {
        o->last = t;
    }

    o->first = t;
}


static void
c1_history_unlist(c1_history_t *h, c1_thread_t *t)
{
    c1_owner_t    *o;
    c1_thread_t  **b;

    if (t->seq == 0) {
        return;
    }

    for (b = &h->seqs[t->seq % h->nbuckets]; *b; b = &(*b)->snext) {
        if (*b == t) {
            *b = t->snext;
            break;
        }
    }

    o = t->owner;

    if (t->oprev) {
        t->oprev->onext = t->onext;

    } else {
        o->first = t->onext;
    }

    if (t->onext) {
        t->onext->oprev = t->oprev;

    } else {
        o->last = t->oprev;
    }

    t->oprev = NULL;
    t->onext = NULL;
    t->seq = 0;
}


static uint32_t
c1_history_hash(const unsigned char *owner, size_t olen,
    const unsigned char *id, size_t len)
{
    uint32_t       hash;
    unsigned char  n[4];

    n[0] = (unsigned char) (olen >> 24);
    n[1] = (unsigned char) (olen >> 16);
    n[2] = (unsigned char) (olen >> 8);
    n[3] = (unsigned char) olen;

    hash = c1_history_fnv(2166136261u, n, 4);
    hash = c1_history_fnv(hash, owner, olen);

    return c1_history_fnv(hash, id, len);
}


/* FNV-1a */

static uint32_t
c1_history_fnv(uint32_t hash, const unsigned char *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        hash ^= p[i];
        hash *= 16777619u;
    }

    return hash;
}
