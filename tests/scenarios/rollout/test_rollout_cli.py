"""The real ``airlock`` CLI: rollout commands, the controller command, and drills that run the
real gateway in-process and record their results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airlock import audit
from airlock.config import Settings
from airlock.services.registry import Registry
from airlock.services.rollouts import Rollouts
from airlock.services.serving import Serving
from airlock.services.workspace import Workspace
from airlock_testkit import Cli
from gateway.support import MOON, Releases

CANARY = """
strategy: canary
steps:
  - {weight_pct: 10, bake_seconds: 600}
  - {weight_pct: 100, bake_seconds: 600}
analysis: {min_requests: 50, max_step_seconds: 1200}
"""
DRILL = """
strategy: canary
steps: [{weight_pct: 50, bake_seconds: 120}]
analysis: {min_requests: 30, max_step_seconds: 240}
"""


@pytest.fixture
def home(cli: Cli, tmp_path: Path) -> Path:
    """`airlock init` (the owner's admin token), two releases and the service ``chat``."""
    cli("init")
    ws = Workspace.open(Settings(home=tmp_path / ".airlock", user="alice"))
    try:
        releases = Releases(ws, tmp_path / "folders")
        releases.builtin(
            "chat", "1.0.0", MOON, files={"safety_policy.yaml": {"pii": ["email", "phone"]}}
        )
        releases.builtin("chat", "1.1.0", MOON)
    finally:
        ws.close()
    cli("service", "create", "chat", "--stable", "chat@1.0.0", "--reason", "launch")
    (tmp_path / "canary.yaml").write_text(CANARY)
    (tmp_path / "drill.yaml").write_text(DRILL)
    return tmp_path


def _workspace(home: Path) -> Workspace:
    return Workspace.open(Settings(home=home / ".airlock", user="alice"))


def test_rollout_commands(cli: Cli, home: Path) -> None:
    strategy = str(home / "canary.yaml")
    out = cli("rollout", "start", "chat", "--candidate", "chat@1.1.0", "--strategy", strategy)
    assert "rollout #1 of chat: chat@1.1.0 (canary, 2 step(s)); step 1/2: 10 %" in out.output
    again = cli(
        "rollout", "start", "chat", "--candidate", "chat@1.1.0", "--strategy", strategy, ok=False
    )
    assert again.exit_code == 1 and "already has rollout #1 in flight" in again.output
    missing = cli(
        "rollout", "start", "chat", "--candidate", "chat@1.1.0", "--strategy", "nope.yaml", ok=False
    )
    assert missing.exit_code == 1 and "cannot read nope.yaml" in missing.output

    status = cli("rollout", "status", "chat").output
    assert "progressing" in status and "chat@1.0.0 → chat@1.1.0" in status and "◀ now" in status
    ticked = cli("controller", "--tick", "0.05", "--ticks", "2")
    assert "lease released" in ticked.output
    analysed = cli("rollout", "status", "chat").output
    assert "inconclusive" in analysed and "error_rate" in analysed  # the verdict per metric
    data = json.loads(cli("rollout", "status", "chat", "--json").output)
    assert (data["phase"], data["step"], data["candidate_weight_pct"]) == ("progressing", 1, 10.0)
    assert data["last_verdict"]["outcome"] == "inconclusive"

    assert "pause → paused" in cli("rollout", "pause", "chat", "--reason", "lunch").output
    assert "resume → progressing" in cli("rollout", "resume", "chat").output
    no_reason = cli("rollout", "rollback", "chat", ok=False)
    assert no_reason.exit_code == 2  # --reason is required
    rolled = cli("rollout", "rollback", "chat", "--reason", "bad answers").output
    assert "rollback → rolled_back; bad answers" in rolled
    assert "plan generation 2 stored" in rolled

    cli("rollout", "start", "chat", "--candidate", "chat@1.1.0", "--strategy", strategy)
    promoted = cli("rollout", "promote", "chat", "--reason", "great").output
    assert "promote → promoted" in promoted
    assert "chat@stable" in cli("alias", "ls", "chat").output
    assert "1.1.0" in cli("alias", "ls", "chat").output

    listing = cli("rollout", "history", "chat").output
    assert "#2" in listing and "#1" in listing and "rolled_back" in listing
    one = cli("rollout", "history", "--rollout", "1").output
    for action in ("start", "pause", "resume", "rollback"):
        assert action in one
    exported = json.loads(cli("rollout", "history", "--rollout", "2", "--json").output)
    assert [h["action"] for h in exported["history"]] == ["start", "promote"]
    viewer = cli("rollout", "abort", "chat", "--reason", "x", ok=False)
    assert viewer.exit_code == 1 and "no rollout in flight" in viewer.output


def test_a_viewer_cannot_start_a_rollout_or_run_the_controller(cli: Cli, home: Path) -> None:
    token = cli("token", "create", "--user", "vic", "--role", "viewer").output
    secret = next(w for w in token.split() if w.startswith("alk_"))
    cli.env["AIRLOCK_TOKEN"] = secret
    strategy = str(home / "canary.yaml")
    denied = cli(
        "rollout", "start", "chat", "--candidate", "chat@1.1.0", "--strategy", strategy, ok=False
    )
    assert denied.exit_code == 1 and "may not rollout.start" in denied.output
    controller = cli("controller", "--ticks", "1", ok=False)
    assert controller.exit_code == 1 and "may not rollout.control" in controller.output


@pytest.mark.parametrize(
    ("fault", "metric"),
    [("errors=0.5", "error_rate"), ("unsafe=60%", "guardrail_rate"), ("latency=+80ms", "latency")],
)
def test_a_drill_is_detected_reverted_and_recorded(
    cli: Cli, home: Path, fault: str, metric: str
) -> None:
    argv = ["drill", "chat", "--fault", fault, "--strategy", str(home / "drill.yaml")]
    argv += ["--rps", "200", "--tick", "0.05", "--sync", "0.05"]
    out = cli(*argv).output
    assert "drill #1 of chat: detected and rolled back" in out
    assert "chat@1.0.0-drill.1" in out

    [drill] = json.loads(cli("drill", "history", "--json").output)
    assert drill["outcome"] == "detected" and drill["release"] == "chat@1.0.0-drill.1"
    assert drill["detect_seconds"] > 0 and drill["revert_seconds"] is not None
    assert 0 < drill["faulted_requests"] <= drill["faulty_requests"] < drill["requests"]
    failing = [m for m in drill["result"]["verdict"]["per_metric"] if m["outcome"] == "fail"]
    assert metric in {m["metric"] for m in failing}
    assert drill["result"]["all_gateways"]["requests"] >= drill["faulty_requests"]
    assert "detected" in cli("drill", "history", "chat").output

    ws = _workspace(home)
    try:
        faulty = Registry(ws).show("chat@1.0.0-drill.1")
        assert faulty.manifest.lineage.parent == "chat@1.0.0"
        assert faulty.manifest.components["base_model"].ref == "chat@1.0.0"
        assert [f.path for f in faulty.manifest.files] == ["config.json"]
        assert Serving(ws).plan("chat").stable == "chat@1.0.0"
        [rollout] = Rollouts(ws).recent("chat")
        assert (rollout.kind, rollout.phase) == ("drill", "rolled_back")
        with ws.db.read() as conn:
            [event] = list(audit.entries(conn, action="drill.record"))
            assert event.details["outcome"] == "detected"
            assert audit.verify(conn).ok
    finally:
        ws.close()


def test_drill_faults_are_validated(cli: Cli, home: Path) -> None:
    bad = cli("drill", "chat", "--fault", "errors=2", ok=False)
    assert bad.exit_code == 1 and "must be in (0, 1]" in bad.output
    assert "no drills yet" in cli("drill", "history").output


def test_rollout_plan_says_what_each_step_can_detect_and_warns_on_low_traffic(
    cli: Cli, home: Path
) -> None:
    strategy = str(home / "canary.yaml")
    refused = cli("rollout", "plan", "chat", "--strategy", strategy, ok=False)
    assert refused.exit_code != 0
    assert "served no live traffic" in refused.output and "--rps" in refused.output
    busy = cli(
        "rollout",
        "plan",
        "chat",
        "--strategy",
        strategy,
        "--candidate",
        "chat@1.1.0",
        "--rps",
        "200",
        "--error-rate",
        "0.01",
        "--json",
    )
    plan = json.loads(busy.output)
    first, second = plan["steps"]
    errors = {m["metric"]: m for m in first["metrics"]}["error_rate"]
    assert 1.0 < errors["detectable"] < 2.0  # 10 min at 10 % of 200 req/s catches 2x errors
    assert errors["seconds_to_target"] < 600
    later = {m["metric"]: m for m in second["metrics"]}["error_rate"]
    assert later["detectable"] < errors["detectable"]  # evidence carries across steps
    assert plan["steps"][0]["warnings"] == []
    quiet = cli("rollout", "plan", "chat", "--strategy", strategy, "--rps", "0.05")
    assert "warning:" in quiet.output and "cannot detect" in quiet.output
    assert "min_requests" in quiet.output
