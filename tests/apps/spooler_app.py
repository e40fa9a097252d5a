"""An app that spools tasks as Django and Flask apps written for uWSGI do,
with uwsgidecorators' @spool, @spoolraw and uwsgi.spool(). Each task
appends a line to a file named after it in SPOOL_OUT."""

import json
import os
import time

import uwsgi
from uwsgidecorators import signal, spool, spoolraw

OUT = os.environ["SPOOL_OUT"]


def note(name, text):
    with open(os.path.join(OUT, name), "a") as f:
        f.write(text + "\n")


def lines(name):
    try:
        with open(os.path.join(OUT, name)) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


@spool
def send_mail(args):
    note("mail", "%s %s %s" % (args["to"], uwsgi.i_am_the_spooler(), uwsgi.worker_id()))


@spool(pass_arguments=True)
def resize(path, width=0):
    note("resize", "%s %d" % (path, width))


@spoolraw
def flaky(args):
    note("flaky", "try")
    if len(lines("flaky")) < 3:
        return uwsgi.SPOOL_RETRY
    return uwsgi.SPOOL_OK


@spool
def with_body(args):
    body = args["body"]
    note("body", "%d %r" % (len(body), body[:4]))


@spool
def failing(args):
    note("failing", "try")
    raise RuntimeError("this task fails")


@spool
def slow(args):
    note("slow", "start")
    time.sleep(30)


@signal(40, target="spooler")
def on_spooler(num):
    note("sig40", "%d %s" % (num, uwsgi.i_am_the_spooler()))


def application(environ, start_response):
    path = environ["PATH_INFO"]
    body = {}
    if path == "/raise40":
        uwsgi.signal(40)
    elif path == "/mail":
        body["file"] = send_mail.spool(to="a@b.c").decode()
    elif path == "/many":
        for i in range(20):
            send_mail.spool(to="n%d" % i)
    elif path == "/resize":
        resize("/img.png", width=300)
    elif path == "/later":
        send_mail.spool(to="later", at=str(int(time.time()) + 3))
    elif path == "/prio":
        body["file"] = send_mail.spool(to="prio", priority="5").decode()
    elif path == "/flaky":
        flaky.spool()
    elif path == "/body":
        with_body.spool(body=b"\x00\x01" * 50000)
    elif path == "/fail":
        failing.spool()
    elif path == "/slow":
        slow.spool()
    elif path == "/external":
        f = uwsgi.spool({"spooler": os.path.join(OUT, "ext"), "x": "y"})
        task = uwsgi.spooler_get_task(f.decode())
        body["file"] = f.decode()
        body["task"] = {(k if isinstance(k, str) else k.decode()): v.decode() for k, v in task.items()}
    elif path == "/bad":
        errors = []
        for args in [{"priority": "../up"}, {"spooler": "/nowhere"}, {b"x": b"y" * 70000}]:
            try:
                uwsgi.spool(args)
            except ValueError as e:
                errors.append(str(e))
        body["errors"] = errors
    elif path == "/info":
        body = {
            "pid": uwsgi.spooler_pid(),
            "pids": uwsgi.spooler_pids(),
            "jobs": [j.decode() for j in uwsgi.spooler_jobs()],
            "i_am": uwsgi.i_am_the_spooler(),
        }
    data = json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [data]
