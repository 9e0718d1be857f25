package C1Redis;

# A redis-server of a benchmark's own (Debian's redis-server), on a unix
# socket under build/bench/NAME, no TCP port, and a small client for it:
#
#   my $r = C1Redis->start('hist-redis');             # --save '' no AOF
#   my $r = C1Redis->start('soak-redis', aof => 1);   # appendonly yes
#       (aof => 'always': appendfsync always, no acknowledged write lost
#       when the server is killed; else everysec)
#   $r->{sock}                  the socket's path (unix:... for nginx)
#   $r->cmd('INFO', 'memory')   one command, its reply (a string, a
#                               number, an array ref; an error dies)
#   $r->info('used_memory')     one field of INFO
#   $r->crash('KILL'); $r->restart;   a crash and a start on the same files
#   $r->stop                    SHUTDOWN NOSAVE, waits for the process
#
# Every server started is stopped when the script ends.

use strict;
use warnings;

use File::Path qw(make_path remove_tree);
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);
use Time::HiRes qw(time sleep);

our $Server = $ENV{REDIS_SERVER} || '/usr/bin/redis-server';
my %started;

sub start {
    my ($class, $name, %o) = @_;
    die "no $Server (apt-get install redis-server)\n" unless -x $Server;
    my $dir = "$C1Bench::Root/$name";
    my $r = bless { name => $name, dir => $dir, sock => "$dir/redis.sock",
                    aof => $o{aof} || 0 }, $class;
    $r->stop if -e "$dir/redis.pid";
    remove_tree($dir);
    make_path($dir);
    $r->launch;
    $started{$r} = $r;
    return $r;
}

sub launch {
    my ($r) = @_;
    my @aof = $r->{aof}
        ? ('--appendonly', 'yes', '--appendfsync',
           $r->{aof} eq 'always' ? 'always' : 'everysec')
        : ('--appendonly', 'no');
    system($Server, '--port', '0', '--unixsocket', $r->{sock},
           '--unixsocketperm', '777', '--dir', $r->{dir}, '--save', '',
           @aof, '--daemonize', 'yes', '--pidfile', "$r->{dir}/redis.pid",
           '--logfile', "$r->{dir}/redis.log") == 0
        or die "cannot start redis-server in $r->{dir}\n";
    my $until = time + 10;
    while (time < $until) {
        my $pong = eval { $r->cmd('PING') };
        if (defined $pong && $pong eq 'PONG') {
            open my $fh, '<', "$r->{dir}/redis.pid" or die $!;
            chomp($r->{pid} = <$fh>);
            return;
        }
        sleep 0.02;
    }
    die "redis-server in $r->{dir} does not answer PING\n";
}

sub pid { $_[0]{pid} }

# is PID there (a zombie, nobody reaping it, is not)?
sub alive {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my $stat = <$fh> // '';
    return $stat !~ /^\d+ \(.*\) [ZX] /;
}

# crash(SIGNAL): the server goes away as it would crash; waits until gone
sub crash {
    my ($r, $sig) = @_;
    delete $r->{s};
    my $pid = $r->{pid} or return;
    kill $sig, $pid;
    for (1 .. 500) { last unless alive($pid); sleep 0.01 }
    delete $r->{pid};
}

sub restart { my ($r) = @_; delete $r->{s}; $r->launch }

sub stop {
    my ($r) = @_;
    my $pid = $r->{pid};
    if (!$pid && open my $fh, '<', "$r->{dir}/redis.pid") {
        chomp($pid = <$fh>);
    }
    return unless $pid && alive($pid);
    eval { $r->cmd('SHUTDOWN', 'NOSAVE') };
    delete $r->{s};
    for (1 .. 500) { last unless alive($pid); sleep 0.01 }
    kill 'KILL', $pid if alive($pid);
    delete $r->{pid};
}

sub connect {
    my ($r) = @_;
    $r->{s} = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $r->{sock})
        or die "connect to $r->{sock}: $!\n";
    $r->{buf} = '';
}

sub cmd {
    my ($r, @a) = @_;
    $r->connect unless $r->{s};
    my $req = '*' . @a . "\r\n"
        . join('', map { '$' . length($_) . "\r\n$_\r\n" } @a);
    my $off = 0;
    while ($off < length $req) {
        my $n = syswrite($r->{s}, $req, length($req) - $off, $off);
        if (!defined $n) { delete $r->{s}; die "write to redis: $!\n" }
        $off += $n;
    }
    return $r->reply;
}

sub line {
    my ($r) = @_;
    my $i;
    while (($i = index($r->{buf}, "\r\n")) < 0) { $r->fill }
    my $l = substr($r->{buf}, 0, $i);
    substr($r->{buf}, 0, $i + 2) = '';
    return $l;
}

sub fill {
    my ($r) = @_;
    my $n = sysread($r->{s}, $r->{buf}, 65536, length $r->{buf});
    if (!$n) { delete $r->{s}; die "redis closed the connection\n" }
}

sub reply {
    my ($r) = @_;
    my $l = $r->line;
    my ($t, $v) = (substr($l, 0, 1), substr($l, 1));
    return $v if $t eq '+';
    return $v + 0 if $t eq ':';
    die "redis: $v\n" if $t eq '-';
    if ($t eq '$') {
        return undef if $v < 0;
        $r->fill while length $r->{buf} < $v + 2;
        my $s = substr($r->{buf}, 0, $v);
        substr($r->{buf}, 0, $v + 2) = '';
        return $s;
    }
    if ($t eq '*') {
        return undef if $v < 0;
        return [map { $r->reply } 1 .. $v];
    }
    die "redis: a reply of type \"$t\"\n";
}

sub info {
    my ($r, $field) = @_;
    my $s = $r->cmd('INFO');
    return $s =~ /^\Q$field\E:(\S+)/m ? $1 : undef;
}

END {
    local $?;
    $_->stop for values %started;
}

1;
