"""The screenshots of docs/screenshots/: every view at 1440 and 375 px wide, on the sample data.

    python -m tests.browser.screenshots

Runs the app on a temporary SQLite file with the sample data (and the fake exchanges, for the watchlist),
signs a user up with two watched markets, and saves what the browser window shows of each view.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.live import ROOT, Chrome, LiveServer, browser_missing, sample_app
from tests.conftest import base_settings
from tests.fakes.exchanges import FakeBinance, FakeKraken
from tests.fakes.server import FakeServer

OUT = ROOT / "docs" / "screenshots"
WIDTHS = {1440: 900, 375: 812}


def ready(driver, script: str) -> None:
    WebDriverWait(driver, 20).until(lambda d: d.execute_script(f"return ({script});"))
    time.sleep(0.4)  # let Plotly finish its transitions and the sparklines arrive


def views(live, driver):
    """(name, path, ready-condition, what to do once there) of each view."""
    def sign_up():
        """Sign up the first time; log in (to the same watchlist) the next."""
        form = "login" if driver.execute_script("return window.name === 'signed-up'") else "signup"
        driver.find_element(By.ID, f"{form}-email").send_keys("ann@example.com")
        driver.find_element(By.ID, f"{form}-password").send_keys("correct horse battery staple", Keys.ENTER)
        ready(driver, "document.getElementById('watch-form')")
        if form == "signup":
            for market in ("kraken:btcusd", "binance:ethusdt"):
                driver.find_element(By.ID, "watch-market").send_keys(market, Keys.ENTER)
                ready(driver, "document.querySelector('#watch-result .message')")
        ready(driver, "document.querySelectorAll('#my-rankings tbody tr').length === 2")

    def search():
        driver.find_element(By.ID, "search-input").send_keys("eth")
        ready(driver, "!document.getElementById('search-results').hidden")

    def statistics():
        driver.find_element(By.CSS_SELECTOR, "#statistics-form button").click()
        ready(driver, "document.querySelector('#statistics-result dl')")
        driver.execute_script("document.getElementById('statistics-title').scrollIntoView()")

    return [
        ("markets", "/", "document.getElementById('featured-chart')?.data", None),
        ("instrument", "/instruments/5?range=1d&interval=15min", "document.getElementById('instrument-chart')?.data",
         None),
        ("stock", "/instruments/2", "document.getElementById('statistics-form')", statistics),
        ("dashboard", "/dashboard?order_by=24h&order_type=desc", "document.querySelectorAll('#main tbody tr').length",
         None),
        ("search", "/dashboard", "document.querySelectorAll('#main tbody tr').length", search),
        ("account", "/account", "document.getElementById('signup')", sign_up),
    ]


def main() -> int:
    reason = browser_missing()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    exchanges = [FakeServer(FakeKraken()).start(), FakeServer(FakeBinance()).start()]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = base_settings(database_url=f"sqlite:///{Path(tmp) / 'shots.db'}", crypto_source="exchange",
                                     exchange_base_urls=f"kraken={exchanges[0].url},binance={exchanges[1].url}",
                                     exchange_min_interval=0)
            with LiveServer(sample_app(settings)) as live:
                for width, height in WIDTHS.items():
                    with Chrome(max(width, 800), height) as browser:
                        browser.emulate_width(width, height)
                        driver = browser.driver
                        for name, path, condition, then in views(live, driver):
                            driver.get(live.url + path)
                            ready(driver, condition)
                            if name == "account" and width != 1440:
                                driver.execute_script("window.name = 'signed-up'")
                            if then:
                                then()
                            target = OUT / f"{name}-{width}.png"
                            driver.save_screenshot(str(target))
                            print(f"{target.relative_to(ROOT)}  {target.stat().st_size // 1024} KiB")
    finally:
        for exchange in exchanges:
            exchange.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
