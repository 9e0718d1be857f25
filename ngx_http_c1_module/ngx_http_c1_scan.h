
/*
 * ngx_http_c1_module: a one-pass reader of C1's answers and stream events
 * that builds no JSON tree (see ngx_http_c1_scan.c).
 */


#ifndef _NGX_HTTP_C1_SCAN_H_INCLUDED_
#define _NGX_HTTP_C1_SCAN_H_INCLUDED_


#include "ngx_http_c1_proto.h"


typedef enum {
    C1_SCAN_MESSAGE = 0,         /* choices[0].message.content */
    C1_SCAN_DELTA                /* choices[0].delta.content */
} c1_scan_inner_e;


typedef struct {
    size_t                content_len;      /* unescaped, in out */
    size_t                content_raw;      /* as sent, quotes and all */
    long                  prompt_tokens;    /* -1: not a count */
    long                  completion_tokens;
    long                  total_tokens;
    unsigned              content:1;        /* the content is a string */
    unsigned              choice:1;         /* choices[0] is an object */
    unsigned              usage:1;          /* "usage" is an object */
    unsigned              error:1;          /* "error" is there, not null */
} c1_scan_t;


int c1_scan(const unsigned char *in, size_t len, c1_scan_inner_e inner,
    unsigned char *out, c1_scan_t *s);


#endif /* _NGX_HTTP_C1_SCAN_H_INCLUDED_ */
