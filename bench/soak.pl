#!/usr/bin/env perl
# Soak: mixed traffic (plain prompts, streamed prompts, OpenAI calls with
# threads, bad input, clients that go away mid-stream) at a set concurrency
# against an edge nginx (a master, two workers) in front of the mock C1.
# Afterwards the workers' RSS and open descriptors must be back at their
# baseline, no worker may have crashed, and every response must have been
# right or a documented error.  Exits non-zero when one of these fails.
#
#   bench/soak.pl [--seconds S] [--concurrency C]

use strict;
use warnings;

use File::Basename qw(dirname);
use Getopt::Long;
use IO::Socket::INET;
use POSIX qw(_exit);
use Time::HiRes qw(time sleep);

use lib dirname(__FILE__) . '/lib';
use C1Bench;

my %o = (seconds => 60, concurrency => 200, rounds => 1);
GetOptions(\%o, 'seconds=i', 'concurrency=i', 'rounds=i')
    or die "usage: $0 [--seconds S] [--concurrency C] [--rounds R]\n";

my ($mock_port, $edge_port) = (19611, 19612);
my $top = $C1Bench::Top;
my $fixture = C1Bench::fixture('simple-table');

-f $C1Bench::Module or die "build the module first (make)\n";

C1Bench::mock('soak-mock', $mock_port, $fixture);

C1Bench::server('soak-edge', "load_module $C1Bench::Module;\n", <<"_EOC_", 2);
    upstream mock_c1 {
        server 127.0.0.1:$mock_port;
        keepalive 16;
    }
    c1_history_zone zone=threads:8m max_messages=6;

    server {
        listen 127.0.0.1:$edge_port backlog=65535;
        keepalive_requests 1000000;

        c1_api_key sk-soak;
        c1_model c1/soak/model;
        c1_system_prompt "You are a soak test.";

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
_EOC_

my @workers = C1Bench::workers('soak-edge');

sub measure {
    return { map { $_ => [C1Bench::rss_kb($_, 'RssAnon'),
                          C1Bench::fds($_, $mock_port),
                          C1Bench::rss_kb($_)] } @workers };
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

# one client: a loop of random requests, each checked
sub client {
    my ($id, $until) = @_;
    my %n = (ok => 0, wrong => 0);
    srand($id);
    my $turn = 0;

    while (time < $until) {
        my $kind = int rand 5;
        my ($status, $res);

        if ($kind == 0) {
            ($status, $res) = http('/chat', '{"prompt":"a table"}');
            $n{ ($status == 200 && $res =~ /\r\n\r\n<content thesys="true">.*<\/content>\z/s)
                 ? 'ok' : 'wrong' }++;
        } elsif ($kind == 1) {
            $turn++;
            ($status, $res) = http('/stream',
                qq({"prompt":"turn $turn","threadId":"soak-$id"}));
            # a stream ends with its last chunk; two turns of one client
            # never race, so 409 would be wrong too
            $n{ ($status == 200 && $res =~ /<\/content>\[\[T\d+\]\]\r\n0\r\n\r\n\z/s)
                 ? 'ok' : 'wrong' }++;
        } elsif ($kind == 2) {
            ($status, $res) = http('/v1/chat/completions',
                '{"messages":[{"role":"user","content":"x"}]}');
            $n{ ($status == 200 && $res =~ /"object":"chat\.completion"/)
                 ? 'ok' : 'wrong' }++;
        } elsif ($kind == 3) {
            ($status, $res) = http('/chat', '{"prompt": [1, 2');
            $n{ ($status == 400 && $res =~ /"code":"invalid_json"/)
                 ? 'ok' : 'wrong' }++;
        } else {
            http('/stream', qq({"prompt":"gone","threadId":"soak-gone-$id"}), 1);
            $n{ok}++;
        }
    }

    return \%n;
}

# run(SECONDS): the clients, in parallel; returns (right, wrong)
sub run {
    my ($seconds) = @_;
    my $until = time + $seconds;
    my @kids;

    for my $id (1 .. $o{concurrency}) {
        pipe(my $r, my $w) or die $!;
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            close $r;
            my $n = client($id, $until);
            print $w "$n->{ok} $n->{wrong}\n";
            close $w;
            _exit(0);
        }
        close $w;
        push @kids, [$pid, $r];
    }

    my ($ok, $wrong) = (0, 0);
    for my $k (@kids) {
        my ($a, $b) = split ' ', (readline($k->[1]) // "0 0\n");
        $ok += $a;
        $wrong += $b;
        waitpid($k->[0], 0);
    }

    sleep 5;    # let aborted streams and idle connections settle
    return ($ok, $wrong);
}

# the baseline is the workers' steady state: warm-up rounds of the same
# mix (20 s each) until a round leaves every worker's private memory where
# the previous one did (allocator high-water marks, nginx's free lists,
# upstream keepalive connections are then in place); at most 6 rounds
my $before = {};
for my $warm (1 .. 6) {
    run(20);
    my $now = measure();
    my $steady = $warm > 1
        && !grep { ($before->{$_}[0] // -1) != $now->{$_}[0] } @workers;
    printf "  warm-up %d: private RSS %s KiB%s\n", $warm,
        join(', ', map { $now->{$_}[0] } @workers), $steady ? ' (steady)' : '';
    $before = $now;
    last if $steady;
}

# with --rounds, the memory after each round: a leak grows round after
# round, allocator fragmentation levels off
my ($ok, $wrong) = (0, 0);
my $after;
for my $round (1 .. $o{rounds}) {
    my ($a, $b) = run($o{seconds});
    $ok += $a;
    $wrong += $b;
    $after = measure();
    printf "  after round %d: private RSS %s KiB\n", $round,
        join(', ', map { $after->{$_}[0] } @workers) if $o{rounds} > 1;
}
$o{seconds} *= $o{rounds};
my $log = C1Bench::error_log('soak-edge');
my $crashed = () = $log =~ /exited on signal/g;
my $alerts = () = $log =~ /\[(?:alert|crit|emerg)\]/g;

printf "Soak: %d s, %d clients, %d requests (%.0f/s): %d right or documented "
    . "errors, %d wrong\n", $o{seconds}, $o{concurrency}, $ok + $wrong,
    ($ok + $wrong) / $o{seconds}, $ok, $wrong;

my $bad = $wrong || $crashed || $alerts;

for my $pid (@workers) {
    my ($r0, $f0, $v0) = @{ $before->{$pid} };
    my ($r1, $f1, $v1) = @{ $after->{$pid} || [0, 0, 0] };
    printf "  worker %d: private RSS %d KiB -> %d KiB (%+d KiB), fds %d -> %d "
        . "(not counting keepalive connections to the mock C1) "
        . "(RSS with shared zones %d -> %d KiB)\n",
        $pid, $r0, $r1, $r1 - $r0, $f0, $f1, $v0, $v1;
    # a leak grows with the requests served; allow one 64k malloc arena
    # growth over the baseline, no descriptor
    $bad ||= !$r1 || $f1 > $f0 || $r1 - $r0 > 256;
}

printf "  workers crashed: %d, alert/crit lines: %d\n", $crashed, $alerts;
print $bad ? "SOAK FAILED\n" : "soak passed\n";
exit($bad ? 1 : 0);
