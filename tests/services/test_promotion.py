"""services/promotion.py: plan, then execute; the one writer of ``alias.move``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from airlock import audit
from airlock.errors import Conflict, PolicyViolation
from airlock.services.governance import Governance
from airlock.services.identity import Actor
from airlock.services.promotion import Promotion
from airlock.services.registry import Registry
from airlock.services.serving import Serving
from airlock.services.workspace import Workspace

ALICE = Actor("alice", "admin")
OPS = Actor("olga", "operator")
BOB = Actor("bob", "approver")
MakeModel = Callable[..., Path]
DETAILS = {"from", "to", "digest", "reason", "policy_version", "risk_classes", "rollout", "service"}


def _moves(ws: Workspace) -> list[audit.Event]:
    with ws.db.read() as conn:
        return list(audit.entries(conn, action="alias.move"))


@pytest.fixture
def chat(workspace: Workspace, make_model: MakeModel) -> Workspace:
    reg = Registry(workspace)
    for n, version in enumerate(("1.0.0", "1.1.0", "1.2.0")):
        folder = make_model(f"v{version}", seed=n + 1)
        reg.push(folder, name="chat", version=version, actor=ALICE)
    reg.set_alias("production", "chat@1.0.0", actor=OPS, reason="launch")
    policy = "stages:\n  production:\n    approvals: {required: 1}\n"
    Governance(workspace).set_policy("chat", policy, actor=ALICE, reason="one approver")
    return workspace


def test_a_plan_shows_the_move_and_changes_nothing(chat: Workspace) -> None:
    promotion = Promotion(chat)
    events = len(_moves(chat))
    plan = promotion.plan_promotion("chat@1.1.0", "production")
    assert (plan.current, plan.target, plan.moves) == ("chat@1.0.0", "chat@1.1.0", True)
    assert not plan.allowed and plan.verdict.policy_version == 1
    assert plan.approvals_found == ()
    assert plan.approvals_missing[0].startswith("0 of 1 approval(s) for production")
    assert len(_moves(chat)) == events
    assert Registry(chat).resolve("chat@production").version == "1.0.0"

    Governance(chat).approve("chat@1.1.0", stage="production", actor=BOB)
    plan = promotion.plan_promotion("chat@1.1.0", "production")
    assert plan.allowed and plan.approvals_found == ("bob (approver) approve",)
    assert plan.approvals_missing == ()
    result = promotion.execute(plan, actor=OPS, reason="reviewed")
    assert (result.from_version, result.to_version, result.moved) == ("1.0.0", "1.1.0", True)
    assert Registry(chat).resolve("chat@production").version == "1.1.0"


def test_executing_a_stale_plan_is_a_conflict(chat: Workspace) -> None:
    promotion = Promotion(chat)
    Governance(chat).approve("chat@1.1.0", stage="production", actor=BOB)
    Governance(chat).approve("chat@1.2.0", stage="production", actor=BOB)
    plan = promotion.plan_promotion("chat@1.1.0", "production")
    Registry(chat).set_alias("production", "chat@1.2.0", actor=OPS, reason="meanwhile")
    with pytest.raises(Conflict, match="changed since the plan"):
        promotion.execute(plan, actor=OPS, reason="late")
    assert Registry(chat).resolve("chat@production").version == "1.2.0"


def test_a_refused_plan_is_recorded_when_executed(chat: Workspace) -> None:
    promotion = Promotion(chat)
    plan = promotion.plan_promotion("chat@1.1.0", "production")
    with pytest.raises(PolicyViolation, match="blocked by approvals"):
        promotion.execute(plan, actor=OPS, reason="try")
    with chat.db.read() as conn:
        blocked = list(audit.entries(conn, action="policy.blocked"))
    assert blocked[-1].details["action"] == "alias.move"
    assert blocked[-1].details["to"] == "chat@1.1.0"


def test_every_alias_move_has_one_details_shape(chat: Workspace) -> None:
    Governance(chat).approve("chat@1.1.0", stage="production", actor=BOB)
    Registry(chat).set_alias("production", "chat@1.1.0", actor=OPS, reason="by hand")
    Serving(chat).create("chat-svc", "chat@1.2.0", actor=ALICE, reason="serve it")  # adopts stable
    moves = _moves(chat)
    assert {tuple(sorted(e.details)) for e in moves} == {tuple(sorted(DETAILS))}
    by_hand, adopted = moves[-2], moves[-1]
    assert by_hand.details["policy_version"] == 1 and by_hand.details["service"] is None
    assert adopted.subject == "chat@stable" and adopted.details["service"] == "chat-svc"
    assert adopted.details["from"] is None and adopted.details["to"] == "chat@1.2.0"
