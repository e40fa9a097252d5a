"""Helpers shared by the benchmark scripts: process trees, CPU time and
memory from /proc, free ports, readiness, wrk and ab runs, nginx config."""
import os
import re
import signal
import socket
import subprocess
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


class Running:
    """A server process in its own session, stopped with SIGINT (SIGKILL
    after 10 s); usable as a context manager."""

    def __init__(self, argv, cwd=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("UWSGI_", "RWSGI_"))}
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.stop()


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




def ab(port, conns, seconds):
    """ApacheBench: HTTP/1.0, a new connection per request, for `seconds`."""
    requests = 1000000
    out = subprocess.run(["ab", "-q", "-t", str(seconds), "-n", str(requests), "-c", str(conns),
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True).stdout
    m = re.search(r"Requests per second:\s+([\d.]+)", out)
    if not m:
        return {"rps": 0.0, "requests": 0, "p50_ms": float("nan"), "p99_ms": float("nan"), "errors": requests}
    failed = int(re.search(r"Failed requests:\s+(\d+)", out).group(1))
    non2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    done = int(re.search(r"Complete requests:\s+(\d+)", out).group(1))

    def pct(p):
        m = re.search(rf"\s{p}%\s+(\d+)", out)
        return float(m.group(1)) if m else float("nan")

    return {"rps": float(m.group(1)), "requests": done, "p50_ms": pct(50), "p99_ms": pct(99),
            "errors": failed + (int(non2xx.group(1)) if non2xx else 0)}
