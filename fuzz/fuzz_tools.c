
/*
 * libFuzzer harness: the tool calls of a stream (ngx_http_c1_tools.c),
 * gathered from its chunks through the SSE parser.  The same stream fed
 * whole and fed in cuts chosen by its own bytes must give the same calls
 * (ids, names, arguments), the same end and the same failure; every call
 * then checked and rendered as C1 gets it back.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_c1_tools.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static int
event(void *data, const unsigned char *ev, size_t len)
{
    return c1_tool_calls_event(data, ev, len);
}


static void
run(const uint8_t *in, size_t len, size_t seed, c1_tool_calls_t *tc)
{
    int       rc;
    size_t    pos, n;
    c1_sse_t  sse;

    c1_tool_calls_init(tc, 1024);
    c1_sse_init(&sse, 4096);

    rc = C1_OK;
    pos = 0;

    while (pos < len && rc == C1_OK) {
        if (seed == 0) {
            n = len - pos;

        } else {
            seed = seed * 1103515245 + 12345;
            n = 1 + (seed >> 16) % 17;

            if (n > len - pos) {
                n = len - pos;
            }
        }

        rc = c1_sse_feed(&sse, in + pos, n, event, tc);
        pos += n;
    }

    if (rc == C1_OK) {
        (void) c1_sse_end(&sse, event, tc);
    }

    c1_sse_free(&sse);
}


static int
same(const c1_buf_t *a, const c1_buf_t *b)
{
    return a->len == b->len && (a->len == 0
                                || memcmp(a->data, b->data, a->len) == 0);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char             *out;
    size_t            i, len;
    c1_tool_calls_t   whole, cut;

    run(data, size, 0, &whole);
    run(data, size, size + 1, &cut);

    if (whole.n != cut.n || whole.finished != cut.finished
        || whole.failed != cut.failed)
    {
        abort();
    }

    for (i = 0; i < whole.n; i++) {
        if (whole.calls[i].index != cut.calls[i].index
            || !same(&whole.calls[i].id, &cut.calls[i].id)
            || !same(&whole.calls[i].name, &cut.calls[i].name)
            || !same(&whole.calls[i].arguments, &cut.calls[i].arguments)
            || whole.calls[i].arguments.len > 1024
            || whole.calls[i].name.len > C1_TOOL_NAME_MAX)
        {
            abort();
        }
    }

    for (i = 0; i < whole.n; i++) {
        if (c1_tool_calls_check(&whole, i) == C1_NOMEM) {
            abort();
        }
    }

    out = c1_tool_calls_message(&whole, &len);
    c1_free(out);

    if (whole.n) {
        out = c1_tool_result_message(&whole.calls[0], data, size, &len);
        c1_free(out);
    }

    c1_tool_calls_free(&whole);
    c1_tool_calls_free(&cut);

    return 0;
}
