
/*
 * Unit tests of the protocol units (request building, answer extraction,
 * JSON helpers), with no nginx.  Prints TAP for prove (t/000-unit.t).
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_c1_proto.h"
#include "ngx_http_c1_scan.h"
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


static void
test_history(void)
{
    int                   rc;
    uint64_t              tok, tok2;
    c1_mem_t              mem;
    static unsigned char  big[8192];
    c1_msg_t      *m;
    c1_thread_t   *t, *t2;
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

    rc = c1_history_begin(&h, ID("t-1"), 1000, &me, &t, &tok);
    ok(rc == C1_HISTORY_OK && t->nmsgs == 0, "history: a turn begins");

    ok(c1_history_begin(&h, ID("t-1"), 1001, &me, &t2, &tok2) == C1_HISTORY_BUSY,
       "history: a second turn on the same thread is refused");

    c1_history_end(&h, t, tok);
    ok(c1_history_find(&h, ID("t-1")) == NULL && h.threads == 0,
       "history: a failed first turn leaves no thread");

    c1_history_begin(&h, ID("t-1"), 1000, &me, &t, &tok);
    ok(c1_history_commit(&h, t, tok, TXT("q1"), TXT("a1"), 1000)
       == C1_HISTORY_OK && t->nmsgs == 2, "history: a turn is kept");
    c1_history_end(&h, t, tok);

    c1_history_begin(&h, ID("t-1"), 1001, &me, &t, &tok);
    c1_history_end(&h, t, tok);
    ok(c1_history_find(&h, ID("t-1")) == t && t->nmsgs == 2,
       "history: a failed turn leaves the thread as it was");

    c1_history_begin(&h, ID("t-1"), 1002, &me, &t, &tok);
    c1_history_commit(&h, t, tok, TXT("q2"), TXT("a2"), 1002);
    c1_history_end(&h, t, tok);
    c1_history_begin(&h, ID("t-1"), 1003, &me, &t, &tok);
    c1_history_commit(&h, t, tok, TXT("q3"), TXT("a3"), 1003);
    c1_history_end(&h, t, tok);

    m = t->first;
    ok(t->nmsgs == 4 && m->len == 2 && memcmp(m->data, "q2", 2) == 0
       && m->next->role == C1_ROLE_ASSISTANT,
       "history: max_messages keeps the newest, oldest dropped first");

    ok(c1_history_commit(&h, t, tok, TXT("x"), TXT("y"), 1003)
       == C1_HISTORY_NONE, "history: no commit once the turn is over");

    /* a stream with events and no content: an empty answer, kept */

    c1_history_begin(&h, ID("empty"), 1004, &me, &t2, &tok2);
    ok(c1_history_commit(&h, t2, tok2, TXT("q"), NULL, 0, 1004)
       == C1_HISTORY_OK && t2->last->len == 0,
       "history: an empty answer is kept");
    c1_history_end(&h, t2, tok2);
    c1_history_delete(&h, ID("empty"));

    /* a turn holds its thread however long it runs */

    c1_history_begin(&h, ID("t-2"), 2000, &me, &t2, &tok2);
    ok(c1_history_begin(&h, ID("t-2"), 2000 + 86400 * 365, &other, &t,
                        &tok) == C1_HISTORY_BUSY
       && c1_history_delete(&h, ID("t-2"))
          == C1_HISTORY_BUSY,
       "history: a long turn keeps its lock, whatever time has passed");

    /* a turn whose process died (or whose pid went to another) gives way */

    c1_mem_dead = me;
    ok(c1_history_begin(&h, ID("t-2"), 2001, &other, &t, &tok)
       == C1_HISTORY_OK && t == t2 && tok != tok2,
       "history: a dead holder's turn gives way");
    c1_mem_dead.pid = 0;
    c1_history_end(&h, t2, tok2);
    ok(c1_history_find(&h, ID("t-2")) == t2 && c1_history_busy(t2),
       "history: the dead turn's end does not touch the new one");
    c1_history_end(&h, t2, tok);
    ok(c1_history_find(&h, ID("t-2")) == NULL,
       "history: the new turn ends it (an empty thread goes)");

    /* expiry: t-1 was last used at 1003 */

    c1_history_expire(&h, 1003 + 99, 10);
    ok(c1_history_find(&h, ID("t-1")) != NULL, "history: not yet expired");
    c1_history_expire(&h, 1003 + 100, 10);
    ok(c1_history_find(&h, ID("t-1")) == NULL && h.expired == 1
       && h.messages == 0 && h.bytes == 0,
       "history: expired after inactive");

    /* a full zone: the least recently used threads go, busy ones stay */

    mem.limit = mem.used + 3 * (sizeof(c1_thread_t) + 1200);

    c1_history_begin(&h, ID("a"), 3000, &me, &t, &tok);
    memset(big, 'a', sizeof(big));
    rc = c1_history_commit(&h, t, tok, TXT("q"), big, 500, 3000);
    c1_history_end(&h, t, tok);
    c1_history_begin(&h, ID("b"), 3001, &me, &t, &tok);
    c1_history_commit(&h, t, tok, TXT("q"), TXT("b"), 3001);
    c1_history_end(&h, t, tok);
    c1_history_begin(&h, ID("busy"), 3001, &me, &t2, &tok2);

    c1_history_begin(&h, ID("c"), 3002, &me, &t, &tok);
    rc = c1_history_commit(&h, t, tok, TXT("q"), big, 3000, 3002);
    c1_history_end(&h, t, tok);

    ok(rc == C1_HISTORY_OK && h.evicted >= 1
       && c1_history_find(&h, ID("a")) == NULL
       && c1_history_find(&h, ID("busy")) == t2,
       "history: a full zone evicts the least recently used, not busy ones");

    c1_history_begin(&h, ID("d"), 3003, &me, &t, &tok);
    rc = c1_history_commit(&h, t, tok, TXT("q"), big, sizeof(big), 3003);
    c1_history_end(&h, t, tok);
    ok(rc == C1_HISTORY_NOMEM && h.dropped == 1
       && c1_history_find(&h, ID("d")) == NULL
       && c1_history_find(&h, ID("c")) != NULL,
       "history: a turn too large for the zone is dropped, evicting none");

    ok(c1_history_delete(&h, ID("busy")) == C1_HISTORY_BUSY,
       "history: a busy thread is not deleted");
    c1_history_end(&h, t2, tok2);
    ok(c1_history_delete(&h, ID("c")) == C1_HISTORY_OK
       && c1_history_delete(&h, ID("c")) == C1_HISTORY_NONE,
       "history: delete");

    while (h.lru.next != &h.lru) {
        t = h.lru.next;
        c1_history_delete(&h, (unsigned char *) t->id, t->id_len);
    }

    c1_history_mem_free(&mem, h.buckets);
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

    printf("1..%d\n", tests);

    return failed ? 1 : 0;
}
