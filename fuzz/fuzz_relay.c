
/*
 * libFuzzer harness: the SSE parser and relay, fed in random cuts.
 * Input: one byte of mode (bit 0: OpenAI mode; bit 1: the usage chunk
 * hidden, as for a token limit; bit 2: tool calls gathered, as with
 * c1_tool), then the stream.  The same stream fed whole
 * and fed in cuts chosen by its own bytes must give the same output.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_c1_proto.h"
#include "ngx_http_c1_tools.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static int
run(const uint8_t *in, size_t len, c1_mode_e mode, int hide,
    c1_tool_calls_t *tc, size_t seed, c1_relay_t *r)
{
    int     rc;
    size_t  pos, n;

    c1_relay_init(r, mode, 4096);
    r->hide_usage = hide;
    r->tools = tc;

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

        rc = c1_relay_feed(r, in + pos, n);
        pos += n;
    }

    if (rc == C1_OK) {
        rc = c1_relay_end(r);
    }

    if (rc != C1_NOMEM) {
        c1_relay_close(r, r->failed ? &r->err : NULL);
    }

    return rc;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int              rc1, rc2, hide;
    size_t           i;
    c1_mode_e        mode;
    c1_relay_t       whole, cut;
    c1_tool_calls_t  tc1, tc2;

    if (size < 1) {
        return 0;
    }

    mode = (data[0] & 1) ? C1_MODE_OPENAI : C1_MODE_PROMPT;
    hide = (data[0] & 2) ? 1 : 0;

    c1_tool_calls_init(&tc1, 1024);
    c1_tool_calls_init(&tc2, 1024);

    rc1 = run(data + 1, size - 1, mode, hide, (data[0] & 4) ? &tc1 : NULL,
              0, &whole);
    rc2 = run(data + 1, size - 1, mode, hide, (data[0] & 4) ? &tc2 : NULL,
              size + data[0], &cut);

    if (tc1.n != tc2.n || tc1.finished != tc2.finished) {
        abort();
    }

    for (i = 0; i < tc1.n; i++) {
        if (tc1.calls[i].arguments.len != tc2.calls[i].arguments.len
            || tc1.calls[i].name.len != tc2.calls[i].name.len)
        {
            abort();
        }
    }

    c1_tool_calls_free(&tc1);
    c1_tool_calls_free(&tc2);

    if (rc1 != rc2 || whole.out.len != cut.out.len
        || (whole.out.len
            && memcmp(whole.out.data, cut.out.data, whole.out.len) != 0)
        || whole.done != cut.done || whole.failed != cut.failed
        || whole.total_tokens != cut.total_tokens
        || whole.content != cut.content)
    {
        abort();
    }

    c1_relay_free(&whole);
    c1_relay_free(&cut);

    return 0;
}
