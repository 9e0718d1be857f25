
/*
 * ngx_http_c1_module: calls.
 *
 * A call is one subrequest to an internal location (normally a proxy_pass
 * to C1): its own method, body and headers, a deadline of the module's
 * own, and handlers for its answer's header and data, run from the
 * subrequest's header and body filters.  The post-subrequest handler only
 * records how the call ended; the main request, woken when the
 * subrequest is done, decides what follows.
 *
 * While a data handler holds input it has not read yet (the client is
 * slower than C1), the subrequest is marked buffered: nginx then keeps it
 * open, and runs its body filters again as the client takes more, until
 * every byte of the answer has been read.
 */


#include "ngx_http_c1_module.h"


static ngx_int_t ngx_http_c1_call_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_c1_call_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_http_c1_call_t *ngx_http_c1_call_of(ngx_http_request_t *r);
static ngx_int_t ngx_http_c1_call_done(ngx_http_request_t *sr, void *data,
    ngx_int_t rc);
static ngx_uint_t ngx_http_c1_call_error_page(ngx_http_request_t *sr,
    ngx_int_t rc);
static ngx_int_t ngx_http_c1_call_headers(ngx_http_c1_call_t *call);
static void ngx_http_c1_call_deadline(ngx_event_t *ev);
static void ngx_http_c1_call_abort(ngx_http_c1_call_t *call);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


ngx_int_t
ngx_http_c1_call_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_c1_call_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_c1_call_body_filter;

    return NGX_OK;
}


/*
 * The call a subrequest is, found through the main request: an error_page
 * inside the internal location would wipe the subrequest's own context.
 */

static ngx_http_c1_call_t *
ngx_http_c1_call_of(ngx_http_request_t *r)
{
    ngx_http_c1_ctx_t  *ctx;

    if (r == r->main) {
        return NULL;
    }

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_c1_module);

    if (ctx == NULL) {
        return NULL;
    }

    if (ctx->call.sr == r) {
        return &ctx->call;
    }

    return ctx->tool_calls ? ngx_http_c1_tool_call_of(ctx, r) : NULL;
}


ngx_int_t
ngx_http_c1_call_start(ngx_http_c1_call_t *call)
{
    ngx_buf_t                   *b;
    ngx_str_t                    server;
    ngx_chain_t                 *cl;
    ngx_http_request_t          *r, *sr;
    ngx_http_request_body_t     *rb;
    ngx_http_post_subrequest_t  *ps;

    r = call->r;

    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    if (ps == NULL) {
        return NGX_ERROR;
    }

    ps->handler = ngx_http_c1_call_done;
    ps->data = call;

    /*
     * a tool's call runs beside others, in the background: it never
     * waits for the one before it to be the active subrequest
     */

    if (ngx_http_subrequest(r, &call->uri,
                            call->args.len ? &call->args : NULL, &sr, ps,
                            call->background
                            ? NGX_HTTP_SUBREQUEST_BACKGROUND : 0)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    call->sr = sr;
    call->state = NGX_HTTP_C1_CALL_RUNNING;

    sr->method = call->method;
    sr->method_name = call->method_name;
    sr->header_only = 0;
    sr->filter_need_in_memory = 1;

    /* headers of its own: nothing of the client's goes on */

    server = sr->headers_in.server;
    ngx_memzero(&sr->headers_in, sizeof(ngx_http_headers_in_t));
    sr->headers_in.server = server;
    sr->headers_in.content_length_n = call->body.len;
    sr->headers_in.keep_alive_n = -1;

    if (ngx_http_c1_call_headers(call) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the body: one buffer in memory, never an empty one */

    rb = ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t));
    if (rb == NULL) {
        return NGX_ERROR;
    }

    if (call->body.len) {
        b = ngx_calloc_buf(r->pool);
        if (b == NULL) {
            return NGX_ERROR;
        }

        b->pos = call->body.data;
        b->last = call->body.data + call->body.len;
        b->start = b->pos;
        b->end = b->last;
        b->memory = 1;
        b->last_buf = 1;

        cl = ngx_alloc_chain_link(r->pool);
        if (cl == NULL) {
            return NGX_ERROR;
        }

        cl->buf = b;
        cl->next = NULL;

        rb->bufs = cl;
        rb->buf = b;
    }

    sr->request_body = rb;
    sr->request_body_no_buffering = 0;

    if (call->timeout) {
        call->deadline.handler = ngx_http_c1_call_deadline;
        call->deadline.data = call;
        call->deadline.log = r->connection->log;
        ngx_add_timer(&call->deadline, call->timeout);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "c1: call \"%V\", %uz bytes, deadline %M", &call->uri,
                   call->body.len, call->timeout);

    return NGX_OK;
}


static ngx_int_t
ngx_http_c1_call_headers(ngx_http_c1_call_t *call)
{
    ngx_uint_t           i, n;
    ngx_keyval_t        *kv;
    ngx_table_elt_t     *h;
    ngx_http_request_t  *sr;

    sr = call->sr;
    n = call->headers ? call->headers->nelts : 0;

    if (ngx_list_init(&sr->headers_in.headers, call->r->pool, n ? n : 1,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    kv = n ? call->headers->elts : NULL;

    for (i = 0; i < n; i++) {
        h = ngx_list_push(&sr->headers_in.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->key = kv[i].key;
        h->value = kv[i].value;
#if (nginx_version >= 1023000)
        h->next = NULL;
#endif

        h->lowcase_key = ngx_pnalloc(call->r->pool, h->key.len);
        if (h->lowcase_key == NULL) {
            return NGX_ERROR;
        }

        h->hash = ngx_hash_strlow(h->lowcase_key, h->key.data, h->key.len);

        /* the ones nginx itself reads */

        if (h->key.len == sizeof("Content-Type") - 1
            && ngx_strncmp(h->lowcase_key, "content-type", h->key.len) == 0)
        {
            sr->headers_in.content_type = h;

        } else if (h->key.len == sizeof("Authorization") - 1
                   && ngx_strncmp(h->lowcase_key, "authorization",
                                  h->key.len) == 0)
        {
            sr->headers_in.authorization = h;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_c1_call_header_filter(ngx_http_request_t *r)
{
    ngx_http_c1_call_t  *call;

    call = ngx_http_c1_call_of(r);

    if (call == NULL) {
        return ngx_http_next_header_filter(r);
    }

    call->status = r->headers_out.status;
    call->header = 1;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "c1: the call's answer: HTTP %ui", call->status);

    if (call->header_handler(call) != NGX_OK) {
        call->stopped = 1;
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_c1_call_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_int_t            rc;
    ngx_chain_t         *cl;
    ngx_http_c1_call_t  *call;

    call = ngx_http_c1_call_of(r);

    if (call == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    if (call->timed_out && !call->stopped) {
        call->stopped = 1;
        call->held = NULL;
        r->buffered &= ~NGX_HTTP_C1_BUFFERED;
    }

    if (call->stopped || call->state == NGX_HTTP_C1_CALL_DONE) {

        /* what comes after the call was stopped is not read */

        for (cl = in; cl; cl = cl->next) {
            cl->buf->pos = cl->buf->last;
            cl->buf->file_pos = cl->buf->file_last;
        }

        return call->stopped ? NGX_ERROR : NGX_OK;
    }

    rc = call->data_handler(call, in);

    if (call->held) {
        r->buffered |= NGX_HTTP_C1_BUFFERED;

    } else {
        r->buffered &= ~NGX_HTTP_C1_BUFFERED;
    }

    if (rc == NGX_ERROR) {
        call->stopped = 1;
        call->held = NULL;
        r->buffered &= ~NGX_HTTP_C1_BUFFERED;
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the subrequest ends: what happened is recorded, nothing decided */

static ngx_int_t
ngx_http_c1_call_done(ngx_http_request_t *sr, void *data, ngx_int_t rc)
{
    ngx_http_c1_call_t *call = data;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "c1: call done, rc:%i, held:%d", rc, call->held != NULL);

    /* an error_page of the location answers instead: not over yet */

    if (ngx_http_c1_call_error_page(sr, rc)) {
        return rc;
    }

    if (call->rc == 0 && rc != NGX_OK && rc != NGX_AGAIN && rc != NGX_DONE) {
        call->rc = rc;
    }

    /* nginx wakes no request for a background subrequest: this one does */

    if (call->background && !call->woke) {
        call->woke = 1;
        (void) ngx_http_post_request(call->r, NULL);
    }

    if (call->stopped) {

        /*
         * our handler stopped it (a limit, garbage): nginx marked the
         * client's connection failed for that alone
         */

        sr->connection->error = 0;
        return NGX_OK;
    }

    if (rc == NGX_ERROR && !sr->connection->error) {

        /* C1 failed after its header: a reset, a timeout */

        call->failed = 1;
        return NGX_OK;
    }

    return rc;
}


/*
 * Whether nginx will answer this error with an error_page of the
 * subrequest's location (as ngx_http_special_response_handler() decides):
 * then the subrequest ends later, redirected, and is judged then.
 */

static ngx_uint_t
ngx_http_c1_call_error_page(ngx_http_request_t *sr, ngx_int_t rc)
{
    ngx_uint_t                 i;
    ngx_http_err_page_t       *err_page;
    ngx_http_core_loc_conf_t  *clcf;

    if (rc < NGX_HTTP_SPECIAL_RESPONSE || rc == NGX_HTTP_CLOSE
        || rc == NGX_HTTP_REQUEST_TIME_OUT
        || rc == NGX_HTTP_CLIENT_CLOSED_REQUEST
        || sr->error_page || sr->uri_changes == 0)
    {
        return 0;
    }

    clcf = ngx_http_get_module_loc_conf(sr, ngx_http_core_module);

    if (clcf->error_pages == NULL) {
        return 0;
    }

    err_page = clcf->error_pages->elts;

    for (i = 0; i < clcf->error_pages->nelts; i++) {
        if (err_page[i].status == rc) {
            return 1;
        }
    }

    return 0;
}


/*
 * The call's deadline: whatever the upstream is doing (connecting, waiting
 * for a header, streaming, trying its next server), the call ends now.
 */

static void
ngx_http_c1_call_deadline(ngx_event_t *ev)
{
    ngx_http_c1_call_t *call = ev->data;

    ngx_http_upstream_t  *u;

    if (call->state != NGX_HTTP_C1_CALL_RUNNING || call->sr->done) {
        return;
    }

    u = call->sr->upstream;

    if (u != NULL && u->cleanup == NULL) {

        /* C1's answer is all in; the client is still taking it */

        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ev->log, 0, "c1: call deadline");

    call->timed_out = 1;

    if (u == NULL) {

        /*
         * not an upstream: the call is stopped at its next piece; a
         * tool's round waits no longer for it
         */

        if (call->background) {
            (void) ngx_http_post_request(call->r, NULL);
            ngx_http_run_posted_requests(call->r->connection);
        }

        return;
    }

    ngx_http_c1_call_abort(call);

    /* a timer, not the client's connection: nginx runs nothing posted */

    ngx_http_run_posted_requests(call->r->connection);
}


/*
 * The upstream is ended through its own cleanup, as when the request
 * goes away: its connection is closed, nothing is counted against the
 * server and no next server is tried.  That finalizes the subrequest with
 * NGX_DONE, which only gives back its hold on the main request; what
 * nginx does for a subrequest that is done is then done here.
 */

static void
ngx_http_c1_call_abort(ngx_http_c1_call_t *call)
{
    ngx_connection_t     *c;
    ngx_http_request_t   *r, *sr;
    ngx_http_upstream_t  *u;

    r = call->r;
    sr = call->sr;
    u = sr->upstream;
    c = r->connection;

    call->stopped = 1;
    call->held = NULL;
    sr->buffered &= ~NGX_HTTP_C1_BUFFERED;

    r->main->count++;

    (*u->cleanup)(sr);

    if (sr->done) {
        return;
    }

    sr->done = 1;
    r->main->count--;

    if (r->postponed && r->postponed->request == sr) {
        r->postponed = r->postponed->next;
    }

    if (c->data == sr) {
        c->data = r;
    }

    call->state = NGX_HTTP_C1_CALL_DONE;
    call->end_msec = ngx_current_msec;

    (void) ngx_http_post_request(r, NULL);
}


/*
 * Whether the call is over, as the main request sees it when it runs
 * again: its subrequest is done (every byte of the answer read).
 */

ngx_uint_t
ngx_http_c1_call_over(ngx_http_c1_call_t *call)
{
    if (call->state == NGX_HTTP_C1_CALL_RUNNING && call->sr->done) {
        call->state = NGX_HTTP_C1_CALL_DONE;
        call->end_msec = ngx_current_msec;
    }

    if (call->state == NGX_HTTP_C1_CALL_DONE && call->deadline.timer_set) {
        ngx_del_timer(&call->deadline);
    }

    return call->state == NGX_HTTP_C1_CALL_DONE;
}


/* the main request goes, however it ended */

void
ngx_http_c1_call_cleanup(ngx_http_c1_call_t *call)
{
    if (call->deadline.timer_set) {
        ngx_del_timer(&call->deadline);
    }
}
