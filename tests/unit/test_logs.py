"""The JSON log lines (financial.logs) and gunicorn's logger class (financial.serving.JsonLogger), in-process."""
from __future__ import annotations

import json
import logging
import os
import sys

import pytest
from gunicorn.config import Config

from financial.logs import JsonFormatter
from financial.serving import JsonLogger


def record(message: str, *args, exc_info=None, **extra) -> logging.LogRecord:
    entry = logging.LogRecord("financial.test", logging.ERROR, __file__, 1, message, args, exc_info)
    entry.__dict__.update(extra)
    return entry


def test_a_json_line_has_the_fields_operators_filter_on():
    try:
        raise ValueError("boom")
    except ValueError:
        line = JsonFormatter().format(record("failed %s", "IBM", exc_info=sys.exc_info(), symbol="IBM"))
    entry = json.loads(line)
    assert "\n" not in line
    assert {key: entry[key] for key in ("level", "logger", "message", "symbol")} == {
        "level": "error", "logger": "financial.test", "message": "failed IBM", "symbol": "IBM"}
    assert entry["pid"] == os.getpid() and entry["time"].endswith("+00:00")
    assert entry["exception"].startswith("Traceback") and entry["exception"].endswith("ValueError: boom")


@pytest.mark.parametrize("app_env, json_lines", [("production", True), ("development", False)])
def test_gunicorns_lines_use_the_apps_formatter_and_hide_secrets(monkeypatch, tmp_path, app_env, json_lines):
    for name, value in {"ENV_FILE": os.devnull, "APP_ENV": app_env, "SECRET_KEY": "not-this-secret",
                        "ALPHAVANTAGE_API_KEY": "KEY-0123456789"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(logging, "logProcesses", False)  # what the app once set: gunicorn's %d format failed
    config = Config()
    config.set("errorlog", str(tmp_path / "error.log"))
    logger = JsonLogger(config)
    try:
        logger.critical("WORKER TIMEOUT (pid:%s)", 4242)
        logger.warning("upstream quoted KEY-0123456789 back")
    finally:
        for handler in logger.error_log.handlers:
            handler.close()
    lines = (tmp_path / "error.log").read_text().splitlines()
    assert len(lines) == 2 and "KEY-0123456789" not in lines[1]
    if json_lines:
        first, second = (json.loads(line) for line in lines)
        expected = ("critical", "gunicorn.error", "WORKER TIMEOUT (pid:4242)")
        assert (first["level"], first["logger"], first["message"]) == expected
        assert first["pid"] is None  # process ids off: the line still comes out (a null pid)
        assert second["message"].startswith("upstream quoted ") and second["level"] == "warning"
    else:
        assert lines[0].endswith("CRITICAL gunicorn.error: WORKER TIMEOUT (pid:4242)")
