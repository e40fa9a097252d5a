"""A mule's script (mule = mule_script.py): runs as __main__ in mule 1,
then the mule waits for messages."""

import os

import uwsgi

if __name__ == "__main__":
    with open(os.path.join(os.environ["MULE_OUT"], "script"), "a") as f:
        f.write("script %d\n" % uwsgi.mule_id())
