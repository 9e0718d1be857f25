-- A mock C1 for the benchmarks (content_by_lua_file): streams a chat
-- completion the way C1 does, as chat.completion.chunk events.
--
-- Arguments:
--   n=N, interval=MS  the fixture answer (ngx.var.c1_fixture, a C1
--                     component tree) cut into N deltas, one every MS;
--                     each delta carries a send-time stamp "[[T<us>]]"
--   bytes=B           a long stream instead: B bytes of content in 1 KiB
--                     numbered pieces ("%010d" then filler), no pause
-- A non-streaming request ("stream" absent) gets the whole answer as one
-- chat.completion (with bytes=B: those B bytes as its content).

local ffi = require "ffi"
local cjson = require "cjson"

pcall(ffi.cdef, [[
    struct c1_timeval { long tv_sec; long tv_usec; };
    int gettimeofday(struct c1_timeval *tv, void *tz);
]])

local tv = ffi.new("struct c1_timeval")

local function now_us()
    ffi.C.gettimeofday(tv, nil)
    return tonumber(tv.tv_sec) * 1000000 + tonumber(tv.tv_usec)
end

ngx.req.read_body()
local body = ngx.req.get_body_data() or ""
local stream = body:find('"stream":true', 1, true) ~= nil
local args = ngx.req.get_uri_args()

-- the fixture, escaped, and the whole answer, made once per worker
local cache = package.loaded["c1_bench_mock"]
if not cache then
    cache = {}
    package.loaded["c1_bench_mock"] = cache
end

local function content()
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
    return text
end

local head = '{"id":"chatcmpl-bench","object":"chat.completion.chunk",'
    .. '"created":1764000000,"model":"mock","choices":[{"index":0,'

-- bytes=B: B bytes in 1 KiB numbered pieces ("%010d" then filler)
local function numbered(bytes)
    local filler = string.rep("x", 1014)
    local pieces = {}
    local sent = 0
    while sent < bytes do
        local piece = string.format("%010d", #pieces) .. filler
        pieces[#pieces + 1] = piece
        sent = sent + #piece
    end
    return pieces
end

if not stream and tonumber(args.bytes) then
    ngx.header["Content-Type"] = "application/json"
    ngx.print('{"id":"chatcmpl-bench","object":"chat.completion",'
        .. '"created":1764000000,"model":"mock","choices":[{"index":0,'
        .. '"message":{"role":"assistant","content":"',
        table.concat(numbered(tonumber(args.bytes))),
        '"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,'
        .. '"completion_tokens":20,"total_tokens":30}}')
    return
end

if not stream then
    local key = "answer:" .. ngx.var.c1_fixture
    if not cache[key] then
        cache[key] = '{"id":"chatcmpl-bench","object":"chat.completion",'
            .. '"created":1764000000,"model":"mock","choices":[{"index":0,'
            .. '"message":{"role":"assistant","content":'
            .. cjson.encode(content()) .. '},"finish_reason":"stop"}],'
            .. '"usage":{"prompt_tokens":10,"completion_tokens":20,'
            .. '"total_tokens":30}}'
    end
    ngx.header["Content-Type"] = "application/json"
    ngx.print(cache[key])
    return
end

ngx.header["Content-Type"] = "text/event-stream"
ngx.print("data: " .. head .. '"delta":{"role":"assistant"}}]}\n\n')
ngx.flush(true)

local bytes = tonumber(args.bytes)

if bytes then
    local pieces = numbered(bytes)
    local batch = {}
    for i, piece in ipairs(pieces) do
        batch[#batch + 1] = "data: " .. head .. '"delta":{"content":"'
            .. piece .. '"}}]}\n\n'
        if #batch == 16 or i == #pieces then
            ngx.print(batch)
            local ok = ngx.flush(true)
            if not ok then return end
            batch = {}
        end
    end
else
    local text = content()
    local n = tonumber(args.n) or 100
    local interval = (tonumber(args.interval) or 0) / 1000
    local size = math.ceil(#text / n)
    local from = 1
    for i = 0, n - 1 do
        -- never cut a UTF-8 sequence: a piece ends before a continuation
        -- byte (the trees have a few non-ASCII characters)
        local to = math.min((i + 1) * size, #text)
        while to < #text and text:byte(to + 1) >= 0x80
              and text:byte(to + 1) < 0xc0
        do
            to = to + 1
        end
        local piece = from <= to and text:sub(from, to) or ""
        from = math.max(from, to + 1)
        ngx.print("data: " .. head .. '"delta":{"content":'
            .. cjson.encode(piece .. "[[T" .. string.format("%.0f", now_us())
                            .. "]]")
            .. '}}]}\n\n')
        local ok = ngx.flush(true)
        if not ok then return end
        if interval > 0 then ngx.sleep(interval) end
    end
end

ngx.print("data: " .. head .. '"delta":{},"finish_reason":"stop"}]}\n\n'
    .. "data: [DONE]\n\n")
