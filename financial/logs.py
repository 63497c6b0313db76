"""Logging: JSON lines on stdout in production, readable text (and a file under data/log/) in development.

A filter on the handlers replaces configured secrets (API keys, passwords) wherever they appear, so no
log line can leak one even when an upstream quotes it back to us.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import logging.handlers
import sys
from pathlib import Path
from typing import Iterable

from financial.config import Settings
from lib.http import Redactor

_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_ENCODER = json.JSONEncoder(default=str)
MARK = "_market_data"  # set on the handlers configure_logging puts on the root logger


class RedactingFilter(logging.Filter):
    """Every configured secret in a record's message replaced, as `lib` redacts what upstreams quote."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__()
        self.redact = Redactor(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.redact.spellings:
            record.msg, record.args = self.redact(record.getMessage()), ()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _ENCODER.encode(entry)


def configure_logging(settings: Settings, *, process: str = "app") -> None:
    """Set up the root logger once per process (later calls replace the handlers)."""
    secrets = [settings.alphavantage_api_key, settings.cryptowatch_api_key, settings.smtp_password,
               settings.secret_key]
    redacting = RedactingFilter(secrets)
    handlers: list[logging.Handler] = []
    if settings.is_production:
        stream = logging.StreamHandler(sys.stdout)
        stream.setFormatter(JsonFormatter())
        handlers.append(stream)
    else:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter(_TEXT_FORMAT, "%H:%M:%S"))
        if process == "ingest" and settings.log_level != "DEBUG":
            # The command prints its own progress lines; the console only needs warnings on top. A filter,
            # not a handler level: Flask adds a handler of its own when it sees none for its level.
            stream.addFilter(lambda record: record.levelno >= logging.WARNING)
        handlers.append(stream)
        if settings.log_dir:
            try:
                Path(settings.log_dir).mkdir(parents=True, exist_ok=True)
                file = logging.handlers.RotatingFileHandler(Path(settings.log_dir) / f"{process}.log",
                                                            maxBytes=5_000_000, backupCount=3)
                file.setFormatter(logging.Formatter(_TEXT_FORMAT))
                handlers.append(file)
            except OSError as exc:  # a read-only checkout still runs; it just logs to stderr
                print(f"warning: not logging to {settings.log_dir}: {exc}", file=sys.stderr)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, MARK, False):
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        handler.addFilter(redacting)
        setattr(handler, MARK, True)
        root.addHandler(handler)
    root.setLevel(settings.log_level)
    # No format here shows the caller's file and line, the thread or the process: not collecting them
    # takes a sixth off the cost of each request's log line (the logging HOWTO's "Optimization").
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    for noisy in ("urllib3", "werkzeug", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
