#!/usr/bin/env node
// Reads a gzip'd stream in Debian's headless Chromium (playwright-core):
// a page of BASE_URL's origin POSTs to /paced (t/025-gzip.t) with fetch()
// and reads the answer's ReadableStream, noting when each piece arrived.
//
//   node t/js/gzip-stream.mjs BASE_URL
//
// Prints one JSON line: {"ok":true,"prompt":{...},"openai":{...}}, each
// {"status", "encoding" (Content-Encoding), "text" (decoded),
// "chunks": [[Date.now() in ms, text], ...]}; or {"ok":false,"error"}.
//
// Environment: CHROMIUM (default /usr/bin/chromium), DELAY_MS (200).

import { chromium } from "playwright-core";

const [BASE_URL] = process.argv.slice(2);
if (!BASE_URL) {
  console.error("usage: node gzip-stream.mjs BASE_URL");
  process.exit(2);
}

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const DELAY = Number(process.env.DELAY_MS || 200);
const BODIES = {
  prompt: { prompt: "a paced stream" },
  openai: { messages: [{ role: "user", content: "a paced stream" }] },
};

async function main() {
  let browser;
  const watchdog = setTimeout(() => {
    console.log(JSON.stringify({ ok: false, error: "watchdog: the run took too long" }));
    process.exit(1);
  }, 30000);
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
      ],
    });
    const page = await browser.newPage();
    await page.goto(`${BASE_URL}/page`, { waitUntil: "load", timeout: 10000 });
    const result = { ok: true };
    for (const mode of Object.keys(BODIES)) {
      result[mode] = await page.evaluate(
        async ({ url, body }) => {
          const res = await fetch(url, {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify(body),
          });
          const reader = res.body.getReader();
          const dec = new TextDecoder("utf-8", { fatal: true });
          const chunks = [];
          let text = "";
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            const piece = dec.decode(value, { stream: true });
            chunks.push([Date.now(), piece]);
            text += piece;
          }
          text += dec.decode();
          return {
            status: res.status,
            encoding: res.headers.get("content-encoding"),
            text,
            chunks,
          };
        },
        { url: `/paced?delay=${DELAY}&tag=browser-${mode}`, body: BODIES[mode] },
      );
    }
    console.log(JSON.stringify(result));
    return 0;
  } catch (e) {
    console.log(JSON.stringify({ ok: false, error: String(e && e.message ? e.message : e).split("\n")[0] }));
    return 1;
  } finally {
    clearTimeout(watchdog);
    if (browser) await browser.close().catch(() => {});
  }
}

process.exitCode = await main();
