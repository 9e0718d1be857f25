# The threads of the demo (conf.example through util/run-conf: c1_threads,
# c1_history_owner from the c1_user cookie nginx sets) in the C1Chat
# frontend of examples/chat, in Debian's Chromium driven by playwright-core
# (t/js/threads-browser.mjs): two turns, a reload and the thread opened
# from the sidebar; a form in an answer filled in and back after a reload;
# a rename, a delete from the sidebar; a second user who sees none of it.
# Screenshots are kept in build/artifacts/threads-browser.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Path qw(make_path remove_tree);
use IO::Socket::INET;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep);

my $top = abs_path('.');
my $port = $ENV{C1_BROWSER_PORT} || $ENV{C1_TEST_PORT} || 1998;
my $run = "$top/t/servroot-threads-browser";
my $out = "$top/build/artifacts/threads-browser";
my $nginx = $ENV{TEST_NGINX_BINARY} || 'nginx';

for my $need ('/usr/bin/chromium', 'examples/chat/dist/index.html',
              't/js/node_modules/playwright-core', 'build/ngx_http_c1_module.so')
{
    BAIL_OUT("$need is missing: run make test") unless -e $need;
}

remove_tree($run, $out);
make_path($run, $out);

{
    local $ENV{C1_MOCK_SPEED} = 10;
    local $ENV{THESYS_API_KEY} = '';
    system("util/run-conf $port $top $run > $run/nginx.conf") == 0
        or BAIL_OUT('util/run-conf failed');
}

my $check = `$nginx -t -c $run/nginx.conf 2>&1`;
is($? >> 8, 0, 'nginx -t accepts the demo config') or diag($check);
unlike($check, qr/has no "c1_history_owner"/,
       'with no warning about an anonymous owner');

system("$nginx -c $run/nginx.conf > /dev/null 2>&1") == 0
    or BAIL_OUT('cannot start nginx');

END {
    system("$nginx -c $run/nginx.conf -s stop > /dev/null 2>&1")
        if -e "$run/nginx.pid";
}

for (1 .. 100) {
    last if IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port");
    sleep 0.05;
}

my $json = `node t/js/threads-browser.mjs http://127.0.0.1:$port/ $out 2>&1`;
my ($line) = $json =~ /^(\{.*\})\s*\z/ms;
my $res = eval { JSON::PP->new->decode($line // '') } || {};

ok($res->{ok}, 'every step in the browser passed') or diag($json);
note($json);
my %step = map { ref $_ ? %$_ : ($_ => 1) } @{ $res->{steps} || [] };
ok($step{cookie} && $step{cookie}{httpOnly},
   'nginx gave the browser an HttpOnly c1_user cookie');
ok($step{'reloaded thread shows both answers'},
   'after a reload the thread from the sidebar shows both answers');
ok($step{'form state back after reload'},
   "the form's state came back after a reload");
is_deeply($step{renamed}, ['Book a table for tonight', 'Planets, renamed'],
          'the sidebar shows the new title');
ok($step{'deleted through the sidebar'}, 'a thread deleted from the sidebar');
is_deeply($step{'second user gets 404'},
          { 'GET get' => 404, 'PATCH update' => 404, 'PUT message' => 404,
            'DELETE delete' => 404 },
          "another user gets 404 for the first user's thread");
ok(-s "$out/form-reloaded.png", 'a screenshot of the reloaded form');
is_deeply($res->{console_errors}, [], 'no error in the browser console');
is_deeply($res->{external_requests}, [],
          'the page asked nothing of any other server');

open my $fh, '<', "$run/error.log" or die $!;
my $log = do { local $/; <$fh> };
like($log, qr/c1 mock: answered "planets-table" with 0 earlier turn/,
     'the first prompt: a table');
like($log, qr/c1 mock: answered "planet-sizes-chart" with 1 earlier turn/,
     'the second prompt came with the first turn as history');
like($log, qr/c1 mock: answered "booking-form" with 0 earlier turn/,
     'the second thread started afresh: a form');
unlike($log, qr/second-user-/, 'no owner in the error log');
unlike($log, qr/\[(?:alert|crit|emerg)\]|exited on signal/,
       'no alert, no crash in the error log');

open $fh, '<', "$run/c1.log" or die $!;
my @calls = grep { m{"POST /api/chat } } <$fh>;
is(scalar @calls, 3, 'three C1 calls in the access log');
is(scalar(grep { / 200 model=\S+ stream=1 thread=\S+ .* error=- / } @calls), 3,
   'each streamed, on a thread, without error');

done_testing();
