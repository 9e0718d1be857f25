
/*
 * ngx_http_c1_module: conversation threads, kept in memory given by the
 * caller (nginx's shared memory zone).  Plain C: the caller supplies the
 * allocator and holds the zone's lock around every call.
 *
 * A thread belongs to an owner and is known by (owner, id): the same id
 * under two owners is two threads.  Each owner has an index of its listed
 * threads, the most recently updated first, so that a page of them costs
 * the page, not every thread.
 */


#ifndef _NGX_HTTP_C1_HISTORY_H_INCLUDED_
#define _NGX_HTTP_C1_HISTORY_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <time.h>


#define C1_THREAD_ID_MAX   128
#define C1_OWNER_MAX       256
#define C1_HISTORY_MAGIC   0x63310002          /* the layout's version */

#define C1_ROLE_USER       1
#define C1_ROLE_ASSISTANT  2
#define C1_ROLE_TOOL_CALLS 3                   /* the assistant's tool calls:
                                                  the message's JSON */
#define C1_ROLE_TOOL       4                   /* a tool's result: the
                                                  message's JSON */

#define C1_HISTORY_OK      0
#define C1_HISTORY_NOMEM  -2
#define C1_HISTORY_BUSY   -3
#define C1_HISTORY_NONE   -4
#define C1_HISTORY_EXISTS -6
#define C1_HISTORY_ROLE   -7


typedef struct c1_msg_s     c1_msg_t;
typedef struct c1_owner_s   c1_owner_t;
typedef struct c1_thread_s  c1_thread_t;


/* a message: its id, then its content, in data */
struct c1_msg_s {
    c1_msg_t      *next;
    uint64_t       time;                   /* when stored, ms */
    uint32_t       len;                    /* of the content */
    uint8_t        role;
    uint8_t        id_len;
    unsigned char  data[1];
};

#define c1_msg_id(m)       ((m)->data)
#define c1_msg_content(m)  ((m)->data + (m)->id_len)


/* a message to store: what a turn adds, or what replaces one */
typedef struct {
    const unsigned char  *id;
    size_t                id_len;
    int                   role;
    const unsigned char  *content;
    size_t                len;
} c1_msg_in_t;


/*
 * Who runs a turn: a process, told apart from a later one given the same
 * pid by when it started.  A lock is stale only when its holder is gone.
 */
typedef struct {
    uint64_t       pid;                    /* 0: no turn running */
    uint64_t       start;                  /* 0: not known */
} c1_holder_t;


struct c1_owner_s {
    c1_owner_t    *hnext;
    c1_thread_t   *first;                  /* the most recently updated */
    c1_thread_t   *last;
    uint32_t       hash;
    uint32_t       nthreads;               /* listed or not */
    uint32_t       len;                    /* 0: the anonymous owner */
    unsigned char  data[1];
};


struct c1_thread_s {
    c1_thread_t   *hnext;                  /* by (owner, id) */
    c1_thread_t   *snext;                  /* by seq */
    c1_thread_t   *prev;                   /* least recently used last */
    c1_thread_t   *next;
    c1_thread_t   *oprev;                  /* the owner's index */
    c1_thread_t   *onext;
    c1_owner_t    *owner;
    c1_msg_t      *first;
    c1_msg_t      *last;
    unsigned char *title;                  /* NULL: none yet */
    uint32_t       title_len;
    uint32_t       nmsgs;
    uint32_t       hash;
    time_t         used;
    uint64_t       created;                /* ms */
    uint64_t       updated;                /* ms */
    uint64_t       seq;                    /* 0: not listed yet */
    c1_holder_t    busy;                   /* the turn running, if any */
    uint64_t       busy_token;
    uint8_t        id_len;
    char           id[1];                  /* id_len bytes, allocated so */
};


/*
 * The memory threads live in: the program defines these two (nginx: the
 * zone's slab pool, with its lock held).  No function pointer is kept in
 * the shared memory itself, since processes may map code differently.
 */
void *c1_history_mem_alloc(void *pool, size_t size);
void c1_history_mem_free(void *pool, void *p);

/*
 * Whether the holder of a turn still runs: the program defines it (nginx:
 * the worker process is alive).  Called with the zone's lock held.
 */
int c1_history_holder_alive(const c1_holder_t *holder);


typedef struct {
    uint32_t       magic;
    void          *pool;

    c1_thread_t  **buckets;                /* by (owner, id) */
    c1_thread_t  **seqs;                   /* by seq */
    c1_owner_t   **owners;
    uint32_t       nbuckets;
    c1_thread_t    lru;                    /* sentinel */

    uint32_t       max_messages;
    time_t         inactive;
    size_t         max_message;            /* larger ones are not kept */

    uint64_t       tokens;                 /* the last busy token given */
    uint64_t       seq;                    /* the last update's */

    /* what is kept, and what had to go */
    uint64_t       threads;
    uint64_t       messages;
    uint64_t       bytes;
    uint64_t       evicted;
    uint64_t       expired;
    uint64_t       dropped;                /* turns not kept: no memory */
} c1_history_t;


int c1_thread_id_valid(const unsigned char *id, size_t len);

int c1_history_init(c1_history_t *h, uint32_t nbuckets, void *pool);

c1_thread_t *c1_history_find(c1_history_t *h, const unsigned char *owner,
    size_t olen, const unsigned char *id, size_t len);

int c1_history_begin(c1_history_t *h, const unsigned char *owner,
    size_t olen, const unsigned char *id, size_t len, time_t now,
    const c1_holder_t *holder, c1_thread_t **thread, uint64_t *token);
int c1_history_commit(c1_history_t *h, c1_thread_t *t, uint64_t token,
    const c1_msg_in_t *msgs, size_t n, int replace,
    const unsigned char *title, size_t tlen, time_t now, uint64_t ms);
void c1_history_end(c1_history_t *h, c1_thread_t *t, uint64_t token);

int c1_history_create(c1_history_t *h, const unsigned char *owner,
    size_t olen, const unsigned char *id, size_t len,
    const unsigned char *title, size_t tlen, time_t now, uint64_t ms,
    c1_thread_t **thread);
int c1_history_rename(c1_history_t *h, c1_thread_t *t,
    const unsigned char *title, size_t tlen, time_t now, uint64_t ms);
int c1_history_replace(c1_history_t *h, c1_thread_t *t,
    const c1_msg_in_t *msg, time_t now, uint64_t ms, c1_msg_t **out);
size_t c1_history_list(c1_history_t *h, const unsigned char *owner,
    size_t olen, uint64_t cursor, size_t limit, c1_thread_t **out,
    int *more);

int c1_history_busy(c1_thread_t *t);
void c1_history_use(c1_history_t *h, c1_thread_t *t, time_t now);
int c1_history_delete(c1_history_t *h, c1_thread_t *t);
void c1_history_expire(c1_history_t *h, time_t now, unsigned limit);


#endif /* _NGX_HTTP_C1_HISTORY_H_INCLUDED_ */
