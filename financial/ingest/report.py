"""What a run reports: one outcome per task, the after-run steps that failed, and a closing line.

    symbol  status    rows  detail
    IBM     ok          10  only the latest 100 points
    AAPL    skipped      0  not fetched: the alphavantage daily quota is spent
    2 instruments: 1 ok, 0 failed, 1 skipped; 10 rows stored
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from financial.services.alerts import Summary

STATUSES = ("ok", "failed", "skipped")


@dataclass
class Outcome:
    label: str
    status: str  # one of STATUSES
    rows: int = 0
    detail: str = ""
    seconds: float = 0.0
    quota_spent: bool = False  # the upstream said its daily quota is spent: call it no more this run
    instrument_id: int | None = None  # the instrument whose bars were stored
    retryable: bool = False  # failed for a reason that may pass (network, 5xx, rate limit): worth another try


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    steps: list[Outcome] = field(default_factory=list)  # what follows the instruments: retention, rankings, alerts
    alerts: Summary | None = None  # alerts raised and e-mails sent, after a minute ingest
    # The instruments whose bars the run wrote or deleted, which the after-run steps look at again; None when
    # not known (a report made by hand), which has them look at every instrument.
    changed: set[int] | None = None

    def add(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        if outcome.instrument_id is not None and self.changed is not None:
            self.changed.add(outcome.instrument_id)

    @property
    def ok(self) -> bool:
        return all(outcome.status == "ok" for outcome in self.outcomes + self.steps)

    @property
    def rows(self) -> int:
        return sum(outcome.rows for outcome in self.outcomes)

    def render(self) -> str:
        failed_steps = [o for o in self.steps if o.status != "ok"]  # a step is news only when it failed
        width = max([len(o.label) for o in self.outcomes + failed_steps] + [6])
        lines = [f"{'symbol':<{width}}  {'status':<7}  {'rows':>6}  detail"]
        for o in self.outcomes + failed_steps:
            lines.append(f"{o.label:<{width}}  {o.status:<7}  {o.rows:>6}  {o.detail}".rstrip())
        counts = {status: sum(o.status == status for o in self.outcomes) for status in STATUSES}
        closing = (f"{len(self.outcomes)} instruments: {counts['ok']} ok, {counts['failed']} failed, "
                   f"{counts['skipped']} skipped; {self.rows} rows stored")
        lines.append(closing + (f"; {self.alerts.render()}" if self.alerts else ""))
        return "\n".join(lines)
