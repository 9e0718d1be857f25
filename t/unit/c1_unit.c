
/*
 * Unit tests of the protocol units (request building, answer extraction,
 * JSON helpers), with no nginx.  Prints TAP for prove (t/000-unit.t).
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_c1_proto.h"


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


int
main(void)
{
    test_utf8();
    test_request();
    test_answer();
    test_errors();

    printf("1..%d\n", tests);

    return failed ? 1 : 0;
}
