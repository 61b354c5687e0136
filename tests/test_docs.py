"""Docs stay honest: every CLI command is in the README and has help text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from typer import _click as click

from airlock.cli.main import app

README = (Path(__file__).parents[1] / "README.md").read_text("utf-8")


def _commands(cmd: Any, path: str, parent: click.Context | None = None) -> list[str]:
    """Every command path, loading lazy groups (the root imports a command on first use)."""
    if not hasattr(cmd, "list_commands"):
        return [path]
    ctx = click.Context(cmd, info_name=path.rsplit(" ", 1)[-1], parent=parent)
    found = []
    for name in cmd.list_commands(ctx):
        found += _commands(cmd.get_command(ctx, name), f"{path} {name}", ctx)
    return found


def test_every_command_is_documented_in_the_readme() -> None:
    commands = _commands(typer.main.get_command(app), "airlock")
    assert len(commands) > 60 and "airlock rollout status" in commands
    missing = [c for c in commands if f"`{c}" not in README]
    assert missing == [], f"add these commands to README.md: {missing}"


def test_readme_quick_start_is_the_two_make_commands() -> None:
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    lines = [line for line in quick.splitlines() if line.startswith("make ")]
    assert [line.split()[1] for line in lines[:2]] == ["demo", "test"]
