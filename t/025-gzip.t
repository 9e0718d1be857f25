# gzip in front of the module (gzip on; gzip_types text/event-stream
# text/plain application/json): a streamed answer is still relayed as C1
# writes it, each piece decodable by a client inflating as it reads; the
# inflated stream is the uncompressed one byte for byte, in prompt and
# OpenAI mode; curl --compressed and Chromium decode it; a non-streamed
# answer compressed is the exact text.

use strict;
use warnings;

use Encode qw(decode_utf8);
use JSON::PP;
use Test::More;
use lib 't/lib';
use C1Nginx;
use C1Mock;
use C1Transport;

my $N = 10;          # pieces of the paced mock
my $DELAY = 200;     # ms between them
my $LATE = 0.1;      # at most this long from written to decodable (s)

my $mocks = $C1Transport::PacedMock . $C1Mock::MockLocations . "}\n";
my $port = C1Nginx::start(<<'_EOC_' . $mocks);
    log_format gz '$request_uri $status $sent_http_content_encoding '
                  '$gzip_ratio';

    server {
        listen 127.0.0.1:$C1_TEST_PORT;
        access_log logs/gzip.log gz;

        c1_model m;

        gzip on;
        gzip_types text/event-stream text/plain application/json;

        location = /page {
            default_type text/html;
            return 200 "<!doctype html><title>gzip</title><link rel=icon href=data:,>";
        }

        location = /paced {
            c1_stream on;
            set $delay $arg_delay;
            set $tag $arg_tag;
            c1_pass /_c1_paced;
        }

        location = /_c1_paced {
            internal;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:$C1_TEST_PORT/mock/paced?n=10&delay=$delay&tag=$tag;
        }

        location = /sse { c1_stream on; c1_pass /_c1_sse; }

        location = /_c1_sse {
            internal;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:$C1_TEST_PORT/mock/sse;
        }

        location = /plain { c1_pass /_c1_echo; }

        location = /_c1_echo {
            internal;
            proxy_pass http://127.0.0.1:$C1_TEST_PORT/mock/echo-body;
        }
_EOC_

my $prompt = '{"prompt": "a paced stream"}';
my $openai = '{"messages": [{"role": "user", "content": "a paced stream"}]}';

# a client that inflates as it reads: each piece decodable as it is written

for my $case (['prompt', $prompt], ['openai', $openai]) {
    my ($mode, $body) = @$case;
    my $tag = "gz-$mode";

    my $res = C1Transport::fetch($port, "/paced?delay=$DELAY&tag=$tag", $body,
                                 gzip => 1, timeout => 10);
    is($res->{error}, undef, "$mode: the gzip'd stream was read to its end");
    is($res->{status}, 200, "$mode: 200");
    is($res->{headers}{'content-encoding'}, 'gzip', "$mode: gzip'd");
    is($res->{headers}{'content-type'}, 'text/event-stream',
       "$mode: text/event-stream");
    ok($res->{chunked_end} && $res->{gzip_end},
       "$mode: the last chunk came, and the gzip stream's trailer");

    my $plain = C1Transport::fetch($port, "/paced?delay=0&tag=$tag-plain",
                                   $body);
    is($plain->{headers}{'content-encoding'}, undef,
       "$mode: without Accept-Encoding, not gzip'd");
    ok($plain->{body} eq C1Transport::paced_text($N, $mode),
       "$mode: the uncompressed stream is what the mock sent");
    ok($res->{body} eq $plain->{body},
       "$mode: the inflated stream is the uncompressed one byte for byte")
        or diag(explain([$res->{body}, $plain->{body}]));

    my $made = C1Transport::produced(C1Nginx::error_log(), $tag);
    my $got = C1Transport::arrivals($res);
    is(scalar keys %$made, $N, "$mode: the mock wrote $N pieces");
    is(scalar keys %$got, $N, "$mode: the client decoded $N pieces");

    my @late = grep {
        !defined $got->{$_} || !defined $made->{$_}
        || $got->{$_} - $made->{$_} > $LATE
    } 1 .. $N;
    my $lag = join ' ', map {
        sprintf "%d:%.0fms", $_, 1000 * (($got->{$_} // 0) - ($made->{$_} // 0))
    } 1 .. $N;
    is("@late", '', "$mode: each piece decodable within "
       . 1000 * $LATE . " ms of being written ($lag)");

    ok(defined $got->{1} && defined $got->{$N}
       && $got->{$N} - $got->{1} > ($N - 1) * $DELAY / 1000 * 0.8,
       "$mode: the pieces arrived spread over the stream, not at its end");

    ok(@{ $res->{pieces} } >= $N,
       "$mode: inflated in at least $N pieces (" . @{ $res->{pieces} } . ")");
}

# curl --compressed

sub curl {
    my ($path, $body) = @_;
    my $out = "$C1Nginx::Root/curl.out";
    my $w = `curl -sS -N --compressed --max-time 10 -D $out.h -o $out -w '%{time_starttransfer} %{time_total}' -H 'Content-Type: application/json' -d '$body' http://127.0.0.1:$port$path 2>&1`;
    my $rc = $? >> 8;
    local $/;
    open my $fh, '<', $out or die $!;
    my $got = <$fh>;
    open $fh, '<', "$out.h" or die $!;
    my $head = <$fh>;
    return ($rc, $got, $head, $w);
}

for my $case (['prompt', $prompt], ['openai', $openai]) {
    my ($mode, $body) = @$case;
    my ($rc, $got, $head, $w) = curl("/paced?delay=$DELAY&tag=curl-$mode",
                                     $body);
    is($rc, 0, "curl --compressed, $mode: curl is happy");
    like($head, qr/^Content-Encoding: gzip\r$/mi,
         "curl --compressed, $mode: gzip'd");
    ok($got eq C1Transport::paced_text($N, $mode),
       "curl --compressed, $mode: decoded, whole");
    my ($first, $total) = split ' ', $w;
    ok($total - $first > 1.0,
       "curl --compressed, $mode: pieces arrive as they come "
       . "(first byte ${first}s, end ${total}s)");
}

my ($rc, $got, $head) = curl('/sse', $prompt);
is($rc, 0, 'curl --compressed, /mock/sse: curl is happy');
like($head, qr/^Content-Encoding: gzip\r$/mi, 'curl --compressed, /mock/sse: gzip\'d');
ok($got eq $C1Mock::StreamText, 'curl --compressed, /mock/sse: decoded, whole');

($rc, $got, $head) = curl('/sse', $openai);
ok($got eq $C1Transport::OpenAIStream,
   'curl --compressed, /mock/sse, OpenAI shape: decoded, whole, ended by [DONE]');

# non-streamed answers, gzip'd

($rc, $got, $head) = curl('/plain', $prompt);
like($head, qr/^Content-Encoding: gzip\r$/mi, 'not streamed: gzip\'d');
like($head, qr{^Content-Type: text/plain; charset=utf-8\r$}mi,
     'not streamed: text/plain');
is($got, '{"model":"m","messages":[{"role":"user","content":"a paced stream"}]}',
   'not streamed: curl --compressed gets the exact text');

($rc, $got, $head) = curl('/plain', $openai);
like($head, qr/^Content-Encoding: gzip\r$/mi, 'not streamed, OpenAI shape: gzip\'d');
like($head, qr{^Content-Type: application/json\r$}mi,
     'not streamed, OpenAI shape: application/json');
is($got, C1Mock::completion('{"model":"m","messages":[{"role":"user","content":"a paced stream"}]}'),
   'not streamed, OpenAI shape: the exact chat.completion');

my $res = C1Transport::fetch($port, '/plain', $prompt, gzip => 1);
ok($res->{gzip_end} && $res->{body} eq '{"model":"m","messages":[{"role":"user","content":"a paced stream"}]}',
   'not streamed: a whole gzip stream, inflated to the exact text');

# Chromium: fetch() reading the gzip'd stream as a ReadableStream

SKIP: {
    skip 'Chromium or t/js/node_modules/playwright-core is missing', 1
        unless -x '/usr/bin/chromium' && -d 't/js/node_modules/playwright-core';

    my $json = `node t/js/gzip-stream.mjs http://127.0.0.1:$port 2>&1`;
    my ($line) = $json =~ /^(\{.*\})\s*\z/ms;
    my $r = eval { JSON::PP->new->utf8->decode($line // '') } || {};
    ok($r->{ok}, 'Chromium: the page ran its fetches') or diag($json);

    for my $mode ('prompt', 'openai') {
        my $f = $r->{$mode} || {};
        is($f->{status}, 200, "Chromium, $mode: 200");
        is($f->{encoding}, 'gzip', "Chromium, $mode: gzip'd");
        ok(defined $f->{text}
           && $f->{text} eq decode_utf8(C1Transport::paced_text($N, $mode)),
           "Chromium, $mode: decoded, whole") or diag(explain($f->{text}));

        my $made = C1Transport::produced(C1Nginx::error_log(), "browser-$mode");
        my (%got, $text);
        for my $c (@{ $f->{chunks} || [] }) {
            $text .= $c->[1];
            $got{$1} //= $c->[0] / 1000 while $text =~ /<p(\d+)>/g;
        }
        is(scalar keys %got, $N, "Chromium, $mode: $N pieces decoded");
        my @late = grep {
            !defined $got{$_} || !defined $made->{$_}
            || $got{$_} - $made->{$_} > $LATE
        } 1 .. $N;
        my $lag = join ' ', map {
            sprintf "%d:%.0fms", $_, 1000 * (($got{$_} // 0) - ($made->{$_} // 0))
        } 1 .. $N;
        is("@late", '', "Chromium, $mode: each piece read within "
           . 1000 * $LATE . " ms of being written ($lag)");
    }
}

# the access log agrees: every answer above went out gzip'd

open my $fh, '<', "$C1Nginx::Root/logs/gzip.log" or die $!;
my @log = <$fh>;
my @paced = grep { m{^/paced\?delay=$DELAY&} } @log;
ok(@paced >= 4, 'the paced streams are in the access log');
is(scalar(grep { !/ 200 gzip \d+\.\d+$/ } @paced), 0,
   'every paced stream went out 200 and gzip\'d');

unlike(C1Nginx::error_log(), qr/\[(?:alert|crit|emerg)\]|\[error\]/,
       'no error or alert in the error log');

done_testing();
