
/*
 * ngx_http_c1_module: a one-pass reader of C1's answers and stream events.
 *
 * It checks the whole text as it goes (RFC 8259 JSON, UTF-8), allocates
 * nothing and builds no tree, and keeps where the few values the module
 * reads are: choices[0].message.content (or .delta.content in a stream
 * event), the usage counts, and whether an "error" is there.  Like cJSON's
 * lookups, it takes the first of keys given twice.
 *
 * It reads a text only when it is sure to read it as cJSON would.  It
 * declines anything it finds invalid and what cJSON might read otherwise:
 * whitespace other than RFC 8259's, a key with an escape in an object it
 * looks into, a number longer than the 63 characters cJSON takes, nesting
 * deeper than C1_SCAN_DEPTH, "\u0000" (refused by c1_json_parse()).  The
 * caller then reads the text with cJSON, which also words the error.
 * fuzz/fuzz_scan.c checks that the two readings agree.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_c1_scan.h"

#if (defined(__SSE2__) && defined(__GNUC__))
#include <emmintrin.h>
#define C1_SCAN_SSE2       1
#endif


#define C1_SCAN_DEPTH      64
#define C1_SCAN_NUMBER     63      /* the longest number cJSON reads */

#define C1_ONES            0x0101010101010101ULL
#define C1_HIGHS           0x8080808080808080ULL


/* what a value is, by where it stands */
enum {
    C1_T_NONE = 0,
    C1_T_ROOT,
    C1_T_CHOICES,                  /* the first "choices" of the root */
    C1_T_CHOICE,                   /* choices[0] */
    C1_T_INNER,                    /* choices[0].message or .delta */
    C1_T_CONTENT,
    C1_T_USAGE,
    C1_T_ERROR,
    C1_T_PROMPT_TOKENS,
    C1_T_COMPLETION_TOKENS,
    C1_T_TOTAL_TOKENS
};


/* the keys looked at, by the object they are in */

typedef struct {
    unsigned              node;
    int                   inner;           /* -1: either */
    unsigned              target;
    size_t                len;
    const char           *name;
} c1_scan_key_t;


#define c1_scan_name(s)  sizeof(s) - 1, s

static const c1_scan_key_t  c1_scan_keys[] = {
    { C1_T_ROOT, -1, C1_T_CHOICES, c1_scan_name("choices") },
    { C1_T_ROOT, -1, C1_T_USAGE, c1_scan_name("usage") },
    { C1_T_ROOT, -1, C1_T_ERROR, c1_scan_name("error") },
    { C1_T_CHOICE, C1_SCAN_MESSAGE, C1_T_INNER, c1_scan_name("message") },
    { C1_T_CHOICE, C1_SCAN_DELTA, C1_T_INNER, c1_scan_name("delta") },
    { C1_T_INNER, -1, C1_T_CONTENT, c1_scan_name("content") },
    { C1_T_USAGE, -1, C1_T_PROMPT_TOKENS, c1_scan_name("prompt_tokens") },
    { C1_T_USAGE, -1, C1_T_COMPLETION_TOKENS,
      c1_scan_name("completion_tokens") },
    { C1_T_USAGE, -1, C1_T_TOTAL_TOKENS, c1_scan_name("total_tokens") },
    { 0, 0, 0, 0, NULL }
};


static const unsigned char *c1_scan_string(const unsigned char *p,
    const unsigned char *last, unsigned *escaped, unsigned char **d);
static unsigned char *c1_scan_utf8(unsigned char *o, unsigned long cp);
static const unsigned char *c1_scan_number(const unsigned char *p,
    const unsigned char *last);
static unsigned c1_scan_key(unsigned node, const unsigned char *key,
    size_t len, c1_scan_inner_e inner);
static long c1_scan_count(const unsigned char *p, size_t len);
static long c1_scan_hex4(const unsigned char *p, const unsigned char *last);


/* the bytes a string holds as they are: printable ASCII but '"' and '\' */

static const unsigned char  c1_scan_plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
};


#define c1_scan_ws(p, last)                                                   \
    while ((p) < (last)                                                       \
           && (*(p) == ' ' || *(p) == '\n' || *(p) == '\r' || *(p) == '\t'))  \
    {                                                                         \
        (p)++;                                                                \
    }


/*
 * With out given, the content goes there unescaped: it has room for len
 * bytes.  Returns C1_OK, or C1_DECLINED (out then holds nothing of use).
 */

int
c1_scan(const unsigned char *p, size_t len, c1_scan_inner_e inner,
    unsigned char *out, c1_scan_t *s)
{
    int                   depth;
    size_t                n;
    unsigned              target, escaped;
    unsigned char        *o;
    const char           *word;
    const unsigned char  *last, *start;
    unsigned char         closer[C1_SCAN_DEPTH];  /* '}' or ']' */
    unsigned char         node[C1_SCAN_DEPTH];   /* what the container is */
    uint16_t              seen[C1_SCAN_DEPTH];   /* its keys met, by target */

    memset(s, 0, sizeof(c1_scan_t));
    s->prompt_tokens = -1;
    s->completion_tokens = -1;
    s->total_tokens = -1;

    last = p + len;
    depth = -1;
    target = C1_T_ROOT;

    c1_scan_ws(p, last);

    if (p == last || *p != '{') {
        return C1_DECLINED;
    }

value:

    c1_scan_ws(p, last);

    if (p == last) {
        return C1_DECLINED;
    }

    if (target == C1_T_ERROR && *p != 'n') {
        s->error = 1;
    }

    switch (*p) {

    case '{':
    case '[':
        if (++depth == C1_SCAN_DEPTH) {
            return C1_DECLINED;
        }

        closer[depth] = *p + 2;        /* '{' + 2 is '}', '[' + 2 is ']' */
        seen[depth] = 0;

        if (*p == '{'
            && (target == C1_T_ROOT || target == C1_T_CHOICE
                || target == C1_T_INNER || target == C1_T_USAGE))
        {
            node[depth] = target;

        } else if (*p == '[' && target == C1_T_CHOICES) {
            node[depth] = target;

        } else {
            node[depth] = C1_T_NONE;
        }

        if (node[depth] == C1_T_CHOICE) {
            s->choice = 1;

        } else if (node[depth] == C1_T_USAGE) {
            s->usage = 1;
        }

        p++;
        c1_scan_ws(p, last);

        if (p == last) {
            return C1_DECLINED;
        }

        if (*p == closer[depth]) {
            p++;
            depth--;
            goto next;
        }

        if (closer[depth] == '}') {
            goto key;
        }

        target = (node[depth] == C1_T_CHOICES) ? C1_T_CHOICE : C1_T_NONE;
        goto value;

    case '"':
        o = (target == C1_T_CONTENT) ? out : NULL;
        start = p;

        p = c1_scan_string(p + 1, last, &escaped, &o);
        if (p == NULL) {
            return C1_DECLINED;
        }

        if (target == C1_T_CONTENT) {
            s->content = 1;
            s->content_len = out ? (size_t) (o - out) : 0;
            s->content_raw = (size_t) (p - start);
        }

        goto next;

    case 't':
    case 'f':
    case 'n':
        word = (*p == 't') ? "true" : (*p == 'f') ? "false" : "null";
        n = strlen(word);

        if ((size_t) (last - p) < n || memcmp(p, word, n) != 0) {
            return C1_DECLINED;
        }

        p += n;
        goto next;

    default:
        start = p;

        p = c1_scan_number(p, last);
        if (p == NULL || p - start > C1_SCAN_NUMBER) {
            return C1_DECLINED;
        }

        switch (target) {

        case C1_T_PROMPT_TOKENS:
            s->prompt_tokens = c1_scan_count(start, p - start);
            break;

        case C1_T_COMPLETION_TOKENS:
            s->completion_tokens = c1_scan_count(start, p - start);
            break;

        case C1_T_TOTAL_TOKENS:
            s->total_tokens = c1_scan_count(start, p - start);
            break;
        }

        goto next;
    }

next:

    c1_scan_ws(p, last);

    if (depth < 0) {
        return (p == last) ? C1_OK : C1_DECLINED;
    }

    if (p == last) {
        return C1_DECLINED;
    }

    if (*p == closer[depth]) {
        p++;
        depth--;
        goto next;
    }

    if (*p++ != ',') {
        return C1_DECLINED;
    }

    if (closer[depth] == ']') {
        target = C1_T_NONE;
        goto value;
    }

key:

    c1_scan_ws(p, last);

    if (p == last || *p != '"') {
        return C1_DECLINED;
    }

    start = p + 1;
    o = NULL;

    p = c1_scan_string(start, last, &escaped, &o);
    if (p == NULL) {
        return C1_DECLINED;
    }

    n = p - 1 - start;

    c1_scan_ws(p, last);

    if (p == last || *p++ != ':') {
        return C1_DECLINED;
    }

    target = C1_T_NONE;

    if (node[depth] != C1_T_NONE) {

        /* cJSON compares keys unescaped: leave such keys to it */

        if (escaped) {
            return C1_DECLINED;
        }

        target = c1_scan_key(node[depth], start, n, inner);

        if (target != C1_T_NONE) {
            if (seen[depth] & (1u << target)) {
                target = C1_T_NONE;

            } else {
                seen[depth] |= 1u << target;
            }
        }
    }

    goto value;
}


static unsigned
c1_scan_key(unsigned node, const unsigned char *key, size_t len,
    c1_scan_inner_e inner)
{
    const c1_scan_key_t  *k;

    for (k = c1_scan_keys; k->name; k++) {
        if (k->node == node && k->len == len
            && (k->inner < 0 || k->inner == (int) inner)
            && memcmp(k->name, key, len) == 0)
        {
            return k->target;
        }
    }

    return C1_T_NONE;
}


/*
 * From just after a string's opening quote: returns what follows its
 * closing quote, or NULL when the string is not valid or is one to leave
 * to cJSON.  With *d set, the string goes there unescaped and *d moves on;
 * it has room for as many bytes as the text has from p (never more are
 * written: a string never grows unescaped).
 */

static const unsigned char *
c1_scan_string(const unsigned char *p, const unsigned char *last,
    unsigned *escaped, unsigned char **d)
{
    long            cp, lo;
    size_t          n;
    unsigned char   c, *o;
#if (C1_SCAN_SSE2)
    unsigned        m;
    __m128i         v;
#else
    uint64_t        w, q, b;
#endif

    *escaped = 0;
    o = *d;

    for ( ;; ) {

#if (C1_SCAN_SSE2)

        /*
         * sixteen bytes at a time up to the first that is not plain,
         * stored whole: o is never further on than p, so they fit
         */

        while (last - p >= 16) {
            v = _mm_loadu_si128((const __m128i *) p);

            if (o) {
                _mm_storeu_si128((__m128i *) o, v);
            }

            /* signed: the bytes from 0x80 up are below 0x20 too */

            m = (unsigned) _mm_movemask_epi8(
                    _mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
                        _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                     _mm_cmpeq_epi8(v,
                                                    _mm_set1_epi8('\\')))));

            if (m) {
                m = __builtin_ctz(m);
                p += m;

                if (o) {
                    o += m;
                }

                break;
            }

            p += 16;

            if (o) {
                o += 16;
            }
        }

#else

        /* eight plain bytes at a time */

        while (last - p >= 8) {
            memcpy(&w, p, 8);

            q = w ^ (C1_ONES * '"');
            b = w ^ (C1_ONES * '\\');

            if (((q - C1_ONES) & ~q) & C1_HIGHS
                || ((b - C1_ONES) & ~b) & C1_HIGHS
                || ((w - C1_ONES * 0x20) | w) & C1_HIGHS)
            {
                break;
            }

            if (o) {
                memcpy(o, &w, 8);
                o += 8;
            }

            p += 8;
        }

#endif

        if (o) {
            while (p < last && c1_scan_plain[*p]) {
                *o++ = *p++;
            }

        } else {
            while (p < last && c1_scan_plain[*p]) {
                p++;
            }
        }

        if (p == last) {
            return NULL;
        }

        c = *p;

        if (c == '"') {
            *d = o;
            return p + 1;
        }

        if (c == '\\') {
            *escaped = 1;

            if (last - p < 2) {
                return NULL;
            }

            c = p[1];
            p += 2;

            switch (c) {

            case 'b':
                c = '\b';
                break;

            case 'f':
                c = '\f';
                break;

            case 'n':
                c = '\n';
                break;

            case 'r':
                c = '\r';
                break;

            case 't':
                c = '\t';
                break;

            case '"':
            case '\\':
            case '/':
                break;

            case 'u':
                cp = c1_scan_hex4(p, last);

                if (cp <= 0 || (cp >= 0xdc00 && cp <= 0xdfff)) {
                    return NULL;
                }

                p += 4;

                if (cp >= 0xd800 && cp <= 0xdbff) {

                    /* a surrogate pair */

                    if (last - p < 2 || p[0] != '\\' || p[1] != 'u') {
                        return NULL;
                    }

                    lo = c1_scan_hex4(p + 2, last);

                    if (lo < 0xdc00 || lo > 0xdfff) {
                        return NULL;
                    }

                    p += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }

                if (o) {
                    o = c1_scan_utf8(o, cp);
                }

                continue;

            default:
                return NULL;
            }

            if (o) {
                *o++ = c;
            }

            continue;
        }

        if (c < 0x80) {
            return NULL;               /* a control character */
        }

        /* a UTF-8 sequence, as c1_utf8_valid() checks it */

        n = c1_utf8_seq(p, last - p);
        if (n == 0) {
            return NULL;
        }

        if (o) {
            memcpy(o, p, n);
            o += n;
        }

        p += n;
    }
}


static unsigned char *
c1_scan_utf8(unsigned char *o, unsigned long cp)
{
    if (cp < 0x80) {
        *o++ = (unsigned char) cp;

    } else if (cp < 0x800) {
        *o++ = (unsigned char) (0xc0 | (cp >> 6));
        *o++ = (unsigned char) (0x80 | (cp & 0x3f));

    } else if (cp < 0x10000) {
        *o++ = (unsigned char) (0xe0 | (cp >> 12));
        *o++ = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
        *o++ = (unsigned char) (0x80 | (cp & 0x3f));

    } else {
        *o++ = (unsigned char) (0xf0 | (cp >> 18));
        *o++ = (unsigned char) (0x80 | ((cp >> 12) & 0x3f));
        *o++ = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
        *o++ = (unsigned char) (0x80 | (cp & 0x3f));
    }

    return o;
}


/* four hex digits; -1 if they are not */

static long
c1_scan_hex4(const unsigned char *p, const unsigned char *last)
{
    long           v;
    size_t         i;
    unsigned char  c;

    if (last - p < 4) {
        return -1;
    }

    v = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            v = v * 16 + (c - '0');

        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
            v = v * 16 + ((c | 0x20) - 'a' + 10);

        } else {
            return -1;
        }
    }

    return v;
}


/* -? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?, or NULL */

static const unsigned char *
c1_scan_number(const unsigned char *p, const unsigned char *last)
{
    if (p < last && *p == '-') {
        p++;
    }

    if (p == last) {
        return NULL;
    }

    if (*p == '0') {
        p++;

    } else if (*p >= '1' && *p <= '9') {
        while (p < last && *p >= '0' && *p <= '9') {
            p++;
        }

    } else {
        return NULL;
    }

    if (p < last && *p == '.') {
        p++;

        if (p == last || *p < '0' || *p > '9') {
            return NULL;
        }

        while (p < last && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < last && (*p == 'e' || *p == 'E')) {
        p++;

        if (p < last && (*p == '+' || *p == '-')) {
            p++;
        }

        if (p == last || *p < '0' || *p > '9') {
            return NULL;
        }

        while (p < last && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    return p;
}


/* a token count, as c1_json_count() takes it from cJSON's double */

static long
c1_scan_count(const unsigned char *p, size_t len)
{
    char    buf[C1_SCAN_NUMBER + 1];
    double  d;

    memcpy(buf, p, len);
    buf[len] = '\0';

    d = strtod(buf, NULL);

    if (d < 0 || d > 1e15) {
        return -1;
    }

    return (long) d;
}
