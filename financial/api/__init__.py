"""The Flask-RESTX API: one namespace per resource group, every answer in the envelope."""
from __future__ import annotations

from flask import Flask, Response
from flask_restx import Api

from financial.api import auth, dashboard, me, metrics, ops, search, stocks
from financial.api.envelope import handle_exception

NAMESPACES = (stocks.ns, metrics.ns, dashboard.ns, search.ns, auth.ns, me.ns, ops.ns)


class EnvelopeApi(Api):
    """An Api whose errors, raised in any resource, keep the envelope."""

    def handle_error(self, e: Exception) -> Response:
        return handle_exception(e)


def create_api(app: Flask) -> Api:
    api = EnvelopeApi(
        app,
        version="1.0",
        title="Market data tracker",
        description="Stock and crypto prices, statistics, rankings, dashboard, watchlists and alerts. "
                    "Every response is JSON: {\"data\": ..., \"info\": {\"error\": \"\"}}.",
        doc="/docs",
        default_mediatype="application/json",
        authorizations=auth.AUTHORIZATIONS,
    )
    for ns in NAMESPACES:
        api.add_namespace(ns)
    return api
