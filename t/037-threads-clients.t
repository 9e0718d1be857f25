# The thread API (issue 14) driven by a real client on a real nginx with a
# master and two workers, for what needs an id made by create, requests in
# parallel, or a reload: created threads through every route and turn
# (title kept, message not stored, updatedAt moving, a failed turn leaving
# the thread); rename/replace/delete while a turn runs: 409, and for
# another owner 404 and a turn of its own; a foreign thread answers byte
# for byte as an unknown one; 120 threads paged 50/50/20 while new ones
# come; a reload keeps every thread and title.
#
# make test runs it again against Redis: C1_STORE=redis (t/lib/C1Store.pm).

use strict;
use warnings;

use Test::More;
use JSON::PP ();
use Time::HiRes qw(time sleep);
use lib 't/lib';
use C1Nginx;
use C1Mock;
use C1Client;

my $port = C1Nginx::start(<<'_EOC_' . $C1Mock::MockLocations . "}\n", workers => 2);
    c1_history_zone zone=threads:1m max_messages=20 inactive=1h;

    server {
        listen 127.0.0.1:$C1_TEST_PORT reuseport;

        c1_model m;
        c1_history_owner $http_x_user;

        location = /chat { c1_history threads; c1_pass /_c1; }
        location = /slow { c1_history threads; c1_stream on; c1_pass /_c1_slow; }
        location = /fail { c1_history threads; c1_pass /_c1_fail; }
        location /api/threads/ { c1_threads threads; }

        location = /_c1 {
            internal;
            proxy_pass http://127.0.0.1:$C1_TEST_PORT/mock/echo-messages;
        }

        # 9 events 200 ms apart: a turn of some 1.8 s
        location = /_c1_slow {
            internal;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:$C1_TEST_PORT/mock/sse?delay=200;
        }

        location = /_c1_fail {
            internal;
            proxy_pass http://127.0.0.1:$C1_TEST_PORT/c1-500;
        }

        location = /c1-500 {
            default_type application/json;
            return 500 '{"error":{"message":"down"}}';
        }
_EOC_

my $json = JSON::PP->new->utf8->canonical;
my $uuid = qr/\A[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\z/;
my $time = qr/\A20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\z/;

sub raw {
    my ($method, $path, $user, $body) = @_;
    return "$method $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        . (defined $user ? "X-User: $user\r\n" : '')
        . (defined $body ? "Content-Type: application/json\r\n"
                           . "Content-Length: " . length($body) . "\r\n" : '')
        . "\r\n" . ($body // '');
}

# one request on a connection of its own: { status, headers, body, json }
sub call {
    my ($method, $path, $user, $body) = @_;
    my $c = C1Client->new(port => $port, timeout => 5);
    $c->send(raw($method, $path, $user, $body));
    my $r = $c->response;
    $c->close;
    $r->{status} //= 0;
    $r->{json} = eval { $json->decode($r->{body}) }
        if ($r->{headers}{'content-type'} // '') =~ m{^application/json};
    return $r;
}

sub turn {
    my ($user, $thread, $p, $content, $path) = @_;
    return call('POST', $path || '/chat', $user, $json->encode({
        prompt => { id => $p, role => 'user', content => $content },
        threadId => $thread, responseId => "r-$p" }));
}

sub code { my $r = shift; return $r->{json} && $r->{json}{error}
               ? $r->{json}{error}{code} : '' }

# every page of a user's list; the callback runs between page fetches
sub all_pages {
    my ($user, $limit, $between) = @_;
    my (@pages, $cursor);
    for (1 .. 20) {
        my $r = call('GET', "/api/threads/get?limit=$limit"
                     . (defined $cursor ? "&cursor=$cursor" : ''), $user);
        return (\@pages, "page " . (@pages + 1) . ": $r->{status} $r->{body}")
            if $r->{status} != 200 || !$r->{json};
        push @pages, $r->{json};
        $cursor = $r->{json}{nextCursor};
        return (\@pages) unless defined $cursor;
        return (\@pages, "bad cursor $cursor") if $cursor !~ /\A[0-9A-Za-z_-]+\z/;
        $between->() if $between;
    }
    return (\@pages, 'more than 20 pages');
}

sub list_of {
    my $user = shift;
    my ($pages, $err) = all_pages($user, 200);
    return { error => $err } if $err;
    return { map { $_->{id} => $_ } map { @{ $_->{threads} } } @$pages };
}

# ---- threads made by create ----------------------------------------------

my $r = call('POST', '/api/threads/create', 'alice', '{"title":"Given"}');
is($r->{status}, 201, 'create: 201');
my $given = $r->{json} || {};
like($given->{id} // '', $uuid, 'create: the id is a UUID v4');
is($given->{title}, 'Given', 'create: the title given');
like($given->{createdAt} // '', $time, 'create: createdAt');
like($given->{updatedAt} // '', $time, 'create: updatedAt');
is_deeply([sort keys %$given], [qw(createdAt id title updatedAt)],
          'create: exactly id, title, createdAt, updatedAt');

$r = call('POST', '/api/threads/create', 'alice', $json->encode({
    messages => [{ id => 'm1', role => 'user',
                   content => '<content thesys="true">From &amp; message</content>' }] }));
my $from = $r->{json} || {};
is($from->{title}, 'From & message', 'create: the title from the first message');
isnt($from->{id}, $given->{id}, 'create: every thread its own id');
$r = call('GET', "/api/threads/get/$from->{id}", 'alice');
is($r->{status}, 200, 'create: get/ID of a created thread');
is($r->{body}, '[]', 'create: the message only gave the title, it is not stored');

my $list = list_of('alice');
ok($list->{$given->{id}} && $list->{$from->{id}}, 'created threads are listed at once');
is_deeply($list->{$given->{id}}, $given, 'the list has the thread as create answered it');

sleep 0.01;
$r = call('PATCH', "/api/threads/update/$given->{id}", 'alice', '{"title":"Renamed"}');
is($r->{status}, 200, 'update: 200');
is($r->{json}{title}, 'Renamed', 'update: the new title');
is($r->{json}{createdAt}, $given->{createdAt}, 'update: createdAt stays');
ok(($r->{json}{updatedAt} // '') gt $given->{updatedAt}, 'update: updatedAt moves');
my $renamed = $r->{json};

sleep 0.01;
$r = turn('alice', $given->{id}, 'p1', 'hello');
is($r->{status}, 200, 'a turn on a created thread');
is($r->{body}, 'user:hello', 'a turn on a created thread: no history before it');
$r = call('GET', "/api/threads/get/$given->{id}", 'alice');
is($r->{body}, '[{"id":"p1","role":"user","content":"hello"},'
    . '{"id":"r-p1","role":"assistant","content":"user:hello"}]',
   'a turn on a created thread is stored');
$list = list_of('alice');
is($list->{$given->{id}}{title}, 'Renamed', 'a created thread keeps its title after a turn');
ok(($list->{$given->{id}}{updatedAt} // '') gt $renamed->{updatedAt},
   'a committed turn moves updatedAt');
my $after_turn = $list->{$given->{id}};

turn('alice', $from->{id}, 'p1', 'another title?');
is(list_of('alice')->{$from->{id}}{title}, 'From & message',
   'a thread titled from create\'s message keeps that title after a turn');

sleep 0.01;
$r = call('PUT', "/api/threads/message/$given->{id}", 'alice',
          '{"id":"r-p1","role":"assistant","content":"replaced"}');
is($r->{status}, 200, 'message: 200');
is($r->{body}, '{"id":"r-p1","role":"assistant","content":"replaced"}',
   'message: the message with its new content');
my $t = list_of('alice')->{$given->{id}};
ok(($t->{updatedAt} // '') gt $after_turn->{updatedAt}, 'message: updatedAt moves');
is($t->{createdAt}, $given->{createdAt}, 'message: createdAt stays');

$r = call('PUT', "/api/threads/message/$from->{id}", 'alice', '{"id":"m1","content":"x"}');
is("$r->{status} " . code($r), '404 message_not_found',
   'message: create\'s message was not stored, so it cannot be replaced');

# a failed first turn on a created thread leaves it
$r = call('POST', '/api/threads/create', 'alice', '{"title":"Fails"}');
my $fails = $r->{json} || {};
$r = turn('alice', $fails->{id}, 'p1', 'lost', '/fail');
is($r->{status}, 500, 'a failed turn on a created thread: 500');
$r = call('GET', "/api/threads/get/$fails->{id}", 'alice');
is($r->{status}, 200, 'a failed turn on a created thread: the thread stays');
is($r->{body}, '[]', 'a failed turn on a created thread: no messages');
is(list_of('alice')->{$fails->{id}}{title}, 'Fails',
   'a failed turn on a created thread: still listed, with its title');

$r = call('DELETE', "/api/threads/delete/$fails->{id}", 'alice');
is($r->{status}, 204, 'delete: 204');
is($r->{body}, '', 'delete: no body');
is(call('GET', "/api/threads/get/$fails->{id}", 'alice')->{status}, 404,
   'delete: then 404');
ok(!list_of('alice')->{$fails->{id}}, 'delete: gone from the list');

# ---- a foreign thread answers byte for byte as an unknown one -------------

my $unknown = 'b0b0b0b0-0000-4000-8000-000000000000';
for my $case (['GET', 'get/%s'], ['PATCH', 'update/%s', '{"title":"x"}'],
              ['DELETE', 'delete/%s'],
              ['PUT', 'message/%s', '{"id":"r-p1","content":"x"}']) {
    my ($m, $route, $body) = @$case;
    my $foreign = call($m, '/api/threads/' . sprintf($route, $given->{id}), 'bob', $body);
    my $none = call($m, '/api/threads/' . sprintf($route, $unknown), 'bob', $body);
    is("$foreign->{status} $foreign->{body}", "$none->{status} $none->{body}",
       "$m $route of another owner's thread: exactly as an unknown thread");
    is($foreign->{status}, 404, "$m $route of another owner's thread: 404");
}
my $foreign = call('GET', "/chat?threadId=$given->{id}", 'bob');
my $none = call('GET', "/chat?threadId=$unknown", 'bob');
is("$foreign->{status} $foreign->{body}", "$none->{status} $none->{body}",
   'GET /chat?threadId= of another owner\'s thread: exactly as an unknown thread');
is(call('GET', "/api/threads/get/$given->{id}", 'alice')->{body},
   '[{"id":"p1","role":"user","content":"hello"},'
   . '{"id":"r-p1","role":"assistant","content":"replaced"}]',
   'another owner changed nothing');

# ---- while a turn runs ----------------------------------------------------

turn('alice', 'race', 'p1', 'first');
my $before = call('GET', '/api/threads/get/race', 'alice')->{body};
my $slow = C1Client->new(port => $port, timeout => 10);
my $start = time;
$slow->send(raw('POST', '/slow', 'alice', $json->encode({
    prompt => { id => 'p2', role => 'user', content => 'slow' },
    threadId => 'race', responseId => 'r-p2' })));
my $fresh = C1Client->new(port => $port, timeout => 10);
$fresh->send(raw('POST', '/slow', 'alice', $json->encode({
    prompt => { id => 'p1', role => 'user', content => 'fresh' },
    threadId => 'fresh', responseId => 'r-p1' })));
my $cslow = C1Client->new(port => $port, timeout => 10);
$cslow->send(raw('POST', '/slow', 'alice', $json->encode({
    prompt => { id => 'p2', role => 'user', content => 'on created' },
    threadId => $from->{id}, responseId => 'r-p2' })));
sleep 0.4;

my @busy = (
    [call('PATCH', '/api/threads/update/race', 'alice', '{"title":"x"}'), 'rename'],
    [call('PUT', '/api/threads/message/race', 'alice', '{"id":"p1","content":"x"}'),
     'replace a message'],
    [call('DELETE', '/api/threads/delete/race', 'alice'), 'delete'],
    [turn('alice', 'race', 'p3', 'racing'), 'a turn'],
    [call('DELETE', '/chat?threadId=race', 'alice'), 'DELETE on the chat location'],
    [call('PATCH', "/api/threads/update/$from->{id}", 'alice', '{"title":"x"}'),
     'rename of a created thread'],
    [call('POST', '/chat', 'alice', '{"threadId":"race","stream":false,'
          . '"messages":[{"id":"o1","role":"user","content":"openui"}]}'),
     'an OpenUI turn'],
);
for (@busy) {
    my ($res, $what) = @$_;
    is("$res->{status} " . code($res), '409 thread_busy', "while a turn runs: $what: 409 thread_busy");
}
$r = call('GET', '/api/threads/get/race', 'alice');
is($r->{body}, $before, 'while a turn runs: get/ID shows the thread as it was');
$list = list_of('alice');
ok($list->{race}, 'while a turn runs: the thread is listed');
ok(!$list->{fresh}, 'a turn in progress on a brand-new thread: not listed');
ok($list->{$from->{id}}, 'a turn in progress on a created thread: listed');

$r = call('PATCH', '/api/threads/update/race', 'bob', '{"title":"x"}');
is("$r->{status} " . code($r), '404 thread_not_found',
   'while a turn runs: another owner renaming it: 404, not 409');
$r = call('DELETE', '/api/threads/delete/race', 'bob');
is("$r->{status} " . code($r), '404 thread_not_found',
   'while a turn runs: another owner deleting it: 404, not 409');
$r = turn('bob', 'race', 'b1', 'mine');
is($r->{status}, 200, 'while a turn runs: another owner\'s turn with its id: 200');
is($r->{body}, 'user:mine', '... a new thread of its own, no history');
ok(time - $start < 1.5, 'all that while the turn was still running')
    or diag(sprintf 'after %.2f s', time - $start);

for ([$slow, 'race'], [$fresh, 'fresh'], [$cslow, 'created']) {
    my ($c, $what) = @$_;
    my $res = $c->response;
    is($res->{status}, 200, "the slow turn on $what: 200");
    ok($res->{complete}, "the slow turn on $what: complete");
    $c->close;
}
$r = call('GET', '/api/threads/get/race', 'alice');
like($r->{body}, qr/\A\[\{"id":"p1","role":"user","content":"first"\},.*\{"id":"p2","role":"user","content":"slow"\},\{"id":"r-p2","role":"assistant","content":"<content thesys=/,
     'the slow turn is committed, only it');
$list = list_of('alice');
is($list->{fresh}{title}, 'fresh', 'the brand-new thread is listed once its turn committed');
is($list->{$from->{id}}{title}, 'From & message', 'the created thread keeps its title');
is(list_of('bob')->{race}{title}, 'mine', 'the other owner has a thread "race" of its own');
$r = call('PATCH', '/api/threads/update/race', 'alice', '{"title":"Free"}');
is($r->{status}, 200, 'after the turn: rename works');

# ---- pagination -------------------------------------------------------------

my %made;
for my $i (1 .. 120) {
    my $res = call('POST', '/api/threads/create', 'carol', qq({"title":"n$i"}));
    $made{$res->{json}{id}} = 1 if $res->{status} == 201 && $res->{json};
}
is(scalar(keys %made), 120, '120 threads created');

my %late;
my ($pages, $err) = all_pages('carol', 50, sub {
    for (1 .. 2) {
        my $res = call('POST', '/api/threads/create', 'carol', '{"title":"late"}');
        $late{$res->{json}{id}} = 1 if $res->{json};
    }
});
ok(!$err, 'paging: every page answered') or diag($err);
is_deeply([map { scalar @{ $_->{threads} } } @$pages], [50, 50, 20],
          'paging: pages of 50, 50 and 20');
is_deeply([map { defined $_->{nextCursor} ? 1 : 0 } @$pages], [1, 1, 0],
          'paging: nextCursor on all pages but the last');
is(scalar(keys %late), 4, 'paging: four threads created between the page fetches');
my @seen = map { @{ $_->{threads} } } @$pages;
my @first = @{ $pages->[0]{threads} // [] };
my @later = map { @{ $_->{threads} } } @$pages[1 .. $#$pages];
my %count;
$count{$_->{id}}++ for @seen;
is(scalar(grep { $count{$_} > 1 } keys %count), 0, 'paging: no thread twice');
is(scalar(grep { !$count{$_} } keys %made), 0, 'paging: no thread missing');
is(scalar(grep { $late{$_->{id}} } @later), 0,
   'paging: threads created meanwhile are not in later pages');
is(scalar(grep { !$made{$_->{id}} } @seen), 0, 'paging: nothing but those threads');
my $sorted = 1;
for my $i (1 .. $#seen) {
    $sorted = 0 if $seen[$i]{updatedAt} gt $seen[$i - 1]{updatedAt};
}
ok($sorted, 'paging: newest updatedAt first across the pages');

$r = call('GET', '/api/threads/get', 'carol');
is(scalar @{ $r->{json}{threads} // [] }, 50, 'the default limit is 50');
ok(defined $r->{json}{nextCursor}, 'the default page has a nextCursor');

# another owner with carol's cursor never sees carol's threads
my $cursor = $pages->[0]{nextCursor} // 'x';
$r = call('GET', "/api/threads/get?limit=200&cursor=$cursor", 'bob');
ok(!grep({ $made{$_->{id}} || $late{$_->{id}} } @{ $r->{json}{threads} // [] }),
   'another owner\'s cursor shows nothing of carol\'s')
    or diag("$r->{status} $r->{body}");

# a turn on the oldest thread moves it to the top
my $oldest = $seen[-1]{id};
sleep 0.01;
$r = turn('carol', $oldest, 'p1', 'wake up');
is($r->{status}, 200, 'a turn on the oldest thread');
$r = call('GET', '/api/threads/get?limit=1', 'carol');
is($r->{json}{threads}[0]{id}, $oldest, 'the turn moved it to the top');
is($r->{json}{threads}[0]{title}, $seen[-1]{title}, '... with its title');

# ---- a reload keeps every thread and title ----------------------------------

my %snapshot = map { $_ => list_of($_) } qw(alice bob carol);
my %messages = map { $_ => call('GET', "/api/threads/get/$_", 'alice')->{body} }
               keys %{ $snapshot{alice} };
is(scalar(keys %{ $snapshot{carol} }), 124, 'before the reload: carol has 124 threads');
C1Nginx::reload();
for my $user (qw(alice bob carol)) {
    is_deeply(list_of($user), $snapshot{$user},
              "after a reload: $user\'s threads, titles and times are all there");
}
my $same = grep { call('GET', "/api/threads/get/$_", 'alice')->{body} eq $messages{$_} }
           keys %messages;
is($same, scalar(keys %messages), 'after a reload: every thread\'s messages are the same');
$r = turn('alice', 'race', 'p9', 'after reload');
like($r->{body}, qr/\Auser:first \| assistant:user:first \| user:slow \| assistant:<content thesys=.* \| user:after reload\z/s,
     'after a reload: a turn gets the history');

unlike(C1Nginx::error_log(), qr/\[(?:alert|crit|emerg)\]|exited on signal/,
       'no alert, no crash in the error log');

done_testing();
