"""``airlock login URL`` / ``airlock logout``: work against an Airlock server instead of ./.airlock."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from airlock.cli.common import console, handle_errors


@handle_errors
def login(
    url: Annotated[str, typer.Argument(help="The server, e.g. https://airlock.example.com.")],
    token: Annotated[
        str | None,
        typer.Option(help="An API token (default: AIRLOCK_TOKEN, else asked for)."),
    ] = None,
) -> None:
    """Store a server and token (0600 file): later commands talk to that server over REST."""
    from airlock.cli.backend import save_login
    from airlock.client import Client
    from airlock.errors import InvalidInput
    from airlock.services.tokens import TOKEN_ENV

    if not url.startswith(("http://", "https://")):
        raise InvalidInput(f"{url!r} is not an http(s) URL", hint="e.g. http://127.0.0.1:8080")
    secret = token or os.environ.get(TOKEN_ENV) or typer.prompt("API token", hide_input=True)
    with Client(url, secret) as api:
        who = api.whoami()  # the token works against this server, or the error says why
    path = save_login(url, secret)
    console.print(
        f"logged in to {url} as [bold]{who.get('name')}[/] ({who.get('role')}); saved in {path}"
    )


@handle_errors
def logout() -> None:
    """Forget the stored server and token: commands use the local workspace again."""
    from airlock.cli.backend import forget_login

    console.print("logged out" if forget_login() else "not logged in")
