#!/usr/bin/env perl
# Reproduces a worker crash (signal 11) of c1_history_redis: a turn's
# COMMIT whose send() to Redis fails at once (Redis died, the worker has
# not seen it yet). The edge's one worker is stopped (SIGSTOP) while the
# mock C1 answers a slow turn and Redis is killed, then continued: C1's
# answer is the first event it handles, the commit's send() gets EPIPE.
#
#   bench/repro/redis-send-fails.pl [/chat | /stream]
#
# Expected: 200 and the whole answer (the commit logged as not kept).
# Got (main 16fe1fe): /chat "Empty reply from server", /stream "transfer
# closed with outstanding read data remaining", and "worker process ...
# exited on signal 11" in the error log. Ports: BENCH_PORT (default 19972)
# and the next one.
#
# Fixed in 6bbd6d0 (ngx_http_c1_redis.c: an operation never ends inside
# its own run). Held by t/035-redis-faults.t, "Redis killed, the worker
# stopped: a commit" and "... a streamed commit" (they fail against
# 6bbd6d0~1: signal 11, the worker replaced, the answer cut). Since
# 60d9f6d (commands written after the events at hand) the commit no longer
# meets EPIPE here: the close of Redis's connection is read first.

use strict;
use warnings;

use File::Basename qw(dirname);
use POSIX ();
use Time::HiRes qw(time sleep);

use lib dirname(__FILE__) . '/../lib';
use C1Bench;
use C1Redis;

$| = 1;
my $mp = $ENV{BENCH_PORT} || 19972;
my $ep = $mp + 1;
my $path = shift // '/chat';
my $r = C1Redis->start('repro-send-redis');

C1Bench::server('repro-send-mock', $C1Bench::Lua, <<"_EOC_", 1);
    server {
        listen 127.0.0.1:$mp;
        location / { content_by_lua_block {
            ngx.req.read_body()
            local b = ngx.req.get_body_data() or ""
            if b:find("slow", 1, true) then ngx.sleep(1) end
            if b:find('"stream":true', 1, true) then
                ngx.header["Content-Type"] = "text/event-stream"
                ngx.print('data: {"id":"x","object":"chat.completion.chunk",'
                    .. '"choices":[{"index":0,"delta":{"content":"an answer"}}]}'
                    .. '\\n\\ndata: [DONE]\\n\\n')
                return
            end
            ngx.header["Content-Type"] = "application/json"
            ngx.print('{"object":"chat.completion","choices":[{"index":0,'
                .. '"finish_reason":"stop","message":{"role":"assistant",'
                .. '"content":"an answer"}}]}')
        } }
    }
_EOC_

C1Bench::server('repro-send-edge', "load_module $C1Bench::Module;\n", <<"_EOC_", 1);
    c1_history_redis name=threads server=unix:$r->{sock};
    server {
        listen 127.0.0.1:$ep;
        c1_model m;
        location = /chat { c1_history threads; c1_pass /_c1; }
        location = /stream { c1_history threads; c1_stream on; c1_pass /_c1; }
        location = /_c1 { internal; proxy_pass http://127.0.0.1:$mp/; }
    }
_EOC_

my ($worker) = C1Bench::workers('repro-send-edge');

sub turn {
    my ($p) = @_;
    my $t0 = time;
    my $out = `curl -sS -o $C1Bench::Root/repro-send.body -w '%{http_code}' \\
        'http://127.0.0.1:$ep$path' -H 'Content-Type: application/json' \\
        -d '{"prompt":"$p","threadId":"t1"}' 2>&1`;
    my $b = `cat $C1Bench::Root/repro-send.body`;
    printf "%-6s %s: %s [%s] (%.2f s)\n", $p, $path, $out, $b, time - $t0;
}

turn('first');
my $pid = fork // die "fork: $!\n";
if (!$pid) { turn('slow'); POSIX::_exit(0) }
sleep 0.3;
kill 'STOP', $worker;
sleep 1.2;                 # C1 has answered; the worker has not read it
$r->crash('KILL');         # Redis goes while the worker is stopped
kill 'CONT', $worker;
waitpid $pid, 0;
sleep 0.5;
printf "worker %d: %s\n", $worker, C1Redis::alive($worker) ? 'alive' : 'gone';
print "error log:\n", C1Bench::error_log('repro-send-edge');
