"""Operations endpoints: liveness and readiness probes."""
from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import Response
from flask_restx import Resource, fields

from financial.api.envelope import envelope, envelope_model, error_response, json_response, namespace, responds
from financial.extensions import app_state, db_session

log = logging.getLogger(__name__)
ns = namespace("ops", "Health probes for load balancers and orchestrators", path="/")

HEALTH = envelope_model(ns, "Health", fields.Nested(ns.model("HealthStatus", {
    "status": fields.String(example="ok"),
})))
READINESS = envelope_model(ns, "Readiness", fields.Nested(ns.model("ReadinessStatus", {
    "database": fields.String(example="ok"),
    "cache": fields.String(example="ok"),
})))


@ns.route("/healthz")
class Health(Resource):
    @ns.response(200, "The process is alive", HEALTH)
    def get(self) -> Response:
        """Liveness: answers as long as the process serves requests."""
        return json_response(envelope({"status": "ok"}))


@ns.route("/readyz")
class Ready(Resource):
    @ns.response(200, "Database and cache reachable", READINESS)
    @responds(ns)
    def get(self) -> Response:
        """Readiness: the database and the cache both answer."""
        problems = []
        try:
            db_session().execute(sa.text("SELECT 1"))
        except Exception as exc:  # any failure means not ready; the reason goes to the log
            log.warning("readiness: database check failed: %s", type(exc).__name__)
            problems.append("database unavailable")
        try:
            app_state().cache.ping()
        except Exception as exc:
            log.warning("readiness: cache check failed: %s", type(exc).__name__)
            problems.append("cache unavailable")
        if problems:
            return error_response(503, "; ".join(problems), {"Retry-After": "5"})
        return json_response(envelope({"database": "ok", "cache": "ok"}))
