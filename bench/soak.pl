#!/usr/bin/env perl
# Soak: mixed traffic (plain prompts, streamed prompts, OpenAI calls with
# threads, bad input, clients that go away mid-stream, slow readers) at a
# set concurrency against an edge nginx (a master, two workers) in front of
# the mock C1, and one worker killed with kill -9 in the middle of the
# first round.  Afterwards the workers' RSS and open descriptors must be
# back at their baseline, no worker may have crashed but the one killed
# (exactly one "exited on signal 9" in the error log, no other signal),
# and every response must have been right or a documented error.  Exits
# non-zero when one of these fails.
#
#   bench/soak.pl [--seconds S] [--concurrency C] [--rounds R] [--slow N]
#                 [--no-kill] [--dry-run]
#   bench/soak.pl --redis [bench/soak-redis.pl's options]
#       threads in Redis: two nodes, Redis restarted (bench/soak-redis.pl)
#
# Slow readers: N of the clients (default C/20, at least 2) read with a
# 4 KB SO_RCVBUF, 2 KB every 100 ms, an 80 KB answer, streamed and not,
# from a listener with a small sndbuf: every byte must arrive, in order,
# ended properly.  A request the kill cut off (served by the killed worker,
# or cut before its header while the kill happened) is counted apart, as
# the one caused failure; nothing else is excused.  With the kill, the new
# worker the master starts gets warm-up rounds of its own before a last
# round measures it, so the run takes at least two rounds.
#
# The answers are the project's component tree examples/mock/trees/table.json
# and the mock's numbered 1 KiB pieces.  Ports: BENCH_PORT (default 19611)
# and the next two.

use strict;
use warnings;

use File::Basename qw(dirname);
use Getopt::Long;
use IO::Select;
use IO::Socket::INET;
use POSIX qw(_exit);
use Socket qw(PF_INET SOCK_STREAM SOL_SOCKET SO_RCVBUF IPPROTO_TCP
              pack_sockaddr_in inet_aton);
use Time::HiRes qw(time sleep);

use lib dirname(__FILE__) . '/lib';
use C1Bench;

# --redis: the soak with threads in Redis, two nodes, Redis restarted
if (grep { $_ eq '--redis' } @ARGV) {
    exec($^X, dirname(__FILE__) . '/soak-redis.pl',
         grep { $_ ne '--redis' } @ARGV) or die "soak-redis.pl: $!\n";
}

my %o = (seconds => 60, concurrency => 200, rounds => 1, kill => 1);
GetOptions(\%o, 'seconds=i', 'concurrency=i', 'rounds=i', 'slow=i', 'kill!',
           'dry-run')
    or die "usage: $0 [--seconds S] [--concurrency C] [--rounds R] "
         . "[--slow N] [--no-kill] [--dry-run]\n";
$o{slow} //= int($o{concurrency} / 20);
$o{slow} = 2 if $o{slow} < 2;
$o{slow} = $o{concurrency} - 1 if $o{slow} >= $o{concurrency};
$o{rounds} = 2 if $o{kill} && $o{rounds} < 2;

my $mock_port = $ENV{BENCH_PORT} || 19611;
my ($edge_port, $slow_port) = ($mock_port + 1, $mock_port + 2);
my $top = $C1Bench::Top;
my $fixture = C1Bench::fixture('table');

-f $C1Bench::Module or die "build the module first (make)\n";

# what a slow reader must get: the mock's bytes=81920 content
my $slow_bytes = 81920;
my $slow_expect = join '', map { sprintf('%010d', $_) . ('x' x 1014) }
                           0 .. $slow_bytes / 1024 - 1;

if ($o{'dry-run'}) {
    print "soak: would answer with $fixture (ports $mock_port, $edge_port, "
        . "$slow_port)\n";
    exit 0;
}

C1Bench::mock('soak-mock', $mock_port, $fixture);

C1Bench::server('soak-edge', "load_module $C1Bench::Module;\n", <<"_EOC_", 2);
    upstream mock_c1 {
        server 127.0.0.1:$mock_port;
        keepalive 16;
    }
    c1_history_zone zone=threads:8m max_messages=6;

    c1_api_key sk-soak;
    c1_model c1/soak/model;
    c1_system_prompt "You are a soak test.";

    # which worker answered: a request cut by the kill is told apart
    add_header X-Worker \$pid always;

    server {
        listen 127.0.0.1:$edge_port backlog=65535;
        keepalive_requests 1000000;

        location = /chat { c1_pass /_c1; }
        location = /stream {
            set \$mock_args "n=40&interval=5";
            c1_stream on;
            c1_history threads;
            c1_pass /_c1;
        }
        location = /v1/chat/completions { c1_pass /_c1; }

        location = /_c1 {
            internal;
            proxy_pass http://mock_c1/v1/embed/chat/completions?\$mock_args;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }

    # the slow readers' listener: a small send buffer, so that their
    # answers wait in nginx rather than in the kernel
    server {
        listen 127.0.0.1:$slow_port backlog=1024 sndbuf=8k;

        location = /slow { set \$mock_args "bytes=$slow_bytes"; c1_pass /_c1; }
        location = /slow-stream {
            set \$mock_args "bytes=$slow_bytes";
            c1_stream on;
            c1_pass /_c1;
        }

        location = /_c1 {
            internal;
            proxy_pass http://mock_c1/v1/embed/chat/completions?\$mock_args;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
_EOC_

my @workers = C1Bench::workers('soak-edge');
my $victim = $o{kill} ? $workers[0] : 0;

sub measure {
    my @pids = @_ ? @_ : @workers;
    return { map { $_ => [C1Bench::rss_kb($_, 'RssAnon'),
                          C1Bench::fds($_, $mock_port),
                          C1Bench::rss_kb($_)] } @pids };
}


sub http {
    my ($path, $body, $abort) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$edge_port",
                                  Timeout => 10) or return (0, '');
    print $s "POST $path HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        . "Content-Type: application/json\r\nContent-Length: "
        . length($body) . "\r\n\r\n$body";
    if ($abort) {
        sysread($s, my $buf, 200);
        close $s;
        return (-1, '');
    }
    local $/;
    my $res = <$s> // '';
    my ($status) = $res =~ m{^HTTP/1\.1 (\d+)};
    return ($status // 0, $res);
}

# a slow reader: a 4 KB receive buffer, 2 KB every 100 ms, at most 60 s
sub slow_http {
    my ($path, $body) = @_;
    socket(my $s, PF_INET, SOCK_STREAM, 0) or return '';
    setsockopt($s, SOL_SOCKET, SO_RCVBUF, 4096);
    connect($s, pack_sockaddr_in($slow_port, inet_aton('127.0.0.1')))
        or return '';
    my $req = "POST $path HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        . "Content-Type: application/json\r\nContent-Length: "
        . length($body) . "\r\n\r\n$body";
    syswrite($s, $req) == length($req) or return '';

    my $sel = IO::Select->new($s);
    my $res = '';
    my $until = time + 60;
    while (time < $until) {
        last unless $sel->can_read(10);
        my $n = sysread($s, my $buf, 2048);
        last unless $n;
        $res .= $buf;
        sleep 0.1;
    }
    close $s;
    return $res;
}

my @kinds = qw(plain stream openai bad abort slow slow-stream);

# one client: a loop of random requests (slow ones for a slow client), each
# checked; returns {kind => [right, wrong, cut]} and the first wrong ones
sub client {
    my ($id, $until, $slow, $kill_at) = @_;
    my %n = map { $_ => [0, 0, 0] } @kinds;
    my @wrong;
    srand($id);
    my $turn = 0;

    while (time < $until) {
        my ($kind, $res, $ok);
        my $t0 = time;

        if ($slow) {
            $kind = $turn++ % 2 ? 'slow-stream' : 'slow';
            $res = slow_http("/$kind", '{"prompt":"a long answer"}');
            my ($status, undef, $body, $ended) = C1Bench::parse_response($res);
            $ok = $status && $status == 200 && $ended && $body eq $slow_expect;
        } else {
            my $k = int rand 5;
            my $status;
            if ($k == 0) {
                $kind = 'plain';
                ($status, $res) = http('/chat', '{"prompt":"a table"}');
                $ok = $status == 200
                      && $res =~ /\r\n\r\n<content thesys="true">.*<\/content>\z/s;
            } elsif ($k == 1) {
                $kind = 'stream';
                $turn++;
                ($status, $res) = http('/stream',
                    qq({"prompt":"turn $turn","threadId":"soak-$id"}));
                # a stream ends with its last chunk; two turns of one client
                # never race, so 409 would be wrong too
                $ok = $status == 200
                      && $res =~ /<\/content>\[\[T\d+\]\]\r\n0\r\n\r\n\z/s;
            } elsif ($k == 2) {
                $kind = 'openai';
                ($status, $res) = http('/v1/chat/completions',
                    '{"messages":[{"role":"user","content":"x"}]}');
                $ok = $status == 200 && $res =~ /"object":"chat\.completion"/;
            } elsif ($k == 3) {
                $kind = 'bad';
                ($status, $res) = http('/chat', '{"prompt": [1, 2');
                $ok = $status == 400 && $res =~ /"code":"invalid_json"/;
            } else {
                $kind = 'abort';
                http('/stream',
                     qq({"prompt":"gone","threadId":"soak-gone-$id"}), 1);
                $res = '';
                $ok = 1;
            }
        }

        my $t1 = time;
        if ($ok) {
            $n{$kind}[0]++;
            next;
        }

        # cut by the kill: under way when it happened, and answered by the
        # killed worker or cut before any header
        my ($worker) = $res =~ /^X-Worker: (\d+)\r?$/mi;
        if ($kill_at && $victim && $t0 <= $kill_at + 0.5 && $t1 >= $kill_at
            && (!defined $worker || $worker == $victim))
        {
            $n{$kind}[2]++;
            next;
        }

        $n{$kind}[1]++;
        if (@wrong < 3) {
            my ($status, undef, $body, $ended) = C1Bench::parse_response($res);
            my $tail = substr($res, -60);
            $tail =~ s/([^\x20-\x7e])/sprintf('\\x%02x', ord $1)/ge;
            push @wrong, sprintf("%s: status %s, %d body bytes, %s, "
                . "worker %s, ends \"%s\"", $kind, $status || 'none',
                length($body), $ended ? 'ended' : 'not ended',
                $worker // '?', $tail);
        }
    }

    return (\%n, \@wrong);
}

my %total = map { $_ => [0, 0, 0] } @kinds;
my @examples;

# run(SECONDS [, KILL]): the clients, in parallel, their results added to
# %total; with KILL, one worker killed with kill -9 half-way
sub run {
    my ($seconds, $kill) = @_;
    my $start = time;
    my $until = $start + $seconds;
    my $kill_at = $kill ? $start + $seconds / 2 : 0;
    my @kids;

    for my $id (1 .. $o{concurrency}) {
        pipe(my $r, my $w) or die $!;
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            close $r;
            my ($n, $wrong) = client($id, $until, $id <= $o{slow}, $kill_at);
            print $w join(' ', map { "$_=" . join(',', @{ $n->{$_} }) }
                               @kinds), "\n";
            print $w "$_\n" for @$wrong;
            close $w;
            _exit(0);
        }
        close $w;
        push @kids, [$pid, $r];
    }

    if ($kill) {
        sleep($kill_at - time) if $kill_at > time;
        kill 'KILL', $victim or die "cannot kill worker $victim: $!\n";
        printf "  killed worker %d with kill -9 at %.1f s\n", $victim,
            time - $start;
    }

    for my $k (@kids) {
        my $fh = $k->[1];
        my $line = readline($fh) // '';
        for my $f (split ' ', $line) {
            my ($kind, $c) = split /=/, $f;
            my @c = split /,/, $c;
            $total{$kind}[$_] += $c[$_] for 0 .. 2;
        }
        while (my $l = readline($fh)) {
            chomp $l;
            push @examples, $l if @examples < 10;
        }
        waitpid($k->[0], 0);
    }

    sleep 5;    # let aborted streams and idle connections settle
}

# warm-up rounds (20 s each) of the same mix until a round leaves the
# private memory of every worker in PIDS where the previous one did
# (allocator high-water marks, nginx's free lists, upstream keepalive
# connections are then in place); at most 6; returns the last measures
sub warm_up {
    my ($what, @pids) = @_;
    my $before = {};
    for my $warm (1 .. 6) {
        run(20);
        my $now = measure(@pids);
        my $steady = $warm > 1
            && !grep { ($before->{$_}[0] // -1) != $now->{$_}[0] } @pids;
        printf "  warm-up %d%s: private RSS %s KiB%s\n", $warm, $what,
            join(', ', map { $now->{$_}[0] } @pids),
            $steady ? ' (steady)' : '';
        $before = $now;
        last if $steady;
    }
    return $before;
}

# the baseline is the workers' steady state
my $before = warm_up('', @workers);

# with --rounds, the memory after each round: a leak grows round after
# round, allocator fragmentation levels off; the kill in the first
my $after;
for my $round (1 .. $o{rounds}) {
    run($o{seconds}, $o{kill} && $round == 1);

    if ($o{kill} && $round == 1) {
        my %old = map { $_ => 1 } @workers;
        for (1 .. 100) {
            @workers = C1Bench::workers('soak-edge');
            last if @workers == 2 && !grep { $_ == $victim } @workers;
            sleep 0.05;
        }
        my @new = grep { !$old{$_} } @workers;
        printf "  the master started worker %s\n", join(', ', @new) || 'none';
        my $base = warm_up(' of the new worker', @new);
        $before->{$_} = $base->{$_} for @new;
        next;
    }

    $after = measure();
    printf "  after round %d: private RSS %s KiB\n", $round,
        join(', ', map { $after->{$_}[0] } @workers) if $o{rounds} > 1;
}
my $seconds = $o{seconds} * $o{rounds};

my $log = C1Bench::error_log('soak-edge');
my @signals = $log =~ /exited on signal (\d+)/g;
my @caused = grep { /worker process $victim exited on signal 9\b/
                    || /was locked by $victim\b/ }
             grep { $victim } split /\n/, $log;
my $alerts = () = $log =~ /\[(?:alert|crit|emerg)\]/g;
$alerts -= grep { /\[(?:alert|crit|emerg)\]/ } @caused;

my ($ok, $wrong, $cut) = (0, 0, 0);
for my $k (@kinds) {
    $ok += $total{$k}[0];
    $wrong += $total{$k}[1];
    $cut += $total{$k}[2];
}

printf "Soak: %d s (and warm-up rounds), %d clients (%d slow readers), %d "
    . "requests (warm-up rounds too): %d right or documented errors, %d wrong, "
    . "%d cut by the kill\n",
    $seconds, $o{concurrency}, $o{slow}, $ok + $wrong + $cut, $ok, $wrong,
    $cut;
printf "  %-12s right %6d  wrong %5d  cut by the kill %3d\n", $_,
    @{ $total{$_} } for @kinds;
print "  wrong, for example: $_\n" for @examples;

my $bad = $wrong || $alerts || !$ok;

# no crash but the one caused
if ($o{kill}) {
    my $nine = grep { $_ == 9 } @signals;
    $bad ||= @signals != 1 || $nine != 1;
    # the cut requests: at most those the killed worker had
    $bad ||= $cut > $o{concurrency};
} else {
    $bad ||= @signals;
}

for my $pid (@workers) {
    my ($r0, $f0, $v0) = @{ $before->{$pid} || [0, 0, 0] };
    my ($r1, $f1, $v1) = @{ $after->{$pid} || [0, 0, 0] };
    printf "  worker %d: private RSS %d KiB -> %d KiB (%+d KiB), fds %d -> %d "
        . "(not counting keepalive connections to the mock C1) "
        . "(RSS with shared zones %d -> %d KiB)\n",
        $pid, $r0, $r1, $r1 - $r0, $f0, $f1, $v0, $v1;
    # a leak grows with the requests served; allow one 64k malloc arena
    # growth over the baseline, no descriptor
    $bad ||= !$r0 || !$r1 || $f1 > $f0 || $r1 - $r0 > 256;
}

printf "  workers exited on a signal: %d (%s; caused: %s), "
    . "other alert/crit lines: %d\n", scalar @signals,
    join(', ', map { "signal $_" } @signals) || 'none',
    $o{kill} ? "one kill -9 of worker $victim" : 'none', $alerts;
print "  caused: $_\n" for @caused;
print $bad ? "SOAK FAILED\n" : "soak passed\n";
exit($bad ? 1 : 0);
