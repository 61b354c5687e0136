"""Rollouts: move a service from its stable release to a candidate, step by step.

``Rollouts(ws)`` is what the CLI, the API and the controller call. A rollout is
a row in the catalog holding its spec, its :class:`~airlock.core.rollout.RolloutState`
and a version number; every transition — ``start``, a controller decision
(advance, pause, promote, rollback, complete), or a manual ``pause``,
``resume``, ``promote``, ``abort``, ``rollback`` — is **one** write transaction
that

1. re-reads the rollout and compares its version (a decision taken on a stale
   state is refused with ``Conflict`` and nothing is written),
2. stores the service's new traffic plan (:func:`airlock.services.serving.apply_plan`:
   compare-and-swap on the plan generation, plan history, ``service.plan`` event),
3. on promotion, checks the promotion gate for the ``stable`` alias and moves it
   (an ``alias.move`` event; the service's stable release moves with the plan),
4. writes the new state, a history row (with the verdict: effect sizes and
   confidence intervals per metric) and a ``rollout.<action>`` audit event.

After the commit, listeners of the shared :class:`~airlock.services.serving.Serving`
(a gateway's ``CatalogSync`` in this process) get the new plan at once; gateways
elsewhere see it within their polling interval; the controller also swaps the
plan of the gateways it was given directly (see :mod:`airlock.services.controller`).

Rules a user relies on:

* one rollout per service at a time — a second ``start`` is a ``Conflict``
  (held by a unique column, so it holds across processes too);
* ``start`` checks the actor's role (``rollout.start``) and the promotion
  policy for the ``stable`` alias: its rules and its rollout requirements
  (``min_canary_minutes``, ``shadow_first``). A refusal is a ``policy.blocked``
  event and a ``PolicyViolation``. Shadow rollouts, which serve no user, and
  drills, which never promote, skip the gate;
* a drill (``kind="drill"``) never promotes: where it would, it is aborted;
* ``ab`` and ``shadow`` rollouts end ``completed`` and never move ``stable``.

The values handed out (:class:`RolloutView`, :class:`RolloutRecord`,
:class:`Transition`) live in :mod:`airlock.services.rollout_views`; the policy
checks made inside a transition, in :mod:`airlock.services.rollout_gate`; the
loop that takes decisions, in :mod:`airlock.services.controller`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from airlock import audit
from airlock.catalog import quality as quality_sql
from airlock.catalog import rollouts as sql
from airlock.catalog import serving as serving_sql
from airlock.core import rollout as machine
from airlock.core.analysis import AnalysisVerdict
from airlock.core.paging import Page, cursor_int, decode_cursor, page_limit, page_of
from airlock.core.policy import PolicyVerdict
from airlock.core.records import Release
from airlock.core.roles import Action
from airlock.core.rollout import RolloutSpec, RolloutState
from airlock.core.rollout_spec import parse_spec, with_default_quality
from airlock.core.traffic import TrafficPlan
from airlock.errors import Conflict, InvalidInput, NotFound, PolicyViolation
from airlock.services import rollout_views as views
from airlock.services.access import authorize
from airlock.services.identity import Actor
from airlock.services.rollout_gate import STABLE_ALIAS, move_stable, promotion_gate, start_gate
from airlock.services.rollout_views import (
    Kind,
    RolloutRecord,
    RolloutView,
    Transition,
    spec_json,
    state_json,
    verdict_json,
    verdict_summary,
)
from airlock.services.serving import Serving, apply_plan
from airlock.services.workspace import Workspace

CONTROLLER = Actor("airlock-controller", "operator")
"""The actor of the controller's own decisions (operator: it drives rollouts, nothing else)."""

_SPEC_TYPES = (
    machine.CanarySpec,
    machine.LinearSpec,
    machine.BlueGreenSpec,
    machine.ABSpec,
    machine.ShadowSpec,
)


# -- the service ------------------------------------------------------------------------


class Rollouts:
    def __init__(
        self,
        workspace: Workspace,
        *,
        serving: Serving | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ws = workspace
        self.db = workspace.db
        self.serving = serving or Serving(workspace)
        self.registry = self.serving.registry
        self.clock = clock

    # -- reading --------------------------------------------------------------------------
    def get(self, rollout_id: int) -> RolloutView:
        with self.db.read() as conn:
            row = sql.get(conn, rollout_id)
        if row is None:
            raise NotFound(
                f"no rollout #{rollout_id}", hint="list them with `airlock rollout history`"
            )
        return row

    def status(self, service: str) -> RolloutView:
        """The service's rollout in flight, else its most recent one."""
        with self.db.read() as conn:
            row = sql.active_for(conn, service)
            if row is None:
                recent = sql.of_service(conn, service, limit=1)
                row = recent[0] if recent else None
                if row is None and serving_sql.get(conn, service) is None:
                    raise NotFound(f"no service named {service!r}", hint="run `airlock service ls`")
        if row is None:
            raise NotFound(
                f"{service} has never had a rollout",
                hint=f"start one: airlock rollout start {service} --candidate REF --strategy FILE",
            )
        return row

    def active(self, service: str) -> RolloutView | None:
        with self.db.read() as conn:
            return sql.active_for(conn, service)

    def live(self) -> list[RolloutView]:
        """Every rollout in flight."""
        return [view for view, _ in self.live_with_plans()]

    def live_with_plans(self) -> list[tuple[RolloutView, TrafficPlan]]:
        """Every rollout in flight with its service's stored plan (one read; the controller's)."""
        with self.db.read() as conn:
            rows = sql.live(conn)
            plans = {r.service: _service(conn, r.service).plan() for r in rows}
        return [(r, plans[r.service]) for r in rows]

    def plan(self, service: str) -> TrafficPlan:
        """The service's plan as stored in the catalog."""
        with self.db.read() as conn:
            return _service(conn, service).plan()

    def recent(self, service: str | None = None, *, limit: int = 50) -> list[RolloutView]:
        """Rollouts newest first, of one service or of all."""
        with self.db.read() as conn:
            return sql.of_service(conn, service, limit=limit)

    def page(
        self, service: str | None = None, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[RolloutView]:
        """``recent`` a page at a time, newest first (keyset on the rollout id)."""
        size = page_limit(limit)
        after = decode_cursor(cursor, arity=1)
        before = cursor_int(after[0]) if after else None
        with self.db.read() as conn:
            rows = sql.of_service(conn, service, limit=size + 1, before=before)
        return page_of(rows, size, lambda r: [r.id])

    def history(self, rollout_id: int) -> list[RolloutRecord]:
        with self.db.read() as conn:
            if sql.get(conn, rollout_id) is None:
                raise NotFound(f"no rollout #{rollout_id}")
            return sql.history(conn, rollout_id)

    # -- starting -----------------------------------------------------------------------------
    def start(
        self,
        service: str,
        candidate: str,
        spec: RolloutSpec | str | Mapping[str, Any],
        *,
        actor: Actor,
        reason: str = "",
        kind: Kind = "rollout",
    ) -> Transition:
        """Start moving ``service`` to ``candidate`` (see the module docstring for the checks)."""
        spec = spec if isinstance(spec, _SPEC_TYPES) else parse_spec(spec)
        authorize(self.db, actor, Action.ROLLOUT_START, f"{service} -> {candidate}")
        now = self.clock()
        at = views.at(now)
        blocked: PolicyViolation | None = None
        stored: TrafficPlan | None = None
        rollout_id = 0
        try:
            with self.db.write() as conn:
                svc = _service(conn, service)
                defaults = quality_sql.defaults(conn, service)  # the spec's own section wins
                quality_from = "spec" if spec.quality is not None else None
                if quality_from is None and defaults is not None:
                    spec, quality_from = with_default_quality(spec, defaults.settings), "service"
                current = sql.active_for(conn, service)
                if current is not None:
                    raise Conflict(
                        f"{service} already has rollout #{current.id} in flight "
                        f"({current.candidate}, {current.phase})",
                        hint=f"see `airlock rollout status {service}`; finish, abort or roll "
                        "it back first",
                    )
                row = self.registry.resolve_in(conn, candidate)
                plan = svc.plan()
                if row.ref == plan.stable:
                    raise InvalidInput(
                        f"{row.ref} is already the stable release of {service}",
                        hint="choose a candidate other than the stable release",
                    )
                gate_note, blocked = start_gate(conn, service, row, spec, kind, actor)
                if blocked is None:
                    state = machine.start(spec, now)
                    why = reason or f"{spec.strategy} rollout of {row.ref}"
                    rollout_id = sql.insert_rollout(
                        conn,
                        service=service,
                        kind=kind,
                        candidate=row.ref,
                        stable=plan.stable,
                        strategy=spec.strategy,
                        spec=spec_json(spec),
                        phase=state.phase,
                        step_index=state.step_index,
                        state=state_json(state),
                        reason=why,
                        actor=actor.name,
                        at=at,
                    )
                    target = machine.plan_for(spec, state, plan, row.ref)
                    if target is not plan:
                        stored = apply_plan(
                            conn,
                            self.registry,
                            target,
                            actor=actor,
                            reason=f"rollout #{rollout_id} start: {why}",
                        )
                    event = audit.append(
                        conn,
                        actor=actor.name,
                        action="rollout.start",
                        subject=service,
                        details={
                            "rollout": rollout_id,
                            "kind": kind,
                            "candidate": row.ref,
                            "candidate_digest": row.digest,
                            "stable": plan.stable,
                            "strategy": spec.strategy,
                            "spec": spec.to_dict(),
                            "quality_from": quality_from,
                            "gate": gate_note,
                            "reason": why,
                            "plan_generation": stored.generation if stored else None,
                        },
                    )
                    sql.insert_history(
                        conn,
                        rollout_id=rollout_id,
                        at=at,
                        action="start",
                        actor=actor.name,
                        phase=state.phase,
                        step_index=state.step_index,
                        candidate_weight=machine.candidate_weight(spec, state),
                        reason=why,
                        verdict=None,
                        plan_generation=stored.generation if stored else None,
                        event_seq=event.seq,
                    )
        except SQLIntegrityError as exc:  # a concurrent start won the unique active_service
            raise Conflict(
                f"{service} already has a rollout in flight",
                hint=f"see `airlock rollout status {service}`",
            ) from exc
        if blocked is not None:  # the refusal is on the audit chain; now say why
            raise blocked
        self._notify(stored)
        view = self.get(rollout_id)
        return Transition(view, "start", view.reason, stored)

    # -- manual control -------------------------------------------------------------------------
    def pause(self, service: str, *, actor: Actor, reason: str = "") -> Transition:
        why = reason or f"paused by {actor.name}"
        return self._manual(
            service,
            Action.ROLLOUT_CONTROL,
            actor,
            "pause",
            why,
            lambda v, now: machine.pause(v.state, now, why),
        )

    def resume(self, service: str, *, actor: Actor, reason: str = "") -> Transition:
        why = reason or f"resumed by {actor.name}"
        return self._manual(
            service,
            Action.ROLLOUT_CONTROL,
            actor,
            "resume",
            why,
            lambda v, now: machine.resume(v.spec, v.state, now, why),
        )

    def promote(self, service: str, *, actor: Actor, reason: str = "") -> Transition:
        """Skip the remaining steps: the candidate becomes stable (policy gate permitting)."""
        why = reason or f"promoted by {actor.name}"
        authorize(self.db, actor, Action.ALIAS_MOVE, f"{service}: {STABLE_ALIAS}")

        def change(view: RolloutView, now: float) -> RolloutState:
            if view.kind == "drill":
                raise Conflict(
                    f"rollout #{view.id} is a drill: its candidate is faulty on purpose",
                    hint=f"abort it: airlock rollout abort {service}",
                )
            return machine.promote_now(view.spec, view.state, now, why)

        return self._manual(service, Action.ROLLOUT_CONTROL, actor, "promote", why, change)

    def abort(self, service: str, *, actor: Actor, reason: str) -> Transition:
        """Cancel the rollout (not a judgement on the candidate); everyone back to stable."""
        why = _required(reason, "abort")
        return self._manual(
            service,
            Action.ROLLOUT_ROLLBACK,
            actor,
            "abort",
            why,
            lambda v, now: machine.abort(v.state, now, why),
        )

    def rollback(self, service: str, *, actor: Actor, reason: str) -> Transition:
        """The candidate is bad: the stable release takes 100 % of new requests at once."""
        why = _required(reason, "rollback")
        return self._manual(
            service,
            Action.ROLLOUT_ROLLBACK,
            actor,
            "rollback",
            why,
            lambda v, now: machine.rollback_now(v.state, now, why),
        )

    def _manual(
        self,
        service: str,
        action: Action,
        actor: Actor,
        verb: str,
        reason: str,
        change: Callable[[RolloutView, float], RolloutState],
    ) -> Transition:
        authorize(self.db, actor, action, service)
        now = self.clock()
        with self.db.write() as conn:
            row = sql.active_for(conn, service)
            if row is None:
                if serving_sql.get(conn, service) is None:
                    raise NotFound(f"no service named {service!r}", hint="run `airlock service ls`")
                raise NotFound(
                    f"{service} has no rollout in flight",
                    hint=f"see `airlock rollout history {service}`",
                )
            view = row
            outcome = self._apply(
                conn, view, change(view, now), verb, reason, actor, None, now, on_blocked="raise"
            )
        if isinstance(outcome, PolicyViolation):
            raise outcome
        self._notify(outcome.plan)
        return outcome

    # -- the controller's side ----------------------------------------------------------------
    def decide(
        self,
        rollout_id: int,
        expected_version: int,
        new_state: RolloutState,
        action: str,
        reason: str,
        verdict: AnalysisVerdict | None,
        *,
        actor: Actor = CONTROLLER,
        now: float | None = None,
        publish: bool = True,
    ) -> Transition:
        """Apply a decision the controller took on version ``expected_version`` of the rollout.

        ``publish=False``: the caller serves the new plan on this process's gateways
        itself (a controller given gateways), so Serving's listeners are not told too.

        ``Conflict`` when the rollout moved meanwhile (a manual action, another
        controller): nothing is written and the next tick decides again. A
        promotion the policy now blocks pauses the rollout instead.
        """
        at = self.clock() if now is None else now
        with self.db.write() as conn:
            row = sql.get(conn, rollout_id)
            if row is None:
                raise NotFound(f"no rollout #{rollout_id}")
            view = row
            if view.version != expected_version:
                raise Conflict(
                    f"rollout #{rollout_id} moved on (version {view.version}, decided on "
                    f"{expected_version})"
                )
            if not view.live:
                raise Conflict(f"rollout #{rollout_id} is already {view.phase}")
            outcome = self._apply(
                conn, view, new_state, action, reason, actor, verdict, at, on_blocked="pause"
            )
        assert isinstance(outcome, Transition)
        if publish:
            self._notify(outcome.plan)
        return outcome

    def note_verdict(
        self,
        rollout_id: int,
        verdict: AnalysisVerdict | None,
        *,
        now: float,
        hold_reason: str | None = None,
        actor: Actor = CONTROLLER,
    ) -> None:
        """Store the newest analysis of a live rollout; with ``hold_reason``, in its history too."""
        at = views.at(now)
        with self.db.write() as conn:
            row = sql.get(conn, rollout_id)
            if row is None or row.finished_at is not None:
                return
            text = verdict_json(verdict)
            if text is not None:
                sql.set_last_verdict(conn, rollout_id, text, at=at)
            if hold_reason is not None:
                view = row
                sql.insert_history(
                    conn,
                    rollout_id=rollout_id,
                    at=at,
                    action="hold",
                    actor=actor.name,
                    phase=view.phase,
                    step_index=view.state.step_index,
                    candidate_weight=view.candidate_weight,
                    reason=hold_reason,
                    verdict=text,
                    plan_generation=None,
                    event_seq=None,
                )

    def acquire_lease(self, name: str, holder: str, *, seconds: float) -> bool:
        """Take or renew the controller's leader lease (see :mod:`airlock.services.controller`)."""
        try:
            with self.db.write() as conn:
                return sql.acquire_lease(conn, name, holder, now=datetime.now(UTC), seconds=seconds)
        except SQLIntegrityError:  # another controller inserted the lease row first
            return False

    def release_lease(self, name: str, holder: str) -> None:
        with self.db.write() as conn:
            sql.release_lease(conn, name, holder)

    def lease_holder(self, name: str) -> tuple[str, datetime] | None:
        with self.db.read() as conn:
            return sql.lease_holder(conn, name)

    # -- one transition, inside the caller's transaction -----------------------------------------
    def _apply(
        self,
        conn: Connection,
        view: RolloutView,
        new_state: RolloutState,
        action: str,
        reason: str,
        actor: Actor,
        verdict: AnalysisVerdict | None,
        now: float,
        *,
        on_blocked: Literal["raise", "pause"],
    ) -> Transition | PolicyViolation:
        at = views.at(now)
        candidate_row: Release | None = None
        gate_verdict: PolicyVerdict | None = None
        if new_state.phase == "promoted":
            candidate_row = self.registry.resolve_in(conn, view.candidate)
            gate_verdict = promotion_gate(conn, view, candidate_row, actor)
            if not gate_verdict.ok:
                summary = gate_verdict.summary()
                if on_blocked == "raise":
                    return PolicyViolation(
                        f"cannot promote rollout #{view.id}: {summary}",
                        hint=f"run `airlock check {candidate_row.ref} --for {STABLE_ALIAS}`",
                    )
                action, reason = "pause", f"promotion blocked by policy: {summary}"
                new_state = dataclasses.replace(
                    view.state,
                    phase="paused",
                    awaiting_approval=False,
                    updated_at=now,
                    reason=reason,
                )
                candidate_row = None
        svc = _service(conn, view.service)
        plan = svc.plan()
        target = machine.plan_for(view.spec, new_state, plan, view.candidate)
        stored: TrafficPlan | None = None
        if target is not plan:
            stored = apply_plan(
                conn,
                self.registry,
                target,
                actor=actor,
                reason=f"rollout #{view.id} {action}: {reason}",
            )
        if candidate_row is not None and gate_verdict is not None:
            move_stable(conn, view, candidate_row, gate_verdict, actor, reason, at)
        verdict_text = verdict_json(verdict)
        if not sql.update_state(
            conn,
            view.id,
            expected_version=view.version,
            phase=new_state.phase,
            step_index=new_state.step_index,
            state=state_json(new_state),
            reason=new_state.reason or reason,
            at=at,
            finished=new_state.terminal,
            last_verdict=verdict_text,
        ):
            raise Conflict(
                f"rollout #{view.id} changed while this decision was being made",
                hint=f"re-read it with `airlock rollout status {view.service}`",
            )
        weight = machine.candidate_weight(view.spec, new_state)
        event = audit.append(
            conn,
            actor=actor.name,
            action=f"rollout.{action}",
            subject=view.service,
            details={
                "rollout": view.id,
                "kind": view.kind,
                "candidate": view.candidate,
                "stable": view.stable,
                "strategy": view.spec.strategy,
                "phase": new_state.phase,
                "step": new_state.step_index + 1,
                "steps": len(view.steps),
                "candidate_weight_pct": weight / 100,
                "reason": reason,
                "verdict": verdict_summary(verdict),
                "plan_generation": stored.generation if stored else None,
            },
        )
        sql.insert_history(
            conn,
            rollout_id=view.id,
            at=at,
            action=action,
            actor=actor.name,
            phase=new_state.phase,
            step_index=new_state.step_index,
            candidate_weight=weight,
            reason=reason,
            verdict=verdict_text,
            plan_generation=stored.generation if stored else None,
            event_seq=event.seq,
        )
        after = dataclasses.replace(
            view,
            state=new_state,
            version=view.version + 1,
            reason=new_state.reason or reason,
            updated_at=at,
            finished_at=at if new_state.terminal else None,
            last_verdict=verdict.report() if verdict is not None else view.last_verdict,
        )
        return Transition(after, action, reason, stored)

    def _notify(self, plan: TrafficPlan | None) -> None:
        # Serving's listeners (a CatalogSync in this process) apply the plan at once.
        if plan is not None:
            self.serving.publish(plan)


# -- helpers ------------------------------------------------------------------------------------


def _service(conn: Connection, name: str) -> serving_sql.StoredService:
    row = serving_sql.get(conn, name)
    if row is None:
        raise NotFound(
            f"no service named {name!r}",
            hint="run `airlock service ls`, or create it with `airlock service create`",
        )
    return row


def _required(reason: str, verb: str) -> str:
    if not reason.strip():
        raise InvalidInput(f"a {verb} needs a reason", hint='add --reason "why"')
    return reason


__all__ = [
    "CONTROLLER",
    "STABLE_ALIAS",
    "Kind",
    "RolloutRecord",
    "RolloutView",
    "Rollouts",
    "Transition",
]
