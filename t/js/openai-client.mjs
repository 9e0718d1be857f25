// Drives a module location with the official openai npm client and prints
// one JSON line per case for t/010-openai-client.t to check.
//
//   node openai-client.mjs BASE_URL CASE

import OpenAI from "openai";

const [baseURL, which] = process.argv.slice(2);

const client = new OpenAI({
    baseURL,
    apiKey: "sk-client-side-dummy",
    maxRetries: 0,
    timeout: 10000,
});

const cases = {
    async completion() {
        const c = await client.chat.completions.create({
            model: "gpt-4o",
            messages: [
                { role: "system", content: "client system" },
                { role: "user", content: "Show me a \"table\" </content>" },
            ],
            temperature: 0.2,
        });
        return {
            object: c.object,
            content: c.choices[0].message.content,
            finish_reason: c.choices[0].finish_reason,
            usage: c.usage,
        };
    },

    async error() {
        try {
            await client.chat.completions.create({
                model: "x",
                messages: [{ role: "user", content: "hi" }],
            });
            return { thrown: false };
        } catch (e) {
            return {
                thrown: true,
                name: e.constructor.name,
                status: e.status,
                message: e.error?.message,
                code: e.code,
            };
        }
    },

    async stream() {
        const stream = await client.chat.completions.create({
            model: "x",
            messages: [{ role: "user", content: "hi" }],
            stream: true,
            stream_options: { include_usage: true },
        });
        let content = "";
        let chunks = 0;
        let usage = null;
        let finish = null;
        for await (const chunk of stream) {
            chunks++;
            if (chunk.usage) usage = chunk.usage;
            const choice = chunk.choices[0];
            if (choice?.delta?.content) content += choice.delta.content;
            if (choice?.finish_reason) finish = choice.finish_reason;
        }
        return { content, chunks, usage, finish };
    },

    async stream_broken() {
        let content = "";
        try {
            const stream = await client.chat.completions.create({
                model: "x",
                messages: [{ role: "user", content: "hi" }],
                stream: true,
            });
            for await (const chunk of stream) {
                content += chunk.choices[0]?.delta?.content ?? "";
            }
            return { thrown: false, content };
        } catch (e) {
            return { thrown: true, name: e.constructor.name, content,
                     message: e.error?.message ?? e.message };
        }
    },

    async bad_request() {
        try {
            await client.chat.completions.create({ model: "x", messages: [] });
            return { thrown: false };
        } catch (e) {
            return { thrown: true, status: e.status, code: e.code,
                     param: e.param };
        }
    },
};

console.log(JSON.stringify(await cases[which]()));
