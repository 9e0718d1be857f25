
/*
 * ngx_http_c1_module: C1's stream of chat.completion.chunk events turned
 * into what the client gets.  Prompt mode: the bare concatenation of the
 * choices[0].delta.content pieces, which is what <C1Chat> reads.  OpenAI
 * mode: the events as C1 sent them, "data: ...\n\n" each, always ended by
 * "data: [DONE]\n\n" (or by an error event when the stream failed).
 */


#ifndef _GNU_SOURCE
#define _GNU_SOURCE              /* memmem() */
#endif

#include <stdlib.h>
#include <string.h>

#include "ngx_http_c1_json.h"
#include "ngx_http_c1_scan.h"
#include "ngx_http_c1_tools.h"


#define C1_BAD_STREAM(err, ...)                                               \
    c1_error_set(err, 502, "upstream_error", "bad_upstream_stream", NULL,     \
                 __VA_ARGS__)


static int c1_relay_parse(c1_relay_t *r, const unsigned char *in,
    size_t len, int end);
static int c1_relay_event(void *data, const unsigned char *ev, size_t len);
static int c1_relay_tree(c1_relay_t *r, const unsigned char *ev, size_t len);
static int c1_relay_data(c1_relay_t *r, const unsigned char *ev, size_t len);


void
c1_relay_init(c1_relay_t *r, c1_mode_e mode, size_t max_event)
{
    memset(r, 0, sizeof(c1_relay_t));

    c1_sse_init(&r->sse, max_event);

    r->mode = mode;
    r->prompt_tokens = -1;
    r->completion_tokens = -1;
    r->total_tokens = -1;
}


void
c1_relay_free(c1_relay_t *r)
{
    c1_sse_free(&r->sse);
    c1_buf_free(&r->out);
    c1_buf_free(&r->answer);
}


int
c1_relay_feed(c1_relay_t *r, const unsigned char *in, size_t len)
{
    return c1_relay_parse(r, in, len, 0);
}


/* C1's stream ended: what was left without a blank line after it counts */

int
c1_relay_end(c1_relay_t *r)
{
    return c1_relay_parse(r, NULL, 0, 1);
}


static int
c1_relay_parse(c1_relay_t *r, const unsigned char *in, size_t len, int end)
{
    int  rc;

    if (r->failed) {
        return C1_ERROR;
    }

    if (r->done) {
        return C1_OK;
    }

    rc = end ? c1_sse_end(&r->sse, c1_relay_event, r)
             : c1_sse_feed(&r->sse, in, len, c1_relay_event, r);

    /* the parser's own error: a line or an event over the bound */

    if (rc == C1_ERROR && !r->failed) {
        r->failed = 1;
        C1_BAD_STREAM(&r->err, "C1's stream carried an event larger "
                      "than this server accepts");
    }

    return rc;
}


/* the client's stream ends: [DONE], or an error event (OpenAI mode) */

int
c1_relay_close(c1_relay_t *r, const c1_error_t *err)
{
    int     rc;
    char   *json;
    size_t  len;

    if (r->mode != C1_MODE_OPENAI) {
        return C1_OK;
    }

    if (err == NULL) {
        if (r->done) {
            return C1_OK;
        }

        r->done = 1;

        return c1_buf_append(&r->out, "data: [DONE]\n\n", 14);
    }

    json = c1_error_render(err, &len);
    if (json == NULL) {
        return C1_NOMEM;
    }

    rc = c1_buf_append(&r->out, "data: ", 6);

    if (rc == C1_OK) {
        rc = c1_buf_append(&r->out, json, len);
    }

    if (rc == C1_OK) {
        rc = c1_buf_append(&r->out, "\n\n", 2);
    }

    c1_free(json);

    return rc;
}


static int
c1_relay_event(void *data, const unsigned char *ev, size_t len)
{
    c1_relay_t *r = data;

    int             rc;
    c1_scan_t       s;
    unsigned char  *out;

    if (r->done || r->failed || len == 0) {
        return C1_OK;
    }

    r->events++;

    if (len == 6 && memcmp(ev, "[DONE]", 6) == 0) {
        r->done = 1;

        if (r->mode == C1_MODE_OPENAI) {
            return c1_buf_append(&r->out, "data: [DONE]\n\n", 14);
        }

        return C1_OK;
    }

    /* a chunk of a tool round (prompt mode): its calls gathered */

    if (r->tools && memmem(ev, len, "tool_calls", 10) != NULL) {
        rc = c1_tool_calls_event(r->tools, ev, len);

        if (rc != C1_OK) {
            if (rc == C1_ERROR) {
                r->failed = 1;
                r->err = ((c1_tool_calls_t *) r->tools)->err;
            }

            return rc;
        }
    }

    /*
     * read in one pass by c1_scan(), the content unescaped straight after
     * what the client has yet to get; what it declines, and error events,
     * are read with cJSON, to the same result
     */

    out = NULL;

    if (r->mode == C1_MODE_PROMPT) {
        rc = c1_buf_reserve(&r->out, len);
        if (rc != C1_OK) {
            return rc;
        }

        out = r->out.data + r->out.len;

    } else if (r->keep) {
        rc = c1_buf_reserve(&r->answer, len);
        if (rc != C1_OK) {
            return rc;
        }

        out = r->answer.data + r->answer.len;
    }

    if (r->tree || c1_scan(ev, len, C1_SCAN_DELTA, out, &s) != C1_OK
        || s.error)
    {
        return c1_relay_tree(r, ev, len);
    }

    if (s.usage) {
        r->prompt_tokens = s.prompt_tokens;
        r->completion_tokens = s.completion_tokens;
        r->total_tokens = s.total_tokens;
    }

    if (r->mode == C1_MODE_OPENAI) {
        if (s.content && s.content_raw > 2) {
            r->content += s.content_raw - 2;
        }

        if (r->keep) {
            r->answer.len += s.content_len;
        }

        /* the usage chunk the module asked for, not the client */

        if (r->hide_usage && s.usage && !s.choice) {
            return C1_OK;
        }

        return c1_relay_data(r, ev, len);
    }

    r->out.len += s.content_len;
    r->content += s.content_len;

    return C1_OK;
}


static int
c1_relay_tree(c1_relay_t *r, const unsigned char *ev, size_t len)
{
    int          rc;
    cJSON       *root, *e, *msg, *usage, *choices, *delta, *content;
    const char  *problem;

    root = c1_json_parse(ev, len, &problem);

    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        r->failed = 1;
        C1_BAD_STREAM(&r->err, "C1's stream carried an event that is not "
                      "a JSON object");
        return C1_ERROR;
    }

    e = cJSON_GetObjectItemCaseSensitive(root, "error");

    if (e != NULL && !cJSON_IsNull(e)) {
        msg = cJSON_GetObjectItemCaseSensitive(e, "message");

        r->failed = 1;
        C1_BAD_STREAM(&r->err, "C1's stream carried an error: %s",
                      cJSON_IsString(msg) ? msg->valuestring
                                          : "(no message)");
        cJSON_Delete(root);
        return C1_ERROR;
    }

    usage = cJSON_GetObjectItemCaseSensitive(root, "usage");

    if (cJSON_IsObject(usage)) {
        r->prompt_tokens = c1_json_count(usage, "prompt_tokens");
        r->completion_tokens = c1_json_count(usage, "completion_tokens");
        r->total_tokens = c1_json_count(usage, "total_tokens");
    }

    choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
    delta = NULL;

    if (cJSON_IsArray(choices)) {
        delta = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(choices,
                                                                    0),
                                                 "delta");
    }

    content = cJSON_GetObjectItemCaseSensitive(delta, "content");

    if (cJSON_IsString(content)) {
        r->content += strlen(content->valuestring);
    }

    if (r->mode == C1_MODE_OPENAI) {
        rc = C1_OK;

        if (r->keep && cJSON_IsString(content)) {
            rc = c1_buf_append(&r->answer, content->valuestring,
                               strlen(content->valuestring));
        }

        /* the usage chunk the module asked for, not the client */

        if (r->hide_usage && cJSON_IsObject(usage)
            && !cJSON_IsObject(cJSON_GetArrayItem(choices, 0)))
        {
            cJSON_Delete(root);
            return rc;
        }

        cJSON_Delete(root);

        return rc == C1_OK ? c1_relay_data(r, ev, len) : rc;
    }

    rc = C1_OK;

    if (cJSON_IsString(content)) {
        rc = c1_buf_append(&r->out, content->valuestring,
                           strlen(content->valuestring));
    }

    cJSON_Delete(root);

    return rc;
}


/* an event as C1 sent it, each of its lines a "data:" line */

static int
c1_relay_data(c1_relay_t *r, const unsigned char *ev, size_t len)
{
    int                   rc;
    const unsigned char  *nl, *last;

    last = ev + len;

    for ( ;; ) {
        nl = memchr(ev, '\n', last - ev);

        rc = c1_buf_append(&r->out, "data: ", 6);

        if (rc == C1_OK) {
            rc = c1_buf_append(&r->out, ev, (nl ? nl : last) - ev);
        }

        if (rc != C1_OK) {
            return rc;
        }

        if (nl == NULL) {
            break;
        }

        rc = c1_buf_append(&r->out, "\n", 1);
        if (rc != C1_OK) {
            return rc;
        }

        ev = nl + 1;
    }

    return c1_buf_append(&r->out, "\n\n", 2);
}

