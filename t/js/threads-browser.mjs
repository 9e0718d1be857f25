#!/usr/bin/env node
// The C1Chat frontend (examples/chat) with its threads kept by nginx
// (c1_threads), in Debian's headless Chromium through playwright-core, as
// a person would use it: two turns in a thread; a reload, the thread in the
// sidebar, both answers shown again; a second thread whose answer is a
// form, the form filled in, a reload, the form as it was left; a rename (the
// SDK's sidebar has no rename: through the API, then the sidebar after a
// reload); a delete through the sidebar's menu; a second user (another
// c1_user cookie) who sees none of it and gets 404 for its ids.
//
//   node t/js/threads-browser.mjs BASE_URL OUTDIR
//
// Prints one JSON line: {"ok":true,"steps":[...],"console_errors":[...],
// "external_requests":[...]} and exits 0, or {"ok":false,"error":"...",
// "steps":[...]} (plus OUTDIR/failure.png) and exits 1.  Every step it
// passed is in "steps", so a failure says how far it got.
//
// Environment: TURN_TIMEOUT_MS (default 30000), CHROMIUM (default
// /usr/bin/chromium).

import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const [BASE_URL, OUTDIR] = process.argv.slice(2);
if (!BASE_URL || !OUTDIR) {
  console.error("usage: node threads-browser.mjs BASE_URL OUTDIR");
  process.exit(2);
}

const TIMEOUT = Number(process.env.TURN_TIMEOUT_MS || 30000);
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const ORIGIN = new URL(BASE_URL).origin;

// C1Chat (@thesysai/genui-sdk 0.10, the Crayon shell) DOM, as in
// t/js/browser.mjs
const COMPOSER = "textarea.crayon-shell-thread-composer__input";
const SEND = ".crayon-shell-thread-composer__input-wrapper button";
const ASSISTANT = ".crayon-shell-thread-message-assistant";
const RENDER_ERROR = ".c1-content-error";
const THREAD = ".crayon-shell-thread-button";
const THREAD_TITLE = ".crayon-shell-thread-button-title";
const THREAD_MENU = ".crayon-shell-thread-button-dropdown-trigger";
const MENU_ITEM = ".crayon-shell-thread-button-dropdown-menu-item";
const NEW_CHAT = ".crayon-shell-new-chat-button";

const FIRST = { prompt: "Show me a table of the planets", expect: "Planet" };
const SECOND = { prompt: "Now a chart of their sizes", expect: "Answered with 1 earlier turn" };
const FORM = { prompt: "Book a table for tonight", expect: "Book a table" };
const FORM_INPUT = "input[name='guest_name']";
const GUEST = "Maria Rossi";
const RENAMED = "Planets, renamed";

const steps = [];
const consoleErrors = [];
const externalRequests = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function step(name, detail) {
  steps.push(detail === undefined ? name : { [name]: detail });
}

function check(cond, what) {
  if (!cond) throw new Error(what);
}

// poll fn() until it gives something truthy, bounded by TIMEOUT
async function until(what, fn, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(100);
  }
}

async function visibleText(scope, text) {
  const hit = scope.getByText(text);
  const n = await hit.count();
  for (let i = 0; i < n; i++) if (await hit.nth(i).isVisible()) return true;
  return false;
}

// the sidebar's thread titles, in order
async function sidebar(page) {
  const t = page.locator(THREAD_TITLE);
  const out = [];
  for (let i = 0; i < (await t.count()); i++) out.push((await t.nth(i).innerText()).trim());
  return out;
}

// the answer number n (0-based) of the shown thread, once it shows expect
async function answer(page, n, expect) {
  return until(`answer ${n + 1} showing "${expect}"`, async () => {
    const all = page.locator(ASSISTANT);
    if ((await all.count()) <= n) return null;
    const a = all.nth(n);
    if ((await a.locator(RENDER_ERROR).count()) > 0) {
      throw new Error(`answer ${n + 1}: the SDK could not render it: ` +
        (await a.locator(RENDER_ERROR).first().innerText()).trim());
    }
    return (await visibleText(a, expect)) ? a : null;
  });
}

// one turn: type, send, wait for the streamed answer; returns the threadId
// the page sent with it
async function turn(page, { prompt, expect }) {
  const before = await page.locator(ASSISTANT).count();
  const composer = page.locator(COMPOSER);
  await composer.waitFor({ state: "visible", timeout: TIMEOUT });
  await composer.fill(prompt);
  const posted = page.waitForResponse(
    (r) => r.request().method() === "POST" && new URL(r.url()).pathname === "/api/chat",
    { timeout: TIMEOUT },
  );
  await page.locator(SEND).last().click();
  const resp = await posted;
  check(resp.status() === 200, `POST /api/chat answered ${resp.status()}`);
  const threadId = JSON.parse(resp.request().postData() || "{}").threadId;
  const a = await answer(page, before, expect);
  await resp.finished();
  // the page has rendered the whole stream when the composer takes input again
  await until("the composer free again", async () => !(await page.locator(SEND).last().isDisabled()));
  const text = await a.innerText();
  check(!/"component"|&quot;|<content/.test(text), `raw C1 markup shown: ${text.slice(0, 200)}`);
  return threadId;
}

// the API as the page's user (the context's cookies)
async function api(ctx, method, route, body) {
  const r = await ctx.request.fetch(`${ORIGIN}/api/threads/${route}`, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    data: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {}
  return { status: r.status(), json, type: r.headers()["content-type"] || "" };
}

async function openThread(page, title) {
  const b = page.locator(THREAD_TITLE, { hasText: title });
  await until(`"${title}" in the sidebar`, async () => (await b.count()) === 1);
  await b.click();
}

async function reload(page) {
  await page.reload({ waitUntil: "load", timeout: TIMEOUT });
  await page.locator(COMPOSER).waitFor({ state: "visible", timeout: TIMEOUT });
  // the sidebar has loaded the list when the API answered
}

async function newContext(browser, cookie) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await ctx.route(
    (url) => url.protocol.startsWith("http") && url.origin !== ORIGIN,
    (route) => {
      externalRequests.push(route.request().url());
      return route.abort();
    },
  );
  if (cookie) await ctx.addCookies([{ name: "c1_user", value: cookie, url: ORIGIN }]);
  const page = await ctx.newPage();
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => consoleErrors.push(`pageerror: ${e.message}`));
  return { ctx, page };
}

async function run(browser) {
  const { ctx, page } = await newContext(browser);
  let last = page;
  const listed = page.waitForResponse((r) => new URL(r.url()).pathname === "/api/threads/get", { timeout: TIMEOUT });
  await page.goto(BASE_URL, { waitUntil: "load", timeout: TIMEOUT });
  check((await listed).status() === 200, "GET /api/threads/get on load");
  const cookie = (await ctx.cookies(ORIGIN)).find((c) => c.name === "c1_user");
  check(cookie && /^[0-9a-f]{32}$/.test(cookie.value), `nginx set the c1_user cookie: ${JSON.stringify(cookie)}`);
  step("cookie", { httpOnly: cookie.httpOnly });
  check((await sidebar(page)).length === 0, "a new user's sidebar is empty");

  // thread 1: two turns
  const t1 = await turn(page, FIRST);
  const t1b = await turn(page, SECOND);
  check(t1 && t1 === t1b, `both turns on one thread: ${t1}, ${t1b}`);
  check(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(t1),
        `the thread id is the module's UUID v4: ${t1}`);
  await page.screenshot({ path: path.join(OUTDIR, "thread1.png") });
  step("two turns", t1);

  // a reload: the thread is in the sidebar, opening it shows both answers
  await reload(page);
  await openThread(page, FIRST.prompt);
  const a1 = await answer(page, 0, FIRST.expect);
  await answer(page, 1, SECOND.expect);
  check((await a1.locator("table").count()) > 0, "the first answer is a table again");
  check((await page.locator(ASSISTANT).count()) === 2, "two answers in the reloaded thread");
  await page.screenshot({ path: path.join(OUTDIR, "thread1-reloaded.png") });
  step("reloaded thread shows both answers");

  // thread 2: a form, filled in
  await page.locator(NEW_CHAT).first().click();
  await until("an empty new chat", async () => (await page.locator(ASSISTANT).count()) === 0);
  const t2 = await turn(page, FORM);
  check(t2 && t2 !== t1, `a second thread: ${t2}`);
  const input = page.locator(FORM_INPUT);
  await input.waitFor({ state: "visible", timeout: TIMEOUT });
  const saved = page.waitForResponse(
    (r) => r.request().method() === "PUT" && new URL(r.url()).pathname === `/api/threads/message/${t2}`
           && (r.request().postData() || "").includes(GUEST),
    { timeout: TIMEOUT },
  );
  // the SDK's Input keeps what was typed when it loses the focus
  await input.fill(GUEST);
  await input.press("Tab");
  const put = await saved;
  check(put.status() === 200, `PUT message answered ${put.status()}`);
  const stored = await until("the form's state stored", async () => {
    const r = await api(ctx, "GET", `get/${t2}`);
    return r.status === 200 && r.json.length === 2 && r.json[1].content.includes(GUEST) && r.json;
  });
  check(stored[1].role === "assistant" && stored[0].role === "user", "user then assistant");
  step("form filled in, stored", { message: stored[1].id });

  await reload(page);
  await openThread(page, FORM.prompt);
  await answer(page, 0, FORM.expect);
  await until(`the form shows "${GUEST}" after the reload`, async () =>
    (await page.locator(FORM_INPUT).count()) === 1 && (await page.locator(FORM_INPUT).inputValue()) === GUEST);
  await page.screenshot({ path: path.join(OUTDIR, "form-reloaded.png") });
  step("form state back after reload");

  // rename thread 1 (through the API: the SDK's sidebar has no rename)
  const ren = await api(ctx, "PATCH", `update/${t1}`, { title: RENAMED });
  check(ren.status === 200 && ren.json.title === RENAMED && ren.json.id === t1, `rename: ${JSON.stringify(ren)}`);
  await reload(page);
  await until("the new title in the sidebar", async () => {
    const s = await sidebar(page);
    return s.includes(RENAMED) && !s.includes(FIRST.prompt) && s.includes(FORM.prompt) && s.length === 2;
  });
  step("renamed", await sidebar(page));

  // delete thread 2 through the sidebar's menu
  const row = page.locator(THREAD, { has: page.locator(THREAD_TITLE, { hasText: FORM.prompt }) });
  const deleted = page.waitForResponse(
    (r) => r.request().method() === "DELETE" && new URL(r.url()).pathname === `/api/threads/delete/${t2}`,
    { timeout: TIMEOUT },
  );
  await row.hover();
  await row.locator(THREAD_MENU).click();
  await page.locator(MENU_ITEM, { hasText: "Delete" }).click();
  check((await deleted).status() === 204, "DELETE answered 204");
  await until("the deleted thread gone from the sidebar", async () =>
    JSON.stringify(await sidebar(page)) === JSON.stringify([RENAMED]));
  await reload(page);
  await until("still gone after a reload", async () =>
    JSON.stringify(await sidebar(page)) === JSON.stringify([RENAMED]));
  const gone = await api(ctx, "GET", `get/${t2}`);
  check(gone.status === 404 && gone.json?.error?.code === "thread_not_found", `the deleted thread: ${JSON.stringify(gone)}`);
  const list = await api(ctx, "GET", "get");
  check(list.status === 200 && list.json.threads.length === 1 && list.json.threads[0].id === t1,
        `the list: ${JSON.stringify(list.json)}`);
  step("deleted through the sidebar");

  // a second user: another cookie
  const other = "second-user-" + Date.now();
  const b = await newContext(browser, other);
  last = b.page;
  const listed2 = b.page.waitForResponse((r) => new URL(r.url()).pathname === "/api/threads/get", { timeout: TIMEOUT });
  await b.page.goto(BASE_URL, { waitUntil: "load", timeout: TIMEOUT });
  const l2 = await listed2;
  check(l2.status() === 200, "the second user's list");
  const l2json = await l2.json();
  check(Array.isArray(l2json.threads) && l2json.threads.length === 0, `the second user's list is empty: ${JSON.stringify(l2json)}`);
  const c2 = (await b.ctx.cookies(ORIGIN)).find((c) => c.name === "c1_user");
  check(c2 && c2.value === other, "nginx kept the second user's own cookie");
  await sleep(500);
  check((await sidebar(b.page)).length === 0, "the second user's sidebar is empty");
  const foreign = {};
  for (const [m, route, body] of [
    ["GET", `get/${t1}`],
    ["PATCH", `update/${t1}`, { title: "mine now" }],
    ["PUT", `message/${t1}`, { id: stored[0].id, content: "mine now" }],
    ["DELETE", `delete/${t1}`],
  ]) {
    const r = await api(b.ctx, m, route, body);
    foreign[`${m} ${route.split("/")[0]}`] = r.status;
    check(r.status === 404 && r.json?.error?.code === "thread_not_found", `${m} ${route} as the second user: ${JSON.stringify(r)}`);
  }
  step("second user gets 404", foreign);

  // and the first user's thread is untouched
  const mine = await api(ctx, "GET", `get/${t1}`);
  check(mine.status === 200 && mine.json.length === 4, `the first user's thread: ${JSON.stringify(mine).slice(0, 200)}`);
  const mineList = await api(ctx, "GET", "get");
  check(mineList.json.threads[0].title === RENAMED, "still renamed");
  step("first user's thread intact");
  return last;
}

async function main() {
  fs.mkdirSync(OUTDIR, { recursive: true });
  let browser;
  const watchdog = setTimeout(() => {
    console.log(JSON.stringify({ ok: false, error: "watchdog: the whole run took too long", steps }));
    process.exit(1);
  }, TIMEOUT * 6 + 60000);
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-dev-shm-usage"],
    });
    await run(browser);
    console.log(JSON.stringify({ ok: true, steps, console_errors: consoleErrors, external_requests: externalRequests }));
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
