"""The WSGI entry point: `app` for gunicorn (`gunicorn app:app`), `python app.py` for a local server.

The database is migrated to the latest schema on start. Configuration comes from the environment and
`.env` (see .env.example); an invalid value stops start-up with one line naming the variable (exit 2),
an unreachable database with one line naming DATABASE_URL (exit 1); that line is JSON, as every log line
is, when the environment has APP_ENV=production.
"""
import sys

from financial import Settings, StartupError, create_app
from financial.logs import startup_failure_line

try:
    settings = Settings.from_env()
    app = create_app(settings)
except StartupError as error:
    print(startup_failure_line(f"{error.prefix}: {error}"), file=sys.stderr)
    sys.exit(error.exit_code)

__all__ = ["app", "create_app"]

if __name__ == "__main__":
    print(f" * Market data tracker on http://{settings.host}:{settings.port}/ (the web page; Swagger UI at /docs)")
    from financial.serving import JsonRequestHandler
    app.run(host=settings.host, port=settings.port, debug=False, threaded=True, request_handler=JsonRequestHandler)
