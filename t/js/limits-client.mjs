// The official openai npm client against a location with a token budget
// (issue 16), for t/040-limits-clients.t; prints one JSON line.
//
//   node limits-client.mjs BASE_URL sequence N   up to N chat completions,
//        one after the other, until one throws: for each, its status, the
//        X-RateLimit-*-Tokens headers and its usage, or (the one that threw)
//        the error's class, status, type, code, param, message and headers
//   node limits-client.mjs BASE_URL stream       a stream without
//        stream_options: its chunks, content, any usage seen, headers
//   node limits-client.mjs BASE_URL stream_usage the same, asking for
//        include_usage
//
// maxRetries: 0: the client's own retry of a 429 would hide it.

import OpenAI from "openai";

const [baseURL, which, count] = process.argv.slice(2);

const client = new OpenAI({
    baseURL,
    apiKey: "sk-client-side-dummy",
    maxRetries: 0,
    timeout: 10000,
});

const limitHeaders = (h) => ({
    limit: h?.get("x-ratelimit-limit-tokens") ?? null,
    remaining: h?.get("x-ratelimit-remaining-tokens") ?? null,
    reset: h?.get("x-ratelimit-reset-tokens") ?? null,
    retryAfter: h?.get("retry-after") ?? null,
    contentType: h?.get("content-type") ?? null,
});

const ask = { model: "gpt-4o", messages: [{ role: "user", content: "hi" }] };

async function stream(options) {
    const { data, response } = await client.chat.completions
        .create({ ...ask, stream: true, ...options })
        .withResponse();
    let chunks = 0;
    let content = "";
    let usage = null;
    let finish = null;
    for await (const chunk of data) {
        chunks++;
        if (chunk.usage) usage = chunk.usage;
        const choice = chunk.choices[0];
        if (choice?.delta?.content) content += choice.delta.content;
        if (choice?.finish_reason) finish = choice.finish_reason;
    }
    return { status: response.status, chunks, content, usage, finish,
             ...limitHeaders(response.headers) };
}

const cases = {
    async sequence() {
        const calls = [];
        for (let i = 0; i < Number(count || 10); i++) {
            try {
                const { data, response } = await client.chat.completions
                    .create(ask).withResponse();
                calls.push({ ok: true, status: response.status,
                             content: data.choices[0].message.content,
                             usage: data.usage,
                             ...limitHeaders(response.headers) });
            } catch (e) {
                calls.push({
                    ok: false,
                    name: e.constructor.name,
                    rateLimitError: e instanceof OpenAI.RateLimitError,
                    status: e.status ?? null,
                    type: e.type ?? null,
                    code: e.code ?? null,
                    param: e.param === undefined ? "undefined" : e.param,
                    message: e.error?.message ?? null,
                    text: e.message,
                    ...limitHeaders(e.headers),
                });
                break;
            }
        }
        return calls;
    },

    stream() { return stream({}); },

    stream_usage() {
        return stream({ stream_options: { include_usage: true } });
    },
};

console.log(JSON.stringify(await cases[which]()));
