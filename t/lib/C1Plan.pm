package C1Plan;

# A mock C1 told what to answer on each call, for the c1_retry tests
# (t/027-retry.t, t/028-retry-clients.t): Lua locations for a server
# block; the http block needs `lua_shared_dict calls 1m;`.
#
# The mock C1 (/plan) is told what to answer on each call by its query
# string: p=ITEM,ITEM,... (call N gets item N, the last one repeats; with
# cycle=1 the plan starts again after its last item), k=KEY counts the
# calls of one plan apart from another's. Items:
#   200          a chat.completion "answer from MODEL" (a stream when the
#                call asks to stream: the same as `stream`)
#   NNN          that status with an OpenAI-style error body
#   NNNraS       the same with Retry-After: S
#   timeout      sleeps past proxy_read_timeout (1 s)
#   stream       a good stream: role event, "one ", "two ", "three", stop,
#                [DONE]
#   breakafter   the role event, the "one " event, then a reset
#   breakbefore  the role event only, then a reset
#   bad          200 with invalid JSON
#   hangbefore   the role event, then nothing for 3 s
#   errorbefore  the role event, then an error event
#   close        closes the connection without answering
#   slowafter    a good stream that pauses 1 s after the "one " event
#   streamx      a good stream whose content needs JSON escapes: role
#                event, "one ", "\"two\"\n" (as JSON), "three", stop, [DONE]
# 200, stream and streamx take a usage: ITEMuP.C.T (e.g. 200u10.5.15) is
# usage {"prompt_tokens":P,"completion_tokens":C,"total_tokens":T},
# ITEMuP.C the same without total_tokens. A chat.completion then carries
# it; a stream sends it as C1 does, in a usage-only chunk
# {"choices":[],"usage":{...}} after the stop event and before [DONE],
# only when the request had "stream_options": {"include_usage": true}.
# Without u... there is no usage at all (a C1 that sends none).
# Each call is logged at warn ("mock: call N model=M", N counted per k)
# and kept: GET /calls prints "calls=TOTAL", one "KEY N MODEL" line a call
# (with ?bodies=1 each followed by the body it got, its "model" as "*";
# with ?iu=1 each line ends with " iu=I len=L": I is whether the request
# asked for usage, its stream_options.include_usage: "true", "false"
# (anything else there) or "-" (no stream_options), L the bytes of its
# body), then the access log of the c1_pass locations (logs/c1.log, if
# any). ngx.shared.calls keeps "len:N" and "iu:N" for call N.

use strict;
use warnings;

our $Locations = <<'_EOC_';
    location = /plan {
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
            local req = cjson.decode(body)
            local model = tostring(req.model)
            local dict = ngx.shared.calls
            local k = ngx.var.arg_k or "-"
            local n = dict:incr("n", 1, 0)
            local kn = dict:incr("n:" .. k, 1, 0)
            dict:set("call:" .. n, k .. " " .. kn .. " " .. model)
            -- the body with its model taken out, for /calls?bodies=1
            dict:set("body:" .. n, (body:gsub('"model":%s*"[^"]*"', '"model":"*"', 1)))
            local so = req.stream_options
            local iu = "-"
            if so ~= nil then
                iu = (type(so) == "table" and so.include_usage == true)
                     and "true" or "false"
            end
            dict:set("iu:" .. n, iu)
            dict:set("len:" .. n, #body)
            ngx.log(ngx.WARN, "mock: call ", kn, " model=", model)

            local plan = {}
            for item in (ngx.var.arg_p or "200"):gmatch("[^,]+") do
                plan[#plan + 1] = item
            end
            local what = plan[kn] or plan[#plan]
            if ngx.var.arg_cycle then what = plan[(kn - 1) % #plan + 1] end

            local function ev(s)
                ngx.print("data: " .. s .. "\n\n")
                if not ngx.flush(true) then return ngx.exit(499) end
            end
            local role = '{"choices":[{"delta":{"role":"assistant","content":""}}]}'
            local function piece(s)
                return '{"choices":[{"delta":{"content":"' .. s .. '"}}]}'
            end

            -- a usage: ITEMuP.C.T or ITEMuP.C
            local usage
            local base, u = what:match("^(%w-)u([%d.]+)$")
            if base then
                local p, c, t = u:match("^(%d+)%.(%d+)%.?(%d*)$")
                if p then
                    what = base
                    usage = '{"prompt_tokens":' .. p
                        .. ',"completion_tokens":' .. c
                        .. (t ~= "" and (',"total_tokens":' .. t) or "") .. '}'
                end
            end

            if what == "200" and req.stream then what = "stream" end

            if what == "200" then
                ngx.header["Content-Type"] = "application/json"
                ngx.print('{"id":"chatcmpl-r","object":"chat.completion",'
                    .. '"created":1764000000,"model":"' .. model .. '",'
                    .. '"choices":[{"index":0,"message":{"role":"assistant",'
                    .. '"content":"answer from ' .. model .. '"},'
                    .. '"finish_reason":"stop"}]'
                    .. (usage and (',"usage":' .. usage) or '') .. '}')
                return
            end

            local status, ra = what:match("^(%d%d%d)ra(%d+)$")
            if not status then status = what:match("^(%d%d%d)$") end
            if status then
                ngx.status = tonumber(status)
                if ra then ngx.header["Retry-After"] = ra end
                ngx.header["Content-Type"] = "application/json"
                ngx.print('{"error":{"message":"mock ' .. status .. '",'
                    .. '"type":"mock_error","param":null,"code":"mock_'
                    .. status .. '"}}')
                return
            end

            if what == "timeout" then
                ngx.sleep(3)
                ngx.header["Content-Type"] = "application/json"
                ngx.print('{"choices":[{"message":{"content":"late"}}]}')
                return
            end

            if what == "bad" then
                ngx.header["Content-Type"] = "application/json"
                ngx.print('{"choices": [oops]}')
                return
            end

            if what == "close" then
                return ngx.exit(444)
            end

            ngx.header["Content-Type"] = "text/event-stream"
            ev(role)
            if what == "breakbefore" then
                ngx.sleep(0.1)
                return ngx.exit(444)
            end
            if what == "hangbefore" then
                ngx.sleep(3)
                return ngx.exit(444)
            end
            if what == "errorbefore" then
                ev('{"error":{"message":"C1 is overloaded","type":"server_error"}}')
                return
            end
            ev(piece("one "))
            if what == "breakafter" then
                ngx.sleep(0.1)
                return ngx.exit(444)
            end
            if what == "slowafter" then ngx.sleep(1) end
            ev(piece(what == "streamx" and '\\"two\\"\\n' or "two "))
            ev(piece("three"))
            ev('{"choices":[{"delta":{},"finish_reason":"stop"}]}')
            if usage and iu == "true" then
                ev('{"choices":[],"usage":' .. usage .. '}')
            end
            ev('[DONE]')
        }
    }

    location = /calls {
        access_log off;
        content_by_lua_block {
            local dict = ngx.shared.calls
            local n = dict:get("n") or 0
            ngx.print("calls=", n, "\n")
            for i = 1, n do
                ngx.print(dict:get("call:" .. i))
                if ngx.var.arg_iu then
                    ngx.print(" iu=", dict:get("iu:" .. i),
                              " len=", dict:get("len:" .. i))
                end
                ngx.print("\n")
                if ngx.var.arg_bodies then
                    ngx.print(dict:get("body:" .. i), "\n")
                end
            end
            local f = io.open(ngx.config.prefix() .. "logs/c1.log", "rb")
            if f then ngx.print(f:read("*a")) f:close() end
        }
    }

    location = /metrics { access_log off; c1_metrics; }
_EOC_

1;
