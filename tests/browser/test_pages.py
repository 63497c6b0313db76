"""The web page in headless Chromium, on the sample data: every view, its figures read against the API's
own answers (chart points from Plotly's objects), sorting, search, an account's watchlist with its ranking,
API errors shown in the page, the live refresh's conditional requests, narrow screens, the keyboard and
the dark scheme. The fixtures (conftest) fail any test with a console error or a request to another host."""
from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

import lib
from financial.services import metrics
from tests.browser.live import Chrome
from tests.fakes.series import minute_bars
from tests.seed import store_crypto

TIMEOUT = 15


def api(live, path: str, **headers) -> dict:
    response = live.app.test_client().get(path, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def wait(driver, script: str, *args, timeout: float = TIMEOUT):
    """Wait until the JavaScript expression `script` (a function body's return value) is truthy."""
    return WebDriverWait(driver, timeout).until(lambda d: d.execute_script(f"return ({script});", *args))


def click(driver, selector: str) -> None:
    """Click the element `selector` finds, found again if the page redrew it between finding and clicking
    (a view redraws its tables when an answer arrives)."""
    WebDriverWait(driver, TIMEOUT, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: d.find_element(By.CSS_SELECTOR, selector).click() or True)


def chart_points(driver, element_id: str) -> int:
    return wait(driver, f"document.getElementById('{element_id}')?.data?.[0]?.x?.length")


def open_page(driver, live, path: str, ready: str):
    driver.get(live.url + path)
    wait(driver, ready)


def label(item: dict) -> str:
    """How the page names an instrument (format.js instrumentLabel)."""
    if item["exchange"]:
        return f"{item['base']}/{item['quote']} · {item['exchange']}"
    return item["symbol"]


def instrument(live, symbol: str, exchange: str | None = None) -> dict:
    return next(item for item in api(live, "/api/metrics?limit=1000")["data"]
                if item["symbol"] == symbol and item["exchange"] == exchange)


def column(driver, table_css: str, index: int) -> list[str]:
    return driver.execute_script(
        f"return [...document.querySelectorAll('{table_css} tbody tr')].map(r => r.cells[{index}].innerText.trim())")


def money(value: float) -> str:
    return f"{value:,.2f}"


# -- markets --------------------------------------------------------------------------------------------

def test_markets_lists_every_instrument_with_a_chart_and_sparklines(browser, live):
    listed = api(live, "/api/metrics?limit=1000")
    open_page(browser, live, "/", "document.querySelectorAll('#main tbody tr').length")
    names = column(browser, "#main", 0)
    assert sorted(names) == sorted(label(item) for item in listed["data"])
    assert len(names) == listed["pagination"]["count"] == 16
    top = next(item for item in listed["data"] if item["rank"] == 1)
    assert label(top) in browser.find_element(By.ID, "featured-title").text
    candles = api(live, f"/api/metrics/{top['id']}/candles?range=1d")["data"]["candles"]
    assert chart_points(browser, "featured-chart") == len(candles) > 250  # a day of minutes as 5-minute candles
    assert browser.execute_script("return document.getElementById('featured-chart').data[1].type") == "bar"
    # hover and zoom: Plotly's styles and hover labels under the page's CSP (a violation is a console error)
    plot = browser.find_element(By.CSS_SELECTOR, "#featured-chart .nsewdrag")
    ActionChains(browser).move_to_element(plot).pause(0.3).perform()
    wait(browser, "document.querySelector('#featured-chart .hoverlayer')?.childElementCount")
    ActionChains(browser).move_to_element_with_offset(plot, -100, 0).click_and_hold().move_by_offset(150, 0) \
        .release().perform()
    wait(browser, "document.getElementById('featured-chart').layout.xaxis.autorange === false")
    # the first rows' sparklines, from the candles endpoint (at most 60 closes each)
    wait(browser, "document.querySelectorAll('svg.spark').length >= 4")
    first = browser.execute_script("return document.querySelector('svg.spark').dataset.points")
    assert 2 <= int(first) <= 60
    row = {item["id"]: item for item in listed["data"]}[top["id"]]
    cells = browser.execute_script("return [...document.querySelector('#main tbody tr').cells].map(c => c.innerText)")
    assert cells[0] == label(row) and cells[1].startswith(money(row["last_price"]))
    assert cells[3] == f"{money(row['stdev'])}#1"  # the figure and its rank
    times = browser.execute_script("return [...document.querySelectorAll('#main time')].map(t => t.title)")
    assert times and all(re.fullmatch(r"\d{4}-\d\d-\d\d( \d\d:\d\d UTC| \(UTC\))", title) for title in times)


def test_markets_sort_by_any_column(browser, live):
    week = {label(item): item["stdev"] for item in api(live, "/api/metrics?window=7d&limit=1000")["data"]}
    open_page(browser, live, "/", "document.querySelectorAll('#main tbody tr').length")
    browser.find_element(By.CSS_SELECTOR, 'button[data-key="stdev_7d"]').click()
    shown = column(browser, "#main", 0)
    with_figure = sorted((name for name in week if week[name] is not None), key=lambda name: -week[name])
    assert shown[:len(with_figure)] == with_figure
    assert set(shown[len(with_figure):]) == {name for name in week if week[name] is None}
    assert browser.current_url.endswith("/?sort=stdev_7d&dir=desc")
    assert browser.find_element(By.CSS_SELECTOR, 'th[aria-sort="descending"]').text.startswith("σ 7d")
    browser.find_element(By.CSS_SELECTOR, 'button[data-key="instrument"]').click()
    assert column(browser, "#main", 0) == sorted(week, key=str.lower)
    browser.refresh()  # the order is in the address: a bookmark keeps it
    wait(browser, "document.querySelectorAll('#main tbody tr').length")
    assert column(browser, "#main", 0) == sorted(week, key=str.lower)


def test_a_row_opens_its_instrument(browser, live):
    open_page(browser, live, "/", "document.querySelectorAll('#main tbody tr').length")
    first = browser.find_element(By.CSS_SELECTOR, "#main tbody tr td:nth-child(4)")
    first.click()
    wait(browser, "location.pathname.startsWith('/instruments/')")
    chart_points(browser, "instrument-chart")
    browser.back()
    wait(browser, "location.pathname === '/' && document.querySelectorAll('#main tbody tr').length")


# -- an instrument ---------------------------------------------------------------------------------------

def test_instrument_chart_follows_interval_and_range_and_the_back_button(browser, live):
    market = instrument(live, "btcusd", "kraken")
    url = f"/api/metrics/{market['id']}/candles"
    open_page(browser, live, f"/instruments/{market['id']}", "document.getElementById('instrument-chart')?.data")
    day = len(api(live, f"{url}?range=1d")["data"]["candles"])
    assert chart_points(browser, "instrument-chart") == day
    assert browser.find_element(By.CSS_SELECTOR, 'button[data-range="1d"]').get_attribute("aria-pressed") == "true"
    Select(browser.find_element(By.ID, "interval")).select_by_value("15min")
    wait(browser, "location.search === '?range=1d&interval=15min'")
    fifteen = len(api(live, f"{url}?range=1d&interval=15min")["data"]["candles"])
    assert fifteen < day
    wait(browser, f"document.getElementById('instrument-chart')?.data?.[0]?.x?.length === {fifteen}")
    browser.find_element(By.CSS_SELECTOR, 'button[data-range="7d"]').click()
    wait(browser, "location.search === '?range=7d&interval=15min'")
    wait(browser, "document.querySelector('button[data-range=\"7d\"]')?.getAttribute('aria-pressed') === 'true'")
    browser.back()
    wait(browser, "location.search === '?range=1d&interval=15min'")
    wait(browser, f"document.getElementById('instrument-chart')?.data?.[0]?.x?.length === {fifteen}")
    browser.back()
    wait(browser, f"location.pathname === '/instruments/{market['id']}' && location.search === ''")
    wait(browser, f"document.getElementById('instrument-chart')?.data?.[0]?.x?.length === {day}")
    # the window figures beside the chart are the API's
    figures = [api(live, f"/api/metrics/{market['id']}?window={window}")["data"] for window in ("24h", "7d", "30d")]
    row = browser.execute_script("return [...document.querySelectorAll('#window-figures tbody tr')[2].cells]"
                                 ".map(c => c.innerText)")
    assert row == ["Std. deviation", *(money(figure["stdev"]) for figure in figures)]
    assert browser.find_element(By.ID, "last-price").text.startswith(money(figures[0]["last_price"]))


def test_a_stock_shows_its_statistics_for_a_chosen_range(browser, live):
    stock = instrument(live, "IBM")
    open_page(browser, live, f"/instruments/{stock['id']}", "document.getElementById('statistics-form')")
    candles = api(live, f"/api/metrics/{stock['id']}/candles?range=1y")["data"]["candles"]
    assert chart_points(browser, "instrument-chart") == len(candles)
    start = browser.find_element(By.NAME, "start_date")
    end = browser.find_element(By.NAME, "end_date").get_attribute("value")
    chosen = (dt.date.fromisoformat(end) - dt.timedelta(days=30)).isoformat()
    browser.execute_script("arguments[0].value = arguments[1]", start, chosen)
    browser.find_element(By.CSS_SELECTOR, "#statistics-form button").click()
    wait(browser, "document.querySelector('#statistics-result dl')")
    stats = api(live, f"/api/statistics?symbol=IBM&start_date={chosen}&end_date={end}")["data"]
    shown = browser.find_element(By.ID, "statistics-result").text.split("\n")
    assert shown == ["Average daily open", money(stats["average_daily_open_price"]),
                     "Average daily close", money(stats["average_daily_close_price"]),
                     "Average daily volume", f"{stats['average_daily_volume']:,}"]


# -- the dashboard ---------------------------------------------------------------------------------------

def test_dashboard_sorts_colours_and_follows_the_date(browser, live):
    open_page(browser, live, "/dashboard", "document.querySelectorAll('#main tbody tr').length")
    symbols = lambda: column(browser, "#main", 1)  # noqa: E731
    assert symbols() == [row["symbol"] for row in api(live, "/api/dashboard")["data"]]
    browser.find_element(By.CSS_SELECTOR, 'button[data-key="24h"]').click()
    wait(browser, "location.search === '?order_by=24h&order_type=desc'")
    by_change = api(live, "/api/dashboard?order_by=24h&order_type=desc")["data"]
    wait(browser, "arguments[0] === [...document.querySelectorAll('#main tbody tr')].map(r => r.cells[1].innerText)"
                  ".join()", ",".join(row["symbol"] for row in by_change))
    cells = browser.execute_script("return [...document.querySelectorAll('#main tbody tr')].map(r => "
                                   "[r.cells[3].querySelector('span').className, r.cells[3].innerText, "
                                   "r.cells[5].innerText])")
    for row, (css, text, month) in zip(by_change, cells):
        assert css == ("up" if row["24h"] > 0 else "down" if row["24h"] < 0 else "")
        assert text == f"{'▲ +' if row['24h'] > 0 else '▼ ' if row['24h'] < 0 else ''}{row['24h']:.2f}%"
        assert (month == "–") == (row["1m"] is None)
    assert any(row["1m"] is None for row in by_change)  # the sample has a coin too young for a month's change
    day = (dt.date.today() - dt.timedelta(days=5)).isoformat()
    date = browser.find_element(By.ID, "dashboard-date")
    browser.execute_script("arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('change'))",
                           date, day)
    wait(browser, "location.search.startsWith(arguments[0])", f"?date={day}&")
    that_day = api(live, f"/api/dashboard?date={day}&order_by=24h&order_type=desc")["data"]
    wait(browser, "arguments[0] === [...document.querySelectorAll('#main tbody tr')].map(r => r.cells[2].innerText)"
                  ".join('|')", "|".join("–" if row["price"] is None else
                                         f"{row['price']:,.{2 if row['price'] >= 1 else 4}f}" for row in that_day))
    browser.back()
    wait(browser, "location.search === '?order_by=24h&order_type=desc'")


# -- search ----------------------------------------------------------------------------------------------

def test_search_suggests_as_you_type_and_opens_the_choice(browser, live):
    open_page(browser, live, "/dashboard", "document.querySelectorAll('#main tbody tr').length")
    box = browser.find_element(By.ID, "search-input")
    box.send_keys("bitc")
    wait(browser, "!document.getElementById('search-results').hidden")
    expected = api(live, "/api/search?name=bitc&limit=8")["data"]
    options = browser.execute_script("return [...document.querySelectorAll('#search-results li')]"
                                     ".map(li => li.firstChild.textContent)")
    assert options == [match["name"] + ("" if match["name"] == match["symbol"] else f" {match['symbol']}")
                       for match in expected]
    assert box.get_attribute("aria-expanded") == "true"
    box.send_keys(Keys.ARROW_DOWN, Keys.ENTER)
    coin = instrument(live, expected[0]["symbol"])
    wait(browser, f"location.pathname === '/instruments/{coin['id']}'")
    chart_points(browser, "instrument-chart")


# -- the account -----------------------------------------------------------------------------------------

def test_sign_up_watch_markets_and_see_their_ranking(browser, live, allowed_errors):
    allowed_errors.append("/api/me/markets")  # the unknown market's 404
    open_page(browser, live, "/account", "document.getElementById('signup')")
    email = f"web-{uuid.uuid4().hex[:8]}@example.com"
    browser.find_element(By.ID, "signup-email").send_keys(email)
    browser.find_element(By.ID, "signup-password").send_keys("correct horse battery staple")
    browser.find_element(By.CSS_SELECTOR, "#signup button").click()
    wait(browser, "document.getElementById('watch-form')")
    token = browser.execute_script("return sessionStorage.getItem('mdt.token')")
    auth = {"Authorization": f"Bearer {token}"}
    for typed in ("kraken:btcusd", "ethusdt"):  # exchange:pair, and a market's bare symbol found by search
        field = browser.find_element(By.ID, "watch-market")
        field.send_keys(typed, Keys.ENTER)
        wait(browser, "document.querySelector('#watch-result .message')")
    watched = [f"{m['exchange']}:{m['ticker']}" for m in api(live, "/api/me/markets", **auth)["data"]]
    assert watched == ["binance:ethusdt", "kraken:btcusd"]
    wait(browser, "document.querySelectorAll('#watchlist tbody tr').length === 2")
    assert column(browser, "#watchlist", 0) == watched
    ranking = api(live, "/api/me/rankings", **auth)["data"]
    wait(browser, "document.querySelectorAll('#my-rankings tbody tr').length === 2")
    rows = browser.execute_script("return [...document.querySelectorAll('#my-rankings tbody tr')].map(r => "
                                  "[...r.cells].map(c => c.innerText))")
    assert [(row[0], row[1], row[3]) for row in rows] == [
        (f"#{item['rank']}", label(item), money(item["stdev"])) for item in ranking]
    assert [row[0] for row in rows] == ["#1", "#2"]
    # an unknown market is the API's message; adding one twice says so; removing one takes it off
    browser.find_element(By.ID, "watch-market").send_keys("kraken:nosuchpair", Keys.ENTER)
    wait(browser, "document.querySelector('#watch-result .message.error')")
    refused = live.app.test_client().post("/api/me/markets", json={"exchange": "kraken", "ticker": "nosuchpair"},
                                          headers=auth)
    assert refused.status_code == 404
    assert browser.find_element(By.ID, "watch-result").text == refused.get_json()["info"]["error"]
    browser.find_element(By.ID, "watch-market").clear()  # (a refused entry stays in the field, to be corrected)
    browser.find_element(By.ID, "watch-market").send_keys("kraken:btcusd", Keys.ENTER)
    wait(browser, "document.getElementById('watch-result').innerText.includes('already on your watchlist')")
    click(browser, '#watchlist button[data-remove="binance:ethusdt"]')
    wait(browser, "document.querySelectorAll('#watchlist tbody tr').length === 1")
    assert [m["ticker"] for m in api(live, "/api/me/markets", **auth)["data"]] == ["btcusd"]
    browser.find_element(By.ID, "logout").click()
    wait(browser, "document.getElementById('login')")
    assert browser.execute_script("return sessionStorage.getItem('mdt.token')") is None
    assert live.app.test_client().get("/api/me/markets", headers=auth).status_code == 401  # revoked


def test_a_refused_login_is_shown(browser, live, allowed_errors):
    allowed_errors.append("/api/auth/login")
    open_page(browser, live, "/account", "document.getElementById('login')")
    browser.find_element(By.ID, "login-email").send_keys("nobody@example.com")
    browser.find_element(By.ID, "login-password").send_keys("not the password", Keys.ENTER)
    wait(browser, "document.querySelector('#login .message.error')")
    error = live.app.test_client().post("/api/auth/login",
                                        json={"email": "nobody@example.com", "password": "not the password"})
    assert browser.find_element(By.CSS_SELECTOR, "#login .message.error").text == error.get_json()["info"]["error"]


# -- errors, live refresh, people ------------------------------------------------------------------------

def test_api_errors_are_shown_in_the_page(browser, live, allowed_errors):
    allowed_errors += ["/api/metrics/99999", "/api/dashboard", "/no/such/view"]
    open_page(browser, live, "/instruments/99999", "document.querySelector('#main .message.error')")
    assert browser.find_element(By.CSS_SELECTOR, "#main .message.error").text == "no tracked instrument with id 99999"
    open_page(browser, live, "/dashboard?date=2026-02-30", "document.querySelector('#main .message.error')")
    message = live.app.test_client().get("/api/dashboard?date=2026-02-30").get_json()["info"]["error"]
    assert browser.find_element(By.CSS_SELECTOR, "#main .message.error").text == message
    browser.get(f"{live.url}/no/such/view")  # not a view: the API's JSON 404, as before the page existed
    assert '{"data":null,"info":{"error":"not found: /no/such/view"}}' in browser.page_source


def statuses(driver, fragment: str) -> list[int]:
    return driver.execute_script("return performance.getEntriesByType('resource').filter(e => "
                                 "e.name.includes(arguments[0])).map(e => e.responseStatus)", fragment)


def test_the_open_view_refreshes_with_conditional_requests(browser, live):
    open_page(browser, live, "/", "document.getElementById('featured-chart')?.data")
    browser.execute_script("performance.clearResourceTimings()")
    browser.execute_script("document.dispatchEvent(new Event('app:refresh'))")
    wait(browser, "performance.getEntriesByType('resource').filter(e => e.name.includes('/candles?range=1d'))"
                  ".length")
    assert statuses(browser, "/api/metrics?") == [304] * 6  # unchanged: no body, and nothing redrawn
    assert statuses(browser, "/candles?range=1d") == [304]
    # new data: the next refresh gets it and shows it
    market = instrument(live, "btcusd", "kraken")
    newest = dt.datetime.fromisoformat(market["last_time"].replace("Z", "+00:00"))
    bar = minute_bars("web refresh", end=newest + dt.timedelta(minutes=1), count=1, start_price=70123.45)
    store_crypto(live.app, bar, "kraken", "btcusd", interval=lib.Interval.MIN1)
    with live.app.app_context():
        metrics.refresh_rankings()
    browser.execute_script("performance.clearResourceTimings()")
    browser.find_element(By.ID, "refresh").click()
    price = money(api(live, f"/api/metrics/{market['id']}")["data"]["last_price"])
    wait(browser, "[...document.querySelectorAll('#main tbody tr')].some(r => r.cells[1].innerText.startsWith("
                  "arguments[0]))", price)
    assert set(statuses(browser, "/api/metrics?")) == {200}
    candles = api(live, f"/api/metrics/{market['id']}/candles?range=1d")["data"]["candles"]
    wait(browser, "document.getElementById('featured-chart').data[0].close.at(-1) === arguments[0]",
         candles[-1]["close"])
    assert chart_points(browser, "featured-chart") == len(candles)


@pytest.mark.parametrize("path, ready", [
    ("/", "document.getElementById('featured-chart')?.data"),
    ("/instruments/5", "document.getElementById('instrument-chart')?.data"),
    ("/dashboard", "document.querySelectorAll('#main tbody tr').length"),
    ("/account", "document.getElementById('signup')"),
])
def test_a_phone_screen_needs_no_sideways_scrolling(chrome, browser, live, path, ready):
    chrome.emulate_width(375, 812)
    try:
        open_page(browser, live, path, ready)
        assert browser.execute_script("return window.innerWidth") == 375
        assert browser.execute_script("return document.documentElement.scrollWidth") == 375  # tables scroll inside
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_the_keyboard_reaches_and_sorts(browser, live):
    open_page(browser, live, "/", "document.querySelectorAll('#main tbody tr').length")
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Skip to content"
    reached = []
    for _ in range(12):
        browser.switch_to.active_element.send_keys(Keys.TAB)
        reached.append(browser.execute_script("const e = document.activeElement; return e.id || e.textContent.trim()"))
    assert {"Markets", "Dashboard", "account-link", "search-input"} <= set(reached)
    button = browser.find_element(By.CSS_SELECTOR, 'button[data-key="price"]')
    button.send_keys(Keys.ENTER)
    wait(browser, "document.querySelector('th[aria-sort] button')?.dataset.key === 'price'")
    assert browser.switch_to.active_element.get_attribute("data-key") == "price"  # focus stays on the header


def test_the_page_follows_the_dark_scheme(browser, live):
    try:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia",
                                {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        open_page(browser, live, "/", "document.getElementById('featured-chart')?.data")
        assert browser.execute_script("return getComputedStyle(document.body).backgroundColor") == "rgb(15, 17, 21)"
        paper = browser.execute_script("return document.getElementById('featured-chart').layout.paper_bgcolor")
        assert paper == "#171a21"
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


def test_the_first_chart_is_drawn_before_the_chart_library_arrives(live):
    """A first visit spends most of its wait compiling Plotly: the page draws the candles itself meanwhile. With
    Plotly's file held back, that picture stands, with every candle the API gave, and says what is loading."""
    with Chrome() as fresh:
        fresh.driver.execute_cdp_cmd("Network.enable", {})
        fresh.driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*/vendor/plotly-*"]})
        listed = api(live, "/api/metrics?limit=1000")
        top = next(item for item in listed["data"] if item["rank"] == 1)
        candles = api(live, f"/api/metrics/{top['id']}/candles?range=1d")["data"]["candles"]
        fresh.driver.get(live.url + "/")
        drawn = wait(fresh.driver, "document.querySelector('#featured-chart svg.chart-preview')?.dataset.candles")
        assert int(drawn) == len(candles) > 250
        assert fresh.driver.execute_script(
            "return document.querySelectorAll('#featured-chart svg.chart-preview rect.volume').length") == len(candles)
        assert fresh.driver.execute_script("return performance.getEntriesByName('first-chart').length") == 1
        assert fresh.driver.execute_script("return window.Plotly === undefined")
