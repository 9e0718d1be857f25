# The project on its own, where a new user puts it: a copy of the checkout
# (its files as git sees them now, tracked and new ones not ignored; the
# module and the frontend already built) in a fresh directory of mode 0700
# with nothing beside it.
#
# - The demo of make run (util/run-conf's nginx.conf) serves its page and
#   its mock C1 answers from there, through the demo's tool (its schema and
#   the planets file of examples/tools): as root, nginx's default worker
#   user (nobody) could not read such a directory (a 500 for the page, the
#   mock's Lua file not found).
# - What the benchmarks, the soak and the fuzzing read is in the project:
#   no ../shared beside the copy, and each finds its component trees.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Copy qw(copy);
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(sleep time);

my $top = abs_path('.');
my $port = $ENV{C1_TEST_PORT} || 1990;
my $nginx = $ENV{TEST_NGINX_BINARY} || 'nginx';

for my $need ('examples/chat/dist/index.html', 'build/ngx_http_c1_module.so') {
    BAIL_OUT("$need is missing: run make test") unless -e $need;
}

my $ls = 'ls-files -z --cached --others --exclude-standard';
my @files = split /\0/, `git -C '$top' $ls 2>/dev/null`;
plan skip_all => 'not a git checkout: nothing to copy' unless @files;

my $dir = tempdir('c1-standalone-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0700, $dir or die $!;
my $repo = "$dir/repo";

# the tracked files as they are in the work tree, the built module and
# frontend
for my $f (@files) {
    next unless -f "$top/$f";
    make_path(dirname("$repo/$f"));
    copy("$top/$f", "$repo/$f") or die "$f: $!";
    chmod((stat "$top/$f")[2] & 07777, "$repo/$f");
}
make_path("$repo/build");
copy("$top/build/ngx_http_c1_module.so", "$repo/build/") or die $!;
system('cp', '-a', "$top/examples/chat/dist", "$repo/examples/chat/") == 0
    or die 'cannot copy examples/chat/dist';

is((stat $dir)[2] & 0777, 0700, 'the copy is in a directory of mode 0700');
ok(!-e "$dir/shared", 'no ../shared beside the copy');

# ---- the demo of make run ----------------------------------------------

my $run = "$repo/build/run";
make_path($run);
{
    local $ENV{C1_MOCK_SPEED} = 50;
    local $ENV{THESYS_API_KEY} = '';
    is(system("'$repo/util/run-conf' $port '$repo' > '$run/nginx.conf'"), 0,
       'util/run-conf writes the demo config');
}

is(system("$nginx -c '$run/nginx.conf' > '$run/start.log' 2>&1"), 0,
   'the demo nginx starts') or diag(`cat '$run/start.log'`);

END {
    system("$nginx -c '$run/nginx.conf' -s stop > /dev/null 2>&1")
        if $run && -e "$run/nginx.pid";
    for (1 .. 100) { last unless $run && -e "$run/nginx.pid"; sleep 0.05 }
}

for (1 .. 100) {
    last if IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port");
    sleep 0.05;
}

sub request {
    my ($req) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 10)
        or return ('', '');
    print $s $req;
    my $res = '';
    my $until = time + 10;
    while (time < $until) {
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $res .= $buf;
    }
    my ($status) = $res =~ m{^HTTP/1\.1 (\d+)};
    return ($status // '', $res);
}

my ($status, $res) = request("GET / HTTP/1.1\r\nHost: localhost\r\n"
                             . "Connection: close\r\n\r\n");
is($status, 200, 'the page is served');
like($res, qr/<div id="root">/, 'it is the frontend\'s index.html');

my $body = '{"prompt":"a table of the planets"}';
($status, $res) = request("POST /api/chat HTTP/1.1\r\nHost: localhost\r\n"
    . "Content-Type: application/json\r\nConnection: close\r\n"
    . "Content-Length: " . length($body) . "\r\n\r\n$body");
is($status, 200, 'the mock C1 answers a prompt');
my (undef, $rest) = split /\r\n\r\n/, $res, 2;
$rest //= '';
my ($content, $ended) = ('', 0);
while ($rest =~ s/\A([0-9a-f]+)\r\n//i) {
    my $len = hex $1;
    if ($len == 0) {
        $ended = $rest eq "\r\n";
        last;
    }
    $content .= substr($rest, 0, $len, '');
    $rest =~ s/\A\r\n// or last;
}
ok($ended, 'the stream ends with its last chunk');
like($content, qr/\A<thinkitem ephemeral="true"><thinkitemtitle>Looking up the planets<\/thinkitemtitle><thinkitemcontent>get_planets<\/thinkitemcontent><\/thinkitem><content thesys="true">/,
     "the demo's tool ran first (its think item), then the answer");
like($content, qr/<content thesys="true">[^<]*4222\.6[^<]*Neptune[^<]*<\/content>\z/s,
     "the answer is the table of the planets, whole, with the tool's rows "
     . '(examples/tools/planets.json, read by the workers)');

my $log = do { local (@ARGV, $/) = "$run/error.log"; <> } // '';
unlike($log, qr/Permission denied|\[(?:alert|crit|emerg)\]/,
       'no "Permission denied", no alert in the error log');

# ---- what the benchmarks, the soak, the fuzzing read --------------------

for my $cmd (['bench/compare.pl', '--dry-run', '--no-pin'],
             ['bench/soak.pl', '--dry-run'],
             ['bench/stream-bench.pl', '--dry-run'],
             ['bench/tools-bench.pl', '--dry-run'])
{
    my $out = `cd '$repo' && perl @$cmd 2>&1`;
    is($?, 0, "$cmd->[0] finds what it reads in the project alone")
        or diag($out);
    like($out, qr{\Q$repo\E/examples/mock/trees/\w+\.json},
         "$cmd->[0] answers with a tree of examples/mock/trees");
}

my $corpus = "$dir/corpus";
make_path($corpus);
for my $name (qw(answer relay request scan)) {
    is(system("cd '$repo' && perl util/fuzz-seeds $name examples/mock/trees "
              . "'$corpus'"), 0,
       "util/fuzz-seeds $name from the project's trees");
}
my @seeds = glob "$corpus/tree-*";
cmp_ok(scalar @seeds, '>=', 8, 'a fuzzing seed from each of the trees');
ok((-s "$corpus/tree-dashboard" // 0) > 15000,
   'among them the dashboard (15 KB)');

done_testing();
