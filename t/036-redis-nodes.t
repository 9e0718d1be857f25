# Two nginx nodes (two prefixes, two ports: C1Nginx instances) sharing one
# Redis (issue 15): a conversation whose turns alternate between the
# nodes, each turn's C1 request carrying the whole history; the thread API
# of one node showing what the other did; racing turns on two nodes on one
# thread (exactly one 409); a node stopped and started again, and an
# appendonly Redis restarted, lose nothing; and one store of two Redis
# servers: threads spread over both, each thread's keys all on one, the
# list merged from both in order.

use strict;
use warnings;

use Test::More;
use Cwd qw(abs_path);
use IO::Socket::INET;
use JSON::PP ();
use Time::HiRes qw(time sleep);
use lib 't/lib';
use C1Nginx;
use C1Mock;
use C1Client;
use C1Redis;

my $shared = C1Redis->start(name => '036-shared', appendonly => 1,
                            extra => ['--appendfsync', 'always']);
my $ra = C1Redis->start(name => '036-a');
my $rb = C1Redis->start(name => '036-b', port => C1Redis::port(1));
my ($S, $A, $B) = map { $_->address } $shared, $ra, $rb;

my $http = <<"_EOC_" . $C1Mock::MockLocations . "}\n";
    c1_history_redis name=threads server=$S max_messages=100 timeout=500ms;
    c1_history_redis name=sharded server=$A server=$B timeout=500ms;

    server {
        listen 127.0.0.1:\$C1_TEST_PORT;

        c1_model m;
        c1_system_prompt "sys";
        c1_history_owner alice;

        location = /chat { c1_history threads; c1_pass /_c1; }
        location = /slow { c1_history threads; c1_stream on; c1_pass /_c1_slow; }
        location = /sharded { c1_history sharded; c1_pass /_c1; }
        location /api/threads/ { c1_threads threads; }
        location /api/sharded/ { c1_threads sharded; }

        location = /_c1 {
            internal;
            proxy_pass http://127.0.0.1:\$C1_TEST_PORT/mock/echo-messages;
        }
        location = /_c1_slow {
            internal;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:\$C1_TEST_PORT/mock/sse?delay=50;
        }
_EOC_

my $n1 = C1Nginx->new(port => $C1Nginx::Port, root => $C1Nginx::Root);
my $n2 = C1Nginx->new(port => $C1Nginx::Port + 1,
                      root => abs_path('t') . '/servroot-client2');
$n1->start($http, workers => 1);
$n2->start($http, workers => 1);
my @nodes = ($n1, $n2);

sub req {
    my ($node, $method, $path, $body) = @_;
    my $c = C1Client->new(port => $node->port, timeout => 10);
    $c->send(defined $body
        ? C1Client::post($path, 'application/json', $body, close => 1)
              =~ s/^POST/$method/r
        : C1Client::get($path, method => $method, close => 1));
    my $r = $c->response;
    $c->close;
    return $r;
}

my $json = JSON::PP->new->canonical;

# --- a conversation alternating between the nodes --------------------------

my @answers;
my $all = 1;
for my $i (1 .. 6) {
    my $node = $nodes[($i - 1) % 2];
    my $r = req($node, 'POST', '/chat', qq({"prompt":"turn $i","threadId":"conv"}));
    my $expect = join ' | ', 'system:sys',
        (map { ("user:turn $_", "assistant:$answers[$_ - 1]") } 1 .. $i - 1),
        "user:turn $i";
    push @answers, $r->{body};
    is($r->{status}, 200, "turn $i on node " . (($i - 1) % 2 + 1));
    is($r->{body}, $expect, "turn $i: C1 got the whole history, both nodes' turns in order");
}

my $msgs = req($n1, 'GET', '/api/threads/get/conv');
is($msgs->{status}, 200, 'node 1 has the thread');
my $list = eval { $json->decode($msgs->{body}) } || [];
is(scalar @$list, 12, 'node 1: twelve messages, both nodes\' turns');
is(join(',', map { "$_->{role}:" . substr($_->{content}, 0, 12) } @$list),
   join(',', map { ("user:turn $_", 'assistant:' . substr($answers[$_ - 1], 0, 12)) } 1 .. 6),
   'node 1: in order');
is(req($n2, 'GET', '/chat?threadId=conv')->{body}, $msgs->{body},
   'node 2 loads the same thread');

# --- the thread API on one node shows what the other did -------------------

my $l2 = $json->decode(req($n2, 'GET', '/api/threads/get')->{body});
is(join(',', map { "$_->{id}=$_->{title}" } @{ $l2->{threads} }), 'conv=turn 1',
   'node 2 lists the thread, its title from its first turn');
my $created = req($n2, 'POST', '/api/threads/create', '{"title":"made on 2"}');
is($created->{status}, 201, 'node 2 creates a thread');
my $cid = eval { $json->decode($created->{body})->{id} } // '';
like($cid, qr/\A$C1Mock::Uuid\z/, 'its id');
my $l1 = $json->decode(req($n1, 'GET', '/api/threads/get')->{body});
is(join(',', map { "$_->{id}=$_->{title}" } @{ $l1->{threads} }),
   "$cid=made on 2,conv=turn 1", 'node 1 lists it, newest first');
is(req($n1, 'PATCH', "/api/threads/update/$cid", '{"title":"renamed on 1"}')->{status}, 200,
   'node 1 renames it');
$l2 = $json->decode(req($n2, 'GET', '/api/threads/get')->{body});
is($l2->{threads}[0]{title}, 'renamed on 1', 'node 2 sees the new title');
is(req($n2, 'PUT', '/api/threads/message/conv', qq({"id":"$list->[1]{id}","content":"edited on 2"}))->{status},
   200, 'node 2 replaces a message');
like(req($n1, 'GET', '/api/threads/get/conv')->{body}, qr/"content":"edited on 2"/,
     'node 1 sees it');
is(req($n2, 'DELETE', "/api/threads/delete/$cid")->{status}, 204, 'node 2 deletes the created thread');
is(req($n1, 'GET', "/api/threads/get/$cid")->{status}, 404, 'node 1: it is gone');

# --- racing turns on two nodes on one thread: exactly one 409 --------------

for my $round (1 .. 3) {
    my @c;
    for my $node (@nodes) {
        my $c = C1Client->new(port => $node->port, timeout => 10);
        push @c, $c;
    }
    my $body = qq({"prompt":"race $round","threadId":"race$round"});
    $_->send(C1Client::post('/slow', 'application/json', $body, close => 1)) for @c;
    my @r = map { $_->response } @c;
    $_->close for @c;
    is(join(',', sort map { $_->{status} // 'none' } @r), '200,409',
       "race $round: one turn runs, the other gets 409");
    my ($busy) = grep { ($_->{status} // 0) == 409 } @r;
    like($busy->{body} // '', qr/"code":"thread_busy"/, "race $round: thread_busy");
    my $m = eval { $json->decode(req($n1, 'GET', "/api/threads/get/race$round")->{body}) } || [];
    is(join(',', map { $_->{role} } @$m), 'user,assistant', "race $round: one turn kept");
    is(req($nodes[$round % 2], 'POST', '/chat', qq({"prompt":"after","threadId":"race$round"}))->{status},
       200, "race $round: the thread is free again on either node");
}

# a slow turn on node 1, then node 2 tries: 409 while it runs
{
    my $c = C1Client->new(port => $n1->port, timeout => 10);
    $c->send(C1Client::post('/slow', 'application/json',
                            '{"prompt":"slow","threadId":"conv"}', close => 1));
    sleep 0.15;
    my $r2 = req($n2, 'POST', '/chat', '{"prompt":"meanwhile","threadId":"conv"}');
    is($r2->{status}, 409, 'a turn on node 2 while node 1 runs one: 409');
    is(req($n2, 'DELETE', '/api/threads/delete/conv')->{status}, 409,
       'a delete on node 2 while node 1 runs a turn: 409');
    my $r1 = $c->response;
    is($r1->{status}, 200, 'node 1\'s turn completes');
    $c->close;
}
my $before = req($n1, 'GET', '/api/threads/get/conv')->{body};
like($before, qr/"content":"slow"/, 'node 1\'s slow turn is kept');

# --- a node stopped and started again; Redis (appendonly) restarted ---------

$n1->stop;
$n1->start($http, workers => 1);
is(req($n1, 'GET', '/api/threads/get/conv')->{body}, $before,
   'node 1 stopped and started again: the thread is still there');
$shared->restart;
my $after;
for (1 .. 40) {
    my $r = req($n2, 'GET', '/api/threads/get/conv');
    if (($r->{status} // 0) == 200) {
        $after = $r->{body};
        last;
    }
    sleep 0.05;
}
is($after, $before, 'Redis (appendonly) restarted: every committed thread is still there');

# --- two Redis servers in one store ----------------------------------------

for my $i (1 .. 20) {
    my $r = req($nodes[$i % 2], 'POST', '/sharded', qq({"prompt":"s$i","threadId":"s$i"}));
    is($r->{status}, 200, "sharded turn $i") if $i == 1 || $i == 20;
    sleep 0.003;
}
my ($na, $nb) = ($ra->dbsize, $rb->dbsize);
cmp_ok($na, '>', 0, "two servers: the first has keys ($na)");
cmp_ok($nb, '>', 0, "two servers: the second has keys ($nb)");
my @where;
my $whole = 1;
for my $i (1 .. 20) {
    my @ka = $ra->keys("c1:t:5:alice:s$i:*");
    my @kb = $rb->keys("c1:t:5:alice:s$i:*");
    my $on = @ka && !@kb ? 'a' : @kb && !@ka ? 'b' : 'both or none';
    push @where, $on;
    $whole &&= $on ne 'both or none'
        && join(',', @ka, @kb) eq "c1:t:5:alice:s$i:l,c1:t:5:alice:s$i:m";
}
ok($whole, 'two servers: each thread\'s keys all on one server')
    or diag join ' ', @where;
ok((grep { $_ eq 'a' } @where) && (grep { $_ eq 'b' } @where),
   'two servers: threads on both') or diag join ' ', @where;
is(req($n1, 'GET', '/sharded?threadId=s7')->{status}, 200,
   'two servers: node 1 finds a thread node 2 made');

my @pages;
my $cursor;
for (1 .. 10) {
    my $r = req($n2, 'GET', '/api/sharded/get?limit=7' . (defined $cursor ? "&cursor=$cursor" : ''));
    my $j = eval { $json->decode($r->{body}) } or last;
    push @pages, join ',', map { $_->{id} } @{ $j->{threads} };
    $cursor = $j->{nextCursor};
    last unless defined $cursor;
}
is(join(' | ', @pages),
   join(' | ', join(',', map { "s$_" } reverse 14 .. 20),
               join(',', map { "s$_" } reverse 7 .. 13),
               join(',', map { "s$_" } reverse 1 .. 6)),
   'two servers: the list merges both, newest first, in pages');
my $one = $json->decode(req($n1, 'GET', '/api/sharded/get?limit=200')->{body});
is(join(',', map { $_->{id} } @{ $one->{threads} }), join(',', map { "s$_" } reverse 1 .. 20),
   'two servers: one page of all, in order');
is(req($n1, 'DELETE', '/api/sharded/delete/s7')->{status}, 204, 'two servers: a delete');
is(scalar($ra->keys('c1:t:5:alice:s7:*')) + scalar($rb->keys('c1:t:5:alice:s7:*')), 0,
   'two servers: the deleted thread has no key left on either');

for my $node (@nodes) {
    unlike($node->error_log, qr/\[alert\]|\[emerg\]|exited on signal/, 'no crash on ' . $node->root);
}

$n1->stop;
$n2->stop;
done_testing();
