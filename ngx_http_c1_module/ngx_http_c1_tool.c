
/*
 * ngx_http_c1_module: tools as nginx locations (c1_tool, c1_tool_rounds,
 * c1_tool_max_size).
 *
 * In prompt mode C1's request carries the configured tools.  When C1's
 * answer ends in tool calls (a round), each call runs at once as a POST
 * subrequest to its tool's location, in the background, the arguments
 * as its body; when every one is over, C1 is called again with the
 * assistant's tool calls and one tool message per call, until C1 answers
 * with content or the rounds are spent (then the last call has no
 * tools).  A call that fails gets a short error text as its result, so
 * that C1 goes on.  A prompt stream shows a think item per round.  The
 * protocol's pieces are ngx_http_c1_tools.c's.
 */


#include "ngx_http_c1_module.h"
#include "ngx_http_c1_json.h"


#define NGX_HTTP_C1_TOOLS_LEVEL  32       /* c1_tool at one level */


static char *ngx_http_c1_tool_schema(ngx_conf_t *cf, ngx_str_t *name,
    ngx_str_t *file, cJSON **schema);
static char *ngx_http_c1_tool_json(ngx_conf_t *cf,
    ngx_http_c1_loc_conf_t *lcf, ngx_http_c1_tool_t *tool,
    ngx_str_t *description, cJSON *schema);
static ngx_uint_t ngx_http_c1_tool_metric(ngx_conf_t *cf, ngx_str_t *name);
static ngx_int_t ngx_http_c1_tool_think(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx, ngx_http_c1_loc_conf_t *lcf);
static ngx_http_c1_tool_t *ngx_http_c1_tool_find(
    ngx_http_c1_loc_conf_t *lcf, c1_buf_t *name);
static ngx_int_t ngx_http_c1_tool_call(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx, ngx_http_c1_tool_call_t *tcall);
static ngx_int_t ngx_http_c1_tool_header(ngx_http_c1_call_t *call);
static ngx_int_t ngx_http_c1_tool_data(ngx_http_c1_call_t *call,
    ngx_chain_t *in);
static ngx_int_t ngx_http_c1_tool_result(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx, ngx_http_c1_tool_call_t *tcall,
    ngx_str_t *result);
static ngx_int_t ngx_http_c1_tool_name(ngx_http_request_t *r,
    c1_buf_t *name, ngx_str_t *quoted);
static ngx_int_t ngx_http_c1_tool_keep(ngx_http_request_t *r,
    ngx_http_c1_ctx_t *ctx, ngx_uint_t role, char *json, size_t len,
    ngx_array_t *round);


static ngx_str_t  ngx_http_c1_tool_post = ngx_string("POST");

static char  *ngx_http_c1_tool_whys[NGX_HTTP_C1_TOOL_OUTCOMES] = {
    "", "its status", "it did not answer in time",
    "its answer is larger than c1_tool_max_size", "no such tool",
    "the arguments are not a JSON object", "it could not be reached",
    "its answer is not UTF-8 text"
};


/*
 * c1_tool name=NAME uri=URI schema=FILE [description=TEXT] [title=TEXT]
 * [timeout=TIME]
 */

char *
ngx_http_c1_tool(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_c1_loc_conf_t *lcf = conf;

    char                *rv;
    cJSON               *schema;
    u_char              *p;
    ngx_str_t           *value, name, uri, file, description, title, s;
    ngx_uint_t           i;
    ngx_msec_t           timeout;
    ngx_http_c1_tool_t  *tool, *tools;

    value = cf->args->elts;

    ngx_str_null(&name);
    ngx_str_null(&uri);
    ngx_str_null(&file);
    ngx_str_null(&description);
    ngx_str_null(&title);
    timeout = 30000;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "name=", 5) == 0) {
            name.data = value[i].data + 5;
            name.len = value[i].len - 5;

            if (name.len == 0 || name.len > C1_TOOL_NAME_MAX) {
                goto bad_name;
            }

            for (p = name.data; p < name.data + name.len; p++) {
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
                      || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
                {
                    goto bad_name;
                }
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "uri=", 4) == 0) {
            uri.data = value[i].data + 4;
            uri.len = value[i].len - 4;
            continue;
        }

        if (ngx_strncmp(value[i].data, "schema=", 7) == 0) {
            file.data = value[i].data + 7;
            file.len = value[i].len - 7;
            continue;
        }

        if (ngx_strncmp(value[i].data, "description=", 12) == 0) {
            description.data = value[i].data + 12;
            description.len = value[i].len - 12;
            continue;
        }

        if (ngx_strncmp(value[i].data, "title=", 6) == 0) {
            title.data = value[i].data + 6;
            title.len = value[i].len - 6;
            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            timeout = ngx_parse_time(&s, 0);

            if (timeout == (ngx_msec_t) NGX_ERROR || timeout == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid timeout \"%V\"", &s);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (name.len == 0 || uri.len == 0 || file.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must have \"%s\" parameter", &cmd->name,
                           name.len == 0 ? "name"
                           : uri.len == 0 ? "uri" : "schema");
        return NGX_CONF_ERROR;
    }

    if (uri.data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "c1_tool \"%V\": uri must be a location's URI, "
                           "starting with \"/\"", &name);
        return NGX_CONF_ERROR;
    }

    if (lcf->tools == NULL) {
        lcf->tools = ngx_array_create(cf->pool, 2,
                                      sizeof(ngx_http_c1_tool_t));
        if (lcf->tools == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    tools = lcf->tools->elts;

    for (i = 0; i < lcf->tools->nelts; i++) {
        if (tools[i].name.len == name.len
            && ngx_strncmp(tools[i].name.data, name.data, name.len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate c1_tool \"%V\"", &name);
            return NGX_CONF_ERROR;
        }
    }

    if (lcf->tools->nelts >= NGX_HTTP_C1_TOOLS_LEVEL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "too many \"c1_tool\" in one place: %d at most",
                           NGX_HTTP_C1_TOOLS_LEVEL);
        return NGX_CONF_ERROR;
    }

    rv = ngx_http_c1_tool_schema(cf, &name, &file, &schema);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    tool = ngx_array_push(lcf->tools);
    if (tool == NULL) {
        cJSON_Delete(schema);
        return NGX_CONF_ERROR;
    }

    tool->name = name;
    tool->uri = uri;
    tool->timeout = timeout;
    tool->metric = ngx_http_c1_tool_metric(cf, &name);

    if (title.len) {
        tool->title = title;

    } else {
        tool->title.len = sizeof("Using ") - 1 + name.len;
        tool->title.data = ngx_pnalloc(cf->pool, tool->title.len);
        if (tool->title.data == NULL) {
            cJSON_Delete(schema);
            return NGX_CONF_ERROR;
        }

        ngx_sprintf(tool->title.data, "Using %V", &name);
    }

    rv = ngx_http_c1_tool_json(cf, lcf, tool, &description, schema);

    return rv;

bad_name:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid tool name \"%V\"",
                       &name);
    return NGX_CONF_ERROR;
}


/* the schema file, read and parsed now: a JSON object */

static char *
ngx_http_c1_tool_schema(ngx_conf_t *cf, ngx_str_t *name, ngx_str_t *file,
    cJSON **schema)
{
    u_char           *buf;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_str_t         path;
    ngx_file_info_t   fi;

    *schema = NULL;

    path = *file;

    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(path.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "c1_tool \"%V\": cannot read schema \"%V\"",
                           name, &path);
        return NGX_CONF_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
        || ngx_file_size(&fi) > 1024 * 1024)
    {
        ngx_close_file(fd);
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "c1_tool \"%V\": cannot read schema \"%V\" (up "
                           "to 1m)", name, &path);
        return NGX_CONF_ERROR;
    }

    buf = ngx_pnalloc(cf->temp_pool, (size_t) ngx_file_size(&fi) + 1);
    if (buf == NULL) {
        ngx_close_file(fd);
        return NGX_CONF_ERROR;
    }

    n = ngx_read_fd(fd, buf, (size_t) ngx_file_size(&fi));

    ngx_close_file(fd);

    if (n < 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "c1_tool \"%V\": cannot read schema \"%V\"",
                           name, &path);
        return NGX_CONF_ERROR;
    }

    *schema = cJSON_ParseWithLength((char *) buf, (size_t) n);

    if (!cJSON_IsObject(*schema)) {
        cJSON_Delete(*schema);
        *schema = NULL;

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "c1_tool \"%V\": schema \"%V\" is not a JSON "
                           "object", name, &path);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* the level's "tools" for C1, the new one added: kept as its JSON */

static char *
ngx_http_c1_tool_json(ngx_conf_t *cf, ngx_http_c1_loc_conf_t *lcf,
    ngx_http_c1_tool_t *tool, ngx_str_t *description, cJSON *schema)
{
    char      *out;
    size_t     len;
    cJSON     *tools, *t, *function;
    c1_str_t   s;

    if (lcf->tools_json.len) {
        tools = cJSON_ParseWithLength((char *) lcf->tools_json.data,
                                      lcf->tools_json.len);
    } else {
        tools = cJSON_CreateArray();
    }

    t = cJSON_CreateObject();

    if (tools == NULL || t == NULL) {
        cJSON_Delete(tools);
        cJSON_Delete(t);
        cJSON_Delete(schema);
        return NGX_CONF_ERROR;
    }

    cJSON_AddItemToArray(tools, t);

    if (cJSON_AddStringToObject(t, "type", "function") == NULL
        || (function = cJSON_AddObjectToObject(t, "function")) == NULL)
    {
        goto nomem;
    }

    s.data = tool->name.data;
    s.len = tool->name.len;

    if (!cJSON_AddItemToObject(function, "name", c1_json_string(&s))) {
        goto nomem;
    }

    if (description->len) {
        s.data = description->data;
        s.len = description->len;

        if (!cJSON_AddItemToObject(function, "description",
                                   c1_json_string(&s)))
        {
            goto nomem;
        }
    }

    cJSON_AddItemToObject(function, "parameters", schema);
    schema = NULL;

    out = cJSON_PrintUnformatted(tools);
    cJSON_Delete(tools);

    if (out == NULL) {
        return NGX_CONF_ERROR;
    }

    len = ngx_strlen(out);

    lcf->tools_json.data = ngx_pnalloc(cf->pool, len);
    if (lcf->tools_json.data == NULL) {
        c1_free(out);
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(lcf->tools_json.data, out, len);
    lcf->tools_json.len = len;
    c1_free(out);

    return NGX_CONF_OK;

nomem:

    cJSON_Delete(tools);
    cJSON_Delete(schema);

    return NGX_CONF_ERROR;
}


/* a tool name's row in the counters: the first ones seen, then "unknown" */

static ngx_uint_t
ngx_http_c1_tool_metric(ngx_conf_t *cf, ngx_str_t *name)
{
    ngx_str_t                *names, *n;
    ngx_uint_t                i;
    ngx_http_c1_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_c1_module);

    names = mcf->tool_names.elts;

    for (i = 0; i < mcf->tool_names.nelts; i++) {
        if (names[i].len == name->len
            && ngx_strncmp(names[i].data, name->data, name->len) == 0)
        {
            return i;
        }
    }

    if (mcf->tool_names.nelts == NGX_HTTP_C1_TOOLS_MAX) {
        return NGX_HTTP_C1_TOOLS_MAX;
    }

    n = ngx_array_push(&mcf->tool_names);
    if (n == NULL) {
        return NGX_HTTP_C1_TOOLS_MAX;
    }

    *n = *name;

    return mcf->tool_names.nelts - 1;
}


/*
 * A turn of a location with tools, in prompt mode: C1's request gets
 * them, and the answer's tool calls are gathered.
 */

ngx_int_t
ngx_http_c1_tool_start(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    char                    *out;
    size_t                   len;
    u_char                  *p;
    ngx_pool_cleanup_t      *cln;
    ngx_http_c1_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_c1_module);

    if (lcf->tools == NULL || ctx->mode != C1_MODE_PROMPT) {
        return NGX_OK;
    }

    if (c1_request_tools((char *) ctx->body.data, ctx->body.len,
                         (char *) lcf->tools_json.data, lcf->tools_json.len,
                         &out, &len)
        != C1_OK)
    {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        c1_free(out);
        return NGX_ERROR;
    }

    ngx_memcpy(p, out, len);
    c1_free(out);

    ctx->body.data = p;
    ctx->body.len = len;

    ctx->tc = ngx_palloc(r->pool, sizeof(c1_tool_calls_t));
    ctx->tool_calls = ngx_array_create(r->pool, 4,
                                       sizeof(ngx_http_c1_tool_call_t *));
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (ctx->tc == NULL || ctx->tool_calls == NULL || cln == NULL) {
        return NGX_ERROR;
    }

    c1_tool_calls_init(ctx->tc, lcf->tool_max_size);

    cln->handler = (ngx_pool_cleanup_pt) ngx_http_c1_tool_cleanup;
    cln->data = ctx;

    return NGX_OK;
}


/* what the request's tool rounds hold, freed when it goes */

void
ngx_http_c1_tool_cleanup(ngx_http_c1_ctx_t *ctx)
{
    ngx_uint_t                 i;
    ngx_http_c1_tool_call_t  **tcalls;

    if (ctx->tc) {
        c1_tool_calls_free(ctx->tc);
    }

    if (ctx->tool_calls == NULL) {
        return;
    }

    tcalls = ctx->tool_calls->elts;

    for (i = 0; i < ctx->tool_calls->nelts; i++) {
        ngx_http_c1_call_cleanup(&tcalls[i]->call);

        c1_buf_free(&tcalls[i]->body);
    }
}


/* the calls that ran (their subrequests made): $c1_tool_calls */

ngx_uint_t
ngx_http_c1_tool_ran(ngx_http_c1_ctx_t *ctx)
{
    ngx_uint_t                 i, n;
    ngx_http_c1_tool_call_t  **tcalls;

    tcalls = ctx->tool_calls->elts;

    for (i = 0, n = 0; i < ctx->tool_calls->nelts; i++) {
        n += tcalls[i]->ran;
    }

    return n;
}


ngx_http_c1_call_t *
ngx_http_c1_tool_call_of(ngx_http_c1_ctx_t *ctx, ngx_http_request_t *sr)
{
    ngx_uint_t                 i;
    ngx_http_c1_tool_call_t  **tcalls;

    tcalls = ctx->tool_calls->elts;

    for (i = 0; i < ctx->tool_calls->nelts; i++) {
        if (tcalls[i]->call.sr == sr) {
            return &tcalls[i]->call;
        }
    }

    return NULL;
}


/*
 * C1's answer ended in tool calls: a round.  Its think item first (a
 * prompt stream), then every call at once.  NGX_OK: the request waits
 * for them (TOOLS); else an error rc.
 */

ngx_int_t
ngx_http_c1_tool_round(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    char                      *json;
    size_t                     len;
    ngx_uint_t                 i;
    ngx_http_c1_tool_call_t   *tcall, **slot;
    ngx_http_c1_loc_conf_t    *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_c1_module);

    ctx->rounds++;
    ctx->round_first = ctx->tool_calls->nelts;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "c1: tool round %ui, %uz calls", ctx->rounds, ctx->tc->n);

    /* every call runnable (an id, arguments) or its error known */

    for (i = 0; i < ctx->tc->n; i++) {
        tcall = ngx_pcalloc(r->pool, sizeof(ngx_http_c1_tool_call_t));
        slot = ngx_array_push(ctx->tool_calls);

        if (tcall == NULL || slot == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        *slot = tcall;
        tcall->index = i;

        switch (c1_tool_calls_check(ctx->tc, i)) {

        case C1_OK:
            tcall->tool = ngx_http_c1_tool_find(lcf, &ctx->tc->calls[i].name);
            tcall->outcome = tcall->tool ? NGX_HTTP_C1_TOOL_OK
                                         : NGX_HTTP_C1_TOOL_UNKNOWN;
            break;

        case C1_ERROR:
            tcall->tool = ngx_http_c1_tool_find(lcf, &ctx->tc->calls[i].name);
            tcall->outcome = tcall->tool ? NGX_HTTP_C1_TOOL_BAD_ARGUMENTS
                                         : NGX_HTTP_C1_TOOL_UNKNOWN;
            break;

        default:
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    /* the assistant's message with its calls: for C1, and the thread */

    json = c1_tool_calls_message(ctx->tc, &len);
    if (json == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_c1_tool_keep(r, ctx, C1_ROLE_TOOL_CALLS, json, len, NULL)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->stream && ngx_http_c1_tool_think(r, ctx, lcf) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->phase = NGX_HTTP_C1_PHASE_TOOLS;

    /* a client that goes away now ends the request at once */

    r->read_event_handler = ngx_http_test_reading;

    for (i = ctx->round_first; i < ctx->tool_calls->nelts; i++) {
        tcall = ((ngx_http_c1_tool_call_t **) ctx->tool_calls->elts)[i];

        if (tcall->outcome != NGX_HTTP_C1_TOOL_OK) {
            continue;
        }

        if (ngx_http_c1_tool_call(r, ctx, tcall) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return NGX_OK;
}


/* the round's think item: its first tool's title, its tools' names */

static ngx_int_t
ngx_http_c1_tool_think(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    ngx_http_c1_loc_conf_t *lcf)
{
    u_char                    *p, *think, *names;
    size_t                     len, n;
    ngx_str_t                  title;
    ngx_uint_t                 i, j;
    c1_tool_call_t            *calls;
    ngx_http_c1_tool_call_t  **tcalls;

    calls = ctx->tc->calls;
    tcalls = ctx->tool_calls->elts;

    tcalls += ctx->round_first;

    if (tcalls[0]->tool) {
        title = tcalls[0]->tool->title;

    } else {
        title.len = sizeof("Using ") - 1 + calls[0].name.len;
        title.data = ngx_pnalloc(r->pool, title.len);
        if (title.data == NULL) {
            return NGX_ERROR;
        }

        p = ngx_cpymem(title.data, "Using ", sizeof("Using ") - 1);
        ngx_memcpy(p, calls[0].name.data, calls[0].name.len);
    }

    /* the names, each once, in the calls' order */

    len = 0;

    for (i = 0; i < ctx->tc->n; i++) {
        len += calls[i].name.len + 2;
    }

    names = ngx_pnalloc(r->pool, len + 1);
    if (names == NULL) {
        return NGX_ERROR;
    }

    p = names;

    for (i = 0; i < ctx->tc->n; i++) {

        for (j = 0; j < i; j++) {
            if (calls[j].name.len == calls[i].name.len
                && ngx_memcmp(calls[j].name.data, calls[i].name.data,
                              calls[i].name.len) == 0)
            {
                break;
            }
        }

        if (j < i) {
            continue;
        }

        if (p > names) {
            p = ngx_cpymem(p, ", ", 2);
        }

        p = ngx_cpymem(p, calls[i].name.data, calls[i].name.len);
    }

    n = c1_think_item_len(title.len, p - names);

    think = ngx_pnalloc(r->pool, n);
    if (think == NULL) {
        return NGX_ERROR;
    }

    n = c1_think_item(title.data, title.len, names, p - names, think);

    /* before the calls start: the main request is the active one */

    return ngx_http_c1_response_write(r, ctx, r, think, n);
}


static ngx_http_c1_tool_t *
ngx_http_c1_tool_find(ngx_http_c1_loc_conf_t *lcf, c1_buf_t *name)
{
    ngx_uint_t           i;
    ngx_http_c1_tool_t  *tools;

    tools = lcf->tools->elts;

    for (i = 0; i < lcf->tools->nelts; i++) {
        if (tools[i].name.len == name->len
            && ngx_memcmp(tools[i].name.data, name->data, name->len) == 0)
        {
            return &tools[i];
        }
    }

    return NULL;
}


/* one call: POST to its tool's location, the arguments the body */

static ngx_int_t
ngx_http_c1_tool_call(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    ngx_http_c1_tool_call_t *tcall)
{
    ngx_keyval_t        *kv;
    c1_tool_call_t      *c;
    ngx_http_c1_call_t  *call;

    c = &ctx->tc->calls[tcall->index];
    call = &tcall->call;

    call->r = r;
    call->uri = tcall->tool->uri;
    call->method = NGX_HTTP_POST;
    call->method_name = ngx_http_c1_tool_post;
    call->header_handler = ngx_http_c1_tool_header;
    call->data_handler = ngx_http_c1_tool_data;
    call->data = tcall;
    call->timeout = tcall->tool->timeout;
    call->background = 1;

    call->body.len = c->arguments.len;
    call->body.data = ngx_pnalloc(r->pool, c->arguments.len);
    if (call->body.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(call->body.data, c->arguments.data, c->arguments.len);

    call->headers = ngx_array_create(r->pool, 1, sizeof(ngx_keyval_t));
    if (call->headers == NULL) {
        return NGX_ERROR;
    }

    kv = ngx_array_push(call->headers);
    if (kv == NULL) {
        return NGX_ERROR;
    }

    ngx_str_set(&kv->key, "Content-Type");
    ngx_str_set(&kv->value, "application/json");

    tcall->ran = 1;
    tcall->start = ngx_current_msec;

    return ngx_http_c1_call_start(call);
}


static ngx_int_t
ngx_http_c1_tool_header(ngx_http_c1_call_t *call)
{
    return NGX_OK;
}


/* the tool's answer, kept up to c1_tool_max_size */

static ngx_int_t
ngx_http_c1_tool_data(ngx_http_c1_call_t *call, ngx_chain_t *in)
{
    size_t                    n;
    ngx_buf_t                *b;
    ngx_chain_t              *cl;
    ngx_http_c1_tool_call_t  *tcall;
    ngx_http_c1_loc_conf_t   *lcf;

    tcall = call->data;
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

        if (tcall->body.len + n > lcf->tool_max_size) {
            tcall->too_large = 1;
            b->pos = b->last;
            return NGX_ERROR;
        }

        if (c1_buf_append(&tcall->body, b->pos, n) != C1_OK) {
            return NGX_ERROR;
        }

        b->pos = b->last;
    }

    return NGX_OK;
}


/* whether every call of the round is over (a timed out one is) */

ngx_uint_t
ngx_http_c1_tools_over(ngx_http_c1_ctx_t *ctx)
{
    ngx_uint_t                 i;
    ngx_http_c1_tool_call_t  **tcalls;

    tcalls = ctx->tool_calls->elts;

    for (i = ctx->round_first; i < ctx->tool_calls->nelts; i++) {
        if (tcalls[i]->ran && !tcalls[i]->call.timed_out
            && !ngx_http_c1_call_over(&tcalls[i]->call))
        {
            return 0;
        }
    }

    return 1;
}


/*
 * TOOLS: every call is over.  Their results join C1's request, and C1 is
 * called again (without tools once the rounds are spent): NGX_OK, or an
 * error rc.
 */

ngx_int_t
ngx_http_c1_tool_next(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx)
{
    char                      *json, *out;
    size_t                     len;
    c1_str_t                  *msgs;
    ngx_str_t                  result;
    ngx_uint_t                 i, n, untool;
    ngx_array_t               *round;
    ngx_http_c1_tool_call_t   *tcall, **tcalls;
    ngx_http_c1_loc_conf_t    *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_c1_module);

    r->read_event_handler = ngx_http_block_reading;

    n = ctx->tool_calls->nelts - ctx->round_first;
    tcalls = ctx->tool_calls->elts;

    round = ngx_array_create(r->pool, n + 1, sizeof(c1_str_t));
    if (round == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the assistant's message, kept by the round's start */

    msgs = ngx_array_push(round);
    if (msgs == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    msgs->data = ctx->round_assistant.data;
    msgs->len = ctx->round_assistant.len;

    for (i = ctx->round_first; i < ctx->tool_calls->nelts; i++) {
        tcall = tcalls[i];

        if (ngx_http_c1_tool_result(r, ctx, tcall, &result) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_http_c1_tool_counted(r, tcall->tool ? tcall->tool->metric
                                                : NGX_HTTP_C1_TOOLS_MAX,
                                 tcall->outcome,
                                 tcall->call.end_msec
                                 ? tcall->call.end_msec - tcall->start
                                 : ngx_current_msec - tcall->start,
                                 tcall->ran);

        json = c1_tool_result_message(&ctx->tc->calls[tcall->index],
                                      result.data, result.len, &len);
        if (json == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (ngx_http_c1_tool_keep(r, ctx, C1_ROLE_TOOL, json, len, round)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        c1_buf_free(&tcall->body);
    }

    /* the rounds spent: C1 must answer now, without tools */

    untool = (ctx->rounds >= lcf->tool_rounds);

    if (c1_request_extend((char *) ctx->body.data, ctx->body.len,
                          round->elts, round->nelts, (int) untool, &out,
                          &len)
        != C1_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->body.data = ngx_pnalloc(r->pool, len);
    if (ctx->body.data == NULL) {
        c1_free(out);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(ctx->body.data, out, len);
    ctx->body.len = len;
    c1_free(out);

    c1_tool_calls_free(ctx->tc);

    return NGX_OK;
}


/* a call's result as C1 gets it: the tool's answer, or why there is none */

static ngx_int_t
ngx_http_c1_tool_result(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    ngx_http_c1_tool_call_t *tcall, ngx_str_t *result)
{
    u_char              *p;
    ngx_str_t            name;
    ngx_http_c1_call_t  *call;

    call = &tcall->call;

    if (tcall->outcome == NGX_HTTP_C1_TOOL_OK) {

        if (call->timed_out) {
            tcall->outcome = NGX_HTTP_C1_TOOL_TIMEOUT;

        } else if (tcall->too_large) {
            tcall->outcome = NGX_HTTP_C1_TOOL_TOO_LARGE;

        } else if (call->header
                   && (call->status < 200 || call->status > 299))
        {
            tcall->outcome = NGX_HTTP_C1_TOOL_ERROR;

        } else if (!call->header || call->failed
                   || call->rc >= NGX_HTTP_SPECIAL_RESPONSE
                   || call->rc == NGX_ERROR)
        {
            tcall->outcome = NGX_HTTP_C1_TOOL_UNREACHABLE;

        } else if (tcall->body.len
                   && (!c1_utf8_valid(tcall->body.data, tcall->body.len)
                       || ngx_strlchr(tcall->body.data,
                                      tcall->body.data + tcall->body.len,
                                      '\0')))
        {
            tcall->outcome = NGX_HTTP_C1_TOOL_NOT_TEXT;
        }
    }

    if (tcall->outcome == NGX_HTTP_C1_TOOL_OK) {
        result->data = tcall->body.len ? tcall->body.data : (u_char *) "";
        result->len = tcall->body.len;
        return NGX_OK;
    }

    /*
     * the name as C1 gave it, JSON-quoted: in the result as in the log,
     * where no byte of the model's can start a line of its own
     */

    if (ngx_http_c1_tool_name(r, &ctx->tc->calls[tcall->index].name, &name)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    switch (tcall->outcome) {

    case NGX_HTTP_C1_TOOL_ERROR:
        result->data = ngx_pnalloc(r->pool, 64);
        if (result->data == NULL) {
            return NGX_ERROR;
        }

        result->len = ngx_sprintf(result->data, "error: the tool answered "
                                  "HTTP %ui", call->status)
                      - result->data;

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "c1: tool %V failed: it answered HTTP %ui", &name,
                      call->status);
        return NGX_OK;

    case NGX_HTTP_C1_TOOL_TIMEOUT:
        ngx_str_set(result, "error: the tool did not answer in time");
        break;

    case NGX_HTTP_C1_TOOL_TOO_LARGE:
        ngx_str_set(result, "error: the tool's answer is larger than "
                            "c1_tool_max_size");
        break;

    case NGX_HTTP_C1_TOOL_UNKNOWN:
        result->data = ngx_pnalloc(r->pool, sizeof("error: no tool named ")
                                            + name.len);
        if (result->data == NULL) {
            return NGX_ERROR;
        }

        p = ngx_cpymem(result->data, "error: no tool named ",
                       sizeof("error: no tool named ") - 1);
        p = ngx_cpymem(p, name.data, name.len);
        result->len = p - result->data;
        break;

    case NGX_HTTP_C1_TOOL_BAD_ARGUMENTS:
        ngx_str_set(result, "error: the arguments are not a JSON object");
        break;

    case NGX_HTTP_C1_TOOL_NOT_TEXT:
        ngx_str_set(result, "error: the tool's answer is not UTF-8 text");
        break;

    default: /* NGX_HTTP_C1_TOOL_UNREACHABLE */
        ngx_str_set(result, "error: the tool could not be reached");
        break;
    }

    /* never the arguments: they are the model's, and may be anything */

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "c1: tool %V failed: %s", &name,
                  ngx_http_c1_tool_whys[tcall->outcome]);

    return NGX_OK;
}


/* a tool's name as a JSON string, quotes and all */

static ngx_int_t
ngx_http_c1_tool_name(ngx_http_request_t *r, c1_buf_t *name,
    ngx_str_t *quoted)
{
    char      *json;
    cJSON     *item;
    c1_str_t   s;

    s.data = name->data;
    s.len = name->len;

    item = c1_json_string(&s);
    if (item == NULL) {
        return NGX_ERROR;
    }

    json = cJSON_PrintUnformatted(item);
    cJSON_Delete(item);

    if (json == NULL) {
        return NGX_ERROR;
    }

    quoted->len = ngx_strlen(json);
    quoted->data = ngx_pnalloc(r->pool, quoted->len);

    if (quoted->data == NULL) {
        c1_free(json);
        return NGX_ERROR;
    }

    ngx_memcpy(quoted->data, json, quoted->len);
    c1_free(json);

    return NGX_OK;
}


/*
 * A message of the round, kept: for C1's next request (round), as the
 * round's assistant message (its tool calls), and for the thread when
 * the turn has one.
 */

static ngx_int_t
ngx_http_c1_tool_keep(ngx_http_request_t *r, ngx_http_c1_ctx_t *ctx,
    ngx_uint_t role, char *json, size_t len, ngx_array_t *round)
{
    c1_str_t           *s;
    ngx_str_t           copy;
    ngx_http_c1_msg_t  *m;

    copy.len = len;
    copy.data = ngx_pnalloc(r->pool, len);

    if (copy.data == NULL) {
        c1_free(json);
        return NGX_ERROR;
    }

    ngx_memcpy(copy.data, json, len);
    c1_free(json);

    if (role == C1_ROLE_TOOL_CALLS) {
        ctx->round_assistant = copy;
    }

    if (round) {
        s = ngx_array_push(round);
        if (s == NULL) {
            return NGX_ERROR;
        }

        s->data = copy.data;
        s->len = copy.len;
    }

    if (!ctx->begun) {
        return NGX_OK;
    }

    if (ctx->tool_keep == NULL) {
        ctx->tool_keep = ngx_array_create(r->pool, 4,
                                          sizeof(ngx_http_c1_msg_t));
        if (ctx->tool_keep == NULL) {
            return NGX_ERROR;
        }
    }

    m = ngx_array_push(ctx->tool_keep);
    if (m == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(m, sizeof(ngx_http_c1_msg_t));

    m->role = role;
    m->content = copy;

    return ngx_http_c1_thread_new_id(r->pool, &m->id);
}
