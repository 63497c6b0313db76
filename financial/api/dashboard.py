"""System D's dashboard: `/api/dashboard`."""
from __future__ import annotations

from flask import Response
from flask_restx import Resource, fields
from webargs import fields as args_fields, validate

import lib.symbols
from financial.api import params
from financial.api.envelope import cached_query, envelope_model, namespace, nullable, paginated, responds
from financial.errors import BadRequest
from financial.services import dashboard

ns = namespace("dashboard", "Daily price changes of coins (and any instrument with daily bars)", path="/api")

MAX_SYMBOLS = 200
# What `symbols_of` accepts: `all` or 1 to MAX_SYMBOLS symbols, comma-separated, no element empty.
_SYMBOL = lib.symbols.PATTERN.strip("^$")
ID_PATTERN = rf"^([Aa][Ll][Ll]|{_SYMBOL}(,{_SYMBOL}){{0,{MAX_SYMBOLS - 1}}})$"

ENTRY = ns.model("DashboardEntry", {
    "crypto": fields.String(example="Bitcoin", description="Name; the symbol when the instrument has no name"),
    "symbol": fields.String(example="BTC"),
    "price": nullable(fields.Float(example=34235.19345,
                                   description="Close of the last daily bar on or before the date; null without one")),
    "24h": nullable(fields.Float(example=-1.7612, description="Percent change against the last close on or before "
                                                              "the date minus 1 day; null without one")),
    "7d": nullable(fields.Float(example=4.0931, description="Same, against the date minus 7 days")),
    "1m": nullable(fields.Float(example=-12.50237, description="Same, against the date minus 30 days")),
    "24h-volume": nullable(fields.Float(example=21518790458.71, description="Volume of the last daily bar")),
    "market-cap": nullable(fields.Float(example=642075664385.48,
                                        description="Market capitalization; null when unknown")),
})
DASHBOARD = envelope_model(ns, "DashboardResponse", fields.List(fields.Nested(ENTRY)), paginated=True)

DASHBOARD_ARGS = params.schema({
    "id": args_fields.String(load_default="all",
                             validate=validate.Length(min=1, max=4000, error="must have 1 to 4000 characters"),
                             metadata={"description": f"`all`, or a comma-separated list of 1 to {MAX_SYMBOLS} "
                                                      "symbols (case-insensitive), e.g. btc,eth",
                                       "pattern": ID_PATTERN, "minLength": 1, "maxLength": 4000}),
    "date": params.date("YYYY-MM-DD; default: the latest date with data"),
    "order_by": params.choice("Column to sort by (nulls always last)", list(dashboard.ORDER_BY), default="market-cap"),
    "order_type": params.choice("Sort direction", ["asc", "desc"], default="desc"),
    **params.paging("Entries per page", default=1000, high=1000),
})


def symbols_of(text: str) -> list[str] | None:
    """None for `all`, else the listed symbols, upper-case, each once, in the order given."""
    if text.strip().lower() == "all":
        return None
    for position, item in enumerate(text.split(","), 1):
        if not item.strip():
            raise BadRequest(f"id: element {position} of the list is empty (got {params.quoted(text)})")
    try:
        symbols = lib.symbols.parse_symbols(text)
    except lib.symbols.BadSymbol as exc:
        raise BadRequest(f"id: {params.quoted(exc.raw)} is not a valid symbol") from None
    if not symbols:
        raise BadRequest(f"id: give 'all' or a comma-separated list of symbols (got {params.quoted(text)})")
    if len(symbols) > MAX_SYMBOLS:
        raise BadRequest(f"id: at most {MAX_SYMBOLS} symbols (got {len(symbols)})")
    return symbols


@ns.route("/dashboard")
class Dashboard(Resource):
    @ns.doc(params=params.doc_params(DASHBOARD_ARGS))
    @ns.response(200, "One entry per instrument, sorted", DASHBOARD)
    @responds(ns, 400, 404)
    def get(self) -> Response:
        """Price, 24h / 7d / 1m change, volume and market cap of each coin on a date, sorted by any column."""
        return cached_query(DASHBOARD_ARGS, self.build)

    @staticmethod
    def build(args: dict) -> dict:
        page = params.page(args)
        entries, count = dashboard.dashboard(page, symbols=symbols_of(args["id"]), day=args.get("date"),
                                             order_by=args["order_by"], descending=args["order_type"] == "desc")
        return paginated(entries, count, page)
