"""REST routes over governance: approvals, policies and checks, evaluations, signatures, notes.

Every route is a thin call into :class:`~airlock.services.governance.Governance`,
:class:`~airlock.services.evals.Evals` or :class:`~airlock.services.notes.ReleaseNotes`;
role checks, four-eyes and audit events happen there.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import PlainTextResponse

from airlock.api.bodies import (
    AddedSignatureOut,
    ApprovalOut,
    CheckOut,
    DecisionIn,
    DecisionOut,
    EvalIn,
    EvalRecordOut,
    EvalRunOut,
    KeyIn,
    KeyOut,
    PolicyChangeOut,
    PolicyIn,
    PolicyOut,
    ReasonIn,
    SignatureOut,
    SignaturesOut,
    SignIn,
    SuiteComparisonOut,
)
from airlock.api.deps import ID_MAX, ActorDep, IdPath, WorkspaceDep
from airlock.api.paging import DEFAULT, CursorQuery, LimitQuery, link_next
from airlock.core.evalsuite import Suite, parse_suite
from airlock.core.records import Approval, EvalRunSummary, PolicyVersion
from airlock.errors import InvalidInput
from airlock.services.governance import Governance

router = APIRouter(prefix="/api/v1", tags=["governance"])

EXAMPLE_SUITES = ("quality", "safety")


def governance(ws: WorkspaceDep) -> Governance:
    return Governance(ws)


GovernanceDep = Annotated[Governance, Depends(governance)]
StageQuery = Annotated[
    str, Query(min_length=1, max_length=64, description="the alias the release would take")
]


def approval_out(a: Approval) -> ApprovalOut:
    return ApprovalOut.of(a)


def policy_out(row: PolicyVersion) -> PolicyOut:
    return PolicyOut.of(row)


def eval_out(run: EvalRunSummary) -> EvalRunOut:
    return EvalRunOut.of(run)


# -- approvals -------------------------------------------------------------------------------


@router.get("/releases/{ref}/approvals", response_model=list[ApprovalOut])
def list_approvals(
    ref: str,
    request: Request,
    response: Response,
    gov: GovernanceDep,
    _: ActorDep,
    limit: LimitQuery = DEFAULT,
    cursor: CursorQuery = None,
) -> list[ApprovalOut]:
    """Every approval and rejection of a release, oldest first, a page at a time (the next page: the ``Link``/``X-Next-Cursor`` headers)."""
    page = gov.approval_page(ref, limit=limit, cursor=cursor)
    link_next(request, response, page.next_cursor)
    return [approval_out(a) for a in page.items]


@router.post("/releases/{ref}/approve", response_model=DecisionOut)
def approve(ref: str, body: DecisionIn, gov: GovernanceDep, who: ActorDep) -> DecisionOut:
    """Approve a release for a stage (approver or admin; never the release's author)."""
    result = gov.approve(ref, stage=body.stage, actor=who, comment=body.comment)
    return DecisionOut.of(result)


@router.post("/releases/{ref}/reject", response_model=DecisionOut)
def reject(ref: str, body: DecisionIn, gov: GovernanceDep, who: ActorDep) -> DecisionOut:
    """Reject a release for a stage; the comment (the reason) is required."""
    result = gov.reject(ref, stage=body.stage, actor=who, comment=body.comment)
    return DecisionOut.of(result)


# -- policies and checks --------------------------------------------------------------------


@router.get("/policies", response_model=list[PolicyOut])
def policy_history(
    request: Request,
    response: Response,
    gov: GovernanceDep,
    _: ActorDep,
    name: str | None = Query(None, description="only this model's or service's policy"),
    limit: LimitQuery = DEFAULT,
    cursor: CursorQuery = None,
) -> list[PolicyOut]:
    """Every stored policy version, by name then version, a page at a time (the next page: the ``Link``/``X-Next-Cursor`` headers)."""
    page = gov.policy_page(name, limit=limit, cursor=cursor)
    link_next(request, response, page.next_cursor)
    return [policy_out(r) for r in page.items]


@router.get("/policies/{name}", response_model=PolicyOut)
def get_policy(
    name: str,
    gov: GovernanceDep,
    _: ActorDep,
    version: int | None = Query(None, ge=1, le=ID_MAX, description="default: the latest"),
) -> PolicyOut:
    """A model's (or service's) promotion policy as written."""
    row, _policy = gov.policy(name, version)
    return policy_out(row)


@router.put("/policies/{name}", response_model=PolicyChangeOut)
def set_policy(name: str, body: PolicyIn, gov: GovernanceDep, who: ActorDep) -> PolicyChangeOut:
    """Store a new version of a policy (admin); identical text records nothing."""
    change = gov.set_policy(name, body.document, actor=who, reason=body.reason)
    return PolicyChangeOut.of(change)


@router.get("/releases/{ref}/check", response_model=CheckOut)
def check(
    ref: str,
    gov: GovernanceDep,
    _: ActorDep,
    stage: StageQuery,
    policy: str | None = Query(None, description="a service's policy instead of the model's"),
) -> CheckOut:
    """Every policy rule for ``ref`` taking the alias ``stage``: pass or fail and why."""
    return CheckOut.model_validate(gov.check(ref, stage, policy_name=policy).to_dict())


# -- evaluations ------------------------------------------------------------------------------


@router.get("/releases/{ref}/evaluations", response_model=list[EvalRunOut])
def list_evaluations(
    ref: str,
    request: Request,
    response: Response,
    ws: WorkspaceDep,
    _: ActorDep,
    limit: LimitQuery = DEFAULT,
    cursor: CursorQuery = None,
) -> list[EvalRunOut]:
    """A release's stored evaluation runs, oldest first, a page at a time (the next page: the ``Link``/``X-Next-Cursor`` headers)."""
    from airlock.services.evals import Evals

    # Each stored record names its baseline by reference, as /evaluations/{id} shows it.
    page = Evals(ws).run_page(ref, limit=limit, cursor=cursor)
    link_next(request, response, page.next_cursor)
    return [eval_out(r) for r in page.items]


@router.get("/releases/{ref}/evaluations/compare", response_model=list[SuiteComparisonOut])
def compare_evaluations(
    ref: str,
    gov: GovernanceDep,
    _: ActorDep,
    against: str = Query(min_length=1, description="the earlier release"),
) -> list[SuiteComparisonOut]:
    """Each suite's latest run of ``against`` and of ``ref``, and the latest run of ``ref``
    paired with ``against`` as its baseline (what ``airlock diff`` shows)."""
    return [SuiteComparisonOut.of(c) for c in gov.eval_comparison(against, ref)]


@router.get("/evaluations/{run_id}", response_model=EvalRecordOut)
def show_evaluation(run_id: IdPath, ws: WorkspaceDep, _: ActorDep) -> EvalRecordOut:
    """One run with its full record: summary, paired comparison, every case."""
    from airlock.services.evals import Evals

    run = Evals(ws).record(run_id)
    return EvalRecordOut.of(run, record=run.document())


def load_suite_text(text: str) -> Suite:
    """A suite from YAML/JSON text, or one of the example suites by name."""
    name = text.strip()
    if name in EXAMPLE_SUITES:
        path = resources.files("airlock") / "examples" / "suites" / f"{name}.yaml"
        return parse_suite(path.read_text("utf-8"), default_name=name)
    if "\n" not in name and ":" not in name:
        raise InvalidInput(
            f"{name!r} is neither a suite document nor an example suite",
            hint=f"send the suite's YAML, or one of: {', '.join(EXAMPLE_SUITES)}",
        )
    return parse_suite(text, default_name="suite")


@router.post("/releases/{ref}/evaluations", response_model=EvalRecordOut)
def run_evaluation(ref: str, body: EvalIn, ws: WorkspaceDep, who: ActorDep) -> EvalRecordOut:
    """Run a suite through the release's runtime (and its baseline's), store and return it."""
    from airlock.services.evals import Evals

    evals = Evals(ws)
    run = evals.run(
        ref,
        load_suite_text(body.suite),
        actor=who,
        baseline=body.baseline,
        confidence=body.confidence,
    )
    stored = evals.record(run.id)
    return EvalRecordOut.of(stored, baseline=run.baseline, record=stored.document())


# -- signatures ---------------------------------------------------------------------------------


@router.get("/releases/{ref}/signatures", response_model=SignaturesOut)
def verify_signatures(ref: str, gov: GovernanceDep, _: ActorDep) -> SignaturesOut:
    """Verify every signature of a release against the trusted keys."""
    checks = gov.verify_signatures(ref)
    row = gov.registry.resolve(ref)
    return SignaturesOut(
        ref=row.ref,
        signed=bool(checks),
        valid=any(c.valid for c in checks),
        signatures=[SignatureOut.of(c) for c in checks],
    )


@router.post("/releases/{ref}/signatures", response_model=AddedSignatureOut)
def add_signature(ref: str, body: SignIn, gov: GovernanceDep, who: ActorDep) -> AddedSignatureOut:
    """Store a signature made on the signer's machine: checked against the release's digest
    and files (and against the key, when it is trusted); once per key."""
    added = gov.add_signature(ref, body.bundle, actor=who)
    return AddedSignatureOut.of(added)


@router.post("/keys", response_model=KeyOut)
def trust_key(body: KeyIn, gov: GovernanceDep, who: ActorDep) -> KeyOut:
    """Trust a public key or CA certificate (admin): signatures made with it count."""
    return KeyOut.of(gov.trust_key(body.public_key, name=body.name, actor=who))


@router.post("/keys/{name}/revoke", response_model=KeyOut)
def revoke_key(name: str, body: ReasonIn, gov: GovernanceDep, who: ActorDep) -> KeyOut:
    """Stop trusting a key (by name or id; admin): its signatures no longer count."""
    return KeyOut.of(gov.revoke_key(name, actor=who, reason=body.reason))


@router.get("/keys", response_model=list[KeyOut])
def list_keys(
    request: Request,
    response: Response,
    gov: GovernanceDep,
    _: ActorDep,
    limit: LimitQuery = DEFAULT,
    cursor: CursorQuery = None,
) -> list[KeyOut]:
    """Trusted (and revoked) signing keys in the order they were added, a page at a time (the next page: the ``Link``/``X-Next-Cursor`` headers)."""
    page = gov.key_page(limit=limit, cursor=cursor)
    link_next(request, response, page.next_cursor)
    return [KeyOut.of(k) for k in page.items]


# -- release notes -------------------------------------------------------------------------------


@router.get("/releases/{ref}/notes", response_class=PlainTextResponse)
def release_notes(
    ref: str,
    ws: WorkspaceDep,
    _: ActorDep,
    stage: str = Query("production", min_length=1, max_length=64),
    against: str | None = Query(None, description="compare with this release"),
) -> str:
    """Markdown release notes: the human notes, what changed since the previous stable
    release, evaluations, approvals, signatures, risk classes and the policy check."""
    from airlock.services.notes import ReleaseNotes

    return ReleaseNotes(ws).render(ref, stage=stage, against=against)
