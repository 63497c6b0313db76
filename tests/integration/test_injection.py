"""Injection attempts in every query parameter of every GET operation in the served spec, and oversized
parameters: each answer is a 2xx or a 4xx in the envelope (never a 5xx, never a database error text), and
afterwards every table still holds exactly what it held."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from financial import ingest
from financial.ingest.sources import demo
from financial.extensions import db

PAYLOADS = [
    "' OR '1'='1",
    "IBM'; DROP TABLE bars; --",
    "1 UNION SELECT email, password_hash FROM users --",
    "\" OR \"\" = \"",
    "%' OR 1=1 --",
    "IBM\x00",
    "${jndi:ldap://127.0.0.1/a}",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "1e309",
    "-1",
    "９",  # a full-width digit
    "x" * 5000,
]
# What a leaked database error or traceback would contain (a 400 may quote the offending value itself).
LEAKS = ("Traceback", "sqlalchemy", "pymysql", "sqlite3", "OperationalError", "ProgrammingError",
         "error in your SQL syntax", 'File "/')


def table_counts(app) -> dict[str, int]:
    with app.app_context():
        return {table.name: db.session.scalar(sa.select(sa.func.count()).select_from(table))
                for table in db.metadata.sorted_tables}


def get_operations(client) -> list[tuple[str, list[str]]]:
    spec = client.get("/swagger.json").get_json()
    operations = []
    for path, methods in spec["paths"].items():
        if "get" in methods and "{" not in path:
            names = [p["name"] for p in methods["get"].get("parameters", []) if p.get("in") == "query"]
            if names:
                operations.append((path, names))
    return operations


def test_injection_attempts_in_every_query_parameter(app, client):
    with app.app_context():
        assert ingest.run(demo.demo_tasks()).ok
    before = table_counts(app)
    operations = get_operations(client)
    assert {path for path, _ in operations} >= {"/api/financial_data", "/api/statistics", "/api/metrics",
                                                "/api/dashboard", "/api/search"}
    tried = 0
    for path, names in operations:
        for name in names:
            for payload in PAYLOADS:
                response = client.get(path, query_string={name: payload})
                tried += 1
                text = response.get_data(as_text=True)
                assert response.status_code < 500, (path, name, payload, text[:300])
                assert response.headers["Content-Type"] == "application/json", (path, name)
                body = response.get_json()
                if response.status_code >= 400:
                    assert body["data"] is None and body["info"]["error"], (path, name, payload)
                assert not any(leak in text for leak in LEAKS), (path, name, payload, text[:300])
    assert tried > 100
    assert table_counts(app) == before


@pytest.mark.parametrize("query", ["symbol=" + "A" * 100_000, "x" * 100_000 + "=1", "name=" + "%25" * 20_000])
def test_oversized_parameters_are_400_in_the_envelope(client, query):
    path = "/api/search" if query.startswith("name") else "/api/financial_data"
    response = client.get(f"{path}?{query}")
    assert response.status_code == 400
    body = response.get_json()
    assert body["data"] is None and len(body["info"]["error"]) < 500  # the message does not echo it all
