
/*
 * ngx_http_c1_module: a tool round's protocol (see ngx_http_c1_tools.h).
 *
 * C1 asks for tools as OpenAI does: a stream's chunks carry
 * choices[0].delta.tool_calls, each piece naming its call by "index",
 * the first with its "id" and "function.name", every one with a piece of
 * "function.arguments"; the last chunk says finish_reason "tool_calls".
 * A whole answer has them in choices[0].message.tool_calls.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_c1_json.h"
#include "ngx_http_c1_tools.h"


#define C1_BAD_TOOLS(err, ...)                                                \
    c1_error_set(err, 502, "upstream_error", "bad_upstream_answer", NULL,     \
                 __VA_ARGS__)


static int c1_tool_calls_read(c1_tool_calls_t *tc, cJSON *choice,
    const char *inner);
static int c1_tool_calls_piece(c1_tool_calls_t *tc, cJSON *piece,
    long position);
static int c1_tool_calls_append(c1_tool_calls_t *tc, c1_buf_t *b,
    cJSON *s, size_t max, const char *what);
static char *c1_tool_print(cJSON *root, size_t *len);


void
c1_tool_calls_init(c1_tool_calls_t *tc, size_t max)
{
    memset(tc, 0, sizeof(c1_tool_calls_t));
    tc->max = max;
}


/* what the calls hold freed: empty again, as init left it */

void
c1_tool_calls_free(c1_tool_calls_t *tc)
{
    size_t  i;

    for (i = 0; i < tc->n; i++) {
        c1_buf_free(&tc->calls[i].id);
        c1_buf_free(&tc->calls[i].name);
        c1_buf_free(&tc->calls[i].arguments);
    }

    tc->n = 0;
    tc->finished = 0;
    tc->failed = 0;
}


/* a stream's chunk: its tool call pieces, and whether it finished so */

int
c1_tool_calls_event(c1_tool_calls_t *tc, const unsigned char *ev,
    size_t len)
{
    int          rc;
    cJSON       *root, *choices;
    const char  *problem;

    if (tc->failed) {
        return C1_ERROR;
    }

    root = c1_json_parse(ev, len, &problem);

    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return C1_OK;               /* not a chunk: the relay's to say */
    }

    choices = cJSON_GetObjectItemCaseSensitive(root, "choices");

    rc = c1_tool_calls_read(tc, cJSON_GetArrayItem(choices, 0), "delta");

    cJSON_Delete(root);

    return rc;
}


/* a whole chat.completion: its message's tool calls */

int
c1_tool_calls_answer(c1_tool_calls_t *tc, const unsigned char *in,
    size_t len)
{
    int          rc;
    cJSON       *root, *choices;
    const char  *problem;

    root = c1_json_parse(in, len, &problem);

    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        C1_BAD_TOOLS(&tc->err, "C1's answer is not JSON: %s", problem);
        tc->failed = 1;
        return C1_ERROR;
    }

    choices = cJSON_GetObjectItemCaseSensitive(root, "choices");

    rc = c1_tool_calls_read(tc, cJSON_GetArrayItem(choices, 0), "message");

    cJSON_Delete(root);

    return rc;
}


static int
c1_tool_calls_read(c1_tool_calls_t *tc, cJSON *choice, const char *inner)
{
    int     rc;
    long    i;
    cJSON  *finish, *calls, *piece;

    if (!cJSON_IsObject(choice)) {
        return C1_OK;
    }

    finish = cJSON_GetObjectItemCaseSensitive(choice, "finish_reason");

    if (cJSON_IsString(finish)
        && strcmp(finish->valuestring, "tool_calls") == 0)
    {
        tc->finished = 1;
    }

    calls = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(choice, inner),
                "tool_calls");

    if (!cJSON_IsArray(calls)) {
        return C1_OK;
    }

    i = 0;

    cJSON_ArrayForEach(piece, calls) {
        rc = c1_tool_calls_piece(tc, piece, i++);
        if (rc != C1_OK) {
            return rc;
        }
    }

    return C1_OK;
}


/* one piece of a call: its index's call made or found, its parts added */

static int
c1_tool_calls_piece(c1_tool_calls_t *tc, cJSON *piece, long position)
{
    int              rc;
    long             index;
    size_t           i;
    cJSON           *n, *id, *function;
    c1_tool_call_t  *call;

    if (!cJSON_IsObject(piece)) {
        tc->failed = 1;
        C1_BAD_TOOLS(&tc->err, "C1's tool call is not an object");
        return C1_ERROR;
    }

    n = cJSON_GetObjectItemCaseSensitive(piece, "index");

    index = position;

    if (cJSON_IsNumber(n)) {
        if (n->valuedouble < 0 || n->valuedouble > 1000
            || n->valuedouble != (double) (long) n->valuedouble)
        {
            tc->failed = 1;
            C1_BAD_TOOLS(&tc->err, "C1's tool call has an index that is "
                         "not a small whole number");
            return C1_ERROR;
        }

        index = (long) n->valuedouble;
    }

    call = NULL;

    for (i = 0; i < tc->n; i++) {
        if (tc->calls[i].index == index) {
            call = &tc->calls[i];
            break;
        }
    }

    if (call == NULL) {
        if (tc->n == C1_TOOL_CALLS_MAX) {
            tc->failed = 1;
            C1_BAD_TOOLS(&tc->err, "C1 asked for more than %d tool calls "
                         "at once", C1_TOOL_CALLS_MAX);
            return C1_ERROR;
        }

        call = &tc->calls[tc->n++];
        memset(call, 0, sizeof(c1_tool_call_t));
        call->index = index;
    }

    id = cJSON_GetObjectItemCaseSensitive(piece, "id");

    if (cJSON_IsString(id) && id->valuestring[0] != '\0') {
        call->id.len = 0;

        rc = c1_tool_calls_append(tc, &call->id, id, 256, "id");
        if (rc != C1_OK) {
            return rc;
        }
    }

    function = cJSON_GetObjectItemCaseSensitive(piece, "function");

    if (!cJSON_IsObject(function)) {
        return C1_OK;
    }

    rc = c1_tool_calls_append(tc, &call->name,
                              cJSON_GetObjectItemCaseSensitive(function,
                                                               "name"),
                              C1_TOOL_NAME_MAX, "name");
    if (rc != C1_OK) {
        return rc;
    }

    return c1_tool_calls_append(tc, &call->arguments,
                                cJSON_GetObjectItemCaseSensitive(function,
                                                                 "arguments"),
                                tc->max, "arguments");
}


static int
c1_tool_calls_append(c1_tool_calls_t *tc, c1_buf_t *b, cJSON *s,
    size_t max, const char *what)
{
    size_t  len;

    if (!cJSON_IsString(s)) {
        return C1_OK;
    }

    len = strlen(s->valuestring);

    if (b->len + len > max) {
        tc->failed = 1;
        C1_BAD_TOOLS(&tc->err, "C1's tool call has a %s longer than %zu "
                     "bytes", what, max);
        return C1_ERROR;
    }

    return c1_buf_append(b, s->valuestring, len);
}


/*
 * Call i as it may be run: an id ("call_N" when C1 gave none), a name;
 * its arguments a JSON object ("" is {}).  C1_OK, or C1_ERROR with
 * tc->err saying why, for the result C1 gets back.
 */

int
c1_tool_calls_check(c1_tool_calls_t *tc, size_t i)
{
    int              rc;
    char             id[32];
    cJSON           *args;
    const char      *problem;
    c1_tool_call_t  *call;

    call = &tc->calls[i];

    if (call->id.len == 0) {
        snprintf(id, sizeof(id), "call_%zu", i);

        rc = c1_buf_append(&call->id, id, strlen(id));
        if (rc != C1_OK) {
            return rc;
        }
    }

    if (call->name.len == 0) {
        c1_error_set(&tc->err, 400, "invalid_request_error", "bad_tool_call",
                     NULL, "the tool call names no tool");
        return C1_ERROR;
    }

    if (call->arguments.len == 0) {
        return c1_buf_append(&call->arguments, "{}", 2);
    }

    args = c1_json_parse(call->arguments.data, call->arguments.len,
                         &problem);

    if (!cJSON_IsObject(args)) {
        cJSON_Delete(args);
        c1_error_set(&tc->err, 400, "invalid_request_error", "bad_tool_call",
                     NULL, "the arguments are not a JSON object");
        return C1_ERROR;
    }

    cJSON_Delete(args);

    return C1_OK;
}


/* the assistant's message that asked for the calls, as C1 gets it back */

char *
c1_tool_calls_message(const c1_tool_calls_t *tc, size_t *len)
{
    size_t     i;
    cJSON     *root, *calls, *call, *function;
    c1_str_t   s;

    root = cJSON_CreateObject();

    if (root == NULL
        || cJSON_AddStringToObject(root, "role", "assistant") == NULL
        || cJSON_AddNullToObject(root, "content") == NULL
        || (calls = cJSON_AddArrayToObject(root, "tool_calls")) == NULL)
    {
        cJSON_Delete(root);
        return NULL;
    }

    for (i = 0; i < tc->n; i++) {
        call = cJSON_CreateObject();
        if (call == NULL) {
            goto nomem;
        }

        cJSON_AddItemToArray(calls, call);

        s.data = tc->calls[i].id.data;
        s.len = tc->calls[i].id.len;

        if (!cJSON_AddItemToObject(call, "id", c1_json_string(&s))
            || cJSON_AddStringToObject(call, "type", "function") == NULL
            || (function = cJSON_AddObjectToObject(call, "function")) == NULL)
        {
            goto nomem;
        }

        s.data = tc->calls[i].name.data;
        s.len = tc->calls[i].name.len;

        if (!cJSON_AddItemToObject(function, "name", c1_json_string(&s))) {
            goto nomem;
        }

        s.data = tc->calls[i].arguments.data;
        s.len = tc->calls[i].arguments.len;

        if (!cJSON_AddItemToObject(function, "arguments",
                                   c1_json_string(&s)))
        {
            goto nomem;
        }
    }

    return c1_tool_print(root, len);

nomem:

    cJSON_Delete(root);

    return NULL;
}


/* a call's result: {"role": "tool", "tool_call_id", "content"} */

char *
c1_tool_result_message(const c1_tool_call_t *call,
    const unsigned char *content, size_t clen, size_t *len)
{
    cJSON     *root;
    c1_str_t   s;

    root = cJSON_CreateObject();

    if (root == NULL
        || cJSON_AddStringToObject(root, "role", "tool") == NULL)
    {
        cJSON_Delete(root);
        return NULL;
    }

    s.data = call->id.data;
    s.len = call->id.len;

    if (!cJSON_AddItemToObject(root, "tool_call_id", c1_json_string(&s))) {
        cJSON_Delete(root);
        return NULL;
    }

    s.data = clen ? content : (const unsigned char *) "";
    s.len = clen;

    if (!cJSON_AddItemToObject(root, "content", c1_json_string(&s))) {
        cJSON_Delete(root);
        return NULL;
    }

    return c1_tool_print(root, len);
}


static char *
c1_tool_print(cJSON *root, size_t *len)
{
    char  *out;

    out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);

    if (out) {
        *len = strlen(out);
    }

    return out;
}


/* C1's rendered request with the configured tools (a JSON array) */

int
c1_request_tools(const char *body, size_t len, const char *tools,
    size_t tlen, char **out, size_t *outlen)
{
    cJSON  *root, *t;

    *out = NULL;

    root = cJSON_ParseWithLength(body, len);
    t = cJSON_ParseWithLength(tools, tlen);

    if (!cJSON_IsObject(root) || !cJSON_IsArray(t)) {
        cJSON_Delete(root);
        cJSON_Delete(t);
        return C1_ERROR;
    }

    cJSON_DeleteItemFromObjectCaseSensitive(root, "tools");
    cJSON_AddItemToObject(root, "tools", t);

    *out = c1_tool_print(root, outlen);

    return *out ? C1_OK : C1_NOMEM;
}


/*
 * C1's request for the next round: the messages added (each a JSON
 * object), and with untool the tools taken away (the last call, once the
 * rounds are spent)
 */

int
c1_request_extend(const char *body, size_t len, const c1_str_t *msgs,
    size_t n, int untool, char **out, size_t *outlen)
{
    size_t  i;
    cJSON  *root, *messages, *m;

    *out = NULL;

    root = cJSON_ParseWithLength(body, len);
    messages = cJSON_GetObjectItemCaseSensitive(root, "messages");

    if (!cJSON_IsObject(root) || !cJSON_IsArray(messages)) {
        cJSON_Delete(root);
        return C1_ERROR;
    }

    for (i = 0; i < n; i++) {
        m = cJSON_ParseWithLength((const char *) msgs[i].data, msgs[i].len);

        if (!cJSON_IsObject(m)) {
            cJSON_Delete(m);
            cJSON_Delete(root);
            return C1_ERROR;
        }

        cJSON_AddItemToArray(messages, m);
    }

    if (untool) {
        cJSON_DeleteItemFromObjectCaseSensitive(root, "tools");
        cJSON_DeleteItemFromObjectCaseSensitive(root, "tool_choice");
    }

    *out = c1_tool_print(root, outlen);

    return *out ? C1_OK : C1_NOMEM;
}


/*
 * A think item, the bytes @thesysai/genui-sdk's writeThinkItem() writes:
 * its text escaped as lodash's escape() does (& < > " ')
 */

#define C1_THINK_OPEN                                                         \
    "<thinkitem ephemeral=\"true\"><thinkitemtitle>"
#define C1_THINK_MID   "</thinkitemtitle><thinkitemcontent>"
#define C1_THINK_CLOSE "</thinkitemcontent></thinkitem>"


static unsigned char *
c1_think_escape(unsigned char *p, const unsigned char *s, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        switch (s[i]) {
        case '&':
            memcpy(p, "&amp;", 5);
            p += 5;
            break;
        case '<':
            memcpy(p, "&lt;", 4);
            p += 4;
            break;
        case '>':
            memcpy(p, "&gt;", 4);
            p += 4;
            break;
        case '"':
            memcpy(p, "&quot;", 6);
            p += 6;
            break;
        case '\'':
            memcpy(p, "&#39;", 5);
            p += 5;
            break;
        default:
            *p++ = s[i];
        }
    }

    return p;
}


/* the most a think item of these lengths takes */

size_t
c1_think_item_len(size_t tlen, size_t dlen)
{
    return sizeof(C1_THINK_OPEN C1_THINK_MID C1_THINK_CLOSE) - 1
           + 6 * (tlen + dlen);
}


size_t
c1_think_item(const unsigned char *title, size_t tlen,
    const unsigned char *detail, size_t dlen, unsigned char *out)
{
    unsigned char  *p;

    p = out;

    memcpy(p, C1_THINK_OPEN, sizeof(C1_THINK_OPEN) - 1);
    p += sizeof(C1_THINK_OPEN) - 1;
    p = c1_think_escape(p, title, tlen);
    memcpy(p, C1_THINK_MID, sizeof(C1_THINK_MID) - 1);
    p += sizeof(C1_THINK_MID) - 1;
    p = c1_think_escape(p, detail, dlen);
    memcpy(p, C1_THINK_CLOSE, sizeof(C1_THINK_CLOSE) - 1);
    p += sizeof(C1_THINK_CLOSE) - 1;

    return p - out;
}
