
/*
 * ngx_http_c1_module: the thread store in Redis, shared by many nginx
 * nodes (c1_history_redis).
 *
 * Each worker keeps up to "connections" connections to each server,
 * opened when first needed, on nginx's event loop (never a blocking
 * call).  Commands are written as they come (pipelined) and their replies
 * read back in order with hiredis's reader; hiredis's formatter writes
 * them.  Every operation is one Lua script, so that what it changes
 * changes at once (ngx_http_c1_redis_scripts.h).  A thread lives on the
 * server that a consistent hash of (owner, thread) names; a list asks
 * every server and merges.
 *
 * A command has "timeout" to be answered; past it, or on any error of the
 * connection, the connection is closed and every command on it fails (the
 * request gets 503 history_unavailable), and the next connect waits a
 * backoff.  A request that ends first leaves its command behind: the
 * reply is read and dropped.
 */


#include "ngx_http_c1_module.h"
#include "ngx_http_c1_redis_scripts.h"

#include <hiredis/hiredis.h>
#include <ngx_sha1.h>


#define NGX_HTTP_C1_REDIS_POINTS     160       /* per server on the ring */
#define NGX_HTTP_C1_REDIS_LOCK       30000     /* ms a lock lives */
#define NGX_HTTP_C1_REDIS_RENEW_MS   10000     /* and is renewed */
#define NGX_HTTP_C1_REDIS_UNLOCKS    300       /* tries to free one, */
#define NGX_HTTP_C1_REDIS_UNLOCK_MS  100       /* this far apart: as long
                                                  as the lock lives */
#define NGX_HTTP_C1_REDIS_READ       16384
#define NGX_HTTP_C1_REDIS_BACKOFF    1000      /* the longest, ms */


typedef struct ngx_http_c1_redis_s       ngx_http_c1_redis_t;
typedef struct ngx_http_c1_redis_conn_s  ngx_http_c1_redis_conn_t;
typedef struct ngx_http_c1_redis_cmd_s   ngx_http_c1_redis_cmd_t;
typedef struct ngx_http_c1_redis_list_s  ngx_http_c1_redis_list_t;


/* what a reply is the answer to */
typedef enum {
    NGX_HTTP_C1_REDIS_HELLO_AUTH = 0,
    NGX_HTTP_C1_REDIS_HELLO_SELECT,
    NGX_HTTP_C1_REDIS_HELLO_SCRIPT,            /* SCRIPT LOAD */
    NGX_HTTP_C1_REDIS_OP,                      /* op->type says which */
    NGX_HTTP_C1_REDIS_QUIET                    /* END, a renewal: none */
} ngx_http_c1_redis_kind_e;


typedef struct {
    ngx_str_t                   name;          /* as configured */
    ngx_addr_t                 *addr;
    ngx_uint_t                  index;

    /* this worker's */
    ngx_http_c1_redis_conn_t   *conns;
    ngx_uint_t                  next;          /* round robin */
    ngx_msec_t                  retry_at;      /* no connect before */
    ngx_msec_t                  backoff;
    uint32_t                    cause;         /* the last one logged */
    ngx_queue_t                 unlocks;       /* waiting for a connection */
} ngx_http_c1_redis_server_t;


typedef struct {
    uint32_t                    hash;
    ngx_uint_t                  server;
} ngx_http_c1_redis_point_t;


struct ngx_http_c1_redis_s {
    ngx_http_c1_store_t        *store;
    ngx_array_t                 servers;       /* of ..._server_t */
    ngx_str_t                   password;
    ngx_int_t                   db;
    ngx_str_t                   prefix;
    ngx_uint_t                  max_messages;
    ngx_msec_t                  inactive;
    ngx_msec_t                  timeout;
    ngx_uint_t                  connections;
    size_t                      max_reply;
    ngx_http_c1_redis_point_t  *points;
    ngx_uint_t                  npoints;
    ngx_log_t                  *log;
};


struct ngx_http_c1_redis_conn_s {
    ngx_http_c1_redis_t        *redis;
    ngx_http_c1_redis_server_t *server;
    ngx_peer_connection_t       peer;
    ngx_log_t                   log;           /* the connection's */
    redisReader                *reader;
    ngx_queue_t                 sent;          /* awaiting replies */
    u_char                     *out;           /* to write */
    size_t                      out_len;
    size_t                      out_size;
    size_t                      out_pos;
    unsigned                    open:1;        /* a connection exists */
    unsigned                    connected:1;
};


struct ngx_http_c1_redis_cmd_s {
    ngx_queue_t                 queue;
    ngx_http_c1_redis_conn_t   *conn;
    ngx_http_c1_redis_kind_e    kind;
    ngx_http_c1_store_op_t     *op;            /* NULL: nobody waits */
    ngx_http_c1_redis_list_t   *list;          /* LIST: one server's part */
    ngx_uint_t                  part;
    ngx_pool_cleanup_t         *cln;           /* in the request's pool */
    ngx_event_t                 timer;
    u_char                     *lock;          /* BEGIN: its lock's key */
    size_t                      lock_len;
    uint64_t                    token;
    ngx_uint_t                  server;
    unsigned                    debit:1;       /* a DEBIT: counted if lost */
};


/*
 * A lock that a BEGIN may have taken for nobody (it failed here, or its
 * request went, and Redis may still run it): freed by its token.
 */
typedef struct {
    ngx_queue_t                 queue;         /* in the server's unlocks */
    ngx_http_c1_redis_t        *redis;
    ngx_uint_t                  server;
    ngx_uint_t                  tries;
    uint64_t                    token;
    ngx_event_t                 timer;
    unsigned                    waiting:1;     /* in the queue */
    size_t                      lock_len;
    u_char                      lock[1];
} ngx_http_c1_redis_unlock_t;


/* a LIST over several servers: each one's page, merged when all are in */
struct ngx_http_c1_redis_list_s {
    ngx_uint_t                  wait;
    ngx_uint_t                  failed;
    ngx_http_c1_meta_t        **metas;         /* per server */
    double                    **scores;
    ngx_uint_t                 *n;
};


/* the renewal of a turn's lock while it runs */
typedef struct {
    ngx_http_c1_redis_t        *redis;
    ngx_uint_t                  server;
    ngx_str_t                   lock;
    ngx_str_t                   token;
    ngx_event_t                 timer;
} ngx_http_c1_redis_renew_t;


typedef enum {
    NGX_HTTP_C1_SCRIPT_BEGIN = 0,
    NGX_HTTP_C1_SCRIPT_COMMIT,
    NGX_HTTP_C1_SCRIPT_END,
    NGX_HTTP_C1_SCRIPT_RENEW,
    NGX_HTTP_C1_SCRIPT_LIST,
    NGX_HTTP_C1_SCRIPT_GET,
    NGX_HTTP_C1_SCRIPT_CREATE,
    NGX_HTTP_C1_SCRIPT_RENAME,
    NGX_HTTP_C1_SCRIPT_REPLACE,
    NGX_HTTP_C1_SCRIPT_DELETE,
    NGX_HTTP_C1_SCRIPT_LIMIT,
    NGX_HTTP_C1_SCRIPT_DEBIT,
    NGX_HTTP_C1_SCRIPTS
} ngx_http_c1_script_e;


typedef struct {
    const char                 *text;
    u_char                      sha[40];
} ngx_http_c1_script_t;


/* the causes, logged once each until a reply succeeds */
typedef enum {
    NGX_HTTP_C1_REDIS_OK = 0,
    NGX_HTTP_C1_REDIS_CONNECT,
    NGX_HTTP_C1_REDIS_TIMEOUT,
    NGX_HTTP_C1_REDIS_CLOSED,
    NGX_HTTP_C1_REDIS_AUTH,
    NGX_HTTP_C1_REDIS_SELECT,
    NGX_HTTP_C1_REDIS_OOM,
    NGX_HTTP_C1_REDIS_WRONGTYPE,
    NGX_HTTP_C1_REDIS_TOO_LARGE,
    NGX_HTTP_C1_REDIS_PROTOCOL,
    NGX_HTTP_C1_REDIS_ERROR,
    NGX_HTTP_C1_REDIS_REPLY
} ngx_http_c1_redis_cause_e;


static ngx_int_t ngx_http_c1_redis_run(ngx_http_c1_store_op_t *op);
static ngx_int_t ngx_http_c1_redis_start(ngx_http_c1_store_op_t *op);
static void ngx_http_c1_redis_complete(ngx_http_c1_store_op_t *op);
static void ngx_http_c1_redis_shas(void);
static void ngx_http_c1_redis_script(const char **argv, size_t *len,
    ngx_http_c1_script_e script);
static void ngx_http_c1_redis_exit(ngx_http_c1_store_t *store);
static ngx_int_t ngx_http_c1_redis_ring(ngx_conf_t *cf,
    ngx_http_c1_redis_t *redis);
static ngx_uint_t ngx_http_c1_redis_pick(ngx_http_c1_redis_t *redis,
    ngx_str_t *owner, ngx_str_t *thread);
static ngx_int_t ngx_http_c1_redis_op(ngx_http_c1_store_op_t *op,
    ngx_uint_t server, ngx_http_c1_redis_list_t *list, ngx_uint_t part);
static ngx_int_t ngx_http_c1_redis_args(ngx_http_c1_store_op_t *op,
    ngx_pool_t *pool, ngx_uint_t server, ngx_http_c1_redis_list_t *list,
    ngx_uint_t part);
static ngx_int_t ngx_http_c1_redis_send(ngx_http_c1_redis_t *redis,
    ngx_uint_t server, ngx_http_c1_redis_kind_e kind,
    ngx_http_c1_store_op_t *op, ngx_uint_t argc, const char **argv,
    const size_t *argvlen, ngx_http_c1_redis_list_t *list,
    ngx_uint_t part);
static ngx_http_c1_redis_conn_t *ngx_http_c1_redis_conn(
    ngx_http_c1_redis_t *redis, ngx_uint_t server);
static ngx_int_t ngx_http_c1_redis_connect(ngx_http_c1_redis_conn_t *conn);
static ngx_int_t ngx_http_c1_redis_queue(ngx_http_c1_redis_conn_t *conn,
    ngx_http_c1_redis_cmd_t *cmd, ngx_uint_t argc, const char **argv,
    const size_t *argvlen);
static ngx_int_t ngx_http_c1_redis_queue_kind(
    ngx_http_c1_redis_conn_t *conn, ngx_http_c1_redis_kind_e kind,
    ngx_uint_t argc, const char **argv, const size_t *argvlen);
static void ngx_http_c1_redis_write_handler(ngx_event_t *wev);
static void ngx_http_c1_redis_read_handler(ngx_event_t *rev);
static ngx_int_t ngx_http_c1_redis_flush(ngx_http_c1_redis_conn_t *conn);
static void ngx_http_c1_redis_timeout(ngx_event_t *ev);
static void ngx_http_c1_redis_cancel(void *data);
static void ngx_http_c1_redis_close(ngx_http_c1_redis_conn_t *conn,
    ngx_http_c1_redis_cause_e cause, const char *detail);
static void ngx_http_c1_redis_reply(ngx_http_c1_redis_conn_t *conn,
    ngx_http_c1_redis_cmd_t *cmd, redisReply *reply);
static ngx_int_t ngx_http_c1_redis_result(ngx_http_c1_store_op_t *op,
    redisReply *reply, ngx_http_c1_redis_list_t *list, ngx_uint_t part);
static void ngx_http_c1_redis_done(ngx_http_c1_redis_cmd_t *cmd,
    ngx_int_t rc);
static void ngx_http_c1_redis_list_done(ngx_http_c1_store_op_t *op,
    ngx_http_c1_redis_list_t *list);
static ngx_int_t ngx_http_c1_redis_meta(ngx_http_c1_store_op_t *op,
    redisReply **e, ngx_http_c1_meta_t *meta);
static ngx_int_t ngx_http_c1_redis_msgs(ngx_http_c1_store_op_t *op,
    redisReply *list);
static ngx_int_t ngx_http_c1_redis_unpack(ngx_pool_t *pool,
    redisReply *r, ngx_http_c1_msg_t *m);
static void ngx_http_c1_redis_log(ngx_http_c1_redis_t *redis,
    ngx_http_c1_redis_server_t *server, ngx_http_c1_redis_cause_e cause,
    const char *detail);
static void ngx_http_c1_redis_unlock(ngx_http_c1_redis_t *redis,
    ngx_http_c1_redis_cmd_t *cmd, ngx_msec_t delay);
static void ngx_http_c1_redis_unlock_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_c1_redis_unlock_send(ngx_http_c1_redis_unlock_t *u,
    ngx_http_c1_redis_conn_t *conn);
static void ngx_http_c1_redis_unlock_waiting(ngx_http_c1_redis_conn_t *conn);
static size_t ngx_http_c1_redis_size(redisReply *reply);
static ngx_int_t ngx_http_c1_redis_hold(ngx_http_c1_store_op_t *op);
static void ngx_http_c1_redis_renew(ngx_event_t *ev);
static void ngx_http_c1_redis_renew_stop(void *data);
static u_char *ngx_http_c1_redis_key(ngx_pool_t *pool, ngx_str_t *prefix,
    ngx_str_t *owner, ngx_str_t *thread, char *suffix, size_t *len);
static ngx_int_t ngx_http_c1_redis_bucket(ngx_http_c1_store_op_t *op,
    ngx_pool_t *pool, ngx_uint_t server);


/*
 * The scripts, loaded on each new connection (SCRIPT LOAD) and run by
 * their SHA1 (EVALSHA): a command carries 40 bytes of script, not its
 * text, and Redis looks it up rather than hashing it every time.
 */
static ngx_http_c1_script_t  ngx_http_c1_redis_scripts[NGX_HTTP_C1_SCRIPTS] = {
    { NGX_HTTP_C1_REDIS_BEGIN, "" },
    { NGX_HTTP_C1_REDIS_COMMIT, "" },
    { NGX_HTTP_C1_REDIS_END, "" },
    { NGX_HTTP_C1_REDIS_RENEW, "" },
    { NGX_HTTP_C1_REDIS_LIST, "" },
    { NGX_HTTP_C1_REDIS_GET, "" },
    { NGX_HTTP_C1_REDIS_CREATE, "" },
    { NGX_HTTP_C1_REDIS_RENAME, "" },
    { NGX_HTTP_C1_REDIS_REPLACE, "" },
    { NGX_HTTP_C1_REDIS_DELETE, "" },
    { NGX_HTTP_C1_REDIS_LIMIT, "" },
    { NGX_HTTP_C1_REDIS_DEBIT, "" }
};


/*
 * a stored message's role, its first byte, by C1_ROLE_*: "u" user, "a"
 * assistant, "c" the assistant's tool calls, "t" a tool's result (the two
 * last: the messages' JSON); C1_ROLE_TOOL (4) is & 3 == 0
 */
static u_char  ngx_http_c1_redis_roles[4] = { 't', 'u', 'a', 'c' };


static char  *ngx_http_c1_redis_causes[] = {
    "",
    "could not connect",
    "did not answer in time",
    "closed the connection",
    "authentication failed",
    "SELECT failed",
    "is out of memory",
    "a key holds the wrong kind of value",
    "a reply larger than allowed",
    "answered what is not Redis's protocol",
    "answered an error",
    "answered a reply of the wrong shape"
};


/* c1_history_redis name=NAME server=ADDRESS ... */

char *
ngx_http_c1_history_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ssize_t                      size;
    ngx_int_t                    n;
    ngx_str_t                   *value, s, name;
    ngx_url_t                    u;
    ngx_uint_t                   i;
    ngx_http_c1_redis_t         *redis;
    ngx_http_c1_store_t         *store, **sp;
    ngx_http_c1_main_conf_t     *mcf;
    ngx_http_c1_redis_server_t  *server;

    value = cf->args->elts;

    redis = ngx_pcalloc(cf->pool, sizeof(ngx_http_c1_redis_t));
    if (redis == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_array_init(&redis->servers, cf->pool, 2,
                       sizeof(ngx_http_c1_redis_server_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    ngx_str_set(&redis->prefix, "c1:");
    redis->max_messages = 100;
    redis->inactive = 86400 * 1000;
    redis->timeout = 1000;
    redis->connections = 2;
    redis->max_reply = 16 * 1024 * 1024;
    redis->log = &cf->cycle->new_log;

    ngx_str_null(&name);

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "name=", 5) == 0) {
            name.data = value[i].data + 5;
            name.len = value[i].len - 5;

            if (name.len == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "server=", 7) == 0) {
            ngx_memzero(&u, sizeof(ngx_url_t));

            u.url.data = value[i].data + 7;
            u.url.len = value[i].len - 7;
            u.no_resolve = 0;

            if (u.url.len == 0 || ngx_parse_url(cf->pool, &u) != NGX_OK) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid server \"%V\" of "
                                   "\"c1_history_redis\"%s%s", &u.url,
                                   u.err ? ": " : "", u.err ? u.err : "");
                return NGX_CONF_ERROR;
            }

            if (u.naddrs == 0 || (u.family != AF_UNIX && u.no_port)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid server \"%V\" of "
                                   "\"c1_history_redis\": it needs "
                                   "host:port or unix:/path", &u.url);
                return NGX_CONF_ERROR;
            }

            server = ngx_array_push(&redis->servers);
            if (server == NULL) {
                return NGX_CONF_ERROR;
            }

            ngx_memzero(server, sizeof(ngx_http_c1_redis_server_t));
            server->name = u.url;
            server->addr = &u.addrs[0];
            server->index = redis->servers.nelts - 1;

            continue;
        }

        if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
            redis->password.data = value[i].data + 9;
            redis->password.len = value[i].len - 9;
            continue;
        }

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            n = ngx_atoi(value[i].data + 3, value[i].len - 3);

            if (n == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"db\" takes a number from 0, not "
                                   "\"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            redis->db = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "prefix=", 7) == 0) {
            redis->prefix.data = value[i].data + 7;
            redis->prefix.len = value[i].len - 7;
            continue;
        }

        n = ngx_http_c1_store_limit(cf, &value[i], &redis->max_messages,
                                    &redis->inactive);

        if (n == NGX_ERROR) {
            return NGX_CONF_ERROR;
        }

        if (n == NGX_OK) {
            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            n = ngx_parse_time(&s, 0);

            if (n == NGX_ERROR || n == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"timeout\" takes a time, not \"%V\"",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            redis->timeout = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "connections=", 12) == 0) {
            n = ngx_atoi(value[i].data + 12, value[i].len - 12);

            if (n < 1 || n > 64) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"connections\" takes a number from 1 "
                                   "to 64, not \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            redis->connections = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "max_reply=", 10) == 0) {
            s.data = value[i].data + 10;
            s.len = value[i].len - 10;

            size = ngx_parse_size(&s);

            if (size == NGX_ERROR || size < 1024) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"max_reply\" takes a size of at least "
                                   "1k, not \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            redis->max_reply = size;
            continue;
        }

        goto invalid;
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"c1_history_redis\" needs name=NAME");
        return NGX_CONF_ERROR;
    }

    if (redis->servers.nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"c1_history_redis\" needs server=ADDRESS");
        return NGX_CONF_ERROR;
    }

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_c1_module);

    if (ngx_http_c1_store_find(mcf, &name) != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "a c1 history store \"%V\" is already defined",
                           &name);
        return NGX_CONF_ERROR;
    }

    /* this worker's connections, made in each after the fork */

    server = redis->servers.elts;

    for (i = 0; i < redis->servers.nelts; i++) {
        server[i].conns = ngx_pcalloc(cf->pool, redis->connections
                                      * sizeof(ngx_http_c1_redis_conn_t));
        if (server[i].conns == NULL) {
            return NGX_CONF_ERROR;
        }

        for (n = 0; n < (ngx_int_t) redis->connections; n++) {
            server[i].conns[n].redis = redis;
            server[i].conns[n].server = &server[i];
            ngx_queue_init(&server[i].conns[n].sent);
        }

        ngx_queue_init(&server[i].unlocks);
    }

    if (ngx_http_c1_redis_ring(cf, redis) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_http_c1_redis_shas();

    store = ngx_pcalloc(cf->pool, sizeof(ngx_http_c1_store_t));
    if (store == NULL) {
        return NGX_CONF_ERROR;
    }

    store->name = name;
    store->run = ngx_http_c1_redis_run;
    store->exit = ngx_http_c1_redis_exit;
    store->data = redis;
    store->buckets = 1;
    store->file = cf->conf_file->file.name.data;
    store->line = cf->conf_file->line;

    redis->store = store;

    sp = ngx_array_push(&mcf->stores);
    if (sp == NULL) {
        return NGX_CONF_ERROR;
    }

    *sp = store;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" of \"c1_history_redis\"",
                       &value[i]);
    return NGX_CONF_ERROR;
}


static int
ngx_http_c1_redis_point_cmp(const void *one, const void *two)
{
    const ngx_http_c1_redis_point_t  *a = one, *b = two;

    return (a->hash > b->hash) - (a->hash < b->hash);
}


/* the consistent hash ring: NGX_HTTP_C1_REDIS_POINTS points a server */

static ngx_int_t
ngx_http_c1_redis_ring(ngx_conf_t *cf, ngx_http_c1_redis_t *redis)
{
    u_char                      *p, buf[NGX_SOCKADDR_STRLEN + 16];
    ngx_uint_t                   i, j, n;
    ngx_http_c1_redis_server_t  *server;

    server = redis->servers.elts;
    n = redis->servers.nelts * NGX_HTTP_C1_REDIS_POINTS;

    redis->points = ngx_palloc(cf->pool,
                               n * sizeof(ngx_http_c1_redis_point_t));
    if (redis->points == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < redis->servers.nelts; i++) {
        for (j = 0; j < NGX_HTTP_C1_REDIS_POINTS; j++) {
            p = ngx_snprintf(buf, sizeof(buf), "%V-%ui", &server[i].name, j);

            redis->points[i * NGX_HTTP_C1_REDIS_POINTS + j].hash =
                                              ngx_crc32_long(buf, p - buf);
            redis->points[i * NGX_HTTP_C1_REDIS_POINTS + j].server = i;
        }
    }

    ngx_qsort(redis->points, n, sizeof(ngx_http_c1_redis_point_t),
              ngx_http_c1_redis_point_cmp);

    redis->npoints = n;

    return NGX_OK;
}


/* the server of a thread: the first point of the ring at its hash */

static ngx_uint_t
ngx_http_c1_redis_pick(ngx_http_c1_redis_t *redis, ngx_str_t *owner,
    ngx_str_t *thread)
{
    uint32_t    hash;
    ngx_uint_t  lo, hi, mid;
    u_char      len[NGX_INT_T_LEN + 1], *p;

    if (redis->servers.nelts == 1) {
        return 0;
    }

    p = ngx_sprintf(len, "%uz:", owner->len);

    ngx_crc32_init(hash);
    ngx_crc32_update(&hash, len, p - len);
    ngx_crc32_update(&hash, owner->data, owner->len);
    ngx_crc32_update(&hash, (u_char *) ":", 1);
    ngx_crc32_update(&hash, thread->data, thread->len);
    ngx_crc32_final(hash);

    lo = 0;
    hi = redis->npoints;

    while (lo < hi) {
        mid = (lo + hi) / 2;

        if (redis->points[mid].hash < hash) {
            lo = mid + 1;

        } else {
            hi = mid;
        }
    }

    if (lo == redis->npoints) {
        lo = 0;
    }

    return redis->points[lo].server;
}


/* the store's entry: NGX_OK (failed at once: op->rc) or NGX_AGAIN */

/*
 * The operation being run now, and whether it ended while it was: a
 * command that fails at once (its connection went as it was written)
 * ends it inside the run, where its handler must not be called.
 */
static ngx_http_c1_store_op_t  *ngx_http_c1_redis_running;
static ngx_uint_t               ngx_http_c1_redis_ended;


/* the store's entry: NGX_OK (over now: op->rc) or NGX_AGAIN */

static ngx_int_t
ngx_http_c1_redis_run(ngx_http_c1_store_op_t *op)
{
    ngx_int_t                rc;
    ngx_uint_t               ended;
    ngx_http_c1_store_op_t  *running;

    running = ngx_http_c1_redis_running;
    ended = ngx_http_c1_redis_ended;

    ngx_http_c1_redis_running = op;
    ngx_http_c1_redis_ended = 0;

    rc = ngx_http_c1_redis_start(op);

    if (ngx_http_c1_redis_ended) {
        rc = NGX_OK;
    }

    ngx_http_c1_redis_running = running;
    ngx_http_c1_redis_ended = ended;

    return (rc == NGX_AGAIN && op->handler) ? NGX_AGAIN : NGX_OK;
}


/* the operation's commands sent: NGX_AGAIN, or NGX_OK when it failed */

static ngx_int_t
ngx_http_c1_redis_start(ngx_http_c1_store_op_t *op)
{
    ngx_uint_t                 i, n;
    ngx_http_c1_redis_t       *redis;
    ngx_http_c1_redis_list_t  *list;

    redis = op->store->data;

    op->rc = NGX_ERROR;

    if (op->type != NGX_HTTP_C1_STORE_LIST || redis->servers.nelts == 1) {
        if (ngx_http_c1_redis_op(op, op->type == NGX_HTTP_C1_STORE_LIST
                                     ? 0
                                     : ngx_http_c1_redis_pick(redis,
                                                              &op->owner,
                                                              &op->thread),
                                 NULL, 0)
            != NGX_OK)
        {
            return NGX_OK;
        }

        if (op->type == NGX_HTTP_C1_STORE_DEBIT) {
            op->rc = NGX_OK;        /* sent: its reply is nobody's */
            return NGX_OK;
        }

        return NGX_AGAIN;
    }

    /* every server's page, merged */

    n = redis->servers.nelts;

    list = ngx_pcalloc(op->pool, sizeof(ngx_http_c1_redis_list_t));
    if (list == NULL) {
        return NGX_OK;
    }

    list->metas = ngx_pcalloc(op->pool, n * sizeof(ngx_http_c1_meta_t *));
    list->scores = ngx_pcalloc(op->pool, n * sizeof(double *));
    list->n = ngx_pcalloc(op->pool, n * sizeof(ngx_uint_t));

    if (list->metas == NULL || list->scores == NULL || list->n == NULL) {
        return NGX_OK;
    }

    /* one more than sent while sending: no part ends the list meanwhile */

    list->wait = 1;

    for (i = 0; i < n; i++) {
        list->wait++;

        if (ngx_http_c1_redis_op(op, i, list, i) != NGX_OK) {
            list->wait--;
            list->failed = 1;

            ngx_log_error(NGX_LOG_ERR, op->log, 0,
                          "c1: a server of c1_history_redis \"%V\" cannot "
                          "be reached: the list fails", &redis->store->name);
            break;
        }
    }

    if (--list->wait == 0) {
        ngx_http_c1_redis_list_done(op, list);    /* over already */
        return NGX_OK;
    }

    return NGX_AGAIN;
}


/* one server's command for the operation */

static ngx_int_t
ngx_http_c1_redis_op(ngx_http_c1_store_op_t *op, ngx_uint_t server,
    ngx_http_c1_redis_list_t *list, ngx_uint_t part)
{
    ngx_int_t    rc;
    ngx_pool_t  *pool;

    /* an operation with no pool of its own (END): a short-lived one */

    if (op->pool) {
        pool = op->pool;

    } else {
        pool = ngx_create_pool(1024, ngx_cycle->log);
        if (pool == NULL) {
            return NGX_ERROR;
        }
    }

    rc = ngx_http_c1_redis_args(op, pool, server, list, part);

    if (op->pool == NULL) {
        ngx_destroy_pool(pool);
    }

    return rc;
}


static ngx_int_t
ngx_http_c1_redis_args(ngx_http_c1_store_op_t *op, ngx_pool_t *pool,
    ngx_uint_t server, ngx_http_c1_redis_list_t *list, ngx_uint_t part)
{
    u_char                 *p;
    size_t                  len[16 + 2 * 1024], klen[5];
    u_char                 *keys[5];
    ngx_str_t               owner_key;
    ngx_uint_t              argc, i, nkeys;
    ngx_time_t             *tp;
    const char             *argv[16 + 2 * 1024];
    ngx_http_c1_msg_t      *m;
    ngx_http_c1_redis_t    *redis;
    ngx_http_c1_redis_cmd_t   end;
    u_char                  now[NGX_INT64_LEN], inactive[NGX_INT64_LEN];
    u_char                  max[NGX_INT64_LEN], ttl[NGX_INT64_LEN];
    u_char                  nmsgs[NGX_INT64_LEN], cursor[NGX_INT64_LEN + 1];
    u_char                  limit[NGX_INT64_LEN], token[64];

    redis = op->store->data;

    if (op->type == NGX_HTTP_C1_STORE_LIMIT
        || op->type == NGX_HTTP_C1_STORE_DEBIT)
    {
        return ngx_http_c1_redis_bucket(op, pool, server);
    }

    if (op->type == NGX_HTTP_C1_STORE_COMMIT
        && op->nmsgs > 1024)
    {
        op->nmsgs = 1024;   /* never: a turn brings max_messages at most */
    }

    tp = ngx_timeofday();
    p = ngx_sprintf(now, "%uL", (uint64_t) tp->sec * 1000 + tp->msec);
    *p = '\0';
    p = ngx_sprintf(inactive, "%M", redis->inactive);
    *p = '\0';
    p = ngx_sprintf(max, "%ui", redis->max_messages);
    *p = '\0';
    p = ngx_sprintf(ttl, "%d", NGX_HTTP_C1_REDIS_LOCK);
    *p = '\0';
    p = ngx_sprintf(token, "%uL", op->token);
    *p = '\0';

    /* the thread's keys, and its owner's index */

    keys[0] = ngx_http_c1_redis_key(pool, &redis->prefix, &op->owner,
                                    &op->thread, ":m", &klen[0]);
    keys[1] = ngx_http_c1_redis_key(pool, &redis->prefix, &op->owner,
                                    &op->thread, ":l", &klen[1]);
    keys[2] = ngx_http_c1_redis_key(pool, &redis->prefix, &op->owner,
                                    &op->thread, ":k", &klen[2]);
    keys[3] = ngx_http_c1_redis_key(pool, &redis->prefix, &op->owner,
                                    NULL, NULL, &klen[3]);
    keys[4] = ngx_pnalloc(pool, redis->prefix.len + 3);

    if (keys[0] == NULL || keys[1] == NULL || keys[2] == NULL
        || keys[3] == NULL || keys[4] == NULL)
    {
        return NGX_ERROR;
    }

    p = ngx_cpymem(keys[4], redis->prefix.data, redis->prefix.len);
    p = ngx_cpymem(p, "seq", 3);
    klen[4] = p - keys[4];

    argc = 3;
    nkeys = 0;

#define ngx_http_c1_arg(s, l)                                                 \
    argv[argc] = (const char *) (s); len[argc] = (l); argc++

#define ngx_http_c1_argz(s)                                                   \
    ngx_http_c1_arg((s), ngx_strlen((s)))

#define ngx_http_c1_key(k)                                                    \
    ngx_http_c1_arg(keys[k], klen[k]); nkeys++

    switch (op->type) {

    case NGX_HTTP_C1_STORE_BEGIN:
        ngx_http_c1_redis_script(argv, len, NGX_HTTP_C1_SCRIPT_BEGIN);
        ngx_http_c1_key(0);
        ngx_http_c1_key(1);
        ngx_http_c1_key(2);
        ngx_http_c1_argz(token);
        ngx_http_c1_argz(ttl);
        ngx_http_c1_argz(op->load ? "1" : "0");
        ngx_http_c1_argz(inactive);
        break;

    case NGX_HTTP_C1_STORE_COMMIT:
        ngx_http_c1_redis_script(argv, len, NGX_HTTP_C1_SCRIPT_COMMIT);
        for (i = 0; i < 5; i++) {
            ngx_http_c1_key(i);
        }
        ngx_http_c1_argz(token);
        ngx_http_c1_argz(max);
        ngx_http_c1_argz(op->replace ? "1" : "0");
        ngx_http_c1_arg(op->title.data ? op->title.data : (u_char *) "",
                        op->title.len);
        ngx_http_c1_argz(now);
        ngx_http_c1_argz(inactive);
        ngx_http_c1_arg(op->thread.data, op->thread.len);
        p = ngx_sprintf(nmsgs, "%ui", op->nmsgs);
        *p = '\0';
        ngx_http_c1_argz(nmsgs);

        for (i = 0; i < op->nmsgs; i++) {
            m = &op->msgs[i];

            ngx_http_c1_arg(m->id.data, m->id.len);

            p = ngx_pnalloc(pool, 1 + NGX_INT64_LEN + 2 + m->id.len
                                  + m->content.len);
            if (p == NULL) {
                return NGX_ERROR;
            }

            argv[argc] = (const char *) p;

            p = ngx_sprintf(p, "%c%s\n%V\n",
                            ngx_http_c1_redis_roles[m->role & 3], now,
                            &m->id);
            p = ngx_cpymem(p, m->content.data, m->content.len);

            len[argc] = p - (u_char *) argv[argc];
            argc++;
        }

        break;

    case NGX_HTTP_C1_STORE_END:

        /* the lock goes by its token, tried again while Redis is away */

        ngx_memzero(&end, sizeof(ngx_http_c1_redis_cmd_t));
        end.lock = keys[2];
        end.lock_len = klen[2];
        end.token = op->token;
        end.server = server;

        ngx_http_c1_redis_unlock(redis, &end, 0);

        return NGX_OK;

    case NGX_HTTP_C1_STORE_LIST:
        ngx_http_c1_redis_script(argv, len, NGX_HTTP_C1_SCRIPT_LIST);
        ngx_http_c1_key(3);

        if (op->cursor) {
            p = ngx_sprintf(cursor, "(%uL", op->cursor);
            *p = '\0';
            ngx_http_c1_argz(cursor);

        } else {
            ngx_http_c1_argz("+inf");
        }

        p = ngx_sprintf(limit, "%ui", op->limit);
        *p = '\0';
        ngx_http_c1_argz(limit);

        /* the thread keys' common part: TK without the thread */

        ngx_str_null(&owner_key);
        owner_key.data = ngx_http_c1_redis_key(pool, &redis->prefix,
                                               &op->owner, &owner_key,
                                               "", &owner_key.len);
        if (owner_key.data == NULL) {
            return NGX_ERROR;
        }

        ngx_http_c1_arg(owner_key.data, owner_key.len);
        break;

    case NGX_HTTP_C1_STORE_GET:
        ngx_http_c1_redis_script(argv, len, NGX_HTTP_C1_SCRIPT_GET);
        ngx_http_c1_key(0);
        ngx_http_c1_key(1);
        ngx_http_c1_argz(inactive);
        break;

    case NGX_HTTP_C1_STORE_CREATE:
        ngx_http_c1_redis_script(argv, len, NGX_HTTP_C1_SCRIPT_CREATE);
        ngx_http_c1_key(0);
        ngx_http_c1_key(3);
        ngx_http_c1_key(4);
        ngx_http_c1_arg(op->thread.data, op->thread.len);
        ngx_http_c1_arg(op->title.data, op->title.len);
        ngx_http_c1_argz(now);
        ngx_http_c1_argz(inactive);
        break;

    case NGX_HTTP_C1_STORE_RENAME:
        ngx_http_c1_redis_script(argv, len, NGX_HTTP_C1_SCRIPT_RENAME);
        for (i = 0; i < 5; i++) {
            ngx_http_c1_key(i);
        }
        ngx_http_c1_arg(op->thread.data, op->thread.len);
        ngx_http_c1_arg(op->title.data, op->title.len);
        ngx_http_c1_argz(now);
        ngx_http_c1_argz(inactive);
        break;

    case NGX_HTTP_C1_STORE_REPLACE:
        ngx_http_c1_redis_script(argv, len, NGX_HTTP_C1_SCRIPT_REPLACE);
        for (i = 0; i < 5; i++) {
            ngx_http_c1_key(i);
        }
        m = op->msgs;
        ngx_http_c1_arg(op->thread.data, op->thread.len);
        ngx_http_c1_arg(m->id.data, m->id.len);
        ngx_http_c1_argz(now);
        ngx_http_c1_argz(inactive);
        ngx_http_c1_argz(m->role == 0 ? ""
                         : (m->role == C1_ROLE_USER ? "u" : "a"));
        ngx_http_c1_arg(m->content.data, m->content.len);
        break;

    default: /* NGX_HTTP_C1_STORE_DELETE */
        ngx_http_c1_redis_script(argv, len, NGX_HTTP_C1_SCRIPT_DELETE);
        for (i = 0; i < 4; i++) {
            ngx_http_c1_key(i);
        }
        ngx_http_c1_arg(op->thread.data, op->thread.len);
        break;
    }

#undef ngx_http_c1_arg
#undef ngx_http_c1_argz
#undef ngx_http_c1_key

    p = ngx_pnalloc(pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    argv[2] = (const char *) p;
    len[2] = ngx_sprintf(p, "%ui", nkeys) - p;

    return ngx_http_c1_redis_send(redis, server, NGX_HTTP_C1_REDIS_OP, op,
                                  argc, argv, len, list, part);
}


/* a token bucket's LIMIT or DEBIT: KEYS b; ARGV rate window [tokens] */

static ngx_int_t
ngx_http_c1_redis_bucket(ngx_http_c1_store_op_t *op, ngx_pool_t *pool,
    ngx_uint_t server)
{
    u_char               *key, *p;
    size_t                len[7];
    const char           *argv[7];
    ngx_uint_t            argc;
    ngx_http_c1_redis_t  *redis;
    u_char                rate[NGX_INT64_LEN + 1], window[NGX_INT64_LEN + 1];
    u_char                tokens[NGX_INT64_LEN + 1];

    redis = op->store->data;

    key = ngx_pnalloc(pool, redis->prefix.len + 2 + NGX_SIZE_T_LEN + 1
                            + op->owner.len + 1 + op->thread.len);
    if (key == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(key, redis->prefix.data, redis->prefix.len);
    p = ngx_sprintf(p, "b:%uz:%V:%V", op->owner.len, &op->owner,
                    &op->thread);

    ngx_http_c1_redis_script(argv, len, op->type == NGX_HTTP_C1_STORE_LIMIT
                                        ? NGX_HTTP_C1_SCRIPT_LIMIT
                                        : NGX_HTTP_C1_SCRIPT_DEBIT);

    argv[2] = "1";
    len[2] = 1;
    argv[3] = (const char *) key;
    len[3] = p - key;

    argv[4] = (const char *) rate;
    len[4] = ngx_sprintf(rate, "%uL", op->rate) - rate;
    argv[5] = (const char *) window;
    len[5] = ngx_sprintf(window, "%uL", op->window) - window;

    argc = 6;

    if (op->type == NGX_HTTP_C1_STORE_DEBIT) {
        argv[6] = (const char *) tokens;
        len[6] = ngx_sprintf(tokens, "%uL", op->tokens) - tokens;
        argc = 7;
    }

    return ngx_http_c1_redis_send(redis, server, NGX_HTTP_C1_REDIS_OP, op,
                                  argc, argv, len, NULL, 0);
}


/* the key prefix "t:" len(owner) ":" owner ":" thread suffix, or the index */

static u_char *
ngx_http_c1_redis_key(ngx_pool_t *pool, ngx_str_t *prefix, ngx_str_t *owner,
    ngx_str_t *thread, char *suffix, size_t *len)
{
    u_char  *key, *p;
    size_t   n;

    n = prefix->len + 2 + NGX_SIZE_T_LEN + 1 + owner->len + 1
        + (thread ? thread->len : 0) + (suffix ? ngx_strlen(suffix) : 0);

    key = ngx_pnalloc(pool, n);
    if (key == NULL) {
        return NULL;
    }

    p = ngx_cpymem(key, prefix->data, prefix->len);

    if (thread == NULL) {
        p = ngx_sprintf(p, "o:%uz:%V", owner->len, owner);

    } else {
        p = ngx_sprintf(p, "t:%uz:%V:%V%s", owner->len, owner, thread,
                        suffix);
    }

    *len = p - key;

    return key;
}


/* a command to a server, on one of this worker's connections to it */

static ngx_int_t
ngx_http_c1_redis_send(ngx_http_c1_redis_t *redis, ngx_uint_t server,
    ngx_http_c1_redis_kind_e kind, ngx_http_c1_store_op_t *op,
    ngx_uint_t argc, const char **argv, const size_t *argvlen,
    ngx_http_c1_redis_list_t *list, ngx_uint_t part)
{
    ngx_http_c1_redis_cmd_t   *cmd;
    ngx_http_c1_redis_conn_t  *conn;

    cmd = ngx_alloc(sizeof(ngx_http_c1_redis_cmd_t), ngx_cycle->log);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(cmd, sizeof(ngx_http_c1_redis_cmd_t));

    cmd->kind = kind;
    cmd->op = op;
    cmd->list = list;

    if (op && op->type == NGX_HTTP_C1_STORE_DEBIT) {
        cmd->op = NULL;             /* the request may be gone first */
        cmd->debit = 1;
        op = NULL;
    }

    cmd->part = part;
    cmd->server = server;

    if (op && (op->type == NGX_HTTP_C1_STORE_BEGIN
               || op->type == NGX_HTTP_C1_STORE_COMMIT))
    {
        cmd->lock = ngx_alloc(argvlen[5], ngx_cycle->log);
        if (cmd->lock == NULL) {
            ngx_free(cmd);
            return NGX_ERROR;
        }

        ngx_memcpy(cmd->lock, argv[5], argvlen[5]);   /* KEYS[3] */
        cmd->lock_len = argvlen[5];
        cmd->token = op->token;
    }

    conn = ngx_http_c1_redis_conn(redis, server);

    if (conn == NULL
        || (op && op->pool
            && (cmd->cln = ngx_pool_cleanup_add(op->pool, 0)) == NULL)
        || ngx_http_c1_redis_queue(conn, cmd, argc, argv, argvlen) != NGX_OK)
    {
        /*
         * not sent: a COMMIT's turn still holds its lock (its BEGIN took
         * it), which goes by its token once Redis can be reached again
         */

        if (cmd->lock) {
            if (op->type == NGX_HTTP_C1_STORE_COMMIT) {
                ngx_http_c1_redis_unlock(redis, cmd, 200);
            }

            ngx_free(cmd->lock);
        }

        ngx_free(cmd);
        return NGX_ERROR;
    }

    if (cmd->cln) {
        cmd->cln->handler = ngx_http_c1_redis_cancel;
        cmd->cln->data = cmd;
    }

    /*
     * written at once: a turn's commit is in Redis's hands before its
     * answer's end is sent, so that the client's next turn (on any node)
     * finds it (a connection that fails here fails the command with it,
     * and its operation learns that after the run: see below)
     */

    if (conn->connected) {
        (void) ngx_http_c1_redis_flush(conn);
    }

    return NGX_OK;
}


/* a connection to the server: connected, or connecting */

static ngx_http_c1_redis_conn_t *
ngx_http_c1_redis_conn(ngx_http_c1_redis_t *redis, ngx_uint_t server)
{
    ngx_uint_t                   i, n;
    ngx_http_c1_redis_conn_t    *conn;
    ngx_http_c1_redis_server_t  *s;

    s = &((ngx_http_c1_redis_server_t *) redis->servers.elts)[server];

    /* one that is open, the next in turn */

    for (i = 0; i < redis->connections; i++) {
        n = (s->next + i) % redis->connections;
        conn = &s->conns[n];

        if (conn->open) {
            s->next = n + 1;
            return conn;
        }
    }

    if (s->retry_at && (ngx_msec_int_t) (ngx_current_msec - s->retry_at) < 0)
    {
        return NULL;            /* it failed a moment ago: 503 at once */
    }

    conn = &s->conns[s->next % redis->connections];
    s->next++;

    if (ngx_http_c1_redis_connect(conn) != NGX_OK) {
        return NULL;
    }

    return conn;
}


static ngx_int_t
ngx_http_c1_redis_connect(ngx_http_c1_redis_conn_t *conn)
{
    ngx_int_t                    rc;
    ngx_uint_t                   i;
    const char                  *argv[2], *script[3];
    size_t                       len[2], slen[3];
    u_char                       db[NGX_INT_T_LEN];
    ngx_connection_t            *c;
    ngx_http_c1_redis_t         *redis;
    ngx_http_c1_redis_server_t  *s;

    redis = conn->redis;
    s = conn->server;

    ngx_memzero(&conn->peer, sizeof(ngx_peer_connection_t));

    /*
     * nginx's own words on a failed connect would come at every retry:
     * the module says it once (the cause), so they are kept to info
     */

    conn->log = *ngx_cycle->log;
    conn->log.log_level = ngx_min(conn->log.log_level, NGX_LOG_ALERT);

    conn->peer.sockaddr = s->addr->sockaddr;
    conn->peer.socklen = s->addr->socklen;
    conn->peer.name = &s->name;
    conn->peer.get = ngx_event_get_peer;
    conn->peer.log = &conn->log;
    conn->peer.log_error = NGX_ERROR_INFO;

    rc = ngx_event_connect_peer(&conn->peer);

    conn->log.log_level = ngx_cycle->log->log_level;

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        if (conn->peer.connection) {
            ngx_close_connection(conn->peer.connection);
            conn->peer.connection = NULL;
        }

        ngx_http_c1_redis_log(redis, s, NGX_HTTP_C1_REDIS_CONNECT, NULL);

        s->backoff = s->backoff ? ngx_min(s->backoff * 2,
                                          NGX_HTTP_C1_REDIS_BACKOFF)
                                : 100;
        s->retry_at = ngx_current_msec + s->backoff;

        return NGX_ERROR;
    }

    c = conn->peer.connection;
    c->data = conn;
    c->read->handler = ngx_http_c1_redis_read_handler;
    c->write->handler = ngx_http_c1_redis_write_handler;
    c->pool = NULL;

    conn->reader = redisReaderCreate();
    if (conn->reader == NULL) {
        ngx_close_connection(c);
        conn->peer.connection = NULL;
        return NGX_ERROR;
    }

    conn->open = 1;
    conn->connected = (rc == NGX_OK);
    conn->out_len = 0;
    conn->out_pos = 0;

    /* the greeting: AUTH, SELECT, ahead of every command */

    if (redis->password.len) {
        argv[0] = "AUTH";
        len[0] = 4;
        argv[1] = (const char *) redis->password.data;
        len[1] = redis->password.len;

        if (ngx_http_c1_redis_queue_kind(conn, NGX_HTTP_C1_REDIS_HELLO_AUTH,
                                         2, argv, len)
            != NGX_OK)
        {
            goto failed;
        }
    }

    if (redis->db) {
        argv[0] = "SELECT";
        len[0] = 6;
        argv[1] = (const char *) db;
        len[1] = ngx_sprintf(db, "%i", redis->db) - db;

        if (ngx_http_c1_redis_queue_kind(conn,
                                         NGX_HTTP_C1_REDIS_HELLO_SELECT,
                                         2, argv, len)
            != NGX_OK)
        {
            goto failed;
        }
    }

    script[0] = "SCRIPT";
    slen[0] = 6;
    script[1] = "LOAD";
    slen[1] = 4;

    for (i = 0; i < NGX_HTTP_C1_SCRIPTS; i++) {
        script[2] = ngx_http_c1_redis_scripts[i].text;
        slen[2] = ngx_strlen(script[2]);

        if (ngx_http_c1_redis_queue_kind(conn,
                                         NGX_HTTP_C1_REDIS_HELLO_SCRIPT,
                                         3, script, slen)
            != NGX_OK)
        {
            goto failed;
        }
    }

    ngx_http_c1_redis_unlock_waiting(conn);

    return NGX_OK;           /* NGX_AGAIN: the write event says connected */

failed:

    ngx_http_c1_redis_close(conn, NGX_HTTP_C1_REDIS_OK, NULL);

    return NGX_ERROR;
}


/* the command formatted into the connection's output, its reply awaited */

static ngx_int_t
ngx_http_c1_redis_queue(ngx_http_c1_redis_conn_t *conn,
    ngx_http_c1_redis_cmd_t *cmd, ngx_uint_t argc, const char **argv,
    const size_t *argvlen)
{
    int      n;
    char    *text;
    u_char  *out;
    size_t   size;

    n = redisFormatCommandArgv(&text, (int) argc, argv, argvlen);
    if (n < 0) {
        return NGX_ERROR;
    }

    if (conn->out_len + n > conn->out_size) {
        size = ngx_max(conn->out_size * 2, conn->out_len + n);
        size = ngx_max(size, 4096);

        out = ngx_alloc(size, ngx_cycle->log);
        if (out == NULL) {
            redisFreeCommand(text);
            return NGX_ERROR;
        }

        if (conn->out_len > conn->out_pos) {
            ngx_memcpy(out, conn->out + conn->out_pos,
                       conn->out_len - conn->out_pos);
        }

        conn->out_len -= conn->out_pos;
        conn->out_pos = 0;

        if (conn->out) {
            ngx_free(conn->out);
        }

        conn->out = out;
        conn->out_size = size;
    }

    ngx_memcpy(conn->out + conn->out_len, text, n);
    conn->out_len += n;

    redisFreeCommand(text);

    cmd->conn = conn;

    cmd->timer.handler = ngx_http_c1_redis_timeout;
    cmd->timer.data = cmd;
    cmd->timer.log = ngx_cycle->log;

    ngx_add_timer(&cmd->timer, conn->redis->timeout);

    ngx_queue_insert_tail(&conn->sent, &cmd->queue);

    if (conn->peer.connection) {
        conn->peer.connection->idle = 0;
    }

    return NGX_OK;
}


/* a command of the connection's own (nobody's operation), queued */

static ngx_int_t
ngx_http_c1_redis_queue_kind(ngx_http_c1_redis_conn_t *conn,
    ngx_http_c1_redis_kind_e kind, ngx_uint_t argc, const char **argv,
    const size_t *argvlen)
{
    ngx_http_c1_redis_cmd_t  *cmd;

    cmd = ngx_alloc(sizeof(ngx_http_c1_redis_cmd_t), ngx_cycle->log);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(cmd, sizeof(ngx_http_c1_redis_cmd_t));
    cmd->kind = kind;
    cmd->server = conn->server->index;

    if (ngx_http_c1_redis_queue(conn, cmd, argc, argv, argvlen) != NGX_OK) {
        ngx_free(cmd);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_c1_redis_write_handler(ngx_event_t *wev)
{
    ngx_connection_t          *c;
    ngx_http_c1_redis_conn_t  *conn;

    c = wev->data;
    conn = c->data;

    if (!conn->connected) {

        /* connected, or not: a write event after a connect says which */

        if (wev->timedout) {
            ngx_http_c1_redis_close(conn, NGX_HTTP_C1_REDIS_TIMEOUT, NULL);
            return;
        }

        conn->connected = 1;
    }

    (void) ngx_http_c1_redis_flush(conn);
}


/* what is to write, written; NGX_ERROR: the connection went */

static ngx_int_t
ngx_http_c1_redis_flush(ngx_http_c1_redis_conn_t *conn)
{
    ssize_t            n;
    ngx_connection_t  *c;

    c = conn->peer.connection;

    while (conn->out_pos < conn->out_len) {
        n = c->send(c, conn->out + conn->out_pos,
                    conn->out_len - conn->out_pos);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_http_c1_redis_close(conn, NGX_HTTP_C1_REDIS_CONNECT, NULL);
            return NGX_ERROR;
        }

        conn->out_pos += n;
    }

    if (conn->out_pos == conn->out_len) {
        conn->out_pos = 0;
        conn->out_len = 0;
    }

    if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
        ngx_http_c1_redis_close(conn, NGX_HTTP_C1_REDIS_CONNECT, NULL);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_c1_redis_read_handler(ngx_event_t *rev)
{
    int                        rc;
    void                      *reply;
    ssize_t                    n;
    ngx_queue_t               *q;
    ngx_connection_t          *c;
    ngx_http_c1_redis_cmd_t   *cmd;
    ngx_http_c1_redis_conn_t  *conn;
    u_char                     buf[NGX_HTTP_C1_REDIS_READ];

    c = rev->data;
    conn = c->data;

    if (c->close) {

        /* the worker is exiting and the connection idle: it goes */

        ngx_http_c1_redis_close(conn, NGX_HTTP_C1_REDIS_OK, NULL);
        return;
    }

    for ( ;; ) {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0 || n == NGX_ERROR) {
            ngx_http_c1_redis_close(conn, NGX_HTTP_C1_REDIS_CLOSED, NULL);
            return;
        }

        if (ngx_queue_empty(&conn->sent)) {

            /* nothing was asked: Redis closing an idle connection says so */

            ngx_http_c1_redis_close(conn, NGX_HTTP_C1_REDIS_OK, NULL);
            return;
        }

        if (redisReaderFeed(conn->reader, (char *) buf, n) != REDIS_OK) {
            ngx_http_c1_redis_close(conn, NGX_HTTP_C1_REDIS_PROTOCOL, NULL);
            return;
        }

        for ( ;; ) {
            reply = NULL;
            rc = redisReaderGetReply(conn->reader, &reply);

            if (rc != REDIS_OK) {
                ngx_http_c1_redis_close(conn, NGX_HTTP_C1_REDIS_PROTOCOL,
                                        NULL);
                return;
            }

            if (reply == NULL) {
                break;
            }

            if (ngx_queue_empty(&conn->sent)) {
                freeReplyObject(reply);
                ngx_http_c1_redis_close(conn, NGX_HTTP_C1_REDIS_PROTOCOL,
                                        NULL);
                return;
            }

            q = ngx_queue_head(&conn->sent);
            ngx_queue_remove(q);
            cmd = ngx_queue_data(q, ngx_http_c1_redis_cmd_t, queue);

            if (ngx_http_c1_redis_size(reply) > conn->redis->max_reply) {
                ngx_http_c1_redis_log(conn->redis, conn->server,
                                      NGX_HTTP_C1_REDIS_TOO_LARGE, NULL);

                /* it ran: a lock it took goes now */

                if (cmd->lock) {
                    ngx_http_c1_redis_unlock(conn->redis, cmd, 0);
                    ngx_free(cmd->lock);
                    cmd->lock = NULL;
                }

                ngx_http_c1_redis_done(cmd, NGX_ERROR);
                freeReplyObject(reply);

                if (!conn->open) {
                    return;
                }

                continue;
            }

            ngx_http_c1_redis_reply(conn, cmd, reply);

            freeReplyObject(reply);

            if (!conn->open) {
                return;                     /* closed by the reply */
            }
        }

        if (ngx_queue_empty(&conn->sent)) {

            /* nothing awaited: nginx may close it when the worker exits */

            c->idle = 1;

            if (ngx_exiting) {
                ngx_http_c1_redis_close(conn, NGX_HTTP_C1_REDIS_OK, NULL);
                return;
            }
        }

        /* what is buffered without a whole reply yet: bounded */

        if (conn->reader->len - conn->reader->pos > conn->redis->max_reply) {
            ngx_http_c1_redis_close(conn, NGX_HTTP_C1_REDIS_TOO_LARGE, NULL);
            return;
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_c1_redis_close(conn, NGX_HTTP_C1_REDIS_CLOSED, NULL);
    }
}


/* a command waited too long: the connection is given up */

static void
ngx_http_c1_redis_timeout(ngx_event_t *ev)
{
    ngx_http_c1_redis_cmd_t  *cmd = ev->data;

    ngx_http_c1_redis_close(cmd->conn, NGX_HTTP_C1_REDIS_TIMEOUT, NULL);
}


/* the request went before the reply: nobody waits for it any more */

static void
ngx_http_c1_redis_cancel(void *data)
{
    ngx_http_c1_redis_cmd_t  *cmd = data;

    cmd->op = NULL;
    cmd->list = NULL;
    cmd->cln = NULL;
}


/*
 * The connection is closed; its commands fail.  They are taken off it
 * first: what their handlers do (a request finalized, a new operation)
 * finds it closed.
 */

static void
ngx_http_c1_redis_close(ngx_http_c1_redis_conn_t *conn,
    ngx_http_c1_redis_cause_e cause, const char *detail)
{
    ngx_queue_t                  failed, *q;
    ngx_http_c1_redis_cmd_t     *cmd;
    ngx_http_c1_redis_server_t  *s;

    s = conn->server;

    if (cause != NGX_HTTP_C1_REDIS_OK) {
        ngx_http_c1_redis_log(conn->redis, s, cause, detail);

        if (cause == NGX_HTTP_C1_REDIS_CONNECT
            || cause == NGX_HTTP_C1_REDIS_TIMEOUT
            || cause == NGX_HTTP_C1_REDIS_CLOSED)
        {
            s->backoff = s->backoff ? ngx_min(s->backoff * 2,
                                              NGX_HTTP_C1_REDIS_BACKOFF)
                                    : 100;
            s->retry_at = ngx_current_msec + s->backoff;
        }
    }

    ngx_queue_init(&failed);

    if (!ngx_queue_empty(&conn->sent)) {
        failed = conn->sent;
        failed.next->prev = &failed;
        failed.prev->next = &failed;
        ngx_queue_init(&conn->sent);
    }

    if (conn->peer.connection) {
        ngx_close_connection(conn->peer.connection);
        conn->peer.connection = NULL;
    }

    if (conn->reader) {
        redisReaderFree(conn->reader);
        conn->reader = NULL;
    }

    conn->open = 0;
    conn->connected = 0;
    conn->out_len = 0;
    conn->out_pos = 0;

    while (!ngx_queue_empty(&failed)) {
        q = ngx_queue_head(&failed);
        ngx_queue_remove(q);
        cmd = ngx_queue_data(q, ngx_http_c1_redis_cmd_t, queue);

        ngx_http_c1_redis_done(cmd, NGX_ERROR);
    }
}


/* a reply, to the command at the head */

static void
ngx_http_c1_redis_reply(ngx_http_c1_redis_conn_t *conn,
    ngx_http_c1_redis_cmd_t *cmd, redisReply *reply)
{
    ngx_int_t                  rc;
    ngx_http_c1_redis_cause_e  cause;

    if (reply->type == REDIS_REPLY_ERROR) {

        if (cmd->kind == NGX_HTTP_C1_REDIS_HELLO_AUTH
            || cmd->kind == NGX_HTTP_C1_REDIS_HELLO_SELECT
            || cmd->kind == NGX_HTTP_C1_REDIS_HELLO_SCRIPT
            || ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
        {
            /* a connection that cannot run the scripts is given up */

            cause = (cmd->kind == NGX_HTTP_C1_REDIS_HELLO_AUTH)
                    ? NGX_HTTP_C1_REDIS_AUTH
                    : (cmd->kind == NGX_HTTP_C1_REDIS_HELLO_SELECT)
                      ? NGX_HTTP_C1_REDIS_SELECT
                      : (ngx_strstr(reply->str, "OOM") != NULL)
                        ? NGX_HTTP_C1_REDIS_OOM : NGX_HTTP_C1_REDIS_ERROR;

            ngx_http_c1_redis_done(cmd, NGX_ERROR);
            ngx_http_c1_redis_close(conn, cause, reply->str);
            return;
        }

        if (ngx_strstr(reply->str, "OOM") != NULL) {
            cause = NGX_HTTP_C1_REDIS_OOM;

        } else if (ngx_strstr(reply->str, "WRONGTYPE") != NULL) {
            cause = NGX_HTTP_C1_REDIS_WRONGTYPE;

        } else if (ngx_strstr(reply->str, "NOAUTH") != NULL
                   || ngx_strstr(reply->str, "WRONGPASS") != NULL)
        {
            cause = NGX_HTTP_C1_REDIS_AUTH;

        } else {
            cause = NGX_HTTP_C1_REDIS_ERROR;
        }

        ngx_http_c1_redis_log(conn->redis, conn->server, cause, reply->str);
        ngx_http_c1_redis_done(cmd, NGX_ERROR);
        return;
    }

    if (cmd->kind != NGX_HTTP_C1_REDIS_OP) {
        ngx_http_c1_redis_done(cmd, NGX_OK);
        return;
    }

    conn->server->cause = NGX_HTTP_C1_REDIS_OK;
    conn->server->backoff = 0;
    conn->server->retry_at = 0;

    if (cmd->op == NULL) {

        /* nobody waits: a lock it took is nobody's */

        if (cmd->lock) {
            ngx_http_c1_redis_unlock(conn->redis, cmd, 0);
        }

        ngx_http_c1_redis_done(cmd, NGX_OK);
        return;
    }

    rc = ngx_http_c1_redis_result(cmd->op, reply, cmd->list, cmd->part);

    if (rc == NGX_DECLINED) {
        ngx_http_c1_redis_log(conn->redis, conn->server,
                              NGX_HTTP_C1_REDIS_REPLY, NULL);
        rc = NGX_ERROR;
    }

    ngx_http_c1_redis_done(cmd, rc);
}


/* the command is over: its operation learns how, if it still waits */

static void
ngx_http_c1_redis_done(ngx_http_c1_redis_cmd_t *cmd, ngx_int_t rc)
{
    ngx_http_c1_store_op_t    *op;
    ngx_http_c1_redis_list_t  *list;

    if (cmd->timer.timer_set) {
        ngx_del_timer(&cmd->timer);
    }

    if (cmd->cln) {
        cmd->cln->handler = NULL;
    }

    op = cmd->op;
    list = cmd->list;

    if (cmd->debit && rc != NGX_OK) {
        ngx_http_c1_store_failed(&cmd->conn->redis->store->name,
                                 NGX_HTTP_C1_STORE_DEBIT);
    }

    if (cmd->lock) {

        /*
         * a BEGIN or COMMIT that failed here may yet run in Redis, or
         * never will: its lock goes, by its token
         */

        if (rc != NGX_OK) {
            ngx_http_c1_redis_unlock(cmd->conn->redis, cmd, 200);
        }

        ngx_free(cmd->lock);
    }

    ngx_free(cmd);

    if (op == NULL || op->handler == NULL) {
        return;
    }

    if (list) {
        if (rc != NGX_OK) {
            list->failed = 1;
        }

        if (--list->wait) {
            return;
        }

        ngx_http_c1_redis_list_done(op, list);
        return;
    }

    if (rc != NGX_OK) {
        op->rc = NGX_ERROR;
    }

    ngx_http_c1_redis_complete(op);
}


/*
 * The reply read into the operation: NGX_OK (op->rc set), NGX_ERROR (no
 * memory) or NGX_DECLINED (a reply of the wrong shape).
 */

static ngx_int_t
ngx_http_c1_redis_result(ngx_http_c1_store_op_t *op, redisReply *reply,
    ngx_http_c1_redis_list_t *list, ngx_uint_t part)
{
    ngx_uint_t             i, n;
    redisReply           **e, *a;
    ngx_http_c1_meta_t    *metas;
    double                *scores;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0
        || reply->element[0]->type != REDIS_REPLY_INTEGER)
    {
        return NGX_DECLINED;
    }

    e = reply->element;

    switch (e[0]->integer) {

    case 0:
        op->rc = NGX_HTTP_C1_STORE_NONE;
        return NGX_OK;

    case 2:
        op->rc = NGX_HTTP_C1_STORE_BUSY;
        return NGX_OK;

    case 3:
        op->rc = NGX_HTTP_C1_STORE_NO_MSG;
        return NGX_OK;

    case 4:
        op->rc = NGX_HTTP_C1_STORE_ROLE;
        return NGX_OK;

    case 1:
        break;

    default:
        op->rc = NGX_ERROR;            /* create: the id is taken */
        return NGX_OK;
    }

    op->rc = NGX_OK;

    switch (op->type) {

    case NGX_HTTP_C1_STORE_BEGIN:
        if (reply->elements != 5) {
            return NGX_DECLINED;
        }

        if (ngx_http_c1_redis_meta(op, &e[1], &op->meta) != NGX_OK
            || ngx_http_c1_redis_hold(op) != NGX_OK)
        {
            return NGX_ERROR;
        }

        return op->load ? ngx_http_c1_redis_msgs(op, e[4]) : NGX_OK;

    case NGX_HTTP_C1_STORE_COMMIT:
    case NGX_HTTP_C1_STORE_CREATE:
    case NGX_HTTP_C1_STORE_RENAME:
        if (reply->elements != 4) {
            return NGX_DECLINED;
        }

        return ngx_http_c1_redis_meta(op, &e[1], &op->meta);

    case NGX_HTTP_C1_STORE_GET:
    case NGX_HTTP_C1_STORE_REPLACE:
        if (reply->elements != 5) {
            return NGX_DECLINED;
        }

        if (ngx_http_c1_redis_meta(op, &e[1], &op->meta) != NGX_OK) {
            return NGX_ERROR;
        }

        return ngx_http_c1_redis_msgs(op, e[4]);

    case NGX_HTTP_C1_STORE_LIST:
        if (reply->elements != 2 || e[1]->type != REDIS_REPLY_ARRAY
            || e[1]->elements % 5)
        {
            return NGX_DECLINED;
        }

        a = e[1];
        n = a->elements / 5;

        metas = ngx_pcalloc(op->pool, (n ? n : 1)
                                      * sizeof(ngx_http_c1_meta_t));
        scores = ngx_pcalloc(op->pool, (n ? n : 1) * sizeof(double));

        if (metas == NULL || scores == NULL) {
            return NGX_ERROR;
        }

        for (i = 0; i < n; i++) {
            if (a->element[i * 5]->type != REDIS_REPLY_STRING
                || a->element[i * 5 + 4]->type != REDIS_REPLY_STRING)
            {
                return NGX_DECLINED;
            }

            metas[i].id.len = a->element[i * 5]->len;
            metas[i].id.data = ngx_pstrdup(op->pool,
                                           &(ngx_str_t) {
                                               a->element[i * 5]->len,
                                               (u_char *)
                                               a->element[i * 5]->str });
            if (metas[i].id.data == NULL) {
                return NGX_ERROR;
            }

            if (ngx_http_c1_redis_meta(op, &a->element[i * 5 + 1], &metas[i])
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            metas[i].id.len = a->element[i * 5]->len;

            scores[i] = strtod(a->element[i * 5 + 4]->str, NULL);
        }

        if (list == NULL) {

            /* one server: its page is the page */

            op->metas = metas;
            op->nmetas = ngx_min(n, op->limit);
            op->next = (n > op->limit) ? (uint64_t) scores[op->limit - 1]
                                       : 0;
            return NGX_OK;
        }

        list->metas[part] = metas;
        list->scores[part] = scores;
        list->n[part] = n;

        return NGX_OK;

    case NGX_HTTP_C1_STORE_LIMIT:
        if (reply->elements != 2 || e[1]->type != REDIS_REPLY_INTEGER) {
            return NGX_DECLINED;
        }

        op->level = (int64_t) e[1]->integer;
        return NGX_OK;

    default: /* DELETE */
        return NGX_OK;
    }
}


/* every server's page is in: the best "limit" of them, by score */

static void
ngx_http_c1_redis_list_done(ngx_http_c1_store_op_t *op,
    ngx_http_c1_redis_list_t *list)
{
    ngx_uint_t            i, best, total, n, *at;
    ngx_http_c1_redis_t  *redis;

    redis = op->store->data;

    if (list->failed) {
        op->rc = NGX_ERROR;
        ngx_http_c1_redis_complete(op);
        return;
    }

    op->rc = NGX_OK;

    op->metas = ngx_pcalloc(op->pool, (op->limit ? op->limit : 1)
                                      * sizeof(ngx_http_c1_meta_t));
    at = ngx_pcalloc(op->pool, redis->servers.nelts * sizeof(ngx_uint_t));

    if (op->metas == NULL || at == NULL) {
        op->rc = NGX_ERROR;
        ngx_http_c1_redis_complete(op);
        return;
    }

    total = 0;

    for (i = 0; i < redis->servers.nelts; i++) {
        total += list->n[i];
    }

    n = 0;
    op->next = 0;

    while (n < op->limit) {
        best = redis->servers.nelts;

        for (i = 0; i < redis->servers.nelts; i++) {
            if (at[i] < list->n[i]
                && (best == redis->servers.nelts
                    || list->scores[i][at[i]] > list->scores[best][at[best]]))
            {
                best = i;
            }
        }

        if (best == redis->servers.nelts) {
            break;
        }

        op->metas[n++] = list->metas[best][at[best]];
        op->next = (uint64_t) list->scores[best][at[best]];
        at[best]++;
    }

    op->nmetas = n;

    if (total <= n) {
        op->next = 0;                   /* nothing after this page */
    }

    ngx_http_c1_redis_complete(op);
}


/* title, created, updated from three replies */

static ngx_int_t
ngx_http_c1_redis_meta(ngx_http_c1_store_op_t *op, redisReply **e,
    ngx_http_c1_meta_t *meta)
{
    ngx_uint_t  i;
    uint64_t    v[2];

    if (e[0]->type == REDIS_REPLY_STRING) {
        meta->title.len = e[0]->len;
        meta->title.data = ngx_pnalloc(op->pool, e[0]->len + 1);

        if (meta->title.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(meta->title.data, e[0]->str, e[0]->len);

    } else {
        ngx_str_null(&meta->title);
    }

    for (i = 0; i < 2; i++) {
        v[i] = (e[i + 1]->type == REDIS_REPLY_STRING)
               ? (uint64_t) strtoull(e[i + 1]->str, NULL, 10) : 0;
    }

    meta->created = v[0];
    meta->updated = v[1] ? v[1] : v[0];

    if (op->type != NGX_HTTP_C1_STORE_LIST) {
        meta->id = op->thread;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_c1_redis_msgs(ngx_http_c1_store_op_t *op, redisReply *list)
{
    ngx_uint_t  i;

    if (list->type != REDIS_REPLY_ARRAY) {
        return NGX_DECLINED;
    }

    op->nout = 0;
    op->out = ngx_palloc(op->pool, (list->elements ? list->elements : 1)
                                   * sizeof(ngx_http_c1_msg_t));
    if (op->out == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < list->elements; i++) {
        if (ngx_http_c1_redis_unpack(op->pool, list->element[i],
                                     &op->out[op->nout])
            == NGX_OK)
        {
            op->nout++;
        }
    }

    return NGX_OK;
}


/* a stored message: role time "\n" id "\n" content */

static ngx_int_t
ngx_http_c1_redis_unpack(ngx_pool_t *pool, redisReply *r,
    ngx_http_c1_msg_t *m)
{
    u_char  *p, *last, *nl, *data;

    if (r->type != REDIS_REPLY_STRING || r->len < 4) {
        return NGX_DECLINED;
    }

    data = ngx_pnalloc(pool, r->len);
    if (data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(data, r->str, r->len);

    p = data;
    last = data + r->len;

    m->role = (*p == 'u') ? C1_ROLE_USER
              : (*p == 'c') ? C1_ROLE_TOOL_CALLS
              : (*p == 't') ? C1_ROLE_TOOL : C1_ROLE_ASSISTANT;

    nl = ngx_strlchr(p, last, '\n');
    if (nl == NULL) {
        return NGX_DECLINED;
    }

    m->time = 0;

    for (p++; p < nl; p++) {
        m->time = m->time * 10 + (*p - '0');
    }

    p = nl + 1;

    nl = ngx_strlchr(p, last, '\n');
    if (nl == NULL) {
        return NGX_DECLINED;
    }

    m->id.data = p;
    m->id.len = nl - p;
    m->content.data = nl + 1;
    m->content.len = last - (nl + 1);

    return NGX_OK;
}


/* a cause is logged once, until a reply succeeds again */

static void
ngx_http_c1_redis_log(ngx_http_c1_redis_t *redis,
    ngx_http_c1_redis_server_t *server, ngx_http_c1_redis_cause_e cause,
    const char *detail)
{
    if (server->cause == (uint32_t) cause) {
        return;
    }

    server->cause = cause;

    if (detail && cause != NGX_HTTP_C1_REDIS_AUTH) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "c1: redis \"%V\" %V: %s: %s", &redis->store->name,
                      &server->name, ngx_http_c1_redis_causes[cause],
                      detail);
        return;
    }

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "c1: redis \"%V\" %V: %s", &redis->store->name,
                  &server->name, ngx_http_c1_redis_causes[cause]);
}


/*
 * A turn's lock lives NGX_HTTP_C1_REDIS_LOCK ms, renewed while the turn
 * runs (a worker that dies leaves a lock that soon expires).
 */

static ngx_int_t
ngx_http_c1_redis_hold(ngx_http_c1_store_op_t *op)
{
    ngx_pool_cleanup_t         *cln;
    ngx_http_c1_redis_renew_t  *rn;

    if (op->store->run != ngx_http_c1_redis_run || op->pool == NULL) {
        return NGX_OK;
    }

    rn = ngx_pcalloc(op->pool, sizeof(ngx_http_c1_redis_renew_t));
    cln = ngx_pool_cleanup_add(op->pool, 0);

    if (rn == NULL || cln == NULL) {
        return NGX_ERROR;
    }

    rn->redis = op->store->data;
    rn->server = ngx_http_c1_redis_pick(rn->redis, &op->owner, &op->thread);
    rn->lock.data = ngx_http_c1_redis_key(op->pool, &rn->redis->prefix,
                                          &op->owner, &op->thread, ":k",
                                          &rn->lock.len);
    rn->token.data = ngx_pnalloc(op->pool, NGX_INT64_LEN);

    if (rn->lock.data == NULL || rn->token.data == NULL) {
        return NGX_ERROR;
    }

    rn->token.len = ngx_sprintf(rn->token.data, "%uL", op->token)
                    - rn->token.data;

    rn->timer.handler = ngx_http_c1_redis_renew;
    rn->timer.data = rn;
    rn->timer.log = ngx_cycle->log;

    ngx_add_timer(&rn->timer, NGX_HTTP_C1_REDIS_RENEW_MS);

    cln->handler = ngx_http_c1_redis_renew_stop;
    cln->data = rn;

    return NGX_OK;
}


static void
ngx_http_c1_redis_renew(ngx_event_t *ev)
{
    ngx_http_c1_redis_renew_t *rn = ev->data;

    size_t       len[6];
    u_char       ttl[NGX_INT_T_LEN];
    const char  *argv[6];

    ngx_http_c1_redis_script(argv, len, NGX_HTTP_C1_SCRIPT_RENEW);
    argv[2] = "1";
    argv[3] = (const char *) rn->lock.data;
    argv[4] = (const char *) rn->token.data;
    argv[5] = (const char *) ttl;

    len[2] = 1;
    len[3] = rn->lock.len;
    len[4] = rn->token.len;
    len[5] = ngx_sprintf(ttl, "%d", NGX_HTTP_C1_REDIS_LOCK) - ttl;

    (void) ngx_http_c1_redis_send(rn->redis, rn->server,
                                  NGX_HTTP_C1_REDIS_QUIET, NULL, 6, argv,
                                  len, NULL, 0);

    ngx_add_timer(&rn->timer, NGX_HTTP_C1_REDIS_RENEW_MS);
}


static void
ngx_http_c1_redis_renew_stop(void *data)
{
    ngx_http_c1_redis_renew_t *rn = data;

    if (rn->timer.timer_set) {
        ngx_del_timer(&rn->timer);
    }
}


/* the lock of a BEGIN nobody holds goes, if it is still that BEGIN's */

static void
ngx_http_c1_redis_unlock(ngx_http_c1_redis_t *redis,
    ngx_http_c1_redis_cmd_t *cmd, ngx_msec_t delay)
{
    ngx_http_c1_redis_unlock_t  *u;

    u = ngx_alloc(offsetof(ngx_http_c1_redis_unlock_t, lock) + cmd->lock_len,
                  ngx_cycle->log);
    if (u == NULL) {
        return;                             /* it expires */
    }

    ngx_memzero(u, offsetof(ngx_http_c1_redis_unlock_t, lock));

    u->redis = redis;
    u->server = cmd->server;
    u->token = cmd->token;
    u->lock_len = cmd->lock_len;
    ngx_memcpy(u->lock, cmd->lock, cmd->lock_len);

    u->timer.handler = ngx_http_c1_redis_unlock_handler;
    u->timer.data = u;
    u->timer.log = ngx_cycle->log;
    u->timer.cancelable = 1;

    if (delay == 0) {
        ngx_http_c1_redis_unlock_handler(&u->timer);
        return;
    }

    ngx_add_timer(&u->timer, delay);
}


static void
ngx_http_c1_redis_unlock_handler(ngx_event_t *ev)
{
    ngx_http_c1_redis_unlock_t *u = ev->data;

    ngx_http_c1_redis_server_t  *s;

    s = &((ngx_http_c1_redis_server_t *) u->redis->servers.elts)[u->server];

    if (u->waiting) {
        ngx_queue_remove(&u->queue);
        u->waiting = 0;
    }

    if (ngx_http_c1_redis_unlock_send(u, NULL) != NGX_OK
        && ++u->tries < NGX_HTTP_C1_REDIS_UNLOCKS)
    {
        /* tried again later, or at once on the next new connection */

        ngx_queue_insert_tail(&s->unlocks, &u->queue);
        u->waiting = 1;

        ngx_add_timer(&u->timer, NGX_HTTP_C1_REDIS_UNLOCK_MS);
        return;
    }

    ngx_free(u);
}


/*
 * The END of a lock: on the connection given (a new one, ahead of what
 * waits for it) or on any of the server's.
 */

static ngx_int_t
ngx_http_c1_redis_unlock_send(ngx_http_c1_redis_unlock_t *u,
    ngx_http_c1_redis_conn_t *conn)
{
    size_t       len[5];
    u_char       token[NGX_INT64_LEN];
    const char  *argv[5];

    ngx_http_c1_redis_script(argv, len, NGX_HTTP_C1_SCRIPT_END);
    argv[2] = "1";
    argv[3] = (const char *) u->lock;
    argv[4] = (const char *) token;

    len[2] = 1;
    len[3] = u->lock_len;
    len[4] = ngx_sprintf(token, "%uL", u->token) - token;

    if (conn == NULL) {
        return ngx_http_c1_redis_send(u->redis, u->server,
                                      NGX_HTTP_C1_REDIS_QUIET, NULL, 5, argv,
                                      len, NULL, 0);
    }

    return ngx_http_c1_redis_queue_kind(conn, NGX_HTTP_C1_REDIS_QUIET, 5,
                                        argv, len);
}


/* a new connection: the locks that wait for one go first */

static void
ngx_http_c1_redis_unlock_waiting(ngx_http_c1_redis_conn_t *conn)
{
    ngx_queue_t                 *q;
    ngx_http_c1_redis_unlock_t  *u;
    ngx_http_c1_redis_server_t  *s;

    s = conn->server;

    while (!ngx_queue_empty(&s->unlocks)) {
        q = ngx_queue_head(&s->unlocks);
        u = ngx_queue_data(q, ngx_http_c1_redis_unlock_t, queue);

        if (ngx_http_c1_redis_unlock_send(u, conn) != NGX_OK) {
            return;                         /* its timer tries again */
        }

        ngx_queue_remove(q);

        if (u->timer.timer_set) {
            ngx_del_timer(&u->timer);
        }

        ngx_free(u);
    }
}


/* the bytes a reply holds */

static size_t
ngx_http_c1_redis_size(redisReply *reply)
{
    size_t  size, i;

    size = sizeof(redisReply);

    if (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS
        || reply->type == REDIS_REPLY_ERROR)
    {
        size += reply->len;

    } else if (reply->type == REDIS_REPLY_ARRAY) {
        for (i = 0; i < reply->elements; i++) {
            size += ngx_http_c1_redis_size(reply->element[i]);
        }
    }

    return size;
}


/* the process exits: every connection of the store closed, freed */

static void
ngx_http_c1_redis_exit(ngx_http_c1_store_t *store)
{
    ngx_uint_t                   i, j;
    ngx_queue_t                 *q;
    ngx_http_c1_redis_t         *redis;
    ngx_http_c1_redis_cmd_t     *cmd;
    ngx_http_c1_redis_conn_t    *conn;
    ngx_http_c1_redis_unlock_t  *u;
    ngx_http_c1_redis_server_t  *s;

    redis = store->data;
    s = redis->servers.elts;

    for (i = 0; i < redis->servers.nelts; i++) {
        for (j = 0; j < redis->connections; j++) {
            conn = &s[i].conns[j];

            /* nobody is told: the process is going */

            for (q = ngx_queue_head(&conn->sent);
                 q != ngx_queue_sentinel(&conn->sent);
                 q = ngx_queue_next(q))
            {
                cmd = ngx_queue_data(q, ngx_http_c1_redis_cmd_t, queue);

                if (cmd->cln) {
                    cmd->cln->handler = NULL;
                    cmd->cln = NULL;
                }

                if (cmd->lock) {
                    ngx_free(cmd->lock);
                    cmd->lock = NULL;
                }

                cmd->op = NULL;
                cmd->list = NULL;
            }

            if (conn->open) {
                ngx_http_c1_redis_close(conn, NGX_HTTP_C1_REDIS_OK, NULL);
            }

            if (conn->out) {
                ngx_free(conn->out);
                conn->out = NULL;
                conn->out_size = 0;
            }
        }

        while (!ngx_queue_empty(&s[i].unlocks)) {
            q = ngx_queue_head(&s[i].unlocks);
            ngx_queue_remove(q);

            u = ngx_queue_data(q, ngx_http_c1_redis_unlock_t, queue);

            if (u->timer.timer_set) {
                ngx_del_timer(&u->timer);
            }

            ngx_free(u);
        }
    }
}


/* the operation is over: its handler, unless it is being run now */

static void
ngx_http_c1_redis_complete(ngx_http_c1_store_op_t *op)
{
    if (op == ngx_http_c1_redis_running) {
        ngx_http_c1_redis_ended = 1;
        return;
    }

    op->handler(op);
}


/* each script's SHA1, in hex, as Redis names it */

static void
ngx_http_c1_redis_shas(void)
{
    ngx_uint_t            i;
    ngx_sha1_t            sha1;
    u_char                hash[20];
    ngx_http_c1_script_t  *sc;

    for (i = 0; i < NGX_HTTP_C1_SCRIPTS; i++) {
        sc = &ngx_http_c1_redis_scripts[i];

        ngx_sha1_init(&sha1);
        ngx_sha1_update(&sha1, sc->text, ngx_strlen(sc->text));
        ngx_sha1_final(hash, &sha1);

        ngx_hex_dump(sc->sha, hash, 20);
    }
}


/* EVALSHA SHA: the two first arguments of a script's command */

static void
ngx_http_c1_redis_script(const char **argv, size_t *len,
    ngx_http_c1_script_e script)
{
    argv[0] = "EVALSHA";
    len[0] = 7;
    argv[1] = (const char *) ngx_http_c1_redis_scripts[script].sha;
    len[1] = 40;
}
