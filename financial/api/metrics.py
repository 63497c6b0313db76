"""System B's endpoints: tracked instruments' figures over a window and their volatility ranking
(`/api/metrics`, `/api/metrics/{id}`, `/api/metrics/{id}/prices`), and an instrument's candles for charts
(`/api/metrics/{id}/candles`)."""
from __future__ import annotations

from flask import Response
from flask_restx import Resource, fields
from marshmallow.fields import Field

from financial.api import params
from financial.api.envelope import (cached_query, envelope, envelope_model, namespace, nullable, paginated,
                                    responds)
from financial.services import candles, metrics

ns = namespace("metrics", "Tracked instruments (crypto markets and stocks): figures over a window and their "
                          "volatility ranking, computed once per ingest", path="/api")

METRIC = ns.model("Metric", {
    "id": fields.Integer(example=3, description="Instrument id (for /api/metrics/{id})"),
    "exchange": nullable(fields.String(example="kraken", description="Exchange id; null for stocks")),
    "symbol": fields.String(example="btcusd", description="Pair (crypto, lower-case) or ticker (stocks)"),
    "base": nullable(fields.String(example="BTC", description="Base currency; null for stocks")),
    "quote": nullable(fields.String(example="USD", description="Quote currency; null for stocks")),
    "interval": nullable(fields.String(example="1min", description="The finest stored interval, which the figures "
                                                                   "use; null for an instrument without bars")),
    "last_price": nullable(fields.Float(example=61234.5, description="Last close in the window")),
    "last_time": nullable(fields.String(example="2026-11-24T10:41:00Z",
                                        description="Start of that bar, ISO 8601 UTC")),
    "points": fields.Integer(example=1439, description="Bars in the window"),
    "mean": nullable(fields.Float(example=61020.17, description="Mean close")),
    "stdev": nullable(fields.Float(example=212.4, description="Population standard deviation of the close")),
    "volatility": nullable(fields.Float(example=0.0813, description="Population standard deviation of the "
                                        "simple returns between consecutive bars, in percent")),
    "rank": nullable(fields.Integer(example=1, description="1 = highest `rank_by` figure; null without one")),
})
PRICE = ns.model("Price", {
    "price": fields.Float(example=61234.5, description="Close"),
    "time": fields.String(example="2026-11-24T10:41:00Z", description="Bar start, ISO 8601 UTC"),
})
CANDLE = ns.model("Candle", {
    "time": fields.String(example="2026-11-24T10:40:00Z", description="Start of the candle, ISO 8601 UTC"),
    "open": fields.Float(example=61200.1, description="Open of its first bar"),
    "high": fields.Float(example=61234.5, description="Highest high"),
    "low": fields.Float(example=61190.0, description="Lowest low"),
    "close": fields.Float(example=61230.2, description="Close of its last bar"),
    "volume": fields.Float(example=18.37, description="Summed volume"),
})
CANDLES = ns.model("Candles", {
    "id": fields.Integer(example=3),
    "asset_class": fields.String(example="crypto", enum=["crypto", "stock"]),
    "exchange": nullable(fields.String(example="kraken", description="Null for stocks and coins")),
    "symbol": fields.String(example="btcusd"),
    "name": fields.String(example="BTC/USD on Kraken", description="The symbol when the instrument has no name"),
    "intervals": fields.List(fields.String(example="1min"), description="Stored intervals, finest first"),
    "interval": nullable(fields.String(example="1min", description="Candle width asked for (default: the finest "
                                                                   "stored); null without bars")),
    "source_interval": nullable(fields.String(example="1min", description="The stored series the candles are "
                                                                          "made of")),
    "range": fields.String(example="1d"),
    "bucket_seconds": nullable(fields.Integer(example=300, description="Width of each candle: the interval's, or "
                                                                       "wider where the range needs more than "
                                                                       "`points` candles")),
    "bars": fields.Integer(example=1440, description="Stored bars the candles summarize"),
    "last_time": nullable(fields.String(example="2026-11-24T10:41:00Z", description="The newest bar, where the "
                                                                                    "range ends")),
    "candles": fields.List(fields.Nested(CANDLE), description="Oldest first; at most `points`"),
})
CANDLES_RESPONSE = envelope_model(ns, "CandlesResponse", fields.Nested(CANDLES))
METRICS = envelope_model(ns, "MetricsResponse", fields.List(fields.Nested(METRIC)), paginated=True)
METRIC_RESPONSE = envelope_model(ns, "MetricResponse", fields.Nested(METRIC))
PRICES = envelope_model(ns, "PricesResponse", fields.List(fields.Nested(PRICE)), paginated=True)

# The windows metrics.parse_window accepts, 1h to 8784h and 1d to 366d, so that Swagger says the same.
WINDOW_PATTERN = (r"^([1-9][0-9]{0,2}|[1-7][0-9]{3}|8[0-6][0-9]{2}|87[0-7][0-9]|878[0-4])[hH]$"
                  r"|^([1-9][0-9]?|[12][0-9]{2}|3[0-5][0-9]|36[0-6])[dD]$")


def _window() -> Field:
    return params.parsed("Window ending at the last ingest: <n>h or <n>d, from 1h to 366d. 24h, 7d and 30d are "
                         "precomputed; others are computed on first request", metrics.parse_window, default="24h",
                         pattern=WINDOW_PATTERN)


def _rank_by() -> Field:
    return params.choice("Figure ranked on (1 = highest)", list(metrics.RANK_BY), default="stdev")


METRICS_ARGS = params.schema({
    "window": _window(),
    "rank_by": _rank_by(),
    **params.paging("Instruments per page", default=100, high=1000),
})
METRIC_ARGS = params.schema({"window": _window(), "rank_by": _rank_by()})
PRICES_ARGS = params.schema({
    "window": _window(),
    **params.paging("Prices per page (30 days of minutes fit in one)", default=50_000, high=50_000),
})
CANDLES_ARGS = params.schema({
    "interval": params.choice("Candle width; at least the finest stored interval (default: that one)",
                              candles.INTERVALS, default=None),
    "range": params.parsed("How far back from the newest bar: 1d, 7d, 1m (30 days), 1y (365 days) or all",
                           candles.parse_range, default="all", enum=list(candles.RANGES)),
    "points": params.integer("At most this many candles: a longer range gets wider candles",
                             default=candles.DEFAULT_POINTS, low=candles.MIN_POINTS, high=candles.MAX_POINTS),
})
ID_DOC = {"instrument_id": "Instrument id, from /api/metrics"}


@ns.route("/metrics")
class Metrics(Resource):
    @ns.doc(params=params.doc_params(METRICS_ARGS))
    @ns.response(200, "Every tracked instrument by rank; those without figures last, with nulls", METRICS)
    @responds(ns, 400)
    def get(self) -> Response:
        """Every tracked instrument's figures over a window, ranked by standard deviation or volatility."""
        return cached_query(METRICS_ARGS, self.build)

    @staticmethod
    def build(args: dict) -> dict:
        page = params.page(args)
        return paginated(*metrics.metrics(page, **args), page)


@ns.route("/metrics/<int:instrument_id>")
class Metric(Resource):
    @ns.doc(params={**params.doc_params(METRIC_ARGS), **ID_DOC})
    @ns.response(200, "The instrument's figures and rank", METRIC_RESPONSE)
    @responds(ns, 400, 404)
    def get(self, instrument_id: int) -> Response:
        """One tracked instrument's figures over a window, with its rank."""
        return cached_query(METRIC_ARGS,
                            lambda args: envelope(metrics.metric(instrument_id, **args)))


@ns.route("/metrics/<int:instrument_id>/prices")
class Prices(Resource):
    @ns.doc(params={**params.doc_params(PRICES_ARGS), **ID_DOC})
    @ns.response(200, "The window's closes, oldest first", PRICES)
    @responds(ns, 400, 404)
    def get(self, instrument_id: int) -> Response:
        """One tracked instrument's closes over a window (its finest interval), oldest first."""
        def build(args: dict) -> dict:
            page = params.page(args)
            return paginated(*metrics.prices(instrument_id, page, **args), page)
        return cached_query(PRICES_ARGS, build)


@ns.route("/metrics/<int:instrument_id>/candles")
class Candles(Resource):
    @ns.doc(params={**params.doc_params(CANDLES_ARGS), **ID_DOC})
    @ns.response(200, "The instrument and its OHLCV candles over the range, oldest first", CANDLES_RESPONSE)
    @responds(ns, 400, 404)
    def get(self, instrument_id: int) -> Response:
        """One instrument's OHLCV candles for a chart: a range back from its newest bar, in at most `points`
        candles (downsampled in the database: first open, highest high, lowest low, last close, summed volume)."""
        return cached_query(CANDLES_ARGS, lambda args: envelope(candles.candles(
            instrument_id, interval=args.get("interval"), period=args["range"], points=args["points"])))
