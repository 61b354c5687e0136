"""The serving service on SQLite and PostgreSQL: plans (compare-and-swap, audit, history),
opt-outs, telemetry flushes read back as release windows, shadow samples."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from airlock.core.analysis import LATENCY_HISTOGRAM_SIZE
from airlock.core.telemetry import ShadowSample, TelemetryRecord
from airlock.errors import Conflict
from airlock.runtime.builtin_model import train
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.serving import Serving
from airlock.services.workspace import Workspace

ALICE = Actor("alice")


def _push(registry: Registry, tmp_path: Path, version: str) -> str:
    folder = tmp_path / version
    train(f"The moon number {version} shines.\n\nStars glow.").save(folder)
    return registry.push(folder, name="chat", version=version, actor=ALICE).ref


def test_plans_opt_outs_and_telemetry(workspace: Workspace, tmp_path: Path) -> None:
    registry = Registry(workspace)
    serving = Serving(workspace, registry=registry)
    stable, candidate = _push(registry, tmp_path, "1.0.0"), _push(registry, tmp_path, "1.1.0")
    seen = []
    serving.subscribe(seen.append)
    serving.create("chat", stable, actor=ALICE, reason="launch")
    canary = serving.plan("chat").with_weights({candidate: 500})
    assert serving.set_plan(canary, actor=ALICE, reason="5 % canary") == canary
    with pytest.raises(Conflict):
        serving.set_plan(canary, actor=ALICE, reason="twice")
    assert [p.generation for p in seen] == [0, 1]
    assert serving.generations() == {"chat": 1}
    assert serving.set_opt_out("chat", "amy", actor=ALICE)
    assert not serving.set_opt_out("chat", "amy", actor=ALICE)  # already there
    assert serving.get("chat").opt_outs == ("amy",)
    assert [v.name for v in serving.all()] == ["chat"]

    t0 = datetime.now(UTC)
    hist = [0] * LATENCY_HISTOGRAM_SIZE
    hist[3] = 2
    rec = TelemetryRecord(
        "chat",
        candidate,
        "live",
        t0,
        t0 + timedelta(seconds=1),
        requests=2,
        errors=1,
        errors_by_kind={"timeout": 1},
        fallbacks=1,
        feedback_sum=1.0,
        feedback_count=1,
        latency_histogram=tuple(hist),
    )
    later = TelemetryRecord(
        "chat",
        candidate,
        "live",
        t0 + timedelta(seconds=1),
        t0 + timedelta(seconds=2),
        requests=3,
        latency_histogram=tuple(hist),
    )
    shadow = TelemetryRecord("chat", stable, "shadow", t0, t0 + timedelta(seconds=1), requests=4)
    sample = ShadowSample("chat", stable, candidate, "chatcmpl-1", t0, True, 3.5, "a", "b", None)
    serving.flush([rec, shadow], [sample], gateway="gw-1")
    serving.flush([later], gateway="gw-2")
    windows = serving.windows("chat")
    assert windows[candidate].requests == 5
    assert windows[candidate].errors == 1
    assert windows[candidate].latency_histogram[3] == 4
    assert serving.windows("chat", traffic="shadow")[stable].requests == 4
    assert serving.windows("chat", since=t0 + timedelta(seconds=1))[candidate].requests == 3
    assert serving.telemetry("chat")[candidate].errors_by_kind == {"timeout": 1}
    got = serving.shadow_samples("chat")
    assert got == [sample] or (got[0].output, got[0].ok) == ("a", True)
    assert [c.reason for c in serving.history("chat")] == ["launch", "5 % canary"]
