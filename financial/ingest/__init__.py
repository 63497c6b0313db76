"""Ingest: fetch price series through `lib` and store them, one series per transaction.

    get_raw_data.py → plan (IngestRequest → Plan: tasks + after-run steps)
                    → runner (each task: fetch through lib → store in one transaction → Outcome)
                    → after (retention, rankings, alerts) → the summary (Report)

    plan       the command line as a typed request; the run it asks for, decided once
    tasks      what a task is (plain data with a `fetch`), the series it returns, what it may ask of storage
    sources/   one module per source: alphavantage, crypto (exchange or Cryptowatch), coins (CSV), demo
    runner     runs tasks: one series per transaction, failures isolated, daily quotas respected
    after      the after-run steps; the ingest's only way into the services
    report     outcomes and the summary lines
    scheduler  one run, and `--every N`, which owns its upstream clients for the life of the process

With BROKER_URL set, financial.workers carries the same tasks to Celery workers, which run them through
`run_one`, and brings their outcomes back into the same Report.
"""
from financial.ingest.after import AfterRun, finish, prune_intraday_bars
from financial.ingest.plan import IngestRequest, Plan, plan_for, plan_run
from financial.ingest.report import Outcome, Report
from financial.ingest.runner import run, run_one, store_series
from financial.ingest.tasks import FetchContext, InstrumentSpec, Series, Task

__all__ = ["AfterRun", "FetchContext", "IngestRequest", "InstrumentSpec", "Outcome", "Plan", "Report", "Series",
           "Task", "finish", "plan_for", "plan_run", "prune_intraday_bars", "run", "run_one", "store_series"]
