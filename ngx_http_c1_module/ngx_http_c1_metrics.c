
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


typedef struct {
    ngx_atomic_t   requests[3][2][NGX_HTTP_C1_OUTCOMES];
    ngx_atomic_t   prompt_tokens;
    ngx_atomic_t   completion_tokens;
    ngx_atomic_t   latency[NGX_HTTP_C1_BUCKETS_N + 1];
    ngx_atomic_t   latency_sum;                   /* ms */
    ngx_atomic_t   ttft[NGX_HTTP_C1_BUCKETS_N + 1];
    ngx_atomic_t   ttft_sum;                      /* ms */
    ngx_atomic_t   active_streams;
} ngx_http_c1_metrics_t;


static ngx_int_t ngx_http_c1_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_c1_init_metrics_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_c1_log_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_c1_metrics_handler(ngx_http_request_t *r);
static void ngx_http_c1_observe(ngx_atomic_t *buckets, ngx_atomic_t *sum,
    ngx_msec_t ms);
static u_char *ngx_http_c1_histogram(u_char *p, char *name, char *help,
    ngx_atomic_t *buckets, ngx_atomic_t *sum);


/* the upper bounds of the histograms' buckets, in ms */

static ngx_msec_t  ngx_http_c1_bounds[NGX_HTTP_C1_BUCKETS_N] = {
    50, 100, 250, 500, 1000, 2000, 3000, 5000, 10000, 20000, 30000, 60000
};

static char  *ngx_http_c1_outcomes[NGX_HTTP_C1_OUTCOMES] = {
    "ok", "invalid_request", "c1_error", "upstream_failure", "client_aborted"
};

static char  *ngx_http_c1_modes[3] = { "none", "prompt", "openai" };

static ngx_shm_zone_t  *ngx_http_c1_metrics_zone;


enum {
    NGX_HTTP_C1_VAR_MODEL = 0,
    NGX_HTTP_C1_VAR_PROMPT_TOKENS,
    NGX_HTTP_C1_VAR_COMPLETION_TOKENS,
    NGX_HTTP_C1_VAR_TOTAL_TOKENS,
    NGX_HTTP_C1_VAR_TTFT,
    NGX_HTTP_C1_VAR_UPSTREAM_TIME,
    NGX_HTTP_C1_VAR_STREAM,
    NGX_HTTP_C1_VAR_THREAD_ID,
    NGX_HTTP_C1_VAR_ERROR
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
            n = (long) (ctx->first_msec - ctx->call.start_msec);
        }
        break;

    case NGX_HTTP_C1_VAR_UPSTREAM_TIME:
        if (ctx->call.state == NGX_HTTP_C1_CALL_DONE) {
            n = (long) (ctx->call.end_msec - ctx->call.start_msec);
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
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    ngx_http_c1_metrics_zone = ngx_shared_memory_add(cf, &name,
                                                     16 * ngx_pagesize,
                                                     &ngx_http_c1_module);
    if (ngx_http_c1_metrics_zone == NULL) {
        return NGX_ERROR;
    }

    ngx_http_c1_metrics_zone->init = ngx_http_c1_init_metrics_zone;
    ngx_http_c1_metrics_zone->data = (void *) 1;

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


void
ngx_http_c1_stream_started(void)
{
    ngx_http_c1_metrics_t  *m;

    m = ngx_http_c1_metrics_zone->data;
    (void) ngx_atomic_fetch_add(&m->active_streams, 1);
}


/* once per request of a c1_pass location, however it ended */

static ngx_int_t
ngx_http_c1_log_handler(ngx_http_request_t *r)
{
    ngx_uint_t              outcome, mode;
    ngx_http_c1_ctx_t      *ctx;
    ngx_http_c1_metrics_t  *m;

    ctx = ngx_http_get_module_ctx(r, ngx_http_c1_module);

    if (r != r->main || ctx == NULL || ctx->counted
        || ctx->kind == NGX_HTTP_C1_KIND_THREAD_OP)
    {
        return NGX_OK;
    }

    ctx->counted = 1;

    m = ngx_http_c1_metrics_zone->data;

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
                            ctx->call.end_msec - ctx->call.start_msec);
    }

    if (ctx->first_msec) {
        ngx_http_c1_observe(m->ttft, &m->ttft_sum,
                            ctx->first_msec - ctx->call.start_msec);
    }

    if (ctx->response.stream) {
        (void) ngx_atomic_fetch_add(&m->active_streams, (ngx_atomic_int_t) -1);
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
    u_char                  *p, *start;
    size_t                   size;
    ngx_int_t                rc;
    ngx_buf_t               *b;
    ngx_uint_t               i, j, k, n;
    ngx_chain_t              out;
    ngx_http_c1_zone_t     **zones, *z;
    ngx_http_c1_metrics_t   *m;
    ngx_http_c1_main_conf_t *mcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    m = ngx_http_c1_metrics_zone->data;
    mcf = ngx_http_get_module_main_conf(r, ngx_http_c1_module);

    size = 16384 + mcf->zones.nelts * 1024;

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = b->pos;
    start = p;

    p = ngx_sprintf(p, "# HELP c1_requests_total Requests of c1_pass "
                    "locations, by mode, streaming and outcome.\n"
                    "# TYPE c1_requests_total counter\n");

    for (i = 0; i < 3; i++) {
        for (j = 0; j < 2; j++) {
            for (k = 0; k < NGX_HTTP_C1_OUTCOMES; k++) {
                p = ngx_sprintf(p, "c1_requests_total{mode=\"%s\","
                                "stream=\"%ui\",outcome=\"%s\"} %uA\n",
                                ngx_http_c1_modes[i], j,
                                ngx_http_c1_outcomes[k],
                                m->requests[i][j][k]);
            }
        }
    }

    p = ngx_sprintf(p, "# HELP c1_prompt_tokens_total Prompt tokens, as C1 "
                    "counted them.\n"
                    "# TYPE c1_prompt_tokens_total counter\n"
                    "c1_prompt_tokens_total %uA\n"
                    "# HELP c1_completion_tokens_total Completion tokens, "
                    "as C1 counted them.\n"
                    "# TYPE c1_completion_tokens_total counter\n"
                    "c1_completion_tokens_total %uA\n",
                    m->prompt_tokens, m->completion_tokens);

    p = ngx_http_c1_histogram(p, "c1_upstream_latency_seconds",
                              "From the C1 call to the end of its answer.",
                              m->latency, &m->latency_sum);

    p = ngx_http_c1_histogram(p, "c1_time_to_first_token_seconds",
                              "From the C1 call to the first byte of "
                              "its content.", m->ttft, &m->ttft_sum);

    p = ngx_sprintf(p, "# HELP c1_active_streams Streams being relayed "
                    "now.\n"
                    "# TYPE c1_active_streams gauge\n"
                    "c1_active_streams %uA\n", m->active_streams);

    zones = mcf->zones.elts;
    n = mcf->zones.nelts;

    if (n) {
        p = ngx_sprintf(p, "# HELP c1_history_threads Threads kept.\n"
                        "# TYPE c1_history_threads gauge\n");
    }

    for (i = 0; i < n; i++) {
        z = zones[i];

        ngx_shmtx_lock(&z->shpool->mutex);

        p = ngx_sprintf(p, "c1_history_threads{zone=\"%V\"} %uL\n"
                        "c1_history_messages{zone=\"%V\"} %uL\n"
                        "c1_history_bytes{zone=\"%V\"} %uL\n"
                        "c1_history_evicted_total{zone=\"%V\"} %uL\n"
                        "c1_history_expired_total{zone=\"%V\"} %uL\n"
                        "c1_history_dropped_total{zone=\"%V\"} %uL\n"
                        "c1_history_zone_size_bytes{zone=\"%V\"} %uz\n",
                        &z->name, z->sh->threads, &z->name, z->sh->messages,
                        &z->name, z->sh->bytes, &z->name, z->sh->evicted,
                        &z->name, z->sh->expired, &z->name, z->sh->dropped,
                        &z->name, z->size);

        ngx_shmtx_unlock(&z->shpool->mutex);
    }

    b->last = p;
    b->last_buf = 1;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    ngx_str_set(&r->headers_out.content_type, "text/plain; version=0.0.4");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_length_n = p - start;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static u_char *
ngx_http_c1_histogram(u_char *p, char *name, char *help,
    ngx_atomic_t *buckets, ngx_atomic_t *sum)
{
    ngx_uint_t        i;
    ngx_atomic_uint_t  total;

    p = ngx_sprintf(p, "# HELP %s %s\n# TYPE %s histogram\n", name, help,
                    name);

    total = 0;

    for (i = 0; i < NGX_HTTP_C1_BUCKETS_N; i++) {
        total += buckets[i];
        p = ngx_sprintf(p, "%s_bucket{le=\"%ui.%03ui\"} %uA\n", name,
                        ngx_http_c1_bounds[i] / 1000,
                        ngx_http_c1_bounds[i] % 1000, total);
    }

    total += buckets[NGX_HTTP_C1_BUCKETS_N];

    return ngx_sprintf(p, "%s_bucket{le=\"+Inf\"} %uA\n"
                       "%s_sum %uA.%03uA\n%s_count %uA\n",
                       name, total, name, *sum / 1000, *sum % 1000,
                       name, total);
}
