# c1_retry and c1_fallback_model (issue 17): a failed C1 call is tried
# again while nothing of the answer reached the client, with the fallback
# models, within tries and timeout; what is never retried; what the client,
# the log, the variables and the metrics see.
#
# The mock C1 is C1Plan's /plan, told what to answer on each call (see
# t/lib/C1Plan.pm): ?p=429,200 and so on; GET /calls says what it got and
# reads back the access log of the c1_pass locations (logs/c1.log).
# Positive error_log checks do not mix with pipelined requests, so blocks
# with several requests read what happened from /calls and /metrics.

use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use C1Test;
use C1Plan;

BEGIN {
    my $port = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984;
    $ENV{TEST_NGINX_C1_CLOSED_PORT} = $port + 1;
}

# a thread's GET, exactly: C1Test::with_ids (the old JSON with a UUID id in
# each message), anchored as the rest of this file, \A...\z
sub thread_exact { C1Test::with_ids(@_) }

no_long_string();
no_shuffle();

our $Mock = $C1Plan::Locations;

add_block_preprocessor(sub {
    my $block = shift;

    my $http = $block->http_config // '';
    $block->set_value("http_config", <<"_EOC_");
    log_format c1 '\$request_uri \$status model=\$c1_model tries=\$c1_tries '
                  'fallback=\$c1_fallback error=\$c1_error rt=\$request_time';
    lua_shared_dict calls 1m;
$http
_EOC_

    if (defined $block->config) {
        $block->set_value("config", $block->config . $Mock);
    } else {
        my $c1 = $block->c1 // '';
        my $plan = $block->plan // '200';
        my $up = $block->upstream
                 // "http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/plan?p=$plan";
        my $extra = $block->extra // '';
        $block->set_value("config", <<"_EOC_" . $Mock);
    c1_model m;
    access_log logs/c1.log c1;
    $c1
    location = /chat { c1_pass /_c1; }
    location = /s/chat { c1_stream on; c1_pass /_c1; }
    location = /v1/chat/completions { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_connect_timeout 1s;
        proxy_read_timeout 1s;
        proxy_pass $up;
    }
$extra
_EOC_
    }

    if (!defined $block->more_headers) {
        $block->set_value("more_headers", "Content-Type: application/json\n");
    }
});

our $Stream = join '', map { "data: $_\n\n" }
    '{"choices":[{"delta":{"role":"assistant","content":""}}]}',
    '{"choices":[{"delta":{"content":"one "}}]}',
    '{"choices":[{"delta":{"content":"two "}}]}',
    '{"choices":[{"delta":{"content":"three"}}]}',
    '{"choices":[{"delta":{},"finish_reason":"stop"}]}',
    '[DONE]';
$main::Stream = $Stream;

sub completion_of {
    my $m = shift;
    return '{"id":"chatcmpl-r","object":"chat.completion","created":1764000000,'
         . '"model":"' . $m . '","choices":[{"index":0,"message":{"role":"assistant",'
         . '"content":"answer from ' . $m . '"},"finish_reason":"stop"}]}';
}
our $Completion_m = completion_of('m');
$main::Completion_m = $Completion_m;

# the metrics page: every reason listed, with these counts (others 0)
sub retries_like {
    my %n = @_;
    my $re = '(?s)\A';
    for my $r (qw(error timeout 429 500 502 503 504 bad_answer)) {
        my $v = $n{$r} // 0;
        $re .= "(?=.*^c1_retries_total\\{reason=\"$r\"\\} $v\$)";
    }
    return "(?m)$re";
}
$main::retries_like = \&retries_like;

run_tests();

__DATA__

=== TEST 1: 429 then 200, a JSON prompt: one clean answer, 2 calls, $c1_tries 2
--- c1
c1_retry tries=3;
--- plan: 429,200
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls",
 "GET /metrics",
 "GET /metrics"]
--- error_code eval
[200, 200, 200, 200]
--- response_body_like eval
['\Aanswer from m\z',
 '\Acalls=2\n- 1 m\n- 2 m\n/chat 200 model=m tries=2 fallback=0 error=- rt=[\d.]+\n\z',
 main::retries_like(429 => 1),
 '(?ms)\A(?!.*^c1_requests_total\{[^}]*outcome="(?!ok")[^"]*"\} [1-9]).*^c1_requests_total\{mode="prompt",stream="0",outcome="ok"\} 1$']



=== TEST 2: the log of 429 then 200: one warn line for try 1, no error
--- c1
c1_retry tries=3;
--- plan: 429,200
--- request
POST /chat
{"prompt": "x"}
--- response_body chomp
answer from m
--- error_log eval
[qr/\[warn\].*c1: try 1 of 3 failed \(429\): C1 answered HTTP 429; trying again in \d+ms with model "m"/,
 qr/\[warn\].*mock: call 1 model=m,/,
 qr/\[warn\].*mock: call 2 model=m,/]
--- no_error_log
try 2 of
mock: call 3
[error]
[alert]
[crit]



=== TEST 3: 429 then 200, a text/plain prompt
--- c1
c1_retry tries=3;
--- plan: 429,200
--- more_headers
Content-Type: text/plain
--- pipelined_requests eval
["POST /chat\nx",
 "GET /calls"]
--- error_code eval
[200, 200]
--- response_body_like eval
['\Aanswer from m\z',
 '\Acalls=2\n- 1 m\n- 2 m\n/chat 200 model=m tries=2 fallback=0 error=- rt=[\d.]+\n\z']



=== TEST 4: 429 then 200 in the OpenAI shape: C1's chat.completion byte for byte; C1 got c1_model each time, never the client's
--- c1
c1_retry tries=3;
--- plan: 429,200
--- pipelined_requests eval
["POST /v1/chat/completions\n{\"model\": \"gpt-4o\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}",
 "GET /calls"]
--- error_code eval
[200, 200]
--- response_body_like eval
['\A' . quotemeta($main::Completion_m) . '\z',
 qr{\Acalls=2\n- 1 m\n- 2 m\n/v1/chat/completions 200 model=m tries=2 fallback=0 error=- rt=[\d.]+\n\z}]



=== TEST 5: 429 then 200, a streamed prompt: the raw content, nothing of the first try
--- c1
c1_retry tries=3;
--- plan: 429,200
--- pipelined_requests eval
["POST /s/chat\n{\"prompt\": \"x\"}",
 "GET /calls"]
--- error_code eval
[200, 200]
--- response_body_like eval
['\Aone two three\z',
 '\Acalls=2\n- 1 m\n- 2 m\n/s/chat 200 model=m tries=2 fallback=0 error=- rt=[\d.]+\n\z']



=== TEST 6: 429 then 200, streamed in the OpenAI shape: the second try's events exactly
--- c1
c1_retry tries=3;
--- plan: 429,200
--- request
POST /v1/chat/completions
{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "stream": true}
--- response_headers
Content-Type: text/event-stream
--- response_body eval
$main::Stream
--- error_log
mock: call 2 model=m,
--- no_error_log
mock: call 3
[error]
[alert]
[crit]



=== TEST 7: 429 with Retry-After: 1 then 200: the pause is at least 1 s
--- c1
c1_retry tries=3;
--- plan: 429ra1,200
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls"]
--- error_code eval
[200, 200]
--- response_body_like eval
['\Aanswer from m\z',
 '\Acalls=2\n- 1 m\n- 2 m\n/chat 200 model=m tries=2 fallback=0 error=- rt=(?:1\.\d+|2\.[0-4]\d*)\n\z']
--- timeout: 4



=== TEST 8: 503, 503, 200 with tries=3: the third try answers
--- c1
c1_retry tries=3;
--- plan: 503,503,200
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls",
 "GET /metrics"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
['\Aanswer from m\z',
 '\Acalls=3\n- 1 m\n- 2 m\n- 3 m\n/chat 200 model=m tries=3 fallback=0 error=- rt=[\d.]+\n\z',
 main::retries_like(503 => 2)]



=== TEST 9: the log of 503, 503, 200: two warn lines
--- c1
c1_retry tries=3;
--- plan: 503,503,200
--- request
POST /chat
{"prompt": "x"}
--- response_body chomp
answer from m
--- error_log eval
[qr/\[warn\].*c1: try 1 of 3 failed \(503\): C1 answered HTTP 503; trying again in \d+ms with model "m"/,
 qr/\[warn\].*c1: try 2 of 3 failed \(503\): C1 answered HTTP 503; trying again in \d+ms with model "m"/]
--- no_error_log
try 3 of
[error]
[alert]
[crit]



=== TEST 10: a timeout, then the fallback model answers: call 2 got m2, $c1_model m2, $c1_fallback 1, metrics
--- c1
c1_retry tries=3;
c1_fallback_model m2;
--- plan: timeout,200
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls",
 "GET /metrics",
 "GET /metrics"]
--- error_code eval
[200, 200, 200, 200]
--- response_body_like eval
['\Aanswer from m2\z',
 '\Acalls=2\n- 1 m\n- 2 m2\n/chat 200 model=m2 tries=2 fallback=1 error=- rt=[\d.]+\n\z',
 main::retries_like(timeout => 1),
 '(?m)^c1_fallbacks_total\{model="m2"\} 1$']
--- timeout: 5



=== TEST 11: the log of a timeout then the fallback: the warn line names m2
--- c1
c1_retry tries=3;
c1_fallback_model m2;
--- plan: timeout,200
--- request
POST /chat
{"prompt": "x"}
--- response_body chomp
answer from m2
--- error_log eval
[qr/\[warn\].*c1: try 1 of 3 failed \(timeout\): .*; trying again in \d+ms with model "m2"/,
 qr/mock: call 2 model=m2,/]
--- no_error_log
try 2 of
[alert]
[crit]
--- timeout: 5



=== TEST 12: fallback models in order, the last one repeats (OpenAI shape)
--- c1
c1_retry tries=4 backoff=20ms;
c1_fallback_model m2 m3;
--- plan: 503,503,503,200
--- pipelined_requests eval
["POST /v1/chat/completions\n{\"model\": \"gpt-4o\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}",
 "GET /calls",
 "GET /metrics"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
['\A\{"id":"chatcmpl-r","object":"chat.completion","created":1764000000,"model":"m3",.*"content":"answer from m3"',
 '\Acalls=4\n- 1 m\n- 2 m2\n- 3 m3\n- 4 m3\n/v1/chat/completions 200 model=m3 tries=4 fallback=1 error=- rt=[\d.]+\n\z',
 '(?m)^c1_fallbacks_total\{model="m3"\} 1$']



=== TEST 13: a fallback model from a variable
--- plan: 500,200
--- c1
c1_retry tries=2 on=500 backoff=20ms;
c1_fallback_model $http_x_fallback;
--- more_headers
Content-Type: application/json
X-Fallback: m-var
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls"]
--- error_code eval
[200, 200]
--- response_body_like eval
['\Aanswer from m-var\z',
 '\Acalls=2\n- 1 m\n- 2 m-var\n/chat 200 model=m-var tries=2 fallback=1 error=- rt=[\d.]+\n\z']



=== TEST 14: a first try that succeeds: 1 call, $c1_tries 1, $c1_fallback 0, nothing at warn from the module
--- c1
c1_retry tries=3;
c1_fallback_model m2;
--- plan: 200
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls",
 "GET /metrics"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
['\Aanswer from m\z',
 '\Acalls=1\n- 1 m\n/chat 200 model=m tries=1 fallback=0 error=- rt=[\d.]+\n\z',
 main::retries_like()]
--- no_error_log
c1: try
[alert]
[crit]



=== TEST 15: 400 is never retried: 1 call, the 400 as without c1_retry
--- c1
c1_retry tries=3 on=error,timeout,429,500,502,503,504,bad_answer;
--- plan: 400,200
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls"]
--- error_code eval
[400, 200]
--- response_body_like eval
['\A\{"error":\{"message":"mock 400","type":"mock_error","param":null,"code":"mock_400"\}\}\z',
 '\Acalls=1\n- 1 m\n/chat 400 model=m tries=1 fallback=0 error=c1_error rt=[\d.]+\n\z']



=== TEST 16: the log of a 400: the error line as today, no warn line of a try
--- c1
c1_retry tries=3;
--- plan: 400,200
--- request
POST /chat
{"prompt": "x"}
--- error_code: 400
--- error_log eval
qr/\[error\].*c1: C1 answered HTTP 400/
--- no_error_log
c1: try
mock: call 2
[alert]
[crit]



=== TEST 17: 500 is not retried by default
--- c1
c1_retry tries=3;
--- plan: 500,200
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls"]
--- error_code eval
[500, 200]
--- response_body_like eval
['\A\{"error":\{"message":"mock 500","type":"mock_error","param":null,"code":"mock_500"\}\}\z',
 '\Acalls=1\n- 1 m\n/chat 500 model=m tries=1 fallback=0 error=c1_error rt=[\d.]+\n\z']



=== TEST 18: 500 is retried with on=500
--- c1
c1_retry tries=3 on=500;
--- plan: 500,200
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls",
 "GET /metrics"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
['\Aanswer from m\z',
 '\Acalls=2\n- 1 m\n- 2 m\n/chat 200 model=m tries=2 fallback=0 error=- rt=[\d.]+\n\z',
 main::retries_like(500 => 1)]



=== TEST 19: on= without 429: a 429 is answered at once
--- c1
c1_retry tries=3 on=503;
--- plan: 429,200
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls"]
--- error_code eval
[429, 200]
--- response_body_like eval
['\A\{"error":\{"message":"mock 429","type":"mock_error","param":null,"code":"mock_429"\}\}\z',
 '\Acalls=1\n- 1 m\n/chat 429 model=m tries=1 fallback=0 error=c1_error rt=[\d.]+\n\z']



=== TEST 20: a stream that breaks after its first content is never retried (OpenAI: the error event, no [DONE])
--- c1
c1_retry tries=3 on=error,timeout,429,500,502,503,504,bad_answer;
--- plan: breakafter,stream
--- pipelined_requests eval
["POST /v1/chat/completions\n{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stream\": true}",
 "GET /calls",
 "GET /metrics"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
['\Adata: \{"choices":\[\{"delta":\{"role":"assistant","content":""\}\}\]\}\n\ndata: \{"choices":\[\{"delta":\{"content":"one "\}\}\]\}\n\ndata: \{"error":\{"message":"C1\'s stream broke off","type":"upstream_error","param":null,"code":"c1_stream_broken"\}\}\n\n\z',
 '\Acalls=1\n- 1 m\n/v1/chat/completions 200 model=m tries=1 fallback=0 error=c1_stream_broken rt=[\d.]+\n\z',
 main::retries_like()]



=== TEST 21: the same in prompt mode: the stream is cut after "one ", 1 call, the log as today
--- c1
c1_retry tries=3 on=error,timeout,429,500,502,503,504,bad_answer;
--- plan: breakafter,stream
--- request
POST /s/chat
{"prompt": "x"}
--- ignore_response
--- error_log eval
[qr/\[error\].*c1: C1's stream broke off, after the client's stream began/,
 qr/mock: call 1 model=m,/]
--- no_error_log
mock: call 2
c1: try
[alert]
[crit]



=== TEST 22: prompt mode cut: what arrived is "one " and the chunked body has no last chunk
--- c1
c1_retry tries=3 on=error,timeout,429,500,502,503,504,bad_answer;
--- plan: breakafter,stream
--- extra
    location = /client {
        access_log off;
        content_by_lua_block {
            local s = ngx.socket.tcp()
            s:settimeout(3000)
            assert(s:connect("127.0.0.1", ngx.var.server_port))
            local body = '{"prompt": "x"}'
            s:send("POST /s/chat HTTP/1.1\r\nHost: x\r\n"
                .. "Content-Type: application/json\r\nContent-Length: "
                .. #body .. "\r\n\r\n" .. body)
            local all, err, partial = s:receive("*a")
            all = all or partial
            s:close()
            local head, rest = all:match("^(.-\r\n\r\n)(.*)$")
            ngx.print(head:match("^(HTTP/1.1 %d+)"), "\n")
            local text, ended = "", false
            while true do
                local size, after = rest:match("^(%x+)\r\n(.*)$")
                if not size then break end
                size = tonumber(size, 16)
                if size == 0 then ended = true break end
                text = text .. after:sub(1, size)
                rest = after:sub(size + 3)
            end
            ngx.print("text=[", text, "] last_chunk=", tostring(ended), "\n")
        }
    }
--- pipelined_requests eval
["GET /client",
 "GET /calls"]
--- error_code eval
[200, 200]
--- response_body_like eval
['\AHTTP/1.1 200\ntext=\[one \] last_chunk=false\n\z',
 '\Acalls=1\n- 1 m\n/s/chat 200 model=m tries=1 fallback=0 error=c1_stream_broken rt=[\d.]+\n\z']



=== TEST 23: a stream that breaks before any content is retried with bad_answer: one clean stream (OpenAI)
--- c1
c1_retry tries=3 on=error,timeout,429,502,503,504,bad_answer;
--- plan: breakbefore,stream
--- pipelined_requests eval
["POST /v1/chat/completions\n{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stream\": true}",
 "GET /calls",
 "GET /metrics"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
['\A' . quotemeta($main::Stream) . '\z',
 '\Acalls=2\n- 1 m\n- 2 m\n/v1/chat/completions 200 model=m tries=2 fallback=0 error=- rt=[\d.]+\n\z',
 main::retries_like(bad_answer => 1)]



=== TEST 24: the same in prompt mode: exactly the second try's content
--- c1
c1_retry tries=3 on=error,timeout,429,502,503,504,bad_answer;
--- plan: breakbefore,stream
--- pipelined_requests eval
["POST /s/chat\n{\"prompt\": \"x\"}",
 "GET /calls"]
--- error_code eval
[200, 200]
--- response_body_like eval
['\Aone two three\z',
 '\Acalls=2\n- 1 m\n- 2 m\n/s/chat 200 model=m tries=2 fallback=0 error=- rt=[\d.]+\n\z']



=== TEST 25: a stream that breaks before any content, without bad_answer: not retried, a real error status
--- c1
c1_retry tries=3;
--- plan: breakbefore,stream
--- pipelined_requests eval
["POST /v1/chat/completions\n{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stream\": true}",
 "GET /calls"]
--- error_code eval
[502, 200]
--- response_body_like eval
['\A\{"error":\{"message":"C1\'s stream broke off","type":"upstream_error","param":null,"code":"c1_stream_broken"\}\}\z',
 '\Acalls=1\n- 1 m\n/v1/chat/completions 502 model=m tries=1 fallback=0 error=c1_stream_broken rt=[\d.]+\n\z']



=== TEST 26: an unusable answer (invalid JSON) is retried with bad_answer
--- c1
c1_retry tries=3 on=bad_answer;
--- plan: bad,200
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls"]
--- error_code eval
[200, 200]
--- response_body_like eval
['\Aanswer from m\z',
 '\Acalls=2\n- 1 m\n- 2 m\n/chat 200 model=m tries=2 fallback=0 error=- rt=[\d.]+\n\z']



=== TEST 27: ... and not without it: 502 bad_upstream_answer, 1 call
--- c1
c1_retry tries=3;
--- plan: bad,200
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls"]
--- error_code eval
[502, 200]
--- response_body_like eval
['\A\{"error":\{"message":"[^"]*","type":"upstream_error","param":null,"code":"bad_upstream_answer"\}\}\z',
 '\Acalls=1\n- 1 m\n/chat 502 model=m tries=1 fallback=0 error=bad_upstream_answer rt=[\d.]+\n\z']



=== TEST 28: C1 closes before answering (error): retried
--- c1
c1_retry tries=3;
--- plan: close,200
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls",
 "GET /metrics"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
['\Aanswer from m\z',
 '\Acalls=2\n- 1 m\n- 2 m\n/chat 200 model=m tries=2 fallback=0 error=- rt=[\d.]+\n\z',
 main::retries_like(error => 1)]



=== TEST 29: C1 unreachable on every try: 502 c1_unreachable after 2 tries, one warn line, the final error line
--- c1
c1_retry tries=2 backoff=20ms;
--- upstream: http://127.0.0.1:$TEST_NGINX_C1_CLOSED_PORT/v1/embed/chat/completions
--- request
POST /chat
{"prompt": "x"}
--- error_code: 502
--- response_body chomp
{"error":{"message":"C1 could not be reached","type":"upstream_error","param":null,"code":"c1_unreachable"}}
--- error_log eval
[qr/\[warn\].*c1: try 1 of 2 failed \(error\): C1 could not be reached; trying again in \d+ms with model "m"/,
 qr/\[error\].*c1: C1 could not be reached/]
--- no_error_log
try 2 of
[alert]
[crit]



=== TEST 30: timeout is spent before tries: tries=10, timeout=1s, backoff=500ms, always 503: 2 calls, 503, well under 1.5 s
(the second pause, 750-1250 ms after a first of 375-625 ms, would end past 1 s)
--- c1
c1_retry tries=10 timeout=1s backoff=500ms;
--- plan: 503
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls"]
--- error_code eval
[503, 200]
--- response_body_like eval
['\A\{"error":\{"message":"mock 503","type":"mock_error","param":null,"code":"mock_503"\}\}\z',
 '\Acalls=2\n- 1 m\n- 2 m\n/chat 503 model=m tries=2 fallback=0 error=c1_error rt=(?:0\.[3-9]\d*|1\.[0-4]\d*)\n\z']
--- timeout: 4



=== TEST 31: every try failed with 429: the last failure's status and body, a Retry-After, the warn and error lines
--- c1
c1_retry tries=2;
--- plan: 429
--- request
POST /chat
{"prompt": "x"}
--- error_code: 429
--- response_headers_like
Retry-After: [1-9]\d*
--- response_body chomp
{"error":{"message":"mock 429","type":"mock_error","param":null,"code":"mock_429"}}
--- error_log eval
[qr/\[warn\].*c1: try 1 of 2 failed \(429\): C1 answered HTTP 429; trying again in \d+ms with model "m"/,
 qr/\[error\].*c1: C1 answered HTTP 429/,
 qr/mock: call 2 model=m,/]
--- no_error_log
try 2 of
mock: call 3
[alert]
[crit]



=== TEST 32: the last 429's own Retry-After is passed on (1 then 3: the client gets 3)
--- c1
c1_retry tries=2;
--- plan: 429ra1,429ra3
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls"]
--- error_code eval
[429, 200]
--- response_headers eval
["Retry-After: 3", ""]
--- response_body_like eval
['\A\{"error":\{"message":"mock 429","type":"mock_error","param":null,"code":"mock_429"\}\}\z',
 '\Acalls=2\n- 1 m\n- 2 m\n/chat 429 model=m tries=2 fallback=0 error=c1_error rt=(?:1\.\d+|2\.[0-4]\d*)\n\z']
--- timeout: 4



=== TEST 33: every try failed with 503: 503, the body of the last, no Retry-After; $c1_fallback 1 with the fallback's failure, no fallback counted
--- c1
c1_retry tries=2 backoff=20ms;
c1_fallback_model m2;
--- plan: 503
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls",
 "GET /metrics"]
--- error_code eval
[503, 200, 200]
--- response_headers eval
["!Retry-After", "", ""]
--- response_body_like eval
['\A\{"error":\{"message":"mock 503","type":"mock_error","param":null,"code":"mock_503"\}\}\z',
 '\Acalls=2\n- 1 m\n- 2 m2\n/chat 503 model=m2 tries=2 fallback=1 error=c1_error rt=[\d.]+\n\z',
 '(?s)\A(?!.*c1_fallbacks_total\{model="m2"\} [1-9]).*c1_retries_total\{reason="503"\} 1\n']



=== TEST 34: the final error line of all tries failing with 503: at error, once
--- c1
c1_retry tries=2 backoff=20ms;
--- plan: 503
--- request
POST /chat
{"prompt": "x"}
--- error_code: 503
--- error_log eval
[qr/\[warn\].*c1: try 1 of 2 failed \(503\): C1 answered HTTP 503; trying again in \d+ms with model "m"/,
 qr/\[error\].*c1: C1 answered HTTP 503/]
--- no_error_log
try 2 of
[alert]
[crit]



=== TEST 35: the client goes away during a pause (C1 asked for 2 s): the request ends at once with 499, no further call
--- c1
c1_retry tries=3;
--- plan: 503ra2,200
--- extra
    location = /gone {
        access_log off;
        content_by_lua_block {
            local function log()
                local f = io.open(ngx.config.prefix() .. "logs/c1.log", "rb")
                if not f then return "" end
                local s = f:read("*a")
                f:close()
                return s
            end
            local s = ngx.socket.tcp()
            s:settimeout(3000)
            assert(s:connect("127.0.0.1", ngx.var.server_port))
            local body = '{"prompt": "x"}'
            s:send("POST /s/chat HTTP/1.1\r\nHost: x\r\n"
                .. "Content-Type: application/json\r\nContent-Length: "
                .. #body .. "\r\n\r\n" .. body)
            ngx.sleep(0.5)
            s:settimeout(1)
            local got, err = s:receive(1)
            ngx.print("during the pause: ", got and "data" or err, "\n")
            s:close()
            local gone = ngx.now()
            local line = ""
            for i = 1, 40 do
                ngx.sleep(0.025)
                ngx.update_time()
                line = log()
                if line ~= "" then break end
            end
            ngx.print("logged within 0.5 s: ", tostring(ngx.now() - gone < 0.5), "\n")
            ngx.sleep(2)
            ngx.print("calls=", ngx.shared.calls:get("n"), "\n", log())
        }
    }
--- request
GET /gone
--- response_body_like eval
'\Aduring the pause: timeout\nlogged within 0\.5 s: true\ncalls=1\n/s/chat 499 model=m tries=1 fallback=0 error=[^ ]* rt=0\.[4-9]\d*\n\z'
--- no_error_log
mock: call 2
[alert]
[crit]
--- timeout: 6



=== TEST 36: a thread's turn across tries: 503 then 200 commits one turn
--- http_config
    c1_history_zone zone=threads:1m;
--- c1
c1_retry tries=3;
c1_history threads;
--- plan: 503,200
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"one\", \"threadId\": \"t1\"}",
 "GET /chat?threadId=t1",
 "GET /calls"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
['\Aanswer from m\z',
 main::thread_exact('[{"role":"user","content":"one"},{"role":"assistant","content":"answer from m"}]'),
 '\Acalls=2\n- 1 m\n- 2 m\n']



=== TEST 37: the next turn after a retried one: C1 gets the thread's one pair, then the new prompt
--- http_config
    c1_history_zone zone=threads:1m;
--- c1
c1_retry tries=3;
c1_history threads;
--- plan: 503,200
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"one\", \"threadId\": \"t3\"}",
 "POST /chat\n{\"prompt\": \"two\", \"threadId\": \"t3\"}",
 "GET /calls?bodies=1"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
['\Aanswer from m\z',
 '\Aanswer from m\z',
 '\Acalls=3\n- 1 m\n[^\n]*"messages":\[\{"role":"user","content":"one"\}\][^\n]*\n- 2 m\n[^\n]*"messages":\[\{"role":"user","content":"one"\}\][^\n]*\n- 3 m\n[^\n]*"messages":\[\{"role":"user","content":"one"\},\{"role":"assistant","content":"answer from m"\},\{"role":"user","content":"two"\}\][^\n]*\n']



=== TEST 38: a streamed turn across tries (break before content, then a stream): one turn, the content of the second
--- http_config
    c1_history_zone zone=threads:1m;
--- c1
c1_retry tries=3 on=bad_answer;
c1_history threads;
--- plan: breakbefore,stream
--- pipelined_requests eval
["POST /s/chat\n{\"prompt\": \"one\", \"threadId\": \"t2\"}",
 "GET /s/chat?threadId=t2"]
--- error_code eval
[200, 200]
--- response_body_like eval
['\A' . quotemeta("one two three") . '\z',
 main::thread_exact('[{"role":"user","content":"one"},{"role":"assistant","content":"one two three"}]')]



=== TEST 39: a racing turn on the thread during the backoff pause gets 409; the thread keeps the turns that answered
--- http_config
    c1_history_zone zone=threads:1m;
--- c1
c1_retry tries=3;
c1_history threads;
--- plan: 503ra1,200
--- extra
    location = /race {
        access_log off;
        content_by_lua_block {
            local port = ngx.var.server_port
            local function post(prompt)
                local body = '{"prompt": "' .. prompt .. '", "threadId": "r1"}'
                local s = ngx.socket.tcp()
                s:settimeout(4000)
                assert(s:connect("127.0.0.1", port))
                s:send("POST /chat HTTP/1.0\r\nContent-Type: application/json\r\n"
                    .. "Content-Length: " .. #body .. "\r\n\r\n" .. body)
                local all, err, partial = s:receive("*a")
                all = all or partial
                s:close()
                return all:match("^HTTP/1%.%d (%d+)"),
                       all:match("\r\n\r\n(.*)$")
            end
            local a = ngx.thread.spawn(post, "one")
            ngx.sleep(0.3)
            local bs, bb = post("two")
            local _, as, ab = ngx.thread.wait(a)
            local cs, cb = post("three")
            ngx.print("A ", as, " ", ab, "\nB ", bs, " ", bb, "\nC ", cs, " ", cb, "\n")
        }
    }
--- pipelined_requests eval
["GET /race",
 "GET /chat?threadId=r1",
 "GET /calls"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
['\AA 200 answer from m\nB 409 \{"error":\{[^\n]*"code":"thread_busy"\}\}\nC 200 answer from m\n\z',
 main::thread_exact('[{"role":"user","content":"one"},{"role":"assistant","content":"answer from m"},{"role":"user","content":"three"},{"role":"assistant","content":"answer from m"}]'),
 '\Acalls=3\n- 1 m\n- 2 m\n- 3 m\n']
--- timeout: 6



=== TEST 40: c1_retry off by default: a 429 is answered, 1 call, $c1_tries 1
--- plan: 429,200
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls",
 "GET /metrics"]
--- error_code eval
[429, 200, 200]
--- response_body_like eval
['\A\{"error":\{"message":"mock 429","type":"mock_error","param":null,"code":"mock_429"\}\}\z',
 '\Acalls=1\n- 1 m\n/chat 429 model=m tries=1 fallback=0 error=c1_error rt=[\d.]+\n\z',
 main::retries_like()]



=== TEST 41: inheritance: c1_retry at http level, one location with c1_retry off, one server-level fallback
--- http_config
    c1_retry tries=3 backoff=20ms;
--- config
    c1_model m;
    c1_fallback_model m2;
    access_log logs/c1.log c1;
    location = /chat { c1_pass /_c1a; }
    location = /off/chat { c1_retry off; c1_pass /_c1b; }
    location = /again/chat { c1_retry tries=2 on=500 backoff=20ms; c1_pass /_c1c; }
    location = /_c1a {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/plan?k=a&p=429,200;
    }
    location = /_c1b {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/plan?k=b&p=429,200;
    }
    location = /_c1c {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/plan?k=c&p=429,200;
    }
--- pipelined_requests eval
["POST /off/chat\n{\"prompt\": \"x\"}",
 "POST /chat\n{\"prompt\": \"x\"}",
 "POST /again/chat\n{\"prompt\": \"x\"}",
 "GET /calls"]
--- error_code eval
[429, 200, 429, 200]
--- response_body_like eval
['\A\{"error":\{"message":"mock 429"',
 '\Aanswer from m2\z',
 '\A\{"error":\{"message":"mock 429"',
 '\Acalls=4\nb 1 m\na 1 m\na 2 m2\nc 1 m\n/off/chat 429 model=m tries=1 fallback=0 error=c1_error rt=[\d.]+\n/chat 200 model=m2 tries=2 fallback=1 error=- rt=[\d.]+\n/again/chat 429 model=m tries=1 fallback=0 error=c1_error rt=[\d.]+\n\z']



=== TEST 42: a Retry-After that does not fit in what is left of timeout: no further try, the 429 at once with C1's Retry-After
--- c1
c1_retry tries=3 timeout=1s;
--- plan: 429ra5,200
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls"]
--- error_code eval
[429, 200]
--- response_headers eval
["Retry-After: 5", ""]
--- response_body_like eval
['\A\{"error":\{"message":"mock 429","type":"mock_error","param":null,"code":"mock_429"\}\}\z',
 '\Acalls=1\n- 1 m\n/chat 429 model=m tries=1 fallback=0 error=c1_error rt=0\.[0-4]\d*\n\z']



=== TEST 43: 503 then 200, a streamed text/plain prompt
--- c1
c1_retry tries=3;
--- plan: 503,200
--- more_headers
Content-Type: text/plain
--- pipelined_requests eval
["POST /s/chat\nx",
 "GET /calls"]
--- error_code eval
[200, 200]
--- response_body_like eval
['\Aone two three\z',
 '\Acalls=2\n- 1 m\n- 2 m\n/s/chat 200 model=m tries=2 fallback=0 error=- rt=[\d.]+\n\z']



=== TEST 44: a request refused before any call: $c1_tries and $c1_fallback are "-" (README: as $c1_stream, unknown without a call)
--- c1
c1_retry tries=3;
--- plan: 200
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"\"}",
 "GET /calls"]
--- error_code eval
[400, 200]
--- response_body_like eval
['"code":"empty_prompt"',
 '\Acalls=0\n/chat 400 model=m tries=- fallback=- error=empty_prompt rt=[\d.]+\n\z']



=== TEST 45: every try broke before content (bad_answer): 502 c1_stream_broken, a real status, 2 calls
--- c1
c1_retry tries=2 on=bad_answer backoff=20ms;
--- plan: breakbefore
--- pipelined_requests eval
["POST /v1/chat/completions\n{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stream\": true}",
 "GET /calls"]
--- error_code eval
[502, 200]
--- response_body_like eval
['\A\{"error":\{"message":"C1\'s stream broke off","type":"upstream_error","param":null,"code":"c1_stream_broken"\}\}\z',
 '\Acalls=2\n- 1 m\n- 2 m\n/v1/chat/completions 502 model=m tries=2 fallback=0 error=c1_stream_broken rt=[\d.]+\n\z']



=== TEST 46: c1_stream_timeout before any content is a timeout: retried, one clean stream
--- c1
c1_retry tries=3;
c1_stream_timeout 500ms;
--- plan: hangbefore,stream
--- pipelined_requests eval
["POST /v1/chat/completions\n{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stream\": true}",
 "GET /calls",
 "GET /metrics"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
['\A' . quotemeta($main::Stream) . '\z',
 '\Acalls=2\n- 1 m\n- 2 m\n/v1/chat/completions 200 model=m tries=2 fallback=0 error=- rt=[\d.]+\n\z',
 main::retries_like(timeout => 1)]
--- timeout: 4



=== TEST 47: an error event before any content is a bad_answer: retried with it listed (prompt stream)
--- c1
c1_retry tries=3 on=bad_answer;
--- plan: errorbefore,stream
--- pipelined_requests eval
["POST /s/chat\n{\"prompt\": \"x\"}",
 "GET /calls",
 "GET /metrics"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
['\Aone two three\z',
 '\Acalls=2\n- 1 m\n- 2 m\n/s/chat 200 model=m tries=2 fallback=0 error=- rt=[\d.]+\n\z',
 main::retries_like(bad_answer => 1)]



=== TEST 48: an answer over c1_max_response_size is never retried, even with bad_answer
--- c1
c1_retry tries=3 on=error,timeout,429,500,502,503,504,bad_answer;
c1_max_response_size 64;
--- plan: 200
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls"]
--- error_code eval
[502, 200]
--- response_body_like eval
['"code":"answer_too_large"',
 '\Acalls=1\n- 1 m\n/chat 502 model=m tries=1 fallback=0 error=answer_too_large rt=[\d.]+\n\z']



=== TEST 49: each try's body is the same but for its model: the client's fields kept, never the client's model (OpenAI shape)
--- c1
c1_retry tries=3 backoff=20ms;
c1_fallback_model m2;
--- plan: 503,200
--- pipelined_requests eval
["POST /v1/chat/completions\n{\"model\": \"gpt-4o\", \"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", \"content\": \"x \\\"q\\\" \\u00e9\"}], \"temperature\": 0.5, \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]}",
 "GET /calls?bodies=1"]
--- error_code eval
[200, 200]
--- response_body_like eval
['"content":"answer from m2"',
 '\Acalls=2\n- 1 m\n(?![^\n]*gpt-4o)(\{[^\n]*"model":"\*"[^\n]*"tools":\[[^\n]*\})\n- 2 m2\n\1\n/v1/chat/completions 200 ']



=== TEST 50: the same in prompt mode, with a system prompt: the same messages on both tries
--- c1
c1_retry tries=3 backoff=20ms;
c1_fallback_model m2;
c1_system_prompt "be brief";
--- plan: 429,200
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls?bodies=1"]
--- error_code eval
[200, 200]
--- response_body_like eval
['\Aanswer from m2\z',
 '\Acalls=2\n- 1 m\n(\{[^\n]*"model":"\*"[^\n]*"be brief"[^\n]*\})\n- 2 m2\n\1\n/chat 200 ']



=== TEST 51: c1_fallbacks_total: one sample per model, up to 32, then model="other"
--- config
    c1_model m;
    c1_retry tries=2 on=500 backoff=1ms;
    c1_fallback_model $http_x_fallback;
    location = /chat { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/plan?cycle=1&p=500,200;
    }
    location = /many {
        content_by_lua_block {
            local ok = 0
            for i = 1, 34 do
                local body = '{"prompt": "x"}'
                local s = ngx.socket.tcp()
                s:settimeout(3000)
                assert(s:connect("127.0.0.1", ngx.var.server_port))
                s:send("POST /chat HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                    .. "Content-Type: application/json\r\n"
                    .. "X-Fallback: f" .. i .. "\r\n"
                    .. "Content-Length: " .. #body .. "\r\n\r\n" .. body)
                local all, err, partial = s:receive("*a")
                s:close()
                if (all or partial):find("answer from f" .. i, 1, true) then
                    ok = ok + 1
                end
            end
            -- the last request is logged (and counted) once nginx saw the
            -- close of its connection (lingering close)
            ngx.sleep(0.2)
            ngx.print("answered=", ok, "\n")
        }
    }
--- pipelined_requests eval
["GET /many",
 "GET /metrics"]
--- error_code eval
[200, 200]
--- response_body_like eval
['\Aanswered=34\n\z',
 '(?m)^# TYPE c1_fallbacks_total counter\n' . join('', map { "c1_fallbacks_total\\{model=\"f$_\"\\} 1\n" } 1 .. 32) . 'c1_fallbacks_total\{model="other"\} 2\n(?!c1_fallbacks_total)']
--- timeout: 6



=== TEST 52: nginx -t: tries=1
--- config
    c1_model m;
    c1_retry tries=1;
    location = /chat { c1_pass /_c1; }
--- must_die
--- error_log eval
qr/\[emerg\] (?![^\n]*unknown directive)[^\n]*tries[^\n]*\b1\b/



=== TEST 53: nginx -t: tries=11
--- config
    c1_model m;
    c1_retry tries=11;
    location = /chat { c1_pass /_c1; }
--- must_die
--- error_log eval
qr/\[emerg\] (?![^\n]*unknown directive)[^\n]*tries[^\n]*\b11\b/



=== TEST 54: nginx -t: an unknown item in on=
--- config
    c1_model m;
    c1_retry on=429,foo;
    location = /chat { c1_pass /_c1; }
--- must_die
--- error_log eval
qr/\[emerg\] (?![^\n]*unknown directive)[^\n]*\bfoo\b/



=== TEST 55: nginx -t: a bad backoff
--- config
    c1_model m;
    c1_retry backoff=x;
    location = /chat { c1_pass /_c1; }
--- must_die
--- error_log eval
qr/\[emerg\] (?![^\n]*unknown directive)[^\n]*backoff[^\n]*\bx\b/



=== TEST 56: nginx -t: a bad timeout
--- config
    c1_model m;
    c1_retry timeout=soon;
    location = /chat { c1_pass /_c1; }
--- must_die
--- error_log eval
qr/\[emerg\] (?![^\n]*unknown directive)[^\n]*timeout[^\n]*\bsoon\b/



=== TEST 57: nginx -t: an unknown parameter
--- config
    c1_model m;
    c1_retry tries=3 retries=4;
    location = /chat { c1_pass /_c1; }
--- must_die
--- error_log eval
qr/\[emerg\] (?![^\n]*unknown directive)[^\n]*retries=4/



=== TEST 58: nginx -t: off with other parameters
--- config
    c1_model m;
    c1_retry off tries=3;
    location = /chat { c1_pass /_c1; }
--- must_die
--- error_log eval
qr/\[emerg\] (?![^\n]*unknown directive)[^\n]*(?:\boff\b|tries=3)/



=== TEST 59: nginx -t: c1_retry twice in one block
--- config
    c1_model m;
    location = /chat { c1_retry tries=3; c1_retry tries=4; c1_pass /_c1; }
--- must_die
--- error_log eval
qr/\[emerg\] .*"c1_retry" directive is duplicate/



=== TEST 60: nginx -t: 5 fallback models
--- config
    c1_model m;
    c1_fallback_model a b c d e;
    location = /chat { c1_pass /_c1; }
--- must_die
--- error_log eval
qr/\[emerg\] (?![^\n]*unknown directive)[^\n]*c1_fallback_model/



=== TEST 61: 4 fallback models and every parameter at its bounds are accepted
--- config
    c1_model m;
    c1_fallback_model a b c d;
    c1_retry tries=10 on=error,timeout,429,500,502,503,504,bad_answer timeout=100ms backoff=1ms;
    location = /chat { c1_pass /_c1; }
    location = /t2/chat { c1_retry tries=2 on=bad_answer; c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/plan?p=200;
    }
--- request
POST /chat
{"prompt": "x"}
--- response_body chomp
answer from m



=== TEST 62: a fallback model from a request header that the internal location uses too: evaluated before the first call
--- plan: 500,200
--- upstream: http://127.0.0.1:$TEST_NGINX_SERVER_PORT/plan?p=500,200&fb=$http_x_fallback
--- c1
c1_retry tries=2 on=500 backoff=20ms;
c1_fallback_model $http_x_fallback;
--- more_headers
Content-Type: application/json
X-Fallback: m-var
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls"]
--- error_code eval
[200, 200]
--- response_body_like eval
['\Aanswer from m-var\z',
 '\Acalls=2\n- 1 m\n- 2 m-var\n/chat 200 model=m-var tries=2 fallback=1 error=- rt=[\d.]+\n\z']
