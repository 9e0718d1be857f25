
/*
 * ngx_http_c1_module: the types the nginx glue shares.
 *
 * A request of a c1_pass location goes through one phase after another
 * (ngx_http_c1_handler.c drives them) and ends with one outcome, set once
 * from the table of errors (ngx_http_c1_errors.c).  C1 is reached through
 * a call (ngx_http_c1_call.c): one subrequest to an internal location.
 * Everything the client gets goes through the response
 * (ngx_http_c1_response.c).
 */


#ifndef _NGX_HTTP_C1_MODULE_H_INCLUDED_
#define _NGX_HTTP_C1_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_c1_proto.h"
#include "ngx_http_c1_history.h"
#include "ngx_http_c1_store.h"
#include "ngx_http_c1_bucket.h"
#include "ngx_http_c1_tools.h"


/* the first room taken for an answer whose length C1 did not give */
#define NGX_HTTP_C1_ANSWER_SIZE  32768

/* r->buffered: a call holds input it has not read yet */
#define NGX_HTTP_C1_BUFFERED     0x08

/* the thread API's pages: the most threads in one, and the default */
#define NGX_HTTP_C1_PAGE_MAX     200
#define NGX_HTTP_C1_PAGE         50


typedef struct {
    c1_history_t              *sh;
    ngx_slab_pool_t           *shpool;
    ngx_str_t                  name;
    size_t                     size;
    ngx_uint_t                 max_messages;
    time_t                     inactive;
} ngx_http_c1_zone_t;


/* c1_limit_tokens_zone's shared memory: its buckets, its counters */
typedef struct {
    ngx_rbtree_t               rbtree;          /* of ..._limit_node_t */
    ngx_rbtree_node_t          sentinel;
    ngx_queue_t                queue;           /* most recently used first */
    ngx_atomic_t               keys;
    ngx_atomic_t               limited;         /* requests refused */
    ngx_atomic_t               usage;           /* tokens debited, from */
    ngx_atomic_t               estimate;        /* usage or an estimate */
    ngx_atomic_t               dropped;         /* keys a full zone lost */
} ngx_http_c1_limit_sh_t;


typedef struct {
    ngx_str_t                  name;
    size_t                     size;            /* 0: not declared yet */
    ngx_shm_zone_t            *shm_zone;
    ngx_http_c1_limit_sh_t    *sh;
    ngx_slab_pool_t           *shpool;
    ngx_str_t                  store_name;      /* "": the buckets are here */
    ngx_http_c1_store_t       *store;           /* Redis: they are there */
    ngx_msec_t                 logged;          /* a drop, by this process */
    ngx_str_t                  used_file;       /* where first used */
    ngx_uint_t                 used_line;
    ngx_array_t                uses;            /* of ..._limit_use_t */
} ngx_http_c1_limit_zone_t;


/* a c1_limit_tokens */
typedef struct {
    ngx_http_c1_limit_zone_t  *zone;
    ngx_http_complex_value_t   key;
    c1_bucket_limit_t          bucket;
    u_char                     unit;            /* 'm', 'h' or 'd' */
    unsigned                   completion:1;    /* count=completion */
} ngx_http_c1_limit_t;


/* a limit in effect on a request: its bucket, as the check found it */
typedef struct ngx_http_c1_limit_state_s  ngx_http_c1_limit_state_t;

struct ngx_http_c1_limit_state_s {
    ngx_http_c1_limit_t       *limit;
    ngx_str_t                  key;
    ngx_str_t                  id;              /* unit, count ':' key */
    uint32_t                   hash;
    int64_t                    level;           /* milli-tokens spent */
    c1_bucket_state_t          state;
    ngx_http_c1_store_op_t     op;              /* in Redis */
    ngx_http_c1_limit_state_t *twin;            /* the earlier one whose
                                                   bucket this is */
    unsigned                   unknown:1;       /* the store failed */
};


/* a c1_tool: a location that answers one of C1's tool calls */
typedef struct {
    ngx_str_t                  name;
    ngx_str_t                  uri;
    ngx_str_t                  title;           /* its think item's */
    ngx_msec_t                 timeout;
    ngx_uint_t                 metric;          /* its counters' row */
} ngx_http_c1_tool_t;


/* how a tool call ended: the metrics' outcome label */
typedef enum {
    NGX_HTTP_C1_TOOL_OK = 0,
    NGX_HTTP_C1_TOOL_ERROR,                    /* a status not 2xx */
    NGX_HTTP_C1_TOOL_TIMEOUT,
    NGX_HTTP_C1_TOOL_TOO_LARGE,
    NGX_HTTP_C1_TOOL_UNKNOWN,
    NGX_HTTP_C1_TOOL_BAD_ARGUMENTS,
    NGX_HTTP_C1_TOOL_UNREACHABLE,
    NGX_HTTP_C1_TOOL_NOT_TEXT,
    NGX_HTTP_C1_TOOL_OUTCOMES
} ngx_http_c1_tool_outcome_e;

/* the tools the metrics count by name; one row more: "unknown" */
#define NGX_HTTP_C1_TOOLS_MAX         64


/* why a try failed: what c1_retry's on= lists, a bit each */
#define NGX_HTTP_C1_RETRY_ERROR       0x0001
#define NGX_HTTP_C1_RETRY_TIMEOUT     0x0002
#define NGX_HTTP_C1_RETRY_429         0x0004
#define NGX_HTTP_C1_RETRY_500         0x0008
#define NGX_HTTP_C1_RETRY_502         0x0010
#define NGX_HTTP_C1_RETRY_503         0x0020
#define NGX_HTTP_C1_RETRY_504         0x0040
#define NGX_HTTP_C1_RETRY_BAD_ANSWER  0x0080
#define NGX_HTTP_C1_RETRY_REASONS     8

#define NGX_HTTP_C1_FALLBACKS_MAX     4


typedef struct {
    ngx_uint_t                 tries;           /* 0: off */
    ngx_uint_t                 on;              /* NGX_HTTP_C1_RETRY_* */
    ngx_msec_t                 timeout;         /* for all the tries */
    ngx_msec_t                 backoff;         /* the first pause */
} ngx_http_c1_retry_t;


typedef struct {
    ngx_array_t                zones;           /* of ngx_http_c1_zone_t * */
    ngx_array_t                stores;          /* of ngx_http_c1_store_t * */
    ngx_array_t                limit_zones;     /* of ..._limit_zone_t * */
    ngx_array_t                tool_names;      /* of ngx_str_t: metrics */
    ngx_shm_zone_t            *metrics_zone;    /* the counters */
} ngx_http_c1_main_conf_t;


typedef struct {
    /* where C1 is: the internal location */
    ngx_str_t                  pass;            /* not inherited */
    ngx_str_t                  pass_args;
    ngx_str_t                  pass_file;       /* where c1_pass was set */
    ngx_uint_t                 pass_line;

    /* what C1 is asked */
    ngx_http_complex_value_t  *api_key;
    ngx_http_complex_value_t  *model;
    ngx_http_complex_value_t  *system_prompt;
    double                     temperature;     /* -1: unset */
    double                     top_p;           /* -1: unset */
    ngx_int_t                  max_tokens;
    ngx_array_t               *stop;            /* of ngx_str_t */

    /* what C1 may answer */
    size_t                     max_response_size;

    /* streams */
    ngx_flag_t                 stream;
    ngx_flag_t                 stream_usage;
    size_t                     stream_max_size;
    ngx_msec_t                 stream_timeout;

    /* threads: the store of turns, whose they are, the thread API */
    ngx_http_c1_store_t       *history;         /* NULL: none */
    ngx_str_t                  history_name;
    ngx_http_complex_value_t  *owner;           /* NULL: anonymous */
    ngx_http_c1_store_t       *threads;
    ngx_str_t                  threads_name;    /* not inherited */
    ngx_str_t                  threads_prefix;
    ngx_str_t                  threads_file;
    ngx_uint_t                 threads_line;

    /* when C1 fails: tries, and the models of the later ones */
    ngx_http_c1_retry_t        retry;           /* tries unset: UNSET_UINT */
    ngx_array_t               *fallback;        /* of complex values */

    /* token budgets */
    ngx_array_t               *limits;          /* of ngx_http_c1_limit_t */
    ngx_uint_t                 limit_status;

    /* tools: the set, as C1 gets it ("tools": JSON), and their bounds */
    ngx_array_t               *tools;           /* of ngx_http_c1_tool_t */
    ngx_str_t                  tools_json;
    ngx_uint_t                 tool_rounds;
    size_t                     tool_max_size;
} ngx_http_c1_loc_conf_t;


/*
 * where a request is, in this order; CALL and PAUSE repeat, once a try,
 * while c1_retry tries again
 */
typedef enum {
    NGX_HTTP_C1_PHASE_START = 0,               /* routed, nothing read */
    NGX_HTTP_C1_PHASE_BODY,                    /* reading the client body */
    NGX_HTTP_C1_PHASE_STORE,                   /* the store answers */
    NGX_HTTP_C1_PHASE_CALL,                    /* C1 is being called */
    NGX_HTTP_C1_PHASE_PAUSE,                   /* between two tries */
    NGX_HTTP_C1_PHASE_TOOLS,                   /* a tool round's calls */
    NGX_HTTP_C1_PHASE_RESPOND,                 /* the answer is decided */
    NGX_HTTP_C1_PHASE_DONE                     /* nothing more to do */
} ngx_http_c1_phase_e;


/* how a request ended: the metrics' outcome label */
typedef enum {
    NGX_HTTP_C1_OUTCOME_NONE = 0,              /* not known yet */
    NGX_HTTP_C1_OUTCOME_OK,
    NGX_HTTP_C1_OUTCOME_INVALID,               /* invalid_request */
    NGX_HTTP_C1_OUTCOME_C1_ERROR,              /* C1 answered an error */
    NGX_HTTP_C1_OUTCOME_UPSTREAM,              /* upstream_failure */
    NGX_HTTP_C1_OUTCOME_ABORTED,               /* client_aborted */
    NGX_HTTP_C1_OUTCOME_LIMITED                /* rate_limited */
} ngx_http_c1_outcome_e;

#define NGX_HTTP_C1_OUTCOMES  6                 /* labels, NONE aside */


/* what kind of request a c1_pass location got */
typedef enum {
    NGX_HTTP_C1_KIND_OTHER = 0,                /* refused before a turn */
    NGX_HTTP_C1_KIND_TURN,                     /* a prompt for C1 */
    NGX_HTTP_C1_KIND_THREAD_OP                 /* the thread API, GET or
                                                  DELETE of a thread */
} ngx_http_c1_kind_e;


/* the errors a request can end with: one row each in the table */
typedef enum {
    NGX_HTTP_C1_ERR_NONE = 0,
    NGX_HTTP_C1_ERR_METHOD,
    NGX_HTTP_C1_ERR_METHOD_THREADS,
    NGX_HTTP_C1_ERR_MEDIA_TYPE,
    NGX_HTTP_C1_ERR_BAD_REQUEST,               /* the parser's own words */
    NGX_HTTP_C1_ERR_NO_MODEL,
    NGX_HTTP_C1_ERR_THREAD_BUSY,
    NGX_HTTP_C1_ERR_THREAD_RUNNING,
    NGX_HTTP_C1_ERR_THREAD_ID,
    NGX_HTTP_C1_ERR_THREAD_NOT_FOUND,
    NGX_HTTP_C1_ERR_OWNER_REQUIRED,
    NGX_HTTP_C1_ERR_OWNER_INVALID,
    NGX_HTTP_C1_ERR_ROUTE,
    NGX_HTTP_C1_ERR_API_METHOD,                /* Allow: says which */
    NGX_HTTP_C1_ERR_API_BODY,                  /* the API parser's words */
    NGX_HTTP_C1_ERR_API_MEDIA_TYPE,
    NGX_HTTP_C1_ERR_LIMIT,
    NGX_HTTP_C1_ERR_CURSOR,
    NGX_HTTP_C1_ERR_MESSAGE_ID,
    NGX_HTTP_C1_ERR_MESSAGE_NOT_FOUND,
    NGX_HTTP_C1_ERR_MESSAGE_ROLE,
    NGX_HTTP_C1_ERR_HISTORY_FULL,
    NGX_HTTP_C1_ERR_STORE,
    NGX_HTTP_C1_ERR_RATE_LIMITED,              /* c1_limit_tokens' words */
    NGX_HTTP_C1_ERR_ANSWER_TOO_LARGE,
    NGX_HTTP_C1_ERR_TIMEOUT,
    NGX_HTTP_C1_ERR_UNREACHABLE,
    NGX_HTTP_C1_ERR_BROKE_OFF,
    NGX_HTTP_C1_ERR_BAD_STATUS,
    NGX_HTTP_C1_ERR_C1,                        /* C1's error, reworded */
    NGX_HTTP_C1_ERR_C1_PASSED,                 /* C1's error, as it was */
    NGX_HTTP_C1_ERR_BAD_ANSWER,                /* the reader's own words */
    NGX_HTTP_C1_ERR_STREAM_BAD,                /* the relay's own words */
    NGX_HTTP_C1_ERR_STREAM_BROKEN,
    NGX_HTTP_C1_ERR_STREAM_SIZE,
    NGX_HTTP_C1_ERR_STREAM_TIME,
    NGX_HTTP_C1_ERR_STREAM_EMPTY,
    NGX_HTTP_C1_ERR_PAGE_TOO_LARGE,            /* nginx's own pages */
    NGX_HTTP_C1_ERR_PAGE_CLIENT,
    NGX_HTTP_C1_ERR_PAGE_SERVER,
    NGX_HTTP_C1_ERR_LAST
} ngx_http_c1_err_e;


typedef struct ngx_http_c1_call_s  ngx_http_c1_call_t;

/* the call's answer has its header: NGX_OK, or NGX_ERROR to stop it */
typedef ngx_int_t (*ngx_http_c1_call_header_pt)(ngx_http_c1_call_t *call);

/*
 * A piece of the call's answer (NULL: go on with what is held).  The
 * handler reads what it can and holds the rest in call->held; NGX_OK, or
 * NGX_ERROR to stop the call.
 */
typedef ngx_int_t (*ngx_http_c1_call_data_pt)(ngx_http_c1_call_t *call,
    ngx_chain_t *in);


typedef enum {
    NGX_HTTP_C1_CALL_NEW = 0,
    NGX_HTTP_C1_CALL_RUNNING,
    NGX_HTTP_C1_CALL_DONE                      /* its subrequest is over */
} ngx_http_c1_call_state_e;


/*
 * A call: one subrequest to an internal location, with a method, a body
 * and headers of its own (nothing of the client's), a deadline, and
 * handlers for its answer's header and data.  Its end is only recorded;
 * the main request decides what follows when it runs again.
 */
struct ngx_http_c1_call_s {
    ngx_http_request_t        *r;               /* the main request */
    ngx_http_request_t        *sr;              /* NULL before the start */

    ngx_str_t                  uri;
    ngx_str_t                  args;
    ngx_uint_t                 method;
    ngx_str_t                  method_name;
    ngx_str_t                  body;
    ngx_array_t               *headers;         /* of ngx_keyval_t */

    ngx_msec_t                 timeout;         /* 0: no deadline */
    ngx_event_t                deadline;

    ngx_http_c1_call_header_pt header_handler;
    ngx_http_c1_call_data_pt   data_handler;
    void                      *data;

    /* what happened */
    ngx_uint_t                 status;          /* of its answer */
    ngx_int_t                  rc;              /* the first error rc */
    ngx_msec_t                 end_msec;
    ngx_chain_t               *held;            /* input not read yet */

    unsigned                   state:2;         /* ngx_http_c1_call_state_e */
    unsigned                   header:1;        /* its header came */
    unsigned                   last:1;          /* its answer is all in */
    unsigned                   stopped:1;       /* its handler stopped it */
    unsigned                   timed_out:1;     /* past its deadline */
    unsigned                   failed:1;        /* it failed after header */
    unsigned                   background:1;    /* a tool's: nginx does
                                                   not wake the request */
    unsigned                   woke:1;          /* so we did */
};


/* a tool call: its call (a background subrequest) and its result */
typedef struct {
    ngx_http_c1_call_t         call;
    ngx_http_c1_tool_t        *tool;            /* NULL: no such tool */
    ngx_uint_t                 index;           /* in the round's calls */
    c1_buf_t                   body;            /* the tool's answer */
    ngx_msec_t                 start;
    ngx_uint_t                 outcome;         /* ..._tool_outcome_e */
    unsigned                   too_large:1;
    unsigned                   ran:1;           /* a subrequest was made */
} ngx_http_c1_tool_call_t;


/* everything sent to the client, and what is still held for it */
typedef enum {
    NGX_HTTP_C1_RESPONSE_NONE = 0,             /* nothing sent */
    NGX_HTTP_C1_RESPONSE_STREAMING,            /* header and some body */
    NGX_HTTP_C1_RESPONSE_ENDED                 /* the end was sent */
} ngx_http_c1_response_state_e;


typedef struct {
    ngx_chain_t               *free;
    ngx_chain_t               *busy;            /* sent, not yet written */
    ngx_event_t                stall;           /* send_timeout, ours */
    off_t                      sent;            /* c->sent when armed */
    ngx_str_t                  page;            /* JSON for nginx's page */
    unsigned                   state:2;         /* ..._response_state_e */
    unsigned                   own:1;           /* our header went out */
    unsigned                   replace:1;       /* nginx's page: replace */
    unsigned                   stream:1;        /* a stream was begun */
} ngx_http_c1_response_t;


typedef struct {
    ngx_http_c1_phase_e        phase;
    ngx_http_c1_kind_e         kind;
    ngx_http_c1_outcome_e      outcome;         /* set once */
    ngx_http_c1_err_e          error;           /* set once, with outcome */
    c1_error_t                 err;             /* its words */

    c1_mode_e                  mode;            /* 0 until the body is read */
    unsigned                   stream:1;        /* a stream was asked for */
    unsigned                   relaying:1;      /* C1 streams, we relay */
    unsigned                   relay_ended:1;   /* C1's stream ended well */
    unsigned                   over_size:1;     /* c1_stream_max_size */
    unsigned                   too_large:1;     /* c1_max_response_size */
    unsigned                   answer_lost:1;   /* too large for a thread */

    ngx_http_c1_call_t         call;            /* the C1 call */
    ngx_http_c1_response_t     response;

    /* a whole answer, collected, and what it says */
    u_char                    *buf;
    size_t                     len;
    size_t                     size;
    c1_answer_t                content;

    /* a stream */
    c1_relay_t                 relay;
    off_t                      relayed;         /* bytes C1 streamed */
    c1_buf_t                   answer;          /* a prompt stream, whole */

    /* the turn's thread: held by its handle, begun until committed */
    ngx_http_c1_store_t       *store;
    ngx_str_t                  owner;
    ngx_str_t                  thread_id;
    uint64_t                   token;
    unsigned                   begun:1;         /* the turn holds it */
    unsigned                   openui:1;        /* the request's messages
                                                   become the thread's */
    ngx_http_c1_msg_t         *keep;            /* what the turn stores */
    ngx_uint_t                 nkeep;           /* answer aside */
    ngx_str_t                  answer_id;
    ngx_str_t                  title;           /* a new thread's */
    ngx_http_c1_store_op_t     op;              /* the one under way */
    c1_request_t               req;             /* parsed, till rendered */
    c1_settings_t              settings;

    /* tries (c1_retry): each is a call of its own */
    ngx_str_t                  body;            /* C1's request, as built */
    ngx_str_t                  body_model;      /* the model it names */
    ngx_str_t                  key;
    ngx_uint_t                 tries;           /* calls made */
    ngx_str_t                  fallbacks[NGX_HTTP_C1_FALLBACKS_MAX];
    ngx_uint_t                 nfallbacks;
    ngx_msec_t                 tries_start;     /* when the first began */
    ngx_event_t                pause;           /* before the next one */
    ngx_int_t                  retry_after;     /* C1's, in s; -1: none */
    ngx_str_t                  retry_after_value;
    unsigned                   fallback:1;      /* this try's model is */

    /* token budgets: the limits in effect, the one shown */
    ngx_http_c1_limit_state_t *limits;
    ngx_uint_t                 nlimits;
    ngx_uint_t                 limit_wait;      /* Redis's replies to come */
    ngx_http_c1_limit_state_t *limit_shown;
    unsigned                   debited:1;
    unsigned                   hide_usage:1;    /* C1's request asked for
                                                   a usage of our own */

    /* tool rounds: this round's calls as C1 asked, every round's calls */
    c1_tool_calls_t           *tc;              /* NULL: no tools here */
    ngx_array_t               *tool_calls;      /* of ..._tool_call_t * */
    ngx_uint_t                 round_first;     /* this round's first */
    ngx_str_t                  round_assistant; /* its tool calls' JSON */
    ngx_uint_t                 rounds;
    ngx_array_t               *tool_keep;       /* of ngx_http_c1_msg_t:
                                                   the thread's */
    long                       round_prompt;    /* the earlier rounds' */
    long                       round_completion;
    long                       round_total;
    uint64_t                   spent_usage[2];  /* total, completion */
    uint64_t                   spent_estimate[2];
    unsigned                   counted_call:1;  /* this call's are in */

    /* for variables and metrics */
    ngx_str_t                  model;           /* of the last try */
    long                       prompt_tokens;   /* -1: unknown */
    long                       completion_tokens;
    long                       total_tokens;
    ngx_msec_t                 first_msec;      /* C1's first content */
    unsigned                   counted:1;
} ngx_http_c1_ctx_t;


extern ngx_module_t  ngx_http_c1_module;


/* what a new context holds beyond zeros */
#define ngx_http_c1_ctx_init(ctx)                                            \
    (ctx)->prompt_tokens = -1;                                               \
    (ctx)->completion_tokens = -1;                                           \
    (ctx)->total_tokens = -1


/* ngx_http_c1_handler.c */
ngx_int_t ngx_http_c1_handler(ngx_http_request_t *r);
ngx_http_c1_ctx_t *ngx_http_c1_get_ctx(ngx_http_request_t *r);
ngx_int_t ngx_http_c1_fail(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    ngx_http_c1_err_e id, const c1_error_t *words, ngx_uint_t status);
ngx_int_t ngx_http_c1_read_body(ngx_http_request_t *r, ngx_str_t *body);
void ngx_http_c1_turn_checked(ngx_http_request_t *r, ngx_int_t rc);

extern char  *ngx_http_c1_reasons[NGX_HTTP_C1_RETRY_REASONS];

/* ngx_http_c1_errors.c */
void ngx_http_c1_error(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    ngx_http_c1_err_e id, const c1_error_t *words, ngx_uint_t status);
void ngx_http_c1_error_words(ngx_http_c1_err_e id, const c1_error_t *words,
    ngx_uint_t status, c1_error_t *err);

/* ngx_http_c1_call.c */
ngx_int_t ngx_http_c1_call_init(ngx_conf_t *cf);
ngx_int_t ngx_http_c1_call_start(ngx_http_c1_call_t *call);
ngx_uint_t ngx_http_c1_call_over(ngx_http_c1_call_t *call);
void ngx_http_c1_call_cleanup(ngx_http_c1_call_t *call);

/* ngx_http_c1_chat.c */
ngx_int_t ngx_http_c1_chat_start(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx, ngx_str_t *body);

/* ngx_http_c1_response.c */
ngx_int_t ngx_http_c1_response_init(ngx_conf_t *cf);
ngx_int_t ngx_http_c1_response_send(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx, ngx_uint_t status, ngx_str_t *type,
    u_char *data, size_t len);
ngx_int_t ngx_http_c1_response_error(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx);
ngx_int_t ngx_http_c1_response_add_header(ngx_http_request_t *r,
    char *name, char *value);
ngx_int_t ngx_http_c1_response_write(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx, ngx_http_request_t *via, u_char *data,
    size_t len);
ngx_int_t ngx_http_c1_response_flush(ngx_http_c1_ctx_t *ctx,
    ngx_http_request_t *via);
ngx_int_t ngx_http_c1_response_end(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx, u_char *data, size_t len);
ngx_int_t ngx_http_c1_response_cut(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx);
void ngx_http_c1_response_cleanup(ngx_http_c1_ctx_t *ctx);

/* ngx_http_c1_threads.c: the shared memory store, the stores' names */
char *ngx_http_c1_history_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_c1_history(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_c1_threads(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_http_c1_store_t *ngx_http_c1_store_find(ngx_http_c1_main_conf_t *mcf,
    ngx_str_t *name);
ngx_int_t ngx_http_c1_store_limit(ngx_conf_t *cf, ngx_str_t *value,
    ngx_uint_t *max_messages, ngx_msec_t *inactive);
uint64_t ngx_http_c1_process_start(ngx_pid_t pid);

/* ngx_http_c1_redis.c: the store in Redis */
char *ngx_http_c1_history_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* ngx_http_c1_thread.c: owners, a turn's store operations, the API */
ngx_int_t ngx_http_c1_thread_api_handler(ngx_http_request_t *r);
ngx_http_c1_err_e ngx_http_c1_owner(ngx_http_request_t *r,
    ngx_http_c1_loc_conf_t *lcf, ngx_str_t *owner);
ngx_int_t ngx_http_c1_thread_begin(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx, ngx_http_c1_store_handler_pt handler);
ngx_int_t ngx_http_c1_thread_keep(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx, c1_request_t *req);
void ngx_http_c1_thread_commit(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    u_char *answer, size_t len);
ngx_int_t ngx_http_c1_thread_op(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx, ngx_http_c1_loc_conf_t *lcf);
ngx_int_t ngx_http_c1_thread_new_id(ngx_pool_t *pool, ngx_str_t *id);

/* ngx_http_c1_limit.c: token budgets */
char *ngx_http_c1_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_c1_limit_tokens(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_c1_limit_init(ngx_conf_t *cf);
ngx_int_t ngx_http_c1_limit_check(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx);
void ngx_http_c1_limit_count(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx);
void ngx_http_c1_limit_debit(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx);

/* ngx_http_c1_tool.c: tools as locations */
char *ngx_http_c1_tool(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_c1_tool_start(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx);
ngx_int_t ngx_http_c1_tool_round(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx);
ngx_uint_t ngx_http_c1_tools_over(ngx_http_c1_ctx_t *ctx);
ngx_int_t ngx_http_c1_tool_next(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx);
ngx_http_c1_call_t *ngx_http_c1_tool_call_of(ngx_http_c1_ctx_t *ctx,
    ngx_http_request_t *sr);
void ngx_http_c1_tool_cleanup(ngx_http_c1_ctx_t *ctx);
ngx_uint_t ngx_http_c1_tool_ran(ngx_http_c1_ctx_t *ctx);

/* ngx_http_c1_metrics.c */
ngx_int_t ngx_http_c1_add_variables(ngx_conf_t *cf);
ngx_int_t ngx_http_c1_metrics_init(ngx_conf_t *cf);
char *ngx_http_c1_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
void ngx_http_c1_stream_started(ngx_http_request_t *r);
void ngx_http_c1_retried(ngx_http_request_t *r, ngx_uint_t reason);
void ngx_http_c1_store_failed(ngx_str_t *store, ngx_uint_t op);
void ngx_http_c1_tool_counted(ngx_http_request_t *r, ngx_uint_t metric,
    ngx_uint_t outcome, ngx_msec_t ms, ngx_uint_t ran);


#endif /* _NGX_HTTP_C1_MODULE_H_INCLUDED_ */
