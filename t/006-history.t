# Conversations: threads kept in a shared memory zone.
#
# make test runs it again against Redis: C1_STORE=redis (t/lib/C1Store.pm).

use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use C1Test;

no_long_string();

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->http_config) {
        $block->set_value("http_config",
            "c1_history_zone zone=threads:1m max_messages=20 inactive=1h;\n");
    }

    if (!defined $block->config) {
        my $mock = $block->mock // 'echo-messages';
        $block->set_value("config", <<"_EOC_");
    c1_model m;
    c1_system_prompt "sys";
    location = /chat { c1_history threads; c1_pass /_c1; }
    location = /nohistory { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_http_version 1.1;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/mock/$mock;
    }
    location = /sleep { content_by_lua_block { ngx.sleep(tonumber(ngx.var.arg_s)) ngx.say("slept") } }
_EOC_
    }

    if (!defined $block->more_headers) {
        $block->set_value("more_headers", "Content-Type: application/json\n");
    }
});

run_tests();

__DATA__

=== TEST 1: each turn sends the thread's history to C1, in order, after the system prompt
--- request eval
["POST /chat\n{\"prompt\": \"one\", \"threadId\": \"t1\"}",
 "POST /chat\n{\"prompt\": \"two\", \"threadId\": \"t1\"}",
 "POST /chat\n{\"prompt\": \"other\", \"threadId\": \"t2\"}",
 "POST /chat\n{\"prompt\": \"three\", \"threadId\": \"t1\"}"]
--- response_body eval
["system:sys | user:one",
 "system:sys | user:one | assistant:system:sys | user:one | user:two",
 "system:sys | user:other",
 "system:sys | user:one | assistant:system:sys | user:one | user:two | assistant:system:sys | user:one | assistant:system:sys | user:one | user:two | user:three"]



=== TEST 2: <C1Chat>'s exact body: the message id is stripped from C1's request, the content kept verbatim, the round trip stored under prompt.id and responseId
--- request eval
["POST /chat\n{\"prompt\":{\"id\":\"0f8e7a52-2f7c-4a51-9a4b-1d2f7a8b9c01\",\"role\":\"user\",\"content\":\"<content thesys=\\\"true\\\">Show &quot;sales&quot; by month</content>\"},\"threadId\":\"6c4f1e0a-8d2b-4b7e-a5c3-9e1f2d3c4b5a\",\"responseId\":\"a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d\"}",
 "GET /chat?threadId=6c4f1e0a-8d2b-4b7e-a5c3-9e1f2d3c4b5a"]
--- response_body eval
["system:sys | user:<content thesys=\"true\">Show &quot;sales&quot; by month</content>",
 '[{"id":"0f8e7a52-2f7c-4a51-9a4b-1d2f7a8b9c01","role":"user","content":"<content thesys=\"true\">Show &quot;sales&quot; by month</content>"},{"id":"a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d","role":"assistant","content":"system:sys | user:<content thesys=\"true\">Show &quot;sales&quot; by month</content>"}]']



=== TEST 3: a streamed turn is stored whole
--- mock: sse
--- config
    c1_model m;
    c1_stream on;
    location = /chat { c1_history threads; c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_http_version 1.1;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/sse?crlf=1;
    }
--- request eval
["POST /chat\n{\"prompt\": \"x\", \"threadId\": \"s1\"}", "GET /chat?threadId=s1"]
--- response_body_like eval
['\A' . quotemeta($C1Test::StreamText) . '\z', C1Test::with_ids("[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":\"<content thesys=\\\"true\\\">{&quot;component&quot;: \x{e2}\x{9c}\x{93} \x{c3}\x{a9} \x{f0}\x{9f}\x{98}\x{80}\\n\\\"quoted\\\" \\\\ </content>\"}]")]



=== TEST 4: failed turns are not stored: a C1 error, an unusable answer
--- config
    c1_model m;
    location ~ ^/chat/(\w+)$ { set $case $1; c1_history threads; c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_http_version 1.1;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/c1-$case;
    }
    location = /c1-ok { default_type application/json; return 200 '{"choices":[{"message":{"content":"fine"}}]}'; }
    location = /c1-500 { default_type application/json; return 500 '{"error":{"message":"down"}}'; }
    location = /c1-bad { default_type application/json; return 200 '{"choices":[{"message":{"content":"trunc'; }
--- request eval
["POST /chat/500\n{\"prompt\": \"x\", \"threadId\": \"f1\"}",
 "GET /chat/ok?threadId=f1",
 "POST /chat/ok\n{\"prompt\": \"first\", \"threadId\": \"f1\"}",
 "POST /chat/500\n{\"prompt\": \"second\", \"threadId\": \"f1\"}",
 "POST /chat/bad\n{\"prompt\": \"third\", \"threadId\": \"f1\"}",
 "GET /chat/ok?threadId=f1"]
--- error_code eval
[500, 404, 200, 500, 502, 200]
--- response_body_like eval
['"message":"down"', 'thread_not_found', '^fine$', '"message":"down"', 'bad_upstream_answer', C1Test::with_ids('[{"role":"user","content":"first"},{"role":"assistant","content":"fine"}]')]



=== TEST 5: max_messages keeps the newest messages
--- http_config
    c1_history_zone zone=threads:1m max_messages=4;
--- request eval
["POST /chat\n{\"prompt\": \"1\", \"threadId\": \"m\"}",
 "POST /chat\n{\"prompt\": \"2\", \"threadId\": \"m\"}",
 "POST /chat\n{\"prompt\": \"3\", \"threadId\": \"m\"}",
 "GET /chat?threadId=m"]
--- response_body_like eval
[map({ '\A' . quotemeta($_) . '\z' } "system:sys | user:1",
 "system:sys | user:1 | assistant:system:sys | user:1 | user:2",
 "system:sys | user:1 | assistant:system:sys | user:1 | user:2 | assistant:system:sys | user:1 | assistant:system:sys | user:1 | user:2 | user:3"),
 C1Test::with_ids('[{"role":"user","content":"2"},{"role":"assistant","content":"system:sys | user:1 | assistant:system:sys | user:1 | user:2"},{"role":"user","content":"3"},{"role":"assistant","content":"system:sys | user:1 | assistant:system:sys | user:1 | user:2 | assistant:system:sys | user:1 | assistant:system:sys | user:1 | user:2 | user:3"}]')]



=== TEST 6: a thread expires after inactive
(2 s, so that under valgrind the first two requests fit well inside it)
--- http_config
    c1_history_zone zone=threads:1m inactive=2s;
--- request eval
["POST /chat\n{\"prompt\": \"1\", \"threadId\": \"e\"}",
 "GET /chat?threadId=e",
 "GET /sleep?s=3.1",
 "GET /chat?threadId=e"]
--- error_code eval
[200, 200, 200, 404]
--- response_body_like eval
['^system:sys \| user:1$', "^\\[\\{\"id\":\"$C1Test::Uuid\",\"role\":\"user\",\"content\":\"1\"\\}", 'slept', 'thread_not_found']
--- timeout: 8



=== TEST 7: a full zone evicts the least recently used threads and every request still succeeds
--- zone_only: a zone's size and its eviction (Redis has neither)
--- http_config
    c1_history_zone zone=threads:256k;
--- request eval
[(map { "POST /chat\n{\"prompt\": \"" . ("p$_ " x 3000) . "\", \"threadId\": \"z$_\"}" } 1 .. 12),
 "GET /chat?threadId=z1", "GET /chat?threadId=z12"]
--- error_code eval
[(200) x 12, 404, 200]
--- response_body_like eval
[(map { "^system:sys \\| user:p$_ " } 1 .. 12), 'thread_not_found', "^\\[\\{\"id\":\"$C1Test::Uuid\",\"role\":\"user\",\"content\":\"p12 "]
--- no_error_log
[error]
[alert]
[crit]



=== TEST 8: GET and DELETE of a thread
--- request eval
["POST /chat\n{\"prompt\": \"hello\", \"threadId\": \"d1\"}",
 "GET /chat?threadId=d1",
 "DELETE /chat?threadId=d1",
 "GET /chat?threadId=d1",
 "DELETE /chat?threadId=d1",
 "PUT /chat?threadId=d1\n{}"]
--- error_code eval
[200, 200, 200, 404, 404, 405]
--- response_body_like eval
[map({ '\A' . quotemeta($_) . '\z' } "system:sys | user:hello"),
 C1Test::with_ids('[{"role":"user","content":"hello"},{"role":"assistant","content":"system:sys | user:hello"}]'),
 map({ '\A' . quotemeta($_) . '\z' } '{"deleted":true}',
 '{"error":{"message":"no such thread","type":"invalid_request_error","param":"threadId","code":"thread_not_found"}}',
 '{"error":{"message":"no such thread","type":"invalid_request_error","param":"threadId","code":"thread_not_found"}}',
 '{"error":{"message":"this endpoint takes POST, and GET or DELETE of a thread","type":"invalid_request_error","param":null,"code":"method_not_allowed"}}')]



=== TEST 9: bad threadIds: 400
--- request eval
["POST /chat\n{\"prompt\": \"x\", \"threadId\": \"" . ("a" x 129) . "\"}",
 "POST /chat\n{\"prompt\": \"x\", \"threadId\": \"has space\"}",
 "POST /chat\n{\"prompt\": \"x\", \"threadId\": \"caf\x{c3}\x{a9}\"}",
 "POST /chat\n{\"prompt\": \"x\", \"threadId\": 42}",
 "POST /chat\n{\"prompt\": \"x\", \"threadId\": \"\"}",
 "GET /chat?threadId=a%20b",
 "GET /chat",
 "POST /chat\n{\"prompt\": \"x\", \"threadId\": \"" . ("a" x 128) . "\"}"]
--- error_code eval
[400, 400, 400, 400, 400, 400, 400, 200]
--- response_body_like eval
[('"param":"threadId","code":"invalid_thread_id"') x 7, '^system:sys \| user:x$']



=== TEST 10: without c1_history, threadId is ignored and every request stands alone
--- request eval
["POST /nohistory\n{\"prompt\": \"one\", \"threadId\": \"n1\"}",
 "POST /nohistory\n{\"prompt\": \"two\", \"threadId\": \"n1\"}",
 "POST /nohistory\n{\"prompt\": \"three\", \"threadId\": \"not a valid id\"}",
 "GET /nohistory?threadId=n1"]
--- error_code eval
[200, 200, 200, 405]
--- response_body_like eval
['^system:sys \| user:one$', '^system:sys \| user:two$', '^system:sys \| user:three$', 'method_not_allowed']



=== TEST 11: an unknown zone, a bad zone definition
--- http_config
    c1_history_zone zone=threads:1m max_messages=1;
--- config
    location = /chat { c1_history threads; c1_pass /_c1; }
--- must_die
--- error_log
"max_messages" takes a number from 2 to 100000, not "max_messages=1"



=== TEST 12: c1_history names a zone that does not exist
--- http_config
--- config
    c1_model m;
    location = /chat { c1_history nosuch; c1_pass /_c1; }
--- must_die
--- error_log
unknown c1 history store "nosuch"
