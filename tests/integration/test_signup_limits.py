"""Sign-ups on both stacks: limited per client address (SIGNUP_LIMIT_PER_HOUR, shared by every worker
through Redis on the MySQL stack), password hashes one at a time per process (503 when a turn does not
come), and passwords normalised to NFKC, so one password typed on two keyboards logs in."""
from __future__ import annotations

import concurrent.futures
import threading
import time
import unicodedata

import pytest
from argon2 import PasswordHasher

from financial.config import ConfigError, Settings
from financial.models import User
from financial.services import accounts
from tests.integration.test_accounts_api import error_of, login, rows, signup

pytestmark = pytest.mark.usefixtures("fast_hashing")


def signup_from(client, email, address, **headers):
    return client.post("/api/auth/signup", json={"email": email, "password": "correct horse battery staple"},
                       environ_base={"REMOTE_ADDR": address}, headers=headers)


# -- the limit per address -------------------------------------------------------------------------------

def test_signups_from_one_address_are_limited(app_factory):
    app = app_factory(signup_limit_per_hour=3)
    client = app.test_client()
    assert [signup_from(client, f"user{n}@example.com", "203.0.113.7").status_code for n in range(3)] == [201] * 3
    refused = signup_from(client, "user3@example.com", "203.0.113.7")
    assert refused.status_code == 429
    assert 3590 <= int(refused.headers["Retry-After"]) <= 3600  # the first sign-up leaves the hour then
    assert error_of(refused) == f"too many sign-ups from this address; try again in {refused.headers['Retry-After']} " \
                                f"seconds"
    # Probing for existing accounts counts too, and a refused attempt creates nothing.
    assert signup_from(client, "user0@example.com", "203.0.113.7").status_code == 429
    assert sorted(email for (email,) in rows(app, User.email)) == [f"user{n}@example.com" for n in range(3)]
    # Another address is not held up.
    assert signup_from(client, "user3@example.com", "198.51.100.4").status_code == 201


def test_bad_input_is_not_counted(app_factory):
    client = app_factory(signup_limit_per_hour=1).test_client()
    for _ in range(3):
        response = client.post("/api/auth/signup", json={"email": "nope", "password": "short"},
                               environ_base={"REMOTE_ADDR": "203.0.113.7"})
        assert response.status_code == 400
    assert signup_from(client, "ann@example.com", "203.0.113.7").status_code == 201


def test_the_limit_is_shared_by_every_worker(app_factory, stack):
    first, second = app_factory(signup_limit_per_hour=2), app_factory(signup_limit_per_hour=2)
    for n in range(2):
        assert signup_from(first.test_client(), f"user{n}@example.com", "203.0.113.7").status_code == 201
    expected = 429 if stack == "mysql" else 201  # with Redis (MySQL stack) one count; else each its own
    assert signup_from(second.test_client(), "user2@example.com", "203.0.113.7").status_code == expected


@pytest.mark.parametrize("trusted", [0, 1])
def test_the_address_behind_a_trusted_proxy_is_the_forwarded_one(app_factory, trusted):
    client = app_factory(signup_limit_per_hour=1, trusted_proxies=trusted).test_client()
    statuses = [signup_from(client, f"user{n}@example.com", "172.18.0.5",
                            **{"X-Forwarded-For": f"203.0.113.{n}"}).status_code for n in range(3)]
    assert statuses == ([201] * 3 if trusted else [201, 429, 429])


def test_zero_is_unlimited(app_factory):
    client = app_factory(signup_limit_per_hour=0).test_client()
    assert {signup_from(client, f"user{n}@example.com", "203.0.113.7").status_code for n in range(25)} == {201}


def test_the_setting():
    assert Settings().signup_limit_per_hour == 10
    assert Settings.from_env({"SIGNUP_LIMIT_PER_HOUR": "0"}, env_file=None).signup_limit_per_hour == 0
    with pytest.raises(ConfigError, match="SIGNUP_LIMIT_PER_HOUR must be between 0 and 100000"):
        Settings.from_env({"SIGNUP_LIMIT_PER_HOUR": "-1"}, env_file=None)
    assert Settings.from_env({"REDIS_URL": "redis://cache:6379/0"}, env_file=None).counters_redis_url == \
        "redis://cache:6379/0"
    assert Settings.from_env({"REDIS_URL": "redis://cache:6379/0", "RATE_LIMIT_REDIS_URL": "redis://limits:6379/0"},
                             env_file=None).counters_redis_url == "redis://limits:6379/0"


# -- hashing does not pile up ---------------------------------------------------------------------------

class CountingHasher(PasswordHasher):
    """The tests' cheap hasher, each hash held 50 ms, recording how many ran at once."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.lock, self.running, self.most = threading.Lock(), 0, 0

    def hash(self, password, *, salt=None):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.05)
        with self.lock:
            self.running -= 1
        return super().hash(password, salt=salt)


def test_one_hash_at_a_time_per_process(app, monkeypatch):
    hasher = CountingHasher()
    monkeypatch.setattr(accounts, "HASHER", hasher)
    barrier = threading.Barrier(6)

    def attempt(number):
        client = app.test_client()
        barrier.wait()
        return signup_from(client, f"user{number}@example.com", f"203.0.113.{number}").status_code

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        assert list(pool.map(attempt, range(6))) == [201] * 6
    assert hasher.most == accounts.HASH_CONCURRENCY == 1


def test_a_hash_that_cannot_start_soon_is_a_503(app, client, monkeypatch):
    monkeypatch.setattr(accounts, "HASH_WAIT", 0.2)
    assert accounts._HASHING.acquire(timeout=5)  # every turn taken
    try:
        started = time.monotonic()
        response = signup_from(client, "ann@example.com", "203.0.113.7")
        assert 0.2 <= time.monotonic() - started < 2
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
        assert error_of(response) == "too many sign-ups and logins at once; try again shortly"
        assert login(client, "nobody@example.com", "some password").status_code == 503
    finally:
        accounts._HASHING.release()
    assert rows(app, User.id) == []
    assert signup_from(client, "ann@example.com", "203.0.113.7").status_code == 201


# -- NFKC -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("typed_at_signup, typed_at_login", [
    ("ｐａｓｓｗｏｒｄ１２３", "password123"),  # full-width letters and digits (a CJK keyboard)
    ("password123", "ｐａｓｓｗｏｒｄ１２３"),
    ("café-crème-brûlée", unicodedata.normalize("NFD", "café-crème-brûlée")),  # é as one character or two
    (unicodedata.normalize("NFD", "café-crème-brûlée"), "café-crème-brûlée"),
    ("ﬁnally-ﬂying-2x", "finally-flying-2x"),  # ligatures
])
def test_one_password_typed_two_ways_logs_in(app, client, typed_at_signup, typed_at_login):
    assert typed_at_signup != typed_at_login
    assert signup(client, "ann@example.com", typed_at_signup).status_code == 201
    assert login(client, "ann@example.com", typed_at_login).status_code == 200
    assert login(client, "ann@example.com", typed_at_signup).status_code == 200
    assert login(client, "ann@example.com", typed_at_login + "x").status_code == 401
    [(stored,)] = rows(app, User.password_hash)
    assert accounts.HASHER.verify(stored, unicodedata.normalize("NFKC", typed_at_login))


def test_the_length_limits_count_the_password_as_typed(app, client):
    # 128 ligatures are 128 characters as typed (what the API's description allows) and 384 once normalised.
    longest = "\ufb03" * 128
    assert len(unicodedata.normalize("NFKC", longest)) == 384
    assert signup(client, "ann@example.com", longest).status_code == 201
    assert login(client, "ann@example.com", longest).status_code == 200
    too_long = signup(client, "bob@example.com", "\ufb03" * 129)
    assert too_long.status_code == 400 and "at most 128" in too_long.get_json()["info"]["error"]


def test_a_hash_of_the_password_as_typed_still_logs_in_and_is_replaced(app, client):
    """Accounts made before normalisation hold a hash of the password as typed."""
    typed = "ｐａｓｓｗｏｒｄ１２３"
    assert signup(client, "ann@example.com", "placeholder password").status_code == 201
    from financial.extensions import db
    with app.app_context():
        user = db.session.query(User).one()
        user.password_hash = accounts.HASHER.hash(typed)
        db.session.commit()
    assert login(client, "ann@example.com", typed).status_code == 200
    [(stored,)] = rows(app, User.password_hash)
    assert accounts.HASHER.verify(stored, "password123")  # now the normalised password's
    assert login(client, "ann@example.com", "password123").status_code == 200
