# The API key: in no response, in no log line of the module's at any level,
# in no log line at all above debug; sent only in the c1_pass subrequest.

use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use C1Test;

no_long_string();

my $key = 'sk-th-SECRET-0123456789';

add_block_preprocessor(sub {
    my $block = shift;

    $block->set_value("http_config", <<"_EOC_");
    c1_api_key $key;
    c1_model m;
    c1_history_zone zone=threads:1m;
_EOC_

    $block->set_value("config", <<'_EOC_');
    location = /chat { c1_history threads; c1_pass /_c1; }
    location = /headers { c1_pass /_c1_headers; }
    location = /stream { c1_stream on; c1_pass /_c1_sse; }
    location = /v1/chat/completions { c1_pass /_c1; }
    location = /small { client_max_body_size 10; c1_pass /_c1; }
    location = /fail { c1_pass /_c1_fail; }
    location = /elsewhere {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/echo-headers;
    }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/echo-body;
    }
    location = /_c1_headers {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/echo-headers;
    }
    location = /_c1_sse {
        internal;
        proxy_http_version 1.1;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/sse;
    }
    location = /_c1_fail {
        internal;
        proxy_pass http://127.0.0.1:1/;
    }
_EOC_

    $block->set_value("more_headers", "Content-Type: application/json\n")
        unless defined $block->more_headers;

    # the module's own lines (at any level), and every line above debug
    $block->set_value("no_error_log", [
        qr/c1: .*\Q$key\E/,
        qr/\[(?:info|notice|warn|error|crit|alert|emerg)\].*\Q$key\E/,
        "[alert]", "[crit]",
    ]);
});

run_tests();

__DATA__

=== TEST 1: the key reaches C1 in the subrequest's Authorization header
--- request
POST /headers
{"prompt": "x"}
--- response_body_like: ^POST /mock/echo-headers\naccept: application/json\nauthorization: Bearer sk-th-SECRET-0123456789\n



=== TEST 2: the key is sent nowhere else: another proxy_pass of the same server
--- request
GET /elsewhere
--- response_body_unlike: (?i)authorization|SECRET



=== TEST 3: no response carries the key, on any path
--- request eval
["POST /chat\n{\"prompt\": \"x\", \"threadId\": \"k\"}",
 "GET /chat?threadId=k",
 "POST /stream\n{\"prompt\": \"x\"}",
 "POST /v1/chat/completions\n{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}",
 "POST /chat\nnot json",
 "GET /stream",
 "POST /small\n{\"prompt\": \"a longer prompt\"}",
 "POST /fail\n{\"prompt\": \"x\"}",
 "DELETE /chat?threadId=k"]
--- error_code eval
[200, 200, 200, 200, 400, 405, 413, 502, 200]
--- response_body_unlike eval
[(qr/SECRET/) x 9]
--- raw_response_headers_unlike eval
[(qr/SECRET/) x 9]
