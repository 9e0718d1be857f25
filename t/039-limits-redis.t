# Token budgets (issue 16) with store=: the buckets of a
# c1_limit_tokens_zone live in a c1_history_redis store's Redis (a real
# redis-server this file starts on a unix socket in t/servroot-redis-039,
# FLUSHALL before every block). The mock C1 answers with the usage a
# request's query string tells it (t/lib/C1Usage.pm: ?p=PROMPT&c=COMPLETION,
# the key ?u=); rate=1000/d refills one token every 86.4 s, so the
# accounting is exact: the headers, the refusal at exactly 0 remaining, the
# 429 body, Retry-After, the warn line; burst=, count=completion, a
# stream's usage chunk, the estimate; a fast rate (600/m) refilling within
# a second with Redis's time; the buckets as keys under the prefix, with
# the refill time as their expiry; the metrics; C1's own errors debit
# nothing. A second nginx (node B, a C1Nginx on C1_TEST_PORT + 7, reached
# through /b/) on the same Redis: usage spent on one node refuses the key
# on the other. Redis shut down under a running nginx, down when nginx
# starts, stopped (SIGSTOP: the store's timeout): the requests go through,
# each failed check counted in c1_history_store_failures_total{op="limit"};
# Redis shut down while C1 answers: the debit lost, counted (op="debit").
# The configuration errors of store=.

use Test::Nginx::Socket 'no_plan';
use lib 't/lib';
use Cwd qw(abs_path);
use URI::Escape qw(uri_escape);
use C1Test;
use C1Redis;
use C1Nginx;
use C1Usage;

no_long_string();
no_shuffle();

our $R = C1Redis->start(name => '039');
$ENV{TEST_NGINX_REDIS_SOCK} = $R->{sock};

# a second one, on a loopback port, with a password
our $Pw = 'l1m1t-PW-39';
our $RP = C1Redis->start(name => '039-pw', port => C1Redis::port(0),
                         password => $Pw);
$ENV{TEST_NGINX_REDIS_PW_ADDR} = $RP->address;
$ENV{TEST_NGINX_REDIS_PW} = $Pw;

# node B: the same zone, store and limit on the same Redis
our $B = C1Nginx->new(port => ($ENV{C1_TEST_PORT} || 1990) + 7,
                      root => abs_path('t') . '/servroot-039b');
$ENV{TEST_NGINX_NODEB_PORT} = $B->port;
our $Store = "    c1_history_redis name=r server=unix:$R->{sock} prefix=lt: "
    . "timeout=500ms;\n    c1_limit_tokens_zone zone=u:1m store=r;\n";
$B->start($C1Usage::Http . $Store . <<'_EOC_' . $C1Usage::Locations . "}\n");
    server {
        listen 127.0.0.1:$C1_TEST_PORT;
        c1_model m;
        location = /chat {
            set $q $args;
            c1_limit_tokens zone=u key=$arg_u rate=1000/d;
            c1_pass /_c1;
        }
        location = /_c1 {
            internal;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:$C1_TEST_PORT/usage?$q;
        }
        location = /metrics { c1_metrics; }
_EOC_

# the durations from $lo to $hi ms, as OpenAI writes them
sub dur { C1Usage::dur_re(@_) }

# the refusal's body: its RESET a duration from $lo to $hi ms
sub refusal {
    my ($unit, $zone, $limit, $lo, $hi) = @_;
    my $d = C1Usage::dur_re($lo, $hi);
    $d =~ s/\A\\A//;
    $d =~ s/\\z\z//;
    return '\A' . quotemeta('{"error":{"message":"Rate limit reached for '
        . "tokens per $unit in c1_limit_tokens zone \\\"$zone\\\": Limit "
        . "$limit, Remaining 0. Please try again in ") . $d
        . quotemeta('.","type":"tokens","param":null,'
        . '"code":"rate_limit_exceeded"}}') . '\z';
}

# the headers of a checked request: limit, remaining (patterns), reset
# from $lo to $hi ms, Retry-After (a refusal's)
sub hdrs {
    my ($limit, $remaining, $lo, $hi, $retry) = @_;
    return "X-RateLimit-Limit-Tokens: $limit\n"
        . "X-RateLimit-Remaining-Tokens: $remaining\n"
        . "X-RateLimit-Reset-Tokens: " . dur($lo, $hi) . "\n"
        . (defined $retry ? "Retry-After: $retry\n" : '');
}

# one redis-cli command
sub rcli { "GET /redis?" . join '&', map { 'a=' . uri_escape($_) } @_ }

# a number from $lo to $hi, as a pattern
sub range { C1Usage::range_re(@_) }

our $Pttls = 'local r = {} for _, k in ipairs(redis.call("KEYS", ARGV[1])) '
    . 'do r[#r + 1] = redis.call("PTTL", k) end table.sort(r) return r';

# a small HTTP client in the test's nginx, for what must be computed from
# what C1 got (the estimate)
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
                local all = s:receive("*a") or ""
                s:close()
                local st, head, b = all:match("^HTTP/1%.%d (%d+)(.-)\r\n\r\n(.*)$")
                local h = {}
                for k, v in (head or ""):gmatch("\r\n([^:]+):%s*([^\r]*)") do
                    h[k:lower()] = v
                end
                return tonumber(st), h, b
            end
            local function req(method, path, body)
                return finish(start(method, path, body))
            end
_EOL_

our $Paused = 0;

add_block_preprocessor(sub {
    my $block = shift;

    if ($Paused) {
        $R->resume;
        $Paused = 0;
    }
    if (defined $block->redis_down) {
        $R->stop if $R->running;
    } else {
        $R->restart unless $R->running;
        $R->flushall;
    }
    $RP->flushall;
    if (defined $block->redis_paused) {
        $R->pause;
        $Paused = 1;
    }

    $block->set_value("http_config", $C1Usage::Http . $Store)
        unless defined $block->http_config;

    if (!defined $block->config) {
        $block->set_value("config", <<'_EOC_' . $C1Usage::Locations . $R->locations);
    c1_model m;
    set $c1_cli '_CLI_';
    location = /chat { set $q $args; c1_limit_tokens zone=u key=$arg_u rate=1000/d; c1_pass /_c1; }
    location = /vars {
        set $q $args;
        c1_limit_tokens zone=u key=$arg_u rate=1000/d;
        add_header X-Limit-Key $c1_limit_key always;
        add_header X-Limit-Remaining $c1_limit_remaining always;
        c1_pass /_c1;
    }
    location = /burst { set $q $args; c1_limit_tokens zone=u key=b:$arg_u rate=1000/d burst=500; c1_pass /_c1; }
    location = /compl { set $q $args; c1_limit_tokens zone=u key=$arg_u rate=1000/d count=completion; c1_pass /_c1; }
    location = /fast { set $q $args; c1_limit_tokens zone=u key=$arg_u rate=600/m; c1_pass /_c1; }
    location = /s { set $q $args; c1_stream on; c1_limit_tokens zone=u key=$arg_u rate=1000/d; c1_pass /_c1; }
    location = /two {
        set $q $args;
        c1_limit_tokens zone=u key=$arg_u rate=600/m;
        c1_limit_tokens zone=u key=$arg_u rate=1000/d;
        c1_pass /_c1;
    }
    location = /_c1 {
        internal;
        proxy_http_version 1.1;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/usage?$q;
    }
    location /b/ { proxy_pass http://127.0.0.1:$TEST_NGINX_NODEB_PORT/; }
    location = /metrics { c1_metrics; }
    # the lines of the error log at [error] with ?p= in them (plain text)
    location = /logcount {
        content_by_lua_block {
            local f = io.open(ngx.config.prefix() .. "logs/error.log")
            local n = 0
            for line in f:lines() do
                if line:find(" [error] ", 1, true)
                   and line:find(ngx.unescape_uri(ngx.var.arg_p), 1, true)
                then
                    n = n + 1
                end
            end
            f:close()
            ngx.print(n)
        }
    }
    location = /sleep { content_by_lua_block { ngx.sleep(tonumber(ngx.var.arg_s)) ngx.say("slept") } }

    # POSTs each ?r=PATH in turn: their statuses
    location = /drive {
        content_by_lua_block {
_LUAHTTP_
            local r = ngx.req.get_uri_args().r
            if type(r) ~= "table" then r = { r } end
            local out = {}
            for _, path in ipairs(r) do
                out[#out + 1] = tostring((req("POST", path, '{"prompt":"a"}')))
            end
            ngx.say(table.concat(out, " "))
        }
    }

    # Redis shut down while C1 answers (after the check, before the
    # debit): the answer goes through, the lost debit is counted
    location = /debit-lost {
        content_by_lua_block {
_LUAHTTP_
            local s = start("POST", "/chat?u=dl&p=100&c=0&delay=400", '{"prompt":"a"}')
            ngx.sleep(0.15)
            local f = io.popen(ngx.var.c1_cli .. " SHUTDOWN NOSAVE 2>&1")
            f:read("*a")
            f:close()
            local st, h, b = finish(s)
            local _, _, m = req("GET", "/metrics")
            local function failures(op)
                for line in m:gmatch("[^\n]+") do
                    if line:match("^c1_history_store_failures_total{")
                       and line:find('store="r"', 1, true)
                       and line:find('op="' .. op .. '"', 1, true)
                    then
                        return line:match(" (%d+)$")
                    end
                end
                return "none"
            end
            ngx.say("status=", st, " body=", b, " debit=", failures("debit"),
                    " limit=", failures("limit"))
        }
    }

    # the estimate of an answer without usage (?len=40: 40 bytes of
    # content), compared with the remaining the next request reports
    location = /estimate-check {
        content_by_lua_block {
_LUAHTTP_
            local st1, h1 = req("POST", "/chat?u=e&nousage=1&len=40", '{"prompt":"estimate me"}')
            local sent = #(ngx.shared.c1usage:get("body:e") or "")
            local st2, h2 = req("POST", "/chat?u=e&p=0&c=0", '{"prompt":"after"}')
            local before = tonumber(h1["x-ratelimit-remaining-tokens"])
            local expect = before and before - (math.ceil(sent / 4) + 10)
            ngx.say("status=", st1, ",", st2, " sent>0=", tostring(sent > 0),
                    " expected=", tostring(expect),
                    " got=", tostring(h2["x-ratelimit-remaining-tokens"]))
        }
    }
_EOC_
        my $c = $block->config;
        my $cli = $R->cli_command;
        $cli =~ s{'}{\\'}g;
        $c =~ s/_CLI_/$cli/;
        $c =~ s/_LUAHTTP_\n/$LuaHttp/g;
        $block->set_value("config", $c);
    }

    if (!defined $block->more_headers) {
        $block->set_value("more_headers", "Content-Type: application/json\n");
    }
});

run_tests();

__DATA__

=== TEST 1: store= naming a c1_history_zone: refused (only Redis stores)
--- zone_only: C1_STORE=redis makes the zone a Redis store
--- http_config
    c1_history_zone zone=h:1m;
    c1_limit_tokens_zone zone=u:1m store=h;
--- config
    location = /chat { c1_model m; c1_limit_tokens zone=u key=a rate=1000/d; c1_pass /_c1; }
--- must_die
--- error_log
unknown c1_history_redis store "h" in "c1_limit_tokens_zone"



=== TEST 2: store= naming no store at all: refused
--- http_config
    c1_history_redis name=r server=unix:/tmp/x.sock;
    c1_limit_tokens_zone zone=u:1m store=nosuch;
--- config
    location = /chat { c1_model m; c1_limit_tokens zone=u key=a rate=1000/d; c1_pass /_c1; }
--- must_die
--- error_log
unknown c1_history_redis store "nosuch" in "c1_limit_tokens_zone"



=== TEST 3: the store is looked up at the end of http{}: one defined after the zone works
--- http_config
    lua_shared_dict c1usage 1m;
    c1_limit_tokens_zone zone=u:1m store=later;
    c1_history_redis name=later server=unix:$TEST_NGINX_REDIS_SOCK prefix=lt:;
--- request
POST /chat?u=alice&p=5&c=5
{"prompt":"a"}
--- response_headers_like eval
::hdrs(1000, 1000, 0, 0)
--- response_body chomp
qq



=== TEST 4: exact accounting (rate=1000/d): remaining is capacity minus every debit; the answer that runs over goes through; refused at exactly 0 remaining, with the 429 body, Retry-After and the headers; C1 not called; another key untouched; logged at warn
--- request eval
["POST /chat?u=alice&p=199&c=300\n{\"prompt\":\"a\"}",
 "POST /chat?u=alice&p=200&c=300\n{\"prompt\":\"a\"}",
 "POST /chat?u=alice&p=200&c=300\n{\"prompt\":\"a\"}",
 "POST /chat?u=alice&p=1&c=1\n{\"prompt\":\"a\"}",
 "POST /chat?u=alice&p=1&c=1\n{\"prompt\":\"a\"}",
 "POST /chat?u=bob&p=10&c=0\n{\"prompt\":\"b\"}",
 "GET /usage/stats?k=alice"]
--- error_code eval
[200, 200, 200, 429, 429, 200, 200]
--- response_headers_like eval
[::hdrs(1000, 1000, 0, 0),
 ::hdrs(1000, 501, 43113600 - 3000, 43113600),
 ::hdrs(1000, 1, 86313600 - 3000, 86313600),
 ::hdrs(1000, 0, 129513600 - 3000, 129513600, 43200) . "Content-Type: application/json\n",
 ::hdrs(1000, 0, 129513600 - 3000, 129513600, 43200),
 ::hdrs(1000, 1000, 0, 0),
 ""]
--- response_body_like eval
['\Aqq\z', '\Aqq\z', '\Aqq\z',
 ::refusal('day (TPD)', 'u', 1000, 43200000 - 3000, 43200000),
 ::refusal('day (TPD)', 'u', 1000, 43200000 - 3000, 43200000),
 '\Aqq\z',
 '\Acalls=3 ']



=== TEST 5: a refusal is logged at warn: the zone, the wait (not the key: the lead's change of 04:16, STATUS)
--- request eval
"GET /drive?r=" . URI::Escape::uri_escape('/chat?u=alice&p=1000&c=0')
    . "&r=" . URI::Escape::uri_escape('/chat?u=alice&p=1&c=0')
--- response_body
200 429
--- error_log eval
qr/\[warn\] .*c1: tokens limited by zone "u", retry in 87 s/



=== TEST 6: $c1_limit_key and $c1_limit_remaining, on an answer and on a refusal
--- request eval
["POST /vars?u=alice&p=1000&c=0\n{\"prompt\":\"a\"}",
 "POST /vars?u=alice&p=1&c=0\n{\"prompt\":\"a\"}"]
--- error_code eval
[200, 429]
--- response_headers eval
["X-Limit-Key: alice\nX-Limit-Remaining: 1000\nX-RateLimit-Remaining-Tokens: 1000\n",
 "X-Limit-Key: alice\nX-Limit-Remaining: 0\nX-RateLimit-Remaining-Tokens: 0\n"]



=== TEST 7: an empty key is not limited: no headers, never refused, nothing in Redis
--- request eval
["POST /vars?p=5000&c=0\n{\"prompt\":\"a\"}",
 "POST /vars?u=&p=5000&c=0\n{\"prompt\":\"a\"}",
 ::rcli('DBSIZE')]
--- error_code eval
[200, 200, 200]
--- response_headers eval
["!X-RateLimit-Limit-Tokens\n!X-RateLimit-Remaining-Tokens\n!X-RateLimit-Reset-Tokens\n!X-Limit-Key\n!X-Limit-Remaining\n",
 "!X-RateLimit-Limit-Tokens\n!X-RateLimit-Remaining-Tokens\n!X-RateLimit-Reset-Tokens\n!X-Limit-Key\n!X-Limit-Remaining\n",
 ""]
--- response_body_like eval
['\Aqq\z', '\Aqq\z', '\A0\z']



=== TEST 8: burst=500: capacity 1500, refused once it is spent, Retry-After until one token is back (86.4 s)
--- request eval
["POST /burst?u=alice&p=1000&c=499\n{\"prompt\":\"a\"}",
 "POST /burst?u=alice&p=1&c=0\n{\"prompt\":\"a\"}",
 "POST /burst?u=alice&p=1&c=0\n{\"prompt\":\"a\"}"]
--- error_code eval
[200, 200, 429]
--- response_headers_like eval
[::hdrs(1500, 1500, 0, 0),
 ::hdrs(1500, 1, 1499 * 86400 - 3000, 1499 * 86400),
 ::hdrs(1500, 0, 129600000 - 3000, 129600000, 87)]
--- response_body_like eval
['\Aqq\z', '\Aqq\z', ::refusal('day (TPD)', 'u', 1500, 86400 - 3000, 87000)]



=== TEST 9: count=completion: only completion_tokens are debited
--- request eval
["POST /compl?u=alice&p=900&c=100\n{\"prompt\":\"a\"}",
 "POST /compl?u=alice&p=900&c=899\n{\"prompt\":\"a\"}",
 "POST /compl?u=alice&p=5&c=5\n{\"prompt\":\"a\"}",
 "POST /compl?u=alice&p=5&c=5\n{\"prompt\":\"a\"}"]
--- error_code eval
[200, 200, 200, 429]
--- response_headers_like eval
[::hdrs(1000, 1000, 0, 0), ::hdrs(1000, 900, 100 * 86400 - 3000, 100 * 86400),
 ::hdrs(1000, 1, 999 * 86400 - 3000, 999 * 86400),
 ::hdrs(1000, 0, 1004 * 86400 - 3000, 1004 * 86400, 432)]



=== TEST 10: a fast rate (600/m, 10 tokens/s) in Redis: refused, then let through again once a token is back (Retry-After: 1)
--- request eval
["POST /fast?u=alice&p=605&c=0\n{\"prompt\":\"a\"}",
 "POST /fast?u=alice&p=1&c=0\n{\"prompt\":\"a\"}",
 "GET /sleep?s=0.7",
 "POST /fast?u=alice&p=1&c=0\n{\"prompt\":\"a\"}"]
--- error_code eval
[200, 429, 200, 200]
--- response_headers_like eval
[::hdrs(600, 600, 0, 0),
 ::hdrs(600, 0, 60500 - 3000, 60500, 1),
 "",
 "X-RateLimit-Limit-Tokens: 600\nX-RateLimit-Remaining-Tokens: [2-9]\n"]
--- response_body_like eval
['\Aqq\z', ::refusal('min (TPM)', 'u', 600, 0, 1000), 'slept', '\Aqq\z']



=== TEST 11: a stream in prompt mode: C1 is asked for usage, the usage chunk (not shown to the client) is what is debited
--- request eval
["POST /s?u=alice&p=100&c=50\n{\"prompt\":\"a\"}",
 "GET /usage/stats?k=alice",
 "POST /chat?u=alice&p=0&c=0\n{\"prompt\":\"a\"}"]
--- response_headers_like eval
[::hdrs(1000, 1000, 0, 0), "", ::hdrs(1000, 850, 150 * 86400 - 3000, 150 * 86400)]
--- response_body_like eval
['\Aqq\z', '\Acalls=1 body=\d+ iu=true\z', '\Aqq\z']



=== TEST 12: no usage from C1: the estimate, ceil(bytes sent to C1 / 4) + ceil(content bytes / 4), is debited
--- request
GET /estimate-check
--- response_body_like eval
'\Astatus=200,200 sent>0=true expected=(\d+) got=\1\n\z'



=== TEST 13: the store's db= and prefix= hold the buckets too
--- http_config
    lua_shared_dict c1usage 1m;
    c1_history_redis name=r server=unix:$TEST_NGINX_REDIS_SOCK prefix=app9/ db=3;
    c1_limit_tokens_zone zone=u:1m store=r;
--- request eval
["POST /chat?u=alice&p=1000&c=0\n{\"prompt\":\"a\"}",
 "POST /chat?u=alice&p=1&c=0\n{\"prompt\":\"a\"}",
 ::rcli('DBSIZE'),
 ::rcli('-n', 3, 'DBSIZE'),
 ::rcli('-n', 3, 'EVAL', 'local n = 0 for _, k in ipairs(redis.call("KEYS", "*")) do if k:sub(1, 7) == "app9/b:" then n = n + 1 end end return n', 0)]
--- error_code eval
[200, 429, 200, 200, 200]
--- response_body_like eval
['\Aqq\z', 'rate_limit_exceeded', '\A0\z', '\A1\z', '\A1\z']



=== TEST 14: a Redis with a password (on a loopback port): the check and the debit work there, nothing failed
--- http_config
    lua_shared_dict c1usage 1m;
    c1_history_redis name=r server=$TEST_NGINX_REDIS_PW_ADDR password=$TEST_NGINX_REDIS_PW prefix=pw:;
    c1_limit_tokens_zone zone=u:1m store=r;
--- request eval
["POST /chat?u=alice&p=1000&c=0\n{\"prompt\":\"a\"}",
 "POST /chat?u=alice&p=1&c=0\n{\"prompt\":\"a\"}",
 "GET /metrics"]
--- error_code eval
[200, 429, 200]
--- response_body_like eval
['\Aqq\z', 'rate_limit_exceeded', '\A(?!(?s:.*)c1_history_store_failures_total\{[^}\n]*op="(?:limit|debit)"[^}\n]*\} [1-9])(?s:.*)c1_limit_debited_tokens_total\{zone="u",source="usage"\} 1000\n']



=== TEST 15: the buckets in Redis: one key under the prefix per limit in effect (two limits: two keys, "lt:b:..."), each expiring when its bucket is full again (600/m: 50 s for 500 tokens; 1000/d: 12 h); the reported limit is the one with less left
--- request eval
["POST /two?u=alice&p=300&c=200\n{\"prompt\":\"a\"}",
 ::rcli('DBSIZE'),
 ::rcli('EVAL', 'local n = 0 for _, k in ipairs(redis.call("KEYS", "*")) do if k:sub(1, 5) == "lt:b:" then n = n + 1 end end return n', 0),
 ::rcli('EVAL', $::Pttls, 0, 'lt:b:*'),
 "POST /two?u=alice&p=0&c=0\n{\"prompt\":\"a\"}",
 "POST /two?u=bob&p=100&c=0\n{\"prompt\":\"a\"}",
 ::rcli('DBSIZE')]
--- response_headers_like eval
[::hdrs(600, 600, 0, 0), "", "", "",
 "X-RateLimit-Limit-Tokens: 600\nX-RateLimit-Remaining-Tokens: 10\\d\n",
 ::hdrs(600, 600, 0, 0), ""]
--- response_body_like eval
['\Aqq\z', '\A2\z', '\A2\z',
 '\A' . ::range(47000, 50100) . '\n' . ::range(43197000, 43200100) . '\z',
 '\Aqq\z', '\Aqq\z', '\A4\z']



=== TEST 16: two limits both spent: the refusal names the first in config order (the minute's, its headers), Retry-After until both have a token again (the day's 86.4 s, not the minute's 40.1 s)
--- request eval
["POST /two?u=alice&p=1000&c=0\n{\"prompt\":\"a\"}",
 "POST /two?u=alice&p=1&c=0\n{\"prompt\":\"a\"}"]
--- error_code eval
[200, 429]
--- response_headers_like eval
[::hdrs(600, 600, 0, 0), ::hdrs(600, 0, 100000 - 3000, 100000, 87)]
--- response_body_like eval
['\Aqq\z', ::refusal('min (TPM)', 'u', 600, 86400 - 3000, 87000)]



=== TEST 17: the metrics: refusals and debits counted, no keys held in the zone (store=), none dropped
--- request eval
["POST /chat?u=alice&p=600&c=400\n{\"prompt\":\"a\"}",
 "POST /chat?u=alice&p=1&c=1\n{\"prompt\":\"a\"}",
 "POST /chat?u=alice&p=1&c=1\n{\"prompt\":\"a\"}",
 "GET /metrics"]
--- error_code eval
[200, 429, 429, 200]
--- response_body_like eval
['\Aqq\z', 'rate_limit_exceeded', 'rate_limit_exceeded',
 '(?ms)(?=.*^c1_limited_total\{zone="u"\} 2$)(?=.*^c1_limit_debited_tokens_total\{zone="u",source="usage"\} 1000$)(?=.*^c1_limit_debited_tokens_total\{zone="u",source="estimate"\} 0$)(?=.*^c1_limit_keys\{zone="u"\} 0$)(?=.*^c1_limit_dropped_total\{zone="u"\} 0$)']



=== TEST 18: two nodes on one Redis: usage spent on node A refuses the key on node B, and the other way round; the refused node's C1 is not called
--- request eval
["POST /chat?u=n&p=600&c=400\n{\"prompt\":\"a\"}",
 "POST /b/chat?u=n&p=1&c=1\n{\"prompt\":\"a\"}",
 "POST /b/chat?u=n2&p=999&c=1\n{\"prompt\":\"a\"}",
 "POST /chat?u=n2&p=1&c=1\n{\"prompt\":\"a\"}",
 "POST /b/chat?u=n3&p=300&c=0\n{\"prompt\":\"a\"}",
 "POST /chat?u=n3&p=300&c=0\n{\"prompt\":\"a\"}",
 "POST /b/chat?u=n3&p=0&c=0\n{\"prompt\":\"a\"}",
 "GET /b/usage/stats?k=n",
 "GET /usage/stats?k=n2"]
--- error_code eval
[200, 429, 200, 429, 200, 200, 200, 200, 200]
--- response_headers_like eval
[::hdrs(1000, 1000, 0, 0),
 ::hdrs(1000, 0, 86400000 - 3000, 86400000, 87),
 ::hdrs(1000, 1000, 0, 0),
 ::hdrs(1000, 0, 86400000 - 3000, 86400000, 87),
 ::hdrs(1000, 1000, 0, 0),
 ::hdrs(1000, 700, 300 * 86400 - 3000, 300 * 86400),
 ::hdrs(1000, 400, 600 * 86400 - 3000, 600 * 86400),
 "", ""]
--- response_body_like eval
['\Aqq\z',
 ::refusal('day (TPD)', 'u', 1000, 86400 - 3000, 87000),
 '\Aqq\z',
 ::refusal('day (TPD)', 'u', 1000, 86400 - 3000, 87000),
 '\Aqq\z', '\Aqq\z', '\Aqq\z',
 '\Acalls=0 ', '\Acalls=0 ']



=== TEST 19: Redis shut down under a running nginx: the check lets the requests through (a key with nothing left gets its answers), each failed check counted in c1_history_store_failures_total{op="limit"}, the cause logged once
--- request eval
["POST /chat?u=f&p=1000&c=0\n{\"prompt\":\"a\"}",
 "POST /chat?u=f&p=1&c=0\n{\"prompt\":\"a\"}",
 ::rcli('SHUTDOWN', 'NOSAVE'),
 "POST /chat?u=f&p=1&c=0\n{\"prompt\":\"a\"}",
 "POST /chat?u=f&p=1&c=0\n{\"prompt\":\"a\"}",
 "POST /chat?u=f&p=1&c=0\n{\"prompt\":\"a\"}",
 "GET /metrics",
 "GET /usage/stats?k=f",
 "GET /logcount?p=" . URI::Escape::uri_escape('c1: redis "r" '),
 "GET /logcount?p=" . URI::Escape::uri_escape('could not connect')]
--- error_code eval
[200, 429, 200, 200, 200, 200, 200, 200, 200, 200]
--- response_body_like eval
['\Aqq\z', 'rate_limit_exceeded', '', '\Aqq\z', '\Aqq\z', '\Aqq\z',
 '(?m)^c1_history_store_failures_total\{(?=[^}\n]*store="r")(?=[^}\n]*op="limit")[^}\n]*\} 3$',
 '\Acalls=4 ', '\A[12]\z', '\A1\z']



=== TEST 20: Redis down when nginx starts: the request goes through, the failure counted
--- redis_down
--- request eval
["POST /chat?u=d&p=10&c=0\n{\"prompt\":\"a\"}",
 "POST /chat?u=d&p=10&c=0\n{\"prompt\":\"a\"}",
 "GET /metrics"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
['\Aqq\z', '\Aqq\z',
 '(?m)^c1_history_store_failures_total\{(?=[^}\n]*store="r")(?=[^}\n]*op="limit")[^}\n]*\} 2$']



=== TEST 21: Redis shut down after the check, while C1 answers: the answer goes through, the debit is lost and counted in c1_history_store_failures_total{op="debit"}
--- request
GET /debit-lost
--- response_body_like eval
'\Astatus=200 body=qq debit=1 limit=(?:0|none)\n\z'



=== TEST 22: Redis stopped (SIGSTOP): each check times out (timeout=500ms) and lets the request through, counted
--- redis_paused
--- request eval
["POST /chat?u=p&p=10&c=0\n{\"prompt\":\"a\"}",
 "POST /chat?u=p&p=10&c=0\n{\"prompt\":\"a\"}",
 "GET /metrics"]
--- error_code eval
[200, 200, 200]
--- response_body_like eval
['\Aqq\z', '\Aqq\z',
 '(?m)^c1_history_store_failures_total\{(?=[^}\n]*store="r")(?=[^}\n]*op="limit")[^}\n]*\} 2$']
--- timeout: 10



=== TEST 23: Redis back: the next nginx limits again (nothing of the requests that went through was kept)
--- request eval
["POST /chat?u=d&p=1000&c=0\n{\"prompt\":\"a\"}",
 "POST /chat?u=d&p=1&c=0\n{\"prompt\":\"a\"}"]
--- error_code eval
[200, 429]
--- response_headers_like eval
[::hdrs(1000, 1000, 0, 0), ::hdrs(1000, 0, 86400000 - 3000, 86400000, 87)]



=== TEST 24: C1's own errors debit nothing: its 429 relayed with its Retry-After, a 500; both carry the headers of the check
--- request eval
["POST /chat?u=c&status=429&ra=5\n{\"prompt\":\"a\"}",
 "POST /chat?u=c&status=500\n{\"prompt\":\"a\"}",
 "POST /chat?u=c&p=0&c=0\n{\"prompt\":\"a\"}",
 "GET /usage/stats?k=c"]
--- error_code eval
[429, 500, 200, 200]
--- response_headers_like eval
[::hdrs(1000, 1000, 0, 0, 5), ::hdrs(1000, 1000, 0, 0), ::hdrs(1000, 1000, 0, 0), ""]
--- response_body_like eval
['', '', '\Aqq\z', '\Acalls=3 ']
