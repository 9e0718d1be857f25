# Tools as nginx locations (issue 18, /work/notes/tools-spec.md): the
# directives c1_tool, c1_tool_rounds and c1_tool_max_size (nginx -t errors,
# inheritance); the tools C1 gets in prompt mode and not in the OpenAI
# shape (the client's own pass through); the loop: one call (whole and
# streamed), parallel calls, chained rounds, rounds spent; failing tools
# (500, timeout, too large, unknown, bad arguments, not text) and what the
# log says (never the arguments); think items; the client gone during a
# tool call; thread turns; the variables and the metrics.
#
# The mock C1 is C1Tools' /tc1 (t/lib/C1Tools.pm): ?p=t:echo,c asks for
# the echo tool on the turn's first call and answers "results: ID=RESULT |
# ..." (every tool message it got) on the next; GET /calls says what it got
# (a line a call, or one field of a call's request as canonical JSON), and
# with log=1 the access log of the c1_pass locations (logs/c1.log:
# $c1_tool_calls, $c1_tool_rounds, the token sums, $request_time). The tool
# locations are C1Tools' too: /tools/planets (a `return`), /tools/echo
# (what the location saw: method, Content-Type, the client's X-User, args,
# body), /tools/slow (0.5 s), /tools/fail (500), /tools/big (1025 bytes),
# /tools/fit (1024), /tools/binary (not UTF-8).
#
# The error log is at info: the arguments must never show there (the
# argument sets @s, @bad and @arr hold the secret sk-SECRET-4242).

use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use C1Test;
use C1Tools;
use JSON::PP ();

no_long_string();
no_shuffle();
log_level('info');

our $Mock = $C1Tools::Locations . $C1Tools::Tools;

our $Schemas = <<'_EOC_';
>>> planets.json
{"properties": {"city": {"type": "string"}}, "type": "object"}
>>> any.json
{"type": "object"}
_EOC_

our $DefaultTools = <<'_EOC_';
    c1_tool name=planets uri=/tools/planets schema=$TEST_NGINX_SERVER_ROOT/html/planets.json "description=List the planets";
    c1_tool name=moons uri=/tools/moons schema=$TEST_NGINX_SERVER_ROOT/html/any.json;
    c1_tool name=echo uri=/tools/echo schema=$TEST_NGINX_SERVER_ROOT/html/any.json;
    c1_tool name=slow uri=/tools/slow schema=$TEST_NGINX_SERVER_ROOT/html/any.json;
    c1_tool name=fail uri=/tools/fail schema=$TEST_NGINX_SERVER_ROOT/html/any.json;
    c1_tool name=big uri=/tools/big schema=$TEST_NGINX_SERVER_ROOT/html/any.json;
    c1_tool name=fit uri=/tools/fit schema=$TEST_NGINX_SERVER_ROOT/html/any.json;
    c1_tool name=binary uri=/tools/binary schema=$TEST_NGINX_SERVER_ROOT/html/any.json;
_EOC_
our $All = 'planets,moons,echo,slow,fail,big,fit,binary';
$main::All = $All;

add_block_preprocessor(sub {
    my $block = shift;

    my $http = $block->http_config // '';
    $block->set_value("http_config", <<"_EOC_");
    log_format c1 '\$request_uri \$status calls=\$c1_tool_calls rounds=\$c1_tool_rounds '
                  'pt=\$c1_prompt_tokens tt=\$c1_total_tokens rt=\$request_time';
    lua_shared_dict calls 1m;
$http
_EOC_

    $block->set_value("user_files", ($block->user_files // '') . $Schemas);

    if (defined $block->config) {
        $block->set_value("config", $block->config . $Mock);
    } else {
        my $tools = ($block->tools // $DefaultTools) . ($block->more_tools // '');
        my $c1 = $block->c1 // '';
        my $plan = $block->plan // 'c';
        my $plan2 = $block->plan2 // 'c';
        my $extra = $block->extra // '';
        $block->set_value("config", <<"_EOC_" . $Mock);
    c1_model m;
    access_log logs/c1.log c1;
$tools
    $c1
    location = /chat { c1_pass /_c1; }
    location = /s/chat { c1_stream on; c1_pass /_c1; }
    location = /chat2 { c1_pass /_c1b; }
    location = /s/chat2 { c1_stream on; c1_pass /_c1b; }
    location = /v1/chat/completions { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_read_timeout 3s;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/tc1?p=$plan;
    }
    location = /_c1b {
        internal;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_read_timeout 3s;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/tc1?p=$plan2;
    }
$extra
_EOC_
    }

    if (!defined $block->more_headers) {
        $block->set_value("more_headers", "Content-Type: application/json\nX-User: alice\n");
    }
});

# canonical JSON, as /calls?n=K&k=FIELD prints it
my $json = JSON::PP->new->canonical->utf8->allow_nonref;
sub J { $json->encode($_[0]) }
sub user_m { +{ role => 'user', content => $_[0] } }
sub asst_m { +{ role => 'assistant', content => $_[0] } }
# the assistant's tool-call message: [id, name, arguments] a call
sub tc_m {
    +{ role => 'assistant', content => undef, tool_calls => [ map {
        +{ id => $_->[0], type => 'function',
           function => { name => $_->[1], arguments => $_->[2] } } } @_ ] }
}
sub tool_m { +{ role => 'tool', tool_call_id => $_[0], content => $_[1] } }
$main::J = \&J;

our %A = %C1Tools::Args;
our $P = '{"planets":["Mercury","Venus"]}';
our $Moons = '{"moons":["Phobos","Deimos"]}';
our $Secret = $C1Tools::Secret;
$main::P = $P;
$main::Moons = $Moons;

# what /tools/echo answers for a body
sub echo_of { "m=POST ct=application/json u= a= body=" . shift }

sub think {
    my ($title, $detail) = @_;
    return '<thinkitem ephemeral="true"><thinkitemtitle>' . $title
         . '</thinkitemtitle><thinkitemcontent>' . $detail
         . '</thinkitemcontent></thinkitem>';
}

# exactly this text, as a pattern
sub ex { '\A' . quotemeta(shift) . '\z' }

# a /calls line
sub call_line {
    my ($n, $round, $stream, $tools, $msgs, $choice) = @_;
    return "$n round=$round stream=$stream tools=$tools tool_choice="
         . ($choice // '-') . " msgs=$msgs\n";
}

# a JSON string as the mock writes one (no "/" escaped)
sub jstr {
    my $s = shift;
    $s =~ s/(["\\])/\\$1/g;
    $s =~ s/\n/\\n/g;
    return "\"$s\"";
}

# the mock's stream of tool calls ([id, name, arguments] each), exactly
sub tc_stream {
    my $ev = sub { "data: $_[0]\n\n" };
    my $chunk = sub {
        my ($delta, $finish) = @_;
        '{"choices":[{"index":0,"delta":' . $delta . ',"finish_reason":'
            . (defined $finish ? "\"$finish\"" : 'null') . '}]}';
    };
    my $s = $ev->($chunk->('{"role":"assistant","content":null}'));
    my $i = 0;
    for my $c (@_) {
        my ($id, $name, $args) = @$c;
        $s .= $ev->($chunk->('{"tool_calls":[{"index":' . $i
            . (defined $id ? ',"id":' . jstr($id) : '')
            . ',"type":"function","function":{"name":' . jstr($name)
            . ',"arguments":""}}]}'));
        for my $p ($args =~ /(.{1,3})/gs) {
            $s .= $ev->($chunk->('{"tool_calls":[{"index":' . $i
                . ',"function":{"arguments":' . jstr($p) . '}}]}'));
        }
        $i++;
    }
    $s .= $ev->($chunk->('{}', 'tool_calls'));
    return $s . $ev->('[DONE]');
}

# the mock's chat.completion of tool calls, exactly
sub tc_completion {
    return '{"id":"chatcmpl-t","object":"chat.completion","created":1764000000,'
        . '"model":"m","choices":[{"index":0,"message":{"role":"assistant",'
        . '"content":null,"tool_calls":[' . join(',', map {
            my ($id, $name, $args) = @$_;
            '{' . (defined $id ? '"id":' . jstr($id) . ',' : '')
            . '"type":"function","function":{"name":' . jstr($name)
            . ',"arguments":' . jstr($args) . '}}' } @_)
        . ']},"finish_reason":"tool_calls"}]}';
}

# a thread's messages as GET lists them: [id, role, content] each
sub thread_json {
    return '[' . join(',', map {
        '{"id":' . jstr($_->[0]) . ',"role":"' . $_->[1] . '","content":'
            . jstr($_->[2]) . '}' } @_) . ']';
}

# the metrics page has these lines (and others)
sub metrics_like {
    my $re = '\A';
    for my $l (@_) { $re .= '(?=[\s\S]*^' . $l . '$)' }
    return "(?m)$re";
}
sub tool_metric {
    my ($tool, $outcome, $n) = @_;
    return quotemeta("c1_tool_calls_total{tool=\"$tool\",outcome=\"$outcome\"} $n");
}
our @Outcomes = qw(ok error timeout too_large unknown bad_arguments unreachable not_text);
# every outcome of these tools: 0, but for those given as TOOL/OUTCOME => N
sub tool_metrics {
    my ($tools, %n) = @_;
    return map { my $t = $_; map { tool_metric($t, $_, $n{"$t/$_"} // 0) } @Outcomes } @$tools;
}

run_tests();

__DATA__

=== TEST 1: nginx -t: a name with a dot
--- tools
    c1_tool name=a.b uri=/tools/planets schema=$TEST_NGINX_SERVER_ROOT/html/any.json;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*invalid tool name "a\.b"/



=== TEST 2: nginx -t: a name of 65 characters
--- tools eval
"    c1_tool name=" . ("a" x 65) . " uri=/tools/planets schema=\$TEST_NGINX_SERVER_ROOT/html/any.json;\n"
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*invalid tool name "a{65}"/



=== TEST 3: nginx -t: an empty name
--- tools
    c1_tool name= uri=/tools/planets schema=$TEST_NGINX_SERVER_ROOT/html/any.json;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*invalid tool name ""/



=== TEST 4: nginx -t: a name with a space (quoted)
--- tools
    c1_tool "name=a b" uri=/tools/planets schema=$TEST_NGINX_SERVER_ROOT/html/any.json;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*invalid tool name "a b"/



=== TEST 5: 64 characters of a-z A-Z 0-9 _ - are a name; the tool is on the metrics page
--- tools eval
"    c1_tool name=" . substr("aZ09_-" x 11, 0, 64) . " uri=/tools/planets schema=\$TEST_NGINX_SERVER_ROOT/html/any.json;\n"
--- request
GET /metrics
--- response_body_like eval
main::metrics_like(main::tool_metric(substr("aZ09_-" x 11, 0, 64), "ok", 0))



=== TEST 6: nginx -t: two tools with one name at one level
--- tools
    c1_tool name=planets uri=/tools/planets schema=$TEST_NGINX_SERVER_ROOT/html/any.json;
    c1_tool name=moons uri=/tools/moons schema=$TEST_NGINX_SERVER_ROOT/html/any.json;
    c1_tool name=planets uri=/tools/moons schema=$TEST_NGINX_SERVER_ROOT/html/any.json;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*duplicate c1_tool "planets"/



=== TEST 7: nginx -t: a uri not starting with /
--- tools
    c1_tool name=planets uri=tools/planets schema=$TEST_NGINX_SERVER_ROOT/html/any.json;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*c1_tool "planets": uri must be a location's URI, starting with "\/"/



=== TEST 8: nginx -t: no name
--- tools
    c1_tool uri=/tools/planets schema=$TEST_NGINX_SERVER_ROOT/html/any.json;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*"c1_tool" must have "name" parameter/



=== TEST 9: nginx -t: no uri
--- tools
    c1_tool name=planets schema=$TEST_NGINX_SERVER_ROOT/html/any.json;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*"c1_tool" must have "uri" parameter/



=== TEST 10: nginx -t: no schema
--- tools
    c1_tool name=planets uri=/tools/planets;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*"c1_tool" must have "schema" parameter/



=== TEST 11: nginx -t: a schema file that is not there
--- tools
    c1_tool name=planets uri=/tools/planets schema=$TEST_NGINX_SERVER_ROOT/html/nope.json;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*c1_tool "planets": cannot read schema "(?:[^"]*\/)?html\/nope\.json"/



=== TEST 12: nginx -t: a schema that is a JSON array
--- user_files
>>> arr.json
[{"type": "object"}]
--- tools
    c1_tool name=planets uri=/tools/planets schema=$TEST_NGINX_SERVER_ROOT/html/arr.json;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*c1_tool "planets": schema "(?:[^"]*\/)?html\/arr\.json" is not a JSON object/



=== TEST 13: nginx -t: a schema that is not JSON
--- user_files
>>> bad.json
{"type": "object"
--- tools
    c1_tool name=planets uri=/tools/planets schema=$TEST_NGINX_SERVER_ROOT/html/bad.json;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*c1_tool "planets": schema "(?:[^"]*\/)?html\/bad\.json" is not a JSON object/



=== TEST 14: nginx -t: an empty schema file
--- user_files
>>> empty.json
--- tools
    c1_tool name=planets uri=/tools/planets schema=$TEST_NGINX_SERVER_ROOT/html/empty.json;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*c1_tool "planets": schema "(?:[^"]*\/)?html\/empty\.json" is not a JSON object/



=== TEST 15: nginx -t: timeout=abc
--- tools
    c1_tool name=planets uri=/tools/planets schema=$TEST_NGINX_SERVER_ROOT/html/any.json timeout=abc;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*invalid timeout "(?:timeout=)?abc"/



=== TEST 16: nginx -t: an unknown parameter
--- tools
    c1_tool name=planets uri=/tools/planets schema=$TEST_NGINX_SERVER_ROOT/html/any.json foo=1;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*invalid parameter "foo=1"/



=== TEST 17: nginx -t: c1_tool_rounds 0
--- c1
c1_tool_rounds 0;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*value must be between 1 and 16/



=== TEST 18: nginx -t: c1_tool_rounds 17
--- c1
c1_tool_rounds 17;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*value must be between 1 and 16/



=== TEST 19: c1_tool_rounds 1 and 16 are taken (server, location); c1_tool_max_size 1k (http), timeout=1500ms
--- http_config
    c1_tool_max_size 1k;
--- c1
c1_tool_rounds 16;
--- more_tools
    c1_tool name=t1 uri=/tools/planets schema=$TEST_NGINX_SERVER_ROOT/html/any.json timeout=1500ms;
--- extra
    location = /one/chat { c1_tool_rounds 1; c1_pass /_c1; }
--- request
GET /metrics
--- response_body_like eval
main::metrics_like(main::tool_metric("t1", "ok", 0))



=== TEST 20: nginx -t: c1_tool_max_size abc
--- c1
c1_tool_max_size abc;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*"c1_tool_max_size" directive invalid value/



=== TEST 21: nginx -t: 33 tools at one level are too many
--- tools eval
CORE::join '', map { "    c1_tool name=t$_ uri=/tools/planets schema=\$TEST_NGINX_SERVER_ROOT/html/any.json;\n" } 1 .. 33
--- must_die
--- error_log eval
qr/\[emerg\] /



=== TEST 22: 32 tools at one level are fine: all of them reach C1, in order
--- tools eval
CORE::join '', map { "    c1_tool name=t$_ uri=/tools/planets schema=\$TEST_NGINX_SERVER_ROOT/html/any.json;\n" } 1 .. 32
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}", "GET /calls"]
--- response_body eval
["results: none",
 "calls=1\n" . main::call_line(1, 0, 'nil', CORE::join(',', map { "t$_" } 1 .. 32), 'user') . "echo=0\n"]



=== TEST 23: a JSON prompt: C1 gets the tools (configuration order, "description" only when configured, "parameters" the schema) and nothing else changes
--- tools
    c1_tool name=planets uri=/tools/planets schema=$TEST_NGINX_SERVER_ROOT/html/planets.json "description=List the planets";
    c1_tool name=echo uri=/tools/echo schema=$TEST_NGINX_SERVER_ROOT/html/any.json "title=Echoing";
    c1_tool name=moons uri=/tools/moons schema=$TEST_NGINX_SERVER_ROOT/html/moons.json "description=Moons of \"a\" planet" timeout=5s;
--- user_files
>>> moons.json
{"properties": {"planet": {"enum": ["Mars", "Jupiter"], "type": "string"}, "n": {"maximum": 10, "minimum": 1.5, "type": "integer"}}, "required": ["planet"], "type": "object", "additionalProperties": false}
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}", "GET /calls?n=1&k=tools", "GET /calls?n=1&k=keys", "GET /calls?n=1&k=messages", "GET /calls"]
--- response_body eval
["results: none",
 main::J([
   { type => "function", function => { name => "planets", description => "List the planets",
       parameters => { type => "object", properties => { city => { type => "string" } } } } },
   { type => "function", function => { name => "echo", parameters => { type => "object" } } },
   { type => "function", function => { name => "moons", description => 'Moons of "a" planet',
       parameters => { type => "object", additionalProperties => JSON::PP::false, required => ["planet"],
         properties => { planet => { enum => ["Mars", "Jupiter"], type => "string" },
                         n => { maximum => 10, minimum => 1.5, type => "integer" } } } } }]),
 "messages,model,tools",
 main::J([main::user_m("x")]),
 "calls=1\n" . main::call_line(1, 0, 'nil', 'planets,echo,moons', 'user') . "echo=0\n"]



=== TEST 24: a text/plain prompt and a streamed prompt carry the tools too
--- more_headers
Content-Type: text/plain
--- pipelined_requests eval
["POST /chat\nx", "POST /s/chat\ny", "GET /calls", "GET /calls?n=2&k=keys"]
--- response_body eval
["results: none", "results: none",
 "calls=2\n" . main::call_line(1, 0, 'nil', $::All, 'user') . main::call_line(2, 0, 'true', $::All, 'user') . "echo=0\n",
 "messages,model,stream,tools"]



=== TEST 25: inheritance: tools at http level reach a location with none; a location's own set replaces them (a name taken again is its own tool)
--- http_config
    c1_tool name=planets uri=/tools/planets schema=$TEST_NGINX_SERVER_ROOT/html/planets.json;
--- config
    c1_model m;
    location = /chat { c1_pass /_c1; }
    location = /chat2 {
        c1_tool name=moons uri=/tools/moons schema=$TEST_NGINX_SERVER_ROOT/html/any.json;
        c1_tool name=planets uri=/tools/echo schema=$TEST_NGINX_SERVER_ROOT/html/any.json;
        c1_pass /_c1;
    }
    location = /_c1 {
        internal;
        proxy_http_version 1.1;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/tc1?p=t:planets,c;
    }
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}", "POST /chat2\n{\"prompt\": \"x\"}", "GET /calls"]
--- response_body eval
["results: call_0_0=$::P",
 "results: call_0_0=" . main::echo_of($::A{a}),
 "calls=4\n" . main::call_line(1, 0, 'nil', 'planets', 'user')
 . main::call_line(2, 1, 'nil', 'planets', 'user,assistant+tc,tool')
 . main::call_line(3, 0, 'nil', 'moons,planets', 'user')
 . main::call_line(4, 1, 'nil', 'moons,planets', 'user,assistant+tc,tool') . "echo=1\n"]



=== TEST 26: inheritance: a location with c1_tool has only its own: the server's are neither sent nor run
--- extra
    location = /own/chat {
        c1_tool name=moons uri=/tools/moons schema=$TEST_NGINX_SERVER_ROOT/html/any.json;
        c1_pass /_c1;
    }
--- plan: t:moons+echo,c
--- pipelined_requests eval
["POST /own/chat\n{\"prompt\": \"x\"}", "GET /calls"]
--- response_body eval
["results: call_0_0=$::Moons | call_0_1=error: no tool named \"echo\"",
 "calls=2\n" . main::call_line(1, 0, 'nil', 'moons', 'user')
 . main::call_line(2, 1, 'nil', 'moons', 'user,assistant+tc,tool,tool') . "echo=0\n"]



=== TEST 27: the OpenAI shape: no configured tools added; the client's tools and tool_choice reach C1 untouched; C1's tool_calls answer reaches the client byte for byte, no tool run; the client's own tool message goes on to C1
--- plan: t:planets,c
--- pipelined_requests eval
["POST /v1/chat/completions\n{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"client_fn\", \"description\": \"theirs\", \"parameters\": {\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"string\"}}}}}], \"tool_choice\": \"auto\"}",
 "POST /v1/chat/completions\n{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}",
 "POST /v1/chat/completions\n{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"call_0_0\", \"type\": \"function\", \"function\": {\"name\": \"planets\", \"arguments\": \"{}\"}}]}, {\"role\": \"tool\", \"tool_call_id\": \"call_0_0\", \"content\": \"mine\"}]}",
 "GET /calls",
 "GET /calls?n=1&k=tools"]
--- response_body eval
[main::tc_completion(['call_0_0', 'planets', $::A{a}]),
 main::tc_completion(['call_0_0', 'planets', $::A{a}]),
 '{"id":"chatcmpl-t","object":"chat.completion","created":1764000000,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"results: call_0_0=mine"},"finish_reason":"stop"}]}',
 "calls=3\n" . main::call_line(1, 0, 'nil', 'client_fn', 'user', '"auto"')
 . main::call_line(2, 0, 'nil', '-', 'user')
 . main::call_line(3, 1, 'nil', '-', 'user,assistant+tc,tool') . "echo=0\n",
 main::J([{ type => "function", function => { name => "client_fn", description => "theirs",
     parameters => { type => "object", properties => { a => { type => "string" } } } } }])]



=== TEST 28: the OpenAI shape streamed: C1's tool_calls events reach the client exactly, no tool run
--- plan: t:planets+echo@b,c
--- pipelined_requests eval
["POST /v1/chat/completions\n{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"stream\": true}",
 "GET /calls"]
--- response_body eval
[main::tc_stream(['call_0_0', 'planets', $::A{a}], ['call_0_1', 'echo', $::A{b}]),
 "calls=1\n" . main::call_line(1, 0, 'true', '-', 'user') . "echo=0\n"]



=== TEST 29: one call, a whole answer: the tool location got POST, Content-Type application/json, the arguments as its body, no client header, no args; C1's second call has the assistant's tool_calls message and the tool message; the client gets the final content
--- plan: t:echo,c
--- pipelined_requests eval
["POST /chat?q=1\n{\"prompt\": \"x\"}",
 "GET /calls",
 "GET /calls?n=2&k=messages",
 "GET /calls?n=2&k=keys",
 "GET /calls?log=1"]
--- response_body_like eval
[main::ex("results: call_0_0=" . main::echo_of($::A{a})),
 main::ex("calls=2\n" . main::call_line(1, 0, 'nil', $::All, 'user')
 . main::call_line(2, 1, 'nil', $::All, 'user,assistant+tc,tool') . "echo=1\n"),
 main::ex(main::J([main::user_m("x"), main::tc_m(['call_0_0', 'echo', $::A{a}]),
          main::tool_m('call_0_0', main::echo_of($::A{a}))])),
 main::ex("messages,model,tools"),
 '\necho=1\n/chat\?q=1 200 calls=1 rounds=1 pt=\S+ tt=\S+ rt=[\d.]+\n\z']



=== TEST 30: an OpenUI turn ({"threadId", "messages"}, always streamed) is the OpenAI shape: no configured tools added, C1's tool_calls answer reaches the client as C1 sent it, no tool run
--- http_config
    c1_history_zone zone=threads:1m max_messages=20;
--- c1
c1_history threads;
--- plan: t:planets,c
--- pipelined_requests eval
["POST /chat\n{\"threadId\": \"o1\", \"messages\": [{\"id\": \"m1\", \"role\": \"user\", \"content\": \"x\"}]}",
 "GET /calls"]
--- response_body eval
[main::tc_stream(['call_0_0', 'planets', $::A{a}]),
 "calls=1\n" . main::call_line(1, 0, 'true', '-', 'user') . "echo=0\n"]



=== TEST 31: one call, streamed: the arguments gathered from their deltas; the think item, then the final content
--- plan: t:echo@u,c
--- pipelined_requests eval
["POST /s/chat\n{\"prompt\": \"x\"}",
 "GET /calls",
 "GET /calls?n=2&k=messages"]
--- response_body eval
[main::think("Using echo", "echo") . "results: call_0_0=" . main::echo_of($::A{u}),
 "calls=2\n" . main::call_line(1, 0, 'true', $::All, 'user')
 . main::call_line(2, 1, 'true', $::All, 'user,assistant+tc,tool') . "echo=1\n",
 main::J([main::user_m("x"), main::tc_m(['call_0_0', 'echo', $::A{u}]),
          main::tool_m('call_0_0', main::echo_of($::A{u}))])]



=== TEST 32: a `return` location's body is the result, as text; calls without ids get call_0, call_1
--- plan: t:planets!+moons!,c
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls?n=2&k=messages"]
--- response_body eval
["results: call_0=$::P | call_1=$::Moons",
 main::J([main::user_m("x"), main::tc_m(['call_0', 'planets', $::A{a}], ['call_1', 'moons', $::A{a}]),
          main::tool_m('call_0', $::P), main::tool_m('call_1', $::Moons)])]



=== TEST 33: the same streamed: ids made for calls without one, results in the calls' order
--- plan: t:moons!+planets!,c
--- pipelined_requests eval
["POST /s/chat\n{\"prompt\": \"x\"}",
 "GET /calls?n=2&k=messages"]
--- response_body eval
[main::think("Using moons", "moons, planets") . "results: call_0=$::Moons | call_1=$::P",
 main::J([main::user_m("x"), main::tc_m(['call_0', 'moons', $::A{a}], ['call_1', 'planets', $::A{a}]),
          main::tool_m('call_0', $::Moons), main::tool_m('call_1', $::P)])]



=== TEST 34: two calls in one round run at once: two 0.5 s tools end in about 0.5 s, not 1 s
--- plan: t:slow+slow,c
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls?times=1",
 "GET /calls?log=1"]
--- response_body_like eval
['\Aresults: call_0_0=\{"slept":0\.5\} \| call_0_1=\{"slept":0\.5\}\z',
 '\Acall 1 0\.00\nslow start 0\.[01]\d\nslow start 0\.[01]\d\nslow end 0\.[5-7]\d\nslow end 0\.[5-7]\d\ncall 2 0\.[5-7]\d\n\z',
 '\n/chat 200 calls=2 rounds=1 pt=\S+ tt=\S+ rt=0\.[5-8]\d*\n\z']



=== TEST 35: chained rounds: each round's messages added in order, the token sums over the turn's calls
--- plan: t:planets,t:echo@b,c&u=1
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls?log=1",
 "GET /calls?n=3&k=messages"]
--- response_body_like eval
['\A' . quotemeta("results: call_0_0=$::P | call_1_0=" . main::echo_of($::A{b})) . '\z',
 '\A' . quotemeta("calls=3\n" . main::call_line(1, 0, 'nil', $::All, 'user')
 . main::call_line(2, 1, 'nil', $::All, 'user,assistant+tc,tool')
 . main::call_line(3, 2, 'nil', $::All, 'user,assistant+tc,tool,assistant+tc,tool') . "echo=1\n"
 . "/chat 200 calls=2 rounds=2 pt=30 tt=45 rt=") . '[\d.]+\n\z',
 '\A' . quotemeta(main::J([main::user_m("x"), main::tc_m(['call_0_0', 'planets', $::A{a}]), main::tool_m('call_0_0', $::P),
          main::tc_m(['call_1_0', 'echo', $::A{b}]), main::tool_m('call_1_0', main::echo_of($::A{b}))])) . '\z']



=== TEST 36: c1_tool_rounds 2: the third call goes without tools (nor tool_choice); its content is the answer
--- c1
c1_tool_rounds 2;
--- plan: t:planets,t:moons,c
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls",
 "GET /calls?n=3&k=keys",
 "GET /calls?n=3&k=messages"]
--- response_body eval
["results: call_0_0=$::P | call_1_0=$::Moons",
 "calls=3\n" . main::call_line(1, 0, 'nil', $::All, 'user')
 . main::call_line(2, 1, 'nil', $::All, 'user,assistant+tc,tool')
 . main::call_line(3, 2, 'nil', '-', 'user,assistant+tc,tool,assistant+tc,tool') . "echo=0\n",
 "messages,model",
 main::J([main::user_m("x"), main::tc_m(['call_0_0', 'planets', $::A{a}]), main::tool_m('call_0_0', $::P),
          main::tc_m(['call_1_0', 'moons', $::A{a}]), main::tool_m('call_1_0', $::Moons)])]



=== TEST 37: the default is 4 rounds: the fifth call goes without tools
--- plan: t:planets,t:planets,t:planets,t:planets,c
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls"]
--- response_body eval
["results: call_0_0=$::P | call_1_0=$::P | call_2_0=$::P | call_3_0=$::P",
 "calls=5\n" . main::call_line(1, 0, 'nil', $::All, 'user')
 . main::call_line(2, 1, 'nil', $::All, 'user,assistant+tc,tool')
 . main::call_line(3, 2, 'nil', $::All, 'user,assistant+tc,tool,assistant+tc,tool')
 . main::call_line(4, 3, 'nil', $::All, 'user,assistant+tc,tool,assistant+tc,tool,assistant+tc,tool')
 . main::call_line(5, 4, 'nil', '-', 'user,assistant+tc,tool,assistant+tc,tool,assistant+tc,tool,assistant+tc,tool') . "echo=0\n"]



=== TEST 38: C1 asking for tools after the last round (c1_tool_rounds 1 in a location): 502 bad_upstream_answer, no third call
--- extra
    location = /one/chat { c1_tool_rounds 1; c1_pass /_c1; }
--- plan: t:planets,t:moons
--- pipelined_requests eval
["POST /one/chat\n{\"prompt\": \"x\"}",
 "GET /calls"]
--- error_code eval
[502, 200]
--- response_body_like eval
['\A\{"error":\{"message":"[^"]+","type":"upstream_error","param":null,"code":"bad_upstream_answer"\}\}\z',
 '\A' . quotemeta("calls=2\n" . main::call_line(1, 0, 'nil', $::All, 'user')
 . main::call_line(2, 1, 'nil', '-', 'user,assistant+tc,tool') . "echo=0\n") . '\z']



=== TEST 39: a tool answering 500: the result text, a warn line without the arguments
--- plan: t:fail@s,c
--- request
POST /chat
{"prompt": "x"}
--- response_body chomp
results: call_0_0=error: the tool answered HTTP 500
--- error_log eval
[qr/\[warn\] [^\n]*c1: tool "fail" failed: /]
--- no_error_log
sk-SECRET-4242
[error]
[alert]
[crit]



=== TEST 40: a tool past its timeout (200ms): the result text, a warn line, C1 goes on at once
--- more_tools
    c1_tool name=sleepy uri=/tools/slow schema=$TEST_NGINX_SERVER_ROOT/html/any.json timeout=200ms;
--- plan: t:sleepy@s,c
--- request
POST /chat
{"prompt": "x"}
--- response_body chomp
results: call_0_0=error: the tool did not answer in time
--- error_log eval
[qr/\[warn\] [^\n]*c1: tool "sleepy" failed: /]
--- no_error_log
sk-SECRET-4242
[error]
[alert]
[crit]



=== TEST 41: the timeout's timing: C1's second call 0.2 s after the tool began, not 0.5 s
--- more_tools
    c1_tool name=sleepy uri=/tools/slow schema=$TEST_NGINX_SERVER_ROOT/html/any.json timeout=200ms;
--- plan: t:sleepy,c
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls?times=1"]
--- response_body_like eval
['\Aresults: call_0_0=error: the tool did not answer in time\z',
 '\Acall 1 0\.00\nslow start 0\.[01]\d\ncall 2 0\.[23]\d\n']



=== TEST 42: c1_tool_max_size 1k: 1025 bytes are too large, 1024 fit
--- c1
c1_tool_max_size 1k;
--- plan: t:big@s+fit,c
--- request
POST /chat
{"prompt": "x"}
--- response_body eval
"results: call_0_0=error: the tool's answer is larger than c1_tool_max_size | call_0_1=" . ("y" x 1024)
--- error_log eval
[qr/\[warn\] [^\n]*c1: tool "big" failed: /]
--- no_error_log
sk-SECRET-4242
c1: tool "fit" failed
[error]
[alert]
[crit]



=== TEST 43: an unknown tool: the result names it, the warn line says no such tool
--- plan: t:nosuch@s,c
--- request
POST /chat
{"prompt": "x"}
--- response_body chomp
results: call_0_0=error: no tool named "nosuch"
--- error_log eval
[qr/\[warn\] [^\n]*c1: tool "nosuch" failed: no such tool/]
--- no_error_log
sk-SECRET-4242
[error]
[alert]
[crit]



=== TEST 44: an unknown tool whose name needs JSON escapes: named JSON-escaped in the result
--- plan: t:no%22pe%5Cx,c
--- request
POST /chat
{"prompt": "x"}
--- response_body chomp
results: call_0_0=error: no tool named "no\"pe\\x"



=== TEST 45: arguments that are not a JSON object (not JSON; an array): the result text, the tool not run, warn lines without the arguments; empty arguments count as {}
--- plan: t:echo@bad+echo@arr+echo@e,c
--- request
POST /chat
{"prompt": "x"}
--- response_body eval
"results: call_0_0=error: the arguments are not a JSON object | call_0_1=error: the arguments are not a JSON object | call_0_2=" . main::echo_of("{}")
--- error_log eval
[qr/\[warn\] [^\n]*c1: tool "echo" failed: /]
--- no_error_log
sk-SECRET-4242
[error]
[alert]
[crit]



=== TEST 46: the same: the echo tool ran once (for the empty arguments only)
--- plan: t:echo@bad+echo@arr+echo@e,c
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls"]
--- response_body_like eval
['\Aresults: ', '\Acalls=2\n.*\necho=1\n\z']



=== TEST 47: a tool answering bytes that are not UTF-8
--- plan: t:binary@s,c
--- request
POST /chat
{"prompt": "x"}
--- response_body chomp
results: call_0_0=error: the tool's answer is not UTF-8 text
--- error_log eval
[qr/\[warn\] [^\n]*c1: tool "binary" failed: /]
--- no_error_log
sk-SECRET-4242
[error]
[alert]
[crit]



=== TEST 48: a good call with the secret in its arguments: streamed, nothing of them in the error log
--- plan: t:echo@s,c
--- request
POST /s/chat
{"prompt": "x"}
--- response_body eval
main::think("Using echo", "echo") . "results: call_0_0=" . main::echo_of($::A{s})
--- no_error_log
sk-SECRET-4242
c1: tool
[error]
[alert]
[crit]



=== TEST 49: a prompt-mode stream: one think item per round, each after the content C1 streamed in its round and before the next call's content
--- plan: pt:planets,pt:moons+planets+moons,c
--- request
POST /s/chat
{"prompt": "x"}
--- response_body eval
"checking " . main::think("Using planets", "planets")
. "checking " . main::think("Using moons", "moons, planets")
. "results: call_0_0=$::P | call_1_0=$::Moons | call_1_1=$::P | call_1_2=$::Moons"



=== TEST 50: the think item: the first call's tool's title, names once each in call order, both HTML-escaped (& < > " '), an unknown tool "Using NAME"
--- tools
    c1_tool name=planets uri=/tools/planets schema=$TEST_NGINX_SERVER_ROOT/html/planets.json "title=Fetching <\"planets\"> & 'moons'";
    c1_tool name=moons uri=/tools/moons schema=$TEST_NGINX_SERVER_ROOT/html/any.json;
--- plan: t:planets+a%3Cb%3E%26%22c%27+planets,c
--- plan2: t:a%3Cb%3E%26%22c%27+moons,c
--- pipelined_requests eval
["POST /s/chat\n{\"prompt\": \"x\"}",
 "POST /s/chat2\n{\"prompt\": \"x\"}"]
--- response_body eval
[main::think("Fetching &lt;&quot;planets&quot;&gt; &amp; &#39;moons&#39;", "planets, a&lt;b&gt;&amp;&quot;c&#39;")
 . "results: call_0_0=$::P | call_0_1=error: no tool named \"a<b>&\\\"c'\" | call_0_2=$::P",
 main::think("Using a&lt;b&gt;&amp;&quot;c&#39;", "a&lt;b&gt;&amp;&quot;c&#39;, moons")
 . "results: call_0_0=error: no tool named \"a<b>&\\\"c'\" | call_0_1=$::Moons"]



=== TEST 51: a whole answer has no think item, nor the content of a tool round: the final content only
--- plan: pt:planets,pt:moons,c
--- request
POST /chat
{"prompt": "x"}
--- response_body chomp
results: call_0_0={"planets":["Mercury","Venus"]} | call_1_0={"moons":["Phobos","Deimos"]}



=== TEST 52: the client gone during a slow tool call (streamed): it got the think item at once; C1 is not called again
--- plan: t:slow,c
--- pipelined_requests eval
["POST /drop?u=/s/chat&s=0.2\n{\"prompt\": \"x\"}",
 "GET /sleep?s=1",
 "GET /calls"]
--- response_body_like eval
['\Adropped after 0\.2 s, got [1-9]\d* bytes\z',
 '\Aslept\n\z',
 '\A' . quotemeta("calls=1\n" . main::call_line(1, 0, 'true', $::All, 'user') . "echo=0\n") . '\z']



=== TEST 53: the client gone during a slow tool call (whole answer): C1 is not called again
--- plan: t:slow,c
--- pipelined_requests eval
["POST /drop?u=/chat&s=0.2\n{\"prompt\": \"x\"}",
 "GET /sleep?s=1",
 "GET /calls"]
--- response_body_like eval
['\Adropped after 0\.2 s, got \d+ bytes\z',
 '\Aslept\n\z',
 '\A' . quotemeta("calls=1\n" . main::call_line(1, 0, 'nil', $::All, 'user') . "echo=0\n") . '\z']



=== TEST 54: thread turns: a streamed turn with a tool round, then a turn without: C1 gets the stored tool messages back in order; GET ?threadId= and the thread API list only user and assistant messages (no think item stored)
--- http_config
    c1_history_zone zone=threads:1m max_messages=20;
--- c1
c1_history threads;
--- extra
    location /api/threads/ { c1_threads threads; }
--- plan: t:planets,c
--- plan2: c
--- pipelined_requests eval
["POST /s/chat\n{\"prompt\": {\"id\": \"p1\", \"role\": \"user\", \"content\": \"one\"}, \"threadId\": \"t1\", \"responseId\": \"r1\"}",
 "POST /chat2\n{\"prompt\": {\"id\": \"p2\", \"role\": \"user\", \"content\": \"two\"}, \"threadId\": \"t1\", \"responseId\": \"r2\"}",
 "GET /calls",
 "GET /calls?n=3&k=messages",
 "GET /chat?threadId=t1",
 "GET /api/threads/get/t1"]
--- response_body eval
[main::think("Using planets", "planets") . "results: call_0_0=$::P",
 "results: call_0_0=$::P",
 "calls=3\n" . main::call_line(1, 0, 'true', $::All, 'user')
 . main::call_line(2, 1, 'true', $::All, 'user,assistant+tc,tool')
 . main::call_line(3, 0, 'nil', $::All, 'user,assistant+tc,tool,assistant,user') . "echo=0\n",
 main::J([main::user_m("one"), main::tc_m(['call_0_0', 'planets', $::A{a}]), main::tool_m('call_0_0', $::P),
          main::asst_m("results: call_0_0=$::P"), main::user_m("two")]),
 (main::thread_json(['p1', 'user', 'one'], ['r1', 'assistant', "results: call_0_0=$::P"],
                    ['p2', 'user', 'two'], ['r2', 'assistant', "results: call_0_0=$::P"])) x 2]



=== TEST 55: thread turns: max_messages counts the tool messages (4: the first turn fills it, the second pushes out its user message and tool-call message)
--- http_config
    c1_history_zone zone=threads:1m max_messages=4;
--- c1
c1_history threads;
--- plan: t:planets,c
--- plan2: c
--- pipelined_requests eval
["POST /chat\n{\"prompt\": {\"id\": \"p1\", \"role\": \"user\", \"content\": \"one\"}, \"threadId\": \"t1\", \"responseId\": \"r1\"}",
 "GET /chat?threadId=t1",
 "POST /chat2\n{\"prompt\": {\"id\": \"p2\", \"role\": \"user\", \"content\": \"two\"}, \"threadId\": \"t1\", \"responseId\": \"r2\"}",
 "GET /calls?n=3&k=messages",
 "GET /chat?threadId=t1"]
--- response_body eval
["results: call_0_0=$::P",
 main::thread_json(['p1', 'user', 'one'], ['r1', 'assistant', "results: call_0_0=$::P"]),
 "results: call_0_0=$::P",
 main::J([main::user_m("one"), main::tc_m(['call_0_0', 'planets', $::A{a}]), main::tool_m('call_0_0', $::P),
          main::asst_m("results: call_0_0=$::P"), main::user_m("two")]),
 main::thread_json(['r1', 'assistant', "results: call_0_0=$::P"],
                   ['p2', 'user', 'two'], ['r2', 'assistant', "results: call_0_0=$::P"])]



=== TEST 56: $c1_tool_calls and $c1_tool_rounds: the counts; 0 in a location with tools that ran none; not found (-) in a location without tools; also in add_header
--- config
    c1_model m;
    access_log logs/c1.log c1;
    location = /chat {
        c1_tool name=planets uri=/tools/planets schema=$TEST_NGINX_SERVER_ROOT/html/planets.json;
        c1_tool name=moons uri=/tools/moons schema=$TEST_NGINX_SERVER_ROOT/html/any.json;
        add_header X-Tools "$c1_tool_calls/$c1_tool_rounds";
        c1_pass /_c1;
    }
    location = /none {
        c1_tool name=planets uri=/tools/planets schema=$TEST_NGINX_SERVER_ROOT/html/planets.json;
        c1_pass /_c1c;
    }
    location = /plain { c1_pass /_c1c; }
    location = /_c1 {
        internal;
        proxy_http_version 1.1;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/tc1?p=t:planets+moons+planets,t:moons,c;
    }
    location = /_c1c {
        internal;
        proxy_http_version 1.1;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/tc1?p=c;
    }
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "POST /none\n{\"prompt\": \"x\"}",
 "POST /plain\n{\"prompt\": \"x\"}",
 "GET /calls?log=1"]
--- response_headers eval
["X-Tools: 4/2", "", "", ""]
--- response_body_like eval
['\Aresults: ', '\Aresults: none\z', '\Aresults: none\z',
 '\necho=0\n/chat 200 calls=4 rounds=2 [^\n]*\n/none 200 calls=0 rounds=0 [^\n]*\n/plain 200 calls=- rounds=- [^\n]*\n\z']



=== TEST 57: $c1_tool_calls counts the calls that ran: not those of an unknown tool or with arguments that are not JSON
--- plan: t:planets+nosuch+echo@bad+fail,c
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /calls?log=1"]
--- response_body_like eval
['\Aresults: call_0_0=',
 '\n/chat 200 calls=2 rounds=1 [^\n]*\n\z']



=== TEST 58: the metrics before any traffic: every configured tool (server and location level) with every outcome at 0; the latency histogram empty
--- extra
    location = /own/chat {
        c1_tool name=loc_only uri=/tools/moons schema=$TEST_NGINX_SERVER_ROOT/html/any.json;
        c1_pass /_c1;
    }
--- request
GET /metrics
--- response_body_like eval
main::metrics_like(main::tool_metrics([split(/,/, $::All), 'loc_only']),
    '# TYPE c1_tool_latency_seconds histogram',
    'c1_tool_latency_seconds_bucket\{le="\+Inf"\} 0',
    'c1_tool_latency_seconds_count 0')



=== TEST 59: the metrics after a round of every outcome: each counted under its tool (an unknown one under "unknown"); the latency of the calls that ran a subrequest only
--- c1
c1_tool_max_size 1k;
--- more_tools
    c1_tool name=sleepy uri=/tools/slow schema=$TEST_NGINX_SERVER_ROOT/html/any.json timeout=200ms;
--- plan: t:planets+fail+nosuch+echo@bad+big+binary+sleepy,c
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "GET /metrics"]
--- response_body_like eval
['\Aresults: call_0_0=',
 main::metrics_like(
    main::tool_metrics([split(/,/, $::All), 'sleepy'],
        'planets/ok' => 1, 'fail/error' => 1, 'echo/bad_arguments' => 1,
        'big/too_large' => 1, 'binary/not_text' => 1, 'sleepy/timeout' => 1),
    main::tool_metric('unknown', 'unknown', 1),
    'c1_tool_latency_seconds_bucket\{le="\+Inf"\} 5',
    'c1_tool_latency_seconds_count 5')]



=== TEST 60: a NUL byte in a tool's answer: not text either
--- more_tools
    c1_tool name=nul uri=/tools/nul schema=$TEST_NGINX_SERVER_ROOT/html/any.json;
--- plan: t:nul@s+binary,c
--- request
POST /chat
{"prompt": "x"}
--- response_body chomp
results: call_0_0=error: the tool's answer is not UTF-8 text | call_0_1=error: the tool's answer is not UTF-8 text
--- error_log eval
[qr/\[warn\] [^\n]*c1: tool "nul" failed: /, qr/\[warn\] [^\n]*c1: tool "binary" failed: /]
--- no_error_log
sk-SECRET-4242
[error]
[alert]
[crit]



=== TEST 61: the default c1_tool_max_size is 256k: 262144 bytes fit, 262145 do not
--- more_tools
    c1_tool name=k256 uri=/tools/k256 schema=$TEST_NGINX_SERVER_ROOT/html/any.json;
    c1_tool name=k256p uri=/tools/k256p schema=$TEST_NGINX_SERVER_ROOT/html/any.json;
--- plan: t:k256+k256p,c
--- request
POST /chat
{"prompt": "x"}
--- response_body eval
"results: call_0_0=" . ("z" x 262144) . " | call_0_1=error: the tool's answer is larger than c1_tool_max_size"



=== TEST 62: token limits: every C1 call of a turn is debited (whole and streamed), seen in the next request's remaining
--- http_config
    c1_limit_tokens_zone zone=u:1m;
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=1000/d;
--- plan: t:planets,c&u=1
--- plan2: c&u=1
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "POST /s/chat\n{\"prompt\": \"x\"}",
 "POST /chat2\n{\"prompt\": \"x\"}",
 "GET /calls?log=1"]
--- response_headers eval
["X-RateLimit-Remaining-Tokens: 1000", "X-RateLimit-Remaining-Tokens: 970", "X-RateLimit-Remaining-Tokens: 940", ""]
--- response_body_like eval
['\Aresults: call_0_0=', 'results: call_0_0=', '\Aresults: none\z',
 '\n/chat 200 calls=1 rounds=1 pt=20 tt=30 rt=[\d.]+\n/s/chat 200 calls=1 rounds=1 pt=20 tt=30 rt=[\d.]+\n/chat2 200 calls=0 rounds=0 pt=10 tt=15 rt=[\d.]+\n\z']



=== TEST 64: a tool location that answers through error_page (a POST to a static file: 405, then error_page 405 =200 $uri): the file is the result, as the page's answer is judged, not the first error
--- user_files
>>> static-tool.json
{"from":"the static file"}
--- extra
    location = /st/chat {
        c1_tool name=static uri=/tools/static schema=$TEST_NGINX_SERVER_ROOT/html/any.json;
        c1_pass /_c1;
    }
    location = /tools/static {
        internal;
        default_type application/json;
        alias $TEST_NGINX_SERVER_ROOT/html/static-tool.json;
        error_page 405 =200 $uri;
    }
--- plan: t:static,c
--- request
POST /st/chat
{"prompt": "x"}
--- response_body eval
"results: call_0_0=" . qq({"from":"the static file"}\n)
--- no_error_log
failed:



=== TEST 63: a relative schema path is relative to the conf directory, as include's are (../html from conf/)
(last in the file: when nginx cannot start, the runner stops)
--- tools
    c1_tool name=rel uri=/tools/planets schema=../html/any.json;
--- request
GET /metrics
--- response_body_like eval
main::metrics_like(main::tool_metric("rel", "ok", 0))
