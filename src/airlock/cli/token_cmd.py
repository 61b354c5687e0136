"""``airlock token``: API tokens (who is calling, with which role).

Local or, with ``AIRLOCK_URL``, on a server (:mod:`airlock.cli.access_backend`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from airlock.cli.common import (
    AsJson,
    Limit,
    console,
    err_console,
    handle_errors,
    limited,
    print_json,
)
from airlock.core.roles import ROLE_NAMES, actions_of, parse_role

if TYPE_CHECKING:
    from airlock.services.workspace import Workspace

token_app = typer.Typer(
    help="Create, list and revoke API tokens (roles: " + ", ".join(ROLE_NAMES) + ").",
    no_args_is_help=True,
)


@token_app.command("create")
@handle_errors
def create(
    user: Annotated[str, typer.Option("--user", help="Who the token is for.")],
    role: Annotated[str, typer.Option("--role", help=f"One of: {', '.join(ROLE_NAMES)}.")],
    expires: Annotated[
        str | None, typer.Option(help="Lifetime, e.g. 90d, 12h, 8w (default: no expiry).")
    ] = None,
    note: Annotated[str, typer.Option(help="What the token is for (shown by `token ls`).")] = "",
) -> None:
    """Create a token (admin only). The secret is printed once; only its hash is stored."""
    from airlock.cli.access_backend import open_access
    from airlock.services.tokens import parse_duration

    parsed = parse_role(role)
    if expires:
        parse_duration(expires)  # a bad lifetime is refused before anything else
    with open_access() as side:
        issued = side.create_token(user=user, role=parsed.value, expires=expires, note=note)
    err_console.print(
        f"created token [bold]{issued.id}[/] for {issued.user} ({issued.role})"
        + (f", expires {issued.expires_at:%Y-%m-%d %H:%M} UTC" if issued.expires_at else "")
    )
    err_console.print("[dim]store it now: it is not shown again. Use it as AIRLOCK_TOKEN.[/]")
    typer.echo(issued.secret)


@token_app.command("ls")
@handle_errors
def list_tokens(
    user: Annotated[
        str | None, typer.Option(help="Only this user's tokens (anyone's: admins only).")
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Include revoked and expired tokens.")
    ] = False,
    limit: Limit = 0,
    as_json: AsJson = False,
) -> None:
    """List tokens: id, user, role, state, who created it and when (never the secret).
    Admins see every token, everyone else their own."""
    from airlock.cli.access_backend import open_access

    with open_access() as side:
        rows = side.tokens(user=user, include_inactive=all_)
    rows = list(reversed(limited(list(reversed(rows)), limit)))  # the newest `limit`
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no tokens" if all_ else "no active tokens (see --all)")
        return
    t = Table("id", "user", "role", "state", "created", "by", "expires", "note")
    for r in rows:
        state = {"active": "[green]active[/]", "revoked": "[red]revoked[/]"}.get(
            r.state, "[yellow]expired[/]"
        )
        t.add_row(
            r.id,
            r.user,
            r.role,
            state,
            r.created_at.strftime("%Y-%m-%d %H:%M"),
            r.created_by,
            r.expires_at.strftime("%Y-%m-%d") if r.expires_at else "—",
            r.note,
        )
    console.print(t)


@token_app.command("revoke")
@handle_errors
def revoke(
    token_id: Annotated[str, typer.Argument(help="The token id shown by `airlock token ls`.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "",
) -> None:
    """Revoke a token at once (admins: any token; everyone: their own)."""
    from airlock.cli.access_backend import open_access

    with open_access() as side:
        info = side.revoke_token(token_id, reason=reason)
    console.print(f"revoked token {info.id} of {info.user} ({info.role})")


@token_app.command("whoami")
@handle_errors
def whoami() -> None:
    """Who the current token (AIRLOCK_TOKEN, the workspace's token file, or the one stored by
    `airlock login`) stands for."""
    from airlock.cli.access_backend import open_access

    with open_access() as side:
        me = side.whoami()
    console.print(f"{me.name} ({me.role}), token {me.token_id}")
    allowed = ", ".join(a.value for a in actions_of(me.role)) or "read only"
    console.print(f"[dim]may: {allowed}[/]")


def init_owner_token(ws: Workspace) -> None:
    """For ``airlock init``: the first admin token, for the workspace owner, in the token file."""
    from airlock.services.tokens import Tokens, find_token, save_token, token_file

    issued = Tokens(ws).bootstrap(ws.settings.user)
    if issued is not None:
        path = save_token(ws.home, issued.secret)
        console.print(f"  token:   admin token {issued.id} for {issued.user} in {path} (mode 0600)")
        return
    if find_token(os.environ, ws.home) is None and not token_file(ws.home).exists():
        err_console.print(
            "[yellow]note:[/] this catalog already has API tokens; ask an admin for yours "
            "(`airlock token create`) and set AIRLOCK_TOKEN"
        )
