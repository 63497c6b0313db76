"""The baseline: a bare Flask JSON endpoint, served by the same gunicorn configuration as the app."""
from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/bare")
def bare():
    return jsonify({"data": {"status": "ok"}, "info": {"error": ""}})
