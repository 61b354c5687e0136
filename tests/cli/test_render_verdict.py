"""The one verdict table (cli/render.py) that ``rollout status`` and the demo print."""

from __future__ import annotations

import io

from rich.console import Console

from airlock.cli.render import verdict_table
from airlock.core.verdict import SrmReport, VerdictReport
from airlock_testkit import failing_errors_metric

ERRORS = failing_errors_metric()
REPORT = VerdictReport(
    "fail", 400, 3600, "error rate rose", (ERRORS,), SrmReport(False, 0.1, 0.1, 1.0, 1e4)
)


def _text(renderable: object) -> str:
    console = Console(width=200, file=io.StringIO())
    console.print(renderable)
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


def test_the_full_table_has_every_column_and_the_sample_ratio() -> None:
    text = _text(verdict_table(REPORT))
    for header in ("metric", "anytime-valid interval", "harm above", "detectable", "evidence"):
        assert header in text
    row = next(line for line in text.splitlines() if "error_rate" in line)
    for cell in ("fail", "12.00 %", "1.00 %", "9.50×", "[3.20×, ∞]", "1.20×", "1.50×", "812 / 200"):
        assert cell in row
    assert "sample ratio: candidate 10.00% of requests, planned 10.00%" in text
    assert "MISMATCH" not in text


def test_the_brief_table_keeps_what_a_narrated_run_needs() -> None:
    text = _text(verdict_table(REPORT, brief=True))
    assert "harm above" not in text and "evidence" not in text and "sample ratio" not in text
    row = next(line for line in text.splitlines() if "error_rate" in line)
    assert "    error_rate" in row  # indented under the narration
    assert "[3.20×, ∞]" in row and "1.50×" in row
