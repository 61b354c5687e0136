"""``airlock serve``: REST API, dashboard, gateway and controller in one process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from airlock.cli.common import console, gateway_limits, handle_errors, workspace


@handle_errors
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    controller: Annotated[
        bool,
        typer.Option(
            "--controller/--no-controller",
            help="Run the rollout controller here (off: another process runs it).",
        ),
    ] = True,
    tick: Annotated[float, typer.Option(help="Seconds between two controller passes.")] = 1.0,
    lease: Annotated[
        float,
        typer.Option(
            min=0.1, help="Seconds a silent controller keeps the lease before another acts."
        ),
    ] = 10.0,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    insecure_open: Annotated[
        bool,
        typer.Option(
            "--insecure-open",
            help="On a non-loopback address, serve services that have no gateway key to anyone.",
        ),
    ] = False,
    checkpoint_every: Annotated[
        int,
        typer.Option(
            min=0, help="Append a signed audit checkpoint to --checkpoint-file every N events."
        ),
    ] = 0,
    checkpoint_file: Annotated[
        Path | None,
        typer.Option(help="Where checkpoints go (JSON Lines); keep it outside the workspace."),
    ] = None,
    limits: Annotated[
        Path | None,
        typer.Option("--limits", help="YAML of the gateway's request limits (docs/limits.md)."),
    ] = None,
) -> None:
    """Serve the REST API, the dashboard, the OpenAI-compatible gateway and the rollout
    controller on one port (creates ./.airlock on first use)."""
    from airlock.cli.token_cmd import init_owner_token
    from airlock.gateway.engine import GatewaySettings
    from airlock.serve import ServeSettings
    from airlock.serve import serve as run
    from airlock.services.controller import ControllerSettings
    from airlock.services.gateway_keys import GatewayKeys
    from airlock.services.serving import Serving
    from airlock.services.tokens import TOKEN_ENV, token_file

    if bool(checkpoint_every) != (checkpoint_file is not None):
        from airlock.errors import InvalidInput

        raise InvalidInput(
            "--checkpoint-every and --checkpoint-file go together",
            hint="e.g. --checkpoint-every 100 --checkpoint-file /backup/airlock-checkpoints.jsonl",
        )
    request_limits = gateway_limits(limits)
    with workspace(create=True) as ws:
        init_owner_token(ws)
        open_access = GatewayKeys(ws).check_exposure(host, insecure_open=insecure_open)
        services = ", ".join(v.name for v in Serving(ws).all()) or "none yet"
        base = f"http://{host}:{port}"
        console.print(f"[bold]Airlock[/] serving workspace {ws.home}")
        console.print(f"  dashboard  [bold]{base}/[/]")
        console.print(f"  REST API   {base}/api/v1   (OpenAPI: {base}/docs)")
        console.print(f"  gateway    {base}/v1       (OpenAI-compatible; services: {services})")
        console.print(f"  health     {base}/readyz   metrics: {base}/metrics")
        path = token_file(ws.home)
        where = f"`cat {path}`" if path.exists() else f"${TOKEN_ENV}"
        console.print(f"  sign in with an API token: the owner's admin token is in {where}")
        console.print(
            f"  controller {'on, every ' + format(tick, 'g') + ' s' if controller else 'off'}"
            "   stop with Ctrl-C (requests in flight finish, telemetry is flushed)"
        )
        if checkpoint_file is not None:
            console.print(
                f"  audit      a signed checkpoint every {checkpoint_every} event(s) "
                f"to {checkpoint_file}"
            )
        settings = ServeSettings(
            host=host,
            port=port,
            controller=ControllerSettings(tick_seconds=tick, lease_seconds=lease),
            run_controller=controller,
            log_level=log_level,
            gateway=GatewaySettings(open_access=open_access, limits=request_limits),
            checkpoint_every=checkpoint_every,
            checkpoint_file=checkpoint_file,
        )
        run(ws, settings)
