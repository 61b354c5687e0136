"""Pipe-friendly CLI through Typer's runner (whose output is not a terminal): nothing is cut at
80 columns, `--json` where tables are printed (honouring `--limit`), and `audit log --since`
that reads ISO-8601 times and durations and refuses anything else."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.table import Table

from airlock.cli.common import PIPE_WIDTH, PipeFriendlyConsole
from airlock_testkit import Cli

LONG_REASON = "because " + " ".join(f"reason-part-{i}" for i in range(30))  # ~450 characters


@pytest.fixture
def piped(tmp_path: Path, make_model: Any) -> Cli:
    """The CLI with no COLUMNS set, as in `airlock ... | grep`; two releases, three alias moves."""
    cli = Cli(tmp_path / ".airlock", {})
    cli.env["COLUMNS"] = None  # type: ignore[assignment]  # unset for the run
    cli("init")
    for i, version in enumerate(("1.0.0", "1.1.0"), start=1):
        cli("push", make_model(f"v{i}", seed=i), "--name", "chat", "--version", version)
    cli("alias", "set", "production", "chat@1.0.0", "--reason", LONG_REASON)
    cli("alias", "set", "production", "chat@1.1.0", "--reason", "second")
    cli("alias", "set", "canary", "chat@1.1.0", "--reason", "third")
    return cli


def test_piped_tables_are_not_cut(piped: Cli) -> None:
    history = piped("alias", "history", "chat").output
    assert LONG_REASON in history  # whole, on one line
    assert "…" not in history
    log = piped("audit", "log").output
    assert LONG_REASON in log
    digest = json.loads(piped("show", "chat@1.1.0", "--json").output)["digest"]
    assert digest in piped("show", "chat@1.1.0").output


def test_the_console_is_unlimited_only_off_a_terminal() -> None:
    out = io.StringIO()
    console = PipeFriendlyConsole(file=out, highlight=False)
    url = "http://127.0.0.1:8080/" + "x" * 200
    console.print(f"  gateway    {url}   (OpenAI-compatible; services: chat, lumen-support)")
    table = Table("digest", "reason")
    table.add_row("sha256:" + "ab" * 32, LONG_REASON)
    console.print(table)
    text = out.getvalue()
    assert url in text and LONG_REASON in text and "sha256:" + "ab" * 32 in text
    assert console.width == PIPE_WIDTH
    tty = PipeFriendlyConsole(file=io.StringIO(), force_terminal=True, width=80)
    assert tty.width == 80


def test_json_where_tables_are_printed_honouring_limit(piped: Cli) -> None:
    moves = json.loads(piped("alias", "history", "chat", "--json").output)
    assert [m["reason"] for m in moves] == [LONG_REASON, "second", "third"]
    newest = json.loads(piped("alias", "history", "chat", "--json", "--limit", "2").output)
    assert [m["reason"] for m in newest] == ["second", "third"]
    aliases = json.loads(piped("alias", "ls", "chat", "--json").output)
    assert {(a["name"], a["version"]) for a in aliases} == {
        ("production", "1.1.0"),
        ("canary", "1.1.0"),
    }
    tokens = json.loads(piped("token", "ls", "--json").output)
    assert tokens[0]["role"] == "admin" and "secret" not in json.dumps(tokens)
    assert json.loads(piped("service", "ls", "--json").output) == []
    events = [json.loads(line) for line in piped("audit", "log", "--json").output.splitlines()]
    assert len(events) >= 5
    last = [
        json.loads(line)
        for line in piped("audit", "log", "--json", "--limit", "2").output.splitlines()
    ]
    assert last == events[-2:]  # the newest two, oldest first
    assert json.loads(piped("key", "ls", "--json").output) == []
    assert json.loads(piped("policy", "history", "--json").output) == []


def test_audit_since_reads_times_and_durations(piped: Cli) -> None:
    def seqs(*args: str) -> list[int]:
        out = piped("audit", "log", "--json", *args).output
        return [json.loads(line)["seq"] for line in out.splitlines()]

    everything = seqs()
    assert seqs("--since", "1h") == everything  # all of it happened in the last hour
    assert seqs("--since", "0s") == []  # "0s" is a duration, not text that sorts first
    assert seqs("--since", "2d") == everything
    assert seqs("--since", "2000-01-01") == everything
    assert seqs("--since", "2999-01-01T00:00Z") == []
    for bad in ("yesterday", "1 hour ago", "12"):
        refused = piped("audit", "log", "--since", bad, ok=False)
        assert refused.exit_code == 1
        assert "neither an ISO-8601 time nor a duration" in refused.output
        assert "Traceback" not in refused.output
