# Multi-stage image of the market data tracker: the API (gunicorn) and the ingest command.
# Build: docker build -t market-data-tracker .    Run: see docker-compose.prod.yml and docs/operations.md.
# The same pinned requirements.txt as `make install` (CI) installs, so a green CI means a buildable image.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /venv
COPY requirements.txt /tmp/requirements.txt
RUN /venv/bin/pip install -r /tmp/requirements.txt

FROM python:3.11-slim AS runtime
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    APP_ENV=production HOST=0.0.0.0 PORT=5000 LOG_DIR=
RUN useradd --system --uid 10001 --create-home --home-dir /home/app app
WORKDIR /app
COPY --from=build /venv /venv
# The code runs from /app (not installed as a package): paths such as migrations/ and data/ are relative
# to the source tree, exactly as in a checkout.
COPY app.py get_raw_data.py setup.cfg ./
COPY lib lib
COPY financial financial
COPY migrations migrations
COPY conf conf
COPY data/fixtures data/fixtures
RUN mkdir -p data/log && chown -R app:app data
USER app
EXPOSE 5000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/healthz', timeout=4)"
CMD ["gunicorn", "-c", "conf/gunicorn.conf.py", "app:app"]
