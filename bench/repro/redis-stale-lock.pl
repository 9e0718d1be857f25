#!/usr/bin/env perl
# Reproduces a thread left locked by c1_history_redis: a turn whose COMMIT
# fails because Redis is down when C1's answer comes; Redis (appendonly
# yes) is started again; the next turns on that thread, one at a time.
#
#   bench/repro/redis-stale-lock.pl
#
# Expected: the next turn, once Redis is back (after the backoff), 200.
# Got (main 16fe1fe): 409 thread_busy for every turn until the lock key
# TK:k expires (PX 30 s); the module frees the lock of a failed BEGIN
# (ngx_http_c1_redis_unlock) but not that of a failed COMMIT. Ports:
# BENCH_PORT (default 19974) and the next one.
#
# Fixed in 6bbd6d0 (ngx_http_c1_redis.c: a COMMIT or an END not sent frees
# its turn's lock by its token once Redis is back). Held by
# t/035-redis-faults.t, "a commit not sent" and its END variant "an end
# not sent" (a turn failed at C1, 500, while Redis is down): the next turn
# on the thread 200 within 2 s, the lock key gone (against 6bbd6d0~1: 409
# thread_busy until the lock expires).

use strict;
use warnings;

use File::Basename qw(dirname);
use POSIX ();
use Time::HiRes qw(time sleep);

use lib dirname(__FILE__) . '/../lib';
use C1Bench;
use C1Redis;

$| = 1;
my $mp = $ENV{BENCH_PORT} || 19974;
my $ep = $mp + 1;
my $r = C1Redis->start('repro-lock-redis', aof => 'always');

C1Bench::server('repro-lock-mock', $C1Bench::Lua, <<"_EOC_", 1);
    server {
        listen 127.0.0.1:$mp;
        location / { content_by_lua_block {
            ngx.req.read_body()
            local b = ngx.req.get_body_data() or ""
            if b:find("slow", 1, true) then ngx.sleep(1.5) end
            ngx.header["Content-Type"] = "application/json"
            ngx.print('{"object":"chat.completion","choices":[{"index":0,'
                .. '"finish_reason":"stop","message":{"role":"assistant",'
                .. '"content":"an answer"}}]}')
        } }
    }
_EOC_

C1Bench::server('repro-lock-edge', "load_module $C1Bench::Module;\n", <<"_EOC_", 1);
    c1_history_redis name=threads server=unix:$r->{sock};
    server {
        listen 127.0.0.1:$ep;
        c1_model m;
        location = /chat { c1_history threads; c1_pass /_c1; }
        location = /_c1 { internal; proxy_pass http://127.0.0.1:$mp/; }
    }
_EOC_

sub turn {
    my ($p) = @_;
    my $t0 = time;
    my $out = `curl -sS -o $C1Bench::Root/repro-lock.body -w '%{http_code}' \\
        'http://127.0.0.1:$ep/chat' -H 'Content-Type: application/json' \\
        -d '{"prompt":"$p","threadId":"t1"}' 2>&1`;
    my $b = `cat $C1Bench::Root/repro-lock.body`;
    my ($code) = $b =~ /"code":"(\w+)"/;
    printf "%-6s %s %s (%.2f s)\n", $p, $out, $code // $b, time - $t0;
}

turn('first');
my $pid = fork // die "fork: $!\n";
if (!$pid) { turn('slow'); POSIX::_exit(0) }
sleep 0.5;
$r->crash('KILL');         # while C1 answers the slow turn
waitpid $pid, 0;           # its commit fails: Redis is down
$r->restart;
print "Redis killed during the slow turn, started again after it\n";
print "lock keys and their PTTL (ms): ", join(' ', map {
    "$_=" . $r->cmd('PTTL', $_) } @{$r->cmd('KEYS', '*:k')}), "\n";
sleep 1.5;                 # past the reconnect backoff
for my $i (1 .. 3) { turn("next$i"); sleep 1 }
