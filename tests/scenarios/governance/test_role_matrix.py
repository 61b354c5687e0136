"""Role × action: every mutating service call with every role, allowed exactly where the
permission table says; a denial changes nothing but the audit log, which records it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from airlock import audit
from airlock.core.evalsuite import Observation, parse_suite
from airlock.core.roles import PERMISSIONS, Action, Role, is_allowed, roles_allowed
from airlock.errors import Forbidden
from airlock.services.evals import Evals
from airlock.services.gateway_keys import GatewayKeys
from airlock.services.gc import plan_gc
from airlock.services.governance import Governance
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.serving import Serving
from airlock.services.signatures import public_pem
from airlock.services.tokens import Tokens
from airlock.services.workspace import Workspace

ADMIN = Actor("alice", "admin")
SUITE = parse_suite("cases: [{prompt: hi, checks: [{contains: ok}]}]", default_name="smoke")
POLICY = "stages: {production: {approvals: {required: 1}}}"

Call = Callable[[Workspace, Actor, int, Callable[..., Path]], Any]


def _push(ws: Workspace, who: Actor, i: int, make: Callable[..., Path]) -> Any:
    return Registry(ws).push(make(seed=i), name="chat", version=f"2.0.{i}", actor=who)


def _alias(ws: Workspace, who: Actor, i: int, make: Callable[..., Path]) -> Any:
    return Registry(ws).set_alias(f"a{i}", "chat@1.0.0", actor=who, reason="try")


def _approve(ws: Workspace, who: Actor, i: int, make: Callable[..., Path]) -> Any:
    return Governance(ws).approve("chat@1.0.0", stage=f"s{i}", actor=who, comment="ok")


def _reject(ws: Workspace, who: Actor, i: int, make: Callable[..., Path]) -> Any:
    return Governance(ws).reject("chat@1.0.0", stage=f"s{i}", actor=who, comment="no")


def _policy(ws: Workspace, who: Actor, i: int, make: Callable[..., Path]) -> Any:
    return Governance(ws).set_policy(f"p{i}", POLICY, actor=who, reason="rules")


def _sign(ws: Workspace, who: Actor, i: int, make: Callable[..., Path]) -> Any:
    return Governance(ws).sign("chat@1.0.0", Ed25519PrivateKey.generate(), actor=who)


def _trust(ws: Workspace, who: Actor, i: int, make: Callable[..., Path]) -> Any:
    pem = public_pem(Ed25519PrivateKey.generate().public_key())
    return Governance(ws).trust_key(pem, name=f"k{i}", actor=who)


def _untrust(ws: Workspace, who: Actor, i: int, make: Callable[..., Path]) -> Any:
    pem = public_pem(Ed25519PrivateKey.generate().public_key())
    Governance(ws).trust_key(pem, name=f"old{i}", actor=ADMIN)
    return Governance(ws).revoke_key(f"old{i}", actor=who, reason="rotated")


def _token(ws: Workspace, who: Actor, i: int, make: Callable[..., Path]) -> Any:
    return Tokens(ws).create(user=f"u{i}", role="viewer", actor=who)


def _revoke_token(ws: Workspace, who: Actor, i: int, make: Callable[..., Path]) -> Any:
    issued = Tokens(ws).create(user=f"other{i}", role="viewer", actor=ADMIN)
    return Tokens(ws).revoke(issued.id, actor=who, reason="leaked")


def _eval(ws: Workspace, who: Actor, i: int, make: Callable[..., Path]) -> Any:
    evals = Evals(ws, observe=lambda ref, suite: [Observation("ok", 1.0)] * len(suite.cases))
    return evals.run("chat@1.0.0", SUITE, actor=who)


def _gc(ws: Workspace, who: Actor, i: int, make: Callable[..., Path]) -> Any:
    ws.store.put_bytes(f"orphan {i}".encode())  # something to collect
    return plan_gc(ws, min_age=0).execute(ws, who)


def _chat_service(ws: Workspace) -> None:
    serving = Serving(ws)
    if "chat" not in {v.name for v in serving.all()}:
        serving.create("chat", "chat@1.0.0", actor=ADMIN)


def _gateway_key(ws: Workspace, who: Actor, i: int, make: Callable[..., Path]) -> Any:
    _chat_service(ws)
    return GatewayKeys(ws).create(service="chat", name=f"app{i}", actor=who)


def _revoke_gateway_key(ws: Workspace, who: Actor, i: int, make: Callable[..., Path]) -> Any:
    _chat_service(ws)
    issued = GatewayKeys(ws).create(service="chat", name=f"old{i}", actor=ADMIN)
    return GatewayKeys(ws).revoke(issued.key.id, actor=who, reason="leaked")


CALLS: dict[Action, tuple[Call, str]] = {
    Action.RELEASE_PUSH: (_push, "release.push"),
    Action.ALIAS_MOVE: (_alias, "alias.move"),
    Action.RELEASE_APPROVE: (_approve, "release.approve"),
    Action.RELEASE_REJECT: (_reject, "release.reject"),
    Action.POLICY_SET: (_policy, "policy.set"),
    Action.RELEASE_SIGN: (_sign, "release.sign"),
    Action.KEY_TRUST: (_trust, "key.trust"),
    Action.KEY_REVOKE: (_untrust, "key.revoke"),
    Action.TOKEN_CREATE: (_token, "token.create"),
    Action.TOKEN_REVOKE: (_revoke_token, "token.revoke"),
    Action.EVAL_RECORD: (_eval, "eval.run"),
    Action.STORE_GC: (_gc, "store.gc"),
    Action.GATEWAY_KEY_CREATE: (_gateway_key, "gateway_key.create"),
    Action.GATEWAY_KEY_REVOKE: (_revoke_gateway_key, "gateway_key.revoke"),
}


def _events(ws: Workspace) -> list[audit.Event]:
    with ws.db.read() as conn:
        return list(audit.entries(conn))


@pytest.mark.parametrize("action", list(CALLS), ids=[a.value for a in CALLS])
def test_every_role_on_every_mutating_call(
    workspace: Workspace, make_model: Callable[..., Path], action: Action
) -> None:
    Registry(workspace).push(make_model(seed=99), name="chat", version="1.0.0", actor=ADMIN)
    call, audited = CALLS[action]
    for i, role in enumerate(Role):
        who = Actor(f"{role.value}-user", role.value)
        before = len(_events(workspace))
        if is_allowed(role, action):
            call(workspace, who, i, make_model)
            mine = [e for e in _events(workspace)[before:] if e.actor == who.name]
            assert [e.action for e in mine] == [audited], (role, action)
            continue
        with pytest.raises(Forbidden) as info:
            call(workspace, who, i, make_model)
        assert f"{who.name} ({role.value}) may not {action.value}" in info.value.message
        assert " or ".join(r.value for r in roles_allowed(action)) in info.value.message
        mine = [e for e in _events(workspace)[before:] if e.actor == who.name]
        assert [e.action for e in mine] == ["access.denied"], (role, action)
        assert mine[0].details["action"] == action.value
        assert mine[0].details["role"] == role.value
    with workspace.db.read() as conn:
        assert audit.verify(conn).ok


def test_the_table_covers_every_action_and_admin_may_do_everything() -> None:
    assert set(PERMISSIONS) == set(Action)
    assert all(is_allowed(Role.ADMIN, a) for a in Action)
    assert not any(is_allowed(Role.VIEWER, a) for a in Action)
    assert not is_allowed("boss", Action.RELEASE_PUSH) and not is_allowed("admin", "fly")
    # operators drive rollouts and aliases; approvers approve; authors push and sign
    assert roles_allowed(Action.ROLLOUT_ROLLBACK) == (Role.OPERATOR, Role.ADMIN)
    assert roles_allowed(Action.RELEASE_APPROVE) == (Role.APPROVER, Role.ADMIN)
    assert roles_allowed(Action.RELEASE_PUSH) == (Role.AUTHOR, Role.ADMIN)


def test_four_eyes_holds_even_for_admins(
    workspace: Workspace, make_model: Callable[..., Path]
) -> None:
    Registry(workspace).push(make_model(seed=1), name="chat", version="1.0.0", actor=ADMIN)
    gov = Governance(workspace)
    with pytest.raises(Forbidden, match=r"four-eyes: alice is the author of chat@1\.0\.0"):
        gov.approve("chat@1.0.0", stage="production", actor=ADMIN)
    last = _events(workspace)[-1]
    assert last.action == "access.denied" and "four-eyes" in last.details["reason"]
    assert last.details["stage"] == "production"
    assert gov.approvals("chat@1.0.0") == []
    # the author may still withdraw their own release
    assert gov.reject("chat@1.0.0", stage="production", actor=ADMIN, comment="oops").recorded


def test_anyone_may_revoke_their_own_token(workspace: Workspace) -> None:
    tokens = Tokens(workspace)
    mine = tokens.create(user="bob", role="viewer", actor=ADMIN)
    bob = tokens.authenticate(mine.secret)
    assert bob == Actor("bob", "viewer", mine.id)
    assert tokens.revoke(mine.id, actor=bob, reason="laptop lost").state == "revoked"
    with pytest.raises(Forbidden, match="revoked"):
        tokens.authenticate(mine.secret)


def test_unknown_roles_are_refused_when_the_actor_is_built() -> None:
    from airlock.errors import InvalidInput

    with pytest.raises(InvalidInput, match="unknown role 'root'"):
        Actor("mallory", "root")
    assert Actor("x", " Approver ").role == "approver"
