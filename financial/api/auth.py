"""Accounts: `POST /api/auth/signup`, `/login` and `/logout`, and `signed_in`, which every
operation that needs a user calls (through `SignedInResource`) to know who is asking.

Answers under /api/auth and /api/me are never cached (`Cache-Control: no-store`, set with the other
headers by `financial.edge.policy`): they carry tokens or one user's data.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

from flask import Response, g, request
from flask_restx import Resource, fields

from financial.api import params
from financial.api.envelope import ERROR, envelope, envelope_model, json_response, namespace, no_content, responds
from financial.services import accounts
from financial.services.accounts import Identity

ns = namespace("auth", "Accounts: sign up, log in for a bearer token, log out", path="/api/auth")
SECURITY = "bearer"
AUTHORIZATIONS = {SECURITY: {
    "type": "apiKey", "in": "header", "name": "Authorization",
    "description": "Bearer <token>, with the token from POST /api/auth/login (type both words: Bearer, a space, "
                   "the token)"}}

# Sign-up takes dot-atom addresses whose local part has at most 64 characters; Swagger's patterns have no
# look-ahead to count them, so this one states the part every such client sends: one or two runs of at
# most 32 characters, then a domain of DNS labels.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
EMAIL_PATTERN = (rf"^{_ATEXT}{{1,32}}(\.{_ATEXT}{{1,31}})?"
                 r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
CREDENTIALS = params.Body(ns, "Credentials", {
    "email": params.text("Case-insensitive", max_length=accounts.EMAIL_MAX, example="ann@example.com",
                         pattern=EMAIL_PATTERN),
    "password": params.text(None, max_length=accounts.PASSWORD_MAX, min_length=accounts.PASSWORD_MIN,
                            example="correct horse battery staple"),
})
ACCOUNT = envelope_model(ns, "AccountResponse", fields.Nested(ns.model("Account", {
    "id": fields.Integer(example=1),
    "email": fields.String(example="ann@example.com", description="As stored: lower-case"),
    "created_at": fields.String(example="2026-11-24T10:41:00Z"),
})))
TOKEN = envelope_model(ns, "TokenResponse", fields.Nested(ns.model("Token", {
    "token": fields.String(example="q2Hk7yJ3W0x4...", description="Send as Authorization: Bearer <token>"),
    "token_type": fields.String(example="Bearer"),
    "expires_at": fields.String(example="2026-11-25T10:41:00Z", description="ISO 8601 UTC (TOKEN_TTL_HOURS)"),
})))


def signed_in() -> Identity:
    """The user of the request's bearer token (401 without a valid one); remembered for the request."""
    if "identity" not in g:
        g.identity = accounts.authenticate(request.headers.get("Authorization"))
    return g.identity


def _require_token(method: Callable[..., Response]) -> Callable[..., Response]:
    @functools.wraps(method)
    def checked(*args: Any, **kwargs: Any) -> Response:
        signed_in()
        return method(*args, **kwargs)
    return checked


class SignedInResource(Resource):
    """A resource whose every operation needs a valid token; `self.user_id` is its user."""

    method_decorators = [_require_token]

    @property
    def user_id(self) -> int:
        return signed_in().user_id


@ns.route("/signup")
class Signup(Resource):
    @ns.expect(CREDENTIALS.model)
    @ns.response(201, "Account created", ACCOUNT)
    @responds(ns, 400, 409, 413, 429)
    def post(self) -> Response:
        """Create an account: an e-mail address and a password of 8 to 128 characters. After
        SIGNUP_LIMIT_PER_HOUR sign-ups (10 by default) from one address within an hour, 429 with Retry-After."""
        body = params.parse_body(CREDENTIALS)
        return json_response(envelope(accounts.signup(body["email"], body["password"], request.remote_addr)), 201)


@ns.route("/login")
class Login(Resource):
    @ns.expect(CREDENTIALS.model)
    @ns.response(200, "A bearer token", TOKEN)
    @ns.response(401, "Wrong e-mail or password (one answer for both)", ERROR)
    @responds(ns, 400, 413, 429)
    def post(self) -> Response:
        """Log in: a bearer token for the other operations. After 10 failures within 15 minutes for one
        account or from one address, 429 with Retry-After."""
        body = params.parse_body(CREDENTIALS)
        result = accounts.login(body["email"], body["password"], request.remote_addr)
        return json_response(envelope({"token": result.token, "token_type": "Bearer",
                                       "expires_at": result.expires_at}))


@ns.route("/logout")
class Logout(SignedInResource):
    @ns.doc(security=SECURITY)
    @ns.response(204, "The token is revoked; no body, so no Content-Type")
    @responds(ns, 401)
    def post(self) -> Response:
        """Log out: revoke the token of this request."""
        accounts.logout(signed_in().token_id)
        return no_content()
