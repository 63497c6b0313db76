"""Fuzzing every operation of the served OpenAPI spec (schemathesis): no 5xx, no answer outside the spec
(status, content type, body schema), and the envelope on every error. Bounded for CI: FUZZ_EXAMPLES cases
per operation (default 25), on both stacks, with the demo data loaded so that queries find something, and
twice: anonymous, and signed in (so /api/me is fuzzed past its token check), with watchlist markets
validated against a fake Cryptowatch server.

Two schemathesis checks are replaced: "a schema-valid request must be accepted" is left out, since some
rules cannot be said in Swagger 2.0 (dates a database can store, a symbol list's length in symbols), so
the service rightly answers some schema-valid requests with 400 (still checked to be documented 400s in
the envelope); and the content-type check, which wants `application/json` on a bodiless 204 too, gives
way to `json_bodies`: every answer with a body is JSON.
"""
from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import content_type_conformance, positive_data_acceptance

from financial import ingest
from financial.ingest.sources import demo
from tests.fakes.cryptowatch import FakeCryptowatch
from tests.fakes.server import FakeServer
from tests.seed import sign_in

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))


@schemathesis.check
def json_bodies(ctx, response, case):
    content_type = {name.lower(): values for name, values in response.headers.items()}.get("content-type")
    if response.status_code == 204:
        assert not response.content and not content_type, "a 204 with a body or a content type"
    else:
        assert content_type and content_type[0].startswith("application/json"), f"content type {content_type}"


@schemathesis.check
def envelope_on_errors(ctx, response, case):
    """Every error keeps the envelope: JSON with null data and a message naming what was wrong."""
    if response.status_code >= 400:
        body = response.json()
        assert body["data"] is None, f"error {response.status_code} with data: {body!r}"
        assert isinstance(body["info"]["error"], str) and body["info"]["error"], f"no message: {body!r}"


def test_every_operation_of_the_spec(app_factory, fast_hashing):
    with FakeServer(FakeCryptowatch()) as cryptowatch:
        app = app_factory(crypto_source="cryptowatch", cryptowatch_base_url=cryptowatch.url)
        with app.app_context():
            assert ingest.run(demo.demo_tasks()).ok
        schema = schemathesis.openapi.from_wsgi("/swagger.json", app)
        failures, operations = [], 0
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            # Signed in afresh for each operation: fuzzing logout revokes the token it is given.
            for headers in ({}, sign_in(app.test_client(), f"fuzz{operations}@example.com")):

                @given(case=operation.as_strategy())
                @settings(max_examples=EXAMPLES, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck))
                def fuzz(case):
                    case.call_and_validate(headers={**(case.headers or {}), **headers},
                                           additional_checks=[envelope_on_errors, json_bodies],
                                           excluded_checks=[positive_data_acceptance, content_type_conformance])

                try:
                    fuzz()
                except Exception as exc:  # collect every operation's findings before failing
                    who = "signed in" if headers else "anonymous"
                    failures.append(f"{operation.label} ({who}):\n{exc}")
    assert operations >= 15
    assert not failures, "\n\n".join(failures)
