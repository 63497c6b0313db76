"""System A's endpoints: `/api/financial_data` and `/api/statistics`."""
from __future__ import annotations

from flask import Response
from flask_restx import Resource, fields

from financial.api import params
from financial.api.envelope import cached_query, envelope, envelope_model, namespace, paginated, responds
from financial.errors import BadRequest
from financial.services import stocks

ns = namespace("stocks", "Daily stock prices and their statistics", path="/api")

RECORD = ns.model("FinancialRecord", {
    "symbol": fields.String(example="IBM"),
    "date": fields.String(example="2023-01-05", description="Trading date, YYYY-MM-DD"),
    "open_price": fields.String(example="153.08", description="Two decimals, as a string"),
    "close_price": fields.String(example="154.52", description="Two decimals, as a string"),
    "volume": fields.String(example="62199013", description="Shares traded, as a string"),
})
RECORDS = envelope_model(ns, "FinancialDataResponse", fields.List(fields.Nested(RECORD)), paginated=True)
STATISTICS = ns.model("Statistics", {
    "start_date": fields.String(example="2023-01-01"),
    "end_date": fields.String(example="2023-01-14"),
    "symbol": fields.String(example="IBM"),
    "average_daily_open_price": fields.Float(example=153.42, description="Mean daily open, 2 decimals"),
    "average_daily_close_price": fields.Float(example=153.91, description="Mean daily close, 2 decimals"),
    "average_daily_volume": fields.Integer(example=4210435, description="Mean daily volume, rounded"),
})
STATISTICS_RESPONSE = envelope_model(ns, "StatisticsResponse", fields.Nested(STATISTICS))

FINANCIAL_DATA_ARGS = params.schema({
    "start_date": params.date("First date included, YYYY-MM-DD"),
    "end_date": params.date("Last date included, YYYY-MM-DD; before start_date: 400"),
    "symbol": params.symbol("Stock symbol, e.g. IBM (case-insensitive)"),
    **params.paging("Records per page", default=5, high=1000),
})
STATISTICS_ARGS = params.schema({
    "start_date": params.date("First date included, YYYY-MM-DD", required=True),
    "end_date": params.date("Last date included, YYYY-MM-DD; before start_date: 400", required=True),
    "symbol": params.symbol("Stock symbol, e.g. IBM (case-insensitive)", required=True),
})


def _checked(args: dict) -> dict:
    start, end = args.get("start_date"), args.get("end_date")
    if start and end and end < start:
        raise BadRequest(f"end_date ({end}) is before start_date ({start})")
    if args.get("symbol"):
        args["symbol"] = args["symbol"].upper()
    return args


@ns.route("/financial_data")
class FinancialData(Resource):
    @ns.doc(params=params.doc_params(FINANCIAL_DATA_ARGS))
    @ns.response(200, "Daily records, by date then symbol", RECORDS)
    @responds(ns, 400)
    def get(self) -> Response:
        """Daily open, close and volume of stocks, filtered and paginated."""
        return cached_query(FINANCIAL_DATA_ARGS, self.build)

    @staticmethod
    def build(args: dict) -> dict:
        page = params.page(args)
        return paginated(*stocks.financial_data(page, **_checked(args)), page)


@ns.route("/statistics")
class Statistics(Resource):
    @ns.doc(params=params.doc_params(STATISTICS_ARGS))
    @ns.response(200, "Means over the range", STATISTICS_RESPONSE)
    @responds(ns, 400, 404)
    def get(self) -> Response:
        """Average daily open, close and volume of one stock over a date range."""
        return cached_query(STATISTICS_ARGS, lambda args: envelope(stocks.statistics(**_checked(args))))
