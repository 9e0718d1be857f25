# OpenUI Chat's headless store (createChatStore of
# @openuidev/react-headless, with its default threadApiUrl client and
# openAIAdapter) driven from Node (t/js/openui-threads.mjs) against a real
# nginx with two workers: the thread API (c1_threads) and OpenUI turns on
# the chat location, answered by the demo's mock C1 (examples/mock).
# Then conf.example's production pattern for the owner: auth_request.
#
# make test runs it again against Redis: C1_STORE=redis (t/lib/C1Store.pm).

use strict;
use warnings;

use Cwd qw(abs_path);
use HTTP::Tiny;
use JSON::PP;
use Test::More;
use lib 't/lib';
use C1Nginx;

BAIL_OUT('t/js/node_modules/@openuidev/react-headless is missing: run make test')
    unless -d 't/js/node_modules/@openuidev/react-headless';

my $top = abs_path('.');

my $port = C1Nginx::start(<<"_EOC_", workers => 2);
    c1_history_zone zone=threads:4m max_messages=40;

    server {
        listen 127.0.0.1:\$C1_TEST_PORT;

        c1_api_key sk-test-0033;
        c1_model c1/test/v-1;
        c1_system_prompt "Answer with UI.";
        c1_history_owner \$cookie_c1_user;

        location = /api/chat {
            c1_stream on;
            c1_history threads;
            c1_pass /_c1;
        }

        location /api/threads/ {
            c1_threads threads;
        }

        # the owner from a login (conf.example, commented)
        location /authed/api/threads/ {
            auth_request /_auth;
            auth_request_set \$c1_user \$upstream_http_x_user;
            c1_history_owner \$c1_user;
            c1_threads threads;
        }

        location = /_auth {
            internal;
            proxy_pass http://127.0.0.1:\$C1_TEST_PORT/_whoami;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }

        location = /_whoami {
            if (\$http_authorization = "Bearer tok-alice") {
                add_header X-User alice;
                return 204;
            }
            if (\$http_authorization = "Bearer tok-bob") {
                add_header X-User bob;
                return 204;
            }
            return 401;
        }

        location = /_c1 {
            internal;
            proxy_http_version 1.1;
            proxy_buffering off;
            proxy_pass http://127.0.0.1:\$C1_TEST_PORT/_mock_c1;
        }

        location = /_mock_c1 {
            set \$c1_mock_trees $top/examples/mock/trees;
            set \$c1_mock_speed 20;
            lua_http10_buffering off;
            content_by_lua_file $top/examples/mock/c1-mock.lua;
        }
    }
_EOC_

my $out = `node t/js/openui-threads.mjs http://127.0.0.1:$port/ 2>&1`;
my ($line) = $out =~ /^(\{.*\})\s*\z/ms;
my $res = eval { JSON::PP->new->decode($line // '') } || {};

ok($res->{ok}, 'every step of the OpenUI store passed') or diag($out);
note($out);
my %step = map { %$_ } grep { ref } @{ $res->{steps} || [] };

my $turns = $step{'create and two turns'} || {};
like($turns->{thread} // '', qr/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-/,
     'createThread got a UUID v4 from the module');
cmp_ok($turns->{turn1}{pieces} // 0, '>', 5,
       'the first answer reached the store in pieces');
is_deeply($step{'stored as streamed'},
          [qw(user assistant user assistant)],
          'the module stored both turns');
is($step{'selectThread after reload'}, 4,
   'a new store (a reload) loads the thread');
is($step{renamed}, 'Planets (OpenUI)', 'updateThread renamed it');
ok($step{deleted}, 'deleteThread deleted the second thread');
is_deeply($step{pages}, [50, 6], 'the list in two pages through nextCursor');
is($step{'second owner'}{get}, 404, 'another owner gets 404');

# behind auth_request
my $http = HTTP::Tiny->new(timeout => 10);
my $authed = "http://127.0.0.1:$port/authed/api/threads";
sub as {
    my ($who, $method, $route, $body) = @_;
    my %h = $who ? (Authorization => "Bearer tok-$who") : ();
    $h{'Content-Type'} = 'application/json' if defined $body;
    my $r = $http->request($method, "$authed/$route",
                           { headers => \%h, defined $body ? (content => $body) : () });
    my $json = eval { decode_json($r->{content}) };
    return ($r->{status}, $json);
}

my ($st) = as(undef, 'GET', 'get');
is($st, 401, 'no login: the auth subrequest refuses the thread API');
my ($st2, $made) = as('alice', 'POST', 'create', '{"title":"behind a login"}');
is($st2, 201, 'alice creates a thread');
my $aid = $made->{id} // '';
my (undef, $alist) = as('alice', 'GET', 'get');
is_deeply([map { $_->{id} } @{ $alist->{threads} || [] }], [$aid],
          "alice lists it, and only it (the cookie owners' threads are others')");
my (undef, $blist) = as('bob', 'GET', 'get');
is_deeply($blist->{threads}, [], 'bob lists nothing');
my ($st3, $err) = as('bob', 'GET', "get/$aid");
is($st3, 404, "bob gets 404 for alice's thread");
is($err->{error}{code}, 'thread_not_found', 'as for an unknown thread');

my $log = C1Nginx::error_log();
like($log, qr/c1 mock: answered "planets-table" with 0 earlier turn/,
     'the mock C1 answered the first turn');
like($log, qr/c1 mock: answered "planets-table" with 2 earlier turn/,
     'the turn on the loaded thread came with its two earlier turns');
unlike($log, qr/openui-(?:alice|bob)/, 'no owner in the error log');
unlike($log, qr/\[(?:alert|crit|emerg)\]|exited on signal/,
       'no alert, no crash in the error log');

done_testing();
