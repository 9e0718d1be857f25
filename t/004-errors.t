# Every error is a status plus an OpenAI-style JSON error body.

use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use C1Test;

no_long_string();

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->config) {
        $block->set_value("config", <<'_EOC_');
    c1_api_key sk-test-secret-key;
    c1_model m;
    location = /chat { c1_pass /_c1; }
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

=== TEST 1: body not JSON
--- request
POST /chat
{"prompt": "x"
--- error_code: 400
--- response_headers
Content-Type: application/json
--- response_body chomp
{"error":{"message":"the request body is not valid JSON","type":"invalid_request_error","param":null,"code":"invalid_json"}}



=== TEST 2: body not an object
--- request
POST /chat
["prompt", "x"]
--- error_code: 400
--- response_body chomp
{"error":{"message":"the request body must be a JSON object","type":"invalid_request_error","param":null,"code":"invalid_body"}}



=== TEST 3: prompt missing
--- request
POST /chat
{"promt": "x"}
--- error_code: 400
--- response_body chomp
{"error":{"message":"the request needs a \"prompt\" (or OpenAI-style \"messages\")","type":"invalid_request_error","param":"prompt","code":"missing_prompt"}}



=== TEST 4: prompt empty
--- request
POST /chat
{"prompt": " \n "}
--- error_code: 400
--- response_body chomp
{"error":{"message":"the prompt is empty","type":"invalid_request_error","param":"prompt","code":"empty_prompt"}}



=== TEST 5: prompt of the wrong type
--- request eval
["POST /chat\n{\"prompt\": 42}", "POST /chat\n{\"prompt\": [\"x\"]}", "POST /chat\n{\"prompt\": null}", "POST /chat\n{\"prompt\": {\"role\": \"user\"}}", "POST /chat\n{\"prompt\": {\"role\": \"system\", \"content\": \"x\"}}"]
--- error_code eval
[400, 400, 400, 400, 400]
--- response_body_like eval
[qr/"param":"prompt","code":"invalid_prompt"/, qr/"param":"prompt","code":"invalid_prompt"/, qr/"param":"prompt","code":"invalid_prompt"/, qr/"param":"prompt.content","code":"invalid_prompt"/, qr/"param":"prompt.role","code":"invalid_prompt"/]



=== TEST 6: messages not an array of role/content objects
--- request eval
["POST /chat\n{\"messages\": \"hi\"}", "POST /chat\n{\"messages\": []}", "POST /chat\n{\"messages\": [\"hi\"]}", "POST /chat\n{\"messages\": [{\"content\": \"hi\"}]}", "POST /chat\n{\"messages\": [{\"role\": \"user\"}]}", "POST /chat\n{\"messages\": [{\"role\": \"user\", \"content\": 7}]}"]
--- error_code eval
[400, 400, 400, 400, 400, 400]
--- response_body_like eval
[qr/^\{"error":\{"message":"\\"messages\\" must be a non-empty array.*"param":"messages","code":"invalid_messages"\}\}$/, qr/"code":"invalid_messages"/, qr/"message":"messages\[0\] is not an object"/, qr/"message":"messages\[0\] has no \\"role\\" string"/, qr/"message":"messages\[0\] has no \\"content\\""/, qr/"message":"messages\[0\].content must be a string or an array"/]



=== TEST 7: an empty body
--- request eval
"POST /chat\n"
--- error_code: 400
--- response_body_like: "code":"invalid_json"



=== TEST 8: text/plain with an empty body
--- request eval
"POST /chat\n"
--- more_headers
Content-Type: text/plain
--- error_code: 400
--- response_body_like: "code":"empty_prompt"



=== TEST 9: other methods: 405 with Allow: POST
--- request eval
["GET /chat", "PUT /chat\n{\"prompt\": \"x\"}", "DELETE /chat"]
--- error_code eval
[405, 405, 405]
--- response_headers eval
["Allow: POST\nContent-Type: application/json", "Allow: POST\nContent-Type: application/json", "Allow: POST\nContent-Type: application/json"]
--- response_body eval
['{"error":{"message":"this endpoint only takes POST requests","type":"invalid_request_error","param":null,"code":"method_not_allowed"}}', '{"error":{"message":"this endpoint only takes POST requests","type":"invalid_request_error","param":null,"code":"method_not_allowed"}}', '{"error":{"message":"this endpoint only takes POST requests","type":"invalid_request_error","param":null,"code":"method_not_allowed"}}']



=== TEST 10: other content types: 415
--- request
POST /chat
prompt=x
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- error_code: 415
--- response_headers
Content-Type: application/json
--- response_body chomp
{"error":{"message":"the request body must be application/json or text/plain","type":"invalid_request_error","param":null,"code":"unsupported_media_type"}}



=== TEST 11: a body over client_max_body_size: 413 as JSON, not nginx's page
--- config
    c1_model m;
    location = /chat { client_max_body_size 100; c1_pass /_c1; }
    location = /_c1 { internal; return 500; }
--- request eval
"POST /chat\n{\"prompt\": \"" . ("x" x 200) . "\"}"
--- error_code: 413
--- response_headers
Content-Type: application/json
--- response_body chomp
{"error":{"message":"the request body is too large","type":"invalid_request_error","param":null,"code":"request_too_large"}}
--- error_log
client intended to send too large body



=== TEST 12: a chunked body over client_max_body_size: 413 as JSON
--- config
    c1_model m;
    location = /chat { client_max_body_size 100; c1_pass /_c1; }
    location = /_c1 { internal; return 500; }
--- raw_request eval
"POST /chat HTTP/1.1\r
Host: localhost\r
Connection: close\r
Content-Type: application/json\r
Transfer-Encoding: chunked\r
\r
c8\r
" . ("x" x 200) . "\r
0\r
\r
"
--- error_code: 413
--- response_body chomp
{"error":{"message":"the request body is too large","type":"invalid_request_error","param":null,"code":"request_too_large"}}
--- error_log
client intended to send too large chunked body



=== TEST 13: C1 answers 403 with a JSON error: same status, C1's body
--- config
    c1_api_key sk-test-secret-key;
    c1_model m;
    location = /chat { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/c1-403;
    }
    location = /c1-403 {
        default_type application/json;
        return 403 '{"error":{"message":"Invalid API key","type":"authentication_error","param":null,"code":"invalid_api_key"}}';
    }
--- request
POST /chat
{"prompt": "x"}
--- error_code: 403
--- response_headers
Content-Type: application/json
--- response_body chomp
{"error":{"message":"Invalid API key","type":"authentication_error","param":null,"code":"invalid_api_key"}}
--- log_level: info
--- error_log
c1: C1 answered HTTP 403
--- no_error_log
sk-test-secret-key



=== TEST 14: C1 answers 429 with a JSON body that is not an OpenAI error: same status, our JSON
--- config
    c1_model m;
    location = /chat { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/c1-429;
    }
    location = /c1-429 {
        default_type application/json;
        return 429 '{"detail":"Organisation token limit reached"}';
    }
--- request
POST /chat
{"prompt": "x"}
--- error_code: 429
--- response_body chomp
{"error":{"message":"C1 answered HTTP 429: Organisation token limit reached","type":"rate_limit_error","param":null,"code":"c1_error"}}
--- error_log
c1: C1 answered HTTP 429



=== TEST 15: C1 answers 500 with an HTML page: same status, our JSON
--- config
    c1_model m;
    location = /chat { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/c1-500;
    }
    location = /c1-500 {
        default_type text/html;
        return 500 '<html><body>Internal Server Error</body></html>';
    }
--- request
POST /chat
{"prompt": "x"}
--- error_code: 500
--- response_headers
Content-Type: application/json
--- response_body chomp
{"error":{"message":"C1 answered HTTP 500","type":"upstream_error","param":null,"code":"c1_error"}}
--- error_log
c1: C1 answered HTTP 500



=== TEST 16: C1 unreachable: 502
--- config
    c1_model m;
    location = /chat { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:1/v1/embed/chat/completions;
    }
--- request
POST /chat
{"prompt": "x"}
--- error_code: 502
--- response_headers
Content-Type: application/json
--- response_body chomp
{"error":{"message":"C1 could not be reached","type":"upstream_error","param":null,"code":"c1_unreachable"}}
--- error_log eval
[qr/\[error\].*connect\(\) failed/, qr/\[error\].*c1: C1 could not be reached/]



=== TEST 17: C1 does not answer in time: 504
--- config
    c1_model m;
    location = /chat { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_read_timeout 300ms;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/slow;
    }
    location = /slow {
        content_by_lua_block { ngx.sleep(2) ngx.say("late") }
    }
--- request
POST /chat
{"prompt": "x"}
--- error_code: 504
--- response_body chomp
{"error":{"message":"C1 did not answer in time","type":"upstream_error","param":null,"code":"c1_timeout"}}
--- error_log eval
[qr/\[error\].*upstream timed out/, qr/\[error\].*c1: C1 did not answer in time/]



=== TEST 18: C1's answer unusable: not JSON, no choices, no content: 502
--- config
    c1_model m;
    location = /chat { set $case $http_x_case; c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/c1-$case;
    }
    location = /c1-html { default_type text/html; return 200 '<html>hello</html>'; }
    location = /c1-truncated { default_type application/json; return 200 '{"choices":[{"message":{"content":"abc'; }
    location = /c1-nochoices { default_type application/json; return 200 '{"object":"chat.completion","choices":[]}'; }
    location = /c1-nocontent { default_type application/json; return 200 '{"choices":[{"message":{"role":"assistant","content":null}}]}'; }
--- request eval
["POST /chat\n{\"prompt\": \"x\"}", "POST /chat\n{\"prompt\": \"x\"}", "POST /chat\n{\"prompt\": \"x\"}", "POST /chat\n{\"prompt\": \"x\"}"]
--- more_headers eval
["Content-Type: application/json\nX-Case: html", "Content-Type: application/json\nX-Case: truncated", "Content-Type: application/json\nX-Case: nochoices", "Content-Type: application/json\nX-Case: nocontent"]
--- error_code eval
[502, 502, 502, 502]
--- response_body eval
['{"error":{"message":"C1\'s answer is not valid JSON","type":"upstream_error","param":null,"code":"bad_upstream_answer"}}', '{"error":{"message":"C1\'s answer is not valid JSON","type":"upstream_error","param":null,"code":"bad_upstream_answer"}}', '{"error":{"message":"C1\'s answer has no choices","type":"upstream_error","param":null,"code":"bad_upstream_answer"}}', '{"error":{"message":"C1\'s answer has no content","type":"upstream_error","param":null,"code":"bad_upstream_answer"}}']
--- error_log eval
qr/\[error\].*c1: C1's answer (?:is not valid JSON|has no choices|has no content)/



=== TEST 19: an answer over c1_max_response_size: 502
--- config
    c1_model m;
    c1_max_response_size 64k;
    location = /chat { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/answer?len=200000;
    }
--- request
POST /chat
{"prompt": "x"}
--- error_code: 502
--- response_body chomp
{"error":{"message":"C1's answer is larger than this server accepts","type":"upstream_error","param":null,"code":"answer_too_large"}}
--- error_log
c1: C1's answer is larger than "c1_max_response_size"



=== TEST 20: a keep-alive connection goes on serving after each kind of error
--- config
    c1_model m;
    location ~ ^/chat/(\w+)$ { set $case $1; c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_read_timeout 300ms;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/c1-$case;
    }
    location = /c1-ok { default_type application/json; return 200 '{"choices":[{"message":{"content":"fine"}}]}'; }
    location = /c1-403 { default_type application/json; return 403 '{"error":{"message":"no"}}'; }
    location = /c1-bad { default_type application/json; return 200 'nope'; }
    location = /c1-slow { content_by_lua_block { ngx.sleep(1) ngx.say("late") } }
--- pipelined_requests eval
["POST /chat/ok\n{\"prompt\": \"x\"", "GET /chat/ok", "POST /chat/403\n{\"prompt\": \"x\"}", "POST /chat/bad\n{\"prompt\": \"x\"}", "POST /chat/slow\n{\"prompt\": \"x\"}", "POST /chat/none\n{\"prompt\": \"x\"}", "POST /chat/ok\n{\"prompt\": \"x\"}"]
--- more_headers
Content-Type: application/json
--- error_code eval
[400, 405, 403, 502, 504, 404, 200]
--- response_body_like eval
[qr/invalid_json/, qr/method_not_allowed/, qr/"message":"no"/, qr/bad_upstream_answer/, qr/c1_timeout/, qr/"C1 answered HTTP 404"/, qr/^fine$/]
--- timeout: 10



=== TEST 21: the API key appears in no response header or body, even on errors
--- config
    c1_api_key sk-test-secret-key;
    c1_model m;
    location = /chat { set $case $http_x_case; c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/c1-$case;
    }
    location = /c1-ok { default_type application/json; return 200 '{"choices":[{"message":{"content":"fine"}}]}'; }
    location = /c1-bad { default_type application/json; return 500 'oops'; }
--- request eval
["POST /chat\n{\"prompt\": \"x\"}", "POST /chat\n{\"prompt\": \"x\"}", "POST /chat\n{\"prompt\": 1}"]
--- more_headers eval
["Content-Type: application/json\nX-Case: ok", "Content-Type: application/json\nX-Case: bad", "Content-Type: application/json\nX-Case: ok"]
--- error_code eval
[200, 500, 400]
--- response_body_unlike eval
[qr/sk-test/, qr/sk-test/, qr/sk-test/]
--- raw_response_headers_unlike eval
[qr/sk-test/, qr/sk-test/, qr/sk-test/]
