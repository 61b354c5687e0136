"""``airlock db``: the catalog database's schema (``current``, ``upgrade``) and backups of a
one-machine workspace (``backup``, ``restore``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from airlock.cli.common import AsJson, console, handle_errors, print_json, settings, workspace

if TYPE_CHECKING:
    from airlock.services.schema import SchemaReport

db_app = typer.Typer(
    help="The catalog database: its schema revision, and migrations (`airlock db upgrade`).",
    no_args_is_help=True,
)


@db_app.command("current")
@handle_errors
def current(as_json: AsJson = False) -> None:
    """Show the catalog's schema revision(s), what is pending, and anything newer than this
    Airlock knows. Exits 1 unless the schema is current."""
    from airlock.services.schema import schema_report

    report = schema_report(settings())
    if as_json:
        print_json(_json(report))
    else:
        _print(report)
    if report.state != "current":
        raise typer.Exit(1)


@db_app.command("upgrade")
@handle_errors
def upgrade(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list the migrations that would run.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Migrate the catalog to this Airlock's schema (alembic upgrade heads).

    Back the database up first (docs/deploy.md). Refuses a database that a newer Airlock
    migrated. Run it once, before starting the new version's processes."""
    from airlock.services.schema import upgrade_schema

    report = upgrade_schema(settings(), dry_run=dry_run)
    if as_json:
        print_json(_json(report))
        return
    if dry_run:
        _print(report)
        if report.pending:
            console.print("dry run: nothing was changed; run `airlock db upgrade` to apply")
        return
    if not report.applied:
        console.print(f"{report.database}: schema already current ({', '.join(report.heads)})")
        return
    console.print(f"{report.database}: applied {len(report.applied)} migration(s):")
    for rev in report.applied:
        console.print(f"  [green]✓[/] {rev}")
    console.print(f"now at {', '.join(report.current)}")


@db_app.command("backup")
@handle_errors
def backup(
    folder: Annotated[Path, typer.Argument(help="A new (or empty) folder for the backup.")],
) -> None:
    """Back up a SQLite workspace while it runs: a consistent copy of the catalog (SQLite's
    online backup), every blob of the local store, and the workspace's own files.

    PostgreSQL and S3: use pg_dump and the bucket's own tools (docs/deploy.md)."""
    from airlock.services.backup import backup_workspace

    with workspace() as ws:
        report = backup_workspace(ws, folder)
    console.print(
        f"backed up {ws.home} to {report.folder}: catalog (schema {', '.join(report.schema)}), "
        f"{report.blobs} blobs, {', '.join(report.files) or 'no other files'}"
    )
    console.print(f"restore with: AIRLOCK_HOME=NEW_FOLDER airlock db restore {report.folder}")


@db_app.command("restore")
@handle_errors
def restore(
    folder: Annotated[Path, typer.Argument(help="A folder `airlock db backup` wrote.")],
) -> None:
    """Restore a backup into the workspace folder (AIRLOCK_HOME), which must be absent or
    empty; then check it with `airlock verify` and `airlock audit verify`."""
    from airlock.errors import InvalidInput
    from airlock.services.backup import restore_workspace

    current = settings()
    if current.database_url is not None:
        raise InvalidInput(
            "AIRLOCK_DATABASE_URL is set: `airlock db restore` restores SQLite workspaces",
            hint="restore PostgreSQL with pg_restore (docs/deploy.md#backups)",
        )
    report = restore_workspace(folder, current.home)
    console.print(
        f"restored {report.folder} from the backup of {report.at:%Y-%m-%d %H:%M:%S} UTC: "
        f"{report.blobs} blobs, {', '.join(report.files) or 'no other files'}"
    )
    console.print("next: [bold]airlock verify[/] and [bold]airlock audit verify[/]")


def _json(report: SchemaReport) -> dict[str, object]:
    return {
        "database": report.database,
        "dialect": report.dialect,
        "state": report.state,
        "current": list(report.current),
        "heads": list(report.heads),
        "pending": list(report.pending),
        "unknown": list(report.unknown),
        "applied": list(report.applied),
    }


def _print(report: SchemaReport) -> None:
    console.print(f"database  {report.database} ({report.dialect})")
    console.print(f"schema    {', '.join(report.current) or '(empty: no tables yet)'}")
    color = {"current": "green", "behind": "yellow", "newer": "red"}.get(report.state, "white")
    console.print(f"state     [{color}]{report.state}[/]")
    if report.pending:
        console.print(f"pending   {', '.join(report.pending)}  (run `airlock db upgrade`)")
    if report.unknown:
        console.print(
            f"unknown   {', '.join(report.unknown)}: migrated by a newer Airlock; "
            "this one will not serve it"
        )


__all__ = ["db_app"]
