"""Configuration from the environment, with a `.env` file read when present (the environment wins).

`Settings.from_env()` validates every variable and raises `ConfigError` with a one-line message naming
the offending variable; the entry points print that line and exit non-zero.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import parse_qs, urlsplit

from dotenv import dotenv_values

from lib.exchange import parse_base_urls

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"
DEFAULT_DATABASE_URL = f"sqlite:///{DATA_DIR / 'market.db'}"


class StartupError(Exception):
    """The process cannot start; entry points print `prefix: message` on one line and exit `exit_code`."""

    prefix = "error"
    exit_code = 1


class ConfigError(StartupError):
    """Invalid configuration; the message names the variable."""

    prefix = "configuration error"
    exit_code = 2


class DatabaseUnavailable(StartupError):
    """The database of DATABASE_URL cannot be opened at start-up."""


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    alphavantage_api_key: str | None = None
    alphavantage_base_url: str = "https://www.alphavantage.co"
    alphavantage_min_interval: float = 1.0
    cryptowatch_api_key: str | None = None
    cryptowatch_base_url: str = "https://api.cryptowat.ch"
    crypto_source: str = "exchange"
    exchange_base_urls: str | None = None
    exchange_min_interval: float | None = None
    minute_retention_days: int = 30
    redis_url: str | None = None
    rate_limit_redis_url: str | None = None  # the login and sign-up counters' Redis (default: REDIS_URL's)
    broker_url: str | None = None  # set: ingest tasks go to Celery workers through this Redis
    ingest_queue: str = "celery"
    ingest_task_timeout: int = 300  # seconds: the longest one ingest task may take on a worker
    app_env: str = "development"
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32), repr=False)
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_sender: str = "alerts@localhost"
    smtp_timeout: float = 10.0
    alert_factor: float = 3.0
    alert_window_minutes: int = 60
    alert_cooldown_minutes: int = 60
    alert_min_points: int = 4
    alert_stale_minutes: int = 5
    token_ttl_hours: int = 24
    signup_limit_per_hour: int = 10  # sign-ups per client address; 0: unlimited
    trusted_proxies: int = 0
    host: str = "127.0.0.1"
    port: int = 5000
    cache_timeout: int = 3600
    cache_key_prefix: str = "mdt:"
    log_level: str = "INFO"
    log_dir: str | None = str(DATA_DIR / "log")
    auto_migrate: bool = True
    statement_timeout: float = 5.0  # seconds a request's SQL statement may run (at most 20: gunicorn's is 30)
    ingest_statement_timeout: float = 300.0  # seconds an ingest's SQL statement may run
    cors_origins: tuple[str, ...] = ()

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def counters_redis_url(self) -> str | None:
        """Where the login and sign-up counters live: their own Redis, which must never evict (a cache that
        evicts under pressure would let traffic wipe them); the cache's Redis only for development."""
        return self.rate_limit_redis_url or self.redis_url

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, env_file: str | Path | None = "default") -> "Settings":
        """Read settings from `environ` (default `os.environ`) over the values of `env_file`.

        `env_file="default"` means `$ENV_FILE` or `.env` at the repository root; `None` reads no file.
        """
        environ = dict(os.environ if environ is None else environ)
        if env_file == "default":
            env_file = environ.get("ENV_FILE") or ROOT / ".env"
        values: dict[str, str] = {}
        if env_file and Path(env_file).is_file():
            values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        values.update(environ)
        return cls(**_parse(values))


def _text(name: str, value: str) -> str | None:
    value = value.strip()
    return value or None


def _url(*schemes: str) -> Callable[[str, str], str | None]:
    def parse(name: str, value: str) -> str | None:
        value = value.strip()
        if not value:
            return None
        if not value.startswith(schemes):
            raise ConfigError(f"{name} must start with {' or '.join(schemes)}, got {value.split('://')[0]!r}")
        return value
    return parse


def _number(kind: type, low: float, high: float | None = None) -> Callable[[str, str], float | int | None]:
    def parse(name: str, value: str) -> float | int | None:
        if not value.strip():
            return None
        try:
            number = kind(value)
        except ValueError:
            raise ConfigError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {value!r}") from None
        if not math.isfinite(number):  # float() accepts "nan" and "inf", which pass every comparison below
            raise ConfigError(f"{name} must be a finite number, got {value!r}")
        if number < low or (high is not None and number > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ConfigError(f"{name} must be {bound}, got {value!r}")
        return number
    return parse


def _choice(*choices: str) -> Callable[[str, str], str | None]:
    def parse(name: str, value: str) -> str | None:
        value = value.strip().lower()
        if not value:
            return None
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value
    return parse


def _base_urls(name: str, value: str) -> str | None:
    """`exchange=url,...`, checked and written back in one spelling."""
    try:
        return ",".join(f"{exchange}={url}" for exchange, url in parse_base_urls(value).items()) or None
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _path_or_off(name: str, value: str) -> str:
    """A path; empty means the feature is off (returned as "" so it overrides the default)."""
    return value.strip()


def _origins(name: str, value: str) -> tuple[str, ...]:
    """`*` or a comma list of origins such as https://app.example.com (scheme, host, optional port)."""
    origins = tuple(part.strip().rstrip("/") for part in value.split(",") if part.strip())
    for origin in origins:
        if origin != "*" and not re.match(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$", origin):
            raise ConfigError(f"{name} must be * or a comma list of origins like https://app.example.com, "
                              f"got {origin!r}")
    return origins


def _queue_name(name: str, value: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    if not re.match(r"^[A-Za-z0-9_.:-]{1,100}$", value):
        raise ConfigError(f"{name} must be 1 to 100 letters, digits or _ . : -, got {value!r}")
    return value


def redis_database(url: str) -> tuple[str, int | str, int]:
    """(host or socket path, port, database number) of a Redis URL, the defaults filled in."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if parts.scheme == "unix":
        return parts.path, "", int(query.get("db", ["0"])[0])
    path = parts.path.strip("/")
    db = int(path) if path.isdigit() else int(query.get("db", ["0"])[0])
    return (parts.hostname or "localhost").lower(), parts.port or 6379, db


def _check_broker(parsed: Mapping[str, Any]) -> None:
    broker, cache = parsed.get("broker_url"), parsed.get("redis_url")
    try:
        same = bool(broker and cache and redis_database(broker) == redis_database(cache))
    except ValueError:
        raise ConfigError("BROKER_URL and REDIS_URL must end in a database number, e.g. redis://host:6379/1") from None
    if same and broker:
        host, port, db = redis_database(broker)
        where = f"{host}:{port}/{db}" if port else f"{host}?db={db}"
        raise ConfigError(f"BROKER_URL and REDIS_URL are the same Redis database ({where}): the broker needs a "
                          f"database of its own, e.g. BROKER_URL=redis://{host}:{port or 6379}/{db + 1}")


def _email(name: str, value: str) -> str | None:
    """An e-mail address such as alerts@example.com (it goes into a From header: nothing else may ride along)."""
    value = value.strip()
    if not value:
        return None
    if not re.match(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9.-]{1,253}$", value):
        raise ConfigError(f"{name} must be an e-mail address like alerts@example.com, got {value!r}")
    return value


def _flag(name: str, value: str) -> bool | None:
    lowered = value.strip().lower()
    if not lowered:
        return None
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


_VARIABLES: dict[str, tuple[str, Callable]] = {
    "DATABASE_URL": ("database_url", _url("sqlite://", "mysql+pymysql://", "mysql://", "mariadb+pymysql://")),
    "ALPHAVANTAGE_API_KEY": ("alphavantage_api_key", _text),
    "ALPHAVANTAGE_BASE_URL": ("alphavantage_base_url", _url("http://", "https://")),
    "ALPHAVANTAGE_MIN_INTERVAL": ("alphavantage_min_interval", _number(float, 0, 60)),
    "CRYPTOWATCH_API_KEY": ("cryptowatch_api_key", _text),
    "CRYPTOWATCH_BASE_URL": ("cryptowatch_base_url", _url("http://", "https://")),
    "CRYPTO_SOURCE": ("crypto_source", _choice("cryptowatch", "exchange")),
    "EXCHANGE_BASE_URLS": ("exchange_base_urls", _base_urls),
    "EXCHANGE_MIN_INTERVAL": ("exchange_min_interval", _number(float, 0, 60)),
    "MINUTE_RETENTION_DAYS": ("minute_retention_days", _number(int, 1, 3650)),
    "REDIS_URL": ("redis_url", _url("redis://", "rediss://", "unix://")),
    "RATE_LIMIT_REDIS_URL": ("rate_limit_redis_url", _url("redis://", "rediss://", "unix://")),
    "BROKER_URL": ("broker_url", _url("redis://", "rediss://")),
    "INGEST_QUEUE": ("ingest_queue", _queue_name),
    "INGEST_TASK_TIMEOUT": ("ingest_task_timeout", _number(int, 5, 86400)),
    "APP_ENV": ("app_env", _choice("development", "production")),
    "SECRET_KEY": ("secret_key", _text),
    "SMTP_HOST": ("smtp_host", _text),
    "SMTP_PORT": ("smtp_port", _number(int, 1, 65535)),
    "SMTP_USER": ("smtp_user", _text),
    "SMTP_PASSWORD": ("smtp_password", _text),
    "SMTP_SENDER": ("smtp_sender", _email),
    "SMTP_TIMEOUT": ("smtp_timeout", _number(float, 1, 300)),
    "ALERT_FACTOR": ("alert_factor", _number(float, 1)),
    "ALERT_WINDOW_MINUTES": ("alert_window_minutes", _number(int, 2, 1440)),
    "ALERT_COOLDOWN_MINUTES": ("alert_cooldown_minutes", _number(int, 0, 10080)),
    "ALERT_MIN_POINTS": ("alert_min_points", _number(int, 2, 1440)),
    "ALERT_STALE_MINUTES": ("alert_stale_minutes", _number(int, 1, 1440)),
    "TOKEN_TTL_HOURS": ("token_ttl_hours", _number(int, 1, 8760)),
    "SIGNUP_LIMIT_PER_HOUR": ("signup_limit_per_hour", _number(int, 0, 100_000)),
    "TRUSTED_PROXIES": ("trusted_proxies", _number(int, 0, 5)),
    "HOST": ("host", _text),
    "PORT": ("port", _number(int, 1, 65535)),
    "CACHE_TIMEOUT": ("cache_timeout", _number(int, 1)),
    "CACHE_KEY_PREFIX": ("cache_key_prefix", _text),
    "LOG_LEVEL": ("log_level", _choice("debug", "info", "warning", "error")),
    "LOG_DIR": ("log_dir", _path_or_off),
    "AUTO_MIGRATE": ("auto_migrate", _flag),
    "STATEMENT_TIMEOUT": ("statement_timeout", _number(float, 0.1, 20)),
    "INGEST_STATEMENT_TIMEOUT": ("ingest_statement_timeout", _number(float, 0.1, 86400)),
    "CORS_ORIGINS": ("cors_origins", _origins),
}


def _parse(values: Mapping[str, str]) -> dict:
    parsed = {}
    for variable, (attribute, parse) in _VARIABLES.items():
        if variable in values:
            value = parse(variable, values[variable])
            if value is not None:
                parsed[attribute] = value
    if "database_url" in parsed and parsed["database_url"].startswith(("mysql://", "mariadb+pymysql://")):
        # Only the pure-Python driver is installed; accept the common spellings and use it.
        parsed["database_url"] = "mysql+pymysql://" + parsed["database_url"].split("://", 1)[1]
    if "log_level" in parsed:
        parsed["log_level"] = parsed["log_level"].upper()
    if parsed.get("app_env") == "production" and not parsed.get("secret_key"):
        raise ConfigError("SECRET_KEY is required when APP_ENV=production")
    _check_broker(parsed)
    if parsed.get("smtp_user") and not parsed.get("smtp_password"):
        raise ConfigError("SMTP_PASSWORD is required when SMTP_USER is set")
    if parsed.get("smtp_password") and not parsed.get("smtp_user"):
        raise ConfigError("SMTP_USER is required when SMTP_PASSWORD is set")
    return parsed
