"""The Flask example: `./run-example.sh` serves it on 127.0.0.1:9090."""
from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    return "Hello, World!"
