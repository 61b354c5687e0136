"""``airlock audit``: read and verify the tamper-evident event log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from airlock.cli.common import ByteProgress, console, err_console, handle_errors

audit_app = typer.Typer(help="Read and verify the tamper-evident audit log.", no_args_is_help=True)


@audit_app.command("verify")
@handle_errors
def verify(
    expect: Annotated[
        list[str] | None,
        typer.Option(
            metavar="SEQ:HASH",
            help="A checkpoint recorded earlier (`audit head`): the chain must still contain "
            "it. Detects a rewritten chain and a cut tail; later events are fine. Repeatable.",
        ),
    ] = None,
    expect_head: Annotated[
        str | None,
        typer.Option(
            help="A head hash recorded earlier: the chain must still contain it "
            "(same as --expect without the sequence)."
        ),
    ] = None,
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(
            help="A signed checkpoint file (`audit checkpoint`, or `serve --checkpoint-file`): "
            "its signature and every checkpoint in it are checked. Repeatable.",
        ),
    ] = None,
    public_key: Annotated[
        list[Path] | None,
        typer.Option(
            help="A PEM public key whose checkpoints count (besides the workspace's audit "
            "key and the trusted keys). Repeatable.",
        ),
    ] = None,
    from_checkpoint: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Verify only the events after the newest checkpoint in FILE, once its "
            "signature and the stored event at its sequence are checked.",
        ),
    ] = None,
) -> None:
    """Recompute the hash chain; report the first edited, missing or reordered event, and
    check it still contains every checkpoint given."""
    from airlock.cli.audit_backend import open_audit
    from airlock.errors import InvalidInput
    from airlock.services.audit_views import Checkpoint

    expected: list[Checkpoint] = []
    for text in expect or []:
        try:
            expected.append(Checkpoint.parse(text))
        except ValueError as exc:
            raise InvalidInput(
                f"--expect {exc}", hint="copy it from `airlock audit head`"
            ) from None
    files = [(str(f), _read(f)) for f in checkpoint or []]
    keys = [_read(k) for k in public_key or []]
    start = (str(from_checkpoint), _read(from_checkpoint)) if from_checkpoint else None
    with open_audit() as side, ByteProgress("verifying", counting="events") as progress:
        result = side.verify(
            files=files,
            expect=expected,
            expected_head=expect_head,
            public_keys=keys,
            start_from=start,
            on_start=progress.start,
            on_events=progress.advance,
        )
    report = result.report
    where = (
        f"verified on this machine: the events were downloaded from {side.where} and every "
        "hash and link recomputed here"
        if side.remote
        else None
    )
    if report.ok and result.start is not None:
        console.print(f"from checkpoint {result.start.checkpoint.seq} (signature ok):")
    if report.ok:
        console.print(
            f"[green]ok[/]: {report.checked} event(s) verified; head {report.head_seq} {report.head_hash}"
        )
        held = len(expected) + len(result.checkpoints) + (1 if expect_head else 0)
        if held:
            console.print(f"the chain contains all {held} checkpoint(s) given")
        if where:
            console.print(where)
        return
    assert report.problem is not None
    err_console.print(
        f"[bold red]audit chain broken[/] at event {report.problem.seq}: {report.problem.message}"
    )
    err_console.print(f"{report.checked} event(s) before it verified.")
    if where:
        err_console.print(where)
    raise typer.Exit(code=1)


def _read(path: Path) -> str:
    from airlock.errors import InvalidInput, NotFound

    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(f"no file at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from None


@audit_app.command("checkpoint")
@handle_errors
def checkpoint(
    key: Annotated[
        Path | None,
        typer.Option(
            help="ed25519 private key (PEM) to sign with; default: the workspace's audit key "
            "($AIRLOCK_HOME/keys/audit.key, made on first use)."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Also append the checkpoint to this file (JSON Lines).")
    ] = None,
) -> None:
    """Print a signed checkpoint of the chain's head (JSON), to keep outside Airlock;
    `audit verify --checkpoint FILE` later proves the chain still contains it.

    Against a server (AIRLOCK_URL) the chain is downloaded and verified on this machine
    first, and the head it verified is signed here: with --key, or this user's own audit
    key ($XDG_CONFIG_HOME/airlock/keys/audit.key, made on first use)."""
    from airlock.cli.audit_backend import open_audit

    with open_audit() as side, ByteProgress("verifying", counting="events") as progress:
        signed = side.checkpoint(key, on_start=progress.start, on_events=progress.advance)
    text = signed.to_json()
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a", encoding="utf-8") as f:
            f.write(text + "\n")
    typer.echo(text)


@audit_app.command("head")
@handle_errors
def head() -> None:
    """Print the newest event's sequence and hash, to record outside Airlock (against a
    server: the head it reports; `audit verify` checks it on this machine)."""
    from airlock.cli.audit_backend import open_audit

    with open_audit() as side:
        found = side.head()
    typer.echo(f"{found.seq} {found.hash}")


@audit_app.command("log")
@handle_errors
def log(
    action: Annotated[
        str | None,
        typer.Option(help="Only this action (end with '.' for a prefix, e.g. release.)."),
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Only events by this actor.")] = None,
    subject: Annotated[
        str | None, typer.Option(help="Only subjects starting with this, e.g. chat@.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Only events at or after this ISO-8601 time (2026-12-01T09:30Z; no zone: "
            "UTC) or this long ago (30m, 1h, 2d, 1w)."
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            help="At most this many, the newest (default: 50 in a table, all with --json; 0: all)."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON Lines, oldest first, for export.")
    ] = False,
) -> None:
    """List audit events with filters; --json exports JSON Lines."""
    from datetime import UTC, datetime

    from rich.table import Table

    from airlock.cli.backend import open_backend
    from airlock.core.times import since_text
    from airlock.services.audit_views import EventFilter

    after = since_text(since, datetime.now(UTC))  # a bad --since fails before any work
    where = EventFilter(action=action, actor=actor, subject=subject, since=after)
    with open_backend() as backend:
        events = backend.audit_events(where, limit=_limit(limit, as_json))
    if as_json:
        for ev in reversed(events):  # oldest first, as an export reads
            typer.echo(json.dumps(ev.to_dict(), sort_keys=True))
        return
    t = Table("seq", "at", "actor", "action", "subject", "details")
    for ev in events:
        details = ", ".join(f"{k}={v}" for k, v in ev.details.items() if v is not None)
        t.add_row(
            str(ev.seq), ev.at[:19].replace("T", " "), ev.actor, ev.action, ev.subject, details
        )
    console.print(t)


def _limit(limit: int | None, as_json: bool) -> int | None:
    if limit is None:
        return None if as_json else 50
    return None if limit <= 0 else limit
