"""The HTTP service: `create_app` builds it from settings in small `register_*` steps."""
from __future__ import annotations

import os
import weakref
from typing import Any

import click
import sqlalchemy as sa
from flask import Flask
from flask.sessions import SessionInterface
from werkzeug.exceptions import HTTPException

from financial import caching, database, edge
from financial.breaker import Breaker
from financial.config import ROOT, ConfigError, DatabaseUnavailable, Settings, StartupError
from financial.edge.policy import Policy
from financial.extensions import STATE, AppState, app_state, cache, db, migrate
from financial.ratelimit import LoginLimiter, SignupLimiter


__all__ = ["ConfigError", "DatabaseUnavailable", "Settings", "StartupError", "create_app"]


def create_app(settings: Settings | None = None, *, process: str = "app") -> Flask:
    """Build the application. Settings default to the environment (and `.env`); invalid ones raise
    `ConfigError`. The database is brought to the latest schema unless `settings.auto_migrate` is off;
    a database that cannot be opened for that raises `DatabaseUnavailable`."""
    settings = settings or Settings.from_env()
    app = Flask(__name__, static_folder=None)  # the web page serves its own files (financial.web)
    from financial.serving import CappedRequest
    app.request_class = CappedRequest  # a chunked body past MAX_CONTENT_LENGTH is a 413, not cut short
    register_config(app, settings, process)
    register_proxy(app, settings)
    register_logging(app, settings, process)
    register_extensions(app, settings, process)
    register_web(app, process)
    register_api(app)
    register_errorhandlers(app)
    register_edge(app)
    register_commands(app)
    if settings.auto_migrate:
        from financial.schema import upgrade_database
        try:
            upgrade_database(app)
        except sa.exc.OperationalError as exc:  # unreachable server, missing directory, bad credentials
            reason = str(exc.orig or exc).splitlines()[0]
            url = sa.engine.make_url(settings.database_url).render_as_string(hide_password=True)
            raise DatabaseUnavailable(f"cannot open the database of DATABASE_URL ({url}): {reason}") from None
    return app


def register_config(app: Flask, settings: Settings, process: str) -> None:
    app.config.update(
        SETTINGS=settings,
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=database.engine_options(settings, process),
        CACHE_DEFAULT_TIMEOUT=settings.cache_timeout,
        CACHE_KEY_PREFIX=settings.cache_key_prefix,
        RESTX_MASK_SWAGGER=False,
        RESTX_ERROR_404_HELP=False,
        JSON_SORT_KEYS=False,
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    if settings.redis_url:
        app.config.update(CACHE_TYPE=caching.REDIS_BACKEND, CACHE_REDIS_URL=settings.redis_url,
                          CACHE_OPTIONS={"socket_timeout": 0.5, "socket_connect_timeout": 0.5})
    else:
        app.config.update(CACHE_TYPE="SimpleCache", CACHE_THRESHOLD=5000)


def register_proxy(app: Flask, settings: Settings) -> None:
    """Behind TRUSTED_PROXIES reverse proxies (nginx in docker-compose.prod.yml), the client's address is the
    one the nearest of them appended to X-Forwarded-For; without the setting the header is ignored, since
    anyone can send it (and it would let a client pick the address its failed logins are counted under)."""
    if settings.trusted_proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies,  # type: ignore[method-assign]
                                x_proto=settings.trusted_proxies)


def register_logging(app: Flask, settings: Settings, process: str) -> None:
    from financial.logs import configure_logging
    configure_logging(settings, process=process)


def register_extensions(app: Flask, settings: Settings, process: str) -> None:
    db.init_app(app)
    cache.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    breaker = Breaker()  # the database's, shared by the engine and the cache (financial.breaker)
    with app.app_context():
        database.install(db.engine, settings, process, breaker)
    counters, prefix = settings.counters_redis_url, settings.cache_key_prefix
    app.extensions[STATE] = AppState(cache=caching.GenerationCache(app, breaker), policy=Policy(settings),
                                     login_limiter=LoginLimiter(counters, prefix),
                                     signup_limiter=SignupLimiter(settings.signup_limit_per_hour, counters, prefix))
    _forget_connections_after_fork(app)


def _forget_connections_after_fork(app: Flask) -> None:
    """A forked worker (gunicorn with preload) must open its own connections, not share the parent's."""
    app_ref = weakref.ref(app)

    def reset() -> None:
        forked = app_ref()
        if forked is not None:
            with forked.app_context():
                for engine in db.engines.values():
                    engine.dispose(close=False)
                app_state(forked).cache.forget_connection()

    os.register_at_fork(after_in_child=reset)


class _NoSessions(SessionInterface):
    """The API is stateless (bearer tokens); skipping Flask's signed-cookie session saves work per request."""

    def open_session(self, app: Flask, request: Any) -> None:
        return None

    def save_session(self, app: Flask, session: Any, response: Any) -> None:
        return None


def register_api(app: Flask) -> None:
    from financial.api import create_api
    app.session_interface = _NoSessions()
    app_state(app).api = create_api(app)


def register_web(app: Flask, process: str) -> None:
    """The web page at `/` (before the API, whose Flask-RESTX root would otherwise answer `/` with a 404).
    The service's own process loads the page's files at start-up; tests and tools load them when asked."""
    from financial import web
    web.register(app)
    if process == "app":
        web.warm()


def register_errorhandlers(app: Flask) -> None:
    from financial.api.envelope import handle_exception
    app.register_error_handler(HTTPException, handle_exception)
    app.register_error_handler(Exception, handle_exception)


def register_edge(app: Flask) -> None:
    """Every answer goes through the HTTP edge: cache hits answered before Flask, the response policy on all."""
    edge.register(app, app_state(app).policy)


def register_commands(app: Flask) -> None:
    @app.cli.command("export-swagger")
    @click.option("--output", default=str(ROOT / "conf" / "api.swagger.json"), show_default=True)
    def export_swagger(output: str) -> None:
        """Write the served OpenAPI spec to conf/api.swagger.json."""
        from financial.api.swagger import export
        export(app, output)
        click.echo(f"wrote {output}")
