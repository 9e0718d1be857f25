package C1Test;

# Shared parts of the Test::Nginx suite: a mock C1 upstream made of Lua
# locations, added to every test block's server, and default checks.
#
# The mock answers like C1 (a chat.completion) and lets a test assert
# exactly what C1 received:
#   /mock/echo-body     content = the request body, byte for byte
#   /mock/echo-headers  content = "METHOD URI" then the request headers,
#                       one "name: value" line each, sorted
#   /mock/answer?len=N  content = N bytes of "x"
# Tests that need other behaviour write their own mock location.

use strict;
use warnings;

use Test::Nginx::Socket ();

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

    location = /mock/answer {
        content_by_lua_block {
            local cjson = require "cjson"
            ngx.req.read_body()
            local n = tonumber(ngx.var.arg_len) or 10
            ngx.header["Content-Type"] = "application/json"
            ngx.print(cjson.encode({
                object = "chat.completion",
                choices = {{ index = 0, finish_reason = "stop",
                    message = { role = "assistant",
                                content = string.rep("x", n) } }}
            }))
        }
    }
_EOC_

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

Test::Nginx::Socket::add_block_preprocessor(sub {
    my $block = shift;

    if (defined $block->config) {
        $block->set_value("config", $block->config . $MockLocations);
    }

    if (!defined $block->no_error_log && !defined $block->must_die) {
        $block->set_value("no_error_log", "[alert]\n[crit]\n[emerg]\n");
    }
});

1;
