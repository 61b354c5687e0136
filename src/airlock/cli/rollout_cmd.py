"""``airlock rollout`` (start, watch and steer rollouts) and ``airlock controller`` (the loop).

The rollout commands work on the local workspace or, with ``AIRLOCK_URL``, on a server
(:mod:`airlock.cli.rollout_backend`); the controller runs next to the catalog.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from airlock.cli.common import actor, console, handle_errors, workspace

if TYPE_CHECKING:
    from rich.console import RenderableType

    from airlock.cli.rollout_backend import Verb
    from airlock.services.controller import ControllerEvent
    from airlock.services.rollouts import RolloutRecord, RolloutView, Transition

rollout_app = typer.Typer(
    help="Roll a candidate out to a service step by step; watch, pause, promote, roll back.",
    no_args_is_help=True,
)

Service = Annotated[str, typer.Argument(help="The service, e.g. chat.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


@rollout_app.command("start")
@handle_errors
def start(
    service: Service,
    candidate: Annotated[str, typer.Option("--candidate", help="The release to roll out.")],
    strategy: Annotated[
        Path,
        typer.Option(
            "--strategy",
            help="A rollout spec (YAML or JSON): canary, linear, bluegreen, ab or shadow; "
            "examples in src/airlock/examples/strategies/.",
        ),
    ],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "",
) -> None:
    """Start moving a service to a candidate; the controller drives it from here."""
    from airlock.cli.rollout_backend import open_rollouts

    text = _read_spec(strategy)
    with open_rollouts() as side:
        t = side.start(service, candidate, text, reason=reason)
    view = t.rollout
    console.print(
        f"rollout [bold]#{view.id}[/] of {view.service}: {view.candidate} "
        f"({view.spec.strategy}, {len(view.steps)} step(s)); {_where(view)}"
    )
    console.print(
        "the controller (`airlock controller`, or `airlock serve`) judges it every tick; "
        f"watch it with `airlock rollout status {service}`"
    )


@rollout_app.command("plan")
@handle_errors
def plan(
    service: Service,
    strategy: Annotated[
        Path, typer.Option("--strategy", help="The rollout spec (YAML or JSON) to plan.")
    ],
    candidate: Annotated[
        str | None, typer.Option("--candidate", help="The release to roll out (checked to exist).")
    ] = None,
    lookback: Annotated[
        float, typer.Option("--lookback", help="Seconds of recent traffic to plan from.", min=1)
    ] = 3600.0,
    rps: Annotated[
        float | None, typer.Option("--rps", help="Expected requests/s, instead of the service's.")
    ] = None,
    error_rate: Annotated[
        float | None, typer.Option("--error-rate", help="Expected error rate (0..1).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """What each step of a spec can detect in its bake time, from the service's recent traffic.

    Prints, per step and metric, the smallest effect the analysis would expect to
    catch by the end of the bake (a ratio of rates, or a slow-down) and when it
    would expect to catch the targets (2× errors, a 20 % slow-down); warns when
    a step cannot decide in its bake time.
    """
    from airlock.cli.rollout_backend import open_rollouts

    text = _read_spec(strategy)
    overrides = {
        k: v for k, v in (("requests_per_second", rps), ("error_rate", error_rate)) if v is not None
    }
    with open_rollouts() as side:
        result = side.plan(
            service, text, candidate=candidate, lookback=lookback, overrides=overrides
        )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, sort_keys=True))
        return
    _print_plan(result)


def _read_spec(path: Path) -> str:
    from airlock.errors import InvalidInput

    try:
        return path.read_text("utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc


def _print_plan(result: Any) -> None:
    import math

    from rich.table import Table

    b = result.baseline
    console.print(
        f"{result.service} on {result.stable}: {b.requests_per_second:.3g} requests/s, "
        f"errors {b.error_rate:.2%}, guardrail flags {b.flag_rate:.2%}, "
        f"latency spread σ {b.latency_sigma:.2f}, clustering ×{b.dispersion:.2f}"
    )
    table = Table(
        "step",
        "weight",
        "bake",
        "candidate req",
        "metric",
        "detectable by end",
        "target",
        "expected to detect target",
    )
    for s in result.steps:
        for i, m in enumerate(s.metrics):
            unit = "slower" if m.unit == "slow-down" else "×"
            detect = (
                f"{(m.detectable - 1):+.0%} {unit}"
                if m.unit == "slow-down" and math.isfinite(m.detectable)
                else (f"{m.detectable:.2f}{unit}" if math.isfinite(m.detectable) else "nothing")
            )
            target = (
                "—"
                if not math.isfinite(m.target)
                else (f"{m.target - 1:+.0%} slower" if m.unit == "slow-down" else f"{m.target:g}×")
            )
            when = (
                f"after {m.seconds_to_target:.0f} s"
                if math.isfinite(m.seconds_to_target)
                else "not in this rollout"
            )
            table.add_row(
                f"{s.index + 1}" if i == 0 else "",
                f"{s.weight_bp / 100:g} %" if i == 0 else "",
                f"{s.bake_seconds:g} s" if i == 0 else "",
                f"{s.candidate_requests:,.0f}" if i == 0 else "",
                m.metric,
                detect,
                target,
                when,
            )
    console.print(table)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}")


@rollout_app.command("status")
@handle_errors
def status(
    service: Service,
    as_json: AsJson = False,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Keep watching until the rollout ends: exit 0 when promoted or completed, "
            "1 when rolled back or aborted. Redraws on a terminal; one line per change "
            "when piped (one JSON object per line with --json).",
        ),
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between two looks with --watch.", min=0.01)
    ] = 1.0,
) -> None:
    """Where the service's rollout is: step, weights, and the latest analysis per metric."""
    from airlock.cli.rollout_backend import open_rollouts

    if watch:
        with open_rollouts() as side:
            code = _watch(side.status, service, interval=interval, as_json=as_json)
        raise typer.Exit(code)
    with open_rollouts() as side:
        view = side.status(service)
    if as_json:
        typer.echo(json.dumps(view.to_dict(), indent=2, sort_keys=True))
        return
    for part in _status(view):
        console.print(part)


ENDED_WELL = frozenset({"promoted", "completed"})


def _watch(
    look: Callable[[str], RolloutView], service: str, *, interval: float, as_json: bool
) -> int:
    """Follow the service's rollout until it ends; its exit code (0 went well, 1 did not)."""
    import time

    from rich.console import Group
    from rich.live import Live

    def ended(view: RolloutView) -> int:
        return 0 if view.phase in ENDED_WELL else 1

    view = look(service)
    try:
        if console.is_terminal and not as_json:
            with Live(Group(*_status(view)), console=console, auto_refresh=False) as live:
                while view.live:
                    time.sleep(interval)
                    view = look(service)
                    live.update(Group(*_status(view)), refresh=True)
            return ended(view)
        last: tuple[Any, ...] | None = None
        while True:
            key = _change_key(view)
            if key != last:
                last = key
                if as_json:
                    typer.echo(json.dumps(view.to_dict(), sort_keys=True))
                else:
                    console.print(_status_line(view), soft_wrap=True)
            if not view.live:
                return ended(view)
            time.sleep(interval)
            view = look(service)
    except KeyboardInterrupt:
        console.print("stopped watching; the rollout goes on (`airlock rollout status` to look)")
        return 130


@rollout_app.command("pause")
@handle_errors
def pause(service: Service, reason: Annotated[str, typer.Option(help="Why.")] = "") -> None:
    """Hold the current weights; the analysis still rolls back on harm."""
    _control(service, "pause", reason)


@rollout_app.command("resume")
@handle_errors
def resume(service: Service, reason: Annotated[str, typer.Option(help="Why.")] = "") -> None:
    """Continue a paused rollout (approves a step waiting for approval); its clock restarts."""
    _control(service, "resume", reason)


@rollout_app.command("promote")
@handle_errors
def promote(service: Service, reason: Annotated[str, typer.Option(help="Why.")] = "") -> None:
    """Skip the remaining steps: the candidate becomes stable (the policy gate still applies)."""
    _control(service, "promote", reason)


@rollout_app.command("abort")
@handle_errors
def abort(
    service: Service,
    reason: Annotated[str, typer.Option(help="Why (required; kept in the audit log).")],
) -> None:
    """Cancel the rollout without judging the candidate; everyone back on stable."""
    _control(service, "abort", reason)


@rollout_app.command("rollback")
@handle_errors
def rollback(
    service: Service,
    reason: Annotated[str, typer.Option(help="Why (required; kept in the audit log).")],
) -> None:
    """The candidate is bad: stable takes 100 % of new requests at once; ends rolled_back."""
    _control(service, "rollback", reason)


def _control(service: str, verb: Verb, reason: str) -> None:
    from airlock.cli.rollout_backend import open_rollouts

    with open_rollouts() as side:
        _done(side.control(service, verb, reason=reason))


@rollout_app.command("history")
@handle_errors
def history(
    service: Annotated[str | None, typer.Argument(help="Only this service's rollouts.")] = None,
    rollout: Annotated[
        int | None,
        typer.Option("--rollout", help="Every decision of one rollout, with its verdicts."),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many rollouts.")] = 20,
    as_json: AsJson = False,
) -> None:
    """Past and current rollouts; with --rollout ID, that rollout's decisions and verdicts."""
    from rich.table import Table

    from airlock.cli.rollout_backend import open_rollouts

    with open_rollouts() as side:
        if rollout is not None:
            view, records = side.detail(rollout)
        else:
            views = side.recent(service, limit=limit)
    if rollout is not None:
        if as_json:
            out = {"rollout": view.to_dict(), "history": [r.to_dict() for r in records]}
            typer.echo(json.dumps(out, indent=2, sort_keys=True))
            return
        console.print(
            f"rollout [bold]#{view.id}[/] of {view.service}: {view.candidate} "
            f"({view.spec.strategy}) {_phase(view.phase)}"
        )
        console.print(_records(view, records))
        return
    if as_json:
        typer.echo(json.dumps([v.to_dict() for v in views], indent=2, sort_keys=True))
        return
    if not views:
        console.print(
            "no rollouts yet: `airlock rollout start SERVICE --candidate REF --strategy FILE`"
        )
        return
    table = Table(
        "id", "service", "candidate", "from", "strategy", "phase", "started", "ended", "reason"
    )
    for v in views:
        table.add_row(
            f"#{v.id}" + (" (drill)" if v.kind == "drill" else ""),
            v.service,
            v.candidate,
            v.stable,
            v.spec.strategy,
            _phase(v.phase),
            f"{v.created_at:%Y-%m-%d %H:%M:%S} by {v.created_by}",
            f"{v.finished_at:%H:%M:%S}" if v.finished_at else "—",
            v.reason,
        )
    console.print(table)


@handle_errors
def controller(
    tick: Annotated[float, typer.Option(help="Seconds between two looks at every rollout.")] = 1.0,
    lease: Annotated[
        float, typer.Option(help="Seconds a silent leader keeps the lease before a standby acts.")
    ] = 10.0,
    ticks: Annotated[
        int | None, typer.Option(help="Stop after this many ticks (default: run until stopped).")
    ] = None,
) -> None:
    """Run the rollout controller alone: analyse every live rollout each tick and act on it."""
    import asyncio
    import signal

    from airlock.services.access import authorize_controller
    from airlock.services.controller import ControllerSettings, RolloutController
    from airlock.services.rollouts import Rollouts

    with workspace() as ws:
        authorize_controller(ws, actor(ws))
        settings = ControllerSettings(tick_seconds=tick, lease_seconds=lease)
        loop_controller = RolloutController(Rollouts(ws), settings=settings, on_event=_event)

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await loop_controller.run(stop, ticks=ticks)

        console.print(
            f"controller {settings.holder}: every {tick:g} s, leader lease {lease:g} s "
            "(stop with Ctrl-C)"
        )
        asyncio.run(main())
    console.print("controller stopped; lease released")


# -- rendering ----------------------------------------------------------------------------


def _event(event: ControllerEvent) -> None:
    when = datetime.fromtimestamp(event.decided_at, UTC).strftime("%H:%M:%S")
    console.print(
        f"{when} rollout #{event.rollout_id} of {event.service}: [bold]{event.action}[/] "
        f"→ {_phase(event.phase)}  {event.reason}",
        soft_wrap=True,
    )


def _done(t: Transition) -> None:
    view = t.rollout
    console.print(
        f"rollout #{view.id} of {view.service}: {t.action} → {_phase(view.phase)}; {_where(view)}"
    )
    if t.plan is not None:
        console.print(f"[dim]plan generation {t.plan.generation} stored; gateways follow it[/]")


def _phase(phase: str) -> str:
    color = {
        "progressing": "cyan",
        "paused": "yellow",
        "promoted": "green",
        "completed": "green",
        "rolled_back": "red",
        "aborted": "magenta",
    }.get(phase, "white")
    return f"[{color}]{phase}[/]"


def _where(view: RolloutView) -> str:
    if not view.live:
        return view.reason
    step = view.live_step
    mirror = f", mirrored to {step.mirror}" if step is not None and step.mirror else ""
    waiting = (
        " (waiting for approval: `airlock rollout resume`)" if view.state.awaiting_approval else ""
    )
    return (
        f"step {view.state.step_index + 1}/{len(view.steps)}: "
        f"{view.candidate_weight / 100:g} % of users on the candidate{mirror}{waiting}"
    )


def _change_key(view: RolloutView) -> tuple[Any, ...]:
    """What a watcher is told about: a new rollout, phase, step, weight, verdict or reason."""
    verdict = view.last_verdict.outcome if view.last_verdict else None
    return (
        view.id,
        view.phase,
        view.state.step_index,
        view.state.awaiting_approval,
        view.candidate_weight,
        verdict,
        view.reason,
    )


def _status_line(view: RolloutView) -> str:
    """One line of ``rollout status --watch`` when piped: when, which, where, the analysis."""
    from airlock.core.verdict_text import counts

    when = datetime.now(UTC).strftime("%H:%M:%S")
    analysis = f"; analysis {counts(view.last_verdict)}" if view.last_verdict else ""
    return (
        f"{when} rollout #{view.id} of {view.service} ({view.candidate}): "
        f"{_phase(view.phase)} — {_where(view)}{analysis}"
    )


def _status(view: RolloutView) -> list[RenderableType]:
    from rich.table import Table

    from airlock.cli.render import verdict_table
    from airlock.core.verdict_text import headline

    kind = " [dim](drill)[/]" if view.kind == "drill" else ""
    out: list[RenderableType] = [
        f"rollout [bold]#{view.id}[/] of [bold]{view.service}[/]{kind}: {_phase(view.phase)}",
        f"  {view.stable} → {view.candidate}   strategy {view.spec.strategy}, "
        f"started {view.created_at:%Y-%m-%d %H:%M:%S} by {view.created_by}",
    ]
    if view.live:
        out.append(f"  {_where(view)}")
    ended = f" (ended {view.finished_at:%Y-%m-%d %H:%M:%S})" if view.finished_at else ""
    out.append(f"  reason{ended}: {view.reason}")
    steps = Table("step", "weight", "bake", "", box=None, padding=(0, 2))
    current = view.state.step_index - (1 if view.state.awaiting_approval else 0)
    for i, s in enumerate(view.steps):
        marker = "◀ now" if view.live and i == current else ""
        note = " (approval first)" if s.pause else ""
        mirror = f" + mirror to {s.mirror}" if s.mirror else ""
        steps.add_row(
            f"{i + 1}", f"{s.weight_bp / 100:g} %{mirror}", f"{s.bake_seconds:g} s{note}", marker
        )
    out.append(steps)
    if view.live:
        elapsed = datetime.now(UTC).timestamp() - view.state.step_started_at
        out.append(f"  this step: {elapsed:.0f} s so far")
    if view.last_verdict:
        when = f" (as of {view.verdict_at:%H:%M:%S})" if view.verdict_at else ""
        out.append(f"analysis{when}: {headline(view.last_verdict)}")
        out.append(verdict_table(view.last_verdict))
    return out


def _records(view: RolloutView, records: list[RolloutRecord]) -> RenderableType:
    from rich.table import Table

    from airlock.core.verdict_text import counts

    table = Table("when", "action", "by", "step", "candidate", "verdict", "reason")
    for r in records:
        summary = counts(r.verdict) if r.verdict else "—"
        table.add_row(
            f"{r.at:%H:%M:%S.%f}"[:-3],
            r.action,
            r.actor,
            f"{r.step_index + 1}/{len(view.steps)}",
            f"{r.candidate_weight / 100:g} %",
            summary,
            r.reason,
        )
    return table


__all__ = ["controller", "rollout_app"]
