#!/usr/bin/env python3
"""Bytes on disk per live session and per rotation on the embedded store.

    python3 benches/disk.py --binary target/release/gatehouse [--sessions 4000] [--rotations 4000]
    python3 benches/disk.py --binary OLD --binary NEW      # several builds, same run
    python3 benches/disk.py --binary NEW --keep /tmp/disk   # keep each data dir, for
        cargo run --release --manifest-path benches/redb_stats/Cargo.toml -- DATA_DIR/gatehouse.redb

For each binary: a fresh data dir; register --sessions users (cheap argon2, regulation off),
read the redb file's size; log each user in once (one live session each) and read it again;
then refresh one session --rotations times (grace 0, so nothing short-lived is on disk) and
read it a third time. The figures are the growth divided by the count; redb grows its file
in steps, so large counts give the steady-state cost. Prints a table and one JSON line.

Below 4 GiB redb doubles the file when it runs out of room and trims a free tail only now and
then, so one run's figure can be 0 (the sessions fit in the room the users left) or about
twice the data (a doubling not trimmed): compare builds over a few runs, and see
BENCHMARKS.md for the bytes the tables hold.
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import free_port  # noqa: E402

PASSWORD = "correct horse battery staple 17"


def post(base, path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, json.loads(r.read() or b"null")


def wait_ready(base, deadline):
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("gatehouse did not start")


def measure(binary, sessions, rotations, keep=None):
    if keep:
        os.makedirs(keep, mode=0o700, exist_ok=True)
        data_cm = contextlib.nullcontext(tempfile.mkdtemp(dir=keep))
    else:
        data_cm = tempfile.TemporaryDirectory()
    with data_cm as data:
        port = free_port()
        env = {
            "PATH": os.environ.get("PATH", ""),
            "GATEHOUSE_LISTEN": f"127.0.0.1:{port}",
            "GATEHOUSE_DATA_DIR": data,
            "GATEHOUSE_ARGON2__MEMORY_KIB": "64",
            "GATEHOUSE_ARGON2__ITERATIONS": "1",
            "GATEHOUSE_REGULATION__MAX_RETRIES": "0",
            "GATEHOUSE_TOKENS__REFRESH_REUSE_GRACE": "0",
            "GATEHOUSE_LOG__LEVEL": "warn",
        }
        proc = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base, time.monotonic() + 20)
            db = Path(data) / "gatehouse.redb"
            emails = [f"disk{i}@example.org" for i in range(sessions)]
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda e: post(base, "/auth/register", {"email": e, "password": PASSWORD}), emails))
            time.sleep(0.5)
            users_only = db.stat().st_size
            with ThreadPoolExecutor(8) as pool:
                logins = list(pool.map(lambda e: post(base, "/auth/login", {"email": e, "password": PASSWORD}), emails))
            time.sleep(0.5)
            with_sessions = db.stat().st_size
            token = logins[0][1]["refresh_token"]
            for _ in range(rotations):
                _, body = post(base, "/auth/refresh", {"refresh_token": token})
                token = body["refresh_token"]
            time.sleep(0.5)
            after_rotations = db.stat().st_size
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return {
        "binary": binary,
        "sessions": sessions,
        "rotations": rotations,
        "file_bytes": {"users": users_only, "sessions": with_sessions, "rotations": after_rotations},
        "bytes_per_session": round((with_sessions - users_only) / sessions, 1),
        "bytes_per_rotation": round((after_rotations - with_sessions) / rotations, 1),
        "data_dir": data if keep else None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", action="append", required=True)
    ap.add_argument("--sessions", type=int, default=4000)
    ap.add_argument("--rotations", type=int, default=4000)
    ap.add_argument("--keep", metavar="DIR", help="keep each binary's data dir under DIR")
    a = ap.parse_args()
    results = [measure(b, a.sessions, a.rotations, a.keep) for b in a.binary]
    print(f"{'binary':50} {'bytes/session':>14} {'bytes/rotation':>15}")
    for r in results:
        print(f"{r['binary']:50} {r['bytes_per_session']:>14} {r['bytes_per_rotation']:>15}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
