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
def test_demo_promotes_v110_and_the_analysis_rolls_back_v120_and_v130(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    env = {**os.environ, "COLUMNS": "200", "AIRLOCK_HOME": str(tmp_path / "elsewhere")}
    code = "from airlock.cli.main import run; run()"
    args = ["demo", "--no-serve", "--fast", "--dir", str(folder), "--port", "0"]
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "time to detect" in out.stdout
    assert "hash chain intact" in out.stdout
    assert "expected" not in out.stdout, out.stdout[-3000:]  # every rollout ended as planned

    with Workspace.open(Settings(home=folder / ".airlock", user="maya")) as ws:
        rollouts = Rollouts(ws)
        promoted, faulty, evasive = sorted(rollouts.recent(scenario.SERVICE), key=lambda v: v.id)
        assert (promoted.candidate, promoted.phase) == ("lumen@1.1.0", "promoted")
        assert (faulty.candidate, faulty.phase) == ("lumen@1.2.0", "rolled_back")
        assert (evasive.candidate, evasive.phase) == ("lumen@1.3.0", "rolled_back")
        for rolled_back in (faulty, evasive):
            decision = rollouts.history(rolled_back.id)[-1]
            assert decision.action == "rollback"
            assert decision.actor == CONTROLLER.name  # the analysis, not a person
            assert decision.verdict is not None
            assert decision.verdict.outcome == "fail"

        # v1.3.0 fails calls no more and answers no slower: the refusal scorer caught it
        verdict = rollouts.history(evasive.id)[-1].verdict
        assert verdict is not None
        failing = [m for m in verdict.per_metric if m.outcome == "fail"]
        assert [m.metric for m in failing] == [scenario.REFUSAL_METRIC]
        refusals = failing[0]
        assert refusals.n_candidate > 0 and refusals.n_stable > 0  # scored on both arms
        assert refusals.candidate_value > refusals.stable_value
        assert verdict.metric("error_rate").candidate_value == 0.0

        assert Serving(ws).plan(scenario.SERVICE).stable == "lumen@1.1.0"
        assert Serving(ws).plan(scenario.SERVICE).candidates == ()
        stable = {a.name: a.version for a in Registry(ws).aliases("lumen")}["stable"]
        assert stable == "1.1.0"
        notes = Registry(ws).manifest("lumen@1.3.0").notes
        assert any("prompt template" in change for change in notes.changes)
        with ws.db.read() as conn:
            report = audit.verify(conn)
        assert report.ok
        assert report.checked > 20

    # the narration names the signal that fired and the scored answers it took
    said = " ".join(out.stdout.split())  # however Rich wrapped the lines
    scored = refusals.n_candidate + refusals.n_stable
    assert "the online refusal scorer (quality.no_refusal) fired" in said
    assert f"on {scored} scored answers ({refusals.n_candidate} candidate" in said
    assert "error rate 0 % → 0 %" in said
