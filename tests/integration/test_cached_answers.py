"""Cached answers served before Flask are the very answers Flask gave: same status, body and headers
(the request id aside), CORS and logging included; private paths and other methods never take that path."""
from __future__ import annotations

import logging

import pytest

from financial import create_app, ingest
from financial.edge import response_cache
from financial.extensions import app_state
from financial.ingest.sources import demo
from tests.conftest import base_settings, empty_tables
from tests.seed import sign_in

PUBLIC = ["/api/statistics?symbol=IBM&start_date=2020-01-01&end_date=2099-12-31", "/api/financial_data?limit=3",
          "/api/metrics", "/api/metrics?window=7d&rank_by=volatility", "/api/dashboard?order_by=24h",
          "/api/search?name=bit"]


@pytest.fixture
def loaded(app):
    with app.app_context():
        assert ingest.run(demo.demo_tasks()).ok
    return app


def served_by_flask(monkeypatch) -> list[str]:
    """Record which requests reach the Flask app behind the fast path."""
    seen = []
    original = response_cache.CachedAnswers.__call__

    def spy(self, environ, start_response):
        inner = self.wsgi_app

        def flask(environ, start_response):
            seen.append(environ["PATH_INFO"])
            return inner(environ, start_response)
        self.wsgi_app = flask
        try:
            return original(self, environ, start_response)
        finally:
            self.wsgi_app = inner
    monkeypatch.setattr(response_cache.CachedAnswers, "__call__", spy)
    return seen


def comparable(response) -> tuple:
    headers = sorted((name, value) for name, value in response.headers.items() if name != "X-Request-ID")
    return response.status_code, response.data, headers


@pytest.mark.parametrize("url", PUBLIC)
def test_a_hit_is_the_same_answer_without_flask(loaded, client, monkeypatch, url):
    seen = served_by_flask(monkeypatch)
    first = client.get(url, headers={"X-Request-ID": "first"})
    second = client.get(url, headers={"X-Request-ID": "second"})
    assert first.status_code == 200
    assert seen == [url.split("?")[0]]  # computed once by Flask, then answered from the cache
    assert comparable(second) == comparable(first)
    assert (first.headers["X-Request-ID"], second.headers["X-Request-ID"]) == ("first", "second")
    assert second.headers["Content-Length"] == str(len(second.data))


def test_a_new_generation_sends_the_next_request_back_to_flask(loaded, client, monkeypatch):
    seen = served_by_flask(monkeypatch)
    client.get(PUBLIC[0])
    client.get(PUBLIC[0])
    with loaded.app_context():
        assert ingest.run(demo.demo_tasks()[:1]).ok  # an ingest: a new data generation
    client.get(PUBLIC[0])
    assert len(seen) == 2


def test_private_paths_and_other_methods_always_reach_flask(loaded, client, monkeypatch, fast_hashing):
    headers = sign_in(client, "ann@example.com")
    seen = served_by_flask(monkeypatch)
    with loaded.app_context():  # even an entry planted under a private path's key is never served
        app_state().cache.get_or_compute(response_cache.key("/api/me/markets", ""), lambda: b'{"data":"planted"}')
    assert client.get("/api/me/markets", headers=headers).get_json()["data"] == []
    assert client.get("/api/me/markets").status_code == 401
    client.get(PUBLIC[1])
    client.head(PUBLIC[1])
    assert seen == ["/api/me/markets", "/api/me/markets", "/api/financial_data", "/api/financial_data"]


def test_cors_and_the_log_line_on_a_hit(sqlite_url, caplog):
    app = create_app(base_settings(database_url=sqlite_url, cors_origins=("https://app.example.com",),
                                   log_level="INFO"), process="test")
    empty_tables(app)
    with app.app_context():
        assert ingest.run(demo.demo_tasks()).ok
    client = app.test_client()
    client.get("/api/metrics")
    with caplog.at_level(logging.INFO, logger="financial.requests"):
        hit = client.get("/api/metrics", headers={"Origin": "https://app.example.com", "X-Request-ID": "abc"})
    assert hit.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert hit.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    record = [r for r in caplog.records if r.name == "financial.requests"][-1]
    assert record.getMessage().startswith("GET /api/metrics 200 ")
    assert (record.request_id, record.status) == ("abc", 200)


def test_a_miss_costs_one_lookup_then_one_store(loaded, client, monkeypatch):
    """The layer hands what it found to the view: the cache is read once per request, hit or miss."""
    with loaded.app_context():
        backend = app_state().cache.backend
    calls = []
    for name in ("get", "get_many", "set"):
        original = getattr(backend, name)
        monkeypatch.setattr(backend, name, lambda *args, name=name, original=original, **kwargs: (
            calls.append(name), original(*args, **kwargs))[1])
    client.get(PUBLIC[0])  # a miss
    reads = [call for call in calls if call != "set"]
    assert len(reads) == 1 and calls.count("set") == 1
    calls.clear()
    assert client.get(PUBLIC[0]).status_code == 200  # a hit
    assert len(calls) == 1


# -- conditional requests -------------------------------------------------------------------------------

@pytest.mark.parametrize("url", PUBLIC)
def test_a_known_etag_is_a_304_from_the_layer_without_flask(loaded, client, monkeypatch, caplog, url):
    seen = served_by_flask(monkeypatch)
    first = client.get(url)
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "no-cache" and etag.startswith('"')
    with caplog.at_level(logging.INFO, logger="financial.requests"):
        again = client.get(url, headers={"If-None-Match": etag, "X-Request-ID": "again"})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == etag and again.headers["X-Request-ID"] == "again"
    assert again.headers["Cache-Control"] == "no-cache" and "Content-Type" not in again.headers
    assert again.headers["Content-Security-Policy"] == first.headers["Content-Security-Policy"]
    assert seen == [url.split("?")[0]]  # only the first request reached Flask
    assert [r.status for r in caplog.records if r.name == "financial.requests"] == [304]
    # a hit without the tag is the full answer, with the same tag; a list with the tag in it or W/ matches too
    assert comparable(client.get(url))[:2] == comparable(first)[:2]
    assert client.get(url).headers["ETag"] == etag
    for header in (f'"other", {etag}', f"W/{etag}", "*"):
        assert client.get(url, headers={"If-None-Match": header}).status_code == 304


def test_after_an_ingest_the_old_etag_gets_the_new_answer(loaded, client):
    url = PUBLIC[2]
    first = client.get(url)
    assert client.get(url, headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    with loaded.app_context():
        assert ingest.run(demo.demo_tasks()[:1]).ok  # an ingest: a new data generation
    fresh = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert fresh.status_code == 200 and fresh.get_json()["data"]
    assert fresh.headers["ETag"] != first.headers["ETag"]
    assert client.get(url, headers={"If-None-Match": fresh.headers["ETag"]}).status_code == 304


def test_the_full_path_answers_conditionals_too(loaded, client, monkeypatch):
    """Where the layer cannot peek (here: it never finds anything), the view sets the ETag and answers 304."""
    with loaded.app_context():
        cache = app_state().cache
    monkeypatch.setattr(cache, "peek", lambda key: None)
    first = client.get(PUBLIC[0])
    assert first.status_code == 200 and first.headers["ETag"]
    again = client.get(PUBLIC[0], headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == first.headers["ETag"]


def test_errors_and_private_answers_carry_no_etag(loaded, client, fast_hashing):
    assert "ETag" not in client.get("/api/metrics/999999").headers
    assert "ETag" not in client.get("/api/metrics?window=0h").headers
    headers = sign_in(client, "ann@example.com")
    private = client.get("/api/me/markets", headers=headers)
    assert "ETag" not in private.headers and private.headers["Cache-Control"] == "no-store"


def test_the_etag_is_the_generation_and_the_key():
    tag = response_cache.etag_of("g1", "/api/metrics?")
    assert tag == response_cache.etag_of("g1", "/api/metrics?")
    others = {response_cache.etag_of("g2", "/api/metrics?"), response_cache.etag_of("g1", "/api/metrics?x")}
    assert len({tag, *others}) == 3
    assert response_cache.etag_matches(f" W/{tag} ", tag) and not response_cache.etag_matches(None, tag)
    assert not response_cache.etag_matches('"nope"', tag)
