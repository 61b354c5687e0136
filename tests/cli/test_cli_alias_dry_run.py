"""``airlock alias set --dry-run``: the promotion plan is printed and nothing changes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from airlock_testkit import Cli

MakeModel = Callable[..., Path]


def _events(cli: Cli) -> list[dict[str, object]]:
    out = cli("audit", "log", "--json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _approve_as_bob(cli: Cli) -> None:
    created = cli("token", "create", "--user", "bob", "--role", "approver").stdout
    saved = dict(cli.env)
    cli.env["AIRLOCK_TOKEN"] = created.strip().splitlines()[-1]
    try:
        cli("approve", "chat@1.1.0", "--for", "production")
    finally:
        cli.env.clear()
        cli.env.update(saved)


def _production(cli: Cli) -> str:
    rows = json.loads(cli("alias", "ls", "chat", "--json").stdout)
    return next(str(r["version"]) for r in rows if r["name"] == "production")


def test_dry_run_prints_the_plan_and_changes_nothing(
    cli: Cli, make_model: MakeModel, tmp_path: Path
) -> None:
    cli("init")
    cli("push", make_model("v1", seed=1), "--name", "chat", "--version", "1.0.0")
    cli("alias", "set", "production", "chat@1.0.0", "--reason", "launch")
    cli("push", make_model("v2", seed=2), "--name", "chat", "--version", "1.1.0")
    policy = tmp_path / "policy.yaml"
    policy.write_text("stages:\n  production:\n    approvals: {required: 1}\n")
    cli("policy", "set", "chat", policy, "--reason", "one approver")
    before = _events(cli)

    plan = cli("alias", "set", "production", "chat@1.1.0", "--dry-run").output
    assert "chat@production: chat@1.0.0 -> chat@1.1.0" in plan
    assert "may not take production: blocked by approvals" in plan and "(policy v1)" in plan
    assert "FAIL approvals: 0 of 1 approval(s) for production: nobody" in plan
    assert "approvals found: none" in plan
    assert "approvals missing: 0 of 1 approval(s)" in plan
    assert "the alias would be refused; nothing was changed" in plan
    assert _events(cli) == before and _production(cli) == "1.0.0"

    _approve_as_bob(cli)
    before = _events(cli)
    plan = cli("alias", "set", "production", "chat@1.1.0", "--dry-run").output
    assert "may take production: 2 rule(s) pass" in plan
    assert "approvals found: bob (approver) approve" in plan
    assert "approvals missing" not in plan
    assert "the alias would move; nothing was changed" in plan
    assert _events(cli) == before and _production(cli) == "1.0.0"

    moved = cli("alias", "set", "production", "chat@1.1.0", "--reason", "ok").output
    assert "1.0.0 → 1.1.0" in moved and _production(cli) == "1.1.0"
    same = cli("alias", "set", "production", "chat@1.1.0", "--dry-run").output
    assert "chat@production already points at chat@1.1.0: nothing to do" in same


def test_a_move_without_dry_run_still_needs_a_reason(cli: Cli, make_model: MakeModel) -> None:
    cli("init")
    cli("push", make_model("v1", seed=1), "--name", "chat", "--version", "1.0.0")
    r = cli("alias", "set", "production", "chat@1.0.0", ok=False)
    assert r.exit_code == 2 and "--reason" in r.output
    plan = cli("alias", "set", "production", "chat@1.0.0", "--dry-run").output
    assert "chat@production: nothing -> chat@1.0.0" in plan
    assert "the alias would move" in plan
    assert "chat@production" not in cli("alias", "ls").output
