"""``GET /readyz`` of a gateway replica: is it serving, and which plan generations.

One replica of a fleet is ready when its catalog sync has started and read the catalog
recently, the catalog answers, and no service is still loading its first plan. The body
says, per service, the generation the catalog holds and the one this replica serves, so
an operator (or a probe) sees a replica that lags::

    {"status": "ready", "replica": "host:pid", "last_sync": "2026-...Z", "last_sync_age_s": 0.4,
     "services": {"chat": {"status": "serving", "catalog": 7, "served": 7}}}

``status`` per service: ``serving`` (the catalog's generation), ``lagging`` (an older one,
not yet caught up), ``degraded`` (an older one: the newest failed to load), ``failed``
(nothing servable), ``loading`` (nothing yet).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from airlock.errors import AirlockError
from airlock.gateway.engine import Gateway
from airlock.gateway.sync import CatalogSync

STALE_AFTER_TICKS = 5
"""A sync that has not read the catalog for this many intervals (at least 10 s) is stale."""


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    body: dict[str, Any]


def replica_readiness(gateway: Gateway, sync: CatalogSync) -> Readiness:
    """Readiness of one gateway replica (blocking: reads the catalog; run it in a thread)."""
    body: dict[str, Any] = {"replica": gateway.settings.gateway_id}
    ok = sync.started
    if not sync.started:
        body["startup"] = "starting"
    last = sync.last_sync
    if last is not None:
        age = max(0.0, time.time() - last)
        body["last_sync"] = datetime.fromtimestamp(last, UTC).isoformat(timespec="milliseconds")
        body["last_sync_age_s"] = round(age, 3)
        if age > max(10.0, STALE_AFTER_TICKS * sync.interval):
            ok = False
            body["sync"] = "stale: the catalog has not been read recently"
    try:
        catalog = sync.serving.generations()
        body["catalog"] = {"ok": True}
    except AirlockError as exc:
        body["catalog"] = {"ok": False, "error": exc.message}
        catalog = dict(sync.catalog_generations)
        ok = False
    served = {name: plan.generation for name, plan in gateway.plans().items()}
    services: dict[str, dict[str, Any]] = {}
    for name, generation in sorted(catalog.items()):
        if sync.only is not None and name not in sync.only:
            continue
        now = served.get(name)
        error = gateway.unservable.get(name)
        if now == generation:
            status = "serving"
        elif error is not None:
            status = "degraded" if now is not None else "failed"
        elif now is None:
            status = "loading"
        else:
            status = "lagging"
        entry: dict[str, Any] = {"status": status, "catalog": generation, "served": now}
        if error is not None and status != "serving":
            entry["error"] = error
        services[name] = entry
    body["services"] = services
    body["lagging"] = sorted(n for n, e in services.items() if e["status"] != "serving")
    if any(e["status"] == "loading" for e in services.values()):
        ok = False
    if services and all(e["served"] is None for e in services.values()):
        ok = False
    body["status"] = "ready" if ok else "not ready"
    return Readiness(ok, body)


__all__ = ["Readiness", "replica_readiness"]
