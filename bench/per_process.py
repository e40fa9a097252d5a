"""rwsgi against uWSGI behind the same nginx (uwsgi_pass on a unix socket),
with the CPU time and the voluntary context switches of every process per
request: where each server's time goes. Writes bench/results/per_process.md.

    bench/.venv/bin/python bench/per_process.py [--reps N] [--seconds S]

Run bench/run.sh once first: it installs wrk, nginx and the servers.
Interleaved runs (rwsgi, uWSGI, rwsgi, ...), 2 workers each, wrk -t1 -c20.
"""
import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from common import APPS, BENCH, CLK, Running, tree, wait_http, wrk
from suite import command, nginx


SERVERS = ["rwsgi", "rwsgi worker-accept", "uWSGI"]


def stat(pid):
    """(CPU seconds, voluntary context switches) of one process."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(f[11]) + int(f[12])) / CLK
        status = Path(f"/proc/{pid}/status").read_text()
        vol = int(status.split("voluntary_ctxt_switches:")[1].split()[0])
        return cpu, vol
    except (OSError, IndexError, ValueError):
        return 0.0, 0


def run(server, app, seconds, tmp, tag):
    sock = Path(tmp) / f"{tag}.sock".replace(" ", "_")
    with Running(cwd=APPS, argv=command(server, app, 2, ("unix", sock))) as s:
        ng, port = nginx(tmp, server, sock, tag)
        try:
            wait_http(port)
            wrk(port, 20, 1)
            pids = tree(s.proc.pid)
            roles = ["master"] + (["prototype"] if server.startswith("rwsgi") else []) + ["worker"] * 2
            before = {p: stat(p) for p in pids + [ng.pid]}
            r = wrk(port, 20, seconds)
            after = {p: stat(p) for p in pids + [ng.pid]}
        finally:
            ng.terminate()
            ng.wait()
    n = max(r["requests"], 1)

    def per(pids_):
        cpu = sum(after[p][0] - before[p][0] for p in pids_) / n * 1e6
        ctx = sum(after[p][1] - before[p][1] for p in pids_) / n
        return cpu, ctx

    by_role = {}
    for p, role in zip(pids, roles):
        by_role.setdefault(role, []).append(p)
    out = {"rps": r["rps"], "p99": r["p99_ms"], "nginx": per([ng.pid])}
    out["master"] = per(by_role.get("master", []))
    out["workers"] = per(by_role.get("worker", []))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for app in ["flask_hello", "wsgi_hello"]:
                for server in SERVERS:
                    r = run(server, app, args.seconds, tmp, f"{server}-{app}-{rep}")
                    rows.setdefault((app, server), []).append(r)
                    print(f"{app} {server}: {r['rps']:.0f} req/s", file=sys.stderr)
    med = statistics.median
    lines = ["# Behind nginx, per process", "",
             f"`bench/.venv/bin/python bench/per_process.py --reps {args.reps} --seconds {args.seconds}`: "
             "nginx `uwsgi_pass` on a unix socket, 2 workers, wrk -t1 -c20, interleaved runs, medians. "
             "CPU µs and voluntary context switches per request, summed over the processes of each role.", "",
             "| app | server | requests/s | × uWSGI | p99 ms | master µs | workers µs | nginx µs "
             "| master sleeps | workers sleeps | nginx sleeps |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for app in ["flask_hello", "wsgi_hello"]:
        base = med(r["rps"] for r in rows[(app, "uWSGI")])
        for server in SERVERS:
            rs = rows[(app, server)]
            rps = med(r["rps"] for r in rs)
            cell = [f"{med(r[k][0] for r in rs):.1f}" for k in ("master", "workers", "nginx")]
            cell += [f"{med(r[k][1] for r in rs):.2f}" for k in ("master", "workers", "nginx")]
            lines.append(f"| {app} | {server} | {rps:.0f} | {rps / base:.2f} | "
                         f"{med(r['p99'] for r in rs):.2f} | " + " | ".join(cell) + " |")
    out = BENCH / "results" / "per_process.md"
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
