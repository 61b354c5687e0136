"""``airlock gateway-key``: clients' keys to the gateway's ``/v1`` (like LiteLLM virtual keys).

(``airlock key`` manages the ed25519 signing keys of releases; these are different.)
Local or, with ``AIRLOCK_URL``, on a server (:mod:`airlock.cli.access_backend`).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from airlock.cli.common import console, err_console, handle_errors

gateway_key_app = typer.Typer(
    help="Gateway keys: which clients may call a service's /v1 endpoints (hashed, scoped, "
    "rate-limited, revocable).",
    no_args_is_help=True,
)


@gateway_key_app.command("create")
@handle_errors
def create(
    service: Annotated[str, typer.Option("--service", help="The service the key may call.")],
    name: Annotated[str, typer.Option("--name", help="A name for the client (e.g. web-app).")],
    rpm: Annotated[
        int | None, typer.Option(help="Requests per minute (default: no limit).")
    ] = None,
    tpm: Annotated[
        int | None, typer.Option(help="Model tokens (in + out) per minute (default: no limit).")
    ] = None,
    can_pin: Annotated[
        bool,
        typer.Option(
            "--can-pin",
            help="May pin a release (model=chat@1.2.0), send X-Airlock-User/-Session and see "
            "X-Airlock-Release.",
        ),
    ] = False,
    can_opt_out: Annotated[
        bool, typer.Option("--can-opt-out", help="May send X-Airlock-Opt-Out.")
    ] = False,
    can_feedback: Annotated[
        bool,
        typer.Option("--can-feedback/--no-can-feedback", help="May POST /v1/feedback."),
    ] = True,
    expires: Annotated[
        str | None,
        typer.Option(help="Lifetime (90m, 12h, 30d, 8w) or ISO date/time (default: never)."),
    ] = None,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "",
) -> None:
    """Create a gateway key (operators, admins). The secret is printed once; only its hash
    is stored. From then on the service answers only requests with a valid key."""
    from airlock.cli.access_backend import open_access
    from airlock.core.gateway_keys import KeyScopes

    scopes = KeyScopes(can_pin=can_pin, can_opt_out=can_opt_out, can_feedback=can_feedback)
    with open_access() as side:
        issued = side.create_gateway_key(
            service=service,
            name=name,
            scopes=scopes,
            rpm=rpm,
            tpm=tpm,
            expires=expires,
            reason=reason,
        )
    k = issued.key
    limits = ", ".join(
        f"{v} {u}/min" for v, u in ((k.rpm, "requests"), (k.tpm, "tokens")) if v is not None
    )
    err_console.print(
        f"created gateway key [bold]{k.id}[/] ({k.name}) for service {k.service}"
        + (f"; scopes: {', '.join(k.scopes.names())}" if k.scopes.names() else "; no scopes")
        + (f"; {limits}" if limits else "")
        + (f"; expires {k.expires_at:%Y-%m-%d %H:%M} UTC" if k.expires_at else "")
    )
    err_console.print(
        "[dim]store it now: it is not shown again. Clients send it as "
        "'Authorization: Bearer <key>' (the OpenAI SDK's api_key).[/]"
    )
    typer.echo(issued.secret)


@gateway_key_app.command("ls")
@handle_errors
def list_keys(
    service: Annotated[str | None, typer.Option(help="Only this service's keys.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include revoked and expired keys.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List gateway keys: id, service, name, scopes, limits, state (never the secret)."""
    from airlock.cli.access_backend import open_access

    with open_access() as side:
        infos = side.gateway_keys(service=service, include_inactive=all_)
    if as_json:
        typer.echo(json.dumps([i.to_dict() for i in infos], indent=2))
        return
    if not infos:
        console.print("no gateway keys" if all_ else "no active gateway keys (see --all)")
        return
    t = Table("id", "service", "name", "state", "scopes", "rpm", "tpm", "created", "expires")
    for i in infos:
        k = i.key
        state = {"active": "[green]active[/]", "revoked": "[red]revoked[/]"}.get(
            i.state, "[yellow]expired[/]"
        )
        t.add_row(
            k.id,
            k.service,
            k.name,
            state,
            ", ".join(s.removeprefix("can_") for s in k.scopes.names()) or "—",
            str(k.rpm) if k.rpm is not None else "—",
            str(k.tpm) if k.tpm is not None else "—",
            f"{k.created_at:%Y-%m-%d %H:%M} by {k.created_by}",
            f"{k.expires_at:%Y-%m-%d %H:%M}" if k.expires_at else "—",
        )
    console.print(t)


@gateway_key_app.command("revoke")
@handle_errors
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key id shown by `airlock gateway-key ls`.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "",
) -> None:
    """Revoke a gateway key (operators, admins); running gateways refuse it within a second."""
    from airlock.cli.access_backend import open_access

    with open_access() as side:
        info = side.revoke_gateway_key(key_id, reason=reason)
    console.print(f"revoked gateway key {info.key.id} ({info.key.name}) of {info.key.service}")


__all__ = ["gateway_key_app"]
