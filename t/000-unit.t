# The protocol units' own tests (t/unit/c1_unit.c, built by make): TAP.

use strict;
use warnings;

my $bin = $ENV{C1_UNIT_BIN} || 'build/c1_unit';

if (!-x $bin) {
    print "1..1\nnot ok 1 - $bin is not built: run make test\n";
    exit 1;
}

exec $bin or die "cannot run $bin: $!";
