
/*
 * ngx_http_c1_module: directives, the content handler, and the C1 call
 * made as a POST subrequest to the internal location named by c1_pass.
 */


#include "ngx_http_c1_module.h"


static ngx_int_t ngx_http_c1_handler(ngx_http_request_t *r);
static void ngx_http_c1_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_c1_thread_request(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx, ngx_http_c1_loc_conf_t *lcf);
static ngx_int_t ngx_http_c1_read_body(ngx_http_request_t *r,
    ngx_str_t *body);
static ngx_int_t ngx_http_c1_subrequest(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx, ngx_http_c1_loc_conf_t *lcf, c1_request_t *req,
    ngx_str_t *key);
static ngx_int_t ngx_http_c1_post_subrequest(ngx_http_request_t *sr,
    void *data, ngx_int_t rc);
static void ngx_http_c1_deadline(ngx_event_t *ev);
static void ngx_http_c1_resume(ngx_http_request_t *r);
static ngx_int_t ngx_http_c1_respond(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx);
static ngx_int_t ngx_http_c1_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, u_char *data, size_t len);
static ngx_table_elt_t *ngx_http_c1_push_header(ngx_http_request_t *r,
    ngx_list_t *list, char *name, ngx_str_t *value);
static ngx_int_t ngx_http_c1_add_header(ngx_http_request_t *r, char *name,
    char *value);
static void ngx_http_c1_cleanup(void *data);

static ngx_int_t ngx_http_c1_init(ngx_conf_t *cf);
static void *ngx_http_c1_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_c1_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_c1_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_c1_pass(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_c1_set_value(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_c1_set_double(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_c1_set_max_tokens(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_c1_stop(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


#define NGX_HTTP_C1_MAX_TOKENS  10000000


typedef struct {
    double  min;
    double  max;
} ngx_http_c1_bounds_t;


static ngx_http_c1_bounds_t  ngx_http_c1_temperature_bounds = { 0, 2 };
static ngx_http_c1_bounds_t  ngx_http_c1_top_p_bounds = { 0, 1 };



static ngx_command_t  ngx_http_c1_commands[] = {

    { ngx_string("c1_pass"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_c1_pass,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("c1_api_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_c1_set_value,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_c1_loc_conf_t, api_key),
      NULL },

    { ngx_string("c1_model"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_c1_set_value,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_c1_loc_conf_t, model),
      NULL },

    { ngx_string("c1_system_prompt"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_c1_set_value,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_c1_loc_conf_t, system_prompt),
      NULL },

    { ngx_string("c1_temperature"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_c1_set_double,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_c1_loc_conf_t, temperature),
      &ngx_http_c1_temperature_bounds },

    { ngx_string("c1_top_p"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_c1_set_double,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_c1_loc_conf_t, top_p),
      &ngx_http_c1_top_p_bounds },

    { ngx_string("c1_max_tokens"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_c1_set_max_tokens,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_c1_loc_conf_t, max_tokens),
      NULL },

    { ngx_string("c1_stop"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_c1_stop,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("c1_stream"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_c1_loc_conf_t, stream),
      NULL },

    { ngx_string("c1_history_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_c1_history_zone,
      0,
      0,
      NULL },

    { ngx_string("c1_history"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_c1_history,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("c1_stream_usage"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_c1_loc_conf_t, stream_usage),
      NULL },

    { ngx_string("c1_stream_max_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_c1_loc_conf_t, stream_max_size),
      NULL },

    { ngx_string("c1_stream_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_c1_loc_conf_t, stream_timeout),
      NULL },

    { ngx_string("c1_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_c1_metrics,
      0,
      0,
      NULL },

    { ngx_string("c1_max_response_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_c1_loc_conf_t, max_response_size),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_c1_module_ctx = {
    ngx_http_c1_add_variables,             /* preconfiguration */
    ngx_http_c1_init,                      /* postconfiguration */

    ngx_http_c1_create_main_conf,          /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_c1_create_loc_conf,           /* create location configuration */
    ngx_http_c1_merge_loc_conf             /* merge location configuration */
};


ngx_module_t  ngx_http_c1_module = {
    NGX_MODULE_V1,
    &ngx_http_c1_module_ctx,               /* module context */
    ngx_http_c1_commands,                  /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_str_t  ngx_http_c1_post = ngx_string("POST");
static ngx_str_t  ngx_http_c1_type_json = ngx_string("application/json");
static ngx_str_t  ngx_http_c1_type_text =
    ngx_string("text/plain; charset=utf-8");


ngx_http_c1_ctx_t *
ngx_http_c1_get_ctx(ngx_http_request_t *r)
{
    ngx_http_c1_ctx_t   *ctx;
    ngx_pool_cleanup_t  *cln;

    ctx = ngx_http_get_module_ctx(r, ngx_http_c1_module);
    if (ctx != NULL) {
        return ctx;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_c1_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_c1_cleanup;
    cln->data = ctx;

    ctx->prompt_tokens = -1;
    ctx->completion_tokens = -1;
    ctx->total_tokens = -1;

    ngx_http_set_ctx(r, ctx, ngx_http_c1_module);

    return ctx;
}


static void
ngx_http_c1_cleanup(void *data)
{
    ngx_http_c1_ctx_t  *ctx = data;

    if (ctx->buf) {
        ngx_free(ctx->buf);
        ctx->buf = NULL;
    }

    if (ctx->deadline.timer_set) {
        ngx_del_timer(&ctx->deadline);
    }

    c1_relay_free(&ctx->relay);
    c1_buf_free(&ctx->answer);
}


static ngx_int_t
ngx_http_c1_handler(ngx_http_request_t *r)
{
    u_char                  *p, *last;
    ngx_int_t                rc;
    ngx_str_t                type;
    c1_error_t               err;
    ngx_http_c1_ctx_t       *ctx;
    ngx_http_c1_loc_conf_t  *lcf;

    if (r != r->main) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "c1: a c1_pass location cannot serve a subrequest");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx = ngx_http_c1_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_c1_module);

    if (lcf->history && (r->method & (NGX_HTTP_GET|NGX_HTTP_DELETE))) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_c1_thread_request(r, ctx, lcf);
    }

    if (r->method != NGX_HTTP_POST) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        if (ngx_http_c1_add_header(r, "Allow", lcf->history
                                              ? "GET, POST, DELETE" : "POST")
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (lcf->history) {
            c1_error_set(&err, NGX_HTTP_NOT_ALLOWED, "invalid_request_error",
                         "method_not_allowed", NULL,
                         "this endpoint takes POST, and GET or DELETE of "
                         "a thread");

        } else {
            c1_error_set(&err, NGX_HTTP_NOT_ALLOWED, "invalid_request_error",
                         "method_not_allowed", NULL,
                         "this endpoint only takes POST requests");
        }

        return ngx_http_c1_send_error(r, &err);
    }

    ctx->mode = 0;

    /* a missing Content-Type is taken for JSON */

    if (r->headers_in.content_type) {
        type = r->headers_in.content_type->value;

        last = ngx_strlchr(type.data, type.data + type.len, ';');
        if (last == NULL) {
            last = type.data + type.len;
        }

        while (last > type.data && (last[-1] == ' ' || last[-1] == '\t')) {
            last--;
        }

        for (p = type.data; p < last && (*p == ' ' || *p == '\t'); p++) {
            /* void */
        }

        type.len = last - p;
        type.data = p;

        if (type.len == sizeof("text/plain") - 1
            && ngx_strncasecmp(type.data, (u_char *) "text/plain",
                               type.len) == 0)
        {
            ctx->mode = C1_MODE_PROMPT;

        } else if (!(type.len == sizeof("application/json") - 1
                     && ngx_strncasecmp(type.data,
                                        (u_char *) "application/json",
                                        type.len) == 0))
        {
            rc = ngx_http_discard_request_body(r);
            if (rc != NGX_OK) {
                return rc;
            }

            c1_error_set(&err, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                         "invalid_request_error", "unsupported_media_type",
                         NULL, "the request body must be application/json "
                         "or text/plain");

            return ngx_http_c1_send_error(r, &err);
        }
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_c1_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_c1_body_handler(ngx_http_request_t *r)
{
    int                      rc;
    size_t                   nturns;
    ngx_str_t                body, model, system_prompt, key;
    ngx_uint_t               i;
    c1_turn_t               *turns;
    c1_error_t               err;
    c1_request_t             req;
    c1_settings_t            s;
    ngx_str_t               *stop;
    ngx_http_c1_ctx_t       *ctx;
    ngx_http_c1_loc_conf_t  *lcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_c1_module);
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_c1_module);

    if (ngx_http_c1_read_body(r, &body) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_str_null(&system_prompt);
    ngx_str_null(&key);

    if (ngx_http_complex_value(r, lcf->model, &model) != NGX_OK
        || (lcf->system_prompt
            && ngx_http_complex_value(r, lcf->system_prompt, &system_prompt)
               != NGX_OK)
        || (lcf->api_key
            && ngx_http_complex_value(r, lcf->api_key, &key) != NGX_OK))
    {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (model.len == 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "c1: \"c1_model\" evaluated to an empty string");

        c1_error_set(&err, NGX_HTTP_INTERNAL_SERVER_ERROR, "server_error",
                     "no_model", NULL, "no C1 model is configured");
        ngx_http_finalize_request(r, ngx_http_c1_send_error(r, &err));
        return;
    }

    ngx_memzero(&s, sizeof(c1_settings_t));

    s.model.data = model.data;
    s.model.len = model.len;
    s.system_prompt.data = system_prompt.data;
    s.system_prompt.len = system_prompt.len;

    if (lcf->temperature >= 0) {
        s.has_temperature = 1;
        s.temperature = lcf->temperature;
    }

    if (lcf->top_p >= 0) {
        s.has_top_p = 1;
        s.top_p = lcf->top_p;
    }

    if (lcf->max_tokens != NGX_CONF_UNSET) {
        s.has_max_tokens = 1;
        s.max_tokens = lcf->max_tokens;
    }

    if (lcf->stop) {
        stop = lcf->stop->elts;

        for (i = 0; i < lcf->stop->nelts; i++) {
            s.stop[i].data = stop[i].data;
            s.stop[i].len = stop[i].len;
        }

        s.nstop = lcf->stop->nelts;
    }

    s.stream = lcf->stream ? 1 : 0;
    s.stream_usage = lcf->stream_usage ? 1 : 0;
    s.history = lcf->history ? 1 : 0;

    ctx->model = model;

    rc = c1_request_parse(body.data, body.len,
                          ctx->mode == C1_MODE_PROMPT ? C1_BODY_TEXT
                                                      : C1_BODY_JSON,
                          &s, &req, &err);

    if (rc == C1_ERROR) {
        c1_request_free(&req);
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "c1: bad request: %s", err.message);
        ngx_http_finalize_request(r, ngx_http_c1_send_error(r, &err));
        return;
    }

    turns = NULL;
    nturns = 0;

    if (rc == C1_OK && req.thread_id_len && lcf->history) {

        ctx->thread_id.len = req.thread_id_len;
        ctx->thread_id.data = ngx_pstrdup(r->pool, &(ngx_str_t) {
                                              req.thread_id_len,
                                              (u_char *) req.thread_id });
        ctx->prompt.len = req.prompt_len;
        ctx->prompt.data = ngx_pstrdup(r->pool, &(ngx_str_t) {
                                           req.prompt_len,
                                           (u_char *) req.prompt });

        if (ctx->thread_id.data == NULL || ctx->prompt.data == NULL) {
            rc = C1_NOMEM;

        } else {
            switch (ngx_http_c1_thread_begin(r, ctx, lcf->history, &req,
                                             &turns, &nturns))
            {
            case NGX_OK:
            case NGX_DECLINED:
                break;

            case NGX_BUSY:
                c1_request_free(&req);
                c1_error_set(&err, NGX_HTTP_CONFLICT,
                             "invalid_request_error", "thread_busy",
                             "threadId", "a turn is already running on "
                             "this thread");
                ngx_http_finalize_request(r, ngx_http_c1_send_error(r, &err));
                return;

            default:
                rc = C1_NOMEM;
            }
        }
    }

    if (rc == C1_OK) {
        rc = c1_request_render(&req, &s, turns, nturns);
    }

    if (rc != C1_OK) {
        c1_request_free(&req);
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->mode = req.mode;
    ctx->stream = req.stream;

    rc = ngx_http_c1_subrequest(r, ctx, lcf, &req, &key);

    c1_request_free(&req);

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    r->write_event_handler = ngx_http_c1_resume;
}


/* GET or DELETE of a thread: ?threadId=ID */

static ngx_int_t
ngx_http_c1_thread_request(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    ngx_http_c1_loc_conf_t *lcf)
{
    ngx_int_t   rc;
    ngx_str_t   json;
    c1_error_t  err;

    ctx->thread_op = 1;

    if (r->method == NGX_HTTP_GET) {
        rc = ngx_http_c1_thread_get(r, lcf->history, &json);

    } else {
        rc = ngx_http_c1_thread_delete(r, lcf->history);

        if (rc == NGX_OK) {
            ngx_str_set(&json, "{\"deleted\":true}");
        }
    }

    switch (rc) {

    case NGX_OK:
        ctx->own = 1;

        return ngx_http_c1_send(r, NGX_HTTP_OK, &ngx_http_c1_type_json,
                                json.data, json.len);

    case NGX_HTTP_BAD_REQUEST:
        c1_error_set(&err, rc, "invalid_request_error", "invalid_thread_id",
                     "threadId", "\"threadId\" must be 1 to 128 printable "
                     "ASCII characters");
        break;

    case NGX_HTTP_NOT_FOUND:
        c1_error_set(&err, rc, "invalid_request_error", "thread_not_found",
                     "threadId", "no such thread");
        break;

    case NGX_HTTP_CONFLICT:
        c1_error_set(&err, rc, "invalid_request_error", "thread_busy",
                     "threadId", "a turn is running on this thread");
        break;

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_c1_send_error(r, &err);
}


/* the whole client body in one piece, read back from a temp file if need be */

static ngx_int_t
ngx_http_c1_read_body(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char       *p;
    size_t        len;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    ngx_str_null(body);

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;
        len += b->in_file ? (size_t) (b->file_last - b->file_pos)
                          : (size_t) (b->last - b->pos);
    }

    if (len == 0) {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;
    body->len = len;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (!b->in_file) {

            /* the last buffer of a chunked body may be empty, pos NULL */

            if (b->last > b->pos) {
                p = ngx_cpymem(p, b->pos, b->last - b->pos);
            }

            continue;
        }

        len = (size_t) (b->file_last - b->file_pos);

        n = ngx_read_file(b->file, p, len, b->file_pos);

        if (n != (ssize_t) len) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "c1: could not read the request body back from "
                          "\"%V\"", &b->file->name);
            return NGX_ERROR;
        }

        p += len;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_c1_subrequest(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    ngx_http_c1_loc_conf_t *lcf, c1_request_t *req, ngx_str_t *key)
{
    u_char                      *p;
    ngx_buf_t                   *b;
    ngx_str_t                   *args, value, server;
    ngx_chain_t                 *cl;
    ngx_http_request_t          *sr;
    ngx_http_request_body_t     *rb;
    ngx_http_post_subrequest_t  *ps;

    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    if (ps == NULL) {
        return NGX_ERROR;
    }

    ps->handler = ngx_http_c1_post_subrequest;
    ps->data = ctx;

    args = lcf->pass_args.len ? &lcf->pass_args : NULL;

    if (ngx_http_subrequest(r, &lcf->pass, args, &sr, ps, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->sr = sr;
    ctx->start_msec = ngx_current_msec;

    if (ctx->stream && lcf->stream_timeout) {
        ctx->deadline.handler = ngx_http_c1_deadline;
        ctx->deadline.data = ctx;
        ctx->deadline.log = r->connection->log;
        ngx_add_timer(&ctx->deadline, lcf->stream_timeout);
    }

    sr->method = NGX_HTTP_POST;
    sr->method_name = ngx_http_c1_post;
    sr->header_only = 0;
    sr->filter_need_in_memory = 1;

    /* headers of our own: nothing of the client's reaches C1 */

    server = sr->headers_in.server;
    ngx_memzero(&sr->headers_in, sizeof(ngx_http_headers_in_t));
    sr->headers_in.server = server;
    sr->headers_in.content_length_n = req->len;
    sr->headers_in.keep_alive_n = -1;

    if (ngx_list_init(&sr->headers_in.headers, r->pool, 4,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    sr->headers_in.content_type = ngx_http_c1_push_header(r,
                                          &sr->headers_in.headers,
                                          "Content-Type",
                                          &ngx_http_c1_type_json);
    if (sr->headers_in.content_type == NULL) {
        return NGX_ERROR;
    }

    if (key->len) {
        value.len = sizeof("Bearer ") - 1 + key->len;
        value.data = ngx_pnalloc(r->pool, value.len);
        if (value.data == NULL) {
            return NGX_ERROR;
        }

        p = ngx_cpymem(value.data, "Bearer ", sizeof("Bearer ") - 1);
        ngx_memcpy(p, key->data, key->len);

        sr->headers_in.authorization = ngx_http_c1_push_header(r,
                                               &sr->headers_in.headers,
                                               "Authorization", &value);
        if (sr->headers_in.authorization == NULL) {
            return NGX_ERROR;
        }
    }

    if (ctx->stream) {
        ngx_str_set(&value, "text/event-stream");

    } else {
        value = ngx_http_c1_type_json;
    }

    if (ngx_http_c1_push_header(r, &sr->headers_in.headers, "Accept", &value)
        == NULL)
    {
        return NGX_ERROR;
    }

    /* the body: one buffer in memory */

    rb = ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t));
    if (rb == NULL) {
        return NGX_ERROR;
    }

    b = ngx_create_temp_buf(r->pool, req->len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_cpymem(b->pos, req->body, req->len);
    b->last_buf = 1;

    cl = ngx_alloc_chain_link(r->pool);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->buf = b;
    cl->next = NULL;

    rb->bufs = cl;
    rb->buf = b;

    sr->request_body = rb;
    sr->request_body_no_buffering = 0;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "c1: subrequest to \"%V\", %uz bytes", &lcf->pass,
                   req->len);

    return NGX_OK;
}


static ngx_table_elt_t *
ngx_http_c1_push_header(ngx_http_request_t *r, ngx_list_t *list, char *name,
    ngx_str_t *value)
{
    size_t            len;
    ngx_table_elt_t  *h;

    h = ngx_list_push(list);
    if (h == NULL) {
        return NULL;
    }

    len = ngx_strlen(name);

    h->key.data = (u_char *) name;
    h->key.len = len;
    h->value = *value;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    h->lowcase_key = ngx_pnalloc(r->pool, len);
    if (h->lowcase_key == NULL) {
        return NULL;
    }

    h->hash = ngx_hash_strlow(h->lowcase_key, h->key.data, len);

    return h;
}


/*
 * c1_stream_timeout: C1 still streams.  Its connection is timed out the
 * way nginx times out a slow upstream, so that the proxy module ends the
 * call and the client's stream ends with an error.
 */

static void
ngx_http_c1_deadline(ngx_event_t *ev)
{
    ngx_http_c1_ctx_t *ctx = ev->data;

    ngx_connection_t     *c;
    ngx_http_upstream_t  *u;

    u = ctx->sr->upstream;

    if (ctx->sr->done || u == NULL || u->peer.connection == NULL) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                  "c1: C1's stream ran over c1_stream_timeout");

    ctx->over_time = 1;

    c = u->peer.connection;
    c->read->timedout = 1;
    ngx_post_event(c->read, &ngx_posted_events);
}


/* a response header of our own */

static ngx_int_t
ngx_http_c1_add_header(ngx_http_request_t *r, char *name, char *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value.data = (u_char *) value;
    h->value.len = ngx_strlen(value);
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


static ngx_int_t
ngx_http_c1_post_subrequest(ngx_http_request_t *sr, void *data, ngx_int_t rc)
{
    ngx_http_c1_ctx_t  *ctx = data;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "c1: subrequest done, rc:%i", rc);

    if (ctx->sr_rc == 0 && rc != NGX_OK && rc != NGX_AGAIN
        && rc != NGX_DONE)
    {
        ctx->sr_rc = rc;
    }

    /*
     * C1 failed after its header (a reset, a timeout, an answer over the
     * bound): nginx would close the client's connection; go on instead and
     * answer an error of our own, unless the client itself is gone.
     */

    if (ctx->aborted) {

        /*
         * our body filter stopped C1 (an answer over the bound); nginx
         * marked the connection failed for that alone
         */

        ctx->aborted = 0;
        sr->connection->error = 0;
        return NGX_OK;
    }

    if (rc == NGX_ERROR && !sr->connection->error) {
        ctx->broken = 1;
        return NGX_OK;
    }

    return rc;
}


static void
ngx_http_c1_resume(ngx_http_request_t *r)
{
    ngx_http_c1_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_c1_module);

    if (ctx == NULL || ctx->sr == NULL || !ctx->sr->done || ctx->answered) {
        return;
    }

    ctx->answered = 1;
    ctx->end_msec = ngx_current_msec;

    if (ctx->deadline.timer_set) {
        ngx_del_timer(&ctx->deadline);
    }

    ngx_http_finalize_request(r, ngx_http_c1_respond(r, ctx));
}


static ngx_int_t
ngx_http_c1_respond(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    int                  rc;
    c1_error_t           err;
    c1_answer_t          answer;
    ngx_pool_cleanup_t  *cln;

    if (ctx->streaming) {
        return ngx_http_c1_finish_stream(r, ctx);
    }

    if (ctx->too_large) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "c1: C1's answer is larger than "
                      "\"c1_max_response_size\"");

        c1_error_set(&err, NGX_HTTP_BAD_GATEWAY, "upstream_error",
                     "answer_too_large", NULL,
                     "C1's answer is larger than this server accepts");
        return ngx_http_c1_send_error(r, &err);
    }

    if (ctx->sr_rc >= NGX_HTTP_SPECIAL_RESPONSE || !ctx->header_seen
        || ctx->broken)
    {
        /* the call failed in nginx: unreachable, timed out, cut short */

        if (ctx->sr_rc == NGX_HTTP_GATEWAY_TIME_OUT
            || ctx->status == NGX_HTTP_GATEWAY_TIME_OUT)
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "c1: C1 did not answer in time");

            c1_error_set(&err, NGX_HTTP_GATEWAY_TIME_OUT, "upstream_error",
                         "c1_timeout", NULL, "C1 did not answer in time");

        } else {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          ctx->broken ? "c1: C1's answer broke off"
                                      : "c1: C1 could not be reached");

            c1_error_set(&err, NGX_HTTP_BAD_GATEWAY, "upstream_error",
                         "c1_unreachable", NULL,
                         ctx->broken ? "C1's answer broke off"
                                     : "C1 could not be reached");
        }

        return ngx_http_c1_send_error(r, &err);
    }

    if (ctx->status < 200 || ctx->status >= 300) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "c1: C1 answered HTTP %ui", ctx->status);

        if (ctx->status < 400 || ctx->status > 599) {
            c1_error_set(&err, NGX_HTTP_BAD_GATEWAY, "upstream_error",
                         "bad_upstream_answer", NULL,
                         "C1 answered HTTP %d", (int) ctx->status);
            return ngx_http_c1_send_error(r, &err);
        }

        ctx->c1_status = 1;

        if (c1_upstream_error(ctx->status, ctx->buf, ctx->len, &err) == C1_OK)
        {
            /* already an OpenAI-style error: as C1 sent it */
            ctx->own = 1;
            ctx->error_code = "c1_error";
            return ngx_http_c1_send(r, ctx->status, &ngx_http_c1_type_json,
                                    ctx->buf, ctx->len);
        }

        return ngx_http_c1_send_error(r, &err);
    }

    rc = c1_answer_extract(ctx->buf, ctx->len, ctx->mode, &answer, &err);

    if (rc == C1_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "c1: %s", err.message);
        return ngx_http_c1_send_error(r, &err);
    }

    if (rc != C1_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->own = 1;
    ctx->prompt_tokens = answer.prompt_tokens;
    ctx->completion_tokens = answer.completion_tokens;
    ctx->total_tokens = answer.total_tokens;

    if (ctx->mode == C1_MODE_OPENAI) {
        return ngx_http_c1_send(r, NGX_HTTP_OK, &ngx_http_c1_type_json,
                                ctx->buf, ctx->len);
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        c1_free(answer.content);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = c1_free;
    cln->data = answer.content;

    ngx_http_c1_thread_commit(r, ctx, (u_char *) answer.content,
                              answer.content_len);

    return ngx_http_c1_send(r, NGX_HTTP_OK, &ngx_http_c1_type_text,
                            (u_char *) answer.content, answer.content_len);
}


/* the client's header for a relayed stream, sent with its first piece */

ngx_int_t
ngx_http_c1_start_stream(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    ngx_int_t  rc;

    ctx->own = 1;
    ctx->started = 1;

    ngx_http_c1_stream_started();

    r->headers_out.status = NGX_HTTP_OK;
    ngx_str_set(&r->headers_out.content_type, "text/event-stream");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = -1;

    if (ngx_http_c1_add_header(r, "Cache-Control", "no-cache, no-transform")
        != NGX_OK
        || ngx_http_c1_add_header(r, "X-Accel-Buffering", "no") != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * C1's stream is over.  If the client has had nothing yet, it gets a
 * status of its own (an error before any content is a plain JSON error);
 * otherwise its stream ends: with [DONE] or an error event in OpenAI mode,
 * and, for a prompt stream that failed, by closing the connection without
 * the last chunk, so that the client sees the answer was cut.
 */

ngx_int_t
ngx_http_c1_finish_stream(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    size_t        len;
    ngx_buf_t    *b;
    c1_error_t    err, *e;
    ngx_chain_t   out;

    e = NULL;

    if (ctx->relay.failed) {
        e = &ctx->relay.err;

    } else if (ctx->over_size || ctx->over_time) {
        e = &err;
        c1_error_set(e, NGX_HTTP_BAD_GATEWAY, "upstream_error",
                     "stream_limit", NULL, "C1's stream ran over %s",
                     ctx->over_size ? "c1_stream_max_size"
                                    : "c1_stream_timeout");

    } else if (!ctx->ended) {
        e = &err;

        if (ctx->sr_rc == NGX_HTTP_GATEWAY_TIME_OUT) {
            c1_error_set(e, NGX_HTTP_GATEWAY_TIME_OUT, "upstream_error",
                         "c1_timeout", NULL, "C1 did not answer in time");

        } else {
            c1_error_set(e, NGX_HTTP_BAD_GATEWAY, "upstream_error",
                         "c1_stream_broken", NULL, "C1's stream broke off");
        }

    } else if (!ctx->started && ctx->relay.events == 0) {
        e = &err;
        c1_error_set(e, NGX_HTTP_BAD_GATEWAY, "upstream_error",
                     "bad_upstream_stream", NULL,
                     "C1's stream ended without any event");
    }

    ctx->finished = 1;
    ctx->prompt_tokens = ctx->relay.prompt_tokens;
    ctx->completion_tokens = ctx->relay.completion_tokens;
    ctx->total_tokens = ctx->relay.total_tokens;

    if (e) {
        ctx->error_code = e->code;

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "c1: %s%s",
                      e->message, ctx->started ? ", after the client's "
                                                 "stream began" : "");
    }

    if (e == NULL && ctx->thread) {
        if (ctx->answer_lost) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "c1: the answer is larger than "
                          "\"c1_max_response_size\": this turn of thread "
                          "\"%V\" was not kept", &ctx->thread_id);

        } else {
            ngx_http_c1_thread_commit(r, ctx, ctx->answer.data,
                                      ctx->answer.len);
        }
    }

    if (!ctx->started) {
        if (e) {
            return ngx_http_c1_send_error(r, e);
        }

        if (ngx_http_c1_start_stream(r, ctx) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (e && ctx->mode == C1_MODE_PROMPT) {
        r->keepalive = 0;
        return NGX_ERROR;
    }

    if (c1_relay_close(&ctx->relay, e) != C1_OK) {
        return NGX_ERROR;
    }

    len = ctx->relay.out.len;

    b = len ? ngx_create_temp_buf(r->pool, len) : ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    if (len) {
        b->last = ngx_cpymem(b->pos, ctx->relay.out.data, len);
        ctx->relay.out.len = 0;
    }

    b->last_buf = 1;
    b->flush = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_c1_error_json(ngx_http_request_t *r, c1_error_t *err,
    ngx_str_t *json)
{
    char  *out;
    size_t len;

    out = c1_error_render(err, &len);
    if (out == NULL) {
        return NGX_ERROR;
    }

    json->data = ngx_pnalloc(r->pool, len);
    if (json->data == NULL) {
        c1_free(out);
        return NGX_ERROR;
    }

    ngx_memcpy(json->data, out, len);
    json->len = len;

    c1_free(out);

    return NGX_OK;
}


ngx_int_t
ngx_http_c1_send_error(ngx_http_request_t *r, c1_error_t *err)
{
    ngx_str_t           json;
    ngx_http_c1_ctx_t  *ctx;

    ctx = ngx_http_c1_get_ctx(r);

    if (ctx == NULL || ngx_http_c1_error_json(r, err, &json) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->own = 1;
    ctx->error_code = err->code;

    return ngx_http_c1_send(r, err->status, &ngx_http_c1_type_json,
                            json.data, json.len);
}


static ngx_int_t
ngx_http_c1_send(ngx_http_request_t *r, ngx_uint_t status, ngx_str_t *type,
    u_char *data, size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = len;

    if (ngx_http_c1_add_header(r, "Cache-Control", "no-cache") != NGX_OK) {
        return NGX_ERROR;
    }

    if (len == 0) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = data;
    b->last = data + len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static ngx_int_t
ngx_http_c1_init(ngx_conf_t *cf)
{
    if (ngx_http_c1_metrics_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_c1_filter_init(cf);
}


static void *
ngx_http_c1_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_c1_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_c1_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&mcf->zones, cf->pool, 2, sizeof(ngx_http_c1_zone_t *))
        != NGX_OK)
    {
        return NULL;
    }

    return mcf;
}


static void *
ngx_http_c1_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_c1_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_c1_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->pass = { 0, NULL };
     *     conf->pass_args = { 0, NULL };
     */

    conf->api_key = NGX_CONF_UNSET_PTR;
    conf->model = NGX_CONF_UNSET_PTR;
    conf->system_prompt = NGX_CONF_UNSET_PTR;
    conf->temperature = NGX_CONF_UNSET;
    conf->top_p = NGX_CONF_UNSET;
    conf->max_tokens = NGX_CONF_UNSET;
    conf->stop = NGX_CONF_UNSET_PTR;
    conf->max_response_size = NGX_CONF_UNSET_SIZE;
    conf->stream = NGX_CONF_UNSET;
    conf->history = NGX_CONF_UNSET_PTR;
    conf->stream_usage = NGX_CONF_UNSET;
    conf->stream_max_size = NGX_CONF_UNSET_SIZE;
    conf->stream_timeout = NGX_CONF_UNSET_MSEC;

    return conf;
}


static char *
ngx_http_c1_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_c1_loc_conf_t  *prev = parent;
    ngx_http_c1_loc_conf_t  *conf = child;

    ngx_conf_merge_ptr_value(conf->api_key, prev->api_key, NULL);
    ngx_conf_merge_ptr_value(conf->model, prev->model, NULL);
    ngx_conf_merge_ptr_value(conf->system_prompt, prev->system_prompt, NULL);

    if (conf->temperature == NGX_CONF_UNSET) {
        conf->temperature = prev->temperature;
    }

    if (conf->top_p == NGX_CONF_UNSET) {
        conf->top_p = prev->top_p;
    }

    ngx_conf_merge_value(conf->max_tokens, prev->max_tokens, NGX_CONF_UNSET);
    ngx_conf_merge_ptr_value(conf->stop, prev->stop, NULL);
    ngx_conf_merge_size_value(conf->max_response_size,
                              prev->max_response_size, 8 * 1024 * 1024);
    ngx_conf_merge_value(conf->stream, prev->stream, 0);
    ngx_conf_merge_ptr_value(conf->history, prev->history, NULL);
    ngx_conf_merge_value(conf->stream_usage, prev->stream_usage, 0);
    ngx_conf_merge_size_value(conf->stream_max_size, prev->stream_max_size,
                              64 * 1024 * 1024);
    ngx_conf_merge_msec_value(conf->stream_timeout, prev->stream_timeout, 0);

    if (conf->history && conf->history->data == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "unknown c1_history_zone \"%V\"",
                      &conf->history->shm.name);
        return NGX_CONF_ERROR;
    }

    if (conf->pass.len && conf->model == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"c1_pass\" in %V:%ui has no \"c1_model\" in effect",
                      &conf->pass_file, conf->pass_line);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_c1_pass(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_c1_loc_conf_t *lcf = conf;

    u_char                    *q;
    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    if (lcf->pass.len) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"c1_pass\" takes the URI of a location, "
                           "starting with \"/\", not \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    lcf->pass = value[1];

    q = ngx_strlchr(value[1].data, value[1].data + value[1].len, '?');

    if (q) {
        lcf->pass.len = q - value[1].data;
        lcf->pass_args.data = q + 1;
        lcf->pass_args.len = value[1].data + value[1].len - q - 1;
    }

    lcf->pass_file = cf->conf_file->file.name;
    lcf->pass_line = cf->conf_file->line;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_c1_handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_c1_set_value(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char       *rv;
    ngx_str_t  *value;

    value = cf->args->elts;

    if (value[1].len == 0 && ngx_strcmp(cmd->name.data, "c1_model") == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"c1_model\" must not be empty");
        return NGX_CONF_ERROR;
    }

    rv = ngx_http_set_complex_value_slot(cf, cmd, conf);

    return rv;
}


static char *
ngx_http_c1_set_double(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    u_char                *s;
    double                *d, v;
    char                  *end;
    ngx_str_t             *value;
    ngx_http_c1_bounds_t  *b;

    d = (double *) (p + cmd->offset);

    if (*d != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;
    b = cmd->post;

    s = ngx_pnalloc(cf->pool, value[1].len + 1);
    if (s == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_cpystrn(s, value[1].data, value[1].len + 1);

    v = strtod((char *) s, &end);

    if (value[1].len == 0 || *end != '\0' || !(v >= b->min && v <= b->max)
        || ngx_strlchr(s, s + value[1].len, 'x') != NULL
        || ngx_strlchr(s, s + value[1].len, 'X') != NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" takes a number from %.1f to %.1f, "
                           "not \"%V\"", &cmd->name, b->min, b->max,
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    *d = v;

    return NGX_CONF_OK;
}


static char *
ngx_http_c1_set_max_tokens(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_c1_loc_conf_t *lcf = conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    if (lcf->max_tokens != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    n = ngx_atoi(value[1].data, value[1].len);

    if (n < 1 || n > NGX_HTTP_C1_MAX_TOKENS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"c1_max_tokens\" takes a whole number from 1 "
                           "to %d, not \"%V\"", NGX_HTTP_C1_MAX_TOKENS,
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    lcf->max_tokens = n;

    return NGX_CONF_OK;
}


static char *
ngx_http_c1_stop(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_c1_loc_conf_t *lcf = conf;

    ngx_str_t   *value, *s;
    ngx_uint_t   i;

    if (lcf->stop != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    if (cf->args->nelts - 1 > C1_MAX_STOP) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"c1_stop\" takes at most %d sequences",
                           C1_MAX_STOP);
        return NGX_CONF_ERROR;
    }

    lcf->stop = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                 sizeof(ngx_str_t));
    if (lcf->stop == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (value[i].len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"c1_stop\" takes non-empty sequences");
            return NGX_CONF_ERROR;
        }

        s = ngx_array_push(lcf->stop);
        *s = value[i];
    }

    return NGX_CONF_OK;
}
