// The node contender: a Node.js http server with the official openai SDK,
// the way a Node backend for C1 is written (Thesys's docs use this SDK with
// baseURL https://api.thesys.dev/v1/embed). One OpenAI client for the
// process: the SDK's fetch keeps connections to the mock alive. A stream is
// `for await` over the SDK's chunks, each delta written as it comes.

import http from 'node:http';
import OpenAI from 'openai';

const port = Number(process.argv[2]);
const mockPort = Number(process.argv[3]);

const client = new OpenAI({
    baseURL: `http://127.0.0.1:${mockPort}/v1/embed`,
    apiKey: 'sk-bench',
    maxRetries: 0,          // the others do not retry either
    timeout: 120 * 1000,
});

const SYSTEM = 'You are a benchmark.';
const MODEL = 'c1/bench/model';

function fail(res, status, code, message) {
    if (res.headersSent) {
        res.destroy();      // a stream that broke off: a cut response
        return;
    }
    const body = JSON.stringify({ error: { code, message } });
    res.writeHead(status, {
        'Content-Type': 'application/json',
        'Content-Length': Buffer.byteLength(body),
    });
    res.end(body);
}

async function chat(req, res, query, raw) {
    let body;
    try {
        body = JSON.parse(raw);
    } catch (e) {
        return fail(res, 400, 'invalid_json', 'the request body is not JSON');
    }
    if (body === null || typeof body !== 'object' || typeof body.prompt !== 'string') {
        return fail(res, 400, 'missing_prompt', 'the request needs a "prompt" string');
    }
    const stream = body.stream === true;
    const params = {
        model: MODEL,
        messages: [
            { role: 'system', content: SYSTEM },
            { role: 'user', content: body.prompt },
        ],
    };
    // the client's query string goes to the mock as it is
    const options = { query: Object.fromEntries(query) };

    try {
        if (!stream) {
            const completion = await client.chat.completions.create(params, options);
            const content = completion.choices?.[0]?.message?.content;
            if (typeof content !== 'string') {
                return fail(res, 502, 'bad_answer', "no content in C1's answer");
            }
            res.writeHead(200, {
                'Content-Type': 'text/plain; charset=utf-8',
                'Content-Length': Buffer.byteLength(content),
            });
            res.end(content);
            return;
        }

        const chunks = await client.chat.completions.create({ ...params, stream: true }, options);
        res.writeHead(200, { 'Content-Type': 'text/event-stream' });
        res.flushHeaders();
        for await (const chunk of chunks) {
            const piece = chunk.choices?.[0]?.delta?.content;
            if (piece) res.write(piece);
            if (res.destroyed) {
                chunks.controller.abort();
                return;
            }
        }
        res.end();
    } catch (e) {
        if (e instanceof OpenAI.APIError && e.status) {
            return fail(res, 502, 'c1_error', `C1 answered ${e.status}`);
        }
        return fail(res, 502, 'upstream_failure', String(e && e.message || e));
    }
}

const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    if (req.method !== 'POST' || url.pathname !== '/chat') {
        return fail(res, 404, 'not_found', 'POST /chat only');
    }
    const parts = [];
    req.on('data', (d) => parts.push(d));
    req.on('end', () => {
        chat(req, res, url.searchParams, Buffer.concat(parts).toString('utf8'))
            .catch((e) => fail(res, 500, 'internal', String(e)));
    });
});

server.keepAliveTimeout = 75 * 1000;
server.listen({ host: '127.0.0.1', port, backlog: 4096 });
