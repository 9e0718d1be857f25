
/*
 * libFuzzer harness: extraction from C1's JSON answer, in both modes, and
 * the reading of C1's error answers.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_c1_proto.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int          rc;
    c1_error_t   err;
    c1_answer_t  a;

    rc = c1_answer_extract(data, size, C1_MODE_PROMPT, &a, &err);

    if (rc == C1_OK) {
        if (a.content == NULL || strlen(a.content) != a.content_len) {
            abort();
        }

        c1_free(a.content);

    } else if (rc == C1_ERROR && err.status != 502) {
        abort();
    }

    rc = c1_answer_extract(data, size, C1_MODE_OPENAI, &a, &err);

    if (rc == C1_OK && a.content != NULL) {
        abort();
    }

    rc = c1_upstream_error(429, data, size, &err);

    if (rc == C1_ERROR && err.status != 429) {
        abort();
    }

    return 0;
}
