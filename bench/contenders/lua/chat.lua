-- The lua contender (content_by_lua_file): the OpenResty way, as Kong or
-- APISIX plugins do it. Prompt JSON in (cjson); non-streamed: a subrequest
-- (ngx.location.capture) to the internal keepalive proxy location /_c1;
-- streamed: a cosocket speaking HTTP/1.1 to the mock itself (keepalive pool
-- via setkeepalive), de-chunking and splitting SSE events as they come, each
-- delta's content sent with ngx.print + ngx.flush(true).

local cjson = require "cjson.safe"

local SYSTEM = "You are a benchmark."
local MODEL = "c1/bench/model"
local PATH = "/v1/embed/chat/completions"

local function fail(status, code, message)
    ngx.status = status
    ngx.header.content_type = "application/json"
    ngx.print(cjson.encode({ error = { code = code, message = message } }))
    return ngx.exit(status)
end

ngx.req.read_body()
local body = ngx.req.get_body_data()
if not body then
    local file = ngx.req.get_body_file()
    if file then
        local f = io.open(file, "rb")
        if f then body = f:read("*a"); f:close() end
    end
end

local req = body and cjson.decode(body)
if type(req) ~= "table" then
    return fail(400, "invalid_json", "the request body is not a JSON object")
end
if type(req.prompt) ~= "string" then
    return fail(400, "missing_prompt", "the request needs a \"prompt\" string")
end
local stream = req.stream == true

local call = {
    model = MODEL,
    messages = {
        { role = "system", content = SYSTEM },
        { role = "user", content = req.prompt },
    },
}
if stream then call.stream = true end
local payload = cjson.encode(call)

if not stream then
    local res = ngx.location.capture("/_c1", {
        method = ngx.HTTP_POST, body = payload, args = ngx.var.args,
    })
    if res.status ~= 200 then
        return fail(502, "c1_error", "C1 answered " .. res.status)
    end
    local answer = cjson.decode(res.body)
    local content = type(answer) == "table" and type(answer.choices) == "table"
        and answer.choices[1] and type(answer.choices[1].message) == "table"
        and answer.choices[1].message.content
    if type(content) ~= "string" then
        return fail(502, "bad_answer", "no content in C1's answer")
    end
    ngx.header.content_type = "text/plain; charset=utf-8"
    ngx.print(content)
    return
end

-- streamed: HTTP/1.1 over a cosocket
local port = tonumber(ngx.var.c1_mock_port)
local sock = ngx.socket.tcp()
sock:settimeouts(10000, 30000, 120000)
local ok, err = sock:connect("127.0.0.1", port)
if not ok then
    return fail(502, "upstream_failure", "connect: " .. err)
end

local args = ngx.var.args
local request = "POST " .. PATH .. (args and ("?" .. args) or "") .. " HTTP/1.1\r\n"
    .. "Host: 127.0.0.1:" .. port .. "\r\n"
    .. "Authorization: Bearer sk-bench\r\n"
    .. "Content-Type: application/json\r\n"
    .. "Accept: text/event-stream\r\n"
    .. "Content-Length: " .. #payload .. "\r\n\r\n" .. payload
ok, err = sock:send(request)
if not ok then
    sock:close()
    return fail(502, "upstream_failure", "send: " .. err)
end

local line
line, err = sock:receive("*l")
local status = line and tonumber(line:match("^HTTP/1%.%d (%d%d%d)"))
if not status then
    sock:close()
    return fail(502, "upstream_failure", "status line: " .. (err or line))
end

local chunked, length, close = false, nil, false
while true do
    line, err = sock:receive("*l")
    if not line then
        sock:close()
        return fail(502, "upstream_failure", "headers: " .. err)
    end
    if line == "" then break end
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name then
        name = name:lower()
        if name == "transfer-encoding" then
            chunked = value:lower():find("chunked", 1, true) ~= nil
        elseif name == "content-length" then
            length = tonumber(value)
        elseif name == "connection" then
            close = value:lower() == "close"
        end
    end
end

if status ~= 200 then
    sock:close()
    return fail(502, "c1_error", "C1 answered " .. status)
end

ngx.header.content_type = "text/event-stream"
ngx.send_headers()
ngx.flush(true)

-- SSE: complete lines are taken from "pending"; an event ends at an empty
-- line, and its data's delta content goes out at once
local pending, data, finished, broken = "", nil, false, false

local function event(d)
    if d == "[DONE]" then
        finished = true
        return
    end
    local chunk = cjson.decode(d)
    local choice = type(chunk) == "table" and type(chunk.choices) == "table"
        and chunk.choices[1]
    local piece = type(choice) == "table" and type(choice.delta) == "table"
        and choice.delta.content
    if type(piece) == "string" and piece ~= "" then
        ngx.print(piece)
        local sent, ferr = ngx.flush(true)
        if not sent then
            broken = true    -- the client is gone
            ngx.log(ngx.INFO, "client: ", ferr)
        end
    end
end

local function feed(bytes)
    pending = pending .. bytes
    local from = 1
    while true do
        local nl = pending:find("\n", from, true)
        if not nl then break end
        local l = pending:sub(from, nl - 1)
        from = nl + 1
        if l:byte(-1) == 13 then l = l:sub(1, -2) end
        if l == "" then
            if data then event(data); data = nil end
        elseif l:sub(1, 5) == "data:" then
            local v = l:sub(6)
            if v:byte(1) == 32 then v = v:sub(2) end
            data = data and (data .. "\n" .. v) or v
        end
    end
    pending = from > #pending and "" or pending:sub(from)
end

local complete = false
if chunked then
    while not broken do
        line, err = sock:receive("*l")
        if not line then break end
        local size = tonumber(line:match("^%x+"), 16)
        if not size then break end
        if size == 0 then
            -- trailers, up to the empty line
            repeat line, err = sock:receive("*l") until not line or line == ""
            complete = line ~= nil
            break
        end
        local bytes
        bytes, err = sock:receive(size)
        if not bytes then break end
        feed(bytes)
        if not sock:receive(2) then break end
    end
elseif length then
    local left = length
    while left > 0 and not broken do
        local bytes
        bytes, err = sock:receive(left < 65536 and left or 65536)
        if not bytes then break end
        left = left - #bytes
        feed(bytes)
    end
    complete = left == 0
else
    close = true
    while not broken do
        local bytes, rerr, partial = sock:receiveany(65536)
        if not bytes then complete = rerr == "closed"; break end
        feed(bytes)
    end
end

if data then event(data) end

if complete and not close and not broken then
    sock:setkeepalive(60000, 64)
else
    sock:close()
end

if broken then
    return ngx.exit(ngx.ERROR)    -- the client went away
end
if not finished or not complete then
    ngx.log(ngx.ERR, "the C1 stream broke off: ", err or "no [DONE]")
    return ngx.exit(ngx.ERROR)    -- a cut response, not a clean end
end
