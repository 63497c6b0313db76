"""Every answer is JSON in the envelope: unknown routes, wrong methods, crashes, docs and probes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from financial.api.swagger import render, served_spec
from financial.services import stocks

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", ["/nope", "/api/nope", "/api/financial_data/extra", "/api"])
def test_unknown_routes_are_404_in_the_envelope(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert response.get_json() == {"data": None, "info": {"error": f"not found: {path}"}}


@pytest.mark.parametrize("method", ["post", "put", "delete", "patch"])
def test_wrong_methods_are_405_naming_the_allowed_ones(client, method):
    response = getattr(client, method)("/api/statistics")
    assert response.status_code == 405
    assert response.get_json() == {"data": None, "info": {
        "error": f"method {method.upper()} not allowed on /api/statistics; allowed: GET"}}
    assert "GET" in response.headers["Allow"]


def test_a_crash_is_a_500_without_details(client, monkeypatch, caplog):
    def explode(**kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(stocks, "statistics", explode)
    response = client.get("/api/statistics?symbol=IBM&start_date=2024-01-01&end_date=2024-01-02")
    assert response.status_code == 500
    text = response.get_data(as_text=True)
    assert json.loads(text) == {"data": None, "info": {"error": "internal error; it has been logged"}}
    assert "secret internal detail" not in text and "Traceback" not in text
    assert "secret internal detail" in caplog.text  # but the operator sees it


def test_probes(client):
    assert client.get("/healthz").get_json() == {"data": {"status": "ok"}, "info": {"error": ""}}
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"data": {"database": "ok", "cache": "ok"}, "info": {"error": ""}}


def test_every_response_carries_a_request_id(client):
    assert len(client.get("/healthz").headers["X-Request-ID"]) == 32
    assert client.get("/nope", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"


def test_swagger_ui_and_spec_are_served(client):
    docs = client.get("/docs")
    assert docs.status_code == 200 and b"swagger" in docs.data.lower()
    spec = client.get("/swagger.json").get_json()
    assert spec["swagger"] == "2.0"
    statistics = spec["paths"]["/api/statistics"]["get"]
    assert {p["name"] for p in statistics["parameters"]} == {"start_date", "end_date", "symbol"}
    assert all(p["required"] for p in statistics["parameters"])
    assert set(statistics["responses"]) >= {"200", "400", "404", "503"}
    limit = next(p for p in spec["paths"]["/api/financial_data"]["get"]["parameters"] if p["name"] == "limit")
    assert (limit["default"], limit["minimum"], limit["maximum"]) == (5, 1, 1000)


def test_the_exported_spec_is_the_served_spec(app):
    """conf/api.swagger.json is what `make swagger` (flask export-swagger) writes; it must stay current."""
    exported = (ROOT / "conf" / "api.swagger.json").read_text()
    assert exported == render(served_spec(app)), "conf/api.swagger.json is stale: run `make swagger`"


def test_the_export_command_writes_the_served_spec(app, runner, tmp_path, client):
    target = tmp_path / "spec.json"
    result = runner.invoke(args=["export-swagger", "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert json.loads(target.read_text()) == client.get("/swagger.json").get_json()
