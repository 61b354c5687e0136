"""The reliability suite, many times: kill -9 of push and of serve, races, bad input.

Runs ``pytest tests/scenarios/reliability`` with ``AIRLOCK_RELIABILITY_TRIALS`` trials for every
repeated scenario (kill -9 of ``airlock push`` and of ``airlock serve`` mid-rollout) and
prints one row per test: trials (a table-driven test's cases, on SQLite and PostgreSQL,
count as its trials), failures, and what was lost (partial blobs under a digest,
half-written releases, failed re-pushes, rollouts not resumed, corrupt telemetry rows,
server errors seen by clients). The target: no failure, nothing lost. Every number is
counted by the tests themselves (``tests/scenarios/reliability/conftest.py`` writes them as JSON).

    python -m bench reliability [--trials 20] [PYTEST ARGS...]     (make reliability)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench._report import report

ROOT = Path(__file__).resolve().parent.parent


def _lost(row: dict[str, Any]) -> str:
    lost: dict[str, int] = row["lost"]
    if not lost:
        return "—"  # a pass/fail test: what it guards is in its failures
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in lost.items())


def _notes(row: dict[str, Any]) -> str:
    notes = dict(row["notes"])
    if row["skipped"]:
        notes["skipped"] = row["skipped"]
    return "; ".join(f"{k.replace('_', ' ')}: {_text(v)}" for k, v in notes.items())


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    if isinstance(value, list) and len(value) > 6:
        return f"{value[0]} … {value[-1]} ({len(value)} values)"
    return str(value)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench reliability", description=__doc__)
    parser.add_argument("--trials", type=int, default=20, help="trials per repeated scenario")
    args, pytest_args = parser.parse_known_args(argv)
    with tempfile.TemporaryDirectory(prefix="airlock-reliability-") as scratch:
        summary = Path(scratch) / "summary.json"
        env = {
            **os.environ,
            "AIRLOCK_RELIABILITY_TRIALS": str(args.trials),
            "AIRLOCK_RELIABILITY_REPORT": str(summary),
        }
        command = [sys.executable, "-m", "pytest", "-W", "error", "-q", "-p", "no:cacheprovider"]
        status = subprocess.call(
            [*command, "tests/scenarios/reliability", *pytest_args], cwd=ROOT, env=env
        )
        if not summary.exists():
            print(f"pytest exited {status} before any scenario ran; nothing to report")
            return status or 1
        data = json.loads(summary.read_text())
    scenarios = data["scenarios"]
    rows = [[s["scenario"], s["trials"], s["failures"], _lost(s), _notes(s)] for s in scenarios]
    lost = sum(sum(s["lost"].values()) for s in scenarios)
    failures = sum(s["failures"] for s in scenarios)
    report(
        "reliability",
        ["scenario", "trials", "failures", "lost", "notes"],
        rows,
        {
            "trials_per_repeated_scenario": data["trials_per_repeated_scenario"],
            "pytest_exit_status": status,
            "total_failures": failures,
            "total_lost": lost,
            "scenarios": scenarios,
        },
    )
    verdict = "met" if failures == 0 and lost == 0 and status == 0 else "NOT met"
    print(f"target (no failure, nothing lost, 0 server errors): {verdict}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
