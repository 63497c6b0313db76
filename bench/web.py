"""`make bench-web` (and the first step of `make bench`): how fast the web page shows its first chart.

    python -m bench.web [--runs 5]

The service runs as in production (gunicorn, conf/gunicorn.conf.py, 2 workers) on a fresh SQLite file with
the sample data (`get_raw_data.py --demo`). Headless Chromium (Debian's, through Selenium, offline) opens
`/` and the page marks "first-chart" with the Performance API once the markets view's chart is drawn: the
page's own SVG picture of the candles while Plotly is still loading (a first visit), or Plotly's chart
(Plotly.react resolved, after its plotly_afterplot event); and "first-interactive-chart" once Plotly's is
there (zoom, hover values). Both are measured from the start of navigation.

- cold: a new browser profile each run, so nothing is cached by the browser: the page, its modules and
  Plotly's 1.5 MB (gzipped) bundle are fetched, and the bundle compiled, every time; the first run also
  meets the server's empty answer cache;
- warm: the same browser reloading the page, as a returning visitor does: the fingerprinted files come
  from its cache (no request at all), Plotly's compiled code from V8's code cache.
Results are printed and written to data/bench/web.json, with where a cold run's time goes: when the chart's
data had arrived ("first-chart-data"), when Plotly's bundle had been compiled and run ("plotly-ready"),
when Plotly's chart was drawn ("first-interactive-chart"). The target: the first chart within 1 s.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.run import OUT, ROOT, start_server, stop_server
from tests.browser.live import Chrome, browser_missing

TARGET_MS = 1000
FIRST_CHART = "performance.getEntriesByName('first-chart').map(e => e.startTime)[0]"


MARKS = "Object.fromEntries(performance.getEntriesByType('mark').map(e => [e.name, e.startTime]))"


def first_chart_ms(driver, url: str, *, reload: bool = False, marks: list | None = None) -> float:
    if reload:
        driver.refresh()
    else:
        driver.get(url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        value = driver.execute_script(f"return {FIRST_CHART}")
        if value is not None:
            if marks is not None:
                marks.append(driver.execute_script(f"return {MARKS}"))
            return float(value)
        time.sleep(0.05)
    raise RuntimeError(f"no chart within 30 s at {url}: {driver.get_log('browser')}")


def summary(values: list[float]) -> dict:
    return {"runs_ms": [round(v, 1) for v in values], "median_ms": round(statistics.median(values), 1),
            "max_ms": round(max(values), 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    reason = browser_missing()
    if reason:
        print(f"the web benchmark needs headless Chromium: {reason}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="mdt-bench-web-") as tmp:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("DATABASE_", "REDIS_", "CACHE_", "ALPHAVANTAGE_"))}
        env.update(DATABASE_URL=f"sqlite:///{Path(tmp) / 'web.db'}", ENV_FILE=os.devnull, LOG_DIR="",
                   APP_ENV="production", SECRET_KEY="bench-secret", LOG_LEVEL="warning", WEB_CONCURRENCY="2",
                   PYTHONPATH=str(ROOT))
        subprocess.run([sys.executable, str(ROOT / "get_raw_data.py"), "--demo"], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server, base = start_server("app:app", env)
        try:
            cold, cold_marks = [], []
            for _ in range(args.runs):
                with Chrome() as browser:
                    cold.append(first_chart_ms(browser.driver, base + "/", marks=cold_marks))
            with Chrome() as browser:
                first_chart_ms(browser.driver, base + "/")
                warm = [first_chart_ms(browser.driver, base + "/", reload=True) for _ in range(args.runs)]
        finally:
            stop_server(server)
    report = {"when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "load_average": os.getloadavg()[0], "target_ms": TARGET_MS,
              "cold": summary(cold), "warm": summary(warm),
              # when, in the cold runs, the chart's data had arrived and Plotly had compiled (median ms)
              "cold_breakdown": {name: round(statistics.median(m.get(name, 0) for m in cold_marks), 1)
                                 for name in ("first-chart-data", "first-chart", "plotly-ready",
                                              "first-interactive-chart")}}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "web.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"first chart of / (ms from navigation start; target {TARGET_MS}; load average {report['load_average']:.2f})")
    for kind in ("cold", "warm"):
        row = report[kind]
        verdict = "ok" if row["median_ms"] <= TARGET_MS else "OVER"
        print(f"  {kind:5} median {row['median_ms']:7.1f}  max {row['max_ms']:7.1f}  {verdict}  runs {row['runs_ms']}")
    print("  cold, median ms: chart data there at {first-chart-data}, chart drawn at {first-chart}, Plotly "
          "compiled at {plotly-ready}, interactive chart at {first-interactive-chart}"
          .format(**report["cold_breakdown"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
