"""Bundle figures: the size of `rwsgi bundle`'s root filesystem for the Flask
example (uncompressed and as a gzipped tar), and the memory of the bundle
running under chroot as 65534 with one idle worker, side by side with a
single uWSGI process serving the same app. Needs root (chroot).
Writes bench/results/bundle.md.

    bench/.venv/bin/python bench/bundle.py
"""
import io
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from common import BENCH, ROOT, RWSGI, VENV, free_port, memory, tree, wait_http

EXAMPLE = ROOT / "examples/flask_hello"


def tree_size(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def targz_size(path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(path, arcname=".")
    return len(buf.getvalue())


def measure(argv, env=None):
    port = free_port()
    argv = [a.replace("@PORT@", str(port)) for a in argv]
    proc = subprocess.Popen(argv, env=env or {}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_http(port)
        subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/"], check=True)
        time.sleep(1.0)
        pids = tree(proc.pid)
        return memory(pids), len(pids)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(15)


def main():
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run(["/usr/bin/python3.11", "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin/pip"), "install", "-q", "-r", str(EXAMPLE / "requirements.txt")], check=True)
        no_ssl = ["--exclude-module", "_ssl", "--exclude-module", "_hashlib"]
        warm = ["--warmup-url", "/"]
        for label, extra, run_extra in [("traced (default)", [], []),
                                        ("traced, warm-up of / before fork", [], warm),
                                        ("traced, without OpenSSL, warm-up", no_ssl, warm),
                                        ("traced, without OpenSSL, stdlib zipped, warm-up (the Dockerfile's)",
                                         [*no_ssl, "--zip"], warm)]:
            b = Path(tmp) / f"bundle-{len(rows)}"
            subprocess.run([str(RWSGI), "bundle", "--module", "app:app", "--chdir", str(EXAMPLE), "--virtualenv",
                            str(venv), "--out", str(b), *extra], check=True, stdout=subprocess.DEVNULL)
            size, gz = tree_size(b), targz_size(b)
            # As a container runtime runs it: chroot, 65534, /proc mounted
            # (in a mount namespace of its own).
            mem, nproc = measure([shutil.which("unshare"), f"--mount-proc={b}/proc",
                                  shutil.which("chroot"), "--userspec=65534:65534", str(b), "/rwsgi",
                                  "/app/rwsgi.ini", "--http-socket", "127.0.0.1:@PORT@", "--processes", "1",
                                  "--disable-logging", *run_extra])
            rows.append((f"rwsgi bundle, {label}", size, gz, mem, nproc))
        mem, nproc = measure([str(VENV / "bin/uwsgi"), "--http-socket", "127.0.0.1:@PORT@", "--chdir", str(EXAMPLE),
                              "--module", "app:app", "--home", str(venv), "--disable-logging", "--need-app"])
        rows.append(("uWSGI, one process, no master", None, None, mem, nproc))
    lines = ["# The container", "",
             "Flask example (`examples/flask_hello`), bundled with `rwsgi bundle`; memory after one request,",
             "whole process tree (rwsgi: master + prototype + 1 worker, under chroot as 65534 with /proc",
             "mounted, as a container runtime runs it), from",
             "/proc/*/smaps_rollup.", "",
             "| what | size MiB | tar.gz MiB | processes | PSS MiB | anonymous MiB | RSS MiB |",
             "|---|---|---|---|---|---|---|"]
    for name, size, gz, (pss, rss, anon), nproc in rows:
        s = f"{size / 1048576:.1f}" if size else "–"
        g = f"{gz / 1048576:.1f}" if gz else "–"
        lines.append(f"| {name} | {s} | {g} | {nproc} | {pss / 1024:.1f} | {anon / 1024:.1f} | {rss / 1024:.1f} |")
    lines += ["", "For comparison: the uWSGI + Flask distroless image this project started from was ~92 MB, and",
              "`gcr.io/distroless/python3` is ~50 MB before any app.", ""]
    (out / "bundle.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
