#!/usr/bin/env python3
"""RSS and database size over a soak whose live state is flat (embedded store).

    python3 benches/soak.py [--binary PATH] [--minutes 3] [--conns 16]

One gatehouse (cheap argon2, so that sessions churn by thousands per second; hashing memory
is measured by run.py's login flood) with --users accounts; wrk (benches/wrk/soak.lua) then
logs in, reads /auth/me, refreshes and logs out, over and over, for --minutes: every session
ends soon after it begins, so the live state stays at about --conns sessions while millions
of records are written and removed. RSS (VmRSS) and the redb file size are sampled every
--every seconds. A server that keeps something per request or per session shows a slope; a
flat line after the warm-up (caches and allocator arenas filling) is the pass.
Prints a table and one JSON line; run.py runs the same function with its own budget.
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import PASSWORD, Wrk, log  # noqa: E402
from footprint import _Ctx  # noqa: E402  (the same stand-alone context)
from gatehouse_srv import Gatehouse, build  # noqa: E402


def slope_per_min(points):
    """Least-squares slope (units per minute) of (seconds, value) points."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    den = sum((t - mx) ** 2 for t, _ in points)
    return 60.0 * sum((t - mx) * (v - my) for t, v in points) / den if den else 0.0


def db_bytes(data_dir):
    return sum(p.stat().st_size for p in Path(data_dir).glob("*.redb"))


def soak(ctx, wrk, seconds=180, conns=16, users=64, every=5.0):
    g = Gatehouse(ctx, "gatehouse-soak", cheap=True,
                  env={"GATEHOUSE_REGULATION__MAX_RETRIES": "0"})
    try:
        for k in range(1, users + 1):
            g.register(f"soak{k}@bench.example.org")
        samples = [(0.0, g.rss_kib(), db_bytes(g.data))]
        log(f"soak: {seconds} s of login, /auth/me, refresh and logout on {conns} connections")
        handle = wrk.start(g.port, "soak", conns=conns, duration=int(seconds),
                           env={"BENCH_USERS": users, "BENCH_PASSWORD": PASSWORD})
        t0 = time.monotonic()
        while handle[0].poll() is None:
            time.sleep(every)
            samples.append((time.monotonic() - t0, g.rss_kib(), db_bytes(g.data)))
        r = Wrk.finish(handle)
        time.sleep(1.0)
        _, body = harness.request(g.port, "GET", "/metrics")
        live = None
        for line in (body if isinstance(body, str) else "").splitlines():
            if line.startswith("gatehouse_sessions_active"):
                live = float(line.split()[-1])
        samples.append((time.monotonic() - t0, g.rss_kib(), db_bytes(g.data)))
    finally:
        g.stop()
    # The warm-up: the first fifth of the run (caches, allocator arenas, redb's file steps).
    warm = [s for s in samples if s[0] >= seconds / 5]
    out = {
        "seconds": seconds, "conns": conns, "users": users,
        "samples": [{"t": round(t, 1), "rss_kib": rss, "db_bytes": db} for t, rss, db in samples],
        "requests": r["requests"], "rps": r["all_rps"], "non_2xx": r["errors_status"],
        "logins": r.get("logins"), "me": r.get("me"), "refreshes": r.get("refreshes"),
        "logouts": r.get("logouts"), "live_sessions_after": live,
        "rss_start_kib": samples[0][1], "rss_after_warmup_kib": warm[0][1] if warm else None,
        "rss_end_kib": samples[-1][1], "rss_max_kib": max(s[1] for s in samples),
        "rss_slope_kib_per_min": slope_per_min([(t, rss) for t, rss, _ in warm]),
        "db_after_warmup_bytes": warm[0][2] if warm else None, "db_end_bytes": samples[-1][2],
        "db_slope_bytes_per_min": slope_per_min([(t, db) for t, _, db in warm]),
    }
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", help="gatehouse binary (default: build target/release/gatehouse)")
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    a = ap.parse_args()
    harness.install_cleanup()
    binary = Path(a.binary) if a.binary else build("release")
    ctx = _Ctx(binary.resolve())
    try:
        res = soak(ctx, Wrk(ctx.tmp, 10, []), seconds=int(a.minutes * 60), conns=a.conns, every=a.every)
    finally:
        shutil.rmtree(ctx.tmp, ignore_errors=True)
    mib = lambda k: k / 1024  # noqa: E731
    print(f"{'t s':>6} {'RSS MiB':>8} {'db MB':>7}")
    for s in res["samples"]:
        print(f"{s['t']:>6.0f} {mib(s['rss_kib']):>8.1f} {s['db_bytes'] / 1e6:>7.2f}")
    print(f"{res['requests']} requests ({res['rps']:.0f}/s, {res['non_2xx']} non-2xx): {res['logins']} logins, "
          f"{res['me']} /auth/me, {res['refreshes']} refreshes, {res['logouts']} logouts; "
          f"live sessions after: {res['live_sessions_after']}")
    print(f"RSS after warm-up {mib(res['rss_after_warmup_kib'] or 0):.1f} MiB, end {mib(res['rss_end_kib']):.1f} MiB, "
          f"slope {res['rss_slope_kib_per_min'] / 1024:+.2f} MiB/min; database slope "
          f"{res['db_slope_bytes_per_min'] / 1e6:+.3f} MB/min")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
