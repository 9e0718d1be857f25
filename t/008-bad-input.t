# Bad input: every case gets a clear status and JSON error, never a crash,
# and the connection goes on serving.

use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use C1Test;

no_long_string();

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->config) {
        $block->set_value("config", <<'_EOC_');
    c1_model m;
    location = /chat { client_max_body_size 2m; c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/echo-body;
    }
_EOC_
    }

    if (!defined $block->more_headers) {
        $block->set_value("more_headers", "Content-Type: application/json\n");
    }
});

run_tests();

__DATA__

=== TEST 1: null, an array, a number, a string, true
--- request eval
["POST /chat\nnull", "POST /chat\n[]", "POST /chat\n42", "POST /chat\n\"prompt\"", "POST /chat\ntrue"]
--- error_code eval
[400, 400, 400, 400, 400]
--- response_body eval
[('{"error":{"message":"the request body must be a JSON object","type":"invalid_request_error","param":null,"code":"invalid_body"}}') x 5]



=== TEST 2: invalid UTF-8, in JSON and in plain text
--- request eval
["POST /chat\n{\"prompt\": \"caf\x{e9}\"}", "POST /chat\n{\"prompt\": \"\x{ed}\x{a0}\x{80}\"}", "POST /chat\n\x{ff}\x{fe}"]
--- more_headers eval
["Content-Type: application/json", "Content-Type: application/json", "Content-Type: text/plain"]
--- error_code eval
[400, 400, 400]
--- response_body eval
['{"error":{"message":"the request body is not valid UTF-8","type":"invalid_request_error","param":null,"code":"invalid_json"}}',
 '{"error":{"message":"the request body is not valid UTF-8","type":"invalid_request_error","param":null,"code":"invalid_json"}}',
 '{"error":{"message":"the prompt is not valid UTF-8","type":"invalid_request_error","param":"prompt","code":"invalid_utf8"}}']



=== TEST 3: NUL bytes: escaped in a JSON string, raw in JSON, raw in plain text
--- request eval
["POST /chat\n{\"prompt\": \"a\\u0000b\"}", "POST /chat\n{\"prompt\": \"a\x{00}b\"}", "POST /chat\na\x{00}b"]
--- more_headers eval
["Content-Type: application/json", "Content-Type: application/json", "Content-Type: text/plain"]
--- error_code eval
[400, 400, 400]
--- response_body eval
['{"error":{"message":"the request body contains a \\\\u0000 character, which is not supported","type":"invalid_request_error","param":null,"code":"invalid_json"}}',
 '{"error":{"message":"the request body contains a NUL byte","type":"invalid_request_error","param":null,"code":"invalid_json"}}',
 '{"error":{"message":"the prompt contains a NUL byte","type":"invalid_request_error","param":"prompt","code":"invalid_prompt"}}']



=== TEST 4: JSON nested 100,000 deep
--- request eval
"POST /chat\n{\"prompt\": " . ("[" x 100000) . ("]" x 100000) . "}"
--- error_code: 400
--- response_body chomp
{"error":{"message":"the request body is not valid JSON","type":"invalid_request_error","param":null,"code":"invalid_json"}}



=== TEST 5: duplicate keys: the first one counts, like most JSON parsers
--- request
POST /chat
{"prompt": "first", "prompt": "second"}
--- response_body chomp
{"model":"m","messages":[{"role":"user","content":"first"}]}



=== TEST 6: a 1 MB prompt goes through whole
--- request eval
"POST /chat\n{\"prompt\": \"" . ("0123456789abcdef" x 65536) . "\"}"
--- response_body eval
'{"model":"m","messages":[{"role":"user","content":"' . ("0123456789abcdef" x 65536) . '"}]}'



=== TEST 7: a prompt over the configured limit: 413 as JSON
--- request eval
"POST /chat\n{\"prompt\": \"" . ("x" x (3 * 1024 * 1024)) . "\"}"
--- error_code: 413
--- response_body chomp
{"error":{"message":"the request body is too large","type":"invalid_request_error","param":null,"code":"request_too_large"}}



=== TEST 8: wrong content types
--- request eval
["POST /chat\n{\"prompt\": \"x\"}", "POST /chat\n{\"prompt\": \"x\"}", "POST /chat\n{\"prompt\": \"x\"}"]
--- more_headers eval
["Content-Type: multipart/form-data; boundary=x", "Content-Type: application/xml", "Content-Type: application/jsonp"]
--- error_code eval
[415, 415, 415]
--- response_body_like eval
[('"code":"unsupported_media_type"') x 3]



=== TEST 9: Content-Type with parameters and odd case is accepted
--- request eval
["POST /chat\n{\"prompt\": \"x\"}", "POST /chat\nplain"]
--- more_headers eval
["Content-Type: Application/JSON; charset=utf-8", "Content-Type: TEXT/PLAIN ; charset=utf-8"]
--- response_body eval
['{"model":"m","messages":[{"role":"user","content":"x"}]}', '{"model":"m","messages":[{"role":"user","content":"plain"}]}']



=== TEST 10: a chunked request body
--- raw_request eval
"POST /chat HTTP/1.1\r
Host: localhost\r
Connection: close\r
Content-Type: application/json\r
Transfer-Encoding: chunked\r
\r
7\r
{\"promp\r
9\r
t\": \"hi\"}\r
0\r
\r
"
--- response_body chomp
{"model":"m","messages":[{"role":"user","content":"hi"}]}



=== TEST 11: a broken chunked body: 400 as JSON
--- raw_request eval
"POST /chat HTTP/1.1\r
Host: localhost\r
Connection: close\r
Content-Type: application/json\r
Transfer-Encoding: chunked\r
\r
zz\r
{}\r
0\r
\r
"
--- error_code: 400
--- response_headers
Content-Type: application/json
--- response_body_like: "code":"invalid_request"



=== TEST 12: pipelined keep-alive requests reuse the connection after each error
--- pipelined_requests eval
["POST /chat\nnull", "POST /chat\n{\"prompt\": \"a\\u0000\"}", "POST /chat\n{\"prompt\": \"caf\x{e9}\"}", "POST /chat\n{\"prompt\": \"\"}", "GET /chat", "POST /chat\n{\"prompt\": \"ok\"}"]
--- error_code eval
[400, 400, 400, 400, 405, 200]
--- response_body_like eval
["invalid_body", "invalid_json", "invalid_json", "empty_prompt", "method_not_allowed", '^\{"model":"m","messages":\[\{"role":"user","content":"ok"\}\]\}$']



=== TEST 13: an empty body, and one of white space only
--- request eval
["POST /chat\n", "POST /chat\n   "]
--- error_code eval
[400, 400]
--- response_body_like eval
['"message":"the request body is empty"', '"code":"invalid_json"']
