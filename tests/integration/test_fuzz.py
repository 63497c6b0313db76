"""Fuzzing every operation of the served OpenAPI spec with every schemathesis check: no 5xx, no answer
outside the spec (status, content type, headers, body schema), every schema-valid request accepted, every
schema-violating one refused, no operation that ignores its token, and the envelope on every error.

Bounded for CI: FUZZ_EXAMPLES cases (default 75) per operation, generation mode (data that fits the spec,
data that breaks it) and caller (anonymous; signed in, so /api/me is fuzzed past its token check): about
5,100 cases per stack, on both stacks, with the demo data loaded so that queries find something, and
watchlist markets validated against a fake Cryptowatch server.

Two rules cannot be said in Swagger 2.0, and the test says them instead:
- a range whose end_date is before its start_date is a 400 (a rule across two parameters), so such
  ranges are not generated as schema-valid requests;
- a media type belongs to an operation, not to one of its answers, so the content-type check would want
  `application/json` on the bodiless 204 of an operation that answers JSON otherwise: a 204 is checked
  to carry no body and no content type, every other answer by schemathesis's own check.
"""
from __future__ import annotations

import os
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.specs.openapi.checks import content_type_conformance

from financial import ingest
from financial.ingest.sources import demo
from tests.fakes.cryptowatch import FakeCryptowatch
from tests.fakes.server import FakeServer
from tests.seed import sign_in

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "75"))
# The same cases on every run, so that CI is repeatable; FUZZ_RANDOM=1 explores new ones.
DERANDOMIZE = os.environ.get("FUZZ_RANDOM") != "1"


def media_types(ctx, response, case):
    """schemathesis's content-type check, but a 204 has neither body nor content type."""
    if response.status_code == 204:
        content_type = {name.lower(): values for name, values in response.headers.items()}.get("content-type")
        assert not response.content and not content_type, "a 204 with a body or a content type"
        return None
    return content_type_conformance(ctx, response, case)


@schemathesis.check
def envelope_on_errors(ctx, response, case):
    """Every error keeps the envelope: JSON with null data and a message naming what was wrong."""
    if response.status_code >= 400:
        body = response.json()
        assert body["data"] is None, f"error {response.status_code} with data: {body!r}"
        assert isinstance(body["info"]["error"], str) and body["info"]["error"], f"no message: {body!r}"


def every_check() -> list:
    load_all_checks()
    return [media_types if check is content_type_conformance else check for check in CHECKS.get_all()]


def ordered_range(ctx, query) -> bool:
    """Dates are generated independently; an inverted range is a 400 Swagger cannot announce."""
    start, end = (query or {}).get("start_date"), (query or {}).get("end_date")
    return not (isinstance(start, str) and isinstance(end, str) and end < start)


def with_token(case, token: dict[str, str]) -> dict[str, str]:
    """The case's headers, its Authorization replaced by a valid token, unless the case leaves it out on
    purpose (a request without a token, which must be refused)."""
    headers = dict(case.headers or {})
    if token and "Authorization" in headers:
        headers.update(token)
    return headers


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_every_operation_of_the_spec(app_factory, fast_hashing, mode):
    checks = every_check() + [envelope_on_errors]
    with FakeServer(FakeCryptowatch()) as cryptowatch:
        app = app_factory(crypto_source="cryptowatch", cryptowatch_base_url=cryptowatch.url)
        with app.app_context():
            assert ingest.run(demo.demo_tasks()).ok
        schema = schemathesis.openapi.from_wsgi("/swagger.json", app)
        schema.hook("filter_query")(ordered_range)
        failures, operations, cases, started = [], 0, 0, time.monotonic()
        statuses: dict[tuple[str, bool], set[int]] = {}
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            if mode is GenerationMode.NEGATIVE and not has_inputs(operation):
                continue  # nothing to break
            # Signed in afresh for each operation: fuzzing logout revokes the token it is given.
            for token in ({}, sign_in(app.test_client(), f"fuzz{operations}-{mode}@example.com")):

                @given(case=operation.as_strategy(mode))
                @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=DERANDOMIZE,
                          suppress_health_check=list(HealthCheck))
                def fuzz(case):
                    nonlocal cases
                    cases += 1
                    response = case.call_and_validate(headers=with_token(case, token), checks=checks)
                    statuses.setdefault((operation.label, bool(token)), set()).add(response.status_code)

                try:
                    fuzz()
                except (Exception, BaseExceptionGroup) as exc:  # collect every operation's findings first
                    who = "signed in" if token else "anonymous"
                    failures.append(f"{operation.label} ({who}):\n{exc}")
        print(f"\nfuzz, {mode} mode: {cases} cases over {operations} operations x 2 callers in "
              f"{time.monotonic() - started:.1f} s")
    assert operations >= 15
    assert not failures, "\n\n".join(failures)
    if mode is GenerationMode.POSITIVE:  # the fuzzing got past the token check, and found data
        assert 200 in statuses[("GET /api/me/markets", True)] and 200 in statuses[("GET /api/me/alerts", True)]
        assert statuses[("GET /api/me/markets", False)] == {401}
        assert 200 in statuses[("GET /api/dashboard", False)]


def has_inputs(operation) -> bool:
    """Whether a request to the operation has anything to get wrong: parameters, a body or a token."""
    raw = operation.definition.raw
    return bool(raw.get("parameters") or raw.get("security") or operation.path_parameters)
