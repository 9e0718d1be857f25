# The metrics page is valid Prometheus text, as Prometheus's own parser
# and linter (`promtool check metrics`, Debian's prometheus package) read
# it: with 0, 1, 2 and 3 history zones and as many token limit zones (one
# with a name as long as nginx allows, one with a name that needs
# escaping), after traffic of every outcome; each family once, with its HELP and TYPE, then all its samples;
# every zone's samples there; the Content-Length the page's length.

use strict;
use warnings;

use Test::More;
use IO::Socket::INET;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep);
use lib 't/lib';
use C1Nginx;
use C1Mock;

my ($promtool) = grep { -x } map { "$_/promtool" } split /:/, $ENV{PATH};
BAIL_OUT('promtool is missing: run util/deps (Debian\'s prometheus)')
    unless $promtool;

my $tmp = tempdir(CLEANUP => 1);

# zone names as the config writes them, and as a label value shows them
my $long = 'z' x 4080;   # about the longest a config token can be
my @zones = (
    [ 'threads', 'threads' ],
    [ $long, $long ],
    [ q{'we"ird\\\\name'}, q{we\\"ird\\\\name} ],
);

# the token limits' zones, beside the history zones
my @limit_zones = (
    [ 'tokens', 'tokens' ],
    [ 'y' x 4080, 'y' x 4080 ],
    [ q{'to"ke\\\\ns'}, q{to\\"ke\\\\ns} ],
);

my @outcomes = qw(ok invalid_request c1_error upstream_failure client_aborted
                  rate_limited);

my @base = qw(c1_requests_total c1_prompt_tokens_total
              c1_completion_tokens_total c1_upstream_latency_seconds
              c1_time_to_first_token_seconds c1_active_streams
              c1_retries_total c1_fallbacks_total
              c1_history_store_failures_total);

my @history = qw(c1_history_threads c1_history_messages c1_history_bytes
                 c1_history_evicted_total c1_history_expired_total
                 c1_history_dropped_total c1_history_zone_size_bytes);

# and the samples each limit zone has in them
my %limits = (c1_limited_total => 1, c1_limit_debited_tokens_total => 2,
              c1_limit_keys => 1, c1_limit_dropped_total => 1);
my @limits = qw(c1_limited_total c1_limit_debited_tokens_total
                c1_limit_keys c1_limit_dropped_total);

sub config {
    my $n = shift;
    my ($decl, $locs) = ('', '');

    for my $i (0 .. $n - 1) {
        my $name = $zones[$i][0];
        my $arg = $name =~ /^'(.*)'$/ ? "'zone=$1:1m'" : "zone=$name:1m";
        $decl .= "    c1_history_zone $arg;\n";
        $locs .= "        location = /chat$i { c1_history $name; c1_pass /_c1; }\n";

        # one token a day: the first answer spends it, the next is refused
        my $lname = $limit_zones[$i][0];
        my ($larg, $lref) = $lname =~ /^'(.*)'$/
                          ? ("'zone=$1:1m'", "'zone=$1'")
                          : ("zone=$lname:1m", "zone=$lname");
        $decl .= "    c1_limit_tokens_zone $larg;\n";
        $locs .= "        location = /limited$i { c1_limit_tokens $lref "
               . "key=k rate=1/d; c1_pass /_c1; }\n";
    }

    return <<"_EOC_" . $C1Mock::MockLocations . "}\n";
$decl
    server {
        listen 127.0.0.1:\$C1_TEST_PORT;

        c1_model m;

$locs
        location = /chat { c1_pass /_c1; }
        location = /v1/chat/completions { c1_pass /_c1; }
        location = /stream { c1_stream on; c1_stream_usage on; c1_pass /_c1_sse; }
        location = /slow { c1_stream on; c1_pass /_c1_slow; }
        location = /broken { c1_stream on; c1_pass /_c1_broken; }
        location = /err { c1_pass /_c1_429; }
        location = /metrics { c1_metrics; }

        location = /_c1 {
            internal;
            proxy_pass http://127.0.0.1:\$C1_TEST_PORT/mock/echo-body;
        }

        location = /_c1_sse {
            internal;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:\$C1_TEST_PORT/mock/sse?usage=1;
        }

        location = /_c1_slow {
            internal;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:\$C1_TEST_PORT/mock/sse?delay=150;
        }

        location = /_c1_broken {
            internal;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:\$C1_TEST_PORT/mock/sse?after=2&reset=1;
        }

        location = /_c1_429 {
            internal;
            proxy_pass http://127.0.0.1:\$C1_TEST_PORT/c1-429;
        }

        location = /c1-429 {
            default_type application/json;
            return 429 '{"error":{"message":"slow down"}}';
        }
_EOC_
}

my $port;

sub curl {
    my ($method, $path, $body) = @_;
    my $data = defined $body
             ? "-H 'Content-Type: application/json' -d '$body'" : '';
    my $out = `curl -s -N --max-time 10 -X $method $data -w '\\n%{http_code}' http://127.0.0.1:$port$path`;
    my ($text, $code) = $out =~ /\A(.*)\n(\d+)\z/s;
    return ($code // 0, $text // '');
}

# the page as curl saved it: its header and its body
sub page {
    my $name = shift;
    my ($h, $b) = ("$tmp/$name.head", "$tmp/$name.prom");
    system('curl', '-s', '--max-time', '10', '-D', $h, '-o', $b,
           "http://127.0.0.1:$port/metrics") == 0 or return ('', '', $b);
    local $/;
    open my $fh, '<', $h or die $!;
    my $head = <$fh>;
    open $fh, '<', $b or die $!;
    my $body = <$fh>;
    return ($head, $body, $b);
}

sub outcome {
    my ($page, $outcome) = @_;
    my $sum = 0;
    $sum += $1 while $page =~ /^c1_requests_total\{mode="\w+",stream="\d",outcome="$outcome"\} (\d+)$/mg;
    return $sum;
}

for my $n (0 .. 3) {
    my $name = "$n zones";
    $port = C1Nginx::start(config($n), workers => 2);

    # traffic of every outcome
    my ($code, $body);
    for my $i (0 .. $n - 1) {
        for my $t (1 .. 2) {
            ($code) = curl('POST', "/chat$i", qq({"prompt":"t$t","threadId":"th$i"}));
            is($code, 200, "$name: a turn in zone $i");
        }
    }
    for my $i (0 .. $n - 1) {
        ($code) = curl('POST', "/limited$i", '{"prompt":"x"}');
        is($code, 200, "$name: limit zone $i: its one token spent");
        ($code) = curl('POST', "/limited$i", '{"prompt":"x"}');
        is($code, 429, "$name: limit zone $i: rate_limited");
    }
    ($code) = curl('POST', '/chat', '{"prompt":"x"}');
    is($code, 200, "$name: ok");
    ($code) = curl('POST', '/v1/chat/completions',
                   '{"messages":[{"role":"user","content":"x"}]}');
    is($code, 200, "$name: ok, OpenAI shape");
    ($code, $body) = curl('POST', '/stream', '{"prompt":"x"}');
    is($body, $C1Mock::StreamText, "$name: ok, streamed");
    ($code) = curl('POST', '/chat', '{"prompt":1}');
    is($code, 400, "$name: invalid_request");
    ($code) = curl('POST', '/err', '{"prompt":"x"}');
    is($code, 429, "$name: c1_error");
    ($code, $body) = curl('POST', '/broken',
        '{"messages":[{"role":"user","content":"x"}],"stream":true}');
    like($body, qr/c1_stream_broken/, "$name: upstream_failure");

    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die $!;
    my $req = '{"prompt":"gone"}';
    print $s "POST /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        . "Content-Type: application/json\r\nContent-Length: "
        . length($req) . "\r\n\r\n$req";
    sleep 0.4;
    close $s;

    # the abandoned stream is counted once nginx sees the client gone
    my ($head, $page, $file);
    for (1 .. 50) {
        ($head, $page, $file) = page("p$n");
        last if outcome($page, 'client_aborted') > 0;
        sleep 0.1;
    }

    for my $o (@outcomes) {
        if ($o eq 'rate_limited' && $n == 0) {
            is(outcome($page, $o), 0, "$name: no limit, no outcome $o");
            next;
        }
        ok(outcome($page, $o) > 0, "$name: the page counts outcome $o");
    }

    like($head, qr{\AHTTP/1\.1 200 }, "$name: the page: 200");
    my ($len) = $head =~ /^Content-Length: (\d+)\r$/mi;
    is($len, length $page, "$name: Content-Length is the page's length");
    like($page, qr/\n\z/, "$name: the page ends with a newline");

    # Prometheus's parser and linter: nothing to say
    my $out = `'$promtool' check metrics < '$file' 2>&1`;
    my $rc = $? >> 8;
    is($out, '', "$name: promtool check metrics reports nothing");
    is($rc, 0, "$name: promtool check metrics exits 0");

    # each family once: HELP, TYPE, then all its samples
    my (%help, %type, %samples, @order, $current);
    my $grouped = 1;
    for my $line (split /\n/, $page) {
        if ($line =~ /^# HELP (\w+) \S/) {
            $help{$1}++;
            next;
        }
        if ($line =~ /^# TYPE (\w+) (\w+)$/) {
            $type{$1}++;
            $current = $1;
            push @order, $1;
            $grouped &&= $help{$1} && $help{$1} == 1;
            next;
        }
        my ($metric) = $line =~ /^(\w+)(?:\{.*\})? \d+(?:\.\d+)?$/
            or do { fail("$name: a sample line: $line"); next };
        my $family = $metric;
        $family =~ s/_(?:bucket|sum|count)$//
            if $metric =~ /^c1_(?:upstream_latency|time_to_first_token)_seconds_/;
        $grouped &&= defined $current && $family eq $current;
        $samples{$family}++;
    }

    my @want = (@base, $n ? (@history, @limits) : ());
    is_deeply(\@order, \@want, "$name: the families, each once, in order");
    ok($grouped, "$name: each family's samples follow its HELP and TYPE");
    is_deeply([grep { $help{$_} != 1 || $type{$_} != 1 } @want], [],
              "$name: one HELP and one TYPE for each family");
    is($samples{c1_requests_total}, 36, "$name: c1_requests_total: 36 samples");
    is($samples{c1_upstream_latency_seconds}, 15,
       "$name: a histogram: 13 buckets, a sum and a count");

    for my $f (@history) {
        is($samples{$f} // 0, $n, "$name: $f: one sample per zone");
        for my $i (0 .. $n - 1) {
            my $label = $zones[$i][1];
            is(scalar(() = $page =~ /^\Q$f\E\{zone="\Q$label\E"\} \d+$/mg), 1,
               "$name: $f of zone $i");
        }
    }

    for my $f (@limits) {
        is($samples{$f} // 0, $n * $limits{$f},
           "$name: $f: $limits{$f} per limit zone");
    }

    for my $i (0 .. $n - 1) {
        my $label = $limit_zones[$i][1];
        like($page, qr/^c1_limited_total\{zone="\Q$label\E"\} 1$/m,
             "$name: limit zone $i refused one request");
        like($page, qr/^c1_limit_keys\{zone="\Q$label\E"\} 1$/m,
             "$name: limit zone $i holds its key");
        like($page, qr/^c1_limit_debited_tokens_total\{zone="\Q$label\E",source="(?:usage|estimate)"\} [1-9]\d*$/m,
             "$name: limit zone $i debited its answer");
    }

    for my $i (0 .. $n - 1) {
        my $label = $zones[$i][1];
        like($page, qr/^c1_history_threads\{zone="\Q$label\E"\} 1$/m,
             "$name: zone $i keeps its thread");
        like($page, qr/^c1_history_messages\{zone="\Q$label\E"\} 4$/m,
             "$name: zone $i keeps its four messages");
        like($page, qr/^c1_history_zone_size_bytes\{zone="\Q$label\E"\} 1048576$/m,
             "$name: zone $i: its size");
    }

    unlike(C1Nginx::error_log(), qr/\[(?:alert|crit|emerg)\]|exited on signal/,
           "$name: no alert, no worker crashed");

    C1Nginx::stop();
}

done_testing();
