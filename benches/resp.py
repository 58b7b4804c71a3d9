"""The RESP listener against a real redis-server, in the same run, with the same client.

`redis-benchmark` (Debian's redis-tools) sends `GET` and `EXISTS` of one live session key,
`gatehouse:session:<sid>`, to gatehouse's RESP listener (embedded store, the default) and
to a redis-server holding the same key with the same value: 50 connections, no pipelining
(each command waits for its answer, as a service checking a session does), then with 16
commands pipelined per connection. Target (targets.md): GET/EXISTS at least 50 % of
redis-server's requests/s, p99 at most 2x its p99.

Standard library only, like harness.py: the smoke run (CI) needs nothing from PyPI.
"""

import base64
import csv
import io
import json
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from gatehouse_srv import Gatehouse
from harness import Proc, free_port, log

PASSWORD = "bench-resp-password-0123456789"
CONNS = 50


def call(port, *args, password=PASSWORD):
    """AUTH, then one command over a fresh connection; returns the raw reply bytes."""
    def frame(*a):
        out = f"*{len(a)}\r\n".encode()
        for x in a:
            x = x if isinstance(x, bytes) else str(x).encode()
            out += f"${len(x)}\r\n".encode() + x + b"\r\n"
        return out

    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(frame("AUTH", password) + frame(*args))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if data.startswith(b"+OK\r\n") and _complete(data[5:]):
                return data[5:]
        raise RuntimeError(f"no answer to {args[0]} on port {port}: {data!r}")


def _complete(reply):
    """Whether `reply` holds one whole simple, integer or bulk reply."""
    if reply[:1] in (b"+", b"-", b":"):
        return reply.endswith(b"\r\n")
    if reply[:1] == b"$":
        head, _, rest = reply.partition(b"\r\n")
        n = int(head[1:] or b"0")
        return n < 0 or len(rest) >= n + 2
    return False


def bulk(reply):
    head, _, rest = reply.partition(b"\r\n")
    if not head.startswith(b"$") or head == b"$-1":
        raise RuntimeError(f"expected a bulk reply, got {reply[:80]!r}")
    return rest[: int(head[1:])]


def benchmark(port, n, command, pipeline=1):
    """One redis-benchmark run; its CSV row as numbers."""
    argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-a", PASSWORD, "-n", str(n),
            "-c", str(CONNS), "-P", str(pipeline), "--csv", *command]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    if out.returncode != 0 or not rows:
        raise RuntimeError(f"redis-benchmark failed: {out.stderr[-500:]}")
    row = rows[-1]
    shown = " ".join(a if a != PASSWORD else "$PASS" for a in argv)
    return {"rps": float(row["rps"]), "p50_ms": float(row["p50_latency_ms"]),
            "p99_ms": float(row["p99_latency_ms"]), "max_ms": float(row["max_latency_ms"]),
            "n": n, "ok": n, "command": shown}


def bench_resp(ctx):
    """GET and EXISTS of a live session key: gatehouse (embedded) vs redis-server."""
    rport = free_port()
    g = Gatehouse(ctx, "gatehouse-resp", cheap=True,
                  env={"GATEHOUSE_RESP__LISTEN": f"127.0.0.1:{rport}", "GATEHOUSE_RESP__PASSWORD": PASSWORD})
    d = Path(tempfile.mkdtemp(dir=ctx.tmp, prefix="redis-resp-"))
    sport = free_port()
    # Plain, no persistence: GET and EXISTS never touch the disk in Redis either.
    redis = Proc("redis-resp", ["redis-server", "--port", str(sport), "--bind", "127.0.0.1", "--dir", str(d),
                                "--save", "", "--appendonly", "no", "--requirepass", PASSWORD],
                 logdir=ctx.logdir, port=sport)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if call(sport, "PING") == b"+PONG\r\n":
                    break
            except (OSError, RuntimeError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start:\n" + redis.tail())
            time.sleep(0.1)
        g.register("resp@bench.example.org")
        token = g.login("resp@bench.example.org")["access_token"]
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        key = f"gatehouse:session:{claims['sid']}"
        record = bulk(call(rport, "GET", key))
        if call(sport, "SET", key, record) != b"+OK\r\n":
            raise RuntimeError("could not copy the session record into redis-server")
        for port in (rport, sport):
            if call(port, "EXISTS", key) != b":1\r\n":
                raise RuntimeError(f"EXISTS {key} is not 1 on port {port}")
        n = 2000 if ctx.smoke else 1_000_000  # about 5 s per run without pipelining
        out = {"key": "gatehouse:session:<sid>", "record_bytes": len(record), "conns": CONNS}
        for name, command, pipeline in (("get", ["GET", key], 1), ("exists", ["EXISTS", key], 1),
                                        ("get_p16", ["GET", key], 16)):
            runs = {}
            # Alternating who goes first, so neither always meets a warmer or a busier machine.
            order = (("gatehouse", rport), ("redis", sport))
            for system, port in (order if name != "exists" else order[::-1]):
                runs[system] = benchmark(port, n * (4 if pipeline > 1 else 1), command, pipeline)
            gh, rd = runs["gatehouse"], runs["redis"]
            runs["rps_ratio"] = gh["rps"] / rd["rps"]
            runs["p99_ratio"] = gh["p99_ms"] / rd["p99_ms"] if rd["p99_ms"] else None
            out[name] = runs
            log(f"  RESP {name}: gatehouse {gh['rps']:.0f}/s p99 {gh['p99_ms']:.2f} ms, redis-server "
                f"{rd['rps']:.0f}/s p99 {rd['p99_ms']:.2f} ms: {runs['rps_ratio'] * 100:.0f} % of its rate")
        out["rss_after_kib"] = g.rss_kib()
        return out
    finally:
        redis.stop()
        g.stop()
