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


# a thread's messages as GET answers them, ids made by the module: the
# JSON without ids, as a pattern with a UUID id in each message
our $Uuid = '[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}';

sub with_ids {
    my ($json) = @_;
    my @parts = split /\{"role":/, $json, -1;
    return '^' . join('\{"id":"' . $Uuid . '","role":',
                      map { quotemeta } @parts) . '$';
}

1;
