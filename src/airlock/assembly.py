"""The composition root: one place that wires serving, the gateway, its catalog sync,
rollouts and the rollout controller for a workspace.

::

    parts = build(workspace, AssemblySettings(...))
    parts.serving      Serving          services, plans, telemetry flushes
    parts.gateway      Gateway          the engine (no HTTP: wrap it with gateway.app)
    parts.sync         CatalogSync      plans in, telemetry out, every sync_seconds
    parts.rollouts     Rollouts         sharing ``serving``: plan changes reach the sync
    parts.controller   RolloutController
    parts.drills       Drills
    parts.webhooks     WebhookDispatcher  audit events out to subscribers (a thread)

``airlock serve`` (:mod:`airlock.serve`), ``airlock gateway``
(:mod:`airlock.gateway.server`), ``airlock drill`` and the benchmarks all build
their parts here, so every one of them is wired the same way.

How a plan reaches the gateway of this process — one route for each change:

* a change made through ``serving`` / ``rollouts`` by the API, the dashboard or
  the CLI: ``Serving.publish`` -> ``CatalogSync`` -> the gateway;
* a decision of the controller: the controller swaps it on the gateway itself
  (a rollback even before its commit), and does not publish it again;
* a change committed by another process: the catalog's change notices
  (PostgreSQL LISTEN, ``Serving.change_listener``) or the sync's poll.

Internal: use the library through ``airlock`` (see ``airlock.__all__``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from airlock.gateway.engine import Gateway, GatewaySettings
from airlock.gateway.sync import CatalogSync
from airlock.services.controller import (
    ControllerEvent,
    ControllerSettings,
    GatewayTelemetry,
    RolloutController,
)
from airlock.services.drills import Drills
from airlock.services.rollouts import Rollouts
from airlock.services.serving import Serving
from airlock.services.telemetry_retention import RetentionPolicy, TelemetryRetention
from airlock.services.webhooks import WebhookDispatcher, WebhookSettings
from airlock.services.workspace import Workspace


@dataclass(frozen=True, slots=True)
class AssemblySettings:
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    controller: ControllerSettings = field(default_factory=ControllerSettings)
    sync_seconds: float = 1.0
    """How often telemetry is flushed and the catalog's plans are polled."""
    retry_failed_seconds: float = 30.0
    """A plan that failed to load (a damaged release) is retried after this, then backs off."""
    services: tuple[str, ...] | None = None
    """Serve only these services (None: every one)."""
    local_gateway: bool = True
    """False: the controller drives no gateway of this process (e.g. a drill against a
    gateway elsewhere); it decides from the catalog and each gateway follows it there."""
    controller_reads: Literal["catalog", "gateway"] = "catalog"
    """What the controller judges: what every gateway flushed to the catalog, or the
    counters of this process's gateway (one gateway, no flush delay: benchmarks)."""
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)


@dataclass(frozen=True, slots=True)
class Assembly:
    workspace: Workspace
    settings: AssemblySettings
    serving: Serving
    gateway: Gateway
    sync: CatalogSync
    rollouts: Rollouts
    controller: RolloutController
    drills: Drills
    webhooks: WebhookDispatcher


def build(
    workspace: Workspace,
    settings: AssemblySettings | None = None,
    *,
    on_event: Callable[[ControllerEvent], None] | None = None,
) -> Assembly:
    """Wire every part for ``workspace`` (nothing runs yet: start the sync and the
    controller on the event loop that serves the gateway)."""
    settings = settings or AssemblySettings()
    serving = Serving(workspace)
    gateway = Gateway(serving.loader().load, settings.gateway)
    sync = CatalogSync(
        gateway,
        serving,
        interval=settings.sync_seconds,
        services=settings.services,
        retry_failed=settings.retry_failed_seconds,
        changes=serving.change_listener(),
    )
    rollouts = Rollouts(workspace, serving=serving)
    controller = RolloutController(
        rollouts,
        telemetry=GatewayTelemetry(gateway) if settings.controller_reads == "gateway" else None,
        gateways=[gateway] if settings.local_gateway else [],
        settings=settings.controller,
        on_event=on_event,
        retention=TelemetryRetention(workspace, RetentionPolicy.of(workspace.settings)),
    )
    return Assembly(
        workspace=workspace,
        settings=settings,
        serving=serving,
        gateway=gateway,
        sync=sync,
        rollouts=rollouts,
        controller=controller,
        drills=Drills(workspace, rollouts=rollouts),
        webhooks=WebhookDispatcher(workspace.db, settings.webhooks),
    )


__all__ = ["Assembly", "AssemblySettings", "build"]
