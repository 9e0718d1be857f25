# A worker killed with kill -9 in the middle of streamed turns, on a real
# nginx with a master and two workers (issue 13): its streams are cut, the
# other worker's streams go on to their end and are committed, the master's
# new worker serves, the killed turns' threads are as they were and free
# at once for a new turn, the metrics stay whole and consistent.
#
# The mock C1 runs in an nginx of its own (port C1_TEST_PORT + 1), so that
# the kill takes nothing of the mock's with it.

use strict;
use warnings;

use Test::More;
use Cwd qw(abs_path);
use File::Path qw(make_path remove_tree);
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use lib 't/lib';
use C1Nginx;
use C1Mock;
use C1Client;

my $mock_port = $C1Nginx::Port + 1;
my $mock_root = abs_path('t') . '/servroot-mock';

# the mock C1's own nginx: one process
sub start_mock {
    remove_tree($mock_root);
    make_path("$mock_root/conf", "$mock_root/logs");
    my $modules = join '', map { "load_module $_;\n" }
                  split ' ', ($ENV{TEST_NGINX_LOAD_MODULES} || '');
    open my $fh, '>', "$mock_root/conf/nginx.conf" or die $!;
    print $fh <<"_EOC_";
$modules
worker_processes 1;
daemon on;
master_process off;
error_log logs/error.log info;
pid logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    server {
        listen 127.0.0.1:$mock_port;
$C1Mock::MockLocations
    }
}
_EOC_
    close $fh;
    system($C1Nginx::Binary, '-p', "$mock_root/", '-c', 'conf/nginx.conf') == 0
        or die "cannot start the mock's nginx";
    for (1 .. 100) {
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$mock_port");
        return if $s;
        sleep 0.05;
    }
    die "the mock's nginx does not listen on port $mock_port";
}

my $mock_started;
END {
    if ($mock_started) {
        system("$C1Nginx::Binary -p '$mock_root/' -c conf/nginx.conf -s stop 2>/dev/null");
    }
}

start_mock();
$mock_started = 1;

my $conf = <<'_EOC_';
    c1_history_zone zone=threads:1m;

    server {
        listen 127.0.0.1:$C1_TEST_PORT reuseport;

        c1_model m;
        c1_history threads;
        add_header X-Worker $pid always;

        location = /chat { c1_pass /_c1; }
        location = /slow { c1_stream on; c1_pass /_c1_slow; }
        location = /metrics { c1_metrics; }

        location = /_c1 {
            internal;
            proxy_pass http://127.0.0.1:$MOCK_PORT/mock/echo-messages;
        }

        # 9 events, 400 ms apart
        location = /_c1_slow {
            internal;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:$MOCK_PORT/mock/sse?delay=400;
        }
    }
_EOC_
$conf =~ s/\$MOCK_PORT/$mock_port/g;

my $port = C1Nginx::start($conf, workers => 2);

sub call {
    my ($req) = @_;
    my $c = C1Client->new(port => $port, timeout => 5);
    $c->send($req);
    my $r = $c->response;
    $c->close;
    return $r;
}

sub turn {
    my ($thread, $prompt) = @_;
    return call(C1Client::post('/chat', 'application/json',
                               qq({"prompt":"$prompt","threadId":"$thread"})));
}

sub thread { call(C1Client::get("/chat?threadId=$_[0]")) }

sub one_turn {
    my ($prompt) = @_;
    return qq({"role":"user","content":"$prompt"},)
        . qq({"role":"assistant","content":"user:$prompt"});
}

my $streamed = '{"role":"assistant","content":"'
    . C1Mock::json_escape($C1Mock::StreamText) . '"}';

my @w;
for (1 .. 100) {
    @w = C1Nginx::workers();
    last if @w == 2;
    sleep 0.05;
}
is(scalar @w, 2, 'two workers');

my ($ok_turns, $ok_streams) = (0, 0);

# streams on threads that have a turn already, until both workers have two
my (@streams, %on);
for my $i (1 .. 12) {
    my $r = turn("s$i", "before $i");
    $ok_turns++ if $r->{status} == 200;
    # the worker is known from a quick request on the connection, and the
    # stream then starts on it at once: every stream is still running
    # when the worker is killed, however many it took to reach both
    my $c = C1Client->new(port => $port, timeout => 10);
    $c->send(C1Client::get("/chat?threadId=s$i"));
    my $pid = $c->response->{headers}{'x-worker'} // '?';
    $c->send(C1Client::post('/slow', 'application/json',
                            qq({"prompt":"streamed $i","threadId":"s$i"})));
    push @streams, { i => $i, c => $c, pid => $pid };
    $on{$pid}++;
    last if keys %on >= 2 && !grep { $_ < 2 } values %on;
}
ok(keys %on == 2 && !grep({ $_ < 2 } values %on), 'two streams or more running on each worker: '
    . join(', ', map { "$_ ($on{$_})" } sort keys %on));

my $victim = $streams[0]{pid};
my ($survivor) = grep { $_ ne $victim } @w;
sleep 1;       # every stream has its header, none has ended
ok(kill('KILL', $victim), "worker $victim killed mid-stream");
my $killed = time;

for my $s (@streams) {
    my $r = $s->{c}->response;
    my $name = "stream $s->{i} (worker $s->{pid})";
    is($r->{status}, 200, "$name: 200");
    if ($s->{pid} eq $victim) {
        ok(!$r->{complete}, "$name: cut, without its last chunk");
        $s->{c}->close;
        next;
    }
    ok($r->{complete}, "$name, on the other worker: ended properly");
    is($r->{body}, $C1Mock::StreamText, "$name, on the other worker: whole");
    $ok_streams++ if $r->{complete};
    # keep-alive: the next request on the same connection
    $s->{c}->send(C1Client::get("/chat?threadId=s$s->{i}"));
    my $r2 = $s->{c}->response;
    is($r2->{status}, 200, "$name: keep-alive, the next request");
    is(C1Mock::without_ids($r2->{body}), '[' . one_turn("before $s->{i}")
        . qq(,{"role":"user","content":"streamed $s->{i}"},$streamed]),
       "$name: its turn is committed after the earlier one");
    $s->{c}->close;
}

# the master's new worker
my @now;
for (1 .. 100) {
    @now = C1Nginx::workers();
    last if @now == 2 && !grep { $_ eq $victim } @now;
    sleep 0.05;
}
is(scalar(grep { $_ ne $victim } @now), 2, 'the master started a new worker');
ok((grep { $_ eq $survivor } @now), "the other worker ($survivor) goes on");
my ($new) = grep { $_ ne $survivor } @now;

# new connections: both workers serve
my (%served, $all_ok);
$all_ok = 1;
for my $i (1 .. 20) {
    my $r = turn("n$i", "new $i");
    $all_ok &&= $r->{status} == 200 && $r->{body} eq "user:new $i";
    $ok_turns++ if $r->{status} == 200;
    $served{$r->{headers}{'x-worker'} // '?'}++;
}
ok($all_ok, 'twenty turns after the kill: every one 200 and right');
ok($served{$new}, "the new worker ($new) serves");
ok($served{$survivor}, "the other worker ($survivor) serves");
is(scalar(grep { $_ ne $new && $_ ne $survivor } keys %served), 0,
   'nothing else serves') or diag(join ' ', keys %served);

# the killed turns' threads: as they were, and free at once
for my $s (grep { $_->{pid} eq $victim } @streams) {
    my $t = "s$s->{i}";
    my $r = thread($t);
    is($r->{status}, 200, "thread $t of a killed turn: there");
    is(C1Mock::without_ids($r->{body}), '[' . one_turn("before $s->{i}") . ']',
       "thread $t of a killed turn: its earlier turn, intact, nothing more");
    my $t0 = time;
    $r = turn($t, "again $s->{i}");
    is($r->{status}, 200, "thread $t of a killed turn: a new turn at once: 200")
        or diag("got $r->{status} $r->{body}");
    ok(time - $t0 < 1, "thread $t: without waiting");
    $ok_turns++ if $r->{status} == 200;
    my $body = thread($t)->{body};
    is(C1Mock::without_ids($body), '[' . one_turn("before $s->{i}") . ','
        . qq({"role":"user","content":"again $s->{i}"},)
        . qq({"role":"assistant","content":"user:before $s->{i} | )
        . qq(assistant:user:before $s->{i} | user:again $s->{i}"}]),
       "thread $t: the new turn follows the earlier one");
    is(scalar(() = ($body // '') =~ /\{"id":"$C1Mock::Uuid","role":/g), 4,
       "thread $t: each of its four messages has a UUID id");
}

# the metrics: whole, and consistent with what was answered
my $m = call(C1Client::get('/metrics'));
is($m->{status}, 200, 'metrics: 200');
my $page = $m->{body} // '';
like($page, qr/^c1_requests_total\{mode="prompt",stream="0",outcome="ok"\} $ok_turns$/m,
     "metrics: the $ok_turns turns, counted once each");
like($page, qr/^c1_requests_total\{mode="prompt",stream="1",outcome="ok"\} $ok_streams$/m,
     "metrics: the $ok_streams streams that ended, counted once each");
unlike($page, qr/^c1_requests_total\{[^}]*outcome="(?!ok")[^"]*"\} [1-9]/m,
       'metrics: no other outcome counted');
like($page, qr/^c1_active_streams 0$/m,
     'metrics: no stream counted as active (none runs)');
my $n_s = @streams;
my $n_victims = grep { $_->{pid} eq $victim } @streams;
like($page, qr/^c1_history_threads\{zone="threads"\} @{[$n_s + 20]}$/m,
     'metrics: every thread kept, counted once');
like($page, qr/^c1_history_messages\{zone="threads"\} @{[4 * $n_s + 2 * 20]}$/m,
     'metrics: every message kept, counted once');

my $log = C1Nginx::error_log();
like($log, qr/worker process $victim exited on signal 9/,
     'the log: the worker killed');
my @crashes = $log =~ /(worker process \d+ exited on signal \d+)/g;
is(scalar @crashes, 1, 'no other crash') or diag(join "\n", @crashes);
unlike($log, qr/\[(?:alert|crit|emerg)\](?!.*exited on signal 9)/,
       'no alert in the error log, other than the kill');

done_testing();
