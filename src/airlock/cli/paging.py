"""``--limit`` and ``--cursor`` for list commands, and the hint printed when more exist."""

from __future__ import annotations

from typing import Annotated

import typer

from airlock.cli.common import err_console

PageLimit = Annotated[
    int, typer.Option("--limit", help="At most this many per page (1–1000).", min=1, max=1000)
]
PageCursor = Annotated[
    str | None,
    typer.Option(
        "--cursor", help="Start after this page cursor (printed on stderr when more exist)."
    ),
]


def more_hint(cursor: str | None) -> None:
    """On stderr, so piped output stays clean: how to get the next page."""
    if cursor is not None:
        err_console.print(f"more: run again with --cursor {cursor}", markup=False)
