package C1Transport;

# Shared parts of the transport tests (t/024-http2.t, t/025-gzip.t):
#   tls_cert(DIR)       a self-signed key and certificate made with openssl
#   $OpenAIStream       what an OpenAI-shape client gets from /mock/sse
#   $PacedMock          a mock C1 location, /mock/paced, whose stream is
#                       paced and which logs when it wrote each piece
#   paced_text(N, MODE) what a client gets from /mock/paced?n=N
#   produced(LOG, TAG)  when /mock/paced wrote each piece, from the log
#   fetch(PORT, ...)    an HTTP/1.1 POST read as it arrives: de-chunked,
#                       inflated when gzip'd, each piece timed
#   arrivals(RES)       when each piece of /mock/paced became decodable

use strict;
use warnings;

use Compress::Raw::Zlib;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time);

# a key and a certificate for 127.0.0.1, made at test start: nothing to keep
sub tls_cert {
    my $dir = shift;

    system("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
           . "-nodes -days 2 -subj /CN=127.0.0.1 "
           . "-addext subjectAltName=IP:127.0.0.1 "
           . "-keyout $dir/key.pem -out $dir/cert.pem 2>$dir/openssl.log")
        == 0 or die "openssl req failed (is Debian's openssl installed?)";

    return ("$dir/cert.pem", "$dir/key.pem");
}

our $OpenAIStream = do {
    my $head = '{"id":"chatcmpl-s","object":"chat.completion.chunk",'
        . '"created":1764000000,"model":"mock","choices":[{"index":0,';
    my @p = ('<content thesys=\"true\">', '{&quot;component&quot;:', '',
             " \x{e2}\x{9c}\x{93} \x{c3}\x{a9} ", "\x{f0}\x{9f}\x{98}\x{80}",
             '\n\"quoted\" \\\\ ', '<\/content>');
    join '',
        "data: $head\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
            . "\"finish_reason\":null}]}\n\n",
        (map { "data: $head\"delta\":{\"content\":\"$_\"},"
               . "\"finish_reason\":null}]}\n\n" } @p),
        "data: $head\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: [DONE]\n\n";
};

# n pieces (default 10), delay ms apart (default 200), each "<pI> ✓ é 😀 ";
# logs "paced mock tag=TAG piece I at SECONDS" as it writes piece I
our $PacedMock = <<'_EOC_';
    location = /mock/paced {
        lua_http10_buffering off;
        content_by_lua_block {
            ngx.req.read_body()
            local n = tonumber(ngx.var.arg_n) or 10
            local delay = (tonumber(ngx.var.arg_delay) or 200) / 1000
            local tag = ngx.var.arg_tag or "-"
            local head = '{"id":"chatcmpl-p","object":"chat.completion.chunk",'
                .. '"created":1764000000,"model":"mock","choices":[{"index":0,'
            ngx.header["Content-Type"] = "text/event-stream"
            for i = 1, n do
                ngx.update_time()
                ngx.log(ngx.NOTICE, "paced mock tag=", tag, " piece ", i,
                        " at ", string.format("%.3f", ngx.now()))
                ngx.print("data: " .. head .. '"delta":{"content":"<p' .. i
                          .. '> \226\156\147 \195\169 \240\159\152\128 "},'
                          .. '"finish_reason":null}]}\n\n')
                ngx.flush(true)
                ngx.sleep(delay)
            end
            ngx.print("data: " .. head .. '"delta":{},"finish_reason":"stop"}]}'
                      .. "\n\ndata: [DONE]\n\n")
        }
    }
_EOC_

sub paced_text {
    my ($n, $mode) = @_;
    my $head = '{"id":"chatcmpl-p","object":"chat.completion.chunk",'
        . '"created":1764000000,"model":"mock","choices":[{"index":0,';
    my @p = map { "<p$_> \x{e2}\x{9c}\x{93} \x{c3}\x{a9} \x{f0}\x{9f}\x{98}\x{80} " }
            1 .. $n;
    return join '', @p if $mode eq 'prompt';
    return join '',
        (map { "data: $head\"delta\":{\"content\":\"$_\"},"
               . "\"finish_reason\":null}]}\n\n" } @p),
        "data: $head\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: [DONE]\n\n";
}

# piece number => when the mock wrote it
sub produced {
    my ($log, $tag) = @_;
    my %at;
    while ($log =~ /paced mock tag=\Q$tag\E piece (\d+) at ([\d.]+)/g) {
        $at{$1} = $2;
    }
    return \%at;
}

# piece number => when the client could first decode it
sub arrivals {
    my $res = shift;
    my (%at, $text);
    for my $p (@{ $res->{pieces} }) {
        $text .= $p->[1];
        while ($text =~ /<p(\d+)>/g) {
            $at{$1} //= $p->[0];
        }
    }
    return \%at;
}

# POST PATH with BODY over HTTP/1.1 (Connection: close), read as it comes.
# Returns { status, headers (lower-case names), body (decoded), pieces =>
# [[time, decoded text], ...], gzip_end (1: the gzip stream ended with its
# trailer), chunked_end (1: the last chunk came), error }.
sub fetch {
    my ($port, $path, $body, %opt) = @_;
    my $deadline = time + ($opt{timeout} || 10);
    my $res = { pieces => [], body => '' };

    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                  Timeout => 2)
        or return { %$res, error => "connect: $!" };

    my $req = "POST $path HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        . "Content-Type: " . ($opt{type} || 'application/json') . "\r\n"
        . "Content-Length: " . length($body) . "\r\n"
        . ($opt{gzip} ? "Accept-Encoding: gzip\r\n" : '')
        . "Connection: close\r\n\r\n" . $body;
    syswrite($s, $req) == length($req)
        or return { %$res, error => "write: $!" };

    my ($raw, $head_done, $chunked, $inflate) = ('', 0, 0, undef);
    my $chunk_left = -1;        # -1: a chunk size line is next
    my $sel = IO::Select->new($s);
    my $eof = 0;

    my $take = sub {           # de-chunked data: inflate, record
        my $data = shift;
        my $now = time;
        my $out = '';
        if ($inflate) {
            my $st = $inflate->inflate($data, $out);
            if ($st == Z_STREAM_END) {
                $res->{gzip_end} = 1;
            } elsif ($st != Z_OK && $st != Z_BUF_ERROR) {
                $res->{error} //= "inflate: $st";
            }
        } else {
            $out = $data;
        }
        if (length $out) {
            push @{ $res->{pieces} }, [$now, $out];
            $res->{body} .= $out;
        }
    };

    while (!$eof) {
        my $left = $deadline - time;
        if ($left <= 0) {
            $res->{error} //= 'timeout';
            last;
        }
        next unless $sel->can_read($left);

        my $n = sysread($s, my $buf, 65536);
        if (!defined $n) {
            $res->{error} //= "read: $!";
            last;
        }
        $eof = 1 if $n == 0;
        $raw .= $buf;

        if (!$head_done) {
            my $i = index($raw, "\r\n\r\n");
            next if $i < 0;
            my $head = substr($raw, 0, $i);
            $raw = substr($raw, $i + 4);
            $head_done = 1;
            my ($status, @lines) = split /\r\n/, $head;
            ($res->{status}) = $status =~ m{^HTTP/1\.1 (\d+)};
            for (@lines) {
                my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
                $res->{headers}{lc $k} = $v;
            }
            $chunked = lc($res->{headers}{'transfer-encoding'} // '')
                       eq 'chunked';
            if (lc($res->{headers}{'content-encoding'} // '') eq 'gzip') {
                ($inflate) = Compress::Raw::Zlib::Inflate->new(
                    -WindowBits => WANT_GZIP, -ConsumeInput => 1);
            }
        }

        if (!$chunked) {
            $take->($raw) if length $raw;
            $raw = '';
            next;
        }

        for (;;) {
            if ($chunk_left < 0) {
                $raw =~ s/\A([0-9a-fA-F]+)[^\r\n]*\r\n// or last;
                $chunk_left = hex $1;
                if ($chunk_left == 0) {
                    $res->{chunked_end} = 1;
                    $eof = 1;
                    last;
                }
            }
            last unless length $raw;
            my $len = length $raw < $chunk_left ? length $raw : $chunk_left;
            $take->(substr($raw, 0, $len, ''));
            $chunk_left -= $len;
            if ($chunk_left == 0) {
                last if length $raw < 2;
                substr($raw, 0, 2, '') eq "\r\n"
                    or ($res->{error} //= 'bad chunk end'), last;
                $chunk_left = -1;
            }
        }
    }

    close $s;
    return $res;
}

1;
