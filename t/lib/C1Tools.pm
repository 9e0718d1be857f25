package C1Tools;

# A mock C1 that asks for tools, and tool locations, for the tool loop
# tests (issue 18, t/041-tools.t). Lua locations for a server block; the
# http block needs `lua_shared_dict calls 1m;`.
#
# The mock C1 (/tc1) is told what to answer by its query string
# p=ITEM,ITEM,...: a call whose messages hold R assistant messages with
# tool_calls after the last user message (R rounds done in this turn) gets
# item R+1 (the last one repeats). It streams when the request asks to
# ("stream": true), else it answers a whole chat.completion. Items:
#   c          the final answer: content "results: ID=CONTENT | ..." made of
#              every tool message of the request in order (its tool_call_id
#              and content), or "results: none"
#   t:CALLS    a tool round: finish_reason "tool_calls" with these calls
#   pt:CALLS   the same with the content "checking " before the calls
#   CALLS is CALL+CALL+...; a CALL is NAME[@ARGS][!]: NAME is
#   percent-decoded; ARGS one of the argument sets below (default a); "!"
#   leaves the call's id out (else the id is call_R_I: round R, call I, both
#   from 0).
# Whole: message {"role":"assistant","content":null (pt: "checking "),
# "tool_calls":[...]}. Streamed: a role event, then for each call an event
# with its index, id, type, name and "arguments":"" and events with the
# arguments in pieces of 3 characters, then {"delta":{},"finish_reason":
# "tool_calls"}, [DONE]; every event is written in two halves, flushed
# apart. With u=1 every answer carries the usage {"prompt_tokens":10,
# "completion_tokens":5,"total_tokens":15} (a stream: a usage-only chunk
# when the request asked for include_usage).
#
# Every call is logged at warn ("mock: call N round R"; never its body) and
# kept. GET /calls prints "calls=N", one line a call
#   N round=R stream=S tools=NAME,NAME|- tool_choice=JSON|- msgs=ROLE,...
# (ROLE "assistant+tc" for an assistant message with tool_calls), then
# "echo=N" (the calls the echo tool got), then with log=1 the access log
# logs/c1.log. GET /calls?n=K&k=FIELD prints field FIELD of call K's
# request as canonical JSON (keys sorted, no spaces, "/" and non-ASCII as
# they are); k=keys prints its top-level keys, sorted, comma-separated.
# GET /calls?times=1 prints the events, in the order they happened, with
# their time in seconds since the first one (2 decimals): "call N T" (a
# call to the mock), "slow start T" / "slow end T" (the slow tool).
#
# The tool backends (%Tools below are their locations, for a test's config):
#   /tools/planets  return 200 '{"planets":["Mercury","Venus"]}'
#   /tools/moons    return 200 '{"moons":["Phobos","Deimos"]}'
#   /tools/echo     "m=METHOD ct=CONTENT_TYPE u=$http_x_user a=$args
#                   body=BODY" as that location saw it (proxied to /_echo)
#   /tools/slow     sleeps 0.5 s (its events logged for times=1), answers
#                   {"slept":0.5}
#   /tools/fail     500
#   /tools/big      1025 bytes of "x";  /tools/fit  1024 bytes of "y"
#   /tools/binary   "ok \xff\xfe" (not UTF-8);  /tools/nul  "a\0b"
#   /tools/k256     262144 bytes of "z";  /tools/k256p  262145
# Other helpers: /sleep?s=S; POST /drop?u=URI&s=S sends its own body to URI
# (Content-Type application/json, or text/plain with ct=text) on a
# connection of its own, reads for S seconds and closes it; prints "dropped
# after S s, got N bytes".

use strict;
use warnings;

our $Secret = 'sk-SECRET-4242';

# the argument sets, as the mock sends them (the JSON text of "arguments")
our %Args = (
    a   => '{"city":"Paris"}',
    b   => '{"city":"Lyon"}',
    s   => '{"token":"sk-SECRET-4242"}',
    bad => '{"token":"sk-SECRET-4242"',
    arr => '["sk-SECRET-4242"]',
    e   => '',
    u   => '{"q":"\"\u00e9\" \\\\ <b>"}',
);

my $args_lua = join ",\n", map {
    my $v = $Args{$_};
    $v =~ s/([\\'])/\\$1/g;
    "                $_ = '$v'"
} sort keys %Args;

our $Locations = <<'_EOC_' . $args_lua . <<'_EOC_';
    location = /tc1 {
        access_log off;
        lua_check_client_abort on;
        lua_http10_buffering off;
        content_by_lua_block {
            ngx.on_abort(function ()
                ngx.log(ngx.WARN, "mock: call abandoned")
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
            local dict = ngx.shared.calls
            ngx.update_time()
            local n = dict:incr("n", 1, 0)
            dict:set("body:" .. n, body)
            local e = dict:incr("ev", 1, 0)
            dict:set("ev:" .. e, "call " .. n)
            dict:set("evt:" .. e, ngx.now())

            local req = cjson.decode(body)
            local msgs = req.messages or {}
            local last_user = 0
            for i, m in ipairs(msgs) do
                if m.role == "user" then last_user = i end
            end
            local round = 0
            for i = last_user + 1, #msgs do
                local m = msgs[i]
                if m.role == "assistant" and type(m.tool_calls) == "table" then
                    round = round + 1
                end
            end
            local results = {}
            for _, m in ipairs(msgs) do
                if m.role == "tool" then
                    results[#results + 1] = tostring(m.tool_call_id) .. "="
                                            .. tostring(m.content)
                end
            end
            ngx.log(ngx.WARN, "mock: call ", n, " round ", round)

            local A = {
_EOC_
            }

            local function str(s)
                s = s:gsub('[%c"\\]', function (c)
                    if c == '"' then return '\\"' end
                    if c == '\\' then return '\\\\' end
                    if c == '\n' then return '\\n' end
                    if c == '\t' then return '\\t' end
                    if c == '\r' then return '\\r' end
                    return string.format('\\u%04x', c:byte())
                end)
                return '"' .. s .. '"'
            end

            local plan = {}
            for item in (ngx.var.arg_p or "c"):gmatch("[^,]+") do
                plan[#plan + 1] = item
            end
            local what = plan[round + 1] or plan[#plan]

            local usage = ngx.var.arg_u == "1"
                and '{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}'
            local iu = type(req.stream_options) == "table"
                       and req.stream_options.include_usage == true

            local function ev(s)
                local d = "data: " .. s .. "\n\n"
                local h = math.floor(#d / 2)
                ngx.print(d:sub(1, h))
                if not ngx.flush(true) then return ngx.exit(499) end
                ngx.print(d:sub(h + 1))
                if not ngx.flush(true) then return ngx.exit(499) end
            end
            local function chunk(delta, finish)
                return '{"choices":[{"index":0,"delta":' .. delta
                    .. ',"finish_reason":' .. (finish and str(finish) or 'null')
                    .. '}]}'
            end
            -- s cut in pieces of k characters (UTF-8)
            local function pieces(s, k)
                local out, cur, nc = {}, {}, 0
                for ch in s:gmatch("[%z\1-\127\192-\255][\128-\191]*") do
                    cur[#cur + 1] = ch
                    nc = nc + 1
                    if nc == k then
                        out[#out + 1] = table.concat(cur)
                        cur, nc = {}, 0
                    end
                end
                if nc > 0 then out[#out + 1] = table.concat(cur) end
                return out
            end

            local kind, spec = what:match("^(p?t):(.+)$")
            if not kind then
                -- the final answer
                local content = "results: "
                    .. (#results > 0 and table.concat(results, " | ") or "none")
                if req.stream then
                    ngx.header["Content-Type"] = "text/event-stream"
                    ev(chunk('{"role":"assistant","content":""}'))
                    for _, p in ipairs(pieces(content, 8)) do
                        ev(chunk('{"content":' .. str(p) .. '}'))
                    end
                    ev(chunk('{}', "stop"))
                    if usage and iu then
                        ev('{"choices":[],"usage":' .. usage .. '}')
                    end
                    ev('[DONE]')
                    return
                end
                ngx.header["Content-Type"] = "application/json"
                ngx.print('{"id":"chatcmpl-t","object":"chat.completion",'
                    .. '"created":1764000000,"model":"m","choices":[{"index":0,'
                    .. '"message":{"role":"assistant","content":' .. str(content)
                    .. '},"finish_reason":"stop"}]'
                    .. (usage and (',"usage":' .. usage) or '') .. '}')
                return
            end

            local calls = {}
            for c in spec:gmatch("[^+]+") do
                local noid = c:sub(-1) == "!"
                if noid then c = c:sub(1, -2) end
                local name, a = c:match("^([^@]*)@?(.*)$")
                if a == "" then a = "a" end
                local i = #calls
                calls[#calls + 1] = {
                    name = ngx.unescape_uri(name),
                    args = A[a] or error("no argument set " .. a),
                    id = (not noid) and ("call_" .. round .. "_" .. i) or nil,
                }
            end
            local pre = kind == "pt" and "checking " or nil

            if req.stream then
                ngx.header["Content-Type"] = "text/event-stream"
                if pre then
                    ev(chunk('{"role":"assistant","content":""}'))
                    ev(chunk('{"content":' .. str(pre) .. '}'))
                else
                    ev(chunk('{"role":"assistant","content":null}'))
                end
                for i, c in ipairs(calls) do
                    ev(chunk('{"tool_calls":[{"index":' .. (i - 1)
                        .. (c.id and (',"id":' .. str(c.id)) or '')
                        .. ',"type":"function","function":{"name":' .. str(c.name)
                        .. ',"arguments":""}}]}'))
                    for _, p in ipairs(pieces(c.args, 3)) do
                        ev(chunk('{"tool_calls":[{"index":' .. (i - 1)
                            .. ',"function":{"arguments":' .. str(p) .. '}}]}'))
                    end
                end
                ev(chunk('{}', "tool_calls"))
                if usage and iu then
                    ev('{"choices":[],"usage":' .. usage .. '}')
                end
                ev('[DONE]')
                return
            end

            local tc = {}
            for _, c in ipairs(calls) do
                tc[#tc + 1] = '{' .. (c.id and ('"id":' .. str(c.id) .. ',') or '')
                    .. '"type":"function","function":{"name":' .. str(c.name)
                    .. ',"arguments":' .. str(c.args) .. '}}'
            end
            ngx.header["Content-Type"] = "application/json"
            ngx.print('{"id":"chatcmpl-t","object":"chat.completion",'
                .. '"created":1764000000,"model":"m","choices":[{"index":0,'
                .. '"message":{"role":"assistant","content":'
                .. (pre and str(pre) or 'null') .. ',"tool_calls":['
                .. table.concat(tc, ',') .. ']},"finish_reason":"tool_calls"}]'
                .. (usage and (',"usage":' .. usage) or '') .. '}')
        }
    }

    location = /calls {
        access_log off;
        content_by_lua_block {
            local cjson = require "cjson"
            local dict = ngx.shared.calls

            local function str(s)
                s = s:gsub('[%c"\\]', function (c)
                    if c == '"' then return '\\"' end
                    if c == '\\' then return '\\\\' end
                    if c == '\n' then return '\\n' end
                    if c == '\t' then return '\\t' end
                    if c == '\r' then return '\\r' end
                    return string.format('\\u%04x', c:byte())
                end)
                return '"' .. s .. '"'
            end
            local canon
            canon = function (v)
                if v == cjson.null then return "null" end
                local t = type(v)
                if t == "string" then return str(v) end
                if t == "boolean" then return tostring(v) end
                if t == "number" then
                    if v == math.floor(v) and math.abs(v) < 1e15 then
                        return string.format("%d", v)
                    end
                    return string.format("%.14g", v)
                end
                if t == "table" then
                    if next(v) == nil then return "{}" end
                    if #v > 0 then
                        local out = {}
                        for i = 1, #v do out[i] = canon(v[i]) end
                        return "[" .. table.concat(out, ",") .. "]"
                    end
                    local keys = {}
                    for k in pairs(v) do keys[#keys + 1] = k end
                    table.sort(keys)
                    local out = {}
                    for _, k in ipairs(keys) do
                        out[#out + 1] = str(k) .. ":" .. canon(v[k])
                    end
                    return "{" .. table.concat(out, ",") .. "}"
                end
                return "?" .. t
            end

            if ngx.var.arg_times then
                local n = dict:get("ev") or 0
                local t0 = dict:get("evt:1") or 0
                for i = 1, n do
                    ngx.print(dict:get("ev:" .. i), " ",
                        string.format("%.2f", dict:get("evt:" .. i) - t0), "\n")
                end
                return
            end

            if ngx.var.arg_n then
                local b = dict:get("body:" .. ngx.var.arg_n)
                if not b then ngx.print("no call ", ngx.var.arg_n) return end
                local req = cjson.decode(b)
                local k = ngx.var.arg_k
                if k == "keys" then
                    local keys = {}
                    for key in pairs(req) do keys[#keys + 1] = key end
                    table.sort(keys)
                    ngx.print(table.concat(keys, ","))
                elseif req[k] == nil then
                    ngx.print("-")
                else
                    ngx.print(canon(req[k]))
                end
                return
            end

            local n = dict:get("n") or 0
            ngx.print("calls=", n, "\n")
            for i = 1, n do
                local req = cjson.decode(dict:get("body:" .. i))
                local msgs = req.messages or {}
                local last_user, round = 0, 0
                for j, m in ipairs(msgs) do
                    if m.role == "user" then last_user = j end
                end
                local roles = {}
                for j, m in ipairs(msgs) do
                    local r = tostring(m.role)
                    if r == "assistant" and type(m.tool_calls) == "table" then
                        r = r .. "+tc"
                        if j > last_user then round = round + 1 end
                    end
                    roles[#roles + 1] = r
                end
                local tools = "-"
                if type(req.tools) == "table" then
                    local names = {}
                    for _, t in ipairs(req.tools) do
                        local f = type(t) == "table" and t["function"]
                        names[#names + 1] = type(f) == "table" and tostring(f.name) or "?"
                    end
                    tools = #names > 0 and table.concat(names, ",") or "[]"
                end
                ngx.print(i, " round=", round, " stream=", tostring(req.stream),
                    " tools=", tools,
                    " tool_choice=", req.tool_choice ~= nil and canon(req.tool_choice) or "-",
                    " msgs=", table.concat(roles, ","), "\n")
            end
            ngx.print("echo=", dict:get("echo") or 0, "\n")
            if ngx.var.arg_log then
                local f = io.open(ngx.config.prefix() .. "logs/c1.log", "rb")
                if f then ngx.print(f:read("*a")) f:close() end
            end
        }
    }

    location = /metrics { access_log off; c1_metrics; }

    location = /sleep {
        access_log off;
        content_by_lua_block { ngx.sleep(tonumber(ngx.var.arg_s)) ngx.say("slept") }
    }

    location = /_echo {
        access_log off;
        content_by_lua_block {
            ngx.req.read_body()
            local body = ngx.req.get_body_data()
            if not body then
                local file = ngx.req.get_body_file()
                if file then
                    local f = io.open(file, "rb")
                    body = f:read("*a")
                    f:close()
                end
            end
            ngx.shared.calls:incr("echo", 1, 0)
            ngx.header["Content-Type"] = "text/plain"
            ngx.print(ngx.var.http_x_seen or "-", " body=", body or "")
        }
    }

    location = /drop {
        access_log off;
        content_by_lua_block {
            ngx.req.read_body()
            local body = ngx.req.get_body_data() or ""
            local ct = ngx.var.arg_ct == "text" and "text/plain" or "application/json"
            local s = ngx.socket.tcp()
            s:settimeout(3000)
            assert(s:connect("127.0.0.1", ngx.var.server_port))
            assert(s:send("POST " .. ngx.var.arg_u .. " HTTP/1.1\r\nHost: x\r\n"
                .. "Connection: close\r\nContent-Type: " .. ct .. "\r\n"
                .. "Content-Length: " .. #body .. "\r\n\r\n" .. body))
            local wait = tonumber(ngx.var.arg_s)
            local got = 0
            local t0 = ngx.now()
            while true do
                ngx.update_time()
                local left = wait - (ngx.now() - t0)
                if left <= 0 then break end
                s:settimeout(math.max(1, math.floor(left * 1000)))
                local data, err, partial = s:receive(1)
                if data then
                    got = got + #data
                elseif err ~= "timeout" then
                    break
                end
            end
            s:close()
            ngx.print("dropped after ", wait, " s, got ", got, " bytes")
        }
    }
_EOC_

our $SlowLua = <<'_EOC_';
            local dict = ngx.shared.calls
            local function ev(what)
                ngx.update_time()
                local e = dict:incr("ev", 1, 0)
                dict:set("ev:" .. e, what)
                dict:set("evt:" .. e, ngx.now())
            end
            ev("slow start")
            ngx.sleep(0.5)
            ev("slow end")
            ngx.header["Content-Type"] = "application/json"
            ngx.print('{"slept":0.5}')
_EOC_

our $Tools = <<'_EOC_' . $SlowLua . <<'_EOC_';
    location = /tools/planets { internal; default_type application/json; return 200 '{"planets":["Mercury","Venus"]}'; }
    location = /tools/moons { internal; default_type application/json; return 200 '{"moons":["Phobos","Deimos"]}'; }
    location = /tools/echo {
        internal;
        proxy_http_version 1.1;
        proxy_set_header X-Seen "m=$request_method ct=$content_type u=$http_x_user a=$args";
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/_echo;
    }
    location = /tools/fail { internal; default_type application/json; return 500 '{"error":"down"}'; }
    location = /tools/big { internal; content_by_lua_block { ngx.print(string.rep("x", 1025)) } }
    location = /tools/fit { internal; content_by_lua_block { ngx.print(string.rep("y", 1024)) } }
    location = /tools/binary { internal; content_by_lua_block { ngx.print("ok \255\254") } }
    location = /tools/nul { internal; content_by_lua_block { ngx.print("a\0b") } }
    location = /tools/k256 { internal; content_by_lua_block { ngx.print(string.rep("z", 262144)) } }
    location = /tools/k256p { internal; content_by_lua_block { ngx.print(string.rep("z", 262145)) } }
    location = /tools/slow {
        internal;
        content_by_lua_block {
_EOC_
        }
    }
_EOC_

1;
