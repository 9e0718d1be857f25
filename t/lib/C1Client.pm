package C1Client;

# A real HTTP/1.1 client for the tests that drive a C1Nginx: it can be a
# slow reader (a small receive buffer set before connect, reads of at most
# `chunk` bytes with a pause of `pace` seconds after each), it parses whole
# responses (Content-Length or chunked, and says whether a chunked body
# was properly ended by its last chunk), and it keeps the connection for
# the next request (keep-alive, pipelining).
#
#   my $c = C1Client->new(port => $p, rcvbuf => 4096, chunk => 2048,
#                         pace => 0.1, timeout => 20);
#   $c->send(C1Client::post('/chat', 'application/json', $body));
#   my $r = $c->response;   # { status, headers => {lc name => value},
#                           #   body, chunked, complete, error, raw_len }
#
# complete: the response ended as its framing says (Content-Length bytes,
# or the chunked body's "0\r\n\r\n"); error: why not ('closed' when the
# server closed first, 'timeout' past the client's own deadline, 'bad
# chunk' for broken framing).

use strict;
use warnings;

use Socket qw(PF_INET SOCK_STREAM SOL_SOCKET SO_RCVBUF IPPROTO_TCP
              inet_aton pack_sockaddr_in);
use IO::Handle;
use IO::Select;
use Time::HiRes qw(time sleep);

sub new {
    my ($class, %o) = @_;
    my $self = bless { chunk => 65536, pace => 0, timeout => 20, %o,
                       buf => '', eof => 0 }, $class;
    my $s;
    socket($s, PF_INET, SOCK_STREAM, IPPROTO_TCP) or die "socket: $!";
    if ($self->{rcvbuf}) {
        setsockopt($s, SOL_SOCKET, SO_RCVBUF, pack('i', $self->{rcvbuf}))
            or die "SO_RCVBUF: $!";
    }
    connect($s, pack_sockaddr_in($self->{port}, inet_aton('127.0.0.1')))
        or die "connect to port $self->{port}: $!";
    binmode $s;
    $s->autoflush(1);
    $self->{sock} = $s;
    return $self;
}

sub sock { $_[0]{sock} }

# a request's bytes: POST with a body, or a GET/DELETE without one
sub post {
    my ($path, $type, $body, %o) = @_;
    return "POST $path HTTP/1.1\r\nHost: localhost\r\n"
        . ($o{close} ? "Connection: close\r\n" : '')
        . "Content-Type: $type\r\nContent-Length: " . length($body)
        . "\r\n\r\n$body";
}

sub get {
    my ($path, %o) = @_;
    my $method = $o{method} || 'GET';
    return "$method $path HTTP/1.1\r\nHost: localhost\r\n"
        . ($o{close} ? "Connection: close\r\n" : '') . "\r\n";
}

sub send {
    my ($self, $bytes) = @_;
    my $off = 0;
    while ($off < length $bytes) {
        my $n = syswrite($self->{sock}, $bytes, length($bytes) - $off, $off);
        die "write: $!" unless defined $n;
        $off += $n;
    }
}

# one paced read into the buffer; false at EOF, an error or the deadline
sub _fill {
    my ($self, $deadline) = @_;
    return 0 if $self->{eof};
    my $left = $deadline - time;
    return 0 if $left <= 0;
    my $sel = IO::Select->new($self->{sock});
    if (!$sel->can_read($left)) {
        $self->{timedout} = 1;
        return 0;
    }
    my $n = sysread($self->{sock}, $self->{buf}, $self->{chunk},
                    length $self->{buf});
    if (!$n) {
        $self->{eof} = 1;
        return 0;
    }
    $self->{read} += $n;
    sleep $self->{pace} if $self->{pace};
    return 1;
}

# takes $n bytes off the buffer, reading as needed; undef if they never come
sub _take {
    my ($self, $n, $deadline) = @_;
    while (length $self->{buf} < $n) {
        return undef unless $self->_fill($deadline);
    }
    return substr($self->{buf}, 0, $n, '');
}

# takes a line ending in CRLF (without it)
sub _line {
    my ($self, $deadline) = @_;
    while ((my $i = index $self->{buf}, "\r\n") < 0) {
        return undef unless $self->_fill($deadline);
    }
    my $i = index $self->{buf}, "\r\n";
    my $line = substr($self->{buf}, 0, $i + 2, '');
    return substr($line, 0, $i);
}

sub _why {
    my $self = shift;
    return $self->{timedout} || !$self->{eof} ? 'timeout' : 'closed';
}

# reads one whole response (of a request that is not HEAD)
sub response {
    my ($self, %o) = @_;
    my $deadline = time + ($o{timeout} || $self->{timeout});
    my %r = (headers => {}, body => '', complete => 0, chunked => 0);
    $self->{timedout} = 0;

    my $status = $self->_line($deadline);
    if (!defined $status) {
        $r{error} = $self->_why;
        return \%r;
    }
    ($r{status}) = $status =~ m{\AHTTP/1\.[01] (\d{3}) } or do {
        $r{error} = "bad status line: $status";
        return \%r;
    };
    while (1) {
        my $h = $self->_line($deadline);
        if (!defined $h) {
            $r{error} = $self->_why;
            return \%r;
        }
        last if $h eq '';
        my ($k, $v) = $h =~ /\A([^:]+):\s*(.*)\z/ or next;
        $r{headers}{lc $k} = $v;
    }

    my $h = $r{headers};
    if (($h->{'transfer-encoding'} // '') =~ /chunked/i) {
        $r{chunked} = 1;
        while (1) {
            my $size = $self->_line($deadline);
            if (!defined $size) {
                $r{error} = $self->_why;
                return \%r;
            }
            if ($size !~ /\A([0-9a-fA-F]+)(?:;.*)?\z/) {
                $r{error} = "bad chunk";
                return \%r;
            }
            my $n = hex $1;
            if ($n == 0) {
                my $end = $self->_line($deadline);
                if (!defined $end) {
                    $r{error} = $self->_why;
                    return \%r;
                }
                if ($end ne '') {
                    $r{error} = "trailers after the last chunk";
                    return \%r;
                }
                $r{complete} = 1;
                return \%r;
            }
            my $data = $self->_take($n + 2, $deadline);
            if (!defined $data) {
                $r{body} .= substr($self->{buf}, 0, $n);
                $r{error} = $self->_why;
                return \%r;
            }
            if (substr($data, $n) ne "\r\n") {
                $r{error} = "bad chunk";
                return \%r;
            }
            $r{body} .= substr($data, 0, $n);
        }
    }

    if (defined $h->{'content-length'}) {
        my $body = $self->_take($h->{'content-length'}, $deadline);
        if (!defined $body) {
            $r{body} = $self->{buf};
            $r{error} = $self->_why;
            return \%r;
        }
        $r{body} = $body;
        $r{complete} = 1;
        return \%r;
    }

    # neither: the body ends with the connection
    1 while $self->_fill($deadline);
    $r{body} = $self->{buf};
    $self->{buf} = '';
    $r{error} = $self->_why if !$self->{eof};
    $r{complete} = $self->{eof} ? 1 : 0;
    return \%r;
}

# true when the server closed the connection (waits up to $wait seconds)
sub closed {
    my ($self, $wait) = @_;
    return 1 if $self->{eof};
    my $sel = IO::Select->new($self->{sock});
    return 0 unless $sel->can_read($wait // 1);
    my $n = sysread($self->{sock}, my $b, 65536);
    if (!$n) {
        $self->{eof} = 1;
        return 1;
    }
    $self->{buf} .= $b;
    return 0;
}

sub close {
    my $self = shift;
    close $self->{sock} if $self->{sock};
    $self->{sock} = undef;
}

# the bytes a slow reader got before the server closed: everything still
# unread, at the pace of the client
sub drain {
    my ($self, %o) = @_;
    my $deadline = time + ($o{timeout} || $self->{timeout});
    1 while $self->_fill($deadline);
    my $b = $self->{buf};
    $self->{buf} = '';
    return $b;
}

1;
