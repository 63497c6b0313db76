"""An on-disk cache of upstream answers, so repeated notebook runs do not spend AlphaVantage's daily calls.

    session = lib.cache.cached_session(Path("~/.cache/mdt").expanduser(), expire_after=3600)
    client = lib.AlphaVantageClient(session=session)       # or lib.history(..., cache="~/.cache/mdt")

The cache is requests-cache's SQLite backend: one file, `responses.sqlite`, in the folder given. Two rules
hold whatever the upstream:

- No key is ever written: the API-key parameter (`apikey`) and header (`X-CW-API-Key`) are left out of the
  cache keys and removed from the requests and URLs stored with each answer.
- Only answers with data are kept. AlphaVantage sends its errors with HTTP 200 (`{"Error Message": ...}`,
  `{"Information": ...}` for rate limits and premium refusals, `{"Note": ...}`, or `{}`), and Kraken sends
  `{"error": ["EQuery:..."]}` with 200 too, so status codes alone would keep them: `is_cacheable` reads
  the body. Replaying a rate-limit notice from the cache would turn a wait of a second into a day's outage.

requests-cache is imported when a cached session is made, not with `lib`.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import requests

from lib.alphavantage import ERROR_KEYS, is_empty
from lib.cryptowatch import API_KEY_HEADER

CACHE_NAME = "responses"  # the SQLite file is responses.sqlite
APP_NAME = "market-data-tracker"
SECRET_PARAMETERS = ("apikey", API_KEY_HEADER)


def default_directory() -> Path:
    """The user's cache folder for this library (e.g. ~/.cache/market-data-tracker on Linux)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME))


def cached_session(directory: str | Path, *, expire_after: float) -> requests.Session:
    """A `requests.Session` that answers repeated GETs from `directory` for `expire_after` seconds."""
    import requests_cache
    from requests_cache.policy.settings import DEFAULT_IGNORED_PARAMS

    folder = Path(directory).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    return requests_cache.CachedSession(
        # A timedelta: requests-cache reads a bare number below 1 as "expire at once".
        str(folder / CACHE_NAME), backend="sqlite", expire_after=dt.timedelta(seconds=expire_after),
        allowable_codes=(200,),
        allowable_methods=("GET",), ignored_parameters=sorted({*DEFAULT_IGNORED_PARAMS, *SECRET_PARAMETERS}),
        match_headers=False, filter_fn=is_cacheable, stale_if_error=False)


def is_cacheable(response: requests.Response) -> bool:
    """Whether an answer holds data: HTTP 200, a JSON body, and none of the upstreams' error shapes."""
    if response.status_code != 200:
        return False
    try:
        body = response.json()
    except ValueError:  # an HTML error page sent with 200, a truncated body
        return False
    return is_data(body)


def is_data(body: Any) -> bool:
    """A decoded body that is not an error: a list (Binance candles), or an object with content, without
    AlphaVantage's error keys and without a non-empty `error` (Kraken's list, Cryptowatch's text)."""
    if isinstance(body, list):
        return True
    if not isinstance(body, dict) or is_empty(body):
        return False
    return not any(key in body for key in ERROR_KEYS) and not body.get("error")
