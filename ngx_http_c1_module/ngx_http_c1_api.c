
/*
 * ngx_http_c1_module: the thread API's bodies and titles.
 *
 * What a client sends to create a thread, rename it and replace one of
 * its messages, checked and read with cJSON; the title a thread takes
 * from its first user message; ids and times as the answers show them;
 * the answers themselves.  No nginx ties, so that it is unit-tested and
 * fuzzed alone.
 */


#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>

#include "ngx_http_c1_json.h"
#include "ngx_http_c1_history.h"
#include "ngx_http_c1_api.h"


#define C1_BAD_REQUEST(err, code, param, ...)                                 \
    c1_error_set(err, 400, "invalid_request_error", code, param, __VA_ARGS__)

#define C1_CONTENT_OPEN      "<content thesys=\"true\">"
#define C1_CONTENT_CLOSE     "</content>"
#define C1_NEW_THREAD        "New thread"

/* 9999-12-31T23:59:59.999Z, the last time the format can show */
#define C1_TIME_MAX_MS       253402300799999ULL


static size_t c1_entity(const unsigned char *p, size_t len, uint32_t *cp);
static size_t c1_utf8_put(uint32_t cp, unsigned char *out);
static uint32_t c1_utf8_get(const unsigned char *p, size_t n);
static int c1_space(uint32_t cp);
static int c1_api_root(const unsigned char *in, size_t len, int empty,
    c1_api_body_t *b, c1_error_t *err);
static int c1_api_title(cJSON *root, int required, c1_api_body_t *b,
    c1_error_t *err);
static int c1_api_messages(cJSON *messages, c1_api_body_t *b,
    c1_error_t *err);
static int c1_api_parts(cJSON *m, cJSON *content, int i, c1_str_t *first,
    c1_error_t *err);
static cJSON *c1_api_thread_json(const c1_api_thread_t *t);
static cJSON *c1_api_msg_json(const c1_api_msg_t *m);
static char *c1_api_print(cJSON *json, size_t *len);


static const struct {
    const char  *name;
    size_t       len;
    uint32_t     cp;
} c1_entities[] = {
    { "&amp;", 5, '&' },
    { "&lt;", 4, '<' },
    { "&gt;", 4, '>' },
    { "&quot;", 6, '"' },
    { "&apos;", 6, '\'' },
    { "&nbsp;", 6, 0xa0 },
};


/*
 * One pass over the content: each code point (an entity decoded, bytes
 * that are not UTF-8 dropped) goes out unless it is whitespace; a run of
 * whitespace between two others becomes one space; a NUL byte is dropped
 * too.  It stops at
 * C1_TITLE_AUTO_MAX code points, so a long content costs no more than a
 * short one.
 */

size_t
c1_title_from_content(const unsigned char *in, size_t len,
    unsigned char *out)
{
    int        space;
    size_t     s, e, n, o, count;
    uint32_t   cp;

    static const size_t  olen = sizeof(C1_CONTENT_OPEN) - 1;
    static const size_t  clen = sizeof(C1_CONTENT_CLOSE) - 1;

    /* <content thesys="true">...</content>, whitespace around it */

    s = 0;
    e = len;

    while (s < e && in[s] < 0x80 && c1_space(in[s])) {
        s++;
    }

    while (e > s && in[e - 1] < 0x80 && c1_space(in[e - 1])) {
        e--;
    }

    if (e - s >= olen + clen
        && memcmp(in + s, C1_CONTENT_OPEN, olen) == 0
        && memcmp(in + e - clen, C1_CONTENT_CLOSE, clen) == 0)
    {
        s += olen;
        e -= clen;
    }

    o = 0;
    count = 0;
    space = 0;

    while (s < e && count < C1_TITLE_AUTO_MAX) {

        if (in[s] == '&' && (n = c1_entity(in + s, e - s, &cp)) != 0) {
            s += n;

        } else if (in[s] == '\0') {
            s++;                 /* no NUL in a title: dropped */
            continue;

        } else if (in[s] < 0x80) {
            cp = in[s++];

        } else {
            n = c1_utf8_seq(in + s, e - s);

            if (n == 0) {
                s++;             /* not UTF-8: dropped */
                continue;
            }

            cp = c1_utf8_get(in + s, n);
            s += n;
        }

        if (c1_space(cp)) {
            space = (count > 0);
            continue;
        }

        if (space) {

            /* a title never ends in a space: the cut falls before it */

            if (count + 1 == C1_TITLE_AUTO_MAX) {
                break;
            }

            out[o++] = ' ';
            space = 0;
            count++;
        }

        o += c1_utf8_put(cp, out + o);
        count++;
    }

    if (o == 0) {
        memcpy(out, C1_NEW_THREAD, sizeof(C1_NEW_THREAD) - 1);
        return sizeof(C1_NEW_THREAD) - 1;
    }

    return o;
}


/*
 * The entity at p (p[0] is '&'): its length, and its code point in cp;
 * 0 when it is none of those decoded, or names no valid code point.
 */

static size_t
c1_entity(const unsigned char *p, size_t len, uint32_t *cp)
{
    int       hex;
    size_t    i, k, start;
    uint32_t  v, d;

    for (k = 0; k < sizeof(c1_entities) / sizeof(c1_entities[0]); k++) {
        if (len >= c1_entities[k].len
            && memcmp(p, c1_entities[k].name, c1_entities[k].len) == 0)
        {
            *cp = c1_entities[k].cp;
            return c1_entities[k].len;
        }
    }

    /* &#NNN; and &#xHH; */

    if (len < 4 || p[1] != '#') {
        return 0;
    }

    hex = (p[2] == 'x' || p[2] == 'X');
    start = hex ? 3 : 2;
    v = 0;

    for (i = start; i < len; i++) {

        if (p[i] >= '0' && p[i] <= '9') {
            d = p[i] - '0';

        } else if (hex && p[i] >= 'a' && p[i] <= 'f') {
            d = p[i] - 'a' + 10;

        } else if (hex && p[i] >= 'A' && p[i] <= 'F') {
            d = p[i] - 'A' + 10;

        } else {
            break;
        }

        /* past U+10FFFF it stays past, however many digits follow */

        v = (v > 0x10ffff) ? v : v * (hex ? 16 : 10) + d;
    }

    if (i == start || i == len || p[i] != ';') {
        return 0;
    }

    if (v == 0 || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
        return 0;
    }

    *cp = v;

    return i + 1;
}


static int
c1_space(uint32_t cp)
{
    return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r'
           || cp == '\f' || cp == '\v' || cp == 0xa0;
}


/* a valid sequence of n bytes (c1_utf8_seq()) as its code point */

static uint32_t
c1_utf8_get(const unsigned char *p, size_t n)
{
    size_t    k;
    uint32_t  cp;

    cp = p[0] & (0x7f >> n);

    for (k = 1; k < n; k++) {
        cp = (cp << 6) | (p[k] & 0x3f);
    }

    return cp;
}


static size_t
c1_utf8_put(uint32_t cp, unsigned char *out)
{
    if (cp < 0x80) {
        out[0] = (unsigned char) cp;
        return 1;
    }

    if (cp < 0x800) {
        out[0] = (unsigned char) (0xc0 | (cp >> 6));
        out[1] = (unsigned char) (0x80 | (cp & 0x3f));
        return 2;
    }

    if (cp < 0x10000) {
        out[0] = (unsigned char) (0xe0 | (cp >> 12));
        out[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
        out[2] = (unsigned char) (0x80 | (cp & 0x3f));
        return 3;
    }

    out[0] = (unsigned char) (0xf0 | (cp >> 18));
    out[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3f));
    out[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
    out[3] = (unsigned char) (0x80 | (cp & 0x3f));
    return 4;
}


int
c1_title_valid(const unsigned char *p, size_t len)
{
    int     blank;
    size_t  i, n, count;

    if (len == 0 || len > C1_TITLE_BYTES) {
        return 0;
    }

    if (memchr(p, '\0', len) != NULL || !c1_utf8_valid(p, len)) {
        return 0;
    }

    count = 0;
    blank = 1;

    for (i = 0; i < len; i += n) {

        if (p[i] < 0x80) {
            n = 1;

            if (!c1_space(p[i])) {
                blank = 0;
            }

        } else {
            n = c1_utf8_seq(p + i, len - i);

            if (!(n == 2 && p[i] == 0xc2 && p[i + 1] == 0xa0)) {
                blank = 0;
            }
        }

        count++;
    }

    return count <= C1_TITLE_MAX && !blank;
}


void
c1_time_iso(uint64_t ms, char *out)
{
    char       buf[64];
    time_t     sec;
    struct tm  tm;

    if (ms > C1_TIME_MAX_MS) {
        ms = C1_TIME_MAX_MS;
    }

    sec = (time_t) (ms / 1000);

    if (gmtime_r(&sec, &tm) == NULL) {
        memcpy(out, "1970-01-01T00:00:00.000Z", C1_ISO_TIME_LEN);
        return;
    }

    snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned) (ms % 1000));

    memcpy(out, buf, C1_ISO_TIME_LEN);
}


int
c1_uuid(char *out)
{
    size_t          i, k, got;
    ssize_t         n;
    unsigned char   r[16];

    static const char  hex[] = "0123456789abcdef";

    for (got = 0; got < sizeof(r); got += n) {
        n = getrandom(r + got, sizeof(r) - got, 0);

        if (n < 0) {
            if (errno == EINTR) {
                n = 0;
                continue;
            }

            return C1_ERROR;
        }
    }

    r[6] = (r[6] & 0x0f) | 0x40;         /* version 4 */
    r[8] = (r[8] & 0x3f) | 0x80;         /* variant 10 */

    for (i = 0, k = 0; i < sizeof(r); i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[k++] = '-';
        }

        out[k++] = hex[r[i] >> 4];
        out[k++] = hex[r[i] & 0x0f];
    }

    return C1_OK;
}


/* POST create: {"messages": [...]?, "title"?}; an empty body is {} */

int
c1_api_parse_create(const unsigned char *in, size_t len, c1_api_body_t *b,
    c1_error_t *err)
{
    int     rc;
    cJSON  *root, *messages;

    rc = c1_api_root(in, len, 1, b, err);
    if (rc != C1_OK) {
        return rc;
    }

    root = b->root;

    messages = cJSON_GetObjectItemCaseSensitive(root, "messages");

    if (messages != NULL && !cJSON_IsNull(messages)) {
        rc = c1_api_messages(messages, b, err);
        if (rc != C1_OK) {
            goto failed;
        }
    }

    rc = c1_api_title(root, 0, b, err);
    if (rc != C1_OK) {
        goto failed;
    }

    return C1_OK;

failed:

    c1_api_body_free(b);

    return rc;
}


/* PATCH update/ID: the thread object; only "title" is read, and needed */

int
c1_api_parse_update(const unsigned char *in, size_t len, c1_api_body_t *b,
    c1_error_t *err)
{
    int  rc;

    rc = c1_api_root(in, len, 0, b, err);
    if (rc != C1_OK) {
        return rc;
    }

    rc = c1_api_title(b->root, 1, b, err);
    if (rc != C1_OK) {
        c1_api_body_free(b);
        return rc;
    }

    return C1_OK;
}


/* PUT message/ID: {"id", "role"?, "content"} */

int
c1_api_parse_message(const unsigned char *in, size_t len, c1_api_body_t *b,
    c1_error_t *err)
{
    int     rc;
    cJSON  *root, *id, *role, *content;

    rc = c1_api_root(in, len, 0, b, err);
    if (rc != C1_OK) {
        return rc;
    }

    root = b->root;

    id = cJSON_GetObjectItemCaseSensitive(root, "id");

    if (!cJSON_IsString(id)
        || !c1_thread_id_valid((unsigned char *) id->valuestring,
                               strlen(id->valuestring)))
    {
        C1_BAD_REQUEST(err, "invalid_message_id", "id",
                       "\"id\" must be 1 to 128 printable ASCII characters");
        goto failed;
    }

    role = cJSON_GetObjectItemCaseSensitive(root, "role");

    if (role != NULL && !cJSON_IsNull(role)) {
        if (!cJSON_IsString(role)
            || (strcmp(role->valuestring, "user") != 0
                && strcmp(role->valuestring, "assistant") != 0))
        {
            C1_BAD_REQUEST(err, "invalid_message", "role",
                           "\"role\" must be \"user\" or \"assistant\"");
            goto failed;
        }

        b->role.data = (unsigned char *) role->valuestring;
        b->role.len = strlen(role->valuestring);
    }

    content = cJSON_GetObjectItemCaseSensitive(root, "content");

    if (!cJSON_IsString(content)) {
        C1_BAD_REQUEST(err, "invalid_message", "content",
                       "\"content\" must be a string");
        goto failed;
    }

    b->id.data = (unsigned char *) id->valuestring;
    b->id.len = strlen(id->valuestring);
    b->content.data = (unsigned char *) content->valuestring;
    b->content.len = strlen(content->valuestring);

    return C1_OK;

failed:

    c1_api_body_free(b);

    return C1_ERROR;
}


void
c1_api_body_free(c1_api_body_t *b)
{
    cJSON_Delete(b->root);
    memset(b, 0, sizeof(c1_api_body_t));
}


static int
c1_api_root(const unsigned char *in, size_t len, int empty, c1_api_body_t *b,
    c1_error_t *err)
{
    cJSON       *root;
    const char  *problem;

    memset(b, 0, sizeof(c1_api_body_t));

    if (len == 0 && empty) {
        b->root = cJSON_CreateObject();
        return b->root ? C1_OK : C1_NOMEM;
    }

    root = c1_json_parse(in, len, &problem);
    if (root == NULL) {
        C1_BAD_REQUEST(err, "invalid_json", NULL, "the request body %s",
                       problem);
        return C1_ERROR;
    }

    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        C1_BAD_REQUEST(err, "invalid_body", NULL,
                       "the request body must be a JSON object");
        return C1_ERROR;
    }

    b->root = root;

    return C1_OK;
}


static int
c1_api_title(cJSON *root, int required, c1_api_body_t *b, c1_error_t *err)
{
    cJSON   *title;
    size_t   len;

    title = cJSON_GetObjectItemCaseSensitive(root, "title");

    if (title == NULL || cJSON_IsNull(title)) {
        if (!required) {
            return C1_OK;
        }

        C1_BAD_REQUEST(err, "invalid_title", "title",
                       "\"title\" is required");
        return C1_ERROR;
    }

    len = cJSON_IsString(title) ? strlen(title->valuestring) : 0;

    if (!cJSON_IsString(title)
        || !c1_title_valid((unsigned char *) title->valuestring, len))
    {
        C1_BAD_REQUEST(err, "invalid_title", "title",
                       "\"title\" must be a string of 1 to %d characters, "
                       "not blank", C1_TITLE_MAX);
        return C1_ERROR;
    }

    b->title.data = (unsigned char *) title->valuestring;
    b->title.len = len;

    return C1_OK;
}


/*
 * create's "messages": objects, each "id" a valid message id if given;
 * the first with the role "user" gives the content the title comes from.
 */

static int
c1_api_messages(cJSON *messages, c1_api_body_t *b, c1_error_t *err)
{
    int     i, rc;
    cJSON  *m, *id, *role, *content;

    if (!cJSON_IsArray(messages)) {
        C1_BAD_REQUEST(err, "invalid_body", "messages",
                       "\"messages\" must be an array");
        return C1_ERROR;
    }

    i = 0;

    cJSON_ArrayForEach(m, messages) {

        if (!cJSON_IsObject(m)) {
            C1_BAD_REQUEST(err, "invalid_body", "messages",
                           "messages[%d] is not an object", i);
            return C1_ERROR;
        }

        id = cJSON_GetObjectItemCaseSensitive(m, "id");

        if (cJSON_IsNull(id)) {
            id = NULL;
        }

        if (id != NULL
            && (!cJSON_IsString(id)
                || !c1_thread_id_valid((unsigned char *) id->valuestring,
                                       strlen(id->valuestring))))
        {
            C1_BAD_REQUEST(err, "invalid_message_id", "id",
                           "messages[%d].id must be 1 to 128 printable "
                           "ASCII characters", i);
            return C1_ERROR;
        }

        role = cJSON_GetObjectItemCaseSensitive(m, "role");

        if (role != NULL && !cJSON_IsNull(role) && !cJSON_IsString(role)) {
            C1_BAD_REQUEST(err, "invalid_message", "role",
                           "messages[%d].role must be a string", i);
            return C1_ERROR;
        }

        if (b->first.data == NULL
            && cJSON_IsString(role) && strcmp(role->valuestring, "user") == 0)
        {
            content = cJSON_GetObjectItemCaseSensitive(m, "content");

            if (cJSON_IsString(content)) {
                b->first.data = (unsigned char *) content->valuestring;
                b->first.len = strlen(content->valuestring);

            } else if (cJSON_IsArray(content)) {
                rc = c1_api_parts(m, content, i, &b->first, err);
                if (rc != C1_OK) {
                    return rc;
                }

            } else {
                C1_BAD_REQUEST(err, "invalid_message", "content",
                               "messages[%d].content must be a string or "
                               "an array of content parts", i);
                return C1_ERROR;
            }

            if (id != NULL) {
                b->first_id.data = (unsigned char *) id->valuestring;
                b->first_id.len = strlen(id->valuestring);
            }
        }

        i++;
    }

    return C1_OK;
}


/*
 * An array content: its {"type": "text", "text"} parts joined by "\n"
 * (other parts, images and the like, are skipped), put in the tree in
 * place of the array so that it lives as long as the body.
 */

static int
c1_api_parts(cJSON *m, cJSON *content, int i, c1_str_t *first,
    c1_error_t *err)
{
    char    *p;
    size_t   size, len, n;
    cJSON   *part, *type, *text, *joined;

    size = 1;

    cJSON_ArrayForEach(part, content) {
        type = cJSON_IsObject(part)
               ? cJSON_GetObjectItemCaseSensitive(part, "type") : NULL;

        if (!cJSON_IsString(type)) {
            C1_BAD_REQUEST(err, "invalid_message", "content",
                           "messages[%d].content must be a string or an "
                           "array of {\"type\", ...} parts", i);
            return C1_ERROR;
        }

        if (strcmp(type->valuestring, "text") != 0) {
            continue;
        }

        text = cJSON_GetObjectItemCaseSensitive(part, "text");

        if (!cJSON_IsString(text)) {
            C1_BAD_REQUEST(err, "invalid_message", "content",
                           "messages[%d].content has a text part whose "
                           "\"text\" is not a string", i);
            return C1_ERROR;
        }

        size += strlen(text->valuestring) + 1;
    }

    p = malloc(size);
    if (p == NULL) {
        return C1_NOMEM;
    }

    len = 0;

    cJSON_ArrayForEach(part, content) {
        type = cJSON_GetObjectItemCaseSensitive(part, "type");

        if (strcmp(type->valuestring, "text") != 0) {
            continue;
        }

        text = cJSON_GetObjectItemCaseSensitive(part, "text");

        if (len > 0) {
            p[len++] = '\n';
        }

        n = strlen(text->valuestring);
        memcpy(p + len, text->valuestring, n);
        len += n;
    }

    p[len] = '\0';

    joined = cJSON_CreateString(p);
    free(p);

    if (joined == NULL) {
        return C1_NOMEM;
    }

    /* the array goes with it: type and text are not used past here */

    if (!cJSON_ReplaceItemInObjectCaseSensitive(m, "content", joined)) {
        cJSON_Delete(joined);
        return C1_NOMEM;
    }

    first->data = (unsigned char *) joined->valuestring;
    first->len = len;

    return C1_OK;
}


char *
c1_api_render_thread(const c1_api_thread_t *t, size_t *len)
{
    return c1_api_print(c1_api_thread_json(t), len);
}


char *
c1_api_render_list(const c1_api_thread_t *t, size_t n,
    const c1_str_t *next_cursor, size_t *len)
{
    size_t   i;
    cJSON   *root, *arr, *item;

    root = cJSON_CreateObject();
    if (root == NULL) {
        return NULL;
    }

    arr = cJSON_AddArrayToObject(root, "threads");
    if (arr == NULL) {
        goto failed;
    }

    for (i = 0; i < n; i++) {
        item = c1_api_thread_json(&t[i]);
        if (item == NULL) {
            goto failed;
        }

        cJSON_AddItemToArray(arr, item);
    }

    if (next_cursor != NULL) {
        item = c1_json_string(next_cursor);
        if (item == NULL) {
            goto failed;
        }

        cJSON_AddItemToObject(root, "nextCursor", item);
    }

    return c1_api_print(root, len);

failed:

    cJSON_Delete(root);

    return NULL;
}


char *
c1_api_render_messages(const c1_api_msg_t *m, size_t n, size_t *len)
{
    size_t   i;
    cJSON   *arr, *item;

    arr = cJSON_CreateArray();
    if (arr == NULL) {
        return NULL;
    }

    for (i = 0; i < n; i++) {
        item = c1_api_msg_json(&m[i]);
        if (item == NULL) {
            cJSON_Delete(arr);
            return NULL;
        }

        cJSON_AddItemToArray(arr, item);
    }

    return c1_api_print(arr, len);
}


char *
c1_api_render_message(const c1_api_msg_t *m, size_t *len)
{
    return c1_api_print(c1_api_msg_json(m), len);
}


static cJSON *
c1_api_thread_json(const c1_api_thread_t *t)
{
    char    created[C1_ISO_TIME_LEN + 1], updated[C1_ISO_TIME_LEN + 1];
    cJSON  *obj, *id, *title;

    c1_time_iso(t->created, created);
    created[C1_ISO_TIME_LEN] = '\0';
    c1_time_iso(t->updated, updated);
    updated[C1_ISO_TIME_LEN] = '\0';

    obj = cJSON_CreateObject();
    if (obj == NULL) {
        return NULL;
    }

    id = c1_json_string(&t->id);
    if (id == NULL) {
        goto failed;
    }

    cJSON_AddItemToObject(obj, "id", id);

    title = c1_json_string(&t->title);
    if (title == NULL) {
        goto failed;
    }

    cJSON_AddItemToObject(obj, "title", title);

    if (cJSON_AddStringToObject(obj, "createdAt", created) == NULL
        || cJSON_AddStringToObject(obj, "updatedAt", updated) == NULL)
    {
        goto failed;
    }

    return obj;

failed:

    cJSON_Delete(obj);

    return NULL;
}


static cJSON *
c1_api_msg_json(const c1_api_msg_t *m)
{
    cJSON  *obj, *id, *content;

    obj = cJSON_CreateObject();
    if (obj == NULL) {
        return NULL;
    }

    id = c1_json_string(&m->id);
    if (id == NULL) {
        goto failed;
    }

    cJSON_AddItemToObject(obj, "id", id);

    if (cJSON_AddStringToObject(obj, "role", m->role) == NULL) {
        goto failed;
    }

    content = c1_json_string(&m->content);
    if (content == NULL) {
        goto failed;
    }

    cJSON_AddItemToObject(obj, "content", content);

    return obj;

failed:

    cJSON_Delete(obj);

    return NULL;
}


/* prints and frees json (NULL: no memory) */

static char *
c1_api_print(cJSON *json, size_t *len)
{
    char  *out;

    if (json == NULL) {
        return NULL;
    }

    out = cJSON_PrintUnformatted(json);
    cJSON_Delete(json);

    if (out != NULL) {
        *len = strlen(out);
    }

    return out;
}
