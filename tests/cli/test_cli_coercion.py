"""Plain option values coerce without pydantic, and exactly as Typer would (cli/coercion.py).

Each case runs one command twice through Typer's runner: as Typer builds it, and with
:func:`plain_values` applied when it is resolved (what ``airlock``'s root group does).
The output, values and errors alike, must be the same.
"""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer import _click as click
from typer.core import TyperGroup, TyperOption
from typer.testing import CliRunner

from airlock.cli import coercion
from airlock.cli.coercion import plain_values


class _PlainGroup(TyperGroup):
    """Applies :func:`plain_values` to a command when it is resolved, and makes its own
    ``--help`` plain, as ``airlock``'s root group (cli/main.py ``LazyGroup``) does."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            plain_values(command, ctx)
        return command

    def get_help_option(self, ctx: click.Context) -> TyperOption | None:
        option = super().get_help_option(ctx)
        if option is not None:
            coercion.make_plain(option)
        return option


def _app(*, plain: bool) -> typer.Typer:
    app = typer.Typer(add_completion=False, cls=_PlainGroup if plain else TyperGroup)

    @app.callback()
    def root() -> None:
        """A group, so that the command is resolved by name."""

    @app.command()
    def echo(
        name: str | None = typer.Argument(None),
        limit: int = typer.Option(50, "--limit", min=1, max=1000),
        count: int = typer.Option(3, "--count"),
        ratio: float = typer.Option(0.5, "--ratio"),
        share: float = typer.Option(0.25, "--share", min=0.0, max=1.0),
        label: str = typer.Option("none", "--label"),
        flag: bool = typer.Option(False, "--flag"),
    ) -> None:
        typer.echo(repr((name, limit, count, ratio, share, label, flag)))

    return app


CASES = [
    [],
    ["chat"],
    ["--limit", "7"],
    ["--limit", "007"],
    ["--limit", "1_0"],
    ["--limit", "+5"],
    ["--limit", " 5"],
    ["--limit", "0"],
    ["--limit", "1000"],
    ["--limit", "1001"],
    ["--limit", "abc"],
    ["--limit", "1e3"],
    ["--limit", "99999999999999999999999"],
    ["--count", "-3"],
    ["--count", "12"],
    ["--ratio", "2.5"],
    ["--ratio", "0.1"],
    ["--ratio", "10"],
    ["--ratio", "2.50"],
    ["--ratio", "-2.5"],
    ["--ratio", "1e-3"],
    ["--ratio", "0.30000000000000004"],
    ["--ratio", "nan"],
    ["--ratio", "inf"],
    ["--ratio", "x"],
    ["--share", "1.5"],
    ["--share", "0.75"],
    ["--label", "héllo wörld"],
    ["--label", ""],
    ["--label", "bad\udcffbyte"],
    ["--flag"],
    ["--help"],
]


@pytest.mark.parametrize("args", CASES, ids=lambda a: " ".join(a) or "defaults")
def test_plain_values_coerce_as_typer_does(args: list[str]) -> None:
    runner = CliRunner()
    typers = runner.invoke(_app(plain=False), ["echo", *args])
    ours = runner.invoke(_app(plain=True), ["echo", *args])
    assert (ours.exit_code, ours.output) == (typers.exit_code, typers.output)


def test_plain_values_never_build_a_pydantic_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of it: no TypeAdapter (no pydantic import) for the values it knows."""
    built: list[object] = []
    original = coercion.build_runtime_param

    def counting(descriptor: Any) -> Any:
        built.append(descriptor)
        return original(descriptor)

    monkeypatch.setattr(typer.core, "build_runtime_param", counting)  # Typer's own path
    monkeypatch.setattr(coercion, "build_runtime_param", counting)  # our hand-over
    runner = CliRunner()
    args = ["echo", "chat", "--limit", "7", "--ratio", "2.5", "--label", "x", "--flag"]
    assert runner.invoke(_app(plain=True), args).exit_code == 0
    assert built == []
    assert runner.invoke(_app(plain=False), args).exit_code == 0
    assert built != []  # (Typer alone builds them)
    built.clear()
    assert runner.invoke(_app(plain=True), ["echo", "--limit", "0"]).exit_code == 2
    assert len(built) == 1  # an uncertain value: Typer's own adapter, with its message
