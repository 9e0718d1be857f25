
/*
 * ngx_http_c1_module: conversation threads in a shared memory zone, seen
 * by every worker and kept across reloads: the c1_history_zone and
 * c1_history directives, turns begun and committed for the handler, and
 * GET and DELETE of a thread.
 */


#include "ngx_http_c1_module.h"


#define NGX_HTTP_C1_BUCKETS       4096


static ngx_int_t ngx_http_c1_init_zone(ngx_shm_zone_t *shm_zone, void *data);
static void ngx_http_c1_thread_cleanup(void *data);
static ngx_int_t ngx_http_c1_thread_id(ngx_http_request_t *r, ngx_str_t *id);
static void ngx_http_c1_log_evicted(ngx_http_request_t *r,
    ngx_http_c1_zone_t *zone, uint64_t evicted);


void *
c1_history_mem_alloc(void *pool, size_t size)
{
    return ngx_slab_alloc_locked(pool, size);
}


void
c1_history_mem_free(void *pool, void *p)
{
    ngx_slab_free_locked(pool, p);
}


/*
 * Whether a process (a turn's holder: the worker that runs it) is alive.
 * A lock held by a process that is gone (killed mid-turn), or whose pid
 * now names another process, is stale; nothing else is.
 */

int
c1_history_holder_alive(const c1_holder_t *holder)
{
    ngx_pid_t  pid;

    pid = (ngx_pid_t) holder->pid;

    if (pid == ngx_pid) {
        return holder->start == ngx_http_c1_process_start(pid);
    }

    if (kill(pid, 0) == -1 && ngx_errno == NGX_ESRCH) {
        return 0;
    }

    return holder->start == 0
           || holder->start == ngx_http_c1_process_start(pid);
}


/*
 * When a process started, in clock ticks since boot (the 22nd field of
 * /proc/PID/stat), to tell it from a later one given the same pid; 0
 * where that cannot be read.  A worker reads its own once.
 */

uint64_t
ngx_http_c1_process_start(ngx_pid_t pid)
{
    int               fd;
    u_char           *p, *last;
    ssize_t           n;
    uint64_t          start;
    ngx_uint_t        field;
    u_char            path[64], stat[1024];

    static ngx_pid_t  self;
    static uint64_t   self_start;

    if (pid == self && self != 0) {
        return self_start;
    }

    ngx_sprintf(path, "/proc/%P/stat%Z", pid);

    fd = open((char *) path, O_RDONLY);
    if (fd == -1) {
        return 0;
    }

    n = read(fd, stat, sizeof(stat) - 1);
    close(fd);

    if (n <= 0) {
        return 0;
    }

    last = stat + n;

    /* the name, in parentheses, may hold anything: skip to its end */

    for (p = last; p > stat && p[-1] != ')'; p--) {
        /* void */
    }

    start = 0;
    field = 2;

    for ( /* void */ ; p < last; p++) {
        if (*p == ' ') {
            field++;
            continue;
        }

        if (field == 22) {
            if (*p < '0' || *p > '9') {
                return 0;
            }

            start = start * 10 + (*p - '0');
        }

        if (field > 22) {
            break;
        }
    }

    if (pid == ngx_pid) {
        self = pid;
        self_start = start;
    }

    return start;
}


char *
ngx_http_c1_history_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    u_char              *p;
    ssize_t              size;
    ngx_int_t            n;
    ngx_str_t           *value, name, s;
    ngx_uint_t           i;
    ngx_shm_zone_t           *shm_zone;
    ngx_http_c1_zone_t       *zone, **zp;
    ngx_http_c1_main_conf_t  *mcf;

    value = cf->args->elts;

    zone = ngx_pcalloc(cf->pool, sizeof(ngx_http_c1_zone_t));
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    zone->max_messages = 100;
    zone->inactive = 86400;

    size = 0;
    ngx_str_null(&name);

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {
            name.data = value[i].data + 5;
            p = (u_char *) ngx_strchr(name.data, ':');

            if (p == NULL) {
                goto invalid;
            }

            name.len = p - name.data;

            s.data = p + 1;
            s.len = value[i].data + value[i].len - s.data;

            size = ngx_parse_size(&s);

            if (size == NGX_ERROR || name.len == 0) {
                goto invalid;
            }

            if (size < (ssize_t) (64 * ngx_pagesize)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "c1_history_zone \"%V\" is too small, "
                                   "it needs at least %uzk", &name,
                                   64 * ngx_pagesize / 1024);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "max_messages=", 13) == 0) {
            n = ngx_atoi(value[i].data + 13, value[i].len - 13);

            if (n < 2 || n > 100000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"max_messages\" takes a number from 2 "
                                   "to 100000, not \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            zone->max_messages = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "inactive=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

            n = ngx_parse_time(&s, 1);

            if (n == NGX_ERROR || n == 0) {
                goto invalid;
            }

            zone->inactive = n;
            continue;
        }

        goto invalid;
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"c1_history_zone\" needs zone=NAME:SIZE");
        return NGX_CONF_ERROR;
    }

    shm_zone = ngx_shared_memory_add(cf, &name, size, &ngx_http_c1_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "c1_history_zone \"%V\" is already defined",
                           &name);
        return NGX_CONF_ERROR;
    }

    zone->name = name;
    zone->size = size;

    shm_zone->init = ngx_http_c1_init_zone;
    shm_zone->data = zone;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_c1_module);

    zp = ngx_array_push(&mcf->zones);
    if (zp == NULL) {
        return NGX_CONF_ERROR;
    }

    *zp = zone;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" of \"c1_history_zone\"",
                       &value[i]);
    return NGX_CONF_ERROR;
}


char *
ngx_http_c1_history(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_c1_loc_conf_t *lcf = conf;

    ngx_str_t  *value;

    if (lcf->history != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        lcf->history = NULL;
        return NGX_CONF_OK;
    }

    lcf->history = ngx_shared_memory_add(cf, &value[1], 0,
                                         &ngx_http_c1_module);
    if (lcf->history == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_c1_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_c1_zone_t  *ozone = data;

    size_t               len;
    c1_history_t        *sh;
    ngx_slab_pool_t     *shpool;
    ngx_http_c1_zone_t  *zone;

    zone = shm_zone->data;

    if (ozone) {

        /* a reload: the threads stay; the limits are the new ones */

        zone->sh = ozone->sh;
        zone->shpool = ozone->shpool;

        zone->sh->max_messages = zone->max_messages;
        zone->sh->inactive = zone->inactive;

        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        zone->shpool = shpool;
        zone->sh = shpool->data;
        return NGX_OK;
    }

    sh = ngx_slab_alloc(shpool, sizeof(c1_history_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&shpool->mutex);

    if (c1_history_init(sh, NGX_HTTP_C1_BUCKETS, shpool) != C1_HISTORY_OK) {
        ngx_shmtx_unlock(&shpool->mutex);
        return NGX_ERROR;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    sh->max_messages = zone->max_messages;
    sh->inactive = zone->inactive;
    sh->max_message = shm_zone->shm.size / 8;

    zone->sh = sh;
    zone->shpool = shpool;
    shpool->data = sh;

    len = sizeof(" in c1_history_zone \"\"") + shm_zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in c1_history_zone \"%V\"%Z",
                &shm_zone->shm.name);

    shpool->log_nomem = 0;

    return NGX_OK;
}


/*
 * A turn begins on the request's thread: the thread is busy until the
 * request ends, and its stored messages (stable while it is busy) are
 * handed out for the C1 request.
 */

ngx_int_t
ngx_http_c1_thread_begin(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    ngx_shm_zone_t *shm_zone, c1_request_t *req, c1_turn_t **turns,
    size_t *nturns)
{
    int                  rc;
    size_t               n;
    uint64_t             evicted;
    c1_msg_t            *m;
    c1_turn_t           *t;
    c1_holder_t          holder;
    c1_thread_t         *thread;
    ngx_pool_cleanup_t  *cln;
    ngx_http_c1_zone_t  *zone;

    *turns = NULL;
    *nturns = 0;

    zone = shm_zone->data;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    holder.pid = (uint64_t) ngx_pid;
    holder.start = ngx_http_c1_process_start(ngx_pid);

    ngx_shmtx_lock(&zone->shpool->mutex);

    c1_history_expire(zone->sh, ngx_time(), 2);

    evicted = zone->sh->evicted;

    rc = c1_history_begin(zone->sh, (u_char *) req->thread_id,
                          req->thread_id_len, ngx_time(), &holder, &thread,
                          &ctx->token);

    evicted = zone->sh->evicted - evicted;

    if (rc == C1_HISTORY_OK) {
        n = thread->nmsgs;

        t = n ? ngx_palloc(r->pool, n * sizeof(c1_turn_t)) : NULL;

        if (n && t == NULL) {
            c1_history_end(zone->sh, thread, ctx->token);
            ngx_shmtx_unlock(&zone->shpool->mutex);
            return NGX_ERROR;
        }

        for (n = 0, m = thread->first; m; m = m->next, n++) {
            t[n].role = (m->role == C1_ROLE_USER) ? "user" : "assistant";
            t[n].data = m->data;
            t[n].len = m->len;
        }

        *turns = t;
        *nturns = n;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (evicted) {
        ngx_http_c1_log_evicted(r, zone, evicted);
    }

    if (rc == C1_HISTORY_BUSY) {
        return NGX_BUSY;
    }

    if (rc != C1_HISTORY_OK) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "c1: c1_history_zone \"%V\" is full: thread \"%s\" "
                      "goes without history", &zone->name, req->thread_id);
        return NGX_DECLINED;
    }

    ctx->zone = zone;
    ctx->thread = thread;

    cln->handler = ngx_http_c1_thread_cleanup;
    cln->data = ctx;

    return NGX_OK;
}


/* C1's answer is whole: the user message and the answer join the thread */

void
ngx_http_c1_thread_commit(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    u_char *answer, size_t len)
{
    int                  rc;
    uint64_t             evicted;
    ngx_http_c1_zone_t  *zone;

    zone = ctx->zone;

    if (zone == NULL || ctx->thread == NULL) {
        return;
    }

    ngx_shmtx_lock(&zone->shpool->mutex);

    evicted = zone->sh->evicted;

    rc = c1_history_commit(zone->sh, ctx->thread, ctx->token,
                           ctx->prompt.data, ctx->prompt.len, answer, len,
                           ngx_time());

    evicted = zone->sh->evicted - evicted;

    c1_history_end(zone->sh, ctx->thread, ctx->token);

    ngx_shmtx_unlock(&zone->shpool->mutex);

    ctx->thread = NULL;

    if (evicted) {
        ngx_http_c1_log_evicted(r, zone, evicted);
    }

    if (rc != C1_HISTORY_OK) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "c1: c1_history_zone \"%V\" is full: this turn of "
                      "thread \"%V\" was not kept", &zone->name,
                      &ctx->thread_id);
    }
}


/* the request ends without a committed turn: the thread stays as it was */

static void
ngx_http_c1_thread_cleanup(void *data)
{
    ngx_http_c1_ctx_t *ctx = data;

    ngx_http_c1_zone_t  *zone;

    zone = ctx->zone;

    if (zone == NULL || ctx->thread == NULL) {
        return;
    }

    ngx_shmtx_lock(&zone->shpool->mutex);
    c1_history_end(zone->sh, ctx->thread, ctx->token);
    ngx_shmtx_unlock(&zone->shpool->mutex);

    ctx->thread = NULL;
}


static void
ngx_http_c1_log_evicted(ngx_http_request_t *r, ngx_http_c1_zone_t *zone,
    uint64_t evicted)
{
    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "c1: c1_history_zone \"%V\" is full: the history of %uL "
                  "least recently used thread%s was dropped", &zone->name,
                  evicted, evicted == 1 ? "" : "s");
}


/* GET ?threadId=ID: the thread as [{"role", "content"}, ...] */

ngx_int_t
ngx_http_c1_thread_get(ngx_http_request_t *r, ngx_shm_zone_t *shm_zone,
    ngx_str_t *json)
{
    char                *out;
    size_t               n, len;
    ngx_str_t            id;
    c1_msg_t            *msg;
    c1_turn_t           *turns;
    c1_thread_t         *t;
    ngx_http_c1_zone_t  *zone;

    if (ngx_http_c1_thread_id(r, &id) != NGX_OK) {
        return NGX_HTTP_BAD_REQUEST;
    }

    zone = shm_zone->data;

    ngx_shmtx_lock(&zone->shpool->mutex);

    c1_history_expire(zone->sh, ngx_time(), 2);

    t = c1_history_find(zone->sh, id.data, id.len);

    if (t == NULL || t->nmsgs == 0) {
        ngx_shmtx_unlock(&zone->shpool->mutex);
        return NGX_HTTP_NOT_FOUND;
    }

    turns = ngx_palloc(r->pool, t->nmsgs * sizeof(c1_turn_t));
    if (turns == NULL) {
        ngx_shmtx_unlock(&zone->shpool->mutex);
        return NGX_ERROR;
    }

    for (n = 0, msg = t->first; msg; msg = msg->next, n++) {
        turns[n].role = (msg->role == C1_ROLE_USER) ? "user" : "assistant";
        turns[n].data = msg->data;
        turns[n].len = msg->len;
    }

    out = c1_turns_render(turns, n, &len);

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (out == NULL) {
        return NGX_ERROR;
    }

    json->len = len;
    json->data = ngx_pnalloc(r->pool, len);

    if (json->data == NULL) {
        c1_free(out);
        return NGX_ERROR;
    }

    ngx_memcpy(json->data, out, len);
    c1_free(out);

    return NGX_OK;
}


/* DELETE ?threadId=ID */

ngx_int_t
ngx_http_c1_thread_delete(ngx_http_request_t *r, ngx_shm_zone_t *shm_zone)
{
    int                  rc;
    ngx_str_t            id;
    ngx_http_c1_zone_t  *zone;

    if (ngx_http_c1_thread_id(r, &id) != NGX_OK) {
        return NGX_HTTP_BAD_REQUEST;
    }

    zone = shm_zone->data;

    ngx_shmtx_lock(&zone->shpool->mutex);
    rc = c1_history_delete(zone->sh, id.data, id.len);
    ngx_shmtx_unlock(&zone->shpool->mutex);

    switch (rc) {

    case C1_HISTORY_OK:
        return NGX_OK;

    case C1_HISTORY_BUSY:
        return NGX_HTTP_CONFLICT;

    default:
        return NGX_HTTP_NOT_FOUND;
    }
}


/* the threadId argument, unescaped and checked */

static ngx_int_t
ngx_http_c1_thread_id(ngx_http_request_t *r, ngx_str_t *id)
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
