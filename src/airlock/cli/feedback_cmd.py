"""``airlock feedback``: what users said about a service's answers, exported for the next dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from airlock.cli.common import AsJson, ByteProgress, console, handle_errors, print_json

feedback_app = typer.Typer(
    help="Users' feedback on a service's answers: export prompts, answers and scores "
    "(from services that keep transcripts) as a JSON Lines dataset.",
    no_args_is_help=True,
)


@feedback_app.command("export")
@handle_errors
def export(
    service: Annotated[str, typer.Argument(help="Service name.")],
    out: Annotated[Path, typer.Option("--out", help="The .jsonl file to write.")],
    since: Annotated[
        str | None,
        typer.Option(
            help="Only answers at or after this ISO-8601 time (2026-12-01T09:30Z; no zone: "
            "UTC) or this long ago (30m, 1h, 2d, 1w)."
        ),
    ] = None,
    release: Annotated[
        str | None,
        typer.Option(help="Only answers written by this release (name@version or an alias)."),
    ] = None,
    min_score: Annotated[
        float | None,
        typer.Option(help="Only answers whose user score is at least this (0..1)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
    as_json: AsJson = False,
) -> None:
    """Write a service's transcripts with their feedback and scores as JSON Lines.

    One object per line: prompt, answer, score, scores, feedback, release, judge, response
    id, time, and provenance (service, exported_at, airlock version, this filter). Record
    the file in the next release with `airlock push ... --dataset feedback=FILE.jsonl`.

    Against a server (AIRLOCK_URL) the export is made and audited there, redacted as
    locally, and downloaded to --out, checked against the sha256 its audit event recorded."""
    from datetime import UTC, datetime

    from airlock.cli.feedback_backend import open_feedback
    from airlock.core.times import parse_since

    after = parse_since(since, datetime.now(UTC)) if since is not None else None
    with open_feedback() as side, ByteProgress("downloading", quiet=as_json) as progress:
        result = side.export(
            service,
            out,
            since=after,
            release=release,
            min_score=min_score,
            force=force,
            on_start=progress.start,
            on_bytes=progress.advance,
        )
    if as_json:
        print_json(
            {
                "path": str(result.path),
                "service": result.service,
                "count": result.count,
                "sha256": result.sha256,
                "filter": result.filter.to_dict(),
                "event_seq": result.event_seq,
            }
        )
        return
    console.print(f"exported {result.count} transcripts of {service} to {result.path}")
    console.print(f"sha256 {result.sha256}")
    if result.count == 0:
        console.print(
            f"[yellow]note[/]: nothing matched; does {service} keep transcripts? "
            f"(`airlock service transcripts {service}`)"
        )
    console.print(f"next: airlock push ... --dataset feedback={result.path} records its digest")


__all__ = ["export", "feedback_app"]
