"""The Flask apps of the suite: hello, a 64 KiB body, and a 50 ms view."""
import time

from flask import Flask

hello = Flask("hello")
big = Flask("big")
sleep = Flask("sleep")

BODY = b"x" * 65536


@hello.route("/")
def index():
    return "Hello, World!"


@big.route("/")
def sixty_four_k():
    return BODY


@sleep.route("/")
def fifty_ms():
    time.sleep(0.05)
    return "Hello, World!"
