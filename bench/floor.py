"""The floor: a bare Flask route served by the same gunicorn command as the API.

`gunicorn -w 2 -b 127.0.0.1:PORT bench.floor:app`. Every Hearth figure is reported as a ratio to
this one, measured in the same run, because absolute rates drift with the machine.
"""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.get("/hello")
def hello() -> str:
    """Answer with a constant body."""
    return "hello"
