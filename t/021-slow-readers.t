# Slow readers on a real nginx: clients with a small receive buffer that
# read a little at a time (a phone on a poor network), against a listener
# with a small send buffer, while C1 (the mock) answers as fast as it can.
# Every byte must reach them, in order, the response ended properly, the
# thread's turn committed, the connection usable for the next request;
# and a client that stops reading for longer than send_timeout abandons
# the C1 call without touching its thread.

use strict;
use warnings;

use Test::More;
use Storable qw(store retrieve);
use Time::HiRes qw(time sleep);
use POSIX qw(WNOHANG);
use lib 't/lib';
use C1Nginx;
use C1Mock;
use C1Client;

my $mock_port = $C1Nginx::Port + 1;

my $conf = <<'_EOC_';
    c1_history_zone zone=threads:128m;

    server {
        listen 127.0.0.1:$C1_TEST_PORT sndbuf=4k;

        c1_model m;
        c1_max_response_size 16m;
        c1_history threads;

        location = /chat {
            set $len $arg_len;
            set $piece $arg_piece;
            c1_stream on;
            c1_pass /_c1;
        }

        location = /whole {
            set $len $arg_len;
            set $piece $arg_piece;
            c1_pass /_c1;
        }

        location = /v1/chat/completions {
            set $len $arg_len;
            set $piece $arg_piece;
            c1_pass /_c1;
        }

        location = /stall {
            send_timeout 1s;
            c1_stream on;
            c1_pass /_c1_endless;
        }

        location = /metrics { c1_metrics; }

        location = /_c1 {
            internal;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:$MOCK_PORT/mock/big?len=$len&piece=$piece;
        }

        location = /_c1_endless {
            internal;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:$MOCK_PORT/endless;
        }
    }

    server {
        listen 127.0.0.1:$MOCK_PORT;

        location = /endless {
            lua_check_client_abort on;
            lua_http10_buffering off;
            content_by_lua_block {
                ngx.on_abort(function ()
                    ngx.log(ngx.WARN, "mock: endless stream dropped")
                    ngx.exit(499)
                end)
                ngx.req.read_body()
                ngx.header["Content-Type"] = "text/event-stream"
                local ev = 'data: {"choices":[{"delta":{"content":"'
                           .. string.rep("z", 500) .. '"}}]}\n\n'
                for i = 1, 3000 do
                    ngx.print(ev)
                    if not ngx.flush(true) then
                        ngx.log(ngx.WARN, "mock: endless stream dropped")
                        return ngx.exit(499)
                    end
                    ngx.sleep(0.01)
                end
            }
        }
_EOC_
$conf =~ s/\$MOCK_PORT/$mock_port/g;

my $port = C1Nginx::start($conf . $C1Mock::MockLocations . "}\n");

# how fast a client reads: always slower than C1 here
sub pacing {
    my $len = shift;
    return (rcvbuf => 65536, chunk => 65536, pace => 0.01) if $len > 1 << 20;
    return (rcvbuf => 16384, chunk => 16384, pace => 0.02) if $len > 81920;
    return (rcvbuf => 4096, chunk => 2048, pace => 0.1);
}

# where two strings first differ, for the diagnostics
sub first_diff {
    my ($a, $b) = @_;
    my $n = length($a) < length($b) ? length($a) : length($b);
    for (my $i = 0; $i < $n; $i += 1024) {
        next if substr($a, $i, 1024) eq substr($b, $i, 1024);
        for my $j ($i .. $i + 1023) {
            return $j if substr($a, $j, 1) ne substr($b, $j, 1);
        }
    }
    return $n;
}

# the cases: every mode, streamed and not, 1 KB to 10 MB, small and large
# pieces
my @cases;
for my $len (1024, 20000, 81920, 1 << 20, 10 << 20) {
    for my $mode (qw(plain thread openai)) {
        push @cases, { mode => $mode, len => $len, stream => 0, piece => 1000 };
        for my $piece (1000, 16000) {
            next if $len > 1 << 20 && $piece < 16000;
            push @cases, { mode => $mode, len => $len, stream => 1,
                           piece => $piece };
        }
    }
}

my $n = 0;
for my $c (@cases) {
    $n++;
    $c->{name} = "$c->{mode} " . ($c->{stream} ? 'stream' : 'whole')
        . " len=$c->{len}" . ($c->{stream} ? " piece=$c->{piece}" : '');
    $c->{thread} = "slow-$n";
    my $q = "len=$c->{len}&piece=$c->{piece}";
    my $s = $c->{stream} ? 'true' : 'false';
    if ($c->{mode} eq 'plain') {
        $c->{req} = C1Client::post(($c->{stream} ? '/chat' : '/whole') . "?$q",
                                   'text/plain', "hello $n");
        $c->{expect} = C1Mock::big_text($c->{len});
    } elsif ($c->{mode} eq 'thread') {
        $c->{req} = C1Client::post("/chat?$q", 'application/json',
            qq({"prompt":"turn $n","threadId":"$c->{thread}","stream":$s}));
        $c->{expect} = C1Mock::big_text($c->{len});
    } else {
        $c->{req} = C1Client::post("/v1/chat/completions?$q", 'application/json',
            qq({"messages":[{"role":"user","content":"hi $n"}],"stream":$s}));
        $c->{expect} = $c->{stream} ? C1Mock::big_sse($c->{len}, $c->{piece})
                                    : C1Mock::big_completion($c->{len});
    }
}

# every slow client in a process of its own, all at once
my $dir = "$C1Nginx::Root/results";
mkdir $dir;
my $start = time;
my %kids;
for my $i (0 .. $#cases) {
    my $pid = fork // die "fork: $!";
    if ($pid) {
        $kids{$pid} = $i;
        next;
    }
    my $c = $cases[$i];
    my %res;
    eval {
        my $cl = C1Client->new(port => $port, timeout => 25, pacing($c->{len}));
        $cl->send($c->{req});
        my $second;
        if ($c->{mode} eq 'thread') {
            # pipelined: the thread as it is once the turn is over
            $second = C1Client::get("/chat?threadId=$c->{thread}");
            $cl->send($second);
        }
        my $r = $cl->response;
        $res{$_} = $r->{$_} for qw(status chunked complete error);
        $res{ctype} = $r->{headers}{'content-type'};
        $res{len} = length $r->{body};
        $res{same} = $r->{body} eq $c->{expect};
        $res{diff} = first_diff($r->{body}, $c->{expect}) unless $res{same};
        $res{tail} = substr($r->{body}, -120);
        # then the next request on the same connection, read at full speed
        @$cl{qw(chunk pace)} = (65536, 0);
        if (!$second) {
            $cl->send(C1Client::post('/whole?len=100', 'text/plain', 'next'));
        }
        my $r2 = $cl->response;
        $res{status2} = $r2->{status};
        $res{complete2} = $r2->{complete};
        $res{error2} = $r2->{error};
        $res{body2} = $r2->{body};
    };
    $res{died} = $@ if $@;
    store(\%res, "$dir/$i");
    POSIX::_exit(0);
}

# bounded: every client has its own 25 s deadlines; kill what is left
my $until = time + 80;
while (%kids && time < $until) {
    my $pid = waitpid(-1, WNOHANG);
    if ($pid > 0) {
        delete $kids{$pid};
    } else {
        sleep 0.05;
    }
}
kill 'KILL', keys %kids;
waitpid($_, 0) for keys %kids;
diag(sprintf "%d slow clients in %.1f s", scalar @cases, time - $start);

for my $i (0 .. $#cases) {
    my $c = $cases[$i];
    my $r = -e "$dir/$i" ? retrieve("$dir/$i") : { died => 'no result' };
    my $name = $c->{name};
    if ($r->{died}) {
        fail("$name: the client ran ($r->{died})");
        next;
    }
    is($r->{status}, 200, "$name: 200");
    if ($c->{stream}) {
        is($r->{ctype}, 'text/event-stream', "$name: an event stream");
        ok($r->{chunked}, "$name: chunked");
    }
    ok($r->{complete}, "$name: the response ended properly"
        . ($c->{stream} ? ' (its last chunk, 0\r\n\r\n)' : ''))
        or diag("$name: $r->{len} of " . length($c->{expect})
                . " bytes, then: " . ($r->{error} // '?'));
    ok($r->{same}, "$name: every byte, in order")
        or diag("$name: $r->{len} bytes, expected " . length($c->{expect})
                . ", first difference at byte " . ($r->{diff} // '?')
                . "; it ends with: " . ($r->{tail} // ''));
    if ($c->{mode} eq 'thread') {
        is($r->{status2}, 200, "$name: the pipelined GET of the thread: 200");
        my $want = qq([{"role":"user","content":"turn @{[$i + 1]}"},)
            . qq({"role":"assistant","content":")
            . C1Mock::json_escape($c->{expect}) . '"}]';
        ok(defined $r->{body2} && C1Mock::without_ids($r->{body2}) eq $want,
           "$name: the turn is committed, whole")
            or diag("$name: the thread is "
                    . substr($r->{body2} // '', 0, 200));
    } else {
        is($r->{status2}, 200,
           "$name: the next request on the same connection: 200");
        is($r->{body2}, C1Mock::big_text(100),
           "$name: the next request on the same connection: its answer");
    }
}

my $log = C1Nginx::error_log();
unlike($log, qr/broke off/, 'slow readers: nothing "broke off" in the error log');
unlike($log, qr/\[(?:error|alert|crit|emerg)\]/,
       'slow readers: no error in the error log')
    or diag(join '', $log =~ /^(.*\[(?:error|alert|crit|emerg)\].*\n)/mg);

my $m = C1Client->new(port => $port);
$m->send(C1Client::get('/metrics'));
my $metrics = $m->response->{body} // '';
my $ok = 0;
$ok += $1 while $metrics =~ /^c1_requests_total\{[^}]*outcome="ok"\} (\d+)$/mg;
my $second = grep { $_->{mode} ne 'thread' } @cases;
is($ok, @cases + $second, 'metrics: every request counted ok');
unlike($metrics, qr/^c1_requests_total\{[^}]*outcome="(?!ok")[^"]*"\} [1-9]/m,
       'metrics: no other outcome');
like($metrics, qr/^c1_active_streams 0$/m, 'metrics: no stream left active');

# a client that stops reading for longer than send_timeout (1s): the C1
# call is abandoned, the thread stays as it was and is free for the next
# turn
my $before = length $log;
my $cl = C1Client->new(port => $port);
$cl->send(C1Client::post('/whole?len=100', 'application/json',
                         '{"prompt":"kept","threadId":"stall"}'));
is($cl->response->{status}, 200, 'stall: a first turn');
$cl->send(C1Client::get('/chat?threadId=stall'));
my $thread = $cl->response->{body};
is(C1Mock::without_ids($thread),
   '[{"role":"user","content":"kept"},{"role":"assistant","content":"'
    . C1Mock::json_escape(C1Mock::big_text(100)) . '"}]',
   'stall: the thread has its first turn');
is(scalar(() = ($thread // '') =~ /\{"id":"$C1Mock::Uuid","role":/g), 2,
   'stall: each of its two messages has a UUID id');

my $stall = C1Client->new(port => $port, rcvbuf => 4096, chunk => 2048);
my $t0 = time;
$stall->send(C1Client::post('/stall', 'application/json',
                            '{"prompt":"stalled","threadId":"stall"}'));
my $got = $stall->_line(time + 3) // '';
like($got, qr{\AHTTP/1\.1 200 }, 'stall: the stream began');
sleep 3;    # reads nothing for three times send_timeout

# all of this before the client goes: send_timeout alone must end it
my $abandoned = 0;
for (1 .. 20) {
    $log = substr(C1Nginx::error_log(), $before);
    last if ($abandoned = $log =~ /mock: endless stream dropped/);
    sleep 0.1;
}
ok($abandoned, 'stall: the C1 call was abandoned (the mock saw it go)');
like($log, qr/client timed out/, 'stall: the log says the client timed out');
open my $afh, '<', "$C1Nginx::Root/logs/access.log" or die $!;
my $access = do { local $/; <$afh> };
like($access, qr{"POST /stall HTTP/1\.1"}, 'stall: the request ended (logged)');
my $rest = $stall->drain(timeout => 3);
ok($stall->{eof}, 'stall: the server closed the connection')
    or diag('the client still got data after ' . (time - $t0) . ' s');
$stall->close;

$cl->send(C1Client::get('/chat?threadId=stall'));
is($cl->response->{body}, $thread, 'stall: the thread is unchanged');
$cl->send(C1Client::post('/whole?len=100', 'application/json',
                         '{"prompt":"after","threadId":"stall"}'));
my $r = $cl->response;
is($r->{status}, 200, 'stall: the next turn on the thread: 200 at once');
is($r->{body}, C1Mock::big_text(100), 'stall: the next turn: its answer');

$m = C1Client->new(port => $port);
$m->send(C1Client::get('/metrics'));
$metrics = $m->response->{body} // '';
like($metrics, qr/^c1_active_streams 0$/m,
     'stall: metrics: no stream left active');
like($metrics,
     qr/^c1_requests_total\{mode="prompt",stream="1",outcome="client_aborted"\} 1$/m,
     'stall: metrics: the stalled request counted once, client_aborted');

unlike(C1Nginx::error_log(), qr/\[(?:alert|crit|emerg)\]|exited on signal/,
       'no alert, no crash in the error log');

done_testing();
