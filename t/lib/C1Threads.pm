package C1Threads;

# Patterns for the thread API's answers (issue 14), as strings for
# --- response_body_like eval (the runners match them with qr/$p/s):
#   err('code')              the module's error JSON with that code
#   thread($id, $title)      one thread object; $id undef: a made UUID v4;
#                            both literal (as they appear in the JSON)
#   page([@threads], $more)  a whole `get` answer: those threads in order,
#                            with a nextCursor when $more
#   exact($text)             exactly that text
#   any_order(@threads)      a whole last page of these threads, any order,
#                            each exactly once
# Also $Uuid and $Time (ISO 8601 UTC with milliseconds and Z).

use strict;
use warnings;

our $Uuid = '[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}'
    . '-[0-9a-f]{12}';
our $Time = '20\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])'
    . 'T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}Z';
our $Cursor = '[0-9A-Za-z_-]+';

sub err {
    my $code = shift;
    return '\A\{"error":\{"message":"(?:[^"\\\\]|\\\\.)+",'
        . '"type":"[a-z_]+","param":(?:null|"[^"]*"),'
        . '"code":"' . $code . '"\}\}\z';
}

sub thread {
    my ($id, $title) = @_;
    my $i = defined $id ? quotemeta($id) : $Uuid;
    return '\{"id":"' . $i . '","title":"' . quotemeta($title)
        . '","createdAt":"' . $Time . '","updatedAt":"' . $Time . '"\}';
}

sub page {
    my ($threads, $more) = @_;
    return '\A\{"threads":\[' . join(',', @$threads) . '\]'
        . ($more ? ',"nextCursor":"' . $Cursor . '"' : '') . '\}\z';
}

sub any_order {
    my @t = @_;
    my $one = '\{"id":"[^"]+","title":"(?:[^"\\\\]|\\\\.)*","createdAt":"'
        . $Time . '","updatedAt":"' . $Time . '"\}';
    # every expected thread once, nothing else, no id twice
    my $look = join '', map { "(?=.*$_)(?!.*$_.*$_)" } @t;
    return '\A' . $look . '(?!.*"id":"([^"]+)".*"id":"\1")'
        . '\{"threads":\[' . join(',', ($one) x @t) . '\]\}\z';
}

sub exact {
    return '\A' . quotemeta(shift) . '\z';
}

1;
