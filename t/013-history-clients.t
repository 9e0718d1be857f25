# Threads seen from real clients on a real nginx with a master and two
# workers: every worker sees them, they survive a reload, a racing turn
# gets 409, and a turn that ends badly (a broken stream, a client gone)
# leaves its thread as it was.
#
# make test runs it again against Redis: C1_STORE=redis (t/lib/C1Store.pm).

use strict;
use warnings;

use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(sleep);
use lib 't/lib';
use C1Nginx;
use C1Mock;
use C1Store;

my $port = C1Nginx::start(<<'_EOC_' . $C1Mock::MockLocations . "}\n", workers => 2);
    c1_history_zone zone=threads:1m max_messages=10 inactive=1h;
    c1_history_zone zone=tiny:256k;

    server {
        listen 127.0.0.1:$C1_TEST_PORT;

        c1_model m;
        c1_history threads;

        location = /chat { c1_pass /_c1; }
        location = /tiny { c1_history tiny; c1_pass /_c1; }
        location = /metrics { c1_metrics; }
        location = /slow { c1_stream on; c1_pass /_c1_slow; }
        location = /broken { c1_stream on; c1_pass /_c1_broken; }

        location = /_c1 {
            internal;
            proxy_pass http://127.0.0.1:$C1_TEST_PORT/mock/echo-messages;
        }

        location = /_c1_slow {
            internal;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:$C1_TEST_PORT/mock/sse?delay=150;
        }

        location = /_c1_broken {
            internal;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:$C1_TEST_PORT/mock/sse?after=3&reset=1;
        }
_EOC_

sub curl {
    my ($method, $path, $body) = @_;
    my $data = defined $body ? "-H 'Content-Type: application/json' -d '$body'" : '';
    my $out = `curl -s -N --max-time 10 -X $method $data -w '\\n%{http_code}' http://127.0.0.1:$port$path`;
    my ($text, $code) = $out =~ /\A(.*)\n(\d+)\z/s;
    return ($code, $text);
}

# every worker sees the thread: a new connection each time, two workers
for my $i (1 .. 6) {
    my ($code) = curl('POST', '/chat', qq({"prompt":"turn $i","threadId":"w"}));
    is($code, 200, "turn $i");
}
my ($code, $body) = curl('GET', '/chat?threadId=w');
is($code, 200, 'the thread is there');
is(scalar(() = $body =~ /"role":"user"/g), 5,
   'max_messages=10 keeps the last five turns, whichever worker took them');
like($body, qr/\A\[\{"id":"$C1Mock::Uuid","role":"user","content":"turn 2"\}/,
     'the oldest went first');

sub prompt_ok {
    my (undef, $m) = curl('GET', '/metrics');
    return $m =~ /^c1_requests_total\{mode="prompt",stream="0",outcome="ok"\} (\d+)$/m
        ? $1 : -1;
}

is(prompt_ok(), 6, 'metrics: six turns counted across both workers');

# a reload keeps the threads and the counters
C1Nginx::reload();
is(prompt_ok(), 6, 'metrics: the counters survive a reload');
($code, $body) = curl('GET', '/chat?threadId=w');
is($code, 200, 'after a reload: the thread is still there');
like($body, qr/"content":"turn 6"/, 'after a reload: with its last turn');
($code, $body) = curl('POST', '/chat', '{"prompt":"turn 7","threadId":"w"}');
like($body, qr/user:turn 6 \| assistant:.* \| user:turn 7\z/,
     'after a reload: C1 gets the history');
is(prompt_ok(), 7, 'metrics: counting goes on after a reload');

# two turns racing on one thread: the second gets 409
my $slow = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die $!;
my $req = '{"prompt":"slow","threadId":"race"}';
print $slow "POST /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    . "Content-Type: application/json\r\nContent-Length: " . length($req)
    . "\r\n\r\n$req";
sleep 0.3;
($code, $body) = curl('POST', '/chat', '{"prompt":"fast","threadId":"race"}');
is($code, 409, 'a racing turn: 409');
like($body, qr/"code":"thread_busy"/, 'a racing turn: thread_busy');
($code) = curl('DELETE', '/chat?threadId=race');
is($code, 409, 'a running turn\'s thread cannot be deleted');
my $first = do { local $/; <$slow> };
like($first, qr/\A HTTP\/1\.1\ 200 .* <\/content> \s* 0\r\n\r\n\z/xs,
     'the first turn completes');
($code, $body) = curl('GET', '/chat?threadId=race');
like($body, qr/\A\[\{"id":"$C1Mock::Uuid","role":"user","content":"slow"\},\{"id":"$C1Mock::Uuid","role":"assistant","content":"<content thesys=/,
     'only the first turn is kept');
($code, $body) = curl('POST', '/chat', '{"prompt":"after","threadId":"race"}');
is($code, 200, 'the thread is free again once the turn ends');

# a broken stream leaves the thread as it was
($code, $body) = curl('POST', '/chat', '{"prompt":"keep me","threadId":"b"}');
($code) = curl('POST', '/broken', '{"prompt":"lost","threadId":"b"}');
($code, $body) = curl('GET', '/chat?threadId=b');
is(scalar(() = $body =~ /"role":"user"/g), 1, 'a broken stream adds nothing');
unlike($body, qr/lost/, 'a broken stream: its prompt is not kept');

# a client gone mid-stream leaves the thread as it was, and frees it
$slow = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die $!;
$req = '{"prompt":"gone","threadId":"b"}';
print $slow "POST /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    . "Content-Type: application/json\r\nContent-Length: " . length($req)
    . "\r\n\r\n$req";
sleep 0.4;
close $slow;
sleep 0.3;
($code, $body) = curl('GET', '/chat?threadId=b');
unlike($body, qr/gone/, 'a client gone mid-stream: its turn is not kept');
($code) = curl('POST', '/chat', '{"prompt":"next","threadId":"b"}');
is($code, 200, 'a client gone mid-stream: the thread is free again');

# a full zone drops the least recently used threads, says so, and every
# request still succeeds (with C1_STORE=redis: skipped, see C1Store)
if (C1Store::zone_only("a zone's size, its eviction, its log line and "
                       . "metric (Redis has none of them)")) {
    my $all = 1;
    for my $i (1 .. 12) {
        my $big = "p$i " x 3000;
        ($code) = curl('POST', '/tiny', qq({"prompt":"$big","threadId":"z$i"}));
        $all &&= $code == 200;
    }
    ok($all, 'a full zone: every request succeeds');
    ($code) = curl('GET', '/tiny?threadId=z1');
    is($code, 404, 'a full zone: the least recently used thread went');
    ($code) = curl('GET', '/tiny?threadId=z12');
    is($code, 200, 'a full zone: the newest thread is kept');
    like(C1Nginx::error_log(),
         qr/\[warn\].*c1: c1_history_zone "tiny" is full: the history of \d+ least recently used threads? was dropped/,
         'a full zone: the log says history was dropped');
    my (undef, $m) = curl('GET', '/metrics');
    like($m, qr/^c1_history_evicted_total\{zone="tiny"\} [1-9]\d*$/m,
         'a full zone: the metrics count the evictions');
}

unlike(C1Nginx::error_log(), qr/\[(?:alert|crit|emerg)\]|exited on signal/,
       'no alert, no crash in the error log');

done_testing();
