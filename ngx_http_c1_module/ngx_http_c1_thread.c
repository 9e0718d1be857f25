
/*
 * ngx_http_c1_module: a request's threads, whatever store keeps them.
 *
 * Whose they are (c1_history_owner), a turn's store operations (begin,
 * commit, end) for the handler, GET and DELETE of a thread on the chat
 * location, and the thread API of a c1_threads location: OpenUI Chat's
 * default thread contract, which C1Chat's thread hooks use as well.
 *
 *   GET    PREFIX/get[?limit=N&cursor=C]   a page of the owner's threads
 *   POST   PREFIX/create                   a new thread
 *   PATCH  PREFIX/update/ID                its title
 *   DELETE PREFIX/delete/ID
 *   GET    PREFIX/get/ID                   its messages
 *   PUT    PREFIX/message/ID               one message's content
 *
 * Every operation may end later (the store answers over the network):
 * the request then waits for it, and what it hands out is the request's.
 */


#include "ngx_http_c1_module.h"
#include "ngx_http_c1_api.h"


typedef enum {
    NGX_HTTP_C1_ROUTE_LIST = 0,
    NGX_HTTP_C1_ROUTE_GET,
    NGX_HTTP_C1_ROUTE_CREATE,
    NGX_HTTP_C1_ROUTE_UPDATE,
    NGX_HTTP_C1_ROUTE_DELETE,
    NGX_HTTP_C1_ROUTE_MESSAGE,
    NGX_HTTP_C1_ROUTE_NONE
} ngx_http_c1_route_e;


typedef struct {
    char                  *name;
    size_t                 len;
    ngx_uint_t             id;              /* takes /ID */
    ngx_uint_t             methods;
    char                  *allow;
    ngx_http_c1_store_op_e op;
} ngx_http_c1_route_t;


static ngx_http_c1_route_t  ngx_http_c1_routes[] = {
    { "get", 3, 0, NGX_HTTP_GET|NGX_HTTP_HEAD, "GET, HEAD",
      NGX_HTTP_C1_STORE_LIST },
    { "get", 3, 1, NGX_HTTP_GET|NGX_HTTP_HEAD, "GET, HEAD",
      NGX_HTTP_C1_STORE_GET },
    { "create", 6, 0, NGX_HTTP_POST, "POST", NGX_HTTP_C1_STORE_CREATE },
    { "update", 6, 1, NGX_HTTP_PATCH, "PATCH", NGX_HTTP_C1_STORE_RENAME },
    { "delete", 6, 1, NGX_HTTP_DELETE, "DELETE", NGX_HTTP_C1_STORE_DELETE },
    { "message", 7, 1, NGX_HTTP_PUT, "PUT", NGX_HTTP_C1_STORE_REPLACE }
};


static void ngx_http_c1_turn_cleanup(void *data);
static int ngx_http_c1_keep_msg(void *data, const unsigned char *id,
    size_t id_len, int role, const unsigned char *content, size_t len);

static void ngx_http_c1_commit_done(ngx_http_c1_store_op_t *op);
static void ngx_http_c1_commit_log(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx);
static ngx_int_t ngx_http_c1_thread_arg(ngx_http_request_t *r,
    ngx_str_t *id);
static ngx_int_t ngx_http_c1_op_answer(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx);
static void ngx_http_c1_op_done(ngx_http_c1_store_op_t *op);
static ngx_int_t ngx_http_c1_op_start(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx);
static ngx_uint_t ngx_http_c1_route(ngx_http_request_t *r,
    ngx_http_c1_loc_conf_t *lcf, ngx_str_t *id);
static void ngx_http_c1_api_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_c1_api_parse(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx);
static ngx_http_c1_err_e ngx_http_c1_api_list_args(ngx_http_request_t *r,
    ngx_http_c1_store_op_t *op);
static ngx_int_t ngx_http_c1_api_answer(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx);
static ngx_int_t ngx_http_c1_api_store_error(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx);
static ngx_int_t ngx_http_c1_json(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx, ngx_uint_t status, char *json, size_t len);
static void ngx_http_c1_meta(ngx_http_c1_meta_t *m, c1_api_thread_t *t);
static c1_api_msg_t *ngx_http_c1_api_msgs(ngx_pool_t *pool,
    ngx_http_c1_msg_t *m, ngx_uint_t n, ngx_uint_t *nmsgs);


static ngx_str_t  ngx_http_c1_type_json = ngx_string("application/json");


/* whose threads: "" is the anonymous owner, when none is configured */

ngx_http_c1_err_e
ngx_http_c1_owner(ngx_http_request_t *r, ngx_http_c1_loc_conf_t *lcf,
    ngx_str_t *owner)
{
    ngx_str_null(owner);

    if (lcf->owner == NULL) {
        ngx_str_set(owner, "");
        return NGX_HTTP_C1_ERR_NONE;
    }

    if (ngx_http_complex_value(r, lcf->owner, owner) != NGX_OK) {
        return NGX_HTTP_C1_ERR_STORE;
    }

    if (owner->len == 0) {
        return NGX_HTTP_C1_ERR_OWNER_REQUIRED;
    }

    if (owner->len > C1_OWNER_MAX) {
        return NGX_HTTP_C1_ERR_OWNER_INVALID;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "c1 owner: \"%V\"", owner);

    return NGX_HTTP_C1_ERR_NONE;
}


/*
 * A turn begins on the request's thread: it is held until the turn is
 * committed or the request ends.  Prompt mode loads the thread's messages
 * (into ctx->op.out) for C1's request; OpenUI's turn brings its own.
 * NGX_OK: done, ctx->op.rc says how; NGX_AGAIN: "handler" follows.
 */

ngx_int_t
ngx_http_c1_thread_begin(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    ngx_http_c1_store_handler_pt handler)
{
    ngx_int_t                rc;
    ngx_pool_cleanup_t      *cln;
    ngx_http_c1_store_op_t  *op;
    ngx_http_c1_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_c1_module);

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_c1_turn_cleanup;
    cln->data = ctx;

    ctx->store = lcf->history;

    op = &ctx->op;
    ngx_memzero(op, sizeof(ngx_http_c1_store_op_t));

    op->type = NGX_HTTP_C1_STORE_BEGIN;
    op->store = ctx->store;
    op->pool = r->pool;
    op->log = r->connection->log;
    op->owner = ctx->owner;
    op->thread = ctx->thread_id;
    op->load = !ctx->openui;
    op->handler = handler;
    op->data = r;

    rc = ngx_http_c1_store_run(op);

    if (rc == NGX_OK && op->rc == NGX_OK) {
        ctx->begun = 1;
        ctx->token = op->token;
    }

    return rc;
}


/*
 * What a turn keeps: C1Chat's prompt under prompt.id (its answer under
 * responseId), or OpenUI's messages; and the title a thread this turn
 * makes takes, from the first user message.
 */

ngx_int_t
ngx_http_c1_thread_keep(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    c1_request_t *req)
{
    u_char             *title;
    ngx_uint_t          i;
    ngx_array_t        *a;
    ngx_http_c1_msg_t  *m;

    a = ngx_array_create(r->pool, 8, sizeof(ngx_http_c1_msg_t));
    if (a == NULL) {
        return NGX_ERROR;
    }

    if (req->openui) {
        if (c1_request_keep(req, ngx_http_c1_keep_msg, a) != C1_OK) {
            return NGX_ERROR;
        }

    } else {
        if (ngx_http_c1_keep_msg(a, req->prompt_id_len
                                    ? (u_char *) req->prompt_id : NULL,
                                 req->prompt_id_len, C1_ROLE_USER,
                                 (u_char *) req->prompt, req->prompt_len)
            != C1_OK)
        {
            return NGX_ERROR;
        }

        ctx->answer_id.len = req->response_id_len;
        ctx->answer_id.data = ngx_pstrdup(r->pool, &(ngx_str_t) {
                                              req->response_id_len,
                                              (u_char *) req->response_id });
        if (ctx->answer_id.data == NULL) {
            return NGX_ERROR;
        }
    }

    ctx->keep = a->elts;
    ctx->nkeep = a->nelts;

    for (i = 0; i < ctx->nkeep; i++) {
        m = &ctx->keep[i];

        if (m->role != C1_ROLE_USER) {
            continue;
        }

        title = ngx_pnalloc(r->pool, C1_TITLE_AUTO_MAX * 4 + 1);
        if (title == NULL) {
            return NGX_ERROR;
        }

        ctx->title.data = title;
        ctx->title.len = c1_title_from_content(m->content.data,
                                               m->content.len, title);
        break;
    }

    return NGX_OK;
}


static int
ngx_http_c1_keep_msg(void *data, const unsigned char *id, size_t id_len,
    int role, const unsigned char *content, size_t len)
{
    ngx_array_t *a = data;

    ngx_http_c1_msg_t  *m;

    m = ngx_array_push(a);
    if (m == NULL) {
        return C1_NOMEM;
    }

    ngx_memzero(m, sizeof(ngx_http_c1_msg_t));

    m->role = role;

    if (id) {
        m->id.data = ngx_pnalloc(a->pool, id_len);
        if (m->id.data == NULL) {
            return C1_NOMEM;
        }

        ngx_memcpy(m->id.data, id, id_len);
        m->id.len = id_len;

    } else if (ngx_http_c1_thread_new_id(a->pool, &m->id) != NGX_OK) {
        return C1_NOMEM;
    }

    m->content.len = len;
    m->content.data = ngx_pnalloc(a->pool, len ? len : 1);

    if (m->content.data == NULL) {
        return C1_NOMEM;
    }

    if (len) {
        ngx_memcpy(m->content.data, content, len);
    }

    return C1_OK;
}


/*
 * C1's answer is whole: the turn's messages join the thread (prompt mode:
 * the prompt and the answer; OpenUI: the request's messages and the
 * answer become the thread's), and the thread is free again.
 */

void
ngx_http_c1_thread_commit(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    u_char *answer, size_t len)
{
    ngx_int_t                rc;
    ngx_uint_t               n, t;
    ngx_http_c1_msg_t       *msgs, *m;
    ngx_http_c1_store_op_t  *op;

    if (!ctx->begun) {
        return;
    }

    /* the prompt, the tool rounds' messages, the answer */

    t = ctx->tool_keep ? ctx->tool_keep->nelts : 0;
    n = ctx->nkeep + t + 1;

    msgs = ngx_pcalloc(r->pool, n * sizeof(ngx_http_c1_msg_t));
    if (msgs == NULL) {
        return;                             /* the cleanup ends the turn */
    }

    if (ctx->nkeep) {
        ngx_memcpy(msgs, ctx->keep, ctx->nkeep * sizeof(ngx_http_c1_msg_t));
    }

    if (t) {
        ngx_memcpy(&msgs[ctx->nkeep], ctx->tool_keep->elts,
                   t * sizeof(ngx_http_c1_msg_t));
    }

    m = &msgs[n - 1];
    m->role = C1_ROLE_ASSISTANT;
    m->id = ctx->answer_id;
    m->content.data = answer;
    m->content.len = len;

    if (m->id.len == 0
        && ngx_http_c1_thread_new_id(r->pool, &m->id) != NGX_OK)
    {
        return;
    }

    op = &ctx->op;
    ngx_memzero(op, sizeof(ngx_http_c1_store_op_t));

    op->type = NGX_HTTP_C1_STORE_COMMIT;
    op->store = ctx->store;
    op->pool = r->pool;
    op->log = r->connection->log;
    op->owner = ctx->owner;
    op->thread = ctx->thread_id;
    op->token = ctx->token;
    op->msgs = msgs;
    op->nmsgs = n;
    op->replace = ctx->openui;
    op->title = ctx->title;
    op->handler = ngx_http_c1_commit_done;
    op->data = r;

    /* the store has the turn now: it unlocks the thread, kept or not */

    ctx->begun = 0;

    rc = ngx_http_c1_store_run(op);

    if (rc == NGX_AGAIN) {
        r->main->count++;                   /* till the store answers */
        return;
    }

    ngx_http_c1_commit_log(r, ctx);
}


static void
ngx_http_c1_commit_done(ngx_http_c1_store_op_t *op)
{
    ngx_http_request_t *r = op->data;

    ngx_connection_t   *c;
    ngx_http_c1_ctx_t  *ctx;

    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_c1_module);

    ngx_http_c1_commit_log(r, ctx);

    ngx_http_finalize_request(r, NGX_DONE);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_c1_commit_log(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    switch (ctx->op.rc) {

    case NGX_OK:
        return;

    case NGX_HTTP_C1_STORE_FULL:
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "c1: c1 history store \"%V\" is full: this turn of "
                      "thread \"%V\" was not kept", &ctx->store->name,
                      &ctx->thread_id);
        return;

    default:
        ngx_http_c1_store_failed(&ctx->store->name, NGX_HTTP_C1_STORE_COMMIT);
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "c1: c1 history store \"%V\" did not keep this turn "
                      "of thread \"%V\"", &ctx->store->name,
                      &ctx->thread_id);
    }
}


/* the request ends without a committed turn: the thread stays as it was */

static void
ngx_http_c1_turn_cleanup(void *data)
{
    ngx_http_c1_ctx_t *ctx = data;

    ngx_http_c1_store_op_t  op;

    if (!ctx->begun) {
        return;
    }

    ctx->begun = 0;

    /* nothing is handed out: the operation needs no pool nor an answer */

    ngx_memzero(&op, sizeof(ngx_http_c1_store_op_t));

    op.type = NGX_HTTP_C1_STORE_END;
    op.store = ctx->store;
    op.log = ngx_cycle->log;
    op.owner = ctx->owner;
    op.thread = ctx->thread_id;
    op.token = ctx->token;

    (void) ngx_http_c1_store_run(&op);
}


/* an id of the module's own: a random UUID */

ngx_int_t
ngx_http_c1_thread_new_id(ngx_pool_t *pool, ngx_str_t *id)
{
    id->data = ngx_pnalloc(pool, C1_UUID_LEN);
    if (id->data == NULL) {
        return NGX_ERROR;
    }

    if (c1_uuid((char *) id->data) != C1_OK) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, ngx_errno,
                      "c1: getrandom() failed");
        return NGX_ERROR;
    }

    id->len = C1_UUID_LEN;

    return NGX_OK;
}


/* GET or DELETE ?threadId=ID on the chat location */

ngx_int_t
ngx_http_c1_thread_op(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    ngx_http_c1_loc_conf_t *lcf)
{
    ngx_http_c1_err_e  id;

    ctx->kind = NGX_HTTP_C1_KIND_THREAD_OP;

    id = ngx_http_c1_owner(r, lcf, &ctx->owner);

    if (id != NGX_HTTP_C1_ERR_NONE) {
        return ngx_http_c1_fail(r, ctx, id, NULL, 0);
    }

    if (ngx_http_c1_thread_arg(r, &ctx->thread_id) != NGX_OK) {
        return ngx_http_c1_fail(r, ctx, NGX_HTTP_C1_ERR_THREAD_ID, NULL, 0);
    }

    ngx_memzero(&ctx->op, sizeof(ngx_http_c1_store_op_t));

    ctx->op.type = (r->method == NGX_HTTP_DELETE) ? NGX_HTTP_C1_STORE_DELETE
                                                   : NGX_HTTP_C1_STORE_GET;
    ctx->store = lcf->history;

    return ngx_http_c1_op_start(r, ctx);
}


/* the threadId argument, unescaped and checked */

static ngx_int_t
ngx_http_c1_thread_arg(ngx_http_request_t *r, ngx_str_t *id)
{
    u_char     *dst, *src;
    ngx_str_t   arg;

    if (ngx_http_arg(r, (u_char *) "threadId", 8, &arg) != NGX_OK) {
        return NGX_ERROR;
    }

    id->data = ngx_pnalloc(r->pool, arg.len);
    if (id->data == NULL) {
        return NGX_ERROR;
    }

    dst = id->data;
    src = arg.data;

    ngx_unescape_uri(&dst, &src, arg.len, NGX_UNESCAPE_URI);

    id->len = dst - id->data;

    if (!c1_thread_id_valid(id->data, id->len)) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * An operation of the thread API (or of the chat location) is run: the
 * answer at once, or when the store gives it.
 */

static ngx_int_t
ngx_http_c1_op_start(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    ngx_int_t                rc;
    ngx_http_c1_store_op_t  *op;

    op = &ctx->op;

    op->store = ctx->store;
    op->pool = r->pool;
    op->log = r->connection->log;
    op->owner = ctx->owner;
    op->thread = ctx->thread_id;
    op->handler = ngx_http_c1_op_done;
    op->data = r;

    ctx->phase = NGX_HTTP_C1_PHASE_STORE;

    rc = ngx_http_c1_store_run(op);

    if (rc == NGX_AGAIN) {
        r->main->count++;
        return NGX_DONE;
    }

    if (rc != NGX_OK) {
        op->rc = NGX_ERROR;
    }

    return ngx_http_c1_op_answer(r, ctx);
}


static void
ngx_http_c1_op_done(ngx_http_c1_store_op_t *op)
{
    ngx_http_request_t *r = op->data;

    ngx_connection_t   *c;
    ngx_http_c1_ctx_t  *ctx;

    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_c1_module);

    ngx_http_finalize_request(r, ngx_http_c1_op_answer(r, ctx));
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_http_c1_op_answer(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    ctx->phase = NGX_HTTP_C1_PHASE_DONE;

    if (ctx->op.rc == NGX_ERROR) {
        ngx_http_c1_store_failed(&ctx->store->name, ctx->op.type);
    }

    if (ctx->op.rc != NGX_OK) {
        return ngx_http_c1_api_store_error(r, ctx);
    }

    return ngx_http_c1_api_answer(r, ctx);
}


/* the thread API: a c1_threads location's content handler */

ngx_int_t
ngx_http_c1_thread_api_handler(ngx_http_request_t *r)
{
    ngx_int_t                rc;
    ngx_uint_t               route;
    ngx_http_c1_ctx_t       *ctx;
    ngx_http_c1_err_e        id;
    ngx_http_c1_route_t     *rt;
    ngx_http_c1_loc_conf_t  *lcf;

    if (r != r->main) {
        return NGX_HTTP_NOT_FOUND;
    }

    ctx = ngx_http_c1_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_c1_module);

    ctx->kind = NGX_HTTP_C1_KIND_THREAD_OP;
    ctx->store = lcf->threads;

    route = ngx_http_c1_route(r, lcf, &ctx->thread_id);

    if (route == NGX_HTTP_C1_ROUTE_NONE) {
        id = NGX_HTTP_C1_ERR_ROUTE;
        goto refused;
    }

    rt = &ngx_http_c1_routes[route];

    if (!(r->method & rt->methods)) {
        if (ngx_http_c1_response_add_header(r, "Allow", rt->allow)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        id = NGX_HTTP_C1_ERR_API_METHOD;
        goto refused;
    }

    if (rt->id && !c1_thread_id_valid(ctx->thread_id.data,
                                      ctx->thread_id.len))
    {
        id = NGX_HTTP_C1_ERR_THREAD_ID;
        goto refused;
    }

    id = ngx_http_c1_owner(r, lcf, &ctx->owner);

    if (id != NGX_HTTP_C1_ERR_NONE) {
        goto refused;
    }

    ngx_memzero(&ctx->op, sizeof(ngx_http_c1_store_op_t));
    ctx->op.type = rt->op;

    if (rt->methods & (NGX_HTTP_POST|NGX_HTTP_PATCH|NGX_HTTP_PUT)) {

        if (r->headers_in.content_type
            && !(r->headers_in.content_type->value.len >= 16
                 && ngx_strncasecmp(r->headers_in.content_type->value.data,
                                    (u_char *) "application/json", 16)
                    == 0))
        {
            id = NGX_HTTP_C1_ERR_API_MEDIA_TYPE;
            goto refused;
        }

        ctx->phase = NGX_HTTP_C1_PHASE_BODY;

        rc = ngx_http_read_client_request_body(r, ngx_http_c1_api_body);

        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        return NGX_DONE;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (rt->op == NGX_HTTP_C1_STORE_LIST) {
        id = ngx_http_c1_api_list_args(r, &ctx->op);

        if (id != NGX_HTTP_C1_ERR_NONE) {
            return ngx_http_c1_fail(r, ctx, id, NULL, 0);
        }
    }

    return ngx_http_c1_op_start(r, ctx);

refused:

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_c1_fail(r, ctx, id, NULL, 0);
}


/* the route of the URI under the location's prefix, and its ID */

static ngx_uint_t
ngx_http_c1_route(ngx_http_request_t *r, ngx_http_c1_loc_conf_t *lcf,
    ngx_str_t *id)
{
    u_char               *p, *last;
    ngx_uint_t            i;
    ngx_http_c1_route_t  *rt;

    ngx_str_null(id);

    p = r->uri.data;
    last = r->uri.data + r->uri.len;

    if ((size_t) (last - p) < lcf->threads_prefix.len) {
        return NGX_HTTP_C1_ROUTE_NONE;
    }

    p += lcf->threads_prefix.len;

    if (p < last && *p == '/') {
        p++;
    }

    for (i = 0; i < NGX_HTTP_C1_ROUTE_NONE; i++) {
        rt = &ngx_http_c1_routes[i];

        if ((size_t) (last - p) < rt->len
            || ngx_strncmp(p, rt->name, rt->len) != 0)
        {
            continue;
        }

        if (!rt->id) {
            if ((size_t) (last - p) == rt->len) {
                return i;
            }

            continue;
        }

        if ((size_t) (last - p) <= rt->len + 1 || p[rt->len] != '/') {
            continue;
        }

        id->data = p + rt->len + 1;
        id->len = last - id->data;

        return i;
    }

    return NGX_HTTP_C1_ROUTE_NONE;
}


/* ?limit=N (1 to 200) and ?cursor=C (what nextCursor gave) */

static ngx_http_c1_err_e
ngx_http_c1_api_list_args(ngx_http_request_t *r, ngx_http_c1_store_op_t *op)
{
    u_char     *p;
    uint64_t    cursor;
    ngx_int_t   n;
    ngx_str_t   arg;

    op->limit = NGX_HTTP_C1_PAGE;
    op->cursor = 0;

    if (ngx_http_arg(r, (u_char *) "limit", 5, &arg) == NGX_OK) {
        n = ngx_atoi(arg.data, arg.len);

        if (n < 1 || n > NGX_HTTP_C1_PAGE_MAX) {
            return NGX_HTTP_C1_ERR_LIMIT;
        }

        op->limit = n;
    }

    if (ngx_http_arg(r, (u_char *) "cursor", 6, &arg) == NGX_OK) {

        if (arg.len == 0 || arg.len > 19) {
            return NGX_HTTP_C1_ERR_CURSOR;
        }

        cursor = 0;

        for (p = arg.data; p < arg.data + arg.len; p++) {
            if (*p < '0' || *p > '9') {
                return NGX_HTTP_C1_ERR_CURSOR;
            }

            cursor = cursor * 10 + (*p - '0');
        }

        if (cursor == 0) {
            return NGX_HTTP_C1_ERR_CURSOR;
        }

        op->cursor = cursor;
    }

    return NGX_HTTP_C1_ERR_NONE;
}


/* BODY: create, update and message take JSON */

static void
ngx_http_c1_api_body(ngx_http_request_t *r)
{
    ngx_int_t           rc;
    ngx_http_c1_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_c1_module);

    rc = ngx_http_c1_api_parse(r, ctx);

    /* a body refused has had its answer (DONE) */

    if (rc == NGX_OK && ctx->phase != NGX_HTTP_C1_PHASE_DONE) {
        rc = ngx_http_c1_op_start(r, ctx);
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_c1_api_parse(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    int                      rc;
    u_char                  *title;
    size_t                   tlen;
    ngx_str_t                body;
    c1_error_t               err;
    c1_api_body_t            b;
    ngx_http_c1_msg_t       *m;
    ngx_http_c1_store_op_t  *op;

    op = &ctx->op;

    if (ngx_http_c1_read_body(r, &body) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    switch (op->type) {

    case NGX_HTTP_C1_STORE_CREATE:
        rc = c1_api_parse_create(body.data, body.len, &b, &err);
        break;

    case NGX_HTTP_C1_STORE_RENAME:
        rc = c1_api_parse_update(body.data, body.len, &b, &err);
        break;

    default: /* NGX_HTTP_C1_STORE_REPLACE */
        rc = c1_api_parse_message(body.data, body.len, &b, &err);
        break;
    }

    if (rc == C1_NOMEM) {
        c1_api_body_free(&b);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != C1_OK) {
        c1_api_body_free(&b);
        return ngx_http_c1_fail(r, ctx, NGX_HTTP_C1_ERR_API_BODY, &err, 0);
    }

    switch (op->type) {

    case NGX_HTTP_C1_STORE_CREATE:

        if (ngx_http_c1_thread_new_id(r->pool, &ctx->thread_id) != NGX_OK) {
            goto failed;
        }

        title = ngx_pnalloc(r->pool, b.title.data ? b.title.len + 1
                                                  : C1_TITLE_AUTO_MAX * 4 + 1);
        if (title == NULL) {
            goto failed;
        }

        if (b.title.data) {
            tlen = b.title.len;
            ngx_memcpy(title, b.title.data, tlen);

        } else {
            tlen = c1_title_from_content(b.first.data, b.first.len, title);
        }

        op->title.data = title;
        op->title.len = tlen;
        break;

    case NGX_HTTP_C1_STORE_RENAME:
        op->title.data = ngx_pnalloc(r->pool, b.title.len + 1);
        if (op->title.data == NULL) {
            goto failed;
        }

        ngx_memcpy(op->title.data, b.title.data, b.title.len);
        op->title.len = b.title.len;
        break;

    default: /* NGX_HTTP_C1_STORE_REPLACE */
        m = ngx_pcalloc(r->pool, sizeof(ngx_http_c1_msg_t));
        if (m == NULL) {
            goto failed;
        }

        m->id.len = b.id.len;
        m->id.data = ngx_pnalloc(r->pool, b.id.len + b.content.len + 1);
        if (m->id.data == NULL) {
            goto failed;
        }

        ngx_memcpy(m->id.data, b.id.data, b.id.len);

        m->content.len = b.content.len;
        m->content.data = m->id.data + b.id.len;

        if (b.content.len) {
            ngx_memcpy(m->content.data, b.content.data, b.content.len);
        }

        if (b.role.data == NULL) {
            m->role = 0;

        } else if (b.role.len == 4
                   && ngx_strncmp(b.role.data, "user", 4) == 0)
        {
            m->role = C1_ROLE_USER;

        } else {
            m->role = C1_ROLE_ASSISTANT;
        }

        op->msgs = m;
        op->nmsgs = 1;
        break;
    }

    c1_api_body_free(&b);

    return NGX_OK;

failed:

    c1_api_body_free(&b);

    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}


/* the store's answer, in the API's JSON */

static ngx_int_t
ngx_http_c1_api_answer(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    u_char                  *p;
    char                    *json;
    size_t                   len;
    ngx_uint_t               i, n, status;
    c1_str_t                 next;
    c1_api_msg_t            *msgs;
    c1_api_thread_t          t, *ts;
    ngx_http_c1_store_op_t  *op;
    ngx_http_c1_loc_conf_t  *lcf;
    u_char                   cursor[NGX_INT64_LEN];

    op = &ctx->op;
    status = NGX_HTTP_OK;

    switch (op->type) {

    case NGX_HTTP_C1_STORE_LIST:
        ts = ngx_palloc(r->pool, (op->nmetas ? op->nmetas : 1)
                                 * sizeof(c1_api_thread_t));
        if (ts == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        for (i = 0; i < op->nmetas; i++) {
            ngx_http_c1_meta(&op->metas[i], &ts[i]);
        }

        if (op->next) {
            p = ngx_sprintf(cursor, "%uL", op->next);
            next.data = cursor;
            next.len = p - cursor;
        }

        json = c1_api_render_list(ts, op->nmetas, op->next ? &next : NULL,
                                  &len);
        break;

    case NGX_HTTP_C1_STORE_GET:
        msgs = ngx_http_c1_api_msgs(r->pool, op->out, op->nout, &n);
        if (msgs == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        json = c1_api_render_messages(msgs, n, &len);
        break;

    case NGX_HTTP_C1_STORE_DELETE:
        lcf = ngx_http_get_module_loc_conf(r, ngx_http_c1_module);

        if (lcf->threads) {
            return ngx_http_c1_response_send(r, ctx, NGX_HTTP_NO_CONTENT,
                                             &ngx_http_c1_type_json,
                                             NULL, 0);
        }

        /* the chat location's DELETE ?threadId= */

        return ngx_http_c1_response_send(r, ctx, NGX_HTTP_OK,
                                         &ngx_http_c1_type_json,
                                         (u_char *) "{\"deleted\":true}",
                                         sizeof("{\"deleted\":true}") - 1);

    case NGX_HTTP_C1_STORE_REPLACE:
        msgs = ngx_http_c1_api_msgs(r->pool, op->out, 1, &n);
        if (msgs == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        json = c1_api_render_message(msgs, &len);
        break;

    default: /* CREATE, RENAME */
        if (op->type == NGX_HTTP_C1_STORE_CREATE) {
            status = NGX_HTTP_CREATED;
        }

        ngx_http_c1_meta(&op->meta, &t);

        json = c1_api_render_thread(&t, &len);
        break;
    }

    return ngx_http_c1_json(r, ctx, status, json, len);
}


static ngx_int_t
ngx_http_c1_api_store_error(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    ngx_http_c1_err_e  id;

    switch (ctx->op.rc) {

    case NGX_HTTP_C1_STORE_NONE:
        id = NGX_HTTP_C1_ERR_THREAD_NOT_FOUND;
        break;

    case NGX_HTTP_C1_STORE_NO_MSG:
        id = NGX_HTTP_C1_ERR_MESSAGE_NOT_FOUND;
        break;

    case NGX_HTTP_C1_STORE_ROLE:
        id = NGX_HTTP_C1_ERR_MESSAGE_ROLE;
        break;

    case NGX_HTTP_C1_STORE_BUSY:
        id = NGX_HTTP_C1_ERR_THREAD_RUNNING;
        break;

    case NGX_HTTP_C1_STORE_FULL:
        id = NGX_HTTP_C1_ERR_HISTORY_FULL;
        break;

    default:
        id = NGX_HTTP_C1_ERR_STORE;
    }

    return ngx_http_c1_fail(r, ctx, id, NULL, 0);
}


/* rendered JSON (malloc()ed), sent and given back */

static ngx_int_t
ngx_http_c1_json(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    ngx_uint_t status, char *json, size_t len)
{
    u_char  *p;

    if (json == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        c1_free(json);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(p, json, len);
    c1_free(json);

    return ngx_http_c1_response_send(r, ctx, status, &ngx_http_c1_type_json,
                                     p, len);
}


static void
ngx_http_c1_meta(ngx_http_c1_meta_t *m, c1_api_thread_t *t)
{
    t->id.data = m->id.data;
    t->id.len = m->id.len;
    t->title.data = m->title.data;
    t->title.len = m->title.len;
    t->created = m->created;
    t->updated = m->updated;
}


/* the store's messages as the API renders them */

/* the messages a client sees: a tool round's are C1's alone */

static c1_api_msg_t *
ngx_http_c1_api_msgs(ngx_pool_t *pool, ngx_http_c1_msg_t *m, ngx_uint_t n,
    ngx_uint_t *nmsgs)
{
    ngx_uint_t     i, k;
    c1_api_msg_t  *msgs;

    msgs = ngx_palloc(pool, (n ? n : 1) * sizeof(c1_api_msg_t));
    if (msgs == NULL) {
        return NULL;
    }

    for (i = 0, k = 0; i < n; i++) {
        if (m[i].role != C1_ROLE_USER && m[i].role != C1_ROLE_ASSISTANT) {
            continue;
        }

        msgs[k].id.data = m[i].id.data;
        msgs[k].id.len = m[i].id.len;
        msgs[k].role = (m[i].role == C1_ROLE_USER) ? "user" : "assistant";
        msgs[k].content.data = m[i].content.data;
        msgs[k].content.len = m[i].content.len;
        k++;
    }

    *nmsgs = k;

    return msgs;
}
