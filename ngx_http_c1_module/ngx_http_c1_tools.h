
/*
 * ngx_http_c1_module: what a tool round is made of (c1_tool), in plain C:
 * the tool calls C1 asks for, gathered from a stream's deltas or read
 * from a whole answer; the messages that carry them and their results
 * back to C1; C1's request with tools added or taken away; and the think
 * item a prompt stream shows while tools run.
 */


#ifndef _NGX_HTTP_C1_TOOLS_H_INCLUDED_
#define _NGX_HTTP_C1_TOOLS_H_INCLUDED_


#include "ngx_http_c1_proto.h"


/* the most calls of one round, and the longest name */
#define C1_TOOL_CALLS_MAX    16
#define C1_TOOL_NAME_MAX     64


typedef struct {
    long                  index;            /* as the deltas number it */
    c1_buf_t              id;
    c1_buf_t              name;
    c1_buf_t              arguments;        /* JSON text, in pieces */
} c1_tool_call_t;


typedef struct {
    c1_tool_call_t        calls[C1_TOOL_CALLS_MAX];
    size_t                n;
    size_t                max;              /* arguments of one call */
    c1_error_t            err;
    unsigned              finished:1;       /* finish_reason tool_calls */
    unsigned              failed:1;
} c1_tool_calls_t;


void c1_tool_calls_init(c1_tool_calls_t *tc, size_t max);
void c1_tool_calls_free(c1_tool_calls_t *tc);
int c1_tool_calls_event(c1_tool_calls_t *tc, const unsigned char *ev,
    size_t len);
int c1_tool_calls_answer(c1_tool_calls_t *tc, const unsigned char *in,
    size_t len);
int c1_tool_calls_check(c1_tool_calls_t *tc, size_t i);

char *c1_tool_calls_message(const c1_tool_calls_t *tc, size_t *len);
char *c1_tool_result_message(const c1_tool_call_t *call,
    const unsigned char *content, size_t clen, size_t *len);

int c1_request_tools(const char *body, size_t len, const char *tools,
    size_t tlen, char **out, size_t *outlen);
int c1_request_extend(const char *body, size_t len, const c1_str_t *msgs,
    size_t n, int untool, char **out, size_t *outlen);

size_t c1_think_item_len(size_t tlen, size_t dlen);
size_t c1_think_item(const unsigned char *title, size_t tlen,
    const unsigned char *detail, size_t dlen, unsigned char *out);


#endif /* _NGX_HTTP_C1_TOOLS_H_INCLUDED_ */
