#!/usr/bin/env perl
# How many one-turn threads (a 100-byte prompt, an answer of N bytes) a 1m
# c1_history_zone holds before it evicts: the bytes a turn costs.
#
#   bench/history-zone.pl [ANSWER_SIZE...]

use strict;
use warnings;

use File::Basename qw(dirname);
use Cwd qw(abs_path);

my $top;
BEGIN { $top = abs_path(dirname(__FILE__) . '/..') }
use lib "$top/t/lib";
use C1Nginx;
use C1Mock;

$C1Nginx::Root = "$top/build/bench/history";
$ENV{TEST_NGINX_LOAD_MODULES} ||= "$top/build/ngx_http_c1_module.so "
    . "/usr/lib/nginx/modules/ndk_http_module.so "
    . "/usr/lib/nginx/modules/ngx_http_lua_module.so";

my @sizes = @ARGV ? @ARGV : (1000, 4000, 10000, 20000);
my $prompt = 'a prompt of about one hundred bytes, like the ones people '
    . 'type into a chat box, give or take ...';

print "| Answer size | One-turn threads in 1 MB | Bytes per turn |\n";
print "|---|---|---|\n";

for my $alen (@sizes) {
    my $port = C1Nginx::start(<<"_EOC_" . $C1Mock::MockLocations . "}\n");
    c1_history_zone zone=threads:1m max_messages=100000 inactive=1h;
    server {
        listen 127.0.0.1:\$C1_TEST_PORT;
        c1_model m;
        location = /chat { c1_history threads; c1_pass /_c1; }
        location = /_c1 {
            internal;
            proxy_pass http://127.0.0.1:\$C1_TEST_PORT/mock/answer?len=$alen;
        }
_EOC_

    my $n = 0;
    for my $i (1 .. 5000) {
        system("curl -s -o /dev/null -H 'Content-Type: application/json' "
               . "-d '{\"prompt\":\"$prompt\",\"threadId\":\"t$i\"}' "
               . "http://127.0.0.1:$port/chat");
        my $c = `curl -s -o /dev/null -w '%{http_code}' 'http://127.0.0.1:$port/chat?threadId=t1'`;
        if ($c ne '200') {
            $n = $i - 1;
            last;
        }
    }

    printf "| %d B | %d | %.0f |\n", $alen, $n, 1048576 / $n;
    C1Nginx::stop();
}
