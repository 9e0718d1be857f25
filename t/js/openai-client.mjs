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
