"""Where `lib.history` finds its upstreams: the environment variables the service reads, or arguments.

    settings = lib.Settings.from_env()                          # ALPHAVANTAGE_API_KEY, ... from os.environ
    settings = lib.Settings.from_env(alphavantage_api_key="...", cache_dir="~/.cache/mdt")   # arguments win

| variable | field | default |
|---|---|---|
| `ALPHAVANTAGE_API_KEY` | alphavantage_api_key | none (stock series then raise ConfigurationError) |
| `ALPHAVANTAGE_BASE_URL` | alphavantage_base_url | https://www.alphavantage.co |
| `ALPHAVANTAGE_MIN_INTERVAL` | alphavantage_min_interval | 1.0 seconds between calls (the free tier's burst limit) |
| `CRYPTOWATCH_API_KEY` | cryptowatch_api_key | none (anonymous) |
| `CRYPTOWATCH_BASE_URL` | cryptowatch_base_url | https://api.cryptowat.ch |
| `EXCHANGE_BASE_URLS` | exchange_base_urls | each exchange's own (`kraken=http://127.0.0.1:8001,...`) |
| `EXCHANGE_MIN_INTERVAL` | exchange_min_interval | ccxt's own pacing per exchange |
| `LIB_CACHE_DIR` | cache_dir | no cache |
| `LIB_CACHE_EXPIRE` | cache_expire | per interval: the bar period, at most an hour |

`retry` (an argument only) is the clients' retry policy. A value that cannot be read raises
`ConfigurationError` naming the variable. The service reads the same variables (and a `.env` file, which
`lib` does not: call `dotenv.load_dotenv()` first to use one).
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from lib import errors
from lib.alphavantage import DEFAULT_BASE_URL as ALPHAVANTAGE_BASE_URL
from lib.cryptowatch import DEFAULT_BASE_URL as CRYPTOWATCH_BASE_URL
from lib.exchange import parse_base_urls
from lib.http import RetryPolicy

MAX_MIN_INTERVAL = 60.0  # seconds; the service accepts the same range


@dataclass(frozen=True)
class Settings:
    """The upstreams' keys, addresses and pacing, and the response cache (None: off)."""

    alphavantage_api_key: str | None = field(default=None, repr=False)
    alphavantage_base_url: str = ALPHAVANTAGE_BASE_URL
    alphavantage_min_interval: float = 1.0
    cryptowatch_api_key: str | None = field(default=None, repr=False)
    cryptowatch_base_url: str = CRYPTOWATCH_BASE_URL
    exchange_base_urls: Mapping[str, str] = field(default_factory=dict)
    exchange_min_interval: float | None = None
    cache_dir: Path | None = None
    cache_expire: float | None = None  # seconds; None: the bar period, at most an hour
    retry: RetryPolicy = RetryPolicy()  # of every client; RetryPolicy(attempts=1) never retries

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Settings from `environ` (default `os.environ`), with `overrides` (field=value) on top; empty
        variables count as unset."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for variable, (name, read) in _VARIABLES.items():
            text = environ.get(variable, "").strip()
            if text:
                values[name] = read(variable, text)
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(unknown)}")
        values.update({name: value for name, value in overrides.items() if value is not None})
        if values.get("cache_dir") is not None:
            values["cache_dir"] = Path(values["cache_dir"]).expanduser()
        return cls(**values)


def _text(variable: str, text: str) -> str:
    return text


def _url(variable: str, text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise errors.ConfigurationError(f"{variable} must start with http:// or https://, got {text!r}")
    return text


def _seconds(variable: str, text: str) -> float:
    seconds = _float(text)
    if not 0 <= seconds <= MAX_MIN_INTERVAL:  # also refuses NaN
        raise errors.ConfigurationError(f"{variable} must be a number of seconds between 0 and "
                                        f"{MAX_MIN_INTERVAL:g}, got {text!r}")
    return seconds


def _expiry(variable: str, text: str) -> float:
    seconds = _float(text)
    if not 0 < seconds < math.inf:
        raise errors.ConfigurationError(f"{variable} must be a positive number of seconds, got {text!r}")
    return seconds


def _float(text: str) -> float:
    """The number `text` spells, NaN when none (which every range check then refuses)."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def _base_urls(variable: str, text: str) -> dict[str, str]:
    try:
        return parse_base_urls(text)
    except ValueError as exc:
        raise errors.ConfigurationError(f"{variable}: {exc}") from None


_VARIABLES = {
    "ALPHAVANTAGE_API_KEY": ("alphavantage_api_key", _text),
    "ALPHAVANTAGE_BASE_URL": ("alphavantage_base_url", _url),
    "ALPHAVANTAGE_MIN_INTERVAL": ("alphavantage_min_interval", _seconds),
    "CRYPTOWATCH_API_KEY": ("cryptowatch_api_key", _text),
    "CRYPTOWATCH_BASE_URL": ("cryptowatch_base_url", _url),
    "EXCHANGE_BASE_URLS": ("exchange_base_urls", _base_urls),
    "EXCHANGE_MIN_INTERVAL": ("exchange_min_interval", _seconds),
    "LIB_CACHE_DIR": ("cache_dir", _text),
    "LIB_CACHE_EXPIRE": ("cache_expire", _expiry),
}
