#!/usr/bin/env python3
"""Opt-in real-model test, the client: holds a two-turn streamed conversation with a running
skynet-gateway over the protocol-v3 WebSocket and checks what came back.

    chat.py --url ws://127.0.0.1:PORT/ --token TOKEN [--label NAME] [--turn-timeout S]

For each turn (`chat.send` on session "main") it checks that at least one `chat` event with
state "delta" arrived before the terminal one, that the terminal one is "final" (not
"error"/"aborted") with non-empty text, that v3 delta texts are cumulative (each extends
the one before, and the final text extends the last delta), and, when the model produced
more than a few tokens, that the first delta came well before the final (real streaming,
not one burst at the end). Afterwards `chat.history` must hold user/assistant messages
alternating, one pair per turn, the user texts being what was sent and the assistant
texts the final texts.

Prints the time to the first delta and the total time of each turn. Exits 0 when every
check passed, 1 with a message naming the failed check otherwise.
"""

import argparse
import asyncio
import json
import sys
import time
import uuid

from websockets.asyncio.client import connect

TURNS = [
    "Hello! Please introduce yourself in one short sentence.",
    "Thanks. Now name three colours.",
]


class Failed(Exception):
    pass


def check(cond, message):
    if not cond:
        raise Failed(message)


def short(frame, limit=600):
    text = json.dumps(frame, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"


def text_of(message):
    """The text of a chat message: its text content blocks joined."""
    if not isinstance(message, dict):
        return None
    content = message.get("content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")


class Conn:
    def __init__(self, ws, label):
        self.ws = ws
        self.label = label
        self.next_id = 0
        self.events = []  # events read while waiting for a response
        self.last_seq = None

    async def recv(self, timeout):
        try:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
        except asyncio.TimeoutError:
            raise Failed(f"no frame from the gateway within {timeout:.0f} s")
        check(isinstance(raw, str), f"binary frame from the gateway: {raw!r:.200}")
        frame = json.loads(raw)
        if frame.get("type") == "event" and "seq" in frame:
            seq = frame["seq"]
            check(
                self.last_seq is None or seq > self.last_seq,
                f"event seq went from {self.last_seq} to {seq}: {short(frame)}",
            )
            self.last_seq = seq
        return frame

    async def next_event(self, timeout):
        if self.events:
            return self.events.pop(0)
        while True:
            frame = await self.recv(timeout)
            if frame.get("type") == "event":
                return frame

    async def call(self, method, params, timeout=30):
        self.next_id += 1
        rid = f"{self.label}-{self.next_id}"
        await self.ws.send(json.dumps({"type": "req", "id": rid, "method": method, "params": params}))
        while True:
            frame = await self.recv(timeout)
            if frame.get("type") == "res" and frame.get("id") == rid:
                check(frame.get("ok") is True, f"{method} failed: {short(frame)}")
                return frame.get("payload")
            if frame.get("type") == "event":
                self.events.append(frame)


async def open_conn(url, token, label):
    ws = await connect(url, max_size=None, open_timeout=30, compression=None)
    conn = Conn(ws, label)
    first = await conn.recv(15)
    check(
        first.get("type") == "event" and first.get("event") == "connect.challenge",
        f"first frame was not connect.challenge: {short(first)}",
    )
    hello = await conn.call(
        "connect",
        {
            "minProtocol": 3,
            "maxProtocol": 3,
            "client": {"id": "gateway-client", "version": "1.0.0", "platform": "linux", "mode": "backend"},
            "role": "operator",
            "scopes": ["operator.read", "operator.write"],
            "auth": {"token": token},
        },
    )
    check(hello.get("type") == "hello-ok" and hello.get("protocol") == 3, f"unexpected hello: {short(hello)}")
    methods = (hello.get("features") or {}).get("methods") or []
    for m in ("chat.send", "chat.history"):
        check(m in methods, f"hello-ok does not list {m}")
    return conn


async def turn(conn, n, message, timeout):
    run_id = f"real-{conn.label}-{n}-{uuid.uuid4().hex[:8]}"
    t0 = time.monotonic()
    started = await conn.call("chat.send", {"sessionKey": "main", "message": message, "idempotencyKey": run_id})
    check(started.get("runId") == run_id and started.get("status") == "started", f"chat.send answered {short(started)}")
    deltas = []  # (seconds since send, text)
    deadline = t0 + timeout
    while True:
        left = deadline - time.monotonic()
        check(left > 0, f"turn {n}: no final chat event within {timeout:.0f} s ({len(deltas)} deltas so far)")
        ev = await conn.next_event(left)
        p = ev.get("payload") or {}
        if p.get("runId") != run_id:
            continue
        if ev.get("event") == "agent" and (p.get("data") or {}).get("phase") == "error":
            print(f"  [{conn.label}] agent lifecycle error: {short(p.get('data'))}", file=sys.stderr)
        if ev.get("event") != "chat":
            continue
        state = p.get("state")
        text = text_of(p.get("message"))
        if state == "delta":
            check(isinstance(text, str), f"turn {n}: delta without text: {short(ev)}")
            if deltas:
                check(
                    text.startswith(deltas[-1][1]),
                    f"turn {n}: v3 delta text is not cumulative: {deltas[-1][1]!r} then {text!r}",
                )
            deltas.append((time.monotonic() - t0, text))
            continue
        total = time.monotonic() - t0
        check(
            state == "final",
            f"turn {n}: run ended with state {state!r} instead of 'final': {short(ev)}",
        )
        final = ev
        break

    text = text_of(final["payload"].get("message"))
    usage = final["payload"].get("usage") or {}
    check(deltas, f"turn {n}: no chat delta arrived before the final event: {short(final)}")
    check(isinstance(text, str) and text.strip(), f"turn {n}: final event has empty text: {short(final)}")
    check(
        text.startswith(deltas[-1][1]),
        f"turn {n}: final text does not extend the last delta: {deltas[-1][1]!r} vs {text!r}",
    )
    first = deltas[0][0]
    out_tokens = usage.get("output") or 0
    if out_tokens >= 8:
        check(
            total - first >= 0.1,
            f"turn {n}: {out_tokens} output tokens but the first delta came only {total - first:.3f} s "
            f"before the final: the reply was not streamed",
        )
    print(
        f"  [{conn.label}] turn {n}: first delta {first:.2f} s, total {total:.2f} s, "
        f"{len(deltas)} deltas, {len(text)} chars, stopReason={final['payload'].get('stopReason')}, "
        f"model={final['payload'].get('provider')}/{final['payload'].get('model')}, usage={json.dumps(usage)}"
    )
    print(f"  [{conn.label}]   reply: {text.strip()[:160]!r}")
    return text


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--label", default="chat")
    ap.add_argument("--turn-timeout", type=float, default=300)
    args = ap.parse_args()

    conn = await open_conn(args.url, args.token, args.label)
    try:
        replies = []
        for n, message in enumerate(TURNS, 1):
            replies.append(await turn(conn, n, message, args.turn_timeout))

        hist = await conn.call("chat.history", {"sessionKey": "main"})
        msgs = hist.get("messages") or []
        roles = [m.get("role") for m in msgs]
        want = ["user", "assistant"] * len(TURNS)
        check(roles == want, f"chat.history roles are {roles}, expected {want}: {short(hist, 1500)}")
        for i, message in enumerate(TURNS):
            user = text_of(msgs[2 * i]) or ""
            check(message in user, f"chat.history user message {i + 1} is {user!r}, expected it to hold {message!r}")
            said = text_of(msgs[2 * i + 1]) or ""
            check(
                said == replies[i],
                f"chat.history assistant message {i + 1} is {said!r}, but the final event said {replies[i]!r}",
            )
        print(f"  [{args.label}] chat.history: {len(msgs)} messages, user/assistant alternating")
        print(f"  [{args.label}]   first user message as stored: {text_of(msgs[0])[:160]!r}")
    finally:
        await conn.ws.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Failed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    except (OSError, json.JSONDecodeError) as e:
        print(f"FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    except Exception as e:  # websockets' ConnectionClosed and the like
        print(f"FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
