"""The Flask extension singletons, created unbound here and bound to an app by `create_app`, and the
app's own runtime state (`AppState`), typed, in one place."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app
from flask_caching import Cache
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase, Session

from financial.config import Settings

if TYPE_CHECKING:
    from financial.caching import GenerationCache
    from financial.edge.policy import Policy
    from financial.ratelimit import LoginLimiter, SignupLimiter
    from financial.services.watchlists import MarketLookup

# Named constraints keep migrations portable between SQLite and MySQL.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
cache = Cache()
migrate = Migrate()


def current_settings() -> Settings:
    """The settings of the current app."""
    return current_app.config["SETTINGS"]


def db_session() -> Session:
    """The session of the current app context (the object behind `db.session`)."""
    return db.session()


@dataclass
class AppState:
    """What one app keeps while it runs, beside Flask's own extensions."""

    cache: GenerationCache
    policy: Policy
    login_limiter: LoginLimiter
    signup_limiter: SignupLimiter
    api: Any = None  # the Flask-RESTX Api, for the served spec
    market_lookup: MarketLookup | None = None  # watchlists' market checks, built on first use


STATE = "market_data"


def app_state(app: Flask | None = None) -> AppState:
    """The state of `app`, or of the current app."""
    return (app or current_app).extensions[STATE]
