# Token budgets (issue 16) with real clients on real nginx nodes
# (C1Nginx, a master and two workers each, reuseport), the mock C1 of
# t/lib/C1Usage.pm answering with a known usage:
#   (a) the official openai npm client (t/js/limits-client.mjs,
#       maxRetries: 0): the first calls succeed with the X-RateLimit-*
#       headers, then a RateLimitError (429, type "tokens", code
#       "rate_limit_exceeded") whose headers say the limit, 0 remaining,
#       the reset and Retry-After; streams: C1 asked for usage, the usage
#       chunk kept from a client that did not ask for it, relayed to one
#       that did, and debited either way; C1's own 429: a RateLimitError
#       with C1's Retry-After, no tokens debited; store=: spent through
#       node 1, a RateLimitError on node 2;
#   (b) 40 racing requests on one key, over two workers, zone-backed: the
#       sum debited (c1_limit_debited_tokens_total{source="usage"}, and the
#       remaining a last request reports) is the sum of the usages exactly;
#       then the same with store= on Redis over two nodes;
#   (c) a stream the client cuts after three pieces of a slow C1 (that
#       never sends its usage): the key is debited by the estimate,
#       ceil(bytes of the body C1 got / 4) + ceil(content bytes / 4), in
#       prompt mode and in the OpenAI shape; on node 1 with store=, seen
#       on node 2; and cut after C1's usage chunk came: its usage debited.

use strict;
use warnings;

use Test::More;
use Cwd qw(abs_path);
use JSON::PP ();
use POSIX qw(ceil);
use IO::Select;
use Time::HiRes qw(time sleep);
use lib 't/lib';
use C1Nginx;
use C1Client;
use C1Redis;
use C1Usage;

my $redis = C1Redis->start(name => '040');
my $sock = $redis->{sock};

my $http = $C1Usage::Http . <<"_EOC_" . $C1Usage::Locations . "}\n";
    c1_history_redis name=r server=unix:$sock prefix=l40: timeout=1s;
    c1_limit_tokens_zone zone=u:1m;
    c1_limit_tokens_zone zone=ru:1m store=r;

    server {
        listen 127.0.0.1:\$C1_TEST_PORT reuseport;

        c1_model m;
        add_header X-Worker \$pid always;

        # (a): 40 tokens a call, 100 a day
        location = /npm/v1/chat/completions {
            set \$q "p=30&c=10&k=npm";
            c1_limit_tokens zone=u key=npm rate=100/d;
            c1_pass /_c1;
        }
        location = /npms/v1/chat/completions {
            set \$q "p=30&c=10&k=npms&pieces=2";
            c1_limit_tokens zone=u key=npms rate=1000/d;
            c1_pass /_c1;
        }

        # (a): store=r, on both nodes
        location = /rnpm/v1/chat/completions {
            set \$q "p=30&c=10&k=rnpm";
            c1_limit_tokens zone=ru key=rnpm rate=100/d;
            c1_pass /_c1;
        }

        # (a): C1's own 429, then an answer, on one key
        location = /c1429/v1/chat/completions {
            set \$q "status=429&ra=7&k=c429";
            c1_limit_tokens zone=u key=c429 rate=100/d;
            c1_pass /_c1;
        }
        location = /c1ok/v1/chat/completions {
            set \$q "p=30&c=10&k=c1ok";
            c1_limit_tokens zone=u key=c429 rate=100/d;
            c1_pass /_c1;
        }

        # (b): one key, 10000 tokens, one more every 86.4 s
        location = /race {
            set \$q \$args;
            c1_limit_tokens zone=u key=racer rate=1000/d burst=9000;
            c1_pass /_c1;
        }
        location = /rrace {
            set \$q \$args;
            c1_limit_tokens zone=ru key=racer rate=1000/d burst=9000;
            c1_pass /_c1;
        }

        # (c)
        location = /cut {
            set \$q \$args;
            c1_stream on;
            c1_limit_tokens zone=u key=\$arg_u rate=1000/d burst=100000;
            c1_pass /_c1_slow;
        }
        location = /cut/v1/chat/completions {
            set \$q \$args;
            c1_limit_tokens zone=u key=\$arg_u rate=1000/d burst=100000;
            c1_pass /_c1_slow;
        }
        location = /rcut {
            set \$q \$args;
            c1_stream on;
            c1_limit_tokens zone=ru key=\$arg_u rate=1000/d burst=100000;
            c1_pass /_c1_slow;
        }
        location = /rafter {
            set \$q \$args;
            c1_limit_tokens zone=ru key=\$arg_u rate=1000/d burst=100000;
            c1_pass /_c1;
        }
        location = /after {
            set \$q \$args;
            c1_limit_tokens zone=u key=\$arg_u rate=1000/d burst=100000;
            c1_pass /_c1;
        }

        location = /_c1 {
            internal;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:\$C1_TEST_PORT/usage?\$q;
        }
        location = /_c1_slow {
            internal;
            proxy_http_version 1.1;
            proxy_read_timeout 1s;
            proxy_pass http://127.0.0.1:\$C1_TEST_PORT/usage?\$q;
        }
        location = /metrics { c1_metrics; }
_EOC_

my $n1 = C1Nginx->new(port => $C1Nginx::Port, root => $C1Nginx::Root);
my $n2 = C1Nginx->new(port => $C1Nginx::Port + 1,
                      root => abs_path('t') . '/servroot-client2');
$n1->start($http, workers => 2);
$n2->start($http, workers => 2);

my $json = JSON::PP->new->canonical;

sub req {
    my ($node, $path, $body) = @_;
    my $c = C1Client->new(port => $node->port, timeout => 10);
    $c->send(defined $body
        ? C1Client::post($path, 'application/json', $body, close => 1)
        : C1Client::get($path, close => 1));
    my $r = $c->response;
    $c->close;
    return $r;
}

sub metric {
    my ($node, $name) = @_;
    my $m = req($node, '/metrics')->{body} // '';
    return $m =~ /^\Q$name\E (\d+)$/m ? $1 : undef;
}

sub stats {
    my ($node, $k) = @_;
    return req($node, "/usage/stats?k=$k")->{body};
}

sub within {
    my ($got, $lo, $hi, $what) = @_;
    my $ms = C1Usage::parse_godur($got);
    ok(defined $ms && $ms >= $lo && $ms <= $hi,
       "$what: " . ($got // 'none') . " (a duration from "
       . C1Usage::godur($lo) . " to " . C1Usage::godur($hi) . ")");
}

# --- (a) the openai npm client ----------------------------------------------

SKIP: {
    skip 't/js/node_modules/openai is missing: run util/deps', 1
        if !-d 't/js/node_modules/openai';

    my $port = $n1->port;
    my $client = sub {
        my ($path, @args) = @_;
        my $out = `node t/js/limits-client.mjs http://127.0.0.1:$port$path @args 2>&1`;
        my $res = eval { $json->decode($out) };
        ok($res, "npm @args: the client printed JSON") or diag($out);
        return $res;
    };

    my $calls = $client->('/npm/v1', 'sequence', 6) || [];
    is(scalar @$calls, 4, 'npm: three answers, then the error (40 tokens each, 100 a day)')
        or diag explain $calls;
    my @ok = @$calls[0 .. 2];
    is(join(',', map { ($_->{ok} ? 'ok' : 'error') . ' ' . ($_->{status} // '') } @$calls),
       'ok 200,ok 200,ok 200,error 429', 'npm: 200, 200, 200, 429');
    is(join(',', map { $_->{remaining} // 'none' } @ok), '100,60,20',
       'npm: x-ratelimit-remaining-tokens before each debit');
    is(join(',', map { $_->{limit} // 'none' } @ok), '100,100,100',
       'npm: x-ratelimit-limit-tokens');
    is($ok[0]{reset}, '0s', 'npm: a fresh key is full: x-ratelimit-reset-tokens 0s');
    within($ok[1]{reset}, 40 * 864000 - 3000, 40 * 864000,
           'npm: reset after 40 tokens (9h36m0s)');
    within($ok[2]{reset}, 80 * 864000 - 3000, 80 * 864000,
           'npm: reset after 80 tokens (19h12m0s)');
    is_deeply($ok[0]{usage}, { prompt_tokens => 30, completion_tokens => 10,
                               total_tokens => 40 }, 'npm: the usage relayed');

    my $e = $calls->[3] || {};
    is($e->{name}, 'RateLimitError', 'npm: the error is a RateLimitError');
    ok($e->{rateLimitError}, 'npm: instanceof OpenAI.RateLimitError');
    is($e->{status}, 429, 'npm: error.status');
    is($e->{type}, 'tokens', 'npm: error.type');
    is($e->{code}, 'rate_limit_exceeded', 'npm: error.code');
    is($e->{param}, undef, 'npm: error.param null');
    my $msg = $e->{message} // '';
    like($msg, qr/\ARate limit reached for tokens per day \(TPD\) in c1_limit_tokens zone "u": Limit 100, Remaining 0\. Please try again in (\S+)\.\z/,
         'npm: error.error.message');
    my ($again) = $msg =~ /try again in (\S+)\.\z/;
    within($again, 18141000, 18144000, 'npm: the message\'s wait (Retry-After, 5h2m24s)');
    is($e->{limit}, '100', 'npm: the error\'s x-ratelimit-limit-tokens');
    is($e->{remaining}, '0', 'npm: the error\'s x-ratelimit-remaining-tokens');
    within($e->{reset}, 120 * 864000 - 3000, 120 * 864000,
           'npm: the error\'s x-ratelimit-reset-tokens (120 tokens spent: 28h48m0s)');
    is($e->{retryAfter}, '18144',
       'npm: the error\'s retry-after: until 21 tokens are back (21 x 864 s)');
    like($e->{contentType} // '', qr{\Aapplication/json\b}, 'npm: the error is JSON');
    like(stats($n1, 'npm'), qr/\Acalls=3 /, 'npm: the refused call never reached C1');

    # streams: C1 asked for usage either way; the usage chunk kept from the
    # client that did not ask, relayed to the one that did; debited
    my $s = $client->('/npms/v1', 'stream') || {};
    is($s->{status}, 200, 'npm stream: 200');
    is($s->{remaining}, '1000', 'npm stream: the headers of the stream');
    is($s->{limit}, '1000', 'npm stream: x-ratelimit-limit-tokens');
    is($s->{content}, 'qqqq', 'npm stream: the content');
    is($s->{finish}, 'stop', 'npm stream: finish_reason');
    is($s->{chunks}, 4, 'npm stream: role, two pieces, finish: no usage chunk');
    is($s->{usage}, undef, 'npm stream: no usage seen by a client that did not ask');
    like(stats($n1, 'npms'), qr/\Acalls=1 body=\d+ iu=true\z/,
         'npm stream: C1 was asked for usage (stream_options.include_usage)');

    $s = $client->('/npms/v1', 'stream_usage') || {};
    is($s->{remaining}, '960', 'npm stream: the first stream\'s usage was debited (40)');
    is($s->{chunks}, 5, 'npm stream with include_usage: the usage chunk too');
    is_deeply($s->{usage}, { prompt_tokens => 30, completion_tokens => 10,
                             total_tokens => 40 },
              'npm stream with include_usage: the usage as C1 sent it');

    $calls = $client->('/npms/v1', 'sequence', 1) || [];
    is($calls->[0]{remaining}, '920', 'npm: the second stream\'s usage was debited too');

    # store=r: spent through node 1, refused on node 2
    $calls = $client->('/rnpm/v1', 'sequence', 3) || [];
    is(join(',', map { $_->{remaining} // 'none' } @$calls), '100,60,20',
       'npm, store=r: three answers on node 1');
    my $port2 = $n2->port;
    my $out = `node t/js/limits-client.mjs http://127.0.0.1:$port2/rnpm/v1 sequence 2 2>&1`;
    my $r2 = eval { $json->decode($out) } || [];
    ok(@$r2, 'npm, store=r: the client on node 2 printed JSON') or diag $out;
    is(join(',', map { $_->{name} // 'ok' } @$r2), 'RateLimitError',
       'npm, store=r: node 2 refuses at once: RateLimitError');
    is(($r2->[0] || {})->{remaining}, '0', 'npm, store=r: node 2 says 0 remaining');
    like(stats($n2, 'rnpm'), qr/\Acalls=0 /, 'npm, store=r: node 2 never called its C1');

    # C1's own 429: a RateLimitError with C1's Retry-After, no tokens spent
    $calls = $client->('/c1429/v1', 'sequence', 2) || [];
    $e = $calls->[0] || {};
    is(scalar @$calls, 1, 'npm, C1\'s 429: the first call throws');
    is($e->{name}, 'RateLimitError', 'npm, C1\'s 429: a RateLimitError');
    is($e->{status}, 429, 'npm, C1\'s 429: status 429');
    is($e->{retryAfter}, '7', 'npm, C1\'s 429: C1\'s Retry-After');
    is($e->{remaining}, '100', 'npm, C1\'s 429: the headers of the check (100 remaining)');
    like(stats($n1, 'c429'), qr/\Acalls=1 /, 'npm, C1\'s 429: C1 was called');
    $calls = $client->('/c1ok/v1', 'sequence', 1) || [];
    is($calls->[0]{remaining}, '100', 'npm, C1\'s 429: no tokens debited for it');
}

# --- (b) racing clients on one key ------------------------------------------

my $N = 40;
my $sum = 0;
$sum += 3 * $_ for 1 .. $N;    # 2460

# $N requests at once, usage i + 2i for the i-th; the mock answers after
# 300 ms, so that every check comes before any debit
sub race {
    my ($path, @nodes) = @_;
    my @c;
    for my $i (1 .. $N) {
        my $node = $nodes[($i - 1) % @nodes];
        push @c, C1Client->new(port => $node->port, timeout => 15);
    }
    for my $i (1 .. $N) {
        $c[$i - 1]->send(C1Client::post("$path?p=$i&c=" . 2 * $i . "&delay=300",
                                        'application/json',
                                        qq({"prompt":"race $i"}), close => 1));
    }
    my @r = map { my $r = $_->response; $_->close; $r } @c;
    return \@r;
}

for my $case (['/race', 'u', 'zone-backed, one node', $n1],
              ['/rrace', 'ru', 'store=r, two nodes', $n1, $n2]) {
    my ($path, $zone, $what, @nodes) = @$case;
    my $debited = "c1_limit_debited_tokens_total{zone=\"$zone\",source=\"usage\"}";
    my @before = map { metric($_, $debited) // 0 } @nodes;
    my $keys = $redis->keys('l40:b:*');

    my $t0 = time;
    my $r = race($path, @nodes);
    my @status = map { $_->{status} // 'none' } @$r;
    is(scalar(grep { $_ eq '200' } @status), $N, "$what: $N racing requests answered")
        or diag "@status";
    my @rem = map { $_->{headers}{'x-ratelimit-remaining-tokens'} // 'none' } @$r;
    is(scalar(grep { /\A\d+\z/ && $_ <= 10000 && $_ > 10000 - $sum } @rem), $N,
       "$what: each saw a remaining between the full and the end")
        or diag "@rem";
    my %workers = map { ($_->{headers}{'x-worker'} // 'none') => 1 } @$r;
    cmp_ok(scalar(keys %workers), '>=', 2 * @nodes,
           "$what: served by every worker (" . join(',', sort keys %workers) . ")");
    note(sprintf "$what: %.2f s", time - $t0);

    my @after = map { metric($_, $debited) // 0 } @nodes;
    my $delta = 0;
    $delta += $after[$_] - $before[$_] for 0 .. $#nodes;
    is($delta, $sum, "$what: $debited grew by the sum of the usages ($sum)"
       . (@nodes > 1 ? " over both nodes (@before -> @after)" : ''));
    for my $k (0 .. $#nodes) {
        my $last = req($nodes[$k], "$path?p=0&c=0", '{"prompt":"last"}');
        is($last->{headers}{'x-ratelimit-remaining-tokens'}, 10000 - $sum,
           "$what: a last request on node " . ($k + 1)
           . " reports 10000 - $sum remaining");
    }
    if (@nodes > 1) {
        is(scalar($redis->keys('l40:b:*')) - $keys, 1, "$what: one bucket more in Redis");
    }
}

# --- (c) a stream cut by the client -----------------------------------------

# sends the request, reads until $enough says the response so far has
# what it needs (bounded: 5 s), waits $linger seconds, closes; returns the
# bytes read
sub cut {
    my ($node, $path, $body, $enough, $linger) = @_;
    my $c = C1Client->new(port => $node->port, timeout => 5);
    $c->send(C1Client::post($path, 'application/json', $body));
    my $got = '';
    my $deadline = time + 5;
    my $sel = IO::Select->new($c->sock);
    while (time < $deadline && !$enough->($got)) {
        last unless $sel->can_read($deadline - time);
        my $n = sysread($c->sock, $got, 65536, length $got);
        last unless $n;
    }
    sleep $linger if $linger;
    $c->close;
    return $got;
}

my $piece = 'q' x 40;
for my $case (['prompt mode', '/cut', 'cutp', '{"prompt":"cut me short"}',
               sub { my ($b) = $_[0] =~ /\r\n\r\n(.*)\z/s; (($b // '') =~ tr/q//) >= 120 }],
              ['OpenAI shape', '/cut/v1/chat/completions', 'cuto',
               '{"model":"x","messages":[{"role":"user","content":"cut me short"}],"stream":true}',
               sub { my @m = $_[0] =~ /"content":"$piece"/g; @m >= 3 }]) {
    my ($what, $path, $key, $body, $enough) = @$case;
    my $est_m = 'c1_limit_debited_tokens_total{zone="u",source="estimate"}';
    my $use_m = 'c1_limit_debited_tokens_total{zone="u",source="usage"}';
    my ($est0, $use0) = map { metric($n1, $_) // 0 } $est_m, $use_m;

    my $got = cut($n1, "$path?u=$key&pieces=3&len=40&pdelay=50&hang=3", $body, $enough);
    ok($enough->($got), "$what: the client got three pieces before it went");
    my ($rem0) = $got =~ /^X-RateLimit-Remaining-Tokens: (\d+)\r$/mi;
    is($rem0, 101000, "$what: the stream's header said 101000 remaining");

    my $est1 = $est0;
    my $deadline = time + 4;
    while (time < $deadline) {
        $est1 = metric($n1, $est_m) // 0;
        last if $est1 > $est0;
        sleep 0.05;
    }
    my ($sent) = stats($n1, $key) =~ /body=(\d+)/;
    ok($sent, "$what: C1 got a body of $sent bytes");
    my $est = ceil(($sent // 0) / 4) + 30;
    is($est1 - $est0, $est, "$what: $est_m grew by ceil($sent / 4) + 120 / 4 = $est");
    is((metric($n1, $use_m) // 0) - $use0, 0, "$what: nothing counted as usage");
    my $next = req($n1, "/after?u=$key&p=0&c=0", '{"prompt":"next"}');
    is($next->{headers}{'x-ratelimit-remaining-tokens'}, 101000 - $est,
       "$what: the next request reports 101000 - $est remaining");
}

# the usage chunk came before the client went (C1 then hangs before
# [DONE]): the usage is debited, not the estimate
{
    my $est_m = 'c1_limit_debited_tokens_total{zone="u",source="estimate"}';
    my $use_m = 'c1_limit_debited_tokens_total{zone="u",source="usage"}';
    my ($est0, $use0) = map { metric($n1, $_) // 0 } $est_m, $use_m;
    my $got = cut($n1, "/cut?u=cutu&p=70&c=7&pieces=3&len=40&uhang=3",
                  '{"prompt":"cut me late"}',
                  sub { my ($b) = $_[0] =~ /\r\n\r\n(.*)\z/s; (($b // '') =~ tr/q//) >= 120 },
                  0.2);
    ok($got =~ tr/q// >= 120, 'cut after the usage chunk: the client got the content');
    my $use1 = $use0;
    my $deadline = time + 4;
    while (time < $deadline) {
        $use1 = metric($n1, $use_m) // 0;
        last if $use1 > $use0;
        sleep 0.05;
    }
    is($use1 - $use0, 77, 'cut after the usage chunk: its usage (70 + 7) debited');
    is((metric($n1, $est_m) // 0) - $est0, 0, 'cut after the usage chunk: no estimate');
    is(req($n1, '/after?u=cutu&p=0&c=0', '{"prompt":"next"}')->{headers}{'x-ratelimit-remaining-tokens'},
       101000 - 77, 'cut after the usage chunk: the next request reports 101000 - 77');
}

# a stream cut on node 1, store=r: node 2 sees the estimate debited
{
    my $est_m = 'c1_limit_debited_tokens_total{zone="ru",source="estimate"}';
    my $est0 = metric($n1, $est_m) // 0;
    my $got = cut($n1, "/rcut?u=rcut&pieces=3&len=40&pdelay=50&hang=3",
                  '{"prompt":"cut me short"}',
                  sub { my ($b) = $_[0] =~ /\r\n\r\n(.*)\z/s; (($b // '') =~ tr/q//) >= 120 });
    my $est1 = $est0;
    my $deadline = time + 4;
    while (time < $deadline) {
        $est1 = metric($n1, $est_m) // 0;
        last if $est1 > $est0;
        sleep 0.05;
    }
    my ($sent) = stats($n1, 'rcut') =~ /body=(\d+)/;
    my $est = ceil(($sent // 0) / 4) + 30;
    is($est1 - $est0, $est, "cut on node 1, store=r: the estimate ($est) debited");
    is(req($n2, '/rafter?u=rcut&p=0&c=0', '{"prompt":"next"}')->{headers}{'x-ratelimit-remaining-tokens'},
       101000 - $est, "cut on node 1, store=r: node 2 reports 101000 - $est");
}

for my $node ($n1, $n2) {
    unlike($node->error_log, qr/\[alert\]|\[emerg\]|\[crit\]|exited on signal/,
           'no crash, no alert on ' . $node->root);
}

$n1->stop;
$n2->stop;
done_testing();
