#!/usr/bin/env node
// Connectivity check against a gateway using the real OpenClaw Node SDK.
//
//   node openclaw_check.mjs --lib v3|v4 --url ws://127.0.0.1:PORT --token TOKEN --expect ok|refused
//                           [--timeout MS] [--identity PATH] [--scopes a,b] [--client-id ID]
//
//   --lib v3   openclaw-node@0.1.0  (npm alias "ocn3", protocol 3, connect min=max=3)
//   --lib v4   openclaw-node@0.14.0 (npm alias "ocn4", protocol 4, connect min=max=4)
//   --expect ok       connect must succeed with hello-ok for the library's protocol,
//                     then `health` (client.health()) must return ok:true and
//                     `status` (client.request("status")) must return an object.
//   --expect refused  connect must be answered by an error res carrying an auth error
//                     (details.code AUTH_TOKEN_MISMATCH or "unauthorized"/"token mismatch"
//                     in the message) and the socket must close (1008 when the code is
//                     observable). Reconnect is disabled, so this ends promptly.
//   --timeout  overall deadline in ms (default 10000). Timeout => exit 2.
//   --identity device identity file to use. Default: a fresh temporary file that is
//              deleted at exit, so every run is a new, unpaired device and nothing
//              under $HOME is touched. Pass a path to reuse an identity (and, with v4,
//              the deviceToken the library persists there from hello-ok.auth.deviceToken).
//
// Prints exactly one JSON line on stdout. Exit: 0 expectation met, 1 not met,
// 2 timeout, 3 usage / setup error. Needs Node >= 22 (global WebSocket).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const LIBS = {
  v3: { pkg: "ocn3", protocol: 3 },
  v4: { pkg: "ocn4", protocol: 4 },
};

function usage(msg) {
  if (msg) process.stderr.write(`openclaw_check: ${msg}\n`);
  process.stderr.write(
    "usage: node openclaw_check.mjs --lib v3|v4 --url ws://HOST:PORT --token TOKEN --expect ok|refused [--timeout MS] [--identity PATH] [--scopes a,b] [--client-id ID]\n",
  );
  process.exit(3);
}

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) usage(`unexpected argument ${a}`);
    const eq = a.indexOf("=");
    if (eq > 0) {
      out[a.slice(2, eq)] = a.slice(eq + 1);
    } else {
      if (i + 1 >= argv.length) usage(`missing value for ${a}`);
      out[a.slice(2)] = argv[++i];
    }
  }
  return out;
}

const opts = parseArgs(process.argv.slice(2));
const lib = LIBS[opts.lib];
if (!lib) usage("--lib must be v3 or v4");
if (!opts.url) usage("--url is required");
if (opts.token === undefined) usage("--token is required");
if (opts.expect !== "ok" && opts.expect !== "refused") usage("--expect must be ok or refused");
const timeoutMs = opts.timeout ? Number(opts.timeout) : 10000;
if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) usage("--timeout must be a positive number of ms");
if (typeof globalThis.WebSocket === "undefined") usage(`Node >= 22 required (running ${process.version})`);

const started = Date.now();
const result = {
  lib: opts.lib,
  package: null,
  expect: opts.expect,
  pass: false,
  reason: null,
  connected: false,
  protocol: null,
  serverVersion: null,
  methodsCount: null,
  authRole: null,
  authScopes: null,
  deviceTokenIssued: null,
  tickIntervalMs: null,
  health: null,
  statusKeys: null,
  connectError: null,
  requestErrors: [],
  closeCode: null,
  closeReason: null,
  elapsedMs: null,
};

let tmpDir = null;
let identityPath = opts.identity;
if (!identityPath) {
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), "openclaw-check-"));
  identityPath = path.join(tmpDir, "device-identity.json");
}

let client = null;
let finished = false;
function finish(code, reason) {
  if (finished) return;
  finished = true;
  if (reason && !result.reason) result.reason = reason;
  result.elapsedMs = Date.now() - started;
  try {
    client?.disconnect();
  } catch {
    /* ignore */
  }
  if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
  process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(code));
}

const deadline = setTimeout(() => {
  result.pass = false;
  finish(2, `timeout after ${timeoutMs} ms`);
}, timeoutMs);
deadline.unref?.();

function errInfo(e) {
  if (!e) return null;
  if (e instanceof Error) return { message: e.message };
  return { code: e.code ?? null, message: e.message ?? null, details: e.details ?? null };
}

function isAuthError(e) {
  if (!e) return false;
  const dcode = e.details && typeof e.details === "object" ? e.details.code : undefined;
  if (dcode === "AUTH_TOKEN_MISMATCH") return true;
  return /unauthori[sz]ed|token mismatch/i.test(String(e.message ?? ""));
}

async function main() {
  let mod;
  try {
    mod = await import(lib.pkg);
  } catch (e) {
    result.reason = `cannot load ${lib.pkg} (run npm ci in ${path.dirname(new URL(import.meta.url).pathname)}): ${e.message}`;
    return finish(3);
  }
  try {
    const pj = JSON.parse(fs.readFileSync(new URL(`./node_modules/${lib.pkg}/package.json`, import.meta.url), "utf8"));
    result.package = `${pj.name}@${pj.version}`;
  } catch {
    /* informational only */
  }
  const { OpenClawClient } = mod;

  const clientOpts = {
    url: opts.url,
    token: opts.token,
    autoReconnect: false, // otherwise a refused connect retries with backoff (10 attempts)
    deviceIdentityPath: identityPath,
  };
  if (opts.scopes !== undefined) clientOpts.scopes = opts.scopes.split(",").filter(Boolean);
  if (opts["client-id"]) clientOpts.clientId = opts["client-id"];
  client = new OpenClawClient(clientOpts);

  // Both versions emit "error" on socket errors / bad frames; an EventEmitter "error"
  // without a listener would crash the process, so always listen.
  const emittedErrors = [];
  client.on("error", (e) => emittedErrors.push(e?.message ?? String(e)));

  // The connect response is not tracked as a pending request by either version:
  // a failed connect only surfaces as a "protocol:response" event with ok:false
  // (v3's connect() promise never settles on a refused connect; v4's rejects with
  // a generic "WebSocket closed before handshake completed").
  let closedBeforeHello;
  const closedBeforeHelloP = new Promise((r) => (closedBeforeHello = r));
  client.on("protocol:response", (res) => {
    if (!res.ok && !result.connected && !result.connectError) result.connectError = errInfo(res.error ?? {});
  });
  client.on("disconnected", () => {
    if (!result.connected) closedBeforeHello("disconnected before hello-ok");
  });
  client.on("pairingRequired", (p) => {
    result.pairingRequired = p;
  });

  const connectP = client.connect();
  // Diagnostic only: the libraries do not expose the close code, so peek at the
  // socket they just created (it is assigned synchronously inside connect()).
  const sock = client.ws;
  if (sock && typeof sock.addEventListener === "function") {
    sock.addEventListener("close", (ev) => {
      result.closeCode = ev.code;
      result.closeReason = ev.reason || null;
    });
  }

  let hello = null;
  try {
    hello = await Promise.race([
      connectP,
      closedBeforeHelloP.then((why) => {
        throw new Error(why);
      }),
    ]);
  } catch (e) {
    // Let the close event (code) and any late error frame land before judging.
    await new Promise((r) => setTimeout(r, 50));
    result.connected = false;
    if (emittedErrors.length) result.emittedErrors = emittedErrors;
    if (opts.expect === "refused") {
      const authErr = isAuthError(result.connectError);
      const codeOk = result.closeCode === null || result.closeCode === 1008;
      result.pass = authErr && codeOk;
      if (!authErr)
        result.reason = `connect failed but not with an auth error: ${result.connectError ? JSON.stringify(result.connectError) : e.message}`;
      else if (!codeOk) result.reason = `auth error but close code ${result.closeCode} (expected 1008)`;
      else result.reason = "refused as expected";
    } else {
      result.pass = false;
      result.reason = `connect failed: ${result.connectError ? result.connectError.message : e.message}`;
    }
    return finish(result.pass ? 0 : 1);
  }

  result.connected = true;
  result.protocol = hello?.protocol ?? null;
  result.serverVersion = hello?.server?.version ?? null;
  result.methodsCount = Array.isArray(hello?.features?.methods) ? hello.features.methods.length : null;
  result.authRole = hello?.auth?.role ?? null;
  result.authScopes = hello?.auth?.scopes ?? null;
  result.deviceTokenIssued = typeof hello?.auth?.deviceToken === "string";
  result.tickIntervalMs = hello?.policy?.tickIntervalMs ?? null;

  if (opts.expect === "refused") {
    result.pass = false;
    result.reason = "connect succeeded but refusal was expected";
    return finish(1);
  }

  // Failed requests reject with a plain Error(message); keep the full error frames.
  client.on("protocol:response", (res) => {
    if (!res.ok) result.requestErrors.push(errInfo(res.error ?? {}));
  });

  const problems = [];
  if (result.protocol !== lib.protocol) problems.push(`hello-ok.protocol=${result.protocol}, expected ${lib.protocol}`);
  try {
    const h = await client.health(); // library helper: method "health", 5 s timeout
    result.health = { ok: h?.ok ?? null };
    if (h?.ok !== true) problems.push("health.ok is not true");
  } catch (e) {
    result.health = { error: e.message };
    problems.push(`health failed: ${e.message}`);
  }
  try {
    const res = await client.request("status", {}); // resolves with the whole res frame
    const p = res?.payload;
    if (p && typeof p === "object" && !Array.isArray(p)) result.statusKeys = Object.keys(p).sort();
    else problems.push("status payload is not an object");
  } catch (e) {
    problems.push(`status failed: ${e.message}`);
  }
  if (emittedErrors.length) result.emittedErrors = emittedErrors;
  result.pass = problems.length === 0;
  result.reason = result.pass ? "ok" : problems.join("; ");
  return finish(result.pass ? 0 : 1);
}

main().catch((e) => {
  result.reason = `unexpected: ${e?.stack ?? e}`;
  finish(3);
});
