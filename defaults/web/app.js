// Skynet web chat. Speaks the gateway protocol (v3, v4 negotiated) over the WebSocket at
// this page's own origin. No framework, nothing from elsewhere; model text only ever
// reaches the page through textContent.
"use strict";

const CLIENT = { id: "webchat-ui", version: "0.1.0", mode: "webchat" };
const SCOPES = ["operator.read", "operator.write"];
const KEYS = { token: "skynet.token", session: "skynet.session", device: "skynet.device" };

const $ = (id) => document.getElementById(id);
const ui = {
  log: $("log"), status: $("status"), session: $("session"), forget: $("forget"),
  composer: $("composer"), input: $("input"), send: $("send"), stop: $("stop"),
  login: $("login"), loginForm: $("login-form"), token: $("token"), sessionKey: $("session-key"),
  loginError: $("login-error"),
};

const state = {
  ws: null,
  ready: false,
  pending: new Map(), // request id -> {resolve, reject}
  runs: new Map(), // runId -> bubble of a run of ours still going
  active: null, // the runId the Stop button aborts
  retries: 0,
  timer: 0,
  halted: false, // no reconnecting until the user acts (wrong token, forgotten token)
};

// localStorage can throw (storage disabled); the page then works for this tab only.
const storage = {
  get: (k) => { try { return localStorage.getItem(k) || ""; } catch { return ""; } },
  set: (k, v) => { try { localStorage.setItem(k, v); } catch { /* this tab only */ } },
  del: (k) => { try { localStorage.removeItem(k); } catch { /* nothing stored */ } },
};

const sessionKey = () => storage.get(KEYS.session) || "main";
const canonical = (k) => (k.startsWith("agent:") ? k : `agent:main:${k}`);
const platform = () => navigator.userAgentData?.platform || navigator.platform || "web";

// crypto.randomUUID exists only in secure contexts; getRandomValues everywhere.
function uuid() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = hex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function hex(bytes) {
  return [...new Uint8Array(bytes)].map((x) => x.toString(16).padStart(2, "0")).join("");
}

function b64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function unb64url(s) {
  return Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
}

// ---- Device identity. Without one the gateway grants a token-only browser client no
// scopes (as OpenClaw does), so the page keeps an Ed25519 key (WebCrypto; needs https or
// localhost) and signs the challenge with it; the token pairs the key on first use.

async function deviceKey() {
  if (!globalThis.crypto?.subtle) return null;
  try {
    let jwk = JSON.parse(storage.get(KEYS.device) || "null");
    if (!jwk) {
      const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
      jwk = await crypto.subtle.exportKey("jwk", pair.privateKey);
      storage.set(KEYS.device, JSON.stringify(jwk));
    }
    const key = await crypto.subtle.importKey("jwk", jwk, { name: "Ed25519" }, false, ["sign"]);
    const id = hex(await crypto.subtle.digest("SHA-256", unb64url(jwk.x)));
    return { key, id, publicKey: jwk.x };
  } catch {
    storage.del(KEYS.device);
    return null;
  }
}

// signedAt follows the gateway's clock (the challenge's ts), so a phone whose clock is off
// still signs within the allowed two minutes.
async function deviceBlock(dev, challenge, token) {
  const signedAt = Math.round((challenge.ts || Date.now()) + (performance.now() - challenge.at));
  const fields = ["v3", dev.id, CLIENT.id, CLIENT.mode, "operator", SCOPES.join(","), signedAt, token,
    challenge.nonce, platform().toLowerCase(), ""];
  const sig = await crypto.subtle.sign("Ed25519", dev.key, new TextEncoder().encode(fields.join("|")));
  return { id: dev.id, publicKey: dev.publicKey, signature: b64url(sig), signedAt, nonce: challenge.nonce };
}

// ---- Connection

function setStatus(kind, text) {
  ui.status.dataset.state = kind;
  ui.status.textContent = text;
}

function connect() {
  clearTimeout(state.timer);
  if (state.ws || state.halted) return;
  const token = storage.get(KEYS.token);
  if (!token) return askToken("");
  setStatus("connecting", "connecting…");
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`);
  state.ws = ws;
  ws.onmessage = (e) => {
    let frame;
    try { frame = JSON.parse(e.data); } catch { return; }
    onFrame(ws, frame, token);
  };
  ws.onclose = () => onClose(ws);
}

// Drops the current socket; its close event is then ignored.
function disconnect() {
  const ws = state.ws;
  state.ws = null;
  state.ready = false;
  for (const p of state.pending.values()) p.reject(new Error("the connection was lost"));
  state.pending.clear();
  ws?.close();
  updateComposer();
}

function onClose(ws) {
  if (state.ws !== ws) return;
  disconnect();
  if (state.halted) return;
  const delay = Math.min(15000, 500 * 2 ** state.retries) * (0.75 + Math.random() / 2);
  state.retries += 1;
  setStatus("offline", `offline, retrying in ${Math.ceil(delay / 1000)} s`);
  state.timer = setTimeout(connect, delay);
}

function reconnectNow() {
  if (!state.ws && !state.halted && storage.get(KEYS.token)) {
    state.retries = 0;
    connect();
  }
}

function request(method, params, ws = state.ws) {
  return new Promise((resolve, reject) => {
    if (!ws || ws.readyState !== WebSocket.OPEN) return reject(new Error("not connected"));
    const id = uuid();
    state.pending.set(id, { resolve, reject });
    ws.send(JSON.stringify({ type: "req", id, method, params }));
  });
}

function onFrame(ws, f, token) {
  if (f.type === "res") {
    const p = state.pending.get(f.id);
    if (!p) return;
    state.pending.delete(f.id);
    if (f.ok) p.resolve(f.payload);
    else p.reject(Object.assign(new Error(f.error?.message || "the request failed"), { info: f.error || {} }));
  } else if (f.type === "event") {
    const p = f.payload || {};
    if (f.event === "connect.challenge") handshake(ws, { nonce: p.nonce || "", ts: p.ts, at: performance.now() }, token);
    else if (f.event === "chat") onChat(p);
    else if (f.event === "agent") onAgent(p);
  }
}

async function handshake(ws, challenge, token) {
  const params = {
    minProtocol: 3, maxProtocol: 4,
    client: { ...CLIENT, platform: platform() },
    role: "operator", scopes: SCOPES, auth: { token },
    locale: navigator.language, userAgent: navigator.userAgent,
  };
  const dev = await deviceKey();
  if (dev) params.device = await deviceBlock(dev, challenge, token);
  let hello;
  try {
    hello = await request("connect", params, ws);
  } catch (e) {
    const info = e.info;
    if (!info || info.retryable) return; // the socket closes; the backoff tries again
    if (info.details?.code === "DEVICE_AUTH_INVALID") storage.del(KEYS.device);
    state.halted = true;
    disconnect();
    const auth = /unauthorized|token/i.test(e.message) || info.details?.code === "AUTH_TOKEN_MISMATCH";
    setStatus("error", auth ? "wrong token" : "refused");
    if (auth) storage.del(KEYS.token);
    return askToken(e.message);
  }
  if (ws !== state.ws) return;
  const granted = hello.auth?.scopes || [];
  if (!SCOPES.every((s) => granted.includes(s) || granted.includes("operator.admin"))) {
    state.halted = true;
    disconnect();
    setStatus("error", "no permission");
    return showNotice("The gateway accepted the token but granted this page no chat permission: the browser " +
      "could not create its device key (that needs Ed25519 in WebCrypto, over https or on localhost). " +
      "Open the page over https or at http://localhost, or use a current browser.");
  }
  state.ready = true;
  state.retries = 0;
  setStatus("online", "online");
  updateComposer();
  await loadHistory();
  await settleRuns();
}

// Runs of ours that ended while the connection was down never got their final event.
async function settleRuns() {
  let ended = false;
  for (const [runId, run] of [...state.runs]) {
    const r = await request("agent.wait", { runId, timeoutMs: 1 }).catch(() => null);
    if (r && r.status !== "timeout") {
      finish(run, runId, "final", "");
      ended = true;
    }
  }
  if (ended) await loadHistory();
}

// ---- Rendering (DOM APIs only)

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

// A small Markdown subset: ``` fenced blocks and `inline code`; the rest stays plain text.
function renderText(target, text) {
  const nodes = [];
  text.split("```").forEach((part, i) => {
    if (i % 2 === 1) {
      const nl = part.indexOf("\n");
      if (nl >= 0 && /^[\w+.#-]*$/.test(part.slice(0, nl).trim())) part = part.slice(nl + 1);
      const pre = el("pre");
      pre.append(el("code", null, part.replace(/\n$/, "")));
      nodes.push(pre);
      return;
    }
    part.split("`").forEach((piece, j) => {
      if (piece) nodes.push(j % 2 === 1 ? el("code", null, piece) : document.createTextNode(piece));
    });
  });
  target.replaceChildren(...nodes);
}

function bubble(role, text) {
  const b = { el: el("div", `msg ${role}`), body: el("div", "text"), chips: el("div", "chips"), text: "", tools: new Map() };
  if (role === "assistant") b.el.append(b.chips);
  b.el.append(b.body);
  setText(b, text);
  return b;
}

const nearBottom = () => ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 80;

function stickToBottom(change) {
  const stick = nearBottom();
  change();
  if (stick) ui.log.scrollTop = ui.log.scrollHeight;
}

function setText(b, text) {
  b.text = text;
  stickToBottom(() => renderText(b.body, text));
}

function append(...nodes) {
  ui.log.querySelector(".empty")?.remove();
  stickToBottom(() => ui.log.append(...nodes));
}

function showNotice(text) {
  append(el("p", "empty error", text));
}

async function loadHistory() {
  let h;
  try {
    h = await request("chat.history", { sessionKey: sessionKey(), limit: 200 });
  } catch (e) {
    return showNotice(`Could not load the history: ${e.message}`);
  }
  const nodes = (h.messages || []).map((m) => {
    const text = (m.content || []).filter((c) => c.type === "text").map((c) => c.text).join("");
    const b = bubble(m.role === "user" ? "user" : "assistant", text);
    b.el.dataset.state = "final";
    return b.el;
  });
  // Runs still going are not in the stored history yet.
  for (const run of state.runs.values()) nodes.push(run.userEl, run.el);
  ui.log.replaceChildren(...nodes);
  if (!nodes.length) ui.log.append(el("p", "empty", "No messages yet. Say hello."));
  ui.log.scrollTop = ui.log.scrollHeight;
}

// ---- Chat

function onChat(p) {
  const run = state.runs.get(p.runId);
  if (!run) {
    // Another tab or device finished a turn in this session: show it.
    if (p.state !== "delta" && p.sessionKey === canonical(sessionKey()) && !state.active) loadHistory();
    return;
  }
  const text = (p.message?.content || []).find((c) => c.type === "text")?.text;
  if (typeof text === "string") setText(run, text);
  else if (p.deltaText) setText(run, run.text + p.deltaText);
  if (p.state === "error") finish(run, p.runId, "error", p.errorMessage || "the answer failed");
  else if (p.state === "aborted") finish(run, p.runId, "aborted", "stopped");
  else if (p.state === "final") finish(run, p.runId, "final", "");
}

function onAgent(p) {
  const run = state.runs.get(p.runId);
  if (!run || p.stream !== "tool") return;
  const d = p.data || {};
  const id = d.toolCallId || d.name;
  let chip = run.tools.get(id);
  if (!chip) {
    chip = el("span", "chip", d.name || "tool");
    run.tools.set(id, chip);
    stickToBottom(() => run.chips.append(chip));
  }
  if (d.phase === "result") chip.classList.add(d.isError ? "error" : "ok");
  chip.title = d.phase === "result" ? (d.isError ? "the tool failed" : "done") : "running";
}

function finish(run, runId, kind, note) {
  run.el.dataset.state = kind;
  run.el.removeAttribute("aria-busy");
  if (note) stickToBottom(() => run.el.append(el("div", "note", note)));
  state.runs.delete(runId);
  if (state.active === runId) state.active = null;
  updateComposer();
}

async function send() {
  const text = ui.input.value.trim();
  if (!text || !state.ready || state.active) return;
  ui.input.value = "";
  autosize();
  const runId = uuid();
  const user = bubble("user", text);
  const run = bubble("assistant", "");
  run.userEl = user.el;
  run.el.dataset.state = "streaming";
  run.el.setAttribute("aria-busy", "true"); // screen readers wait for the whole answer
  append(user.el, run.el);
  state.runs.set(runId, run);
  state.active = runId;
  updateComposer();
  try {
    await request("chat.send", { sessionKey: sessionKey(), message: text, idempotencyKey: runId });
  } catch (e) {
    if (state.runs.has(runId)) finish(run, runId, "error", e.message);
  }
}

function updateComposer() {
  ui.send.disabled = !state.ready || !!state.active;
  ui.send.hidden = !!state.active;
  ui.stop.hidden = !state.active;
}

function autosize() {
  ui.input.style.height = "auto";
  ui.input.style.height = `${ui.input.scrollHeight + 2}px`;
}

// ---- Token and session

function showSession() {
  ui.session.textContent = `session: ${sessionKey()}`;
}

function askToken(message, keepToken = false) {
  ui.loginError.textContent = message || "";
  ui.token.value = keepToken ? storage.get(KEYS.token) : "";
  ui.sessionKey.value = sessionKey();
  ui.login.hidden = false;
  ui.token.focus();
}

ui.loginForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const token = ui.token.value.trim();
  if (!token) return;
  storage.set(KEYS.token, token);
  const key = ui.sessionKey.value.trim();
  if (key && key !== "main") storage.set(KEYS.session, key);
  else storage.del(KEYS.session);
  ui.login.hidden = true;
  showSession();
  disconnect();
  state.runs.clear();
  state.active = null;
  state.halted = false;
  state.retries = 0;
  ui.log.replaceChildren();
  connect();
});

ui.forget.addEventListener("click", () => {
  storage.del(KEYS.token);
  state.halted = true;
  disconnect();
  setStatus("offline", "signed out");
  askToken("");
});

ui.session.addEventListener("click", () => askToken("", true));
ui.login.addEventListener("click", (e) => {
  if (e.target === ui.login && storage.get(KEYS.token) && !state.halted) ui.login.hidden = true;
});

ui.composer.addEventListener("submit", (e) => {
  e.preventDefault();
  send();
});
ui.input.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    send();
  }
});
ui.input.addEventListener("input", autosize);
ui.stop.addEventListener("click", () => {
  if (state.active) request("chat.abort", { sessionKey: sessionKey(), runId: state.active }).catch(() => {});
});
window.addEventListener("online", reconnectNow);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") reconnectNow();
});

showSession();
connect();
