package C1Bench;

# What the benchmarks share: nginx instances of their own (a mock C1 with
# Lua, an edge with the module) under build/bench, and /proc readings.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use Time::HiRes qw(sleep);

our $Top = abs_path(dirname(__FILE__) . '/../..');
our $Root = "$Top/build/bench";
our $Nginx = $ENV{NGINX} || '/usr/sbin/nginx';
our $Module = "$Top/build/ngx_http_c1_module.so";
our $Lua = "load_module /usr/lib/nginx/modules/ndk_http_module.so;\n"
    . "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;\n";

my %started;

sub fixture {
    my ($name) = @_;
    my $f = abs_path("$Top/../shared/fixtures/c1-samples/$name.c1.json");
    die "no fixture $name in ../shared/fixtures/c1-samples\n"
        unless $f && -f $f;
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

sub fds {
    my ($pid) = @_;
    opendir my $dh, "/proc/$pid/fd" or return 0;
    return scalar grep { !/^\./ } readdir $dh;
}

sub cpu_s {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my @f = split ' ', (<$fh> =~ s/^.*\) //r);
    return ($f[11] + $f[12]) / 100;    # utime + stime, in clock ticks
}

END { stop($_) for keys %started }

1;
