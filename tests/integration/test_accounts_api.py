"""Accounts over HTTP on both stacks: sign-up, login, bearer tokens (expired, forged, revoked, missing),
failed-login limits per account and per address (shared through Redis on the MySQL stack), the proxy
setting, bad input of every kind, and secrets kept out of logs and caches."""
from __future__ import annotations

import concurrent.futures
import datetime as dt
import hashlib
import logging
import re
import threading

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from financial import ratelimit
from financial.extensions import db
from financial.models import AuthToken, User
from financial.services import accounts
from tests.seed import PASSWORD, sign_in

pytestmark = pytest.mark.usefixtures("fast_hashing")
UTC = dt.timezone.utc
TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")


def signup(client, email, password=PASSWORD):
    return client.post("/api/auth/signup", json={"email": email, "password": password})


def login(client, email, password=PASSWORD, address="192.0.2.10", **headers):
    return client.post("/api/auth/login", json={"email": email, "password": password},
                       environ_base={"REMOTE_ADDR": address}, headers=headers)


def me(client, headers):
    return client.get("/api/me/markets", headers=headers)


def error_of(response) -> str:
    body = response.get_json()
    assert body["data"] is None and set(body) == {"data", "info"}, body
    return body["info"]["error"]


def rows(app, *columns):
    with app.app_context(), db.engine.connect() as connection:
        return connection.execute(sa.select(*columns)).all()


# -- sign-up --------------------------------------------------------------------------------------------

def test_signup_creates_an_account_with_a_lower_case_email(app, client):
    before = dt.datetime.now(UTC).replace(microsecond=0)
    response = signup(client, "  Ann.Lee+Alerts@Example.COM ")
    assert response.status_code == 201
    body = response.get_json()
    assert body["info"] == {"error": ""} and list(body["data"]) == ["id", "email", "created_at"]
    assert body["data"]["email"] == "ann.lee+alerts@example.com"
    created = dt.datetime.fromisoformat(body["data"]["created_at"].replace("Z", "+00:00"))
    assert before <= created <= dt.datetime.now(UTC)
    [(user_id, email)] = rows(app, User.id, User.email)
    assert (user_id, email) == (body["data"]["id"], "ann.lee+alerts@example.com")


@pytest.mark.parametrize("again", ["ann@example.com", "ANN@EXAMPLE.COM", " Ann@Example.com"])
def test_an_email_has_one_account_whatever_its_case(app, client, again):
    assert signup(client, "ann@example.com").status_code == 201
    response = signup(client, again, "another password")
    assert response.status_code == 409
    assert error_of(response) == "email: an account with this e-mail already exists"
    assert len(rows(app, User.id)) == 1


def test_concurrent_signups_with_one_email_make_one_account(app, monkeypatch):
    """Eight sign-ups at once; the unique constraint decides, the others get 409 (never a 500). The
    existence check is skipped so that every request reaches the INSERT."""
    monkeypatch.setattr(accounts.accounts, "user_exists", lambda session, email: False)
    barrier = threading.Barrier(8)

    def attempt(number):
        client = app.test_client()
        barrier.wait()
        return signup(client, "Race@Example.com", f"password number {number}").status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(attempt, range(8)))
    assert statuses == [201] + [409] * 7
    assert rows(app, User.email) == [("race@example.com",)]


def test_the_password_is_stored_only_as_a_salted_argon2id_hash(app, client):
    for email in ("a@example.com", "b@example.com"):
        assert signup(client, email, "same password 1").status_code == 201
    hashes = [value for (value,) in rows(app, User.password_hash)]
    assert hashes[0] != hashes[1]  # salted
    for value in hashes:
        assert value.startswith("$argon2id$") and "same password 1" not in value
        assert PasswordHasher().verify(value, "same password 1")


def test_production_hashing_cost(app, client, monkeypatch):
    monkeypatch.setattr(accounts, "HASHER", PasswordHasher())  # what the service uses outside tests
    assert signup(client, "slow@example.com").status_code == 201
    [(value,)] = rows(app, User.password_hash)
    assert value.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


BAD_SIGNUPS = [
    ({"email": "not-an-email", "password": PASSWORD}, "email: must be an e-mail address like ann@example.com"),
    ({"email": "ann@localhost", "password": PASSWORD}, "email: must be an e-mail address"),
    ({"email": "ann@exa mple.com", "password": PASSWORD}, "email: must be an e-mail address"),
    ({"email": "ann@example.com\r\nBcc: x@example.com", "password": PASSWORD}, "email: must be an e-mail address"),
    ({"email": "a" * 65 + "@example.com", "password": PASSWORD}, "email: must be an e-mail address"),
    ({"email": "a@" + "b" * 250 + ".com", "password": PASSWORD}, "email: must be at most 254 characters"),
    ({"email": "", "password": PASSWORD}, "email: must be an e-mail address"),
    ({"email": "ann@example.com", "password": "seven77"}, "password: must be at least 8 characters"),
    ({"email": "ann@example.com", "password": ""}, "password: must be at least 8 characters"),
    ({"email": "ann@example.com", "password": "p" * 129}, "password: must be at most 128 characters"),
    ({"email": "ann@example.com"}, "password: is required"),
    ({"password": PASSWORD}, "email: is required"),
    ({}, "email: is required; password: is required"),
    ({"email": 42, "password": PASSWORD}, "email: must be a string"),
    ({"email": "ann@example.com", "password": 12345678}, "password: must be a string"),
    ({"email": None, "password": PASSWORD}, "email: must be a string"),
    ({"email": ["ann@example.com"], "password": PASSWORD}, "email: must be a string"),
    ({"email": "ann@example.com", "password": PASSWORD, "admin": True}, "unknown field 'admin'"),
    ({"email": "ann@example.com", "password": "\ud800" + PASSWORD}, "password: must be valid Unicode text"),
    ({"email": "ann\udfff@example.com", "password": PASSWORD}, "email: must be valid Unicode text"),
]


@pytest.mark.parametrize("body, message", BAD_SIGNUPS)
def test_bad_signups_are_400_naming_the_field(app, client, body, message):
    response = client.post("/api/auth/signup", json=body)
    assert response.status_code == 400
    assert error_of(response).startswith(message)
    assert rows(app, User.id) == []


def test_a_password_of_exactly_8_characters_is_enough(client):
    assert signup(client, "eight@example.com", "8 chars!").status_code == 201
    assert login(client, "eight@example.com", "8 chars!").status_code == 200


@pytest.mark.parametrize("path", ["/api/auth/signup", "/api/auth/login"])
@pytest.mark.parametrize("data, content_type, message", [
    ('{"email": "ann@example.com", "password": ', "application/json", "the body is not valid JSON"),
    ("not json at all", "application/json", "the body is not valid JSON"),
    ("[1, 2]", "application/json", "the body must be a JSON object, not an array"),
    ('"text"', "application/json", "the body must be a JSON object, not a string"),
    ("null", "application/json", "the body must be a JSON object, not null"),
    ("7", "application/json", "the body must be a JSON object, not a number"),
    ("[" * 20_000 + "]" * 20_000, "application/json", "the body is not valid JSON: nested too deeply"),
    ("email=ann@example.com&password=x", "application/x-www-form-urlencoded",
     "the body must be a JSON object, sent with Content-Type: application/json"),
    ("", None, "the body must be a JSON object, sent with Content-Type: application/json"),
])
def test_bodies_that_are_not_a_json_object_are_400(client, path, data, content_type, message):
    response = client.post(path, data=data, content_type=content_type)
    assert response.status_code == 400
    assert error_of(response) == message


@pytest.mark.parametrize("path", ["/api/auth/signup", "/api/auth/login"])
def test_an_oversized_body_is_413_in_the_envelope(client, path):
    body = '{"email": "ann@example.com", "password": "' + "x" * 70_000 + '"}'
    response = client.post(path, data=body, content_type="application/json")
    assert response.status_code == 413
    assert error_of(response) == "the request body is too large; at most 65536 bytes"


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_auth_operations_are_post_only(client, method):
    response = getattr(client, method)("/api/auth/login")
    assert response.status_code == 405 and "allowed: POST" in error_of(response)


# -- login and tokens -----------------------------------------------------------------------------------

def test_login_gives_a_random_token_stored_only_as_its_digest(app, client):
    signup(client, "ann@example.com")
    started = dt.datetime.now(UTC).replace(microsecond=0)
    first, second = login(client, "Ann@Example.com"), login(client, "ann@example.com")
    assert first.status_code == second.status_code == 200
    tokens = []
    for response in (first, second):
        data = response.get_json()["data"]
        assert list(data) == ["token", "token_type", "expires_at"] and data["token_type"] == "Bearer"
        assert TOKEN.match(data["token"])
        expires = dt.datetime.fromisoformat(data["expires_at"].replace("Z", "+00:00"))
        assert started + dt.timedelta(hours=24) <= expires <= dt.datetime.now(UTC) + dt.timedelta(hours=24)
        tokens.append(data["token"])
    assert tokens[0] != tokens[1]
    stored = {value for (value,) in rows(app, AuthToken.token_hash)}
    assert stored == {hashlib.sha256(token.encode()).hexdigest() for token in tokens}
    with app.app_context(), db.engine.connect() as connection:
        for table in db.metadata.sorted_tables:
            dump = repr(connection.execute(sa.select(table)).all())
            assert not any(token in dump for token in tokens), table.name
    for token in tokens:
        assert me(client, {"Authorization": f"Bearer {token}"}).status_code == 200


def test_the_token_lifetime_is_a_setting(app_factory):
    app = app_factory(token_ttl_hours=2)
    client = app.test_client()
    signup(client, "ann@example.com")
    data = login(client, "ann@example.com").get_json()["data"]
    expires = dt.datetime.fromisoformat(data["expires_at"].replace("Z", "+00:00"))
    assert dt.timedelta(hours=1, minutes=59) < expires - dt.datetime.now(UTC) <= dt.timedelta(hours=2)


def test_wrong_credentials_get_one_answer_for_both_cases(client, monkeypatch):
    """An unknown e-mail and a wrong password: the same status, message and header, and the same work
    (one Argon2 verification each), so neither the answer nor its time says which it was."""
    signup(client, "ann@example.com")
    verified = []
    hasher = accounts.HASHER

    class Counting(PasswordHasher):
        def verify(self, hash, password):
            verified.append(hash.split("$")[3])  # the parameters part: m=...,t=...,p=...
            return hasher.verify(hash, password)

    monkeypatch.setattr(accounts, "HASHER", Counting(time_cost=hasher.time_cost, memory_cost=hasher.memory_cost,
                                                     parallelism=hasher.parallelism))
    answers = []
    for email, password in (("ann@example.com", "wrong password"), ("nobody@example.com", PASSWORD)):
        response = login(client, email, password)
        answers.append((response.status_code, error_of(response), response.headers["WWW-Authenticate"]))
    assert answers == [(401, "wrong e-mail or password", 'Bearer realm="market-data"')] * 2
    assert len(verified) == 2 and verified[0] == verified[1]


@pytest.mark.parametrize("body, message", [
    ({"email": "ann@example.com"}, "password: is required"),
    ({"email": 1, "password": "x"}, "email: must be a string"),
    ({"email": "ann@example.com", "password": "p" * 129}, "password: must be at most 128 characters"),
    ({"email": "a" * 255, "password": PASSWORD}, "email: must be at most 254 characters"),
    ({"email": "ann@example.com", "password": "\ud800" + PASSWORD}, "password: must be valid Unicode text"),
])
def test_bad_logins_are_400(client, body, message):
    response = client.post("/api/auth/login", json=body)
    assert response.status_code == 400 and error_of(response).startswith(message)


@pytest.mark.parametrize("header", [
    None,
    "",
    "Bearer",
    "Bearer ",
    "Token abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    "Basic YW5uQGV4YW1wbGUuY29tOnBhc3N3b3Jk",
    "Bearer abc def",
    "Bearer short",
    "Bearer " + "x" * 129,
    "Bearer ../../etc/passwd",
    "Bearer 'or 1=1 --",
])
def test_missing_or_malformed_authorization_is_401(client, header):
    headers = {} if header is None else {"Authorization": header}
    response = me(client, headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="market-data"')
    if header:
        assert error_of(response) == "the Authorization header must be Bearer <token>"
    else:
        assert error_of(response).startswith("sign in first: send Authorization: Bearer <token>")


def test_a_forged_token_is_401(client):
    import secrets
    sign_in(client, "ann@example.com")
    response = me(client, {"Authorization": f"Bearer {secrets.token_urlsafe(32)}"})
    assert response.status_code == 401
    assert error_of(response) == "the token is unknown, expired or revoked; log in again"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="market-data", error="invalid_token"'


def test_the_scheme_is_case_insensitive(client):
    token = sign_in(client, "ann@example.com")["Authorization"].split()[1]
    assert me(client, {"Authorization": f"bearer {token}"}).status_code == 200


def test_tokens_expire(client, monkeypatch):
    headers = sign_in(client, "ann@example.com")
    issued = accounts.now()
    monkeypatch.setattr(accounts, "now", lambda: issued + dt.timedelta(hours=24) - dt.timedelta(seconds=1))
    assert me(client, headers).status_code == 200
    monkeypatch.setattr(accounts, "now", lambda: issued + dt.timedelta(hours=24))
    response = me(client, headers)
    assert response.status_code == 401
    assert error_of(response) == "the token is unknown, expired or revoked; log in again"


def test_logout_revokes_that_token_only(app, client):
    first, second = sign_in(client, "ann@example.com"), sign_in(client, "ann@example.com")
    response = client.post("/api/auth/logout", headers=first)
    assert response.status_code == 204 and response.data == b""
    assert me(client, first).status_code == 401
    assert client.post("/api/auth/logout", headers=first).status_code == 401
    assert me(client, second).status_code == 200
    revoked = [revoked_at for (revoked_at,) in rows(app, AuthToken.revoked_at)]
    assert sum(value is not None for value in revoked) == 1


def test_logout_needs_a_token(client):
    response = client.post("/api/auth/logout")
    assert response.status_code == 401 and "WWW-Authenticate" in response.headers


def test_dead_tokens_are_forgotten_at_the_next_login(app, client, monkeypatch):
    first = sign_in(client, "ann@example.com")
    client.post("/api/auth/logout", headers=first)
    sign_in(client, "ann@example.com")
    issued = accounts.now()
    monkeypatch.setattr(accounts, "now", lambda: issued + dt.timedelta(days=2))
    sign_in(client, "ann@example.com")
    assert len(rows(app, AuthToken.id)) == 1


# -- failed-login limits --------------------------------------------------------------------------------

def test_thirty_wrong_passwords_in_a_row_are_answered_with_429(client):
    signup(client, "ann@example.com")
    statuses, waits = [], []
    for _ in range(30):
        response = login(client, "ann@example.com", "wrong password")
        statuses.append(response.status_code)
        if response.status_code == 429:
            waits.append(int(response.headers["Retry-After"]))
            assert error_of(response).startswith("too many failed logins for this account or from this address; "
                                                 "try again in ")
    assert statuses == [401] * 10 + [429] * 20
    assert all(0 < wait <= 15 * 60 for wait in waits)
    # The right password does not get through either, from this address or another: the account is held.
    assert login(client, "ann@example.com").status_code == 429
    assert login(client, "ann@example.com", address="198.51.100.7").status_code == 429


def test_failures_from_one_address_block_that_address(client):
    """Ten failures from one address on ten accounts: its next login, even right, is 429. Another
    address's correct login (to an account no one attacked) is not held up."""
    signup(client, "ann@example.com")
    for number in range(10):
        assert login(client, f"guess{number}@example.com", "wrong password", address="203.0.113.5").status_code == 401
    assert login(client, "ann@example.com", address="203.0.113.5").status_code == 429
    assert login(client, "ann@example.com", address="198.51.100.7").status_code == 200


def test_failures_for_one_account_block_that_account(client):
    """Ten failures for one account from ten addresses: that account is held; the addresses still log in
    to others."""
    signup(client, "ann@example.com")
    signup(client, "bob@example.com")
    for number in range(10):
        assert login(client, "ann@example.com", "wrong password", address=f"203.0.113.{number}").status_code == 401
    assert login(client, "ann@example.com", address="198.51.100.7").status_code == 429
    assert login(client, "bob@example.com", address="203.0.113.1").status_code == 200


def test_unknown_accounts_are_counted_too(client):
    for number in range(10):
        assert login(client, "nobody@example.com", "wrong password", address=f"203.0.113.{number}").status_code == 401
    assert login(client, "nobody@example.com", "wrong password", address="198.51.100.7").status_code == 429


def test_a_successful_login_clears_its_account_counter_only(client):
    signup(client, "ann@example.com")
    for number in range(9):
        assert login(client, "ann@example.com", "wrong", address=f"203.0.113.{number}").status_code == 401
    assert login(client, "ann@example.com", address="198.51.100.7").status_code == 200
    for number in range(9):  # 18 failures for the account in all; 9 since the success
        assert login(client, "ann@example.com", "wrong", address=f"203.0.114.{number}").status_code == 401
    assert login(client, "ann@example.com", "wrong", address="203.0.115.1").status_code == 401
    assert login(client, "ann@example.com", "wrong", address="203.0.115.2").status_code == 429


def test_the_counters_are_shared_by_every_worker(app_factory, stack):
    """Two app instances (two workers or replicas): with Redis (the MySQL stack) failures counted by one hold
    the other; with the in-process counters (SQLite stack, no REDIS_URL), each counts its own."""
    first, second = app_factory(), app_factory()
    signup(first.test_client(), "ann@example.com")
    for _ in range(10):
        assert login(first.test_client(), "ann@example.com", "wrong").status_code == 401
    assert login(second.test_client(), "ann@example.com").status_code == (429 if stack == "mysql" else 200)


def test_when_redis_is_away_failures_are_counted_in_process(caplog):
    from tests.fakes.smtp import free_port
    limiter = ratelimit.LoginLimiter(f"redis://127.0.0.1:{free_port()}/0", "mdt-test-away:")
    keys = limiter.keys("ann@example.com", "192.0.2.1")
    for _ in range(10):
        assert limiter.retry_after(keys) is None
        limiter.failed(keys)
    assert 0 < limiter.retry_after(keys) <= 15 * 60
    assert "login counters unavailable in Redis, counting in process" in caplog.text


@pytest.mark.parametrize("trusted", [0, 1])
def test_the_client_address_comes_from_the_proxy_only_when_trusted(app_factory, trusted):
    """Behind nginx every request comes from the proxy's address. With TRUSTED_PROXIES=1 the address nginx
    appended to X-Forwarded-For is the client's; without it the header is ignored (anyone can write it)."""
    client = app_factory(trusted_proxies=trusted).test_client()
    signup(client, "ann@example.com")

    def attempt(forwarded_for, password="wrong"):
        return login(client, f"user-{forwarded_for}@example.com" if password == "wrong" else "ann@example.com",
                     password, address="172.18.0.5", **{"X-Forwarded-For": forwarded_for}).status_code

    assert [attempt("203.0.113.9") for _ in range(10)] == [401] * 10
    # Another client behind the same proxy: only held up when the proxy's address is all there is.
    assert attempt("198.51.100.23", PASSWORD) == (200 if trusted else 429)
    assert attempt("203.0.113.9", PASSWORD) == 429


# -- secrets, caching, documentation --------------------------------------------------------------------

def test_passwords_and_tokens_never_reach_the_logs(app, client, caplog):
    caplog.set_level(logging.DEBUG)
    password = "Sentinel-Password-4711"
    signup(client, "ann@example.com", password)
    login(client, "ann@example.com", "Wrong-Sentinel-0815")
    response = login(client, "ann@example.com", password)
    token = response.get_json()["data"]["token"]
    headers = {"Authorization": f"Bearer {token}"}
    me(client, headers)
    client.get("/api/me/alerts?limit=0", headers=headers)
    signup(client, "ann@example.com", password)  # the duplicate: an IntegrityError path
    client.post("/api/auth/logout", headers=headers)
    me(client, headers)
    assert "POST /api/auth/login 200" in caplog.text  # the request log was on
    for secret in (password, "Wrong-Sentinel-0815", token, hashlib.sha256(token.encode()).hexdigest()):
        assert secret not in caplog.text


def test_private_answers_are_not_cacheable(client):
    headers = sign_in(client, "ann@example.com")
    for response in (login(client, "ann@example.com"), login(client, "ann@example.com", "wrong"),
                     me(client, headers), me(client, {}), client.get("/api/me/alerts", headers=headers),
                     client.post("/api/auth/logout", headers=headers)):
        assert response.headers["Cache-Control"] == "no-store"
    # public answers may be kept, but only with revalidation (their ETag makes that a 304)
    assert client.get("/api/metrics").headers["Cache-Control"] == "no-cache"


def test_swagger_ui_can_authorize_with_the_token(client):
    spec = client.get("/swagger.json").get_json()
    assert spec["securityDefinitions"]["bearer"] == {
        "type": "apiKey", "in": "header", "name": "Authorization",
        "description": "Bearer <token>, with the token from POST /api/auth/login (type both words: Bearer, a space, "
                       "the token)"}
    secured = {(path, method) for path, operations in spec["paths"].items() for method, operation in operations.items()
               if isinstance(operation, dict) and operation.get("security") == [{"bearer": []}]}
    assert secured == {("/api/auth/logout", "post"), ("/api/me/markets", "get"), ("/api/me/markets", "post"),
                       ("/api/me/markets/{exchange}/{ticker}", "delete"),
                       ("/api/me/markets/{exchange}/{ticker}/day", "get"), ("/api/me/rankings", "get"),
                       ("/api/me/alerts", "get")}
    for path, method in secured:
        assert "401" in spec["paths"][path][method]["responses"]
    login_responses = spec["paths"]["/api/auth/login"]["post"]["responses"]
    assert set(login_responses) == {"200", "400", "401", "413", "429", "503"}
