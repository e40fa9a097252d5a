"""The side-by-side benchmark suite: rwsgi against uWSGI, gunicorn and
granian, on loopback, in one run. Writes bench/results/report.md and PNG
plots. Run it through bench/run.sh, which installs what it needs.

Every server gets the same app and the same number of worker processes (2,
unless said otherwise). Runs are interleaved (every server once, then again)
and reported as medians, with ratios to uWSGI. The machines are shared and
noisy: read the ratios, not the absolute numbers.
"""
import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from common import (BENCH, RWSGI, VENV, Running, ab, cpu_seconds, free_port, memory,  # noqa: E402
                    nginx_conf, tree, wait_http, wrk)

APPS = BENCH / "apps"
APP_MODULES = {
    "wsgi_hello": "wsgi_hello:application",
    "flask_hello": "flask_apps:hello",
    "flask_64k": "flask_apps:big",
    "flask_sleep50": "flask_apps:sleep",
}
SERVERS = ["rwsgi", "uWSGI", "gunicorn", "granian"]
# Behind nginx: rwsgi and uWSGI through uwsgi_pass; "rwsgi proxy" is rwsgi's
# HTTP socket through proxy_pass with upstream keep-alive (uwsgi_pass cannot
# keep connections: one connection per request), as gunicorn.
NGINX_SERVERS = ["rwsgi", "rwsgi worker-accept", "rwsgi proxy", "uWSGI", "gunicorn"]
# Memory: rwsgi also with a warm-up before fork (--warmup-url /).
MEM_SERVERS = ["rwsgi", "rwsgi warm-up", "uWSGI", "gunicorn", "granian"]


def command(server, app, workers, bind, extra=()):
    """bind: ("http", port), ("unix", path) for uwsgi (HTTP for gunicorn), or
    ("http-unix", path) for rwsgi's HTTP socket on a unix path."""
    module = APP_MODULES[app]
    kind, where = bind
    if server == "rwsgi warm-up":
        return command("rwsgi", app, workers, bind, ["--warmup-url", "/", *extra])
    if server == "rwsgi proxy":
        return command("rwsgi", app, workers, ("http-unix", where), extra)
    if server == "rwsgi worker-accept":
        return command("rwsgi", app, workers, bind, ["--worker-accept", *extra])
    if server == "rwsgi":
        listen = {"http": ["--http-socket", f"127.0.0.1:{where}"], "unix": ["--socket", str(where)],
                  "http-unix": ["--http-socket", str(where)]}[kind]
        return [str(RWSGI), *listen, "--master", "--processes", str(workers), "--chdir", str(APPS), "--module",
                module, "--home", str(VENV), "--disable-logging", *extra]
    if server == "uWSGI":
        listen = ["--http-socket", f"127.0.0.1:{where}"] if kind == "http" else ["--socket", str(where)]
        return [str(VENV / "bin/uwsgi"), *listen, "--master", "--processes", str(workers), "--chdir", str(APPS),
                "--module", module, "--home", str(VENV), "--disable-logging", "--need-app", *extra]
    if server == "gunicorn":
        b = f"127.0.0.1:{where}" if kind == "http" else f"unix:{where}"
        return [str(VENV / "bin/gunicorn"), "-w", str(workers), "-k", "sync", "--chdir", str(APPS), "-b", b,
                "--log-level", "warning", module]
    if server == "granian":
        return [str(VENV / "bin/granian"), "--interface", "wsgi", "--workers", str(workers), "--host", "127.0.0.1",
                "--port", str(where), "--no-log", "--working-dir", str(APPS), module]
    raise ValueError(server)


def load(port, client, seconds):
    if client == "ab":
        return ab(port, 20, seconds)
    conns = int(client.removeprefix("wrk"))
    return wrk(port, conns, seconds)


def measured(pid, port, client, seconds):
    load(port, "wrk20", 1)  # warm-up
    cpu0 = cpu_seconds(tree(pid))
    r = load(port, client, seconds)
    r["cpu_us"] = (cpu_seconds(tree(pid)) - cpu0) / max(r["requests"], 1) * 1e6
    return r


PROXY = """
worker_processes 1; daemon off; master_process off;
error_log {d}/error.log warn; pid {d}/nginx.pid;
events {{ worker_connections 1024; }}
http {{ access_log off; client_body_temp_path {d}/b; proxy_temp_path {d}/p; fastcgi_temp_path {d}/f;
  uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;
  upstream app {{ server unix:{sock}; keepalive 32; }}
  server {{ listen 127.0.0.1:{port};
    location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }} }} }}
"""


def nginx(tmp, server, sock, tag):
    d = Path(tmp) / f"nginx-{tag}".replace(" ", "_")
    d.mkdir()
    port = free_port()
    if server in ("gunicorn", "rwsgi proxy"):
        conf = d / "nginx.conf"
        conf.write_text(PROXY.format(d=d, sock=sock, port=port))
    else:
        conf = nginx_conf(d, port, sock)
    p = subprocess.Popen(["nginx", "-p", str(d), "-c", str(conf), "-e", str(d / "error.log")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return p, port


def serving(args, tmp):
    results = {}
    for rep in range(args.reps):
        for app in args.apps:
            for client in args.clients:
                for server in SERVERS:
                    port = free_port()
                    with Running(cwd=APPS, argv=command(server, app, 2, ("http", port))) as s:
                        wait_http(port)
                        r = measured(s.proc.pid, port, client, args.seconds)
                    results.setdefault(("http", app, client, server), []).append(r)
                    print(f"http {app} {client} {server}: {r['rps']:.0f} req/s", file=sys.stderr)
                if not args.nginx:
                    continue
                for server in NGINX_SERVERS:
                    sock = Path(tmp) / f"{server.replace(' ', '-')}-{rep}-{app}-{client}.sock"
                    with Running(cwd=APPS, argv=command(server, app, 2, ("unix", sock))) as s:
                        ng, nport = nginx(tmp, server, sock, f"{server.replace(' ', '-')}-{rep}-{app}-{client}")
                        try:
                            wait_http(nport)
                            r = measured(s.proc.pid, nport, client, args.seconds)
                        finally:
                            ng.terminate()
                            ng.wait()
                    results.setdefault(("nginx", app, client, server), []).append(r)
                    print(f"nginx {app} {client} {server}: {r['rps']:.0f} req/s", file=sys.stderr)
    return results


def memory_curve(args):
    out = {}
    for server in MEM_SERVERS:
        for n in args.workers:
            port = free_port()
            with Running(cwd=APPS, argv=command(server, "flask_hello", n, ("http", port))) as s:
                wait_http(port)
                time.sleep(1.5)
                idle = memory(tree(s.proc.pid))
                wrk(port, 20, 3)
                time.sleep(0.5)
                loaded = memory(tree(s.proc.pid))
            out[(server, n)] = {"idle": idle, "loaded": loaded}
            print(f"memory {server} {n}: {idle[0] / 1024:.1f} MiB PSS idle", file=sys.stderr)
    return out


def startup(args):
    out = {}
    for server in SERVERS:
        times = []
        for _ in range(3):
            port = free_port()
            t0 = time.monotonic()
            with Running(cwd=APPS, argv=command(server, "flask_hello", 4, ("http", port))):
                wait_http(port, timeout=60)
                times.append(time.monotonic() - t0)
        out[server] = statistics.median(times)
    return out


def spawn_latency(tmp):
    """Master FIFO '+' → one more worker process, rwsgi and uWSGI (both apply
    FIFO deltas at the next cheaper check, within check-interval = 1 s)."""
    out = {}
    for server in ["rwsgi", "uWSGI"]:
        lat = []
        fifo = Path(tmp) / f"{server}.fifo"
        port = free_port()
        extra = ["--cheaper", "1", "--cheaper-algo", "manual", "--master-fifo", str(fifo)]
        with Running(cwd=APPS, argv=command(server, "flask_hello", 8, ("http", port), extra)) as s:
            wait_http(port)
            time.sleep(1)
            for _ in range(5):
                before = len(tree(s.proc.pid))
                t0 = time.monotonic()
                with open(fifo, "w") as f:
                    f.write("+")
                while len(tree(s.proc.pid)) <= before and time.monotonic() - t0 < 5:
                    time.sleep(0.002)
                lat.append(time.monotonic() - t0)
                time.sleep(0.3)
        out[server] = (statistics.median(lat), min(lat))
    return out


APP_COST = """
import sys, time, io
sys.path.insert(0, {apps!r})
import importlib
mod, attr = {spec!r}.split(':')
app = getattr(importlib.import_module(mod), attr)
from wsgiref.util import setup_testing_defaults
def call():
    env = {{}}
    setup_testing_defaults(env)
    env['wsgi.input'] = io.BytesIO()
    out = app(env, lambda s, h, e=None: None)
    for _ in out: pass
    if hasattr(out, 'close'): out.close()
for _ in range(2000): call()
n = 20000
t0 = time.perf_counter()
for _ in range(n): call()
print((time.perf_counter() - t0) / n * 1e6)
"""


def app_cost():
    out = {}
    for app in ["wsgi_hello", "flask_hello"]:
        r = subprocess.run([str(VENV / "bin/python"), "-c", APP_COST.format(apps=str(APPS), spec=APP_MODULES[app])],
                           capture_output=True, text=True, check=True)
        out[app] = float(r.stdout.strip())
    return out


def med(rows, key):
    return statistics.median(r[key] for r in rows)


def versions():
    def run(*a):
        try:
            return subprocess.run(a, capture_output=True, text=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"
    py = run(str(VENV / "bin/python"), "-c", "import sys;print(sys.version.split()[0])")
    pk = run(str(VENV / "bin/python"), "-c",
             "import importlib.metadata as m;print(', '.join(f'{p} {m.version(p)}' for p in "
             "['uwsgi','gunicorn','granian','flask']))")
    return (f"Python {py}; {run(str(RWSGI), '--version')}; {pk}; "
            f"{run('wrk', '--version') or 'wrk'}; {run('nginx', '-v') or 'nginx'}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="a few minutes: 2-second runs, one repetition, fewer cases")
    args = ap.parse_args()
    args.apps = list(APP_MODULES)
    args.clients = ["wrk20", "wrk100", "ab"]
    args.workers = [1, 2, 4, 8, 16]
    args.nginx = True
    if args.quick:
        args.seconds, args.reps = 2, 1
        args.apps = ["wsgi_hello", "flask_hello"]
        args.clients = ["wrk20"]
        args.workers = [1, 4, 16]
    for tool in ["wrk", "nginx", "ab"]:
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: run bench/run.sh")
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        serve = serving(args, tmp)
        spawn = spawn_latency(tmp)
    mem = memory_curve(args)
    boot = startup(args)
    cost = app_cost()
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    lines = ["# Benchmark report", "",
             f"- machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
             f"- {versions()}",
             f"- command: `bench/run.sh {' '.join(sys.argv[1:])}` ({args.reps} repetition(s), {args.seconds} s "
             f"per wrk run, interleaved; medians; took {(time.time() - started) / 60:.0f} min)",
             "- every server: 2 worker processes, request logging off; gunicorn `-k sync`, granian "
             "`--interface wsgi`; wrk `-t1 -cN --latency`; ab `-c 20` (HTTP/1.0, a new connection per request)",
             "- server CPU µs/request: utime+stime of the server's whole process tree during the run", ""]
    for path, title in [("http", "Direct HTTP"), ("nginx", "Behind nginx (uwsgi_pass on a unix socket; "
                                                            "rwsgi proxy and gunicorn: proxy_pass with "
                                                            "keep-alive to an HTTP unix socket)")]:
        lines += [f"## {title}", "",
                  "| app | client | server | requests/s | × uWSGI | p50 ms | p99 ms | CPU µs/req | errors |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for app in args.apps:
            for client in args.clients:
                base_rows = serve.get((path, app, client, "uWSGI"))
                base = med(base_rows, "rps") if base_rows else float("nan")
                for server in (SERVERS if path == "http" else NGINX_SERVERS):
                    rows = serve.get((path, app, client, server))
                    if not rows:
                        continue
                    lines.append(f"| {app} | {client} | {server} | {med(rows, 'rps'):.0f} | "
                                 f"{med(rows, 'rps') / base:.2f} | {med(rows, 'p50_ms'):.2f} | "
                                 f"{med(rows, 'p99_ms'):.2f} | {med(rows, 'cpu_us'):.0f} | "
                                 f"{sum(r['errors'] for r in rows)} |")
        lines.append("")
    lines += ["uWSGI's `--http-socket` closes the connection after each response, so wrk counts its "
              "reconnections as read errors; the requests themselves succeed.", "",
              "## Server overhead per request", "",
              "| app | in-process µs/call | " + " | ".join(f"{s} CPU µs/req − app" for s in SERVERS) + " |",
              "|---|---|" + "---|" * len(SERVERS)]
    for app, c in cost.items():
        if ("http", app, "wrk20", "rwsgi") not in serve:
            continue
        cells = []
        for server in SERVERS:
            rows = serve.get(("http", app, "wrk20", server))
            cells.append(f"{med(rows, 'cpu_us') - c:.0f}" if rows else "–")
        lines.append(f"| {app} | {c:.1f} | " + " | ".join(cells) + " |")
    lines += ["", "## Memory: Flask hello, whole process tree (MiB)", "",
              "| server | workers | PSS idle | RSS idle | anonymous idle | PSS after load |", "|---|---|---|---|---|---|"]
    for (server, n), m in sorted(mem.items(), key=lambda kv: (MEM_SERVERS.index(kv[0][0]), kv[0][1])):
        lines.append(f"| {server} | {n} | {m['idle'][0] / 1024:.1f} | {m['idle'][1] / 1024:.1f} | "
                     f"{m['idle'][2] / 1024:.1f} | {m['loaded'][0] / 1024:.1f} |")
    lo, hi = min(args.workers), max(args.workers)
    lines += ["", "Extra PSS per added worker (idle, from "
              f"{lo} to {hi} workers): " + ", ".join(
                  f"{s} {(mem[(s, hi)]['idle'][0] - mem[(s, lo)]['idle'][0]) / (hi - lo) / 1024:.2f} MiB"
                  for s in MEM_SERVERS), "",
              "## Startup and worker spawn", "",
              "| server | exec → first 200 OK (s), 4 workers |", "|---|---|"]
    lines += [f"| {s} | {t:.2f} |" for s, t in boot.items()]
    lines += ["", "| server | master FIFO `+` → new worker process (median / min, s) |", "|---|---|"]
    lines += [f"| {s} | {m:.3f} / {lo_:.3f} |" for s, (m, lo_) in spawn.items()]
    lines += ["", "Both servers apply FIFO deltas at their next cheaper check (check-interval 1 s), which "
              "dominates these figures.", "", "![requests per second](rps.png)", "![memory](memory.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
    (out / "raw.json").write_text(json.dumps({
        "serving": {"/".join(k): v for k, v in serve.items()},
        "memory": {f"{k[0]}/{k[1]}": v for k, v in mem.items()},
        "startup": boot, "spawn": spawn, "app_cost_us": cost}, indent=1))
    plot(serve, mem, args, out)
    print("\n".join(lines))


def plot(serve, mem, args, out):
    fig, ax = plt.subplots(figsize=(9, 4))
    cases = [(p, a) for p in ["http", "nginx"] for a in args.apps]
    bars = SERVERS + ["rwsgi worker-accept", "rwsgi proxy"]
    width = 0.8 / len(bars)
    for i, server in enumerate(bars):
        vals = [med(serve[(p, a, "wrk20", server)], "rps") if (p, a, "wrk20", server) in serve else 0
                for p, a in cases]
        ax.bar([x + i * width for x in range(len(cases))], vals, width, label=server)
    ax.set_xticks([x + (len(bars) - 1) / 2 * width for x in range(len(cases))])
    ax.set_xticklabels([f"{a}\n{p}" for p, a in cases], fontsize=7)
    ax.set_ylabel("requests/s (wrk -c20)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "rps.png", dpi=90)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 4))
    for server in MEM_SERVERS:
        ax.plot(args.workers, [mem[(server, n)]["idle"][0] / 1024 for n in args.workers], marker="o", label=server)
    ax.set_xlabel("workers")
    ax.set_ylabel("PSS of the process tree, idle (MiB)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "memory.png", dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
