# Turns and the thread API (issue 14): C1Chat turns store prompt.id and
# responseId (made by the module when missing, never stored twice); a
# thread made by a turn takes its title from the first user message;
# OpenUI Chat turns ({"threadId", "messages"}): what C1 gets, what the
# thread becomes, "ephemeral"; eviction and expiry seen through the API.
# Created threads with turns, pagination, busy threads and a reload are in
# t/037-threads-clients.t.
#
# /t/c1 is a mock C1 that answers with a summary of what it got: its
# top-level keys (sorted), model, stream, the keys of the messages other
# than role and content, and the messages as role:content; streamed when
# the request asks for it, with the chunk id "chatcmpl-n" . (the number of
# messages it got).
#
# make test runs it again against Redis: C1_STORE=redis (t/lib/C1Store.pm).

use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use C1Test;
use C1Threads;

no_long_string();
no_shuffle();

our $Summary = <<'_EOC_';
    location = /t/c1 {
        content_by_lua_block {
            local cjson = require "cjson"
            ngx.req.read_body()
            local body = ngx.req.get_body_data()
            if not body then
                local f = io.open(ngx.req.get_body_file(), "rb")
                body = f:read("*a")
                f:close()
            end
            local req = cjson.decode(body)
            local keys, extra, msgs = {}, {}, {}
            for k in pairs(req) do keys[#keys + 1] = k end
            table.sort(keys)
            for _, m in ipairs(req.messages) do
                local c = m.content
                if type(c) ~= "string" then c = "[" .. type(c) .. "]" end
                msgs[#msgs + 1] = m.role .. ":" .. c
                for k in pairs(m) do
                    if k ~= "role" and k ~= "content" then
                        extra[#extra + 1] = k
                    end
                end
            end
            table.sort(extra)
            local s = "keys=" .. table.concat(keys, ",")
                .. " model=" .. tostring(req.model)
                .. " stream=" .. tostring(req.stream)
                .. " extra=" .. (#extra > 0 and table.concat(extra, ",") or "none")
                .. " msgs=" .. table.concat(msgs, " | ")
            local id = "chatcmpl-n" .. #req.messages
            if req.stream == true then
                ngx.header["Content-Type"] = "text/event-stream"
                local head = '{"id":"' .. id .. '","object":"chat.completion.chunk",'
                    .. '"created":1764000000,"model":"mock","choices":[{"index":0,'
                ngx.print("data: " .. head .. '"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n')
                ngx.print("data: " .. head .. '"delta":{"content":' .. cjson.encode(s) .. '},"finish_reason":null}]}\n\n')
                ngx.print("data: " .. head .. '"delta":{},"finish_reason":"stop"}]}\n\n')
                ngx.print("data: [DONE]\n\n")
            else
                ngx.header["Content-Type"] = "application/json"
                ngx.print('{"id":"' .. id .. '","object":"chat.completion",'
                    .. '"created":1764000000,"model":"mock","choices":[{"index":0,'
                    .. '"message":{"role":"assistant","content":' .. cjson.encode(s)
                    .. '},"finish_reason":"stop"}]}')
            end
        }
    }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;

    if (!defined $block->http_config) {
        $block->set_value("http_config",
            "c1_history_zone zone=threads:1m max_messages=20 inactive=1h;\n");
    }

    if (!defined $block->config) {
        $block->set_value("config", <<"_EOC_" . $Summary);
    c1_model m;
    c1_system_prompt "sys";
    location = /chat { c1_history threads; c1_pass /_c1; }
    location = /ui { c1_history threads; c1_pass /_c1_summary; }
    location /api/threads/ { c1_threads threads; }
    location = /_c1 {
        internal;
        proxy_http_version 1.1;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/mock/echo-messages;
    }
    location = /_c1_summary {
        internal;
        proxy_http_version 1.1;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/t/c1;
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
    return "POST /chat\n{\"prompt\":{"
        . (defined $p ? "\"id\":\"$p\"," : '')
        . "\"role\":\"user\",\"content\":\"$content\"},\"threadId\":\"$thread\""
        . (defined $r ? ",\"responseId\":\"$r\"" : '') . "}";
};
$main::Turn = $Turn;

# what a client gets from /t/c1 streamed: a pattern for the delta's content
sub streamed {
    my $s = shift;
    return '\Adata: \{"id":"chatcmpl-n\d+","object":"chat\.completion\.chunk".*'
        . '"delta":\{"content":"' . quotemeta($s) . '"\}.*\ndata: \[DONE\]\n\n\z';
}
$main::streamed = \&streamed;

# a get/ID answer: [id, role, content] each; an id given as a qr// is a
# pattern (an answer's id: the stream's chunk id, or one the module made)
sub msgs {
    return '\A\[' . join(',', map {
        my ($id, $role, $content) = @$_;
        '\{"id":"' . (ref $id ? $id : quotemeta $id) . '","role":"' . $role
            . '","content":"' . quotemeta($content) . '"\}' } @_) . '\]\z';
}
$main::msgs = \&msgs;

sub answer_id {
    my $n = shift;
    return qr/(?:chatcmpl-n$n|$C1Threads::Uuid)/;
}
$main::answer_id = \&answer_id;

run_tests();

__DATA__

=== TEST 1: C1Chat turns: the user message kept under prompt.id, the answer under responseId, in order; the chat location's GET has the ids too
--- request eval
[$::Turn->('t1', 'p1', 'r1', 'one'),
 $::Turn->('t1', 'p2', 'r2', 'two'),
 "GET /api/threads/get/t1",
 "GET /chat?threadId=t1"]
--- response_body_like eval
['\Asystem:sys \| user:one\z',
 '\Asystem:sys \| user:one \| assistant:system:sys \| user:one \| user:two\z',
 (C1Threads::exact('[{"id":"p1","role":"user","content":"one"},{"id":"r1","role":"assistant","content":"system:sys | user:one"},{"id":"p2","role":"user","content":"two"},{"id":"r2","role":"assistant","content":"system:sys | user:one | assistant:system:sys | user:one | user:two"}]')) x 2]



=== TEST 2: ids the turn does not give are made by the module: UUIDs, all different
--- request eval
["POST /chat\n{\"prompt\":\"one\",\"threadId\":\"t1\"}",
 $::Turn->('t1', undef, undef, 'two'),
 $::Turn->('t1', 'p3', undef, 'three'),
 $::Turn->('t1', undef, 'r4', 'four'),
 "GET /api/threads/get/t1"]
--- response_body_like eval
['\Asystem:sys \| user:one\z', '\Asystem:sys \| user:one \|', '\Asystem:sys \| user:one \|', '\Asystem:sys \| user:one \|',
 '\A(?!.*"id":"([^"]+)".*"id":"\1")\[\{"id":"' . $C1Threads::Uuid . '","role":"user","content":"one"\},'
 . '\{"id":"' . $C1Threads::Uuid . '","role":"assistant","content":"[^"]*"\},'
 . '\{"id":"' . $C1Threads::Uuid . '","role":"user","content":"two"\},'
 . '\{"id":"' . $C1Threads::Uuid . '","role":"assistant","content":"[^"]*"\},'
 . '\{"id":"p3","role":"user","content":"three"\},'
 . '\{"id":"' . $C1Threads::Uuid . '","role":"assistant","content":"[^"]*"\},'
 . '\{"id":"' . $C1Threads::Uuid . '","role":"user","content":"four"\},'
 . '\{"id":"r4","role":"assistant","content":"[^"]*"\}\]\z']



=== TEST 3: a message id already in the thread is not stored again: a repeated prompt.id keeps one user message, a repeated responseId one answer
--- request eval
[$::Turn->('t1', 'p1', 'r1', 'one'),
 $::Turn->('t1', 'p1', 'r2', 'one'),
 $::Turn->('t1', 'p3', 'r1', 'three'),
 "GET /api/threads/get/t1"]
--- response_body_like eval
['\Asystem:sys \| user:one\z', '\Asystem:sys \| user:one \|', '\Asystem:sys \| user:one \|',
 '\A\[\{"id":"p1","role":"user","content":"one"\},'
 . '\{"id":"r1","role":"assistant","content":"system:sys \| user:one"\},'
 . '\{"id":"r2","role":"assistant","content":"[^"]*"\},'
 . '\{"id":"p3","role":"user","content":"three"\}\]\z']



=== TEST 4: a thread made by a turn is titled from its first user message: <content thesys="true"> unwrapped, entities decoded, whitespace collapsed, cut at 80 code points; later turns do not retitle
--- request eval
[$::Turn->('w', 'p1', 'r1', '<content thesys=\"true\">Show &quot;sales&quot; &amp; costs</content>'),
 $::Turn->('w', 'p2', 'r2', 'something else'),
 $::Turn->('e', 'p1', 'r1', '&lt;b&gt; &#39;x&#39; &apos;y&apos; &#233;&#xE9;&#xe9; &unknown; &amp;lt; &#; a&nbsp;b'),
 $::Turn->('s', 'p1', 'r1', '  many\\t\\tspaces\\r\\n\\nand&nbsp;&nbsp;nbsp raw' . "\xc2\xa0\xc2\xa0" . 'too  '),
 $::Turn->('a', 'p1', 'r1', 'abcdefghij' x 10),
 $::Turn->('m', 'p1', 'r1', "\xc3\xa9" x 100),
 $::Turn->('x', 'p1', 'r1', 'a' . ("\xf0\x9f\x98\x80" x 100)),
 $::Turn->('k', 'p1', 'r1', ('x' x 79) . "\xe2\x9c\x93" . 'yy'),
 $::Turn->('c', 'p1', 'r1', '&amp;' x 100),
 $::Turn->('n', 'p1', 'r1', '<content thesys=\"true\">&nbsp; \\n</content>'),
 "GET /api/threads/get?limit=200"]
--- response_body_like eval
['\Asystem:sys \| user:<content', '\Asystem:sys \|', ('\Asystem:sys \| user:') x 8,
 C1Threads::any_order(
    C1Threads::thread('w', 'Show \"sales\" & costs'),
    C1Threads::thread('e', "<b> 'x' 'y' \xc3\xa9\xc3\xa9\xc3\xa9 &unknown; &lt; &#; a b"),
    C1Threads::thread('s', 'many spaces and nbsp raw too'),
    C1Threads::thread('a', substr('abcdefghij' x 10, 0, 80)),
    C1Threads::thread('m', "\xc3\xa9" x 80),
    C1Threads::thread('x', 'a' . ("\xf0\x9f\x98\x80" x 79)),
    C1Threads::thread('k', ('x' x 79) . "\xe2\x9c\x93"),
    C1Threads::thread('c', '&' x 80),
    C1Threads::thread('n', 'New thread'))]



=== TEST 5: an OpenUI turn: C1 gets the model, the system prompt, then the request's messages without ids, streamed; nothing else of the request; the thread becomes the request's messages and the answer
--- request eval
["POST /ui\n{\"threadId\":\"o1\",\"runId\":\"run-1\",\"messages\":[{\"id\":\"u1\",\"role\":\"user\",\"content\":\"hi\"}],\"tools\":[],\"context\":[],\"forwardedProps\":{},\"state\":{}}",
 "GET /api/threads/get/o1",
 "GET /api/threads/get",
 "POST /ui\n{\"threadId\":\"o1\",\"runId\":\"run-2\",\"messages\":[{\"id\":\"u1\",\"role\":\"user\",\"content\":\"hi\"},{\"id\":\"chatcmpl-n2\",\"role\":\"assistant\",\"content\":\"earlier\"},{\"id\":\"u2\",\"role\":\"user\",\"content\":\"more\"}],\"tools\":[],\"context\":[],\"forwardedProps\":{},\"state\":{}}",
 "GET /api/threads/get/o1",
 "GET /api/threads/get"]
--- response_headers eval
["Content-Type: text/event-stream", "", "", "Content-Type: text/event-stream", "", ""]
--- response_body_like eval
[$::streamed->('keys=messages,model,stream model=m stream=true extra=none msgs=system:sys | user:hi'),
 $::msgs->(['u1', 'user', 'hi'], [$::answer_id->(2), 'assistant', 'keys=messages,model,stream model=m stream=true extra=none msgs=system:sys | user:hi']),
 C1Threads::page([C1Threads::thread('o1', 'hi')]),
 $::streamed->('keys=messages,model,stream model=m stream=true extra=none msgs=system:sys | user:hi | assistant:earlier | user:more'),
 $::msgs->(['u1', 'user', 'hi'], ['chatcmpl-n2', 'assistant', 'earlier'], ['u2', 'user', 'more'], [$::answer_id->(4), 'assistant', 'keys=messages,model,stream model=m stream=true extra=none msgs=system:sys | user:hi | assistant:earlier | user:more']),
 C1Threads::page([C1Threads::thread('o1', 'hi')])]



=== TEST 6: an OpenUI turn replaces what a thread had; C1 gets every message of the request (a system one, a non-string content, tools that are not empty); only user and assistant messages are kept, with string contents (an array content: left out, or kept as its text)
--- request eval
[$::Turn->('o2', 'p1', 'r1', 'old'),
 "POST /ui\n{\"threadId\":\"o2\",\"messages\":[{\"id\":\"s\",\"role\":\"system\",\"content\":\"client sys\"},{\"id\":\"u1\",\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"arr\"}]},{\"id\":\"u2\",\"role\":\"user\",\"content\":\"text\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{}}}]}",
 "GET /api/threads/get/o2",
 "GET /api/threads/get"]
--- response_body_like eval
['\Asystem:sys \| user:old\z',
 $::streamed->('keys=messages,model,stream,tools model=m stream=true extra=none msgs=system:sys | system:client sys | user:[table] | user:text'),
 '(?:' . $::msgs->(['u2', 'user', 'text'], [$::answer_id->(4), 'assistant', 'keys=messages,model,stream,tools model=m stream=true extra=none msgs=system:sys | system:client sys | user:[table] | user:text'])
 . ')|(?:' . $::msgs->(['u1', 'user', 'arr'], ['u2', 'user', 'text'], [$::answer_id->(4), 'assistant', 'keys=messages,model,stream,tools model=m stream=true extra=none msgs=system:sys | system:client sys | user:[table] | user:text']) . ')',
 C1Threads::page([C1Threads::thread('o2', 'old')])]



=== TEST 7: an OpenUI turn with "stream": false: a chat.completion, stored the same way
--- request eval
["POST /ui\n{\"threadId\":\"o3\",\"stream\":false,\"messages\":[{\"id\":\"u1\",\"role\":\"user\",\"content\":\"hi\"}]}",
 "GET /api/threads/get/o3"]
--- response_headers eval
["Content-Type: application/json", ""]
--- response_body_like eval
['\A\{"id":"chatcmpl-n2","object":"chat\.completion",.*"content":"keys=messages,model(?:,stream)? model=m stream=(?:false|nil) extra=none msgs=system:sys \| user:hi"',
 '\A\[\{"id":"u1","role":"user","content":"hi"\},\{"id":"(?:chatcmpl-n2|' . $C1Threads::Uuid . ')","role":"assistant","content":"keys=messages,model(?:,stream)? model=m stream=(?:false|nil) extra=none msgs=system:sys \| user:hi"\}\]\z']



=== TEST 8: an OpenUI thread is trimmed to max_messages, the newest kept
--- http_config
    c1_history_zone zone=threads:1m max_messages=4;
--- request eval
["POST /ui\n{\"threadId\":\"o4\",\"messages\":[{\"id\":\"u1\",\"role\":\"user\",\"content\":\"1\"},{\"id\":\"a1\",\"role\":\"assistant\",\"content\":\"2\"},{\"id\":\"u2\",\"role\":\"user\",\"content\":\"3\"},{\"id\":\"a2\",\"role\":\"assistant\",\"content\":\"4\"},{\"id\":\"u3\",\"role\":\"user\",\"content\":\"5\"}]}",
 "GET /api/threads/get/o4"]
--- response_body_like eval
[$::streamed->('keys=messages,model,stream model=m stream=true extra=none msgs=system:sys | user:1 | assistant:2 | user:3 | assistant:4 | user:5'),
 $::msgs->(['u2', 'user', '3'], ['a2', 'assistant', '4'], ['u3', 'user', '5'], [$::answer_id->(6), 'assistant', 'keys=messages,model,stream model=m stream=true extra=none msgs=system:sys | user:1 | assistant:2 | user:3 | assistant:4 | user:5'])]



=== TEST 9: "threadId": "ephemeral" is never stored
--- request eval
["POST /ui\n{\"threadId\":\"ephemeral\",\"messages\":[{\"id\":\"u1\",\"role\":\"user\",\"content\":\"hi\"}]}",
 "POST /ui\n{\"threadId\":\"ephemeral\",\"messages\":[{\"id\":\"u2\",\"role\":\"user\",\"content\":\"again\"}]}",
 "GET /api/threads/get",
 "GET /api/threads/get/ephemeral",
 "GET /ui?threadId=ephemeral"]
--- error_code eval
[200, 200, 200, 404, 404]
--- response_body_like eval
[$::streamed->('keys=messages,model,stream model=m stream=true extra=none msgs=system:sys | user:hi'),
 $::streamed->('keys=messages,model,stream model=m stream=true extra=none msgs=system:sys | user:again'),
 C1Threads::exact('{"threads":[]}'),
 C1Threads::err('thread_not_found'),
 C1Threads::err('thread_not_found')]



=== TEST 10: a full store evicts the least recently used threads: gone from get/ID and from the list
--- zone_only: a zone's size and its eviction (Redis has neither)
--- http_config
    c1_history_zone zone=threads:256k;
--- request eval
[(map { "POST /chat\n{\"prompt\":{\"id\":\"p$_\",\"role\":\"user\",\"content\":\"" . ("p$_ " x 3000) . "\"},\"threadId\":\"z$_\"}" } 1 .. 12),
 "GET /api/threads/get/z1",
 "GET /api/threads/get/z12",
 "GET /api/threads/get?limit=200"]
--- error_code eval
[(200) x 12, 404, 200, 200]
--- response_body_like eval
[(map { "^system:sys \\| user:p$_ " } 1 .. 12),
 C1Threads::err('thread_not_found'),
 '\A\[\{"id":"p12","role":"user","content":"p12 ',
 '\A(?!.*"id":"z1")(?=.*"id":"z12")\{"threads":\[\{"id":"z12","title":"p12 p12 ']



=== TEST 11: a thread expires after inactive, not before: there 0.7 s after its turn (a read is a use: inactive counts again from it), then gone from the list and from get/ID
--- http_config
    c1_history_zone zone=threads:1m inactive=1s;
--- request eval
[$::Turn->('e', 'p1', 'r1', 'hello'),
 "GET /api/threads/get",
 "GET /api/threads/get/e",
 "GET /sleep?s=0.7",
 "GET /api/threads/get/e",
 "GET /sleep?s=2.5",
 "GET /api/threads/get",
 "GET /api/threads/get/e"]
--- error_code eval
[200, 200, 200, 200, 200, 200, 200, 404]
--- response_body_like eval
['\Asystem:sys \| user:hello\z',
 C1Threads::page([C1Threads::thread('e', 'hello')]),
 '\A\[\{"id":"p1","role":"user","content":"hello"\}',
 'slept',
 '\A\[\{"id":"p1","role":"user","content":"hello"\}',
 'slept',
 C1Threads::exact('{"threads":[]}'),
 C1Threads::err('thread_not_found')]
--- timeout: 8



=== TEST 12: an OpenUI turn's AG-UI message fields in OpenAI's words: an empty toolCalls goes, toolCalls and toolCallId become tool_calls and tool_call_id
--- request eval
["POST /ui\n{\"threadId\":\"ag\",\"messages\":[{\"id\":\"u1\",\"role\":\"user\",\"content\":\"hi\"},{\"id\":\"a1\",\"role\":\"assistant\",\"content\":\"there\",\"toolCalls\":[]},{\"id\":\"u2\",\"role\":\"user\",\"content\":\"more\"}]}",
 "POST /ui\n{\"threadId\":\"ag2\",\"messages\":[{\"id\":\"u1\",\"role\":\"user\",\"content\":\"weather?\"},{\"id\":\"a1\",\"role\":\"assistant\",\"content\":\"\",\"toolCalls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"w\",\"arguments\":\"{}\"}}]},{\"id\":\"t1\",\"role\":\"tool\",\"content\":\"sunny\",\"toolCallId\":\"call_1\"}]}"]
--- response_body_like eval
[$::streamed->('keys=messages,model,stream model=m stream=true extra=none msgs=system:sys | user:hi | assistant:there | user:more'),
 $::streamed->('keys=messages,model,stream model=m stream=true extra=tool_call_id,tool_calls msgs=system:sys | user:weather? | assistant: | tool:sunny')]
