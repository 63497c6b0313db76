"""Settings.from_env: every variable validated with a message naming it, `.env` under the environment."""
import logging
import logging.handlers

import pytest

from financial.config import DEFAULT_DATABASE_URL, ConfigError, Settings
from financial.logs import configure_logging


def settings_of(env_file=None, **environ):
    return Settings.from_env(environ, env_file=env_file)


# Each variable with a value it must refuse; text variables (keys, SECRET_KEY, SMTP_HOST...) take anything.
INVALID = [
    ("DATABASE_URL", "postgres://user@host/db"),
    ("DATABASE_URL", "market.db"),
    ("ALPHAVANTAGE_BASE_URL", "ftp://mirror.example"),
    ("ALPHAVANTAGE_MIN_INTERVAL", "fast"),
    ("ALPHAVANTAGE_MIN_INTERVAL", "-1"),
    ("ALPHAVANTAGE_MIN_INTERVAL", "61"),
    ("ALPHAVANTAGE_MIN_INTERVAL", "nan"),
    ("CRYPTOWATCH_BASE_URL", "api.cryptowat.ch"),
    ("CRYPTO_SOURCE", "kraken"),
    ("EXCHANGE_BASE_URLS", "kraken"),
    ("EXCHANGE_BASE_URLS", "kraken=127.0.0.1:8001"),
    ("EXCHANGE_BASE_URLS", "kraken=http://ok,binance"),
    ("EXCHANGE_MIN_INTERVAL", "soon"),
    ("EXCHANGE_MIN_INTERVAL", "-0.5"),
    ("MINUTE_RETENTION_DAYS", "0"),
    ("MINUTE_RETENTION_DAYS", "30.5"),
    ("MINUTE_RETENTION_DAYS", "3651"),
    ("REDIS_URL", "http://127.0.0.1:6379"),
    ("BROKER_URL", "amqp://guest@127.0.0.1//"),
    ("BROKER_URL", "unix:///run/redis.sock"),
    ("INGEST_QUEUE", "my queue"),
    ("INGEST_QUEUE", "x" * 101),
    ("INGEST_TASK_TIMEOUT", "4"),
    ("INGEST_TASK_TIMEOUT", "86401"),
    ("STATEMENT_TIMEOUT", "0"),
    ("STATEMENT_TIMEOUT", "21"),  # a request must end well before gunicorn's 30-second worker timeout
    ("INGEST_TASK_TIMEOUT", "30.5"),
    ("APP_ENV", "staging"),
    ("SMTP_PORT", "smtp"),
    ("SMTP_PORT", "0"),
    ("SMTP_PORT", "65536"),
    ("ALERT_FACTOR", "three"),
    ("ALERT_FACTOR", "0.5"),
    ("ALERT_FACTOR", "inf"),
    ("ALERT_FACTOR", "nan"),
    ("ALERT_WINDOW_MINUTES", "1"),
    ("ALERT_WINDOW_MINUTES", "1441"),
    ("ALERT_WINDOW_MINUTES", "60.5"),
    ("ALERT_COOLDOWN_MINUTES", "-1"),
    ("ALERT_MIN_POINTS", "1"),
    ("ALERT_MIN_POINTS", "1441"),
    ("ALERT_STALE_MINUTES", "0"),
    ("ALERT_STALE_MINUTES", "soon"),
    ("SMTP_TIMEOUT", "0.5"),
    ("SMTP_TIMEOUT", "forever"),
    ("SMTP_SENDER", "alerts"),
    ("SMTP_SENDER", "Alerts <alerts@example.com>"),
    ("SMTP_SENDER", "alerts@example.com\r\nBcc: everyone@example.com"),
    ("TOKEN_TTL_HOURS", "0"),
    ("TOKEN_TTL_HOURS", "1.5"),
    ("TOKEN_TTL_HOURS", "8761"),
    ("TRUSTED_PROXIES", "-1"),
    ("TRUSTED_PROXIES", "6"),
    ("TRUSTED_PROXIES", "yes"),
    ("PORT", "abc"),
    ("PORT", "0"),
    ("PORT", "70000"),
    ("CACHE_TIMEOUT", "0"),
    ("LOG_LEVEL", "verbose"),
    ("AUTO_MIGRATE", "maybe"),
    ("CORS_ORIGINS", "app.example.com"),
    ("CORS_ORIGINS", "https://ok.example.com,javascript:alert(1)"),
]


@pytest.mark.parametrize("variable, value", INVALID, ids=[f"{v}={x}" for v, x in INVALID])
def test_invalid_value_names_the_variable(variable, value):
    with pytest.raises(ConfigError) as raised:
        settings_of(**{variable: value})
    message = str(raised.value)
    assert message.startswith(variable), message
    assert "\n" not in message


def test_invalid_value_in_env_file_names_the_variable(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("SMTP_PORT=twenty-five\n")
    with pytest.raises(ConfigError, match=r"^SMTP_PORT must be an integer, got 'twenty-five'$"):
        settings_of(env_file=env_file)


def test_database_url_error_does_not_echo_credentials():
    with pytest.raises(ConfigError) as raised:
        settings_of(DATABASE_URL="postgres://admin:hunter2@db/prod")
    assert "hunter2" not in str(raised.value)
    assert "'postgres'" in str(raised.value)


def test_defaults_without_any_variable():
    settings = settings_of()
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert DEFAULT_DATABASE_URL.startswith("sqlite:///")
    assert settings.alphavantage_api_key is None
    assert settings.alphavantage_base_url == "https://www.alphavantage.co"
    assert settings.cryptowatch_base_url == "https://api.cryptowat.ch"
    assert settings.crypto_source == "exchange"
    assert settings.redis_url is None
    assert settings.app_env == "development" and not settings.is_production
    assert (settings.alert_factor, settings.alert_window_minutes, settings.alert_cooldown_minutes,
            settings.alert_min_points) == (3.0, 60, 60, 4)
    assert (settings.host, settings.port) == ("127.0.0.1", 5000)
    assert settings.auto_migrate is True
    assert (settings.statement_timeout, settings.ingest_statement_timeout) == (5.0, 300.0)
    assert len(settings.secret_key) >= 32  # random per run in development
    assert settings_of().secret_key != settings.secret_key


def test_valid_values_are_parsed():
    settings = settings_of(ALPHAVANTAGE_API_KEY=" KEY123 ", ALPHAVANTAGE_MIN_INTERVAL="0.25", PORT=" 8080 ",
                           CRYPTO_SOURCE="Cryptowatch", APP_ENV="PRODUCTION", SECRET_KEY="s" * 40,
                           ALERT_FACTOR="2.5", ALERT_MIN_POINTS="6", LOG_LEVEL="debug", AUTO_MIGRATE="off",
                           REDIS_URL="redis://cache:6379/0")
    assert settings.alphavantage_api_key == "KEY123"
    assert settings.alphavantage_min_interval == 0.25
    assert settings.port == 8080
    assert settings.crypto_source == "cryptowatch"
    assert settings.is_production
    assert settings.alert_factor == 2.5 and settings.alert_min_points == 6
    assert settings.log_level == "DEBUG"
    assert settings.auto_migrate is False
    assert settings.redis_url == "redis://cache:6379/0"


def test_crypto_tracking_settings():
    defaults = settings_of()
    assert (defaults.exchange_base_urls, defaults.exchange_min_interval, defaults.minute_retention_days) == (
        None, None, 30)
    settings = settings_of(EXCHANGE_BASE_URLS=" Kraken=http://127.0.0.1:8001/ , binance=https://mirror.example/b ",
                           EXCHANGE_MIN_INTERVAL="0", MINUTE_RETENTION_DAYS="7")
    assert settings.exchange_base_urls == "kraken=http://127.0.0.1:8001,binance=https://mirror.example/b"
    assert (settings.exchange_min_interval, settings.minute_retention_days) == (0.0, 7)


def test_empty_values_mean_the_default():
    settings = settings_of(PORT="", REDIS_URL=" ", ALPHAVANTAGE_API_KEY="", APP_ENV="")
    assert settings.port == 5000
    assert settings.redis_url is None
    assert settings.alphavantage_api_key is None
    assert settings.app_env == "development"


def test_env_file_is_read_and_the_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("# local settings\nPORT=8081\nALPHAVANTAGE_API_KEY=from-file\nHOST=0.0.0.0\n"
                        "export SMTP_HOST=mail.local\nALERT_FACTOR=4\n")
    from_file = settings_of(env_file=env_file)
    assert (from_file.port, from_file.alphavantage_api_key, from_file.host) == (8081, "from-file", "0.0.0.0")
    assert from_file.smtp_host == "mail.local"
    assert from_file.alert_factor == 4.0

    both = settings_of(env_file=env_file, PORT="9000", ALPHAVANTAGE_API_KEY="from-env")
    assert (both.port, both.alphavantage_api_key) == (9000, "from-env")
    assert both.host == "0.0.0.0"  # not overridden: still from the file


def test_env_file_default_location_follows_ENV_FILE(tmp_path):
    env_file = tmp_path / "custom.env"
    env_file.write_text("PORT=7001\n")
    assert Settings.from_env({"ENV_FILE": str(env_file)}).port == 7001
    assert Settings.from_env({"ENV_FILE": str(env_file), "PORT": "7002"}).port == 7002


def test_missing_env_file_is_not_an_error(tmp_path):
    assert settings_of(env_file=tmp_path / "absent.env").port == 5000


def test_production_requires_a_secret_key(tmp_path):
    with pytest.raises(ConfigError, match=r"^SECRET_KEY is required when APP_ENV=production$"):
        settings_of(APP_ENV="production")
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        settings_of(APP_ENV="production", SECRET_KEY="   ")
    env_file = tmp_path / ".env"
    env_file.write_text("SECRET_KEY=from-the-file-0123456789\n")
    assert settings_of(env_file=env_file, APP_ENV="production").secret_key == "from-the-file-0123456789"
    assert settings_of(APP_ENV="development").secret_key  # random, not required


@pytest.mark.parametrize("given, expected", [
    ("mysql://user:pw@db:3306/market", "mysql+pymysql://user:pw@db:3306/market"),
    ("mariadb+pymysql://user@db/market", "mysql+pymysql://user@db/market"),
    ("mysql+pymysql://user@db/market?charset=utf8mb4", "mysql+pymysql://user@db/market?charset=utf8mb4"),
    ("sqlite:////srv/data/market.db", "sqlite:////srv/data/market.db"),
])
def test_database_url_uses_the_pymysql_driver(given, expected):
    settings = settings_of(DATABASE_URL=given)
    assert settings.database_url == expected
    assert settings.is_sqlite == expected.startswith("sqlite")


def test_empty_log_dir_turns_file_logging_off(tmp_path):
    assert settings_of(LOG_DIR="").log_dir == ""
    assert settings_of().log_dir.endswith("log")  # the default: data/log
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    try:
        configure_logging(settings_of(LOG_DIR=""), process="unit")
        ours = [h for h in root.handlers if getattr(h, "_market_data", False)]
        assert ours and not [h for h in ours if isinstance(h, logging.FileHandler)]

        log_dir = tmp_path / "logs"
        configure_logging(settings_of(LOG_DIR=str(log_dir)), process="unit")
        files = [h for h in root.handlers
                 if getattr(h, "_market_data", False) and isinstance(h, logging.handlers.RotatingFileHandler)]
        assert [h.baseFilename for h in files] == [str(log_dir / "unit.log")]
        logging.getLogger("financial.test").warning("written to the file")
        for handler in files:
            handler.flush()
        assert "written to the file" in (log_dir / "unit.log").read_text()
    finally:
        for handler in list(root.handlers):
            if getattr(handler, "_market_data", False):
                root.removeHandler(handler)
                handler.close()
        for handler in saved_handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(saved_level)


def test_cors_origins_are_a_list_of_origins():
    settings = Settings.from_env({"CORS_ORIGINS": " https://a.example.com/ , http://localhost:3000"}, env_file=None)
    assert settings.cors_origins == ("https://a.example.com", "http://localhost:3000")
    assert Settings.from_env({"CORS_ORIGINS": "*"}, env_file=None).cors_origins == ("*",)
    assert Settings.from_env({}, env_file=None).cors_origins == ()


def test_account_and_alert_settings():
    defaults = settings_of()
    assert (defaults.token_ttl_hours, defaults.trusted_proxies, defaults.smtp_timeout, defaults.alert_stale_minutes,
            defaults.smtp_host, defaults.smtp_sender) == (24, 0, 10.0, 5, None, "alerts@localhost")
    settings = settings_of(TOKEN_TTL_HOURS="720", TRUSTED_PROXIES="1", SMTP_TIMEOUT="2.5", ALERT_STALE_MINUTES="3",
                           SMTP_HOST="smtp.example.com", SMTP_PORT="587", SMTP_USER="alerts", SMTP_PASSWORD="pw pw",
                           SMTP_SENDER=" alerts@example.com ")
    assert (settings.token_ttl_hours, settings.trusted_proxies, settings.smtp_timeout, settings.alert_stale_minutes,
            settings.smtp_port, settings.smtp_sender) == (720, 1, 2.5, 3, 587, "alerts@example.com")
    assert "pw pw" not in repr(settings)


@pytest.mark.parametrize("variables, message", [
    ({"SMTP_USER": "alerts"}, "SMTP_PASSWORD is required when SMTP_USER is set"),
    ({"SMTP_PASSWORD": "secret"}, "SMTP_USER is required when SMTP_PASSWORD is set"),
])
def test_smtp_credentials_come_in_pairs(variables, message):
    with pytest.raises(ConfigError) as raised:
        settings_of(**variables)
    assert str(raised.value) == message and "secret" not in message


def test_the_broker_settings():
    settings = settings_of(BROKER_URL="redis://:pw@redis:6379/1", REDIS_URL="redis://redis:6379/0",
                           INGEST_QUEUE="ingest-eu", INGEST_TASK_TIMEOUT="600")
    assert (settings.broker_url, settings.ingest_queue, settings.ingest_task_timeout) == (
        "redis://:pw@redis:6379/1", "ingest-eu", 600)
    defaults = settings_of()
    assert (defaults.broker_url, defaults.ingest_queue, defaults.ingest_task_timeout) == (None, "celery", 300)
    assert settings_of(BROKER_URL="rediss://cache.example:6380/2", REDIS_URL="rediss://cache.example:6380/0")


@pytest.mark.parametrize("broker, cache, named", [
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0", "127.0.0.1:6379/0"),
    ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379/0", "127.0.0.1:6379/0"),  # no number: database 0
    ("redis://:secret@Redis/3", "rediss://redis:6379/3", "redis:6379/3"),  # same server by either scheme
    ("redis://redis:6379/?db=2", "redis://redis/2", "redis:6379/2"),
])
def test_the_broker_may_not_share_the_cache_database(broker, cache, named):
    with pytest.raises(ConfigError) as raised:
        settings_of(BROKER_URL=broker, REDIS_URL=cache)
    message = str(raised.value)
    assert message.startswith(f"BROKER_URL and REDIS_URL are the same Redis database ({named})")
    assert "secret" not in message


def test_every_variable_is_documented():
    """The configuration table (docs/configuration.md) and .env.example name every variable Settings reads."""
    from financial.config import ROOT, _VARIABLES
    page = (ROOT / "docs" / "configuration.md").read_text()
    table = page[page.index("| variable |"):page.index("## Keeping the AlphaVantage key secret")]
    example = (ROOT / ".env.example").read_text()
    for variable in _VARIABLES:
        assert f"`{variable}`" in table, variable
        assert f"{variable}=" in example, variable


def test_log_lines_are_redacted_like_lib_redacts_upstream_texts(caplog):
    """One redaction for both: the logging filter also catches a key as a URL quotes it (percent-encoded)."""
    from financial.logs import RedactingFilter
    record = logging.makeLogRecord({"msg": "GET /query?apikey=%s failed; key %s", "args": ("K3Y%2B1%2F2", "K3Y+1/2")})
    assert RedactingFilter(["K3Y+1/2", None]).filter(record)
    assert record.getMessage() == "GET /query?apikey=*** failed; key ***"
