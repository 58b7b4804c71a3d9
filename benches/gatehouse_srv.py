"""Starting gatehouse (and Redis) for the benchmark, and the set-up calls it needs."""

import os
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness import JWT_SECRET, PASSWORD, Proc, REPO, free_port, log, request, wait_http

# Cheap argon2 for servers whose scenario does not measure hashing (refresh, memory fill):
# set-up logins then cost microseconds instead of ~40 ms. Gatehouse logs a warning for them.
CHEAP_ARGON2 = {"GATEHOUSE_ARGON2__MEMORY_KIB": "64", "GATEHOUSE_ARGON2__ITERATIONS": "1"}
OWASP = {"memory_kib": 19456, "iterations": 2, "parallelism": 1}


def build(profile="release"):
    argv = ["cargo", "build", "--locked"] + (["--release"] if profile == "release" else [])
    log("building gatehouse: " + " ".join(argv))
    subprocess.run(argv, cwd=REPO, check=True)
    return REPO / "target" / profile / "gatehouse"


def build_hello():
    argv = ["cargo", "build", "--release", "--manifest-path", str(REPO / "benches/hello/Cargo.toml")]
    log("building the hyper hello ceiling: " + " ".join(argv))
    subprocess.run(argv, cwd=REPO, check=True)
    target = REPO / "benches/hello/target/release"
    return target / "hello", target / "argon2-time"


class Redis:
    def __init__(self, workdir, logdir):
        self.port = free_port()
        d = Path(tempfile.mkdtemp(dir=workdir, prefix="redis-"))
        # Durable like the embedded store: AOF with fsync on every write (see README).
        self.proc = Proc("redis", ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                   "--dir", str(d), "--save", "", "--appendonly", "yes",
                                   "--appendfsync", "always", "--protected-mode", "no"],
                         logdir=logdir, port=self.port)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            r = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True)
            if r.stdout.strip() == "PONG":
                return
            time.sleep(0.1)
        raise RuntimeError("redis-server did not start:\n" + self.proc.tail())

    def url(self, db=0):
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self):
        self.proc.stop()


class Gatehouse:
    """One `gatehouse serve` on a free loopback port with a fresh data dir."""

    count = 0

    def __init__(self, ctx, name, backend="embedded", cheap=False, env=None, secret=True, data_dir=None,
                 port=None):
        Gatehouse.count += 1
        self.port = port or free_port()
        self.data = data_dir or tempfile.mkdtemp(dir=ctx.tmp, prefix=f"{name}-")
        e = {"GATEHOUSE_LISTEN": f"127.0.0.1:{self.port}", "GATEHOUSE_DATA_DIR": self.data,
             "GATEHOUSE_LOG__LEVEL": "warn"}
        if secret:
            e["JWT_SECRET"] = JWT_SECRET
        if cheap:
            e.update(CHEAP_ARGON2)
        if backend == "redis":
            e.update({"GATEHOUSE_SESSIONS__BACKEND": "redis", "GATEHOUSE_USERS__BACKEND": "redis",
                      "GATEHOUSE_SESSIONS__REDIS_URL": ctx.redis.url(0),
                      "GATEHOUSE_REDIS__PREFIX": f"gh{Gatehouse.count}:"})
        e.update(env or {})
        for k in ("RUST_LOG", "GATEHOUSE_CONFIG"):
            os.environ.pop(k, None)
        self.env = e
        self.proc = Proc(name, [str(ctx.binary), "serve"], env=e, logdir=ctx.logdir, port=self.port)
        wait_http(self.port, "/healthz", timeout=60, proc=self.proc)

    def register(self, email, password=PASSWORD):
        status, body = request(self.port, "POST", "/auth/register", {"email": email, "password": password})
        if status != 201:
            raise RuntimeError(f"register {email}: {status} {body}")

    def login(self, email, password=PASSWORD):
        status, body = request(self.port, "POST", "/auth/login", {"email": email, "password": password})
        if status != 200:
            raise RuntimeError(f"login {email}: {status} {body}")
        return body

    def logins(self, email, n, workers=8):
        with ThreadPoolExecutor(workers) as ex:
            return list(ex.map(lambda _: self.login(email), range(n)))

    def rss_kib(self):
        return self.proc.rss_kib()

    def stop(self):
        self.proc.stop()
