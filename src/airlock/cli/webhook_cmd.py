"""``airlock webhook``: subscriptions to audit actions, the delivery log, and a one-pass deliverer."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from airlock.cli.common import AsJson, console, err_console, handle_errors, print_json

if TYPE_CHECKING:
    from airlock.services.webhooks import AttemptResult

webhook_app = typer.Typer(
    help="Webhooks: POST audit events (rollout.rollback, alias.move, ...) to a URL, signed "
    "with HMAC-SHA256, retried with backoff.",
    no_args_is_help=True,
)


def _public(row: object) -> dict[str, object]:
    from dataclasses import asdict, is_dataclass

    assert is_dataclass(row) and not isinstance(row, type)
    out = asdict(row)
    out.pop("secret", None)  # never printed after `add`
    if "url" in out:  # its path may be a credential (Slack's is)
        from airlock.core.webhooks import redacted_url

        out["url"] = redacted_url(str(out["url"]))
    return out


@webhook_app.command("add")
@handle_errors
def add(
    url: Annotated[str, typer.Argument(help="http(s) URL that receives the POSTs.")],
    events: Annotated[
        str,
        typer.Option(
            help="Comma-separated audit actions: rollout.rollback,alias.move; rollout.* ; or *."
        ),
    ],
    secret_file: Annotated[
        Path | None,
        typer.Option(help="File (mode 0600) holding the HMAC secret (default: generate one)."),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help='json (the audit event) or slack ({"text": ...}).')
    ] = "json",
) -> None:
    """Subscribe URL to audit actions (admin). A generated secret is printed once."""
    from airlock.cli.feedback_backend import open_feedback
    from airlock.services.webhooks import read_secret_file

    secret = read_secret_file(secret_file) if secret_file is not None else None
    with open_feedback() as side:
        new = side.add_webhook(url, events=events, secret=secret, fmt=fmt)
    from airlock.core.webhooks import redacted_url

    console.print(
        f"webhook [bold]{new.row.id}[/] → {redacted_url(new.row.url)} on {', '.join(new.row.events)} "
        f"({new.row.format})"
    )
    if new.secret is not None:
        console.print(f"secret (shown once, keep it to verify X-Airlock-Signature): {new.secret}")
    console.print(
        "deliveries go out from `airlock serve` / `airlock controller`, or "
        "[bold]airlock webhook deliver --once[/] (e.g. from cron)"
    )


@webhook_app.command("ls")
@handle_errors
def ls(
    all_: Annotated[bool, typer.Option("--all", help="Include removed webhooks.")] = False,
    as_json: AsJson = False,
) -> None:
    """List webhook subscriptions (never their secrets; URLs without their path)."""
    from airlock.cli.feedback_backend import open_feedback
    from airlock.core.webhooks import redacted_url

    with open_feedback() as side:
        rows = side.webhooks(include_removed=all_)
    if as_json:
        print_json([_public(r) for r in rows])
        return
    if not rows:
        console.print("no webhooks: [bold]airlock webhook add URL --events alias.move[/]")
        return
    t = Table("id", "url", "events", "format", "added", "by", "state")
    for r in rows:
        state = f"[red]removed {r.removed_at:%Y-%m-%d}[/]" if r.removed_at else "[green]active[/]"
        t.add_row(
            r.id,
            redacted_url(r.url),
            ", ".join(r.events),
            r.format,
            r.created_at.strftime("%Y-%m-%d %H:%M"),
            r.created_by,
            state,
        )
    console.print(t)


@webhook_app.command("rm")
@handle_errors
def rm(
    webhook_id: Annotated[
        str, typer.Argument(help="Webhook id (wh-...), see `airlock webhook ls`.")
    ],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "",
) -> None:
    """Remove a subscription (admin); its pending deliveries are not sent."""
    from airlock.cli.feedback_backend import open_feedback

    with open_feedback() as side:
        row = side.remove_webhook(webhook_id, reason=reason)
    console.print(f"removed webhook {row.id}")


@webhook_app.command("deliveries")
@handle_errors
def deliveries(
    limit: Annotated[int, typer.Option(help="At most this many, newest first (0 for all).")] = 20,
    webhook_id: Annotated[
        str | None, typer.Option("--webhook", help="Only this webhook's deliveries.")
    ] = None,
    attempts: Annotated[
        bool, typer.Option("--attempts", help="Also list every attempt (status, error, time).")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """The delivery log: each delivery's state, attempts, last status or error."""
    from airlock.cli.feedback_backend import open_feedback

    with open_feedback() as side:
        found = side.deliveries(
            limit=limit or None, webhook_id=webhook_id, attempts=attempts or as_json
        )
    rows = [d for d, _ in found]
    tries = {d.id: log for d, log in found}
    if as_json:
        print_json(
            [{**_public(d), "attempt_log": [_public(a) for a in tries.get(d.id, [])]} for d in rows]
        )
        return
    if not rows:
        console.print("no deliveries yet")
        return
    t = Table("delivery", "webhook", "event", "state", "attempts", "last", "next / done")
    for d in rows:
        colour = {"delivered": "green", "failed": "bold red"}.get(d.state, "yellow")
        last = d.last_error or (f"HTTP {d.last_status}" if d.last_status else "—")
        when = d.finished_at if d.finished_at else d.next_attempt_at
        event = f"{d.action} #{d.event_seq}" if d.event_seq > 0 else d.action
        t.add_row(
            d.id,
            d.webhook_id,
            event,
            f"[{colour}]{d.state}[/]",
            str(d.attempts),
            last,
            when.strftime("%Y-%m-%d %H:%M:%S"),
        )
        for a in tries.get(d.id, []):
            t.add_row(
                "",
                "",
                f"  attempt {a.attempt}",
                "",
                "",
                a.error or f"HTTP {a.status}",
                f"{a.at:%H:%M:%S} ({a.duration_ms:.0f} ms)",
            )
    console.print(t)


def _show(results: list[AttemptResult]) -> None:
    for r in results:
        colour = {"delivered": "green", "failed": "bold red"}.get(r.state, "yellow")
        what = r.error or f"HTTP {r.status}"
        console.print(
            f"{r.delivery_id} {r.action} → {r.webhook_id}: [{colour}]{r.state}[/] "
            f"(attempt {r.attempt}, {what})"
        )


@webhook_app.command("test")
@handle_errors
def test(
    webhook_id: Annotated[str, typer.Argument(help="Webhook id (wh-...).")],
) -> None:
    """Send a webhook.test delivery to one subscription now; exit 1 if it was not accepted."""
    from airlock.cli.feedback_backend import open_feedback

    with open_feedback() as side:
        results = side.test_webhook(webhook_id)
    _show(results)
    if not results or results[0].state != "delivered":
        err_console.print("[dim]hint:[/] see `airlock webhook deliveries --attempts`")
        raise typer.Exit(code=1)


@webhook_app.command("deliver")
@handle_errors
def deliver(
    once: Annotated[
        bool,
        typer.Option("--once", help="One pass: queue new events, attempt due deliveries, exit."),
    ] = False,
    interval: Annotated[float, typer.Option(help="Seconds between passes (without --once).")] = 1.0,
    timeout: Annotated[float, typer.Option(help="Seconds for one POST.")] = 5.0,
    as_json: AsJson = False,
) -> None:
    """Deliver webhooks: one pass with --once (cron), else run until interrupted. Against
    a server (AIRLOCK_URL) the passes run there, where the subscriptions live (admin)."""
    from airlock.cli.feedback_backend import open_feedback

    with open_feedback() as side:
        if once:
            report = side.deliver_once(timeout=timeout)
        else:
            console.print("delivering webhooks; Ctrl-C to stop")
            with contextlib.suppress(KeyboardInterrupt):
                side.deliver_forever(
                    interval=interval, timeout=timeout, on_pass=lambda r: _show(list(r.attempts))
                )
            return
    if as_json:
        typer.echo(
            json.dumps(
                {"queued": report.queued, "attempts": [_public(a) for a in report.attempts]},
                indent=2,
            )
        )
        return
    _show(list(report.attempts))
    console.print(
        f"queued {report.queued}, delivered {report.delivered}, failed {report.failed}, "
        f"retrying {len(report.attempts) - report.delivered - report.failed}"
    )
