# The protocol units' own tests (t/unit/c1_unit.c, built by make), twice:
# built as it is, and built without SSE2 (the portable path of
# ngx_http_c1_scan.c).  TAP, numbered across both.

use strict;
use warnings;

my @bins = $ENV{C1_UNIT_BIN} ? ($ENV{C1_UNIT_BIN})
                             : ('build/c1_unit', 'build/c1_unit_portable');
my $n = 0;

$| = 1;

for my $bin (@bins) {
    if (!-x $bin) {
        $n++;
        print "not ok $n - $bin is not built: run make test\n";
        next;
    }

    open my $fh, '-|', $bin or die "cannot run $bin: $!";

    while (my $line = <$fh>) {
        next if $line =~ /^1\.\.\d+$/;

        if ($line =~ /^(not )?ok \d+ - (.*)$/s) {
            $n++;
            print $1 // '', "ok $n - $bin: $2";
            next;
        }

        print $line;
    }

    close $fh;

    if ($? != 0) {
        $n++;
        print "not ok $n - $bin exits with status ", $? >> 8, "\n";
    }
}

print "1..$n\n";
