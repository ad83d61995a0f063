#!/usr/bin/env python3
"""Start-up and footprint figures for a skynet-gateway binary.

Prints: cold start (exec to the first 200 from /health, warm home, median and p90 of N
runs), first-run start (empty home: defaults written, database created), and idle RSS
after 10 s. Figures only; nothing here passes or fails on a timing.

usage: startup.py BINARY [--runs N] [--idle-seconds S]
"""
import argparse
import os
import socket
import statistics
import subprocess
import tempfile
import time

TOKEN = "bench-token-0123456789abcdef"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health_ok(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def start(binary, home, port):
    env = {"PATH": os.environ.get("PATH", ""), "SKYNET_HOME": home, "SKYNET_GATEWAY__AUTH_TOKEN": TOKEN}
    return subprocess.Popen([binary, "run", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def time_to_health(binary, home):
    port = free_port()
    t0 = time.perf_counter()
    proc = start(binary, home, port)
    try:
        deadline = t0 + 10
        while time.perf_counter() < deadline:
            if health_ok(port):
                return (time.perf_counter() - t0) * 1000
            if proc.poll() is not None:
                raise SystemExit(f"the gateway exited with {proc.returncode}")
        raise SystemExit("no /health answer within 10 s")
    finally:
        proc.terminate()
        proc.wait()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--idle-seconds", type=float, default=10)
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)

    with tempfile.TemporaryDirectory() as tmp:
        first = [time_to_health(binary, os.path.join(tmp, f"first-{i}")) for i in range(5)]
        home = os.path.join(tmp, "home")
        time_to_health(binary, home)  # materialise the home once
        warm = sorted(time_to_health(binary, home) for _ in range(args.runs))
        p90 = warm[min(len(warm) - 1, int(round(0.9 * (len(warm) - 1))))]
        print(f"cold start, exec to first /health 200 (warm home, {len(warm)} runs): "
              f"median {statistics.median(warm):.2f} ms, p90 {p90:.2f} ms, min {warm[0]:.2f} ms, max {warm[-1]:.2f} ms")
        print(f"first-run start (empty home, 5 runs): median {statistics.median(first):.2f} ms")

        port = free_port()
        proc = start(binary, home, port)
        try:
            while not health_ok(port):
                time.sleep(0.001)
            time.sleep(args.idle_seconds)
            print(f"idle RSS after {args.idle_seconds:g} s: {rss_kib(proc.pid) / 1024:.1f} MiB")
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
