# Threads with owners (issue 14): c1_history_owner $http_x_user. A foreign
# owner's thread answers exactly as an unknown one on every route of the
# thread API and on the chat location's GET/DELETE ?threadId=, and is never
# changed; the same threadId under two owners is two threads; no owner is
# 401, a too long one 400. Without c1_history_owner everyone is one
# anonymous owner (and `nginx -t` warns about it). Config errors of
# c1_threads. A foreign owner racing a running turn: t/037-threads-clients.t.
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
        my $owner = $block->owner // 'c1_history_owner $http_x_user;';
        $block->set_value("config", <<"_EOC_");
    c1_model m;
    c1_system_prompt "sys";
    $owner
    location = /chat { c1_history threads; c1_pass /_c1; }
    location /api/threads/ { c1_threads threads; }
    location = /_c1 {
        internal;
        proxy_http_version 1.1;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/mock/echo-messages;
    }
_EOC_
    }
});

# more_headers for each request: the user (undef: no X-User at all)
sub users {
    return [map { "Content-Type: application/json\n"
                  . (defined $_ ? "X-User: $_\n" : '') } @_];
}
$main::users = \&users;

our $Turn = sub {
    my ($thread, $p, $r, $content) = @_;
    return "POST /chat\n{\"prompt\":{\"id\":\"$p\",\"role\":\"user\","
        . "\"content\":\"$content\"},\"threadId\":\"$thread\","
        . "\"responseId\":\"$r\"}";
};
$main::Turn = $Turn;

our $Alice = C1Threads::exact('[{"id":"p1","role":"user","content":"alice secret"},{"id":"r1","role":"assistant","content":"system:sys | user:alice secret"}]');
$main::Alice = $Alice;

run_tests();

__DATA__

=== TEST 1: another owner's thread is an unknown thread on every route, and is never changed
--- more_headers eval
$::users->('alice', ('bob') x 10, 'alice', 'alice', 'alice', 'Alice')
--- request eval
[$::Turn->('t1', 'p1', 'r1', 'alice secret'),
 "GET /api/threads/get",
 "GET /api/threads/get/t1",
 "HEAD /api/threads/get/t1",
 "PATCH /api/threads/update/t1\n{\"title\":\"bob was here\"}",
 "PUT /api/threads/message/t1\n{\"id\":\"r1\",\"content\":\"bob was here\"}",
 "PUT /api/threads/message/t1\n{\"id\":\"nosuch\",\"content\":\"bob was here\"}",
 "DELETE /api/threads/delete/t1",
 "GET /chat?threadId=t1",
 "DELETE /chat?threadId=t1",
 "GET /api/threads/get?limit=200",
 "GET /api/threads/get",
 "GET /api/threads/get/t1",
 "GET /chat?threadId=t1",
 "GET /api/threads/get"]
--- error_code eval
[200, 200, 404, 404, 404, 404, 404, 404, 404, 404, 200, 200, 200, 200, 200]
--- response_body_like eval
['\Asystem:sys \| user:alice secret\z',
 C1Threads::exact('{"threads":[]}'),
 C1Threads::err('thread_not_found'),
 '\A\z',
 (C1Threads::err('thread_not_found')) x 6,
 C1Threads::exact('{"threads":[]}'),
 C1Threads::page([C1Threads::thread('t1', 'alice secret')]),
 $::Alice, $::Alice,
 C1Threads::exact('{"threads":[]}')]



=== TEST 2: the same threadId under two owners is two threads: their own history, title, rename and delete
--- more_headers eval
$::users->(qw(alice bob alice bob alice bob bob alice bob alice bob))
--- request eval
[$::Turn->('t', 'pa1', 'ra1', 'a1'),
 $::Turn->('t', 'pb1', 'rb1', 'b1'),
 $::Turn->('t', 'pa2', 'ra2', 'a2'),
 "GET /api/threads/get/t",
 "GET /api/threads/get",
 "GET /api/threads/get",
 "DELETE /api/threads/delete/t",
 "GET /api/threads/get/t",
 "GET /api/threads/get/t",
 "PATCH /api/threads/update/t\n{\"title\":\"mine\"}",
 "GET /api/threads/get"]
--- error_code eval
[200, 200, 200, 200, 200, 200, 204, 200, 404, 200, 200]
--- response_body_like eval
['\Asystem:sys \| user:a1\z',
 '\Asystem:sys \| user:b1\z',
 '\Asystem:sys \| user:a1 \| assistant:system:sys \| user:a1 \| user:a2\z',
 C1Threads::exact('[{"id":"pb1","role":"user","content":"b1"},{"id":"rb1","role":"assistant","content":"system:sys | user:b1"}]'),
 C1Threads::page([C1Threads::thread('t', 'a1')]),
 C1Threads::page([C1Threads::thread('t', 'b1')]),
 '\A\z',
 C1Threads::exact('[{"id":"pa1","role":"user","content":"a1"},{"id":"ra1","role":"assistant","content":"system:sys | user:a1"},{"id":"pa2","role":"user","content":"a2"},{"id":"ra2","role":"assistant","content":"system:sys | user:a1 | assistant:system:sys | user:a1 | user:a2"}]'),
 C1Threads::err('thread_not_found'),
 '\A' . C1Threads::thread('t', 'mine') . '\z',
 C1Threads::exact('{"threads":[]}')]



=== TEST 3: an OpenUI turn of another owner with a thread's id starts a thread of its own and leaves the first as it was
--- more_headers eval
$::users->(qw(alice bob alice bob bob alice))
--- request eval
[$::Turn->('t1', 'p1', 'r1', 'alice secret'),
 "POST /chat\n{\"threadId\":\"t1\",\"stream\":false,\"messages\":[{\"id\":\"b1\",\"role\":\"user\",\"content\":\"bob\"}]}",
 "GET /api/threads/get/t1",
 "GET /api/threads/get/t1",
 "GET /api/threads/get",
 "GET /api/threads/get"]
--- error_code eval
[200, 200, 200, 200, 200, 200]
--- response_body_like eval
['\Asystem:sys \| user:alice secret\z',
 '"content":"system:sys \| user:bob"',
 $::Alice,
 '\A\[\{"id":"b1","role":"user","content":"bob"\},\{"id":"[^"]+","role":"assistant","content":"system:sys \| user:bob"\}\]\z',
 C1Threads::page([C1Threads::thread('t1', 'bob')]),
 C1Threads::page([C1Threads::thread('t1', 'alice secret')])]
--- response_headers eval
["", "Content-Type: application/json", "", "", "", ""]



=== TEST 4: no owner: 401 owner_required; an owner of 257 bytes: 400 invalid_owner; 256 bytes is fine
--- more_headers eval
$::users->(undef, undef, undef, undef, undef, undef, undef, undef, '',
           'o' x 257, 'o' x 257, 'o' x 257, 'o' x 257,
           'o' x 256, 'o' x 256, 'o' x 256, 'o' x 256)
--- request eval
["GET /api/threads/get",
 "POST /api/threads/create\n{\"title\":\"x\"}",
 "GET /api/threads/get/t1",
 "PATCH /api/threads/update/t1\n{\"title\":\"x\"}",
 "DELETE /api/threads/delete/t1",
 $::Turn->('t1', 'p1', 'r1', 'hello'),
 "GET /chat?threadId=t1",
 "DELETE /chat?threadId=t1",
 "GET /api/threads/get",
 "GET /api/threads/get",
 "POST /api/threads/create\n{\"title\":\"x\"}",
 $::Turn->('t1', 'p1', 'r1', 'hello'),
 "GET /chat?threadId=t1",
 "GET /api/threads/get",
 $::Turn->('t1', 'p1', 'r1', 'hello'),
 "GET /api/threads/get",
 "GET /chat?threadId=t1"]
--- error_code eval
[(401) x 9, (400) x 4, 200, 200, 200, 200]
--- response_headers eval
[("Content-Type: application/json") x 14, "", "Content-Type: application/json", ""]
--- response_body_like eval
[(C1Threads::err('owner_required')) x 9,
 (C1Threads::err('invalid_owner')) x 4,
 C1Threads::exact('{"threads":[]}'),
 '\Asystem:sys \| user:hello\z',
 C1Threads::page([C1Threads::thread('t1', 'hello')]),
 C1Threads::exact('[{"id":"p1","role":"user","content":"hello"},{"id":"r1","role":"assistant","content":"system:sys | user:hello"}]')]



=== TEST 5: the owner is never logged above debug, whatever happens
--- more_headers eval
$::users->('ownersecret-1', 'ownersecret-1', 'ownersecret-2', 'ownersecret-2',
           'ownersecret-2', 'ownersecret-2', 'ownersecret-2', 'ownersecret-' . ('x' x 250),
           '')
--- request eval
[$::Turn->('t1', 'p1', 'r1', 'hello'),
 "POST /api/threads/create\n{",
 "GET /api/threads/get/t1",
 "GET /chat?threadId=t1",
 "POST /api/threads/get\n{}",
 "GET /api/threads/get?limit=0",
 "PUT /api/threads/message/t1\n{\"id\":\"r1\",\"content\":\"x\"}",
 "GET /api/threads/get",
 "GET /api/threads/get"]
--- error_code eval
[200, 400, 404, 404, 405, 400, 404, 400, 401]
--- response_body_like eval
['\Asystem:sys \| user:hello\z',
 C1Threads::err('invalid_json'),
 (C1Threads::err('thread_not_found')) x 2,
 C1Threads::err('method_not_allowed'),
 C1Threads::err('invalid_limit'),
 C1Threads::err('thread_not_found'),
 C1Threads::err('invalid_owner'),
 C1Threads::err('owner_required')]
--- no_error_log eval
[qr/\[(?:info|notice|warn|error|crit|alert|emerg)\][^\n]*ownersecret/,
 "[alert]", "[crit]", "[emerg]"]



=== TEST 6: without c1_history_owner every client is one anonymous owner: the chat location and the API share the threads whatever the headers
--- owner
--- more_headers eval
$::users->('alice', 'bob', undef, '', 'bob', undef, 'carol', 'dave')
--- request eval
[$::Turn->('t1', 'p1', 'r1', 'hello'),
 "GET /api/threads/get",
 "GET /api/threads/get/t1",
 "GET /chat?threadId=t1",
 "PATCH /api/threads/update/t1\n{\"title\":\"shared\"}",
 "GET /api/threads/get",
 "DELETE /api/threads/delete/t1",
 "GET /api/threads/get/t1"]
--- error_code eval
[200, 200, 200, 200, 200, 200, 204, 404]
--- response_body_like eval
['\Asystem:sys \| user:hello\z',
 C1Threads::page([C1Threads::thread('t1', 'hello')]),
 C1Threads::exact('[{"id":"p1","role":"user","content":"hello"},{"id":"r1","role":"assistant","content":"system:sys | user:hello"}]'),
 C1Threads::exact('[{"id":"p1","role":"user","content":"hello"},{"id":"r1","role":"assistant","content":"system:sys | user:hello"}]'),
 '\A' . C1Threads::thread('t1', 'shared') . '\z',
 C1Threads::page([C1Threads::thread('t1', 'shared')]),
 '\A\z',
 C1Threads::err('thread_not_found')]



=== TEST 7: c1_threads without c1_history_owner: a [warn] at startup
--- owner
--- more_headers
Content-Type: application/json
--- request
GET /api/threads/get
--- response_body_like eval
C1Threads::exact('{"threads":[]}')
--- error_log eval
qr/\[warn\] .*"c1_threads threads" in \S+:\d+ has no "c1_history_owner": every client shares one anonymous owner's threads/



=== TEST 8: with c1_history_owner in effect: no such warning
--- more_headers
Content-Type: application/json
X-User: alice
--- request
GET /api/threads/get
--- response_body_like eval
C1Threads::exact('{"threads":[]}')
--- no_error_log
has no "c1_history_owner"
[alert]
[crit]
[emerg]



=== TEST 9: a c1_threads location without c1_history_owner warns even when other locations have one
--- config
    c1_model m;
    location = /chat { c1_history threads; c1_history_owner $http_x_user; c1_pass /_c1; }
    location /api/threads/ { c1_history_owner $http_x_user; c1_threads threads; }
    location /open/threads/ { c1_threads threads; }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mock/echo-messages;
    }
--- more_headers
Content-Type: application/json
--- request
GET /open/threads/get
--- response_body_like eval
C1Threads::exact('{"threads":[]}')
--- error_log eval
qr/\[warn\] .*"c1_threads threads" in \S+:\d+ has no "c1_history_owner"/



=== TEST 10: c1_threads names a store that does not exist
--- config
    location /api/threads/ { c1_threads nosuch; }
--- must_die
--- error_log
unknown c1 history store "nosuch"



=== TEST 11: c1_threads in a regex location is refused
--- config
    location ~ ^/api/threads/ { c1_threads threads; }
--- must_die
--- error_log eval
qr/\[emerg\] .*c1_threads/



=== TEST 12: c1_threads in an exact-match location is refused
--- config
    location = /api/threads/ { c1_threads threads; }
--- must_die
--- error_log eval
qr/\[emerg\] .*c1_threads/



=== TEST 13: c1_threads twice in a location is refused
--- config
    location /api/threads/ { c1_threads threads; c1_threads threads; }
--- must_die
--- error_log eval
qr/\[emerg\] .*"c1_threads" directive is duplicate|\[emerg\] .*c1_threads.*duplicate/



=== TEST 14: c1_threads takes a store name
--- config
    location /api/threads/ { c1_threads; }
--- must_die
--- error_log
invalid number of arguments in "c1_threads" directive



=== TEST 15: c1_threads at server level is refused
--- config
    c1_threads threads;
--- must_die
--- error_log
"c1_threads" directive is not allowed here



=== TEST 16: c1_history_owner without a value is refused
--- config
    c1_history_owner;
    location /api/threads/ { c1_threads threads; }
--- must_die
--- error_log
invalid number of arguments in "c1_history_owner" directive
