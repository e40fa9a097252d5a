"""The cheaper scenario, side by side: rwsgi and uWSGI with identical
options serve an app that takes 50 ms per request; a load of many concurrent
clients arrives, stays, and leaves. Samples per 0.5 s: completed requests,
p99 latency, and the number of worker processes. Writes one PNG per server
and a Markdown summary under bench/results/.

    bench/.venv/bin/python bench/cheaper.py [--clients 48] [--load-seconds 15]
"""
import argparse
import http.client
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from common import APPS, BENCH, RWSGI, VENV, free_port, tree, wait_http  # noqa: E402

OPTIONS = [
    "--processes", "16", "--cheaper", "2", "--cheaper-algo", "busyness", "--cheaper-overload", "1",
    "--cheaper-busyness-multiplier", "1", "--cheaper-step", "2", "--listen", "1000",
    "--chdir", str(APPS), "--wsgi-file", str(APPS / "slow.py"), "--disable-logging", "--master",
]


def argv(server, port):
    if server == "rwsgi":
        return [str(RWSGI), "--http-socket", f"127.0.0.1:{port}", *OPTIONS]
    return [str(VENV / "bin/uwsgi"), "--http-socket", f"127.0.0.1:{port}", *OPTIONS, "--need-app"]


def workers(server, master):
    procs = tree(master)
    # rwsgi: master + prototype + workers; uWSGI: master + workers.
    return len(procs) - (2 if server == "rwsgi" else 1)


def run(server, args):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UWSGI_", "RWSGI_"))}
    proc = subprocess.Popen(argv(server, port), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_http(port)
        samples = []  # (t, workers)
        latencies = []  # (t_done, seconds, ok)
        lock = threading.Lock()
        t0 = time.monotonic()
        load_start, load_end = args.idle, args.idle + args.load_seconds
        total = load_end + args.cooldown

        def client():
            while time.monotonic() - t0 < load_start:
                time.sleep(0.01)
            while time.monotonic() - t0 < load_end:
                started = time.monotonic()
                ok = False
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    c.request("GET", "/")
                    r = c.getresponse()
                    r.read()
                    ok = r.status == 200
                    c.close()
                except OSError:
                    pass
                done = time.monotonic()
                with lock:
                    latencies.append((done - t0, done - started, ok))

        threads = [threading.Thread(target=client, daemon=True) for _ in range(args.clients)]
        for t in threads:
            t.start()
        while time.monotonic() - t0 < total:
            samples.append((time.monotonic() - t0, workers(server, proc.pid)))
            time.sleep(0.5)
        for t in threads:
            t.join()
        return samples, latencies, (load_start, load_end)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def per_bucket(latencies, total, width=0.5):
    buckets = int(total / width) + 1
    rps, p99 = [0.0] * buckets, [float("nan")] * buckets
    by = [[] for _ in range(buckets)]
    for t, lat, ok in latencies:
        i = min(int(t / width), buckets - 1)
        if ok:
            by[i].append(lat)
    for i, lats in enumerate(by):
        rps[i] = len(lats) / width
        if lats:
            lats.sort()
            p99[i] = lats[min(len(lats) - 1, int(len(lats) * 0.99))] * 1000
    return [i * width for i in range(buckets)], rps, p99


def summarize(server, samples, latencies, window):
    load_start, load_end = window
    peak = max(w for _, w in samples)
    up = next((t - load_start for t, w in samples if t >= load_start and w >= peak * 0.9), float("nan"))
    after = [(t, w) for t, w in samples if t >= load_end]
    floor = min(w for _, w in after) if after else peak
    down = next((t - load_end for t, w in after if w <= floor), float("nan"))
    during = sorted(lat for t, lat, ok in latencies if ok and load_start <= t <= load_start + 10)
    ramp_p99 = during[int(len(during) * 0.99)] * 1000 if during else float("nan")
    failed = sum(1 for _, _, ok in latencies if not ok)
    return {"server": server, "peak": peak, "floor": floor, "up_s": up, "down_s": down,
            "ramp_p99_ms": ramp_p99, "requests": len(latencies), "failed": failed}


def plot(server, samples, latencies, window, out):
    total = samples[-1][0]
    xs, rps, p99 = per_bucket(latencies, total)
    fig, ax = plt.subplots(3, 1, figsize=(9, 7), sharex=True)
    ax[0].plot(xs, rps, color="tab:blue")
    ax[0].set_ylabel("requests/s")
    ax[1].step([t for t, _ in samples], [w for _, w in samples], where="post", color="tab:green")
    ax[1].set_ylabel("workers")
    ax[1].set_ylim(0, 17)
    ax[2].plot(xs, p99, color="tab:red")
    ax[2].set_ylabel("p99 latency (ms)")
    ax[2].set_xlabel("seconds")
    for a in ax:
        a.axvspan(window[0], window[1], color="0.9")
        a.grid(alpha=0.3)
    fig.suptitle(f"{server}: busyness, 2..16 workers, 50 ms app (load shaded)")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=48)
    ap.add_argument("--idle", type=float, default=3)
    ap.add_argument("--load-seconds", type=float, default=15)
    ap.add_argument("--cooldown", type=float, default=30)
    args = ap.parse_args()
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    rows = []
    for server in ["rwsgi", "uWSGI"]:
        samples, latencies, window = run(server, args)
        plot(server, samples, latencies, window, out / f"cheaper-{server.lower()}.png")
        rows.append(summarize(server, samples, latencies, window))
    lines = [
        "# Cheaper scenario", "",
        f"Options (both servers): `{' '.join(OPTIONS[:14])} --chdir bench/apps --wsgi-file bench/apps/slow.py`; "
        f"{args.clients} clients, a new connection per "
        f"request, load from {args.idle:.0f} s to {args.idle + args.load_seconds:.0f} s.", "",
        "| server | peak workers | back to | time to 90% of peak (s) | time back down (s) | p99 in the first 10 s of load (ms) | requests | failed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['server']} | {r['peak']} | {r['floor']} | {r['up_s']:.1f} | {r['down_s']:.1f} | "
                     f"{r['ramp_p99_ms']:.0f} | {r['requests']} | {r['failed']} |")
    lines += ["", "![rwsgi](cheaper-rwsgi.png)", "![uWSGI](cheaper-uwsgi.png)", ""]
    (out / "cheaper.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
