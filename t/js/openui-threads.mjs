#!/usr/bin/env node
// OpenUI Chat's headless store (@openuidev/react-headless 0.7.11,
// createChatStore, what <ChatProvider> makes) against the module, from
// Node: its default thread API client (threadApiUrl) and OpenUI turns
// (apiUrl, streamProtocol: openAIAdapter()), as a page would use them.
//
//   node t/js/openui-threads.mjs BASE_URL
//
// BASE_URL serves /api/chat (c1_pass, c1_history) and /api/threads/
// (c1_threads) with c1_history_owner $cookie_c1_user, and a mock C1
// (examples/mock/c1-mock.lua).  The owner is a cookie, which Node's fetch
// does not keep: this script adds it to every request, as a browser would.
//
// Prints one JSON line: {"ok":true,"steps":[...]} and exits 0, or
// {"ok":false,"error":"...","steps":[...]} and exits 1.

import { createChatStore } from "@openuidev/react-headless/dist/store/createChatStore.js";
import { openAIAdapter } from "@openuidev/react-headless/dist/stream/adapters/index.js";

const BASE_URL = process.argv[2];
if (!BASE_URL) {
  console.error("usage: node openui-threads.mjs BASE_URL");
  process.exit(2);
}
const ORIGIN = new URL(BASE_URL).origin;
const TIMEOUT = Number(process.env.TURN_TIMEOUT_MS || 20000);
const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

// What the store needs of a browser: requestAnimationFrame (it batches a
// stream's updates with it), and the owner's cookie on each request.  The
// answers of /api/chat are watched on their way to the store: how many
// pieces, over how long.
globalThis.requestAnimationFrame = (cb) => setTimeout(() => cb(Date.now()), 16);
globalThis.cancelAnimationFrame = (id) => clearTimeout(id);
let owner = "openui-alice";
let lastAnswer = null;
const realFetch = globalThis.fetch;
globalThis.fetch = async (url, init = {}) => {
  const res = await realFetch(url, { ...init, headers: { ...(init.headers || {}), Cookie: `c1_user=${owner}` } });
  if (new URL(url).pathname !== "/api/chat" || !res.body) return res;
  const seen = { type: res.headers.get("content-type"), pieces: 0, first: 0, last: 0 };
  lastAnswer = seen;
  const body = res.body.pipeThrough(new TransformStream({
    transform(chunk, out) {
      seen.pieces++;
      seen.last = Date.now();
      seen.first ||= seen.last;
      out.enqueue(chunk);
    },
  }));
  return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
};

// the package logs a stream event it cannot parse with console.error
const packageErrors = [];
console.error = (...a) => packageErrors.push(a.map(String).join(" "));

const steps = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function check(cond, what) {
  if (!cond) throw new Error(what);
}

async function until(what, fn, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(20);
  }
}

const newStore = () =>
  createChatStore({
    apiUrl: `${ORIGIN}/api/chat`,
    threadApiUrl: `${ORIGIN}/api/threads`,
    streamProtocol: openAIAdapter(),
  });

// the API directly, as the current owner
async function api(method, route, body) {
  const r = await fetch(`${ORIGIN}/api/threads/${route}`, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {}
  return { status: r.status, json };
}

async function loadThreads(store) {
  store.getState().loadThreads();
  await until("the thread list", () => !store.getState().isLoadingThreads);
  const s = store.getState();
  check(!s.threadListError, `loadThreads: ${s.threadListError}`);
  return s.threads;
}

// one turn; returns how the answer came: its pieces, over how long, and
// how many states of it the store showed
async function turn(store, content, expect) {
  const seen = new Set();
  const unsub = store.subscribe((s) => {
    const last = s.messages[s.messages.length - 1];
    if (last && last.role === "assistant") seen.add(last.content.length);
  });
  lastAnswer = null;
  const before = store.getState().messages.length;
  const t0 = Date.now();
  let timer;
  await Promise.race([
    store.getState().processMessage({ role: "user", content }),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`turn "${content}" took over ${TIMEOUT} ms`)), TIMEOUT);
    }),
  ]).finally(() => clearTimeout(timer));
  // the last update of the stream comes with the next animation frame
  await sleep(50);
  unsub();
  const s = store.getState();
  check(!s.threadError, `turn "${content}": ${s.threadError}`);
  check(s.messages.length === before + 2, `turn "${content}": ${s.messages.length} messages, not ${before + 2}`);
  const [user, answer] = s.messages.slice(-2);
  check(user.role === "user" && user.content === content, `the user message: ${JSON.stringify(user)}`);
  check(answer.role === "assistant" && answer.content.startsWith('<content thesys="true">')
        && answer.content.endsWith("</content>"), `the answer: ${JSON.stringify(answer).slice(0, 200)}`);
  check(answer.content.includes(expect), `the answer has no "${expect}": ${answer.content.slice(0, 300)}`);
  check(lastAnswer && /^text\/event-stream/.test(lastAnswer.type || ""), `the answer's type: ${lastAnswer?.type}`);
  return {
    ms: Date.now() - t0,
    pieces: lastAnswer.pieces,
    spread_ms: lastAnswer.last - lastAnswer.first,
    states: seen.size,
    bytes: answer.content.length,
  };
}

async function run() {
  // a page: an empty list, then two turns on a new thread
  const a = newStore();
  check((await loadThreads(a)).length === 0, "a new owner has no threads");
  const t1 = await turn(a, "Show me a table of the planets", "Planet");
  const id1 = a.getState().selectedThreadId;
  check(UUID4.test(id1 || ""), `the thread made by create: ${id1}`);
  check(t1.pieces > 5 && t1.spread_ms > 50, `the answer arrived in pieces: ${JSON.stringify(t1)}`);
  const t2 = await turn(a, "Now a chart of their sizes", "Answered with 1 earlier turn");
  check(a.getState().selectedThreadId === id1, "the second turn on the same thread");
  const listed = a.getState().threads.find((t) => t.id === id1);
  check(listed && listed.title === "Show me a table of the planets", `the store lists it: ${JSON.stringify(a.getState().threads)}`);
  steps.push({ "create and two turns": { thread: id1, turn1: t1, turn2: t2 } });

  // what the module stored: the same four messages
  const mine = a.getState().messages;
  const stored = await api("GET", `get/${id1}`);
  check(stored.status === 200 && Array.isArray(stored.json) && stored.json.length === 4,
        `GET get/ID: ${JSON.stringify(stored).slice(0, 300)}`);
  stored.json.forEach((m, i) => {
    check(m.role === mine[i].role && m.content === mine[i].content, `stored message ${i} differs from the store's`);
    check(/^[\x21-\x7e]{1,128}$/.test(m.id), `stored message ${i} id: ${m.id}`);
  });
  check(stored.json[0].id === mine[0].id && stored.json[2].id === mine[2].id,
        "the user messages keep the ids the store gave them");
  steps.push({ "stored as streamed": stored.json.map((m) => m.role) });

  // a reload: a new store lists the thread and loads it
  const b = newStore();
  const after = await loadThreads(b);
  check(after.length === 1 && after[0].id === id1 && after[0].title === "Show me a table of the planets"
        && !Number.isNaN(Date.parse(after[0].createdAt)), `after a reload: ${JSON.stringify(after)}`);
  b.getState().selectThread(id1);
  await until("the thread's messages", () => !b.getState().isLoadingMessages);
  const loaded = b.getState().messages;
  check(!b.getState().threadError && JSON.stringify(loaded) === JSON.stringify(stored.json),
        `selectThread loaded: ${JSON.stringify(loaded).slice(0, 300)}`);
  steps.push({ "selectThread after reload": loaded.length });

  // a third turn on the loaded thread
  const t3 = await turn(b, "And the table again", "Answered with 2 earlier turns");
  const stored3 = await api("GET", `get/${id1}`);
  check(stored3.json.length === 6, `six messages after a turn on the loaded thread: ${stored3.json.length}`);
  steps.push({ "turn on the loaded thread": t3 });

  // rename
  const before = (await api("GET", "get")).json.threads.find((t) => t.id === id1);
  b.getState().updateThread({ ...b.getState().threads[0], title: "Planets (OpenUI)" });
  await until("the store's renamed thread", () => {
    const t = b.getState().threads.find((x) => x.id === id1);
    return t && t.title === "Planets (OpenUI)" && !t.isPending;
  });
  const renamed = (await api("GET", "get")).json.threads.find((t) => t.id === id1);
  check(renamed.title === "Planets (OpenUI)" && renamed.createdAt === before.createdAt
        && Date.parse(renamed.updatedAt) >= Date.parse(before.updatedAt), `renamed: ${JSON.stringify(renamed)}`);
  steps.push({ renamed: renamed.title });

  // a second thread, then delete it
  b.getState().switchToNewThread();
  await turn(b, "Book a table for tonight", "Book a table");
  const id2 = b.getState().selectedThreadId;
  check(UUID4.test(id2 || "") && id2 !== id1, `a second thread: ${id2}`);
  check((await api("GET", "get")).json.threads.length === 2, "two threads");
  b.getState().deleteThread(id2);
  await until("the deleted thread gone from the store", () => !b.getState().threads.some((t) => t.id === id2));
  check(b.getState().selectedThreadId === null && b.getState().messages.length === 0,
        "deleting the selected thread switched to a new one");
  const gone = await api("GET", `get/${id2}`);
  check(gone.status === 404 && gone.json?.error?.code === "thread_not_found", `deleted: ${JSON.stringify(gone)}`);
  const left = (await api("GET", "get")).json.threads;
  check(left.length === 1 && left[0].id === id1, `left: ${JSON.stringify(left)}`);
  steps.push({ deleted: id2 });

  // pages: 55 more threads (made by create with a title), listed by the
  // store 50 at a time through nextCursor
  for (let i = 1; i <= 55; i++) {
    const r = await api("POST", "create", { title: `bulk ${i}` });
    check(r.status === 201 && UUID4.test(r.json?.id || ""), `create ${i}: ${JSON.stringify(r)}`);
  }
  const c = newStore();
  const page1 = await loadThreads(c);
  check(page1.length === 50 && c.getState().hasMoreThreads, `page 1: ${page1.length}, more: ${c.getState().hasMoreThreads}`);
  // newest updatedAt first (threads made in the same millisecond may come
  // in either order)
  check(page1.every((t, i) => i === 0 || Date.parse(t.updatedAt) <= Date.parse(page1[i - 1].updatedAt))
        && Date.parse(page1[0].updatedAt) >= Date.parse(page1.find((t) => t.title === "bulk 55").updatedAt),
        `newest first: ${page1.slice(0, 3).map((t) => `${t.title} ${t.updatedAt}`).join(", ")}`);
  c.getState().loadMoreThreads();
  await until("page 2", () => c.getState().threads.length > 50);
  await until("no page after 2", () => !c.getState().hasMoreThreads);
  const all = c.getState().threads;
  check(all.length === 56 && new Set(all.map((t) => t.id)).size === 56 && all.some((t) => t.id === id1),
        `both pages: ${all.length}`);
  steps.push({ pages: [page1.length, all.length - page1.length] });

  // another owner: sees none of it; a turn with the first owner's thread
  // id starts a thread of its own
  owner = "openui-bob";
  const d = newStore();
  check((await loadThreads(d)).length === 0, "the second owner's list is empty");
  const foreign = await api("GET", `get/${id1}`);
  check(foreign.status === 404 && foreign.json?.error?.code === "thread_not_found", `foreign get: ${JSON.stringify(foreign)}`);
  d.getState().selectThread(id1);
  await until("the foreign thread's load", () => !d.getState().isLoadingMessages);
  // the store does not check the status: it takes the error body as the
  // messages
  const fm = d.getState().messages;
  check(!(Array.isArray(fm) && fm.length > 0), `the foreign thread's messages: ${JSON.stringify(fm).slice(0, 200)}`);
  d.getState().setMessages([]);
  const t4 = await turn(d, "Show me a table of the planets", "Planet");
  const bobs = await api("GET", `get/${id1}`);
  check(bobs.status === 200 && bobs.json.length === 2, `the second owner's thread of that id: ${JSON.stringify(bobs).slice(0, 200)}`);
  owner = "openui-alice";
  const alices = await api("GET", `get/${id1}`);
  check(alices.status === 200 && alices.json.length === 6 && alices.json[5].content === stored3.json[5].content,
        "the first owner's thread is untouched");
  steps.push({ "second owner": { list: 0, get: foreign.status, turn: t4.bytes > 0 } });

  check(packageErrors.length === 0, `the package logged: ${packageErrors.slice(0, 3).join(" | ")}`);
}

const watchdog = setTimeout(() => {
  console.log(JSON.stringify({ ok: false, error: "watchdog: the whole run took too long", steps }));
  process.exit(1);
}, TIMEOUT * 8);

try {
  await run();
  console.log(JSON.stringify({ ok: true, steps }));
  process.exitCode = 0;
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e && e.message ? e.message : e), steps, package_errors: packageErrors }));
  process.exitCode = 1;
} finally {
  clearTimeout(watchdog);
}
