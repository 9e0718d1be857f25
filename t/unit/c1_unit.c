
/*
 * Unit tests of the protocol units (request building, answer extraction,
 * JSON helpers), with no nginx.  Prints TAP for prove (t/000-unit.t).
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_c1_proto.h"
#include "ngx_http_c1_scan.h"
#include "ngx_http_c1_api.h"
#include "ngx_http_c1_bucket.h"
#include "ngx_http_c1_tools.h"
#include "c1_mem.h"


static int  tests, failed;


static void
ok(int cond, const char *name)
{
    tests++;

    if (!cond) {
        failed++;
    }

    printf("%sok %d - %s\n", cond ? "" : "not ", tests, name);
}


static void
is_str(const char *got, const char *want, const char *name)
{
    int  same;

    same = got != NULL && strcmp(got, want) == 0;
    ok(same, name);

    if (!same) {
        printf("#   got:  %s\n#   want: %s\n", got ? got : "(null)", want);
    }
}


static c1_settings_t
settings(const char *model, const char *system)
{
    c1_settings_t  s;

    memset(&s, 0, sizeof(s));
    s.model.data = (const unsigned char *) model;
    s.model.len = strlen(model);

    if (system) {
        s.system_prompt.data = (const unsigned char *) system;
        s.system_prompt.len = strlen(system);
    }

    return s;
}


/* builds a request; returns the body (static copy) or the error code */

static const char *
build(const char *in, size_t len, c1_body_type_e type, c1_settings_t *s,
    c1_request_t *req, c1_error_t *err)
{
    static char  out[4096];
    int          rc;

    rc = c1_request_build((const unsigned char *) in, len, type, s, req, err);

    if (rc != C1_OK) {
        snprintf(out, sizeof(out), "error %d %s", err->status, err->code);
        return out;
    }

    snprintf(out, sizeof(out), "%s", req->body);
    c1_free(req->body);

    return out;
}


#define J(s)  s, sizeof(s) - 1


static void
test_utf8(void)
{
    ok(c1_utf8_valid((const unsigned char *) "abc", 3), "utf8: ascii");
    ok(c1_utf8_valid((const unsigned char *) "\xc3\xa9\xe2\x82\xac"
                     "\xf0\x9f\x98\x80", 9), "utf8: 2, 3 and 4 bytes");
    ok(!c1_utf8_valid((const unsigned char *) "\xc0\x80", 2),
       "utf8: overlong NUL refused");
    ok(!c1_utf8_valid((const unsigned char *) "\xed\xa0\x80", 3),
       "utf8: surrogate refused");
    ok(!c1_utf8_valid((const unsigned char *) "\xf4\x90\x80\x80", 4),
       "utf8: over U+10FFFF refused");
    ok(!c1_utf8_valid((const unsigned char *) "a\xe2\x82", 3),
       "utf8: cut sequence refused");
    ok(!c1_utf8_valid((const unsigned char *) "\xff", 1),
       "utf8: 0xff refused");
}


static void
test_request(void)
{
    char           *deep;
    size_t          i, n;
    c1_error_t      err;
    c1_request_t    req;
    c1_settings_t   s;

    s = settings("c1/m", "sys");

    is_str(build(J("{\"prompt\":\"hi\"}"), C1_BODY_JSON, &s, &req, &err),
           "{\"model\":\"c1/m\",\"messages\":[{\"role\":\"system\","
           "\"content\":\"sys\"},{\"role\":\"user\",\"content\":\"hi\"}]}",
           "request: prompt string");
    ok(req.mode == C1_MODE_PROMPT && !req.stream, "request: prompt mode");

    is_str(build(J("a \"b\"\n\\ \xf0\x9f\x98\x80"), C1_BODY_TEXT, &s, &req,
                 &err),
           "{\"model\":\"c1/m\",\"messages\":[{\"role\":\"system\","
           "\"content\":\"sys\"},{\"role\":\"user\",\"content\":"
           "\"a \\\"b\\\"\\n\\\\ \xf0\x9f\x98\x80\"}]}",
           "request: text body escaped byte for byte");

    is_str(build(J(""), C1_BODY_TEXT, &s, &req, &err),
           "error 400 empty_prompt", "request: empty text");
    is_str(build(J(" \r\n"), C1_BODY_TEXT, &s, &req, &err),
           "error 400 empty_prompt", "request: blank text");
    is_str(build(J("a\0b"), C1_BODY_TEXT, &s, &req, &err),
           "error 400 invalid_prompt", "request: NUL in text");
    is_str(build(J("a\xff"), C1_BODY_TEXT, &s, &req, &err),
           "error 400 invalid_utf8", "request: bad UTF-8 in text");

    s = settings("m", NULL);

    is_str(build(J("{\"prompt\":{\"id\":\"1\",\"role\":\"user\","
                   "\"content\":\"<content>x</content>\"},"
                   "\"threadId\":\"t\"}"), C1_BODY_JSON, &s, &req, &err),
           "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
           "\"<content>x</content>\"}]}",
           "request: C1Chat message object, no system prompt");

    is_str(build(J("{}"), C1_BODY_JSON, &s, &req, &err),
           "error 400 missing_prompt", "request: no prompt");
    is_str(build(J("{\"prompt\":\"\"}"), C1_BODY_JSON, &s, &req, &err),
           "error 400 empty_prompt", "request: empty prompt");
    is_str(build(J("{\"prompt\":1}"), C1_BODY_JSON, &s, &req, &err),
           "error 400 invalid_prompt", "request: prompt a number");
    is_str(build(J("null"), C1_BODY_JSON, &s, &req, &err),
           "error 400 invalid_body", "request: null");
    is_str(build(J("{\"prompt\":\"x\"} x"), C1_BODY_JSON, &s, &req, &err),
           "error 400 invalid_json", "request: trailing garbage");
    is_str(build(J("{\"prompt\":\"x\"}  \n"), C1_BODY_JSON, &s, &req, &err),
           "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
           "\"content\":\"x\"}]}", "request: trailing white space");
    is_str(build(J("{\"prompt\":\"a\\u0000b\"}"), C1_BODY_JSON, &s, &req,
                 &err),
           "error 400 invalid_json", "request: \\u0000 refused");
    is_str(build(J("{\"prompt\":\"a\\\\u0000b\"}"), C1_BODY_JSON, &s, &req,
                 &err),
           "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
           "\"content\":\"a\\\\u0000b\"}]}",
           "request: an escaped backslash before u0000 is text");
    is_str(build(J("{\"prompt\":\"x\",\"stream\":1}"), C1_BODY_JSON, &s,
                 &req, &err),
           "error 400 invalid_stream", "request: stream not a boolean");

    s.stream = 1;
    build(J("{\"prompt\":\"x\",\"stream\":false}"), C1_BODY_JSON, &s, &req,
          &err);
    ok(!req.stream, "request: stream false overrides c1_stream on");

    s.stream = 0;
    is_str(build(J("{\"prompt\":\"x\",\"stream\":true}"), C1_BODY_JSON, &s,
                 &req, &err),
           "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
           "\"content\":\"x\"}],\"stream\":true}",
           "request: stream true asks C1 to stream");
    ok(req.stream, "request: stream flag set");

    s.has_temperature = 1;
    s.temperature = 0.5;
    s.has_max_tokens = 1;
    s.max_tokens = 64;
    s.stop[0].data = (const unsigned char *) "END";
    s.stop[0].len = 3;
    s.nstop = 1;

    is_str(build(J("{\"model\":\"gpt\",\"messages\":[{\"id\":\"a\","
                   "\"role\":\"user\",\"content\":\"hi\"}],"
                   "\"temperature\":1,\"n\":1}"), C1_BODY_JSON, &s, &req,
                 &err),
           "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
           "\"content\":\"hi\"}],\"temperature\":1,\"n\":1,"
           "\"max_tokens\":64,\"stop\":[\"END\"]}",
           "request: OpenAI shape, model replaced, id stripped, defaults");
    ok(req.mode == C1_MODE_OPENAI, "request: OpenAI mode");

    is_str(build(J("{\"messages\":[{\"role\":\"user\"}]}"), C1_BODY_JSON,
                 &s, &req, &err),
           "error 400 invalid_messages", "request: message without content");
    is_str(build(J("{\"messages\":{}}"), C1_BODY_JSON, &s, &req, &err),
           "error 400 invalid_messages", "request: messages an object");

    /* nesting far deeper than cJSON's limit: refused, no crash */

    n = 100000;
    deep = malloc(2 * n + 20);
    strcpy(deep, "{\"prompt\":");

    for (i = 0; i < n; i++) {
        deep[10 + i] = '[';
    }

    for (i = 0; i < n; i++) {
        deep[10 + n + i] = ']';
    }

    deep[10 + 2 * n] = '}';

    is_str(build(deep, 10 + 2 * n + 1, C1_BODY_JSON, &s, &req, &err),
           "error 400 invalid_json", "request: nesting 100000 deep");
    free(deep);
}


static void
test_answer(void)
{
    int           rc;
    c1_error_t    err;
    c1_answer_t   a;

    rc = c1_answer_extract((const unsigned char *) J(
             "{\"choices\":[{\"message\":{\"content\":\"<content>\\u00e9"
             "</content>\"}}],\"usage\":{\"prompt_tokens\":3,"
             "\"completion_tokens\":4,\"total_tokens\":7}}"),
             C1_MODE_PROMPT, &a, &err);
    ok(rc == C1_OK, "answer: extracted");
    is_str(a.content, "<content>\xc3\xa9</content>", "answer: content");
    ok(a.content_len == strlen("<content>\xc3\xa9</content>"),
       "answer: content length");
    ok(a.prompt_tokens == 3 && a.completion_tokens == 4
       && a.total_tokens == 7, "answer: usage");
    c1_free(a.content);

    rc = c1_answer_extract((const unsigned char *) J("<html>"),
                           C1_MODE_PROMPT, &a, &err);
    ok(rc == C1_ERROR && err.status == 502, "answer: not JSON is a 502");

    rc = c1_answer_extract((const unsigned char *) J("{\"choices\":[]}"),
                           C1_MODE_OPENAI, &a, &err);
    ok(rc == C1_ERROR && strcmp(err.message, "C1's answer has no choices")
       == 0, "answer: no choices");

    rc = c1_answer_extract((const unsigned char *) J(
             "{\"choices\":[{\"message\":{\"content\":null}}]}"),
             C1_MODE_OPENAI, &a, &err);
    ok(rc == C1_OK && a.content == NULL && a.prompt_tokens == -1,
       "answer: OpenAI mode takes null content, usage unknown");

    rc = c1_answer_extract((const unsigned char *) J(
             "{\"choices\":[{\"message\":{\"content\":null}}]}"),
             C1_MODE_PROMPT, &a, &err);
    ok(rc == C1_ERROR && strcmp(err.message, "C1's answer has no content")
       == 0, "answer: prompt mode needs content");
}


/* c1_answer_extract() (c1_scan()) and c1_answer_extract_tree() agree */

static int
same_answer(const char *in, c1_mode_e mode)
{
    int          rc1, rc2, same;
    c1_error_t   e1, e2;
    c1_answer_t  a1, a2;

    rc1 = c1_answer_extract((const unsigned char *) in, strlen(in), mode,
                            &a1, &e1);
    rc2 = c1_answer_extract_tree((const unsigned char *) in, strlen(in),
                                 mode, &a2, &e2);

    same = rc1 == rc2
           && a1.prompt_tokens == a2.prompt_tokens
           && a1.completion_tokens == a2.completion_tokens
           && a1.total_tokens == a2.total_tokens;

    if (same && rc1 == C1_OK) {
        same = (a1.content == NULL) == (a2.content == NULL)
               && a1.content_len == a2.content_len
               && (a1.content == NULL
                   || memcmp(a1.content, a2.content, a1.content_len) == 0);

    } else if (same) {
        same = e1.status == e2.status
               && strcmp(e1.message, e2.message) == 0;
    }

    if (rc1 == C1_OK) {
        c1_free(a1.content);
    }

    if (rc2 == C1_OK) {
        c1_free(a2.content);
    }

    return same;
}


static unsigned char  scan_out[256];


static int
scan(const char *in, c1_scan_t *s)
{
    return c1_scan((const unsigned char *) in, strlen(in), C1_SCAN_MESSAGE,
                   scan_out, s);
}


/* an answer whose content is len bytes with one of a kind at "at" */

static const char *
scan_text(int kind, int len, int at)
{
    int          i;
    char        *p;
    static char  buf[256];

    static const char  *special[] = {
        "\\n", "\\u00e9", "\xc3\xa9", "\xf0\x9f\x98\x80", "\\\"", "\x01"
    };

    p = buf + sprintf(buf, "{\"choices\":[{\"message\":{\"content\":\"");

    for (i = 0; i < len; i++) {
        p += sprintf(p, "%s", i == at ? special[kind] : "x");
    }

    sprintf(p, "\"}}]}");

    return buf;
}


static void
test_scan(void)
{
    int             i, all;
    char           *deep, num[80];
    size_t          n;
    c1_scan_t       s;

    static const char  *texts[] = {
        "{\"choices\":[{\"message\":{\"content\":\"a\\u00e9\\ud83d\\ude00"
            "\\\"\\\\\\/\\b\\f\\n\\r\\t\"}}]}",
        "{\"choices\":[{\"message\":{\"content\":\"a\",\"content\":\"b\"}}],"
            "\"choices\":[],\"usage\":{\"prompt_tokens\":1.5e1,"
            "\"prompt_tokens\":2,\"completion_tokens\":-0,"
            "\"total_tokens\":1e16}}",
        " {\t\"usage\" :\r\n{\"total_tokens\":\"1\"} , \"choices\":"
            " [ { \"message\" : { \"content\" : \"x\" } } ] }\n",
        "{\"choices\":[[{\"message\":{\"content\":\"x\"}}]]}",
        "{\"choices\":{\"a\":{\"message\":{\"content\":\"x\"}}}}",
        "{\"choices\":[{\"message\":[{\"content\":\"x\"}]}]}",
        "{\"choices\":[{\"message\":{\"content\":7}}],\"usage\":[1]}",
        "{\"choices\":[{\"message\":{\"content\":\"\"}}]}",
        "{\"choices\":[{\"message\":{\"content\":\"\\u0000\"}}]}",
        "{\"ch\\u006fices\":[{\"message\":{\"content\":\"x\"}}]}",
        "{\"choices\":[{\"message\":{\"content\":\"\\udc00\"}}]}",
        "{\"choices\":[{\"message\":{\"content\":\"\xed\xa0\x80\"}}]}",
        "{\"choices\":[{\"message\":{\"content\":\"\x01\"}}]}",
        "{\"choices\":[{\"message\":{\"content\":\"x\"}}]} x",
        "{\"choices\":[{\"message\":{\"content\":\"x\"}}]}\f",
        "\xef\xbb\xbf{\"choices\":[{\"message\":{\"content\":\"x\"}}]}",
        "{\"choices\":[{\"message\":{\"content\":\"x\"}},01]}",
        "{\"choices\":[{\"message\":{\"content\":\"x\"}}],}",
        "[{\"choices\":[]}]"
    };

    ok(scan(texts[0], &s) == C1_OK && s.choice && s.content,
       "scan: an answer read in one pass");

    ok(s.content_len == 15
       && memcmp(scan_out, "a\xc3\xa9\xf0\x9f\x98\x80\"\\/\b\f\n\r\t", 15)
          == 0, "scan: escapes and a surrogate pair unescaped");

    ok(scan(texts[1], &s) == C1_OK && s.content_len == 1
       && scan_out[0] == 'a' && s.usage && s.prompt_tokens == 15
       && s.completion_tokens == 0 && s.total_tokens == -1,
       "scan: the first of keys given twice, counts as cJSON reads them");

    ok(scan(texts[2], &s) == C1_OK && s.content_len == 1 && s.usage
       && s.total_tokens == -1, "scan: whitespace, a count that is a string");

    ok(scan(texts[3], &s) == C1_OK && !s.choice && !s.content,
       "scan: choices[0] must be an object");

    ok(scan(texts[4], &s) == C1_OK && !s.choice,
       "scan: choices must be an array");

    ok(scan(texts[8], &s) == C1_DECLINED, "scan: leaves \\u0000 to cJSON");
    ok(scan(texts[9], &s) == C1_DECLINED,
       "scan: leaves an escaped key where it looks to cJSON");
    ok(scan("{\"x\":{\"a\\u0062\":1}}", &s) == C1_OK,
       "scan: takes an escaped key where it does not look");
    ok(scan(texts[10], &s) == C1_DECLINED, "scan: a lone low surrogate");
    ok(scan(texts[11], &s) == C1_DECLINED, "scan: a UTF-8 surrogate");
    ok(scan(texts[12], &s) == C1_DECLINED, "scan: a control character");
    ok(scan(texts[13], &s) == C1_DECLINED, "scan: trailing garbage");
    ok(scan(texts[14], &s) == C1_DECLINED,
       "scan: whitespace that is not RFC 8259's");
    ok(scan(texts[15], &s) == C1_DECLINED, "scan: a byte order mark");
    ok(scan(texts[16], &s) == C1_DECLINED, "scan: a leading zero");
    ok(scan(texts[17], &s) == C1_DECLINED, "scan: a trailing comma");
    ok(scan(texts[18], &s) == C1_DECLINED, "scan: not an object");

    snprintf(num, sizeof(num), "{\"a\":1%063d}", 0);
    ok(scan(num, &s) == C1_DECLINED, "scan: leaves a 64-character number");
    snprintf(num, sizeof(num), "{\"a\":1%062d}", 0);
    ok(scan(num, &s) == C1_OK, "scan: takes a 63-character number");

    deep = malloc(200);
    if (deep == NULL) {
        abort();
    }

    strcpy(deep, "{\"a\":");
    n = 5;

    for (i = 0; i < 63; i++) {
        deep[n++] = '[';
    }

    for (i = 0; i < 63; i++) {
        deep[n++] = ']';
    }

    deep[n++] = '}';
    deep[n] = '\0';
    ok(scan(deep, &s) == C1_OK, "scan: nesting 64 deep");

    memmove(deep + 6, deep + 5, n - 4);
    deep[5] = '[';
    memmove(deep + n + 1, deep + n, 2);
    deep[n] = ']';
    ok(scan(deep, &s) == C1_DECLINED, "scan: leaves nesting 65 deep to cJSON");
    free(deep);

    all = 1;

    for (i = 0; i < (int) (sizeof(texts) / sizeof(texts[0])); i++) {
        if (!same_answer(texts[i], C1_MODE_PROMPT)
            || !same_answer(texts[i], C1_MODE_OPENAI))
        {
            printf("# differs: %s\n", texts[i]);
            all = 0;
        }
    }

    ok(all, "scan: answers read as cJSON reads them");

    /* each kind of byte at each place of strings up to 40 long */

    all = 1;

    for (i = 0; i < 6 * 41 * 41; i++) {
        if (!same_answer(scan_text(i / (41 * 41), (i / 41) % 41, i % 41),
                         C1_MODE_PROMPT))
        {
            printf("# differs: %s\n", scan_text(i / (41 * 41), (i / 41) % 41,
                                                i % 41));
            all = 0;
        }
    }

    ok(all, "scan: every place in a string, read as cJSON reads it");
}


static void
test_errors(void)
{
    char        *out;
    size_t       len;
    c1_error_t   err;

    ok(c1_upstream_error(403, (const unsigned char *) J(
           "{\"error\":{\"message\":\"bad key\"}}"), &err) == C1_OK,
       "upstream error: an OpenAI error passes as it is");

    ok(c1_upstream_error(429, (const unsigned char *) J(
           "{\"detail\":\"slow down\"}"), &err) == C1_ERROR
       && err.status == 429 && strcmp(err.type, "rate_limit_error") == 0,
       "upstream error: 429 typed as a rate limit");
    is_str(err.message, "C1 answered HTTP 429: slow down",
           "upstream error: C1's detail kept");

    ok(c1_upstream_error(500, (const unsigned char *) J("<html>"), &err)
       == C1_ERROR && strcmp(err.message, "C1 answered HTTP 500") == 0,
       "upstream error: HTML body");

    c1_error_set(&err, 400, "invalid_request_error", "x", "prompt",
                 "say \"%s\"\n", "hi");
    out = c1_error_render(&err, &len);
    is_str(out, "{\"error\":{\"message\":\"say \\\"hi\\\"\\n\","
           "\"type\":\"invalid_request_error\",\"param\":\"prompt\","
           "\"code\":\"x\"}}", "error body: rendered and escaped");
    ok(out && len == strlen(out), "error body: length");
    c1_free(out);
}


/* a recorded stream: CRLF, ids, comments, event:, retry:, a role-only
 * chunk, an empty delta, a finish chunk, a usage-only chunk, [DONE] */

static const char  recorded[] =
    ": connected\r\n\r\n"
    "retry: 3000\r\n"
    "id: 0\r\nevent: message\r\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":"
    "\"assistant\"}}]}\r\n\r\n"
    "id: 1\r\ndata: {\"choices\":[{\"delta\":{\"content\":"
    "\"<content thesys=\\\"true\\\">\"}}]}\r\n\r\n"
    "id: 2\r\ndata: {\"choices\":[{\"delta\":{}}]}\r\n\r\n"
    ": keep-alive\r\n\r\n"
    "id: 3\r\ndata: {\"choices\":[{\"delta\":{\"content\":"
    "\"caf\u00e9 \xf0\x9f\x98\x80\\n\"}}]}\r\n\r\n"
    "id: 4\r\ndata: {\"choices\":[{\"delta\":{\"content\":"
    "\"</content>\"},\"finish_reason\":\"stop\"}]}\r\n\r\n"
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,"
    "\"completion_tokens\":6,\"total_tokens\":11}}\r\n\r\n"
    "data: [DONE]\r\n\r\n";

static const char  recorded_text[] =
    "<content thesys=\"true\">caf\xc3\xa9 \xf0\x9f\x98\x80\n</content>";


/* runs the relay over the input cut at the given points */

static int
relay(const char *in, size_t len, c1_mode_e mode, const size_t *cuts,
    size_t ncuts, c1_relay_t *r, int end)
{
    int     rc;
    size_t  i, from, to;

    c1_relay_init(r, mode, 65536);

    from = 0;
    rc = C1_OK;

    for (i = 0; i <= ncuts && rc == C1_OK; i++) {
        to = (i < ncuts) ? cuts[i] : len;
        rc = c1_relay_feed(r, (const unsigned char *) in + from, to - from);
        from = to;
    }

    if (rc == C1_OK && end) {
        rc = c1_relay_end(r);
    }

    return rc;
}


static int
same(c1_relay_t *r, const char *want, size_t len)
{
    return r->out.len == len && memcmp(r->out.data, want, len) == 0;
}


static void
test_sse(void)
{
    int          good;
    char        *openai, *p;
    size_t       k, len, cuts[64], n;
    c1_error_t   err;
    c1_relay_t   r;

    len = sizeof(recorded) - 1;

    relay(recorded, len, C1_MODE_PROMPT, NULL, 0, &r, 1);
    ok(same(&r, recorded_text, sizeof(recorded_text) - 1),
       "sse: prompt mode gives the content pieces, concatenated");
    ok(r.done && r.events == 7, "sse: six chunks and [DONE]");
    ok(r.prompt_tokens == 5 && r.completion_tokens == 6
       && r.total_tokens == 11, "sse: usage from the usage-only chunk");
    c1_relay_free(&r);

    /* OpenAI mode: the data of each event, relayed one by one */

    relay(recorded, len, C1_MODE_OPENAI, NULL, 0, &r, 1);
    openai = malloc(r.out.len + 1);
    memcpy(openai, r.out.data, r.out.len);
    openai[r.out.len] = '\0';
    c1_relay_free(&r);

    ok(strncmp(openai, "data: {\"choices\":[{\"index\":0,\"delta\":"
               "{\"role\":\"assistant\"}}]}\n\ndata: {", 60) == 0
       && (p = strstr(openai, "data: [DONE]\n\n")) != NULL
       && p[14] == '\0', "sse: OpenAI mode relays events, [DONE] last");

    /* every single cut point */

    good = 1;

    for (k = 0; k <= len; k++) {
        cuts[0] = k;
        relay(recorded, len, C1_MODE_PROMPT, cuts, 1, &r, 1);
        good = good && same(&r, recorded_text, sizeof(recorded_text) - 1);
        c1_relay_free(&r);

        relay(recorded, len, C1_MODE_OPENAI, cuts, 1, &r, 1);
        good = good && same(&r, openai, strlen(openai));
        c1_relay_free(&r);
    }

    ok(good, "sse: the same output for a cut at every byte");

    /* every byte alone */

    good = 1;
    c1_relay_init(&r, C1_MODE_PROMPT, 65536);

    for (k = 0; k < len; k++) {
        good = good && c1_relay_feed(&r, (const unsigned char *) recorded + k,
                                     1) == C1_OK;
    }

    ok(good && c1_relay_end(&r) == C1_OK
       && same(&r, recorded_text, sizeof(recorded_text) - 1),
       "sse: the same output fed one byte at a time");
    c1_relay_free(&r);

    /* many cuts at pseudo-random points */

    srand(1);
    good = 1;

    for (k = 0; k < 2000; k++) {
        size_t  i, j, t;

        n = 1 + rand() % 63;

        for (i = 0; i < n; i++) {
            cuts[i] = rand() % (len + 1);
        }

        for (i = 1; i < n; i++) {
            for (j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
                t = cuts[j];
                cuts[j] = cuts[j - 1];
                cuts[j - 1] = t;
            }
        }

        relay(recorded, len, C1_MODE_PROMPT, cuts, n, &r, 1);
        good = good && same(&r, recorded_text, sizeof(recorded_text) - 1);
        c1_relay_free(&r);
    }

    ok(good, "sse: the same output for 2000 random sets of cuts");

    free(openai);

    /* LF and CR-only line ends, several events in one read, no [DONE] */

    relay(J("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
            "data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\r\r"
            "data: {\"choices\":[{\"delta\":{\"content\":\"c\"}}]}"),
          C1_MODE_PROMPT, NULL, 0, &r, 1);
    ok(same(&r, "abc", 3) && !r.done && !r.failed,
       "sse: LF, CR, and a last event without a blank line");
    c1_relay_free(&r);

    relay(J("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"),
          C1_MODE_OPENAI, NULL, 0, &r, 1);
    c1_relay_close(&r, NULL);
    ok(same(&r, J("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}"
                  "\n\ndata: [DONE]\n\n")),
       "sse: OpenAI mode gets [DONE] when C1 sent none");
    c1_relay_free(&r);

    /* a data event over several lines is relayed as several data lines */

    relay(J("data: {\"choices\":\ndata: []}\n\n"), C1_MODE_OPENAI, NULL, 0,
          &r, 1);
    ok(same(&r, J("data: {\"choices\":\ndata: []}\n\n")),
       "sse: a multi-line event stays one event");
    c1_relay_free(&r);

    /* garbage, an error event, an event over the bound */

    ok(relay(J("data: {\"choices\": [\n\n"), C1_MODE_PROMPT, NULL, 0, &r, 1)
       == C1_ERROR && r.failed && r.err.status == 502,
       "sse: an event that is not JSON fails the stream");
    c1_relay_free(&r);

    ok(relay(J("data: {\"error\":{\"message\":\"overloaded\"}}\n\n"),
             C1_MODE_OPENAI, NULL, 0, &r, 1) == C1_ERROR
       && strcmp(r.err.message, "C1's stream carried an error: overloaded")
          == 0, "sse: an error event fails the stream");
    c1_relay_close(&r, &r.err);
    ok(r.out.len > 0 && strncmp((char *) r.out.data, "data: {\"error\":", 15)
       == 0, "sse: OpenAI mode ends a failed stream with an error event");
    c1_relay_free(&r);

    c1_relay_init(&r, C1_MODE_PROMPT, 100);
    p = malloc(300);
    memset(p, 'x', 300);
    memcpy(p, "data: ", 6);
    ok(c1_relay_feed(&r, (const unsigned char *) p, 300) == C1_ERROR
       && r.failed, "sse: a line over the bound fails the stream");
    c1_relay_free(&r);
    free(p);

    /* after [DONE], nothing counts */

    relay(J("data: [DONE]\n\ndata: garbage\n\n"), C1_MODE_PROMPT, NULL, 0,
          &r, 1);
    ok(r.done && !r.failed && r.out.len == 0, "sse: nothing after [DONE]");
    c1_relay_free(&r);

    (void) err;
}


#define ID(s)  (const unsigned char *) s, sizeof(s) - 1
#define TXT(s) (const unsigned char *) s, sizeof(s) - 1
#define OWN    (const unsigned char *) "", 0
#define ALICE  (const unsigned char *) "alice", 5
#define BOB    (const unsigned char *) "bob", 3


static int
tid(c1_thread_t *t, const char *id)
{
    return t->id_len == strlen(id) && memcmp(t->id, id, t->id_len) == 0;
}


/* a turn's two messages: ids "q" + n and "a" + n */

static int
history_turn(c1_history_t *h, c1_thread_t *t, uint64_t tok,
    const char *q, const unsigned char *a, size_t alen, time_t now)
{
    c1_msg_in_t  m[2];
    static int   n;
    char         qid[16], aid[16];

    n++;
    snprintf(qid, sizeof(qid), "q%d", n);
    snprintf(aid, sizeof(aid), "a%d", n);

    m[0].id = (unsigned char *) qid;
    m[0].id_len = strlen(qid);
    m[0].role = C1_ROLE_USER;
    m[0].content = (const unsigned char *) q;
    m[0].len = strlen(q);
    m[1].id = (unsigned char *) aid;
    m[1].id_len = strlen(aid);
    m[1].role = C1_ROLE_ASSISTANT;
    m[1].content = a;
    m[1].len = alen;

    return c1_history_commit(h, t, tok, m, 2, 0, TXT("title"), now,
                             (uint64_t) now * 1000);
}


static void
test_history(void)
{
    int                   rc, more;
    size_t                n, i;
    uint64_t              tok, tok2, seq;
    c1_mem_t              mem;
    c1_msg_in_t           in[3];
    static unsigned char  big[8192];
    c1_msg_t      *m;
    c1_thread_t   *t, *t2, *page[8];
    c1_history_t   h;
    c1_holder_t    me, other;

    me.pid = 100;
    me.start = 7;
    other.pid = 200;
    other.start = 8;
    c1_mem_dead.pid = 0;

    mem.used = 0;
    mem.limit = 1 << 20;

    ok(c1_history_init(&h, 64, &mem) == C1_HISTORY_OK, "history: init");
    h.max_messages = 4;
    h.inactive = 100;
    h.max_message = 4096;

    ok(c1_thread_id_valid(ID("t-1")) && !c1_thread_id_valid(ID(""))
       && !c1_thread_id_valid(ID("a b")) && !c1_thread_id_valid(ID("\x7f")),
       "history: thread ids are 1-128 printable ASCII");

    rc = c1_history_begin(&h, OWN, ID("t-1"), 1000, &me, &t, &tok);
    ok(rc == C1_HISTORY_OK && t->nmsgs == 0, "history: a turn begins");

    ok(c1_history_begin(&h, OWN, ID("t-1"), 1001, &me, &t2, &tok2)
       == C1_HISTORY_BUSY,
       "history: a second turn on the same thread is refused");

    n = c1_history_list(&h, OWN, 0, 10, page, &more);
    ok(n == 0, "history: a thread whose first turn runs is not listed");

    c1_history_end(&h, t, tok);
    ok(c1_history_find(&h, OWN, ID("t-1")) == NULL && h.threads == 0,
       "history: a failed first turn leaves no thread");

    c1_history_begin(&h, OWN, ID("t-1"), 1000, &me, &t, &tok);
    ok(history_turn(&h, t, tok, "q1", TXT("a1"), 1000) == C1_HISTORY_OK
       && t->nmsgs == 2 && t->seq != 0 && t->title_len == 5,
       "history: a turn is kept, the thread listed with the title given");
    c1_history_end(&h, t, tok);

    c1_history_begin(&h, OWN, ID("t-1"), 1001, &me, &t, &tok);
    c1_history_end(&h, t, tok);
    ok(c1_history_find(&h, OWN, ID("t-1")) == t && t->nmsgs == 2,
       "history: a failed turn leaves the thread as it was");

    c1_history_begin(&h, OWN, ID("t-1"), 1002, &me, &t, &tok);
    history_turn(&h, t, tok, "q2", TXT("a2"), 1002);
    c1_history_end(&h, t, tok);
    c1_history_begin(&h, OWN, ID("t-1"), 1003, &me, &t, &tok);
    history_turn(&h, t, tok, "q3", TXT("a3"), 1003);
    c1_history_end(&h, t, tok);

    m = t->first;
    ok(t->nmsgs == 4 && m->len == 2
       && memcmp(c1_msg_content(m), "q2", 2) == 0
       && m->next->role == C1_ROLE_ASSISTANT,
       "history: max_messages keeps the newest, oldest dropped first");

    ok(history_turn(&h, t, tok, "x", TXT("y"), 1003) == C1_HISTORY_NONE,
       "history: no commit once the turn is over");

    /* ids: one already stored is not stored again */

    c1_history_begin(&h, OWN, ID("t-1"), 1003, &me, &t, &tok);
    in[0].id = c1_msg_id(t->last->next ? t->last : t->last);
    in[0].id_len = t->last->id_len;
    in[0].role = C1_ROLE_ASSISTANT;
    in[0].content = (unsigned char *) "dup";
    in[0].len = 3;
    in[1].id = (unsigned char *) "new";
    in[1].id_len = 3;
    in[1].role = C1_ROLE_ASSISTANT;
    in[1].content = (unsigned char *) "fresh";
    in[1].len = 5;
    in[2] = in[1];
    rc = c1_history_commit(&h, t, tok, in, 3, 0, NULL, 0, 1003, 1003000);
    ok(rc == C1_HISTORY_OK && t->last->len == 5
       && memcmp(c1_msg_id(t->last), "new", 3) == 0
       && t->nmsgs == 4,
       "history: a message id already stored, or twice in a turn, is "
       "stored once");
    c1_history_end(&h, t, tok);

    /* owners: the same id under two owners is two threads */

    c1_history_begin(&h, ALICE, ID("t-1"), 1004, &me, &t2, &tok2);
    ok(t2 != t && c1_history_find(&h, ALICE, ID("t-1")) == t2
       && c1_history_find(&h, BOB, ID("t-1")) == NULL,
       "history: a thread is its owner's");
    history_turn(&h, t2, tok2, "alice's", TXT("a"), 1004);
    c1_history_end(&h, t2, tok2);

    n = c1_history_list(&h, BOB, 0, 10, page, &more);
    ok(n == 0 && !more, "history: another owner lists none of them");
    n = c1_history_list(&h, ALICE, 0, 10, page, &more);
    ok(n == 1 && page[0] == t2, "history: an owner lists its own");

    /* the index: most recently updated first, pages by cursor */

    for (i = 0; i < 5; i++) {
        unsigned char  id[8];

        snprintf((char *) id, sizeof(id), "p%zu", i);
        ok(c1_history_create(&h, ALICE, id, 2, TXT("made"), 1005,
                             1005000 + i, &t) == C1_HISTORY_OK,
           "history: created");
    }

    ok(c1_history_create(&h, ALICE, ID("p0"), TXT("again"), 1005, 1005100,
                         &t) == C1_HISTORY_EXISTS,
       "history: create refuses an id taken");

    n = c1_history_list(&h, ALICE, 0, 2, page, &more);
    ok(n == 2 && more && tid(page[0], "p4") && tid(page[1], "p3"),
       "history: newest first, a page and more");
    seq = page[1]->seq;

    /* a thread made meanwhile goes first, and not into the next page */

    c1_history_create(&h, ALICE, ID("p9"), TXT("later"), 1006, 1006000, &t);

    n = c1_history_list(&h, ALICE, seq, 2, page, &more);
    ok(n == 2 && more && tid(page[0], "p2") && tid(page[1], "p1"),
       "history: the next page goes on after the cursor");
    seq = page[1]->seq;

    /* the cursor's thread updated: the page starts after its old place */

    t = c1_history_find(&h, ALICE, ID("p1"));
    ok(c1_history_rename(&h, t, TXT("renamed"), 1007, 1007000)
       == C1_HISTORY_OK && t->title_len == 7 && t->updated == 1007000,
       "history: rename");

    n = c1_history_list(&h, ALICE, seq, 10, page, &more);
    ok(n == 2 && !more && tid(page[0], "p0") && page[1] == t2,
       "history: a moved cursor thread: the page goes on where it was");

    n = c1_history_list(&h, ALICE, 0, 1, page, &more);
    ok(n == 1 && page[0] == t, "history: the renamed thread is first");

    /* a message replaced keeps its place, id and time */

    c1_history_begin(&h, ALICE, ID("t-1"), 1008, &me, &t2, &tok2);
    memcpy(big, c1_msg_id(t2->last), t2->last->id_len);
    in[0].id = big;
    in[0].id_len = t2->last->id_len;
    in[0].role = C1_ROLE_ASSISTANT;
    in[0].content = (unsigned char *) "with <context>{}</context>";
    in[0].len = 26;
    ok(c1_history_replace(&h, t2, &in[0], 1008, 1008000, &m)
       == C1_HISTORY_BUSY, "history: no replace while a turn runs");
    c1_history_end(&h, t2, tok2);

    seq = t2->last->time;
    ok(c1_history_replace(&h, t2, &in[0], 1008, 1008000, &m)
       == C1_HISTORY_OK && t2->last == m && m->len == 26
       && m->time == seq && t2->nmsgs == 2,
       "history: a message's content replaced");

    in[0].role = C1_ROLE_USER;
    ok(c1_history_replace(&h, t2, &in[0], 1008, 1008000, &m)
       == C1_HISTORY_ROLE, "history: replace checks the role");
    in[0].id = (unsigned char *) "none";
    in[0].id_len = 4;
    in[0].role = 0;
    ok(c1_history_replace(&h, t2, &in[0], 1008, 1008000, &m)
       == C1_HISTORY_NONE, "history: replace of an unknown message");

    /* replace: the turn's messages become the thread's */

    c1_history_begin(&h, ALICE, ID("t-1"), 1009, &me, &t2, &tok2);
    in[0].id = (unsigned char *) "u1";
    in[0].id_len = 2;
    in[0].role = C1_ROLE_USER;
    in[0].content = (unsigned char *) "one";
    in[0].len = 3;
    ok(c1_history_commit(&h, t2, tok2, in, 1, 1, NULL, 0, 1009, 1009000)
       == C1_HISTORY_OK && t2->nmsgs == 1 && t2->first->len == 3,
       "history: a replacing commit");
    c1_history_end(&h, t2, tok2);

    ok(c1_history_delete(&h, t2) == C1_HISTORY_OK
       && c1_history_find(&h, ALICE, ID("t-1")) == NULL,
       "history: delete");

    while (h.lru.next != &h.lru) {
        c1_history_delete(&h, h.lru.next);
    }

    ok(h.threads == 0 && h.owners[0] == NULL, "history: owners go too");

    /* a turn holds its thread however long it runs */

    c1_history_begin(&h, OWN, ID("t-2"), 2000, &me, &t2, &tok2);
    ok(c1_history_begin(&h, OWN, ID("t-2"), 2000 + 86400 * 365, &other, &t,
                        &tok) == C1_HISTORY_BUSY
       && c1_history_delete(&h, t2) == C1_HISTORY_BUSY,
       "history: a long turn keeps its lock, whatever time has passed");

    /* a turn whose process died (or whose pid went to another) gives way */

    c1_mem_dead = me;
    ok(c1_history_begin(&h, OWN, ID("t-2"), 2001, &other, &t, &tok)
       == C1_HISTORY_OK && t == t2 && tok != tok2,
       "history: a dead holder's turn gives way");
    c1_mem_dead.pid = 0;
    c1_history_end(&h, t2, tok2);
    ok(c1_history_find(&h, OWN, ID("t-2")) == t2 && c1_history_busy(t2),
       "history: the dead turn's end does not touch the new one");
    c1_history_end(&h, t2, tok);
    ok(c1_history_find(&h, OWN, ID("t-2")) == NULL,
       "history: the new turn ends it (an empty thread goes)");

    /* expiry */

    c1_history_begin(&h, OWN, ID("t-1"), 1003, &me, &t, &tok);
    history_turn(&h, t, tok, "q", TXT("a"), 1003);
    c1_history_end(&h, t, tok);

    c1_history_expire(&h, 1003 + 100, 10);
    ok(c1_history_find(&h, OWN, ID("t-1")) != NULL,
       "history: not yet expired");
    c1_history_expire(&h, 1003 + 101, 10);
    ok(c1_history_find(&h, OWN, ID("t-1")) == NULL && h.expired == 1
       && h.messages == 0 && h.bytes == 0,
       "history: expired after inactive");

    /* a full zone: the least recently used threads go, busy ones stay */

    mem.limit = mem.used + 3 * (sizeof(c1_thread_t) + 1200);

    c1_history_begin(&h, OWN, ID("a"), 3000, &me, &t, &tok);
    memset(big, 'a', sizeof(big));
    rc = history_turn(&h, t, tok, "q", big, 500, 3000);
    c1_history_end(&h, t, tok);
    c1_history_begin(&h, OWN, ID("b"), 3001, &me, &t, &tok);
    history_turn(&h, t, tok, "q", TXT("b"), 3001);
    c1_history_end(&h, t, tok);
    c1_history_begin(&h, OWN, ID("busy"), 3001, &me, &t2, &tok2);

    c1_history_begin(&h, OWN, ID("c"), 3002, &me, &t, &tok);
    rc = history_turn(&h, t, tok, "q", big, 3000, 3002);
    c1_history_end(&h, t, tok);

    ok(rc == C1_HISTORY_OK && h.evicted >= 1
       && c1_history_find(&h, OWN, ID("a")) == NULL
       && c1_history_find(&h, OWN, ID("busy")) == t2,
       "history: a full zone evicts the least recently used, not busy ones");

    n = c1_history_list(&h, OWN, 0, 8, page, &more);
    for (i = 0; i < n; i++) {
        if (tid(page[i], "a")) {
            break;
        }
    }
    ok(i == n, "history: an evicted thread is not listed");

    c1_history_begin(&h, OWN, ID("d"), 3003, &me, &t, &tok);
    rc = history_turn(&h, t, tok, "q", big, sizeof(big), 3003);
    c1_history_end(&h, t, tok);
    ok(rc == C1_HISTORY_NOMEM && h.dropped == 1
       && c1_history_find(&h, OWN, ID("d")) == NULL
       && c1_history_find(&h, OWN, ID("c")) != NULL,
       "history: a turn too large for the zone is dropped, evicting none");

    ok(c1_history_delete(&h, t2) == C1_HISTORY_BUSY,
       "history: a busy thread is not deleted");
    c1_history_end(&h, t2, tok2);

    while (h.lru.next != &h.lru) {
        c1_history_delete(&h, h.lru.next);
    }

    c1_history_mem_free(&mem, h.buckets);
    c1_history_mem_free(&mem, h.seqs);
    c1_history_mem_free(&mem, h.owners);
    ok(mem.used == 0, "history: all memory given back");
}


static void
test_remodel(void)
{
    int       rc;
    char     *out;
    size_t    len;
    c1_str_t  m = { (const unsigned char *) "c1/fallback \"2\"", 16 };

    rc = c1_request_remodel("{\"model\":\"a\",\"messages\":[],\"x\":1}", 35,
                            &m, &out, &len);
    ok(rc == C1_OK && len == strlen(out)
       && strcmp(out, "{\"model\":\"c1/fallback \\\"2\\\"\",\"messages\":[],"
                      "\"x\":1}") == 0,
       "remodel: the model replaced, the rest as it was");
    c1_free(out);

    ok(c1_request_remodel("[1]", 3, &m, &out, &len) == C1_ERROR
       && out == NULL, "remodel: not an object");
    ok(c1_request_remodel("{\"messages\":[]}", 15, &m, &out, &len)
       == C1_ERROR && out == NULL, "remodel: no model to replace");
}


/* the thread API's bodies and titles (ngx_http_c1_api.c) */

static const char *
title(const char *in, size_t len)
{
    static char  out[C1_TITLE_AUTO_MAX * 4 + 1];
    size_t       n;

    n = c1_title_from_content((const unsigned char *) in, len,
                              (unsigned char *) out);
    out[n] = '\0';

    return out;
}


static int
title_ok(const char *s)
{
    return c1_title_valid((const unsigned char *) s, strlen(s));
}


/* s repeated n times, in a static buffer */

static const char *
rep(const char *s, size_t n)
{
    static char  buf[8192];
    size_t       i, len;

    len = strlen(s);
    buf[0] = '\0';

    for (i = 0; i < n && (i + 1) * len < sizeof(buf); i++) {
        memcpy(buf + i * len, s, len + 1);
    }

    return buf;
}


static const char *
iso(uint64_t ms)
{
    static char  out[C1_ISO_TIME_LEN + 1];

    memset(out, 'X', sizeof(out));
    c1_time_iso(ms, out);
    out[C1_ISO_TIME_LEN] = '\0';

    return out;
}


typedef int (*c1_api_parse_pt)(const unsigned char *in, size_t len,
    c1_api_body_t *b, c1_error_t *err);


/* parses; "ok" or "error STATUS CODE PARAM" */

static const char *
parse(c1_api_parse_pt parser, const char *in, size_t len, c1_api_body_t *b)
{
    static char  out[512];
    int          rc;
    c1_error_t   err;

    memset(&err, 0, sizeof(err));

    rc = parser((const unsigned char *) in, len, b, &err);

    if (rc == C1_OK) {
        return "ok";
    }

    snprintf(out, sizeof(out), "error %d %s %s %s%s", err.status, err.type,
             err.code, err.param ? err.param : "null",
             b->root == NULL ? "" : " (tree kept)");

    return out;
}


static int
str_is(const c1_str_t *s, const char *want)
{
    if (want == NULL) {
        return s->data == NULL && s->len == 0;
    }

    return s->data != NULL && s->len == strlen(want)
           && memcmp(s->data, want, s->len) == 0
           && s->data[s->len] == '\0';
}


static const char *
rendered(char *out, const size_t *lenp)
{
    size_t       len;

    static char  buf[4096];

    if (out == NULL) {
        return "(null)";
    }

    len = *lenp;

    if (len != strlen(out) || len >= sizeof(buf)) {
        c1_free(out);
        return "(bad length)";
    }

    memcpy(buf, out, len + 1);
    c1_free(out);

    return buf;
}


#define S(s)  { (const unsigned char *) s, sizeof(s) - 1 }


static void
test_api_title(void)
{
    char  want[C1_TITLE_AUTO_MAX * 4 + 1], in[2048];

    is_str(title(J("What is 2+2?")), "What is 2+2?", "title: plain text");
    is_str(title(J("<content thesys=\"true\">Tell me &amp; &lt;b&gt; "
                   "&quot;x&quot; &#39;y&#39; &apos;z&apos;</content>")),
           "Tell me & <b> \"x\" 'y' 'z'",
           "title: C1Chat's wrapper taken off, entities decoded");
    is_str(title(J(" \r\n\t<content thesys=\"true\">hi</content> \n")),
           "hi", "title: the wrapper with whitespace around it");
    is_str(title(J("<content thesys=\"true\">  a\n\nb  </content>")), "a b",
           "title: whitespace inside the wrapper collapsed and trimmed");
    is_str(title(J("<content thesys='true'>hi</content>")),
           "<content thesys='true'>hi</content>",
           "title: another attribute is no wrapper");
    is_str(title(J("<content>hi</content>")), "<content>hi</content>",
           "title: no attribute, no wrapper");
    is_str(title(J("<content thesys=\"true\">hi")),
           "<content thesys=\"true\">hi", "title: no closing tag");
    is_str(title(J("<content thesys=\"true\">hi</content>!")),
           "<content thesys=\"true\">hi</content>!",
           "title: the closing tag not at the end");
    is_str(title(J("x<content thesys=\"true\">hi</content>")),
           "x<content thesys=\"true\">hi</content>",
           "title: the opening tag not at the start");
    is_str(title(J("<content thesys=\"true\"></content>")), "New thread",
           "title: an empty wrapper");
    is_str(title(J("<content thesys=\"true\">a</content></content>")),
           "a</content>", "title: only the last closing tag goes");
    is_str(title(J("&#65;&#x42;&#X43;&#x1F600;&#233;&#0233;&#x20AC;")),
           "ABC\xf0\x9f\x98\x80\xc3\xa9\xc3\xa9\xe2\x82\xac",
           "title: decimal and hex entities, as UTF-8");
    is_str(title(J("&#0; &#x0; &#xD800; &#57343; &#x110000; &#; &#x; &#65 ")),
           "&#0; &#x0; &#xD800; &#57343; &#x110000; &#; &#x; &#65",
           "title: bad numeric entities stay as text");
    is_str(title(J("&#99999999999999999999; &#x41z; &bogus; &AMP; &amp")),
           "&#99999999999999999999; &#x41z; &bogus; &AMP; &amp",
           "title: unknown and cut entities stay as text");
    is_str(title(J("&#x;&#65;&")), "&#x;A&",
           "title: an entity right after a bad one");
    is_str(title(J("&#x10FFFF;&#1114111;")),
           "\xf4\x8f\xbf\xbf\xf4\x8f\xbf\xbf", "title: U+10FFFF decoded");
    is_str(title(J("&amp;lt; &&amp; &#38;#65;")), "&lt; && &#65;",
           "title: entities decoded once");
    is_str(title(J("a&nbsp;&nbsp; b&#10;&#9;c&#160;d")), "a b c d",
           "title: decoded NBSP, newline and tab are whitespace");
    is_str(title(J(" \t\r\n\f\va \t\r\n\f\v b\xc2\xa0\xc2\xa0" "c  ")),
           "a b c", "title: whitespace runs collapsed, trimmed");
    is_str(title(J("")), "New thread", "title: empty");
    is_str(title(J(" \n\t\xc2\xa0 ")), "New thread", "title: blank");
    is_str(title(J("&nbsp;&#32;")), "New thread",
           "title: blank once decoded");
    is_str(title(J("a\xff" "b\xc3")), "ab", "title: bad bytes dropped");
    is_str(title(J("a\0b")), "ab", "title: a NUL byte dropped");
    is_str(title(J("\xff\xfe\xc0\x80")), "New thread",
           "title: nothing but bad bytes");
    is_str(title(J("\xed\xa0\x80x\xf4\x90\x80\x80y")), "xy",
           "title: a surrogate and past U+10FFFF dropped");

    /* cut at 80 code points */

    snprintf(in, sizeof(in), "%s", rep("a", 100));
    snprintf(want, sizeof(want), "%s", rep("a", 80));
    is_str(title(in, 100), want, "title: 100 ASCII letters cut at 80");
    is_str(title(in, 80), want, "title: 80 ASCII letters whole");
    snprintf(want, sizeof(want), "%s", rep("a", 79));
    is_str(title(in, 79), want, "title: 79 ASCII letters whole");

    snprintf(in, sizeof(in), "%s", rep("\xc3\xa9", 100));
    snprintf(want, sizeof(want), "%s", rep("\xc3\xa9", 80));
    is_str(title(in, strlen(in)), want, "title: 100 x U+00E9 cut at 80");

    snprintf(in, sizeof(in), "%s", rep("\xf0\x9f\x98\x80", 81));
    snprintf(want, sizeof(want), "%s", rep("\xf0\x9f\x98\x80", 80));
    is_str(title(in, strlen(in)), want,
           "title: 81 emoji cut at 80 (320 bytes, the most)");

    snprintf(in, sizeof(in), "%s\xe2\x82\xac\xe2\x82\xac", rep("a", 79));
    snprintf(want, sizeof(want), "%s\xe2\x82\xac", rep("a", 79));
    is_str(title(in, strlen(in)), want,
           "title: cut between two 3-byte characters");

    snprintf(in, sizeof(in), "%s&amp;b", rep("a", 79));
    snprintf(want, sizeof(want), "%s&", rep("a", 79));
    is_str(title(in, strlen(in)), want,
           "title: an entity is one character of the 80");

    snprintf(in, sizeof(in), "<content thesys=\"true\">%s</content>",
             rep("  x", 200));
    snprintf(want, sizeof(want), "%sx", rep("x ", 39));
    is_str(title(in, strlen(in)), want,
           "title: collapsed spaces count once, leading ones not at all");

    /* trimmed, then cut: the 80th character may be a space */

    snprintf(in, sizeof(in), "%s", rep("word ", 30));
    snprintf(want, sizeof(want), "%sword", rep("word ", 15));
    is_str(title(in, strlen(in)), want,
           "title: a cut at a space falls before it (79 characters)");

    /* title_valid */

    ok(title_ok("a"), "title_valid: 1 character");
    ok(!c1_title_valid((const unsigned char *) "", 0),
       "title_valid: empty refused");
    ok(title_ok(rep("a", 200)), "title_valid: 200 characters");
    ok(!title_ok(rep("a", 201)), "title_valid: 201 refused");
    ok(title_ok(rep("\xf0\x9f\x98\x80", 200)),
       "title_valid: 200 4-byte characters (800 bytes)");
    ok(!title_ok(rep("\xf0\x9f\x98\x80", 201)),
       "title_valid: 201 4-byte characters refused");
    ok(title_ok(rep("\xc3\xa9", 200)), "title_valid: 200 x U+00E9");
    ok(!title_ok(rep("\xc3\xa9", 201)), "title_valid: 201 x U+00E9 refused");
    ok(title_ok(" a "), "title_valid: spaces around kept");
    ok(!title_ok(" \t\r\n"), "title_valid: blank refused");
    ok(!title_ok("\xc2\xa0 \xc2\xa0"), "title_valid: NBSP is blank too");
    ok(!c1_title_valid((const unsigned char *) "a\0b", 3),
       "title_valid: NUL refused");
    ok(!title_ok("a\xff"), "title_valid: bad UTF-8 refused");
    ok(!title_ok("\xed\xa0\x80"), "title_valid: a surrogate refused");
    ok(!title_ok("\xe2\x82"), "title_valid: a cut sequence refused");
}


static void
test_api_ids(void)
{
    int   rc, good, i;
    char  a[C1_UUID_LEN + 1], b[C1_UUID_LEN + 1];

    is_str(iso(0), "1970-01-01T00:00:00.000Z", "time: the epoch");
    is_str(iso(1796168788123ULL), "2026-12-01T23:46:28.123Z",
           "time: milliseconds");
    is_str(iso(951782400000ULL), "2000-02-29T00:00:00.000Z",
           "time: a leap day");
    is_str(iso(2147483647999ULL), "2038-01-19T03:14:07.999Z",
           "time: the last of 32-bit time_t");
    is_str(iso(2147483648000ULL), "2038-01-19T03:14:08.000Z",
           "time: past 32-bit time_t");
    is_str(iso(4102444800999ULL), "2100-01-01T00:00:00.999Z",
           "time: 2100");
    is_str(iso(253402300799999ULL), "9999-12-31T23:59:59.999Z",
           "time: the last of year 9999");
    is_str(iso(253402300800000ULL), "9999-12-31T23:59:59.999Z",
           "time: later ones shown as the last of 9999");
    is_str(iso(UINT64_MAX), "9999-12-31T23:59:59.999Z",
           "time: UINT64_MAX");

    memset(a, 'X', sizeof(a));
    memset(b, 'X', sizeof(b));
    rc = c1_uuid(a);
    ok(rc == C1_OK && c1_uuid(b) == C1_OK && a[C1_UUID_LEN] == 'X',
       "uuid: made, 36 bytes written");
    a[C1_UUID_LEN] = '\0';
    b[C1_UUID_LEN] = '\0';

    good = 1;

    for (i = 0; i < C1_UUID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            good &= (a[i] == '-');

        } else {
            good &= ((a[i] >= '0' && a[i] <= '9')
                     || (a[i] >= 'a' && a[i] <= 'f'));
        }
    }

    ok(good, "uuid: lowercase hex and dashes, 8-4-4-4-12");
    ok(a[14] == '4', "uuid: version 4");
    ok(strchr("89ab", a[19]) != NULL, "uuid: variant 10");
    ok(strcmp(a, b) != 0, "uuid: two differ");
    ok(c1_thread_id_valid((unsigned char *) a, C1_UUID_LEN),
       "uuid: a valid thread id");
}


static void
test_api_parse(void)
{
    c1_api_body_t  b;
    char           in[1024];

#define CREATE(s)   parse(c1_api_parse_create, J(s), &b)
#define UPDATE(s)   parse(c1_api_parse_update, J(s), &b)
#define MESSAGE(s)  parse(c1_api_parse_message, J(s), &b)
#define BAD(code, param)  "error 400 invalid_request_error " code " " param

    /* create */

    is_str(CREATE(""), "ok", "create: an empty body");
    ok(b.root != NULL && b.title.data == NULL && b.first.data == NULL
       && b.first_id.data == NULL, "create: an empty body is {}");
    c1_api_body_free(&b);
    ok(b.root == NULL, "create: body freed");
    c1_api_body_free(&b);

    is_str(CREATE("{}"), "ok", "create: {}");
    ok(b.title.data == NULL && b.first.data == NULL, "create: {} gives none");
    c1_api_body_free(&b);

    is_str(CREATE("{\"messages\":null,\"title\":null}"), "ok",
           "create: nulls are none");
    ok(b.title.data == NULL && b.first.data == NULL,
       "create: nulls give none");
    c1_api_body_free(&b);

    is_str(CREATE("{\"messages\":[{\"role\":\"system\",\"content\":5},"
                  "{\"id\":\"a1\",\"role\":\"assistant\",\"content\":\"a\"},"
                  "{\"id\":\"m1\",\"role\":\"user\",\"content\":\"hi\\n\"},"
                  "{\"role\":\"user\",\"content\":\"second\"},"
                  "{\"content\":[]}],"
                  "\"title\":\" T \\u00e9 \"}"), "ok",
           "create: messages and a title");
    ok(str_is(&b.title, " T \xc3\xa9 ") && str_is(&b.first, "hi\n")
       && str_is(&b.first_id, "m1"),
       "create: the title as given, the first user message and its id");
    c1_api_body_free(&b);

    is_str(CREATE("{\"messages\":[{\"role\":\"user\",\"content\":["
                  "{\"type\":\"text\",\"text\":\"a\"},"
                  "{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}},"
                  "{\"type\":\"text\",\"text\":\"b c\"}]}]}"), "ok",
           "create: an array content");
    ok(str_is(&b.first, "a\nb c") && b.first_id.data == NULL
       && b.title.data == NULL, "create: its text parts joined by \\n");
    c1_api_body_free(&b);

    is_str(CREATE("{\"messages\":[{\"role\":\"user\",\"content\":[]}]}"),
           "ok", "create: an empty array content");
    ok(str_is(&b.first, ""), "create: gives an empty first message");
    c1_api_body_free(&b);

    is_str(CREATE("{\"messages\":[{\"role\":\"user\",\"content\":["
                  "{\"type\":\"image_url\"}]}]}"), "ok",
           "create: an array content with no text part");
    ok(str_is(&b.first, ""), "create: gives an empty first message too");
    c1_api_body_free(&b);

    snprintf(in, sizeof(in), "{\"title\":\"%s\"}", rep("\xc3\xa9", 200));
    is_str(parse(c1_api_parse_create, in, strlen(in), &b), "ok",
           "create: a title of 200 characters");
    c1_api_body_free(&b);
    snprintf(in, sizeof(in), "{\"title\":\"%s\"}", rep("a", 201));
    is_str(parse(c1_api_parse_create, in, strlen(in), &b),
           BAD("invalid_title", "title"),
           "create: a title of 201 characters");

    is_str(CREATE("nope"), BAD("invalid_json", "null"), "create: not JSON");
    is_str(CREATE(" "), BAD("invalid_json", "null"), "create: blank body");
    is_str(CREATE("{\"title\":\"a\\u0000\"}"), BAD("invalid_json", "null"),
           "create: \\u0000");
    is_str(CREATE("{\"title\":\"a\xff\"}"), BAD("invalid_json", "null"),
           "create: bad UTF-8");
    is_str(CREATE("{} x"), BAD("invalid_json", "null"),
           "create: trailing garbage");
    is_str(CREATE("[]"), BAD("invalid_body", "null"), "create: an array");
    is_str(CREATE("\"x\""), BAD("invalid_body", "null"), "create: a string");
    is_str(CREATE("{\"messages\":{}}"), BAD("invalid_body", "messages"),
           "create: messages not an array");
    is_str(CREATE("{\"messages\":\"hi\"}"), BAD("invalid_body", "messages"),
           "create: messages a string");
    is_str(CREATE("{\"messages\":[1]}"), BAD("invalid_body", "messages"),
           "create: a message not an object");
    is_str(CREATE("{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
                  "null]}"), BAD("invalid_body", "messages"),
           "create: a later message not an object");
    is_str(CREATE("{\"messages\":[{\"id\":\"\",\"role\":\"user\","
                  "\"content\":\"x\"}]}"), BAD("invalid_message_id", "id"),
           "create: an empty message id");
    is_str(CREATE("{\"messages\":[{\"id\":\"a b\",\"role\":\"user\","
                  "\"content\":\"x\"}]}"), BAD("invalid_message_id", "id"),
           "create: a message id with a space");
    is_str(CREATE("{\"messages\":[{\"id\":\"\\u00e9\",\"role\":\"user\","
                  "\"content\":\"x\"}]}"), BAD("invalid_message_id", "id"),
           "create: a message id not ASCII");
    is_str(CREATE("{\"messages\":[{\"id\":7,\"role\":\"user\","
                  "\"content\":\"x\"}]}"), BAD("invalid_message_id", "id"),
           "create: a message id not a string");
    is_str(CREATE("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},"
                  "{\"id\":[],\"role\":\"assistant\"}]}"),
           BAD("invalid_message_id", "id"),
           "create: a later message's bad id");
    snprintf(in, sizeof(in), "{\"messages\":[{\"id\":\"%s\",\"role\":"
             "\"user\",\"content\":\"x\"}]}", rep("i", 128));
    is_str(parse(c1_api_parse_create, in, strlen(in), &b), "ok",
           "create: a message id of 128");
    ok(b.first_id.len == 128, "create: its id");
    c1_api_body_free(&b);
    snprintf(in, sizeof(in), "{\"messages\":[{\"id\":\"%s\",\"role\":"
             "\"user\",\"content\":\"x\"}]}", rep("i", 129));
    is_str(parse(c1_api_parse_create, in, strlen(in), &b),
           BAD("invalid_message_id", "id"), "create: a message id of 129");
    is_str(CREATE("{\"messages\":[{\"role\":5,\"content\":\"x\"}]}"),
           BAD("invalid_message", "role"), "create: a role not a string");
    is_str(CREATE("{\"messages\":[{\"role\":\"user\",\"content\":5}]}"),
           BAD("invalid_message", "content"),
           "create: the first user content a number");
    is_str(CREATE("{\"messages\":[{\"role\":\"user\"}]}"),
           BAD("invalid_message", "content"),
           "create: the first user content missing");
    is_str(CREATE("{\"messages\":[{\"role\":\"user\",\"content\":null}]}"),
           BAD("invalid_message", "content"),
           "create: the first user content null");
    is_str(CREATE("{\"messages\":[{\"role\":\"user\",\"content\":{}}]}"),
           BAD("invalid_message", "content"),
           "create: the first user content an object");
    is_str(CREATE("{\"messages\":[{\"role\":\"user\",\"content\":[\"a\"]}]}"),
           BAD("invalid_message", "content"),
           "create: a content part not an object");
    is_str(CREATE("{\"messages\":[{\"role\":\"user\",\"content\":"
                  "[{\"text\":\"a\"}]}]}"),
           BAD("invalid_message", "content"),
           "create: a content part with no type");
    is_str(CREATE("{\"messages\":[{\"role\":\"user\",\"content\":"
                  "[{\"type\":\"text\",\"text\":1}]}]}"),
           BAD("invalid_message", "content"),
           "create: a text part's text not a string");
    is_str(CREATE("{\"title\":\"\"}"), BAD("invalid_title", "title"),
           "create: an empty title");
    is_str(CREATE("{\"title\":\" \\t\\n\"}"), BAD("invalid_title", "title"),
           "create: a blank title");
    is_str(CREATE("{\"title\":5}"), BAD("invalid_title", "title"),
           "create: a title not a string");
    is_str(CREATE("{\"title\":[\"a\"]}"), BAD("invalid_title", "title"),
           "create: a title an array");

    /* update */

    is_str(UPDATE("{\"id\":5,\"title\":\" New \\\"one\\\" \","
                  "\"createdAt\":[]}"), "ok", "update: a title");
    ok(str_is(&b.title, " New \"one\" ") && b.first.data == NULL,
       "update: the title as given, nothing else read");
    c1_api_body_free(&b);
    is_str(UPDATE(""), BAD("invalid_json", "null"), "update: no body");
    is_str(UPDATE("{"), BAD("invalid_json", "null"), "update: not JSON");
    is_str(UPDATE("null"), BAD("invalid_body", "null"), "update: null");
    is_str(UPDATE("{}"), BAD("invalid_title", "title"), "update: no title");
    is_str(UPDATE("{\"title\":null}"), BAD("invalid_title", "title"),
           "update: a null title");
    is_str(UPDATE("{\"title\":\"\\u00a0\"}"), BAD("invalid_title", "title"),
           "update: an NBSP title");
    is_str(UPDATE("{\"title\":true}"), BAD("invalid_title", "title"),
           "update: a title not a string");

    /* message */

    is_str(MESSAGE("{\"id\":\"m-1\",\"content\":\"new \\u00e9\"}"), "ok",
           "message: id and content");
    ok(str_is(&b.id, "m-1") && str_is(&b.content, "new \xc3\xa9")
       && b.role.data == NULL, "message: no role given");
    c1_api_body_free(&b);
    is_str(MESSAGE("{\"id\":\"m\",\"role\":\"assistant\",\"content\":\"\"}"),
           "ok", "message: a role and an empty content");
    ok(str_is(&b.id, "m") && str_is(&b.content, "")
       && str_is(&b.role, "assistant"), "message: the role given");
    c1_api_body_free(&b);
    is_str(MESSAGE("{\"id\":\"m\",\"role\":\"user\",\"content\":\"x\"}"),
           "ok", "message: the role user");
    ok(str_is(&b.role, "user"), "message: role user");
    c1_api_body_free(&b);
    is_str(MESSAGE("{\"id\":\"m\",\"role\":null,\"content\":\"x\"}"),
           "ok", "message: a null role is none");
    ok(b.role.data == NULL, "message: no role");
    c1_api_body_free(&b);

    is_str(MESSAGE(""), BAD("invalid_json", "null"), "message: no body");
    is_str(MESSAGE("{\"id\":\"m\",}"), BAD("invalid_json", "null"),
           "message: not JSON");
    is_str(MESSAGE("[{\"id\":\"m\"}]"), BAD("invalid_body", "null"),
           "message: an array");
    is_str(MESSAGE("{\"content\":\"x\"}"), BAD("invalid_message_id", "id"),
           "message: no id");
    is_str(MESSAGE("{\"id\":1,\"content\":\"x\"}"),
           BAD("invalid_message_id", "id"), "message: an id not a string");
    is_str(MESSAGE("{\"id\":\"\",\"content\":\"x\"}"),
           BAD("invalid_message_id", "id"), "message: an empty id");
    is_str(MESSAGE("{\"id\":\"a\\u007f\",\"content\":\"x\"}"),
           BAD("invalid_message_id", "id"), "message: an id with DEL");
    is_str(MESSAGE("{\"id\":\"m\"}"), BAD("invalid_message", "content"),
           "message: no content");
    is_str(MESSAGE("{\"id\":\"m\",\"content\":[{\"type\":\"text\","
                   "\"text\":\"x\"}]}"), BAD("invalid_message", "content"),
           "message: an array content");
    is_str(MESSAGE("{\"id\":\"m\",\"content\":null}"),
           BAD("invalid_message", "content"), "message: a null content");
    is_str(MESSAGE("{\"id\":\"m\",\"role\":\"system\",\"content\":\"x\"}"),
           BAD("invalid_message", "role"), "message: the role system");
    is_str(MESSAGE("{\"id\":\"m\",\"role\":\"User\",\"content\":\"x\"}"),
           BAD("invalid_message", "role"), "message: roles are exact");
    is_str(MESSAGE("{\"id\":\"m\",\"role\":1,\"content\":\"x\"}"),
           BAD("invalid_message", "role"), "message: a role not a string");

#undef CREATE
#undef UPDATE
#undef MESSAGE
#undef BAD
}


static void
test_api_render(void)
{
    size_t           len;
    c1_str_t         cursor = S("abc_-1");
    c1_api_msg_t     m[2];
    c1_api_thread_t  t[2];

    t[0].id = (c1_str_t) S("t1");
    t[0].title = (c1_str_t) S("a \"q\" \\ / \n\t\x01 \xc3\xa9 "
                              "\xf0\x9f\x98\x80 </script>");
    t[0].created = 0;
    t[0].updated = 1796168788123ULL;

    t[1].id = (c1_str_t) { (const unsigned char *) "t2-and-more", 2 };
    t[1].title = (c1_str_t) { (const unsigned char *) "New thread!", 10 };
    t[1].created = 2147483648000ULL;
    t[1].updated = 2147483648001ULL;

    is_str(rendered(c1_api_render_thread(&t[0], &len), &len),
           "{\"id\":\"t1\",\"title\":\"a \\\"q\\\" \\\\ / \\n\\t\\u0001 "
           "\xc3\xa9 \xf0\x9f\x98\x80 </script>\","
           "\"createdAt\":\"1970-01-01T00:00:00.000Z\","
           "\"updatedAt\":\"2026-12-01T23:46:28.123Z\"}",
           "render: a thread, escaped, keys in order");

    is_str(rendered(c1_api_render_thread(&t[1], &len), &len),
           "{\"id\":\"t2\",\"title\":\"New thread\","
           "\"createdAt\":\"2038-01-19T03:14:08.000Z\","
           "\"updatedAt\":\"2038-01-19T03:14:08.001Z\"}",
           "render: strings taken by their length");

    is_str(rendered(c1_api_render_list(t + 1, 1, &cursor, &len), &len),
           "{\"threads\":[{\"id\":\"t2\",\"title\":\"New thread\","
           "\"createdAt\":\"2038-01-19T03:14:08.000Z\","
           "\"updatedAt\":\"2038-01-19T03:14:08.001Z\"}],"
           "\"nextCursor\":\"abc_-1\"}",
           "render: a page with a next cursor");

    is_str(rendered(c1_api_render_list(t, 2, NULL, &len), &len),
           "{\"threads\":[{\"id\":\"t1\",\"title\":\"a \\\"q\\\" \\\\ / "
           "\\n\\t\\u0001 \xc3\xa9 \xf0\x9f\x98\x80 </script>\","
           "\"createdAt\":\"1970-01-01T00:00:00.000Z\","
           "\"updatedAt\":\"2026-12-01T23:46:28.123Z\"},"
           "{\"id\":\"t2\",\"title\":\"New thread\","
           "\"createdAt\":\"2038-01-19T03:14:08.000Z\","
           "\"updatedAt\":\"2038-01-19T03:14:08.001Z\"}]}",
           "render: the last page, no nextCursor");

    is_str(rendered(c1_api_render_list(NULL, 0, NULL, &len), &len),
           "{\"threads\":[]}", "render: no threads");

    is_str(rendered(c1_api_render_list(NULL, 0, &cursor, &len), &len),
           "{\"threads\":[],\"nextCursor\":\"abc_-1\"}",
           "render: no threads, a cursor");

    m[0].id = (c1_str_t) S("m1");
    m[0].role = "user";
    m[0].content = (c1_str_t) S("<content thesys=\"true\">a &amp; b"
                                "</content>\r\n");
    m[1].id = (c1_str_t) S("r-1");
    m[1].role = "assistant";
    m[1].content = (c1_str_t) S("");

    is_str(rendered(c1_api_render_messages(m, 2, &len), &len),
           "[{\"id\":\"m1\",\"role\":\"user\",\"content\":"
           "\"<content thesys=\\\"true\\\">a &amp; b</content>\\r\\n\"},"
           "{\"id\":\"r-1\",\"role\":\"assistant\",\"content\":\"\"}]",
           "render: messages");

    is_str(rendered(c1_api_render_messages(NULL, 0, &len), &len), "[]",
           "render: no messages");

    is_str(rendered(c1_api_render_message(&m[1], &len), &len),
           "{\"id\":\"r-1\",\"role\":\"assistant\",\"content\":\"\"}",
           "render: a message");

    m[0].content = (c1_str_t) { (const unsigned char *) "\"x\"yz", 3 };
    is_str(rendered(c1_api_render_message(&m[0], &len), &len),
           "{\"id\":\"m1\",\"role\":\"user\",\"content\":\"\\\"x\\\"\"}",
           "render: a message's content taken by its length");
}


static const char *
duration(uint64_t ms)
{
    static char  buf[C1_BUCKET_DURATION_LEN];

    c1_bucket_duration(ms, buf);

    return buf;
}


static void
test_bucket(void)
{
    int64_t             level;
    c1_bucket_state_t   st;
    c1_bucket_limit_t   day = { 1000, C1_BUCKET_DAY, 1000 };
    c1_bucket_limit_t   fast = { 600, C1_BUCKET_MINUTE, 650 };

    c1_bucket_state(0, &day, &st);
    ok(st.remaining == 1000 && st.reset == 0 && st.retry == 0,
       "bucket: a new key is full");

    level = c1_bucket_debit(0, 400);
    ok(level == 400000, "bucket: a debit in milli-tokens");

    c1_bucket_state(level, &day, &st);
    ok(st.remaining == 600 && st.retry == 0, "bucket: 600 left of 1000");
    ok(st.reset == 34560000, "bucket: full again in 400 / 1000 of a day");

    level = c1_bucket_level(c1_bucket_debit(level, 600), 5000, 5000, &day);
    c1_bucket_state(level, &day, &st);
    ok(st.remaining == 0, "bucket: spent to the token, nothing left");
    ok(st.retry == 86400, "bucket: one token back in 86.4 s");

    /* a second later: a hundredth of a token back, still nothing */

    level = c1_bucket_level(level, 5000, 6000, &day);
    c1_bucket_state(level, &day, &st);
    ok(level == 1000000 - 11 && st.remaining == 0,
       "bucket: refilled by the ms, floored to milli-tokens");

    level = c1_bucket_level(c1_bucket_debit(0, 1200), 0, 0, &day);
    c1_bucket_state(level, &day, &st);
    ok(st.remaining == 0 && st.retry == 86400 * 201,
       "bucket: an overrun of 200 waits for 201 tokens");

    /* burst: capacity 650 refilled at 10 a second */

    c1_bucket_state(c1_bucket_debit(0, 650), &fast, &st);
    ok(st.remaining == 0 && st.retry == 100 && st.reset == 65000,
       "bucket: burst, 10 tokens a second");

    level = c1_bucket_level(650000, 1000, 1150, &fast);
    c1_bucket_state(level, &fast, &st);
    ok(level == 648500 && st.remaining == 1,
       "bucket: 150 ms later one token and a half are back");

    ok(c1_bucket_level(650000, 1000, 1000 + 65000, &fast) == 0
       && c1_bucket_level(650000, 1000, (uint64_t) 1 << 60, &fast) == 0,
       "bucket: full once refilled, never below empty");
    ok(c1_bucket_level(5000, 9000, 1000, &fast) == 5000,
       "bucket: a clock that went back refills nothing");
    ok(c1_bucket_debit(0, UINT64_MAX) == ((int64_t) 1 << 62)
       && c1_bucket_debit((int64_t) 1 << 62, 1000) == ((int64_t) 1 << 62),
       "bucket: an overrun never wraps");

    is_str(duration(0), "0s", "duration: 0s");
    is_str(duration(17), "17ms", "duration: ms");
    is_str(duration(1000), "1s", "duration: 1s");
    is_str(duration(8640), "8.64s", "duration: a fraction, zeros cut");
    is_str(duration(360000), "6m0s", "duration: minutes");
    is_str(duration(83456), "1m23.456s", "duration: minutes, seconds, ms");
    is_str(duration(7200000), "2h0m0s", "duration: hours");
    is_str(duration(86399900), "23h59m59.9s", "duration: a day nearly");
    is_str(duration(C1_BUCKET_DAY * 3), "72h0m0s", "duration: days as hours");
    is_str(duration(100), "100ms", "duration: 100ms");
    is_str(duration(1001), "1.001s", "duration: a ms past a second");
    is_str(duration(1010), "1.01s", "duration: ten ms past a second");
    is_str(duration(61000), "1m1s", "duration: a minute and a second");
    is_str(duration(3600000), "1h0m0s", "duration: an hour");
    is_str(duration(UINT64_MAX / 2), "2562047788015h12m55.807s",
           "duration: the longest a drain gives");

    ok(c1_bucket_estimate(0) == 0 && c1_bucket_estimate(1) == 1
       && c1_bucket_estimate(4) == 1 && c1_bucket_estimate(5) == 2,
       "estimate: a token for four bytes, rounded up");
}


static void
test_usage(void)
{
    const char    *out;
    c1_error_t     err;
    c1_relay_t     r;
    c1_request_t   req;
    c1_settings_t  s;

    static const char  stream[] =
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}"
        "\n\n"
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,"
        "\"completion_tokens\":6,\"total_tokens\":11}}\n\n"
        "data: [DONE]\n\n";
    static const char  shown[] =
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}"
        "\n\n"
        "data: [DONE]\n\n";

    memset(&s, 0, sizeof(s));
    s.model = (c1_str_t) { (const unsigned char *) "m", 1 };
    s.count_usage = 1;

    out = build(J("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                  "\"stream\":true}"), C1_BODY_JSON, &s, &req, &err);
    ok(strstr(out, "\"stream_options\":{\"include_usage\":true}") != NULL
       && req.hide_usage, "usage: a limit asks an OpenAI stream for usage, "
       "to hide");

    out = build(J("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                  "\"stream\":true,\"stream_options\":{\"include_usage\":"
                  "true}}"), C1_BODY_JSON, &s, &req, &err);
    ok(strstr(out, "\"stream_options\":{\"include_usage\":true}") != NULL
       && !req.hide_usage, "usage: the client's own ask is not hidden");

    out = build(J("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                  "\"stream\":true,\"stream_options\":{\"include_usage\":"
                  "false,\"x\":1}}"), C1_BODY_JSON, &s, &req, &err);
    ok(strstr(out, "\"stream_options\":{\"x\":1,\"include_usage\":true}")
       != NULL && req.hide_usage, "usage: include_usage false turned true, "
       "the rest kept");

    out = build(J("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                  "\"stream\":true,\"stream_options\":3}"), C1_BODY_JSON, &s,
                &req, &err);
    ok(strstr(out, "\"stream_options\":{\"include_usage\":true}") != NULL
       && req.hide_usage, "usage: stream_options not an object: replaced");

    out = build(J("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}"),
                C1_BODY_JSON, &s, &req, &err);
    ok(strstr(out, "stream_options") == NULL && !req.hide_usage,
       "usage: not a stream: nothing asked");

    s.stream = 1;
    out = build(J("hello"), C1_BODY_TEXT, &s, &req, &err);
    ok(strstr(out, "\"stream_options\":{\"include_usage\":true}") != NULL,
       "usage: a limit asks a prompt stream for usage");

    c1_relay_init(&r, C1_MODE_OPENAI, 65536);
    r.hide_usage = 1;
    ok(c1_relay_feed(&r, (const unsigned char *) stream, sizeof(stream) - 1)
       == C1_OK && same(&r, shown, sizeof(shown) - 1)
       && r.total_tokens == 11 && r.content == 2,
       "usage: the usage chunk read, not relayed");
    c1_relay_free(&r);

    c1_relay_init(&r, C1_MODE_OPENAI, 65536);
    r.hide_usage = 1;
    r.tree = 1;
    ok(c1_relay_feed(&r, (const unsigned char *) stream, sizeof(stream) - 1)
       == C1_OK && same(&r, shown, sizeof(shown) - 1)
       && r.total_tokens == 11,
       "usage: the same read with cJSON");
    c1_relay_free(&r);

    c1_relay_init(&r, C1_MODE_OPENAI, 65536);
    ok(c1_relay_feed(&r, (const unsigned char *) stream, sizeof(stream) - 1)
       == C1_OK && same(&r, stream, sizeof(stream) - 1),
       "usage: relayed when the client asked for it");
    c1_relay_free(&r);
}


static int
tools_event(void *data, const unsigned char *ev, size_t len)
{
    return c1_tool_calls_event(data, ev, len);
}


/* a stream through the SSE parser, cut every "step" bytes */

static int
tools_stream(const char *in, size_t len, size_t step, c1_tool_calls_t *tc)
{
    int       rc;
    size_t    pos, n;
    c1_sse_t  sse;

    c1_tool_calls_init(tc, 65536);
    c1_sse_init(&sse, 65536);

    rc = C1_OK;

    for (pos = 0; pos < len && rc == C1_OK; pos += n) {
        n = (step && step < len - pos) ? step : len - pos;
        rc = c1_sse_feed(&sse, (const unsigned char *) in + pos, n,
                         tools_event, tc);
    }

    if (rc == C1_OK) {
        rc = c1_sse_end(&sse, tools_event, tc);
    }

    c1_sse_free(&sse);

    return rc;
}


static int
buf_is(const c1_buf_t *b, const char *want)
{
    return b->len == strlen(want) && memcmp(b->data, want, b->len) == 0;
}


static void
test_tools(void)
{
    int               good;
    char             *out;
    size_t            len, step;
    c1_str_t          msgs[2];
    c1_tool_calls_t   tc;
    unsigned char     think[256];

    static const char  stream[] =
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
        "\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\","
        "\"function\":{\"name\":\"get_planets\",\"arguments\":\"\"}}]}}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":"
        "[{\"index\":0,\"function\":{\"arguments\":\"{\\\"n\\\":\"}}]}}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":"
        "[{\"index\":1,\"id\":\"call_b\",\"function\":{\"name\":\"weather\","
        "\"arguments\":\"{\\\"city\\\":\\\"\\u00c9vry\\\"}\"}}]}}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":"
        "[{\"index\":0,\"function\":{\"arguments\":\"3}\"}}]}}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{},"
        "\"finish_reason\":\"tool_calls\"}]}\n\n"
        "data: [DONE]\n\n";

    good = 1;

    for (step = 0; step < sizeof(stream); step += (step < 40) ? 1 : 7) {
        if (tools_stream(stream, sizeof(stream) - 1, step, &tc) != C1_OK
            || tc.n != 2 || !tc.finished
            || !buf_is(&tc.calls[0].id, "call_a")
            || !buf_is(&tc.calls[0].name, "get_planets")
            || !buf_is(&tc.calls[0].arguments, "{\"n\":3}")
            || !buf_is(&tc.calls[1].id, "call_b")
            || !buf_is(&tc.calls[1].name, "weather")
            || !buf_is(&tc.calls[1].arguments,
                       "{\"city\":\"\xc3\x89vry\"}"))
        {
            good = 0;
        }

        c1_tool_calls_free(&tc);
    }

    ok(good, "tools: two calls gathered from their deltas, cut anywhere");

    tools_stream(stream, sizeof(stream) - 1, 0, &tc);
    ok(c1_tool_calls_check(&tc, 0) == C1_OK
       && c1_tool_calls_check(&tc, 1) == C1_OK, "tools: both runnable");

    out = c1_tool_calls_message(&tc, &len);
    is_str(out, "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
           "{\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":"
           "\"get_planets\",\"arguments\":\"{\\\"n\\\":3}\"}},"
           "{\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":"
           "\"weather\",\"arguments\":\"{\\\"city\\\":\\\"\xc3\x89vry\\\"}\"}}"
           "]}", "tools: the assistant's message with its calls");
    c1_free(out);

    out = c1_tool_result_message(&tc.calls[1],
                                 (const unsigned char *) "{\"t\":\"<3\"}", 10,
                                 &len);
    is_str(out, "{\"role\":\"tool\",\"tool_call_id\":\"call_b\",\"content\":"
           "\"{\\\"t\\\":\\\"<3\\\"}\"}", "tools: a result message");
    c1_free(out);
    c1_tool_calls_free(&tc);

    /* a whole answer */

    c1_tool_calls_init(&tc, 65536);
    ok(c1_tool_calls_answer(&tc, (const unsigned char *) J(
       "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
       "\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":"
       "\"function\",\"function\":{\"name\":\"get_planets\",\"arguments\":"
       "\"not json\"}},{\"type\":\"function\",\"function\":{\"name\":\"x\"}}]},"
       "\"finish_reason\":\"tool_calls\"}]}"))
       == C1_OK && tc.n == 2 && tc.finished, "tools: a whole answer's calls");
    ok(c1_tool_calls_check(&tc, 0) == C1_ERROR
       && strstr(tc.err.message, "not a JSON object") != NULL,
       "tools: arguments that are not JSON refused, with a reason");
    ok(c1_tool_calls_check(&tc, 1) == C1_OK
       && buf_is(&tc.calls[1].id, "call_1")
       && buf_is(&tc.calls[1].arguments, "{}"),
       "tools: no id made one, no arguments made {}");
    c1_tool_calls_free(&tc);

    /* a call that names no tool: still rendered back, its name "" */

    c1_tool_calls_init(&tc, 65536);
    ok(c1_tool_calls_event(&tc, (const unsigned char *) J(
       "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,"
       "\"id\":\"c9\",\"function\":{\"arguments\":\"{}\"}}]}}]}"))
       == C1_OK && tc.n == 1 && c1_tool_calls_check(&tc, 0) == C1_ERROR,
       "tools: a call without a name is not runnable");
    out = c1_tool_calls_message(&tc, &len);
    is_str(out, "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
           "{\"id\":\"c9\",\"type\":\"function\",\"function\":{\"name\":"
           "\"\",\"arguments\":\"{}\"}}]}",
           "tools: a call without a name rendered back (an empty string)");
    c1_free(out);
    c1_tool_calls_free(&tc);

    c1_tool_calls_init(&tc, 65536);
    ok(c1_tool_calls_answer(&tc, (const unsigned char *) J(
       "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
       "\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}")) == C1_OK
       && tc.n == 0 && !tc.finished, "tools: an answer without calls");
    ok(c1_tool_calls_answer(&tc, (const unsigned char *) J("{oops")) != C1_OK
       && tc.failed, "tools: an answer that is not JSON");
    c1_tool_calls_free(&tc);

    /* bounds */

    c1_tool_calls_init(&tc, 8);
    ok(c1_tool_calls_event(&tc, (const unsigned char *) J(
       "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":"
       "{\"name\":\"a\",\"arguments\":\"{\\\"long\\\":1}\"}}]}}]}"))
       == C1_ERROR && tc.failed, "tools: arguments over the bound refused");
    c1_tool_calls_free(&tc);

    c1_tool_calls_init(&tc, 8);
    ok(c1_tool_calls_event(&tc, (const unsigned char *) J(
       "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":-1}]}}]}"))
       == C1_ERROR, "tools: a negative index refused");
    c1_tool_calls_free(&tc);

    c1_tool_calls_init(&tc, 8);
    good = 1;
    for (len = 0; len <= C1_TOOL_CALLS_MAX; len++) {
        char  ev[128];

        snprintf(ev, sizeof(ev), "{\"choices\":[{\"delta\":{\"tool_calls\":"
                 "[{\"index\":%zu,\"function\":{\"name\":\"t\"}}]}}]}", len);
        if ((c1_tool_calls_event(&tc, (const unsigned char *) ev,
                                 strlen(ev)) == C1_OK)
            != (len < C1_TOOL_CALLS_MAX))
        {
            good = 0;
        }
    }
    ok(good && tc.n == C1_TOOL_CALLS_MAX, "tools: 16 calls at most");
    c1_tool_calls_free(&tc);

    /* C1's request: tools added, messages added, tools taken away */

    ok(c1_request_tools(J("{\"model\":\"m\",\"messages\":[]}"),
                        J("[{\"type\":\"function\"}]"), &out, &len) == C1_OK,
       "tools: added to the request");
    is_str(out, "{\"model\":\"m\",\"messages\":[],\"tools\":[{\"type\":"
           "\"function\"}]}", "tools: the request with its tools");

    msgs[0] = (c1_str_t) { (const unsigned char *) "{\"role\":\"assistant\"}",
                           20 };
    msgs[1] = (c1_str_t) { (const unsigned char *) "{\"role\":\"tool\"}", 15 };

    {
        char    *next;
        size_t   nlen;

        ok(c1_request_extend(out, len, msgs, 2, 0, &next, &nlen) == C1_OK,
           "tools: the next round's request");
        is_str(next, "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\"},"
               "{\"role\":\"tool\"}],\"tools\":[{\"type\":\"function\"}]}",
               "tools: the messages added");
        c1_free(next);

        ok(c1_request_extend(out, len, msgs, 1, 1, &next, &nlen) == C1_OK,
           "tools: the last round's request");
        is_str(next, "{\"model\":\"m\",\"messages\":[{\"role\":"
               "\"assistant\"}]}", "tools: the tools taken away");
        c1_free(next);

        ok(c1_request_extend(out, len, (c1_str_t[]) {
                                 { (const unsigned char *) "[1]", 3 } },
                             1, 0, &next, &nlen) == C1_ERROR,
           "tools: a message that is not an object refused");
    }

    c1_free(out);

    /* the think item, as genui-sdk writes it */

    len = c1_think_item((const unsigned char *) "Using <get_planets>", 19,
                        (const unsigned char *) "Tom & Jerry's \"list\"", 20,
                        think);
    ok(len <= c1_think_item_len(19, 20)
       && len == strlen("<thinkitem ephemeral=\"true\"><thinkitemtitle>"
                        "Using &lt;get_planets&gt;</thinkitemtitle>"
                        "<thinkitemcontent>Tom &amp; Jerry&#39;s &quot;list"
                        "&quot;</thinkitemcontent></thinkitem>")
       && memcmp(think, "<thinkitem ephemeral=\"true\"><thinkitemtitle>"
                 "Using &lt;get_planets&gt;</thinkitemtitle>"
                 "<thinkitemcontent>Tom &amp; Jerry&#39;s &quot;list"
                 "&quot;</thinkitemcontent></thinkitem>", len) == 0,
       "think item: the SDK's bytes, escaped as lodash's escape()");
}


int
main(void)
{
    test_utf8();
    test_request();
    test_answer();
    test_scan();
    test_errors();
    test_sse();
    test_history();
    test_remodel();
    test_api_title();
    test_api_ids();
    test_api_parse();
    test_api_render();
    test_bucket();
    test_usage();
    test_tools();

    printf("1..%d\n", tests);

    return failed ? 1 : 0;
}
