# The OpenAI shape: a key-hiding gateway for chat completions.

use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use C1Test;

no_long_string();

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->more_headers) {
        $block->set_value("more_headers",
                          "Content-Type: application/json\n"
                          . "Authorization: Bearer client-side-dummy\n");
    }
});

run_tests();

__DATA__

=== TEST 1: the configured model replaces the client's, the system prompt goes first, ids are stripped, other fields pass
--- config
    c1_api_key sk-test-0003;
    c1_model c1/anthropic/claude-sonnet-4/v-20251230;
    c1_system_prompt "Answer with UI.";
    location = /v1/chat/completions { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/echo-body;
    }
--- request
POST /v1/chat/completions
{"model":"gpt-4o","messages":[{"role":"system","content":"client system"},{"id":"m1","role":"user","content":"hi"},{"role":"assistant","content":"hello"},{"role":"user","content":[{"type":"text","text":"more"}]}],"temperature":0.3,"max_tokens":100,"top_p":0.5,"stop":"END","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":"auto","metadata":{"thesys":"{\"c1_custom_components\":{}}"}}
--- response_headers
Content-Type: application/json
--- response_body eval
C1Test::completion('{"model":"c1/anthropic/claude-sonnet-4/v-20251230","messages":[{"role":"system","content":"Answer with UI."},{"role":"system","content":"client system"},{"role":"user","content":"hi"},{"role":"assistant","content":"hello"},{"role":"user","content":[{"type":"text","text":"more"}]}],"temperature":0.3,"max_tokens":100,"top_p":0.5,"stop":"END","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":"auto","metadata":{"thesys":"{\"c1_custom_components\":{}}"}}')



=== TEST 2: C1's chat.completion reaches the client unchanged, byte for byte
--- config
    c1_model m;
    location = /v1/chat/completions { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/fixture;
    }
    location = /fixture {
        default_type application/json;
        return 200 '{ "id": "chatcmpl-9", "object": "chat.completion", "created": 1764000000, "model": "c1/x",\n  "choices": [ { "index": 0, "message": { "role": "assistant", "content": "<content thesys=\\"true\\">{}</content>" }, "finish_reason": "stop" } ],\n  "usage": { "prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7 } }\n';
    }
--- request
POST /v1/chat/completions
{"messages":[{"role":"user","content":"hi"}]}
--- response_body eval
qq{{ "id": "chatcmpl-9", "object": "chat.completion", "created": 1764000000, "model": "c1/x",\n  "choices": [ { "index": 0, "message": { "role": "assistant", "content": "<content thesys=\\"true\\">{}</content>" }, "finish_reason": "stop" } ],\n  "usage": { "prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7 } }\n}



=== TEST 3: configured settings fill in what the client left out; the client's own win
--- config
    c1_model m;
    c1_temperature 0.7;
    c1_max_tokens 500;
    c1_top_p 0.8;
    c1_stop "STOP";
    location = /v1/chat/completions { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/echo-body;
    }
--- request
POST /v1/chat/completions
{"messages":[{"role":"user","content":"hi"}],"temperature":0,"max_completion_tokens":20}
--- response_body eval
C1Test::completion('{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0,"max_completion_tokens":20,"top_p":0.8,"stop":["STOP"]}')



=== TEST 4: an assistant message with tool calls and no content, and a tool message, pass through
--- config
    c1_model m;
    location = /v1/chat/completions { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/echo-body;
    }
--- request
POST /v1/chat/completions
{"messages":[{"role":"user","content":"weather?"},{"role":"assistant","tool_calls":[{"id":"call_1","type":"function","function":{"name":"w","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_1","content":"sunny"}]}
--- response_body eval
C1Test::completion('{"model":"m","messages":[{"role":"user","content":"weather?"},{"role":"assistant","tool_calls":[{"id":"call_1","type":"function","function":{"name":"w","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_1","content":"sunny"}]}')



=== TEST 5: an answer whose content is null (tool calls) is still a valid chat.completion here
--- config
    c1_model m;
    location = /v1/chat/completions { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/fixture;
    }
    location = /fixture {
        default_type application/json;
        return 200 '{"object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[]},"finish_reason":"tool_calls"}]}';
    }
--- request
POST /v1/chat/completions
{"messages":[{"role":"user","content":"hi"}]}
--- response_body chomp
{"object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[]},"finish_reason":"tool_calls"}]}



=== TEST 6: "prompt" and "messages" together are refused
--- config
    c1_model m;
    location = /v1/chat/completions { c1_pass /_c1; }
    location = /_c1 { internal; return 500; }
--- request
POST /v1/chat/completions
{"prompt":"x","messages":[{"role":"user","content":"hi"}]}
--- error_code: 400
--- response_body chomp
{"error":{"message":"give either \"prompt\" or \"messages\", not both","type":"invalid_request_error","param":null,"code":"invalid_body"}}



=== TEST 7: a "stream" that is not a boolean is refused
--- config
    c1_model m;
    location = /v1/chat/completions { c1_pass /_c1; }
    location = /_c1 { internal; return 500; }
--- request
POST /v1/chat/completions
{"messages":[{"role":"user","content":"hi"}],"stream":"yes"}
--- error_code: 400
--- response_body chomp
{"error":{"message":"\"stream\" must be true or false","type":"invalid_request_error","param":"stream","code":"invalid_stream"}}
