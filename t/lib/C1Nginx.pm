package C1Nginx;

# A real nginx for the tests that drive it with real clients (node's
# openai package, a browser) rather than through Test::Nginx: writes a
# config around an http-level snippet, starts nginx, stops it at the end.
# Uses the same environment as Test::Nginx: TEST_NGINX_BINARY,
# TEST_NGINX_LOAD_MODULES, TEST_NGINX_WORKER_USER (else, as root, the
# workers run as root, as with Test::Nginx: nginx's default "nobody" cannot
# read a checkout in a 0700 home); the port is C1_TEST_PORT (1990).
#
# More than one nginx at a time: C1Nginx->new(port => P, root => DIR)
# gives an instance with the same functions as methods ($n->start($http,
# %opt), $n->error_log, $n->stop, ...; $C1_TEST_PORT in its config is its
# own port); the functions called as C1Nginx::start(...) are the default
# instance's: $Port, $Root. END stops every instance.
#
# With C1_STORE=redis, each start's c1_history_zone becomes a Redis store
# of its own prefix (C1Store::rewrite).

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Path qw(make_path remove_tree);
use IO::Socket::INET;
use Time::HiRes qw(sleep);
use C1Store;

our $Port = $ENV{C1_TEST_PORT} || 1990;
our $Root = abs_path('t') . "/servroot-client";
our $Binary = $ENV{TEST_NGINX_BINARY} || 'nginx';
our $WorkerUser = $ENV{TEST_NGINX_WORKER_USER};
die "Bad value in the env TEST_NGINX_WORKER_USER: $WorkerUser\n"
    if defined $WorkerUser && $WorkerUser !~ /^\w[-\w]+(?:\s+\w[-\w]+)?$/;

my %started;    # root => the instance, while its nginx runs

sub new {
    my ($class, %o) = @_;
    die "C1Nginx->new needs a port and a root"
        unless $o{port} && $o{root};
    return bless { port => $o{port}, root => $o{root} }, $class;
}

# the instance a function was called for: a method's, or the default one
sub _self {
    my $args = shift;
    return shift @$args
        if @$args && ref $args->[0] && ref $args->[0] eq 'C1Nginx';
    return bless { port => $Port, root => $Root }, 'C1Nginx';
}

sub port { _self(\@_)->{port} }
sub root { _self(\@_)->{root} }

sub start {
    my $self = _self(\@_);
    my ($http, %opt) = @_;
    my ($Port, $Root) = @$self{qw(port root)};
    my $workers = $opt{workers} || 1;
    my $master = $opt{workers} ? 'on' : 'off';

    $self->stop;
    remove_tree($Root);
    make_path("$Root/conf", "$Root/logs", "$Root/html");

    my $modules = join '', map { "load_module $_;\n" }
                  split ' ', ($ENV{TEST_NGINX_LOAD_MODULES} || '');

    $http =~ s/\$C1_TEST_PORT/$Port/g;
    # C1_STORE=redis: its zones become Redis stores (see C1Store)
    $http = C1Store::rewrite($http);

    my $user = defined $WorkerUser ? "user $WorkerUser;\n"
             : $> == 0 ? "user root;\n" : '';

    open my $fh, '>', "$Root/conf/nginx.conf" or die $!;
    print $fh <<"_EOC_";
$modules
${user}worker_processes $workers;
daemon on;
master_process $master;
error_log logs/error.log info;
pid logs/nginx.pid;

events { worker_connections 256; }

http {
    access_log logs/access.log;
    default_type text/plain;
$http
}
_EOC_
    close $fh;

    system($Binary, '-p', "$Root/", '-c', 'conf/nginx.conf') == 0
        or die "cannot start nginx";
    $started{$Root} = $self;

    for (1 .. 100) {
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$Port");
        if ($s) {
            close $s;
            return $Port;
        }
        sleep 0.05;
    }

    die "nginx does not listen on port $Port";
}

# a graceful reload: returns once the old workers are gone
sub reload {
    my $self = _self(\@_);
    my $Root = $self->{root};
    my @old = $self->workers;
    system("$Binary -p '$Root/' -c conf/nginx.conf -s reload 2>/dev/null") == 0
        or die "cannot reload nginx";
    for (1 .. 200) {
        my %now = map { $_ => 1 } $self->workers;
        my $left = grep { $now{$_} } @old;
        return if !$left && %now;
        sleep 0.05;
    }
    die "the old workers did not go";
}

# the config as it is now, and a new one in its place (a reload reads it)
sub conf {
    my $Root = _self(\@_)->{root};
    open my $fh, '<', "$Root/conf/nginx.conf" or die $!;
    local $/;
    return <$fh>;
}

sub write_conf {
    my $Root = _self(\@_)->{root};
    my $text = shift;
    open my $fh, '>', "$Root/conf/nginx.conf" or die $!;
    print $fh $text;
    close $fh;
}

sub master {
    my $Root = _self(\@_)->{root};
    open my $fh, '<', "$Root/logs/nginx.pid" or return undef;
    chomp(my $pid = <$fh>);
    return $pid =~ /^\d+$/ ? $pid : undef;
}

# a reload the master is asked for with SIGHUP, as `nginx -s reload` does
# (which itself reads the config first and so refuses a broken one): with
# a broken config it fails; returns once the error log has a new line
# matching $expect (bounded: 10 s), or dies
sub hup {
    my $self = _self(\@_);
    my $expect = shift;
    my $before = length $self->error_log;
    kill 'HUP', $self->master or die "cannot signal the master";
    for (1 .. 200) {
        return if substr($self->error_log, $before) =~ $expect;
        sleep 0.05;
    }
    die "no $expect in the error log after a reload";
}

# kill -9 a worker; returns once the master has started its replacement
# (bounded: 10 s), or dies
sub kill_worker {
    my $self = _self(\@_);
    my $pid = shift;
    my $n = () = $self->workers;
    kill 'KILL', $pid or die "cannot kill $pid";
    for (1 .. 200) {
        my @now = $self->workers;
        return if @now == $n && !grep { $_ == $pid } @now;
        sleep 0.05;
    }
    die "no worker replaced $pid";
}

sub workers {
    my $Root = _self(\@_)->{root};
    open my $fh, '<', "$Root/logs/nginx.pid" or return ();
    chomp(my $master = <$fh>);
    return grep { /^\d+$/ } split ' ', `pgrep -P $master`;
}

sub error_log {
    my $Root = _self(\@_)->{root};
    open my $fh, '<', "$Root/logs/error.log" or return '';
    local $/;
    return <$fh>;
}

sub stop {
    my $self = _self(\@_);
    my $Root = $self->{root};
    return unless $started{$Root};
    delete $started{$Root};
    # a signal rather than `nginx -s stop`, which refuses a broken config
    my $pid = $self->master;
    if ($pid) {
        kill 'TERM', $pid;
    } else {
        system("$Binary -p '$Root/' -c conf/nginx.conf -s stop 2>/dev/null");
    }
    for (1 .. 100) {
        last unless -e "$Root/logs/nginx.pid";
        sleep 0.05;
    }
}

END { $_->stop for values %started }

1;
