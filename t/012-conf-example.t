# conf.example is a complete configuration that nginx -t accepts.
#
# nginx resolves api.thesys.dev when it reads the upstream block; this
# machine may have no DNS, so the check runs in a mount namespace of its
# own where /etc/hosts names it (needs root and unshare; skipped without).
# Its tool (c1_tool get_planets) reads its schema at nginx -t from
# /etc/nginx/c1-tools/, where an operator puts the project's
# examples/tools/: in that namespace /etc/nginx is a copy of this
# machine's with them there.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Copy qw(copy);
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

system('cp', '-a', '/etc/nginx', "$dir/etc-nginx") == 0
    or BAIL_OUT('cannot copy /etc/nginx');
-d "$dir/etc-nginx/c1-tools" or mkdir "$dir/etc-nginx/c1-tools" or die $!;
for my $f ('get_planets.schema.json', 'planets.json') {
    copy("examples/tools/$f", "$dir/etc-nginx/c1-tools/$f") or die "$f: $!";
}
my $mounts = "mount --bind $dir/hosts /etc/hosts"
           . " && mount --bind $dir/etc-nginx /etc/nginx";

my $out = `unshare --mount sh -c "$mounts && $nginx -t -c $conf $g" 2>&1`;

is($? >> 8, 0, 'nginx -t accepts conf.example') or diag($out);
like($out, qr/test is successful/, 'nginx says the test is successful');

# the fleet's variant it describes: the threads in Redis, under the same
# name, in place of the zone (nginx -t contacts no Redis)
open my $in, '<', $conf or die $!;
my $text = do { local $/; <$in> };
close $in;
my ($redis) = $text =~ /^    #     (c1_history_redis name=threads\n(?:    #\s+\S.*\n)*?    #\s+.*;)\n/m
    or BAIL_OUT('conf.example no longer shows c1_history_redis');
$redis =~ s/^    #     //mg;
my $fleet = $text;
ok($fleet =~ s/^    c1_history_zone zone=threads:\S+.*;$/    $redis/m,
   'conf.example: the zone line the Redis one replaces');

# and the token budgets in that Redis (store= names the Redis store)
my ($tokens) = $text =~ /^    #     (c1_limit_tokens_zone zone=tokens:\S+ store=threads;)$/m
    or BAIL_OUT('conf.example no longer shows c1_limit_tokens_zone store=');
ok($fleet =~ s/^    c1_limit_tokens_zone zone=tokens:\S+;$/    $tokens/m,
   'conf.example: the c1_limit_tokens_zone line the store= one replaces');
open my $outf, '>', "$dir/fleet.conf" or die $!;
print $outf $fleet;
close $outf;

$out = `unshare --mount sh -c "$mounts && $nginx -t -c $dir/fleet.conf $g" 2>&1`;
is($? >> 8, 0, 'nginx -t accepts conf.example with its c1_history_redis '
             . 'and c1_limit_tokens_zone store=')
    or diag($out);

done_testing();
