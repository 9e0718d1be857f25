# The fault matrix: whatever C1 does wrong, the client gets the documented
# status and JSON error (or error event), and the log says what happened.

use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use C1Test;

no_long_string();

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->config) {
        my $c1 = $block->c1 // die "no c1 section";
        my $limits = $block->limits // '';
        $block->set_value("config", <<"_EOC_");
    c1_model m;
    c1_max_response_size 1m;
    $limits
    location = /chat { c1_pass /_c1; }
    location = /v1/chat/completions { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_http_version 1.1;
        proxy_connect_timeout 1s;
        proxy_read_timeout 1s;
        proxy_pass $c1;
    }
    location = /html502 { default_type text/html; return 502 '<html><body><h1>502 Bad Gateway</h1></body></html>'; }
    location = /invalid { default_type application/json; return 200 '{"choices": [oops]}'; }
    location = /truncated { default_type application/json; return 200 '{"choices":[{"message":{"content":"half'; }
    location = /nochoices { default_type application/json; return 200 '{"id":"x","object":"chat.completion"}'; }
    location = /silent { content_by_lua_block { ngx.sleep(5) } }
    location = /endless {
        lua_check_client_abort on;
        lua_http10_buffering off;
        content_by_lua_block {
            ngx.on_abort(function () ngx.log(ngx.WARN, "mock: endless stream dropped") ngx.exit(499) end)
            ngx.header["Content-Type"] = "text/event-stream"
            local ev = 'data: {"choices":[{"delta":{"content":"' .. string.rep("z", 500) .. '"}}]}\\n\\n'
            while true do
                ngx.print(ev)
                if not ngx.flush(true) then return end
                ngx.sleep(0.01)
            end
        }
    }
_EOC_
    }

    if (!defined $block->more_headers) {
        $block->set_value("more_headers", "Content-Type: application/json\n");
    }

    if (!defined $block->request) {
        $block->set_value("request", "POST /chat\n{\"prompt\": \"x\"}\n");
    }
});

run_tests();

__DATA__

=== TEST 1: C1 refuses the connection: 502
--- c1: http://127.0.0.1:1/v1/embed/chat/completions
--- error_code: 502
--- response_body chomp
{"error":{"message":"C1 could not be reached","type":"upstream_error","param":null,"code":"c1_unreachable"}}
--- error_log eval
[qr/\[error\].*connect\(\) failed \(111: Connection refused\)/, qr/\[error\].*c1: C1 could not be reached/]



=== TEST 2: C1 accepts and never answers: 504
--- c1: http://127.0.0.1:$TEST_NGINX_SERVER_PORT/silent
--- error_code: 504
--- response_body chomp
{"error":{"message":"C1 did not answer in time","type":"upstream_error","param":null,"code":"c1_timeout"}}
--- error_log eval
[qr/\[error\].*upstream timed out/, qr/\[error\].*c1: C1 did not answer in time/]
--- timeout: 5



=== TEST 3: C1 answers an HTML 502: 502 with our JSON
--- c1: http://127.0.0.1:$TEST_NGINX_SERVER_PORT/html502
--- error_code: 502
--- response_headers
Content-Type: application/json
--- response_body chomp
{"error":{"message":"C1 answered HTTP 502","type":"upstream_error","param":null,"code":"c1_error"}}
--- error_log
c1: C1 answered HTTP 502



=== TEST 4: C1 answers invalid JSON: 502
--- c1: http://127.0.0.1:$TEST_NGINX_SERVER_PORT/invalid
--- error_code: 502
--- response_body chomp
{"error":{"message":"C1's answer is not valid JSON","type":"upstream_error","param":null,"code":"bad_upstream_answer"}}
--- error_log
c1: C1's answer is not valid JSON



=== TEST 5: C1 answers truncated JSON: 502
--- c1: http://127.0.0.1:$TEST_NGINX_SERVER_PORT/truncated
--- error_code: 502
--- response_body chomp
{"error":{"message":"C1's answer is not valid JSON","type":"upstream_error","param":null,"code":"bad_upstream_answer"}}
--- error_log
c1: C1's answer is not valid JSON



=== TEST 6: C1 answers with no choices: 502
--- c1: http://127.0.0.1:$TEST_NGINX_SERVER_PORT/nochoices
--- error_code: 502
--- response_body chomp
{"error":{"message":"C1's answer has no choices","type":"upstream_error","param":null,"code":"bad_upstream_answer"}}
--- error_log
c1: C1's answer has no choices



=== TEST 7: C1 answers 10 MB, over c1_max_response_size: 502, C1 dropped
--- c1: http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/answer?len=10485760
--- error_code: 502
--- response_body chomp
{"error":{"message":"C1's answer is larger than this server accepts","type":"upstream_error","param":null,"code":"answer_too_large"}}
--- error_log
c1: C1's answer is larger than "c1_max_response_size"



=== TEST 8: C1 says its answer is 10 MB (Content-Length), over c1_max_response_size: 502
--- c1: http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/answer?len=10485760&cl=1
--- error_code: 502
--- response_body chomp
{"error":{"message":"C1's answer is larger than this server accepts","type":"upstream_error","param":null,"code":"answer_too_large"}}
--- error_log
c1: C1's answer is larger than "c1_max_response_size"



=== TEST 9: C1 resets mid-stream: an error event
--- c1: http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/sse?after=3&reset=1
--- request
POST /v1/chat/completions
{"messages": [{"role": "user", "content": "x"}], "stream": true}
--- response_body_like eval
qr/\A(data: [^\n]*\n\n){4}data: \{"error":\{"message":"C1's stream broke off","type":"upstream_error","param":null,"code":"c1_stream_broken"\}\}\n\n\z/
--- error_log
c1: C1's stream broke off, after the client's stream began



=== TEST 10: C1 streams without end: stopped by c1_stream_max_size
--- c1: http://127.0.0.1:$TEST_NGINX_SERVER_PORT/endless
--- limits: c1_stream_max_size 8k;
--- request
POST /v1/chat/completions
{"messages": [{"role": "user", "content": "x"}], "stream": true}
--- response_body_like eval
qr/\A(data: \{"choices"[^\n]*\n\n)+data: \{"error":\{"message":"C1's stream ran over c1_stream_max_size","type":"upstream_error","param":null,"code":"stream_limit"\}\}\n\n\z/
--- error_log
c1: C1's stream ran over c1_stream_max_size
--- wait: 0.5



=== TEST 11: C1 streams without end: stopped by c1_stream_timeout
--- c1: http://127.0.0.1:$TEST_NGINX_SERVER_PORT/endless
--- limits: c1_stream_timeout 600ms;
--- request
POST /v1/chat/completions
{"messages": [{"role": "user", "content": "x"}], "stream": true}
--- response_body_like eval
qr/\A(data: \{"choices"[^\n]*\n\n)+data: \{"error":\{"message":"C1's stream ran over c1_stream_timeout","type":"upstream_error","param":null,"code":"stream_limit"\}\}\n\n\z/
--- error_log
c1: C1's stream ran over c1_stream_timeout
--- no_error_log
upstream timed out
[alert]
[crit]
[emerg]
--- timeout: 5



=== TEST 12: a stream limit before any event: a plain 502
--- c1: http://127.0.0.1:$TEST_NGINX_SERVER_PORT/endless
--- limits: c1_stream_max_size 100; c1_stream on;
--- error_code: 502
--- response_body chomp
{"error":{"message":"C1's stream ran over c1_stream_max_size","type":"upstream_error","param":null,"code":"stream_limit"}}
--- error_log
c1: C1's stream ran over c1_stream_max_size
