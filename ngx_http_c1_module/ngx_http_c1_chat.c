
/*
 * ngx_http_c1_module: the C1 chat-completions call.
 *
 * A call (ngx_http_c1_call.c) with C1's headers and the request body the
 * protocol units built.  Its answer is either kept whole (up to
 * c1_max_response_size) for the handler, or, when a stream was asked for
 * and C1 streams, relayed to the client as its events complete.  What
 * went wrong is only recorded here; the handler words it.
 */


#include "ngx_http_c1_module.h"


static ngx_int_t ngx_http_c1_chat_header(ngx_http_c1_call_t *call);
static ngx_int_t ngx_http_c1_chat_data(ngx_http_c1_call_t *call,
    ngx_chain_t *in);
static ngx_int_t ngx_http_c1_collect(ngx_http_c1_call_t *call,
    ngx_http_c1_ctx_t *ctx, ngx_chain_t *in);
static ngx_int_t ngx_http_c1_relay(ngx_http_c1_call_t *call,
    ngx_http_c1_ctx_t *ctx, ngx_chain_t *in);
static ngx_int_t ngx_http_c1_chat_header_add(ngx_http_request_t *r,
    ngx_array_t *a, char *name, ngx_str_t *value);


static ngx_str_t  ngx_http_c1_post = ngx_string("POST");


ngx_int_t
ngx_http_c1_chat_start(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    ngx_str_t *body)
{
    u_char                  *p;
    ngx_str_t                value, *key;
    ngx_array_t             *headers;
    ngx_http_c1_call_t      *call;
    ngx_http_c1_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_c1_module);

    call = &ctx->call;

    ngx_memzero(call, sizeof(ngx_http_c1_call_t));

    call->r = r;
    call->uri = lcf->pass;
    call->args = lcf->pass_args;
    call->method = NGX_HTTP_POST;
    call->method_name = ngx_http_c1_post;
    call->header_handler = ngx_http_c1_chat_header;
    call->data_handler = ngx_http_c1_chat_data;
    call->data = ctx;
    call->timeout = ctx->stream ? lcf->stream_timeout : 0;
    call->body = *body;

    key = &ctx->key;

    headers = ngx_array_create(r->pool, 3, sizeof(ngx_keyval_t));
    if (headers == NULL) {
        return NGX_ERROR;
    }

    ngx_str_set(&value, "application/json");

    if (ngx_http_c1_chat_header_add(r, headers, "Content-Type", &value)
        != NGX_OK)
    {
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

        if (ngx_http_c1_chat_header_add(r, headers, "Authorization", &value)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ctx->stream) {
        ngx_str_set(&value, "text/event-stream");

    } else {
        ngx_str_set(&value, "application/json");
    }

    if (ngx_http_c1_chat_header_add(r, headers, "Accept", &value) != NGX_OK) {
        return NGX_ERROR;
    }

    call->headers = headers;

    return ngx_http_c1_call_start(call);
}


static ngx_int_t
ngx_http_c1_chat_header_add(ngx_http_request_t *r, ngx_array_t *a,
    char *name, ngx_str_t *value)
{
    ngx_keyval_t  *kv;

    kv = ngx_array_push(a);
    if (kv == NULL) {
        return NGX_ERROR;
    }

    kv->key.data = (u_char *) name;
    kv->key.len = ngx_strlen(name);
    kv->value = *value;

    return NGX_OK;
}


/* C1's header: a stream asked for and given (not a JSON answer) is relayed */

static ngx_int_t
ngx_http_c1_chat_header(ngx_http_c1_call_t *call)
{
    ngx_http_request_t      *sr;
    ngx_http_c1_ctx_t       *ctx;
    ngx_http_c1_loc_conf_t  *lcf;

    ctx = call->data;
    sr = call->sr;

    ctx->len = 0;

    if (ctx->stream && call->status == NGX_HTTP_OK && !ctx->relaying
        && !(sr->headers_out.content_type.len >= 16
             && ngx_strncasecmp(sr->headers_out.content_type.data,
                                (u_char *) "application/json", 16)
                == 0))
    {
        lcf = ngx_http_get_module_loc_conf(call->r, ngx_http_c1_module);

        ctx->relaying = 1;
        c1_relay_init(&ctx->relay, ctx->mode, lcf->max_response_size);
        ctx->relay.keep = (ctx->begun && ctx->mode == C1_MODE_OPENAI);
        ctx->relay.hide_usage = ctx->hide_usage;
        ctx->relay.tools = ctx->tc;

        /* each event must reach us as soon as C1 sends it */

        if (sr->upstream) {
            sr->upstream->buffering = 0;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_c1_chat_data(ngx_http_c1_call_t *call, ngx_chain_t *in)
{
    ngx_http_c1_ctx_t  *ctx;

    ctx = call->data;

    if (ctx->relaying) {
        return ngx_http_c1_relay(call, ctx, in);
    }

    if (in == NULL) {
        return NGX_OK;
    }

    return ngx_http_c1_collect(call, ctx, in);
}


/* C1's answer, kept whole (up to c1_max_response_size) for the handler */

static ngx_int_t
ngx_http_c1_collect(ngx_http_c1_call_t *call, ngx_http_c1_ctx_t *ctx,
    ngx_chain_t *in)
{
    off_t                    length;
    size_t                   n, size;
    u_char                  *p;
    ngx_buf_t               *b;
    ngx_chain_t             *cl;
    ngx_http_request_t      *sr;
    ngx_http_c1_loc_conf_t  *lcf;

    sr = call->sr;
    lcf = ngx_http_get_module_loc_conf(call->r, ngx_http_c1_module);

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        if (b->last_in_chain || b->last_buf) {
            call->last = 1;
        }

        if (!ngx_buf_in_memory(b)) {
            b->file_pos = b->file_last;
            continue;
        }

        n = b->last - b->pos;

        if (n == 0) {
            continue;
        }

        if (ctx->first_msec == 0) {
            ctx->first_msec = ngx_current_msec;
        }

        if (ctx->len + n > lcf->max_response_size) {

            /* stop reading from C1: the handler answers the error */

            ctx->too_large = 1;
            b->pos = b->last;
            return NGX_ERROR;
        }

        if (ctx->len + n > ctx->size) {
            size = ngx_max(ctx->size * 2, ctx->len + n);

            /*
             * room for the whole answer at once when C1 said how long it
             * is, else for most answers (component trees of up to 20 KB)
             */

            length = sr->headers_out.content_length_n;

            if (length > 0 && (off_t) size <= length
                && length <= (off_t) lcf->max_response_size)
            {
                size = (size_t) length;

            } else if (ctx->size == 0) {
                size = ngx_max(size, NGX_HTTP_C1_ANSWER_SIZE);
            }

            size = ngx_min(size, lcf->max_response_size);

            p = ngx_alloc(size, sr->connection->log);
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
 * its own).  While the client has not taken what was sent before, new
 * ones are held unread in call->held, so that nginx stops reading from C1
 * too; they are read, the last one included, as the client takes more.
 */

static ngx_int_t
ngx_http_c1_relay(ngx_http_c1_call_t *call, ngx_http_c1_ctx_t *ctx,
    ngx_chain_t *in)
{
    int                      rc;
    size_t                   len;
    ngx_int_t                n;
    ngx_buf_t               *b;
    ngx_chain_t             *cl, *ln;
    ngx_http_request_t      *r, *sr;
    ngx_http_c1_loc_conf_t  *lcf;

    r = call->r;
    sr = call->sr;
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_c1_module);

    if (in && ngx_chain_add_copy(r->pool, &call->held, in) != NGX_OK) {
        return NGX_ERROR;
    }

    n = ngx_http_c1_response_flush(ctx, sr);

    if (n == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (n == NGX_AGAIN) {
        return NGX_OK;
    }

    rc = C1_OK;

    for (cl = call->held; cl; cl = ln) {
        ln = cl->next;
        b = cl->buf;

        if (rc == C1_OK && ngx_buf_in_memory(b) && b->last > b->pos) {
            ctx->relayed += b->last - b->pos;

            if ((size_t) ctx->relayed > lcf->stream_max_size) {
                ctx->over_size = 1;
                rc = C1_ERROR;

            } else {
                rc = c1_relay_feed(&ctx->relay, b->pos, b->last - b->pos);
            }
        }

        if (b->last_in_chain || b->last_buf) {
            call->last = 1;
        }

        b->pos = b->last;
        b->file_pos = b->file_last;

        ngx_free_chain(r->pool, cl);
    }

    call->held = NULL;

    if (rc == C1_NOMEM) {
        return NGX_ERROR;
    }

    if (call->last && rc == C1_OK) {
        rc = c1_relay_end(&ctx->relay);

        if (rc == C1_NOMEM) {
            return NGX_ERROR;
        }

        ctx->relay_ended = (rc == C1_OK);
    }

    /* an OpenAI stream's answer, whole, for the thread */

    if (ctx->relay.keep && ctx->relay.answer.len > lcf->max_response_size) {
        ctx->relay.keep = 0;
        ctx->answer_lost = 1;
        c1_buf_free(&ctx->relay.answer);
    }

    len = ctx->relay.out.len;

    /*
     * with tries left to make, the client gets nothing before content:
     * a stream that fails before it can still be tried again unseen
     */

    if (len && lcf->retry.tries && ctx->relay.content == 0
        && ctx->response.state == NGX_HTTP_C1_RESPONSE_NONE)
    {
        len = 0;
    }

    if (len) {
        if (ctx->first_msec == 0) {
            ctx->first_msec = ngx_current_msec;
        }

        /* a prompt stream's answer, whole, for the thread */

        if (ctx->begun && ctx->mode == C1_MODE_PROMPT && !ctx->answer_lost) {
            if (ctx->answer.len + len > lcf->max_response_size) {
                ctx->answer_lost = 1;
                c1_buf_free(&ctx->answer);

            } else if (c1_buf_append(&ctx->answer, ctx->relay.out.data, len)
                       != C1_OK)
            {
                return NGX_ERROR;
            }
        }

        n = ngx_http_c1_response_write(r, ctx, sr, ctx->relay.out.data, len);

        ctx->relay.out.len = 0;

        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    if (rc == C1_ERROR && !ctx->relay_ended) {

        /* garbage or an error from C1: stop reading it */

        return NGX_ERROR;
    }

    return NGX_OK;
}
