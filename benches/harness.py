"""Shared machinery of the benchmark: processes, ports, HTTP set-up calls, wrk runs, RSS.

Standard library only, so that the smoke run (CI) needs nothing from PyPI.
"""

import http.client
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCHES = Path(__file__).resolve().parent
REPO = BENCHES.parent
WRK_DIR = BENCHES / "wrk"
PASSWORD = "Bench-Passw0rd-7f3k9QzL"  # strong enough for any password policy
UA = "gatehouse-bench"  # every request, set-up and load alike (PocketBase's new-device mail)
JWT_SECRET = "bench-secret-0123456789abcdef0123456789abcdef"


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_tools(need_redis=True):
    """wrk (and redis-server) from Debian when missing and we are root."""
    missing = [p for p, b in (("wrk", "wrk"), ("redis-server", "redis-server")) if shutil.which(b) is None
               and (p != "redis-server" or need_redis)]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        log(f"installing {' '.join(missing)} with apt-get")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], env=env, check=True,
                       stdout=subprocess.DEVNULL)
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed (Debian: apt-get install wrk)")


def children_of(pid):
    """All descendants of pid (for RSS of multi-process servers such as uvicorn --workers)."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in kids.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def rss_kib(pid, tree=False):
    total = 0
    for p in [pid] + (children_of(pid) if tree else []):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


RUNNING = []  # every Proc not yet stopped, so that an interrupted run leaves nothing behind


LOADGEN = []  # wrk processes started and not yet reaped


def stop_all():
    for p in list(LOADGEN):
        if p.poll() is None:
            p.kill()
            p.wait()
    for p in list(RUNNING):
        p.stop()


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


def install_cleanup():
    """SIGTERM/SIGHUP unwind like Ctrl-C, so `finally` blocks and atexit stop our servers."""
    import atexit
    atexit.register(stop_all)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _terminate)


class Proc:
    """A server we started: its own process group, output to a log file, stopped by id."""

    def __init__(self, name, argv, env=None, cwd=None, logdir=None, port=None):
        self.name, self.port = name, port
        self.logpath = Path(logdir or tempfile.gettempdir()) / f"{name}.log"
        self.logf = open(self.logpath, "ab")
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.p = subprocess.Popen(argv, env=full_env, cwd=cwd, stdout=self.logf,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        self.started = time.monotonic()
        RUNNING.append(self)

    @property
    def pid(self):
        return self.p.pid

    def rss_kib(self, tree=False):
        return rss_kib(self.p.pid, tree)

    def alive(self):
        return self.p.poll() is None

    def stop(self, timeout=15):
        if self in RUNNING:
            RUNNING.remove(self)
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.p.wait(5)
        if not self.logf.closed:
            self.logf.close()

    def tail(self, n=20):
        try:
            return "\n".join(self.logpath.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def request(port, method, path, body=None, headers=None, form=False, timeout=30):
    """One HTTP call on loopback; returns (status, parsed JSON or text)."""
    status, _, parsed = request_full(port, method, path, body, headers, form, timeout)
    return status, parsed


def request_full(port, method, path, body=None, headers=None, form=False, timeout=30):
    """One HTTP call on loopback; returns (status, headers with lower-case names, parsed
    JSON or text)."""
    h = {"User-Agent": UA}
    h.update(headers or {})
    data = None
    if body is not None:
        if form:
            from urllib.parse import urlencode
            data = urlencode(body)
            h["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            data = json.dumps(body)
            h["Content-Type"] = "application/json"
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        raw = r.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return r.status, {k.lower(): v for k, v in r.getheaders()}, parsed
    finally:
        c.close()


def wait_http(port, path="/healthz", timeout=60, proc=None, ok=(200,)):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited early:\n{proc.tail()}")
        try:
            status, _ = request(port, "GET", path, timeout=2)
            if status in ok:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"no {ok} from 127.0.0.1:{port}{path} within {timeout}s"
                       + (f"\n{proc.tail()}" if proc else ""))


class Wrk:
    """Runs wrk 4 with one of benches/wrk/*.lua (common.lua prepended); returns a result dict."""

    def __init__(self, workdir, duration, record):
        self.workdir = Path(workdir)
        self.duration = duration
        self.record = record  # list of the exact command lines, for BENCHMARKS.md
        self.scripts = {}

    def script(self, name):
        if name not in self.scripts:
            text = (WRK_DIR / "common.lua").read_text() + "\n" + (WRK_DIR / f"{name}.lua").read_text()
            path = self.workdir / f"wrk-{name}.lua"
            path.write_text(text)
            self.scripts[name] = path
        return self.scripts[name]

    def start(self, port, script="static", conns=64, threads=1, duration=None, env=None,
              timeout_s=5):
        duration = duration or self.duration
        env = {k: str(v) for k, v in (env or {}).items()}
        env["BENCH_THREADS"] = str(threads)
        path = env.pop("_PATH", "/")
        argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", f"--timeout={timeout_s}s",
                "-s", str(self.script(script)), f"http://127.0.0.1:{port}{path}"]
        self.record.append(self.shown(env, argv))
        full = dict(os.environ)
        full.update(env)
        p = subprocess.Popen(argv, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        LOADGEN.append(p)
        return p, duration

    def shown(self, env, argv):
        """The command line as recorded in BENCHMARKS.md: shell-quoted, the run's temp dir as
        $TMP, access tokens shortened (they are secrets of a throw-away server, and long)."""
        tmp = str(self.workdir)

        def show(v):
            if v.startswith(tmp + "/") and shlex.quote(v) == v:
                return '"$TMP' + v[len(tmp):] + '"'
            return shlex.quote(v)
        parts = []
        for k, v in env.items():
            if k == "BENCH_AUTH" and len(v) > 40:
                v = v[:24] + "…"
            parts.append(f"{k}={show(v)}")
        return " ".join(parts + [show(a) for a in argv])

    @staticmethod
    def finish(handle):
        p, duration = handle
        try:
            out, err = p.communicate(timeout=duration + 60)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        if p in LOADGEN:
            LOADGEN.remove(p)
        # A script may print "BENCH_EXTRA {...}" (its own counters) before the summary line.
        extra = {}
        for line in out.splitlines():
            if line.startswith("BENCH_EXTRA "):
                extra.update(json.loads(line[len("BENCH_EXTRA "):]))
        for line in out.splitlines():
            if line.startswith("BENCH_JSON "):
                r = json.loads(line[len("BENCH_JSON "):])
                secs = r["duration_us"] / 1e6
                bad = r["errors_status"] + r["errors_connect"] + r["errors_read"] + r["errors_write"] + r["errors_timeout"]
                r["seconds"] = secs
                r["ok"] = max(r["requests"] - r["errors_status"] - r["starved"], 0)
                r["rps"] = r["ok"] / secs if secs else 0.0
                r["all_rps"] = r["requests"] / secs if secs else 0.0
                r["errors"] = bad
                r.update(extra)
                return r
        raise RuntimeError(f"wrk gave no result (exit {p.returncode}):\n{out}\n{err}")

    def run(self, port, script="static", **kw):
        return self.finish(self.start(port, script, **kw))

    def paced(self, port, target_rps, conns=64, env=None, calib_s=2, calib_runs=2, **kw):
        """Closed-loop wrk paced by its delay() hook to about target_rps (short calibration
        runs adjust the pause), then the measured run."""
        env = dict(env or {})
        period_ms = conns * 1000.0 / max(target_rps, 1.0)
        delay = max(period_ms * 0.85, 0.0)
        for _ in range(calib_runs):
            r = self.run(port, env=dict(env, BENCH_DELAY_MS=f"{delay:.4f}"), conns=conns,
                         duration=calib_s, **kw)
            got = max(r["all_rps"], 1.0)
            latency_ms = conns * 1000.0 / got - delay
            delay = max(period_ms - latency_ms, 0.0)
        r = self.run(port, env=dict(env, BENCH_DELAY_MS=f"{delay:.4f}"), conns=conns, **kw)
        r["delay_ms"] = delay
        r["target_rps"] = target_rps
        return r, delay


def git_rev():
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src", "Cargo.toml",
                                "Cargo.lock"], capture_output=True, text=True).stdout.strip()
        return rev + (" (with uncommitted changes in src/ or Cargo.*)" if dirty else "")
    except OSError:
        return "unknown"


def cmd_version(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "not installed"


def machine_facts():
    model = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1])
    except OSError:
        pass
    osname = "Linux"
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                osname = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "ram_gib": round(mem / 1024 / 1024, 1),
            "os": osname, "kernel": os.uname().release, "load_before": os.getloadavg()}
