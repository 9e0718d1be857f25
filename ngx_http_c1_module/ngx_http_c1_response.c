
/*
 * ngx_http_c1_module: the response, the one part that decides what the
 * client of a c1_pass location gets and when it has ended.
 *
 * A whole answer (or error) goes out at once.  A stream's header goes out
 * with its first piece; its pieces are flushed as they come, through the
 * request that produces them (the C1 call's subrequest while it runs), in
 * buffers of our own kept while the client has not taken them; its end
 * is the last buffer, or, for a prompt stream that failed, a connection
 * closed without the last chunk, so that the client sees the cut.
 *
 * The filters here turn every page nginx itself makes in a c1_pass
 * location (413 for a body over client_max_body_size, 400, 500...) into
 * an OpenAI-style JSON error.
 */


#include "ngx_http_c1_module.h"


static ngx_int_t ngx_http_c1_response_header(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx);
static ngx_int_t ngx_http_c1_response_json(ngx_http_request_t *r,
    c1_error_t *err, ngx_str_t *json);
static void ngx_http_c1_response_held(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx);
static void ngx_http_c1_response_stalled(ngx_event_t *ev);
static ngx_int_t ngx_http_c1_page_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_c1_page_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


static ngx_str_t  ngx_http_c1_type_json = ngx_string("application/json");


ngx_int_t
ngx_http_c1_response_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_c1_page_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_c1_page_body_filter;

    return NGX_OK;
}


/* a response header of our own */

ngx_int_t
ngx_http_c1_response_add_header(ngx_http_request_t *r, char *name,
    char *value)
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


/*
 * A whole answer: header and body, and the response has ended.  A text
 * type goes with "charset=utf-8", added by nginx, so that gzip_types and
 * the like match the type alone.
 */

ngx_int_t
ngx_http_c1_response_send(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    ngx_uint_t status, ngx_str_t *type, u_char *data, size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    if (ctx->response.state != NGX_HTTP_C1_RESPONSE_NONE) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "c1: a second answer to one request");
        return NGX_ERROR;
    }

    ctx->response.own = 1;
    ctx->response.state = NGX_HTTP_C1_RESPONSE_ENDED;

    r->headers_out.status = status;
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = len;

    if (type->len > 5 && ngx_strncmp(type->data, "text/", 5) == 0) {
        ngx_str_set(&r->headers_out.charset, "utf-8");
    }

    if (ngx_http_c1_response_add_header(r, "Cache-Control", "no-cache")
        != NGX_OK)
    {
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


/*
 * The request's error (ctx->err): a JSON error if the client has had
 * nothing yet; else the end of its stream, as a failed stream ends.
 */

ngx_int_t
ngx_http_c1_response_error(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    ngx_str_t  json;

    if (ctx->response.state == NGX_HTTP_C1_RESPONSE_STREAMING) {

        if (ctx->mode != C1_MODE_OPENAI) {
            return ngx_http_c1_response_cut(r, ctx);
        }

        if (c1_relay_close(&ctx->relay, &ctx->err) != C1_OK) {
            return NGX_ERROR;
        }

        return ngx_http_c1_response_end(r, ctx, ctx->relay.out.data,
                                        ctx->relay.out.len);
    }

    if (ngx_http_c1_response_json(r, &ctx->err, &json) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_c1_response_send(r, ctx, ctx->err.status,
                                     &ngx_http_c1_type_json, json.data,
                                     json.len);
}


static ngx_int_t
ngx_http_c1_response_json(ngx_http_request_t *r, c1_error_t *err,
    ngx_str_t *json)
{
    char    *out;
    size_t   len;

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


/* a stream's header, sent with its first piece */

static ngx_int_t
ngx_http_c1_response_header(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    ngx_int_t  rc;

    ctx->response.own = 1;
    ctx->response.stream = 1;
    ctx->response.state = NGX_HTTP_C1_RESPONSE_STREAMING;

    ngx_http_c1_stream_started(r);

    r->headers_out.status = NGX_HTTP_OK;
    ngx_str_set(&r->headers_out.content_type, "text/event-stream");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.content_length_n = -1;

    if (ngx_http_c1_response_add_header(r, "Cache-Control",
                                        "no-cache, no-transform")
        != NGX_OK
        || ngx_http_c1_response_add_header(r, "X-Accel-Buffering", "no")
           != NGX_OK)
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
 * Pushes on what the client has not taken yet: NGX_OK when all of it
 * went out to nginx's writer, NGX_AGAIN while some is still held.
 */

ngx_int_t
ngx_http_c1_response_flush(ngx_http_c1_ctx_t *ctx, ngx_http_request_t *via)
{
    ngx_int_t     rc;
    ngx_chain_t  *out;

    if (ctx->response.busy == NULL) {
        return NGX_OK;
    }

    rc = ngx_http_next_body_filter(via, NULL);

    out = NULL;
    ngx_chain_update_chains(via->pool, &ctx->response.free,
                            &ctx->response.busy, &out,
                            (ngx_buf_tag_t) &ngx_http_c1_module);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    ngx_http_c1_response_held(via->main, ctx);

    return ctx->response.busy ? NGX_AGAIN : NGX_OK;
}


/*
 * While the client has not taken what was sent, the send_timeout of the
 * location it asked for runs (nginx's own timer would be the internal
 * location's, where the call's subrequest runs): it starts again
 * whenever the client takes more, and stops when all is taken.
 */

static void
ngx_http_c1_response_held(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    ngx_connection_t          *c;
    ngx_http_core_loc_conf_t  *clcf;

    c = r->connection;

    if (ctx->response.busy == NULL) {
        if (ctx->response.stall.timer_set) {
            ngx_del_timer(&ctx->response.stall);
        }

        return;
    }

    if (ctx->response.stall.timer_set && ctx->response.sent == c->sent) {
        return;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    ctx->response.stall.handler = ngx_http_c1_response_stalled;
    ctx->response.stall.data = r;
    ctx->response.stall.log = c->log;
    ctx->response.sent = c->sent;

    ngx_add_timer(&ctx->response.stall, clcf->send_timeout);
}


/* the client took nothing for send_timeout: the request ends, C1's call too */

static void
ngx_http_c1_response_stalled(ngx_event_t *ev)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ev->data;
    c = r->connection;

    c->timedout = 1;
    ngx_connection_error(c, NGX_ETIMEDOUT, "client timed out");

    ngx_http_finalize_request(r, NGX_HTTP_REQUEST_TIME_OUT);

    ngx_http_run_posted_requests(c);
}


void
ngx_http_c1_response_cleanup(ngx_http_c1_ctx_t *ctx)
{
    if (ctx->response.stall.timer_set) {
        ngx_del_timer(&ctx->response.stall);
    }
}


/* a piece of the stream, flushed at once: the header goes with the first */

ngx_int_t
ngx_http_c1_response_write(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    ngx_http_request_t *via, u_char *data, size_t len)
{
    size_t        size;
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (ctx->response.state == NGX_HTTP_C1_RESPONSE_ENDED) {
        return NGX_ERROR;
    }

    if (ctx->response.state == NGX_HTTP_C1_RESPONSE_NONE
        && ngx_http_c1_response_header(r, ctx) != NGX_OK)
    {
        return NGX_ERROR;
    }

    cl = ngx_chain_get_free_buf(via->pool, &ctx->response.free);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    b = cl->buf;

    if ((size_t) (b->end - b->start) < len) {
        if (b->start) {
            ngx_pfree(via->pool, b->start);
        }

        size = ngx_max(len, 8192);

        b->start = ngx_palloc(via->pool, size);
        if (b->start == NULL) {
            return NGX_ERROR;
        }

        b->end = b->start + size;
    }

    b->pos = b->start;
    b->last = ngx_cpymem(b->pos, data, len);
    b->temporary = 1;
    b->flush = 1;
    b->tag = (ngx_buf_tag_t) &ngx_http_c1_module;

    rc = ngx_http_next_body_filter(via, cl);

    ngx_chain_update_chains(via->pool, &ctx->response.free,
                            &ctx->response.busy, &cl,
                            (ngx_buf_tag_t) &ngx_http_c1_module);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    ngx_http_c1_response_held(r, ctx);

    return NGX_OK;
}


/* the stream's last piece (data may be empty): the response has ended */

ngx_int_t
ngx_http_c1_response_end(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    u_char *data, size_t len)
{
    ngx_buf_t    *b;
    ngx_chain_t   out;

    if (ctx->response.state == NGX_HTTP_C1_RESPONSE_ENDED) {
        return NGX_ERROR;
    }

    if (ctx->response.state == NGX_HTTP_C1_RESPONSE_NONE
        && ngx_http_c1_response_header(r, ctx) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->response.state = NGX_HTTP_C1_RESPONSE_ENDED;

    ngx_http_c1_response_cleanup(ctx);

    b = len ? ngx_create_temp_buf(r->pool, len) : ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    if (len) {
        b->last = ngx_cpymem(b->pos, data, len);
    }

    b->last_buf = 1;
    b->flush = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * A stream that cannot end well in its own format: the connection is
 * closed without the last chunk, so that the client sees it was cut.
 */

ngx_int_t
ngx_http_c1_response_cut(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    ctx->response.state = NGX_HTTP_C1_RESPONSE_ENDED;

    ngx_http_c1_response_cleanup(ctx);

    r->keepalive = 0;

    return NGX_ERROR;
}


/* a page of nginx's own in a c1_pass or c1_threads location: JSON */

static ngx_int_t
ngx_http_c1_page_header_filter(ngx_http_request_t *r)
{
    ngx_uint_t               status;
    c1_error_t               err;
    ngx_http_c1_ctx_t       *ctx;
    ngx_http_c1_err_e        id;
    ngx_http_c1_loc_conf_t  *lcf;

    if (r != r->main || r->headers_out.status < NGX_HTTP_BAD_REQUEST) {
        return ngx_http_next_header_filter(r);
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_c1_module);

    if (lcf->pass.len == 0 && lcf->threads == NULL) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_c1_module);

    if (ctx != NULL && ctx->response.own) {
        return ngx_http_next_header_filter(r);
    }

    if (ctx == NULL) {

        /* a page before the handler ran (413): a context of its own */

        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_c1_ctx_t));
        if (ctx == NULL) {
            return NGX_ERROR;
        }

        ngx_http_c1_ctx_init(ctx);

        ngx_http_set_ctx(r, ctx, ngx_http_c1_module);
    }

    status = r->headers_out.status;

    switch (status) {

    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        id = NGX_HTTP_C1_ERR_PAGE_TOO_LARGE;
        break;

    case NGX_HTTP_NOT_ALLOWED:
        id = NGX_HTTP_C1_ERR_METHOD;
        break;

    default:
        id = (status >= NGX_HTTP_INTERNAL_SERVER_ERROR)
             ? NGX_HTTP_C1_ERR_PAGE_SERVER : NGX_HTTP_C1_ERR_PAGE_CLIENT;
    }

    /* the page's own status and words; the outcome is the first error's */

    ngx_http_c1_error(r, ctx, id, NULL, status);
    ngx_http_c1_error_words(id, NULL, status, &err);

    if (ngx_http_c1_response_json(r, &err, &ctx->response.page) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->response.replace = 1;
    ctx->response.state = NGX_HTTP_C1_RESPONSE_ENDED;

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.charset.len = 0;

    ngx_http_clear_content_length(r);
    r->headers_out.content_length_n = ctx->response.page.len;

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_c1_page_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t          *b;
    ngx_uint_t          last;
    ngx_chain_t        *cl, out;
    ngx_http_c1_ctx_t  *ctx;

    if (in == NULL || r != r->main) {
        return ngx_http_next_body_filter(r, in);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_c1_module);

    if (ctx == NULL || !ctx->response.replace) {
        return ngx_http_next_body_filter(r, in);
    }

    /* nginx's page goes; our JSON error goes out in its place */

    last = 0;

    for (cl = in; cl; cl = cl->next) {
        if (cl->buf->last_buf) {
            last = 1;
        }

        cl->buf->pos = cl->buf->last;
        cl->buf->file_pos = cl->buf->file_last;
    }

    if (!last) {
        return NGX_OK;
    }

    ctx->response.replace = 0;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = ctx->response.page.data;
    b->last = ctx->response.page.data + ctx->response.page.len;
    b->memory = 1;
    b->last_buf = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_next_body_filter(r, &out);
}
