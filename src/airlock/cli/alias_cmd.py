"""``airlock alias``: movable, audited pointers such as production or stable."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from airlock.cli.common import (
    AsJson,
    console,
    handle_errors,
    limited,
    print_json,
)
from airlock.cli.paging import PageCursor, more_hint
from airlock.core.names import check_name

alias_app = typer.Typer(
    help="Move and inspect aliases (production, stable, candidate...).", no_args_is_help=True
)


@alias_app.command("set")
@handle_errors
def set_alias(
    name: Annotated[str, typer.Argument(help="Alias name, e.g. production.")],
    ref: Annotated[str, typer.Argument(help="Release it should point at, e.g. chat@1.2.0.")],
    reason: Annotated[
        str | None,
        typer.Option(
            help="Why (kept in the alias history and audit log); needed unless --dry-run."
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the plan (where the alias points, where it would point, the policy "
            "verdict, approvals found and missing) and change nothing.",
        ),
    ] = False,
) -> None:
    """Point an alias of the release's model at that release (an audited move)."""
    from airlock.cli.backend import LocalBackend, open_backend

    with open_backend() as backend:
        if dry_run:
            if not isinstance(backend, LocalBackend):
                from airlock.errors import InvalidInput

                raise InvalidInput(
                    "--dry-run is not available against a server yet",
                    hint="run it on the server, or unset AIRLOCK_URL",
                )
            from airlock.services.promotion import Promotion

            for line in Promotion(backend.ws).plan_promotion(ref, name).lines():
                console.print(line, markup=False, highlight=False)
            return
        if reason is None:  # a usage error, as when the option was required
            raise typer.BadParameter(
                "an alias move needs a reason (or --dry-run to see the plan)",
                param_hint="'--reason'",
            )
        result = backend.set_alias(name, ref, reason=reason)
    if not result.moved:
        console.print(f"{result.model}@{result.alias} already points at {result.to_version}")
        return
    before = result.from_version or "nothing"
    console.print(f"moved {result.model}@{result.alias}: {before} → [bold]{result.to_version}[/]")


@alias_app.command("history")
@handle_errors
def history(
    target: Annotated[
        str | None, typer.Argument(help="MODEL or MODEL@ALIAS (default: every alias).")
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            help="At most this many: the newest N (0 for all); with --cursor, the page size."
        ),
    ] = None,
    cursor: PageCursor = None,
    as_json: AsJson = False,
) -> None:
    """Who moved which alias from what to what, when and why (oldest first, 50 at a time
    unless --limit says otherwise)."""
    from rich.table import Table

    from airlock.cli.backend import open_backend

    model, _, alias = (target or "").partition("@")
    if model:
        check_name(model)
    with open_backend() as backend:
        if limit is None or cursor is not None:
            page = backend.alias_history_page(
                model or None, alias or None, limit=limit or 50, cursor=cursor
            )
            moves = list(page.items)
            more_hint(page.next_cursor)
        else:
            moves = backend.alias_history(model or None, alias or None)
            moves = list(reversed(limited(list(reversed(moves)), limit)))  # the newest `limit`
    if as_json:
        print_json(moves)
        return
    if not moves:
        console.print("no alias moves yet")
        return
    t = Table("when", "alias", "from", "to", "actor", "reason", "event")
    for m in moves:
        t.add_row(
            m.at.strftime("%Y-%m-%d %H:%M:%S"),
            f"{m.model}@{m.alias}",
            m.from_version or "—",
            m.to_version or "—",
            m.actor,
            m.reason,
            str(m.event_seq or ""),
        )
    console.print(t)


@alias_app.command("ls")
@handle_errors
def list_aliases(
    model: Annotated[str | None, typer.Argument(help="Only this model's aliases.")] = None,
    as_json: AsJson = False,
) -> None:
    """List aliases and the versions they point at."""
    from rich.table import Table

    from airlock.cli.backend import open_backend

    with open_backend() as backend:
        rows = backend.aliases(model)
    if as_json:  # the catalog's row id is left out, as the API leaves it out
        print_json(
            [{k: v for k, v in dataclasses.asdict(a).items() if k != "release_id"} for a in rows]
        )
        return
    t = Table("alias", "version", "moved at", "by")
    for a in rows:
        t.add_row(
            f"{a.model}@{a.name}",
            a.version,
            a.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
            a.updated_by,
        )
    console.print(t)
