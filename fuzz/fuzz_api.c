
/*
 * libFuzzer harness: the thread API's bodies and titles.  Input: any
 * bytes, read as a create, an update and a message body, and as the
 * content a title is derived from.  A derived title must be valid UTF-8
 * of 1 to 80 code points, collapsed and trimmed; what a parser takes must
 * be what it promises; what is rendered must read back as it was.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ngx_http_c1_proto.h"
#include "ngx_http_c1_history.h"
#include "ngx_http_c1_api.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static size_t
count_chars(const unsigned char *p, size_t len)
{
    size_t  i, n;

    for (i = 0, n = 0; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            n++;
        }
    }

    return n;
}


static void
check_title(const unsigned char *in, size_t len)
{
    size_t         n, i;
    unsigned char  out[C1_TITLE_AUTO_MAX * 4 + 16];

    memset(out, 0xee, sizeof(out));

    n = c1_title_from_content(in, len, out);

    if (n == 0 || n > C1_TITLE_AUTO_MAX * 4 || out[n] != 0xee
        || !c1_utf8_valid(out, n) || count_chars(out, n) > C1_TITLE_AUTO_MAX)
    {
        abort();
    }

    /* collapsed and trimmed at the start: no other whitespace, no run */

    if (out[0] == ' ') {
        abort();
    }

    for (i = 0; i < n; i++) {
        if (out[i] == '\t' || out[i] == '\n' || out[i] == '\r'
            || out[i] == '\f' || out[i] == '\v' || out[i] == '\0'
            || (out[i] == ' ' && i + 1 < n && out[i + 1] == ' ')
            || (out[i] == 0xc2 && i + 1 < n && out[i + 1] == 0xa0))
        {
            abort();
        }
    }

    /* never a trailing space, even where the cut fell on one */

    if (out[n - 1] == ' ') {
        abort();
    }
}


static void
check_string(const c1_str_t *s)
{
    if (s->data != NULL
        && (s->data[s->len] != '\0' || memchr(s->data, '\0', s->len)
            || !c1_utf8_valid(s->data, s->len)))
    {
        abort();
    }
}


/* the value of name in the rendered JSON is s again */

static void
check_render(char *out, size_t len, const char *name, const c1_str_t *s)
{
    cJSON  *json, *v;

    if (out == NULL) {
        return;
    }

    if (len != strlen(out)) {
        abort();
    }

    json = cJSON_ParseWithLength(out, len);
    v = cJSON_GetObjectItemCaseSensitive(json, name);

    if (!cJSON_IsString(v) || strlen(v->valuestring) != s->len
        || memcmp(v->valuestring, s->data, s->len) != 0)
    {
        abort();
    }

    cJSON_Delete(json);
    c1_free(out);
}


static void
check_error(int rc, const c1_api_body_t *b, const c1_error_t *err)
{
    char    *out;
    size_t   len;
    cJSON   *json;

    if (rc == C1_NOMEM) {
        return;
    }

    if (rc != C1_ERROR || b->root != NULL || err->status != 400
        || err->code == NULL)
    {
        abort();
    }

    out = c1_error_render(err, &len);
    json = out ? cJSON_Parse(out) : NULL;

    if (out && !cJSON_IsObject(json)) {
        abort();
    }

    cJSON_Delete(json);
    c1_free(out);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int               rc;
    char             *out;
    size_t            len;
    uint64_t          ms;
    c1_error_t        err;
    c1_api_msg_t      m;
    c1_api_body_t     b;
    c1_api_thread_t   t;
    char              iso[C1_ISO_TIME_LEN];

    check_title(data, size);

    if (c1_title_valid(data, size)
        && (memchr(data, '\0', size) || !c1_utf8_valid(data, size)
            || count_chars(data, size) > C1_TITLE_MAX))
    {
        abort();
    }

    if (size >= 8) {
        memcpy(&ms, data, 8);
        c1_time_iso(ms, iso);

        if (iso[4] != '-' || iso[10] != 'T' || iso[19] != '.'
            || iso[23] != 'Z')
        {
            abort();
        }
    }

    memset(&t, 0, sizeof(t));
    t.id.data = (const unsigned char *) "t";
    t.id.len = 1;

    /* create */

    rc = c1_api_parse_create(data, size, &b, &err);

    if (rc == C1_OK) {
        check_string(&b.title);
        check_string(&b.first);

        if ((b.title.data && !c1_title_valid(b.title.data, b.title.len))
            || (b.first_id.data
                && !c1_thread_id_valid(b.first_id.data, b.first_id.len))
            || (b.first_id.data && b.first.data == NULL))
        {
            abort();
        }

        if (b.first.data) {
            check_title(b.first.data, b.first.len);
        }

        if (b.title.data) {
            t.title = b.title;
            out = c1_api_render_thread(&t, &len);
            check_render(out, len, "title", &b.title);
        }

        c1_api_body_free(&b);

    } else {
        check_error(rc, &b, &err);
    }

    /* update */

    rc = c1_api_parse_update(data, size, &b, &err);

    if (rc == C1_OK) {
        check_string(&b.title);

        if (b.title.data == NULL
            || !c1_title_valid(b.title.data, b.title.len))
        {
            abort();
        }

        c1_api_body_free(&b);

    } else {
        check_error(rc, &b, &err);
    }

    /* message */

    rc = c1_api_parse_message(data, size, &b, &err);

    if (rc == C1_OK) {
        check_string(&b.content);
        check_string(&b.role);

        if (b.content.data == NULL
            || !c1_thread_id_valid(b.id.data, b.id.len)
            || (b.role.data
                && strcmp((char *) b.role.data, "user") != 0
                && strcmp((char *) b.role.data, "assistant") != 0))
        {
            abort();
        }

        m.id = b.id;
        m.role = b.role.data ? (const char *) b.role.data : "user";
        m.content = b.content;

        out = c1_api_render_message(&m, &len);
        check_render(out, len, "content", &b.content);

        c1_api_body_free(&b);

    } else {
        check_error(rc, &b, &err);
    }

    return 0;
}
