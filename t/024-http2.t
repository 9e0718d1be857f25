# HTTP/2 over TLS (listen ... ssl http2, a certificate made at test start):
# curl --http2 streamed and not, both modes, an error, a thread's turns;
# then h2load with 100 concurrent streams over one connection, every
# answer whole.

use strict;
use warnings;

use Encode qw(decode_utf8);
use File::Temp qw(tempdir);
use JSON::PP;
use Test::More;
use lib 't/lib';
use C1Nginx;
use C1Mock;
use C1Transport;

for my $need ('openssl', 'curl', 'h2load') {
    BAIL_OUT("$need is missing: run util/deps")
        unless grep { -x "$_/$need" } split /:/, $ENV{PATH};
}

my $tls = tempdir(CLEANUP => 1);
my ($cert, $key) = C1Transport::tls_cert($tls);

# the mock C1 listens on a plain port of its own, next to the TLS one
my $mock = $C1Nginx::Port + 1;

my $port = C1Nginx::start(<<"_EOC_" . $C1Mock::MockLocations . "}\n");
    log_format h2 '\$request_method \$request_uri \$status \$body_bytes_sent '
                  '\$server_protocol';

    c1_history_zone zone=threads:1m;

    server {
        listen 127.0.0.1:\$C1_TEST_PORT ssl http2;
        ssl_certificate $cert;
        ssl_certificate_key $key;
        access_log logs/h2.log h2;
        keepalive_requests 10000;

        c1_model m;

        location = /chat { c1_pass /_c1_echo; }
        location = /stream { c1_stream on; c1_pass /_c1_sse; }
        location = /stream-paced { c1_stream on; c1_pass /_c1_sse_paced; }
        location = /stream-slow { c1_stream on; c1_pass /_c1_sse_slow; }
        location = /thread { c1_history threads; c1_pass /_c1_messages; }
        location = /thread-stream {
            c1_history threads;
            c1_stream on;
            c1_pass /_c1_sse;
        }

        location = /_c1_echo {
            internal;
            proxy_pass http://127.0.0.1:$mock/mock/echo-body;
        }

        location = /_c1_sse {
            internal;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:$mock/mock/sse;
        }

        # 9 events 10 ms apart: 100 streams at once really overlap
        location = /_c1_sse_paced {
            internal;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:$mock/mock/sse?delay=10;
        }

        location = /_c1_sse_slow {
            internal;
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:$mock/mock/sse?delay=200;
        }

        location = /_c1_messages {
            internal;
            proxy_pass http://127.0.0.1:$mock/mock/echo-messages;
        }
    }

    server {
        listen 127.0.0.1:$mock;
        access_log off;
_EOC_

my $out = "$C1Nginx::Root/curl.out";

sub curl {
    my ($path, $body, $method) = @_;
    my $data = defined $body ? "-H 'Content-Type: application/json' -d '$body'"
                             : '';
    my $x = $method ? "-X $method" : '';
    my $w = `curl -sS --http2 -k --max-time 10 $x -D $out.h -o $out -w '%{http_version} %{http_code} %{time_starttransfer} %{time_total}' $data https://127.0.0.1:$port$path 2>&1`;
    my $rc = $? >> 8;
    local $/;
    open my $fh, '<', $out or die $!;
    my $got = <$fh>;
    open $fh, '<', "$out.h" or die $!;
    my $head = <$fh>;
    my ($version, $status) = split ' ', $w;
    return { rc => $rc, body => $got, head => $head, version => $version,
             status => $status, w => $w };
}

my $prompt = '{"prompt": "over h2"}';
my $openai = '{"messages": [{"role": "user", "content": "over h2"}]}';
my $echo = '{"model":"m","messages":[{"role":"user","content":"over h2"}]}';
my $echo_stream = '{"model":"m","messages":[{"role":"user","content":"over h2"}],"stream":true}';

# curl --http2

my $r = curl('/chat', $prompt);
is("$r->{rc} $r->{version} $r->{status}", '0 2 200',
   'prompt: curl over HTTP/2, 200') or diag($r->{w});
like($r->{head}, qr{^content-type: text/plain; charset=utf-8\r$}m,
     'prompt: text/plain');
is($r->{body}, $echo, 'prompt: the exact content');
my $prompt_len = length $r->{body};

$r = curl('/chat', $openai);
is("$r->{rc} $r->{version} $r->{status}", '0 2 200', 'OpenAI shape: 200 over HTTP/2');
like($r->{head}, qr{^content-type: application/json\r$}m,
     'OpenAI shape: application/json');
is($r->{body}, C1Mock::completion($echo), 'OpenAI shape: the exact chat.completion');

$r = curl('/stream', $prompt);
is("$r->{rc} $r->{version} $r->{status}", '0 2 200', 'streamed prompt: 200 over HTTP/2');
like($r->{head}, qr{^content-type: text/event-stream\r$}m,
     'streamed prompt: text/event-stream');
ok($r->{body} eq $C1Mock::StreamText, 'streamed prompt: the content, whole');
my $stream_len = length $r->{body};

$r = curl('/stream', $openai);
is("$r->{rc} $r->{version} $r->{status}", '0 2 200', 'streamed OpenAI shape: 200 over HTTP/2');
ok($r->{body} eq $C1Transport::OpenAIStream,
   'streamed OpenAI shape: every event, ended by [DONE]')
    or diag(explain($r->{body}));
my $openai_stream_len = length $r->{body};

$r = curl('/stream-slow', $prompt);
ok($r->{body} eq $C1Mock::StreamText, 'paced stream: the content, whole');
my (undef, undef, $first, $total) = split ' ', $r->{w};
# the mock waits 200 ms after each of its 9 events
ok($total - $first > 1.0,
   "paced stream: pieces arrive over HTTP/2 as they come (first byte ${first}s, end ${total}s)");

$r = curl('/chat', '{"prompt": ');
is("$r->{rc} $r->{version} $r->{status}", '0 2 400', 'bad JSON: 400 over HTTP/2');
like($r->{head}, qr{^content-type: application/json\r$}m, 'bad JSON: application/json');
is($r->{body}, '{"error":{"message":"the request body is not valid JSON",'
    . '"type":"invalid_request_error","param":null,"code":"invalid_json"}}',
   'bad JSON: the exact error');

# a thread's turns over HTTP/2: plain, streamed, plain with both before it

$r = curl('/thread', '{"prompt": "first", "threadId": "h2-thread"}');
is("$r->{version} $r->{status} $r->{body}", '2 200 user:first',
   'thread: the first turn');
$r = curl('/thread-stream', '{"prompt": "second", "threadId": "h2-thread"}');
ok("$r->{version} $r->{status} $r->{body}" eq "2 200 $C1Mock::StreamText",
   'thread: the second turn, streamed');
$r = curl('/thread', '{"prompt": "third", "threadId": "h2-thread"}');
ok($r->{body} eq "user:first | assistant:user:first | user:second | "
   . "assistant:$C1Mock::StreamText | user:third",
   'thread: the third turn had both before it') or diag(explain($r->{body}));
$r = curl('/thread?threadId=h2-thread', undef, 'GET');
is("$r->{version} $r->{status}", '2 200', 'thread: GET over HTTP/2');
my $st = decode_utf8($C1Mock::StreamText);
is_deeply(eval { JSON::PP->new->utf8->decode(C1Mock::without_ids($r->{body})) },
          [{ role => 'user', content => 'first' },
           { role => 'assistant', content => 'user:first' },
           { role => 'user', content => 'second' },
           { role => 'assistant', content => $st },
           { role => 'user', content => 'third' },
           { role => 'assistant', content => 'user:first | assistant:user:first'
             . " | user:second | assistant:$st | user:third" }],
          'thread: three turns kept, the streamed one whole') or diag($r->{body});
is(scalar(() = ($r->{body} // '') =~ /\{"id":"$C1Mock::Uuid","role":/g), 6,
   'thread: each of its six messages has a UUID id');

# h2load: 100 concurrent streams over one connection

my $N = 1000;

sub h2load {
    my ($path, $body) = @_;
    my $file = "$C1Nginx::Root/h2load.body";
    open my $fh, '>', $file or die $!;
    print $fh $body;
    close $fh;
    my $t = `h2load -n $N -c 1 -m 100 -t 1 -d $file -H 'Content-Type: application/json' https://127.0.0.1:$port$path 2>&1`;
    my %s = (rc => $? >> 8, out => $t);
    @s{qw(total started done succeeded failed errored timeout)} =
        $t =~ /^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/m;
    @s{qw(s2xx s3xx s4xx s5xx)} =
        $t =~ /^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/m;
    ($s{data}) = $t =~ /^traffic: .*\((\d+)\) data/m;
    ($s{proto}) = $t =~ /^Application protocol: (\S+)/m;
    return \%s;
}

sub access_lines {
    open my $fh, '<', "$C1Nginx::Root/logs/h2.log" or die $!;
    return <$fh>;
}

for my $case (['not streamed, prompt', '/chat', $prompt, $prompt_len],
              ['not streamed, OpenAI shape', '/chat', $openai,
               length C1Mock::completion($echo)],
              ['streamed, prompt', '/stream-paced', $prompt, $stream_len],
              ['streamed, OpenAI shape', '/stream-paced', $openai,
               $openai_stream_len])
{
    my ($what, $path, $body, $len) = @$case;
    my $before = () = access_lines();
    my $s = h2load($path, $body);

    is($s->{rc}, 0, "h2load, $what: exits 0") or diag($s->{out});
    is($s->{proto}, 'h2', "h2load, $what: over h2");
    is(join(' ', map { $_ // '?' } @$s{qw(total started done succeeded failed errored timeout)}),
       "$N $N $N $N 0 0 0", "h2load, $what: all $N succeeded, none failed")
        or diag($s->{out});
    is(join(' ', map { $_ // '?' } @$s{qw(s2xx s3xx s4xx s5xx)}), "$N 0 0 0",
       "h2load, $what: $N 2xx");
    is($s->{data}, $N * $len, "h2load, $what: $N answers of $len bytes");

    my @lines = (access_lines())[$before .. $before + $N - 1];
    my @bad = grep { !defined || !m{^POST \Q$path\E 200 $len HTTP/2\.0$} } @lines;
    is(scalar @bad, 0, "h2load, $what: the access log has $N whole answers over HTTP/2")
        or diag(explain([@bad[0 .. 2]]));
}

my $log = C1Nginx::error_log();
unlike($log, qr/\[(?:alert|crit|emerg|error)\]/, 'no error or alert in the error log');

done_testing();
