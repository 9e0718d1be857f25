package C1Redis;

# A real Redis (Debian's redis-server) for the tests of the Redis thread
# store: each one in a directory of its own (t/servroot-redis-NAME), on a
# unix socket (the default) or a loopback port, without persistence
# (--save '' --appendonly no, unless asked), killed at the end of the test
# file whatever happens (END, and SIGINT/SIGTERM run END too).
#
#   my $r = C1Redis->start(name => '034');            # unix socket
#   my $r = C1Redis->start(name => 'b', port => C1Redis::port(1),
#                          password => 's3cret', maxmemory => '1mb');
#   $r->address          "unix:/.../redis.sock" or "127.0.0.1:PORT", as
#                        c1_history_redis's server= takes it
#   $r->cli(@words)      one redis-cli command, its output (raw: one line
#                        per element), chomped; a list of lines in list
#                        context
#   $r->keys($pattern)   sorted key names (their number in scalar context)
#   $r->pttl($key), $r->type($key), $r->dbsize
#   $r->layout($pattern) "KEY TYPE PTTL" lines, sorted (one EVAL)
#   $r->flushall
#   $r->pause, $r->resume          SIGSTOP, SIGCONT
#   $r->kill                       SIGKILL (and reaps it)
#   $r->stop                       SIGTERM (SIGKILL after 5 s)
#   $r->restart(%changes)          stop (if running), start again on the
#                                  same address and directory
#   $r->log                        its log file's text
#   $r->cli_command                the redis-cli command line (a string for
#                                  a shell, e.g. for a Lua io.popen)
#
#   $r->locations                  Lua locations for a test's server (a
#                                  Test::Nginx block): GET /redis?a=W&a=W...
#                                  runs one redis-cli command of those
#                                  words and answers its output (&sort=1:
#                                  its lines sorted);
#                                  GET /redis/layout?p=PATTERN answers
#                                  layout(PATTERN). Blocking (io.popen):
#                                  for tests only.
#
# Ports: port(N) is C1_REDIS_PORT (else C1_TEST_PORT + 10, else 2000) + N.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Path qw(make_path remove_tree);
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

our $Server = $ENV{C1_REDIS_SERVER} || '/usr/bin/redis-server';
our $Cli = $ENV{C1_REDIS_CLI} || '/usr/bin/redis-cli';

my %Live;    # pid => the object, for END
my $Owner = $$;

sub port {
    my $n = shift // 0;
    my $base = $ENV{C1_REDIS_PORT}
        || ($ENV{C1_TEST_PORT} ? $ENV{C1_TEST_PORT} + 10 : 2000);
    return $base + $n;
}

sub start {
    my ($class, %o) = @_;
    die "C1Redis->start needs a name" unless defined $o{name};
    die "no $Server (apt-get install redis-server)\n" unless -x $Server;
    my $dir = $o{dir} || abs_path('t') . "/servroot-redis-$o{name}";
    my $self = bless { %o, dir => $dir }, $class;
    $self->{sock} = "$dir/redis.sock" unless $o{port};
    _kill_leftover($dir);
    remove_tree($dir);
    make_path($dir);
    $self->_spawn;
    return $self;
}

# a redis-server of an earlier run that died without its END (kill -9)
sub _kill_leftover {
    my $dir = shift;
    open my $fh, '<', "$dir/pid" or return;
    chomp(my $pid = <$fh> // '');
    close $fh;
    return unless $pid =~ /^\d+$/;
    open my $c, '<', "/proc/$pid/cmdline" or return;
    my $cmd = <$c> // '';
    return unless $cmd =~ /redis-server/;
    CORE::kill 'CONT', $pid;
    CORE::kill 'KILL', $pid;
    for (1 .. 100) { last unless CORE::kill 0, $pid; sleep 0.02 }
}

sub _args {
    my $self = shift;
    my @a = ('--dir', $self->{dir}, '--daemonize', 'no',
             '--logfile', "$self->{dir}/redis.log",
             '--save', '', '--appendonly', $self->{appendonly} ? 'yes' : 'no',
             '--bind', '127.0.0.1');
    if ($self->{port}) {
        push @a, '--port', $self->{port};
    } else {
        push @a, '--port', 0, '--unixsocket', $self->{sock},
                 '--unixsocketperm', '777';
    }
    push @a, '--requirepass', $self->{password} if defined $self->{password};
    push @a, '--maxmemory', $self->{maxmemory} if $self->{maxmemory};
    push @a, '--maxmemory-policy', $self->{policy} if $self->{policy};
    push @a, @{ $self->{extra} } if $self->{extra};
    return @a;
}

sub _spawn {
    my $self = shift;
    my @args = $self->_args;
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$self->{dir}/stdout";
        open STDERR, '>&', \*STDOUT;
        # its own process group: a signal to the test's group is not its
        setpgrp(0, 0);
        exec($Server, @args) or POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    $Live{$pid} = $self;
    open my $fh, '>', "$self->{dir}/pid" or die $!;
    print $fh "$pid\n";
    close $fh;

    # redis-cli's "Could not connect" while it starts: not on the terminal
    open my $stderr, '>&', \*STDERR or die $!;
    open STDERR, '>', '/dev/null' or die $!;
    my $up = $self->_wait_up(10);
    open STDERR, '>&', $stderr or die $!;
    return $self if $up > 0;
    die "redis-server exited at start:\n" . $self->log
        . _slurp("$self->{dir}/stdout") if $up < 0;
    die "redis-server does not answer PING at " . $self->address . "\n"
        . $self->log;
}

sub _wait_up {
    my ($self, $wait) = @_;
    my $pid = $self->{pid};
    my $deadline = time() + $wait;
    while (time < $deadline) {
        if (waitpid($pid, WNOHANG) == $pid) {
            delete $Live{$pid};
            $self->{pid} = undef;
            return -1;
        }
        my $pong = eval { $self->cli('PING') } // '';
        return 1 if $pong eq 'PONG';
        sleep 0.02;
    }
    return 0;
}

sub address {
    my $self = shift;
    return $self->{port} ? "127.0.0.1:$self->{port}" : "unix:$self->{sock}";
}

sub pid { $_[0]{pid} }
sub dir { $_[0]{dir} }
sub password { $_[0]{password} }

sub _cli_args {
    my $self = shift;
    return $self->{port} ? ('-h', '127.0.0.1', '-p', $self->{port})
                         : ('-s', $self->{sock});
}

sub cli_command {
    my $self = shift;
    my $pw = defined $self->{password}
        ? 'REDISCLI_AUTH=' . _sh($self->{password}) . ' ' : '';
    return $pw . join ' ', map { _sh($_) } $Cli, $self->_cli_args;
}

sub _sh {
    my $s = shift;
    $s =~ s/'/'\\''/g;
    return "'$s'";
}

sub cli {
    my ($self, @words) = @_;
    local %ENV = %ENV;
    $ENV{REDISCLI_AUTH} = $self->{password} if defined $self->{password};
    open my $fh, '-|', $Cli, $self->_cli_args, @words
        or die "cannot run $Cli: $!";
    local $/;
    my $out = <$fh> // '';
    close $fh;
    $out =~ s/\n\z//;
    return wantarray ? split(/\n/, $out) : $out;
}

sub keys {
    my ($self, $pattern) = @_;
    my @k = sort grep { length } $self->cli('KEYS', $pattern // '*');
    return wantarray ? @k : scalar @k;
}

sub pttl { $_[0]->cli('PTTL', $_[1]) }
sub type { $_[0]->cli('TYPE', $_[1]) }
sub dbsize { $_[0]->cli('DBSIZE') }
sub flushall { $_[0]->cli('FLUSHALL') }

our $LayoutScript = <<'_EOS_';
local r = {}
for _, k in ipairs(redis.call("KEYS", ARGV[1])) do
    r[#r + 1] = k .. " " .. redis.call("TYPE", k).ok .. " "
                .. redis.call("PTTL", k)
end
table.sort(r)
return r
_EOS_

sub layout {
    my ($self, $pattern) = @_;
    my @l = grep { length } $self->cli('EVAL', $LayoutScript, 0,
                                       $pattern // '*');
    return wantarray ? @l : join("\n", @l);
}

our $LuaLocations = <<'_EOC_';
    location = /redis {
        content_by_lua_block {
            local cli = [==[@CLI@]==]
            local a = ngx.req.get_uri_args().a or {}
            if type(a) ~= "table" then a = { a } end
            local words = {}
            for _, w in ipairs(a) do
                words[#words + 1] = "'" .. tostring(w):gsub("'", "'\\''") .. "'"
            end
            local f = io.popen(cli .. " " .. table.concat(words, " ") .. " 2>&1")
            local out = f:read("*a")
            f:close()
            out = out:gsub("\n$", "")
            if ngx.var.arg_sort then
                local l = {}
                for line in out:gmatch("[^\n]+") do l[#l + 1] = line end
                table.sort(l)
                out = table.concat(l, "\n")
            end
            ngx.print(out)
        }
    }

    location = /redis/layout {
        content_by_lua_block {
            local cli = [==[@CLI@]==]
            local script = [==[@LAYOUT@]==]
            local p = ngx.var.arg_p and ngx.unescape_uri(ngx.var.arg_p) or "*"
            local f = io.popen(cli .. " EVAL '" .. script .. "' 0 '"
                               .. p:gsub("'", "'\\''") .. "' 2>&1")
            local out = f:read("*a")
            f:close()
            ngx.print((out:gsub("\n$", "")))
        }
    }
_EOC_

sub locations {
    my $self = shift;
    my $l = $LuaLocations;
    my $cli = $self->cli_command;
    $l =~ s/\@CLI\@/$cli/g;
    $l =~ s/\@LAYOUT\@/$LayoutScript/g;
    return $l;
}

sub running {
    my $self = shift;
    return 0 unless $self->{pid};
    return 0 if waitpid($self->{pid}, WNOHANG) == $self->{pid};
    return CORE::kill 0, $self->{pid};
}

sub pause { CORE::kill 'STOP', $_[0]{pid} }
sub resume { CORE::kill 'CONT', $_[0]{pid} }

sub _reap {
    my ($self, $wait) = @_;
    my $pid = $self->{pid} or return 1;
    my $deadline = time() + $wait;
    while (time < $deadline) {
        my $w = waitpid($pid, WNOHANG);
        if ($w == $pid || $w == -1) {
            delete $Live{$pid};
            $self->{pid} = undef;
            return 1;
        }
        sleep 0.01;
    }
    return 0;
}

sub kill {
    my $self = shift;
    return unless $self->{pid};
    CORE::kill 'KILL', $self->{pid};
    $self->_reap(5);
}

sub stop {
    my $self = shift;
    return unless $self->{pid};
    CORE::kill 'CONT', $self->{pid};
    CORE::kill 'TERM', $self->{pid};
    $self->kill unless $self->_reap(5);
}

sub restart {
    my ($self, %changes) = @_;
    $self->stop if $self->{pid};
    @$self{ CORE::keys %changes } = values %changes;
    $self->_spawn;
    return $self;
}

sub log { _slurp("$_[0]{dir}/redis.log") }

sub _slurp {
    open my $fh, '<', shift or return '';
    local $/;
    return <$fh> // '';
}

# every redis-server this process started goes with it
sub _cleanup {
    return unless $$ == $Owner;
    for my $self (values %Live) {
        next unless $self->{pid};
        CORE::kill 'CONT', $self->{pid};
        CORE::kill 'KILL', $self->{pid};
        $self->_reap(5);
    }
}

for my $sig (qw(INT TERM HUP)) {
    $SIG{$sig} = sub { _cleanup(); exit 128 + 2 }
        if !$SIG{$sig} || $SIG{$sig} eq 'DEFAULT';
}

END { my $rc = $?; _cleanup(); $? = $rc }

1;
