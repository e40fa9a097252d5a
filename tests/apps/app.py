"""WSGI apps for the integration tests; each test picks one with --callable."""
import hashlib
import json
import os
import time
from wsgiref.validate import validator


def hello(environ, start_response):
    body = b"Hello, World!"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def echo(environ, start_response):
    """Reads the whole body in pieces and answers with what it saw."""
    inp = environ["wsgi.input"]
    h = hashlib.sha256()
    n = 0
    while True:
        chunk = inp.read(65536)
        if not chunk:
            break
        h.update(chunk)
        n += len(chunk)
    env = {k: v for k, v in environ.items() if isinstance(v, str)}
    env["wsgi.multiprocess"] = environ["wsgi.multiprocess"]
    env["wsgi.multithread"] = environ["wsgi.multithread"]
    env["wsgi.run_once"] = environ["wsgi.run_once"]
    env["wsgi.version"] = list(environ["wsgi.version"])
    env["has_file_wrapper"] = "wsgi.file_wrapper" in environ
    body = json.dumps({"len": n, "sha256": h.hexdigest(), "environ": env, "pid": os.getpid()}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def lines(environ, start_response):
    """Echoes the body line by line through readline and iteration."""
    inp = environ["wsgi.input"]
    first = inp.readline()
    rest = list(inp)
    body = json.dumps({"first": first.decode("latin-1"), "rest": [l.decode("latin-1") for l in rest]}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def download(environ, start_response):
    size = int(environ.get("QUERY_STRING") or 10 * 1024 * 1024)
    block = bytes(range(256)) * 256
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))])

    def gen():
        left = size
        while left > 0:
            piece = block[: min(left, len(block))]
            left -= len(piece)
            yield piece

    return gen()


def stream(environ, start_response):
    """No Content-Length: chunked over HTTP, until close over uwsgi."""
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"first\n")

    def gen():
        for i in range(3):
            time.sleep(0.05)
            yield b"chunk %d\n" % i

    return gen()


def crash(environ, start_response):
    if environ.get("PATH_INFO") == "/crash":
        os._exit(3)
    return hello(environ, start_response)


def crash_midway(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "1000000")])

    def gen():
        yield b"x" * 100000
        os._exit(4)

    return gen()


def slow(environ, start_response):
    time.sleep(float(environ.get("QUERY_STRING") or "1"))
    return hello(environ, start_response)


def raises(environ, start_response):
    if environ.get("PATH_INFO") == "/before":
        raise RuntimeError("boom before start_response")
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        yield b"partial"
        raise RuntimeError("boom midway")

    return gen()


class Closing:
    """An iterable whose close() records that it ran."""

    closed = 0

    def __init__(self):
        self.items = [b"a", "not bytes", b"b"]

    def __iter__(self):
        return iter(self.items)

    def close(self):
        Closing.closed += 1


def close_called(environ, start_response):
    if environ.get("PATH_INFO") == "/count":
        body = str(Closing.closed).encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Closing()


def file_wrapper(environ, start_response):
    import io
    start_response("200 OK", [("Content-Type", "text/plain")])
    return environ["wsgi.file_wrapper"](io.BytesIO(b"0123456789" * 1000), 1024)


validated = validator(echo)


_calls = []


def counted(environ, start_response):
    """Counts its calls in a module global: a worker forked after a warm-up
    inherits the prototype's count. Raises for /boom."""
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("boom during warm-up")
    _calls.append((environ["PATH_INFO"], environ["QUERY_STRING"]))
    body = json.dumps({"calls": len(_calls), "pid": os.getpid(), "paths": sorted(set(p for p, _ in _calls)),
                       "queries": sorted(set(q for _, q in _calls))}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def osenv(environ, start_response):
    """The process environment variable named by the query string."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [os.environ.get(environ["QUERY_STRING"], "(unset)").encode()]


def talker(environ, start_response):
    """Prints to stdout and stderr; /missing is a 404, /slow takes 0.3 s."""
    import sys
    path = environ["PATH_INFO"]
    print("talker stdout " + path, flush=True)
    print("talker stderr " + path, file=sys.stderr, flush=True)
    if path == "/slow":
        time.sleep(0.3)
    start_response("404 Not Found" if path == "/missing" else "200 OK", [("Content-Type", "text/plain")])
    return [path.encode()]


def titled(environ, start_response):
    """Sets its process title to the query string (uwsgi.setprocname) and
    answers its pid and the environment variable TITLE_CHECK."""
    import uwsgi
    if environ["QUERY_STRING"]:
        uwsgi.setprocname(environ["QUERY_STRING"])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{os.getpid()} {os.environ.get('TITLE_CHECK')}".encode()]


def stack(environ, start_response):
    """Answers the serving thread's stack size (pthread_getattr_np) and
    whether it is the process's main thread, after 0.3 s."""
    import ctypes
    import threading
    libc = ctypes.CDLL(None)
    attr = ctypes.create_string_buffer(128)
    size = ctypes.c_size_t()
    libc.pthread_self.restype = ctypes.c_ulong
    libc.pthread_getattr_np(ctypes.c_ulong(libc.pthread_self()), attr)
    libc.pthread_attr_getstacksize(attr, ctypes.byref(size))
    libc.pthread_attr_destroy(attr)
    time.sleep(0.3)
    main = threading.get_native_id() == os.getpid()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"stack": size.value, "main": main}).encode()]
