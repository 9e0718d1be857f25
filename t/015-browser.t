# What a user sees first: the demo of make run (conf.example, the C1Chat
# frontend of examples/chat, the mock C1 of examples/mock) in Debian's
# Chromium driven by playwright-core.  Two prompts: the first answer must
# render as UI (a table), the second must show that the mock C1 received
# the first turn as history.  Screenshots are kept in build/artifacts.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Path qw(make_path remove_tree);
use IO::Socket::INET;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep);

my $top = abs_path('.');
my $port = $ENV{C1_BROWSER_PORT} || 1998;
my $run = "$top/t/servroot-browser";
my $out = "$top/build/artifacts/browser";
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

local $ENV{FIRST_EXPECT} = 'Planet';
local $ENV{SECOND_EXPECT} = 'Answered with 1 earlier turn';

my $json = `node t/js/browser.mjs http://127.0.0.1:$port/ $out 2>&1`;
my ($line) = $json =~ /^(\{.*\})\s*\z/ms;
my $res = eval { JSON::PP->new->decode($line // '') } || {};

ok($res->{ok}, 'the browser saw both answers rendered') or diag($json);
ok(-s "$out/turn1.png", 'a screenshot of the first turn');
ok(-s "$out/turn2.png", 'a screenshot of the second turn');
is_deeply($res->{console_errors}, [], 'no error in the browser console');
is_deeply($res->{external_requests}, [],
          'the page asked nothing of any other server');

open my $fh, '<', "$run/error.log" or die $!;
my $log = do { local $/; <$fh> };
like($log, qr/c1 mock: answered "planets-table" with 0 earlier turn/,
     'the mock C1 answered the first prompt with a table');
like($log, qr/c1 mock: answered "planet-sizes-chart" with 1 earlier turn/,
     'the mock C1 got the first turn as history with the second');
unlike($log, qr/\[(?:alert|crit|emerg)\]|exited on signal/,
       'no alert, no crash in the error log');

open $fh, '<', "$run/c1.log" or die $!;
my @calls = grep { m{"POST /api/chat } } <$fh>;
is(scalar @calls, 2, 'two C1 calls in the access log');
like($calls[1] // '', qr/ 200 model=\S+ stream=1 thread=\S+ .* error=- /,
     'the second one streamed, on a thread, without error');

done_testing();
