"""REST routes over rollouts: plan, start, status, pause, resume, promote, roll back, abort,
history; drills: start one in the server, list them.

Every route calls :class:`~airlock.services.rollouts.Rollouts`, which checks
roles and policy and writes the audit event with the change. When the API runs
inside ``airlock serve``, ``app.state.serving`` is the :class:`Serving` object
the in-process gateway listens to, so a manual rollback reaches the gateway
the moment its transaction commits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from airlock.api.bodies import PlanOut, RolloutOut
from airlock.api.deps import ActorDep, IdPath, WorkspaceDep
from airlock.api.derive import From, Out
from airlock.api.paging import DEFAULT, CursorQuery, LimitQuery, link_next
from airlock.core.planning import Baseline, MetricPlan, StepPlan
from airlock.errors import ServiceUnavailable
from airlock.services.drills import DrillView
from airlock.services.identity import Actor
from airlock.services.rollout_planning import RolloutPlan
from airlock.services.rollouts import RolloutRecord, Rollouts, RolloutView, Transition
from airlock.services.serving import Serving
from airlock.services.workspace import Workspace

router = APIRouter(prefix="/api/v1", tags=["rollouts"])


# -- bodies ---------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True)


class RecordOut(Out):
    __value__ = From(RolloutRecord)
    candidate_weight: int = Field(description="basis points after the action")


class RolloutDetailOut(RolloutOut):
    history: list[RecordOut]


class TransitionOut(Out):
    __value__ = From(Transition)
    plan: PlanOut | None = Field(description="the traffic plan the transition stored, if any")
    plan_generation: int | None


class RolloutIn(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    candidate: str = Field(min_length=1, max_length=300, description="a release reference")
    spec: dict[str, Any] | str = Field(
        description="the rollout spec (object, or YAML/JSON text), e.g. "
        "{strategy: canary, steps: [{weight_pct: 10, bake_seconds: 60}, {weight_pct: 100}]}"
    )
    reason: str = Field(default="", max_length=4000)


class ControlIn(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: str = Field(default="", max_length=4000, description="required to roll back or abort")


class PlanIn(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    spec: dict[str, Any] | str = Field(description="the rollout spec to plan (object or text)")
    candidate: str | None = Field(
        default=None, max_length=300, description="the release to roll out (checked to exist)"
    )
    lookback_seconds: float = Field(
        default=3600.0, ge=1, description="seconds of recent traffic to plan from"
    )
    requests_per_second: float | None = Field(
        default=None, description="expected requests/s, instead of the service's"
    )
    error_rate: float | None = Field(default=None, description="expected error rate (0..1)")


class BaselineOut(Out):
    __value__ = From(Baseline)


class MetricPlanOut(Out):
    __value__ = From(MetricPlan, unbounded={"detectable", "target", "seconds_to_target"})


class StepPlanOut(Out):
    __value__ = From(StepPlan)


class RolloutPlanOut(Out):
    __value__ = From(RolloutPlan)
    warnings: list[str]


class DrillIn(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    faults: list[str] = Field(
        min_length=1,
        max_length=5,
        description="faults as the CLI writes them: errors=0.2, latency=+300ms, unsafe=0.1",
    )
    rps: float = Field(default=50.0, gt=0, le=500, description="requests a second to send")
    spec: dict[str, Any] | None = Field(default=None, description="default: a 10 % → 50 % canary")


class DrillStartedOut(_Body):
    service: str
    faults: dict[str, float]
    status: Literal["started"]
    follow: str = Field(description="where to watch it")


DrillRunner = Callable[[str, dict[str, float], Actor, float, dict[str, Any] | None], None]


class DrillOut(Out):
    __value__ = From(DrillView)


# -- wiring -------------------------------------------------------------------------------------


def rollouts(request: Request, ws: WorkspaceDep) -> Rollouts:
    serving: Serving | None = getattr(request.app.state, "serving", None)
    return Rollouts(ws, serving=serving)


RolloutsDep = Annotated[Rollouts, Depends(rollouts)]


def rollout_out(view: RolloutView) -> RolloutOut:
    return RolloutOut.model_validate(view.to_dict())


def record_out(record: RolloutRecord) -> RecordOut:
    return RecordOut.model_validate(record.to_dict())


def transition_out(t: Transition) -> TransitionOut:
    from airlock.api.serving_routes import plan_out

    return TransitionOut.of(
        t,
        plan=plan_out(t.plan) if t.plan else None,
        plan_generation=t.plan.generation if t.plan else None,
        rollout=rollout_out(t.rollout),
    )


def rollout_in_flight(ws: Workspace, service: str) -> RolloutOut | None:
    """The service's live rollout as the API shows it, or None."""
    view = Rollouts(ws).active(service)
    return rollout_out(view) if view else None


# -- routes -------------------------------------------------------------------------------------


@router.post("/services/{name}/rollouts", response_model=TransitionOut, status_code=201)
def start_rollout(name: str, body: RolloutIn, ro: RolloutsDep, who: ActorDep) -> TransitionOut:
    """Start moving a service to a candidate (operator; the policy for ``stable`` must pass)."""
    return transition_out(ro.start(name, body.candidate, body.spec, actor=who, reason=body.reason))


@router.post("/services/{name}/rollout-plan", response_model=RolloutPlanOut)
def plan_rollout(name: str, body: PlanIn, ws: WorkspaceDep, _: ActorDep) -> RolloutPlanOut:
    """What each step of a spec can detect in its bake time, from the service's recent
    traffic (or the expected traffic given): changes nothing."""
    from datetime import timedelta

    from airlock.services.registry import Registry
    from airlock.services.rollout_planning import RolloutPlanner

    if body.candidate is not None:
        Registry(ws).resolve(body.candidate)
    given = (("requests_per_second", body.requests_per_second), ("error_rate", body.error_rate))
    plan = RolloutPlanner(ws).plan(
        name,
        body.spec,
        lookback=timedelta(seconds=body.lookback_seconds),
        overrides={k: v for k, v in given if v is not None},
    )
    return RolloutPlanOut.of(plan)


@router.get("/services/{name}/rollout", response_model=RolloutOut)
def rollout_status(name: str, ro: RolloutsDep, _: ActorDep) -> RolloutOut:
    """The rollout in flight (else the latest): step, weights and the newest verdict."""
    return rollout_out(ro.status(name))


@router.get("/services/{name}/rollouts", response_model=list[RolloutOut])
def service_rollouts(
    name: str,
    request: Request,
    response: Response,
    ro: RolloutsDep,
    _: ActorDep,
    limit: LimitQuery = DEFAULT,
    cursor: CursorQuery = None,
) -> list[RolloutOut]:
    """A service's rollouts, newest first, a page at a time (the next page: the ``Link``/``X-Next-Cursor`` headers)."""
    ro.serving.get(name)  # NotFound for an unknown service
    page = ro.page(name, limit=limit, cursor=cursor)
    link_next(request, response, page.next_cursor)
    return [rollout_out(v) for v in page.items]


@router.get("/rollouts", response_model=list[RolloutOut])
def all_rollouts(
    request: Request,
    response: Response,
    ro: RolloutsDep,
    _: ActorDep,
    limit: LimitQuery = DEFAULT,
    cursor: CursorQuery = None,
) -> list[RolloutOut]:
    """Every service's rollouts, newest first, a page at a time (the next page: the ``Link``/``X-Next-Cursor`` headers)."""
    page = ro.page(None, limit=limit, cursor=cursor)
    link_next(request, response, page.next_cursor)
    return [rollout_out(v) for v in page.items]


@router.get("/rollouts/{rollout_id}", response_model=RolloutDetailOut)
def rollout_history(rollout_id: IdPath, ro: RolloutsDep, _: ActorDep) -> RolloutDetailOut:
    """One rollout with its history: every decision with its verdict (effects and CIs)."""
    view = ro.get(rollout_id)
    history = [record_out(r) for r in ro.history(rollout_id)]
    return RolloutDetailOut(**rollout_out(view).model_dump(), history=history)


Verb = Literal["pause", "resume", "promote", "rollback", "abort"]


@router.post("/services/{name}/rollout/{verb}", response_model=TransitionOut)
def control_rollout(
    name: str, verb: Verb, body: ControlIn, ro: RolloutsDep, who: ActorDep
) -> TransitionOut:
    """Pause, resume, promote (skip the remaining steps), roll back or abort the rollout
    in flight (operator or admin; rollback and abort need a reason)."""
    if verb == "pause":
        t = ro.pause(name, actor=who, reason=body.reason)
    elif verb == "resume":
        t = ro.resume(name, actor=who, reason=body.reason)
    elif verb == "promote":
        t = ro.promote(name, actor=who, reason=body.reason)
    elif verb == "rollback":
        t = ro.rollback(name, actor=who, reason=body.reason)
    else:
        t = ro.abort(name, actor=who, reason=body.reason)
    return transition_out(t)


@router.post("/services/{name}/drills", response_model=DrillStartedOut, status_code=202)
def start_drill(
    name: str, body: DrillIn, request: Request, ro: RolloutsDep, who: ActorDep
) -> DrillStartedOut:
    """Start a rollback drill in the server: a faulty copy of the stable release is rolled
    out under generated traffic and must be rolled back; the result lands in /drills."""
    from airlock.core.drill import parse_faults
    from airlock.services.drills import Drills

    faults = parse_faults(body.faults)
    runner: DrillRunner | None = getattr(request.app.state, "drill_runner", None)
    if runner is None:
        raise ServiceUnavailable(
            "drills run inside `airlock serve`, which has a gateway to send traffic to",
            hint=f"start the server with `airlock serve`, or run `airlock drill {name} "
            "--fault ...` where the catalog is",
        )
    Drills(ro.ws, rollouts=ro).check_start(name, who, faults)
    runner(name, faults, who, body.rps, body.spec)
    return DrillStartedOut(
        service=name, faults=faults, status="started", follow=f"/api/v1/services/{name}/rollout"
    )


@router.get("/drills", response_model=list[DrillOut])
def list_drills(
    request: Request,
    response: Response,
    ws: WorkspaceDep,
    _: ActorDep,
    service: str | None = Query(None, description="only this service's drills"),
    limit: LimitQuery = DEFAULT,
    cursor: CursorQuery = None,
) -> list[DrillOut]:
    """Rollback drills, newest first: fault, time to detect, time to revert, requests hit;
    a page at a time (the next page: the ``Link``/``X-Next-Cursor`` headers)."""
    from airlock.services.drills import Drills

    page = Drills(ws).page(service, limit=limit, cursor=cursor)
    link_next(request, response, page.next_cursor)
    return [DrillOut.of(d) for d in page.items]
