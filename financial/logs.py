"""Logging: JSON lines on stdout in production, readable text (and a file under data/log/) in development.

Every line the service writes goes through `console_formatter`: the app's own, and gunicorn's (its
logger class, financial.serving.JsonLogger, puts the same formatter on gunicorn's handlers). A filter on
the handlers replaces configured secrets (API keys, passwords) wherever they appear, so no log line can
leak one even when an upstream quotes it back to us.
"""
from __future__ import annotations

import datetime as dt
import logging
import logging.handlers
import os
import sys
from pathlib import Path
from typing import Any, Iterable

from pythonjsonlogger.json import JsonFormatter as _LibraryJsonFormatter

from financial.config import Settings
from lib.http import Redactor

_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
MARK = "_market_data"  # set on the handlers configure_logging puts on the root logger


def secrets_of(settings: Settings) -> list[str | None]:
    """The configured values no log line may show."""
    return [settings.alphavantage_api_key, settings.cryptowatch_api_key, settings.smtp_password,
            settings.secret_key]


class RedactingFilter(logging.Filter):
    """Every configured secret in a record's message replaced, as `lib` redacts what upstreams quote."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__()
        self.redact = Redactor(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.redact.spellings:
            record.msg, record.args = self.redact(record.getMessage()), ()
        return True


class JsonFormatter(_LibraryJsonFormatter):
    """One JSON object per line: time (UTC, milliseconds), level, logger, pid, message, any `extra=` fields,
    and `exception` (the traceback) when there is one."""

    def __init__(self) -> None:
        super().__init__(rename_fields={"exc_info": "exception", "stack_info": "stack"})

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        log_data.update(
            time=dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            level=record.levelname.lower(), logger=record.name, pid=record.process, message=record.message)
        super().add_fields(log_data, record, message_dict)


def console_formatter(production: bool) -> logging.Formatter:
    """JSON in production (one object per line, for the log collector), short text lines otherwise."""
    return JsonFormatter() if production else logging.Formatter(_TEXT_FORMAT, "%H:%M:%S")


def startup_failure_line(message: str) -> str:
    """The one line a process that cannot start prints: a JSON object when the environment says
    APP_ENV=production (the settings could not be read, so the environment is all there is to go by)."""
    if os.environ.get("APP_ENV", "").strip().lower() != "production":
        return message
    record = logging.makeLogRecord({"name": "financial.startup", "levelname": "CRITICAL", "levelno": logging.CRITICAL,
                                    "msg": message, "process": os.getpid()})
    return JsonFormatter().format(record)


def configure_logging(settings: Settings, *, process: str = "app") -> None:
    """Set up the root logger once per process (later calls replace the handlers)."""
    redacting = RedactingFilter(secrets_of(settings))
    handlers: list[logging.Handler] = []
    if settings.is_production:
        stream = logging.StreamHandler(sys.stdout)
        stream.setFormatter(console_formatter(production=True))
        handlers.append(stream)
    else:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(console_formatter(production=False))
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
    # No format here shows the caller's file and line or the thread: not collecting them takes a sixth off
    # the cost of each request's log line (the logging HOWTO's "Optimization"). The process id stays: the
    # JSON lines carry it, and gunicorn's own formats print it with %d (None there is a logging error).
    logging._srcfile = None
    logging.logThreads = logging.logMultiprocessing = False
    logging.logProcesses = True
    # A Python warning would otherwise be a bare line on stderr among the JSON ones.
    logging.captureWarnings(settings.is_production)
    for noisy in ("urllib3", "werkzeug", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
