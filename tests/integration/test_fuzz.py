"""Fuzzing every operation of the served OpenAPI spec (schemathesis): no 5xx, no answer outside the spec
(status, content type, body schema), and the envelope on every error. Bounded for CI: FUZZ_EXAMPLES cases
per operation (default 25), on both stacks, with the demo data loaded so that queries find something.

One schemathesis check is left out: "a schema-valid request must be accepted". Some rules cannot be said
in Swagger 2.0 (dates a database can store, a symbol list's length in symbols), so the service rightly
answers some schema-valid requests with 400; those answers are still checked to be documented 400s in
the envelope.
"""
from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from financial import demo, ingest

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))


@schemathesis.check
def envelope_on_errors(ctx, response, case):
    """Every error keeps the envelope: JSON with null data and a message naming what was wrong."""
    if response.status_code >= 400:
        body = response.json()
        assert body["data"] is None, f"error {response.status_code} with data: {body!r}"
        assert isinstance(body["info"]["error"], str) and body["info"]["error"], f"no message: {body!r}"


def test_every_operation_of_the_spec(app):
    with app.app_context():
        assert ingest.run(demo.demo_tasks()).ok
    schema = schemathesis.openapi.from_wsgi("/swagger.json", app)
    failures, operations = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def fuzz(case):
            case.call_and_validate(additional_checks=[envelope_on_errors], excluded_checks=[positive_data_acceptance])

        try:
            fuzz()
        except Exception as exc:  # collect every operation's findings before failing
            failures.append(f"{operation.verbose_name}:\n{exc}")
    assert operations >= 8
    assert not failures, "\n\n".join(failures)
