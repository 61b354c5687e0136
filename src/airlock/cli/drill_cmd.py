"""``airlock drill SERVICE --fault ...`` (a rollback drill) and ``airlock drill history``.

Both work on the local workspace or, with ``AIRLOCK_URL``, on a server
(:mod:`airlock.cli.rollout_backend`): there the drill runs inside ``airlock serve`` and
the command follows it until its result is stored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from airlock.cli.common import console, err_console, handle_errors

if TYPE_CHECKING:
    from airlock.services.drills import DrillSettings, DrillView
    from airlock.services.identity import Actor
    from airlock.services.workspace import Workspace


class _RunByDefault(TyperGroup):
    """``airlock drill chat ...`` means ``airlock drill run chat ...``."""

    # Typer vendors its own click: its types are private, so the override says Any.
    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().resolve_command(ctx, args)


drill_app = typer.Typer(
    cls=_RunByDefault,
    help="Rollback drills: roll out a deliberately faulty copy of the stable release and time "
    "how fast it is caught and reverted. `airlock drill SERVICE --fault errors=0.2` runs one.",
    no_args_is_help=True,
)


@drill_app.command("run")
@handle_errors
def run(
    service: Annotated[str, typer.Argument(help="The service to drill, e.g. chat.")],
    fault: Annotated[
        list[str],
        typer.Option(
            "--fault",
            help="errors=0.2 (share of failing calls), latency=+300ms (added to every call), "
            "unsafe=0.1 (share of answers the safety policy should catch); repeat to combine.",
        ),
    ],
    strategy: Annotated[
        Path | None,
        typer.Option(help="Rollout spec for the drill (default: canary 10 % then 50 %)."),
    ] = None,
    rps: Annotated[float, typer.Option(help="Requests a second the drill sends.")] = 50.0,
    url: Annotated[
        str | None,
        typer.Option(
            help="Drive a running gateway (e.g. http://127.0.0.1:8000) instead of one "
            "started in this process (local workspace only: a server drills its own gateway)."
        ),
    ] = None,
    tick: Annotated[float, typer.Option(help="The drill's controller tick (seconds).")] = 1.0,
    sync: Annotated[
        float,
        typer.Option(help="The in-process gateway's catalog sync and telemetry flush (seconds)."),
    ] = 1.0,
    timeout: Annotated[
        float, typer.Option(help="Abort the drill after this many seconds.")
    ] = 600.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Run a drill: push the faulty copy, roll it out under traffic, report detect and revert times."""
    from airlock.cli.rollout_backend import open_rollouts
    from airlock.core.drill import parse_faults
    from airlock.errors import InvalidInput
    from airlock.services.drills import DrillSettings

    parse_faults(fault)  # bad faults are refused before anything else
    spec = None
    if strategy is not None:
        try:
            spec = strategy.read_text("utf-8")
        except OSError as exc:
            raise InvalidInput(f"cannot read {strategy}: {exc.strerror}") from exc
    if rps <= 0 or tick <= 0 or sync <= 0:
        raise InvalidInput("--rps, --tick and --sync must be positive")
    settings = DrillSettings(rps=rps, timeout_seconds=timeout)
    say = (
        (lambda _: None) if as_json else (lambda text: err_console.print(f"[dim]drill:[/] {text}"))
    )
    with open_rollouts() as side:
        view = side.run_drill(
            service, fault, spec=spec, settings=settings, url=url, tick=tick, sync=sync, say=say
        )
    if as_json:
        typer.echo(json.dumps(view.to_dict(), indent=2, sort_keys=True, default=str))
        return
    _show(view)


def run_here(
    ws: Workspace,
    who: Actor,
    service: str,
    faults: dict[str, float],
    spec: str | None,
    settings: DrillSettings,
    url: str | None,
    tick: float,
    sync: float,
    say: Any,
) -> DrillView:
    """The drill run by this process: its own controller, and its own gateway (or ``url``)."""
    import asyncio
    import logging

    import httpx

    from airlock.assembly import Assembly, AssemblySettings, build
    from airlock.gateway.app import trusted
    from airlock.gateway.server import gateway_app
    from airlock.services.controller import ControllerSettings
    from airlock.services.drills import run_drill

    control = ControllerSettings(tick_seconds=tick)

    async def drill(parts: Assembly, client: httpx.AsyncClient) -> DrillView:
        return await run_drill(
            parts.drills,
            service,
            faults,
            actor=who,
            client=client,
            controller=parts.controller,
            spec=spec,
            settings=settings,
            on_progress=say,
        )

    async def remote(base: str) -> DrillView:
        parts = build(ws, AssemblySettings(controller=control, local_gateway=False))
        import os

        key = os.environ.get("AIRLOCK_GATEWAY_KEY", "").strip()  # a keyed gateway: --can-pin
        headers = {"authorization": f"Bearer {key}"} if key else {}
        async with httpx.AsyncClient(base_url=base, headers=headers) as client:
            return await drill(parts, client)

    async def local() -> DrillView:
        parts = build(
            ws, AssemblySettings(controller=control, sync_seconds=sync, services=(service,))
        )
        app = gateway_app(parts)
        transport = httpx.ASGITransport(app=trusted(app))  # in-process: past the key check
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://airlock") as client,
        ):
            return await drill(parts, client)

    if url:
        base = url.rstrip("/").removesuffix("/v1")
        return asyncio.run(remote(base))
    # Each injected failure is a gateway warning ("answering from stable"): expected
    # here by the hundred, so the drill's own gateway only reports errors.
    gateway_log = logging.getLogger("airlock.gateway")
    level = gateway_log.level
    gateway_log.setLevel(logging.ERROR)
    try:
        return asyncio.run(local())
    finally:
        gateway_log.setLevel(level)


@drill_app.command("history")
@handle_errors
def history(
    service: Annotated[str | None, typer.Argument(help="Only this service's drills.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many drills.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Past drills: the fault, whether it was caught, time to detect and to revert."""
    from rich.table import Table

    from airlock.cli.rollout_backend import open_rollouts
    from airlock.core.drill import describe

    with open_rollouts() as side:
        drills = side.drills(service, limit=limit)
    if as_json:
        typer.echo(json.dumps([d.to_dict() for d in drills], indent=2, sort_keys=True))
        return
    if not drills:
        console.print("no drills yet: `airlock drill SERVICE --fault errors=0.2`")
        return
    table = Table(
        "id",
        "when",
        "service",
        "faulty release",
        "faults",
        "outcome",
        "detect",
        "revert",
        "faulty requests",
        "saw the fault",
    )
    for d in drills:
        table.add_row(
            f"#{d.id}",
            f"{d.started_at:%Y-%m-%d %H:%M:%S}",
            d.service,
            d.release,
            describe(d.faults),
            "[green]detected[/]" if d.outcome == "detected" else "[red]missed[/]",
            _seconds(d.detect_seconds),
            _seconds(d.revert_seconds),
            f"{d.faulty_requests} of {d.requests}",
            str(d.faulted_requests),
        )
    console.print(table)


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _show(view: DrillView) -> None:
    from airlock.core.drill import describe

    r = view.result
    caught = (
        "[green]detected and rolled back[/]" if view.outcome == "detected" else "[red]missed[/]"
    )
    console.print(f"drill [bold]#{view.id}[/] of {view.service}: {caught}")
    console.print(
        f"  faulty release   {view.release} ({describe(view.faults)}), rollout #{view.rollout_id}"
    )
    console.print(
        f"  time to detect   {_seconds(view.detect_seconds)} "
        "[dim](first request on the faulty release → rollback decision)[/]"
    )
    console.print(
        f"  time to revert   {_seconds(view.revert_seconds)} "
        "[dim](decision → every new request on stable; resolution 1/rps)[/]"
    )
    console.print(
        f"  drill traffic    {view.requests} requests; {view.faulty_requests} routed to the "
        f"faulty release; {view.faulted_requests} saw the fault; "
        f"{r.get('user_errors', 0)} errors returned to users"
    )
    seen = r.get("all_gateways") or {}
    console.print(
        f"  all gateways     {seen.get('requests', 0)} requests to the faulty release, "
        f"{seen.get('errors', 0)} failed ({seen.get('fallbacks', 0)} answered by stable), "
        f"{seen.get('guardrail_flags', 0)} flagged by guardrails"
    )
    console.print(
        f"  rollout          {r.get('rollout_phase')}: {r.get('rollout_reason')}", soft_wrap=True
    )


__all__ = ["drill_app"]
