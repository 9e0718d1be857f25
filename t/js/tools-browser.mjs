#!/usr/bin/env node
// A turn that runs a tool (c1_tool, issue 18) in the C1Chat frontend
// (examples/chat), in Debian's headless Chromium through playwright-core:
// the user asks for a table of the planets; while nginx runs the tool the
// answer shows the think item's title; then the table whose rows came from
// the tool's answer (a value only that file has), the think item gone (it
// is ephemeral); the thread as the API lists it (the user's prompt and the
// final answer only); after a reload, the thread from the sidebar shows the
// table again and no think item (never stored).
//
//   node t/js/tools-browser.mjs BASE_URL OUTDIR
//
// Prints one JSON line: {"ok":true,"steps":[...],"timing":{...},
// "console_errors":[...],"external_requests":[...]} and exits 0, or
// {"ok":false,"error":"...","steps":[...]} (plus OUTDIR/failure.png) and
// exits 1.
//
// Environment:
//   PROMPT        what the user types (default "Show me a table of the planets")
//   THINK_TITLE   the think item's title (default "Looking up the planets")
//   EXPECT        text only the tool's answer has (default "4222.6")
//   TURN_TIMEOUT_MS (default 30000), CHROMIUM (default /usr/bin/chromium)

import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const [BASE_URL, OUTDIR] = process.argv.slice(2);
if (!BASE_URL || !OUTDIR) {
  console.error("usage: node tools-browser.mjs BASE_URL OUTDIR");
  process.exit(2);
}

const env = process.env;
const PROMPT = env.PROMPT || "Show me a table of the planets";
const THINK_TITLE = env.THINK_TITLE || "Looking up the planets";
const EXPECT = env.EXPECT || "4222.6";
const TIMEOUT = Number(env.TURN_TIMEOUT_MS || 30000);
const CHROMIUM = env.CHROMIUM || "/usr/bin/chromium";
const ORIGIN = new URL(BASE_URL).origin;

// C1Chat (@thesysai/genui-sdk 0.10, the Crayon shell) DOM, as in
// t/js/threads-browser.mjs; the SDK renders think items in
// .c1-think-container
const COMPOSER = "textarea.crayon-shell-thread-composer__input";
const SEND = ".crayon-shell-thread-composer__input-wrapper button";
const ASSISTANT = ".crayon-shell-thread-message-assistant";
const RENDER_ERROR = ".c1-content-error";
const THINK = ".c1-think-container";
const THREAD_TITLE = ".crayon-shell-thread-button-title";

const steps = [];
const timing = {};
const consoleErrors = [];
const externalRequests = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function step(name, detail) {
  steps.push(detail === undefined ? name : { [name]: detail });
}

function check(cond, what) {
  if (!cond) throw new Error(what);
}

async function until(what, fn, timeout = TIMEOUT, every = 100) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(every);
  }
}

async function visibleText(scope, text) {
  const hit = scope.getByText(text);
  const n = await hit.count();
  for (let i = 0; i < n; i++) if (await hit.nth(i).isVisible()) return true;
  return false;
}

async function api(ctx, route) {
  const r = await ctx.request.fetch(`${ORIGIN}/api/threads/${route}`);
  const text = await r.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {}
  return { status: r.status(), json };
}

async function run(browser) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await ctx.route(
    (url) => url.protocol.startsWith("http") && url.origin !== ORIGIN,
    (route) => {
      externalRequests.push(route.request().url());
      return route.abort();
    },
  );
  const page = await ctx.newPage();
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => consoleErrors.push(`pageerror: ${e.message}`));

  await page.goto(BASE_URL, { waitUntil: "load", timeout: TIMEOUT });
  const composer = page.locator(COMPOSER);
  await composer.waitFor({ state: "visible", timeout: TIMEOUT });
  await composer.fill(PROMPT);

  const posted = page.waitForResponse(
    (r) => r.request().method() === "POST" && new URL(r.url()).pathname === "/api/chat",
    { timeout: TIMEOUT },
  );
  const t0 = Date.now();
  await page.locator(SEND).last().click();
  const resp = await posted;
  timing.header_ms = Date.now() - t0;
  check(resp.status() === 200, `POST /api/chat answered ${resp.status()}`);
  const threadId = JSON.parse(resp.request().postData() || "{}").threadId;

  // the think item while the tool runs, then the table; polled often, the
  // think item shows for as long as the tool takes
  let answer = null;
  let thinkAt = null;
  let thinkShot = false;
  let tablesWhileThinking = 0;
  await until(`the table showing "${EXPECT}"`, async () => {
    const all = page.locator(ASSISTANT);
    if ((await all.count()) < 1) return false;
    answer = all.nth(0);
    if ((await answer.locator(RENDER_ERROR).count()) > 0) {
      throw new Error("the SDK could not render the answer: " +
        (await answer.locator(RENDER_ERROR).first().innerText()).trim());
    }
    if (thinkAt === null && (await visibleText(answer.locator(THINK), THINK_TITLE))) {
      thinkAt = Date.now() - t0;
      tablesWhileThinking = await answer.locator("table").count();
      if (!thinkShot) {
        thinkShot = true;
        await page.screenshot({ path: path.join(OUTDIR, "think.png") });
      }
    }
    return (await answer.locator("table").count()) > 0 && (await visibleText(answer, EXPECT));
  }, TIMEOUT, 50);
  timing.table_ms = Date.now() - t0;
  timing.think_ms = thinkAt;
  check(thinkAt !== null, `the think item "${THINK_TITLE}" never showed before the table`);
  check(tablesWhileThinking === 0, "a table was there already with the think item");
  step("think item while the tool ran", THINK_TITLE);
  step("table from the tool", EXPECT);

  await resp.finished();
  await until("the composer free again", async () => !(await page.locator(SEND).last().isDisabled()));
  await sleep(300);
  const text = await answer.innerText();
  check(!/"component"|&quot;|<content|thinkitem/.test(text), `raw markup shown: ${text.slice(0, 200)}`);
  check(!(await visibleText(page, THINK_TITLE)), "the think item still shows after the answer (not ephemeral?)");
  step("think item gone after the answer");
  await page.screenshot({ path: path.join(OUTDIR, "turn.png") });

  // the thread as the API lists it: the prompt and the final answer
  check(threadId, "the page sent a threadId");
  const got = await api(ctx, `get/${threadId}`);
  check(got.status === 200 && Array.isArray(got.json), `GET get/${threadId}: ${JSON.stringify(got).slice(0, 300)}`);
  const roles = got.json.map((m) => m.role);
  step("thread API roles", roles);
  const last = got.json[got.json.length - 1] || {};
  check(typeof last.content === "string" && last.content.includes(EXPECT),
        `the stored answer has the tool's rows: ${JSON.stringify(last).slice(0, 300)}`);
  check(!JSON.stringify(got.json).includes("thinkitem"), "a think item was stored in the thread");
  step("stored answer has the rows, no think item");

  // a reload: the thread from the sidebar, the table again, no think item
  await page.reload({ waitUntil: "load", timeout: TIMEOUT });
  await page.locator(COMPOSER).waitFor({ state: "visible", timeout: TIMEOUT });
  const b = page.locator(THREAD_TITLE, { hasText: PROMPT });
  await until(`"${PROMPT}" in the sidebar`, async () => (await b.count()) === 1);
  await b.click();
  const again = await until("the reloaded answer with the table", async () => {
    const all = page.locator(ASSISTANT);
    if ((await all.count()) < 1) return null;
    const a = all.nth(0);
    return (await a.locator("table").count()) > 0 && (await visibleText(a, EXPECT)) ? a : null;
  });
  check((await page.locator(ASSISTANT).count()) === 1, "one answer in the reloaded thread");
  check((await again.locator(THINK).count()) === 0, "a think item in the reloaded thread");
  await page.screenshot({ path: path.join(OUTDIR, "reloaded.png") });
  step("reloaded thread: the table, no think item");
}

async function main() {
  fs.mkdirSync(OUTDIR, { recursive: true });
  let browser;
  const watchdog = setTimeout(() => {
    console.log(JSON.stringify({ ok: false, error: "watchdog: the whole run took too long", steps, timing }));
    process.exit(1);
  }, TIMEOUT * 3 + 60000);
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-dev-shm-usage"],
    });
    await run(browser);
    console.log(JSON.stringify({ ok: true, steps, timing, console_errors: consoleErrors,
                                 external_requests: externalRequests }));
    return 0;
  } catch (e) {
    let shot = null;
    try {
      const pages = browser ? browser.contexts().flatMap((c) => c.pages()) : [];
      if (pages.length) {
        shot = path.join(OUTDIR, "failure.png");
        await pages[pages.length - 1].screenshot({ path: shot });
      }
    } catch {
      shot = null;
    }
    console.log(JSON.stringify({
      ok: false,
      error: String(e && e.message ? e.message : e).split("\n")[0],
      screenshot: shot,
      steps,
      timing,
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
