
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
    unsigned              history:1;       /* threads are kept */
    unsigned              stream_usage:1;  /* ask for usage in streams */
    unsigned              count_usage:1;   /* and for a token limit's:
                                              hidden from a client that
                                              did not ask for it */
} c1_settings_t;


/* a message of a thread's history, as stored */
typedef struct {
    const char           *role;
    const unsigned char  *data;
    size_t                len;
    unsigned              raw:1;           /* data is the message's JSON
                                              (a tool round's) */
} c1_turn_t;


typedef struct {
    int                   status;
    const char           *type;
    const char           *code;
    const char           *param;           /* NULL: JSON null */
    char                  message[C1_ERROR_MESSAGE_LEN];
} c1_error_t;


/* the client's request, parsed, and the body to send to C1 */
typedef struct {
    c1_mode_e             mode;
    unsigned              stream:1;
    void                 *root;            /* the parsed JSON body */
    char                 *prompt;          /* prompt mode: the user text */
    size_t                prompt_len;
    char                  thread_id[129];  /* "": none */
    size_t                thread_id_len;
    char                  prompt_id[129];  /* C1Chat's; "": none */
    size_t                prompt_id_len;
    char                  response_id[129];
    size_t                response_id_len;
    unsigned              openui:1;        /* messages with a threadId */
    unsigned              hide_usage:1;    /* the usage chunk is ours */
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


/* a growable byte buffer */
typedef struct {
    unsigned char        *data;            /* c1_free() */
    size_t                len;
    size_t                cap;
} c1_buf_t;


/* a Server-Sent Events parser fed in pieces cut anywhere */
typedef int (*c1_sse_event_pt)(void *data, const unsigned char *event,
    size_t len);

typedef struct {
    c1_buf_t              line;            /* a line cut across feeds */
    c1_buf_t              event;           /* the data of this event */
    size_t                max;             /* the largest event taken */
    unsigned              cr:1;            /* the last byte was '\r' */
    unsigned              started:1;
    unsigned              has_data:1;
} c1_sse_t;


/* C1's stream turned into what the client gets */
typedef struct {
    c1_sse_t              sse;
    c1_mode_e             mode;
    c1_buf_t              out;             /* bytes for the client */
    c1_buf_t              answer;          /* OpenAI mode, with keep: the
                                              content, unescaped */
    c1_error_t            err;             /* why it failed */
    unsigned long         events;
    size_t                content;         /* content seen: not 0 once a
                                              delta had some (its bytes;
                                              OpenAI mode: as sent) */
    long                  prompt_tokens;   /* -1: unknown */
    long                  completion_tokens;
    long                  total_tokens;
    unsigned              keep:1;          /* collect answer */
    unsigned              hide_usage:1;    /* OpenAI mode: a usage-only
                                              chunk is not relayed */
    void                 *tools;           /* c1_tool_calls_t: a chunk
                                              with tool calls goes there */
    unsigned              done:1;          /* [DONE] seen */
    unsigned              failed:1;        /* garbage or an error event */
    unsigned              tree:1;          /* read events with cJSON alone:
                                              the fuzzers' reference */
} c1_relay_t;


#define C1_OK        0
#define C1_ERROR    -1
#define C1_NOMEM    -2
#define C1_DECLINED -5


void c1_free(void *p);

int c1_utf8_valid(const unsigned char *p, size_t len);
size_t c1_utf8_seq(const unsigned char *p, size_t len);

void c1_error_set(c1_error_t *err, int status, const char *type,
    const char *code, const char *param, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__ ((format (printf, 6, 7)))
#endif
    ;

char *c1_error_render(const c1_error_t *err, size_t *len);

int c1_request_parse(const unsigned char *in, size_t len,
    c1_body_type_e type, const c1_settings_t *s, c1_request_t *req,
    c1_error_t *err);
int c1_request_render(c1_request_t *req, const c1_settings_t *s,
    const c1_turn_t *history, size_t nhistory);
void c1_request_free(c1_request_t *req);
/* a message of the client's to keep in the thread (id NULL: none) */
typedef int (*c1_request_keep_pt)(void *data, const unsigned char *id,
    size_t id_len, int role, const unsigned char *content, size_t len);

int c1_request_keep(c1_request_t *req, c1_request_keep_pt handler,
    void *data);
int c1_request_remodel(const char *body, size_t len, const c1_str_t *model,
    char **out, size_t *outlen);
int c1_request_build(const unsigned char *in, size_t len,
    c1_body_type_e type, const c1_settings_t *s, c1_request_t *req,
    c1_error_t *err);

int c1_answer_extract(const unsigned char *in, size_t len, c1_mode_e mode,
    c1_answer_t *out, c1_error_t *err);
/* the same read with cJSON alone: the fallback, and the fuzzers' reference */
int c1_answer_extract_tree(const unsigned char *in, size_t len,
    c1_mode_e mode, c1_answer_t *out, c1_error_t *err);

char *c1_turns_render(const c1_turn_t *turns, size_t n, size_t *len);

int c1_upstream_error(int status, const unsigned char *in, size_t len,
    c1_error_t *err);


int c1_buf_reserve(c1_buf_t *b, size_t len);
int c1_buf_append(c1_buf_t *b, const void *data, size_t len);
void c1_buf_free(c1_buf_t *b);

void c1_sse_init(c1_sse_t *p, size_t max);
int c1_sse_feed(c1_sse_t *p, const unsigned char *in, size_t len,
    c1_sse_event_pt handler, void *data);
int c1_sse_end(c1_sse_t *p, c1_sse_event_pt handler, void *data);
void c1_sse_free(c1_sse_t *p);

void c1_relay_init(c1_relay_t *r, c1_mode_e mode, size_t max_event);
int c1_relay_feed(c1_relay_t *r, const unsigned char *in, size_t len);
int c1_relay_end(c1_relay_t *r);
int c1_relay_close(c1_relay_t *r, const c1_error_t *err);
void c1_relay_free(c1_relay_t *r);


#endif /* _NGX_HTTP_C1_PROTO_H_INCLUDED_ */
