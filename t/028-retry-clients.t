# c1_retry (issue 17) with real clients on a real nginx (C1Nginx): a
# client that goes away during a backoff pause ends the tries at once
# (499, no further call); the official openai npm client sees one clean
# answer, streamed and not, while C1 answers 429 then 200; an nginx
# upstream of two C1 endpoints, one of them dead, with proxy_next_upstream
# error (and the README's "error timeout non_idempotent") fails over on the
# connection error (every request answered, with or without c1_retry,
# nothing retried by the module).
#
# The mock C1 is C1Plan's /plan (t/lib/C1Plan.pm); GET /calls says which
# calls it got and reads back the access log of the c1_pass locations.

use strict;
use warnings;

use Test::More;
use JSON::PP;
use IO::Select;
use Time::HiRes qw(time sleep);
use lib 't/lib';
use C1Nginx;
use C1Client;
use C1Plan;

my $closed = $C1Nginx::Port + 1;   # nothing listens there

my $port = C1Nginx::start(<<"_EOC_" . $C1Plan::Locations . "}\n");
    log_format c1 '\$request_uri \$status model=\$c1_model tries=\$c1_tries '
                  'fallback=\$c1_fallback error=\$c1_error rt=\$request_time';
    lua_shared_dict calls 1m;

    upstream two_c1 {
        server 127.0.0.1:$closed max_fails=0;
        server 127.0.0.1:\$C1_TEST_PORT;
    }

    server {
        listen 127.0.0.1:\$C1_TEST_PORT;
        access_log logs/c1.log c1;

        c1_model m;
        c1_retry tries=3;

        location = /gone/chat { c1_pass /_c1_gone; }
        location = /gone/s/chat { c1_stream on; c1_pass /_c1_gone_s; }
        location = /v1/chat/completions { c1_pass /_c1_npm; }
        location = /stream/v1/chat/completions { c1_pass /_c1_npm_s; }
        location = /two/chat { c1_retry off; c1_pass /_c1_two; }
        location = /two-retry/chat { c1_pass /_c1_two_r; }
        location = /two-doc/chat { c1_pass /_c1_two_doc; }

        location = /_c1_gone {
            internal;
            proxy_pass http://127.0.0.1:\$C1_TEST_PORT/plan?k=gone&p=503ra2,200;
        }
        location = /_c1_gone_s {
            internal;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:\$C1_TEST_PORT/plan?k=gone_s&p=503ra2,200;
        }
        location = /_c1_npm {
            internal;
            proxy_pass http://127.0.0.1:\$C1_TEST_PORT/plan?k=npm&p=429,200;
        }
        location = /_c1_npm_s {
            internal;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:\$C1_TEST_PORT/plan?k=npm_s&p=429,200;
        }
        location = /_c1_two {
            internal;
            proxy_connect_timeout 1s;
            proxy_next_upstream error;
            proxy_pass http://two_c1/plan?k=two&p=200;
        }
        location = /_c1_two_r {
            internal;
            proxy_connect_timeout 1s;
            proxy_next_upstream error;
            proxy_pass http://two_c1/plan?k=two_r&p=200;
        }
        location = /_c1_two_doc {
            internal;
            proxy_connect_timeout 1s;
            proxy_next_upstream error timeout non_idempotent;
            proxy_pass http://two_c1/plan?k=two_doc&p=200;
        }
_EOC_

sub request {
    my ($bytes) = @_;
    my $c = C1Client->new(port => $port, timeout => 10);
    $c->send($bytes);
    my $r = $c->response;
    $c->close;
    return $r;
}

sub calls { request(C1Client::get('/calls', close => 1))->{body} }

# the calls the mock got for one plan: "1 m", "2 m2"...
sub calls_of {
    my ($k) = @_;
    return [map { /^\Q$k\E (\d+ \S+)$/ ? $1 : () } split /\n/, calls()];
}

sub log_lines_of {
    my ($uri) = @_;
    return [grep { /^\Q$uri\E / } split /\n/, calls()];
}

# 1. The client goes away during the backoff pause (C1 asked for 2 s)
for my $uri ('/gone/chat', '/gone/s/chat') {
    my $c = C1Client->new(port => $port, timeout => 10);
    my $t0 = time;
    $c->send(C1Client::post($uri, 'application/json', '{"prompt": "x"}'));

    # the first call is made, then the pause begins
    my $k = $uri eq '/gone/chat' ? 'gone' : 'gone_s';
    for (1 .. 50) {
        last if @{calls_of($k)};
        sleep 0.02;
    }
    is_deeply(calls_of($k), ['1 m'], "$uri: the first call made");
    sleep 0.3;
    ok(!IO::Select->new($c->sock)->can_read(0),
       "$uri: nothing answered during the pause");
    $c->close;
    my $gone = time;

    # the request ends at once: its 499 is in the access log well before
    # the pause would have ended
    my $lines = [];
    while (time - $gone < 1) {
        $lines = log_lines_of($uri);
        last if @$lines;
        sleep 0.05;
    }
    ok(time - $gone < 1, "$uri: the request ended soon after the client went");
    is(scalar @$lines, 1, "$uri: one access log line");
    like($lines->[0] // '', qr/^\Q$uri\E 499 model=m tries=1 /,
         "$uri: 499, one try");

    # and no call after it, past the end of the pause
    sleep 2.5 - (time - $t0) if time - $t0 < 2.5;
    is_deeply(calls_of($k), ['1 m'], "$uri: no call after the client went");
}

# 2. The official openai npm client: one clean answer, streamed and not
SKIP: {
    skip 't/js/node_modules/openai is missing: run util/deps', 9
        if !-d 't/js/node_modules/openai';

    my $run = sub {
        my ($path, $case) = @_;
        my $out = `node t/js/openai-client.mjs http://127.0.0.1:$port$path $case 2>&1`;
        my $res = eval { JSON::PP->new->decode($out) };
        ok($res, "npm $case: the client printed JSON") or diag($out);
        return $res || {};
    };

    my $r = $run->('/v1', 'completion');
    is($r->{object}, 'chat.completion', 'npm completion: object');
    is($r->{content}, 'answer from m', 'npm completion: the second try\'s answer');
    is($r->{finish_reason}, 'stop', 'npm completion: finish_reason');

    $r = $run->('/stream/v1', 'stream');
    is($r->{content}, 'one two three', 'npm stream: the deltas, once');
    is($r->{chunks}, 5, 'npm stream: role, 3 pieces, finish: nothing of try 1');
    is($r->{finish}, 'stop', 'npm stream: finish_reason');

    is_deeply(calls_of('npm'), ['1 m', '2 m'], 'npm completion: 429 then 200');
    is_deeply(calls_of('npm_s'), ['1 m', '2 m'], 'npm stream: 429 then 200');
}

# 3. Two C1 endpoints in an nginx upstream, the first one dead: nginx
#    fails over on the connection error, the module has nothing to retry
my %key = ('/two/chat' => 'two', '/two-retry/chat' => 'two_r',
           '/two-doc/chat' => 'two_doc');
for my $uri ('/two/chat', '/two-retry/chat', '/two-doc/chat') {
    my @ok;
    for my $i (1 .. 6) {
        my $r = request(C1Client::post($uri, 'application/json',
                                       '{"prompt": "x"}', close => 1));
        push @ok, $i if $r->{status} == 200 && $r->{body} eq 'answer from m';
    }
    is_deeply(\@ok, [1 .. 6], "$uri: every request answered");
    my $k = $key{$uri};
    is(scalar @{calls_of($k)}, 6, "$uri: one call a request reached the mock");
    my @lines = @{log_lines_of($uri)};
    is(scalar(grep { / 200 model=m tries=1 fallback=0 error=- / } @lines), 6,
       "$uri: 6 times 200 after one try");
}

my $log = C1Nginx::error_log();
like($log, qr/connect\(\) failed \(111: Connection refused\) while connecting to upstream.*upstream: "http:\/\/127\.0\.0\.1:$closed\//,
     'the dead endpoint was tried');
unlike($log, qr/c1: try \d+ of \d+ failed[^\n]*request: "POST \/two/,
       'no retry by the module for the upstream pair');
unlike($log, qr/mock: call 2 model=m, [^\n]*gone/, 'no second call for a client gone');
unlike($log, qr/\[(?:alert|crit|emerg)\]/, 'no alert in the error log');

done_testing();
