# A reload that fails leaves nothing behind that a later worker trips on:
# on a real nginx with a master and two workers, a broken config is
# refused (emerg) and the old workers go on; then workers killed with
# kill -9 are replaced by the master, and the new ones serve every kind
# of request (plain, streamed, OpenAI shape, thread turns and their
# GET, the metrics page) without crashing; then a good reload, the same.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(sleep);
use lib 't/lib';
use C1Nginx;
use C1Mock;

my $port = C1Nginx::start(<<'_EOC_' . $C1Mock::MockLocations . "}\n", workers => 2);
    c1_history_zone zone=threads:1m;
    log_format w '$pid $request_method $uri $status';

    server {
        listen 127.0.0.1:$C1_TEST_PORT;
        access_log logs/c1.log w;

        c1_model m;

        location = /plain { c1_pass /_c1; }
        location = /chat { c1_history threads; c1_pass /_c1; }
        location = /stream { c1_stream on; c1_pass /_c1_sse; }
        location = /v1/chat/completions { c1_pass /_c1; }
        location = /metrics { access_log off; c1_metrics; }

        location = /_c1 {
            internal;
            proxy_pass http://127.0.0.1:$C1_TEST_PORT/mock/echo-messages;
        }

        location = /_c1_sse {
            internal;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:$C1_TEST_PORT/mock/sse;
        }
_EOC_

sub curl {
    my ($method, $path, $body) = @_;
    my $data = defined $body
             ? "-H 'Content-Type: application/json' -d '$body'" : '';
    my $out = `curl -s -N --max-time 10 -X $method $data -w '\\n%{http_code}' http://127.0.0.1:$port$path`;
    my ($text, $code) = $out =~ /\A(.*)\n(\d+)\z/s;
    return ($code // 0, $text // '');
}

sub access_lines {
    open my $fh, '<', "$C1Nginx::Root/logs/c1.log" or return 0;
    my @l = <$fh>;
    return @l;
}

my $prompt_ok = 0;      # plain and thread turns: prompt, stream=0, ok
my $stream_ok = 0;
my $openai_ok = 0;

# several requests of every kind, each on a connection of its own; every
# answer must be right; returns the pids that served them
sub round {
    my $name = shift;
    my $from = () = access_lines();
    my $n = 4;

    for my $i (1 .. $n) {
        my ($code, $body) = curl('POST', '/plain', qq({"prompt":"hi $i"}));
        is($code, 200, "$name: plain prompt $i");
        is($body, "user:hi $i", "$name: plain prompt $i: the answer");
        $prompt_ok++;
    }

    for my $i (1 .. $n) {
        my ($code, $body) = curl('POST', '/stream', qq({"prompt":"s $i"}));
        is($code, 200, "$name: streamed prompt $i");
        is($body, $C1Mock::StreamText,
           "$name: streamed prompt $i: the whole stream");
        $stream_ok++;
    }

    for my $i (1 .. $n) {
        my ($code, $body) = curl('POST', '/v1/chat/completions',
            qq({"messages":[{"role":"user","content":"o $i"}]}));
        is($code, 200, "$name: OpenAI shape $i");
        like($body, qr/\A\{.*"object":"chat\.completion"/s,
             "$name: OpenAI shape $i: a completion");
        like($body, qr/"content":"user:o $i"/,
             "$name: OpenAI shape $i: its message");
        $openai_ok++;
    }

    my $thread = "t-$name";
    $thread =~ s/\W/-/g;
    for my $i (1 .. $n) {
        my ($code, $body) = curl('POST', '/chat',
            qq({"prompt":"turn $i","threadId":"$thread"}));
        my $want = join ' \| ', map({ ("user:turn $_", 'assistant:.*') }
                                     1 .. $i - 1), "user:turn $i";
        is($code, 200, "$name: thread turn $i");
        like($body, qr/\A$want\z/s, "$name: thread turn $i: the history");
        $prompt_ok++;
    }

    for my $i (1 .. 2) {
        my ($code, $body) = curl('GET', "/chat?threadId=$thread");
        is($code, 200, "$name: GET of the thread $i");
        is(scalar(() = $body =~ /"role":"user"/g), $n,
           "$name: GET of the thread $i: every turn");
    }

    for my $i (1 .. $n) {
        my ($code, $m) = curl('GET', '/metrics');
        is($code, 200, "$name: metrics page $i");
        like($m, qr/^c1_requests_total\{mode="prompt",stream="0",outcome="ok"\} $prompt_ok$/m,
             "$name: metrics page $i: prompt turns counted");
        like($m, qr/^c1_requests_total\{mode="prompt",stream="1",outcome="ok"\} $stream_ok$/m,
             "$name: metrics page $i: streams counted");
        like($m, qr/^c1_requests_total\{mode="openai",stream="0",outcome="ok"\} $openai_ok$/m,
             "$name: metrics page $i: OpenAI calls counted");
        like($m, qr/^c1_history_threads\{zone="threads"\} \d+$/m,
             "$name: metrics page $i: the history zone");
    }

    my @lines = (access_lines())[$from .. scalar(access_lines()) - 1];
    my %pids = map { /^(\d+) / ? ($1 => 1) : () } @lines;
    return (\%pids, scalar @lines);
}

# the only crashes and alarms allowed: the workers we killed, the emerg
# of the broken configs
my %killed;

sub log_clean {
    my $name = shift;
    my @bad = grep {
        !(/exited on signal 9\b/ && /worker process (\d+)/ && $killed{$1})
        && !/\[emerg\].*unknown directive "(?:typo_in_server|typo_after_http)"/
    } grep { /\[(?:alert|crit|emerg)\]|exited on signal|segfault/ }
      split /\n/, C1Nginx::error_log();
    is(join("\n", @bad), '', "$name: no worker crashed, no alert");
}

my $good = C1Nginx::conf();

round('start');
log_clean('start');

# a broken config, the usual typo inside a server block: refused
my @old = sort { $a <=> $b } C1Nginx::workers();
is(scalar @old, 2, 'two workers');
(my $bad = $good) =~ s/(c1_model m;)/$1\n        typo_in_server on;/
    or die "no c1_model in the config";
C1Nginx::write_conf($bad);
C1Nginx::hup(qr/\[emerg\].*unknown directive "typo_in_server"/);
sleep 0.3;
is_deeply([sort { $a <=> $b } C1Nginx::workers()], \@old,
          'a reload with a typo in a server block fails: the old workers go on');
round('failed reload 1');
log_clean('failed reload 1');

# a broken config that fails after the http block was read whole (so
# after every module's postconfiguration)
C1Nginx::write_conf($good . "typo_after_http on;\n");
C1Nginx::hup(qr/\[emerg\].*unknown directive "typo_after_http"/);
sleep 0.3;
is_deeply([sort { $a <=> $b } C1Nginx::workers()], \@old,
          'a reload with a typo after the http block fails: the old workers go on');
round('failed reload 2');
log_clean('failed reload 2');

# a config that fails in a module's postconfiguration (Lua's, which runs
# after ours): the filter chain is left as a later worker needs it
(my $lua = $good) =~ s/^http \{$/http {\n    init_by_lua_block { error("boom in init") }/m
    or die "no http block in the config";
C1Nginx::write_conf($lua);
C1Nginx::hup(qr/init_by_lua error: .*boom in init/);
sleep 0.3;
is_deeply([sort { $a <=> $b } C1Nginx::workers()], \@old,
          'a reload failing in init_by_lua: the old workers go on');
round('failed reload 3');
log_clean('failed reload 3');

# a worker killed: the master starts a new one from its (old) cycle
C1Nginx::kill_worker($old[0]);
$killed{$old[0]} = 1;
my @now = C1Nginx::workers();
is(scalar @now, 2, 'the killed worker was replaced');
round('one worker killed');
log_clean('one worker killed');

# the other one too: now every request reaches a worker started after
# the failed reloads
C1Nginx::kill_worker($old[1]);
$killed{$old[1]} = 1;
my @new = C1Nginx::workers();
my %new = map { $_ => 1 } @new;
is(scalar(grep { $killed{$_} } @new), 0, 'both old workers are gone');
my ($pids, $n) = round('both workers killed');
ok($n > 0 && !grep({ !$new{$_} } keys %$pids),
   'both workers killed: every request was served by a new worker');
is_deeply([sort { $a <=> $b } C1Nginx::workers()],
          [sort { $a <=> $b } @new], 'both workers killed: no worker died');
log_clean('both workers killed');

# the good config again: a reload works, and so does everything
C1Nginx::write_conf($good);
C1Nginx::reload();
round('good reload');
log_clean('good reload');

# and a worker of the good reload killed, for good measure
my ($w) = C1Nginx::workers();
C1Nginx::kill_worker($w);
$killed{$w} = 1;
round('after the good reload, one worker killed');
log_clean('after the good reload, one worker killed');

C1Nginx::stop();

done_testing();
