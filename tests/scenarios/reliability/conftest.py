"""The reliability suite's trial count and its ledger.

``AIRLOCK_RELIABILITY_TRIALS`` sets how many trials a repeated scenario runs (default 2,
so CI stays fast; ``make reliability`` asks for many). Every test in this folder is a
scenario of the summary table; a test that repeats trials reports each one to the
``ledger`` fixture with what it found lost. With ``AIRLOCK_RELIABILITY_REPORT=FILE`` the
summary is written there as JSON at the end of the session (``bench/reliability_table.py``
renders it); the numbers are the test runs' own.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

TRIALS_ENV = "AIRLOCK_RELIABILITY_TRIALS"
REPORT_ENV = "AIRLOCK_RELIABILITY_REPORT"


def trial_count() -> int:
    raw = os.environ.get(TRIALS_ENV, "2")
    try:
        count = int(raw)
    except ValueError:
        raise pytest.UsageError(f"{TRIALS_ENV}={raw!r} is not a whole number") from None
    if count < 1:
        raise pytest.UsageError(f"{TRIALS_ENV} must be at least 1, not {count}")
    return count


@dataclass
class Scenario:
    """What one test saw: its trials, failed trials, and counts of what was lost."""

    name: str
    trials: int = 0
    failures: int = 0
    lost: dict[str, int] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Ledger:
    """Filled by a repeated test, trial by trial (a trial that raises counts as failed)."""

    scenario: Scenario

    def trial(self, *, failed: bool = False, **lost: int) -> None:
        self.scenario.trials += 1
        self.scenario.failures += int(failed)
        for what, count in lost.items():
            self.scenario.lost[what] = self.scenario.lost.get(what, 0) + count

    def note(self, **notes: Any) -> None:
        self.scenario.notes.update(notes)


_SCENARIOS: dict[str, Scenario] = {}


def _scenario(nodeid: str) -> Scenario:
    # one row per test function; parametrised cases (bad-input tables) are trials of it
    name = nodeid.split("::", 1)[-1].split("[", 1)[0]
    module = Path(nodeid.split("::", 1)[0]).stem.removeprefix("test_")
    key = f"{module}: {name.removeprefix('test_').replace('_', ' ')}"
    return _SCENARIOS.setdefault(key, Scenario(key))


@pytest.fixture
def trials() -> int:
    return trial_count()


@pytest.fixture
def ledger(request: pytest.FixtureRequest) -> Ledger:
    scenario = _scenario(request.node.nodeid)
    scenario.notes["repeated"] = True
    return Ledger(scenario)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    scenario = _scenario(report.nodeid)
    if scenario.notes.get("repeated"):
        # the test counted its own trials; a failure outside them (set-up, a final check)
        # is one more failure
        if report.when == "call" and report.failed and not scenario.failures:
            scenario.failures += 1
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        if report.skipped:
            scenario.notes["skipped"] = scenario.notes.get("skipped", 0) + 1
            return
        scenario.trials += 1
        scenario.failures += int(report.failed)


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get(REPORT_ENV)
    if not target or not _SCENARIOS:
        return
    rows = [
        {
            "scenario": s.name,
            "trials": s.trials,
            "failures": s.failures,
            "lost": s.lost,
            "skipped": s.notes.get("skipped", 0),
            "notes": {k: v for k, v in s.notes.items() if k not in {"repeated", "skipped"}},
        }
        for s in _SCENARIOS.values()
    ]
    payload = {"trials_per_repeated_scenario": trial_count(), "scenarios": rows}
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    Path(target).write_text(json.dumps(payload, indent=2))
