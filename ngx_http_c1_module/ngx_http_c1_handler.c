
/*
 * ngx_http_c1_module: the content handler of c1_pass locations and the
 * phases a request goes through.
 *
 *   START    the method and the body's type are looked at; GET and DELETE
 *            of a thread are answered at once
 *   BODY     the client's body is read, parsed and turned into C1's; a
 *            thread's turn begins
 *   CALL     C1 is called; a stream is relayed as it comes
 *   RESPOND  the call is over: the answer, or the stream's end, or the
 *            error, is decided here and nowhere else; a turn is committed
 *   PAUSE    (c1_retry) the try failed before the client got anything:
 *            the next one, a call of its own, starts after a pause
 *   DONE
 *
 * The call's handlers only record what happened; when its subrequest is
 * done, nginx runs the main request again and the next phase begins.
 */


#include "ngx_http_c1_module.h"


static void ngx_http_c1_cleanup(void *data);
static ngx_int_t ngx_http_c1_media_type(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx);
static void ngx_http_c1_body(ngx_http_request_t *r);
static void ngx_http_c1_turn_next(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx, ngx_int_t rc);
static void ngx_http_c1_turn_begun(ngx_http_c1_store_op_t *op);
static ngx_int_t ngx_http_c1_turn_thread(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx, ngx_http_c1_loc_conf_t *lcf);
static ngx_int_t ngx_http_c1_turn_call(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx);
static ngx_int_t ngx_http_c1_turn(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx);
static ngx_int_t ngx_http_c1_turn_go(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx);
static void ngx_http_c1_settings(ngx_http_c1_loc_conf_t *lcf,
    c1_settings_t *s);
static void ngx_http_c1_run(ngx_http_request_t *r);
static ngx_int_t ngx_http_c1_respond(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx);
static ngx_http_c1_err_e ngx_http_c1_judge(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx, c1_error_t *words, ngx_uint_t *status);
static void ngx_http_c1_retry_after_of(ngx_http_c1_ctx_t *ctx);
static ngx_int_t ngx_http_c1_retry_after(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx);
static ngx_uint_t ngx_http_c1_reason(ngx_http_c1_err_e id,
    ngx_uint_t status);
static ngx_int_t ngx_http_c1_retry(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx, ngx_http_c1_err_e id, c1_error_t *words,
    ngx_uint_t status);
static ngx_int_t ngx_http_c1_fallback_models(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx);
static void ngx_http_c1_try_model(ngx_http_c1_ctx_t *ctx, ngx_uint_t n,
    ngx_str_t *model);
static void ngx_http_c1_next_try(ngx_event_t *ev);
static ngx_int_t ngx_http_c1_respond_answer(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx);
static ngx_int_t ngx_http_c1_respond_stream(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx);
static ngx_int_t ngx_http_c1_respond_round(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx, c1_error_t *words);
static ngx_int_t ngx_http_c1_tools_go(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx);
static void ngx_http_c1_try_reset(ngx_http_c1_ctx_t *ctx);
static void ngx_http_c1_round_tokens(ngx_http_c1_ctx_t *ctx);


static ngx_str_t  ngx_http_c1_type_json = ngx_string("application/json");

/* c1_retry's reasons, by their bit: the log's and the metrics' names */
char  *ngx_http_c1_reasons[NGX_HTTP_C1_RETRY_REASONS] = {
    "error", "timeout", "429", "500", "502", "503", "504", "bad_answer"
};
static ngx_str_t  ngx_http_c1_type_text = ngx_string("text/plain");


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

    ngx_http_c1_ctx_init(ctx);

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

    ngx_http_c1_call_cleanup(&ctx->call);
    ngx_http_c1_response_cleanup(ctx);

    if (ctx->pause.timer_set) {
        ngx_del_timer(&ctx->pause);
    }

    c1_relay_free(&ctx->relay);
    c1_buf_free(&ctx->answer);
    c1_request_free(&ctx->req);
}


/* the request's error, from the table, sent as the response can */

ngx_int_t
ngx_http_c1_fail(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    ngx_http_c1_err_e id, const c1_error_t *words, ngx_uint_t status)
{
    ngx_http_c1_error(r, ctx, id, words, status);

    ctx->phase = NGX_HTTP_C1_PHASE_DONE;

    return ngx_http_c1_response_error(r, ctx);
}


/* START */

ngx_int_t
ngx_http_c1_handler(ngx_http_request_t *r)
{
    ngx_int_t                rc;
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

        return ngx_http_c1_thread_op(r, ctx, lcf);
    }

    if (r->method != NGX_HTTP_POST) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        if (ngx_http_c1_response_add_header(r, "Allow", lcf->history
                                                       ? "GET, POST, DELETE"
                                                       : "POST")
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_c1_fail(r, ctx, lcf->history
                                        ? NGX_HTTP_C1_ERR_METHOD_THREADS
                                        : NGX_HTTP_C1_ERR_METHOD,
                                NULL, 0);
    }

    if (ngx_http_c1_media_type(r, ctx) != NGX_OK) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_c1_fail(r, ctx, NGX_HTTP_C1_ERR_MEDIA_TYPE, NULL, 0);
    }

    ctx->phase = NGX_HTTP_C1_PHASE_BODY;

    rc = ngx_http_read_client_request_body(r, ngx_http_c1_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/* text/plain: a prompt; application/json or none: JSON; else refused */

static ngx_int_t
ngx_http_c1_media_type(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    u_char     *p, *last;
    ngx_str_t   type;

    ctx->mode = 0;

    if (r->headers_in.content_type == NULL) {
        return NGX_OK;
    }

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
        && ngx_strncasecmp(type.data, (u_char *) "text/plain", type.len) == 0)
    {
        ctx->mode = C1_MODE_PROMPT;
        return NGX_OK;
    }

    if (type.len == sizeof("application/json") - 1
        && ngx_strncasecmp(type.data, (u_char *) "application/json",
                           type.len) == 0)
    {
        return NGX_OK;
    }

    return NGX_DECLINED;
}


/* BODY: the client's body is all in */

static void
ngx_http_c1_body(ngx_http_request_t *r)
{
    ngx_http_c1_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_c1_module);

    ngx_http_c1_turn_next(r, ctx, ngx_http_c1_turn(r, ctx));
}


/*
 * After a step of the turn: NGX_DONE, the call runs (CALL: the main
 * request runs again when it is over); NGX_AGAIN, the store answers
 * later (STORE); else the request ends here (and always once its error
 * was sent).
 */

static void
ngx_http_c1_turn_next(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    ngx_int_t rc)
{
    if (ctx->phase == NGX_HTTP_C1_PHASE_DONE) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    if (rc == NGX_DONE) {
        ctx->phase = NGX_HTTP_C1_PHASE_CALL;
        r->write_event_handler = ngx_http_c1_run;
        return;
    }

    if (rc == NGX_AGAIN) {
        ctx->phase = NGX_HTTP_C1_PHASE_STORE;
        return;
    }

    ngx_http_finalize_request(r, rc);
}


/* STORE: the thread's turn has begun, or could not */

static void
ngx_http_c1_turn_begun(ngx_http_c1_store_op_t *op)
{
    ngx_http_request_t *r = op->data;

    ngx_connection_t   *c;
    ngx_http_c1_ctx_t  *ctx;

    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_c1_module);

    if (op->rc == NGX_OK) {
        ctx->begun = 1;
        ctx->token = op->token;
    }

    ngx_http_c1_turn_next(r, ctx, ngx_http_c1_turn_call(r, ctx));

    /* the call's subrequest, posted: run it now */

    ngx_http_run_posted_requests(c);
}


/* STORE: the token limits' buckets are read (from Redis) */

void
ngx_http_c1_turn_checked(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_connection_t   *c;
    ngx_http_c1_ctx_t  *ctx;

    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_c1_module);

    /* refused (DONE): its error was sent */

    if (rc == NGX_OK && ctx->phase != NGX_HTTP_C1_PHASE_DONE) {
        rc = ngx_http_c1_turn_go(r, ctx);
    }

    ngx_http_c1_turn_next(r, ctx, rc);

    ngx_http_run_posted_requests(c);
}


/*
 * The body is parsed into C1's request, the token limits are checked,
 * and with a thread its turn begins: then the call (NGX_DONE), the
 * store's answer first (NGX_AGAIN), or an error.
 */

static ngx_int_t
ngx_http_c1_turn(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    int                      rc;
    ngx_int_t                checked;
    ngx_str_t                body, model, system_prompt, key;
    c1_error_t               err;
    c1_settings_t           *s;
    ngx_http_c1_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_c1_module);

    if (ngx_http_c1_read_body(r, &body) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
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
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (model.len == 0) {
        return ngx_http_c1_fail(r, ctx, NGX_HTTP_C1_ERR_NO_MODEL, NULL, 0);
    }

    s = &ctx->settings;

    ngx_http_c1_settings(lcf, s);

    s->model.data = model.data;
    s->model.len = model.len;
    s->system_prompt.data = system_prompt.data;
    s->system_prompt.len = system_prompt.len;

    ctx->model = model;
    ctx->key = key;

    rc = c1_request_parse(body.data, body.len,
                          ctx->mode == C1_MODE_PROMPT ? C1_BODY_TEXT
                                                      : C1_BODY_JSON,
                          s, &ctx->req, &err);

    if (rc == C1_ERROR) {
        c1_request_free(&ctx->req);
        return ngx_http_c1_fail(r, ctx, NGX_HTTP_C1_ERR_BAD_REQUEST, &err, 0);
    }

    if (rc != C1_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->kind = NGX_HTTP_C1_KIND_TURN;
    ctx->mode = ctx->req.mode;
    ctx->stream = ctx->req.stream;

    checked = ngx_http_c1_limit_check(r, ctx);

    if (checked != NGX_OK || ctx->phase == NGX_HTTP_C1_PHASE_DONE) {
        return checked;                 /* NGX_AGAIN: the limits' store;
                                           DONE: refused, its error sent */
    }

    return ngx_http_c1_turn_go(r, ctx);
}


/* the turn, allowed by its limits: its thread, then the call */

static ngx_int_t
ngx_http_c1_turn_go(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    ngx_http_c1_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_c1_module);

    if (ctx->req.thread_id_len && lcf->history) {
        return ngx_http_c1_turn_thread(r, ctx, lcf);
    }

    return ngx_http_c1_turn_call(r, ctx);
}


/* the turn's thread: whose it is, what it will keep; its turn begins */

static ngx_int_t
ngx_http_c1_turn_thread(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    ngx_http_c1_loc_conf_t *lcf)
{
    ngx_int_t            rc;
    c1_request_t        *req;
    ngx_http_c1_err_e    id;

    req = &ctx->req;

    id = ngx_http_c1_owner(r, lcf, &ctx->owner);

    if (id != NGX_HTTP_C1_ERR_NONE) {
        return ngx_http_c1_fail(r, ctx, id, NULL, 0);
    }

    ctx->thread_id.len = req->thread_id_len;
    ctx->thread_id.data = ngx_pstrdup(r->pool, &(ngx_str_t) {
                                          req->thread_id_len,
                                          (u_char *) req->thread_id });
    if (ctx->thread_id.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->openui = req->openui;

    if (ngx_http_c1_thread_keep(r, ctx, req) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_c1_thread_begin(r, ctx, ngx_http_c1_turn_begun);

    if (rc == NGX_AGAIN) {
        return NGX_AGAIN;
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_c1_turn_call(r, ctx);
}


/*
 * C1's request is rendered (with the thread's history, when a turn has
 * begun on it), kept for the tries that may follow, and the call starts:
 * NGX_DONE; or the request ends here with an error.
 */

static ngx_int_t
ngx_http_c1_turn_call(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    int                  rc;
    size_t               nturns;
    ngx_uint_t           i;
    c1_turn_t           *turns;
    c1_request_t        *req;
    ngx_http_c1_msg_t   *m;

    req = &ctx->req;

    turns = NULL;
    nturns = 0;

    if (ctx->thread_id.len) {

        switch (ctx->op.rc) {

        case NGX_OK:
            break;

        case NGX_HTTP_C1_STORE_BUSY:
            c1_request_free(req);
            return ngx_http_c1_fail(r, ctx, NGX_HTTP_C1_ERR_THREAD_BUSY,
                                    NULL, 0);

        case NGX_HTTP_C1_STORE_FULL:
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "c1: c1 history store \"%V\" is full: thread "
                          "\"%V\" goes without history", &ctx->store->name,
                          &ctx->thread_id);
            break;

        default:
            ngx_http_c1_store_failed(&ctx->store->name,
                                     NGX_HTTP_C1_STORE_BEGIN);
            c1_request_free(req);
            return ngx_http_c1_fail(r, ctx, NGX_HTTP_C1_ERR_STORE, NULL, 0);
        }

        if (ctx->begun && ctx->op.nout) {
            turns = ngx_palloc(r->pool, ctx->op.nout * sizeof(c1_turn_t));
            if (turns == NULL) {
                c1_request_free(req);
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            for (i = 0; i < ctx->op.nout; i++) {
                m = &ctx->op.out[i];
                turns[i].role = (m->role == C1_ROLE_USER) ? "user"
                                                          : "assistant";
                turns[i].data = m->content.data;
                turns[i].len = m->content.len;
                turns[i].raw = (m->role == C1_ROLE_TOOL_CALLS
                                || m->role == C1_ROLE_TOOL);
            }

            nturns = ctx->op.nout;
        }
    }

    rc = c1_request_render(req, &ctx->settings, turns, nturns);

    if (rc != C1_OK) {
        c1_request_free(req);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->mode = req->mode;
    ctx->stream = req->stream;
    ctx->hide_usage = req->hide_usage;

    /* C1's request, kept for the tries that may follow */

    ctx->body.len = req->len;
    ctx->body.data = ngx_pnalloc(r->pool, req->len);

    if (ctx->body.data == NULL) {
        c1_request_free(req);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(ctx->body.data, req->body, req->len);
    ctx->body_model = ctx->model;

    c1_request_free(req);

    ctx->tries = 1;
    ctx->tries_start = ngx_current_msec;
    ctx->retry_after = -1;

    if (ngx_http_c1_fallback_models(r, ctx) != NGX_OK
        || ngx_http_c1_tool_start(r, ctx) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_c1_chat_start(r, ctx, &ctx->body) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_DONE;
}


static void
ngx_http_c1_settings(ngx_http_c1_loc_conf_t *lcf, c1_settings_t *s)
{
    ngx_str_t   *stop;
    ngx_uint_t   i;

    ngx_memzero(s, sizeof(c1_settings_t));

    if (lcf->temperature >= 0) {
        s->has_temperature = 1;
        s->temperature = lcf->temperature;
    }

    if (lcf->top_p >= 0) {
        s->has_top_p = 1;
        s->top_p = lcf->top_p;
    }

    if (lcf->max_tokens != NGX_CONF_UNSET) {
        s->has_max_tokens = 1;
        s->max_tokens = lcf->max_tokens;
    }

    if (lcf->stop) {
        stop = lcf->stop->elts;

        for (i = 0; i < lcf->stop->nelts; i++) {
            s->stop[i].data = stop[i].data;
            s->stop[i].len = stop[i].len;
        }

        s->nstop = lcf->stop->nelts;
    }

    s->stream = lcf->stream ? 1 : 0;
    s->stream_usage = lcf->stream_usage ? 1 : 0;
    s->history = lcf->history ? 1 : 0;
}


/* the whole client body in one piece, read back from a temp file if need be */

ngx_int_t
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


/* CALL: the main request runs again; once the call is over, RESPOND */

static void
ngx_http_c1_run(ngx_http_request_t *r)
{
    ngx_int_t           rc;
    ngx_http_c1_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_c1_module);

    if (ctx == NULL) {
        return;
    }

    if (ctx->phase == NGX_HTTP_C1_PHASE_TOOLS) {

        /* TOOLS: once every call of the round is over, C1 again */

        if (!ngx_http_c1_tools_over(ctx)) {
            return;
        }

        rc = ngx_http_c1_tools_go(r, ctx);

        if (rc != NGX_OK) {
            ngx_http_finalize_request(r, rc);
        }

        return;
    }

    if (ctx->phase != NGX_HTTP_C1_PHASE_CALL
        || !ngx_http_c1_call_over(&ctx->call))
    {
        return;
    }

    ctx->phase = NGX_HTTP_C1_PHASE_RESPOND;

    rc = ngx_http_c1_respond(r, ctx);

    if (ctx->phase == NGX_HTTP_C1_PHASE_PAUSE
        || ctx->phase == NGX_HTTP_C1_PHASE_TOOLS
        || ctx->phase == NGX_HTTP_C1_PHASE_CALL)
    {
        /* another try, or a tool round, follows: the request goes on */

        return;
    }

    ngx_http_finalize_request(r, rc);
}


/* RESPOND: what the call's record says the client gets */

static ngx_int_t
ngx_http_c1_respond(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    ngx_int_t           rc;
    ngx_uint_t          status;
    c1_error_t          words;
    ngx_http_c1_err_e   id;

    id = ngx_http_c1_judge(r, ctx, &words, &status);

    if (id != NGX_HTTP_C1_ERR_NONE
        && ngx_http_c1_retry(r, ctx, id, &words, status) == NGX_OK)
    {
        return NGX_OK;
    }

    /* C1 asked for tools: a round (or one too many) */

    if (id == NGX_HTTP_C1_ERR_NONE && ctx->tc && ctx->tc->finished
        && ctx->tc->n)
    {
        rc = ngx_http_c1_respond_round(r, ctx, &words);

        if (rc != NGX_DECLINED) {
            return rc;
        }

        id = NGX_HTTP_C1_ERR_BAD_ANSWER;
    }

    if (id == NGX_HTTP_C1_ERR_NONE && ctx->rounds) {
        ngx_http_c1_round_tokens(ctx);
    }

    ctx->phase = NGX_HTTP_C1_PHASE_DONE;

    /* the tokens spent, before the client has all of the answer */

    ngx_http_c1_limit_debit(r, ctx);

    if (id == NGX_HTTP_C1_ERR_NONE) {
        return ctx->relaying ? ngx_http_c1_respond_stream(r, ctx)
                             : ngx_http_c1_respond_answer(r, ctx);
    }

    if (status == NGX_HTTP_TOO_MANY_REQUESTS
        && ngx_http_c1_retry_after(r, ctx) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (id == NGX_HTTP_C1_ERR_C1_PASSED) {

        /* already an OpenAI-style error: as C1 sent it */

        ngx_http_c1_error(r, ctx, id, NULL, status);

        return ngx_http_c1_response_send(r, ctx, status,
                                         &ngx_http_c1_type_json,
                                         ctx->buf, ctx->len);
    }

    return ngx_http_c1_fail(r, ctx, id, &words, status);
}


/*
 * What the try's call came to, recorded nowhere yet: NGX_HTTP_C1_ERR_NONE
 * for a good answer (a whole one read into ctx->content), else the error,
 * with its words and C1's status where they come from the answer.
 */

static ngx_http_c1_err_e
ngx_http_c1_judge(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    c1_error_t *words, ngx_uint_t *status)
{
    int                  rc;
    ngx_http_c1_call_t  *call;

    call = &ctx->call;
    *status = 0;

    if (ctx->relaying) {
        ctx->prompt_tokens = ctx->relay.prompt_tokens;
        ctx->completion_tokens = ctx->relay.completion_tokens;
        ctx->total_tokens = ctx->relay.total_tokens;

        if (ctx->relay.failed) {
            *words = ctx->relay.err;
            return NGX_HTTP_C1_ERR_STREAM_BAD;
        }

        if (ctx->over_size) {
            return NGX_HTTP_C1_ERR_STREAM_SIZE;
        }

        if (call->timed_out) {
            return NGX_HTTP_C1_ERR_STREAM_TIME;
        }

        if (!ctx->relay_ended) {
            return (call->rc == NGX_HTTP_GATEWAY_TIME_OUT)
                   ? NGX_HTTP_C1_ERR_TIMEOUT
                   : NGX_HTTP_C1_ERR_STREAM_BROKEN;
        }

        if (ctx->response.state == NGX_HTTP_C1_RESPONSE_NONE
            && ctx->relay.events == 0)
        {
            return NGX_HTTP_C1_ERR_STREAM_EMPTY;
        }

        return NGX_HTTP_C1_ERR_NONE;
    }

    if (call->timed_out) {
        return NGX_HTTP_C1_ERR_STREAM_TIME;
    }

    if (ctx->too_large) {
        return NGX_HTTP_C1_ERR_ANSWER_TOO_LARGE;
    }

    if (call->rc >= NGX_HTTP_SPECIAL_RESPONSE || !call->header
        || call->failed)
    {
        /* the call failed in nginx: unreachable, timed out, cut short */

        if (call->rc == NGX_HTTP_GATEWAY_TIME_OUT
            || call->status == NGX_HTTP_GATEWAY_TIME_OUT)
        {
            return NGX_HTTP_C1_ERR_TIMEOUT;
        }

        return call->failed ? NGX_HTTP_C1_ERR_BROKE_OFF
                            : NGX_HTTP_C1_ERR_UNREACHABLE;
    }

    *status = call->status;

    if (call->status < 200 || call->status >= 300) {

        if (call->status < 400 || call->status > 599) {
            return NGX_HTTP_C1_ERR_BAD_STATUS;
        }

        ngx_http_c1_retry_after_of(ctx);

        if (c1_upstream_error(call->status, ctx->buf, ctx->len, words)
            == C1_OK)
        {
            return NGX_HTTP_C1_ERR_C1_PASSED;
        }

        return NGX_HTTP_C1_ERR_C1;
    }

    *status = 0;

    /* a whole answer of a location with tools: its calls, and its usage */

    if (ctx->tc) {
        if (c1_tool_calls_answer(ctx->tc, ctx->buf, ctx->len) == C1_OK
            && ctx->tc->finished && ctx->tc->n)
        {
            if (c1_answer_extract(ctx->buf, ctx->len, C1_MODE_OPENAI,
                                  &ctx->content, words)
                == C1_OK)
            {
                ctx->prompt_tokens = ctx->content.prompt_tokens;
                ctx->completion_tokens = ctx->content.completion_tokens;
                ctx->total_tokens = ctx->content.total_tokens;
            }

            return NGX_HTTP_C1_ERR_NONE;
        }

        c1_tool_calls_free(ctx->tc);
    }

    rc = c1_answer_extract(ctx->buf, ctx->len, ctx->mode, &ctx->content,
                           words);

    if (rc == C1_ERROR) {
        return NGX_HTTP_C1_ERR_BAD_ANSWER;
    }

    if (rc != C1_OK) {
        return NGX_HTTP_C1_ERR_PAGE_SERVER;
    }

    ctx->prompt_tokens = ctx->content.prompt_tokens;
    ctx->completion_tokens = ctx->content.completion_tokens;
    ctx->total_tokens = ctx->content.total_tokens;

    return NGX_HTTP_C1_ERR_NONE;
}


/* C1's Retry-After, in seconds, from the try's answer */

static void
ngx_http_c1_retry_after_of(ngx_http_c1_ctx_t *ctx)
{
    time_t            t;
    ngx_int_t         n;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    ctx->retry_after = -1;
    ngx_str_null(&ctx->retry_after_value);

    part = &ctx->call.sr->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash == 0 || h[i].key.len != sizeof("Retry-After") - 1
            || ngx_strncasecmp(h[i].key.data, (u_char *) "Retry-After",
                               h[i].key.len) != 0)
        {
            continue;
        }

        n = ngx_atoi(h[i].value.data, h[i].value.len);

        if (n == NGX_ERROR) {
            t = ngx_parse_http_time(h[i].value.data, h[i].value.len);

            if (t == NGX_ERROR) {
                return;
            }

            n = (t > ngx_time()) ? (ngx_int_t) (t - ngx_time()) : 0;
        }

        ctx->retry_after = n;
        ctx->retry_after_value = h[i].value;

        return;
    }
}


/* a final 429: C1's Retry-After, or ours (c1_retry's pause, or 1 s) */

static ngx_int_t
ngx_http_c1_retry_after(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    u_char                  *p;
    ngx_msec_t               pause;
    ngx_http_c1_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_c1_module);

    if (ctx->retry_after_value.len) {
        p = ngx_pnalloc(r->pool, ctx->retry_after_value.len + 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_cpystrn(p, ctx->retry_after_value.data,
                    ctx->retry_after_value.len + 1);

    } else if (lcf->retry.tries) {
        pause = lcf->retry.backoff << ngx_min(ctx->tries - 1, 20);

        p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN + 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_sprintf(p, "%M%Z", ngx_max((pause + 999) / 1000, 1));

    } else {
        p = (u_char *) "1";         /* C1 said nothing: a second */
    }

    return ngx_http_c1_response_add_header(r, "Retry-After", (char *) p);
}


/* why a try failed, as c1_retry's on= names it; 0: never tried again */

static ngx_uint_t
ngx_http_c1_reason(ngx_http_c1_err_e id, ngx_uint_t status)
{
    switch (id) {

    case NGX_HTTP_C1_ERR_UNREACHABLE:
    case NGX_HTTP_C1_ERR_BROKE_OFF:
        return NGX_HTTP_C1_RETRY_ERROR;

    case NGX_HTTP_C1_ERR_TIMEOUT:
    case NGX_HTTP_C1_ERR_STREAM_TIME:
        return NGX_HTTP_C1_RETRY_TIMEOUT;

    case NGX_HTTP_C1_ERR_C1:
    case NGX_HTTP_C1_ERR_C1_PASSED:
        switch (status) {
        case NGX_HTTP_TOO_MANY_REQUESTS:
            return NGX_HTTP_C1_RETRY_429;
        case NGX_HTTP_INTERNAL_SERVER_ERROR:
            return NGX_HTTP_C1_RETRY_500;
        case NGX_HTTP_BAD_GATEWAY:
            return NGX_HTTP_C1_RETRY_502;
        case NGX_HTTP_SERVICE_UNAVAILABLE:
            return NGX_HTTP_C1_RETRY_503;
        case NGX_HTTP_GATEWAY_TIME_OUT:
            return NGX_HTTP_C1_RETRY_504;
        default:
            return 0;
        }

    case NGX_HTTP_C1_ERR_BAD_STATUS:
    case NGX_HTTP_C1_ERR_BAD_ANSWER:
    case NGX_HTTP_C1_ERR_STREAM_BAD:
    case NGX_HTTP_C1_ERR_STREAM_BROKEN:
    case NGX_HTTP_C1_ERR_STREAM_EMPTY:
        return NGX_HTTP_C1_RETRY_BAD_ANSWER;

    default:
        return 0;
    }
}


/*
 * The try failed: another one, if c1_retry allows it, nothing of the
 * answer reached the client, and the pause fits in what is left of the
 * time for tries.  NGX_OK: the request waits for it (PAUSE).
 */

static ngx_int_t
ngx_http_c1_retry(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    ngx_http_c1_err_e id, c1_error_t *words, ngx_uint_t status)
{
    ngx_str_t                model;
    ngx_msec_t               pause, spent;
    ngx_uint_t               reason, n;
    c1_error_t               err;
    ngx_http_c1_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_c1_module);

    reason = ngx_http_c1_reason(id, status);

    if (lcf->retry.tries <= ctx->tries || !(lcf->retry.on & reason)
        || ctx->response.state != NGX_HTTP_C1_RESPONSE_NONE
        || r->connection->error)
    {
        return NGX_DECLINED;
    }

    /* backoff, doubled each try, from 75% to 125% of it */

    pause = lcf->retry.backoff << ngx_min(ctx->tries - 1, 20);
    pause = pause * 3 / 4 + (ngx_msec_t) ngx_random() % (pause / 2 + 1);

    /* C1's Retry-After, honoured */

    if (ctx->retry_after >= 0
        && (ngx_msec_t) ctx->retry_after * 1000 > pause)
    {
        pause = (ngx_msec_t) ctx->retry_after * 1000;
    }

    spent = ngx_current_msec - ctx->tries_start;

    if (spent + pause >= lcf->retry.timeout) {
        return NGX_DECLINED;
    }

    ngx_http_c1_try_model(ctx, ctx->tries + 1, &model);

    ngx_http_c1_error_words(id, words, status, &err);

    for (n = 0; !(reason & (1 << n)); n++) { /* void */ }

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "c1: try %ui of %ui failed (%s): %s; trying again in "
                  "%Mms with model \"%V\"", ctx->tries, lcf->retry.tries,
                  ngx_http_c1_reasons[n], err.message, pause, &model);

    ngx_http_c1_retried(r, n);

    ctx->model = model;

    /* what this try left goes; the thread's turn stays begun */

    ngx_http_c1_try_reset(ctx);

    if (ctx->rounds == 0) {
        c1_buf_free(&ctx->answer);
        ctx->answer_lost = 0;
        ctx->first_msec = 0;
    }

    ctx->phase = NGX_HTTP_C1_PHASE_PAUSE;

    /* a client that goes away during the pause ends the request at once */

    r->read_event_handler = ngx_http_test_reading;

    ctx->pause.handler = ngx_http_c1_next_try;
    ctx->pause.data = r;
    ctx->pause.log = r->connection->log;
    ngx_add_timer(&ctx->pause, pause ? pause : 1);

    return NGX_OK;
}


/*
 * The models of the tries after the first, evaluated with the request
 * as the client sent it (before any call touches its variables).
 */

static ngx_int_t
ngx_http_c1_fallback_models(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    ngx_uint_t                 i;
    ngx_http_complex_value_t  *cv;
    ngx_http_c1_loc_conf_t    *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_c1_module);

    ctx->nfallbacks = 0;

    if (lcf->retry.tries == 0 || lcf->fallback == NULL) {
        return NGX_OK;
    }

    cv = lcf->fallback->elts;

    for (i = 0; i < lcf->fallback->nelts; i++) {
        if (ngx_http_complex_value(r, &cv[i], &ctx->fallbacks[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    ctx->nfallbacks = lcf->fallback->nelts;

    return NGX_OK;
}


/*
 * The model of try N: c1_model first, then c1_fallback_model's in turn
 * (the last one repeats); one that came out empty is c1_model.
 */

static void
ngx_http_c1_try_model(ngx_http_c1_ctx_t *ctx, ngx_uint_t n,
    ngx_str_t *model)
{
    ngx_str_t  *m;

    ctx->fallback = 0;
    *model = ctx->body_model;

    if (n < 2 || ctx->nfallbacks == 0) {
        return;
    }

    m = &ctx->fallbacks[ngx_min(n - 2, ctx->nfallbacks - 1)];

    if (m->len) {
        *model = *m;
        ctx->fallback = 1;
    }
}


/* what a call left, gone before the next one */

static void
ngx_http_c1_try_reset(ngx_http_c1_ctx_t *ctx)
{
    if (ctx->tc) {
        c1_tool_calls_free(ctx->tc);
    }

    c1_relay_free(&ctx->relay);
    ngx_memzero(&ctx->relay, sizeof(c1_relay_t));

    c1_free(ctx->content.content);
    ngx_memzero(&ctx->content, sizeof(c1_answer_t));

    ctx->relaying = 0;
    ctx->relay_ended = 0;
    ctx->over_size = 0;
    ctx->too_large = 0;
    ctx->relayed = 0;
    ctx->len = 0;
    ctx->retry_after = -1;
    ngx_str_null(&ctx->retry_after_value);
    ctx->prompt_tokens = -1;
    ctx->completion_tokens = -1;
    ctx->total_tokens = -1;
}


/*
 * C1 asked for tools: a round starts (NGX_OK: TOOLS, or the next call
 * already when no call ran), or the request ends with an error rc;
 * NGX_DECLINED: one round too many (words say so).
 */

static ngx_int_t
ngx_http_c1_respond_round(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    c1_error_t *words)
{
    ngx_int_t                rc;
    ngx_http_c1_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_c1_module);

    if (ctx->rounds >= lcf->tool_rounds) {
        c1_error_set(words, NGX_HTTP_BAD_GATEWAY, "upstream_error",
                     "bad_upstream_answer", NULL, "C1 asked for tools after "
                     "the last round (c1_tool_rounds %u)",
                     (unsigned) lcf->tool_rounds);
        return NGX_DECLINED;
    }

    /* this call's tokens: its usage, or its estimate, for the limits */

    ngx_http_c1_limit_count(r, ctx);

    if (ctx->prompt_tokens > 0) {
        ctx->round_prompt += ctx->prompt_tokens;
    }

    if (ctx->completion_tokens > 0) {
        ctx->round_completion += ctx->completion_tokens;
    }

    if (ctx->total_tokens > 0) {
        ctx->round_total += ctx->total_tokens;
    }

    rc = ngx_http_c1_tool_round(r, ctx);

    if (rc != NGX_OK) {
        ctx->phase = NGX_HTTP_C1_PHASE_DONE;
        return rc;
    }

    if (!ngx_http_c1_tools_over(ctx)) {
        return NGX_OK;
    }

    /* no call ran (each one's error known at once): C1 again now */

    return ngx_http_c1_tools_go(r, ctx);
}


/* TOOLS are over: their results into C1's request, and the next call */

static ngx_int_t
ngx_http_c1_tools_go(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    ngx_int_t  rc;

    rc = ngx_http_c1_tool_next(r, ctx);

    if (rc != NGX_OK) {
        ctx->phase = NGX_HTTP_C1_PHASE_DONE;
        return rc;
    }

    ngx_http_c1_try_reset(ctx);

    ctx->counted_call = 0;
    ctx->tries = 1;
    ctx->tries_start = ngx_current_msec;
    ctx->model = ctx->body_model;
    ctx->fallback = 0;
    ctx->phase = NGX_HTTP_C1_PHASE_CALL;

    if (ngx_http_c1_chat_start(r, ctx, &ctx->body) != NGX_OK) {
        ctx->phase = NGX_HTTP_C1_PHASE_DONE;
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_OK;
}


/* the turn's tokens: every call's, for the variables and the metrics */

static void
ngx_http_c1_round_tokens(ngx_http_c1_ctx_t *ctx)
{
    if (ctx->round_prompt) {
        ctx->prompt_tokens = ngx_max(ctx->prompt_tokens, 0)
                             + ctx->round_prompt;
    }

    if (ctx->round_completion) {
        ctx->completion_tokens = ngx_max(ctx->completion_tokens, 0)
                                 + ctx->round_completion;
    }

    if (ctx->round_total) {
        ctx->total_tokens = ngx_max(ctx->total_tokens, 0)
                            + ctx->round_total;
    }
}


/* the pause is over: the next try, its body for its model */

static void
ngx_http_c1_next_try(ngx_event_t *ev)
{
    char                *out;
    size_t               len;
    ngx_str_t            body;
    c1_str_t             m;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;
    ngx_http_c1_ctx_t   *ctx;

    r = ev->data;
    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_c1_module);

    r->read_event_handler = ngx_http_block_reading;

    body = ctx->body;

    if (ctx->model.len != ctx->body_model.len
        || ngx_strncmp(ctx->model.data, ctx->body_model.data,
                       ctx->model.len) != 0)
    {
        m.data = ctx->model.data;
        m.len = ctx->model.len;

        if (c1_request_remodel((char *) ctx->body.data, ctx->body.len, &m,
                               &out, &len)
            != C1_OK)
        {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            ngx_http_run_posted_requests(c);
            return;
        }

        body.data = ngx_pnalloc(r->pool, len);

        if (body.data == NULL) {
            c1_free(out);
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            ngx_http_run_posted_requests(c);
            return;
        }

        ngx_memcpy(body.data, out, len);
        body.len = len;
        c1_free(out);
    }

    ctx->tries++;
    ctx->phase = NGX_HTTP_C1_PHASE_CALL;

    if (ngx_http_c1_chat_start(r, ctx, &body) != NGX_OK) {
        ctx->phase = NGX_HTTP_C1_PHASE_DONE;
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }

    ngx_http_run_posted_requests(c);
}


/* C1's whole answer, good: the content (or the answer itself) */

static ngx_int_t
ngx_http_c1_respond_answer(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    c1_error_t           err;
    c1_answer_t          answer;
    ngx_pool_cleanup_t  *cln;

    if (ctx->mode == C1_MODE_OPENAI) {
        c1_free(ctx->content.content);
        ctx->content.content = NULL;

        /* OpenUI's turn, not streamed: the answer's content is kept */

        if (ctx->begun
            && c1_answer_extract(ctx->buf, ctx->len, C1_MODE_PROMPT,
                                 &answer, &err)
               == C1_OK)
        {
            ngx_http_c1_thread_commit(r, ctx, (u_char *) answer.content,
                                      answer.content_len);
            c1_free(answer.content);
        }

        return ngx_http_c1_response_send(r, ctx, NGX_HTTP_OK,
                                         &ngx_http_c1_type_json,
                                         ctx->buf, ctx->len);
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        c1_free(ctx->content.content);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = c1_free;
    cln->data = ctx->content.content;

    ngx_http_c1_thread_commit(r, ctx, (u_char *) ctx->content.content,
                              ctx->content.content_len);

    return ngx_http_c1_response_send(r, ctx, NGX_HTTP_OK,
                                     &ngx_http_c1_type_text,
                                     (u_char *) ctx->content.content,
                                     ctx->content.content_len);
}


/*
 * C1's stream is over, and good: a whole answer joins the thread, then
 * the stream ends ([DONE] in OpenAI mode).
 */

static ngx_int_t
ngx_http_c1_respond_stream(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    if (ctx->begun) {
        if (ctx->answer_lost) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "c1: the answer is larger than "
                          "\"c1_max_response_size\": this turn of thread "
                          "\"%V\" was not kept", &ctx->thread_id);

        } else if (ctx->mode == C1_MODE_OPENAI) {
            ngx_http_c1_thread_commit(r, ctx, ctx->relay.answer.data,
                                      ctx->relay.answer.len);

        } else {
            ngx_http_c1_thread_commit(r, ctx, ctx->answer.data,
                                      ctx->answer.len);
        }
    }

    if (c1_relay_close(&ctx->relay, NULL) != C1_OK) {
        return NGX_ERROR;
    }

    return ngx_http_c1_response_end(r, ctx, ctx->relay.out.data,
                                    ctx->relay.out.len);
}
