"""Security headers on every answer, CORS only for configured origins, request ids safe to log."""
from __future__ import annotations

import pytest

from financial import create_app
from tests.conftest import base_settings

API_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
               "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'"}


@pytest.mark.parametrize("path", ["/healthz", "/api/financial_data", "/api/nope", "/api/statistics"])
def test_every_api_answer_carries_the_security_headers(client, path):
    response = client.get(path)
    for name, value in API_HEADERS.items():
        assert response.headers[name] == value, (path, name)
    assert "Strict-Transport-Security" not in response.headers  # development: plain HTTP on localhost
    assert "Access-Control-Allow-Origin" not in response.headers  # no CORS unless configured


def test_the_docs_page_may_run_its_own_scripts_only(client):
    csp = client.get("/docs").headers["Content-Security-Policy"]
    assert "script-src 'self' 'unsafe-inline'" in csp and "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp


def test_production_adds_hsts(sqlite_url):
    app = create_app(base_settings(database_url=sqlite_url, app_env="production"), process="test")
    assert app.test_client().get("/healthz").headers["Strict-Transport-Security"].startswith("max-age=")


def cors_client(sqlite_url, origins):
    return create_app(base_settings(database_url=sqlite_url, cors_origins=origins), process="test").test_client()


def test_cors_answers_configured_origins_only(sqlite_url):
    client = cors_client(sqlite_url, ("https://app.example.com",))
    allowed = client.get("/healthz", headers={"Origin": "https://app.example.com"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "Origin" in allowed.headers["Vary"]
    other = client.get("/healthz", headers={"Origin": "https://evil.example.net"})
    assert "Access-Control-Allow-Origin" not in other.headers
    preflight = client.options("/api/statistics", headers={"Origin": "https://app.example.com",
                                                           "Access-Control-Request-Method": "GET"})
    assert preflight.status_code == 204 and "Content-Type" not in preflight.headers and not preflight.data
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in preflight.headers


@pytest.mark.parametrize("path", ["/healthz", "/api/dashboard", "/api/statistics", "/api/nowhere"])
def test_answers_vary_on_the_origin_whenever_cors_is_on(sqlite_url, path):
    """An answer to a refused or absent Origin is as origin-dependent as an allowed one: a shared cache
    keyed without the Origin would hand one's copy to the other."""
    client = cors_client(sqlite_url, ("https://app.example.com",))
    for headers in ({"Origin": "https://app.example.com"}, {"Origin": "https://evil.example.net"}, {}):
        for _ in range(2):  # the second answer may come from the response cache
            response = client.get(path, headers=headers)
            assert [v.strip() for v in ",".join(response.headers.getlist("Vary")).split(",")].count("Origin") == 1
    assert "Vary" not in cors_client(sqlite_url, ()).get("/healthz", headers={"Origin": "https://a.example"}).headers


def test_cors_wildcard(sqlite_url):
    response = cors_client(sqlite_url, ("*",)).get("/healthz", headers={"Origin": "https://anywhere.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("offered, kept", [("abc-123.x:y", True), ("a" * 65, False), ("bad id", False),
                                           ("x\u2028y", False), ("<script>", False)])
def test_request_ids_are_kept_only_when_plain(client, offered, kept):
    returned = client.get("/healthz", headers={"X-Request-ID": offered}).headers["X-Request-ID"]
    assert (returned == offered) is kept
    if not kept:
        assert len(returned) == 32 and returned.isalnum()


def test_options_answers_no_content_with_the_allowed_methods(client):
    response = client.options("/api/statistics")
    assert response.status_code == 204 and not response.data and "Content-Type" not in response.headers
    assert "GET" in response.headers["Allow"]
