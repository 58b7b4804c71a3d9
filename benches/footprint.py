#!/usr/bin/env python3
"""Footprint of gatehouse: binary size, start-up time, idle RSS, RSS with users and sessions.

    python3 benches/footprint.py [--binary PATH] [--sessions 100000] [--users 10000]

Builds the release binary unless --binary is given, then prints a table and one JSON line.
`benches/run.py` calls the same functions (and goes on towards 1,000,000 sessions, within its time budget).

How each figure is taken:
- size: the file size of the (already stripped) binary; `strip` on a copy shows whether
  anything is left to strip.
- start-up: wall time from exec to the first 200 on /healthz, polling the port every 0.5 ms;
  median of N starts with a fresh data dir (creates the database and the secret file) and of N
  starts on an existing data dir.
- RSS: VmRSS of the process from /proc, 1 s after start (idle, default argon2 parameters),
  then after registering --users accounts and logging in until --sessions live sessions exist.
  The fill server uses cheap argon2 parameters (64 KiB, 1 pass) so that a million logins take
  minutes, not hours; hashing memory is bounded by argon2.max_concurrent and measured
  separately by the login-flood scenario of run.py.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import PASSWORD, Wrk, free_port, log  # noqa: E402
from gatehouse_srv import Gatehouse, build  # noqa: E402


def binary_size(binary):
    size = os.path.getsize(binary)
    out = {"bytes": size}
    if shutil.which("strip"):
        with tempfile.TemporaryDirectory() as d:
            copy = Path(d) / "g"
            shutil.copy(binary, copy)
            subprocess.run(["strip", str(copy)], check=False)
            out["bytes_after_strip"] = os.path.getsize(copy)
    return out


def _first_200(port, deadline):
    req = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(req)
                data = s.recv(64)
                if data.startswith(b"HTTP/1.1 200"):
                    return True
        except OSError:
            pass
        time.sleep(0.0005)
    return False


def startup_times(binary, workdir, runs=15):
    """Exec to first 200 on /healthz, ms: fresh data dirs, then one existing data dir."""
    res = {}
    existing = tempfile.mkdtemp(dir=workdir, prefix="startup-")
    for label in ("fresh_data_dir", "existing_data_dir"):
        times = []
        for i in range(runs):
            data = tempfile.mkdtemp(dir=workdir, prefix="startup-") if label == "fresh_data_dir" else existing
            port = free_port()
            env = dict(os.environ, GATEHOUSE_LISTEN=f"127.0.0.1:{port}", GATEHOUSE_DATA_DIR=data,
                       GATEHOUSE_LOG__LEVEL="warn")
            env.pop("JWT_SECRET", None)  # the default deployment: secret file in the data dir
            t0 = time.monotonic()
            p = subprocess.Popen([str(binary), "serve"], env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            ok = _first_200(port, t0 + 10)
            t1 = time.monotonic()
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if ok:
                times.append((t1 - t0) * 1000)
        res[label] = {"runs": len(times), "median_ms": statistics.median(times) if times else None,
                      "max_ms": max(times) if times else None, "min_ms": min(times) if times else None}
    return res


def idle_rss(ctx):
    g = Gatehouse(ctx, "gatehouse-idle")
    try:
        time.sleep(1.0)
        return g.rss_kib()
    finally:
        g.stop()


def fill(ctx, wrk, port, mode, count, users=1, conns=32, budget_s=None):
    """Registers `count` accounts or makes `count` logins as fast as the server allows (or
    until budget_s seconds have passed: the result says how many were made)."""
    done_dir = Path(tempfile.mkdtemp(dir=ctx.tmp, prefix="fill-"))
    threads = 1
    t0 = time.monotonic()
    handle = wrk.start(port, "fill", conns=conns, threads=threads, duration=3600,
                       env={"BENCH_FILL": mode, "BENCH_COUNT": count, "BENCH_USERS": users,
                            "BENCH_PASSWORD": PASSWORD, "BENCH_DONE_DIR": done_dir})
    proc = handle[0]
    while proc.poll() is None and len(list(done_dir.iterdir())) < threads:
        if budget_s and time.monotonic() - t0 > budget_s:
            log(f"  time budget of {budget_s} s reached: stopping the fill")
            break
        time.sleep(0.2)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    r = Wrk.finish(handle)
    r["wall_s"] = time.monotonic() - t0
    return r


def memory_profile(ctx, wrk, users=10000, session_steps=(100000,), budget_s=None, deadline=None):
    """RSS idle, after `users` accounts, and after each number of live sessions (embedded).

    Each fill step stops at its target, after budget_s seconds, or at `deadline` (a
    time.monotonic() value), whichever comes first; the step records how many sessions exist.
    A step that falls short also gets a linear extrapolation to its target from the last two
    measured points (labelled as such in the report, never shown as a measurement)."""
    out = {"users": users, "steps": []}
    g = Gatehouse(ctx, "gatehouse-memory", cheap=True)
    try:
        time.sleep(1.0)
        out["idle_kib"] = g.rss_kib()
        log(f"memory: registering {users} users")
        r = fill(ctx, wrk, g.port, "register", users, conns=16)
        out["users_created"] = r["ok"]
        out["register_rps"] = r["ok"] / r["wall_s"]
        out["after_users_kib"] = g.rss_kib()
        made = 0
        prev = (0, out["after_users_kib"])  # (sessions, RSS) of the last measured point
        for target in session_steps:
            budget = budget_s
            if deadline is not None:
                left = deadline - time.monotonic()
                budget = left if budget is None else min(budget, left)
            step = {"target": target}
            if budget is not None and budget < 10:
                log(f"memory: no time left for {target} sessions (run budget)")
                step.update({"skipped": True, "sessions": made, "seconds": 0.0})
            else:
                log(f"memory: logging in until {target} live sessions (at most {budget:.0f} s)"
                    if budget else f"memory: logging in until {target} live sessions")
                r = fill(ctx, wrk, g.port, "login", target - made, users=users, budget_s=budget)
                made += r["ok"]
                time.sleep(1.0)
                step.update({"seconds": r["wall_s"], "sessions": made, "rss_kib": g.rss_kib(),
                             "login_rps": r["ok"] / r["wall_s"], "budget_s": budget,
                             "db_bytes": sum(f.stat().st_size for f in Path(g.data).glob("*.redb"))})
                if made > prev[0]:
                    step["kib_per_session"] = (step["rss_kib"] - prev[1]) / (made - prev[0])
                    step["kib_per_session_since"] = prev[0]
            if "rss_kib" in step:
                prev = (made, step["rss_kib"])
            out["steps"].append(step)
            if step.get("skipped") or step["sessions"] < 0.99 * target:
                for later in session_steps[session_steps.index(target) + 1:]:
                    out["steps"].append({"target": later, "skipped": True, "sessions": made, "seconds": 0.0})
                break
    finally:
        g.stop()
    measured = [st for st in out["steps"] if "rss_kib" in st]
    if measured and measured[-1].get("kib_per_session") is not None:
        last = measured[-1]
        for st in out["steps"]:
            if st["sessions"] < 0.99 * st["target"]:
                st["extrapolated_rss_kib"] = last["rss_kib"] + last["kib_per_session"] * (st["target"] - last["sessions"])
                st["extrapolated_from"] = {"sessions": last["sessions"], "rss_kib": last["rss_kib"],
                                           "kib_per_session": last["kib_per_session"],
                                           "since_sessions": last["kib_per_session_since"]}
    return out


class _Ctx:
    def __init__(self, binary):
        self.binary = binary
        self.tmp = tempfile.mkdtemp(prefix="gatehouse-footprint-")
        self.logdir = self.tmp
        self.redis = None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", help="gatehouse binary (default: build target/release/gatehouse)")
    ap.add_argument("--users", type=int, default=10000)
    ap.add_argument("--sessions", type=int, default=100000)
    ap.add_argument("--runs", type=int, default=15, help="starts timed per case")
    a = ap.parse_args()
    harness.install_cleanup()
    binary = Path(a.binary) if a.binary else build("release")
    ctx = _Ctx(binary.resolve())
    try:
        wrk = Wrk(ctx.tmp, 10, [])
        res = {"binary": binary_size(binary), "startup": startup_times(binary, ctx.tmp, a.runs),
               "idle_rss_kib": idle_rss(ctx),
               "memory": memory_profile(ctx, wrk, a.users, (a.sessions,))}
    finally:
        shutil.rmtree(ctx.tmp, ignore_errors=True)
    mib = lambda k: k / 1024  # noqa: E731
    b = res["binary"]
    print(f"binary            {b['bytes'] / 1e6:.2f} MB ({b['bytes']} bytes; after strip: {b.get('bytes_after_strip')})")
    for k, v in res["startup"].items():
        print(f"start-up {k:<18} median {v['median_ms']:.1f} ms, max {v['max_ms']:.1f} ms over {v['runs']} starts")
    print(f"idle RSS          {mib(res['idle_rss_kib']):.1f} MiB (default argon2 parameters)")
    m = res["memory"]
    print(f"RSS {m['users_created']} users   {mib(m['after_users_kib']):.1f} MiB")
    for s in m["steps"]:
        print(f"RSS {s['sessions']} sessions {mib(s['rss_kib']):.1f} MiB (database {s['db_bytes'] / 1e6:.0f} MB)")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
