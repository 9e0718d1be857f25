
/*
 * ngx_http_c1_module: conversation threads, kept in memory given by the
 * caller (nginx's shared memory zone).  Plain C: the caller supplies the
 * allocator and holds the zone's lock around every call.
 */


#ifndef _NGX_HTTP_C1_HISTORY_H_INCLUDED_
#define _NGX_HTTP_C1_HISTORY_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <time.h>


#define C1_THREAD_ID_MAX  128

#define C1_ROLE_USER       1
#define C1_ROLE_ASSISTANT  2

#define C1_HISTORY_OK      0
#define C1_HISTORY_NOMEM  -2
#define C1_HISTORY_BUSY   -3
#define C1_HISTORY_NONE   -4


typedef struct c1_msg_s     c1_msg_t;
typedef struct c1_thread_s  c1_thread_t;


struct c1_msg_s {
    c1_msg_t      *next;
    uint32_t       len;
    uint8_t        role;
    unsigned char  data[1];
};


/*
 * Who runs a turn: a process, told apart from a later one given the same
 * pid by when it started.  A lock is stale only when its holder is gone.
 */
typedef struct {
    uint64_t       pid;                    /* 0: no turn running */
    uint64_t       start;                  /* 0: not known */
} c1_holder_t;


struct c1_thread_s {
    c1_thread_t   *hnext;                  /* hash chain */
    c1_thread_t   *prev;                   /* least recently used last */
    c1_thread_t   *next;
    c1_msg_t      *first;
    c1_msg_t      *last;
    uint32_t       nmsgs;
    uint32_t       hash;
    time_t         used;
    c1_holder_t    busy;                   /* the turn running, if any */
    uint64_t       busy_token;
    uint8_t        id_len;
    char           id[C1_THREAD_ID_MAX];
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
    void          *pool;

    c1_thread_t  **buckets;
    uint32_t       nbuckets;
    c1_thread_t    lru;                    /* sentinel */

    uint32_t       max_messages;
    time_t         inactive;
    size_t         max_message;            /* larger ones are not kept */

    uint64_t       tokens;                 /* the last busy token given */

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

c1_thread_t *c1_history_find(c1_history_t *h, const unsigned char *id,
    size_t len);

int c1_history_begin(c1_history_t *h, const unsigned char *id, size_t len,
    time_t now, const c1_holder_t *holder, c1_thread_t **thread,
    uint64_t *token);
int c1_history_commit(c1_history_t *h, c1_thread_t *t, uint64_t token,
    const unsigned char *user, size_t ulen, const unsigned char *answer,
    size_t alen, time_t now);
void c1_history_end(c1_history_t *h, c1_thread_t *t, uint64_t token);

int c1_history_busy(c1_thread_t *t);
int c1_history_delete(c1_history_t *h, const unsigned char *id, size_t len);
void c1_history_expire(c1_history_t *h, time_t now, unsigned limit);


#endif /* _NGX_HTTP_C1_HISTORY_H_INCLUDED_ */
