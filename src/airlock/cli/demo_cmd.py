"""``airlock demo``: the whole lifecycle, narrated, in a fresh folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from airlock.cli.common import console, handle_errors


@handle_errors
def demo(
    serve: Annotated[
        bool,
        typer.Option(
            "--serve/--no-serve", help="Keep the dashboard running at the end (default), or exit."
        ),
    ] = True,
    fast: Annotated[
        bool, typer.Option("--fast", help="Shorter bake times (for tests and impatient people).")
    ] = False,
    folder: Annotated[
        Path | None,
        typer.Option("--dir", help="A new or empty folder to work in (default: a temporary one)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address the server listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the server (0: any free port).")] = 8080,
) -> None:
    """Train, gate, ship and roll back releases end to end, narrated (about a minute)."""
    from rich.console import Console

    from airlock.demo import DemoOptions, run

    # A story, not a table: piped, it keeps boxes at a readable width and its lines whole.
    out = console if console.is_terminal else Console(highlight=False, width=120, soft_wrap=True)
    result = run(DemoOptions(folder=folder, fast=fast, serve=serve, host=host, port=port), out)
    if result.rolled_back_rollout is None or result.promoted_rollout is None:
        raise typer.Exit(code=1)
