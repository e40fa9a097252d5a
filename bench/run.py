"""Side-by-side benchmarks: rwsgi against uWSGI (and, where set up, gunicorn
and granian), in one run, on loopback. Writes bench/results/report.md.

Run it through ./bench/run.sh, which installs what it needs. Every server gets
the same app and the same number of worker processes; servers are measured
interleaved, several repetitions each, and reported as medians and as ratios
to uWSGI. The machines this runs on are shared and noisy: read ratios, not
absolute numbers.
"""
import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV = BENCH / ".venv"
RWSGI = ROOT / "target/release/rwsgi"
APPS = BENCH / "apps"
CLK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree(pid):
    """pid and all its descendants."""
    children = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids):
    total = 0
    for p in pids:
        try:
            f = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])  # utime + stime
        except OSError:
            pass
    return total / CLK


def memory(pids):
    """(PSS, RSS, anonymous) in KiB summed over the processes. Anonymous is
    the sum of Pss_Anon: each anonymous page once, however many processes
    share it copy-on-write, which is what a cgroup (`docker stats`) counts."""
    pss = rss = anon = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                k, _, v = line.partition(":")
                if k == "Pss":
                    pss += int(v.split()[0])
                elif k == "Rss":
                    rss += int(v.split()[0])
                elif k == "Pss_Anon":
                    anon += int(v.split()[0])
        except OSError:
            pass
    return pss, rss, anon


def wait_http(port, path="/", timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
                if s.recv(64).startswith(b"HTTP/1.") :
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"nothing answered on port {port}")


class Server:
    """A server under test: how to start it, HTTP or behind nginx."""

    def __init__(self, name, argv, port=None, unix=None, env=None):
        self.name, self.argv, self.port, self.unix, self.env = name, argv, port, unix, env
        self.proc = None

    def start(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("UWSGI_", "RWSGI_"))}
        env.update(self.env or {})
        self.proc = subprocess.Popen(self.argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def rwsgi(listen, workers, extra=()):
    return [str(RWSGI), *listen, "--master", "--processes", str(workers), "--chdir", str(APPS),
            "--module", "flask_hello:app", "--home", str(VENV), "--disable-logging", *extra]


def uwsgi(listen, workers, extra=()):
    return [str(VENV / "bin/uwsgi"), *listen, "--master", "--processes", str(workers), "--chdir", str(APPS),
            "--module", "flask_hello:app", "--home", str(VENV), "--disable-logging", "--need-app", *extra]


def wrk(port, conns, seconds):
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    reqs = int(re.search(r"(\d+) requests in", out).group(1))

    def pct(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    return {"rps": rps, "requests": reqs, "p50_ms": pct(50), "p99_ms": pct(99), "errors": errors}


def nginx_conf(dirpath, port, unix):
    conf = (ROOT / "nginx/rwsgi.conf").read_text()
    conf = (conf.replace("@PREFIX@", str(dirpath)).replace("@CONF@", str(ROOT / "nginx"))
            .replace("@PORT@", str(port)).replace("@UNIX@", str(unix)).replace("@TCP@", "127.0.0.1:9"))
    conf = conf.replace("error_log " + str(dirpath) + "/error.log info;", "error_log " + str(dirpath) + "/error.log warn;")
    path = Path(dirpath) / "nginx.conf"
    path.write_text(conf)
    return path


def measure(server, port, conns, seconds, warmup=2):
    wrk(port, conns, warmup)
    pids = tree(server.proc.pid)
    cpu0 = cpu_seconds(pids)
    r = wrk(port, conns, seconds)
    r["cpu_us_per_req"] = (cpu_seconds(tree(server.proc.pid)) - cpu0) / max(r["requests"], 1) * 1e6
    return r


def serving(args, tmp):
    """Flask hello, 2 workers: direct HTTP and behind nginx on a unix socket."""
    results = {}
    for rep in range(args.reps):
        for name, make in [("rwsgi", rwsgi), ("uWSGI", uwsgi)]:
            port = free_port()
            s = Server(name, make(["--http-socket", f"127.0.0.1:{port}"], 2)).start()
            try:
                wait_http(port)
                results.setdefault(("http", name), []).append(measure(s, port, 20, args.seconds))
            finally:
                s.stop()
            sock = Path(tmp) / f"{name}.sock"
            ngdir = Path(tmp) / f"nginx-{name}-{rep}"
            ngdir.mkdir()
            nport = free_port()
            s = Server(name, make(["--socket", str(sock)], 2)).start()
            ng = subprocess.Popen(["nginx", "-p", str(ngdir), "-c", str(nginx_conf(ngdir, nport, sock)),
                                   "-e", str(ngdir / "error.log")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_http(nport)
                results.setdefault(("nginx", name), []).append(measure(s, nport, 20, args.seconds))
            finally:
                ng.terminate()
                ng.wait()
                s.stop()
    return results


def memory_at(make, workers, extra=()):
    port = free_port()
    s = Server("", make(["--http-socket", f"127.0.0.1:{port}"], workers, extra)).start()
    try:
        wait_http(port)
        time.sleep(1.0)
        idle = memory(tree(s.proc.pid))
        wrk(port, 20, 3)
        time.sleep(0.5)
        loaded = memory(tree(s.proc.pid))
        return {"idle": idle, "loaded": loaded, "processes": len(tree(s.proc.pid))}
    finally:
        s.stop()


def median(rows, key):
    return statistics.median(r[key] for r in rows)


def report(args, serve, mem):
    py = subprocess.run([str(VENV / "bin/python"), "-c", "import sys;print(sys.version.split()[0])"],
                        capture_output=True, text=True).stdout.strip()
    uv = subprocess.run([str(VENV / "bin/uwsgi"), "--version"], capture_output=True, text=True).stdout.strip()
    rv = subprocess.run([str(RWSGI), "--version"], capture_output=True, text=True).stdout.strip()
    lines = [
        "# Benchmark report", "",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        f"- Python {py}; {rv}; uWSGI {uv}; wrk -t1 -c20 -d{args.seconds}s --latency, "
        f"{args.reps} repetitions interleaved, medians",
        "- app: Flask hello (`bench/apps/flask_hello.py`), 2 worker processes, request logging off", "",
        "## Serving", "",
        "| path | server | requests/s | ratio to uWSGI | p50 ms | p99 ms | server CPU µs/request | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for path in ["http", "nginx"]:
        base = median(serve[(path, "uWSGI")], "rps")
        for name in ["rwsgi", "uWSGI"]:
            rows = serve[(path, name)]
            label = {"http": "direct HTTP (`--http-socket`)", "nginx": "nginx `uwsgi_pass`, unix socket"}[path]
            lines.append(f"| {label} | {name} | {median(rows, 'rps'):.0f} | {median(rows, 'rps') / base:.2f} | "
                         f"{median(rows, 'p50_ms'):.2f} | {median(rows, 'p99_ms'):.2f} | "
                         f"{median(rows, 'cpu_us_per_req'):.0f} | {sum(r['errors'] for r in rows)} |")
    lines += ["", "## Memory: 4 workers, Flask hello, whole process tree", "",
              "| server | processes | PSS idle MiB | RSS idle MiB | anonymous idle MiB | PSS after load MiB |",
              "|---|---|---|---|---|---|"]
    for name, m in mem.items():
        lines.append(f"| {name} | {m['processes']} | {m['idle'][0] / 1024:.1f} | {m['idle'][1] / 1024:.1f} | "
                     f"{m['idle'][2] / 1024:.1f} | {m['loaded'][0] / 1024:.1f} |")
    lines += ["", "rwsgi's tree is master + prototype + workers; uWSGI's is master + workers.",
              "Server CPU time is utime+stime of the whole tree over the measured run, from /proc.", ""]
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    (out / "report.md").write_text("\n".join(lines))
    (out / "raw.json").write_text(json.dumps({"serving": {f"{k[0]}/{k[1]}": v for k, v in serve.items()},
                                              "memory": mem}, indent=1))
    print("\n".join(lines))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="3-second runs, one repetition")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.reps = 3, 1
    for tool in ["wrk", "nginx"]:
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: run bench/run.sh")
    with tempfile.TemporaryDirectory() as tmp:
        serve = serving(args, tmp)
    mem = {"rwsgi": memory_at(rwsgi, 4), "uWSGI": memory_at(uwsgi, 4)}
    report(args, serve, mem)


if __name__ == "__main__":
    main()
