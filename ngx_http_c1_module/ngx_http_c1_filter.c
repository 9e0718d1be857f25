
/*
 * ngx_http_c1_module: filters.
 *
 * On the C1 subrequest, the header and body filters take C1's answer for
 * the handler (it never reaches the client as it is).  On the main request
 * of a c1_pass location, they turn every page that nginx itself makes
 * (413 for a body over client_max_body_size, 400, 500...) into an
 * OpenAI-style JSON error.
 */


#include "ngx_http_c1_module.h"


static ngx_int_t ngx_http_c1_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_c1_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_c1_collect(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx, ngx_chain_t *in);
static ngx_int_t ngx_http_c1_relay(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx, ngx_chain_t *in);
static ngx_http_c1_ctx_t *ngx_http_c1_sr_ctx(ngx_http_request_t *r);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


ngx_int_t
ngx_http_c1_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_c1_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_c1_body_filter;

    return NGX_OK;
}


/*
 * The context of our C1 subrequest, found through the main request: an
 * error_page inside the internal location would wipe the subrequest's own.
 */

static ngx_http_c1_ctx_t *
ngx_http_c1_sr_ctx(ngx_http_request_t *r)
{
    ngx_http_c1_ctx_t  *ctx;

    if (r == r->main) {
        return NULL;
    }

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_c1_module);

    if (ctx == NULL || ctx->sr != r) {
        return NULL;
    }

    return ctx;
}


static ngx_int_t
ngx_http_c1_header_filter(ngx_http_request_t *r)
{
    c1_error_t               err;
    ngx_http_c1_ctx_t       *ctx;
    ngx_http_c1_loc_conf_t  *lcf;

    ctx = ngx_http_c1_sr_ctx(r);

    if (ctx != NULL) {
        ctx->status = r->headers_out.status;
        ctx->header_seen = 1;
        ctx->len = 0;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "c1: C1 answered HTTP %ui", ctx->status);

        /* a stream asked for and given (not a JSON answer): relay it */

        if (ctx->stream && ctx->status == NGX_HTTP_OK && !ctx->streaming
            && !(r->headers_out.content_type.len >= 16
                 && ngx_strncasecmp(r->headers_out.content_type.data,
                                    (u_char *) "application/json", 16)
                    == 0))
        {
            lcf = ngx_http_get_module_loc_conf(r->main, ngx_http_c1_module);

            ctx->streaming = 1;
            c1_relay_init(&ctx->relay, ctx->mode, lcf->max_response_size);

            /* each event must reach us as soon as C1 sends it */

            if (r->upstream) {
                r->upstream->buffering = 0;
            }
        }

        return ngx_http_next_header_filter(r);
    }

    if (r != r->main || r->headers_out.status < NGX_HTTP_BAD_REQUEST) {
        return ngx_http_next_header_filter(r);
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_c1_module);

    if (lcf->pass.len == 0) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_c1_module);

    if (ctx != NULL && ctx->own) {
        return ngx_http_next_header_filter(r);
    }

    /* a page of nginx's own in a c1_pass location: make it JSON */

    ctx = ngx_http_c1_get_ctx(r);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    switch (r->headers_out.status) {

    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        c1_error_set(&err, r->headers_out.status, "invalid_request_error",
                     "request_too_large", NULL,
                     "the request body is too large");
        break;

    case NGX_HTTP_NOT_ALLOWED:
        c1_error_set(&err, r->headers_out.status, "invalid_request_error",
                     "method_not_allowed", NULL,
                     "this endpoint only takes POST requests");
        break;

    default:
        if (r->headers_out.status >= NGX_HTTP_INTERNAL_SERVER_ERROR) {
            c1_error_set(&err, r->headers_out.status, "server_error",
                         "internal_error", NULL,
                         "the server could not answer (HTTP %d)",
                         (int) r->headers_out.status);

        } else {
            c1_error_set(&err, r->headers_out.status,
                         "invalid_request_error", "invalid_request", NULL,
                         "the request could not be served (HTTP %d)",
                         (int) r->headers_out.status);
        }
    }

    if (ngx_http_c1_error_json(r, &err, &ctx->error) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->replace = 1;
    ctx->error_code = err.code;

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.charset.len = 0;

    ngx_http_clear_content_length(r);
    r->headers_out.content_length_n = ctx->error.len;

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_c1_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t          *b;
    ngx_uint_t          last;
    ngx_chain_t        *cl, out;
    ngx_http_c1_ctx_t  *ctx;

    ctx = ngx_http_c1_sr_ctx(r);

    if (ctx != NULL && ctx->streaming) {
        return ngx_http_c1_relay(r, ctx, in);
    }

    if (in == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    if (ctx != NULL) {
        return ngx_http_c1_collect(r, ctx, in);
    }

    if (r != r->main) {
        return ngx_http_next_body_filter(r, in);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_c1_module);

    if (ctx == NULL || !ctx->replace) {
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

    ctx->replace = 0;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = ctx->error.data;
    b->last = ctx->error.data + ctx->error.len;
    b->memory = 1;
    b->last_buf = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_next_body_filter(r, &out);
}


/* C1's answer, kept whole (up to c1_max_response_size) for the handler */

static ngx_int_t
ngx_http_c1_collect(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    ngx_chain_t *in)
{
    off_t                    length;
    size_t                   n, size;
    u_char                  *p;
    ngx_buf_t               *b;
    ngx_chain_t             *cl;
    ngx_http_c1_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r->main, ngx_http_c1_module);

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        if (!ngx_buf_in_memory(b)) {
            b->file_pos = b->file_last;
            continue;
        }

        n = b->last - b->pos;

        if (n == 0 || ctx->too_large) {
            b->pos = b->last;
            continue;
        }

        if (ctx->first_msec == 0) {
            ctx->first_msec = ngx_current_msec;
        }

        if (ctx->len + n > lcf->max_response_size) {

            /* stop reading from C1: the post-subrequest handler goes on */

            ctx->too_large = 1;
            ctx->aborted = 1;
            b->pos = b->last;
            return NGX_ERROR;
        }

        if (ctx->len + n > ctx->size) {
            size = ngx_max(ctx->size * 2, ctx->len + n);

            /*
             * room for the whole answer at once when C1 said how long it
             * is, else for most answers (component trees of up to 20 KB)
             */

            length = r->headers_out.content_length_n;

            if (length > 0 && (off_t) size <= length
                && length <= (off_t) lcf->max_response_size)
            {
                size = (size_t) length;

            } else if (ctx->size == 0) {
                size = ngx_max(size, NGX_HTTP_C1_ANSWER_SIZE);
            }

            size = ngx_min(size, lcf->max_response_size);

            p = ngx_alloc(size, r->connection->log);
            if (p == NULL) {
                return NGX_ERROR;
            }

            if (ctx->buf) {
                ngx_memcpy(p, ctx->buf, ctx->len);
                ngx_free(ctx->buf);
            }

            ctx->buf = p;
            ctx->size = size;
        }

        ngx_memcpy(ctx->buf + ctx->len, b->pos, n);
        ctx->len += n;
        b->pos = b->last;
    }

    return NGX_OK;
}


/*
 * C1's stream, relayed as its events complete.  Upstream buffers are read
 * whole and given back at once (the parser keeps a cut line in memory of
 * its own); while the client has not taken what was sent before, they are
 * held unread, so that nginx stops reading from C1 too.
 */

static ngx_int_t
ngx_http_c1_relay(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    ngx_chain_t *in)
{
    int                      rc;
    size_t                   len;
    ngx_int_t                n;
    ngx_buf_t               *b;
    ngx_uint_t               last;
    ngx_chain_t             *cl, *ln, *out;
    ngx_http_c1_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r->main, ngx_http_c1_module);

    if (in && ngx_chain_add_copy(r->pool, &ctx->in, in) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ctx->busy) {
        n = ngx_http_next_body_filter(r, NULL);

        out = NULL;
        ngx_chain_update_chains(r->pool, &ctx->free, &ctx->busy, &out,
                                (ngx_buf_tag_t) &ngx_http_c1_module);

        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (ctx->busy) {
            return NGX_OK;
        }
    }

    last = 0;
    rc = C1_OK;

    for (cl = ctx->in; cl; cl = ln) {
        ln = cl->next;
        b = cl->buf;

        if (rc == C1_OK && ngx_buf_in_memory(b) && b->last > b->pos) {
            ctx->relayed += b->last - b->pos;

            if ((size_t) ctx->relayed > lcf->stream_max_size) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "c1: C1's stream ran over c1_stream_max_size");
                ctx->over_size = 1;
                rc = C1_ERROR;

            } else {
                rc = c1_relay_feed(&ctx->relay, b->pos, b->last - b->pos);
            }
        }

        if (b->last_in_chain || b->last_buf) {
            last = 1;
        }

        b->pos = b->last;
        b->file_pos = b->file_last;

        ngx_free_chain(r->pool, cl);
    }

    ctx->in = NULL;

    if (rc == C1_NOMEM) {
        return NGX_ERROR;
    }

    if (last && rc == C1_OK) {
        rc = c1_relay_end(&ctx->relay);

        if (rc == C1_NOMEM) {
            return NGX_ERROR;
        }

        ctx->ended = (rc == C1_OK);
    }

    len = ctx->relay.out.len;

    /* a prompt stream's answer, whole, for the thread */

    if (len && ctx->thread && !ctx->answer_lost) {
        if (ctx->answer.len + len > lcf->max_response_size) {
            ctx->answer_lost = 1;
            c1_buf_free(&ctx->answer);

        } else if (c1_buf_append(&ctx->answer, ctx->relay.out.data, len)
                   != C1_OK)
        {
            return NGX_ERROR;
        }
    }

    if (len) {
        if (ctx->first_msec == 0) {
            ctx->first_msec = ngx_current_msec;
        }

        if (!ctx->started && ngx_http_c1_start_stream(r->main, ctx) != NGX_OK)
        {
            return NGX_ERROR;
        }

        cl = ngx_chain_get_free_buf(r->pool, &ctx->free);
        if (cl == NULL) {
            return NGX_ERROR;
        }

        b = cl->buf;

        if ((size_t) (b->end - b->start) < len) {
            if (b->start) {
                ngx_pfree(r->pool, b->start);
            }

            b->start = ngx_palloc(r->pool, ngx_max(len, 8192));
            if (b->start == NULL) {
                return NGX_ERROR;
            }

            b->end = b->start + ngx_max(len, 8192);
        }

        b->pos = b->start;
        b->last = ngx_cpymem(b->pos, ctx->relay.out.data, len);
        b->temporary = 1;
        b->flush = 1;
        b->tag = (ngx_buf_tag_t) &ngx_http_c1_module;

        ctx->relay.out.len = 0;

        n = ngx_http_next_body_filter(r, cl);

        ngx_chain_update_chains(r->pool, &ctx->free, &ctx->busy, &cl,
                                (ngx_buf_tag_t) &ngx_http_c1_module);

        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    if (rc == C1_ERROR && !ctx->ended) {

        /* garbage or an error from C1: stop reading it */

        ctx->aborted = 1;
        return NGX_ERROR;
    }

    return NGX_OK;
}
