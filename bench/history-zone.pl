#!/usr/bin/env perl
# What the thread store costs (make bench-history), in one run, the
# shared-memory zone and Redis (a redis-server of the bench's own on a unix
# socket under build/bench/hist-redis-server, --save '' --appendonly no, stopped at
# the end):
#
#  1. listing one owner's threads through the thread API (GET
#     /api/threads/get, the default limit of 50, and the second page through
#     nextCursor) with 10, 1,000 and 10,000 threads in the zone (made by POST
#     /api/threads/create), all of one owner or spread over --owners owners:
#     p50/p99 per case, the same cases in Redis (c1_history_redis stores of
#     their own prefixes). A listing should cost O(page), not O(all threads).
#  2. the time of a thread turn (a C1Chat body with a threadId, the mock C1
#     answering at once) with this module (zone and Redis) and with the
#     module from before the thread API (--old, built by the Makefile from
#     the project's own history), turns alternating between them: p50/p99,
#     the ratio, and Redis's added time over the zone (issue 15's goal:
#     at most 0.3 ms at p50);
#  3. throughput at concurrency 16 (wrk, keep-alive, the same turns) with
#     the zone and with Redis, rounds alternating (goal: Redis at least
#     0.8x the zone);
#  4. how many one-turn threads (a 100-byte prompt, an answer of N bytes) a
#     1m zone holds before it evicts, old and new: the bytes a turn costs,
#     and the new store's metadata (message ids, timestamps); and Redis's
#     memory per stored turn (INFO used_memory before and after N turns).
#
#   bench/history-zone.pl [--old MODULE] [--old-commit C] [--sizes 1000,4000]
#       [--requests N] [--turns N] [--owners N] [--wrk-seconds S]
#       [--wrk-rounds N] [--redis-turns N] [--no-redis] [--no-write]
#
# The module is build/ngx_http_c1_module.so (C1_MODULE moves it). Ports:
# BENCH_PORT (default 19720) and the next six. wrk (Debian's wrk) makes the
# load at concurrency 16; without it that part is skipped. Without --no-write the
# tables also go into bench/RESULTS.md, section "History store".
# Latencies are one request at a time over one keep-alive connection,
# measured by this script (its own overhead included, the same for all).

use strict;
use warnings;

use File::Basename qw(dirname);
use Cwd qw(abs_path);
use Getopt::Long;
use JSON::PP;
use Time::HiRes qw(time);

my $top;
BEGIN { $top = abs_path(dirname(__FILE__) . '/..') }
use lib "$top/bench/lib", "$top/t/lib";
use C1Bench;
use C1Mock;
use C1Redis;

# a signal still stops the servers started (the modules' END blocks)
$SIG{INT} = $SIG{TERM} = sub { exit 1 };

my %o = (sizes => '1000,4000,10000,20000', requests => 3000, turns => 10000,
         owners => 4, 'old-commit' => 'the old commit', write => 1,
         'case-seconds' => 20, 'turn-seconds' => 60, 'turn-answer' => 1000,
         'wrk-seconds' => 5, 'wrk-rounds' => 3, 'redis-turns' => 1000,
         redis => 1);
GetOptions(\%o, 'old=s', 'old-commit=s', 'sizes=s', 'requests=i', 'turns=i',
           'owners=i', 'write!', 'case-seconds=i', 'turn-seconds=i',
           'turn-answer=i', 'wrk-seconds=i', 'wrk-rounds=i', 'redis-turns=i',
           'redis!')
    or die "usage: $0 [--old MODULE] [--old-commit C] [--sizes N,N...]"
         . " [--requests N] [--turns N] [--owners N] [--wrk-seconds S]"
         . " [--wrk-rounds N] [--redis-turns N] [--no-redis] [--no-write]\n";

my $new = $C1Bench::Module;
die "no module $new: make first\n" unless -f $new;
my $old = $o{old} && -f $o{old} ? abs_path($o{old}) : undef;
my $base = $ENV{BENCH_PORT} || 19720;
my %port = (mock => $base, list => $base + 1, old => $base + 2,
            new => $base + 3, owner => $base + 4, redis => $base + 5,
            'redis-owner' => $base + 6);
my @sizes = split /,/, $o{sizes};
my $json = JSON::PP->new;
my @out;    # the report, in Markdown

sub say_md { my $l = join '', @_; print $l; push @out, $l }

# does the module have these directives?
sub has_directives {
    my ($so, @names) = @_;
    open my $fh, '<:raw', $so or return 0;
    local $/;
    my $bin = <$fh>;
    return !grep { index($bin, "$_\0") < 0 } @names;
}
# the thread API (c1_threads, c1_history_owner)
my $api = has_directives($new, 'c1_history_owner', 'c1_threads');

# Redis: a server of the bench's own, nothing kept on disk
my ($redis, $no_redis);
if (!$o{redis}) {
    $no_redis = 'not asked for (--no-redis)';
} elsif (!$api || !has_directives($new, 'c1_history_redis')) {
    $no_redis = "$new has no c1_history_redis";
} elsif (!-x $C1Redis::Server) {
    $no_redis = "no $C1Redis::Server (apt-get install redis-server)";
} else {
    $redis = C1Redis->start('hist-redis-server');
}
my $redis_version = `$C1Redis::Server --version 2>/dev/null` =~ /v=(\S+)/
    ? $1 : '?';

# a store's directive: a zone, or (REDIS) a Redis store of its own prefix
sub store_conf {
    my ($name, %a) = @_;
    my $max = $a{max} ? " max_messages=$a{max}" : '';
    return "c1_history_zone zone=$name:$a{zone}$max inactive=1h;"
        unless $a{redis};
    return "c1_history_redis name=$name server=unix:$redis->{sock}"
        . " prefix=bench:$a{prefix}:$max inactive=1h;";
}

# ids as <C1Chat> makes them (crypto.randomUUID), numbered
sub uuid { sprintf '%08x-%04x-4000-8000-%012x', $_[1], $_[0], $_[1] }

my $prompt = 'a prompt of about one hundred bytes, like the ones people '
    . 'type into a chat box, give or take ...';

# a turn's body: thread N's turn K, as <C1Chat> sends it
sub turn_body {
    my ($n, $k) = @_;
    return '{"prompt":{"id":"' . uuid(1, $k) . '","role":"user","content":"'
        . $prompt . '"},"threadId":"' . uuid(2, $n)
        . '","responseId":"' . uuid(3, $k) . '"}';
}

sub ms { sprintf '%.3f', $_[0] * 1000 }

sub p50_p99 {
    my @v = @_;
    return (ms(C1Bench::pct(50, @v)), ms(C1Bench::pct(99, @v)));
}

sub commas { my $n = reverse shift; $n =~ s/(\d{3})(?=\d)/$1,/g; return scalar reverse $n }

# the mock C1: t/lib/C1Mock.pm's locations (/mock/answer?len=N answers at
# once), Debian's nginx with Lua, one worker
C1Bench::server('hist-mock', $C1Bench::Lua, <<"_EOC_" . "    }\n", 1);
    server {
        listen 127.0.0.1:$port{mock} backlog=4096;
        keepalive_requests 1000000;
$C1Mock::MockLocations
_EOC_

# an edge: the module MODULE, a ZONE (or with REDIS a Redis store of
# prefix NAME), chat on /chat (the mock answering ALEN bytes), /metrics;
# owner: c1_history_owner $http_x_user
sub edge {
    my ($name, $module, $port, %a) = @_;
    my $owner = $a{owner} ? 'c1_history_owner $http_x_user;' : '';
    my $store = store_conf('threads', %a, prefix => $name);
    C1Bench::server($name, "load_module $module;\n", <<"_EOC_", 1);
    $store
    upstream c1mock { server 127.0.0.1:$port{mock}; keepalive 8; }
    server {
        listen 127.0.0.1:$port backlog=4096;
        keepalive_requests 1000000;
        client_max_body_size 1m;
        c1_model m;
        $owner
        location = /chat { c1_history threads; c1_pass /_c1; }
        location = /_c1 {
            internal;
            proxy_pass http://c1mock/mock/answer?len=$a{alen};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location = /metrics { c1_metrics; }
    }
_EOC_
    return C1Bench::client($port);
}

sub check {
    my ($what, $status, $want, $body) = @_;
    return if $status == $want;
    die "$what: status $status (want $want): " . substr($body, 0, 300) . "\n";
}

my $cpu = `lscpu | sed -n 's/^Model name: *//p'` =~ s/\n//r;
my ($load) = `cat /proc/loadavg` =~ /^(\S+)/;
my $ngx = `$C1Bench::Nginx -v 2>&1` =~ s/\n//r;
say_md("Made by `make bench-history` (bench/history-zone.pl) on "
       . localtime() . ": $cpu, " . (`nproc --all` =~ s/\n//r)
       . " cores, $ngx, cores not pinned, load average $load at the start "
       . "(other work on the machine). Every nginx has one worker; the "
       . "mock C1 is t/lib/C1Mock.pm's /mock/answer (Lua, its own nginx), "
       . "which answers at once. Latencies are one request at a time over "
       . "one keep-alive connection, timed by the Perl client (its own "
       . "overhead included, the same in every case). "
       . ($redis ? "Redis: redis-server $redis_version (Debian), one of the "
                   . "bench's own on a unix socket (`--save '' --appendonly "
                   . "no`), on the same cores; the module's defaults "
                   . "(connections=2, timeout=1s)."
                 : "Redis: skipped, $no_redis.") . "\n\n");

# 1. listing: six cases side by side (a zone each, one nginx), their
# requests interleaved, so that a change of load falls on all of them
if (!$api) {
    say_md("Listing: skipped, $new has no thread API (c1_threads).\n\n");
} else {
    my @cases;
    for my $st ('zone', $redis ? 'redis' : ()) {
        for my $owners (1, $o{owners}) {
            for my $size (10, 1000, 10000) {
                my $name = substr($st, 0, 1) . "${owners}_$size";
                push @cases, { owners => $owners, size => $size,
                               name => $name, store => $st,
                               zone => $size > 1000 ? '64m' : '8m' };
            }
        }
    }
    my $zones = join '', map {
        '    ' . store_conf($_->{name}, zone => $_->{zone},
                            redis => $_->{store} eq 'redis',
                            prefix => "list-$_->{name}") . "\n"
    } @cases;
    my $locs = join '', map {
        "        location /$_->{name}/api/threads/ { c1_threads $_->{name}; }\n"
    } @cases;
    C1Bench::server('hist-list', "load_module $new;\n", <<"_EOC_", 1);
$zones
    server {
        listen 127.0.0.1:$port{list} backlog=4096;
        keepalive_requests 1000000;
        c1_history_owner \$http_x_user;
$locs
    }
_EOC_
    my $c = C1Bench::client($port{list});
    my $h0 = "X-User: u0\r\n";

    say_md("### Listing one owner's threads (GET /api/threads/get)\n\n"
           . "Six zones" . ($redis ? " and six Redis stores (one "
                            . "redis-server, a key prefix each)" : '')
           . " side by side in one nginx, each filled through POST "
           . "/api/threads/create (a first message giving the title) with "
           . "10, 1,000 or 10,000 threads of one owner or of $o{owners} "
           . "owners taken in turn. Then, of owner u0 in each store: page 1 "
           . "(`GET /api/threads/get`, limit 50), page 2 (page 1's "
           . "`nextCursor`) and a page of limit=10, read in turn, every "
           . "case's in every round, $o{requests} rounds (at most "
           . "$o{'case-seconds'} s). Create p50: the creates that filled "
           . "the store.\n\n"
           . "| Store | Threads in the store | Owners | u0's threads "
           . "| Create p50 (ms) "
           . "| Page 1 threads | p50 (ms) | p99 (ms) | Page 2 threads "
           . "| p50 (ms) | p99 (ms) | limit=10 threads | p50 (ms) "
           . "| p99 (ms) |\n"
           . "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");

    my @pages;    # [case, path, latencies, answer length]
    for my $k (@cases) {
        my $api_path = "/$k->{name}/api/threads";
        my (%mine, @lat);
        for my $n (0 .. $k->{size} - 1) {
            my $u = 'u' . ($n % $k->{owners});
            my $b = '{"messages":[{"role":"user","content":"Thread '
                . "$n of $u: $prompt" . '"}]}';
            my $t0 = time;
            my ($s, undef, $body) = $c->request('POST', "$api_path/create",
                                                $b, "X-User: $u\r\n");
            push @lat, time - $t0;
            check('create', $s, 201, $body);
            $mine{$json->decode($body)->{id}} = 1 if $u eq 'u0';
        }
        ($k->{create}) = p50_p99(@lat);
        my $have = $k->{have} = keys %mine;
        $k->{mine} = \%mine;

        # what u0 lists: page 1, page 2 by its cursor, limit=10
        my ($s, undef, $body) = $c->request('GET', "$api_path/get", undef,
                                            $h0);
        check('list', $s, 200, $body);
        my $p1 = $json->decode($body);
        my $n1 = $k->{n1} = @{$p1->{threads}};
        die "$k->{name}: page 1 has $n1 threads, u0 has $have\n"
            unless $n1 == ($have < 50 ? $have : 50);
        die "$k->{name}: page 1 lists a thread not u0's\n"
            if grep { !$mine{$_->{id}} } @{$p1->{threads}};
        my $cursor = $p1->{nextCursor};
        die "$k->{name}: nextCursor with $have threads\n"
            if ($have > 50) != defined $cursor;
        push @pages, [$k, "$api_path/get", $k->{l1} = [], length $body];

        $k->{n2} = 'N/A';
        if (defined $cursor) {
            die "cursor $cursor\n" unless $cursor =~ /^[0-9a-zA-Z_-]+$/;
            my $path = "$api_path/get?cursor=$cursor";
            ($s, undef, $body) = $c->request('GET', $path, undef, $h0);
            check('page 2', $s, 200, $body);
            my $p2 = $json->decode($body);
            my %on1 = map { $_->{id} => 1 } @{$p1->{threads}};
            my $n2 = $k->{n2} = @{$p2->{threads}};
            die "$k->{name}: page 2 has $n2 threads, u0 has $have\n"
                unless $n2 == ($have - 50 < 50 ? $have - 50 : 50);
            die "$k->{name}: page 2 lists a thread not u0's or of page 1\n"
                if grep { !$mine{$_->{id}} || $on1{$_->{id}} }
                   @{$p2->{threads}};
            push @pages, [$k, $path, $k->{l2} = [], length $body];
        }

        ($s, undef, $body) = $c->request('GET', "$api_path/get?limit=10",
                                         undef, $h0);
        check('limit=10', $s, 200, $body);
        my $p3 = $json->decode($body);
        my $n3 = $k->{n3} = @{$p3->{threads}};
        die "$k->{name}: limit=10 is not page 1's first ten\n"
            unless $n3 == ($have < 10 ? $have : 10)
                && join(' ', map { $_->{id} } @{$p3->{threads}})
                   eq join(' ', map { $_->{id} }
                                @{$p1->{threads}}[0 .. $n3 - 1]);
        push @pages, [$k, "$api_path/get?limit=10", $k->{l3} = [],
                      length $body];
    }

    my $end = time + $o{'case-seconds'};
    for my $i (1 .. $o{requests}) {
        for my $p (@pages) {
            my $t0 = time;
            my ($s, undef, $body) = $c->request('GET', $p->[1], undef, $h0);
            push @{$p->[2]}, time - $t0;
            check('list', $s, 200, $body);
            die "$p->[1]: the listing changed\n"
                unless length $body == $p->[3];
        }
        last if time > $end;
    }

    for my $k (@cases) {
        # nothing was evicted: u0's threads, all of them, page by page
        my ($count, $pages, %seen) = (0, 0);
        my $path = "/$k->{name}/api/threads/get?limit=200";
        while (1) {
            my ($s, undef, $body) = $c->request('GET', $path, undef, $h0);
            check('walk', $s, 200, $body);
            my $p = $json->decode($body);
            for my $t (@{$p->{threads}}) {
                die "$k->{name}: the walk lists $t->{id} twice or not u0's\n"
                    if !$k->{mine}{$t->{id}} || $seen{$t->{id}}++;
                $count++;
            }
            last unless defined $p->{nextCursor};
            die "more than 100 pages\n" if ++$pages > 100;
            $path = "/$k->{name}/api/threads/get?limit=200"
                . "&cursor=$p->{nextCursor}";
        }
        die "$k->{name}: u0 lists $count of its $k->{have} threads\n"
            unless $count == $k->{have};

        my @r1 = p50_p99(@{$k->{l1}});
        my @r2 = $k->{l2} ? p50_p99(@{$k->{l2}}) : ('N/A', 'N/A');
        my @r3 = p50_p99(@{$k->{l3}});
        $k->{p50} = $r1[0];
        $k->{ten} = $r3[0];
        say_md(sprintf "| %s | %s | %d | %s | %s | %d | %s | %s | %s | %s "
               . "| %s | %d | %s | %s |\n", $k->{store}, commas($k->{size}),
               $k->{owners},
               commas($k->{have}), $k->{create}, $k->{n1}, @r1, $k->{n2},
               @r2, $k->{n3}, @r3);
    }
    C1Bench::stop('hist-list');

    my %k = map { ("$_->{store}/$_->{owners}/$_->{size}" => $_) } @cases;
    my $m = $o{owners};
    say_md("\n");
    for my $st ('zone', $redis ? 'redis' : ()) {
        say_md(sprintf "%s: a page of 10 threads, one owner: p50 %s ms with "
               . "10 threads in the store, %s ms with 10,000 (%.2fx). A page "
               . "of 50: p50 at 10,000 threads over p50 at 1,000: %.2fx (one "
               . "owner), %.2fx (%d owners).\n",
               $st eq 'zone' ? 'Zone' : 'Redis',
               $k{"$st/1/10"}{ten}, $k{"$st/1/10000"}{ten},
               $k{"$st/1/10000"}{ten} / $k{"$st/1/10"}{ten},
               $k{"$st/1/10000"}{p50} / $k{"$st/1/1000"}{p50},
               $k{"$st/$m/10000"}{p50} / $k{"$st/$m/1000"}{p50}, $m);
    }
    say_md(sprintf "At 10 threads page 1 holds only 10 (one owner) or %d "
           . "(%d owners).\n\n", $k{"zone/$m/10"}{n1}, $m);
}

# 2. a turn's time, old and new (zone and Redis) alternating
my $oldline = "the module before the thread API (commit $o{'old-commit'})";
# [label, module, c1_history_owner, key (edge and port), in Redis]
my @who;
push @who, ['old', $old, 0, 'old', 0] if $old;
push @who, ['new, zone', $new, 0, 'new', 0];
push @who, ['new, zone, c1_history_owner', $new, 1, 'owner', 0] if $api;
push @who, ['new, Redis', $new, 0, 'redis', 1] if $redis;
push @who, ['new, Redis, c1_history_owner', $new, 1, 'redis-owner', 1]
    if $redis;
say_md("### A thread turn's time (concurrency 1)\n\n");
if (!$old) {
    say_md("Old module: skipped, no build of $oldline"
           . ($o{old} ? " at $o{old}: this checkout has no commit "
                        . "$o{'old-commit'} (a shallow clone?)" : '')
           . ". Only this module's figures follow.\n\n");
}
my $pool = 50;
my %st;
for my $w (@who) {
    $st{$w->[0]} = {
        c => edge("hist-$w->[3]", $w->[1], $port{$w->[3]}, zone => '16m',
                  max => 10, alen => $o{'turn-answer'}, owner => $w->[2],
                  redis => $w->[4]),
        lat => [], owner => $w->[2] };
}
{
    my $k = 0;
    my $turn = sub {
        my ($w) = @_;
        my $s = $st{$w};
        my $n = $k % $pool;
        my $h = $s->{owner} ? 'X-User: u' . ($n % $o{owners}) . "\r\n" : '';
        my $t0 = time;
        my ($status, undef, $body) =
            $s->{c}->request('POST', '/chat', turn_body($n, $k), $h);
        my $t = time - $t0;
        check("turn ($w)", $status, 200, $body);
        return $t;
    };
    # warm-up: every thread of the pool at max_messages
    for (1 .. $pool * 6) {
        $turn->($_->[0]) for @who;
        $k++;
    }
    # the threads are full: the store is in play
    for my $w (@who) {
        my $s = $st{$w->[0]};
        my ($status, undef, $body) = $s->{c}->request('GET',
            '/chat?threadId=' . uuid(2, 0), undef,
            $s->{owner} ? "X-User: u0\r\n" : '');
        check("thread ($w->[0])", $status, 200, $body);
        my $m = $json->decode($body);
        die "$w->[0]: the thread holds " . @$m . " messages, not 10\n"
            unless @$m == 10;
    }
    my $end = time + $o{'turn-seconds'};
    my $done = 0;
    for my $i (1 .. $o{turns}) {
        my @order = map { $who[($i + $_) % @who][0] } 0 .. $#who;
        push @{$st{$_}{lat}}, $turn->($_) for @order;
        $k++;
        $done = $i;
        last if time > $end;
    }
    say_md("$done turns" . (@who > 1 ? ' each, alternating between the '
                                       . 'modules and stores,' : '')
           . " over $pool "
           . "threads of 10 messages each (max_messages=10: the stored ones "
           . "and the new turn go to C1, $o{'turn-answer'}-byte answers, "
           . "not streamed; C1Chat bodies with prompt and response ids)."
           . ($api ? " \"c1_history_owner\": the same with "
                     . "`c1_history_owner \$http_x_user;` and $o{owners} "
                     . "owners." : '')
           . ($redis ? " Redis: the same edge with `c1_history_redis` "
                       . "instead of `c1_history_zone`; \"added by Redis\" "
                       . "is its p50 minus the zone's p50 with the same "
                       . "owner setting." : '') . "\n\n"
           . "| Module, store | p50 (ms) | p99 (ms) | p50 / old | p99 / old "
           . "| Added by Redis at p50 (ms) | at p99 (ms) |\n"
           . "|---|---|---|---|---|---|---|\n");
    my @ref = $old ? p50_p99(@{$st{old}{lat}}) : ();
    my %r;
    for my $w (@who) {
        my @r = p50_p99(@{$st{$w->[0]}{lat}});
        $r{$w->[0]} = \@r;
        my $label = $w->[0] eq 'old' ? "old ($o{'old-commit'})" : $w->[0];
        my $zone = $w->[4] ? $r{$w->[0] =~ s/Redis/zone/r} : undef;
        say_md(sprintf "| %s | %s | %s | %s | %s | %s | %s |\n", $label, @r,
               @ref ? (sprintf('%.2fx', $r[0] / $ref[0]),
                       sprintf('%.2fx', $r[1] / $ref[1]))
                    : ('N/A', 'N/A'),
               $zone ? (sprintf('%+.3f', $r[0] - $zone->[0]),
                        sprintf('%+.3f', $r[1] - $zone->[1]))
                     : ('', ''));
    }
    if ($redis) {
        my $d = $r{'new, Redis'}[0] - $r{'new, zone'}[0];
        say_md(sprintf "\nIssue 15's goal, a turn with Redis within 0.3 ms "
               . "of the zone at p50 (concurrency 1): %+.3f ms, %s.\n",
               $d, $d <= 0.3 ? 'met' : 'NOT met');
    }
    say_md("\n");
    C1Bench::stop("hist-$_") for qw(old owner redis-owner);
}

# 3. throughput at concurrency 16: wrk, zone and Redis alternating
if ($redis) {
    my $wrk = `sh -c 'command -v wrk'` =~ s/\n//r;
    say_md("### Throughput at concurrency 16\n\n");
    if (!$wrk) {
        say_md("Skipped: no wrk (apt-get install wrk).\n\n");
    } else {
        # every wrk thread has threads of its own (a pool of 200, taken in
        # turn): no two of its 8 connections' turns meet on one thread
        my $script = "$C1Bench::Root/hist-wrk.lua";
        open my $fh, '>', $script or die "$script: $!\n";
        print $fh <<"_EOL_";
local counter = 0
function setup(thread)
    thread:set("wid", counter)
    counter = counter + 1
end
local n = 0
local headers = { ["Content-Type"] = "application/json" }
local function uuid(a, b)
    return string.format("%08x-%04x-4000-8000-%012x", b, a, b)
end
function request()
    n = n + 1
    local k = (wid + 1) * 10000000 + n
    local t = (wid + 1) * 100000 + n % 200
    return wrk.format("POST", "/chat", headers,
        '{"prompt":{"id":"' .. uuid(1, k) .. '","role":"user","content":"'
        .. "$prompt" .. '"},"threadId":"' .. uuid(2, t)
        .. '","responseId":"' .. uuid(3, k) .. '"}')
end
_EOL_
        close $fh;
        my %res = map { ($_ => []) } qw(zone redis);
        my %edge = (zone => 'new', redis => 'redis');
        my $run = sub {
            my ($which, $seconds) = @_;
            my ($worker) = C1Bench::workers("hist-$edge{$which}");
            my @cpu0 = (C1Bench::cpu_s($worker), C1Bench::cpu_s($redis->pid));
            my $cmd = "$wrk -t2 -c16 -d${seconds}s --latency -s $script "
                . "http://127.0.0.1:$port{$edge{$which}}/chat 2>&1";
            my $out = `$cmd`;
            my @cpu1 = (C1Bench::cpu_s($worker), C1Bench::cpu_s($redis->pid));
            my ($rps) = $out =~ /^Requests\/sec:\s+([\d.]+)/m
                or die "wrk: no Requests/sec:\n$out\n";
            my ($bad) = $out =~ /Non-2xx or 3xx responses:\s+(\d+)/;
            my ($err) = $out =~ /Socket errors:(.*)/;
            my %lat = $out =~ /^\s+(50|99)%\s+([\d.]+(?:us|ms|s))/mg;
            return { rps => $rps, bad => $bad // 0, err => $err,
                     p50 => $lat{50}, p99 => $lat{99},
                     ncpu => ($cpu1[0] - $cpu0[0]) / $seconds * 100,
                     rcpu => ($cpu1[1] - $cpu0[1]) / $seconds * 100 };
        };
        $run->($_, 2) for qw(zone redis);    # the threads fill up
        for my $round (1 .. $o{'wrk-rounds'}) {
            my @order = $round % 2 ? qw(zone redis) : qw(redis zone);
            push @{$res{$_}}, $run->($_, $o{'wrk-seconds'}) for @order;
        }
        my $bad = 0;
        for my $x (values %res) { $bad += $_->{bad} for @$x }
        say_md("`wrk -t2 -c16 -d$o{'wrk-seconds'}s --latency` (wrk "
               . (`$wrk -v 2>&1` =~ /^wrk (\S+)/m ? $1 : '?')
               . ", keep-alive) with a Lua script making the same C1Chat "
               . "turns as above (every wrk thread its own 200 threads, "
               . "taken in turn, so no two turns meet on a thread), "
               . "against the zone edge and the Redis edge (one worker "
               . "each, the same mock C1), $o{'wrk-rounds'} rounds "
               . "alternating, after 2 s of each that fill the threads "
               . "(max_messages=10). wrk, the edge, the mock and Redis share "
               . "the 2 cores: Redis's own CPU is taken from the edge's. "
               . "Latencies are wrk's. CPU: of the edge's worker and of "
               . "redis-server, in % of one core.\n\n"
               . "| Round | Zone req/s | p50 | p99 | worker CPU | Redis "
               . "req/s | p50 | p99 | worker CPU | redis-server CPU "
               . "| Redis / zone |\n"
               . "|---|---|---|---|---|---|---|---|---|---|---|\n");
        my (@z, @r);
        for my $i (0 .. $o{'wrk-rounds'} - 1) {
            my ($a, $b) = ($res{zone}[$i], $res{redis}[$i]);
            push @z, $a->{rps};
            push @r, $b->{rps};
            say_md(sprintf "| %d | %.0f | %s | %s | %.0f%% | %.0f | %s | %s "
                   . "| %.0f%% | %.0f%% | %.2fx |\n", $i + 1, $a->{rps},
                   $a->{p50}, $a->{p99}, $a->{ncpu}, $b->{rps}, $b->{p50},
                   $b->{p99}, $b->{ncpu}, $b->{rcpu}, $b->{rps} / $a->{rps});
        }
        my ($zm, $rm) = (C1Bench::pct(50, @z), C1Bench::pct(50, @r));
        # CPU per turn: % of a core over req/s, in microseconds
        my $us = sub {
            my ($w, $f) = @_;
            my $sum = 0;
            $sum += $_->{$f} / 100 / $_->{rps} * 1e6 for @{$res{$w}};
            return $sum / @{$res{$w}};
        };
        say_md(sprintf "\nMedians: zone %.0f req/s, Redis %.0f req/s: "
               . "%.2fx. Issue 15's goal, at least 0.8x the zone's "
               . "throughput at concurrency 16: %s. Answers other than 200: "
               . "%d. CPU per turn (mean of the rounds): the edge's worker "
               . "%.0f us with the zone, %.0f us with Redis, and "
               . "redis-server %.0f us.\n\n", $zm, $rm, $rm / $zm,
               $rm / $zm >= 0.8 ? 'met' : 'NOT met', $bad,
               $us->('zone', 'ncpu'), $us->('redis', 'ncpu'),
               $us->('redis', 'rcpu'));
        die "wrk: $bad answers other than 200\n" if $bad;
    }
}
C1Bench::stop("hist-$_") for qw(new redis);

# 4. bytes per turn
say_md("### Bytes per turn\n\n"
       . "One-turn threads (a 100-byte prompt, an answer of N bytes, "
       . "C1Chat bodies: 36-character thread, prompt and response ids) "
       . "made one after another in a 1m zone until the first eviction "
       . "(c1_history_evicted_total); bytes per turn = 1 MB / the threads "
       . "it held.\n\n");
my %cap;
for my $w (grep { $_->[3] eq 'old' || $_->[3] eq 'new' } @who) {
    for my $alen (@sizes) {
        my $c = edge("hist-$w->[3]", $w->[1], $port{$w->[3]}, zone => '1m',
                     max => 100000, alen => $alen);
        my $held;
        for my $i (1 .. 20000) {
            my ($s, undef, $body) =
                $c->request('POST', '/chat', turn_body($i, $i));
            check('turn', $s, 200, $body);
            ($s, undef, $body) = $c->request('GET', '/metrics');
            check('metrics', $s, 200, $body);
            my ($ev) = $body =~ /^c1_history_evicted_total\{zone="threads"\} (\d+)/m;
            my ($dr) = $body =~ /^c1_history_dropped_total\{zone="threads"\} (\d+)/m;
            die "no c1_history_evicted_total\n" unless defined $ev;
            if ($ev || $dr) {
                $held = $i - 1;
                last;
            }
        }
        die "no eviction in 20000 turns\n" unless $held;
        $cap{$w->[3]}{$alen} = $held;
        C1Bench::stop("hist-$w->[3]");
    }
}
if ($old) {
    say_md("| Answer size | Old: threads in 1 MB | Old: bytes per turn "
           . "| New: threads in 1 MB | New: bytes per turn "
           . "| Metadata per turn (new - old) |\n|---|---|---|---|---|---|\n");
    for my $alen (@sizes) {
        my ($a, $b) = ($cap{old}{$alen}, $cap{new}{$alen});
        say_md(sprintf "| %s B | %d | %s | %d | %s | %+d B |\n", commas($alen),
               $a, commas(int(1048576 / $a + 0.5)), $b,
               commas(int(1048576 / $b + 0.5)),
               int(1048576 / $b + 0.5) - int(1048576 / $a + 0.5));
    }
    say_md("\nnginx's slab allocator rounds each allocation up to a power of "
           . "two up to 2 KB (whole 4 KB pages above): a few bytes of header "
           . "and id more can move a message into the next size, so the "
           . "metadata's cost depends on where an answer's size falls.\n");
} else {
    say_md("| Answer size | One-turn threads in 1 MB | Bytes per turn |\n"
           . "|---|---|---|\n");
    say_md(sprintf "| %s B | %d | %s |\n", commas($_), $cap{new}{$_},
                   commas(int(1048576 / $cap{new}{$_} + 0.5)))
        for @sizes;
}
say_md("\n");

# Redis's memory per stored turn: INFO used_memory before and after N
# one-turn threads, then after a second turn on each of them
if ($redis) {
    my $n = $o{'redis-turns'};
    say_md("### Redis memory per stored turn\n\n"
           . "The same turns into Redis (an emptied redis-server, "
           . "max_messages=100000): `INFO memory` used_memory before and "
           . "after $n one-turn threads (a thread's keys, its index entry "
           . "and its first turn), then after a second turn on each of them "
           . "(what a further turn adds), divided by $n. Keys: DBSIZE's "
           . "growth per thread.\n\n"
           . "| Answer size | used_memory before | after $n threads "
           . "| per one-turn thread | after a 2nd turn each | per added "
           . "turn | keys per thread | zone's bytes per turn (above) |\n"
           . "|---|---|---|---|---|---|---|---|\n");
    my $i = 0;
    for my $alen (@sizes) {
        $redis->cmd('FLUSHALL');
        my $c = edge('hist-redis', $new, $port{redis}, redis => 1,
                     max => 100000, alen => $alen);
        # one turn first: the connections to Redis, the scripts loaded
        my ($s, undef, $body) = $c->request('POST', '/chat',
                                            turn_body(0, 0));
        check('turn', $s, 200, $body);
        my $base = ++$i * 1000000;
        my ($m0, $k0) = ($redis->info('used_memory'), $redis->cmd('DBSIZE'));
        for my $t (1 .. $n) {
            ($s, undef, $body) = $c->request('POST', '/chat',
                                             turn_body($base + $t, $base + $t));
            check('turn', $s, 200, $body);
        }
        my ($m1, $k1) = ($redis->info('used_memory'), $redis->cmd('DBSIZE'));
        for my $t (1 .. $n) {
            ($s, undef, $body) = $c->request('POST', '/chat',
                turn_body($base + $t, $base + $n + $t));
            check('turn', $s, 200, $body);
        }
        my $m2 = $redis->info('used_memory');
        ($s, undef, $body) = $c->request('GET', '/chat?threadId='
                                         . uuid(2, $base + 1));
        check('thread', $s, 200, $body);
        die "a thread of two turns holds " . @{$json->decode($body)}
            . " messages\n" unless @{$json->decode($body)} == 4;
        C1Bench::stop('hist-redis');
        my $zone = $cap{new}{$alen}
            ? commas(int(1048576 / $cap{new}{$alen} + 0.5)) . ' B' : 'N/A';
        say_md(sprintf "| %s B | %s | %s | %s B | %s | %s B | %.1f | %s |\n",
               commas($alen), commas($m0), commas($m1),
               commas(int(($m1 - $m0) / $n + 0.5)), commas($m2),
               commas(int(($m2 - $m1) / $n + 0.5)), ($k1 - $k0) / $n, $zone);
    }
    say_md("\nused_memory is Redis's own count of what its allocator (jemalloc) "
           . "handed out, size classes included; small lists and hashes are "
           . "listpacks, so a message costs little more than its bytes.\n");
    $redis->stop;
}

# the section of bench/RESULTS.md
if ($o{write}) {
    my $f = "$top/bench/RESULTS.md";
    my $text = '';
    if (open my $fh, '<', $f) { local $/; $text = <$fh> }
    my $section = "## History store (make bench-history)\n\n"
        . "Reproduce: `make bench-history` (or, with both modules built, "
        . "`bench/history-zone.pl --old build/bench/old/ngx_http_c1_module.so"
        . " --old-commit $o{'old-commit'}`; Debian's redis-server and wrk "
        . "for the Redis parts, `--no-redis` without them; BENCH_PORT moves "
        . "its seven ports).\n\n" . join('', @out);
    $text =~ s/\n*## History store \(make bench-history\)\n.*?(?=\n## |\z)//s;
    $text =~ s/\n*\z/\n\n/;
    open my $fh, '>', $f or die "$f: $!\n";
    print $fh $text . $section;
    close $fh;
    print "\nwrote the section \"History store\" of bench/RESULTS.md\n";
}
