"""`service create` gives the model its `stable` alias; a drill of unsafe answers on a release
without a safety policy is refused up front."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airlock.config import Settings
from airlock.errors import InvalidInput
from airlock.services.drills import Drills
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.rollouts import Rollouts
from airlock.services.workspace import Workspace
from airlock_testkit import Cli
from gateway.support import MOON, Releases


@pytest.fixture
def home(cli: Cli, tmp_path: Path) -> Path:
    cli("init")
    ws = Workspace.open(Settings(home=tmp_path / ".airlock", user="alice"))
    try:
        releases = Releases(ws, tmp_path / "folders")
        releases.builtin("chat", "1.0.0", MOON, files={"safety_policy.yaml": {"pii": ["phone"]}})
        releases.builtin("chat", "1.1.0", MOON)
    finally:
        ws.close()
    return tmp_path


def test_service_create_sets_the_stable_alias_once(cli: Cli, home: Path) -> None:
    out = cli("service", "create", "chat", "--stable", "chat@1.0.0", "--reason", "launch").output
    assert "chat@stable → 1.0.0" in out
    aliases = cli("alias", "ls", "chat").output
    assert "chat@stable" in aliases and "1.0.0" in aliases
    moves = [json.loads(line) for line in cli("audit", "log", "--json").output.splitlines()]
    [move] = [m for m in moves if m["action"] == "alias.move"]
    assert move["subject"] == "chat@stable" and move["details"]["to"] == "chat@1.0.0"
    assert "service chat created" in move["details"]["reason"]
    # a second service on another release leaves the existing alias where it is
    other = cli("service", "create", "beta", "--stable", "chat@1.1.0").output
    assert "chat@stable points at 1.0.0" in other
    ws = Workspace.open(Settings(home=home / ".airlock", user="alice"))
    try:
        assert Registry(ws).show("chat@stable").row.version == "1.0.0"
    finally:
        ws.close()


def test_an_unsafe_drill_without_a_safety_policy_is_refused_up_front(cli: Cli, home: Path) -> None:
    cli("service", "create", "plain", "--stable", "chat@1.1.0")
    refused = cli("drill", "plain", "--fault", "unsafe=0.3", "--timeout", "5", ok=False)
    assert refused.exit_code == 1
    assert "chat@1.1.0" in refused.output and "has none" in refused.output
    assert "safety policy" in refused.output and "Traceback" not in refused.output
    ws = Workspace.open(Settings(home=home / ".airlock", user="alice"))
    try:
        assert [r.version for r in Registry(ws).releases("chat")] == ["1.0.0", "1.1.0"]
        assert Rollouts(ws).recent("plain") == []
        # the check a server makes before it answers a remote drill (POST .../drills)
        with pytest.raises(InvalidInput, match="has none"):
            Drills(ws).check_start("plain", Actor("alice", "admin"), {"unsafe_rate": 0.3})
        Drills(ws).check_start("plain", Actor("alice", "admin"), {"error_rate": 0.3})
    finally:
        ws.close()
