
/*
 * ngx_http_c1_module: the thread store, one interface whatever keeps the
 * threads (a shared memory zone; a server over the network).
 *
 * An operation is a struct filled in by the caller and run by the store.
 * It may end at once (the run returns NGX_OK) or later (NGX_AGAIN: the
 * store calls op->handler when it is over).  Either way op->rc tells how
 * it went, and what it hands out is copied into op->pool: nothing points
 * into the store once the operation is over.  A turn is held by its
 * handle (the owner, the thread id and the token begin gave), never by a
 * pointer into the store.
 */


#ifndef _NGX_HTTP_C1_STORE_H_INCLUDED_
#define _NGX_HTTP_C1_STORE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


typedef struct ngx_http_c1_store_s     ngx_http_c1_store_t;
typedef struct ngx_http_c1_store_op_s  ngx_http_c1_store_op_t;

typedef void (*ngx_http_c1_store_handler_pt)(ngx_http_c1_store_op_t *op);
typedef ngx_int_t (*ngx_http_c1_store_run_pt)(ngx_http_c1_store_op_t *op);
typedef void (*ngx_http_c1_store_exit_pt)(ngx_http_c1_store_t *store);


typedef enum {
    NGX_HTTP_C1_STORE_BEGIN = 0,    /* a turn: the thread locked, loaded */
    NGX_HTTP_C1_STORE_COMMIT,       /* the turn's messages in; unlocked */
    NGX_HTTP_C1_STORE_END,          /* the turn over, nothing kept */
    NGX_HTTP_C1_STORE_LIST,         /* a page of the owner's threads */
    NGX_HTTP_C1_STORE_GET,          /* a thread and its messages */
    NGX_HTTP_C1_STORE_CREATE,
    NGX_HTTP_C1_STORE_RENAME,
    NGX_HTTP_C1_STORE_REPLACE,      /* one message's content */
    NGX_HTTP_C1_STORE_DELETE,
    NGX_HTTP_C1_STORE_LIMIT,        /* a token bucket's level */
    NGX_HTTP_C1_STORE_DEBIT         /* tokens spent: nobody waits */
} ngx_http_c1_store_op_e;


/* what op->rc says, beyond NGX_OK */
#define NGX_HTTP_C1_STORE_NONE     NGX_DECLINED   /* no such thread */
#define NGX_HTTP_C1_STORE_NO_MSG   -20            /* no such message */
#define NGX_HTTP_C1_STORE_BUSY     NGX_BUSY       /* a turn runs on it */
#define NGX_HTTP_C1_STORE_FULL     NGX_ABORT      /* no room for it */
#define NGX_HTTP_C1_STORE_ROLE     -21            /* the role differs */
/* NGX_ERROR: the store failed (unreachable, out of memory here) */


typedef struct {
    ngx_str_t                      id;
    ngx_uint_t                     role;        /* C1_ROLE_* */
    ngx_str_t                      content;
    uint64_t                       time;        /* ms */
} ngx_http_c1_msg_t;


typedef struct {
    ngx_str_t                      id;
    ngx_str_t                      title;
    uint64_t                       created;     /* ms */
    uint64_t                       updated;
} ngx_http_c1_meta_t;


struct ngx_http_c1_store_op_s {
    ngx_http_c1_store_op_e         type;
    ngx_http_c1_store_t           *store;
    ngx_pool_t                    *pool;        /* results go here */
    ngx_log_t                     *log;

    ngx_str_t                      owner;       /* "": the anonymous one */
    ngx_str_t                      thread;

    /* what the caller gives */
    ngx_str_t                      title;       /* CREATE, RENAME; COMMIT:
                                                   a thread without one */
    ngx_http_c1_msg_t             *msgs;        /* COMMIT; REPLACE: one */
    ngx_uint_t                     nmsgs;
    ngx_uint_t                     limit;       /* LIST */
    uint64_t                       cursor;      /* LIST: 0 from the top */
    uint64_t                       token;       /* COMMIT, END */
    unsigned                       replace:1;   /* COMMIT: msgs are all */
    unsigned                       load:1;      /* BEGIN: hand them out */

    /* LIMIT, DEBIT: the bucket (owner: the zone; thread: its id) */
    uint64_t                       rate;        /* tokens per window */
    uint64_t                       window;      /* ms */
    uint64_t                       tokens;      /* DEBIT */

    /* what the store hands out */
    ngx_int_t                      rc;
    ngx_http_c1_meta_t             meta;        /* the thread */
    ngx_http_c1_msg_t             *out;         /* its messages */
    ngx_uint_t                     nout;
    ngx_http_c1_meta_t            *metas;       /* LIST */
    ngx_uint_t                     nmetas;
    uint64_t                       next;        /* LIST: 0 on the last */
    uint64_t                       evicted;     /* threads that went */
    int64_t                        level;       /* LIMIT: milli-tokens
                                                   spent, refilled */

    ngx_http_c1_store_handler_pt   handler;     /* after NGX_AGAIN */
    void                          *data;
};


struct ngx_http_c1_store_s {
    ngx_str_t                      name;
    ngx_http_c1_store_run_pt       run;
    ngx_http_c1_store_exit_pt      exit;        /* NULL: nothing to do */
    void                          *data;        /* the backend's own */
    unsigned                       buckets:1;   /* keeps token buckets */
    u_char                        *file;        /* where it was defined */
    ngx_uint_t                     line;
};


#define ngx_http_c1_store_run(op)  (op)->store->run(op)


#endif /* _NGX_HTTP_C1_STORE_H_INCLUDED_ */
