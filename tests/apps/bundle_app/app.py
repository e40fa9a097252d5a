"""The app the bundle tests put in a container: Flask, plus a view that
imports a standard-library module only when it is requested."""
from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return "Hello, World!"


@app.route("/lazy")
def lazy():
    import fractions  # not imported by the warm-up request

    return str(fractions.Fraction(1, 3))
