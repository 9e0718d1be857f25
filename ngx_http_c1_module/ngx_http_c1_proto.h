
/*
 * ngx_http_c1_module: protocol logic with no nginx ties.
 *
 * Building the C1 (OpenAI Chat Completions) request from what a client
 * sent, extracting the assistant's content from C1's answer, rendering
 * OpenAI-style error bodies and parsing Server-Sent Events.  Plain C and
 * cJSON only, so that these units can be unit-tested and fuzzed alone.
 * Every string handed out is malloc()ed: free it with c1_free().
 */


#ifndef _NGX_HTTP_C1_PROTO_H_INCLUDED_
#define _NGX_HTTP_C1_PROTO_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define C1_MAX_STOP          4
#define C1_ERROR_MESSAGE_LEN 256


typedef enum {
    C1_BODY_JSON = 0,
    C1_BODY_TEXT
} c1_body_type_e;


typedef enum {
    C1_MODE_PROMPT = 1,          /* {"prompt": ...} or text/plain */
    C1_MODE_OPENAI               /* {"messages": [...], ...} */
} c1_mode_e;


typedef struct {
    const unsigned char  *data;
    size_t                len;
} c1_str_t;


/* what the operator configured; strings need not be NUL-terminated */
typedef struct {
    c1_str_t              model;
    c1_str_t              system_prompt;
    c1_str_t              stop[C1_MAX_STOP];
    unsigned              nstop;
    double                temperature;
    double                top_p;
    long                  max_tokens;
    unsigned              has_temperature:1;
    unsigned              has_top_p:1;
    unsigned              has_max_tokens:1;
    unsigned              stream:1;
} c1_settings_t;


typedef struct {
    int                   status;
    const char           *type;
    const char           *code;
    const char           *param;           /* NULL: JSON null */
    char                  message[C1_ERROR_MESSAGE_LEN];
} c1_error_t;


/* the request to send to C1 */
typedef struct {
    c1_mode_e             mode;
    unsigned              stream:1;
    char                 *body;            /* c1_free() */
    size_t                len;
} c1_request_t;


/* what C1 answered, once whole */
typedef struct {
    char                 *content;         /* prompt mode; c1_free() */
    size_t                content_len;
    long                  prompt_tokens;   /* -1: unknown */
    long                  completion_tokens;
    long                  total_tokens;
} c1_answer_t;


#define C1_OK        0
#define C1_ERROR    -1
#define C1_NOMEM    -2


void c1_free(void *p);

int c1_utf8_valid(const unsigned char *p, size_t len);

void c1_error_set(c1_error_t *err, int status, const char *type,
    const char *code, const char *param, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__ ((format (printf, 6, 7)))
#endif
    ;

char *c1_error_render(const c1_error_t *err, size_t *len);

int c1_request_build(const unsigned char *in, size_t len,
    c1_body_type_e type, const c1_settings_t *s, c1_request_t *out,
    c1_error_t *err);

int c1_answer_extract(const unsigned char *in, size_t len, c1_mode_e mode,
    c1_answer_t *out, c1_error_t *err);

int c1_upstream_error(int status, const unsigned char *in, size_t len,
    c1_error_t *err);


#endif /* _NGX_HTTP_C1_PROTO_H_INCLUDED_ */
