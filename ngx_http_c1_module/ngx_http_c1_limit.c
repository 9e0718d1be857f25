
/*
 * ngx_http_c1_module: token budgets (c1_limit_tokens_zone,
 * c1_limit_tokens, c1_limit_tokens_status).
 *
 * Each limit in effect on a request names a bucket: its zone, its unit
 * and what it counts, and its key's value.  Before the C1 call every
 * bucket is read (the check): one with nothing left refuses the request,
 * which C1 never sees.  After the answer, its tokens (C1's usage, or an
 * estimate) are debited from every bucket once, before the answer's end
 * is sent, or when a request that lost its client ends.
 *
 * A zone keeps its buckets in its shared memory (a red-black tree, and a
 * queue in the order of use, whose tail goes first when the zone is
 * full), or with store= in Redis, shared by every node; the zone's
 * shared memory then holds only the node's counters.  The arithmetic is
 * ngx_http_c1_bucket.c's.
 */


#include "ngx_http_c1_module.h"


#define NGX_HTTP_C1_LIMITS_MAX    8       /* c1_limit_tokens in one level */
#define NGX_HTTP_C1_LIMIT_KEY_MAX 4096
#define NGX_HTTP_C1_LIMIT_DROPS   64      /* keys dropped for one at most */


typedef struct {
    ngx_str_node_t             sn;              /* sn.str: the bucket's id */
    ngx_queue_t                queue;
    int64_t                    spent;           /* milli-tokens */
    uint64_t                   stamp;           /* ms */
    uint64_t                   full;            /* ms: refilled by then */
    u_char                     data[1];
} ngx_http_c1_limit_node_t;


/* a c1_limit_tokens of a zone, where it is: its buckets' bounds */
typedef struct {
    ngx_str_t                  key;             /* as configured */
    u_char                     unit;
    unsigned                   completion:1;
    uint64_t                   rate;
    uint64_t                   capacity;
    ngx_str_t                  file;
    ngx_uint_t                 line;
} ngx_http_c1_limit_use_t;


static ngx_int_t ngx_http_c1_limit_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_http_c1_limit_zone_t *ngx_http_c1_limit_zone_get(ngx_conf_t *cf,
    ngx_str_t *name);
static ngx_int_t ngx_http_c1_limit_rate(ngx_str_t *value,
    ngx_http_c1_limit_t *limit);
static char *ngx_http_c1_limit_use(ngx_conf_t *cf, ngx_http_c1_limit_t *l);
static void ngx_http_c1_limit_op(ngx_http_request_t *r,
    ngx_http_c1_limit_state_t *st, ngx_http_c1_store_op_e type);
static void ngx_http_c1_limit_read(ngx_http_c1_limit_state_t *st);
static void ngx_http_c1_limit_replied(ngx_http_c1_store_op_t *op);
static ngx_int_t ngx_http_c1_limit_decide(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx);
static ngx_int_t ngx_http_c1_limit_headers(ngx_http_request_t *r,
    ngx_http_c1_limit_state_t *st);
static void ngx_http_c1_limit_spend(ngx_http_request_t *r,
    ngx_http_c1_limit_state_t *st, uint64_t tokens);
static void ngx_http_c1_limit_drop(ngx_http_c1_limit_zone_t *zone,
    ngx_http_c1_limit_node_t *node);


static char *ngx_http_c1_limit_units[] = {
    "min (TPM)", "hour (TPH)", "day (TPD)"
};


/* c1_limit_tokens_zone zone=NAME:SIZE [store=NAME] */

char *
ngx_http_c1_limit_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    u_char                    *p;
    ssize_t                    size;
    ngx_str_t                 *value, name, store, s;
    ngx_uint_t                 i;
    ngx_shm_zone_t            *shm_zone;
    ngx_http_c1_limit_zone_t  *zone;

    value = cf->args->elts;

    ngx_str_null(&name);
    ngx_str_null(&store);
    size = 0;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {
            name.data = value[i].data + 5;

            p = (u_char *) ngx_strchr(name.data, ':');

            if (p == NULL) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid zone size \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            name.len = p - name.data;

            s.data = p + 1;
            s.len = value[i].data + value[i].len - s.data;

            size = ngx_parse_size(&s);

            if (size == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid zone size \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            if (size < (ssize_t) (8 * ngx_pagesize)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"%V\" zone \"%V\" is too small",
                                   &cmd->name, &name);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "store=", 6) == 0) {
            store.data = value[i].data + 6;
            store.len = value[i].len - 6;

            if (store.len == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid parameter \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must have \"zone\" parameter",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    zone = ngx_http_c1_limit_zone_get(cf, &name);
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (zone->size) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate c1_limit_tokens_zone \"%V\"", &name);
        return NGX_CONF_ERROR;
    }

    shm_zone = ngx_shared_memory_add(cf, &name, size, &ngx_http_c1_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" of c1_limit_tokens_zone is already "
                           "used by another c1 zone", &name);
        return NGX_CONF_ERROR;
    }

    zone->size = size;
    zone->store_name = store;
    zone->shm_zone = shm_zone;

    shm_zone->init = ngx_http_c1_limit_init_zone;
    shm_zone->data = zone;

    return NGX_CONF_OK;
}


/* a zone by its name: declared, or only used so far */

static ngx_http_c1_limit_zone_t *
ngx_http_c1_limit_zone_get(ngx_conf_t *cf, ngx_str_t *name)
{
    ngx_uint_t                  i;
    ngx_http_c1_limit_zone_t  **zones, *zone, **z;
    ngx_http_c1_main_conf_t    *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_c1_module);

    zones = mcf->limit_zones.elts;

    for (i = 0; i < mcf->limit_zones.nelts; i++) {
        if (zones[i]->name.len == name->len
            && ngx_strncmp(zones[i]->name.data, name->data, name->len) == 0)
        {
            return zones[i];
        }
    }

    zone = ngx_pcalloc(cf->pool, sizeof(ngx_http_c1_limit_zone_t));
    if (zone == NULL) {
        return NULL;
    }

    zone->name = *name;
    zone->used_file = cf->conf_file->file.name;
    zone->used_line = cf->conf_file->line;

    if (ngx_array_init(&zone->uses, cf->pool, 2,
                       sizeof(ngx_http_c1_limit_use_t))
        != NGX_OK)
    {
        return NULL;
    }

    z = ngx_array_push(&mcf->limit_zones);
    if (z == NULL) {
        return NULL;
    }

    *z = zone;

    return zone;
}


static ngx_int_t
ngx_http_c1_limit_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_c1_limit_zone_t  *ozone = data;

    size_t                     len;
    ngx_slab_pool_t           *shpool;
    ngx_http_c1_limit_sh_t    *sh;
    ngx_http_c1_limit_zone_t  *zone;

    zone = shm_zone->data;

    if (ozone) {

        /* a reload: the buckets and counters go on */

        zone->sh = ozone->sh;
        zone->shpool = ozone->shpool;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    zone->shpool = shpool;

    if (shm_zone->shm.exists) {
        zone->sh = shpool->data;
        return NGX_OK;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_c1_limit_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = sh;
    zone->sh = sh;

    ngx_rbtree_init(&sh->rbtree, &sh->sentinel, ngx_str_rbtree_insert_value);
    ngx_queue_init(&sh->queue);

    len = sizeof(" in c1_limit_tokens_zone \"\"") + shm_zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in c1_limit_tokens_zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone is ours to log: it drops keys, said once a second */

    shpool->log_nomem = 0;

    return NGX_OK;
}


/*
 * c1_limit_tokens zone=NAME key=VALUE rate=N/m|N/h|N/d [burst=N]
 * [count=total|completion]
 */

char *
ngx_http_c1_limit_tokens(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_c1_loc_conf_t *lcf = conf;

    ngx_int_t                          n;
    ngx_str_t                         *value, s, name, key;
    ngx_uint_t                         i, burst;
    ngx_http_c1_limit_t               *limit, *limits, l;
    ngx_http_compile_complex_value_t   ccv;

    value = cf->args->elts;

    ngx_memzero(&l, sizeof(ngx_http_c1_limit_t));
    ngx_str_null(&name);
    ngx_str_null(&key);
    burst = 0;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {
            name.data = value[i].data + 5;
            name.len = value[i].len - 5;
            continue;
        }

        if (ngx_strncmp(value[i].data, "key=", 4) == 0) {
            key.data = value[i].data + 4;
            key.len = value[i].len - 4;

            if (key.len == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid key \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "rate=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            if (ngx_http_c1_limit_rate(&s, &l) != NGX_OK) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid rate \"%V\": it must be N/m, "
                                   "N/h or N/d, N tokens from 1 to %uL",
                                   &s, (uint64_t) C1_BUCKET_MAX);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "burst=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);

            if (n == NGX_ERROR || (uint64_t) n > C1_BUCKET_MAX) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid burst \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            burst = n;
            continue;
        }

        if (ngx_strcmp(value[i].data, "count=total") == 0) {
            l.completion = 0;
            continue;
        }

        if (ngx_strcmp(value[i].data, "count=completion") == 0) {
            l.completion = 1;
            continue;
        }

        if (ngx_strncmp(value[i].data, "count=", 6) == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid count \"%V\": it must be "
                               "\"total\" or \"completion\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (name.len == 0 || key.len == 0 || l.unit == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must have \"%s\" parameter", &cmd->name,
                           name.len == 0 ? "zone"
                           : key.len == 0 ? "key" : "rate");
        return NGX_CONF_ERROR;
    }

    l.bucket.capacity = l.bucket.rate + burst;

    if (lcf->limits == NULL) {
        lcf->limits = ngx_array_create(cf->pool, 2,
                                       sizeof(ngx_http_c1_limit_t));
        if (lcf->limits == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    limits = lcf->limits->elts;

    for (i = 0; i < lcf->limits->nelts; i++) {
        if (limits[i].zone->name.len == name.len
            && ngx_strncmp(limits[i].zone->name.data, name.data, name.len)
               == 0
            && limits[i].unit == l.unit
            && limits[i].completion == l.completion
            && limits[i].key.value.len == key.len
            && ngx_strncmp(limits[i].key.value.data, key.data, key.len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate \"%V\" for zone \"%V\" (the same "
                               "key, unit and count)", &cmd->name, &name);
            return NGX_CONF_ERROR;
        }
    }

    if (lcf->limits->nelts >= NGX_HTTP_C1_LIMITS_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "too many \"%V\" in one place: %d at most",
                           &cmd->name, NGX_HTTP_C1_LIMITS_MAX);
        return NGX_CONF_ERROR;
    }

    l.zone = ngx_http_c1_limit_zone_get(cf, &name);
    if (l.zone == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &key;
    ccv.complex_value = &l.key;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_c1_limit_use(cf, &l) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    limit = ngx_array_push(lcf->limits);
    if (limit == NULL) {
        return NGX_CONF_ERROR;
    }

    *limit = l;

    return NGX_CONF_OK;
}


/*
 * Limits of one zone with the same key, unit and count share buckets
 * (a budget across locations): they must agree on its bounds.
 */

static char *
ngx_http_c1_limit_use(ngx_conf_t *cf, ngx_http_c1_limit_t *l)
{
    ngx_uint_t                i;
    ngx_http_c1_limit_use_t  *use, *u;

    use = l->zone->uses.elts;

    for (i = 0; i < l->zone->uses.nelts; i++) {
        u = &use[i];

        if (u->unit != l->unit || u->completion != l->completion
            || u->key.len != l->key.value.len
            || ngx_strncmp(u->key.data, l->key.value.data, u->key.len) != 0)
        {
            continue;
        }

        if (u->rate != l->bucket.rate || u->capacity != l->bucket.capacity) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"c1_limit_tokens\" shares its buckets in "
                               "zone \"%V\" (the same key, unit and count) "
                               "with the one in %V:%ui, whose rate or burst "
                               "differs", &l->zone->name, &u->file, u->line);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    u = ngx_array_push(&l->zone->uses);
    if (u == NULL) {
        return NGX_CONF_ERROR;
    }

    u->key = l->key.value;
    u->unit = l->unit;
    u->completion = l->completion;
    u->rate = l->bucket.rate;
    u->capacity = l->bucket.capacity;
    u->file = cf->conf_file->file.name;
    u->line = cf->conf_file->line;

    return NGX_CONF_OK;
}


/* N/m, N/h or N/d */

static ngx_int_t
ngx_http_c1_limit_rate(ngx_str_t *value, ngx_http_c1_limit_t *limit)
{
    ngx_int_t  n;

    if (value->len < 3 || value->data[value->len - 2] != '/') {
        return NGX_ERROR;
    }

    n = ngx_atoi(value->data, value->len - 2);

    if (n == NGX_ERROR || n == 0 || (uint64_t) n > C1_BUCKET_MAX) {
        return NGX_ERROR;
    }

    switch (value->data[value->len - 1]) {

    case 'm':
        limit->bucket.window = C1_BUCKET_MINUTE;
        break;

    case 'h':
        limit->bucket.window = C1_BUCKET_HOUR;
        break;

    case 'd':
        limit->bucket.window = C1_BUCKET_DAY;
        break;

    default:
        return NGX_ERROR;
    }

    limit->unit = value->data[value->len - 1];
    limit->bucket.rate = n;

    return NGX_OK;
}


/* at the end of http{}: every zone used is declared, its store known */

ngx_int_t
ngx_http_c1_limit_init(ngx_conf_t *cf)
{
    ngx_uint_t                  i;
    ngx_http_c1_limit_zone_t  **zones, *zone;
    ngx_http_c1_main_conf_t    *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_c1_module);

    zones = mcf->limit_zones.elts;

    for (i = 0; i < mcf->limit_zones.nelts; i++) {
        zone = zones[i];

        if (zone->size == 0) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "unknown c1_limit_tokens_zone \"%V\" in "
                          "\"c1_limit_tokens\" in %V:%ui", &zone->name,
                          &zone->used_file, zone->used_line);
            return NGX_ERROR;
        }

        if (zone->store_name.len == 0) {
            continue;
        }

        zone->store = ngx_http_c1_store_find(mcf, &zone->store_name);

        if (zone->store == NULL || !zone->store->buckets) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "unknown c1_history_redis store \"%V\" in "
                          "\"c1_limit_tokens_zone\" \"%V\"%s",
                          &zone->store_name, &zone->name,
                          zone->store ? " (a c1_history_zone cannot keep "
                                        "token buckets)" : "");
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * The check, before the C1 call: NGX_OK (go on), NGX_AGAIN (Redis
 * answers later: then ngx_http_c1_turn_checked()), or the request ends
 * here with this rc (refused: its error is sent).
 */

ngx_int_t
ngx_http_c1_limit_check(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    u_char                     *p;
    ngx_int_t                   rc;
    ngx_str_t                   key;
    ngx_uint_t                  i, j, n;
    ngx_rbtree_node_t          *node;
    ngx_http_c1_limit_t        *limits, *limit;
    ngx_http_c1_limit_node_t   *lnode;
    ngx_http_c1_limit_zone_t   *zone;
    ngx_http_c1_loc_conf_t     *lcf;
    ngx_http_c1_limit_state_t  *st;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_c1_module);

    if (lcf->limits == NULL) {
        return NGX_OK;
    }

    limits = lcf->limits->elts;

    ctx->limits = ngx_pcalloc(r->pool, lcf->limits->nelts
                                       * sizeof(ngx_http_c1_limit_state_t));
    if (ctx->limits == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    n = 0;

    for (i = 0; i < lcf->limits->nelts; i++) {
        limit = &limits[i];

        if (ngx_http_complex_value(r, &limit->key, &key) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (key.len == 0) {
            continue;                   /* not limited, as limit_req */
        }

        if (key.len > NGX_HTTP_C1_LIMIT_KEY_MAX) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "c1: the key of \"c1_limit_tokens\" zone \"%V\" "
                          "is %uz bytes long, more than %d",
                          &limit->zone->name, key.len,
                          NGX_HTTP_C1_LIMIT_KEY_MAX);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        st = &ctx->limits[n];

        st->limit = limit;
        st->key = key;

        p = ngx_pnalloc(r->pool, 3 + key.len);
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        st->id.data = p;
        *p++ = limit->unit;
        *p++ = limit->completion ? 'c' : 't';
        *p++ = ':';
        p = ngx_cpymem(p, key.data, key.len);
        st->id.len = p - st->id.data;

        st->hash = ngx_crc32_short(st->id.data, st->id.len);

        for (j = 0; j < n; j++) {
            if (ctx->limits[j].limit->zone == limit->zone
                && ctx->limits[j].id.len == st->id.len
                && ngx_memcmp(ctx->limits[j].id.data, st->id.data,
                              st->id.len) == 0)
            {
                st->twin = &ctx->limits[j];
                break;
            }
        }

        n++;
    }

    ctx->nlimits = n;

    if (n == 0) {
        return NGX_OK;                  /* every key empty: no limit */
    }

    for (i = 0; i < n; i++) {
        st = &ctx->limits[i];

        if (st->twin) {
            continue;
        }

        zone = st->limit->zone;

        if (zone->store) {
            ngx_http_c1_limit_op(r, st, NGX_HTTP_C1_STORE_LIMIT);

            st->op.pool = r->pool;
            st->op.handler = ngx_http_c1_limit_replied;
            st->op.data = r;

            rc = ngx_http_c1_store_run(&st->op);

            if (rc == NGX_AGAIN) {
                ctx->limit_wait++;
                continue;
            }

            ngx_http_c1_limit_read(st);
            continue;
        }

        ngx_shmtx_lock(&zone->shpool->mutex);

        node = (ngx_rbtree_node_t *) ngx_str_rbtree_lookup(&zone->sh->rbtree,
                                                           &st->id,
                                                           st->hash);
        if (node) {
            lnode = (ngx_http_c1_limit_node_t *) node;

            st->level = c1_bucket_level(lnode->spent, lnode->stamp,
                                        ngx_current_msec,
                                        &st->limit->bucket);

            ngx_queue_remove(&lnode->queue);
            ngx_queue_insert_head(&zone->sh->queue, &lnode->queue);
        }

        ngx_shmtx_unlock(&zone->shpool->mutex);
    }

    if (ctx->limit_wait) {
        return NGX_AGAIN;
    }

    return ngx_http_c1_limit_decide(r, ctx);
}


/* a bucket's operation in its zone's Redis (owner: the zone; thread: id) */

static void
ngx_http_c1_limit_op(ngx_http_request_t *r, ngx_http_c1_limit_state_t *st,
    ngx_http_c1_store_op_e type)
{
    ngx_memzero(&st->op, sizeof(ngx_http_c1_store_op_t));

    st->op.type = type;
    st->op.store = st->limit->zone->store;
    st->op.log = r->connection->log;
    st->op.owner = st->limit->zone->name;
    st->op.thread = st->id;
    st->op.rate = st->limit->bucket.rate;
    st->op.window = st->limit->bucket.window;
}


/* Redis's answer to a check, or its failure: let through (logged there) */

static void
ngx_http_c1_limit_read(ngx_http_c1_limit_state_t *st)
{
    if (st->op.rc == NGX_OK) {
        st->level = st->op.level;
        return;
    }

    st->unknown = 1;
    ngx_http_c1_store_failed(&st->op.store->name, NGX_HTTP_C1_STORE_LIMIT);
}


static void
ngx_http_c1_limit_replied(ngx_http_c1_store_op_t *op)
{
    ngx_http_request_t *r = op->data;

    ngx_http_c1_ctx_t          *ctx;
    ngx_http_c1_limit_state_t  *st;

    ctx = ngx_http_get_module_ctx(r, ngx_http_c1_module);

    st = (ngx_http_c1_limit_state_t *)
             ((u_char *) op - offsetof(ngx_http_c1_limit_state_t, op));

    ngx_http_c1_limit_read(st);

    if (--ctx->limit_wait) {
        return;
    }

    ngx_http_c1_turn_checked(r, ngx_http_c1_limit_decide(r, ctx));
}


/* every bucket is known: the headers, and the refusal if one is empty */

static ngx_int_t
ngx_http_c1_limit_decide(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    char                        when[C1_BUCKET_DURATION_LEN];
    u_char                     *secs;
    uint64_t                    retry;
    ngx_uint_t                  i, unit;
    c1_error_t                  words;
    ngx_http_c1_limit_t        *limit;
    ngx_http_c1_loc_conf_t     *lcf;
    ngx_http_c1_limit_state_t  *st, *shown, *refused;

    shown = NULL;
    refused = NULL;
    retry = 0;

    for (i = 0; i < ctx->nlimits; i++) {
        st = &ctx->limits[i];

        if (st->twin) {
            st->level = st->twin->level;
            st->unknown = st->twin->unknown;
        }

        if (st->unknown) {
            continue;
        }

        c1_bucket_state(st->level, &st->limit->bucket, &st->state);

        if (shown == NULL || st->state.remaining < shown->state.remaining) {
            shown = st;
        }

        if (st->state.remaining == 0) {
            if (refused == NULL) {
                refused = st;
            }

            retry = ngx_max(retry, st->state.retry);
        }
    }

    /* C1 is asked for its usage in streams: what is debited */

    ctx->settings.count_usage = 1;

    if (refused) {
        shown = refused;
    }

    ctx->limit_shown = shown;

    if (shown && ngx_http_c1_limit_headers(r, shown) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (refused == NULL) {
        return NGX_OK;
    }

    /* refused: C1 is not called */

    retry = ngx_max((retry + 999) / 1000, 1);

    secs = ngx_pnalloc(r->pool, NGX_INT64_LEN + 1);
    if (secs == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_sprintf(secs, "%uL%Z", retry);

    if (ngx_http_c1_response_add_header(r, "Retry-After", (char *) secs)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    limit = refused->limit;

    unit = (limit->unit == 'm') ? 0 : (limit->unit == 'h') ? 1 : 2;

    c1_bucket_duration(retry * 1000, when);

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_c1_module);

    c1_error_set(&words, (int) lcf->limit_status, "tokens",
                 "rate_limit_exceeded", NULL,
                 "Rate limit reached for tokens per %s in c1_limit_tokens "
                 "zone \"%.*s\": Limit %llu, Remaining 0. Please try again "
                 "in %s.", ngx_http_c1_limit_units[unit],
                 (int) ngx_min(limit->zone->name.len, 64),
                 limit->zone->name.data,
                 (unsigned long long) limit->bucket.capacity, when);

    (void) ngx_atomic_fetch_add(&limit->zone->sh->limited, 1);

    /* the key may name a user: at debug only, as owners are */

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "c1: tokens limited: key \"%V\"", &refused->key);

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "c1: tokens limited by zone \"%V\", retry in %uL s",
                  &limit->zone->name, retry);

    c1_request_free(&ctx->req);

    return ngx_http_c1_fail(r, ctx, NGX_HTTP_C1_ERR_RATE_LIMITED, &words,
                            lcf->limit_status);
}


/* X-RateLimit-Limit-Tokens, -Remaining-Tokens, -Reset-Tokens */

static ngx_int_t
ngx_http_c1_limit_headers(ngx_http_request_t *r,
    ngx_http_c1_limit_state_t *st)
{
    u_char  *limit, *remaining, *reset;

    limit = ngx_pnalloc(r->pool, 2 * (NGX_INT64_LEN + 1)
                                 + C1_BUCKET_DURATION_LEN);
    if (limit == NULL) {
        return NGX_ERROR;
    }

    remaining = ngx_sprintf(limit, "%uL%Z", st->limit->bucket.capacity);
    reset = ngx_sprintf(remaining, "%uL%Z", st->state.remaining);

    c1_bucket_duration(st->state.reset, (char *) reset);

    if (ngx_http_c1_response_add_header(r, "X-RateLimit-Limit-Tokens",
                                        (char *) limit)
        != NGX_OK
        || ngx_http_c1_response_add_header(r, "X-RateLimit-Remaining-Tokens",
                                           (char *) remaining)
           != NGX_OK
        || ngx_http_c1_response_add_header(r, "X-RateLimit-Reset-Tokens",
                                           (char *) reset)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * A C1 call's tokens, added to the request's: C1's usage, or where it
 * sent none, an estimate from the bytes of its request and of the content
 * that came.  Nothing when C1 answered no content at all (an error, a
 * failure before it).  Each call once (a tool round has several).
 */

void
ngx_http_c1_limit_count(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    long         p, c, t;
    size_t       content;
    uint64_t     completion_est;
    ngx_uint_t   i;
    c1_error_t   err;
    c1_answer_t  answer;

    if (ctx->nlimits == 0 || ctx->counted_call) {
        return;
    }

    ctx->counted_call = 1;

    if (ctx->relaying) {
        p = ctx->relay.prompt_tokens;
        c = ctx->relay.completion_tokens;
        t = ctx->relay.total_tokens;
        content = ctx->relay.content;

    } else if (ctx->call.header && ctx->call.status >= 200
               && ctx->call.status < 300 && ctx->len)
    {
        p = ctx->content.prompt_tokens;
        c = ctx->content.completion_tokens;
        t = ctx->content.total_tokens;
        content = ctx->content.content_len;

        /* no usage: the content's bytes, read from the answer if need be */

        if (t < 0 && c < 0 && ctx->content.content == NULL) {
            content = ctx->len;

            if (c1_answer_extract(ctx->buf, ctx->len, C1_MODE_PROMPT,
                                  &answer, &err)
                == C1_OK)
            {
                content = answer.content_len;
                c1_free(answer.content);
            }
        }

    } else {
        return;
    }

    if (t < 0 && p >= 0 && c >= 0) {
        t = p + c;
    }

    /* a tool round's calls are what C1 wrote, as content is */

    if (ctx->tc) {
        for (i = 0; i < ctx->tc->n; i++) {
            content += ctx->tc->calls[i].name.len
                       + ctx->tc->calls[i].arguments.len;
        }
    }

    if (content == 0 && t < 0 && c < 0) {
        return;
    }

    completion_est = c1_bucket_estimate(content);

    if (t >= 0) {
        ctx->spent_usage[0] += (uint64_t) t;

    } else {
        ctx->spent_estimate[0] += c1_bucket_estimate(ctx->body.len)
                                  + completion_est;
    }

    if (c >= 0) {
        ctx->spent_usage[1] += (uint64_t) c;

    } else {
        ctx->spent_estimate[1] += completion_est;
    }
}


/* the request's tokens, from every bucket once, when it is over */

void
ngx_http_c1_limit_debit(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    uint64_t                    tokens, part[2];
    ngx_uint_t                  i, j, k;
    ngx_http_c1_limit_zone_t   *zone;
    ngx_http_c1_limit_state_t  *st;

    if (ctx->nlimits == 0 || ctx->debited
        || ctx->error == NGX_HTTP_C1_ERR_RATE_LIMITED)
    {
        return;
    }

    ngx_http_c1_limit_count(r, ctx);

    ctx->debited = 1;

    for (i = 0; i < ctx->nlimits; i++) {
        st = &ctx->limits[i];

        if (st->twin) {
            continue;
        }

        k = st->limit->completion ? 1 : 0;

        part[0] = ctx->spent_usage[k];
        part[1] = ctx->spent_estimate[k];

        tokens = part[0] + part[1];

        if (tokens == 0) {
            continue;
        }

        zone = st->limit->zone;

        for (j = 0; j < 2; j++) {
            if (part[j]) {
                (void) ngx_atomic_fetch_add(j ? &zone->sh->estimate
                                              : &zone->sh->usage,
                                            (ngx_atomic_int_t) part[j]);
            }
        }

        ngx_log_debug4(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "c1: %uL tokens debited (%uL estimated) in zone "
                       "\"%V\", key \"%V\"", tokens, part[1], &zone->name,
                       &st->key);

        if (zone->store == NULL) {
            ngx_http_c1_limit_spend(r, st, tokens);
            continue;
        }

        /* Redis: sent now, its reply nobody's; lost if it fails */

        ngx_http_c1_limit_op(r, st, NGX_HTTP_C1_STORE_DEBIT);

        st->op.tokens = tokens;

        (void) ngx_http_c1_store_run(&st->op);

        if (st->op.rc != NGX_OK) {
            ngx_http_c1_store_failed(&zone->store->name,
                                     NGX_HTTP_C1_STORE_DEBIT);
        }
    }
}


/* a debit in the zone's own memory: the key made if new */

static void
ngx_http_c1_limit_spend(ngx_http_request_t *r, ngx_http_c1_limit_state_t *st,
    uint64_t tokens)
{
    size_t                     size;
    int64_t                    level;
    ngx_msec_t                 now;
    ngx_uint_t                 drops, expired;
    ngx_queue_t               *q;
    ngx_rbtree_node_t         *node;
    ngx_http_c1_limit_node_t  *lnode;
    ngx_http_c1_limit_zone_t  *zone;

    zone = st->limit->zone;
    now = ngx_current_msec;
    drops = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    node = (ngx_rbtree_node_t *) ngx_str_rbtree_lookup(&zone->sh->rbtree,
                                                       &st->id, st->hash);

    if (node) {
        lnode = (ngx_http_c1_limit_node_t *) node;
        ngx_queue_remove(&lnode->queue);

    } else {

        /* keys refilled to full are as good as none: two of them go */

        for (expired = 0; expired < 2; expired++) {
            if (ngx_queue_empty(&zone->sh->queue)) {
                break;
            }

            q = ngx_queue_last(&zone->sh->queue);
            lnode = ngx_queue_data(q, ngx_http_c1_limit_node_t, queue);

            if (lnode->full > now) {
                break;
            }

            ngx_http_c1_limit_drop(zone, lnode);
        }

        size = offsetof(ngx_http_c1_limit_node_t, data) + st->id.len;

        lnode = ngx_slab_alloc_locked(zone->shpool, size);

        /* a full zone: the least recently used keys go */

        while (lnode == NULL && drops < NGX_HTTP_C1_LIMIT_DROPS
               && !ngx_queue_empty(&zone->sh->queue))
        {
            q = ngx_queue_last(&zone->sh->queue);

            ngx_http_c1_limit_drop(zone,
                                   ngx_queue_data(q, ngx_http_c1_limit_node_t,
                                                  queue));
            drops++;

            lnode = ngx_slab_alloc_locked(zone->shpool, size);
        }

        if (lnode == NULL) {
            ngx_shmtx_unlock(&zone->shpool->mutex);

            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "c1: c1_limit_tokens_zone \"%V\" has no room for "
                          "a key: %uL tokens not debited", &zone->name,
                          tokens);
            return;
        }

        ngx_memcpy(lnode->data, st->id.data, st->id.len);

        lnode->sn.str.data = lnode->data;
        lnode->sn.str.len = st->id.len;
        lnode->sn.node.key = st->hash;
        lnode->spent = 0;
        lnode->stamp = now;

        ngx_rbtree_insert(&zone->sh->rbtree, &lnode->sn.node);

        (void) ngx_atomic_fetch_add(&zone->sh->keys, 1);
    }

    level = c1_bucket_level(lnode->spent, lnode->stamp, now,
                            &st->limit->bucket);

    lnode->spent = c1_bucket_debit(level, tokens);
    lnode->stamp = now;
    lnode->full = now + c1_bucket_drain(lnode->spent, &st->limit->bucket);

    ngx_queue_insert_head(&zone->sh->queue, &lnode->queue);

    if (drops) {
        (void) ngx_atomic_fetch_add(&zone->sh->dropped, drops);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (drops && (zone->logged == 0 || now - zone->logged >= 1000)) {
        zone->logged = now ? now : 1;

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "c1: c1_limit_tokens_zone \"%V\" is full: dropped "
                      "the least recently used key%s", &zone->name,
                      drops > 1 ? "s" : "");
    }
}


/* a key out of the zone, its lock held */

static void
ngx_http_c1_limit_drop(ngx_http_c1_limit_zone_t *zone,
    ngx_http_c1_limit_node_t *node)
{
    ngx_queue_remove(&node->queue);
    ngx_rbtree_delete(&zone->sh->rbtree, &node->sn.node);
    ngx_slab_free_locked(zone->shpool, node);

    (void) ngx_atomic_fetch_add(&zone->sh->keys, (ngx_atomic_int_t) -1);
}
