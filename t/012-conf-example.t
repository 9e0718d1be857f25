# conf.example is a complete configuration that nginx -t accepts.
#
# nginx resolves api.thesys.dev when it reads the upstream block; this
# machine may have no DNS, so the check runs in a mount namespace of its
# own where /etc/hosts names it (needs root and unshare; skipped without).

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Temp qw(tempdir);
use Test::More;

my $nginx = $ENV{TEST_NGINX_BINARY} || 'nginx';
my $conf = abs_path('conf.example');

plan skip_all => 'needs root for a private /etc/hosts' if $> != 0;
plan skip_all => 'needs unshare (util-linux)'
    if system('command -v unshare >/dev/null') != 0;

my ($module) = grep { /ngx_http_c1_module\.so$/ }
               split ' ', ($ENV{TEST_NGINX_LOAD_MODULES} || '');

# with the Debian package installed, modules-enabled loads it already
my $loaded = `grep -ls ngx_http_c1_module /etc/nginx/modules-enabled/* 2>/dev/null`;
my $g = ($module && !$loaded) ? "-g 'load_module $module;'" : '';

my $dir = tempdir(CLEANUP => 1);
open my $fh, '>', "$dir/hosts" or die $!;
print $fh "127.0.0.1 localhost\n127.0.0.1 api.thesys.dev\n";
close $fh;

my $out = `unshare --mount sh -c "mount --bind $dir/hosts /etc/hosts && $nginx -t -c $conf $g" 2>&1`;

is($? >> 8, 0, 'nginx -t accepts conf.example') or diag($out);
like($out, qr/test is successful/, 'nginx says the test is successful');

done_testing();
