"""Sentry's SDK set up at import time, as apps do: it reads `uwsgi.opt` to
decide whether its background threads are safe, and warns when not."""

import json
import warnings

import uwsgi

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import sentry_sdk
    from sentry_sdk._compat import check_uwsgi_thread_support

    sentry_sdk.init(dsn="http://public@127.0.0.1:9/1", default_integrations=False)
AT_INIT = [str(w.message) for w in caught if "uWSGI" in str(w.message)]


def application(environ, start_response):
    # The same check without what rwsgi says about itself: it must object,
    # or the check above proved nothing.
    saved = dict(uwsgi.opt)
    for key in ("enable-threads", "py-call-uwsgi-fork-hooks"):
        uwsgi.opt.pop(key, None)
    try:
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            without = check_uwsgi_thread_support()
    finally:
        uwsgi.opt.clear()
        uwsgi.opt.update(saved)
    body = {"at_init": AT_INIT, "supported": check_uwsgi_thread_support(), "without": without}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]
