#!/usr/bin/env python3
"""gatehouse benchmark: one command, every scenario, the peers, BENCHMARKS.md and a chart.

    python3 benches/run.py                 # full run (at most --budget, 22 min, on 2 cores),
                                           # writes BENCHMARKS.md, benches/results/{results.json,chart.png}
    python3 benches/run.py --smoke --binary target/debug/gatehouse
                                           # seconds-long harness check for CI (no PyPI peers)

Everything listens on 127.0.0.1 and the load generator (wrk 4, from Debian) runs on the same
machine, sharing its cores with the server under test. See benches/README.md.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import footprint  # noqa: E402
import harness  # noqa: E402
import resp  # noqa: E402
from gatehouse_srv import OWASP, Gatehouse, Redis, build, build_hello  # noqa: E402
from harness import PASSWORD, REPO, Wrk, log  # noqa: E402

LOGIN_USERS = 32  # logins cycle over this many accounts
LOGIN_CONNS = 8  # below gatehouse's hashing queue (16 per hashing thread): no 503 shedding
VERIFY_CONNS = 64


class Ctx:
    pass


JSON_LOGIN = '{"%s":"%s","password":"%s"}'


def login_env(path, body_fmt, ctype):
    return {"_PATH": path, "BENCH_PATH": path, "BENCH_BODY_FMT": body_fmt, "BENCH_CTYPE": ctype,
            "BENCH_USERS": LOGIN_USERS}


def register_login_users(register):
    """login0..login{LOGIN_USERS-1}@bench.example.org, for the login scenario."""
    with ThreadPoolExecutor(4) as ex:
        list(ex.map(lambda k: register(f"login{k}@bench.example.org"), range(LOGIN_USERS)))


# The forward-auth request a Traefik or Caddy proxy sends for `GET https://app.example.org/...`
# (README, "Single sign-on for reverse proxies"); default access rules: a live session.
FORWARD_HOST = "app.example.org"
FORWARD_URI = "/dashboard?tab=1"
FORWARD_HEADERS = {"X-Forwarded-Method": "GET", "X-Forwarded-Proto": "https",
                   "X-Forwarded-Host": FORWARD_HOST, "X-Forwarded-Uri": FORWARD_URI}


def token_check(ctx, port, key, env, login_env=None):
    """One token-check request: at peak, paced at half of that peak, and (with login_env)
    paced the same while a second wrk keeps logins saturating the hashing pool.
    Results under `key`, `key`_half, flood_`key` (and the logins of that flood)."""
    w, r, name = ctx.wrk, {}, {"verify": "verify", "fwd": "forward-auth"}.get(key, key)
    r[key] = w.run(port, env=env, conns=VERIFY_CONNS)
    log(f"  {name} {r[key]['rps']:.0f}/s p99 {r[key]['p99_us'] / 1000:.2f} ms")
    r[f"{key}_half"], delay = w.paced(port, r[key]["rps"] / 2, env=env, conns=VERIFY_CONNS,
                                      calib_s=ctx.calib_s, calib_runs=ctx.calib_runs)
    log(f"  {name} at half load {r[key + '_half']['rps']:.0f}/s p99 {r[key + '_half']['p99_us'] / 1000:.2f} ms")
    r["_delay"] = delay
    return r


def flood(ctx, port, key, env, delay, login_env):
    """`key` paced at `delay` (half of its peak) while logins keep the hashing pool saturated."""
    name = {"verify": "verify", "fwd": "forward-auth"}.get(key, key)
    w, r = ctx.wrk, {}
    lead = 0.5 if ctx.smoke else 1.0
    hl = w.start(port, "logins", env=login_env, conns=LOGIN_CONNS,
                 duration=ctx.duration + (1 if ctx.smoke else 2))
    time.sleep(lead)
    hv = w.start(port, env=dict(env, BENCH_DELAY_MS=f"{delay:.4f}"), conns=VERIFY_CONNS)
    r[f"flood_{key}"] = Wrk.finish(hv)
    lkey = "flood_login" if key == "verify" else f"flood_{key}_login"
    r[lkey] = Wrk.finish(hl)
    log(f"  under a login flood: {name} {r[f'flood_{key}']['rps']:.0f}/s p99 "
        f"{r[f'flood_{key}']['p99_us'] / 1000:.2f} ms, login {r[lkey]['rps']:.1f}/s")
    return r


def standard(ctx, port, verify_env, login_env=None, rss=None, fwd_env=None):
    """verify at peak, verify paced at half of that peak, login, verify under a login flood;
    with fwd_env the same three token-check runs for forward-auth."""
    w, r = ctx.wrk, {}
    r.update(token_check(ctx, port, "verify", verify_env))
    delay = r.pop("_delay")
    if login_env:
        r["login"] = w.run(port, "logins", env=login_env, conns=LOGIN_CONNS)
        log(f"  login {r['login']['rps']:.1f}/s p99 {r['login']['p99_us'] / 1000:.1f} ms")
        r.update(flood(ctx, port, "verify", verify_env, delay, login_env))
    if fwd_env:
        r.update(token_check(ctx, port, "fwd", fwd_env))
        fdelay = r.pop("_delay")
        if login_env:
            r.update(flood(ctx, port, "fwd", fwd_env, fdelay, login_env))
    if rss:
        r["rss_after_logins_kib"] = rss()
    return r


def probe_forward_auth(port, token, email):
    """One forward-auth and one auth-request call before the load: both must answer 200 with
    Remote-User, or the wrk figures would be of an error path."""
    out = {}
    for path, hdrs in (("/authz/forward-auth", FORWARD_HEADERS),
                       ("/authz/auth-request", {"X-Original-URL": f"https://{FORWARD_HOST}{FORWARD_URI}",
                                                "X-Original-Method": "GET"})):
        status, headers, _ = harness.request_full(port, "GET", path,
                                                  headers=dict(hdrs, Authorization=f"Bearer {token}"))
        out[path] = {"status": status, "remote_user": headers.get("remote-user")}
        if status != 200 or headers.get("remote-user") != email:
            raise RuntimeError(f"{path}: {status}, Remote-User {headers.get('remote-user')!r} (expected 200, {email})")
    return out


def bench_gatehouse(ctx, backend):
    name = f"gatehouse-{backend}"
    log(f"{name}: verify, login, flood (argon2 {'cheap (smoke)' if ctx.smoke else 'OWASP defaults'})")
    g = Gatehouse(ctx, name, backend=backend, cheap=ctx.smoke)
    try:
        time.sleep(0.5)
        idle = g.rss_kib()
        g.register("bench@bench.example.org")
        tok = g.login("bench@bench.example.org")["access_token"]
        register_login_users(g.register)
        probe = probe_forward_auth(g.port, tok, "bench@bench.example.org")
        fwd_env = {"_PATH": "/authz/forward-auth", "BENCH_AUTH": f"Bearer {tok}",
                   "BENCH_HEADERS": " | ".join(f"{k}: {v}" for k, v in FORWARD_HEADERS.items())}
        r = standard(ctx, g.port, {"_PATH": "/auth/me", "BENCH_AUTH": f"Bearer {tok}"},
                     login_env("/auth/login", JSON_LOGIN % ("email", "%EMAIL%", PASSWORD), "application/json"),
                     rss=g.rss_kib, fwd_env=fwd_env)
        r["forward_auth_probe"] = probe
        r["rss_idle_kib"] = idle
    finally:
        g.stop()
    log(f"{name}: refresh (server with cheap argon2 for the set-up logins)")
    g = Gatehouse(ctx, name + "-refresh", backend=backend, cheap=True)
    try:
        # 64 accounts with 8 sessions each (a user has a few devices, not hundreds; smoke: 16).
        pairs, accounts = [], 16 if ctx.smoke else 64
        for k in range(accounts):
            g.register(f"refresh{k}@bench.example.org")
            pairs += g.logins(f"refresh{k}@bench.example.org", ctx.refresh_tokens // accounts)
        tokens = Path(ctx.tmp) / f"{name}-refresh-tokens.txt"
        tokens.write_text("\n".join(p["refresh_token"] for p in pairs) + "\n")
        r["refresh"] = ctx.wrk.run(g.port, "rotate", conns=VERIFY_CONNS,
                                   env={"_PATH": "/auth/refresh", "BENCH_PATH": "/auth/refresh",
                                        "BENCH_TOKENS": tokens, "BENCH_ROTATE": "gatehouse"})
        log(f"  refresh {r['refresh']['rps']:.0f}/s p99 {r['refresh']['p99_us'] / 1000:.2f} ms")
    finally:
        g.stop()
    return r


def interleaved_ceiling(ctx, rounds=3):
    """The "% of bare hyper" targets as medians over rounds in which the hyper hello, `/auth/me`
    and forward-auth take turns at peak (VERIFY_CONNS, ctx.duration each). On this shared VM
    the machine's speed moves by up to 2x within minutes (the hello alone measured 178,000 and
    398,000 req/s three minutes apart): one run of each, minutes apart, is a ratio of two
    machine states, and turns inside one round see the same one."""
    import peers
    h = peers.Hello(ctx, ctx.hello_bin)
    g = Gatehouse(ctx, "gatehouse-ceiling", backend="embedded", cheap=True)
    try:
        g.register("ceiling@bench.example.org")
        tok = g.login("ceiling@bench.example.org")["access_token"]
        probe_forward_auth(g.port, tok, "ceiling@bench.example.org")
        turns = {"hello": (h.port, {"_PATH": "/"}),
                 "verify": (g.port, {"_PATH": "/auth/me", "BENCH_AUTH": f"Bearer {tok}"}),
                 "fwd": (g.port, {"_PATH": "/authz/forward-auth", "BENCH_AUTH": f"Bearer {tok}",
                                  "BENCH_HEADERS": " | ".join(f"{k}: {v}" for k, v in FORWARD_HEADERS.items())})}
        out = []
        for i in range(rounds):
            r = {k: ctx.wrk.run(port, env=env, conns=VERIFY_CONNS)["rps"] for k, (port, env) in turns.items()}
            log(f"  round {i + 1}: hello {r['hello']:.0f}/s, /auth/me {r['verify']:.0f}/s "
                f"({r['verify'] / r['hello'] * 100:.0f} %), forward-auth {r['fwd']:.0f}/s "
                f"({r['fwd'] / r['hello'] * 100:.0f} %)")
            out.append(r)
    finally:
        g.stop()
        h.stop()
    return {"rounds": out,
            "verify_pct": statistics.median(r["verify"] / r["hello"] for r in out) * 100,
            "fwd_pct": statistics.median(r["fwd"] / r["hello"] for r in out) * 100}


def bench_hello(ctx):
    import peers
    log("hello (bare hyper ceiling)")
    h = peers.Hello(ctx, ctx.hello_bin)
    try:
        r = standard(ctx, h.port, {"_PATH": "/"})
        r["rss_idle_kib"] = h.proc.rss_kib()
    finally:
        h.stop()
    return r


def bench_fastapi(ctx, strategy):
    import peers
    log(f"fastapi-users ({strategy} strategy)")
    f = peers.FastAPIUsers(ctx, strategy)
    try:
        idle = f.rss_kib()
        f.register("bench@bench.example.org")
        tok = f.login("bench@bench.example.org")
        register_login_users(f.register)
        r = standard(ctx, f.port, {"_PATH": "/users/me", "BENCH_AUTH": f"Bearer {tok}"},
                     login_env("/auth/login", f"username=%EMAIL%&password={PASSWORD}",
                               "application/x-www-form-urlencoded"), rss=f.rss_kib)
        r["rss_idle_kib"] = idle
    finally:
        f.stop()
    return r


def bench_pocketbase(ctx):
    import peers
    log("PocketBase")
    p = peers.PocketBase(ctx)
    try:
        time.sleep(0.5)
        idle = p.rss_kib()
        p.register("bench@bench.example.org")
        tok, uid = p.login("bench@bench.example.org")  # same User-Agent as wrk: no new-device mail
        venv = {"_PATH": f"/api/collections/users/records/{uid}", "BENCH_AUTH": tok}
        register_login_users(p.register)
        r = standard(ctx, p.port, venv,
                     login_env("/api/collections/users/auth-with-password",
                               JSON_LOGIN % ("identity", "%EMAIL%", PASSWORD), "application/json"),
                     rss=p.rss_kib)
        r["rss_idle_kib"] = idle
        tokens = Path(ctx.tmp) / "pocketbase-tokens.txt"
        tokens.write_text((tok + "\n") * ctx.refresh_tokens)
        r["refresh"] = ctx.wrk.run(p.port, "rotate", conns=VERIFY_CONNS,
                                   env={"_PATH": "/api/collections/users/auth-refresh",
                                        "BENCH_PATH": "/api/collections/users/auth-refresh",
                                        "BENCH_TOKENS": tokens, "BENCH_ROTATE": "pocketbase"})
        log(f"  refresh {r['refresh']['rps']:.0f}/s")
        r["rss_after_load_kib"] = p.rss_kib()
        p.request_logs(False)
        data = p.dir
    finally:
        p.stop()
    log("PocketBase with request logging off (restarted)")
    p = peers.PocketBase(ctx, data=data)
    try:
        r["verify_nolog"] = ctx.wrk.run(p.port, env=venv, conns=VERIFY_CONNS)
        log(f"  verify (logs off) {r['verify_nolog']['rps']:.0f}/s")
        r["refresh_nolog"] = ctx.wrk.run(p.port, "rotate", conns=VERIFY_CONNS,
                                         env={"_PATH": "/api/collections/users/auth-refresh",
                                              "BENCH_PATH": "/api/collections/users/auth-refresh",
                                              "BENCH_TOKENS": tokens, "BENCH_ROTATE": "pocketbase"})
        r["rss_after_load_nolog_kib"] = p.rss_kib()
    finally:
        p.stop()
    return r


def argon2_times(ctx):
    out = {"params": OWASP, "cores": os.cpu_count()}
    if ctx.argon2_bin and Path(ctx.argon2_bin).exists():
        res = subprocess.run([str(ctx.argon2_bin), str(OWASP["memory_kib"]), str(OWASP["iterations"]),
                              str(OWASP["parallelism"]), "15"], capture_output=True, text=True, check=True)
        out["rust"] = json.loads(res.stdout)
        out["ceiling_rps"] = out["cores"] / (out["rust"]["median_ms"] / 1000)
    if not ctx.smoke:
        import peers
        out["cffi_median_ms"] = peers.argon2_cffi_ms(OWASP["memory_kib"], OWASP["iterations"], OWASP["parallelism"])
    return out


def versions(ctx):
    v = {"rustc": harness.cmd_version(["rustc", "--version"]), "gatehouse": harness.git_rev(),
         "wrk": harness.cmd_version(["wrk", "-v"]).split(" [")[0],
         "redis-server": harness.cmd_version(["redis-server", "--version"]), "python": sys.version.split()[0]}
    if not ctx.smoke:
        import peers
        v.update(peers.pkg_versions())
        v["pocketbase"] = harness.cmd_version([str(peers.pocketbase_binary()), "--version"])
    return v


def check_smoke(res):
    problems = []
    for sysname, r in res["systems"].items():
        for scen, v in r.items():
            if isinstance(v, dict) and "ok" in v and v["ok"] <= 0:
                problems.append(f"{sysname}/{scen}: no successful response")
    import oidc_bench
    problems += oidc_bench.check_smoke(res.get("oidc"))
    sk = res.get("soak")
    if not sk or not sk.get("logouts") or sk.get("non_2xx"):
        problems.append(f"soak: no clean churn of sessions ({sk and {k: sk.get(k) for k in ('logins', 'logouts', 'non_2xx')}})")
    mem = res.get("memory", {})
    if mem and mem.get("steps") and mem["steps"][-1]["sessions"] <= 0:
        problems.append("memory: no sessions made")
    for scen, runs in res.get("resp", {}).items():
        if isinstance(runs, dict) and "gatehouse" in runs:
            for system in ("gatehouse", "redis"):
                if runs[system]["rps"] <= 0:
                    problems.append(f"resp/{scen}/{system}: no requests answered")
    if shutil.which("redis-benchmark") and not res["meta"].get("no_redis") and "resp" not in res:
        problems.append("resp: the RESP scenario did not run")
    return problems


def write_report(res, out_md):
    import peers
    import report
    results_dir = REPO / "benches" / "results"
    chart = results_dir / "chart.png"
    r = subprocess.run([str(peers.VPY), str(REPO / "benches/report.py"), str(results_dir / "results.json"),
                        str(chart)], capture_output=True, text=True)
    if r.returncode != 0:
        log(f"chart failed: {r.stderr[-2000:]}")
        chart = None
    out_md.write_text(report.markdown(res, chart=chart, md_path=out_md))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="seconds-long check of the harness (CI)")
    ap.add_argument("--binary", help="gatehouse binary to test (default: build it with --profile)")
    ap.add_argument("--profile", default=None, choices=["release", "debug"],
                    help="cargo profile to build (default release; debug in --smoke)")
    ap.add_argument("--duration", type=int, default=None, help="seconds per wrk run (default 10, smoke 1)")
    ap.add_argument("--sessions", default="100000,1000000", help="live-session steps of the memory scenario")
    ap.add_argument("--users", type=int, default=10000)
    ap.add_argument("--fill-budget", type=int, default=300,
                    help="most seconds for each session-fill step of the memory scenario (each step also "
                         "stops when --budget would be exceeded; the report says how far it got)")
    ap.add_argument("--budget", type=float, default=22,
                    help="minutes for the whole run (default 22 on 2 cores, with the OIDC, RESP and soak "
                         "scenarios): the memory scenario, which runs last, stops filling sessions in time")
    ap.add_argument("--soak-minutes", type=float, default=2.0,
                    help="minutes of session churn at a flat live state (benches/soak.py)")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite BENCHMARKS.md and the chart from benches/results/results.json")
    ap.add_argument("--no-peers", action="store_true", help="skip fastapi-users and PocketBase")
    ap.add_argument("--no-redis", action="store_true", help="skip the Redis backend")
    ap.add_argument("--out", default=None, help="markdown report (default BENCHMARKS.md; smoke: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (data dirs, server logs)")
    a = ap.parse_args()
    harness.install_cleanup()
    if a.report_only:
        return write_report(json.loads((REPO / "benches/results/results.json").read_text()),
                            Path(a.out) if a.out else REPO / "BENCHMARKS.md")

    started = time.monotonic()
    ctx = Ctx()
    ctx.smoke = a.smoke
    ctx.duration = a.duration or (1 if a.smoke else 10)
    ctx.calib_s = 1 if a.smoke else 2
    ctx.calib_runs = 1 if a.smoke else 2
    deadline = started + a.budget * 60
    phases = []

    def phase(name, fn, *args):
        t0 = time.monotonic()
        try:
            return fn(*args)
        finally:
            phases.append({"phase": name, "seconds": round(time.monotonic() - t0, 1)})
    ctx.refresh_tokens = 128 if a.smoke else 512  # a multiple of 64
    ctx.tmp = tempfile.mkdtemp(prefix="gatehouse-bench-")
    ctx.logdir = ctx.tmp
    ctx.redis = None
    commands = []
    ctx.wrk = Wrk(ctx.tmp, ctx.duration, commands)
    peers_on = not (a.smoke or a.no_peers)
    results_dir = REPO / "benches" / "results"
    out_md = Path(a.out) if a.out else (Path(ctx.tmp) / "BENCHMARKS.md" if a.smoke else REPO / "BENCHMARKS.md")

    phase("install tools", harness.ensure_tools, not a.no_redis)
    if peers_on:
        import peers
        phase("pip install (benches/.venv)", peers.ensure_venv)
    profile = a.profile or ("debug" if a.smoke else "release")
    ctx.binary = Path(a.binary).resolve() if a.binary else phase("cargo build (no-op when up to date)",
                                                                  build, profile)
    ctx.hello_bin = ctx.argon2_bin = None
    if not a.smoke:
        ctx.hello_bin, ctx.argon2_bin = phase("cargo build benches/hello", build_hello)
    load_start = os.getloadavg()

    res = {"meta": {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "smoke": a.smoke,
                    "duration_s": ctx.duration, "machine": harness.machine_facts(), "binary": str(ctx.binary),
                    "verify_conns": VERIFY_CONNS, "login_conns": LOGIN_CONNS,
                    "calib_runs": ctx.calib_runs, "calib_s": ctx.calib_s, "no_redis": a.no_redis,
                    "argv": " ".join(["python3", "benches/run.py", *sys.argv[1:]])},
           "systems": {}, "commands": commands}
    try:
        res["meta"]["versions"] = versions(ctx)
        res["argon2"] = phase("argon2 timing", argon2_times, ctx)
        if not a.no_redis and shutil.which("redis-server"):
            ctx.redis = Redis(ctx.tmp, ctx.logdir)
        if ctx.hello_bin:
            log("token checks against the hyper hello, taking turns (medians of 3 rounds)")
            res["ceiling"] = phase("hello and token checks taking turns", interleaved_ceiling, ctx)
            res["systems"]["hello"] = phase("hello", bench_hello, ctx)
        res["systems"]["gatehouse-embedded"] = phase("gatehouse embedded", bench_gatehouse, ctx, "embedded")
        if ctx.redis:
            res["systems"]["gatehouse-redis"] = phase("gatehouse Redis", bench_gatehouse, ctx, "redis")
        try:
            import oidc_bench
            res["oidc"] = phase("OIDC (gatehouse and node oidc-provider)", oidc_bench.run, ctx)
        except Exception as e:  # gatehouse's other figures are kept; smoke fails below
            log(f"OIDC failed: {e}")
            res.setdefault("peer_errors", []).append(f"OIDC: {e}")
        if not a.no_redis and shutil.which("redis-benchmark"):
            log("RESP listener: redis-benchmark GET/EXISTS, gatehouse (embedded) vs redis-server")
            res["resp"] = phase("RESP listener vs redis-server", resp.bench_resp, ctx)
        if peers_on:
            for strategy in ("jwt", "redis"):
                if strategy == "redis" and not ctx.redis:
                    continue
                try:
                    res["systems"][f"fastapi-users-{strategy}"] = phase(f"fastapi-users {strategy}",
                                                                        bench_fastapi, ctx, strategy)
                except Exception as e:  # a peer failing must not lose gatehouse's figures
                    log(f"fastapi-users {strategy} failed: {e}")
                    res.setdefault("peer_errors", []).append(f"fastapi-users {strategy}: {e}")
            try:
                res["systems"]["pocketbase"] = phase("PocketBase", bench_pocketbase, ctx)
            except Exception as e:
                log(f"PocketBase failed: {e}")
                res.setdefault("peer_errors", []).append(f"PocketBase: {e}")
        import soak
        res["soak"] = phase("soak", soak.soak, ctx, ctx.wrk, 10 if a.smoke else int(a.soak_minutes * 60))
        log("footprint: binary size, start-up, idle RSS")
        t0 = time.monotonic()
        res["footprint"] = {"binary": footprint.binary_size(ctx.binary),
                            "startup": footprint.startup_times(ctx.binary, ctx.tmp, runs=3 if a.smoke else 15),
                            "idle_rss_kib": footprint.idle_rss(ctx)}
        phases.append({"phase": "footprint", "seconds": round(time.monotonic() - t0, 1)})
        steps = tuple(int(s) for s in a.sessions.split(",")) if not a.smoke else (1000,)
        users = 300 if a.smoke else a.users
        # The memory scenario runs last and stops filling when the run's budget is nearly spent
        # (45 s kept for stopping, results and the chart).
        res["memory"] = phase("memory", footprint.memory_profile, ctx, ctx.wrk, users, steps,
                              a.fill_budget, None if a.smoke else deadline - 45)
        res["meta"]["budget_min"] = a.budget
    finally:
        res["meta"]["phases"] = phases
        if ctx.redis:
            ctx.redis.stop()
    res["meta"]["load_at_start"] = load_start
    res["meta"]["load_at_end"] = os.getloadavg()
    res["meta"]["wall_s"] = time.monotonic() - started

    import report
    out_md.parent.mkdir(parents=True, exist_ok=True)
    if a.smoke:
        (out_md.parent / "results.json").write_text(json.dumps(res, indent=1, default=str))
        out_md.write_text(report.markdown(res, chart=None))
        problems = check_smoke(res)
        if not a.keep:
            shutil.rmtree(ctx.tmp, ignore_errors=True)
        if problems:
            print("benchmark smoke FAILED:\n  " + "\n  ".join(problems))
            sys.exit(1)
        n = sum(1 for r in res["systems"].values() for v in r.values() if isinstance(v, dict) and "ok" in v)
        kept = a.keep or not out_md.is_relative_to(ctx.tmp)
        print(f"benchmark smoke: {n} scenario runs answered, memory and footprint measured "
              f"in {res['meta']['wall_s']:.0f} s (report: {out_md if kept else 'discarded; --keep or --out keeps it'})")
        return
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "results.json").write_text(json.dumps(res, indent=1, default=str))
    write_report(res, out_md)
    if not a.keep:
        shutil.rmtree(ctx.tmp, ignore_errors=True)
    log(f"done in {res['meta']['wall_s'] / 60:.1f} min: {out_md}")


if __name__ == "__main__":
    main()
