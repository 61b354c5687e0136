"""The governance commands end to end through the real CLI, acting as API tokens."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lumen import SUITES, lumen_folder
from typer.testing import CliRunner

MakeModel = Callable[..., Path]


class Cli:
    """The real ``airlock`` CLI through Typer's runner in one workspace (``env`` is per call)."""

    def __init__(self, home: Path) -> None:
        self.runner = CliRunner()
        self.env = {
            "AIRLOCK_HOME": str(home),
            "AIRLOCK_NO_PROGRESS": "1",
            "AIRLOCK_USER": "alice",
            "AIRLOCK_TOKEN": "",
            "COLUMNS": "200",
        }

    def __call__(self, *args: Any, ok: bool = True) -> Any:
        from airlock.cli.main import app

        result = self.runner.invoke(app, [str(a) for a in args], env=self.env)
        if ok and result.exit_code != 0:
            raise AssertionError(f"airlock {' '.join(map(str, args))}: {result.output}")
        return result


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / ".airlock")


def as_token(cli: Cli, token: str | None, *args: Any, ok: bool = True) -> Any:
    saved = dict(cli.env)
    cli.env["AIRLOCK_TOKEN"] = token or ""
    try:
        return cli(*args, ok=ok)
    finally:
        cli.env.clear()
        cli.env.update(saved)


def new_token(cli: Cli, user: str, role: str, *extra: str) -> str:
    result = cli("token", "create", "--user", user, "--role", role, *extra)
    secret: str = result.stdout.strip().splitlines()[-1]
    assert secret.startswith("alk_") and "not shown again" in result.output
    return secret


def test_init_creates_the_owners_admin_token(cli: Cli, tmp_path: Path) -> None:
    out = cli("init").output
    token_file = tmp_path / ".airlock" / "token"
    assert "admin token" in out and str(token_file) in out
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    assert "alice (admin)" in cli("token", "whoami").output
    again = cli("init").output  # re-running keeps the token
    assert "admin token" not in again and token_file.exists()
    listed = cli("token", "ls").output
    assert (
        "alice" in listed
        and "workspace owner" in listed
        and token_file.read_text()[:20] not in listed
    )
    lines = cli("audit", "log", "--json").output.strip().splitlines()
    first = json.loads(lines[0])
    assert first["action"] == "token.create" and first["details"]["bootstrap"] is True


def test_token_ls_shows_others_their_own_tokens_only(cli: Cli) -> None:
    """The CLI applies the API's visibility rule: an admin sees every token, others their own."""
    cli("init")
    viewer = new_token(cli, "vera", "viewer")
    new_token(cli, "carl", "author")
    assert {t["user"] for t in json.loads(cli("token", "ls", "--json").output)} == {
        "alice",
        "vera",
        "carl",
    }
    mine = json.loads(as_token(cli, viewer, "token", "ls", "--json").output)
    assert [t["user"] for t in mine] == ["vera"]
    r = as_token(cli, viewer, "token", "ls", "--user", "carl", ok=False)
    assert r.exit_code == 1 and "may only list their own tokens" in r.output


def test_tokens_roles_and_denials(cli: Cli, make_model: MakeModel, tmp_path: Path) -> None:
    cli("init")
    viewer = new_token(cli, "vera", "viewer", "--note", "dashboards")
    author = new_token(cli, "carl", "author", "--expires", "30d")
    r = as_token(cli, viewer, "push", make_model(seed=1), "--name", "chat", "--version", "1.0.0",
                 ok=False)  # fmt: skip
    assert r.exit_code == 1
    assert "vera (viewer) may not release.push chat@1.0.0" in r.output
    assert "needs author or admin" in r.output and "hint:" in r.output
    as_token(cli, author, "push", make_model(seed=1), "--name", "chat", "--version", "1.0.0")
    assert "carl (author)" in as_token(cli, author, "token", "whoami").output
    r = as_token(cli, author, "token", "create", "--user", "x", "--role", "admin", ok=False)
    assert r.exit_code == 1 and "may not token.create" in r.output
    denied = cli("audit", "log", "--action", "access.denied", "--json").output.strip().splitlines()
    assert [json.loads(line)["actor"] for line in denied] == ["vera", "carl"]

    ids = {line.split()[3]: line.split()[1] for line in cli("token", "ls").output.splitlines()
           if line.startswith("│")}  # fmt: skip
    assert set(ids) >= {"alice", "vera", "carl"}
    as_token(cli, viewer, "token", "revoke", ids["vera"], "--reason", "left the team")
    r = as_token(cli, viewer, "token", "whoami", ok=False)
    assert r.exit_code == 1 and "was revoked" in r.output
    assert (
        "revoked" in cli("token", "ls", "--all").output and "vera" not in cli("token", "ls").output
    )
    r = as_token(cli, "alk_000000000000_" + "x" * 43, "token", "whoami", ok=False)
    assert "unknown API token" in r.output
    (tmp_path / ".airlock" / "token").unlink()
    r = cli("alias", "set", "production", "chat@1.0.0", "--reason", "go", ok=False)
    assert r.exit_code == 1 and "no API token" in r.output and "AIRLOCK_TOKEN" in r.output
    r = cli("token", "create", "--user", "x", "--role", "boss", ok=False)
    assert (
        "unknown role 'boss'" in r.output
        and "viewer, author, approver, operator, admin" in r.output
    )


def test_policy_approvals_signatures_evals_and_notes(cli: Cli, tmp_path: Path) -> None:
    cli("init")
    carl = new_token(cli, "carl", "author")
    bob = new_token(cli, "bob", "approver")
    v1 = lumen_folder(tmp_path, "corpus_v1.txt")
    v2 = lumen_folder(tmp_path, "corpus_v2.txt")
    as_token(cli, carl, "push", v1, "--name", "lumen", "--version", "1.0.0")
    cli("alias", "set", "production", "lumen@1.0.0", "--reason", "launch")
    as_token(cli, carl, "push", v2, "--name", "lumen", "--version", "1.1.0", "--parent",
             "lumen@1.0.0")  # fmt: skip

    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "# lumen rules\nstages:\n  production:\n    approvals: {required: 1}\n"
        "    require_signature: true\n    evals:\n"
        "      - {suite: quality, min_pass_rate: 0.4, max_regression: 0.05}\n"
    )
    assert "v1" in cli("policy", "set", "lumen", policy, "--reason", "first rules").output
    assert "nothing to do" in cli("policy", "set", "lumen", policy).output
    shown = cli("policy", "show", "lumen")
    assert shown.stdout.startswith("# lumen rules") and "first rules" in shown.output
    assert "first rules" in cli("policy", "history").output

    r = cli("check", "lumen@1.1.0", "--for", "production", ok=False)
    assert r.exit_code == 1 and "FAIL" in r.output and "blocked by 3 rule(s)" in r.output
    verdict = json.loads(
        cli("check", "lumen@1.1.0", "--for", "production", "--json", ok=False).stdout
    )
    assert {x["rule"] for x in verdict["rules"] if not x["passed"]} == {
        "approvals", "signature", "eval:quality",
    }  # fmt: skip
    r = cli("alias", "set", "production", "lumen@1.1.0", "--reason", "new lamp", ok=False)
    assert r.exit_code == 1 and "may not take production: blocked by approvals" in r.output

    r = as_token(cli, carl, "approve", "lumen@1.1.0", "--for", "production", ok=False)
    assert "may not release.approve" in r.output  # an author is no approver
    as_token(cli, bob, "approve", "lumen@1.1.0", "--for", "production", "--comment", "read evals")
    as_token(cli, bob, "reject", "lumen@1.0.0", "--for", "production", "--comment", "old lamp")

    key = tmp_path / "keys" / "ci"
    assert "key id sha256:" in cli("key", "generate", key).output
    out = as_token(cli, carl, "sign", "lumen@1.1.0", "--key", key, "--out", tmp_path / "sig.json")
    assert "not trusted" in out.output
    assert as_token(cli, carl, "signatures", "lumen@1.1.0", ok=False).exit_code == 1
    cli("key", "trust", f"{key}.pub", "--name", "ci")
    assert "ci" in cli("key", "ls").output
    assert "valid" in cli("signatures", "lumen@1.1.0").output
    cli("signatures", "lumen@1.1.0", "--bundle", tmp_path / "sig.json", "--path", v2)

    ran = as_token(cli, carl, "eval", "lumen@1.1.0", "--suite", SUITES / "quality.yaml",
                   "--baseline", "lumen@1.0.0", "--cases")  # fmt: skip
    assert "significantly better" in ran.output and "connect-app" in ran.output
    record = json.loads(
        as_token(
            cli,
            carl,
            "eval",
            "lumen@1.1.0",
            "--suite",
            SUITES / "safety.yaml",
            "--baseline",
            "lumen@1.0.0",
            "--json",
        ).stdout
    )
    assert record["comparison"]["pass_rate"]["p_value"] == 1.0

    assert "may proceed" in cli("check", "lumen@1.1.0", "--for", "production").output
    cli("alias", "set", "production", "lumen@1.1.0", "--reason", "new lamp")

    shown = cli("show", "lumen@1.1.0").output
    assert "approvals" in shown and "bob" in shown and "evaluations" in shown and "quality" in shown
    assert "signatures" in shown and "valid" in shown
    diffed = cli("diff", "lumen@1.0.0", "lumen@1.1.0").output
    assert "evaluations" in diffed and "quality" in diffed

    notes = cli("notes", "lumen@1.1.0").stdout
    for heading in ("# lumen@1.1.0", "## What changed since lumen@1.0.0", "## Evaluations",
                    "## Approvals", "## Signatures", "## Policy check for production"):  # fmt: skip
        assert heading in notes
    assert "| quality | 30 |" in notes and "Policy v1: passes" in notes
    assert "## First release" in cli("notes", "lumen@1.0.0").stdout

    actions = [
        json.loads(line)["action"] for line in cli("audit", "log", "--json").output.splitlines()
    ]
    for action in ("policy.set", "policy.blocked", "release.approve", "release.reject",
                   "release.sign", "key.trust", "eval.run", "alias.move"):  # fmt: skip
        assert action in actions
    assert "ok" in cli("audit", "verify").output
