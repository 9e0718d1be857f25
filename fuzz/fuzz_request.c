
/*
 * libFuzzer harness: the client's request body in all its shapes.
 * Input: one byte of flags (text or JSON, system prompt, settings,
 * stream), then the body.  What is built must be a JSON object.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ngx_http_c1_proto.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int             rc;
    char           *err_json;
    size_t          len;
    cJSON          *json;
    c1_error_t      err;
    c1_request_t    req;
    c1_settings_t   s;

    if (size < 1) {
        return 0;
    }

    memset(&s, 0, sizeof(s));

    s.model.data = (const unsigned char *) "c1/test/model";
    s.model.len = 13;

    if (data[0] & 2) {
        s.system_prompt.data = (const unsigned char *) "Be \"brief\"\n";
        s.system_prompt.len = 11;
    }

    if (data[0] & 4) {
        s.has_temperature = 1;
        s.temperature = 0.5;
        s.has_max_tokens = 1;
        s.max_tokens = 100;
        s.has_top_p = 1;
        s.top_p = 1;
        s.stop[0].data = (const unsigned char *) "END";
        s.stop[0].len = 3;
        s.nstop = 1;
    }

    s.stream = (data[0] & 8) ? 1 : 0;

    rc = c1_request_build(data + 1, size - 1,
                          (data[0] & 1) ? C1_BODY_TEXT : C1_BODY_JSON,
                          &s, &req, &err);

    if (rc == C1_OK) {
        json = cJSON_ParseWithLength(req.body, req.len);

        if (!cJSON_IsObject(json) || req.len != strlen(req.body)) {
            abort();
        }

        cJSON_Delete(json);
        c1_free(req.body);

    } else if (rc == C1_ERROR) {
        if (err.status != 400) {
            abort();
        }

        err_json = c1_error_render(&err, &len);
        json = err_json ? cJSON_Parse(err_json) : NULL;

        if (err_json && !cJSON_IsObject(json)) {
            abort();
        }

        cJSON_Delete(json);
        c1_free(err_json);
    }

    return 0;
}
