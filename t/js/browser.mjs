#!/usr/bin/env node
// Drives the C1Chat frontend (examples/chat, built to dist/) in Debian's
// headless Chromium through playwright-core, the way a person would:
// types two prompts into C1Chat's composer, waits for each rendered answer,
// and takes a screenshot of each.
//
//   node t/js/browser.mjs BASE_URL OUTDIR
//
// Prints one JSON line: {"ok":true,"turn1":{...},"turn2":{...},
// "console_errors":[...],"external_requests":[...]} and exits 0, or
// {"ok":false,"error":"..."} (plus OUTDIR/failure.png) and exits 1.
//
// Environment:
//   FIRST_EXPECT   text the first answer must show   (default "Planet")
//   SECOND_EXPECT  text the second answer must show  (default "Diameter")
//   FIRST_PROMPT, SECOND_PROMPT   the prompts typed
//   TURN_TIMEOUT_MS   per-turn wait (default 30000)
//   CHROMIUM       browser binary (default /usr/bin/chromium)
//
// The expected texts are matched case-sensitively, and only inside the
// newest assistant answer, so the prompt the user typed never matches.
// Requests to any origin other than BASE_URL's are aborted and listed in
// "external_requests": the page must work with our server alone.

import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const [BASE_URL, OUTDIR] = process.argv.slice(2);
if (!BASE_URL || !OUTDIR) {
  console.error("usage: node browser.mjs BASE_URL OUTDIR");
  process.exit(2);
}

const env = process.env;
const TURNS = [
  { prompt: env.FIRST_PROMPT || "Show me a table of the planets", expect: env.FIRST_EXPECT || "Planet" },
  { prompt: env.SECOND_PROMPT || "Now a chart of their sizes", expect: env.SECOND_EXPECT || "Diameter" },
];
const TURN_TIMEOUT = Number(env.TURN_TIMEOUT_MS || 30000);
const CHROMIUM = env.CHROMIUM || "/usr/bin/chromium";
const ORIGIN = new URL(BASE_URL).origin;

// C1Chat (@thesysai/genui-sdk 0.10, Crayon shell) DOM. Each list is tried in
// order; the later entries are looser fallbacks for other SDK versions.
const COMPOSER = [
  "textarea.crayon-shell-thread-composer__input",
  "[class*='composer'] textarea",
  "[class*='composer'] [contenteditable='true']",
  "textarea",
  "[contenteditable='true']",
  "[role='textbox']",
];
const SEND = [
  ".crayon-shell-thread-composer__input-wrapper button",
  "[class*='composer'] button[type='submit']",
  "[class*='composer'] button[aria-label*='send' i]",
  "[class*='composer'] button",
];
const ASSISTANT = [
  ".crayon-shell-thread-message-assistant",
  "[class*='message-assistant']:not([class*='__'])",
];
const RENDER_ERROR = ".c1-content-error"; // "Error while generating response"

const consoleErrors = [];
const externalRequests = [];
const apiCalls = [];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const reEscape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

async function firstVisible(page, selectors, timeout) {
  const deadline = Date.now() + timeout;
  for (;;) {
    for (const sel of selectors) {
      const loc = page.locator(sel);
      const n = await loc.count();
      for (let i = n - 1; i >= 0; i--) {
        const el = loc.nth(i);
        if (await el.isVisible()) return { loc: el, sel };
      }
    }
    if (Date.now() > deadline) return null;
    await sleep(100);
  }
}

async function assistantSelector(page) {
  for (const sel of ASSISTANT) if ((await page.locator(sel).count()) > 0) return sel;
  return ASSISTANT[0];
}

async function turn(page, n, { prompt, expect }) {
  const t0 = Date.now();
  const before = await page.locator(await assistantSelector(page)).count();

  const composer = await firstVisible(page, COMPOSER, TURN_TIMEOUT);
  if (!composer) throw new Error(`turn ${n}: no visible composer (${COMPOSER.join(" | ")})`);
  await composer.loc.click();
  await composer.loc.fill(prompt);

  const apiResponse = page.waitForResponse(
    (r) => r.request().method() === "POST" && new URL(r.url()).pathname.endsWith("/api/chat"),
    { timeout: TURN_TIMEOUT },
  );
  const send = await firstVisible(page, SEND, 0);
  let sentWith;
  if (send && (await send.loc.isEnabled())) {
    await send.loc.click();
    sentWith = `click ${send.sel}`;
  } else {
    await composer.loc.press("Enter");
    sentWith = `Enter in ${composer.sel}`;
  }

  const resp = await apiResponse;
  const status = resp.status();
  const contentType = resp.headers()["content-type"] || "";
  if (status < 200 || status > 299) throw new Error(`turn ${n}: POST /api/chat answered ${status}`);

  // The answer of this turn is the (before+1)-th assistant message.
  const want = new RegExp(reEscape(expect));
  const deadline = t0 + TURN_TIMEOUT;
  let answer, msToText;
  for (;;) {
    const sel = await assistantSelector(page);
    const all = page.locator(sel);
    if ((await all.count()) > before) {
      answer = all.nth(before);
      if ((await answer.locator(RENDER_ERROR).count()) > 0) {
        const txt = (await answer.locator(RENDER_ERROR).first().innerText()).trim();
        throw new Error(`turn ${n}: the SDK could not render the answer: "${txt}"`);
      }
      const hit = answer.getByText(want);
      const k = await hit.count();
      let visible = false;
      for (let i = 0; i < k && !visible; i++) visible = await hit.nth(i).isVisible();
      if (visible) {
        msToText = Date.now() - t0;
        break;
      }
    }
    if (Date.now() > deadline) {
      const got = answer ? (await answer.innerText()).slice(0, 300) : "(no new assistant message)";
      throw new Error(`turn ${n}: "${expect}" not visible in the answer within ${TURN_TIMEOUT} ms; answer shows: ${JSON.stringify(got)}`);
    }
    await sleep(100);
  }

  // Let the stream finish and the last chunk render before the screenshot.
  let timer;
  await Promise.race([
    resp.finished(),
    new Promise((r) => (timer = setTimeout(r, Math.max(0, deadline - Date.now())))),
  ]);
  clearTimeout(timer);
  await sleep(500);

  const text = await answer.innerText();
  if (/"component"|&quot;|<content/.test(text)) {
    throw new Error(`turn ${n}: the answer shows raw C1 markup instead of components: ${JSON.stringify(text.slice(0, 200))}`);
  }
  const shot = path.join(OUTDIR, `turn${n}.png`);
  await page.screenshot({ path: shot });
  return {
    prompt,
    expect,
    sent_with: sentWith,
    status,
    content_type: contentType,
    ms_to_text: msToText,
    ms_total: Date.now() - t0,
    tables: await answer.locator("table").count(),
    svgs: await answer.locator("svg.recharts-surface, svg[class*='chart']").count(),
    text: text.replace(/\s+/g, " ").trim().slice(0, 200),
    screenshot: shot,
  };
}

async function main() {
  fs.mkdirSync(OUTDIR, { recursive: true });
  let browser, page;
  const watchdog = setTimeout(() => {
    console.log(JSON.stringify({ ok: false, error: "watchdog: the whole run took too long" }));
    // Playwright's exit handlers kill the browser it launched.
    process.exit(1);
  }, TURN_TIMEOUT * TURNS.length + 60000);
  try {
    // launch() gives Chromium a fresh temporary profile and removes it on close.
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
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    // Nothing may leave for another origin: abort and record it.
    await context.route(
      (url) => url.protocol.startsWith("http") && url.origin !== ORIGIN,
      (route) => {
        externalRequests.push(route.request().url());
        return route.abort();
      },
    );
    page = await context.newPage();
    page.on("console", (m) => {
      if (m.type() === "error") consoleErrors.push(m.text());
    });
    page.on("pageerror", (e) => consoleErrors.push(`pageerror: ${e.message}`));
    page.on("response", (r) => {
      if (new URL(r.url()).pathname.endsWith("/api/chat")) apiCalls.push(r.status());
    });

    await page.goto(BASE_URL, { waitUntil: "load", timeout: TURN_TIMEOUT });
    const result = { ok: true };
    for (let i = 0; i < TURNS.length; i++) result[`turn${i + 1}`] = await turn(page, i + 1, TURNS[i]);
    result.api_calls = apiCalls;
    result.console_errors = consoleErrors;
    result.external_requests = externalRequests;
    console.log(JSON.stringify(result));
    return 0;
  } catch (e) {
    let shot = null;
    if (page) {
      shot = path.join(OUTDIR, "failure.png");
      try {
        await page.screenshot({ path: shot });
      } catch {
        shot = null;
      }
    }
    console.log(JSON.stringify({
      ok: false,
      error: String(e && e.message ? e.message : e).split("\n")[0],
      screenshot: shot,
      api_calls: apiCalls,
      console_errors: consoleErrors,
      external_requests: externalRequests,
    }));
    return 1;
  } finally {
    clearTimeout(watchdog);
    if (browser) await browser.close().catch(() => {});
  }
}

process.exitCode = await main();
