
/*
 * libFuzzer harness, differential: the one-pass reader (c1_scan()) against
 * cJSON.  Whatever c1_scan() reads, cJSON must read too; C1's answer read
 * by c1_answer_extract() must equal c1_answer_extract_tree(), in both
 * modes; a stream made of the input, one "data:" line per line, must give
 * the same bytes, counts and errors through the relay as through the relay
 * reading every event with cJSON.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_c1_json.h"
#include "ngx_http_c1_scan.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void
check(int cond)
{
    if (!cond) {
        abort();
    }
}


static void
answers(const uint8_t *in, size_t len, c1_mode_e mode)
{
    int          rc1, rc2;
    c1_error_t   e1, e2;
    c1_answer_t  a1, a2;

    rc1 = c1_answer_extract(in, len, mode, &a1, &e1);
    rc2 = c1_answer_extract_tree(in, len, mode, &a2, &e2);

    check(rc1 == rc2);
    check(a1.prompt_tokens == a2.prompt_tokens);
    check(a1.completion_tokens == a2.completion_tokens);
    check(a1.total_tokens == a2.total_tokens);

    if (rc1 == C1_OK) {
        check((a1.content == NULL) == (a2.content == NULL));
        check(a1.content_len == a2.content_len);
        check(a1.content == NULL
              || memcmp(a1.content, a2.content, a1.content_len + 1) == 0);

    } else if (rc1 == C1_ERROR) {
        check(e1.status == e2.status);
        check(strcmp(e1.message, e2.message) == 0);
    }

    c1_free(a1.content);
    c1_free(a2.content);
}


static int
relay(const uint8_t *in, size_t len, c1_mode_e mode, unsigned tree,
    c1_relay_t *r)
{
    int             rc;
    const uint8_t  *nl, *last;

    c1_relay_init(r, mode, 65536);
    r->tree = tree;

    rc = C1_OK;
    last = in + len;

    while (in < last && rc == C1_OK) {
        nl = memchr(in, '\n', last - in);

        if (nl == NULL) {
            nl = last;
        }

        rc = c1_relay_feed(r, (const unsigned char *) "data: ", 6);

        if (rc == C1_OK) {
            rc = c1_relay_feed(r, in, nl - in);
        }

        if (rc == C1_OK) {
            rc = c1_relay_feed(r, (const unsigned char *) "\n", 1);
        }

        in = nl + 1;
    }

    if (rc == C1_OK) {
        rc = c1_relay_feed(r, (const unsigned char *) "\n", 1);
    }

    if (rc == C1_OK) {
        rc = c1_relay_end(r);
    }

    return rc;
}


static void
relays(const uint8_t *in, size_t len, c1_mode_e mode)
{
    int         rc1, rc2;
    c1_relay_t  r1, r2;

    rc1 = relay(in, len, mode, 0, &r1);
    rc2 = relay(in, len, mode, 1, &r2);

    check(rc1 == rc2);
    check(r1.out.len == r2.out.len);
    check(r1.out.len == 0
          || memcmp(r1.out.data, r2.out.data, r1.out.len) == 0);
    check(r1.events == r2.events);
    check(r1.done == r2.done && r1.failed == r2.failed);
    check(r1.prompt_tokens == r2.prompt_tokens);
    check(r1.completion_tokens == r2.completion_tokens);
    check(r1.total_tokens == r2.total_tokens);
    check(!r1.failed || strcmp(r1.err.message, r2.err.message) == 0);

    c1_relay_free(&r1);
    c1_relay_free(&r2);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int          rc;
    cJSON       *root;
    c1_scan_t    s;
    const char  *problem;

    /* what c1_scan() reads is JSON to cJSON too */

    rc = c1_scan(data, size, C1_SCAN_DELTA, NULL, &s);

    if (rc == C1_OK) {
        root = c1_json_parse(data, size, &problem);
        check(cJSON_IsObject(root));
        cJSON_Delete(root);

    } else {
        check(rc == C1_DECLINED);
    }

    answers(data, size, C1_MODE_PROMPT);
    answers(data, size, C1_MODE_OPENAI);

    relays(data, size, C1_MODE_PROMPT);
    relays(data, size, C1_MODE_OPENAI);

    return 0;
}
