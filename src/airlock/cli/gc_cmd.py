"""``airlock gc``: delete blobs no release uses, after showing the plan."""

from __future__ import annotations

from typing import Annotated

import typer

from airlock.cli.common import actor, console, handle_errors, human_bytes, workspace

_DEFAULT_MIN_AGE = 3600.0  # keep in step with airlock.services.gc.DEFAULT_MIN_AGE
_DEFAULT_STAGING_MIN_AGE = 600.0  # ... and DEFAULT_STAGING_MIN_AGE


@handle_errors
def gc(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be deleted; delete nothing.")
    ] = False,
    min_age: Annotated[
        float,
        typer.Option(
            "--min-age",
            metavar="SECONDS",
            help="Spare unused blobs younger than this, so a push in flight keeps its blobs.",
        ),
    ] = _DEFAULT_MIN_AGE,
    staging_min_age: Annotated[
        float,
        typer.Option(
            "--staging-min-age",
            metavar="SECONDS",
            help="Remove temporary files of killed pushes not written to for this long.",
        ),
    ] = _DEFAULT_STAGING_MIN_AGE,
    telemetry: Annotated[
        bool,
        typer.Option(
            "--telemetry",
            help="Instead: roll up old telemetry (per-second rows older than "
            "AIRLOCK_TELEMETRY_RAW_HOURS into per-minute rows, per-minute rows older than "
            "AIRLOCK_TELEMETRY_MINUTE_DAYS into per-hour rows).",
        ),
    ] = False,
) -> None:
    """Delete blobs no release uses and temporary files of killed pushes; one audit event.
    With --telemetry, roll up old telemetry instead."""
    from rich.table import Table

    if telemetry:
        _telemetry()
        return

    from airlock.services.gc import plan_gc

    with workspace() as ws:
        plan = plan_gc(ws, min_age=min_age, staging_min_age=staging_min_age)
        table = Table("blobs", "count", "bytes", title=f"garbage collection of {plan.store_url}")
        table.add_row("unused: delete", str(plan.count), human_bytes(plan.total_bytes))
        table.add_row(
            f"unused, younger than {min_age:g}s: keep",
            str(len(plan.young)),
            human_bytes(sum(o.size for o in plan.young)),
        )
        table.add_row("used by a release: keep", str(plan.in_use), "")
        table.add_row(
            f"temporary files idle for {staging_min_age:g}s: delete",
            str(len(plan.staging)),
            human_bytes(plan.staging_bytes),
        )
        if plan.staging_live:
            table.add_row(
                "temporary files of writes in flight: keep", str(len(plan.staging_live)), ""
            )
        console.print(table)
        if dry_run:
            console.print("dry run: nothing was deleted")
            return
        if not plan.orphans and not plan.staging:
            console.print("nothing to delete")
            return
        result = plan.execute(ws, actor(ws))
    freed = result.bytes + sum(f.size for f in result.staging_removed)
    console.print(
        f"[green]deleted[/] {result.count} blob(s) and {len(result.staging_removed)} temporary "
        f"file(s), {human_bytes(freed)} freed (audit event {result.event_seq})"
    )
    if result.spared:
        console.print(f"{len(result.spared)} blob(s) spared: a release started using them")


def _telemetry() -> None:
    from airlock.services.telemetry_retention import RetentionPolicy, TelemetryRetention

    with workspace() as ws:
        report = TelemetryRetention(ws, RetentionPolicy.of(ws.settings)).run()
    console.print(
        f"telemetry: {report.rows_read} old row(s) read, {report.rows_deleted} rolled up into "
        f"{report.rows_written} ({report.rows_saved} fewer) over {len(report.services)} service(s)"
    )
    for service, since in sorted(report.held.items()):
        console.print(f"{service}: rollout in flight; rows since {since:%Y-%m-%d %H:%M:%S} kept")
