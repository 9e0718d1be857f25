package C1Usage;

# For the token budget tests (issue 16): a mock C1 that answers with the
# usage it is told to (Lua locations for a server block; the http block
# needs $C1Usage::Http, a shared dict), and OpenAI's duration format
# (Go's time.Duration string rounded to ms) for the X-RateLimit-Reset-Tokens
# header and the refusal's message.
#
# The mock: POST /usage?p=P&c=C[&...]: a chat.completion (or, when the
# request asks to stream, a chat.completion.chunk stream) whose usage is
# prompt_tokens P, completion_tokens C, total_tokens P + C. Arguments:
#   k=K         the key its calls are counted under (default: u=, else "-")
#   total=T     total_tokens T instead of P + C; nototal=1: none
#   nousage=1   no usage at all (not in the completion, no usage chunk)
#   len=N       the content: N bytes of "q" (default 2); text=S: S
#   delay=MS    wait before answering
#   status=NNN  that status with an OpenAI-style error body (&ra=S: with
#               Retry-After: S)
#   pieces=N    a stream: N content chunks of that content (default 1),
#               &pdelay=MS between them; &hang=S: after them, nothing for
#               S seconds, then the connection reset (no finish, no usage)
#   A stream ends with the finish chunk, the usage-only chunk (choices []
#   and usage) when the request had stream_options.include_usage true
#   (and not nousage), then [DONE]; &uhang=S: instead of [DONE], nothing
#   for S seconds, then the connection reset.
# GET /usage/stats?k=K: "calls=N body=B iu=X" (calls counted under K, the
# length of the last body C1 got under K, its stream_options.include_usage
# as Lua prints it: true, false or nil); GET /usage/body?k=K: that body.
#
#   C1Usage::godur($ms)          "0s", "17ms", "8.64s", "6m0s", "2h0m0s"
#   C1Usage::dur_re($lo, $hi)    a pattern (text) matching exactly the
#                                durations from $lo to $hi ms
#   C1Usage::parse_godur($s)     ms, or undef when not in that format

use strict;
use warnings;

use POSIX qw(floor);

our $Http = "    lua_shared_dict c1usage 1m;\n";

our $Locations = <<'_EOC_';
    location = /usage {
        access_log off;
        lua_check_client_abort on;
        lua_http10_buffering off;
        content_by_lua_block {
            ngx.on_abort(function ()
                ngx.log(ngx.WARN, "usage mock: call abandoned")
                ngx.exit(499)
            end)
            local cjson = require "cjson"
            ngx.req.read_body()
            local body = ngx.req.get_body_data()
            if not body then
                local f = io.open(ngx.req.get_body_file(), "rb")
                body = f:read("*a")
                f:close()
            end
            local a = ngx.req.get_uri_args()
            local d = ngx.shared.c1usage
            local k = a.k or a.u or "-"
            d:incr("calls:" .. k, 1, 0)
            d:set("body:" .. k, body)
            local req = cjson.decode(body)
            local iu = req.stream_options and req.stream_options.include_usage
            d:set("iu:" .. k, tostring(iu))
            ngx.log(ngx.WARN, "usage mock: call for ", k, ", ", #body,
                    " bytes")

            local p, c = tonumber(a.p) or 0, tonumber(a.c) or 0
            local usage = { prompt_tokens = p, completion_tokens = c,
                            total_tokens = tonumber(a.total) or p + c }
            if a.nototal then usage.total_tokens = nil end
            if a.nousage then usage = nil end
            if a.delay then ngx.sleep(tonumber(a.delay) / 1000) end

            if a.status then
                ngx.status = tonumber(a.status)
                ngx.header["Content-Type"] = "application/json"
                if a.ra then ngx.header["Retry-After"] = a.ra end
                ngx.print('{"error":{"message":"mock ' .. a.status
                          .. '","type":"mock_error","param":null,'
                          .. '"code":"mock_' .. a.status .. '"}}')
                return
            end

            local content = a.text or string.rep("q", tonumber(a.len) or 2)

            if req.stream ~= true then
                local r = { id = "chatcmpl-u", object = "chat.completion",
                            created = 1764000000, model = "mock",
                            choices = {{ index = 0, finish_reason = "stop",
                                message = { role = "assistant",
                                            content = content } }},
                            usage = usage }
                ngx.header["Content-Type"] = "application/json"
                ngx.print(cjson.encode(r))
                return
            end

            ngx.header["Content-Type"] = "text/event-stream"
            local function ev(s)
                ngx.print("data: " .. s .. "\n\n")
                if not ngx.flush(true) then return ngx.exit(499) end
            end
            local head = '{"id":"chatcmpl-u","object":"chat.completion.chunk",'
                .. '"created":1764000000,"model":"mock","choices":[{"index":0,'
            ev(head .. '"delta":{"role":"assistant","content":""},'
                    .. '"finish_reason":null}]}')
            local pdelay = (tonumber(a.pdelay) or 0) / 1000
            for i = 1, tonumber(a.pieces) or 1 do
                ev(head .. '"delta":{"content":' .. cjson.encode(content)
                        .. '},"finish_reason":null}]}')
                if pdelay > 0 then ngx.sleep(pdelay) end
            end
            if a.hang then
                ngx.sleep(tonumber(a.hang))
                return ngx.exit(444)
            end
            ev(head .. '"delta":{},"finish_reason":"stop"}]}')
            if iu == true and usage then
                ev('{"id":"chatcmpl-u","object":"chat.completion.chunk",'
                   .. '"created":1764000000,"model":"mock","choices":[],'
                   .. '"usage":' .. cjson.encode(usage) .. '}')
            end
            if a.uhang then
                ngx.sleep(tonumber(a.uhang))
                return ngx.exit(444)
            end
            ev("[DONE]")
        }
    }

    location = /usage/stats {
        access_log off;
        content_by_lua_block {
            local d = ngx.shared.c1usage
            local k = ngx.var.arg_k or "-"
            local b = d:get("body:" .. k)
            ngx.print("calls=", d:get("calls:" .. k) or 0,
                      " body=", b and #b or 0,
                      " iu=", d:get("iu:" .. k) or "none")
        }
    }

    location = /usage/body {
        access_log off;
        content_by_lua_block {
            ngx.print(ngx.shared.c1usage:get("body:"
                      .. (ngx.var.arg_k or "-")) or "")
        }
    }
_EOC_

# Go's Duration.String() of a whole number of milliseconds
sub godur {
    my $ms = shift;
    return '0s' if $ms == 0;
    return "${ms}ms" if $ms < 1000;
    my $h = floor($ms / 3_600_000);
    my $m = floor(($ms % 3_600_000) / 60_000);
    my $sms = $ms % 60_000;
    my $s = floor($sms / 1000);
    my $frac = sprintf('%03d', $sms % 1000);
    $frac =~ s/0+\z//;
    my $secs = $s . (length $frac ? ".$frac" : '') . 's';
    return "${h}h${m}m$secs" if $h;
    return "${m}m$secs" if $m;
    return $secs;
}

sub dur_re {
    my ($lo, $hi) = @_;
    $lo = 0 if $lo < 0;
    return '\A' . alt(map { godur($_) } $lo .. $hi) . '\z';
}

# the numbers from $lo to $hi, as a pattern (without anchors)
sub range_re {
    my ($lo, $hi) = @_;
    return alt($lo .. $hi);
}

# a pattern matching exactly the given strings (a trie: short enough to
# read in a failure's message)
sub alt {
    my %trie;
    for my $s (@_) {
        my $n = \%trie;
        $n = $n->{$_} //= {} for split //, $s;
        $n->{''} = 1;
    }
    return _trie_re(\%trie);
}

sub _trie_re {
    my $n = shift;
    my $end = exists $n->{''};
    my (%by, @order);    # the children by the pattern of what follows them
    for my $k (sort grep { $_ ne '' } keys %$n) {
        my $r = _trie_re($n->{$k});
        push @order, $r unless $by{$r};
        push @{ $by{$r} }, $k;
    }
    return '' unless @order;
    my @alts = map { _class(@{ $by{$_} }) . $_ } @order;
    my $re = @alts == 1 ? $alts[0] : '(?:' . join('|', @alts) . ')';
    return $end ? "(?:$re)?" : $re;
}

# one character, or a class of several (runs as ranges: [0-9])
sub _class {
    my @c = @_;
    return quotemeta $c[0] if @c == 1;
    my ($out, $i) = ('', 0);
    while ($i < @c) {
        my $j = $i;
        $j++ while $j + 1 < @c && ord($c[$j + 1]) == ord($c[$j]) + 1;
        $out .= $j - $i >= 2 ? quotemeta($c[$i]) . '-' . quotemeta($c[$j])
              : join '', map { quotemeta } @c[$i .. $j];
        $i = $j + 1;
    }
    return "[$out]";
}

sub parse_godur {
    my $s = shift // return undef;
    return 0 if $s eq '0s';
    return $1 if $s =~ /\A([1-9]\d{0,2})ms\z/;
    my ($h, $m, $sec, $frac) = $s =~
        /\A(?:([1-9]\d*)h)?(?:(\d+)m)?(\d+)(?:\.(\d{0,2}[1-9]))?s\z/
        or return undef;
    return undef if defined $h && !defined $m;
    return undef if (defined $m && $m > 59) || (defined $m && $sec > 59);
    my $ms = (($h // 0) * 3600 + ($m // 0) * 60 + $sec) * 1000
           + (defined $frac ? substr($frac . '00', 0, 3) : 0);
    return undef if $ms < 1000;
    return godur($ms) eq $s ? $ms : undef;
}

1;
