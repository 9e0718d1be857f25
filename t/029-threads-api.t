# The thread API (issue 14): location /api/threads/ { c1_threads threads; }
# Every route (get, create, update/ID, delete/ID, get/ID, message/ID) with
# its exact JSON, HEAD, and every error of the contract. Threads with known
# ids are made by turns on /chat; the flows that need an id made by create,
# and the 409 of a running turn, are in t/037-threads-clients.t.
#
# make test runs it again against Redis: C1_STORE=redis (t/lib/C1Store.pm).

use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use C1Test;
use C1Threads;

no_long_string();
no_shuffle();

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->http_config) {
        $block->set_value("http_config",
            "c1_history_zone zone=threads:1m max_messages=20 inactive=1h;\n");
    }

    if (!defined $block->config) {
        my $extra = $block->extra // '';
        $block->set_value("config", <<"_EOC_");
    c1_model m;
    c1_system_prompt "sys";
    location = /chat { c1_history threads; c1_pass /_c1; }
    location /api/threads/ { c1_threads threads; $extra }
    location = /_c1 {
        internal;
        proxy_http_version 1.1;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/mock/echo-messages;
    }
    location = /sleep { content_by_lua_block { ngx.sleep(tonumber(ngx.var.arg_s)) ngx.say("slept") } }
_EOC_
    }

    if (!defined $block->more_headers) {
        $block->set_value("more_headers", "Content-Type: application/json\n");
    }
});

our $Turn = sub {
    my ($thread, $p, $r, $content) = @_;
    return "POST /chat\n{\"prompt\":{\"id\":\"$p\",\"role\":\"user\","
        . "\"content\":\"$content\"},\"threadId\":\"$thread\","
        . "\"responseId\":\"$r\"}";
};
$main::Turn = $Turn;

run_tests();

__DATA__

=== TEST 1: an empty store: GET and HEAD of the list, application/json
--- request eval
["GET /api/threads/get",
 "HEAD /api/threads/get",
 "GET /api/threads/get?limit=200",
 "GET /api/threads/get?limit=1"]
--- error_code eval
[200, 200, 200, 200]
--- response_headers eval
[("Content-Type: application/json") x 4]
--- response_body_like eval
[C1Threads::exact('{"threads":[]}'), '\A\z',
 C1Threads::exact('{"threads":[]}'), C1Threads::exact('{"threads":[]}')]



=== TEST 2: create: 201 with the thread (a UUID v4 made by the module, ISO 8601 times); the title given, from the first message, or "New thread"; listed at once
--- request eval
["POST /api/threads/create\n{\"title\":\"My thread\"}",
 "POST /api/threads/create\n{\"messages\":[{\"id\":\"m1\",\"role\":\"user\",\"content\":\"<content thesys=\\\"true\\\">Hello &amp; welcome</content>\"}]}",
 "POST /api/threads/create\n{}",
 "POST /api/threads/create\n{\"messages\":[{\"role\":\"user\",\"content\":\"not this\"}],\"title\":\"Given wins\"}",
 "POST /api/threads/create\n{\"title\":\"say \\\"hi\\\" \\u00e9\\ud83d\\ude00 caf\xc3\xa9\"}",
 "GET /api/threads/get"]
--- error_code eval
[201, 201, 201, 201, 201, 200]
--- response_headers eval
[("Content-Type: application/json") x 6]
--- response_body_like eval
['\A' . C1Threads::thread(undef, 'My thread') . '\z',
 '\A' . C1Threads::thread(undef, 'Hello & welcome') . '\z',
 '\A' . C1Threads::thread(undef, 'New thread') . '\z',
 '\A' . C1Threads::thread(undef, 'Given wins') . '\z',
 '\A' . C1Threads::thread(undef, "say \\\"hi\\\" \xc3\xa9\xf0\x9f\x98\x80 caf\xc3\xa9") . '\z',
 C1Threads::any_order(map { C1Threads::thread(undef, $_) } 'My thread', 'Hello & welcome', 'New thread', 'Given wins', "say \\\"hi\\\" \xc3\xa9\xf0\x9f\x98\x80 caf\xc3\xa9")]



=== TEST 3: a thread made by a turn, through every route: list, get/ID (also HEAD, a %-encoded ID), update (only "title" read, kept as given), message (content replaced, the next turn sends it), delete (204), then 404
--- request eval
[$::Turn->('t1', 'p1', 'r1', 'hello'),
 "GET /api/threads/get",
 "GET /api/threads/get/t1",
 "HEAD /api/threads/get/t1",
 "GET /api/threads/get/t%31",
 "PATCH /api/threads/update/t1\n{\"title\":\"Renamed\"}",
 "PATCH /api/threads/update/t1\n{\"id\":\"other\",\"title\":\"  As given  \",\"createdAt\":\"2000-01-01T00:00:00.000Z\",\"updatedAt\":\"2000-01-01T00:00:00.000Z\"}",
 "GET /api/threads/get",
 "PUT /api/threads/message/t1\n{\"id\":\"r1\",\"content\":\"new answer\"}",
 "PUT /api/threads/message/t1\n{\"id\":\"p1\",\"role\":\"user\",\"content\":\"hello again\"}",
 "GET /api/threads/get/t1",
 $::Turn->('t1', 'p2', 'r2', 'next'),
 "GET /api/threads/get",
 "GET /api/threads/get/other",
 "DELETE /api/threads/delete/t1",
 "GET /api/threads/get/t1",
 "DELETE /api/threads/delete/t1",
 "GET /api/threads/get",
 "GET /chat?threadId=t1"]
--- error_code eval
[200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 404,
 204, 404, 404, 200, 404]
--- response_headers eval
["", ("Content-Type: application/json") x 10, "",
 ("Content-Type: application/json") x 2, "!Content-Type",
 ("Content-Type: application/json") x 4]
--- response_body_like eval
['\Asystem:sys \| user:hello\z',
 C1Threads::page([C1Threads::thread('t1', 'hello')]),
 C1Threads::exact('[{"id":"p1","role":"user","content":"hello"},{"id":"r1","role":"assistant","content":"system:sys | user:hello"}]'),
 '\A\z',
 C1Threads::exact('[{"id":"p1","role":"user","content":"hello"},{"id":"r1","role":"assistant","content":"system:sys | user:hello"}]'),
 '\A' . C1Threads::thread('t1', 'Renamed') . '\z',
 '\A(?!.*2000-01-01)' . C1Threads::thread('t1', '  As given  ') . '\z',
 C1Threads::page([C1Threads::thread('t1', '  As given  ')]),
 C1Threads::exact('{"id":"r1","role":"assistant","content":"new answer"}'),
 C1Threads::exact('{"id":"p1","role":"user","content":"hello again"}'),
 C1Threads::exact('[{"id":"p1","role":"user","content":"hello again"},{"id":"r1","role":"assistant","content":"new answer"}]'),
 '\Asystem:sys \| user:hello again \| assistant:new answer \| user:next\z',
 C1Threads::page([C1Threads::thread('t1', '  As given  ')]),
 C1Threads::err('thread_not_found'),
 '\A\z',
 C1Threads::err('thread_not_found'),
 C1Threads::err('thread_not_found'),
 C1Threads::exact('{"threads":[]}'),
 C1Threads::err('thread_not_found')]



=== TEST 4: unknown routes: 404 unknown_route (an empty ID too); an ID may hold a "/"
--- request eval
["GET /api/threads/",
 "GET /api/threads/nope",
 "GET /api/threads/get/",
 "GET /api/threads/gets",
 "GET /api/threads/GET",
 "POST /api/threads/create/x\n{}",
 "PATCH /api/threads/update/\n{\"title\":\"x\"}",
 "PATCH /api/threads/update\n{\"title\":\"x\"}",
 "DELETE /api/threads/delete/",
 "PUT /api/threads/message/\n{\"id\":\"a\",\"content\":\"x\"}",
 "HEAD /api/threads/nope",
 "GET /api/threads/get/x/y"]
--- error_code eval
[(404) x 12]
--- response_headers eval
[("Content-Type: application/json") x 12]
--- response_body_like eval
[(C1Threads::err('unknown_route')) x 10, '\A\z', C1Threads::err('thread_not_found')]



=== TEST 5: a wrong method on a known route: 405 method_not_allowed with the route's Allow
--- request eval
["POST /api/threads/get\n{}",
 "DELETE /api/threads/get",
 "GET /api/threads/create",
 "PUT /api/threads/create\n{}",
 "GET /api/threads/update/x",
 "POST /api/threads/update/x\n{\"title\":\"x\"}",
 "GET /api/threads/delete/x",
 "POST /api/threads/delete/x\n{}",
 "GET /api/threads/message/x",
 "PATCH /api/threads/message/x\n{}",
 "PATCH /api/threads/get/x\n{}",
 "POST /api/threads/get/x\n{}"]
--- error_code eval
[(405) x 12]
--- response_headers eval
["Allow: GET, HEAD\nContent-Type: application/json",
 "Allow: GET, HEAD\nContent-Type: application/json",
 "Allow: POST\nContent-Type: application/json",
 "Allow: POST\nContent-Type: application/json",
 "Allow: PATCH\nContent-Type: application/json",
 "Allow: PATCH\nContent-Type: application/json",
 "Allow: DELETE\nContent-Type: application/json",
 "Allow: DELETE\nContent-Type: application/json",
 "Allow: PUT\nContent-Type: application/json",
 "Allow: PUT\nContent-Type: application/json",
 "Allow: GET, HEAD\nContent-Type: application/json",
 "Allow: GET, HEAD\nContent-Type: application/json"]
--- response_body_like eval
[(C1Threads::err('method_not_allowed')) x 12]



=== TEST 6: create with a bad body: not JSON, not an object, wrong types; nothing is created
--- request eval
["POST /api/threads/create\n{",
 "POST /api/threads/create\n{\"title\":\"x\"} trailing",
 "POST /api/threads/create\n[]",
 "POST /api/threads/create\n\"a string\"",
 "POST /api/threads/create\n{\"messages\":{}}",
 "POST /api/threads/create\n{\"messages\":\"hello\"}",
 "POST /api/threads/create\n{\"messages\":[42]}",
 "POST /api/threads/create\n{\"messages\":[{\"role\":\"user\",\"content\":42}]}",
 "POST /api/threads/create\n{\"title\":42}",
 "GET /api/threads/get"]
--- error_code eval
[(400) x 9, 200]
--- response_headers eval
[("Content-Type: application/json") x 10]
--- response_body_like eval
[C1Threads::err('invalid_json'), C1Threads::err('invalid_json'),
 (C1Threads::err('invalid_body')) x 4,
 C1Threads::err('invalid_(?:body|message)'),
 C1Threads::err('invalid_message'),
 C1Threads::err('invalid_(?:title|body)'),
 C1Threads::exact('{"threads":[]}')]



=== TEST 7: update and message with bad bodies, bad ids, unknown threads and messages; the thread is left as it was
--- request eval
[$::Turn->('t1', 'p1', 'r1', 'hello'),
 "PATCH /api/threads/update/t1\n{",
 "PATCH /api/threads/update/t1\n[]",
 "PATCH /api/threads/update/t1\n{}",
 "PATCH /api/threads/update/t1\n{\"title\":null}",
 "PATCH /api/threads/update/nosuch\n{\"title\":\"x\"}",
 "PATCH /api/threads/update/a%20b\n{\"title\":\"x\"}",
 "PUT /api/threads/message/t1\n{",
 "PUT /api/threads/message/t1\n[1]",
 "PUT /api/threads/message/t1\n{\"id\":\"r1\",\"content\":42}",
 "PUT /api/threads/message/t1\n{\"id\":\"r1\",\"content\":null}",
 "PUT /api/threads/message/t1\n{\"id\":\"nosuch\",\"content\":\"x\"}",
 "PUT /api/threads/message/t1\n{\"id\":\"has space\",\"content\":\"x\"}",
 "PUT /api/threads/message/t1\n{\"id\":\"" . ("a" x 129) . "\",\"content\":\"x\"}",
 "PUT /api/threads/message/t1\n{\"id\":\"p1\",\"role\":\"assistant\",\"content\":\"x\"}",
 "PUT /api/threads/message/nosuch\n{\"id\":\"r1\",\"content\":\"x\"}",
 "DELETE /api/threads/delete/nosuch",
 "GET /api/threads/get/nosuch",
 "HEAD /api/threads/get/nosuch",
 "GET /api/threads/get/" . ("a" x 129),
 "GET /api/threads/get/a%20b",
 "GET /api/threads/get/caf%C3%A9",
 "DELETE /api/threads/delete/a%09b",
 "GET /api/threads/get/" . ("a" x 128),
 "GET /api/threads/get/t1",
 "GET /api/threads/get"]
--- error_code eval
[200, 400, 400, 400, 400, 404, 400, 400, 400, 400, 400, 404, 400, 400, 400,
 404, 404, 404, 404, 400, 400, 400, 400, 404, 200, 200]
--- response_body_like eval
['\Asystem:sys \| user:hello\z',
 C1Threads::err('invalid_json'),
 C1Threads::err('invalid_body'),
 C1Threads::err('invalid_(?:title|body)'),
 C1Threads::err('invalid_(?:title|body)'),
 C1Threads::err('thread_not_found'),
 C1Threads::err('invalid_thread_id'),
 C1Threads::err('invalid_json'),
 C1Threads::err('invalid_body'),
 C1Threads::err('invalid_message'),
 C1Threads::err('invalid_message'),
 C1Threads::err('message_not_found'),
 C1Threads::err('invalid_message_id'),
 C1Threads::err('invalid_message_id'),
 C1Threads::err('invalid_[a-z_]+'),
 C1Threads::err('thread_not_found'),
 C1Threads::err('thread_not_found'),
 C1Threads::err('thread_not_found'),
 '\A\z',
 (C1Threads::err('invalid_thread_id')) x 4,
 C1Threads::err('thread_not_found'),
 C1Threads::exact('[{"id":"p1","role":"user","content":"hello"},{"id":"r1","role":"assistant","content":"system:sys | user:hello"}]'),
 C1Threads::page([C1Threads::thread('t1', 'hello')])]



=== TEST 8: titles at create and update: 1 to 200 code points of valid UTF-8, not blank; else 400 invalid_title (a body that is not UTF-8 is not JSON: invalid_json)
--- request eval
[$::Turn->('t1', 'p1', 'r1', 'hello'),
 "POST /api/threads/create\n{\"title\":\"\"}",
 "POST /api/threads/create\n{\"title\":\"   \"}",
 "POST /api/threads/create\n{\"title\":\" \\t\\n \"}",
 "POST /api/threads/create\n{\"title\":\"" . ("x" x 201) . "\"}",
 "POST /api/threads/create\n{\"title\":\"" . ("\xc3\xa9" x 201) . "\"}",
 "POST /api/threads/create\n{\"title\":\"" . ("\xf0\x9f\x98\x80" x 201) . "\"}",
 "POST /api/threads/create\n{\"title\":\"bad \xff byte\"}",
 "POST /api/threads/create\n{\"title\":\"cut \xc3\"}",
 "POST /api/threads/create\n{\"title\":\"overlong \xc0\xaf\"}",
 "PATCH /api/threads/update/t1\n{\"title\":\"\"}",
 "PATCH /api/threads/update/t1\n{\"title\":\"  \"}",
 "PATCH /api/threads/update/t1\n{\"title\":\"" . ("x" x 201) . "\"}",
 "PATCH /api/threads/update/t1\n{\"title\":\"" . ("\xc3\xa9" x 201) . "\"}",
 "PATCH /api/threads/update/t1\n{\"title\":\"bad \xfe\"}",
 "GET /api/threads/get",
 "POST /api/threads/create\n{\"title\":\"" . ("x" x 200) . "\"}",
 "POST /api/threads/create\n{\"title\":\"" . ("\xc3\xa9" x 200) . "\"}",
 "POST /api/threads/create\n{\"title\":\"" . ("\xf0\x9f\x98\x80" x 200) . "\"}",
 "POST /api/threads/create\n{\"title\":\"" . ("\\u00e9" x 200) . "\"}",
 "POST /api/threads/create\n{\"title\":\"x\"}",
 "PATCH /api/threads/update/t1\n{\"title\":\"" . ("\xe2\x9c\x93" x 200) . "\"}"]
--- error_code eval
[200, (400) x 14, 200, (201) x 5, 200]
--- response_body_like eval
['\Asystem:sys \| user:hello\z',
 (C1Threads::err('invalid_title')) x 6,
 (C1Threads::err('invalid_json')) x 3,
 (C1Threads::err('invalid_title')) x 4,
 C1Threads::err('invalid_json'),
 C1Threads::page([C1Threads::thread('t1', 'hello')]),
 '\A' . C1Threads::thread(undef, "x" x 200) . '\z',
 '\A' . C1Threads::thread(undef, "\xc3\xa9" x 200) . '\z',
 '\A' . C1Threads::thread(undef, "\xf0\x9f\x98\x80" x 200) . '\z',
 '\A' . C1Threads::thread(undef, "\xc3\xa9" x 200) . '\z',
 '\A' . C1Threads::thread(undef, "x") . '\z',
 '\A' . C1Threads::thread('t1', "\xe2\x9c\x93" x 200) . '\z']



=== TEST 9: limit and cursor: newest updatedAt first, nextCursor only when more follow; bad ones 400
--- request eval
[$::Turn->('a', 'pa', 'ra', 'A'),
 "GET /sleep?s=0.01",
 $::Turn->('b', 'pb', 'rb', 'B'),
 "GET /sleep?s=0.01",
 $::Turn->('c', 'pc', 'rc', 'C'),
 "GET /api/threads/get",
 "GET /api/threads/get?limit=1",
 "GET /api/threads/get?limit=2",
 "GET /api/threads/get?limit=3",
 "GET /api/threads/get?limit=200",
 "GET /api/threads/get?limit=0",
 "GET /api/threads/get?limit=201",
 "GET /api/threads/get?limit=abc",
 "GET /api/threads/get?limit=-1",
 "GET /api/threads/get?limit=",
 "GET /api/threads/get?limit=1x",
 "GET /api/threads/get?cursor=a.b",
 "GET /api/threads/get?cursor=%21%21",
 "GET /api/threads/get?limit=2&cursor=a%2Fb",
 "GET /sleep?s=0.01",
 $::Turn->('a', 'pa2', 'ra2', 'A again'),
 "GET /api/threads/get"]
--- error_code eval
[200, 200, 200, 200, 200, 200, 200, 200, 200, 200, (400) x 9, 200, 200, 200]
--- response_body_like eval
['\Asystem:sys \| user:A\z', 'slept', '\Asystem:sys \| user:B\z', 'slept',
 '\Asystem:sys \| user:C\z',
 C1Threads::page([map { C1Threads::thread($_, uc $_) } qw(c b a)]),
 C1Threads::page([C1Threads::thread('c', 'C')], 1),
 C1Threads::page([map { C1Threads::thread($_, uc $_) } qw(c b)], 1),
 C1Threads::page([map { C1Threads::thread($_, uc $_) } qw(c b a)]),
 C1Threads::page([map { C1Threads::thread($_, uc $_) } qw(c b a)]),
 (C1Threads::err('invalid_limit')) x 6,
 (C1Threads::err('invalid_cursor')) x 3,
 'slept',
 '\Asystem:sys \| user:A \| assistant:system:sys \| user:A \| user:A again\z',
 C1Threads::page([map { C1Threads::thread($_, uc $_) } qw(a c b)])]



=== TEST 10: a route is the URI after the location's prefix, a leading "/" skipped
--- config
    c1_model m;
    location = /chat { c1_history threads; c1_pass /_c1; }
    location /v2/threads { c1_threads threads; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/echo-messages;
    }
--- request eval
[$::Turn->('t1', 'p1', 'r1', 'hello'),
 "GET /v2/threads/get",
 "GET /v2/threads/get/t1",
 "GET /v2/threadsget",
 "GET /v2/threads/nope"]
--- error_code eval
[200, 200, 200, 200, 404]
--- response_body_like eval
['\Auser:hello\z',
 C1Threads::page([C1Threads::thread('t1', 'hello')]),
 C1Threads::exact('[{"id":"p1","role":"user","content":"hello"},{"id":"r1","role":"assistant","content":"user:hello"}]'),
 C1Threads::page([C1Threads::thread('t1', 'hello')]),
 C1Threads::err('unknown_route')]



=== TEST 11: the store cannot take a content even after evicting every other thread: 503 history_full, the thread unchanged
--- zone_only: a zone's size (a Redis store has none: maxmemory is t/035)
--- http_config
    c1_history_zone zone=threads:256k;
--- request eval
[$::Turn->('t1', 'p1', 'r1', 'hello'),
 "PUT /api/threads/message/t1\n{\"id\":\"r1\",\"content\":\"" . ("y" x 300000) . "\"}",
 "GET /api/threads/get/t1",
 "GET /api/threads/get"]
--- error_code eval
[200, 503, 200, 200]
--- response_headers eval
["", "Content-Type: application/json", "", ""]
--- response_body_like eval
['\Asystem:sys \| user:hello\z',
 C1Threads::err('history_full'),
 C1Threads::exact('[{"id":"p1","role":"user","content":"hello"},{"id":"r1","role":"assistant","content":"system:sys | user:hello"}]'),
 C1Threads::page([C1Threads::thread('t1', 'hello')])]



=== TEST 12: a body over client_max_body_size: nginx's 413 as the module's JSON
--- extra: client_max_body_size 1k;
--- request eval
["POST /api/threads/create\n{\"title\":\"" . ("x" x 2000) . "\"}",
 "GET /api/threads/get"]
--- error_code eval
[413, 200]
--- response_headers eval
["Content-Type: application/json", "Content-Type: application/json"]
--- response_body_like eval
[C1Threads::err('request_too_large'), C1Threads::exact('{"threads":[]}')]



=== TEST 13: a thread whose only turn failed is not there; a failed turn leaves a thread as it was
--- config
    c1_model m;
    location ~ ^/chat/(\w+)$ { set $case $1; c1_history threads; c1_pass /_c1; }
    location /api/threads/ { c1_threads threads; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/c1-$case;
    }
    location = /c1-ok { default_type application/json; return 200 '{"choices":[{"message":{"content":"fine"}}]}'; }
    location = /c1-500 { default_type application/json; return 500 '{"error":{"message":"down"}}'; }
--- request eval
["POST /chat/500\n{\"prompt\":{\"id\":\"p0\",\"role\":\"user\",\"content\":\"lost\"},\"threadId\":\"f1\"}",
 "GET /api/threads/get",
 "GET /api/threads/get/f1",
 "POST /chat/ok\n{\"prompt\":{\"id\":\"p1\",\"role\":\"user\",\"content\":\"first\"},\"threadId\":\"f1\",\"responseId\":\"r1\"}",
 "POST /chat/500\n{\"prompt\":{\"id\":\"p2\",\"role\":\"user\",\"content\":\"second\"},\"threadId\":\"f1\",\"responseId\":\"r2\"}",
 "GET /api/threads/get/f1",
 "GET /api/threads/get"]
--- error_code eval
[500, 200, 404, 200, 500, 200, 200]
--- response_body_like eval
['"message":"down"',
 C1Threads::exact('{"threads":[]}'),
 C1Threads::err('thread_not_found'),
 '\Afine\z',
 '"message":"down"',
 C1Threads::exact('[{"id":"p1","role":"user","content":"first"},{"id":"r1","role":"assistant","content":"fine"}]'),
 C1Threads::page([C1Threads::thread('f1', 'first')])]
