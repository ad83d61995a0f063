#!/usr/bin/env python3
"""Chat-path figures for a skynet-gateway binary, against a fake Anthropic server.

1. Added latency. A fake Anthropic Messages API (asyncio, the SSE format of
   tests/common/fake_anthropic.rs) notes time.monotonic_ns() right after it hands the first
   text_delta to the kernel; a protocol-v3 WebSocket client in the same process (same clock)
   notes when the first `agent` event with stream "assistant" for that run arrives (that
   event is not throttled). The difference is the gateway's added latency: SSE parse, agent
   loop, event shaping, broadcast, WebSocket write, plus the Python client's own receive
   path. Printed for N sequential chats on an idle gateway, then for N more while C other
   chats stream in the background (each on its own session key, restarted as it ends, spread
   over a few connections); under load the figure also includes queueing in this
   single-threaded benchmark process, which shares the cores with the gateway.
2. Memory per concurrent streaming chat. A fresh gateway is warmed up, then M chats on
   different session keys run at once against a fake that streams 40 pieces 100 ms apart.
   VmRSS is sampled from /proc every 50 ms; printed: idle RSS, peak RSS (and the kernel's
   VmHWM), (peak - idle) / M per chat, how many chats got their final event, wall time.

Every client connection receives every run's events (broadcast), so few connections are
used and their number is printed. Figures only: nothing here passes or fails on timing.

usage: agent.py BINARY [--chats N] [--load C] [--concurrent M] [--conns K]
"""
import argparse
import asyncio
import ctypes
import json
import os
import re
import signal
import sys
import tempfile
import time
import uuid

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

TOKEN = "bench-token-0123456789abcdef0123456789abcdef"
TAG = re.compile(r"bench-([0-9a-f]{32})")
CHAT_TIMEOUT = 60


def sse(event, data):
    s = f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
    return b"%x\r\n%s\r\n" % (len(s), s)  # one HTTP/1.1 chunk


class FakeAnthropic:
    """POST /v1/messages on loopback: a text answer, streamed; `slow` in the user's text
    streams 40 pieces 100 ms apart, anything else 4 pieces at once."""

    def __init__(self):
        self.first_delta = {}  # run tag -> monotonic ns when its first text_delta was written

    async def start(self):
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0, backlog=1024)
        self.base_url = "http://127.0.0.1:%d" % self.server.sockets[0].getsockname()[1]

    async def serve(self, reader, writer):
        try:
            while True:  # keep-alive: one request after another
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                method, path = head[0].split()[:2]
                headers = dict((k.strip().lower(), v.strip()) for k, _, v in (h.partition(":") for h in head[1:] if h))
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                if (method, path) != ("POST", "/v1/messages"):
                    writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                    continue
                await self.answer(json.loads(body), writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def answer(self, req, writer):
        last = json.dumps(req["messages"][-1])
        tag = (TAG.findall(last) or [None])[-1]
        slow = "slow bench-" in last
        pieces = ["slow "] * 40 if slow else ["Hello", " from", " the", " fake."]
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
                     b"transfer-encoding: chunked\r\n\r\n")
        writer.write(sse("message_start", {"type": "message_start", "message": {
            "id": "msg_bench", "type": "message", "role": "assistant", "model": req.get("model"), "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {
                "input_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1}}})
                     + sse("content_block_start", {"type": "content_block_start", "index": 0,
                                                   "content_block": {"type": "text", "text": ""}})
                     + sse("ping", {"type": "ping"}))
        await writer.drain()
        for i, piece in enumerate(pieces):
            if slow:
                await asyncio.sleep(0.1)
            writer.write(sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                     "delta": {"type": "text_delta", "text": piece}}))
            if i == 0 and tag:
                self.first_delta[tag] = time.monotonic_ns()  # write() has handed it to the kernel
            await writer.drain()
        writer.write(sse("content_block_stop", {"type": "content_block_stop", "index": 0})
                     + sse("message_delta", {"type": "message_delta", "usage": {"output_tokens": len(pieces)},
                                             "delta": {"stop_reason": "end_turn", "stop_sequence": None}})
                     + sse("message_stop", {"type": "message_stop"}) + b"0\r\n\r\n")
        await writer.drain()


class Conn:
    """One protocol-v3 operator connection; tracks the runs it started."""

    @classmethod
    async def open(cls, url):
        self = cls()
        self.ws = await connect(url, max_size=None, ping_interval=None, open_timeout=10)
        self.pending, self.runs, self.ids = {}, {}, 0
        hello = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
        assert hello.get("event") == "connect.challenge", hello
        await self.ws.send(json.dumps({"type": "req", "id": "c", "method": "connect", "params": {
            "minProtocol": 3, "maxProtocol": 3,
            "client": {"id": "gateway-client", "version": "1.0.0", "platform": "linux", "mode": "backend"},
            "role": "operator", "scopes": ["operator.read", "operator.write"], "auth": {"token": TOKEN}}}))
        while True:
            res = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
            if res.get("type") == "res":
                assert res["ok"], res
                break
        self.reader = asyncio.create_task(self.read())
        return self

    async def read(self):
        try:
            async for raw in self.ws:
                now = time.monotonic_ns()
                m = json.loads(raw)
                if m["type"] == "res":
                    fut = self.pending.pop(m["id"], None)
                    if fut and not fut.done():
                        fut.set_result(m)
                    continue
                p = m.get("payload") or {}
                run = self.runs.get(p.get("runId"))
                if run is None:
                    continue
                if m["event"] == "agent" and p.get("stream") == "assistant" and "first" not in run:
                    run["first"] = now
                elif m["event"] == "chat" and p.get("state") != "delta" and not run["end"].done():
                    run["end"].set_result(p)
        except ConnectionClosed:
            pass
        finally:  # whoever still waits hears about it now, not at a time-out
            for fut in [*self.pending.values(), *(r["end"] for r in self.runs.values())]:
                if not fut.done():
                    fut.set_exception(ConnectionError("the gateway closed the connection"))

    async def call(self, method, params):
        self.ids += 1
        rid = str(self.ids)
        self.pending[rid] = asyncio.get_running_loop().create_future()
        await self.ws.send(json.dumps({"type": "req", "id": rid, "method": method, "params": params}))
        return await asyncio.wait_for(self.pending[rid], 10)

    async def chat(self, key, text):
        """Runs one chat to its terminal event: (tag, first assistant event ns, final payload)."""
        tag = uuid.uuid4().hex
        run = self.runs[tag] = {"end": asyncio.get_running_loop().create_future()}
        try:
            res = await self.call("chat.send", {"sessionKey": key, "message": f"{text} bench-{tag}",
                                                "idempotencyKey": tag})
            assert res["ok"] and res["payload"]["status"] == "started", res
            final = await asyncio.wait_for(run["end"], CHAT_TIMEOUT)
            return tag, run.get("first"), final
        finally:
            del self.runs[tag]

    async def close(self):
        await self.ws.close()
        self.reader.cancel()


def die_with_parent():
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: no gateway outlives us


class Gateway:
    """The binary on a free loopback port, with a home of its own; stderr goes to HOME.log."""

    async def start(self, binary, home, fake_url):
        env = {"PATH": os.environ.get("PATH", ""), "SKYNET_HOME": home, "SKYNET_GATEWAY__AUTH_TOKEN": TOKEN,
               "SKYNET_AGENT__MODEL": "anthropic/claude-bench",
               "SKYNET_PROVIDERS__ANTHROPIC__BASE_URL": fake_url, "SKYNET_PROVIDERS__ANTHROPIC__API_KEY": "x"}
        self.log = open(home + ".log", "w+b")
        self.proc = await asyncio.create_subprocess_exec(binary, "run", "--port", "0", env=env, stderr=self.log,
                                                         stdout=asyncio.subprocess.PIPE, preexec_fn=die_with_parent)
        first = (await asyncio.wait_for(self.proc.stdout.readline(), 10)).decode()
        m = re.match(r"skynet-gateway listening on http://(\S+)", first)
        if not m:
            raise RuntimeError(f"the gateway's first line was {first!r}; its log:\n{self.log_tail()}")
        self.url = f"ws://{m.group(1)}/"
        self.drain = asyncio.create_task(self.proc.stdout.read())  # never let stdout fill up
        return self

    def rss_kib(self, field="VmRSS"):
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

    def log_tail(self, lines=20):
        self.log.seek(0)
        return b"".join(self.log.readlines()[-lines:]).decode(errors="replace")

    async def stop(self):
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self.log.close()


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def report(label, fake, results):
    gaps = [(first - fake.first_delta[tag]) / 1e6 for tag, first, final in results
            if first and tag in fake.first_delta and final.get("state") == "final"]
    if not gaps:
        raise SystemExit(f"{label}: no chat produced a timed delta")
    print(f"{label}: p50 {pct(gaps, .5):.3f} ms, p90 {pct(gaps, .9):.3f} ms, p99 {pct(gaps, .99):.3f} ms, "
          f"max {max(gaps):.3f} ms ({len(gaps)} of {len(results)} chats timed)")


async def latency(args, fake, gw):
    one = await Conn.open(gw.url)
    for i in range(20):  # warm up: provider connection pool, database, allocator
        await one.chat(f"warm-{i}", "hi")
    results = [await one.chat(f"lat-{i}", "hi") for i in range(args.chats)]
    report(f"added latency, provider's first text_delta to client's first delta, {args.chats} sequential chats, "
           "idle gateway, 1 connection", fake, results)

    # The same, while `load` other chats stream (each on its own session, restarted as it ends).
    conns, streaming = [await Conn.open(gw.url) for _ in range(args.conns)], True

    async def streamer(i):
        while streaming:
            await conns[i % len(conns)].chat(f"bg-{i}", "slow")

    background = [asyncio.create_task(streamer(i)) for i in range(args.load)]
    await asyncio.sleep(1)
    results = [await one.chat(f"load-{i}", "hi") for i in range(args.chats)]
    streaming = False
    await asyncio.gather(*background)
    report(f"  the same while {args.load} other chats stream (40 pieces 100 ms apart; "
           f"{len(conns) + 1} connections)", fake, results)
    for c in conns + [one]:
        await c.close()


async def memory(args, fake, gw):
    conns = [await Conn.open(gw.url) for _ in range(args.conns)]
    await asyncio.gather(*(c.chat(f"warm-{i}", "hi") for i, c in enumerate(conns)))
    await asyncio.gather(*(c.chat(f"warm-slow-{i}", "slow") for i, c in enumerate(conns)))
    await asyncio.sleep(1)
    idle = gw.rss_kib()
    samples, running = [idle], True

    async def sample():
        while running:
            samples.append(gw.rss_kib())
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    t0 = time.perf_counter()
    results = await asyncio.gather(*(conns[i % len(conns)].chat(f"mem-{i}", "slow") for i in range(args.concurrent)),
                                   return_exceptions=True)
    wall = time.perf_counter() - t0
    running = False
    await sampler
    finals = sum(1 for r in results if isinstance(r, tuple) and r[2].get("state") == "final")
    peak, hwm = max(samples), gw.rss_kib("VmHWM")
    await asyncio.sleep(1)
    print(f"memory, {args.concurrent} concurrent streaming chats (40 pieces 100 ms apart, {args.concurrent} sessions, "
          f"{len(conns)} connections): idle RSS {idle / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB (sampled every "
          f"50 ms; VmHWM {hwm / 1024:.1f} MiB), {gw.rss_kib() / 1024:.1f} MiB 1 s after")
    print(f"  per chat: {(peak - idle) / args.concurrent:.1f} KiB; final events: {finals}/{args.concurrent}; "
          f"wall time: {wall:.2f} s")
    for c in conns:
        await c.close()


async def main(args):
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    fake = FakeAnthropic()
    await fake.start()
    with tempfile.TemporaryDirectory() as tmp:
        for part, home in ((latency, "latency"), (memory, "memory")):
            gw = await Gateway().start(args.binary, os.path.join(tmp, home), fake.base_url)
            try:
                await asyncio.wait_for(part(args, fake, gw), args.time_limit)
            except Exception:
                print(f"bench: failed; the gateway's log ends with:\n{gw.log_tail()}", file=sys.stderr)
                raise
            finally:
                await gw.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--chats", type=int, default=300, help="chats timed, idle and under load")
    ap.add_argument("--load", type=int, default=50, help="chats streaming during the loaded latency figure")
    ap.add_argument("--concurrent", type=int, default=200, help="concurrent slow chats for the memory figure")
    ap.add_argument("--conns", type=int, default=4, help="connections carrying the concurrent chats")
    ap.add_argument("--time-limit", type=float, default=300, help="seconds each part may take")
    a = ap.parse_args()
    a.binary = os.path.abspath(a.binary)
    try:
        asyncio.run(main(a))
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit("bench: interrupted")
