"""An app that hands work to mules with uwsgidecorators' @mulefunc, as apps
written for uWSGI do; each function appends "<arg> <mule id>" to a file
named after it in MULE_OUT."""

import json
import os

import uwsgi
from uwsgidecorators import mule, mulefunc, signal, timer

OUT = os.environ["MULE_OUT"]


def note(name, text):
    with open(os.path.join(OUT, name), "a") as f:
        f.write(text + "\n")


@mulefunc
def any_mule(x):
    note("any", "%s %d" % (x, uwsgi.mule_id()))


@mulefunc(2)
def second(x):
    note("second", "%s %d" % (x, uwsgi.mule_id()))


@mulefunc("pool")
def pooled(x):
    note("pooled", "%s %d" % (x, uwsgi.mule_id()))


@mule(3)
def brain():
    note("brain", "started %d" % uwsgi.mule_id())


@signal(30, target="mule2")
def on_mule2(num):
    note("sig30", "%d %d" % (num, uwsgi.mule_id()))


@signal(31, target="farm_pool")
def on_farm(num):
    note("sig31", "%d %d" % (num, uwsgi.mule_id()))


@signal(32, target="mules")
def on_every_mule(num):
    note("sig32", "%d %d" % (num, uwsgi.mule_id()))


@timer(1, target="mule")
def tick(num):
    note("tick", "%d" % uwsgi.mule_id())


def application(environ, start_response):
    path = environ["PATH_INFO"]
    body = {}
    if path.startswith("/raise/"):
        uwsgi.signal(int(path[len("/raise/"):]))
    elif path == "/any":
        any_mule("hi")
    elif path == "/second":
        second("two")
    elif path == "/farm":
        pooled("f")
    elif path == "/bad":
        errors = []
        for call in [
            lambda: uwsgi.mule_msg(b"x", 9),
            lambda: uwsgi.mule_msg(b"x", "nofarm"),
            lambda: uwsgi.mule_get_msg(),
            lambda: uwsgi.mule_msg(b"x" * 70000),
        ]:
            try:
                call()
            except ValueError as e:
                errors.append(str(e))
        body["errors"] = errors
    elif path == "/info":
        body = {"mule_id": uwsgi.mule_id(), "in_farm": uwsgi.in_farm()}
    data = json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [data]
