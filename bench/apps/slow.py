"""A WSGI app that takes 50 ms per request: the cheaper scenario's app."""
import time


def application(environ, start_response):
    time.sleep(0.05)
    body = b"done"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
