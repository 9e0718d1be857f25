# A tool in the demo (conf.example through util/run-conf: c1_tool
# get_planets served by an internal location, a static JSON file; the mock
# C1 of examples/mock calls it when asked for the planets' table) in the
# C1Chat frontend of examples/chat, in Debian's Chromium driven by
# playwright-core (t/js/tools-browser.mjs): while the tool runs the answer
# shows its think item ("Looking up the planets"); then the table whose
# rows came from examples/tools/planets.json; the thread keeps the answer
# without the think item.  Here the tool's location takes 1.5 s (a sleep
# this test adds to the demo config), long enough to see the think item.
# Screenshots are kept in build/artifacts/tools-browser.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Path qw(make_path remove_tree);
use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep);

my $top = abs_path('.');
my $port = $ENV{C1_BROWSER_PORT} || $ENV{C1_TEST_PORT} || 1998;
my $run = "$top/t/servroot-tools-browser";
my $out = "$top/build/artifacts/tools-browser";
my $nginx = $ENV{TEST_NGINX_BINARY} || 'nginx';
my $delay = 1.5;

for my $need ('/usr/bin/chromium', 'examples/chat/dist/index.html',
              't/js/node_modules/playwright-core', 'build/ngx_http_c1_module.so')
{
    BAIL_OUT("$need is missing: run make test") unless -e $need;
}

remove_tree($run, $out);
make_path($run, $out);

my $conf;
{
    local $ENV{C1_MOCK_SPEED} = 10;
    local $ENV{THESYS_API_KEY} = '';
    $conf = `util/run-conf $port $top $run`;
    BAIL_OUT('util/run-conf failed') if $? != 0;
}

# the demo's tool as conf.example has it, and slow: a POST to it (the
# module's subrequest; not the GET of its error_page) waits first
like($conf, qr{\n        location = /tools/planets \{\n            internal;\n},
     'the demo has the internal location of the tool');
like($conf, qr{c1_tool name=get_planets uri=/tools/planets\s+schema=\Q$top\E/examples/tools/get_planets\.schema\.json\s}s,
     "the demo's c1_tool, with the project's schema");
$conf =~ s{(\n        location = /tools/planets \{\n)}
          {$1            rewrite_by_lua_block {
                if ngx.req.get_method() == "POST" then ngx.sleep($delay) end
            }\n};
open my $fh, '>', "$run/nginx.conf" or die $!;
print $fh $conf;
close $fh;

my $check = `$nginx -t -c $run/nginx.conf 2>&1`;
is($? >> 8, 0, 'nginx -t accepts the demo config') or diag($check);

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

my $http = HTTP::Tiny->new(timeout => 10);
my $direct = $http->post("http://127.0.0.1:$port/tools/planets",
                         { headers => { 'Content-Type' => 'application/json' },
                           content => '{}' });
is($direct->{status}, 404, "a client's POST to the tool's location: 404 (internal)");

my $json = `node t/js/tools-browser.mjs http://127.0.0.1:$port/ $out 2>&1`;
my ($line) = $json =~ /^(\{.*\})\s*\z/ms;
my $res = eval { JSON::PP->new->decode($line // '') } || {};

ok($res->{ok}, 'every step in the browser passed') or diag($json);
note($json);
my %step = map { ref $_ ? %$_ : ($_ => 1) } @{ $res->{steps} || [] };
is($step{'think item while the tool ran'}, 'Looking up the planets',
   "the think item's title showed before the answer");
is($step{'table from the tool'}, '4222.6',
   "then the table with a value only the tool's file has");
ok($step{'think item gone after the answer'},
   'the think item is gone once the answer shows (ephemeral)');
is_deeply($step{'thread API roles'}, ['user', 'assistant'],
          'the thread API lists the prompt and the final answer only');
ok($step{'stored answer has the rows, no think item'},
   'the stored answer has the rows, no think item');
ok($step{'reloaded thread: the table, no think item'},
   'after a reload the thread shows the table and no think item');

my $t = $res->{timing} || {};
ok(defined $t->{think_ms} && defined $t->{table_ms}
   && $t->{table_ms} - $t->{think_ms} >= 1000 * $delay / 2,
   "the think item showed while the tool ran (${delay} s): "
   . "think at " . ($t->{think_ms} // '-') . ' ms, table at '
   . ($t->{table_ms} // '-') . ' ms');
ok(-s "$out/think.png", 'a screenshot with the think item');
ok(-s "$out/turn.png", 'a screenshot of the answer');
is_deeply($res->{console_errors}, [], 'no error in the browser console');
is_deeply($res->{external_requests}, [],
          'the page asked nothing of any other server');

my $m = $http->get("http://127.0.0.1:$port/metrics");
like($m->{content} // '', qr/^c1_tool_calls_total\{tool="get_planets",outcome="ok"\} 1$/m,
     'metrics: one call of get_planets, ok');

open $fh, '<', "$run/error.log" or die $!;
my $log = do { local $/; <$fh> };
my @called = $log =~ /c1 mock: called the tool get_planets \(streamed answer\)/g;
is(scalar @called, 1, 'the mock C1 asked for the tool once, streamed');
like($log, qr/c1 mock: answered "planets-table" with 0 earlier turn\(s\) in the request, the rows from the tool get_planets/,
     "then answered the table from the tool's result");
unlike($log, qr/c1: tool "[^"]*" failed/, 'no tool failed');
unlike($log, qr/\[(?:alert|crit|emerg)\]|exited on signal/,
       'no alert, no crash in the error log');

open $fh, '<', "$run/c1.log" or die $!;
my @calls = grep { m{"POST /api/chat } } <$fh>;
is(scalar @calls, 1, 'one turn in the access log');
like($calls[0] // '', qr/ 200 model=\S+ stream=1 thread=\S+ .* error=- tools=1 tool_rounds=1 /,
     'streamed, on a thread, without error, one tool call in one round');

done_testing();
