# The thread store in Redis (issue 15): c1_history_redis against a real
# redis-server (Debian's) that this file starts on a unix socket in
# t/servroot-redis-034 and kills at its end. Its configuration errors; turns
# stored and loaded through Redis with the zone's expectations; the thread
# API through Redis; the keys, their layout and expiries, read with
# redis-cli (GET /redis?a=WORD&a=WORD... runs one command, see C1Redis);
# the turn's lock key. Every block starts with an empty Redis (FLUSHALL).
# The owner is "alice" unless ?u=NAME says otherwise, so the keys have
# known names: c1:t:5:alice:THREAD:m|l|k, c1:o:5:alice.

use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use C1Test;
use C1Redis;
use URI::Escape qw(uri_escape);

no_long_string();
no_shuffle();

our $R = C1Redis->start(name => '034');
$ENV{TEST_NGINX_REDIS_SOCK} = $R->{sock};

our $Iso = '\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z';

# a thread's JSON as a pattern (id undef: one made by the module)
sub thread {
    my ($id, $title) = @_;
    my $i = defined $id ? quotemeta $id : $C1Test::Uuid;
    return '\{"id":"' . $i . '","title":"' . quotemeta($title)
        . '","createdAt":"' . $Iso . '","updatedAt":"' . $Iso . '"\}';
}

sub page {
    my ($threads, $more) = @_;
    return '\A\{"threads":\[' . join(',', @$threads) . '\]'
        . ($more ? ',"nextCursor":"[0-9a-zA-Z_-]+"' : '') . '\}\z';
}

sub exact { '\A' . quotemeta(shift) . '\z' }

sub err {
    my $code = shift;
    return '\A\{"error":\{"message":"(?:[^"\\\\]|\\\\.)+","type":"[a-z_]+","param":'
        . '(?:null|"[^"]*"),"code":"' . $code . '"\}\}\z';
}

# a request running one redis-cli command (rclis: its lines sorted)
sub rcli { "GET /redis?" . join '&', map { 'a=' . uri_escape($_) } @_ }
sub rclis { rcli(@_) . '&sort=1' }

sub turn {
    my ($thread, $p, $r, $content, $q) = @_;
    return "POST /chat" . ($q // '') . "\n{\"prompt\":{\"id\":\"$p\",\"role\":\"user\","
        . "\"content\":\"$content\"},\"threadId\":\"$thread\","
        . "\"responseId\":\"$r\"}";
}

# a small HTTP client in the test's nginx: requests to itself
our $LuaHttp = <<'_EOL_';
            local function start(method, path, body)
                local s = ngx.socket.tcp()
                s:settimeout(10000)
                assert(s:connect("127.0.0.1", tonumber(ngx.var.server_port)))
                local r = method .. " " .. path .. " HTTP/1.0\r\nHost: localhost\r\n"
                if body then
                    r = r .. "Content-Type: application/json\r\nContent-Length: "
                          .. #body .. "\r\n"
                end
                assert(s:send(r .. "\r\n" .. (body or "")))
                return s
            end
            local function finish(s)
                local r = s:receive("*a") or ""
                s:close()
                local st, b = r:match("^HTTP/1%.%d (%d+).-\r\n\r\n(.*)$")
                return tonumber(st), b
            end
            local function cli(...)
                local w = {}
                for _, a in ipairs({...}) do
                    w[#w + 1] = "'" .. a:gsub("'", "'\\''") .. "'"
                end
                local f = io.popen(ngx.var.c1_cli .. " " .. table.concat(w, " "))
                local out = f:read("*a")
                f:close()
                return (out:gsub("\n$", ""))
            end
_EOL_

add_block_preprocessor(sub {
    my $block = shift;

    $R->flushall;

    my $store = $block->http_config
        // "    c1_history_redis name=threads server=unix:\$TEST_NGINX_REDIS_SOCK"
           . " max_messages=20 inactive=1h;\n";
    $block->set_value("http_config", <<'_EOC_' . $store);
    map "$http_x_user$arg_u" $owner { "" alice; default "$http_x_user$arg_u"; }
_EOC_

    if (!defined $block->config) {
        my $cli = $R->cli_command;
        $cli =~ s/'/\\'/g;
        $block->set_value("config", <<"_EOC_" . $R->locations);
    c1_model m;
    c1_system_prompt "sys";
    c1_history_owner \$owner;
    set \$c1_cli '$cli';
    location = /chat { c1_history threads; c1_pass /_c1; }
    location = /nohistory { c1_pass /_c1; }
    location = /ui { c1_history threads; c1_pass /_c1; }
    location = /slow { c1_history threads; c1_stream on; c1_pass /_c1_slow; }
    location /api/threads/ { c1_threads threads; }
    location = /metrics { c1_metrics; }
    location = /_c1 {
        internal;
        proxy_http_version 1.1;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/mock/echo-messages;
    }
    location = /_c1_sse {
        internal;
        proxy_http_version 1.1;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/mock/sse?crlf=1;
    }
    location = /_c1_slow {
        internal;
        proxy_http_version 1.1;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/mock/sse?delay=150;
    }
    location = /sse { c1_history threads; c1_stream on; c1_pass /_c1_sse; }
    location ~ ^/c1fail/(\\w+)\$ { set \$case \$1; c1_history threads; c1_pass /_c1_case; }
    location = /_c1_case {
        internal;
        proxy_http_version 1.1;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/c1-\$case;
    }
    location = /c1-ok { default_type application/json; return 200 '{"choices":[{"message":{"content":"fine"}}]}'; }
    location = /c1-500 { default_type application/json; return 500 '{"error":{"message":"down"}}'; }
    location = /c1-bad { default_type application/json; return 200 '{"choices":[{"message":{"content":"trunc'; }
    location = /sleep { content_by_lua_block { ngx.sleep(tonumber(ngx.var.arg_s)) ngx.say("slept") } }

    # every page of the list: the ids of each page, " | " between pages
    location = /pages {
        content_by_lua_block {
$LuaHttp
            local cjson = require "cjson"
            local out, cursor = {}, nil
            for i = 1, 50 do
                local path = "/api/threads/get?limit=" .. ngx.var.arg_limit
                             .. (ngx.var.arg_u and "&u=" .. ngx.var.arg_u or "")
                             .. (cursor and "&cursor=" .. cursor or "")
                local st, b = finish(start("GET", path))
                if st ~= 200 then
                    out[#out + 1] = "status " .. tostring(st) .. " " .. tostring(b)
                    break
                end
                local j = cjson.decode(b)
                local ids = {}
                for _, t in ipairs(j.threads) do ids[#ids + 1] = t.id end
                out[#out + 1] = table.concat(ids, ",")
                cursor = j.nextCursor
                if cursor == nil or cursor == cjson.null then break end
                if not cursor:match("^[0-9a-zA-Z_-]+\$") then
                    out[#out + 1] = "bad cursor " .. cursor
                    break
                end
            end
            ngx.say(table.concat(out, " | "))
        }
    }

    # a slow turn on thread ?t=, its lock key's PTTL while it runs, a
    # second turn meanwhile, the lock after it
    location = /lockcheck {
        content_by_lua_block {
$LuaHttp
            local t = ngx.var.arg_t
            local key = "c1:t:5:alice:" .. t .. ":k"
            local s = start("POST", "/slow", '{"prompt":"slow","threadId":"' .. t .. '"}')
            ngx.sleep(0.4)
            local during = cli("PTTL", key)
            local busy = finish(start("POST", "/chat", '{"prompt":"fast","threadId":"' .. t .. '"}'))
            local st, b = finish(s)
            local after
            for i = 1, 40 do
                after = cli("EXISTS", key)
                if after == "0" then break end
                ngx.sleep(0.05)
            end
            ngx.say("during=", during, " busy=", tostring(busy), " status=",
                    tostring(st), " after=", after)
        }
    }
_EOC_
    }

    if (!defined $block->more_headers) {
        $block->set_value("more_headers", "Content-Type: application/json\n");
    }
});

run_tests();

__DATA__

=== TEST 1: a bad server address (the message quotes the parameter or its value)
--- http_config
    c1_history_redis name=threads server=127.0.0.1:notaport;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*"(?:server=)?127\.0\.0\.1:notaport"/



=== TEST 2: an empty unix socket path
--- http_config
    c1_history_redis name=threads server=unix:;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*"(?:server=)?unix:"/



=== TEST 3: a bad db
--- http_config
    c1_history_redis name=threads server=unix:/tmp/x.sock db=first;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*"(?:db=)?first"/



=== TEST 4: a negative db
--- http_config
    c1_history_redis name=threads server=unix:/tmp/x.sock db=-1;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*"(?:db=)?-1"/



=== TEST 5: a bad timeout
--- http_config
    c1_history_redis name=threads server=unix:/tmp/x.sock timeout=soon;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*"(?:timeout=)?soon"/



=== TEST 6: connections out of 1..64
--- http_config
    c1_history_redis name=threads server=unix:/tmp/x.sock connections=65;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*"(?:connections=)?65"/



=== TEST 7: max_messages out of 2..100000
--- http_config
    c1_history_redis name=threads server=unix:/tmp/x.sock max_messages=1;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*"(?:max_messages=)?1"/



=== TEST 8: a name a zone already has
--- http_config
    c1_history_zone zone=threads:1m;
    c1_history_redis name=threads server=unix:/tmp/x.sock;
--- config
--- must_die
--- error_log
a c1 history store "threads" is already defined



=== TEST 9: a zone with a Redis store's name
--- http_config
    c1_history_redis name=threads server=unix:/tmp/x.sock;
    c1_history_zone zone=threads:1m;
--- config
--- must_die
--- error_log
a c1 history store "threads" is already defined



=== TEST 10: one Redis store name twice
--- http_config
    c1_history_redis name=threads server=unix:/tmp/x.sock;
    c1_history_redis name=threads server=unix:/tmp/y.sock;
--- config
--- must_die
--- error_log
a c1 history store "threads" is already defined



=== TEST 11: an unknown parameter
--- http_config
    c1_history_redis name=threads server=unix:/tmp/x.sock colour=blue;
--- config
--- must_die
--- error_log
invalid parameter "colour=blue" of "c1_history_redis"



=== TEST 12: no server
--- http_config
    c1_history_redis name=threads db=1;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*(?=.*"c1_history_redis")(?=.*server)/



=== TEST 13: no name
--- http_config
    c1_history_redis server=unix:/tmp/x.sock db=1;
--- config
--- must_die
--- error_log eval
qr/\[emerg\] .*(?=.*"c1_history_redis")(?=.*name)/



=== TEST 14: http only
--- http_config
--- config
    c1_history_redis name=threads server=unix:/tmp/x.sock;
--- must_die
--- error_log
"c1_history_redis" directive is not allowed here



=== TEST 15: every parameter, two servers, a Redis that is not there: nginx starts (nothing is contacted at start), a prompt without a thread works
--- http_config
    c1_history_redis name=threads server=unix:/nonexistent/redis.sock
        server=127.0.0.1:1 password=secret db=3 prefix=app1: max_messages=100000
        inactive=24h timeout=250ms connections=64;
--- request
POST /nohistory
{"prompt": "one"}
--- response_body chomp
system:sys | user:one



=== TEST 16: each turn sends the thread's history to C1, in order, after the system prompt (as with a zone)
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



=== TEST 17: <C1Chat>'s body: stored under prompt.id and responseId, loaded back verbatim; a repeated prompt.id and responseId are not stored twice
--- request eval
[::turn('6c4f1e0a-8d2b-4b7e-a5c3-9e1f2d3c4b5a', '0f8e7a52', 'a1b2c3d4', '<content thesys=\"true\">Show &quot;sales&quot; by month</content>'),
 "GET /chat?threadId=6c4f1e0a-8d2b-4b7e-a5c3-9e1f2d3c4b5a",
 ::turn('6c4f1e0a-8d2b-4b7e-a5c3-9e1f2d3c4b5a', '0f8e7a52', 'a1b2c3d4', 'again'),
 "GET /chat?threadId=6c4f1e0a-8d2b-4b7e-a5c3-9e1f2d3c4b5a"]
--- response_body_like eval
[::exact('system:sys | user:<content thesys="true">Show &quot;sales&quot; by month</content>'),
 ::exact('[{"id":"0f8e7a52","role":"user","content":"<content thesys=\"true\">Show &quot;sales&quot; by month</content>"},{"id":"a1b2c3d4","role":"assistant","content":"system:sys | user:<content thesys=\"true\">Show &quot;sales&quot; by month</content>"}]'),
 '\Asystem:sys \| user:<content thesys="true">Show &quot;sales&quot; by month</content> \| assistant:.* \| user:again\z',
 ::exact('[{"id":"0f8e7a52","role":"user","content":"<content thesys=\"true\">Show &quot;sales&quot; by month</content>"},{"id":"a1b2c3d4","role":"assistant","content":"system:sys | user:<content thesys=\"true\">Show &quot;sales&quot; by month</content>"}]')]



=== TEST 18: a streamed turn is stored whole; ids made by the module are UUIDs
--- request eval
["POST /sse\n{\"prompt\": \"x\", \"threadId\": \"s1\"}", "GET /chat?threadId=s1"]
--- response_body_like eval
['^' . quotemeta($C1Test::StreamText) . '$', C1Test::with_ids("[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":\"<content thesys=\\\"true\\\">{&quot;component&quot;: \x{e2}\x{9c}\x{93} \x{c3}\x{a9} \x{f0}\x{9f}\x{98}\x{80}\\n\\\"quoted\\\" \\\\ </content>\"}]")]



=== TEST 19: failed turns are not stored: a C1 error, an unusable answer; the thread a failed first turn made leaves no key
--- request eval
["POST /c1fail/500\n{\"prompt\": \"x\", \"threadId\": \"f1\"}",
 "GET /chat?threadId=f1",
 ::rclis('KEYS', 'c1:t:*'),
 "POST /c1fail/ok\n{\"prompt\": \"first\", \"threadId\": \"f1\"}",
 "POST /c1fail/500\n{\"prompt\": \"second\", \"threadId\": \"f1\"}",
 "POST /c1fail/bad\n{\"prompt\": \"third\", \"threadId\": \"f1\"}",
 "GET /chat?threadId=f1"]
--- error_code eval
[500, 404, 200, 200, 500, 502, 200]
--- response_body_like eval
['"message":"down"', 'thread_not_found', '\A\z', '^fine$', '"message":"down"', 'bad_upstream_answer', C1Test::with_ids('[{"role":"user","content":"first"},{"role":"assistant","content":"fine"}]')]



=== TEST 20: max_messages keeps the newest messages, in Redis too (LLEN)
--- http_config
    c1_history_redis name=threads server=unix:$TEST_NGINX_REDIS_SOCK max_messages=4;
--- request eval
["POST /chat\n{\"prompt\": \"1\", \"threadId\": \"m\"}",
 "POST /chat\n{\"prompt\": \"2\", \"threadId\": \"m\"}",
 "POST /chat\n{\"prompt\": \"3\", \"threadId\": \"m\"}",
 "GET /chat?threadId=m",
 ::rcli('LLEN', 'c1:t:5:alice:m:l')]
--- response_body_like eval
[map({ '^' . quotemeta($_) . '$' } "system:sys | user:1",
 "system:sys | user:1 | assistant:system:sys | user:1 | user:2",
 "system:sys | user:1 | assistant:system:sys | user:1 | user:2 | assistant:system:sys | user:1 | assistant:system:sys | user:1 | user:2 | user:3"),
 C1Test::with_ids('[{"role":"user","content":"2"},{"role":"assistant","content":"system:sys | user:1 | assistant:system:sys | user:1 | user:2"},{"role":"user","content":"3"},{"role":"assistant","content":"system:sys | user:1 | assistant:system:sys | user:1 | user:2 | assistant:system:sys | user:1 | assistant:system:sys | user:1 | user:2 | user:3"}]'),
 '\A4\z']



=== TEST 21: GET and DELETE ?threadId= on the chat location; DELETE removes every key of the thread
--- request eval
["POST /chat\n{\"prompt\": \"hello\", \"threadId\": \"d1\"}",
 "GET /chat?threadId=d1",
 ::rclis('KEYS', 'c1:t:*'),
 "DELETE /chat?threadId=d1",
 "GET /chat?threadId=d1",
 "DELETE /chat?threadId=d1",
 ::rclis('KEYS', 'c1:t:*'),
 ::rcli('ZSCORE', 'c1:o:5:alice', 'd1')]
--- error_code eval
[200, 200, 200, 200, 404, 404, 200, 200]
--- response_body_like eval
[::exact("system:sys | user:hello"),
 C1Test::with_ids('[{"role":"user","content":"hello"},{"role":"assistant","content":"system:sys | user:hello"}]'),
 '\Ac1:t:5:alice:d1:l\nc1:t:5:alice:d1:m\z',
 ::exact('{"deleted":true}'),
 'thread_not_found', 'thread_not_found', '\A\z', '\A\z']



=== TEST 22: owners: the same thread id under two owners is two threads, with keys of their own
--- request eval
["POST /chat\n{\"prompt\": \"from alice\", \"threadId\": \"same\"}",
 "POST /chat?u=bob\n{\"prompt\": \"from bob\", \"threadId\": \"same\"}",
 "GET /chat?threadId=same",
 "GET /chat?threadId=same&u=bob",
 "GET /api/threads/get/same?u=carol",
 ::rclis('KEYS', 'c1:t:*')]
--- error_code eval
[200, 200, 200, 200, 404, 200]
--- response_body_like eval
[::exact("system:sys | user:from alice"), ::exact("system:sys | user:from bob"),
 C1Test::with_ids('[{"role":"user","content":"from alice"},{"role":"assistant","content":"system:sys | user:from alice"}]'),
 C1Test::with_ids('[{"role":"user","content":"from bob"},{"role":"assistant","content":"system:sys | user:from bob"}]'),
 ::err('thread_not_found'),
 '\Ac1:t:3:bob:same:l\nc1:t:3:bob:same:m\nc1:t:5:alice:same:l\nc1:t:5:alice:same:m\z']



=== TEST 23: the thread API through Redis: list, get/ID, update (only "title" read, kept as given), message (the next turn sends it), delete (204, every key gone), then 404
--- request eval
[::turn('t1', 'p1', 'r1', 'hello'),
 "GET /api/threads/get",
 "GET /api/threads/get/t1",
 "HEAD /api/threads/get/t1",
 "PATCH /api/threads/update/t1\n{\"id\":\"other\",\"title\":\"  As given  \",\"createdAt\":\"2000-01-01T00:00:00.000Z\"}",
 ::rcli('HGET', 'c1:t:5:alice:t1:m', 'title'),
 "GET /api/threads/get",
 "PUT /api/threads/message/t1\n{\"id\":\"r1\",\"content\":\"new answer\"}",
 "PUT /api/threads/message/t1\n{\"id\":\"p1\",\"role\":\"user\",\"content\":\"hello again\"}",
 "PUT /api/threads/message/t1\n{\"id\":\"nosuch\",\"content\":\"x\"}",
 "GET /api/threads/get/t1",
 ::turn('t1', 'p2', 'r2', 'next'),
 "GET /api/threads/get/other",
 "DELETE /api/threads/delete/t1",
 "GET /api/threads/get/t1",
 "DELETE /api/threads/delete/t1",
 "GET /api/threads/get",
 ::rclis('KEYS', 'c1:t:*')]
--- error_code eval
[200, 200, 200, 200, 200, 200, 200, 200, 200, 404, 200, 200, 404, 204, 404, 404, 200, 200]
--- response_body_like eval
['\Asystem:sys \| user:hello\z',
 ::page([::thread('t1', 'hello')]),
 ::exact('[{"id":"p1","role":"user","content":"hello"},{"id":"r1","role":"assistant","content":"system:sys | user:hello"}]'),
 '\A\z',
 '\A(?!.*2000-01-01)' . ::thread('t1', '  As given  ') . '\z',
 ::exact('  As given  '),
 ::page([::thread('t1', '  As given  ')]),
 ::exact('{"id":"r1","role":"assistant","content":"new answer"}'),
 ::exact('{"id":"p1","role":"user","content":"hello again"}'),
 ::err('message_not_found'),
 ::exact('[{"id":"p1","role":"user","content":"hello again"},{"id":"r1","role":"assistant","content":"new answer"}]'),
 '\Asystem:sys \| user:hello again \| assistant:new answer \| user:next\z',
 ::err('thread_not_found'),
 '\A\z',
 ::err('thread_not_found'),
 ::err('thread_not_found'),
 ::exact('{"threads":[]}'),
 '\A\z']



=== TEST 24: create through Redis: 201 with a UUID, the title given, from the message (not stored), or "New thread"; listed at once, newest first; its hash and index entry in Redis, no message list
--- request eval
["POST /api/threads/create\n{\"title\":\"My thread\"}",
 "POST /api/threads/create\n{\"messages\":[{\"id\":\"m1\",\"role\":\"user\",\"content\":\"<content thesys=\\\"true\\\">Hello &amp; welcome</content>\"}]}",
 "POST /api/threads/create\n{}",
 "GET /api/threads/get",
 ::rcli('ZCARD', 'c1:o:5:alice'),
 ::rclis('KEYS', 'c1:t:5:alice:*:l'),
 ::rcli('EVAL', 'local n = 0 for _, k in ipairs(redis.call("KEYS", "c1:t:5:alice:*:m")) do if redis.call("HGET", k, "title") then n = n + 1 end end return n', 0)]
--- error_code eval
[201, 201, 201, 200, 200, 200, 200]
--- response_body_like eval
['\A' . ::thread(undef, 'My thread') . '\z',
 '\A' . ::thread(undef, 'Hello & welcome') . '\z',
 '\A' . ::thread(undef, 'New thread') . '\z',
 ::page([::thread(undef, 'New thread'), ::thread(undef, 'Hello & welcome'), ::thread(undef, 'My thread')]),
 '\A3\z', '\A\z', '\A3\z']



=== TEST 25: pages through Redis: newest first, every thread once, a turn moves its thread to the top; bad limit and cursor
--- request eval
[(map { ::turn("t$_", "p$_", "r$_", "hello $_") } 1 .. 5),
 "GET /pages?limit=2",
 "GET /api/threads/get?limit=2",
 "GET /api/threads/get?limit=5",
 ::turn('t2', 'p6', 'r6', 'again'),
 "GET /pages?limit=2",
 "GET /pages?limit=200",
 "GET /pages?limit=1",
 "GET /api/threads/get?limit=0",
 "GET /api/threads/get?limit=201",
 "GET /api/threads/get?cursor=no%20such",
 "GET /pages?limit=3&u=bob"]
--- error_code eval
[(200) x 12, 400, 400, 400, 200]
--- response_body_like eval
[(map { "\\Asystem:sys \\| user:hello $_\\z" } 1 .. 5),
 '\At5,t4 \| t3,t2 \| t1\n\z',
 ::page([::thread('t5', 'hello 5'), ::thread('t4', 'hello 4')], 1),
 ::page([map { ::thread("t$_", "hello $_") } CORE::reverse 1 .. 5]),
 '\Asystem:sys \| user:hello 2 \| ',
 '\At2,t5 \| t4,t3 \| t1\n\z',
 '\At2,t5,t4,t3,t1\n\z',
 '\At2 \| t5 \| t4 \| t3 \| t1\n\z',
 ::err('invalid_limit'), ::err('invalid_limit'), ::err('invalid_cursor'),
 '\A\n\z']



=== TEST 26: the keys of a turn's thread: c1:t:5:alice:ID:m (hash: title, created, updated, score), :l (list of "u"|"a" + ms + "\n" + id + "\n" + content), the owner's index c1:o:5:alice (score = updated * 1024 + a counter below 1024), c1:seq; every key of the thread and the index expire within inactive (1h); no lock after the turn
--- request eval
[::turn('k1', 'p1', 'r1', 'hello'),
 "GET /redis/layout?p=c1:*",
 ::rcli('LRANGE', 'c1:t:5:alice:k1:l', 0, -1),
 ::rcli('HGET', 'c1:t:5:alice:k1:m', 'title'),
 ::rcli('EVAL', 'local m = "c1:t:5:alice:k1:m" local c = tonumber(redis.call("HGET", m, "created")) local u = tonumber(redis.call("HGET", m, "updated")) local s = tonumber(redis.call("ZSCORE", "c1:o:5:alice", "k1")) local hs = tonumber(redis.call("HGET", m, "score")) if c < 1700000000000 or u < c then return "bad times" end if math.floor(s / 1024) ~= u then return "bad score " .. s .. " for " .. u end if hs ~= s then return "hash score " .. tostring(hs) end return "ok"', 0),
 ::turn('k1', 'p2', 'r2', 'two'),
 ::rcli('EVAL', 'local m = "c1:t:5:alice:k1:m" local u = tonumber(redis.call("HGET", m, "updated")) local s = tonumber(redis.call("ZSCORE", "c1:o:5:alice", "k1")) if math.floor(s / 1024) ~= u then return "bad score" end return redis.call("LLEN", "c1:t:5:alice:k1:l")', 0)]
--- response_body_like eval
['\Asystem:sys \| user:hello\z',
 '\Ac1:o:5:alice zset (?:[1-9]\d{0,5}|[1-2]\d{6}|3[0-5]\d{5}|3600000)\nc1:seq string -?\d+\nc1:t:5:alice:k1:l list (?:[1-9]\d{0,5}|[1-2]\d{6}|3[0-5]\d{5}|3600000)\nc1:t:5:alice:k1:m hash (?:[1-9]\d{0,5}|[1-2]\d{6}|3[0-5]\d{5}|3600000)\z',
 '\Au\d{13}\np1\nhello\na\d{13}\nr1\nsystem:sys \| user:hello\z',
 '\Ahello\z',
 '\Aok\z',
 '\Asystem:sys \| user:hello \| assistant:system:sys \| user:hello \| user:two\z',
 '\A4\z']



=== TEST 27: expiry with Redis's own (inactive=3s): every key of a thread has a TTL of at most 3 s; an expired thread is neither listed nor found, and listing drops its entry from the owner's index
--- http_config
    c1_history_redis name=threads server=unix:$TEST_NGINX_REDIS_SOCK inactive=3s;
--- request eval
["POST /chat\n{\"prompt\": \"1\", \"threadId\": \"e1\"}",
 "GET /redis/layout?p=c1:[ot]:*",
 "GET /sleep?s=2.0",
 "POST /chat\n{\"prompt\": \"2\", \"threadId\": \"e2\"}",
 ::rcli('ZRANGE', 'c1:o:5:alice', 0, -1),
 "GET /sleep?s=2.0",
 "GET /api/threads/get",
 "GET /chat?threadId=e1",
 "GET /api/threads/get/e1",
 ::rcli('ZRANGE', 'c1:o:5:alice', 0, -1),
 "GET /chat?threadId=e2"]
--- error_code eval
[200, 200, 200, 200, 200, 200, 200, 404, 404, 200, 200]
--- response_body_like eval
['^system:sys \| user:1$',
 '\Ac1:o:5:alice zset (?:[1-9]\d{0,2}|[12]\d{3}|3000)\nc1:t:5:alice:e1:l list (?:[1-9]\d{0,2}|[12]\d{3}|3000)\nc1:t:5:alice:e1:m hash (?:[1-9]\d{0,2}|[12]\d{3}|3000)\z',
 'slept',
 '^system:sys \| user:2$',
 '\A(?:e1\ne2|e2\ne1)\z',
 'slept',
 ::page([::thread('e2', '2')]),
 'thread_not_found', ::err('thread_not_found'),
 '\Ae2\z',
 "^\\[\\{\"id\":\"$C1Test::Uuid\",\"role\":\"user\",\"content\":\"2\"\\}"]
--- timeout: 10



=== TEST 28: reading a thread renews the expiry of its keys
--- http_config
    c1_history_redis name=threads server=unix:$TEST_NGINX_REDIS_SOCK inactive=2s;
--- request eval
["POST /chat\n{\"prompt\": \"1\", \"threadId\": \"r1\"}",
 "GET /sleep?s=1.2",
 "GET /chat?threadId=r1",
 "GET /redis/layout?p=c1:t:*",
 "GET /sleep?s=1.2",
 "GET /api/threads/get/r1"]
--- error_code eval
[200, 200, 200, 200, 200, 200]
--- response_body_like eval
['^system:sys \| user:1$', 'slept', '"content":"1"',
 '\Ac1:t:5:alice:r1:l list (?:1[5-9]\d\d|2000)\nc1:t:5:alice:r1:m hash (?:1[5-9]\d\d|2000)\z',
 'slept', '"content":"1"']
--- timeout: 10



=== TEST 29: the turn's lock: c1:t:5:alice:ID:k taken with a 30 s expiry while the turn runs (a second turn gets 409), gone when it ends
--- request eval
["GET /lockcheck?t=lk", "GET /chat?threadId=lk"]
--- response_body_like eval
['\Aduring=(?:29\d{3}|30000) busy=409 status=200 after=0\n\z',
 '\A\[\{"id":"[^"]+","role":"user","content":"slow"\},\{"id":"[^"]+","role":"assistant","content":"<content thesys']
--- timeout: 10



=== TEST 30: a lock someone else holds (another node's turn): the turn, a rename and a delete get 409 and leave the other's lock alone; once it is gone the turn runs
--- request eval
[::turn('x', 'p1', 'r1', 'first'),
 ::rcli('SET', 'c1:t:5:alice:x:k', 'another-node', 'PX', 60000),
 ::turn('x', 'p2', 'r2', 'second'),
 "PATCH /api/threads/update/x\n{\"title\":\"Renamed\"}",
 "DELETE /api/threads/delete/x",
 ::rcli('GET', 'c1:t:5:alice:x:k'),
 ::rcli('DEL', 'c1:t:5:alice:x:k'),
 ::turn('x', 'p3', 'r3', 'third'),
 "GET /api/threads/get/x"]
--- error_code eval
[200, 200, 409, 409, 409, 200, 200, 200, 200]
--- response_body_like eval
['\Asystem:sys \| user:first\z', '\AOK\z',
 ::err('thread_busy'), ::err('thread_busy'), ::err('thread_busy'),
 '\Aanother-node\z', '\A1\z',
 '\Asystem:sys \| user:first \| assistant:system:sys \| user:first \| user:third\z',
 '\A\[\{"id":"p1",.*\{"id":"r3","role":"assistant"']



=== TEST 31: prefix= keeps the module's keys apart; db= selects the database
--- http_config
    c1_history_redis name=threads server=unix:$TEST_NGINX_REDIS_SOCK prefix=app7/ db=5;
--- request eval
["POST /chat\n{\"prompt\": \"hello\", \"threadId\": \"p\"}",
 ::rcli('DBSIZE'),
 ::rclis('-n', 5, 'KEYS', 'app7/t:*'),
 ::rcli('-n', 5, 'ZRANGE', 'app7/o:5:alice', 0, -1),
 "GET /api/threads/get"]
--- response_body_like eval
['\Asystem:sys \| user:hello\z', '\A0\z',
 '\Aapp7/t:5:alice:p:l\napp7/t:5:alice:p:m\z', '\Ap\z',
 ::page([::thread('p', 'hello')])]



=== TEST 32: nothing is logged at error for a healthy Redis
--- request eval
["POST /chat\n{\"prompt\": \"hello\", \"threadId\": \"h\"}",
 "GET /api/threads/get",
 "GET /chat?threadId=h"]
--- error_code eval
[200, 200, 200]
--- no_error_log
[error]
[alert]
[crit]



=== TEST 33: OpenUI turns through Redis ("stream": false): the thread becomes the request's messages and the answer (its list rewritten), titled from the first user message; "ephemeral" leaves no key
--- request eval
["POST /ui\n{\"threadId\":\"o1\",\"stream\":false,\"messages\":[{\"id\":\"u1\",\"role\":\"user\",\"content\":\"hi\"}]}",
 "GET /api/threads/get/o1",
 "POST /ui\n{\"threadId\":\"o1\",\"stream\":false,\"messages\":[{\"id\":\"u1\",\"role\":\"user\",\"content\":\"hi\"},{\"id\":\"a1\",\"role\":\"assistant\",\"content\":\"earlier\"},{\"id\":\"u2\",\"role\":\"user\",\"content\":\"more\"}]}",
 "GET /api/threads/get/o1",
 ::rcli('LLEN', 'c1:t:5:alice:o1:l'),
 "GET /api/threads/get",
 "POST /ui\n{\"threadId\":\"ephemeral\",\"stream\":false,\"messages\":[{\"id\":\"u1\",\"role\":\"user\",\"content\":\"hi\"}]}",
 ::rclis('KEYS', 'c1:t:*')]
--- error_code eval
[200, 200, 200, 200, 200, 200, 200, 200]
--- response_body_like eval
['\A(?=.*"object":"chat\.completion")\{.*"content":"system:sys \| user:hi"',
 '\A\[\{"id":"u1","role":"user","content":"hi"\},\{"id":"[^"]+","role":"assistant","content":"system:sys \| user:hi"\}\]\z',
 '\A\{.*"content":"system:sys \| user:hi \| assistant:earlier \| user:more"',
 '\A\[\{"id":"u1","role":"user","content":"hi"\},\{"id":"a1","role":"assistant","content":"earlier"\},\{"id":"u2","role":"user","content":"more"\},\{"id":"[^"]+","role":"assistant","content":"system:sys \| user:hi \| assistant:earlier \| user:more"\}\]\z',
 '\A4\z',
 ::page([::thread('o1', 'hi')]),
 '\A\{.*"content":"system:sys \| user:hi"',
 '\Ac1:t:5:alice:o1:l\nc1:t:5:alice:o1:m\z']



=== TEST 34: an OpenUI thread is trimmed to max_messages in Redis, the newest kept
--- http_config
    c1_history_redis name=threads server=unix:$TEST_NGINX_REDIS_SOCK max_messages=4;
--- request eval
["POST /ui\n{\"threadId\":\"o4\",\"stream\":false,\"messages\":[{\"id\":\"u1\",\"role\":\"user\",\"content\":\"1\"},{\"id\":\"a1\",\"role\":\"assistant\",\"content\":\"2\"},{\"id\":\"u2\",\"role\":\"user\",\"content\":\"3\"},{\"id\":\"a2\",\"role\":\"assistant\",\"content\":\"4\"},{\"id\":\"u3\",\"role\":\"user\",\"content\":\"5\"}]}",
 "GET /api/threads/get/o4",
 ::rcli('LLEN', 'c1:t:5:alice:o4:l')]
--- response_body_like eval
['\A\{.*"content":"system:sys \| user:1 \| assistant:2 \| user:3 \| assistant:4 \| user:5"',
 '\A\[\{"id":"u2","role":"user","content":"3"\},\{"id":"a2","role":"assistant","content":"4"\},\{"id":"u3","role":"user","content":"5"\},\{"id":"[^"]+","role":"assistant","content":"system:sys \| user:1 \| assistant:2 \| user:3 \| assistant:4 \| user:5"\}\]\z',
 '\A4\z']



=== TEST 35: a title from the first user message, kept in Redis: <content thesys="true"> unwrapped, entities decoded, whitespace collapsed; a later turn does not retitle
--- request eval
["POST /chat\n{\"prompt\": \"<content thesys=\\\"true\\\">  Show &quot;sales&quot;\\n  &amp; more </content>\", \"threadId\": \"ti\"}",
 "POST /chat\n{\"prompt\": \"second\", \"threadId\": \"ti\"}",
 ::rcli('HGET', 'c1:t:5:alice:ti:m', 'title'),
 "GET /api/threads/get"]
--- response_body_like eval
['\Asystem:sys \| user:<content', '\Asystem:sys \| user:<content.* \| user:second\z',
 ::exact('Show "sales" & more'),
 ::page([::thread('ti', 'Show \"sales\" & more')])]
