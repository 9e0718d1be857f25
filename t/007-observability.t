# Variables in the access log, and the Prometheus metrics page.

use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use C1Test;

no_long_string();

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->http_config) {
        $block->set_value("http_config", <<'_EOC_');
    c1_history_zone zone=threads:1m;
    log_format c1 '$request_method $uri $status model=$c1_model '
                  'prompt=$c1_prompt_tokens completion=$c1_completion_tokens '
                  'total=$c1_total_tokens stream=$c1_stream '
                  'thread=$c1_thread_id error=$c1_error '
                  'ttft=$c1_ttft upstream=$c1_upstream_time';
_EOC_
    }

    if (!defined $block->config) {
        my $args = $block->mock_args // '';
        $block->set_value("config", <<"_EOC_");
    c1_model c1/test/model;
    location = /chat { access_log html/c1.log c1; c1_history threads; c1_pass /_c1; }
    location = /v1/chat/completions { access_log html/c1.log c1; c1_pass /_c1; }
    location = /stream { access_log html/c1.log c1; c1_stream on; c1_stream_usage on; c1_pass /_c1_sse; }
    location = /nousage { access_log html/c1.log c1; c1_stream on; c1_pass /_c1_sse; }
    location = /broken { access_log html/c1.log c1; c1_stream on; c1_pass /_c1_broken; }
    location = /metrics { access_log off; c1_metrics; }
    location = /c1.log { access_log off; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/mock/echo-body;
    }
    location = /_c1_sse {
        internal;
        proxy_http_version 1.1;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/mock/sse?usage=1&delay=20;
    }
    location = /_c1_broken {
        internal;
        proxy_http_version 1.1;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/mock/sse?after=2&reset=1;
    }
_EOC_
    }

    if (!defined $block->more_headers) {
        $block->set_value("more_headers", "Content-Type: application/json\n");
    }
});

run_tests();

__DATA__

=== TEST 1: the access log gets the model, token usage, stream flag, thread and timings
--- request eval
["POST /chat\n{\"prompt\": \"x\", \"threadId\": \"th-1\"}",
 "POST /stream\n{\"prompt\": \"x\"}",
 "POST /chat\n{\"prompt\": 1}",
 "GET /c1.log"]
--- error_code eval
[200, 200, 400, 200]
--- response_body_like eval
['^\{"model"', '^<content', 'invalid_prompt',
 qr{\APOST /chat 200 model=c1/test/model prompt=11 completion=22 total=33 stream=0 thread=th-1 error=- ttft=\d+ upstream=\d+
POST /stream 200 model=c1/test/model prompt=12 completion=34 total=46 stream=1 thread=- error=- ttft=\d+ upstream=\d+
POST /chat 400 model=c1/test/model prompt=- completion=- total=- stream=- thread=- error=invalid_prompt ttft=- upstream=-
\z}]



=== TEST 2: c1_stream_usage asks C1 for usage in prompt streams; off, it does not
--- config
    c1_model m;
    location = /on { c1_stream on; c1_stream_usage on; c1_pass /_c1; }
    location = /off { c1_stream on; c1_pass /_c1; }
    location = /openai { c1_stream on; c1_stream_usage on; c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/echo-body;
    }
--- request eval
["POST /on\n{\"prompt\": \"x\"}", "POST /off\n{\"prompt\": \"x\"}",
 "POST /openai\n{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stream\": false}"]
--- response_body_like eval
['^\{"model":"m","messages":\[\{"role":"user","content":"x"\}\],"stream":true,"stream_options":\{"include_usage":true\}\}$',
 '^\{"model":"m","messages":\[\{"role":"user","content":"x"\}\],"stream":true\}$',
 '"content":"\{\\\\"model\\\\":\\\\"m\\\\",\\\\"messages\\\\":\[\{\\\\"role\\\\":\\\\"user\\\\",\\\\"content\\\\":\\\\"x\\\\"\}\]\}"']



=== TEST 3: errors and a broken stream in the log, a C1 error passed through
--- config
    c1_model m;
    location = /chat { access_log html/c1.log c1; c1_pass /_c1; }
    location = /broken { access_log html/c1.log c1; c1_stream on; c1_pass /_c1_broken; }
    location = /c1.log { access_log off; }
    location = /_c1 { internal; proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/c1-429; }
    location = /c1-429 { default_type application/json; return 429 '{"error":{"message":"slow down"}}'; }
    location = /_c1_broken {
        internal;
        proxy_http_version 1.1;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/sse?after=2&reset=1;
    }
--- request eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /chat",
 "POST /broken\n{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stream\": true}",
 "GET /c1.log"]
--- error_code eval
[429, 405, 200, 200]
--- response_body_like eval
['slow down', 'method_not_allowed', 'c1_stream_broken',
 qr{\APOST /chat 429 model=m .* stream=0 thread=- error=c1_error ttft=\d+ upstream=\d+
GET /chat 405 model=- .* error=method_not_allowed ttft=- upstream=-
POST /broken 200 model=m prompt=- completion=- total=- stream=1 thread=- error=c1_stream_broken ttft=\d+ upstream=\d+
\z}]



=== TEST 4: the metrics page after a known sequence: exact counts
--- request eval
["POST /chat\n{\"prompt\": \"a\", \"threadId\": \"m1\"}",
 "POST /chat\n{\"prompt\": \"b\", \"threadId\": \"m1\"}",
 "POST /chat\n{\"prompt\": \"c\", \"threadId\": \"m2\"}",
 "POST /v1/chat/completions\n{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}",
 "POST /stream\n{\"prompt\": \"x\"}",
 "POST /nousage\n{\"prompt\": \"x\"}",
 "POST /chat\n{\"prompt\": 1}",
 "PUT /chat\n{}",
 "GET /chat?threadId=m1",
 "POST /broken\n{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stream\": true}",
 "GET /metrics"]
--- error_code eval
[200, 200, 200, 200, 200, 200, 400, 405, 200, 200, 200]
--- response_body_like eval
[('.') x 10, qr{
c1_requests_total\{mode="none",stream="0",outcome="ok"\} 0
c1_requests_total\{mode="none",stream="0",outcome="invalid_request"\} 2
(?:.*\n)*?c1_requests_total\{mode="prompt",stream="0",outcome="ok"\} 3
(?:.*\n)*?c1_requests_total\{mode="prompt",stream="1",outcome="ok"\} 2
(?:.*\n)*?c1_requests_total\{mode="openai",stream="0",outcome="ok"\} 1
(?:.*\n)*?c1_requests_total\{mode="openai",stream="1",outcome="upstream_failure"\} 1
c1_requests_total\{mode="openai",stream="1",outcome="client_aborted"\} 0
c1_requests_total\{mode="openai",stream="1",outcome="rate_limited"\} 0
# HELP c1_prompt_tokens_total .*
# TYPE c1_prompt_tokens_total counter
c1_prompt_tokens_total 68
# HELP c1_completion_tokens_total .*
# TYPE c1_completion_tokens_total counter
c1_completion_tokens_total 156
# HELP c1_upstream_latency_seconds .*
# TYPE c1_upstream_latency_seconds histogram
(?:c1_upstream_latency_seconds_bucket\{le="[0-9.]+"\} \d+\n)+c1_upstream_latency_seconds_bucket\{le="\+Inf"\} 7
c1_upstream_latency_seconds_sum [0-9.]+
c1_upstream_latency_seconds_count 7
(?:.*\n)*?c1_time_to_first_token_seconds_count 7
(?:.*\n)*?c1_active_streams 0
# HELP c1_retries_total .*
# TYPE c1_retries_total counter
c1_retries_total\{reason="error"\} 0
(?:c1_retries_total\{reason="[a-z0-9_]+"\} 0\n){7}# HELP c1_fallbacks_total .*
# TYPE c1_fallbacks_total counter
# HELP c1_history_store_failures_total .*
# TYPE c1_history_store_failures_total counter
# HELP c1_history_threads Threads kept.
# TYPE c1_history_threads gauge
c1_history_threads\{zone="threads"\} 2
# HELP c1_history_messages .*
# TYPE c1_history_messages gauge
c1_history_messages\{zone="threads"\} 6
}]
