package C1Mock;

# A mock C1 upstream made of Lua locations (Debian's libnginx-mod-http-lua),
# for a test's server block.
#
# The mock answers like C1 (a chat.completion) and lets a test assert
# exactly what C1 received:
#   /mock/echo-body     content = the request body, byte for byte
#   /mock/echo-headers  content = "METHOD URI" then the request headers,
#                       one "name: value" line each, sorted
#   /mock/answer?len=N  content = N bytes of "x" (&cl=1: with a
#                       Content-Length, else chunked)
#   /mock/echo-messages content = the messages C1 got, "role:content"
#                       joined by " | "
#   /mock/sse           a chat.completion.chunk stream of @Pieces, shaped
#                       by arguments: crlf, ids, comments, events (id:,
#                       ": ", event:/retry: lines), nodone, usage,
#                       bytewise (every byte its own write), delay=MS
#                       between events; after=N then one of: reset,
#                       garbage, hang, error (what C1 does after N pieces)
#   /mock/big?len=N     an answer of N bytes of big_text(N) below, fast: a
#                       chat.completion, or (the request asks to stream) a
#                       stream of big_sse(N, P) (&piece=P bytes a delta,
#                       default 1000); &delay=MS before the answer
# Tests that need other behaviour write their own mock location.

use strict;
use warnings;

our $MockLocations = <<'_EOC_';
    location = /mock/echo-body {
        content_by_lua_block {
            local cjson = require "cjson"
            ngx.req.read_body()
            local body = ngx.req.get_body_data()
            if not body then
                local f = io.open(ngx.req.get_body_file(), "rb")
                body = f:read("*a")
                f:close()
            end
            ngx.header["Content-Type"] = "application/json"
            ngx.print('{"id":"chatcmpl-mock","object":"chat.completion",'
                .. '"created":1764000000,"model":"mock","choices":[{"index":0,'
                .. '"message":{"role":"assistant","content":'
                .. cjson.encode(body) .. '},"finish_reason":"stop"}],'
                .. '"usage":{"prompt_tokens":11,"completion_tokens":22,'
                .. '"total_tokens":33}}')
        }
    }

    location = /mock/echo-headers {
        content_by_lua_block {
            local cjson = require "cjson"
            ngx.req.read_body()
            local h = ngx.req.get_headers(100, true)
            local names = {}
            for k in pairs(h) do names[#names + 1] = k end
            table.sort(names, function(a, b) return a:lower() < b:lower() end)
            local lines = { ngx.req.get_method() .. " " .. ngx.var.request_uri }
            for _, k in ipairs(names) do
                lines[#lines + 1] = k:lower() .. ": " .. tostring(h[k])
            end
            ngx.header["Content-Type"] = "application/json"
            ngx.print(cjson.encode({
                object = "chat.completion",
                choices = {{ index = 0, finish_reason = "stop",
                    message = { role = "assistant",
                                content = table.concat(lines, "\n") } }}
            }))
        }
    }

    location = /mock/sse {
        lua_check_client_abort on;
        lua_http10_buffering off;
        content_by_lua_block {
            ngx.on_abort(function ()
                ngx.log(ngx.WARN, "mock: C1 call abandoned")
                ngx.exit(499)
            end)
            local cjson = require "cjson"
            ngx.req.read_body()
            local a = ngx.req.get_uri_args()
            local nl = a.crlf and "\r\n" or "\n"
            local delay = (tonumber(a.delay) or 0) / 1000
            local after = tonumber(a.after) or -1
            local pieces = { "<content thesys=\"true\">",
                             "{&quot;component&quot;:", "", " \226\156\147 \195\169 ",
                             "\240\159\152\128", "\n\"quoted\" \\ ", "</content>" }
            ngx.header["Content-Type"] = "text/event-stream"

            local function send(s)
                if a.bytewise then
                    for i = 1, #s do
                        ngx.print(s:sub(i, i))
                        ngx.flush(true)
                        ngx.sleep(0.001)
                    end
                else
                    ngx.print(s)
                    ngx.flush(true)
                end
            end

            local function event(i, json)
                local s = ""
                if a.ids then s = s .. "id: " .. i .. nl end
                if a.comments then s = s .. ": keep-alive" .. nl end
                if a.events then
                    s = s .. "event: message" .. nl .. "retry: 3000" .. nl
                end
                send(s .. "data: " .. json .. nl .. nl)
                if delay > 0 then ngx.sleep(delay) end
            end

            local head = '{"id":"chatcmpl-s","object":"chat.completion.chunk",'
                .. '"created":1764000000,"model":"mock","choices":[{"index":0,'
            event(0, head .. '"delta":{"role":"assistant","content":""},'
                         .. '"finish_reason":null}]}')
            for i, p in ipairs(pieces) do
                if i - 1 == after then
                    if a.reset then ngx.sleep(0.2) return ngx.exit(444) end
                    if a.garbage then send("data: {\"choices\": [" .. nl .. nl) end
                    if a.error then
                        event(i, '{"error":{"message":"C1 is overloaded",'
                                 .. '"type":"server_error"}}')
                    end
                    if a.hang then ngx.sleep(30) end
                end
                event(i, head .. '"delta":{"content":' .. cjson.encode(p)
                             .. '},"finish_reason":null}]}')
            end
            event(#pieces + 1, head .. '"delta":{},"finish_reason":"stop"}]}')
            if a.usage then
                event(#pieces + 2, '{"id":"chatcmpl-s","object":'
                    .. '"chat.completion.chunk","choices":[],"usage":'
                    .. '{"prompt_tokens":12,"completion_tokens":34,'
                    .. '"total_tokens":46}}')
            end
            if not a.nodone then send("data: [DONE]" .. nl .. nl) end
        }
    }

    location = /mock/echo-messages {
        content_by_lua_block {
            local cjson = require "cjson"
            ngx.req.read_body()
            local body = ngx.req.get_body_data()
            if not body then
                local f = io.open(ngx.req.get_body_file(), "rb")
                body = f:read("*a")
                f:close()
            end
            local req = cjson.decode(body)
            local seen = {}
            for _, m in ipairs(req.messages) do
                seen[#seen + 1] = m.role .. ":" .. m.content
            end
            ngx.header["Content-Type"] = "application/json"
            ngx.print(cjson.encode({
                object = "chat.completion",
                choices = {{ index = 0, finish_reason = "stop",
                    message = { role = "assistant",
                                content = table.concat(seen, " | ") } }}
            }))
        }
    }

    location = /mock/big {
        lua_check_client_abort on;
        lua_http10_buffering off;
        content_by_lua_block {
            ngx.on_abort(function ()
                ngx.log(ngx.WARN, "mock: C1 call abandoned")
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
            local req = cjson.decode(body)
            local n = tonumber(ngx.var.arg_len) or 1024
            local piece = tonumber(ngx.var.arg_piece) or 1000
            local filler = string.rep("abc\"de\\fghijklmnopqrstuvwxyz", 40)
                           :sub(1, 1015)
            local blocks = {}
            for i = 0, math.floor((n - 1) / 1024) do
                blocks[#blocks + 1] = string.format("%07d:", i) .. filler
                                      .. "\n"
            end
            local text = table.concat(blocks):sub(1, n)
            local function esc(s)
                return (s:gsub('[\\"]', '\\%0'):gsub("\n", "\\n"))
            end
            if ngx.var.arg_delay then
                ngx.sleep(tonumber(ngx.var.arg_delay) / 1000)
            end
            local head = '{"id":"chatcmpl-big","object":"chat.completion.chunk",'
                .. '"created":1764000000,"model":"mock","choices":[{"index":0,'
            if req.stream ~= true then
                ngx.header["Content-Type"] = "application/json"
                ngx.print('{"id":"chatcmpl-big","object":"chat.completion",'
                    .. '"created":1764000000,"model":"mock","choices":[{'
                    .. '"index":0,"message":{"role":"assistant","content":"'
                    .. esc(text) .. '"},"finish_reason":"stop"}]}')
                return
            end
            ngx.header["Content-Type"] = "text/event-stream"
            local out = { "data: " .. head .. '"delta":{"role":"assistant",'
                          .. '"content":""},"finish_reason":null}]}\n\n' }
            local size = #out[1]
            local function flush()
                ngx.print(out)
                if not ngx.flush(true) then ngx.exit(499) end
                out, size = {}, 0
            end
            for i = 1, #text, piece do
                local e = "data: " .. head .. '"delta":{"content":"'
                    .. esc(text:sub(i, i + piece - 1))
                    .. '"},"finish_reason":null}]}\n\n'
                out[#out + 1] = e
                size = size + #e
                if size >= 65536 then flush() end
            end
            out[#out + 1] = "data: " .. head .. '"delta":{},'
                .. '"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
            flush()
        }
    }

    location = /mock/answer {
        content_by_lua_block {
            local cjson = require "cjson"
            ngx.req.read_body()
            local n = tonumber(ngx.var.arg_len) or 10
            local body = cjson.encode({
                object = "chat.completion",
                choices = {{ index = 0, finish_reason = "stop",
                    message = { role = "assistant",
                                content = string.rep("x", n) } }}
            })
            ngx.header["Content-Type"] = "application/json"
            if ngx.var.arg_cl then
                ngx.header["Content-Length"] = #body
            end
            ngx.print(body)
        }
    }
_EOC_

# What a prompt-mode client gets from /mock/sse: the pieces, concatenated.
our $StreamText = "<content thesys=\"true\">{&quot;component&quot;:"
    . " \x{e2}\x{9c}\x{93} \x{c3}\x{a9} \x{f0}\x{9f}\x{98}\x{80}"
    . "\n\"quoted\" \\ </content>";

# The content of /mock/big?len=N: blocks of 1024 bytes, each numbered
# ("0000042:"), with quotes and backslashes, ending in "\n"; cut at N.
sub big_text {
    my $n = shift;
    my $filler = substr('abc"de\\fghijklmnopqrstuvwxyz' x 40, 0, 1015);
    my $text = join '', map { sprintf("%07d:", $_) . $filler . "\n" }
                        0 .. int(($n - 1) / 1024);
    return substr($text, 0, $n);
}

# A JSON string's inside, escaped as /mock/big and the module escape it.
sub json_escape {
    my $s = shift;
    $s =~ s/(["\\])/\\$1/g;
    $s =~ s/\n/\\n/g;
    return $s;
}

# What an OpenAI-shape client gets from /mock/big?len=N&piece=P, streamed
sub big_sse {
    my ($n, $piece) = @_;
    $piece ||= 1000;
    my $text = big_text($n);
    my $head = '{"id":"chatcmpl-big","object":"chat.completion.chunk",'
        . '"created":1764000000,"model":"mock","choices":[{"index":0,';
    my $s = "data: $head\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
        . "\"finish_reason\":null}]}\n\n";
    for (my $i = 0; $i < length $text; $i += $piece) {
        $s .= "data: $head\"delta\":{\"content\":\""
            . json_escape(substr($text, $i, $piece))
            . "\"},\"finish_reason\":null}]}\n\n";
    }
    return $s . "data: $head\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
        . "data: [DONE]\n\n";
}

# ... and not streamed
sub big_completion {
    my $n = shift;
    return '{"id":"chatcmpl-big","object":"chat.completion",'
        . '"created":1764000000,"model":"mock","choices":[{"index":0,'
        . '"message":{"role":"assistant","content":"'
        . json_escape(big_text($n)) . '"},"finish_reason":"stop"}]}';
}

# The answer /mock/echo-body gives for a request body, as the client of an
# OpenAI-shape location sees it (Lua's cjson escapes "/" too).
sub completion {
    my $content = shift;
    $content =~ s{(["\\/])}{\\$1}g;
    return '{"id":"chatcmpl-mock","object":"chat.completion",'
        . '"created":1764000000,"model":"mock","choices":[{"index":0,'
        . '"message":{"role":"assistant","content":"' . $content
        . '"},"finish_reason":"stop"}],"usage":{"prompt_tokens":11,'
        . '"completion_tokens":22,"total_tokens":33}}';
}


# a thread's messages as GET answers them, ids made by the module: the
# JSON without ids, as a pattern with a UUID id in each message
our $Uuid = '[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}';

sub with_ids {
    my ($json) = @_;
    my @parts = split /\{"role":/, $json, -1;
    return '\A' . join('\{"id":"' . $Uuid . '","role":',
                        map { quotemeta } @parts) . '\z';
}


# the same thread's JSON without the ids the module made (UUIDs), for an
# exact comparison with what a test expects of the rest
sub without_ids {
    my ($json) = @_;
    return undef unless defined $json;
    $json =~ s/\{"id":"$Uuid",/{/g;
    return $json;
}

1;
