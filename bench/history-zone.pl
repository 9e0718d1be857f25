#!/usr/bin/env perl
# What the thread store costs (make bench-history), in one run:
#
#  1. listing one owner's threads through the thread API (GET
#     /api/threads/get, the default limit of 50, and the second page through
#     nextCursor) with 10, 1,000 and 10,000 threads in the zone (made by POST
#     /api/threads/create), all of one owner or spread over --owners owners:
#     p50/p99 per case. A listing should cost O(page), not O(all threads).
#  2. the time of a thread turn (a C1Chat body with a threadId, the mock C1
#     answering at once) with this module and with the module from before
#     the thread API (--old, built by the Makefile from the project's own
#     history), turns alternating between them: p50/p99 and the ratio;
#  3. how many one-turn threads (a 100-byte prompt, an answer of N bytes) a
#     1m zone holds before it evicts, old and new: the bytes a turn costs,
#     and the new store's metadata (message ids, timestamps).
#
#   bench/history-zone.pl [--old MODULE] [--old-commit C] [--sizes 1000,4000]
#       [--requests N] [--turns N] [--owners N] [--no-write]
#
# The module is build/ngx_http_c1_module.so (C1_MODULE moves it). Ports:
# BENCH_PORT (default 19720) and the next four. Without --no-write the
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

my %o = (sizes => '1000,4000,10000,20000', requests => 3000, turns => 10000,
         owners => 4, 'old-commit' => 'the old commit', write => 1,
         'case-seconds' => 20, 'turn-seconds' => 60, 'turn-answer' => 1000);
GetOptions(\%o, 'old=s', 'old-commit=s', 'sizes=s', 'requests=i', 'turns=i',
           'owners=i', 'write!', 'case-seconds=i', 'turn-seconds=i',
           'turn-answer=i')
    or die "usage: $0 [--old MODULE] [--old-commit C] [--sizes N,N...]"
         . " [--requests N] [--turns N] [--owners N] [--no-write]\n";

my $new = $C1Bench::Module;
die "no module $new: make first\n" unless -f $new;
my $old = $o{old} && -f $o{old} ? abs_path($o{old}) : undef;
my $base = $ENV{BENCH_PORT} || 19720;
my %port = (mock => $base, list => $base + 1, old => $base + 2,
            new => $base + 3, owner => $base + 4);
my @sizes = split /,/, $o{sizes};
my $json = JSON::PP->new;
my @out;    # the report, in Markdown

sub say_md { my $l = join '', @_; print $l; push @out, $l }

# does the module have the thread API (c1_threads, c1_history_owner)?
sub has_thread_api {
    my ($so) = @_;
    open my $fh, '<:raw', $so or return 0;
    local $/;
    my $bin = <$fh>;
    return index($bin, "c1_history_owner\0") >= 0
        && index($bin, "c1_threads\0") >= 0;
}
my $api = has_thread_api($new);

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

# an edge: the module MODULE, a ZONE, chat on /chat (the mock answering
# ALEN bytes), /metrics; owner: c1_history_owner $http_x_user
sub edge {
    my ($name, $module, $port, %a) = @_;
    my $owner = $a{owner} ? 'c1_history_owner $http_x_user;' : '';
    C1Bench::server($name, "load_module $module;\n", <<"_EOC_", 1);
    c1_history_zone zone=threads:$a{zone} max_messages=$a{max} inactive=1h;
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
my $ngx = `$C1Bench::Nginx -v 2>&1` =~ s/\n//r;
say_md("Made by `make bench-history` (bench/history-zone.pl) on "
       . localtime() . ": $cpu, " . (`nproc --all` =~ s/\n//r)
       . " cores, $ngx, cores not pinned. Every nginx has one worker; the "
       . "mock C1 is t/lib/C1Mock.pm's /mock/answer (Lua, its own nginx), "
       . "which answers at once. Latencies are one request at a time over "
       . "one keep-alive connection, timed by the Perl client (its own "
       . "overhead included, the same in every case).\n\n");

# 1. listing: six cases side by side (a zone each, one nginx), their
# requests interleaved, so that a change of load falls on all of them
if (!$api) {
    say_md("Listing: skipped, $new has no thread API (c1_threads).\n\n");
} else {
    my @cases;
    for my $owners (1, $o{owners}) {
        for my $size (10, 1000, 10000) {
            push @cases, { owners => $owners, size => $size,
                           name => "z${owners}_$size",
                           zone => $size > 1000 ? '64m' : '8m' };
        }
    }
    my $zones = join '', map {
        "    c1_history_zone zone=$_->{name}:$_->{zone} inactive=1h;\n"
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
           . "Six zones side by side in one nginx, each filled through POST "
           . "/api/threads/create (a first message giving the title) with "
           . "10, 1,000 or 10,000 threads of one owner or of $o{owners} "
           . "owners taken in turn. Then, of owner u0 in each zone: page 1 "
           . "(`GET /api/threads/get`, limit 50), page 2 (page 1's "
           . "`nextCursor`) and a page of limit=10, read in turn, every "
           . "case's in every round, $o{requests} rounds (at most "
           . "$o{'case-seconds'} s). Create p50: the creates that filled "
           . "the zone.\n\n"
           . "| Threads in the zone | Owners | u0's threads | Create p50 (ms) "
           . "| Page 1 threads | p50 (ms) | p99 (ms) | Page 2 threads "
           . "| p50 (ms) | p99 (ms) | limit=10 threads | p50 (ms) "
           . "| p99 (ms) |\n"
           . "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");

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
        say_md(sprintf "| %s | %d | %s | %s | %d | %s | %s | %s | %s | %s "
               . "| %d | %s | %s |\n", commas($k->{size}), $k->{owners},
               commas($k->{have}), $k->{create}, $k->{n1}, @r1, $k->{n2},
               @r2, $k->{n3}, @r3);
    }
    C1Bench::stop('hist-list');

    my %k = map { ("$_->{owners}/$_->{size}" => $_) } @cases;
    my $m = $o{owners};
    say_md(sprintf "\nA page of 10 threads, one owner: p50 %s ms with 10 "
           . "threads in the zone, %s ms with 10,000 (%.2fx). A page of 50: "
           . "p50 at 10,000 threads over p50 at 1,000: %.2fx (one owner), "
           . "%.2fx (%d owners). At 10 threads page 1 holds only 10 (one "
           . "owner) or %d (%d owners).\n\n",
           $k{'1/10'}{ten}, $k{'1/10000'}{ten},
           $k{'1/10000'}{ten} / $k{'1/10'}{ten},
           $k{'1/10000'}{p50} / $k{'1/1000'}{p50},
           $k{"$m/10000"}{p50} / $k{"$m/1000"}{p50}, $m,
           $k{"$m/10"}{n1}, $m);
}

# 2. a turn's time, old and new alternating
my $oldline = "the module before the thread API (commit $o{'old-commit'})";
my @who;
push @who, ['old', $old, 0] if $old;
push @who, ['new', $new, 0];
push @who, ['new, c1_history_owner', $new, 1] if $api;
say_md("### A thread turn's time\n\n");
if (!$old) {
    say_md("Old module: skipped, no build of $oldline"
           . ($o{old} ? " at $o{old}: this checkout has no commit "
                        . "$o{'old-commit'} (a shallow clone?)" : '')
           . ". Only this module's figures follow.\n\n");
}
{
    my $pool = 50;
    my %st;
    for my $w (@who) {
        my $name = $w->[0] =~ /owner/ ? 'owner' : $w->[0];
        $st{$w->[0]} = {
            c => edge("hist-$name", $w->[1], $port{$name}, zone => '16m',
                      max => 10, alen => $o{'turn-answer'}, owner => $w->[2]),
            lat => [], owner => $w->[2] };
    }
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
                                       . 'modules,' : '') . " over $pool "
           . "threads of 10 messages each (max_messages=10: the stored ones "
           . "and the new turn go to C1, $o{'turn-answer'}-byte answers, "
           . "not streamed; C1Chat bodies with prompt and response ids)."
           . ($api ? " \"new, c1_history_owner\": the same with "
                     . "`c1_history_owner \$http_x_user;` and $o{owners} "
                     . "owners." : '') . "\n\n"
           . "| Module | p50 (ms) | p99 (ms) | p50 / old | p99 / old |\n"
           . "|---|---|---|---|---|\n");
    my @ref = $old ? p50_p99(@{$st{old}{lat}}) : ();
    for my $w (@who) {
        my @r = p50_p99(@{$st{$w->[0]}{lat}});
        my $label = $w->[0] eq 'old' ? "old ($o{'old-commit'})" : $w->[0];
        say_md(sprintf "| %s | %s | %s | %s | %s |\n", $label, @r,
               @ref ? (sprintf('%.2fx', $r[0] / $ref[0]),
                       sprintf('%.2fx', $r[1] / $ref[1]))
                    : ('N/A', 'N/A'));
    }
    say_md("\n");
    C1Bench::stop("hist-$_") for qw(old new owner);
}

# 3. bytes per turn
say_md("### Bytes per turn\n\n"
       . "One-turn threads (a 100-byte prompt, an answer of N bytes, "
       . "C1Chat bodies: 36-character thread, prompt and response ids) "
       . "made one after another in a 1m zone until the first eviction "
       . "(c1_history_evicted_total); bytes per turn = 1 MB / the threads "
       . "it held.\n\n");
my %cap;
for my $w (grep { $_->[0] !~ /owner/ } @who) {
    for my $alen (@sizes) {
        my $c = edge("hist-$w->[0]", $w->[1], $port{$w->[0]}, zone => '1m',
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
        $cap{$w->[0]}{$alen} = $held;
        C1Bench::stop("hist-$w->[0]");
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

# the section of bench/RESULTS.md
if ($o{write}) {
    my $f = "$top/bench/RESULTS.md";
    my $text = '';
    if (open my $fh, '<', $f) { local $/; $text = <$fh> }
    my $section = "## History store (make bench-history)\n\n"
        . "Reproduce: `make bench-history` (or, with both modules built, "
        . "`bench/history-zone.pl --old build/bench/old/ngx_http_c1_module.so"
        . " --old-commit $o{'old-commit'}`).\n\n" . join('', @out);
    $text =~ s/\n*## History store \(make bench-history\)\n.*?(?=\n## |\z)//s;
    $text =~ s/\n*\z/\n\n/;
    open my $fh, '>', $f or die "$f: $!\n";
    print $fh $text . $section;
    close $fh;
    print "\nwrote the section \"History store\" of bench/RESULTS.md\n";
}
