"""The container files run what the README and docs/operations.md document, and the compose files are
well-formed."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import missing_server

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED = (ROOT / "README.md").read_text() + (ROOT / "docs" / "operations.md").read_text()
WORKERS_DOC = (ROOT / "docs" / "workers.md").read_text()
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def compose(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def command(service: dict) -> str:
    return " ".join(service["command"])


def test_the_image_serves_the_documented_gunicorn_command():
    cmd = re.search(r'^CMD (\[.*\])$', DOCKERFILE, re.M).group(1)
    assert yaml.safe_load(cmd) == ["gunicorn", "-c", "conf/gunicorn.conf.py", "app:app"]
    assert "gunicorn -c conf/gunicorn.conf.py app:app" in DOCUMENTED
    assert command(compose("docker-compose.prod.yml")["services"]["api"]) == "gunicorn -c conf/gunicorn.conf.py app:app"


def test_the_image_installs_the_pinned_requirements_that_ci_installs():
    assert "pip install -r /tmp/requirements.txt" in DOCKERFILE
    assert "COPY requirements.txt /tmp/requirements.txt" in DOCKERFILE
    assert (ROOT / "requirements-dev.txt").read_text().splitlines()[1] == "-r requirements.txt"
    assert "-r requirements-dev.txt" in (ROOT / "Makefile").read_text()


def test_prod_compose_runs_the_documented_commands():
    services = compose("docker-compose.prod.yml")["services"]
    assert command(services["migrate"]) == "flask --app app db upgrade"
    assert "flask --app app db upgrade" in DOCUMENTED
    scheduler = command(services["scheduler"])
    assert scheduler.startswith("python get_raw_data.py --every 60")
    assert scheduler.replace("${TRACKED_MARKETS:-kraken:btcusd,kraken:ethusd}", "kraken:btcusd,kraken:ethusd") \
        in DOCUMENTED
    assert services["scheduler"]["deploy"]["replicas"] == 1


def test_prod_services_have_health_restart_and_ordering():
    services = compose("docker-compose.prod.yml")["services"]
    for name, service in services.items():
        if name == "migrate":  # a one-shot job: it runs once, exits 0, and is not restarted
            assert service["restart"] == "no" and service["healthcheck"] == {"disable": True}
        else:
            assert service["restart"] == "unless-stopped", name
            assert service["healthcheck"]["test"], name
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["depends_on"]["mysql"]["condition"] == "service_healthy"
    assert services["proxy"]["depends_on"]["api"]["condition"] == "service_healthy"


def env_file(name: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (ROOT / name).read_text().splitlines()
             if line and not line.startswith("#") and "=" in line)
    return {key: value.split("#")[0].strip() for key, value in pairs}


@pytest.mark.parametrize("name", ["docker-compose.dev.yml", "docker-compose.prod.yml"])
def test_both_stacks_run_scalable_workers_with_a_health_check_as_documented(name):
    worker = compose(name)["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker  # `--scale worker=N` needs neither
    documented = command(worker).replace("${WORKER_CONCURRENCY:-8}", "8")
    assert documented == "python get_raw_data.py --worker --concurrency 8 --heartbeat /tmp/heartbeat"
    assert documented in WORKERS_DOC
    assert "/tmp/heartbeat" in " ".join(worker["healthcheck"]["test"])
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name, variables", [
    ("docker-compose.dev.yml", lambda: compose("docker-compose.dev.yml")["services"]["worker"]["environment"]),
    ("docker-compose.prod.yml", lambda: env_file(".env.prod.example")),
])
def test_the_broker_is_a_redis_database_apart_from_the_cache(name, variables):
    from financial.config import Settings
    values = variables()
    settings = Settings.from_env({"BROKER_URL": values["BROKER_URL"], "REDIS_URL": values["REDIS_URL"]},
                                 env_file=None)  # refuses one database for both
    assert settings.broker_url == "redis://redis:6379/1" and settings.redis_url == "redis://redis:6379/0"


def test_the_prod_redis_never_evicts_the_broker_queues():
    """The queues have no expiry; only keys that have one (cache entries) may be evicted under memory pressure."""
    redis_command = compose("docker-compose.prod.yml")["services"]["redis"]["command"]
    policy = redis_command[redis_command.index("--maxmemory-policy") + 1]
    assert policy.startswith("volatile-") or policy == "noeviction"


@pytest.mark.parametrize("name, variables", [
    ("docker-compose.dev.yml", lambda: compose("docker-compose.dev.yml")["services"]["app"]["environment"]),
    ("docker-compose.prod.yml", lambda: env_file(".env.prod.example")),
])
def test_the_counters_have_a_redis_that_never_evicts(name, variables):
    """The cache's Redis evicts under memory pressure; the failed-login and sign-up counters live in a
    Redis of their own that never does, which the API waits for."""
    from financial.config import Settings
    services = compose(name)["services"]
    settings = Settings.from_env(variables(), env_file=None)
    assert settings.counters_redis_url == "redis://redis-limits:6379/0" != settings.redis_url
    limits_command = services["redis-limits"]["command"]
    assert limits_command[limits_command.index("--maxmemory-policy") + 1] == "noeviction"
    api = services["api" if "api" in services else "app"]
    assert api["depends_on"]["redis-limits"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", ["docker-compose.dev.yml", "docker-compose.prod.yml"])
def test_compose_files_validate(name):
    if not shutil.which("docker-compose"):
        missing_server("docker-compose is not installed (apt-get install docker-compose)")
    env = {**os.environ, "PROD_ENV_FILE": ".env.prod.example"}
    result = subprocess.run(["docker-compose", "-f", name, "config", "-q"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_nginx_configuration_is_valid(tmp_path):
    """`nginx -t` on conf/nginx.conf inside a minimal main configuration (nginx from Debian's packages)."""
    if not shutil.which("nginx"):
        missing_server("nginx is not installed (apt-get install nginx-core)")
    main = tmp_path / "nginx.conf"
    main.write_text(f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
                    f"http {{\n  access_log off;\n  client_body_temp_path {tmp_path};\n"
                    f"  include {ROOT / 'conf' / 'nginx.conf'};\n}}\n")
    result = subprocess.run(["nginx", "-t", "-c", str(main), "-p", str(tmp_path)], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
