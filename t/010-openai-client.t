# The official openai npm client against an OpenAI-shape location.

use strict;
use warnings;

use Test::More;
use JSON::PP;
use lib 't/lib';
use C1Nginx;
use C1Mock;

if (!-d 't/js/node_modules/openai') {
    plan skip_all => 't/js/node_modules/openai is missing: run util/deps';
}

my $port = C1Nginx::start(<<'_EOC_' . $C1Mock::MockLocations . "}\n");
    server {
        listen 127.0.0.1:$C1_TEST_PORT;

        c1_api_key sk-test-0010;
        c1_model c1/openai/gpt-5/v-20251230;
        c1_system_prompt "Answer with UI.";

        location = /v1/chat/completions { c1_pass /_c1; }
        location = /bad/v1/chat/completions { c1_pass /_c1_403; }

        location = /_c1 {
            internal;
            proxy_pass http://127.0.0.1:$C1_TEST_PORT/mock;
        }

        location = /stream/v1/chat/completions { c1_pass /_c1_sse; }
        location = /broken/v1/chat/completions { c1_pass /_c1_broken; }

        location = /_c1_sse {
            internal;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:$C1_TEST_PORT/mock/sse?usage=1&crlf=1;
        }

        location = /_c1_broken {
            internal;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:$C1_TEST_PORT/mock/sse?after=3&reset=1;
        }

        location = /_c1_403 {
            internal;
            proxy_pass http://127.0.0.1:$C1_TEST_PORT/mock403;
        }

        location = /mock403 {
            default_type application/json;
            return 403 '{"error":{"message":"Invalid API key","type":"authentication_error","param":null,"code":"invalid_api_key"}}';
        }

        # the mock C1 answers with what it received: the body and the
        # Authorization header
        location = /mock {
            content_by_lua_block {
                local cjson = require "cjson"
                ngx.req.read_body()
                local got = ngx.req.get_body_data() .. "\n"
                    .. ngx.var.http_authorization
                ngx.header["Content-Type"] = "application/json"
                ngx.print(cjson.encode({
                    id = "chatcmpl-1", object = "chat.completion",
                    created = 1764000000, model = "c1",
                    choices = {{ index = 0, finish_reason = "stop",
                        message = { role = "assistant", content = got } }},
                    usage = { prompt_tokens = 9, completion_tokens = 8,
                              total_tokens = 17 }
                }))
            }
        }
_EOC_

sub run_client {
    my ($path, $case) = @_;
    my $out = `node t/js/openai-client.mjs http://127.0.0.1:$port$path $case 2>&1`;
    my $res = eval { JSON::PP->new->decode($out) };   # bytes kept as bytes
    ok($res, "$case: the client printed JSON") or diag($out);
    return $res || {};
}

my $r = run_client('/v1', 'completion');
is($r->{object}, 'chat.completion', 'completion: object');
is($r->{finish_reason}, 'stop', 'completion: finish_reason');
is_deeply($r->{usage},
          { prompt_tokens => 9, completion_tokens => 8, total_tokens => 17 },
          'completion: usage');
is($r->{content},
   '{"model":"c1/openai/gpt-5/v-20251230","messages":['
   . '{"role":"system","content":"Answer with UI."},'
   . '{"role":"system","content":"client system"},'
   . '{"role":"user","content":"Show me a \"table\" </content>"}],'
   . '"temperature":0.2}' . "\n" . 'Bearer sk-test-0010',
   'completion: C1 got the configured model and key, not the client\'s');

$r = run_client('/bad/v1', 'error');
ok($r->{thrown}, 'error: the client throws');
is($r->{status}, 403, 'error: status');
is($r->{name}, 'PermissionDeniedError', 'error: class');
is($r->{message}, 'Invalid API key', 'error: message');
is($r->{code}, 'invalid_api_key', 'error: code');

$r = run_client('/v1', 'bad_request');
ok($r->{thrown}, 'bad_request: the client throws');
is($r->{status}, 400, 'bad_request: status');
is($r->{code}, 'invalid_messages', 'bad_request: code');
is($r->{param}, 'messages', 'bad_request: param');

$r = run_client('/stream/v1', 'stream');
is($r->{content}, $C1Mock::StreamText, 'stream: the deltas, whole');
is($r->{chunks}, 10, 'stream: every chunk, one by one');
is($r->{finish}, 'stop', 'stream: finish_reason');
is_deeply($r->{usage},
          { prompt_tokens => 12, completion_tokens => 34, total_tokens => 46 },
          'stream: usage chunk');

$r = run_client('/broken/v1', 'stream_broken');
ok($r->{thrown}, 'stream broken: the iterator throws');
is($r->{message}, "C1's stream broke off", 'stream broken: our error event');
is($r->{content}, "<content thesys=\"true\">{&quot;component&quot;:",
   'stream broken: the deltas before the break arrived');

unlike(C1Nginx::error_log(), qr/\[(?:alert|crit|emerg)\]/,
       'no alert in the error log');

done_testing();
