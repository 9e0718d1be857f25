
/*
 * ngx_http_c1_module: cJSON helpers private to the protocol units.
 */


#ifndef _NGX_HTTP_C1_JSON_H_INCLUDED_
#define _NGX_HTTP_C1_JSON_H_INCLUDED_


#include <cjson/cJSON.h>

#include "ngx_http_c1_proto.h"


cJSON *c1_json_parse(const unsigned char *in, size_t len,
    const char **problem);
cJSON *c1_json_string(const c1_str_t *s);
long c1_json_count(cJSON *obj, const char *name);


#endif /* _NGX_HTTP_C1_JSON_H_INCLUDED_ */
