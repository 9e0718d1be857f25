# c1_stream_timeout with proxy_next_upstream and two upstream servers: it
# is a deadline of the whole C1 call, from its start, across every server
# proxy tries; when it fires nothing is retried; a retry that succeeds in
# time is a success (outcome ok, no $c1_error).
#
# A and B are server blocks of the test's nginx on ports of their own
# (TEST_NGINX_SERVER_PORT + 1 and + 2); + 3 is a port nothing listens on.
# A and B count the requests they get (GET /state: "A=n B=n", then the
# access log of the c1_pass locations: "uri status error=$c1_error").
# Positive error_log checks do not mix with pipelined requests (each
# response's check sees only the log lines new since the last), so what
# must have happened is read from /state, /metrics and the response.

use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use C1Test;

BEGIN {
    my $port = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984;
    $ENV{TEST_NGINX_C1_A_PORT} = $port + 1;
    $ENV{TEST_NGINX_C1_B_PORT} = $port + 2;
    $ENV{TEST_NGINX_C1_CLOSED_PORT} = $port + 3;
}

no_long_string();
no_shuffle();

add_block_preprocessor(sub {
    my $block = shift;

    my $a = $block->server_a // die "no server_a section";
    my $b = $block->server_b // die "no server_b section";
    my $first = $block->first_server // '127.0.0.1:$TEST_NGINX_C1_A_PORT';

    $block->set_value("http_config", <<"_EOC_");
    log_format c1 '\$request_uri \$status error=\$c1_error';
    lua_shared_dict calls 1m;

    upstream c1 {
        server $first;
        server 127.0.0.1:\$TEST_NGINX_C1_B_PORT;
    }

    server {
        listen 127.0.0.1:\$TEST_NGINX_C1_A_PORT;
        location / {
            lua_check_client_abort on;
            content_by_lua_block {
                ngx.on_abort(function () ngx.exit(499) end)
                ngx.shared.calls:incr("A", 1, 0)
                ngx.log(ngx.WARN, "mock A: called")
                ngx.req.read_body()
                $a
            }
        }
    }

    server {
        listen 127.0.0.1:\$TEST_NGINX_C1_B_PORT;
        location / {
            lua_check_client_abort on;
            lua_http10_buffering off;
            content_by_lua_block {
                ngx.on_abort(function ()
                    ngx.log(ngx.WARN, "mock B: dropped")
                    ngx.exit(499)
                end)
                ngx.shared.calls:incr("B", 1, 0)
                ngx.log(ngx.WARN, "mock B: called")
                ngx.req.read_body()
                $b
            }
        }
    }
_EOC_

    $block->set_value("config", <<'_EOC_');
    c1_model m;
    c1_stream on;
    c1_stream_timeout 1s;
    access_log logs/c1.log c1;

    location = /chat { c1_pass /_c1; }
    location = /v1/chat/completions { c1_pass /_c1; }
    location = /state {
        access_log off;
        content_by_lua_block {
            local calls = ngx.shared.calls
            ngx.print("A=", calls:get("A") or 0, " B=", calls:get("B") or 0, "\n")
            local f = io.open(ngx.config.prefix() .. "logs/c1.log", "rb")
            if f then ngx.print(f:read("*a")) f:close() end
        }
    }

    location = /_c1 {
        internal;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_connect_timeout 5s;
        proxy_read_timeout 10s;
        proxy_next_upstream error timeout non_idempotent;
        proxy_pass http://c1/v1/embed/chat/completions;
    }

    location = /metrics { access_log off; c1_metrics; }
_EOC_

    if (!defined $block->more_headers) {
        $block->set_value("more_headers", "Content-Type: application/json\n");
    }
});

# B's streams: a few events (each $d seconds apart), or without end (6 s,
# twice what the client waits)
our $Events = <<'_EOC_';
                ngx.header["Content-Type"] = "text/event-stream"
                local function ev(s)
                    ngx.print("data: " .. s .. "\n\n")
                    if not ngx.flush(true) then return ngx.exit(499) end
                end
                local d = 0.1
                ev('{"choices":[{"index":0,"delta":{"content":"one "}}]}')
                ngx.sleep(d)
                ev('{"choices":[{"index":0,"delta":{"content":"two "}}]}')
                ngx.sleep(d)
                ev('{"choices":[{"index":0,"delta":{"content":"three"}}]}')
                ngx.sleep(d)
                ev('{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}')
                ev('[DONE]')
_EOC_

our $Endless = <<'_EOC_';
                ngx.header["Content-Type"] = "text/event-stream"
                for i = 1, 600 do
                    ngx.print('data: {"choices":[{"index":0,"delta":{"content":"z"}}]}\n\n')
                    if not ngx.flush(true) then return ngx.exit(499) end
                    ngx.sleep(0.01)
                end
_EOC_

$main::Events = $Events;
$main::Endless = $Endless;

run_tests();

__DATA__

=== TEST 1: A never sends a header, B answers a stream: stream_limit at 1 s, B never called
--- server_a
ngx.sleep(30)
--- server_b eval
$main::Events
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /state",
 "GET /metrics"]
--- error_code eval
[502, 200, 200]
--- response_body_like eval
['\A\{"error":\{"message":"C1\'s stream ran over c1_stream_timeout","type":"upstream_error","param":null,"code":"stream_limit"\}\}\z',
 '\AA=1 B=0\n/chat 502 error=stream_limit\n\z',
 '(?m)^c1_requests_total\{mode="prompt",stream="1",outcome="upstream_failure"\} 1$']
--- no_error_log
mock B: called
[alert]
[crit]
--- timeout: 3



=== TEST 2: the same in the OpenAI shape
--- server_a
ngx.sleep(30)
--- server_b eval
$main::Events
--- pipelined_requests eval
["POST /v1/chat/completions\n{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stream\": true}",
 "GET /state",
 "GET /metrics"]
--- error_code eval
[502, 200, 200]
--- response_body_like eval
['\A\{"error":\{"message":"C1\'s stream ran over c1_stream_timeout","type":"upstream_error","param":null,"code":"stream_limit"\}\}\z',
 '\AA=1 B=0\n/v1/chat/completions 502 error=stream_limit\n\z',
 '(?m)^c1_requests_total\{mode="openai",stream="1",outcome="upstream_failure"\} 1$']
--- no_error_log
mock B: called
[alert]
[crit]
--- timeout: 3



=== TEST 3: one request alone: the log says why
--- server_a
ngx.sleep(30)
--- server_b eval
$main::Events
--- request
POST /chat
{"prompt": "x"}
--- error_code: 502
--- response_body_like eval
'\A\{"error":\{"message":"C1\'s stream ran over c1_stream_timeout","type":"upstream_error","param":null,"code":"stream_limit"\}\}\z'
--- error_log
mock A: called
c1: C1's stream ran over c1_stream_timeout
--- no_error_log
mock B: called
upstream timed out
[alert]
[crit]
--- timeout: 3



=== TEST 4: A never answers, B streams without end: the request ends at 1 s, nothing retried
--- server_a
ngx.sleep(30)
--- server_b eval
$main::Endless
--- pipelined_requests eval
["POST /v1/chat/completions\n{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stream\": true}",
 "GET /state"]
--- error_code eval
[502, 200]
--- response_body_like eval
['\A\{"error":\{"message":"C1\'s stream ran over c1_stream_timeout","type":"upstream_error","param":null,"code":"stream_limit"\}\}\z',
 '\AA=1 B=0\n/v1/chat/completions 502 error=stream_limit\n\z']
--- no_error_log
mock B: called
[alert]
[crit]
--- timeout: 3



=== TEST 5: A refuses connections, B answers a stream in 0.3 s: 200, the whole stream, outcome ok; keep-alive goes on
--- first_server: 127.0.0.1:$TEST_NGINX_C1_CLOSED_PORT
--- server_a
ngx.exit(500)
--- server_b eval
$main::Events
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /state",
 "GET /metrics",
 "POST /chat\n{\"prompt\": \"again\"}"]
--- error_code eval
[200, 200, 200, 200]
--- response_body_like eval
['\Aone two three\z',
 '\AA=0 B=1\n/chat 200 error=-\n\z',
 '(?ms)\A(?!.*outcome="(?!ok")[^"]*"\} [1-9]).*^c1_requests_total\{mode="prompt",stream="1",outcome="ok"\} 1$',
 '\Aone two three\z']
--- no_error_log
c1_stream_timeout
mock A: called
[alert]
[crit]
--- timeout: 4



=== TEST 6: the same in the OpenAI shape
--- first_server: 127.0.0.1:$TEST_NGINX_C1_CLOSED_PORT
--- server_a
ngx.exit(500)
--- server_b eval
$main::Events
--- pipelined_requests eval
["POST /v1/chat/completions\n{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stream\": true}",
 "GET /state",
 "GET /metrics"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
['\Adata: \{"choices":\[\{"index":0,"delta":\{"content":"one "\}\}\]\}\n\ndata: \{"choices":\[\{"index":0,"delta":\{"content":"two "\}\}\]\}\n\ndata: \{"choices":\[\{"index":0,"delta":\{"content":"three"\}\}\]\}\n\ndata: \{"choices":\[\{"index":0,"delta":\{\},"finish_reason":"stop"\}\]\}\n\ndata: \[DONE\]\n\n\z',
 '\AA=0 B=1\n/v1/chat/completions 200 error=-\n\z',
 '(?ms)\A(?!.*outcome="(?!ok")[^"]*"\} [1-9]).*^c1_requests_total\{mode="openai",stream="1",outcome="ok"\} 1$']
--- no_error_log
c1_stream_timeout
[alert]
[crit]
--- timeout: 4



=== TEST 7: one request alone: the log has the refused connection, nothing of a timeout
--- first_server: 127.0.0.1:$TEST_NGINX_C1_CLOSED_PORT
--- server_a
ngx.exit(500)
--- server_b eval
$main::Events
--- request
POST /chat
{"prompt": "x"}
--- response_body chomp
one two three
--- error_log
connect() failed (111: Connection refused)
mock B: called
--- no_error_log
c1_stream_timeout
timed out
[alert]
[crit]
--- timeout: 4



=== TEST 8: A refuses, B streams without end: the deadline counts from the call's start, across servers; the stream ends with the error event
--- first_server: 127.0.0.1:$TEST_NGINX_C1_CLOSED_PORT
--- server_a
ngx.exit(500)
--- server_b eval
$main::Endless
--- pipelined_requests eval
["POST /v1/chat/completions\n{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stream\": true}",
 "GET /state"]
--- error_code eval
[200, 200]
--- response_body_like eval
['\A(data: \{"choices":\[\{"index":0,"delta":\{"content":"z"\}\}\]\}\n\n)+data: \{"error":\{"message":"C1\'s stream ran over c1_stream_timeout","type":"upstream_error","param":null,"code":"stream_limit"\}\}\n\n\z',
 '\AA=0 B=1\n/v1/chat/completions 200 error=stream_limit\n\z']
--- no_error_log
[alert]
[crit]
--- timeout: 3



=== TEST 9: A refuses, B streams without end, in prompt mode: the stream is cut (no last chunk) at 1 s
--- first_server: 127.0.0.1:$TEST_NGINX_C1_CLOSED_PORT
--- server_a
ngx.exit(500)
--- server_b eval
$main::Endless
--- request
POST /chat
{"prompt": "x"}
--- ignore_response
--- error_log
c1: C1's stream ran over c1_stream_timeout
mock B: dropped
--- no_error_log
[alert]
[crit]
--- timeout: 3



=== TEST 10: A accepts and closes at 0.7 s, B streams without end: over at 1 s from the start, not 1 s after B began
--- server_a
ngx.sleep(0.7) ngx.exit(444)
--- server_b eval
$main::Endless
--- pipelined_requests eval
["POST /v1/chat/completions\n{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stream\": true}",
 "GET /state"]
--- error_code eval
[200, 200]
--- response_body_like eval
['\A(data: \{"choices":\[\{"index":0,"delta":\{"content":"z"\}\}\]\}\n\n){1,45}data: \{"error":\{"message":"C1\'s stream ran over c1_stream_timeout","type":"upstream_error","param":null,"code":"stream_limit"\}\}\n\n\z',
 '\AA=1 B=1\n/v1/chat/completions 200 error=stream_limit\n\z']
--- no_error_log
[alert]
[crit]
--- timeout: 3
