"""System D's search: `/api/search`."""
from __future__ import annotations

from flask import Response
from flask_restx import Resource, fields
from webargs import fields as args_fields, validate

from financial.api import params
from financial.api.envelope import cached_query, envelope_model, namespace, nullable, paginated, responds
from financial.errors import BadRequest
from financial.services import search

ns = namespace("search", "Find instruments by name or symbol", path="/api")

MAX_NAME = 100
# A character that str.strip() keeps (every other is Unicode whitespace): a name must hold one.
NOT_SPACE = r"[^\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"

MATCH = ns.model("SearchMatch", {
    "name": fields.String(example="Bitcoin", description="Name; the symbol when the instrument has no name"),
    "symbol": fields.String(example="BTC"),
    "exchange": nullable(fields.String(example="kraken",
                                       description="The exchange of a market; null for stocks and coins")),
    "asset_class": fields.String(example="crypto", enum=["crypto", "stock"]),
})
SEARCH = envelope_model(ns, "SearchResponse", fields.List(fields.Nested(MATCH)), paginated=True)

SEARCH_ARGS = params.schema({
    "name": args_fields.String(required=True, error_messages={"required": "is required"},
                               validate=validate.Length(max=MAX_NAME, error=f"must have at most {MAX_NAME} characters"),
                               metadata={"description": "Text to find in names and symbols (case-insensitive); "
                                                        "spaces around it are ignored, so it holds another character",
                                         "minLength": 1, "maxLength": MAX_NAME, "pattern": NOT_SPACE}),
    **params.paging("Matches per page", default=20, high=100),
})


@ns.route("/search")
class Search(Resource):
    @ns.doc(params=params.doc_params(SEARCH_ARGS))
    @ns.response(200, "Exact matches first, then prefix matches, then the others", SEARCH)
    @responds(ns, 400)
    def get(self) -> Response:
        """Instruments whose name or symbol contains the text: exact matches, then prefixes, then the rest."""
        return cached_query(SEARCH_ARGS, self.build)

    @staticmethod
    def build(args: dict) -> dict:
        name = args["name"].strip()
        if not name:
            raise BadRequest("name: must not be empty")
        page = params.page(args)
        return paginated(*search.search(page, name=name), page)
