# Streaming: C1's stream relayed as it arrives.

use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use C1Test;

no_long_string();

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->config) {
        my $args = $block->mock_args // '';
        $block->set_value("config", <<"_EOC_");
    c1_model m;
    c1_stream on;
    location = /chat { c1_pass /_c1; }
    location = /v1/chat/completions { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_read_timeout 1s;
        proxy_http_version 1.1;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/mock/sse?$args;
    }
_EOC_
    }

    if (!defined $block->more_headers) {
        $block->set_value("more_headers", "Content-Type: application/json\n");
    }
});

run_tests();

__DATA__

=== TEST 1: a streamed prompt: the raw concatenation of the content deltas, with SSE headers
--- request
POST /chat
{"prompt": "x"}
--- response_headers
Content-Type: text/event-stream
Cache-Control: no-cache, no-transform
X-Accel-Buffering: no
Transfer-Encoding: chunked
!Content-Length
--- response_body eval
$C1Test::StreamText



=== TEST 2: C1 is asked to stream
--- config
    c1_model m;
    c1_stream on;
    location = /chat { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/echo-body;
    }
--- request
POST /chat
{"prompt": "x"}
--- response_body chomp
{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true}



=== TEST 3: "stream": true in the body streams where c1_stream is off; false does not where it is on
--- config
    c1_model m;
    location = /chat { set $mock $arg_mock; c1_pass /_c1; }
    location = /chat-on { set $mock $arg_mock; c1_stream on; c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/$mock;
    }
--- request eval
["POST /chat?mock=sse\n{\"prompt\": \"x\", \"stream\": true}", "POST /chat-on?mock=echo-body\n{\"prompt\": \"x\", \"stream\": false}"]
--- response_headers eval
["Content-Type: text/event-stream", "Content-Type: text/plain; charset=utf-8"]
--- response_body eval
[$C1Test::StreamText, '{"model":"m","messages":[{"role":"user","content":"x"}]}']



=== TEST 4: CRLF line ends, id:, event:, retry: and comment lines
--- mock_args: crlf=1&ids=1&comments=1&events=1
--- request
POST /chat
{"prompt": "x"}
--- response_body eval
$C1Test::StreamText



=== TEST 5: no [DONE]: the end of C1's stream ends it cleanly
--- mock_args: nodone=1
--- request
POST /chat
{"prompt": "x"}
--- response_body eval
$C1Test::StreamText
--- no_error_log
[error]



=== TEST 6: a usage-only chunk never reaches a prompt-mode client
--- mock_args: usage=1
--- request
POST /chat
{"prompt": "x"}
--- response_body eval
$C1Test::StreamText



=== TEST 7: every byte in its own read, CRLF: events cut at every point
--- mock_args: bytewise=1&crlf=1&ids=1
--- request
POST /chat
{"prompt": "x"}
--- response_body eval
$C1Test::StreamText
--- timeout: 20



=== TEST 8: OpenAI shape: C1's events relayed one by one, ended by [DONE]
--- mock_args: usage=1&ids=1&crlf=1
--- request
POST /v1/chat/completions
{"messages": [{"role": "user", "content": "x"}], "stream": true}
--- response_headers
Content-Type: text/event-stream
--- response_body eval
my $head = '{"id":"chatcmpl-s","object":"chat.completion.chunk","created":1764000000,"model":"mock","choices":[{"index":0,';
my @p = ("<content thesys=\\\"true\\\">", "{&quot;component&quot;:", "", " \x{e2}\x{9c}\x{93} \x{c3}\x{a9} ", "\x{f0}\x{9f}\x{98}\x{80}", "\\n\\\"quoted\\\" \\\\ ", "<\\/content>");
CORE::join("", "data: $head\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
     (map { "data: $head\"delta\":{\"content\":\"$_\"},\"finish_reason\":null}]}\n\n" } @p),
     "data: $head\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
     "data: {\"id\":\"chatcmpl-s\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":34,\"total_tokens\":46}}\n\n",
     "data: [DONE]\n\n")



=== TEST 9: OpenAI shape without [DONE] from C1: the client still gets one
--- mock_args: nodone=1
--- request
POST /v1/chat/completions
{"messages": [{"role": "user", "content": "x"}], "stream": true}
--- response_body_like eval
qr/\A(data: \{[^\n]*\}\n\n){9}data: \[DONE\]\n\n\z/



=== TEST 10: C1 answers 403 to a stream: the client gets 403 and C1's JSON error
--- config
    c1_model m;
    c1_stream on;
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



=== TEST 11: C1 answers 429 or 503 to a stream: that status, a JSON error
--- config
    c1_model m;
    c1_stream on;
    location ~ ^/chat/(\d+)$ { set $code $1; c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/c1-$code;
    }
    location = /c1-429 { default_type application/json; return 429 '{"error":{"message":"Rate limit","type":"rate_limit_error"}}'; }
    location = /c1-503 { default_type text/html; return 503 '<html>busy</html>'; }
--- request eval
["POST /chat/429\n{\"prompt\": \"x\"}", "POST /chat/503\n{\"prompt\": \"x\"}"]
--- error_code eval
[429, 503]
--- response_body eval
['{"error":{"message":"Rate limit","type":"rate_limit_error"}}', '{"error":{"message":"C1 answered HTTP 503","type":"upstream_error","param":null,"code":"c1_error"}}']



=== TEST 12: C1 resets before any event: a 502 JSON error, not a 200
--- config
    c1_model m;
    c1_stream on;
    location = /chat { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/reset;
    }
    location = /reset { content_by_lua_block { ngx.exit(444) } }
--- request
POST /chat
{"prompt": "x"}
--- error_code: 502
--- response_body chomp
{"error":{"message":"C1 could not be reached","type":"upstream_error","param":null,"code":"c1_unreachable"}}
--- error_log
c1: C1 could not be reached



=== TEST 13: C1 sends an error event first: a 502 JSON error
--- mock_args: after=0&error=1
--- request
POST /chat
{"prompt": "x"}
--- error_code: 502
--- response_body chomp
{"error":{"message":"C1's stream carried an error: C1 is overloaded","type":"upstream_error","param":null,"code":"bad_upstream_stream"}}
--- error_log
c1: C1's stream carried an error: C1 is overloaded



=== TEST 14: C1 resets mid-stream, OpenAI shape: the events so far, then an error event, no [DONE]
--- mock_args: after=3&reset=1
--- request
POST /v1/chat/completions
{"messages": [{"role": "user", "content": "x"}], "stream": true}
--- response_body_like eval
qr/\A(data: \{"id":"chatcmpl-s"[^\n]*\}\n\n){4}data: \{"error":\{"message":"C1's stream broke off","type":"upstream_error","param":null,"code":"c1_stream_broken"\}\}\n\n\z/
--- error_log
upstream prematurely closed connection
c1: C1's stream broke off, after the client's stream began



=== TEST 15: C1 sends garbage mid-stream, OpenAI shape: an error event, C1 is dropped
--- mock_args: after=2&garbage=1
--- request
POST /v1/chat/completions
{"messages": [{"role": "user", "content": "x"}], "stream": true}
--- response_body_like eval
qr/\A(data: \{"id":"chatcmpl-s"[^\n]*\}\n\n){3}data: \{"error":\{"message":"C1's stream carried an event that is not a JSON object","type":"upstream_error","param":null,"code":"bad_upstream_stream"\}\}\n\n\z/
--- error_log
c1: C1's stream carried an event that is not a JSON object, after the client's stream began



=== TEST 16: C1 goes silent mid-stream: proxy_read_timeout ends it with an error event
--- mock_args: after=2&hang=1
--- request
POST /v1/chat/completions
{"messages": [{"role": "user", "content": "x"}], "stream": true}
--- response_body_like eval
qr/\A(data: \{"id":"chatcmpl-s"[^\n]*\}\n\n){3}data: \{"error":\{"message":"C1's stream broke off",[^\n]*\}\}\n\n\z/
--- error_log
upstream timed out
c1: C1's stream broke off, after the client's stream began
--- timeout: 5



=== TEST 17: the client goes away mid-stream: the call to C1 is abandoned at once
--- mock_args: delay=300
--- request
POST /chat
{"prompt": "x"}
--- timeout: 0.5
--- abort
--- ignore_response
--- wait: 1
--- error_log
mock: C1 call abandoned
client prematurely closed connection



=== TEST 18: a keep-alive connection serves streams one after another
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}", "POST /v1/chat/completions\n{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}", "POST /chat\n{\"prompt\": \"x\"}"]
--- response_body_like eval
["^<content thesys=", "data: \\[DONE\\]\n\n\$", "^<content thesys="]
