
/*
 * ngx_http_c1_module: JSON helpers shared by the protocol units:
 * strict parsing, UTF-8 checks and OpenAI-style error bodies.
 */


#ifndef _GNU_SOURCE
#define _GNU_SOURCE              /* memmem() */
#endif

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_c1_json.h"


void
c1_free(void *p)
{
    free(p);
}


int
c1_utf8_valid(const unsigned char *p, size_t len)
{
    size_t    i, n;
    uint64_t  w;

    i = 0;

    while (i < len) {

        /* ASCII, eight bytes at a time */

        while (len - i >= 8) {
            memcpy(&w, p + i, 8);

            if (w & 0x8080808080808080ULL) {
                break;
            }

            i += 8;
        }

        if (i == len) {
            break;
        }

        if (p[i] < 0x80) {
            i++;
            continue;
        }

        n = c1_utf8_seq(p + i, len - i);
        if (n == 0) {
            return 0;
        }

        i += n;
    }

    return 1;
}


/*
 * The length of the UTF-8 sequence at p, whose first byte is from 0x80 up:
 * 0 if it is not a valid one (cut short, overlong, a surrogate, past
 * U+10FFFF).
 */

size_t
c1_utf8_seq(const unsigned char *p, size_t len)
{
    size_t          n, k;
    unsigned char   c;
    unsigned long   cp, min;

    c = p[0];

    if ((c & 0xe0) == 0xc0) {
        n = 1;
        cp = c & 0x1f;
        min = 0x80;

    } else if ((c & 0xf0) == 0xe0) {
        n = 2;
        cp = c & 0x0f;
        min = 0x800;

    } else if ((c & 0xf8) == 0xf0) {
        n = 3;
        cp = c & 0x07;
        min = 0x10000;

    } else {
        return 0;
    }

    if (len <= n) {
        return 0;
    }

    for (k = 1; k <= n; k++) {
        c = p[k];

        if ((c & 0xc0) != 0x80) {
            return 0;
        }

        cp = (cp << 6) | (c & 0x3f);
    }

    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }

    return n + 1;
}


/*
 * cJSON keeps strings NUL-terminated, so a "\u0000" escape would silently
 * cut a string short: find one so that the caller can refuse it instead.
 */

static int
c1_json_has_nul_escape(const unsigned char *p, size_t len)
{
    size_t  i;
    int     in_string;

    /* the common case: no "\u0000" text anywhere */

    if (memmem(p, len, "\\u0000", 6) == NULL) {
        return 0;
    }

    in_string = 0;

    for (i = 0; i < len; i++) {

        if (!in_string) {
            if (p[i] == '"') {
                in_string = 1;
            }

            continue;
        }

        if (p[i] == '"') {
            in_string = 0;
            continue;
        }

        if (p[i] != '\\' || i + 1 >= len) {
            continue;
        }

        i++;

        if (p[i] == 'u' && i + 4 < len
            && p[i + 1] == '0' && p[i + 2] == '0'
            && p[i + 3] == '0' && p[i + 4] == '0')
        {
            return 1;
        }
    }

    return 0;
}


cJSON *
c1_json_parse(const unsigned char *in, size_t len, const char **problem)
{
    size_t       i;
    cJSON       *json;
    const char  *end;

    if (len == 0) {
        *problem = "is empty";
        return NULL;
    }

    if (memchr(in, '\0', len) != NULL) {
        *problem = "contains a NUL byte";
        return NULL;
    }

    if (!c1_utf8_valid(in, len)) {
        *problem = "is not valid UTF-8";
        return NULL;
    }

    if (c1_json_has_nul_escape(in, len)) {
        *problem = "contains a \\u0000 character, which is not supported";
        return NULL;
    }

    end = NULL;
    json = cJSON_ParseWithLengthOpts((const char *) in, len, &end, 0);

    if (json == NULL) {
        *problem = "is not valid JSON";
        return NULL;
    }

    for (i = (const unsigned char *) end - in; i < len; i++) {
        if (in[i] != ' ' && in[i] != '\t' && in[i] != '\r' && in[i] != '\n') {
            cJSON_Delete(json);
            *problem = "is not valid JSON";
            return NULL;
        }
    }

    return json;
}


cJSON *
c1_json_string(const c1_str_t *s)
{
    char   *p;
    cJSON  *item;

    p = malloc(s->len + 1);
    if (p == NULL) {
        return NULL;
    }

    if (s->len) {
        memcpy(p, s->data, s->len);    /* an empty one may have no data */
    }

    p[s->len] = '\0';

    item = cJSON_CreateString(p);

    free(p);

    return item;
}


void
c1_error_set(c1_error_t *err, int status, const char *type, const char *code,
    const char *param, const char *fmt, ...)
{
    va_list  args;

    err->status = status;
    err->type = type;
    err->code = code;
    err->param = param;

    va_start(args, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, args);
    va_end(args);
}


char *
c1_error_render(const c1_error_t *err, size_t *len)
{
    char   *out;
    cJSON  *root, *e;

    root = cJSON_CreateObject();
    if (root == NULL) {
        return NULL;
    }

    e = cJSON_AddObjectToObject(root, "error");

    if (e == NULL
        || cJSON_AddStringToObject(e, "message", err->message) == NULL
        || cJSON_AddStringToObject(e, "type", err->type) == NULL
        || (err->param
            ? cJSON_AddStringToObject(e, "param", err->param)
            : cJSON_AddNullToObject(e, "param")) == NULL
        || cJSON_AddStringToObject(e, "code", err->code) == NULL)
    {
        cJSON_Delete(root);
        return NULL;
    }

    out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);

    if (out != NULL) {
        *len = strlen(out);
    }

    return out;
}


/* a token count from C1's usage object; -1 when it is not one */

long
c1_json_count(cJSON *obj, const char *name)
{
    cJSON  *n;

    n = cJSON_GetObjectItemCaseSensitive(obj, name);

    if (!cJSON_IsNumber(n) || n->valuedouble < 0 || n->valuedouble > 1e15) {
        return -1;
    }

    return (long) n->valuedouble;
}


/* a thread's messages as [{"role", "content"}, ...] */

char *
c1_turns_render(const c1_turn_t *turns, size_t n, size_t *len)
{
    char    *out;
    size_t   i;
    cJSON   *arr, *m, *content;

    arr = cJSON_CreateArray();
    if (arr == NULL) {
        return NULL;
    }

    for (i = 0; i < n; i++) {
        m = cJSON_CreateObject();
        if (m == NULL) {
            goto failed;
        }

        cJSON_AddItemToArray(arr, m);

        content = c1_json_string(&(c1_str_t) { turns[i].data, turns[i].len });

        if (content == NULL
            || cJSON_AddStringToObject(m, "role", turns[i].role) == NULL)
        {
            cJSON_Delete(content);
            goto failed;
        }

        cJSON_AddItemToObject(m, "content", content);
    }

    out = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);

    if (out != NULL) {
        *len = strlen(out);
    }

    return out;

failed:

    cJSON_Delete(arr);

    return NULL;
}
