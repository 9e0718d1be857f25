
/*
 * ngx_http_c1_module: a Server-Sent Events parser (WHATWG rules) fed in
 * pieces cut anywhere: inside a line, inside a UTF-8 sequence, between
 * '\r' and '\n'.  Lines end with "\r\n", "\n" or "\r"; "data:" lines make
 * the event, "id:", "event:", "retry:", unknown fields and ":" comments are
 * skipped; a blank line ends the event.  Only the data is handed on.
 */


#include <stdlib.h>
#include <string.h>

#include "ngx_http_c1_proto.h"


static int c1_sse_line(c1_sse_t *p, const unsigned char *line, size_t len,
    c1_sse_event_pt handler, void *data);
static const unsigned char *c1_sse_eol(const unsigned char *pos,
    const unsigned char *last);


/* room for len more bytes at b->data + b->len */

int
c1_buf_reserve(c1_buf_t *b, size_t len)
{
    size_t          cap;
    unsigned char  *p;

    if (b->len + len <= b->cap) {
        return C1_OK;
    }

    cap = b->cap ? b->cap * 2 : 256;

    while (cap < b->len + len) {
        cap *= 2;
    }

    p = realloc(b->data, cap);
    if (p == NULL) {
        return C1_NOMEM;
    }

    b->data = p;
    b->cap = cap;

    return C1_OK;
}


int
c1_buf_append(c1_buf_t *b, const void *data, size_t len)
{
    if (len == 0) {
        return C1_OK;
    }

    if (c1_buf_reserve(b, len) != C1_OK) {
        return C1_NOMEM;
    }

    memcpy(b->data + b->len, data, len);
    b->len += len;

    return C1_OK;
}


void
c1_buf_free(c1_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}


void
c1_sse_init(c1_sse_t *p, size_t max)
{
    memset(p, 0, sizeof(c1_sse_t));
    p->max = max;
}


void
c1_sse_free(c1_sse_t *p)
{
    c1_buf_free(&p->line);
    c1_buf_free(&p->event);
}


int
c1_sse_feed(c1_sse_t *p, const unsigned char *in, size_t len,
    c1_sse_event_pt handler, void *data)
{
    int                   rc;
    const unsigned char  *pos, *last, *eol;

    pos = in;
    last = in + len;

    if (pos < last && p->cr) {
        p->cr = 0;

        if (*pos == '\n') {
            pos++;
        }
    }

    while (pos < last) {

        eol = c1_sse_eol(pos, last);

        if (eol == last) {

            /* a line cut by the end of this piece: keep it */

            if (p->line.len + (last - pos) > p->max) {
                return C1_ERROR;
            }

            return c1_buf_append(&p->line, pos, last - pos);
        }

        if (p->line.len) {
            rc = c1_buf_append(&p->line, pos, eol - pos);
            if (rc != C1_OK) {
                return rc;
            }

            rc = c1_sse_line(p, p->line.data, p->line.len, handler, data);
            p->line.len = 0;

        } else {
            rc = c1_sse_line(p, pos, eol - pos, handler, data);
        }

        if (rc != C1_OK) {
            return rc;
        }

        if (*eol == '\r') {
            if (eol + 1 == last) {
                p->cr = 1;
                return C1_OK;
            }

            if (eol[1] == '\n') {
                eol++;
            }
        }

        pos = eol + 1;
    }

    return C1_OK;
}


/* the first '\n' or '\r' (memchr is vectorised), or last */

static const unsigned char *
c1_sse_eol(const unsigned char *pos, const unsigned char *last)
{
    const unsigned char  *lf, *cr;

    lf = memchr(pos, '\n', last - pos);
    cr = memchr(pos, '\r', (lf ? lf : last) - pos);

    return cr ? cr : (lf ? lf : last);
}


/* the stream ended: a last line or event with no blank line after it */

int
c1_sse_end(c1_sse_t *p, c1_sse_event_pt handler, void *data)
{
    int  rc;

    if (p->line.len) {
        rc = c1_sse_line(p, p->line.data, p->line.len, handler, data);
        p->line.len = 0;

        if (rc != C1_OK) {
            return rc;
        }
    }

    return c1_sse_line(p, (const unsigned char *) "", 0, handler, data);
}


static int
c1_sse_line(c1_sse_t *p, const unsigned char *line, size_t len,
    c1_sse_event_pt handler, void *data)
{
    int                   rc;
    size_t                n;
    const unsigned char  *colon, *value;

    /* a byte order mark may open the stream */

    if (!p->started) {
        p->started = 1;

        if (len >= 3 && line[0] == 0xef && line[1] == 0xbb && line[2] == 0xbf)
        {
            line += 3;
            len -= 3;
        }
    }

    if (len == 0) {

        /* the blank line: the event is complete */

        if (!p->has_data) {
            return C1_OK;
        }

        p->has_data = 0;
        n = p->event.len;
        p->event.len = 0;

        return handler(data, p->event.data, n);
    }

    if (line[0] == ':') {
        return C1_OK;
    }

    colon = memchr(line, ':', len);

    if (colon == NULL) {
        colon = line + len;
        value = line + len;

    } else {
        value = colon + 1;

        if (value < line + len && *value == ' ') {
            value++;
        }
    }

    if (colon - line != 4 || memcmp(line, "data", 4) != 0) {
        return C1_OK;
    }

    n = line + len - value;

    if (p->event.len + n + 1 > p->max) {
        return C1_ERROR;
    }

    if (p->has_data) {
        rc = c1_buf_append(&p->event, "\n", 1);
        if (rc != C1_OK) {
            return rc;
        }
    }

    p->has_data = 1;

    return c1_buf_append(&p->event, value, n);
}
