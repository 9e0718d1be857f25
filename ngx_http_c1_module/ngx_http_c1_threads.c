
/*
 * ngx_http_c1_module: the thread store in a shared memory zone, seen by
 * every worker and kept across reloads (its first backend), and the
 * directives that name stores: c1_history_zone, c1_history, c1_threads.
 * Every operation ends at once: the zone is locked, the change made or
 * what is asked for copied out into the operation's pool, the zone
 * unlocked; nothing is rendered under the lock.
 */


#include "ngx_http_c1_module.h"


#define NGX_HTTP_C1_BUCKETS       4096


static ngx_int_t ngx_http_c1_init_zone(ngx_shm_zone_t *shm_zone, void *data);
static ngx_int_t ngx_http_c1_zone_run(ngx_http_c1_store_op_t *op);
static ngx_int_t ngx_http_c1_zone_op(ngx_http_c1_store_op_t *op,
    c1_history_t *h);
static c1_thread_t *ngx_http_c1_zone_find(ngx_http_c1_store_op_t *op,
    c1_history_t *h);
static ngx_int_t ngx_http_c1_zone_meta(ngx_http_c1_store_op_t *op,
    c1_thread_t *t, ngx_http_c1_meta_t *meta);
static ngx_int_t ngx_http_c1_zone_msgs(ngx_http_c1_store_op_t *op,
    c1_thread_t *t);
static ngx_int_t ngx_http_c1_zone_msg(ngx_http_c1_store_op_t *op,
    c1_msg_t *m, ngx_http_c1_msg_t *out);
static c1_msg_in_t *ngx_http_c1_zone_in(ngx_http_c1_store_op_t *op);
static ngx_int_t ngx_http_c1_zone_rc(int rc);


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
    u_char                   *p;
    ssize_t                   size;
    ngx_int_t                 rc;
    ngx_str_t                *value, name, s;
    ngx_msec_t                inactive;
    ngx_uint_t                i;
    ngx_shm_zone_t           *shm_zone;
    ngx_http_c1_zone_t       *zone, **zp;
    ngx_http_c1_store_t      *store, **sp;
    ngx_http_c1_main_conf_t  *mcf;

    value = cf->args->elts;

    zone = ngx_pcalloc(cf->pool, sizeof(ngx_http_c1_zone_t));
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    zone->max_messages = 100;
    zone->inactive = 86400;

    /* max_messages= alone leaves it as it is */

    inactive = (ngx_msec_t) zone->inactive * 1000;

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

        rc = ngx_http_c1_store_limit(cf, &value[i], &zone->max_messages,
                                     &inactive);

        if (rc == NGX_ERROR) {
            return NGX_CONF_ERROR;
        }

        if (rc == NGX_OK) {
            zone->inactive = inactive / 1000;
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

    if (ngx_http_c1_store_find(mcf, &name) != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "a c1 history store \"%V\" is already defined",
                           &name);
        return NGX_CONF_ERROR;
    }

    zp = ngx_array_push(&mcf->zones);
    if (zp == NULL) {
        return NGX_CONF_ERROR;
    }

    *zp = zone;

    store = ngx_pcalloc(cf->pool, sizeof(ngx_http_c1_store_t));
    if (store == NULL) {
        return NGX_CONF_ERROR;
    }

    store->name = name;
    store->run = ngx_http_c1_zone_run;
    store->data = zone;
    store->file = cf->conf_file->file.name.data;
    store->line = cf->conf_file->line;

    sp = ngx_array_push(&mcf->stores);
    if (sp == NULL) {
        return NGX_CONF_ERROR;
    }

    *sp = store;

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

    if (lcf->history_name.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    lcf->history_name = value[1];           /* "off": no store */

    return NGX_CONF_OK;
}


/* c1_threads NAME: the thread API of a store, in a prefix location */

char *
ngx_http_c1_threads(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_c1_loc_conf_t *lcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    if (lcf->threads_name.data) {
        return "is duplicate";
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->named || clcf->exact_match
#if (NGX_PCRE)
        || clcf->regex
#endif
        )
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"c1_threads\" needs a prefix location, "
                           "such as \"location /api/threads/\"");
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    lcf->threads_name = value[1];
    lcf->threads_prefix = clcf->name;
    lcf->threads_file = cf->conf_file->file.name;
    lcf->threads_line = cf->conf_file->line;

    clcf->handler = ngx_http_c1_thread_api_handler;

    return NGX_CONF_OK;
}


/*
 * A parameter every store takes: max_messages=N or inactive=TIME (in ms,
 * at least 1s).  NGX_DECLINED: another one.
 */

ngx_int_t
ngx_http_c1_store_limit(ngx_conf_t *cf, ngx_str_t *value,
    ngx_uint_t *max_messages, ngx_msec_t *inactive)
{
    ngx_int_t  n;
    ngx_str_t  s;

    if (ngx_strncmp(value->data, "max_messages=", 13) == 0) {
        n = ngx_atoi(value->data + 13, value->len - 13);

        if (n < 2 || n > 100000) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"max_messages\" takes a number from 2 to "
                               "100000, not \"%V\"", value);
            return NGX_ERROR;
        }

        *max_messages = n;
        return NGX_OK;
    }

    if (ngx_strncmp(value->data, "inactive=", 9) == 0) {
        s.data = value->data + 9;
        s.len = value->len - 9;

        n = ngx_parse_time(&s, 0);

        if (n == NGX_ERROR || n < 1000) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"inactive\" takes a time of at least 1s, "
                               "not \"%V\"", value);
            return NGX_ERROR;
        }

        *inactive = n;
        return NGX_OK;
    }

    return NGX_DECLINED;
}


ngx_http_c1_store_t *
ngx_http_c1_store_find(ngx_http_c1_main_conf_t *mcf, ngx_str_t *name)
{
    ngx_uint_t             i;
    ngx_http_c1_store_t  **stores;

    stores = mcf->stores.elts;

    for (i = 0; i < mcf->stores.nelts; i++) {
        if (stores[i]->name.len == name->len
            && ngx_strncmp(stores[i]->name.data, name->data, name->len) == 0)
        {
            return stores[i];
        }
    }

    return NULL;
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

        if (ozone->sh->magic != C1_HISTORY_MAGIC) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "c1_history_zone \"%V\" was made by another "
                          "version of the module: restart nginx (or name "
                          "the zone anew) to use this one",
                          &shm_zone->shm.name);
            return NGX_ERROR;
        }

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




/* an operation on the zone: done at once, under its lock */

static ngx_int_t
ngx_http_c1_zone_run(ngx_http_c1_store_op_t *op)
{
    uint64_t             evicted;
    ngx_http_c1_zone_t  *zone;

    zone = op->store->data;

    ngx_shmtx_lock(&zone->shpool->mutex);

    c1_history_expire(zone->sh, ngx_time(), 2);

    evicted = zone->sh->evicted;

    op->rc = ngx_http_c1_zone_op(op, zone->sh);

    op->evicted = zone->sh->evicted - evicted;

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (op->evicted) {
        ngx_log_error(NGX_LOG_WARN, op->log, 0,
                      "c1: c1_history_zone \"%V\" is full: the history of "
                      "%uL least recently used thread%s was dropped",
                      &zone->name, op->evicted,
                      op->evicted == 1 ? "" : "s");
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_c1_zone_op(ngx_http_c1_store_op_t *op, c1_history_t *h)
{
    int            rc, more;
    uint64_t       ms;
    ngx_uint_t     i, n;
    c1_msg_t      *m;
    c1_holder_t    holder;
    c1_msg_in_t   *in;
    c1_thread_t   *t, *page[NGX_HTTP_C1_PAGE_MAX];
    ngx_time_t    *tp;

    tp = ngx_timeofday();
    ms = (uint64_t) tp->sec * 1000 + tp->msec;

    switch (op->type) {

    case NGX_HTTP_C1_STORE_BEGIN:
        holder.pid = (uint64_t) ngx_pid;
        holder.start = ngx_http_c1_process_start(ngx_pid);

        rc = c1_history_begin(h, op->owner.data, op->owner.len,
                              op->thread.data, op->thread.len, ngx_time(),
                              &holder, &t, &op->token);
        if (rc != C1_HISTORY_OK) {
            return ngx_http_c1_zone_rc(rc);
        }

        if (ngx_http_c1_zone_meta(op, t, &op->meta) != NGX_OK
            || (op->load && ngx_http_c1_zone_msgs(op, t) != NGX_OK))
        {
            c1_history_end(h, t, op->token);
            return NGX_ERROR;
        }

        return NGX_OK;

    case NGX_HTTP_C1_STORE_COMMIT:
        t = ngx_http_c1_zone_find(op, h);
        if (t == NULL) {
            return NGX_HTTP_C1_STORE_NONE;
        }

        in = ngx_http_c1_zone_in(op);
        if (in == NULL) {
            c1_history_end(h, t, op->token);
            return NGX_ERROR;
        }

        rc = c1_history_commit(h, t, op->token, in, op->nmsgs, op->replace,
                               op->title.data, op->title.len, ngx_time(),
                               ms);

        c1_history_end(h, t, op->token);

        if (rc != C1_HISTORY_OK) {
            return ngx_http_c1_zone_rc(rc);
        }

        return ngx_http_c1_zone_meta(op, t, &op->meta);

    case NGX_HTTP_C1_STORE_END:
        t = ngx_http_c1_zone_find(op, h);
        if (t != NULL) {
            c1_history_end(h, t, op->token);
        }

        return NGX_OK;

    case NGX_HTTP_C1_STORE_LIST:
        n = c1_history_list(h, op->owner.data, op->owner.len, op->cursor,
                            ngx_min(op->limit, NGX_HTTP_C1_PAGE_MAX), page,
                            &more);

        op->metas = ngx_pcalloc(op->pool,
                                (n ? n : 1) * sizeof(ngx_http_c1_meta_t));
        if (op->metas == NULL) {
            return NGX_ERROR;
        }

        for (i = 0; i < n; i++) {
            if (ngx_http_c1_zone_meta(op, page[i], &op->metas[i]) != NGX_OK) {
                return NGX_ERROR;
            }
        }

        op->nmetas = n;
        op->next = (more && n) ? page[n - 1]->seq : 0;

        return NGX_OK;

    case NGX_HTTP_C1_STORE_GET:
        t = ngx_http_c1_zone_find(op, h);
        if (t == NULL) {
            return NGX_HTTP_C1_STORE_NONE;
        }

        c1_history_use(h, t, ngx_time());

        if (ngx_http_c1_zone_meta(op, t, &op->meta) != NGX_OK
            || ngx_http_c1_zone_msgs(op, t) != NGX_OK)
        {
            return NGX_ERROR;
        }

        return NGX_OK;

    case NGX_HTTP_C1_STORE_CREATE:
        rc = c1_history_create(h, op->owner.data, op->owner.len,
                               op->thread.data, op->thread.len,
                               op->title.data, op->title.len, ngx_time(), ms,
                               &t);
        if (rc != C1_HISTORY_OK) {
            return ngx_http_c1_zone_rc(rc);
        }

        return ngx_http_c1_zone_meta(op, t, &op->meta);

    case NGX_HTTP_C1_STORE_RENAME:
        t = ngx_http_c1_zone_find(op, h);
        if (t == NULL) {
            return NGX_HTTP_C1_STORE_NONE;
        }

        rc = c1_history_rename(h, t, op->title.data, op->title.len,
                               ngx_time(), ms);
        if (rc != C1_HISTORY_OK) {
            return ngx_http_c1_zone_rc(rc);
        }

        return ngx_http_c1_zone_meta(op, t, &op->meta);

    case NGX_HTTP_C1_STORE_REPLACE:
        t = ngx_http_c1_zone_find(op, h);
        if (t == NULL) {
            return NGX_HTTP_C1_STORE_NONE;
        }

        in = ngx_http_c1_zone_in(op);
        if (in == NULL || op->nmsgs != 1) {
            return NGX_ERROR;
        }

        rc = c1_history_replace(h, t, in, ngx_time(), ms, &m);
        if (rc != C1_HISTORY_OK) {
            return ngx_http_c1_zone_rc(rc);
        }

        op->out = ngx_palloc(op->pool, sizeof(ngx_http_c1_msg_t));
        if (op->out == NULL) {
            return NGX_ERROR;
        }

        op->nout = 1;

        if (ngx_http_c1_zone_msg(op, m, op->out) != NGX_OK) {
            return NGX_ERROR;
        }

        return ngx_http_c1_zone_meta(op, t, &op->meta);

    case NGX_HTTP_C1_STORE_DELETE:
        t = ngx_http_c1_zone_find(op, h);
        if (t == NULL) {
            return NGX_HTTP_C1_STORE_NONE;
        }

        return ngx_http_c1_zone_rc(c1_history_delete(h, t));

    default:   /* a token bucket: never in a c1_history_zone */
        break;
    }

    return NGX_ERROR;
}


/* the thread of the operation: its owner's, and listed, or being made */

static c1_thread_t *
ngx_http_c1_zone_find(ngx_http_c1_store_op_t *op, c1_history_t *h)
{
    c1_thread_t  *t;

    t = c1_history_find(h, op->owner.data, op->owner.len, op->thread.data,
                        op->thread.len);

    if (t == NULL) {
        return NULL;
    }

    /*
     * a thread whose first turn runs is not there yet but for its turn;
     * what would change it meanwhile is refused as busy (409)
     */

    if (t->seq == 0
        && op->type != NGX_HTTP_C1_STORE_COMMIT
        && op->type != NGX_HTTP_C1_STORE_END
        && (op->type == NGX_HTTP_C1_STORE_GET || !c1_history_busy(t)))
    {
        return NULL;
    }

    return t;
}


static ngx_int_t
ngx_http_c1_zone_meta(ngx_http_c1_store_op_t *op, c1_thread_t *t,
    ngx_http_c1_meta_t *meta)
{
    meta->id.len = t->id_len;
    meta->id.data = ngx_pnalloc(op->pool, t->id_len + t->title_len + 1);

    if (meta->id.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(meta->id.data, t->id, t->id_len);

    meta->title.len = t->title_len;
    meta->title.data = meta->id.data + t->id_len;

    if (t->title_len) {
        ngx_memcpy(meta->title.data, t->title, t->title_len);
    }

    meta->created = t->created;
    meta->updated = t->updated;

    return NGX_OK;
}


static ngx_int_t
ngx_http_c1_zone_msgs(ngx_http_c1_store_op_t *op, c1_thread_t *t)
{
    ngx_uint_t   n;
    c1_msg_t    *m;

    op->nout = 0;
    op->out = ngx_palloc(op->pool, (t->nmsgs ? t->nmsgs : 1)
                                   * sizeof(ngx_http_c1_msg_t));
    if (op->out == NULL) {
        return NGX_ERROR;
    }

    for (n = 0, m = t->first; m; m = m->next, n++) {
        if (ngx_http_c1_zone_msg(op, m, &op->out[n]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    op->nout = n;

    return NGX_OK;
}


static ngx_int_t
ngx_http_c1_zone_msg(ngx_http_c1_store_op_t *op, c1_msg_t *m,
    ngx_http_c1_msg_t *out)
{
    u_char  *p;

    p = ngx_pnalloc(op->pool, m->id_len + m->len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, c1_msg_id(m), m->id_len + m->len);

    out->id.data = p;
    out->id.len = m->id_len;
    out->content.data = p + m->id_len;
    out->content.len = m->len;
    out->role = m->role;
    out->time = m->time;

    return NGX_OK;
}


static c1_msg_in_t *
ngx_http_c1_zone_in(ngx_http_c1_store_op_t *op)
{
    ngx_uint_t    i;
    c1_msg_in_t  *in;

    in = ngx_palloc(op->pool, (op->nmsgs ? op->nmsgs : 1)
                              * sizeof(c1_msg_in_t));
    if (in == NULL) {
        return NULL;
    }

    for (i = 0; i < op->nmsgs; i++) {
        in[i].id = op->msgs[i].id.data;
        in[i].id_len = op->msgs[i].id.len;
        in[i].role = (int) op->msgs[i].role;
        in[i].content = op->msgs[i].content.data;
        in[i].len = op->msgs[i].content.len;
    }

    return in;
}


static ngx_int_t
ngx_http_c1_zone_rc(int rc)
{
    switch (rc) {

    case C1_HISTORY_OK:
        return NGX_OK;

    case C1_HISTORY_BUSY:
        return NGX_HTTP_C1_STORE_BUSY;

    case C1_HISTORY_NONE:
        return NGX_HTTP_C1_STORE_NO_MSG;

    case C1_HISTORY_ROLE:
        return NGX_HTTP_C1_STORE_ROLE;

    case C1_HISTORY_NOMEM:
        return NGX_HTTP_C1_STORE_FULL;

    default:
        return NGX_ERROR;
    }
}
