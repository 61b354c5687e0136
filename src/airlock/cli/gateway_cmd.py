"""``airlock gateway`` (serve the OpenAI-compatible gateway) and ``airlock service`` (manage
the services it serves)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from airlock.cli.common import (
    AsJson,
    console,
    gateway_limits,
    handle_errors,
    print_json,
    workspace,
)

if TYPE_CHECKING:
    from airlock.core.quality import QualitySettings
    from airlock.services.serving import ServiceView

service_app = typer.Typer(
    help="Services: named endpoints the gateway serves, each with a traffic plan.",
    no_args_is_help=True,
)


@handle_errors
def gateway(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    service: Annotated[
        list[str] | None, typer.Option("--service", help="Serve only these services (repeat).")
    ] = None,
    log_prompts: Annotated[
        bool,
        typer.Option(
            "--log-prompts",
            help="Log prompts with PII redacted (every built-in detector, plus what the "
            "release's safety policy redacts).",
        ),
    ] = False,
    shadow_queue: Annotated[
        int, typer.Option(help="Shadow copies that may wait; more are dropped and counted.")
    ] = 256,
    candidate_timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds a candidate may take before its request falls back to stable; "
            "stable gets the same cap while a service compares releases (a fair comparison)."
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    insecure_open: Annotated[
        bool,
        typer.Option(
            "--insecure-open",
            help="On a non-loopback address, serve services that have no gateway key to anyone.",
        ),
    ] = False,
    limits: Annotated[
        Path | None,
        typer.Option(
            "--limits",
            help="YAML of request limits (body bytes, messages, JSON depth, prompt tokens), "
            "with per-service overrides; see docs/limits.md.",
        ),
    ] = None,
) -> None:
    """Serve every service over an OpenAI-compatible API (chat, completions, streaming).

    Services with gateway keys need one (`airlock gateway-key create`); services without
    keys are open on 127.0.0.1 only, unless --insecure-open."""
    from airlock.gateway.engine import GatewaySettings
    from airlock.gateway.server import run
    from airlock.services.gateway_keys import GatewayKeys

    request_limits = gateway_limits(limits)
    if log_prompts:
        import logging

        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        requests_log = logging.getLogger("airlock.gateway.requests")
        requests_log.addHandler(handler)
        requests_log.setLevel(logging.INFO)
    from airlock.services.serving import Serving

    with workspace() as ws:
        open_access = GatewayKeys(ws).check_exposure(
            host, insecure_open=insecure_open, services=tuple(service) if service else None
        )
        settings = GatewaySettings(
            log_prompts=log_prompts,
            shadow_queue_size=shadow_queue,
            candidate_timeout_s=candidate_timeout,
            open_access=open_access,
            limits=request_limits,
        )
        if insecure_open:
            console.print(
                "[yellow]warning:[/] --insecure-open: services without a gateway key are open "
                "to anyone who can reach this address"
            )
        names = Serving(ws).all()
        shown = ", ".join(v.name for v in names) or "none yet"
        console.print(f"gateway on [bold]http://{host}:{port}/v1[/]  services: {shown}")
        console.print("[dim]metrics: /metrics   health: /healthz   feedback: POST /v1/feedback[/]")
        run(
            ws,
            host=host,
            port=port,
            settings=settings,
            services=tuple(service) if service else None,
            log_level=log_level,
        )


@service_app.command("create")
@handle_errors
def create(
    name: Annotated[str, typer.Argument(help="Service name: what clients send as `model`.")],
    stable: Annotated[str, typer.Option("--stable", help="The release serving everyone.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "",
) -> None:
    """Create a service that serves one stable release to every user."""
    from airlock.cli.rollout_backend import open_rollouts

    with open_rollouts() as side:
        view = side.create_service(name, stable, reason=reason)
        model, _, version = view.plan.stable.partition("@")
        alias = side.stable_alias(model)
    console.print(f"created service [bold]{view.name}[/] serving {view.plan.stable}")
    if alias is not None and alias != version:
        console.print(
            f"[yellow]note[/]: {model}@stable points at {alias}, not at {version}; "
            "a rollout's promotion moves it"
        )
    elif alias is not None:
        console.print(f"{model}@stable → {version}")
    console.print(f"next: [bold]airlock gateway[/], then send model={view.name!r}")


@service_app.command("ls")
@handle_errors
def ls(as_json: AsJson = False) -> None:
    """List services with their stable release, candidates and plan generation."""
    from airlock.cli.backend import open_backend

    with open_backend() as backend:
        views = backend.services()
    if as_json:
        print_json([_service_json(v) for v in views])
        return
    if not views:
        console.print("no services yet: run `airlock service create NAME --stable REF`")
        return
    table = Table("service", "stable", "candidates", "shadows", "generation", "updated")
    for v in views:
        table.add_row(*_summary(v))
    console.print(table)


@service_app.command("show")
@handle_errors
def show(
    name: Annotated[str, typer.Argument(help="Service name.")], as_json: AsJson = False
) -> None:
    """Show a service's traffic plan, opt-outs, default quality settings and plan history."""
    from airlock.cli.rollout_backend import open_rollouts

    with open_rollouts() as side:
        view = side.service(name)
        history = side.plan_history(name)
        defaults = side.service_quality(name)
    if as_json:
        print_json(
            {
                **_service_json(view),
                "quality": None
                if defaults is None
                else defaults.settings.model_dump(mode="json", by_alias=True),
                "history": [
                    {
                        "generation": c.generation,
                        "at": c.at,
                        "actor": c.actor,
                        "reason": c.reason,
                        "plan": c.plan.to_dict(),
                    }
                    for c in history
                ],
            }
        )
        return
    plan = view.plan
    console.print(f"[bold]{view.name}[/]  generation {plan.generation}")
    table = Table("release", "role", "traffic")
    table.add_row(plan.stable, "stable", f"{plan.stable_weight() / 100:.2f} %")
    for c in plan.candidates:
        table.add_row(c.release, "candidate", f"{c.weight / 100:.2f} %")
    for s in plan.shadows:
        table.add_row(s, "shadow", "copy")
    console.print(table)
    if view.opt_outs:
        console.print(f"opted out (always stable): {', '.join(view.opt_outs)}")
    if defaults is not None:
        console.print("default quality settings (for rollouts whose spec has none):")
        _print_quality(defaults.settings)
    else:
        console.print("default quality settings: none")
    console.print("history:")
    for change in history:
        console.print(
            f"  gen {change.generation}  {change.at:%Y-%m-%d %H:%M:%S}  {change.actor}: "
            f"{change.reason}"
        )


@service_app.command("opt-out")
@handle_errors
def opt_out(
    name: Annotated[str, typer.Argument(help="Service name.")],
    user: Annotated[str, typer.Argument(help="The user key (the request's `user`).")],
    undo: Annotated[bool, typer.Option("--undo", help="Let the user into rollouts again.")] = False,
) -> None:
    """Keep a user on the stable release of a service during rollouts."""
    from airlock.cli.rollout_backend import open_rollouts

    with open_rollouts() as side:
        changed = side.set_opt_out(name, user, opted_out=not undo)
    state = "back in rollouts" if undo else "kept on the stable release"
    console.print(f"{user} {state} of {name}" + ("" if changed else " (no change)"))


@service_app.command("transcripts")
@handle_errors
def transcripts(
    name: Annotated[str, typer.Argument(help="Service name.")],
    on: Annotated[
        bool | None,
        typer.Option(
            "--on/--off",
            help="Keep the service's prompts and answers (PII-redacted) for `airlock feedback "
            "export`, or stop keeping them (what is kept stays until it expires).",
        ),
    ] = None,
    retention: Annotated[
        str | None,
        typer.Option(
            help="How long a transcript is kept before it is deleted: 30d, 12h, 1w "
            "(default: 30d, or the current one)."
        ),
    ] = None,
    purge: Annotated[
        bool, typer.Option("--purge", help="Delete the transcripts older than the retention now.")
    ] = False,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "",
    as_json: AsJson = False,
) -> None:
    """Keep (or stop keeping) a service's prompts and answers, with a retention; show what is kept.

    Without --on/--off/--purge, shows the setting and how many transcripts are stored."""
    from airlock.cli.rollout_backend import open_rollouts
    from airlock.core.times import parse_duration
    from airlock.errors import InvalidInput

    seconds = parse_duration(retention) if retention is not None else None
    if seconds is not None and on is None:
        raise InvalidInput(
            "--retention goes with --on or --off",
            hint=f"airlock service transcripts {name} --on --retention {retention}",
        )
    purged = None
    with open_rollouts() as side:
        if on is not None:
            side.configure_transcripts(name, enabled=on, retention_s=seconds, reason=reason)
        if purge:
            purged = side.purge_transcripts(name)
        status = side.transcripts(name)
    if as_json:
        out: dict[str, object] = {
            "service": status.service,
            "enabled": status.enabled,
            "retention_s": status.retention_s,
            "stored": status.stored,
            "oldest": status.oldest,
            "newest": status.newest,
            "next_expiry": status.next_expiry,
            "all_gone_at": status.all_gone_at,
        }
        if purged is not None:
            out["purged"] = {
                "transcripts": purged.transcripts,
                "feedback": purged.feedback,
                "pairs": purged.pairs,
            }
        print_json(out)
        return
    state = "on" if status.enabled else "off"
    console.print(f"transcripts of [bold]{name}[/]: {state}, kept {_duration(status.retention_s)}")
    if purged is not None:
        console.print(
            f"purged {purged.transcripts} transcripts, {purged.feedback} scores and "
            f"{purged.pairs} judged pairs older than the retention"
        )
    if status.stored and status.next_expiry and status.all_gone_at:
        console.print(
            f"{status.stored} stored; the oldest is deleted at {status.next_expiry:%Y-%m-%d %H:%M} "
            f"UTC, the last at {status.all_gone_at:%Y-%m-%d %H:%M} UTC"
            + ("" if status.enabled else " (no new ones are recorded)")
        )
    else:
        console.print("none stored")
    if status.enabled and on:
        console.print(f"next: traffic, then `airlock feedback export {name} --out FILE.jsonl`")


@service_app.command("quality")
@handle_errors
def quality(
    name: Annotated[str, typer.Argument(help="Service name.")],
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            "-f",
            help="YAML or JSON quality settings (sample, scorers, judge), or a rollout spec "
            "whose `quality:` section to use. A rollout of this service whose spec has no "
            "quality section of its own scores with these.",
        ),
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Remove the defaults: rollouts score only their own.")
    ] = False,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "",
    as_json: AsJson = False,
) -> None:
    """Set, clear or show a service's default quality settings (online scorers, a judge).

    A rollout spec's own `quality:` section wins; the settings a rollout uses are recorded
    in it when it starts. Without --file/--clear, shows the current defaults."""
    from airlock.cli.rollout_backend import open_rollouts
    from airlock.core.quality import parse_quality_text
    from airlock.errors import InvalidInput

    if file is not None and clear:
        raise InvalidInput("--file and --clear do not go together", hint="choose one")
    settings = None
    if file is not None:
        try:
            text = file.read_text("utf-8")
        except OSError as exc:
            raise InvalidInput(f"cannot read {file}: {exc.strerror or exc}") from exc
        settings = parse_quality_text(text)
    with open_rollouts() as side:
        if file is not None or clear:
            current = side.set_service_quality(name, settings, reason=reason)
        else:
            current = side.service_quality(name)
    if as_json:
        print_json(
            {
                "service": name,
                "quality": None
                if current is None
                else current.settings.model_dump(mode="json", by_alias=True),
                "updated_at": None if current is None else current.updated_at,
                "updated_by": None if current is None else current.updated_by,
            }
        )
        return
    if current is None:
        console.print(
            f"[bold]{name}[/] has no default quality settings: a rollout scores only what its "
            f"spec names (set them with `airlock service quality {name} --file FILE`)"
        )
        return
    console.print(
        f"default quality settings of [bold]{name}[/] (set {current.updated_at:%Y-%m-%d %H:%M} "
        f"by {current.updated_by}); a rollout spec's own `quality:` section wins"
    )
    _print_quality(current.settings)


def _print_quality(settings: QualitySettings) -> None:
    from rich.markup import escape

    console.print(f"  sample: {settings.sample * 100:g} % of answers, on both arms")
    for scorer, s in sorted(settings.scorers.items()):
        check = s.check.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        console.print(
            escape(f"  quality.{scorer}: {json.dumps(check)}")
            + f"  tolerance {s.tolerance:g}  weight {s.weight:g}"
            + ("  required" if s.required else "")
        )
    judge = settings.judge
    if judge is not None:
        console.print(
            f"  judge: {judge.release} ({judge.mode}), prompt {judge.prompt or 'built-in'}"
            + (f", gates at >= {judge.min_agreement:g} agreement" if judge.min_agreement else "")
        )


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _service_json(v: ServiceView) -> dict[str, object]:
    return {
        "name": v.name,
        "plan": v.plan.to_dict(),
        "opt_outs": list(v.opt_outs),
        "created_at": v.created_at,
        "created_by": v.created_by,
        "updated_at": v.updated_at,
        "updated_by": v.updated_by,
    }


def _summary(v: ServiceView) -> list[str]:
    p = v.plan
    candidates = ", ".join(f"{c.release} {c.weight / 100:g}%" for c in p.candidates) or "—"
    return [
        v.name,
        p.stable,
        candidates,
        ", ".join(p.shadows) or "—",
        str(p.generation),
        f"{v.updated_at:%Y-%m-%d %H:%M} by {v.updated_by}",
    ]


__all__ = ["gateway", "service_app"]
