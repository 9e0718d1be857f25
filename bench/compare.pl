#!/usr/bin/env perl
# The module against what a user would pick instead, side by side in one
# run, on one machine, against one mock C1 (bench/mock-c1.lua): every
# contender of bench/contenders/ takes a {"prompt"} POST, calls the mock
# with model, system prompt and key, and returns the content or relays the
# deltas.  Writes bench/RESULTS.md and bench/results.png.
#
#   bench/compare.pl [--seconds S] [--rounds N] [--streams N] [--runs R]
#                     [--only NAME,...] [--dry-run]
#
# The mock answers examples/mock/trees/dashboard.json, the project's own
# component tree. Ports: the mock on BENCH_PORT (default 19810), the
# contenders on the next ones, the callgrind run on BENCH_PORT + 9 (by
# default 19890). --dry-run finds what the run would read (tree, module,
# contenders) and stops.

use strict;
use warnings;

use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use Getopt::Long;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);

use lib dirname(__FILE__) . '/lib';
use C1Bench;

my %o = (seconds => 5, rounds => 5, streams => 1000, runs => 10,
         only => '', pin => 1);
GetOptions(\%o, 'seconds=i', 'rounds=i', 'streams=i', 'runs=i', 'only=s',
           'pin!', 'dry-run')
    or die "usage: $0 [--seconds S] [--rounds N] [--streams N] [--runs R] "
         . "[--only a,b] [--no-pin] [--dry-run]\n";

# The load on one core, the contender on the other: this script, wrk and
# the mock C1 on core 0, each contender's processes (all their threads) on
# core 1, so that the contender has a core to itself and the scheduler's
# placement of three busy processes on two cores does not decide the
# figures (unpinned, the same run varies by 10-20 %).
$o{pin} = 0 if `nproc --all` < 2
                || system('command -v taskset >/dev/null') != 0;

sub pin {
    my ($cpu, @pids) = @_;
    return unless $o{pin};
    system("taskset -apc $cpu $_ >/dev/null") for @pids;
}

pin(0, $$);

my $top = $C1Bench::Top;
my $dir = "$top/bench/contenders";
my $mock_port = $ENV{BENCH_PORT} || 19810;
my $cg_port = $ENV{BENCH_PORT} ? $mock_port + 9 : 19890;    # callgrind's
my $fixture = C1Bench::fixture('dashboard');

my @names = qw(direct module retry limit openai plain lua njs fastapi node);
@names = grep { $_ ne 'callgrind' } split /,/, $o{only} if $o{only};

my $prompt = '{"prompt":"Show me a product analytics dashboard"}';
my $c1 = '{"model":"c1/bench/model","messages":[{"role":"system","content":'
    . '"You are a benchmark."},{"role":"user","content":"Show me a product '
    . 'analytics dashboard"}]}';
my $openai = '{"messages":[{"role":"user","content":"Show me a product '
    . 'analytics dashboard"}]}';

# what each contender is sent, and where
my %job = (
    direct  => [undef, '/v1/embed/chat/completions', $c1],
    module  => ['module', '/chat', $prompt],
    retry   => ['retry', '/chat', $prompt],
    limit   => ['limit', '/chat', $prompt],
    openai  => ['module', '/v1/chat/completions', $openai],
    plain   => ['plain', '/chat', $c1],
    lua     => ['lua', '/chat', $prompt],
    njs     => ['njs', '/chat', $prompt],
    fastapi => ['fastapi', '/chat', $prompt],
    node    => ['node', '/chat', $prompt],
);

if ($o{'dry-run'}) {
    -f $C1Bench::Module or die "build the module first (make)\n";
    for my $name (@names) {
        my ($kind) = @{ $job{$name} // die "no contender $name\n" };
        next unless defined $kind;
        -x "$dir/$kind/start" or die "no $dir/$kind/start\n";
    }
    -f "$top/bench/mock-c1.lua" or die "no bench/mock-c1.lua\n";
    print "compare: would run @names against the mock answering $fixture "
        . "(ports $mock_port..." . ($mock_port + @names) . ")\n";
    exit 0;
}

C1Bench::mock('cmp-mock', $mock_port, $fixture);
my @mock_pids = C1Bench::workers('cmp-mock');
pin(0, @mock_pids);

my (%r, %live, %runs);
my $port = $mock_port + 1;

# every contender up at once, each on its port of its own
for my $name (@names) {
    my ($kind) = @{ $job{$name} };
    my $run = "$C1Bench::Root/cmp-$name";

    if (!defined $kind) {

        # the mock itself, straight: the baseline of added latency
        $live{$name} = { port => $mock_port, pids => [@mock_pids] };
        next;
    }

    remove_tree($run);
    make_path($run);

    if (system("$dir/$kind/start $port $mock_port $run") != 0) {
        warn "$name: could not start, left out\n";
        next;
    }

    my @pids = do { open my $fh, '<', "$run/pids" or die $!;
                    map { chomp; $_ } <$fh> };
    pin(1, @pids);
    $live{$name} = { port => $port, pids => \@pids, run => $run,
                     kind => $kind };
    print STDERR "$name: port $port, pids @pids\n";
    $port++;
}

my @up = grep { $live{$_} } @names;

# throughput and latency, not streamed: rounds in which each contender
# takes its turn (in the other order every second round), so that what
# else the machine does falls on all of them alike; the median of the
# rounds counts
for my $round (1 .. $o{rounds}) {
    for my $c (1, 16, 128) {
        for my $name ($round % 2 ? @up : reverse @up) {
            my ($kind, $path, $body) = @{ $job{$name} };
            my @pids = @{ $live{$name}{pids} };

            # the mock straight: on the contenders' core for its turn
            pin(1, @pids) unless $kind;

            my $cpu = 0;
            $cpu -= C1Bench::cpu_s($_) for @pids;
            my $w = wrk($live{$name}{port}, $path, $body, $c);
            $cpu += C1Bench::cpu_s($_) for @pids;
            pin(0, @pids) unless $kind;

            # CPU time of the contender's processes per request, in us
            $w->{cpu} = $w->{rps} ? $cpu * 1e6 / ($w->{rps} * $o{seconds})
                                  : 0;
            push @{ $runs{$name}{$c} }, $w;
            printf STDERR "round %d %-8s c=%-3d %8.0f req/s  p50 %.3f ms  "
                . "p99 %.3f ms  CPU %.1f us/req  errors %d\n", $round, $name,
                $c, $w->{rps}, $w->{p50}, $w->{p99}, $w->{cpu}, $w->{errors};
        }
    }
}

for my $name (@up) {
    for my $c (1, 16, 128) {
        my @w = @{ $runs{$name}{$c} };
        $r{$name}{"rps$c"} = C1Bench::pct(50, map { $_->{rps} } @w);
        $r{$name}{"p50_$c"} = C1Bench::pct(50, map { $_->{p50} } @w);
        $r{$name}{"p99_$c"} = C1Bench::pct(50, map { $_->{p99} } @w);
        $r{$name}{"cpu$c"} = C1Bench::pct(50, map { $_->{cpu} } @w);
        $r{$name}{"err$c"} = 0;
        $r{$name}{"err$c"} += $_->{errors} for @w;
    }
}

# streams, one contender at a time: time to first byte and per-delta
# latency, then the memory of many streams at once
for my $name (@up) {
    my ($kind, $path, $body) = @{ $job{$name} };
    my $p = $live{$name}{port};
    my $sbody = $body =~ s/\}\z/,"stream":true}/r;
    my (@ttfb, @lat);
    pin(1, @mock_pids) unless $kind;
    my $ok = eval {
        for (1 .. $o{runs}) {
            my ($ttfb, undef, $l) = C1Bench::fetch($p, "$path?n=100&interval=5",
                                                  $sbody);
            die "got " . scalar(@$l) . " of 100 deltas\n" unless @$l == 100;
            push @ttfb, $ttfb * 1e3;
            push @lat, map { $_ / 1e3 } @$l;
        }
        1;
    };
    pin(0, @mock_pids) unless $kind;
    if ($ok) {
        $r{$name}{ttfb} = C1Bench::pct(50, @ttfb);
        $r{$name}{d50} = C1Bench::pct(50, @lat);
        $r{$name}{d99} = C1Bench::pct(99, @lat);
        $r{$name}{rss} = $kind ? streams_rss($p, $path, $sbody,
                                             $live{$name}{pids})
                               : undef;
        printf STDERR "%s streams: TTFB %.3f ms, delta p50 %.3f p99 %.3f ms, "
            . "%d streams +%s MB\n", $name, $r{$name}{ttfb}, $r{$name}{d50},
            $r{$name}{d99}, $o{streams},
            defined $r{$name}{rss} ? sprintf('%.1f', $r{$name}{rss}) : 'N/A';
    } else {
        print STDERR "$name streams: N/A ($@)";
    }
}

for my $name (@up) {
    system("$dir/$live{$name}{kind}/stop $live{$name}{run}")
        if $live{$name}{kind};
}

# wrk: requests per second and latency percentiles
sub wrk {
    my ($port, $path, $body, $c) = @_;
    my $script = "$C1Bench::Root/post.lua";
    (my $lua_body = $body) =~ s/(["\\])/\\$1/g;
    open my $fh, '>', $script or die $!;
    print $fh "wrk.method = \"POST\"\nwrk.body = \"$lua_body\"\n"
        . "wrk.headers[\"Content-Type\"] = \"application/json\"\n";
    close $fh;
    my $out = `wrk -t1 -c$c -d$o{seconds}s --latency -s $script http://127.0.0.1:$port$path 2>&1`;
    my %w = (rps => 0, p50 => 0, p99 => 0, errors => 0);
    $w{rps} = $1 if $out =~ /Requests\/sec:\s+([\d.]+)/;
    $w{p50} = ms($1, $2) if $out =~ /^\s+50%\s+([\d.]+)(us|ms|s)/m;
    $w{p99} = ms($1, $2) if $out =~ /^\s+99%\s+([\d.]+)(us|ms|s)/m;
    $w{errors} += $1 if $out =~ /Non-2xx or 3xx responses: (\d+)/;
    $w{errors} += $1 + $2 + $3 + $4
        if $out =~ /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/;
    return \%w;
}

sub ms { my ($v, $u) = @_; return $u eq 'us' ? $v / 1000 : $u eq 's' ? $v * 1000 : $v }

# the memory N concurrent streams take (slow streams: 100 deltas, 50 ms)
sub streams_rss {
    my ($port, $path, $body, $pids) = @_;
    my $idle = 0;
    $idle += C1Bench::rss_kb($_) for @$pids;
    my @socks;
    for (1 .. $o{streams}) {
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or last;
        print $s "POST $path?n=100&interval=50 HTTP/1.1\r\nHost: x\r\n"
            . "Connection: close\r\nContent-Type: application/json\r\n"
            . "Content-Length: " . length($body) . "\r\n\r\n$body";
        push @socks, $s;
    }
    my $sel = IO::Select->new(@socks);
    my $peak = 0;
    my $until = time + 3;
    while (time < $until) {
        for my $s ($sel->can_read(0.1)) { sysread($s, my $buf, 65536) }
        my $now = 0;
        $now += C1Bench::rss_kb($_) for @$pids;
        $peak = $now if $now > $peak;
    }
    close $_ for @socks;
    sleep 1;
    return ($peak - $idle) / 1024;
}

# instructions per request (callgrind counts them, whatever else the
# machine does): the module against plain proxy_pass, in one nginx
sub callgrind_ir {
    my ($path, $body, $n, $http, $more) = @_;
    my $d = "$C1Bench::Root/cmp-callgrind";
    $http //= '';
    $more //= $ENV{C1_BENCH_DIRECTIVES} // '';
    remove_tree($d);
    make_path("$d/logs");
    open my $fh, '>', "$d/nginx.conf" or die $!;
    print $fh <<"_EOC_";
load_module $C1Bench::Module;
daemon off;
master_process off;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    $http
    upstream mock_c1 { server 127.0.0.1:$mock_port; keepalive 16; }
    server {
        listen 127.0.0.1:$cg_port;
        c1_api_key sk-bench;
        c1_model c1/bench/model;
        c1_system_prompt "You are a benchmark.";
        $more
        location = /chat { c1_pass /_c1; }
        location = /_c1 {
            internal;
            proxy_pass http://mock_c1/v1/embed/chat/completions;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location = /plain {
            proxy_pass http://mock_c1/v1/embed/chat/completions;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
_EOC_
    close $fh;
    my $pid = fork // die;
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', "$d/valgrind.log";
        exec('valgrind', '--tool=callgrind', "--callgrind-out-file=$d/cg.out",
             '/usr/sbin/nginx', '-p', "$d/", '-c', "$d/nginx.conf");
        exit 1;
    }
    for (1 .. 200) {
        last if IO::Socket::INET->new(PeerAddr => "127.0.0.1:$cg_port");
        sleep 0.1;
    }
    # one keep-alive connection, as a load balancer in front would use
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$cg_port") or die $!;
    for (1 .. $n) {
        print $s "POST $path HTTP/1.1\r\nHost: x\r\nContent-Type: "
            . "application/json\r\nContent-Length: " . length($body)
            . "\r\n\r\n$body";
        my $head = '';
        while ($head !~ /\r\n\r\n/) { sysread($s, $head, 1, length $head) or last }
        my ($len) = $head =~ /Content-Length: (\d+)/i;
        my $got = 0;
        while ($got < ($len // 0)) { $got += sysread($s, my $b, $len - $got) || last }
    }
    close $s;
    kill 'QUIT', $pid;
    waitpid($pid, 0);
    my $total = 0;
    open $fh, '<', "$d/cg.out" or return 0;
    while (<$fh>) { $total = $1 if /^(?:summary|totals):\s+(\d+)/ }
    return $total;
}

# the limit contender's directives (bench/contenders/limit/start)
my @limit = ('c1_limit_tokens_zone zone=bench:1m;',
             'c1_limit_tokens zone=bench key=bench rate=1000000000/m;');

if (!$o{only} || $o{only} =~ /callgrind/) {
    for my $t (['module', '/chat', $prompt], ['limit', '/chat', $prompt, @limit],
               ['plain', '/plain', $c1]) {
        my ($name, $path, $body, @more) = @$t;
        my $few = callgrind_ir($path, $body, 100, @more);
        my $many = callgrind_ir($path, $body, 600, @more);
        $r{$name}{ir} = ($many - $few) / 500;
        printf STDERR "%s: %.0f instructions per request\n", $name, $r{$name}{ir};
    }
}

# RESULTS.md and the chart
my $m = $r{module} // {};
my $cpu = `lscpu | sed -n 's/^Model name: *//p'`;
chomp $cpu;
my $mem = `free -g | awk '/Mem:/ {print \$2}'`;
chomp $mem;
my $ngx = `nginx -v 2>&1`;
chomp $ngx;

# the section make bench-history writes stays
my $history = '';
if (open my $fh, '<', "$top/bench/RESULTS.md") {
    local $/;
    ($history) = <$fh> =~ /(\n## History store \(make bench-history\)\n.*?)(?=\n## |\z)/s;
    $history //= '';
}

open my $md, '>', "$top/bench/RESULTS.md" or die $!;
print $md "# Benchmark results\n\n";
print $md "Made by `make bench` (bench/compare.pl) on " . localtime() . ": $cpu, "
    . `nproc --all` =~ s/\n//r . " cores, ${mem} GiB, Debian 12, $ngx. "
    . "One worker "
    . "or process per contender, all up at once, each calling the same mock "
    . "C1 (bench/mock-c1.lua: Debian's nginx with Lua, one worker) with "
    . "keepalive; the mock answers examples/mock/trees/dashboard.json (" . int((-s $fixture) / 1024 + 0.5) . " KB of component "
    . "tree) as a chat.completion or streams it. "
    . ($o{pin} ? "Cores: wrk, the mock and this script on core 0, the "
                 . "contender on core 1 (taskset; the mock on core 1 for "
                 . "its own, direct, turn). "
               : "Cores: not pinned. ")
    . "wrk -t1 for $o{seconds} s per point; each figure is the median of "
    . "$o{rounds} rounds in which the contenders take turns.\n\n"
    . "CPU/req is the CPU time (user + system, from /proc) of the "
    . "contender's own processes per request at c=16: what it costs, "
    . "whatever bounds its throughput. At c=16 and c=128 the fastest "
    . "contenders are bounded by core 0 (wrk and the mock), so there "
    . "CPU/req is the finer comparison.\n\n";
print $md "| Contender | req/s c=1 | c=16 | c=128 | CPU/req c=16 (us) "
    . "| p50 c=1 (ms) | p99 c=1 (ms) | stream TTFB (ms) | delta p50 (ms) "
    . "| delta p99 (ms) | MB for $o{streams} streams |\n";
print $md "|---|---|---|---|---|---|---|---|---|---|---|\n";
for my $name (@names) {
    my $x = $r{$name} or next;
    printf $md "| %s | %.0f | %.0f | %.0f | %.1f | %.3f | %.3f | %s | %s | %s | %s |\n",
        $name, map({ $x->{$_} // 0 } qw(rps1 rps16 rps128 cpu16 p50_1 p99_1)),
        map({ defined $x->{$_} ? sprintf('%.3f', $x->{$_}) : 'N/A' } qw(ttfb d50 d99)),
        defined $x->{rss} ? sprintf('%.1f', $x->{rss}) : 'N/A';
}

# the targets of the performance issue, as ratios from this run
sub ratio {
    my ($a, $b, $k) = @_;
    return 'N/A' unless $r{$a} && $r{$b} && $r{$b}{$k};
    return sprintf('%.2fx', $r{$a}{$k} / $r{$b}{$k});
}

print $md "\n## Targets\n\n| Target | Measured |\n|---|---|\n";
for my $c (1, 16, 128) {
    printf $md "| module >= 0.85x plain proxy_pass throughput, c=%d | %s "
        . "(OpenAI mode %s) |\n", $c, ratio('module', 'plain', "rps$c"),
        ratio('openai', 'plain', "rps$c");
}
for my $c (1, 16, 128) {
    printf $md "| c1_retry on (no failures) within 2%% of off, c=%d | %s |\n",
        $c, ratio('retry', 'module', "rps$c");
}
printf $md "| one c1_limit_tokens in effect (never reached) within 3%% of "
    . "none, c=16 | %s (c=1 %s, c=128 %s; CPU per request %s) |\n",
    ratio('limit', 'module', 'rps16'), ratio('limit', 'module', 'rps1'),
    ratio('limit', 'module', 'rps128'), ratio('limit', 'module', 'cpu16');
printf $md "| CPU per request at c=16, module / plain proxy_pass (lower is "
    . "better; no target) | %s (OpenAI mode %s) |\n",
    ratio('module', 'plain', 'cpu16'), ratio('openai', 'plain', 'cpu16');
for my $t (['lua', 1.5], ['njs', 1.5], ['fastapi', 20], ['node', 10]) {
    my ($other, $want) = @$t;
    printf $md "| module >= %sx %s throughput, c=16 / c=128 | %s / %s |\n",
        $want, $other, ratio('module', $other, 'rps16'),
        ratio('module', $other, 'rps128');
}
if ($r{module} && $r{direct}) {
    printf $md "| added p50 latency < 0.2 ms at c=1 | %+.3f ms |\n",
        $r{module}{p50_1} - $r{direct}{p50_1};
    printf $md "| added per-delta p99 < 1 ms | %+.3f ms |\n",
        ($r{module}{d99} // 0) - ($r{direct}{d99} // 0);
    printf $md "| added stream time to first byte (no target) | %+.3f ms |\n",
        ($r{module}{ttfb} // 0) - ($r{direct}{ttfb} // 0);
}
printf $md "| instructions per request, module / plain proxy_pass (callgrind) "
    . "| %s / %s (%s) |\n",
    map({ $r{$_} && $r{$_}{ir} ? sprintf('%.0f', $r{$_}{ir}) : 'N/A' } qw(module plain)),
    ratio('module', 'plain', 'ir');
printf $md "| instructions per request, one c1_limit_tokens / none "
    . "(callgrind) | %s / %s (%s) |\n",
    map({ $r{$_} && $r{$_}{ir} ? sprintf('%.0f', $r{$_}{ir}) : 'N/A' } qw(limit module)),
    ratio('limit', 'module', 'ir');
printf $md "| %d concurrent streams in < 64 MB added RSS | %s MB |\n",
    $o{streams}, defined $m->{rss} ? sprintf('%.1f', $m->{rss}) : 'N/A';
print $md $history;
close $md;

open my $dat, '>', "$C1Bench::Root/results.dat" or die $!;
for my $name (@names) {
    my $x = $r{$name} or next;
    printf $dat "%s %.0f %.0f %.0f %.1f\n", $name, $x->{rps1} // 0,
        $x->{rps16} // 0, $x->{rps128} // 0, $x->{cpu16} // 0;
}
close $dat;
system('gnuplot', '-e', "set terminal png size 1200,500; "
    . "set output '$top/bench/results.png'; set multiplot layout 1,2; "
    . "set style data histograms; set style fill solid; set logscale y; "
    . "set xtics rotate by -35; set bmargin 5; "
    . "set ylabel 'requests/s (log scale)'; set key top right; "
    . "set title 'Throughput (higher is better)'; "
    . "plot '$C1Bench::Root/results.dat' using 2:xtic(1) title 'c=1', "
    . "'' using 3 title 'c=16', '' using 4 title 'c=128'; "
    . "set ylabel 'microseconds (log scale)'; set key top left; "
    . "set title 'CPU per request at c=16 (lower is better)'; "
    . "plot '$C1Bench::Root/results.dat' using 5:xtic(1) title 'CPU/req' "
    . "lc rgb '#555555'; unset multiplot") == 0
    or warn "gnuplot failed: no chart\n";

print "wrote bench/RESULTS.md and bench/results.png\n";
