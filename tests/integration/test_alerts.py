"""Alerts on both stacks: the rule after a minute ingest (against the reference of tests/unit/test_alert_rule.py),
the cooldown, e-mail received by a real SMTP server (aiosmtpd), the mail server down and back, no SMTP at all,
and `GET /api/me/alerts` — ending with the whole flow over HTTP, in process and through get_raw_data.py."""
from __future__ import annotations

import datetime as dt
import socket
from dataclasses import replace

import pytest
import sqlalchemy as sa

import lib
from financial import ingest, storage
from financial.extensions import db
from financial.models import Alert, AlertDelivery, Instrument, User, WatchlistEntry
from financial.services import alerts
from tests.fakes.exchanges import KRAKEN_CAP, FakeKraken
from tests.fakes.series import floor_time, minute_bars
from tests.fakes.server import FakeServer
from tests.fakes.smtp import SmtpServer, free_port
from tests.integration.test_crypto_cli import minute_with_room
from tests.integration.test_get_raw_data_cli import cli
from tests.seed import sign_in, store_crypto
from tests.unit.test_alert_rule import reference

pytestmark = pytest.mark.usefixtures("fast_hashing")
UTC = dt.timezone.utc
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def now():
    """A run's moment: 30 seconds into the current minute (the newest closed bar started 90 seconds ago)."""
    return floor_time(dt.datetime.now(UTC), 60) + dt.timedelta(seconds=30)


def flat(last: dt.datetime, values: list[tuple[float, float]]) -> list[lib.Bar]:
    """Minute bars (close, volume), the last one starting at `last`."""
    return [lib.Bar(last - (len(values) - 1 - i) * MINUTE, close, close, close, close, volume)
            for i, (close, volume) in enumerate(values)]


def points_of(bars):
    return [alerts.Point(bar.timestamp.replace(tzinfo=None), bar.close, bar.volume) for bar in bars]


def naive(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def stored_alerts(app) -> list[dict]:
    with app.app_context(), db.engine.connect() as connection:
        rows = connection.execute(
            sa.select(Instrument.exchange, Instrument.symbol, Alert.__table__)
            .join(Instrument, Instrument.id == Alert.instrument_id).order_by(Alert.id)).mappings().all()
        return [dict(row) for row in rows]


def deliveries(app) -> list[dict]:
    with app.app_context(), db.engine.connect() as connection:
        rows = connection.execute(
            sa.select(User.email, AlertDelivery.__table__).join(User, User.id == AlertDelivery.user_id)
            .order_by(AlertDelivery.id)).mappings().all()
        return [dict(row) for row in rows]


def watch_directly(app, email: str, exchange: str, pair: str) -> None:
    """Put a stored market on a user's watchlist without asking an exchange (the API path is tested with the
    watchlists); signs the user up if need be."""
    client = app.test_client()
    client.post("/api/auth/signup", json={"email": email, "password": "correct horse battery staple"})
    with app.app_context():
        session = db.session
        user_id = session.scalar(sa.select(User.id).where(User.email == email))
        instrument = storage.instruments.find(session, "crypto", pair, exchange=exchange)
        storage.dialect.insert_ignoring_duplicates(session, WatchlistEntry, {
            "user_id": user_id, "instrument_id": instrument.id, "created_at": naive(dt.datetime.now(UTC))})
        session.commit()


def run_alerts(app, now, **changes) -> alerts.Summary:
    with app.app_context():
        return alerts.run(app.config["SETTINGS"].replace(**changes), now)


# -- the rule after an ingest, as stored --------------------------------------------------------------------

CASES = {
    # name: ((close, volume) of the bars up to the latest, minutes from the latest bar's start to the run,
    #        the quantities that must alert)
    "exactly 3x volume": ([(100, 10), (100, 20), (100, 30), (100, 60)], 1.5, {"volume"}),
    "just under 3x volume": ([(100, 10), (100, 20), (100, 30), (100, 59.9999)], 1.5, set()),
    "exactly 3x price": ([(10, 5), (20, 5), (30, 5), (60, 5)], 1.5, {"price"}),
    "price and volume": ([(10, 5), (10, 5), (10, 5), (30, 15)], 1.5, {"price", "volume"}),
    "fewer points than the minimum": ([(10, 5), (10, 5), (30, 15)], 1.5, set()),
    "the latest left out of the average": ([(1, 10), (1, 10), (1, 10), (1, 30)], 1.5, {"volume"}),
    "stale": ([(100, 10), (100, 10), (100, 10), (100, 300)], 5.5, set()),
    "fresh at the limit": ([(100, 10), (100, 10), (100, 10), (100, 300)], 5.0, {"volume"}),
    "zero average": ([(100, 0), (100, 0), (100, 0), (100, 7)], 1.5, set()),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_rule_after_an_ingest(app, now, case):
    values, age, want = CASES[case]
    latest = now - dt.timedelta(minutes=age)
    bars = flat(latest, values)
    store_crypto(app, bars, "kraken", "btcusd", interval=lib.Interval.MIN1)
    # Another market in the same run, far from any alert: it must not disturb this one.
    store_crypto(app, flat(floor_time(now, 60) - MINUTE, [(50, 5)] * 10), "kraken", "ethusd",
                 interval=lib.Interval.MIN1)
    report = ingest.Report()
    with app.app_context():
        ingest.finish(report, ingest.AfterRun(alerts=True), now=now)
    assert report.ok and [step.label for step in report.steps] == ["(rankings)", "(alerts)"]
    assert report.alerts.raised == len(want)
    expected = reference(points_of(bars), naive(now))
    assert set(expected) == want
    found = stored_alerts(app)
    assert {row["quantity"] for row in found} == want
    for row in found:
        value, average, points = expected[row["quantity"]]
        assert (row["exchange"], row["symbol"], row["value"], row["points"], row["factor"], row["window_minutes"]) == (
            "kraken", "btcusd", value, points, 3.0, 60)
        assert row["average"] == pytest.approx(average, rel=1e-12)
        assert row["bar_time"] == naive(latest) and row["created_at"] == naive(now).replace(microsecond=0)


def test_only_the_window_counts(app, now):
    """A huge volume 60 minutes before the latest bar is outside the window; 59 minutes before, inside."""
    last = floor_time(now, 60) - MINUTE
    quiet = [(100, 10)] * 59 + [(100, 30)]
    store_crypto(app, flat(last, [(100, 1e6)] + quiet), "kraken", "btcusd", interval=lib.Interval.MIN1)
    store_crypto(app, flat(last, [(100, 1e6)] + quiet[1:]), "kraken", "ethusd", interval=lib.Interval.MIN1)
    run_alerts(app, now)
    assert [(row["symbol"], row["quantity"], row["points"], row["average"]) for row in stored_alerts(app)] == [
        ("btcusd", "volume", 60, 10.0)]


def test_realistic_markets_agree_with_the_reference(app, now):
    last = floor_time(now, 60) - MINUTE
    markets = {}
    for number, pair in enumerate(["btcusd", "ethusd", "solusd", "xrpusd", "adausd", "dotusd"]):
        bars = minute_bars(f"alerts-{pair}", end=last, count=120, start_price=100 + number)
        if number % 2 == 0:  # half of them spike, above 3x the others' mean
            average = sum(bar.volume for bar in bars[-60:-1]) / 59
            bars[-1] = replace(bars[-1], volume=round(average * (3.01 + number), 4))
        store_crypto(app, bars, "kraken", pair, interval=lib.Interval.MIN1)
        markets[pair] = reference(points_of(bars), naive(now))
    summary = run_alerts(app, now)
    found = {(row["symbol"], row["quantity"]): (row["value"], row["average"], row["points"])
             for row in stored_alerts(app)}
    assert summary.raised == len(found) == 3
    assert set(found) == {(pair, quantity) for pair, want in markets.items() for quantity in want}
    for (pair, quantity), (value, average, points) in found.items():
        assert (value, points) == (markets[pair][quantity][0], markets[pair][quantity][2])
        assert average == pytest.approx(markets[pair][quantity][1], rel=1e-12)


def test_the_rule_follows_the_settings(app, now):
    last = floor_time(now, 60) - MINUTE
    store_crypto(app, flat(last, [(100, 99)] * 5 + [(100, 10), (100, 10), (100, 21)]), "kraken", "btcusd",
                 interval=lib.Interval.MIN1)
    assert run_alerts(app, now).raised == 0  # with the defaults the old 99s lift the average
    summary = run_alerts(app, now, alert_factor=2.0, alert_window_minutes=3, alert_min_points=3)
    assert summary.raised == 1
    [row] = stored_alerts(app)
    assert (row["quantity"], row["value"], row["average"], row["factor"], row["points"], row["window_minutes"]) == (
        "volume", 21.0, 10.0, 2.0, 3, 3)


def test_the_cooldown(app, now):
    """A spike inside the cooldown raises nothing (though the rule alone would fire); at the cooldown's end it
    does. The other quantity has a cooldown of its own."""
    last = floor_time(now, 60) - MINUTE
    base = [(100, 10)] * 10
    bars = flat(last, base + [(100, 50)])
    store_crypto(app, bars, "kraken", "btcusd", interval=lib.Interval.MIN1)
    assert run_alerts(app, now).raised == 1

    def spike_at(minutes, values):
        later = flat(last + minutes * MINUTE, base + values)
        store_crypto(app, later, "kraken", "btcusd", interval=lib.Interval.MIN1)
        return later

    later = spike_at(59, [(100, 50)])
    assert set(reference(points_of(later), naive(now + 59 * MINUTE))) == {"volume"}  # the rule alone fires
    assert run_alerts(app, now + 59 * MINUTE).raised == 0
    price = spike_at(59, [(400, 50)])
    assert set(reference(points_of(price), naive(now + 59 * MINUTE))) == {"price", "volume"}
    assert run_alerts(app, now + 59 * MINUTE).raised == 1  # the price: it had no alert yet
    spike_at(60, [(100, 50)])
    assert run_alerts(app, now + 60 * MINUTE).raised == 1
    assert [(row["quantity"], row["created_at"]) for row in stored_alerts(app)] == [
        ("volume", naive(now)), ("price", naive(now + 59 * MINUTE)), ("volume", naive(now + 60 * MINUTE))]


def test_one_bar_raises_one_alert_even_without_a_cooldown(app, now):
    store_crypto(app, flat(floor_time(now, 60) - MINUTE, [(100, 10)] * 5 + [(100, 40)]), "kraken", "btcusd",
                 interval=lib.Interval.MIN1)
    assert run_alerts(app, now, alert_cooldown_minutes=0).raised == 1
    assert run_alerts(app, now + dt.timedelta(seconds=20), alert_cooldown_minutes=0).raised == 0
    assert len(stored_alerts(app)) == 1


# -- e-mail ------------------------------------------------------------------------------------------------

@pytest.fixture
def spiking(app_factory, smtp_server, now):
    """An app that mails through the test SMTP server, and kraken:btcusd with a volume spike in its newest bar,
    watched by ann and bob (carol watches nothing)."""
    app = app_factory(smtp_host="127.0.0.1", smtp_port=smtp_server.port, smtp_sender="alerts@tracker.example")
    bars = minute_bars("mail-btc", end=floor_time(now, 60) - MINUTE, count=90, start_price=60000, price_decimals=1)
    bars[-1] = replace(bars[-1], volume=round(bars[-1].volume * 25, 4))
    store_crypto(app, bars, "kraken", "btcusd", interval=lib.Interval.MIN1, base="BTC", quote="USD",
                 name="BTC/USD on Kraken")
    for email in ("ann@example.com", "bob@example.com"):
        watch_directly(app, email, "kraken", "btcusd")
    app.test_client().post("/api/auth/signup", json={"email": "carol@example.com", "password": "x" * 10})
    app.bars = bars
    return app


def assert_alert_mail(message, to, bars, now):
    value, average, points = reference(points_of(bars), naive(now))["volume"]
    assert message["To"] == to and message["From"] == "alerts@tracker.example"
    assert message["Subject"] == (f"kraken:btcusd: volume {alerts.number(value)} is {value / average:.2f}x its "
                                  f"60-minute average")
    body = message.get_content()
    latest = bars[-1].timestamp
    for text in ("kraken:btcusd (BTC/USD on Kraken): volume alert #", f"Volume of the 1-minute bar starting "
                 f"{latest:%Y-%m-%d %H:%M} UTC: {alerts.number(value)}",
                 f"Average of the other {points - 1} bars in the last 60 minutes: {alerts.number(average)}",
                 f"That is {value / average:.2f} times the average; alerts fire at 3 times.",
                 f"Raised at {naive(now):%Y-%m-%d %H:%M:%S} UTC"):
        assert text in body, (text, body)


def test_every_watcher_gets_one_email(spiking, smtp_server, now):
    summary = run_alerts(spiking, now)
    assert (summary.raised, summary.sent, summary.failed) == (1, 2, 0)
    assert summary.render() == "alerts: 1 raised; e-mails: 2 sent, 0 failed"
    assert sorted(message["To"] for message in smtp_server.messages) == ["ann@example.com", "bob@example.com"]
    for address in ("ann@example.com", "bob@example.com"):
        [message] = smtp_server.to(address)
        assert_alert_mail(message, address, spiking.bars, now)
    assert [(d["email"], d["status"], d["attempts"], d["last_error"]) for d in deliveries(spiking)] == [
        ("ann@example.com", "sent", 1, None), ("bob@example.com", "sent", 1, None)]
    assert all(d["sent_at"] == naive(now) for d in deliveries(spiking))
    # Later runs send nothing again.
    assert run_alerts(spiking, now + MINUTE).sent == 0
    assert run_alerts(spiking, now + 2 * MINUTE).sent == 0
    assert len(smtp_server.messages) == 2


def test_the_email_names_the_alert_as_the_api_lists_it(spiking, smtp_server, now):
    """Each watcher's e-mail says "alert #N" with the N that /api/me/alerts shows them: the alert's id, not
    that of the e-mail's delivery (two watchers: two deliveries, one alert)."""
    run_alerts(spiking, now)
    client = spiking.test_client()
    for address in ("ann@example.com", "bob@example.com"):
        token = sign_in(client, address, "correct horse battery staple")
        [listed] = client.get("/api/me/alerts", headers=token).get_json()["data"]
        [message] = smtp_server.to(address)
        assert message.get_content().splitlines()[0].endswith(f"volume alert #{listed['id']}.")
        assert message["Message-ID"].startswith(f"<alert-{listed['id']}.")


def test_a_refused_address_is_not_retried(spiking, smtp_server, now):
    smtp_server.refuse.add("bob@example.com")
    summary = run_alerts(spiking, now)
    assert (summary.sent, summary.failed) == (1, 1)
    states = {d["email"]: (d["status"], d["attempts"]) for d in deliveries(spiking)}
    assert states == {"ann@example.com": ("sent", 1), "bob@example.com": ("rejected", 1)}
    assert "550" in deliveries(spiking)[1]["last_error"]
    smtp_server.refuse.clear()
    assert run_alerts(spiking, now + MINUTE).sent == 0
    assert [m["To"] for m in smtp_server.messages] == ["ann@example.com"]


def test_a_mail_server_that_is_down_delays_the_email_and_never_loses_it(spiking, smtp_server, now, client):
    smtp_server.stop()
    summary = run_alerts(spiking, now)
    assert (summary.raised, summary.sent, summary.failed) == (1, 0, 2)
    assert len(stored_alerts(spiking)) == 1  # the alert is kept
    for delivery in deliveries(spiking):
        assert (delivery["status"], delivery["attempts"], delivery["sent_at"]) == ("failed", 1, None)
        assert delivery["last_error"] == f"SMTP server 127.0.0.1:{smtp_server.port}: connection refused"
    headers = sign_in(spiking.test_client(), "ann@example.com", "correct horse battery staple")
    [listed] = spiking.test_client().get("/api/me/alerts", headers=headers).get_json()["data"]
    assert listed["email"] == "failed"
    # Still down at the next run: another attempt, still kept.
    assert run_alerts(spiking, now + MINUTE).failed == 2
    assert {d["attempts"] for d in deliveries(spiking)} == {2}
    smtp_server.start()  # back, on the same port
    summary = run_alerts(spiking, now + 2 * MINUTE)
    assert (summary.raised, summary.sent, summary.failed) == (0, 2, 0)
    for delivery in deliveries(spiking):
        assert (delivery["status"], delivery["attempts"], delivery["last_error"]) == ("sent", 3, None)
        assert delivery["sent_at"] == naive(now + 2 * MINUTE)
    for address in ("ann@example.com", "bob@example.com"):
        [message] = smtp_server.to(address)
        assert_alert_mail(message, address, spiking.bars, now)
    assert run_alerts(spiking, now + 3 * MINUTE).sent == 0
    assert len(smtp_server.messages) == 2


def test_a_mail_server_that_never_answers_times_out(spiking, now):
    with socket.socket() as silent:  # accepts connections (the backlog) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        summary = run_alerts(spiking, now, smtp_port=port, smtp_timeout=1.0)
    assert (summary.sent, summary.failed) == (0, 2)
    assert {d["last_error"] for d in deliveries(spiking)} == {f"SMTP server 127.0.0.1:{port}: timed out"}


def test_credentials_are_never_sent_without_tls(spiking, smtp_server, now, caplog):
    summary = run_alerts(spiking, now, smtp_user="alerts", smtp_password="Smtp-Sentinel-42")
    assert (summary.sent, summary.failed) == (0, 2)
    assert {d["last_error"] for d in deliveries(spiking)} == {
        f"SMTP server 127.0.0.1:{smtp_server.port} offers no TLS; not sending SMTP_USER's password in clear"}
    assert smtp_server.messages == [] and "Smtp-Sentinel-42" not in caplog.text


def test_without_smtp_alerts_are_recorded_and_no_email_is_due(app, now):
    store_crypto(app, flat(floor_time(now, 60) - MINUTE, [(100, 10)] * 5 + [(100, 40)]), "kraken", "btcusd",
                 interval=lib.Interval.MIN1)
    watch_directly(app, "ann@example.com", "kraken", "btcusd")
    report = ingest.Report()
    with app.app_context():
        ingest.finish(report, ingest.AfterRun(alerts=True), now=now)
    assert report.render().splitlines()[-1] == ("0 instruments: 0 ok, 0 failed, 0 skipped; 0 rows stored; "
                                                "alerts: 1 raised; e-mail off (no SMTP_HOST)")
    assert len(stored_alerts(app)) == 1 and deliveries(app) == []


def test_a_run_that_died_while_sending_is_retried_later(spiking, smtp_server, now):
    """A delivery left `sending` (its run died between claiming and recording it) is tried again once it has
    been abandoned for 15 minutes, not before; and a delivery another run has claimed is not claimed twice."""
    with spiking.app_context():
        alerts.raise_alerts(alerts.Rule(), naive(now), email=True)
        session = db.session
        due = storage.alerts.deliveries_to_send(session, abandoned_before=naive(now), limit=10)
        assert [storage.alerts.claim_delivery(session, delivery, naive(now)) for delivery in due] == [True, True]
        assert [storage.alerts.claim_delivery(session, delivery, naive(now)) for delivery in due] == [False, False]
        session.commit()
    assert run_alerts(spiking, now + dt.timedelta(minutes=14)).sent == 0
    summary = run_alerts(spiking, now + dt.timedelta(minutes=16))
    assert summary.sent == 2 and len(smtp_server.messages) == 2
    assert {d["attempts"] for d in deliveries(spiking)} == {2}


def test_the_ingest_summary_reports_alerts_and_emails(spiking, now):
    report = ingest.Report()
    with spiking.app_context():
        ingest.finish(report, ingest.AfterRun(alerts=True), now=now)
    assert report.ok
    assert report.render().splitlines()[-1].endswith("; alerts: 1 raised; e-mails: 2 sent, 0 failed")


# -- GET /api/me/alerts ---------------------------------------------------------------------------------------

def test_users_see_the_alerts_of_their_markets_only(app, client, now):
    last = floor_time(now, 60) - MINUTE
    for pair in ("btcusd", "ethusd"):
        store_crypto(app, flat(last, [(100, 10)] * 5 + [(100, 40)]), "kraken", pair, interval=lib.Interval.MIN1)
    watch_directly(app, "ann@example.com", "kraken", "btcusd")
    watch_directly(app, "bob@example.com", "kraken", "ethusd")
    run_alerts(app, now)
    for pair in ("btcusd", "ethusd"):
        store_crypto(app, flat(last + 61 * MINUTE, [(100, 10)] * 5 + [(400, 10)]), "kraken", pair,
                     interval=lib.Interval.MIN1)
    run_alerts(app, now + 61 * MINUTE)
    ann = sign_in(client, "ann@example.com", "correct horse battery staple")
    bob = sign_in(client, "bob@example.com", "correct horse battery staple")
    body = client.get("/api/me/alerts", headers=ann).get_json()
    assert body["pagination"] == {"count": 2, "page": 1, "limit": 50, "pages": 1}
    newest, oldest = body["data"]
    assert list(newest) == ["id", "exchange", "ticker", "quantity", "value", "average", "ratio", "factor", "points",
                            "window_minutes", "bar_time", "created_at", "email"]
    assert newest == {"id": newest["id"], "exchange": "kraken", "ticker": "btcusd", "quantity": "price", "value": 400.0,
                      "average": 100.0, "ratio": 4.0, "factor": 3.0, "points": 6, "window_minutes": 60,
                      "bar_time": (last + 61 * MINUTE).strftime("%Y-%m-%dT%H:%M:%SZ"),
                      "created_at": (now + 61 * MINUTE).strftime("%Y-%m-%dT%H:%M:%SZ"), "email": None}
    assert (oldest["quantity"], oldest["value"], oldest["average"], oldest["ratio"]) == ("volume", 40.0, 10.0, 4.0)
    assert oldest["created_at"] == now.strftime("%Y-%m-%dT%H:%M:%SZ") and newest["id"] > oldest["id"]
    assert {e["ticker"] for e in client.get("/api/me/alerts", headers=bob).get_json()["data"]} == {"ethusd"}
    page = client.get("/api/me/alerts?limit=1&page=2", headers=ann).get_json()
    assert [e["id"] for e in page["data"]] == [oldest["id"]]
    assert page["pagination"] == {"count": 2, "page": 2, "limit": 1, "pages": 2}
    # Bob starts watching btcusd: he sees its alerts too (no e-mail was due to him for them).
    watch_directly(app, "bob@example.com", "kraken", "btcusd")
    assert len(client.get("/api/me/alerts", headers=bob).get_json()["data"]) == 4
    bad = client.get("/api/me/alerts?limit=501", headers=ann)
    assert bad.status_code == 400 and bad.get_json()["info"]["error"] == "limit: must be between 1 and 500 (got '501')"


# -- the whole flow ----------------------------------------------------------------------------------------------

@pytest.fixture
def kraken():
    fake = FakeKraken()
    with FakeServer(fake) as server:
        server.fake = fake
        yield server


def minute_ingest(app, now) -> ingest.Report:
    """What `get_raw_data.py --source exchange` does each minute (watched markets, rankings, alerts), with the
    clock pinned at `now`."""
    with app.app_context():
        plan = ingest.plan_run(ingest.IngestRequest(source="exchange", interval=lib.Interval.MIN1),
                               app.config["SETTINGS"])
        report = ingest.run(plan.tasks, clock=lambda: now)
        return ingest.finish(report, plan.after, now=now)


def test_the_whole_flow_over_http(app_factory, kraken, smtp_server, now):
    """Sign up, log in, watch kraken:btcusd (checked with the fake Kraken through ccxt); a minute ingest in which
    its volume spikes e-mails the user once and lists the alert; a second ingest inside the cooldown, with
    another spike, sends nothing."""
    app = app_factory(crypto_source="exchange", exchange_base_urls=f"kraken={kraken.url}", exchange_min_interval=0,
                      smtp_host="127.0.0.1", smtp_port=smtp_server.port, smtp_sender="alerts@tracker.example")
    client = app.test_client()
    assert client.post("/api/auth/signup", json={"email": "Ann@Example.com", "password": "s3cret-enough"}
                       ).status_code == 201
    token = client.post("/api/auth/login", json={"email": "ann@example.com", "password": "s3cret-enough"}
                        ).get_json()["data"]["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.post("/api/me/markets", json={"ticker": "btcusd", "exchange": "kraken"}, headers=headers
                       ).status_code == 201

    # The fake's newest candle is the one in progress at each run: bars[-2] at the first, bars[-1] at the second.
    bars = minute_bars("flow-btc", end=now + MINUTE, count=1502, start_price=60000, price_decimals=1)
    for index in (-3, -2):
        bars[index] = replace(bars[index], volume=round(bars[index].volume * 40, 4))
    kraken.fake.add_ohlc("XXBTZUSD", bars[:-1])
    first = minute_ingest(app, now)
    assert first.ok, first.render()
    stored = [bar for bar in bars[:-2]][-(KRAKEN_CAP - 1):]  # the closed ones Kraken still serves
    want = reference(points_of(stored), naive(now))
    assert set(want) == {"volume"}
    value, average, points = want["volume"]
    assert (first.alerts.raised, first.alerts.sent, first.alerts.failed) == (1, 1, 0)
    assert first.render().splitlines()[-1].endswith("; alerts: 1 raised; e-mails: 1 sent, 0 failed")
    [message] = smtp_server.messages
    assert message["To"] == "ann@example.com"
    body = message.get_content()
    assert f"Volume of the 1-minute bar starting {bars[-3].timestamp:%Y-%m-%d %H:%M} UTC: {alerts.number(value)}" \
        in body
    assert f"Average of the other {points - 1} bars in the last 60 minutes: {alerts.number(average)}" in body

    [alert] = client.get("/api/me/alerts", headers=headers).get_json()["data"]
    assert (alert["exchange"], alert["ticker"], alert["quantity"], alert["value"], alert["points"], alert["email"]) == (
        "kraken", "btcusd", "volume", value, points, "sent")
    assert alert["average"] == pytest.approx(average, rel=1e-12)
    assert alert["bar_time"] == bars[-3].timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")

    kraken.fake.add_ohlc("XXBTZUSD", bars)
    second = minute_ingest(app, now + MINUTE)
    assert second.ok, second.render()
    assert set(reference(points_of(bars[:-1]), naive(now + MINUTE))) == {"volume"}  # the rule alone would fire
    assert (second.alerts.raised, second.alerts.sent, second.alerts.failed) == (0, 0, 0)
    assert len(smtp_server.messages) == 1
    assert len(client.get("/api/me/alerts", headers=headers).get_json()["data"]) == 1
    day = client.get("/api/me/markets/kraken/btcusd/day", headers=headers).get_json()["data"]
    assert day[-1]["time"] == bars[-2].timestamp.strftime("%Y-%m-%dT%H:%M:%SZ") and day[-1]["volume"] == bars[-2].volume


def test_the_ingest_command_mails_before_it_exits(app_factory, stack_settings, kraken, smtp_server):
    """get_raw_data.py as cron or the scheduler runs it, on the real clock: no --markets, so it tracks the
    watched markets, raises the alert and sends its e-mail before exiting."""
    app = app_factory(crypto_source="exchange", exchange_base_urls=f"kraken={kraken.url}", exchange_min_interval=0)
    headers = sign_in(app.test_client(), "ann@example.com")
    assert app.test_client().post("/api/me/markets", json={"ticker": "btcusd", "exchange": "kraken"},
                                  headers=headers).status_code == 201
    now = minute_with_room(20)
    bars = minute_bars("cli-btc", end=floor_time(now, 60), count=200, start_price=60000, price_decimals=1)
    bars[-2] = replace(bars[-2], volume=round(bars[-2].volume * 40, 4))  # the newest closed candle
    kraken.fake.add_ohlc("XXBTZUSD", bars)
    from tests.conftest import env_for
    env = env_for(stack_settings, CRYPTO_SOURCE="exchange", EXCHANGE_BASE_URLS=f"kraken={kraken.url}",
                  EXCHANGE_MIN_INTERVAL="0", SMTP_HOST="127.0.0.1", SMTP_PORT=str(smtp_server.port))
    result = cli(env, "--source", "exchange")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == ("1 instruments: 1 ok, 0 failed, 0 skipped; 199 rows stored; "
                                              "alerts: 1 raised; e-mails: 1 sent, 0 failed")
    [message] = smtp_server.messages
    assert message["To"] == "ann@example.com" and "kraken:btcusd: volume" in message["Subject"]


def test_a_closed_smtp_port_then_the_right_one(app, now):
    """SMTP_PORT pointing nowhere: the e-mails wait; once the setting points at a live server they go out."""
    store_crypto(app, flat(floor_time(now, 60) - MINUTE, [(100, 10)] * 5 + [(100, 40)]), "kraken", "btcusd",
                 interval=lib.Interval.MIN1)
    watch_directly(app, "ann@example.com", "kraken", "btcusd")
    closed = free_port()
    summary = run_alerts(app, now, smtp_host="127.0.0.1", smtp_port=closed)
    assert (summary.raised, summary.sent, summary.failed) == (1, 0, 1)
    server = SmtpServer().start()
    try:
        summary = run_alerts(app, now + MINUTE, smtp_host="127.0.0.1", smtp_port=server.port)
        assert (summary.raised, summary.sent) == (0, 1)
        assert [m["To"] for m in server.messages] == ["ann@example.com"]
    finally:
        server.stop()
