"""Policies stored and versioned in the catalog, and the gate they put on alias moves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from airlock import audit
from airlock.catalog.schema import policies
from airlock.errors import Conflict, IntegrityError, InvalidInput, NotFound, PolicyViolation
from airlock.services.governance import Governance
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.workspace import Workspace

ALICE = Actor("alice", "admin")  # pushes, so she is the author
OPS = Actor("olga", "operator")
BOB = Actor("bob", "approver")
CAROL = Actor("carol", "approver")
MakeModel = Callable[..., Path]

POLICY = """\
# chat promotion rules
stages:
  production:
    approvals: {required: 1}
    max_changed_components: 1
    allow_pickle: false
  "*":
    allow_pickle: false
risk_classes:
  - name: safety-change
    when: {components_changed: [safety_policy]}
    require: {approvals: 2, risk_assessment: true, min_canary_minutes: 60, shadow_first: true}
"""


def _events(ws: Workspace, action: str | None = None) -> list[audit.Event]:
    with ws.db.read() as conn:
        return list(audit.entries(conn, action=action))


@pytest.fixture
def chat(workspace: Workspace, make_model: MakeModel) -> Workspace:
    reg = Registry(workspace)
    v1 = make_model("v1", seed=1, **{"safety_policy.yaml": "blocked_terms: [bomb]\n"})
    reg.push(v1, name="chat", version="1.0.0", actor=ALICE)
    reg.set_alias("production", "chat@1.0.0", actor=OPS, reason="launch")  # no policy yet
    Governance(workspace).set_policy("chat", POLICY, actor=ALICE, reason="first rules")
    return workspace


def _push(ws: Workspace, make_model: MakeModel, version: str, **files: Any) -> str:
    folder = make_model(f"v{version}", seed=2, **files)
    return Registry(ws).push(folder, name="chat", version=version, actor=ALICE).ref


def test_policies_are_versioned_and_audited(workspace: Workspace) -> None:
    gov = Governance(workspace)
    first = gov.set_policy("chat", POLICY, actor=ALICE, reason="first rules")
    assert first.created and first.row.version == 1 and first.previous is None
    again = gov.set_policy("chat", POLICY + "\n# only a comment\n", actor=ALICE)
    assert not again.created and again.row.version == 1  # same rules, same digest
    stricter = POLICY.replace("required: 1", "required: 2")
    second = gov.set_policy("chat", stricter, actor=ALICE, reason="two approvers")
    assert second.created and (second.row.version, second.previous) == (2, 1)
    row, policy = gov.policy("chat", 1)
    assert row.document == POLICY and policy.stages["production"].approvals.required == 1
    assert gov.policy("chat")[1].stages["production"].approvals.required == 2
    assert [r.version for r in gov.policy_history("chat")] == [1, 2]
    events = _events(workspace, "policy.set")
    assert [e.details["version"] for e in events] == [1, 2]
    assert events[1].details["previous"] == 1 and events[1].details["reason"] == "two approvers"
    with pytest.raises(NotFound, match="no version 7"):
        gov.policy("chat", 7)
    with pytest.raises(InvalidInput, match=r"approvals\.required"):
        gov.set_policy("chat", "stages: {production: {approvals: {required: x}}}", actor=ALICE)


def test_an_edited_policy_is_detected(chat: Workspace, make_model: MakeModel) -> None:
    ref = _push(chat, make_model, "1.1.0")
    with chat.db.write() as conn:
        conn.execute(update(policies).values(document="stages: {}"))
    with pytest.raises(IntegrityError, match="no longer matches its digest"):
        Governance(chat).check(ref, "production")


def test_the_gate_blocks_an_alias_move_and_says_which_rule(
    chat: Workspace, make_model: MakeModel
) -> None:
    ref = _push(chat, make_model, "1.1.0", **{"safety_policy.yaml": "blocked_terms: [bomb]\n"})
    reg, gov = Registry(chat), Governance(chat)
    with pytest.raises(PolicyViolation) as info:
        reg.set_alias("production", ref, actor=OPS, reason="ship it")
    assert "chat@1.1.0 may not take production: blocked by approvals (0 of 1" in info.value.message
    assert "airlock check chat@1.1.0 --for production" in info.value.hint
    blocked = _events(chat, "policy.blocked")[-1]
    assert blocked.actor == "olga" and blocked.subject == "chat@production"
    assert [f["rule"] for f in blocked.details["failed"]] == ["approvals"]
    assert reg.show("chat@production").row.version == "1.0.0"  # nothing moved

    gov.approve(ref, stage="production", actor=BOB, comment="looks right")
    moved = reg.set_alias("production", ref, actor=OPS, reason="ship it")
    assert moved.moved and moved.from_version == "1.0.0"
    event = _events(chat, "alias.move")[-1]
    assert event.details["policy_version"] == 1 and event.details["risk_classes"] == []


def test_a_rejection_blocks_until_the_same_person_approves(
    chat: Workspace, make_model: MakeModel
) -> None:
    ref = _push(chat, make_model, "1.1.0", **{"safety_policy.yaml": "blocked_terms: [bomb]\n"})
    gov = Governance(chat)
    gov.approve(ref, stage="production", actor=BOB)
    gov.reject(ref, stage="production", actor=CAROL, comment="answers are rude")
    verdict = gov.check(ref, "production")
    assert [r.rule for r in verdict.failures] == ["no-rejection"]
    assert "carol (approver)" in verdict.failures[0].why and "rude" in verdict.failures[0].why
    with pytest.raises(Conflict, match="carol already rejected"):
        gov.reject(ref, stage="production", actor=CAROL, comment="still")
    gov.approve(ref, stage="production", actor=CAROL, comment="fixed upstream")
    assert gov.check(ref, "production").ok
    with pytest.raises(InvalidInput, match="needs a reason"):
        gov.reject(ref, stage="production", actor=BOB, comment=" ")


def test_a_safety_change_needs_two_approvers_and_a_risk_assessment(
    chat: Workspace, make_model: MakeModel, tmp_path: Path
) -> None:
    ref = _push(
        chat, make_model, "1.1.0", **{"safety_policy.yaml": "blocked_terms: [bomb, knife]\n"}
    )
    gov = Governance(chat)
    gov.approve(ref, stage="production", actor=BOB)
    verdict = gov.check(ref, "production")
    assert [m.name for m in verdict.risk] == ["safety-change"]
    assert {r.rule for r in verdict.failures} == {"approvals", "risk-assessment"}
    assert verdict.rollout.min_canary_minutes == 60 and verdict.rollout.shadow_first
    gov.approve(ref, stage="production", actor=CAROL)
    assert {r.rule for r in gov.check(ref, "production").failures} == {"risk-assessment"}

    from airlock.core.manifest import Notes

    folder = make_model("v112", seed=2, **{"safety_policy.yaml": "blocked_terms: [bomb, knife]\n"})
    notes = Notes(summary="knife filter", risk_assessment="reviewed with trust & safety")
    ref2 = Registry(chat).push(folder, name="chat", version="1.1.2", actor=ALICE, notes=notes).ref
    for who in (BOB, CAROL):
        gov.approve(ref2, stage="production", actor=who)
    assert gov.check(ref2, "production").ok


def test_too_many_changed_components_and_pickles_are_blocked(
    chat: Workspace, make_model: MakeModel
) -> None:
    ref = _push(
        chat,
        make_model,
        "1.1.0",
        **{
            "safety_policy.yaml": "blocked_terms: [bomb]\n",
            "prompt_template.yaml": "template: 'Q: {prompt}\\nA:'\n",
            "decoding.yaml": "temperature: 0.2\n",
        },
    )
    verdict = Governance(chat).check(ref, "production")
    failed = {r.rule: r.why for r in verdict.failures}
    assert (
        "2 component(s) changed vs chat@1.0.0: decoding, prompt_template (> 1)"
        in failed["max-changed-components"]
    )
    folder = make_model("pickled", seed=3, **{"safety_policy.yaml": "blocked_terms: [bomb]\n"})
    (folder / "extra.pt").write_bytes(b"\x80\x04K\x01.")
    pickled = Registry(chat).push(
        folder, name="chat", version="1.2.0", actor=ALICE, allow_pickle=True
    )
    with pytest.raises(PolicyViolation, match=r"no-pickle \(pickle-based files: extra\.pt\)"):
        Registry(chat).set_alias("staging", pickled.ref, actor=OPS, reason="try")  # the "*" stage


def test_without_a_policy_every_move_is_allowed(
    workspace: Workspace, make_model: MakeModel
) -> None:
    reg = Registry(workspace)
    reg.push(make_model(seed=4), name="free", version="1.0.0", actor=ALICE)
    verdict = Governance(workspace).check("free@1.0.0", "production")
    assert verdict.ok and verdict.policy_version is None and verdict.results == ()
    assert reg.set_alias("production", "free@1.0.0", actor=OPS, reason="go").moved


def test_the_baseline_is_what_the_stage_serves_now(chat: Workspace, make_model: MakeModel) -> None:
    reg, gov = Registry(chat), Governance(chat)
    ref = _push(chat, make_model, "1.1.0", **{"safety_policy.yaml": "blocked_terms: [bomb]\n"})
    assert gov.check(ref, "production").baseline_ref == "chat@1.0.0"
    assert gov.check("chat@1.0.0", "production").baseline_ref is None  # it is production
    gov.approve(ref, stage="production", actor=BOB)
    reg.set_alias("production", ref, actor=OPS, reason="go")
    assert gov.check("chat@1.0.0", "production").baseline_ref == "chat@1.1.0"


def test_the_rollout_gate_uses_the_service_policy_first(
    chat: Workspace, make_model: MakeModel
) -> None:
    from airlock.services.promotion import rollout_gate
    from airlock.services.serving import Serving

    ref = _push(chat, make_model, "1.1.0", **{"safety_policy.yaml": "blocked_terms: [bomb]\n"})
    reg, gov = Registry(chat), Governance(chat)
    with chat.db.read() as conn:
        verdict = rollout_gate(conn, reg.resolve_in(conn, ref), "chat-svc")
    assert verdict.stage == "production" and [r.rule for r in verdict.failures] == ["approvals"]
    assert verdict.baseline_ref == "chat@1.0.0"  # production, as no service exists yet
    _push(chat, make_model, "1.0.1", **{"safety_policy.yaml": "blocked_terms: [bomb]\n",
                                        "README.md": "a hotfix"})  # fmt: skip
    Serving(chat).create("chat-svc", "chat@1.0.1", actor=ALICE, reason="serve it")
    gov.set_policy(
        "chat-svc",
        "stages: {rollout: {required_notes: [summary]}}\n"
        "risk_classes: [{name: any-file, when: {files_changed: true},"
        " require: {shadow_first: true, min_canary_minutes: 15}}]\n",
        actor=ALICE,
    )
    with chat.db.read() as conn:
        verdict = rollout_gate(conn, reg.resolve_in(conn, ref), "chat-svc")
    assert verdict.stage == "rollout" and [r.rule for r in verdict.failures] == ["notes.summary"]
    assert verdict.baseline_ref == "chat@1.0.1"  # the service's stable release
    assert verdict.rollout.shadow_first and verdict.rollout.min_canary_minutes == 15
