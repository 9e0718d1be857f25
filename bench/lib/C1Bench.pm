package C1Bench;

# What the benchmarks share: nginx instances of their own (a mock C1 with
# Lua, an edge with the module) under build/bench, and /proc readings.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use IO::Socket::INET;
use POSIX qw(floor);
use Time::HiRes qw(time sleep);

our $Top = abs_path(dirname(__FILE__) . '/../..');
our $Root = "$Top/build/bench";
our $Nginx = $ENV{NGINX} || '/usr/sbin/nginx';
our $Module = $ENV{C1_MODULE} || "$Top/build/ngx_http_c1_module.so";
our $Lua = "load_module /usr/lib/nginx/modules/ndk_http_module.so;\n"
    . "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;\n";

my %started;

# fixture(NAME): the project's own component tree examples/mock/trees/NAME.json
# (dashboard, table, chart, form, settings: C1 answers of the Stack-root
# component set), the content the mock C1 answers with
sub fixture {
    my ($name) = @_;
    my $f = "$Top/examples/mock/trees/$name.json";
    die "no component tree $name in examples/mock/trees\n" unless -f $f;
    return $f;
}

# server(NAME, MODULES, HTTP, WORKERS): a fresh nginx, master and workers
sub server {
    my ($name, $modules, $http, $workers) = @_;
    my $dir = "$Root/$name";
    $workers ||= 1;
    stop($name);
    remove_tree($dir);
    make_path("$dir/conf", "$dir/logs");
    open my $fh, '>', "$dir/conf/nginx.conf" or die $!;
    print $fh <<"_EOC_";
$modules
worker_processes $workers;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 16384; }
http {
    access_log off;
$http
}
_EOC_
    close $fh;
    system($Nginx, '-p', "$dir/", '-c', 'conf/nginx.conf') == 0
        or die "cannot start the $name nginx\n";
    $started{$name} = 1;
    sleep 0.3;
}

# mock(NAME, PORT, FIXTURE): the mock C1 of bench/mock-c1.lua, one worker
sub mock {
    my ($name, $port, $fixture) = @_;
    server($name, $Lua, <<"_EOC_", 1);
    server {
        listen 127.0.0.1:$port backlog=65535;
        keepalive_requests 1000000;
        location = /v1/embed/chat/completions {
            set \$c1_fixture $fixture;
            lua_http10_buffering off;
            content_by_lua_file $Top/bench/mock-c1.lua;
        }
    }
_EOC_
}

sub stop {
    my ($name) = @_;
    my $dir = "$Root/$name";
    return unless -e "$dir/logs/nginx.pid";
    system("$Nginx -p '$dir/' -c conf/nginx.conf -s stop 2>/dev/null");
    for (1 .. 100) { last unless -e "$dir/logs/nginx.pid"; sleep 0.05 }
}

sub error_log {
    my ($name) = @_;
    open my $fh, '<', "$Root/$name/logs/error.log" or return '';
    local $/;
    return <$fh>;
}

sub workers {
    my ($name) = @_;
    open my $fh, '<', "$Root/$name/logs/nginx.pid" or die $!;
    chomp(my $master = <$fh>);
    return grep { /^\d+$/ } split ' ', `pgrep -P $master`;
}

# rss_kb(PID [, FIELD]): VmRSS, or another /proc/PID/status figure such as
# RssAnon (the process's private memory: shared zones left out)
sub rss_kb {
    my ($pid, $field) = @_;
    $field ||= 'VmRSS';
    open my $fh, '<', "/proc/$pid/status" or return 0;
    while (my $l = <$fh>) { return $1 if $l =~ /^$field:\s+(\d+)/ }
    return 0;
}

# fds(PID [, PORT]): the open descriptors of a process, leaving out its
# connections to PORT (an upstream's keepalive cache, whose size depends on
# the moment, not on a leak)
sub fds {
    my ($pid, $port) = @_;
    my %skip;

    if ($port) {
        for my $f ("/proc/$pid/net/tcp", "/proc/$pid/net/tcp6") {
            open my $fh, '<', $f or next;
            while (my $l = <$fh>) {
                my @c = split ' ', $l;
                next unless $c[2] && $c[2] =~ /:([0-9A-F]{4})$/;
                $skip{$c[9]} = 1 if hex($1) == $port;
            }
        }
    }

    opendir my $dh, "/proc/$pid/fd" or return 0;
    my $n = 0;
    for my $fd (grep { !/^\./ } readdir $dh) {
        my $to = readlink("/proc/$pid/fd/$fd") // '';
        next if $to =~ /^socket:\[(\d+)\]$/ && $skip{$1};
        $n++;
    }
    return $n;
}

sub cpu_s {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my @f = split ' ', (<$fh> =~ s/^.*\) //r);
    return ($f[11] + $f[12]) / 100;    # utime + stime, in clock ticks
}

# one streamed request; returns (ttfb, total, [latencies in us], body bytes,
# body) where a latency is a delta's arrival minus its send stamp
sub fetch {
    my ($port, $path, $body, %opt) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
                                  Proto => 'tcp') or die "connect: $!";
    $s->setsockopt(6, 1, 1);    # TCP_NODELAY
    my $req = "POST $path HTTP/1.1\r\nHost: localhost\r\n"
        . "Content-Type: application/json\r\nConnection: close\r\n"
        . "Content-Length: " . length($body) . "\r\n\r\n$body";
    my $t0 = time;
    syswrite($s, $req) == length($req) or die "write: $!";

    my ($raw, $head, $data, $ttfb, @lat) = ('', undef, '', undef);
    my $scan = '';
    my $keep = $opt{keep};
    my $count = 0;
    my $sampler = $opt{sample};

    while (1) {
        my $n = sysread($s, my $buf, 65536);
        die "read: $!" unless defined $n;
        last if $n == 0;
        my $t = time;
        $raw .= $buf;

        if (!defined $head) {
            my $i = index($raw, "\r\n\r\n");
            next if $i < 0;
            $head = substr($raw, 0, $i);
            $raw = substr($raw, $i + 4);
        }

        # de-chunk what is complete
        while ($raw =~ /\A([0-9a-fA-F]+)\r\n/) {
            my $len = hex $1;
            my $need = length($1) + 2 + $len + 2;
            last if length($raw) < $need;
            my $chunk = substr($raw, length($1) + 2, $len);
            $raw = substr($raw, $need);
            next unless $len;
            $ttfb //= $t - $t0;
            $count += $len;
            $data .= $chunk if $keep;
            $scan .= $chunk;
            my $end = 0;
            while ($scan =~ /\[\[T(\d+)\]\]/g) {
                push @lat, $t * 1e6 - $1;
                $end = pos($scan);
            }
            $scan = substr($scan, $end);
            $scan = substr($scan, -64) if length($scan) > 64;
        }

        $sampler->() if $sampler;
    }

    die "no header\n" unless defined $head;
    my ($status) = $head =~ m{^HTTP/1\.1 (\d+)};
    die "status $status from $path\n" unless $status == 200;

    return ($ttfb // 0, time - $t0, \@lat, $count, $data);
}

sub pct {
    my ($p, @v) = @_;
    @v = sort { $a <=> $b } @v;
    return 0 unless @v;
    return $v[floor($p / 100 * $#v + 0.5)];
}

# client(PORT): one keep-alive HTTP/1.1 connection to 127.0.0.1:PORT, one
# request at a time:
#   my ($status, $head, $body) = $c->request('GET', '/path');
#   $c->request('POST', '/path', $json, "X-User: u1\r\n");
# The body is read by Content-Length or chunked; a "Connection: close"
# answer closes the connection and the next request opens another.
sub client {
    my ($port) = @_;
    return C1Bench::Client->new($port);
}

package C1Bench::Client;

sub new {
    my ($class, $port) = @_;
    return bless { port => $port, buf => '' }, $class;
}

sub connect {
    my ($c) = @_;
    $c->{s} = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$c->{port}",
                                    Proto => 'tcp')
        or die "connect to $c->{port}: $!\n";
    $c->{s}->setsockopt(6, 1, 1);    # TCP_NODELAY
    $c->{buf} = '';
}

sub fill {
    my ($c) = @_;
    my $n = sysread($c->{s}, $c->{buf}, 262144, length $c->{buf});
    die "read from $c->{port}: $!\n" unless defined $n;
    return $n;
}

sub request {
    my ($c, $method, $path, $body, $headers) = @_;
    $c->connect unless $c->{s};
    my $req = "$method $path HTTP/1.1\r\nHost: localhost\r\n"
        . ($headers // '');
    $req .= defined $body
        ? "Content-Type: application/json\r\nContent-Length: "
          . length($body) . "\r\n\r\n$body"
        : "\r\n";
    my $off = 0;
    while ($off < length $req) {
        my $n = syswrite($c->{s}, $req, length($req) - $off, $off);
        die "write to $c->{port}: $!\n" unless defined $n;
        $off += $n;
    }

    my $i;
    while (($i = index($c->{buf}, "\r\n\r\n")) < 0) {
        $c->fill or die "connection to $c->{port} closed before a header\n";
    }
    my $head = substr($c->{buf}, 0, $i);
    substr($c->{buf}, 0, $i + 4) = '';
    my ($status) = $head =~ m{^HTTP/1\.[01] (\d{3})}
        or die "no status line from $c->{port}\n";

    my $data = '';
    if ($method eq 'HEAD' || $status == 204 || $status == 304) {
        # no body
    } elsif ($head =~ /^Content-Length:\s*(\d+)/mi) {
        my $len = $1;
        while (length $c->{buf} < $len) {
            $c->fill or die "connection to $c->{port} closed in a body\n";
        }
        $data = substr($c->{buf}, 0, $len, '');
    } elsif ($head =~ /^Transfer-Encoding:\s*chunked/mi) {
        while (1) {
            my $e;
            while (($e = index($c->{buf}, "\r\n")) < 0) {
                $c->fill or die "connection to $c->{port} closed in a chunk\n";
            }
            my $len = hex substr($c->{buf}, 0, $e);
            while (length $c->{buf} < $e + 2 + $len + 2) {
                $c->fill or die "connection to $c->{port} closed in a chunk\n";
            }
            $data .= substr($c->{buf}, $e + 2, $len);
            substr($c->{buf}, 0, $e + 2 + $len + 2) = '';
            last unless $len;
        }
    } else {
        1 while $c->fill;
        $data = $c->{buf};
        $c->{buf} = '';
        delete $c->{s};
    }

    delete $c->{s} if $head =~ /^Connection:\s*close/mi;
    return ($status, $head, $data);
}

package C1Bench;

# a response: (status, headers, body, ended) with the body de-chunked;
# ended: the body arrived whole (its last chunk, its Content-Length, or
# none needed: 204, 304)
sub parse_response {
    my ($res) = @_;
    my $i = index($res, "\r\n\r\n");
    return (0, '', '', 0) if $i < 0;
    my $head = substr($res, 0, $i);
    my $rest = substr($res, $i + 4);
    my ($status) = $head =~ m{^HTTP/1\.1 (\d+)};

    if ($head =~ /^Transfer-Encoding: chunked\r?$/mi) {
        my $body = '';
        while ($rest =~ /\A([0-9a-fA-F]+)\r\n/) {
            my $len = hex $1;
            my $at = length($1) + 2;
            return ($status, $head, $body, 0)
                if length($rest) < $at + $len + 2;
            return ($status, $head, $body, substr($rest, $at, 2) eq "\r\n")
                if $len == 0;
            $body .= substr($rest, $at, $len);
            $rest = substr($rest, $at + $len + 2);
        }
        return ($status, $head, $body, 0);
    }

    my ($len) = $head =~ /^Content-Length: (\d+)\r?$/mi;
    $len //= 0 if $status && ($status == 204 || $status == 304);
    return ($status, $head, $rest, defined $len && length($rest) == $len);
}

# keeps the exit status: stop()'s system() would set $? to 0
END {
    local $?;
    stop($_) for keys %started;
}

1;
