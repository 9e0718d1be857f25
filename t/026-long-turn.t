# A long turn (issue 13, defect 5): while a streamed turn runs for several
# seconds, every other turn on its thread and every DELETE of it get 409
# thread_busy at once, from either worker, again and again until it ends;
# reading the thread shows it as it was. Once the turn is over it is
# committed whole, and turns and DELETE work again. The turn runs on a
# keep-alive connection that serves the next request.
#
# make test runs it again against Redis: C1_STORE=redis (t/lib/C1Store.pm).

use strict;
use warnings;

use Test::More;
use IO::Select;
use Time::HiRes qw(time sleep);
use lib 't/lib';
use C1Nginx;
use C1Mock;
use C1Client;

my $port = C1Nginx::start(<<'_EOC_' . $C1Mock::MockLocations . "}\n", workers => 2);
    c1_history_zone zone=threads:1m;

    server {
        listen 127.0.0.1:$C1_TEST_PORT reuseport;

        c1_model m;
        c1_history threads;

        location = /chat { c1_pass /_c1; }
        location = /long { c1_stream on; c1_pass /_c1_long; }

        location = /_c1 {
            internal;
            proxy_pass http://127.0.0.1:$C1_TEST_PORT/mock/echo-messages;
        }

        # 9 events, 700 ms apart: a turn of some 6 s
        location = /_c1_long {
            internal;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:$C1_TEST_PORT/mock/sse?delay=700;
        }
_EOC_

# one request on a connection of its own
sub call {
    my ($req) = @_;
    my $c = C1Client->new(port => $port, timeout => 5);
    $c->send($req);
    my $t = time;
    my $r = $c->response;
    $r->{time} = time - $t;
    $c->close;
    return $r;
}

sub turn {
    my ($prompt, $path) = @_;
    return call(C1Client::post($path || '/chat', 'application/json',
                               qq({"prompt":"$prompt","threadId":"long"})));
}

my $busy = qr/\A\{"error":\{"message":"[^"]+","type":"invalid_request_error",/
    . qr/"param":"threadId","code":"thread_busy"\}\}\z/;

my $r = turn('first');
is($r->{status}, 200, 'a first turn');
my $thread = call(C1Client::get('/chat?threadId=long'))->{body};
is(C1Mock::without_ids($thread), '[{"role":"user","content":"first"},'
    . '{"role":"assistant","content":"user:first"}]',
   'the thread has its first turn');

# the long turn, on a keep-alive connection
my $long = C1Client->new(port => $port, timeout => 20);
my $start = time;
$long->send(C1Client::post('/long', 'application/json',
                           '{"prompt":"long","threadId":"long"}'));

my ($rounds, $busy_turns, $busy_deletes, $fast, $unchanged, $last) =
    (0, 0, 0, 0, 0, 0);
my @odd;
my $raw = '';
my $sel = IO::Select->new($long->sock);
sleep 0.3;
while (time - $start < 15) {
    # what the long turn sent so far, without waiting
    while ($sel->can_read(0)) {
        my $n = sysread($long->sock, $raw, 65536, length $raw);
        last unless $n;
    }
    last if $raw =~ /\r\n0\r\n\r\n\z/;

    $rounds++;
    $last = time - $start;
    my $t = turn("racing $rounds");
    my $d = call(C1Client::get('/chat?threadId=long', method => 'DELETE'));
    my $g = call(C1Client::get('/chat?threadId=long'));
    $busy_turns++ if $t->{status} == 409 && $t->{body} =~ $busy;
    $busy_deletes++ if $d->{status} == 409 && $d->{body} =~ $busy;
    $fast++ if $t->{time} < 0.5 && $d->{time} < 0.5;
    $unchanged++ if $g->{status} == 200 && $g->{body} eq $thread;
    push @odd, "round $rounds at ${last}s: turn $t->{status} $t->{body}, "
        . "delete $d->{status} $d->{body}, get $g->{status}"
        if $t->{status} != 409 || $d->{status} != 409;
    sleep 0.3;
}
my $took = time - $start;

ok($took > 5, sprintf('the turn lasted more than 5 s (%.1f s)', $took));
ok($rounds >= 8, "probed again and again while it ran ($rounds rounds)");
ok($last > 5, sprintf('the last probe came late in the turn (at %.1f s)', $last));
is($busy_turns, $rounds, 'every racing turn: 409 thread_busy')
    or diag(join "\n", @odd);
is($busy_deletes, $rounds, 'every DELETE while it ran: 409 thread_busy');
is($fast, $rounds, 'every 409 came at once (under 0.5 s)');
is($unchanged, $rounds, 'reading the thread while it ran: as it was');

# the long turn's response, whole, then the next request on its connection
$long->{buf} = $raw;
$r = $long->response;
is($r->{status}, 200, 'the long turn: 200');
ok($r->{complete}, 'the long turn: its stream ended properly');
is($r->{body}, $C1Mock::StreamText, 'the long turn: its whole content');
$long->send(C1Client::get('/chat?threadId=long'));
$r = $long->response;
is($r->{status}, 200, 'keep-alive: the next request on its connection');
is(C1Mock::without_ids($r->{body}), '[{"role":"user","content":"first"},'
    . '{"role":"assistant","content":"user:first"},'
    . '{"role":"user","content":"long"},'
    . '{"role":"assistant","content":"'
    . C1Mock::json_escape($C1Mock::StreamText) . '"}]',
   'the long turn is committed, whole, after the first');
is(scalar(() = ($r->{body} // '') =~ /\{"id":"$C1Mock::Uuid","role":/g), 4,
   'the long turn is committed: each of the four messages has a UUID id');
$long->close;

# and now both work
$r = turn('after');
is($r->{status}, 200, 'a turn after it: 200');
like($r->{body}, qr/\Auser:first \| assistant:user:first \| user:long \| assistant:<content thesys=.* \| user:after\z/s,
     'a turn after it: C1 gets the whole history');
$r = call(C1Client::get('/chat?threadId=long', method => 'DELETE'));
is($r->{status}, 200, 'DELETE after it: 200');
is($r->{body}, '{"deleted":true}', 'DELETE after it: deleted');
is(call(C1Client::get('/chat?threadId=long'))->{status}, 404,
   'the thread is gone');

unlike(C1Nginx::error_log(), qr/\[(?:alert|crit|emerg)\]|exited on signal/,
       'no alert, no crash in the error log');

done_testing();
