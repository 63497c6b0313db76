"""Accounts (system C): sign-up, login, logout and the bearer tokens that identify a user.

- Passwords are kept only as Argon2id hashes (argon2-cffi's defaults, RFC 9106's low-memory profile: 3
  passes over 64 MiB, 4 lanes, a random 16-byte salt each); a hash made with older parameters is
  replaced at the next successful login.
- A login returns an opaque random token (`secrets.token_urlsafe(32)`, 256 bits). Only its SHA-256 is
  stored — a slow hash adds nothing to a random 256-bit secret, and a fast one keeps each request to one
  indexed lookup — with an expiry (TOKEN_TTL_HOURS) and a revocation time set by logout.
- Wrong credentials get one answer whether the e-mail is unknown or the password wrong, and take the
  same time: an unknown e-mail is checked against a dummy hash of the same cost.
- Failed logins are counted per account and per client address (`financial.ratelimit`); once either
  is exhausted, logins for it get 429 before any password is checked. Sign-ups are counted per client
  address (SIGNUP_LIMIT_PER_HOUR), before any hashing.
- Passwords are normalised to Unicode NFKC before they are hashed or checked, so the same password typed
  on two keyboards (a full-width digit, an accent as one character or two) is one password. A hash made
  before that rule, from the password as typed, still verifies and is replaced by the normalised one.
- At most `HASH_CONCURRENCY` hashes run at once in a process: each takes 64 MiB and a core's worth of
  work, and a flood of sign-ups or logins must leave CPU to the cheap cached reads of the other threads.
  A request that cannot start its hash within `HASH_WAIT` seconds gets 503 with Retry-After.

E-mail addresses are compared lower-cased (stored that way), so the unique constraint on `users.email`
treats `Ann@Example.com` and `ann@example.com` as one account on SQLite and MySQL alike. Nothing here
logs a password or a token.
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import re
import secrets
import threading
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from sqlalchemy.exc import IntegrityError

from financial.errors import BadRequest, Conflict, TooManyRequests, Unauthorized, Unavailable
from financial.extensions import app_state, db_session
from financial.models import AuthToken, User, utcnow
from financial.storage import accounts
from financial.transactions import unit_of_work

log = logging.getLogger(__name__)
HASHER = PasswordHasher()
EMAIL_MAX = 254
PASSWORD_MIN = 8
PASSWORD_MAX = 128
HASH_CONCURRENCY = 1
HASH_WAIT = 3.0
_HASHING = threading.BoundedSemaphore(HASH_CONCURRENCY)
# A mailbox as people type it: an RFC 5322 dot-atom local part and a domain of DNS labels with a dot. No
# quoted local parts, comments or IP literals: nothing that could carry a header into an alert e-mail.
_EMAIL = re.compile(r"^(?=.{3,254}$)[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                    r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,128}$")
REALM = 'Bearer realm="market-data"'
WRONG_CREDENTIALS = "wrong e-mail or password"


def now() -> dt.datetime:
    """The current time as stored (naive UTC, whole seconds: MySQL's DATETIME keeps no fraction). Tests
    move this clock to expire tokens."""
    return utcnow().replace(microsecond=0)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# -- input ------------------------------------------------------------------------------------------

def normalize_email(email: str) -> str:
    """The stored spelling of an e-mail address (trimmed, lower-cased); 400 naming the field if it is not one."""
    normalized = email.strip().lower()
    if len(normalized) > EMAIL_MAX:
        raise BadRequest(f"email: must be at most {EMAIL_MAX} characters")
    if not _EMAIL.match(normalized) or len(normalized.partition("@")[0]) > 64:
        raise BadRequest("email: must be an e-mail address like ann@example.com")
    return normalized


def normalize_password(password: str) -> str:
    """The password as hashed: its NFKC form (at most a few times longer than typed)."""
    return unicodedata.normalize("NFKC", password)


def check_password(password: str) -> None:
    if len(password) < PASSWORD_MIN:
        raise BadRequest(f"password: must be at least {PASSWORD_MIN} characters")
    if len(password) > PASSWORD_MAX:
        raise BadRequest(f"password: must be at most {PASSWORD_MAX} characters")


@contextmanager
def _hashing() -> Iterator[None]:
    """A turn to hash a password, or 503 when the turns are taken for longer than `HASH_WAIT` seconds."""
    if not _HASHING.acquire(timeout=HASH_WAIT):
        log.warning("password hashing busy: request refused after %.0fs", HASH_WAIT)
        raise Unavailable("too many sign-ups and logins at once; try again shortly", headers={"Retry-After": "1"})
    try:
        yield
    finally:
        _HASHING.release()


def hash_password(password: str) -> str:
    """The Argon2id hash of an already normalised password."""
    with _hashing():
        return HASHER.hash(password)


# -- sign-up, login, logout -------------------------------------------------------------------------

def signup(email: str, password: str, address: str | None) -> dict:
    """Create an account; 409 when the e-mail has one (also when two sign-ups race: the unique constraint
    decides, and the loser gets the same 409); 429 after too many sign-ups from the client address."""
    email = normalize_email(email)
    # The lengths are those of the password as typed, as the login and the API's description count them.
    check_password(password)
    password = normalize_password(password)
    # Counted before the existence check too: probing which e-mail addresses have accounts is limited alike.
    wait = app_state().signup_limiter.attempt(address)
    if wait is not None:
        log.warning("sign-up refused: too many sign-ups from address %s", address)
        raise TooManyRequests(f"too many sign-ups from this address; try again in {wait} seconds",
                              headers={"Retry-After": str(wait)})
    if accounts.user_exists(db_session(), email):  # saves the hashing work; the constraint below decides
        raise Conflict("email: an account with this e-mail already exists")
    user = User(email=email, password_hash=hash_password(password), created_at=now())
    try:
        with unit_of_work() as work:
            work.session.add(user)
    except IntegrityError:
        raise Conflict("email: an account with this e-mail already exists") from None
    return {"id": user.id, "email": user.email, "created_at": user.created_at}


@dataclass(frozen=True)
class Login:
    token: str
    expires_at: dt.datetime


def login(email: str, password: str, address: str | None) -> Login:
    """A new token for the account, or 401 (wrong credentials) or 429 (too many failures)."""
    if len(password) > PASSWORD_MAX:  # no account has one this long; nor is it worth hashing
        raise BadRequest(f"password: must be at most {PASSWORD_MAX} characters")
    normalized = email.strip().lower()
    limiter = app_state().login_limiter
    keys = limiter.keys(normalized, address)
    wait = limiter.retry_after(keys)
    if wait is not None:
        log.warning("login refused: too many failed logins for the account or from address %s", address)
        raise TooManyRequests(f"too many failed logins for this account or from this address; try again in "
                              f"{wait} seconds", headers={"Retry-After": str(wait)})
    typed, password = password, normalize_password(password)
    with unit_of_work() as work:
        user = accounts.find_user(work.session, normalized)
        verified = _verify(user, password)  # (the hash is checked either way: same cost)
        # A hash made before normalisation is of the password as typed (checked for unknown e-mails too: same cost).
        legacy = not verified and typed != password and _verify(user, typed) and user is not None
        if not (verified or legacy) or user is None:
            limiter.failed(keys)
            raise Unauthorized(WRONG_CREDENTIALS, headers={"WWW-Authenticate": REALM})
        limiter.clear(keys[0])  # the account's own counter; the address's keeps counting
        if legacy or HASHER.check_needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        token, issued = secrets.token_urlsafe(32), now()
        expires = issued + dt.timedelta(hours=current_app.config["SETTINGS"].token_ttl_hours)
        accounts.forget_dead_tokens(work.session, user.id, issued)
        work.session.add(AuthToken(token_hash=token_digest(token), user_id=user.id, created_at=issued,
                                   expires_at=expires))
    return Login(token, expires)


def _verify(user: User | None, password: str) -> bool:
    """Whether `password` is the user's; an unknown user costs the same hashing work as a known one."""
    try:
        with _hashing():
            return HASHER.verify(user.password_hash if user else _dummy_hash(HASHER), password)
    except (VerificationError, InvalidHashError):
        return False


@functools.lru_cache(maxsize=4)
def _dummy_hash(hasher: PasswordHasher) -> str:
    return hasher.hash(secrets.token_urlsafe(16))


def logout(token_id: int) -> None:
    with unit_of_work() as work:
        accounts.revoke_token(work.session, token_id, now())


# -- who is asking ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Identity:
    user_id: int
    token_id: int


def authenticate(header: str | None) -> Identity:
    """The user of an `Authorization: Bearer <token>` header; 401 (with WWW-Authenticate, RFC 6750) when
    it is missing or malformed, or the token unknown, expired or revoked."""
    if not header:
        raise Unauthorized("sign in first: send Authorization: Bearer <token>, the token from POST /api/auth/login",
                           headers={"WWW-Authenticate": REALM})
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not _TOKEN.match(token):
        raise Unauthorized("the Authorization header must be Bearer <token>",
                           headers={"WWW-Authenticate": f'{REALM}, error="invalid_request"'})
    row = accounts.find_token(db_session(), token_digest(token))
    if row is None or row.revoked_at is not None or row.expires_at <= now():
        raise Unauthorized("the token is unknown, expired or revoked; log in again",
                           headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'})
    return Identity(row.user_id, row.id)
