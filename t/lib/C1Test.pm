package C1Test;

# Shared parts of the Test::Nginx suite: the mock C1 upstream of C1Mock,
# added to every test block's server, and default checks.

use strict;
use warnings;

use Test::Nginx::Socket ();
use C1Mock;

our $StreamText = $C1Mock::StreamText;

sub completion { C1Mock::completion(@_) }

Test::Nginx::Socket::add_block_preprocessor(sub {
    my $block = shift;

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
