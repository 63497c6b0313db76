"""The browser tests' fixtures: one server with the sample data and one headless Chromium for the session.

Every test is checked afterwards for console errors (none unless the test expects them) and for requests
to any host but the server's (none). A failing test leaves a screenshot under data/test-screenshots/.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.browser.live import Chrome, LiveServer, browser_missing, sample_app
from tests.conftest import base_settings, missing_server
from tests.fakes.exchanges import FakeBinance, FakeKraken
from tests.fakes.server import FakeServer

SCREENSHOTS = Path(__file__).resolve().parents[2] / "data" / "test-screenshots"


@pytest.fixture(scope="session")
def live(tmp_path_factory):
    """The app on a real port, on SQLite with the sample data; the fake exchanges check watchlist adds."""
    reason = browser_missing()
    if reason:
        missing_server(reason)
    exchanges = [FakeServer(FakeKraken()).start(), FakeServer(FakeBinance()).start()]
    urls = f"kraken={exchanges[0].url},binance={exchanges[1].url}"
    settings = base_settings(database_url=f"sqlite:///{tmp_path_factory.mktemp('browser') / 'web.db'}",
                             crypto_source="exchange", exchange_base_urls=urls, exchange_min_interval=0)
    app = sample_app(settings)
    with LiveServer(app) as server:
        yield server
    for exchange in exchanges:
        exchange.stop()


@pytest.fixture(scope="session")
def chrome(live):
    with Chrome() as browser:
        yield browser


@pytest.fixture
def allowed_errors():
    """Console messages a test expects (substrings): an API error it provokes logs a failed request."""
    return []


@pytest.fixture
def browser(chrome, live, allowed_errors):
    driver = chrome.driver
    driver.set_window_size(1440, 900)
    driver.get_log("browser")
    driver.get_log("performance")
    yield driver
    if driver.current_url.startswith(live.url):
        driver.execute_script("sessionStorage.clear()")  # the next test starts signed out
    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")
              and not any(allowed in entry["message"] for allowed in allowed_errors)]
    assert errors == [], "console errors"
    here = (live.url + "/", "data:", "blob:", "about:")
    elsewhere = [url for url in requested_urls(driver) if not url.startswith(here)]
    assert elsewhere == [], "requests to another host"


def requested_urls(driver) -> list[str]:
    """Every URL the browser asked for since the last look (Chrome's DevTools network events)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when in ("call", "teardown") and report.failed and "chrome" in item.funcargs:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{item.name.replace('/', '_')}.png"
        try:
            item.funcargs["chrome"].driver.save_screenshot(str(path))
            report.sections.append(("screenshot", str(path)))
        except Exception as exc:  # a dead browser cannot take one; the failure itself says why
            report.sections.append(("screenshot", f"none: {exc}"))
