package C1Store;

# The thread-store tests against either backend (issue 15). Without
# C1_STORE, or with C1_STORE=zone, nothing changes: a test's
# c1_history_zone is a shared memory zone. With C1_STORE=redis every
#
#   c1_history_zone zone=NAME:SIZE [max_messages=N] [inactive=T];
#
# a test configures becomes
#
#   c1_history_redis name=NAME server=unix:SOCK prefix=c1:TAG:
#                    [max_messages=N] [inactive=T];
#
# against one redis-server (C1Redis, t/servroot-redis-store-FILE) started
# for the test file when the first config needs it and killed at its end.
# TAG is new for every Test::Nginx block and every C1Nginx start, so that
# no block sees another's threads (as a zone, gone with its nginx).
#
#   C1Store::redis(), C1Store::zone()   which backend this run uses
#   C1Store::rewrite($http, $tag)       the http-level config for it
#   C1Store::server()                   the C1Redis (started on first use)
#   C1Store::zone_only($why)            for client-driven files: true with
#                                       a zone; with Redis, false after a
#                                       skip of one test saying why
#
# Test::Nginx files get the rewrite of http_config from C1Test's block
# preprocessor, and a block with `--- zone_only: WHY` (what only a zone
# has: its size, its eviction, its own messages and metrics) is skipped
# under Redis with that reason; C1Nginx::start rewrites the http snippet of
# the client-driven files.

use strict;
use warnings;

use File::Basename qw(basename);
use Test::More ();

our $Kind = lc($ENV{C1_STORE} // '') || 'zone';
die "C1_STORE is \"zone\" or \"redis\", not \"$Kind\"\n"
    unless $Kind eq 'zone' || $Kind eq 'redis';

my $Redis;
my $Seq = 0;

sub redis { $Kind eq 'redis' }
sub zone { $Kind eq 'zone' }

sub server {
    return $Redis if $Redis;
    require C1Redis;
    my $name = basename($0);
    $name =~ s/\.t\z//;
    $name =~ s/[^\w-]/_/g;
    $Redis = C1Redis->start(name => "store-$name");
    return $Redis;
}

sub _redis_directive {
    my ($params, $tag) = @_;
    my ($name, @rest);
    for my $p (split ' ', $params) {
        if ($p =~ /\Azone=([^:]+)(?::.*)?\z/) {
            $name = $1;
        } elsif ($p =~ /\A(?:max_messages|inactive)=/) {
            push @rest, $p;
        } else {
            die "C1Store: c1_history_zone parameter \"$p\" has no Redis "
                . "equivalent\n";
        }
    }
    die "C1Store: c1_history_zone without zone=: \"$params\"\n"
        unless defined $name;
    return join ' ', 'c1_history_redis', "name=$name",
        'server=' . server()->address, "prefix=c1:$tag:", @rest;
}

# the config text for this run's backend; $tag defaults to a new one
sub rewrite {
    my ($text, $tag) = @_;
    return $text unless redis() && defined $text;
    $tag //= 's' . ++$Seq;
    $text =~ s{\bc1_history_zone\b([^;]*);}
              {_redis_directive($1, $tag) . ';'}ge;
    return $text;
}

sub zone_only {
    my $why = shift;
    return 1 if zone();
    Test::More::note("zone only, skipped with C1_STORE=redis: $why");
    SKIP: { Test::More::skip("zone only (C1_STORE=redis): $why", 1) }
    return 0;
}

# a Test::Nginx block: its http_config for this backend, or skipped when
# it tests what only a zone has
sub block {
    my $block = shift;
    return unless redis();
    if (defined(my $why = $block->zone_only)) {
        $why =~ s/\s+\z//;
        $why = 'what only a zone has' if $why eq '';
        SKIP: {
            Test::More::skip("$0 " . $block->name
                             . " - zone only (C1_STORE=redis): $why", 1);
        }
        $block->set_value('SKIP', 1);
        return;
    }
    my $http = $block->http_config;
    if (defined $http && $http =~ /\bc1_history_zone\b/) {
        $block->set_value('http_config', rewrite($http, 'b' . ++$Seq));
    }
}

1;
