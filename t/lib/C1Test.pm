package C1Test;

# Shared parts of the Test::Nginx suite: the mock C1 upstream of C1Mock,
# added to every test block's server, default checks, and the thread
# store of the run (C1Store: C1_STORE=redis).

use strict;
use warnings;

use Test::Nginx::Socket ();
use C1Mock;
use C1Store;

our $StreamText = $C1Mock::StreamText;

sub completion { C1Mock::completion(@_) }

Test::Nginx::Socket::add_block_preprocessor(sub {
    my $block = shift;

    # C1_STORE=redis: the block's zones become Redis stores, or the block
    # is skipped when it is --- zone_only (see C1Store)
    C1Store::block($block);
    return if defined $block->SKIP;

    if (defined $block->config) {
        $block->set_value("config", $block->config . $C1Mock::MockLocations);
    }

    if (!defined $block->no_error_log && !defined $block->must_die) {
        $block->set_value("no_error_log", "[alert]\n[crit]\n[emerg]\n");
    }
});


# a thread's messages with ids made by the module (see C1Mock)
our $Uuid = $C1Mock::Uuid;

sub with_ids { C1Mock::with_ids(@_) }

1;
