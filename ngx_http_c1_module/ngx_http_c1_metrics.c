
/*
 * ngx_http_c1_module: observability.  Variables for log_format and other
 * directives ($c1_model, token counts, timings...), counters in shared
 * memory (correct across workers, kept across reloads) counted once per
 * request in the log phase, and the c1_metrics location that serves them
 * as Prometheus text.
 */


#include "ngx_http_c1_module.h"


#define NGX_HTTP_C1_METRICS_ZONE  "ngx_http_c1_metrics"
#define NGX_HTTP_C1_BUCKETS_N     12


/*
 * Streams being relayed, counted by the process relaying them, in the
 * slot nginx gave it: the gauge adds up the slots of processes that are
 * alive, so that a worker killed mid-stream leaves no count behind.
 */
typedef struct {
    ngx_atomic_t   streams;
    uint64_t       pid;                           /* 0: never used */
    uint64_t       start;                         /* of that process */
} ngx_http_c1_streams_t;


/* requests a fallback model answered, by model (the first ones seen) */
#define NGX_HTTP_C1_FALLBACK_MODELS  32
#define NGX_HTTP_C1_MODEL_LEN        128

typedef struct {
    ngx_atomic_t   n;
    size_t         len;                           /* 0: free */
    u_char         name[NGX_HTTP_C1_MODEL_LEN];
} ngx_http_c1_model_count_t;


/* what a thread store failed to do, by store (the first ones seen) */
#define NGX_HTTP_C1_STORES           16
#define NGX_HTTP_C1_STORE_OPS        11

typedef struct {
    ngx_atomic_t   n[NGX_HTTP_C1_STORE_OPS];
    size_t         len;                           /* 0: free */
    u_char         name[NGX_HTTP_C1_MODEL_LEN];
} ngx_http_c1_store_count_t;


typedef struct {
    ngx_atomic_t   requests[3][2][NGX_HTTP_C1_OUTCOMES];
    ngx_atomic_t   prompt_tokens;
    ngx_atomic_t   completion_tokens;
    ngx_atomic_t   latency[NGX_HTTP_C1_BUCKETS_N + 1];
    ngx_atomic_t   latency_sum;                   /* ms */
    ngx_atomic_t   ttft[NGX_HTTP_C1_BUCKETS_N + 1];
    ngx_atomic_t   ttft_sum;                      /* ms */
    ngx_http_c1_streams_t  active[NGX_MAX_PROCESSES];
    ngx_atomic_t   retries[NGX_HTTP_C1_RETRY_REASONS];
    ngx_http_c1_model_count_t  fallbacks[NGX_HTTP_C1_FALLBACK_MODELS + 1];
    ngx_http_c1_store_count_t  store_failures[NGX_HTTP_C1_STORES];
    ngx_atomic_t   tools[NGX_HTTP_C1_TOOLS_MAX + 1]
                        [NGX_HTTP_C1_TOOL_OUTCOMES];
    ngx_atomic_t   tool_latency[NGX_HTTP_C1_BUCKETS_N + 1];
    ngx_atomic_t   tool_latency_sum;              /* ms */
} ngx_http_c1_metrics_t;


/* in the order of ngx_http_c1_tool_outcome_e */
static char  *ngx_http_c1_tool_outcomes[NGX_HTTP_C1_TOOL_OUTCOMES] = {
    "ok", "error", "timeout", "too_large", "unknown", "bad_arguments",
    "unreachable", "not_text"
};


/* in the order of ngx_http_c1_store_op_e */
static char  *ngx_http_c1_store_ops[NGX_HTTP_C1_STORE_OPS] = {
    "begin", "commit", "end", "list", "get", "create", "rename", "replace",
    "delete", "limit", "debit"
};


/* the page, written into a chain of buffers, every write bounded */

#define NGX_HTTP_C1_PAGE_BUF       4096
#define NGX_HTTP_C1_PAGE_PIECE_MAX (1024 * 1024)

typedef struct {
    ngx_pool_t    *pool;
    ngx_chain_t   *out;
    ngx_chain_t  **last;
    ngx_chain_t   *cl;                            /* the last link */
    ngx_buf_t     *b;                             /* its buffer */
    off_t          size;
} ngx_http_c1_page_t;


/* a history zone's figures, read under its lock, its name as a label */

typedef struct {
    ngx_str_t      label;
    uint64_t       value[7];
} ngx_http_c1_zone_stat_t;


typedef struct {
    char          *name;
    char          *type;
    char          *help;
} ngx_http_c1_family_t;


static ngx_int_t ngx_http_c1_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_atomic_t *ngx_http_c1_active_streams(ngx_http_c1_metrics_t *m);
static void ngx_http_c1_fallback_counted(ngx_shm_zone_t *zone,
    ngx_http_c1_metrics_t *m, ngx_str_t *model);
static ngx_atomic_uint_t ngx_http_c1_active_total(ngx_http_c1_metrics_t *m);
static ngx_int_t ngx_http_c1_init_metrics_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_c1_log_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_c1_metrics_handler(ngx_http_request_t *r);
static void ngx_http_c1_observe(ngx_atomic_t *buckets, ngx_atomic_t *sum,
    ngx_msec_t ms);
static ngx_int_t ngx_http_c1_page_write(ngx_http_c1_page_t *pg,
    ngx_http_c1_metrics_t *m, ngx_http_c1_zone_stat_t *st, ngx_uint_t n);
static ngx_int_t ngx_http_c1_page_limits(ngx_http_c1_page_t *pg,
    ngx_array_t *zones);
static ngx_int_t ngx_http_c1_page_tools(ngx_http_c1_page_t *pg,
    ngx_http_c1_metrics_t *m, ngx_array_t *names);
static ngx_int_t ngx_http_c1_histogram(ngx_http_c1_page_t *pg, char *name,
    char *help, ngx_atomic_t *buckets, ngx_atomic_t *sum);
static ngx_int_t ngx_http_c1_page_printf(ngx_http_c1_page_t *pg,
    const char *fmt, ...);
static ngx_int_t ngx_http_c1_label(ngx_pool_t *pool, ngx_str_t *value,
    ngx_str_t *label);


/* the upper bounds of the histograms' buckets, in ms */

static ngx_msec_t  ngx_http_c1_bounds[NGX_HTTP_C1_BUCKETS_N] = {
    50, 100, 250, 500, 1000, 2000, 3000, 5000, 10000, 20000, 30000, 60000
};

static char  *ngx_http_c1_outcomes[NGX_HTTP_C1_OUTCOMES] = {
    "ok", "invalid_request", "c1_error", "upstream_failure", "client_aborted",
    "rate_limited"
};

static char  *ngx_http_c1_modes[3] = { "none", "prompt", "openai" };

/* in the order of ngx_http_c1_zone_stat_t's values */

static ngx_http_c1_family_t  ngx_http_c1_history_families[] = {
    { "c1_history_threads", "gauge", "Threads kept." },
    { "c1_history_messages", "gauge", "Messages kept." },
    { "c1_history_bytes", "gauge", "Bytes of message content kept." },
    { "c1_history_evicted_total", "counter",
      "Threads evicted from a full zone." },
    { "c1_history_expired_total", "counter",
      "Threads expired after the zone's inactive time." },
    { "c1_history_dropped_total", "counter",
      "Turns not kept: the zone had no memory for them." },
    { "c1_history_zone_size_bytes", "gauge", "The zone's size." }
};


enum {
    NGX_HTTP_C1_VAR_MODEL = 0,
    NGX_HTTP_C1_VAR_PROMPT_TOKENS,
    NGX_HTTP_C1_VAR_COMPLETION_TOKENS,
    NGX_HTTP_C1_VAR_TOTAL_TOKENS,
    NGX_HTTP_C1_VAR_TTFT,
    NGX_HTTP_C1_VAR_UPSTREAM_TIME,
    NGX_HTTP_C1_VAR_STREAM,
    NGX_HTTP_C1_VAR_THREAD_ID,
    NGX_HTTP_C1_VAR_ERROR,
    NGX_HTTP_C1_VAR_TRIES,
    NGX_HTTP_C1_VAR_FALLBACK,
    NGX_HTTP_C1_VAR_LIMIT_REMAINING,
    NGX_HTTP_C1_VAR_LIMIT_KEY,
    NGX_HTTP_C1_VAR_TOOL_CALLS,
    NGX_HTTP_C1_VAR_TOOL_ROUNDS
};


static ngx_http_variable_t  ngx_http_c1_vars[] = {

    { ngx_string("c1_model"), NULL, ngx_http_c1_variable,
      NGX_HTTP_C1_VAR_MODEL, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("c1_prompt_tokens"), NULL, ngx_http_c1_variable,
      NGX_HTTP_C1_VAR_PROMPT_TOKENS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("c1_completion_tokens"), NULL, ngx_http_c1_variable,
      NGX_HTTP_C1_VAR_COMPLETION_TOKENS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("c1_total_tokens"), NULL, ngx_http_c1_variable,
      NGX_HTTP_C1_VAR_TOTAL_TOKENS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("c1_ttft"), NULL, ngx_http_c1_variable,
      NGX_HTTP_C1_VAR_TTFT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("c1_upstream_time"), NULL, ngx_http_c1_variable,
      NGX_HTTP_C1_VAR_UPSTREAM_TIME, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("c1_stream"), NULL, ngx_http_c1_variable,
      NGX_HTTP_C1_VAR_STREAM, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("c1_thread_id"), NULL, ngx_http_c1_variable,
      NGX_HTTP_C1_VAR_THREAD_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("c1_error"), NULL, ngx_http_c1_variable,
      NGX_HTTP_C1_VAR_ERROR, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("c1_tries"), NULL, ngx_http_c1_variable,
      NGX_HTTP_C1_VAR_TRIES, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("c1_fallback"), NULL, ngx_http_c1_variable,
      NGX_HTTP_C1_VAR_FALLBACK, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("c1_limit_remaining"), NULL, ngx_http_c1_variable,
      NGX_HTTP_C1_VAR_LIMIT_REMAINING, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("c1_limit_key"), NULL, ngx_http_c1_variable,
      NGX_HTTP_C1_VAR_LIMIT_KEY, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("c1_tool_calls"), NULL, ngx_http_c1_variable,
      NGX_HTTP_C1_VAR_TOOL_CALLS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("c1_tool_rounds"), NULL, ngx_http_c1_variable,
      NGX_HTTP_C1_VAR_TOOL_ROUNDS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_c1_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_c1_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_c1_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    u_char             *p;
    long                n;
    ngx_str_t           s;
    ngx_http_c1_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_c1_module);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    n = -1;
    ngx_str_null(&s);

    switch (data) {

    case NGX_HTTP_C1_VAR_MODEL:
        s = ctx->model;
        break;

    case NGX_HTTP_C1_VAR_PROMPT_TOKENS:
        n = ctx->prompt_tokens;
        break;

    case NGX_HTTP_C1_VAR_COMPLETION_TOKENS:
        n = ctx->completion_tokens;
        break;

    case NGX_HTTP_C1_VAR_TOTAL_TOKENS:
        n = ctx->total_tokens;
        break;

    case NGX_HTTP_C1_VAR_TTFT:
        if (ctx->first_msec) {
            n = (long) (ctx->first_msec - ctx->tries_start);
        }
        break;

    case NGX_HTTP_C1_VAR_UPSTREAM_TIME:
        if (ctx->call.state == NGX_HTTP_C1_CALL_DONE) {
            n = (long) (ctx->call.end_msec - ctx->tries_start);
        }
        break;

    case NGX_HTTP_C1_VAR_STREAM:
        if (ctx->call.sr) {
            n = ctx->stream ? 1 : 0;
        }
        break;

    case NGX_HTTP_C1_VAR_THREAD_ID:
        s = ctx->thread_id;
        break;

    case NGX_HTTP_C1_VAR_TRIES:
        if (ctx->call.sr) {
            n = (long) ctx->tries;
        }
        break;

    case NGX_HTTP_C1_VAR_FALLBACK:
        if (ctx->call.sr) {
            n = ctx->fallback ? 1 : 0;
        }
        break;

    case NGX_HTTP_C1_VAR_LIMIT_REMAINING:
        if (ctx->limit_shown) {
            n = (long) ngx_min(ctx->limit_shown->state.remaining,
                               (uint64_t) NGX_MAX_INT_T_VALUE);
        }
        break;

    case NGX_HTTP_C1_VAR_LIMIT_KEY:
        if (ctx->limit_shown) {
            s = ctx->limit_shown->key;
        }
        break;

    case NGX_HTTP_C1_VAR_TOOL_CALLS:
        if (ctx->tc) {
            n = (long) ngx_http_c1_tool_ran(ctx);
        }
        break;

    case NGX_HTTP_C1_VAR_TOOL_ROUNDS:
        if (ctx->tc) {
            n = (long) ctx->rounds;
        }
        break;

    case NGX_HTTP_C1_VAR_ERROR:
        if (ctx->error != NGX_HTTP_C1_ERR_NONE && ctx->err.code) {
            s.data = (u_char *) ctx->err.code;
            s.len = ngx_strlen(ctx->err.code);
        }
        break;
    }

    if (n >= 0) {
        p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        s.data = p;
        s.len = ngx_sprintf(p, "%l", n) - p;
    }

    if (s.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = s.data;
    v->len = s.len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/* the counters' zone and the log phase handler that feeds it */

ngx_int_t
ngx_http_c1_metrics_init(ngx_conf_t *cf)
{
    ngx_str_t                   name = ngx_string(NGX_HTTP_C1_METRICS_ZONE);
    ngx_shm_zone_t             *shm_zone;
    ngx_http_handler_pt        *h;
    ngx_http_c1_main_conf_t    *mcf;
    ngx_http_core_main_conf_t  *cmcf;

    /*
     * The zone is kept in this cycle's main conf, never in a static: a
     * reload that fails frees its cycle, and a worker started after it
     * must not find a pointer into it.
     */

    shm_zone = ngx_shared_memory_add(cf, &name, 16 * ngx_pagesize,
                                     &ngx_http_c1_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_c1_init_metrics_zone;
    shm_zone->data = (void *) 1;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_c1_module);
    mcf->metrics_zone = shm_zone;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_c1_log_handler;

    return NGX_OK;
}


static ngx_int_t
ngx_http_c1_init_metrics_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t        *shpool;
    ngx_http_c1_metrics_t  *m;

    if (data && data != (void *) 1) {
        shm_zone->data = data;          /* a reload: the counters go on */
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    m = ngx_slab_calloc(shpool, sizeof(ngx_http_c1_metrics_t));
    if (m == NULL) {
        return NGX_ERROR;
    }

    shpool->data = m;
    shm_zone->data = m;

    return NGX_OK;
}


/* this process's count of streams, its slot taken over if need be */

static ngx_atomic_t *
ngx_http_c1_active_streams(ngx_http_c1_metrics_t *m)
{
    ngx_http_c1_streams_t  *a;

    a = &m->active[ngx_process_slot];

    if (a->pid != (uint64_t) ngx_pid) {

        /* a process that had this slot is gone, and its streams too */

        a->streams = 0;
        a->start = ngx_http_c1_process_start(ngx_pid);
        a->pid = (uint64_t) ngx_pid;
    }

    return &a->streams;
}


static ngx_atomic_uint_t
ngx_http_c1_active_total(ngx_http_c1_metrics_t *m)
{
    ngx_uint_t             i;
    ngx_atomic_uint_t      n;
    c1_holder_t            p;

    n = 0;

    for (i = 0; i < NGX_MAX_PROCESSES; i++) {
        if (m->active[i].pid == 0 || m->active[i].streams == 0) {
            continue;
        }

        p.pid = m->active[i].pid;
        p.start = m->active[i].start;

        if (c1_history_holder_alive(&p)) {
            n += m->active[i].streams;
        }
    }

    return n;
}


/* a try failed and another follows */

void
ngx_http_c1_retried(ngx_http_request_t *r, ngx_uint_t reason)
{
    ngx_http_c1_metrics_t    *m;
    ngx_http_c1_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_c1_module);
    m = mcf->metrics_zone->data;

    (void) ngx_atomic_fetch_add(&m->retries[reason], 1);
}


/* a fallback model answered: its count, its name kept the first time */

static void
ngx_http_c1_fallback_counted(ngx_shm_zone_t *zone, ngx_http_c1_metrics_t *m,
    ngx_str_t *model)
{
    ngx_uint_t                  i;
    ngx_slab_pool_t            *shpool;
    ngx_http_c1_model_count_t  *f;

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    f = &m->fallbacks[NGX_HTTP_C1_FALLBACK_MODELS];   /* "other" */

    if (model->len < NGX_HTTP_C1_MODEL_LEN) {
        for (i = 0; i < NGX_HTTP_C1_FALLBACK_MODELS; i++) {
            if (m->fallbacks[i].len == 0) {
                f = &m->fallbacks[i];
                f->len = model->len;
                ngx_memcpy(f->name, model->data, model->len);
                break;
            }

            if (m->fallbacks[i].len == model->len
                && ngx_memcmp(m->fallbacks[i].name, model->data, model->len)
                   == 0)
            {
                f = &m->fallbacks[i];
                break;
            }
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    (void) ngx_atomic_fetch_add(&f->n, 1);
}


/* a tool call ended: its tool's row (or "unknown"), how, in what time */

void
ngx_http_c1_tool_counted(ngx_http_request_t *r, ngx_uint_t metric,
    ngx_uint_t outcome, ngx_msec_t ms, ngx_uint_t ran)
{
    ngx_http_c1_metrics_t    *m;
    ngx_http_c1_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_c1_module);
    m = mcf->metrics_zone->data;

    if (metric > NGX_HTTP_C1_TOOLS_MAX
        || outcome >= NGX_HTTP_C1_TOOL_OUTCOMES)
    {
        return;
    }

    (void) ngx_atomic_fetch_add(&m->tools[metric][outcome], 1);

    if (ran) {
        ngx_http_c1_observe(m->tool_latency, &m->tool_latency_sum, ms);
    }
}


/* a thread store failed an operation (unreachable, an error of its own) */

void
ngx_http_c1_store_failed(ngx_str_t *store, ngx_uint_t op)
{
    ngx_uint_t                  i;
    ngx_slab_pool_t            *shpool;
    ngx_shm_zone_t             *zone;
    ngx_http_c1_metrics_t      *m;
    ngx_http_c1_main_conf_t    *mcf;
    ngx_http_c1_store_count_t  *f;

    mcf = ngx_http_cycle_get_module_main_conf(ngx_cycle, ngx_http_c1_module);

    if (mcf == NULL || mcf->metrics_zone == NULL
        || op >= NGX_HTTP_C1_STORE_OPS || store->len >= NGX_HTTP_C1_MODEL_LEN)
    {
        return;
    }

    zone = mcf->metrics_zone;
    m = zone->data;
    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    f = NULL;

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < NGX_HTTP_C1_STORES; i++) {
        if (m->store_failures[i].len == 0) {
            f = &m->store_failures[i];
            f->len = store->len;
            ngx_memcpy(f->name, store->data, store->len);
            break;
        }

        if (m->store_failures[i].len == store->len
            && ngx_memcmp(m->store_failures[i].name, store->data, store->len)
               == 0)
        {
            f = &m->store_failures[i];
            break;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (f) {
        (void) ngx_atomic_fetch_add(&f->n[op], 1);
    }
}


void
ngx_http_c1_stream_started(ngx_http_request_t *r)
{
    ngx_http_c1_metrics_t    *m;
    ngx_http_c1_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_c1_module);
    m = mcf->metrics_zone->data;
    (void) ngx_atomic_fetch_add(ngx_http_c1_active_streams(m), 1);
}


/* once per request of a c1_pass location, however it ended */

static ngx_int_t
ngx_http_c1_log_handler(ngx_http_request_t *r)
{
    ngx_uint_t                outcome, mode;
    ngx_http_c1_ctx_t        *ctx;
    ngx_http_c1_metrics_t    *m;
    ngx_http_c1_main_conf_t  *mcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_c1_module);

    if (r != r->main || ctx == NULL) {
        return NGX_OK;
    }

    /* a client gone before the answer's end: the tokens spent till then */

    ngx_http_c1_limit_debit(r, ctx);

    if (ctx->counted || ctx->kind == NGX_HTTP_C1_KIND_THREAD_OP) {
        return NGX_OK;
    }

    ctx->counted = 1;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_c1_module);
    m = mcf->metrics_zone->data;

    /*
     * an error is the outcome it was given; else the request went well
     * only if its response ended and reached the client
     */

    if (ctx->outcome == NGX_HTTP_C1_OUTCOME_NONE) {
        ctx->outcome = (ctx->response.state == NGX_HTTP_C1_RESPONSE_ENDED
                        && !r->connection->error
                        && r->headers_out.status == NGX_HTTP_OK)
                       ? NGX_HTTP_C1_OUTCOME_OK
                       : NGX_HTTP_C1_OUTCOME_ABORTED;
    }

    outcome = ctx->outcome - NGX_HTTP_C1_OUTCOME_OK;

    mode = (ctx->mode == C1_MODE_PROMPT) ? 1
           : (ctx->mode == C1_MODE_OPENAI) ? 2 : 0;

    (void) ngx_atomic_fetch_add(&m->requests[mode][ctx->stream ? 1 : 0]
                                            [outcome], 1);

    if (ctx->prompt_tokens > 0) {
        (void) ngx_atomic_fetch_add(&m->prompt_tokens, ctx->prompt_tokens);
    }

    if (ctx->completion_tokens > 0) {
        (void) ngx_atomic_fetch_add(&m->completion_tokens,
                                    ctx->completion_tokens);
    }

    if (ctx->call.state == NGX_HTTP_C1_CALL_DONE) {
        ngx_http_c1_observe(m->latency, &m->latency_sum,
                            ctx->call.end_msec - ctx->tries_start);
    }

    if (ctx->first_msec) {
        ngx_http_c1_observe(m->ttft, &m->ttft_sum,
                            ctx->first_msec - ctx->tries_start);
    }

    if (ctx->response.stream) {
        (void) ngx_atomic_fetch_add(ngx_http_c1_active_streams(m),
                                    (ngx_atomic_int_t) -1);
    }

    if (ctx->fallback && ctx->outcome == NGX_HTTP_C1_OUTCOME_OK) {
        ngx_http_c1_fallback_counted(mcf->metrics_zone, m, &ctx->model);
    }

    return NGX_OK;
}


static void
ngx_http_c1_observe(ngx_atomic_t *buckets, ngx_atomic_t *sum, ngx_msec_t ms)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_C1_BUCKETS_N; i++) {
        if (ms <= ngx_http_c1_bounds[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&buckets[i], 1);
    (void) ngx_atomic_fetch_add(sum, ms);
}


char *
ngx_http_c1_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_c1_metrics_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_c1_metrics_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_uint_t                 i, n;
    ngx_http_c1_page_t         pg;
    ngx_http_c1_zone_t       **zones, *z;
    ngx_http_c1_metrics_t     *m;
    ngx_http_c1_zone_stat_t   *st;
    ngx_http_c1_main_conf_t   *mcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_c1_module);
    m = mcf->metrics_zone->data;

    /* each zone's figures at one moment, read under its lock */

    zones = mcf->zones.elts;
    n = mcf->zones.nelts;
    st = NULL;

    if (n) {
        st = ngx_palloc(r->pool, n * sizeof(ngx_http_c1_zone_stat_t));
        if (st == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    for (i = 0; i < n; i++) {
        z = zones[i];

        if (ngx_http_c1_label(r->pool, &z->name, &st[i].label) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_shmtx_lock(&z->shpool->mutex);

        st[i].value[0] = z->sh->threads;
        st[i].value[1] = z->sh->messages;
        st[i].value[2] = z->sh->bytes;
        st[i].value[3] = z->sh->evicted;
        st[i].value[4] = z->sh->expired;
        st[i].value[5] = z->sh->dropped;

        ngx_shmtx_unlock(&z->shpool->mutex);

        st[i].value[6] = z->size;
    }

    ngx_memzero(&pg, sizeof(ngx_http_c1_page_t));
    pg.pool = r->pool;
    pg.last = &pg.out;

    if (ngx_http_c1_page_write(&pg, m, st, n) != NGX_OK
        || ngx_http_c1_page_limits(&pg, &mcf->limit_zones) != NGX_OK
        || ngx_http_c1_page_tools(&pg, m, &mcf->tool_names) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    pg.b->last_buf = (r == r->main) ? 1 : 0;
    pg.b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    ngx_str_set(&r->headers_out.content_type, "text/plain; version=0.0.4");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_length_n = pg.size;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, pg.out);
}


/*
 * The Prometheus text format: each family once, its HELP and TYPE, then
 * all its samples (one per zone for the c1_history_* families).
 */

static ngx_int_t
ngx_http_c1_page_write(ngx_http_c1_page_t *pg, ngx_http_c1_metrics_t *m,
    ngx_http_c1_zone_stat_t *st, ngx_uint_t n)
{
    ngx_str_t              model, label;
    ngx_uint_t             i, j, k;
    ngx_http_c1_family_t  *f;

    if (ngx_http_c1_page_printf(pg, "# HELP c1_requests_total Requests of "
                                "c1_pass locations, by mode, streaming and "
                                "outcome.\n"
                                "# TYPE c1_requests_total counter\n")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < 3; i++) {
        for (j = 0; j < 2; j++) {
            for (k = 0; k < NGX_HTTP_C1_OUTCOMES; k++) {
                if (ngx_http_c1_page_printf(pg, "c1_requests_total{mode=\"%s\","
                                            "stream=\"%ui\",outcome=\"%s\"} "
                                            "%uA\n",
                                            ngx_http_c1_modes[i], j,
                                            ngx_http_c1_outcomes[k],
                                            m->requests[i][j][k])
                    != NGX_OK)
                {
                    return NGX_ERROR;
                }
            }
        }
    }

    if (ngx_http_c1_page_printf(pg, "# HELP c1_prompt_tokens_total Prompt "
                                "tokens, as C1 counted them.\n"
                                "# TYPE c1_prompt_tokens_total counter\n"
                                "c1_prompt_tokens_total %uA\n"
                                "# HELP c1_completion_tokens_total "
                                "Completion tokens, as C1 counted them.\n"
                                "# TYPE c1_completion_tokens_total counter\n"
                                "c1_completion_tokens_total %uA\n",
                                m->prompt_tokens, m->completion_tokens)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_c1_histogram(pg, "c1_upstream_latency_seconds",
                              "From the C1 call to the end of its answer.",
                              m->latency, &m->latency_sum)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_c1_histogram(pg, "c1_time_to_first_token_seconds",
                              "From the C1 call to the first byte of "
                              "its content.", m->ttft, &m->ttft_sum)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_c1_page_printf(pg, "# HELP c1_active_streams Streams being "
                                "relayed now.\n"
                                "# TYPE c1_active_streams gauge\n"
                                "c1_active_streams %uA\n",
                                ngx_http_c1_active_total(m))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_c1_page_printf(pg, "# HELP c1_retries_total Tries of C1 "
                                "that failed and were made again, by "
                                "reason.\n"
                                "# TYPE c1_retries_total counter\n")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < NGX_HTTP_C1_RETRY_REASONS; i++) {
        if (ngx_http_c1_page_printf(pg, "c1_retries_total{reason=\"%s\"} "
                                    "%uA\n", ngx_http_c1_reasons[i],
                                    m->retries[i])
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_c1_page_printf(pg, "# HELP c1_fallbacks_total Requests a "
                                "fallback model answered, by model.\n"
                                "# TYPE c1_fallbacks_total counter\n")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i <= NGX_HTTP_C1_FALLBACK_MODELS; i++) {
        if (m->fallbacks[i].n == 0) {
            continue;
        }

        model.data = m->fallbacks[i].name;
        model.len = m->fallbacks[i].len;

        if (i == NGX_HTTP_C1_FALLBACK_MODELS) {
            ngx_str_set(&label, "other");

        } else if (ngx_http_c1_label(pg->pool, &model, &label) != NGX_OK) {
            return NGX_ERROR;
        }

        if (ngx_http_c1_page_printf(pg, "c1_fallbacks_total{model=\"%V\"} "
                                    "%uA\n", &label, m->fallbacks[i].n)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_c1_page_printf(pg, "# HELP c1_history_store_failures_total "
                                "Operations a thread store failed, by store "
                                "and operation.\n"
                                "# TYPE c1_history_store_failures_total "
                                "counter\n")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < NGX_HTTP_C1_STORES; i++) {
        if (m->store_failures[i].len == 0) {
            break;
        }

        model.data = m->store_failures[i].name;
        model.len = m->store_failures[i].len;

        if (ngx_http_c1_label(pg->pool, &model, &label) != NGX_OK) {
            return NGX_ERROR;
        }

        for (j = 0; j < NGX_HTTP_C1_STORE_OPS; j++) {
            if (ngx_http_c1_page_printf(pg, "c1_history_store_failures_total"
                                        "{store=\"%V\",op=\"%s\"} %uA\n",
                                        &label, ngx_http_c1_store_ops[j],
                                        m->store_failures[i].n[j])
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }
    }

    if (n == 0) {
        return NGX_OK;
    }

    for (i = 0; i < sizeof(ngx_http_c1_history_families)
                    / sizeof(ngx_http_c1_family_t); i++)
    {
        f = &ngx_http_c1_history_families[i];

        if (ngx_http_c1_page_printf(pg, "# HELP %s %s\n# TYPE %s %s\n",
                                    f->name, f->help, f->name, f->type)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        for (j = 0; j < n; j++) {
            if (ngx_http_c1_page_printf(pg, "%s{zone=\"%V\"} %uL\n", f->name,
                                        &st[j].label, st[j].value[i])
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
}


/* the tools' families: every tool configured, "unknown" once counted */

static ngx_int_t
ngx_http_c1_page_tools(ngx_http_c1_page_t *pg, ngx_http_c1_metrics_t *m,
    ngx_array_t *names)
{
    ngx_str_t   *name, label;
    ngx_uint_t   i, j, n, seen;

    if (names->nelts == 0) {
        return NGX_OK;
    }

    name = names->elts;

    if (ngx_http_c1_page_printf(pg, "# HELP c1_tool_calls_total Tool calls "
                                "C1 asked for, by tool and outcome.\n"
                                "# TYPE c1_tool_calls_total counter\n")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    n = ngx_min(names->nelts, NGX_HTTP_C1_TOOLS_MAX);

    for (i = 0; i <= n; i++) {

        if (i == n) {
            for (j = 0, seen = 0; j < NGX_HTTP_C1_TOOL_OUTCOMES; j++) {
                seen += m->tools[NGX_HTTP_C1_TOOLS_MAX][j];
            }

            if (seen == 0) {
                break;
            }

            ngx_str_set(&label, "unknown");
            i = NGX_HTTP_C1_TOOLS_MAX;

        } else if (ngx_http_c1_label(pg->pool, &name[i], &label) != NGX_OK) {
            return NGX_ERROR;
        }

        for (j = 0; j < NGX_HTTP_C1_TOOL_OUTCOMES; j++) {
            if (ngx_http_c1_page_printf(pg, "c1_tool_calls_total{tool=\"%V\","
                                        "outcome=\"%s\"} %uA\n", &label,
                                        ngx_http_c1_tool_outcomes[j],
                                        m->tools[i][j])
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }
    }

    return ngx_http_c1_histogram(pg, "c1_tool_latency_seconds",
                                 "From a tool call to the end of its "
                                 "answer.", m->tool_latency,
                                 &m->tool_latency_sum);
}


/* the token limits' families, a sample per zone (and source) */

static ngx_int_t
ngx_http_c1_page_limits(ngx_http_c1_page_t *pg, ngx_array_t *zones)
{
    ngx_str_t                  *labels;
    ngx_uint_t                  i;
    ngx_http_c1_limit_zone_t  **z;

    if (zones->nelts == 0) {
        return NGX_OK;
    }

    z = zones->elts;

    labels = ngx_palloc(pg->pool, zones->nelts * sizeof(ngx_str_t));
    if (labels == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < zones->nelts; i++) {
        if (ngx_http_c1_label(pg->pool, &z[i]->name, &labels[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ngx_http_c1_page_printf(pg, "# HELP c1_limited_total Requests a "
                                "token limit refused, by zone.\n"
                                "# TYPE c1_limited_total counter\n")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < zones->nelts; i++) {
        if (ngx_http_c1_page_printf(pg, "c1_limited_total{zone=\"%V\"} "
                                    "%uA\n", &labels[i], z[i]->sh->limited)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_c1_page_printf(pg, "# HELP c1_limit_debited_tokens_total "
                                "Tokens debited from token limits, by zone "
                                "and source: C1's usage, or an estimate.\n"
                                "# TYPE c1_limit_debited_tokens_total "
                                "counter\n")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < zones->nelts; i++) {
        if (ngx_http_c1_page_printf(pg, "c1_limit_debited_tokens_total"
                                    "{zone=\"%V\",source=\"usage\"} %uA\n"
                                    "c1_limit_debited_tokens_total"
                                    "{zone=\"%V\",source=\"estimate\"} "
                                    "%uA\n", &labels[i], z[i]->sh->usage,
                                    &labels[i], z[i]->sh->estimate)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_c1_page_printf(pg, "# HELP c1_limit_keys Buckets (a key "
                                "under a unit and a count) a token limit "
                                "zone holds in its memory.\n"
                                "# TYPE c1_limit_keys gauge\n")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < zones->nelts; i++) {
        if (ngx_http_c1_page_printf(pg, "c1_limit_keys{zone=\"%V\"} %uA\n",
                                    &labels[i], z[i]->sh->keys)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_c1_page_printf(pg, "# HELP c1_limit_dropped_total Keys a "
                                "full token limit zone dropped, the least "
                                "recently used first.\n"
                                "# TYPE c1_limit_dropped_total counter\n")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < zones->nelts; i++) {
        if (ngx_http_c1_page_printf(pg, "c1_limit_dropped_total"
                                    "{zone=\"%V\"} %uA\n", &labels[i],
                                    z[i]->sh->dropped)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_c1_histogram(ngx_http_c1_page_t *pg, char *name, char *help,
    ngx_atomic_t *buckets, ngx_atomic_t *sum)
{
    ngx_uint_t         i;
    ngx_atomic_uint_t  total, s;

    if (ngx_http_c1_page_printf(pg, "# HELP %s %s\n# TYPE %s histogram\n",
                                name, help, name)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    total = 0;

    for (i = 0; i < NGX_HTTP_C1_BUCKETS_N; i++) {
        total += buckets[i];

        if (ngx_http_c1_page_printf(pg, "%s_bucket{le=\"%ui.%03ui\"} %uA\n",
                                    name, ngx_http_c1_bounds[i] / 1000,
                                    ngx_http_c1_bounds[i] % 1000, total)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    total += buckets[NGX_HTTP_C1_BUCKETS_N];
    s = *sum;

    return ngx_http_c1_page_printf(pg, "%s_bucket{le=\"+Inf\"} %uA\n"
                                   "%s_sum %uA.%03uA\n%s_count %uA\n",
                                   name, total, name, s / 1000, s % 1000,
                                   name, total);
}


/*
 * Appends to the page with ngx_vslprintf(), which never writes past the
 * end of its buffer.  A piece that does not fit where the page ends (or
 * fills it exactly: it may have been cut) is written again into a new
 * buffer, twice as large each time it does not fit an empty one (which
 * it replaces).
 */

static ngx_int_t
ngx_http_c1_page_printf(ngx_http_c1_page_t *pg, const char *fmt, ...)
{
    u_char       *p;
    size_t        size;
    va_list       args, copy;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    size = NGX_HTTP_C1_PAGE_BUF;
    b = pg->b;

    va_start(args, fmt);

    for ( ;; ) {

        if (b && b->last < b->end) {
            va_copy(copy, args);
            p = ngx_vslprintf(b->last, b->end, fmt, copy);
            va_end(copy);

            if (p < b->end) {
                pg->size += p - b->last;
                b->last = p;
                va_end(args);
                return NGX_OK;
            }

            if (b->last == b->start) {
                size = 2 * (size_t) (b->end - b->start);
            }
        }

        if (size > NGX_HTTP_C1_PAGE_PIECE_MAX) {
            ngx_log_error(NGX_LOG_ALERT, pg->pool->log, 0,
                          "c1: a piece of the metrics page is over %uz bytes",
                          (size_t) NGX_HTTP_C1_PAGE_PIECE_MAX);
            va_end(args);
            return NGX_ERROR;
        }

        /* a buffer left empty is replaced: no empty buffer in the chain */

        if (b == NULL || b->last > b->start) {
            cl = ngx_alloc_chain_link(pg->pool);
            if (cl == NULL) {
                va_end(args);
                return NGX_ERROR;
            }

            cl->next = NULL;
            *pg->last = cl;
            pg->last = &cl->next;
            pg->cl = cl;
        }

        b = ngx_create_temp_buf(pg->pool, size);
        if (b == NULL) {
            va_end(args);
            return NGX_ERROR;
        }

        pg->cl->buf = b;
        pg->b = b;
    }
}


/* a label value: \, " and newline escaped, as the text format wants */

static ngx_int_t
ngx_http_c1_label(ngx_pool_t *pool, ngx_str_t *value, ngx_str_t *label)
{
    u_char      *p;
    size_t       len;
    ngx_uint_t   i;

    len = value->len;

    for (i = 0; i < value->len; i++) {
        if (value->data[i] == '\\' || value->data[i] == '"'
            || value->data[i] == '\n')
        {
            len++;
        }
    }

    if (len == value->len) {
        *label = *value;
        return NGX_OK;
    }

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    label->data = p;
    label->len = len;

    for (i = 0; i < value->len; i++) {
        switch (value->data[i]) {

        case '\\':
        case '"':
            *p++ = '\\';
            *p++ = value->data[i];
            break;

        case '\n':
            *p++ = '\\';
            *p++ = 'n';
            break;

        default:
            *p++ = value->data[i];
        }
    }

    return NGX_OK;
}
