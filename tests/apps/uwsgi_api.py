"""An app that uses the `uwsgi` module as apps written for uWSGI do.

Marker files go to the directory in APP_OUT: `postfork-<worker id>` from a
@postfork hook, `postfork-only-2-<worker id>` from @postfork(2), and
`atexit-<pid>` / `pyatexit-<pid>` when a worker stops.
"""

import atexit
import json
import os
import sys
import time

import uwsgi
from uwsgidecorators import harakiri, lock, postfork, rpc

OUT = os.environ["APP_OUT"]
IMPORTED_IN = uwsgi.worker_id()


def mark(name, content=""):
    # Whole or not at all: the tests read these as soon as they appear.
    path = os.path.join(OUT, name)
    with open(path + ".tmp", "w") as f:
        f.write(content)
    os.replace(path + ".tmp", path)


@postfork
def forked():
    mark("postfork-%d" % uwsgi.worker_id(), str(os.getpid()))


@postfork(2)
def only_two():
    mark("postfork-only-2-%d" % uwsgi.worker_id())


def stopping():
    mark("atexit-%d" % os.getpid())


@rpc("hello")
def rpc_hello(*args):
    return b"hi " + b",".join(args)


uwsgi.register_rpc("pid", lambda: str(os.getpid()))
uwsgi.atexit = stopping
atexit.register(lambda: mark("pyatexit-%d" % os.getpid()))
if os.environ.get("APP_HANG_AT_EXIT"):
    # An exit function that never returns (run first: atexit is LIFO).
    atexit.register(lambda: time.sleep(3600))


def plain(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


@lock
def counted():
    # Read, wait, write: without the lock two workers would lose updates.
    path = os.path.join(OUT, "counter")
    n = int(open(path).read()) if os.path.exists(path) else 0
    time.sleep(0.01)
    mark("counter", str(n + 1))
    return n + 1


@harakiri(1)
def too_slow():
    time.sleep(5)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    query = environ.get("QUERY_STRING", "")
    if path == "/info":
        rss, vsz = uwsgi.mem()
        body = {
            "worker_id": uwsgi.worker_id(),
            "imported_in": IMPORTED_IN,
            "numproc": uwsgi.numproc,
            "cores": uwsgi.cores,
            "buffer_size": uwsgi.buffer_size,
            "masterpid": uwsgi.masterpid(),
            "pid": os.getpid(),
            "request_id": uwsgi.request_id(),
            "version": plain(uwsgi.version),
            "version_info": [plain(v) for v in uwsgi.version_info],
            "hostname": isinstance(uwsgi.hostname, bytes) and len(uwsgi.hostname) > 0,
            "started_on": uwsgi.started_on,
            "mem": rss > 0 and vsz >= rss,
            "opt": {k: plain(v) for k, v in uwsgi.opt.items()},
            "optimize": sys.flags.optimize,
            "micros": uwsgi.micros(),
            "env_is_environ": getattr(uwsgi, "env", None) is environ,
            "cwd": os.getcwd(),
        }
        out = json.dumps(body)
    elif path == "/workers":
        out = json.dumps(
            {
                "total": uwsgi.total_requests(),
                "workers": [{k: plain(v) for k, v in w.items() if k != "apps"} for w in uwsgi.workers()],
                "apps": [len(w["apps"]) for w in uwsgi.workers()],
            }
        )
    elif path == "/logvar":
        uwsgi.set_logvar("user_id", query)
        uwsgi.set_logvar("role", "first")
        uwsgi.set_logvar("role", "admin")
        out = plain(uwsgi.get_logvar("role")) + " " + repr(uwsgi.get_logvar("nope"))
        if query == "force":
            uwsgi.log_this_request()
    elif path == "/log":
        uwsgi.log("from the app: " + query)
        out = "logged"
    elif path == "/hold":
        uwsgi.lock()
        try:
            time.sleep(float(query))
        finally:
            uwsgi.unlock()
        out = "held"
    elif path == "/is_locked":
        out = str(uwsgi.is_locked())
    elif path == "/counted":
        out = str(counted())
    elif path == "/bad_lock":
        try:
            uwsgi.lock(5)
            out = "locked?"
        except ValueError as e:
            out = str(e)
    elif path == "/die_holding":
        uwsgi.lock(1)
        os._exit(3)
    elif path == "/lock1":
        uwsgi.lock(1)
        uwsgi.unlock(1)
        out = "lock 1 free"
    elif path == "/missing":
        try:
            uwsgi.websocket_handshake()
            out = "a websocket?"
        except AttributeError as e:
            out = str(e)
    elif path == "/user_harakiri":
        uwsgi.set_user_harakiri(1)
        time.sleep(5)
        out = "survived"
    elif path == "/harakiri_cleared":
        uwsgi.set_user_harakiri(1)
        uwsgi.set_user_harakiri(0)
        time.sleep(2.5)
        out = "survived"
    elif path == "/harakiri_storm":
        for _ in range(20000):
            uwsgi.set_user_harakiri(100)
        uwsgi.set_user_harakiri(0)
        out = "survived"
    elif path == "/harakiri_decorated":
        too_slow()
        out = "survived"
    elif path == "/cache_set":
        k, v = query.split("=")
        out = repr(uwsgi.cache_set(k, v.encode(), 0, "shared"))
    elif path == "/cache_get":
        out = json.dumps(
            {
                "value": plain(uwsgi.cache_get(query, "shared")),
                "default": plain(uwsgi.cache_get(query)),
                "exists": uwsgi.cache_exists(query, "shared"),
                "keys": sorted(plain(k) for k in uwsgi.cache_keys("shared")),
                "pid": os.getpid(),
            }
        )
    elif path == "/cache_inc":
        out = repr(uwsgi.cache_inc("hits", 1, 0, "shared"))
    elif path == "/cache_num":
        out = str(uwsgi.cache_num("hits", "shared"))
    elif path == "/cache_bad":
        try:
            uwsgi.cache_get("x", "nope")
            out = "found?"
        except ValueError as e:
            out = str(e)
    elif path == "/sa_inc":
        uwsgi.sharedarea_inc64(0, 0)
        out = "ok"
    elif path == "/sa":
        uwsgi.sharedarea_wlock(0)
        uwsgi.sharedarea_write(0, 8, query.encode())
        uwsgi.sharedarea_writebyte(0, 16, 7)
        uwsgi.sharedarea_unlock(0)
        errors = []
        for bad in (lambda: uwsgi.sharedarea_read(0, 4096), lambda: uwsgi.sharedarea_read(1, 0),
                    lambda: uwsgi.sharedarea_write(0, 4090, b"too long"), lambda: uwsgi.sharedarea_unlock(0)):
            try:
                bad()
                errors.append("no error")
            except ValueError as e:
                errors.append(str(e))
        view = uwsgi.sharedarea_memoryview(0)
        out = json.dumps(
            {
                "count": uwsgi.sharedarea_readlong(0, 0),
                "text": plain(uwsgi.sharedarea_read(0, 8, len(query))),
                "byte": uwsgi.sharedarea_read8(0, 16),
                "view": [len(view), view[16]],
                "errors": errors,
            }
        )
    elif path == "/rpc":
        try:
            uwsgi.rpc("127.0.0.1:3031", "hello")
            remote = "called?"
        except ValueError as e:
            remote = str(e)
        out = json.dumps(
            {
                "hello": plain(uwsgi.call("hello", "a", b"b")),
                "pid": plain(uwsgi.rpc(None, "pid")),
                "missing": uwsgi.call("nope"),
                "names": sorted(plain(list(uwsgi.rpc_list()))),
                "remote": remote,
                "worker": os.getpid(),
            }
        )
    elif path == "/reload":
        out = str(uwsgi.reload())
    else:
        out = "?"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [out.encode()]
