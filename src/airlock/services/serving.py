"""Serving: services, their traffic plans and opt-outs, and the telemetry gateways flush.

A service is a named endpoint (``chat``) with a :class:`TrafficPlan`; creating one gives the
model a ``stable`` alias at the release it serves, if it has none yet. Every plan
change is one transaction: compare-and-swap on the plan's generation (a plan
derived from a stale one is refused with ``Conflict``), a row in the plan
history and an audit event. The releases a plan names are resolved and stored
as exact ``name@version`` references, so an alias moving later never changes
what a plan serves. After the commit, in-process listeners (a gateway in the
same process) get the new plan (:meth:`Serving.publish`); gateways elsewhere see
it by polling ``generations()`` every second and, on PostgreSQL, through the
catalog's change notices (:meth:`Serving.change_listener`, :mod:`airlock.catalog.notify`).

Telemetry flushes are measurements, not decisions: they are written without an
audit event (one a second per gateway would drown the log in noise).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection

from airlock import audit
from airlock.catalog import aliases as alias_sql
from airlock.catalog import gateway_keys as sync_versions
from airlock.catalog import quality as quality_sql
from airlock.catalog import releases as release_sql
from airlock.catalog import serving as sql
from airlock.catalog.notify import KEYS_TOPIC, ChangeListener, change_listener, opt_outs_topic
from airlock.core.analysis import ReleaseWindow
from airlock.core.digest import Digest
from airlock.core.names import check_name
from airlock.core.paging import Page, cursor_int, decode_cursor, page_limit, page_of
from airlock.core.quality import QualitySettings, ServiceQuality, parse_quality
from airlock.core.records import Release
from airlock.core.roles import Action
from airlock.core.telemetry import ShadowSample, TelemetryRecord, Traffic
from airlock.core.traffic import PlanChange, TrafficPlan, WeightedRelease
from airlock.errors import Conflict, InvalidInput, NotFound
from airlock.runtime.loader import ReleaseLoader
from airlock.services.access import authorize
from airlock.services.identity import Actor
from airlock.services.promotion import move_alias
from airlock.services.registry import Registry
from airlock.services.workspace import Workspace

PlanListener = Callable[[TrafficPlan], None]
STABLE_ALIAS = "stable"  # the alias a service's stable release holds (rollouts move it)


@dataclass(frozen=True, slots=True)
class ServiceView:
    name: str
    plan: TrafficPlan
    opt_outs: tuple[str, ...]
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str


class Serving:
    def __init__(self, workspace: Workspace, *, registry: Registry | None = None) -> None:
        self.ws = workspace
        self.db = workspace.db
        self.registry = registry or Registry(workspace)
        self._listeners: list[PlanListener] = []

    # -- listeners ---------------------------------------------------------------------
    def subscribe(self, listener: PlanListener) -> None:
        """Call ``listener(plan)`` after every committed plan change made through this object."""
        self._listeners.append(listener)

    def publish(self, plan: TrafficPlan) -> None:
        """Give ``plan``, just committed, to every listener (the one in-process route)."""
        for listener in list(self._listeners):
            listener(plan)

    def change_listener(self) -> ChangeListener | None:
        """What hears plans, keys and opt-outs committed by other processes (PostgreSQL
        LISTEN); None on a catalog without notices (SQLite: gateways poll)."""
        return change_listener(self.db)

    # -- reading ------------------------------------------------------------------------
    def get(self, name: str) -> ServiceView:
        with self.db.read() as conn:
            row = _require(conn, name)
            users = sql.opt_outs(conn, row.id).get(row.id, [])
        return _view(row, users)

    def all(self) -> list[ServiceView]:
        with self.db.read() as conn:
            rows = sql.all_services(conn)
            users = sql.opt_outs(conn)
        return [_view(r, users.get(r.id, [])) for r in rows]

    def page(self, *, limit: int | None = None, cursor: str | None = None) -> Page[ServiceView]:
        """``all`` a page at a time, by name (keyset on the name)."""
        size = page_limit(limit)
        after = decode_cursor(cursor, arity=1)
        with self.db.read() as conn:
            rows = sql.all_services(conn, after=str(after[0]) if after else None, limit=size + 1)
            users = sql.opt_outs(conn, of=[r.id for r in rows])
        return page_of([_view(r, users.get(r.id, [])) for r in rows], size, lambda v: [v.name])

    def plan(self, name: str) -> TrafficPlan:
        return self.get(name).plan

    def generations(self) -> dict[str, int]:
        with self.db.read() as conn:
            return sql.generations(conn)

    def history(self, name: str) -> list[PlanChange]:
        with self.db.read() as conn:
            row = _require(conn, name)
            return sql.plan_history(conn, row.id, row.name)

    def history_page(
        self, name: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[PlanChange]:
        """``history`` a page at a time, oldest first (keyset on the plan generation)."""
        size = page_limit(limit)
        after = decode_cursor(cursor, arity=1)
        generation = cursor_int(after[0]) if after else None
        with self.db.read() as conn:
            row = _require(conn, name)
            rows = sql.plan_history(conn, row.id, row.name, after=generation, limit=size + 1)
        return page_of(rows, size, lambda c: [c.generation])

    # -- changing -----------------------------------------------------------------------
    def create(self, name: str, stable: str, *, actor: Actor, reason: str = "") -> ServiceView:
        """A new service serving ``stable`` to everyone (plan generation 0); operators, admins."""
        check_name(name, "service name")
        authorize(self.db, actor, Action.SERVICE_CONFIGURE, f"service:{name}")
        with self.db.write() as conn:
            if sql.get(conn, name) is not None:
                raise Conflict(
                    f"service {name!r} already exists",
                    hint=f"see it with `airlock service show {name}`",
                )
            stable_row = self.registry.resolve_in(conn, stable)
            stable_ref = stable_row.ref
            plan = TrafficPlan.all_stable(name, stable_ref)
            now = datetime.now(UTC)
            sid = sql.insert_service(conn, plan, actor=actor.name, at=now)
            event = audit.append(
                conn,
                actor=actor.name,
                action="service.create",
                subject=name,
                details={"stable": stable_ref, "plan": plan.to_dict(), "reason": reason},
            )
            _adopt_stable_alias(conn, stable_row, service=name, actor=actor, at=now)
            sql.record_plan(
                conn,
                sid,
                plan,
                actor=actor.name,
                reason=reason or "create",
                at=now,
                event_seq=event.seq,
            )
        self.publish(plan)
        return self.get(name)

    def set_plan(self, plan: TrafficPlan, *, actor: Actor, reason: str) -> TrafficPlan:
        """Store ``plan`` (generation = stored + 1), audit it and tell listeners."""
        with self.db.write() as conn:
            stored = apply_plan(conn, self.registry, plan, actor=actor, reason=reason)
        self.publish(stored)
        return stored

    def set_opt_out(self, name: str, user: str, *, actor: Actor, opted_out: bool = True) -> bool:
        """Keep ``user`` on the stable release of ``name`` (or let them back into rollouts)."""
        if not user or len(user) > 256:
            raise InvalidInput("a user key must be 1 to 256 characters")
        authorize(self.db, actor, Action.SERVICE_CONFIGURE, f"service:{name}")
        with self.db.write() as conn:
            row = _require(conn, name)
            changed = sql.set_opt_out(
                conn, row.id, user, opted_out=opted_out, actor=actor.name, at=datetime.now(UTC)
            )
            if changed:
                sync_versions.bump(conn, opt_outs_topic(name))  # gateways re-read
                audit.append(
                    conn,
                    actor=actor.name,
                    action="service.opt_out" if opted_out else "service.opt_in",
                    subject=name,
                    details={"user": user},
                )
        return changed

    # -- default quality settings ---------------------------------------------------------
    def quality(self, name: str) -> ServiceQuality | None:
        """The service's default quality settings (None: a rollout scores only what its
        spec names)."""
        with self.db.read() as conn:
            _require(conn, name)
            return quality_sql.defaults(conn, name)

    def set_quality(
        self,
        name: str,
        settings: QualitySettings | object | None,
        *,
        actor: Actor,
        reason: str = "",
    ) -> ServiceQuality | None:
        """Set (or, with None, clear) the quality settings a rollout of ``name`` uses when its
        spec has no ``quality`` section; audited as ``service.quality`` with before and after.

        ``settings`` may be a mapping as YAML or JSON gives it: a wrong field is refused
        naming it (``quality.sample: ...``); a judge must name releases that exist.
        """
        value = None
        if settings is not None:
            value = settings if isinstance(settings, QualitySettings) else parse_quality(settings)
        authorize(self.db, actor, Action.SERVICE_CONFIGURE, f"service:{name}")
        with self.db.write() as conn:
            _require(conn, name)
            if value is not None and value.judge is not None:
                judge = value.judge
                for field, ref in (("release", judge.release), ("prompt", judge.prompt)):
                    if ref is None:
                        continue
                    try:
                        self.registry.resolve_in(conn, ref)
                    except NotFound as exc:
                        raise NotFound(
                            f"quality.judge.{field}: {exc.message}",
                            hint="push the judge first, or pin a release that exists",
                        ) from None
            before = quality_sql.defaults(conn, name)
            now = datetime.now(UTC)
            stored = None
            if value is None:
                changed = quality_sql.clear_defaults(conn, name)
            else:
                stored = ServiceQuality(name, value, now, actor.name)
                quality_sql.put_defaults(conn, stored)
                changed = before is None or before.settings != value
            if changed:
                audit.append(
                    conn,
                    actor=actor.name,
                    action="service.quality",
                    subject=name,
                    details={
                        "from": None if before is None else before.settings.model_dump(mode="json"),
                        "to": None if value is None else value.model_dump(mode="json"),
                        "reason": reason,
                    },
                )
            return stored

    # -- telemetry ----------------------------------------------------------------------
    def flush(
        self,
        records: Sequence[TelemetryRecord],
        samples: Sequence[ShadowSample] = (),
        *,
        gateway: str,
    ) -> None:
        """Write one flush of a gateway's telemetry and shadow samples (one transaction)."""
        if not records and not samples:
            return
        with self.db.write() as conn:
            sql.insert_telemetry(conn, records, gateway=gateway)
            sql.insert_shadow_samples(conn, samples)

    def telemetry(
        self,
        name: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        traffic: Traffic = "live",
    ) -> dict[str, TelemetryRecord]:
        """Per release: every gateway's records in [since, until) added up."""
        with self.db.read() as conn:
            _require(conn, name)
            rows = sql.telemetry(conn, name, since=since, until=until)
        out: dict[str, TelemetryRecord] = {}
        for r in rows:
            if r.traffic == traffic:
                out[r.release] = out[r.release] + r if r.release in out else r
        return out

    def windows(
        self,
        name: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        traffic: Traffic = "live",
    ) -> dict[str, ReleaseWindow]:
        """What the rollout analysis reads: one ``ReleaseWindow`` per release."""
        records = self.telemetry(name, since=since, until=until, traffic=traffic)
        return {release: r.window() for release, r in records.items()}

    def shadow_samples(self, name: str, *, limit: int = 100) -> list[ShadowSample]:
        with self.db.read() as conn:
            return sql.recent_shadow_samples(conn, name, limit=limit)

    # -- loading --------------------------------------------------------------------------
    def resolve(self, ref: str) -> tuple[str, Digest]:
        """The release to load, after checking its catalog row is what was pushed."""
        row = self.registry.checked(ref)
        return row.ref, row.digest

    def loader(self, *, scratch_dir: Path | None = None) -> ReleaseLoader:
        """A loader that reads releases of this workspace through its verifying store."""
        scratch = scratch_dir or self.ws.cache_dir / "serving"
        scratch.mkdir(parents=True, exist_ok=True)
        return ReleaseLoader(self.ws.store, self.resolve, scratch_dir=scratch)


def apply_plan(
    conn: Connection, registry: Registry, plan: TrafficPlan, *, actor: Actor, reason: str
) -> TrafficPlan:
    """Store a new plan inside the caller's write transaction (the controller composes this).

    The plan's releases are resolved to exact versions; its generation must be the
    stored one + 1, else ``Conflict`` (someone else changed the plan meanwhile).
    """
    if not reason.strip():
        raise InvalidInput("a plan change needs a reason", hint='add --reason "why"')
    row = _require(conn, plan.service)
    if plan.generation != row.generation + 1:
        raise Conflict(
            f"{plan.service}: plan generation {plan.generation} does not follow the stored "
            f"generation {row.generation}",
            hint="derive the new plan from the current one (TrafficPlan.with_weights)",
        )

    def exact(ref: str) -> str:
        return registry.resolve_in(conn, ref).ref

    stored = TrafficPlan(
        service=plan.service,
        stable=exact(plan.stable),
        candidates=tuple(WeightedRelease(exact(c.release), c.weight) for c in plan.candidates),
        shadows=tuple(exact(s) for s in plan.shadows),
        generation=plan.generation,
        quality=plan.quality,
    )
    now = datetime.now(UTC)
    previous = row.plan()
    if not sql.swap_plan(
        conn, row.id, stored, expected_generation=row.generation, actor=actor.name, at=now
    ):
        raise Conflict(f"{plan.service}: the plan changed while this change was being made")
    event = audit.append(
        conn,
        actor=actor.name,
        action="service.plan",
        subject=plan.service,
        details={"from": previous.to_dict(), "to": stored.to_dict(), "reason": reason},
    )
    sql.record_plan(
        conn, row.id, stored, actor=actor.name, reason=reason, at=now, event_seq=event.seq
    )
    return stored


def _adopt_stable_alias(
    conn: Connection, row: Release, *, service: str, actor: Actor, at: datetime
) -> None:
    """A model with no ``stable`` alias gets one at the release its new service serves
    (an audited move); an existing ``stable`` alias is never moved from here."""
    mid = release_sql.model_id(conn, row.model)
    if mid is None or alias_sql.get(conn, mid, STABLE_ALIAS) is not None:
        return
    why = f"service {service} created serving {row.ref}"
    move_alias(conn, row, STABLE_ALIAS, actor=actor, reason=why, at=at, service=service)


def _require(conn: Connection, name: str) -> sql.StoredService:
    row = sql.get(conn, name)
    if row is None:
        raise NotFound(
            f"no service named {name!r}",
            hint="run `airlock service ls`, or create it with `airlock service create NAME --stable REF`",
        )
    return row


def _view(row: sql.StoredService, users: list[str]) -> ServiceView:
    return ServiceView(
        name=row.name,
        plan=row.plan(),
        opt_outs=tuple(users),
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


__all__ = [
    "KEYS_TOPIC",
    "ChangeListener",
    "PlanListener",
    "ServiceView",
    "Serving",
    "apply_plan",
    "opt_outs_topic",
]
