# A prompt in, C1's answer out: what C1 receives and what the client gets.

use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use C1Test;

no_long_string();
run_tests();

__DATA__

=== TEST 1: a JSON prompt: C1 gets the model, the system prompt and the user message
--- config
    c1_api_key sk-test-0001;
    c1_model c1/test/model-1;
    c1_system_prompt "You answer in UI.";
    location = /chat { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/echo-body;
    }
--- request
POST /chat
{"prompt": "Show me a table"}
--- more_headers
Content-Type: application/json
--- response_body chomp
{"model":"c1/test/model-1","messages":[{"role":"system","content":"You answer in UI."},{"role":"user","content":"Show me a table"}]}
--- response_headers
Content-Type: text/plain; charset=utf-8
Cache-Control: no-cache



=== TEST 2: the assistant's content is the body, as C1 sent it
--- config
    c1_model m;
    location = /chat { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/fixture;
    }
    location = /fixture {
        default_type application/json;
        return 200 '{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"<content thesys=\\"true\\">{&quot;component&quot;:{&quot;component&quot;:&quot;Card&quot;}}</content>"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}';
    }
--- request
POST /chat
{"prompt": "a card"}
--- more_headers
Content-Type: application/json
--- response_body chomp
<content thesys="true">{&quot;component&quot;:{&quot;component&quot;:&quot;Card&quot;}}</content>



=== TEST 3: text/plain: the whole body is the prompt, byte for byte
--- config
    c1_model m;
    location = /chat { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/echo-body;
    }
--- request eval
"POST /chat\nline one\r\nline \"two\" \\ </content>\t\x{f0}\x{9f}\x{98}\x{80}"
--- more_headers
Content-Type: text/plain; charset=utf-8
--- response_body eval
qq{{"model":"m","messages":[{"role":"user","content":"line one\\r\\nline \\"two\\" \\\\ </content>\\t\x{f0}\x{9f}\x{98}\x{80}"}]}}



=== TEST 4: JSON escapes in the prompt reach C1 unchanged: quotes, newlines, emoji, backslashes, </content>
--- config
    c1_model m;
    location = /chat { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/echo-body;
    }
--- request eval
qq{POST /chat\n{"prompt": "say \\"hi\\"\\n\\t\\\\ </content> \\u00e9 \\ud83d\\ude00 \x{e2}\x{82}\x{ac}"}}
--- more_headers
Content-Type: application/json
--- response_body eval
qq{{"model":"m","messages":[{"role":"user","content":"say \\"hi\\"\\n\\t\\\\ </content> \x{c3}\x{a9} \x{f0}\x{9f}\x{98}\x{80} \x{e2}\x{82}\x{ac}"}]}}



=== TEST 5: the subrequest carries only our headers: no cookie, no client Authorization, no Accept-Encoding
--- config
    c1_api_key sk-test-0002;
    c1_model m;
    location = /chat { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/echo-headers;
    }
--- request
POST /chat
{"prompt": "x"}
--- more_headers
Content-Type: application/json
Cookie: session=abc
Authorization: Bearer client-token
Accept-Encoding: gzip, deflate
X-Forwarded-For: 10.0.0.1
User-Agent: test-client
--- response_body eval
"POST /mock/echo-headers
accept: application/json
authorization: Bearer sk-test-0002
connection: close
content-length: 56
content-type: application/json
host: 127.0.0.1:$ENV{TEST_NGINX_SERVER_PORT}"



=== TEST 6: without c1_api_key, no Authorization header is sent
--- config
    c1_model m;
    location = /chat { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/echo-headers;
    }
--- request
POST /chat
{"prompt": "x"}
--- more_headers
Content-Type: application/json
Authorization: Bearer client-token
--- response_body_unlike: (?i)authorization



=== TEST 7: settings are forwarded when set; inherited from http and server levels
--- http_config
    c1_model c1/http/model;
    c1_temperature 0.25;
--- config
    c1_max_tokens 2048;
    location = /chat {
        c1_top_p 0.9;
        c1_stop "</content>" "END";
        c1_pass /_c1;
    }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/echo-body;
    }
--- request
POST /chat
{"prompt": "x"}
--- more_headers
Content-Type: application/json
--- response_body chomp
{"model":"c1/http/model","messages":[{"role":"user","content":"x"}],"temperature":0.25,"max_tokens":2048,"top_p":0.9,"stop":["</content>","END"]}



=== TEST 8: an inner level overrides an outer one
--- http_config
    c1_model c1/http/model;
    c1_system_prompt "outer";
--- config
    location = /chat {
        c1_model c1/location/model;
        c1_system_prompt "inner";
        c1_pass /_c1;
    }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/echo-body;
    }
--- request
POST /chat
{"prompt": "x"}
--- more_headers
Content-Type: application/json
--- response_body chomp
{"model":"c1/location/model","messages":[{"role":"system","content":"inner"},{"role":"user","content":"x"}]}



=== TEST 9: nginx variables in c1_api_key, c1_model and c1_system_prompt
--- config
    set $tier basic;
    location = /chat {
        c1_model c1/$tier/model;
        c1_system_prompt "Hello $http_x_user_name";
        c1_api_key "sk-$tier";
        c1_pass /_c1;
    }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/echo-body;
    }
--- request
POST /chat
{"prompt": "x"}
--- more_headers
Content-Type: application/json
X-User-Name: Ada
--- response_body chomp
{"model":"c1/basic/model","messages":[{"role":"system","content":"Hello Ada"},{"role":"user","content":"x"}]}



=== TEST 10: <C1Chat>'s message object: the id is stripped, the content kept verbatim
--- config
    c1_model m;
    location = /chat { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/echo-body;
    }
--- request
POST /chat
{"prompt":{"id":"5b1c","role":"user","content":"<content thesys=\"true\">Hi &amp; bye</content>"},"threadId":"t-1","responseId":"r-1"}
--- more_headers
Content-Type: application/json
--- response_body chomp
{"model":"m","messages":[{"role":"user","content":"<content thesys=\"true\">Hi &amp; bye</content>"}]}



=== TEST 11: a body spooled to a temporary file works the same
--- config
    c1_model m;
    client_body_buffer_size 1k;
    location = /chat { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/echo-body;
    }
--- request eval
"POST /chat\n{\"prompt\": \"" . ("abcdefghij" x 1000) . "\"}"
--- more_headers
Content-Type: application/json
--- response_body eval
'{"model":"m","messages":[{"role":"user","content":"' . ("abcdefghij" x 1000) . '"}]}'
--- error_log
a client request body is buffered to a temporary file



=== TEST 12: a 1 MB answer with default nginx settings
--- config
    c1_model m;
    location = /chat { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/answer?len=1048576;
    }
--- request
POST /chat
{"prompt": "x"}
--- more_headers
Content-Type: application/json
--- response_body eval
"x" x 1048576



=== TEST 13: a 3 MB answer when proxy buffers spill to a temporary file
--- config
    c1_model m;
    location = /chat { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_buffers 4 4k;
        proxy_busy_buffers_size 8k;
        proxy_max_temp_file_size 10m;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/answer?len=3000000;
    }
--- request
POST /chat
{"prompt": "x"}
--- more_headers
Content-Type: application/json
--- response_body eval
"x" x 3000000



=== TEST 14: a 1 MB answer whose length C1 gave (Content-Length, not chunked)
--- config
    c1_model m;
    location = /chat { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/answer?len=1048576&cl=1;
    }
--- request
POST /chat
{"prompt": "x"}
--- more_headers
Content-Type: application/json
--- response_body eval
"x" x 1048576



=== TEST 15: a keep-alive connection serves several prompts in turn
--- config
    c1_model m;
    location = /chat { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/answer?len=3;
    }
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"one\"}", "POST /chat\n{\"prompt\": \"two\"}", "POST /chat\n{\"prompt\": \"three\"}"]
--- more_headers
Content-Type: application/json
--- response_body eval
["xxx", "xxx", "xxx"]
