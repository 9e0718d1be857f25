"""The fastapi contender: the usual Python backend for C1 (FastAPI on
uvicorn, httpx for the call). One shared httpx.AsyncClient, so that the
calls to the mock reuse keepalive connections; a stream is read with
aiter_lines and each delta's content yielded to a StreamingResponse as soon
as its event is complete."""

import json
import os

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

C1_URL = "http://127.0.0.1:%s/v1/embed/chat/completions" % os.environ["MOCK_PORT"]
HEADERS = {"Authorization": "Bearer sk-bench", "Content-Type": "application/json"}
SYSTEM = "You are a benchmark."
MODEL = "c1/bench/model"

app = FastAPI()
client = httpx.AsyncClient(
    timeout=httpx.Timeout(120.0, connect=10.0),
    limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
)


@app.on_event("shutdown")
async def shutdown():
    await client.aclose()


def error(status, code, message):
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


@app.post("/chat")
async def chat(request: Request):
    try:
        req = json.loads(await request.body())
    except ValueError:
        return error(400, "invalid_json", "the request body is not JSON")
    if not isinstance(req, dict) or not isinstance(req.get("prompt"), str):
        return error(400, "missing_prompt", 'the request needs a "prompt" string')
    stream = req.get("stream") is True

    call = {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": req["prompt"]},
        ],
    }
    if stream:
        call["stream"] = True
    # compact, as C1's SDKs send it (the mock looks for "stream":true)
    body = json.dumps(call, separators=(",", ":"))
    query = request.url.query
    url = C1_URL + "?" + query if query else C1_URL

    if not stream:
        try:
            r = await client.post(url, content=body, headers=HEADERS)
        except httpx.HTTPError as e:
            return error(502, "upstream_failure", str(e))
        if r.status_code != 200:
            return error(502, "c1_error", "C1 answered %d" % r.status_code)
        try:
            content = r.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            content = None
        if not isinstance(content, str):
            return error(502, "bad_answer", "no content in C1's answer")
        return PlainTextResponse(content)

    try:
        r = await client.send(client.build_request("POST", url, content=body, headers=HEADERS),
                              stream=True)
    except httpx.HTTPError as e:
        return error(502, "upstream_failure", str(e))
    if r.status_code != 200:
        await r.aclose()
        return error(502, "c1_error", "C1 answered %d" % r.status_code)

    async def deltas():
        try:
            async for line in r.aiter_lines():
                if not line.startswith("data:"):
                    continue
                # httpx 0.23 keeps the line's end
                data = line[5:].strip(" \r\n")
                if data == "[DONE]":
                    continue    # read on to the end: the connection is kept
                piece = json.loads(data)["choices"][0]["delta"].get("content")
                if piece:
                    yield piece
        finally:
            await r.aclose()

    return StreamingResponse(deltas(), media_type="text/event-stream")
