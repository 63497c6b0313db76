"""The real app on a real port with the sample data, and headless Chromium driven through Selenium.

Used by the browser tests, `bench/web.py` and `python -m tests.browser.screenshots`. Chromium and its driver
come from Debian's `chromium` and `chromium-driver` packages; Selenium is told where both are, and Selenium
Manager is kept offline (SE_OFFLINE), so nothing is ever downloaded.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server

from financial import Settings, create_app, ingest
from financial.extensions import db
from financial.ingest.sources import demo
from financial.services import metrics

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
HEADLESS_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
                  "--disable-default-apps", "--mute-audio", "--hide-scrollbars")


def browser_missing() -> str | None:
    """Why no browser test can run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (requirements-dev.txt)"
    return None


def load_sample(app: Any) -> None:
    """The sample data of `make run`, with its rankings."""
    with app.app_context():
        report = ingest.run(demo.demo_tasks())
        assert report.ok, report.render() if hasattr(report, "render") else report
        metrics.refresh_rankings()
        db.session.remove()


class LiveServer:
    """The app served by werkzeug's threaded server on a free port of 127.0.0.1, in a background thread."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="live-server", daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)


def sample_app(settings: Settings) -> Any:
    app = create_app(settings, process="test")
    load_sample(app)
    return app


class Chrome:
    """A headless Chromium with a fresh profile; `.driver` is the Selenium WebDriver. Browser console
    messages and performance (network) events are logged for the tests to read."""

    def __init__(self, width: int = 1440, height: int = 900) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch a browser or driver
        self.profile = tempfile.mkdtemp(prefix="mdt-chrome-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in HEADLESS_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile}")
        options.add_argument(f"--window-size={width},{height}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.set_script_timeout(20)

    def emulate_width(self, width: int, height: int) -> None:
        """A viewport of exactly this size, as a phone's (a headless window has a minimum width of its own)."""
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Chrome":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


ROOT = Path(__file__).resolve().parents[2]
