-- A mock C1 for bench/tools-bench.pl (content_by_lua_file): one tool round
-- per turn.  A request that offers tools and carries no "tool" message yet
-- gets a call of get_planets (a whole chat.completion with
-- message.tool_calls, or chat.completion.chunk events ending in
-- finish_reason "tool_calls"); a request with the tool's result gets the
-- answer, the fixture ($c1_fixture, a component tree) as content, whole or
-- in 16 deltas; a request without tools gets the answer at once.  A
-- result that is not the planets file's (no "4222.6" in it) gets a 500, so
-- that a turn that lost its tool result cannot pass for a fast one.
-- No pauses: the time measured is the machinery's.

ngx.req.read_body()
local body = ngx.req.get_body_data() or ""
local stream = body:find('"stream":true', 1, true) ~= nil
local tools = body:find('"tools":[', 1, true) ~= nil
local result = body:find('"role":"tool"', 1, true) ~= nil

local cache = package.loaded["c1_bench_tools_mock"]
if not cache then
    cache = {}
    package.loaded["c1_bench_tools_mock"] = cache
end

local text = cache[ngx.var.c1_fixture]
if not text then
    local f = assert(io.open(ngx.var.c1_fixture, "rb"))
    local tree = f:read("*a")
    f:close()
    tree = tree:gsub("&", "&amp;"):gsub('"', "&quot;")
               :gsub("<", "&lt;"):gsub(">", "&gt;")
    text = '<content thesys="true">' .. tree .. '</content>'
    cache[ngx.var.c1_fixture] = text
end

local cjson = require "cjson"
local usage = '"usage":{"prompt_tokens":100,"completion_tokens":50,'
    .. '"total_tokens":150}'

if result and not body:find("4222.6", 1, true) then
    ngx.status = 500
    ngx.header["Content-Type"] = "application/json"
    ngx.print('{"error":{"message":"mock: the tool result is not the '
              .. 'planets file","type":"mock","param":null,"code":null}}')
    return
end

local head = '{"id":"chatcmpl-bench","object":"chat.completion.chunk",'
    .. '"created":1764000000,"model":"mock","choices":[{"index":0,'

if tools and not result then
    if not stream then
        ngx.header["Content-Type"] = "application/json"
        ngx.print('{"id":"chatcmpl-bench","object":"chat.completion",'
            .. '"created":1764000000,"model":"mock","choices":[{"index":0,'
            .. '"message":{"role":"assistant","content":null,"tool_calls":'
            .. '[{"id":"call_bench","type":"function","function":'
            .. '{"name":"get_planets","arguments":"{}"}}]},'
            .. '"finish_reason":"tool_calls"}],' .. usage .. '}')
        return
    end
    ngx.header["Content-Type"] = "text/event-stream"
    ngx.print("data: " .. head .. '"delta":{"role":"assistant",'
        .. '"content":null}}]}\n\n'
        .. "data: " .. head .. '"delta":{"tool_calls":[{"index":0,'
        .. '"id":"call_bench","type":"function","function":'
        .. '{"name":"get_planets","arguments":""}}]}}]}\n\n'
        .. "data: " .. head .. '"delta":{"tool_calls":[{"index":0,'
        .. '"function":{"arguments":"{}"}}]}}]}\n\n'
        .. "data: " .. head .. '"delta":{},"finish_reason":"tool_calls"}]}\n\n'
        .. "data: [DONE]\n\n")
    return
end

if not stream then
    ngx.header["Content-Type"] = "application/json"
    ngx.print('{"id":"chatcmpl-bench","object":"chat.completion",'
        .. '"created":1764000000,"model":"mock","choices":[{"index":0,'
        .. '"message":{"role":"assistant","content":' .. cjson.encode(text)
        .. '},"finish_reason":"stop"}],' .. usage .. '}')
    return
end

ngx.header["Content-Type"] = "text/event-stream"
local out = { "data: " .. head .. '"delta":{"role":"assistant"}}]}\n\n' }
local size = math.ceil(#text / 16)
local i = 1
while i <= #text do
    -- pieces of whole UTF-8 characters
    local j = math.min(i + size - 1, #text)
    while j < #text and text:byte(j + 1) >= 0x80 and text:byte(j + 1) < 0xc0 do
        j = j + 1
    end
    out[#out + 1] = "data: " .. head .. '"delta":{"content":'
        .. cjson.encode(text:sub(i, j)) .. '}}]}\n\n'
    i = j + 1
end
out[#out + 1] = "data: " .. head .. '"delta":{},"finish_reason":"stop"}]}\n\n'
out[#out + 1] = "data: [DONE]\n\n"
ngx.print(table.concat(out))
