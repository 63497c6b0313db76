"""Accounts: users (by their lower-cased e-mail) and bearer tokens (by their SHA-256 digest)."""
from __future__ import annotations

import datetime as dt
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from financial.models import AuthToken, User
from financial.storage import dialect


class Token(NamedTuple):
    id: int
    user_id: int
    expires_at: dt.datetime
    revoked_at: dt.datetime | None


def find_user(session: Session, email: str) -> User | None:
    return session.scalar(sa.select(User).where(User.email == email))


def user_exists(session: Session, email: str) -> bool:
    return session.scalar(sa.select(User.id).where(User.email == email)) is not None


def find_token(session: Session, token_hash: str) -> Token | None:
    row = session.execute(sa.select(AuthToken.id, AuthToken.user_id, AuthToken.expires_at, AuthToken.revoked_at)
                          .where(AuthToken.token_hash == token_hash)).first()
    return None if row is None else Token._make(row)


def revoke_token(session: Session, token_id: int, now: dt.datetime) -> None:
    session.execute(sa.update(AuthToken).where(AuthToken.id == token_id, AuthToken.revoked_at.is_(None))
                    .values(revoked_at=now))


def forget_dead_tokens(session: Session, user_id: int, now: dt.datetime) -> int:
    """Delete a user's expired and revoked tokens (either way they no longer open anything)."""
    return dialect.rowcount(session.execute(sa.delete(AuthToken).where(
        AuthToken.user_id == user_id, sa.or_(AuthToken.expires_at <= now, AuthToken.revoked_at.is_not(None)))))
