
/*
 * ngx_http_c1_module: the directives and their configuration.  The
 * content handler is in ngx_http_c1_handler.c.
 */


#include "ngx_http_c1_module.h"


static ngx_int_t ngx_http_c1_init(ngx_conf_t *cf);
static void ngx_http_c1_exit_process(ngx_cycle_t *cycle);
static void *ngx_http_c1_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_c1_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_c1_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_c1_pass(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_c1_set_value(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_c1_set_double(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_c1_set_max_tokens(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_c1_stop(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_c1_retry(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_c1_fallback_model(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


#define NGX_HTTP_C1_MAX_TOKENS  10000000


typedef struct {
    double  min;
    double  max;
} ngx_http_c1_bounds_t;


static ngx_http_c1_bounds_t  ngx_http_c1_temperature_bounds = { 0, 2 };
static ngx_http_c1_bounds_t  ngx_http_c1_top_p_bounds = { 0, 1 };

static ngx_conf_num_bounds_t  ngx_http_c1_limit_status_bounds = {
    ngx_conf_check_num_bounds, 400, 599
};

static ngx_conf_num_bounds_t  ngx_http_c1_tool_rounds_bounds = {
    ngx_conf_check_num_bounds, 1, 16
};


/* what c1_retry's on= takes, and its default */

static ngx_conf_bitmask_t  ngx_http_c1_retry_reasons[] = {
    { ngx_string("error"), NGX_HTTP_C1_RETRY_ERROR },
    { ngx_string("timeout"), NGX_HTTP_C1_RETRY_TIMEOUT },
    { ngx_string("429"), NGX_HTTP_C1_RETRY_429 },
    { ngx_string("500"), NGX_HTTP_C1_RETRY_500 },
    { ngx_string("502"), NGX_HTTP_C1_RETRY_502 },
    { ngx_string("503"), NGX_HTTP_C1_RETRY_503 },
    { ngx_string("504"), NGX_HTTP_C1_RETRY_504 },
    { ngx_string("bad_answer"), NGX_HTTP_C1_RETRY_BAD_ANSWER },
    { ngx_null_string, 0 }
};

#define NGX_HTTP_C1_RETRY_DEFAULT                                            \
    (NGX_HTTP_C1_RETRY_ERROR|NGX_HTTP_C1_RETRY_TIMEOUT|NGX_HTTP_C1_RETRY_429 \
     |NGX_HTTP_C1_RETRY_502|NGX_HTTP_C1_RETRY_503|NGX_HTTP_C1_RETRY_504)



static ngx_command_t  ngx_http_c1_commands[] = {

    { ngx_string("c1_pass"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_c1_pass,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("c1_api_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_c1_set_value,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_c1_loc_conf_t, api_key),
      NULL },

    { ngx_string("c1_model"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_c1_set_value,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_c1_loc_conf_t, model),
      NULL },

    { ngx_string("c1_system_prompt"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_c1_set_value,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_c1_loc_conf_t, system_prompt),
      NULL },

    { ngx_string("c1_temperature"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_c1_set_double,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_c1_loc_conf_t, temperature),
      &ngx_http_c1_temperature_bounds },

    { ngx_string("c1_top_p"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_c1_set_double,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_c1_loc_conf_t, top_p),
      &ngx_http_c1_top_p_bounds },

    { ngx_string("c1_max_tokens"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_c1_set_max_tokens,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_c1_loc_conf_t, max_tokens),
      NULL },

    { ngx_string("c1_stop"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_c1_stop,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("c1_stream"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_c1_loc_conf_t, stream),
      NULL },

    { ngx_string("c1_history_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_c1_history_zone,
      0,
      0,
      NULL },

    { ngx_string("c1_history_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_2MORE,
      ngx_http_c1_history_redis,
      0,
      0,
      NULL },

    { ngx_string("c1_history"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_c1_history,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("c1_history_owner"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_c1_loc_conf_t, owner),
      NULL },

    { ngx_string("c1_threads"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_c1_threads,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("c1_stream_usage"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_c1_loc_conf_t, stream_usage),
      NULL },

    { ngx_string("c1_stream_max_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_c1_loc_conf_t, stream_max_size),
      NULL },

    { ngx_string("c1_stream_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_c1_loc_conf_t, stream_timeout),
      NULL },

    { ngx_string("c1_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_c1_metrics,
      0,
      0,
      NULL },

    { ngx_string("c1_retry"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_c1_retry,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("c1_fallback_model"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_c1_fallback_model,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("c1_max_response_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_c1_loc_conf_t, max_response_size),
      NULL },

    { ngx_string("c1_limit_tokens_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_c1_limit_zone,
      0,
      0,
      NULL },

    { ngx_string("c1_limit_tokens"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_2MORE,
      ngx_http_c1_limit_tokens,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("c1_tool"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_2MORE,
      ngx_http_c1_tool,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("c1_tool_rounds"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_c1_loc_conf_t, tool_rounds),
      &ngx_http_c1_tool_rounds_bounds },

    { ngx_string("c1_tool_max_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_c1_loc_conf_t, tool_max_size),
      NULL },

    { ngx_string("c1_limit_tokens_status"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_c1_loc_conf_t, limit_status),
      &ngx_http_c1_limit_status_bounds },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_c1_module_ctx = {
    ngx_http_c1_add_variables,             /* preconfiguration */
    ngx_http_c1_init,                      /* postconfiguration */

    ngx_http_c1_create_main_conf,          /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_c1_create_loc_conf,           /* create location configuration */
    ngx_http_c1_merge_loc_conf             /* merge location configuration */
};


ngx_module_t  ngx_http_c1_module = {
    NGX_MODULE_V1,
    &ngx_http_c1_module_ctx,               /* module context */
    ngx_http_c1_commands,                  /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_c1_exit_process,              /* exit process */
    ngx_http_c1_exit_process,              /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_c1_init(ngx_conf_t *cf)
{
    if (ngx_http_c1_limit_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_c1_metrics_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    /*
     * the response's filters first: the call's run before them, and the
     * response writes below both
     */

    if (ngx_http_c1_response_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_c1_call_init(cf);
}


static void *
ngx_http_c1_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_c1_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_c1_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&mcf->zones, cf->pool, 2, sizeof(ngx_http_c1_zone_t *))
        != NGX_OK
        || ngx_array_init(&mcf->stores, cf->pool, 2,
                          sizeof(ngx_http_c1_store_t *))
           != NGX_OK
        || ngx_array_init(&mcf->limit_zones, cf->pool, 2,
                          sizeof(ngx_http_c1_limit_zone_t *))
           != NGX_OK
        || ngx_array_init(&mcf->tool_names, cf->pool, 4, sizeof(ngx_str_t))
           != NGX_OK)
    {
        return NULL;
    }

    return mcf;
}


static void *
ngx_http_c1_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_c1_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_c1_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->pass = { 0, NULL };
     *     conf->pass_args = { 0, NULL };
     */

    conf->api_key = NGX_CONF_UNSET_PTR;
    conf->model = NGX_CONF_UNSET_PTR;
    conf->system_prompt = NGX_CONF_UNSET_PTR;
    conf->temperature = NGX_CONF_UNSET;
    conf->top_p = NGX_CONF_UNSET;
    conf->max_tokens = NGX_CONF_UNSET;
    conf->stop = NGX_CONF_UNSET_PTR;
    conf->max_response_size = NGX_CONF_UNSET_SIZE;
    conf->stream = NGX_CONF_UNSET;
    conf->owner = NGX_CONF_UNSET_PTR;
    conf->stream_usage = NGX_CONF_UNSET;
    conf->stream_max_size = NGX_CONF_UNSET_SIZE;
    conf->stream_timeout = NGX_CONF_UNSET_MSEC;
    conf->retry.tries = NGX_CONF_UNSET_UINT;
    conf->fallback = NGX_CONF_UNSET_PTR;
    conf->limit_status = NGX_CONF_UNSET_UINT;
    conf->tool_rounds = NGX_CONF_UNSET_UINT;
    conf->tool_max_size = NGX_CONF_UNSET_SIZE;

    return conf;
}


static char *
ngx_http_c1_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_c1_loc_conf_t  *prev = parent;
    ngx_http_c1_loc_conf_t  *conf = child;

    ngx_http_c1_main_conf_t  *mcf;

    ngx_conf_merge_ptr_value(conf->api_key, prev->api_key, NULL);
    ngx_conf_merge_ptr_value(conf->model, prev->model, NULL);
    ngx_conf_merge_ptr_value(conf->system_prompt, prev->system_prompt, NULL);

    if (conf->temperature == NGX_CONF_UNSET) {
        conf->temperature = prev->temperature;
    }

    if (conf->top_p == NGX_CONF_UNSET) {
        conf->top_p = prev->top_p;
    }

    ngx_conf_merge_value(conf->max_tokens, prev->max_tokens, NGX_CONF_UNSET);
    ngx_conf_merge_ptr_value(conf->stop, prev->stop, NULL);
    ngx_conf_merge_size_value(conf->max_response_size,
                              prev->max_response_size, 8 * 1024 * 1024);
    ngx_conf_merge_value(conf->stream, prev->stream, 0);
    ngx_conf_merge_str_value(conf->history_name, prev->history_name, "off");
    ngx_conf_merge_ptr_value(conf->owner, prev->owner, NULL);
    ngx_conf_merge_value(conf->stream_usage, prev->stream_usage, 0);
    ngx_conf_merge_size_value(conf->stream_max_size, prev->stream_max_size,
                              64 * 1024 * 1024);
    ngx_conf_merge_msec_value(conf->stream_timeout, prev->stream_timeout, 0);

    if (conf->retry.tries == NGX_CONF_UNSET_UINT) {
        if (prev->retry.tries == NGX_CONF_UNSET_UINT) {
            conf->retry.tries = 0;

        } else {
            conf->retry = prev->retry;
        }
    }

    ngx_conf_merge_ptr_value(conf->fallback, prev->fallback, NULL);

    /* as limit_req: a level with limits of its own has only those */

    if (conf->limits == NULL) {
        conf->limits = prev->limits;
    }

    ngx_conf_merge_uint_value(conf->limit_status, prev->limit_status,
                              NGX_HTTP_TOO_MANY_REQUESTS);

    /* tools, a set: a level with any has only its own */

    if (conf->tools == NULL) {
        conf->tools = prev->tools;
        conf->tools_json = prev->tools_json;
    }

    ngx_conf_merge_uint_value(conf->tool_rounds, prev->tool_rounds, 4);
    ngx_conf_merge_size_value(conf->tool_max_size, prev->tool_max_size,
                              256 * 1024);

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_c1_module);

    conf->history = NULL;

    if (ngx_strcmp(conf->history_name.data, "off") != 0) {
        conf->history = ngx_http_c1_store_find(mcf, &conf->history_name);

        if (conf->history == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "unknown c1 history store \"%V\" in "
                          "\"c1_history\" (no c1_history_zone of that "
                          "name)", &conf->history_name);
            return NGX_CONF_ERROR;
        }
    }

    if (conf->threads_name.data && conf->threads == NULL) {
        conf->threads = ngx_http_c1_store_find(mcf, &conf->threads_name);

        if (conf->threads == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "unknown c1 history store \"%V\" in "
                          "\"c1_threads\" in %V:%ui", &conf->threads_name,
                          &conf->threads_file, conf->threads_line);
            return NGX_CONF_ERROR;
        }

        if (conf->pass.len) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"c1_threads\" in %V:%ui cannot share a "
                          "location with \"c1_pass\"",
                          &conf->threads_file, conf->threads_line);
            return NGX_CONF_ERROR;
        }

        if (conf->owner == NULL) {
            ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                          "\"c1_threads %V\" in %V:%ui has no "
                          "\"c1_history_owner\": every client shares one "
                          "anonymous owner's threads", &conf->threads_name,
                          &conf->threads_file, conf->threads_line);
        }
    }

    if (conf->pass.len && conf->model == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"c1_pass\" in %V:%ui has no \"c1_model\" in effect",
                      &conf->pass_file, conf->pass_line);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_c1_pass(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_c1_loc_conf_t *lcf = conf;

    u_char                    *q;
    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    if (lcf->pass.len) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"c1_pass\" takes the URI of a location, "
                           "starting with \"/\", not \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    lcf->pass = value[1];

    q = ngx_strlchr(value[1].data, value[1].data + value[1].len, '?');

    if (q) {
        lcf->pass.len = q - value[1].data;
        lcf->pass_args.data = q + 1;
        lcf->pass_args.len = value[1].data + value[1].len - q - 1;
    }

    lcf->pass_file = cf->conf_file->file.name;
    lcf->pass_line = cf->conf_file->line;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_c1_handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_c1_set_value(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char       *rv;
    ngx_str_t  *value;

    value = cf->args->elts;

    if (value[1].len == 0 && ngx_strcmp(cmd->name.data, "c1_model") == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"c1_model\" must not be empty");
        return NGX_CONF_ERROR;
    }

    rv = ngx_http_set_complex_value_slot(cf, cmd, conf);

    return rv;
}


static char *
ngx_http_c1_set_double(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    u_char                *s;
    double                *d, v;
    char                  *end;
    ngx_str_t             *value;
    ngx_http_c1_bounds_t  *b;

    d = (double *) (p + cmd->offset);

    if (*d != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;
    b = cmd->post;

    s = ngx_pnalloc(cf->pool, value[1].len + 1);
    if (s == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_cpystrn(s, value[1].data, value[1].len + 1);

    v = strtod((char *) s, &end);

    if (value[1].len == 0 || *end != '\0' || !(v >= b->min && v <= b->max)
        || ngx_strlchr(s, s + value[1].len, 'x') != NULL
        || ngx_strlchr(s, s + value[1].len, 'X') != NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" takes a number from %.1f to %.1f, "
                           "not \"%V\"", &cmd->name, b->min, b->max,
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    *d = v;

    return NGX_CONF_OK;
}


static char *
ngx_http_c1_set_max_tokens(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_c1_loc_conf_t *lcf = conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    if (lcf->max_tokens != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    n = ngx_atoi(value[1].data, value[1].len);

    if (n < 1 || n > NGX_HTTP_C1_MAX_TOKENS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"c1_max_tokens\" takes a whole number from 1 "
                           "to %d, not \"%V\"", NGX_HTTP_C1_MAX_TOKENS,
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    lcf->max_tokens = n;

    return NGX_CONF_OK;
}


static char *
ngx_http_c1_stop(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_c1_loc_conf_t *lcf = conf;

    ngx_str_t   *value, *s;
    ngx_uint_t   i;

    if (lcf->stop != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    if (cf->args->nelts - 1 > C1_MAX_STOP) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"c1_stop\" takes at most %d sequences",
                           C1_MAX_STOP);
        return NGX_CONF_ERROR;
    }

    lcf->stop = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                 sizeof(ngx_str_t));
    if (lcf->stop == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (value[i].len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"c1_stop\" takes non-empty sequences");
            return NGX_CONF_ERROR;
        }

        s = ngx_array_push(lcf->stop);
        *s = value[i];
    }

    return NGX_CONF_OK;
}


/*
 * c1_retry off | [tries=N] [on=LIST] [timeout=TIME] [backoff=TIME]
 */

static char *
ngx_http_c1_retry(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_c1_loc_conf_t *lcf = conf;

    u_char               *p, *last, *q;
    ngx_int_t             n;
    ngx_str_t            *value, s;
    ngx_uint_t            i, found;
    ngx_conf_bitmask_t   *b;
    ngx_http_c1_retry_t  *retry;

    retry = &lcf->retry;

    if (retry->tries != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        if (cf->args->nelts > 2) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"c1_retry off\" takes no parameters");
            return NGX_CONF_ERROR;
        }

        retry->tries = 0;
        return NGX_CONF_OK;
    }

    retry->tries = 3;
    retry->on = NGX_HTTP_C1_RETRY_DEFAULT;
    retry->timeout = 60000;
    retry->backoff = 200;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "tries=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);

            if (n < 2 || n > 10) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"tries\" of \"c1_retry\" takes a "
                                   "number from 2 to 10, not \"%V\"",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            retry->tries = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "on=", 3) == 0) {
            retry->on = 0;

            p = value[i].data + 3;
            last = value[i].data + value[i].len;

            while (p <= last) {
                q = ngx_strlchr(p, last, ',');
                if (q == NULL) {
                    q = last;
                }

                found = 0;

                for (b = ngx_http_c1_retry_reasons; b->name.len; b++) {
                    if ((size_t) (q - p) == b->name.len
                        && ngx_strncmp(p, b->name.data, b->name.len) == 0)
                    {
                        retry->on |= b->mask;
                        found = 1;
                        break;
                    }
                }

                if (!found) {
                    s.data = p;
                    s.len = q - p;

                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "\"on\" of \"c1_retry\" takes error, "
                                       "timeout, 429, 500, 502, 503, 504 "
                                       "and bad_answer, not \"%V\"", &s);
                    return NGX_CONF_ERROR;
                }

                p = q + 1;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0
            || ngx_strncmp(value[i].data, "backoff=", 8) == 0)
        {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            n = ngx_parse_time(&s, 0);

            if (n == NGX_ERROR || n == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"%*s\" of \"c1_retry\" takes a time, "
                                   "not \"%V\"", (size_t) 7, value[i].data,
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            if (value[i].data[0] == 't') {
                retry->timeout = (ngx_msec_t) n;

            } else {
                retry->backoff = (ngx_msec_t) n;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\" of \"c1_retry\"",
                           &value[i]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_c1_fallback_model(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_c1_loc_conf_t *lcf = conf;

    ngx_str_t                         *value;
    ngx_uint_t                         i;
    ngx_http_complex_value_t          *cv;
    ngx_http_compile_complex_value_t   ccv;

    if (lcf->fallback != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    if (cf->args->nelts - 1 > NGX_HTTP_C1_FALLBACKS_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"c1_fallback_model\" takes at most %d models",
                           NGX_HTTP_C1_FALLBACKS_MAX);
        return NGX_CONF_ERROR;
    }

    lcf->fallback = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                     sizeof(ngx_http_complex_value_t));
    if (lcf->fallback == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (value[i].len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"c1_fallback_model\" takes non-empty "
                               "models");
            return NGX_CONF_ERROR;
        }

        cv = ngx_array_push(lcf->fallback);
        if (cv == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

        ccv.cf = cf;
        ccv.value = &value[i];
        ccv.complex_value = cv;

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* a process exits: what its stores hold of their own goes (Redis's) */

static void
ngx_http_c1_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                i;
    ngx_http_c1_store_t     **stores;
    ngx_http_c1_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_c1_module);

    if (mcf == NULL) {
        return;
    }

    stores = mcf->stores.elts;

    for (i = 0; i < mcf->stores.nelts; i++) {
        if (stores[i]->exit) {
            stores[i]->exit(stores[i]);
        }
    }
}
