#!/usr/bin/env perl
# Streaming benchmark: the module relaying C1's stream, against the same
# stream fetched straight from the mock C1 in the same run (and against a
# plain proxy_pass for the long stream).
#
# Measures: added time to first byte, added per-delta latency (p50, p99),
# lost or reordered bytes, worker RSS growth over a long stream, and CPU
# per relayed MB.  Not a test: it prints figures, it does not judge them.
#
#   bench/stream-bench.pl [--runs R] [--deltas N] [--interval MS] [--mb M]
#                         [--fixture NAME] [--dry-run]
#
# Needs the module built (make) and Debian's nginx with
# libnginx-mod-http-lua; streams the component tree
# examples/mock/trees/NAME.json (dashboard). Ports: BENCH_PORT (default
# 19601) and the next one. --dry-run finds what it would read and stops.

use strict;
use warnings;

use File::Basename qw(dirname);
use Getopt::Long;
use Time::HiRes qw(time sleep);

use lib dirname(__FILE__) . '/lib';
use C1Bench;

my %o = (runs => 20, deltas => 200, interval => 5, mb => 100,
         fixture => 'dashboard');
GetOptions(\%o, 'runs=i', 'deltas=i', 'interval=i', 'mb=i', 'fixture=s',
           'dry-run')
    or die "usage: $0 [--runs R] [--deltas N] [--interval MS] [--mb M] "
         . "[--fixture NAME] [--dry-run]\n";

my $top = $C1Bench::Top;
my $module = $C1Bench::Module;
my $fixture = C1Bench::fixture($o{fixture});
my $mock_port = $ENV{BENCH_PORT} || 19601;
my $edge_port = $mock_port + 1;

-f $module or die "build the module first (make)\n";

if ($o{'dry-run'}) {
    print "stream-bench: would stream $fixture (ports $mock_port, $edge_port)\n";
    exit 0;
}

C1Bench::mock('mock', $mock_port, $fixture);

C1Bench::server('edge', "load_module $module;\n", <<"_EOC_");
    upstream mock_c1 {
        server 127.0.0.1:$mock_port;
        keepalive 64;
    }

    server {
        listen 127.0.0.1:$edge_port backlog=4096;
        keepalive_requests 100000;

        c1_api_key sk-bench;
        c1_model c1/bench/model;
        c1_system_prompt "You are a benchmark.";
        c1_stream on;
        c1_stream_max_size 1024m;   # the long stream is over the default

        # the mock's arguments, for the subrequest (a server-level "set"
        # would run again in the subrequest, with its own empty \$args)
        location = /chat { set \$mock_args \$args; c1_pass /_c1; }
        location = /v1/chat/completions { set \$mock_args \$args; c1_pass /_c1; }

        location = /_c1 {
            internal;
            proxy_pass http://mock_c1/v1/embed/chat/completions?\$mock_args;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }

        # the floor: nginx relaying the same stream untouched
        location = /plain {
            proxy_pass http://mock_c1/v1/embed/chat/completions\$is_args\$args;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
_EOC_

my $prompt = '{"prompt":"Show me a product analytics dashboard"}';
my $openai = '{"messages":[{"role":"user","content":"a dashboard"}],"stream":true}';
my $c1 = '{"model":"m","messages":[{"role":"user","content":"a dashboard"}],"stream":true}';
my $q = "?n=$o{deltas}&interval=$o{interval}";

my %r;
for my $run (1 .. $o{runs}) {
    for my $case (['direct', $mock_port, "/v1/embed/chat/completions$q", $c1],
                  ['plain', $edge_port, "/plain$q", $c1],
                  ['prompt', $edge_port, "/chat$q", $prompt],
                  ['openai', $edge_port, "/v1/chat/completions$q", $openai])
    {
        my ($name, $port, $path, $body) = @$case;
        my ($ttfb, $total, $lat) = C1Bench::fetch($port, $path, $body);
        die "$name: got " . scalar(@$lat) . " of $o{deltas} deltas\n"
            unless @$lat == $o{deltas};
        push @{ $r{$name}{ttfb} }, $ttfb * 1e3;
        push @{ $r{$name}{lat} }, map { $_ / 1e3 } @$lat;
    }
}

printf "Streaming: %d runs of a %s answer cut into %d deltas, one every %d ms\n\n",
    $o{runs}, $o{fixture}, $o{deltas}, $o{interval};
printf "%-28s %10s %12s %12s\n", 'path', 'TTFB p50', 'delta p50', 'delta p99';
for my $name (qw(direct plain prompt openai)) {
    printf "%-28s %8.3fms %10.3fms %10.3fms\n",
        { direct => 'mock C1, direct', plain => 'nginx proxy_pass',
          prompt => 'module, prompt mode', openai => 'module, OpenAI mode' }->{$name},
        C1Bench::pct(50, @{ $r{$name}{ttfb} }), C1Bench::pct(50, @{ $r{$name}{lat} }),
        C1Bench::pct(99, @{ $r{$name}{lat} });
}
print "\nadded over the direct stream (p50 / p99 per delta, p50 TTFB):\n";
for my $name (qw(plain prompt openai)) {
    printf "  %-8s delta %+.3f / %+.3f ms, TTFB %+.3f ms\n", $name,
        C1Bench::pct(50, @{ $r{$name}{lat} }) - C1Bench::pct(50, @{ $r{direct}{lat} }),
        C1Bench::pct(99, @{ $r{$name}{lat} }) - C1Bench::pct(99, @{ $r{direct}{lat} }),
        C1Bench::pct(50, @{ $r{$name}{ttfb} }) - C1Bench::pct(50, @{ $r{direct}{ttfb} });
}

# the long stream: bytes, order, memory, CPU
my $bytes = $o{mb} * 1024 * 1024;
my ($worker) = C1Bench::workers('edge');
print "\nLong stream: $o{mb} MiB of content through one edge worker (pid $worker)\n";

for my $case (['plain', "/plain?bytes=$bytes", $c1],
              ['prompt', "/chat?bytes=$bytes", $prompt])
{
    my ($name, $path, $body) = @$case;
    C1Bench::fetch($edge_port, "$path", $body);      # warm up pools and buffers
    my $rss0 = C1Bench::rss_kb($worker);
    my $cpu0 = C1Bench::cpu_s($worker);
    my $peak = $rss0;
    my $n = 0;
    my $t0 = time;
    my (undef, $total, undef, $count, $data) = C1Bench::fetch($edge_port, $path, $body,
        keep => ($name eq 'prompt'),
        sample => sub { $peak = C1Bench::rss_kb($worker) if ++$n % 64 == 0 && C1Bench::rss_kb($worker) > $peak });
    my $cpu = C1Bench::cpu_s($worker) - $cpu0;
    my $rss1 = C1Bench::rss_kb($worker);
    my $check = '';

    if ($name eq 'prompt') {
        # the pieces, whole and in order
        my $pieces = int(($bytes + 1023) / 1024);
        my $ok = length($data) == $pieces * 1024;
        for (my $i = 0; $ok && $i < $pieces; $i++) {
            $ok = substr($data, $i * 1024, 10) eq sprintf('%010d', $i);
        }
        if (!$ok) {
            open my $dump, '>', "$C1Bench::Root/long-stream.out" or die $!;
            print $dump $data;
            close $dump;
        }
        $check = $ok ? ', every byte in order'
                     : ", BYTES LOST OR REORDERED (got " . length($data)
                       . " bytes: $C1Bench::Root/long-stream.out)";
    }

    printf "  %-7s %7.1f MiB/s, worker CPU %.2f ms/MiB, RSS %d KiB -> peak %d KiB -> %d KiB (%+d KiB)%s\n",
        $name, $count / 1048576 / $total, $cpu * 1000 / $o{mb},
        $rss0, $peak, $rss1, $peak - $rss0, $check;
}
