"""An app that uses uWSGI signals as apps written for uWSGI do: handlers
registered at import (in the prototype, so every worker has them), timers,
an rb-timer, a file monitor, and signals raised from requests. Each handler
appends "<worker id> <pid>" to a file named after it in SIGNAL_OUT."""

import json
import os
import time

import uwsgi
from uwsgidecorators import filemon, get_free_signal, signal, timer

OUT = os.environ["SIGNAL_OUT"]


def note(name):
    with open(os.path.join(OUT, name), "a") as f:
        f.write("%d %d\n" % (uwsgi.worker_id(), os.getpid()))


@timer(1)
def every_second(num):
    note("timer")


@signal(17)
def any_worker(num):
    note("sig17")


@signal(18, target="workers")
def every_worker(num):
    note("sig18")


@signal(19, target="worker2")
def second_worker(num):
    note("sig19")


@signal(21)
def failing(num):
    raise RuntimeError("this handler fails")


@signal(22)
def slow(num):
    note("slow-start")
    time.sleep(3)
    note("slow-end")


def twice(num):
    note("rb%d" % num)


uwsgi.register_signal(20, "", twice)
uwsgi.add_rb_timer(20, 1, 2)


@filemon(os.path.join(OUT, "watched"))
def watched_changed(num):
    note("filemon")


IMPORT_ERRORS = []
for args in [(17, "", twice), (40, "subscribed", twice), (41, "farmx", twice), (300, "", twice)]:
    try:
        uwsgi.register_signal(*args)
    except (ValueError, OverflowError) as e:
        IMPORT_ERRORS.append(str(e))


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path.startswith("/raise/"):
        uwsgi.signal(int(path[len("/raise/"):]))
        body = {"raised": True}
    elif path == "/info":
        body = {
            "import_errors": IMPORT_ERRORS,
            "registered": [n for n in range(256) if uwsgi.signal_registered(n)],
            "free": get_free_signal(),
            "worker_id": uwsgi.worker_id(),
        }
    else:
        body = {"path": path}
    data = json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [data]
