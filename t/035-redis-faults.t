# The Redis thread store's faults (issue 15), each against a real
# redis-server this file starts (C1Redis) and a real nginx with a master
# and a worker (C1Nginx): Redis down when nginx starts, Redis killed after
# the answer reached the client, Redis restarted, Redis stopped (kill
# -STOP), a wrong password, a wrong db, maxmemory reached, a key of ours
# overwritten with another type. Each: 503 history_unavailable before C1 is
# called (the mock's calls are counted), the cause logged at error once
# for many requests, no crash, the password in no log line and no
# response.
#
# Then the turns whose end cannot reach Redis (a C1 of its own, in an
# nginx of its own on port C1_TEST_PORT + 1, so that the worker can be
# stopped while C1 answers): a commit whose write fails at once (Redis
# killed while the worker was stopped: it crashed with signal 11,
# bench/repro/redis-send-fails.pl), a commit not sent because Redis is
# down, and the end of a turn that failed at C1 not sent because Redis is
# down (the thread stayed locked, 409 thread_busy, until the lock expired
# 30 s later: bench/repro/redis-stale-lock.pl). Each: the client's answer
# whole, the worker alive, and once Redis is back (appendonly: it keeps the
# lock) the thread free again within about two seconds, as it was.

use strict;
use warnings;

use Test::More;
use Cwd qw(abs_path);
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use lib 't/lib';
use C1Nginx;
use C1Mock;
use C1Client;
use C1Redis;

my $GoodPw = 's3cret-PW-9f2e';
my $BadPw = 'wrong-PW-71ab';

# threads, db99, wt: appendonly (a killed Redis keeps what it committed)
my $aof = C1Redis->start(name => '035-aof', appendonly => 1,
                         extra => ['--appendfsync', 'always']);
# not started yet: down when nginx starts
my $late = C1Redis->start(name => '035-late');
$late->kill;
my $pw = C1Redis->start(name => '035-pw', port => C1Redis::port(0),
                        password => $GoodPw);
my $oom = C1Redis->start(name => '035-oom');
# the turns whose end cannot reach Redis: appendonly, a lock taken stays
my $lost = C1Redis->start(name => '035-lost', appendonly => 1,
                          extra => ['--appendfsync', 'always']);

# their C1, in an nginx of its own: the echo of the messages (as a
# chat.completion, or a stream of one chunk when asked to stream); a last
# message with "slow" in it answered after 0.5 s, with "fail" 500 after
# 0.5 s; each one's arrival and answer (written, with its length) logged
# ("c1 got: PROMPT", "c1 answered: PROMPT")
my $mock = C1Nginx->new(port => $C1Nginx::Port + 1,
                        root => abs_path('t') . '/servroot-mock-035');
$mock->start(<<'_EOC_');
    server {
        listen 127.0.0.1:$C1_TEST_PORT;
        client_body_buffer_size 64k;

        location = /c1 {
            content_by_lua_block {
                local cjson = require "cjson"
                ngx.req.read_body()
                local req = cjson.decode(ngx.req.get_body_data())
                local seen = {}
                for _, m in ipairs(req.messages) do
                    seen[#seen + 1] = m.role .. ":" .. m.content
                end
                local last = req.messages[#req.messages].content
                ngx.log(ngx.NOTICE, "c1 got: ", last)
                if last:find("slow", 1, true) or last:find("fail", 1, true)
                then
                    ngx.sleep(0.5)
                end
                local body = "C1 failed"
                if last:find("fail", 1, true) then
                    ngx.status = 500
                elseif req.stream then
                    ngx.header["Content-Type"] = "text/event-stream"
                    body = "data: " .. cjson.encode({
                        id = "x", object = "chat.completion.chunk",
                        choices = {{ index = 0, delta = {
                            content = table.concat(seen, " | ") } }}
                    }) .. "\n\ndata: [DONE]\n\n"
                else
                    ngx.header["Content-Type"] = "application/json"
                    body = cjson.encode({
                        object = "chat.completion",
                        choices = {{ index = 0, finish_reason = "stop",
                            message = { role = "assistant",
                                        content = table.concat(seen, " | ") } }}
                    })
                end
                ngx.header["Content-Length"] = #body
                ngx.print(body)
                ngx.flush(true)
                ngx.log(ngx.NOTICE, "c1 answered: ", last)
            }
        }
    }
_EOC_
my $mock_port = $mock->port;

my $A = $aof->address;
my $L = $late->address;
my $P = $pw->address;
my $O = $oom->address;
my $S = $lost->address;

my $port = C1Nginx::start(<<"_EOC_" . $C1Mock::MockLocations . "}\n", workers => 1);
    c1_history_redis name=threads server=$A timeout=500ms;
    c1_history_redis name=late server=$L timeout=500ms;
    c1_history_redis name=db99 server=$A db=99 timeout=500ms;
    c1_history_redis name=wt server=$A prefix=wt: timeout=500ms;
    c1_history_redis name=badpw server=$P password=$BadPw timeout=500ms;
    c1_history_redis name=goodpw server=$P password=$GoodPw timeout=500ms;
    c1_history_redis name=oom server=$O timeout=500ms;
    c1_history_redis name=small server=$A prefix=small: max_reply=1k timeout=500ms;
    c1_history_redis name=lost server=$S timeout=500ms;

    server {
        listen 127.0.0.1:\$C1_TEST_PORT;

        c1_model m;
        c1_history_owner alice;

        location = /metrics { c1_metrics; }
        location = /nohistory { c1_pass /_c1; }
        location = /slow { c1_history threads; c1_stream on; c1_pass /_c1_slow; }
@{[ join '', map { "        location = /chat/$_ { c1_history $_; c1_pass /_c1; }\n" }
       qw(threads late db99 wt badpw goodpw oom small) ]}        location = /chat/lost { c1_history lost; c1_pass /_c1_own; }
        location = /stream/lost { c1_history lost; c1_stream on; c1_pass /_c1_own; }
        location /api/threads/ { c1_threads threads; }
        location /api/late/ { c1_threads late; }
        location /api/db99/ { c1_threads db99; }
        location /api/badpw/ { c1_threads badpw; }
        location /api/goodpw/ { c1_threads goodpw; }

        location = /_c1 {
            internal;
            proxy_pass http://127.0.0.1:\$C1_TEST_PORT/mock/echo-messages;
        }
        location = /_c1_own {
            internal;
            proxy_pass http://127.0.0.1:$mock_port/c1;
        }
        location = /_c1_slow {
            internal;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:\$C1_TEST_PORT/mock/sse?delay=150;
        }
_EOC_

my @responses;    # every response body, for the password check

# one request on a connection of its own: { status, body, secs, ... }
sub req {
    my ($method, $path, $body) = @_;
    my $c = C1Client->new(port => $port, timeout => 10);
    my $t0 = time;
    $c->send(defined $body
        ? C1Client::post($path, 'application/json', $body, close => 1)
              =~ s/^POST/$method/r
        : C1Client::get($path, method => $method, close => 1));
    my $r = $c->response;
    $r->{secs} = time - $t0;
    $c->close;
    push @responses, $r->{body};
    return $r;
}

sub turn {
    my ($store, $thread, $prompt) = @_;
    return req('POST', "/chat/$store",
               qq({"prompt":"$prompt","threadId":"$thread"}));
}

sub unavailable {
    my ($r, $what) = @_;
    is($r->{status}, 503, "$what: 503");
    like($r->{body}, qr/\A\{"error":\{"message":"[^"]+","type":"server_error","param":(?:null|"[^"]*"),"code":"history_unavailable"\}\}\z/,
         "$what: history_unavailable");
}

# (a mock request is logged when it ends, which may be a moment after the
# client has its answer)
sub mock_calls {
    sleep 0.1;
    open my $fh, '<', "$C1Nginx::Root/logs/access.log" or return 0;
    return scalar grep { m{"POST /mock/} } <$fh>;
}

sub log_from { substr(C1Nginx::error_log(), shift) }

sub metric {
    my $name = shift;
    my $m = req('GET', '/metrics')->{body};
    return $m =~ /^\Q$name\E (\d+)$/m ? $1 : 0;
}

# --- Redis down when nginx starts -----------------------------------------

my $pos = length C1Nginx::error_log();
my $calls = mock_calls();
my $r = req('POST', '/nohistory', '{"prompt":"no thread"}');
is($r->{status}, 200, 'Redis down at start: nginx serves, a prompt without a thread works');
is($r->{body}, 'user:no thread', 'Redis down at start: its answer');
is(mock_calls(), $calls + 1, 'the prompt without a thread called C1');
$calls = mock_calls();
my $slowest = 0;
for my $i (1 .. 8) {
    $r = turn('late', "d$i", "turn $i");
    unavailable($r, "Redis down at start: turn $i") if $i == 1 || $i == 8;
    $slowest = $r->{secs} if $r->{secs} > $slowest;
}
is(mock_calls(), $calls, 'Redis down: C1 was never called for a turn');
cmp_ok($slowest, '<=', 1.0, 'Redis down: no turn waited longer than timeout');
unavailable(req('GET', '/api/late/get'), 'Redis down: the thread list');
unavailable(req('GET', '/chat/late?threadId=d1'), 'Redis down: GET ?threadId=');
unavailable(req('DELETE', '/chat/late?threadId=d1'), 'Redis down: DELETE ?threadId=');
unavailable(req('POST', '/api/late/create', '{}'), 'Redis down: create');
my $log = log_from($pos);
my @err = grep { /\[error\]/ } split /\n/, $log;
is(scalar(grep { /c1: redis "late" \Q$L\E: / } @err), 1,
   'Redis down: the cause logged once for twelve requests')
    or diag join "\n", @err;
is(scalar(@err), 1, 'Redis down: nothing else at error') or diag join "\n", @err;

# Redis comes up: within about a second the turns work
$late->restart;
my $t0 = time;
my ($ok_after, $waited) = (undef, 0);
while (time - $t0 < 3) {
    $r = turn('late', 'up', 'hello');
    $waited = $r->{secs} if $r->{secs} > $waited;
    if ($r->{status} == 200) {
        $ok_after = time - $t0;
        last;
    }
    sleep 0.05;
}
ok(defined $ok_after, 'Redis up: a turn succeeds');
cmp_ok($ok_after // 99, '<=', 1.5, 'Redis up: within about a second');
cmp_ok($waited, '<=', 1.0, 'Redis up: no request waited longer than timeout');
is(turn('late', 'up', 'again')->{body}, 'user:hello | assistant:user:hello | user:again',
   'Redis up: the thread is kept in Redis');

# --- Redis restarted ------------------------------------------------------

$late->stop;
$waited = 0;
for my $i (1 .. 5) {
    $r = turn('late', 'up', "while down $i");
    unavailable($r, "Redis stopped: turn $i") if $i == 1 || $i == 5;
    $waited = $r->{secs} if $r->{secs} > $waited;
}
cmp_ok($waited, '<=', 1.0, 'Redis stopped: no request waited longer than timeout');
$late->restart;
$t0 = time;
($ok_after, $waited) = (undef, 0);
while (time - $t0 < 3) {
    $r = turn('late', 'again', 'hello');
    $waited = $r->{secs} if $r->{secs} > $waited;
    if ($r->{status} == 200) {
        $ok_after = time - $t0;
        last;
    }
    sleep 0.05;
}
cmp_ok($ok_after // 99, '<=', 1.5, 'Redis restarted: turns succeed again within about a second');
cmp_ok($waited, '<=', 1.0, 'Redis restarted: no request waited longer than timeout');

# --- kill -STOP: every waiting request ends within timeout ----------------

# (a turn that timed out may still take its thread's lock when Redis
# wakes up: the turn after is on a thread no stopped request touched)
is(turn('late', 'stop0', 'before')->{status}, 200, 'before kill -STOP: a turn');
$pos = length C1Nginx::error_log();
$late->pause;
my @c;
my @paths = ((map { ['POST', '/chat/late', qq({"prompt":"p$_","threadId":"stop$_"})] } 1 .. 4),
             ['GET', '/api/late/get'], ['GET', '/chat/late?threadId=stop'],
             ['POST', '/chat/late', '{"prompt":"p","threadId":"stop"}']);
$t0 = time;
for my $p (@paths) {
    my $c = C1Client->new(port => $port, timeout => 10);
    $c->send(defined $p->[2]
        ? C1Client::post($p->[1], 'application/json', $p->[2], close => 1)
        : C1Client::get($p->[1], close => 1));
    push @c, $c;
}
my $latest = 0;
my $all = 1;
for my $c (@c) {
    my $r = $c->response;
    my $secs = time - $t0;
    $latest = $secs if $secs > $latest;
    push @responses, $r->{body};
    $all &&= ($r->{status} // 0) == 503 && $r->{body} =~ /"code":"history_unavailable"/;
    $c->close;
}
ok($all, 'kill -STOP: every waiting request: 503 history_unavailable');
cmp_ok($latest, '<=', 0.5 + 0.5, 'kill -STOP: every one ended within timeout + 0.5 s');
@err = grep { /\[error\]/ } split /\n/, log_from($pos);
is(scalar(grep { /c1: redis "late" \Q$L\E: / } @err), 1,
   'kill -STOP: the cause logged at error once for seven requests')
    or diag join "\n", @err;
$late->resume;
$t0 = time;
$ok_after = undef;
while (time - $t0 < 3) {
    $r = turn('late', 'stop0', 'after');
    if ($r->{status} == 200) {
        $ok_after = time - $t0;
        last;
    }
    sleep 0.05;
}
cmp_ok($ok_after // 99, '<=', 1.5, 'kill -CONT: turns work again');
is($r->{body}, 'user:before | assistant:user:before | user:after',
   'kill -CONT: the thread has its turns, none of the stopped ones');
# the lock a stopped turn's command may still have taken when Redis woke
# up is freed by its token: the thread is free again soon
$t0 = time;
$ok_after = undef;
while (time - $t0 < 3) {
    $r = turn('late', 'stop', 'next');
    if ($r->{status} == 200) {
        $ok_after = time - $t0;
        last;
    }
    sleep 0.1;
}
cmp_ok($ok_after // 99, '<=', 2, 'kill -CONT: the thread a stopped turn named is free again')
    or diag "its last answer: $r->{status} $r->{body}; its lock: "
        . $late->pttl('c1:t:5:alice:stop:k') . ' ms';

# --- Redis killed after the answer reached the client ---------------------

is(turn('threads', 'keep', 'first')->{status}, 200, 'a turn kept in Redis');
my $before = req('GET', '/chat/threads?threadId=keep')->{body};
like($before, qr/"content":"first"/, 'the thread as it was');
my $failures = metric('c1_history_store_failures_total{store="threads",op="commit"}');
$pos = length C1Nginx::error_log();

my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die $!;
my $body = '{"prompt":"lost","threadId":"keep"}';
print $s "POST /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    . "Content-Type: application/json\r\nContent-Length: " . length($body)
    . "\r\n\r\n$body";
my $raw = '';
$t0 = time;
while (time - $t0 < 5 && $raw !~ /<content thesys/) {
    my $n = sysread($s, $raw, 65536, length $raw);
    last unless $n;
}
like($raw, qr/\AHTTP\/1\.1 200 .*<content thesys/s, 'a slow stream has begun');
$aof->kill;
$raw .= $_ while <$s>;
close $s;
my ($head, $chunked) = split /\r\n\r\n/, $raw, 2;
my $text = '';
while ($chunked =~ s/\A([0-9a-fA-F]+)\r\n//) {
    my $n = hex $1;
    last if $n == 0;
    $text .= substr($chunked, 0, $n, '');
    $chunked =~ s/\A\r\n//;
}
is($text, $C1Mock::StreamText, 'Redis killed mid-stream: the client gets its whole answer');
like($raw, qr/0\r\n\r\n\z/, 'Redis killed mid-stream: the response ends properly');
my $kept_line;
for (1 .. 40) {
    last if ($kept_line) = log_from($pos) =~ /^(.*did not keep this turn.*)$/m;
    sleep 0.05;
}
like($kept_line // '', qr/\[error\].*c1 history store "threads" did not keep this turn of thread "keep"/,
     'Redis killed mid-stream: the error log says the turn was not kept');
is(metric('c1_history_store_failures_total{store="threads",op="commit"}'), $failures + 1,
   'Redis killed mid-stream: c1_history_store_failures_total{store="threads",op="commit"} counts it');
$aof->restart;
$t0 = time;
my $after;
while (time - $t0 < 3) {
    $r = req('GET', '/chat/threads?threadId=keep');
    if ($r->{status} == 200) {
        $after = $r->{body};
        last;
    }
    sleep 0.05;
}
is($after, $before, 'after Redis restarted (appendonly): the thread is as it was');
is(turn('threads', 'other', 'new')->{status}, 200, 'after Redis restarted: a new turn works');
my $lock = $aof->pttl('c1:t:5:alice:keep:k');
ok($lock == -2 || ($lock > 0 && $lock <= 60000),
   "the lock of the turn that was not kept is gone or expires by itself ($lock)");

# --- a wrong password, a wrong db, maxmemory, a key of another type -------

sub fault {
    my ($store, $what, $cause, @extra) = @_;
    my $pos = length C1Nginx::error_log();
    my $calls = mock_calls();
    my @r = map { turn($store, "f$_", "turn $_") } 1 .. 6;
    push @r, map { $_->() } @extra;
    my $all = 1;
    for (@r) {
        $all &&= $_->{status} == 503
            && $_->{body} =~ /\A\{"error":\{"message":"[^"]+","type":"server_error","param":(?:null|"[^"]*"),"code":"history_unavailable"\}\}\z/;
    }
    ok($all, "$what: every request: 503 history_unavailable")
        or diag join "\n", map { "$_->{status} " . substr($_->{body}, 0, 120) } @r;
    is(mock_calls(), $calls, "$what: C1 was never called");
    my @lines = grep { /\[error\]/ } split /\n/, log_from($pos);
    is(scalar(grep { /c1: redis "$store" \S+: .*$cause/ } @lines), 1,
       "$what: the cause logged at error once for " . scalar(@r) . " requests")
        or diag join "\n", @lines;
}

fault('badpw', 'a wrong password', qr/.*auth/i,
      sub { req('GET', '/api/badpw/get') });
fault('db99', 'a wrong db', qr/SELECT (?:99 )?failed/,
      sub { req('GET', '/api/db99/get') },
      sub { req('GET', '/chat/db99?threadId=f1') });

my $g = turn('goodpw', 'g', 'hello');
is($g->{status}, 200, 'the right password: a turn works');
is(req('GET', '/api/goodpw/get')->{status}, 200, 'the right password: the list works');

is(turn('oom', 'm', 'fits')->{status}, 200, 'before maxmemory: a turn');
$oom->cli('EVAL', 'for i = 1, 2000 do redis.call("SET", "fill:" .. i, string.rep("x", 1000)) end return 1', 0);
$oom->cli('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
$oom->cli('CONFIG', 'SET', 'maxmemory', '1mb');
like($oom->cli('SET', 'probe', 'x'), qr/OOM command not allowed/, 'maxmemory reached');
fault('oom', 'maxmemory reached', qr/OOM command not allowed/);
$oom->cli('CONFIG', 'SET', 'maxmemory', '0');
is(turn('oom', 'm', 'room again')->{status}, 200, 'maxmemory lifted: turns work again');

is(turn('wt', 'w', 'hello')->{status}, 200, 'a thread kept under prefix wt:');
like(join(' ', $aof->keys('wt:t:5:alice:w:*')), qr/\Awt:t:5:alice:w:l wt:t:5:alice:w:m\z/,
     'its keys');
$aof->cli('DEL', 'wt:t:5:alice:w:l');
$aof->cli('SET', 'wt:t:5:alice:w:l', 'not a list');
{
    my $pos = length C1Nginx::error_log();
    my $calls = mock_calls();
    my @r = ((map { turn('wt', 'w', "turn $_") } 1 .. 5),
             req('GET', '/chat/wt?threadId=w'), req('GET', '/chat/wt?threadId=w'));
    my $all = 1;
    $all &&= $_->{status} == 503 && $_->{body} =~ /"code":"history_unavailable"/ for @r;
    ok($all, 'a key of another type: every request: 503 history_unavailable')
        or diag join "\n", map { "$_->{status} " . substr($_->{body}, 0, 120) } @r;
    is(mock_calls(), $calls, 'a key of another type: C1 was never called');
    my @lines = grep { /\[error\]/ } split /\n/, log_from($pos);
    is(scalar(grep { /c1: redis "wt" \S+: a key holds the wrong kind of value/ } @lines), 1,
       'a key of another type: the cause logged at error once for seven requests')
        or diag join "\n", @lines;
    is($aof->cli('GET', 'wt:t:5:alice:w:l'), 'not a list',
       'a key of another type: the module leaves it alone');
}

my $big = 'b' x 1500;
is(turn('small', 'big', $big)->{status}, 200, 'max_reply=1k: a turn of 1500 bytes is kept');
{
    my $pos = length C1Nginx::error_log();
    my $calls = mock_calls();
    my @r = ((map { turn('small', 'big', "turn $_") } 1 .. 4),
             req('GET', '/chat/small?threadId=big'), req('GET', '/chat/small?threadId=big'));
    my $all = 1;
    $all &&= $_->{status} == 503 && $_->{body} =~ /"code":"history_unavailable"/ for @r;
    ok($all, 'a reply larger than max_reply: every request: 503 history_unavailable')
        or diag join "\n", map { "$_->{status} " . substr($_->{body}, 0, 120) } @r;
    is(mock_calls(), $calls, 'a reply larger than max_reply: C1 was never called');
    my @lines = grep { /\[error\]/ } split /\n/, log_from($pos);
    is(scalar(grep { /c1: redis "small" \S+: .*a reply larger than/ } @lines), 1,
       'a reply larger than max_reply: the cause logged at error once for six requests')
        or diag join "\n", @lines;
}
is(turn('small', 'short', 'hi')->{status}, 200, 'max_reply=1k: a thread of small replies works');

# the scripts flushed from Redis (SCRIPT FLUSH): the connection that finds
# them gone gives one 503 and goes; the next loads them again
is(turn('wt', 'sf', 'one')->{status}, 200, 'SCRIPT FLUSH: a turn before');
is($aof->cli('SCRIPT', 'FLUSH'), 'OK', 'SCRIPT FLUSH done');
{
    my $pos = length C1Nginx::error_log();
    my $calls = mock_calls();
    my $r = turn('wt', 'sf', 'two');
    is($r->{status}, 503, 'SCRIPT FLUSH: the next turn: 503');
    like($r->{body}, qr/"code":"history_unavailable"/,
         'SCRIPT FLUSH: history_unavailable');
    is(mock_calls(), $calls, 'SCRIPT FLUSH: C1 was not called');
    like(log_from($pos), qr/\[error\] .*c1: redis "wt" \S+: answered an error: NOSCRIPT/,
         'SCRIPT FLUSH: the cause logged');
    $r = turn('wt', 'sf', 'three');
    is($r->{status}, 200, 'SCRIPT FLUSH: then a new connection loads them: 200');
    like($r->{body}, qr/user:one \| assistant:.* \| user:three\z/,
         'SCRIPT FLUSH: with the history kept before it');
}

# --- no crash, no password anywhere ----------------------------------------

$log = C1Nginx::error_log();
unlike($log, qr/\[alert\]|\[emerg\]|exited on signal|signal \d+/, 'no crash');
is(scalar(C1Nginx::workers()), 1, 'the worker is still there');
my $access = do {
    open my $fh, '<', "$C1Nginx::Root/logs/access.log" or die $!;
    local $/;
    <$fh>;
};
for my $secret ($GoodPw, $BadPw) {
    unlike($log, qr/\Q$secret\E/, "the password $secret is in no line of the error log");
    unlike($access, qr/\Q$secret\E/, "the password $secret is not in the access log");
    ok(!grep({ defined && /\Q$secret\E/ } @responses), "the password $secret is in no response");
}

# --- a turn's end that cannot reach Redis ------------------------------------

# a condition met within $secs (bounded polls)
sub within {
    my ($secs, $cond) = @_;
    my $t0 = time;
    while (time - $t0 < $secs) {
        return 1 if $cond->();
        sleep 0.02;
    }
    return $cond->() ? 1 : 0;
}

# a crash in the error log (not the master's notice of the SIGCHLD a
# worker stopped or continued sends it)
my $Crash = qr/\[alert\]|\[emerg\]|exited on signal|signal (?!17 \(SIGCHLD\))\d+/;


# Redis back: turns on the thread until one is 200 (bounded: 4 s); the
# first 200 and the seconds it took from now
sub free_again {
    my ($thread, $prompt) = @_;
    my $t0 = time;
    my @seen;
    while (time - $t0 < 4) {
        my $r = turn('lost', $thread, $prompt);
        push @seen, $r->{status} // 'none';
        return ($r, time - $t0, \@seen) if ($r->{status} // 0) == 200;
        sleep 0.1;
    }
    return (undef, 99, \@seen);
}

# one scenario: a first turn on $thread, then the turn $prompt sent and,
# once C1 has it, $fault->($worker) (Redis goes); its answer, then Redis
# restarted and the thread free again
sub lost_turn {
    my (%o) = @_;
    my ($what, $thread, $prompt) = @o{qw(what thread prompt)};
    my $lock = "c1:t:5:alice:$thread:k";

    my @w = C1Nginx::workers();
    my $r = turn('lost', $thread, 'first');
    is("$r->{status} $r->{body}", '200 user:first', "$what: a first turn");
    my $kept = req('GET', "/chat/lost?threadId=$thread")->{body};
    like($kept, qr/"content":"first"/, "$what: the thread as it was");
    my $failures = metric('c1_history_store_failures_total{store="lost",op="commit"}');
    my $pos = length C1Nginx::error_log();
    my $mpos = length $mock->error_log;

    my $c = C1Client->new(port => $port, timeout => 10);
    $c->send(C1Client::post($o{path} // '/chat/lost', 'application/json',
                            qq({"prompt":"$prompt","threadId":"$thread"})));
    ok(within(3, sub { substr($mock->error_log, $mpos) =~ /c1 got: \Q$prompt\E/ }),
       "$what: C1 has the turn");
    $o{fault}->($w[0], $mpos, $prompt);
    $r = $c->response;
    $c->close;
    push @responses, $r->{body};

    is($r->{status}, $o{status}, "$what: $o{status}")
        or diag "its answer: " . ($r->{error} // 'complete') . ', '
            . length($r->{body} // '') . ' bytes';
    is($r->{body}, $o{body}, "$what: the whole answer");
    ok($r->{complete}, "$what: the response ends as its framing says");
    my $line = $o{not_kept}
        ? qr/\[error\].*c1 history store "lost" did not keep this turn of thread "\Q$thread\E"/
        : $o{log_line};
    my $log;
    within(2, sub { ($log = log_from($pos)) =~ $line });
    like($log, $line, $o{not_kept}
         ? "$what: the error log says the turn was not kept"
         : "$what: the error log says why the turn failed");
    unlike($log, qr/did not keep this turn/,
           "$what: no turn was to be kept, none said not kept")
        unless $o{not_kept};
    # (the premise: the commit met the connection the killed Redis left:
    # its write failed at once (EPIPE: 6bbd6d0 and before, which write at
    # once), or the close was read in the same events, before the write
    # that was to come after them (60d9f6d))
    like($log, qr/\[info\].* send\(\) failed \(32: Broken pipe\)|\[error\].* c1: redis "lost" \S+: closed the connection/,
         "$what: the commit met the connection Redis left")
        if $o{epipe};
    unlike($log, $Crash, "$what: no crash, no alert")
        or diag $log;
    is_deeply([C1Nginx::workers()], \@w, "$what: the worker is the same ($w[0])");
    is(metric('c1_history_store_failures_total{store="lost",op="commit"}'),
       $failures + ($o{not_kept} ? 1 : 0),
       "$what: c1_history_store_failures_total{op=\"commit\"} "
       . ($o{not_kept} ? 'counts it' : 'unchanged'));

    # Redis back, with the lock the turn took (appendonly): freed by the
    # module, not by its expiry 30 s later
    $lost->restart;
    my ($ok, $secs, $seen) = free_again($thread, 'next');
    note sprintf "%s: Redis back: 200 after %.2f s (statuses: @$seen)",
                 $what, $secs;
    cmp_ok($secs, '<=', 2, "$what: Redis back: the next turn on the thread is 200 within 2 s")
        or diag "statuses: @$seen; its lock: " . $lost->pttl($lock) . ' ms';
    is($ok && $ok->{body}, 'user:first | assistant:user:first | user:next',
       "$what: the next turn's answer: the thread without the lost turn");
    is($lost->pttl($lock), -2, "$what: the lock key is gone");
    $r = turn('lost', $thread, 'again');
    is("$r->{status} $r->{body}",
       '200 user:first | assistant:user:first | user:next'
       . ' | assistant:user:first | assistant:user:first | user:next | user:again',
       "$what: the turn after it: 200, the thread has both");
    unlike(log_from($pos), $Crash, "$what: still no crash");
    is_deeply([C1Nginx::workers()], \@w, "$what: still the same worker");
}

sub killed_while_stopped {
    my ($w, $mpos, $prompt) = @_;
    kill 'STOP', $w;
    my $answered = within(3, sub {
        substr($mock->error_log, $mpos) =~ /c1 answered: \Q$prompt\E/ });
    $lost->kill;
    kill 'CONT', $w;
    ok($answered, 'C1 answered while the worker was stopped, Redis killed');
}

# (1) the worker stopped while C1 answers; Redis killed meanwhile; the
# worker continued: C1's answer is the first thing it reads, the commit
# goes to the connection Redis left (its write failed at once, EPIPE: it
# crashed, signal 11, before 6bbd6d0)
lost_turn(
    what => 'Redis killed, the worker stopped: a commit',
    thread => 's1', prompt => 'slow one',
    fault => \&killed_while_stopped,
    epipe => 1,
    status => 200,
    body => 'user:first | assistant:user:first | user:slow one',
    not_kept => 1);

# ... and the same for a streamed turn
lost_turn(
    what => 'Redis killed, the worker stopped: a streamed commit',
    path => '/stream/lost',
    thread => 's1s', prompt => 'slow one',
    fault => \&killed_while_stopped,
    epipe => 1,
    status => 200,
    body => 'user:first | assistant:user:first | user:slow one',
    not_kept => 1);

# (2) Redis killed while C1 answers: the commit cannot be sent; the lock
# the turn took stayed until its expiry before 6bbd6d0 (409 thread_busy)
lost_turn(
    what => 'a commit not sent',
    thread => 'c2', prompt => 'slow two',
    fault => sub { $lost->kill },
    status => 200,
    body => 'user:first | assistant:user:first | user:slow two',
    not_kept => 1);

# (3) a turn that fails at C1 (500) while Redis is down: its end (the
# unlock) cannot be sent; the same stale lock before 6bbd6d0
lost_turn(
    what => 'an end not sent',
    thread => 'e3', prompt => 'fail three',
    fault => sub { $lost->kill },
    status => 500,
    body => '{"error":{"message":"C1 answered HTTP 500","type":"upstream_error","param":null,"code":"c1_error"}}',
    log_line => qr/\[error\].*c1: C1 answered HTTP 500/,
    not_kept => 0);

C1Nginx::stop();
done_testing();
