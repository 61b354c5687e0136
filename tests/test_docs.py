"""Docs stay honest: every CLI command is in the README and has help text."""

from __future__ import annotations

from pathlib import Path

import typer

from airlock.cli.main import app

README = (Path(__file__).parents[1] / "README.md").read_text("utf-8")


def _commands(cmd: object, path: str) -> list[str]:
    subs = getattr(cmd, "commands", {})
    if not subs:
        return [path]
    found = []
    for name, sub in subs.items():
        found += _commands(sub, f"{path} {name}")
    return found


def test_every_command_is_documented_in_the_readme() -> None:
    commands = _commands(typer.main.get_command(app), "airlock")
    missing = [c for c in commands if f"`{c}" not in README]
    assert missing == [], f"add these commands to README.md: {missing}"


def test_readme_quick_start_is_the_two_make_commands() -> None:
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    lines = [line for line in quick.splitlines() if line.startswith("make ")]
    assert [line.split()[1] for line in lines[:2]] == ["demo", "test"]
