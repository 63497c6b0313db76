"""The OpenAPI (Swagger 2.0) spec as the service serves it, and its export to conf/api.swagger.json."""
from __future__ import annotations

import json
from pathlib import Path

from flask import Flask

from financial.extensions import app_state


def served_spec(app: Flask) -> dict:
    """The document served at /swagger.json."""
    with app.test_request_context("/"):
        return json.loads(json.dumps(app_state(app).api.__schema__))


def render(spec: dict) -> str:
    return json.dumps(spec, indent=2, sort_keys=True) + "\n"


def export(app: Flask, path: str | Path) -> None:
    Path(path).write_text(render(served_spec(app)))
