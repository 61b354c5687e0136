"""`airlock demo --no-serve --fast` end to end in a fresh folder, judged by the catalog it leaves."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from airlock import audit
from airlock.config import Settings
from airlock.demo import scenario
from airlock.services.registry import Registry
from airlock.services.rollouts import CONTROLLER, Rollouts
from airlock.services.serving import Serving
from airlock.services.workspace import Workspace


@pytest.mark.slow
def test_demo_promotes_v110_and_the_analysis_rolls_back_v120(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    env = {**os.environ, "COLUMNS": "120", "AIRLOCK_HOME": str(tmp_path / "elsewhere")}
    code = "from airlock.cli.main import run; run()"
    args = ["demo", "--no-serve", "--fast", "--dir", str(folder), "--port", "0"]
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "time to detect" in out.stdout
    assert "hash chain intact" in out.stdout

    with Workspace.open(Settings(home=folder / ".airlock", user="maya")) as ws:
        promoted, rolled_back = sorted(Rollouts(ws).recent(scenario.SERVICE), key=lambda v: v.id)
        assert (promoted.candidate, promoted.phase) == ("lumen@1.1.0", "promoted")
        assert (rolled_back.candidate, rolled_back.phase) == ("lumen@1.2.0", "rolled_back")
        decision = Rollouts(ws).history(rolled_back.id)[-1]
        assert decision.action == "rollback"
        assert decision.actor == CONTROLLER.name  # the analysis, not a person
        assert decision.verdict is not None
        assert decision.verdict.outcome == "fail"
        assert Serving(ws).plan(scenario.SERVICE).stable == "lumen@1.1.0"
        assert Serving(ws).plan(scenario.SERVICE).candidates == ()
        stable = {a.name: a.version for a in Registry(ws).aliases("lumen")}["stable"]
        assert stable == "1.1.0"
        with ws.db.read() as conn:
            report = audit.verify(conn)
        assert report.ok
        assert report.checked > 20
