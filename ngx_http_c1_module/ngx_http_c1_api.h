
/*
 * ngx_http_c1_module: the thread API's bodies and titles, with no nginx
 * ties: parsing what a client sends to create, rename and edit threads,
 * titles derived from a first message, thread ids and times, and the
 * JSON answers.  Plain C and cJSON only.
 */


#ifndef _NGX_HTTP_C1_API_H_INCLUDED_
#define _NGX_HTTP_C1_API_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "ngx_http_c1_proto.h"


#define C1_TITLE_MAX        200     /* code points of a given title */
#define C1_TITLE_AUTO_MAX   80      /* code points of a derived title */
#define C1_TITLE_BYTES      (C1_TITLE_MAX * 4)
#define C1_ISO_TIME_LEN     24      /* "2026-12-01T23:46:28.123Z" */
#define C1_UUID_LEN         36


/*
 * The title of a thread from its first user message: the text inside
 * <content thesys="true">...</content> (else the whole content), HTML
 * entities decoded, whitespace collapsed and trimmed, cut at
 * C1_TITLE_AUTO_MAX code points.  Writes at most C1_TITLE_AUTO_MAX * 4
 * bytes of valid UTF-8 to out (bytes of the input that are not UTF-8 are
 * dropped), returns the length; "New thread" when nothing is left.
 */
size_t c1_title_from_content(const unsigned char *in, size_t len,
    unsigned char *out);

/*
 * A title given by a client: 1 to C1_TITLE_MAX code points of valid UTF-8,
 * no NUL, not blank after trimming.
 */
int c1_title_valid(const unsigned char *p, size_t len);

/*
 * Milliseconds since the epoch as ISO 8601 UTC "YYYY-MM-DDTHH:MM:SS.mmmZ"
 * into out (C1_ISO_TIME_LEN bytes, not NUL-terminated).  Times past the
 * year 9999 are written as 9999-12-31T23:59:59.999Z.
 */
void c1_time_iso(uint64_t ms, char *out);

/*
 * A random UUID v4, lowercase, into out (C1_UUID_LEN bytes, not
 * NUL-terminated), from getrandom(): C1_OK or C1_ERROR.
 */
int c1_uuid(char *out);


typedef struct {
    c1_str_t      id;
    c1_str_t      title;
    uint64_t      created;                 /* ms */
    uint64_t      updated;                 /* ms */
} c1_api_thread_t;


typedef struct {
    c1_str_t      id;
    const char   *role;
    c1_str_t      content;
} c1_api_msg_t;


/*
 * A parsed body: its strings point into the parsed tree (NUL-terminated
 * there, so never holding a NUL), kept until c1_api_body_free().  On an
 * error the tree is already freed; c1_api_body_free() is safe anyway.
 */
typedef struct {
    void         *root;
    c1_str_t      title;        /* data NULL: none given */
    c1_str_t      first;        /* the first user message's content; NULL:
                                   none */
    c1_str_t      first_id;     /* its "id"; NULL: none */
    c1_str_t      id;           /* message body: the message id */
    c1_str_t      role;         /* message body: NULL: not given */
    c1_str_t      content;      /* message body */
} c1_api_body_t;


/*
 * Each returns C1_OK, C1_ERROR with err set (400) or C1_NOMEM.
 *
 * create: {"messages": [{"id"?, "role", "content"}, ...]?, "title"?};
 * an empty body is {}.  update: {"title", ...} (only "title" is read).
 * message: {"id", "role"?, "content"}.
 */
int c1_api_parse_create(const unsigned char *in, size_t len,
    c1_api_body_t *b, c1_error_t *err);
int c1_api_parse_update(const unsigned char *in, size_t len,
    c1_api_body_t *b, c1_error_t *err);
int c1_api_parse_message(const unsigned char *in, size_t len,
    c1_api_body_t *b, c1_error_t *err);
void c1_api_body_free(c1_api_body_t *b);


/* rendered JSON, malloc()ed (c1_free()), NULL on no memory */

/* {"id","title","createdAt","updatedAt"} */
char *c1_api_render_thread(const c1_api_thread_t *t, size_t *len);
/* {"threads":[...],"nextCursor"} (no "nextCursor": the last page) */
char *c1_api_render_list(const c1_api_thread_t *t, size_t n,
    const c1_str_t *next_cursor, size_t *len);
/* [{"id","role","content"}, ...] */
char *c1_api_render_messages(const c1_api_msg_t *m, size_t n, size_t *len);
/* {"id","role","content"} */
char *c1_api_render_message(const c1_api_msg_t *m, size_t *len);


#endif /* _NGX_HTTP_C1_API_H_INCLUDED_ */
