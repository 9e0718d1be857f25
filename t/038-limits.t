# Token budgets per user (issue 16, /work/notes/limits-spec.md): the
# directives c1_limit_tokens_zone, c1_limit_tokens and
# c1_limit_tokens_status (nginx -t errors, inheritance), the exact
# accounting of the token buckets from C1's usage (per minute, hour and
# day, burst, count=completion, several limits, empty keys, the answer that
# runs over), refusals and their reset, streams (the usage chunk asked of
# C1, kept from clients that did not ask for it, the estimate without
# usage), C1's own 429, what is not counted (threads' GET/DELETE, the
# thread API, requests refused before the check), the variables, the
# metrics and a full zone.
#
# The mock C1 is C1Plan's /plan (t/lib/C1Plan.pm): ?p=200u10.5.15,... gives
# each answer a known usage; GET /calls?iu=1 says which calls it got,
# whether each asked for include_usage and its body's bytes, then the access
# log of the c1_pass locations (logs/c1.log: $c1_limit_remaining,
# $c1_limit_key, $c1_error). Blocks that sleep between requests, or check
# the error log after several requests, use C1Seq's /seq (t/lib/C1Seq.pm):
# one request whose answer is the transcript of the requests it made.
#
# Exactness: a slow rate (1000/d: one token per 86.4 s, 10/m: one per 6 s)
# refills nothing that floor() shows during a block, so remaining is
# capacity - the sum of the debits; the times (Reset, Retry-After, the
# message) allow for the milliseconds a block takes.

use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use C1Test;
use C1Plan;
use C1Seq;
use JSON::PP ();

BEGIN {
    my $port = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984;
    $ENV{TEST_NGINX_C1_CLOSED_PORT} = $port + 1;
}

no_long_string();
no_shuffle();

our $Mock = $C1Plan::Locations . $C1Seq::Location . <<'_EOC_';
    location = /sleep {
        access_log off;
        content_by_lua_block { ngx.sleep(tonumber(ngx.var.arg_s)) ngx.say("slept") }
    }
_EOC_

add_block_preprocessor(sub {
    my $block = shift;

    my $http = $block->http_config // '';
    my $zone = defined $block->no_zone ? '' : "    c1_limit_tokens_zone zone=u:1m;\n";
    $block->set_value("http_config", <<"_EOC_");
    log_format c1 '\$request_uri \$status rem=\$c1_limit_remaining '
                  'key=\$c1_limit_key error=\$c1_error';
    lua_shared_dict calls 1m;
$zone$http
_EOC_

    if (defined $block->config) {
        $block->set_value("config", $block->config . $Mock);
    } else {
        my $c1 = $block->c1 // '';
        my $plan = $block->plan // '200';
        my $extra = $block->extra // '';
        $block->set_value("config", <<"_EOC_" . $Mock);
    c1_model m;
    access_log logs/c1.log c1;
    $c1
    location = /chat { c1_pass /_c1; }
    location = /s/chat { c1_stream on; c1_pass /_c1; }
    location = /v1/chat/completions { c1_pass /_c1; }
    location = /_c1 {
        internal;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_connect_timeout 1s;
        proxy_read_timeout 1s;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_SERVER_PORT/plan?p=$plan;
    }
$extra
_EOC_
    }

    if (!defined $block->more_headers) {
        $block->set_value("more_headers", "Content-Type: application/json\nX-User: a\n");
    }
});

# the mock's stream, and the same with its usage-only chunk
sub stream_of {
    my $usage = shift;
    return join '', map { "data: $_\n\n" }
        '{"choices":[{"delta":{"role":"assistant","content":""}}]}',
        '{"choices":[{"delta":{"content":"one "}}]}',
        '{"choices":[{"delta":{"content":"two "}}]}',
        '{"choices":[{"delta":{"content":"three"}}]}',
        '{"choices":[{"delta":{},"finish_reason":"stop"}]}',
        ($usage ? ('{"choices":[],"usage":' . $usage . '}') : ()),
        '[DONE]';
}
our $Stream = stream_of();
$main::Stream = $Stream;
our $StreamUsage = stream_of('{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}');

# POST /seq with these steps (see C1Seq)
sub seq { "POST /seq\n" . JSON::PP->new->canonical->encode([@_]) }

# one line of /seq's transcript, as a pattern: $reset is a pattern
sub ln {
    my ($status, $limit, $remaining, $reset, $retry) = @_;
    return "$status limit=$limit remaining=$remaining reset=$reset retry=$retry\n";
}

# the body of a refusal, as a pattern: $again is a pattern
sub refusal {
    my ($unit, $zone, $limit, $again) = @_;
    my $w = { m => 'min \(TPM\)', h => 'hour \(TPH\)', d => 'day \(TPD\)' }->{$unit};
    return '\{"error":\{"message":"Rate limit reached for tokens per ' . $w
         . ' in c1_limit_tokens zone \\\\"' . $zone . '\\\\": Limit ' . $limit
         . ', Remaining 0\. Please try again in ' . $again
         . '\.","type":"tokens","param":null,"code":"rate_limit_exceeded"\}\}';
}

# the zone's metrics with these values (patterns), each anywhere after here
sub metrics {
    my ($zone, %n) = @_;
    my %name = (
        limited  => "c1_limited_total\\{zone=\"$zone\"\\}",
        usage    => "c1_limit_debited_tokens_total\\{zone=\"$zone\",source=\"usage\"\\}",
        estimate => "c1_limit_debited_tokens_total\\{zone=\"$zone\",source=\"estimate\"\\}",
        keys     => "c1_limit_keys\\{zone=\"$zone\"\\}",
        dropped  => "c1_limit_dropped_total\\{zone=\"$zone\"\\}",
    );
    my $re = '';
    for my $k (qw(limited usage estimate keys dropped)) {
        next if !exists $n{$k};
        $re .= "(?=[\\s\\S]*(?m:^$name{$k} $n{$k}\$))";
    }
    return $re;
}

# a mock 4xx/5xx body
sub mock_error { my $s = shift; '\{"error":\{"message":"mock ' . $s . '","type":"mock_error","param":null,"code":"mock_' . $s . '"\}\}' }

# Reset/again patterns: a duration of D (as Go prints it), or a little less
# (the milliseconds the block took): for whole seconds only
sub about {
    my ($exact, $less) = @_;
    return "(?:$exact|$less(?:\\.\\d{1,3})?)s";
}

run_tests();

__DATA__

=== TEST 1: nginx -t: a zone under 32k is too small
--- http_config
    c1_limit_tokens_zone zone=small:31k;
--- c1
c1_limit_tokens zone=small key=$http_x_user rate=10/m;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*"c1_limit_tokens_zone" zone "small" is too small/



=== TEST 2: 32k is enough; a store= naming a c1_history_redis defined after it; every zone's metrics at 0 before any traffic (a store='s keys 0)
--- http_config
    c1_limit_tokens_zone zone=z32:32k;
    c1_limit_tokens_zone zone=r:1m store=rs;
    c1_history_redis name=rs server=unix:/tmp/c1-038-nothing-here.sock;
--- c1
c1_limit_tokens zone=z32 key=$http_x_user rate=10/m;
--- request
GET /metrics
--- response_body_like eval
'\A' . CORE::join '', map { main::metrics($_, limited => 0, usage => 0, estimate => 0, keys => 0, dropped => 0) } qw(u z32 r)



=== TEST 3: nginx -t: a duplicate zone name
--- http_config
    c1_limit_tokens_zone zone=u:64k;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*duplicate c1_limit_tokens_zone "u"/



=== TEST 4: nginx -t: store= naming no store
--- http_config
    c1_limit_tokens_zone zone=r:1m store=nope;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*unknown c1_history_redis store "nope" in "c1_limit_tokens_zone"/



=== TEST 5: nginx -t: store= naming a c1_history_zone (only Redis stores)
--- http_config
    c1_history_zone zone=threads:1m;
    c1_limit_tokens_zone zone=r:1m store=threads;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*unknown c1_history_redis store "threads" in "c1_limit_tokens_zone"/



=== TEST 6: nginx -t: c1_limit_tokens_zone without zone=
--- http_config
    c1_history_redis name=rs server=unix:/tmp/c1-038-nothing-here.sock;
    c1_limit_tokens_zone store=rs;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*"c1_limit_tokens_zone" must have "zone" parameter/



=== TEST 7: nginx -t: c1_limit_tokens_zone with an unknown parameter
--- http_config
    c1_limit_tokens_zone zone=x:1m foo=1;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*invalid parameter "foo=1"/



=== TEST 8: nginx -t: c1_limit_tokens_zone in a server (http only)
--- c1
c1_limit_tokens_zone zone=x:1m;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*"c1_limit_tokens_zone" directive is not allowed here/



=== TEST 9: nginx -t: c1_limit_tokens naming no zone
--- c1
location = /x/chat { c1_limit_tokens zone=nope key=$http_x_user rate=10/m; c1_pass /_c1; }
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*unknown c1_limit_tokens_zone "nope"/



=== TEST 10: nginx -t: c1_limit_tokens without zone=
--- c1
c1_limit_tokens key=$http_x_user rate=10/m;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*"c1_limit_tokens" must have "zone" parameter/



=== TEST 11: nginx -t: c1_limit_tokens without key=
--- c1
c1_limit_tokens zone=u rate=10/m;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*"c1_limit_tokens" must have "key" parameter/



=== TEST 12: nginx -t: c1_limit_tokens without rate=
--- c1
c1_limit_tokens zone=u key=$http_x_user;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*"c1_limit_tokens" must have "rate" parameter/



=== TEST 13: nginx -t: rate=10r/s (limit_req's style) is refused
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=10r/s;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*invalid rate "(?:rate=)?10r\/s"/



=== TEST 14: nginx -t: rate=10/s (no such unit)
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=10/s;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*invalid rate "(?:rate=)?10\/s"/



=== TEST 15: nginx -t: rate=0/m
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=0/m;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*invalid rate "(?:rate=)?0\/m"/



=== TEST 16: nginx -t: rate=1000000001/d (over 1000000000)
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=1000000001/d;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*invalid rate "(?:rate=)?1000000001\/d"/



=== TEST 17: nginx -t: rate=10 (no unit)
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=10;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*invalid rate "(?:rate=)?10"/



=== TEST 18: nginx -t: rate=x/h
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=x/h;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*invalid rate "(?:rate=)?x\/h"/



=== TEST 19: nginx -t: burst=-1
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=10/m burst=-1;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*invalid burst "(?:burst=)?-1"/



=== TEST 20: nginx -t: burst=1000000001
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=10/m burst=1000000001;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*invalid burst "(?:burst=)?1000000001"/



=== TEST 21: nginx -t: burst=x
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=10/m burst=x;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*invalid burst "(?:burst=)?x"/



=== TEST 22: nginx -t: count=prompt
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=10/m count=prompt;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*invalid count "(?:count=)?prompt"/



=== TEST 23: nginx -t: two limits with the same zone, key, unit and count in one level (rates differ)
--- c1
location = /x/chat {
    c1_limit_tokens zone=u key=$http_x_user rate=10/m;
    c1_limit_tokens zone=u key=$http_x_user rate=20/m;
    c1_pass /_c1;
}
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*duplicate "c1_limit_tokens" for zone "u"/



=== TEST 24: nginx -t: count=total is the default: the same limit with and without it is a duplicate
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=10/d;
c1_limit_tokens zone=u key=$http_x_user rate=20/d count=total;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*duplicate "c1_limit_tokens" for zone "u"/



=== TEST 25: nginx -t: two limits sharing buckets (zone, key text, unit, count) in two levels with different rates
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=10/d;
location = /x/chat { c1_limit_tokens zone=u key=$http_x_user rate=20/d; c1_pass /_c1; }
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*"c1_limit_tokens" shares its buckets in zone "u" \(the same key, unit and count\) with the one in \S+:\d+, whose rate or burst differs/



=== TEST 26: 8 limits in one level (by unit, count, key) and the bounds of every value are accepted; the least remaining is reported (rate=1/m: 1)
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=1/m;
c1_limit_tokens zone=u key=$http_x_user rate=1000000000/d burst=1000000000;
c1_limit_tokens zone=u key=$http_x_user rate=100/h burst=0;
c1_limit_tokens zone=u key=$http_x_user rate=100/m count=completion;
c1_limit_tokens zone=u key=$http_x_user rate=100/h count=completion;
c1_limit_tokens zone=u key=$http_x_user rate=100/d count=completion;
c1_limit_tokens zone=u key=x$http_x_user rate=100/d;
c1_limit_tokens zone=u key=y$http_x_user rate=100/d;
c1_limit_tokens_status 400;
location = /t599/chat { c1_limit_tokens_status 599; c1_pass /_c1; }
--- request
POST /chat
{"prompt": "x"}
--- response_headers
X-RateLimit-Limit-Tokens: 1
X-RateLimit-Remaining-Tokens: 1
X-RateLimit-Reset-Tokens: 0s
--- response_body chomp
answer from m



=== TEST 27: nginx -t: a 9th limit in one level
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=1/m;
c1_limit_tokens zone=u key=$http_x_user rate=1/h;
c1_limit_tokens zone=u key=$http_x_user rate=1/d;
c1_limit_tokens zone=u key=$http_x_user rate=1/m count=completion;
c1_limit_tokens zone=u key=$http_x_user rate=1/h count=completion;
c1_limit_tokens zone=u key=$http_x_user rate=1/d count=completion;
c1_limit_tokens zone=u key=a$http_x_user rate=1/d;
c1_limit_tokens zone=u key=b$http_x_user rate=1/d;
c1_limit_tokens zone=u key=c$http_x_user rate=1/d;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*"c1_limit_tokens"[^\n]*\b8\b/



=== TEST 28: nginx -t: c1_limit_tokens_status 399
--- c1
c1_limit_tokens_status 399;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*value must be between 400 and 599/



=== TEST 29: nginx -t: c1_limit_tokens_status 600
--- c1
c1_limit_tokens_status 600;
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*value must be between 400 and 599/



=== TEST 30: inheritance: http's limit and status in a location without its own; a location's own list (another zone, status 503) replaces http's
--- http_config
    c1_limit_tokens_zone zone=v:1m;
    c1_limit_tokens zone=u key=$http_x_user rate=100/d;
    c1_limit_tokens_status 403;
--- config
    c1_model m;
    location = /chat { c1_pass /_c1; }
    location = /loc/chat {
        c1_limit_tokens zone=v key=$http_x_user rate=300/d;
        c1_limit_tokens_status 503;
        c1_pass /_c1;
    }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/plan?p=200u60.40.100;
    }
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "POST /chat\n{\"prompt\": \"x\"}",
 "POST /loc/chat\n{\"prompt\": \"x\"}",
 "POST /loc/chat\n{\"prompt\": \"x\"}",
 "POST /loc/chat\n{\"prompt\": \"x\"}",
 "POST /loc/chat\n{\"prompt\": \"x\"}",
 "GET /calls"]
--- error_code eval
[200, 403, 200, 200, 200, 503, 200]
--- response_headers eval
["X-RateLimit-Limit-Tokens: 100\nX-RateLimit-Remaining-Tokens: 100",
 "X-RateLimit-Limit-Tokens: 100\nX-RateLimit-Remaining-Tokens: 0",
 "X-RateLimit-Limit-Tokens: 300\nX-RateLimit-Remaining-Tokens: 300",
 "X-RateLimit-Limit-Tokens: 300\nX-RateLimit-Remaining-Tokens: 200",
 "X-RateLimit-Limit-Tokens: 300\nX-RateLimit-Remaining-Tokens: 100",
 "X-RateLimit-Limit-Tokens: 300\nX-RateLimit-Remaining-Tokens: 0",
 ""]
--- response_body_like eval
['\Aanswer from m\z',
 '\A' . main::refusal('d', 'u', 100, '[^"]+') . '\z',
 '\Aanswer from m\z', '\Aanswer from m\z', '\Aanswer from m\z',
 '\A' . main::refusal('d', 'v', 300, '[^"]+') . '\z',
 '\Acalls=4\n- 1 m\n- 2 m\n- 3 m\n- 4 m\n\z']



=== TEST 31: inheritance: a server's list replaces http's, a location's replaces the server's (the larger capacity reported: the other is not in effect)
--- http_config
    c1_limit_tokens_zone zone=v:1m;
    c1_limit_tokens zone=u key=$http_x_user rate=100/d;
--- config
    c1_model m;
    c1_limit_tokens zone=v key=$http_x_user rate=200/d;
    location = /chat { c1_pass /_c1; }
    location = /loc/chat {
        c1_limit_tokens zone=u key=$http_x_user rate=500/h;
        c1_pass /_c1;
    }
    location = /_c1 {
        internal;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/plan?p=200u60.40.100;
    }
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "POST /chat\n{\"prompt\": \"x\"}",
 "POST /chat\n{\"prompt\": \"x\"}",
 "POST /loc/chat\n{\"prompt\": \"x\"}",
 "POST /loc/chat\n{\"prompt\": \"x\"}"]
--- error_code eval
[200, 200, 429, 200, 200]
--- response_headers eval
["X-RateLimit-Limit-Tokens: 200\nX-RateLimit-Remaining-Tokens: 200",
 "X-RateLimit-Limit-Tokens: 200\nX-RateLimit-Remaining-Tokens: 100",
 "X-RateLimit-Limit-Tokens: 200\nX-RateLimit-Remaining-Tokens: 0",
 "X-RateLimit-Limit-Tokens: 500\nX-RateLimit-Remaining-Tokens: 500",
 "X-RateLimit-Limit-Tokens: 500\nX-RateLimit-Remaining-Tokens: 400"]
--- response_body_like eval
['\Aanswer from m\z', '\Aanswer from m\z',
 '\A' . main::refusal('d', 'v', 200, '[^"]+') . '\z',
 '\Aanswer from m\z', '\Aanswer from m\z']



=== TEST 32: per day, exactly: 1000/d, answers of 400, 400, 200 tokens: the headers before each debit, refused at 0 with the body, Retry-After and Content-Type; C1 not called; the access log; the metrics
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=1000/d;
--- plan: 200u100.300.400,200u100.300.400,200u50.150.200,200u1.1.2
--- pipelined_requests eval
[("POST /chat\n{\"prompt\": \"x\"}") x 4,
 "GET /calls?iu=1",
 "GET /metrics"]
--- error_code eval
[200, 200, 200, 429, 200, 200]
--- response_headers_like eval
["X-RateLimit-Limit-Tokens: 1000\nX-RateLimit-Remaining-Tokens: 1000\nX-RateLimit-Reset-Tokens: 0s",
 "X-RateLimit-Limit-Tokens: 1000\nX-RateLimit-Remaining-Tokens: 600\nX-RateLimit-Reset-Tokens: " . main::about('9h36m0', '9h35m59'),
 "X-RateLimit-Limit-Tokens: 1000\nX-RateLimit-Remaining-Tokens: 200\nX-RateLimit-Reset-Tokens: " . main::about('19h12m0', '19h11m59'),
 "X-RateLimit-Limit-Tokens: 1000\nX-RateLimit-Remaining-Tokens: 0\nX-RateLimit-Reset-Tokens: " . main::about('24h0m0', '23h59m59') . "\nRetry-After: 8[67]\nContent-Type: application/json",
 "", ""]
--- response_body_like eval
['\Aanswer from m\z', '\Aanswer from m\z', '\Aanswer from m\z',
 '\A' . main::refusal('d', 'u', 1000, '1m2[67](?:\.\d{1,3})?s') . '\z',
 '\Acalls=3\n- 1 m iu=- len=\d+\n- 2 m iu=- len=\d+\n- 3 m iu=- len=\d+\n/chat 200 rem=1000 key=a error=-\n/chat 200 rem=600 key=a error=-\n/chat 200 rem=200 key=a error=-\n/chat 429 rem=0 key=a error=rate_limit_exceeded\n\z',
 '\A' . main::metrics('u', limited => 1, usage => 1000, estimate => 0, keys => 1, dropped => 0) . '(?=[\s\S]*(?m:^c1_requests_total\{[^}]*outcome="rate_limited"\} 1$))(?=[\s\S]*(?m:^c1_requests_total\{mode="prompt",stream="0",outcome="ok"\} 3$))']



=== TEST 33: a refusal counts in c1_requests_total as outcome "rate_limited" under the request's mode and stream (its shape was known: the check comes after the body is read), never mode "none"
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=10/d;
--- plan: 200u5.5.10
--- request eval
main::seq({ r => "POST /chat", nb => 1 },
          { r => "POST /chat", nb => 1 },
          { r => "POST /s/chat", nb => 1 },
          { r => "POST /v1/chat/completions", b => "O", nb => 1 },
          { r => "POST /v1/chat/completions", b => "OS", nb => 1 },
          { r => "GET /metrics", grep => 'rate_limited' })
--- response_body_like eval
'\A' . main::ln(200, 10, 10, '0s', '-') . (main::ln(429, 10, 0, '[^ ]+', '\d+') x 4)
 . main::ln(200, '-', '-', '-', '-')
 . CORE::join('', map { '(?=[\s\S]*(?m:^c1_requests_total\{mode="' . $_->[0] . '",stream="' . $_->[1] . '",outcome="rate_limited"\} ' . $_->[2] . '$))' }
   ['none', 0, 0], ['none', 1, 0], ['prompt', 0, 1], ['prompt', 1, 1], ['openai', 0, 1], ['openai', 1, 1])



=== TEST 34: per minute, exactly: 10/m, answers of 3, 3, 4: refused at 0, Retry-After 6 (one token per 6 s), the reset 1m0s
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=10/m;
--- plan: 200u1.2.3,200u1.2.3,200u2.2.4,200u1.1.2
--- request eval
main::seq(({ r => "POST /chat" }) x 4, { r => "GET /calls" })
--- response_body_like eval
'\A' . main::ln(200, 10, 10, '0s', '-') . "answer from m\n"
 . main::ln(200, 10, 7, main::about(18, 17), '-') . "answer from m\n"
 . main::ln(200, 10, 4, main::about(36, 35), '-') . "answer from m\n"
 . main::ln(429, 10, 0, main::about('1m0', 59), 6) . main::refusal('m', 'u', 10, main::about(6, 5)) . "\n"
 . main::ln(200, '-', '-', '-', '-') . 'calls=3\n- 1 m\n- 2 m\n- 3 m\n/chat 200 rem=10 key=a error=-\n/chat 200 rem=7 key=a error=-\n/chat 200 rem=4 key=a error=-\n/chat 429 rem=0 key=a error=rate_limit_exceeded\n\n\z'



=== TEST 35: per hour, exactly, in the OpenAI shape: 100/h, answers of 40, 40, 20; the refused request is a stream request and gets the JSON refusal; Retry-After 36
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=100/h;
--- plan: 200u10.30.40,200u10.30.40,200u5.15.20,200u1.1.2
--- request eval
main::seq(({ r => "POST /v1/chat/completions", b => "O", nb => 1 }) x 3,
          { r => "POST /v1/chat/completions", b => "OS" },
          { r => "GET /calls" })
--- response_body_like eval
'\A' . main::ln(200, 100, 100, '0s', '-')
 . main::ln(200, 100, 60, main::about('24m0', '23m59'), '-')
 . main::ln(200, 100, 20, main::about('48m0', '47m59'), '-')
 . main::ln(429, 100, 0, main::about('1h0m0', '59m59'), 36) . main::refusal('h', 'u', 100, main::about(36, 35)) . "\n"
 . main::ln(200, '-', '-', '-', '-') . 'calls=3\n- 1 m\n- 2 m\n- 3 m\n(?:/v1/chat/completions 200 rem=\d+ key=a error=-\n){3}/v1/chat/completions 429 rem=0 key=a error=rate_limit_exceeded\n\n\z'



=== TEST 36: burst: 10/m burst=5 holds 15 (the Limit header and the message say 15)
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=10/m burst=5;
--- plan: 200u1.4.5
--- request eval
main::seq(({ r => "POST /chat", nb => 1 }) x 3, { r => "POST /chat" })
--- response_body_like eval
'\A' . main::ln(200, 15, 15, '0s', '-')
 . main::ln(200, 15, 10, main::about(30, 29), '-')
 . main::ln(200, 15, 5, main::about('1m0', 59), '-')
 . main::ln(429, 15, 0, main::about('1m30', '1m29'), 6) . main::refusal('m', 'u', 15, main::about(6, 5)) . '\n\z'



=== TEST 37: count=total (the default) debits usage.total_tokens when C1 gives it (200, not 150), else prompt + completion (150)
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=1000/d;
--- plan: 200u100.50.200,200u100.50,200u300.100.400,200u1.1.2
--- pipelined_requests eval
[("POST /chat\n{\"prompt\": \"x\"}") x 4]
--- error_code eval
[200, 200, 200, 200]
--- response_headers eval
["X-RateLimit-Limit-Tokens: 1000\nX-RateLimit-Remaining-Tokens: 1000",
 "X-RateLimit-Limit-Tokens: 1000\nX-RateLimit-Remaining-Tokens: 800",
 "X-RateLimit-Limit-Tokens: 1000\nX-RateLimit-Remaining-Tokens: 650",
 "X-RateLimit-Limit-Tokens: 1000\nX-RateLimit-Remaining-Tokens: 250"]



=== TEST 38: count=completion debits usage.completion_tokens, whole answers (with and without total_tokens) and a stream's usage chunk
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=1000/d count=completion;
--- plan: 200u300.100.400,200u300.100,streamu300.50.350,200u1.1.2
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "POST /chat\n{\"prompt\": \"x\"}",
 "POST /s/chat\n{\"prompt\": \"x\"}",
 "POST /chat\n{\"prompt\": \"x\"}",
 "GET /metrics"]
--- error_code eval
[200, 200, 200, 200, 200]
--- response_headers eval
["X-RateLimit-Limit-Tokens: 1000\nX-RateLimit-Remaining-Tokens: 1000",
 "X-RateLimit-Limit-Tokens: 1000\nX-RateLimit-Remaining-Tokens: 900",
 "X-RateLimit-Limit-Tokens: 1000\nX-RateLimit-Remaining-Tokens: 800",
 "X-RateLimit-Limit-Tokens: 1000\nX-RateLimit-Remaining-Tokens: 750",
 ""]
--- response_body_like eval
['\Aanswer from m\z', '\Aanswer from m\z', '\Aone two three\z', '\Aanswer from m\z',
 '\A' . main::metrics('u', limited => 0, usage => 251, estimate => 0)]



=== TEST 39: a minute limit and a day limit: the one with the least remaining is reported (the first in config order on a tie), the minute one refuses; the metrics count each bucket's debit, and each bucket as a key
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=40/m;
c1_limit_tokens zone=u key=$http_x_user rate=30/d count=completion;
--- plan: 200u10.2.12
--- request eval
main::seq(({ r => "POST /chat", nb => 1 }) x 4, { r => "POST /chat" },
          { r => "GET /metrics", grep => "c1_limit" })
--- response_body_like eval
'\A' . main::ln(200, 30, 30, '0s', '-')
 . main::ln(200, 40, 28, main::about(18, 17), '-')
 . main::ln(200, 40, 16, main::about(36, 35), '-')
 . main::ln(200, 40, 4, main::about(54, 53), '-')
 . main::ln(429, 40, 0, main::about('1m12', '1m11'), '1[34]') . main::refusal('m', 'u', 40, '1[34](?:\.\d{1,3})?s') . "\n"
 . main::metrics('u', limited => 1, usage => 56, estimate => 0, keys => 2)



=== TEST 40: two limits at 0: the message names the first in config order, Retry-After waits for both (the day's 8640 s); in reverse order the day limit is named
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=10/m;
c1_limit_tokens zone=u key=$http_x_user rate=10/d;
location = /r/chat {
    c1_limit_tokens zone=u key=$http_x_user rate=10/d;
    c1_limit_tokens zone=u key=$http_x_user rate=10/m;
    c1_pass /_c1;
}
--- plan: 200u5.5.10
--- request eval
main::seq({ r => "POST /chat", nb => 1 }, { r => "POST /chat" }, { r => "POST /r/chat" })
--- response_body_like eval
'\A' . main::ln(200, 10, 10, '0s', '-')
 . main::ln(429, 10, 0, main::about('1m0', 59), 8640) . main::refusal('m', 'u', 10, main::about('2h24m0', '2h23m59')) . "\n"
 . main::ln(429, 10, 0, main::about('24h0m0', '23h59m59'), 8640) . main::refusal('d', 'u', 10, main::about('2h24m0', '2h23m59')) . '\n\z'



=== TEST 41: one bucket per (zone, unit, count, key): two limits whose keys evaluate alike are debited once; apart, each is debited
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=1000/d;
c1_limit_tokens zone=u key=$http_x_who rate=1000/d;
--- plan: 200u50.50.100
--- request eval
main::seq(({ r => "POST /chat", h => { "X-Who" => "a" }, nb => 1 }) x 3,
          ({ r => "POST /chat", h => { "X-Who" => "b" }, nb => 1 }) x 2,
          { r => "GET /metrics", grep => "c1_limit" })
--- response_body_like eval
'\A' . main::ln(200, 1000, 1000, '0s', '-')
 . main::ln(200, 1000, 900, '[^ ]+', '-')
 . main::ln(200, 1000, 800, '[^ ]+', '-')
 . main::ln(200, 1000, 700, '[^ ]+', '-')
 . main::ln(200, 1000, 600, '[^ ]+', '-')
 . main::metrics('u', limited => 0, usage => 700, estimate => 0, keys => 2)



=== TEST 42: an empty key is not limited: no headers, C1 called, nothing debited; a request with the key is
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=1000/d;
--- plan: 200u300.300.600
--- request eval
main::seq(({ r => "POST /chat", u => "" }) x 3,
          { r => "POST /chat", nb => 1 },
          { r => "POST /chat", nb => 1 },
          { r => "GET /calls" },
          { r => "GET /metrics", grep => "c1_limit" })
--- response_body_like eval
'\A' . (main::ln(200, '-', '-', '-', '-') . "answer from m\n") x 3
 . main::ln(200, 1000, 1000, '0s', '-')
 . main::ln(200, 1000, 400, '[^ ]+', '-')
 . main::ln(200, '-', '-', '-', '-')
 . 'calls=5\n- 1 m\n- 2 m\n- 3 m\n- 4 m\n- 5 m\n(?:/chat 200 rem=- key=- error=-\n){3}/chat 200 rem=1000 key=a error=-\n/chat 200 rem=400 key=a error=-\n\n'
 . main::metrics('u', limited => 0, usage => 1200, estimate => 0, keys => 1)



=== TEST 43: an empty key, streamed: no limit in effect, so C1 gets the client's request as it was (no stream_options added, the client's own include_usage kept and its usage chunk relayed)
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=1000/d;
--- plan: streamu10.5.15
--- request eval
main::seq({ r => "POST /v1/chat/completions", b => "OS", u => "" },
          { r => "POST /v1/chat/completions", b => "OSU", u => "" },
          { r => "GET /calls?iu=1" })
--- response_body_like eval
'\A' . main::ln(200, '-', '-', '-', '-') . quotemeta($main::Stream) . '\n'
 . main::ln(200, '-', '-', '-', '-') . quotemeta($main::StreamUsage) . '\n'
 . main::ln(200, '-', '-', '-', '-')
 . 'calls=2\n- 1 m iu=- len=\d+\n- 2 m iu=true len=\d+\n'



=== TEST 44: the answer that runs over is let through (400 left, 600 spent), the next is refused until it refills to 1 (201 tokens: 17366.4 s)
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=1000/d;
--- plan: 200u100.500.600
--- request eval
main::seq({ r => "POST /chat" }, { r => "POST /chat" }, { r => "POST /chat" }, { r => "GET /calls" })
--- response_body_like eval
'\A' . main::ln(200, 1000, 1000, '0s', '-') . "answer from m\n"
 . main::ln(200, 1000, 400, main::about('14h24m0', '14h23m59'), '-') . "answer from m\n"
 . main::ln(429, 1000, 0, main::about('28h48m0', '28h47m59'), '1736[67]') . main::refusal('d', 'u', 1000, '4h49m2[67](?:\.\d{1,3})?s') . "\n"
 . main::ln(200, '-', '-', '-', '-') . 'calls=2\n'



=== TEST 45: reset: 600/m (10 tokens a second) spent at once: refused with Retry-After 1, allowed again 0.5 s later (5 tokens back); the warn line of the refusal
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=600/m;
--- plan: 200u300.300.600
--- request eval
main::seq({ r => "POST /chat", nb => 1 }, { r => "POST /chat" }, { sleep => 0.5 },
          { r => "POST /chat", nb => 1 }, { r => "GET /calls" })
--- response_body_like eval
'\A' . main::ln(200, 600, 600, '0s', '-')
 . main::ln(429, 600, 0, main::about('1m0', 59), 1) . main::refusal('m', 'u', 600, '(?:\d{1,3}ms|1s)') . "\n"
 . main::ln(200, 600, '[5-9]', '5\d(?:\.\d{1,3})?s', '-')
 . main::ln(200, '-', '-', '-', '-') . 'calls=2\n'
--- error_log eval
qr/\[warn\] [^\n]*c1: tokens limited by zone "u", retry in 1 s,/
--- timeout: 5



=== TEST 46: the reset in milliseconds (one token at 600/m: 100 ms), then 0s once full again
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=600/m;
--- plan: 200u0.1.1
--- request eval
main::seq({ r => "POST /chat", nb => 1 }, { r => "POST /chat", nb => 1 }, { sleep => 0.3 },
          { r => "POST /chat", nb => 1 })
--- response_body_like eval
'\A' . main::ln(200, 600, 600, '0s', '-')
 . main::ln(200, 600, 599, '(?:100|[1-9]?\d)ms', '-')
 . main::ln(200, 600, 600, '0s', '-') . '\z'



=== TEST 47: a prompt-mode stream (text/plain): C1 asked for include_usage, debited from the usage chunk (15), the client never sees it; the headers in the stream's header
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=1000/d;
--- plan: streamu10.5.15
--- request eval
main::seq({ r => "POST /s/chat", b => "T" }, { r => "POST /s/chat", b => "T" },
          { r => "GET /calls?iu=1" }, { r => "GET /metrics", grep => "c1_limit" })
--- response_body_like eval
'\A' . main::ln(200, 1000, 1000, '0s', '-') . "one two three\n"
 . main::ln(200, 1000, 985, main::about('21m36', '21m35'), '-') . "one two three\n"
 . main::ln(200, '-', '-', '-', '-') . 'calls=2\n- 1 m iu=true len=\d+\n- 2 m iu=true len=\d+\n/s/chat 200 rem=1000 key=a error=-\n/s/chat 200 rem=985 key=a error=-\n\n'
 . main::metrics('u', usage => 30, estimate => 0)



=== TEST 48: an OpenAI-shape stream from a client that did not ask for usage (no stream_options, or include_usage false): C1 asked for it, the usage chunk kept from the client, debited
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=1000/d;
--- plan: streamu10.5.15
--- request eval
main::seq({ r => "POST /v1/chat/completions", b => "OS" },
          { r => "POST /v1/chat/completions", b => "OSF" },
          { r => "POST /v1/chat/completions", b => "OS", nb => 1 },
          { r => "GET /calls?iu=1" })
--- response_body_like eval
'\A' . main::ln(200, 1000, 1000, '0s', '-') . quotemeta($main::Stream) . '\n'
 . main::ln(200, 1000, 985, '[^ ]+', '-') . quotemeta($main::Stream) . '\n'
 . main::ln(200, 1000, 970, '[^ ]+', '-')
 . main::ln(200, '-', '-', '-', '-') . 'calls=3\n- 1 m iu=true len=\d+\n- 2 m iu=true len=\d+\n- 3 m iu=true len=\d+\n'



=== TEST 49: an OpenAI-shape stream from a client that asked for include_usage: it gets the usage chunk as C1 sent it; debited
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=1000/d;
--- plan: streamu10.5.15
--- request eval
main::seq({ r => "POST /v1/chat/completions", b => "OSU" },
          { r => "POST /v1/chat/completions", b => "OSU", nb => 1 },
          { r => "GET /metrics", grep => "c1_limit" })
--- response_body_like eval
'\A' . main::ln(200, 1000, 1000, '0s', '-') . quotemeta($main::StreamUsage) . '\n'
 . main::ln(200, 1000, 985, '[^ ]+', '-')
 . main::metrics('u', usage => 30, estimate => 0)



=== TEST 50: a stream without usage (OpenAI shape): the estimate, ceil(bytes sent to C1 / 4) + ceil(13 / 4), counted as source="estimate"
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=1000/d;
--- plan: stream
--- request eval
main::seq({ r => "POST /v1/chat/completions", b => "OS" },
          { est => [1, 13, 1000] },
          { r => "GET /metrics", grep => 'source="estimate"' },
          { r => "GET /metrics", grep => 'source="usage"' },
          { r => "POST /v1/chat/completions", b => "OS", nb => 1 },
          { r => "GET /calls?iu=1" })
--- response_body_like eval
'\A' . main::ln(200, 1000, 1000, '0s', '-') . quotemeta($main::Stream) . '\n'
 . 'est=(\d+) left=(\d+)\n'
 . main::ln(200, '-', '-', '-', '-') . 'c1_limit_debited_tokens_total\{zone="u",source="estimate"\} \1\n'
 . main::ln(200, '-', '-', '-', '-') . 'c1_limit_debited_tokens_total\{zone="u",source="usage"\} 0\n'
 . main::ln(200, 1000, '\2', '[^ ]+', '-')
 . main::ln(200, '-', '-', '-', '-') . 'calls=2\n- 1 m iu=true len=\d+\n- 2 m iu=true len=\d+\n'



=== TEST 51: the estimate counts a stream's content as C1 escaped it in the OpenAI shape (18 bytes), unescaped in prompt mode (15 bytes)
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=1000/d;
--- plan: streamx
--- request eval
main::seq({ r => "POST /s/chat", b => "T" },
          { est => [1, 15, 1000] },
          { r => "POST /s/chat", b => "T", nb => 1 },
          { r => "POST /v1/chat/completions", b => "OS", u => "b", nb => 1 },
          { est => [3, 18, 1000] },
          { r => "POST /v1/chat/completions", b => "OS", u => "b", nb => 1 })
--- response_body_like eval
'\A' . main::ln(200, 1000, 1000, '0s', '-') . "one \"two\"\nthree\n"
 . 'est=(\d+) left=(\d+)\n'
 . main::ln(200, 1000, '\2', '[^ ]+', '-')
 . main::ln(200, 1000, 1000, '0s', '-')
 . 'est=(\d+) left=(\d+)\n'
 . main::ln(200, 1000, '\4', '[^ ]+', '-') . '\z'



=== TEST 52: a whole answer without usage: the estimate from the request's bytes and the content's length (13), prompt and OpenAI shape
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=1000/d;
--- plan: 200
--- request eval
main::seq({ r => "POST /chat", nb => 1 },
          { est => [1, 13, 1000] },
          { r => "POST /chat", nb => 1 },
          { r => "POST /v1/chat/completions", b => "O", u => "b", nb => 1 },
          { est => [3, 13, 1000] },
          { r => "POST /v1/chat/completions", b => "O", u => "b", nb => 1 },
          { r => "GET /metrics", grep => 'source="usage"' })
--- response_body_like eval
'\A' . main::ln(200, 1000, 1000, '0s', '-')
 . 'est=(\d+) left=(\d+)\n'
 . main::ln(200, 1000, '\2', '[^ ]+', '-')
 . main::ln(200, 1000, 1000, '0s', '-')
 . 'est=(\d+) left=(\d+)\n'
 . main::ln(200, 1000, '\4', '[^ ]+', '-')
 . main::ln(200, '-', '-', '-', '-') . 'c1_limit_debited_tokens_total\{zone="u",source="usage"\} 0\n\z'



=== TEST 53: C1's own 429 is relayed with C1's Retry-After (else 1), C1's 500 and an unreachable C1 as they are: the headers, nothing debited
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=1000/d;
--- plan: 429ra7,429,500,200u10.5.15,200u1.1.2
--- extra
    location = /dead/chat { c1_pass /_dead; }
    location = /_dead {
        internal;
        proxy_connect_timeout 1s;
        proxy_pass http://127.0.0.1:$TEST_NGINX_C1_CLOSED_PORT/v1/embed/chat/completions;
    }
--- request eval
main::seq({ r => "POST /chat" }, { r => "POST /chat" }, { r => "POST /dead/chat", nb => 1 },
          { r => "POST /chat" }, { r => "POST /chat", nb => 1 }, { r => "POST /chat", nb => 1 },
          { r => "GET /metrics", grep => "c1_limit" })
--- response_body_like eval
'\A' . main::ln(429, 1000, 1000, '0s', 7) . main::mock_error(429) . "\n"
 . main::ln(429, 1000, 1000, '0s', 1) . main::mock_error(429) . "\n"
 . main::ln(502, 1000, 1000, '0s', '-')
 . main::ln(500, 1000, 1000, '0s', '-') . main::mock_error(500) . "\n"
 . main::ln(200, 1000, 1000, '0s', '-')
 . main::ln(200, 1000, 985, '[^ ]+', '-')
 . main::metrics('u', limited => 0, usage => 17, estimate => 0)



=== TEST 54: threads: turns count (refused at 0), the thread's GET and DELETE and the thread API are not counted and carry no headers, even for a key with nothing left
--- http_config
    c1_history_zone zone=threads:1m;
--- c1
c1_history threads;
c1_limit_tokens zone=u key=$http_x_user rate=100/d;
--- plan: 200u30.30.60
--- extra
    location /api/threads/ { c1_threads threads; }
--- request eval
main::seq({ r => "POST /chat", b => '{"prompt": "one", "threadId": "t1"}' },
          { r => "POST /chat", b => '{"prompt": "two", "threadId": "t1"}', nb => 1 },
          { r => "POST /chat", b => '{"prompt": "three", "threadId": "t1"}', nb => 1 },
          { r => "GET /chat?threadId=t1", nb => 1 },
          { r => "GET /api/threads/get", nb => 1 },
          { r => "GET /api/threads/get/t1", nb => 1 },
          { r => "DELETE /chat?threadId=t1" },
          { r => "GET /calls" },
          { r => "GET /metrics", grep => "c1_limit" })
--- response_body_like eval
'\A' . main::ln(200, 100, 100, '0s', '-') . "answer from m\n"
 . main::ln(200, 100, 40, '[^ ]+', '-')
 . main::ln(429, 100, 0, '[^ ]+', '\d+')
 . main::ln(200, '-', '-', '-', '-') x 3
 . main::ln(200, '-', '-', '-', '-') . '\{"deleted":true\}\n'
 . main::ln(200, '-', '-', '-', '-') . 'calls=2\n- 1 m\n- 2 m\n/chat 200 rem=100 key=a error=-\n/chat 200 rem=40 key=a error=-\n/chat 429 rem=0 key=a error=rate_limit_exceeded\n/chat\?threadId=t1 200 rem=- key=- error=-\n/api/threads/get 200 rem=- key=- error=-\n/api/threads/get/t1 200 rem=- key=- error=-\n/chat\?threadId=t1 200 rem=- key=- error=-\n\n'
 . main::metrics('u', limited => 1, usage => 120)



=== TEST 55: requests refused before the check (400 empty prompt, 400 bad JSON, 405, 415) are not counted and carry no headers, even for a key with nothing left
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=10/d;
--- plan: 200u5.5.10
--- request eval
main::seq({ r => "POST /chat", nb => 1 }, { r => "POST /chat", nb => 1 },
          { r => "POST /chat", b => '{"prompt": ""}', nb => 1 },
          { r => "POST /chat", b => '{"prompt": ', nb => 1 },
          { r => "PUT /chat", b => "P", nb => 1 },
          { r => "POST /chat", h => { "Content-Type" => "application/xml" }, nb => 1 },
          { r => "GET /metrics", grep => "c1_limit" })
--- response_body_like eval
'\A' . main::ln(200, 10, 10, '0s', '-')
 . main::ln(429, 10, 0, '[^ ]+', '\d+')
 . main::ln(400, '-', '-', '-', '-')
 . main::ln(400, '-', '-', '-', '-')
 . main::ln(405, '-', '-', '-', '-')
 . main::ln(415, '-', '-', '-', '-')
 . main::metrics('u', limited => 1, usage => 10)



=== TEST 56: $c1_limit_key and $c1_limit_remaining: the reported limit's (add_header and the access log); not found without a limit in effect
--- c1
c1_limit_tokens zone=u key=u:$http_x_user rate=100/d count=completion;
c1_limit_tokens zone=u key=t:$http_x_team rate=150/d;
add_header X-Key $c1_limit_key always;
add_header X-Rem $c1_limit_remaining always;
location = /free/chat { c1_limit_tokens zone=u key=$http_x_none rate=1/d; c1_pass /_c1; }
--- plan: 200u10.5.60
--- more_headers
Content-Type: application/json
X-User: a
X-Team: t
--- pipelined_requests eval
["POST /chat\n{\"prompt\": \"x\"}",
 "POST /chat\n{\"prompt\": \"x\"}",
 "POST /free/chat\n{\"prompt\": \"x\"}",
 "GET /calls"]
--- error_code eval
[200, 200, 200, 200]
--- response_headers eval
["X-Key: u:a\nX-Rem: 100\nX-RateLimit-Limit-Tokens: 100\nX-RateLimit-Remaining-Tokens: 100",
 "X-Key: t:t\nX-Rem: 90\nX-RateLimit-Limit-Tokens: 150\nX-RateLimit-Remaining-Tokens: 90",
 "!X-Key\n!X-Rem\n!X-RateLimit-Limit-Tokens\n!X-RateLimit-Remaining-Tokens\n!X-RateLimit-Reset-Tokens",
 ""]
--- response_body_like eval
['\Aanswer from m\z', '\Aanswer from m\z', '\Aanswer from m\z',
 '\Acalls=3\n- 1 m\n- 2 m\n- 3 m\n/chat 200 rem=100 key=u:a error=-\n/chat 200 rem=90 key=t:t error=-\n/free/chat 200 rem=- key=- error=-\n\z']



=== TEST 57: a full zone (32k) filled with many keys: the least recently used dropped (and counted, and logged), a dropped key starts full
--- http_config
    c1_limit_tokens_zone zone=small:32k;
--- c1
c1_limit_tokens zone=small key=$http_x_user rate=1000/d;
--- plan: 200u50.50.100
--- request eval
main::seq({ r => "POST /chat", u => "k0", nb => 1 },
          { r => "POST /chat", u => "k0", nb => 1 },
          { r => "GET /metrics", grep => 'zone="small"' },
          { keys => ["f", 1, 300, 200] },
          { r => "POST /chat", u => "k0", nb => 1 },
          { r => "GET /metrics", grep => 'zone="small"' })
--- response_body_like eval
'\A' . main::ln(200, 1000, 1000, '0s', '-')
 . main::ln(200, 1000, 900, '[^ ]+', '-')
 . main::ln(200, '-', '-', '-', '-')
 . main::metrics('small', limited => 0, usage => 200, keys => 1, dropped => 0) . '[\s\S]*?'
 . 'keys: 300 answered, 0 refused, 0 other\n'
 . main::ln(200, 1000, 1000, '0s', '-')
 . main::ln(200, '-', '-', '-', '-')
 . main::metrics('small', limited => 0, usage => 30300, keys => '(?:[1-9]|[1-9]\d|[12]\d\d)', dropped => '[1-9]\d*')
--- error_log eval
qr/\[warn\] .*c1: c1_limit_tokens_zone "small" is full: dropped the least recently used key/
--- timeout: 30



=== TEST 58: C1's stream broken off after "one " (OpenAI shape, then prompt mode): the estimate from the request and the content that came (4 bytes)
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=1000/d;
--- plan: breakafter,200u1.1.2,breakafter,200u1.1.2
--- request eval
main::seq({ r => "POST /v1/chat/completions", b => "OS", nb => 1 },
          { est => [1, 4, 1000] },
          { r => "POST /v1/chat/completions", b => "OS", nb => 1 },
          { r => "POST /s/chat", b => "T", u => "b", nb => 1 },
          { est => [3, 4, 1000] },
          { r => "POST /s/chat", b => "T", u => "b", nb => 1 },
          { r => "GET /calls?iu=1" })
--- response_body_like eval
'\A' . main::ln(200, 1000, 1000, '0s', '-')
 . 'est=(\d+) left=(\d+)\n'
 . main::ln(200, 1000, '\2', '[^ ]+', '-')
 . main::ln(200, 1000, 1000, '0s', '-')
 . 'est=(\d+) left=(\d+)\n'
 . main::ln(200, 1000, '\4', '[^ ]+', '-')
 . main::ln(200, '-', '-', '-', '-')
 . 'calls=4\n- 1 m iu=true len=\d+\n- 2 m iu=true len=\d+\n- 3 m iu=true len=\d+\n- 4 m iu=true len=\d+\n'



=== TEST 59: a client that goes away mid-stream is debited the estimate of what C1 streamed until then ("one ", or "one two " if nginx saw it go only when "two " came)
--- c1
c1_limit_tokens zone=u key=$http_x_user rate=1000/d;
--- plan: slowafter,200u1.1.2
--- request eval
main::seq({ r => "POST /v1/chat/completions", b => "OS", gone => '"one "' },
          { sleep => 1.3 },
          { est => [1, 4, 1000] },
          { est => [1, 8, 1000] },
          { r => "POST /v1/chat/completions", b => "OS", nb => 1 },
          { r => "GET /metrics", grep => 'source="estimate"' })
--- response_body_like eval
'\Agone after "one "\n'
 . 'est=(\d+) left=(\d+)\nest=(\d+) left=(\d+)\n'
 . main::ln(200, 1000, '(?:\2|\4)', '[^ ]+', '-')
 . main::ln(200, '-', '-', '-', '-') . 'c1_limit_debited_tokens_total\{zone="u",source="estimate"\} (?:\1|\3)\n\z'
--- timeout: 5
