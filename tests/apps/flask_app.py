"""A small Flask app, served by the tests through rwsgi."""
from flask import Flask, request

app = Flask(__name__)


@app.route("/")
def index():
    return "Hello, World!"


@app.route("/json", methods=["POST"])
def echo_json():
    data = request.get_json()
    return {"got": data, "cookie": request.cookies.get("big", "")[:10], "n": len(request.cookies.get("big", ""))}


@app.route("/upload", methods=["POST"])
def upload():
    return {"len": len(request.get_data())}
