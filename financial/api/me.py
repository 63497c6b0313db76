"""The signed-in user's own data: watchlist (`/api/me/markets`), a watched market's last day of
minute bars, the watchlist's volatility ranking and its alerts. Every operation needs
`Authorization: Bearer <token>`; nothing here is cached (each answer is one user's).
"""
from __future__ import annotations

from flask import Response, current_app
from flask_restx import fields
from marshmallow import Schema

from financial.api import params
from financial.api.auth import SECURITY, SignedInResource
from financial.api.envelope import (ERROR, envelope, envelope_model, json_response, namespace, no_content, paginated,
                                    responds)
from financial.api.metrics import METRIC
from financial.paging import Page
from financial.services import watchlists

ns = namespace("me", "The signed-in user's watchlist, its rankings and alerts (Authorization: Bearer <token>)",
               path="/api/me")
ns.add_model(METRIC.name, METRIC)

MARKET = ns.model("WatchedMarket", {
    "exchange": fields.String(example="kraken"),
    "ticker": fields.String(example="btcusd", description="The canonical pair, lower-case"),
    "base": fields.String(example="BTC"),
    "quote": fields.String(example="USD"),
    "name": fields.String(example="BTC/USD on Kraken"),
    "instrument_id": fields.Integer(example=3, description="For /api/metrics/{id}"),
    "added_at": fields.String(example="2026-11-24T10:41:00Z"),
})
# What lib.markets accepts (case-insensitive): an exchange id, and a pair of 2 to 32 letters, digits and dots
# once its separators (/ - _) are dropped. In a path a pair cannot hold a slash.
EXCHANGE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"
PAIR_PATTERN = r"^[/_-]*[A-Za-z0-9]([/_-]*[A-Za-z0-9.]){1,31}[/_-]*$"
PATH_PAIR_PATTERN = r"^[_-]*[A-Za-z0-9]([_-]*[A-Za-z0-9.]){1,31}[_-]*$"
WATCH = params.Body(ns, "Watch", {
    "exchange": params.text("Exchange id", max_length=64, example="kraken", pattern=EXCHANGE_PATTERN),
    "ticker": params.text("Pair: btcusd, BTC/USD, btc-usd...", max_length=64, example="btcusd",
                          pattern=PAIR_PATTERN),
})
BAR = ns.model("MinuteBar", {
    "time": fields.String(example="2026-11-24T10:41:00Z", description="Start of the minute, ISO 8601 UTC"),
    "open": fields.Float(example=61200.1),
    "high": fields.Float(example=61234.5),
    "low": fields.Float(example=61190.0),
    "close": fields.Float(example=61230.2),
    "volume": fields.Float(example=3.2841, description="In the base currency"),
})
ALERT = ns.model("Alert", {
    "id": fields.Integer(example=17),
    "exchange": fields.String(example="kraken"),
    "ticker": fields.String(example="btcusd"),
    "quantity": fields.String(example="volume", enum=["price", "volume"], description="price: the close"),
    "value": fields.Float(example=48.2, description="The latest bar's value"),
    "average": fields.Float(example=4.1, description="Mean of the other bars of the window"),
    "ratio": fields.Float(example=11.76, description="value / average"),
    "factor": fields.Float(example=3, description="ALERT_FACTOR when it was raised"),
    "points": fields.Integer(example=60, description="Bars in the window, the latest included"),
    "window_minutes": fields.Integer(example=60),
    "bar_time": fields.String(example="2026-11-24T10:41:00Z", description="Start of the bar that triggered it"),
    "created_at": fields.String(example="2026-11-24T10:42:30Z", description="When the ingest raised it"),
    "email": fields.String(example="sent", enum=["pending", "sending", "sent", "failed", "rejected"],
                           description="Your e-mail for it; null when none was due (e-mail off, or you "
                                       "started watching the market later)"),
})
MARKET_RESPONSE = envelope_model(ns, "WatchedMarketResponse", fields.Nested(MARKET))
MARKETS_RESPONSE = envelope_model(ns, "WatchedMarketsResponse", fields.List(fields.Nested(MARKET)), paginated=True)
DAY_RESPONSE = envelope_model(ns, "DayResponse", fields.List(fields.Nested(BAR)), paginated=True)
RANKINGS_RESPONSE = envelope_model(ns, "MyRankingsResponse", fields.List(fields.Nested(METRIC)), paginated=True)
ALERTS_RESPONSE = envelope_model(ns, "AlertsResponse", fields.List(fields.Nested(ALERT)), paginated=True)

MARKETS_ARGS = params.schema(params.paging("Markets per page", default=100, high=1000))
DAY_ARGS = params.schema(params.paging("Bars per page (a whole day fits in one)", default=1440, high=1440))
RANKINGS_ARGS = params.schema(params.paging("Markets per page", default=100, high=1000))
ALERTS_ARGS = params.schema(params.paging("Alerts per page", default=50, high=500))
MARKET_DOC = {
    "exchange": {"description": "Exchange id, e.g. kraken", "pattern": EXCHANGE_PATTERN},
    "ticker": {"description": "Pair as listed by GET /api/me/markets, e.g. btcusd (or btc-usd, BTC_USD...)",
               "pattern": PATH_PAIR_PATTERN},
}


def _page(query_schema: Schema) -> Page:
    """The page the query asks for: these lists take no other parameter."""
    return params.page(params.parse_query(query_schema))


@ns.route("/markets")
@ns.doc(security=SECURITY)
class Markets(SignedInResource):
    @ns.doc(params=params.doc_params(MARKETS_ARGS))
    @ns.response(200, "Your watched markets, by exchange then ticker", MARKETS_RESPONSE)
    @responds(ns, 400, 401)
    def get(self) -> Response:
        """The markets on your watchlist."""
        page = _page(MARKETS_ARGS)
        return json_response(paginated(*watchlists.markets(self.user_id, page), page))

    @ns.expect(WATCH.model)
    @ns.response(201, "Added; minute ingests track it from now on", MARKET_RESPONSE)
    @ns.response(200, "Already on your watchlist", MARKET_RESPONSE)
    @ns.response(503, "The crypto source (CRYPTO_SOURCE) cannot be reached to check the market, or the database "
                      "is unavailable", ERROR)
    @responds(ns, 400, 401, 404, 409, 413)
    def post(self) -> Response:
        """Watch a market, checked with the crypto source first (unknown: 404). Adding it twice is harmless."""
        body = params.parse_body(WATCH)
        entry, created = watchlists.add(self.user_id, body["exchange"], body["ticker"],
                                        current_app.config["SETTINGS"])
        return json_response(envelope(entry), 201 if created else 200)


@ns.route("/markets/<exchange>/<ticker>")
@ns.doc(security=SECURITY, params=MARKET_DOC)
class Market(SignedInResource):
    @ns.response(204, "Removed from your watchlist; no body, so no Content-Type")
    @responds(ns, 400, 401, 404)
    def delete(self, exchange: str, ticker: str) -> Response:
        """Stop watching a market (404 when it is not on your watchlist)."""
        watchlists.remove(self.user_id, exchange, ticker)
        return no_content()


@ns.route("/markets/<exchange>/<ticker>/day")
@ns.doc(security=SECURITY, params=MARKET_DOC)
class Day(SignedInResource):
    @ns.doc(params=params.doc_params(DAY_ARGS))
    @ns.response(200, "The 1-minute bars that started in the last 24 hours, oldest first", DAY_RESPONSE)
    @responds(ns, 400, 401, 403)
    def get(self, exchange: str, ticker: str) -> Response:
        """A watched market's last 24 hours of minute bars (403 when it is not on your watchlist)."""
        page = _page(DAY_ARGS)
        bars = watchlists.day(self.user_id, exchange, ticker)
        return json_response(paginated(page.of(bars), len(bars), page))


@ns.route("/rankings")
@ns.doc(security=SECURITY)
class Rankings(SignedInResource):
    @ns.doc(params=params.doc_params(RANKINGS_ARGS))
    @ns.response(200, "Your markets ranked by the standard deviation of their close over 24 hours (rank 1 = "
                      "highest), as of the last ingest; those without figures last", RANKINGS_RESPONSE)
    @responds(ns, 400, 401)
    def get(self) -> Response:
        """Your watched markets ranked by 24-hour standard deviation."""
        page = _page(RANKINGS_ARGS)
        ranked = watchlists.rankings(self.user_id)
        return json_response(paginated(page.of(ranked), len(ranked), page))


@ns.route("/alerts")
@ns.doc(security=SECURITY)
class Alerts(SignedInResource):
    @ns.doc(params=params.doc_params(ALERTS_ARGS))
    @ns.response(200, "The alerts of your watched markets, newest first", ALERTS_RESPONSE)
    @responds(ns, 400, 401)
    def get(self) -> Response:
        """Alerts raised for the markets on your watchlist."""
        page = _page(ALERTS_ARGS)
        return json_response(paginated(*watchlists.alerts(self.user_id, page), page))
