package C1Seq;

# A client inside the test's nginx, for the token limit tests
# (t/038-limits.t): POST /seq with a JSON array of steps makes the requests
# one after another (each on a connection of its own, HTTP/1.1, chunked
# bodies decoded) and prints what each got, in one response, so that one
# block can sleep between requests and check the error log. The http block
# needs `lua_shared_dict calls 1m;` (C1Plan's: the "len:N" of call N).
#
# Steps:
#   {"r": "POST /chat", "b": BODY, "u": USER, "h": {NAME: VALUE}, "nb": 1,
#    "grep": "PATTERN", "port": N, "q": 1}
#       a request; BODY is sent as is, with Content-Type application/json,
#       but for these shorthands: "P" a JSON prompt {"prompt": "x"}; "T"
#       the text/plain prompt "x"; "O" an OpenAI chat {"messages": [...]};
#       "OS" the same with "stream": true; "OSU" that with
#       "stream_options": {"include_usage": true}; "OSF" the same with
#       include_usage false. A POST without "b" sends "P". "u" is the
#       X-User header (default "a", "" for none); "h" more headers ("" for
#       none). It prints the line
#         STATUS limit=L remaining=R reset=D retry=S
#       (the X-RateLimit-Limit-Tokens, X-RateLimit-Remaining-Tokens,
#       X-RateLimit-Reset-Tokens and Retry-After headers, "-" when absent),
#       then the body and "\n" (not with "nb"; with "grep" only the body's
#       lines that match the Lua pattern). "q": prints nothing but a line
#       "STATUS" when the status is not 200.
#   {"r": ..., "gone": "TEXT"}
#       the request as above, but the client reads only until TEXT came
#       (at most 3 s) then closes the connection; prints "gone after TEXT"
#       (or "gone: ERR" when it did not come).
#   {"sleep": SECONDS}
#   {"est": [CALL, CONTENT_BYTES, BEFORE]}
#       the spec's estimate for the mock's call CALL (its body's bytes as
#       the mock got them, see C1Plan) with an answer of CONTENT_BYTES:
#       prints "est=E left=BEFORE-E" with E = ceil(len / 4) +
#       ceil(CONTENT_BYTES / 4).
#   {"keys": [PREFIX, FROM, TO, LEN]}
#       a POST /chat "P" for each user PREFIX .. i, i from FROM to TO,
#       padded with "x" to LEN bytes; prints "keys: A answered, R refused,
#       O other" (R: 429).

use strict;
use warnings;

our $Location = <<'_EOC_';
    location = /seq {
        access_log off;
        content_by_lua_block {
            local cjson = require "cjson"
            ngx.req.read_body()
            local data = ngx.req.get_body_data()
            if not data then
                local f = io.open(ngx.req.get_body_file(), "rb")
                data = f:read("*a")
                f:close()
            end
            local steps = cjson.decode(data)
            local bodies = {
                P = '{"prompt": "x"}',
                O = '{"messages": [{"role": "user", "content": "x"}]}',
                OS = '{"messages": [{"role": "user", "content": "x"}], "stream": true}',
                OSU = '{"messages": [{"role": "user", "content": "x"}], "stream": true,'
                      .. ' "stream_options": {"include_usage": true}}',
                OSF = '{"messages": [{"role": "user", "content": "x"}], "stream": true,'
                      .. ' "stream_options": {"include_usage": false}}',
            }

            local function http(step)
                local meth, uri = step.r:match("^(%u+) (%S+)$")
                local h = {}
                local body = step.b
                if meth == "POST" and body == nil then body = "P" end
                if body == "T" then
                    body = "x"
                    h["Content-Type"] = "text/plain"
                elseif body ~= nil then
                    body = bodies[body] or body
                    h["Content-Type"] = "application/json"
                end
                h["X-User"] = step.u or "a"
                for k, v in pairs(step.h or {}) do h[k] = v end
                local req = { meth, " ", uri, " HTTP/1.1\r\nHost: x\r\n",
                              "Connection: close\r\n" }
                for k, v in pairs(h) do
                    if v ~= "" then req[#req + 1] = k .. ": " .. v .. "\r\n" end
                end
                if body then
                    req[#req + 1] = "Content-Length: " .. #body .. "\r\n"
                end
                req[#req + 1] = "\r\n"
                req[#req + 1] = body or ""

                local s = ngx.socket.tcp()
                s:settimeout(5000)
                assert(s:connect("127.0.0.1", step.port or ngx.var.server_port))
                assert(s:send(table.concat(req)))
                if step.gone then
                    s:settimeout(3000)
                    local got = ""
                    while not got:find(step.gone, 1, true) do
                        local c, err = s:receive(1)
                        if not c then
                            s:close()
                            return "gone: " .. err
                        end
                        got = got .. c
                    end
                    s:close()
                    return "gone after " .. step.gone
                end
                local all, err, partial = s:receive("*a")
                s:close()
                all = all or partial or ""
                local head, rest = all:match("^(.-\r\n)\r\n(.*)$")
                if not head then return "none", {}, all end
                local status = head:match("^HTTP/1%.%d (%d+)")
                local hdr = {}
                for k, v in head:gmatch("\r\n([^:\r\n]+):[ \t]*([^\r\n]*)") do
                    hdr[k:lower()] = v
                end
                if (hdr["transfer-encoding"] or ""):find("chunked", 1, true) then
                    local text = {}
                    while true do
                        local size, after = rest:match("^(%x+)[^\r\n]*\r\n(.*)$")
                        if not size then break end
                        size = tonumber(size, 16)
                        if size == 0 then break end
                        text[#text + 1] = after:sub(1, size)
                        rest = after:sub(size + 3)
                    end
                    rest = table.concat(text)
                end
                return status, hdr, rest
            end

            for _, step in ipairs(steps) do
                if step.sleep then
                    ngx.sleep(step.sleep)

                elseif step.est then
                    local call, content, before = unpack(step.est)
                    local len = ngx.shared.calls:get("len:" .. call) or 0
                    local e = math.ceil(len / 4) + math.ceil(content / 4)
                    ngx.print("est=", e, " left=", before - e, "\n")

                elseif step.keys then
                    local prefix, from, to, len = unpack(step.keys)
                    local ok, refused, other = 0, 0, 0
                    for i = from, to do
                        local u = prefix .. i
                        u = u .. string.rep("x", len - #u)
                        local status = http({ r = "POST /chat", u = u })
                        if status == "200" then ok = ok + 1
                        elseif status == "429" then refused = refused + 1
                        else other = other + 1 end
                    end
                    ngx.print("keys: ", ok, " answered, ", refused, " refused, ",
                              other, " other\n")

                else
                    local status, hdr, body = http(step)
                    if step.gone then
                        ngx.print(status, "\n")
                    elseif step.q then
                        if status ~= "200" then ngx.print(status, "\n") end
                    else
                        ngx.print(status,
                            " limit=", hdr["x-ratelimit-limit-tokens"] or "-",
                            " remaining=", hdr["x-ratelimit-remaining-tokens"] or "-",
                            " reset=", hdr["x-ratelimit-reset-tokens"] or "-",
                            " retry=", hdr["retry-after"] or "-", "\n")
                        if step.grep then
                            for line in body:gmatch("[^\n]+") do
                                if line:find(step.grep) then
                                    ngx.print(line, "\n")
                                end
                            end
                        elseif not step.nb then
                            ngx.print(body, "\n")
                        end
                    end
                end
            end
        }
    }
_EOC_

1;
