-- A mock C1 for the demo (make run without THESYS_API_KEY) and the browser
-- test: answers C1's chat-completions protocol, streamed or not, with one
-- of the component trees in $c1_mock_trees (the component set that
-- <C1Chat> 0.10 renders: a Card root), chosen by the words of the
-- newest user message, at the pacing of a real C1 answer (about 1 s to the
-- first token, then some 80 tokens a second, as measured of C1), sped up
-- by $c1_mock_speed.
-- When the request carries earlier turns, the answer says so.
--
-- With a tool: when the request offers the tool get_planets (c1_tool in
-- conf.example) and the newest user message asks for the planets' table,
-- the mock first answers with a call of that tool (streamed deltas ending
-- in finish_reason "tool_calls", or a whole answer with message.tool_calls),
-- as C1 does when it needs data it does not hold; when the request then
-- carries the tool's result (a "tool" message after the newest user
-- message), it answers the table built from that result's rows.

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

-- the newest user message (the last message, or the last one before this
-- turn's tool calls and their results), and the earlier ones
local last_user = 0
for i, m in ipairs(messages) do
    if m.role == "user" and type(m.content) == "string" then
        last_user = i
    end
end

local newest, earlier = "", {}
for i, m in ipairs(messages) do
    if m.role == "user" and type(m.content) == "string" then
        if i == last_user then
            newest = m.content
        else
            earlier[#earlier + 1] = m.content
        end
    end
end

-- this turn's tool results (after the newest user message)
local results = {}
for i = last_user + 1, #messages do
    local m = messages[i]
    if type(m) == "table" and m.role == "tool" then
        results[#results + 1] = m
    end
end

-- the tools the request offers, by name
local offered = {}
if type(req.tools) == "table" then
    for _, t in ipairs(req.tools) do
        if type(t) == "table" and type(t["function"]) == "table"
           and type(t["function"].name) == "string"
        then
            offered[t["function"].name] = true
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

local speed = tonumber(ngx.var.c1_mock_speed) or 1
local ttft = 1.0 / speed

local id = "chatcmpl-mock-" .. ngx.var.request_id
local head = '{"id":"' .. id .. '","object":"chat.completion.chunk",'
    .. '"created":' .. ngx.time() .. ',"model":"c1/mock",'
    .. '"choices":[{"index":0,'

local function usage(completion)
    return { prompt_tokens = math.floor(#(body or "") / 4),
             completion_tokens = math.floor(completion / 4),
             total_tokens = math.floor((#(body or "") + completion) / 4) }
end

-- the planets' table: C1 holds no such data, it asks the tool for it
if name == "planets-table" and offered.get_planets and #results == 0 then
    local call_id = "call_" .. ngx.var.request_id:sub(1, 24)
    local arguments = "{}"

    ngx.log(ngx.INFO, "c1 mock: called the tool get_planets (",
            req.stream and "streamed" or "whole", " answer)")

    if not req.stream then
        ngx.sleep(ttft)
        ngx.header["Content-Type"] = "application/json"
        ngx.print(cjson.encode({
            id = id, object = "chat.completion", created = ngx.time(),
            model = "c1/mock",
            choices = {{ index = 0, finish_reason = "tool_calls",
                         message = {
                             role = "assistant", content = cjson.null,
                             tool_calls = {{
                                 id = call_id, type = "function",
                                 ["function"] = { name = "get_planets",
                                                  arguments = arguments }
                             }}
                         } }},
            usage = usage(32)
        }))
        return
    end

    ngx.header["Content-Type"] = "text/event-stream"
    ngx.header["Cache-Control"] = "no-cache"

    -- as OpenAI streams a call: its id and name first, the arguments in
    -- pieces after, then finish_reason "tool_calls"
    local events = {
        '"delta":{"role":"assistant","content":null}}]}',
        '"delta":{"tool_calls":[{"index":0,"id":"' .. call_id .. '",'
            .. '"type":"function","function":{"name":"get_planets",'
            .. '"arguments":""}}]}}]}',
        '"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{"}}]}}]}',
        '"delta":{"tool_calls":[{"index":0,"function":{"arguments":"}"}}]}}]}',
        '"delta":{},"finish_reason":"tool_calls"}]}',
    }
    for n, ev in ipairs(events) do
        ngx.print("data: " .. head .. ev .. "\n\n")
        if not ngx.flush(true) then
            return
        end
        if n == 1 then
            ngx.sleep(ttft)
        end
    end
    ngx.print("data: [DONE]\n\n")
    return
end

local tree, from_tool

if name == "planets-table" and #results > 0 then
    -- the table built from what the tool answered, not from a tree file
    local result = results[#results].content
    local data = type(result) == "string" and cjson.decode(result)
    local rows = {}
    if type(data) == "table" and type(data.planets) == "table" then
        for _, p in ipairs(data.planets) do
            if type(p) == "table" and type(p.name) == "string" then
                local function num(v, fmt)
                    return type(v) == "number" and string.format(fmt, v) or "-"
                end
                rows[#rows + 1] = { children = {
                    p.name, type(p.type) == "string" and p.type or "-",
                    num(p.diameter_km, "%d"), num(p.moons, "%d"),
                    num(p.distance_au, "%.2f"), num(p.day_hours, "%.1f") } }
            end
        end
    end

    local children
    if #rows > 0 then
        from_tool = "get_planets"
        local source = type(data.source) == "string" and data.source
                       or "the tool get_planets"
        children = {
            { component = "TextContent",
              props = { textMarkdown = string.format(
                  "## The planets of the Solar System\n%d planets, from the "
                  .. "Sun outwards.", #rows) } },
            { component = "Table",
              props = {
                  tableHeader = { rows = {
                      { children = "Planet", type = "string" },
                      { children = "Type", type = "string" },
                      { children = "Diameter (km)", type = "number" },
                      { children = "Moons", type = "number" },
                      { children = "Distance from the Sun (AU)",
                        type = "number" },
                      { children = "Length of day (hours)", type = "number" },
                  } },
                  tableBody = { rows = rows } } },
            { component = "TextContent",
              props = { textMarkdown = "_Source: " .. source .. ", as the "
                  .. "tool get_planets (an nginx location) answered it. A "
                  .. "demo answer from the mock C1 inside nginx: set "
                  .. "THESYS_API_KEY to talk to the real C1._" } },
        }
    else
        name = "tool-failed"
        local said = type(result) == "string" and result:sub(1, 200) or ""
        children = {
            { component = "TextContent",
              props = { textMarkdown = "The planets could not be looked up: "
                  .. "the tool get_planets answered \"" .. said .. "\"." } },
        }
    end
    tree = { component = { component = "Card",
                           props = { children = children } },
             error = cjson.null }
else
    local f = assert(io.open(ngx.var.c1_mock_trees .. "/" .. name .. ".json",
                             "rb"))
    tree = cjson.decode(f:read("*a"))
    f:close()
end

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

local piece = 16                                  -- bytes, about 4 tokens
local pause = piece / (320 * speed)               -- 80 tokens a second

ngx.log(ngx.INFO, "c1 mock: answered \"", name, "\" with ", #earlier,
        " earlier turn(s) in the request",
        from_tool and ", the rows from the tool " .. from_tool or "")

if not req.stream then
    ngx.sleep(ttft + #content / piece * pause)
    ngx.header["Content-Type"] = "application/json"
    ngx.print(cjson.encode({
        id = id, object = "chat.completion", created = ngx.time(),
        model = "c1/mock",
        choices = {{ index = 0, finish_reason = "stop",
                     message = { role = "assistant", content = content } }},
        usage = usage(#content)
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
