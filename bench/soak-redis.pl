#!/usr/bin/env perl
# Soak with threads in Redis (make soak-redis, or SOAK_ARGS=--redis make
# soak): two nginx nodes (a master and two workers each) share one
# redis-server (a unix socket under build/bench, appendonly yes with
# appendfsync always), which is
# killed (kill -9, or --restart=term: SIGTERM) in the middle of the
# measured round and started again on the same files after --down seconds.
#
# Mixed thread traffic from C clients (each one owner of --owners, and each
# owner's clients use the same thread ids, so the ids of one owner are the
# ids of the others): turns alternating between the nodes (plain and
# streamed), racing turns (one turn on each node at once, on one thread),
# and the thread API (list, get, create, rename, delete) on either node.
# The mock C1 answers every turn with what it got: "re TAG | T1 =T1 T2 =T2
# ..." (the new prompt's tag, then the stored history, a user message's tag
# and "=" the tag its answer answered), so every answer shows the history
# the node read; streamed answers come in two pieces --stream-delay ms
# apart (default 50), so that turns are under way when Redis goes.
# Afterwards, checked:
#  - every answer right, or a documented error: 503 history_unavailable
#    only for a request that overlapped the restart window (from the kill
#    to Redis back + 1 s backoff + timeout + slack), 409 thread_busy only
#    for racing turns, or in that window on a thread whose turn the
#    restart cut (its lock freed once its worker reconnects); no request
#    longer than --max-wait seconds;
#  - no thread out of order, half-written (a user message without its
#    answer), missing a turn answered outside the window, or another
#    owner's: through every answer, every GET of a thread, and a last GET
#    of every thread of every client; every listing shows only the owner's
#    threads; two racing turns never both ran on one thread;
#  - no crash: no "signal" and no [alert]/[emerg] in the nodes' logs, the
#    same workers alive at the end; [crit] only for a connect() to Redis;
#  - the workers' private memory (RssAnon) and descriptors back at their
#    baseline (after warm-up rounds, before the restart) once the load
#    ends: at most 256 KiB more, no descriptor more.
# Exits non-zero when a check fails.
#
#   bench/soak-redis.pl [--seconds S] [--concurrency C] [--owners N]
#       [--restart kill|term] [--down S] [--max-wait S] [--no-restart]
#       [--stream-delay MS] [--turns N] [--max-messages N]
#
# Ports: BENCH_PORT (default 19641) and the next two.

use strict;
use warnings;

use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use Getopt::Long;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(_exit);
use Time::HiRes qw(time sleep);

use lib dirname(__FILE__) . '/lib';
use C1Bench;
use C1Redis;

# a signal still stops the servers started (the modules' END blocks)
$SIG{INT} = $SIG{TERM} = sub { exit 1 };

my %o = (seconds => 60, concurrency => 16, owners => 4, restart => 'kill',
         down => 2, 'max-wait' => 3, 'max-messages' => 40, 'turns' => 12,
         'stream-delay' => 50);
GetOptions(\%o, 'seconds=i', 'concurrency=i', 'owners=i', 'restart=s',
           'down=f', 'max-wait=f', 'no-restart', 'max-messages=i', 'turns=i',
           'stream-delay=i',
           'redis')    # what soak.pl passes on
    or die "usage: $0 [--seconds S] [--concurrency C] [--owners N] "
         . "[--restart kill|term] [--down S] [--max-wait S] "
         . "[--no-restart]\n";
die "--restart kill or term\n" unless $o{restart} =~ /^(kill|term)$/;

my $mock_port = $ENV{BENCH_PORT} || 19641;
my @node_port = ($mock_port + 1, $mock_port + 2);
my $timeout = 1;    # the store's timeout=1s
my $work = "$C1Bench::Root/soak-redis-clients";
my $json = JSON::PP->new->canonical;

-f $C1Bench::Module or die "build the module first (make)\n";

# appendfsync always: what Redis acknowledged survives its kill -9 (with
# everysec it may lose a second of acknowledged writes, a deleted thread
# coming back)
my $redis = C1Redis->start('soak-redis-server', aof => 'always');

# the mock C1: the tag of the new prompt, then the history it got
C1Bench::server('soak-redis-mock', $C1Bench::Lua, <<'_EOC_' =~ s/PORT/$mock_port/r, 1);
    server {
        listen 127.0.0.1:PORT backlog=65535;
        keepalive_requests 1000000;
        location = /soak/c1 {
            content_by_lua_block {
                local cjson = require "cjson"
                ngx.req.read_body()
                local body = ngx.req.get_body_data()
                if not body then
                    local f = io.open(ngx.req.get_body_file(), "rb")
                    body = f:read("*a")
                    f:close()
                end
                local req = cjson.decode(body)
                local msgs, seen = req.messages, {}
                local last = #msgs
                for i = 1, last - 1 do
                    local m = msgs[i]
                    if m.role == "user" then
                        seen[#seen + 1] = m.content
                    elseif m.role == "assistant" then
                        seen[#seen + 1] = "="
                            .. (m.content:match("^re (%S+)") or "?")
                    end
                end
                local content = "re " .. msgs[last].content .. " |"
                if #seen > 0 then
                    content = content .. " " .. table.concat(seen, " ")
                end
                if req.stream then
                    ngx.header["Content-Type"] = "text/event-stream"
                    local half = math.floor(#content / 2)
                    local delay = tonumber(ngx.var.arg_delay) or 0
                    for i, p in ipairs({content:sub(1, half),
                                        content:sub(half + 1)}) do
                        if i == 2 and delay > 0 then
                            ngx.sleep(delay / 1000)
                        end
                        ngx.print("data: ", cjson.encode({
                            id = "chatcmpl-soak",
                            object = "chat.completion.chunk",
                            choices = {{ index = 0,
                                         delta = { content = p } }}
                        }), "\n\n")
                        ngx.flush(true)
                    end
                    ngx.print("data: [DONE]\n\n")
                    return
                end
                ngx.header["Content-Type"] = "application/json"
                ngx.print(cjson.encode({
                    id = "chatcmpl-soak", object = "chat.completion",
                    choices = {{ index = 0, finish_reason = "stop",
                        message = { role = "assistant",
                                    content = content } }}
                }))
            }
        }
    }
_EOC_

my @nodes = ('soak-redis-a', 'soak-redis-b');
for my $i (0, 1) {
    C1Bench::server($nodes[$i], "load_module $C1Bench::Module;\n", <<"_EOC_", 2);
    upstream mock_c1 {
        server 127.0.0.1:$mock_port;
        keepalive 16;
    }
    c1_history_redis name=threads server=unix:$redis->{sock}
                     max_messages=$o{'max-messages'} inactive=1h
                     timeout=${timeout}s;

    c1_api_key sk-soak;
    c1_model c1/soak/model;
    c1_system_prompt "You are a soak test.";

    server {
        listen 127.0.0.1:$node_port[$i] backlog=65535;
        keepalive_requests 1000000;
        c1_history_owner \$http_x_user;

        location = /chat { c1_history threads; c1_pass /_c1; }
        location = /stream {
            c1_history threads;
            c1_stream on;
            c1_pass /_c1;
        }
        location /api/threads/ { c1_threads threads; }

        location = /_c1 {
            internal;
            proxy_pass http://mock_c1/soak/c1?delay=$o{'stream-delay'};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
_EOC_
}

my %workers = map { $_ => [C1Bench::workers($_)] } @nodes;
my @all_workers = map { @{$workers{$_}} } @nodes;

sub measure {
    return { map { $_ => [C1Bench::rss_kb($_, 'RssAnon'),
                          C1Bench::fds($_, $mock_port)] } @all_workers };
}


# send(NODE, METHOD, PATH, OWNER, BODY): a socket with the request written
sub send_req {
    my ($node, $method, $path, $owner, $body) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$node_port[$node]",
                                  Timeout => 10) or return undef;
    my $req = "$method $path HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        . "X-User: $owner\r\n";
    $req .= defined $body
        ? "Content-Type: application/json\r\nContent-Length: "
          . length($body) . "\r\n\r\n$body"
        : "\r\n";
    syswrite($s, $req) == length($req) or return undef;
    return $s;
}

# the answer on a socket, read to its end (at most 15 s): status, body,
# error code, ended
sub recv_res {
    my ($s) = @_;
    return (0, '', 'no connection', 0) unless $s;
    my $sel = IO::Select->new($s);
    my $res = '';
    my $until = time + 15;
    while (time < $until) {
        last unless $sel->can_read($until - time);
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $res .= $buf;
    }
    close $s;
    my ($status, undef, $body, $ended) = C1Bench::parse_response($res);
    my ($code) = $body =~ /"code":"([a-z_]+)"/;
    return ($status || 0, $body, $code // '', $ended);
}

sub http {
    my $s = send_req(@_);
    return recv_res($s);
}

# one client: a loop of random actions until UNTIL, each one a line of
# JSON in its log (checked afterwards by the parent, who knows the window)
sub client {
    my ($id, $until, $log) = @_;
    my $owner = 'o' . ($id % $o{owners});
    my $k = int($id / $o{owners});
    srand($id * 7919 + int(time));
    open my $fh, '>>', $log or die "$log: $!\n";
    select((select($fh), $| = 1)[0]);
    my ($n, $turns, $node) = (0, 0, $id % 2);
    my $thread = "t-$k-$n-" . int(time * 1000) % 100000;
    my $seq = 0;
    my $ev = sub { print $fh $json->encode({ @_ }), "\n" };
    my $new_thread = sub {
        $n++;
        $thread = "t-$k-$n-" . int(time * 1000) % 100000;
        $turns = 0;
    };

    my $retry = 0;
    while (time < $until) {
        my $r = rand;
        # after a 503, a pause and the turn again, on the same thread (as
        # a user or a UI would retry): turns cross the restart window
        if ($retry) {
            sleep 0.1;
            $r = 0;
        }
        my $t0 = time;
        if ($turns >= $o{turns} && !$retry) {
            $new_thread->();
            next;
        }
        if ($r < 0.55) {
            # a turn, the nodes alternating
            my $tag = "$owner:$k:$n:" . ++$seq;
            my $path = rand() < 0.5 ? '/chat' : '/stream';
            $node = 1 - $node;
            my ($st, $body, $code, $ended) = http($node, 'POST', $path,
                $owner, $json->encode({ prompt => $tag,
                                        threadId => $thread }));
            $ev->(ev => 'turn', t0 => $t0, t1 => time, thread => $thread,
                  results => [[$tag, $st, $code, $ended, $body]],
                  node => $node, path => $path);
            $turns++ if $st == 200;    # the thread's length
            $retry = $st == 503;
        } elsif ($r < 0.63) {
            # racing turns: one on each node at once
            my @tags = map { "$owner:$k:$n:" . ++$seq } 0, 1;
            my @s = map {
                send_req($_, 'POST', $_ ? '/stream' : '/chat', $owner,
                         $json->encode({ prompt => $tags[$_],
                                         threadId => $thread }))
            } 0, 1;
            my @res = map {
                my ($st, $body, $code, $ended) = recv_res($s[$_]);
                [$tags[$_], $st, $code, $ended, $body]
            } 0, 1;
            $ev->(ev => 'turn', race => 1, t0 => $t0, t1 => time,
                  thread => $thread, results => \@res);
            $turns += grep { $_->[1] == 200 } @res;
        } elsif ($r < 0.73) {
            # the owner's list, on either node: only the owner's threads
            my ($st, $body, $code) = http(int rand 2, 'GET',
                '/api/threads/get?limit=' . (1 + int rand 200), $owner);
            my ($count, $foreign) = (0, 0);
            if ($st == 200) {
                my $l = eval { $json->decode($body) } || {};
                for my $t (@{$l->{threads} || []}) {
                    $count++;
                    $foreign++ unless $t->{title} =~ /^$owner:/;
                }
                $foreign = -1 unless ref $l->{threads};
            }
            $ev->(ev => 'list', t0 => $t0, t1 => time, status => $st,
                  code => $code, count => $count, foreign => $foreign);
        } elsif ($r < 0.85) {
            # the thread's messages, on the node the last turn did not use
            my ($st, $body, $code) = http(1 - $node, 'GET',
                "/api/threads/get/$thread", $owner);
            $ev->(ev => 'get', t0 => $t0, t1 => time, thread => $thread,
                  status => $st, code => $code, body => $body);
        } elsif ($r < 0.90) {
            my $title = "$owner:renamed:" . ++$seq;
            my ($st, $body, $code) = http(int rand 2, 'PATCH',
                "/api/threads/update/$thread", $owner,
                $json->encode({ title => $title }));
            my $ok = $st == 200 && $body =~ /"title":"\Q$title\E"/ ? 1 : 0;
            $ev->(ev => 'rename', t0 => $t0, t1 => time, thread => $thread,
                  status => $st, code => $code, ok => $ok);
        } elsif ($r < 0.94) {
            my ($st, $body, $code) = http(int rand 2, 'DELETE',
                "/api/threads/delete/$thread", $owner);
            $ev->(ev => 'delete', t0 => $t0, t1 => time, thread => $thread,
                  status => $st, code => $code);
            $new_thread->();
        } elsif ($r < 0.97) {
            # a thread made by the API, then its turns
            my ($st, $body, $code) = http(int rand 2, 'POST',
                '/api/threads/create', $owner,
                $json->encode({ messages => [{ role => 'user',
                                  content => "$owner:created:$seq" }] }));
            my $t = $st == 201 ? eval { $json->decode($body) } : undef;
            my $ok = $t && $t->{id} && $t->{title} =~ /^$owner:created:/;
            $ev->(ev => 'create', t0 => $t0, t1 => time, status => $st,
                  code => $code, ok => $ok ? 1 : 0,
                  thread => $ok ? $t->{id} : undef);
            if ($ok) {
                $n++;
                $thread = $t->{id};
                $turns = 0;
            }
        } else {
            $new_thread->();
        }
    }
    close $fh;
}

# run(SECONDS, RESTART): the clients, in parallel; with RESTART, Redis is
# killed half-way and started again after --down seconds. Returns the
# window [from, to] in which 503 is a documented answer (or none) and the
# clients' logs
sub run {
    my ($seconds, $restart, $round) = @_;
    my $start = time;
    my $until = $start + $seconds;
    remove_tree("$work/$round");
    make_path("$work/$round");
    my @kids;
    for my $id (1 .. $o{concurrency}) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            client($id, $until, "$work/$round/c$id.log");
            _exit(0);
        }
        push @kids, $pid;
    }
    my @window;
    if ($restart) {
        my $wait = $start + $seconds / 2 - time;
        sleep $wait if $wait > 0;
        my $pid = $redis->pid;
        $window[0] = time;
        $redis->crash($o{restart} eq 'kill' ? 'KILL' : 'TERM');
        my $gone = time;
        sleep $o{down};
        $redis->restart;
        my $up = time;
        # reconnecting: at most 1 s of backoff, then a timeout at most
        $window[1] = $up + 1 + $timeout + 0.5;
        $window[2] = $up;
        printf "  redis-server %d: %s at %.1f s, gone in %.2f s, down "
            . "%.1f s, up again as %d at %.1f s; 503 is documented from "
            . "%.1f s to %.1f s\n", $pid,
            $o{restart} eq 'kill' ? 'kill -9' : 'SIGTERM',
            $window[0] - $start, $gone - $window[0], $up - $gone,
            $redis->pid, $up - $start, $window[0] - $start,
            $window[1] - $start;
    }
    waitpid($_, 0) for @kids;
    sleep 3;    # idle connections, lock renewals settle
    return (\@window, [map { "$work/$round/c$_.log" } 1 .. $o{concurrency}]);
}

# the checks: every client's log, replayed against a model of its threads
my %n;             # counts by outcome
my @wrong;         # the first wrong ones, explained
my %model;         # "owner thread" => [[tag, certain], ...], or 'lost'
my %window_turn;   # "owner thread" => it had a turn in the restart window
my $lock_ms = 30000;    # the module's lock: PX 30 s
my $slowest = 0;

sub wrong {
    my ($what) = @_;
    $n{wrong}++;
    push @wrong, $what if @wrong < 15;
}

sub in_window {
    my ($e, $w) = @_;
    return @$w && $e->{t1} >= $w->[0] && $e->{t0} <= $w->[1];
}

# a history S (tags in order) against the model M: the certain ones all
# there, nothing that is not in M, M's order kept
sub consistent {
    my ($s, $m) = @_;
    my $i = 0;
    for my $tag (@$s) {
        $i++ while $i < @$m && $m->[$i][0] ne $tag && !$m->[$i][1];
        return "has $tag, which is not (or not here) in the model"
            if $i >= @$m || $m->[$i][0] ne $tag;
        $i++;
    }
    $i++ while $i < @$m && !$m->[$i][1];
    return "lacks the answered turn $m->[$i][0]" if $i < @$m;
    return '';
}

# an answer "re TAG | T1 =T1 T2 =T2": the history as tags, or an error
sub seen {
    my ($body, $tag, $owner) = @_;
    return (undef, 'not an answer') unless $body =~ /\Are (\S+) \|(.*)\z/s;
    return (undef, "answers $1, not $tag") unless $1 eq $tag;
    my @t = split ' ', $2;
    return (undef, 'an odd history: a user message without its answer')
        if @t % 2;
    my @s;
    while (@t) {
        my ($u, $a) = splice @t, 0, 2;
        return (undef, "$u is answered by $a: out of order or half-written")
            unless $a eq "=$u";
        return (undef, "another owner's message $u") unless $u =~ /^$owner:/;
        push @s, $u;
    }
    return (\@s, '');
}

# GET thread's messages: the history as tags, or an error
sub stored {
    my ($body, $owner) = @_;
    my $m = eval { $json->decode($body) };
    return (undef, 'not a JSON array') unless ref $m eq 'ARRAY';
    return (undef, 'an odd number of messages: half-written') if @$m % 2;
    my @s;
    for (my $i = 0; $i < @$m; $i += 2) {
        my ($u, $a) = @$m[$i, $i + 1];
        return (undef, 'roles out of order')
            unless $u->{role} eq 'user' && $a->{role} eq 'assistant';
        my ($ans) = $a->{content} =~ /\Are (\S+) \|/;
        return (undef, "$u->{content} is answered by "
                       . substr($a->{content}, 0, 40))
            unless defined $ans && $ans eq $u->{content};
        return (undef, "another owner's message $u->{content}")
            unless $u->{content} =~ /^$owner:/;
        push @s, $u->{content};
    }
    return (\@s, '');
}

sub check_event {
    my ($e, $owner, $w, $where) = @_;
    my $win = in_window($e, $w);
    my $dur = $e->{t1} - $e->{t0};
    $slowest = $dur if $dur > $slowest;
    wrong(sprintf "%s: %s took %.2f s", $where, $e->{ev}, $dur)
        if $dur > $o{'max-wait'} * ($e->{race} ? 2 : 1);
    my $key = defined $e->{thread} ? "$owner $e->{thread}" : undef;
    my $m = defined $key ? ($model{$key} //= []) : undef;
    # 409 thread_busy where no turn of ours runs: a lock left by a turn
    # of the restart window (its commit or end could not be sent). In the
    # window it is documented (the worker that ran that turn frees it on
    # its next connection, within its reconnect backoff); after it, the
    # lock was held till it expires: wrong, and said so
    my $stale = sub {
        my ($what, $quiet) = @_;
        return 0 unless $window_turn{$key} && @$w
            && $e->{t0} < $w->[1] + $lock_ms / 1000 + 1;
        if ($win) {
            $n{'409 of a turn the restart cut, in the window'}++;
            return 1;
        }
        $n{'409 stale lock'}++;
        wrong(sprintf "%s: %s: 409 thread_busy %.1f s after Redis was "
              . "back: a lock left by this thread's turn of the restart "
              . "window (its commit failed), held till it expires", $where,
              $what, $e->{t0} - $w->[2]);
        return 1;
    };
    my $doc503 = sub {
        my ($st, $code) = @_;
        return 0 unless $st == 503 && $code eq 'history_unavailable';
        $n{$win ? '503 in the window' : 'wrong'}++;
        wrong("$where: $e->{ev}: 503 outside the restart window") unless $win;
        return 1;
    };

    if ($e->{ev} eq 'turn') {
        my @ok = grep { $_->[1] == 200 } @{$e->{results}};
        my @busy = grep { $_->[1] == 409 } @{$e->{results}};
        for my $r (@{$e->{results}}) {
            my ($tag, $st, $code, $ended, $body) = @$r;
            next if $st == 200;
            next if $doc503->($st, $code);
            if ($st == 409 && $code eq 'thread_busy' && $e->{race}) {
                $n{'409 of a racing turn'}++;
                next;
            }
            next if $st == 409 && $code eq 'thread_busy'
                    && $stale->("turn $tag (not racing)");
            wrong("$where: turn $tag: status $st $code"
                  . ($e->{race} ? ' (racing)' : ' (not racing)')
                  . ($win ? ', in the restart window' : ''));
            # a turn cut short may or may not have been kept
            push @$m, [$tag, 0] if ref $m && !$st;
        }
        wrong("$where: both racing turns got 409: nobody held the lock")
            if $e->{race} && @busy == 2
               && !$stale->('both racing turns', 1);
        $window_turn{$key} = 1 if $win;
        return unless ref $m;
        # the shorter history first: the order they ran in
        my @runs;
        for my $r (@ok) {
            my ($tag, $st, $code, $ended, $body) = @$r;
            my ($s, $err) = seen($body, $tag, $owner);
            if (!$ended) { wrong("$where: turn $tag: 200 not ended"); next }
            if (!$s) { wrong("$where: turn $tag: $err"); next }
            push @runs, [$tag, $s];
        }
        for my $run (sort { @{$a->[1]} <=> @{$b->[1]} } @runs) {
            my ($tag, $s) = @$run;
            my $err = consistent($s, $m);
            if ($err) {
                wrong("$where: turn $tag saw [@$s]: $err"
                      . (@runs > 1 ? ' (racing: two turns at once?)' : ''));
                # go on from what the node read
            }
            $n{'right'}++;
            @$m = ((map { [$_, 1] } @$s), [$tag, $win ? 0 : 1]);
        }
    } elsif ($e->{ev} eq 'get') {
        return if $doc503->($e->{status}, $e->{code});
        return unless ref $m;
        if ($e->{status} == 404 && $e->{code} eq 'thread_not_found') {
            wrong("$where: get: 404, but the thread has answered turns")
                if grep { $_->[1] } @$m;
            $n{right}++;
            return;
        }
        if ($e->{status} != 200) {
            wrong("$where: get: status $e->{status} $e->{code}");
            return;
        }
        my ($s, $err) = stored($e->{body}, $owner);
        if (!$s) { wrong("$where: get $e->{thread}: $err"); return }
        $err = consistent($s, $m);
        wrong("$where: get $e->{thread} [@$s]: $err") if $err;
        my %in = map { $_ => 1 } @$s;
        @$m = grep { $in{$_->[0]} || !$_->[1] } @$m;
        $_->[1] ||= $in{$_->[0]} ? 1 : 0 for @$m;
        $n{right}++;
    } elsif ($e->{ev} eq 'list') {
        return if $doc503->($e->{status}, $e->{code});
        if ($e->{status} != 200 || $e->{foreign}) {
            wrong("$where: list: status $e->{status} $e->{code}, "
                  . "$e->{foreign} threads not the owner's");
            return;
        }
        $n{right}++;
    } elsif ($e->{ev} eq 'rename' || $e->{ev} eq 'delete') {
        if ($doc503->($e->{status}, $e->{code})) {
            $model{$key} = 'lost' if $e->{ev} eq 'delete';
            return;
        }
        my $empty = ref $m && !grep { $_->[1] } @$m;
        if ($e->{status} == 404 && $e->{code} eq 'thread_not_found') {
            # a thread of no answered turn (or only uncertain ones)
            wrong("$where: $e->{ev}: 404, but the thread has answered turns")
                if ref $m && !$empty;
        } elsif ($e->{status} == 409 && $e->{code} eq 'thread_busy'
                 && $stale->("$e->{ev} $e->{thread}")) {
            return;
        } elsif ($e->{ev} eq 'rename' ? $e->{status} != 200 || !$e->{ok}
                                      : $e->{status} != 204) {
            wrong("$where: $e->{ev} $e->{thread}: status $e->{status} "
                  . "$e->{code}");
            return;
        }
        $n{right}++;
        $model{$key} = [] if $e->{ev} eq 'delete' && $e->{status} == 204;
    } elsif ($e->{ev} eq 'create') {
        return if $doc503->($e->{status}, $e->{code});
        if (!$e->{ok}) {
            wrong("$where: create: status $e->{status} $e->{code}");
            return;
        }
        $n{right}++;
    }
}

sub check_logs {
    my ($window, $logs) = @_;
    for my $i (0 .. $#$logs) {
        my $id = $i + 1;
        my $owner = 'o' . ($id % $o{owners});
        open my $fh, '<', $logs->[$i] or die "$logs->[$i]: $!\n";
        while (my $l = <$fh>) {
            my $e = $json->decode($l);
            $n{requests} += $e->{results} ? @{$e->{results}} : 1;
            check_event($e, $owner, $window, "client $id");
        }
    }
}

# warm-up rounds of the same mix (no restart) until the workers' private
# memory stays where the previous round left it; at most 5
my $before = {};
for my $warm (1 .. 5) {
    check_logs(run(10, 0, "warm-$warm"));
    my $now = measure();
    my $steady = $warm > 1
        && !grep { ($before->{$_}[0] // -1) != $now->{$_}[0] } @all_workers;
    printf "  warm-up %d: private RSS %s KiB, fds %s%s\n", $warm,
        join(', ', map { $now->{$_}[0] } @all_workers),
        join(', ', map { $now->{$_}[1] } @all_workers),
        $steady ? ' (steady)' : '';
    $before = $now;
    last if $steady;
}

# the warm-up's turns out of the append-only file's way: a restart loads
# only what the measured round adds
$redis->cmd('BGREWRITEAOF');
for (1 .. 600) {
    last if $redis->info('aof_rewrite_in_progress') eq '0'
        && $redis->info('aof_rewrite_scheduled') eq '0';
    sleep 0.05;
}

my ($window, $logs) = run($o{seconds}, !$o{'no-restart'}, 'measured');
check_logs($window, $logs);
my $after = measure();

# the last look: every thread of every client, all its answered turns
my $final = 0;
for my $key (sort keys %model) {
    my ($owner, $thread) = split ' ', $key;
    my $m = $model{$key};
    next unless ref $m;
    my ($st, $body, $code) = http($final++ % 2, 'GET',
                                  "/api/threads/get/$thread", $owner);
    my $certain = grep { $_->[1] } @$m;
    if ($st == 404 && $code eq 'thread_not_found' && !$certain) {
        next;
    }
    if ($st != 200) {
        wrong("last look: $key: status $st $code");
        next;
    }
    my ($s, $err) = stored($body, $owner);
    $err ||= consistent($s, $m) if $s;
    wrong("last look: $key: $err") if $err;
}
# every owner's whole list: the owner's threads only, none twice
my $listed = 0;
for my $i (0 .. $o{owners} - 1) {
    my $owner = "o$i";
    my ($path, %seen) = ('/api/threads/get?limit=200');
    for my $page (1 .. 100) {
        my ($st, $body, $code) = http($page % 2, 'GET', $path, $owner);
        if ($st != 200) { wrong("last list of $owner: status $st $code"); last }
        my $l = $json->decode($body);
        for my $t (@{$l->{threads}}) {
            $listed++;
            wrong("last list of $owner: $t->{id} \"$t->{title}\" not its")
                unless $t->{title} =~ /^$owner:/;
            wrong("last list of $owner: $t->{id} twice")
                if $seen{$t->{id}}++;
        }
        last unless defined $l->{nextCursor};
        $path = "/api/threads/get?limit=200&cursor=$l->{nextCursor}";
    }
}

# the nodes: no crash, the same workers, the logs
my ($signals, $alerts, $crit_other, $crit, %errors) = (0, 0, 0, 0);
for my $node (@nodes) {
    my $log = C1Bench::error_log($node);
    $signals += () = $log =~ /signal/g;
    $alerts += () = $log =~ /\[(?:alert|emerg)\]/g;
    for my $l (grep { /\[crit\]/ } split /\n/, $log) {
        $crit++;
        $crit_other++ unless $l =~ /connect\(\) to unix:\Q$redis->{sock}\E failed/;
    }
    for my $l (grep { /\[error\]/ } split /\n/, $log) {
        my $what = $l =~ /did not keep this turn/ ? 'commit not kept'
            : $l =~ /c1: redis "threads" [^:]+: (.*)/ ? "redis: $1"
            : $l =~ /connect\(\) to unix:.* failed \((\d+: [^)]*)\)/
              ? "connect(): $1"
            : ($l =~ s/^\S+ \S+ \[error\] \d+#\d+: (\*\d+ )?//r) =~ s/,.*//r;
        $errors{$what}++;
    }
    my @now = sort { $a <=> $b } C1Bench::workers($node);
    my @then = sort { $a <=> $b } @{$workers{$node}};
    wrong("$node: workers @then at the start, @now at the end")
        unless "@now" eq "@then";
}
wrong("a worker exited on a signal ($signals lines with \"signal\")")
    if $signals;
wrong("$alerts [alert]/[emerg] lines") if $alerts;
wrong("$crit_other [crit] lines not a connect() to Redis") if $crit_other;

my $memory_bad = 0;
printf "Soak (Redis): %d s measured (and warm-up rounds), %d clients, %d "
    . "owners, two nodes, Redis %s in the middle; %d requests (warm-up "
    . "rounds too)\n", $o{seconds}, $o{concurrency}, $o{owners},
    $o{'no-restart'} ? 'not restarted' : "restarted ($o{restart})",
    $n{requests} // 0;
printf "  %-22s %d\n", $_, $n{$_} // 0
    for 'right', '503 in the window', '409 of a racing turn',
        '409 of a turn the restart cut, in the window', 'wrong';
printf "  of the wrong: 409 thread_busy where none of our turns ran, on "
    . "threads with a turn in the restart window: %d\n", $n{'409 stale lock'}
    if $n{'409 stale lock'};
printf "  slowest request %.2f s (allowed %.1f s); the last look: %d "
    . "threads read, %d listed\n", $slowest, $o{'max-wait'}, $final, $listed;
print "  wrong: $_\n" for @wrong;
printf "  error log: %s\n", join('; ', map { "$_ x$errors{$_}" }
                                         sort keys %errors) || 'no [error]';
printf "  [crit] lines: %d (connect() to Redis's socket: %d); lines with "
    . "\"signal\": %d; [alert]/[emerg]: %d\n", $crit, $crit - $crit_other,
    $signals, $alerts;
for my $pid (@all_workers) {
    my ($r0, $f0) = @{$before->{$pid} || [0, 0]};
    my ($r1, $f1) = @{$after->{$pid} || [0, 0]};
    printf "  worker %d: private RSS %d KiB -> %d KiB (%+d KiB), fds %d -> "
        . "%d (not counting keepalive connections to the mock C1)\n",
        $pid, $r0, $r1, $r1 - $r0, $f0, $f1;
    $memory_bad ||= !$r0 || !$r1 || $f1 > $f0 || $r1 - $r0 > 256;
}
my $bad = $n{wrong} || $memory_bad || !$n{right};
print $bad ? "SOAK FAILED\n" : "soak passed\n";
exit($bad ? 1 : 0);
