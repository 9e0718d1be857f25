-- A mock C1 for the demo (make run without THESYS_API_KEY) and the browser
-- test: answers C1's chat-completions protocol, streamed or not, with one
-- of the component trees in $c1_mock_trees (the component set that
-- <C1Chat> 0.10 renders: a Card root), chosen by the words of the
-- newest user message, at the pacing of a real C1 answer (about 1 s to the
-- first token, then some 80 tokens a second, as measured of C1), sped up
-- by $c1_mock_speed.
-- When the request carries earlier turns, the answer says so.

local cjson = require "cjson.safe"

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

local req = cjson.decode(body or "") or {}
local messages = type(req.messages) == "table" and req.messages or {}

-- the newest user message, and the earlier ones
local newest, earlier = "", {}
for i, m in ipairs(messages) do
    if m.role == "user" and type(m.content) == "string" then
        if i == #messages then
            newest = m.content
        else
            earlier[#earlier + 1] = m.content
        end
    end
end

local function plain(s)
    s = s:gsub("<[^>]*>", " ")
    s = s:gsub("&quot;", '"'):gsub("&lt;", "<"):gsub("&gt;", ">")
         :gsub("&amp;", "&")
    return s
end

local words = plain(newest):lower()
local name = "welcome-card"
if words:find("%f[%a]book") or words:find("%f[%a]form%f[%A]") then
    name = "booking-form"
elseif words:find("chart") or words:find("graph") or words:find("size") then
    name = "planet-sizes-chart"
elseif words:find("table") or words:find("planet") or words:find("list") then
    name = "planets-table"
end

local f = assert(io.open(ngx.var.c1_mock_trees .. "/" .. name .. ".json", "rb"))
local tree = cjson.decode(f:read("*a"))
f:close()

if #earlier > 0 then
    local last = plain(earlier[#earlier]):gsub("^%s+", ""):gsub("%s+$", "")
    local note = {
        component = "TextContent",
        props = {
            textMarkdown = string.format("_Answered with %d earlier turn%s "
                                         .. "of this conversation in mind; "
                                         .. "the last one asked: \"%s\"_",
                                         #earlier,
                                         #earlier == 1 and "" or "s", last)
        }
    }
    table.insert(tree.component.props.children, 1, note)
end

local json = cjson.encode(tree)
local escaped = json:gsub("&", "&amp;"):gsub("\"", "&quot;")
                    :gsub("<", "&lt;"):gsub(">", "&gt;")
local content = '<content thesys="true">' .. escaped .. '</content>'

local speed = tonumber(ngx.var.c1_mock_speed) or 1
local ttft = 1.0 / speed
local piece = 16                                  -- bytes, about 4 tokens
local pause = piece / (320 * speed)               -- 80 tokens a second

local id = "chatcmpl-mock-" .. ngx.var.request_id
local head = '{"id":"' .. id .. '","object":"chat.completion.chunk",'
    .. '"created":' .. ngx.time() .. ',"model":"c1/mock",'
    .. '"choices":[{"index":0,'

ngx.log(ngx.INFO, "c1 mock: answered \"", name, "\" with ", #earlier,
        " earlier turn(s) in the request")

if not req.stream then
    ngx.sleep(ttft + #content / piece * pause)
    ngx.header["Content-Type"] = "application/json"
    ngx.print(cjson.encode({
        id = id, object = "chat.completion", created = ngx.time(),
        model = "c1/mock",
        choices = {{ index = 0, finish_reason = "stop",
                     message = { role = "assistant", content = content } }},
        usage = { prompt_tokens = math.floor(#(body or "") / 4),
                  completion_tokens = math.floor(#content / 4),
                  total_tokens = math.floor((#(body or "") + #content) / 4) }
    }))
    return
end

ngx.header["Content-Type"] = "text/event-stream"
ngx.header["Cache-Control"] = "no-cache"

local function send(s)
    ngx.print(s)
    return ngx.flush(true)
end

if not send("data: " .. head .. '"delta":{"role":"assistant"}}]}\n\n') then
    return
end
ngx.sleep(ttft)

-- pieces of whole UTF-8 characters
local i = 1
while i <= #content do
    local j = math.min(i + piece - 1, #content)
    while j < #content and content:byte(j + 1) >= 0x80
          and content:byte(j + 1) < 0xc0
    do
        j = j + 1
    end
    if not send("data: " .. head .. '"delta":{"content":'
                .. cjson.encode(content:sub(i, j)) .. '}}]}\n\n')
    then
        return
    end
    ngx.sleep(pause)
    i = j + 1
end

send("data: " .. head .. '"delta":{},"finish_reason":"stop"}]}\n\n'
     .. "data: [DONE]\n\n")
