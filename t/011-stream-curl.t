# Streamed prompts seen by curl: pieces arrive as C1 sends them, and a
# stream that C1 breaks off ends visibly (no last chunk).

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time);
use lib 't/lib';
use C1Nginx;
use C1Mock;

my $port = C1Nginx::start(<<'_EOC_' . $C1Mock::MockLocations . "}\n");
    server {
        listen 127.0.0.1:$C1_TEST_PORT;

        c1_model m;
        c1_stream on;

        location = /chat { c1_pass /_c1; }
        location = /broken { c1_pass /_c1_broken; }

        location = /_c1 {
            internal;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:$C1_TEST_PORT/mock/sse?delay=200;
        }

        location = /_c1_broken {
            internal;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:$C1_TEST_PORT/mock/sse?after=3&reset=1;
        }
_EOC_

sub curl {
    my ($path) = @_;
    my $out = "t/servroot-client/curl.out";
    my $cmd = "curl -sS -N --max-time 10 -o $out -w '%{time_starttransfer} %{time_total}' "
        . "-H 'Content-Type: application/json' -d '{\"prompt\":\"x\"}' "
        . "http://127.0.0.1:$port$path 2>&1";
    my $w = `$cmd`;
    my $rc = $? >> 8;
    open my $fh, '<', $out or die $!;
    local $/;
    my $body = <$fh>;
    return ($rc, $body, $w);
}

my ($rc, $body, $w) = curl('/chat');
is($rc, 0, 'stream: curl is happy');
is($body, $C1Mock::StreamText, 'stream: the content, whole');
my ($first, $total) = split ' ', $w;
# the mock waits 200 ms after each of its 9 events: the first piece must
# come long before the end
ok($total - $first > 1.0,
   "stream: pieces arrive as they come (first byte ${first}s, end ${total}s)");

($rc, $body) = curl('/broken');
is($rc, 18, 'broken stream: curl sees a transfer cut short (exit 18)');
is($body, "<content thesys=\"true\">{&quot;component&quot;:",
   'broken stream: what came before the break arrived');
like(C1Nginx::error_log(),
     qr/\[error\].*c1: C1's stream broke off, after the client's stream began/,
     'broken stream: the error log says why');

unlike(C1Nginx::error_log(), qr/\[(?:alert|crit|emerg)\]/,
       'no alert in the error log');

done_testing();
