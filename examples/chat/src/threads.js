// The thread API of ngx_http_c1_module (`c1_threads`) at /api/threads/, in
// the shapes genui-sdk's useThreadListManager and useThreadManager take.
// Whose threads these are is nginx's business (c1_history_owner): the page
// sends nothing but its cookies.

const API = "/api/threads";

async function call(method, route, body) {
  const res = await fetch(`${API}/${route}`, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!res.ok) {
    const err = await res.json().catch(() => null);
    throw new Error(`${method} ${API}/${route}: ${res.status} ${err?.error?.code ?? ""}`);
  }
  return res.status === 204 ? null : res.json();
}

const id = (threadId) => encodeURIComponent(threadId);

// {id, title, createdAt} -> the SDK's Thread
const toThread = (t) => ({ threadId: t.id, title: t.title, createdAt: new Date(t.createdAt) });

export async function fetchThreadList() {
  const threads = [];
  let cursor = null;
  for (let page = 0; page < 50; page++) {
    const q = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
    const res = await call("GET", `get?limit=200${q}`);
    threads.push(...res.threads.map(toThread));
    cursor = res.nextCursor;
    if (!cursor) break;
  }
  return threads;
}

// The SDK's first user message ({role, type: "prompt", message}) gives
// the new thread its title; the turn itself stores the message.
export async function createThread(prompt) {
  const message = { role: "user", content: prompt.message ?? "" };
  return toThread(await call("POST", "create", { messages: [message] }));
}

export async function updateThread(thread) {
  return toThread(await call("PATCH", `update/${id(thread.threadId)}`, { title: thread.title }));
}

export async function deleteThread(threadId) {
  await call("DELETE", `delete/${id(threadId)}`);
}

// [{id, role, content}, ...] oldest first: what useThreadManager's
// loadThread returns
export function loadThread(threadId) {
  return call("GET", `get/${id(threadId)}`);
}

// A message changed in place (a form's state inside an answer): store its
// new content, so that it is there after a reload.
export async function updateMessage(threadId, { id: messageId, role, content }) {
  if (!threadId) return;
  await call("PUT", `message/${id(threadId)}`, { id: messageId, role, content });
}
